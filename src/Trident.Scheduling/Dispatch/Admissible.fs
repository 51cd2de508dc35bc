namespace Trident.Scheduling.Dispatching

// Design note. The pre-filter: which (request, primary type, degree) options a round may consider.
// An option is admissible when
//   * the type holds D and the cluster has devices of that type;
//   * k is allowed (settings ∩ profile), at least the rule-based minimum, fits in one node, and
//     the type's devices can hold the request at k (weights + peak activation ≤ memory);
//   * eff(k) ≥ θ, or k is the smallest degree that fits;
//   * when the type lacks E (or C), an ⟨E⟩ (⟨C⟩) device exists whose memory holds that stage — or the
//     placement has no ⟨E⟩ (⟨C⟩) device at all and the group's lead can load the stage beside its own
//     weights (CostModel.leadFits: a cluster too small for the auxiliary device, Capacity.fs "Small
//     clusters"); the lead then runs the encode before its diffuse (the decode after it), its load included.
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
    /// A growth degree must make a denoising step at least this much faster than every smaller
    /// allowed degree does (0.20: ≥ 20 % shorter — per doubling of the group, a relative efficiency of at least
    /// 1 / (2 · 0.8) = 0.625); below that a larger group only takes devices. Chosen by measurement (`trident evaluate`,
    /// 2026-12-03): at 0.10 flux 2048² grew to k = 8 (13 % shorter steps than at k = 4, for twice the devices over
    /// 38 s), and the 1024² requests arriving meanwhile found only groups of 4 — flux-reference's common-set P95 was
    /// 9.7 s (B1 at k = 4: 9.7 s); at 0.20 it is 7.0 s, with the other reference workloads unchanged.
    [<Literal>]
    let GrowthSpeedup = 0.20

    /// Whether `k` is admissible for this request on devices of type `t` with memory `memory`:
    /// k fits one node and the devices' memory, is at least the smallest degree that fits, and is
    /// either efficient (eff(k) ≥ θ, or k is that smallest degree) or a *growth degree* — its step
    /// is ≥ GrowthSpeedup shorter than at every smaller allowed degree. A growth degree is worth its
    /// devices only when they would otherwise idle: the objective's on-time reward per request
    /// (≥ LateRewardBase / 8, at priority −3) dwarfs what a larger degree adds (μ − δ per device and the latency term),
    /// so devices go to waiting requests first and only spare devices make degrees grow
    /// (docs/policies.md, "Dispatch objective").
    let degreeAdmissible (cost: CostModel) (t: PlacementType) (shape: Shape) (memory: float<GB>) (nodeSize: int) (k: int) =
        match CostModel.minDegree cost t shape memory with
        | None -> false
        | Some lo ->
            k <= nodeSize
            && k >= lo
            && CostModel.fits cost t shape k memory
            && (k = lo
                || CostModel.efficiency cost shape k >= cost.Settings.EfficiencyThreshold
                || (let step = CostModel.diffuseStep cost shape k
                    cost.Degrees
                    |> List.forall (fun k' -> k' < lo || k' >= k || step <= (1.0 - GrowthSpeedup) * CostModel.diffuseStep cost shape k')))

    /// The placement type of every device, indexed by device id (one pass over the placement's map:
    /// a lookup in that map per device per call cost milliseconds a round). Fails, as a map lookup
    /// would, when the placement leaves a device out.
    let typesOf (s: Snapshot) : PlacementType array =
        let types = Array.zeroCreate<PlacementType> s.Cluster.Devices.Length
        let seen = Array.zeroCreate<bool> s.Cluster.Devices.Length
        for KeyValue(d, t) in s.Placement.Types do
            if d.Value < types.Length then
                types.[d.Value] <- t
                seen.[d.Value] <- true
        for d in s.Cluster.Devices do
            if not seen.[d.Id.Value] then raise (System.Collections.Generic.KeyNotFoundException(sprintf "the placement has no type for device %O" d.Id))
        types

    /// Free devices (busy-until ≤ now) by node and primary type.
    let freeByNodeAndType (s: Snapshot) =
        let types = typesOf s
        s.Cluster.Devices
        |> Array.filter (fun d -> s.BusyUntil.[d.Id.Value] <= s.Now && PlacementType.isPrimary types.[d.Id.Value])
        |> Array.groupBy (fun d -> d.Node, types.[d.Id.Value])
        |> Array.map (fun (key, ds) -> key, ds |> Array.map _.Id |> List.ofArray)
        |> Map.ofArray

    /// The auxiliary devices of a type, with their memory.
    let auxDevices (s: Snapshot) (t: PlacementType) =
        let types = typesOf s
        s.Cluster.Devices |> Array.filter (fun d -> types.[d.Id.Value] = t)

    /// What a round computes once about the cluster, so that options cost no device scans.
    type Round =
        { Snapshot: Snapshot
          /// per primary type present: the smallest device memory and the largest group on one node
          Primary: Map<PlacementType, float<GB> * int>
          /// per auxiliary type: (memory, earliest free time, device) of each device, earliest first
          Aux: Map<PlacementType, (float<GB> * float<s> * DeviceId) array>
          TRef: System.Collections.Generic.Dictionary<struct (Shape * int), float<s>>
          /// per (shape, steps, stages completed before a re-queue: 0 none, 1 encode, 2 encode and diffuse):
          /// the admissible (type, degree, VR, predicted finish) — the same for every request of that class
          /// within a round
          Routes: System.Collections.Generic.Dictionary<struct (Shape * int * int), (PlacementType * int * VrType * float<s>) list>
          /// per request: its admissible, undominated options — computed once per round (the
          /// reservation, the candidate cut and work conservation all ask for them)
          Options: System.Collections.Generic.Dictionary<RequestId, DispatchOption list>
          /// per request: its urgency key (−priority level, slack, arrival, id), computed once per round
          Urgency: System.Collections.Generic.Dictionary<RequestId, struct (int * float<s> * float<s> * int64)>
          /// the snapshot's queue in urgency order, once sorted (subsets of it are filtered from it)
          mutable Ordered: Request array option
          /// dispatches committed before the round to a larger group that frees soon (`Greedy.round`,
          /// docs/policies.md, "Waiting for a larger group"): their requests are not in the snapshot's
          /// queue and their devices' busy-until already counts them; every plan of the round appends them
          Held: Dispatch list }

    let round (s: Snapshot) : Round =
        let types = typesOf s
        let byType = s.Cluster.Devices |> Array.groupBy (fun d -> types.[d.Id.Value]) |> Map.ofArray
        { Snapshot = s
          Primary =
            byType
            |> Map.filter (fun t _ -> PlacementType.isPrimary t)
            |> Map.map (fun _ ds ->
                (ds |> Array.map _.Memory |> Array.min), (ds |> Array.countBy _.Node |> Array.map snd |> Array.max))
          Aux =
            byType
            |> Map.filter (fun t _ -> not (PlacementType.isPrimary t))
            |> Map.map (fun _ ds -> ds |> Array.map (fun d -> d.Memory, max s.Now s.BusyUntil.[d.Id.Value], d.Id) |> Array.sortBy (fun (_, free, _) -> free))
          TRef = System.Collections.Generic.Dictionary()
          Routes = System.Collections.Generic.Dictionary()
          Options = System.Collections.Generic.Dictionary()
          Urgency = System.Collections.Generic.Dictionary()
          Ordered = None
          Held = [] }

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
            |> Array.tryFind (fun (memory, _, _) -> CostModel.fits rd.Snapshot.Cost t shape 1 memory)
            |> Option.map (fun (_, free, _) -> free)

    /// Earliest finish of a decode of `duration` whose latents are ready at `ready` on a ⟨C⟩ device
    /// whose memory holds it: at max(free, ready), or in the earliest gap after that among the device's
    /// later bookings (Snapshot.Bookings) — as Assign.route books it. None when no ⟨C⟩ device holds it.
    let private earliestDecode (rd: Round) (shape: Shape) (ready: float<s>) (duration: float<s>) =
        match Map.tryFind C rd.Aux with
        | None -> None
        | Some devices ->
            let s = rd.Snapshot
            let mutable best = None
            for (memory, free, id) in devices do
                if CostModel.fits s.Cost C shape 1 memory then
                    let f = Snapshot.gapStart s id (max free ready) duration + duration
                    match best with
                    | Some b when b <= f -> ()
                    | _ -> best <- Some f
            best

    /// Whether a group of primary type `t` runs `stage`, one `t` lacks, on its lead, which loads it: the placement
    /// has no device of that auxiliary type (`auxPresent` false) and a lead with `memory` holds the stage beside t's
    /// weights (CostModel.leadFits). `Assign.route` runs it there; `predictFinish` predicts it so.
    let leadRunsWith (cost: CostModel) (auxPresent: bool) (t: PlacementType) (stage: Stage) (shape: Shape) (memory: float<GB>) =
        not auxPresent && CostModel.leadFits cost t stage shape memory

    /// The auxiliary type that runs `stage` for a primary type lacking it: ⟨E⟩ for encode, else ⟨C⟩.
    let auxiliaryFor (stage: Stage) = if stage = Encode then E else C

    /// `leadRunsWith` for the round's placement (a type's smallest device memory).
    let leadRuns (rd: Round) (t: PlacementType) (stage: Stage) (shape: Shape) =
        match Map.tryFind t rd.Primary with
        | Some(memory, _) -> leadRunsWith rd.Snapshot.Cost (rd.Aux.ContainsKey(auxiliaryFor stage)) t stage shape memory
        | None -> false

    /// The last stage the request completed before it was re-queued (Snapshot.Completed), if any.
    let completed (s: Snapshot) (r: Request) : Stage option = Map.tryFind r.Id s.Completed

    /// Whether the request still has to run this stage (it did not complete it before it was re-queued).
    let remains (s: Snapshot) (r: Request) (stage: Stage) =
        match completed s r, stage with
        | None, _ -> true
        | Some Encode, Encode -> false
        | Some Encode, _ -> true
        | Some Diffuse, Decode -> true
        | Some _, _ -> false

    /// Whether a device of primary type `t` with `memory` can run a decode alone (a request resumed at
    /// its decode): the type's resident weights plus the decode's activation at batch 1.
    let decodeFits (cost: CostModel) (t: PlacementType) (shape: Shape) (memory: float<GB>) =
        Profile.weightsOf cost.Profile t + CostModel.activation cost Decode shape 1 <= memory

    /// Predicted finish of request r on a group of type t and degree k started now, with the
    /// earliest-free auxiliary devices and intra-node transfers (or the lead's load and run of a stage
    /// `leadRuns`); a resumed request's completed stages take no time (their output is moved from the
    /// device that kept it: one transfer). None when no auxiliary can serve it.
    let predictFinish (rd: Round) (r: Request) (t: PlacementType) (k: int) =
        let s = rd.Snapshot
        let c = s.Cost
        let bw = s.Cluster.Bandwidths.IntraNode
        let latents = CostModel.latentBytes c r.Shape
        let load stage = CostModel.loadTime c s.Cluster.Bandwidths.HostToDevice stage
        let decodeAfter (df: float<s>) =
            if PlacementType.holds Decode t then Some(df + CostModel.decodeTime c r.Shape)
            elif leadRuns rd t Decode r.Shape then Some(df + load Decode + CostModel.decodeTime c r.Shape)
            else earliestDecode rd r.Shape (df + latents / bw) (CostModel.decodeTime c r.Shape)
        match completed s r with
        | Some Diffuse -> decodeAfter (s.Now + latents / bw)
        | Some Encode -> decodeAfter (s.Now + CostModel.embeddingBytes c / bw + CostModel.diffuseTime c r.Shape r.Steps k)
        | _ ->
            let diffuseStart =
                if PlacementType.holds Encode t then Some(s.Now + CostModel.encodeTime c r.Shape)
                elif leadRuns rd t Encode r.Shape then Some(s.Now + load Encode + CostModel.encodeTime c r.Shape)
                else
                    earliestAux rd E r.Shape
                    |> Option.map (fun free -> max s.Now (free + CostModel.encodeTime c r.Shape + CostModel.embeddingBytes c / bw))
            diffuseStart |> Option.bind (fun ds -> decodeAfter (ds + CostModel.diffuseTime c r.Shape r.Steps k))

    /// The admissible routes of a request class this round: (type, degree, VR, predicted finish).
    /// A request resumed after its diffuse (decode left) has degree-1 routes only, on the primary
    /// types that hold C and can run the decode (decodeFits) when there are any (its decode then runs
    /// on that one device, which gets no diffuse task), else on the primary types without C (its decode on a
    /// ⟨C⟩ device; the round counts that primary device as taken although it gets no task). A type
    /// holding C that can serve the request at all can run its decode alone (its peak covers the decode).
    let private routes (rd: Round) (r: Request) =
        let resumedAt = completed rd.Snapshot r
        let key = struct (r.Shape, r.Steps, (match resumedAt with None -> 0 | Some Encode -> 1 | Some _ -> 2))
        match rd.Routes.TryGetValue key with
        | true, v -> v
        | _ ->
            let s = rd.Snapshot
            let v =
                match resumedAt with
                | Some Diffuse ->
                    let withC = rd.Primary |> Map.filter (fun t (memory, _) -> PlacementType.holds Decode t && decodeFits s.Cost t r.Shape memory)
                    let withoutC = rd.Primary |> Map.filter (fun t _ -> not (PlacementType.holds Decode t))
                    [ for KeyValue(t, _) in (if withC.IsEmpty then withoutC else withC) do
                          match predictFinish rd r t 1 with
                          | Some f -> yield t, 1, (VrType.ofPrimary t).Value, f
                          | None -> () ]
                | _ ->
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
        // options come in ascending degree per type (as `routes` yields them): sort only when they do
        // not — a sort per request was a tenth of a 512 × 1000 round (dotnet-trace, 2026-12-01)
        let ascending (os: DispatchOption list) = os |> List.pairwise |> List.forall (fun (a, b) -> a.Degree < b.Degree)
        let grouped = options |> List.groupBy _.Type |> List.map (fun (_, os) -> if ascending os then os else List.sortBy _.Degree os)
        grouped
        |> List.collect (fun os ->
            os
            |> List.fold
                (fun (kept, best) o ->
                    let v = o.Reward + mu * float o.Degree
                    if v > best then o :: kept, v else kept, best)
                ([], -infinity)
            |> fst
            |> List.rev)

    /// b: ω(priority) times the on-time reward of a request finishing on time, else times its ageing late
    /// reward min(B_on − 1, ⌊B_late · (1 + lateness / t_ref)⌋), lateness = max(0, now + t_ref − deadline);
    /// ω = 2^priority (`Priority.weight`: 1 without a priority).
    let baseReward (rd: Round) (r: Request) (onTime: bool) =
        let s = rd.Snapshot
        let b =
            if onTime then s.Settings.OnTimeReward
            else
                let tr = tRef rd r
                let lateness = max 0.0<s> (s.Now + tr - r.Deadline)
                min (s.Settings.OnTimeReward - 1.0) (floor (s.Settings.LateRewardBase * (1.0 + lateness / tr)))
        Priority.weight r.Priority * b

    let private computeOptions (rd: Round) (r: Request) : DispatchOption list =
        let s = rd.Snapshot
        let rs = routes rd r
        // the latency term's scale: the slowest admissible finish of this request (docs/policies.md)
        let slowest = rs |> List.fold (fun acc (_, _, _, f) -> max acc (f - s.Now)) 0.0<s>
        [ for (t, k, vr, f) in rs do
              let onTime = f <= r.Deadline
              let b = baseReward rd r onTime
              let latency = if slowest > 0.0<s> then (f - s.Now) / slowest else 0.0
              let w =
                  b - s.Settings.CommunicationPenalty.[vr] - s.Settings.DevicePenalty * float k
                  - s.Settings.LatencyWeight * latency
              yield { Request = r; Type = t; Degree = k; Vr = vr; Finish = f; OnTime = onTime; Reward = w } ]
        |> undominated s.Settings.IdlePenalty

    /// The reward of request r as one member of a batch that finishes at `finish` on a group of VR type `vr`
    /// (Batching.options): w = b(finish ≤ deadline) − communication(vr) − λ · (finish − now) / (slowest
    /// admissible finish of r alone − now), the option reward of `options` without its device penalty δ·k,
    /// which the batch pays once for its group (DispatchMip). The latency share may exceed 1: a batch can
    /// finish after the slowest single option.
    let memberReward (rd: Round) (r: Request) (vr: VrType) (finish: float<s>) =
        let s = rd.Snapshot
        let slowest = routes rd r |> List.fold (fun acc (_, _, _, f) -> max acc (f - s.Now)) 0.0<s>
        let latency = if slowest > 0.0<s> then (finish - s.Now) / slowest else 0.0
        baseReward rd r (finish <= r.Deadline) - s.Settings.CommunicationPenalty.[vr] - s.Settings.LatencyWeight * latency

    /// Every admissible, undominated option for the request: types present in the cluster, degrees
    /// no larger than the type's largest group on one node (free devices are checked by the planner).
    /// Computed once per request and round (cached in the round; a request id names one request).
    let options (rd: Round) (r: Request) : DispatchOption list =
        match rd.Options.TryGetValue r.Id with
        | true, v -> v
        | _ ->
            let v = computeOptions rd r
            rd.Options.[r.Id] <- v
            v

    // a request's urgency key at `now`, given its t_ref: (−priority level, slack, arrival, id)
    let private urgencyKey (now: float<s>) (tRefOf: float<s>) (r: Request) =
        struct (-(Priority.level r.Priority), r.Deadline - now - tRefOf, r.Arrival, r.Id.Value)

    let private urgency (rd: Round) (r: Request) =
        match rd.Urgency.TryGetValue r.Id with
        | true, v -> v
        | _ ->
            let v = urgencyKey rd.Snapshot.Now (tRef rd r) r
            rd.Urgency.[r.Id] <- v
            v

    // the urgency keys' order: an explicit comparison (generic comparison of the key tuple boxes every field and made
    // the sort the largest cost of a round — 13 ms for 256 requests, measured under load)
    let private compareUrgency (struct (a1: int, b1: float<s>, c1: float<s>, d1: int64)) (struct (a2: int, b2: float<s>, c2: float<s>, d2: int64)) =
        let c = compare a1 a2
        if c <> 0 then c
        else
            let c = compare b1 b2
            if c <> 0 then c
            else
                let c = compare c1 c2
                if c <> 0 then c else compare d1 d2

    // requests sorted by their urgency keys; the key ends in the request id, a total order: an unstable sort gives the
    // stable one's result
    let private sortByUrgency (key: Request -> struct (int * float<s> * float<s> * int64)) (rs: Request list) =
        let keyed = rs |> List.map (fun r -> struct (key r, r)) |> Array.ofList
        System.Array.Sort(keyed, System.Comparison(fun (struct (a, _)) (struct (b, _)) -> compareUrgency a b))
        keyed |> Array.map (fun (struct (_, r)) -> r) |> List.ofArray

    /// `queue` in the order a dispatch round at `now` considers it (`byUrgency`: higher priority level first, then least
    /// slack deadline − now − t_ref, then arrival, then id) — what a waiting job's queue position counts (the live
    /// server's `queue_position`, 1 = considered first). The round itself may still start a later request first when
    /// the earlier ones' options are not free.
    let urgencyOrder (cost: CostModel) (now: float<s>) (queue: Request list) : Request list =
        let tRefs = System.Collections.Generic.Dictionary<struct (Shape * int), float<s>>()
        let tRefOf (r: Request) =
            let k = struct (r.Shape, r.Steps)
            match tRefs.TryGetValue k with
            | true, v -> v
            | _ ->
                let v = CostModel.tRef cost r.Shape r.Steps
                tRefs.[k] <- v
                v
        sortByUrgency (fun r -> urgencyKey now (tRefOf r) r) queue

    /// Urgency order: higher priority level first (`Priority.level`; absent = 0), then least slack
    /// (deadline − now − t_ref), then arrival, then id. Without priorities this is slack order.
    let byUrgency (rd: Round) (queue: Request list) =
        let sort = sortByUrgency (urgency rd)
        let ordered =
            match rd.Ordered with
            | Some o -> o
            | None ->
                let o = sort rd.Snapshot.Queue |> Array.ofList
                rd.Ordered <- Some o
                o
        if obj.ReferenceEquals(queue, rd.Snapshot.Queue) then List.ofArray ordered
        else
            // a part of the snapshot's queue (the usual case): filter the sorted queue, no new sort
            let wanted = System.Collections.Generic.HashSet<RequestId>()
            for r in queue do
                wanted.Add r.Id |> ignore
            let part = [ for r in ordered do if wanted.Contains r.Id then yield r ]
            // every request of the part came from the snapshot's queue (ids name requests)
            if part.Length = wanted.Count && wanted.Count = List.length queue then part else sort queue

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
        let routed = DispatchPlan.served plan |> Set.ofList
        [ for r in s.Queue do
              if not (routed.Contains r.Id) then
                  let rs = routes rd r
                  let reason =
                      if rs.IsEmpty then NoRoute
                      elif rs |> List.exists (fun (t, k, _, _) -> Map.tryFind t mostFree |> Option.exists (fun n -> n >= k)) then LostToMoreUrgent
                      else NoOptionFree
                  yield r.Id, reason ]
