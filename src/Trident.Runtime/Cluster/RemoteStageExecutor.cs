// The coordinator's executor of a device on another machine: each stage task is a call on the device's grain
// (DeviceGrains.cs). It runs on the device's FIFO worker thread on the coordinator, like any executor, so the
// serving loop, the ledger and the job's progress are the same as in one process. Stage outputs are handles
// (StageHandle): the bytes stay on the worker that made them and go from there straight to the worker that
// needs them. A worker that dies fails the call with Orleans' error (the device's silo is gone, or the
// input's producer is): the executor turns it into a DeviceLostException naming the lost device and tells
// the coordinator's DeviceDirectory (which takes that worker's devices out of the cluster at once), and the
// serving loop re-queues the job instead of failing it.

using System.Diagnostics;
using System.Diagnostics.Metrics;
using Trident.Runtime.Devices;
using Trident.Runtime.Imaging;
using Orleans;
using Orleans.Runtime;
using Trident.Scheduling;

namespace Trident.Runtime.Clustering;

/// <summary>Bytes of stage outputs that crossed the network between workers, and of results sent to the
/// coordinator; exported as <c>trident_cluster_transfer_bytes_total{kind}</c> once bound to the server's meter.</summary>
public sealed class ClusterTransfers
{
    private Counter<long>? _counter;
    private long _pending;

    /// <summary>Creates the counter on <paramref name="meter"/> (the server's), with the bytes counted before.</summary>
    public void Bind(Meter meter)
    {
        _counter = meter.CreateCounter<long>("trident_cluster_transfer_bytes_total", null,
            "Bytes of stage outputs sent between workers (kind = embeddings, latents) and of decoded results sent to the coordinator (kind = result)");
        foreach (var kind in new[] { "embeddings", "latents", "result" }) _counter.Add(0, new KeyValuePair<string, object?>("kind", kind));
        var pending = Interlocked.Exchange(ref _pending, 0);
        if (pending > 0) _counter.Add(pending, new KeyValuePair<string, object?>("kind", "embeddings"));
    }

    /// <summary>Counts <paramref name="bytes"/> of <paramref name="kind"/>.</summary>
    public void Add(string kind, long bytes)
    {
        if (bytes <= 0) return;
        if (_counter is { } c) c.Add(bytes, new KeyValuePair<string, object?>("kind", kind));
        else Interlocked.Add(ref _pending, bytes);
    }
}

/// <summary>Where remote stage calls spend their time, summed per stage (encode, diffuse, decode): the call as the
/// coordinator's device thread sees it (from the call to its reply), the device grain's share by the worker's
/// clock (from the call's start there to its reply), of that the input's fetch from another worker, and the
/// time the task was meant to take (an emulated device's prediction). Call − worker is the messaging
/// (serialization, the network, both silos' schedulers); worker − fetch − predicted is the worker's lateness.
/// Exported as <c>trident_cluster_stage_seconds_total{stage, part}</c> (part = call, worker, fetch, predicted) and <c>trident_cluster_stage_calls_total{stage}</c> once bound.</summary>
public sealed class ClusterCallTimes
{
    private Counter<double>? _seconds;
    private Counter<long>? _calls;

    /// <summary>Creates the counters on <paramref name="meter"/> (the server's); calls before are not counted.</summary>
    public void Bind(Meter meter)
    {
        _seconds = meter.CreateCounter<double>("trident_cluster_stage_seconds_total", null,
            "Seconds of remote stage calls (part = call: as the coordinator waits for them; worker: on the device grain, by the worker's clock; fetch: of that, fetching the input from another worker; predicted: the time the tasks were meant to take)");
        _calls = meter.CreateCounter<long>("trident_cluster_stage_calls_total", null, "Remote stage calls that replied, by stage");
    }

