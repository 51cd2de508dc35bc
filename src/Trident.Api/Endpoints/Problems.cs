// The API's error answers, all ProblemDetails (RFC 9457): 404 for unknown jobs, 409 for a job in the wrong
// state, 429 (queue or store full) and 503 (starting, shutting down) with Retry-After. A 429's Retry-After is
// the queue's predicted drain time (TridentServer.PredictedDrain); a 503 while shutting down says when the
// drain ends; while starting there is no queue to predict from, so it is a fixed 5 s poll interval.

using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Trident.Api.Hosting;
using Trident.Runtime.Serving;

namespace Trident.Api.Endpoints;

internal static class Problems
{
    public static ProblemHttpResult NotFound(long id) =>
        TypedResults.Problem($"no generation {id} (never accepted, or evicted after its retention time)", statusCode: StatusCodes.Status404NotFound, title: "Not found");

    public static ProblemHttpResult Conflict(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Conflict");

    public static ProblemHttpResult TooMany(HttpContext http, SubmitOutcome.Refused refused) =>
        WithRetryAfter(http, refused.RetryAfter, TypedResults.Problem(refused.Reason, statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests"));

    public static ProblemHttpResult NotReady(HttpContext http, ServerHost host) =>
        host.ShuttingDown ? ShuttingDown(http, host.Ready?.Server.DrainRetryAfter() ?? TimeSpan.FromSeconds(1))
        : host.Failure is { } failure
            ? TypedResults.Problem($"the serving runtime failed to start: {failure}", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Unavailable")
            : WithRetryAfter(http, StartingRetryAfter,
                TypedResults.Problem("the serving runtime is starting (opening the pipeline, profiling this machine)", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Starting"));

    /// <summary>Retry-After while starting: a poll interval (there is no queue yet to predict from).</summary>
    public static readonly TimeSpan StartingRetryAfter = TimeSpan.FromSeconds(5);

    public static ProblemHttpResult ShuttingDown(HttpContext http, TimeSpan retryAfter) =>
        WithRetryAfter(http, retryAfter,
            TypedResults.Problem("the server is shutting down: it accepts no new work and finishes (or cancels) what it has", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Shutting down"));

    public static ProblemHttpResult Stopping(HttpContext http, SubmitOutcome.Stopping stopping) => ShuttingDown(http, stopping.RetryAfter);

    public static ProblemHttpResult Failed(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status500InternalServerError, title: "Generation failed");

    private static ProblemHttpResult WithRetryAfter(HttpContext http, TimeSpan after, ProblemHttpResult problem)
    {
        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        return problem;
    }
}
