// The server's metrics as System.Diagnostics.Metrics instruments on the "Trident" meter. Names are already
// Prometheus names (prefixed trident_, base units in the name), so OpenTelemetry's Prometheus exporter (the
// API's /metrics) keeps them as they are. Histograms carry their bucket boundaries as instrument advice.
// The meter's scope tells apart the meters of several servers in one process (tests): an exporter keeps the
// instruments of its own scope only.

using System.Diagnostics.Metrics;

namespace Trident.Runtime.Monitoring;

/// <summary>The serving metrics.</summary>
public sealed class ServingMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Trident";

    private static readonly double[] LatencyBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300];
    private static readonly double[] SolveBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    private readonly Meter _meter;

    /// <summary>Creates the instruments on a meter of scope <paramref name="scope"/> (any object identifying
    /// the host that exports them; null for none).</summary>
    public ServingMetrics(object? scope = null)
    {
        _meter = new Meter(new MeterOptions(MeterName) { Scope = scope });
        Requests = _meter.CreateCounter<long>("trident_requests_total", null, "Requests by outcome (accepted, rejected, succeeded, failed, cancelled; recovered: queued again from the job store after a restart, which accepted does not count).");
        Deadlines = _meter.CreateCounter<long>("trident_deadlines_total", null, "Succeeded requests by whether they met their deadline.");
        StageLatency = _meter.CreateHistogram<double>("trident_stage_latency_seconds", "s", "Duration of one stage of one request.", null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        RequestLatency = _meter.CreateHistogram<double>("trident_request_latency_seconds", "s", "End-to-end latency of succeeded requests.", null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        QueueWait = _meter.CreateHistogram<double>("trident_queue_wait_seconds", "s", "Time from arrival to dispatch.", null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        DispatchSolve = _meter.CreateHistogram<double>("trident_dispatch_solve_seconds", "s", "Wall-clock time of one dispatch round's planning, by plan source.", null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = SolveBuckets });
        DispatchRounds = _meter.CreateCounter<long>("trident_dispatch_rounds_total", null, "Dispatch rounds by plan source (mip, greedy, failed).");
        Replacements = _meter.CreateCounter<long>("trident_replacements_total", null, "Placements changed by Adjust-on-Dispatch.");
        Requeued = _meter.CreateCounter<long>("trident_requeued_total", null,
            "Requests queued again because their work was lost with a device that left the cluster, by where they resume (start, after_encode, after_diffuse).");
        Suspensions = _meter.CreateCounter<long>("trident_suspensions_total", null,
            "Diffuse tasks suspended at a denoising-step boundary for a more urgent request (step-boundary preemption).");
        Resumptions = _meter.CreateCounter<long>("trident_resumptions_total", null, "Suspended diffuse tasks that resumed (their remaining steps began).");
        Backfills = _meter.CreateCounter<long>("trident_backfills_total", null,
            "Requests run through a worker's backfill lane on a device held idle at a gang that has not started (live backfilling).");
        DecodePauses = _meter.CreateCounter<long>("trident_decode_pauses_total", null,
            "Video decodes paused between two temporal tiles for a more urgent decode (decode preemption).");
        BatchSize = _meter.CreateHistogram<int>("trident_batch_size", null, "Requests per batch task of more than one request (same-shape batching).", null,
            new InstrumentAdvice<int> { HistogramBucketBoundaries = [2, 3, 4, 6, 8, 12, 16, 32] });
        DeviceBusy = _meter.CreateCounter<double>("trident_device_busy_seconds_total", null,
            "Seconds each device spent on tasks (encode, diffuse, decode, and reserves for another device's diffuse), from the worker taking a task to its end; "
            + "its rate over an interval is the device's utilisation over it.");
    }

    /// <summary>The meter every instrument belongs to (one per server, so two servers in one process never mix).</summary>
    public Meter Meter => _meter;

    /// <summary>trident_requests_total{outcome}.</summary>
    public Counter<long> Requests { get; }

    /// <summary>trident_deadlines_total{met}.</summary>
    public Counter<long> Deadlines { get; }

    /// <summary>trident_stage_latency_seconds{stage}.</summary>
    public Histogram<double> StageLatency { get; }

    /// <summary>trident_request_latency_seconds.</summary>
    public Histogram<double> RequestLatency { get; }

    /// <summary>trident_queue_wait_seconds.</summary>
    public Histogram<double> QueueWait { get; }

    /// <summary>trident_dispatch_solve_seconds{source}.</summary>
    public Histogram<double> DispatchSolve { get; }

    /// <summary>trident_dispatch_rounds_total{source}.</summary>
    public Counter<long> DispatchRounds { get; }

    /// <summary>trident_replacements_total.</summary>
    public Counter<long> Replacements { get; }

    /// <summary>trident_requeued_total{resume}.</summary>
    public Counter<long> Requeued { get; }
    /// <summary>Requests per batch task, for batches of more than one request.</summary>
    public Histogram<int> BatchSize { get; }

    /// <summary>trident_suspensions_total.</summary>
    public Counter<long> Suspensions { get; }

    /// <summary>trident_resumptions_total.</summary>
    public Counter<long> Resumptions { get; }

    /// <summary>trident_backfills_total.</summary>
    public Counter<long> Backfills { get; }

    /// <summary>trident_decode_pauses_total.</summary>
    public Counter<long> DecodePauses { get; }

    /// <summary>trident_device_busy_seconds_total{device}: cumulative task seconds per device (what
    /// <c>trident loadgen</c> reads before and after a run for the devices' utilisation over it).</summary>
    public Counter<double> DeviceBusy { get; }

    /// <summary>Records a zero for every counter series known in advance, so a scraper sees them at 0 rather
    /// than absent (call once a listener is attached).</summary>
    public void Initialise()
    {
        foreach (var outcome in new[] { "accepted", "recovered", "rejected", "succeeded", "failed", "cancelled" })
            Requests.Add(0, new KeyValuePair<string, object?>("outcome", outcome));
        foreach (var met in new[] { "true", "false" }) Deadlines.Add(0, new KeyValuePair<string, object?>("met", met));
        foreach (var source in new[] { "mip", "greedy", "failed" }) DispatchRounds.Add(0, new KeyValuePair<string, object?>("source", source));
        Replacements.Add(0);
        Suspensions.Add(0);
        Resumptions.Add(0);
        Backfills.Add(0);
        DecodePauses.Add(0);
        foreach (var resume in new[] { "start", "after_encode", "after_diffuse" }) Requeued.Add(0, new KeyValuePair<string, object?>("resume", resume));
    }

    /// <summary>Registers an observable gauge read at each scrape.</summary>
    public void Gauge(string name, string description, Func<IEnumerable<Measurement<double>>> observe) =>
        _meter.CreateObservableGauge(name, observe, null, description);

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();
}
