// `trident bench cluster`: a Trident cluster of separate processes on loopback — a coordinator (`trident
// serve --cluster …`) and one `trident worker` per node, each with emulated devices, joined by Redis
// membership (Debian's redis-server, started here) or the localhost clustering — and the trace replayed
// through the HTTP API by loadgen (which also runs the simulator on the same requests with the server's
// scaled profile and prints both side by side, with the per-request relative error). The workload's rate is
// divided by the time scale, so the trace is the reference trace played at the emulation's speed. Then
// the dispatch rounds' planning time (GET /v1/plan, every round kept) is summarised.
// LocalCluster is also the multi-process test's set-up (tests/…/ClusterProcessTests.fs).

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Trident.Api.Contracts;
using Trident.Scheduling;

using Trident.Api.Hosting;

namespace Trident.Api.Cli;

/// <summary>What a local cluster is made of.</summary>
/// <param name="Nodes">Worker processes.</param>
/// <param name="DevicesPerNode">Emulated devices per worker.</param>
/// <param name="Profile">The reference profile the devices emulate.</param>
/// <param name="TimeScale">The emulation's time scale.</param>
/// <param name="Membership"><c>redis</c> (redis-server started here) or <c>localhost</c>.</param>
/// <param name="ServeArguments">More arguments for the coordinator (configuration keys).</param>
/// <param name="InitialNodes">Workers started with the coordinator, which waits for their devices (default: all);
/// the others are started later with <see cref="LocalCluster.StartWorker"/> and join the running cluster.</param>
/// <param name="Tuning">The .NET runtime settings of the processes (default: <see cref="ProcessTuning.Lean"/>).</param>
public sealed record LocalClusterSpec(int Nodes, int DevicesPerNode, string Profile, double TimeScale, string Membership, IReadOnlyList<string> ServeArguments,
    int? InitialNodes = null, ProcessTuning Tuning = ProcessTuning.Lean)
{
    /// <summary>Workers started with the coordinator.</summary>
    public int StartNodes => Math.Clamp(InitialNodes ?? Nodes, 1, Nodes);
}

/// <summary>The .NET runtime settings of a local cluster's processes, which share one machine's cores (a real
/// deployment runs one worker per machine and keeps .NET's defaults).</summary>
public enum ProcessTuning
{
    /// <summary>.NET's defaults for an ASP.NET Core executable: server GC (a heap and a GC thread per core in every
    /// process), concurrent (background) GC, tiered PGO.</summary>
    Default,

    /// <summary>Workstation, non-concurrent GC and tiered PGO off (<c>DOTNET_gcServer=0</c>,
    /// <c>DOTNET_gcConcurrent=0</c>, <c>DOTNET_TieredPGO=0</c>): fewer runtime threads competing with the
    /// control plane's when many processes share a few cores.</summary>
    Lean,
}

