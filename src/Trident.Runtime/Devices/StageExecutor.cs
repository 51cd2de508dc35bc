// The executor interface a worker drives. One executor per device: it owns that device's ONNX Runtime
// sessions, creates a stage's session lazily on the first task that needs it, and releases it when the
// worker's placement type no longer holds the stage. Stage outputs (embeddings, latents) stay tensors
// from the encode worker to the diffuse group to the decode worker; nothing is re-computed.

using Trident.Runtime.Imaging;
using Trident.Scheduling;

namespace Trident.Runtime.Devices;

/// <summary>What a client asked to generate, as the stage executors need it.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="NegativePrompt">The negative prompt, or null for none (empty unconditional text).</param>
/// <param name="Width">Output width in pixels.</param>
/// <param name="Height">Output height in pixels.</param>
/// <param name="Frames">Output frames (1 for an image).</param>
/// <param name="Steps">Denoising steps.</param>
/// <param name="Seed">Seed of the initial noise.</param>
/// <param name="Guidance">Classifier-free guidance scale.</param>
/// <param name="Output">The result file asked for (format, compression, frame rate); null: the defaults (PNG for an
/// image, MP4 at the server's frame rate for a video). Only the decode's last step, the file, reads it.</param>
/// <param name="Scheduler">The sampler to run (SamplerFactory.Names); null for the pipeline's own.</param>
public sealed record GenerationInput(
    string Prompt,
    string? NegativePrompt,
    int Width,
    int Height,
    int Frames,
    int Steps,
    ulong Seed,
    double Guidance,
    OutputSpec? Output = null,
    string? Scheduler = null)
{
    /// <summary>The scheduler's shape of this request.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Shape Shape => new(Height, Width, Frames);
}

/// <summary>Receives a diffuse task's progress: called after each completed denoising step.</summary>
public interface IStepObserver
{
    /// <summary>Step <paramref name="step"/> (1-based) of <paramref name="total"/> is done.</summary>
    void StepCompleted(int step, int total);
}

/// <summary>Runs the three stages of one pipeline on one device.</summary>
/// <remarks>Called from the device's worker thread only, one call at a time — except <see cref="Discard(StageOutput)"/>
/// and <see cref="Discard(DiffuseCheckpoint)"/>, which any thread may call at any time. Handoff values are opaque to
/// the worker and the serving loop: the executor that made them is the only one that reads them.</remarks>
public interface IStageExecutor : IDisposable
{
    /// <summary>The stages whose models are resident (loaded) on this device now.</summary>
    IReadOnlySet<Stage> Resident { get; }

    /// <summary>Releases the model of <paramref name="stage"/> if it is loaded.</summary>
    void Unload(Stage stage);

    /// <summary>Loads the model of <paramref name="stage"/> now (weights on the device, session created),
    /// as a placement does, so the stage's first task does not pay for it. Throws what loading throws; a
    /// failed load is not kept, the stage's next task tries again. The default loads nothing (executors
    /// without a load step).</summary>
    void Load(Stage stage) { }

    /// <summary>Encodes the prompt (and negative prompt) of a request.</summary>
    StageOutput Encode(GenerationInput input, CancellationToken cancellationToken);

    /// <summary>Runs the denoising loop from seeded noise, conditioned on <paramref name="embeddings"/>
    /// (made by any device's <see cref="Encode"/>), with <paramref name="intraOpThreads"/> threads.
    /// Cancellation is honoured at step boundaries.</summary>
    StageOutput Diffuse(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer, CancellationToken cancellationToken);

    /// <summary>Whether <see cref="DiffuseSegment"/> can stop a diffuse at a step boundary and resume it (issue 12,
    /// step-boundary preemption). The serving loop suspends only diffuse tasks of executors that can.</summary>
    bool CanSuspend => false;

