// The server's configuration: section "Trident" of appsettings, the file given with --config, environment
// variables (Trident__Serving__QueueCapacity=8) and command-line keys (--Trident:Serving:QueueCapacity 8),
// later sources winning. Every key has a default, so `trident serve` runs with none. Bound and validated at
// start-up (TridentOptionsValidator); a bad value stops the server with every problem named.

namespace Trident.Api.Options;

/// <summary>Section <c>Trident</c>.</summary>
public sealed class TridentOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Trident";

    /// <summary>Pipeline directory (with <c>trident-pipeline.json</c>), or <c>tiny</c>: the bundled tiny
    /// pipeline, written on first start under <c>{home}/.cache/pipelines</c>.</summary>
    public string Pipeline { get; set; } = "tiny";

    /// <summary>Log level: Verbose, Debug, Information, Warning, Error or Fatal.</summary>
    public string LogLevel { get; set; } = "Information";

    /// <summary>Log format: <c>auto</c> (human-readable text when standard output is a terminal, compact JSON
    /// otherwise), <c>text</c> or <c>json</c> (Serilog's compact JSON, one object per line).</summary>
    public string LogFormat { get; set; } = "auto";

    /// <summary>The values <see cref="LogFormat"/> accepts.</summary>
    public static readonly string[] LogFormats = ["auto", "text", "json"];

    /// <summary>Profile file of this machine for that pipeline. Empty: profile the pipeline quickly at start
    /// and cache the result under <see cref="ProfileCache"/>.</summary>
    public string Profile { get; set; } = "";

    /// <summary>Directory of cached profiles (relative paths are under the Trident home).</summary>
    public string ProfileCache { get; set; } = ".cache/profiles";

    /// <summary>The devices.</summary>
    public DeviceOptions Devices { get; set; } = new();

    /// <summary>The serving loop and the queue.</summary>
    public ServingOptions Serving { get; set; } = new();

    /// <summary>Request limits.</summary>
    public LimitOptions Limits { get; set; } = new();

    /// <summary>The monitor and the re-placement trigger.</summary>
    public MonitorOptions Monitor { get; set; } = new();

    /// <summary>The job store.</summary>
    public JobOptions Jobs { get; set; } = new();

    /// <summary>Where the job store keeps accepted jobs and results durably.</summary>
    public StorageOptions Storage { get; set; } = new();

    /// <summary>What emulated devices emulate (Devices:Kind = emulated).</summary>
    public EmulationOptions Emulation { get; set; } = new();

    /// <summary>One Trident across machines (coordinator and workers on Orleans).</summary>
    public ClusterOptions Cluster { get; set; } = new();

    /// <summary>Traces and metrics exported by OpenTelemetry (OTLP); /metrics is always served.</summary>
    public TelemetryOptions Telemetry { get; set; } = new();

    /// <summary>Cross-origin requests from browser applications (CORS); none allowed by default.</summary>
    public CrossOriginOptions Cors { get; set; } = new();

    /// <summary>API keys the /v1 routes require (Authorization: Bearer KEY); none by default: no key needed.</summary>
    public AuthOptions Auth { get; set; } = new();
}

/// <summary>Section <c>Trident:Auth</c>: API keys (docs/serving.md, "API keys").</summary>
public sealed class AuthOptions
{
    /// <summary>Keys any of which a request to a /v1 route must present as <c>Authorization: Bearer KEY</c> (as the
    /// OpenAI clients send their api_key); empty: no key is needed. /health, /ready, /metrics, the docs and the web
    /// view's page stay open.</summary>
    public string[] ApiKeys { get; set; } = [];
}

/// <summary>Section <c>Trident:Cors</c>: which web origins a browser lets call the API (CORS, the Fetch standard),
/// answered by ASP.NET Core's CORS middleware (docs/serving.md, "Browser clients").</summary>
public sealed class CrossOriginOptions
{
    /// <summary>Origins allowed to call the API from a browser, each <c>scheme://host[:port]</c> (e.g.
    /// <c>http://localhost:3000</c>), or the one entry <c>*</c> for any origin; empty: no cross-origin access.</summary>
    public string[] Origins { get; set; } = [];