    /// <summary>Counts one call of <paramref name="stage"/> (encode, diffuse or decode) that took
    /// <paramref name="callSeconds"/> on the coordinator and <paramref name="worker"/> on the worker.</summary>
    public void Add(string stage, double callSeconds, WorkerTime? worker)
    {
        if (_seconds is not { } seconds || _calls is not { } calls || worker is null) return;
        var s = new KeyValuePair<string, object?>("stage", stage);
        seconds.Add(callSeconds, s, new("part", "call"));
        seconds.Add(worker.Seconds, s, new("part", "worker"));
        seconds.Add(worker.FetchSeconds, s, new("part", "fetch"));
        seconds.Add(worker.PredictedSeconds, s, new("part", "predicted"));
        calls.Add(1, s);
    }
}

/// <summary>The coordinator's map between its device ids and the workers' device grains; devices are added as
/// workers join. Thread-safe.</summary>
public sealed class DeviceDirectory
{
    private readonly object _gate = new();
    private readonly List<string> _keys = [];
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);

    /// <summary>Called when a stage task finds a device lost (its key and the error), before the task fails.</summary>
    public Action<string, string>? Lost { get; set; }

    /// <summary>Adds devices <paramref name="keys"/> under the next ids, in order; returns the first id.</summary>
    public int Add(IEnumerable<string> keys)
    {
        lock (_gate)
        {
            var first = _keys.Count;
            foreach (var k in keys)
            {
                _ids[k] = _keys.Count;
                _keys.Add(k);
            }
            return first;
        }
    }

    /// <summary>The grain key of device <paramref name="id"/>.</summary>
    public string Key(int id)
    {
        lock (_gate) return _keys[id];
    }

    /// <summary>The grain key of device <paramref name="id"/>, or null for an id never added.</summary>
    public string? KeyOrNull(int id)
    {
        lock (_gate) return id >= 0 && id < _keys.Count ? _keys[id] : null;
    }

    /// <summary>The id of the device with grain key <paramref name="key"/>, or −1.</summary>
    public int Id(string key)
    {
        lock (_gate) return _ids.TryGetValue(key, out var id) ? id : -1;
    }

    /// <summary>Every device as (id, key).</summary>
    public IReadOnlyList<(int Id, string Key)> All()
    {
        lock (_gate) return [.. _keys.Select((k, i) => (i, k))];
    }

    private readonly HashSet<int> _out = [];

    /// <summary>Marks devices <paramref name="ids"/> out of the cluster (their worker left; nothing calls their
    /// grains then) or, with <paramref name="isOut"/> false, in again.</summary>
    public void SetOut(IEnumerable<int> ids, bool isOut)
    {
        lock (_gate)
            foreach (var id in ids)
                if (isOut) _out.Add(id);
                else _out.Remove(id);
    }

    /// <summary>Whether device <paramref name="id"/> is out of the cluster (see <see cref="SetOut"/>).</summary>
    public bool IsOut(int id)
    {
        lock (_gate) return _out.Contains(id);
    }
}

