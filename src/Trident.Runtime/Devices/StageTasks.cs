// The typed tasks a worker reads from its channel. An encode, diffuse or decode task may serve a batch:
// its own request and its Mates, run as one run with the batch dimension (IStageExecutor.*Batch); its
// Cancellation is then the batch's, cancelled once every member is (PlanExecutor). Each task carries its completion source: a worker
// completes it with the result, the exception or the cancellation, so a failing task is reported failed
// to whoever waits on it and the worker lives on. A diffuse task of degree k goes to the group's lead
// worker; each of the other k − 1 workers of the group gets a Reserve task that holds it for the
// diffuse's duration (on CPU their threads are the ones the lead's session uses).
//
// Waits are always on work enqueued earlier: a request's encode is enqueued before its diffuse, its
// diffuse before its decode, and the tasks of one group are enqueued together, one round after
// another, by the serving loop alone. So every worker sees any two groups in the same order, and a
// group's barrier never waits on a worker that waits on it.

using Trident.Runtime.Imaging;
using Trident.Scheduling;

namespace Trident.Runtime.Devices;

/// <summary>Which stage a task runs (Reserve and Retype run none).</summary>
public enum TaskKind
{
    /// <summary>Encode the prompt.</summary>
    Encode,

    /// <summary>Lead a diffuse group.</summary>
    Diffuse,

    /// <summary>Hold this device for another device's diffuse.</summary>
    Reserve,

    /// <summary>Decode latents.</summary>
    Decode,

    /// <summary>Change the device's placement type (unload models it no longer holds).</summary>
    Retype,
}

/// <summary>One unit of work for one worker.</summary>
/// <param name="TaskId">Unique per server, increasing in enqueue order.</param>
/// <param name="Request">The request it serves (none for Retype).</param>
/// <param name="PredictedSeconds">The cost model's duration, for busy-until estimates.</param>
/// <param name="Cancellation">The request's cancellation; checked before the task starts and, for
/// diffuse, at every step boundary.</param>
public abstract record StageTask(long TaskId, RequestId Request, double PredictedSeconds, CancellationToken Cancellation)
{
    /// <summary>Which kind of task this is.</summary>
    public abstract TaskKind Kind { get; }

    /// <summary>The task, as awaited by the next stage or the request (completes in every case).</summary>
    public abstract Task Completion { get; }

    /// <summary>Completes the task as failed (or cancelled, for an <see cref="OperationCanceledException"/>).</summary>
    public abstract void Fail(Exception error);

    /// <summary>Every request the task serves: <see cref="Request"/>, then the other members of its batch.</summary>
    public virtual IReadOnlyList<RequestId> Requests => [Request];
}

/// <summary>A request that rides along in another request's batch task (issue 12).</summary>
/// <param name="Request">The request.</param>
/// <param name="Input">What it generates (BatchInputs.Compatible with the task's own input).</param>
/// <param name="Observer">Receives its per-step progress (diffuse).</param>
public sealed record BatchMate(RequestId Request, GenerationInput Input, IStepObserver Observer);

internal static class Batches
{
    public static IReadOnlyList<GenerationInput> Inputs(GenerationInput input, IReadOnlyList<BatchMate>? mates) =>
        mates is null or { Count: 0 } ? [input] : [input, .. mates.Select(m => m.Input)];

    public static IReadOnlyList<RequestId> Requests(RequestId request, IReadOnlyList<BatchMate>? mates) =>
        mates is null or { Count: 0 } ? [request] : [request, .. mates.Select(m => m.Request)];
}

/// <summary>Encode a request's prompt on this device.</summary>
/// <param name="TaskId">Unique per server, increasing in enqueue order.</param>
/// <param name="Request">The request it serves.</param>
/// <param name="PredictedSeconds">The cost model's duration.</param>
/// <param name="Cancellation">The request's cancellation.</param>
/// <param name="Input">What to generate.</param>
/// <param name="Mates">The other requests of its batch (none: a batch of one); their prompts are encoded in the same run.</param>
public sealed record EncodeTask(long TaskId, RequestId Request, double PredictedSeconds, CancellationToken Cancellation, GenerationInput Input,
    IReadOnlyList<BatchMate>? Mates = null)
    : StageTask(TaskId, Request, PredictedSeconds, Cancellation)
{
    /// <summary>The inputs of the batch, this task's own first.</summary>
    public IReadOnlyList<GenerationInput> Inputs => Batches.Inputs(Input, Mates);

    /// <summary>Whether the batch's prompts are encoded one request at a time (IStageExecutor.EncodeItems): the
    /// profile's batch points show no gain for this stage at this shape and batch size.</summary>
    public bool ItemByItem { get; init; }

    /// <inheritdoc />
    public override IReadOnlyList<RequestId> Requests => Batches.Requests(Request, Mates);

    /// <summary>The embeddings.</summary>
    public TaskCompletionSource<StageOutput> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <inheritdoc />
    public override TaskKind Kind => TaskKind.Encode;

    /// <inheritdoc />
    public override Task Completion => Result.Task;

    /// <inheritdoc />
    public override void Fail(Exception error) => StageTaskResults.Fail(Result, error, Cancellation);
}

