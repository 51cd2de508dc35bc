// One Trident across machines: the Orleans silo of the coordinator (`trident serve` with Trident:Cluster:Mode
// localhost or redis) and of each worker (`trident worker`), and the coordinator's serving backend, which
// waits for the workers' devices and runs every stage task as a call on the device's grain
// (Runtime/Cluster). Membership and failure detection are Orleans': the localhost clustering keeps the
// membership table on the primary silo — the coordinator — for one machine; Redis clustering for real
// deployments (every silo reads and writes the table in Redis, so no Trident process is a single point of
// membership). Every silo registers the device placement (a device grain lives on its worker's silo only).

using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Orleans;
using Orleans.Hosting;
using Orleans.Runtime;
using Trident.Api.Options;
using Trident.Runtime.Clustering;
using Trident.Runtime.Devices;
using Trident.Runtime.Serving;
using Trident.Runtime.Pipelines.Tokenizers;
using Trident.Scheduling;

namespace Trident.Api.Hosting;

/// <summary>Silo configuration shared by the coordinator and the workers.</summary>
public static class ClusterSilo
{
    /// <summary>The longest a stage task's grain call may take.</summary>
    public static readonly TimeSpan StageCallTimeout = TimeSpan.FromHours(1);

    /// <summary>The coordinator's silo name (Orleans' SiloOptions.SiloName, in every membership entry): how a worker in
    /// redis mode tells that its membership holds a coordinator. Not on Kubernetes, where Orleans names each silo
    /// after its pod (and matches pods to silos by that name).</summary>
    public const string CoordinatorSiloName = "trident-coordinator";

    /// <summary>Configures <paramref name="silo"/> for <paramref name="c"/>: clustering, endpoints, the device
    /// placement. <paramref name="coordinator"/>: in localhost mode the coordinator is the primary silo.</summary>
    public static ISiloBuilder Configure(ISiloBuilder silo, ClusterOptions c, bool coordinator)
    {
        var siloPort = c.SiloPort == 0 ? Loopback.FreePort() : c.SiloPort;
        var gatewayPort = c.GatewayPort == 0 ? Loopback.FreePort() : c.GatewayPort;
        if (c.Mode == ClusterOptions.ModeLocalhost)
        {
            // a Primary that is not IP:port (a host name) is left out here: the options' validation names it (exit 2) before
            // the silo starts (IPEndPoint.Parse threw out of the host's build: a stack trace, exit 134)
            silo.UseLocalhostClustering(siloPort, gatewayPort, coordinator || !IPEndPoint.TryParse(c.Primary, out var primary) ? null : primary,
                c.ClusterId, c.ClusterId);
        }
        else
        {
            silo.UseRedisClustering(c.Redis);
            silo.Configure<Orleans.Configuration.ClusterOptions>(o =>
            {
                o.ClusterId = c.ClusterId;
                o.ServiceId = c.ClusterId;
            });
            if (c.Kubernetes)
            {
                // the pod's IP and the cluster's pods come from Kubernetes (not tested here: no Kubernetes cluster)
                silo.Configure<Orleans.Configuration.EndpointOptions>(o =>
                {
                    o.SiloPort = siloPort;
                    o.GatewayPort = gatewayPort;
                });
                silo.UseKubernetesHosting();
            }
            else
                silo.ConfigureEndpoints(IPAddress.Parse(c.AdvertisedAddress), siloPort, gatewayPort, listenOnAnyHostAddress: !IPAddress.IsLoopback(IPAddress.Parse(c.AdvertisedAddress)));
        }
        if (coordinator && !c.Kubernetes)
            silo.Configure<Orleans.Configuration.SiloOptions>(o => o.SiloName = CoordinatorSiloName);
        silo.AddPlacementDirector<DevicePlacementStrategy, DevicePlacementDirector>();
        // a stage task is one grain call and may run for many minutes (a long video's diffuse); Orleans' default
        // 30 s response timeout would fail it. A dead worker still fails its calls at once (its connection drops).
        silo.Configure<Orleans.Configuration.SiloMessagingOptions>(o => o.ResponseTimeout = StageCallTimeout);
        // every silo publishes its runtime statistics to every other one each DeploymentLoadPublisherRefreshTime
        // (1 s by default): with 16 workers and the coordinator, 17 × 16 ≈ 270 messages a second that nothing here
        // reads — the statistics feed Orleans' load-based placements, and every Trident grain is pinned to its
        // device's node (DevicePlacementDirector). Once a minute keeps them for Orleans' dashboards.
        silo.Configure<Orleans.Configuration.DeploymentLoadPublisherOptions>(o => o.DeploymentLoadPublisherRefreshTime = TimeSpan.FromMinutes(1));
        silo.Configure<Orleans.Configuration.ClusterMembershipOptions>(ConfigureMembership);
        return silo;
    }

