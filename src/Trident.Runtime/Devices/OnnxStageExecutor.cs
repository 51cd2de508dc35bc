// The stage executor of one device over ONNX Runtime: the encode, diffuse and decode executors of
// Trident.Runtime.Execution, each stage on its own LoadedPipeline (opened from the device's pipeline with
// Reopen), so a stage's sessions are created when the placement gives the device the stage (Load, run by the
// worker before its first task and on each Retype; a stage's first task creates them if that load failed)
// and released — weights and arena — when the device's placement type stops holding it. Every device has its own sessions, as a GPU holds its own copy
// of the weights; on CPU a diffuse of degree k runs a session with the k slots' threads, encode and decode
// run with the device's own threads.

using Trident.Runtime.Execution;
using Trident.Runtime.Imaging;
using Trident.Runtime.Onnx;
using Trident.Scheduling;

namespace Trident.Runtime.Devices;

/// <summary>Runs one pipeline's stages on one device.</summary>
public sealed class OnnxStageExecutor : IStageExecutor
{
    private readonly LoadedPipeline _device;
    private readonly int _threads;
    private readonly Dictionary<Stage, LoadedPipeline> _stages = new();
    private readonly object _gate = new();

    /// <summary>An executor over <paramref name="pipeline"/> (owned by the executor from now on).</summary>
    public OnnxStageExecutor(LoadedPipeline pipeline, int intraOpThreads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(intraOpThreads, 1);
        _device = pipeline;
        _threads = intraOpThreads;
    }

    /// <summary>
    /// An executor over <paramref name="pipeline"/> that adopts the sessions of <paramref name="verified"/> — a pipeline
    /// over the same directory and provider whose models <see cref="LoadedPipeline.Verify"/> loaded with
    /// <paramref name="intraOpThreads"/> threads: each stage whose models all have such a session is resident at once,
    /// on those sessions, instead of loading them again. Both pipelines are owned by the executor from now on; the
    /// sessions not adopted are released now (the worker then unloads the stages its placement type does not hold).
    /// </summary>
    public OnnxStageExecutor(LoadedPipeline pipeline, int intraOpThreads, LoadedPipeline verified) : this(pipeline, intraOpThreads)
    {
        ArgumentNullException.ThrowIfNull(verified);
        using (verified)
        {
            foreach (var stage in new[] { Stage.Encode, Stage.Diffuse, Stage.Decode })
            {
                var models = ModelsOf(stage);
                if (models.All(m => verified.HasSession(m, intraOpThreads))) _stages[stage] = verified.Detach(models);
            }
        }
    }

    // the models a stage runs: every text encoder the pipeline has for encode
    private StageModel[] ModelsOf(Stage stage) =>
        stage.IsEncode ? _device.Models.Where(m => m is StageModel.TextEncoder or StageModel.TextEncoder2 or StageModel.TextEncoder3).ToArray()
        : stage.IsDiffuse ? [StageModel.Denoiser]
        : [StageModel.VaeDecoder];

    /// <inheritdoc />
    public IReadOnlySet<Stage> Resident
    {
        get { lock (_gate) return new HashSet<Stage>(_stages.Keys); }
    }

    private LoadedPipeline For(Stage stage)
    {
        lock (_gate)
        {
            if (!_stages.TryGetValue(stage, out var p)) _stages[stage] = p = _device.Reopen();
            return p;
        }
    }

    /// <inheritdoc />
    public void Load(Stage stage)
    {
        var model = stage.IsEncode ? StageModel.TextEncoder : stage.IsDiffuse ? StageModel.Denoiser : StageModel.VaeDecoder;
        // A diffuse of degree 1 runs with the device's own threads; other degrees create their session on use.
        For(stage).Session(model, _threads);
    }

    /// <inheritdoc />
    public void Unload(Stage stage)
    {
        LoadedPipeline? p;
        lock (_gate)
        {
            if (!_stages.Remove(stage, out p)) return;
        }
        p.Dispose();
    }

    private bool Guided(GenerationInput input) => _device.Manifest.Guidance.RunsClassifierFree(input.Guidance);

