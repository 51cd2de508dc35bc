using System.CommandLine;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Logging;
using Orleans;
using Orleans.Hosting;
using Serilog.Core;
using Serilog.Events;
using Orleans.Runtime;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Clustering;
using Trident.Runtime.Devices;
using Trident.Scheduling;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident worker</c>: one machine's devices in a Trident cluster (docs/cluster.md). An Orleans silo that
/// joins the coordinator's cluster (Trident:Cluster:Mode localhost — the default here, with the coordinator's
/// silo at Trident:Cluster:Primary — or redis) and hosts one grain per device, pinned to this silo; the
/// coordinator discovers the devices and runs stage tasks on them. Workers serve emulated devices
/// (<c>--emulate flux --devices 8 --time-scale 0.05</c>). Its silo and gateway ports are free ports unless
/// configured; <c>GET /health</c> on <c>--urls</c> (default a free loopback port) lists its devices.
/// </summary>
public static class WorkerCommand
{
    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("worker",
            "join a coordinator's cluster with this machine's emulated devices (docs/cluster.md), e.g. worker --emulate flux --devices 8 "
            + "--primary 127.0.0.1:11111; configuration keys as for serve (--Section:Key VALUE)");
        foreach (var o in ShortServeOptions.All) c.Add(o);
        return c.With(Run);
    }

    private static async Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var raw = ShortServeOptions.Expand(args).ToList();
        if (!raw.Any(a => a.StartsWith("--urls", StringComparison.Ordinal))) raw.AddRange(["--urls", "http://127.0.0.1:0"]);
        WebApplicationBuilder builder;
        try
        {
            builder = TridentHosting.CreateBuilder([.. raw]);
            builder.AddTridentConfiguration([.. raw]);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException or FormatException)
        {
            // --config names a file that does not exist or does not load (or the content root's appsettings.json does
            // not): a configuration error, as serve says it
            Console.Error.WriteLine("trident worker: invalid configuration (docs/serving.md lists every key):");
            Console.Error.WriteLine($"  {e.Message}");
            return 2;
        }
        var bound = new TridentOptions();
        StrictBinding.Bind(builder.Configuration.GetSection(TridentOptions.Section), bound);
        var cluster = bound.Cluster;
        if (ModeProblem(builder.Configuration["Trident:Cluster:Mode"]) is { } modeProblem)
        {
            Console.Error.WriteLine($"trident worker: {modeProblem}");
            return 2;
        }
        if (cluster.Mode == ClusterOptions.ModeNone) cluster.Mode = ClusterOptions.ModeLocalhost;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var exit = new WorkerExit(stop);
        var join = new JoinWatch(cluster, exit);
        builder.AddTridentLogging(join);
        builder.Services.AddTridentOptions();
        // the coordinator's ports are the defaults: a worker takes free ports unless told
        if (builder.Configuration["Trident:Cluster:SiloPort"] is null) cluster.SiloPort = 0;
        if (builder.Configuration["Trident:Cluster:GatewayPort"] is null) cluster.GatewayPort = 0;
        builder.Logging.QuietOrleans();
        builder.Services.AddSingleton(sp => Devices(sp.GetRequiredService<IOptions<TridentOptions>>().Value));
        builder.Host.UseOrleans(silo =>
        {
            ClusterSilo.Configure(silo, cluster, coordinator: false);
            // Orleans' fatal errors (the membership lost: a localhost coordinator restarted) end the worker with one
            // line and a distinct exit code, not Environment.FailFast's dump
            silo.Services.AddSingleton<IFatalErrorHandler>(sp => new WorkerFatalErrors(cluster, exit, sp.GetRequiredService<ILoggerFactory>().CreateLogger("Trident.Worker")));
        });
        var app = builder.Build();
        app.MapGet("/health", async (WorkerDevices devices, ILocalSiloDetails silo, IMembershipTable table, CancellationToken aborted) =>
        {
            var (state, detail) = await CoordinatorAsync(table, cluster, aborted);
            return new
            {
                // refused: the coordinator does not use this worker's devices (another profile than the cluster's)
                status = devices.Refusal is null ? "live" : "refused",
                reason = devices.Refusal,
                // whether the coordinator's silo is active in the membership: the worker keeps running either way
                coordinator = state,
                coordinator_detail = detail,
                silo = silo.SiloAddress.ToString(),
                model = devices.Model,
                profile = devices.ProfileSource,
                devices = devices.Layout.Devices.Count,
            };
        });
        // any other route: a problem+json 404 that says this is a worker (the coordinator serves the API), not an empty 404
        app.MapFallback(WorkerNotFound);
        try
        {
            var options = app.Services.GetRequiredService<IOptions<TridentOptions>>().Value;
            if (options.Devices.Kind != EmulationOptions.Kind)
            {
                Console.Error.WriteLine($"trident worker: Trident:Devices:Kind must be '{EmulationOptions.Kind}' (--emulate PROFILE): workers serve emulated devices only (got '{options.Devices.Kind}')");
                return 2;
            }
            _ = app.Services.GetRequiredService<WorkerDevices>();
            var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
            var waiting = join.WatchAsync(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Trident.Worker"), lifetime.ApplicationStarted, stop.Token, app.Services);
            await app.RunAsync(stop.Token);
            if (exit.Line is { } line)
            {
                Console.Error.WriteLine(line);
                return exit.Code;
            }
            return 0;
        }
        catch (Exception) when (exit.Line is { } line)
        {
            // the worker ended itself (a cluster-id mismatch while joining, the membership lost): its own line
            Console.Error.WriteLine(line);
            return exit.Code;
        }
        catch (OptionsValidationException e)
        {
            Console.Error.WriteLine("trident worker: invalid configuration (docs/serving.md lists every key):");
            foreach (var failure in e.Failures) Console.Error.WriteLine($"  {failure}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            // stopped (SIGTERM, Ctrl+C) while the silo was still joining: Orleans cancels its start, and the host
            // rethrows that; one line and exit 1 (it never served), not an unhandled exception with a stack trace
            var membership = cluster.Mode == ClusterOptions.ModeRedis ? $"membership in Redis at {cluster.Redis}" : $"the coordinator's silo at {cluster.Primary}";
            Console.Error.WriteLine($"trident worker: stopped before it joined the cluster ({membership}; docs/cluster.md)");
            return 1;
        }
        catch (Exception e)
        {
            // the silo could not start (a port it cannot bind, …): the reason and exit 1, not an abort
            Console.Error.WriteLine($"trident worker: the worker could not start: {ClusterSilo.StartFailure(e, cluster)}");
            return 1;
        }
    }

    /// <summary>Why <paramref name="mode"/> (Trident:Cluster:Mode as configured, null when not) is no cluster mode for a
    /// worker, or null: a worker joins a coordinator's cluster, so it takes localhost (the default) or redis — <c>none</c>
    /// (one process, serve's default) would be a worker in no cluster; any other value is left to the options'
    /// validation, which names it as serve does.</summary>
    public static string? ModeProblem(string? mode) =>
        string.Equals(mode?.Trim(), ClusterOptions.ModeNone, StringComparison.OrdinalIgnoreCase)
            ? $"--cluster (Trident:Cluster:Mode) must be {ClusterOptions.ModeLocalhost} (the default for a worker) or {ClusterOptions.ModeRedis}: "
                + $"a worker joins a coordinator's cluster, and '{mode}' is one process with no cluster (serve's default) (docs/cluster.md)"
            : null;

    /// <summary>The coordinator as a worker's <c>/health</c> reports it (<see cref="CoordinatorState"/>), from the cluster's
    /// membership table read now (at most 3 s): in localhost mode the table lives in the coordinator's silo, so a table
    /// that cannot be read is a coordinator that cannot be reached; in redis mode the table is in Redis and the
    /// coordinator's entry says whether it is active (the silos declare a silo that stops answering dead within
    /// seconds). Not checked on Kubernetes, where Orleans names each silo after its pod.</summary>
    public static async Task<(string State, string? Detail)> CoordinatorAsync(IMembershipTable table, ClusterOptions cluster, CancellationToken ct)
    {
        if (cluster.Kubernetes) return ("not checked", "on Kubernetes Orleans names each silo after its pod: the coordinator's silo is not told apart");
        var where = cluster.Mode == ClusterOptions.ModeRedis ? $"membership in Redis at {cluster.Redis}" : $"membership held by the coordinator's silo at {cluster.Primary}";
        MembershipTableData data;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(3));
            data = await table.ReadAllAsync(timeout.Token).WaitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return ("unreachable", $"the cluster's membership ({where}) did not answer within 3 s");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return ("unreachable", $"the cluster's membership ({where}) could not be read: {e.GetType().Name}: {ClusterSilo.FirstLine(e.Message)}");
        }
        return CoordinatorState([.. data.Members.Select(m => (m.Item1.SiloName, m.Item1.Status))], where);
    }

    /// <summary>The coordinator's state from the membership's entries (silo name, status) read from <paramref name="where"/>:
    /// <c>active</c> when a silo named <see cref="ClusterSilo.CoordinatorSiloName"/> is active, <c>joining</c> when one
    /// is joining, else <c>unreachable</c> with why (its last entry's status, or none in the membership).</summary>
    public static (string State, string? Detail) CoordinatorState(IReadOnlyList<(string? Name, SiloStatus Status)> members, string where)
    {
        var coordinators = members.Where(m => m.Name == ClusterSilo.CoordinatorSiloName).Select(m => m.Status).ToList();
        if (coordinators.Contains(SiloStatus.Active)) return ("active", null);
        if (coordinators.Any(s => s is SiloStatus.Created or SiloStatus.Joining)) return ("joining", null);
        return ("unreachable", coordinators.Count == 0
            ? $"no coordinator's silo in the cluster's membership ({where})"
            : $"the coordinator's silo is {coordinators[^1].ToString().ToLowerInvariant()} in the cluster's membership ({where})");
    }

    /// <summary>The answer of a worker's HTTP port to any route but <c>GET /health</c>: 404, application/problem+json,
    /// saying that this is a worker and that the coordinator (<c>trident serve</c> with Trident:Cluster:Mode) serves
    /// the API (/ready, /metrics, /v1/…).</summary>
    public static IResult WorkerNotFound(HttpContext http) => Results.Problem(
        statusCode: StatusCodes.Status404NotFound,
        title: Trident.Api.Endpoints.Problems.TitleOf(StatusCodes.Status404NotFound),
        detail: $"{http.Request.Method} {http.Request.Path} is not served here: this is a trident worker, whose HTTP port serves GET /health only; "
            + "the coordinator (trident serve with Trident:Cluster:Mode) serves the API (/ready, /metrics, /v1/…) (docs/cluster.md)");

    /// <summary>The worker's last line and exit code for an Orleans fatal error: the membership lost — "The development
    /// membership table version decreased from 7 to 2. The cluster's membership state has been lost and this silo must
    /// terminate": the localhost coordinator, which holds the table, restarted — exit 3; this silo declared dead ("I have
    /// been told I am dead …": it did not answer the others' probes in time, in either mode) exit 3 too, saying so (it
    /// said "the coordinator restarted" in localhost mode: a worker paused for a minute, its coordinator up all along);
    /// any other fatal error exit 1.</summary>
    public static (string Line, int Code) FatalErrorLine(ClusterOptions cluster, object? sender, string? context, Exception? exception)
    {
        var said = $"{sender?.GetType().Name} {context} {exception?.Message}";
        if (cluster.Mode == ClusterOptions.ModeLocalhost && said.Contains("membership state has been lost", StringComparison.OrdinalIgnoreCase))
            return ("trident worker: the coordinator restarted; localhost membership does not survive it: restart this worker, or use --cluster redis (docs/cluster.md)",
                WorkerExit.MembershipLost);
        if (said.Contains("Membership", StringComparison.OrdinalIgnoreCase) || said.Contains("dead", StringComparison.OrdinalIgnoreCase))
        {
            // Orleans appends the whole membership view ("… Membership: [Version: 5, …]"): the reason is what comes before
            var reason = context is not null && context.IndexOf(" Membership: [", StringComparison.Ordinal) is var at and > 0 ? context[..at].TrimEnd('.') : context;
            return ($"trident worker: the cluster declared this worker dead ({reason}); it did not answer the others' probes in time (paused, overloaded or cut off?): restart it (docs/cluster.md)",
                WorkerExit.MembershipLost);
        }
        return ($"trident worker: the silo stopped on a fatal error: {context} {exception?.GetType().Name}: {exception?.Message}".TrimEnd(' ', ':'), 1);
    }

    /// <summary>Whether the membership entries of one cluster id (the values of its Redis hash: Orleans.Clustering.Redis
    /// stores each silo's MembershipEntry as JSON, "SiloName" and "Status" a number, <see cref="SiloStatus"/>) hold an
    /// active coordinator; an entry that does not read so counts as none.</summary>
    public static bool HoldsCoordinator(IEnumerable<string> entries) => entries.Any(entry =>
    {
        try
        {
            using var json = System.Text.Json.JsonDocument.Parse(entry);
            var root = json.RootElement;
            return root.ValueKind == System.Text.Json.JsonValueKind.Object
                && root.TryGetProperty("SiloName", out var name) && name.ValueKind == System.Text.Json.JsonValueKind.String && name.GetString() == ClusterSilo.CoordinatorSiloName
                && root.TryGetProperty("Status", out var status) && status.ValueKind == System.Text.Json.JsonValueKind.Number && status.GetInt32() == (int)SiloStatus.Active;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or InvalidOperationException)
        {
            return false;
        }
    });

    /// <summary>The line and exit code of a redis-mode worker whose membership had no coordinator
    /// Trident:Cluster:CoordinatorWaitSeconds after its start, <paramref name="silos"/> silos in it (this worker
    /// included): exit 2 when other cluster ids are in that Redis (this worker's is not the coordinator's), else 1 (no
    /// coordinator came, as a localhost-mode worker that could not join).</summary>
    public static (string Line, int Code) AloneLine(ClusterOptions cluster, int silos, RedisClusterIds others)
    {
        var head = $"trident worker: no coordinator in the cluster '{cluster.ClusterId}' (membership in Redis at {cluster.Redis}) "
            + $"{cluster.CoordinatorWaitSeconds} s after the worker's start (Trident:Cluster:CoordinatorWaitSeconds; "
            + (silos <= 1 ? "this worker was alone in it" : $"{silos - 1} other worker(s) in it") + ")";
        if (others.Ids.Count > 0)
            return ($"{head}; that Redis holds the membership of other cluster id(s): {others}: "
                + "give the worker the coordinator's Trident:Cluster:ClusterId (docs/cluster.md)", WorkerExit.Misconfigured);
        return ($"{head}; {(others.Error is { } error ? $"the other cluster ids in that Redis could not be listed ({error})" : "no other cluster id is in that Redis")}: "
            + "start the coordinator with the same --redis and Trident:Cluster:ClusterId (docs/cluster.md)", 1);
    }

    /// <summary>This worker's devices: Devices:Count emulated devices (0: 8) in one node, over the scaled
    /// reference profile the coordinator serves.</summary>
    public static WorkerDevices Devices(TridentOptions options)
    {
        var e = options.Emulation;
        var profile = EmulatedProfile.Scaled(EmulatedProfile.Reference(e.Profile), e.TimeScale);
        var count = options.Devices.Count == 0 ? EmulationOptions.ReferenceNodeSize : options.Devices.Count;
        var memory = options.Devices.MemoryGb > 0 ? options.Devices.MemoryGb : (double)profile.DeviceMemory;
        var layout = DeviceLayout.Emulated(count, count, memory);
        var cost = CostModelModule.create(ServerHost.CostSettings(options), profile);
        var factory = new EmulatedStageExecutorFactory(cost, layout.ToCluster().Bandwidths.HostToDevice, e.TimeScale);
        return new WorkerDevices(layout, factory, profile.Model.Value, ClusterServingBackend.ProfileSource(options));
    }
}

