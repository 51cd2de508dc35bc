// Binds section "Trident" onto TridentOptions without ever throwing and without ignoring anything: every key of
// every source (appsettings, --config file, Trident__… environment variables, --Trident:… arguments) is walked
// against the options' properties, so a misspelt or unknown key is an error naming it, and a value that does
// not parse as its property's type (SloScale=abc, Degrees=banana) is an error naming the key and the value,
// instead of the binder's exception (an unhandled crash) or its silence (the default kept). The validator
// reports these with its own rule checks, so `serve` exits 2 with the complete list. Lists (int[]) take
// either indexed children (a JSON array; Trident__Devices__Degrees__0=1) or one comma-separated value
// (--Trident:Devices:Degrees 1,2,4); given both ways by different sources (a file's array, a variable's or the command
// line's value), the later source wins, as it does for any key.

using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Trident.Api.Options;

/// <summary>Strict, non-throwing binding of configuration onto an options object.</summary>
public static class StrictBinding
{
    /// <summary>Binds <paramref name="section"/> onto <paramref name="target"/>; returns one message per unknown
    /// key or unparsable value, each naming its full key. Valid keys are bound even when others are not.
    /// <paramref name="sources"/>: the configuration <paramref name="section"/> is of, which says which source gives a
    /// list last where one gives it elements and another a comma-separated value (null: the elements win).</summary>
    public static IReadOnlyList<string> Bind(IConfigurationSection section, object target, IConfiguration? sources = null) =>
        [.. Problems(section, target, sources).Select(p => p.Message)];

    /// <summary><see cref="Bind"/>, with the key each problem concerns and whether it is an unknown key.</summary>
    public static IReadOnlyList<ConfigProblem> Problems(IConfigurationSection section, object target, IConfiguration? sources = null)
    {
        var errors = new List<ConfigProblem>();
        BindObject(section, target, errors, sources);
        return errors;
    }

    private static PropertyInfo[] Keys(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.GetSetMethod() is not null).ToArray();

    private static void BindObject(IConfigurationSection section, object target, List<ConfigProblem> errors, IConfiguration? sources)
    {
        var properties = Keys(target.GetType());
        foreach (var child in section.GetChildren())
        {
            var property = properties.FirstOrDefault(p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                errors.Add(new(child.Path, $"{child.Path} is not a configuration key (keys under {section.Path}: {string.Join(", ", properties.Select(p => p.Name))}; docs/serving.md lists them)", Unknown: true));
                continue;
            }
            var type = property.PropertyType;
            if (IsLeaf(type))
            {
                if (type.IsArray) BindArray(child, property, target, errors, sources);
                else if (child.GetChildren().Any()) errors.Add(new(child.Path, $"{child.Path} takes a single value, not a section"));
                else if (Parse(child.Value ?? "", type, out var value, out var expected)) property.SetValue(target, value);
                else errors.Add(new(child.Path, $"{child.Path} must be {expected} (got '{child.Value}')"));
                continue;
            }
            if (child.Value is { Length: > 0 })
            {
                errors.Add(new(child.Path, $"{child.Path} is a section (keys: {string.Join(", ", Keys(type).Select(p => p.Name))}), not a value (got '{child.Value}')"));
                continue;
            }
            var nested = property.GetValue(target) ?? Activator.CreateInstance(type)!;
            BindObject(child, nested, errors, sources);
            property.SetValue(target, nested);
        }
    }

    // Whether the last source that gives list key (elements, or a value) gives it a value, not elements.
    private static bool ValueGivenLast(IConfiguration? sources, string key)
    {
        if (sources is not IConfigurationRoot root) return false;
        foreach (var provider in root.Providers.Reverse())
        {
            if (provider.GetChildKeys([], key).Any()) return false;
            if (provider.TryGet(key, out var value)) return !string.IsNullOrEmpty(value);
        }
        return false;
    }

    private static bool IsLeaf(Type type) =>
        type == typeof(string) || type.IsPrimitive || type.IsEnum || type == typeof(TimeSpan) || type == typeof(decimal)
        || type.IsArray || Nullable.GetUnderlyingType(type) is not null;

    private static void BindArray(IConfigurationSection key, PropertyInfo property, object target, List<ConfigProblem> errors, IConfiguration? sources)
    {
        var element = property.PropertyType.GetElementType()!;
        var children = key.GetChildren().ToArray();
        // elements from one source, a value from another (a file's [1, 3], Trident__Devices__Degrees=1,2): the later wins
        if (children.Length > 0 && key.Value is { Length: > 0 } && ValueGivenLast(sources, key.Path)) children = [];
        string[] parts;
        if (children.Length > 0)
        {
            var indexed = children.Select(c => (Ok: int.TryParse(c.Key, NumberStyles.None, CultureInfo.InvariantCulture, out var i), Index: i, c)).ToArray();
            var bad = indexed.Where(x => !x.Ok || x.c.GetChildren().Any()).ToArray();
            foreach (var x in bad) errors.Add(new(key.Path, $"{x.c.Path} is not an element of the list {key.Path} (elements are :0, :1, …)"));
            if (bad.Length > 0) return;
            parts = indexed.OrderBy(x => x.Index).Select(x => x.c.Value ?? "").ToArray();
        }
        else parts = (key.Value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var array = Array.CreateInstance(element, parts.Length);
        var expected = "";
        var failed = parts.Where((p, i) =>
        {
            if (!Parse(p, element, out var v, out expected)) return true;
            array.SetValue(v, i);
            return false;
        }).ToArray();
        if (failed.Length > 0) errors.Add(new(key.Path, $"{key.Path} must be a list whose elements are each {expected}: 1,2,4 or a JSON array (got '{string.Join(",", parts)}')"));
        else property.SetValue(target, array);
    }

    private static bool Parse(string text, Type type, out object? value, out string expected)
    {
        var c = CultureInfo.InvariantCulture;
        value = null;
        var t = Nullable.GetUnderlyingType(type) ?? type;
        if (t == typeof(string)) { expected = "a string"; value = text; return true; }
        if (t == typeof(int)) { expected = "a whole number"; var ok = int.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, c, out var v); value = v; return ok; }
        if (t == typeof(long)) { expected = "a whole number"; var ok = long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, c, out var v); value = v; return ok; }
        if (t == typeof(double))
        {
            expected = "a finite number";
            var ok = double.TryParse(text.Trim(), NumberStyles.Float, c, out var v) && double.IsFinite(v);
            value = v;
            return ok;
        }
        if (t == typeof(bool)) { expected = "true or false"; var ok = bool.TryParse(text.Trim(), out var v); value = v; return ok; }
        if (t.IsEnum)
        {
            expected = "one of " + string.Join(", ", Enum.GetNames(t));
            var ok = Enum.TryParse(t, text.Trim(), ignoreCase: true, out var v) && Enum.IsDefined(t, v!);
            value = v;
            return ok;
        }
        if (t == typeof(TimeSpan)) { expected = "a time span (hh:mm:ss)"; var ok = TimeSpan.TryParse(text.Trim(), c, out var v); value = v; return ok; }
        if (t == typeof(decimal)) { expected = "a number"; var ok = decimal.TryParse(text.Trim(), NumberStyles.Float, c, out var v); value = v; return ok; }
        expected = $"a {t.Name} (not bindable from configuration)";
        return false;
    }
}