    /// <inheritdoc />
    public StageOutput Encode(GenerationInput input, CancellationToken cancellationToken)
    {
        var embeddings = new EncodeExecutor(For(Stage.Encode)).Encode(
            [input.Prompt], Guided(input) ? [input.NegativePrompt ?? ""] : null, _threads, cancellationToken);
        return new StageOutput(embeddings, embeddings.Bytes);
    }

    /// <inheritdoc />
    public StageOutput Diffuse(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer, CancellationToken cancellationToken)
    {
        var settings = new DiffuseSettings(input.Width, input.Height, input.Frames, input.Steps, [input.Seed], input.Guidance, intraOpThreads, input.Scheduler);
        var latents = new DiffuseExecutor(For(Stage.Diffuse)).Diffuse(
            (Embeddings)embeddings.Value, settings, new StepProgress(observer), cancellationToken);
        return new StageOutput(latents, latents.Bytes);
    }

    /// <inheritdoc />
    public bool CanSuspend => true;

    /// <inheritdoc />
    public DiffuseSegmentResult DiffuseSegment(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer,
        DiffuseCheckpoint? from, Func<bool> suspend, CancellationToken cancellationToken)
    {
        var settings = new DiffuseSettings(input.Width, input.Height, input.Frames, input.Steps, [input.Seed], input.Guidance, intraOpThreads, input.Scheduler);
        var state = from is null ? null
            : from.State as SuspendedDiffuse ?? throw new ArgumentException($"the checkpoint holds a {from.State.GetType().Name}, not an ONNX diffuse", nameof(from));
        var outcome = new DiffuseExecutor(For(Stage.Diffuse)).Diffuse(
            (Embeddings)embeddings.Value, settings, state, suspend, new StepProgress(observer), cancellationToken);
        return outcome.Suspended is { } s
            ? new DiffuseSegmentResult(null, new DiffuseCheckpoint(s.Step, input.Steps, intraOpThreads, s, s.Bytes))
            : new DiffuseSegmentResult(new StageOutput(outcome.Latents!, outcome.Latents!.Bytes), null);
    }

    /// <inheritdoc />
    public IReadOnlyList<RgbImage> Decode(GenerationInput input, StageOutput latents, CancellationToken cancellationToken) =>
        new DecodeExecutor(For(Stage.Decode)).Decode((Latents)latents.Value, _threads, cancellationToken)[0];

    // Batches: one Run per stage over the batch dimension. Item b's noise comes from its own seed and no
    // stage reduces across the batch, so each item is the same as the request run alone (tested bit for bit
    // on the tiny pipeline: ExecutionTests, "a batch is bit-identical to its requests run alone").

    /// <inheritdoc />
    public StageOutput EncodeBatch(IReadOnlyList<GenerationInput> inputs, CancellationToken cancellationToken)
    {
        BatchInputs.Check(inputs);
        var embeddings = new EncodeExecutor(For(Stage.Encode)).Encode(
            inputs.Select(i => i.Prompt).ToArray(), Guided(inputs[0]) ? inputs.Select(i => i.NegativePrompt ?? "").ToArray() : null, _threads, cancellationToken);
        return new StageOutput(embeddings, embeddings.Bytes);
    }

    /// <inheritdoc />
    public StageOutput DiffuseBatch(IReadOnlyList<GenerationInput> inputs, StageOutput embeddings, int intraOpThreads, IReadOnlyList<IStepObserver> observers,
        CancellationToken cancellationToken)
    {
        BatchInputs.Check(inputs);
        var input = inputs[0];
        var settings = new DiffuseSettings(input.Width, input.Height, input.Frames, input.Steps, inputs.Select(i => i.Seed).ToArray(), input.Guidance,
            intraOpThreads, input.Scheduler);
        var latents = new DiffuseExecutor(For(Stage.Diffuse)).Diffuse(
            (Embeddings)embeddings.Value, settings, new StepProgress(observers), cancellationToken);
        return new StageOutput(latents, latents.Bytes);
    }

