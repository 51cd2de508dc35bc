namespace Trident.Api.Contracts;

/// <summary>Body of <c>POST /v1/images/generations</c> (the OpenAI-compatible subset).</summary>
/// <param name="Prompt">What to generate.</param>
/// <param name="N">Images to generate (default 1).</param>
/// <param name="Size"><c>WIDTHxHEIGHT</c> (default: the server's default size).</param>
/// <param name="ResponseFormat">Only <c>b64_json</c> is supported.</param>
/// <param name="Model">Accepted and ignored (the server serves one pipeline).</param>
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
public sealed record ImageDataDto(string B64Json, string RevisedPrompt);

/// <summary>Answer of <c>POST /v1/images/generations</c>.</summary>
/// <param name="Created">Unix time in seconds.</param>
/// <param name="Data">The images.</param>
public sealed record ImageGenerationResponseDto(long Created, IReadOnlyList<ImageDataDto> Data);
