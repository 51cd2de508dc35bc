namespace Trident.Scheduling.Dispatching

// Design note. One dispatch round: the admissible candidates, the greedy plan (always — it is the
// fallback and the solver's start), then the MIP under its time limit. The MIP's plan is used when
// the solver returns one that is at least as good as greedy; otherwise greedy, with the reason.
// Every plan's Source says which and why.
//
// Skipping the solver. A round's objective is separable by request once the device budget does not
// bind: Σ_chosen (w + μ·k) − μ·free. So Σ_r max(0, max over r's formable options of w + μ·k) − μ·free
// is an upper bound, and a greedy plan that reaches it is optimal: the round needs no solve. This is
// the common case under light load (every waiting request gets its best option), and it keeps the
// solver for the rounds where requests compete for devices.

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
        let rd = Admissible.round s
        let free = Greedy.roundFree rd
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let candidates = Greedy.candidatesIn rd free nFree
        if candidates.IsEmpty then None else Some(DispatchMip.model s free candidates)

    /// The upper bound on a round's objective: every candidate takes its best formable option
    /// (reward + μ·k) as if devices were unlimited, and every free primary device counts as idle.
    let objectiveBound (s: Snapshot) (free: Map<NodeId * PlacementType, int>) (candidates: (Request * DispatchOption list) list) =
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let largest =
            free |> Map.toList |> List.groupBy (fun ((_, t), _) -> t) |> List.map (fun (t, xs) -> t, xs |> List.map snd |> List.max) |> Map.ofList
        let formable (o: DispatchOption) = largest |> Map.tryFind o.Type |> Option.exists (fun n -> n >= o.Degree)
        let best (opts: DispatchOption list) =
            opts
            |> List.filter formable
            |> List.map (fun o -> o.Reward + s.Settings.IdlePenalty * float o.Degree)
            |> List.fold max 0.0
        (candidates |> List.sumBy (snd >> best)) - s.Settings.IdlePenalty * float nFree

    let private nothingToDecide = "nothing to decide: no waiting request has an admissible option on a free device"

    let private provenOptimal = "optimal without the solver: the greedy plan reaches the objective's upper bound"

    /// A round without the solver, when it is as good as the solver's: the greedy plan if it
    /// reaches the objective bound (or there is nothing to decide), else None.
    let greedyIfOptimal (s: Snapshot) : DispatchPlan option =
        let rd = Admissible.round s
        let free = Greedy.roundFree rd
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let candidates = Greedy.candidatesIn rd free nFree
        let choices = Greedy.choose free candidates
        let plan reason =
            let choices = Greedy.conserve rd free choices
            Some
                { Now = s.Now
                  Dispatches = Assign.materialise s choices
                  Objective = Assign.objective s nFree choices
                  Source = Greedy reason }
        if candidates.IsEmpty then plan nothingToDecide
        elif Assign.objective s nFree choices >= objectiveBound s free candidates - 1e-6 then plan provenOptimal
        else None

    /// A round between two solves (the solver ran less than its spacing ago, or is busy): the greedy
    /// plan, completed by `Greedy.conserve` — devices never wait for the next solve.
    let betweenSolves (s: Snapshot) : DispatchPlan =
        Greedy.plan "greedy between solves: the solver's next round is not due yet" s |> fst

    /// A dispatch round with the MIP, falling back to greedy.
    let dispatch (s: Snapshot) : DispatchPlan =
        let rd = Admissible.round s
        let free = Greedy.roundFree rd
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let candidates = Greedy.candidatesIn rd free nFree
        let greedyChoices = Greedy.choose free candidates
        let conservedGreedy = lazy (Greedy.conserve rd free greedyChoices)
        let greedyPlan reason =
            let choices = conservedGreedy.Force()
            { Now = s.Now
              Dispatches = Assign.materialise s choices
              Objective = Assign.objective s nFree choices
              Source = Greedy reason }
        if candidates.IsEmpty then
            greedyPlan nothingToDecide
        elif Assign.objective s nFree greedyChoices >= objectiveBound s free candidates - 1e-6 then
            greedyPlan provenOptimal
        else
            let model = DispatchMip.model s free candidates
            let settings =
                { SolveSettings.create s.Settings.TimeLimit with
                    Backend = s.Settings.Backend
                    MipStart = Some(DispatchMip.startOf model candidates greedyChoices) }
            let result = Mip.solve settings model
            let greedyObjective = Assign.objective s nFree greedyChoices
            if result.HasSolution then
                let raw = DispatchMip.choicesOf s candidates result
                let rawObjective = Assign.objective s nFree raw
                // both plans completed by work conservation before they are compared again
                let choices = Greedy.conserve rd free raw
                let objective = Assign.objective s nFree choices
                let conservedObjective = Assign.objective s nFree (conservedGreedy.Force())
                if rawObjective + 1e-6 < greedyObjective then
                    greedyPlan (sprintf "solver's plan (%.1f) below greedy (%.1f), %s" rawObjective greedyObjective (describe result.Outcome))
                elif objective + 1e-6 < conservedObjective then
                    greedyPlan (sprintf "solver's plan completed (%.1f) below greedy completed (%.1f)" objective conservedObjective)
                else
                    let o = List.head result.Objectives
                    let vars = Seq.length model.Variables
                    { Now = s.Now
                      Dispatches = Assign.materialise s choices
                      Objective = objective
                      Source =
                        Mip
                            { Backend = Backend.name result.Backend
                              Outcome = describe result.Outcome
                              Proven = (result.Outcome = Optimal)
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
