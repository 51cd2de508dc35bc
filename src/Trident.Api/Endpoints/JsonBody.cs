// Reads a JSON request body strictly, for every route and every field: the body is walked once against the
// DTO's wire schema (its serializer contract) before it is bound, and every problem is collected so one 400
// names each field: a key given twice, a key the route does not know (misspelt or unsupported), a number
// sent as a string (or any other kind mismatch), an integer out of its range; nested objects (and arrays of
// them) are walked the same way, their fields named by path (extra_body.seed, messages[0].role). A route may
// name aliases (the diffusers names of its fields, e.g. num_inference_steps for steps): an alias is checked as
// its field, renamed to it before binding, and an alias given together with its field is an error — so the
// binding stays strict. A route may also take an HTML form (multipart/form-data or urlencoded, as OpenAI's
// video API is called): each form field's text is converted to the field's JSON kind first (a number that does
// not parse is an error naming it), and the same walk follows. What is deserialised — with strict number
// handling, so nothing is coerced behind the walk's back — is the body without the fields the walk named: the
// route's own checks (ranges, sizes, the cost model) then run on the rest and name their problems in the same
// 400, so a client sending "width": "abc" and "height": -5 learns both at once (BodyRead.With). A field that could
// not be read is not replaced by its default behind the client's back: the route is told which ones they are
// (BodyRead.Unread) and names nothing about them, nor checks what depends on them.

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
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

    /// <summary>Reads the body as a <typeparamref name="T"/>. A null value comes with the errors and the status of
    /// the answer (<see cref="Problems.Body"/>): 400 for a body that is not a JSON object at all, or 413 when the body is
    /// over <c>Trident:Limits:MaxBodyBytes</c>, or 415 when its Content-Type names a charset other than UTF-8. A value
    /// may come with errors too: it is bound from the fields that had none (<see cref="BodyRead{T}"/>).</summary>
    /// <param name="http">The request.</param>
    /// <param name="unsupported">Field names this server knows but does not implement, with the reason (a 400 each).</param>
    /// <param name="aliases">Alias → field name: other names a field may be sent under (one of them at a time).</param>
    /// <param name="form">Whether an HTML form body is accepted too.</param>
    /// <param name="flatten">A member whose object's fields count as top-level fields (vLLM-Omni's chat route takes
    /// generation parameters in a literal <c>extra_body</c> object); a field given in both places is an error.</param>
    public static async Task<BodyRead<T>> ReadAsync<T>(HttpContext http,
        IReadOnlyDictionary<string, string>? unsupported = null, IReadOnlyDictionary<string, string>? aliases = null, bool form = false,
        string? flatten = null) where T : class
    {
        var errors = new Dictionary<string, string[]>();
        var jsonOptions = Strict(http.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions);
        if (form && http.Request.HasFormContentType)
        {
            var (formBody, formStatus) = await ReadFormAsync(http, jsonOptions.GetTypeInfo(typeof(T)), aliases, errors);
            if (formBody is null) return Refused<T>(errors, formStatus);
            return Bind<T>(formBody, jsonOptions, unsupported, aliases, null, errors);
        }
        if (http.Request.ContentType is { } contentType)
        {
            // routing has matched the media type (application/json, or a +json type); the charset is checked here
            string? why = !MediaTypeHeaderValue.TryParse(contentType, out var type) ? "is not a valid media type"
                : NamesOtherCharset(type) ? $"names charset '{type.Charset.Value}'" : null;
            if (why is not null)
            {
                errors["$"] = [$"the body must be UTF-8 JSON (Content-Type '{contentType}' {why})"];
                return Refused<T>(errors, StatusCodes.Status415UnsupportedMediaType);
            }
        }
        var max = http.RequestServices.GetRequiredService<IOptions<TridentOptions>>().Value.Limits.MaxBodyBytes;
        var (body, status) = await ReadBodyAsync(http, max, errors);
        if (body is null) return Refused<T>(errors, status);
        return Bind<T>(WithoutByteOrderMark(body), jsonOptions, unsupported, aliases, flatten, errors);
    }

    /// <summary>A body without its leading UTF-8 byte order mark (EF BB BF), if it has one. Some editors and Windows
    /// tools save JSON with one, and RFC 8259 lets a parser ignore it; the parser read it as a value's first byte ("'0xEF'
    /// is an invalid start of a value"). Only a UTF-8 mark is taken: a body is UTF-8 (another charset is a 415), and
    /// the configuration files are read the same way.</summary>
    private static byte[] WithoutByteOrderMark(byte[] body) =>
        body.AsSpan().StartsWith(Encoding.UTF8.Preamble) ? body[Encoding.UTF8.Preamble.Length..] : body;

    // a body refused whole: no value, nothing of it read
    private static BodyRead<T> Refused<T>(Dictionary<string, string[]> errors, int status) where T : class =>
        new(null, errors, status, new HashSet<string>(StringComparer.Ordinal));

    /// <summary>Walks a JSON body and binds it (aliases renamed to their fields) without the members the walk named a
    /// problem of; the value is null only when the body is not a JSON object, or binding the rest failed all the same.</summary>
    private static BodyRead<T> Bind<T>(byte[] body, JsonSerializerOptions options,
        IReadOnlyDictionary<string, string>? unsupported, IReadOnlyDictionary<string, string>? aliases, string? flatten,
        Dictionary<string, string[]> errors) where T : class
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
            if (flatten is not null && Flatten(document.RootElement, flatten, errors) is { } flat)
            {
                document.Dispose();
                // a field given in both places is named; the walk below names every other problem too
                document = JsonDocument.Parse(flat);
            }
        }
        catch (JsonException ex)
        {
            // the parser's own words say where and what (nesting too deep, a stray character, …)
            errors["$"] = [$"the body is not valid JSON: {ex.Message}"];
            return Refused<T>(errors, StatusCodes.Status400BadRequest);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                errors["$"] = ["a JSON object is required"];
                return Refused<T>(errors, StatusCodes.Status400BadRequest);
            }
            var spoiled = new HashSet<string>(StringComparer.Ordinal);
            Check(document.RootElement, options.GetTypeInfo(typeof(T)), options, unsupported, aliases, errors, "", spoiled);
            var unread = Unread(errors, spoiled, aliases, flatten);
            if (spoiled.Count == 0) return Deserialize<T>(document.RootElement, options, aliases, errors, unread);
            // the members that passed, bound on their own so the route can check them in the same answer
            using var rest = JsonDocument.Parse(Without(document.RootElement, spoiled));
            return Deserialize<T>(rest.RootElement, options, aliases, errors, unread);
        }
    }

    /// <summary>Binds a walked object (aliases renamed to their fields).</summary>
    private static BodyRead<T> Deserialize<T>(JsonElement root, JsonSerializerOptions options, IReadOnlyDictionary<string, string>? aliases,
        Dictionary<string, string[]> errors, IReadOnlySet<string> unread) where T : class
    {
        try
        {
            var node = JsonNode.Parse(root.GetRawText());
            if (aliases is { Count: > 0 }) Rename(node, aliases);
            var value = node.Deserialize<T>(options);
            if (value is null) errors["$"] = ["a JSON object is required"];
            return new BodyRead<T>(value, errors, StatusCodes.Status400BadRequest, unread);
        }
        catch (JsonException ex)
        {
            var path = ex.Path is { Length: > 2 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : "$";
            Add(errors, path, "has the wrong type or is malformed");
            return Refused<T>(errors, StatusCodes.Status400BadRequest);
        }
    }

    /// <summary>An object's members but those named in <paramref name="spoiled"/> (every occurrence), copied as their
    /// raw bytes (as <see cref="Flatten"/> does: a name that is not valid Unicode cannot be written back otherwise).</summary>
    private static byte[] Without(JsonElement root, IReadOnlySet<string> spoiled)
    {
        using var kept = new MemoryStream();
        kept.WriteByte((byte)'{');
        var first = true;
        foreach (var m in root.EnumerateObject())
            if (!spoiled.Contains(NameOf(m).Name)) WriteRaw(kept, m, ref first);
        kept.WriteByte((byte)'}');
        return kept.ToArray();
    }

    /// <summary>Writes member <paramref name="m"/> of an object being written to <paramref name="to"/> as its raw bytes,
    /// after a comma unless it is the <paramref name="first"/>.</summary>
    private static void WriteRaw(MemoryStream to, JsonProperty m, ref bool first)
    {
        if (!first) to.WriteByte((byte)',');
        first = false;
        to.WriteByte((byte)'"');
        to.Write(System.Runtime.InteropServices.JsonMarshal.GetRawUtf8PropertyName(m));
        to.Write("\":"u8);
        to.Write(System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(m.Value));
    }

    /// <summary>The top-level fields a problem was named for (under their names as sent and, for an alias, its field's
    /// name; for a field of the flattened member, under its own name too): the route reads none of them.</summary>
    private static HashSet<string> Unread(Dictionary<string, string[]> errors, IEnumerable<string> spoiled,
        IReadOnlyDictionary<string, string>? aliases, string? flatten)
    {
        static string Top(string path) => path.IndexOfAny(['.', '[']) is var i and > 0 ? path[..i] : path;
        var unread = new HashSet<string>(spoiled, StringComparer.Ordinal);
        foreach (var key in errors.Keys)
        {
            unread.Add(Top(key));
            if (flatten is not null && key.StartsWith(flatten + ".", StringComparison.Ordinal)) unread.Add(Top(key[(flatten.Length + 1)..]));
        }
        if (aliases is not null)
            foreach (var name in unread.ToArray())
                if (aliases.TryGetValue(name, out var field)) unread.Add(field);
        unread.Remove("$");
        return unread;
    }

    /// <summary>The body with the members of object <paramref name="member"/> moved to the top level; null when
    /// the body has no such member. A <paramref name="member"/> that is not an object (nor null: none) is named here.
    /// Members are copied as their raw bytes, so what the walk names afterwards (a name or a string that is not valid
    /// Unicode, a key given twice at the top level) is seen as sent: re-serialising them threw on invalid UTF-8 (a 500).</summary>
    private static byte[]? Flatten(JsonElement root, string member, Dictionary<string, string[]> errors)
    {
        if (root.ValueKind != JsonValueKind.Object) return null;
        var members = root.EnumerateObject().ToArray();
        var holder = Array.FindIndex(members, m => NameOf(m) is (var name, false) && name == member);
        if (holder < 0) return null;
        var inner = members[holder].Value;
        if (inner.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
            Add(errors, member, $"must be a JSON object of generation parameters (got {Kind(inner)})");
        var top = new HashSet<string>(members.Select(m => NameOf(m).Name), StringComparer.Ordinal);
        using var flat = new MemoryStream();
        flat.WriteByte((byte)'{');
        var first = true;
        for (var i = 0; i < members.Length; i++)
        {
            if (i == holder) continue;
            // a second extra_body is a key given twice (the walk names every other one)
            if (NameOf(members[i]) is (var name, false) && name == member) Add(errors, member, "is given more than once (a key may appear once)");
            else WriteRaw(flat, members[i], ref first);
        }
        if (inner.ValueKind == JsonValueKind.Object)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var m in inner.EnumerateObject())
            {
                var name = NameOf(m).Name;
                if (top.Contains(name) || name == member) Add(errors, $"{member}.{name}", "is given at the top level too; send it in one place");
                else if (!seen.Add(name)) Add(errors, $"{member}.{name}", "is given more than once (a key may appear once)");
                else WriteRaw(flat, m, ref first);
            }
        }
        flat.WriteByte((byte)'}');
        return flat.ToArray();
    }

    /// <summary>Renames alias keys to their fields, in every nested object.</summary>
    private static void Rename(JsonNode? node, IReadOnlyDictionary<string, string> aliases)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (alias, field) in aliases)
                    if (o.Remove(alias, out var value)) o[field] = value;
                foreach (var (_, child) in o) Rename(child, aliases);
                break;
            case JsonArray a:
                foreach (var child in a) Rename(child, aliases);
                break;
        }
    }

    /// <summary>An HTML form as a JSON object of the route's fields, each value converted to its field's JSON
    /// kind; null (with the errors and status) when the form cannot be read, holds a file, or a value does not
    /// convert.</summary>
    private static async Task<(byte[]? Body, int Status)> ReadFormAsync(HttpContext http, JsonTypeInfo contract,
        IReadOnlyDictionary<string, string>? aliases, Dictionary<string, string[]> errors)
    {
        var max = http.RequestServices.GetRequiredService<IOptions<TridentOptions>>().Value.Limits.MaxBodyBytes;
        if (http.Request.ContentLength > max)
        {
            errors["$"] = [$"the body is over {max} bytes (Trident:Limits:MaxBodyBytes)"];
            return (null, StatusCodes.Status413PayloadTooLarge);
        }
        // a form is read as UTF-8 whatever its charset says (a latin-1 form's "caf%E9" arrived as the text "caf%E9"),
        // so another charset is refused as on the JSON routes, not read as UTF-8 behind the client's back
        if (MediaTypeHeaderValue.TryParse(http.Request.ContentType, out var formType) && NamesOtherCharset(formType))
        {
            errors["$"] = [$"the form must be UTF-8 (Content-Type '{http.Request.ContentType}' names charset '{formType.Charset.Value}')"];
            return (null, StatusCodes.Status415UnsupportedMediaType);
        }
        // the whole body first, so one over the limit is a 413 however it is sent (a chunked form over it was a 400
        // "the form could not be read"), then the form reader reads it again
        http.Request.EnableBuffering();
        var (raw, status) = await ReadBodyAsync(http, max, errors);
        if (raw is null) return (null, status);
        http.Request.Body.Position = 0;
        // percent-escapes that are not UTF-8 (%E9, %ED%A0%80) were kept as their literal text by the form reader: named here
        if (formType is not null && formType.MediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            foreach (var range in raw.AsSpan().Split((byte)'&'))
            {
                var pair = raw[range];
                if (pair.Length == 0) continue;
                var equals = Array.IndexOf(pair, (byte)'=');
                var (key, value) = equals < 0 ? (pair, Array.Empty<byte>()) : (pair[..equals], pair[(equals + 1)..]);
                var name = System.Web.HttpUtility.UrlDecode(key, Encoding.UTF8);
                if (!System.Text.Unicode.Utf8.IsValid(System.Web.HttpUtility.UrlDecodeToBytes(key)))
                    Add(errors, name, "is not valid Unicode text (percent-escapes that are not UTF-8); the name is shown with U+FFFD in their place");
                else if (!System.Text.Unicode.Utf8.IsValid(System.Web.HttpUtility.UrlDecodeToBytes(value)))
                    Add(errors, name, "is not valid Unicode text (percent-escapes that are not UTF-8: the form must be UTF-8)");
            }
            if (errors.Count > 0) return (null, StatusCodes.Status400BadRequest);
        }
        IFormCollection collection;
        try
        {
            collection = await http.Request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = max, ValueLengthLimit = max }, http.RequestAborted);
        }
        catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException or IOException)
        {
            errors["$"] = [$"the form could not be read: {ex.Message}"];
            return (null, StatusCodes.Status400BadRequest);
        }
        foreach (var file in collection.Files)
            Add(errors, file.Name, "is a file: this server takes no uploads (image or video references are not supported)");
        var properties = contract.Properties.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var json = new JsonObject();
        foreach (var (key, values) in collection)
        {
            if (values.Count > 1)
            {
                Add(errors, key, "is given more than once (a key may appear once)");
                continue;
            }
            var text = values.ToString();
            var field = aliases is not null && aliases.TryGetValue(key, out var canonical) ? canonical : key;
            var type = properties.TryGetValue(field, out var property) ? Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType : typeof(string);
            var invariant = System.Globalization.CultureInfo.InvariantCulture;
            if (type == typeof(int) || type == typeof(long))
            {
                if (long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, invariant, out var whole)) json[key] = whole;
                else Add(errors, key, $"must be a whole number (got '{text}')");
            }
            else if (type == typeof(double))
            {
                if (double.TryParse(text, System.Globalization.NumberStyles.Float, invariant, out var number) && double.IsFinite(number)) json[key] = number;
                else Add(errors, key, $"must be a finite number (got '{text}')");
            }
            else if (type == typeof(bool))
            {
                if (text is "true" or "false") json[key] = text == "true";
                else Add(errors, key, $"must be true or false (got '{text}')");
            }
            else json[key] = text;
        }
        // a value that does not convert is left out, named: the walk and the route's checks name the other fields' problems
        return (System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), StatusCodes.Status400BadRequest);
    }

    // whether a media type names a charset other than UTF-8 (a JSON body and a form are read as UTF-8 only)
    private static bool NamesOtherCharset(MediaTypeHeaderValue type) =>
        type.Charset.HasValue && !string.Equals(type.Charset.Value.Trim('"'), "utf-8", StringComparison.OrdinalIgnoreCase);

    private static void Add(Dictionary<string, string[]> errors, string field, string message) =>
        errors[field] = errors.TryGetValue(field, out var old) ? [.. old, message] : [message];

    /// <summary>The body, or null with the problem added under <c>$</c> and its status: 413 over
    /// <paramref name="max"/> bytes (however it is sent), 400 when it cannot be read (cut short, a malformed chunk).</summary>
    private static async Task<(byte[]? Body, int Status)> ReadBodyAsync(HttpContext http, int max, Dictionary<string, string[]> errors)
    {
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
            return (null, StatusCodes.Status400BadRequest);
        }
        if (body is not null) return (body, StatusCodes.Status200OK);
        errors["$"] = [$"the body is over {max} bytes (Trident:Limits:MaxBodyBytes)"];
        return (null, StatusCodes.Status413PayloadTooLarge);
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

    /// <summary>Names every problem of <paramref name="body"/>'s members against <paramref name="contract"/>, by path;
    /// <paramref name="spoiled"/> (top level only) gets the name of each member a problem was named in.</summary>
    private static void Check(JsonElement body, JsonTypeInfo contract, JsonSerializerOptions options, IReadOnlyDictionary<string, string>? unsupported,
        IReadOnlyDictionary<string, string>? aliases, Dictionary<string, string[]> errors, string prefix, HashSet<string>? spoiled = null)
    {
        var properties = contract.Properties.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var known = string.Join(", ", properties.Keys.Concat(aliases?.Where(a => properties.ContainsKey(a.Value)).Select(a => $"{a.Key} (= {a.Value})") ?? []));
        var given = new HashSet<string>(StringComparer.Ordinal);
        foreach (var member in body.EnumerateObject())
            if (!NameOf(member).Repaired) given.Add(member.Name);

        foreach (var member in body.EnumerateObject())
        {
            // a member's problems: a new key, or a further message under its own path (a key given twice)
            var at = prefix + NameOf(member).Name;
            var (keys, messages) = (errors.Count, errors.TryGetValue(at, out var had) ? had.Length : 0);
            Member(member);
            if (spoiled is not null && (errors.Count > keys || errors.TryGetValue(at, out var now) && now.Length > messages))
                spoiled.Add(NameOf(member).Name);
        }

        void Member(JsonProperty member)
        {
            var (name, repaired) = NameOf(member);
            var path = prefix + name;
            if (repaired)
            {
                Add(errors, path, "is not valid Unicode text (invalid UTF-8, or an unpaired surrogate escape); the name is shown with U+FFFD in its place");
                return;
            }
            if (!seen.Add(name))
            {
                Add(errors, path, "is given more than once (a key may appear once)");
                return;
            }
            if (unsupported is not null && prefix.Length == 0 && unsupported.TryGetValue(name, out var why))
            {
                Add(errors, path, $"is not supported by this server: {why}");
                return;
            }
            var field = name;
            if (aliases is not null && aliases.TryGetValue(name, out var canonical) && properties.ContainsKey(canonical) && !properties.ContainsKey(name))
            {
                if (given.Contains(canonical))
                {
                    Add(errors, path, $"is another name of {prefix + canonical}, which is given too; send one of them");
                    return;
                }
                field = canonical;
            }
            if (!properties.TryGetValue(field, out var property))
            {
                Add(errors, path, $"is not a field of this route (fields: {known})");
                return;
            }
            if (KindError(member.Value, property.PropertyType) is { } message)
            {
                Add(errors, path, message);
                return;
            }
            // a free-form value (a chat message's content) is not walked by a contract: its text (and its keys) are checked
            // here, so the route never reads a string System.Text.Json refuses to decode (that was a 500)
            if ((Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType) == typeof(JsonElement))
            {
                InvalidText(member.Value, path, errors);
                return;
            }
            // nested objects, and arrays of them, are walked with their own contract
            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (member.Value.ValueKind == JsonValueKind.Object && IsDto(type))
                Check(member.Value, options.GetTypeInfo(type), options, null, aliases, errors, path + ".");
            else if (member.Value.ValueKind == JsonValueKind.Array && ElementType(type) is { } element && IsDto(element))
            {
                var i = 0;
                foreach (var item in member.Value.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Object) Check(item, options.GetTypeInfo(element), options, null, aliases, errors, $"{path}[{i}].");
                    else Add(errors, $"{path}[{i}]", $"must be a JSON object (got {Kind(item)})");
                    i++;
                }
            }
        }
    }

    /// <summary>Whether a type is one of the API's DTO records (bound field by field).</summary>
    private static bool IsDto(Type t) => t.IsClass && t != typeof(string) && t.Namespace == typeof(Contracts.GenerationRequestDto).Namespace;

    /// <summary>The element type of a list type, or null.</summary>
    private static Type? ElementType(Type t) =>
        t.IsArray ? t.GetElementType() : t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) ? t.GetGenericArguments()[0] : null;

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

    /// <summary>Names every string and member name in <paramref name="value"/> that is not valid Unicode text, and every
    /// key given twice, by its path.</summary>
    private static void InvalidText(JsonElement value, string path, Dictionary<string, string[]> errors)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String when !ValidText(value):
                Add(errors, path, "is not valid Unicode text (invalid UTF-8, or an unpaired surrogate escape)");
                break;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in value.EnumerateArray()) InvalidText(item, $"{path}[{i++}]", errors);
                break;
            case JsonValueKind.Object:
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var member in value.EnumerateObject())
                {
                    var (name, repaired) = NameOf(member);
                    if (repaired) Add(errors, $"{path}.{name}", "is not valid Unicode text (invalid UTF-8, or an unpaired surrogate escape); the name is shown with U+FFFD in its place");
                    // binding refuses it anyway, but only as "has the wrong type or is malformed" for the whole value
                    else if (!seen.Add(name)) Add(errors, $"{path}.{name}", "is given more than once (a key may appear once)");
                    else InvalidText(member.Value, $"{path}.{name}", errors);
                }
                break;
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
            // the field's own range (steps 1–100, …) is checked after parsing and named there; here only what no field takes
            if ((t == typeof(int) && !value.TryGetInt32(out _)) || (t == typeof(long) && !value.TryGetInt64(out _)))
                return value.GetRawText().Any(c => c is '.' or 'e' or 'E')
                    ? $"must be a whole number, written without a fraction or exponent (got {Shorten(value.GetRawText())})"
                    : $"is out of range (got {Shorten(value.GetRawText())})";
            if (t == typeof(double) && !(value.TryGetDouble(out var d) && double.IsFinite(d))) return "must be a finite number";
            return null;
        }
        if (t == typeof(JsonElement)) return null;
        if (IsDto(t)) return value.ValueKind == JsonValueKind.Object ? null : $"must be a JSON object (got {Kind(value)})";
        if (ElementType(t) is not null) return value.ValueKind == JsonValueKind.Array ? null : $"must be a JSON array (got {Kind(value)})";
        return null;
    }

    // a raw JSON value for a message, cut at 40 characters
    private static string Shorten(string raw) => raw.Length <= 40 ? raw : raw[..40] + "…";

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

