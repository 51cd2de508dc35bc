// One whole generation in process: validate, encode, diffuse, decode, and encode the output file.
//
// Design note. This is what `trident generate` runs and what `trident bench runtime` times against the raw
// ONNX Runtime calls; the serving loop runs the same three executors, one stage per worker. Validation
// checks a request against the manifest and returns every problem at once, each named by the request field
// it concerns (width, height, frames, steps, guidance, threads), so the CLI can name its options. Output:
// EncodeFileAsync writes the result file (image or video) for every caller.

using System.Diagnostics;
using Trident.Runtime.Imaging;
using Trident.Runtime.Pipelines;
using Trident.Runtime.Pipelines.Samplers;

namespace Trident.Runtime.Execution;

/// <summary>One text-to-image or text-to-video request.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="NegativePrompt">The negative prompt for classifier-free guidance; null for none.</param>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Frames">Frames (1 for an image).</param>
/// <param name="Steps">Sampler steps.</param>
/// <param name="Seed">Noise seed.</param>
/// <param name="GuidanceScale">Guidance scale; null for the manifest's default.</param>
/// <param name="IntraOpThreads">Intra-op threads of every stage's session.</param>
/// <param name="Scheduler">The sampler to run (SamplerFactory.Names); null for the manifest's own.</param>
public sealed record GenerationRequest(
    string Prompt,
    string? NegativePrompt,
    int Width,
    int Height,
    int Frames,
    int Steps,
    ulong Seed,
    double? GuidanceScale,
    int IntraOpThreads,
    string? Scheduler = null);

/// <summary>The frames of one generation and the time each stage took.</summary>
/// <param name="Frames">The frames (one for an image).</param>
/// <param name="Encode">Encode stage wall time.</param>
/// <param name="Diffuse">Diffuse stage wall time (all steps).</param>
/// <param name="Decode">Decode stage wall time (including the conversion to 8-bit frames).</param>
public sealed record GenerationResult(IReadOnlyList<RgbImage> Frames, TimeSpan Encode, TimeSpan Diffuse, TimeSpan Decode);

/// <summary>Runs whole generations on a loaded pipeline.</summary>
public static class Generation
{
    /// <summary>Frame rate of videos written by <c>trident generate</c> and the profiler when none is asked for.</summary>
    public const int FramesPerSecond = 8;

    /// <summary>Every problem with <paramref name="request"/> for <paramref name="manifest"/>, each with the
    /// request field as its path; empty when the request can run.</summary>
    public static IReadOnlyList<ManifestError> Validate(PipelineManifest manifest, GenerationRequest request)
    {
        var errors = new List<ManifestError>(manifest.CheckSize(request.Width, request.Height, request.Frames));
        var schedulers = SamplerFactory.Names(manifest.Sampler);
        if (request.Scheduler is { } scheduler && !schedulers.Contains(scheduler))
            errors.Add(new ManifestError("scheduler", $"'{scheduler}' is not one of {string.Join(", ", schedulers)}"));
        else
        {
            var maxSteps = SamplerFactory.Create(manifest.Sampler, request.Scheduler).MaxSteps;
            if (request.Steps < 1 || request.Steps > maxSteps) errors.Add(new ManifestError("steps", $"must be between 1 and {maxSteps}"));
        }
        var guidanceOk = true;
        if (request.GuidanceScale is { } g)
        {
            guidanceOk = double.IsFinite(g) && g >= 0;
            if (!guidanceOk) errors.Add(new ManifestError("guidance", "must be a number ≥ 0"));
            else if (!manifest.Guidance.Accepted && g != 1.0)
                errors.Add(new ManifestError("guidance", $"must be 1: pipeline '{manifest.Name}' has no guidance (classifier-free or embedded)"));
        }
        // a negative prompt no unconditional pass reads (no classifier-free guidance, or a scale of 1) is refused, not ignored
        if (request.NegativePrompt is not null && guidanceOk
            && manifest.Guidance.NegativePromptUnused(request.GuidanceScale, "--guidance", manifest.Name) is { } unused)
            errors.Add(new ManifestError("negative-prompt", unused));
        if (request.IntraOpThreads < 1) errors.Add(new ManifestError("threads", "must be at least 1"));
        return errors;
    }

    /// <summary>
    /// Runs encode, diffuse and decode for <paramref name="request"/>.
    /// </summary>
    /// <exception cref="ManifestException">listing every problem with the request (paths as in <see cref="Validate"/>).</exception>
    /// <exception cref="OperationCanceledException">when cancelled; diffuse stops at a step boundary.</exception>
    public static GenerationResult Run(
        LoadedPipeline pipeline, GenerationRequest request, IProgress<DiffuseProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var errors = Validate(pipeline.Manifest, request);
        if (errors.Count > 0) throw new ManifestException("request", errors);

        var diffuser = new DiffuseExecutor(pipeline);
        var guidance = request.GuidanceScale ?? pipeline.Manifest.Guidance.DefaultScale;
        var guided = diffuser.UsesGuidance(guidance);

        var clock = Stopwatch.StartNew();
        var embeddings = new EncodeExecutor(pipeline).Encode(
            [request.Prompt], guided ? [request.NegativePrompt ?? ""] : null, request.IntraOpThreads, cancellationToken);
        var encoded = clock.Elapsed;

        var settings = new DiffuseSettings(
            request.Width, request.Height, request.Frames, request.Steps, [request.Seed], guidance, request.IntraOpThreads, request.Scheduler);
        var latents = diffuser.Diffuse(embeddings, settings, progress, cancellationToken);
        var diffused = clock.Elapsed;

        var frames = new DecodeExecutor(pipeline).Decode(latents, request.IntraOpThreads, cancellationToken)[0];
        var decoded = clock.Elapsed;
        return new GenerationResult(frames, encoded, diffused - encoded, decoded - diffused);
    }

    /// <summary>
    /// The output file of <paramref name="frames"/> as <paramref name="output"/> asks (null: the defaults — PNG
    /// for one frame, MP4 for several — at <paramref name="framesPerSecond"/>). This is the one encoding of
    /// results: the serving path, <c>trident generate</c> and the profiler's decode point all call it. Images
    /// are encoded by SkiaSharp, videos by ffmpeg (<see cref="VideoEncoder"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">when ffmpeg is missing or fails, for a video.</exception>
    public static async Task<EncodedMedia> EncodeFileAsync(
        IReadOnlyList<RgbImage> frames, OutputSpec? output = null, int framesPerSecond = FramesPerSecond, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frames.Count, 1);
        var format = MediaFormats.Resolve(output, frames.Count);
        var quality = output?.Compression ?? MediaFormats.DefaultQuality(format, frames.Count);
        if (!MediaFormats.IsVideo(format, frames.Count))
        {
            if (frames.Count != 1) throw new ArgumentException($"{MediaFormats.Name(format)} holds one frame, got {frames.Count}", nameof(frames));
            return new EncodedMedia(ImageEncoder.Encode(frames[0], format, quality), format);
        }
        var fps = output?.FramesPerSecond ?? framesPerSecond;
        return new EncodedMedia(await VideoEncoder.EncodeAsync(frames, format, fps, quality, cancellationToken).ConfigureAwait(false), format);
    }

    /// <summary><see cref="EncodeFileAsync"/>, waited for (the CLI and the profiler).</summary>
    public static EncodedMedia EncodeFile(IReadOnlyList<RgbImage> frames, OutputSpec? output = null, int framesPerSecond = FramesPerSecond,
        CancellationToken cancellationToken = default) =>
        EncodeFileAsync(frames, output, framesPerSecond, cancellationToken).GetAwaiter().GetResult();
}
