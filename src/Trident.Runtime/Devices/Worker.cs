// One worker per device: a single thread that runs the device's stage tasks in FIFO order from a bounded
// channel (except that a decode whose latents are not ready yet lets the ready tasks behind it go first, and that an
// expedited decode goes first among the ready ones, between two tiles of a running decode if it pauses that one; see Run). It knows its placement type (the stage models it should keep): it loads the type's models before
// its first task and on every Retype (unloading what the new type no longer holds), as a placement moves
// weights; a load that fails is retried by the executor on the stage's first task, which then reports it. Blocking on a dedicated thread (not the thread pool) suits ONNX Runtime calls,
// which block for the length of a stage, and keeps them off ASP.NET Core's threads.
// The observer hears of a task twice at its start: Started when the worker takes it (the device is busy from
// then on), Running when its stage work begins (inputs ready, not cancelled), which is what a job's stage
// timings record, so a stage skipped by a cancellation or an earlier failure reports no timing.
// Backfill lane (live backfilling, docs/policies.md "Backfilling"): tasks given with EnqueueAhead run, in lane order,
// before anything else the worker would take next — in its main loop, and also while it waits at a gang that has
// not started (seated in a Reserve task, or as the lead waiting for its seats), through the gang's GangGate.

using System.Threading.Channels;
using Trident.Scheduling;

namespace Trident.Runtime.Devices;

/// <summary>Told when a worker starts and finishes a task (on the worker's thread; must not block).</summary>
public interface IWorkerObserver
{
    /// <summary>The worker took <paramref name="task"/> off its queue and starts it.</summary>
    void Started(Worker worker, StageTask task);

    /// <summary>The task's stage work begins: its inputs are ready and it was not cancelled (not called for a
    /// task skipped by a cancellation or an earlier stage's failure, nor for Reserve and Retype).</summary>
    void Running(Worker worker, StageTask task) { }

    /// <summary>The task is over: <paramref name="error"/> is null on success.</summary>
    void Finished(Worker worker, StageTask task, Exception? error);

    /// <summary>Decode preemption: <paramref name="paused"/> pauses between two tiles and <paramref name="urgent"/>
    /// (expedited) runs now; <paramref name="paused"/> goes on when it ends.</summary>
    void DecodePaused(Worker worker, DecodeTask paused, DecodeTask urgent) { }
}

/// <summary>The single-threaded FIFO executor of one device.</summary>
public sealed class Worker : IDisposable
{
    private readonly Channel<StageTask> _channel;
    private readonly IStageExecutor _executor;
    private readonly IWorkerObserver _observer;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Thread _thread;
    private volatile StageTask? _current;
    private volatile PlacementType _type;
    private int _queued;
    // decodes taken off the queue and set aside (worker thread only): not ready when read, or absorbed (Run)
    private readonly List<DecodeTask> _held = new();
    // the backfill lane (EnqueueAhead), its lock, whether it is closed (the worker stopped) and its pulse: completed
    // and replaced whenever a task enters the lane (take it before checking the lane, then wait on it)
    private readonly Queue<StageTask> _lane = new();
    private readonly object _laneLock = new();
    private bool _laneClosed;
    private TaskCompletionSource _lanePulse = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Starts the worker's thread.</summary>
    /// <param name="device">The device.</param>
    /// <param name="type">Its initial placement type.</param>
    /// <param name="executor">Its executor (owned by the worker from now on).</param>
    /// <param name="observer">Told about every task.</param>
    /// <param name="capacity">Bound of the task channel; a full channel makes writers wait.</param>
    public Worker(DeviceSpec device, PlacementType type, IStageExecutor executor, IWorkerObserver observer, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Device = device;
        _type = type;
        _executor = executor;
        _observer = observer;
        _channel = Channel.CreateBounded<StageTask>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
        _thread = new Thread(Run) { IsBackground = true, Name = $"trident-worker-{device.Id}" };
        _thread.Start();
    }

