using Trident.Runtime.Monitoring;
using Trident.Scheduling;
using Trident.Scheduling.Dispatching;

namespace Trident.Runtime.Serving;

/// <summary>Settings of the serving loop, the queue and the job store.</summary>
public sealed record ServingSettings
{
    /// <summary>A round runs at least this often while the server is up (also on every arrival and completion).</summary>
    public double RoundPeriodSeconds { get; init; } = 0.5;

    /// <summary>Most requests waiting for dispatch; beyond it submissions are refused (429).</summary>
    public int QueueCapacity { get; init; } = 64;

    /// <summary>Bound of each worker's task channel.</summary>
    public int WorkerQueueCapacity { get; init; } = 256;

    /// <summary>Most jobs the store holds, active and finished.</summary>
    public int JobCapacity { get; init; } = 1024;

    /// <summary>How long a finished job and its result are kept.</summary>
    public TimeSpan JobRetention { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The dispatch planner's settings (time limit included).</summary>
    public DispatchSettings Dispatch { get; init; } = DispatchSettingsModule.defaults;

    /// <summary>Wall-clock limit of a placement MIP solve.</summary>
    public double PlacementTimeLimitSeconds { get; init; } = 2.0;

    /// <summary>Monitor window and re-placement trigger.</summary>
    public MonitorSettings Monitor { get; init; } = MonitorSettings.Default;

    /// <summary>Dispatch rounds (and re-placements) kept for <c>GET /v1/plan</c>: the last this many rounds that dispatched
    /// a request, ran the solver or failed (a round with nothing to decide is not kept).</summary>
    public int RoundHistory { get; init; } = 32;

    /// <summary>Directory of the durable job store (SQLite journal and result files); null keeps jobs in
    /// memory only (lost when the process ends).</summary>
    public string? StorageDirectory { get; init; }

    /// <summary>Most requests in one batch (issue 12): requests of the same pipeline, shape, steps, guidance and
    /// sampler run as one batch, up to the profile's best batch size for the shape and degree and at most this
    /// many. 1 turns batching off; a profile without batch points (format version 1) never batches.</summary>
    public int MaxBatch { get; init; } = 8;

    /// <summary>Seconds: the live loop queues a waiting request behind a device's running task when the device is
    /// predicted free within this many seconds (DispatchSettings.QueueHorizon; the larger of the two is used), so a
    /// device that frees has its next task on its own queue instead of idling while the next round is planned.
    /// The simulator's rounds run the instant a device frees and need no horizon (its default is 0); the live
    /// loop's reaction time (event, round, enqueue, the worker's wake-up) left the devices idle 5–8 % of a saturated
    /// run without one (`loadgen` "gaps", 2026-11-30, loaded machine). 0 turns it off.</summary>
    public double QueueHorizonSeconds { get; init; } = 0.05;

    /// <summary>Live backfilling of held devices (docs/policies.md, "Backfilling"): the snapshot names the devices
    /// seated at a gang that has not started (DeviceLedger.IdleUntil), and a one-device dispatch that ends there before
    /// the gang's predicted start runs through the worker's backfill lane. False: no device is named, so such devices
    /// idle until their gang starts (the free devices of the node a round reserves are backfilled either way).</summary>
    public bool BackfillHeldDevices { get; init; } = true;

    /// <summary>Step-boundary preemption of running diffuse tasks (issue 12): Preemption.decide's settings (at most
    /// MaxSuspensions per request, …); null turns it off. Only jobs alone (never a batch) on executors that can
    /// suspend (ONNX Runtime) are suspended.</summary>
    public PreemptionSettings? Preemption { get; init; }

    /// <summary>Frames per second of the APNG written for a video result.</summary>
    public int VideoFramesPerSecond { get; init; } = 8;

    /// <summary>How long queued requests wait, seconds, when no device is left in the cluster (every worker
    /// left) before they fail with that reason; a worker that joins meanwhile takes them.</summary>
    public double NoDeviceSeconds { get; init; } = 60;
}
