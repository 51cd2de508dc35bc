// The API's error answers, all ProblemDetails (RFC 9457): 404 for unknown jobs, 409 for a job in the wrong
// state, 413 for a body over Trident:Limits:MaxBodyBytes (415 for one of a media type the route does not take, or not in UTF-8), 429 (queue or store full) and 503 (starting, shutting down, no device left in a cluster) with Retry-After. A 429's Retry-After is
// the queue's predicted drain time (TridentServer.PredictedDrain); a 503 while shutting down says when the
// drain ends; while starting there is no queue to predict from, so it is a fixed 5 s poll interval. Every problem
// body carries a `type` and `trace_id` (Complete): the framework's own default is a W3C traceparent under `traceId`,
// and no type for the statuses it has no default for (413, 429), while the 202s, job statuses and OpenAI answers
// carry the trace id as 32 hex digits. The framework's writer completes them through CustomizeProblemDetails; where
// it declines (a client whose Accept names no JSON) AnyAcceptWriter writes them, completed the same way.

using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using Trident.Api.Hosting;
using Trident.Runtime.Serving;

namespace Trident.Api.Endpoints;

internal static class Problems
{
    public static ProblemHttpResult NotFound(long id) =>
        TypedResults.Problem($"no generation {id} (never accepted, deleted, or evicted after its retention time)", statusCode: StatusCodes.Status404NotFound, title: "Not found");

