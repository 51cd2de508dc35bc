// Validation of generation requests at the edge: every problem is collected, keyed by the field's wire
// name, so one 400 answer names each bad field. Sizes are checked against the pipeline's own constraint
// (PipelineManifest.CheckSize: range and multiple) and the configured limits, then against the cluster:
// a size no device can hold at any degree would wait forever, so it is refused here; and against the
// server's cost model: a request predicted to take longer than Limits:MaxPredictedSeconds served alone, or to
// need more than Limits:MaxActivationGb of activations on one device, is refused naming the limit and the
// estimate. Prompt lengths count Unicode characters (code points), the unit the docs name. Seeds are kept
// within 2^53 − 1 so a JavaScript client holds them exactly.

using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Devices;

namespace Trident.Api.Endpoints;

/// <summary>A validated submission.</summary>
internal sealed record ValidSubmission(GenerationInput Input, double? DeadlineSeconds, int? Priority, Estimate Estimate);

/// <summary>What the cost model predicts for a request served alone: seconds (t_ref = encode + steps × diffuse
/// step at its reference degree + decode) and the peak activation on one device in GB.</summary>
internal sealed record Estimate(double Seconds, double ActivationGb);

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
        var (steps, estimate) = Check(e, dto.Prompt, dto.NegativePrompt, width, height, frames, dto.Steps, dto.Seed, dto.Guidance, ready, limits);
        if (dto.DeadlineMs is { } ms && (ms < 1 || ms > limits.MaxDeadlineMs))
            e.Add("deadline_ms", $"must be between 1 and {limits.MaxDeadlineMs}");
        var schedulers = Trident.Runtime.Pipelines.Samplers.SamplerFactory.Names(ready.Manifest.Sampler);
        if (dto.Scheduler is { } scheduler && !schedulers.Contains(scheduler))
            e.Add("scheduler", $"'{scheduler}' is not a scheduler of pipeline '{ready.Manifest.Name}'; accepted: {string.Join(", ", schedulers)}");
        if (dto.DeadlineMs is not null && dto.Priority is not null)
            e.Add("priority", "cannot be combined with deadline_ms: the dispatcher orders by deadline slack first, so with a deadline "
                + "a priority would only break exact ties; send deadline_ms or priority, not both");
        if (e.ByField.Count > 0 || estimate is null) return (null, e.ToDictionary());
        var input = new GenerationInput(dto.Prompt!, dto.NegativePrompt, width, height, frames, steps,
            dto.Seed is { } s ? (ulong)s : DrawSeed(0),
            dto.Guidance ?? ready.Manifest.Guidance.DefaultScale,
            dto.Scheduler);
        return (new ValidSubmission(input, dto.DeadlineMs / 1000.0, dto.Priority, estimate), []);
    }

    /// <summary>A server-drawn seed in [0, 2^53 − 1 − <paramref name="reserve"/>] (the images route gives the
    /// i-th image seed + i).</summary>
    private static ulong DrawSeed(int reserve) => (ulong)Random.Shared.NextInt64(0, JsonBody.MaxSafeInteger - reserve + 1);

    /// <summary>Checks the fields shared by both generation routes; returns the steps to use and, when the
    /// size and steps are valid, the cost model's estimate.</summary>
    private static (int Steps, Estimate? Estimate) Check(Errors e, string? prompt, string? negative, int width, int height, int frames, int? steps, long? seed,
        double? guidance, ReadyServer ready, LimitOptions limits, string sizeField = "", int seedReserve = 0)
    {
        if (string.IsNullOrWhiteSpace(prompt)) e.Add("prompt", "is required and must not be blank");
        else if (Characters(prompt) is var n && n > limits.MaxPromptLength)
            e.Add("prompt", $"must be at most {limits.MaxPromptLength} characters (Unicode code points; got {n})");
        if (negative is not null && Characters(negative) is var m && m > limits.MaxPromptLength)
            e.Add("negative_prompt", $"must be at most {limits.MaxPromptLength} characters (Unicode code points; got {m})");

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
        var stepsOk = s >= 1 && s <= limits.MaxSteps;
        if (!stepsOk) e.Add("steps", $"must be between 1 and {limits.MaxSteps}");
        if (seed is < 0 || seed > JsonBody.MaxSafeInteger - seedReserve)
            e.Add("seed", $"must be between 0 and {JsonBody.MaxSafeInteger - seedReserve} (2^53 − 1{(seedReserve > 0 ? " − (n − 1)" : "")}: the largest integer a JSON client holds exactly)");
        if (guidance is { } g && !(double.IsFinite(g) && g >= 0 && g <= 100)) e.Add("guidance", "must be between 0 and 100");
        else if (guidance is { } g1 && g1 != 1.0 && !ready.Manifest.Guidance.ClassifierFree)
            e.Add("guidance", $"pipeline '{ready.Manifest.Name}' has no classifier-free guidance: omit guidance or send 1");
        if (sizeErrors > 0 || !stepsOk || e.ByField.ContainsKey("width") || e.ByField.ContainsKey("height")) return (s, null);

        var estimate = Predict(ready, new Trident.Scheduling.Shape(height, width, frames), s);
        var what = $"{width}×{height}, {frames} frame(s), {s} steps";
        var costField = sizeField.Length > 0 ? sizeField : "steps";
        if (limits.MaxPredictedSeconds > 0 && estimate.Seconds > limits.MaxPredictedSeconds)
            e.Add(costField, $"{what} is predicted to take {estimate.Seconds:F1} s served alone on this server, over "
                + $"Trident:Limits:MaxPredictedSeconds = {limits.MaxPredictedSeconds} (ask for fewer steps, frames or pixels)");
        if (limits.MaxActivationGb > 0 && estimate.ActivationGb > limits.MaxActivationGb)
            e.Add(costField, $"{what} is predicted to need {estimate.ActivationGb:F2} GB of activations on one device, over "
                + $"Trident:Limits:MaxActivationGb = {limits.MaxActivationGb}");
        return (s, estimate);
    }

    /// <summary>The cost model's estimate of a request served alone.</summary>
    public static Estimate Predict(ReadyServer ready, Trident.Scheduling.Shape shape, int steps)
    {
        var cost = ready.Server.Cost;
        var k = Trident.Scheduling.CostModelModule.referenceDegree(cost, shape);
        var seconds = Trident.Scheduling.CostModelModule.tRef(cost, shape, steps);
        var activation = new[] { Trident.Scheduling.Stage.Encode, Trident.Scheduling.Stage.Diffuse, Trident.Scheduling.Stage.Decode }
            .Max(stage => Trident.Scheduling.CostModelModule.activation(cost, stage, shape, stage.IsDiffuse ? k : 1));
        return new Estimate(Math.Round(seconds, 3), Math.Round(activation, 4));
    }

    /// <summary>Length in the unit the docs and Limits:MaxPromptLength name: Unicode characters (code points).</summary>
    public static int Characters(string text)
    {
        var n = 0;
        foreach (var _ in text.EnumerateRunes()) n++;
        return n;
    }

    /// <summary>Validates an OpenAI-style request; returns one input per image and the first image's estimate.</summary>
    public static (IReadOnlyList<GenerationInput>? Inputs, Dictionary<string, string[]> Errors) Validate(ImageGenerationRequestDto dto, ReadyServer ready, LimitOptions limits)
    {
        var e = new Errors();
        var n = dto.N ?? 1;
        if (n < 1 || n > limits.MaxImagesPerRequest) e.Add("n", $"must be between 1 and {limits.MaxImagesPerRequest}");
        if (dto.ResponseFormat is not (null or "b64_json")) e.Add("response_format", "only 'b64_json' is supported");
        if (dto.Model is { } model && model != ready.Manifest.Name && model != ready.Manifest.Model)
            e.Add("model", $"this server serves only '{ready.Manifest.Name}' (model '{ready.Manifest.Model}'); omit model or name that one");
        int width = limits.DefaultWidth, height = limits.DefaultHeight;
        if (dto.Size is { } size)
        {
            // plain ASCII digits only: int.TryParse alone would take " 64", "+64" and the current culture's forms
            var match = SizePattern.Match(size);
            if (!match.Success || !int.TryParse(match.Groups[1].ValueSpan, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out width)
                || !int.TryParse(match.Groups[2].ValueSpan, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out height))
                e.Add("size", $"must be WIDTHxHEIGHT in digits, e.g. {limits.DefaultWidth}x{limits.DefaultHeight}");
        }
        var steps = e.ByField.ContainsKey("size")
            ? 0
            : Check(e, dto.Prompt, dto.NegativePrompt, width, height, 1, dto.Steps, dto.Seed, null, ready, limits, sizeField: "size",
                seedReserve: Math.Max(0, Math.Min(n, limits.MaxImagesPerRequest) - 1)).Steps;
        if (e.ByField.ContainsKey("size") && string.IsNullOrWhiteSpace(dto.Prompt)) e.Add("prompt", "is required and must not be blank");
        if (e.ByField.Count > 0) return (null, e.ToDictionary());
        var seed = dto.Seed is { } s ? (ulong)s : DrawSeed(n - 1);
        var inputs = Enumerable.Range(0, n)
            .Select(i => new GenerationInput(dto.Prompt!, dto.NegativePrompt, width, height, 1, steps, seed + (ulong)i, ready.Manifest.Guidance.DefaultScale))
            .ToArray();
        return (inputs, []);
    }

    private static readonly System.Text.RegularExpressions.Regex SizePattern = new("^([0-9]{1,9})x([0-9]{1,9})$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>Fields of OpenAI's image API this server does not implement, and why: each is a 400 naming it
    /// rather than a silent no-op.</summary>
    public static readonly IReadOnlyDictionary<string, string> UnsupportedOpenAiFields = new Dictionary<string, string>
    {
        ["quality"] = "there is one quality: set steps instead",
        ["style"] = "the pipeline has no styles",
        ["user"] = "requests are not attributed to users",
        ["background"] = "images are opaque RGB",
        ["moderation"] = "there is no moderation",
        ["output_format"] = "the output is PNG",
        ["output_compression"] = "the output is lossless PNG",
        ["partial_images"] = "streaming is not implemented (use POST /v1/generations and its events)",
        ["stream"] = "streaming is not implemented (use POST /v1/generations and its events)",
        ["image"] = "image edits are not implemented",
        ["mask"] = "image edits are not implemented",
    };
}
