// Starts the serving runtime in the background once the host has started (the server listens; a host that cannot
// bind its address does none of the start-up work), so the HTTP server answers /health at once while the
// pipeline is opened and (without a configured profile) profiled; /ready and the generation routes answer
// 503 with Retry-After until the runtime is up. A start-up failure is logged, reported by /ready, and
// stops nothing else: the operator sees why.
//
// Shutdown (SIGTERM, Ctrl+C, StopApplication): as soon as the host starts stopping (ApplicationStopping), the
// server drains — new work is refused with 503 and Retry-After, work in flight gets
// Trident:Serving:DrainSeconds to finish, the rest is cancelled and logged by id. The host awaits the drain
// in StoppingAsync (IHostedLifecycleService), which runs before any service's StopAsync: Kestrel, whose
// StopAsync runs first (it started last) and stops listening, is still serving during the drain, so clients
// get the 503s, and every job reaches a final state and every event stream its final event before Kestrel
// closes the connections. HostOptions.ShutdownTimeout is DrainSeconds + 5 s (TridentHosting), the bound on
// exit.

using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.FSharp.Collections;
using Trident.Api.Options;
using Trident.Runtime.Devices;
using Trident.Runtime.Monitoring;
using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines;
using Trident.Runtime.Serving;
using Trident.Scheduling;
using Trident.Scheduling.Dispatching;
using Trident.Scheduling.Placement;

namespace Trident.Api.Hosting;

/// <summary>The running server, once started.</summary>
/// <param name="Server">The serving runtime.</param>
/// <param name="Manifest">The pipeline's manifest.</param>
/// <param name="ProfileOrigin">Where the profile came from.</param>
/// <param name="Tokenizer">The pipeline's tokenizer (how much of a prompt the encoder reads).</param>
public sealed record ReadyServer(TridentServer Server, PipelineManifest Manifest, string ProfileOrigin,
    Trident.Runtime.Pipelines.Tokenizers.ITokenizer Tokenizer)
{
    /// <summary>How the executors size a result (<see cref="ServingBackendParts.ResultSize"/>); null: as requested.</summary>
    public Func<int, int, (int Width, int Height)>? ResultSizes { get; init; }

    /// <summary>The size of the result file of a request of <paramref name="width"/> × <paramref name="height"/>: the
    /// request's own, except on emulated devices, whose results are placeholders of at most 64 pixels a side.</summary>
    public (int Width, int Height) ResultSize(int width, int height) => ResultSizes?.Invoke(width, height) ?? (width, height);

    /// <summary>The worker endpoint of each device on a cluster's coordinator (<see cref="ServingBackendParts.WorkerOf"/>);
    /// null in one process.</summary>
    public Func<int, string?>? WorkerOf { get; init; }
}

/// <summary>Owns the serving runtime's lifetime.</summary>
public sealed class ServerHost : IHostedLifecycleService, IAsyncDisposable
{
    private readonly IServingBackend _backend;
    private readonly TridentOptions _options;
    private readonly ILoggerFactory _logs;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stopping = new();
    private readonly IHostApplicationLifetime? _lifetime;
    private CancellationTokenRegistration _onStopping, _onStarted;
    private volatile bool _shuttingDown;
    private volatile ReadyServer? _ready;
    private volatile string? _failure;
    private Task? _starting;
    private Task? _stop;
    private readonly object _stopGate = new();
    private readonly TelemetryScope? _scope;
    private readonly ServingStateMetric? _stateMetric;
    private readonly (bool Width, bool Height) _defaultSizeSet;
    private JobStoreLock? _storageLock;

    /// <summary>Creates the host; nothing starts before <see cref="StartAsync"/>. With a telemetry scope, the
    /// serving state and the server's metrics are exported under it.</summary>
    public ServerHost(IServingBackend backend, IOptions<TridentOptions> options, ILoggerFactory logs, TimeProvider time,
        IHostApplicationLifetime? lifetime = null, TelemetryScope? scope = null, Microsoft.Extensions.Configuration.IConfiguration? configuration = null)
    {
        _defaultSizeSet = DefaultSizeSet(configuration, options.Value);
        _lifetime = lifetime;
        _scope = scope;
        if (scope is not null) _stateMetric = new ServingStateMetric(scope, () => State);
        _backend = backend;
        _options = options.Value;
        _logs = logs;
        _log = logs.CreateLogger("Trident.Startup");
        _time = time;
        _created = time.GetTimestamp();
    }

