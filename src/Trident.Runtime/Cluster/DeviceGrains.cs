// One Trident across machines, on Orleans. A worker process (`trident worker`) is a silo that owns its
// devices' stage executors (WorkerDevices); each device is a grain, DeviceGrain, keyed
// "{silo endpoint}/{index}" and pinned to that silo by DevicePlacement, so a device never moves and a dead
// worker's devices are gone rather than re-activated elsewhere. The coordinator (`trident serve` with a
// cluster) keeps its serving loop and per-device FIFO workers and runs each stage task as a call on the
// device's grain (RemoteStageExecutor).
//
// Tensors between stages go worker to worker: a stage's output stays in the worker that made it (its
// grain's output store) and only a handle (grain key, output id, size) goes back to the coordinator; the
// next stage's grain fetches the bytes from the producing grain (Fetch, a grain-to-grain call between the
// two workers' silos) — as one byte[] (measured 3× faster than float[]; platform.md). The decoded frames
// are the one payload that reaches the coordinator: they are the result. Progress (per diffuse step) comes
// back through a grain observer (one-way calls); cancellation is the call's CancellationToken, honoured by the executor at
// step boundaries as in one process.

using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Trident.Runtime.Devices;
using Trident.Runtime.Imaging;
using Orleans;
using Orleans.Concurrency;
using Orleans.Runtime;
using Trident.Scheduling;

namespace Trident.Runtime.Clustering;

/// <summary>A request as it crosses the network (GenerationInput's fields).</summary>
[GenerateSerializer, Immutable, Alias("Trident.WireInput")]
public sealed record WireInput(
    [property: Id(0)] string Prompt,
    [property: Id(1)] string? NegativePrompt,
    [property: Id(2)] int Width,
    [property: Id(3)] int Height,
    [property: Id(4)] int Frames,
    [property: Id(5)] int Steps,
    [property: Id(6)] ulong Seed,
    [property: Id(7)] double Guidance)
{
    /// <summary>The wire form of <paramref name="input"/>.</summary>
    public static WireInput Of(GenerationInput input) =>
        new(input.Prompt, input.NegativePrompt, input.Width, input.Height, input.Frames, input.Steps, input.Seed, input.Guidance);

    /// <summary>Back to the executors' form.</summary>
    public GenerationInput ToInput() => new(Prompt, NegativePrompt, Width, Height, Frames, Steps, Seed, Guidance);
}

/// <summary>Where a stage output lives: the grain of the device that made it, and its id there.</summary>
/// <param name="Device">The producing device grain's key.</param>
/// <param name="Output">The output's id in that grain's store.</param>
/// <param name="Bytes">Its size.</param>
[GenerateSerializer, Immutable, Alias("Trident.StageHandle")]
public sealed record StageHandle([property: Id(0)] string Device, [property: Id(1)] long Output, [property: Id(2)] long Bytes);

/// <summary>Where a stage call's time went on the worker, by the worker's clock (durations only: no clock is
/// compared across machines).</summary>
/// <param name="Seconds">From the call's start on the device grain to its reply.</param>
/// <param name="FetchSeconds">Of those, fetching the input from another device's grain (0 when it was this one's).</param>
/// <param name="PredictedSeconds">The time the task was meant to take (an emulated device's scaled cost model;
/// 0 for an executor that does not say).</param>
[GenerateSerializer, Immutable, Alias("Trident.WorkerTime")]
public sealed record WorkerTime([property: Id(0)] double Seconds, [property: Id(1)] double FetchSeconds, [property: Id(2)] double PredictedSeconds);

/// <summary>A stage task's outcome: the handle of its output, the bytes its grain fetched from another
/// worker's device to run it (0 when the input was already on this device's worker), and the worker's time.</summary>
[GenerateSerializer, Immutable, Alias("Trident.StageReply")]
public sealed record StageReply([property: Id(0)] StageHandle Output, [property: Id(1)] long FetchedBytes, [property: Id(2)] WorkerTime? Time = null);

