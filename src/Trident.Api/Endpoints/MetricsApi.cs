using Microsoft.AspNetCore.Http.HttpResults;
using Trident.Api.Hosting;

namespace Trident.Api.Endpoints;

/// <summary><c>GET /metrics</c>: Prometheus text format, every name prefixed <c>trident_</c>.</summary>
public static class MetricsApi
{
    /// <summary>Maps the metrics route.</summary>
    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", Scrape).WithTags("Health").WithName("Metrics").WithSummary("Prometheus metrics")
            .Produces(StatusCodes.Status200OK, contentType: "text/plain");
        return app;
    }

    private static Results<ContentHttpResult, ProblemHttpResult> Scrape(HttpContext http, ServerHost host) =>
        host.Ready is { } ready
            ? TypedResults.Text(ready.Exporter.Render(), "text/plain; version=0.0.4; charset=utf-8")
            : Problems.NotReady(http, host);
}
