// Reads a JSON request body strictly, for every route and every field: the body is walked once against the
// DTO's wire schema (its serializer contract) before it is bound, and every problem is collected so one 400
// names each field: a key given twice, a key the route does not know (misspelt or unsupported), a number
// sent as a string (or any other kind mismatch), an integer out of its range. Only a body with none of
// these is deserialised — with strict number handling, so nothing is coerced behind the walk's back.

using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using Microsoft.Extensions.Options;
using Trident.Api.Options;

namespace Trident.Api.Endpoints;

/// <summary>Reads a JSON body so that a malformed, duplicated, unknown or mistyped field becomes a validation
/// problem naming the field.</summary>
internal static class JsonBody
{
    /// <summary>Largest integer a JSON client (an IEEE double) holds exactly: 2^53 − 1.</summary>
    public const long MaxSafeInteger = 9_007_199_254_740_991;

    /// <summary>Reads the body as a <typeparamref name="T"/>; a null value comes with the errors and the status of
    /// the answer (<see cref="Problems.Body"/>): 400, or 413 when the body is over
    /// <c>Trident:Limits:MaxBodyBytes</c>, or 415 when its Content-Type names a charset other than UTF-8.</summary>
    public static async Task<(T? Value, Dictionary<string, string[]> Errors, int Status)> ReadAsync<T>(HttpContext http,
        IReadOnlyDictionary<string, string>? unsupported = null) where T : class
    {
        var errors = new Dictionary<string, string[]>();
        if (http.Request.ContentType is { } contentType)
        {
            // routing has matched the media type (application/json, or a +json type); the charset is checked here
            string? why = !MediaTypeHeaderValue.TryParse(contentType, out var type) ? "is not a valid media type"
                : type.Charset.HasValue && !string.Equals(type.Charset.Value.Trim('"'), "utf-8", StringComparison.OrdinalIgnoreCase)
                    ? $"names charset '{type.Charset.Value}'" : null;
            if (why is not null)
            {
                errors["$"] = [$"the body must be UTF-8 JSON (Content-Type '{contentType}' {why})"];
                return (null, errors, StatusCodes.Status415UnsupportedMediaType);
            }
        }
        var options = Strict(http.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions);
        var max = http.RequestServices.GetRequiredService<IOptions<TridentOptions>>().Value.Limits.MaxBodyBytes;
        byte[]? body;
        try
        {
            body = await ReadLimitedAsync(http, max);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            body = null;
        }
        catch (BadHttpRequestException ex)
        {
            errors["$"] = [$"the body could not be read: {ex.Message}"];
            return (null, errors, StatusCodes.Status400BadRequest);
        }
        if (body is null)
        {
            errors["$"] = [$"the body is over {max} bytes (Trident:Limits:MaxBodyBytes)"];
            return (null, errors, StatusCodes.Status413PayloadTooLarge);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            errors["$"] = ["the body is not a JSON object"];
            return (null, errors, StatusCodes.Status400BadRequest);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                errors["$"] = ["a JSON object is required"];
                return (null, errors, StatusCodes.Status400BadRequest);
            }
            Check(document.RootElement, options.GetTypeInfo(typeof(T)), unsupported, errors);
            if (errors.Count > 0) return (null, errors, StatusCodes.Status400BadRequest);
            try
            {
                var value = document.RootElement.Deserialize<T>(options);
                if (value is null) errors["$"] = ["a JSON object is required"];
                return (value, errors, StatusCodes.Status400BadRequest);
            }
            catch (JsonException ex)
            {
                var path = ex.Path is { Length: > 2 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : "$";
                errors[path] = ["has the wrong type or is malformed"];
                return (null, errors, StatusCodes.Status400BadRequest);
            }
        }
    }

    /// <summary>The whole body, or null when it is over <paramref name="max"/> bytes (read no further than that).</summary>
    private static async Task<byte[]?> ReadLimitedAsync(HttpContext http, int max)
    {
        if (http.Request.ContentLength > max) return null;
        // Kestrel then refuses a longer body itself (a chunked one included)
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = max;
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await http.Request.Body.ReadAsync(chunk, http.RequestAborted)) > 0)
        {
            if (buffer.Length + read > max) return null;
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
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
            var (name, repaired) = NameOf(member);
            if (repaired)
            {
                Add(name, "is not valid Unicode text (invalid UTF-8, or an unpaired surrogate escape); the name is shown with U+FFFD in its place");
                continue;
            }
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

    /// <summary>A member's name; one that is not valid Unicode (invalid UTF-8 bytes, or an escape of an unpaired
    /// surrogate, which System.Text.Json refuses to read: InvalidOperationException) comes back repaired, each bad
    /// sequence replaced by U+FFFD, so the 400 can name it.</summary>
    private static (string Name, bool Repaired) NameOf(JsonProperty member)
    {
        try
        {
            return (member.Name, false);
        }
        catch (InvalidOperationException)
        {
            var raw = Encoding.UTF8.GetString(System.Runtime.InteropServices.JsonMarshal.GetRawUtf8PropertyName(member));
            var text = new StringBuilder(raw.Length);
            for (var i = 0; i < raw.Length; i++)
            {
                if (raw[i] != '\\' || i + 1 >= raw.Length)
                {
                    text.Append(raw[i]);
                    continue;
                }
                var c = raw[++i];
                if (c == 'u' && i + 4 < raw.Length && ushort.TryParse(raw.AsSpan(i + 1, 4), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var code))
                {
                    text.Append((char)code);
                    i += 4;
                }
                else text.Append(c switch { 'b' => '\b', 'f' => '\f', 'n' => '\n', 'r' => '\r', 't' => '\t', _ => c });
            }
            // unpaired surrogates become U+FFFD on the way through UTF-8
            return (Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text.ToString())), true);
        }
    }

    /// <summary>Whether a JSON string is valid Unicode text (System.Text.Json reads it).</summary>
    private static bool ValidText(JsonElement value)
    {
        try
        {
            _ = value.GetString();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
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
            return value.ValueKind != JsonValueKind.String ? $"must be a JSON string (got {Kind(value)})"
                : ValidText(value) ? null : "is not valid Unicode text (invalid UTF-8, or an unpaired surrogate escape)";
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
