namespace Trident.Scheduling

// Design note. A discrete-event simulator that replays a trace against a simulated cluster with the
// same planners and the same cost model as the live server; only the clock and the executors are
// simulated. It is a pure function: (config, policy, requests) → records and summary.
//
// Events, in time order (ties in the order they were scheduled): arrivals, task ends (a stage of a
// request finishing on its devices, or failing), and deferred rounds. All events at one instant are
// applied first; then Adjust-on-Dispatch may re-place and a scheduling round may run:
//   * a round runs when requests wait, some primary device is free and something happened since
//     the last round (an arrival, a task end, a deferred round coming due). A round in between
//     would see the same snapshot but for the clock, so none is run.
//   * policies with a solver (Trident) first try the round without it (`Policy.Quick`: the greedy
//     plan when it provably reaches the optimum); when that is not enough the solver runs, at most
//     once per `SolverSpacing` (the round period, 0.5 s; a solve takes no simulated time here, the
//     live server solves back to back instead): a round that needs it sooner runs without it —
//     the greedy plan completed by work conservation (`Policy.Between`), so no device waits for
//     the solver — and the full round follows at the end of the spacing if requests still wait.
//
// Executors. Every device runs one task at a time. The stages of a dispatched request are enqueued
// at once, on the devices its plan names: encode, then diffuse on the k-group (a gang: it starts
// when all k devices are free and its input has arrived), then decode. A task queues behind the
// device's last task (FIFO) — except a one-device task that needs no model load, which takes the
// earliest idle gap after its input is ready, so a decode device does not idle behind a decode
// whose diffuse is still running (tasks already scheduled never move). Inputs move between devices as bytes / bandwidth (intra- or inter-node; nothing when
// the producing device is among the consumers). Because devices are FIFO and durations are known
// when a task is enqueued, the executor resolves each task's start and finish right away — exact,
// not an approximation — and schedules its end event. With `Jitter` > 0 the actual durations are
// the cost model's times scaled by a mean-one lognormal factor drawn from (seed, request, stage);
// planners then see estimated busy-until times (the plan's predictions), as a live monitor would.
//
// Memory and loading. Each device tracks its resident stage models, initially those of its
// placement type. A task of stage s on a device of (current) type t first drops the models t no
// longer holds and loads s if missing (weights / host-to-device bandwidth, the device occupied
// just before the task). If resident weights + the stage's activation exceed the device's memory,
// the task fails with an out-of-memory outcome at its start, the request's later stages are not
// run, and its devices are released.
//
// Outcomes. Every request ends in exactly one: on time, late, out of memory, or unserved (still
// waiting when nothing else can happen: no arrivals left, no work running).

open System.Collections.Generic
open Trident.Scheduling.Placement
open Trident.Scheduling.Dispatching

/// How a request ended.
type Outcome =
    | OnTime
    | Late
    /// a task did not fit its device: resident weights + activation > memory
    | OutOfMemory of stage: Stage * device: DeviceId * need: float<GB> * memory: float<GB>
    /// never dispatched: still waiting when the run ended
    | Unserved

module Outcome =
    let name =
        function
        | OnTime -> "on_time"
        | Late -> "late"
        | OutOfMemory _ -> "oom"
        | Unserved -> "unserved"

/// One stage of one request as it ran. Invariant: Start ≤ Finish; each device in `Loads` loaded
/// for that many seconds right before Start.
type TaskRecord =
    { Request: RequestId
      Stage: Stage
      Devices: DeviceId list
      Start: float<s>
      Finish: float<s>
      /// devices that loaded the stage's weights first, with the seconds it took
      Loads: (DeviceId * float<s>) list
      /// the task failed (out of memory) at Start; Finish = Start
      Failed: bool
      /// denoising steps this task ran (diffuse; a suspended diffuse task runs fewer than the
      /// request's steps, its resumption the rest); 0 for encode and decode
      Steps: int }

/// One request, from arrival to outcome.
type RequestRecord =
    { Request: Request
      /// when a round dispatched it
      Dispatched: float<s> option
      Degree: int option
      Vr: VrType option
      Encode: TaskRecord option
      /// the diffuse task that ran last (the one that finished the steps)
      Diffuse: TaskRecord option
      /// every diffuse task of the request in order: one, or one more per suspension (their steps
      /// add up to the request's steps when it completed)
      Segments: TaskRecord list
      /// times the request was suspended at a step boundary
      Suspensions: int
      /// times its decode paused at a tile boundary for an urgent decode (decode preemption); its
      /// decode ran as one task more per pause, `Decode` the last one
      DecodePauses: int
      Decode: TaskRecord option
      /// decode finish, or the time of the failure
      Finish: float<s> option
      Outcome: Outcome
      /// why a request never served was not (set when the run ends): no placement of the cluster can
      /// serve its shape, and what it would need (CostModel.unservableOn); None otherwise
      Unservable: string option }

    /// finish − arrival, for requests that completed
    member this.Latency =
        match this.Outcome, this.Finish with
        | (OnTime | Late), Some f -> Some(f - this.Request.Arrival)
        | _ -> None

/// One scheduling round.
type RoundRecord =
    { Time: float<s>
      Source: PlanSource
      /// the solver's round (false: a round without the solver)
      Full: bool
      Waiting: int
      Dispatched: int }

/// One re-placement.
type ReplacementRecord =
    { Time: float<s>
      Imbalance: float
      Moves: int
      Alpha: float
      Counts: Map<PlacementType, int> }

/// Simulator settings.
type SimConfig =
    { Cluster: Cluster
      Cost: CostModel
      Dispatch: DispatchSettings
      /// the initial placement is planned for the first this-many requests' statistics
      InitialSamples: int
      /// time limit of placement solves
      PlacementTimeLimit: float<s>
      /// relative standard deviation of actual stage durations (0: exactly the cost model's)
      Jitter: float
      Seed: uint64
      /// most requests per batch task (same-shape batching, Dispatching.Batching, up to the profile's best
      /// batch); 1: no batching
      MaxBatch: int }

module SimConfig =
    let create (cluster: Cluster) (cost: CostModel) =
        { Cluster = cluster
          Cost = cost
          Dispatch = DispatchSettings.defaults
          InitialSamples = 100
          PlacementTimeLimit = 5.0<s>
          Jitter = 0.0
          Seed = 0UL
          MaxBatch = 1 }

