// The serving runtime behind the HTTP API: the job store, the serving loop and one worker per device. It
// accepts jobs (or refuses them when the queue is full), finds and cancels them, and exposes the state the
// API reports. On shutdown it first drains (DrainAsync: no new work, work in flight finishes or is cancelled
// at the drain time, every job ends in a final state). Everything it starts it stops on disposal: the loop
// first, then the workers (queued tasks are reported failed, running ones finish), then the executors'
// sessions; a job still not over then is marked cancelled.

using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Core;
using Trident.Runtime.Devices;
using Trident.Runtime.Monitoring;
using Trident.Scheduling;
using Trident.Scheduling.Placement;

namespace Trident.Runtime.Serving;

/// <summary>What a server is made of.</summary>
/// <param name="Layout">Its devices.</param>
/// <param name="Profile">The profile of this machine (the cost model's data).</param>
/// <param name="CostSettings">Degrees, efficiency threshold, deadline rule.</param>
/// <param name="Executors">Creates each device's stage executor.</param>
/// <param name="Settings">Loop, queue and store settings.</param>
/// <param name="InitialMix">The request mix the initial placement is planned for.</param>
public sealed record ServerSetup(
    DeviceLayout Layout,
    Profile Profile,
    CostSettings CostSettings,
    IStageExecutorFactory Executors,
    ServingSettings Settings,
    WorkloadStats InitialMix)
{
    /// <summary>The job store's lock, taken before the start-up (<see cref="JobJournal.Reserve"/>), which the journal
    /// keeps; null: the journal takes it when it opens.</summary>
    public JobStoreLock? StorageLock { get; init; }
}

/// <summary>The result of a submission.</summary>
public abstract record SubmitOutcome
{
    /// <summary>The job was accepted and queued.</summary>
    public sealed record Accepted(Job Job) : SubmitOutcome;

    /// <summary>Every job of a multi-image request was accepted and queued (in input order).</summary>
    public sealed record AcceptedAll(IReadOnlyList<Job> Jobs) : SubmitOutcome;

    /// <summary>The queue (or the job store) is full: try again after <paramref name="RetryAfter"/>.</summary>
    public sealed record Refused(TimeSpan RetryAfter, string Reason) : SubmitOutcome;

    /// <summary>The server is shutting down and accepts no new work: try again (elsewhere, or after a
    /// restart) after <paramref name="RetryAfter"/>.</summary>
    public sealed record Stopping(TimeSpan RetryAfter, string Reason) : SubmitOutcome;

    /// <summary>No device is in the cluster (every worker left): try again after <paramref name="RetryAfter"/>;
    /// <paramref name="Reason"/> says why.</summary>
    public sealed record Unavailable(TimeSpan RetryAfter, string Reason) : SubmitOutcome;
}

/// <summary>The serving runtime.</summary>
public sealed class TridentServer : IAsyncDisposable
{
    private readonly ServingLoop _loop;
    private readonly object _joinGate = new();
    private Cluster _grown;
    private readonly ILogger _log;
    private long _nextId;
    // Server-clock time by which the drain ends; NaN while not draining.
    private double _drainUntil = double.NaN;
    private Task? _drain;
    private readonly object _drainGate = new();
    private long _succeededWithDeadline, _metDeadline;
    private readonly JobJournal? _journal;

