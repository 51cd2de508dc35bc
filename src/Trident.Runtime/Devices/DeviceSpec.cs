// Devices as the runtime sees them. On a CPU-only machine a device is a slot: a share of the machine's
// cores given to ONNX Runtime as intra-op threads. A diffuse task of degree k runs one session with the
// threads of its k slots, so a degree means the same here as on GPUs (more devices, one request,
// sub-linear speed-up) and the profiler measures it like any other. Devices are grouped into nodes; a
// diffuse group never spans nodes.

using Trident.Runtime.Onnx;
using Trident.Scheduling;

namespace Trident.Runtime.Devices;

/// <summary>What executes a device's sessions.</summary>
public enum DeviceKind
{
    /// <summary>A CPU slot: <see cref="DeviceSpec.IntraOpThreads"/> of the machine's cores.</summary>
    Cpu,

    /// <summary>A GPU run through ONNX Runtime's CUDA execution provider.</summary>
    Cuda,

    /// <summary>An emulated accelerator (EmulatedStageExecutor): tasks take the cost model's time for a
    /// reference profile; no ONNX Runtime. Its thread budget is 1, so a diffuse group's is its degree.</summary>
    Emulated,
}

/// <summary>One device.</summary>
/// <param name="Id">Device id, 0..n−1 across the cluster (the scheduler's <c>DeviceId</c>).</param>
/// <param name="Node">Node id, 0..m−1.</param>
/// <param name="Kind">CPU slot or CUDA device.</param>
/// <param name="IntraOpThreads">Intra-op threads a session on this device uses (its thread budget).</param>
/// <param name="CudaOrdinal">The CUDA device ordinal (only for <see cref="DeviceKind.Cuda"/>).</param>
/// <param name="MemoryGb">Memory the placement and dispatch planners may fill on this device.</param>
public sealed record DeviceSpec(int Id, int Node, DeviceKind Kind, int IntraOpThreads, int CudaOrdinal, double MemoryGb)
{
    /// <summary>The scheduler's id of this device.</summary>
    public DeviceId DeviceId => DeviceId.NewDeviceId(Id);

    private readonly ExecutionProvider? provider;

    /// <summary>The execution provider this device's sessions use: by default the CPU with its thread budget,
    /// or the CUDA device with ORT's defaults; configuration sets the CUDA options here.</summary>
    public ExecutionProvider Provider
    {
        get => provider ?? (Kind == DeviceKind.Cuda ? new ExecutionProvider.Cuda(CudaOrdinal) : new ExecutionProvider.Cpu(IntraOpThreads));
        init => provider = value;
    }

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        DeviceKind.Cpu => $"d{Id} (node {Node}, cpu, {IntraOpThreads} thread{(IntraOpThreads == 1 ? "" : "s")})",
        DeviceKind.Emulated => $"d{Id} (node {Node}, emulated, {MemoryGb:0.##} GB)",
        _ => $"d{Id} (node {Node}, cuda:{CudaOrdinal})",
    };
}

/// <summary>The devices of this server, grouped into nodes.</summary>
public sealed record DeviceLayout
{
    /// <summary>Creates a layout. Device ids must be 0..n−1 in order and node ids 0..m−1, each with a device.</summary>
    /// <exception cref="ArgumentException">when the ids break that rule.</exception>
    public DeviceLayout(IReadOnlyList<DeviceSpec> devices)
    {
        if (devices.Count == 0) throw new ArgumentException("a layout needs at least one device", nameof(devices));
        for (var i = 0; i < devices.Count; i++)
            if (devices[i].Id != i) throw new ArgumentException($"device {i} has id {devices[i].Id}; ids must be 0..n-1 in order", nameof(devices));
        var nodes = devices.Select(d => d.Node).Distinct().Order().ToArray();
        for (var i = 0; i < nodes.Length; i++)
            if (nodes[i] != i) throw new ArgumentException($"node ids must be 0..m-1, each with a device (got {string.Join(", ", nodes)})", nameof(devices));
        Devices = devices;
        NodeCount = nodes.Length;
    }

    /// <summary>Every device, by id.</summary>
    public IReadOnlyList<DeviceSpec> Devices { get; }

    /// <summary>Number of nodes.</summary>
    public int NodeCount { get; }

    /// <summary><paramref name="count"/> CPU slots of <paramref name="threadsPerDevice"/> threads each, split into
    /// nodes of <paramref name="devicesPerNode"/> devices (the last node may be smaller).</summary>
    public static DeviceLayout Cpu(int count, int threadsPerDevice, int devicesPerNode, double memoryGb)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threadsPerDevice, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(devicesPerNode, 1);
        return new DeviceLayout(Enumerable.Range(0, count)
            .Select(i => new DeviceSpec(i, i / devicesPerNode, DeviceKind.Cpu, threadsPerDevice, 0, memoryGb))
            .ToArray());
    }

    /// <summary><paramref name="count"/> CUDA devices (ordinals 0..count−1), nodes of <paramref name="devicesPerNode"/>.</summary>
    public static DeviceLayout Cuda(int count, int devicesPerNode, double memoryGb, int hostThreadsPerDevice = 1) =>
        Cuda(Enumerable.Range(0, count).ToArray(), devicesPerNode, _ => memoryGb, o => new ExecutionProvider.Cuda(o), hostThreadsPerDevice);

    /// <summary>One device per CUDA ordinal in <paramref name="ordinals"/>, nodes of <paramref name="devicesPerNode"/>,
    /// each with the memory <paramref name="memoryGb"/> gives for its ordinal and the provider
    /// <paramref name="provider"/> makes for it.</summary>
    public static DeviceLayout Cuda(
        IReadOnlyList<int> ordinals, int devicesPerNode, Func<int, double> memoryGb, Func<int, ExecutionProvider.Cuda> provider, int hostThreadsPerDevice = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ordinals.Count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(devicesPerNode, 1);
        return new DeviceLayout(ordinals
            .Select((ordinal, i) => new DeviceSpec(i, i / devicesPerNode, DeviceKind.Cuda, hostThreadsPerDevice, ordinal, memoryGb(ordinal))
            {
                Provider = provider(ordinal),
            })
            .ToArray());
    }

    /// <summary><paramref name="count"/> emulated devices of <paramref name="memoryGb"/> GB each (thread budget 1),
    /// nodes of <paramref name="devicesPerNode"/> (the last node may be smaller).</summary>
    public static DeviceLayout Emulated(int count, int devicesPerNode, double memoryGb)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(devicesPerNode, 1);
        return new DeviceLayout(Enumerable.Range(0, count)
            .Select(i => new DeviceSpec(i, i / devicesPerNode, DeviceKind.Emulated, 1, 0, memoryGb))
            .ToArray());
    }

    /// <summary>The scheduler's view of these devices. In-process handoffs of CPU slots cost a memory copy, so
    /// their bandwidths are those of host memory (≈10 GB/s within a node); nodes talk over the network. CUDA and
    /// emulated devices (which emulate the reference cluster's GPUs) get a PCIe 4.0 server's.</summary>
    public Cluster ToCluster() =>
        new(Devices.Select(d => new Device(d.DeviceId, NodeId.NewNodeId(d.Node), d.MemoryGb)).ToArray(),
            NodeCount,
            Devices[0].Kind == DeviceKind.Cpu
                ? new Bandwidths(10e9, 1.25e9, 10e9)
                : BandwidthsModule.pcie4Server);
}
