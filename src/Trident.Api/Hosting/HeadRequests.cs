// HEAD on the GET routes. RFC 9110 §9.3.2: a server answers HEAD as it answers GET, headers only; clients and
// infrastructure use it to check a resource without fetching it (`curl -I`, load balancers' health checks, a
// download manager asking a result's length and type). Minimal APIs map MapGet routes to GET alone, so every
// HEAD was a 405. The routes stay GET-only in their own code; a convention on the group that holds them adds
// HEAD to each GET route's methods, and Kestrel writes no body for a HEAD request (the headers, Content-Length
// and Content-Type included, are GET's). Event streams are left out: a HEAD on one would hold the connection
// open for a stream it never reads, so it stays a 405.

using Microsoft.AspNetCore.Http.Metadata;

namespace Trident.Api.Hosting;

/// <summary>Adds HEAD to the GET routes of a route group.</summary>
public static class HeadRequests
{
    /// <summary>The media type of a server-sent event stream, which no HEAD is added for.</summary>
    private const string EventStream = "text/event-stream";

    /// <summary>Every GET endpoint of <paramref name="builder"/> answers HEAD too, except event streams (routes that
    /// produce <c>text/event-stream</c>).</summary>
    public static TBuilder AnswerHeadAsGet<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder
    {
        // Finally: after each endpoint's own conventions, so its methods and its produced media types are known
        builder.Finally(endpoint =>
        {
            if (endpoint.Metadata.OfType<IHttpMethodMetadata>().LastOrDefault() is not { } methods
                || !methods.HttpMethods.Contains(HttpMethods.Get) || methods.HttpMethods.Contains(HttpMethods.Head))
                return;
            if (IsEventStream(endpoint.Metadata)) return;
            endpoint.Metadata.Add(new HttpMethodMetadata([.. methods.HttpMethods, HttpMethods.Head], methods.AcceptCorsPreflight));
        });
        return builder;
    }

    /// <summary>Whether an endpoint's metadata says it answers with an event stream.</summary>
    public static bool IsEventStream(IEnumerable<object> metadata) =>
        metadata.OfType<IProducesResponseTypeMetadata>().Any(p => p.ContentTypes.Contains(EventStream, StringComparer.OrdinalIgnoreCase));
}