    private readonly long _created;

    /// <summary>Time since this host was created, when the application was built: the server's uptime. (The process's
    /// start time is not it: `./trident` builds first, then execs the server in the same process — /health counted the
    /// build's minutes.)</summary>
    public TimeSpan Uptime => _time.GetElapsedTime(_created);

    /// <summary>The server, when it is up.</summary>
    public ReadyServer? Ready => _ready;

    /// <summary>Why the server could not start, if it could not. The host is then stopped (the application's
    /// lifetime, when there is one): <c>trident serve</c> prints this and exits with code 1.</summary>
    public string? Failure => _failure;

    /// <summary>What the start waits for, while starting, when the backend says (a coordinator waiting for its
    /// workers' devices), else null.</summary>
    public string? StartingDetail => _ready is null && _failure is null ? _backend.Starting : null;

    /// <summary>starting, ready, draining or failed.</summary>
    public string State => _shuttingDown ? "draining" : _ready is not null ? "ready" : _failure is not null ? "failed" : "starting";

    /// <summary>Whether the host is shutting down (draining, then stopped).</summary>
    public bool ShuttingDown => _shuttingDown;

    /// <summary>How long work in flight may run on shutdown.</summary>
    public TimeSpan DrainTime => TimeSpan.FromSeconds(_options.Serving.DrainSeconds);

    // After the drain time, how long cancelled jobs get to stop at their next step before they are marked
    // cancelled regardless; within the 5 s the host allows beyond the drain time.
    private static readonly TimeSpan CancelGrace = TimeSpan.FromSeconds(3);

