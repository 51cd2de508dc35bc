// Busy-until estimates for the snapshot. The planner treats a primary device as free when its busy-until
// is ≤ now, so the estimate must never call a device free while it still has work: each device keeps the
// tasks given to it and not yet finished, with the cost model's durations. A device's busy-until is
//   now, when it has no task (it is free);
//   else the running task's start + its predicted duration (or, once it overruns the prediction, now plus
//   as long again as it has overrun so far — at least 1 ms, so it stays busy, and at most a tenth of its
//   duration), plus the predicted durations of the tasks queued behind it.
// The overrun rule: a task a few ms past its prediction is most likely about to report (its completion is on
// its way through the worker's messaging), so it is predicted free a few ms from now — within the queue
// horizon, so the next task can be queued behind it as the simulator, which sees it free at its predicted end,
// would start it. (A tenth of the duration, the rule before, held a device running a 10 s task 3 ms late
// busy for another second.)
// A gang (a diffuse group of two devices or more: the lead's diffuse and its Reserve tasks, one GangGate) that has
// not started (GangRunning: its lead's stage work began) waits for its last device: each of its entries is predicted
// to start at the gang's start, the latest time any of its devices is predicted to reach it, and to end its
// predicted duration later — also on a device whose worker already took it (seated, or the lead waiting for seats),
// which is held idle until then (IdleUntil: the snapshot's Snapshot.IdleUntil, live backfilling). A backfill's tasks
// on such a device (EnqueuedAhead) are scheduled ahead of the gang, as its worker's backfill lane runs them.
// The ledger is changed only by the serving loop, at round boundaries (arrivals of start/finish events).

using Trident.Runtime.Devices;
using Trident.Scheduling;

namespace Trident.Runtime.Serving;

/// <summary>Per-device tasks in flight, and the busy-until estimates they imply. Serving-loop thread only.</summary>
public sealed class DeviceLedger
{
    private sealed class Entry(long taskId, double predicted, TaskKind kind, double? readyAt, long? gang = null, bool lane = false)
    {
        public long TaskId { get; } = taskId;
        /// <summary>The gang it belongs to (its lead's task id), or null.</summary>
        public long? Gang { get; } = gang;
        /// <summary>Whether its gang started (the lead's stage work began).</summary>
        public bool GangRunning { get; set; }
        /// <summary>A backfill in its worker's lane (Worker.EnqueueAhead).</summary>
        public bool Lane { get; } = lane;
        /// <summary>A gang entry whose gang has not started.</summary>
        public bool Waiting => Gang is not null && !GangRunning;
        /// <summary>Predicted seconds; a paused decode's grows by the expedited decode's (Expedite).</summary>
        public double Predicted { get; set; } = predicted;
        public TaskKind Kind { get; } = kind;
        /// <summary>A decode's predicted latents-ready time (null: not known, or not a decode).</summary>
        public double? ReadyAt { get; set; } = readyAt;
        public double? StartedAt { get; set; }
        /// <summary>A decode put in ahead of the device's queue by decode preemption.</summary>
        public bool Expedited { get; set; }
        /// <summary>An expedited decode that runs inside the running decode it pauses.</summary>
        public bool Inside { get; set; }
    }

    /// <summary>One task's predicted run on a device (<see cref="Runs"/>).</summary>
    /// <param name="TaskId">The task.</param>
    /// <param name="Kind">Its kind.</param>
    /// <param name="Start">When it starts (server clock, seconds; its start when it started).</param>
    /// <param name="End">When it is predicted to end.</param>
    /// <param name="Started">Whether it runs now.</param>
    public readonly record struct Run(long TaskId, TaskKind Kind, double Start, double End, bool Started);

    private List<Entry>[] _devices;

    /// <summary>An empty ledger for <paramref name="deviceCount"/> devices.</summary>
    public DeviceLedger(int deviceCount)
    {
        _devices = Enumerable.Range(0, deviceCount).Select(_ => new List<Entry>()).ToArray();
    }

    /// <summary>A task was given to a device.</summary>
    public void Enqueued(int device, StageTask task) =>
        _devices[device].Add(new Entry(task.TaskId, task.PredictedSeconds, task.Kind, (task as DecodeTask)?.LatentsReadyAt, GangOf(task)));

    /// <summary>A task was given to a device's backfill lane (Worker.EnqueueAhead): it is scheduled after the tasks
    /// running there and the device's earlier lane tasks, ahead of everything else (the gang the device waits at).</summary>
    public void EnqueuedAhead(int device, StageTask task)
    {
        var list = _devices[device];
        var at = 0;
        for (var i = 0; i < list.Count; i++)
            if (list[i].Lane || (list[i].StartedAt is not null && !list[i].Waiting)) at = i + 1;
        list.Insert(at, new Entry(task.TaskId, task.PredictedSeconds, task.Kind, (task as DecodeTask)?.LatentsReadyAt, GangOf(task), lane: true));
    }

