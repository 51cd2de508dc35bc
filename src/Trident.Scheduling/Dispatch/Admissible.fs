namespace Trident.Scheduling.Dispatching

// Design note. The pre-filter: which (request, primary type, degree) options a round may consider.
// An option is admissible when
//   * the type holds D and the cluster has devices of that type;
//   * k is allowed (settings ∩ profile), at least the rule-based minimum, fits in one node, and
//     the type's devices can hold the request at k (weights + peak activation ≤ memory);
//   * eff(k) ≥ θ, or k is the smallest degree that fits;
//   * when the type lacks E (or C), an ⟨E⟩ (⟨C⟩) device exists whose memory holds that stage.
// Its reward is a constant of the option (design.md §6): "on time" is decided with the predicted
// finish that uses the earliest-free auxiliary devices, so it needs no variable.

open Trident.Scheduling

/// One admissible way to start a request now.
type DispatchOption =
    { Request: Request
      Type: PlacementType
      Degree: int
      Vr: VrType
      /// predicted finish if started now (auxiliary devices at their earliest availability)
      Finish: float<s>
      OnTime: bool
      Reward: float }

/// Why a request is still waiting after a dispatch round (what the web view's queue shows).
type WaitReason =
    /// no primary type of the cluster can serve it at an admissible degree: it waits for a re-placement
    | NoRoute
    /// it has admissible options, but no node had enough free devices of any of their types when the round began
    | NoOptionFree
    /// a node had enough free devices for one of its admissible options when the round began; the plan gave
    /// them to more urgent requests (or held them for the round's reserved request)
    | LostToMoreUrgent

module WaitReason =
    /// One line for people.
    let describe =
        function
        | NoRoute -> "no route: no device type of the placement can serve it"
        | NoOptionFree -> "no admissible option free"
        | LostToMoreUrgent -> "lost to a more urgent one"