/// <summary>A diffuse suspended at a step boundary on a worker (issue 12, preemption): its checkpoint stays in that
/// worker's memory (<see cref="WorkerDevices"/>) and resumes on a device of the same worker; only this handle
/// reaches the coordinator, as the <see cref="DiffuseCheckpoint.State"/> of the checkpoint it sees.</summary>
/// <param name="Device">The key of the device grain that suspended it.</param>
/// <param name="Id">The checkpoint's id in its worker's store.</param>
/// <param name="Step">Denoising steps done.</param>
/// <param name="Steps">Steps of the whole run.</param>
/// <param name="IntraOpThreads">The threads it ran with (a resumption uses the same).</param>
/// <param name="Bytes">Bytes kept on the worker.</param>
[GenerateSerializer, Immutable, Alias("Trident.CheckpointHandle")]
public sealed record CheckpointHandle([property: Id(0)] string Device, [property: Id(1)] long Id, [property: Id(2)] int Step, [property: Id(3)] int Steps,
    [property: Id(4)] int IntraOpThreads, [property: Id(5)] long Bytes);

/// <summary>A diffuse segment's outcome on a worker: the handle of its latents, or of the checkpoint it was suspended
/// at; the bytes its grain fetched from another worker to run it, and the worker's time.</summary>
[GenerateSerializer, Immutable, Alias("Trident.SegmentReply")]
public sealed record SegmentReply([property: Id(0)] StageHandle? Latents, [property: Id(1)] CheckpointHandle? Suspended, [property: Id(2)] long FetchedBytes,
    [property: Id(3)] WorkerTime? Time = null);

/// <summary>Decoded frames (RGB, width × height × 3 bytes each), the bytes fetched to decode them, and the worker's time.</summary>
[GenerateSerializer, Immutable, Alias("Trident.FramesReply")]
public sealed record FramesReply([property: Id(0)] int Width, [property: Id(1)] int Height, [property: Id(2)] byte[][] Frames, [property: Id(3)] long FetchedBytes,
    [property: Id(4)] WorkerTime? Time = null);

/// <summary>A device as its worker describes it.</summary>
/// <param name="Key">Its grain key, "{silo endpoint}/{index}".</param>
/// <param name="Kind">cpu, cuda or emulated.</param>
/// <param name="MemoryGb">Its memory for the planners.</param>
/// <param name="IntraOpThreads">Its thread budget.</param>
/// <param name="Model">The model family its executor serves (the profile's model name).</param>
/// <param name="ProfileSource">Where the worker's profile came from (the coordinator checks that they agree).</param>
[GenerateSerializer, Immutable, Alias("Trident.WireDevice")]
public sealed record WireDevice(
    [property: Id(0)] string Key,
    [property: Id(1)] string Kind,
    [property: Id(2)] double MemoryGb,
    [property: Id(3)] int IntraOpThreads,
    [property: Id(4)] string Model,
    [property: Id(5)] string ProfileSource);

/// <summary>Receives a remote diffuse's progress (a grain observer on the coordinator).</summary>
[Alias("Trident.IStepSink")]
public interface IStepSink : IGrainObserver
{
    /// <summary>Step <paramref name="step"/> of <paramref name="total"/> is done (sent at most 20 times a second,
    /// never for the last step: the diffuse's reply means it). One-way: nothing waits for a report, and a report
    /// that comes after the reply (or is lost) loses nothing, since the reply reports every step up to the last
    /// (RemoteStageExecutor).</summary>
    [OneWay, Alias("Step")]
    Task Step(int step, int total);
}

/// <summary>One device of a worker, pinned to the worker's silo.</summary>
[Alias("Trident.IDeviceGrain")]
public interface IDeviceGrain : IGrainWithStringKey
{
    /// <summary>Loads a stage model now (the placement gave the device this stage).</summary>
    [Alias("Load")]
    Task Load(int stage);

    /// <summary>Releases a stage model.</summary>
    [Alias("Unload")]
    Task Unload(int stage);

    /// <summary>The identity of the silo this grain is activated on.</summary>
    [AlwaysInterleave, Alias("Silo")]
    Task<string> Silo();

    /// <summary>The stages resident now (Stage tags: 0 encode, 1 diffuse, 2 decode).</summary>
    [AlwaysInterleave, Alias("Resident")]
    Task<int[]> Resident();

    /// <summary>Encodes the prompt; the embeddings stay on this worker.</summary>
    [Alias("Encode")]
    Task<StageReply> Encode(WireInput input, CancellationToken cancellationToken);

    /// <summary>Diffuses from <paramref name="embeddings"/> (fetched from their device when it is another) at
    /// degree <paramref name="degree"/>, reporting each step to <paramref name="progress"/>.</summary>
    [Alias("Diffuse")]
    Task<StageReply> Diffuse(WireInput input, StageHandle embeddings, int degree, IStepSink progress, CancellationToken cancellationToken);

    /// <summary>Whether this device's executor can suspend a diffuse at a step boundary and resume it.</summary>
    [AlwaysInterleave, Alias("CanSuspend")]
    Task<bool> CanSuspend();

