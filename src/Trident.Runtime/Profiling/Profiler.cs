// Measures a pipeline's three stages and writes a scheduling profile (docs/profile-format.md).
//
// Design note. For every requested shape the profiler measures encode (degree 1), diffuse at every requested
// degree k — on CPU, a denoiser session with k intra-op threads (design §8) — and decode (degree 1), each
// with the same executors the server runs, each on a fresh LoadedPipeline (fresh sessions), as follows:
//   1. create the stage's session; settle the process (GC, malloc_trim);
//   2. warm-up run, during which the process's peak resident-set growth is measured (ProcessMemory) — on a
//      fresh session this is where ONNX Runtime's arena grows to the stage's activation peak, so the growth
//      is the activation memory above the weights, which the session already holds;
//   3. `repeats` timed runs; the point's seconds is their median (diffuse: divided by the steps per run,
//      so it is seconds per step, with the pipeline's default guidance — a CFG step runs 2 rows).
//   4. batches (issue 12): for every shape, each stage (diffuse at every degree) is also timed over batches of
//      1, 2, 4, … requests of that shape (ProfilerOptions.Batches) — one run with the batch dimension, the
//      executors the serving path runs for a batch task — on one fresh session per stage, a warm-up run per
//      batch size, then `repeats` rounds that time every size once each (interleaved, so a drift in the machine's
//      speed does not bias one size against another); a size's time is the median of its runs. These are the profile's batch points (format version
//      2); the cost model's best batch is the one with the most requests per device-second whose latency
//      stays within what the SLO allows (CostModel.bestBatch).
// Measuring each point on a fresh session is what makes the memory column meaningful: a session reused
// across shapes keeps its arena at the largest shape seen. Encode is measured per shape too (it does not
// depend on the image size, but every shape then has its points). Weights are the model files' sizes.
// A device here is a CPU slot: device_memory_gb is the memory available to the process divided by the
// number of hardware threads, one slot per thread.

using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.FSharp.Collections;
using Trident.Runtime.Devices;
using Trident.Runtime.Execution;
using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines;
using Trident.Scheduling;

namespace Trident.Runtime.Profiling;

/// <summary>What to measure.</summary>
public sealed record ProfilerOptions
{
    /// <summary>Shapes (height × width × frames) to measure; each must satisfy the manifest's size constraint. Empty only
    /// with an <see cref="Extent"/> (the start-up profile measuring only the extent shapes its cache lacks).</summary>
    public required IReadOnlyList<Shape> Shapes { get; init; }

    /// <summary>Diffuse degrees (intra-op threads of the denoiser session).</summary>
    public IReadOnlyList<int> Degrees { get; init; } = [1, 2];

    /// <summary>Diffuse steps per timed run.</summary>
    public int Steps { get; init; } = 4;

    /// <summary>Timed runs per point, after the warm-up run; the point is their median.</summary>
    public int Repeats { get; init; } = 3;

    /// <summary>Batch sizes to time each stage at (must include 1, the reference of the others); [1] measures
    /// no batching, and the profile then says the best batch is 1.</summary>
    public IReadOnlyList<int> Batches { get; init; } = [1, 2, 4, 8];

    /// <summary>Shapes measured more cheaply, after <see cref="Shapes"/>: one timed run each after the warm-up run
    /// (which gives the peak memory), of one denoising step at every degree, and no batch points. For the largest sizes a
    /// server accepts beyond the sizes it profiles in full, so that its predictions there (time, activation memory)
    /// are measured rather than extrapolated: above its largest measured size the cost model extrapolates a power law
    /// with the last segment's exponent (<c>CostModel.fs</c>), which on the tiny pipeline's CPU devices predicted a
    /// 1024² step 3.5× too fast from points up to 256² (attention's quadratic term grows only above them). Each must
    /// satisfy the manifest's size constraint and differ from every shape of <see cref="Shapes"/>.</summary>
    public IReadOnlyList<Shape> Extent { get; init; } = [];

