using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Microsoft.FSharp.Core;
using Trident.Runtime.Serving;
using Trident.Scheduling;
using Trident.Scheduling.Dispatching;
using Trident.Scheduling.Mip;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident replay FILE</c>: re-solves one dispatch round offline. FILE is a <c>trident-snapshot</c>
/// document — what <c>GET /v1/plan/rounds/{n}</c> returns, or what the server logs for a failed round.
/// Prints the round (time, waiting requests, free devices), the plan it gets now (one line per dispatch)
/// and its certificate: the plan's source and, when the solver made it, the backend, outcome, objective,
/// best bound, relative gap, solve time and model size; beside it the plan the server recorded, when the
/// document has one. <c>--lp OUT</c> writes the round's MIP as CPLEX LP text (none is written when the
/// round has nothing to decide); <c>--backend</c> and <c>--time-limit</c> override the recorded settings.
/// Exit codes: 0, 1 when the file cannot be read or is not a valid snapshot (every problem listed, each naming its
/// JSON path: <see cref="SnapshotJson.Read"/>), 2 for bad arguments.
/// </summary>
public static class ReplayCommand
{
    private static readonly Argument<string> File_ = new("FILE") { Description = "a trident-snapshot document (GET /v1/plan/rounds/{n}, or a failed round's logged snapshot)" };
    private static readonly Option<string> Lp = Opt.String("--lp", "write the round's MIP as CPLEX LP text to this file", helpName: "OUT.lp");
    private static readonly Option<string> BackendOption = Opt.Choice("--backend", "the MIP backend to solve with instead of the recorded one (the round is then solved even when the greedy plan is proven optimal without the solver)", null, Backends);
    private static readonly Option<double> TimeLimit = Opt.Double("--time-limit", "the solver's time limit in seconds instead of the recorded one (the round is then solved, as with --backend)", null, 0.001, 3600.0);

    /// <summary>The MIP backends' names, as --backend takes them.</summary>
    internal static string[] Backends => [.. BackendModule.all.Select(BackendModule.name)];

    /// <summary>The command.</summary>
    public static Command Command { get; } = new Command("replay",
        "re-solve a saved dispatch round (GET /v1/plan/rounds/{n}, or a failed round's logged snapshot) and print its plan and certificate")
        { File_, Lp, BackendOption, TimeLimit }.With(Run);

    private static Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var lp = args.GetValue(Lp);
        var errors = new CliErrors();
        OutputPath.Check("--lp", lp, directory: false, create: false, errors);
        errors.ThrowIfAny();
        var timeLimit = args.Maybe(TimeLimit);
        Backend? backend = args.GetValue(BackendOption) is { } name ? BackendModule.tryParse(name).Value : null;
        var file = args.GetValue(File_)!;
        string text;
        Snapshot snapshot;
        if (Directory.Exists(file))
        {
            // File.ReadAllText says "Access to the path is denied" of a folder
            Console.Error.WriteLine($"trident replay: '{file}' is a folder; give a trident-snapshot file");
            return Task.FromResult(1);
        }
        try
        {
            text = File.ReadAllText(file);
            snapshot = SnapshotJson.Read(text);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            Console.Error.WriteLine($"trident replay: {file}: {e.Message}");
            return Task.FromResult(1);
        }
        var d = snapshot.Settings;
        if (backend is not null || timeLimit is not null)
        {
            d = DispatchSettingsModule.withBackend(backend ?? d.Backend, DispatchSettingsModule.withTimeLimit(timeLimit ?? d.TimeLimit, d));
            snapshot = new Snapshot(snapshot.Now, snapshot.Cluster, snapshot.Cost, snapshot.Placement, snapshot.BusyUntil, snapshot.Queue, snapshot.Completed, d, snapshot.Bookings, snapshot.IdleUntil);
        }