    /// <summary>A diffuse that may be suspended, or the resumption of one from <paramref name="from"/> (a checkpoint of
    /// a device of this worker): as <see cref="Diffuse"/>, but it stops at the first step boundary after its first
    /// step once <see cref="Suspend"/> was called with <paramref name="segment"/> (the coordinator's id of this
    /// call), keeping its checkpoint, with the embeddings it ran with, on this worker (a resumption runs with those, not
    /// fetched again). The embeddings' producer keeps them until the diffuse completes.</summary>
    /// <exception cref="InvalidOperationException">when <paramref name="from"/> was made on another worker, or is no
    /// longer kept (resumed already, expired, or its worker restarted).</exception>
    [Alias("DiffuseSegment")]
    Task<SegmentReply> DiffuseSegment(WireInput input, StageHandle embeddings, int degree, IStepSink progress, CheckpointHandle? from, long segment,
        CancellationToken cancellationToken);

    /// <summary>Asks the diffuse segment <paramref name="segment"/> to stop at its next step boundary (one-way;
    /// interleaves with the running segment; a request for a segment that has ended is forgotten after a while).</summary>
    [AlwaysInterleave, OneWay, Alias("Suspend")]
    Task Suspend(long segment);

    /// <summary>Decodes <paramref name="latents"/> (fetched from their device when it is another).</summary>
    [Alias("Decode")]
    Task<FramesReply> Decode(WireInput input, StageHandle latents, CancellationToken cancellationToken);

    /// <summary>Hands over output <paramref name="output"/> of this device: called by the grain of the device
    /// that runs the next stage, worker to worker. Interleaves with a running task. The output stays until
    /// <see cref="Release"/> (the coordinator has the next stage's reply), so a request whose next stage was lost
    /// with its worker — even after that stage ended there — resumes from it.</summary>
    [AlwaysInterleave, Alias("Fetch")]
    Task<byte[]> Fetch(long output);

    /// <summary>Forgets output <paramref name="output"/>: the coordinator has the reply of the stage that took it, or
    /// nothing will take it (its job was cancelled or failed, or starts again).</summary>
    [AlwaysInterleave, OneWay, Alias("Release")]
    Task Release(long output);

    /// <summary>Forgets checkpoint <paramref name="checkpoint"/> of this worker (<see cref="CheckpointHandle.Id"/>) and the
    /// embeddings it kept: nothing will resume it (its job was cancelled or failed, or starts again). One-way; a
    /// checkpoint resumed or dropped already is ignored.</summary>
    [AlwaysInterleave, OneWay, Alias("DropCheckpoint")]
    Task DropCheckpoint(long checkpoint);
}

/// <summary>The devices of one worker, as the coordinator discovers them; keyed by the silo's endpoint and
/// pinned to it like the device grains.</summary>
[Alias("Trident.INodeGrain")]
public interface INodeGrain : IGrainWithStringKey
{
    /// <summary>This worker's devices (none on a silo that is not a worker, such as the coordinator).</summary>
    [AlwaysInterleave, Alias("Devices")]
    Task<WireDevice[]> Devices();

    /// <summary>The coordinator does not use this worker's devices, for <paramref name="reason"/> (it serves another
    /// profile than the cluster's): the worker logs it and its <c>/health</c> says it (one-way).</summary>
    [AlwaysInterleave, OneWay, Alias("Refuse")]
    Task Refuse(string reason);
}

/// <summary>The devices a worker process owns: their specs and executors, created once at start.</summary>
public sealed class WorkerDevices : IDisposable
{
    private readonly IStageExecutor[] _executors;

    /// <summary>Executors for <paramref name="devices"/> (local indices 0..n−1) from <paramref name="factory"/>.</summary>
    /// <param name="devices">The worker's devices.</param>
    /// <param name="factory">Creates each device's executor.</param>
    /// <param name="model">The model family served (the profile's model).</param>
    /// <param name="profileSource">Where the profile came from, as the coordinator compares it.</param>
    public WorkerDevices(DeviceLayout devices, IStageExecutorFactory factory, string model, string profileSource)
    {
        Layout = devices;
        Model = model;
        ProfileSource = profileSource;
        // one executor per device; when one cannot be made, those made before it are released (each may hold a
        // pipeline's tokenizers and, once loaded, its sessions) before the error goes on
        var executors = new List<IStageExecutor>(devices.Devices.Count);
        try
        {
            foreach (var device in devices.Devices) executors.Add(factory.Create(device));
        }
        catch
        {
            foreach (var made in executors) made.Dispose();
            throw;
        }
        _executors = [.. executors];
    }