    /// <inheritdoc />
    public IReadOnlyList<IReadOnlyList<RgbImage>> DecodeBatch(IReadOnlyList<GenerationInput> inputs, StageOutput latents, CancellationToken cancellationToken)
    {
        BatchInputs.Check(inputs);
        var frames = new DecodeExecutor(For(Stage.Decode)).Decode((Latents)latents.Value, _threads, cancellationToken);
        if (frames.Length != inputs.Count)
            throw new InvalidOperationException($"the decoder returned {frames.Length} items for a batch of {inputs.Count}");
        return frames;
    }

    /// <inheritdoc />
    public StageOutput EncodeItems(IReadOnlyList<GenerationInput> inputs, CancellationToken cancellationToken)
    {
        BatchInputs.Check(inputs);
        var encoder = new EncodeExecutor(For(Stage.Encode));
        var guided = Guided(inputs[0]);
        var embeddings = Embeddings.Stack(inputs.Select(i =>
            encoder.Encode([i.Prompt], guided ? [i.NegativePrompt ?? ""] : null, _threads, cancellationToken)).ToArray());
        return new StageOutput(embeddings, embeddings.Bytes);
    }

    /// <inheritdoc />
    public IReadOnlyList<IReadOnlyList<RgbImage>> DecodeItems(IReadOnlyList<GenerationInput> inputs, StageOutput latents, CancellationToken cancellationToken)
    {
        BatchInputs.Check(inputs);
        var all = (Latents)latents.Value;
        if (all.Batch != inputs.Count)
            throw new InvalidOperationException($"latents of a batch of {all.Batch} for {inputs.Count} requests");
        var decoder = new DecodeExecutor(For(Stage.Decode));
        return Enumerable.Range(0, inputs.Count).Select(i => (IReadOnlyList<RgbImage>)decoder.Decode(all.Item(i), _threads, cancellationToken)[0]).ToArray();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var p in _stages.Values) p.Dispose();
            _stages.Clear();
        }
        _device.Dispose();
    }

    // Progress is reported synchronously on the worker's thread, after each step.
    private sealed class StepProgress(params IReadOnlyList<IStepObserver> observers) : IProgress<DiffuseProgress>
    {
        public void Report(DiffuseProgress value)
        {
            foreach (var observer in observers) observer.StepCompleted(value.Completed, value.Steps);
        }
    }
}

/// <summary>Creates an <see cref="OnnxStageExecutor"/> per device over one pipeline directory, on the
/// device's own execution provider (<see cref="DeviceSpec.Provider"/>).</summary>
public sealed class OnnxStageExecutorFactory(string pipelineDirectory) : IStageExecutorFactory
{
    private LoadedPipeline? _verified;
    private readonly DeviceSpec? _verifiedFor;

    /// <summary>A factory whose executor for <paramref name="device"/> (its first one) adopts the sessions of
    /// <paramref name="verified"/>, a pipeline over the same directory on <paramref name="device"/>'s provider checked
    /// by <see cref="LoadedPipeline.Verify"/> with its intra-op threads (see <see cref="OnnxStageExecutor"/>); the
    /// factory owns it until then.</summary>
    public OnnxStageExecutorFactory(string pipelineDirectory, LoadedPipeline verified, DeviceSpec device) : this(pipelineDirectory)
    {
        _verified = verified ?? throw new ArgumentNullException(nameof(verified));
        _verifiedFor = device ?? throw new ArgumentNullException(nameof(device));
    }

    /// <inheritdoc />
    public IStageExecutor Create(DeviceSpec device)
    {
        var verified = device == _verifiedFor ? Interlocked.Exchange(ref _verified, null) : null;
        LoadedPipeline pipeline;
        try
        {
            pipeline = LoadedPipeline.Open(pipelineDirectory, device.Provider);
        }
        catch
        {
            verified?.Dispose();
            throw;
        }
        return verified is null
            ? new OnnxStageExecutor(pipeline, device.IntraOpThreads)
            : new OnnxStageExecutor(pipeline, device.IntraOpThreads, verified);
    }
}
