// A generation job: one client request from acceptance to its result. Its state moves forward only
// (queued → encoding → diffusing → decoding → succeeded | failed | cancelled), except that step-boundary
// preemption (issue 12) moves a diffusing job to suspended and back to diffusing when it resumes (events
// `suspended` and `resumed`, with the step); every change and every diffuse step is published to the job's
// subscribers (server-sent events). Workers update it from their
// threads, the API reads it from request threads: every field is read and written under one lock.
//
// The cancel rule. An accepted cancel (RequestCancel returned true) is a promise: the job ends Cancelled and
// its result is never served. Acceptance and the final transition happen under the same lock, so exactly
// one of them wins: a cancel that comes after Succeed is refused (the API answers 409), and a Succeed or
// Fail that comes after an accepted cancel ends the job Cancelled instead, dropping the result.
//
// Timings. A stage's start is recorded when its work actually begins (inputs ready, not cancelled, see
// Worker), never for a stage skipped because the job was cancelled or an earlier stage failed; a finish is
// recorded only for a stage that started.

using System.Threading.Channels;
using Trident.Runtime.Devices;
using Trident.Runtime.Monitoring;
using Trident.Scheduling;

namespace Trident.Runtime.Serving;

/// <summary>Where a job is.</summary>
public enum JobStatus
{
    /// <summary>Waiting for a dispatch round to route it.</summary>
    Queued,

    /// <summary>Its prompt is being encoded.</summary>
    Encoding,

    /// <summary>Its diffuse group is denoising.</summary>
    Diffusing,

    /// <summary>Its latents are being decoded.</summary>
    Decoding,

    /// <summary>Done; the result is available.</summary>
    Succeeded,

    /// <summary>A stage failed; <see cref="JobView.Error"/> says why.</summary>
    Failed,

    /// <summary>Cancelled by the client (or by the server stopping).</summary>
    Cancelled,

    /// <summary>Its diffuse was suspended at a denoising-step boundary for a more urgent request (preemption);
    /// its latents and sampler state are kept and it resumes on the same devices (then Diffusing again).
    /// Last in the enum: the journal stores statuses by number.</summary>
    Suspended,
}

/// <summary>What a job event reports.</summary>
public enum JobEventKind
{
    /// <summary>The status changed.</summary>
    State,

    /// <summary>A diffuse step completed.</summary>
    Progress,

    /// <summary>The diffuse was suspended at a step boundary (status Suspended; Step = steps done).</summary>
    Suspended,

    /// <summary>The suspended diffuse resumed (status Diffusing; Step = steps done before it resumed).</summary>
    Resumed,
}

/// <summary>One event of a job, as its subscribers see it.</summary>
/// <param name="Sequence">1, 2, … per job.</param>
/// <param name="Kind">State change or step progress.</param>
/// <param name="Status">The status after the event.</param>
/// <param name="Step">Diffuse steps done.</param>
/// <param name="TotalSteps">Diffuse steps in all.</param>
/// <param name="Error">Why the job failed, for a Failed state.</param>
public sealed record JobEvent(long Sequence, JobEventKind Kind, JobStatus Status, int Step, int TotalSteps, string? Error);

/// <summary>Start and finish of one stage on the server clock (seconds since start); null until known.</summary>
public sealed record StageTiming(double? Start, double? Finish)
{
    /// <summary>Finish − start, when both are known.</summary>
    public double? Seconds => Start is { } s && Finish is { } f ? f - s : null;
}

/// <summary>How the job was routed: the dispatch that served it and the round that made it.</summary>
/// <param name="Round">The dispatch round.</param>
/// <param name="Source">How the round's plan was made (MIP with its statistics, or greedy with the reason).</param>
/// <param name="Dispatch">Devices, degree, VR type and predicted times.</param>
public sealed record JobRoute(long Round, string Source, Dispatch Dispatch);