    private TridentServer(ServerSetup setup, ILoggerFactory logs, TimeProvider time, object? meterScope)
    {
        _log = logs.CreateLogger("Trident.Serving");
        Setup = setup;
        Clock = new ServerClock(time);
        _grown = setup.Layout.ToCluster();
        var cluster = _grown;
        Cost = CostModelModule.create(setup.CostSettings, setup.Profile);
        Metrics = new ServingMetrics(meterScope);
        Store = new JobStore(setup.Settings.JobCapacity, setup.Settings.JobRetention, time);
        var created = new List<Worker>();
        try
        {
            if (setup.Settings.StorageDirectory is { } storage)
            {
                _journal = JobJournal.Open(storage, setup.StorageLock);
                _journal.WarmUp();
                var journal = _journal;
                Store.Evicted = j => journal.Removed(j.Id.Value);
                var log = _log;
                journal.WriteFailed = (id, status, e) =>
                {
                    if (status is { } s)
                        log.LogError(e, "The job store {Directory} could not record job {Request} as {Status}; the job goes on in memory{Outcome}",
                            journal.Directory, id, s, s == JobStatus.Succeeded ? " and ends failed (its result is not stored)" : "");
                    else log.LogError(e, "The job store {Directory} could not forget job {Request}; it is forgotten in memory", journal.Directory, id);
                };
            }
            InitialPlacement = Planner.place(new PlacementInput(cluster, Cost, setup.InitialMix,
                FSharpOption<Microsoft.FSharp.Collections.FSharpMap<DeviceId, PlacementType>>.None, setup.Settings.PlacementTimeLimitSeconds));
            _loop = new ServingLoop(Clock, cluster, Cost, InitialPlacement, setup.InitialMix, setup.Settings, Metrics, Store, logs.CreateLogger("Trident.Serving.Loop"));
            foreach (var d in setup.Layout.Devices)
                created.Add(new Worker(d, InitialPlacement.Types[d.DeviceId], setup.Executors.Create(d), _loop, setup.Settings.WorkerQueueCapacity));
        }
        catch
        {
            // the journal (and the store's lock it holds) is released with the workers: a start that fails leaves the store free
            foreach (var w in created) w.Dispose();
            _journal?.Dispose();
            Metrics.Dispose();
            throw;
        }
        _loop.Attach([.. created]);
        RegisterGauges();
    }

    /// <summary>Builds the cost model and the initial placement, starts the workers and the loop.</summary>
    /// <param name="setup">What the server is made of.</param>
    /// <param name="logs">Where it logs.</param>
    /// <param name="time">Its clock.</param>
    /// <param name="meterScope">The scope of its meter (see <see cref="ServingMetrics"/>), or null.</param>
    public static TridentServer Start(ServerSetup setup, ILoggerFactory logs, TimeProvider time, object? meterScope = null)
    {
        var server = new TridentServer(setup, logs, time, meterScope);
        try
        {
            server.Recover();
        }
        catch
        {
            // a store whose jobs cannot be read back: nothing is written (the recovered jobs are not cancelled in it), and
            // the workers, the journal and the store's lock it holds are released, so the store is free for the next start
            server._journal?.Abandon();
            foreach (var w in server._loop.Workers) w.Dispose();
            server._journal?.Dispose();
            server.Metrics.Dispose();
            throw;
        }
        server._loop.Start();
        server._log.LogInformation("Serving {Model} on {Devices} device(s) in {Nodes} node(s); initial placement {Placement} ({Source})",
            setup.Profile.Model.Value, setup.Layout.Devices.Count, setup.Layout.NodeCount, ServingLoop.Describe(server.InitialPlacement),
            PlanSourceModule.describe(server.InitialPlacement.Source));
        return server;
    }

    /// <summary>What the server was made of.</summary>
    public ServerSetup Setup { get; }

    /// <summary>The serving clock.</summary>
    public ServerClock Clock { get; }

    /// <summary>The scheduler's view of the devices.</summary>
    public Cluster Cluster => _loop.Cluster;

    /// <summary>The cost model over this machine's profile.</summary>
    public CostModel Cost { get; }

    /// <summary>The placement the server started with.</summary>
    public PlacementPlan InitialPlacement { get; }

    /// <summary>The metrics.</summary>
    public ServingMetrics Metrics { get; }

    /// <summary>Every job held.</summary>
    public JobStore Store { get; }

    /// <summary>The durable journal of the jobs, or null when they are kept in memory only.</summary>
    public JobJournal? Journal => _journal;

    // After a restart: every job the journal holds comes back under its id. A finished one is kept as it was
    // (its result read from its file) until its retention ends; a queued or running one is queued again and
    // starts from the beginning (its deadline: the same time after its new arrival).
    private void Recover()
    {
        if (_journal is null) return;
        var now = Clock.Now;
        var wall = Clock.UtcNow;
        int requeued = 0, kept = 0;
        foreach (var (job, requeue, was) in _journal.Recover(Setup.Profile.Model, now, wall))
        {
            _nextId = Math.Max(_nextId, job.Id.Value);
            Store.Restore(job);
            if (!requeue)
            {
                kept++;
                continue;
            }
            job.Terminal += OnTerminal;
            _loop.Submit(job);
            requeued++;
            // accepted counts this process's acceptances; a job queued again from the store is counted here, so that
            // accepted + recovered = the final outcomes + the jobs in flight
            Metrics.Requests.Add(1, new KeyValuePair<string, object?>("outcome", "recovered"));
            using var traced = job.Trace.Enter();
            _log.LogInformation("Recovered job {Request} ({Status} when the server stopped): queued again", job.Id.Value, was.ToString().ToLowerInvariant());
        }
        Store.EvictExpired();
        _log.LogInformation("Job store {Directory}: {Requeued} job(s) queued again, {Kept} finished job(s) kept; next id {Next}",
            _journal.Directory, requeued, kept, _nextId + 1);
    }