    /// <summary>The device this worker runs.</summary>
    public DeviceSpec Device { get; }

    /// <summary>The placement type of the last Retype the worker ran (or its initial type).</summary>
    public PlacementType Type => _type;

    /// <summary>Stage models resident now.</summary>
    public IReadOnlySet<Stage> Resident => _executor.Resident;

    /// <summary>Whether its executor can suspend a diffuse at a step boundary and resume it (preemption).</summary>
    public bool CanSuspend => _executor.CanSuspend;

    /// <summary>Whether its executor decodes videos in temporal tiles that can pause for an expedited decode.</summary>
    public bool CanPauseDecode => _executor.CanPauseDecode;

    /// <summary>Frees an output of this device's executor that nothing will read (IStageExecutor.Discard); any
    /// thread, not queued behind the device's tasks.</summary>
    public void Discard(StageOutput output) => _executor.Discard(output);

    /// <summary>Frees a checkpoint of this device's executor that nothing will resume (IStageExecutor.Discard); any
    /// thread, not queued behind the device's tasks.</summary>
    public void Discard(DiffuseCheckpoint checkpoint) => _executor.Discard(checkpoint);

    /// <summary>The task running now, if any.</summary>
    public StageTask? Current => _current;

    /// <summary>Tasks waiting in the channel or the backfill lane.</summary>
    public int QueueLength => Volatile.Read(ref _queued);

