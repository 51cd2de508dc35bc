// The serving loop, in vLLM's shape with Trident's pure planner:
//   1. apply what happened since the last round — arrivals, cancellations, task starts and finishes —
//      to the loop's own state (queue, device ledger, monitor); nothing else changes that state;
//   2. Adjust-on-Dispatch, as the simulator runs it (AdjustOnDispatch.decide over the Monitor; evaluated
//      again 1 s after a round where it did not fire, a cool-down after one where it did): a new placement
//      changes only metadata now; each changed worker gets a Retype task behind its queued work, so work
//      planned under the old placement runs first, and loads its new models lazily;
//   3. build the snapshot (now, cluster, cost model, placement, busy-until from the ledger, queue) and
//      plan with Trident's policy, the round prepared once (Dispatcher.prepare → dispatchPrepared): the greedy
//      plan when it provably reaches the optimum, else the dispatch MIP — at once, not at the next
//      period: the loop is one thread, so the next solve starts as soon as the previous one ended and
//      events (arrivals, finishes) arrived meanwhile are batched into it. Every plan is work-conserving
//      (Greedy.conserve): no free device stays idle while a waiting request could run on it;
//   4. form batches (Dispatching.Batching: each dispatch leads waiting requests of the same pipeline, shape
//      and steps, up to the profile's best batch capped by ServingSettings.MaxBatch) and enqueue their tasks
//      on the workers — one encode, diffuse and decode run per batch; undispatched requests stay queued.
//   5. step-boundary preemption (issue 12; only with ServingSettings.Preemption): the requests still waiting
//      and the running diffuse tasks of jobs alone go to Preemption.decide (the planner's rule: an urgent
//      request takes a victim's devices when the objective gains more than the victim loses — with
//      PreemptionSettings.ForLatency any waiting request, weighed before the round's dispatch too, else one that
//      misses its deadline by waiting; at most MaxSuspensions per request). The victim's SuspendSignal is set and the urgent
//      request's tasks are queued behind it on its devices; the victim stops at its next step boundary, and
//      when the loop hears of it (PlanExecutor's suspended callback) the job turns Suspended and its
//      resumption is queued on the same group, behind the urgent work (PlanExecutor.ResumeAsync) — or, with
//      PreemptionSettings.ResumeElsewhere, on the group of its type and degree that is free first
//      (Preemption.resumeGroup, the simulator's rule). A running segment with the resumption of another
//      suspended job queued behind it (Preemption's Behind: the urgent work placed by an earlier preemption, with
//      its victim queued after it) is a victim too: that resumption is withdrawn (DiffuseTask.Withdrawal: it ends
//      when its worker reaches it, before any step) and queued again once the new victim's own resumption is,
//      so the devices run the urgent work, the victim, then the job withdrawn, in the simulator's order.
// Rounds run on every event (arrival, cancellation, task start or finish) and at least every period: the
// period bounds how seldom a round runs, never how often.
// Every round kept in the history (the last RoundHistory rounds that dispatched a request, ran the solver or failed;
// a round with nothing to decide is not kept; the same list as GET /v1/plan's) keeps its snapshot
// and plan too, so `GET /v1/plan/rounds/{n}` gives it as a trident-snapshot document and `trident replay`
// re-solves it offline; a failed round is kept that way automatically, and also logged with its serialised
// snapshot. A failed round's requests stay queued and the next round runs as usual. A solver time-out is not a
// failure: the dispatcher falls back to greedy and the plan says so.

using System.Collections.Immutable;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Runtime.Devices;
using Trident.Runtime.Monitoring;
using Trident.Scheduling;
using Trident.Scheduling.Dispatching;
using Trident.Scheduling.Placement;

namespace Trident.Runtime.Serving;

/// <summary>One dispatch round, as <c>GET /v1/plan</c> shows it.</summary>
/// <param name="Round">Round number.</param>
/// <param name="At">Server-clock time.</param>
/// <param name="Waiting">Requests in the queue when it started.</param>
/// <param name="Dispatched">Requests it routed, each member of a batch counted.</param>
/// <param name="Dispatches">The dispatches that carried them: a batch (its lead and mates) is one.</param>
/// <param name="Source"><c>mip</c>, <c>greedy</c> or <c>failed</c>.</param>
/// <param name="Detail">How the plan was made (solver outcome, or the greedy reason, or the error).</param>
/// <param name="Objective">The plan's objective.</param>
/// <param name="Gap">The MIP's relative gap (0 when optimal).</param>
/// <param name="SolveSeconds">The solver's own time (MIP rounds).</param>
/// <param name="PlanSeconds">Wall-clock time of the whole planning call.</param>
public sealed record RoundRecord(long Round, double At, int Waiting, int Dispatched, int Dispatches, string Source, string Detail,
    double? Objective, double? Gap, double? SolveSeconds, double PlanSeconds);

/// <summary>One re-placement attempt.</summary>
/// <param name="At">Server-clock time.</param>
/// <param name="Reason">What triggered it.</param>
/// <param name="Applied">Whether the new placement replaced the old one.</param>
/// <param name="Moves">Devices whose type changed.</param>
/// <param name="AlphaBefore">α of the old placement for the recent mix.</param>
/// <param name="AlphaAfter">α of the new placement for the recent mix.</param>
/// <param name="Source">How the new placement was made.</param>
public sealed record PlacementChange(double At, string Reason, bool Applied, int Moves, double AlphaBefore, double AlphaAfter, string Source);

/// <summary>One step-boundary preemption the loop carried out (issue 12).</summary>
/// <param name="Round">The round after which it was decided.</param>
/// <param name="At">Server-clock time of the decision (seconds).</param>
/// <param name="Victim">The suspended request.</param>
/// <param name="Urgent">The request that took its devices.</param>
/// <param name="Step">The victim's steps done in all at the boundary the decision expected (the victim stops at its
/// first boundary after the signal; its <c>suspended</c> event gives the step it stopped at).</param>
/// <param name="Gain">The urgent request's gain in the dispatch objective (Preemption.decide).</param>
/// <param name="Loss">What the victim and the requests delayed with it lose.</param>
/// <param name="Devices">The victim's devices, given to the urgent request.</param>
public sealed record PreemptionRecord(long Round, double At, long Victim, long Urgent, int Step, double Gain, double Loss, IReadOnlyList<int> Devices);

/// <summary>One decode preemption the loop decided (issue 12): the decode of <c>Urgent</c> expedited on decode device
/// <c>Device</c> — between two tiles of <c>Paused</c>'s decode when one is named, else first after the decode running
/// there — ahead of <c>Delayed</c> decodes, because the dispatch objective's gain exceeded their loss (docs/policies.md,
/// "Decode preemption"). A decision, not a pause: the named decode may end before its next tile boundary
/// (<c>trident_decode_pauses_total</c> counts the pauses made).</summary>
/// <param name="Round">The last round when it was decided.</param>
/// <param name="At">Server-clock time of the decision (seconds).</param>
/// <param name="Urgent">The request whose decode goes first.</param>
/// <param name="Paused">The request whose running decode it pauses, or null.</param>
/// <param name="Device">The decode device.</param>
/// <param name="Delayed">Decodes it delays.</param>
/// <param name="Gain">The urgent request's gain in the dispatch objective.</param>
/// <param name="Loss">What the delayed decodes lose.</param>
public sealed record DecodePreemptionRecord(long Round, double At, long Urgent, long? Paused, int Device, int Delayed, double Gain, double Loss);

/// <summary>What the serving loop's warm-up did before its first round (ServingLoop.WarmUp): the planning half of a
/// round run on synthetic requests, nothing carried out.</summary>
/// <param name="Requests">Synthetic requests planned (one per servable class of the planned mix).</param>
/// <param name="Dispatched">How many of them the plan dispatched.</param>
/// <param name="Seconds">Wall-clock time it took.</param>
/// <param name="Detail">How the plan was made, or why nothing was planned.</param>
public sealed record WarmUpRecord(int Requests, int Dispatched, double Seconds, string Detail);

/// <summary>Why a request was still waiting after a dispatch round (Admissible.waitReasons: the round's own routes
/// and free devices).</summary>
/// <param name="Round">The round.</param>
/// <param name="Reason">No route, no admissible option free, or lost to a more urgent one.</param>
public sealed record WaitingReason(long Round, WaitReason Reason);

