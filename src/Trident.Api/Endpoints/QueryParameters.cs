// The query parameters a route takes: every /v1 route (GET, DELETE and POST) names each one it does not take in a 400,
// as strict as the bodies are — a misspelt parameter (limt=5, jobs misspelt on the view's stream) would otherwise be
// ignored without a word — and each one given more than once (limit=5&limit=6, which the binding joined into '5,6'),
// as a key given twice in a body is. The POST routes take none (their fields are the body's): a query parameter there (a client
// sending ?model=… or ?stream=true instead of in the body) is a 400 before the body is read, and nothing is queued. The event streams take `api_key` (ApiKeys: a browser's EventSource sets no headers); no
// other route does. /health, /ready and /metrics (probes and scrapers: they answer in every state), the OpenAPI
// document, /docs and the page at / do not check their query.
//
// The check is an endpoint filter that a convention on the group holding every route (CheckQueryParameters, in
// Program.cs) puts on each /v1 GET, DELETE and POST endpoint, so a route added later is checked without a line of its own
// (before, each of 14 handlers called the check by hand). What a route takes is read from its handler: each parameter
// bound from the query (FromQuery, or a string or parsable value that is not a route parameter, as minimal APIs bind
// it), and api_key on an event stream. The endpoint carries the list as metadata (QueryParametersMetadata), and its
// OpenAPI 400 is the validation problem the filter writes.

using System.Reflection;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing.Patterns;
using Trident.Api.Hosting;

namespace Trident.Api.Endpoints;

/// <summary>The query parameters an endpoint takes (in its handler's order); any other is a 400 naming it.</summary>
/// <param name="Names">The parameters' names.</param>
public sealed record QueryParametersMetadata(IReadOnlyList<string> Names);

/// <summary>The check of a route's query parameters.</summary>
internal static class QueryParameters
{
    /// <summary>Each query parameter of <paramref name="query"/> that is not one of <paramref name="known"/> (compared
    /// ordinally), named with the ones the route takes; empty when every one is known.</summary>
    public static Dictionary<string, string[]> Unknown(IQueryCollection query, IReadOnlyList<string> known)
    {
        var errors = new Dictionary<string, string[]>();
        foreach (var key in query.Keys.Where(k => !known.Contains(k, StringComparer.Ordinal)))
            errors[key] = [known.Count == 0 ? "is not a parameter of this route: it takes none" : $"is not a parameter of this route; its parameters: {string.Join(", ", known)}"];
        return errors;
    }

    /// <summary>Each query parameter of <paramref name="query"/> that is one of <paramref name="known"/> and is given more
    /// than once (<c>limit=5&amp;limit=6</c>), named with the values given; empty when none is. The binding joined them
    /// with commas ("got '5,6'" read as one malformed value), and which one was meant is not the server's to guess: a
    /// parameter is given once, as a key of a body is.</summary>
    public static Dictionary<string, string[]> Repeated(IQueryCollection query, IReadOnlyList<string> known)
    {
        var errors = new Dictionary<string, string[]>();
        foreach (var (key, values) in query.Where(p => p.Value.Count > 1 && known.Contains(p.Key, StringComparer.Ordinal)))
            errors[key] = [$"is given more than once (a parameter may appear once; got {string.Join(", ", values.Select(v => $"'{v}'"))})"];
        return errors;
    }

    /// <summary>The 400 naming each query parameter of the request that is not one of <paramref name="known"/>, and each
    /// one given more than once, or null when there is none: what the filter answers.</summary>
    private static ProblemHttpResult? Check(HttpContext http, params string[] known)
    {
        var unknown = Unknown(http.Request.Query, known);
        var repeated = Repeated(http.Request.Query, known);
        if (unknown.Count == 0 && repeated.Count == 0) return null;
        var request = $"{http.Request.Method} {http.Request.Path}";
        var once = $"a query parameter may be given once; got {string.Join(", ", repeated.Keys.Select(k => $"'{k}'"))} more than once";
        var detail = unknown.Count > 0
            ? $"{request} takes {known.Length switch { 0 => "no query parameters", 1 => $"the query parameter {known[0]}", _ => $"the query parameters {string.Join(", ", known)}" }}; "
              + $"got {string.Join(", ", unknown.Keys.Select(k => $"'{k}'"))}{(repeated.Count > 0 ? $"; {once}" : "")}"
            : $"{request}: {once}";
        return TypedResults.Problem(new HttpValidationProblemDetails(unknown.Concat(repeated).ToDictionary())
        {
            Status = StatusCodes.Status400BadRequest,
            Title = "Bad request",
            Detail = detail,
        });
    }

