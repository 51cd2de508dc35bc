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
    public static Command Command { get; } = new(
        "bench",
        "bench dispatch [--devices D] [--waiting R] [--devices-per-node 8] [--profile flux] [--rounds 200] [--busy 0.5] [--seed S] [--backend scip|cbc|highs|cp-sat] [--reference [--reference-limit 10]]\n" +
        "  bench runtime [--pipeline tiny] [--runs 12] [--max-runs 80] [--device cpu|cuda:N] [--width 256 --height 256] [--frames 1] [--steps 8] [--guidance G] [--threads T]\n" +
        "  bench soak [--duration 600] [--rate r] [--pipeline tiny] [--devices n] [--steps 4] [--sample-every 10] [--retention s] [--drain 60] [--out samples.csv]\n" +
        "  bench cluster [--nodes 16] [--devices-per-node 8] [--emulate flux] [--time-scale 0.05] [--workload flux-reference] [--count n] [--membership redis|localhost] [--timeout 120] [--out requests.csv]",
        "benchmark dispatch rounds (without --devices/--waiting: a matrix of 32, 128, 512 devices × 64, 256, 1000 waiting); " +
        "or the runtime's overhead over the raw ONNX Runtime calls of one generation; " +
        "or soak: serve the tiny pipeline in process at a steady rate and sample resident memory, heap, GCs, threads and descriptors over time; " +
        "or cluster: a coordinator and one worker process per node of emulated devices on loopback, the trace replayed through the HTTP API, measured vs simulated",
        Run);

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var what = args.Positional.Count > 0 ? args.Positional[0] : "";
        return what switch
        {
            "dispatch" => Task.FromResult(Dispatch(args, ct)),
            "runtime" => Task.FromResult(RuntimeBench.Run(args, ct)),
            "soak" => SoakBench.RunAsync(args, null, Console.Out, ct),
            "cluster" => ClusterBench.RunAsync(args, Console.Out, ct),
            _ => Fail(args, what),
        };
    }

    private static Task<int> Fail(CliArgs args, string what)
    {
        args.Error(what == "" ? "which benchmark: 'dispatch', 'runtime', 'soak' or 'cluster'" : $"unknown benchmark '{what}' (known: dispatch, runtime, soak, cluster)");
        args.ThrowIfInvalid();
        return Task.FromResult(2);
    }

    private static int Dispatch(CliArgs args, CancellationToken ct)
    {
        var devicesGiven = args.Has("devices");
        var waitingGiven = args.Has("waiting");
        var devices = args.Int("devices", 128, 1, 100_000);
        var waiting = args.Int("waiting", 256, 0, 1_000_000);
        var perNode = args.Int("devices-per-node", 8, 1, 64);
        var profileName = args.String("profile", "flux")!;
        var rounds = args.Int("rounds", 200, 1, 100_000);
        var busy = args.Double("busy", 0.5, 0.0, 1.0);
        var seed = args.ULong("seed", 42);
        var backendName = args.String("backend", null);
        var reference = args.Flag("reference");
        var referenceLimit = args.Double("reference-limit", 10.0, 0.001, 3600.0);
        var backends = BackendModule.all.ToList();
        if (backendName is not null)
        {
            var parsed = BackendModule.tryParse(backendName);
            if (FSharpOption<Backend>.get_IsNone(parsed))
                args.Error($"--backend: unknown MIP backend '{backendName}' (known: scip, cbc, highs, cp-sat)");
            else
                backends = [parsed.Value];
        }
        var profile = ReferenceProfiles.tryFind(profileName);
        if (FSharpOption<Profile>.get_IsNone(profile))
            args.Error($"--profile: no built-in profile '{profileName}' (known: sd3, flux, cogvideox, hunyuanvideo)");
        if (devicesGiven && devices % perNode != 0)
            args.Error($"--devices: {devices} is not a multiple of --devices-per-node {perNode}");
        args.ThrowIfInvalid();

        var configs = devicesGiven || waitingGiven
            ? new[] { (devices, waiting) }
            : new[] { (32, 64), (32, 256), (128, 64), (128, 256), (128, 1000), (512, 256), (512, 1000) };
        foreach (var (d, w) in configs)
        {
            if (ct.IsCancellationRequested) return 130;
            var results = Measure(profile!.Value, d, perNode, w, rounds, busy, seed, backends);
            for (var b = 0; b < backends.Count; b++)
            {
                var r = results[b];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"backend={BackendModule.name(backends[b])} devices={d} waiting={w} rounds={rounds} p50_ms={r.P50:F2} p99_ms={r.P99:F2} mip_share={r.MipShare:F3} optimal_share={r.OptimalShare:F3} mean_dispatched={r.MeanDispatched:F1} mean_prepare_ms={r.MeanPrepareMs:F2} mean_solver_ms={r.MeanSolverMs:F2} solver_decided_share={r.SolverDecidedShare:F3} variables={r.Variables:F0} constraints={r.Constraints:F0} mean_objective={r.MeanObjective:F2}"));
            }
            if (reference)
                foreach (var line in CompareReference(profile!.Value, d, perNode, w, rounds, busy, seed, backends, referenceLimit, ct))
                    Console.WriteLine(line);
        }
        return 0;
    }

    /// <param name="OptimalShare">Share of the MIP rounds whose solve proved optimality within the time limit.</param>
    /// <param name="SolverDecidedShare">Of the rounds that needed the solver, the share whose plan it made.</param>
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
        return new Setup(cost, cluster, Scenarios.placement(cost, cluster, scenario, 5.0), scenario);
    }

    private static DispatchSettings WithBackend(Backend backend, double timeLimit)
    {
        var d = DispatchSettingsModule.defaults;
        return new DispatchSettings(d.OnTimeReward, d.LateRewardBase, d.IdlePenalty, d.CommunicationPenalty, d.DevicePenalty, d.LatencyWeight,
            timeLimit, backend, d.CandidatesPerFreeDevice);
    }

    /// <summary>Solve settings with the given backend and time limit, no MIP start, otherwise the defaults.</summary>
    private static SolveSettings<TKey> Solving<TKey>(Backend backend, double limit)
    {
        var d = SolveSettings.create<TKey>(limit);
        return new SolveSettings<TKey>(d.TimeLimit, d.RelativeGap, backend, d.Threads, d.MipStart, d.ObjectiveTolerance);
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
                var aggregated = DispatchMip.model(snapshot, prepared.Free, prepared.Candidates);
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
    private static Result[] Measure(Profile profile, int devices, int perNode, int waiting, int rounds, double busy, ulong seed,
        IReadOnlyList<Backend> backends)
    {
        var setup = SetUp(profile, devices, perNode, waiting, busy);
        var settings = backends.Select(b => WithBackend(b, DispatchSettingsModule.defaults.TimeLimit)).ToArray();

        // warm-up: JIT, the solver libraries, caches
        for (var i = 0; i < 5; i++)
            foreach (var s in settings)
                Dispatcher.dispatch(setup.Snapshot(s, seed + 1_000_000UL + (ulong)i));

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
        }
        return Enumerable.Range(0, n).Select(b =>
        {
            Array.Sort(times[b]);
            return new Result(Percentile(times[b], 0.50), Percentile(times[b], 0.99), (double)mip[b] / rounds,
                mip[b] > 0 ? (double)optimal[b] / mip[b] : 0.0, dispatched[b] / rounds, mip[b] > 0 ? solver[b] / mip[b] : 0.0,
                mip[b] + fallback[b] > 0 ? (double)mip[b] / (mip[b] + fallback[b]) : 1.0,
                mip[b] > 0 ? variables[b] / mip[b] : 0.0, mip[b] > 0 ? constraints[b] / mip[b] : 0.0, prepare[b] / rounds, objective[b] / rounds);
        }).ToArray();
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    private static double Percentile(double[] sorted, double q)
    {
        var rank = (int)Math.Ceiling(q * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
