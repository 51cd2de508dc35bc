// Validation of generation requests at the edge: every problem is collected, keyed by the field's wire
// name, so one 400 answer names each bad field. Sizes are checked against the pipeline's own constraint
// (PipelineManifest.CheckSize: range and multiple) and the configured limits, then against the cluster:
// a size no device can hold at any degree would wait forever, so it is refused here.

using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Devices;

namespace Trident.Api.Endpoints;

/// <summary>A validated submission.</summary>
internal sealed record ValidSubmission(GenerationInput Input, double? DeadlineSeconds, int? Priority);

internal static class GenerationRequests
{
    private sealed class Errors
    {
        public Dictionary<string, List<string>> ByField { get; } = new();

        public void Add(string field, string message)
        {
            if (!ByField.TryGetValue(field, out var list)) ByField[field] = list = new List<string>();
            list.Add(message);
        }

        public Dictionary<string, string[]> ToDictionary() => ByField.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
    }

    public static (ValidSubmission? Submission, Dictionary<string, string[]> Errors) Validate(GenerationRequestDto dto, ReadyServer ready, LimitOptions limits)
    {
        var e = new Errors();
        var width = dto.Width ?? limits.DefaultWidth;
        var height = dto.Height ?? limits.DefaultHeight;
        var frames = dto.Frames ?? 1;
        var steps = Check(e, dto.Prompt, dto.NegativePrompt, width, height, frames, dto.Steps, dto.Seed, dto.Guidance, ready, limits);
        if (dto.DeadlineMs is { } ms && (ms < 1 || ms > limits.MaxDeadlineMs))
            e.Add("deadline_ms", $"must be between 1 and {limits.MaxDeadlineMs}");
        if (e.ByField.Count > 0) return (null, e.ToDictionary());
        var input = new GenerationInput(dto.Prompt!, dto.NegativePrompt, width, height, frames, steps,
            dto.Seed is { } s ? (ulong)s : (ulong)Random.Shared.NextInt64(0, long.MaxValue),
            dto.Guidance ?? ready.Manifest.Guidance.DefaultScale);
        return (new ValidSubmission(input, dto.DeadlineMs / 1000.0, dto.Priority), []);
    }

    /// <summary>Checks the fields shared by both generation routes; returns the steps to use.</summary>
    private static int Check(Errors e, string? prompt, string? negative, int width, int height, int frames, int? steps, long? seed, double? guidance,
        ReadyServer ready, LimitOptions limits, string sizeField = "")
    {
        if (string.IsNullOrWhiteSpace(prompt)) e.Add("prompt", "is required and must not be blank");
        else if (prompt.Length > limits.MaxPromptLength) e.Add("prompt", $"must be at most {limits.MaxPromptLength} characters (got {prompt.Length})");
        if (negative is not null && negative.Length > limits.MaxPromptLength)
            e.Add("negative_prompt", $"must be at most {limits.MaxPromptLength} characters (got {negative.Length})");

        var sizeErrors = 0;
        foreach (var err in ready.Manifest.CheckSize(width, height, frames))
        {
            e.Add(sizeField.Length > 0 ? sizeField : err.Path, err.Message);
            sizeErrors++;
        }
        if (width > limits.MaxWidth) { e.Add(sizeField.Length > 0 ? sizeField : "width", $"must be at most {limits.MaxWidth} (server limit)"); sizeErrors++; }
        if (height > limits.MaxHeight) { e.Add(sizeField.Length > 0 ? sizeField : "height", $"must be at most {limits.MaxHeight} (server limit)"); sizeErrors++; }
        if (frames > limits.MaxFrames) { e.Add("frames", $"must be at most {limits.MaxFrames} (server limit)"); sizeErrors++; }
        if (sizeErrors == 0 && ready.Server.Unservable(new Trident.Scheduling.Shape(height, width, frames)) is { } why)
            e.Add(sizeField.Length > 0 ? sizeField : "width", why);

        var defaultSteps = limits.DefaultSteps > 0 ? limits.DefaultSteps : ready.Manifest.Sampler.DefaultSteps;
        var s = steps ?? Math.Min(defaultSteps, limits.MaxSteps);
        if (s < 1 || s > limits.MaxSteps) e.Add("steps", $"must be between 1 and {limits.MaxSteps}");
        if (seed is < 0) e.Add("seed", "must be ≥ 0");
        if (guidance is { } g && !(double.IsFinite(g) && g >= 0 && g <= 100)) e.Add("guidance", "must be between 0 and 100");
        return s;
    }

    /// <summary>Validates an OpenAI-style request; returns one input per image.</summary>
    public static (IReadOnlyList<GenerationInput>? Inputs, Dictionary<string, string[]> Errors) Validate(ImageGenerationRequestDto dto, ReadyServer ready, LimitOptions limits)
    {
        var e = new Errors();
        var n = dto.N ?? 1;
        if (n < 1 || n > limits.MaxImagesPerRequest) e.Add("n", $"must be between 1 and {limits.MaxImagesPerRequest}");
        if (dto.ResponseFormat is not (null or "b64_json")) e.Add("response_format", "only 'b64_json' is supported");
        int width = limits.DefaultWidth, height = limits.DefaultHeight;
        if (dto.Size is { } size)
        {
            var parts = size.Split('x');
            if (parts.Length != 2 || !int.TryParse(parts[0], out width) || !int.TryParse(parts[1], out height))
                e.Add("size", $"must be WIDTHxHEIGHT, e.g. {limits.DefaultWidth}x{limits.DefaultHeight}");
        }
        var steps = e.ByField.ContainsKey("size")
            ? 0
            : Check(e, dto.Prompt, dto.NegativePrompt, width, height, 1, dto.Steps, dto.Seed, null, ready, limits, sizeField: "size");
        if (e.ByField.ContainsKey("size") && string.IsNullOrWhiteSpace(dto.Prompt)) e.Add("prompt", "is required and must not be blank");
        if (e.ByField.Count > 0) return (null, e.ToDictionary());
        var seed = dto.Seed is { } s ? (ulong)s : (ulong)Random.Shared.NextInt64(0, long.MaxValue - 64);
        var inputs = Enumerable.Range(0, n)
            .Select(i => new GenerationInput(dto.Prompt!, dto.NegativePrompt, width, height, 1, steps, seed + (ulong)i, ready.Manifest.Guidance.DefaultScale))
            .ToArray();
        return (inputs, []);
    }
}
