// Carries out one dispatch: the encode task on the encode device, the diffuse task on the group's lead
// (first) device with one Reserve task on each other device of the group, the decode task on the decode
// device. The stages hand their outputs on as tensors through the tasks' results; the job completes when
// its decode does (its frames are written as the file it asked for: Generation.EncodeFileAsync) or when any stage fails or is
// cancelled, whose error then reaches every later stage. A stage that fails because its device left the
// cluster (DeviceLostException) does not fail the job: the loop queues it again, resuming after the last
// stage that completed (its output kept where it was made), and it is dispatched anew.
// A batch (issue 12) is one set of tasks for several jobs; each job completes with its own item of the decode;
// a resumed job always runs alone.
// Step-boundary preemption (issue 12): with Suspendable set, the diffuse task of a job alone carries a
// SuspendSignal the serving loop may set; the task then stops at its next step boundary and its latents fault
// with DiffuseSuspendedException, which ends its decode and reservations without failing the job: the
// `suspended` callback gets the checkpoint and the loop resumes the job with ResumeAsync on the same group or,
// with PreemptionSettings.ResumeElsewhere, on another group of its type and degree that is free first.

using Trident.Runtime.Devices;
using Trident.Runtime.Execution;
using Trident.Runtime.Imaging;
using Trident.Scheduling;

namespace Trident.Runtime.Serving;

/// <summary>Turns dispatches into worker tasks. Serving-loop thread only (task ids increase in enqueue order).</summary>
public sealed class PlanExecutor
{
    private readonly Action<Job, DeviceLostException, ResumePoint?>? _lost;
    private readonly Action<SuspendedJob>? _suspended;
    private readonly DeviceLedger _ledger;
    private readonly ServerClock _clock;
    private readonly int _framesPerSecond;

    private long _nextTaskId;

    /// <summary>An executor over the server's workers.</summary>
    /// <param name="workers">The workers by device id (the list grows when devices join).</param>
    /// <param name="ledger">The device ledger.</param>
    /// <param name="clock">The server clock.</param>
    /// <param name="framesPerSecond">Frame rate of video results.</param>
    /// <param name="lost">Called (on any thread) for a job whose work was lost with a device, with the output it
    /// can resume from; without it such a job fails like any other.</param>
    /// <param name="suspended">Called (on any thread) for a job whose diffuse was suspended at a step boundary;
    /// without it such a job fails.</param>
    public PlanExecutor(IReadOnlyList<Worker> workers, DeviceLedger ledger, ServerClock clock, int framesPerSecond,
        Action<Job, DeviceLostException, ResumePoint?>? lost = null, Action<SuspendedJob>? suspended = null)
    {
        Workers = workers;
        _lost = lost;
        _suspended = suspended;
        _ledger = ledger;
        _clock = clock;
        _framesPerSecond = framesPerSecond;
    }

    /// <summary>The workers by device id; replaced (serving-loop thread) when devices join.</summary>
    public IReadOnlyList<Worker> Workers { get; set; }

    /// <summary>Whether the diffuse tasks of jobs alone get a <see cref="SuspendSignal"/> (preemption on, and the
    /// group's lead can suspend). Serving-loop thread.</summary>
    public bool Suspendable { get; set; }

    /// <summary>Whether a stage (encode or decode) of a batch of b requests of a shape runs as one run (true) or one
    /// run per request (false: the profile's batch points show no gain, t(b) ≥ b · t(1), or it has none for the
    /// stage, as version 1 profiles); null: always one run.</summary>
    public Func<Stage, Shape, int, bool>? BatchPays { get; init; }

    /// <summary>Decode preemption (issue 12): the temporal tile of a pausable decode in frames (0: decodes never pause)
    /// and the most times one decode pauses; the decodes of jobs alone get them (DecodeTask.TileFrames, MaxPauses) and
    /// are kept for <see cref="PendingDecode"/>. Serving-loop thread.</summary>
    public (int TileFrames, int MaxPauses) DecodePauses { get; set; }

    // the decodes of jobs alone in flight while decode preemption is on (serving-loop thread): by task id, with their
    // device
    private readonly Dictionary<long, (DecodeTask Task, int Device)> _decodes = new();

    /// <summary>A decode of a job alone in flight, by task id (decode preemption on); false for any other task.</summary>
    public bool TryGetDecode(long taskId, out (DecodeTask Task, int Device) decode) => _decodes.TryGetValue(taskId, out decode);

