namespace Trident.Api.Contracts;

/// <summary>Body of <c>POST /v1/images/generations</c> (OpenAI's image API, as the <c>openai</c> clients send it). Every
/// field but <c>prompt</c> is optional.</summary>
/// <param name="Prompt">What to generate.</param>
/// <param name="N">Images to generate (default 1); each is its own job, with seeds seed, seed + 1, ….</param>
/// <param name="Size"><c>WIDTHxHEIGHT</c> or <c>auto</c> (default: the server's default size).</param>
/// <param name="ResponseFormat"><c>b64_json</c> (default) or <c>url</c>: a URL of the job's result route, valid
/// while the job is retained (<c>Trident:Jobs:RetentionSeconds</c>).</param>
/// <param name="Model">Optional; when given it must be the served pipeline's id (as <c>GET /v1/models</c> lists it)
/// or its model name, else 400.</param>
/// <param name="NegativePrompt">What to steer away from (classifier-free guidance).</param>
/// <param name="Steps">Denoising steps (alias <c>num_inference_steps</c>).</param>
/// <param name="Seed">Seed of the first image (the i-th gets seed + i).</param>
/// <param name="Guidance">Guidance scale (alias <c>guidance_scale</c>).</param>
/// <param name="OutputFormat"><c>png</c> (default), <c>jpeg</c> or <c>webp</c>.</param>
/// <param name="OutputCompression">0–100 (default 100, the least lossy) for jpeg and webp.</param>
/// <param name="Quality">Only <c>auto</c> (the server's settings); other levels are refused: set steps instead.</param>
/// <param name="Background"><c>auto</c> or <c>opaque</c> (images are opaque RGB); <c>transparent</c> is refused.</param>
/// <param name="DeadlineMs">Trident's extension (as on <c>POST /v1/generations</c>; the <c>openai</c> clients send it in
/// <c>extra_body</c>): milliseconds from now by which the images are wanted (default: the server's SLO).</param>
/// <param name="Priority">Trident's extension, as vLLM's <c>priority</c>: −3 … 3 (default 0), higher is more urgent
/// (docs/policies.md, "Priority").</param>
public sealed record ImageGenerationRequestDto(
    string? Prompt,
    int? N = null,
    string? Size = null,
    string? ResponseFormat = null,
    string? Model = null,
    string? NegativePrompt = null,
    int? Steps = null,
    long? Seed = null,
    double? Guidance = null,
    string? OutputFormat = null,
    int? OutputCompression = null,
    string? Quality = null,
    string? Background = null,
    long? DeadlineMs = null,
    int? Priority = null);

/// <summary>One generated image.</summary>
/// <param name="B64Json">The file, base64 (<c>response_format: b64_json</c>); null for <c>url</c>.</param>
/// <param name="Url">The URL of the file (<c>response_format: url</c>); null for <c>b64_json</c>.</param>
/// <param name="RevisedPrompt">The prompt as the encoder read it: the prefix the tokenizer kept.</param>
/// <param name="Seed">The seed of this image (first image: the request's or a drawn one in [0, 2^53 − 1]; the i-th: + i).</param>
/// <param name="PromptTruncated">Whether the tokenizer cut the prompt (see <c>revised_prompt</c>).</param>
/// <param name="Id">The job that made it (its status: <c>/v1/generations/{id}</c>).</param>
/// <param name="TraceId">The job's OpenTelemetry trace id (32 hex digits), as in its status.</param>
public sealed record ImageDataDto(string? B64Json, string? Url, string RevisedPrompt, long Seed, bool PromptTruncated, string Id, string? TraceId);

/// <summary>Answer of <c>POST /v1/images/generations</c>.</summary>
/// <param name="Created">Unix time in seconds.</param>
/// <param name="Data">The images.</param>
/// <param name="OutputFormat">The images' format.</param>
/// <param name="Size">The size of the images returned, <c>WIDTHxHEIGHT</c>: the size asked for, except on emulated devices,
/// whose results are placeholders of at most 64 pixels a side in the request's aspect.</param>
public sealed record ImageGenerationResponseDto(long Created, IReadOnlyList<ImageDataDto> Data, string OutputFormat, string Size);

/// <summary>One model of <c>GET /v1/models</c>: the served pipeline.</summary>
/// <param name="Id">The pipeline's name: what <c>model</c> fields accept.</param>
/// <param name="Object">Always <c>model</c>.</param>
/// <param name="Created">Unix time (seconds) the server started.</param>
/// <param name="OwnedBy">Always <c>trident</c>.</param>
/// <param name="Root">The pipeline's model (also accepted in <c>model</c> fields).</param>
/// <param name="Task"><c>text-to-image</c> or <c>text-to-video</c>.</param>
public sealed record ModelDto(string Id, string Object, long Created, string OwnedBy, string Root, string Task);

/// <summary><c>GET /v1/models</c>.</summary>
public sealed record ModelListDto(string Object, IReadOnlyList<ModelDto> Data);
