using System.CommandLine;
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
    private static readonly Option<double> Target = Opt.Double("--target", "the SLO attainment to reach", 0.99, 0.0, 1.0);
    private static readonly Option<int> MaxDevices = Opt.Int("--max-devices", "the largest cluster tried", 1024, 1, 1_000_000);
    private static readonly Option<int> Parallel_ = Opt.Int("--parallel", "policies searched at once", 2, 1, 64);

    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("capacity",
            "find the fewest devices (whole nodes) at which each policy reaches the target SLO attainment, by bisection over simulations; "
            + "--devices is where the search starts (and what a generated workload's rate is scaled for)")
        {
            SimulateCommand.Workload_, Target, SimulateCommand.Policies, SimulateCommand.Model, MaxDevices,
            SimulateCommand.Rate, SimulateCommand.Steps, SimulateCommand.Count, SimulateCommand.Shapes, Parallel_,
        };
        foreach (var o in SimulateCommand.SettingsOptions) c.Add(o);
        return c.With(Run);
    }

    private static Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var errors = new CliErrors();
        var target = args.GetValue(Target);
        var settings = SimulateCommand.Settings(args, errors);
        var maxDevices = args.GetValue(MaxDevices);
        var parallel = args.GetValue(Parallel_);
        var policyNames = SimulateCommand.PolicyNames(args);
        if (maxDevices < settings.DevicesPerNode) errors.Add($"--max-devices: {maxDevices} is less than one node ({settings.DevicesPerNode} devices)");
        var input = SimulateCommand.Input(args, settings, errors);
        errors.ThrowIfAny();

        // the workload and B1's degree are fixed once, for the starting cluster
        var first = Experiment.prepare(settings, input!);
        if (first.IsError) { foreach (var e in first.ErrorValue) errors.Add(e); errors.ThrowIfAny(); }
        var fixedSettings = ExperimentSettingsModule.withB1Degree(settings.B1Degree is { } k ? k.Value : first.ResultValue.B1Default, settings);
        var fixedInput = WorkloadInput.NewFromTrace(first.ResultValue.Name, first.ResultValue.Trace);
        var policies = Experiment.policies(fixedSettings, first.ResultValue, ListModule.OfSeq(policyNames));
        if (policies.IsError) { foreach (var e in policies.ErrorValue) errors.Add($"--policies: {e}"); errors.ThrowIfAny(); }

        var perNode = settings.DevicesPerNode;
        var startNodes = Math.Max(1, settings.Devices / perNode);
        var maxNodes = maxDevices / perNode;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"capacity: {first.ResultValue.Name}, {first.ResultValue.Requests.Length} requests, target attainment {target:F3}; nodes of {perNode}, from {startNodes} nodes, at most {maxNodes}"));
        var total = Stopwatch.StartNew();
        var rows = new (Policy Policy, FSharpOption<int> Nodes, FSharpList<Probe> Probes)[policies.ResultValue.Length];
        var simulation = 0;
        using var progress = CliProgress.Start("capacity", null);
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
                    Interlocked.Increment(ref simulation);
                    progress.Step(string.Create(CultureInfo.InvariantCulture,
                        $"{policy.Name} {policy.Params} on {nodes * perNode} devices: attainment {r.Summary.SloAttainment:F3} ({sw.Elapsed.TotalSeconds:F1} s; {total.Elapsed.TotalSeconds:F0} s in all)"));
                    return r.Summary.SloAttainment;
                }
                var (nodes, probes) = Search.fewestNodes(FuncConvert.FromFunc<int, double>(Attainment), target, startNodes, maxNodes).ToValueTuple();
                rows[i] = (policy, nodes, probes);
            });
        }
        catch (OperationCanceledException) { return Task.FromResult(130); }
        progress.Dispose();

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