    /// <summary>The latest decode in flight of a job alone (decode preemption on), with its device; null when none.</summary>
    public (DecodeTask Task, int Device)? PendingDecode(RequestId request)
    {
        (DecodeTask Task, int Device)? latest = null;
        foreach (var d in _decodes.Values)
            if (d.Task.Request.Equals(request) && (latest is null || d.Task.TaskId > latest.Value.Task.TaskId)) latest = d;
        return latest;
    }

    /// <summary>A task ended (the serving loop hears it): a decode is no longer in flight.</summary>
    public void Ended(StageTask task)
    {
        if (task is DecodeTask) _decodes.Remove(task.TaskId);
    }

    // A decode task of `input` for a job alone (pausable when decode preemption is on) or a batch.
    private DecodeTask NewDecode(RequestId request, double seconds, CancellationToken token, GenerationInput input, Task<StageOutput> latents,
        IReadOnlyList<BatchMate>? mates, int device, bool itemByItem, double? latentsReadyAt)
    {
        var alone = mates is null;
        var decode = new DecodeTask(NextTaskId(), request, seconds, token, input, latents, mates)
        {
            ItemByItem = itemByItem,
            LatentsReadyAt = latentsReadyAt,
            TileFrames = alone ? DecodePauses.TileFrames : 0,
            MaxPauses = alone ? DecodePauses.MaxPauses : 0,
        };
        if (alone && DecodePauses.TileFrames > 0) _decodes[decode.TaskId] = (decode, device);
        return decode;
    }

    private bool ItemByItem(Stage stage, GenerationInput input, int count) => count > 1 && BatchPays?.Invoke(stage, input.Shape, count) == false;

    /// <summary>A new task id.</summary>
    public long NextTaskId() => ++_nextTaskId;

    /// <summary>Enqueues a job's tasks as the dispatch says and records them in the ledger.</summary>
    public ValueTask<DiffuseTask?> ExecuteAsync(Job job, Dispatch dispatch, JobRoute route, CancellationToken stopping) =>
        ExecuteAsync([job], dispatch, route, stopping);


