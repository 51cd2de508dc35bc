namespace Trident.Scheduling.Dispatching

// Design note. The dispatch MIP in its aggregated form (design.md §6, "Formulating for speed").
// The reward of an option depends on the request, the primary type and the degree — not on which
// node of that type serves it — so instead of one binary per (request, node, degree) the model
// picks a degree and type per request class and counts groups. A class is the requests of the
// round with the same options and the same reward vector (same shape and steps, and the same
// on-time status and ageing reward per option): they are interchangeable, so one integer counts how
// many of them take each option — no symmetric copies of equal requests for the solver to prove
// optimality among (issue 11):
//   y[c,t,k] ∈ {0..|c|}  requests of class c started now on a k-group of type t
//   max  Σ w[c,t,k]·y[c,t,k] − μ · (free − Σ k·y[c,t,k])
//   s.t. once[c]:          Σ_{t,k} y[c,t,k] ≤ |c|
// and the groups must fit the free devices of each type, node by node. Two encodings of that:
//
// Capacity form (the default: every degree of a type divides the next larger one, as {1,2,4,8}).
// Groups whose sizes divide one another pack into nodes exactly when, for every degree k,
//   capacity[t,k]:  Σ_{k' ≥ k} k'·Σ_c y[c,t,k']  ≤  Σ_n k·⌊free[n,t] / k⌋
// Necessary: on node n the groups of size ≥ k are multiples of k, so they use at most k·⌊free/k⌋ of
// its devices. Sufficient: place groups largest first, each on any node with that many free
// devices left (best fit, `Greedy.packBestFit`): when the k-groups are placed, each node's devices
// taken so far are a multiple of k, so it has (k·⌊free/k⌋ − taken)/k free k-slots, and these sum over
// the nodes to (C_k − Σ_{k' > k} k'·groups)/k ≥ the k-groups' count; each placement uses one slot of
// a node that has one, so placement never gets stuck (the classic result for divisible item sizes:
// Coffman, Garey, Johnson, "Bin packing with divisible item sizes", J. Complexity 3, 1987). So the
// form has the per-node model's optimum with no node variables at all — no symmetric copies of equal
// nodes either — and the node of each group is chosen after the solve.
//
// Node form (any other degree set): z[n,t,k] ∈ ℤ≥0 k-groups of type t on node n,
//   devices[n,t]:  Σ_k k·z[n,t,k] ≤ free[n,t]        groups[t,k]:  Σ_c y[c,t,k] = Σ_n z[n,t,k]
//
// A class is named by its most urgent request (y_r… in LP text). Requests are then matched to the
// groups (most urgent first) and routed by Assign.materialise, exactly as greedy choices are. The
// greedy plan is the solver's MIP start, so a time-limited solve returns nothing worse than greedy;
// if the solver still does (or fails), the round falls back to greedy and says why.

open Trident.Scheduling
open Trident.Scheduling.Mip

/// Decision variables of the dispatch MIP.
type DispatchKey =
    /// requests of the class whose most urgent member is `request`
    | Y of request: RequestId * PlacementType * degree: int
    | Z of NodeId * PlacementType * degree: int

