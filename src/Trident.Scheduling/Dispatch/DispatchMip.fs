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
// Batches (issue 12; DispatchSettings.MaxBatch > 1 and a profile with batch points). Requests of one
// batching group g — same pipeline, shape and steps (Batching.key) — may run as one batch of b on one
// k-group: a batch is one option with its own cost (Batching.options: each member finishes at the option's
// finish plus the batch's extra stage time and is rewarded for that finish; the group pays δ·k once):
//   x[c,t,k,b] ∈ {0..|c|}  requests of class c run as members of b-batches on k-groups of type t
//   G[g,t,k,b] ∈ ℤ≥0       such batches of group g
//   batch[g,t,k,b]:  Σ_{c ∈ g} x[c,t,k,b] = b · G[g,t,k,b]      once[c]: Σ y[c,·] + Σ x[c,·] ≤ |c|
// G counts as one k-group wherever y does (capacity, groups) and earns (μ − δ)·k in the objective as y's
// devices do; x earns the member's reward. b runs from 2 to the batch limit (Batching.limit); sizes larger
// than the group's candidates are left out. The greedy start has no batch (x = G = 0 is feasible).
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
    /// requests of the class whose most urgent member is `request` run as members of batches of `size`
    | X of request: RequestId * PlacementType * degree: int * size: int
    /// batches of `size` of the batching group named by `request` (Class.Group)
    | G of request: RequestId * PlacementType * degree: int * size: int

/// Interchangeable candidates of a round: same options, batch options and batching group.
type Class =
    {
      /// most urgent first
      Members: Request list
      /// the first member's options
      Options: DispatchOption list
      /// the first member's batch options (Batching.options); empty: it runs alone
      Batches: BatchOption list
      /// its batching group (same pipeline, shape and steps) named by the group's first batchable candidate; None without batch options
      Group: RequestId option }