    /// <summary>Enqueues the tasks of a batch (issue 12) as the dispatch says and records them in the ledger:
    /// one encode, one diffuse and one decode task for all <paramref name="jobs"/> (the first leads; the
    /// others are its BatchMates), each run as one run with the batch dimension. The tasks' cancellation is
    /// the batch's: cancelled once every job is; a job cancelled earlier ends Cancelled and its result is
    /// dropped. A job re-queued with a <see cref="ResumePoint"/> (its work was lost with a device) runs alone
    /// and skips the stages before it: their output is taken as it was kept (its dispatch, planned with the
    /// stages it has left only, names no device for them).</summary>
    /// <exception cref="ArgumentException">when the jobs cannot share a batch (BatchInputs.Compatible), or a
    /// resumed job is batched with others.</exception>
    /// <exception cref="InvalidOperationException">when the dispatch plans other stages than the job has left.</exception>
    /// <param name="jobs">The batch, its lead first.</param>
    /// <param name="dispatch">Its dispatch.</param>
    /// <param name="route">What the job records of its route.</param>
    /// <param name="stopping">The server's stop token.</param>
    /// <param name="ahead">A backfill (live backfilling, docs/policies.md "Backfilling"): the devices, held idle at a gang
    /// that has not started, whose tasks go through their workers' backfill lanes (Worker.EnqueueAhead), recorded in the
    /// ledger ahead of the gang (DeviceLedger.EnqueuedAhead); its tasks on other devices go the normal way. Null: none.</param>
    /// <returns>The diffuse task (null when a resumed job skips its diffuse).</returns>
    public async ValueTask<DiffuseTask?> ExecuteAsync(IReadOnlyList<Job> jobs, Dispatch dispatch, JobRoute route, CancellationToken stopping,
        IReadOnlySet<int>? ahead = null)
    {
        var lead = jobs[0];
        BatchInputs.Check(jobs.Select(j => j.Input).ToArray());
        var resume = lead.Resume;
        if (jobs.Count > 1 && jobs.Any(j => j.Resume is not null))
            throw new ArgumentException("a resumed job runs alone, never in a batch", nameof(jobs));
        var input = lead.Input;
        var batch = jobs.Count == 1 ? null : new BatchCancellation(jobs.Select(j => j.Cancellation).ToArray());
        var token = batch?.Token ?? lead.Cancellation;
        IReadOnlyList<BatchMate>? mates = jobs.Count == 1 ? null : jobs.Skip(1).Select(j => new BatchMate(j.Id, j.Input, j)).ToArray();
        // a resumed job's plan names no device for a stage it completed (Snapshot.Completed): it gets no task
        if (dispatch.Encode.Devices.IsEmpty != (resume is not null) || dispatch.Diffuse.Devices.IsEmpty != (resume?.Stage == Stage.Diffuse))
            throw new InvalidOperationException($"dispatch of {lead.Id} plans stages [{Planned(dispatch)}], the job has {(resume is null ? "all three" : $"those after its {resume.Stage}")} left");
        var encodeDevice = resume is null ? dispatch.Encode.Devices.Head.Value : -1;
        var group = dispatch.Diffuse.Devices.Select(d => d.Value).ToArray();
        var decodeDevice = dispatch.Decode.Devices.Head.Value;
        if (!dispatch.Diffuse.Devices.IsEmpty && group.Length != dispatch.Degree)
            throw new InvalidOperationException($"dispatch of {lead.Id} has degree {dispatch.Degree} and {group.Length} diffuse devices");
        var diffuseSeconds = dispatch.Diffuse.Finish - dispatch.Diffuse.Start;

        var encode = resume is null
            ? new EncodeTask(NextTaskId(), lead.Id, dispatch.Encode.Finish - dispatch.Encode.Start, token, input, mates) { ItemByItem = ItemByItem(Stage.Encode, input, jobs.Count) }
            : null;
        DiffuseTask? diffuse = null;
        var reserves = Array.Empty<(int Device, ReserveTask Task)>();
        if (resume?.Stage != Stage.Diffuse)
        {
            var embeddings = encode?.Result.Task ?? Task.FromResult(resume!.Output);
            var threads = group.Sum(d => Workers[d].Device.IntraOpThreads);
            (diffuse, reserves) = DiffuseGroup(lead, group, diffuseSeconds, token, embeddings, threads, mates, null);
        }
        var latents = diffuse?.Result.Task ?? Task.FromResult(resume!.Output);
        var decode = NewDecode(lead.Id, dispatch.Decode.Finish - dispatch.Decode.Start, token, input, latents, mates, decodeDevice,
            ItemByItem(Stage.Decode, input, jobs.Count), dispatch.Diffuse.Devices.IsEmpty ? null : dispatch.Diffuse.Finish);

        foreach (var job in jobs) job.Dispatched(_clock.Now, route);
        if (encode is not null) await EnqueueAsync(encodeDevice, encode, stopping, ahead);
        await EnqueueGroupAsync(group, diffuse, reserves, stopping, ahead);
        await EnqueueAsync(decodeDevice, decode, stopping, ahead);
        // the resume point is the attempt's from here (CompleteAsync frees what it leaves); until now a failure left it
        // the job's, for the loop to free
        lead.TakeResume();
        _ = CompleteAsync(jobs, resume, (encode, encodeDevice), (diffuse, group), decode, batch, decodeDevice);
        return diffuse;
    }