/// <summary>A job's result: its file (an image or a video, <see cref="Format"/>) and its frames.</summary>
public sealed record JobResult(byte[] File, Trident.Runtime.Imaging.MediaFormat Format, int Frames, int Width, int Height)
{
    /// <summary>The file's media (MIME) type.</summary>
    public string MediaType => Trident.Runtime.Imaging.MediaFormats.MediaType(Format);
}

/// <summary>A consistent copy of a job's state.</summary>
public sealed record JobView(
    RequestId Id,
    GenerationInput Input,
    JobStatus Status,
    DateTimeOffset CreatedAt,
    double Arrival,
    double Deadline,
    bool DeadlineGiven,
    int Step,
    StageTiming Queue,
    StageTiming Encode,
    StageTiming Diffuse,
    StageTiming Decode,
    double? Finished,
    JobRoute? Route,
    string? Error)
{
    /// <summary>Times its diffuse was suspended at a step boundary (preemption).</summary>
    public int Suspensions { get; init; }

    /// <summary>Whether the job is over.</summary>
    public bool IsTerminal => Job.IsTerminalStatus(Status);

    /// <summary>Whether it finished by its deadline; null until it succeeds.</summary>
    public bool? DeadlineMet => Status == JobStatus.Succeeded && Finished is { } f ? f <= Deadline : null;
}

/// <summary>One generation job.</summary>
/// <summary>A completed stage whose output a re-queued job resumes from.</summary>
/// <param name="Stage">Encode (the embeddings are kept) or Diffuse (the latents are kept).</param>
/// <param name="Output">The stage's output, as its executor handed it on.</param>
/// <param name="Device">The device that made it (the output is usable while that device is in the cluster).</param>
public sealed record ResumePoint(Stage Stage, Trident.Runtime.Devices.StageOutput Output, int Device);

public sealed class Job : IStepObserver
{
    private readonly object _gate = new();
    private readonly CancellationTokenSource _cancel = new();
    private readonly List<Channel<JobEvent>> _subscribers = new();
    private JobStatus _status = JobStatus.Queued;
    private long _sequence;
    private int _step;
    private double? _dispatched, _finished;
    private double? _encodeStart, _encodeFinish, _diffuseStart, _diffuseFinish, _decodeStart, _decodeFinish;
    private JobRoute? _route;
    private string? _error;
    // what asked for the cancel (the first accepted one's reason): the error a cancelled job shows
    private string? _cancelReason;
    private JobResult? _result;
    private bool _cancelRequested;
    private int _requeues;
    private int _suspensions;
    private ResumePoint? _resume;
    private readonly TaskCompletionSource<JobView> _final = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates a queued job.</summary>
    /// <param name="request">The scheduler's view (id, shape, steps, arrival and deadline on the server clock).</param>
    /// <param name="input">What to generate.</param>
    /// <param name="createdAt">Wall-clock time of acceptance.</param>
    /// <param name="deadlineGiven">Whether the client set the deadline (else the cost model did).</param>
    /// <param name="arrivalAt">Wall-clock time of the request's arrival on the server clock (default: createdAt;
    /// later for a job re-queued after a restart).</param>
    public Job(Request request, GenerationInput input, DateTimeOffset createdAt, bool deadlineGiven, DateTimeOffset? arrivalAt = null)
        : this(request, input, createdAt, deadlineGiven, arrivalAt, traced: true)
    {
    }

    private Job(Request request, GenerationInput input, DateTimeOffset createdAt, bool deadlineGiven, DateTimeOffset? arrivalAt, bool traced)
    {
        Trace = traced
            ? new JobTrace(request.Id.Value,
            [
                new("trident.width", input.Width), new("trident.height", input.Height), new("trident.frames", input.Frames),
                new("trident.steps", input.Steps), new("trident.model", request.Model.Value),
            ])
            : JobTrace.None;
        Request = request;
        Input = input;
        CreatedAt = createdAt;
        DeadlineGiven = deadlineGiven;
        ArrivalAt = arrivalAt ?? createdAt;
    }