/// <summary>What the loop publishes after each round for readers on other threads.</summary>
/// <param name="Round">The last round's number.</param>
/// <param name="Placement">The placement in force.</param>
/// <param name="QueueOrder">The waiting requests in the order a round considers them (priority, then least slack:
/// <c>Admissible.urgencyOrder</c>), sorted when first read — as the monitor window, not after every loop pass; see
/// <see cref="Queue"/>.</param>
/// <param name="BusyUntil">When each device finishes the work given to it (server clock, by device id).</param>
/// <param name="Rounds">The recent dispatch rounds.</param>
/// <param name="Placements">The recent re-placement attempts.</param>
/// <param name="MonitorWindow">The monitor's window, computed when first read (as of that read, not of the round:
/// rebuilding it after every round cost ≈ 4 % of a busy server's CPU); see <see cref="Monitor"/>.</param>
/// <param name="Waits">For each request still queued after the last round that ran, why it waits (by request id).</param>
public sealed record LoopState(
    long Round,
    PlacementPlan Placement,
    Lazy<ImmutableArray<RequestId>> QueueOrder,
    ImmutableArray<double> BusyUntil,
    ImmutableArray<RoundRecord> Rounds,
    ImmutableArray<PlacementChange> Placements,
    Lazy<MonitorView> MonitorWindow,
    IReadOnlyDictionary<long, WaitingReason> Waits)
{
    /// <summary>The monitor's window as of the first read of this state (the same value for every later read of it).</summary>
    public MonitorView Monitor => MonitorWindow.Value;

    /// <summary>The waiting requests, the one the next round considers first first (a job's queue position counts
    /// this order).</summary>
    public ImmutableArray<RequestId> Queue => QueueOrder.Value;

    /// <summary>Whether each device (by id) is in the cluster now; a device whose worker left is out until it
    /// comes back. Empty means every device is in.</summary>
    public ImmutableArray<bool> Online { get; init; } = [];

    /// <summary>The recent step-boundary preemptions, oldest first (at most the round history's length).</summary>
    public ImmutableArray<PreemptionRecord> Preemptions { get; init; } = [];

    /// <summary>The recent decode preemptions decided, oldest first (at most the round history's length).</summary>
    public ImmutableArray<DecodePreemptionRecord> DecodePreemptions { get; init; } = [];

    /// <summary>Why no device is in the cluster now (every worker left), or null when one is (always in one
    /// process).</summary>
    public string? NoDevice { get; init; }

    /// <summary>Whether device <paramref name="device"/> is in the cluster now.</summary>
    public bool IsOnline(int device) => Online.IsDefaultOrEmpty || device >= Online.Length || Online[device];
}

/// <summary>The serving loop: rounds of snapshot → plan → enqueue.</summary>
public sealed class ServingLoop : IWorkerObserver, IAsyncDisposable
{
    private abstract record LoopEvent;
    private sealed record Arrival(Job Job) : LoopEvent;
    private sealed record Arrivals(IReadOnlyList<Job> Jobs) : LoopEvent;
    private sealed record Cancellation(Job Job) : LoopEvent;
    private sealed record TaskStarted(int Device, long TaskId, double At) : LoopEvent;
    private sealed record TaskFinished(int Device, StageTask Task, double Start, double End, bool Ok) : LoopEvent;
    private sealed record DevicesLeft(int[] Devices, string Reason) : LoopEvent;
    private sealed record DevicesBack(int[] Devices) : LoopEvent;
    private sealed record DevicesJoined(IReadOnlyList<DeviceSpec> Devices, Func<DeviceSpec, PlacementType, Worker> Create, Cluster Grown) : LoopEvent;
    private sealed record Requeue(Job Job, DeviceLostException Lost, ResumePoint? Resume) : LoopEvent;
    private sealed record TaskRunning(long TaskId, double At) : LoopEvent;
    private sealed record Suspended(SuspendedJob Job) : LoopEvent;

    // A diffuse segment of a job alone that preemption may suspend: its group, its route's decode device, the
    // steps done before it, the planner's seconds per step, the decode after it and its planned finish.
    private sealed record Segment(Job Job, DiffuseTask Task, int[] Group, int DecodeDevice, int StepsBefore, double StepSeconds, double TailSeconds,
        double PlannedFinish)
    {
        public double? RunningSince { get; set; }
    }

    /// <summary>How many times a request's work may be lost with a device before it fails instead of being
    /// queued again.</summary>
    public const int MaxRequeues = 3;

    private readonly Channel<LoopEvent> _events = Channel.CreateUnbounded<LoopEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly ServerClock _clock;
    // every device the loop ever had, under its first id (devices that left keep their slot)
    private Cluster _cluster;
    private readonly List<bool> _up = new();
    private LiveView _view;
    private readonly List<string> _membership = new();
    private double? _emptySince;
    // why the last devices left (NoDevice)
    private string _lastLeft = "";
    private volatile IReadOnlyList<Worker> _workers = [];
    private readonly CostModel _cost;
    // the rounds' dispatch settings: the server's, with the live queue horizon (ServingSettings.QueueHorizonSeconds)
    private readonly DispatchSettings _dispatch;
    private readonly ServingSettings _settings;
    private readonly ServingMetrics _metrics;
    private readonly JobStore _store;
    private readonly ILogger _log;
    private readonly DeviceLedger _ledger;
    private readonly StageMonitor _monitor;
    private readonly List<Job> _queue = new();
    private readonly Dictionary<long, double> _started = new();
    // suspendable diffuse segments by job id (preemption): from their enqueue until they end (a suspended one
    // until its resumption is queued)
    private readonly Dictionary<long, Segment> _segments = new();
    private readonly List<SuspendedJob> _suspended = new();
    // withdrawn resumptions (Preemption's Behind): request → the suspended segment whose own resumption it goes behind
    private readonly Dictionary<long, DiffuseTask> _withdrawn = new();
    // jobs alone whose diffuse ended since the last round (decode preemption on): their decodes are weighed next round
    private readonly List<RequestId> _latentsReady = new();
    private readonly Queue<RoundRecord> _rounds = new();
    private readonly Queue<PreemptionRecord> _preemptions = new();
    private readonly Queue<DecodePreemptionRecord> _decodePreemptions = new();
    private readonly Queue<PlacementChange> _placements = new();
    // the snapshot and plan (null for a failed round) of each round in _rounds, by round number; read by
    // other threads under the lock
    private readonly Dictionary<long, (Snapshot Snapshot, DispatchPlan? Plan)> _roundInputs = new();
    private PlacementPlan _placement;
    // why each request still queued after the last round waits (replaced whole after each round: readers keep theirs)
    private IReadOnlyDictionary<long, WaitingReason> _waits = new Dictionary<long, WaitingReason>();
    // the request statistics the placement in force was planned for (Adjust-on-Dispatch compares the recent mix with it)
    private WorkloadStats _plannedFor;
    // the placement in force was planned for a window too thin to trust (AdjustOnDispatch.confident): no gate
    private bool _provisional;
    private long _round;
    private double _nextAdjust;
    private double _lastEviction;
    private int _waiting;
    private long _waitingMicros;
    private volatile LoopState _state;
    private Task? _running;

    /// <summary>Creates the loop; <see cref="Attach"/> gives it its workers (created with this loop as their
    /// observer, see <see cref="TridentServer"/>) and <see cref="Start"/> starts it.</summary>
    public ServingLoop(ServerClock clock, Cluster cluster, CostModel cost, PlacementPlan placement, WorkloadStats plannedFor, ServingSettings settings,
        ServingMetrics metrics, JobStore store, ILogger log)
    {
        _plannedFor = plannedFor;
        _clock = clock;
        _cluster = cluster;
        _cost = cost;
        _placement = placement;
        _settings = settings;
        var d = settings.Dispatch;
        // the planner prices batches up to the server's batch limit (docs/policies.md, "Batches in the dispatch MIP")
        _dispatch = DispatchSettingsModule.withMaxBatch(settings.MaxBatch,
            DispatchSettingsModule.withQueueHorizon(Math.Max(d.QueueHorizon, settings.QueueHorizonSeconds), d));
        _metrics = metrics;
        _store = store;
        _log = log;
        var n = ClusterModule.deviceCount(cluster);
        _up.AddRange(Enumerable.Repeat(true, n));
        _view = LiveView.Of(cluster, _up);
        _ledger = new DeviceLedger(n);
        _monitor = new StageMonitor(settings.Monitor, n, clock.Now);
        _state = new LoopState(0, placement, new Lazy<ImmutableArray<RequestId>>(ImmutableArray<RequestId>.Empty), [.. new double[n]], [], [], MonitorWindow(placement), _waits);
    }

    /// <summary>The workers, by device id (set by <see cref="Attach"/>; devices that join later are appended,
    /// devices that leave keep theirs).</summary>
    public IReadOnlyList<Worker> Workers => _workers;

    /// <summary>Every device the loop has (devices that left included), by id.</summary>
    public Cluster Cluster => Volatile.Read(ref _cluster);

    private PlanExecutor? _plans;

    /// <summary>Gives the loop its workers (created with this loop as observer).</summary>
    public void Attach(IReadOnlyList<Worker> workers)
    {
        if (Workers.Count > 0) throw new InvalidOperationException("workers are already attached");
        _workers = workers;
        _plans = new PlanExecutor(workers, _ledger, _clock, _settings.VideoFramesPerSecond,
            (job, lost, resume) => _events.Writer.TryWrite(new Requeue(job, lost, resume)),
            suspended => _events.Writer.TryWrite(new Suspended(suspended)))
        {
            Suspendable = _settings.Preemption is not null,
            DecodePauses = _settings.Preemption is { MaxSuspensions: > 0, DecodeTileFrames: > 0 } p ? (p.DecodeTileFrames, p.MaxSuspensions) : (0, 0),
            // encode and decode of a batch run item by item where the profile's batch points show no gain
            BatchPays = (stage, shape, b) => CostModelModule.batchFactor(_cost, stage, shape, 1, b) < b,
        };
    }

    /// <summary>The state after the last round.</summary>
    public LoopState State => _state;

    /// <summary>Requests waiting for dispatch (accepted and not yet routed or removed).</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>The cost model's time (seconds) of every request waiting for dispatch, each served alone at its
    /// reference degree (CostModel.tRef): kept as requests come and go, so that a 429's Retry-After does not
    /// scan the job store.</summary>
    public double WaitingSeconds => Math.Max(0, Interlocked.Read(ref _waitingMicros)) / 1e6;

    // Counts a job into (+1) or out of (−1) the waiting work (Waiting, WaitingSeconds).
    private void CountWaiting(Job job, int sign)
    {
        Interlocked.Add(ref _waiting, sign);
        if (job.ReferenceMicros < 0)
            job.ReferenceMicros = (long)Math.Round(1e6 * CostModelModule.tRef(_cost, job.Request.Shape, job.Request.Steps));
        Interlocked.Add(ref _waitingMicros, sign * job.ReferenceMicros);
    }

