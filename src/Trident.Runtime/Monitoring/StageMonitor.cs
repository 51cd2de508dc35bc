// The live monitor. Re-placement uses the scheduling core's Monitor and AdjustOnDispatch exactly as the
// simulator does (design.md §7): the Monitor value records arrivals and completed stage tasks over a
// sliding window; AdjustOnDispatch.decide reads its imbalance (fastest / slowest of the arrival, encode,
// diffuse and decode rates), and when it reaches the threshold with enough samples asks the Orchestrator
// for a placement from the window's request statistics, taking it only when it serves more of the mix or
// raises α enough. The serving loop calls it with the simulator's spacing: again after 1 s when the
// trigger did not fire, after the cool-down when it did.
//
// Alongside, for operators, this class keeps the stage runs of the window: mean stage durations, device
// utilisation, and the stage capacities the current placement gives the recent mix.

using Microsoft.FSharp.Core;
using Trident.Scheduling;
using Trident.Scheduling.Placement;

namespace Trident.Runtime.Monitoring;

/// <summary>Settings of the monitor and the re-placement trigger (AdjustOnDispatch's, by the same names).</summary>
/// <param name="WindowSeconds">Length of the sliding window.</param>
/// <param name="TriggerRatio">Re-plan when the fastest of the arrival and stage rates is at least this multiple of the slowest.</param>
/// <param name="CooldownSeconds">Least time between two re-placement evaluations that fired.</param>
/// <param name="MinArrivals">Fewest arrivals in the window for the trigger to be read.</param>
/// <param name="MinGain">Relative α gain a new placement must bring when it covers no more of the mix.</param>
public sealed record MonitorSettings(double WindowSeconds, double TriggerRatio, double CooldownSeconds, int MinArrivals, double MinGain)
{
    /// <summary>The simulator's defaults (AdjustSettings.defaults): 60 s window, ratio 1.5, 30 s cool-down,
    /// 20 arrivals, 10 % gain.</summary>
    public static MonitorSettings Default { get; } = new(
        AdjustSettingsModule.defaults.Window, AdjustSettingsModule.defaults.Threshold, AdjustSettingsModule.defaults.Cooldown,
        AdjustSettingsModule.defaults.MinSamples, AdjustSettingsModule.defaults.MinGain);

    /// <summary>How long after an evaluation whose trigger did not fire the next one is made (the simulator's
    /// spacing: 1 s).</summary>
    public double RecheckSeconds { get; init; } = 1.0;

    /// <summary>The same settings with every duration (window, cool-down, re-check spacing) multiplied by
    /// <paramref name="timeScale"/>: emulated devices run the profile's times × the scale, so a window of 60 s
    /// of the reference devices' time is 60 × scale seconds of the server's clock (Trident:Emulation:TimeScale).</summary>
    public MonitorSettings Scaled(double timeScale) => this with
    {
        WindowSeconds = WindowSeconds * timeScale,
        CooldownSeconds = CooldownSeconds * timeScale,
        RecheckSeconds = RecheckSeconds * timeScale,
    };

    /// <summary>The scheduling core's settings, with the placement solve's time limit.</summary>
    public AdjustSettings ToAdjustSettings(double placementTimeLimit) =>
        new(WindowSeconds, TriggerRatio, CooldownSeconds, MinArrivals, MinGain, placementTimeLimit);
}

/// <summary>One stage's figures over the window.</summary>
/// <param name="Stage">The stage.</param>
/// <param name="Completed">Stage tasks finished in the window.</param>
/// <param name="Throughput">Completed per second of window (the Monitor's rate).</param>
/// <param name="MeanSeconds">Mean duration of those tasks.</param>
/// <param name="Capacity">Requests per second the current placement gives this stage for the recent mix.</param>
public sealed record StageFigures(Stage Stage, int Completed, double Throughput, double MeanSeconds, double Capacity);

/// <summary>What the monitor saw over its window.</summary>
/// <param name="WindowSeconds">The window (shorter while the server is younger than it).</param>
/// <param name="Arrivals">Arrivals in the window.</param>
/// <param name="ArrivalRate">Arrivals per second.</param>
/// <param name="Stages">Per-stage figures.</param>
/// <param name="Utilisation">Busy share of each device.</param>
/// <param name="Imbalance">Fastest / slowest of the arrival and stage rates: the re-placement trigger's input.</param>
public sealed record MonitorView(
    double WindowSeconds,
    int Arrivals,
    double ArrivalRate,
    IReadOnlyList<StageFigures> Stages,
    IReadOnlyList<double> Utilisation,
    double Imbalance);

/// <summary>Sliding-window monitor. The serving loop records into it; <see cref="View"/> may be called from any
/// thread (the HTTP routes and the metrics read it when asked, so that a round does not rebuild it), hence the lock.
/// The lock is never held across a placement solve.</summary>
public sealed class StageMonitor
{
    private readonly record struct Run(Stage Stage, int Device, bool Lead, double Start, double End);

    private readonly object _gate = new();
    private readonly Queue<Run> _runs = new();
    private int _devices;
    private Trident.Scheduling.Monitor _monitor;

    /// <summary>A monitor for <paramref name="devices"/> devices, observing from <paramref name="since"/>.</summary>
    public StageMonitor(MonitorSettings settings, int devices, double since)
    {
        Settings = settings;
        _devices = devices;
        _monitor = MonitorModule.create(settings.WindowSeconds, settings.MinArrivals, since);
    }

