// A device that is gone: its machine left the cluster (process killed, machine or network lost). A stage task
// that fails with this exception did not fail because of its request: the serving loop re-queues the request
// (from its last completed stage whose output is still reachable) instead of failing it.

namespace Trident.Runtime.Devices;

/// <summary>A stage task could not run because its device left the cluster.</summary>
/// <param name="device">The device's id on the coordinator.</param>
/// <param name="message">What happened (the transport's error).</param>
/// <param name="inner">The transport's exception.</param>
public sealed class DeviceLostException(int device, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The device's id on the coordinator.</summary>
    public int Device { get; } = device;

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