    /// <summary>The workers, by device id.</summary>
    public IReadOnlyList<Worker> Workers => _loop.Workers;

    /// <summary>Devices <paramref name="devices"/> left the cluster (their worker died): the serving loop takes
    /// them out of planning, re-plans the placement, and re-queues the requests whose work they had.</summary>
    public void DevicesLeft(IReadOnlyList<int> devices, string reason) => _loop.Left(devices, reason);

    /// <summary>Devices that left are back in the cluster (their worker restarted at the same address).</summary>
    public void DevicesBack(IReadOnlyList<int> devices) => _loop.Back(devices);

    /// <summary>A new node's devices join the running server: they get the ids after the last device and the
    /// next node id (<paramref name="assigned"/> hears the specs with their ids before any executor is
    /// created for them: <see cref="ServerSetup.Executors"/> creates those), their workers start, and the
    /// placement is re-planned with them at the next round.</summary>
    /// <param name="devices">The node's devices (ids and node ignored).</param>
    /// <param name="assigned">Receives the devices with their ids.</param>
    /// <returns>The devices with their ids.</returns>
    public IReadOnlyList<DeviceSpec> JoinNode(IReadOnlyList<DeviceSpec> devices, Action<IReadOnlyList<DeviceSpec>>? assigned = null)
    {
        if (devices.Count == 0) throw new ArgumentException("a node has at least one device", nameof(devices));
        lock (_joinGate)
        {
            var first = _grown.Devices.Length;
            var node = _grown.NodeCount;
            var specs = devices.Select((d, i) => d with { Id = first + i, Node = node }).ToArray();
            _grown = new Cluster([.. _grown.Devices, .. specs.Select(d => new Device(d.DeviceId, NodeId.NewNodeId(node), d.MemoryGb))],
                node + 1, _grown.Bandwidths);
            assigned?.Invoke(specs);
            var settings = Setup.Settings;
            _loop.Joined(specs, (d, type) => new Worker(d, type, Setup.Executors.Create(d), _loop, settings.WorkerQueueCapacity), _grown);
            _log.LogInformation("Node {Node} joined with {Devices} device(s) (ids {First}-{Last})", node, specs.Length, first, first + specs.Length - 1);
            return specs;
        }
    }

    /// <summary>What the serving loop's warm-up did before its first round (ServingLoop.WarmedUp).</summary>
    public WarmUpRecord? WarmUp => _loop.WarmedUp;

    /// <summary>The loop's state after its last round.</summary>
    public LoopState State => _loop.State;

    /// <summary>Requests waiting for dispatch.</summary>
    public int Waiting => _loop.Waiting;

    /// <summary>A dispatch round still in the history as a <c>trident-snapshot</c> document, or null.</summary>
    public string? RoundDocument(long round) => _loop.RoundDocument(round);

    /// <summary>Why no placement of this cluster can serve this shape (CostModel.unservableOn: a group of its degree on
    /// one node, and devices for the stages its type lacks), or null. The cluster is never empty (a layout has a device;
    /// a coordinator starts once its workers joined) and counts devices that left.</summary>
    public string? Unservable(Shape shape) => CostModelModule.unservableOn(Cost, Cluster, shape) is { } why ? why.Value : null;

    /// <summary>Queues a job, or refuses it when the queue or the store is full.</summary>
    /// <param name="input">What to generate.</param>
    /// <param name="deadlineSeconds">Seconds from now the client allows, or null for the cost model's deadline.</param>
    /// <param name="priority">Optional client priority, -3 … 3 (higher is served first and weighs 2^priority; the API refuses other values, the planner clamps them: Trident.Scheduling.Priority).</param>
    public SubmitOutcome Submit(GenerationInput input, double? deadlineSeconds, int? priority)
    {
        var outcome = SubmitAll([input], deadlineSeconds, priority);
        return outcome is SubmitOutcome.AcceptedAll all ? new SubmitOutcome.Accepted(all.Jobs[0]) : outcome;
    }

