namespace Trident.Scheduling.Dispatching

// Design note. Step-boundary preemption: which running diffuse task, if any, to suspend for which
// waiting request. It runs after a dispatch round, over the requests the round left waiting (most
// urgent first) and the diffuse tasks running at `Now`. A diffuse task can stop only at a denoising
// step boundary: the first boundary at or after `Now`. Its latents and sampler state are copied to
// host memory (latent bytes / host-to-device bandwidth) and copied back when it resumes, on the same
// devices or on others of the same degree and placement type.
//
// The rule (docs/policies.md, "Preemption"). With the value of finishing request r at time f
//     V(r, f) = ω_r · (R_on · [f ≤ D_r] − λ · (f − A_r) / (D_r − A_r))
// (R_on the on-time reward, λ the latency weight of DispatchSettings, A_r arrival, D_r deadline,
// ω_r = 2^priority the request's weight, Priority.weight),
// suspending victim v at boundary b for urgent request u is chosen when
//     gain = V(u, f_u^pre) − V(u, f_u^wait)  >  loss = V(v, f_v) − V(v, f_v^res)  (+ MinGain)
// where f_u^pre is u's predicted finish when it starts at b on v's devices (the planner's own
// prediction), f_u^wait is its finish when it waits for the earliest primary device to free up,
// f_v is v's planned finish and f_v^res its finish when it resumes on the same devices after u:
// the latents' copy out and back in, the remaining steps, then decode. When the resumption of another
// suspended request w is queued right behind v on its devices (v.Behind), w starts as much later as
// v's diffuse ends, and V(w, f_w) − V(w, f_w + that delay) is added to the loss. So is the same term for every waiting request w that holds one of v's devices: before the victims
// are weighed, the waiting requests are list-scheduled in urgency order over the primary devices' free
// times (each on the k devices of one node that finish its best option first), and a request whose finish
// f_w there is on time holds those devices — suspending v delays the requests that are on time by waiting
// for its devices (without it, the suspensions of a video batch's running videos for images delayed the
// batch's waiting videos past their deadlines: docs/policies.md, "Preemption"). The victim with the largest
// gain − loss is taken. Only a request that misses its deadline by waiting (f_u^wait > D_u, with f_u^wait
// its best option started when a free group of that type and degree appears) is considered urgent — unless
// `ForLatency`: then every waiting request is a candidate and the latency term of V alone may pay for a suspension
// (V's latency term is relative to the request's deadline window, so a short request's seconds weigh more than a long
// one's: a small video kept off a long video's devices loses more than the video loses by waiting one short run).
// A request is suspended at most `MaxSuspensions` times; a request that was
// itself placed by a preemption is not preempted in the same round.
//
// Late-bound decode prediction (`decideWith`, `lateBoundFinish`). The plan books u's decode on a ⟨C⟩
// device after every decode booked there, but the executor binds it late: to the ⟨C⟩ device that
// finishes it first in an idle gap, and when that is late, decode preemption puts it in at the
// running decode's next tile boundary (`decideDecode`). Given the ⟨C⟩ devices' schedules, f_u^pre's
// decode is predicted as the executor will book it: diffuse end + transfer + the gap's wait, or, when
// decode preemption takes it, + at most one tile of the decode running then (`decodeWaitBound`) + its
// own decode. Where decode preemption would refuse (off, memory, pause bound, loss, an interval that
// is not a booked decode) the prediction is the gap's finish: it never assumes a slot-in the executor
// does not make. f_u^wait keeps the planner's prediction.
//
// Decode preemption (`decideDecode`): a video's VAE decode runs in temporal tiles and can pause
// between two of them, its state kept on the device, for a decode that waiting would make late; the
// same V decides (the urgent decode's gain against every delayed decode's loss), memory must hold
// both activations, and a decode pauses at most `MaxSuspensions` times. The simulator decides it when it
// books the decode (Simulator.preemptDecode), the live loop when the latents are ready
// (ServingLoop.ExpediteDecodes): both through `decodeInsertion`.

open Trident.Scheduling

