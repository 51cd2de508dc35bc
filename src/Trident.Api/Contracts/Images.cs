namespace Trident.Api.Contracts;

/// <summary>Body of <c>POST /v1/images/generations</c> (the OpenAI-compatible subset).</summary>
/// <param name="Prompt">What to generate.</param>
/// <param name="N">Images to generate (default 1).</param>
/// <param name="Size"><c>WIDTHxHEIGHT</c> (default: the server's default size).</param>
/// <param name="ResponseFormat">Only <c>b64_json</c> is supported.</param>
/// <param name="Model">Optional; when given it must name the pipeline served (its name or model), else 400.</param>
/// <param name="NegativePrompt">Trident extension: negative prompt.</param>
/// <param name="Steps">Trident extension: denoising steps.</param>
/// <param name="Seed">Trident extension: seed of the first image (the i-th gets seed + i).</param>
public sealed record ImageGenerationRequestDto(
    string? Prompt,
    int? N,
    string? Size,
    string? ResponseFormat,
    string? Model,
    string? NegativePrompt,
    int? Steps,
    long? Seed);

/// <summary>One generated image.</summary>
/// <param name="B64Json">The PNG, base64.</param>
/// <param name="RevisedPrompt">The prompt as the encoder read it: the prefix the tokenizer kept.</param>
/// <param name="Seed">The seed of this image (first image: the request's or a drawn one in [0, 2^53 − 1]; the i-th: + i).</param>
/// <param name="PromptTruncated">Whether the tokenizer cut the prompt (see <c>revised_prompt</c>).</param>
public sealed record ImageDataDto(string B64Json, string RevisedPrompt, long Seed, bool PromptTruncated);

/// <summary>Answer of <c>POST /v1/images/generations</c>.</summary>
/// <param name="Created">Unix time in seconds.</param>
/// <param name="Data">The images.</param>
public sealed record ImageGenerationResponseDto(long Created, IReadOnlyList<ImageDataDto> Data);