    /// <summary>The cost model the loop plans with.</summary>
    public CostModel Cost => _cost;

    /// <summary>Warms the dispatch path up (<see cref="WarmUp"/>, on the caller's thread, so that a server reports
    /// ready after it), then starts the rounds.</summary>
    public void Start()
    {
        if (_plans is null) throw new InvalidOperationException("attach the workers first");
        WarmedUp = WarmUp();
        _running = Task.Run(RunAsync);
    }

    /// <summary>What the warm-up before the first round did (null before <see cref="Start"/>).</summary>
    public WarmUpRecord? WarmedUp { get; private set; }

    // The warm-up: the planning half of a dispatch round — snapshot, Dispatcher.prepare and dispatchPrepared, batching,
    // wait reasons, Adjust-on-Dispatch's evaluation — run once on synthetic requests (one of each class of the mix the
    // initial placement was planned for that this cluster can serve, arriving now on idle devices) before the first
    // round. Nothing it plans is carried out, counted or kept: no job, task, round, metric or trace. Found on a fresh
    // `trident serve`: the first request on an idle server waited 0.4–0.9 s in the queue and missed a 64², 2-step
    // request's deadline, because its round was the first to run this code (JIT compilation and the planner's first-use
    // initialisation: prepare ≈ 170 ms, plan ≈ 100 ms, batching ≈ 30 ms, Adjust-on-Dispatch ≈ 65 ms on the 2-core
    // machine); later rounds took 1–3 ms. When the greedy plan cannot prove the optimum (a mix of several classes) the
    // warm-up solves the dispatch MIP, within its time limit, as a round would. A failure here is logged and the loop
    // starts all the same (the first real round then pays the cost, as before).
    private WarmUpRecord WarmUp()
    {
        var watch = Stopwatch.StartNew();
        if (_view.Cluster is not { } cluster) return new WarmUpRecord(0, 0, 0, "no device in the cluster");
        try
        {
            var now = _clock.Now;
            var model = _cost.Profile.Model;
            var classes = _plannedFor.Classes.Select(c => (c.Shape, c.Steps)).ToList();
            // a mix without classes (none planned for): the profile's smallest shape, one step
            if (classes.Count == 0 && _cost.Profile.Diffuse.Points.Select(p => p.Shape).OrderBy(x => x.PixelFrames).FirstOrDefault() is { } smallest)
                classes.Add((smallest, 1));
            var requests = classes.Distinct().Where(c => CostModelModule.unservableOn(_cost, cluster, c.Shape) is null)
                .Select((c, i) => new Request(RequestId.NewRequestId(-1 - i), model, c.Shape, Math.Max(1, c.Steps), now,
                    CostModelModule.deadline(_cost, now, c.Shape, Math.Max(1, c.Steps)), FSharpOption<int>.None))
                .ToArray();
            if (requests.Length == 0) return new WarmUpRecord(0, 0, watch.Elapsed.TotalSeconds, "no class of the planned mix is servable");
            var queue = ListModule.OfSeq(requests);
            var snapshot = SnapshotAt(now, cluster, queue);
            var plan = Dispatcher.dispatchPrepared(Dispatcher.prepare(snapshot));
            // the synthetic requests are no jobs: they batch as same-shape requests of no multi-image request
            foreach (var batch in FormBatches(plan, queue, new Dictionary<long, Job>(), snapshot)) _view.ToPhysical(batch.Dispatch);
            _ = Admissible.waitReasons(snapshot, plan);
            // Adjust-on-Dispatch's first evaluation (MaybeReplaceAsync), on a monitor of its own that saw the synthetic
            // arrivals; its placement function keeps the current placement, so no placement is ever solved here
            var current = _view.ToView(_placement);
            var window = requests.Aggregate(MonitorModule.create(_settings.Monitor.WindowSeconds, _settings.Monitor.MinArrivals, now),
                (m, r) => MonitorModule.arrived(r, m));
            _ = AdjustOnDispatch.decide(_settings.Monitor.ToAdjustSettings(_settings.PlacementTimeLimitSeconds),
                FuncConvert.FromFunc<PlacementInput, PlacementPlan>(_ => current), cluster, _cost, current,
                FSharpOption<WorkloadStats>.Some(_plannedFor), window, now);
            _ = AdjustOnDispatch.alphaOf(cluster, _cost, current.Types, MonitorModule.stats(now, window));
            var record = new WarmUpRecord(requests.Length, plan.Dispatches.Length, watch.Elapsed.TotalSeconds, PlanSourceModule.describe(plan.Source));
            _log.LogInformation("Warm-up: the dispatch path planned {Requests} synthetic request(s) ({Dispatched} dispatched, {Source}) in {Ms:F0} ms; nothing was run",
                record.Requests, record.Dispatched, record.Detail, record.Seconds * 1000);
            return record;
        }
        catch (Exception ex)
        {
            _log.LogWarning(ex, "Warm-up of the dispatch path failed; the first round will be slower");
            return new WarmUpRecord(0, 0, watch.Elapsed.TotalSeconds, "failed: " + ex.Message);
        }
    }

    // Same-shape batching (issue 12): each dispatch of the plan leads a batch of waiting requests it can share its runs
    // with (Batching.form). The images of one multi-image request (a group) batch with each other only, up to MaxBatch
    // whatever the profile's best batch, so that they run as one batch when batching is on; a job re-queued to resume
    // after a lost device runs alone (its kept output is its own). A request without a job in `jobs` (the warm-up's
    // synthetic ones) batches as a plain same-shape request. A backfill on a device held at a gang (Backfill) keeps the
    // planner's batch: a larger one would run into the gang, which is not in the plan (Batching.form's own check sees
    // only the plan's booked work).
    private FSharpList<Batch> FormBatches(DispatchPlan plan, FSharpList<Request> queue, IReadOnlyDictionary<long, Job> jobs, Snapshot snapshot)
    {
        var maxBatch = _settings.MaxBatch;
        var groups = jobs.Values.Where(j => j.Group is not null).GroupBy(j => j.Group!.Value).ToDictionary(g => g.Key, g => g.Count());
        Job? JobOf(Request r) => jobs.GetValueOrDefault(r.Id.Value);
        var backfills = plan.Dispatches.Where(d => Backfill(d, snapshot) is not null).Select(d => d.Request.Value).ToHashSet();
        return Batching.form(_cost,
            FuncConvert.FromFunc<Request, int, int>((lead, k) =>
            {
                if (backfills.Contains(lead.Id.Value))
                    return 1 + (plan.Batched.TryFind(lead.Id) is { } mine ? mine.Value.Length : 0);
                var limit = Batching.limit(_cost, maxBatch, lead.Shape, k);
                return JobOf(lead)?.Group is { } g && maxBatch > 1 ? Math.Max(limit, Math.Min(maxBatch, groups[g])) : limit;
            }),
            FuncConvert.FromFunc<Request, Request, bool>((a, b) => (JobOf(a), JobOf(b)) switch
            {
                (null, null) => true,
                ({ } x, { } y) => x.Resume is null && y.Resume is null && x.Group == y.Group && BatchInputs.Compatible(x.Input, y.Input),
                _ => false,
            }),
            // the images of one multi-image request run as one batch whatever their deadlines
            FuncConvert.FromFunc<Request, Request, bool>((a, b) => JobOf(a)?.Group is { } g && JobOf(b)?.Group == g),
            plan, queue).Item1;
    }

    // A backfill (live backfilling, docs/policies.md "Backfilling"): a dispatch of degree 1 whose diffuse devices are all
    // held idle at a gang that has not started (the snapshot's IdleUntil, view ids) and whose tasks on them all end by
    // the gang's predicted start; its view devices, or null for any other dispatch. (Its encode may run elsewhere: a
    // lane task is taken only once its input is there, Worker.EnqueueAhead.)
    private static int[]? Backfill(Dispatch d, Snapshot snapshot)
    {
        if (d.Degree != 1 || d.Diffuse.Devices.IsEmpty || snapshot.IdleUntil.IsEmpty) return null;
        foreach (var dev in d.Diffuse.Devices)
        {
            if (!snapshot.IdleUntil.TryGetValue(dev, out var until)) return null;
            foreach (var a in new[] { d.Encode, d.Diffuse, d.Decode })
                if (a.Devices.Contains(dev) && a.Finish > until + 1e-6) return null;
        }
        return [.. d.Diffuse.Devices.Select(x => x.Value)];
    }

    /// <summary>Hands an accepted job to the next round.</summary>
    public void Submit(Job job)
    {
        CountWaiting(job, +1);
        _events.Writer.TryWrite(new Arrival(job));
    }

    /// <summary>Hands jobs to the next round together: the round sees all of them or none (the images of one
    /// multi-image request, so that they can run as one batch).</summary>
    public void Submit(IReadOnlyList<Job> jobs)
    {
        foreach (var job in jobs) CountWaiting(job, +1);
        _events.Writer.TryWrite(new Arrivals(jobs));
    }

    /// <summary>Devices <paramref name="devices"/> left the cluster (their worker died or left): the next round
    /// takes them out of the planners' view and re-plans the placement on the devices that are left; their
    /// tasks fail with <see cref="DeviceLostException"/> and their requests are queued again. Idempotent.</summary>
    public void Left(IReadOnlyList<int> devices, string reason) => _events.Writer.TryWrite(new DevicesLeft([.. devices], reason));

