namespace Trident.Scheduling

/// Typed identifiers: a request, a device, a node and a model are never confused for one another.
[<AutoOpen>]
module Ids =
    /// A generation request, unique within one serving process or one trace.
    [<Struct>]
    type RequestId =
        | RequestId of int64
        member this.Value = let (RequestId v) = this in v
        override this.ToString() = let (RequestId v) = this in sprintf "r%d" v

    /// One device (a GPU, or a CPU slot with a thread budget). Ids are 0..n-1 across the cluster.
    [<Struct>]
    type DeviceId =
        | DeviceId of int
        member this.Value = let (DeviceId v) = this in v
        override this.ToString() = let (DeviceId v) = this in sprintf "d%d" v

    /// One node (a machine holding several devices). Ids are 0..m-1.
    [<Struct>]
    type NodeId =
        | NodeId of int
        member this.Value = let (NodeId v) = this in v
        override this.ToString() = let (NodeId v) = this in sprintf "n%d" v

    /// The name of a model family (the profile's `model`, e.g. "flux").
    type ModelName =
        | ModelName of string
        member this.Value = let (ModelName v) = this in v
        override this.ToString() = let (ModelName v) = this in v
