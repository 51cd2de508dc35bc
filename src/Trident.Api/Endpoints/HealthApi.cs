using Microsoft.AspNetCore.Http.HttpResults;
using Trident.Api.Contracts;
using Trident.Api.Hosting;

namespace Trident.Api.Endpoints;

/// <summary><c>/health</c> (the process is live: 200 in every state) and <c>/ready</c> (the serving runtime is
/// up and accepting work: 503 with Retry-After while starting, after a failed start, while shutting down, and on a
/// coordinator while no device is in the cluster — every worker left —, naming the reason).</summary>
public static class HealthApi
{
    /// <summary>Maps the health routes.</summary>
    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("").WithTags("Health");
        group.MapGet("/health", Live).WithName("Health").WithSummary("Liveness");
        group.MapGet("/ready", Ready).WithName("Ready").WithSummary("Readiness: 503 while starting, after a failed start, while shutting down, and while no device is in the cluster")
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    private static Ok<HealthDto> Live(ServerHost host) =>
        TypedResults.Ok(new HealthDto("live", host.Ready?.Manifest.Name, host.Ready?.ProfileOrigin, Uptime(host)));

    private static Results<Ok<HealthDto>, ProblemHttpResult> Ready(HttpContext http, ServerHost host) =>
        host.Ready is not { } ready || host.ShuttingDown ? Problems.NotReady(http, host)
        : ready.Server.NoDevice is { } none ? Problems.NoDevice(http, none)
        : TypedResults.Ok(new HealthDto("ready", ready.Manifest.Name, ready.ProfileOrigin, Uptime(host)));

    private static double Uptime(ServerHost host) => Math.Round(host.Uptime.TotalSeconds, 3);
}