    /// <summary>How soon the membership declares a dead or frozen silo dead (docs/cluster.md, "Failures and membership
    /// changes"), on every silo (coordinator and workers: they vote on each other).</summary>
    /// <remarks>
    /// Orleans declares a silo dead on NumVotesForDeathDeclaration (2) fresh votes, or fewer when few silos are active and
    /// not stale: min(2, (active non-stale + 1) / 2). A silo votes after NumMissedProbesLimit (3) failed probes, each
    /// timing out after an adaptive 2.5 s to MaxProbeTimeout, and only when nothing at all (no reply, no probe
    /// response) came from the suspect's connection for MaxProbeTimeout × NumMissedProbesLimit (the connection
    /// liveness check). A silo is stale once it has not written its IAmAlive for IAmAliveTablePublishTimeout ×
    /// NumMissedTableIAmAliveLimit. With Orleans' defaults (20 s, 30 s × 3), measured on loopback (docs/cluster.md):
    /// <list type="bullet">
    /// <item>every worker killed at once (2 of 2): the coordinator alone cannot reach 2 votes, and its probes go
    /// through the other dead worker (an indirect probe that fails to reach its intermediary is no vote), until
    /// the dead workers' entries are 90 s without an IAmAlive: 83 s, with /ready 200 and new requests accepted
    /// meanwhile;</item>
    /// <item>a stopped worker (SIGSTOP): its open connection silences the votes for 20 s × 3 = 60 s: 60 s.</item>
    /// </list>
    /// Here: an IAmAlive every 5 s, stale after 3 missed (15 s: 10–15 s after a death), so a lone coordinator's
    /// vote is enough once its dead workers are stale; and MaxProbeTimeout 5 s (the adaptive timeout's range 2.5–5 s,
    /// ProbeTimeout's default 5 s unchanged), so a silo is voted against only after 3 failed probes AND 15 s in which
    /// not one message came from it. A busy but alive worker is not declared dead: any reply, progress report or late
    /// probe response within 15 s suppresses the votes, so only a process that sends nothing at all for 15 s goes
    /// (a stall of a few seconds — GC, a saturated thread pool, CI's parallel tests on 2 cores — is far from it); a
    /// stale entry alone declares nothing, it only lowers the votes needed. Cost: one membership-table write per
    /// silo every 5 s (17 silos: 3.4 a second, in Redis or on the coordinator's table grain).
    /// </remarks>
    public static void ConfigureMembership(Orleans.Configuration.ClusterMembershipOptions o)
    {
        o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(5);
        o.NumMissedTableIAmAliveLimit = 3;
        o.ProbeTimeout = TimeSpan.FromSeconds(5);
        o.MaxProbeTimeout = TimeSpan.FromSeconds(5);
        o.NumMissedProbesLimit = 3;
        o.NumVotesForDeathDeclaration = 2;
        o.EnableIndirectProbes = true;
    }

