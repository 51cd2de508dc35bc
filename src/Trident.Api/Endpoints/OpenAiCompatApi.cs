// Routes that clients written for other OpenAI-compatible diffusion servers call:
//   GET  /v1/models            the served pipeline, as OpenAI's model list (id = what `model` fields accept);
//   POST /v1/chat/completions  vLLM-Omni's diffusion chat route: the prompt is the one user message, the
//                              generation parameters (height, width, num_inference_steps, guidance_scale, seed,
//                              num_frames, negative_prompt, fps, output_format, output_compression,
//                              num_images_per_prompt) are top-level fields or sit in a literal "extra_body" object;
//                              the answer carries each image as a data URL in choices[0].message.content:
//                              [{"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}] (a video:
//                              "video_url"). Shape as vLLM-Omni documents it: vllm-project/vllm-omni,
//                              examples/online_serving/text_to_image/README.md ("Request Format", "Response
//                              Format") and docs/serving/chat_completions_api.md; its benchmark client
//                              (benchmarks/diffusion/backends.py, async_request_chat_completions) sends exactly
//                              {"model", "messages", "extra_body": {...}}.
// The images are jobs through the same queue as every route (ImagesApi.RunAllAsync).

using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Pipelines.Tokenizers;

namespace Trident.Api.Endpoints;

/// <summary>GET /v1/models and POST /v1/chat/completions.</summary>
public static class OpenAiCompatApi
{
    /// <summary>Maps the routes.</summary>
    public static IEndpointRouteBuilder MapOpenAiCompat(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible").ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/models", Models).WithName("ListModels").WithSummary("The served pipeline, as OpenAI's model list");
        group.MapPost("/chat/completions", Chat).Accepts<ChatCompletionRequestDto>("application/json").WithName("ChatCompletions")
            .WithSummary("Generate images (or a video) as vLLM-Omni's diffusion chat route does")
            .ProducesProblem(StatusCodes.Status409Conflict).ProducesValidationProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesValidationProblem(StatusCodes.Status415UnsupportedMediaType).ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status500InternalServerError);
        return app;
    }

    private static readonly long Started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    private static Results<Ok<ModelListDto>, ProblemHttpResult> Models(HttpContext http, ServerHost host)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        var m = ready.Manifest;
        var task = m.Size.MaxFrames > 1 ? "text-to-video" : "text-to-image";
        return TypedResults.Ok(new ModelListDto("list", [new ModelDto(m.Name, "model", Started, "trident", m.Model, task)]));
    }

    private static async Task<Results<Ok<ChatCompletionDto>, ValidationProblem, ProblemHttpResult>> Chat(
        HttpContext http, ServerHost host, IOptions<TridentOptions> options)
    {
        if (host.Ready is not { } ready || host.ShuttingDown) return Problems.NotReady(http, host);
        var body = await JsonBody.ReadAsync<ChatCompletionRequestDto>(http, flatten: "extra_body");
        if (body.Value is not { } dto) return body.Status == StatusCodes.Status400BadRequest ? TypedResults.ValidationProblem(body.Errors) : Problems.Body(body.Status, body.Errors);
        var (inputs, urgency, errors) = GenerationRequests.Validate(dto, ready, options.Value.Limits, body.Unread);
        if (inputs is null || body.Errors.Count > 0) return TypedResults.ValidationProblem(body.With(errors));

        var (jobs, problem) = await ImagesApi.RunAllAsync(http, ready, inputs, urgency);
        if (problem is not null) return problem;
        var content = jobs!.Select(job =>
        {
            var result = job.Result!;
            var url = new ChatUrlDto($"data:{result.MediaType};base64,{Convert.ToBase64String(result.File)}");
            return result.Frames > 1 ? new ChatContentPartDto("video_url", null, url) : new ChatContentPartDto("image_url", url, null);
        }).ToArray();
        var promptTokens = PromptUsage.Of(ready.Tokenizer, inputs[0].Prompt).TokensUsed;
        return TypedResults.Ok(new ChatCompletionDto($"chatcmpl-{GenerationsApi.Id(jobs![0])}", "chat.completion", DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ready.Manifest.Name, [new ChatChoiceDto(0, new ChatAnswerMessageDto("assistant", content), "stop")],
            new ChatUsageDto(promptTokens, 0, promptTokens)));
    }
}