    /// <summary>How the profiler was invoked, for the profile's source (e.g. the command line).</summary>
    public string Command { get; init; } = "Profiler.ProfileAsync";

    /// <summary>Told about each point as soon as it is measured.</summary>
    public IProgress<MeasuredPoint>? Progress { get; init; }
}

/// <summary>One measured point, as it is reported during profiling.</summary>
/// <param name="Stage">The stage.</param>
/// <param name="Point">The point as it goes into the profile; for a batch point its shape, degree and seconds (the
/// whole batch's: per step for the diffuse, per call for encode and decode), its peak memory 0 (not measured).</param>
/// <param name="Batch">Requests in the run: 1 for a point, more for a batch point (<see cref="ProfilerOptions.Batches"/>;
/// the batch points of 1, the others' reference, are not reported: the point is).</param>
public sealed record MeasuredPoint(Stage Stage, ProfilePoint Point, int Batch = 1);

/// <summary>Profiles pipelines on this machine.</summary>
public static class Profiler
{
    private const string Prompt = "a photograph of a red fox in fresh snow, morning light";

    /// <summary>Problems with <paramref name="options"/> for <paramref name="manifest"/>, each naming the option
    /// (shapes, degrees, steps, repeats); empty when it can run.</summary>
    public static IReadOnlyList<ManifestError> Validate(PipelineManifest manifest, ProfilerOptions options)
    {
        var errors = new List<ManifestError>();
        if (options.Shapes.Count == 0 && options.Extent.Count == 0) errors.Add(new ManifestError("shapes", "at least one shape is needed"));
        foreach (var shape in options.Shapes)
            foreach (var e in manifest.CheckSize(shape.Width, shape.Height, shape.Frames))
                errors.Add(new ManifestError(e.Path == "frames" ? "frames" : "shapes", $"{shape}: {e}"));
        if (options.Shapes.Distinct().Count() != options.Shapes.Count) errors.Add(new ManifestError("shapes", "a shape is listed twice"));
        foreach (var shape in options.Extent)
            foreach (var e in manifest.CheckSize(shape.Width, shape.Height, shape.Frames))
                errors.Add(new ManifestError(e.Path == "frames" ? "frames" : "extent", $"{shape}: {e}"));
        if (options.Extent.Distinct().Count() != options.Extent.Count || options.Extent.Any(options.Shapes.Contains))
            errors.Add(new ManifestError("extent", "a shape is listed twice (in the extent, or in both the extent and the shapes)"));
        if (options.Degrees.Count == 0 || options.Degrees.Any(k => k < 1)) errors.Add(new ManifestError("degrees", "needs degrees ≥ 1"));
        // the planner runs the diffuse at these degrees only (CostSettings.defaults, design.md): a point at any other
        // degree would be measured and then never used, and a profile of such points alone cannot be planned with
        var planned = CostSettingsModule.defaults.Degrees;
        if (options.Degrees.Where(k => k >= 1 && !planned.Contains(k)).Distinct().ToList() is { Count: > 0 } unplanned)
            errors.Add(new ManifestError("degrees",
                $"{string.Join(", ", unplanned)} {(unplanned.Count == 1 ? "is not a degree" : "are not degrees")} Trident plans the diffuse at ({string.Join(", ", planned)})"));
        if (options.Degrees.Distinct().Count() != options.Degrees.Count) errors.Add(new ManifestError("degrees", "a degree is listed twice"));
        if (options.Steps < 1) errors.Add(new ManifestError("steps", "must be at least 1"));
        if (options.Repeats < 1) errors.Add(new ManifestError("repeats", "must be at least 1"));
        if (!options.Batches.Contains(1) || options.Batches.Any(b => b < 1 || b > 64) || options.Batches.Distinct().Count() != options.Batches.Count)
            errors.Add(new ManifestError("batches", "needs distinct batch sizes between 1 and 64, 1 among them"));
        return errors;
    }