    /// <summary>Runs a diffuse as <see cref="Diffuse"/> does, or resumes one from <paramref name="from"/> (a
    /// checkpoint this kind of executor made, on any device of the same provider), stopping at the first step
    /// boundary after the segment's first step where <paramref name="suspend"/> returns true. Resuming gives the
    /// same latents, bit for bit, as a run never suspended (same intra-op threads). The default (executors that
    /// cannot suspend) runs <see cref="Diffuse"/> to the end and cannot resume.</summary>
    /// <exception cref="NotSupportedException">when <paramref name="from"/> is given to an executor that cannot resume.</exception>
    DiffuseSegmentResult DiffuseSegment(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer,
        DiffuseCheckpoint? from, Func<bool> suspend, CancellationToken cancellationToken) =>
        from is null
            ? new DiffuseSegmentResult(Diffuse(input, embeddings, intraOpThreads, observer, cancellationToken), null)
            : throw new NotSupportedException($"{GetType().Name} cannot resume a suspended diffuse");

    /// <summary>Decodes latents (made by any device's <see cref="Diffuse"/>) into frames: one image for an
    /// image request, <c>Frames</c> images for a video.</summary>
    IReadOnlyList<RgbImage> Decode(GenerationInput input, StageOutput latents, CancellationToken cancellationToken);

    /// <summary>Whether <see cref="DecodeTiles"/> really decodes a video in temporal tiles and calls back between them
    /// (decode preemption, issue 12). The serving loop pauses only decodes of executors that can.</summary>
    bool CanPauseDecode => false;

    /// <summary>Decodes as <see cref="Decode"/> does — the same frames — in temporal tiles of
    /// <paramref name="tileFrames"/> frames (⌈frames / tileFrames⌉ tiles; one for an image), calling
    /// <paramref name="betweenTiles"/> on the calling thread after every tile but the last. The callback may run other
    /// work on the device (another decode): this decode's state and activation stay on the device meanwhile. The
    /// default (executors that cannot tile, see <see cref="CanPauseDecode"/>) runs <see cref="Decode"/> in one piece
    /// and never calls back.</summary>
    IReadOnlyList<RgbImage> DecodeTiles(GenerationInput input, StageOutput latents, int tileFrames, Action betweenTiles, CancellationToken cancellationToken) =>
        Decode(input, latents, cancellationToken);

    // Batches (issue 12): several requests of one shape, steps, guidance and sampler (BatchInputs.Check). An
    // executor that can run them as one run with the batch dimension overrides these; the defaults run the
    // requests one after another, so every executor accepts a batch. A batch's output is only read by the
    // same kind of executor's next batch stage.

    /// <summary>Encodes the prompts of a batch (one output for all).</summary>
    StageOutput EncodeBatch(IReadOnlyList<GenerationInput> inputs, CancellationToken cancellationToken) =>
        inputs.Count == 1 ? Encode(inputs[0], cancellationToken) : SequentialBatch.Run(this, inputs.Count, i => Encode(inputs[i], cancellationToken));

    /// <summary>Denoises a batch from each request's own seeded noise; <paramref name="observers"/> has one
    /// observer per request.</summary>
    StageOutput DiffuseBatch(IReadOnlyList<GenerationInput> inputs, StageOutput embeddings, int intraOpThreads, IReadOnlyList<IStepObserver> observers,
        CancellationToken cancellationToken) =>
        inputs.Count == 1
            ? Diffuse(inputs[0], embeddings, intraOpThreads, observers[0], cancellationToken)
            : SequentialBatch.Run(this, inputs.Count, i =>
                Diffuse(inputs[i], SequentialBatch.Item(embeddings, i), intraOpThreads, observers[i], cancellationToken));

    /// <summary>Decodes a batch: result[b] is the frames of request b.</summary>
    IReadOnlyList<IReadOnlyList<RgbImage>> DecodeBatch(IReadOnlyList<GenerationInput> inputs, StageOutput latents, CancellationToken cancellationToken) =>
        inputs.Count == 1
            ? [Decode(inputs[0], latents, cancellationToken)]
            : inputs.Select((input, i) => Decode(input, SequentialBatch.Item(latents, i), cancellationToken)).ToArray();

