namespace Trident.Scheduling

// Design note. Every serving policy the simulator compares is a value of one type, `Policy`: a
// placement (computed once, from the cluster, the cost model and the first requests' statistics),
// a dispatch function over the same Snapshot the live dispatcher sees, and, for Trident, the
// solver spacing and the Adjust-on-Dispatch settings. The names are `B1`…`B6` and `Trident`
// everywhere (docs/policies.md has one paragraph per policy).
//
// The baselines model the systems Trident is compared with, including what they do not know:
//   * they do not check memory — a pipeline-level baseline that co-locates all three stage models
//     on a device runs out of memory where the real system would, and the simulator reports it;
//   * pipeline-level (B1–B4): every device holds ⟨EDC⟩; a request runs its whole pipeline on a group
//     of k devices of one node, which it holds from the start of encode to the end of decode (every
//     rank runs the text encoder and the VAE, as xDiT does); groups are buddy-aligned blocks of k
//     devices, best fit (the node with the fewest free devices that has a free block);
//   * stage-level (B5, B6): a fixed manual split of the devices into ⟨E⟩, ⟨D⟩ and ⟨C⟩ (by default
//     the paper's light-load time shares encode:diffuse:decode = 10:63:27, ⟨D⟩ laid out first in
//     whole nodes); diffuse on a k-group of ⟨D⟩ devices, encode on the ⟨E⟩ device whose output would
//     reach the group first, decode on the ⟨C⟩ device that would finish it first;
//   * degree: fixed (B1); by resolution bucket (B2, B5): buckets are powers of 4 in megapixel-frames
//     and a bucket's degree is k* at its geometric centre; per request (B3, B4, B6): k*(shape).
//     Every policy, Trident included, respects the cost model's minimum degrees for large inputs
//     (the reference implementation's rules, CostSettings.MinDegreeRules): a degree below them is
//     raised to them — B1's "fixed" degree too, as the reference hardware would require; a degree
//     above the largest group of the policy's primary type on one node is lowered to the largest
//     allowed degree that fits it, and a request whose minimum degree exceeds that never runs: it is
//     unserved, as under Trident, and does not block the queue;
//   * order: strict FIFO (B1, B3: the head of the queue blocks the rest when its group is not free);
//     FIFO per bucket (B2, B5: the oldest request of each bucket may start, a bucket whose head does
//     not fit waits without blocking the others); SRTF (B4, B6: shortest t_ref first, a request
//     that does not fit is skipped). No policy preempts a running request.

open System.Collections.Concurrent
open Trident.Scheduling.Placement
open Trident.Scheduling.Dispatching

/// What a policy's placement is planned from.
type PolicyContext =
    { Cluster: Cluster
      Cost: CostModel
      /// the request statistics the initial placement is planned for
      Stats: WorkloadStats
      /// the placement solve's time limit
      PlacementTimeLimit: float<s> }

/// Whether a policy serves whole pipelines or stages.
type ServingLevel =
    | PipelineLevel
    | StageLevel

/// A serving policy: the same output types for every baseline and for Trident.
type Policy =
    {
      /// B1…B6 or Trident
      Name: string
      /// its parameters, for reports (e.g. "k=2")
      Params: string
      Level: ServingLevel
      /// the initial placement
      Place: PolicyContext -> PlacementPlan
      /// one full scheduling round
      Dispatch: Snapshot -> DispatchPlan
      /// a round without the solver: Some plan when it is as good as a full round, None when the
      /// full round is needed (None for policies that never use a solver)
      Quick: (Snapshot -> DispatchPlan option) option
      /// minimum time between two full rounds (0: a full round at every event)
      SolverSpacing: float<s>
      /// a round that needs the solver while the next full round is not due yet: a plan without
      /// the solver that still leaves no device idle that a waiting request can use (None: the
      /// round waits for the full round — no policy does that any more, it idles devices)
      Between: (Snapshot -> DispatchPlan) option
      /// Adjust-on-Dispatch, when the policy re-places
      Adjust: AdjustSettings option
      /// step-boundary preemption of running diffuse tasks (Dispatch/Preemption.fs), when the
      /// policy preempts
      Preempt: PreemptionSettings option }

