// The planners' view of a cluster whose devices come and go: the devices that are in the cluster now (their
// worker is alive), renumbered 0..m−1 node by node as the Scheduling core requires (Cluster's invariant:
// Devices.[i].Id = i, every node has a device). The serving loop keeps every device it ever had under its first
// id (its worker, ledger entry, monitor slot and row in GET /v1/cluster stay), plans on this view, and maps the
// plan's device ids back. With every device in, the view is the cluster itself and every map is the identity.

using Microsoft.FSharp.Collections;
using Trident.Scheduling;

namespace Trident.Runtime.Serving;

/// <summary>The devices in the cluster now, renumbered for the planners.</summary>
public sealed class LiveView
{
    private readonly int[] _toPhysical;
    private readonly int[] _toView;

    private LiveView(Cluster? cluster, int[] toPhysical, int[] toView)
    {
        Cluster = cluster;
        _toPhysical = toPhysical;
        _toView = toView;
    }

    /// <summary>The view's cluster; null when no device is in.</summary>
    public Cluster? Cluster { get; }

    /// <summary>Whether every device is in (the view is the cluster itself).</summary>
    public bool Whole => _toPhysical.Length == _toView.Length;

    /// <summary>Devices in the view.</summary>
    public int Count => _toPhysical.Length;

    /// <summary>The view of <paramref name="cluster"/> with the devices for which <paramref name="up"/> is true.</summary>
    public static LiveView Of(Cluster cluster, IReadOnlyList<bool> up)
    {
        var live = cluster.Devices.Where(d => up[d.Id.Item]).ToArray();
        var toView = Enumerable.Repeat(-1, cluster.Devices.Length).ToArray();
        if (live.Length == 0) return new LiveView(null, [], toView);
        var nodes = live.Select(d => d.Node.Item).Distinct().Order().ToList();
        var devices = new Device[live.Length];
        for (var v = 0; v < live.Length; v++)
        {
            toView[live[v].Id.Item] = v;
            devices[v] = new Device(DeviceId.NewDeviceId(v), NodeId.NewNodeId(nodes.IndexOf(live[v].Node.Item)), live[v].Memory);
        }
        return new LiveView(new Cluster(devices, nodes.Count, cluster.Bandwidths), [.. live.Select(d => d.Id.Item)], toView);
    }

    /// <summary>The physical id of view device <paramref name="v"/>.</summary>
    public int Physical(int v) => _toPhysical[v];

    /// <summary>The view id of physical device <paramref name="d"/>, or −1 when it is out.</summary>
    public int ViewOf(int d) => d < _toView.Length ? _toView[d] : -1;

    /// <summary>The view's devices' values of a per-device array.</summary>
    public double[] Select(IReadOnlyList<double> physical) => [.. _toPhysical.Select(d => physical[d])];

    /// <summary>The view's part of a device → type map (devices missing from it stay missing).</summary>
    public FSharpMap<DeviceId, PlacementType> Types(FSharpMap<DeviceId, PlacementType> physical) =>
        MapModule.OfSeq(Enumerable.Range(0, Count)
            .Where(v => physical.ContainsKey(DeviceId.NewDeviceId(_toPhysical[v])))
            .Select(v => Tuple.Create(DeviceId.NewDeviceId(v), physical[DeviceId.NewDeviceId(_toPhysical[v])])));

    /// <summary><paramref name="plan"/> (over the view) with its types over the physical ids, keeping the types
    /// of <paramref name="physical"/> for the devices that are out.</summary>
    public PlacementPlan ToPhysical(PlacementPlan plan, FSharpMap<DeviceId, PlacementType> physical)
    {
        var types = physical;
        foreach (var kv in plan.Types) types = types.Add(DeviceId.NewDeviceId(_toPhysical[kv.Key.Item]), kv.Value);
        return new PlacementPlan(types, plan.Capacity, plan.Alpha, plan.Moves, plan.Source);
    }

    /// <summary><paramref name="plan"/> (over the physical ids) over the view.</summary>
    public PlacementPlan ToView(PlacementPlan plan) =>
        Whole ? plan : new PlacementPlan(Types(plan.Types), plan.Capacity, plan.Alpha, plan.Moves, plan.Source);

    /// <summary>A dispatch over the view, over the physical ids.</summary>
    public Dispatch ToPhysical(Dispatch d) =>
        Whole ? d : new Dispatch(d.Request, d.Degree, d.Vr, Map(d.Encode), Map(d.Diffuse), Map(d.Decode), d.OnTime, d.Reward);

    private StageAssignment Map(StageAssignment a) =>
        new(ListModule.OfSeq(a.Devices.Select(d => DeviceId.NewDeviceId(_toPhysical[d.Item]))), a.Start, a.Finish);
}
