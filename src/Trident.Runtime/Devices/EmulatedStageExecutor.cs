// Emulated devices: a device kind whose stage tasks take the time the cost model predicts for a named
// reference profile (ReferenceProfiles: flux, sd3, cogvideox, hunyuanvideo on the L20 class), scaled by a
// time scale, and account for memory the same way (resident weights + the stage's activation, against the
// device's memory), without ONNX Runtime. With them the real serving loop, planners and HTTP API run at the
// paper's scale (128 devices) on one machine.
//
// Design note. The time scale is applied to the profile itself (EmulatedProfile.Scaled: every measured or
// estimated second × scale; memory and bytes unchanged), so the planner, the deadlines (SLO = scale ·
// t_ref) and the executors all live in one scaled time: an emulated run at scale 0.05 is the reference run
// played 20× faster. The executor sleeps the scaled cost model's prediction of each task: encode
// t_E(shape), diffuse steps · t_D(shape, k) one step at a time (progress after each step, cancellation at
// step boundaries, step ends fixed from the task's start so sleeps do not accumulate drift), decode
// t_C(shape), and loading a stage model weights / host-to-device bandwidth. The waits hold no thread
// (timers, IAsyncStageExecutor) and end at absolute targets fixed from the stage's start; the stage's output
// bytes are made during its time, as a device computes while its time runs.
//
// The stage outputs are real bytes handed from stage to stage: the embeddings derive from the prompt, the
// latents from the embeddings and the seed, and the decoded frames from the latents. An output's size is the
// profile's (embedding size; latent size for the shape); the bytes it carries are that size × the time scale
// (Carried: the reference network played at the emulation's speed). The
// frames are a PLACEHOLDER PATTERN (coloured tiles chosen by the latents), not a generated image, and small
// (the request's aspect, at most 64 pixels on the longer side): they only prove that the stages ran in order
// on the data the previous stage produced; the rest of the serving path (PNG/APNG encoding, the job store,
// the API) handles them as any result.

using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.FSharp.Collections;
using Trident.Runtime.Imaging;
using Trident.Runtime.Pipelines;
using Trident.Scheduling;

namespace Trident.Runtime.Devices;

/// <summary>Thrown by an emulated device when a task or a model does not fit its memory (as a real device
/// would fail to allocate).</summary>
public sealed class EmulatedOutOfMemoryException(string message) : InvalidOperationException(message);

/// <summary>The reference profiles as emulated devices serve them.</summary>
public static class EmulatedProfile
{
    /// <summary>Names of the profiles that can be emulated (those of <c>ReferenceProfiles.all</c>).</summary>
    public static IReadOnlyList<string> Names => [.. ReferenceProfiles.all.Select(p => p.Model.Value)];

    /// <summary>The reference profile called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">naming the accepted profiles when there is none of that name.</exception>
    public static Profile Reference(string name) =>
        ReferenceProfiles.tryFind(name) is { } p
            ? p.Value
            : throw new ArgumentException($"no reference profile '{name}' (accepted: {string.Join(", ", Names)})", nameof(name));

    /// <summary><paramref name="profile"/> with every latency multiplied by <paramref name="timeScale"/>
    /// (&gt; 0); memory, weights and transfer sizes unchanged. Its source says that it is scaled.</summary>
    public static Profile Scaled(Profile profile, double timeScale)
    {
        if (!(double.IsFinite(timeScale) && timeScale > 0)) throw new ArgumentOutOfRangeException(nameof(timeScale), timeScale, "must be a finite number > 0");
        StageProfile Stage(StageProfile s) => new(s.Weights, s.Estimated,
            ListModule.OfSeq(s.Points.Select(p => new ProfilePoint(p.Shape, p.Degree, p.Seconds * timeScale, p.PeakActivation))),
            ListModule.OfSeq(s.Batches.Select(b => new BatchPoint(b.Shape, b.Degree, b.Batch, b.Seconds * timeScale))));
        return new Profile(profile.Model, profile.DeviceClass + $" (emulated, time × {timeScale:0.####})", profile.DeviceMemory,
            profile.Source + $"; every latency × {timeScale:0.####} (emulated devices)", profile.Video, profile.DefaultSteps,
            profile.EmbeddingBytes, profile.LatentBytesPerMpf, Stage(profile.Encode), Stage(profile.Diffuse), Stage(profile.Decode));
    }

