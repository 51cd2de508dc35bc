using System.Text.Json;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace Trident.Api.Endpoints;

/// <summary>Reads a JSON body so that a malformed one becomes a validation problem naming the field.</summary>
internal static class JsonBody
{
    public static async Task<(T? Value, Dictionary<string, string[]> Errors)> ReadAsync<T>(HttpContext http) where T : class
    {
        var errors = new Dictionary<string, string[]>();
        var options = http.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        try
        {
            var value = await JsonSerializer.DeserializeAsync<T>(http.Request.Body, options, http.RequestAborted);
            if (value is null) errors["$"] = ["a JSON object is required"];
            return (value, errors);
        }
        catch (JsonException ex)
        {
            var path = ex.Path is { Length: > 2 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : "$";
            errors[path] = [path == "$" ? "the body is not a JSON object" : "has the wrong type or is malformed"];
            return (null, errors);
        }
    }
}