    /// <summary>Why a silo could not start, in one line (an exception's message up to its first line break): an unreachable Redis is named with its address and the key
    /// (StackExchange.Redis' own message advises the developer — "use abortConnect=false … in your code" — and that
    /// advice is cut), anything else as its type and message.</summary>
    public static string StartFailure(Exception error, ClusterOptions c)
    {
        for (Exception? e = error; e is not null; e = e.InnerException)
            if (e.GetType().Name == "RedisConnectionException")
            {
                var message = e.Message;
                foreach (var advice in new[] { " Error connecting right now.", " To allow this multiplexer" })
                    if (message.IndexOf(advice, StringComparison.Ordinal) is var at and > 0) message = message[..at];
                return $"cannot reach Redis at {c.Redis} (Trident:Cluster:Redis, --redis): {message.Trim()}";
            }
        // the first line: Orleans' messages carry their inner exception's, stack trace included
        return $"{error.GetType().Name}: {FirstLine(error.Message).TrimEnd()}";
    }

    /// <summary><paramref name="message"/> up to its first line break (an exception's message that carries another's,
    /// stack trace included, as Orleans' do).</summary>
    public static string FirstLine(string message) =>
        message.IndexOfAny(['\r', '\n']) is var end and >= 0 ? message[..end] : message;

    /// <summary>Quietens Orleans' logs for every logging provider (Trident's Serilog sets the same levels,
    /// TridentHosting.CreateLogger, and also drops Orleans' errors about a message to a silo that is gone:
    /// TridentHosting.OrleansSiloGoneError): Orleans' own information lines would drown Trident's, and Polly, used
    /// by Orleans' placement only, logs each failed attempt of a placement retry as an Error with a stack trace
    /// (every call to a dead worker's grain until the membership declares it dead): the call's outcome reaches its
    /// caller, so Polly is at Critical.</summary>
    public static ILoggingBuilder QuietOrleans(this ILoggingBuilder logging) =>
        logging.AddFilter("Orleans", LogLevel.Warning)
            .AddFilter("Orleans.Runtime.Placement", LogLevel.Error)
            .AddFilter("Polly", LogLevel.Critical);


    /// <summary>The coordinator's silo, added to the web application when Trident:Cluster:Mode is not none
    /// (options are bound here to decide; an invalid value is reported by the options validation).</summary>
    public static WebApplicationBuilder AddTridentCluster(this WebApplicationBuilder builder)
    {
        var options = new TridentOptions();
        StrictBinding.Bind(builder.Configuration.GetSection(TridentOptions.Section), options, builder.Configuration);
        var c = options.Cluster;
        if (c.Mode is not (ClusterOptions.ModeLocalhost or ClusterOptions.ModeRedis)) return builder;
        builder.Logging.QuietOrleans();
        builder.Host.UseOrleans(silo => Configure(silo, c, coordinator: true));
        return builder;
    }
}

/// <summary>The coordinator's backend: the devices of the workers that joined, each run through its grain. Once
/// serving, it watches Orleans' membership every second (<see cref="WatchAsync"/>): a worker that is no longer
/// active, or whose address now holds another silo (a restart), takes its devices out of the cluster (at once
/// when a stage call finds it gone, through <see cref="DeviceDirectory.Lost"/>); a worker back at the same
/// address is checked as a new one once its node grain answers — it must serve the cluster's profile, and it
/// brings its devices back only when it reports the same devices, else its old devices stay out and it joins as
/// a new node with the devices it has now; a worker not seen before joins as a new node. A worker that serves
/// another profile is refused (logged once) until its silo leaves the membership or another silo takes its
/// address: that one is checked again.</summary>
public sealed class ClusterServingBackend(IGrainFactory grains, ILocalSiloDetails self) : IServingBackend, IAsyncDisposable
{
    private readonly ClusterTransfers _transfers = new();
    private readonly ClusterCallTimes _times = new();
    private readonly DeviceDirectory _directory = new();
    private readonly CancellationTokenSource _stop = new();
    private IReadOnlyList<WireDevice> _devices = [];
    private string _profileSource = "";
    private Task? _watch;
    private readonly object _gate = new();
    // endpoints whose devices are out of the cluster, and why
    private readonly Dictionary<string, string> _down = new(StringComparer.Ordinal);
    // the workers that joined, by endpoint: their devices now (ids, as the worker reported them) and the generation
    // of the silo that reported them; the devices of an earlier worker at that address that had other devices stay
    // out for good
    private readonly Dictionary<string, (int[] Ids, WireDevice[] Devices, int Generation)> _nodes = new(StringComparer.Ordinal);
    // the silo of each worker's first discovery (LayoutAsync), by endpoint
    private readonly Dictionary<string, int> _discovered = new(StringComparer.Ordinal);
    // silos that serve another profile (not used; said once), by endpoint, with what they serve: checked again once
    // that silo is gone
    private readonly Dictionary<string, (SiloAddress Silo, RefusedWorker Worker)> _refused = new(StringComparer.Ordinal);
    private volatile string? _starting;

