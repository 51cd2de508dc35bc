using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.FSharp.Core;
using Trident.Scheduling;
using Trident.Scheduling.Dispatching;
using Trident.Scheduling.Mip;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident bench dispatch</c>: times dispatch rounds on generated snapshots (not a unit test).
/// For each configuration it draws <c>--rounds</c> snapshots from the seed, times
/// <c>Dispatcher.dispatch</c> on each (after a warm-up) with every MIP backend in turn (or the one
/// <c>--backend</c> names), and prints one line per backend: the median and 99th percentile
/// wall-clock time, the share of rounds the MIP decided and the share of those it proved optimal, the
/// share of the rounds that needed the solver (greedy could not prove itself optimal) whose plan the
/// solver made (the rest fell back to greedy: time limit, failure), and the mean model size (variables,
/// constraints) of the solved rounds, the mean time of the round's preparation (candidates, greedy
/// plan) and of the solver, and the mean objective of the plans (backends that reach the same mean
/// objective made equally good plans; the default backend is the fastest of those).
/// With <c>--reference</c> it also solves, on the same snapshots with the same backend, the reference
/// implementation's formulation (one binary per request × node × degree,
/// <c>Dispatcher.referenceModel</c>) beside the aggregated one, both without a MIP start and under
/// <c>--reference-limit</c> seconds, and prints both times, the speed-up and whether both optima agree.
/// The backends run on the same snapshots, one configuration after the other, so that their
/// numbers compare on a shared machine.
/// </summary>
public static class BenchCommand
{
    private static readonly Option<int> Devices = Opt.Int("--devices", "devices [default: the matrix of 32, 128, 512 devices × 64, 256, 1000 waiting]", null, 1, 100_000);
    private static readonly Option<int> Waiting = Opt.Int("--waiting", "waiting requests per round [default: the matrix]", null, 0, 1_000_000);
    private static readonly Option<int> PerNode = Opt.Int("--devices-per-node", "devices per node", 8, 1, 64);
    private static readonly Option<string> ProfileName = Opt.Choice("--profile", "the built-in profile the snapshots are drawn for", "flux", "sd3", "flux", "cogvideox", "hunyuanvideo");
    private static readonly Option<int> Rounds = Opt.Int("--rounds", "snapshots timed per configuration", 200, 1, 100_000);
    private static readonly Option<double> Busy = Opt.Double("--busy", "share of devices busy in a snapshot", 0.5, 0.0, 1.0);
    private static readonly Option<ulong> Seed = Opt.ULong("--seed", "the snapshots' seed", 42);
    private static readonly Option<string> BackendOption = Opt.Choice("--backend", "one MIP backend [default: every backend, on the same snapshots]", null, ReplayCommand.Backends);
    private static readonly Option<bool> Reference = Opt.Flag("--reference",
        "also solve each round's reference formulation (one binary per request × node × degree) beside the aggregated one, both without a MIP start, and compare times and optima");
    private static readonly Option<int> TimeLimitMs = Opt.Int("--time-limit-ms",
        "the dispatch solve's time limit in milliseconds (Trident:Serving:DispatchTimeLimitMs of the server) [default: the dispatch default, 50]", null, 1, 600_000);
    private static readonly Option<double> ReferenceLimit = Opt.Double("--reference-limit", "the time limit in seconds of each solve with --reference", 10.0, 0.001, 3600.0);

    /// <summary>The command: <c>bench dispatch|runtime|soak|cluster</c>.</summary>
    public static Command Command { get; } = new Command("bench", "benchmarks (not unit tests): dispatch rounds, the runtime's overhead, a soak, a cluster on loopback")
    {
        new Command("dispatch", "time dispatch rounds on generated snapshots with every MIP backend (without --devices/--waiting: a matrix of 32, 128, 512 devices × 64, 256, 1000 waiting)")
            { Devices, Waiting, PerNode, ProfileName, Rounds, Busy, Seed, BackendOption, TimeLimitMs, Reference, ReferenceLimit }.With(Dispatch),
        RuntimeBench.Command,
        SoakBench.Command,
        ClusterBench.Command,
    };