    private static long? GangOf(StageTask task) => task switch
    {
        DiffuseTask { Gate: { } g } => g.LeadTaskId,
        ReserveTask { Gate: { } g } => g.LeadTaskId,
        _ => null,
    };

    /// <summary>The gang led by task <paramref name="leadTaskId"/> started (its lead's stage work began: every seat
    /// taken); a task that leads no gang is ignored.</summary>
    public void GangRunning(long leadTaskId)
    {
        foreach (var list in _devices)
            foreach (var e in list)
                if (e.Gang == leadTaskId) e.GangRunning = true;
    }

    /// <summary>The device started the task.</summary>
    public void Started(int device, long taskId, double at)
    {
        foreach (var e in _devices[device])
            if (e.TaskId == taskId) { e.StartedAt = at; return; }
    }

    /// <summary>The device finished the task.</summary>
    public void Finished(int device, long taskId) => _devices[device].RemoveAll(e => e.TaskId == taskId);

    /// <summary>Tasks in flight on a device.</summary>
    /// <summary>Adds empty devices up to <paramref name="deviceCount"/> (devices that joined).</summary>
    public void Grow(int deviceCount)
    {
        if (deviceCount > _devices.Length)
            _devices = [.. _devices, .. Enumerable.Range(0, deviceCount - _devices.Length).Select(_ => new List<Entry>())];
    }

    public int InFlight(int device) => _devices[device].Count;

    /// <summary>Tasks in flight on a device that hold it in queue order: every kind but decode (a worker sets a
    /// decode whose latents are not ready aside, so it does not hold back the tasks behind it).</summary>
    public int Holding(int device) => _devices[device].Count(e => e.Kind != TaskKind.Decode);

    // when a started task is predicted to end (the overrun rule of the file note)
    private static double RunningEnd(Entry e, double start, double now)
    {
        var predictedEnd = start + e.Predicted;
        return predictedEnd > now ? predictedEnd : now + Math.Clamp(now - predictedEnd, 0.001, Math.Max(0.1 * e.Predicted, 0.001));
    }

    /// <summary>When the device is predicted to finish what it was given (now when it is free); a gang that has not
    /// started ends no earlier than its predicted start (the file note) plus its duration.</summary>
    public double BusyUntil(int device, double now) =>
        Walk(device, now, _devices[device].Any(e => e.Waiting) ? GangStarts(now) : null, null);

    // The device's tasks back to back in list order (the busy-until): a gang entry that has not started is reached at
    // the running time (`reached`) and starts no earlier than its gang (`starts`).
    private double Walk(int device, double now, IReadOnlyDictionary<long, double>? starts, Action<long, double>? reached)
    {
        var t = now;
        foreach (var e in _devices[device])
        {
            if (e.Waiting)
            {
                reached?.Invoke(e.Gang!.Value, t);
                var start = starts is not null && starts.TryGetValue(e.Gang!.Value, out var s) ? Math.Max(t, s) : t;
                t = start + Math.Max(e.Predicted, 0.001);
            }
            else t = e.StartedAt is { } start ? Math.Max(t, RunningEnd(e, start, now)) : t + Math.Max(e.Predicted, 0.001);
        }
        return t;
    }

    /// <summary>The predicted start of every gang that has not started, by its lead's task id: the latest time one of
    /// its devices is predicted to reach it (now for a device already there), the gangs queued earlier on the same
    /// devices starting first.</summary>
    public IReadOnlyDictionary<long, double> GangStarts(double now)
    {
        var starts = new Dictionary<long, double>();
        if (!_devices.Any(l => l.Any(e => e.Waiting))) return starts;
        // a gang's start depends on the starts of the gangs ahead of it on its devices: iterate to the fixed point (the
        // order of the gangs is the same on every device, so it is reached within as many passes as there are gangs)
        for (var pass = 0; pass < 16; pass++)
        {
            var reach = new Dictionary<long, double>();
            for (var d = 0; d < _devices.Length; d++)
                Walk(d, now, starts, (gang, at) => reach[gang] = Math.Max(at, reach.GetValueOrDefault(gang, now)));
            var same = reach.Count == starts.Count && reach.All(kv => starts.TryGetValue(kv.Key, out var x) && Math.Abs(x - kv.Value) < 1e-9);
            starts = reach;
            if (same) break;
        }
        return starts;
    }

    /// <summary>The devices held idle at a gang that has not started (Snapshot.IdleUntil, live backfilling): their
    /// worker took the gang's task (a seated member, or the lead waiting for its seats) and runs nothing else, and
    /// nothing waits in their backfill lane; each → the gang's predicted start (<see cref="GangStarts"/>), when that is
    /// after now. Their busy-until is at least the gang's predicted end.</summary>
    public IReadOnlyDictionary<int, double> IdleUntil(double now)
    {
        var idle = new Dictionary<int, double>();
        if (!_devices.Any(l => l.Any(e => e.Waiting && e.StartedAt is not null))) return idle;
        var starts = GangStarts(now);
        for (var d = 0; d < _devices.Length; d++)
        {
            var list = _devices[d];
            var seated = list.Find(e => e.Waiting && e.StartedAt is not null);
            if (seated is null || list.Any(e => !ReferenceEquals(e, seated) && (e.Lane || e.StartedAt is not null))) continue;
            if (starts.TryGetValue(seated.Gang!.Value, out var start) && start > now) idle[d] = start;
        }
        return idle;
    }