    /// <summary>Devices that left are back (their worker restarted at the same address): the next round puts
    /// them back in the view and re-plans the placement. Idempotent.</summary>
    public void Back(IReadOnlyList<int> devices) => _events.Writer.TryWrite(new DevicesBack([.. devices]));

    /// <summary>New devices joined (a worker started after the server): the next round gives them the ids
    /// after the last one, creates their workers with <paramref name="create"/> (on the loop's thread, with the
    /// type the re-planned placement gives them) and re-plans. <paramref name="devices"/> must carry those ids
    /// (<see cref="Cluster"/>'s count onwards, in order) and new node ids after the cluster's.</summary>
    public void Joined(IReadOnlyList<DeviceSpec> devices, Func<DeviceSpec, PlacementType, Worker> create, Cluster grown) =>
        _events.Writer.TryWrite(new DevicesJoined(devices, create, grown));

    /// <summary>Tells the next round that a job was cancelled (it leaves the queue then).</summary>
    public void Cancelled(Job job) => _events.Writer.TryWrite(new Cancellation(job));

    void IWorkerObserver.Started(Worker worker, StageTask task)
    {
        _events.Writer.TryWrite(new TaskStarted(worker.Device.Id, task.TaskId, _clock.Now));
    }

    // A job's stage timing starts when its work does (inputs ready, not cancelled), not when its worker
    // reaches the task, so a skipped stage reports no timing.
    void IWorkerObserver.Running(Worker worker, StageTask task)
    {
        var now = _clock.Now; // once for the task: the requests of a batch share its start
        foreach (var request in task.Requests) _store.Find(request)?.StageStarted(task.Kind, now, worker.Device.Id);
        if (task is DiffuseTask { Suspend: not null } or DiffuseTask { From: not null } or DiffuseTask { Gate: not null })
        {
            _events.Writer.TryWrite(new TaskRunning(task.TaskId, _clock.Now));
            if (task is DiffuseTask { From: not null }) _metrics.Resumptions.Add(1);
        }
    }

    void IWorkerObserver.DecodePaused(Worker worker, DecodeTask paused, DecodeTask urgent)
    {
        _metrics.DecodePauses.Add(1);
        using (_store.Find(urgent.Request)?.Trace.Enter())
            _log.LogInformation("Decode preemption: the decode of request {Paused} pauses between two tiles ({Count} time(s)) on device {Device} for the decode of request {Urgent}",
                paused.Request.Value, paused.Pauses, worker.Device.Id, urgent.Request.Value);
    }