    /// <summary>Resumes a suspended job (preemption, issue 12) on a group of its degree: the devices it was suspended
    /// on or another group of their type (the caller chooses, Preemption.resumeGroup): a diffuse task from its
    /// checkpoint on the group's lead (the checkpoint's intra-op threads: bit-identical to a run never suspended;
    /// the checkpoint is host memory, so any worker of the machine can take it), a Reserve task on each other
    /// device of the group, and its decode on the decode device of its route. The tasks queue behind the work
    /// the devices already have (the urgent request's, queued when it was suspended). A job cancelled meanwhile
    /// skips them as any cancelled job's tasks.</summary>
    /// <param name="s">The suspension.</param>
    /// <param name="group">The devices to resume on (as many as <c>s.Group</c>).</param>
    /// <param name="diffuseSeconds">Predicted seconds of the remaining steps (ledger).</param>
    /// <param name="decodeSeconds">Predicted seconds of the decode (ledger).</param>
    /// <param name="stopping">The server's stop token.</param>
    /// <returns>The resumed diffuse task.</returns>
    public async ValueTask<DiffuseTask> ResumeAsync(SuspendedJob s, int[] group, double diffuseSeconds, double decodeSeconds, CancellationToken stopping)
    {
        if (group.Length != s.Group.Length)
            throw new ArgumentException($"a suspended job resumes on as many devices as it ran on ({s.Group.Length}), not {group.Length}", nameof(group));
        var job = s.Job;
        var token = job.Cancellation;
        var (diffuse, reserves) = DiffuseGroup(job, group, diffuseSeconds, token, Task.FromResult(s.Embeddings), s.Checkpoint.IntraOpThreads, null, s.Checkpoint);
        var decode = NewDecode(job.Id, decodeSeconds, token, job.Input, diffuse.Result.Task, null, s.DecodeDevice, false, null);
        await EnqueueGroupAsync(group, diffuse, reserves, stopping);
        await EnqueueAsync(s.DecodeDevice, decode, stopping);
        // work lost with a device from here on resumes after the encode (its embeddings are kept)
        var afterEncode = new ResumePoint(Stage.Encode, s.Embeddings, s.EmbeddingsDevice);
        _ = CompleteAsync([job], afterEncode, (null, s.EmbeddingsDevice), (diffuse, group), decode, null, s.DecodeDevice);
        return diffuse;
    }

    // The diffuse task on the group's lead and a Reserve task on each other device of the group.
    private (DiffuseTask Diffuse, (int Device, ReserveTask Task)[] Reserves) DiffuseGroup(Job lead, int[] group, double seconds, CancellationToken token,
        Task<StageOutput> embeddings, int threads, IReadOnlyList<BatchMate>? mates, DiffuseCheckpoint? from)
    {
        var seats = group.Skip(1).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        // a batch is never suspended; a job alone is when preemption is on and the lead's executor can suspend
        var signal = mates is null && Suspendable && Workers[group[0]].CanSuspend ? new SuspendSignal() : null;
        var id = NextTaskId();
        // a gang (two devices or more) has a gate: its seated members may run backfills until it starts (GangGate)
        var gate = seats.Length > 0 ? new GangGate(id, seats) : null;
        var diffuse = new DiffuseTask(id, lead.Id, seconds, token, lead.Input, embeddings, group.Length, threads, seats, lead, mates, from, signal) { Gate = gate };
        var diffused = diffuse.Result.Task;
        return (diffuse, [.. group.Skip(1).Select((d, i) => (d, new ReserveTask(NextTaskId(), lead.Id, seconds, token, seats[i], diffused) { Gate = gate }))]);
    }

    private async ValueTask EnqueueGroupAsync(int[] group, DiffuseTask? diffuse, (int Device, ReserveTask Task)[] reserves, CancellationToken stopping,
        IReadOnlySet<int>? ahead = null)
    {
        if (diffuse is not null) await EnqueueAsync(group[0], diffuse, stopping, ahead);
        foreach (var (device, task) in reserves) await EnqueueAsync(device, task, stopping, ahead);
    }

    private static string Planned(Dispatch d) =>
        string.Join(", ", new[] { ("encode", d.Encode), ("diffuse", d.Diffuse), ("decode", d.Decode) }.Where(x => !x.Item2.Devices.IsEmpty).Select(x => x.Item1));

    private async ValueTask EnqueueAsync(int device, StageTask task, CancellationToken stopping, IReadOnlySet<int>? ahead = null)
    {
        if (ahead is not null && ahead.Contains(device))
        {
            _ledger.EnqueuedAhead(device, task);
            Workers[device].EnqueueAhead(task);
            return;
        }
        _ledger.Enqueued(device, task);
        await Workers[device].EnqueueAsync(task, stopping);
    }

    /// <summary>Queues a placement change on a worker, behind the work it already has.</summary>
    public async ValueTask RetypeAsync(int device, PlacementType type, CancellationToken stopping)
    {
        var task = new RetypeTask(NextTaskId(), type);
        await EnqueueAsync(device, task, stopping);
    }

