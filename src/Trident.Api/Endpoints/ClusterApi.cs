// GET /v1/cluster (devices, their placement types, resident models, busy or idle, queue, monitor window,
// scheduling settings), GET /v1/plan (the placement in force with its stage capacities, the initial one, the
// last dispatch rounds with their source, objective, gap and solve time, and the re-placement attempts), and
// GET /v1/plan/rounds (the kept rounds, newest first), GET /v1/plan/rounds/{n} (one kept round's snapshot and plan,
// for `trident replay`), and
// GET /v1/profile (the profile the cost model reads, in its file format: with /v1/cluster, what it takes to
// simulate this server — `trident loadgen --compare-sim` does).

using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Runtime.Devices;
using Trident.Runtime.Onnx;
using Trident.Scheduling;

namespace Trident.Api.Endpoints;

/// <summary>The cluster and plan routes.</summary>
public static class ClusterApi
{
    /// <summary>Maps <c>/v1/cluster</c> and <c>/v1/plan</c>.</summary>
    public static IEndpointRouteBuilder MapCluster(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("Cluster").ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/cluster", Cluster).WithName("GetCluster").WithSummary("Devices, placement, resident models, queue")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/plan", Plan).WithName("GetPlan").WithSummary("Placement with stage capacities and recent dispatch rounds")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/plan/rounds", Rounds).WithName("ListPlanRounds")
            .WithSummary("The dispatch rounds still in the history, newest first (each one's snapshot and plan: /v1/plan/rounds/{n})")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/plan/rounds/{n}", Round).WithName("GetPlanRound")
            .WithSummary("One dispatch round still in the history: its snapshot and plan as a trident-snapshot document (`trident replay` re-solves it)")
            .Produces<System.Text.Json.JsonElement>(StatusCodes.Status200OK, "application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound);
        group.MapGet("/profile", Profile).WithName("GetProfile").WithSummary("The profile of this machine the cost model reads (docs/profile-format.md)")
            .Produces<System.Text.Json.JsonElement>(StatusCodes.Status200OK, "application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        return app;
    }

    private static string StageName(Stage s) => StageModule.name(s);

    private static Results<Ok<ClusterDto>, ProblemHttpResult> Cluster(HttpContext http, ServerHost host) =>
        host.Ready is { } ready ? TypedResults.Ok(ClusterOf(ready)) : Problems.NotReady(http, host);

    /// <summary>The body of <c>GET /v1/cluster</c> for a ready server (also sent by the web view's stream).</summary>
    public static ClusterDto ClusterOf(ReadyServer ready)
    {
        var server = ready.Server;
        var state = server.State;
        var now = server.Clock.Now;
        var devices = server.Workers.Select(w =>
        {
            var d = w.Device;
            var current = w.Current is { } t
                ? new DeviceTaskDto(t.Kind.ToString().ToLowerInvariant(), t is RetypeTask ? null : t.Request.Value.ToString(CultureInfo.InvariantCulture))
                : null;
            var busyUntil = d.Id < state.BusyUntil.Length ? state.BusyUntil[d.Id] : now;
            var cluster = server.Cluster;
            var worker = ready.WorkerOf?.Invoke(d.Id);
            return new DeviceDto(d.Id, d.Node, d.Kind.ToString().ToLowerInvariant(), d.IntraOpThreads,
                state.Placement.Types.TryFind(d.DeviceId) is { } placed ? PlacementTypeModule.name(placed.Value) : PlacementTypeModule.name(w.Type), PlacementTypeModule.name(w.Type),
                w.Resident.Select(StageName).Order().ToArray(), current is not null, current, w.QueueLength,
                Math.Round(Math.Max(0, busyUntil - now) * 1000, 1),
                d.Id < state.Monitor.Utilisation.Count ? Math.Round(state.Monitor.Utilisation[d.Id], 4) : 0,
                Math.Round(d.Id < cluster.Devices.Length ? cluster.Devices[d.Id].Memory : d.MemoryGb, 3),
                DeviceName(d, worker), d.Kind == DeviceKind.Emulated ? "none (emulated: the cost model's times, no ONNX Runtime)" : d.Provider.Description, CanRun(d),
                state.IsOnline(d.Id), worker);
        }).ToArray();
        var m = state.Monitor;
        var monitor = new MonitorDto(m.WindowSeconds, m.Arrivals, m.ArrivalRate,
            m.Stages.Select(s => new StageFiguresDto(StageName(s.Stage), s.Completed, s.Throughput, s.MeanSeconds, s.Capacity)).ToArray(),
            double.IsFinite(m.Imbalance) ? m.Imbalance : null);
        var st = server.Setup.Settings;
        var cs = server.Cost.Settings;
        var settings = new SchedulingSettingsDto(server.Cost.Degrees.ToArray(), cs.EfficiencyThreshold,
            cs.Deadline is DeadlineRule.SloScale slo ? slo.scale : 0, st.RoundPeriodSeconds, st.Dispatch.TimeLimit, st.PlacementTimeLimitSeconds,
            new Dictionary<string, double>
            {
                ["window_s"] = st.Monitor.WindowSeconds,
                ["trigger_ratio"] = st.Monitor.TriggerRatio,
                ["cooldown_s"] = st.Monitor.CooldownSeconds,
                ["min_arrivals"] = st.Monitor.MinArrivals,
                ["min_gain"] = st.Monitor.MinGain,
            }, st.MaxBatch);
        return new ClusterDto(ready.Manifest.Name, server.Setup.Profile.Model.Value, server.Cluster.NodeCount, devices,
            new QueueDto(server.Waiting, st.QueueCapacity, state.Queue.Select(r => r.Value.ToString(CultureInfo.InvariantCulture)).ToArray()),
            server.Store.Count, monitor, settings, OrtEnvironment.Version,
            OrtEnvironment.EpDevices.Select(e => new EpDeviceDto(e.ExecutionProvider, e.ProviderVendor, e.DeviceType, e.DeviceVendor, e.VendorId, e.DeviceId)).ToArray());
    }

    /// <summary>A device's <c>device</c> in <c>GET /v1/cluster</c>: its ONNX Runtime device (<c>cpu</c>, <c>cuda:N</c>); an
    /// emulated device runs no ONNX Runtime (its provider's default, <c>cpu</c>, named this machine's CPU for a device on
    /// another machine): <c>emulated</c>, or <c>emulated on worker HOST:PORT</c> when <paramref name="worker"/> hosts it.</summary>
    public static string DeviceName(DeviceSpec d, string? worker) =>
        d.Kind != DeviceKind.Emulated ? d.Provider.Device : worker is null ? "emulated" : $"emulated on worker {worker}";

    // The providers ORT found for this device's kind of hardware (CPU slots: cpu; CUDA devices: gpu).
    private static string[] CanRun(DeviceSpec d)
    {
        var type = d.Kind == DeviceKind.Cuda ? "gpu" : "cpu";
        return OrtEnvironment.EpDevices.Where(e => e.DeviceType == type).Select(e => e.ExecutionProvider).Distinct().ToArray();
    }

    // it takes no query parameter (QueryParameters: a client sending limit=1 would otherwise get every round without knowing it)
    private static Results<Ok<PlanRoundsDto>, ProblemHttpResult> Rounds(HttpContext http, ServerHost host) =>
        host.Ready is { } ready
            ? TypedResults.Ok(new PlanRoundsDto(ready.Server.State.Round, ready.Server.Setup.Settings.RoundHistory, RoundsOf(ready.Server.State)))
            : Problems.NotReady(http, host);

    // The kept rounds, newest first.
    private static RoundDto[] RoundsOf(Trident.Runtime.Serving.LoopState state) =>
        state.Rounds.Reverse().Select(r => new RoundDto(r.Round, Math.Round(r.At, 3), r.Waiting, r.Dispatched, r.Dispatches, r.Source, r.Detail,
            r.Objective, r.Gap, r.SolveSeconds is { } s ? Math.Round(s * 1000, 3) : null, Math.Round(r.PlanSeconds * 1000, 3))).ToArray();

    private static Results<ContentHttpResult, ProblemHttpResult> Round(HttpContext http, ServerHost host, string n)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        // a positive integer beyond a long is a round that has not run (a 404 as any other), not a malformed number
        var digits = n.Length > 0 && n.All(char.IsAsciiDigit) && n.TrimStart('0').Length > 0;
        var beyond = false;
        if (!long.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var round) && digits) (round, beyond) = (long.MaxValue, true);
        else if (!digits || round < 1)
        {
            var message = $"'{n}' is not a round number (a positive integer, as GET /v1/plan/rounds lists them)";
            return TypedResults.Problem(new HttpValidationProblemDetails(new Dictionary<string, string[]> { ["n"] = [message] })
            {
                Status = StatusCodes.Status400BadRequest,
                Title = "Bad request",
                Detail = message,
            });
        }
        if (ready.Server.RoundDocument(round) is { } doc) return TypedResults.Text(doc, "application/json");
        var state = ready.Server.State;
        return TypedResults.Problem(NotKept(round, state.Round, [.. state.Rounds.Select(r => r.Round)], ready.Server.Setup.Settings.RoundHistory,
                beyond ? n.TrimStart('0') : null),
            statusCode: StatusCodes.Status404NotFound, title: "Not found");
    }

    /// <summary>Why round <paramref name="round"/> is not in the history, and which rounds are: the history keeps the
    /// last <paramref name="history"/> (<c>Trident:Serving:RoundHistory</c>) rounds that decided something — dispatched
    /// a request, ran the solver or failed; a round with nothing to decide (no request could start, no solve) is
    /// numbered but not kept.</summary>
    /// <param name="round">The round asked for (≥ 1).</param>
    /// <param name="latest">The number of the last round run (0 before the first).</param>
    /// <param name="kept">The kept rounds' numbers, in ascending order.</param>
    /// <param name="history">How many such rounds the history holds.</param>
    /// <param name="asked">The round as the client wrote it, when <paramref name="round"/> stands for a number too large
    /// for a long (then it is beyond every round).</param>
    public static string NotKept(long round, long latest, IReadOnlyList<long> kept, int history, string? asked = null)
    {
        var name = asked ?? round.ToString(CultureInfo.InvariantCulture);
        var why = round > latest ? $"round {name} has not run yet (the last round is {latest})"
            : kept.Count > 0 && round < kept[0] ? $"round {name} is older than the oldest round kept"
            : $"round {name} decided nothing (no request could start and the solver did not run), so it was not kept";
        var which = kept.Count == 0 ? "no round is kept yet" : $"kept: {(kept.Count == 1 ? "round" : "rounds")} {Ranges(kept)}";
        return $"{why}; {which} — the history holds the last {history} rounds (Trident:Serving:RoundHistory) that dispatched a request, "
            + "ran the solver or failed";
    }

    // "3, 5–9, 12" for round numbers.
    private static string Ranges(IReadOnlyList<long> rounds) => Trident.Runtime.Serving.ServingLoop.NumberRanges(rounds, "–");

    private static Results<ContentHttpResult, ProblemHttpResult> Profile(HttpContext http, ServerHost host) =>
        host.Ready is { } ready
            ? TypedResults.Text(ProfileFile.serialize(ready.Server.Setup.Profile), "application/json")
            : Problems.NotReady(http, host);

    private static PlacementDto Placement(PlacementPlan p) => new(
        p.Types.ToDictionary(kv => kv.Key.Value.ToString(CultureInfo.InvariantCulture), kv => PlacementTypeModule.name(kv.Value)),
        p.Capacity.ToDictionary(kv => StageName(kv.Key), kv => kv.Value),
        p.Alpha, p.Moves, PlanSourceModule.describe(p.Source));

    private static Results<Ok<PlanDto>, ProblemHttpResult> Plan(HttpContext http, ServerHost host) =>
        host.Ready is { } ready ? TypedResults.Ok(PlanOf(ready)) : Problems.NotReady(http, host);

    /// <summary>The body of <c>GET /v1/plan</c> for a ready server (also sent by the web view's stream).</summary>
    public static PlanDto PlanOf(ReadyServer ready)
    {
        var state = ready.Server.State;
        var rounds = RoundsOf(state);
        var replacements = state.Placements.Reverse().Select(c => new ReplacementDto(Math.Round(c.At, 3), c.Reason, c.Applied, c.Moves, c.AlphaBefore, c.AlphaAfter, c.Source)).ToArray();
        var preemptions = state.Preemptions.Reverse().Select(x => new PreemptionDto(x.Round, Math.Round(x.At, 3), x.Victim, x.Urgent, x.Step,
            Math.Round(x.Gain, 4), Math.Round(x.Loss, 4), x.Devices)).ToArray();
        var decodes = state.DecodePreemptions.Reverse().Select(x => new DecodePreemptionDto(x.Round, Math.Round(x.At, 3), x.Urgent, x.Paused, x.Device,
            x.Delayed, Math.Round(x.Gain, 4), Math.Round(x.Loss, 4))).ToArray();
        return new PlanDto(state.Round, Placement(state.Placement), Placement(ready.Server.InitialPlacement), rounds, replacements, preemptions, decodes);
    }
}