    /// <summary>A job that was already over before a restart, as the journal kept it (no stage timings, no
    /// route). <paramref name="request"/>'s arrival maps <paramref name="createdAt"/> onto this server's clock
    /// and <paramref name="finished"/> is on that clock too, so its retention runs from its true finish.</summary>
    public static Job Restored(Request request, GenerationInput input, DateTimeOffset createdAt, bool deadlineGiven, JobStatus status,
        string? error, JobResult? result, double finished)
    {
        if (!IsTerminalStatus(status)) throw new ArgumentException("only a finished job is restored as it was", nameof(status));
        var job = new Job(request, input, createdAt, deadlineGiven, null, traced: false);
        job._status = status;
        job._error = error;
        job._result = result;
        job._finished = finished;
        job._step = status == JobStatus.Succeeded ? input.Steps : 0;
        job.FinishedBeforeRestart = true;
        job._final.TrySetResult(job.View());
        return job;
    }

    /// <summary>Whether the job was already over before a restart (<see cref="Restored"/>): this process did not run
    /// it, so its outcome is not among this process's counts (TridentServer.Deadlines, the metrics).</summary>
    public bool FinishedBeforeRestart { get; private set; }

    /// <summary>The job's trace (one root span and its children; see <see cref="JobTrace"/>).</summary>
    public JobTrace Trace { get; }

    /// <summary>Where every state change is written (the durable store), or null.</summary>
    public JobJournal? Journal { get; set; }

    /// <summary>Wall-clock time of the request's arrival on the server clock (<see cref="Request"/>'s Arrival).</summary>
    public DateTimeOffset ArrivalAt { get; }

    /// <summary>Wall-clock time of the final state, once over.</summary>
    public DateTimeOffset? FinishedAt
    {
        get { lock (_gate) return FinishedWall(); }
    }

    // when the job finished, on the wall clock, in its current state or (Record) the one it is moving to
    private DateTimeOffset? FinishedWall(JobStatus? status = null) =>
        IsTerminalStatus(status ?? _status) && _finished is { } f ? ArrivalAt + TimeSpan.FromSeconds(Math.Max(0, f - Request.Arrival)) : null;

    /// <summary>Raised once, when the job reaches its final state (under the job's lock: handlers must be
    /// quick and must not wait on other jobs).</summary>
    public event Action<JobView>? Terminal;

    /// <summary>The job's id.</summary>
    public RequestId Id => Request.Id;

    /// <summary>The scheduler's view of the job.</summary>
    public Request Request { get; }

    /// <summary>The cost model's time of this request served alone at its reference degree, in microseconds
    /// (CostModel.tRef; −1 until the serving loop first counts it as waiting): what it adds to the queue's
    /// predicted drain time.</summary>
    internal long ReferenceMicros { get; set; } = -1;

    /// <summary>What to generate.</summary>
    public GenerationInput Input { get; }

    /// <summary>Wall-clock time of acceptance.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>Whether the client set the deadline.</summary>
    public bool DeadlineGiven { get; }

    /// <summary>Cancelled when the client cancels the job.</summary>
    public CancellationToken Cancellation => _cancel.Token;

    /// <summary>The current status.</summary>
    public JobStatus Status { get { lock (_gate) return _status; } }

    /// <summary>Completes with the job's final view when it reaches its final state.</summary>
    public Task<JobView> Final => _final.Task;

    /// <summary>Whether a cancel was accepted (the job ends Cancelled).</summary>
    public bool CancelRequested { get { lock (_gate) return _cancelRequested; } }

    /// <summary>The result, once the job succeeded.</summary>
    public JobResult? Result { get { lock (_gate) return _result; } }

    /// <summary>Whether a status is final.</summary>
    public static bool IsTerminalStatus(JobStatus s) => s is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;