    /// <inheritdoc />
    /// <remarks>While waiting for the workers: how many of the devices wanted have joined, from which workers.</remarks>
    public string? Starting => _starting;

    /// <summary>How often the membership is read.</summary>
    public static readonly TimeSpan WatchPeriod = TimeSpan.FromSeconds(1);
    /// <summary>The profile the workers must serve for <paramref name="options"/>: the emulated reference profile
    /// and scale (workers report the same string; a mismatch is refused).</summary>
    public static string ProfileSource(TridentOptions options) =>
        $"emulated {options.Emulation.Profile} × {options.Emulation.TimeScale.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>The devices of the workers that joined, discovered through the membership: waits until
    /// Devices:Count of them have joined from workers serving the coordinator's profile (at most
    /// Cluster:JoinTimeoutSeconds), nodes = workers in endpoint order. A worker that serves another profile is refused
    /// as after the start (logged once, told, its devices not counted; checked again once its silo leaves or another
    /// takes its address).</summary>
    /// <exception cref="TimeoutException">naming the devices that joined and the workers refused, when too few
    /// joined in time (<see cref="JoinTimeoutMessage"/>).</exception>
    public async Task<DeviceLayout> LayoutAsync(TridentOptions options, ILogger log, CancellationToken cancellationToken)
    {
        var wanted = options.Devices.Count == 0 ? EmulationOptions.ReferenceNodeSize : options.Devices.Count;
        var deadline = DateTime.UtcNow.AddSeconds(options.Cluster.JoinTimeoutSeconds);
        var expected = ProfileSource(options);
        // set before the first discovery: Refused compares with it
        _profileSource = expected;
        var found = new List<WireDevice>();
        log.LogInformation("Coordinator silo {Silo}: waiting for {Devices} device(s) from workers", self.SiloAddress, wanted);
        var said = -1;
        var start = DateTime.UtcNow;
        while (true)
        {
            found = await DiscoverAsync(log, cancellationToken);
            var workers = Workers(found);
            var refused = RefusedWorkers();
            _starting = $"waiting for {wanted} device(s) from workers: {found.Count} joined{(found.Count > 0 ? $" ({workers})" : "")}, "
                + $"for {(DateTime.UtcNow - start).TotalSeconds:F0} of at most {options.Cluster.JoinTimeoutSeconds} s (Trident:Cluster:JoinTimeoutSeconds)"
                + (refused.Count > 0 ? $"; {RefusalText(refused, expected)}" : "");
            if (found.Count != said && found.Count < wanted)
            {
                if (found.Count > 0) log.LogInformation("Cluster: {Joined} of {Devices} device(s) joined: {Workers}", found.Count, wanted, workers);
                said = found.Count;
            }
            if (found.Count >= wanted || DateTime.UtcNow > deadline) break;
            await Task.Delay(500, cancellationToken);
        }
        _starting = null;
        if (found.Count < wanted)
            throw new TimeoutException(JoinTimeoutMessage(found, wanted, options.Cluster.JoinTimeoutSeconds, RefusedWorkers(), expected));
        // whole workers only: a worker's devices are one node and leave together
        var chosen = new List<WireDevice>();
        foreach (var worker in found.GroupBy(d => DeviceKeys.Endpoint(d.Key)))
            if (chosen.Count < wanted) chosen.AddRange(worker);
        var nodes = chosen.Select(d => DeviceKeys.Endpoint(d.Key)).Distinct().ToList();
        _devices = chosen;
        log.LogInformation("Cluster: {Devices} device(s) on {Workers} worker(s): {Endpoints}", chosen.Count, nodes.Count, string.Join(", ", nodes));
        // on the coordinator every remote device has a thread budget of 1, so a diffuse group's budget is its degree
        return new DeviceLayout([.. chosen.Select((d, i) => new DeviceSpec(i, nodes.IndexOf(DeviceKeys.Endpoint(d.Key)), DeviceKind.Emulated, 1, 0, d.MemoryGb))]);
    }