    /// <summary>The worker's devices.</summary>
    public DeviceLayout Layout { get; }

    /// <summary>The model family served.</summary>
    public string Model { get; }

    /// <summary>Where the profile came from.</summary>
    public string ProfileSource { get; }

    /// <summary>Why the coordinator does not use these devices (it said so: <see cref="INodeGrain.Refuse"/>), or null.</summary>
    public string? Refusal { get; set; }

    /// <summary>The executor of local device <paramref name="index"/>.</summary>
    public IStageExecutor Executor(int index) => _executors[index];

    // Checkpoints of suspended diffuses (any device of this worker may resume one), each with the embeddings it ran
    // with, and the segments asked to stop, each with when it was kept. A checkpoint nobody will resume (its job was
    // cancelled, failed or starts again) is dropped by the coordinator (DropCheckpoint); what is left anyway (that
    // message lost, the coordinator gone) or no segment ends (the request came after it) is dropped after
    // CheckpointLifetime. Ids start at a random point, as output ids do: a drop or resumption meant for a worker
    // process before a restart at the same endpoint names no checkpoint of this one.
    private readonly ConcurrentDictionary<long, (DiffuseCheckpoint Checkpoint, byte[] Embeddings, DateTime At)> _checkpoints = new();
    private readonly ConcurrentDictionary<long, DateTime> _suspends = new();
    private long _nextCheckpoint = Random.Shared.NextInt64(1, long.MaxValue / 2);

    /// <summary>How long a checkpoint nobody resumed, or a stop request no segment took, is kept.</summary>
    public static readonly TimeSpan CheckpointLifetime = TimeSpan.FromMinutes(30);

    /// <summary>Keeps <paramref name="checkpoint"/> with the <paramref name="embeddings"/> its diffuse ran with (its
    /// resumption runs with them: their producer may have dropped them by then, its output lifetime being shorter, or
    /// be gone); returns its id.</summary>
    public long KeepCheckpoint(DiffuseCheckpoint checkpoint, byte[] embeddings)
    {
        Sweep();
        var id = Interlocked.Increment(ref _nextCheckpoint);
        _checkpoints[id] = (checkpoint, embeddings, DateTime.UtcNow);
        return id;
    }

    /// <summary>Takes checkpoint <paramref name="id"/> and its embeddings out of the store (a resumption runs it once),
    /// or null.</summary>
    public (DiffuseCheckpoint Checkpoint, byte[] Embeddings)? TakeCheckpoint(long id) =>
        _checkpoints.TryRemove(id, out var kept) ? (kept.Checkpoint, kept.Embeddings) : null;

    /// <summary>Checkpoints kept now.</summary>
    public int Checkpoints => _checkpoints.Count;

    /// <summary>Asks segment <paramref name="segment"/> to stop at its next step boundary.</summary>
    public void RequestSuspend(long segment)
    {
        Sweep();
        _suspends[segment] = DateTime.UtcNow;
    }

    /// <summary>Whether segment <paramref name="segment"/> was asked to stop.</summary>
    public bool SuspendRequested(long segment) => _suspends.ContainsKey(segment);

    /// <summary>Forgets the stop request of a segment that ended.</summary>
    public void SegmentEnded(long segment) => _suspends.TryRemove(segment, out _);

    private void Sweep()
    {
        var now = DateTime.UtcNow;
        foreach (var (id, kept) in _checkpoints)
            if (now - kept.At > CheckpointLifetime) _checkpoints.TryRemove(id, out _);
        foreach (var (id, at) in _suspends)
            if (now - at > CheckpointLifetime) _suspends.TryRemove(id, out _);
    }

    // Stage outputs of this worker's devices, kept until the next stage that took them succeeded (Release) or their
    // lifetime ends. They live here, for the worker process, not in the device grains: Orleans may drop a grain's
    // activation and make it again (idle past its collection age, activation shedding, directory changes), and a
    // grain that kept its outputs lost them then — the next stage found "no output" on a healthy worker and the
    // coordinator took that worker out of the cluster (the operator's report; reproduced with a forced activation
    // collection, test "stage outputs outlive their device grain's activation"). Output ids start at a random point so
    // that a handle from before a worker restart (a new process at the same endpoint) names no output of the new one.
    private readonly ConcurrentDictionary<long, (string Device, byte[] Bytes, DateTime At)> _outputs = new();
    private long _nextOutput = Random.Shared.NextInt64(1, long.MaxValue / 2);