/// How the queue is ordered and whether a request that does not fit blocks the others.
type QueueOrder =
    /// arrival order; the head blocks
    | Fifo
    /// arrival order within a resolution bucket; a bucket's head blocks only its bucket
    | FifoPerBucket
    /// shortest t_ref first; a request that does not fit is skipped
    | Srtf

/// How a baseline picks the degree.
type DegreeRule =
    | Fixed of int
    | ByBucket
    | PerRequest

/// The shares of devices a stage-level baseline gives to ⟨E⟩, ⟨D⟩ and ⟨C⟩ (relative weights).
type StageSplit = { Encode: float; Diffuse: float; Decode: float }

module StageSplit =
    /// The paper's light-load time shares, encode:diffuse:decode = 10:63:27 (design.md §1).
    let paperLightLoad = { Encode = 10.0; Diffuse = 63.0; Decode = 27.0 }

module Baselines =
    /// Trident with preemption: run when named (it is not part of "all").
    [<Literal>]
    let PreemptName = "Trident-preempt"

    // ---- degrees -------------------------------------------------------------------------------

    /// The resolution bucket of a shape: ⌈log₄ mpf⌉ (…, (0.25, 1], (1, 4], (4, 16], …).
    let bucketOf (shape: Shape) = int (ceil (log shape.Mpf / log 4.0 - 1e-9))

    /// The degree of a bucket: k* at the bucket's geometric centre (4^(b − 0.5) mpf), for images or videos.
    let bucketDegree (cost: CostModel) (bucket: int) (video: bool) =
        let pf = 4.0 ** (float bucket - 0.5) * 1e6
        let shape =
            if video then { Height = 1; Width = max 1 (int (round (pf / 2.0))); Frames = 2 }
            else { Height = 1; Width = max 1 (int (round pf)); Frames = 1 }
        CostModel.referenceDegree cost shape

    /// A degree rule as a memoised function of the shape (pure; the cache only saves work).
    let private degreeOf (cost: CostModel) (rule: DegreeRule) =
        let cache = ConcurrentDictionary<Shape, int>()
        fun (shape: Shape) ->
            cache.GetOrAdd(
                shape,
                fun sh ->
                    let k =
                        match rule with
                        | Fixed k -> k
                        | ByBucket -> bucketDegree cost (bucketOf sh) (sh.Frames > 1)
                        | PerRequest -> CostModel.referenceDegree cost sh
                    max k (CostModel.ruleMinDegree cost sh)
            )

    // ---- groups --------------------------------------------------------------------------------

    /// Free devices of a placement type, per node, in id order: (device, free) arrays.
    let private freeTable (s: Snapshot) (t: PlacementType) =
        s.Cluster.Devices
        |> Array.filter (fun d -> s.Placement.Types.[d.Id] = t)
        |> Array.groupBy _.Node
        |> Array.map (fun (n, ds) -> n, ds |> Array.map (fun d -> d.Id, s.BusyUntil.[d.Id.Value] <= s.Now))

    /// A buddy-aligned block of k free devices, best fit: the node with the fewest free devices
    /// that has one. Marks the block used and returns it.
    let private takeGroup (table: (NodeId * (DeviceId * bool) array) array) (k: int) =
        let mutable best = None
        for (n, devs) in table do
            let freeCount = devs |> Array.sumBy (fun (_, f) -> if f then 1 else 0)
            if freeCount >= k then
                let mutable i = 0
                let mutable found = -1
                while found < 0 && i + k <= devs.Length do
                    let mutable ok = true
                    for j in i .. i + k - 1 do
                        if not (snd devs.[j]) then ok <- false
                    if ok then found <- i
                    i <- i + k
                if found >= 0 then
                    match best with
                    | Some(_, _, c: int) when c <= freeCount -> ()
                    | _ -> best <- Some(devs, found, freeCount)
        best
        |> Option.map (fun (devs, i, _) ->
            for j in i .. i + k - 1 do
                devs.[j] <- (fst devs.[j], false)
            [ for j in i .. i + k - 1 -> fst devs.[j] ])

    // ---- one round -----------------------------------------------------------------------------

    /// The queue in the policy's order.
    let private ordered (s: Snapshot) (order: QueueOrder) (tRef: Request -> float<s>) =
        match order with
        | Fifo
        | FifoPerBucket -> s.Queue |> List.sortBy (fun r -> r.Arrival, r.Id.Value)
        | Srtf -> s.Queue |> List.sortBy (fun r -> tRef r, r.Arrival, r.Id.Value)

    /// One round of a baseline.
    let private round (name: string) (level: ServingLevel) (order: QueueOrder) (degree: Shape -> int) (tRefOf: Request -> float<s>) (s: Snapshot) : DispatchPlan =
        let c = s.Cost
        let nodeSize = s.Cluster.Devices |> Array.countBy _.Node |> Array.map snd |> Array.max
        let primary = if level = PipelineLevel then EDC else D
        let table = freeTable s primary
        // the largest group of the primary type on one node: a degree is capped there, and a request whose
        // minimum degree (the rules) exceeds it can never run — it stays unserved, neither run below its minimum
        // nor blocking the queue (Trident counts such requests unserved too)
        let groupMax = if table.Length = 0 then 0 else table |> Array.map (fun (_, ds) -> ds.Length) |> Array.max
        // the largest allowed degree a group of one node can have (0: none)
        let capDegree = c.Degrees |> List.filter (fun d -> d <= min nodeSize groupMax) |> List.fold max 0
        let degreeFor (shape: Shape) =
            let k = degree shape
            let k = if k <= capDegree then k else capDegree
            if k >= CostModel.ruleMinDegree c shape then k else 0
        let busy = Array.copy s.BusyUntil
        let aux t = s.Cluster.Devices |> Array.filter (fun d -> s.Placement.Types.[d.Id] = t) |> Array.map _.Id
        let auxE = if level = StageLevel then aux E else [||]
        let auxC = if level = StageLevel then aux PlacementType.C else [||]
        let blocked = System.Collections.Generic.HashSet<int * bool>()
        let mutable stop = false
        let mutable freeLeft = table |> Array.sumBy (fun (_, ds) -> ds |> Array.sumBy (fun (_, f) -> if f then 1 else 0))
        let xfer bytes a b = Cluster.transferTime s.Cluster bytes a b
        let dispatches =
            [ for r in ordered s order tRefOf do
                  let bucket = bucketOf r.Shape, r.Shape.Frames > 1
                  let k = degreeFor r.Shape
                  if not stop && freeLeft > 0 && not (order = FifoPerBucket && blocked.Contains bucket) && k >= 1 then
                      match takeGroup table k with
                      | None ->
                          match order with
                          | Fifo -> stop <- true
                          | FifoPerBucket -> blocked.Add bucket |> ignore
                          | Srtf -> ()
                      | Some group ->
                          freeLeft <- freeLeft - k
                          let lead = List.head group
                          let tE = CostModel.encodeTime c r.Shape
                          let tD = CostModel.diffuseTime c r.Shape r.Steps k
                          let tC = CostModel.decodeTime c r.Shape
                          let d =
                              match level with
                              | PipelineLevel ->
                                  let e = { Devices = group; Start = s.Now; Finish = s.Now + tE }
                                  let df = { Devices = group; Start = e.Finish; Finish = e.Finish + tD }
                                  let dc = { Devices = group; Start = df.Finish; Finish = df.Finish + tC }
                                  for g in group do
                                      busy.[g.Value] <- dc.Finish
                                  { Request = r.Id; Degree = k; Vr = V0; Encode = e; Diffuse = df; Decode = dc; OnTime = dc.Finish <= r.Deadline; Reward = 0.0 }
                              | StageLevel ->
                                  let emb = CostModel.embeddingBytes c
                                  let arrive (e: DeviceId) = max s.Now busy.[e.Value] + tE + xfer emb e lead
                                  // without an ⟨E⟩ device (a tiny cluster) encode runs on the lead, which loads it
                                  let eDev = if auxE.Length = 0 then lead else auxE |> Array.minBy (fun e -> arrive e, e.Value)
                                  let eStart = max s.Now busy.[eDev.Value]
                                  busy.[eDev.Value] <- eStart + tE
                                  let dStart = arrive eDev
                                  let dFinish = dStart + tD
                                  let lat = CostModel.latentBytes c r.Shape
                                  let ready (cd: DeviceId) = max busy.[cd.Value] (dFinish + xfer lat lead cd)
                                  let cDev = if auxC.Length = 0 then lead else auxC |> Array.minBy (fun cd -> ready cd, cd.Value)
                                  let cStart = ready cDev
                                  busy.[cDev.Value] <- cStart + tC
                                  for g in group do
                                      busy.[g.Value] <- dFinish
                                  { Request = r.Id
                                    Degree = k
                                    Vr = V3
                                    Encode = { Devices = [ eDev ]; Start = eStart; Finish = eStart + tE }
                                    Diffuse = { Devices = group; Start = dStart; Finish = dFinish }
                                    Decode = { Devices = [ cDev ]; Start = cStart; Finish = cStart + tC }
                                    OnTime = cStart + tC <= r.Deadline
                                    Reward = 0.0 }
                          yield d ]
        { Now = s.Now
          Dispatches = dispatches
          Objective = 0.0
          Source = Greedy(sprintf "%s baseline" name)
          Batched = Map.empty }

    // ---- placements ----------------------------------------------------------------------------

    /// Every device ⟨EDC⟩.
    let pipelinePlacement (ctx: PolicyContext) : PlacementPlan =
        let types = ctx.Cluster.Devices |> Array.map (fun d -> d.Id, EDC) |> Map.ofArray
        let capacity = Capacity.ofTypes (Capacity.stageWork ctx.Cost ctx.Stats) (Map.values types)
        let input = { Cluster = ctx.Cluster; Cost = ctx.Cost; Stats = ctx.Stats; Current = None; TimeLimit = ctx.PlacementTimeLimit }
        { Types = types
          Capacity = capacity
          Alpha = FlowCapacity.alphaFor input types
          Moves = 0
          Source = Greedy "pipeline-level: ⟨EDC⟩ on every device" }

    /// A fixed manual split into ⟨E⟩, ⟨D⟩ and ⟨C⟩ devices (⟨D⟩ first, in whole nodes).
    let splitPlacement (split: StageSplit) (ctx: PolicyContext) : PlacementPlan =
        let nodes = Cluster.nodes ctx.Cluster
        let sizes = nodes |> List.map (fun n -> (Cluster.devicesOf ctx.Cluster n).Length)
        let comps = Heuristic.vrCompositions { Encode = split.Encode; Diffuse = split.Diffuse; Decode = split.Decode } sizes V3
        let input =
            { Cluster = ctx.Cluster
              Cost = ctx.Cost
              Stats = ctx.Stats
              Current = None
              TimeLimit = ctx.PlacementTimeLimit }
        Heuristic.planOf input (Greedy(sprintf "fixed split E:D:C = %g:%g:%g" split.Encode split.Diffuse split.Decode)) (List.zip nodes comps |> Map.ofList)

    // ---- the policies --------------------------------------------------------------------------

    let private baseline name pars level place order rule =
        { Name = name
          Params = pars
          Level = level
          Place = place
          Dispatch =
            // the degree and t_ref caches live with the cost model of the first snapshot
            let cached: (CostModel * (Shape -> int) * (Request -> float<s>)) option ref = ref None
            fun (s: Snapshot) ->
                let degree, tRef =
                    match cached.Value with
                    | Some(c, d, t) when obj.ReferenceEquals(c, s.Cost) -> d, t
                    | _ ->
                        let d = degreeOf s.Cost rule
                        let cache = ConcurrentDictionary<struct (Shape * int), float<s>>()
                        let t (r: Request) = cache.GetOrAdd(struct (r.Shape, r.Steps), fun (struct (sh, st)) -> CostModel.tRef s.Cost sh st)
                        cached.Value <- Some(s.Cost, d, t)
                        d, t
                round name level order degree tRef s
          Quick = None
          SolverSpacing = 0.0<s>
          Between = None
          Adjust = None
          Preempt = None }

    /// B1: static pipeline-level — one fixed degree for every request (raised to the minimum-degree
    /// rules where they ask for more), FIFO.
    let b1 (k: int) = baseline "B1" (sprintf "k=%d" k) PipelineLevel pipelinePlacement Fifo (Fixed k)

    /// B2: bucketed pipeline-level — degree by resolution bucket, FIFO per bucket.
    let b2 = baseline "B2" "k by bucket" PipelineLevel pipelinePlacement FifoPerBucket ByBucket

    /// B3: dynamic pipeline-level — degree k* per request, FIFO.
    let b3 = baseline "B3" "k*, FIFO" PipelineLevel pipelinePlacement Fifo PerRequest

    /// B4: dynamic pipeline-level — degree k* per request, SRTF.
    let b4 = baseline "B4" "k*, SRTF" PipelineLevel pipelinePlacement Srtf PerRequest

    /// B5: bucketed stage-level — fixed split, degree by bucket, FIFO per bucket.
    let b5 (split: StageSplit) =
        baseline "B5" (sprintf "split %g:%g:%g, k by bucket" split.Encode split.Diffuse split.Decode) StageLevel (splitPlacement split) FifoPerBucket ByBucket

    /// B6: dynamic stage-level — fixed split, degree k* per request, SRTF.
    let b6 (split: StageSplit) =
        baseline "B6" (sprintf "split %g:%g:%g, k*, SRTF" split.Encode split.Diffuse split.Decode) StageLevel (splitPlacement split) Srtf PerRequest

    /// Trident: placement MIP (Orchestrator), dispatch MIP with greedy fallback (Dispatcher), and
    /// Adjust-on-Dispatch. Full rounds (the solver) at most every `roundPeriod` in the simulator,
    /// where a solve takes no simulated time; in between, a round runs without the solver: the
    /// greedy plan (provably optimal, or completed by work conservation, `Dispatcher.betweenSolves`),
    /// so no device waits for the next solve.
    let trident (roundPeriod: float<s>) (adjust: AdjustSettings option) =
        { Name = "Trident"
          Params =
            match adjust with
            | Some a -> sprintf "MIP placement+dispatch, AoD %g×" a.Threshold
            | None -> "MIP placement+dispatch, no AoD"
          Level = StageLevel
          Place =
            fun ctx ->
                Planner.place
                    { Cluster = ctx.Cluster
                      Cost = ctx.Cost
                      Stats = ctx.Stats
                      Current = None
                      TimeLimit = ctx.PlacementTimeLimit }
          Dispatch = fun s -> (Planner.plan s).Dispatch
          Quick = Some Dispatcher.greedyIfOptimal
          SolverSpacing = roundPeriod
          Between = Some Dispatcher.betweenSolves
          Adjust = adjust
          Preempt = None }

    /// Trident with step-boundary preemption (Dispatch/Preemption.fs, docs/policies.md
    /// "Preemption"): the same planners, and after each round the suspensions its objective gains by.
    let tridentPreempt (roundPeriod: float<s>) (adjust: AdjustSettings option) (preemption: PreemptionSettings) =
        let t = trident roundPeriod adjust
        { t with
            Name = PreemptName
            Params = sprintf "%s, preemption ≤ %d per request" t.Params preemption.MaxSuspensions
            Preempt = Some preemption }

    /// B1's default degree for a mix: the largest k* among its classes — a static deployment is
    /// sized so that its largest requests run at their efficient degree.
    let b1DefaultDegree (cost: CostModel) (shapes: Shape seq) =
        shapes |> Seq.map (CostModel.referenceDegree cost) |> Seq.fold max (List.head cost.Degrees)

    /// Every name, in report order.
    let names = [ "B1"; "B2"; "B3"; "B4"; "B5"; "B6"; "Trident" ]