module Admissible =
    /// Whether `k` is admissible for this request on devices of type `t` with memory `memory`.
    let degreeAdmissible (cost: CostModel) (t: PlacementType) (shape: Shape) (memory: float<GB>) (nodeSize: int) (k: int) =
        match CostModel.minDegree cost t shape memory with
        | None -> false
        | Some lo ->
            k <= nodeSize
            && k >= lo
            && CostModel.fits cost t shape k memory
            && (k = lo || CostModel.efficiency cost shape k >= cost.Settings.EfficiencyThreshold)

    /// Free devices (busy-until ≤ now) by node and primary type.
    let freeByNodeAndType (s: Snapshot) =
        s.Cluster.Devices
        |> Array.filter (fun d -> s.BusyUntil.[d.Id.Value] <= s.Now && PlacementType.isPrimary s.Placement.Types.[d.Id])
        |> Array.groupBy (fun d -> d.Node, s.Placement.Types.[d.Id])
        |> Array.map (fun (key, ds) -> key, ds |> Array.map _.Id |> List.ofArray)
        |> Map.ofArray

    /// The auxiliary devices of a type, with their memory.
    let auxDevices (s: Snapshot) (t: PlacementType) =
        s.Cluster.Devices |> Array.filter (fun d -> s.Placement.Types.[d.Id] = t)

    /// What a round computes once about the cluster, so that options cost no device scans.
    type Round =
        { Snapshot: Snapshot
          /// per primary type present: the smallest device memory and the largest group on one node
          Primary: Map<PlacementType, float<GB> * int>
          /// per auxiliary type: (memory, earliest free time) of each device, earliest first
          Aux: Map<PlacementType, (float<GB> * float<s>) array>
          TRef: System.Collections.Generic.Dictionary<struct (Shape * int), float<s>>
          /// per (shape, steps): the admissible (type, degree, VR, predicted finish) — the same for
          /// every request of that class within a round
          Routes: System.Collections.Generic.Dictionary<struct (Shape * int), (PlacementType * int * VrType * float<s>) list> }

    let round (s: Snapshot) : Round =
        let byType = s.Cluster.Devices |> Array.groupBy (fun d -> s.Placement.Types.[d.Id]) |> Map.ofArray
        { Snapshot = s
          Primary =
            byType
            |> Map.filter (fun t _ -> PlacementType.isPrimary t)
            |> Map.map (fun _ ds ->
                (ds |> Array.map _.Memory |> Array.min), (ds |> Array.countBy _.Node |> Array.map snd |> Array.max))
          Aux =
            byType
            |> Map.filter (fun t _ -> not (PlacementType.isPrimary t))
            |> Map.map (fun _ ds -> ds |> Array.map (fun d -> d.Memory, max s.Now s.BusyUntil.[d.Id.Value]) |> Array.sortBy snd)
          TRef = System.Collections.Generic.Dictionary()
          Routes = System.Collections.Generic.Dictionary() }

    /// t_ref of a request's shape and steps, computed once per round.
    let tRef (rd: Round) (r: Request) =
        let key = struct (r.Shape, r.Steps)
        match rd.TRef.TryGetValue key with
        | true, v -> v
        | _ ->
            let v = CostModel.tRef rd.Snapshot.Cost r.Shape r.Steps
            rd.TRef.[key] <- v
            v

    /// Earliest time an auxiliary device of type `t` whose memory holds it for this shape is free.
    let private earliestAux (rd: Round) (t: PlacementType) (shape: Shape) =
        match Map.tryFind t rd.Aux with
        | None -> None
        | Some devices ->
            devices
            |> Array.tryFind (fun (memory, _) -> CostModel.fits rd.Snapshot.Cost t shape 1 memory)
            |> Option.map snd

    /// Predicted finish of request r on a group of type t and degree k started now, with the
    /// earliest-free auxiliary devices and intra-node transfers. None when no auxiliary can serve it.
    let predictFinish (rd: Round) (r: Request) (t: PlacementType) (k: int) =
        let s = rd.Snapshot
        let c = s.Cost
        let bw = s.Cluster.Bandwidths.IntraNode
        let diffuseStart =
            if PlacementType.holds Encode t then Some(s.Now + CostModel.encodeTime c r.Shape)
            else
                earliestAux rd E r.Shape
                |> Option.map (fun free -> max s.Now (free + CostModel.encodeTime c r.Shape + CostModel.embeddingBytes c / bw))
        diffuseStart
        |> Option.bind (fun ds ->
            let df = ds + CostModel.diffuseTime c r.Shape r.Steps k
            if PlacementType.holds Decode t then Some(df + CostModel.decodeTime c r.Shape)
            else
                earliestAux rd C r.Shape
                |> Option.map (fun free -> max free (df + CostModel.latentBytes c r.Shape / bw) + CostModel.decodeTime c r.Shape))

    /// The admissible routes of a request class this round: (type, degree, VR, predicted finish).
    let private routes (rd: Round) (r: Request) =
        let key = struct (r.Shape, r.Steps)
        match rd.Routes.TryGetValue key with
        | true, v -> v
        | _ ->
            let s = rd.Snapshot
            let v =
                [ for KeyValue(t, (memory, largest)) in rd.Primary do
                      let vr = (VrType.ofPrimary t).Value
                      for k in s.Cost.Degrees do
                          if degreeAdmissible s.Cost t r.Shape memory largest k then
                              match predictFinish rd r t k with
                              | Some f -> yield t, k, vr, f
                              | None -> () ]
            rd.Routes.[key] <- v
            v

    /// Drops dominated options: of two options of one type, the larger degree is never better
    /// when its value w + μ·k is not higher — it takes more devices from the same pool, the
    /// devices it saves are worth at most μ each (left idle), and wherever its group fits the
    /// smaller one fits too.
    let private undominated (mu: float) (options: DispatchOption list) =
        options
        |> List.groupBy _.Type
        |> List.collect (fun (_, os) ->
            os
            |> List.sortBy _.Degree
            |> List.fold
                (fun (kept, best) o ->
                    let v = o.Reward + mu * float o.Degree
                    if v > best then o :: kept, v else kept, best)
                ([], -infinity)
            |> fst
            |> List.rev)

    /// Every admissible, undominated option for the request: types present in the cluster, degrees
    /// no larger than the type's largest group on one node (free devices are checked by the planner).
    let options (rd: Round) (r: Request) : DispatchOption list =
        let s = rd.Snapshot
        let rs = routes rd r
        // the latency term's scale: the slowest admissible finish of this request (docs/policies.md)
        let slowest = rs |> List.fold (fun acc (_, _, _, f) -> max acc (f - s.Now)) 0.0<s>
        [ for (t, k, vr, f) in rs do
              let b, onTime =
                  if f <= r.Deadline then s.Settings.OnTimeReward, true
                  else
                      let tr = tRef rd r
                      let lateness = max 0.0<s> (s.Now + tr - r.Deadline)
                      min (s.Settings.OnTimeReward - 1.0) (floor (s.Settings.LateRewardBase * (1.0 + lateness / tr))), false
              let latency = if slowest > 0.0<s> then (f - s.Now) / slowest else 0.0
              let w =
                  b - s.Settings.CommunicationPenalty.[vr] - s.Settings.DevicePenalty * float k
                  - s.Settings.LatencyWeight * latency
              yield { Request = r; Type = t; Degree = k; Vr = vr; Finish = f; OnTime = onTime; Reward = w } ]
        |> undominated s.Settings.IdlePenalty

    /// Urgency order: least slack first (deadline − now − t_ref), then priority, then arrival, then id.
    let byUrgency (rd: Round) (queue: Request list) =
        let s = rd.Snapshot
        queue
        |> List.sortBy (fun r ->
            r.Deadline - s.Now - tRef rd r,
            -(defaultArg r.Priority 0),
            r.Arrival,
            r.Id.Value)

    /// Why each request of the snapshot's queue that `plan` does not route still waits: pure, from the
    /// round's own admissible routes and the devices free when it began (the planner's view, not a guess).
    let waitReasons (s: Snapshot) (plan: DispatchPlan) : (RequestId * WaitReason) list =
        let rd = round s
        // per primary type: the most free devices of it on one node
        let mostFree =
            freeByNodeAndType s
            |> Map.toList
            |> List.groupBy (fun ((_, t), _) -> t)
            |> List.map (fun (t, groups) -> t, groups |> List.map (fun (_, ds) -> List.length ds) |> List.max)
            |> Map.ofList
        let routed = plan.Dispatches |> List.map _.Request |> Set.ofList
        [ for r in s.Queue do
              if not (routed.Contains r.Id) then
                  let rs = routes rd r
                  let reason =
                      if rs.IsEmpty then NoRoute
                      elif rs |> List.exists (fun (t, k, _, _) -> Map.tryFind t mostFree |> Option.exists (fun n -> n >= k)) then LostToMoreUrgent
                      else NoOptionFree
                  yield r.Id, reason ]