    /// <summary>How long an output is kept that nobody released: its next stage never came and the coordinator's
    /// discard of it (its job cancelled, failed or started again: IStageExecutor.Discard) did not arrive either (the
    /// coordinator died, or the message was lost).</summary>
    public static readonly TimeSpan OutputLifetime = TimeSpan.FromMinutes(10);

    /// <summary>Keeps <paramref name="bytes"/>, made by device <paramref name="device"/> (its grain key); returns its id
    /// and the ids of the outputs dropped because they outlived <see cref="OutputLifetime"/>.</summary>
    public (long Id, long[] Expired) KeepOutput(string device, byte[] bytes)
    {
        var now = DateTime.UtcNow;
        List<long>? expired = null;
        foreach (var (old, kept) in _outputs)
            if (now - kept.At > OutputLifetime && _outputs.TryRemove(old, out _))
                (expired ??= []).Add(old);
        var id = Interlocked.Increment(ref _nextOutput);
        _outputs[id] = (device, bytes, now);
        return (id, expired is null ? [] : [.. expired]);
    }

    /// <summary>The bytes of output <paramref name="id"/> of device <paramref name="device"/>, or null when it is not
    /// kept (released, expired, made by another device, or before this worker process started).</summary>
    public byte[]? Output(string device, long id) =>
        _outputs.TryGetValue(id, out var kept) && string.Equals(kept.Device, device, StringComparison.Ordinal) ? kept.Bytes : null;

    /// <summary>Forgets output <paramref name="id"/> of device <paramref name="device"/>.</summary>
    public void ReleaseOutput(string device, long id)
    {
        if (_outputs.TryGetValue(id, out var kept) && string.Equals(kept.Device, device, StringComparison.Ordinal))
            _outputs.TryRemove(id, out _);
    }

    /// <summary>Outputs kept now.</summary>
    public int Outputs => _outputs.Count;

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var e in _executors) e.Dispose();
    }
}

/// <summary>Helpers for grain keys and stage tags.</summary>
public static class DeviceKeys
{
    /// <summary>The key of local device <paramref name="index"/> of the silo at <paramref name="endpoint"/>.</summary>
    public static string Of(string endpoint, int index) => $"{endpoint}/{index}";

    /// <summary>The silo endpoint part of a device or node key.</summary>
    public static string Endpoint(string key) => key.IndexOf('/') is var i and >= 0 ? key[..i] : key;

    /// <summary>The local index part of a device key.</summary>
    public static int Index(string key) =>
        int.TryParse(key.AsSpan(key.IndexOf('/') + 1), out var i) ? i : throw new ArgumentException($"'{key}' is not a device key (endpoint/index)", nameof(key));

    /// <summary>The stage of a tag.</summary>
    public static Stage StageOf(int tag) => tag switch
    {
        0 => Scheduling.Stage.Encode,
        1 => Scheduling.Stage.Diffuse,
        2 => Scheduling.Stage.Decode,
        _ => throw new ArgumentOutOfRangeException(nameof(tag), tag, "a stage tag is 0, 1 or 2"),
    };

    /// <summary>The tag of a stage.</summary>
    public static int Tag(Stage stage) => stage.Tag;
}

/// <summary>A worker's device: runs stage tasks on the worker's local executor, keeps their outputs until
/// the next stage's device fetches them.</summary>
[DevicePlacement]
public sealed class DeviceGrain(WorkerDevices devices, ILogger<DeviceGrain> log) : Grain, IDeviceGrain
{
    // The device's outputs are kept by its worker (WorkerDevices.KeepOutput), not here: a grain's activation may be
    // dropped and made again at any time (see there).

    private string Key => this.GetPrimaryKeyString();

    private IStageExecutor Executor
    {
        get
        {
            var index = DeviceKeys.Index(Key);
            if (index < 0 || index >= devices.Layout.Devices.Count)
                throw new InvalidOperationException($"device {Key}: this worker has {devices.Layout.Devices.Count} device(s)");
            return devices.Executor(index);
        }
    }

    private DeviceSpec Spec => devices.Layout.Devices[DeviceKeys.Index(Key)];

    /// <inheritdoc />
    public Task Load(int stage)
    {
        var executor = Executor;
        return Run(executor, async a =>
            {
                await a.LoadAsync(DeviceKeys.StageOf(stage), CancellationToken.None);
                return true;
            }, () =>
            {
                executor.Load(DeviceKeys.StageOf(stage));
                return true;
            }, CancellationToken.None);
    }

