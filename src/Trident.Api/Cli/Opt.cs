using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Trident.Api.Cli;

/// <summary>
/// Typed options of the command line (System.CommandLine): each factory returns an option whose value is parsed
/// and range-checked while the command line is parsed, with an error that names the option and the bad value
/// (<c>--rate: 0 is outside [0.001, 1000]</c>), and whose description and default appear in <c>--help</c>.
/// Every bad option of a command line is reported in one error (<see cref="Commands.RunAsync"/>), exit code 2.
/// </summary>
public static class Opt
{
    /// <summary>An integer option in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<int> Int(string name, string description, int? @default = null, int min = int.MinValue, int max = int.MaxValue) =>
        Parsed(name, description, @default, "N", (string s, out int v) =>
            int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v) ? null : $"'{s}' is not an integer",
            v => v < min || v > max ? $"{v} is outside [{min}, {max}]" : null);

    /// <summary>A finite number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<double> Double(string name, string description, double? @default = null,
        double min = double.NegativeInfinity, double max = double.PositiveInfinity) =>
        Parsed(name, description, @default, "X", (string s, out double v) =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out v) && double.IsFinite(v) ? null : $"'{s}' is not a number",
            v => v < min || v > max ? string.Create(CultureInfo.InvariantCulture, $"{v} is outside [{min}, {max}]") : null);

    /// <summary>A non-negative 64-bit integer (seeds).</summary>
    public static Option<ulong> ULong(string name, string description, ulong? @default = null) =>
        Parsed(name, description, @default, "N", (string s, out ulong v) =>
            ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v) ? null : $"'{s}' is not a non-negative integer",
            _ => null);

    /// <summary>A text option (a path, a URL, a name checked later).</summary>
    public static Option<string> String(string name, string description, string? @default = null, bool required = false, string? helpName = null)
    {
        var o = new Option<string>(name) { Description = description, Required = required, HelpName = helpName };
        if (@default is not null) o.DefaultValueFactory = _ => @default;
        return o;
    }

    /// <summary>One of <paramref name="values"/> (offered by shell completion).</summary>
    public static Option<string> Choice(string name, string description, string? @default, params string[] values)
    {
        var o = new Option<string>(name) { Description = description, HelpName = string.Join('|', values) };
        if (@default is not null) o.DefaultValueFactory = _ => @default;
        o.CustomParser = r =>
        {
            var s = Last(r);
            if (s is null) return null;
            if (!values.Contains(s, StringComparer.Ordinal)) r.AddError($"{name}: '{s}' is not one of {string.Join(", ", values)}");
            return s;
        };
        o.CompletionSources.Add(values);
        return o;
    }

    /// <summary><paramref name="option"/> with <paramref name="values"/> offered by shell completion (the list its check
    /// takes the value from, so completion and the check cannot disagree); a value outside it is the check's to refuse
    /// (a trace file beside the named workloads, say).</summary>
    public static Option<string> Completing(this Option<string> option, IEnumerable<string> values)
    {
        option.CompletionSources.Add([.. values]);
        return option;
    }

    /// <summary>A switch: <c>--quick</c> (or <c>--quick true|false</c>).</summary>
    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    /// <summary>A comma-separated list of integers ≥ <paramref name="min"/>, e.g. <c>--degrees 1,2,4</c>. Read it with
    /// <see cref="Ints"/> (the default when the line does not give it). The help shows a non-empty default as it is
    /// written (<c>[default: 1,2]</c>), not as System.CommandLine prints a list's default (<c>1|2</c>, which is not this
    /// option's syntax): the default is in the description, not a default value of the option.</summary>
    public static Option<IReadOnlyList<int>> IntList(string name, string description, int[] @default, int min = 1)
    {
        var o = new Option<IReadOnlyList<int>>(name)
        {
            Description = @default.Length > 0 ? $"{description} [default: {string.Join(',', @default)}]" : description,
            HelpName = "N,N,…",
        };
        ListDefaults.AddOrUpdate(o, @default);
        o.CustomParser = r =>
        {
            var s = Last(r);
            if (s is null) return @default;
            var result = new List<int>();
            foreach (var part in s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min) result.Add(v);
                else r.AddError($"{name}: '{part}' is not an integer ≥ {min}");
            }
            if (result.Count == 0) r.AddError($"{name}: needs at least one value");
            return result;
        };
        return o;
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Option, int[]> ListDefaults = new();

    /// <summary>The value of an <see cref="IntList"/> option: the line's, else its default.</summary>
    public static IReadOnlyList<int> Ints(this ParseResult r, Option<IReadOnlyList<int>> option) =>
        r.GetValue(option) ?? (ListDefaults.TryGetValue(option, out var d) ? d : []);

    /// <summary>Whether the command line gave <paramref name="option"/> (not its default).</summary>
    public static bool Given(this ParseResult r, Option option) => r.GetResult(option) is { Implicit: false };

    /// <summary>The option's value when the command line gave it, else null.</summary>
    public static T? Maybe<T>(this ParseResult r, Option<T> option) where T : struct => r.Given(option) ? r.GetValue(option) : null;

    /// <summary>The value of a text option that has a default or is required (never null after a clean parse).</summary>
    public static string Text(this ParseResult r, Option<string> option) => r.GetValue(option) ?? "";

    /// <summary>In a command's validator: the value of <paramref name="option"/> — the line's, else its default (an
    /// <see cref="IntList"/>'s included; null, or 0 for a number, where it has none: test <c>GetResult</c> for
    /// whether it was given) — and true; false when the line's value did not parse (the parser reports it).
    /// A command's validators run before the library adds the results of the options left out, so there
    /// <c>GetResult</c> is null for an option at its default: reading it this way checks the default as a given value.</summary>
    public static bool TryGet<T>(this CommandResult r, Option<T> option, out T? value)
    {
        if (r.GetResult(option) is { } given)
        {
            try
            {
                value = given.GetValueOrDefault<T>();
                return true;
            }
            catch (InvalidOperationException)
            {
                value = default;
                return false;
            }
        }
        value = option.HasDefaultValue ? (T?)option.GetDefaultValue()
            : ListDefaults.TryGetValue(option, out var d) && d is T list ? list : default;
        return true;
    }

    /// <summary>Adds a validator to <paramref name="command"/> that runs <paramref name="check"/> over the options' values
    /// while the command line is parsed, so that its problems come in one error with the values that did not parse.</summary>
    public static void Check(this Command command, Action<OptionValues, CliErrors> check) =>
        command.Validators.Add(result =>
        {
            var errors = new CliErrors();
            check(OptionValues.Of(result), errors);
            result.AddErrors(errors);
        });

    /// <summary>In a command's validator: adds each of <paramref name="errors"/> (worded <c>--option: …</c>) to the
    /// command line's errors, but for an option whose value did not parse (the parser reports that, once).</summary>
    public static void AddErrors(this CommandResult r, CliErrors errors)
    {
        var failed = r.Command.Options.Where(o => r.GetResult(o) is { } given && !Parses(given)).Select(o => o.Name).ToHashSet();
        foreach (var e in errors.List)
            if (!NamesFailed(e, failed)) r.AddError(e);
    }

    internal static bool Parses(OptionResult given)
    {
        try
        {
            given.GetValueOrDefault<object>();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>In a command's validator: an error naming options (<c>--a: …</c>, or several as <c>--a/--b: …</c>) is
    /// dropped when one of them did not parse: the parser reports that, and the check read a placeholder for it.</summary>
    internal static bool NamesFailed(string error, ISet<string> failed) =>
        error[..Math.Max(0, error.IndexOf(':'))].Split('/').Any(failed.Contains);

    private delegate string? TryParse<T>(string s, out T value);

    private static Option<T> Parsed<T>(string name, string description, T? @default, string helpName, TryParse<T> parse, Func<T, string?> check)
        where T : struct
    {
        var o = new Option<T>(name) { Description = description, HelpName = helpName };
        if (@default is { } d) o.DefaultValueFactory = _ => d;
        o.CustomParser = r =>
        {
            var s = Last(r);
            if (s is null) return @default ?? default;
            var error = parse(s, out var v) ?? check(v);
            if (error is not null) r.AddError($"{name}: {error}");
            return v;
        };
        return o;
    }

    private static string? Last(ArgumentResult r) => r.Tokens.Count == 0 ? null : r.Tokens[^1].Value;
}

/// <summary>The values of a command's options as its checks read them, alike in a validator (while the command line is
/// parsed: <see cref="Of(CommandResult)"/>) and when the command runs (<see cref="Of(ParseResult)"/>), so that one
/// function finds every problem of a command line in the same error as the values that did not parse. In a validator
/// an option whose value did not parse reads as its default (a placeholder: the parser reports it, and
/// <see cref="Opt.AddErrors"/> drops the errors that name it) and as not given to <see cref="Maybe{T}"/>.</summary>
public sealed class OptionValues
{
    private readonly ParseResult? _parse;
    private readonly CommandResult? _command;

    private OptionValues(ParseResult? parse, CommandResult? command) => (_parse, _command) = (parse, command);

    /// <summary>The values of a parsed command line (when the command runs).</summary>
    public static OptionValues Of(ParseResult r) => new(r, null);

    /// <summary>The values in a command's validator.</summary>
    public static OptionValues Of(CommandResult r) => new(null, r);

    /// <summary>Whether this reads the values in a validator (no notes or warnings are printed there: the run prints them).</summary>
    public bool Validating => _command is not null;

    /// <summary>Whether the command line gave <paramref name="option"/> (whether its value parsed or not).</summary>
    public bool Given(Option option) => _parse is not null ? _parse.Given(option) : _command!.GetResult(option) is { Implicit: false };

    /// <summary>The value: the line's, else the default (null, or 0 for a number, where there is none); an
    /// <see cref="Opt.IntList"/>'s default included; the default for a value that did not parse.</summary>
    public T? Get<T>(Option<T> option)
    {
        if (_parse is not null) return typeof(T) == typeof(IReadOnlyList<int>) ? (T?)(object?)_parse.Ints((Option<IReadOnlyList<int>>)(object)option) : _parse.GetValue(option);
        if (_command!.TryGet(option, out var value)) return value;
        return option.HasDefaultValue ? (T?)option.GetDefaultValue() : default;
    }

    /// <summary>A text option's value ("" where it has none).</summary>
    public string Text(Option<string> option) => Get(option) ?? "";

    /// <summary>The value when the command line gave it and it parsed, else null.</summary>
    public T? Maybe<T>(Option<T> option) where T : struct
    {
        if (_parse is not null) return _parse.Maybe(option);
        return _command!.GetResult(option) is { Implicit: false } given && Opt.Parses(given) && _command.TryGet(option, out var v) ? v : null;
    }
}
