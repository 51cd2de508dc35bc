using Microsoft.AspNetCore.Http.HttpResults;
using Trident.Api.Hosting;

namespace Trident.Api.Endpoints;

/// <summary><c>GET /metrics</c>: Prometheus text format, every name prefixed <c>trident_</c>. Answers in every
/// state: <c>trident_serving_state</c> says which (starting, ready, draining, failed), and the server's own
/// metrics follow once it is up.</summary>
public static class MetricsApi
{
    /// <summary>Maps the metrics route.</summary>
    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", Scrape).WithTags("Health").WithName("Metrics").WithSummary("Prometheus metrics")
            .Produces(StatusCodes.Status200OK, contentType: "text/plain");
        return app;
    }

    private static ContentHttpResult Scrape(ServerHost host)
    {
        var ready = host.Ready;
        var state = host.ShuttingDown ? "draining" : ready is not null ? "ready" : host.Failure is not null ? "failed" : "starting";
        var text = new System.Text.StringBuilder()
            .Append("# HELP trident_serving_state 1 for the state the server is in.\n")
            .Append("# TYPE trident_serving_state gauge\n");
        foreach (var s in States) text.Append("trident_serving_state{state=\"").Append(s).Append("\"} ").Append(s == state ? '1' : '0').Append('\n');
        if (ready is not null) text.Append(ready.Exporter.Render());
        return TypedResults.Text(text.ToString(), "text/plain; version=0.0.4; charset=utf-8");
    }

    private static readonly string[] States = ["starting", "ready", "draining", "failed"];
}