    /// <summary>The settings.</summary>
    public MonitorSettings Settings { get; }

    /// <summary>The scheduling core's monitor value (what AdjustOnDispatch reads).</summary>
    public Trident.Scheduling.Monitor Observations => _monitor;

    /// <summary>A request arrived.</summary>
    public void Arrived(Request request) { lock (_gate) _monitor = MonitorModule.arrived(request, _monitor); }

    /// <summary>A stage task finished successfully (a diffuse of degree k counts once).</summary>
    public void Completed(Stage stage, double at) { lock (_gate) _monitor = MonitorModule.completed(at, stage, _monitor); }

    /// <summary>A device was busy with a stage: as the task's own device (<paramref name="lead"/>) or, for
    /// a diffuse group, as one of the devices its lead reserved.</summary>
    public void Ran(Stage stage, int device, bool lead, double start, double end)
    {
        lock (_gate)
        {
            _runs.Enqueue(new Run(stage, device, lead, start, end));
            // the view trims too, but it is computed only when read: without this the runs of a server nobody
            // watches would pile up
            TrimRuns(end - Settings.WindowSeconds);
        }
    }

    // Drops the runs at the head of the queue that ended before `from` (under the lock).
    private void TrimRuns(double from)
    {
        while (_runs.Count > 0 && _runs.Peek().End < from) _runs.Dequeue();
    }

    /// <summary>The request mix and arrival rate of the window.</summary>
    public WorkloadStats Stats(double now) { lock (_gate) return MonitorModule.stats(now, _monitor); }

    /// <summary>Counts devices up to <paramref name="devices"/> (devices that joined).</summary>
    public void Grow(int devices) { lock (_gate) _devices = Math.Max(_devices, devices); }

    /// <summary>Stage capacities the placement gives the window's mix (empty mix: zero).</summary>
    public static IReadOnlyDictionary<Stage, double> Capacities(CostModel cost, PlacementPlan placement, WorkloadStats stats)
    {
        if (stats.Classes.IsEmpty) return StageModule.all.ToDictionary(s => s, _ => 0.0);
        var capacity = Capacity.ofTypes(Capacity.stageWork(cost, stats), placement.Types.Values);
        return StageModule.all.ToDictionary(s => s, s => capacity[s]);
    }

    /// <summary>The window's figures under the current placement.</summary>
    public MonitorView View(double now, CostModel cost, PlacementPlan placement)
    {
        lock (_gate) return ViewLocked(now, cost, placement);
    }

    private MonitorView ViewLocked(double now, CostModel cost, PlacementPlan placement)
    {
        var from = now - Settings.WindowSeconds;
        TrimRuns(from);
        _monitor = MonitorModule.trim(now, _monitor);
        var rates = MonitorModule.throughputs(now, _monitor);
        var stats = MonitorModule.stats(now, _monitor);
        var capacities = Capacities(cost, placement, stats);
        var window = Math.Max(1e-9, Math.Min(Settings.WindowSeconds, now - _monitor.Since));
        double Rate(Stage s) => s.IsEncode ? rates.Encode : s.IsDiffuse ? rates.Diffuse : rates.Decode;
        var stages = StageModule.all.Select(s =>
        {
            var leads = _runs.Where(r => r.Lead && r.Stage.Equals(s) && r.End >= from).ToArray();
            var completed = _monitor.Completions.Count(c => c.Item2.Equals(s));
            return new StageFigures(s, completed, Rate(s), leads.Length == 0 ? 0 : leads.Average(r => r.End - r.Start), capacities[s]);
        }).ToArray();
        var busy = new double[_devices];
        var start = Math.Max(_monitor.Since, from);
        foreach (var r in _runs)
            busy[r.Device] += Math.Max(0, Math.Min(r.End, now) - Math.Max(r.Start, start));
        return new MonitorView(window, rates.Samples, rates.Arrivals, stages,
            busy.Select(b => Math.Min(1.0, b / window)).ToArray(), rates.Imbalance);
    }

    /// <summary>Whether the window ending <paramref name="now"/> holds enough arrivals and observation for a placement to
    /// be planned for it (AdjustOnDispatch.confident); a placement made for a thinner window is provisional.</summary>
    public bool Confident(double now) { lock (_gate) return AdjustOnDispatch.confident(Settings.ToAdjustSettings(1.0), _monitor, now); }

    /// <summary>One Adjust-on-Dispatch evaluation, as the simulator makes it: over the window ending now,
    /// for the current placement and the statistics it was planned for (null: a provisional placement, no
    /// gate).</summary>
    public AdjustDecision Decide(double now, Cluster cluster, CostModel cost, PlacementPlan current, WorkloadStats? plannedFor, double placementTimeLimit)
    {
        Trident.Scheduling.Monitor window;
        lock (_gate) window = _monitor = MonitorModule.trim(now, _monitor);
        // the solve runs on the window as trimmed, outside the lock: the routes' view is not held up by it
        return AdjustOnDispatch.decide(Settings.ToAdjustSettings(placementTimeLimit),
            FuncConvert.FromFunc<PlacementInput, PlacementPlan>(Planner.place), cluster, cost, current,
            plannedFor is null ? FSharpOption<WorkloadStats>.None : FSharpOption<WorkloadStats>.Some(plannedFor), window, now);
    }
}
