// /v1/videos: the asynchronous video pattern of OpenAI's video API as OpenAI-compatible servers (vLLM-Omni)
// serve it, over the same job store as /v1/generations (durable journal included: a video job survives a
// restart like any job):
//   POST   /v1/videos               queue a job (JSON, or the form OpenAI's and vLLM-Omni's clients send);
//                                   200 with the video object, status "queued";
//   GET    /v1/videos               the video jobs held, a page at a time (after, limit, order: JobLists.cs);
//   GET    /v1/videos/{id}          the video object: status queued | in_progress | completed | failed, progress;
//   GET    /v1/videos/{id}/content  the file (mp4 by default; webm, animated webp on request);
//   DELETE /v1/videos/{id}          forget the job and its file: {"id", "object": "video.deleted", "deleted": true}.
//                                   Deleted is gone, at once, as in OpenAI's API: every route answers 404 for it from
//                                   then on (this one, /v1/generations/{n}, the lists), also while a job that was
//                                   still running is cancelled and stops at its next step boundary (JobStore.Delete).
// Ids are "video_" + the job id (plain digits). A cancelled job shows as failed with error code "cancelled".

using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Imaging;
using Trident.Runtime.Serving;

namespace Trident.Api.Endpoints;

/// <summary>The video routes.</summary>
public static class VideosApi
{
    /// <summary>Prefix of a video id.</summary>
    public const string IdPrefix = "video_";

    /// <summary>Maps <c>/v1/videos</c>.</summary>
    public static IEndpointRouteBuilder MapVideos(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/videos").WithTags("OpenAI-compatible").ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapPost("", Create).Accepts<VideoCreateRequestDto>("application/json", "multipart/form-data", "application/x-www-form-urlencoded")
            .WithName("CreateVideo").WithSummary("Queue a video job")
            .WithDescription("OpenAI's video API (JSON or form). 200 with the video object; 400 names every bad field.")
            .ProducesValidationProblem(StatusCodes.Status413PayloadTooLarge).ProducesValidationProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
        group.MapGet("", List).WithName("ListVideos").WithSummary("The video jobs held, a page at a time")
            .WithDescription("OpenAI's list: after (the previous page's last_id), limit 0–100 (default 20), order desc (newest first, the default) or asc. " +
                             "A job is listed until its retention time after it finished. 400 names a bad parameter.");
        group.MapGet("/{id}", Get).WithName("GetVideo").WithSummary("A video job's status")
            .ProducesProblem(StatusCodes.Status404NotFound);
        group.MapGet("/{id}/content", Content).WithName("GetVideoContent").WithSummary("The video file")
            .Produces<byte[]>(StatusCodes.Status200OK, "video/mp4", "video/webm", "image/webp")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        group.MapDelete("/{id}", Delete).WithName("DeleteVideo").WithSummary("Forget a video job (cancelling it if it runs)")
            .WithDescription("200 {deleted: true}: the video is gone at once — every route answers 404 for it from then on, also while a job that was still running stops at its next step boundary.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    private static async Task<Results<Ok<VideoDto>, ValidationProblem, ProblemHttpResult>> Create(
        HttpContext http, ServerHost host, IOptions<TridentOptions> options)
    {
        if (host.Ready is not { } ready || host.ShuttingDown) return Problems.NotReady(http, host);
        var body = await JsonBody.ReadAsync<VideoCreateRequestDto>(http, GenerationRequests.UnsupportedVideoFields, form: true);
        if (body.Value is not { } dto) return body.Status == StatusCodes.Status400BadRequest ? TypedResults.ValidationProblem(body.Errors) : Problems.Body(body.Status, body.Errors);
        var (submission, errors) = GenerationRequests.Validate(dto, ready, options.Value.Limits, options.Value.Serving.VideoFramesPerSecond, body.Unread);
        if (submission is null || body.Errors.Count > 0) return TypedResults.ValidationProblem(body.With(errors));
        return ready.Server.Submit(submission.Input, submission.DeadlineSeconds, submission.Priority) switch
        {
            SubmitOutcome.Accepted accepted => TypedResults.Ok(Video(accepted.Job, ready, options.Value)),
            SubmitOutcome.Refused refused => Problems.TooMany(http, refused),
            SubmitOutcome.Stopping stopping => Problems.Stopping(http, stopping),
            SubmitOutcome.Unavailable unavailable => Problems.Unavailable(http, unavailable),
            _ => throw new InvalidOperationException("unknown submission outcome"),
        };
    }

    private static Results<Ok<JobListDto<VideoDto>>, ValidationProblem, ProblemHttpResult> List(string? after, string? limit, string? order,
        HttpContext http, ServerHost host, IOptions<TridentOptions> options)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        var (query, errors) = JobListQuery.Parse(after, limit, order, IdPrefix);
        if (query is null) return TypedResults.ValidationProblem(errors);
        return TypedResults.Ok(query.Page(ready.Server.Store, job => job.Input.Frames > 1, job => Video(job, ready, options.Value),
            job => IdPrefix + GenerationsApi.Id(job)));
    }