/// Settings of step-boundary preemption.
type PreemptionSettings =
    {
      /// the most times one request may be suspended (≥ 0; 0 never suspends)
      MaxSuspensions: int
      /// gain − loss must exceed this (objective units, ≥ 0)
      MinGain: float
      /// at most this many waiting requests (most urgent first) are considered per round
      CandidatesPerRound: int
      /// a suspended task may resume on another group of its degree and type when that group is
      /// free before its own devices (false: always on its own devices)
      ResumeElsewhere: bool
      /// decode preemption: a video's VAE decode runs in temporal tiles of this many frames and can
      /// pause between two tiles for a decode that would otherwise be late (12: the temporal tile
      /// stride of HunyuanVideo's VAE in diffusers, `tile_sample_stride_num_frames`); 0 never
      /// preempts a decode
      DecodeTileFrames: int
      /// preemption for latency as well as deadlines: every waiting request is a candidate (the most urgent
      /// `CandidatesPerRound`), not only one that misses its deadline by waiting, and the objective's latency term
      /// (λ · (f − A) / (D − A)) alone can make a suspension pay; the candidates are weighed before each round too,
      /// so a request is compared with a victim's group before the round gives it the devices left over (a small
      /// video at degree 4 or 1 beside nodes busy with long videos at 8). Decode preemption likewise weighs any
      /// decode that would wait for a gap. false: deadline-urgent requests and decodes only (docs/policies.md,
      /// "Preemption for latency")
      ForLatency: bool }

module PreemptionSettings =
    /// At most 2 suspensions per request, any positive net gain, the 4 most urgent waiting requests,
    /// resumption on the task's own devices, decodes preemptible between 12-frame tiles, preemption for latency
    /// as well as deadlines.
    let defaults = { MaxSuspensions = 2; MinGain = 0.0; CandidatesPerRound = 4; ResumeElsewhere = false; DecodeTileFrames = 12; ForLatency = true }

    /// Checks the values; the error names the field.
    let validate (p: PreemptionSettings) =
        [ if p.MaxSuspensions < 0 then yield sprintf "MaxSuspensions must be ≥ 0 (got %d)" p.MaxSuspensions
          if p.MinGain < 0.0 || System.Double.IsNaN p.MinGain then yield sprintf "MinGain must be ≥ 0 (got %g)" p.MinGain
          if p.CandidatesPerRound < 1 then yield sprintf "CandidatesPerRound must be ≥ 1 (got %d)" p.CandidatesPerRound
          if p.DecodeTileFrames < 0 then yield sprintf "DecodeTileFrames must be ≥ 0 (got %d)" p.DecodeTileFrames ]

/// A diffuse task running now, as preemption sees it.
type RunningDiffuse =
    { Request: Request
      /// its k-group, all of one primary placement type on one node
      Devices: DeviceId list
      /// when this segment started its first step (after any load)
      Start: float<s>
      /// seconds per denoising step of this segment
      StepTime: float<s>
      /// steps done before this segment (earlier segments)
      StepsBefore: int
      /// steps this segment runs
      Steps: int
      /// the request's planned finish (its decode's finish)
      PlannedFinish: float<s>
      /// decode time after the diffuse, transfers included (planned finish − segment finish)
      Tail: float<s>
      /// times the request was suspended already
      Suspensions: int
      /// a suspended request whose resumption is queued right behind this segment on its devices (nothing
      /// else is), with its planned finish: suspending this segment delays it as much as this segment's end
      /// (the simulator, and the live loop, which withdraws that resumption and queues it again behind the
      /// segment's own: ServingLoop.PreemptAsync)
      Behind: (Request * float<s>) option }

/// One decision: suspend `Victim` at the boundary `At` after `StepsDone` steps in all, and start the
/// urgent request's `Urgent` dispatch (made at `At` on devices that include the victim's).
type Suspension =
    { Victim: RequestId
      At: float<s>
      /// the victim's steps done in all at `At` (earlier segments included)
      StepsDone: int
      Urgent: Dispatch
      /// f_u^pre: the urgent request's predicted finish (its decode's, late-bound when the decode
      /// devices' schedules are known)
      UrgentFinish: float<s>
      Gain: float
      Loss: float }

/// A decode booked on one decode device, as decode preemption sees it.
type BookedDecode =
    { Request: Request
      Start: float<s>
      Finish: float<s>
      /// seconds of one temporal tile (the decode can pause only between tiles; = its duration
      /// for an image or a decode that cannot pause)
      Tile: float<s>
      /// its peak activation, held on the device while it is paused
      Activation: float<GB>
      /// times its decode was paused already
      Pauses: int }

/// One decode-preemption decision on one device: the urgent decode starts at `At`; the decode
/// running then (`Paused`, if any) pauses at its tile boundary `At` and every decode booked on the
/// device that ends after `At` is delayed by `Delay` (the urgent decode's duration).
type DecodeInsertion =
    { At: float<s>
      Paused: RequestId option
      Delay: float<s>
      /// the requests whose decodes are delayed
      Delayed: RequestId list
      Gain: float
      Loss: float }

