// Carries out one dispatch: the encode task on the encode device, the diffuse task on the group's lead
// (first) device with one Reserve task on each other device of the group, the decode task on the decode
// device. The stages hand their outputs on as tensors through the tasks' results; the job completes when
// its decode does (its frames are written as the file it asked for: Generation.EncodeFileAsync) or when any stage fails or is
// cancelled, whose error then reaches every later stage.

using Trident.Runtime.Devices;
using Trident.Runtime.Execution;
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
    public async ValueTask ExecuteAsync(Job job, Dispatch dispatch, JobRoute route, CancellationToken stopping)
    {
        var input = job.Input;
        var token = job.Cancellation;
        var encodeDevice = dispatch.Encode.Devices.Head.Value;
        var group = dispatch.Diffuse.Devices.Select(d => d.Value).ToArray();
        var decodeDevice = dispatch.Decode.Devices.Head.Value;
        if (group.Length != dispatch.Degree)
            throw new InvalidOperationException($"dispatch of {job.Id} has degree {dispatch.Degree} and {group.Length} diffuse devices");
        var diffuseSeconds = dispatch.Diffuse.Finish - dispatch.Diffuse.Start;

        var encode = new EncodeTask(NextTaskId(), job.Id, dispatch.Encode.Finish - dispatch.Encode.Start, token, input);
        var seats = group.Skip(1).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var threads = group.Sum(d => _workers[d].Device.IntraOpThreads);
        var diffuse = new DiffuseTask(NextTaskId(), job.Id, diffuseSeconds, token, input, encode.Result.Task, dispatch.Degree, threads, seats, job);
        var reserves = group.Skip(1)
            .Select((d, i) => (Device: d, Task: new ReserveTask(NextTaskId(), job.Id, diffuseSeconds, token, seats[i], diffuse.Result.Task)))
            .ToArray();
        var decode = new DecodeTask(NextTaskId(), job.Id, dispatch.Decode.Finish - dispatch.Decode.Start, token, input, diffuse.Result.Task);

        job.Dispatched(_clock.Now, route);
        await EnqueueAsync(encodeDevice, encode, stopping);
        await EnqueueAsync(group[0], diffuse, stopping);
        foreach (var (device, task) in reserves) await EnqueueAsync(device, task, stopping);
        await EnqueueAsync(decodeDevice, decode, stopping);
        _ = CompleteAsync(job, decode);
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

    private async Task CompleteAsync(Job job, DecodeTask decode)
    {
        try
        {
            var frames = await decode.Result.Task.ConfigureAwait(false);
            if (frames.Count == 0) throw new InvalidOperationException("the decoder returned no frames");
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

    /// <summary>The message a client sees for a failed stage.</summary>
    public static string Describe(Exception ex) =>
        ex is AggregateException { InnerExceptions.Count: 1 } a ? Describe(a.InnerExceptions[0]) : $"{ex.GetType().Name}: {ex.Message}";
}
