// A device that is gone: its machine left the cluster (process killed, machine or network lost). A stage task
// that fails with this exception did not fail because of its request: the serving loop re-queues the request
// (from its last completed stage whose output is still reachable) instead of failing it.

namespace Trident.Runtime.Devices;

/// <summary>A stage task could not run because its device left the cluster.</summary>
/// <param name="device">The device's id on the coordinator.</param>
/// <param name="message">What happened (the transport's error).</param>
/// <param name="inner">The transport's exception.</param>
/// <param name="fromStart">The task's input is gone although no device is (<paramref name="device"/> −1): its
/// producer answered without it. The request is queued again from its start, and nobody leaves the cluster.</param>
public sealed class DeviceLostException(int device, string message, Exception? inner = null, bool fromStart = false) : Exception(message, inner)
{
    /// <summary>The device's id on the coordinator; −1 when no device is lost (<see cref="FromStart"/>) or it is not known.</summary>
    public int Device { get; } = device;

    /// <summary>Whether the request starts again from its first stage: the output it would resume from is gone.</summary>
    public bool FromStart { get; } = fromStart;

    /// <summary>The <see cref="DeviceLostException"/> at the root of <paramref name="error"/> (a later stage fails
    /// with its input's error), or null.</summary>
    public static DeviceLostException? Find(Exception? error) => error switch
    {
        null => null,
        DeviceLostException lost => lost,
        AggregateException a => a.InnerExceptions.Select(Find).FirstOrDefault(e => e is not null),
        _ => Find(error.InnerException),
    };
}
