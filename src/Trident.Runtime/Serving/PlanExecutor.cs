// Carries out one dispatch: the encode task on the encode device, the diffuse task on the group's lead
// (first) device with one Reserve task on each other device of the group, the decode task on the decode
// device. The stages hand their outputs on as tensors through the tasks' results; the job completes when
// its decode does (its frames are written as the file it asked for: Generation.EncodeFileAsync) or when any stage fails or is
// cancelled, whose error then reaches every later stage. A batch (issue 12) is one set of tasks for several
// jobs; each job completes with its own item of the decode.

using Trident.Runtime.Devices;
using Trident.Runtime.Execution;
using Trident.Runtime.Imaging;
using Trident.Scheduling;

namespace Trident.Runtime.Serving;

/// <summary>Turns dispatches into worker tasks. Serving-loop thread only (task ids increase in enqueue order).</summary>
public sealed class PlanExecutor
{
    private readonly IReadOnlyList<Worker> _workers;
    private readonly DeviceLedger _ledger;
    private readonly ServerClock _clock;
    private readonly int _framesPerSecond;

    private long _nextTaskId;

    /// <summary>An executor over the server's workers.</summary>
    public PlanExecutor(IReadOnlyList<Worker> workers, DeviceLedger ledger, ServerClock clock, int framesPerSecond)
    {
        _workers = workers;
        _ledger = ledger;
        _clock = clock;
        _framesPerSecond = framesPerSecond;
    }

    /// <summary>A new task id.</summary>
    public long NextTaskId() => ++_nextTaskId;

    /// <summary>Enqueues a job's tasks as the dispatch says and records them in the ledger.</summary>
    public ValueTask ExecuteAsync(Job job, Dispatch dispatch, JobRoute route, CancellationToken stopping) =>
        ExecuteAsync([job], dispatch, route, stopping);

    /// <summary>Enqueues the tasks of a batch (issue 12) as the dispatch says and records them in the ledger:
    /// one encode, one diffuse and one decode task for all <paramref name="jobs"/> (the first leads; the
    /// others are its BatchMates), each run as one run with the batch dimension. The tasks' cancellation is
    /// the batch's: cancelled once every job is; a job cancelled earlier ends Cancelled and its result is
    /// dropped.</summary>
    /// <exception cref="ArgumentException">when the jobs cannot share a batch (BatchInputs.Compatible).</exception>
    public async ValueTask ExecuteAsync(IReadOnlyList<Job> jobs, Dispatch dispatch, JobRoute route, CancellationToken stopping)
    {
        var lead = jobs[0];
        BatchInputs.Check(jobs.Select(j => j.Input).ToArray());
        var input = lead.Input;
        var batch = jobs.Count == 1 ? null : new BatchCancellation(jobs.Select(j => j.Cancellation).ToArray());
        var token = batch?.Token ?? lead.Cancellation;
        IReadOnlyList<BatchMate>? mates = jobs.Count == 1 ? null : jobs.Skip(1).Select(j => new BatchMate(j.Id, j.Input, j)).ToArray();
        var encodeDevice = dispatch.Encode.Devices.Head.Value;
        var group = dispatch.Diffuse.Devices.Select(d => d.Value).ToArray();
        var decodeDevice = dispatch.Decode.Devices.Head.Value;
        if (group.Length != dispatch.Degree)
            throw new InvalidOperationException($"dispatch of {lead.Id} has degree {dispatch.Degree} and {group.Length} diffuse devices");
        var diffuseSeconds = dispatch.Diffuse.Finish - dispatch.Diffuse.Start;

        var encode = new EncodeTask(NextTaskId(), lead.Id, dispatch.Encode.Finish - dispatch.Encode.Start, token, input, mates);
        var seats = group.Skip(1).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var threads = group.Sum(d => _workers[d].Device.IntraOpThreads);
        var diffuse = new DiffuseTask(NextTaskId(), lead.Id, diffuseSeconds, token, input, encode.Result.Task, dispatch.Degree, threads, seats, lead, mates);
        var reserves = group.Skip(1)
            .Select((d, i) => (Device: d, Task: new ReserveTask(NextTaskId(), lead.Id, diffuseSeconds, token, seats[i], diffuse.Result.Task)))
            .ToArray();
        var decode = new DecodeTask(NextTaskId(), lead.Id, dispatch.Decode.Finish - dispatch.Decode.Start, token, input, diffuse.Result.Task, mates);

        foreach (var job in jobs) job.Dispatched(_clock.Now, route);
        await EnqueueAsync(encodeDevice, encode, stopping);
        await EnqueueAsync(group[0], diffuse, stopping);
        foreach (var (device, task) in reserves) await EnqueueAsync(device, task, stopping);
        await EnqueueAsync(decodeDevice, decode, stopping);
        _ = CompleteAsync(jobs, decode, batch);
    }

    private async ValueTask EnqueueAsync(int device, StageTask task, CancellationToken stopping)
    {
        _ledger.Enqueued(device, task);
        await _workers[device].EnqueueAsync(task, stopping);
    }

    /// <summary>Queues a placement change on a worker, behind the work it already has.</summary>
    public async ValueTask RetypeAsync(int device, PlacementType type, CancellationToken stopping)
    {
        var task = new RetypeTask(NextTaskId(), type);
        await EnqueueAsync(device, task, stopping);
    }

    private async Task CompleteAsync(IReadOnlyList<Job> jobs, DecodeTask decode, BatchCancellation? batch)
    {
        try
        {
            IReadOnlyList<IReadOnlyList<RgbImage>>? items = null;
            Exception? failure = null;
            try
            {
                items = await decode.Result.Task.ConfigureAwait(false);
                if (items.Count != jobs.Count) throw new InvalidOperationException($"the decoder returned {items.Count} results for a batch of {jobs.Count}");
            }
            catch (Exception ex)
            {
                failure = ex;
            }
            for (var i = 0; i < jobs.Count; i++) await CompleteAsync(jobs[i], failure is null ? items![i] : null, failure).ConfigureAwait(false);
        }
        finally
        {
            batch?.Dispose();
        }
    }

    private async Task CompleteAsync(Job job, IReadOnlyList<RgbImage>? frames, Exception? failure)
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
        catch (Exception ex)
        {
            job.Fail(Describe(ex), _clock.Now);
        }
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