    public static ProblemHttpResult Conflict(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Conflict");

    public static ProblemHttpResult TooMany(HttpContext http, SubmitOutcome.Refused refused) =>
        WithRetryAfter(http, refused.RetryAfter, TypedResults.Problem(refused.Reason, statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests"));

    public static ProblemHttpResult NotReady(HttpContext http, ServerHost host) =>
        host.ShuttingDown ? ShuttingDown(http, host.Ready?.Server.DrainRetryAfter() ?? TimeSpan.FromSeconds(1))
        : host.Failure is { } failure
            ? TypedResults.Problem($"the serving runtime failed to start: {failure}", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Unavailable")
            : WithRetryAfter(http, StartingRetryAfter,
                TypedResults.Problem(host.StartingDetail is { } detail ? $"the serving runtime is starting: {detail}"
                    : "the serving runtime is starting (opening the pipeline, profiling this machine)", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Starting"));

    /// <summary>Retry-After while starting: a poll interval (there is no queue yet to predict from).</summary>
    public static readonly TimeSpan StartingRetryAfter = TimeSpan.FromSeconds(5);

    public static ProblemHttpResult ShuttingDown(HttpContext http, TimeSpan retryAfter) =>
        WithRetryAfter(http, retryAfter,
            TypedResults.Problem("the server is shutting down: it accepts no new work and finishes (or cancels) what it has", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Shutting down"));

    public static ProblemHttpResult Stopping(HttpContext http, SubmitOutcome.Stopping stopping) => ShuttingDown(http, stopping.RetryAfter);

    /// <summary>503 + Retry-After while no device is in the cluster (every worker left), naming the reason.</summary>
    public static ProblemHttpResult NoDevice(HttpContext http, string reason) =>
        WithRetryAfter(http, TridentServer.NoDeviceRetryAfter,
            TypedResults.Problem(reason, statusCode: StatusCodes.Status503ServiceUnavailable, title: "No device"));

    public static ProblemHttpResult Unavailable(HttpContext http, SubmitOutcome.Unavailable unavailable) => NoDevice(http, unavailable.Reason);

    /// <summary>A body refused before its fields are read: 413 (over Trident:Limits:MaxBodyBytes) or 415 (a
    /// charset other than UTF-8); <paramref name="errors"/> names <c>$</c>, the whole body.</summary>
    public static ProblemHttpResult Body(int status, Dictionary<string, string[]> errors) =>
        TypedResults.Problem(new HttpValidationProblemDetails(errors)
        {
            Status = status,
            Title = status == StatusCodes.Status413PayloadTooLarge ? "Request body too large" : UnsupportedTitle,
            Detail = string.Join("; ", errors.Values.SelectMany(m => m)),
        });

    public static ProblemHttpResult Failed(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status500InternalServerError, title: "Generation failed");

    /// <summary>The body of an error answer no route wrote (404 unknown path, 405 wrong method, 415 a body of a media
    /// type the route does not take: naming `$`, the whole body, and the types it takes): a problem+json whatever the
    /// request's Accept header says (the framework's default falls back to text/plain when a client does not accept JSON).</summary>
    public static async Task WriteStatusPage(StatusCodeContext context)
    {
        var http = context.HttpContext;
        var status = http.Response.StatusCode;
        var request = $"{http.Request.Method} {http.Request.Path}";
        var hint = status == StatusCodes.Status415UnsupportedMediaType ? await FormLooksLikeJson(http) : null;
        var detail = status switch
        {
            StatusCodes.Status404NotFound => NotAJobId(http.Request.Path) is { } id
                // the id routes match plain digits in a long's range only; a client who sent 'abc', '-1' or a 20-digit id
                // should learn that it is the id, not the route, that is wrong
                ? $"no route matches {request}: '{id}' is not a generation id (ids are non-negative whole numbers in plain digits, at most {long.MaxValue}, as POST /v1/generations answers them)"
                : $"no route matches {request} (every route is listed in /openapi/v1.json)",
            StatusCodes.Status405MethodNotAllowed => $"{request}: the method is not allowed on this route"
                + (http.Response.Headers.Allow is { Count: > 0 } allow ? $" (allowed: {allow})" : ""),
            StatusCodes.Status415UnsupportedMediaType => $"{request}: the body must be {Accepted(http)} (Content-Type: '{http.Request.ContentType}'){hint}",
            _ => null,
        };
        // a 415 names the whole body, `$`, as the routes' own 413 and charset 415 do (Body), with their title
        var problem = status == StatusCodes.Status415UnsupportedMediaType
            ? new HttpValidationProblemDetails(new Dictionary<string, string[]> { ["$"] = [detail!] }) { Status = status, Title = UnsupportedTitle, Detail = detail }
            : new ProblemDetails { Status = status, Title = TitleOf(status), Detail = detail };
        Complete(problem, http);
        await http.Response.WriteAsJsonAsync(problem, problem.GetType(), (System.Text.Json.JsonSerializerOptions?)null, "application/problem+json", http.RequestAborted);
    }

    /// <summary>How to send a JSON body that came as a form: what the 415 of a form-encoded body whose text starts like
    /// a JSON object or array (<c>{</c> or <c>[</c> after white space) adds to what the route takes; null for any other
    /// body. <c>curl -d</c> sends application/x-www-form-urlencoded unless told otherwise, so this is a newcomer's first
    /// request. Only the body's first bytes are read (at most <see cref="JsonPeekBytes"/>), for at most a second.</summary>
    private static async Task<string?> FormLooksLikeJson(HttpContext http)
    {
        if (!MediaTypeHeaderValue.TryParse(http.Request.ContentType, out var type)
            || !type.MediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase)) return null;
        var buffer = new byte[JsonPeekBytes];
        var read = 0;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
            timeout.CancelAfter(TimeSpan.FromSeconds(1));
            int n;
            while (read < buffer.Length && (n = await http.Request.Body.ReadAsync(buffer.AsMemory(read), timeout.Token)) > 0) read += n;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or BadHttpRequestException)
        {
            // what was read so far is judged (none: no hint)
        }
        var text = buffer.AsSpan(0, read).TrimStart(" \t\r\n"u8);
        return text.Length > 0 && text[0] is (byte)'{' or (byte)'['
            ? "; the body looks like JSON: send Content-Type: application/json (curl -d sends application/x-www-form-urlencoded unless given -H 'Content-Type: application/json')"
            : null;
    }

    /// <summary>The most bytes of a body <see cref="FormLooksLikeJson"/> reads.</summary>
    private const int JsonPeekBytes = 64;

    /// <summary>The title of a problem of <paramref name="status"/> that no route names: its reason phrase in sentence case,
    /// as the routes write theirs ("Not found", "Method not allowed"; an unknown path answered "Not Found" and an unknown
    /// job "Not found").</summary>
    public static string TitleOf(int status) =>
        ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase[..1] + phrase[1..].ToLowerInvariant() : "Error";

    /// <summary>The title of every 415.</summary>
    public const string UnsupportedTitle = "Unsupported media type";

    /// <summary>The media types the request's route takes, in words ("application/json (or a +json type), in UTF-8"): the
    /// Accepts of the body routes at the request's path and method. Routing answered the 415 through an endpoint of its
    /// own, which carries none, so they are looked up among the application's endpoints (the body routes have literal
    /// paths); JSON when none is found.</summary>
    private static string Accepted(HttpContext http)
    {
        var path = (http.Request.Path.Value ?? "").TrimEnd('/');
        var types = http.RequestServices.GetService<Microsoft.AspNetCore.Routing.EndpointDataSource>()?.Endpoints
            .OfType<Microsoft.AspNetCore.Routing.RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.IHttpMethodMetadata>()?.HttpMethods.Contains(http.Request.Method, StringComparer.OrdinalIgnoreCase) == true
                        && e.RoutePattern.PathSegments.All(segment => segment.IsSimple && segment.Parts[0].IsLiteral)
                        && string.Equals("/" + string.Join("/", e.RoutePattern.PathSegments.Select(segment => ((Microsoft.AspNetCore.Routing.Patterns.RoutePatternLiteralPart)segment.Parts[0]).Content)),
                            path, StringComparison.OrdinalIgnoreCase))
            .SelectMany(e => e.Metadata.GetMetadata<IAcceptsMetadata>()?.ContentTypes ?? [])
            .Distinct(StringComparer.OrdinalIgnoreCase).ToList() ?? [];
        if (types.Count == 0) types.Add("application/json");
        var names = types.Select(t => t == "application/json" ? "application/json (or a +json type)" : t).ToList();
        var list = names.Count == 1 ? names[0] : $"{string.Join(", ", names.Take(names.Count - 1))} or {names[^1]}";
        return $"{list}, in UTF-8";
    }

    private static readonly System.Text.RegularExpressions.Regex JobPath = new("^/v1/generations/(?<id>[^/]+)(/result|/events)?/?$");

    /// <summary>The id segment of a <c>/v1/generations/{id}</c> path (or its <c>/result</c>, <c>/events</c>) that no id
    /// route matched, or null for any other path.</summary>
    private static string? NotAJobId(PathString path) =>
        path.Value is { } p && JobPath.Match(p) is { Success: true } m ? m.Groups["id"].Value : null;

    /// <summary>The name of the trace id every problem body carries (<see cref="Complete"/>; the OpenAPI document's problem
    /// schemas name it too).</summary>
    public const string TraceIdProperty = "trace_id";

    /// <summary>What every problem body carries, whoever wrote it (the routes, the framework's validation and
    /// exception handling through ProblemDetailsOptions.CustomizeProblemDetails, the status pages): <c>trace_id</c>,
    /// the request's W3C trace id as 32 hex digits — the form of the 202s, the job statuses and the OpenAI answers,
    /// in place of the framework's <c>traceId</c> traceparent ("00-…-…-01") — and a <c>type</c> (RFC 9457: the
    /// status's section of its RFC, as the framework gives the statuses it knows).</summary>
    public static void Complete(ProblemDetails problem, HttpContext http)
    {
        problem.Extensions.Remove("traceId");
        if (TraceId(http) is { } trace) problem.Extensions[TraceIdProperty] = trace;
        problem.Type ??= TypeOf(problem.Status ?? http.Response.StatusCode);
    }

    /// <summary>The request's W3C trace id (32 hex digits): its span's, which the job a request submits is traced
    /// under (null without one: the tracer always records them, so only in a host without it).</summary>
    public static string? TraceId(HttpContext http) =>
        (http.Features.Get<IHttpActivityFeature>()?.Activity ?? Activity.Current) is { IdFormat: ActivityIdFormat.W3C } activity
            ? activity.TraceId.ToHexString()
            : null;

    /// <summary>The problem type of a status: the URI of its section (RFC 9110; 429: RFC 6585), the framework's
    /// own for the statuses it has defaults for; about:blank (RFC 9457's default) for any other.</summary>
    public static string TypeOf(int status) => status switch
    {
        StatusCodes.Status429TooManyRequests => "https://tools.ietf.org/html/rfc6585#section-4",
        _ when Rfc9110Sections.TryGetValue(status, out var section) => $"https://tools.ietf.org/html/rfc9110#section-{section}",
        _ => "about:blank",
    };

    // the statuses this server answers with a problem, and their sections of RFC 9110
    private static readonly Dictionary<int, string> Rfc9110Sections = new()
    {
        [400] = "15.5.1", [404] = "15.5.5", [405] = "15.5.6", [409] = "15.5.10", [413] = "15.5.14", [415] = "15.5.16",
        [500] = "15.6.1", [503] = "15.6.4",
    };

    /// <summary>The problem writer after the framework's: it writes what that one declines — a problem for a client
    /// whose Accept header names no JSON, which the results would otherwise write themselves, uncompleted (no
    /// trace_id; no type on a 413 or 429) — completed like the others and as problem+json.</summary>
    internal sealed class AnyAcceptWriter(Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json) : IProblemDetailsWriter
    {
        public bool CanWrite(ProblemDetailsContext context) => true;

        public ValueTask WriteAsync(ProblemDetailsContext context)
        {
            var http = context.HttpContext;
            Complete(context.ProblemDetails, http);
            return new ValueTask(http.Response.WriteAsJsonAsync(context.ProblemDetails, context.ProblemDetails.GetType(),
                json.Value.SerializerOptions, "application/problem+json", http.RequestAborted));
        }
    }

    private static ProblemHttpResult WithRetryAfter(HttpContext http, TimeSpan after, ProblemHttpResult problem)
    {
        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        return problem;
    }
}