/// <summary>A coordinator and its workers as child processes on loopback (and redis-server for Redis
/// membership). Every port is a free one; workers keep their ports across a restart, so a restarted worker
/// takes its devices back. Disposing kills every process it started.</summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly LocalClusterSpec _spec;
    private readonly TextWriter _log;
    private readonly string _logDirectory;
    private readonly List<Process> _all = [];
    private readonly Process?[] _workers;
    private readonly int[] _workerPorts;
    private readonly int _siloPort;
    private readonly int _redisPort;
    private readonly HashSet<int> _given = [];

    private LocalCluster(LocalClusterSpec spec, TextWriter log, string logDirectory)
    {
        _spec = spec;
        _log = log;
        _logDirectory = logDirectory;
        _workers = new Process?[spec.Nodes];
        _workerPorts = [.. Enumerable.Range(0, spec.Nodes).Select(_ => Port())];
        _siloPort = Port();
        _redisPort = Port();
        HttpPort = Port();
        Url = $"http://127.0.0.1:{HttpPort}";
    }

    /// <summary>The coordinator's HTTP port.</summary>
    public int HttpPort { get; }

    /// <summary>The coordinator's base address.</summary>
    public string Url { get; }

    /// <summary>Where each process writes its log (one file per process).</summary>
    public string LogDirectory => _logDirectory;

    /// <summary>Starts redis-server (Redis membership), the coordinator and the workers, and waits until the
    /// coordinator is ready (every device joined), at most <paramref name="timeout"/>.</summary>
    /// <exception cref="TimeoutException">naming the log directory, when it is not ready in time.</exception>
    public static async Task<LocalCluster> StartAsync(LocalClusterSpec spec, TextWriter log, TimeSpan timeout, CancellationToken ct)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"trident-cluster-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(dir);
        var cluster = new LocalCluster(spec, log, dir);
        try
        {
            await cluster.StartAllAsync(timeout, ct);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private string[] Common =>
    [
        "--cluster", _spec.Membership, "--emulate", _spec.Profile,
        "--time-scale", _spec.TimeScale.ToString(CultureInfo.InvariantCulture),
        .. _spec.Membership == "redis" ? new[] { "--redis", $"127.0.0.1:{_redisPort}" } : [],
    ];

    private async Task StartAllAsync(TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (_spec.Membership == "redis")
        {
            // started by this set-up, without persistence; killed on disposal
            var redis = Spawn("redis", "redis-server", ["--port", _redisPort.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
            using var probe = new TcpClient();
            var until = DateTime.UtcNow.AddSeconds(20);
            while (true)
            {
                try
                {
                    await probe.ConnectAsync(IPAddress.Loopback, _redisPort, ct);
                    break;
                }
                catch (SocketException) when (DateTime.UtcNow < until && !redis.HasExited)
                {
                    await Task.Delay(100, ct);
                }
            }
        }
        Spawn("coordinator", "dotnet", [Trident, "serve", .. Common, "--devices", (_spec.StartNodes * _spec.DevicesPerNode).ToString(CultureInfo.InvariantCulture),
            "--silo-port", _siloPort.ToString(CultureInfo.InvariantCulture), "--gateway-port", Port().ToString(CultureInfo.InvariantCulture),
            "--urls", Url, "--Trident:Storage:Directory", "memory", "--Trident:LogLevel", "Warning",
            "--Trident:Cluster:JoinTimeoutSeconds", ((int)timeout.TotalSeconds).ToString(CultureInfo.InvariantCulture), .. _spec.ServeArguments]);
        for (var i = 0; i < _spec.StartNodes; i++) StartWorker(i);
        using var http = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(5) };
        while (true)
        {
            try
            {
                using var ready = await http.GetAsync("/ready", ct);
                if (ready.StatusCode == HttpStatusCode.OK) break;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
            }
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"the cluster was not ready within {timeout.TotalSeconds:F0} s; logs in {_logDirectory}");
            await Task.Delay(250, ct);
        }
        _log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"cluster: coordinator {Url} + {_spec.StartNodes} worker(s) × {_spec.DevicesPerNode} emulated {_spec.Profile} device(s) (time × {_spec.TimeScale}), {_spec.Membership} membership; ready in {clock.Elapsed.TotalSeconds:F1} s"));
    }

    /// <summary>Starts worker <paramref name="index"/> (again, after <see cref="KillWorker"/>) on its ports; with
    /// <paramref name="profile"/> or <paramref name="devices"/>, emulating another profile or another number of
    /// devices than the spec's (a misconfigured or changed worker).</summary>
    public void StartWorker(int index, string? profile = null, int? devices = null)
    {
        var port = _workerPorts[index];
        var common = Common;
        if (profile is not null) common[Array.IndexOf(common, "--emulate") + 1] = profile;
        _workers[index] = Spawn($"worker{index}", "dotnet", [Trident, "worker", .. common, "--devices", (devices ?? _spec.DevicesPerNode).ToString(CultureInfo.InvariantCulture),
            "--silo-port", port.ToString(CultureInfo.InvariantCulture), "--gateway-port", Port().ToString(CultureInfo.InvariantCulture),
            "--primary", $"127.0.0.1:{_siloPort}", "--Trident:LogLevel", "Warning"]);
    }

    /// <summary>The node index the coordinator gives worker <paramref name="index"/> of those started with it:
    /// they are nodes in the ordinal order of their silo endpoints (ClusterServingBackend.LayoutAsync); workers
    /// that join later get the next node ids in the order they join.</summary>
    public int NodeOf(int index) =>
        _workerPorts.Take(_spec.StartNodes).Select(p => $"127.0.0.1:{p}").Order(StringComparer.Ordinal).ToList().IndexOf($"127.0.0.1:{_workerPorts[index]}");

    /// <summary>Kills worker <paramref name="index"/> at once (SIGKILL, as <c>kill -9</c>).</summary>
    public void KillWorker(int index)
    {
        if (_workers[index] is not { } p) return;
        p.Kill(entireProcessTree: true);
        p.WaitForExit(10_000);
        _workers[index] = null;
    }

    private static string Trident => typeof(Program).Assembly.Location;

    // A free loopback port that this cluster has not given out yet: the OS may hand a port that was free a moment
    // ago out again before its process binds it, and two workers on one silo port knock each other out of the
    // membership ("older clone"), so the cluster never gets ready.
    private int Port()
    {
        lock (_given)
        {
            while (true)
            {
                var port = Loopback.FreePort();
                if (_given.Add(port)) return port;
            }
        }
    }

    private Process Spawn(string name, string file, IReadOnlyList<string> arguments)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        if (_spec.Tuning == ProcessTuning.Lean && file == "dotnet")
        {
            info.Environment["DOTNET_gcServer"] = "0";
            info.Environment["DOTNET_gcConcurrent"] = "0";
            info.Environment["DOTNET_TieredPGO"] = "0";
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        var log = new StreamWriter(Path.Combine(_logDirectory, $"{name}-{process.Id}.log")) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.Exited += (_, _) => { lock (log) log.Flush(); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        lock (_all) _all.Add(process);
        return process;
    }


    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Process[] all;
        lock (_all) all = [.. _all];
        // the coordinator and workers first (SIGKILL: nothing of theirs is kept), redis-server last
        foreach (var p in all.Reverse())
        {
            try
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
            }
            catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
            {
                _log.WriteLine($"cluster: stopping process {p.Id}: {e.Message}");
            }
            p.Dispose();
        }
    }
}

