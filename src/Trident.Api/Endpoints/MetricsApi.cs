using OpenTelemetry.Metrics;

namespace Trident.Api.Endpoints;

/// <summary><c>GET /metrics</c>: OpenTelemetry's Prometheus exporter (text format 0.0.4, or OpenMetrics when the
/// scraper asks for it) over the server's instruments, every name prefixed <c>trident_</c> (TridentTelemetry).
/// Answers in every state: <c>trident_serving_state</c> says which (starting, ready, draining, failed), and the
/// server's own metrics follow once it is up.</summary>
public static class MetricsApi
{
    /// <summary>Maps the metrics route: a GET route whose handler runs the exporter's scraping middleware
    /// (rather than <c>MapPrometheusScrapingEndpoint</c>'s any-method endpoint), so other methods get 405 like
    /// on every route and the route is in the OpenAPI document.</summary>
    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder app)
    {
        var scrape = app.CreateApplicationBuilder().UseOpenTelemetryPrometheusScrapingEndpoint(_ => true).Build();
        // a Delegate, not a RequestDelegate: a route handler, which the OpenAPI document describes
        Func<HttpContext, Task> handler = http => scrape(http);
        app.MapGet("/metrics", (Delegate)handler)
            .Produces<string>(StatusCodes.Status200OK, "text/plain")
            .WithTags("Health").WithName("Metrics").WithSummary("Prometheus metrics")
            .WithDescription("The server's metrics in the Prometheus text format, written by OpenTelemetry's exporter: requests by outcome, " +
                             "deadlines met, stage, request and queue latencies, dispatch rounds and their planning time, re-placements, " +
                             "queue depth, stored jobs, SLO attainment, device utilisation and business, and the serving state.");
        return app;
    }
}