    private async Task CompleteAsync(IReadOnlyList<Job> jobs, ResumePoint? resumed, (EncodeTask? Task, int Device) encode,
        (DiffuseTask? Task, int[] Group) diffuse, DecodeTask decode, BatchCancellation? batch, int decodeDevice)
    {
        try
        {
            IReadOnlyList<IReadOnlyList<RgbImage>>? items = null;
            Exception? failure = null;
            try
            {
                // a diffuse that did not end with latents (suspended, withdrawn, failed, cancelled, lost with its device)
                // ends the attempt as soon as it stops, with its own error — the one the decode would end with: the
                // decode, queued on a decode device perhaps behind a minutes-long video decode, is skipped whenever that
                // worker reaches it, and the job's resumption, re-queue or failure does not wait for that
                if (diffuse.Task is { } segment) await segment.Result.Task.ConfigureAwait(false);
                items = await decode.Result.Task.ConfigureAwait(false);
                if (items.Count != jobs.Count) throw new InvalidOperationException($"the decoder returned {items.Count} results for a batch of {jobs.Count}");
            }
            catch (Exception ex)
            {
                failure = ex;
            }
            // the output of the last stage that completed (this attempt's, or the one it resumed from): the one output
            // of the attempt nothing has read yet (a stage that completed dropped its input, RemoteStageExecutor)
            var last = diffuse.Task is { Result.Task.IsCompletedSuccessfully: true } d
                ? new ResumePoint(Stage.Diffuse, d.Result.Task.Result, diffuse.Group[0])
                : encode.Task is { Result.Task.IsCompletedSuccessfully: true } e
                    ? new ResumePoint(Stage.Encode, e.Result.Task.Result, encode.Device)
                    : resumed;
            // work lost with a device: a job alone resumes from it; a batch's outputs hold every member, so its jobs
            // start again
            var resume = jobs.Count > 1 ? null : last;
            // a suspended diffuse (a job alone): what its resumption needs
            SuspendedJob? suspension = null;
            if (jobs.Count == 1 && diffuse.Task?.Result.Task.Exception?.InnerException is DiffuseSuspendedException stopped)
            {
                (StageOutput Output, int Device)? embeddings =
                    encode.Task is { Result.Task.IsCompletedSuccessfully: true } made ? (made.Result.Task.Result, encode.Device)
                    : resumed is { Stage.IsEncode: true } ? (resumed.Output, resumed.Device) : null;
                if (embeddings is { } kept)
                    suspension = new SuspendedJob(jobs[0], stopped.Checkpoint, kept.Output, kept.Device, diffuse.Group, decodeDevice,
                        ReferenceEquals(stopped.Checkpoint, diffuse.Task!.From), decode.TaskId);
            }
            var handedOn = Handover.None;
            for (var i = 0; i < jobs.Count; i++)
                handedOn |= await CompleteAsync(jobs[i], failure is null ? items![i] : null, failure, resume, suspension).ConfigureAwait(false);
            // An attempt that did not decode leaves outputs nobody reads unless the loop took them on (a resumption, a
            // re-queue that resumes): its last stage's output and, of a diffuse, the checkpoint it resumed from and
            // the one it stopped at (a cancelled job's suspension, which the loop never sees) — on a cluster worker
            // they stayed in memory (WorkerDevices) until they expired. A decoded attempt's outputs were all read.
            if (failure is not null)
            {
                if (last is not null && (handedOn & Handover.Output) == 0) Discard(last.Output, last.Device);
                if ((handedOn & Handover.Checkpoint) == 0 && diffuse.Task is { } ran)
                {
                    if (ran.From is { } from) Discard(from, diffuse.Group[0]);
                    if (ran.Result.Task.Exception?.InnerException is DiffuseSuspendedException { Checkpoint: var c } && !ReferenceEquals(c, ran.From))
                        Discard(c, diffuse.Group[0]);
                }
            }
        }
        finally
        {
            batch?.Dispose();
        }
    }

    // What of an attempt's outputs a job's end handed on to the serving loop (which then discards them if it does not
    // use them after all).
    [Flags]
    private enum Handover
    {
        None = 0,
        // the last stage's output (a re-queue that resumes from it, or a suspension: its embeddings)
        Output = 1,
        // the diffuse's checkpoint (a suspension)
        Checkpoint = 2,
    }

    /// <summary>Frees <paramref name="output"/>, made by device <paramref name="device"/>, which nothing will read
    /// (IStageExecutor.Discard); any thread.</summary>
    public void Discard(StageOutput output, int device)
    {
        if (device >= 0 && device < Workers.Count) Workers[device].Discard(output);
    }