/// <summary>How a worker ends itself: the line it prints last (standard error) and its exit code; set once.</summary>
internal sealed class WorkerExit(CancellationTokenSource stop)
{
    /// <summary>The cluster's membership was lost or this worker was declared dead: restart it.</summary>
    public const int MembershipLost = 3;

    /// <summary>A configuration the cluster refuses (another cluster id).</summary>
    public const int Misconfigured = 2;

    private int _set;

    /// <summary>The line, once set.</summary>
    public string? Line { get; private set; }

    /// <summary>The exit code, once set.</summary>
    public int Code { get; private set; }

    /// <summary>Ends the worker: stops its host and, should that not finish within 10 s (a silo whose membership is
    /// gone may not stop cleanly), the process.</summary>
    public void End(string line, int code)
    {
        if (Interlocked.Exchange(ref _set, 1) == 1) return;
        Code = code;
        Line = line;
        _ = Task.Run(async () =>
        {
            try { await stop.CancelAsync(); }
            catch (ObjectDisposedException) { }
            await Task.Delay(TimeSpan.FromSeconds(10));
            Console.Error.WriteLine(line);
            Environment.Exit(code);
        });
    }
}

/// <summary>Orleans' fatal errors on a worker's silo, which Orleans' own handler ends with Environment.FailFast (a
/// stack-trace dump, exit 134): one line and an exit code instead (<see cref="WorkerCommand.FatalErrorLine"/>; the details
/// in the log).</summary>
internal sealed class WorkerFatalErrors(ClusterOptions cluster, WorkerExit exit, ILogger log) : IFatalErrorHandler
{
    /// <inheritdoc />
    public bool IsUnexpected(Exception exception) => true;

