// The placement that pins a device grain (and a node grain) to its worker's silo. A grain's key starts with
// the endpoint (host:port) of the silo that owns the device; the director places the activation on the
// active silo at that endpoint, whatever its generation (a restarted worker on the same address takes its
// devices back), and refuses to place it anywhere else: a device whose worker is gone is gone, and calls to
// it fail with a clear error instead of Orleans re-activating the grain on another silo (its default for
// virtual actors). Registered on every silo of the cluster (ClusterSilo.AddDevicePlacement).

using Orleans;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Trident.Runtime.Clustering;

/// <summary>Pins a grain to the silo named by its key's endpoint part.</summary>
[GenerateSerializer, Immutable, Alias("Trident.DevicePlacementStrategy")]
public sealed class DevicePlacementStrategy : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static DevicePlacementStrategy Instance { get; } = new();
}

/// <summary>Marks a grain class as pinned by <see cref="DevicePlacementStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class DevicePlacementAttribute() : PlacementAttribute(DevicePlacementStrategy.Instance);

/// <summary>Chooses the silo whose endpoint the grain's key names.</summary>
public sealed class DevicePlacementDirector : IPlacementDirector
{
    /// <inheritdoc />
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString() ?? "";
        var endpoint = DeviceKeys.Endpoint(key);
        var silos = context.GetCompatibleSilos(target);
        var silo = silos.Where(s => s.Endpoint.ToString() == endpoint).MaxBy(s => s.Generation);
        return silo is not null
            ? Task.FromResult(silo)
            : throw new SiloUnavailableException(
                $"device grain '{key}' is pinned to the worker at {endpoint}, which is not in the cluster (active: {string.Join(", ", silos.Select(s => s.Endpoint))})");
    }
}
