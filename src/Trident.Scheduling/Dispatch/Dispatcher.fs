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

    /// What every kind of round computes first: the round, its free devices (the reserved node held
    /// out), the candidates and the greedy plan over them completed by work conservation. Requests that
    /// the completion places from beyond the candidate cut join the candidates (with their formable
    /// options), so the solver sees every request the greedy plan starts and the greedy plan stays a
    /// feasible start of the model.
    type Prepared =
        { Round: Admissible.Round
          /// free primary devices by node and type (the reserved node held out)
          Free: Map<NodeId * PlacementType, int>
          FreeCount: int
          /// requests offered to the round with their formable options
          Candidates: (Request * DispatchOption list) list
          /// the greedy plan, completed by work conservation
          Greedy: Choice list
          /// the candidates' batch options (Batching.options), computed once for the bound and the model;
          /// only candidates that have some (none when the round's MaxBatch ≤ 1)
          BatchOptions: Map<RequestId, BatchOption list> }

    /// The first step of every round (see `Prepared`).
    let prepare (s: Snapshot) : Prepared =
        let rd = Greedy.round s
        let free = Greedy.roundFree rd
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let cut = Greedy.candidatesIn rd free nFree
        let greedy = Greedy.choose free cut |> Greedy.conserve rd free
        let inCut = cut |> List.map (fun (r, _) -> r.Id) |> Set.ofList
        let extra = greedy |> List.map (fun c -> c.Option.Request) |> List.filter (fun r -> not (inCut.Contains r.Id))
        let candidates = if extra.IsEmpty then cut else cut @ Greedy.offeredIn rd free extra
        let batchOptions =
            if rd.Snapshot.Settings.MaxBatch <= 1 then Map.empty
            else
                candidates
                |> List.choose (fun (r, opts) -> match Batching.options rd r opts with [] -> None | bs -> Some(r.Id, bs))
                |> Map.ofList
        { Round = rd; Free = free; FreeCount = nFree; Candidates = candidates; Greedy = greedy; BatchOptions = batchOptions }

    /// A prepared candidate's batch options (none when it has none).
    let private batchesOf (p: Prepared) (r: Request) : BatchOption list =
        Map.tryFind r.Id p.BatchOptions |> Option.defaultValue []

    /// The classes of a prepared round's candidates, with the batch options computed by `prepare`.
    let private classesOf (p: Prepared) = DispatchMip.classesWith (fun r _ -> batchesOf p r) p.Candidates

    /// The MIP model of a round, for inspection or LP export (None when there is nothing to decide).
    let roundModel (s: Snapshot) =
        let p = prepare s
        if p.Candidates.IsEmpty then None else Some(DispatchMip.modelOf p.Round.Snapshot p.Free (classesOf p))

    /// The reference implementation's formulation of a prepared round (design.md, appendix: "one
    /// binary per request × node × degree", as the paper's code states its ILP), over the same
    /// candidates, options and objective as the aggregated model, for `bench dispatch --reference`:
    ///   x[r,n,t,k] ∈ {0,1}   start request r on a k-group of type t on node n
    ///   max  Σ w[r,t,k]·x[r,n,t,k] − μ · Σ_{n,t} idle[n,t]
    ///   s.t. once[r]:        Σ_{n,t,k} x[r,n,t,k] ≤ 1
    ///        node[n,t]:      Σ_{r,k} k·x[r,n,t,k] + idle[n,t] = free[n,t],  idle ≥ 0 (its slack per node)
    /// Its optimum equals the aggregated model's (both are exact); only the size and symmetry differ.
    let referenceModel (p: Prepared) : Model<RequestId * NodeId * PlacementType * int> option =
        if p.Candidates.IsEmpty then None
        else
            let s = p.Round.Snapshot
            let mu = s.Settings.IdlePenalty
            let xs =
                [ for (r, opts) in p.Candidates do
                      for o in opts do
                          for KeyValue((n, t), f) in p.Free do
                              if t = o.Type && f >= o.Degree then yield (r.Id, n, t, o.Degree), o ]
            // idle[n,t] is x's key with request −1 − n and degree 0 (a continuous slack, as in the paper's code)
            let idle (NodeId n, t) = RequestId(-1L - int64 n), NodeId n, t, 0
            let once =
                xs
                |> List.groupBy (fun ((r, _, _, _), _) -> r)
                |> List.map (fun (RequestId r, group) ->
                    ConstraintName.create "once" [ "r", string r ], LinExpr.ofTerms [ for (key, _) in group -> key, 1.0 ] <== 1.0)
            let byNode = xs |> List.groupBy (fun ((_, n, t, _), _) -> n, t) |> Map.ofList
            let nodes =
                [ for KeyValue((NodeId n, t), f) in p.Free do
                      let terms = byNode |> Map.tryFind (NodeId n, t) |> Option.defaultValue [] |> List.map (fun ((r, n, t, k), _) -> (r, n, t, k), float k)
                      yield
                          ConstraintName.create "node" [ "node", string n; "type", PlacementType.name t ],
                          LinExpr.ofTerms ((idle (NodeId n, t), 1.0) :: terms) === float f ]
            let objective =
                LinExpr.ofTerms (
                    [ for (key, o) in xs -> key, o.Reward ] @ [ for KeyValue(key, _) in p.Free -> idle key, -mu ]
                )
            Model.empty
            |> Model.addVars [ for (key, _) in xs -> Var.binary key ]
            |> Model.addVars [ for KeyValue(key, f) in p.Free -> Var.continuous 0.0 (float f) (idle key) ]
            |> Model.addConstraints once
            |> Model.addConstraints nodes
            |> Model.maximize "reward" objective
            |> Some

    /// The upper bound on a round's objective, by Lagrangian relaxation of the device budget. With
    /// each candidate's formable options valued v = w + μ·k (the objective is Σ_chosen v − μ·free) and
    /// only the total budget Σ k ≤ free kept (the per-node limits dropped), every price π ≥ 0 per
    /// device gives the bound L(π) = Σ_r max(0, max_o (v_o − π·k_o)) + π·free − μ·free. L is convex
    /// and piecewise linear in π with breakpoints among 0 and the options' values per device v/k, so
    /// the least of L over those prices is the relaxation's bound. π = 0 is "every candidate takes its
    /// best option as if devices were unlimited"; a larger π proves rounds where devices are scarce —
    /// e.g. every free device starting a different on-time request — optimal without a solve.
    /// A batch option of b members on k devices (`batches`: Batching.options) is an item of its member worth its
    /// reward plus its share of the group's (μ − δ)·k, taking k / b devices: splitting each batch's value and
    /// devices evenly among its members and dropping that members come in whole batches only relaxes the
    /// model further, so the bound stays a bound.
    let objectiveBound
        (s: Snapshot)
        (free: Map<NodeId * PlacementType, int>)
        (candidates: (Request * DispatchOption list) list)
        (batches: Request -> BatchOption list)
        =
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let mu = s.Settings.IdlePenalty
        let largest =
            free |> Map.toList |> List.groupBy (fun ((_, t), _) -> t) |> List.map (fun (t, xs) -> t, xs |> List.map snd |> List.max) |> Map.ofList
        let formable (o: DispatchOption) = largest |> Map.tryFind o.Type |> Option.exists (fun n -> n >= o.Degree)
        let items =
            [| for (r, opts) in candidates do
                   let xs =
                       [| for o in opts do if formable o then yield o.Reward + mu * float o.Degree, float o.Degree
                          for b in batches r do
                              if formable b.Option then
                                  let k = float b.Option.Degree
                                  yield b.Reward + (mu - s.Settings.DevicePenalty) * k / float b.Size, k / float b.Size |]
                   if xs.Length > 0 then yield xs |]
        let lagrangian (price: float) =
            let mutable total = price * float nFree - mu * float nFree
            for xs in items do
                let mutable best = 0.0
                for (v, k) in xs do
                    best <- max best (v - price * k)
                total <- total + best
            total
        let prices = Array.append [| 0.0 |] [| for xs in items do for (v, k) in xs do if v > 0.0 then yield v / k |] |> Array.distinct
        prices |> Array.fold (fun acc p -> min acc (lagrangian p)) infinity

    /// The round's objective bound over its prepared candidates (what the quick check compares with).
    let roundBound (s: Snapshot) =
        let p = prepare s
        objectiveBound p.Round.Snapshot p.Free p.Candidates (batchesOf p)

    let private nothingToDecide = "nothing to decide: no waiting request has an admissible option on a free device"

    let private provenOptimal = "optimal without the solver: the greedy plan reaches the objective's upper bound"

    /// A round without the solver, when it is as good as the solver's: the greedy plan if it
    /// reaches the objective bound (or there is nothing to decide), else None.
    let greedyIfOptimal (s: Snapshot) : DispatchPlan option =
        let p = prepare s
        let plan reason =
            Some
                { Now = s.Now
                  Dispatches = Greedy.dispatches p.Round p.Greedy
                  Objective = Assign.objective s p.FreeCount p.Greedy
                  Source = Greedy reason
                  Batched = Greedy.batchedOf p.Greedy }
        if p.Candidates.IsEmpty then plan nothingToDecide
        elif Assign.objective s p.FreeCount p.Greedy >= objectiveBound s p.Free p.Candidates (batchesOf p) - 1e-6 then plan provenOptimal
        else None

    /// A round between two solves (the solver ran less than its spacing ago, or is busy): the greedy
    /// plan, completed by `Greedy.conserve` — devices never wait for the next solve.
    let betweenSolves (s: Snapshot) : DispatchPlan =
        Greedy.plan "greedy between solves: the solver's next round is not due yet" s |> fst

    // A dispatch round with the MIP over a prepared round, falling back to greedy; with `skipProven` the greedy plan is
    // taken without a solve when it reaches the objective's bound.
    let private run (skipProven: bool) (p: Prepared) : DispatchPlan =
        let s = p.Round.Snapshot
        let free, nFree, candidates, greedyChoices = p.Free, p.FreeCount, p.Candidates, p.Greedy
        let greedyPlan reason =
            { Now = s.Now
              Dispatches = Greedy.dispatches p.Round greedyChoices
              Objective = Assign.objective s nFree greedyChoices
              Source = Greedy reason
              Batched = Greedy.batchedOf greedyChoices }
        if candidates.IsEmpty then
            greedyPlan nothingToDecide
        elif skipProven && Assign.objective s nFree greedyChoices >= objectiveBound s free candidates (batchesOf p) - 1e-6 then
            greedyPlan provenOptimal
        else
            let cls = classesOf p
            let model = DispatchMip.modelOf s free cls
            let settings =
                { SolveSettings.create s.Settings.TimeLimit with
                    Backend = s.Settings.Backend
                    MipStart = Some(DispatchMip.startOf model cls greedyChoices)
                    // a round's model has tens of variables: SCIP's presolve took longer than the solve
                    // (512 × 1000, CPU ms per solve p50 / p99: 12.4 / 24.3 with it, 5.3 / 11.3 without,
                    // same optima; 2026-12-01)
                    Presolve = false }
            let result = Mip.solve settings model
            let greedyObjective = Assign.objective s nFree greedyChoices
            if result.HasSolution then
                let raw = DispatchMip.choicesOf s free candidates cls result
                let rawObjective = Assign.objective s nFree raw
                // the solver's plan, completed by work conservation (it adds only reward)
                let choices = Greedy.conserve p.Round free raw
                let objective = Assign.objective s nFree choices
                if rawObjective + 1e-6 < greedyObjective then
                    greedyPlan (sprintf "solver's plan (%.1f) below greedy (%.1f), %s" rawObjective greedyObjective (describe result.Outcome))
                else
                    let o = List.head result.Objectives
                    let vars = Seq.length model.Variables
                    { Now = s.Now
                      Dispatches = Greedy.dispatches p.Round choices
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
                              Constraints = model.Constraints.Length }
                      Batched = Greedy.batchedOf choices }
            else
                greedyPlan (sprintf "solver %s after %.1f ms" (describe result.Outcome) (float result.SolveTime * 1000.0))

    /// A dispatch round with the MIP over a prepared round, falling back to greedy; the solver is skipped when the
    /// greedy plan reaches the objective's upper bound (it is then optimal) or there is nothing to decide.
    let dispatchPrepared (p: Prepared) : DispatchPlan = run true p

    /// A dispatch round with the MIP, falling back to greedy.
    let dispatch (s: Snapshot) : DispatchPlan = dispatchPrepared (prepare s)

    /// A dispatch round that runs the solver even when the greedy plan provably reaches the objective's bound, so that
    /// the plan carries the backend's certificate (`trident replay --backend B`); a round with nothing to decide still
    /// has no solve. The plan's objective is the same as `dispatch`'s up to the solver's tolerance.
    let solve (s: Snapshot) : DispatchPlan = run false (prepare s)