    /// <summary>Starts the drain (idempotent): the server refuses new work and its jobs finish or are cancelled
    /// within the drain time. Called when the host starts stopping.</summary>
    public Task BeginDrain()
    {
        _shuttingDown = true;
        return _ready is { } r ? r.Server.DrainAsync(DrainTime, CancelGrace) : Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_lifetime is null)
        {
            _starting = Task.Run(() => StartServerAsync(_stopping.Token), CancellationToken.None);
            return Task.CompletedTask;
        }
        _onStopping = _lifetime.ApplicationStopping.Register(() => _ = BeginDrain());
        // the start-up work (the store's lock, the pipeline, profiling) begins once the host has started, i.e. once
        // the server listens: a host that fails to start (its address in use) does none of it and logs nothing after
        // its failure; listening takes milliseconds, so /health still answers throughout the start
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _onStarted = _lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        var ct = _stopping.Token;
        _starting = Task.Run(async () =>
        {
            try
            {
                await started.Task.WaitAsync(ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            await StartServerAsync(ct);
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task StartServerAsync(CancellationToken ct)
    {
        // what the start has built so far, released in reverse order when a later step throws (ReleaseAsync)
        TridentServer? server = null;
        try
        {
            // a store another server has open stops the start now, not after the profiling and model loads; the lock is
            // held from here on (the journal keeps it), so a second server started meanwhile stops at once too
            if (_options.Storage.Resolve(Trident.Runtime.Execution.PipelineLocator.FindHome()) is { } storage) _storageLock = JobJournal.Reserve(storage);
            var layout = await _backend.LayoutAsync(_options, _log, ct);
            _log.LogInformation("Starting: {Devices} {Kind} device(s) in {Nodes} node(s)", layout.Devices.Count, _options.Devices.Kind, layout.NodeCount);
            var parts = await _backend.PrepareAsync(_options, layout, _log, ct);
            FitDefaultSize(_options, parts.Manifest, _log, _defaultSizeSet);
            // a profile with no point at a degree the planner may use (a file written by hand or by an older profiler)
            // is named here, not by the cost model's argument exception
            var degrees = CostSettings(_options).Degrees;
            if (ProfileModule.degrees(parts.Profile) is var measured && !measured.Any(k => degrees.Contains(k)))
                throw new InvalidOperationException(
                    $"the profile ({parts.ProfileOrigin}) measures the diffuse at degree {string.Join(", ", measured)} only, none of {TridentOptions.Section}:Devices:Degrees ({string.Join(", ", degrees)}): profile again with `trident profile --degrees 1,2` (any of 1, 2, 4, 8)");
            var setup = new ServerSetup(layout, parts.Profile, CostSettings(_options), parts.Executors, Settings(_options),
                InitialMix(_options, parts.Manifest, CostModelModule.create(CostSettings(_options), parts.Profile))) { StorageLock = _storageLock };
            server = TridentServer.Start(setup, _logs, _time, _scope);
            server.Metrics.Initialise();
            parts.Started?.Invoke(server);
            _ready = new ReadyServer(server, parts.Manifest, parts.ProfileOrigin, parts.Tokenizer) { ResultSizes = parts.ResultSize, WorkerOf = parts.WorkerOf };
            _log.LogInformation("Ready: pipeline {Pipeline}, profile from {Profile}", parts.Manifest.Name, parts.ProfileOrigin);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await ReleaseAsync(server);
        }
        catch (Exception ex)
        {
            await ReleaseAsync(server);
            _failure = $"{ex.GetType().Name}: {ex.Message}";
            _log.LogCritical(ex, "The serving runtime could not start");
            // a server that can never become ready stops, so that `trident serve` exits non-zero and a
            // supervisor (systemd, Kubernetes) sees the failure instead of a process answering 503 forever
            // (once the host has started: stopping it while Kestrel still binds cancels the bind, and RunAsync
            // throws instead of returning; ApplicationStarted runs the callback at once when it already has)
            _lifetime?.ApplicationStarted.Register(() => _lifetime.StopApplication());
        }
    }

    // A start that failed or was cancelled releases what it built, in reverse order: the server, if built (its loop,
    // its workers and their executors, its journal with the store's lock it took over), then the store's lock (when
    // no journal took it over). A failure to release is logged, not thrown: the start's own failure is what matters.
    private async Task ReleaseAsync(TridentServer? server)
    {
        if (server is not null)
            try
            {
                await server.DisposeAsync();
            }
            catch (Exception ex)
            {
                _log.LogError(ex, "The serving runtime built by a failed start could not be disposed");
            }
        _storageLock?.Dispose();
    }

    /// <inheritdoc />
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The host is stopping: drain before any service (Kestrel first) stops.</summary>
    public Task StoppingAsync(CancellationToken cancellationToken) => BeginDrain();

    /// <inheritdoc />
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Stops the serving runtime: drains, disposes the server (its workers, executors and journal) and releases
    /// the store's lock. Called twice (the host stops it, the container disposes it), the second call awaits the first
    /// one's stop, so that neither returns while the lock is still held (a server started next on the same store
    /// found it held).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource? first = null;
        Task stop;
        lock (_stopGate)
        {
            if (_stop is null)
            {
                first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _stop = first.Task;
            }
            stop = _stop;
        }
        if (first is null)
        {
            await stop; // completes when the first call's stop has ended, however it ended (that call reports a failure)
            return;
        }
        try
        {
            await StopOnceAsync();
        }
        finally
        {
            first.SetResult();
        }
    }

    private async Task StopOnceAsync()
    {
        _shuttingDown = true;
        await _stopping.CancelAsync();
        if (_starting is not null) await _starting;
        await _onStopping.DisposeAsync();
        await _onStarted.DisposeAsync();
        if (_ready is { } r)
        {
            await BeginDrain();
            _ready = null;
            await r.Server.DisposeAsync();
        }
        _storageLock?.Dispose();
        _stateMetric?.Dispose();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        // registered both as itself and as a hosted service, so the container may dispose it twice
        await StopAsync(CancellationToken.None);
    }

    /// <summary>
    /// The devices the options describe, with memory asked of each device unless configured, and every CUDA
    /// device's execution provider checked: all problems are reported in one error that names each device
    /// (e.g. the CUDA libraries that did not load, or nvidia-smi missing).
    /// </summary>
    /// <exception cref="InvalidOperationException">listing every device that cannot be used.</exception>
    public static DeviceLayout Layout(DeviceOptions d)
    {
        if (d.CudaOrdinals() is { } ordinals)
        {
            var problems = new List<string>();
            var memory = new Dictionary<int, double>();
            foreach (var ordinal in ordinals)
            {
                var provider = CudaProvider(d, ordinal);
                try
                {
                    provider.EnsureAvailable();
                }
                catch (ExecutionProviderException e)
                {
                    problems.Add(e.Message);
                }
                if (d.MemoryGb > 0) memory[ordinal] = d.MemoryGb;
                else
                {
                    try
                    {
                        memory[ordinal] = DeviceMemory.Cuda(ordinal).TotalBytes / 1e9;
                    }
                    catch (DeviceMemoryException e)
                    {
                        problems.Add(e.Message);
                    }
                }
            }
            if (problems.Count > 0)
                throw new InvalidOperationException(
                    $"the configured CUDA device(s) cannot be used (Trident:Devices:Kind = '{d.Kind}'): " + string.Join(" | ", problems));
            var perNode = d.DevicesPerNode == 0 ? ordinals.Length : d.DevicesPerNode;
            return DeviceLayout.Cuda(ordinals, perNode, o => memory[o], o => CudaProvider(d, o), d.ThreadsPerDevice);
        }
        var count = d.Count == 0 ? Environment.ProcessorCount : d.Count;
        var memoryGb = d.MemoryGb > 0 ? d.MemoryGb : DeviceMemory.CpuSlotGb(d.MemoryShare, count);
        return DeviceLayout.Cpu(count, d.ThreadsPerDevice, d.DevicesPerNode == 0 ? count : d.DevicesPerNode, memoryGb);
    }

    /// <summary>The CUDA execution provider of device <paramref name="ordinal"/> from the options.</summary>
    public static ExecutionProvider.Cuda CudaProvider(DeviceOptions d, int ordinal) => new(
        ordinal,
        (long)(d.Cuda.MemoryLimitGb * 1e9),
        Enum.Parse<CudaArenaExtendStrategy>(d.Cuda.ArenaExtendStrategy, ignoreCase: true),
        Enum.Parse<CudnnConvAlgoSearch>(d.Cuda.CudnnConvAlgoSearch, ignoreCase: true),
        d.Cuda.UseCopyStream,
        d.Cuda.UseTf32);

    /// <summary>The cost model's settings from the options.</summary>
    public static CostSettings CostSettings(TridentOptions o) =>
        new(ListModule.OfSeq(o.Devices.Degrees.Distinct().Order()), o.Serving.EfficiencyThreshold,
            CostSettingsModule.referenceMinDegrees, DeadlineRule.NewSloScale(o.Serving.SloScale));

    /// <summary>The serving runtime's settings from the options.</summary>
    public static ServingSettings Settings(TridentOptions o) => new()
    {
        RoundPeriodSeconds = o.Serving.RoundPeriodMs / 1000.0,
        QueueCapacity = o.Serving.QueueCapacity,
        JobCapacity = o.Jobs.Capacity,
        JobRetention = TimeSpan.FromSeconds(o.Jobs.RetentionSeconds),
        // every accepted job adds at most four tasks to a worker (encode, diffuse or reserve, decode, retype)
        WorkerQueueCapacity = Math.Max(64, 4 * (o.Serving.QueueCapacity + 16)),
        Dispatch = DispatchSettingsModule.withTimeLimit(o.Serving.DispatchTimeLimitMs / 1000.0, DispatchSettingsModule.defaults),
        PlacementTimeLimitSeconds = o.Serving.PlacementTimeLimitMs / 1000.0,
        Monitor = MonitorSettings(o),
        RoundHistory = o.Serving.RoundHistory,
        VideoFramesPerSecond = o.Serving.VideoFramesPerSecond,
        // across machines: with every worker gone, requests wait as long as the coordinator waits for workers at start
        NoDeviceSeconds = o.Cluster.JoinTimeoutSeconds,
        MaxBatch = o.Serving.MaxBatch,
        QueueHorizonSeconds = o.Serving.QueueHorizonSeconds,
        BackfillHeldDevices = o.Serving.BackfillHeldDevices,
        Preemption = o.Serving.Preemption
            ? new PreemptionSettings(o.Serving.MaxSuspensions, PreemptionSettingsModule.defaults.MinGain, PreemptionSettingsModule.defaults.CandidatesPerRound,
                o.Serving.ResumeElsewhere, o.Serving.DecodeTileFrames, o.Serving.PreemptForLatency)
            : null,
        StorageDirectory = o.Storage.Resolve(Trident.Runtime.Execution.PipelineLocator.FindHome()),
    };

    /// <summary>The monitor's settings from the options. On emulated devices the window, cool-down and re-check
    /// spacing are in the emulated devices' time, like the profile's latencies: × Trident:Emulation:TimeScale in
    /// the server's seconds, so that Adjust-on-Dispatch reacts after as much work as the simulator's does.</summary>
    public static MonitorSettings MonitorSettings(TridentOptions o)
    {
        var m = new MonitorSettings(o.Monitor.WindowSeconds, o.Monitor.TriggerRatio, o.Monitor.CooldownSeconds, o.Monitor.MinArrivals, o.Monitor.MinGain);
        return o.Devices.Kind == EmulationOptions.Kind ? m.Scaled(o.Emulation.TimeScale) : m;
    }

    /// <summary>The built-in default size (Trident:Limits:DefaultWidth and DefaultHeight, pixels).</summary>
    public const int BuiltInDefaultSide = 256;

    /// <summary>Whether Limits:DefaultWidth and DefaultHeight are set in <paramref name="configuration"/> (any source):
    /// the bound options cannot tell a configured 256 from the built-in one. Without a configuration, a side other
    /// than <see cref="BuiltInDefaultSide"/> counts as set.</summary>
    public static (bool Width, bool Height) DefaultSizeSet(Microsoft.Extensions.Configuration.IConfiguration? configuration, TridentOptions o) =>
        configuration is null
            ? (o.Limits.DefaultWidth != BuiltInDefaultSide, o.Limits.DefaultHeight != BuiltInDefaultSide)
            : (configuration[$"{TridentOptions.Section}:Limits:DefaultWidth"] is not null, configuration[$"{TridentOptions.Section}:Limits:DefaultHeight"] is not null);

    /// <summary>Makes the default request size (Limits:DefaultWidth × DefaultHeight, what a request that gives none
    /// gets, and the initial placement's mix) one the pipeline serves. A side left unset (the built-in 256) is moved to
    /// the nearest one the pipeline and the limits allow (e.g. 544 for HunyuanVideo, whose sides are 544–1280), and
    /// logged; a side set in the configuration (<paramref name="set"/>, <see cref="DefaultSizeSet"/>), 256 included,
    /// must be served as it is.</summary>
    /// <exception cref="InvalidOperationException">when a configured default size is not one the pipeline serves
    /// (naming the keys and the pipeline's reason), or no size within the limits is.</exception>
    public static void FitDefaultSize(TridentOptions o, PipelineManifest manifest, ILogger log, (bool Width, bool Height)? set = null)
    {
        var l = o.Limits;
        var (width, height, reason) = DefaultSize(o, manifest, set ?? DefaultSizeSet(null, o));
        if (reason is null) return;
        log.LogInformation("Pipeline {Pipeline} does not serve the default size {DefaultWidth}×{DefaultHeight} ({Reason}): requests that give no size get {Width}×{Height} (the built-in side {Side} moved to the nearest the pipeline serves; Trident:Limits:DefaultWidth, DefaultHeight)",
            manifest.Name, l.DefaultWidth, l.DefaultHeight, reason, width, height, BuiltInDefaultSide);
        l.DefaultWidth = width;
        l.DefaultHeight = height;
    }

    /// <summary>The default request size <see cref="FitDefaultSize"/> makes, and why the configured one was moved
    /// (null when it is kept); changes nothing.</summary>
    /// <exception cref="InvalidOperationException">as <see cref="FitDefaultSize"/>'s.</exception>
    private static (int Width, int Height, string? Reason) DefaultSize(TridentOptions o, PipelineManifest manifest, (bool Width, bool Height) set)
    {
        var l = o.Limits;
        var size = manifest.Size;
        if (manifest.CheckSize(l.DefaultWidth, l.DefaultHeight, size.MinFrames) is not { Count: > 0 } wrong) return (l.DefaultWidth, l.DefaultHeight, null);
        var reason = string.Join("; ", wrong.Select(e => $"{e.Path} {e.Message}"));
        static int Fit(int side, int min, int max, int multiple)
        {
            var v = Math.Clamp(side, min, max);
            var up = (v + multiple - 1) / multiple * multiple;
            return up <= max ? up : v / multiple * multiple;
        }
        // each side on its own (CheckSize names the side): a configured one must be served as it is, the built-in one is fitted
        var widthWrong = wrong.Any(e => e.Path == "width");
        var heightWrong = wrong.Any(e => e.Path == "height");
        if ((widthWrong && set.Width) || (heightWrong && set.Height))
        {
            var keys = (widthWrong && set.Width, heightWrong && set.Height) switch
            {
                (true, true) => "DefaultWidth and DefaultHeight are",
                (true, false) => "DefaultWidth is",
                _ => "DefaultHeight is",
            };
            // the reasons of the sides set (a built-in side would be fitted)
            var setReason = string.Join("; ", wrong.Where(e => e.Path switch { "width" => set.Width, "height" => set.Height, _ => true }).Select(e => $"{e.Path} {e.Message}"));
            throw new InvalidOperationException(
                $"{TridentOptions.Section}:Limits:DefaultWidth × DefaultHeight {l.DefaultWidth}×{l.DefaultHeight} is not a size pipeline {manifest.Name} serves ({setReason}; "
                + $"{TridentOptions.Section}:Limits:{keys} set in the configuration, so kept as given: set a size it serves, or remove the key to get the nearest one)");
        }
        var width = widthWrong ? Fit(BuiltInDefaultSide, size.MinWidth, Math.Min(size.MaxWidth, l.MaxWidth), size.MultipleOf) : l.DefaultWidth;
        var height = heightWrong ? Fit(BuiltInDefaultSide, size.MinHeight, Math.Min(size.MaxHeight, l.MaxHeight), size.MultipleOf) : l.DefaultHeight;
        if (manifest.CheckSize(width, height, size.MinFrames).Count > 0 || width > l.MaxWidth || height > l.MaxHeight)
            throw new InvalidOperationException(
                $"no default request size fits both pipeline {manifest.Name} (sides {size.MinWidth}–{size.MaxWidth} × {size.MinHeight}–{size.MaxHeight}, " +
                $"multiples of {size.MultipleOf}) and {TridentOptions.Section}:Limits:MaxWidth × MaxHeight {l.MaxWidth}×{l.MaxHeight}");
        return (width, height, reason);
    }

    /// <summary>What <see cref="CheckPipeline"/> found: the problems (each the message the start would fail with) and
    /// notes on the checks it could not make.</summary>
    public sealed record PipelineCheck(IReadOnlyList<string> Problems, IReadOnlyList<string> Notes);

    // The keys each check reads (under Trident:). The manifest: which pipeline (emulated devices' reference
    // profile, or the pipeline); the cost model: the profile and the cost settings; the default size; PlanFor.
    private static readonly string[] KindKeys = ["Devices:Kind", "Cluster:Mode"];
    private static readonly string[] EmulatedKeys = ["Emulation:Profile", "Emulation:TimeScale"];
    private static readonly string[] PipelineKeys = ["Pipeline"];
    private static readonly string[] CostKeys = ["Profile", "Devices:Degrees", "Serving:EfficiencyThreshold", "Serving:SloScale",
        "Limits:DefaultSteps", "Limits:MaxPredictedSeconds", "Limits:MaxActivationGb"];
    private static readonly string[] DefaultSizeKeys = ["Limits:DefaultWidth", "Limits:DefaultHeight", "Limits:MaxWidth", "Limits:MaxHeight"];
    private static readonly string[] PlanForKeys = ["Serving:PlanFor"];

    /// <summary>
    /// The configuration problems that need the pipeline, found before anything starts: a configured default size
    /// it does not serve (<see cref="FitDefaultSize"/>; set or not as <paramref name="configuration"/> says, see
    /// <see cref="DefaultSizeSet"/>) and a Serving:PlanFor class it does not serve or, where the
    /// profile is known without profiling, one predicted over the limits (<see cref="InitialMix"/>) — the same
    /// messages as at start. Only the manifest is read, not the models: emulated devices (and a cluster's) present
    /// their reference profile's; the bundled tiny pipeline's is known without writing it; a directory's is the one
    /// the validator has read (its trident-pipeline.json, or its export recognised). On ONNX Runtime without a
    /// configured profile, PlanFor's limits need this machine's profile and are left to the start; a note says so (and
    /// names a manifest that could not be read after all). Changes nothing in <paramref name="o"/>.
    /// </summary>
    /// <param name="o">The bound options.</param>
    /// <param name="configuration">The configuration they were bound from (null: the options alone).</param>
    /// <param name="found">The validator's problems (<see cref="TridentOptionsValidator.Problems"/>): a check that reads
    /// a key they put in doubt is not made (a note names the key), the others are, so one run reports every problem it
    /// can; with none, every check runs.</param>
    public static PipelineCheck CheckPipeline(TridentOptions o, Microsoft.Extensions.Configuration.IConfiguration? configuration = null,
        IReadOnlyList<ConfigProblem>? found = null)
    {
        var notes = new List<string>();
        // the key of the first problem found that puts one of keys in doubt, or null
        string? Doubt(params string[][] keys) =>
            found is null ? null
            : keys.SelectMany(k => k).Select(k => $"{TridentOptions.Section}:{k}")
                .SelectMany(k => found.Where(p => p.Concerns(k))).Select(p => p.Key).FirstOrDefault();
        void Skipped(string what, string key) =>
            notes.Add($"{what} not checked: {key} (a problem above) leaves a key it reads in doubt; fix it and check again");
        var emulated = o.Cluster.Mode != ClusterOptions.ModeNone || o.Devices.Kind == EmulationOptions.Kind;
        if (Doubt(KindKeys, emulated ? EmulatedKeys : PipelineKeys) is { } unknowable)
        {
            Skipped($"the checks that need the pipeline (a {TridentOptions.Section}:Serving:PlanFor class or {TridentOptions.Section}:Limits:DefaultWidth × DefaultHeight it does not serve) were", unknowable);
            return new PipelineCheck([], notes);
        }
        PipelineManifest manifest;
        CostModel? cost = null;
        // a cost model is had here only for emulated devices or with a configured profile; else the limits wait for serve
        var costDoubt = emulated || o.Profile.Length > 0 || Doubt(new[] { "Profile" }) is not null ? Doubt(CostKeys) : null;
        try
        {
            if (emulated)
            {
                var profile = EmulatedProfile.Scaled(EmulatedProfile.Reference(o.Emulation.Profile), o.Emulation.TimeScale);
                manifest = EmulatedProfile.Manifest(profile);
                if (costDoubt is null) cost = CostModelModule.create(CostSettings(o), profile);
            }
            else
            {
                manifest = o.Pipeline switch
                {
                    Trident.Runtime.Execution.PipelineLocator.Tiny => Trident.Runtime.Pipelines.Tiny.TinyPipeline.Manifest(),
                    Trident.Runtime.Execution.PipelineLocator.TinyFloat16 => Trident.Runtime.Pipelines.Tiny.TinyPipeline.Manifest(float16: true),
                    // what the validator has read already (Pipeline: a directory that is no servable pipeline)
                    _ => Trident.Runtime.Pipelines.Export.PipelineDirectory.LoadManifest(Path.GetFullPath(o.Pipeline)),
                };
                if (o.Profile.Length > 0 && costDoubt is null)
                {
                    var parsed = ProfileFile.parse(File.ReadAllText(o.Profile));
                    if (parsed.IsOk && parsed.ResultValue.Model.Value == manifest.Model) cost = CostModelModule.create(CostSettings(o), parsed.ResultValue);
                }
            }
        }
        catch (Exception e) when (e is ManifestException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            notes.Add($"the checks that need the pipeline (a {TridentOptions.Section}:Serving:PlanFor class or {TridentOptions.Section}:Limits:DefaultWidth × DefaultHeight "
                + $"it does not serve) run when serve starts: {e.Message}");
            return new PipelineCheck([], notes);
        }
        var problems = new List<string>();
        if (Doubt(DefaultSizeKeys) is { } sizeDoubt) Skipped($"{TridentOptions.Section}:Limits:DefaultWidth × DefaultHeight (whether the pipeline serves it) was", sizeDoubt);
        else
            try
            {
                DefaultSize(o, manifest, DefaultSizeSet(configuration, o));
            }
            catch (InvalidOperationException e)
            {
                problems.Add(e.Message);
            }
        var planFor = !string.IsNullOrWhiteSpace(o.Serving.PlanFor);
        if (planFor && Doubt(PlanForKeys) is { } planDoubt) Skipped($"{TridentOptions.Section}:Serving:PlanFor's classes (whether the pipeline serves them) were", planDoubt);
        else if (planFor)
        {
            if (costDoubt is not null && (o.Limits.MaxPredictedSeconds > 0 || o.Limits.MaxActivationGb > 0))
                Skipped($"{TridentOptions.Section}:Serving:PlanFor's classes against {TridentOptions.Section}:Limits:MaxPredictedSeconds and MaxActivationGb were", costDoubt);
            try
            {
                InitialMix(o, manifest, cost);
            }
            catch (InvalidOperationException e)
            {
                problems.Add(e.Message);
            }
            if (cost is null && costDoubt is null && (o.Limits.MaxPredictedSeconds > 0 || o.Limits.MaxActivationGb > 0))
                notes.Add($"{TridentOptions.Section}:Serving:PlanFor's classes are checked against {TridentOptions.Section}:Limits:MaxPredictedSeconds and MaxActivationGb "
                    + $"when serve starts, on this machine's profile (none is configured: {TridentOptions.Section}:Profile)");
        }
        return new PipelineCheck(problems, notes);
    }

    /// <summary>The mix the initial placement is planned for, at a nominal 1 request/s: Serving:PlanFor's classes
    /// (shares normalised), or requests of the default size and steps when it is empty.</summary>
    /// <exception cref="InvalidOperationException">when a Serving:PlanFor class is a size the pipeline does not serve
    /// (named, with the pipeline's reason), one <paramref name="cost"/> predicts over Limits:MaxPredictedSeconds or
    /// MaxActivationGb (the server would refuse such requests), or the key does not parse (the validator reports that
    /// before).</exception>
    public static WorkloadStats InitialMix(TridentOptions o, PipelineManifest manifest, CostModel? cost = null)
    {
        var steps = o.Limits.DefaultSteps > 0 ? o.Limits.DefaultSteps : manifest.Sampler.DefaultSteps;
        if (string.IsNullOrWhiteSpace(o.Serving.PlanFor))
            return new WorkloadStats(
                ListModule.OfSeq([new RequestClass(new Shape(o.Limits.DefaultHeight, o.Limits.DefaultWidth, manifest.Size.MinFrames), steps, 1.0)]),
                1.0);
        var problems = new List<string>();
        var planned = PlanForMix.Parse(o.Serving.PlanFor, problems);
        foreach (var c in planned)
            if (manifest.CheckSize(c.Width, c.Height, c.Frames) is { Count: > 0 } wrong)
                problems.Add($"'{c.Text}' is not a size pipeline {manifest.Name} serves ({string.Join("; ", wrong.Select(e => $"{e.Path} {e.Message}"))})");
            else if (cost is not null)
            {
                // what the generation routes check per request (GenerationRequests.Check): a class they would refuse
                var estimate = Trident.Api.Endpoints.GenerationRequests.Predict(cost, new Shape(c.Height, c.Width, c.Frames), c.Steps ?? steps);
                problems.AddRange(Trident.Api.Endpoints.GenerationRequests.OverLimits(estimate, $"'{c.Text}'", o.Limits)
                    .Select(p => p + ": the server would refuse such requests"));
            }
        if (problems.Count > 0) throw new InvalidOperationException($"{TridentOptions.Section}:Serving:PlanFor: {string.Join("; ", problems)}");
        var total = planned.Sum(c => c.Share);
        // the same shape and steps written twice is one class
        var classes = planned
            .GroupBy(c => (c.Height, c.Width, c.Frames, Steps: c.Steps ?? steps))
            .Select(g => new RequestClass(new Shape(g.Key.Height, g.Key.Width, g.Key.Frames), g.Key.Steps, g.Sum(c => c.Share) / total));
        return new WorkloadStats(ListModule.OfSeq(classes), 1.0);
    }
}
