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
    private static readonly Option<double> Target = Opt.Double("--target", "the SLO attainment to reach (0.01 to 1: every cluster reaches 0)", 0.99, 0.01, 1.0);
    private static readonly Option<int> MaxDevices = Opt.Int("--max-devices", "the largest cluster tried", 1024, 1, 100_000);
    private static readonly Option<int> Parallel_ = Opt.Int("--parallel", "policies searched at once", 2, 1, 64);

    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("capacity",
            "find the fewest devices (whole nodes) at which each policy reaches the target SLO attainment, by bisection over simulations; "
            + "--devices is where the search starts and also fixes the load: a generated workload over --profile's shapes without --rate, and the gentd26-production day, "
            + "are scaled for --devices devices (70 % load, or the day compressed for them), so another --devices asks for another workload; "
            + "give --rate (or a trace file) for one that does not move (poisson, bursty and shifting without --profile, and the reference workloads, run at their own rate)")
        {
            SimulateCommand.Workload_, Target, SimulateCommand.Policies, SimulateCommand.Model, MaxDevices,
            SimulateCommand.Rate, SimulateCommand.Steps, SimulateCommand.Count, SimulateCommand.Shapes, Parallel_,
        };
        foreach (var o in SimulateCommand.SettingsOptions) c.Add(o);
        // the settings, the workload, the policies and --max-devices checked while parsing, so that their problems come in
        // one error with the values that did not parse (before, --target 2 hid an unknown workload until the next run)
        c.Check((values, errors) => Read(values, errors));
        return c.With(Run);
    }

    /// <summary>The settings and the workload, with every problem that needs no simulation in <paramref name="errors"/>.</summary>
    private static (ExperimentSettings Settings, WorkloadInput? Input, string? Note) Read(OptionValues args, CliErrors errors)
    {
        var settings = SimulateCommand.Settings(args, errors);
        var maxDevices = args.Get(MaxDevices);
        if (maxDevices < settings.DevicesPerNode) errors.Add($"--max-devices: {maxDevices} is less than one node ({settings.DevicesPerNode} devices)");
        SimulateCommand.CheckPolicies(args, errors);
        string? note = null;
        var input = args.Given(SimulateCommand.Workload_) ? SimulateCommand.Input(args, settings, errors, out note) : null;
        return (settings, input, note);
    }

    private static Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var errors = new CliErrors();
        var target = args.GetValue(Target);
        var parallel = args.GetValue(Parallel_);
        var policyNames = SimulateCommand.PolicyNames(OptionValues.Of(args));
        var (settings, input, note) = Read(OptionValues.Of(args), errors);
        var maxDevices = args.GetValue(MaxDevices);
        errors.ThrowIfAny();

        // the workload and B1's degree are fixed once, for the starting cluster
        var first = Experiment.prepare(settings, input!);
        if (first.IsOk && note is not null) first = FSharpResult<Prepared, FSharpList<string>>.NewOk(new Prepared(first.ResultValue.Name, note, first.ResultValue.Model, first.ResultValue.Config, first.ResultValue.Trace, first.ResultValue.Requests, first.ResultValue.B1Default));
        if (first.IsError) { foreach (var e in first.ErrorValue) errors.Add(e); errors.ThrowIfAny(); }
        var fixedSettings = ExperimentSettingsModule.withB1Degree(settings.B1Degree is { } k ? k.Value : first.ResultValue.B1Default, settings);
        var fixedInput = WorkloadInput.NewFromTrace(first.ResultValue.Name, first.ResultValue.Trace);
        var policies = Experiment.policies(fixedSettings, first.ResultValue, ListModule.OfSeq(policyNames));
        if (policies.IsError) { foreach (var e in policies.ErrorValue) errors.Add(SimulateCommand.PolicyError(e)); errors.ThrowIfAny(); }

        var perNode = settings.DevicesPerNode;
        var startNodes = Math.Max(1, settings.Devices / perNode);
        var maxNodes = maxDevices / perNode;
        var fp = first.ResultValue;
        var arrivals = fp.Requests.Select(r => r.Arrival).ToArray();
        var span = arrivals.Length > 1 ? arrivals.Max() - arrivals.Min() : 0.0;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"capacity: {fp.Name}, {Plural(fp.Requests.Length, "request")}, target attainment {target:F3}; {Plural(perNode, "device")} per node, from {Plural(startNodes, "node")} ({startNodes * perNode} devices), at most {Plural(maxNodes, "node")} ({maxNodes * perNode} devices, --max-devices)"));
        // the load is the workload's, fixed here (for the starting --devices where it is scaled to them): say what it is
        var workloadName = args.GetValue(SimulateCommand.Workload_);
        var scaled = workloadName == EvaluateCommand.ProductionWorkload
                     || (settings.Profile is not null && args.Maybe(SimulateCommand.Rate) is null && Workload.genericKinds.Contains(workloadName));
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"capacity: the workload is {(scaled ? $"fixed for --devices {settings.Devices}" : "its own at every size (not scaled to --devices)")}: {(span > 0 ? $"{(fp.Requests.Length - 1) / span:G4} req/s over {span:F0} s" : "one instant")}; {fp.Note}"));
        if (settings.Profile is { } prof && EvaluateCommand.Extrapolated(prof.Value, fp.Trace) is { } ex)
            Console.Error.WriteLine($"capacity: note: {ex}");
        if (Experiment.beyondNode(fp) is { } beyond) Console.Error.WriteLine($"capacity: note: {beyond.Value}");
        var total = Stopwatch.StartNew();
        var rows = new (Policy Policy, FSharpOption<int> Nodes, FSharpList<Probe> Probes)[policies.ResultValue.Length];
        var summaries = new System.Collections.Concurrent.ConcurrentDictionary<(int, int), Summary>();
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
                    summaries[(i, nodes)] = r.Summary;
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
        // a policy whose attainment stopped growing never reaches the target: no bound is claimed for it
        (double At, int From, int To)? Capped(FSharpOption<int> nodes, FSharpList<Probe> probes) =>
            Search.cappedAt(nodes, probes, maxNodes) is { } c ? (c.Value.Item1, c.Value.Item2, c.Value.Item3) : null;
        string Devices(FSharpOption<int> n, FSharpList<Probe> probes) =>
            n is { } v ? (v.Value * perNode).ToString(inv) : Capped(n, probes) is not null ? "never" : $"> {maxNodes * perNode}";
        Console.WriteLine($"{"policy",-8} {"params",-34} {"devices",9} {"nodes",6}  attainment there");
        for (var i = 0; i < rows.Length; i++)
        {
            var (policy, nodes, probes) = rows[i];
            var at = nodes is { } v ? probes.First(p => (int)p.Value == v.Value).Attainment.ToString("F3", inv)
                : Capped(nodes, probes) is { } c ? string.Create(inv, $"capped at {c.At:F3}") : "–";
            Console.WriteLine($"{policy.Name,-8} {policy.Params,-34} {Devices(nodes, probes),9} {(nodes is { } n ? n.Value.ToString(inv) : "–"),6}  {at}");
        }
        for (var i = 0; i < rows.Length; i++)
        {
            var (policy, nodes, probes) = rows[i];
            if (Capped(nodes, probes) is not { } c) continue;
            var why = summaries.TryGetValue((i, c.To), out var s)
                ? string.Create(inv, $"; there {s.OnTime} on time, {s.Late} late, {s.OutOfMemory} out of memory, {s.Unserved} unserved of {s.Requests}")
                : "";
            // 0 over two doublings: nothing on time at any size tried (e.g. deadlines below what any degree runs in)
            var capped = c.At > 0.0 ? string.Create(inv, $"attainment capped at {c.At:F3}: the same at") : "attainment 0.000, nothing on time, at";
            Console.WriteLine(string.Create(inv,
                $"{policy.Name} {policy.Params} never reaches the target ({capped} {c.From * perNode} to {c.To * perNode} devices{why})"));
        }
        var trident = rows.FirstOrDefault(r => r.Policy.Name == "Trident");
        if (trident.Policy is not null && trident.Nodes is { } t)
        {
            var td = t.Value * perNode;
            foreach (var (policy, nodes, probes) in rows.Where(r => r.Policy.Name != "Trident"))
            {
                var saving = nodes is { } b
                    ? string.Create(inv, $"{b.Value * perNode - td} devices ({100.0 * (b.Value * perNode - td) / (b.Value * perNode):F0} % of {b.Value * perNode})")
                    : Capped(nodes, probes) is { } c
                        ? string.Create(inv, $"no bound: {policy.Name} never reaches the target at any size (capped at {c.At:F3}), Trident does on {td} devices")
                        : $"at least {maxNodes * perNode + perNode - td} devices (it does not reach the target within {maxNodes * perNode})";
                Console.WriteLine($"Trident's saving vs {(policy.Name == "B1" ? "B1 " + policy.Params : policy.Name)}: {saving}");
            }
        }
        Console.Error.WriteLine(string.Create(inv, $"capacity: {simulation} simulations in {total.Elapsed.TotalSeconds:F1} s"));
        return Task.FromResult(0);
    }

    /// <summary>"1 node", "2 nodes".</summary>
    internal static string Plural(int n, string what) => n == 1 ? $"1 {what}" : $"{n} {what}s";
}