    /// <summary>A consistent copy of the job's state.</summary>
    public JobView View()
    {
        lock (_gate)
            return new JobView(Id, Input, _status, CreatedAt, Request.Arrival, Request.Deadline, DeadlineGiven, _step,
                new StageTiming(Request.Arrival, _dispatched),
                new StageTiming(_encodeStart, _encodeFinish),
                new StageTiming(_diffuseStart, _diffuseFinish),
                new StageTiming(_decodeStart, _decodeFinish),
                _finished, _route, _error) { Suspensions = _suspensions };
    }

    /// <summary>Events from now on, preceded by one State event with the current state; the stream ends
    /// after the job's final state.</summary>
    public ChannelReader<JobEvent> Subscribe()
    {
        var channel = Channel.CreateUnbounded<JobEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
        lock (_gate)
        {
            channel.Writer.TryWrite(new JobEvent(_sequence, JobEventKind.State, _status, _step, Input.Steps, _error));
            if (IsTerminalStatus(_status)) channel.Writer.TryComplete();
            else _subscribers.Add(channel);
        }
        return channel.Reader;
    }

    /// <summary>Stops sending events to a subscriber that went away.</summary>
    public void Unsubscribe(ChannelReader<JobEvent> reader)
    {
        lock (_gate) _subscribers.RemoveAll(c => c.Reader == reader);
    }

    /// <summary>A dispatch round routed the job.</summary>
    public void Dispatched(double now, JobRoute route)
    {
        lock (_gate)
        {
            _dispatched = now;
            _route = route;
            Trace.Dispatched(route.Round, route.Dispatch.Degree, route.Dispatch.Vr.ToString());
        }
    }

    /// <summary>A worker started one of the job's stages (on <paramref name="device"/>, for its trace).</summary>
    public void StageStarted(TaskKind kind, double now, int device = -1)
    {
        lock (_gate)
        {
            if (IsTerminalStatus(_status) || _cancelRequested) return;
            Trace.StageStarted(kind, device);
            switch (kind)
            {
                case TaskKind.Encode: _encodeStart ??= now; Move(JobStatus.Encoding); break;
                case TaskKind.Diffuse when _status == JobStatus.Suspended:
                    // the resumed segment: the diffuse timing spans every segment and ends with the last
                    _diffuseFinish = null;
                    Move(JobStatus.Diffusing, JobEventKind.Resumed);
                    break;
                case TaskKind.Diffuse: _diffuseStart ??= now; Move(JobStatus.Diffusing); break;
                case TaskKind.Decode: _decodeStart ??= now; Move(JobStatus.Decoding); break;
            }
        }
    }

    /// <summary>A worker finished one of the job's stages (successfully or not); the device, the error and the
    /// size of the output it hands on go to the job's trace.</summary>
    public void StageFinished(TaskKind kind, double now, int device = -1, Exception? error = null, long? outputBytes = null)
    {
        lock (_gate)
        {
            Trace.StageFinished(kind, device, error, outputBytes);
            switch (kind)
            {
                case TaskKind.Encode when _encodeStart is not null: _encodeFinish ??= now; break;
                case TaskKind.Diffuse when _diffuseStart is not null: _diffuseFinish ??= now; break;
                case TaskKind.Decode when _decodeStart is not null: _decodeFinish ??= now; break;
            }
        }
    }

    /// <inheritdoc />
    public void StepCompleted(int step, int total)
    {
        lock (_gate)
        {
            if (IsTerminalStatus(_status)) return;
            _step = step;
            Publish(JobEventKind.Progress);
        }
    }

    /// <summary>The job produced its result; after an accepted cancel it ends Cancelled instead (the
    /// result is dropped). False when the job did not succeed.</summary>
    public bool Succeed(JobResult result, double now)
    {
        lock (_gate)
        {
            if (IsTerminalStatus(_status)) return false;
            _finished = now;
            if (_cancelRequested)
            {
                Move(JobStatus.Cancelled);
                return false;
            }
            _result = result;
            Move(JobStatus.Succeeded);
            // a result the job store could not keep ended it Failed instead (Move)
            return _status == JobStatus.Succeeded;
        }
    }

