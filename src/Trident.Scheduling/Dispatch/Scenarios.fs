namespace Trident.Scheduling.Dispatching

// Generated dispatch rounds for the benchmark and for exploration: a uniform cluster, a profile's
// placement for its mix, a queue of waiting requests of mixed shapes that arrived over the last
// minute, and devices busy with earlier work. Pure: everything follows from the seed.

open Trident.Scheduling
open Trident.Scheduling.Placement

type Scenario =
    { Profile: Profile
      Nodes: int
      DevicesPerNode: int
      Waiting: int
      /// chance that a device is busy with earlier work
      BusyFraction: float
      Steps: int }

module Scenarios =
    /// The shapes a profile measured (its diffuse points), as the request mix.
    let shapesOf (p: Profile) =
        p.Diffuse.Points |> List.map _.Shape |> List.distinct |> Array.ofList

    /// The scenario's placement: the paper's placement heuristic (design.md §5) for a uniform mix of
    /// the profile's shapes. Not the placement MIP: that one stops on a wall-clock limit, so under load
    /// it returned other placements and `bench dispatch` timed other snapshots; the heuristic is a pure
    /// function of the scenario, so every run of the bench solves the same rounds.
    let placement (cost: CostModel) (cluster: Cluster) (sc: Scenario) =
        let shapes = shapesOf sc.Profile
        let stats =
            { Classes = [ for sh in shapes -> { Shape = sh; Steps = sc.Steps; Share = 1.0 / float shapes.Length } ]
              ArrivalRate = 1.0 }
        Heuristic.plan
            { Cluster = cluster
              Cost = cost
              Stats = stats
              Current = None
              TimeLimit = 0.0<s> }

    /// One snapshot of the scenario, drawn from the seed.
    let snapshot (cost: CostModel) (cluster: Cluster) (placement: PlacementPlan) (settings: DispatchSettings) (sc: Scenario) (seed: uint64) : Snapshot =
        let now = 3600.0<s>
        let shapes = shapesOf sc.Profile
        let mutable rng = Rng.create seed
        let draw f =
            let v, r = f rng
            rng <- r
            v
        let queue =
            [ for i in 0 .. sc.Waiting - 1 do
                  let shape = draw (Rng.pick shapes)
                  let arrival = now - draw Rng.uniform * 60.0<s>
                  yield
                      { Id = RequestId(int64 i)
                        Model = sc.Profile.Model
                        Shape = shape
                        Steps = sc.Steps
                        Arrival = arrival
                        Deadline = CostModel.deadline cost arrival shape sc.Steps
                        Priority = None } ]
        let busy =
            Array.init (Cluster.deviceCount cluster) (fun _ ->
                if draw Rng.uniform < sc.BusyFraction then now + draw Rng.uniform * 30.0<s> else now - 1.0<s>)
        { Now = now
          Cluster = cluster
          Cost = cost
          Placement = placement
          BusyUntil = busy
          Queue = queue
          Completed = Map.empty
          Settings = settings
          Bookings = Map.empty; IdleUntil = Map.empty }
