using System.Diagnostics;
using System.Globalization;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Scheduling;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident capacity</c>: the fewest devices (whole nodes) at which each policy reaches a target
/// SLO attainment on a workload, by bisection over simulations (<c>Search.fewestNodes</c>), and
/// Trident's saving against each baseline. The workload is fixed (generated once for the starting
/// cluster); only the cluster size changes between probes. One progress line per simulation.
/// </summary>
public static class CapacityCommand
{
    public static Command Command { get; } = new(
        "capacity",
        "capacity --workload <name|file> [--target 0.99] [--policies all|B1,…,Trident] [--profile FILE] [--model flux] [--devices 128] "
        + "[--devices-per-node 8] [--max-devices 1024] [--rate r] [--steps n] [--count n] [--b1-degree k] [--slo-scale 4] [--seed 42] [--parallel 2]",
        "find the fewest devices (whole nodes) at which each policy reaches the target SLO attainment, by bisection over simulations; "
        + "--devices is where the search starts (and what a generated workload's rate is scaled for)",
        Run);

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var workload = args.Required("workload");
        var model = args.String("model", "flux")!;
        var target = args.Double("target", 0.99, 0.0, 1.0);
        var settings = SimulateCommand.Settings(args, 128);
        var maxDevices = args.Int("max-devices", 1024, 1, 1_000_000);
        var parallel = args.Int("parallel", 2, 1, 64);
        var policyNames = (args.String("policies", "all") ?? "all").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var rate = args.Has("rate") ? FSharpOption<double>.Some(args.Double("rate", 1, 1e-6, 1e6)) : FSharpOption<double>.None;
        var steps = args.Has("steps") ? FSharpOption<int>.Some(args.Int("steps", 1, 1, 10_000)) : FSharpOption<int>.None;
        var count = args.Has("count") ? FSharpOption<int>.Some(args.Int("count", 1, 1, 10_000_000)) : FSharpOption<int>.None;
        if (maxDevices < settings.DevicesPerNode) args.Error($"--max-devices: {maxDevices} is less than one node ({settings.DevicesPerNode} devices)");
        var input = SimulateCommand.Input(args, settings, workload, model, rate, steps, count);
        args.ThrowIfInvalid();

        // the workload and B1's degree are fixed once, for the starting cluster
        var first = Experiment.prepare(settings, input!);
        if (first.IsError) { foreach (var e in first.ErrorValue) args.Error(e); args.ThrowIfInvalid(); }
        var fixedSettings = ExperimentSettingsModule.withB1Degree(settings.B1Degree is { } k ? k.Value : first.ResultValue.B1Default, settings);
        var fixedInput = WorkloadInput.NewFromTrace(first.ResultValue.Name, first.ResultValue.Trace);
        var policies = Experiment.policies(fixedSettings, first.ResultValue, ListModule.OfSeq(policyNames));
        if (policies.IsError) { foreach (var e in policies.ErrorValue) args.Error($"--policies: {e}"); args.ThrowIfInvalid(); }

        var perNode = settings.DevicesPerNode;
        var startNodes = Math.Max(1, settings.Devices / perNode);
        var maxNodes = maxDevices / perNode;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"capacity: {first.ResultValue.Name}, {first.ResultValue.Requests.Length} requests, target attainment {target:F3}; nodes of {perNode}, from {startNodes} nodes, at most {maxNodes}"));
        var total = Stopwatch.StartNew();
        var rows = new (Policy Policy, FSharpOption<int> Nodes, FSharpList<Probe> Probes)[policies.ResultValue.Length];
        var gate = new object();
        var simulation = 0;
        try
        {
            Parallel.For(0, rows.Length, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = ct }, i =>
            {
                var policy = policies.ResultValue[i];
                double Attainment(int nodes)
                {
                    ct.ThrowIfCancellationRequested();
                    var s = ExperimentSettingsModule.withDevices(nodes * perNode, fixedSettings);
                    var p = Experiment.prepare(s, fixedInput).ResultValue;
                    var sw = Stopwatch.StartNew();
                    var r = Simulator.run(p.Config, policy, p.Requests);
                    lock (gate)
                        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"[{++simulation}] {policy.Name} {policy.Params} on {nodes * perNode} devices: attainment {r.Summary.SloAttainment:F3} ({sw.Elapsed.TotalSeconds:F1} s; {total.Elapsed.TotalSeconds:F0} s in all)"));
                    return r.Summary.SloAttainment;
                }
                var (nodes, probes) = Search.fewestNodes(FuncConvert.FromFunc<int, double>(Attainment), target, startNodes, maxNodes).ToValueTuple();
                rows[i] = (policy, nodes, probes);
            });
        }
        catch (OperationCanceledException) { return Task.FromResult(130); }

        var inv = CultureInfo.InvariantCulture;
        string Devices(FSharpOption<int> n) => n is { } v ? (v.Value * perNode).ToString(inv) : $"> {maxNodes * perNode}";
        Console.WriteLine($"{"policy",-8} {"params",-34} {"devices",9} {"nodes",6}  attainment there");
        foreach (var (policy, nodes, probes) in rows)
        {
            var at = nodes is { } v ? probes.First(p => (int)p.Value == v.Value).Attainment.ToString("F3", inv) : "–";
            Console.WriteLine($"{policy.Name,-8} {policy.Params,-34} {Devices(nodes),9} {(nodes is { } n ? n.Value.ToString(inv) : "–"),6}  {at}");
        }
        var trident = rows.FirstOrDefault(r => r.Policy.Name == "Trident");
        if (trident.Policy is not null && trident.Nodes is { } t)
        {
            var td = t.Value * perNode;
            foreach (var (policy, nodes, _) in rows.Where(r => r.Policy.Name != "Trident"))
            {
                var saving = nodes is { } b
                    ? string.Create(inv, $"{b.Value * perNode - td} devices ({100.0 * (b.Value * perNode - td) / (b.Value * perNode):F0} % of {b.Value * perNode})")
                    : $"at least {maxNodes * perNode + perNode - td} devices (it does not reach the target within {maxNodes * perNode})";
                Console.WriteLine($"Trident's saving vs {(policy.Name == "B1" ? "B1 " + policy.Params : policy.Name)}: {saving}");
            }
        }
        Console.Error.WriteLine(string.Create(inv, $"capacity: {simulation} simulations in {total.Elapsed.TotalSeconds:F1} s"));
        return Task.FromResult(0);
    }
}