    /// <summary>
    /// Measures every stage of <paramref name="pipeline"/> for every shape (and diffuse degree) of
    /// <paramref name="options"/> and returns the profile. Runs on a thread-pool thread; the pipeline's own
    /// sessions are not used (each point gets fresh ones).
    /// </summary>
    /// <exception cref="ManifestException">when the options do not fit the pipeline (every problem).</exception>
    public static Task<Profile> ProfileAsync(LoadedPipeline pipeline, ProfilerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(options);
        var errors = Validate(pipeline.Manifest, options);
        if (errors.Count > 0) throw new ManifestException("profiler options", errors);
        return Task.Run(() => Measure(pipeline, options, cancellationToken), cancellationToken);
    }

    private static Profile Measure(LoadedPipeline pipeline, ProfilerOptions options, CancellationToken ct)
    {
        var manifest = pipeline.Manifest;
        var guidance = manifest.Guidance.DefaultScale;
        var guided = new DiffuseExecutor(pipeline).UsesGuidance(guidance);
        string[]? negative = guided ? [""] : null;
        var encodePoints = new List<ProfilePoint>();
        var diffusePoints = new List<ProfilePoint>();
        var decodePoints = new List<ProfilePoint>();
        var encodeBatches = new List<BatchPoint>();
        var diffuseBatches = new List<BatchPoint>();
        var decodeBatches = new List<BatchPoint>();
        var batchSizes = options.Batches.Order().ToArray();
        var measureBatches = batchSizes.Length > 1;
        long embeddingBytes = 0;
        double latentBytesPerMpf = 0;

        void Add(List<ProfilePoint> points, Stage stage, Shape shape, int degree, double seconds, long peakBytes)
        {
            var point = new ProfilePoint(shape, degree, seconds, peakBytes / 1e9);
            points.Add(point);
            options.Progress?.Report(new MeasuredPoint(stage, point));
        }

        foreach (var (shape, extent) in options.Shapes.Select(s => (s, false)).Concat(options.Extent.Select(s => (s, true))))
        {
            ct.ThrowIfCancellationRequested();
            // an extent shape: one timed run of one step after the warm-up (a first run on a fresh session allocates
            // its buffers: timing it instead read 1.5–3× slow, and 13× for the encoder)
            var repeats = extent ? 1 : options.Repeats;
            var steps = extent ? 1 : options.Steps;
            Embeddings embeddings = null!;
            var (encodeSeconds, encodePeak) = Point(pipeline, StageModel.TextEncoder, 1, repeats, 1,
                p => embeddings = new EncodeExecutor(p).Encode([Prompt], negative, 1, ct));
            Add(encodePoints, Stage.Encode, shape, 1, encodeSeconds, encodePeak);
            embeddingBytes = embeddings.Bytes;

            Latents latents = null!;
            foreach (var k in options.Degrees)
            {
                var settings = new DiffuseSettings(shape.Width, shape.Height, shape.Frames, steps, [0UL], guidance, k);
                var (seconds, peak) = Point(pipeline, StageModel.Denoiser, k, repeats, steps,
                    p => latents = new DiffuseExecutor(p).Diffuse(embeddings, settings, null, ct));
                Add(diffusePoints, Stage.Diffuse, shape, k, seconds, peak);
            }
            if (latentBytesPerMpf == 0) latentBytesPerMpf = latents.Bytes / shape.Mpf;

            // Decode as the serving path does it: the VAE and the frames, and on a CPU device also the image file the
            // job hands out (a request's latency ends when its file exists; the encoder runs on the same cores as the
            // CPU devices). On CUDA the file is host work beside the GPU: timing it there put the tiny pipeline's 256²
            // decode at 7.7 ms (H200, 2026-11-30) against 2.3–3.0 ms of the decode stage alone when served.
            var fileOnDevice = FileOnDevice(pipeline);
            var (decodeSeconds, decodePeak) = Point(pipeline, StageModel.VaeDecoder, 1, repeats, 1,
                p => DecodeAsServed(p, latents, fileOnDevice, ct));
            Add(decodePoints, Stage.Decode, shape, 1, decodeSeconds, decodePeak);

            if (measureBatches && !extent) MeasureBatches(pipeline, options, shape, batchSizes, guidance, guided, encodeBatches, diffuseBatches, decodeBatches, ct);
        }

        var slots = Environment.ProcessorCount;
        var memoryBytes = (double)GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var cpu = CpuModel();
        // A CUDA profile describes the GPU: its name and its whole memory (nvidia-smi), not a share of the host's.
        var gpu = pipeline.Provider is ExecutionProvider.Cuda cuda ? DeviceMemory.Cuda(cuda.DeviceId) : null;
        var memoryMethod = ProcessMemory.MeasuresPeak
            ? "peak resident-set growth (VmHWM) during the warm-up run on a fresh session"
            : "resident-set growth across the warm-up run on a fresh session (VmHWM reset unavailable: an underestimate)";
        var source = string.Create(CultureInfo.InvariantCulture,
            $"measured by `{options.Command}` on {Environment.MachineName} ({cpu}, {slots} hardware threads, {memoryBytes / 1e9:F1} GB), " +
            $"ONNX Runtime {OrtEnvironment.Version} on {pipeline.Provider.Device}, {DateTime.UtcNow:yyyy-MM-dd}; {(options.Repeats == 1 ? "one timed run" : $"median of {options.Repeats} runs")} after a warm-up; " +
            $"diffuse per step over {options.Steps}-step runs at guidance {guidance:0.###}{(guided ? " (2 rows per step)" : "")}; ");
        source += gpu is null
            ? $"degree k = a denoiser session with k intra-op threads; memory: {memoryMethod}; device memory = available memory / {slots} CPU slots"
            : $"memory: {memoryMethod} (host side); device memory = {gpu.Name}'s total memory (nvidia-smi)";
        if (options.Extent.Count > 0)
            source += $"; {string.Join(", ", options.Extent)} measured by one timed run each after a warm-up (one step per diffuse run), without batch points";
        source += FileOnDevice(pipeline)
            ? "; decode: the VAE, the frames and the image file"
            : "; decode: the VAE and the frames (the image file is host work beside the device, not timed)";
        if (measureBatches)
            source += $"; batch points: batches of {string.Join(", ", batchSizes)} requests of one shape as one run, median of {options.Repeats} after a warm-up, "
                + (gpu is null ? "the sizes timed in turn" : "each size's runs one after the other");

        StageProfile StageOf(StageModel model, List<ProfilePoint> points, List<BatchPoint> batches) =>
            new(WeightBytes(pipeline.ModelPath(model)) / 1e9, false, ListModule.OfSeq(points), ListModule.OfSeq(batches));

        return new Profile(
            Ids.ModelName.NewModelName(manifest.Model),
            gpu is null ? string.Create(CultureInfo.InvariantCulture, $"CPU slot ({Architecture()}, 1 of {slots} hardware threads; {cpu})") : $"{gpu.Name} ({pipeline.Provider.Device})",
            gpu is null ? memoryBytes / slots / 1e9 : gpu.TotalBytes / 1e9,
            source,
            manifest.Kind == PipelineKind.Video,
            manifest.Sampler.DefaultSteps,
            embeddingBytes,
            latentBytesPerMpf,
            StageOf(StageModel.TextEncoder, encodePoints, encodeBatches),
            StageOf(StageModel.Denoiser, diffusePoints, diffuseBatches),
            StageOf(StageModel.VaeDecoder, decodePoints, decodeBatches));
    }