module DispatchMip =
    let private lpName =
        function
        | Y(RequestId r, t, k) -> sprintf "y_r%d_%A_k%d" r t k
        | Z(NodeId n, t, k) -> sprintf "z_n%d_%A_k%d" n t k
        | X(RequestId r, t, k, b) -> sprintf "x_r%d_%A_k%d_b%d" r t k b
        | G(RequestId r, t, k, b) -> sprintf "g_r%d_%A_k%d_b%d" r t k b

    /// The classes of interchangeable candidates, in candidate order. Requests are interchangeable when
    /// their options agree on type, degree and reward, their batch options (`batchOf`) on type, degree,
    /// size and reward, and they are in one batching group (Batching.key) when they have batch options.
    let classesWith (batchOf: Request -> DispatchOption list -> BatchOption list) (candidates: (Request * DispatchOption list) list) : Class list =
        // (type, degree, batch size (1: alone), reward) per option, and the batching group (−1: none); a
        // hand-written comparer: structural hashing of the option tuples was a measurable part of a
        // 1000-request round
        let comparer =
            { new System.Collections.Generic.IEqualityComparer<struct (int64 * struct (PlacementType * int * int * float) array)> with
                member _.Equals(struct (g1, a), struct (g2, b)) =
                    g1 = g2
                    && a.Length = b.Length
                    && Array.forall2
                        (fun (struct (t1: PlacementType, k1: int, b1: int, w1: float)) (struct (t2, k2, b2, w2)) -> k1 = k2 && b1 = b2 && w1 = w2 && t1 = t2)
                        a b
                member _.GetHashCode(struct (g, a)) =
                    let mutable h = System.HashCode.Combine(a.Length, g)
                    for struct (t, k, b, w) in a do
                        h <- System.HashCode.Combine(h, t.GetHashCode(), k, b, w.GetHashCode())
                    h }
        let groups = System.Collections.Generic.Dictionary<ModelName * Shape * int, RequestId>()
        let order = System.Collections.Generic.Dictionary<struct (int64 * struct (PlacementType * int * int * float) array), int>(comparer)
        let members = System.Collections.Generic.List<Class>()
        for (r, opts) in candidates do
            let batches = batchOf r opts
            let group =
                if batches.IsEmpty then None
                else
                    let k = Batching.key r
                    match groups.TryGetValue k with
                    | true, g -> Some g
                    | _ ->
                        groups.[k] <- r.Id
                        Some r.Id
            let signature =
                Array.append
                    [| for o in opts -> struct (o.Type, o.Degree, 1, o.Reward) |]
                    [| for b in batches -> struct (b.Option.Type, b.Option.Degree, b.Size, b.Reward) |]
            let key = struct ((match group with Some(RequestId g) -> g | None -> -1L), signature)
            match order.TryGetValue key with
            | true, i -> members.[i] <- { members.[i] with Members = r :: members.[i].Members }
            | _ ->
                order.[key] <- members.Count
                members.Add { Members = [ r ]; Options = opts; Batches = batches; Group = group }
        [ for c in members -> { c with Members = List.rev c.Members } ]

    /// The classes of a round's candidates, with their batch options (Batching.options; none when the
    /// round's DispatchSettings.MaxBatch ≤ 1).
    let classes (rd: Admissible.Round) (candidates: (Request * DispatchOption list) list) : Class list =
        classesWith (Batching.options rd) candidates

    /// Whether the degrees, sorted, each divide the next (the capacity form is exact then).
    let divisibleChain (degrees: int list) =
        degrees
        |> List.distinct
        |> List.sort
        |> List.pairwise
        |> List.forall (fun (a, b) -> b % a = 0)

    /// The batch kinds of a round: per (group, type, degree, size) whose k-groups can be formed and whose
    /// group has at least `size` candidates with that batch option, the classes with it.
    let private batchKinds (formable: PlacementType -> int -> bool) (cls: Class list) =
        [ for c in cls do
              match c.Group with
              | Some g ->
                  for b in c.Batches do
                      if formable b.Option.Type b.Option.Degree then yield (g, b.Option.Type, b.Option.Degree, b.Size), (c, b)
              | None -> () ]
        |> List.groupBy fst
        |> List.choose (fun ((g, t, k, b), xs) ->
            let population = xs |> List.sumBy (fun (_, (c, _)) -> c.Members.Length)
            if population >= b then Some((g, t, k, b), population, xs |> List.map snd) else None)

    /// The model for a round over the classes of its candidates (`classes`), in the capacity form
    /// when the degrees of every type form a divisible chain, else in the node form.
    let modelOf (s: Snapshot) (free: Map<NodeId * PlacementType, int>) (cls: Class list) =
        // group sizes each type can form somewhere this round
        let largest =
            free |> Map.toList |> List.groupBy (fun ((_, t), _) -> t) |> List.map (fun (t, xs) -> t, xs |> List.map snd |> List.max) |> Map.ofList
        let formable (t: PlacementType) (k: int) = largest |> Map.tryFind t |> Option.exists (fun n -> n >= k)
        let head (c: Class) = (List.head c.Members).Id
        let options =
            [ for c in cls do
                  for o in c.Options do
                      if formable o.Type o.Degree then yield c, o ]
        let y (o: DispatchOption) = Y(o.Request.Id, o.Type, o.Degree)
        let kinds = batchKinds formable cls
        let x (c: Class) (b: BatchOption) = X(head c, b.Option.Type, b.Option.Degree, b.Size)
        let gOf (g, t, k, b) = G(g, t, k, b)
        let batchVars = [ for (_, _, xs) in kinds do for (c, b) in xs -> c, b ]
        let groupKinds =
            (options |> List.map (fun (_, o) -> o.Type, o.Degree)) @ [ for ((_, t, k, _), _, _) in kinds -> t, k ] |> List.distinct
        let byType = groupKinds |> List.groupBy fst |> List.map (fun (t, xs) -> t, xs |> List.map snd |> List.sort)
        let capacityForm = byType |> List.forall (fun (_, ks) -> divisibleChain ks)
        let mu = s.Settings.IdlePenalty
        let delta = s.Settings.DevicePenalty
        let totalFree = free |> Map.toSeq |> Seq.sumBy snd
        let once =
            [ for c in cls do
                  let terms =
                      [ for o in c.Options do if formable o.Type o.Degree then yield y o, 1.0 ]
                      @ [ for (c', b) in batchVars do if obj.ReferenceEquals(c', c) then yield x c b, 1.0 ]
                  if not terms.IsEmpty then
                      let (RequestId r) = head c
                      yield ConstraintName.create "once" [ "r", string r ], LinExpr.ofTerms terms <== float c.Members.Length ]
        let batch =
            [ for ((RequestId g, t, k, b) as kind, _, xs) in kinds ->
                  ConstraintName.create "batch" [ "g", string g; "type", PlacementType.name t; "k", string k; "b", string b ],
                  LinExpr.ofTerms ((gOf kind, -float b) :: [ for (c, bo) in xs -> x c bo, 1.0 ]) === 0.0 ]
        let vars =
            [ for (c, o) in options -> Var.integer 0.0 (float c.Members.Length) (y o) ]
            @ [ for (c, b) in batchVars -> Var.integer 0.0 (float c.Members.Length) (x c b) ]
            @ [ for ((_, _, _, b) as kind, population, _) in kinds -> Var.integer 0.0 (float (population / b)) (gOf kind) ]
        let m =
            Model.empty
            |> Model.withVarNames lpName
            |> Model.addVars vars
            |> Model.addConstraints once
            |> Model.addConstraints batch
        let memberTerms = [ for (c, b) in batchVars -> x c b, b.Reward ]
        if capacityForm then
            // each group's devices count as k·y (k·G) in the objective (devices used are not left idle)
            let objective =
                LinExpr.ofTerms (
                    [ for (_, o) in options -> y o, o.Reward + mu * float o.Degree ]
                    @ memberTerms
                    @ [ for ((_, _, k, _) as kind, _, _) in kinds -> gOf kind, (mu - delta) * float k ]
                )
                - mu * float totalFree
            let capacity =
                [ for (t, ks) in byType do
                      for k in ks do
                          let cap = free |> Map.fold (fun acc (_, t') f -> if t' = t then acc + k * (f / k) else acc) 0
                          yield
                              ConstraintName.create "capacity" [ "type", PlacementType.name t; "k", string k ],
                              LinExpr.ofTerms (
                                  [ for (_, o) in options do if o.Type = t && o.Degree >= k then yield y o, float o.Degree ]
                                  @ [ for ((_, t', k', _) as kind, _, _) in kinds do if t' = t && k' >= k then yield gOf kind, float k' ]
                              )
                              <== float cap ]
            m |> Model.addConstraints capacity |> Model.maximize "reward" objective
        else
            let zs =
                [ for KeyValue((n, t), f) in free do
                      for (t', k) in groupKinds do
                          if t' = t && f >= k then yield (n, t, k), float (f / k) ]
            let objective =
                LinExpr.ofTerms (
                    [ for (_, o) in options -> y o, o.Reward ]
                    @ memberTerms
                    @ [ for ((_, _, k, _) as kind, _, _) in kinds -> gOf kind, -delta * float k ]
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
                        [ for (_, o) in options do
                              if o.Type = t && o.Degree = k then yield y o, 1.0 ]
                        @ [ for ((_, t', k', _) as kind, _, _) in kinds do if t' = t && k' = k then yield gOf kind, 1.0 ]
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
    let model (rd: Admissible.Round) (free: Map<NodeId * PlacementType, int>) (candidates: (Request * DispatchOption list) list) =
        modelOf rd.Snapshot free (classes rd candidates)

    /// The given choices as a complete MIP start: every variable of the model gets a value, so
    /// the solver's hint is a feasible solution as it stands (a choice leading a batch counts its members
    /// in their classes' x and one batch of its group).
    let startOf (model: Model<DispatchKey>) (cls: Class list) (choices: Choice list) : Map<DispatchKey, float> =
        let zeros = model.Variables |> Map.map (fun _ _ -> 0.0)
        let classOf = System.Collections.Generic.Dictionary<RequestId, Class>()
        for c in cls do
            for r in c.Members do
                classOf.[r.Id] <- c
        let headOf (r: RequestId) = (List.head classOf.[r].Members).Id
        let counts =
            [ for c in choices do
                  let o = c.Option
                  match c.Mates with
                  | [] -> yield Y(headOf o.Request.Id, o.Type, o.Degree)
                  | mates ->
                      let b = 1 + mates.Length
                      for r in o.Request :: mates do
                          yield X(headOf r.Id, o.Type, o.Degree, b)
                      match classOf.[o.Request.Id].Group with
                      | Some g -> yield G(g, o.Type, o.Degree, b)
                      | None -> ()
                  yield Z(c.Node, o.Type, o.Degree) ]
            |> List.countBy id
        counts |> List.fold (fun m (k, n) -> if Map.containsKey k m then Map.add k (float n) m else m) zeros

    /// Matches the solution's requests to groups, most urgent request first. Per class, its members
    /// (most urgent first) take the counted options alone, then the counted batch options; the members of
    /// each batch kind (group, type, degree, size) are then cut, most urgent first, into batches of that
    /// size, each led by its most urgent member (its choice's Reward is the batch's: the members' rewards
    /// − δ·k). The solution's group counts per (type, degree) are kept; the groups are laid onto nodes best
    /// fit, largest first (the objective does not tell nodes of a type apart, so this only breaks the
    /// solver's ties in favour of leaving whole nodes free for large groups), or as the solver placed them
    /// when best fit cannot place them all. Values are rounded: a solver may return 0.9999999 for 1.
    let choicesOf
        (s: Snapshot)
        (free: Map<NodeId * PlacementType, int>)
        (candidates: (Request * DispatchOption list) list)
        (cls: Class list)
        (result: SolveResult<DispatchKey>)
        =
        let count key = result.TryValue key |> Option.map (fun v -> int (round v)) |> Option.defaultValue 0
        let byId = System.Collections.Generic.Dictionary<RequestId, DispatchOption list>()
        for (r, opts) in candidates do
            byId.[r.Id] <- opts
        let ownOption (r: Request) (o: DispatchOption) = byId.[r.Id] |> List.find (fun o' -> o'.Type = o.Type && o'.Degree = o.Degree)
        // batch members by kind (group, type, degree, size), with their member rewards
        let members = System.Collections.Generic.Dictionary<RequestId * PlacementType * int * int, ResizeArray<Request * BatchOption>>()
        // per class, its requests (most urgent first) take the counted options in option order, then the
        // counted batch options; they are interchangeable, so which member gets which does not change the objective
        let alone =
            [ for c in cls do
                  let head = (List.head c.Members).Id
                  let slots = [ for o in c.Options do yield! List.replicate (count (Y(head, o.Type, o.Degree))) o ]
                  for (r, o) in List.zip (List.truncate slots.Length c.Members) (List.truncate c.Members.Length slots) do
                      yield ownOption r o
                  let mutable rest = List.skip (min slots.Length c.Members.Length) c.Members
                  match c.Group with
                  | Some g ->
                      for b in c.Batches do
                          let n = min rest.Length (count (X(head, b.Option.Type, b.Option.Degree, b.Size)))
                          if n > 0 then
                              let key = g, b.Option.Type, b.Option.Degree, b.Size
                              match members.TryGetValue key with
                              | true, _ -> ()
                              | _ -> members.[key] <- ResizeArray()
                              for r in List.take n rest do
                                  members.[key].Add((r, b))
                              rest <- List.skip n rest
                  | None -> () ]
        let batched =
            [ for KeyValue((_, _, _, size), xs) in members do
                  let ordered = xs |> Seq.sortBy (fun (r, _) -> r.Deadline, r.Arrival, r.Id.Value) |> List.ofSeq
                  for chunk in List.chunkBySize size ordered do
                      let lead, leadBatch = List.head chunk
                      let own = ownOption lead leadBatch.Option
                      match chunk with
                      | [ _ ] -> yield own, []
                      | _ ->
                          let reward = (chunk |> List.sumBy (fun (_, b) -> b.Reward)) - s.Settings.DevicePenalty * float own.Degree
                          yield { own with Reward = reward; Finish = leadBatch.Finish; OnTime = leadBatch.OnTime }, (List.tail chunk |> List.map fst) ]
        let chosen = (alone |> List.map (fun o -> o, [])) @ batched
        let solverSlots =
            result.Values
            |> Map.toList
            |> List.choose (fun (key, _) ->
                match key with
                | Z(n, t, k) ->
                    let count = int (round (result.Value key))
                    if count > 0 then Some((t, k), List.replicate count n) else None
                | _ -> None)
            |> List.groupBy fst
            |> List.map (fun (tk, xs) -> tk, xs |> List.collect snd |> List.sortBy (fun (NodeId n) -> n))
            |> Map.ofList
        let slots =
            let groups = chosen |> List.map (fun (o, _) -> o.Type, o.Degree)
            match Greedy.packBestFit free groups with
            | Some nodes ->
                List.zip groups nodes
                |> List.groupBy fst
                |> List.map (fun (tk, xs) -> tk, xs |> List.map snd)
                |> Map.ofList
            | None -> solverSlots
        let mutable slots = slots
        [ for (o, mates) in chosen do
              match Map.tryFind (o.Type, o.Degree) slots with
              | Some(n :: rest) ->
                  slots <- slots |> Map.add (o.Type, o.Degree) rest
                  yield { Option = o; Node = n; Mates = mates }
              | _ -> failwithf "dispatch MIP bug: no %d-group of %A left for %O" o.Degree o.Type o.Request.Id ]