    /// <inheritdoc />
    public void OnFatalException(object? sender = null, string? context = null, Exception? exception = null)
    {
        log.LogError(exception, "Orleans stopped this worker's silo: {Context}", context);
        var (line, code) = WorkerCommand.FatalErrorLine(cluster, sender, context, exception);
        exit.End(line, code);
    }
}

/// <summary>A worker waiting to join its cluster: says so at Trident level every 10 s (what it waits for, where, for how
/// long so far, and the last Orleans warning, e.g. "Connection terminated prematurely" when --primary names an HTTP
/// port), and ends the worker with exit 2 when the cluster it reaches has another cluster id (Orleans' "Unexpected
/// cluster id" warning, which it would otherwise repeat forever). Sees Orleans' warnings as a log sink.</summary>
internal sealed class JoinWatch(ClusterOptions cluster, WorkerExit exit) : ILogEventSink
{
    private volatile string? _lastWarning;
    private volatile bool _joined;

    /// <summary>How often the waiting line is logged.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(10);

    private string Where => cluster.Mode == ClusterOptions.ModeRedis
        ? $"membership in Redis at {cluster.Redis}"
        : $"the coordinator's silo at {cluster.Primary} (--primary: its silo port, not its HTTP port)";

    /// <inheritdoc />
    public void Emit(LogEvent e)
    {
        if (_joined || e.Level < LogEventLevel.Warning || !(e.Properties.TryGetValue("SourceContext", out var source) && source.ToString().StartsWith("\"Orleans", StringComparison.Ordinal)))
            return;
        var message = e.RenderMessage(System.Globalization.CultureInfo.InvariantCulture);
        var text = e.Exception is { } x ? $"{message} {x.Message}" : message;
        if (text.IndexOf("Unexpected cluster id", StringComparison.Ordinal) is var at and >= 0)
        {
            var said = text[at..];
            var end = said.IndexOfAny(['\n', '\r']);
            exit.End($"trident worker: the cluster at {(cluster.Mode == ClusterOptions.ModeRedis ? cluster.Redis : cluster.Primary)} has another cluster id than this worker's '{cluster.ClusterId}' (Orleans: {(end > 0 ? said[..end] : said).TrimEnd('.')}): "
                + "give the worker the coordinator's Trident:Cluster:ClusterId", WorkerExit.Misconfigured);
            return;
        }
        var first = text.IndexOfAny(['\n', '\r']) is var n and > 0 ? text[..n] : text;
        _lastWarning = first.Length > 240 ? first[..240] + "…" : first;
    }

