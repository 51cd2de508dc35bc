// The diffuse stage: text embeddings → denoised latents, one denoiser Run per sampler step.
//
// Design note.
// - Noise. Item b of the batch starts from GaussianNoise(seeds[b]) over its own slice of the manifest's
//   latent shape, so an item's noise does not depend on what it is batched with.
// - Guidance. With classifier-free guidance (a scale ≠ 1 on a pipeline that supports it) every step runs the
//   conditional and unconditional passes as one batch of 2·B rows — the latents copied twice, the embeddings
//   tensor as the encode stage made it — and combines u + g·(c − u) in place. With scale 1 only the
//   conditional rows run.
// - Buffers. The latents x, the model-input buffer and the timestep buffer are allocated once per call; each
//   step copies x into the input (twice with guidance), runs, combines, and lets the sampler update x in place.
// - Degree. On CPU the degree k of a diffuse task is the intra-op thread count of the denoiser session
//   (design §8); the session comes from the pipeline's cache, keyed by that count.
// - Cancellation. Checked before every step, so the run stops at a step boundary: the progress callback
//   has seen exactly the steps that completed. The token is also passed to the Run in flight, which ONNX
//   Runtime abandons between nodes; its partial result is discarded, so no step is ever half applied.
// The executor holds no mutable state: it is safe to call from several threads.

using System.Diagnostics;
using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines.Samplers;

namespace Trident.Runtime.Execution;

/// <summary>What a diffuse run computes.</summary>
/// <param name="Width">Output width in pixels.</param>
/// <param name="Height">Output height in pixels.</param>
/// <param name="Frames">Output frames (1 for an image).</param>
/// <param name="Steps">Sampler steps.</param>
/// <param name="Seeds">Noise seed of each batch item, one per prompt of the embeddings.</param>
/// <param name="GuidanceScale">Classifier-free guidance scale g; 1 runs the conditional pass alone.</param>
/// <param name="IntraOpThreads">Intra-op threads of the denoiser session: the degree k on CPU.</param>
public sealed record DiffuseSettings(
    int Width, int Height, int Frames, int Steps, IReadOnlyList<ulong> Seeds, double GuidanceScale, int IntraOpThreads = 1);

/// <summary>Progress of a diffuse run, reported after each completed step.</summary>
/// <param name="Completed">Steps completed so far (1 … Steps).</param>
/// <param name="Steps">Steps in the run.</param>
/// <param name="Elapsed">Time since the run started.</param>
public readonly record struct DiffuseProgress(int Completed, int Steps, TimeSpan Elapsed);

/// <summary>Runs the denoiser of a pipeline for all sampler steps.</summary>
public sealed class DiffuseExecutor(LoadedPipeline pipeline)
{
    private readonly LoadedPipeline pipeline = pipeline ?? throw new ArgumentNullException(nameof(pipeline));