    void IWorkerObserver.Finished(Worker worker, StageTask task, Exception? error)
    {
        var now = _clock.Now;
        var job = task is RetypeTask ? null : _store.Find(task.Request);
        if (task is not RetypeTask)
            foreach (var request in task.Requests) _store.Find(request)?.StageFinished(task.Kind, now, worker.Device.Id, error, JobTrace.OutputBytes(task));
        _events.Writer.TryWrite(new TaskFinished(worker.Device.Id, task, double.NaN, now, error is null));
        if (error is not null && error is not OperationCanceledException)
            using (job?.Trace.Enter())
                _log.LogWarning(error, "Task {TaskId} ({Kind}) of {Request} failed on device {Device}", task.TaskId, task.Kind, task.Request, worker.Device.Id);
    }

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                // at least every period, and at once on every event
                var wait = _settings.RoundPeriodSeconds;
                using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
                {
                    timeout.CancelAfter(TimeSpan.FromSeconds(wait));
                    try
                    {
                        await _events.Reader.WaitToReadAsync(timeout.Token);
                    }
                    catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
                    {
                        // the period elapsed: a periodic round
                    }
                }
                if (_stop.IsCancellationRequested) break;
                await RoundAsync();
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                // Never reached for planner failures (RoundAsync handles those); this keeps the loop alive
                // through anything else, and says so.
                _log.LogError(ex, "Serving round {Round} failed outside planning; the loop goes on", _round);
            }
        }
    }

    private async Task RoundAsync()
    {
        var now = _clock.Now;
        Drain(now);
        if (_membership.Count > 0) await ReplanMembershipAsync(now);
        if (_suspended.Count > 0) await ResumeSuspendedAsync(now);
        if (_latentsReady.Count > 0 && _settings.Preemption is { } decodes) ExpediteDecodes(now, decodes);
        // segments of jobs that ended (cancelled while suspended, failed) are no longer suspendable
        foreach (var over in _segments.Where(kv => Job.IsTerminalStatus(kv.Value.Job.Status)).Select(kv => kv.Key).ToArray()) _segments.Remove(over);
        FailWithoutDevices(now);
        await MaybeReplaceAsync(now);
        // preemption for latency weighs the waiting requests before the round too: a request is compared with a
        // victim's group before the round gives it the devices left over (PreemptionSettings.ForLatency)
        if (_queue.Count > 0 && _settings.Preemption is { ForLatency: true } early) await PreemptAsync(now, early, beforeRound: true);
        if (_queue.Count > 0) await DispatchAsync(now);
        if (_queue.Count > 0 && _settings.Preemption is { } preemption) await PreemptAsync(now, preemption, beforeRound: false);
        if (now - _lastEviction >= 5.0)
        {
            _store.EvictExpired();
            _lastEviction = now;
        }
        Publish(now);
    }

    private void Drain(double now)
    {
        while (_events.Reader.TryRead(out var e))
        {
            switch (e)
            {
                case Arrival a:
                    Arrive(a.Job);
                    break;
                case Arrivals many:
                    foreach (var job in many.Jobs) Arrive(job);
                    break;
                case Cancellation c:
                    if (_queue.Remove(c.Job))
                    {
                        CountWaiting(c.Job, -1);
                        JobEnded(c.Job);
                    }
                    break;
                case TaskStarted s:
                    _ledger.Started(s.Device, s.TaskId, s.At);
                    _started[s.TaskId] = s.At;
                    break;
                case TaskFinished f:
                    _ledger.Finished(f.Device, f.Task.TaskId);
                    _plans?.Ended(f.Task);
                    // a job alone's latents are ready: decode preemption may put its decode in ahead (ExpediteDecodes)
                    if (f.Ok && f.Task is DiffuseTask { Mates: null } diffused && _plans?.DecodePauses.TileFrames > 0) _latentsReady.Add(diffused.Request);
                    // a segment that ended is no longer suspendable; a suspended one stays until its resumption is queued
                    if (f.Task is DiffuseTask ended && _segments.TryGetValue(ended.Request.Value, out var seg) && seg.Task == ended
                        && (f.Ok || ended.Result.Task.Exception?.InnerException is not DiffuseSuspendedException))
                        _segments.Remove(ended.Request.Value);
                    var start = _started.Remove(f.Task.TaskId, out var st) ? st : f.End;
                    Record(f, start);
                    break;
                case DevicesLeft l:
                    var left = l.Devices.Where(d => d < _up.Count && _up[d]).ToArray();
                    foreach (var d in left) _up[d] = false;
                    if (left.Length > 0)
                    {
                        _membership.Add($"{left.Length} device(s) left ({Ranges(left)}): {l.Reason}");
                        _lastLeft = l.Reason;
                    }
                    break;
                case DevicesBack b:
                    var back = b.Devices.Where(d => d < _up.Count && !_up[d]).ToArray();
                    foreach (var d in back) _up[d] = true;
                    if (back.Length > 0) _membership.Add($"{back.Length} device(s) back ({Ranges(back)})");
                    break;
                case DevicesJoined j:
                    Join(j);
                    break;
                case Requeue r:
                    Requeued(r, now);
                    break;
                case TaskRunning running:
                    // a gang started: its devices are no longer held idle (DeviceLedger.IdleUntil)
                    _ledger.GangRunning(running.TaskId);
                    foreach (var segment in _segments.Values)
                        if (segment.Task.TaskId == running.TaskId) segment.RunningSince = running.At;
                    break;
                case Suspended stopped:
                    _suspended.Add(stopped.Job);
                    break;
            }
        }
    }

    private void Arrive(Job job)
    {
        if (job.Status == JobStatus.Cancelled) CountWaiting(job, -1);
        else _queue.Add(job);
        _monitor.Arrived(job.Request);
    }

    // Stage runs feed the monitor (device utilisation, throughputs) and the stage-latency histogram.
    private void Record(TaskFinished f, double start)
    {
        Stage? stage = f.Task.Kind switch
        {
            TaskKind.Encode => Stage.Encode,
            TaskKind.Diffuse => Stage.Diffuse,
            TaskKind.Decode => Stage.Decode,
            _ => null,
        };
        if (f.Task is not RetypeTask && f.End > start)
            _metrics.DeviceBusy.Add(f.End - start, new KeyValuePair<string, object?>("device", f.Device.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (f.Task is ReserveTask)
        {
            _monitor.Ran(Stage.Diffuse, f.Device, lead: false, start, f.End);
            return;
        }
        if (stage is null) return;
        _monitor.Ran(stage, f.Device, lead: true, start, f.End);
        if (!f.Ok) return;
        _monitor.Completed(stage, f.End);
        var kind = f.Task.Kind switch { TaskKind.Encode => "encode", TaskKind.Diffuse => "diffuse", _ => "decode" };
        _metrics.StageLatency.Record(f.End - start, new KeyValuePair<string, object?>("stage", kind));
    }

    private async Task MaybeReplaceAsync(double now)
    {
        if (now < _nextAdjust || _view.Cluster is not { } cluster) return;
        var current = _view.ToView(_placement);
        AdjustDecision decision;
        try
        {
            decision = _monitor.Decide(now, cluster, _cost, current, _provisional ? null : _plannedFor, _settings.PlacementTimeLimitSeconds);
        }
        catch (Exception ex)
        {
            _log.LogError(ex, "Adjust-on-Dispatch failed; keeping the current placement");
            _nextAdjust = now + _settings.Monitor.CooldownSeconds;
            return;
        }
        var stats = _monitor.Stats(now);
        var before = AdjustOnDispatch.alphaOf(cluster, _cost, current.Types, stats);
        switch (decision)
        {
            case AdjustDecision.Keep keep:
                _nextAdjust = now + _settings.Monitor.CooldownSeconds;
                // a provisional placement kept after a solve over a full window is planned for that window
                if (_provisional && _monitor.Confident(now))
                {
                    _plannedFor = stats;
                    _provisional = false;
                }
                Remember(_placements, new PlacementChange(now, $"{AdjustOnDispatch.describeImbalance(keep.imbalance)}: {keep.reason}", false, 0, before, before, "kept"));
                return;
            case AdjustDecision.Replace replace:
                _nextAdjust = now + _settings.Monitor.CooldownSeconds;
                var next = _view.ToPhysical(replace.Item2, _placement.Types);
                var changed = cluster.Devices.Select(d => _view.Physical(d.Id.Item))
                    .Where(d => !next.Types[DeviceId.NewDeviceId(d)].Equals(_placement.Types[DeviceId.NewDeviceId(d)])).ToArray();
                Remember(_placements, new PlacementChange(now, $"{AdjustOnDispatch.describeImbalance(replace.imbalance)} ≥ {_settings.Monitor.TriggerRatio:F2}", true, changed.Length,
                    before, next.Alpha, PlanSourceModule.describe(next.Source)));
                foreach (var d in changed) await _plans!.RetypeAsync(d, next.Types[DeviceId.NewDeviceId(d)], _stop.Token);
                _log.LogInformation("Re-placement: {Moves} device(s) change type, α {Before:F3} → {After:F3} ({Imbalance}); new placement {Placement}",
                    changed.Length, before, next.Alpha, AdjustOnDispatch.describeImbalance(replace.imbalance), Describe(next));
                _placement = next;
                _plannedFor = stats;
                _provisional = !_monitor.Confident(now);
                _metrics.Replacements.Add(1);
                return;
            default:
                _nextAdjust = now + _settings.Monitor.RecheckSeconds;
                return;
        }
    }

    // A job re-queued after a lost device is planned with the stages it has left only (Snapshot.Completed).
    private FSharpMap<RequestId, Stage> CompletedStages() =>
        MapModule.OfSeq(_queue.Where(j => j.Resume is not null).Select(j => Tuple.Create(j.Request.Id, j.Resume!.Stage)));

    // What a round (or a preemption check) plans on: the view's cluster and placement, the queue, and busy-until from
    // the ledger — with the later bookings of the decode-only (⟨C⟩) devices (Snapshot.Bookings): a ⟨C⟩ device's worker
    // holds a decode aside until its latents are ready, so its busy-until is the work back to back from now and the
    // held decodes are bookings with gaps (DeviceLedger.Schedule), as the simulator gives them.
    // With `queue`, a snapshot of those requests instead of the loop's queue (the warm-up's synthetic ones).
    private Snapshot SnapshotAt(double now, Cluster cluster, FSharpList<Request>? queue = null)
    {
        var viewPlacement = _view.ToView(_placement);
        var busy = _view.Select(_ledger.BusyUntilAll(now));
        var bookings = SnapshotModule.noBookings;
        // primary devices held idle at a gang that has not started (live backfilling): device → the gang's predicted start
        var idle = SnapshotModule.noIdle;
        var seated = _settings.BackfillHeldDevices ? _ledger.IdleUntil(now) : new Dictionary<int, double>();
        foreach (var (d, until) in seated)
        {
            var v = _view.ViewOf(d);
            if (v < 0 || !viewPlacement.Types.TryGetValue(DeviceId.NewDeviceId(v), out var held) || !PlacementTypeModule.isPrimary(held)) continue;
            idle = idle.Add(DeviceId.NewDeviceId(v), until);
        }
        for (var v = 0; v < busy.Length; v++)
        {
            var id = DeviceId.NewDeviceId(v);
            if (!viewPlacement.Types.TryGetValue(id, out var type) || !type.Equals(PlacementType.C)) continue;
            var (until, later) = _ledger.Schedule(_view.Physical(v), now);
            busy[v] = until;
            if (later.Count > 0)
                bookings = bookings.Add(id, ListModule.OfSeq(later.Select(x => Tuple.Create(x.Start, x.End))));
        }
        return new Snapshot(now, cluster, _cost, viewPlacement, busy, queue ?? ListModule.OfSeq(_queue.Select(j => j.Request)),
            queue is null ? CompletedStages() : MapModule.Empty<RequestId, Stage>(), _dispatch, bookings, idle);
    }

    private async Task DispatchAsync(double now)
    {
        // with no device in the cluster requests wait (FailWithoutDevices bounds how long)
        if (_view.Cluster is not { } cluster) return;
        var round = _round + 1;
        var snapshot = SnapshotAt(now, cluster);
        var watch = Stopwatch.StartNew();
        var roundStart = DateTime.UtcNow;
        DispatchPlan plan;
        try
        {
            // one preparation per round: dispatchPrepared returns the greedy plan itself when it provably reaches
            // the optimum (or nothing is to decide), else solves the MIP over the same prepared candidates
            plan = Dispatcher.dispatchPrepared(Dispatcher.prepare(snapshot));
            _round = round;
        }
        catch (Exception ex)
        {
            watch.Stop();
            _round = round;
            _log.LogError(ex, "Dispatch round {Round} failed; its requests stay queued. Snapshot for replay: {Snapshot}",
                round, SnapshotJson.Write(snapshot, null));
            _metrics.DispatchRounds.Add(1, new KeyValuePair<string, object?>("source", "failed"));
            Remember(_rounds, new RoundRecord(round, now, _queue.Count, 0, 0, "failed", PlanExecutor.Describe(ex), null, null, null, watch.Elapsed.TotalSeconds));
            Keep(round, snapshot, null);
            return;
        }
        watch.Stop();
        var waiting = _queue.Count;
        var detail = PlanSourceModule.describe(plan.Source);
        var (source, gap, solve) = plan.Source switch
        {
            PlanSource.Mip m => ("mip", (double?)m.Item.Gap, (double?)m.Item.SolveTime),
            _ => ("greedy", null, null),
        };
        var byId = _queue.ToDictionary(j => j.Id.Value);
        var dispatched = 0;
        var dispatches = 0;
        foreach (var d in plan.Dispatches)
            if (!byId.ContainsKey(d.Request.Value))
                _log.LogError("Dispatch round {Round} routed {Request}, which is not queued. Snapshot and plan for replay: {Snapshot}",
                    round, d.Request, SnapshotJson.Write(snapshot, plan));
        var batches = FormBatches(plan, snapshot.Queue, byId, snapshot);
        var routed = new HashSet<long>();
        foreach (var batch in batches)
        {
            var jobs = batch.Members.Select(r => byId[r.Id.Value]).ToArray();
            foreach (var job in jobs)
            {
                _queue.Remove(job);
                CountWaiting(job, -1);
                routed.Add(job.Id.Value);
            }
            try
            {
                var route = _view.ToPhysical(batch.Dispatch);
                // a backfill's tasks on its held devices go through their workers' backfill lanes, ahead of the gang
                var ahead = Backfill(batch.Dispatch, snapshot) is { } held ? held.Select(_view.Physical).ToHashSet() : null;
                var routeDetail = ahead is null ? detail : $"{detail}; backfilled on device(s) {string.Join(",", ahead)} before the gang they wait at";
                Track(jobs[0], await _plans!.ExecuteAsync(jobs, route, new JobRoute(round, routeDetail, route), _stop.Token, ahead), route);
                foreach (var job in jobs) _metrics.QueueWait.Record(_clock.Now - job.Request.Arrival);
                if (ahead is not null) _metrics.Backfills.Add(jobs.Length);
                if (jobs.Length > 1) _metrics.BatchSize.Record(jobs.Length);
                dispatched += jobs.Length;
                dispatches++;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                _log.LogError(ex, "Dispatch round {Round} could not carry out the route of {Request}; it fails. Snapshot and plan for replay: {Snapshot}",
                    round, batch.Dispatch.Request, SnapshotJson.Write(snapshot, plan));
                foreach (var job in jobs) Fail(job, "the server could not carry out its route: " + PlanExecutor.Describe(ex), _clock.Now);
            }
        }
        _waits = Admissible.waitReasons(snapshot, plan).ToDictionary(x => x.Item1.Value, x => new WaitingReason(round, x.Item2));
        // Rounds where nothing could be decided (no free device) are not worth a history entry.
        if (plan.Dispatches.IsEmpty && plan.Source is PlanSource.Greedy) return;
        foreach (var job in byId.Values) job.Trace.Round(round, roundStart, watch.Elapsed, source, routed.Contains(job.Id.Value));
        _metrics.DispatchRounds.Add(1, new KeyValuePair<string, object?>("source", source));
        _metrics.DispatchSolve.Record(watch.Elapsed.TotalSeconds, new KeyValuePair<string, object?>("source", source));
        Remember(_rounds, new RoundRecord(round, now, waiting, dispatched, dispatches, source, detail, plan.Objective, gap, solve, watch.Elapsed.TotalSeconds));
        Keep(round, snapshot, plan);
    }

    // A suspendable diffuse segment just queued (a job alone, preemption on): remembered for PreemptAsync.
    private void Track(Job job, DiffuseTask? task, Dispatch route)
    {
        if (task?.Suspend is null) return;
        var steps = Math.Max(1, job.Input.Steps);
        _segments[job.Id.Value] = new Segment(job, task, [.. route.Diffuse.Devices.Select(d => d.Value)], route.Decode.Devices.Head.Value, 0,
            (route.Diffuse.Finish - route.Diffuse.Start) / steps, route.Decode.Finish - route.Diffuse.Finish, route.Decode.Finish);
    }

    // Step-boundary preemption after a round (and before it, for latency): the running diffuse segments as Preemption.decide sees them, its
    // suspensions carried out (victim signalled, urgent request's tasks queued behind it on its devices).
    private async Task PreemptAsync(double now, PreemptionSettings settings, bool beforeRound)
    {
        if (_view.Cluster is not { } cluster || _segments.Count == 0) return;
        var running = new List<RunningDiffuse>();
        var behindOf = new Dictionary<long, Segment>();
        foreach (var seg in _segments.Values)
        {
            if (seg.RunningSince is null || seg.Task.Suspend is not { Requested: false } || seg.Task.Result.Task.IsCompleted) continue;
            if (seg.Job.Status != JobStatus.Diffusing || seg.Job.CancelRequested) continue;
            var view = seg.Group.Select(_view.ViewOf).ToArray();
            if (view.Any(v => v < 0)) continue;
            // its devices hold nothing but its diffuse or reservation (decodes wait aside), or that and the queued
            // resumption of one suspended job (Behind): the urgent request would wait behind anything else
            var behind = QueuedBehind(seg);
            if (seg.Group.Any(d => _ledger.Holding(d) > 1 + (behind is not null && behind.Group.Contains(d) ? 1 : 0))) continue;
            var steps = seg.Job.Input.Steps - seg.StepsBefore;
            var doneHere = Math.Clamp(seg.Job.View().Step - seg.StepsBefore, 0, steps);
            // the step in flight taken as half done: its boundary is about half a predicted step away
            var start = now - (doneHere + 0.5) * seg.StepSeconds;
            var follower = FSharpOption<Tuple<Request, double>>.None;
            if (behind is not null)
            {
                // it starts when this segment ends: its own remaining steps and decode after that
                behindOf[seg.Job.Id.Value] = behind;
                follower = Tuple.Create(behind.Job.Request, start + steps * seg.StepSeconds
                    + (behind.Job.Input.Steps - behind.StepsBefore) * behind.StepSeconds + behind.TailSeconds);
            }
            running.Add(new RunningDiffuse(seg.Job.Request, ListModule.OfSeq(view.Select(DeviceId.NewDeviceId)),
                start, seg.StepSeconds, seg.StepsBefore, steps, seg.PlannedFinish, seg.TailSeconds, seg.Job.Suspensions, follower));
        }
        if (running.Count == 0) return;
        var snapshot = SnapshotAt(now, cluster);
        FSharpList<Suspension> decisions;
        try
        {
            decisions = beforeRound
                ? Preemption.decideBeforeRound(settings, snapshot, ListModule.OfSeq(running))
                : Preemption.decide(settings, snapshot, ListModule.OfSeq(running));
        }
        catch (Exception ex)
        {
            _log.LogError(ex, "Preemption in round {Round} failed; nothing is suspended. Snapshot for replay: {Snapshot}", _round, SnapshotJson.Write(snapshot, null));
            return;
        }
        foreach (var sp in decisions)
        {
            if (!_segments.TryGetValue(sp.Victim.Value, out var victim) || _queue.Find(j => j.Id.Equals(sp.Urgent.Request)) is not { } urgent) continue;
            victim.Task.Suspend!.Request();
            if (behindOf.TryGetValue(sp.Victim.Value, out var withdrawn))
            {
                // the resumption queued behind the victim would run before the urgent work: it is withdrawn and queued
                // again once the victim's own resumption is (ResumeSuspendedAsync), as the simulator orders them
                withdrawn.Task.Withdrawal.Request();
                _withdrawn[withdrawn.Job.Id.Value] = victim.Task;
                using (withdrawn.Job.Trace.Enter())
                    _log.LogInformation("Preemption: the queued resumption of request {Behind} is withdrawn; it resumes after request {Victim}'s",
                        withdrawn.Job.Id.Value, sp.Victim.Value);
            }
            _queue.Remove(urgent);
            CountWaiting(urgent, -1);
            var route = _view.ToPhysical(sp.Urgent);
            var detail = $"preemption: suspends request {sp.Victim.Value} at step {sp.StepsDone} (gain {Objective(sp.Gain)} > loss {Objective(sp.Loss)})";
            using var traced = urgent.Trace.Enter();
            try
            {
                Track(urgent, await _plans!.ExecuteAsync(urgent, route, new JobRoute(_round, detail, route), _stop.Token), route);
                Remember(_preemptions, new PreemptionRecord(_round, now, sp.Victim.Value, urgent.Id.Value, sp.StepsDone, sp.Gain, sp.Loss, victim.Group));
                _metrics.QueueWait.Record(_clock.Now - urgent.Request.Arrival);
                _log.LogInformation("Preemption: request {Urgent} takes device(s) {Devices} of request {Victim}, suspended at step {Step} (gain {Gain:F3}, loss {Loss:F3})",
                    urgent.Id.Value, string.Join(",", victim.Group), sp.Victim.Value, sp.StepsDone, sp.Gain, sp.Loss);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                _log.LogError(ex, "Preemption could not carry out the route of {Request}; it fails", urgent.Id.Value);
                Fail(urgent, "the server could not carry out its route: " + PlanExecutor.Describe(ex), _clock.Now);
            }
        }
    }

    // An objective value to three places for a route's text; a value that rounds to zero reads 0.000, never -0.000.
    private static string Objective(double x) => (Math.Round(x, 3) + 0.0).ToString("F3", System.Globalization.CultureInfo.InvariantCulture);

    // The resumption of a suspended job queued on a running segment's devices (its group within the segment's), not
    // started and not withdrawn: what Preemption calls the segment's Behind. Null when there is none.
    private Segment? QueuedBehind(Segment running)
    {
        foreach (var w in _segments.Values)
            if (w != running && w.RunningSince is null && w.Task.From is not null && !w.Task.Withdrawal.Requested && !w.Task.Result.Task.IsCompleted
                && w.Job.Status == JobStatus.Suspended && !w.Job.CancelRequested && w.Group.All(running.Group.Contains))
                return w;
        return null;
    }

    // Decode preemption, as the simulator runs it (Simulator.preemptDecode, Preemption.decodeInsertion): for each job alone
    // whose latents are ready and whose decode has not started, on a ⟨C⟩ device whose queued work is all single decodes,
    // when waiting for a gap there makes it late and the objective gains more than the decodes it delays lose, its
    // decode is expedited: the worker runs it first, at the running decode's next tile boundary when that one is named
    // (Worker.BetweenTiles), and the ledger predicts it so.
    private void ExpediteDecodes(double now, PreemptionSettings settings)
    {
        var ready = _latentsReady.ToArray();
        _latentsReady.Clear();
        foreach (var request in ready)
        {
            if (_plans!.PendingDecode(request) is not { } pending || pending.Task.Expedited is not null || _started.ContainsKey(pending.Task.TaskId)) continue;
            if (_store.Find(request) is not { } job || Job.IsTerminalStatus(job.Status) || job.CancelRequested) continue;
            var (task, device) = pending;
            if (DecodeDeviceAt(device, now, task.TaskId, settings) is not { } view) continue;
            var urgent = job.Request;
            var activation = CostModelModule.activation(_cost, Stage.Decode, urgent.Shape, 1);
            FSharpOption<DecodeInsertion> decided;
            try
            {
                decided = Preemption.decodeInsertion(settings, _dispatch, urgent, now, task.PredictedSeconds, activation, view.Device).Item2;
            }
            catch (Exception ex)
            {
                _log.LogError(ex, "Decode preemption for request {Request} failed; its decode keeps its place", request.Value);
                continue;
            }
            if (decided is not { Value: var ins }) continue;
            long? paused = ins.Paused is { Value: var p } && view.Running.TryGetValue(p.Value, out var runningTask) ? runningTask : null;
            task.Expedite(paused);
            _ledger.Expedite(device, task.TaskId, paused);
            Remember(_decodePreemptions, new DecodePreemptionRecord(_round, now, request.Value, paused is null ? null : ins.Paused.Value.Value, device,
                ins.Delayed.Length, ins.Gain, ins.Loss));
            using (job.Trace.Enter())
                if (paused is null)
                    _log.LogInformation("Decode preemption: the decode of request {Urgent} goes first on device {Device}, delaying {Delayed} decode(s) (gain {Gain:F3} > loss {Loss:F3})",
                        request.Value, device, ins.Delayed.Length, ins.Gain, ins.Loss);
                else
                    _log.LogInformation("Decode preemption: the decode of request {Urgent} goes first on device {Device}, at the next tile boundary of request {Paused}'s decode, delaying {Delayed} decode(s) (gain {Gain:F3} > loss {Loss:F3})",
                        request.Value, device, ins.Paused.Value.Value, ins.Delayed.Length, ins.Gain, ins.Loss);
        }
    }

    // A ⟨C⟩ device as decode preemption sees it (Preemption.DecodeDevice; the simulator's decodeDeviceOf): its predicted
    // runs from the ledger without task `without`, the single decodes among them with their tiles, activations and
    // pauses, and its memory less its resident weights; with the task id of each running decode by request. Null for a
    // device that is down, of another type, or would have to load its decoder.
    private (DecodeDevice Device, Dictionary<long, long> Running)? DecodeDeviceAt(int device, double now, long without, PreemptionSettings settings)
    {
        if (device >= _up.Count || !_up[device] || device >= _workers.Count) return null;
        var worker = _workers[device];
        if (_placement.Types.TryFind(DeviceId.NewDeviceId(device)) is not { } type || !type.Value.Equals(PlacementType.C) || !worker.Resident.Contains(Stage.Decode))
            return null;
        var runs = _ledger.Runs(device, now, without).Where(r => r.End > now).OrderBy(r => r.Start).ToArray();
        var booked = new List<BookedDecode>();
        var running = new Dictionary<long, long>();
        foreach (var r in runs)
        {
            if (r.Kind != TaskKind.Decode || !_plans!.TryGetDecode(r.TaskId, out var d) || _store.Find(d.Task.Request) is not { } owner) continue;
            var duration = r.End - r.Start;
            var tiles = worker.CanPauseDecode && d.Task.TileFrames > 0 ? Preemption.decodeTiles(d.Task.TileFrames, owner.Request.Shape) : 1;
            booked.Add(new BookedDecode(owner.Request, r.Start, r.End, Math.Max(d.Task.PredictedSeconds, 1e-9) / tiles,
                CostModelModule.activation(_cost, Stage.Decode, owner.Request.Shape, 1), d.Task.Pauses));
            if (r.Started) running[owner.Request.Id.Value] = r.TaskId;
        }
        var weights = worker.Resident.Sum(st => ProfileModule.stage(_cost.Profile, st).Weights);
        var view = new DecodeDevice(DeviceId.NewDeviceId(device), ListModule.OfSeq(runs.Select(r => Tuple.Create(r.Start, r.End))), ListModule.OfSeq(booked),
            _cluster.Devices[device].Memory - weights);
        return (view, running);
    }

    // Suspended jobs (their diffuse stopped at a step boundary): Suspended, and their resumption queued on the same
    // group behind the urgent work, or on the group free first (ResumeGroup); a job cancelled meanwhile ends
    // Cancelled instead.
    private async Task ResumeSuspendedAsync(double now)
    {
        // the suspended first: a withdrawn resumption goes behind the resumption of the victim it was queued behind,
        // and waits for it while that victim's segment has not ended as a suspension yet
        var stopped = _suspended.OrderBy(s => s.Withdrawn).ToArray();
        _suspended.Clear();
        foreach (var s in stopped)
        {
            var job = s.Job;
            if (s.Withdrawn && _withdrawn.TryGetValue(job.Id.Value, out var ahead)
                && _segments.TryGetValue(ahead.Request.Value, out var aheadSeg) && aheadSeg.Task == ahead && !job.CancelRequested)
            {
                _suspended.Add(s);
                continue;
            }
            _withdrawn.Remove(job.Id.Value);
            _segments.Remove(job.Id.Value, out var seg);
            // the stopped attempt's decode will not run (its worker skips it): not predicted on its device any more
            _ledger.Finished(s.DecodeDevice, s.DecodeTaskId);
            using var traced = job.Trace.Enter();
            // cancelled while its segment stopped: nothing resumes it
            if (s.Withdrawn ? !job.Withdrawn(now) : !job.Suspend(now, s.Checkpoint.Step))
            {
                Discard(s);
                continue;
            }
            if (!s.Withdrawn) _metrics.Suspensions.Add(1);
            var remaining = s.Checkpoint.Steps - s.Checkpoint.Step;
            var stepSeconds = seg?.StepSeconds ?? CostModelModule.diffuseTime(_cost, job.Request.Shape, job.Request.Steps, s.Group.Length) / Math.Max(1, job.Request.Steps);
            var tail = seg?.TailSeconds ?? 0.0;
            try
            {
                var group = ResumeGroup(s, now);
                var task = await _plans!.ResumeAsync(s, group, remaining * stepSeconds, tail, _stop.Token);
                _segments[job.Id.Value] = new Segment(job, task, group, s.DecodeDevice, s.Checkpoint.Step, stepSeconds, tail, now + remaining * stepSeconds + tail);
                var where = group.SequenceEqual(s.Group) ? "" : $" (suspended on {string.Join(",", s.Group)}: another group of its type and degree is free first)";
                if (s.Withdrawn)
                    _log.LogInformation("Request {Request}, suspended after step {Step} of {Steps}, is queued again to resume on device(s) {Devices}{Where} (its queued resumption was withdrawn)",
                        job.Id.Value, s.Checkpoint.Step, s.Checkpoint.Steps, string.Join(",", group), where);
                else
                    _log.LogInformation("Request {Request} suspended after step {Step} of {Steps} ({Count} time(s)); it resumes on device(s) {Devices}{Where}",
                        job.Id.Value, s.Checkpoint.Step, s.Checkpoint.Steps, job.Suspensions, string.Join(",", group), where);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                _log.LogError(ex, "Request {Request} could not be resumed; it fails", job.Id.Value);
                Fail(job, "the server could not resume it after a suspension: " + PlanExecutor.Describe(ex), now);
                Discard(s);
            }
        }
    }

    // Where a suspended job resumes: Preemption.resumeGroup, as the simulator asks it, over the devices in the
    // cluster whose placement type is the group's and whose worker can resume a checkpoint, by the ledger's
    // busy-until; its own group unless PreemptionSettings.ResumeElsewhere. A checkpoint kept on a remote worker
    // (Clustering.CheckpointHandle) resumes on that worker's devices only: its node.
    private int[] ResumeGroup(SuspendedJob s, double now)
    {
        var elsewhere = _settings.Preemption is { } p && p.ResumeElsewhere;
        if (!elsewhere) return s.Group;
        var type = _placement.Types[DeviceId.NewDeviceId(s.Group[0])];
        var node = _cluster.Devices[s.Group[0]].Node;
        var onItsWorker = s.Checkpoint.State is Clustering.CheckpointHandle;
        var busy = _ledger.BusyUntilAll(now);
        var own = ListModule.OfSeq(s.Group.Select(DeviceId.NewDeviceId));
        var chosen = Preemption.resumeGroup(_cluster,
            FuncConvert.FromFunc<DeviceId, bool>(d => d.Value < _up.Count && _up[d.Value] && d.Value < _workers.Count && _workers[d.Value].CanSuspend
                && _placement.Types.TryFind(d) is { } t && t.Value.Equals(type)
                && (!onItsWorker || (d.Value < _cluster.Devices.Length && _cluster.Devices[d.Value].Node.Equals(node)))),
            FuncConvert.FromFunc<DeviceId, double>(d => d.Value < busy.Length ? busy[d.Value] : double.PositiveInfinity),
            now, true, own);
        return [.. chosen.Item2.Select(d => d.Value)];
    }

    // Every end of a job that the loop sees before a dispatch took the job on — cancelled while queued, failed by the
    // loop (its route could not be carried out, no device is left, its work was lost too often): the output it kept to
    // resume from (Job.Resume), which nothing will read now, is freed by its worker (IStageExecutor.Discard; a cluster
    // worker kept it in memory until it expired). Job.TakeResume hands it over once, so it is freed once: a dispatch
    // that took it frees what its attempt leaves (PlanExecutor).
    private void JobEnded(Job job) => Discard(job.TakeResume());

    // The loop fails a job (JobEnded).
    private void Fail(Job job, string error, double now)
    {
        job.Fail(error, now);
        JobEnded(job);
    }

    // An output kept to resume from that nothing will read.
    private void Discard(ResumePoint? kept)
    {
        if (kept is not null) _plans?.Discard(kept.Output, kept.Device);
    }

    // A suspended job that will not resume: its checkpoint and the embeddings it kept to resume with are freed.
    private void Discard(SuspendedJob s)
    {
        _plans?.Discard(s.Checkpoint, s.Group[0]);
        _plans?.Discard(s.Embeddings, s.EmbeddingsDevice);
    }

    // A job whose work was lost with a device: queued again (resuming from its kept output when the device that
    // holds it is still in), unless it was lost too often already.
    private void Requeued(Requeue r, double now)
    {
        var job = r.Job;
        var lost = r.Lost;
        if (lost.Device >= 0 && lost.Device < _up.Count && _up[lost.Device])
        {
            _up[lost.Device] = false;
            _membership.Add($"device {lost.Device} left: {lost.Message}");
            _lastLeft = lost.Message;
        }
        var resume = r.Resume is { } p && p.Device < _up.Count && _up[p.Device] ? p : null;
        using var traced = job.Trace.Enter();
        var requeued = false;
        if (job.Requeues >= MaxRequeues)
            Fail(job, $"its work was lost with a device {job.Requeues + 1} times (at most {MaxRequeues} re-queues); last: {PlanExecutor.Describe(lost)}", now);
        else requeued = job.Requeue(now, PlanExecutor.Describe(lost), resume);
        // the output the attempt handed on, unless the job resumes from it: it ended (re-queues spent, or cancelled
        // meanwhile) or starts again (the output's device is out)
        if (!requeued || resume is null) Discard(r.Resume);
        if (!requeued) return;
        _queue.Add(job);
        CountWaiting(job, +1);
        _metrics.Requeued.Add(1, new KeyValuePair<string, object?>("resume", resume is null ? "start" : resume.Stage.IsEncode ? "after_encode" : "after_diffuse"));
        _log.LogWarning("Job {Request} queued again ({Resume}): its work was lost with device {Device} ({Reason})", job.Id.Value,
            resume is null ? "from the start" : $"after its {resume.Stage} on device {resume.Device}", lost.Device, lost.Message);
    }

    // New devices: the cluster grows (their ids follow the last), their workers are created once the re-planned
    // placement gives them a type (ReplanMembershipAsync).
    private void Join(DevicesJoined j)
    {
        var n = _cluster.Devices.Length;
        if (j.Devices.Count == 0 || j.Devices.Select((d, i) => d.Id != n + i).Any(bad => bad) || j.Grown.Devices.Length != n + j.Devices.Count)
        {
            _log.LogError("Devices joining with ids {Ids} do not follow the cluster's {Count} device(s); ignored", string.Join(",", j.Devices.Select(d => d.Id)), n);
            return;
        }
        Volatile.Write(ref _cluster, j.Grown);
        _ledger.Grow(j.Grown.Devices.Length);
        _monitor.Grow(j.Grown.Devices.Length);
        _up.AddRange(Enumerable.Repeat(true, j.Devices.Count));
        _joining.Add(j);
        _membership.Add($"{j.Devices.Count} device(s) joined ({Ranges([.. j.Devices.Select(d => d.Id)])}) on node(s) {string.Join(",", j.Devices.Select(d => d.Node).Distinct())}");
    }

    private readonly List<DevicesJoined> _joining = new();

    // Devices left, came back or joined: the planners' view is rebuilt and the placement re-planned on it
    // (Adjust-on-Dispatch's planner, starting from the current types so that few devices move); devices whose
    // type changes get a Retype behind their queued work, as any re-placement.
    private async Task ReplanMembershipAsync(double now)
    {
        var reason = string.Join("; ", _membership);
        _membership.Clear();
        _view = LiveView.Of(_cluster, _up);
        _log.LogWarning("Cluster membership: {Reason}; {Live} of {All} device(s) in the cluster", reason, _view.Count, _cluster.Devices.Length);
        var physical = _placement;
        var changed = Array.Empty<int>();
        if (_view.Cluster is { } cluster)
        {
            var stats = _monitor.Stats(now);
            var fromWindow = !stats.Classes.IsEmpty;
            if (!fromWindow) stats = _plannedFor;
            var current = _view.Types(_placement.Types);
            var before = AdjustOnDispatch.alphaOf(cluster, _cost, current, stats);
            try
            {
                var next = Planner.place(new PlacementInput(cluster, _cost, stats,
                    FSharpOption<FSharpMap<DeviceId, PlacementType>>.Some(current), _settings.PlacementTimeLimitSeconds));
                physical = _view.ToPhysical(next, _placement.Types);
                changed = [.. cluster.Devices.Select(d => _view.Physical(d.Id.Item))
                    .Where(d => _placement.Types.TryFind(DeviceId.NewDeviceId(d)) is { } old && !old.Value.Equals(physical.Types[DeviceId.NewDeviceId(d)]))];
                _plannedFor = stats;
                if (fromWindow) _provisional = !_monitor.Confident(now);
                _metrics.Replacements.Add(1);
                Remember(_placements, new PlacementChange(now, reason, true, changed.Length, before, next.Alpha, PlanSourceModule.describe(next.Source)));
            }
            catch (Exception ex)
            {
                _log.LogError(ex, "Re-placement after a membership change failed; devices keep their types");
                Remember(_placements, new PlacementChange(now, reason + $"; re-placement failed ({ex.Message})", false, 0, before, before, "kept"));
            }
        }
        else Remember(_placements, new PlacementChange(now, reason + "; no device left", false, 0, 0, 0, "none"));
        // joined devices without a type from the re-plan (it failed, or none is in) take the first device's
        var fallback = _placement.Types.Count > 0 ? _placement.Types.First().Value : PlacementTypeModule.all.Head;
        var created = new List<Worker>();
        foreach (var j in _joining)
            foreach (var d in j.Devices)
            {
                var type = physical.Types.TryFind(d.DeviceId) is { } t ? t.Value : fallback;
                physical = new PlacementPlan(physical.Types.Add(d.DeviceId, type), physical.Capacity, physical.Alpha, physical.Moves, physical.Source);
                created.Add(j.Create(d, type));
            }
        _joining.Clear();
        if (created.Count > 0)
        {
            _workers = [.. _workers, .. created];
            _plans!.Workers = _workers;
        }
        foreach (var d in changed) await _plans!.RetypeAsync(d, physical.Types[DeviceId.NewDeviceId(d)], _stop.Token);
        _placement = physical;
        _nextAdjust = now + _settings.Monitor.CooldownSeconds;
        _log.LogInformation("Placement after the membership change: {Placement}", Describe(_placement, d => d < _up.Count && !_up[d]));
    }

    // Why no device is in the cluster, or null when one is.
    private string? NoDevice() =>
        _up.Count == 0 || _up.Contains(true) ? null
        : $"no device is in the cluster: every worker left (the last: {_lastLeft}); new work is accepted again once a worker joins";

    // With no device in the cluster, queued requests wait at most Settings.NoDeviceSeconds, then fail with the reason.
    private void FailWithoutDevices(double now)
    {
        if (_view.Cluster is not null)
        {
            _emptySince = null;
            return;
        }
        _emptySince ??= now;
        if (_queue.Count == 0 || now - _emptySince.Value < _settings.NoDeviceSeconds) return;
        foreach (var job in _queue)
        {
            CountWaiting(job, -1);
            using var traced = job.Trace.Enter();
            Fail(job, $"no device is left in the cluster (every worker left {now - _emptySince.Value:F0} s ago; requests wait at most {_settings.NoDeviceSeconds:F0} s for one to join)", now);
        }
        _queue.Clear();
    }

    // "0-7, 9" for a list of device ids.
    private static string Ranges(IEnumerable<int> ids) => NumberRanges(ids.Select(i => (long)i), "-");

    /// <summary>Whole numbers as runs of consecutive ones, in ascending order: "0-7, 9" (with <paramref name="dash"/>
    /// between a run's ends); duplicates count once.</summary>
    public static string NumberRanges(IEnumerable<long> values, string dash)
    {
        var sorted = values.Distinct().Order().ToArray();
        var parts = new List<string>();
        for (var i = 0; i < sorted.Length;)
        {
            var j = i;
            while (j + 1 < sorted.Length && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(i == j ? $"{sorted[i]}" : $"{sorted[i]}{dash}{sorted[j]}");
            i = j + 1;
        }
        return string.Join(", ", parts);
    }

    // Keeps a round's input and plan while its record is in the history.
    private void Keep(long round, Snapshot snapshot, DispatchPlan? plan)
    {
        lock (_roundInputs)
        {
            _roundInputs[round] = (snapshot, plan);
            var oldest = _rounds.Count > 0 ? _rounds.Peek().Round : round;
            foreach (var old in _roundInputs.Keys.Where(k => k < oldest).ToArray()) _roundInputs.Remove(old);
        }
    }

    /// <summary>A round still in the history as a <c>trident-snapshot</c> document (its snapshot and plan; no
    /// plan for a failed round), or null when the round is unknown or no longer kept.</summary>
    public string? RoundDocument(long round)
    {
        (Snapshot Snapshot, DispatchPlan? Plan) kept;
        lock (_roundInputs)
            if (!_roundInputs.TryGetValue(round, out kept)) return null;
        return SnapshotJson.Write(kept.Snapshot, kept.Plan);
    }

    private void Remember<T>(Queue<T> history, T item)
    {
        history.Enqueue(item);
        while (history.Count > _settings.RoundHistory) history.Dequeue();
    }

    private void Publish(double now)
    {
        _state = new LoopState(_round, _placement, QueueOrder(now), [.. _ledger.BusyUntilAll(now)],
            [.. _rounds], [.. _placements], MonitorWindow(_view.ToView(_placement)), _waits) { Online = [.. _up], NoDevice = NoDevice(), Preemptions = [.. _preemptions], DecodePreemptions = [.. _decodePreemptions] };
    }

    // The queue as a round at `now` considers it (priority, then least slack), sorted at its first read: the requests
    // are taken now, the sort waits for a reader (queue positions, /v1/cluster).
    private Lazy<ImmutableArray<RequestId>> QueueOrder(double now)
    {
        var requests = ListModule.OfSeq(_queue.Select(j => j.Request).ToArray());
        return new Lazy<ImmutableArray<RequestId>>(() =>
            [.. (requests.Length < 2 ? requests : Admissible.urgencyOrder(_cost, now, requests)).Select(r => r.Id)]);
    }

    // The monitor's window under a placement (the view's ids), computed at its first read at the clock's time then.
    private Lazy<MonitorView> MonitorWindow(PlacementPlan placement)
    {
        var monitor = _monitor;
        var cost = _cost;
        var clock = _clock;
        return new Lazy<MonitorView>(() => monitor.View(clock.Now, cost, placement), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>A placement in one line: the type of each device.</summary>
    public static string Describe(PlacementPlan p) => Describe(p, _ => false);

    /// <summary>As <see cref="Describe(PlacementPlan)"/>, each device that <paramref name="offline"/> says is out of the
    /// cluster marked "(offline)": it keeps its type for when it is back, but is placed nowhere now.</summary>
    public static string Describe(PlacementPlan p, Func<int, bool> offline) =>
        string.Join(" ", p.Types.Select(kv => $"{kv.Key}={PlacementTypeModule.name(kv.Value)}{(offline(kv.Key.Item) ? "(offline)" : "")}"));

    /// <summary>Stops the rounds (workers are stopped by their owner).</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _events.Writer.TryComplete();
        if (_running is not null)
        {
            try { await _running; }
            catch (OperationCanceledException) { }
        }
        _stop.Dispose();
    }
}