        var inv = CultureInfo.InvariantCulture;
        var free = snapshot.BusyUntil.Count(b => b <= snapshot.Now);
        Console.WriteLine(string.Create(inv,
            $"round at {snapshot.Now:F3} s: {snapshot.Queue.Length} waiting, {free} of {snapshot.BusyUntil.Length} devices free; backend {BackendModule.name(d.Backend)}, time limit {d.TimeLimit * 1000:F0} ms"));
        // a backend or time limit asked for is a request for that solver's certificate: solved even when the greedy plan
        // is proven optimal without it (as most rounds of a lightly loaded server are)
        var plan = backend is not null || timeLimit is not null ? Dispatcher.solve(snapshot) : Dispatcher.dispatch(snapshot);
        foreach (var x in plan.Dispatches)
            Console.WriteLine(string.Create(inv,
                $"  request {x.Request.Value}: k={x.Degree} {x.Vr} diffuse on [{string.Join(",", x.Diffuse.Devices.Select(g => g.Value))}] {x.Diffuse.Start:F3}–{x.Diffuse.Finish:F3} s, encode on {(x.Encode.Devices.IsEmpty ? "none (done before)" : x.Encode.Devices.Head.Value.ToString(inv))}, decode on {x.Decode.Devices.Head.Value}, finish {x.Decode.Finish:F3} s{(x.OnTime ? " on time" : " late")}, reward {x.Reward:F2}{(plan.Batched.TryFind(x.Request) is { } mates ? $", batch with {string.Join(",", mates.Value.Select(m => m.Value))} (times above: the lead alone; the batch runs them stretched)" : "")}"));
        var requests = plan.Dispatches.Length + plan.Dispatches.Sum(x => plan.Batched.TryFind(x.Request) is { } mates ? mates.Value.Length : 0);
        // the objective is not the rewards' sum: it also charges μ per free primary device left idle (docs/policies.md,
        // "Dispatch objective"), which a newcomer reading "reward 999.25" beside "objective 998.250" could not tell
        Console.WriteLine(string.Create(inv, $"plan: {Dispatched(requests, plan.Dispatches.Length)}, objective {plan.Objective:F3} (the rewards of the requests started now, less μ = {d.IdlePenalty:0.###} per free primary device left idle)"));
        switch (plan.Source)
        {
            case PlanSource.Mip m:
                var st = m.Item;
                Console.WriteLine(string.Create(inv,
                    $"certificate: backend={st.Backend} outcome={st.Outcome} objective={st.Objective:F3} bound={st.Bound:F3} gap={st.Gap:F4} solve_ms={st.SolveTime * 1000:F2} variables={st.Variables} constraints={st.Constraints}"));
                break;
            case PlanSource.Greedy g:
                Console.WriteLine($"certificate: no solve — greedy ({g.reason})");
                break;
        }
        Recorded(text);
        if (lp is not null)
        {
            var model = Dispatcher.roundModel(snapshot);
            if (FSharpOption<Model<DispatchKey>>.get_IsNone(model))
                Console.WriteLine("no LP written: the round has nothing to decide");
            else
            {
                OutputPath.Write("--lp", lp, () => File.WriteAllText(lp, Trident.Scheduling.Mip.Model.toLpText(model.Value)));
                Console.WriteLine($"LP written to {lp}");
            }
        }
        return Task.FromResult(0);
    }

    // The plan the server made from this snapshot, when the document carries it.
    private static void Recorded(string text)
    {
        using var doc = JsonDocument.Parse(text);
        if (!doc.RootElement.TryGetProperty("plan", out var p))
        {
            Console.WriteLine("recorded: no plan (a failed round, or a snapshot written without one)");
            return;
        }
        var n = p.TryGetProperty("dispatches", out var ds) ? ds.GetArrayLength() : 0;
        var requests = n == 0 ? 0 : n + ds.EnumerateArray().Sum(d => d.TryGetProperty("batch_mates", out var m) ? m.GetArrayLength() : 0);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"recorded: {Dispatched(requests, n)}, objective {p.GetProperty("objective").GetDouble():F3}, {p.GetProperty("source").GetString()}"));
    }

    /// <summary>"4 requests in 1 dispatch": requests (each batch member counted, as <c>/v1/plan</c>'s
    /// <c>recent_rounds[].dispatched</c> counts them) and the dispatches (a batch is one, as <c>recent_rounds[].dispatches</c>
    /// counts them) that carry them.</summary>
    public static string Dispatched(int requests, int dispatches) =>
        $"{requests} {(requests == 1 ? "request" : "requests")} in {dispatches} {(dispatches == 1 ? "dispatch" : "dispatches")}";
}