    /// <summary>Frees <paramref name="checkpoint"/>, made on device <paramref name="device"/> (a group's lead), which
    /// nothing will resume (IStageExecutor.Discard); any thread.</summary>
    public void Discard(DiffuseCheckpoint checkpoint, int device)
    {
        if (device >= 0 && device < Workers.Count) Workers[device].Discard(checkpoint);
    }

    private async Task<Handover> CompleteAsync(Job job, IReadOnlyList<RgbImage>? frames, Exception? failure, ResumePoint? resume, SuspendedJob? suspension)
    {
        try
        {
            if (failure is not null) throw failure;
            job.Cancellation.ThrowIfCancellationRequested();
            if (frames!.Count == 0) throw new InvalidOperationException("the decoder returned no frames");
            var file = await Generation.EncodeFileAsync(frames, job.Input.Output, _framesPerSecond, job.Cancellation).ConfigureAwait(false);
            job.Succeed(new JobResult(file.Bytes, file.Format, frames.Count, frames[0].Width, frames[0].Height), _clock.Now);
        }
        catch (OperationCanceledException) when (job.Cancellation.IsCancellationRequested)
        {
            job.Cancelled(_clock.Now);
        }
        catch (DiffuseSuspendedException) when (suspension is not null && _suspended is { } resumeLater)
        {
            // stopped at a step boundary for a more urgent request, not failed: the loop resumes it
            resumeLater(suspension);
            return Handover.Output | Handover.Checkpoint;
        }
        catch (Exception ex) when (DeviceLostException.Find(ex) is { } lost && _lost is { } requeue)
        {
            // the work was lost with a device, not failed by the request: the loop queues it again
            // an input its producer no longer keeps (no device lost): nothing to resume from
            var from = lost.FromStart ? null : resume;
            requeue(job, lost, from);
            return from is null ? Handover.None : Handover.Output;
        }
        catch (Exception ex)
        {
            job.Fail(Describe(ex), _clock.Now);
        }
        return Handover.None;
    }

    // A batch's cancellation: cancelled once every member's is (a member cancelled alone only drops its result).
    private sealed class BatchCancellation : IDisposable
    {
        private readonly CancellationTokenSource _all = new();
        private readonly CancellationTokenRegistration[] _registrations;
        private int _live;

        public BatchCancellation(IReadOnlyList<CancellationToken> members)
        {
            _live = members.Count;
            _registrations = members.Select(t => t.Register(Cancelled)).ToArray();
        }

        public CancellationToken Token => _all.Token;

        private void Cancelled()
        {
            if (Interlocked.Decrement(ref _live) == 0) _all.Cancel();
        }

        public void Dispose()
        {
            foreach (var r in _registrations) r.Dispose();
            _all.Dispose();
        }
    }

    /// <summary>The message a client sees for a failed stage.</summary>
    public static string Describe(Exception ex) =>
        ex is AggregateException { InnerExceptions.Count: 1 } a ? Describe(a.InnerExceptions[0]) : $"{ex.GetType().Name}: {ex.Message}";
}

/// <summary>A job whose diffuse was suspended at a step boundary (preemption, issue 12), with what its resumption
/// needs.</summary>
/// <param name="Job">The job.</param>
/// <param name="Checkpoint">Its latents and sampler state after <see cref="DiffuseCheckpoint.Step"/> steps.</param>
/// <param name="Embeddings">Its encode stage's output (kept for the resumption).</param>
/// <param name="EmbeddingsDevice">The device that made the embeddings.</param>
/// <param name="Group">The diffuse group it was suspended on (physical ids, the lead first); it resumes there.</param>
/// <param name="DecodeDevice">The decode device of its route.</param>
/// <param name="Withdrawn">A queued resumption withdrawn before it ran a step (<see cref="DiffuseTask.Withdrawal"/>):
/// its checkpoint is the one it was to resume from, and no suspension is counted.</param>
/// <param name="DecodeTaskId">The stopped attempt's decode task on <paramref name="DecodeDevice"/>, which will not run
/// (its worker skips it when it gets to it; the ledger can forget it now).</param>
public sealed record SuspendedJob(Job Job, DiffuseCheckpoint Checkpoint, StageOutput Embeddings, int EmbeddingsDevice, int[] Group, int DecodeDevice,
    bool Withdrawn, long DecodeTaskId);
