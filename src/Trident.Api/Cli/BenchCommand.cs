using System.Diagnostics;
using System.Globalization;
using Microsoft.FSharp.Core;
using Trident.Scheduling;
using Trident.Scheduling.Dispatching;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident bench dispatch</c>: times dispatch rounds on generated snapshots (not a unit test).
/// For each configuration it draws <c>--rounds</c> snapshots from the seed, times
/// <c>Dispatcher.dispatch</c> on each (after a warm-up), and prints the median and 99th percentile
/// wall-clock time and the share of rounds the MIP decided.
/// </summary>
public static class BenchCommand
{
    public static Command Command { get; } = new(
        "bench",
        "bench dispatch [--devices D] [--waiting R] [--devices-per-node 8] [--profile flux] [--rounds 200] [--busy 0.5] [--seed S]\n" +
        "  bench runtime [--pipeline tiny] [--runs 12] [--max-runs 80] [--device cpu|cuda:N] [--width 256 --height 256] [--frames 1] [--steps 8] [--guidance G] [--threads T]",
        "benchmark dispatch rounds (without --devices/--waiting: a matrix of 32, 128, 512 devices × 64, 256, 1000 waiting); " +
        "or the runtime's overhead over the raw ONNX Runtime calls of one generation",
        Run);

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var what = args.Positional.Count > 0 ? args.Positional[0] : "";
        return what switch
        {
            "dispatch" => Task.FromResult(Dispatch(args, ct)),
            "runtime" => Task.FromResult(RuntimeBench.Run(args, ct)),
            _ => Fail(args, what),
        };
    }

    private static Task<int> Fail(CliArgs args, string what)
    {
        args.Error(what == "" ? "which benchmark: 'dispatch' or 'runtime'" : $"unknown benchmark '{what}' (known: dispatch, runtime)");
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
            var r = Measure(profile!.Value, d, perNode, w, rounds, busy, seed);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"devices={d} waiting={w} rounds={rounds} p50_ms={r.P50:F2} p99_ms={r.P99:F2} mip_share={r.MipShare:F3} mean_dispatched={r.MeanDispatched:F1} mean_solver_ms={r.MeanSolverMs:F2}"));
        }
        return 0;
    }

    private sealed record Result(double P50, double P99, double MipShare, double MeanDispatched, double MeanSolverMs);

    private static Result Measure(Profile profile, int devices, int perNode, int waiting, int rounds, double busy, ulong seed)
    {
        var cost = CostModelModule.create(CostSettingsModule.defaults, profile);
        var cluster = ClusterModule.uniform(devices / perNode, perNode, profile.DeviceMemory, BandwidthsModule.pcie4Server);
        var scenario = new Scenario(profile, devices / perNode, perNode, waiting, busy, profile.DefaultSteps);
        var placement = Scenarios.placement(cost, cluster, scenario, 5.0);
        var settings = DispatchSettingsModule.defaults;

        // warm-up: JIT, the solver library, caches
        for (var i = 0; i < 5; i++)
            Dispatcher.dispatch(Scenarios.snapshot(cost, cluster, placement, settings, scenario, seed + 1_000_000UL + (ulong)i));

        var times = new double[rounds];
        var mip = 0;
        double dispatched = 0, solver = 0;
        for (var i = 0; i < rounds; i++)
        {
            var snapshot = Scenarios.snapshot(cost, cluster, placement, settings, scenario, seed + (ulong)i);
            var sw = Stopwatch.StartNew();
            var plan = Dispatcher.dispatch(snapshot);
            sw.Stop();
            times[i] = sw.Elapsed.TotalMilliseconds;
            dispatched += plan.Dispatches.Length;
            if (plan.Source is PlanSource.Mip m) { mip++; solver += m.Item.SolveTime * 1000.0; }
        }
        Array.Sort(times);
        return new Result(Percentile(times, 0.50), Percentile(times, 0.99), (double)mip / rounds, dispatched / rounds, mip > 0 ? solver / mip : 0.0);
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    private static double Percentile(double[] sorted, double q)
    {
        var rank = (int)Math.Ceiling(q * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
