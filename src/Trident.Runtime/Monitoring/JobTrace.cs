// One trace per generation, on the "Trident" ActivitySource (System.Diagnostics; exported by whatever
// OpenTelemetry TracerProvider listens to the source — the API's exports by OTLP when configured).
//
// The spans of one job, all children of its root span `trident.generation`:
//   trident.queue      arrival → the dispatch round that routed it;
//   trident.dispatch   one per recorded dispatch round that planned with the job waiting (round number, plan
//                      source, whether that round routed it), timed as the round's planning;
//   trident.encode / trident.diffuse / trident.decode
//                      one per stage that ran, on its device (the diffuse span carries the group's degree);
//   trident.transfer   the hand-off of a stage's output (embeddings, latents) from the device that made it to
//                      the device whose stage consumes it: from the producer's end to the consumer's start,
//                      with the output's size. In one process the tensor is passed by reference (no copy), so
//                      the span measures the hand-off wait, not a copy.
// The root span starts when the job is created (its parent is the ambient span, e.g. the HTTP request that
// submitted it) and ends with the job's final state (status Error for a failed job). Without a listener on the
// source no span is created and the job has no trace id (TraceId null).

using System.Diagnostics;
using Trident.Runtime.Devices;

namespace Trident.Runtime.Monitoring;

/// <summary>The trace of one generation job. Thread-safe: workers, the serving loop and request threads
/// report to it.</summary>
public sealed class JobTrace
{
    /// <summary>The ActivitySource name (what an OpenTelemetry TracerProvider adds with <c>AddSource</c>).</summary>
    public const string SourceName = "Trident";

    /// <summary>The source of every Trident span.</summary>
    public static readonly ActivitySource Source = new(SourceName, typeof(JobTrace).Assembly.GetName().Version?.ToString());

    private readonly object _gate = new();
    private readonly Activity? _root;
    private Activity? _queue;
    private readonly Dictionary<TaskKind, Activity> _stages = new();
    // the last stage output made: who made it, when, how large (the next stage's transfer starts there)
    private (int Device, DateTime End, long Bytes, TaskKind Kind)? _output;

    /// <summary>Starts the trace of job <paramref name="id"/>: the root span (child of the ambient span, if
    /// any) and its queue span.</summary>
    /// <param name="id">The job's id.</param>
    /// <param name="tags">Attributes of the root span (shape, steps, …).</param>
    public JobTrace(long id, IEnumerable<KeyValuePair<string, object?>> tags)
    {
        var ambient = Activity.Current;
        _root = Source.StartActivity("trident.generation", ActivityKind.Internal, ambient?.Context ?? default, tags);
        if (_root is null) return;
        _root.SetTag("trident.job.id", id);
        _queue = Start("trident.queue", DateTime.UtcNow);
        // StartActivity made the root the ambient span of this thread; the caller's stays ambient
        Activity.Current = ambient;
    }

    /// <summary>A trace that records nothing (restored jobs that are already over).</summary>
    public static JobTrace None { get; } = new();

    private JobTrace()
    {
    }

    /// <summary>The W3C trace id (32 hex digits), or null when no listener traced the job.</summary>
    public string? TraceId => _root?.TraceId.ToHexString();

    /// <summary>The root span's context (parent of every span of the job), or default.</summary>
    public ActivityContext Context => _root?.Context ?? default;

    private Activity? Start(string name, DateTime start, IEnumerable<KeyValuePair<string, object?>>? tags = null)
    {
        if (_root is null) return null;
        var ambient = Activity.Current;
        var span = Source.StartActivity(name, ActivityKind.Internal, _root.Context, tags, startTime: start);
        Activity.Current = ambient;
        return span;
    }

    // Activity.Stop makes the span's parent the ambient span of this thread: keep the caller's instead.
    private static void End(Activity? span)
    {
        if (span is null) return;
        var ambient = Activity.Current;
        span.Dispose();
        Activity.Current = ambient;
    }

    /// <summary>Makes the job's root span the ambient one until disposed, so log lines written meanwhile carry
    /// the job's trace id.</summary>
    public IDisposable Enter() => new Ambient(_root);

    private sealed class Ambient : IDisposable
    {
        private readonly Activity? _previous = Activity.Current;
        private readonly bool _set;

        public Ambient(Activity? root)
        {
            if (root is null) return;
            Activity.Current = root;
            _set = true;
        }

        public void Dispose()
        {
            if (_set) Activity.Current = _previous;
        }
    }

    /// <summary>A dispatch round planned with the job waiting.</summary>
    /// <param name="round">The round's number.</param>
    /// <param name="start">Wall-clock start of its planning.</param>
    /// <param name="planning">How long it planned.</param>
    /// <param name="source"><c>mip</c> or <c>greedy</c>.</param>
    /// <param name="routed">Whether it routed this job.</param>
    public void Round(long round, DateTime start, TimeSpan planning, string source, bool routed)
    {
        if (_root is null) return;
        var span = Start("trident.dispatch", start,
            [new("trident.round", round), new("trident.plan.source", source), new("trident.routed", routed)]);
        span?.SetEndTime(start + planning);
        End(span);
    }

