// /v1/generations: asynchronous generation jobs. POST queues a job — or, with num_images > 1, one job per image
// (seeds seed, seed + 1, …), all or none, batched together when batching is on — (202, or 400 naming every bad field,
// or 429 with Retry-After when the queue is full, or 503 while starting or shutting down); GET reports its
// status, timings (of the stages that ran), deadline and the route and plan that served it; /result returns
// the file (png, jpeg or webp for an image; mp4, webm or animated webp for a video; its Content-Type says
// which); DELETE cancels — 200 when the job is cancelled at once
// (no stage started), 202 when it stops at its next step boundary; either way it ends `cancelled` and no
// result is ever served (Job's cancel rule), and a job already over is a 409; /events streams its state
// changes and per-step progress as server-sent events, ending with the final state. While the server
// shuts down the job routes keep answering, so clients can follow their jobs to the end.

using System.Globalization;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Pipelines.Tokenizers;
using Trident.Runtime.Serving;

namespace Trident.Api.Endpoints;

/// <summary>The generation routes.</summary>
public static class GenerationsApi
{
    /// <summary>Maps <c>/v1/generations</c>.</summary>
    public static IEndpointRouteBuilder MapGenerations(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/generations").WithTags("Generations");
        group.MapPost("", Create).Accepts<GenerationRequestDto>("application/json").WithName("CreateGeneration")
            .WithSummary("Queue a generation job")
            .WithDescription("Accepts a job (202) after checking every field against the limits and the cost model's prediction; the job is durable before the answer. 400 names every bad field.")
            .ProducesValidationProblem(StatusCodes.Status413PayloadTooLarge).ProducesValidationProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status429TooManyRequests).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("", List).WithName("ListGenerations").WithSummary("The jobs held (images and videos), a page at a time")
            .WithDescription("after (the previous page's last_id), limit 0–100 (default 20), order desc (newest first, the default) or asc, and " +
                             "status: a comma-separated list of statuses to keep. A job is listed until its retention time after it finished. " +
                             "400 names a bad parameter.")
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/{id:long:regex(^[0-9]+$)}", Get).WithName("GetGeneration").WithSummary("Status, timings, deadline and route of a job")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/{id:long:regex(^[0-9]+$)}/result", Result).WithName("GetGenerationResult").WithSummary("The result file (image or video)")
            .Produces<byte[]>(StatusCodes.Status200OK, "image/png", "image/jpeg", "image/webp", "video/mp4", "video/webm")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapDelete("/{id:long:regex(^[0-9]+$)}", Cancel).WithName("CancelGeneration").WithSummary("Cancel a job")
            .WithDescription("200: cancelled at once (no stage had started); 202: it stops at its next step boundary. Either way it ends cancelled and no result is served; 409 when it is already over.")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/{id:long:regex(^[0-9]+$)}/events", Events).WithName("GenerationEvents").WithSummary("Server-sent events: state changes and step progress")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    private static async Task<Results<Accepted<GenerationAcceptedDto>, ValidationProblem, ProblemHttpResult>> Create(
        HttpContext http, ServerHost host, IOptions<TridentOptions> options)
    {
        if (host.Ready is not { } ready || host.ShuttingDown) return Problems.NotReady(http, host);
        var body = await JsonBody.ReadAsync<GenerationRequestDto>(http, aliases: GenerationRequests.GenerationAliases);
        if (body.Value is not { } dto) return body.Status == StatusCodes.Status400BadRequest ? TypedResults.ValidationProblem(body.Errors) : Problems.Body(body.Status, body.Errors);
        var (submission, errors) = GenerationRequests.Validate(dto, ready, options.Value.Limits, body.Unread);
        if (submission is null || body.Errors.Count > 0) return TypedResults.ValidationProblem(body.With(errors));
        switch (ready.Server.SubmitAll(submission.Inputs, submission.DeadlineSeconds, submission.Priority))
        {
            case SubmitOutcome.AcceptedAll accepted:
                var first = accepted.Jobs[0];
                var id = Id(first);
                var status = $"/v1/generations/{id}";
                var images = accepted.Jobs.Select(j => new GenerationImageJobDto(Id(j), (long)j.Input.Seed, $"/v1/generations/{Id(j)}", $"/v1/generations/{Id(j)}/result")).ToArray();
                return TypedResults.Accepted(status, new GenerationAcceptedDto(id, "queued", status, status + "/events", status + "/result",
                    (long)first.Input.Seed, submission.Estimate.Seconds, submission.Estimate.ActivationGb, Deadline(first, first.View()),
                    Priority(first), first.Trace.TraceId, images));
            case SubmitOutcome.Refused refused:
                return Problems.TooMany(http, refused);
            case SubmitOutcome.Stopping stopping:
                return Problems.Stopping(http, stopping);
            case SubmitOutcome.Unavailable unavailable:
                return Problems.Unavailable(http, unavailable);
            default:
                throw new InvalidOperationException("unknown submission outcome");
        }
    }

    private static Results<Ok<JobListDto<GenerationStatusDto>>, ValidationProblem, ProblemHttpResult> List(string? after, string? limit,
        string? order, string? status, HttpContext http, ServerHost host)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        var (query, errors) = JobListQuery.Parse(after, limit, order, "");
        var statuses = Enum.GetValues<JobStatus>().ToDictionary(Name);
        var kept = new HashSet<JobStatus>();
        var unknown = new List<string>();
        foreach (var name in status?.Split(',') ?? [])
            if (statuses.TryGetValue(name.Trim(), out var s)) kept.Add(s);
            else unknown.Add($"'{name.Trim()}'");
        if (unknown.Count > 0)
            errors["status"] = [$"{string.Join(", ", unknown)} {(unknown.Count == 1 ? "is not a status" : "are not statuses")}; statuses: {string.Join(", ", statuses.Keys)}"];
        if (query is null || errors.Count > 0) return TypedResults.ValidationProblem(errors);
        return TypedResults.Ok(query.Page(ready.Server.Store, job => kept.Count == 0 || kept.Contains(job.Status), job => Status(job, ready), Id));
    }

    private static Results<Ok<GenerationStatusDto>, ProblemHttpResult> Get(long id, HttpContext http, ServerHost host)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        if (ready.Server.Find(RequestId.NewRequestId(id)) is not { } job) return Problems.NotFound(id);
        return TypedResults.Ok(Status(job, ready));
    }

    private static Results<FileContentHttpResult, ProblemHttpResult> Result(long id, HttpContext http, ServerHost host)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        if (ready.Server.Find(RequestId.NewRequestId(id)) is not { } job) return Problems.NotFound(id);
        var view = job.View();
        if (job.Result is { } result) return TypedResults.File(result.File, result.MediaType);
        return view.Status switch
        {
            JobStatus.Failed => Problems.Conflict($"generation {id} failed: {view.Error}"),
            JobStatus.Cancelled => Problems.Conflict($"generation {id} was cancelled"),
            _ => Problems.Conflict($"generation {id} is {Name(view.Status)}; its result is not ready"),
        };
    }

    private static Results<Ok<GenerationStatusDto>, Accepted<GenerationStatusDto>, ProblemHttpResult> Cancel(long id, HttpContext http, ServerHost host)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        if (ready.Server.Find(RequestId.NewRequestId(id)) is not { } job) return Problems.NotFound(id);
        if (!ready.Server.Cancel(job, $"cancelled by DELETE /v1/generations/{id}")) return Problems.Conflict($"generation {id} {Over(job.Status)}");
        var status = Status(job, ready);
        // cancelled at once, or stopping at its next step boundary: either way it ends cancelled
        return job.Status == JobStatus.Cancelled
            ? TypedResults.Ok(status)
            : TypedResults.Accepted($"/v1/generations/{id}", status);
    }

    private static Results<ServerSentEventsResult<GenerationEventDto>, ProblemHttpResult> Events(long id, HttpContext http, ServerHost host)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        if (ready.Server.Find(RequestId.NewRequestId(id)) is not { } job) return Problems.NotFound(id);
        return TypedResults.ServerSentEvents(Stream(job, http.RequestAborted));
    }

    private static async IAsyncEnumerable<SseItem<GenerationEventDto>> Stream(Job job, [EnumeratorCancellation] CancellationToken ct)
    {
        var reader = job.Subscribe();
        try
        {
            await foreach (var e in reader.ReadAllAsync(ct))
                yield return new SseItem<GenerationEventDto>(
                    new GenerationEventDto(Id(job), e.Sequence, Name(e.Status), e.Step, e.TotalSteps, e.Error),
                    EventName(e.Kind))
                {
                    EventId = e.Sequence.ToString(CultureInfo.InvariantCulture),
                };
        }
        finally
        {
            job.Unsubscribe(reader);
        }
    }

    /// <summary>The SSE event type of a job event: <c>state</c>, <c>progress</c>, or <c>suspended</c> / <c>resumed</c>
    /// (step-boundary preemption; the data's step is the steps done).</summary>
    public static string EventName(JobEventKind kind) => kind switch
    {
        JobEventKind.State => "state",
        JobEventKind.Progress => "progress",
        JobEventKind.Suspended => "suspended",
        _ => "resumed",
    };

    /// <summary>A job's wire id.</summary>
    public static string Id(Job job) => job.Id.Value.ToString(CultureInfo.InvariantCulture);

    /// <summary>How a job that is over ended, as a 409 says it ("has already succeeded").</summary>
    private static string Over(JobStatus s) => s switch
    {
        JobStatus.Cancelled => "has already been cancelled",
        _ => $"has already {Name(s)}",
    };

    /// <summary>A status's wire name.</summary>
    public static string Name(JobStatus s) => s.ToString().ToLowerInvariant();

    /// <summary>The wire view of a job.</summary>
    public static GenerationStatusDto Status(Job job, ReadyServer ready)
    {
        var server = ready.Server;
        var v = job.View();
        var arrival = v.Arrival;
        double? Ms(double? t) => t is { } x ? Math.Round((x - arrival) * 1000, 1) : null;
        StageTimingDto Stage(StageTiming t) => new(Ms(t.Start), Ms(t.Finish), t.Seconds is { } s ? Math.Round(s * 1000, 1) : null);
        var route = v.Route is { } r
            ? new RouteDto(r.Round, r.Source, r.Dispatch.Degree, r.Dispatch.Vr.ToString(),
                r.Dispatch.Encode.Devices.IsEmpty ? null : r.Dispatch.Encode.Devices.Head.Value,
                r.Dispatch.Diffuse.Devices.Select(d => d.Value).ToArray(), r.Dispatch.Decode.Devices.Head.Value,
                Math.Round((r.Dispatch.Decode.Finish - arrival) * 1000, 1), r.Dispatch.OnTime)
            : null;
        var id = Id(job);
        return new GenerationStatusDto(
            id,
            Name(v.Status),
            v.CreatedAt,
            server.QueuePosition(job),
            v.Step,
            v.Input.Steps,
            v.Input.Width,
            v.Input.Height,
            v.Input.Frames,
            (long)v.Input.Seed,
            Usage(ready, v.Input.Prompt),
            v.Input.NegativePrompt is { } negative ? Usage(ready, negative) : null,
            new TimingsDto(Stage(Queued(v)), Stage(v.Encode), Stage(v.Diffuse), Stage(v.Decode), Ms(v.Finished)),
            Deadline(job, v),
            Priority(job),
            route,
            v.Error,
            v.Status == JobStatus.Succeeded ? $"/v1/generations/{id}/result" : null,
            job.Trace.TraceId);
    }

    /// <summary>A job's time in the queue: from its arrival to its dispatch, or to its end when it ended while it waited
    /// (cancelled, or failed, before a dispatch): its end was null while <c>total_ms</c> said when it ended.</summary>
    private static StageTiming Queued(JobView v) =>
        v.Queue.Finish is null && v.IsTerminal && v.Finished is { } finished ? v.Queue with { Finish = finished } : v.Queue;

    /// <summary>A job's deadline as the wire shows it (the 202 and the status).</summary>
    public static DeadlineDto Deadline(Job job, JobView v) =>
        // the deadline's wall-clock time from the job's own arrival (its acceptance time, or for a job queued again
        // after a restart the time it was recovered, when its deadline started again): the server clock is
        // monotonic and the wall clock is not (NTP slews it), so StartedAt + deadline drifted from created_at — a
        // deadline was seen 0.6 s before its own created_at on a long run
        new(job.ArrivalAt + TimeSpan.FromSeconds(v.Deadline - v.Arrival), Math.Round((v.Deadline - v.Arrival) * 1000, 1),
            v.DeadlineGiven ? "client" : "slo", v.DeadlineMet);

    /// <summary>The priority level the scheduler uses for a job (absent = 0; <c>Priority.level</c>).</summary>
    public static int Priority(Job job) => Trident.Scheduling.Priority.level(job.Request.Priority);

    /// <summary>How much of a prompt the pipeline's text encoder reads (its tokenizer keeps a fixed number of tokens).</summary>
    public static PromptUsageDto Usage(ReadyServer ready, string text)
    {
        var u = PromptUsage.Of(ready.Tokenizer, text);
        return new PromptUsageDto(u.TokensTotal, u.TokensUsed, u.Truncated, u.CharactersUsed, u.CharactersTotal);
    }
}