    // Item by item (issue 12): a stage whose batch does not pay (the profile's batch points: t(b) ≥ b · t(1) at
    // this shape and size, e.g. the tiny pipeline's compute-bound encoder and decoder on one CPU core) runs the
    // requests of a batch one run each, and hands over the same output as the batch run would, so the other
    // stages still run as one batch. The defaults run the batch (executors whose batch stage is already one run
    // per request, or that cannot tell).

    /// <summary>Encodes the prompts of a batch one request per run; the output is what <see cref="EncodeBatch"/> gives.</summary>
    StageOutput EncodeItems(IReadOnlyList<GenerationInput> inputs, CancellationToken cancellationToken) => EncodeBatch(inputs, cancellationToken);

    /// <summary>Decodes a batch one request per run: result[b] is the frames of request b.</summary>
    IReadOnlyList<IReadOnlyList<RgbImage>> DecodeItems(IReadOnlyList<GenerationInput> inputs, StageOutput latents, CancellationToken cancellationToken) =>
        DecodeBatch(inputs, latents, cancellationToken);

    // Outputs nobody will read (issue: a cluster worker kept them). A stage's output is normally dropped by the stage
    // that reads it; an output whose reader never comes — its job was cancelled or failed, or starts again — is handed
    // here by the serving loop (PlanExecutor), so that an executor that keeps outputs outside the value (a remote
    // worker's store: RemoteStageExecutor) frees them at once. Unlike the stage calls, these may be called from any
    // thread, while a stage call runs: an override is thread-safe and does not block (it sends, it does not wait).

    /// <summary>Frees <paramref name="output"/> (made by this kind of executor; a batch's output with every item):
    /// nothing will read it. Any thread; never blocks, never throws. The default does nothing: an in-process output
    /// is plain managed memory (a Tensor or byte[] holds no native object), collected once unreferenced.</summary>
    void Discard(StageOutput output) { }

    /// <summary>Frees <paramref name="checkpoint"/> (made by this kind of executor's <see cref="DiffuseSegment"/>):
    /// nothing will resume it. Any thread; never blocks, never throws. The default does nothing (an in-process
    /// checkpoint is managed host memory).</summary>
    void Discard(DiffuseCheckpoint checkpoint) { }
}

/// <summary>The output of a batch stage run one request at a time (the <see cref="IStageExecutor"/> defaults).</summary>
/// <param name="Items">One output per request, in batch order.</param>
public sealed record SequentialBatch(IReadOnlyList<StageOutput> Items)
{
    /// <summary>The outputs as one stage output (bytes summed).</summary>
    public static StageOutput Of(IEnumerable<StageOutput> items)
    {
        var all = items.ToArray();
        return new StageOutput(new SequentialBatch(all), all.Sum(o => o.Bytes));
    }

    /// <summary>Runs <paramref name="item"/> for items 0 … <paramref name="count"/> − 1 in order, as one output. When an
    /// item fails, the outputs of the items before it are handed to <paramref name="executor"/>'s
    /// <see cref="IStageExecutor.Discard(StageOutput)"/> (nothing will read them), then the error propagates.</summary>
    public static StageOutput Run(IStageExecutor executor, int count, Func<int, StageOutput> item)
    {
        var made = new List<StageOutput>(count);
        try
        {
            for (var i = 0; i < count; i++) made.Add(item(i));
        }
        catch
        {
            foreach (var o in made) executor.Discard(o);
            throw;
        }
        return Of(made);
    }