    /// <summary>Video frames per latent frame of the VAE of the model <paramref name="profile"/> describes: 4 for a
    /// video model — both reference video models, CogVideoX and HunyuanVideo, have causal 3D VAEs that compress time
    /// 4× (F frames → (F − 1) / 4 + 1 latent frames), so they take 4k + 1 frames, as every frame count of their
    /// profiles is — and 1 for an image model.</summary>
    public static int TemporalCompression(Profile profile) => profile.Video ? 4 : 1;

    /// <summary>The guidance of the real model an emulated pipeline stands for, with diffusers' default scale: FLUX.1-dev
    /// and HunyuanVideo are guidance-distilled (the scale is a denoiser input, no unconditional pass: a negative prompt
    /// is not read; FluxPipeline 3.5, HunyuanVideoPipeline 6.0); CogVideoX (CogVideoXPipeline 6.0) and SD3
    /// (StableDiffusion3Pipeline 7.0) run classifier-free guidance; any other model classifier-free at 3.5.</summary>
    public static GuidanceSettings Guidance(string model) => model switch
    {
        "flux" => new GuidanceSettings(false, 3.5, Embedded: true),
        "hunyuanvideo" => new GuidanceSettings(false, 6.0, Embedded: true),
        "cogvideox" => new GuidanceSettings(true, 6.0),
        "sd3" => new GuidanceSettings(true, 7.0),
        _ => new GuidanceSettings(true, 3.5),
    };

    /// <summary>The manifest an emulated pipeline of <paramref name="profile"/> presents to the API: name
    /// <c>{model}-emulated</c>, the profile's model, image or video as the profile says, sizes from the
    /// smallest to the largest side the profile measured (multiples of 16), its frame counts and its VAE's temporal
    /// compression (<see cref="TemporalCompression"/>: a video has 4k + 1 frames, as the real model needs), its default steps,
    /// the real model's guidance (<see cref="Guidance"/>), a byte tokenizer of 512 tokens (the profile's embedding length).
    /// The stage files it names do not exist: nothing loads them.</summary>
    public static PipelineManifest Manifest(Profile profile)
    {
        var shapes = profile.Diffuse.Points.Select(p => p.Shape).ToArray();
        const int multiple = 16;
        int Down(int v) => Math.Max(multiple, v / multiple * multiple);
        int Up(int v) => (v + multiple - 1) / multiple * multiple;
        var minSide = Up(shapes.Min(s => Math.Min(s.Width, s.Height)));
        var maxSide = Down(shapes.Max(s => Math.Max(s.Width, s.Height)));
        var model = profile.Model.Value;
        return new PipelineManifest(
            model + "-emulated",
            model,
            profile.Video ? PipelineKind.Video : PipelineKind.Image,
            new PipelineStages(
                new TextEncoderStage("text_encoder/model.onnx", "input_ids", null, "last_hidden_state"),
                new DenoiserStage(DenoiserArchitecture.Transformer, "transformer/model.onnx", "hidden_states", "timestep", "encoder_hidden_states", "out_sample"),
                new VaeDecoderStage("vae_decoder/model.onnx", "latent_sample", "sample")),
            ByteTokenizerSettings.WithDefaults(512),
            new LatentSettings(16, 8, TemporalCompression(profile), 1.0, 0.0),
            new FlowEulerSettings(1000, profile.DefaultSteps, 3.0),
            Guidance(model),
            new SizeConstraint(multiple, minSide, maxSide, minSide, maxSide, shapes.Min(s => s.Frames), shapes.Max(s => s.Frames)));
    }
}

/// <summary>An executor whose stage tasks wait without holding a thread (emulated devices): the same tasks as
/// <see cref="IStageExecutor"/>'s, as tasks. A worker's device grain awaits them on the grain's own scheduler,
/// so a worker with many devices holds no thread per running stage (DeviceGrains.cs).</summary>
public interface IAsyncStageExecutor : IStageExecutor
{
    /// <summary><see cref="IStageExecutor.Load"/>, as a task.</summary>
    Task LoadAsync(Stage stage, CancellationToken cancellationToken);