    /// <summary>Every /v1 GET, DELETE and POST endpoint of <paramref name="builder"/> answers a query parameter its handler does
    /// not take with a 400 naming it (an endpoint filter, run before the handler), carries the parameters it takes as
    /// <see cref="QueryParametersMetadata"/>, and documents its 400 as the validation problem the filter writes.</summary>
    public static TBuilder CheckQueryParameters<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder
    {
        // a group convention runs before the endpoint's request delegate is built, so the filter is part of it; the
        // factory runs when it is built, once the handler's own metadata (an event stream's media type) is known
        builder.Add(endpoint =>
        {
            if (!Checked(endpoint)) return;
            endpoint.FilterFactories.Add((context, next) =>
            {
                var known = Taken(endpoint).ToArray();
                return invocation => Check(invocation.HttpContext, known) is { } problem ? ValueTask.FromResult<object?>(problem) : next(invocation);
            });
        });
        // after the endpoint's own conventions: its metadata is complete, and its 400 is the filter's whatever it declared
        builder.Finally(endpoint =>
        {
            if (!Checked(endpoint)) return;
            endpoint.Metadata.Add(new QueryParametersMetadata(Taken(endpoint)));
            foreach (var declared in endpoint.Metadata.OfType<IProducesResponseTypeMetadata>().Where(m => m.StatusCode == StatusCodes.Status400BadRequest).ToList())
                endpoint.Metadata.Remove(declared);
            endpoint.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status400BadRequest, typeof(HttpValidationProblemDetails), ["application/problem+json"]));
        });
        return builder;
    }

    // a /v1 route answering GET, DELETE or POST
    private static bool Checked(EndpointBuilder endpoint) =>
        endpoint is RouteEndpointBuilder { RoutePattern.RawText: { } pattern } && pattern.StartsWith("/v1/", StringComparison.Ordinal)
        && endpoint.Metadata.OfType<IHttpMethodMetadata>().LastOrDefault()?.HttpMethods is { } methods
        && methods.Any(m => HttpMethods.IsGet(m) || HttpMethods.IsDelete(m) || HttpMethods.IsPost(m));

    /// <summary>The query parameters an endpoint's handler takes, in its order (as minimal APIs bind them: a parameter
    /// marked FromQuery, or a string or parsable value that is neither a route parameter nor marked for another source),
    /// then <c>api_key</c> on an event stream.</summary>
    private static List<string> Taken(EndpointBuilder endpoint)
    {
        var names = new List<string>();
        var route = ((RouteEndpointBuilder)endpoint).RoutePattern.Parameters.Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var parameter in endpoint.Metadata.OfType<MethodInfo>().FirstOrDefault()?.GetParameters() ?? [])
        {
            var attributes = parameter.GetCustomAttributes().ToArray();
            if (attributes.OfType<IFromQueryMetadata>().FirstOrDefault() is { } query) names.Add(query.Name ?? parameter.Name!);
            else if (!attributes.Any(a => a is IFromRouteMetadata or IFromBodyMetadata or IFromServiceMetadata or IFromHeaderMetadata or IFromFormMetadata or AsParametersAttribute)
                     && !route.Contains(parameter.Name!) && BindsFromText(parameter.ParameterType))
                names.Add(parameter.Name!);
        }
        if (HeadRequests.IsEventStream(endpoint.Metadata)) names.Add(ApiKeys.QueryParameter);
        return names;
    }

    // a type minimal APIs bind from a query string's text: string, or a value type with Parse (int, long, an enum, …)
    private static bool BindsFromText(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        return t == typeof(string) || t.IsEnum
               || t.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IParsable<>));
    }
}