    // Whether the image file is encoded on the device's own processor: on a CPU device yes (the file encoder shares its
    // cores), on a GPU no.
    private static bool FileOnDevice(LoadedPipeline pipeline) => pipeline.Provider is ExecutionProvider.Cpu;

    // One decode as a device runs it: the VAE and the frames, then each item's image file when the device encodes it.
    private static void DecodeAsServed(LoadedPipeline pipeline, Latents latents, bool fileOnDevice, CancellationToken ct)
    {
        var decoded = new DecodeExecutor(pipeline).Decode(latents, 1, ct);
        if (fileOnDevice)
            foreach (var frames in decoded) Generation.EncodeFile(frames, cancellationToken: ct);
    }

    // The batch points of one shape: each stage on one fresh session, every batch size run once to warm up, then the
    // sizes timed in turn, `repeats` rounds of one run each (diffuse at every degree, per step). On a CPU device
    // interleaved rather than all runs of one size before the next, so a change in the machine's speed while a stage is
    // measured (another process, the clock) lands on every size alike instead of on the ratio f(b) = t(b) / t(1) that
    // decides whether a batch pays (CostModel.bestBatch, a threshold of 1.2× the requests per device-second); on a GPU
    // one size after the other (TimeSizes).
    private static void MeasureBatches(LoadedPipeline pipeline, ProfilerOptions options, Shape shape, int[] sizes, double guidance, bool guided,
        List<BatchPoint> encode, List<BatchPoint> diffuse, List<BatchPoint> decode, CancellationToken ct)
    {
        var embeddings = new Dictionary<int, Embeddings>();
        var latents = new Dictionary<int, Latents>();
        using (var fresh = pipeline.Reopen())
        {
            var seconds = TimeSizes(pipeline, options.Repeats, 1, sizes, b =>
            {
                string[]? negatives = guided ? Enumerable.Repeat("", b).ToArray() : null;
                embeddings[b] = new EncodeExecutor(fresh).Encode(Enumerable.Repeat(Prompt, b).ToArray(), negatives, 1, ct);
            });
            Record(Stage.Encode, 1, seconds, encode);
        }
        foreach (var k in options.Degrees)
        {
            using var fresh = pipeline.Reopen();
            var seconds = TimeSizes(pipeline, options.Repeats, options.Steps, sizes, b =>
            {
                var seeds = Enumerable.Range(0, b).Select(i => (ulong)i).ToArray();
                var settings = new DiffuseSettings(shape.Width, shape.Height, shape.Frames, options.Steps, seeds, guidance, k);
                latents[b] = new DiffuseExecutor(fresh).Diffuse(embeddings[b], settings, null, ct);
            });
            Record(Stage.Diffuse, k, seconds, diffuse);
        }
        using (var fresh = pipeline.Reopen())
        {
            var fileOnDevice = FileOnDevice(pipeline);
            var seconds = TimeSizes(pipeline, options.Repeats, 1, sizes, b => DecodeAsServed(fresh, latents[b], fileOnDevice, ct));
            Record(Stage.Decode, 1, seconds, decode);
        }

        void Record(Stage stage, int k, double[] seconds, List<BatchPoint> points)
        {
            for (var i = 0; i < sizes.Length; i++)
            {
                points.Add(new BatchPoint(shape, k, sizes[i], seconds[i]));
                if (sizes[i] > 1) options.Progress?.Report(new MeasuredPoint(stage, new ProfilePoint(shape, k, seconds[i], 0), sizes[i]));
            }
        }
    }