/// <summary><c>trident bench cluster</c>.</summary>
public static class ClusterBench
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static readonly Option<int> Nodes = Opt.Int("--nodes", "worker processes (nodes)", 16, 1, 256);
    private static readonly Option<int> PerNode = Opt.Int("--devices-per-node", "emulated devices per node", 8, 1, 64);
    private static readonly Option<string> Emulate = Opt.Choice("--emulate", "the reference profile the devices emulate", "flux", [.. EmulatedNames]);
    private static readonly Option<double> Scale = Opt.Double("--time-scale", "real seconds per emulated second: each stage takes its predicted time × this (0.05 runs 20× faster than the reference, 0.5 twice as fast)", 0.05, 0.001, 1000);
    private static readonly Option<string> Workload_ = Opt.String("--workload", "the workload to replay [default: PROFILE-reference]", helpName: "NAME");
    private static readonly Option<int> Count = Opt.Int("--count", "requests at most", 10_000, 1, 10_000);
    private static readonly Option<string> Membership = Opt.Choice("--membership", "cluster membership", "redis", "redis", "localhost");
    private static readonly Option<double> Timeout = Opt.Double("--timeout", "seconds to wait for the cluster to start, and for the last requests", 120, 1, 3600);
    private static readonly Option<string> Out = Opt.String("--out", "also write one CSV row per request", helpName: "requests.csv");
    private static readonly Option<int> Warmup = Opt.Int("--warmup",
        "requests of the workload (seed 2: not the measured ones) played and waited for before the measured replay, so that the processes' first calls (JIT compilation, grain activation, connections between workers) are not measured; 0: none",
        32, 0, 10_000);
    private static readonly Option<string> Tuning = Opt.Choice("--process-tuning",
        "the processes' .NET runtime settings: lean (workstation non-concurrent GC, tiered PGO off) or default (.NET's: server GC)", "lean", "lean", "default");

    /// <summary>The <c>bench cluster</c> command.</summary>
    public static Command Command { get; } = new Command("cluster",
        "a coordinator and one worker process per node of emulated devices on loopback, the trace replayed through the HTTP API, measured vs simulated")
        { Nodes, PerNode, Emulate, Scale, Workload_, Count, Membership, Timeout, Out, Warmup, Tuning }.With((r, ct) => RunAsync(r, Console.Out, ct));

    /// <summary>Runs the benchmark (see the file's note).</summary>
    public static async Task<int> RunAsync(ParseResult args, TextWriter o, CancellationToken ct)
    {
        var nodes = args.GetValue(Nodes);
        var perNode = args.GetValue(PerNode);
        var profile = args.Text(Emulate);
        var scale = args.GetValue(Scale);
        var workload = args.GetValue(Workload_) ?? $"{profile}-reference";
        var count = args.GetValue(Count);
        var membership = args.Text(Membership);
        var timeout = args.GetValue(Timeout);
        var output = args.GetValue(Out);
        var tuning = args.Text(Tuning) == "default" ? ProcessTuning.Default : ProcessTuning.Lean;
        // checked before the cluster starts (loadgen, which writes it, checks it again)
        var unwritable = new CliErrors();
        OutputPath.Check("--out", output, directory: false, create: true, unwritable);
        unwritable.ThrowIfAny();
        var named = Workload.tryNamed(workload, profile);
        if (named.IsError)
        {
            Console.Error.WriteLine($"trident bench cluster: --workload: {named.ErrorValue}");
            return 2;
        }
        var spec = named.ResultValue;
        // the reference trace at the emulation's speed: arrivals × scale
        var rate = spec.Rate / scale;
        var requests = Math.Min(count, spec.Count);
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench cluster: {workload} ({requests} requests at {spec.Rate:G4} req/s, played at {rate:G4} req/s = time × {scale}) on {nodes} × {perNode} emulated {profile} devices, {tuning.ToString().ToLowerInvariant()} process tuning"));
        var clock = Stopwatch.StartNew();
        var loadBefore = LoadAverage();
        await using var cluster = await LocalCluster.StartAsync(
            new LocalClusterSpec(nodes, perNode, profile, scale, membership,
            [
                // the reference traces go up to 4096² and 50 GB activations: the limits of a real flux deployment, not the tiny pipeline's
                "--Trident:Limits:MaxWidth", "16384", "--Trident:Limits:MaxHeight", "16384", "--Trident:Limits:MaxFrames", "1024",
                "--Trident:Limits:MaxPredictedSeconds", "0", "--Trident:Limits:MaxActivationGb", "0",
                "--Trident:Serving:QueueCapacity", "100000", "--Trident:Jobs:Capacity", "200000", "--Trident:Jobs:RetentionSeconds", "3600",
                "--Trident:Serving:RoundHistory", "10000",
            ], Tuning: tuning),
            o, TimeSpan.FromSeconds(timeout), ct);
        using var http = new HttpClient { BaseAddress = new Uri(cluster.Url) };
        var warmup = Math.Min(args.GetValue(Warmup), spec.Count);
        if (warmup > 0)
        {
            var started = clock.Elapsed;
            var warm = await LoadgenCommand.RunAsync(Commands.Parse(LoadgenCommand.Command,
            [
                "--url", cluster.Url, "--workload", workload, "--rate", rate.ToString("R", CultureInfo.InvariantCulture), "--seed", "2",
                "--count", warmup.ToString(CultureInfo.InvariantCulture), "--duration", "3600", "--timeout", timeout.ToString(CultureInfo.InvariantCulture),
            ]), null, TextWriter.Null, ct);
            if (warm != 0) return warm;
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"warm-up: {warmup} requests of {workload} (seed 2) played and finished in {(clock.Elapsed - started).TotalSeconds:F1} s; not measured"));
        }
        var metricsBefore = await http.GetStringAsync("/metrics", ct);
        var loadgen = new List<string>
        {
            "--url", cluster.Url, "--workload", workload, "--rate", rate.ToString("R", CultureInfo.InvariantCulture),
            "--count", requests.ToString(CultureInfo.InvariantCulture), "--duration", "3600", "--timeout", timeout.ToString(CultureInfo.InvariantCulture), "--compare-sim",
        };
        if (output is not null) loadgen.AddRange(["--out", output]);
        var code = await LoadgenCommand.RunAsync(Commands.Parse(LoadgenCommand.Command, loadgen), null, o, ct);
        var plan = await http.GetFromJsonAsync<PlanDto>("/v1/plan", Json, ct);
        if (plan is not null && plan.RecentRounds.Count > 0)
        {
            var ms = plan.RecentRounds.Select(r => r.PlanMs).Order().ToArray();
            double P(double q) => ms[Math.Clamp((int)Math.Ceiling(q * ms.Length) - 1, 0, ms.Length - 1)];
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"dispatch rounds: {plan.Rounds}; planning time of the last {ms.Length} that dispatched or solved: p50_ms={P(0.5):F1} p99_ms={P(0.99):F1} max_ms={ms[^1]:F1} mip={plan.RecentRounds.Count(r => r.Source == "mip")}"));
        }
        var metrics = await http.GetStringAsync("/metrics", ct);
        var transfersBefore = LoadgenCommand.MetricSeries(metricsBefore, "trident_cluster_transfer_bytes_total");
        foreach (var (series, bytes) in LoadgenCommand.MetricSeries(metrics, "trident_cluster_transfer_bytes_total"))
            o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"network: {series} {bytes - transfersBefore.GetValueOrDefault(series):F0}"));
        foreach (var line in StageCallLines(metrics, metricsBefore)) o.WriteLine(line);
        o.WriteLine($"machine: {Environment.ProcessorCount} core(s); load average at the start {loadBefore}, at the end {LoadAverage()}");
        o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"bench cluster: {clock.Elapsed.TotalSeconds:F0} s wall; process logs in {cluster.LogDirectory}"));
        return code;
    }

    /// <summary>Where the remote stage calls' time went, per stage, from the coordinator's
    /// <c>trident_cluster_stage_seconds_total{stage, part}</c> and <c>trident_cluster_stage_calls_total{stage}</c>
    /// (ClusterCallTimes): the mean call as the coordinator waited for it, the mean time on the worker by its own
    /// clock (of that: the task's predicted time, the input's fetch, and the rest, the worker's lateness), and
    /// call − worker, the messaging (both silos' schedulers, serialization, loopback). One line per stage that
    /// has calls. With <paramref name="before"/> (the metrics at the measured run's start), the calls since.</summary>
    public static IEnumerable<string> StageCallLines(string metrics, string? before = null)
    {
        var seconds = new Dictionary<(string Stage, string Part), double>();
        var calls = new Dictionary<string, double>();
        var at = before is null ? [] : LoadgenCommand.MetricSeries(before, "trident_cluster_stage_");
        foreach (var (series, total) in LoadgenCommand.MetricSeries(metrics, "trident_cluster_stage_"))
        {
            var value = total - at.GetValueOrDefault(series);
            var m = System.Text.RegularExpressions.Regex.Match(series, @"^(trident_cluster_stage_(?:seconds|calls)_total)\{([^}]*)\}$");
            if (!m.Success) continue;
            var labels = System.Text.RegularExpressions.Regex.Matches(m.Groups[2].Value, @"(\w+)=""([^""]*)""").ToDictionary(l => l.Groups[1].Value, l => l.Groups[2].Value);
            if (!labels.TryGetValue("stage", out var stage)) continue;
            if (m.Groups[1].Value == "trident_cluster_stage_calls_total") calls[stage] = value;
            else if (labels.TryGetValue("part", out var part)) seconds[(stage, part)] = value;
        }
        foreach (var stage in new[] { "encode", "diffuse", "decode" })
        {
            if (!calls.TryGetValue(stage, out var n) || n <= 0) continue;
            double Mean(string part) => seconds.GetValueOrDefault((stage, part)) / n * 1000;
            yield return string.Create(CultureInfo.InvariantCulture,
                $"stage calls: {stage} calls={n:F0} mean_call_ms={Mean("call"):F1} mean_worker_ms={Mean("worker"):F1} (predicted {Mean("predicted"):F1}, fetch {Mean("fetch"):F1}, "
                + $"late {Mean("worker") - Mean("fetch") - Mean("predicted"):F1}) mean_messaging_ms={Mean("call") - Mean("worker"):F1}");
        }
    }

    /// <summary>The machine's load average over 1, 5 and 15 minutes (/proc/loadavg), or "unknown" where the
    /// system has none: the benchmark's timings mean little on a loaded machine, so it prints it with them.</summary>
    public static string LoadAverage()
    {
        try
        {
            var fields = File.ReadAllText("/proc/loadavg").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length >= 3 ? $"{fields[0]} / {fields[1]} / {fields[2]} (1 / 5 / 15 min)" : "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
        catch (UnauthorizedAccessException)
        {
            return "unknown";
        }
    }

    private static IReadOnlyList<string> EmulatedNames => Trident.Runtime.Devices.EmulatedProfile.Names;
}