    /// <summary>Logs the waiting line every <see cref="Period"/> until <paramref name="started"/> (the silo joined: the
    /// host started) or <paramref name="stop"/>; then, in redis mode, waits for the coordinator in the membership
    /// (<see cref="AwaitCoordinatorAsync"/>, with the silo's services from <paramref name="services"/>).</summary>
    public async Task WatchAsync(ILogger log, CancellationToken started, CancellationToken stop, IServiceProvider services)
    {
        var since = DateTime.UtcNow;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(started, stop);
        try
        {
            while (true)
            {
                await Task.Delay(Period, linked.Token);
                var last = _lastWarning;
                log.LogWarning("Waiting to join the cluster {ClusterId:l}: {Where:l}, for {Seconds:F0} s so far{Last:l}", cluster.ClusterId, Where,
                    (DateTime.UtcNow - since).TotalSeconds, last is null ? "" : $"; Orleans' last warning: {last}");
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _joined = started.IsCancellationRequested;
            if (_joined) log.LogInformation("Joined the cluster {ClusterId:l} after {Seconds:F0} s", cluster.ClusterId, (DateTime.UtcNow - since).TotalSeconds);
        }
        // Redis membership is per cluster id: a worker with another id than the coordinator's joins a membership of its
        // own, alone, with nobody to tell it (localhost mode: the coordinator refuses it, "Unexpected cluster id").
        // On Kubernetes the coordinator's silo is named after its pod (ClusterSilo.CoordinatorSiloName): not checked.
        if (_joined && cluster.Mode == ClusterOptions.ModeRedis && !cluster.Kubernetes && !stop.IsCancellationRequested)
            await AwaitCoordinatorAsync(log, services.GetRequiredService<IClusterMembershipService>(),
                services.GetRequiredService<ILocalSiloDetails>().SiloAddress, since, stop);
    }

    /// <summary>Whether <paramref name="snapshot"/> holds a coordinator's silo (named <see cref="ClusterSilo.CoordinatorSiloName"/>)
    /// other than <paramref name="self"/> that is joining or active.</summary>
    public static bool HasCoordinator(ClusterMembershipSnapshot snapshot, SiloAddress self) =>
        snapshot.Members.Values.Any(m => m.Name == ClusterSilo.CoordinatorSiloName && !m.SiloAddress.Equals(self)
            && m.Status is SiloStatus.Joining or SiloStatus.Active);

    /// <summary>redis mode, once joined: until the coordinator's silo is in the membership, logs every <see cref="Period"/>
    /// (a quarter of the wait when that is shorter) that this worker waits for it, naming the other cluster ids in that
    /// Redis, and ends the worker (<see cref="WorkerCommand.AloneLine"/>) when it has not come
    /// Trident:Cluster:CoordinatorWaitSeconds after the worker's start (<paramref name="since"/>).</summary>
    private async Task AwaitCoordinatorAsync(ILogger log, IClusterMembershipService membership, SiloAddress self, DateTime since, CancellationToken stop)
    {
        var wait = TimeSpan.FromSeconds(cluster.CoordinatorWaitSeconds);
        var period = wait / 4 < Period ? wait / 4 : Period;
        var warned = false;
        try
        {
            while (true)
            {
                if (HasCoordinator(membership.CurrentSnapshot, self))
                {
                    if (warned) log.LogInformation("The coordinator is in the cluster {ClusterId:l} after {Seconds:F0} s", cluster.ClusterId, (DateTime.UtcNow - since).TotalSeconds);
                    return;
                }
                var waited = DateTime.UtcNow - since;
                if (waited >= wait)
                {
                    var (line, code) = WorkerCommand.AloneLine(cluster, membership.CurrentSnapshot.Members.Count(m => m.Value.Status is SiloStatus.Joining or SiloStatus.Active),
                        await OtherClusterIdsAsync(stop));
                    exit.End(line, code);
                    return;
                }
                if (waited >= period && !warned)
                {
                    // the other ids once (a connection and a SCAN), and again at the end
                    var others = await OtherClusterIdsAsync(stop);
                    log.LogWarning("No coordinator in the cluster {ClusterId:l} (membership in Redis at {Redis:l}) for {Seconds:F0} s; this worker exits when none has come "
                        + "{Wait} s after its start (Trident:Cluster:CoordinatorWaitSeconds){Others:l}", cluster.ClusterId, cluster.Redis, waited.TotalSeconds,
                        cluster.CoordinatorWaitSeconds, others.Error is { } error ? $"; the other cluster ids in that Redis could not be listed: {error}"
                            : others.Ids.Count == 0 ? "; no other cluster id is in that Redis" : $"; other cluster ids in that Redis: {others}");
                    warned = true;
                }
                else if (warned)
                    log.LogWarning("No coordinator in the cluster {ClusterId:l} (membership in Redis at {Redis:l}) for {Seconds:F0} s of at most {Wait} s (Trident:Cluster:CoordinatorWaitSeconds)",
                        cluster.ClusterId, cluster.Redis, waited.TotalSeconds, cluster.CoordinatorWaitSeconds);
                var left = wait - waited;
                await Task.Delay(left < period ? left : period, stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>The other cluster ids whose membership is in this worker's Redis: Orleans.Clustering.Redis keeps a cluster's
    /// table in the hash <c>{ServiceId}/members/{ClusterId}</c> (RedisClusteringOptions.DefaultCreateRedisKey; Trident's
    /// ServiceId is its ClusterId), so a SCAN for <c>*/members/*</c> lists them (at most 20; 5 s at most).</summary>
    private async Task<RedisClusterIds> OtherClusterIdsAsync(CancellationToken stop)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            var options = StackExchange.Redis.ConfigurationOptions.Parse(cluster.Redis);
            // bounded by the client's own timeouts (a connection given up on is disposed, not left behind)
            options.ConnectTimeout = 5000;
            options.AsyncTimeout = 5000;
            options.AbortOnConnectFail = true;
            await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(options);
            var ids = new SortedDictionary<string, bool>(StringComparer.Ordinal);
            foreach (var server in redis.GetServers().Where(s => s.IsConnected))
                await foreach (var key in server.KeysAsync(pattern: "*/members/*", pageSize: 100).WithCancellation(timeout.Token))
                {
                    var name = key.ToString();
                    var id = name[(name.IndexOf("/members/", StringComparison.Ordinal) + "/members/".Length)..];
                    if (id == cluster.ClusterId || ids.ContainsKey(id)) continue;
                    var entries = await redis.GetDatabase().HashValuesAsync(key);
                    ids[id] = WorkerCommand.HoldsCoordinator(entries.Where(v => v.HasValue).Select(v => v.ToString()));
                    if (ids.Count >= 20) break;
                }
            return new RedisClusterIds([.. ids.Select(i => (i.Key, i.Value))], null);
        }
        catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
        {
            return new RedisClusterIds([], $"{e.GetType().Name}: {ClusterSilo.FirstLine(e.Message)}");
        }
    }
}

/// <summary>The cluster ids in a Redis other than a worker's own, each with whether its membership holds an active
/// coordinator, or why they could not be listed.</summary>
public sealed record RedisClusterIds(IReadOnlyList<(string Id, bool Coordinator)> Ids, string? Error)
{
    /// <summary>The ids quoted, "(its coordinator is active)" after those whose membership holds one.</summary>
    public override string ToString() => string.Join(", ", Ids.Select(i => i.Coordinator ? $"'{i.Id}' (its coordinator is active)" : $"'{i.Id}'"));
}
