namespace Trident.Scheduling

// The facade the simulator and the runtime both call: a snapshot in, plans out. Pure apart from
// the solver's own wall-clock limit.

open Trident.Scheduling.Dispatching
open Trident.Scheduling.Placement

module Planner =
    /// One scheduling round against the snapshot's placement.
    let plan (snapshot: Snapshot) : Plans =
        { Dispatch = Dispatcher.dispatch snapshot
          Placement = snapshot.Placement }

    /// The requests of the snapshot's queue that the plan leaves queued (neither dispatched nor a mate
    /// of a planned batch, DispatchPlan.Batched).
    let remaining (snapshot: Snapshot) (plan: DispatchPlan) =
        let dispatched = DispatchPlan.served plan |> Set.ofList
        snapshot.Queue |> List.filter (fun r -> not (dispatched.Contains r.Id))

    /// A placement for the cluster, profile and request statistics (MIP, heuristic fallback).
    let place (input: PlacementInput) : PlacementPlan = Orchestrator.plan input
