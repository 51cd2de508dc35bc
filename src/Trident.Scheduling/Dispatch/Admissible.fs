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

    /// The reward of finishing at `finish` (before penalties), and whether it is on time.
    let baseReward (settings: DispatchSettings) (cost: CostModel) (now: float<s>) (r: Request) (finish: float<s>) =
        if finish <= r.Deadline then settings.OnTimeReward, true
        else
            let tRef = CostModel.tRef cost r.Shape r.Steps
            let lateness = max 0.0<s> (now + tRef - r.Deadline)
            let late = floor (settings.LateRewardBase * (1.0 + lateness / tRef))
            min (settings.OnTimeReward - 1.0) late, false

    /// The option's reward: base reward − communication penalty − device penalty · k.
    let reward (settings: DispatchSettings) (cost: CostModel) (now: float<s>) (r: Request) (vr: VrType) (k: int) (finish: float<s>) =
        let b, onTime = baseReward settings cost now r finish
        b - settings.CommunicationPenalty.[vr] - settings.DevicePenalty * float k, onTime

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

    /// Earliest time an auxiliary device of type `t` that can hold `stage` for this shape is free.
    let private earliestAux (s: Snapshot) (t: PlacementType) (stage: Stage) (shape: Shape) =
        auxDevices s t
        |> Array.filter (fun d -> CostModel.fits s.Cost t shape 1 d.Memory)
        |> Array.map (fun d -> max s.Now s.BusyUntil.[d.Id.Value])
        |> fun a -> if a.Length = 0 then None else Some(Array.min a)

    /// Predicted finish of request r on a group of type t and degree k started now, with the
    /// earliest-free auxiliary devices and intra-node transfers. None when no auxiliary can serve it.
    let predictFinish (s: Snapshot) (r: Request) (t: PlacementType) (k: int) =
        let c = s.Cost
        let bw = s.Cluster.Bandwidths.IntraNode
        let diffuseStart =
            if PlacementType.holds Encode t then Some(s.Now + CostModel.encodeTime c r.Shape)
            else
                earliestAux s E Encode r.Shape
                |> Option.map (fun free -> max s.Now (free + CostModel.encodeTime c r.Shape + CostModel.embeddingBytes c / bw))
        diffuseStart
        |> Option.bind (fun ds ->
            let df = ds + CostModel.diffuseTime c r.Shape r.Steps k
            if PlacementType.holds Decode t then Some(df + CostModel.decodeTime c r.Shape)
            else
                earliestAux s C Decode r.Shape
                |> Option.map (fun free -> max free (df + CostModel.latentBytes c r.Shape / bw) + CostModel.decodeTime c r.Shape))

    /// The most devices of type t on one node: the largest group that type can ever form.
    let largestGroup (s: Snapshot) (t: PlacementType) =
        s.Cluster.Devices
        |> Array.filter (fun d -> s.Placement.Types.[d.Id] = t)
        |> Array.countBy _.Node
        |> Array.fold (fun acc (_, n) -> max acc n) 0

    /// Every admissible option for the request: types present in the cluster, degrees no larger
    /// than the type's largest group on one node (free devices are checked by the planner).
    let options (s: Snapshot) (r: Request) : DispatchOption list =
        let memoryOf t =
            s.Cluster.Devices
            |> Array.filter (fun d -> s.Placement.Types.[d.Id] = t)
            |> Array.map _.Memory
            |> fun a -> if a.Length = 0 then None else Some(Array.min a)
        [ for t in PlacementType.primary do
              match memoryOf t, VrType.ofPrimary t with
              | Some memory, Some vr ->
                  let nodeSize = largestGroup s t
                  for k in s.Cost.Degrees do
                      if degreeAdmissible s.Cost t r.Shape memory nodeSize k then
                          match predictFinish s r t k with
                          | Some f ->
                              let w, onTime = reward s.Settings s.Cost s.Now r vr k f
                              yield { Request = r; Type = t; Degree = k; Vr = vr; Finish = f; OnTime = onTime; Reward = w }
                          | None -> ()
              | _ -> () ]

    /// Urgency order: least slack first (deadline − now − t_ref), then priority, then arrival, then id.
    let byUrgency (s: Snapshot) (queue: Request list) =
        queue
        |> List.sortBy (fun r ->
            r.Deadline - s.Now - CostModel.tRef s.Cost r.Shape r.Steps,
            -(defaultArg r.Priority 0),
            r.Arrival,
            r.Id.Value)