    /// <summary>How long a browser may cache a preflight answer, in seconds.</summary>
    public int PreflightMaxAgeSeconds { get; set; } = 600;

    /// <summary>Whether <paramref name="origin"/> is a valid entry of <see cref="Origins"/>: <c>*</c>, or an absolute
    /// http(s) URI with nothing after the host and port but an optional <c>/</c>.</summary>
    public static bool IsOrigin(string origin) => origin == "*" || Normalize(origin) is not null;

    /// <summary>An origin as a browser's <c>Origin</c> header writes it — lowercase scheme and host, no default port,
    /// no trailing <c>/</c> (<c>http://LocalHost:3000/</c> → <c>http://localhost:3000</c>) —, or null when it is not
    /// an http(s) origin (a path, a query, a fragment or user info).</summary>
    public static string? Normalize(string origin) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps)
        && u.AbsolutePath == "/" && u.Query.Length == 0 && u.Fragment.Length == 0 && u.UserInfo.Length == 0
            ? u.GetLeftPart(UriPartial.Authority)
            : null;

    /// <summary>The origins as browsers send them (<see cref="Normalize"/>); <c>*</c> as it is.</summary>
    public IReadOnlyList<string> Normalized() => [.. Origins.Select(o => o == "*" ? o : Normalize(o) ?? o)];
}

/// <summary>Section <c>Trident:Telemetry</c>: OpenTelemetry export (docs/serving.md, Observability).</summary>
public sealed class TelemetryOptions
{
    /// <summary>The OTLP protocols <see cref="OtlpProtocol"/> accepts.</summary>
    public static readonly string[] OtlpProtocols = ["grpc", "http/protobuf"];

    /// <summary>OTLP endpoint that receives traces and metrics (e.g. <c>http://127.0.0.1:4317</c> for gRPC,
    /// <c>http://127.0.0.1:4318</c> for HTTP); empty: no OTLP export.</summary>
    public string OtlpEndpoint { get; set; } = "";

    /// <summary><c>grpc</c> or <c>http/protobuf</c>.</summary>
    public string OtlpProtocol { get; set; } = "grpc";

    /// <summary>How often metrics are pushed to the OTLP endpoint, in milliseconds.</summary>
    public int OtlpExportIntervalMs { get; set; } = 10_000;

    /// <summary>The <c>service.name</c> resource attribute of every span and metric.</summary>
    public string ServiceName { get; set; } = "trident";

    /// <summary>The OTLP endpoint as an absolute http(s) URI, or null when none is configured or it does not
    /// parse (the validator reports that).</summary>
    public Uri? OtlpUri() =>
        Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps) ? u : null;
}

/// <summary>Section <c>Trident:Storage</c>: the durable job store (docs/serving.md, Durability).</summary>
public sealed class StorageOptions
{
    /// <summary>The value of <see cref="Directory"/> that keeps jobs in memory only (lost when the process ends).</summary>
    public const string InMemory = "memory";

    /// <summary>Directory of the job store: the SQLite database <c>jobs.db</c> and the result files
    /// <c>results/&lt;id&gt;.png</c> (relative paths are under the Trident home); <c>memory</c> keeps jobs in memory only.</summary>
    public string Directory { get; set; } = ".cache/jobs";

    /// <summary>The storage directory as an absolute path (relative to <paramref name="home"/>), or null for <c>memory</c>.</summary>
    public string? Resolve(string home) =>
        Directory == InMemory ? null : Path.GetFullPath(Path.IsPathRooted(Directory) ? Directory : Path.Combine(home, Directory));
}

/// <summary>Section <c>Trident:Devices</c>.</summary>
public sealed class DeviceOptions
{
    /// <summary><c>cpu</c> (slots of the machine's cores), <c>cuda</c> (CUDA devices 0..Count−1) or a list of CUDA
    /// devices, <c>cuda:0</c> or <c>cuda:0,cuda:2</c>, or <c>emulated</c> (devices that take the time of a reference
    /// profile, section Emulation; Count 0 means 8, DevicesPerNode 0 means 8). CUDA needs an NVIDIA driver, CUDA 13
    /// and cuDNN 9.</summary>
    public string Kind { get; set; } = "cpu";