/// <summary>A request body as <see cref="JsonBody.ReadAsync{T}"/> read it.</summary>
/// <param name="Value">The body bound from its fields that had no problem; null when it was refused whole (not JSON, not
/// an object, over the size limit, not UTF-8).</param>
/// <param name="Errors">Every problem found reading it, by JSON path (<c>$</c>: the whole body).</param>
/// <param name="Status">The answer's status when <paramref name="Value"/> is null: 400, 413 or 415.</param>
/// <param name="Unread">The top-level fields that had a problem (as sent and, for an alias, its field's name): left out
/// of <paramref name="Value"/>, so the route names nothing more about them, nor checks what depends on them.</param>
internal sealed record BodyRead<T>(T? Value, Dictionary<string, string[]> Errors, int Status, IReadOnlySet<string> Unread) where T : class
{
    /// <summary>The errors of one 400 for the body and the route's own checks of <see cref="Value"/>: the body's first, then
    /// the checks' (a field named by both gets both messages).</summary>
    public Dictionary<string, string[]> With(IReadOnlyDictionary<string, string[]> checks)
    {
        var all = new Dictionary<string, string[]>(Errors);
        foreach (var (field, messages) in checks)
            all[field] = all.TryGetValue(field, out var first) ? [.. first, .. messages] : messages;
        return all;
    }
}