    /// <summary>A worker refused for serving another profile than the cluster's: its endpoint, the profile it serves
    /// (<see cref="WireDevice.ProfileSource"/>) and how many devices it has.</summary>
    public sealed record RefusedWorker(string Endpoint, string Profile, int Devices);

    /// <summary>Splits the devices that workers reported into those of workers serving <paramref name="expected"/>
    /// and the workers that serve another profile, both worker by worker in the order of each worker's first device:
    /// a worker with any device of another profile is refused whole (a worker's devices are one node).</summary>
    public static (IReadOnlyList<WireDevice> Accepted, IReadOnlyList<RefusedWorker> Refused) SplitByProfile(IEnumerable<WireDevice> devices, string expected)
    {
        var accepted = new List<WireDevice>();
        var refused = new List<RefusedWorker>();
        foreach (var worker in devices.GroupBy(d => DeviceKeys.Endpoint(d.Key)))
        {
            if (worker.FirstOrDefault(d => d.ProfileSource != expected) is { } stranger)
                refused.Add(new RefusedWorker(worker.Key, stranger.ProfileSource, worker.Count()));
            else
                accepted.AddRange(worker);
        }
        return (accepted, refused);
    }

    /// <summary>Why the coordinator did not start: <paramref name="found"/> devices (of workers serving its profile
    /// <paramref name="expected"/>) of the <paramref name="wanted"/> joined within <paramref name="timeoutSeconds"/>,
    /// and the workers refused for another profile, each with the profile it serves (a user whose workers all serve
    /// another profile reads why none counted).</summary>
    public static string JoinTimeoutMessage(IReadOnlyList<WireDevice> found, int wanted, int timeoutSeconds, IReadOnlyList<RefusedWorker> refused, string expected) =>
        $"{found.Count} of {wanted} device(s) joined within {timeoutSeconds} s (Trident:Cluster:JoinTimeoutSeconds): "
        + (found.Count == 0 ? "no worker serving the coordinator's profile joined" : Workers(found))
        + (refused.Count > 0 ? $"; {RefusalText(refused, expected)}" : "");

    // "127.0.0.1:8297 (8), 127.0.0.1:8298 (8)": the workers of these devices with their device counts.
    private static string Workers(IEnumerable<WireDevice> devices) =>
        string.Join(", ", devices.GroupBy(d => DeviceKeys.Endpoint(d.Key)).Select(g => $"{g.Key} ({g.Count()})"));

    // The refused workers, and why, in one phrase.
    private static string RefusalText(IReadOnlyList<RefusedWorker> refused, string expected) =>
        $"refused, serving another profile than the coordinator's '{expected}' (--emulate, --time-scale): "
        + string.Join(", ", refused.Select(r => $"{r.Endpoint} ({r.Devices} device(s), serves '{r.Profile}')"));

    // The workers refused now, in endpoint order.
    private List<RefusedWorker> RefusedWorkers()
    {
        lock (_gate) return [.. _refused.OrderBy(r => r.Key, StringComparer.Ordinal).Select(r => r.Value.Worker)];
    }