    /// <summary>A stage failed; after an accepted cancel the job ends Cancelled instead.</summary>
    public void Fail(string error, double now)
    {
        lock (_gate)
        {
            if (IsTerminalStatus(_status)) return;
            _finished = now;
            if (_cancelRequested)
            {
                Move(JobStatus.Cancelled);
                return;
            }
            _error = error;
            Move(JobStatus.Failed);
        }
    }

    /// <summary>How many times the job's work was lost with a device and the job queued again.</summary>
    public int Requeues { get { lock (_gate) return _requeues; } }

    /// <summary>The id of the first job of its multi-image request (<c>num_images</c> / <c>n</c> &gt; 1: one job per
    /// image, submitted together by <see cref="TridentServer.SubmitAll"/>), or null for a request of one image. The
    /// serving loop batches the jobs of one group together (ServingLoop: up to MaxBatch) when batching is on.</summary>
    public long? Group { get; init; }

    /// <summary>Where a re-queued job resumes: the output of its last completed stage and the device that holds
    /// it (null: from the start, or once taken). Set by <see cref="Requeue"/>, read by the next dispatch, which takes
    /// it (<see cref="TakeResume"/>).</summary>
    public ResumePoint? Resume { get { lock (_gate) return _resume; } }

    /// <summary>Takes <see cref="Resume"/> (null when there is none or it was taken): the caller owns the output from
    /// here — the dispatch that runs the job from it (PlanExecutor.ExecuteAsync, once its tasks are queued: its attempt
    /// frees what it leaves), or the serving loop when the job ends before a dispatch took it (it frees it). Taken
    /// once, so it is freed once.</summary>
    public ResumePoint? TakeResume()
    {
        lock (_gate)
        {
            var taken = _resume;
            _resume = null;
            return taken;
        }
    }

    // Under _gate: false when the job is over, or — a cancel having been accepted — after ending it Cancelled.
    private bool StillRunnable(double now)
    {
        if (IsTerminalStatus(_status)) return false;
        if (!_cancelRequested) return true;
        _finished = now;
        Move(JobStatus.Cancelled);
        return false;
    }

    /// <summary>Its work was lost with a device (<paramref name="reason"/>): back to Queued, to resume at
    /// <paramref name="resume"/> (null: from the start). False when the job is over or a cancel was accepted
    /// (then it ends Cancelled, as any stopped job).</summary>
    public bool Requeue(double now, string reason, ResumePoint? resume)
    {
        lock (_gate)
        {
            if (!StillRunnable(now)) return false;
            _requeues++;
            _resume = resume;
            _route = null;
            _dispatched = null;
            _step = resume?.Stage == Stage.Diffuse ? Input.Steps : 0;
            // timings of the stages that will run again start over
            if (resume is null) _encodeStart = _encodeFinish = null;
            if (resume?.Stage != Stage.Diffuse) _diffuseStart = _diffuseFinish = null;
            _decodeStart = _decodeFinish = null;
            Trace.Requeued(reason, resume?.Stage.ToString());
            Move(JobStatus.Queued);
            return true;
        }
    }

    /// <summary>Times its diffuse was suspended at a step boundary (preemption).</summary>
    public int Suspensions { get { lock (_gate) return _suspensions; } }

    /// <summary>Its diffuse stopped at a step boundary after <paramref name="step"/> steps for a more urgent
    /// request (preemption): Suspended until its resumed diffuse starts (then Diffusing, a Resumed event). The
    /// diffuse timing spans every segment. False when the job is over or a cancel was accepted (then it ends
    /// Cancelled, as any stopped job).</summary>
    public bool Suspend(double now, int step)
    {
        lock (_gate)
        {
            if (!StillRunnable(now)) return false;
            _suspensions++;
            _step = step;
            _diffuseFinish = null;
            Trace.Suspended(step, _suspensions);
            Move(JobStatus.Suspended, JobEventKind.Suspended);
            return true;
        }
    }

