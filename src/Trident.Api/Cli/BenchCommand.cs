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
/// constraints) of the solved rounds.
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

    /// <summary>The command: <c>bench dispatch|runtime|soak|cluster</c>.</summary>
    public static Command Command { get; } = new Command("bench", "benchmarks (not unit tests): dispatch rounds, the runtime's overhead, a soak, a cluster on loopback")
    {
        new Command("dispatch", "time dispatch rounds on generated snapshots with every MIP backend (without --devices/--waiting: a matrix of 32, 128, 512 devices × 64, 256, 1000 waiting)")
            { Devices, Waiting, PerNode, ProfileName, Rounds, Busy, Seed, BackendOption }.With(Dispatch),
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
        if (devicesGiven && devices % perNode != 0)
            throw new CliException([$"--devices: {devices} is not a multiple of --devices-per-node {perNode}"]);

        var configs = devicesGiven || waitingGiven
            ? new[] { (devices, waiting) }
            : new[] { (32, 64), (32, 256), (128, 64), (128, 256), (128, 1000), (512, 256), (512, 1000) };
        using var progress = CliProgress.Start("bench dispatch", configs.Length * rounds, TimeSpan.FromSeconds(1));
        foreach (var (d, w) in configs)
        {
            if (ct.IsCancellationRequested) return 130;
            var results = Measure(profile!.Value, d, perNode, w, rounds, busy, seed, backends,
                i => progress.Step(string.Create(CultureInfo.InvariantCulture, $"devices={d} waiting={w}: round {i + 1} of {rounds}")));
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
        IReadOnlyList<Backend> backends, Action<int> roundDone)
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
            roundDone(i);
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