    // A stage task of an executor that waits without a thread (IAsyncStageExecutor: emulated devices) is awaited
    // on the grain's own scheduler, holding no thread while it runs. A blocking one (an ONNX Runtime run) runs on
    // a thread of its own, never on a thread-pool thread: eight devices' blocked calls on a worker with two
    // cores (the pool's minimum) starved Orleans' own messaging of pool threads, so stage starts, progress
    // reports and replies all lagged by seconds under load (`bench cluster` at 128 devices).
    // TaskScheduler.Default explicitly: inside a grain the current scheduler is the grain's.
    private static Task<T> OffPool<T>(Func<T> work, CancellationToken cancellationToken) =>
        Task.Factory.StartNew(work, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private async Task<T> Run<T>(IStageExecutor executor, Func<IAsyncStageExecutor, Task<T>> waits, Func<T> blocks, CancellationToken cancellationToken)
    {
        try
        {
            return await (executor is IAsyncStageExecutor a ? waits(a) : OffPool(blocks, cancellationToken));
        }
        catch (Exception e) when (e is not OperationCanceledException && !Wired(e))
        {
            // Orleans serializes the exceptions of System's and its own types (and [GenerateSerializer] ones); an
            // executor's own type (e.g. EmulatedOutOfMemoryException, OrtException) would reach the coordinator as a
            // CodecNotFoundException, its message lost: it is reported as what it is instead, without the inner one
            throw new InvalidOperationException($"device {Key}: {e.GetType().Name}: {e.Message}");
        }
    }

    private static bool Wired(Exception e) =>
        e.GetType().Assembly == typeof(Exception).Assembly || e is OrleansException;

    private static WorkerTime Since(long start, double fetchSeconds, IStageExecutor executor, Stage stage, GenerationInput input, int degree) =>
        new(Stopwatch.GetElapsedTime(start).TotalSeconds, fetchSeconds, executor is IAsyncStageExecutor a ? a.PredictedSeconds(stage, input, degree) : 0);

    /// <inheritdoc />
    public Task Unload(int stage)
    {
        Executor.Unload(DeviceKeys.StageOf(stage));
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<string> Silo() => Task.FromResult(RuntimeIdentity);

    /// <inheritdoc />
    public Task<int[]> Resident() => Task.FromResult(Executor.Resident.Select(DeviceKeys.Tag).Order().ToArray());

    /// <inheritdoc />
    public async Task<StageReply> Encode(WireInput input, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var executor = Executor;
        var request = input.ToInput();
        var output = await Run(executor, a => a.EncodeAsync(request, cancellationToken), () => executor.Encode(request, cancellationToken), cancellationToken);
        return new StageReply(Keep(output), 0, Since(start, 0, executor, Stage.Encode, request, 1));
    }

    /// <inheritdoc />
    public async Task<StageReply> Diffuse(WireInput input, StageHandle embeddings, int degree, IStepSink progress, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var executor = Executor;
        var d = await DiffuseInputsAsync(start, input, embeddings, degree, progress, executor);
        var output = await Run(executor, a => a.DiffuseAsync(d.Request, d.Embeddings, d.Threads, d.Observer, TimeSpan.FromTicks(ProgressInterval), cancellationToken),
            () => executor.Diffuse(d.Request, d.Embeddings, d.Threads, d.Observer, cancellationToken), cancellationToken);
        // the embeddings stay until the coordinator has this reply (it releases them, RemoteStageExecutor): released
        // here, a reply lost with this worker would leave the job to resume from embeddings that are gone
        return new StageReply(Keep(output), d.Fetched, Since(start, d.FetchSeconds, executor, Stage.Diffuse, d.Request, degree));
    }

    // What a diffuse call runs with on this device: the request, its embeddings (fetched when another device made
    // them: the bytes fetched and the seconds since `start`), the group's threads and the progress observer.
    private sealed record DiffuseInputs(GenerationInput Request, StageOutput Embeddings, long Fetched, double FetchSeconds, int Threads, IStepObserver Observer);

    // `kept`: the embeddings a resumed segment's checkpoint kept (not fetched again).
    private async Task<DiffuseInputs> DiffuseInputsAsync(long start, WireInput input, StageHandle embeddings, int degree, IStepSink progress, IStageExecutor executor,
        byte[]? kept = null)
    {
        var (bytes, fetched) = kept is null ? await Take(embeddings) : (kept, 0L);
        var fetchSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        // an executor that waits without a thread wakes for progress at most every ProgressInterval itself; a
        // blocking one reports every step and the reports are thinned here
        var observer = new Progress(progress, executor is IAsyncStageExecutor ? 0 : ProgressInterval);
        return new DiffuseInputs(input.ToInput(), new StageOutput(bytes, embeddings.Bytes), fetched, fetchSeconds, degree * Spec.IntraOpThreads, observer);
    }

    /// <inheritdoc />
    public Task<bool> CanSuspend() => Task.FromResult(Executor.CanSuspend);

    /// <inheritdoc />
    public Task Suspend(long segment)
    {
        devices.RequestSuspend(segment);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async Task<SegmentReply> DiffuseSegment(WireInput input, StageHandle embeddings, int degree, IStepSink progress, CheckpointHandle? from, long segment,
        CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var executor = Executor;
        if (!executor.CanSuspend)
            throw new InvalidOperationException($"device {Key}: its executor cannot suspend a diffuse");
        if (from is not null && DeviceKeys.Endpoint(from.Device) != DeviceKeys.Endpoint(Key))
            throw new InvalidOperationException($"device {Key}: the checkpoint of device {from.Device} stays on its own worker; resume it on a device of that worker");
        (DiffuseCheckpoint Checkpoint, byte[] Embeddings)? resumed = from is null ? null
            : devices.TakeCheckpoint(from.Id)
              ?? throw new InvalidOperationException($"device {Key}: checkpoint {from.Id} of device {from.Device} is not kept (resumed already, expired, or its worker restarted)");
        try
        {
            var d = await DiffuseInputsAsync(start, input, embeddings, degree, progress, executor, resumed?.Embeddings);
            bool Stop() => devices.SuspendRequested(segment);
            var result = await Run(executor,
                a => a.DiffuseSegmentAsync(d.Request, d.Embeddings, d.Threads, d.Observer, resumed?.Checkpoint, Stop, cancellationToken),
                () => executor.DiffuseSegment(d.Request, d.Embeddings, d.Threads, d.Observer, resumed?.Checkpoint, Stop, cancellationToken), cancellationToken);
            var time = Since(start, d.FetchSeconds, executor, Stage.Diffuse, d.Request, degree);
            if (result.Suspended is { } c)
            {
                // the embeddings stay (the coordinator releases them once the last segment replied), and the checkpoint
                // keeps those it ran with: its resumption, on this worker, does not fetch them again
                var id = devices.KeepCheckpoint(c, (byte[])d.Embeddings.Value);
                return new SegmentReply(null, new CheckpointHandle(Key, id, c.Step, c.Steps, c.IntraOpThreads, c.Bytes), d.Fetched, time);
            }
            // the embeddings stay until the coordinator has the reply (see Diffuse)
            return new SegmentReply(Keep(result.Latents!), null, d.Fetched, time);
        }
        finally
        {
            // a failed resumption does not put its checkpoint back: the coordinator fails the job, or re-queues it
            // from its embeddings when a device was lost
            devices.SegmentEnded(segment);
        }
    }

    /// <inheritdoc />
    public async Task<FramesReply> Decode(WireInput input, StageHandle latents, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var (bytes, fetched) = await Take(latents);
        var fetchSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var executor = Executor;
        var request = input.ToInput();
        var given = new StageOutput(bytes, latents.Bytes);
        var frames = await Run(executor, a => a.DecodeAsync(request, given, cancellationToken), () => executor.Decode(request, given, cancellationToken), cancellationToken);
        // the latents stay until the coordinator has the frames (see Diffuse)
        return new FramesReply(frames[0].Width, frames[0].Height, [.. frames.Select(f => f.Pixels)], fetched, Since(start, fetchSeconds, executor, Stage.Decode, request, 1));
    }

    /// <inheritdoc />
    public Task<byte[]> Fetch(long output) =>
        devices.Output(Key, output) is { } bytes
            ? Task.FromResult(bytes)
            : throw new InvalidOperationException(Missing(Key, output));

    /// <inheritdoc />
    public Task Release(long output)
    {
        devices.ReleaseOutput(Key, output);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task DropCheckpoint(long checkpoint)
    {
        devices.TakeCheckpoint(checkpoint);
        return Task.CompletedTask;
    }

    /// <summary>Starts the message of the error a stage task fails with when its input could not be fetched
    /// from the device that made it because that device's worker could not be reached (it is gone); the producing
    /// device's key follows, then ": " and the cause. The coordinator reads it (RemoteStageExecutor) to tell
    /// which device was lost.</summary>
    public const string InputLost = "stage input lost with device ";

    /// <summary>Starts the message of the error a stage task fails with when the device that made its input answered
    /// but no longer keeps it (released, expired, or its worker process restarted): the producing device's key
    /// follows, then ": " and the detail. No device is lost: the coordinator re-queues the job from its start
    /// without taking any worker out of the cluster (RemoteStageExecutor).</summary>
    public const string InputMissing = "stage input missing on device ";

    private static string Missing(string device, long output) =>
        $"{InputMissing}{device}: output {output} is not kept there (released, expired, or its worker restarted)";

    // The bytes of a handle: from this worker's store when this device made it, or fetched from the producing device's
    // grain. A producer that answers without the output is a missing input (InputMissing, its key); one that cannot
    // be reached is a lost input (InputLost, its key) — never this device's own key, unless it made the input.
    private async Task<(byte[] Bytes, long Fetched)> Take(StageHandle handle)
    {
        if (handle.Device == Key)
            return devices.Output(Key, handle.Output) is { } own
                ? (own, 0)
                : throw new InvalidOperationException(Missing(Key, handle.Output));
        byte[] bytes;
        try
        {
            bytes = await GrainFactory.GetGrain<IDeviceGrain>(handle.Device).Fetch(handle.Output);
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith(InputMissing, StringComparison.Ordinal))
        {
            throw new InvalidOperationException(e.Message);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InvalidOperationException($"{InputLost}{handle.Device}: {e.GetType().Name}: {e.Message}");
        }
        return (bytes, DeviceKeys.Endpoint(handle.Device) == DeviceKeys.Endpoint(Key) ? 0 : bytes.LongLength);
    }

    private StageHandle Keep(StageOutput output)
    {
        if (output.Value is not byte[] bytes)
            throw new InvalidOperationException($"device {Key}: its executor's output is a {output.Value.GetType().Name}, not bytes; only executors whose outputs are byte[] can serve across machines");
        var (id, expired) = devices.KeepOutput(Key, bytes);
        foreach (var old in expired)
            log.LogWarning("Device {Device}: output {Output} of this worker was never fetched; dropped after {Minutes} min", Key, old, WorkerDevices.OutputLifetime.TotalMinutes);
        return new StageHandle(Key, id, output.Bytes);
    }

    // Progress reports at most 20 times a second (TimeSpan ticks).
    private static readonly long ProgressInterval = TimeSpan.TicksPerSecond / 20;

    // Sends progress to the coordinator without blocking the executor: one-way reports of the latest step at
    // most every 50 ms, never the last one (the diffuse's reply says it, and RemoteStageExecutor reports the steps
    // in between in order), so a fast diffuse costs a few messages and its reply waits for none of them.
    private sealed class Progress(IStepSink sink, long intervalTicks) : IStepObserver
    {
        private readonly long _interval = intervalTicks * Stopwatch.Frequency / TimeSpan.TicksPerSecond;
        private long _last = long.MinValue / 2;

        public void StepCompleted(int step, int total)
        {
            var now = Stopwatch.GetTimestamp();
            if (step >= total || now - Interlocked.Read(ref _last) < _interval) return;
            Interlocked.Exchange(ref _last, now);
            _ = sink.Step(step, total);
        }
    }
}

/// <summary>A worker's node: lists its devices.</summary>
[DevicePlacement]
public sealed class NodeGrain(IServiceProvider services, ILogger<NodeGrain> log) : Grain, INodeGrain
{
    /// <inheritdoc />
    public Task Refuse(string reason)
    {
        if (services.GetService(typeof(WorkerDevices)) is WorkerDevices devices && devices.Refusal != reason)
        {
            devices.Refusal = reason;
            log.LogError("The coordinator does not use this worker's devices: {Reason}", reason);
        }
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<WireDevice[]> Devices()
    {
        var devices = services.GetService(typeof(WorkerDevices)) as WorkerDevices;
        if (devices is null) return Task.FromResult(Array.Empty<WireDevice>());
        var endpoint = this.GetPrimaryKeyString();
        return Task.FromResult(devices.Layout.Devices
            .Select((d, i) => new WireDevice(DeviceKeys.Of(endpoint, i), d.Kind.ToString().ToLowerInvariant(), d.MemoryGb, d.IntraOpThreads, devices.Model, devices.ProfileSource))
            .ToArray());
    }
}
