// Reads a JSON request body strictly, for every route and every field: the body is walked once against the
// DTO's wire schema (its serializer contract) before it is bound, and every problem is collected so one 400
// names each field: a key given twice, a key the route does not know (misspelt or unsupported), a number
// sent as a string (or any other kind mismatch), an integer out of its range. Only a body with none of
// these is deserialised — with strict number handling, so nothing is coerced behind the walk's back.

using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace Trident.Api.Endpoints;

/// <summary>Reads a JSON body so that a malformed, duplicated, unknown or mistyped field becomes a validation
/// problem naming the field.</summary>
internal static class JsonBody
{
    /// <summary>Largest integer a JSON client (an IEEE double) holds exactly: 2^53 − 1.</summary>
    public const long MaxSafeInteger = 9_007_199_254_740_991;

    public static async Task<(T? Value, Dictionary<string, string[]> Errors)> ReadAsync<T>(HttpContext http,
        IReadOnlyDictionary<string, string>? unsupported = null) where T : class
    {
        var errors = new Dictionary<string, string[]>();
        var options = Strict(http.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions);
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(http.Request.Body, default, http.RequestAborted);
        }
        catch (JsonException)
        {
            errors["$"] = ["the body is not a JSON object"];
            return (null, errors);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                errors["$"] = ["a JSON object is required"];
                return (null, errors);
            }
            Check(document.RootElement, options.GetTypeInfo(typeof(T)), unsupported, errors);
            if (errors.Count > 0) return (null, errors);
            try
            {
                var value = document.RootElement.Deserialize<T>(options);
                if (value is null) errors["$"] = ["a JSON object is required"];
                return (value, errors);
            }
            catch (JsonException ex)
            {
                var path = ex.Path is { Length: > 2 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : "$";
                errors[path] = ["has the wrong type or is malformed"];
                return (null, errors);
            }
        }
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<JsonSerializerOptions, JsonSerializerOptions> StrictCache = new();

    /// <summary>The API's options without the web defaults' leniency: numbers must be JSON numbers, unknown
    /// members and duplicate keys are errors.</summary>
    private static JsonSerializerOptions Strict(JsonSerializerOptions web) => StrictCache.GetValue(web, o =>
    {
        var strict = new JsonSerializerOptions(o)
        {
            NumberHandling = JsonNumberHandling.Strict,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            AllowDuplicateProperties = false,
        };
        strict.MakeReadOnly(populateMissingResolver: true);
        return strict;
    });

    private static void Check(JsonElement body, JsonTypeInfo contract, IReadOnlyDictionary<string, string>? unsupported, Dictionary<string, string[]> errors)
    {
        var properties = contract.Properties.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var known = string.Join(", ", properties.Keys);
        void Add(string field, string message) =>
            errors[field] = errors.TryGetValue(field, out var old) ? [.. old, message] : [message];

        foreach (var member in body.EnumerateObject())
        {
            var name = member.Name;
            if (!seen.Add(name))
            {
                Add(name, "is given more than once (a key may appear once)");
                continue;
            }
            if (unsupported is not null && unsupported.TryGetValue(name, out var why))
            {
                Add(name, $"is not supported by this server: {why}");
                continue;
            }
            if (!properties.TryGetValue(name, out var property))
            {
                Add(name, $"is not a field of this route (fields: {known})");
                continue;
            }
            if (KindError(member.Value, property.PropertyType) is { } message) Add(name, message);
        }
    }

    /// <summary>Why a value does not have the field's JSON kind, or null.</summary>
    private static string? KindError(JsonElement value, Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        if (value.ValueKind == JsonValueKind.Null)
            return underlying is not null || !type.IsValueType ? null : "must not be null";
        var t = underlying ?? type;
        if (t == typeof(string))
            return value.ValueKind == JsonValueKind.String ? null : $"must be a JSON string (got {Kind(value)})";
        if (t == typeof(bool))
            return value.ValueKind is JsonValueKind.True or JsonValueKind.False ? null : $"must be true or false (got {Kind(value)})";
        if (t == typeof(int) || t == typeof(long) || t == typeof(double))
        {
            if (value.ValueKind != JsonValueKind.Number) return $"must be a JSON number (got {Kind(value)})";
            if (t == typeof(int) && !value.TryGetInt32(out _)) return "must be a whole number between -2147483648 and 2147483647";
            if (t == typeof(long) && !value.TryGetInt64(out _)) return "must be a whole number between -9223372036854775808 and 9223372036854775807";
            if (t == typeof(double) && !(value.TryGetDouble(out var d) && double.IsFinite(d))) return "must be a finite number";
            return null;
        }
        return null;
    }

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        _ => "null",
    };
}