/// <summary>Runs a remote device's stage tasks as calls on its grain.</summary>
/// <param name="grains">The coordinator silo's grain factory.</param>
/// <param name="key">The device grain's key.</param>
/// <param name="transfers">Where network bytes are counted.</param>
/// <param name="directory">The coordinator's devices (to name a lost device and report it); optional.</param>
/// <param name="times">Where the calls' times are summed; optional.</param>
/// <param name="id">The device's id in <paramref name="directory"/> (−1: none): while the directory has it out of the
/// cluster, <see cref="Resident"/> does not call its grain.</param>
public sealed class RemoteStageExecutor(IGrainFactory grains, string key, ClusterTransfers transfers, DeviceDirectory? directory = null, ClusterCallTimes? times = null, int id = -1)
    : IStageExecutor
{
    private readonly IDeviceGrain _grain = grains.GetGrain<IDeviceGrain>(key);
    // whether the worker's executor can suspend, asked once in the background (never blocking a device thread)
    private readonly Task<bool> _canSuspend = AskCanSuspend(grains.GetGrain<IDeviceGrain>(key));

    private static async Task<bool> AskCanSuspend(IDeviceGrain grain)
    {
        try
        {
            return await grain.CanSuspend().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false; // unreachable, or a worker without the call: its diffuses are not suspended
        }
    }

    /// <inheritdoc />
    /// <remarks>The worker's executor's answer, asked when this executor was made; false until it arrives (a first
    /// diffuse may start before: it runs unsuspendable). The checkpoint of a remote diffuse stays on its worker and
    /// resumes on a device of that worker (DeviceGrain.DiffuseSegment).</remarks>
    public bool CanSuspend => _canSuspend.IsCompletedSuccessfully && _canSuspend.Result;

    /// <summary>Waits (at most <paramref name="timeout"/>) for the worker's answer to <see cref="CanSuspend"/>.</summary>
    public bool WaitCanSuspend(TimeSpan timeout) => _canSuspend.Wait(timeout) && _canSuspend.Result;

    /// <summary>The device grain's key.</summary>
    public string Key => key;

    private volatile IReadOnlySet<Stage> _resident = new HashSet<Stage>();
    private long _residentAsked;

    /// <summary>The stages resident on the device as last reported by its grain; asking never blocks (the API
    /// lists every device's models): the answer is refreshed in the background at most every 2 s, and an
    /// unreachable worker leaves the last answer. A device the directory has out of the cluster is not asked (a
    /// call to a grain pinned to a silo that is gone fails, and Orleans logs every such failure with a stack
    /// trace: GET /v1/cluster would log a dozen errors a call).</summary>
    public IReadOnlySet<Stage> Resident
    {
        get
        {
            if (id >= 0 && directory?.IsOut(id) == true) return _resident;
            var now = Environment.TickCount64;
            var last = Interlocked.Read(ref _residentAsked);
            if (now - last > 2000 && Interlocked.CompareExchange(ref _residentAsked, now, last) == last)
                _ = RefreshResidentAsync();
            return _resident;
        }
    }

    private async Task RefreshResidentAsync()
    {
        try
        {
            var tags = await _grain.Resident().WaitAsync(TimeSpan.FromSeconds(5));
            _resident = tags.Select(DeviceKeys.StageOf).ToHashSet();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // the worker is unreachable: keep the last answer
        }
    }

    /// <inheritdoc />
    public void Load(Stage stage)
    {
        _grain.Load(DeviceKeys.Tag(stage)).GetAwaiter().GetResult();
        _resident = new HashSet<Stage>(_resident) { stage };
    }

    /// <inheritdoc />
    public void Unload(Stage stage)
    {
        _grain.Unload(DeviceKeys.Tag(stage)).GetAwaiter().GetResult();
        var left = new HashSet<Stage>(_resident);
        left.Remove(stage);
        _resident = left;
    }

    /// <inheritdoc />
    public StageOutput Encode(GenerationInput input, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var reply = Call(() => _grain.Encode(WireInput.Of(input), cancellationToken), null);
        times?.Add("encode", Stopwatch.GetElapsedTime(start).TotalSeconds, reply.Time);
        return new StageOutput(reply.Output, reply.Output.Bytes);
    }

    /// <inheritdoc />
    public StageOutput Diffuse(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer, CancellationToken cancellationToken)
    {
        var handle = Handle(embeddings);
        var sink = new Sink(observer);
        var reference = grains.CreateObjectReference<IStepSink>(sink);
        try
        {
            // a remote device's thread budget is 1 on the coordinator's side, so the group's budget is its degree
            var start = Stopwatch.GetTimestamp();
            var reply = Call(() => _grain.Diffuse(WireInput.Of(input), handle, intraOpThreads, reference, cancellationToken), handle);
            times?.Add("diffuse", Stopwatch.GetElapsedTime(start).TotalSeconds, reply.Time);
            Release(handle);
            // the reply is the last step's report (the grain does not send it) and those the grain left out before it
            sink.Step(input.Steps, input.Steps);
            transfers.Add("embeddings", reply.FetchedBytes);
            return new StageOutput(reply.Output, reply.Output.Bytes);
        }
        finally
        {
            Unregister(sink, reference);
        }
    }

    // Orleans holds an observer weakly: the sink is kept alive until the call is over, and a little beyond: a one-way
    // progress report sent just before the reply can arrive after it, and an observer deleted by then makes Orleans
    // log an error for each such report ("Unexpected target grain"; hundreds a minute in `bench cluster` at time
    // scale 0.05). The sink ignores steps already reported.
    private void Unregister(Sink sink, IStepSink reference) =>
        _ = Task.Delay(SinkGrace).ContinueWith(_ =>
        {
            GC.KeepAlive(sink);
            try
            {
                grains.DeleteObjectReference<IStepSink>(reference);
            }
            catch (ArgumentException)
            {
                // already unregistered
            }
        }, TaskScheduler.Default);

    // How long a diffuse's progress sink stays registered after its reply.
    private static readonly TimeSpan SinkGrace = TimeSpan.FromSeconds(10);

    // How often a remote segment's suspend signal is looked at while its call runs (a step is the finest grain it
    // can stop at; the request then travels one-way to the device grain).
    private static readonly TimeSpan SuspendPoll = TimeSpan.FromMilliseconds(10);

    /// <inheritdoc />
    /// <remarks>The segment runs on the device's grain (DeviceGrain.DiffuseSegment) under an id of this call; while it
    /// runs, <paramref name="suspend"/> is looked at every 10 ms and, once true, the grain is asked to stop it
    /// (DeviceGrain.Suspend). A suspended segment's checkpoint stays on the worker: the returned checkpoint's state
    /// is its <see cref="CheckpointHandle"/>.</remarks>
    /// <exception cref="ArgumentException">when <paramref name="from"/> is not a remote checkpoint.</exception>
    public DiffuseSegmentResult DiffuseSegment(GenerationInput input, StageOutput embeddings, int intraOpThreads, IStepObserver observer,
        DiffuseCheckpoint? from, Func<bool> suspend, CancellationToken cancellationToken)
    {
        var handle = Handle(embeddings);
        var resumeFrom = from is null ? null
            : from.State as CheckpointHandle ?? throw new ArgumentException($"not a remote checkpoint ({from.State.GetType().Name})", nameof(from));
        var segment = Random.Shared.NextInt64(1, long.MaxValue);
        var sink = new Sink(observer, resumeFrom?.Step ?? 0);
        var reference = grains.CreateObjectReference<IStepSink>(sink);
        using var done = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            try
            {
                while (!done.IsCancellationRequested)
                {
                    if (suspend())
                    {
                        await _grain.Suspend(segment);
                        return;
                    }
                    await Task.Delay(SuspendPoll, done.Token);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // the call ended, or the worker is gone (the call itself reports that)
            }
        });
        try
        {
            var start = Stopwatch.GetTimestamp();
            var reply = Call(() => _grain.DiffuseSegment(WireInput.Of(input), handle, intraOpThreads, reference, resumeFrom, segment, cancellationToken), handle);
            times?.Add("diffuse", Stopwatch.GetElapsedTime(start).TotalSeconds, reply.Time);
            transfers.Add("embeddings", reply.FetchedBytes);
            if (reply.Suspended is { } c)
            {
                sink.Step(c.Step, c.Steps);
                return new DiffuseSegmentResult(null, new DiffuseCheckpoint(c.Step, c.Steps, c.IntraOpThreads, c, c.Bytes));
            }
            var latents = reply.Latents ?? throw new InvalidOperationException($"device {key}: a diffuse segment replied with neither latents nor a checkpoint");
            Release(handle);
            sink.Step(input.Steps, input.Steps);
            return new DiffuseSegmentResult(new StageOutput(latents, latents.Bytes), null);
        }
        finally
        {
            done.Cancel();
            watcher.Wait(TimeSpan.FromSeconds(1));
            Unregister(sink, reference);
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<RgbImage> Decode(GenerationInput input, StageOutput latents, CancellationToken cancellationToken)
    {
        var handle = Handle(latents);
        var start = Stopwatch.GetTimestamp();
        var reply = Call(() => _grain.Decode(WireInput.Of(input), handle, cancellationToken), handle);
        times?.Add("decode", Stopwatch.GetElapsedTime(start).TotalSeconds, reply.Time);
        Release(handle);
        transfers.Add("latents", reply.FetchedBytes);
        transfers.Add("result", reply.Frames.Sum(f => (long)f.Length));
        return [.. reply.Frames.Select(f => new RgbImage(reply.Width, reply.Height, f))];
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }

    /// <inheritdoc />
    /// <remarks>Its producer forgets it (<see cref="IDeviceGrain.Release"/>, one-way: nothing waits), each item of a
    /// batch's output; whichever device's executor is asked, the handle names the producer. An output that is not a
    /// remote one is ignored.</remarks>
    public void Discard(StageOutput output)
    {
        switch (output.Value)
        {
            case StageHandle handle:
                Release(handle);
                break;
            case SequentialBatch batch:
                foreach (var item in batch.Items) Discard(item);
                break;
        }
    }

    /// <inheritdoc />
    /// <remarks>Its worker drops it with the embeddings it kept (<see cref="IDeviceGrain.DropCheckpoint"/>, one-way).
    /// A checkpoint that is not a remote one is ignored.</remarks>
    public void Discard(DiffuseCheckpoint checkpoint)
    {
        if (checkpoint.State is not CheckpointHandle handle || Gone(handle.Device)) return;
        try
        {
            _ = grains.GetGrain<IDeviceGrain>(handle.Device).DropCheckpoint(handle.Id);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // unreachable now: it expires with its lifetime (WorkerDevices.CheckpointLifetime)
        }
    }

    // Whether device `device` is out of the cluster (a call to its grain would fail, and Orleans would log it).
    private bool Gone(string device) => directory is not null && directory.Id(device) is var id and >= 0 && directory.IsOut(id);

    // The stage that took `input` replied: its producer forgets it (one-way, from here rather than from the worker
    // that took it: a worker killed after its stage ended but before its reply arrived leaves the job to resume from
    // `input`, which must still be there — released by that worker, it was gone, and the resumed stage found it
    // missing). Also an output nothing will read (Discard). A producer that is gone has nothing to forget.
    private void Release(StageHandle input)
    {
        if (Gone(input.Device)) return;
        try
        {
            _ = grains.GetGrain<IDeviceGrain>(input.Device).Release(input.Output);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // unreachable now: its output expires with its lifetime (WorkerDevices.OutputLifetime)
        }
    }

    // One stage call. A failure that means a device is gone becomes a DeviceLostException naming it: the input's
    // producer when the grain could not reach it to fetch its input (DeviceGrain.InputLost), else this device when
    // Orleans could not reach it (its silo is gone, the connection dropped, or the placement found no silo for it);
    // only that device's worker is reported lost (DeviceDirectory.Lost). An input whose producer answered without
    // it (DeviceGrain.InputMissing) loses no device: the job is re-queued from its start and nobody is reported.
    private T Call<T>(Func<Task<T>> call, StageHandle? input)
    {
        try
        {
            return call().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OperationCanceledException && Attribute(e, input) is { } loss)
        {
            if (loss.Missing)
                throw new DeviceLostException(-1, $"the input of a stage on device {key} is no longer kept by device {loss.Device}, whose worker answered; no device left the cluster ({e.Message})", e, fromStart: true);
            // a transient failure (a connection dropped and made again, an activation moved while Orleans' directory
            // settles after another worker left) is not a loss: a device whose worker answers now stays in
            if (Answers(loss.Device))
                throw new DeviceLostException(-1, $"device {loss.Device} could not be reached by a stage on device {key} but answers now: nobody leaves the cluster ({e.GetType().Name}: {e.Message})", e);
            var message = $"device {loss.Device} left the cluster ({e.GetType().Name}: {e.Message})";
            directory?.Lost?.Invoke(loss.Device, message);
            throw new DeviceLostException(directory?.Id(loss.Device) ?? -1, message, e);
        }
    }

    // How long a device suspected lost has to answer before it is reported lost.
    private static readonly TimeSpan ConfirmTimeout = TimeSpan.FromSeconds(5);

    // Whether the grain of device `device` answers a call within ConfirmTimeout (its worker is in the cluster and
    // reachable). A killed worker's grain fails at once (the connection is refused, or its silo is declared dead and
    // the placement finds none).
    private bool Answers(string device)
    {
        try
        {
            grains.GetGrain<IDeviceGrain>(device).Silo().WaitAsync(ConfirmTimeout).GetAwaiter().GetResult();
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false;
        }
    }

    /// <summary>The key of the device whose loss <paramref name="error"/> reports, or null when it reports
    /// something else (a missing input loses no device: see <see cref="Attribute"/>).</summary>
    public string? LostDevice(Exception error, StageHandle? input) => Attribute(error, input) is { Missing: false } loss ? loss.Device : null;

    /// <summary>What <paramref name="error"/>, a stage call's failure, says of the devices: the device whose worker could not
    /// be reached (the input's producer, by the key the worker's message names, or this device) with Missing false;
    /// the producer that answered without the input (DeviceGrain.InputMissing) with Missing true; null when it
    /// reports something else (the request's own failure).</summary>
    public (string Device, bool Missing)? Attribute(Exception error, StageHandle? input)
    {
        for (Exception? e = error; e is not null; e = e.InnerException)
        {
            if (Named(e.Message, DeviceGrain.InputMissing, out var missing)) return (missing ?? input?.Device ?? key, true);
            if (Named(e.Message, DeviceGrain.InputLost, out var lost)) return (lost ?? input?.Device ?? key, false);
            if (e is SiloUnavailableException or OrleansMessageRejectionException or Orleans.Runtime.Messaging.ConnectionFailedException) return (key, false);
        }
        return null;
    }

    // Whether `message` carries `marker`; `device`: the key after it (up to ": "), null when none follows.
    private static bool Named(string message, string marker, out string? device)
    {
        device = null;
        var at = message.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0) return false;
        var rest = message[(at + marker.Length)..];
        var end = rest.IndexOf(": ", StringComparison.Ordinal);
        if (end > 0) device = rest[..end];
        return true;
    }

    private static StageHandle Handle(StageOutput output) =>
        output.Value as StageHandle ?? throw new ArgumentException($"not a remote stage output ({output.Value.GetType().Name})", nameof(output));

    // Reports every step in order: the grain sends the latest step now and then (DeviceGrain's Progress), the steps
    // in between are reported here when it arrives, and those up to the last when the diffuse replies.
    private sealed class Sink(IStepObserver observer, int reported = 0) : IStepSink
    {
        // steps reported so far (a resumed segment's observer heard of those before its suspension)
        private int _reported = reported;

        public Task Step(int step, int total)
        {
            lock (this)
            {
                for (var s = _reported + 1; s <= step; s++) observer.StepCompleted(s, total);
                _reported = Math.Max(_reported, step);
            }
            return Task.CompletedTask;
        }
    }
}

/// <summary>Creates the remote executor of each device of a cluster layout, by the grain key the layout's
/// device ids map to.</summary>
/// <param name="grains">The coordinator silo's grain factory.</param>
/// <param name="keys">Grain key of each device id (devices that join are added to it).</param>
/// <param name="transfers">Where network bytes are counted.</param>
/// <param name="times">Where the calls' times are summed.</param>
public sealed class RemoteStageExecutorFactory(IGrainFactory grains, DeviceDirectory keys, ClusterTransfers transfers, ClusterCallTimes? times = null) : IStageExecutorFactory
{
    /// <inheritdoc />
    public IStageExecutor Create(DeviceSpec device) => new RemoteStageExecutor(grains, keys.Key(device.Id), transfers, keys, times, device.Id);
}