module DispatchMip =
    let private lpName =
        function
        | Y(RequestId r, t, k) -> sprintf "y_r%d_%A_k%d" r t k
        | Z(NodeId n, t, k) -> sprintf "z_n%d_%A_k%d" n t k

    /// The classes of interchangeable candidates, in candidate order: (the class's requests, most
    /// urgent first; the options of its first request). Requests are interchangeable when their
    /// options agree on type, degree and reward.
    let classes (candidates: (Request * DispatchOption list) list) : (Request list * DispatchOption list) list =
        // options agree on type, degree and reward (a hand-written comparer: structural hashing of
        // the option tuples was a measurable part of a 1000-request round)
        let signature (opts: DispatchOption list) = opts |> List.map (fun o -> struct (o.Type, o.Degree, o.Reward)) |> Array.ofList
        let comparer =
            { new System.Collections.Generic.IEqualityComparer<struct (PlacementType * int * float) array> with
                member _.Equals(a, b) =
                    a.Length = b.Length
                    && Array.forall2 (fun (struct (t1: PlacementType, k1: int, w1: float)) (struct (t2, k2, w2)) -> k1 = k2 && w1 = w2 && t1 = t2) a b
                member _.GetHashCode a =
                    let mutable h = a.Length
                    for struct (t, k, w) in a do
                        h <- System.HashCode.Combine(h, t.GetHashCode(), k, w.GetHashCode())
                    h }
        let order = System.Collections.Generic.Dictionary<struct (PlacementType * int * float) array, int>(comparer)
        let members = System.Collections.Generic.List<Request list * DispatchOption list>()
        for (r, opts) in candidates do
            let key = signature opts
            match order.TryGetValue key with
            | true, i ->
                let rs, o = members.[i]
                members.[i] <- (r :: rs, o)
            | _ ->
                order.[key] <- members.Count
                members.Add(([ r ], opts))
        [ for (rs, opts) in members -> List.rev rs, opts ]

    /// Whether the degrees, sorted, each divide the next (the capacity form is exact then).
    let divisibleChain (degrees: int list) =
        degrees
        |> List.distinct
        |> List.sort
        |> List.pairwise
        |> List.forall (fun (a, b) -> b % a = 0)

    /// The model for a round over the classes of its candidates (`classes`), in the capacity form
    /// when the degrees of every type form a divisible chain, else in the node form.
    let modelOf (s: Snapshot) (free: Map<NodeId * PlacementType, int>) (cls: (Request list * DispatchOption list) list) =
        // group sizes each type can form somewhere this round
        let largest =
            free |> Map.toList |> List.groupBy (fun ((_, t), _) -> t) |> List.map (fun (t, xs) -> t, xs |> List.map snd |> List.max) |> Map.ofList
        let formable (t: PlacementType) (k: int) = largest |> Map.tryFind t |> Option.exists (fun n -> n >= k)
        let size = cls |> List.map (fun (rs, opts) -> (List.head opts).Request.Id, List.length rs) |> Map.ofList
        let options =
            cls
            |> List.collect snd
            |> List.filter (fun o -> formable o.Type o.Degree)
        let y (o: DispatchOption) = Y(o.Request.Id, o.Type, o.Degree)
        let groupKinds = options |> List.map (fun o -> o.Type, o.Degree) |> List.distinct
        let byType = groupKinds |> List.groupBy fst |> List.map (fun (t, xs) -> t, xs |> List.map snd |> List.sort)
        let capacityForm = byType |> List.forall (fun (_, ks) -> divisibleChain ks)
        let mu = s.Settings.IdlePenalty
        let totalFree = free |> Map.toSeq |> Seq.sumBy snd
        let once =
            options
            |> List.groupBy (fun o -> o.Request.Id)
            |> List.map (fun (RequestId r, os) ->
                ConstraintName.create "once" [ "r", string r ],
                LinExpr.ofTerms [ for o in os -> y o, 1.0 ] <== float size.[RequestId r])
        let ys = [ for o in options -> Var.integer 0.0 (float size.[o.Request.Id]) (y o) ]
        let m =
            Model.empty
            |> Model.withVarNames lpName
            |> Model.addVars ys
            |> Model.addConstraints once
        if capacityForm then
            // each group's devices count as k·y in the objective (devices used are not left idle)
            let objective =
                LinExpr.ofTerms [ for o in options -> y o, o.Reward + mu * float o.Degree ] - mu * float totalFree
            let capacity =
                [ for (t, ks) in byType do
                      for k in ks do
                          let cap = free |> Map.fold (fun acc (_, t') f -> if t' = t then acc + k * (f / k) else acc) 0
                          yield
                              ConstraintName.create "capacity" [ "type", PlacementType.name t; "k", string k ],
                              LinExpr.ofTerms [ for o in options do if o.Type = t && o.Degree >= k then yield y o, float o.Degree ]
                              <== float cap ]
            m |> Model.addConstraints capacity |> Model.maximize "reward" objective
        else
            let zs =
                [ for KeyValue((n, t), f) in free do
                      for (t', k) in groupKinds do
                          if t' = t && f >= k then yield (n, t, k), float (f / k) ]
            let objective =
                LinExpr.ofTerms (
                    [ for o in options -> y o, o.Reward ]
                    @ [ for ((n, t, k), _) in zs -> Z(n, t, k), mu * float k ]
                )
                - mu * float totalFree
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
                              if o.Type = t && o.Degree = k then yield y o, 1.0 ]
                        @ [ for ((n, t', k'), _) in zs do
                                if t' = t && k' = k then yield Z(n, t, k), -1.0 ]
                    )
                    === 0.0)
            m
            |> Model.addVars [ for ((n, t, k), hi) in zs -> Var.integer 0.0 hi (Z(n, t, k)) ]
            |> Model.addConstraints devices
            |> Model.addConstraints groups
            |> Model.maximize "reward" objective

    /// The model for a round, over the given candidates (requests with their admissible options).
    let model (s: Snapshot) (free: Map<NodeId * PlacementType, int>) (candidates: (Request * DispatchOption list) list) =
        modelOf s free (classes candidates)

    /// The greedy choices as a complete MIP start: every variable of the model gets a value, so
    /// the solver's hint is a feasible solution as it stands.
    let startOf (model: Model<DispatchKey>) (cls: (Request list * DispatchOption list) list) (choices: Choice list) : Map<DispatchKey, float> =
        let zeros = model.Variables |> Map.map (fun _ _ -> 0.0)
        let classOf = System.Collections.Generic.Dictionary<RequestId, RequestId>()
        for (rs, _) in cls do
            let head = (List.head rs).Id
            for r in rs do
                classOf.[r.Id] <- head
        let counts =
            [ for c in choices do
                  yield Y(classOf.[c.Option.Request.Id], c.Option.Type, c.Option.Degree)
                  yield Z(c.Node, c.Option.Type, c.Option.Degree) ]
            |> List.countBy id
        counts |> List.fold (fun m (k, n) -> if Map.containsKey k m then Map.add k (float n) m else m) zeros

    /// Matches the solution's requests to groups, most urgent request first. The solution's group
    /// counts per (type, degree) are kept; the groups are laid onto nodes best fit, largest first
    /// (the objective does not tell nodes of a type apart, so this only breaks the solver's ties
    /// in favour of leaving whole nodes free for large groups), or as the solver placed them when
    /// best fit cannot place them all. Values are rounded: a solver may return 0.9999999 for 1.
    let choicesOf
        (free: Map<NodeId * PlacementType, int>)
        (candidates: (Request * DispatchOption list) list)
        (cls: (Request list * DispatchOption list) list)
        (result: SolveResult<DispatchKey>)
        =
        let count key = result.TryValue key |> Option.map (fun v -> int (round v)) |> Option.defaultValue 0
        let byId = System.Collections.Generic.Dictionary<RequestId, DispatchOption list>()
        for (r, opts) in candidates do
            byId.[r.Id] <- opts
        // per class, its requests (most urgent first) take the counted options in option order;
        // they are interchangeable, so which member gets which option does not change the objective
        let chosen =
            [ for (rs, opts) in cls do
                  let head = (List.head rs).Id
                  let slots = [ for o in opts do yield! List.replicate (count (Y(head, o.Type, o.Degree))) o ]
                  for (r, o) in List.zip (List.truncate slots.Length rs) (List.truncate rs.Length slots) do
                      yield byId.[r.Id] |> List.find (fun o' -> o'.Type = o.Type && o'.Degree = o.Degree) ]
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
            match Greedy.packBestFit free groups with
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