    /// <summary>Queues the jobs of one request together — the images of a multi-image request (<c>num_images</c>,
    /// <c>n</c>), each its own job of its own input — or refuses all of them when the queue has no room for all or
    /// the store refuses one (none is queued then). With more than one input the jobs form a group
    /// (<see cref="Job.Group"/>): the serving loop sees them in one round and batches them together when batching
    /// is on.</summary>
    /// <param name="inputs">What to generate, one input per job (at least one).</param>
    /// <param name="deadlineSeconds">Seconds from now the client allows, or null for the cost model's deadline.</param>
    /// <param name="priority">Optional client priority, -3 … 3 (higher is served first and weighs 2^priority; the API refuses other values, the planner clamps them: Trident.Scheduling.Priority).</param>
    /// <returns><see cref="SubmitOutcome.AcceptedAll"/> with the jobs in input order, or why none was queued.</returns>
    public SubmitOutcome SubmitAll(IReadOnlyList<GenerationInput> inputs, double? deadlineSeconds, int? priority)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputs.Count, 1);
        if (Draining) return new SubmitOutcome.Stopping(DrainRetryAfter(), "the server is shutting down and accepts no new work");
        if (NoDevice is { } none)
        {
            Metrics.Requests.Add(inputs.Count, new KeyValuePair<string, object?>("outcome", "rejected"));
            return new SubmitOutcome.Unavailable(NoDeviceRetryAfter, none);
        }
        if (_loop.Waiting + inputs.Count > Setup.Settings.QueueCapacity)
            return Refuse(inputs.Count == 1
                ? $"the queue is full ({Setup.Settings.QueueCapacity} requests waiting)"
                : $"the queue has no room for {inputs.Count} images ({_loop.Waiting} of {Setup.Settings.QueueCapacity} places taken)", inputs[0]);
        var jobs = new List<Job>();
        long? group = null;
        foreach (var input in inputs)
        {
            var now = Clock.Now;
            var shape = input.Shape;
            var deadline = deadlineSeconds is { } d ? now + d : CostModelModule.deadline(Cost, now, shape, input.Steps);
            var id = Interlocked.Increment(ref _nextId);
            if (inputs.Count > 1) group ??= id;
            var request = new Request(RequestId.NewRequestId(id), Setup.Profile.Model, shape, input.Steps, now, deadline,
                priority is { } p ? FSharpOption<int>.Some(p) : FSharpOption<int>.None);
            var job = new Job(request, input, Clock.UtcNow, deadlineSeconds is not null) { Group = group };
            job.Terminal += OnTerminal;
            var refusal = Store.TryAdd(job) ? Record(job, priority) : Refuse($"the job store is full ({Store.Capacity} active jobs)", input);
            if (refusal is not null)
            {
                // the images taken before are not queued: cancelled (so a journal does not resume them) and withdrawn
                foreach (var taken in jobs)
                {
                    taken.RequestCancel(Clock.Now, "withdrawn: another image of its request was refused");
                    Store.Withdraw(taken);
                }
                return refusal;
            }
            jobs.Add(job);
        }
        if (jobs.Count == 1) _loop.Submit(jobs[0]);
        else _loop.Submit(jobs);
        Metrics.Requests.Add(jobs.Count, new KeyValuePair<string, object?>("outcome", "accepted"));
        return new SubmitOutcome.AcceptedAll(jobs);
    }

    // Makes an accepted job durable (when a journal is kept) before the caller answers; the refusal when it cannot.
    private SubmitOutcome? Record(Job job, int? priority)
    {
        if (_journal is null) return null;
        try
        {
            _journal.Accepted(job, priority);
        }
        catch (Exception ex)
        {
            Store.Withdraw(job);
            _log.LogError(ex, "Could not record job {Request} in the job store {Directory}; refused", job.Id.Value, _journal.Directory);
            return Refuse("the job store could not record the job: " + ex.Message, job.Input);
        }
        job.Journal = _journal;
        return null;
    }

    private SubmitOutcome Refuse(string reason, GenerationInput input)
    {
        Metrics.Requests.Add(1, new KeyValuePair<string, object?>("outcome", "rejected"));
        return new SubmitOutcome.Refused(PredictedDrain(), reason);
    }

    /// <summary>When the work accepted so far is predicted to be done: the cost model's time of every job
    /// still waiting for dispatch (served alone at its reference degree) plus what each device still has
    /// planned (its busy-until after the last round), spread over the devices, rounded up to whole seconds,
    /// at least one. This is what 429 and 503 answers put in Retry-After.</summary>
    public TimeSpan PredictedDrain()
    {
        var now = Clock.Now;
        var waiting = _loop.WaitingSeconds;
        var planned = _loop.State.BusyUntil.Sum(b => Math.Max(0, b - now));
        var seconds = Math.Max(1, Math.Ceiling((waiting + planned) / Math.Max(1, Workers.Count)));
        return TimeSpan.FromSeconds(seconds);
    }

    /// <summary>Why no device is in the cluster (every worker left; a coordinator only), or null while one is: the
    /// server is not ready then and refuses new work (<see cref="SubmitOutcome.Unavailable"/>); requests accepted
    /// before wait for a worker (ServingSettings.NoDeviceSeconds). As of the loop's last round.</summary>
    public string? NoDevice => _loop.State.NoDevice;

    /// <summary>Retry-After while no device is in the cluster: a poll interval (when a worker comes back is not known).</summary>
    public static readonly TimeSpan NoDeviceRetryAfter = TimeSpan.FromSeconds(5);

    /// <summary>Whether the server is shutting down (see <see cref="DrainAsync"/>).</summary>
    public bool Draining => !double.IsNaN(Volatile.Read(ref _drainUntil));

    /// <summary>Retry-After while draining: the time left until the drain ends (then the process exits and a
    /// restarted one can take the request), at least a second.</summary>
    public TimeSpan DrainRetryAfter() =>
        TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(Volatile.Read(ref _drainUntil) - Clock.Now)));

    /// <summary>
    /// Graceful shutdown. From now on the server accepts no new job (<see cref="SubmitOutcome.Stopping"/>);
    /// the jobs already accepted keep running (queued ones are still dispatched) for at most
    /// <paramref name="drain"/>; whatever is not over then is cancelled, each job logged by id, and given up
    /// to <paramref name="grace"/> to stop at its next step; a job still not over after that (a stage that
    /// cannot be interrupted) is marked cancelled. So every job ends in a final state, and every event
    /// stream gets its final event. Idempotent: a second call returns the first one's task.
    /// </summary>
    public Task DrainAsync(TimeSpan drain, TimeSpan grace)
    {
        lock (_drainGate)
        {
            if (_drain is not null) return _drain;
            Volatile.Write(ref _drainUntil, Clock.Now + drain.TotalSeconds);
            _drain = RunDrainAsync(drain, grace);
            return _drain;
        }
    }

    private async Task RunDrainAsync(TimeSpan drain, TimeSpan grace)
    {
        var active = Store.Active();
        _log.LogInformation("Shutting down: accepting no new jobs; {Active} job(s) in flight get up to {Drain} s to finish", active.Count, drain.TotalSeconds);
        await WaitForAll(active, drain);
        var left = Store.Active();
        foreach (var job in left)
        {
            // the state it was in when cancelled (queued, encoding, …): a queued job is cancelled at once, so its
            // status afterwards would only say "cancelled"
            var state = job.Status;
            if (job.RequestCancel(Clock.Now, $"the server shut down before it finished (after the drain time of {drain.TotalSeconds:0.###} s)"))
            {
                _loop.Cancelled(job);
                using var traced = job.Trace.Enter();
                _log.LogWarning("Shutting down: cancelled job {Request} ({Status}) after the drain time of {Drain} s", job.Id.Value,
                    state.ToString().ToLowerInvariant(), drain.TotalSeconds);
            }
        }
        await WaitForAll(left, grace);
        foreach (var job in Store.Active())
        {
            job.Cancelled(Clock.Now);
            using var traced = job.Trace.Enter();
            _log.LogWarning("Shutting down: job {Request} did not stop within {Grace} s of its cancellation; marked cancelled", job.Id.Value, grace.TotalSeconds);
        }
        if (left.Count == 0)
            _log.LogInformation("Shutdown drain over: {Finished} job(s) finished, none cancelled", active.Count);
        else
            _log.LogInformation("Shutdown drain over: {Finished} job(s) finished, {Cancelled} cancelled ({Ids})", active.Count - left.Count, left.Count,
                string.Join(", ", left.Select(j => j.Id.Value)));
    }

    private static async Task WaitForAll(IReadOnlyList<Job> jobs, TimeSpan limit)
    {
        if (jobs.Count == 0) return;
        var all = Task.WhenAll(jobs.Select(j => j.Final));
        await Task.WhenAny(all, Task.Delay(limit));
    }

    private void OnTerminal(JobView v)
    {
        var outcome = v.Status switch
        {
            JobStatus.Succeeded => "succeeded",
            JobStatus.Failed => "failed",
            _ => "cancelled",
        };
        Metrics.Requests.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
        if (v.Status == JobStatus.Succeeded && v.Finished is { } f)
        {
            Metrics.RequestLatency.Record(f - v.Arrival);
            var met = v.DeadlineMet == true;
            Interlocked.Increment(ref _succeededWithDeadline);
            if (met) Interlocked.Increment(ref _metDeadline);
            Metrics.Deadlines.Add(1, new KeyValuePair<string, object?>("met", met ? "true" : "false"));
        }
    }

    /// <summary>Succeeded requests since start and how many of them met their deadline (SLO attainment = Met / Succeeded).</summary>
    public (long Succeeded, long Met) Deadlines => (Interlocked.Read(ref _succeededWithDeadline), Interlocked.Read(ref _metDeadline));

    /// <summary>The job with this id, if the store holds it.</summary>
    public Job? Find(RequestId id) => Store.Find(id);

    /// <summary>Cancels a job: at once when none of its stages started, else at its next step boundary.
    /// False when it is already over.</summary>
    public bool Cancel(Job job, string reason = "cancelled by a client")
    {
        if (!job.RequestCancel(Clock.Now, reason)) return false;
        _loop.Cancelled(job);
        return true;
    }

    /// <summary>Position in the dispatch queue (1 = next), or null when the job is not waiting there.</summary>
    public int? QueuePosition(Job job)
    {
        if (job.Status != JobStatus.Queued) return null;
        var queue = _loop.State.Queue;
        var i = queue.IndexOf(job.Id);
        if (i >= 0) return i + 1;
        // accepted since the last round (or routed and waiting for its devices)
        return job.View().Route is null ? queue.Length + 1 : null;
    }

    private void RegisterGauges()
    {
        Metrics.Gauge("trident_queue_depth", "Requests waiting for dispatch.", () => [new Measurement<double>(_loop.Waiting)]);
        Metrics.Gauge("trident_jobs_stored", "Jobs held by the job store.", () => [new Measurement<double>(Store.Count)]);
        Metrics.Gauge("trident_slo_attainment", "Share of succeeded requests that met their deadline.", () =>
        {
            var n = Interlocked.Read(ref _succeededWithDeadline);
            return [new Measurement<double>(n == 0 ? 1.0 : (double)Interlocked.Read(ref _metDeadline) / n)];
        });
        Metrics.Gauge("trident_device_utilisation", "Busy share of each device over the monitor window.", () =>
            _loop.State.Monitor.Utilisation.Select((u, i) => new Measurement<double>(u, new KeyValuePair<string, object?>("device", i.ToString(System.Globalization.CultureInfo.InvariantCulture)))));
        Metrics.Gauge("trident_device_busy", "1 when the device is running a task.", () =>
            Workers.Select(w => new Measurement<double>(w.Current is null ? 0 : 1, new KeyValuePair<string, object?>("device", w.Device.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)))));
    }

    /// <summary>Stops the loop and the workers and releases the sessions. Every job not yet over is cancelled
    /// first, so a running diffuse stops at its next step and shutdown does not wait for whole requests (call
    /// <see cref="DrainAsync"/> first to let them finish); any job still not over once the workers stopped is
    /// marked cancelled, so none is left without a final state.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var job in Store.Active()) job.RequestCancel(Clock.Now, "the server stopped before it finished");
        await _loop.DisposeAsync();
        var workers = _loop.Workers;
        foreach (var w in workers) w.BeginStop();
        foreach (var w in workers) w.Dispose();
        foreach (var job in Store.Active()) job.Cancelled(Clock.Now);
        _journal?.Dispose();
        Metrics.Dispose();
    }
}