/// <summary>Lead a diffuse group: wait for the embeddings and for every seat of the group, then run the
/// denoising loop with the group's threads.</summary>
/// <param name="TaskId">Unique per server, increasing in enqueue order.</param>
/// <param name="Request">The request it serves.</param>
/// <param name="PredictedSeconds">The cost model's duration.</param>
/// <param name="Cancellation">The request's cancellation.</param>
/// <param name="Input">What to generate.</param>
/// <param name="Embeddings">The encode task's result, from whichever device encoded.</param>
/// <param name="Degree">k, the devices of the group.</param>
/// <param name="IntraOpThreads">The group's thread budget (the sum over its devices).</param>
/// <param name="Seats">One per other device of the group: set when that device's worker reaches its
/// Reserve task.</param>
/// <param name="Observer">Receives per-step progress.</param>
/// <param name="Mates">The other requests of its batch (none: a batch of one), denoised in the same runs.</param>
/// <param name="From">A suspended diffuse this task resumes (preemption, issue 12), or null to start from noise.</param>
/// <param name="Suspend">Set by the serving loop to suspend the task at its next step boundary (preemption); null
/// for a task that is never suspended (a batch, or preemption off). A suspended task's result faults with
/// <see cref="DiffuseSuspendedException"/>.</param>
public sealed record DiffuseTask(
    long TaskId,
    RequestId Request,
    double PredictedSeconds,
    CancellationToken Cancellation,
    GenerationInput Input,
    Task<StageOutput> Embeddings,
    int Degree,
    int IntraOpThreads,
    IReadOnlyList<TaskCompletionSource> Seats,
    IStepObserver Observer,
    IReadOnlyList<BatchMate>? Mates = null,
    DiffuseCheckpoint? From = null,
    SuspendSignal? Suspend = null)
    : StageTask(TaskId, Request, PredictedSeconds, Cancellation)
{
    /// <summary>The inputs of the batch, this task's own first.</summary>
    public IReadOnlyList<GenerationInput> Inputs => Batches.Inputs(Input, Mates);

    /// <summary>The step observers of the batch, this task's own first.</summary>
    public IReadOnlyList<IStepObserver> Observers => Mates is null or { Count: 0 } ? [Observer] : [Observer, .. Mates.Select(m => m.Observer)];

    /// <inheritdoc />
    public override IReadOnlyList<RequestId> Requests => Batches.Requests(Request, Mates);

    /// <summary>The latents.</summary>
    public TaskCompletionSource<StageOutput> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Set by the serving loop to withdraw a queued resumption (<see cref="From"/> not null) before it runs a
    /// step: when its worker reaches it, it ends at once with a <see cref="DiffuseSuspendedException"/> carrying
    /// <see cref="From"/> itself, and the loop queues it again (a later preemption suspended the segment it was queued
    /// behind: Preemption's <c>Behind</c>). Ignored by a task that starts from noise or that already runs.</summary>
    public SuspendSignal Withdrawal { get; } = new();

    /// <summary>The gang's gate (a group of two or more devices; null alone): the lead starts its diffuse only through
    /// it, once every seat is taken and no member runs a backfill (<see cref="GangGate"/>).</summary>
    public GangGate? Gate { get; init; }

    /// <inheritdoc />
    public override TaskKind Kind => TaskKind.Diffuse;

    /// <inheritdoc />
    public override Task Completion => Result.Task;

    /// <inheritdoc />
    public override void Fail(Exception error) => StageTaskResults.Fail(Result, error, Cancellation);
}

/// <summary>Asks a running diffuse task to stop at its next step boundary (step-boundary preemption). Set from
/// the serving loop's thread, read from the worker's; once set it stays set.</summary>
public sealed class SuspendSignal
{
    private volatile bool _requested;

    /// <summary>Whether a suspension was asked for.</summary>
    public bool Requested => _requested;

    /// <summary>Asks for the suspension (idempotent).</summary>
    public void Request() => _requested = true;
}

