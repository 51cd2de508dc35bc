namespace Trident.Scheduling

/// One device. `Memory` is what one device can hold: resident weights plus activations.
type Device =
    { Id: DeviceId
      Node: NodeId
      Memory: float<GB> }

/// Links between devices and to the host. Bytes per second.
type Bandwidths =
    {
      /// between two devices of one node
      IntraNode: float<B/s>
      /// between devices of different nodes
      InterNode: float<B/s>
      /// host memory → device, used to load a stage model's weights
      HostToDevice: float<B/s> }

module Bandwidths =
    /// Defaults for a PCIe 4.0 ×16 GPU server (≈25 GB/s usable per direction) on a 100 Gb/s network
    /// (12.5 GB/s). The reference cluster of the paper (L20 GPUs) has no NVLink, so intra-node
    /// transfers also cross PCIe.
    let pcie4Server =
        { IntraNode = 25e9<B/s>
          InterNode = 12.5e9<B/s>
          HostToDevice = 25e9<B/s> }

/// The cluster: devices grouped into nodes. Invariant: `Devices.[i].Id = DeviceId i`, and every node
/// id in 0..NodeCount-1 has at least one device.
type Cluster =
    { Devices: Device array
      NodeCount: int
      Bandwidths: Bandwidths }

module Cluster =
    /// `nodes` nodes of `devicesPerNode` identical devices, ids assigned node by node.
    let uniform (nodes: int) (devicesPerNode: int) (memory: float<GB>) (bandwidths: Bandwidths) =
        if nodes < 1 then invalidArg (nameof nodes) "a cluster needs at least one node"
        if devicesPerNode < 1 then invalidArg (nameof devicesPerNode) "a node needs at least one device"
        if memory <= 0.0<GB> then invalidArg (nameof memory) "device memory must be positive"
        { Devices =
            Array.init (nodes * devicesPerNode) (fun i ->
                { Id = DeviceId i
                  Node = NodeId(i / devicesPerNode)
                  Memory = memory })
          NodeCount = nodes
          Bandwidths = bandwidths }

    let device (c: Cluster) (DeviceId i) = c.Devices.[i]
    let nodeOf (c: Cluster) (d: DeviceId) = (device c d).Node
    let deviceCount (c: Cluster) = c.Devices.Length

    /// The devices of one node, in id order.
    let devicesOf (c: Cluster) (n: NodeId) =
        c.Devices |> Array.filter (fun d -> d.Node = n) |> Array.map _.Id

    let nodes (c: Cluster) = List.init c.NodeCount NodeId

    /// Seconds to move `bytes` from device a to device b (0 on the same device).
    let transferTime (c: Cluster) (bytes: float<B>) (a: DeviceId) (b: DeviceId) : float<s> =
        if a = b then 0.0<s>
        elif nodeOf c a = nodeOf c b then bytes / c.Bandwidths.IntraNode
        else bytes / c.Bandwidths.InterNode