    /// <summary>Item <paramref name="i"/> of a batch output.</summary>
    /// <exception cref="InvalidOperationException">when <paramref name="output"/> is not a sequential batch of more than <paramref name="i"/> items.</exception>
    public static StageOutput Item(StageOutput output, int i) =>
        output.Value is SequentialBatch b && i < b.Items.Count ? b.Items[i]
            : throw new InvalidOperationException($"batch item {i}: the previous stage's output is {output.Value.GetType().Name}, not a batch of that size");
}

/// <summary>What the requests of one batch must share.</summary>
public static class BatchInputs
{
    /// <summary>Whether <paramref name="b"/> can run in one batch with <paramref name="a"/>: the same size, frames,
    /// steps, guidance scale and sampler (prompts, negative prompts and
    /// seeds may differ; the output file asked for is each request's own).</summary>
    public static bool Compatible(GenerationInput a, GenerationInput b) =>
        a.Width == b.Width && a.Height == b.Height && a.Frames == b.Frames && a.Steps == b.Steps
        && a.Guidance.Equals(b.Guidance) && a.Scheduler == b.Scheduler;

    /// <summary>Throws unless every input is <see cref="Compatible"/> with the first.</summary>
    /// <exception cref="ArgumentException">naming the first input that differs.</exception>
    public static void Check(IReadOnlyList<GenerationInput> inputs)
    {
        if (inputs.Count == 0) throw new ArgumentException("a batch needs at least one request", nameof(inputs));
        for (var i = 1; i < inputs.Count; i++)
            if (!Compatible(inputs[0], inputs[i]))
                throw new ArgumentException($"batch item {i} differs from item 0 in size, frames, steps, guidance or sampler", nameof(inputs));
    }
}

/// <summary>A stage's output handed to the next stage: the executor's own value, plus its size (for
/// monitoring and the transfer cost the scheduler assumes).</summary>
/// <param name="Value">The executor's value (embeddings or latents).</param>
/// <param name="Bytes">Size of the tensors it holds.</param>
public sealed record StageOutput(object Value, long Bytes);

/// <summary>A diffuse suspended at a step boundary (issue 12): the executor's own state (latents and sampler
/// state, in host memory), opaque to the worker and the serving loop like <see cref="StageOutput"/>.</summary>
/// <param name="Step">Denoising steps done; the resumption runs the rest.</param>
/// <param name="Steps">Steps of the whole run.</param>
/// <param name="IntraOpThreads">The threads it ran with; a resumption uses the same (bit-identical results).</param>
/// <param name="State">The executor's value.</param>
/// <param name="Bytes">Bytes kept.</param>
public sealed record DiffuseCheckpoint(int Step, int Steps, int IntraOpThreads, object State, long Bytes);

/// <summary>A diffuse segment's end: the latents, or the checkpoint it was suspended at.</summary>
/// <param name="Latents">The latents (null when suspended).</param>
/// <param name="Suspended">The checkpoint (null when it ran to the end).</param>
public sealed record DiffuseSegmentResult(StageOutput? Latents, DiffuseCheckpoint? Suspended);

/// <summary>A diffuse task that stopped at a step boundary because it was asked to (step-boundary preemption):
/// not a failure. Its latents task faults with it, so the tasks that wait on them (its decode, its reservations)
/// end; the serving loop resumes it from <see cref="Checkpoint"/>. An <see cref="OperationCanceledException"/>, as
/// the run was stopped on request, but the request itself goes on.</summary>
public sealed class DiffuseSuspendedException(DiffuseCheckpoint checkpoint)
    : OperationCanceledException($"the diffuse was suspended after step {checkpoint.Step} of {checkpoint.Steps} (preemption)")
{
    /// <summary>Where it stopped.</summary>
    public DiffuseCheckpoint Checkpoint { get; } = checkpoint;
}

/// <summary>Creates the executor of a device.</summary>
public interface IStageExecutorFactory
{
    /// <summary>An executor for <paramref name="device"/>; it loads nothing until its first task.</summary>
    IStageExecutor Create(DeviceSpec device);
}
