// Wire DTOs of the routes that follow other servers' shapes: OpenAI's video API (as vLLM-Omni serves it) and
// vLLM-Omni's diffusion chat route.

using System.Text.Json;

namespace Trident.Api.Contracts;

/// <summary>Body of <c>POST /v1/videos</c> (JSON, or the form OpenAI's and vLLM-Omni's clients send). Field names
/// are OpenAI's (<c>prompt</c>, <c>model</c>, <c>seconds</c>, <c>size</c>) and vLLM-Omni's/diffusers'
/// (<c>width</c>, <c>height</c>, <c>num_frames</c>, <c>fps</c>, <c>num_inference_steps</c>, <c>guidance_scale</c>,
/// <c>negative_prompt</c>, <c>seed</c>).</summary>
/// <param name="Prompt">What to generate.</param>
/// <param name="Model">Optional; the served pipeline's id or model name.</param>
/// <param name="Seconds">Clip length in seconds, as a string (OpenAI): digits with an optional fraction, greater than 0
/// ("4", "0.5"); frames = seconds × fps (rounded down) + 1, rounded down to 1 + a multiple of the VAE's temporal
/// compression. A frame count outside 2 … the pipeline's or the server's most frames is a 400 naming seconds (the clip is
/// never cut shorter). The video object's <c>seconds</c> is one this field takes back for the same frames. Give seconds
/// or num_frames, not both.</param>
/// <param name="Size"><c>WIDTHxHEIGHT</c>; or give width and height.</param>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="NumFrames">Frames, 2 (one frame is an image) … the pipeline's or the server's most (default: the pipeline's
/// smallest video length allowed by the server).</param>
/// <param name="Fps">Frame rate written into the file (default: <c>Trident:Serving:VideoFramesPerSecond</c>).</param>
/// <param name="NumInferenceSteps">Denoising steps.</param>
/// <param name="GuidanceScale">Guidance scale.</param>
/// <param name="NegativePrompt">What to steer away from.</param>
/// <param name="Seed">Seed of the initial noise.</param>
/// <param name="OutputFormat"><c>mp4</c> (default), <c>webm</c> or <c>webp</c> (animated).</param>
/// <param name="OutputCompression">0–100 (100 the least lossy).</param>
/// <param name="NumImagesPerPrompt">diffusers' name; must be 1 (one video per request).</param>
/// <param name="DeadlineMs">Trident's extension (as on <c>POST /v1/generations</c>): milliseconds from now by which the
/// video is wanted (default: the server's SLO).</param>
/// <param name="Priority">Trident's extension, as vLLM's <c>priority</c>: −3 … 3 (default 0), higher is more urgent;
/// with preemption on, a running lower-priority video may be suspended for it (docs/policies.md, "Priority").</param>
public sealed record VideoCreateRequestDto(
    string? Prompt,
    string? Model = null,
    string? Seconds = null,
    string? Size = null,
    int? Width = null,
    int? Height = null,
    int? NumFrames = null,
    int? Fps = null,
    int? NumInferenceSteps = null,
    double? GuidanceScale = null,
    string? NegativePrompt = null,
    long? Seed = null,
    string? OutputFormat = null,
    int? OutputCompression = null,
    int? NumImagesPerPrompt = null,
    long? DeadlineMs = null,
    int? Priority = null);

/// <summary>Why a video job failed.</summary>
/// <param name="Code"><c>generation_failed</c> or <c>cancelled</c>.</param>
/// <param name="Message">What happened.</param>
public sealed record VideoErrorDto(string Code, string Message);

/// <summary>A video job, as OpenAI's video API shows it (<c>POST /v1/videos</c>, <c>GET /v1/videos/{id}</c>).</summary>
/// <param name="Id"><c>video_</c> + the job's id (the same job is <c>/v1/generations/{id}</c>).</param>
/// <param name="Object">Always <c>video</c>.</param>
/// <param name="Model">The served pipeline.</param>
/// <param name="Status"><c>queued</c>, <c>in_progress</c>, <c>completed</c> or <c>failed</c> (a cancelled job is
/// failed with error code <c>cancelled</c>).</param>
/// <param name="Progress">0–100: denoising steps done.</param>
/// <param name="CreatedAt">Unix time (seconds) of acceptance.</param>
/// <param name="CompletedAt">Unix time of its final state.</param>
/// <param name="ExpiresAt">Unix time after which the job (and its file) may be evicted.</param>
/// <param name="Prompt">The prompt.</param>
/// <param name="Size"><c>WIDTHxHEIGHT</c> of the video the content route serves: the size asked for, except on emulated
/// devices, whose results are placeholders of at most 64 pixels a side in the request's aspect.</param>
/// <param name="Seconds">Its length in seconds as a request counts it, (num_frames − 1) / fps, as a string: the seconds the
/// request sent (a length between two frame counts: the one its frames have, e.g. "0.25" for "0.3" at 8 fps, "4.8" for
/// "5" at 10 fps with a temporal compression of 4), and a
/// <c>seconds</c> that <c>POST /v1/videos</c> takes back for the same frames (exact in up to six decimals, else rounded up
/// in the sixth). The file plays num_frames / fps seconds (9 frames at 8 fps: "1", a file of 1.125 s).</param>
/// <param name="Quality">Always <c>standard</c> (steps set the quality).</param>
/// <param name="Error">Why it failed.</param>
/// <param name="NumFrames">Frames in the file.</param>
/// <param name="Fps">Its frame rate.</param>
/// <param name="Seed">The seed used.</param>
/// <param name="OutputFormat">The file's format.</param>
/// <param name="MediaType">The file's media type.</param>
/// <param name="Deadline">Trident's extension: the job's deadline (as the job status shows it: <c>client</c> from
/// <c>deadline_ms</c> or <c>slo</c>, and whether it was met).</param>
/// <param name="Priority">Trident's extension: the priority level the scheduler uses, −3 … 3 (0 when none was sent).</param>
public sealed record VideoDto(
    string Id, string Object, string Model, string Status, int Progress, long CreatedAt, long? CompletedAt, long? ExpiresAt,
    string Prompt, string Size, string Seconds, string Quality, VideoErrorDto? Error,
    int NumFrames, int Fps, long Seed, string OutputFormat, string MediaType, DeadlineDto Deadline, int Priority);

