namespace Trident.Scheduling.Placement

// Design note. Both placement planners (the paper's heuristic and the MIP) reason about nodes as
// *compositions*: how many devices of each placement type a node holds. A node holds primary devices
// of at most one primary type (so a diffuse group of any k up to that count fits in it, and the
// node never fragments into groups of different types) plus auxiliary ⟨E⟩/⟨C⟩ devices.
//
// Capacity, in requests per second of the planned mix, with T̄_s the mix-average device-seconds of
// stage s per request (diffuse: steps · t_D(k*) · k*, i.e. all k devices' time):
//   a primary device of type t completes 1 / (T̄_D + [E∈t]·T̄_E + [C∈t]·T̄_C) requests per second, and
//   counts towards every stage it holds; an ⟨E⟩ device adds 1/T̄_E to encode, a ⟨C⟩ 1/T̄_C to decode.
// α = min over stages of capacity / arrival rate: the smallest stage headroom.

open Trident.Scheduling

/// One class of requests in the recent mix.
type RequestClass =
    { Shape: Shape
      Steps: int
      /// fraction of requests in this class (the shares of a mix sum to 1)
      Share: float }

/// Request statistics over a recent window.
type WorkloadStats =
    { Classes: RequestClass list
      /// arrivals per second
      ArrivalRate: float }

module WorkloadStats =
    /// Statistics of a list of requests observed over `window` seconds.
    let ofRequests (window: float<s>) (requests: Request list) =
        let n = float requests.Length
        { Classes =
            requests
            |> List.countBy (fun r -> r.Shape, r.Steps)
            |> List.sortBy (fun ((sh, st), _) -> sh.PixelFrames, sh.Height, sh.Width, st)
            |> List.map (fun ((sh, st), c) -> { Shape = sh; Steps = st; Share = float c / n })
          ArrivalRate = if window > 0.0<s> then n / float window else 0.0 }

/// A node's devices by placement type (at most one primary type).
type Composition = Map<PlacementType, int>

module Composition =
    let count (c: Composition) t = c |> Map.tryFind t |> Option.defaultValue 0
    let size (c: Composition) = c |> Map.toSeq |> Seq.sumBy snd

    /// The primary type of the node, if it has primary devices.
    let primary (c: Composition) =
        c |> Map.toList |> List.tryFind (fun (t, n) -> n > 0 && PlacementType.isPrimary t) |> Option.map fst

    /// Devices that must change type to turn `current` into `target`.
    let moves (current: Composition) (target: Composition) =
        PlacementType.all |> List.sumBy (fun t -> max 0 (count current t - count target t))

    let ofTypes (types: PlacementType seq) : Composition =
        types |> Seq.countBy id |> Map.ofSeq

/// Per-stage speeds of each placement type for a mix.
type StageSpeeds =
    { Encode: float
      Diffuse: float
      Decode: float }

