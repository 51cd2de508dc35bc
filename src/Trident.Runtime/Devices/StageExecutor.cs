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
/// <remarks>Called from the device's worker thread only, one call at a time. Handoff values are opaque to
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

    /// <summary>Decodes latents (made by any device's <see cref="Diffuse"/>) into frames: one image for an
    /// image request, <c>Frames</c> images for a video.</summary>
    IReadOnlyList<RgbImage> Decode(GenerationInput input, StageOutput latents, CancellationToken cancellationToken);
}

/// <summary>A stage's output handed to the next stage: the executor's own value, plus its size (for
/// monitoring and the transfer cost the scheduler assumes).</summary>
/// <param name="Value">The executor's value (embeddings or latents).</param>
/// <param name="Bytes">Size of the tensors it holds.</param>
public sealed record StageOutput(object Value, long Bytes);

/// <summary>Creates the executor of a device.</summary>
public interface IStageExecutorFactory
{
    /// <summary>An executor for <paramref name="device"/>; it loads nothing until its first task.</summary>
    IStageExecutor Create(DeviceSpec device);
}
