namespace Trident.Runtime.Serving;

/// <summary>The serving clock: seconds since the server started, the <c>Now</c> of every snapshot, and the
/// clock of arrivals, deadlines and stage timings.</summary>
public sealed class ServerClock
{
    private readonly TimeProvider _time;
    private readonly long _start;

    /// <summary>Starts the clock at zero.</summary>
    public ServerClock(TimeProvider time)
    {
        _time = time;
        _start = time.GetTimestamp();
        StartedAt = time.GetUtcNow();
    }

    /// <summary>Seconds since start.</summary>
    public double Now => _time.GetElapsedTime(_start).TotalSeconds;

    /// <summary>Wall-clock time of start.</summary>
    public DateTimeOffset StartedAt { get; }

    /// <summary>The wall clock.</summary>
    public DateTimeOffset UtcNow => _time.GetUtcNow();
}
