// The monitor: what the server observed over a sliding window, and the Adjust-on-Dispatch trigger
// (design.md §7). It records arrivals (for the request mix) and stage runs (for stage throughputs and
// device utilisation).
//
// Trigger. The stage throughputs that matter for re-placement are the capacities the current placement
// gives each stage for the recent mix (Capacity.ofTypes over the mix's per-stage work, the same model the
// Orchestrator optimises), so that a stage co-located with another counts the time the device spends on
// both. When the fastest stage's capacity is ≥ TriggerRatio × the slowest's, the cool-down has passed and
// the window holds at least MinArrivals requests, the serving loop asks the Orchestrator for a placement
// from the recent statistics, starting from the current one. Measured throughputs (completions per second)
// and utilisation are reported alongside for operators.

using Trident.Scheduling;
using Trident.Scheduling.Placement;

namespace Trident.Runtime.Monitoring;

/// <summary>Settings of the monitor and the re-placement trigger.</summary>
/// <param name="WindowSeconds">Length of the sliding window.</param>
/// <param name="TriggerRatio">Re-plan when the fastest stage's capacity is at least this multiple of the slowest's.</param>
/// <param name="CooldownSeconds">Least time between two re-placement attempts.</param>
/// <param name="MinArrivals">Fewest arrivals in the window for its mix to be trusted.</param>
public sealed record MonitorSettings(double WindowSeconds, double TriggerRatio, double CooldownSeconds, int MinArrivals)
{
    /// <summary>30 s window, ratio 1.5 (design.md §7), 30 s cool-down, 4 arrivals.</summary>
    public static MonitorSettings Default { get; } = new(30, 1.5, 30, 4);
}

/// <summary>One stage's figures over the window.</summary>
/// <param name="Stage">The stage.</param>
/// <param name="Completed">Stage runs finished in the window.</param>
/// <param name="Throughput">Completed per second of window.</param>
/// <param name="MeanSeconds">Mean duration of those runs.</param>
/// <param name="Capacity">Requests per second the current placement gives this stage for the recent mix.</param>
public sealed record StageFigures(Stage Stage, int Completed, double Throughput, double MeanSeconds, double Capacity);

/// <summary>What the monitor saw over its window.</summary>
public sealed record MonitorView(
    double WindowSeconds,
    int Arrivals,
    double ArrivalRate,
    IReadOnlyList<StageFigures> Stages,
    IReadOnlyList<double> Utilisation,
    double CapacityRatio);

/// <summary>Sliding-window monitor. Serving-loop thread only.</summary>
public sealed class StageMonitor
{
    private readonly record struct Run(Stage Stage, int[] Devices, double Start, double End);

    private readonly Queue<(double At, Request Request)> _arrivals = new();
    private readonly Queue<Run> _runs = new();
    private readonly int _devices;
    private double _lastAttempt = double.NegativeInfinity;

    /// <summary>A monitor for <paramref name="devices"/> devices.</summary>
    public StageMonitor(MonitorSettings settings, int devices)
    {
        Settings = settings;
        _devices = devices;
    }

    /// <summary>The settings.</summary>
    public MonitorSettings Settings { get; }

    /// <summary>A request arrived.</summary>
    public void Arrived(Request request, double at) => _arrivals.Enqueue((at, request));

    /// <summary>A stage ran on these devices from start to end.</summary>
    public void StageRan(Stage stage, int[] devices, double start, double end) => _runs.Enqueue(new Run(stage, devices, start, end));

    private void Trim(double now)
    {
        var from = now - Settings.WindowSeconds;
        while (_arrivals.Count > 0 && _arrivals.Peek().At < from) _arrivals.Dequeue();
        while (_runs.Count > 0 && _runs.Peek().End < from) _runs.Dequeue();
    }

    private double Window(double now) => Math.Max(1e-9, Math.Min(Settings.WindowSeconds, now));

    /// <summary>The request mix and arrival rate of the window.</summary>
    public WorkloadStats Stats(double now)
    {
        Trim(now);
        return WorkloadStatsModule.ofRequests(Window(now), Microsoft.FSharp.Collections.ListModule.OfSeq(_arrivals.Select(a => a.Request)));
    }

    /// <summary>Stage capacities the placement gives the window's mix (empty mix: zero).</summary>
    public static IReadOnlyDictionary<Stage, double> Capacities(CostModel cost, PlacementPlan placement, WorkloadStats stats)
    {
        if (stats.Classes.IsEmpty) return StageModule.all.ToDictionary(s => s, _ => 0.0);
        var work = Capacity.stageWork(cost, stats);
        var capacity = Capacity.ofTypes(work, placement.Types.Values);
        return StageModule.all.ToDictionary(s => s, s => capacity[s]);
    }

    /// <summary>Fastest over slowest stage capacity (1 when the mix is empty; infinity when a stage has none).</summary>
    public static double Ratio(IReadOnlyDictionary<Stage, double> capacities)
    {
        var max = capacities.Values.Max();
        var min = capacities.Values.Min();
        if (max <= 0) return 1.0;
        return min <= 0 ? double.PositiveInfinity : max / min;
    }

    /// <summary>The window's figures under the current placement.</summary>
    public MonitorView View(double now, CostModel cost, PlacementPlan placement)
    {
        var stats = Stats(now);
        var window = Window(now);
        var capacities = Capacities(cost, placement, stats);
        var stages = StageModule.all.Select(s =>
        {
            var runs = _runs.Where(r => r.Stage.Equals(s) && r.End >= now - Settings.WindowSeconds).ToArray();
            return new StageFigures(s, runs.Length, runs.Length / window, runs.Length == 0 ? 0 : runs.Average(r => r.End - r.Start), capacities[s]);
        }).ToArray();
        var busy = new double[_devices];
        var from = Math.Max(0, now - Settings.WindowSeconds);
        foreach (var r in _runs)
        {
            var overlap = Math.Max(0, Math.Min(r.End, now) - Math.Max(r.Start, from));
            foreach (var d in r.Devices) busy[d] += overlap;
        }
        return new MonitorView(window, _arrivals.Count, stats.ArrivalRate, stages,
            busy.Select(b => Math.Min(1.0, b / window)).ToArray(), Ratio(capacities));
    }

    /// <summary>Whether to ask for a new placement now, with the reason; an attempt starts the cool-down.</summary>
    public string? ShouldReplace(double now, CostModel cost, PlacementPlan placement)
    {
        if (now - _lastAttempt < Settings.CooldownSeconds) return null;
        var stats = Stats(now);
        if (_arrivals.Count < Settings.MinArrivals) return null;
        var ratio = Ratio(Capacities(cost, placement, stats));
        if (ratio < Settings.TriggerRatio) return null;
        _lastAttempt = now;
        return $"stage capacity ratio {ratio:F2} ≥ {Settings.TriggerRatio:F2} over the last {Window(now):F0} s ({_arrivals.Count} arrivals)";
    }
}