    /// <summary>Queues a task; waits while the channel is full.</summary>
    public async ValueTask EnqueueAsync(StageTask task, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _queued);
        try
        {
            await _channel.Writer.WriteAsync(task, cancellationToken);
        }
        catch
        {
            Interlocked.Decrement(ref _queued);
            throw;
        }
    }

    /// <summary>Puts a task in the backfill lane (live backfilling): it runs, in lane order, before anything else the
    /// worker takes next — also while the worker waits at a gang that has not started (a seated Reserve task, or the
    /// lead waiting for its seats), which then starts only after it. A lane task is taken only once its input is there
    /// (a diffuse's embeddings, a decode's latents); until then it and the lane behind it wait, and the worker runs its
    /// queue (a gang it waits at may start). Thread-safe, never waits; a task given after the worker stopped is reported
    /// failed at once.</summary>
    public void EnqueueAhead(StageTask task)
    {
        TaskCompletionSource pulse;
        lock (_laneLock)
        {
            if (!_laneClosed)
            {
                Interlocked.Increment(ref _queued);
                _lane.Enqueue(task);
                pulse = _lanePulse;
                _lanePulse = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            else pulse = null!;
        }
        if (pulse is null)
        {
            Interlocked.Increment(ref _queued);
            Stopped(task);
            return;
        }
        pulse.TrySetResult();
    }

    // Completes when a task enters the lane after this call.
    private Task LaneSignal
    {
        get { lock (_laneLock) return _lanePulse.Task; }
    }

    // The input a lane task waits for (a diffuse's embeddings, a decode's latents), or null for one that waits for
    // nothing or whose request is cancelled (it is taken and ends at once). A lane task is taken only once its input is
    // there: it may come from another device's normal queue, and a lane task that waited for it could hold a gang that
    // work on that device waits for (a placement change's barrier waits for decodes whose latents the gang makes).
    private static Task? InputOf(StageTask task) =>
        task.Cancellation.IsCancellationRequested ? null : task switch
        {
            DiffuseTask d => d.Embeddings,
            DecodeTask c => c.Latents,
            _ => null,
        };

    // Whether a lane task can run now: its input is there (or it needs none, or its request is cancelled).
    private static bool Ready(StageTask task) => InputOf(task) is not { IsCompleted: false };

    // Whether the lane's head can run now; `waiting` is the head when it cannot (null when the lane is empty). The lane
    // runs in order: a head that waits holds the tasks behind it.
    private bool LaneReady(out StageTask? waiting)
    {
        lock (_laneLock)
        {
            waiting = null;
            if (!_lane.TryPeek(out var head)) return false;
            if (Ready(head)) return true;
            waiting = head;
            return false;
        }
    }

    // What a worker about to wait adds to its wait for the lane (after a failed attempt to take from it): the input the
    // lane's head waits for, woken by the head's cancellation as well, if any; true instead when the head became ready
    // since the attempt (the caller tries again; never once stopping, so a stopping worker does not spin on a lane it
    // no longer runs). The cancellable wait is made here only, where the worker waits, not at every look at the lane.
    private bool LaneWait(out Task? input)
    {
        input = null;
        if (!LaneReady(out var waiting) && waiting is null) return false;
        if (waiting is not null && InputOf(waiting) is { IsCompleted: false } pending)
        {
            input = waiting.Cancellation.CanBeCanceled ? pending.WaitAsync(waiting.Cancellation) : pending;
            return false;
        }
        return !_stopping.IsCancellationRequested;
    }

    // Takes the lane's head when it can run now (Ready).
    private bool TryTakeLane(out StageTask task)
    {
        lock (_laneLock)
        {
            if (_lane.TryPeek(out task!) && Ready(task) && _lane.TryDequeue(out task!))
            {
                Interlocked.Decrement(ref _queued);
                return true;
            }
            return false;
        }
    }

    // At a gang that has not started: runs the next lane task inside the gang's gate; false when the lane is empty or
    // its head waits for its input, the gang started or the worker is stopping (the lane then waits for the main loop).
    private bool RunLaneInGate(GangGate gate)
    {
        if (_stopping.IsCancellationRequested || !LaneReady(out _) || !gate.TryEnter()) return false;
        try
        {
            if (!TryTakeLane(out var task)) return false;
            Execute(task);
            return true;
        }
        finally
        {
            gate.Leave();
        }
    }

    // The lead of a gang with a gate: waits for its embeddings and every seat, running lane tasks meanwhile, and starts
    // the gang when no member is inside the gate either (GangGate.TryStart); the request's cancellation ends the wait.
    private StageOutput AwaitGang(DiffuseTask d, GangGate gate)
    {
        while (true)
        {
            // everything the wait below wakes on is read before the checks, so a change during them is not lost (the
            // embeddings or the last seat arriving after the check, but before the wait, once left the lead waiting
            // for ever with every seat taken)
            var changed = gate.Changed;
            var lane = LaneSignal;
            var encoded = d.Embeddings.IsCompleted;
            var seats = d.Seats.Select(s => s.Task).Where(t => !t.IsCompleted).ToList();
            if (encoded)
            {
                // a failed or cancelled encode fails the diffuse, as before
                var embeddings = d.Embeddings.GetAwaiter().GetResult();
                if (gate.TryStart()) return embeddings;
            }
            if (RunLaneInGate(gate)) continue;
            if (LaneWait(out var input)) continue;
            var waits = new List<Task>(seats) { changed, lane };
            if (!encoded) waits.Add(d.Embeddings);
            if (input is not null) waits.Add(input);
            Task.WaitAny([.. waits], d.Cancellation);
            d.Cancellation.ThrowIfCancellationRequested();
        }
    }

    // A seated member of a gang with a gate: runs lane tasks inside the gate while the gang has not started, and waits
    // for the lead's diffuse to end in any way (a Reserve never gives up on its own: the lead always ends).
    private void AwaitLead(ReserveTask r, GangGate gate)
    {
        while (!r.Lead.IsCompleted)
        {
            var lane = LaneSignal;
            var changed = gate.Changed;
            if (gate.Started || _stopping.IsCancellationRequested)
            {
                ((IAsyncResult)r.Lead).AsyncWaitHandle.WaitOne();
                return;
            }
            if (RunLaneInGate(gate)) continue;
            if (LaneWait(out var input)) continue;
            Task.WaitAny(input is null ? [r.Lead, lane, changed] : [r.Lead, lane, changed, input]);
        }
    }

    /// <summary>Unloads the resident models of the stages <paramref name="type"/> does not hold, except
    /// <paramref name="running"/>'s. Before a task, with the stage it runs: a group's lead runs a stage its type lacks
    /// when the placement has no auxiliary device for it (Admissible.leadRuns: a cluster too small for one) and loads it
    /// for that task; the simulator drops it again at the device's next task of another stage
    /// (AdjustOnDispatch.residentAfter), and the planners count on that memory (flux 2048² on two ⟨DC⟩ devices: the
    /// text encoders beside the decode would not fit).</summary>
    private void UnloadOthers(PlacementType type, Stage? running = null)
    {
        var keep = PlacementTypeModule.stages(type);
        foreach (var stage in _executor.Resident.ToArray())
            if (!keep.Contains(stage) && !stage.Equals(running)) _executor.Unload(stage);
    }

    /// <summary>Loads the models of <paramref name="type"/> that are not resident. A failure is left to the
    /// stage's first task, which loads again and fails with the reason if the model is still unusable.</summary>
    private void LoadModels(PlacementType type)
    {
        var resident = _executor.Resident;
        foreach (var stage in PlacementTypeModule.stages(type))
        {
            if (resident.Contains(stage) || _stopping.IsCancellationRequested) continue;
            try
            {
                _executor.Load(stage);
            }
            catch (Exception)
            {
                // reported by the task that needs the stage
            }
        }
    }

    // FIFO, with two exceptions. A decode whose latents are not ready yet is held aside, so it does not block the
    // decodes behind it whose latents are (head-of-line blocking); held decodes run, oldest first, as soon as their
    // latents are ready, before the next task from the queue. The simulator's decode devices take the earliest gap
    // the same way (Simulator.runTask). And an expedited decode (decode preemption: DecodeTask.Expedite) runs first
    // among the ready ones — between two tiles of the decode it pauses, if it names the one running (BetweenTiles).
    // The decodes at the head of the queue are taken aside with the held ones (Absorb) so that an expedited one
    // queued behind them is seen; that keeps the order above, since they would run next anyway.
    private void Run()
    {
        var reader = _channel.Reader;
        // an executor may start with models resident (sessions adopted from the server's start-up check): what the
        // placement type does not hold is released, as at a re-type
        UnloadOthers(_type);
        LoadModels(_type);
        try
        {
            while (true)
            {
                var laneSignal = LaneSignal;
                // the backfill lane first (not once stopping: what is left there is reported failed)
                if (!_stopping.IsCancellationRequested && TryTakeLane(out var ahead))
                {
                    Execute(ahead);
                    continue;
                }
                Absorb();
                if (NextHeld() is { } c)
                {
                    _held.Remove(c);
                    Interlocked.Decrement(ref _queued);
                    Execute(c);
                    continue;
                }
                if (reader.TryRead(out var task))
                {
                    // a decode queued since Absorb
                    if (task is DecodeTask d)
                    {
                        _held.Add(d);
                        continue;
                    }
                    // a placement change is a barrier: the decodes queued before it run under the old type
                    while (task is RetypeTask && _held.Count > 0)
                    {
                        var first = Task.WaitAny(_held.Select(h => (Task)h.Latents).ToArray(), _stopping.Token);
                        var h = _held[first];
                        _held.RemoveAt(first);
                        Interlocked.Decrement(ref _queued);
                        Execute(h);
                    }
                    Interlocked.Decrement(ref _queued);
                    Execute(task);
                    continue;
                }
                // nothing runnable: wait for a new task, a lane task or a held decode's latents
                // a lane head waiting for its input wakes the worker when the input comes (checked before the channel's
                // wait is made, so a head that became ready leaves no wait behind)
                if (LaneWait(out var laneInput)) continue;
                var more = reader.WaitToReadAsync(_stopping.Token).AsTask();
                Task[] laneWaits = laneInput is not null ? [laneSignal, laneInput] : [laneSignal];
                if (_held.Count == 0)
                {
                    Task.WaitAny([more, .. laneWaits]);
                    if (more.IsCompleted && !more.GetAwaiter().GetResult()) break;
                    continue;
                }
                var latents = _held.Select(h => (Task)h.Latents).ToArray();
                Task.WaitAny([more, .. laneWaits, .. latents]);
                if (_stopping.IsCancellationRequested) break;
                // the queue is closed: only the held decodes (and the lane) are left
                if (more.IsCompletedSuccessfully && !more.Result) Task.WaitAny([.. laneWaits, .. latents]);
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        // Stopping: whatever is left is reported failed, so nothing waits on it forever.
        List<StageTask> laned;
        lock (_laneLock)
        {
            _laneClosed = true;
            laned = [.. _lane];
            _lane.Clear();
        }
        foreach (var left in laned) Stopped(left);
        foreach (var left in _held) Stopped(left);
        _held.Clear();
        while (reader.TryRead(out var left)) Stopped(left);
    }

    // Takes the decodes at the head of the queue aside, up to the first task of another kind (worker thread).
    private void Absorb()
    {
        var reader = _channel.Reader;
        while (reader.TryPeek(out var head) && head is DecodeTask d && reader.TryRead(out _)) _held.Add(d);
    }

    private static bool Runnable(DecodeTask d) => d.Latents.IsCompleted || d.Cancellation.IsCancellationRequested;

    // The held decode to run next: an expedited runnable one, else the oldest runnable one; null when none is.
    private DecodeTask? NextHeld() =>
        _held.Find(h => h.Expedited is not null && Runnable(h)) ?? _held.Find(Runnable);

    // Between two tiles of `running` (decode preemption): an expedited decode whose latents are ready and that names
    // `running` as the decode it pauses runs now, on this thread, while `running` keeps its state on the device; at
    // most running.MaxPauses times. One per tile boundary.
    private void BetweenTiles(DecodeTask running)
    {
        if (running.Pauses >= running.MaxPauses) return;
        Absorb();
        var urgent = _held.Find(h => h.Expedited?.Pause == running.TaskId && h.Latents.IsCompletedSuccessfully && !h.Cancellation.IsCancellationRequested);
        if (urgent is null) return;
        _held.Remove(urgent);
        Interlocked.Decrement(ref _queued);
        running.CountPause();
        _observer.DecodePaused(this, running, urgent);
        Execute(urgent);
    }

    private void Stopped(StageTask left)
    {
        Interlocked.Decrement(ref _queued);
        left.Fail(new OperationCanceledException("the server is stopping"));
        _observer.Finished(this, left, new OperationCanceledException("the server is stopping"));
    }

    private void Execute(StageTask task)
    {
        // an expedited decode runs inside the decode it pauses (BetweenTiles): that one is current again after it
        var outer = _current;
        _current = task;
        Exception? error = null;
        try
        {
            _observer.Started(this, task);
            var stage = task switch
            {
                EncodeTask => Stage.Encode,
                DiffuseTask or ReserveTask => Stage.Diffuse,
                DecodeTask => Stage.Decode,
                _ => null
            };
            if (stage is not null) UnloadOthers(_type, stage);
            switch (task)
            {
                case EncodeTask e:
                    e.Cancellation.ThrowIfCancellationRequested();
                    _observer.Running(this, task);
                    e.Result.TrySetResult(e.Mates is null ? _executor.Encode(e.Input, e.Cancellation)
                        : e.ItemByItem ? _executor.EncodeItems(e.Inputs, e.Cancellation) : _executor.EncodeBatch(e.Inputs, e.Cancellation));
                    break;
                case DiffuseTask d:
                    d.Cancellation.ThrowIfCancellationRequested();
                    // a queued resumption withdrawn before it ran (DiffuseTask.Withdrawal): it stops where it is, at the
                    // step its checkpoint holds, before it waits for anything
                    if (d.From is { } kept && d.Withdrawal.Requested) throw new DiffuseSuspendedException(kept);
                    StageOutput embeddings;
                    if (d.Gate is { } gang) embeddings = AwaitGang(d, gang);
                    else
                    {
                        embeddings = d.Embeddings.WaitAsync(d.Cancellation).GetAwaiter().GetResult();
                        foreach (var seat in d.Seats) seat.Task.WaitAsync(d.Cancellation).GetAwaiter().GetResult();
                    }
                    d.Cancellation.ThrowIfCancellationRequested();
                    _observer.Running(this, task);
                    if (d.Mates is null && (d.From is not null || d.Suspend is not null))
                    {
                        // a segment that may be suspended, or resumes one (a batch never is: issue 12)
                        var signal = d.Suspend;
                        var segment = _executor.DiffuseSegment(d.Input, embeddings, d.IntraOpThreads, d.Observer, d.From,
                            () => signal?.Requested == true, d.Cancellation);
                        if (segment.Suspended is { } checkpoint) throw new DiffuseSuspendedException(checkpoint);
                        d.Result.TrySetResult(segment.Latents!);
                    }
                    else
                        d.Result.TrySetResult(d.Mates is null
                            ? _executor.Diffuse(d.Input, embeddings, d.IntraOpThreads, d.Observer, d.Cancellation)
                            : _executor.DiffuseBatch(d.Inputs, embeddings, d.IntraOpThreads, d.Observers, d.Cancellation));
                    break;
                case ReserveTask r:
                    // Always take the seat, even for a cancelled request, so the lead never waits on it.
                    r.Seat.TrySetResult();
                    if (r.Gate is { } gate) AwaitLead(r, gate);
                    else ((IAsyncResult)r.Lead).AsyncWaitHandle.WaitOne();
                    break;
                case DecodeTask c:
                    c.Cancellation.ThrowIfCancellationRequested();
                    var latents = c.Latents.WaitAsync(c.Cancellation).GetAwaiter().GetResult();
                    c.Cancellation.ThrowIfCancellationRequested();
                    _observer.Running(this, task);
                    c.Result.TrySetResult(c.Mates is null
                        ? [c.TileFrames > 0 && _executor.CanPauseDecode
                            ? _executor.DecodeTiles(c.Input, latents, c.TileFrames, () => BetweenTiles(c), c.Cancellation)
                            : _executor.Decode(c.Input, latents, c.Cancellation)]
                        : c.ItemByItem ? _executor.DecodeItems(c.Inputs, latents, c.Cancellation) : _executor.DecodeBatch(c.Inputs, latents, c.Cancellation));
                    break;
                case RetypeTask t:
                    UnloadOthers(t.Type);
                    _type = t.Type;
                    LoadModels(t.Type);
                    t.Done.TrySetResult();
                    break;
                default:
                    throw new InvalidOperationException($"unknown task {task.GetType().Name}");
            }
        }
        catch (Exception ex)
        {
            error = ex;
            task.Fail(ex);
        }
        finally
        {
            _current = outer;
            _observer.Finished(this, task, error);
        }
    }

    /// <summary>Stops taking tasks; those still queued are reported failed. Returns at once.</summary>
    public void BeginStop()
    {
        if (!_stopping.IsCancellationRequested) _stopping.Cancel();
    }

    /// <summary>Stops taking tasks, fails those still queued, waits for the running one and releases the
    /// executor's sessions.</summary>
    public void Dispose()
    {
        BeginStop();
        _channel.Writer.TryComplete();
        _thread.Join();
        _executor.Dispose();
        _stopping.Dispose();
    }
}