/// A run's summary. Latency statistics are over completed requests (on time or late); requests
/// that ran out of memory or were never served count as misses and are reported separately.
type Summary =
    { Policy: string
      Params: string
      Requests: int
      OnTime: int
      Late: int
      OutOfMemory: int
      Unserved: int
      /// on time / requests
      SloAttainment: float
      MeanLatency: float<s>
      P50Latency: float<s>
      P95Latency: float<s>
      P99Latency: float<s>
      /// busy device-seconds (running or loading) / (devices · span from the first arrival to the last event)
      Utilisation: float
      Replacements: int
      /// diffuse tasks suspended at a step boundary (preemption)
      Suspensions: int
      /// decodes paused at a tile boundary for an urgent decode (decode preemption)
      DecodePauses: int
      Loads: int
      LoadSeconds: float<s>
      Rounds: int
      /// rounds whose plan the solver made
      MipRounds: int
      /// rounds the solver was asked but greedy was used (time-out, failure, worse)
      FallbackRounds: int
      /// MipRounds / Rounds
      MipShare: float
      SolveP50: float<s>
      SolveP95: float<s>
      SolveMax: float<s>
      /// from the first arrival to the last event
      Span: float<s> }

type SimResult =
    { Policy: string
      Params: string
      InitialPlacement: PlacementPlan
      FinalPlacement: PlacementPlan
      /// in the order of the input requests
      Records: RequestRecord array
      /// every task, in the order it was enqueued
      Tasks: TaskRecord array
      Rounds: RoundRecord array
      Replacements: ReplacementRecord array
      /// Adjust-on-Dispatch evaluations whose trigger fired: time and decision
      Adjustments: (float<s> * AdjustDecision) array
      Summary: Summary }

type private Event =
    | Arrival of Request
    | TaskEnd of TaskRecord
    | Tick

