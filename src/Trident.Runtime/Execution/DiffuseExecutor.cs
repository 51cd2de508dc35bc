// The diffuse stage: text embeddings → denoised latents, one denoiser Run per sampler step.
//
// Design note.
// - Noise. Item b of the batch starts from GaussianNoise(seeds[b]) over its own slice of the manifest's
//   latent shape, so an item's noise does not depend on what it is batched with.
// - Guidance. With classifier-free guidance (a scale ≠ 1 on a pipeline that supports it) every step runs the
//   conditional and unconditional passes as one batch of 2·B rows — the latents copied twice, the embeddings
//   tensor as the encode stage made it — and combines u + g·(c − u) in place. With scale 1 only the
//   conditional rows run.
// - Where the latents live. Two loops, chosen by the denoiser's execution provider (DiffuseLoop.Auto):
//   * host (CPU): the latents x stay a managed array; the model input, timestep, text and the prediction
//     output are OrtValues over managed arrays created once per call, and each step refills the inputs in
//     place and runs with the *preallocated* output (ORT writes the prediction into the same array every
//     step; 25–60 % less per-call overhead than letting ORT allocate fresh outputs, platform notes). The
//     sampler and the guidance combine run on the host.
//   * device (CUDA): the latents, the model input and the prediction are allocated on the device
//     (OrtValue.CreateAllocatedTensorValue on the session's device allocator) and bound with OrtIoBinding; the
//     sampler step and guidance run as a tiny ONNX graph on the same device (SamplerStepGraph), ping-ponging
//     between two latent buffers. Only the timestep and the step's three coefficients go up per step, the
//     text embeddings once, and the final latents come down once. The same loop runs on the CPU provider,
//     which is how the tests check it against the host loop on a machine without a GPU.
// - Precision. The model's declared latent, timestep and text types are used (float32 or float16): a float16
//   model gets float16 inputs and returns a float16 prediction; the host loop keeps x in float32 and converts
//   at the boundary, the device loop keeps x in the model's type.
// - Degree. On CPU the degree k of a diffuse task is the intra-op thread count of the denoiser session
//   (design §8); the session comes from the pipeline's cache, keyed by that count.
// - Cancellation. Checked before every step, so the run stops at a step boundary: the progress callback
//   has seen exactly the steps that completed. The token is also passed to the Run in flight, which ONNX
//   Runtime terminates between nodes (RunOptions.Terminate); its partial result is discarded.
// - Suspension (step-boundary preemption, issue 12). A run given a suspend check asks it before every step
//   after the first of its segment; when it says so the run stops there and returns a SuspendedDiffuse: the
//   latents x after the steps done and the sampler's run object (its state: σ-space history, ancestral noise
//   generator), nothing else. The host loop's x already is host memory (on a CPU device host memory is the
//   device: nothing is copied); the device loop copies x down once (the step graph with keep = 1, move = 0
//   into the host buffer), in the model's type, so nothing is rounded. Resuming from it runs steps
//   Step … Steps − 1 with the same sampler run, from the same x, through the same loop: the result is
//   bit-identical to the run never suspended (tested). Resume with the same intra-op threads (the same
//   degree): ONNX Runtime's CPU kernels may split reductions by thread count.
// The executor holds no mutable state: it is safe to call from several threads.

using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines;
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
/// <param name="Scheduler">The sampler to run (a name of SamplerFactory.Names for the manifest's sampler); null
/// for the manifest's own.</param>
public sealed record DiffuseSettings(
    int Width, int Height, int Frames, int Steps, IReadOnlyList<ulong> Seeds, double GuidanceScale, int IntraOpThreads = 1, string? Scheduler = null);

/// <summary>Progress of a diffuse run, reported after each completed step.</summary>
/// <param name="Completed">Steps completed so far (1 … Steps).</param>
/// <param name="Steps">Steps in the run.</param>
/// <param name="Elapsed">Time since the run started.</param>
public readonly record struct DiffuseProgress(int Completed, int Steps, TimeSpan Elapsed);