    // The batch sizes timed in turn on a CPU device (TimeInterleaved), one after the other on a GPU (TimeInBlocks): on
    // CUDA a run whose input shape differs from the previous run's pays a fixed cost (measured on an H200 with the sizes
    // in turn, 2026-12-04: a 256² decode of one 37 ms against 3.8 ms repeated, a diffuse step 13.7 against 4.3 ms —
    // likely cuDNN's algorithm search for the new shape), which in turn would land on every timed run.
    private static double[] TimeSizes(LoadedPipeline pipeline, int repeats, int unitsPerRun, int[] sizes, Action<int> run) =>
        pipeline.Provider is ExecutionProvider.Cpu
            ? TimeInterleaved(repeats, unitsPerRun, sizes, run)
            : TimeInBlocks(repeats, unitsPerRun, sizes, run);

    // Per size: one warm-up run, then `repeats` timed runs of that size; the median divided by `unitsPerRun`, in the
    // order of `sizes`.
    private static double[] TimeInBlocks(int repeats, int unitsPerRun, int[] sizes, Action<int> run) =>
        sizes.Select(b =>
        {
            run(b);
            return TimeRuns(repeats, unitsPerRun, () => run(b));
        }).ToArray();

    // The median of `repeats` timed runs of `run`, divided by `unitsPerRun`.
    private static double TimeRuns(int repeats, int unitsPerRun, Action run)
    {
        var times = new double[repeats];
        for (var r = 0; r < repeats; r++)
        {
            var clock = Stopwatch.StartNew();
            run();
            times[r] = clock.Elapsed.TotalSeconds / unitsPerRun;
        }
        return Median(times);
    }

