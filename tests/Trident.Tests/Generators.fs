/// Generators for the scheduling domain. Every property draws its inputs from here, so all
/// randomness goes through FsCheck and failures shrink and replay by seed.
///
/// Inputs are generated as small *specs* of plain integers (which FsCheck knows how to shrink) and
/// then built deterministically into valid domain values: a spec that shrinks to an odd corner
/// (0 nodes, a negative count) is clamped into range by the builder, never filtered away.
module Trident.Tests.Generators

open System
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Scheduling.Placement

/// Float comparison with an explicit tolerance (relative and absolute).
let close (tolerance: float) (a: float) (b: float) =
    abs (a - b) <= tolerance * max 1.0 (max (abs a) (abs b))

// ---- specs -----------------------------------------------------------------------------------

/// A cluster: node count, devices per node, memory.
type ClusterSpec = { Nodes: int; PerNode: int; Memory: int }

/// A request: index of a profiled shape, steps, age (how long it has waited), SLO tightness.
type RequestSpec = { ShapeIndex: int; Steps: int; AgeTenths: int; SloPercent: int; Priority: int }

/// A whole dispatch round.
type SnapshotSpec =
    { Profile: int
      Cluster: ClusterSpec
      /// 0: the heuristic placement for the queue's mix; otherwise a random placement from Types
      PlacementMode: int
      Types: int list
      /// per device: 0 idle, n > 0 busy for n tenths of a second
      Busy: int list
      Requests: RequestSpec list }

