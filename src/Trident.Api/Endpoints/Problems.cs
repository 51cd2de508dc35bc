// The API's error answers, all ProblemDetails (RFC 9457): 404 for unknown jobs, 409 for a job in the wrong
// state, 429 (queue or store full) and 503 (still starting) with Retry-After.

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

    public static ProblemHttpResult NotReady(HttpContext http, ServerHost host) => host.Failure is { } failure
        ? TypedResults.Problem($"the serving runtime failed to start: {failure}", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Unavailable")
        : WithRetryAfter(http, TimeSpan.FromSeconds(5),
            TypedResults.Problem("the serving runtime is starting (opening the pipeline, profiling this machine)", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Starting"));

    public static ProblemHttpResult Failed(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status500InternalServerError, title: "Generation failed");

    private static ProblemHttpResult WithRetryAfter(HttpContext http, TimeSpan after, ProblemHttpResult problem)
    {
        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        return problem;
    }
}
