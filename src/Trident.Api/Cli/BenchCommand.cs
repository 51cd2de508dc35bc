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
/// constraints) of the solved rounds.
/// The backends run on the same snapshots, one configuration after the other, so that their
/// numbers compare on a shared machine.
/// </summary>
public static class BenchCommand
{
    public static Command Command { get; } = new(
        "bench",
        "bench dispatch [--devices D] [--waiting R] [--devices-per-node 8] [--profile flux] [--rounds 200] [--busy 0.5] [--seed S] [--backend scip|cbc|highs|cp-sat]\n" +
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
                    $"backend={BackendModule.name(backends[b])} devices={d} waiting={w} rounds={rounds} p50_ms={r.P50:F2} p99_ms={r.P99:F2} mip_share={r.MipShare:F3} optimal_share={r.OptimalShare:F3} mean_dispatched={r.MeanDispatched:F1} mean_solver_ms={r.MeanSolverMs:F2} solver_decided_share={r.SolverDecidedShare:F3} variables={r.Variables:F0} constraints={r.Constraints:F0}"));
            }
        }
        return 0;
    }

    /// <param name="OptimalShare">Share of the MIP rounds whose solve proved optimality within the time limit.</param>
    /// <param name="SolverDecidedShare">Of the rounds that needed the solver, the share whose plan it made.</param>
    /// <param name="Variables">Mean variables of the solved rounds' models.</param>
    /// <param name="Constraints">Mean constraints of the solved rounds' models.</param>
    private sealed record Result(double P50, double P99, double MipShare, double OptimalShare, double MeanDispatched, double MeanSolverMs,
        double SolverDecidedShare, double Variables, double Constraints);

    /// <summary>
    /// Times every backend on the same snapshots, interleaved round by round (backend order rotating),
    /// so that a busy spell of a shared machine falls on all of them alike.
    /// </summary>
    private static Result[] Measure(Profile profile, int devices, int perNode, int waiting, int rounds, double busy, ulong seed,
        IReadOnlyList<Backend> backends)
    {
        var cost = CostModelModule.create(CostSettingsModule.defaults, profile);
        var cluster = ClusterModule.uniform(devices / perNode, perNode, profile.DeviceMemory, BandwidthsModule.pcie4Server);
        var scenario = new Scenario(profile, devices / perNode, perNode, waiting, busy, profile.DefaultSteps);
        var placement = Scenarios.placement(cost, cluster, scenario, 5.0);
        var d = DispatchSettingsModule.defaults;
        var settings = backends
            .Select(b => new DispatchSettings(d.OnTimeReward, d.LateRewardBase, d.IdlePenalty, d.CommunicationPenalty, d.DevicePenalty, d.LatencyWeight,
                d.TimeLimit, b, d.CandidatesPerFreeDevice))
            .ToArray();

        // warm-up: JIT, the solver libraries, caches
        for (var i = 0; i < 5; i++)
            foreach (var s in settings)
                Dispatcher.dispatch(Scenarios.snapshot(cost, cluster, placement, s, scenario, seed + 1_000_000UL + (ulong)i));

        var n = settings.Length;
        var times = new double[n][];
        var mip = new int[n];
        var optimal = new int[n];
        var dispatched = new double[n];
        var solver = new double[n];
        var fallback = new int[n];
        var variables = new double[n];
        var constraints = new double[n];
        for (var b = 0; b < n; b++) times[b] = new double[rounds];
        for (var i = 0; i < rounds; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var b = (i + j) % n;
                var snapshot = Scenarios.snapshot(cost, cluster, placement, settings[b], scenario, seed + (ulong)i);
                var sw = Stopwatch.StartNew();
                var plan = Dispatcher.dispatch(snapshot);
                sw.Stop();
                times[b][i] = sw.Elapsed.TotalMilliseconds;
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
                mip[b] > 0 ? variables[b] / mip[b] : 0.0, mip[b] > 0 ? constraints[b] / mip[b] : 0.0);
        }).ToArray();
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    private static double Percentile(double[] sorted, double q)
    {
        var rank = (int)Math.Ceiling(q * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
