namespace Trident.Scheduling.Placement

// Design note. The Orchestrator's entry point: the heuristic always runs (it is cheap, it is the
// fallback and it is the MIP's start — or, when re-planning, the current layout is, if its α is at
// least the heuristic's: a start with no moves lets a time-limited re-plan stop early); the MIP runs under the input's time limit, and its plan is
// taken unless it failed or achieved a smaller α than the heuristic (possible only when the MIP's
// coverage constraints exclude the heuristic's layout). The plan's Source says which and why.

open Trident.Scheduling

module Orchestrator =
    /// Placement for the input: the MIP's, or the heuristic's with the reason.
    let plan (input: PlacementInput) : PlacementPlan =
        let heuristicComps = Heuristic.compositions input
        let heuristic = Heuristic.planOf input (Greedy "placement heuristic") heuristicComps
        // when re-planning, the current layout (no moves) is the better start if it is as good
        let start =
            match input.Current with
            | Some _ ->
                let current = Cluster.nodes input.Cluster |> List.map (fun n -> n, PlacementInput.currentComposition input n) |> Map.ofList
                let currentAlpha = FlowCapacity.alphaForLayout input (current |> Map.toList |> List.map snd)
                if currentAlpha >= heuristic.Alpha && PlacementMip.admits input current then current else heuristicComps
            | None -> heuristicComps
        match PlacementMip.solve input (Some start) with
        | Ok(comps, stats, _) ->
            let mip = Heuristic.planOf input (Mip stats) comps
            if mip.Alpha + 1e-9 >= heuristic.Alpha then mip
            else { heuristic with Source = Greedy(sprintf "placement heuristic: the MIP reached α = %.4f < %.4f" mip.Alpha heuristic.Alpha) }
        | Error reason -> { heuristic with Source = Greedy(sprintf "placement heuristic (%s)" reason) }