/// <summary>A diffuse run stopped at a denoising-step boundary (issue 12): its latents and sampler state, to be
/// resumed once with <see cref="DiffuseExecutor.Diffuse(Embeddings, DiffuseSettings, SuspendedDiffuse?, Func{bool}?, IProgress{DiffuseProgress}?, CancellationToken)"/>
/// on the same pipeline, settings and loop. Resuming consumes it (the sampler state moves on).</summary>
public sealed class SuspendedDiffuse
{
    private int _resumed;

    internal SuspendedDiffuse(DiffuseSettings settings, int batch, int step, Tensor latents, bool onDevice, ISamplerRun samplerRun)
    {
        Settings = settings;
        Batch = batch;
        Step = step;
        Latents = latents;
        OnDevice = onDevice;
        SamplerRun = samplerRun;
    }

    /// <summary>The settings of the run (a resumption must give the same).</summary>
    public DiffuseSettings Settings { get; }

    /// <summary>Batch items (embeddings rows without guidance).</summary>
    public int Batch { get; }

    /// <summary>Steps done (1 … Steps − 1): the resumption runs step <c>Step</c> next (0-based).</summary>
    public int Step { get; }

    /// <summary>Bytes kept in host memory: the latents (float32 from the host loop, the model's type from the
    /// device loop); the sampler state is a few scalars besides, or one latent-sized history for σ-space samplers.</summary>
    public long Bytes => Latents.Bytes;

    internal Tensor Latents { get; }

    internal bool OnDevice { get; }

    internal ISamplerRun SamplerRun { get; }

    // A suspended run resumes once: its sampler run moves on.
    internal void Take()
    {
        if (Interlocked.Exchange(ref _resumed, 1) != 0) throw new InvalidOperationException("this suspended diffuse was resumed already");
    }
}

/// <summary>What a diffuse run ended with: the latents, or a suspension at a step boundary.</summary>
/// <param name="Latents">The denoised latents; null when suspended.</param>
/// <param name="Suspended">Where it stopped; null when it ran every step.</param>
public sealed record DiffuseOutcome(Latents? Latents, SuspendedDiffuse? Suspended);

/// <summary>Where the diffuse loop keeps its latents between steps.</summary>
public enum DiffuseLoop
{
    /// <summary>On the device for a CUDA session, on the host otherwise.</summary>
    Auto,

    /// <summary>Host arrays with preallocated OrtValues; sampler on the host.</summary>
    Host,

    /// <summary>Device-allocated values with I/O binding; sampler as an ONNX graph on the device.</summary>
    Device,
}