/// A decode-only (⟨C⟩) device as the late-bound decode prediction sees it: its schedule as the
/// executor holds it, so that `Preemption.lateBoundFinish` predicts what the executor does with a
/// decode booked there (the earliest gap that holds it, else decode preemption). Only a device that
/// runs a decode without loading a model is described (the executor gap-fits and preempts only there).
type DecodeDevice =
    { Device: DeviceId
      /// its scheduled busy intervals (start, end) that end after now, in start order: every task and
      /// load booked on it
      Busy: (float<s> * float<s>) list
      /// the decodes among `Busy` that decode preemption may pause or delay (single decodes without a
      /// load), in start order; decode preemption happens only when every interval after the urgent
      /// decode's ready time is one of them
      Booked: BookedDecode list
      /// its memory minus its resident weights (GB)
      Headroom: float<GB> }

module Preemption =
    /// V(r, f): the value of finishing r at f (see the module note), weighted by r's priority (ω = 2^p,
    /// `Priority.weight`): a suspension for a higher-priority request may make a lower-priority one late.
    let value (settings: DispatchSettings) (r: Request) (f: float<s>) =
        let window = max 1e-9<s> (r.Deadline - r.Arrival)
        Priority.weight r.Priority
        * ((if f <= r.Deadline then settings.OnTimeReward else 0.0) - settings.LatencyWeight * ((f - r.Arrival) / window))

    /// The first step boundary at or after `now` of a running segment: (time, steps of this segment
    /// done by then). Before the segment starts: its start, 0 steps.
    let boundary (now: float<s>) (t: RunningDiffuse) =
        if now <= t.Start then t.Start, 0
        else
            let done' = int (ceil ((now - t.Start) / t.StepTime - 1e-9)) |> min t.Steps
            t.Start + float done' * t.StepTime, done'

    /// Seconds to copy a request's latents and sampler state between device and host memory, once.
    let copyTime (cost: CostModel) (cluster: Cluster) (shape: Shape) : float<s> =
        CostModel.latentBytes cost shape / cluster.Bandwidths.HostToDevice

    /// Temporal tiles of a shape's VAE decode: ⌈frames / tileFrames⌉ for a video, 1 for an image
    /// (or when `tileFrames` = 0: no tiling, the decode cannot pause).
    let decodeTiles (tileFrames: int) (shape: Shape) =
        if shape.Frames <= 1 || tileFrames <= 0 then 1 else (shape.Frames + tileFrames - 1) / tileFrames

    /// Where an urgent decode whose latents are ready at `ready` goes in on a device with `booked`
    /// decodes (time order): at `ready` when no decode runs then; else at the running decode's first
    /// tile boundary at or after `ready`, that decode pausing there (`Some` it) — or at its end when no
    /// boundary is left before it (an image's decode is one tile: it is not cut). Pure.
    let insertionPoint (booked: BookedDecode list) (ready: float<s>) : float<s> * BookedDecode option =
        match booked |> List.tryFind (fun b -> b.Start < ready && ready < b.Finish) with
        | None -> ready, None
        | Some b ->
            let tiles = ceil ((ready - b.Start) / b.Tile - 1e-9)
            let boundary = b.Start + tiles * b.Tile
            if boundary >= b.Finish - 1e-9<s> then b.Finish, None else boundary, Some b

    /// The most an urgent decode put in by decode preemption waits after its latents are ready at
    /// `ready` (seconds): the rest of the tile of the decode running then — at most one tile of it
    /// (all of it for a decode of one tile: an image's) — and 0 when none runs then. Pure.
    let decodeWaitBound (booked: BookedDecode list) (ready: float<s>) : float<s> = fst (insertionPoint booked ready) - ready

    /// The most suspensions (or decode pauses) a victim may already have for `urgent` to take its devices, `urgent`
    /// finishing at `fWait` by waiting: `MaxSuspensions`, less one when `urgent` is on time by waiting — a suspension or
    /// pause for latency only keeps one of the bound for a request that waiting makes late (the bound is spent on
    /// deadlines first; docs/policies.md, "Preemption for latency").
    let private boundFor (settings: PreemptionSettings) (urgent: Request) (fWait: float<s>) =
        if fWait <= urgent.Deadline then settings.MaxSuspensions - 1 else settings.MaxSuspensions

    /// Decode preemption on one decode device. `urgent`'s decode (of `duration` seconds, peak
    /// activation `activation`) is ready at `ready` and would finish at `fWait` if it waited for a gap;
    /// `booked` are the decodes on the device that end after `ready` (time order) and `headroom` the
    /// device's memory minus its resident weights. When waiting makes `urgent` late (fWait > D) — or, with
    /// `ForLatency`, whenever it would wait —, its decode goes in at `At`: `ready` when no decode runs then, else the running decode's first tile
    /// boundary at or after `ready` (it pauses there, its activation held on the device: both
    /// activations must fit `headroom`; a decode is paused at most `MaxSuspensions` times); every
    /// booked decode ending after `At` is delayed by `duration`. Taken when
    ///     gain = V(u, At + duration) − V(u, fWait)  >  loss = Σ_delayed V(v, f_v) − V(v, f_v + duration)  (+ MinGain)
    /// with V the value of the module note. Pure.
    let decideDecode (settings: PreemptionSettings) (dispatch: DispatchSettings) (urgent: Request) (ready: float<s>) (duration: float<s>) (activation: float<GB>) (fWait: float<s>) (headroom: float<GB>) (booked: BookedDecode list) : DecodeInsertion option =
        if settings.DecodeTileFrames <= 0 || settings.MaxSuspensions <= 0 || (fWait <= urgent.Deadline && not settings.ForLatency) then None
        else
            let at, paused = insertionPoint booked ready
            let budget = boundFor settings urgent fWait
            let fits =
                match paused with
                | Some b -> b.Pauses < budget && b.Activation + activation <= headroom
                | None -> activation <= headroom
            if not fits || at + duration >= fWait then None
            else
                let delayed = booked |> List.filter (fun b -> b.Finish > at)
                let gain = value dispatch urgent (at + duration) - value dispatch urgent fWait
                let loss = delayed |> List.sumBy (fun b -> value dispatch b.Request b.Finish - value dispatch b.Request (b.Finish + duration))
                if gain - loss > settings.MinGain then
                    Some
                        { At = at
                          Paused = paused |> Option.map _.Request.Id
                          Delay = duration
                          Delayed = delayed |> List.map _.Request.Id
                          Gain = gain
                          Loss = loss }
                else None

    /// The earliest start ≥ `ready` at which a task of `duration` fits between the `busy` intervals
    /// (start order): `Snapshot.earliestFit`, the executor's rule for a one-device task that needs no load. Pure.
    let earliestGap (busy: (float<s> * float<s>) list) (ready: float<s>) (duration: float<s>) : float<s> =
        Snapshot.earliestFit busy ready duration

    /// What the executor does with `urgent`'s decode on decode device `dev`, its latents there at `ready`,
    /// the decode taking `duration` seconds with peak activation `activation`: (f_gap, insertion). f_gap is
    /// the finish in the earliest gap that holds it; when f_gap is late (f_gap > D; with `ForLatency`, when the
    /// decode would wait at all: f_gap > ready + duration) and decode preemption
    /// is on (`DecodeTileFrames` > 0, `MaxSuspensions` > 0) and every interval after `ready` is a booked
    /// decode, `decideDecode`'s insertion (None when it declines). The simulator carries the insertion
    /// out (Simulator.preemptDecode); `lateBoundFinish` predicts with it. Pure.
    let decodeInsertion (settings: PreemptionSettings) (dispatch: DispatchSettings) (urgent: Request) (ready: float<s>) (duration: float<s>) (activation: float<GB>) (dev: DecodeDevice) : float<s> * DecodeInsertion option =
        let gap = earliestGap dev.Busy ready duration + duration
        if (gap <= urgent.Deadline && not settings.ForLatency) || gap <= ready + duration + 1e-9<s> || settings.DecodeTileFrames <= 0 || settings.MaxSuspensions <= 0 then gap, None
        else
            let after = dev.Busy |> List.filter (fun (_, e) -> e > ready)
            let booked = dev.Booked |> List.filter (fun b -> b.Finish > ready)
            let allBooked =
                after.Length = booked.Length
                && after |> List.forall (fun (a, e) -> booked |> List.exists (fun b -> b.Start = a && b.Finish = e))
            if not allBooked then gap, None
            else gap, decideDecode settings dispatch urgent ready duration activation gap dev.Headroom booked

    /// Late-bound prediction of `urgent`'s decode finish on decode device `dev` (see `decodeInsertion`):
    /// put in by decode preemption, ready + decodeWaitBound + duration (≤ ready + one tile + duration);
    /// else the earliest gap's finish. Never earlier than ready + duration. Pure.
    let lateBoundFinish (settings: PreemptionSettings) (dispatch: DispatchSettings) (urgent: Request) (ready: float<s>) (duration: float<s>) (activation: float<GB>) (dev: DecodeDevice) : float<s> =
        match decodeInsertion settings dispatch urgent ready duration activation dev with
        | _, Some ins -> ins.At + duration
        | gap, None -> gap

    /// `dev` without the booked decode of request `id` (a suspended victim's decode is dropped).
    let withoutDecode (id: RequestId) (dev: DecodeDevice) : DecodeDevice =
        match dev.Booked |> List.tryFind (fun b -> b.Request.Id = id) with
        | None -> dev
        | Some b ->
            let mutable dropped = false
            { dev with
                Booked = dev.Booked |> List.filter (fun x -> x.Request.Id <> id)
                Busy =
                    dev.Busy
                    |> List.filter (fun (a, e) ->
                        if not dropped && a = b.Start && e = b.Finish then
                            dropped <- true
                            false
                        else true) }

    /// `dev` after `urgent`'s decode (`duration`, ready at `ready`) is booked on it as `lateBoundFinish`
    /// predicts: in its earliest gap, or put in by decode preemption (the running decode split at the
    /// insertion, every decode ending after it delayed by `duration`). The booked decode itself is a
    /// busy interval only (not pausable in this view: a later prediction on it falls back to gaps).
    let afterBooking (settings: PreemptionSettings) (dispatch: DispatchSettings) (urgent: Request) (ready: float<s>) (duration: float<s>) (activation: float<GB>) (dev: DecodeDevice) : DecodeDevice =
        let gapStart = earliestGap dev.Busy ready duration
        let finish = lateBoundFinish settings dispatch urgent ready duration activation dev
        let sortBusy (xs: (float<s> * float<s>) list) = xs |> List.sortBy fst
        if finish >= gapStart + duration then
            { dev with Busy = sortBusy ((gapStart, gapStart + duration) :: dev.Busy) }
        else
            let at = finish - duration
            // the paused decode's tiles done become a task of their own (not pausable again), its
            // rest follows the urgent decode; every later booked decode moves by `duration`
            let donePart, booked =
                dev.Booked
                |> List.map (fun b ->
                    if b.Finish <= at then None, b
                    elif b.Start < at then Some(b.Start, at), { b with Start = at + duration; Finish = b.Finish + duration; Pauses = b.Pauses + 1 }
                    else None, { b with Start = b.Start + duration; Finish = b.Finish + duration })
                |> List.unzip
            let untouched = dev.Busy |> List.filter (fun (a, e) -> not (dev.Booked |> List.exists (fun b -> b.Start = a && b.Finish = e)))
            { dev with
                Booked = booked
                Busy = sortBusy ((at, finish) :: untouched @ List.choose id donePart @ (booked |> List.map (fun b -> b.Start, b.Finish))) }

    /// `decideWith` (below); `bounded`: skip the (urgent request, victim) pairs the bound rules out.
    let private decideCore (bounded: bool) (beforeRound: bool) (settings: PreemptionSettings) (decodes: DecodeDevice list) (s: Snapshot) (running: RunningDiffuse list) : Suspension list =
        if settings.MaxSuspensions <= 0 || s.Queue.IsEmpty || running.IsEmpty then []
        else
            let rd = Admissible.round s
            // when k devices of type t on one node are free at the earliest (waiting, no preemption)
            let groupFree = System.Collections.Generic.Dictionary<struct (PlacementType * int), float<s>>()
            // each node's primary devices of one type, with when each is free: (type, [(device, free at)])
            // (the round's device-indexed types: a placement map lookup per device was a tenth of the call)
            let types = Admissible.typesOf s
            let primaryByNode () =
                s.Cluster.Devices
                |> Array.filter (fun d -> PlacementType.isPrimary types.[d.Id.Value])
                |> Array.groupBy (fun d -> d.Node, types.[d.Id.Value])
                |> Array.map (fun ((_, t), ds) -> t, ds |> Array.map (fun d -> d.Id, max s.Now s.BusyUntil.[d.Id.Value]))
            let byNodeAndType = primaryByNode () |> Array.map (fun (t, ds) -> t, ds |> Array.map snd |> Array.sort)
            let whenFree (t: PlacementType) (k: int) =
                match groupFree.TryGetValue(struct (t, k)) with
                | true, v -> v
                | _ ->
                    let v =
                        byNodeAndType
                        |> Array.choose (fun (t', times) -> if t' = t && times.Length >= k then Some times.[k - 1] else None)
                        |> Array.fold min (infinity * 1.0<s>)
                    groupFree.[struct (t, k)] <- v
                    v
            let ordered = Admissible.byUrgency rd s.Queue
            // waiting: each option started when a group of its type and degree frees up (f_u^wait; a request that misses
            // its deadline by waiting is late)
            let waitingFinish =
                ordered
                |> Seq.choose (fun u ->
                    match Admissible.options rd u with
                    | [] -> None
                    | opts -> Some(u, opts |> List.map (fun o -> whenFree o.Type o.Degree + (o.Finish - s.Now)) |> List.min))
                |> Array.ofSeq
            let late = waitingFinish |> Array.filter (fun (u, fWait) -> fWait > u.Deadline)
            // deadlines first: with ForLatency every waiting request is a candidate, but only while none misses its
            // deadline by waiting (a suspension for latency spends the victim's bound that a late request may need)
            // before the round, latency candidates only: a late request is the round's to place first, and after it
            // preemption's (weighing them before the round suspended for requests the round would have started on
            // time elsewhere: unit.PreemptionTests' mixed batches at 0.30 req/s, attainment 0.937 → 0.883)
            // the cut (CandidatesPerRound) comes after the lateness test, so higher-priority requests with slack to spare
            // do not take every place of the cut
            let urgent =
                (if settings.ForLatency && late.Length = 0 then waitingFinish elif beforeRound then [||] else late)
                |> Seq.truncate settings.CandidatesPerRound
                |> List.ofSeq
            // the waiting requests that are on time by waiting, and the devices they wait for (`held`): a list
            // schedule in urgency order over the primary devices' free times — each request takes the k devices of
            // one node that let its best option finish first, and when that finish is on time, those devices are
            // busy until it and held for it (request, its finish there)
            let held = System.Collections.Generic.Dictionary<DeviceId, (Request * float<s>) list>()
            // each node's devices of a type kept sorted by (free at, id): a group of k is the first k, free at the
            // k-th; only the group a request takes is re-sorted (a copy and sort per option and node per waiting
            // request was four fifths of an overloaded Trident-preempt simulation: dotnet-trace, 2026-12-02)
            let byFree (a: DeviceId * float<s>) (b: DeviceId * float<s>) =
                let c = compare (snd a) (snd b)
                if c <> 0 then c else compare (fst a).Value (fst b).Value
            let freeAt = primaryByNode ()
            for (_, devs) in freeAt do
                Array.sortInPlaceWith byFree devs
            // (nothing to hold for when no request is a candidate: the call before each round mostly has none)
            for r in (if urgent.IsEmpty then [] else ordered) do
                // the option and node whose group finishes r first (the first such in option, then node order)
                let mutable best = ValueNone
                for o in Admissible.options rd r do
                    for gi in 0 .. freeAt.Length - 1 do
                        let t, devs = freeAt.[gi]
                        if t = o.Type && devs.Length >= o.Degree then
                            let finish = snd devs.[o.Degree - 1] + (o.Finish - s.Now)
                            match best with
                            | ValueSome(f, _, _) when f <= finish -> ()
                            | _ -> best <- ValueSome(finish, gi, o.Degree)
                match best with
                | ValueSome(finish, gi, k) when finish <= r.Deadline ->
                    let devs = snd freeAt.[gi]
                    for i in 0 .. k - 1 do
                        let d = fst devs.[i]
                        held.[d] <- (r, finish) :: (match held.TryGetValue d with | true, ws -> ws | _ -> [])
                        devs.[i] <- d, finish
                    Array.sortInPlaceWith byFree devs
                | _ -> ()
            let busy = Array.copy s.BusyUntil
            // the decode devices' schedules (late-bound decode prediction), updated by each suspension taken
            let decodeView = System.Collections.Generic.Dictionary<DeviceId, DecodeDevice>()
            for dev in decodes do
                decodeView.[dev.Device] <- dev
            /// Where and when u's decode (of dispatch d, made for suspending `victim`) finishes: the
            /// executor's late binding — the ⟨C⟩ device of the view that finishes it first in a gap
            /// (ties: the planned one, then the lowest id) — then `lateBoundFinish` there. The plan's own
            /// prediction (after every decode booked on the planned device) when the decode runs on
            /// the diffuse group or the planned device is not in the view.
            let decodeFinish (u: Request) (d: Dispatch) (victim: RequestId) =
                match d.Decode.Devices, d.Diffuse.Devices with
                | [ p ], lead :: _ when not (List.contains p d.Diffuse.Devices) && decodeView.ContainsKey p ->
                    let lat = CostModel.latentBytes s.Cost u.Shape
                    let duration = CostModel.batchTime s.Cost Decode u.Shape u.Steps 1 1
                    let act = CostModel.activation s.Cost Decode u.Shape 1
                    let _, dev, ready =
                        [ for KeyValue(id, dev) in decodeView do
                              if id = p || act <= dev.Headroom then
                                  let dev = withoutDecode victim dev
                                  let ready = d.Diffuse.Finish + Cluster.transferTime s.Cluster lat lead id
                                  let gapFinish = earliestGap dev.Busy ready duration + duration
                                  yield (gapFinish, (if id = p then 0 else 1), id.Value), dev, ready ]
                        |> List.minBy (fun (key, _, _) -> key)
                    lateBoundFinish settings s.Settings u ready duration act dev, Some(dev, ready, duration, act)
                | _ -> d.Decode.Finish, None
            let taken = System.Collections.Generic.HashSet<RequestId>()
            // devices an earlier suspension of this call gave to its urgent request
            let used = System.Collections.Generic.HashSet<DeviceId>()
            [ for (u, fWait) in urgent do
                      let vWait = value s.Settings u fWait
                      let budget = boundFor settings u fWait
                      // what any plan for u on a victim's devices must satisfy (a plan that cannot use them is no
                      // candidate): the victim's devices are of one of u's option types, and u's diffuse there ends
                      // no earlier than `at` + its shortest diffuse over every degree — the bound below
                      let uTypes = Admissible.options rd u |> List.map _.Type |> Set.ofList
                      let uMinDiffuse =
                          s.Cost.Degrees |> List.map (CostModel.diffuseTime s.Cost u.Shape u.Steps) |> List.min
                      // a request resumed at its decode takes no diffuse group: no victim's devices serve it
                      let uDiffuses = Admissible.remains s u Diffuse
                      let candidates =
                          [   for v in running do
                                if v.Suspensions < budget && not (taken.Contains v.Request.Id)
                                   && uDiffuses && uTypes.Contains types.[(List.head v.Devices).Value] then
                                    let b, doneHere = boundary s.Now v
                                    let remaining = v.Steps - doneHere
                                    if remaining > 0 && v.Devices |> List.forall (fun d -> not (used.Contains d)) then
                                        let copy = copyTime s.Cost s.Cluster v.Request.Shape
                                        let at = b + copy
                                        // the resumption queued behind v (Behind) and the waiting requests holding its devices
                                        let delayed =
                                            (v.Devices
                                             |> List.collect (fun dev -> match held.TryGetValue dev with | true, xs -> xs | _ -> [])
                                             |> List.distinctBy (fun (w, _) -> w.Id))
                                            @ Option.toList v.Behind
                                        // v's loss when its diffuse, resumed after u's on its devices, ends at diffuseEnd:
                                        // v later, and `delayed` start as much later (delay)
                                        let lossAt (diffuseEnd: float<s>) =
                                            let fRes = diffuseEnd + v.Tail
                                            let delay = max 0.0<s> (diffuseEnd - (v.Start + float v.Steps * v.StepTime))
                                            value s.Settings v.Request v.PlannedFinish - value s.Settings v.Request fRes
                                            + (delayed |> List.sumBy (fun (w, fw) -> value s.Settings w fw - value s.Settings w (fw + delay)))
                                        // a bound before the plan (V is non-increasing in the finish): u finishes no earlier
                                        // than its diffuse, which starts no earlier than `at`, and v resumes no earlier than
                                        // that diffuse's end — the gain is at most, the loss at least, their values there.
                                        // Skipping a victim the bound rules out changes no decision; it saves the greedy
                                        // plan that was most of an overloaded Trident-preempt simulation (docs/policies.md)
                                        let uEarliest = at + uMinDiffuse
                                        let hopeless =
                                            value s.Settings u uEarliest - vWait
                                            - lossAt (uEarliest + copy + float remaining * v.StepTime) <= settings.MinGain - 1e-6
                                        if not (bounded && hopeless) then
                                            // only the victim's devices are free at `at`: the urgent plan must use them
                                            let onVictim = Set.ofList v.Devices
                                            let view =
                                                Array.init busy.Length (fun i ->
                                                    if onVictim.Contains(DeviceId i) then at
                                                    elif PlacementType.isPrimary types.[i] then max busy.[i] (at + 1e-3<s>)
                                                    else busy.[i])
                                            let s' = { s with Now = at; BusyUntil = view; Queue = [ u ] }
                                            let plan, _ = Greedy.plan "preemption" s'
                                            match plan.Dispatches with
                                            | [ d ] when d.Diffuse.Devices |> List.exists onVictim.Contains ->
                                                let fPre, booking = decodeFinish u d v.Request.Id
                                                let gain = value s.Settings u fPre - vWait
                                                let resume =
                                                    v.Devices
                                                    |> List.fold (fun acc dev -> if List.contains dev d.Diffuse.Devices then max acc d.Diffuse.Finish else acc) at
                                                let loss = lossAt (resume + copy + float remaining * v.StepTime)
                                                if gain - loss > settings.MinGain then
                                                    yield { Victim = v.Request.Id; At = at; StepsDone = v.StepsBefore + doneHere; Urgent = d; UrgentFinish = fPre; Gain = gain; Loss = loss }, booking
                                            | _ -> () ]
                      match candidates with
                      | [] -> ()
                      | cs ->
                          let best, booking = cs |> List.maxBy (fun (c, _) -> c.Gain - c.Loss, -c.Victim.Value)
                          taken.Add best.Victim |> ignore
                          // the victim's decode is dropped, the urgent one booked
                          for id in List.ofSeq decodeView.Keys do
                              decodeView.[id] <- withoutDecode best.Victim decodeView.[id]
                          match booking with
                          | Some(dev, ready, duration, act) ->
                              decodeView.[dev.Device] <- afterBooking settings s.Settings u ready duration act dev
                          | None -> ()
                          for a in [ best.Urgent.Encode; best.Urgent.Diffuse; best.Urgent.Decode ] do
                              for dev in a.Devices do
                                  busy.[dev.Value] <- max busy.[dev.Value] a.Finish
                          for v in running do
                              if v.Request.Id = best.Victim then
                                  for dev in v.Devices do
                                      used.Add dev |> ignore
                          yield best ]

    /// The suspensions to make now (at most one per victim and per urgent request), best first.
    /// Pure: reads the snapshot (`Queue` = the requests still waiting after the round), the running
    /// diffuse tasks and the ⟨C⟩ devices' schedules (`decodes`; empty: u's decode is predicted as the
    /// plan books it, after every decode booked on its device). With them, u's decode finish in
    /// f_u^pre is late-bound (`lateBoundFinish`): the ⟨C⟩ device that finishes it first in a gap, and
    /// when that is late, decode preemption's insertion — at most one tile of the decode running then.
    /// A victim is planned for (a greedy plan of u on its devices) only when a bound allows a gain above its
    /// loss: u's types include the victim's, and V(u) at u's earliest diffuse end there minus V(u) by waiting
    /// exceeds the victim's loss were it to resume no earlier (V is non-increasing in the finish, so the bound
    /// changes no decision: `decideWithoutBound` makes the same ones).
    let decideWith (settings: PreemptionSettings) (decodes: DecodeDevice list) (s: Snapshot) (running: RunningDiffuse list) : Suspension list =
        decideCore true false settings decodes s running

    /// `decideWith` before a round's dispatch (`Queue` = every request waiting then), for latency only: with
    /// `ForLatency` and no waiting request late by waiting, the suspensions a waiting request gains by before the
    /// round gives it the devices left over (a small video at degree 4 or 1 while long videos hold whole nodes);
    /// otherwise none (a request late by waiting is weighed after the round, by `decideWith`).
    let decideBeforeRoundWith (settings: PreemptionSettings) (decodes: DecodeDevice list) (s: Snapshot) (running: RunningDiffuse list) : Suspension list =
        if settings.ForLatency then decideCore true true settings decodes s running else []

    /// `decideWith` that plans every (urgent request, victim) pair, without the bound that skips the pairs whose
    /// gain cannot exceed their loss: the same decisions, slower — the reference the bound is tested against
    /// (`unit.PreemptionTests`).
    let decideWithoutBound (settings: PreemptionSettings) (decodes: DecodeDevice list) (s: Snapshot) (running: RunningDiffuse list) : Suspension list =
        decideCore false false settings decodes s running

    /// `decideWith` without a view of the decode devices: u's decode is predicted as its plan books
    /// it (after every decode booked on the planned device). The live runtime's entry point (it pauses
    /// no decode and does not gap-fit decodes).
    let decide (settings: PreemptionSettings) (s: Snapshot) (running: RunningDiffuse list) : Suspension list =
        decideWith settings [] s running

    /// `decideBeforeRoundWith` without a view of the decode devices (the live runtime's entry point before a round).
    let decideBeforeRound (settings: PreemptionSettings) (s: Snapshot) (running: RunningDiffuse list) : Suspension list =
        decideBeforeRoundWith settings [] s running

    /// Where a suspended diffuse resumes (issue 12; the simulator and the live loop both ask this): the
    /// k-group whose devices are all free first, with the time it is. `own` is the suspended group (k
    /// devices); `ready` the earliest the resumption can start anywhere (its latents out of the device);
    /// `freeAt d` when device d has done the work already given to it (seconds, the caller's clock);
    /// `usable d` whether d may take it (the group's placement type, and in the cluster). Without
    /// `elsewhere` it is always `own`. Otherwise every node offers its k usable devices that are free
    /// first (ties: lower device id), and the group free first wins — `own` on ties, then the lowest
    /// node id — so a suspended request never waits behind the urgent work when another group of its
    /// type and degree frees sooner. The returned devices are in id order.
    let resumeGroup (cluster: Cluster) (usable: DeviceId -> bool) (freeAt: DeviceId -> float<s>) (ready: float<s>) (elsewhere: bool) (own: DeviceId list) : float<s> * DeviceId list =
        let readyAt (devs: DeviceId list) = devs |> List.fold (fun acc d -> max acc (freeAt d)) ready
        let mine = readyAt own, own
        if not elsewhere then mine
        else
            let k = List.length own
            let others =
                [ for node in Cluster.nodes cluster do
                      let group =
                          Cluster.devicesOf cluster node
                          |> Array.filter usable
                          |> Array.sortWith (fun a b ->
                              let c = compare (freeAt a) (freeAt b)
                              if c <> 0 then c else compare a.Value b.Value)
                      if group.Length >= k then
                          let chosen = group |> Array.take k |> Array.sortBy _.Value |> List.ofArray
                          yield readyAt chosen, chosen ]
            // `mine` first: List.minBy keeps the first of equal keys, so the own group wins ties
            mine :: others |> List.minBy fst
