// POST /v1/images/generations: OpenAI's image API, synchronous. Fields: prompt, n, size (or auto), model
// (the served pipeline), response_format (b64_json, or url: a URL of the job's result route, valid while the
// job is retained), output_format (png, jpeg, webp) and output_compression (0–100), quality (auto) and
// background (auto, opaque); diffusers' names are aliases (num_inference_steps, guidance_scale,
// num_images_per_prompt = n). OpenAI fields it does not implement, and unknown ones, are a 400 naming each.
// Each of the n images is its own job through the same queue and planner as /v1/generations, seeds seed,
// seed + 1, …, queued together (all or none: TridentServer.SubmitAll), so they run as one batch when batching is
// on; the answer waits for all of them — one that ends without its image (cancelled by a DELETE, failed) ends the
// call at once, its other jobs cancelled, the problem naming every job —, and a client that goes away cancels them. Every data[] item
// carries its seed, its job id and the prompt as the encoder read it.

using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Devices;
using Trident.Runtime.Imaging;
using Trident.Runtime.Pipelines.Tokenizers;
using Trident.Runtime.Serving;

namespace Trident.Api.Endpoints;

/// <summary>The OpenAI-compatible image route.</summary>
public static class ImagesApi
{
    /// <summary>Maps <c>/v1/images/generations</c>.</summary>
    public static IEndpointRouteBuilder MapImages(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1/images").WithTags("OpenAI-compatible")
            .MapPost("/generations", Create).Accepts<ImageGenerationRequestDto>("application/json").WithName("CreateImages")
            .WithSummary("Generate images synchronously (b64_json or url; png, jpeg or webp)")
            .ProducesProblem(StatusCodes.Status409Conflict).ProducesValidationProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesValidationProblem(StatusCodes.Status415UnsupportedMediaType).ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status500InternalServerError).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    private static async Task<Results<Ok<ImageGenerationResponseDto>, ValidationProblem, ProblemHttpResult>> Create(
        HttpContext http, ServerHost host, IOptions<TridentOptions> options)
    {
        if (host.Ready is not { } ready || host.ShuttingDown) return Problems.NotReady(http, host);
        var body = await JsonBody.ReadAsync<ImageGenerationRequestDto>(http, GenerationRequests.UnsupportedOpenAiFields,
            GenerationRequests.ImageAliases);
        if (body.Value is not { } dto) return body.Status == StatusCodes.Status400BadRequest ? TypedResults.ValidationProblem(body.Errors) : Problems.Body(body.Status, body.Errors);
        var (inputs, urls, urgency, errors) = GenerationRequests.Validate(dto, ready, options.Value.Limits, body.Unread);
        if (inputs is null || body.Errors.Count > 0) return TypedResults.ValidationProblem(body.With(errors));

        var (jobs, problem) = await RunAllAsync(http, ready, inputs, urgency);
        if (problem is not null) return problem;
        var data = jobs!.Select(job =>
        {
            var result = job.Result!;
            var usage = PromptUsage.Of(ready.Tokenizer, job.Input.Prompt);
            var id = GenerationsApi.Id(job);
            return new ImageDataDto(
                urls ? null : Convert.ToBase64String(result.File),
                urls ? $"{http.Request.Scheme}://{http.Request.Host}/v1/generations/{id}/result" : null,
                usage.UsedText, (long)job.Input.Seed, usage.Truncated, id, job.Trace.TraceId);
        }).ToArray();
        var first = jobs![0].Result!;
        return TypedResults.Ok(new ImageGenerationResponseDto(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), data,
            MediaFormats.Name(first.Format), $"{first.Width}x{first.Height}"));
    }

    /// <summary>Submits every input as a job and waits for all of them: the jobs, all succeeded, or the problem to
    /// answer (429/503 when one is refused — the others are cancelled —, 409 when one was cancelled, 500 when one
    /// failed). All or none: as soon as one ends without its image (cancelled or failed) the others are cancelled and
    /// the problem is answered at once, naming every job of the call and how each ended (a job that succeeded before
    /// keeps its result at /v1/generations/{id}/result while it is retained). A client that goes away cancels them.</summary>
    internal static async Task<(IReadOnlyList<Job>? Jobs, ProblemHttpResult? Problem)> RunAllAsync(HttpContext http, ReadyServer ready,
        IReadOnlyList<GenerationInput> inputs, Urgency urgency)
    {
        var server = ready.Server;
        // all or none, in one round of the serving loop: the images batch together when batching is on
        IReadOnlyList<Job> jobs;
        switch (server.SubmitAll(inputs, urgency.DeadlineSeconds, urgency.Priority))
        {
            case SubmitOutcome.AcceptedAll all:
                jobs = all.Jobs;
                break;
            case SubmitOutcome.Refused refused:
                return (null, Problems.TooMany(http, refused));
            case SubmitOutcome.Stopping stopping:
                return (null, Problems.Stopping(http, stopping));
            case SubmitOutcome.Unavailable unavailable:
                return (null, Problems.Unavailable(http, unavailable));
            default:
                throw new InvalidOperationException("unknown submission outcome");
        }
        Job? stopped = null;
        try
        {
            // until every job succeeded or one ended without its image: waiting for the others then left a cancelled
            // image's siblings running to the end, their images orphaned
            var pending = jobs.ToList();
            while (pending.Count > 0 && stopped is null)
            {
                var final = await Task.WhenAny(pending.Select(j => j.Final)).WaitAsync(http.RequestAborted);
                var job = pending.First(j => j.Final == final);
                pending.Remove(job);
                if (job.Result is null) stopped = job;
            }
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            foreach (var j in jobs) server.Cancel(j, $"the client of {http.Request.Method} {http.Request.Path} went away before its images were done");
            throw;
        }
        if (stopped is null) return (jobs, null);
        var view = stopped.View();
        var cancelled = view.Status == JobStatus.Cancelled;
        var id = GenerationsApi.Id(stopped);
        foreach (var j in jobs)
            if (j != stopped)
                server.Cancel(j, $"withdrawn: generation {id}, another image of its request, {(cancelled ? "was cancelled" : "failed")}");
        var detail = $"generation {id} {(cancelled ? "was cancelled" : $"failed: {view.Error}")}" + (jobs.Count == 1 ? ""
            : $"; the images of one call are all or none, so its other jobs were cancelled — its jobs: {string.Join(", ", jobs.Select(Outcome))}");
        return (null, cancelled ? Problems.Conflict(detail) : Problems.Failed(detail));
    }

    // A job of a call that ends without its images, as its problem names it: its id and how it ends (a cancel accepted
    // now is a promise: it ends cancelled; one that succeeded first keeps its result).
    private static string Outcome(Job job)
    {
        var id = GenerationsApi.Id(job);
        return job.Result is not null ? $"{id} succeeded (its image stays at /v1/generations/{id}/result while it is retained)"
            : job.Status == JobStatus.Failed ? $"{id} failed"
            : $"{id} cancelled";
    }

    /// <summary>Completes when the job reaches its final state.</summary>
    internal static async Task Finished(Job job, CancellationToken ct)
    {
        var events = job.Subscribe();
        try
        {
            await foreach (var _ in events.ReadAllAsync(ct))
            {
                // the stream ends after the final state
            }
        }
        finally
        {
            job.Unsubscribe(events);
        }
    }
}