    /// <summary>
    /// Denoises from seeded noise to latents, conditioned on <paramref name="embeddings"/>. Progress is
    /// reported synchronously, on the calling thread, after each step.
    /// </summary>
    /// <exception cref="ArgumentException">when the settings do not fit the manifest or the embeddings (size,
    /// steps, seeds, guidance without unconditional embeddings).</exception>
    /// <exception cref="OperationCanceledException">when <paramref name="cancellationToken"/> is cancelled; the
    /// run stops at a step boundary.</exception>
    public Latents Diffuse(
        Embeddings embeddings,
        DiffuseSettings settings,
        IProgress<DiffuseProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(embeddings);
        ArgumentNullException.ThrowIfNull(settings);
        var manifest = pipeline.Manifest;
        var guided = UsesGuidance(settings.GuidanceScale);
        Check(embeddings, settings, guided);
        cancellationToken.ThrowIfCancellationRequested();

        var stage = manifest.Stages.Denoiser;
        var session = pipeline.Session(StageModel.Denoiser, settings.IntraOpThreads);
        var latentIndex = session.InputIndex(stage.Latents);
        var timestepIndex = session.InputIndex(stage.Timestep);
        var textIndex = session.InputIndex(stage.EncoderHiddenStates);
        var predictionIndex = session.OutputIndex(stage.Prediction);
        if (session.Inputs.Count != 3)
            throw new InvalidOperationException(
                $"the denoiser takes {session.Inputs.Count} inputs ({string.Join(", ", session.Inputs)}); Trident feeds exactly the three the manifest names");

        var batch = embeddings.Batch;
        var shape = manifest.LatentShape(batch, settings.Width, settings.Height, settings.Frames);
        var perItem = checked((int)(Tensor.ElementCount(shape) / batch));
        var x = new float[batch * perItem];
        for (var b = 0; b < batch; b++) new GaussianNoise(settings.Seeds[b]).Fill(x.AsSpan(b * perItem, perItem));

        var rows = guided ? 2 * batch : batch;
        var modelShape = (long[])shape.Clone();
        modelShape[0] = rows;
        var modelInput = guided ? new float[rows * perItem] : x; // without guidance the network reads x itself
        var inputs = new Tensor[3];
        inputs[latentIndex] = Tensor.FromFloat(modelInput, modelShape);
        inputs[textIndex] = guided || !embeddings.HasUnconditional ? embeddings.Tensor : embeddings.Conditional();
        var timestep = new TimestepInput(session.Inputs[timestepIndex], rows);
        inputs[timestepIndex] = timestep.Tensor;

        var sampler = pipeline.Sampler;
        var timesteps = sampler.Timesteps(settings.Steps);
        var scale = (float)settings.GuidanceScale;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < settings.Steps; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (guided)
            {
                x.CopyTo(modelInput, 0);
                x.CopyTo(modelInput, x.Length);
            }
            timestep.Set(timesteps[i]);
            var prediction = session.Run(inputs, cancellationToken)[predictionIndex].Tensor.AsFloat();
            var velocity = prediction.AsSpan(0, x.Length);
            if (guided) ClassifierFreeGuidance.Combine(prediction.AsSpan(x.Length), velocity, scale, velocity);
            sampler.Step(x, velocity, i, settings.Steps);
            progress?.Report(new DiffuseProgress(i + 1, settings.Steps, clock.Elapsed));
        }
        return new Latents(Tensor.FromFloat(x, shape), settings.Width, settings.Height, settings.Frames);
    }

    /// <summary>Whether a run at <paramref name="guidanceScale"/> uses classifier-free guidance on this pipeline
    /// (and so needs embeddings with unconditional rows).</summary>
    public bool UsesGuidance(double guidanceScale) =>
        pipeline.Manifest.Guidance.ClassifierFree && guidanceScale != 1.0;

    private void Check(Embeddings embeddings, DiffuseSettings s, bool guided)
    {
        var problems = new List<string>();
        problems.AddRange(pipeline.Manifest.CheckSize(s.Width, s.Height, s.Frames).Select(e => e.ToString()));
        if (s.Steps < 1 || s.Steps > pipeline.Sampler.MaxSteps) problems.Add($"steps: must be between 1 and {pipeline.Sampler.MaxSteps}");
        if (s.IntraOpThreads < 1) problems.Add("intra-op threads: must be at least 1");
        if (s.Seeds is null || s.Seeds.Count != embeddings.Batch)
            problems.Add($"seeds: {s.Seeds?.Count ?? 0} seeds for a batch of {embeddings.Batch}");
        if (!(double.IsFinite(s.GuidanceScale) && s.GuidanceScale >= 0)) problems.Add("guidance: must be a number ≥ 0");
        else if (!pipeline.Manifest.Guidance.ClassifierFree && s.GuidanceScale != 1.0)
            problems.Add($"guidance: pipeline '{pipeline.Manifest.Name}' has no classifier-free guidance (the scale must be 1)");
        else if (guided && !embeddings.HasUnconditional)
            problems.Add($"guidance: scale {s.GuidanceScale} needs unconditional embeddings (encode with negative prompts; empty strings for none)");
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(s));
    }

    /// <summary>The timestep input in the element type and rank the model declares (float or int64; [rows] or a
    /// scalar), refilled in place each step.</summary>
    private sealed class TimestepInput
    {
        private readonly float[]? floats;
        private readonly long[]? longs;

        public TimestepInput(TensorInfo info, int rows)
        {
            long[] shape = info.Shape.Count == 0 ? [] : [rows];
            var count = info.Shape.Count == 0 ? 1 : rows;
            switch (info.ElementType)
            {
                case TensorElementType.Float:
                    floats = new float[count];
                    Tensor = Tensor.FromFloat(floats, shape);
                    break;
                case TensorElementType.Int64:
                    longs = new long[count];
                    Tensor = Tensor.FromInt64(longs, shape);
                    break;
                default:
                    throw new NotSupportedException($"denoiser input {info}: Trident feeds timesteps as float32 or int64");
            }
        }

        public Tensor Tensor { get; }

        public void Set(float t)
        {
            if (floats is not null) Array.Fill(floats, t);
            else Array.Fill(longs!, (long)MathF.Round(t));
        }
    }
}