    /// <summary>Devices; 0 means one per core (cpu) or one per listed ordinal (cuda:N,…) — required for <c>cuda</c>.</summary>
    public int Count { get; set; }

    /// <summary>Intra-op threads of one device (cpu); host threads of a CUDA device's CPU fallback.</summary>
    public int ThreadsPerDevice { get; set; } = 1;

    /// <summary>Devices per node; 0 means all in one node.</summary>
    public int DevicesPerNode { get; set; }

    /// <summary>Memory of one device in GB for the planners; 0 means ask the device: cuda — its total memory
    /// from nvidia-smi; cpu — MemTotal of /proc/meminfo × <see cref="MemoryShare"/>, divided among the devices.</summary>
    public double MemoryGb { get; set; }

    /// <summary>Share of the machine's memory the cpu devices may fill together (when MemoryGb is 0).</summary>
    public double MemoryShare { get; set; } = 0.9;

    /// <summary>Diffuse degrees a request may use (intersected with the profile's).</summary>
    public int[] Degrees { get; set; } = [1, 2, 4, 8];

    /// <summary>CUDA execution provider settings (cuda devices only).</summary>
    public CudaOptions Cuda { get; set; } = new();

    /// <summary>The CUDA ordinals <see cref="Kind"/> names: 0..Count−1 for <c>cuda</c>, the listed ones for
    /// <c>cuda:N,…</c>; null for cpu or when the list does not parse (the validator reports it).</summary>
    public int[]? CudaOrdinals()
    {
        if (Kind == "cuda") return Enumerable.Range(0, Math.Max(Count, 0)).ToArray();
        if (!Kind.StartsWith("cuda:", StringComparison.Ordinal)) return null;
        var ordinals = new List<int>();
        foreach (var part in Kind.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!part.StartsWith("cuda:", StringComparison.Ordinal)
                || !int.TryParse(part.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                || n > 1023)
                return null;
            ordinals.Add(n);
        }
        return ordinals.Distinct().Count() == ordinals.Count ? ordinals.ToArray() : null;
    }
}

/// <summary>Section <c>Trident:Devices:Cuda</c>: ONNX Runtime's CUDA provider options.</summary>
public sealed class CudaOptions
{
    /// <summary>Arena limit per device in GB (gpu_mem_limit); 0 = no limit.</summary>
    public double MemoryLimitGb { get; set; }

    /// <summary><c>NextPowerOfTwo</c> (ORT's default) or <c>SameAsRequested</c>.</summary>
    public string ArenaExtendStrategy { get; set; } = "NextPowerOfTwo";

    /// <summary><c>Exhaustive</c> (ORT's default), <c>Heuristic</c> or <c>Default</c>.</summary>
    public string CudnnConvAlgoSearch { get; set; } = "Exhaustive";

    /// <summary>Copy on a stream of their own instead of the compute stream.</summary>
    public bool UseCopyStream { get; set; }

    /// <summary>float32 products in TensorFloat-32 (ORT's use_tf32; on by default): faster on Ampere and later; off,
    /// a batch item differs from its request run alone by float32 rounding only (measured on an H200, tiny pipeline
    /// 256², 4 steps: max |Δ latents| 1.1e-5 off, 7.8e-3 on, at a latent scale of 6.5; docs/gpu-check/).</summary>
    public bool UseTf32 { get; set; } = true;
}

/// <summary>Section <c>Trident:Serving</c>.</summary>
public sealed class ServingOptions
{
    /// <summary>Period of the serving loop's rounds (also run on arrivals and completions).</summary>
    public int RoundPeriodMs { get; set; } = 500;

    /// <summary>Requests waiting for dispatch beyond which submissions get 429.</summary>
    public int QueueCapacity { get; set; } = 64;

    /// <summary>Wall-clock limit of one dispatch MIP solve (then greedy).</summary>
    public int DispatchTimeLimitMs { get; set; } = 50;

    /// <summary>Wall-clock limit of one placement MIP solve (then the heuristic).</summary>
    public int PlacementTimeLimitMs { get; set; } = 2000;

    /// <summary>A request without deadline_ms gets arrival + SloScale × its latency served alone.</summary>
    public double SloScale { get; set; } = 4.0;

    /// <summary>Efficiency threshold θ: degrees below it are not worth their devices.</summary>
    public double EfficiencyThreshold { get; set; } = 0.8;