    // Each of `sizes` run once to warm up, then `repeats` rounds that run every size once in order; per size, the median
    // of its timed runs divided by `unitsPerRun`, in the order of `sizes`.
    private static double[] TimeInterleaved(int repeats, int unitsPerRun, int[] sizes, Action<int> run)
    {
        foreach (var b in sizes) run(b);
        var times = new double[sizes.Length][];
        for (var i = 0; i < sizes.Length; i++) times[i] = new double[repeats];
        for (var r = 0; r < repeats; r++)
            for (var i = 0; i < sizes.Length; i++)
            {
                var clock = Stopwatch.StartNew();
                run(sizes[i]);
                times[i][r] = clock.Elapsed.TotalSeconds / unitsPerRun;
            }
        return times.Select(t => Median(t)).ToArray();
    }

    /// <summary>
    /// One point: a fresh pipeline, its session for (model, threads) created, a warm-up run measured for
    /// memory, then <paramref name="repeats"/> timed runs. Returns the median seconds divided by
    /// <paramref name="unitsPerRun"/> and the peak growth in bytes.
    /// </summary>
    private static (double Seconds, long PeakBytes) Point(
        LoadedPipeline pipeline, StageModel model, int threads, int repeats, int unitsPerRun, Action<LoadedPipeline> run)
    {
        using var fresh = pipeline.Reopen();
        fresh.Session(model, threads);
        var peak = ProcessMemory.PeakGrowth(() => run(fresh));
        return (TimeRuns(repeats, unitsPerRun, () => run(fresh)), peak);
    }

    /// <summary>The median (the mean of the middle two for an even count).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("no values", nameof(values));
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static string Architecture() => RuntimeInformation.ProcessArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "x86-64",
        System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
        var other => other.ToString().ToLowerInvariant(),
    };

    private static string CpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is var colon and > 0)
                    return line[(colon + 1)..].Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return "unknown CPU";
    }

    /// <summary>Bytes of a model's weights: the .onnx file plus the external data files beside it (model.onnx_data,
    /// weights.pb, …: every file in its folder that is neither another model nor a JSON config), as exports of
    /// models over 2 GB ship them.</summary>
    internal static long WeightBytes(string modelPath)
    {
        var bytes = new FileInfo(modelPath).Length;
        var folder = Path.GetDirectoryName(modelPath)!;
        foreach (var f in Directory.EnumerateFiles(folder))
            if (!f.EndsWith(".onnx", StringComparison.Ordinal) && !f.EndsWith(".json", StringComparison.Ordinal)
                && !f.EndsWith(".txt", StringComparison.Ordinal) && !f.EndsWith(".model", StringComparison.Ordinal))
                bytes += new FileInfo(f).Length;
        return bytes;
    }
}