    /// <summary>The device's work as its worker will run it (Worker.cs): the tasks in queue order, except that a
    /// decode whose latents are not due yet (its <see cref="DecodeTask.LatentsReadyAt"/> after the time the device
    /// reaches it) is held aside, a held decode runs, oldest first, as soon as it is due and the device is free, and an
    /// expedited decode (<see cref="Expedite"/>) goes first. Returns when the work running or queued back to back from
    /// now ends (now when the device is free) and the predicted intervals (start, end) of what runs after a gap — the
    /// planner's Snapshot.Bookings for a decode-only device, whose busy-until would otherwise count a video's decode
    /// minutes before its latents exist.</summary>
    public (double BusyUntil, IReadOnlyList<(double Start, double End)> Later) Schedule(int device, double now)
    {
        var runs = Runs(device, now);
        var busy = now;
        var first = 0;
        // the running tasks' end: the busy-until at least
        while (first < runs.Count && runs[first].Started) busy = Math.Max(busy, runs[first++].End);
        // then every run that starts when the one before ends
        while (first < runs.Count && runs[first].Start <= busy + 1e-9)
        {
            busy = Math.Max(busy, runs[first].End);
            first++;
        }
        return (busy, runs.Skip(first).Select(r => (r.Start, r.End)).ToList());
    }

    /// <summary>Every task given to the device, as <see cref="Schedule"/> predicts it runs: the running ones first (from
    /// their start), then the queued ones in the worker's order. <paramref name="without"/>: a task left out, as if it
    /// had not been given (decode preemption weighs a decode against the device's other work).</summary>
    public IReadOnlyList<Run> Runs(int device, double now, long? without = null)
    {
        var t = now;
        var runs = new List<Run>();
        var queued = new List<Entry>();
        foreach (var e in _devices[device])
        {
            if (e.TaskId == without) continue;
            if (e.StartedAt is { } start)
            {
                var end = RunningEnd(e, start, now);
                runs.Add(new Run(e.TaskId, e.Kind, start, end, true));
                t = Math.Max(t, end);
            }
            else queued.Add(e);
        }
        // an expedited decode that pauses the running one runs inside it, at its next tile boundary (within a tile of
        // now: taken as now), and that one's prediction already counts it
        foreach (var e in queued.Where(e => e.Inside)) runs.Add(new Run(e.TaskId, e.Kind, now, now + Math.Max(e.Predicted, 0.001), false));
        queued.RemoveAll(e => e.Inside);
        // expedited decodes first (stable: queue order otherwise)
        var queue = new Queue<Entry>(queued.Where(e => e.Expedited).Concat(queued.Where(e => !e.Expedited)));
        var held = new List<Entry>();
        while (queue.Count > 0 || held.Count > 0)
        {
            var due = held.FindIndex(h => h.ReadyAt <= t);
            Entry next;
            if (due >= 0)
            {
                next = held[due];
                held.RemoveAt(due);
            }
            else if (queue.Count > 0)
            {
                next = queue.Dequeue();
                if (next.Kind == TaskKind.Decode && next.ReadyAt is { } ready && ready > t)
                {
                    held.Add(next);
                    continue;
                }
            }
            else
            {
                // nothing runnable: the device idles until the first held decode is due
                t = held.Min(h => h.ReadyAt!.Value);
                continue;
            }
            var seconds = Math.Max(next.Predicted, 0.001);
            runs.Add(new Run(next.TaskId, next.Kind, t, t + seconds, false));
            t += seconds;
        }
        return runs;
    }

    /// <summary>Decode preemption put decode <paramref name="taskId"/> in ahead of the device's queue (its latents are
    /// ready): it is scheduled first among the queued tasks; when it pauses the running decode <paramref name="paused"/>,
    /// it is predicted to run now, inside that one, whose predicted time grows by the expedited decode's.</summary>
    public void Expedite(int device, long taskId, long? paused)
    {
        var list = _devices[device];
        if (list.Find(e => e.TaskId == taskId) is not { } urgent) return;
        urgent.Expedited = true;
        urgent.ReadyAt = null;
        if (paused is { } p && list.Find(e => e.TaskId == p && e.StartedAt is not null) is { } running)
        {
            running.Predicted += urgent.Predicted;
            urgent.Inside = true;
        }
    }

    /// <summary>Busy-until of every device, by id.</summary>
    public double[] BusyUntilAll(double now)
    {
        var starts = GangStarts(now);
        return Enumerable.Range(0, _devices.Length).Select(d => Walk(d, now, starts.Count > 0 ? starts : null, null)).ToArray();
    }
}