let private clamp lo hi x = max lo (min hi x)
let private pick (xs: 'a list) (i: int) = xs.[((i % xs.Length) + xs.Length) % xs.Length]

let profiles = ReferenceProfiles.all
let perNodeChoices = [ 1; 2; 4; 8 ]
let memoryChoices = [ 48.0<GB>; 80.0<GB>; 24.0<GB>; 40.0<GB> ]

let buildCluster (c: ClusterSpec) =
    Cluster.uniform (clamp 1 6 c.Nodes) (pick perNodeChoices c.PerNode) (pick memoryChoices c.Memory) Bandwidths.pcie4Server

let costModel (profileIndex: int) = CostModel.create CostSettings.defaults (pick profiles profileIndex)

let shapesOf (p: Profile) =
    p.Diffuse.Points |> List.map _.Shape |> List.distinct

let now = 1000.0<s>

let buildRequests (cost: CostModel) (specs: RequestSpec list) =
    let shapes = shapesOf cost.Profile
    specs
    |> List.mapi (fun i r ->
        let shape = pick shapes r.ShapeIndex
        let steps = clamp 1 60 (abs r.Steps)
        let arrival = now - float (clamp 0 2000 (abs r.AgeTenths)) * 0.1<s>
        let slo = float (clamp 10 800 (abs r.SloPercent)) / 100.0
        { Id = RequestId(int64 i)
          Model = cost.Profile.Model
          Shape = shape
          Steps = steps
          Arrival = arrival
          Deadline = arrival + slo * CostModel.tRef cost shape steps
          Priority = if r.Priority % 5 = 0 then Some(abs r.Priority % 3) else None })

let statsOf (requests: Request list) =
    WorkloadStats.ofRequests 60.0<s> requests

let placementInput (cluster: Cluster) (cost: CostModel) (stats: WorkloadStats) =
    { Cluster = cluster
      Cost = cost
      Stats = stats
      Current = None
      TimeLimit = 1.0<s> }

/// A placement: the heuristic's for the mix, or arbitrary types (at least one primary device).
let buildPlacement (spec: SnapshotSpec) (cluster: Cluster) (cost: CostModel) (requests: Request list) =
    let stats =
        if requests.IsEmpty then
            statsOf (buildRequests cost [ { ShapeIndex = 0; Steps = 20; AgeTenths = 0; SloPercent = 400; Priority = 1 } ])
        else statsOf requests
    if spec.PlacementMode % 2 = 0 then
        Heuristic.plan (placementInput cluster cost stats)
    else
        let n = Cluster.deviceCount cluster
        let types =
            Array.init n (fun i -> if i < spec.Types.Length then pick PlacementType.all spec.Types.[i] else EDC)
        if not (types |> Array.exists PlacementType.isPrimary) then types.[0] <- EDC
        let types = types |> Array.mapi (fun i t -> DeviceId i, t) |> Map.ofArray
        let work = Capacity.stageWork cost stats
        let capacity = Capacity.ofTypes work (Map.values types)
        { Types = types
          Capacity = capacity
          Alpha = Capacity.alpha stats.ArrivalRate capacity
          Moves = 0
          Source = Greedy "generated" }

let buildSnapshot (settings: DispatchSettings) (spec: SnapshotSpec) : Snapshot =
    let cost = costModel spec.Profile
    let cluster = buildCluster spec.Cluster
    let requests = buildRequests cost spec.Requests
    let placement = buildPlacement spec cluster cost requests
    let busy =
        Array.init (Cluster.deviceCount cluster) (fun i ->
            if i < spec.Busy.Length && spec.Busy.[i] > 0 then now + float (clamp 1 3000 spec.Busy.[i]) * 0.1<s>
            else now - 1.0<s>)
    // a busy ⟨C⟩ device whose busy count is not a multiple of 3 also has two later bookings (a video's decode
    // booked ahead), with gaps of 1–5 s before each: a decode may be planned into a gap (Snapshot.Bookings)
    let bookings =
        [ for i in 0 .. busy.Length - 1 do
              let n = if i < spec.Busy.Length then spec.Busy.[i] else 0
              if n > 0 && n % 3 <> 0 && PlacementPlan.typeOf placement (DeviceId i) = C then
                  let gap = float (n % 5 + 1) * 1.0<s>
                  let length = float (n % 7 + 1) * 2.0<s>
                  let a1 = busy.[i] + gap
                  let a2 = a1 + length + gap
                  yield DeviceId i, [ a1, a1 + length; a2, a2 + length ] ]
        |> Map.ofList
    // a busy primary device whose busy count is 1 more than a multiple of 4 is idle now, held for work booked from
    // halfway to its busy-until (a gang queued behind running work, Snapshot.IdleUntil): a one-device request that
    // ends by then may be backfilled there
    let idleUntil =
        [ for i in 0 .. busy.Length - 1 do
              let n = if i < spec.Busy.Length then spec.Busy.[i] else 0
              if n > 0 && n % 4 = 1 && PlacementType.isPrimary (PlacementPlan.typeOf placement (DeviceId i)) then
                  yield DeviceId i, now + (busy.[i] - now) / 2.0 ]
        |> Map.ofList
    { Now = now
      Cluster = cluster
      Cost = cost
      Placement = placement
      BusyUntil = busy
      Queue = requests
      Completed = Map.empty
      Settings = settings
      Bookings = bookings
      IdleUntil = idleUntil }

// ---- generators ------------------------------------------------------------------------------

let clusterSpecGen =
    gen {
        let! nodes = Gen.choose (1, 4)
        let! perNode = Gen.choose (0, 3)
        let! memory = Gen.frequency [ 6, Gen.constant 0; 2, Gen.constant 1; 1, Gen.constant 2; 1, Gen.constant 3 ]
        return { Nodes = nodes; PerNode = perNode; Memory = memory }
    }

let requestSpecGen =
    gen {
        let! shape = Gen.choose (0, 40)
        let! steps = Gen.frequency [ 3, Gen.choose (1, 8); 2, Gen.choose (8, 50) ]
        let! age = Gen.choose (0, 600)
        let! slo = Gen.choose (50, 600)
        let! priority = Gen.choose (0, 20)
        return { ShapeIndex = shape; Steps = steps; AgeTenths = age; SloPercent = slo; Priority = priority }
    }

let snapshotSpecGen =
    Gen.sized (fun size ->
        gen {
            let! profile = Gen.choose (0, profiles.Length - 1)
            let! cluster = clusterSpecGen
            let devices = clamp 1 6 cluster.Nodes * pick perNodeChoices cluster.PerNode
            let! mode = Gen.choose (0, 3)
            let! types = Gen.listOfLength devices (Gen.choose (0, 5))
            let! busy = Gen.listOfLength devices (Gen.frequency [ 3, Gen.constant 0; 2, Gen.choose (1, 600) ])
            let! n = Gen.choose (0, max 1 (min 60 size))
            let! requests = Gen.listOfLength n requestSpecGen
            return
                { Profile = profile
                  Cluster = cluster
                  PlacementMode = mode
                  Types = types
                  Busy = busy
                  Requests = requests }
        })

/// Snapshot specs with FsCheck's structural shrinking (fewer requests, smaller numbers).
let snapshotSpecs: Arbitrary<SnapshotSpec> =
    Arb.fromGenShrink (snapshotSpecGen, (ArbMap.defaults |> ArbMap.arbitrary<SnapshotSpec>).Shrinker)