    /// <summary>Dispatch rounds and re-placements kept for <c>GET /v1/plan</c>, <c>/v1/plan/rounds</c> and <c>/v1/plan/rounds/{n}</c>: the last this
    /// many rounds that dispatched a request, ran the solver or failed (a round with nothing to decide is not kept).</summary>
    public int RoundHistory { get; set; } = 32;

    /// <summary>Frames per second of a video's APNG.</summary>
    public int VideoFramesPerSecond { get; set; } = 8;

    /// <summary>Most requests in one batch (same pipeline, shape, steps, guidance and sampler run as one batch
    /// up to the profile's best batch size); 1 turns batching off.</summary>
    public int MaxBatch { get; set; } = 8;

    /// <summary>On shutdown (SIGTERM), how long work in flight may run to completion before the rest is
    /// cancelled; the process exits within this plus 5 s.</summary>
    public int DrainSeconds { get; set; } = 30;

    /// <summary>Seconds: a waiting request is queued behind a device's running task when the device is predicted free
    /// within this many seconds, so a device that frees has its next task on its own queue instead of idling while the
    /// next round is planned (docs/policies.md, "Queueing behind running tasks"), and a request waits for a larger
    /// group of a growth degree only when that group frees within it ("Waiting for a larger group"); 0 turns both
    /// off.</summary>
    public double QueueHorizonSeconds { get; set; } = 0.05;

    /// <summary>Live backfilling of held devices (docs/policies.md, "Backfilling"): a device seated at a gang that has
    /// not started takes one-device requests that end before the gang's predicted start, through its worker's backfill
    /// lane. False leaves such devices idle until the gang starts (the free devices of a node a round reserves are
    /// backfilled either way); for side-by-side measurements.</summary>
    public bool BackfillHeldDevices { get; set; } = true;

    /// <summary>Step-boundary preemption (issue 12): a running diffuse of a request alone may be suspended at a
    /// denoising-step boundary for a waiting request, when the planner's objective (on-time reward and latency) gains
    /// more than the suspended request loses (docs/policies.md, "Preemption"; PreemptForLatency false: only for a
    /// request that would miss its deadline by waiting); it resumes on its
    /// own devices (or, with ResumeElsewhere, the group of its type and degree free first), bit-identical. With it, a video
    /// decode may also pause between two temporal tiles for a waiting decode (DecodeTileFrames).
    /// Off by default: every suspension costs the suspended request time (README, "Mixed images and videos").</summary>
    public bool Preemption { get; set; }

    /// <summary>With Preemption, decode preemption: a video decode on a ⟨C⟩ device runs in temporal tiles of this many
    /// frames and pauses between two of them for a decode that would otherwise be late (with PreemptForLatency, for any
    /// decode that would wait), when the objective gains more
    /// than the delayed decodes lose (docs/policies.md, "Decode preemption"); 12 is the temporal tile stride of
    /// HunyuanVideo's VAE in diffusers. 0 turns decode pauses off. Only executors that decode in tiles pause (emulated
    /// devices; ONNX Runtime decodes a video in one run).</summary>
    public int DecodeTileFrames { get; set; } = 12;

    /// <summary>With Preemption, the most times one request may be suspended.</summary>
    public int MaxSuspensions { get; set; } = 2;

    /// <summary>With Preemption, a suspended request resumes on whichever group of its placement type and degree is
    /// free first (its own devices on ties; Preemption.resumeGroup, the simulator's rule), instead of always on its
    /// own devices behind the urgent work. Bit-identical either way: the checkpoint is host memory and the resumed
    /// run uses the same intra-op threads. Off by default, as in the simulator's defaults.</summary>
    public bool ResumeElsewhere { get; set; }

    /// <summary>With Preemption, suspend for latency as well as deadlines (PreemptionSettings.ForLatency, the
    /// simulator's default): every waiting request is weighed, before each round and after it, and the objective's
    /// latency term alone may pay for a suspension or a decode put in between tiles. false: only for a request (or a
    /// decode) that misses its deadline by waiting. docs/policies.md, "Preemption for latency".</summary>
    public bool PreemptForLatency { get; set; } = Trident.Scheduling.Dispatching.PreemptionSettingsModule.defaults.ForLatency;