    /// <summary>The job was routed: its queue span ends.</summary>
    public void Dispatched(long round, int degree, string vr)
    {
        lock (_gate)
        {
            _root?.SetTag("trident.round", round);
            _root?.SetTag("trident.degree", degree);
            _root?.SetTag("trident.vr", vr);
            End(_queue);
            _queue = null;
        }
    }

    /// <summary>A stage started on <paramref name="device"/> (its inputs ready); the hand-off of its input, if
    /// it has one, ends here.</summary>
    public void StageStarted(TaskKind kind, int device)
    {
        if (_root is null || kind is not (TaskKind.Encode or TaskKind.Diffuse or TaskKind.Decode)) return;
        var now = DateTime.UtcNow;
        lock (_gate)
        {
            if (_output is { } o && kind != TaskKind.Encode)
            {
                var transfer = Start("trident.transfer", o.End,
                [
                    new("trident.transfer.what", o.Kind == TaskKind.Encode ? "embeddings" : "latents"),
                    new("trident.transfer.from_device", o.Device), new("trident.transfer.to_device", device),
                    new("trident.transfer.bytes", o.Bytes), new("trident.transfer.copied", false),
                ]);
                transfer?.SetEndTime(now);
                End(transfer);
                _output = null;
            }
            if (Start($"trident.{Name(kind)}", now, [new("trident.device", device)]) is { } span) _stages[kind] = span;
        }
    }

    /// <summary>A stage ended; <paramref name="outputBytes"/> is the size of what it hands on (null for the
    /// last stage, or when it failed).</summary>
    public void StageFinished(TaskKind kind, int device, Exception? error, long? outputBytes)
    {
        if (_root is null) return;
        lock (_gate)
        {
            if (!_stages.Remove(kind, out var span)) return;
            // a suspension (preemption) stops the diffuse on request: not an error
            if (error is not null and not DiffuseSuspendedException) span.SetStatus(ActivityStatusCode.Error, error.Message);
            End(span);
            if (error is null && outputBytes is { } bytes) _output = (device, span.StartTimeUtc + span.Duration, bytes, kind);
        }
    }

    /// <summary>The job's work was lost with a device and it was queued again (resuming after
    /// <paramref name="resumeAfter"/>, or from the start when null): an event on the root span.</summary>
    public void Requeued(string reason, string? resumeAfter)
    {
        if (_root is null) return;
        lock (_gate)
        {
            foreach (var span in _stages.Values)
            {
                span.SetStatus(ActivityStatusCode.Error, reason);
                End(span);
            }
            _stages.Clear();
            _output = null;
            _root.AddEvent(new ActivityEvent("trident.requeued", tags: new ActivityTagsCollection
            {
                ["trident.requeue.reason"] = reason,
                ["trident.requeue.resume_after"] = resumeAfter ?? "start",
            }));
        }
    }

    /// <summary>The job's diffuse was suspended at a step boundary after <paramref name="step"/> steps (preemption,
    /// issue 12): an event on the root span; the resumed segment is a diffuse span of its own.</summary>
    public void Suspended(int step, int suspensions)
    {
        if (_root is null) return;
        lock (_gate)
            _root.AddEvent(new ActivityEvent("trident.suspended", tags: new ActivityTagsCollection
            {
                ["trident.suspend.step"] = step,
                ["trident.suspend.count"] = suspensions,
            }));
    }

    /// <summary>The job reached its final state: every open span ends, the root with the outcome.</summary>
    public void Ended(string status, string? error)
    {
        if (_root is null) return;
        lock (_gate)
        {
            foreach (var span in _stages.Values) End(span);
            _stages.Clear();
            End(_queue);
            _queue = null;
            _root.SetTag("trident.status", status);
            if (error is not null) _root.SetStatus(ActivityStatusCode.Error, error);
            End(_root);
        }
    }

    /// <summary>The size of what a finished task hands on (embeddings of an encode, latents of a diffuse), or
    /// null (a decode, a failed task, another kind).</summary>
    public static long? OutputBytes(StageTask task) => task switch
    {
        EncodeTask { Result.Task.IsCompletedSuccessfully: true } e => e.Result.Task.Result.Bytes,
        DiffuseTask { Result.Task.IsCompletedSuccessfully: true } d => d.Result.Task.Result.Bytes,
        _ => null,
    };

    private static string Name(TaskKind kind) => kind switch
    {
        TaskKind.Encode => "encode",
        TaskKind.Diffuse => "diffuse",
        _ => "decode",
    };
}