module Simulator =
    /// Nearest-rank percentile of sorted values (NaN when empty).
    let percentile (sorted: float array) (q: float) =
        if sorted.Length = 0 then nan
        else
            let rank = int (ceil (q * float sorted.Length))
            sorted.[max 0 (min (sorted.Length - 1) (rank - 1))]

    /// A mean-one lognormal factor with relative standard deviation ≈ sigma, drawn from
    /// (seed, request, stage) only, so it does not depend on the order of events.
    let private jitterFactor (sigma: float) (seed: uint64) (RequestId r) (stage: Stage) =
        if sigma <= 0.0 then 1.0
        else
            let salt = match stage with Encode -> 1UL | Diffuse -> 2UL | Decode -> 3UL
            let rng = Rng.create (seed ^^^ (uint64 r * 0x9E3779B97F4A7C15UL) ^^^ (salt * 0xD1B54A32D192ED03UL))
            let u1, rng = Rng.uniform rng
            let u2, _ = Rng.uniform rng
            let z = sqrt (-2.0 * log (1.0 - u1)) * cos (2.0 * System.Math.PI * u2)
            let s2 = log (1.0 + sigma * sigma)
            exp (sqrt s2 * z - s2 / 2.0)

    let private summarise (config: SimConfig) (policy: Policy) (records: RequestRecord array) (tasks: TaskRecord array) (rounds: RoundRecord array) (replacements: int) (first: float<s>) (last: float<s>) =
        let count f = records |> Array.sumBy (fun r -> if f r.Outcome then 1 else 0)
        let lat = records |> Array.choose (fun r -> r.Latency |> Option.map float) |> Array.sort
        let pct q = percentile lat q * 1.0<s>
        let busy =
            tasks
            |> Array.sumBy (fun t ->
                float (t.Finish - t.Start) * float t.Devices.Length + (t.Loads |> List.sumBy (fun (_, l) -> float l)))
        let span = last - first
        let n = Cluster.deviceCount config.Cluster
        let mip = rounds |> Array.choose (fun r -> match r.Source with Mip st -> Some(float st.SolveTime) | _ -> None) |> Array.sort
        let fallback =
            rounds |> Array.sumBy (fun r -> match r.Source with Greedy reason when r.Full && (reason.StartsWith "solver") -> 1 | _ -> 0)
        let loads = tasks |> Array.sumBy (fun t -> t.Loads.Length)
        { Policy = policy.Name
          Params = policy.Params
          Requests = records.Length
          OnTime = count (fun o -> o = OnTime)
          Late = count (fun o -> o = Late)
          OutOfMemory = count (function OutOfMemory _ -> true | _ -> false)
          Unserved = count (fun o -> o = Unserved)
          SloAttainment = if records.Length = 0 then nan else float (count (fun o -> o = OnTime)) / float records.Length
          MeanLatency = (if lat.Length = 0 then nan else Array.average lat) * 1.0<s>
          P50Latency = pct 0.50
          P95Latency = pct 0.95
          P99Latency = pct 0.99
          Utilisation = if span > 0.0<s> then busy / (float n * float span) else 0.0
          Replacements = replacements
          Suspensions = records |> Array.sumBy _.Suspensions
          DecodePauses = records |> Array.sumBy _.DecodePauses
          Loads = loads
          LoadSeconds = tasks |> Array.sumBy (fun t -> t.Loads |> List.sumBy snd)
          Rounds = rounds.Length
          MipRounds = mip.Length
          FallbackRounds = fallback
          MipShare = if rounds.Length = 0 then 0.0 else float mip.Length / float rounds.Length
          SolveP50 = (if mip.Length = 0 then 0.0 else percentile mip 0.5) * 1.0<s>
          SolveP95 = (if mip.Length = 0 then 0.0 else percentile mip 0.95) * 1.0<s>
          SolveMax = (if mip.Length = 0 then 0.0 else Array.last mip) * 1.0<s>
          Span = span }

    /// The request statistics the initial placement is planned for: the first `n` requests.
    let initialStats (n: int) (requests: Request list) : WorkloadStats =
        let first = requests |> List.sortBy (fun r -> r.Arrival, r.Id.Value) |> List.truncate (max 1 n)
        match first with
        | [] -> { Classes = []; ArrivalRate = 0.0 }
        | _ ->
            let span = (List.last first).Arrival - (List.head first).Arrival
            let stats = WorkloadStats.ofRequests 1.0<s> first
            { stats with ArrivalRate = if span > 0.0<s> then float (first.Length - 1) / float span else 0.0 }

    /// Runs a policy over the requests (any order; ids must be distinct).
    let run (config: SimConfig) (policy: Policy) (requests: Request list) : SimResult =
        let cluster = config.Cluster
        let cost = config.Cost
        let n = Cluster.deviceCount cluster
        let requestsArr = requests |> Array.ofList
        let index = Dictionary<RequestId, int>()
        requestsArr
        |> Array.iteri (fun i r ->
            if index.ContainsKey r.Id then invalidArg (nameof requests) (sprintf "request id %O appears twice" r.Id)
            index.[r.Id] <- i)
        let ctx =
            { Cluster = cluster
              Cost = cost
              Stats =
                (match initialStats config.InitialSamples requests with
                 | st when st.Classes.IsEmpty ->
                     { Classes = [ { Shape = Shape.image 512 512; Steps = cost.Profile.DefaultSteps; Share = 1.0 } ]; ArrivalRate = 1.0 }
                 | st -> st)
              PlacementTimeLimit = config.PlacementTimeLimit }
        let initialPlacement = policy.Place ctx
        // the statistics the placement in force was planned for (Adjust-on-Dispatch's gate)
        let plannedFor = ref (Some ctx.Stats)
        let placement = ref initialPlacement
        let first = if requestsArr.Length = 0 then 0.0<s> else requestsArr |> Array.map _.Arrival |> Array.min
        // device state
        let actualFree = Array.create n first
        let estFree = Array.create n first
        let resident = Array.init n (fun i -> PlacementType.stages (PlacementPlan.typeOf initialPlacement (DeviceId i)))
        // request state
        let records: RequestRecord array =
            requestsArr
            |> Array.map (fun r ->
                { Request = r; Dispatched = None; Degree = None; Vr = None; Encode = None; Diffuse = None; Segments = []; Suspensions = 0; DecodePauses = 0; Decode = None; Finish = None; Outcome = Unserved; Unservable = None })
        let waiting = List<Request>()
        let tasks = List<TaskRecord>()
        let rounds = List<RoundRecord>()
        let replacements = List<ReplacementRecord>()
        let adjustments = List<float<s> * AdjustDecision>()
        let monitor =
            ref
            <| match policy.Adjust with
               | Some a -> Monitor.create a.Window a.MinSamples first
               | None -> Monitor.create 60.0<s> 0 first
        // events
        let events = PriorityQueue<Event, struct (float * int64)>()
        let seq = ref 0L
        let push (time: float<s>) e =
            events.Enqueue(e, struct (float time, seq.Value))
            seq.Value <- seq.Value + 1L
        for r in requestsArr |> Array.sortBy (fun r -> r.Arrival, r.Id.Value) do
            push r.Arrival (Arrival r)
        let mutable lastEvent = first
        let lastSolve = ref (-infinity * 1.0<s>)
        let tickAt = ref (infinity * 1.0<s>)
        let nextAdjust = ref first
        let spacing = policy.SolverSpacing

        let typeOf (d: DeviceId) = PlacementPlan.typeOf placement.Value d

        /// Runs one task: loads, memory check, FIFO start, jittered duration. Returns the record.
        // per device, its scheduled busy intervals (start, end) in time order, past ones pruned
        let intervals = Array.init n (fun _ -> List<struct (float * float)>())

        /// The earliest start ≥ `ready` at which a task of `duration` fits between the device's
        /// scheduled intervals.
        let earliestGap (d: DeviceId) (now: float<s>) (ready: float<s>) (duration: float<s>) =
            let xs = intervals.[d.Value]
            xs.RemoveAll(fun struct (_, e) -> e <= float now) |> ignore
            let mutable candidate = float ready
            for struct (a, e) in xs do
                if e > candidate && a < candidate + float duration then candidate <- e
            candidate * 1.0<s>

        let occupy (d: DeviceId) (a: float<s>) (b: float<s>) =
            let xs = intervals.[d.Value]
            let mutable i = xs.Count
            while i > 0 && (let struct (a', _) = xs.[i - 1] in a' > float a) do
                i <- i - 1
            xs.Insert(i, struct (float a, float b))
            actualFree.[d.Value] <- max actualFree.[d.Value] b

        /// Runs one task: loads, memory check, start, jittered duration. Returns the record. A task
        /// on one device that needs no load (nor drops a model) takes the earliest gap in that
        /// device's schedule after its input is ready — a decode device does not idle behind a
        /// decode whose diffuse is still running; every other task queues behind the device's last
        /// one (FIFO), so work planned under an old placement runs before the loads of a new one.
        let runTask (now: float<s>) (r: Request) (b: int) (stage: Stage) (devices: DeviceId list) (k: int) (inputReady: float<s>) =
            let prepared =
                devices
                |> List.map (fun d ->
                    let t = typeOf d
                    let res = resident.[d.Value]
                    let load = AdjustOnDispatch.loadTime cluster cost res stage
                    let after = AdjustOnDispatch.residentAfter t res stage
                    let weights = after |> Seq.sumBy (fun s -> (Profile.stage cost.Profile s).Weights)
                    // a batch of b holds b requests' activations (assumed linear in the batch)
                    let need = weights + float b * CostModel.activation cost stage r.Shape (if stage = Diffuse then k else 1)
                    d, load, after, need)
            let oom =
                prepared
                |> List.tryFind (fun (d, _, _, need) -> need > (Cluster.device cluster d).Memory)
            let nominal = CostModel.batchTime cost stage r.Shape r.Steps (if stage = Diffuse then k else 1) b
            let duration = nominal * jitterFactor config.Jitter config.Seed r.Id stage
            let start =
                match prepared, oom with
                | [ (d, load, after, _) ], None when load = 0.0<s> && after = resident.[d.Value] ->
                    earliestGap d now (max now inputReady) duration
                | _ ->
                    prepared
                    |> List.fold (fun acc (d, load, _, _) -> max acc (max now actualFree.[d.Value] + load)) inputReady
            let loads = prepared |> List.choose (fun (d, load, _, _) -> if load > 0.0<s> then Some(d, load) else None)
            for (d, _, after, _) in prepared do
                resident.[d.Value] <- after
            match oom with
            | Some(d, _, _, need) ->
                for (dev, load, _, _) in prepared do
                    if load > 0.0<s> then occupy dev (start - load) start
                    actualFree.[dev.Value] <- max actualFree.[dev.Value] start
                    estFree.[dev.Value] <- max estFree.[dev.Value] start
                { Request = r.Id; Stage = stage; Devices = devices; Start = start; Finish = start; Loads = loads; Failed = true; Steps = 0 },
                Some(OutOfMemory(stage, d, need, (Cluster.device cluster d).Memory))
            | None ->
                let finish = start + duration
                for (dev, load, _, _) in prepared do
                    occupy dev (start - load) finish
                { Request = r.Id; Stage = stage; Devices = devices; Start = start; Finish = finish; Loads = loads; Failed = false; Steps = (if stage = Diffuse then r.Steps else 0) }, None

        /// Transfer delay of `bytes` from the producer's first device to the consumers (none when
        /// the producer is among them).
        let transfer (bytes: float<B>) (from: DeviceId list) (into: DeviceId list) =
            match from, into with
            | src :: _, dst :: _ when not (List.contains src into) -> Cluster.transferTime cluster bytes src dst
            | _ -> 0.0<s>

        // preemption state: each dispatched request's plan, its diffuse task in force (with the
        // steps done before it) and its decode task; tasks replaced or dropped by a suspension
        let dispatchOf = Dictionary<RequestId, Dispatch>()
        let liveDiffuse = Dictionary<RequestId, struct (TaskRecord * int * int)>()
        let liveDecode = Dictionary<RequestId, struct (TaskRecord * int)>()
        let cancelled = HashSet<TaskRecord>()
        let dropped = HashSet<int>()
        // suspended diffuse tasks (their end is not a stage completion)
        let cut = HashSet<TaskRecord>()

        let addTask (t: TaskRecord) =
            tasks.Add t
            push t.Finish (TaskEnd t)
            tasks.Count - 1

        /// Drops a scheduled interval of a device (by its end) and recomputes when it is free.
        let release (now: float<s>) (d: DeviceId) (finish: float<s>) =
            let xs = intervals.[d.Value]
            let at = xs.FindIndex(fun struct (_, e) -> e = float finish)
            if at >= 0 then xs.RemoveAt at
            let last = xs |> Seq.fold (fun acc struct (_, e) -> max acc e) (float now)
            actualFree.[d.Value] <- last * 1.0<s>
            estFree.[d.Value] <- last * 1.0<s>

        /// Whether `id` is a decode-only device that runs a decode without a load (nor drops a model): the
        /// devices whose decodes take the earliest gap (`runTask`) and that decode preemption, the decode
        /// order and the snapshot's later bookings describe.
        let decodesInGaps (id: DeviceId) =
            let t = typeOf id
            let res = resident.[id.Value]
            PlacementType.holds Decode t && not (PlacementType.holds Diffuse t)
            && AdjustOnDispatch.loadTime cluster cost res Decode = 0.0<s> && AdjustOnDispatch.residentAfter t res Decode = res

        /// Seconds of request x's decode alone (batch 1, jittered as `runTask` runs it).
        let decodeSeconds (x: Request) = CostModel.batchTime cost Decode x.Shape x.Steps 1 1 * jitterFactor config.Jitter config.Seed x.Id Decode

        /// Whether the policy pauses decodes (decode preemption): it keeps the earliest gap with its insertions
        /// instead of the decode order.
        let pausesDecodes =
            match policy.Preempt with
            | Some p -> p.DecodeTileFrames > 0 && p.MaxSuspensions > 0
            | None -> false

        /// The single decodes booked on `dev` (no load) that end after `after`, in start order:
        /// (request, task, task index).
        let trackedOn (dev: DeviceId) (after: float<s>) =
            [ for KeyValue(id, struct (dc, i)) in liveDecode do
                  if dc.Devices = [ dev ] && dc.Finish > after && dc.Loads.IsEmpty then yield id, dc, i ]
            |> List.sortBy (fun (_, dc, _) -> dc.Start)

        /// Tracked decodes as decode preemption sees them (tiles of `p.DecodeTileFrames` frames).
        let bookedOf (p: PreemptionSettings) (tracked: (RequestId * TaskRecord * int) list) =
            [ for id, dc, _ in tracked do
                  let x = records.[index.[id]]
                  yield
                      { BookedDecode.Request = x.Request
                        Start = dc.Start
                        Finish = dc.Finish
                        Tile = decodeSeconds x.Request / float (Preemption.decodeTiles p.DecodeTileFrames x.Request.Shape)
                        Activation = CostModel.activation cost Decode x.Request.Shape 1
                        Pauses = x.DecodePauses } ]

        /// A decode-only device that runs a decode without a load, as decode preemption (`preemptDecode`)
        /// and the late-bound decode prediction of Preemption.decideWith see it at `now`: its booked
        /// intervals and decodes. None for any other device.
        let decodeDeviceOf (p: PreemptionSettings) (now: float<s>) (dev: Device) : DecodeDevice option =
            let id = dev.Id
            if decodesInGaps id then
                let weights = resident.[id.Value] |> Seq.sumBy (fun st -> (Profile.stage cost.Profile st).Weights)
                Some
                    { DecodeDevice.Device = id
                      Busy = [ for struct (a, e) in intervals.[id.Value] do if e > float now then yield a * 1.0<s>, e * 1.0<s> ]
                      Booked = bookedOf p (trackedOn id now)
                      Headroom = dev.Memory - weights }
            else None

        /// Every such device (`decodeDeviceOf`).
        let decodeDevices (p: PreemptionSettings) (now: float<s>) = cluster.Devices |> List.ofArray |> List.choose (decodeDeviceOf p now)

        /// Request `id`'s decode booked anew on `dev` as task `last` (index `j`), moved by decode preemption or the
        /// decode order: its interval, the device's estimate, the request's live decode and its record (finish,
        /// outcome; `paused`: one decode pause more).
        let rebookDecode (dev: DeviceId) (id: RequestId) (last: TaskRecord) (j: int) (paused: bool) =
            occupy dev last.Start last.Finish
            estFree.[dev.Value] <- max estFree.[dev.Value] last.Finish
            liveDecode.[id] <- struct (last, j)
            let x = records.[index.[id]]
            records.[index.[id]] <-
                { x with
                    Decode = Some last
                    Finish = Some last.Finish
                    Outcome = (if last.Finish <= x.Request.Deadline then OnTime else Late)
                    DecodePauses = x.DecodePauses + (if paused then 1 else 0) }

        // per request with a single decode booked on a device: when its latents are ready there and its
        // place in the device's queue (the order decodes were booked, as the live worker's channel has them)
        let decodeMeta = Dictionary<RequestId, struct (float<s> * int64)>()
        let decodeSeq = ref 0L

        /// Decode order on a decode-only device that needs no load (every policy; docs/policies.md, "Decode
        /// order"): the live worker runs, each time its device frees, the earliest-booked decode whose latents
        /// are ready, and waits for the first latents when none is (Worker.cs, held decodes): non-preemptive
        /// and work-conserving — a decode booked minutes ahead for a video does not hold its slot against a
        /// short decode ready before it. `orderPlan` reschedules, with `r`'s decode (latents ready at `ready`,
        /// `duration` seconds, booked last), the decodes booked on `dev` that have not started by `now`, from
        /// the end of the decode running now (not for a policy that pauses decodes: it keeps the earliest gap and
        /// its insertions): `r`'s start and the decodes that move (request, task, index,
        /// new start). None when the rule does not apply — a load, a batch decode or a paused decode's first
        /// part not yet started on the device, or no decode queued — and `r` then takes the earliest gap
        /// (`runTask`), which is the same start when nothing is queued. Pure: changes nothing.
        let orderPlan (now: float<s>) (dev: DeviceId) (ready: float<s>) (duration: float<s>) =
            if not (decodesInGaps dev) then None
            else
                let xs = intervals.[dev.Value] |> Seq.filter (fun struct (_, e) -> e > float now) |> List.ofSeq
                let queued = trackedOn dev now |> List.filter (fun (_, dc, _) -> dc.Start > now)
                let later = xs |> List.filter (fun struct (a, _) -> a > float now)
                let known =
                    later.Length = queued.Length
                    && later |> List.forall (fun struct (a, e) -> queued |> List.exists (fun (_, dc, _) -> float dc.Start = a && float dc.Finish = e))
                    && queued |> List.forall (fun (id, _, _) -> decodeMeta.ContainsKey id)
                if queued.IsEmpty || not known then None
                else
                    let free = xs |> List.fold (fun acc struct (a, e) -> if a <= float now then max acc e else acc) (float now)
                    // (ready, booking order, duration, the booked task: None for r)
                    let pending = List<struct (float<s> * int64 * float<s> * (RequestId * TaskRecord * int) option)>()
                    for (id, dc, i) in queued do
                        let struct (rd, order) = decodeMeta.[id]
                        pending.Add(struct (rd, order, dc.Finish - dc.Start, Some(id, dc, i)))
                    pending.Add(struct (ready, System.Int64.MaxValue, duration, None))
                    let mutable cursor = free * 1.0<s>
                    let mutable start = ready
                    let moves = List<RequestId * TaskRecord * int * float<s>>()
                    while pending.Count > 0 do
                        let mutable pick = -1
                        for j in 0 .. pending.Count - 1 do
                            let struct (rd, order, _, _) = pending.[j]
                            if rd <= cursor then
                                if pick < 0 || (let struct (_, o, _, _) = pending.[pick] in order < o) then pick <- j
                        if pick < 0 then
                            cursor <- pending |> Seq.map (fun (struct (rd, _, _, _)) -> rd) |> Seq.min
                        else
                            let struct (_, _, d, task) = pending.[pick]
                            pending.RemoveAt pick
                            match task with
                            | None -> start <- cursor
                            | Some(id, dc, i) -> if dc.Start <> cursor then moves.Add((id, dc, i, cursor))
                            cursor <- cursor + d
                    Some(start, List.ofSeq moves)

        /// `orderPlan` carried out for `r`'s decode on its one decode device: the moved decodes leave their
        /// slots now; `r`'s start is returned with their rebooking, to run once `r`'s task is booked.
        let decodeOrder (now: float<s>) (r: Request) (devices: DeviceId list) (ready: float<s>) : (float<s> * (unit -> unit)) option =
            match devices with
            | [ dev ] ->
                match orderPlan now dev ready (decodeSeconds r) with
                | None -> None
                | Some(start, moves) ->
                    for (_, dc, _, _) in moves do
                        release now dev dc.Finish
                        cancelled.Add dc |> ignore
                    let rebook () =
                        for (id, dc, i, at) in moves do
                            let shifted = { dc with Start = at; Finish = at + (dc.Finish - dc.Start) }
                            tasks.[i] <- shifted
                            push shifted.Finish (TaskEnd shifted)
                            rebookDecode dev id shifted i false
                    Some(start, rebook)
            | _ -> None

        /// Decode preemption (policies whose `Preempt` has decode tiles): before `r`'s decode is
        /// booked on its one decode device, Preemption.decideDecode may put it in ahead of the decodes
        /// booked there — the running one paused at its tile boundary (its first part a task of its
        /// own, the rest resumed after `r`'s decode), the queued ones delayed by `r`'s decode time.
        /// Only when every interval on the device after `ready` is a tracked single decode.
        let preemptDecode (now: float<s>) (r: Request) (devices: DeviceId list) (ready: float<s>) =
            match policy.Preempt, devices with
            | Some p, [ dev ] when pausesDecodes ->
                match decodeDeviceOf p now (Cluster.device cluster dev) with
                | None -> false
                | Some view ->
                    let duration = decodeSeconds r
                    let act = CostModel.activation cost Decode r.Shape 1
                    // ready ≥ now (the latents of a diffuse booked at now or later): the view's gap is the executor's
                    match Preemption.decodeInsertion p config.Dispatch r ready duration act view with
                    | _, None -> false
                    | _, Some ins ->
                        let delayed = trackedOn dev ready |> List.filter (fun (_, dc, _) -> dc.Finish > ins.At)
                        // drop every delayed interval first, then book the moved ones
                        for _, dc, _ in delayed do
                            release now dev dc.Finish
                            cancelled.Add dc |> ignore
                        let moved = rebookDecode dev
                        for id, dc, i in delayed do
                            if Some id = ins.Paused then
                                // the tiles done: a task of their own, not a stage completion
                                let first = { dc with Finish = ins.At }
                                tasks.[i] <- first
                                cut.Add first |> ignore
                                occupy dev first.Start first.Finish
                                let rest = { dc with Start = ins.At + ins.Delay; Finish = dc.Finish + ins.Delay }
                                moved id rest (addTask rest) true
                            else
                                let shifted = { dc with Start = dc.Start + ins.Delay; Finish = dc.Finish + ins.Delay }
                                tasks.[i] <- shifted
                                push shifted.Finish (TaskEnd shifted)
                                moved id shifted i false
                        true
            | _ -> false


        /// Late binding of the decode device (docs/policies.md, "Work-conserving dispatch", "Late binding"): a decode planned on an
        /// auxiliary device — one device outside the diffuse group whose type holds C but not D — runs on
        /// the device of that type whose schedule finishes it first: the earliest gap after the latents
        /// arrive there (its own link), on a device that needs no load for it and holds its activation
        /// beside its resident weights. Ties keep the planned device, then the lowest id. The plan books
        /// its decode on one ⟨C⟩ device when the diffuse is dispatched — minutes ahead for a video — and
        /// sees only each device's busy-until; the executor binds it against every ⟨C⟩ device's booked
        /// intervals, as a shared decode queue would when the latents are ready.
        let bindDecode (now: float<s>) (r: Request) (b: int) (diffuseDevices: DeviceId list) (latentsAt: float<s>) (planned: DeviceId list) =
            match planned with
            | [ p ] when not (List.contains p diffuseDevices) && not (PlacementType.holds Diffuse (typeOf p)) ->
                let t = typeOf p
                let duration = CostModel.batchTime cost Decode r.Shape r.Steps 1 b * jitterFactor config.Jitter config.Seed r.Id Decode
                let lat = CostModel.latentBytes cost r.Shape
                let candidates =
                    [ for dev in cluster.Devices do
                          let id = dev.Id
                          if typeOf id = t then
                              let res = resident.[id.Value]
                              let noLoad = AdjustOnDispatch.loadTime cluster cost res Decode = 0.0<s> && AdjustOnDispatch.residentAfter t res Decode = res
                              let weights = res |> Seq.sumBy (fun st -> (Profile.stage cost.Profile st).Weights)
                              let fits = weights + float b * CostModel.activation cost Decode r.Shape 1 <= dev.Memory
                              if id = p || (noLoad && fits) then
                                  let ready = latentsAt + transfer lat diffuseDevices [ id ]
                                  let finish = earliestGap id now (max now ready) duration + duration
                                  yield (finish, (if id = p then 0 else 1), id.Value), id ]
                match candidates with
                | [] -> planned
                | cs -> [ cs |> List.minBy fst |> snd ]
            | _ -> planned

        /// Runs the diffuse steps after `stepsBefore` of a batch of `b` requests led by `r` on `devices`
        /// (input ready at `ready`), then its decode on the plan's decode device; the lead's record with the
        /// outcome. Only a batch of one can be suspended later (a batch's members share its tasks).
        let diffuseAndDecode (now: float<s>) (r: Request) (b: int) (d: Dispatch) (devices: DeviceId list) (stepsBefore: int) (ready: float<s>) (record: RequestRecord) =
            let rest = { r with Steps = r.Steps - stepsBefore }
            let df, dFail = runTask now rest b Diffuse devices d.Degree ready
            let dfIndex = addTask df
            let record = { record with Diffuse = Some df; Segments = record.Segments @ [ df ] }
            match dFail with
            | Some o -> { record with Finish = Some df.Start; Outcome = o }
            | None ->
                if b = 1 then liveDiffuse.[r.Id] <- struct (df, stepsBefore, dfIndex)
                let decodeDevices = bindDecode now r b devices df.Finish d.Decode.Devices
                let ready = df.Finish + transfer (CostModel.latentBytes cost r.Shape) devices decodeDevices
                let inserted = b = 1 && preemptDecode now r decodeDevices ready
                // a policy that pauses decodes keeps the earliest gap with its insertions (its own decode discipline)
                let order = if b = 1 && not inserted && not pausesDecodes then decodeOrder now r decodeDevices ready else None
                let dc, cFail = runTask now r b Decode decodeDevices 1 (match order with Some(start, _) -> start | None -> ready)
                order |> Option.iter (fun (_, rebook) -> rebook ())
                let dcIndex = addTask dc
                if b = 1 then
                    liveDecode.[r.Id] <- struct (dc, dcIndex)
                    decodeMeta.[r.Id] <- struct (ready, decodeSeq.Value)
                    decodeSeq.Value <- decodeSeq.Value + 1L
                let record = { record with Decode = Some dc }
                match cFail with
                | Some o -> { record with Finish = Some dc.Start; Outcome = o }
                | None -> { record with Finish = Some dc.Finish; Outcome = if dc.Finish <= r.Deadline then OnTime else Late }

        /// Executes one dispatch of the plan made at `now` for its batch (`members`, the lead first: one task
        /// per stage for the whole batch; every member's record shares them and ends with the batch), its
        /// encode starting at `notBefore` at the earliest (a preemption's urgent request starts when the
        /// suspended task's latents are out).
        let executeFrom (now: float<s>) (notBefore: float<s>) (members: Request list) (d: Dispatch) =
            let r = List.head members
            let b = members.Length
            let i = index.[r.Id]
            dispatchOf.[r.Id] <- d
            let e, eFail = runTask now r b Encode d.Encode.Devices 1 (max now notBefore)
            addTask e |> ignore
            let record = { records.[i] with Dispatched = Some now; Degree = Some d.Degree; Vr = Some d.Vr; Encode = Some e }
            let record =
                match eFail with
                | Some o -> { record with Finish = Some e.Start; Outcome = o }
                | None ->
                    let ready = e.Finish + transfer (CostModel.embeddingBytes cost) d.Encode.Devices d.Diffuse.Devices
                    diffuseAndDecode now r b d d.Diffuse.Devices 0 ready record
            // what a live monitor would expect: the plan's predicted finishes
            for a in [ d.Encode; d.Diffuse; d.Decode ] do
                for dev in a.Devices do
                    estFree.[dev.Value] <- max estFree.[dev.Value] a.Finish
            records.[i] <- record
            for m in List.tail members do
                let j = index.[m.Id]
                let outcome =
                    match record.Outcome, record.Finish with
                    | (OnTime | Late), Some f -> if f <= m.Deadline then OnTime else Late
                    | o, _ -> o
                records.[j] <- { record with Request = m; Outcome = outcome }

        let execute (now: float<s>) (members: Request list) (d: Dispatch) = executeFrom now now members d

        /// The resumption of another suspended request queued right behind diffuse segment `t` of `self`: a
        /// segment of the same devices not started yet, starting at or after t's end — (its request, that
        /// segment, its decode) when there is exactly one.
        let followerOf (now: float<s>) (self: RequestId) (t: TaskRecord) =
            let found =
                [ for KeyValue(id, struct (r, _, _)) in liveDiffuse do
                      if id <> self && r.Start > now && r.Start >= t.Finish - 1e-9<s> && r.Devices = t.Devices
                         && records.[index.[id]].Suspensions > 0 then
                          match liveDecode.TryGetValue id with
                          | true, struct (dw, _) -> yield id, r, dw
                          | _ -> () ]
            match found with
            | [ one ] -> Some one
            | _ -> None

        /// The diffuse tasks running at `now` that can stop at a step boundary: started, steps left, decode
        /// still to come, and nothing queued behind them on their devices but their own decode and, at most,
        /// one suspended request's resumption (`followerOf`, with its decode: their `Behind`).
        let running (now: float<s>) =
            let finished = liveDiffuse |> Seq.filter (fun kv -> let struct (t, _, _) = kv.Value in t.Finish <= now) |> Seq.map _.Key |> Array.ofSeq
            for id in finished do
                liveDiffuse.Remove id |> ignore
            [ for KeyValue(id, struct (t, before, _)) in liveDiffuse do
                  let follower = if t.Start <= now && t.Steps > 0 then followerOf now id t else None
                  match liveDecode.TryGetValue id with
                  | true, struct (dc, _) when
                      t.Start <= now && t.Steps > 0
                      && t.Devices
                         |> List.forall (fun dev ->
                             // nothing after it on its devices but its own decode, and the one suspended
                             // request's resumption (and that one's decode) queued right behind it
                             intervals.[dev.Value]
                             |> Seq.forall (fun struct (_, e) ->
                                 e <= float t.Finish
                                 || (e = float dc.Finish && List.contains dev dc.Devices)
                                 || (match follower with
                                     | Some(_, r, dw) -> e = float r.Finish || (e = float dw.Finish && List.contains dev dw.Devices)
                                     | None -> false))) ->
                      let record = records.[index.[id]]
                      // a request whose decode is already split by a pause keeps its diffuse running
                      if record.DecodePauses = 0 then
                        yield
                          { Request = record.Request
                            Devices = t.Devices
                            Start = t.Start
                            StepTime = (t.Finish - t.Start) / float t.Steps
                            StepsBefore = before
                            Steps = t.Steps
                            PlannedFinish = dc.Finish
                            Tail = dc.Finish - t.Finish
                            Suspensions = record.Suspensions
                            Behind = follower |> Option.map (fun (wid, _, dw) -> records.[index.[wid]].Request, dw.Finish) }
                  | _ -> () ]

        /// Suspends a victim at its step boundary (latents copied to host memory), starts the urgent
        /// request on the freed devices, and resumes the victim where it can start first: on its
        /// own devices after the urgent work, or on another free group of its degree and type
        /// (latents copied back from host memory either way).
        let suspend (resumeElsewhere: bool) (now: float<s>) (sp: Suspension) (urgent: Request) =
            let vi = index.[sp.Victim]
            let victim = records.[vi].Request
            let struct (seg, before, segIndex) = liveDiffuse.[sp.Victim]
            let struct (dc, dcIndex) = liveDecode.[sp.Victim]
            // a suspended request's resumption queued right behind the victim: unbooked now (with its decode)
            // and booked again on the same devices once the victim's resumption is booked
            let rebookFollower =
                match followerOf now sp.Victim seg with
                | None -> ignore
                | Some(wid, r, dw) ->
                    let wi = index.[wid]
                    let struct (_, wBefore, rIndex) = liveDiffuse.[wid]
                    let struct (_, dwIndex) = liveDecode.[wid]
                    for task, i in [ r, rIndex; dw, dwIndex ] do
                        cancelled.Add task |> ignore
                        dropped.Add i |> ignore
                        for dev in task.Devices do
                            release now dev task.Finish
                    liveDiffuse.Remove wid |> ignore
                    liveDecode.Remove wid |> ignore
                    let segments = records.[wi].Segments |> List.filter (fun x -> not (obj.ReferenceEquals(x, r)))
                    records.[wi] <- { records.[wi] with Segments = segments; Diffuse = List.tryLast segments; Decode = None; Finish = None; Outcome = Unserved }
                    fun () ->
                        let w = records.[wi].Request
                        let readyAt, devices = Preemption.resumeGroup cluster (fun _ -> true) (fun dev -> actualFree.[dev.Value]) now false r.Devices
                        records.[wi] <- diffuseAndDecode now w 1 dispatchOf.[wid] devices wBefore (readyAt + Preemption.copyTime cost cluster w.Shape) records.[wi]
            let d = dispatchOf.[sp.Victim]
            let doneHere = sp.StepsDone - before
            let stepTime = (seg.Finish - seg.Start) / float seg.Steps
            let b = seg.Start + float doneHere * stepTime
            let copy = Preemption.copyTime cost cluster victim.Shape
            // the suspended segment: steps done, devices busy until the latents are out
            let stopped = { seg with Finish = b; Steps = doneHere }
            tasks.[segIndex] <- stopped
            cancelled.Add seg |> ignore
            cut.Add stopped |> ignore
            push b (TaskEnd stopped)
            for dev in seg.Devices do
                release now dev seg.Finish
                occupy dev (seg.Start - (seg.Loads |> List.tryFind (fun (x, _) -> x = dev) |> Option.map snd |> Option.defaultValue 0.0<s>)) (b + copy)
                estFree.[dev.Value] <- b + copy
            // its decode will run after the resumption instead
            cancelled.Add dc |> ignore
            for dev in dc.Devices do
                release now dev dc.Finish
            liveDiffuse.Remove sp.Victim |> ignore
            liveDecode.Remove sp.Victim |> ignore
            let segments = (records.[vi].Segments |> List.take (records.[vi].Segments.Length - 1)) @ [ stopped ]
            records.[vi] <- { records.[vi] with Segments = segments; Suspensions = records.[vi].Suspensions + 1; Diffuse = Some stopped; Decode = None; Finish = None; Outcome = Unserved }
            // the urgent request, on the freed devices
            executeFrom now sp.At [ urgent ] sp.Urgent
            waiting.Remove urgent |> ignore
            // the resumption: the group of the victim's degree and type that is free first
            let t = typeOf (List.head seg.Devices)
            let readyAt, devices =
                Preemption.resumeGroup cluster (fun dev -> typeOf dev = t) (fun dev -> actualFree.[dev.Value]) b resumeElsewhere seg.Devices
            dropped.Add dcIndex |> ignore
            records.[vi] <- diffuseAndDecode now victim 1 d devices sp.StepsDone (readyAt + copy) records.[vi]
            rebookFollower ()

        let busyView (now: float<s>) =
            Array.init n (fun i ->
                if actualFree.[i] <= now then actualFree.[i]
                elif config.Jitter <= 0.0 then actualFree.[i]
                else max estFree.[i] (now + 1e-3<s>))

        let anyFreePrimary (now: float<s>) =
            let mutable found = false
            let mutable i = 0
            while not found && i < n do
                if actualFree.[i] <= now && PlacementType.isPrimary (typeOf (DeviceId i)) then found <- true
                i <- i + 1
            found

        let applyPlan (now: float<s>) (plan: DispatchPlan) (full: bool) =
            let queued = Dictionary<RequestId, Request>()
            for r in waiting do
                queued.[r.Id] <- r
            for d in plan.Dispatches do
                if not (queued.ContainsKey d.Request) then failwithf "%s dispatched %O, which is not waiting (a policy bug)" policy.Name d.Request
            // same-shape batching: each dispatch leads a batch of waiting requests of its key (1: none)
            let limitOf (r: Request) k = Batching.limit cost config.MaxBatch r.Shape k
            let batches, _ = Batching.form cost limitOf (fun _ _ -> true) (fun _ _ -> false) plan (List.ofSeq waiting)
            for batch in batches do
                for m in batch.Members do
                    queued.Remove m.Id |> ignore
                execute now batch.Members batch.Dispatch
            if not plan.Dispatches.IsEmpty then
                let keep = waiting |> Seq.filter (fun r -> queued.ContainsKey r.Id) |> Array.ofSeq
                waiting.Clear()
                waiting.AddRange keep
            rounds.Add
                { Time = now
                  Source = plan.Source
                  Full = full
                  Waiting = queued.Count + (batches |> List.sumBy _.Size)
                  Dispatched = batches |> List.sumBy _.Size }

        /// What a round (or a preemption check) sees at `now`. A decode-only device that needs no load
        /// takes a decode in the earliest gap of its schedule (`runTask`, `bindDecode`): the round sees
        /// it busy until the work running or booked back to back from now ends, and its later bookings
        /// (Snapshot.Bookings) — not busy until its last booking, a video's decode booked when its
        /// diffuse started, minutes ahead (hunyuanvideo-reference: every option of a request then
        /// finished at that decode device's last booking whatever its degree, and small videos ran at
        /// k = 1 for 138 s while a group of 8 freed within 23 s).
        let snapshotAt (now: float<s>) =
            let busy = busyView now
            let bookings =
                [ for dev in cluster.Devices do
                      let id = dev.Id
                      if decodesInGaps id then
                          // intervals are kept in start order
                          let mutable until = float now
                          let later = List<float<s> * float<s>>()
                          for struct (a, e) in intervals.[id.Value] do
                              if e > float now then
                                  if later.Count = 0 && a <= until then until <- max until e
                                  else later.Add((a * 1.0<s>, e * 1.0<s>))
                          busy.[id.Value] <- until * 1.0<s>
                          if later.Count > 0 then yield id, List.ofSeq later ]
                |> Map.ofList
            // a primary device idle now with work booked later (a gang queued behind running work waiting for the
            // rest of its group): held idle until that work starts, free for a one-device task that ends by then —
            // `runTask` runs such a task in the gap (Snapshot.IdleUntil, Assign.backfill)
            let idleUntil =
                [ for dev in cluster.Devices do
                      let id = dev.Id
                      if not (decodesInGaps id) && PlacementType.isPrimary (typeOf id) then
                          let mutable runningNow = false
                          let mutable next = infinity
                          for struct (a, e) in intervals.[id.Value] do
                              if a <= float now && e > float now then runningNow <- true
                              elif a > float now && a < next then next <- a
                          if not runningNow && next < infinity then yield id, next * 1.0<s> ]
                |> Map.ofList
            { Now = now
              Cluster = cluster
              Cost = cost
              Placement = placement.Value
              BusyUntil = busy
              Queue = List.ofSeq waiting
              Completed = Map.empty
              // the planner prices batches up to the run's batch limit (Config.MaxBatch), as the server's loop does
              Settings = { config.Dispatch with MaxBatch = config.MaxBatch }
              Bookings = bookings
              IdleUntil = idleUntil }

        let round (now: float<s>) =
            let s = snapshotAt now
            match policy.Quick with
            | None -> applyPlan now (policy.Dispatch s) true
            | Some quick ->
                match quick s with
                | Some plan -> applyPlan now plan false
                | None when now >= lastSolve.Value + spacing ->
                    lastSolve.Value <- now
                    applyPlan now (policy.Dispatch s) true
                | None ->
                    // the solver's next round is due later: fill the free devices now, solve then
                    match policy.Between with
                    | Some between -> applyPlan now (between s) false
                    | None -> ()
                    let due = lastSolve.Value + spacing
                    if due < tickAt.Value then
                        tickAt.Value <- due
                        push due Tick

        let adjust (now: float<s>) =
            match policy.Adjust with
            | Some a when now >= nextAdjust.Value ->
                monitor.Value <- Monitor.trim now monitor.Value
                let decision = AdjustOnDispatch.decide a Planner.place cluster cost placement.Value plannedFor.Value monitor.Value now
                if decision <> NoTrigger then adjustments.Add((now, decision))
                match decision with
                | NoTrigger -> nextAdjust.Value <- now + 1.0<s>
                | Keep _ ->
                    // a provisional placement kept after a solve over a full window is planned for that window
                    if plannedFor.Value.IsNone then plannedFor.Value <- AdjustOnDispatch.plannedFor a monitor.Value now
                    nextAdjust.Value <- now + a.Cooldown
                | Replace(imbalance, plan) ->
                    placement.Value <- plan
                    plannedFor.Value <- AdjustOnDispatch.plannedFor a monitor.Value now
                    nextAdjust.Value <- now + a.Cooldown
                    replacements.Add
                        { Time = now
                          Imbalance = imbalance
                          Moves = plan.Moves
                          Alpha = plan.Alpha
                          Counts = PlacementPlan.counts plan }
            | _ -> ()

        /// Step-boundary preemption after a round (policies with `Preempt`): suspensions the
        /// objective gains by, for the requests still waiting — and, with `ForLatency`, before the round too, for the
        /// requests waiting then (docs/policies.md, "Preemption for latency").
        let preempt (beforeRound: bool) (now: float<s>) =
            match policy.Preempt with
            | None -> ()
            | Some p ->
                let live = running now
                if not live.IsEmpty then
                    let s = snapshotAt now
                    let byId = Dictionary<RequestId, Request>()
                    for r in waiting do
                        byId.[r.Id] <- r
                    let decide = if beforeRound then Preemption.decideBeforeRoundWith else Preemption.decideWith
                    for sp in decide p (decodeDevices p now) s live do
                        suspend p.ResumeElsewhere now sp byId.[sp.Urgent.Request]

        while events.Count > 0 do
            let _, _, struct (t, _) = events.TryPeek()
            let now = t * 1.0<s>
            lastEvent <- now
            let mutable changed = false
            let mutable go = true
            while go && events.Count > 0 do
                let _, _, struct (t', _) = events.TryPeek()
                if t' <> t then go <- false
                else
                    match events.Dequeue() with
                    | Arrival r ->
                        waiting.Add r
                        monitor.Value <- Monitor.arrived r monitor.Value
                        changed <- true
                    | TaskEnd task when cancelled.Contains task -> ()
                    | TaskEnd task ->
                        if not task.Failed && not (cut.Contains task) then
                            monitor.Value <- Monitor.completed task.Finish task.Stage monitor.Value
                        changed <- true
                    | Tick ->
                        if tickAt.Value <= now then tickAt.Value <- infinity * 1.0<s>
                        changed <- true
            adjust now
            if changed && waiting.Count > 0 && (match policy.Preempt with Some p -> p.ForLatency | None -> false) then preempt true now
            if changed && waiting.Count > 0 && anyFreePrimary now then round now
            if changed && waiting.Count > 0 then preempt false now

        // a request never served whose shape no placement of the cluster can serve says why (the requests CSV's detail)
        let why = Dictionary<Shape, string option>()
        let unservable (shape: Shape) =
            match why.TryGetValue shape with
            | true, w -> w
            | _ ->
                let w = CostModel.unservableOn cost config.Cluster shape
                why.[shape] <- w
                w
        let recordsArr = records |> Array.map (fun r -> if r.Outcome = Unserved then { r with Unservable = unservable r.Request.Shape } else r)
        let tasksArr = tasks |> Seq.indexed |> Seq.filter (fun (i, _) -> not (dropped.Contains i)) |> Seq.map snd |> Array.ofSeq
        let roundsArr = rounds.ToArray()
        let last = max lastEvent (if tasksArr.Length = 0 then first else tasksArr |> Array.map _.Finish |> Array.max)
        { Policy = policy.Name
          Params = policy.Params
          InitialPlacement = initialPlacement
          FinalPlacement = placement.Value
          Records = recordsArr
          Tasks = tasksArr
          Rounds = roundsArr
          Replacements = replacements.ToArray()
          Adjustments = adjustments.ToArray()
          Summary = summarise config policy recordsArr tasksArr roundsArr replacements.Count first last }

    /// Fraction of devices busy (running or loading) in consecutive bins of `bin` seconds from the
    /// first arrival: (bin start, utilisation).
    let utilisationSeries (config: SimConfig) (result: SimResult) (bin: float<s>) =
        let first = if result.Records.Length = 0 then 0.0<s> else result.Records |> Array.map (fun r -> r.Request.Arrival) |> Array.min
        let last = first + result.Summary.Span
        let bins = max 1 (int (ceil (float ((last - first) / bin))))
        let busy = Array.zeroCreate<float> bins
        let add (a: float<s>) (b: float<s>) (weight: float) =
            let mutable t = a
            while t < b do
                let i = int (float ((t - first) / bin)) |> min (bins - 1) |> max 0
                let binEnd = first + float (i + 1) * bin
                let upto = min b binEnd
                busy.[i] <- busy.[i] + float (upto - t) * weight
                t <- if upto <= t then b else upto
        for task in result.Tasks do
            add task.Start task.Finish (float task.Devices.Length)
            for (_, l) in task.Loads do
                add (task.Start - l) task.Start 1.0
        let n = float (Cluster.deviceCount config.Cluster)
        Array.init bins (fun i -> first + float i * bin, busy.[i] / (n * float bin))