    /// <summary><see cref="IStageExecutor.Encode"/>, as a task.</summary>
    Task<StageOutput> EncodeAsync(GenerationInput input, CancellationToken cancellationToken);

    /// <summary><see cref="IStageExecutor.Diffuse"/>, as a task. The observer hears of every step in order, but
    /// wakes at most every <paramref name="reportEvery"/> (the steps that ended meanwhile are reported together,
    /// the last step always at its end); <see cref="TimeSpan.Zero"/>: after each step.</summary>
    Task<StageOutput> DiffuseAsync(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer, TimeSpan reportEvery,
        CancellationToken cancellationToken);

    /// <summary><see cref="IStageExecutor.DiffuseSegment"/>, as a task (each step reported as it ends).</summary>
    Task<DiffuseSegmentResult> DiffuseSegmentAsync(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer,
        DiffuseCheckpoint? from, Func<bool> suspend, CancellationToken cancellationToken);

    /// <summary><see cref="IStageExecutor.Decode"/>, as a task.</summary>
    Task<IReadOnlyList<RgbImage>> DecodeAsync(GenerationInput input, StageOutput latents, CancellationToken cancellationToken);

    /// <summary>Seconds a task of <paramref name="stage"/> is meant to take for <paramref name="input"/> at degree
    /// <paramref name="degree"/> (diffuse: all steps), model loading aside.</summary>
    double PredictedSeconds(Stage stage, GenerationInput input, int degree);
}

/// <summary>One emulated device: sleeps the (scaled) cost model's duration of each task, accounts for memory
/// as the cost model does, and hands real bytes from stage to stage (see the file's note).</summary>
public sealed class EmulatedStageExecutor : IAsyncStageExecutor
{
    private readonly DeviceSpec _device;
    private readonly CostModel _cost;
    private readonly double _hostToDevice;
    private readonly double _timeScale;
    private readonly HashSet<Stage> _resident = [];
    private readonly object _gate = new();