module Capacity =
    /// Mix-average device-seconds per request of each stage.
    let stageWork (cost: CostModel) (stats: WorkloadStats) =
        let avg f = stats.Classes |> List.sumBy (fun c -> c.Share * f c)
        let e = avg (fun c -> float (CostModel.encodeTime cost c.Shape))
        let d =
            avg (fun c ->
                let k = CostModel.referenceDegree cost c.Shape
                float (CostModel.diffuseTime cost c.Shape c.Steps k) * float k)
        let dc = avg (fun c -> float (CostModel.decodeTime cost c.Shape))
        { Encode = e; Diffuse = d; Decode = dc }

    /// Requests per second one device of type t adds to each stage.
    let speeds (work: StageSpeeds) (t: PlacementType) : StageSpeeds =
        let holds s = PlacementType.holds s t
        if PlacementType.isPrimary t then
            let time =
                work.Diffuse
                + (if holds Encode then work.Encode else 0.0)
                + (if holds Decode then work.Decode else 0.0)
            let r = if time > 0.0 then 1.0 / time else 0.0
            { Encode = (if holds Encode then r else 0.0); Diffuse = r; Decode = (if holds Decode then r else 0.0) }
        else
            { Encode = (if holds Encode && work.Encode > 0.0 then 1.0 / work.Encode else 0.0)
              Diffuse = 0.0
              Decode = (if holds Decode && work.Decode > 0.0 then 1.0 / work.Decode else 0.0) }

    let private get (s: StageSpeeds) =
        function
        | Encode -> s.Encode
        | Diffuse -> s.Diffuse
        | Decode -> s.Decode

    /// Stage capacities (requests/s) of a set of devices given by their types.
    let ofTypes (work: StageSpeeds) (types: PlacementType seq) : Map<Stage, float> =
        let counts = Seq.countBy id types |> List.ofSeq
        Stage.all
        |> List.map (fun s -> s, counts |> List.sumBy (fun (t, n) -> float n * get (speeds work t) s))
        |> Map.ofList

    /// α: the smallest stage capacity over the arrival rate (capacity itself when the rate is 0).
    let alpha (rate: float) (capacity: Map<Stage, float>) =
        let m = capacity |> Map.toSeq |> Seq.map snd |> Seq.min
        if rate > 0.0 then m / rate else m

    /// Whether devices of type t (with `memory`) can serve class c: a primary type at some admissible
    /// degree no larger than `maxDegree`, an auxiliary type its one stage at degree 1.
    let serves (cost: CostModel) (memory: float<GB>) (maxDegree: int) (t: PlacementType) (c: RequestClass) =
        match CostModel.minDegree cost t c.Shape memory with
        | Some k -> (not (PlacementType.isPrimary t)) || k <= maxDegree
        | None -> false

    /// The smallest degree a class needs on type t (None when it cannot be served there).
    let neededDegree (cost: CostModel) (memory: float<GB>) (t: PlacementType) (c: RequestClass) =
        CostModel.minDegree cost t c.Shape memory

    /// Types whose devices can serve every class of the mix (memory feasibility of the type).
    let feasibleTypes (cost: CostModel) (memory: float<GB>) (nodeSize: int) (stats: WorkloadStats) =
        PlacementType.all
        |> List.filter (fun t -> stats.Classes |> List.forall (serves cost memory nodeSize t))

/// What both placement planners take.
type PlacementInput =
    { Cluster: Cluster
      Cost: CostModel
      Stats: WorkloadStats
      /// the placement in force, if any (moves are counted from it)
      Current: Map<DeviceId, PlacementType> option
      /// wall-clock limit of the MIP solve
      TimeLimit: float<s> }

module PlacementInput =
    /// Smallest device memory of a node.
    let nodeMemory (input: PlacementInput) (n: NodeId) =
        Cluster.devicesOf input.Cluster n |> Array.map (fun d -> (Cluster.device input.Cluster d).Memory) |> Array.min

    /// Current composition of a node (empty when there is no current placement).
    let currentComposition (input: PlacementInput) (n: NodeId) : Composition =
        match input.Current with
        | None -> Map.empty
        | Some cur -> Cluster.devicesOf input.Cluster n |> Seq.choose (fun d -> Map.tryFind d cur) |> Composition.ofTypes

    /// Turns per-node compositions into a device → type map, keeping each device's current type
    /// where the composition allows it (fewest weight moves).
    let assignDevices (input: PlacementInput) (compositions: Map<NodeId, Composition>) =
        [ for n in Cluster.nodes input.Cluster do
              let devices = Cluster.devicesOf input.Cluster n
              let target = compositions.[n]
              if Composition.size target <> devices.Length then
                  failwithf "composition of %O has %d devices, the node has %d" n (Composition.size target) devices.Length
              let remaining = System.Collections.Generic.Dictionary<PlacementType, int>()
              for t in PlacementType.all do
                  remaining.[t] <- Composition.count target t
              let current d = input.Current |> Option.bind (Map.tryFind d)
              // first keep devices whose current type is still wanted
              let kept =
                  [ for d in devices do
                        match current d with
                        | Some t when remaining.[t] > 0 ->
                            remaining.[t] <- remaining.[t] - 1
                            yield d, t
                        | _ -> () ]
              let keptIds = kept |> List.map fst |> Set.ofList
              let rest = devices |> Array.filter (fun d -> not (keptIds.Contains d))
              let fill =
                  [ for t in PlacementType.all do
                        for _ in 1 .. remaining.[t] -> t ]
              yield! kept
              yield! Array.zip rest (Array.ofList fill) ]
        |> Map.ofList

    /// Devices whose type differs from the current placement (0 without one).
    let moves (input: PlacementInput) (types: Map<DeviceId, PlacementType>) =
        match input.Current with
        | None -> 0
        | Some cur -> types |> Map.filter (fun d t -> Map.tryFind d cur <> Some t) |> Map.count