/// <summary>Runs the denoiser of a pipeline for all sampler steps.</summary>
public sealed class DiffuseExecutor(LoadedPipeline pipeline, DiffuseLoop loop = DiffuseLoop.Auto)
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
        CancellationToken cancellationToken = default) =>
        Diffuse(embeddings, settings, null, null, progress, cancellationToken).Latents!;

    /// <summary>
    /// Denoises from seeded noise (or from <paramref name="from"/>, a run suspended earlier) to latents, stopping
    /// at the first step boundary after the segment's first step where <paramref name="suspend"/> returns true.
    /// Progress is reported synchronously, on the calling thread, after each step (steps counted from the run's
    /// start, earlier segments included).
    /// </summary>
    /// <param name="embeddings">The encode stage's output (the same as the suspended run's).</param>
    /// <param name="settings">The run's settings (equal to <paramref name="from"/>'s).</param>
    /// <param name="from">A suspended run to resume (consumed), or null to start from noise.</param>
    /// <param name="suspend">Asked before each step but the segment's first; null never suspends.</param>
    /// <param name="progress">Told after each step.</param>
    /// <param name="cancellationToken">Stops the run at a step boundary.</param>
    /// <exception cref="ArgumentException">when the settings do not fit the manifest, the embeddings or
    /// <paramref name="from"/>.</exception>
    /// <exception cref="InvalidOperationException">when <paramref name="from"/> was resumed already, or was
    /// suspended by the other loop (host vs device).</exception>
    /// <exception cref="OperationCanceledException">when <paramref name="cancellationToken"/> is cancelled.</exception>
    public DiffuseOutcome Diffuse(
        Embeddings embeddings,
        DiffuseSettings settings,
        SuspendedDiffuse? from,
        Func<bool>? suspend,
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
        var expectedInputs = 3 + new[] { stage.TextEmbeds, stage.TimeIds, stage.ImgIds, stage.TxtIds, stage.Guidance }.Count(n => n is not null);
        if (session.Inputs.Count != expectedInputs)
            throw new InvalidOperationException(
                $"the denoiser takes {session.Inputs.Count} inputs ({string.Join(", ", session.Inputs)}); Trident feeds exactly the {expectedInputs} the manifest names");

        if (session.Outputs.Count != 1)
            throw new InvalidOperationException(
                $"the denoiser has {session.Outputs.Count} outputs ({string.Join(", ", session.Outputs)}); Trident reads exactly '{stage.Prediction}'");
        var latentType = session.Inputs[latentIndex].ElementType;
        if (latentType is not (TensorElementType.Float or TensorElementType.Float16) || session.Outputs[predictionIndex].ElementType != latentType)
            throw new NotSupportedException(
                $"denoiser {session.Inputs[latentIndex]} -> {session.Outputs[predictionIndex]}: Trident runs float32 or float16 latents, the same type in and out");

        var batch = embeddings.Batch;
        var shape = manifest.LatentShape(batch, settings.Width, settings.Height, settings.Frames);
        var perItem = checked((int)(Tensor.ElementCount(shape) / batch));
        var sampler = pipeline.SamplerFor(settings.Scheduler);
        if (manifest.Sampler is FlowEulerSettings { Dynamic: { } dynamic } flow && sampler is FlowEulerSampler)
            sampler = FlowEulerSampler.WithMu(flow.NumTrainTimesteps, FlowEulerSampler.MuOf(manifest.ImageSequenceLength(settings.Width, settings.Height), dynamic));
        float[] x;
        ISamplerRun samplerRun;
        Half[]? startHalf = null;
        if (from is null)
        {
            x = new float[batch * perItem];
            for (var b = 0; b < batch; b++) new GaussianNoise(settings.Seeds[b]).Fill(x.AsSpan(b * perItem, perItem));
            samplerRun = sampler.Start(settings.Steps, settings.Seeds);
            if (samplerRun.InitialNoiseScale != 1)
            {
                var noiseScale = (float)samplerRun.InitialNoiseScale;
                for (var i = 0; i < x.Length; i++) x[i] *= noiseScale;
            }
        }
        else
        {
            CheckResume(from, settings, batch);
            from.Take();
            samplerRun = from.SamplerRun;
            if (from.Latents.ElementType == TensorElementType.Float16)
            {
                x = new float[batch * perItem];
                startHalf = (Half[])from.Latents.AsHalf().Clone();
            }
            else x = (float[])from.Latents.AsFloat().Clone();
        }

        var rows = guided ? 2 * batch : batch;
        // A batch (and guidance's two passes as one batch of 2) needs a dynamic batch axis, or one fixed at the
        // rows this run feeds: read from the model's metadata.
        var declared = session.Inputs[latentIndex].Shape;
        if (declared.Count > 0 && declared[0] > 0 && declared[0] != rows)
            throw new NotSupportedException(
                $"the denoiser's '{stage.Latents}' input {session.Inputs[latentIndex].Declared()} has a fixed batch of {declared[0]}; this run feeds {rows} rows " +
                $"({batch} request(s){(guided ? " × 2 for classifier-free guidance" : "")}): export it with a dynamic batch axis");
        var modelShape = (long[])shape.Clone();
        modelShape[0] = rows;
        var text = (guided || !embeddings.HasUnconditional ? embeddings.Tensor : embeddings.Conditional())
            .As(session.Inputs[textIndex].ElementType);
        var extra = ExtraInputs(session, stage, embeddings, guided, rows, settings);
        var run = new Run(session, latentIndex, timestepIndex, textIndex, x, shape, modelShape, text, guided, settings, progress, sampler, samplerRun, extra,
            from?.Step ?? 0, startHalf, suspend, batch);
        // The device loop runs a linear step as a graph; other samplers (state, noise, input scaling) run on the host.
        var onDevice = samplerRun.Linear && (loop == DiffuseLoop.Device || (loop == DiffuseLoop.Auto && session.Provider is ExecutionProvider.Cuda));
        if (from is not null && from.OnDevice != onDevice)
            throw new InvalidOperationException(
                $"the run was suspended from the {(from.OnDevice ? "device" : "host")} loop and would resume in the {(onDevice ? "device" : "host")} loop: resume on a device of the same provider");
        var suspended = onDevice ? DeviceLoop(run, cancellationToken) : HostLoop(run, cancellationToken);
        if (suspended is not null) return new DiffuseOutcome(null, suspended);
        if (manifest.Latents.Packing is var p and > 1)
        {
            // Packed tokens (Flux) back to [batch, C, h/f, w/f] for the decoder.
            var f = manifest.Latents.SpatialScaleFactor;
            int c = manifest.Latents.Channels, h = settings.Height / f, w = settings.Width / f;
            return new DiffuseOutcome(new Latents(Tensor.FromFloat(PackedLatents.Unpack(x, batch, c, h, w, p), batch, c, h, w), settings.Width, settings.Height, settings.Frames), null);
        }
        return new DiffuseOutcome(new Latents(Tensor.FromFloat(x, shape), settings.Width, settings.Height, settings.Frames), null);
    }

    // A resumption continues the very run that was suspended: same size, steps, seeds, guidance, sampler and threads.
    private static void CheckResume(SuspendedDiffuse from, DiffuseSettings s, int batch)
    {
        var f = from.Settings;
        if (f.Width != s.Width || f.Height != s.Height || f.Frames != s.Frames || f.Steps != s.Steps || !f.GuidanceScale.Equals(s.GuidanceScale)
            || f.Scheduler != s.Scheduler || f.IntraOpThreads != s.IntraOpThreads || !f.Seeds.SequenceEqual(s.Seeds) || from.Batch != batch)
            throw new ArgumentException(
                $"resume: the settings ({s.Width}×{s.Height}×{s.Frames}, {s.Steps} steps, {s.IntraOpThreads} threads, batch {batch}) differ from the suspended run's " +
                $"({f.Width}×{f.Height}×{f.Frames}, {f.Steps} steps, {f.IntraOpThreads} threads, batch {from.Batch}, or its seeds, guidance or sampler)", nameof(s));
    }

    // The denoiser inputs that stay the same for every step besides the text: SDXL's pooled text_embeds
    // [rows, width] (the encode stage's, rows as the text's) and time_ids [rows, 6] = (original height, original
    // width, crop top, crop left, target height, target width), which diffusers' StableDiffusionXLPipeline
    // (_get_add_time_ids) builds from original_size = target_size = (height, width) and crops_coords_top_left =
    // (0, 0) by default, for the conditional and the unconditional rows alike. Types are the model's.
    private IReadOnlyList<(string Name, Tensor Value)> ExtraInputs(
        Session session, Pipelines.DenoiserStage stage, Embeddings embeddings, bool guided, int rows, DiffuseSettings settings)
    {
        var extra = new List<(string, Tensor)>();
        if (stage.TextEmbeds is { } textEmbeds)
        {
            var pooled = (guided || !embeddings.HasUnconditional ? embeddings.Pooled : embeddings.PooledConditional())
                ?? throw new ArgumentException($"the denoiser takes '{textEmbeds}' but the embeddings have no pooled rows", nameof(embeddings));
            extra.Add((textEmbeds, pooled.As(session.Inputs[session.InputIndex(textEmbeds)].ElementType)));
        }
        if (stage.TimeIds is { } timeIds)
        {
            var info = session.Inputs[session.InputIndex(timeIds)];
            float[] row = [settings.Height, settings.Width, 0, 0, settings.Height, settings.Width];
            var values = new float[rows * row.Length];
            for (var r = 0; r < rows; r++) row.CopyTo(values, r * row.Length);
            extra.Add((timeIds, info.ElementType == TensorElementType.Int64
                ? Tensor.FromInt64(Array.ConvertAll(values, v => (long)v), rows, row.Length)
                : Tensor.FromFloat(values, rows, row.Length).As(info.ElementType)));
        }
        if (stage.ImgIds is { } imgIds)
        {
            // FluxPipeline._prepare_latent_image_ids: (0, row, column) of each packed token, row-major.
            var info = session.Inputs[session.InputIndex(imgIds)];
            var f = pipeline.Manifest.Latents.SpatialScaleFactor * pipeline.Manifest.Latents.Packing;
            int h = settings.Height / f, w = settings.Width / f;
            var ids = new float[h * w * 3];
            for (var i = 0; i < h; i++)
                for (var j = 0; j < w; j++)
                    (ids[(i * w + j) * 3 + 1], ids[(i * w + j) * 3 + 2]) = (i, j);
            extra.Add((imgIds, PositionIds(info, ids, h * w, rows)));
        }
        if (stage.TxtIds is { } txtIds)
        {
            var info = session.Inputs[session.InputIndex(txtIds)];
            var tokens = checked((int)embeddings.Tensor.Shape[1]);
            extra.Add((txtIds, PositionIds(info, new float[tokens * 3], tokens, rows)));
        }
        if (stage.Guidance is { } guidanceName)
        {
            // FluxPipeline: guidance = full([1], guidance_scale).expand(batch), float; the transformer scales it.
            var info = session.Inputs[session.InputIndex(guidanceName)];
            var values = new float[rows];
            Array.Fill(values, (float)settings.GuidanceScale);
            extra.Add((guidanceName, Tensor.FromFloat(values, info.Shape.Count == 0 ? [] : [rows]).As(info.ElementType)));
        }
        return extra;
    }

    // Position ids [tokens, 3] as newer exports declare them (diffusers ≥ 0.31, 2-D), or [rows, tokens, 3] as older
    // ones do (3-D with batch), in the model's element type (float or int64).
    private static Tensor PositionIds(TensorInfo info, float[] ids, int tokens, int rows)
    {
        var batched = info.Shape.Count == 3;
        var values = ids;
        if (batched)
        {
            values = new float[rows * ids.Length];
            for (var r = 0; r < rows; r++) ids.CopyTo(values, r * ids.Length);
        }
        long[] shape = batched ? [rows, tokens, 3] : [tokens, 3];
        return info.ElementType switch
        {
            TensorElementType.Int64 => Tensor.FromInt64(Array.ConvertAll(values, v => (long)v), shape),
            TensorElementType.Float or TensorElementType.Float16 => Tensor.FromFloat(values, shape).As(info.ElementType),
            _ => throw new NotSupportedException($"denoiser input {info}: Trident feeds position ids as float or int64"),
        };
    }

    // What both loops need.
    private sealed record Run(
        Session Session, int LatentIndex, int TimestepIndex, int TextIndex, float[] X, long[] Shape, long[] ModelShape,
        Tensor Text, bool Guided, DiffuseSettings Settings, IProgress<DiffuseProgress>? Progress, ISampler Sampler, ISamplerRun SamplerRun,
        IReadOnlyList<(string Name, Tensor Value)> Extra, int First, Half[]? StartHalf, Func<bool>? Suspend, int Batch)
    {
        // Before step i: suspend when asked, never before the segment's first step (each segment makes progress).
        public bool SuspendBefore(int i) => i > First && Suspend?.Invoke() == true;

        public TensorElementType LatentType => Session.Inputs[LatentIndex].ElementType;
    }

    private static SuspendedDiffuse? HostLoop(Run r, CancellationToken ct)
    {
        var x = r.X;
        var rows = checked((int)r.ModelShape[0]);
        var count = r.Guided ? 2 * x.Length : x.Length;
        var half = r.LatentType == TensorElementType.Float16;
        var samplerRun = r.SamplerRun;
        var scaled = !samplerRun.Linear; // σ-space samplers feed x / √(σ² + 1)
        // Without guidance or input scaling a float32 network reads x itself; otherwise x is copied (scaled,
        // converted) in each step.
        var modelInput = half ? Tensor.FromHalf(new Half[count], r.ModelShape)
            : Tensor.FromFloat(r.Guided || scaled ? new float[count] : x, r.ModelShape);
        var prediction = half ? Tensor.FromHalf(new Half[count], r.ModelShape) : Tensor.FromFloat(new float[count], r.ModelShape);
        var velocityBuffer = half ? new float[count] : prediction.AsFloat();
        var timestep = new TimestepInput(r.Session.Inputs[r.TimestepIndex], rows);

        var inputs = new OrtValue[r.Session.Inputs.Count];
        var outputs = new OrtValue[1];
        try
        {
            inputs[r.LatentIndex] = modelInput.ToOrtValue();
            inputs[r.TimestepIndex] = timestep.Tensor.ToOrtValue();
            inputs[r.TextIndex] = r.Text.ToOrtValue();
            foreach (var (name, value) in r.Extra) inputs[r.Session.InputIndex(name)] = value.ToOrtValue();
            outputs[0] = prediction.ToOrtValue();

            var steps = r.Settings.Steps;
            var timesteps = samplerRun.Timesteps;
            var scale = (float)r.Settings.GuidanceScale;
            var clock = Stopwatch.StartNew();
            for (var i = r.First; i < steps; i++)
            {
                ct.ThrowIfCancellationRequested();
                // x is host memory already: the suspended run keeps it as it is (this call owns it)
                if (r.SuspendBefore(i)) return new SuspendedDiffuse(r.Settings, r.Batch, i, Tensor.FromFloat(x, r.Shape), onDevice: false, samplerRun);
                var inputScale = (float)samplerRun.InputScale(i);
                if (half)
                {
                    var m = modelInput.AsHalf();
                    Convert(x, m.AsSpan(0, x.Length), inputScale);
                    if (r.Guided) m.AsSpan(0, x.Length).CopyTo(m.AsSpan(x.Length));
                }
                else if (scaled)
                {
                    var m = modelInput.AsFloat();
                    for (var k = 0; k < x.Length; k++) m[k] = x[k] * inputScale;
                    if (r.Guided) m.AsSpan(0, x.Length).CopyTo(m.AsSpan(x.Length));
                }
                else if (r.Guided)
                {
                    x.CopyTo(modelInput.AsFloat(), 0);
                    x.CopyTo(modelInput.AsFloat(), x.Length);
                }
                timestep.Set(timesteps[i]);
                r.Session.Run(inputs, outputs, ct);
                if (half) Convert(prediction.AsHalf(), velocityBuffer);
                var velocity = velocityBuffer.AsSpan(0, x.Length);
                if (r.Guided) ClassifierFreeGuidance.Combine(velocityBuffer.AsSpan(x.Length), velocity, scale, velocity);
                samplerRun.Step(x, velocity, i);
                r.Progress?.Report(new DiffuseProgress(i + 1, steps, clock.Elapsed));
            }
            return null;
        }
        finally
        {
            foreach (var v in inputs) v?.Dispose();
            foreach (var v in outputs) v?.Dispose();
        }
    }

    private SuspendedDiffuse? DeviceLoop(Run r, CancellationToken ct)
    {
        var session = r.Session;
        var type = r.LatentType;
        var ortType = (Microsoft.ML.OnnxRuntime.Tensors.TensorElementType)(int)type;
        var half = type == TensorElementType.Float16;
        var step = pipeline.StepSession(r.Shape.Length, type, r.Guided);
        var stage = pipeline.Manifest.Stages.Denoiser;
        var rowCount = checked((int)Tensor.ElementCount(r.ModelShape));
        var sampler = r.Sampler;
        var steps = r.Settings.Steps;
        var timesteps = sampler.Timesteps(steps);
        var rows = checked((int)r.ModelShape[0]);
        var timestep = new TimestepInput(session.Inputs[r.TimestepIndex], rows);
        var coefficients = half ? Tensor.FromHalf(new Half[3], 3) : Tensor.FromFloat(new float[3], 3);
        var hostX = half ? Tensor.FromHalf(r.StartHalf ?? Array.ConvertAll(r.X, f => (Half)f), r.Shape) : Tensor.FromFloat(r.X, r.Shape);
        var zeros = half ? Tensor.FromHalf(new Half[rowCount], r.ModelShape) : Tensor.FromFloat(new float[rowCount], r.ModelShape);
        var g = r.Settings.GuidanceScale;

        using var allocator = session.CreateDeviceAllocator();
        using var xA = OrtValue.CreateAllocatedTensorValue(allocator, ortType, r.Shape);
        using var xB = OrtValue.CreateAllocatedTensorValue(allocator, ortType, r.Shape);
        using var modelInput = OrtValue.CreateAllocatedTensorValue(allocator, ortType, r.ModelShape);
        using var prediction = OrtValue.CreateAllocatedTensorValue(allocator, ortType, r.ModelShape);
        using var hostXValue = hostX.ToOrtValue();
        using var zerosValue = zeros.ToOrtValue();
        using var timestepValue = timestep.Tensor.ToOrtValue();
        using var coefficientValue = coefficients.ToOrtValue();
        using var textValue = r.Text.ToOrtValue();

        // Copy: the step graph with keep = 1, move = 0 copies x exactly (here the host noise, or a suspended run's
        // latents, into xA and the model input; on suspension the device latents into the host buffer).
        void Copy(OrtValue from, OrtValue to)
        {
            SetCoefficients(coefficients, 1, 0, g);
            using var copy = step.CreateBinding();
            copy.BindInput(SamplerStepGraph.X, from);
            copy.BindInput(SamplerStepGraph.Prediction, zerosValue);
            copy.BindInput(SamplerStepGraph.Coefficients, coefficientValue);
            copy.BindOutput(SamplerStepGraph.XNext, to);
            copy.BindOutput(SamplerStepGraph.ModelInput, modelInput);
            step.Run(copy, ct);
        }
        Copy(hostXValue, xA);

        using var denoise = session.CreateBinding();
        denoise.BindInput(stage.Latents, modelInput);
        denoise.BindInput(stage.EncoderHiddenStates, textValue); // copied to the device once, here
        // text_embeds, time_ids, img_ids, txt_ids, guidance: alive until the loop ends, as the text is.
        var extraValues = new List<OrtValue>(r.Extra.Count);
        using var disposeExtra = new ExtraValues(extraValues);
        foreach (var (name, value) in r.Extra)
        {
            extraValues.Add(value.ToOrtValue());
            denoise.BindInput(name, extraValues[^1]);
        }
        denoise.BindOutput(stage.Prediction, prediction);
        using var forward = StepBinding(step, xA, xB, prediction, modelInput);
        using var backward = StepBinding(step, xB, xA, prediction, modelInput);

        var clock = Stopwatch.StartNew();
        for (var i = r.First; i < steps; i++)
        {
            ct.ThrowIfCancellationRequested();
            // the segment's step j reads xA when j is even, xB when odd
            var even = (i - r.First) % 2 == 0;
            if (r.SuspendBefore(i))
            {
                Copy(even ? xA : xB, hostXValue);
                var kept = half ? Tensor.FromHalf((Half[])hostX.AsHalf().Clone(), r.Shape) : Tensor.FromFloat((float[])hostX.AsFloat().Clone(), r.Shape);
                return new SuspendedDiffuse(r.Settings, r.Batch, i, kept, onDevice: true, r.SamplerRun);
            }
            timestep.Set(timesteps[i]);
            denoise.BindInput(stage.Timestep, timestepValue); // a host input is copied at bind time: rebind each step
            session.Run(denoise, ct);
            var (keep, move) = sampler.LinearStep(i, steps);
            SetCoefficients(coefficients, keep, move, g);
            var binding = even ? forward : backward;
            binding.BindInput(SamplerStepGraph.Coefficients, coefficientValue);
            if (i == steps - 1) binding.BindOutput(SamplerStepGraph.XNext, hostXValue); // the final latents come down once
            step.Run(binding, ct);
            r.Progress?.Report(new DiffuseProgress(i + 1, steps, clock.Elapsed));
        }
        if (half) Convert(hostX.AsHalf(), r.X);
        return null;
    }

    private sealed class ExtraValues(List<OrtValue> values) : IDisposable
    {
        public void Dispose()
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static OrtIoBinding StepBinding(Session step, OrtValue from, OrtValue to, OrtValue prediction, OrtValue modelInput)
    {
        var binding = step.CreateBinding();
        try
        {
            binding.BindInput(SamplerStepGraph.X, from);
            binding.BindInput(SamplerStepGraph.Prediction, prediction);
            binding.BindOutput(SamplerStepGraph.XNext, to);
            binding.BindOutput(SamplerStepGraph.ModelInput, modelInput);
            return binding;
        }
        catch
        {
            binding.Dispose();
            throw;
        }
    }

    private static void SetCoefficients(Tensor coefficients, double keep, double move, double guidance)
    {
        if (coefficients.ElementType == TensorElementType.Float16)
        {
            var h = coefficients.AsHalf();
            (h[0], h[1], h[2]) = ((Half)keep, (Half)move, (Half)guidance);
        }
        else
        {
            var f = coefficients.AsFloat();
            (f[0], f[1], f[2]) = ((float)keep, (float)move, (float)guidance);
        }
    }

    private static void Convert(ReadOnlySpan<float> from, Span<Half> to, float scale = 1f)
    {
        for (var i = 0; i < from.Length; i++) to[i] = (Half)(from[i] * scale);
    }

    private static void Convert(ReadOnlySpan<Half> from, Span<float> to)
    {
        for (var i = 0; i < from.Length; i++) to[i] = (float)from[i];
    }

    /// <summary>Whether a run at <paramref name="guidanceScale"/> uses classifier-free guidance on this pipeline
    /// (and so needs embeddings with unconditional rows).</summary>
    public bool UsesGuidance(double guidanceScale) => pipeline.Manifest.Guidance.RunsClassifierFree(guidanceScale);

    private void Check(Embeddings embeddings, DiffuseSettings s, bool guided)
    {
        var problems = new List<string>();
        problems.AddRange(pipeline.Manifest.CheckSize(s.Width, s.Height, s.Frames).Select(e => e.ToString()));
        var names = SamplerFactory.Names(pipeline.Manifest.Sampler);
        if (s.Scheduler is { } scheduler && !names.Contains(scheduler))
            problems.Add($"scheduler: '{scheduler}' is not one of {string.Join(", ", names)}");
        else
        {
            var maxSteps = pipeline.SamplerFor(s.Scheduler).MaxSteps;
            if (s.Steps < 1 || s.Steps > maxSteps) problems.Add($"steps: must be between 1 and {maxSteps}");
        }
        if (s.IntraOpThreads < 1) problems.Add("intra-op threads: must be at least 1");
        if (s.Seeds is null || s.Seeds.Count != embeddings.Batch)
            problems.Add($"seeds: {s.Seeds?.Count ?? 0} seeds for a batch of {embeddings.Batch}");
        if (!(double.IsFinite(s.GuidanceScale) && s.GuidanceScale >= 0)) problems.Add("guidance: must be a number ≥ 0");
        else if (!pipeline.Manifest.Guidance.Accepted && s.GuidanceScale != 1.0)
            problems.Add($"guidance: pipeline '{pipeline.Manifest.Name}' has no guidance (the scale must be 1)");
        else if (guided && !embeddings.HasUnconditional)
            problems.Add($"guidance: scale {s.GuidanceScale} needs unconditional embeddings (encode with negative prompts; empty strings for none)");
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(s));
    }

    /// <summary>The timestep input in the element type and rank the model declares (float or int64; [rows] or a
    /// scalar), refilled in place each step.</summary>
    private sealed class TimestepInput
    {
        private readonly float[]? floats;
        private readonly Half[]? halves;
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
                case TensorElementType.Float16:
                    halves = new Half[count];
                    Tensor = Tensor.FromHalf(halves, shape);
                    break;
                case TensorElementType.Int64:
                    longs = new long[count];
                    Tensor = Tensor.FromInt64(longs, shape);
                    break;
                default:
                    throw new NotSupportedException($"denoiser input {info}: Trident feeds timesteps as float32, float16 or int64");
            }
        }

        public Tensor Tensor { get; }

        public void Set(float t)
        {
            if (floats is not null) Array.Fill(floats, t);
            else if (halves is not null) Array.Fill(halves, (Half)t);
            else Array.Fill(longs!, (long)MathF.Round(t));
        }
    }
}
