namespace Trident.Scheduling.Dispatching

// Design note. One dispatch round: the admissible candidates, the greedy plan (always — it is the
// fallback and the solver's start), then the MIP under its time limit. The MIP's plan is used when
// the solver returns one that is at least as good as greedy; otherwise greedy, with the reason.
// Every plan's Source says which and why.

open Trident.Scheduling
open Trident.Scheduling.Mip

module Dispatcher =
    let private describe (outcome: SolveOutcome) =
        match outcome with
        | Optimal -> "optimal"
        | Feasible(gap, stop) -> sprintf "feasible (stopped by %A, gap %.4f)" stop gap
        | Infeasible -> "infeasible"
        | Unbounded -> "unbounded"
        | Failed msg -> sprintf "failed: %s" msg

    /// The MIP model of a round, for inspection or LP export (None when there is nothing to decide).
    let roundModel (s: Snapshot) =
        let free = Greedy.freeCounts s
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let candidates = Greedy.candidates (Admissible.round s) nFree
        if candidates.IsEmpty then None else Some(DispatchMip.model s free candidates)

    /// A dispatch round with the MIP, falling back to greedy.
    let dispatch (s: Snapshot) : DispatchPlan =
        let free = Greedy.freeCounts s
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let candidates = Greedy.candidates (Admissible.round s) nFree
        let greedyChoices = Greedy.choose free candidates
        let greedyPlan reason =
            { Now = s.Now
              Dispatches = Assign.materialise s greedyChoices
              Objective = Assign.objective s nFree greedyChoices
              Source = Greedy reason }
        if candidates.IsEmpty then
            greedyPlan "nothing to decide: no waiting request has an admissible option on a free device"
        else
            let model = DispatchMip.model s free candidates
            let settings =
                { SolveSettings.create s.Settings.TimeLimit with MipStart = Some(DispatchMip.startOf model greedyChoices) }
            let result = Mip.solve settings model
            let greedyObjective = Assign.objective s nFree greedyChoices
            if result.HasSolution then
                let choices = DispatchMip.choicesOf s candidates result
                let objective = Assign.objective s nFree choices
                if objective + 1e-6 < greedyObjective then
                    greedyPlan (sprintf "solver's plan (%.1f) below greedy (%.1f), %s" objective greedyObjective (describe result.Outcome))
                else
                    let o = List.head result.Objectives
                    let vars = Seq.length model.Variables
                    { Now = s.Now
                      Dispatches = Assign.materialise s choices
                      Objective = objective
                      Source =
                        Mip
                            { Outcome = describe result.Outcome
                              Objective = o.Value
                              Bound = o.BestBound
                              Gap =
                                match result.Outcome with
                                | Feasible(gap, _) -> gap
                                | _ -> 0.0
                              SolveTime = result.SolveTime
                              Variables = vars
                              Constraints = model.Constraints.Length } }
            else
                greedyPlan (sprintf "solver %s after %.1f ms" (describe result.Outcome) (float result.SolveTime * 1000.0))