    /// <summary>The request mix the initial placement is planned for: comma-separated classes
    /// HEIGHTxWIDTH[xFRAMES][@STEPS][:SHARE] (shares are relative weights, 1 where not given; steps default to the
    /// default steps), e.g. <c>544x960x33@50:0.2,544x960@50:0.8</c>. Empty (the default): requests of the default
    /// size and steps. Each class must be a size the pipeline serves within the limits. Adjust-on-Dispatch re-plans
    /// from the observed mix either way; this decides what the server starts with (PlanForMix).</summary>
    public string PlanFor { get; set; } = "";
}

/// <summary>Section <c>Trident:Limits</c> (the pipeline's own size constraint applies too).</summary>
public sealed class LimitOptions
{
    /// <summary>Largest width in pixels.</summary>
    public int MaxWidth { get; set; } = 1024;

    /// <summary>Largest height in pixels.</summary>
    public int MaxHeight { get; set; } = 1024;

    /// <summary>Most frames of a video.</summary>
    public int MaxFrames { get; set; } = 17;

    /// <summary>Most denoising steps.</summary>
    public int MaxSteps { get; set; } = 100;

    /// <summary>Longest prompt (and negative prompt), in characters (Unicode code points). The encoder may read
    /// less: its tokenizer keeps a fixed number of tokens (the job status reports how much it used).</summary>
    public int MaxPromptLength { get; set; } = 2000;

    /// <summary>Most images per OpenAI-style request (<c>n</c>).</summary>
    public int MaxImagesPerRequest { get; set; } = 4;

    /// <summary>Width of a request that gives none (also the initial placement's mix). Must be a size the pipeline
    /// serves; the built-in 256 is moved to the nearest one the pipeline and the limits allow when it is not (e.g. 544 for
    /// HunyuanVideo).</summary>
    public int DefaultWidth { get; set; } = 256;

    /// <summary>Height of a request that gives none (as DefaultWidth).</summary>
    public int DefaultHeight { get; set; } = 256;

    /// <summary>Steps of a request that gives none; 0 means the pipeline's default.</summary>
    public int DefaultSteps { get; set; }

    /// <summary>Largest JSON request body in bytes; a larger one is a 413 problem (nothing of it is parsed).</summary>
    public int MaxBodyBytes { get; set; } = 1_048_576;

    /// <summary>Longest deadline a client may set.</summary>
    public long MaxDeadlineMs { get; set; } = 3_600_000;

    /// <summary>Most seconds a request may be predicted to take served alone (the cost model's t_ref on this
    /// server's profile); 0 = no limit.</summary>
    public double MaxPredictedSeconds { get; set; } = 120;

    /// <summary>Most GB of activations a request may be predicted to need on one device (the cost model's peak
    /// over its stages at its reference degree); 0 = no limit.</summary>
    public double MaxActivationGb { get; set; } = 8;
}

/// <summary>Section <c>Trident:Monitor</c>: Adjust-on-Dispatch, with the simulator's defaults.</summary>
public sealed class MonitorOptions
{
    /// <summary>Sliding window of the monitor.</summary>
    public double WindowSeconds { get; set; } = 60;

    /// <summary>Re-plan the placement when the fastest of the arrival, encode, diffuse and decode rates is this
    /// multiple of the slowest.</summary>
    public double TriggerRatio { get; set; } = 1.5;

    /// <summary>Least time between two re-placement evaluations that fired.</summary>
    public double CooldownSeconds { get; set; } = 30;

    /// <summary>Fewest arrivals in the window before the trigger is read.</summary>
    public int MinArrivals { get; set; } = 20;

    /// <summary>Relative α gain a new placement must bring (when it serves no more of the mix) to be taken.</summary>
    public double MinGain { get; set; } = 0.1;
}

/// <summary>Section <c>Trident:Jobs</c>.</summary>
public sealed class JobOptions
{
    /// <summary>Most jobs held (active and finished); when all are active, submissions get 429.</summary>
    public int Capacity { get; set; } = 1024;

    /// <summary>How long a finished job and its result are kept.</summary>
    public double RetentionSeconds { get; set; } = 600;
}