/// <summary>Hold this device while another device leads a diffuse group it belongs to.</summary>
/// <param name="TaskId">Unique per server, increasing in enqueue order.</param>
/// <param name="Request">The request it serves.</param>
/// <param name="PredictedSeconds">The cost model's duration.</param>
/// <param name="Cancellation">The request's cancellation.</param>
/// <param name="Seat">Set when this worker reaches the task (the lead waits for every seat).</param>
/// <param name="Lead">The group's diffuse; the reservation ends when it completes, in any way.</param>
public sealed record ReserveTask(long TaskId, RequestId Request, double PredictedSeconds, CancellationToken Cancellation, TaskCompletionSource Seat, Task Lead)
    : StageTask(TaskId, Request, PredictedSeconds, Cancellation)
{
    /// <summary>The gang's gate, shared with the lead's diffuse (null: the member only waits for the lead): while
    /// the gang has not started, the seated member may run its worker's backfill lane through it.</summary>
    public GangGate? Gate { get; init; }

    /// <inheritdoc />
    public override TaskKind Kind => TaskKind.Reserve;

    /// <inheritdoc />
    public override Task Completion => Lead;

    /// <inheritdoc />
    public override void Fail(Exception error) => Seat.TrySetResult();
}

/// <summary>The gate of a gang (a diffuse group of two or more devices), shared by the lead's diffuse and its Reserve
/// tasks (live backfilling, docs/policies.md "Backfilling"). A seated member, or the lead waiting for its seats or
/// embeddings, may run a task of its worker's backfill lane (Worker.EnqueueAhead) only while the gang has not
/// started, inside the gate (<see cref="TryEnter"/> … <see cref="Leave"/>); the lead starts only when every seat is
/// taken and no member is inside (<see cref="TryStart"/>, decided under the gate's lock, so no member enters after
/// it). Thread-safe.</summary>
public sealed class GangGate
{
    private readonly object _lock = new();
    private readonly IReadOnlyList<TaskCompletionSource> _seats;
    private int _inside;
    private bool _started;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The gate of the gang led by task <paramref name="leadTaskId"/> with <paramref name="seats"/> (one per
    /// other device of the group).</summary>
    public GangGate(long leadTaskId, IReadOnlyList<TaskCompletionSource> seats)
    {
        LeadTaskId = leadTaskId;
        _seats = seats;
    }

    /// <summary>The task id of the gang's lead diffuse (the gang's identity in the ledger).</summary>
    public long LeadTaskId { get; }

    /// <summary>Whether the lead started the gang's diffuse (no member enters the gate from then on).</summary>
    public bool Started
    {
        get { lock (_lock) return _started; }
    }

    /// <summary>Completes at the next change of the gate (a member left it, the gang started); take it before
    /// checking the state, then wait on it.</summary>
    public Task Changed
    {
        get { lock (_lock) return _changed.Task; }
    }

    /// <summary>Enters the gate to run a backfill on a device of the gang: false once the gang started.</summary>
    public bool TryEnter()
    {
        lock (_lock)
        {
            if (_started) return false;
            _inside++;
            return true;
        }
    }

    /// <summary>Leaves the gate after a backfill (after a successful <see cref="TryEnter"/>).</summary>
    public void Leave()
    {
        lock (_lock) _inside--;
        Pulse();
    }

    /// <summary>Starts the gang (the lead): true when every seat is taken and no member is inside the gate (or it
    /// started already); from then on <see cref="TryEnter"/> refuses.</summary>
    public bool TryStart()
    {
        lock (_lock)
        {
            if (_started) return true;
            if (_inside > 0 || _seats.Any(s => !s.Task.IsCompleted)) return false;
            _started = true;
        }
        Pulse();
        return true;
    }

    private void Pulse()
    {
        TaskCompletionSource old;
        lock (_lock)
        {
            old = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        old.TrySetResult();
    }
}

/// <summary>Decode a request's latents on this device.</summary>
/// <param name="TaskId">Unique per server, increasing in enqueue order.</param>
/// <param name="Request">The request it serves.</param>
/// <param name="PredictedSeconds">The cost model's duration.</param>
/// <param name="Cancellation">The request's cancellation.</param>
/// <param name="Input">What to generate.</param>
/// <param name="Latents">The diffuse task's result, from whichever group diffused.</param>
/// <param name="Mates">The other requests of its batch (none: a batch of one), decoded in the same run.</param>
public sealed record DecodeTask(long TaskId, RequestId Request, double PredictedSeconds, CancellationToken Cancellation, GenerationInput Input, Task<StageOutput> Latents,
    IReadOnlyList<BatchMate>? Mates = null)
    : StageTask(TaskId, Request, PredictedSeconds, Cancellation)
{
    /// <summary>The frames of each request of the batch, in <see cref="Inputs"/> order (one frame for an image).</summary>
    public TaskCompletionSource<IReadOnlyList<IReadOnlyList<RgbImage>>> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Whether the batch's latents are decoded one request at a time (IStageExecutor.DecodeItems): the
    /// profile's batch points show no gain for this stage at this shape and batch size.</summary>
    public bool ItemByItem { get; init; }

    /// <summary>When the plan predicts the latents to be ready (server clock, seconds: the dispatch's diffuse
    /// finish); null when not known. The ledger keeps a decode whose latents are not due yet out of its device's
    /// busy-until, as the worker holds it aside (DeviceLedger.Schedule).</summary>
    public double? LatentsReadyAt { get; init; }

    /// <summary>Decode preemption (issue 12): a video decode of a request alone runs in temporal tiles of this many
    /// frames and may pause between two of them for an expedited decode (<see cref="Expedite"/>) on its device,
    /// its state kept on the device (IStageExecutor.DecodeTiles); 0: it runs in one piece and never pauses.</summary>
    public int TileFrames { get; init; }

    /// <summary>The most times this decode pauses for expedited decodes (PreemptionSettings.MaxSuspensions).</summary>
    public int MaxPauses { get; init; }

    private volatile Expedition? _expedited;
    private int _pauses;

    /// <summary>Set (serving-loop thread) when decode preemption puts this decode in ahead of the decodes queued on
    /// its device: the worker runs it first among its ready decodes and, when <see cref="Expedition.Pause"/> names
    /// the decode running there, at that decode's next tile boundary. Null: in queue order.</summary>
    public Expedition? Expedited => _expedited;

    /// <summary>Puts this decode in ahead of the decodes queued on its device (decode preemption); it pauses the
    /// running decode whose task id is <paramref name="pause"/> (if any) at that decode's next tile boundary.</summary>
    public void Expedite(long? pause) => _expedited = new Expedition(pause);

    /// <summary>Times this decode paused between two tiles for an expedited decode.</summary>
    public int Pauses => Volatile.Read(ref _pauses);

    /// <summary>Counts one pause (the worker, when it runs an expedited decode between two of its tiles).</summary>
    internal void CountPause() => Interlocked.Increment(ref _pauses);

    /// <summary>The inputs of the batch, this task's own first.</summary>
    public IReadOnlyList<GenerationInput> Inputs => Batches.Inputs(Input, Mates);

    /// <inheritdoc />
    public override IReadOnlyList<RequestId> Requests => Batches.Requests(Request, Mates);

    /// <inheritdoc />
    public override TaskKind Kind => TaskKind.Decode;

    /// <inheritdoc />
    public override Task Completion => Result.Task;

    /// <inheritdoc />
    public override void Fail(Exception error) => StageTaskResults.Fail(Result, error, Cancellation);
}

/// <summary>A decode put in ahead of its device's queue by decode preemption.</summary>
/// <param name="Pause">The task id of the decode it pauses at that decode's next tile boundary; null when it only goes
/// ahead of the queued decodes (none was running when it was decided).</param>
public sealed record Expedition(long? Pause);

/// <summary>Change the device's placement type: from here on it keeps only the stage models of
/// <paramref name="Type"/>, loading each lazily. Work enqueued earlier (planned under the old placement)
/// has already run, since the channel is FIFO.</summary>
public sealed record RetypeTask(long TaskId, PlacementType Type)
    : StageTask(TaskId, RequestId.NewRequestId(-1), 0.0, CancellationToken.None)
{
    /// <summary>Completes when the device has its new type.</summary>
    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <inheritdoc />
    public override TaskKind Kind => TaskKind.Retype;

    /// <inheritdoc />
    public override Task Completion => Done.Task;

    /// <inheritdoc />
    public override void Fail(Exception error) => Done.TrySetException(error);
}

internal static class StageTaskResults
{
    // A run stopped by the request's cancellation ends cancelled. A suspension is kept as it is even when a cancel came
    // as the run stopped: it carries the checkpoint, which PlanExecutor discards (or the loop, once it heard of it);
    // ended cancelled, the checkpoint was lost undiscarded (on a cluster worker it stayed until it expired).
    public static void Fail<T>(TaskCompletionSource<T> result, Exception error, CancellationToken token)
    {
        if (error is OperationCanceledException and not DiffuseSuspendedException && token.IsCancellationRequested) result.TrySetCanceled(token);
        else result.TrySetException(error);
    }
}