    /// <summary>Its queued resumption was withdrawn before it ran a step (a later preemption suspended the segment it
    /// was queued behind, Preemption's <c>Behind</c>): it stays Suspended at its step, no suspension is counted, and the
    /// loop queues it again. False when the job is over or a cancel was accepted (then it ends Cancelled).</summary>
    public bool Withdrawn(double now)
    {
        lock (_gate)
        {
            if (!StillRunnable(now)) return false;
            // the withdrawn task's end is not the diffuse's
            _diffuseFinish = null;
            return true;
        }
    }

    /// <summary>Requests cancellation. A job none of whose stages has started is cancelled at once (its
    /// tasks, if a round already routed it, are skipped when their workers reach them), and so is a suspended
    /// one (its resumption is skipped the same way); a running one stops
    /// at its next step boundary (then <see cref="Cancelled"/> is called). True means the job ends Cancelled
    /// whatever its stages do from now on; false when the job is already over (a succeeded job keeps its
    /// result).</summary>
    /// <param name="now">The server clock's time.</param>
    /// <param name="reason">What cancelled it (a client's DELETE, a client that went away, the shutdown): the
    /// cancelled job's <c>error</c>; the first accepted cancel's reason is kept.</param>
    public bool RequestCancel(double now, string? reason = null)
    {
        lock (_gate)
        {
            if (IsTerminalStatus(_status)) return false;
            _cancelRequested = true;
            _cancelReason ??= reason ?? "cancelled";
            if (_status is JobStatus.Queued or JobStatus.Suspended)
            {
                _finished = now;
                Move(JobStatus.Cancelled);
            }
            // durable before the caller answers: after a restart the job comes back cancelled
            else Journal?.CancelAccepted(this);
        }
        _cancel.Cancel();
        return true;
    }

    /// <summary>Its running work stopped after a cancellation.</summary>
    public void Cancelled(double now)
    {
        lock (_gate)
        {
            if (IsTerminalStatus(_status)) return;
            _finished = now;
            Move(JobStatus.Cancelled);
        }
    }

    // Under the lock. The new state is durable before anyone sees it (one small write; a success writes its result file
    // first). When the job store cannot take the write (a full disk, its results folder gone), the job still moves in
    // memory — a final state still ends its event streams and wakes its waiters — and a success becomes a failure
    // naming the store's problem: a succeeded job always has its file, and after a restart the job runs again rather
    // than coming back as a success whose result is lost. A state the store missed is written at the next one.
    private void Move(JobStatus to, JobEventKind kind = JobEventKind.State)
    {
        if (_status == to) return;
        if (to == JobStatus.Cancelled) _error ??= _cancelReason;
        if (!Record(to) && to == JobStatus.Succeeded)
        {
            to = JobStatus.Failed;
            _result = null;
            Record(to);
        }
        _status = to;
        Publish(kind);
        if (IsTerminalStatus(to))
        {
            foreach (var s in _subscribers) s.Writer.TryComplete();
            _subscribers.Clear();
            var view = View();
            Trace.Ended(to.ToString().ToLowerInvariant(), _error);
            Terminal?.Invoke(view);
            _final.TrySetResult(view);
        }
    }

    // Under the lock: the journal's write of state `to`; false when the store could not take it (the error of a
    // success that could not be stored then names why).
    private bool Record(JobStatus to)
    {
        try
        {
            Journal?.Moved(this, to, _error, _result, FinishedWall(to));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Data.Common.DbException)
        {
            if (to == JobStatus.Succeeded)
                _error = $"its result could not be stored in the job store {Journal!.Directory} ({e.GetType().Name}: {e.Message})";
            Journal!.WriteFailed?.Invoke(Id.Value, to, e);
            return false;
        }
    }

    // Under the lock.
    private void Publish(JobEventKind kind)
    {
        var e = new JobEvent(++_sequence, kind, _status, _step, Input.Steps, _error);
        foreach (var s in _subscribers) s.Writer.TryWrite(e);
    }
}