    /// <summary>An emulated executor of <paramref name="device"/>.</summary>
    /// <param name="device">The device (its memory is what tasks must fit in; its thread budget is 1, so a
    /// diffuse group's thread budget is its degree k).</param>
    /// <param name="cost">The cost model over the (scaled) profile the device emulates.</param>
    /// <param name="hostToDeviceBytesPerSecond">Bandwidth at which stage weights load (B/s); the load time is
    /// weights / bandwidth × <paramref name="timeScale"/>.</param>
    /// <param name="timeScale">The scale the profile's latencies were multiplied by (for load times).</param>
    public EmulatedStageExecutor(DeviceSpec device, CostModel cost, double hostToDeviceBytesPerSecond, double timeScale)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hostToDeviceBytesPerSecond);
        _device = device;
        _cost = cost;
        _hostToDevice = hostToDeviceBytesPerSecond / timeScale;
        _timeScale = timeScale;
    }

    /// <inheritdoc />
    public IReadOnlySet<Stage> Resident
    {
        get { lock (_gate) return new HashSet<Stage>(_resident); }
    }

    /// <summary>GB of stage weights resident now.</summary>
    public double ResidentWeightsGb
    {
        get { lock (_gate) return _resident.Sum(s => Weights(s)); }
    }

    private double Weights(Stage stage) => ProfileModule.stage(_cost.Profile, stage).Weights;

    /// <summary>Bytes an emulated stage output of <paramref name="size"/> bytes (the profile's tensor size) really
    /// carries: <paramref name="size"/> × the time scale, at least 32. The emulation plays the reference cluster
    /// 1 / scale times faster; moving the reference's bytes in scaled time would need a network 1 / scale times
    /// faster than the reference's, so the bytes are scaled with the time instead (the same bandwidth then moves
    /// them in scaled time). The output's <see cref="StageOutput.Bytes"/> stays the profile's size (what the
    /// planner and the monitoring count).</summary>
    public long Carried(long size) => Math.Max(32, (long)Math.Round(size * Math.Min(1.0, _timeScale)));

    /// <summary>Seconds a task of <paramref name="stage"/> takes on this device for <paramref name="input"/> at
    /// degree <paramref name="degree"/> (diffuse: all steps): the scaled cost model's prediction.</summary>
    public double PredictedSeconds(Stage stage, GenerationInput input, int degree) =>
        stage.IsEncode ? CostModelModule.encodeTime(_cost, input.Shape)
        : stage.IsDiffuse ? CostModelModule.diffuseTime(_cost, input.Shape, input.Steps, degree)
        : CostModelModule.decodeTime(_cost, input.Shape);

    /// <inheritdoc />
    public void Load(Stage stage) => LoadAsync(stage, CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc />
    public async Task LoadAsync(Stage stage, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        double seconds;
        lock (_gate)
        {
            if (_resident.Contains(stage)) return;
            var need = _resident.Sum(s => Weights(s)) + Weights(stage);
            if (need > _device.MemoryGb)
                throw new EmulatedOutOfMemoryException(
                    $"{_device}: out of memory loading the {StageModule.letter(stage)} model: weights {need:0.##} GB > {_device.MemoryGb:0.##} GB");
            _resident.Add(stage);
            seconds = Weights(stage) * 1e9 / _hostToDevice;
        }
        await Until(start, seconds, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Unload(Stage stage)
    {
        lock (_gate) _resident.Remove(stage);
    }

    // A stage's first task loads its model when the placement's load did not (as the ONNX executor does), then
    // checks that weights + the stage's activation fit.
    private async Task Admit(Stage stage, GenerationInput input, int degree, CancellationToken cancellationToken)
    {
        await LoadAsync(stage, cancellationToken).ConfigureAwait(false);
        var activation = CostModelModule.activation(_cost, stage, input.Shape, degree);
        var weights = ResidentWeightsGb;
        var paused = _pausedActivationGb;
        if (weights + paused + activation > _device.MemoryGb)
            throw new EmulatedOutOfMemoryException(
                $"{_device}: out of memory in {StageModule.letter(stage)} of {input.Width}×{input.Height}×{input.Frames} at degree {degree}: " +
                $"resident weights {weights:0.##} GB + activation {activation:0.##} GB" + (paused > 0 ? $" + a paused decode's {paused:0.##} GB" : "") +
                $" > {_device.MemoryGb:0.##} GB");
    }

    // the activations of decodes paused between two tiles on this device (worker thread only)
    private double _pausedActivationGb;

    /// <inheritdoc />
    public StageOutput Encode(GenerationInput input, CancellationToken cancellationToken) =>
        EncodeAsync(input, cancellationToken).GetAwaiter().GetResult();

    /// <inheritdoc />
    public async Task<StageOutput> EncodeAsync(GenerationInput input, CancellationToken cancellationToken)
    {
        await Admit(Stage.Encode, input, 1, cancellationToken).ConfigureAwait(false);
        // the output is made while the stage's time runs (a device computes during it), then the task waits
        // for the stage's end, fixed from its start
        var start = Stopwatch.GetTimestamp();
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes($"{input.Prompt}\u0000{input.NegativePrompt}\u0000{input.Guidance:R}"));
        var size = (long)_cost.Profile.EmbeddingBytes;
        var bytes = Payload(digest, Carried(size));
        await Until(start, PredictedSeconds(Stage.Encode, input, 1), cancellationToken).ConfigureAwait(false);
        return new StageOutput(bytes, size);
    }

    /// <inheritdoc />
    public StageOutput Diffuse(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer, CancellationToken cancellationToken) =>
        DiffuseAsync(input, embeddings, intraOpThreads, observer, TimeSpan.Zero, cancellationToken).GetAwaiter().GetResult();

    /// <inheritdoc />
    public async Task<StageOutput> DiffuseAsync(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer, TimeSpan reportEvery,
        CancellationToken cancellationToken)
    {
        var (degree, latents) = DiffuseSetup(input, embeddings, intraOpThreads);
        await Admit(Stage.Diffuse, input, degree, cancellationToken).ConfigureAwait(false);
        var step = (double)CostModelModule.diffuseStep(_cost, input.Shape, degree);
        var start = Stopwatch.GetTimestamp();
        // step i ends at start + i · step. The task wakes at the end of the first step at least reportEvery after the
        // last wake (or of the last step) and reports the steps up to it, in order.
        var every = reportEvery.TotalSeconds;
        for (var done = 0; done < input.Steps;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var next = done + 1;
            while (next < input.Steps && (next - done) * step < every) next++;
            await Until(start, next * step, cancellationToken).ConfigureAwait(false);
            for (var i = done + 1; i <= next; i++) observer.StepCompleted(i, input.Steps);
            done = next;
        }
        return latents;
    }

    /// <inheritdoc />
    /// <remarks>An emulated diffuse stops at a step boundary as an ONNX one does: its checkpoint holds the latents it
    /// will hand on (they depend on the embeddings and the seed only) and the steps done, and a resumption — on any
    /// emulated device of a group of the same degree — sleeps the remaining steps and gives the same bytes.</remarks>
    public bool CanSuspend => true;

    /// <inheritdoc />
    public DiffuseSegmentResult DiffuseSegment(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer,
        DiffuseCheckpoint? from, Func<bool> suspend, CancellationToken cancellationToken) =>
        DiffuseSegmentAsync(input, embeddings, intraOpThreads, observer, from, suspend, cancellationToken).GetAwaiter().GetResult();

    /// <inheritdoc />
    public async Task<DiffuseSegmentResult> DiffuseSegmentAsync(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer,
        DiffuseCheckpoint? from, Func<bool> suspend, CancellationToken cancellationToken)
    {
        var (degree, latents) = DiffuseSetup(input, embeddings, intraOpThreads);
        var first = 0;
        if (from is not null)
        {
            if (from.State is not StageOutput kept || kept.Value is not byte[] || from.Steps != input.Steps || from.Step is < 1 || from.Step >= input.Steps)
                throw new ArgumentException($"not a checkpoint of an emulated diffuse of {input.Steps} steps ({from.State.GetType().Name}, step {from.Step} of {from.Steps})", nameof(from));
            latents = kept;
            first = from.Step;
        }
        await Admit(Stage.Diffuse, input, degree, cancellationToken).ConfigureAwait(false);
        var step = (double)CostModelModule.diffuseStep(_cost, input.Shape, degree);
        var start = Stopwatch.GetTimestamp();
        for (var done = first; done < input.Steps;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Until(start, (done + 1 - first) * step, cancellationToken).ConfigureAwait(false);
            done++;
            observer.StepCompleted(done, input.Steps);
            // at least one step per segment; then the first boundary where the loop asks to stop
            if (done < input.Steps && suspend())
                return new DiffuseSegmentResult(null, new DiffuseCheckpoint(done, input.Steps, intraOpThreads, latents, latents.Bytes));
        }
        return new DiffuseSegmentResult(latents, null);
    }

    // The degree a diffuse runs at (from its thread budget) and the latents it will hand on: the digest of the
    // embeddings, the seed and the shape, expanded to the (carried share of the) latents' size.
    private (int Degree, StageOutput Latents) DiffuseSetup(GenerationInput input, StageOutput embeddings, int intraOpThreads)
    {
        var degree = intraOpThreads / _device.IntraOpThreads;
        if (!_cost.Degrees.Contains(degree))
            throw new ArgumentException($"{_device}: degree {degree} (from {intraOpThreads} threads) is not among the profile's {string.Join(", ", _cost.Degrees)}", nameof(intraOpThreads));
        var seed = new byte[32 + 8 + 12];
        Digest(embeddings).CopyTo(seed, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(seed.AsSpan(32), input.Seed);
        BinaryPrimitives.WriteInt32LittleEndian(seed.AsSpan(40), input.Width);
        BinaryPrimitives.WriteInt32LittleEndian(seed.AsSpan(44), input.Height);
        BinaryPrimitives.WriteInt32LittleEndian(seed.AsSpan(48), input.Frames);
        var size = (long)CostModelModule.latentBytes(_cost, input.Shape);
        return (degree, new StageOutput(Payload(SHA256.HashData(seed), Carried(size)), size));
    }

    /// <inheritdoc />
    public IReadOnlyList<RgbImage> Decode(GenerationInput input, StageOutput latents, CancellationToken cancellationToken) =>
        DecodeAsync(input, latents, cancellationToken).GetAwaiter().GetResult();

    /// <inheritdoc />
    public async Task<IReadOnlyList<RgbImage>> DecodeAsync(GenerationInput input, StageOutput latents, CancellationToken cancellationToken)
    {
        var digest = Digest(latents);
        await Admit(Stage.Decode, input, 1, cancellationToken).ConfigureAwait(false);
        var start = Stopwatch.GetTimestamp();
        var frames = PlaceholderFrames(digest, input);
        await Until(start, PredictedSeconds(Stage.Decode, input, 1), cancellationToken).ConfigureAwait(false);
        return frames;
    }

    /// <inheritdoc />
    public bool CanPauseDecode => true;

    /// <inheritdoc />
    /// <remarks>The decode's time is split evenly over its ⌈frames / <paramref name="tileFrames"/>⌉ tiles (a video VAE
    /// decoding temporal tiles of equal size, as HunyuanVideo's in diffusers); a pause does not count towards it, and
    /// the paused decode's activation stays counted against the device's memory until it ends.</remarks>
    public IReadOnlyList<RgbImage> DecodeTiles(GenerationInput input, StageOutput latents, int tileFrames, Action betweenTiles, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(betweenTiles);
        var tiles = Trident.Scheduling.Dispatching.Preemption.decodeTiles(tileFrames, input.Shape);
        if (tiles <= 1) return Decode(input, latents, cancellationToken);
        var digest = Digest(latents);
        Admit(Stage.Decode, input, 1, cancellationToken).GetAwaiter().GetResult();
        var frames = PlaceholderFrames(digest, input);
        var tile = PredictedSeconds(Stage.Decode, input, 1) / tiles;
        var activation = CostModelModule.activation(_cost, Stage.Decode, input.Shape, 1);
        // tile i ends (i + 1) tiles after the start, not counting the pauses so far (absolute targets, as Until's)
        var start = Stopwatch.GetTimestamp();
        long paused = 0;
        for (var i = 0; i < tiles; i++)
        {
            Until(start + paused, (i + 1) * tile, cancellationToken).GetAwaiter().GetResult();
            if (i == tiles - 1) break;
            var pause = Stopwatch.GetTimestamp();
            _pausedActivationGb += activation;
            try
            {
                betweenTiles();
            }
            finally
            {
                _pausedActivationGb -= activation;
                paused += Stopwatch.GetTimestamp() - pause;
            }
        }
        return frames;
    }

    // Every frame of the placeholder result of a decode whose latents have this digest.
    private static RgbImage[] PlaceholderFrames(byte[] digest, GenerationInput input)
    {
        var (width, height) = PlaceholderSize(input.Width, input.Height);
        return [.. Enumerable.Range(0, input.Frames).Select(f => Pattern(digest, width, height, f))];
    }

    /// <summary>Longest side of a placeholder frame in pixels.</summary>
    public const int PlaceholderSide = 64;

    /// <summary>The size of a placeholder frame for a request of <paramref name="width"/> × <paramref name="height"/>:
    /// the request's aspect, the longer side at most <see cref="PlaceholderSide"/> pixels (so that results of
    /// thousands of emulated requests cost little to encode, store and send). A scaled side is rounded to an even
    /// number of pixels (at least 2): H.264 and VP9 with 4:2:0 chroma take even sides only, so a 1024 × 560 video's
    /// placeholder is 64 × 36, not 64 × 35 (which ffmpeg refused after every stage had run).</summary>
    public static (int Width, int Height) PlaceholderSize(int width, int height)
    {
        var scale = (double)PlaceholderSide / Math.Max(width, height);
        if (scale >= 1) return (width, height);
        static int Even(double side) => Math.Max(2, 2 * (int)Math.Round(side / 2));
        return (Even(width * scale), Even(height * scale));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate) _resident.Clear();
    }

    // Waits, without holding a thread, until `seconds` after the Stopwatch timestamp `start`: an absolute
    // target, so a late wake-up (a loaded machine) shortens the next wait instead of adding to every step.
    // Cancellation ends the wait at once (OperationCanceledException).
    private static async Task Until(long start, double seconds, CancellationToken cancellationToken)
    {
        var left = TimeSpan.FromSeconds(seconds) - Stopwatch.GetElapsedTime(start);
        if (left > TimeSpan.Zero) await Task.Delay(left, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        cancellationToken.ThrowIfCancellationRequested();
    }

    // The first 32 bytes of an emulated stage output are the digest the next stage derives from.
    private static byte[] Digest(StageOutput output) =>
        output.Value is byte[] { Length: >= 32 } bytes
            ? bytes[..32]
            : throw new ArgumentException($"not an emulated stage output ({output.Value.GetType().Name})", nameof(output));

    /// <summary>A payload of <paramref name="length"/> bytes (at least 32): the digest, then xorshift64* output
    /// seeded by it (Vigna 2016) up to <see cref="PayloadBlock"/> bytes, then that block repeated (any bytes past
    /// the last whole 8-byte word of the block are 0), so every byte depends on the digest and the payload is cheap
    /// to make: a 4 MiB embedding is one 64 KiB generation and copies. (Generating all 4 MiB cost an emulated
    /// encode of 5 ms about 25 ms on a loaded 2-core worker: the emulation's own work showed as the devices'.)</summary>
    public static byte[] Payload(ReadOnlySpan<byte> digest, long length)
    {
        var bytes = GC.AllocateUninitializedArray<byte>((int)Math.Max(32, length));
        digest[..32].CopyTo(bytes);
        var block = Math.Min(bytes.Length, PayloadBlock);
        var state = BinaryPrimitives.ReadUInt64LittleEndian(digest) | 1UL;
        var whole = (block - 32) / 8 * 8;
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(bytes.AsSpan(32, whole));
        for (var i = 0; i < words.Length; i++)
        {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            words[i] = state * 0x2545F4914F6CDD1DUL;
        }
        bytes.AsSpan(32 + whole, block - 32 - whole).Clear();
        // doubling copies of the first block
        for (var filled = block; filled < bytes.Length; filled *= 2)
            bytes.AsSpan(0, Math.Min(filled, bytes.Length - filled)).CopyTo(bytes.AsSpan(filled));
        return bytes;
    }

    /// <summary>Bytes of a payload that are generated; the rest repeats them.</summary>
    public const int PayloadBlock = 64 * 1024;

    /// <summary>The placeholder frame: a 4 × 4 grid of tiles whose colours come from <paramref name="digest"/>
    /// (frame <paramref name="frame"/> shifts them by one tile per frame). Not a generated image.</summary>
    public static RgbImage Pattern(ReadOnlySpan<byte> digest, int width, int height, int frame)
    {
        var pixels = new byte[width * height * 3];
        for (var y = 0; y < height; y++)
        {
            var ty = y * 4 / height;
            for (var x = 0; x < width; x++)
            {
                var tile = (ty * 4 + x * 4 / width + frame) % 16;
                var o = (y * width + x) * 3;
                pixels[o] = digest[(tile * 2) % 32];
                pixels[o + 1] = digest[(tile * 2 + 1) % 32];
                pixels[o + 2] = (byte)(digest[(tile * 2 + 7) % 32] ^ (byte)(tile * 16));
            }
        }
        return new RgbImage(width, height, pixels);
    }
}

/// <summary>Creates an <see cref="EmulatedStageExecutor"/> per device over one (scaled) cost model.</summary>
/// <param name="cost">The cost model over the scaled profile.</param>
/// <param name="hostToDeviceBytesPerSecond">Weight-loading bandwidth (B/s), unscaled.</param>
/// <param name="timeScale">The profile's time scale.</param>
public sealed class EmulatedStageExecutorFactory(CostModel cost, double hostToDeviceBytesPerSecond, double timeScale) : IStageExecutorFactory
{
    /// <inheritdoc />
    public IStageExecutor Create(DeviceSpec device) => new EmulatedStageExecutor(device, cost, hostToDeviceBytesPerSecond, timeScale);
}
