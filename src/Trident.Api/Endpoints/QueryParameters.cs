// The query parameters a route takes: every /v1 GET route (and DELETE) names each one it does not take in a 400, as
// strict as the bodies are — a misspelt parameter (limt=5, jobs misspelt on the view's stream) would otherwise be
// ignored without a word. The event streams take `api_key` (ApiKeys: a browser's EventSource sets no headers); no
// other route does. /health, /ready and /metrics (probes and scrapers: they answer in every state), the OpenAPI
// document, /docs and the page at / do not check their query.

using Microsoft.AspNetCore.Http.HttpResults;

namespace Trident.Api.Endpoints;

/// <summary>The check of a route's query parameters.</summary>
internal static class QueryParameters
{
    /// <summary>Each query parameter of <paramref name="query"/> that is not one of <paramref name="known"/> (compared
    /// ordinally), named with the ones the route takes (<paramref name="what"/>: "this list", "this route"); empty when
    /// every one is known.</summary>
    public static Dictionary<string, string[]> Unknown(IQueryCollection query, string what, params string[] known)
    {
        var errors = new Dictionary<string, string[]>();
        foreach (var key in query.Keys.Where(k => !known.Contains(k, StringComparer.Ordinal)))
            errors[key] = [known.Length == 0 ? $"is not a parameter of {what}: it takes none" : $"is not a parameter of {what}; its parameters: {string.Join(", ", known)}"];
        return errors;
    }

    /// <summary>The 400 naming each query parameter of the request that is not one of <paramref name="known"/>, or null
    /// when there is none.</summary>
    public static ProblemHttpResult? Check(HttpContext http, params string[] known)
    {
        var errors = Unknown(http.Request.Query, "this route", known);
        if (errors.Count == 0) return null;
        return TypedResults.Problem(new HttpValidationProblemDetails(errors)
        {
            Status = StatusCodes.Status400BadRequest,
            Title = "Bad request",
            Detail = $"{http.Request.Method} {http.Request.Path} takes {(known.Length == 0 ? "no query parameters" : $"the query parameters {string.Join(", ", known)}")}; "
                     + $"got {string.Join(", ", errors.Keys.Select(k => $"'{k}'"))}",
        });
    }
}