    private static int Dispatch(ParseResult args, CancellationToken ct)
    {
        var devicesGiven = args.Given(Devices);
        var waitingGiven = args.Given(Waiting);
        var devices = args.Maybe(Devices) ?? 128;
        var waiting = args.Maybe(Waiting) ?? 256;
        var perNode = args.GetValue(PerNode);
        var rounds = args.GetValue(Rounds);
        var busy = args.GetValue(Busy);
        var seed = args.GetValue(Seed);
        var backends = args.GetValue(BackendOption) is { } name ? [BackendModule.tryParse(name).Value] : BackendModule.all.ToList();
        var profile = ReferenceProfiles.tryFind(args.Text(ProfileName));
        var reference = args.GetValue(Reference);
        var referenceLimit = args.GetValue(ReferenceLimit);
        var timeLimit = args.Maybe(TimeLimitMs) is { } ms ? ms / 1000.0 : DispatchSettingsModule.defaults.TimeLimit;
        if (devicesGiven && devices % perNode != 0)
            throw new CliException([$"--devices: {devices} is not a multiple of --devices-per-node {perNode}"]);

        var configs = devicesGiven || waitingGiven
            ? new[] { (devices, waiting) }
            : new[] { (32, 64), (32, 256), (128, 64), (128, 256), (128, 1000), (512, 256), (512, 1000) };
        using var progress = CliProgress.Start("bench dispatch", configs.Length * rounds, TimeSpan.FromSeconds(1));
        foreach (var (d, w) in configs)
        {
            if (ct.IsCancellationRequested) return 130;
            var results = Measure(profile!.Value, d, perNode, w, rounds, busy, seed, backends, timeLimit,
                i => progress.Step(string.Create(CultureInfo.InvariantCulture, $"devices={d} waiting={w}: round {i + 1} of {rounds}")));
            for (var b = 0; b < backends.Count; b++)
            {
                var r = results[b];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"backend={BackendModule.name(backends[b])} devices={d} waiting={w} rounds={rounds} time_limit_ms={timeLimit * 1000:F0} p50_ms={r.P50:F2} p99_ms={r.P99:F2} mip_share={r.MipShare:F3} optimal_share={r.OptimalShare:F3} mean_dispatched={r.MeanDispatched:F1} mean_prepare_ms={r.MeanPrepareMs:F2} mean_solver_ms={r.MeanSolverMs:F2} solver_decided_share={(double.IsNaN(r.SolverDecidedShare) ? "n/a" : r.SolverDecidedShare.ToString("F3", CultureInfo.InvariantCulture))} variables={r.Variables:F0} constraints={r.Constraints:F0} mean_objective={r.MeanObjective:F2}"));
            }
            if (reference)
                foreach (var line in CompareReference(profile!.Value, d, perNode, w, rounds, busy, seed, backends, referenceLimit, ct))
                    Console.WriteLine(line);
        }
        return 0;
    }

    /// <param name="OptimalShare">Share of the MIP rounds whose solve proved optimality within the time limit.</param>
    /// <param name="SolverDecidedShare">Of the rounds that needed the solver, the share whose plan it made (NaN, printed n/a, when none needed it).</param>
    /// <param name="Variables">Mean variables of the solved rounds' models.</param>
    /// <param name="Constraints">Mean constraints of the solved rounds' models.</param>
    /// <param name="MeanPrepareMs">Mean time of <c>Dispatcher.prepare</c> (candidates, greedy plan) per round.</param>
    /// <param name="MeanObjective">Mean objective of the rounds' plans.</param>
    private sealed record Result(double P50, double P99, double MipShare, double OptimalShare, double MeanDispatched, double MeanSolverMs,
        double SolverDecidedShare, double Variables, double Constraints, double MeanPrepareMs, double MeanObjective);

    /// <summary>The bench's generated rounds: one cost model, cluster, placement and scenario per configuration.</summary>
    private sealed record Setup(CostModel Cost, Cluster Cluster, PlacementPlan Placement, Scenario Scenario)
    {
        public Snapshot Snapshot(DispatchSettings settings, ulong seed) => Scenarios.snapshot(Cost, Cluster, Placement, settings, Scenario, seed);
    }

    private static Setup SetUp(Profile profile, int devices, int perNode, int waiting, double busy)
    {
        var cost = CostModelModule.create(CostSettingsModule.defaults, profile);
        var cluster = ClusterModule.uniform(devices / perNode, perNode, profile.DeviceMemory, BandwidthsModule.pcie4Server);
        var scenario = new Scenario(profile, devices / perNode, perNode, waiting, busy, profile.DefaultSteps);
        return new Setup(cost, cluster, Scenarios.placement(cost, cluster, scenario), scenario);
    }

    private static DispatchSettings WithBackend(Backend backend, double timeLimit)
    {
        return DispatchSettingsModule.withBackend(backend, DispatchSettingsModule.withTimeLimit(timeLimit, DispatchSettingsModule.defaults));
    }

    /// <summary>Solve settings with the given backend and time limit, no MIP start, otherwise the defaults.</summary>
    private static SolveSettings<TKey> Solving<TKey>(Backend backend, double limit)
    {
        var d = SolveSettings.create<TKey>(limit);
        return new SolveSettings<TKey>(d.TimeLimit, d.RelativeGap, backend, d.Threads, d.MipStart, d.ObjectiveTolerance, d.Presolve);
    }

    /// <summary>
    /// Solves the aggregated model and the reference formulation of every round that has candidates, with
    /// each backend, both without a MIP start and under <paramref name="limit"/> seconds, and says per
    /// backend: the median and 99th percentile of each (model building and solve, wall clock), the
    /// speed-up of the medians, the mean model sizes, and whether the optima agree (both proven optimal
    /// and equal within 1e-6 relative; when only the aggregated optimum is proven, the reference's best
    /// plan must not beat it and its bound must not fall below it) — rounds where they differ are
    /// listed, never hidden; rounds the reference could not prove within the limit are counted.
    /// </summary>
    private static IEnumerable<string> CompareReference(Profile profile, int devices, int perNode, int waiting, int rounds, double busy, ulong seed,
        IReadOnlyList<Backend> backends, double limit, CancellationToken ct)
    {
        var setup = SetUp(profile, devices, perNode, waiting, busy);
        var inv = CultureInfo.InvariantCulture;
        foreach (var backend in backends)
        {
            var ours = new List<double>();
            var theirs = new List<double>();
            double oursVars = 0, oursRows = 0, refVars = 0, refRows = 0;
            int agree = 0, consistent = 0, referenceUnproven = 0, aggregatedUnproven = 0;
            var disagreements = new List<string>();
            for (var i = 0; i < rounds && !ct.IsCancellationRequested; i++)
            {
                var snapshot = setup.Snapshot(WithBackend(backend, limit), seed + (ulong)i);
                var prepared = Dispatcher.prepare(snapshot);
                if (prepared.Candidates.IsEmpty) continue;
                var sw = Stopwatch.StartNew();
                var aggregated = DispatchMip.model(prepared.Round, prepared.Free, prepared.Candidates);
                var a = Mip.solve(Solving<DispatchKey>(backend, limit), aggregated);
                sw.Stop();
                ours.Add(sw.Elapsed.TotalMilliseconds);
                sw.Restart();
                var referenceModel = Dispatcher.referenceModel(prepared).Value;
                var r = Mip.solve(Solving<Tuple<RequestId, NodeId, PlacementType, int>>(backend, limit), referenceModel);
                sw.Stop();
                theirs.Add(sw.Elapsed.TotalMilliseconds);
                oursVars += aggregated.Variables.Count; oursRows += aggregated.Constraints.Length;
                refVars += referenceModel.Variables.Count; refRows += referenceModel.Constraints.Length;
                var tolerance = 1e-6 * Math.Max(1.0, a.HasSolution ? Math.Abs(a.Objectives.Head.Value) : 1.0);
                if (a.Outcome.IsOptimal && r.Outcome.IsOptimal)
                {
                    var va = a.Objectives.Head.Value;
                    var vr = r.Objectives.Head.Value;
                    if (Math.Abs(va - vr) <= tolerance) agree++;
                    else disagreements.Add(string.Create(inv, $"seed={seed + (ulong)i} aggregated={va:R} reference={vr:R} (both proven optimal)"));
                }
                else if (a.Outcome.IsOptimal)
                {
                    // the reference stopped at its limit: its best plan must not beat our proven optimum,
                    // and its bound must not fall below it
                    referenceUnproven++;
                    var va = a.Objectives.Head.Value;
                    if (r.HasSolution && (r.Objectives.Head.Value > va + tolerance || r.Objectives.Head.BestBound < va - tolerance))
                        disagreements.Add(string.Create(inv,
                            $"seed={seed + (ulong)i} aggregated={va:R} (proven) reference best={r.Objectives.Head.Value:R} bound={r.Objectives.Head.BestBound:R} ({r.Outcome})"));
                    else consistent++;
                }
                else aggregatedUnproven++;
            }
            var n = ours.Count;
            if (n == 0)
            {
                yield return $"reference backend={BackendModule.name(backend)} devices={devices} waiting={waiting}: no round had candidates";
                continue;
            }
            var o = ours.Order().ToArray();
            var t = theirs.Order().ToArray();
            yield return string.Create(inv,
                $"reference backend={BackendModule.name(backend)} devices={devices} waiting={waiting} rounds={n} aggregated_p50_ms={Percentile(o, 0.5):F2} aggregated_p99_ms={Percentile(o, 0.99):F2} reference_p50_ms={Percentile(t, 0.5):F2} reference_p99_ms={Percentile(t, 0.99):F2} speedup_p50={Percentile(t, 0.5) / Percentile(o, 0.5):F1} speedup_p99={Percentile(t, 0.99) / Percentile(o, 0.99):F1} aggregated_size={oursVars / n:F0}x{oursRows / n:F0} reference_size={refVars / n:F0}x{refRows / n:F0} optima_agree={agree}/{n} reference_unproven={referenceUnproven} (consistent with the aggregated optimum: {consistent}) aggregated_unproven={aggregatedUnproven} optima_differ={disagreements.Count}");
            foreach (var line in disagreements)
                yield return $"reference backend={BackendModule.name(backend)} OPTIMA DIFFER: {line}";
        }
    }

    /// <summary>
    /// Times every backend on the same snapshots, interleaved round by round (backend order rotating),
    /// so that a busy spell of a shared machine falls on all of them alike.
    /// </summary>
    /// <summary>Unmeasured rounds per backend before the measured ones (past the JIT's 30-call tier-up).</summary>
    private const int WarmupRounds = 40;

    private static Result[] Measure(Profile profile, int devices, int perNode, int waiting, int rounds, double busy, ulong seed,
        IReadOnlyList<Backend> backends, double timeLimit, Action<int> roundDone)
    {
        var setup = SetUp(profile, devices, perNode, waiting, busy);
        var settings = backends.Select(b => WithBackend(b, timeLimit)).ToArray();

        // warm-up: the solver libraries, caches, and the JIT's steady state — .NET compiles a method
        // unoptimised first (tier 0) and recompiles it optimised after 30 calls; a server makes a round
        // every period, so it runs tier-1 code, and 5 warm-up rounds measured tier-0 code (the round's F#
        // ran 3–4× slower in the first 30 rounds: 512 × 1000, 2026-12-01)
        for (var i = 0; i < WarmupRounds; i++)
            foreach (var s in settings)
                Dispatcher.dispatch(setup.Snapshot(s, seed + 1_000_000UL + (ulong)i));
        // the optimised recompilation runs on a background thread: let it finish, as a server's idle
        // time between rounds does
        Thread.Sleep(TimeSpan.FromSeconds(1));

        var n = settings.Length;
        var times = new double[n][];
        var mip = new int[n];
        var optimal = new int[n];
        var dispatched = new double[n];
        var solver = new double[n];
        var fallback = new int[n];
        var variables = new double[n];
        var constraints = new double[n];
        var prepare = new double[n];
        var objective = new double[n];
        for (var b = 0; b < n; b++) times[b] = new double[rounds];
        for (var i = 0; i < rounds; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var b = (i + j) % n;
                var snapshot = setup.Snapshot(settings[b], seed + (ulong)i);
                // Dispatcher.dispatch = prepare, then the rest; timed in two parts
                var sw = Stopwatch.StartNew();
                var prepared = Dispatcher.prepare(snapshot);
                var prepareMs = sw.Elapsed.TotalMilliseconds;
                var plan = Dispatcher.dispatchPrepared(prepared);
                sw.Stop();
                times[b][i] = sw.Elapsed.TotalMilliseconds;
                prepare[b] += prepareMs;
                objective[b] += plan.Objective;
                dispatched[b] += plan.Dispatches.Length;
                if (plan.Source is PlanSource.Mip m)
                {
                    mip[b]++;
                    if (m.Item.Proven) optimal[b]++;
                    solver[b] += m.Item.SolveTime * 1000.0;
                    variables[b] += m.Item.Variables;
                    constraints[b] += m.Item.Constraints;
                }
                else if (plan.Source is PlanSource.Greedy g && g.reason.StartsWith("solver", StringComparison.Ordinal))
                    fallback[b]++;
            }
            roundDone(i);
        }
        return Enumerable.Range(0, n).Select(b =>
        {
            Array.Sort(times[b]);
            return new Result(Percentile(times[b], 0.50), Percentile(times[b], 0.99), (double)mip[b] / rounds,
                mip[b] > 0 ? (double)optimal[b] / mip[b] : 0.0, dispatched[b] / rounds, mip[b] > 0 ? solver[b] / mip[b] : 0.0,
                mip[b] + fallback[b] > 0 ? (double)mip[b] / (mip[b] + fallback[b]) : double.NaN,
                mip[b] > 0 ? variables[b] / mip[b] : 0.0, mip[b] > 0 ? constraints[b] / mip[b] : 0.0, prepare[b] / rounds, objective[b] / rounds);
        }).ToArray();
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    // nearest rank, NaN when empty: the simulator's own, so measured and simulated figures are read alike
    private static double Percentile(double[] sorted, double q) => Simulator.percentile(sorted, q);
}