/// <summary>Answer of <c>DELETE /v1/videos/{id}</c>.</summary>
public sealed record VideoDeletedDto(string Id, string Object, bool Deleted);

/// <summary>One chat message. <c>content</c> is a string or a list of parts (<c>{"type": "text", "text": …}</c>).</summary>
public sealed record ChatMessageDto(string? Role, JsonElement Content, string? Name = null);

/// <summary>Body of <c>POST /v1/chat/completions</c> as vLLM-Omni takes it for diffusion models: the prompt is the
/// one user message; generation parameters are top-level fields or sit in a literal <c>extra_body</c> object. Every
/// field but <c>messages</c> is optional.</summary>
/// <param name="Messages">Exactly one message with role <c>user</c>: the prompt (required).</param>
/// <param name="Model">Optional; the served pipeline's id or model name.</param>
/// <param name="Stream">Only false: streaming is not implemented.</param>
/// <param name="N">Only 1 (one choice; several images: <c>num_images_per_prompt</c>).</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Width">Width in pixels.</param>
/// <param name="NumInferenceSteps">Denoising steps.</param>
/// <param name="GuidanceScale">Guidance scale.</param>
/// <param name="Seed">Seed (the i-th image gets seed + i).</param>
/// <param name="NumFrames">Frames (more than 1: a video).</param>
/// <param name="NegativePrompt">What to steer away from.</param>
/// <param name="Fps">Frame rate of a video.</param>
/// <param name="OutputFormat">png (default), jpeg, webp; for a video mp4 (default), webm, webp.</param>
/// <param name="OutputCompression">0–100.</param>
/// <param name="NumImagesPerPrompt">Images to make (default 1), each its own job; all are in the one choice's content.</param>
/// <param name="DeadlineMs">Trident's extension: milliseconds from now by which the result is wanted (default: the
/// server's SLO).</param>
/// <param name="Priority">Trident's extension, as vLLM's <c>priority</c>: −3 … 3 (default 0), higher is more urgent.</param>
public sealed record ChatCompletionRequestDto(
    IReadOnlyList<ChatMessageDto>? Messages,
    string? Model = null,
    bool? Stream = null,
    int? N = null,
    int? Height = null,
    int? Width = null,
    int? NumInferenceSteps = null,
    double? GuidanceScale = null,
    long? Seed = null,
    int? NumFrames = null,
    string? NegativePrompt = null,
    int? Fps = null,
    string? OutputFormat = null,
    int? OutputCompression = null,
    int? NumImagesPerPrompt = null,
    long? DeadlineMs = null,
    int? Priority = null);

/// <summary>A data URL (<c>data:image/png;base64,…</c>).</summary>
public sealed record ChatUrlDto(string Url);

/// <summary>One part of the answer's content: <c>{"type": "image_url", "image_url": {"url": "data:…"}}</c>, or
/// <c>video_url</c> for a video.</summary>
public sealed record ChatContentPartDto(
    string Type,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] ChatUrlDto? ImageUrl,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] ChatUrlDto? VideoUrl);

/// <summary>The assistant's message.</summary>
public sealed record ChatAnswerMessageDto(string Role, IReadOnlyList<ChatContentPartDto> Content);

/// <summary>One choice.</summary>
public sealed record ChatChoiceDto(int Index, ChatAnswerMessageDto Message, string FinishReason);

/// <summary>Token counts: the prompt's tokens as the pipeline's tokenizer counts them; nothing is completed as text.</summary>
public sealed record ChatUsageDto(int PromptTokens, int CompletionTokens, int TotalTokens);

/// <summary>Answer of <c>POST /v1/chat/completions</c>.</summary>
public sealed record ChatCompletionDto(string Id, string Object, long Created, string Model, IReadOnlyList<ChatChoiceDto> Choices, ChatUsageDto Usage);