    private static Results<Ok<VideoDto>, ProblemHttpResult> Get(string id, HttpContext http, ServerHost host, IOptions<TridentOptions> options)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        if (Find(ready, id) is not { } job) return NotFound(id);
        return TypedResults.Ok(Video(job, ready, options.Value));
    }

    private static Results<FileContentHttpResult, ValidationProblem, ProblemHttpResult> Content(string id, string? variant, HttpContext http, ServerHost host)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        if (variant is not (null or "video"))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["variant"] = [$"only 'video' is served (got '{variant}'): there are no thumbnails or spritesheets"] });
        if (Find(ready, id) is not { } job) return NotFound(id);
        if (job.Result is { } result)
            return TypedResults.File(result.File, result.MediaType, $"{id}.{MediaFormats.Extension(result.Format)}");
        var view = job.View();
        return Problems.Conflict(view.Status switch
        {
            JobStatus.Failed => $"video {id} failed: {view.Error}",
            JobStatus.Cancelled => $"video {id} was cancelled",
            _ => $"video {id} is {Status(view.Status)}; its content is not ready",
        });
    }

    private static Results<Ok<VideoDeletedDto>, ProblemHttpResult> Delete(string id, HttpContext http, ServerHost host)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        if (Find(ready, id) is not { } job) return NotFound(id);
        var server = ready.Server;
        if (!Job.IsTerminalStatus(job.Status)) server.Cancel(job, $"cancelled by DELETE /v1/videos/{id}");
        // gone for every reader now (a GET right after the answer read "in_progress" until the next step boundary); a
        // job still running is removed once it has stopped
        if (!server.Store.Delete(job)) _ = ForgetWhenFinished(server, job);
        return TypedResults.Ok(new VideoDeletedDto(id, "video.deleted", true));
    }

    /// <summary>Removes a deleted, cancelled job once it has stopped (at its next step boundary).</summary>
    private static async Task ForgetWhenFinished(TridentServer server, Job job)
    {
        await ImagesApi.Finished(job, CancellationToken.None).ConfigureAwait(false);
        server.Store.Delete(job);
    }

    // A video job (more than one frame): an image job shares the id space but is not a video (it is at
    // /v1/generations/{n}), so it is not found here.
    private static Job? Find(ReadyServer ready, string id) =>
        Number(id) is { } n && ready.Server.Find(RequestId.NewRequestId(n)) is { Input.Frames: > 1 } job ? job : null;

    // The job id of a video id: video_ and a non-negative whole number in plain digits (null for anything else).
    private static long? Number(string id) =>
        id.StartsWith(IdPrefix, StringComparison.Ordinal)
        && long.TryParse(id.AsSpan(IdPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n
            : null;

    private static ProblemHttpResult NotFound(string id) =>
        TypedResults.Problem(Number(id) is null
                // as the generation routes answer 'abc', '+1' or '-1': the id, not the video, is what is wrong
                ? $"'{id}' is not a video id (ids are {IdPrefix} and a non-negative whole number in plain digits, at most {long.MaxValue}, e.g. {IdPrefix}123, as POST /v1/videos answers them)"
                : $"no video {id} (never accepted, deleted, evicted after its retention time, or an image — images are at /v1/generations/{{n}})",
            statusCode: StatusCodes.Status404NotFound, title: "Not found");

    /// <summary>OpenAI's status name of a job status.</summary>
    public static string Status(JobStatus s) => s switch
    {
        JobStatus.Queued => "queued",
        JobStatus.Succeeded => "completed",
        JobStatus.Failed or JobStatus.Cancelled => "failed",
        _ => "in_progress",
    };

    /// <summary>The wire view of a job as a video.</summary>
    public static VideoDto Video(Job job, ReadyServer ready, TridentOptions options)
    {
        var v = job.View();
        var input = v.Input;
        var fps = input.Output?.FramesPerSecond ?? options.Serving.VideoFramesPerSecond;
        var format = MediaFormats.Resolve(input.Output, input.Frames);
        var finished = job.FinishedAt;
        var error = v.Status switch
        {
            JobStatus.Failed => new VideoErrorDto("generation_failed", v.Error ?? "the generation failed"),
            JobStatus.Cancelled => new VideoErrorDto("cancelled", v.Error ?? "the job was cancelled"),
            _ => null,
        };
        var progress = v.Status == JobStatus.Succeeded ? 100 : input.Steps > 0 ? Math.Min(99, 100 * v.Step / input.Steps) : 0;
        // the size of the video the content route serves (emulated devices make placeholders smaller than asked for)
        var (width, height) = ready.ResultSize(input.Width, input.Height);
        return new VideoDto(
            IdPrefix + GenerationsApi.Id(job), "video", ready.Manifest.Name, Status(v.Status), progress,
            v.CreatedAt.ToUnixTimeSeconds(), finished?.ToUnixTimeSeconds(),
            finished is { } f ? (f + ready.Server.Store.Retention).ToUnixTimeSeconds() : null,
            input.Prompt, $"{width}x{height}",
            GenerationRequests.SecondsOf(input.Frames, fps), "standard", error,
            input.Frames, fps, (long)input.Seed, MediaFormats.Name(format), MediaFormats.MediaType(format),
            GenerationsApi.Deadline(job, v), GenerationsApi.Priority(job));
    }
}
