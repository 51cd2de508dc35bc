namespace Trident.Scheduling.Dispatching

// Design note. The dispatch MIP in its aggregated form (design.md §6, "Formulating for speed").
// The reward of an option depends on the request, the primary type and the degree — not on which
// node of that type serves it — so instead of one binary per (request, node, degree) the model
// picks a degree and type per request and counts groups per node:
//   y[r,t,k] ∈ {0,1}   request r starts now on a k-group of type t
//   z[n,t,k] ∈ ℤ≥0     k-groups of type t formed on node n
//   max  Σ w[r,t,k]·y[r,t,k] − μ · Σ_{n,t} (free[n,t] − Σ_k k·z[n,t,k])
//   s.t. once[r]:          Σ_{t,k} y[r,t,k] ≤ 1
//        devices[n,t]:     Σ_k k·z[n,t,k] ≤ free[n,t]
//        groups[t,k]:      Σ_r y[r,t,k] = Σ_n z[n,t,k]
// Same optimum as the per-node model, a fraction of its size, and no node symmetry for the solver
// to wade through. Requests are then matched to the groups (most urgent first) and routed by
// Assign.materialise, exactly as greedy choices are. The greedy plan is the solver's MIP start, so a
// time-limited solve returns nothing worse than greedy; if the solver still does (or fails), the
// round falls back to greedy and says why.

open Trident.Scheduling
open Trident.Scheduling.Mip

/// Decision variables of the dispatch MIP.
type DispatchKey =
    | Y of request: RequestId * PlacementType * degree: int
    | Z of NodeId * PlacementType * degree: int

module DispatchMip =
    let private lpName =
        function
        | Y(RequestId r, t, k) -> sprintf "y_r%d_%A_k%d" r t k
        | Z(NodeId n, t, k) -> sprintf "z_n%d_%A_k%d" n t k

    /// The model for a round, over the given candidates (requests with their admissible options).
    let model (s: Snapshot) (free: Map<NodeId * PlacementType, int>) (candidates: (Request * DispatchOption list) list) =
        // group sizes each type can form somewhere this round
        let formable (t: PlacementType) (k: int) =
            free |> Map.exists (fun (_, t') n -> t' = t && n >= k)
        let options =
            candidates
            |> List.collect snd
            |> List.filter (fun o -> formable o.Type o.Degree)
        let groupKinds = options |> List.map (fun o -> o.Type, o.Degree) |> List.distinct
        let zs =
            [ for KeyValue((n, t), f) in free do
                  for (t', k) in groupKinds do
                      if t' = t && f >= k then yield (n, t, k), float (f / k) ]
        let totalFree = free |> Map.toSeq |> Seq.sumBy snd
        let objective =
            LinExpr.ofTerms (
                [ for o in options -> Y(o.Request.Id, o.Type, o.Degree), o.Reward ]
                @ [ for ((n, t, k), _) in zs -> Z(n, t, k), s.Settings.IdlePenalty * float k ]
            )
            - s.Settings.IdlePenalty * float totalFree
        let once =
            options
            |> List.groupBy (fun o -> o.Request.Id)
            |> List.map (fun (RequestId r, os) ->
                ConstraintName.create "once" [ "r", string r ],
                LinExpr.ofTerms [ for o in os -> Y(o.Request.Id, o.Type, o.Degree), 1.0 ] <== 1.0)
        let devices =
            zs
            |> List.groupBy (fun ((n, t, _), _) -> n, t)
            |> List.map (fun ((NodeId n, t), group) ->
                ConstraintName.create "devices" [ "node", string n; "type", PlacementType.name t ],
                LinExpr.ofTerms [ for ((n, t, k), _) in group -> Z(n, t, k), float k ] <== float free.[(NodeId n, t)])
        let groups =
            groupKinds
            |> List.map (fun (t, k) ->
                ConstraintName.create "groups" [ "type", PlacementType.name t; "k", string k ],
                LinExpr.ofTerms (
                    [ for o in options do
                          if o.Type = t && o.Degree = k then yield Y(o.Request.Id, t, k), 1.0 ]
                    @ [ for ((n, t', k'), _) in zs do
                            if t' = t && k' = k then yield Z(n, t, k), -1.0 ]
                )
                === 0.0)
        Model.empty
        |> Model.withVarNames lpName
        |> Model.addVars [ for o in options -> Var.binary (Y(o.Request.Id, o.Type, o.Degree)) ]
        |> Model.addVars [ for ((n, t, k), hi) in zs -> Var.integer 0.0 hi (Z(n, t, k)) ]
        |> Model.addConstraints once
        |> Model.addConstraints devices
        |> Model.addConstraints groups
        |> Model.maximize "reward" objective

    /// The greedy choices as a complete MIP start: every variable of the model gets a value, so
    /// the solver's hint is a feasible solution as it stands.
    let startOf (model: Model<DispatchKey>) (choices: Choice list) : Map<DispatchKey, float> =
        let zeros = model.Variables |> Map.map (fun _ _ -> 0.0)
        let ys = choices |> List.map (fun c -> Y(c.Option.Request.Id, c.Option.Type, c.Option.Degree), 1.0)
        let zs =
            choices
            |> List.countBy (fun c -> Z(c.Node, c.Option.Type, c.Option.Degree))
            |> List.map (fun (z, n) -> z, float n)
        (ys @ zs) |> List.fold (fun m (k, v) -> Map.add k v m) zeros

    /// Matches the solution's requests to groups, most urgent request first. The solution's group
    /// counts per (type, degree) are kept; the groups are laid onto nodes best fit, largest first
    /// (the objective does not tell nodes of a type apart, so this only breaks the solver's ties
    /// in favour of leaving whole nodes free for large groups), or as the solver placed them when
    /// best fit cannot place them all. Values are rounded: a solver may return 0.9999999 for 1.
    let choicesOf (s: Snapshot) (candidates: (Request * DispatchOption list) list) (result: SolveResult<DispatchKey>) =
        let isOne key = result.TryValue key |> Option.exists (fun v -> round v = 1.0)
        let chosen =
            [ for (r, opts) in candidates do
                  match opts |> List.tryFind (fun o -> isOne (Y(r.Id, o.Type, o.Degree))) with
                  | Some o -> yield o
                  | None -> () ]
        let solverSlots =
            result.Values
            |> Map.toList
            |> List.choose (fun (key, _) ->
                match key with
                | Z(n, t, k) ->
                    let count = int (round (result.Value key))
                    if count > 0 then Some((t, k), List.replicate count n) else None
                | Y _ -> None)
            |> List.groupBy fst
            |> List.map (fun (tk, xs) -> tk, xs |> List.collect snd |> List.sortBy (fun (NodeId n) -> n))
            |> Map.ofList
        let slots =
            let groups = chosen |> List.map (fun o -> o.Type, o.Degree)
            match Greedy.packBestFit (Greedy.roundFree (Admissible.round s)) groups with
            | Some nodes ->
                List.zip groups nodes
                |> List.groupBy fst
                |> List.map (fun (tk, xs) -> tk, xs |> List.map snd)
                |> Map.ofList
            | None -> solverSlots
        let mutable slots = slots
        [ for o in chosen do
              match Map.tryFind (o.Type, o.Degree) slots with
              | Some(n :: rest) ->
                  slots <- slots |> Map.add (o.Type, o.Degree) rest
                  yield { Option = o; Node = n }
              | _ -> failwithf "dispatch MIP bug: no %d-group of %A left for %O" o.Degree o.Type o.Request.Id ]