    // The devices of the active workers that serve the cluster's profile; a worker that serves another is refused
    // (Refused: logged once, told) and not asked again until its silo leaves or another takes its address.
    private async Task<List<WireDevice>> DiscoverAsync(ILogger log, CancellationToken cancellationToken)
    {
        var active = await ActiveWorkersAsync();
        ForgetRefusedThatLeft(active, log);
        var answered = new List<WireDevice>();
        var silos = new Dictionary<string, SiloAddress>(StringComparer.Ordinal);
        foreach (var (endpoint, silo) in active)
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool refused;
            lock (_gate) refused = _refused.ContainsKey(endpoint);
            if (refused) continue;
            try
            {
                answered.AddRange(await grains.GetGrain<INodeGrain>(endpoint).Devices().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken));
                silos[endpoint] = silo;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // a silo that is starting or going away: asked again on the next pass
            }
        }
        var (accepted, strangers) = SplitByProfile(answered, _profileSource);
        foreach (var stranger in strangers)
            Refused(stranger.Endpoint, silos[stranger.Endpoint], [.. answered.Where(d => DeviceKeys.Endpoint(d.Key) == stranger.Endpoint)], log);
        lock (_gate)
            foreach (var endpoint in accepted.Select(d => DeviceKeys.Endpoint(d.Key)).Distinct())
                _discovered[endpoint] = silos[endpoint].Generation;
        return [.. accepted];
    }

    // A refused silo that left, or whose address another silo took: the address is checked again.
    private void ForgetRefusedThatLeft(SortedDictionary<string, SiloAddress> active, ILogger log)
    {
        lock (_gate)
            foreach (var (endpoint, refused) in _refused.ToArray())
                if (!active.TryGetValue(endpoint, out var now) || !now.Equals(refused.Silo))
                {
                    _refused.Remove(endpoint);
                    log.LogInformation("Worker {Endpoint} that served another profile left; its address is checked again", endpoint);
                }
    }

    /// <inheritdoc />
    public Task<ServingBackendParts> PrepareAsync(TridentOptions options, DeviceLayout layout, ILogger log, CancellationToken cancellationToken)
    {
        var e = options.Emulation;
        var profile = EmulatedProfile.Scaled(EmulatedProfile.Reference(e.Profile), e.TimeScale);
        var manifest = EmulatedProfile.Manifest(profile);
        var first = _directory.Add(_devices.Select(d => d.Key));
        lock (_gate)
            foreach (var worker in _devices.Select((d, i) => (Device: d, Id: first + i)).GroupBy(d => DeviceKeys.Endpoint(d.Device.Key)))
                _nodes[worker.Key] = ([.. worker.Select(d => d.Id)], [.. worker.Select(d => d.Device)], _discovered.GetValueOrDefault(worker.Key));
        return Task.FromResult(new ServingBackendParts(manifest, new RemoteStageExecutorFactory(grains, _directory, _transfers, _times), profile, Origin(e),
            new ByteTokenizer((Trident.Runtime.Pipelines.ByteTokenizerSettings)manifest.Tokenizer),
            server =>
            {
                _transfers.Bind(server.Metrics.Meter);
                _times.Bind(server.Metrics.Meter);
                _directory.Lost = (key, reason) => Leave(server, DeviceKeys.Endpoint(key), reason, log);
                _watch = Task.Run(() => WatchAsync(server, log, _stop.Token));
            })
        {
            ResultSize = (width, height) => EmulatedStageExecutor.PlaceholderSize(width, height),
            WorkerOf = WorkerOf,
        });
    }

    /// <summary>Where a coordinator's profile comes from (the <c>profile</c> of <c>/health</c> and <c>/ready</c>): the
    /// scaled reference profile its workers serve. Fixed at the start, so it counts no workers (before, "… on 2
    /// worker(s)" stayed as workers joined and left); <c>GET /v1/cluster</c> lists them, each device with its worker.</summary>
    public static string Origin(EmulationOptions e) =>
        $"reference profile '{e.Profile}' × time scale {e.TimeScale.ToString(System.Globalization.CultureInfo.InvariantCulture)} on the cluster's workers "
        + "(emulated devices; results are placeholder patterns; GET /v1/cluster lists each device's worker)";

    // The worker endpoint of the device of this id — its grain key's (a device keeps its id and key once added:
    // RemoteStageExecutorFactory calls each device's grain by the directory's key for its id), else null.
    private string? WorkerOf(int id) => _directory.KeyOrNull(id) is { } key ? DeviceKeys.Endpoint(key) : null;

    // The active silos other than this one by endpoint (the newest generation at an endpoint), in endpoint order.
    private async Task<SortedDictionary<string, SiloAddress>> ActiveWorkersAsync()
    {
        var hosts = await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        var active = new SortedDictionary<string, SiloAddress>(StringComparer.Ordinal);
        foreach (var s in hosts.Keys.Where(s => !s.Equals(self.SiloAddress)))
        {
            var endpoint = s.Endpoint.ToString();
            if (!active.TryGetValue(endpoint, out var other) || other.Generation < s.Generation) active[endpoint] = s;
        }
        return active;
    }

    // Takes the devices of the worker at endpoint out of the cluster (once).
    private void Leave(TridentServer server, string endpoint, string reason, ILogger log)
    {
        int[] ids;
        lock (_gate)
        {
            if (!_nodes.TryGetValue(endpoint, out var node) || !_down.TryAdd(endpoint, reason)) return;
            ids = node.Ids;
        }
        _directory.SetOut(ids, true);
        log.LogWarning("Worker {Endpoint} left the cluster ({Reason}): its {Devices} device(s) are out", endpoint, reason, ids.Length);
        server.DevicesLeft(ids, $"worker {endpoint}: {reason}");
    }

    // Whether the worker at endpoint (silo) serves another profile than the cluster: then it is refused, said once.
    private bool Refused(string endpoint, SiloAddress silo, WireDevice[] devices, ILogger log)
    {
        var strangers = devices.Where(d => d.ProfileSource != _profileSource).ToArray();
        if (strangers.Length == 0) return false;
        log.LogError("Worker {Endpoint} serves another profile ({Theirs}) than the coordinator's '{Ours}'; its devices are not used",
            endpoint, strangers[0].ProfileSource, _profileSource);
        lock (_gate) _refused[endpoint] = (silo, new RefusedWorker(endpoint, strangers[0].ProfileSource, devices.Length));
        TellRefused(endpoint, $"it serves '{strangers[0].ProfileSource}', the cluster '{_profileSource}' (--emulate, --time-scale): restart it with the coordinator's");
        return true;
    }

    // Tells the worker at endpoint that its devices are not used, and why (it logs it, its /health says it).
    private void TellRefused(string endpoint, string reason)
    {
        try
        {
            _ = grains.GetGrain<INodeGrain>(endpoint).Refuse(reason);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // unreachable: the coordinator's own log says it
        }
    }

    // Adds the devices of the worker at endpoint (silo) as a new node.
    private void Join(TridentServer server, string endpoint, SiloAddress silo, WireDevice[] devices, ILogger log)
    {
        var specs = server.JoinNode([.. devices.Select(d => new DeviceSpec(0, 0, DeviceKind.Emulated, 1, 0, d.MemoryGb))],
            specs => _directory.Add(devices.Select(d => d.Key)));
        lock (_gate)
        {
            _nodes[endpoint] = ([.. specs.Select(d => d.Id)], devices, silo.Generation);
            _down.Remove(endpoint);
        }
        log.LogInformation("Worker {Endpoint} joined with {Devices} device(s)", endpoint, devices.Length);
    }

    // A worker that left is back at its address (silo) with devices: checked as a new one. Its devices are in again
    // when they are the ones it had (same keys and memory); else its old devices stay out and it joins as a new node.
    private void Return(TridentServer server, string endpoint, SiloAddress silo, WireDevice[] devices, ILogger log)
    {
        if (Refused(endpoint, silo, devices, log)) return;
        (int[] Ids, WireDevice[] Devices, int Generation) node;
        lock (_gate) node = _nodes[endpoint];
        var same = node.Devices.Length == devices.Length
            && node.Devices.Zip(devices).All(p => p.First.Key == p.Second.Key && p.First.MemoryGb.Equals(p.Second.MemoryGb));
        if (!same)
        {
            log.LogWarning("Worker {Endpoint} is back with other devices ({Now} device(s), {NowGb} GB; it had {Before}, {BeforeGb} GB): its old device(s) {Old} stay out, it joins as a new node",
                endpoint, devices.Length, string.Join("/", devices.Select(d => d.MemoryGb).Distinct()), node.Devices.Length,
                string.Join("/", node.Devices.Select(d => d.MemoryGb).Distinct()), string.Join(",", node.Ids));
            Join(server, endpoint, silo, devices, log);
            return;
        }
        lock (_gate)
        {
            _down.Remove(endpoint);
            _nodes[endpoint] = node with { Generation = silo.Generation };
        }
        _directory.SetOut(node.Ids, false);
        log.LogInformation("Worker {Endpoint} is back: its {Devices} device(s) are in again", endpoint, node.Ids.Length);
        server.DevicesBack(node.Ids);
    }

    /// <summary>Reads the membership every <see cref="WatchPeriod"/> until stopped: workers that left, came back
    /// or joined (see the class summary).</summary>
    private async Task WatchAsync(TridentServer server, ILogger log, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(WatchPeriod, stop);
                await WatchOnceAsync(server, log, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                log.LogWarning(e, "Reading the cluster's membership failed; trying again");
            }
        }
    }

    private async Task WatchOnceAsync(TridentServer server, ILogger log, CancellationToken stop)
    {
        var active = await ActiveWorkersAsync();
        Dictionary<string, (int[] Ids, WireDevice[] Devices, int Generation)> nodes;
        ForgetRefusedThatLeft(active, log);
        lock (_gate) nodes = new(_nodes, StringComparer.Ordinal);
        foreach (var (endpoint, node) in nodes)
        {
            bool isDown, refused;
            lock (_gate)
            {
                isDown = _down.ContainsKey(endpoint);
                refused = _refused.ContainsKey(endpoint);
            }
            var here = active.TryGetValue(endpoint, out var silo);
            if (!isDown && !here)
                Leave(server, endpoint, "no longer an active silo in the membership", log);
            else if (!isDown && here && silo!.Generation != node.Generation)
            {
                // restarted before the membership declared the old silo dead: checked as a returning worker
                Leave(server, endpoint, "restarted: another silo at its address", log);
                if (await AnswersAsync(endpoint, stop) is { Length: > 0 } devices) Return(server, endpoint, silo, devices, log);
            }
            else if (isDown && here && !refused && await AnswersAsync(endpoint, stop) is { Length: > 0 } devices)
                Return(server, endpoint, silo!, devices, log);
        }
        foreach (var (endpoint, silo) in active)
        {
            bool skip;
            lock (_gate) skip = _nodes.ContainsKey(endpoint) || _refused.ContainsKey(endpoint);
            if (skip || await AnswersAsync(endpoint, stop) is not { Length: > 0 } devices) continue;
            if (Refused(endpoint, silo, devices, log)) continue;
            Join(server, endpoint, silo, devices, log);
        }
    }

    // A worker's devices when its node grain answers within 2 s, else null.
    private async Task<WireDevice[]?> AnswersAsync(string endpoint, CancellationToken stop)
    {
        try
        {
            return await grains.GetGrain<INodeGrain>(endpoint).Devices().WaitAsync(TimeSpan.FromSeconds(2), stop);
        }
        catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Stops watching the membership.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_watch is not null)
        {
            try { await _watch; }
            catch (OperationCanceledException) { }
        }
        _stop.Dispose();
    }
}
