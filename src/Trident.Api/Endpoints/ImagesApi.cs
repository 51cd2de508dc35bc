// POST /v1/images/generations: the OpenAI-compatible subset (prompt, n, size, response_format=b64_json,
// model naming the served pipeline), synchronous; OpenAI fields it does not implement, and unknown ones, are a
// 400 naming each. Every data[] item carries its seed and the prompt as the encoder read it. Each of the n images is one job through the same queue and planner as /v1/generations; the
// answer waits for all of them. A client that goes away cancels its jobs.

using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Api.Options;
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
            .WithSummary("Generate images synchronously (b64_json)")
            .ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType).ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status500InternalServerError).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    private static async Task<Results<Ok<ImageGenerationResponseDto>, ValidationProblem, ProblemHttpResult>> Create(
        HttpContext http, ServerHost host, IOptions<TridentOptions> options)
    {
        if (host.Ready is not { } ready || host.ShuttingDown) return Problems.NotReady(http, host);
        var (dto, parseErrors, parseStatus) = await JsonBody.ReadAsync<ImageGenerationRequestDto>(http, GenerationRequests.UnsupportedOpenAiFields);
        if (dto is null && parseStatus != StatusCodes.Status400BadRequest) return Problems.Body(parseStatus, parseErrors);
        if (dto is null) return TypedResults.ValidationProblem(parseErrors);
        var (inputs, errors) = GenerationRequests.Validate(dto, ready, options.Value.Limits);
        if (inputs is null) return TypedResults.ValidationProblem(errors);

        var server = ready.Server;
        var jobs = new List<Job>();
        foreach (var input in inputs)
        {
            switch (server.Submit(input, null, null))
            {
                case SubmitOutcome.Accepted a:
                    jobs.Add(a.Job);
                    break;
                case SubmitOutcome.Refused refused:
                    foreach (var j in jobs) server.Cancel(j);
                    return Problems.TooMany(http, refused);
                case SubmitOutcome.Stopping stopping:
                    foreach (var j in jobs) server.Cancel(j);
                    return Problems.Stopping(http, stopping);
            }
        }
        try
        {
            await Task.WhenAll(jobs.Select(j => Finished(j, http.RequestAborted)));
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            foreach (var j in jobs) server.Cancel(j);
            throw;
        }
        var data = new List<ImageDataDto>();
        foreach (var job in jobs)
        {
            var view = job.View();
            if (job.Result is { } result)
            {
                var usage = PromptUsage.Of(ready.Tokenizer, view.Input.Prompt);
                data.Add(new ImageDataDto(Convert.ToBase64String(result.Png), usage.UsedText, (long)view.Input.Seed, usage.Truncated));
            }
            else if (view.Status == JobStatus.Cancelled) return Problems.Conflict($"generation {GenerationsApi.Id(job)} was cancelled");
            else return Problems.Failed($"generation {GenerationsApi.Id(job)} failed: {view.Error}");
        }
        return TypedResults.Ok(new ImageGenerationResponseDto(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), data));
    }

    /// <summary>Completes when the job reaches its final state.</summary>
    private static async Task Finished(Job job, CancellationToken ct)
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
