// The serving runtime behind the HTTP API: the job store, the serving loop and one worker per device. It
// accepts jobs (or refuses them when the queue is full), finds and cancels them, and exposes the state the
// API reports. Everything it starts it stops on disposal: the loop first, then the workers (queued tasks
// are reported failed, running ones finish), then the executors' sessions.

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
    WorkloadStats InitialMix);

/// <summary>The result of a submission.</summary>
public abstract record SubmitOutcome
{
    /// <summary>The job was accepted and queued.</summary>
    public sealed record Accepted(Job Job) : SubmitOutcome;

    /// <summary>The queue (or the job store) is full: try again after <paramref name="RetryAfter"/>.</summary>
    public sealed record Refused(TimeSpan RetryAfter, string Reason) : SubmitOutcome;
}

/// <summary>The serving runtime.</summary>
public sealed class TridentServer : IAsyncDisposable
{
    private readonly ServingLoop _loop;
    private readonly Worker[] _workers;
    private readonly ILogger _log;
    private long _nextId;
    private long _succeededWithDeadline, _metDeadline;

    private TridentServer(ServerSetup setup, ILoggerFactory logs, TimeProvider time)
    {
        _log = logs.CreateLogger("Trident.Serving");
        Setup = setup;
        Clock = new ServerClock(time);
        Cluster = setup.Layout.ToCluster();
        Cost = CostModelModule.create(setup.CostSettings, setup.Profile);
        Metrics = new ServingMetrics();
        Store = new JobStore(setup.Settings.JobCapacity, setup.Settings.JobRetention, time);
        InitialPlacement = Planner.place(new PlacementInput(Cluster, Cost, setup.InitialMix,
            FSharpOption<Microsoft.FSharp.Collections.FSharpMap<DeviceId, PlacementType>>.None, setup.Settings.PlacementTimeLimitSeconds));
        _loop = new ServingLoop(Clock, Cluster, Cost, InitialPlacement, setup.InitialMix, setup.Settings, Metrics, Store, logs.CreateLogger("Trident.Serving.Loop"));
        var created = new List<Worker>();
        try
        {
            foreach (var d in setup.Layout.Devices)
                created.Add(new Worker(d, InitialPlacement.Types[d.DeviceId], setup.Executors.Create(d), _loop, setup.Settings.WorkerQueueCapacity));
        }
        catch
        {
            foreach (var w in created) w.Dispose();
            throw;
        }
        _workers = [.. created];
        _loop.Attach(_workers);
        RegisterGauges();
    }

    /// <summary>Builds the cost model and the initial placement, starts the workers and the loop.</summary>
    public static TridentServer Start(ServerSetup setup, ILoggerFactory logs, TimeProvider time)
    {
        var server = new TridentServer(setup, logs, time);
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
    public Cluster Cluster { get; }

    /// <summary>The cost model over this machine's profile.</summary>
    public CostModel Cost { get; }

    /// <summary>The placement the server started with.</summary>
    public PlacementPlan InitialPlacement { get; }

    /// <summary>The metrics.</summary>
    public ServingMetrics Metrics { get; }

    /// <summary>Every job held.</summary>
    public JobStore Store { get; }

    /// <summary>The workers, by device id.</summary>
    public IReadOnlyList<Worker> Workers => _workers;

    /// <summary>The loop's state after its last round.</summary>
    public LoopState State => _loop.State;

    /// <summary>Requests waiting for dispatch.</summary>
    public int Waiting => _loop.Waiting;

    /// <summary>Why the scheduler cannot serve this shape on this cluster (no degree fits), or null.</summary>
    public string? Unservable(Shape shape) =>
        FSharpOption<int>.get_IsNone(CostModelModule.kStar(Cost, shape))
            ? $"{shape} does not fit any device of this cluster at any allowed degree (profile {Setup.Profile.Model.Value})"
            : null;

    /// <summary>Queues a job, or refuses it when the queue or the store is full.</summary>
    /// <param name="input">What to generate.</param>
    /// <param name="deadlineSeconds">Seconds from now the client allows, or null for the cost model's deadline.</param>
    /// <param name="priority">Optional client priority (higher is more important).</param>
    public SubmitOutcome Submit(GenerationInput input, double? deadlineSeconds, int? priority)
    {
        if (_loop.Waiting >= Setup.Settings.QueueCapacity)
            return Refuse($"the queue is full ({Setup.Settings.QueueCapacity} requests waiting)", input);
        var now = Clock.Now;
        var shape = input.Shape;
        var deadline = deadlineSeconds is { } d ? now + d : CostModelModule.deadline(Cost, now, shape, input.Steps);
        var request = new Request(RequestId.NewRequestId(Interlocked.Increment(ref _nextId)), Setup.Profile.Model, shape, input.Steps, now, deadline,
            priority is { } p ? FSharpOption<int>.Some(p) : FSharpOption<int>.None);
        var job = new Job(request, input, Clock.UtcNow, deadlineSeconds is not null);
        job.Terminal += OnTerminal;
        if (!Store.TryAdd(job))
            return Refuse($"the job store is full ({Store.Capacity} active jobs)", input);
        _loop.Submit(job);
        Metrics.Requests.Add(1, new KeyValuePair<string, object?>("outcome", "accepted"));
        return new SubmitOutcome.Accepted(job);
    }

    private SubmitOutcome Refuse(string reason, GenerationInput input)
    {
        Metrics.Requests.Add(1, new KeyValuePair<string, object?>("outcome", "rejected"));
        // Roughly when a slot frees: the waiting work spread over the devices, at least a second.
        var perRequest = CostModelModule.tRef(Cost, input.Shape, input.Steps);
        var seconds = Math.Clamp(Math.Ceiling(perRequest * Math.Max(1, _loop.Waiting) / _workers.Length), 1, 300);
        return new SubmitOutcome.Refused(TimeSpan.FromSeconds(seconds), reason);
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

    /// <summary>The job with this id, if the store holds it.</summary>
    public Job? Find(RequestId id) => Store.Find(id);

    /// <summary>Cancels a job: at once when none of its stages started, else at its next step boundary.
    /// False when it is already over.</summary>
    public bool Cancel(Job job)
    {
        if (!job.RequestCancel(Clock.Now)) return false;
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
            _workers.Select(w => new Measurement<double>(w.Current is null ? 0 : 1, new KeyValuePair<string, object?>("device", w.Device.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)))));
    }

    /// <summary>Stops the loop and the workers and releases the sessions. Every job not yet over is cancelled
    /// first, so a running diffuse stops at its next step and shutdown does not wait for whole requests.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var job in Store.Active()) job.RequestCancel(Clock.Now);
        await _loop.DisposeAsync();
        foreach (var w in _workers) w.BeginStop();
        foreach (var w in _workers) w.Dispose();
        Metrics.Dispose();
    }
}
