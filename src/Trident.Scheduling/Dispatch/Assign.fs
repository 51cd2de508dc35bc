namespace Trident.Scheduling.Dispatching

// Design note. Planners decide (request, primary type, degree, node); this module turns those
// decisions into concrete routes, the same way for the MIP and the greedy policy:
//   * the diffuse group = the k lowest-id free devices of that type on that node;
//   * encode runs on the group's first device when the type holds E (no transfer), else on the
//     ⟨E⟩ device whose encode result would reach the group first (queueing behind work already
//     given to it, transfer included);
//   * decode runs on the group's first device when the type holds C, else on the ⟨C⟩ device that
//     would finish it first;
//   * a placement with no ⟨E⟩ (⟨C⟩) device at all runs the encode (decode) of a type that lacks it
//     on the group's first device, which loads the stage (Admissible.leadRuns: a cluster too small
//     for the auxiliary device; the predicted start leaves the load's time before the task);
//   * a stage a resumed request completed before it was re-queued (Snapshot.Completed) gets no
//     task: its assignment has no device and no duration (Start = Finish = now), and the next stage
//     starts once the kept output has moved (one intra-node transfer). A request resumed at its
//     decode is offered degree-1 options only (Admissible.routes): its one device runs the decode
//     when the type holds C.
// ⟨E⟩ devices are queues: each assignment pushes the device's busy-until forward, so no device is
// given two overlapping tasks. A ⟨C⟩ device is a schedule with gaps, as its executor runs it (the
// simulator's and the live worker's decode queue: a decode in the earliest gap that holds it once its
// latents are ready): a decode goes into the earliest gap after the device's busy-until among its later
// bookings (Snapshot.Bookings) and the round's own decodes there (`DecodeBook`), not after the round's
// last decode there — a small decode whose latents are ready at once is not predicted behind a large
// one booked earlier in the round whose latents come minutes later.

open Trident.Scheduling

/// A decision: start this option on this node — alone, or leading a batch with `Mates` (same pipeline,
/// shape and steps; the option's Reward is then the whole batch's, DispatchMip).
type Choice =
    { Option: DispatchOption
      Node: NodeId
      /// the other requests of the batch the option leads (most urgent first); empty: alone
      Mates: Request list }

/// The decodes a round has booked on ⟨C⟩ devices so far: device id → booked intervals (start, end), in
/// start order. Mutable, one per routing pass; `route` reads it, `Assign.record` records a dispatch's decode.
type DecodeBook = System.Collections.Generic.Dictionary<int, ResizeArray<float<s> * float<s>>>

module Assign =
    /// An empty decode book.
    let newBook () = DecodeBook()

    // the intervals of device d: its later bookings (Snapshot.Bookings) and the round's (book), in start order
    let private intervals (s: Snapshot) (book: DecodeBook) (d: DeviceId) =
        let later = if s.Bookings.IsEmpty then [] else Map.tryFind d s.Bookings |> Option.defaultValue []
        match book.TryGetValue d.Value with
        | true, xs when xs.Count > 0 -> List.append later (List.ofSeq xs) |> List.sortBy fst
        | _ -> later

    /// The earliest start ≥ `from` at which a decode of `duration` fits on ⟨C⟩ device `d` between its later
    /// bookings and the round's decodes there (Snapshot.earliestFit over both).
    let decodeStart (s: Snapshot) (book: DecodeBook) (d: DeviceId) (from: float<s>) (duration: float<s>) =
        Snapshot.earliestFit (intervals s book d) from duration

    // the auxiliary ⟨C⟩ device a dispatch decodes on, if it decodes on one (not on its diffuse group's lead)
    let private auxDecoder (s: Snapshot) (d: Dispatch) =
        match d.Decode.Devices with
        | [ dev ] when not (List.contains dev d.Diffuse.Devices) && s.Placement.Types.TryFind dev = Some C -> Some dev
        | _ -> None

    /// Records a routed dispatch's decode in the book when it runs on an auxiliary ⟨C⟩ device (a decode on
    /// the diffuse group's lead pushes that device's busy time instead, in `route`).
    let record (s: Snapshot) (book: DecodeBook) (d: Dispatch) =
        match auxDecoder s d with
        | Some dev ->
            let xs =
                match book.TryGetValue dev.Value with
                | true, xs -> xs
                | _ ->
                    let xs = ResizeArray()
                    book.[dev.Value] <- xs
                    xs
            let i = xs.FindIndex(fun (a, _) -> a > d.Decode.Start)
            xs.Insert((if i < 0 then xs.Count else i), (d.Decode.Start, d.Decode.Finish))
        | None -> ()

    /// The snapshot with the book's decodes added to its later bookings (Snapshot.Bookings), in start order: what
    /// a later pass over the same round sees of them.
    let withBookings (s: Snapshot) (book: DecodeBook) =
        if book.Count = 0 then s
        else { s with Bookings = book.Keys |> Seq.fold (fun acc id -> Map.add (DeviceId id) (intervals s book (DeviceId id)) acc) s.Bookings }

    /// The objective both planners maximise: Σ option rewards − μ · (free primary devices left idle).
    let objective (s: Snapshot) (freePrimary: int) (choices: Choice list) =
        let used = choices |> List.sumBy (fun c -> c.Option.Degree)
        (choices |> List.sumBy (fun c -> c.Option.Reward)) - s.Settings.IdlePenalty * float (freePrimary - used)

    let private bestAux (s: Snapshot) (aux: Map<PlacementType, Device array>) (t: PlacementType) (shape: Shape) (score: Device -> float<s>) =
        aux |> Map.tryFind t |> Option.defaultValue [||]
        |> Array.filter (fun d -> CostModel.fits s.Cost t shape 1 d.Memory)
        |> Array.sortBy (fun d -> score d, d.Id.Value)
        |> Array.tryHead

    /// The ⟨C⟩ device a decode is booked on: the one that finishes it first (`arrives d` is when the
    /// latents reach device d, the decode starts at max(busy, arrival), or at the earliest gap after that
    /// which holds it among the device's later bookings (Snapshot.Bookings), and takes `tC`) — and among the
    /// devices that finish it within `tolerance` of the first (the links differ by at most the latents'
    /// inter-node transfer), the one that leaves the shortest idle gap before it (busy-until latest but
    /// not after the latents arrive): best fit in time. Decodes are booked when their diffuse starts,
    /// often minutes ahead for a video; without the best fit every decode due soon went to the device
    /// whose last booking ended first and far-ahead bookings spread over the others, so one ⟨C⟩ device
    /// queued the short decodes while the others idled until their far bookings
    /// (hunyuanvideo-reference, simulator: 1190 of 1800 decodes on one of three ⟨C⟩ devices, a
    /// 960×544×17 video waiting 21 s on average for a 4 s decode). docs/policies.md, "Dispatch".
    let private decodeDevice
        (s: Snapshot)
        (book: DecodeBook)
        (aux: Map<PlacementType, Device array>)
        (shape: Shape)
        (busy: float<s> array)
        (arrives: Device -> float<s>)
        (tC: float<s>)
        (tolerance: float<s>)
        =
        let candidates =
            aux |> Map.tryFind C |> Option.defaultValue [||]
            |> Array.filter (fun d -> CostModel.fits s.Cost C shape 1 d.Memory)
        if candidates.Length = 0 then None
        else
            let finish (d: Device) = decodeStart s book d.Id (max busy.[d.Id.Value] (arrives d)) tC + tC
            // the idle gap the decode leaves before it: from the end of the device's last work (busy-until, or a
            // booking) that ends by the decode's start
            let gapBefore (d: Device) =
                let start = finish d - tC
                let before = intervals s book d.Id |> List.fold (fun acc (_, e) -> if e <= start && e > acc then e else acc) busy.[d.Id.Value]
                max 0.0<s> (start - before)
            let first = candidates |> Array.map finish |> Array.min
            candidates
            |> Array.filter (fun d -> finish d <= first + tolerance)
            |> Array.sortBy (fun d -> gapBefore d, finish d, d.Id.Value)
            |> Array.tryHead

    /// Routes one option onto a diffuse group (the k devices, lead first) whose devices are free at
    /// their `busy` times: encode on the lead when the type holds E (at the lead's busy time), else on
    /// the ⟨E⟩ device whose embeddings reach the group first; diffuse when the encode output has arrived
    /// and every device of the group is free; decode on the lead when the type holds C, else on the ⟨C⟩
    /// device that finishes it first, in the earliest gap among its bookings and the round's (`book`, read
    /// only: `Assign.record` records the decode once the dispatch is kept). A stage the request completed before
    /// it was re-queued (Snapshot.Completed) gets no task. Pushes the busy times of the primary and ⟨E⟩
    /// devices it uses forward.
    let route (s: Snapshot) (busy: float<s> array) (book: DecodeBook) (aux: Map<PlacementType, Device array>) (o: DispatchOption) (group: DeviceId list) : Dispatch =
        let r = o.Request
        let c = s.Cost
        let xfer bytes a b = Cluster.transferTime s.Cluster bytes a b
        let lead = List.head group
        let tE = CostModel.encodeTime c r.Shape
        let tC = CostModel.decodeTime c r.Shape
        let groupFree = group |> List.fold (fun acc g -> max acc busy.[g.Value]) s.Now
        let bw = s.Cluster.Bandwidths.IntraNode
        // a stage the type lacks runs on the lead when the placement has no auxiliary device of its kind
        let onLead stage =
            let present = aux |> Map.tryFind (Admissible.auxiliaryFor stage) |> Option.exists (fun ds -> ds.Length > 0)
            Admissible.leadRunsWith c present o.Type stage r.Shape (Cluster.device s.Cluster lead).Memory
        let load stage = CostModel.loadTime c s.Cluster.Bandwidths.HostToDevice stage
        let decodeOnLead = PlacementType.holds Decode o.Type || onLead Decode
        // a stage the request completed before it was re-queued gets no task: no device, no time
        let skipped at = { Devices = []; Start = at; Finish = at }
        // encode
        let encode, inputReady =
            if not (Admissible.remains s r Encode) then skipped s.Now, s.Now + CostModel.embeddingBytes c / bw
            elif PlacementType.holds Encode o.Type then
                let start = max s.Now busy.[lead.Value]
                { Devices = [ lead ]; Start = start; Finish = start + tE }, start + tE
            elif onLead Encode then
                let start = max s.Now busy.[lead.Value] + load Encode
                { Devices = [ lead ]; Start = start; Finish = start + tE }, start + tE
            else
                let emb = CostModel.embeddingBytes c
                let arrive (d: Device) = max s.Now busy.[d.Id.Value] + tE + xfer emb d.Id lead
                match bestAux s aux E r.Shape arrive with
                | None -> failwithf "planner bug: %O on %A needs an ⟨E⟩ device and none can hold it" r.Id o.Type
                | Some d ->
                    let start = max s.Now busy.[d.Id.Value]
                    busy.[d.Id.Value] <- start + tE
                    { Devices = [ d.Id ]; Start = start; Finish = start + tE }, max s.Now (arrive d)
        // diffuse (a request resumed at its decode: its latents are moved from the device that kept them)
        let diffuse =
            if Admissible.remains s r Diffuse then
                let start = max inputReady groupFree
                { Devices = group; Start = start; Finish = start + CostModel.diffuseTime c r.Shape r.Steps o.Degree }
            else skipped s.Now
        let latentsReady = if diffuse.Devices.IsEmpty then s.Now + CostModel.latentBytes c r.Shape / bw else diffuse.Finish
        // decode
        let decode =
            if decodeOnLead then
                let start = max latentsReady groupFree + (if PlacementType.holds Decode o.Type then 0.0<s> else load Decode)
                { Devices = [ lead ]; Start = start; Finish = start + tC }
            else
                let lat = CostModel.latentBytes c r.Shape
                let arrives (d: Device) = if diffuse.Devices.IsEmpty then latentsReady else diffuse.Finish + xfer lat lead d.Id
                let ready (d: Device) = max busy.[d.Id.Value] (arrives d)
                match decodeDevice s book aux r.Shape busy arrives tC (lat / s.Cluster.Bandwidths.InterNode) with
                | None -> failwithf "planner bug: %O on %A needs a ⟨C⟩ device and none can hold it" r.Id o.Type
                | Some d ->
                    // the earliest gap among its later bookings (Snapshot.Bookings) and the round's decodes there
                    let start = decodeStart s book d.Id (ready d) tC
                    { Devices = [ d.Id ]; Start = start; Finish = start + tC }
        for g in diffuse.Devices do
            busy.[g.Value] <- diffuse.Finish
        if decodeOnLead then busy.[lead.Value] <- decode.Finish
        { Request = r.Id
          Degree = o.Degree
          Vr = o.Vr
          Encode = encode
          Diffuse = diffuse
          Decode = decode
          OnTime = decode.Finish <= r.Deadline
          Reward = o.Reward }

    /// The auxiliary (⟨E⟩, ⟨C⟩) devices of the snapshot, by type: what `route` books on.
    let auxOf (s: Snapshot) = Map.ofList [ E, Admissible.auxDevices s E; C, Admissible.auxDevices s C ]

    /// Turns choices into dispatches. Fails when a choice asks for more free devices than its
    /// node has (a planner bug, never a user error).
    let materialise (s: Snapshot) (choices: Choice list) : Dispatch list =
        let mutable free = Admissible.freeByNodeAndType s |> Map.map (fun _ ds -> List.sortBy (fun (d: DeviceId) -> d.Value) ds)
        let busy = Array.copy s.BusyUntil
        let book = newBook ()
        let aux = auxOf s
        [ for ch in choices do
              let o = ch.Option
              let key = ch.Node, o.Type
              let avail = free |> Map.tryFind key |> Option.defaultValue []
              if avail.Length < o.Degree then
                  failwithf "planner bug: %O needs %d free %A devices on %O, %d are free" o.Request.Id o.Degree o.Type ch.Node avail.Length
              free <- free |> Map.add key (List.skip o.Degree avail)
              let d = route s busy book aux o (List.take o.Degree avail)
              record s book d
              yield d ]

    /// The devices' busy times after the round's dispatches `planned` (each device's busy-until pushed to the end of
    /// their tasks there, but for devices `skip` names), and the book of their decodes on auxiliary ⟨C⟩ devices (in
    /// the book, not in the busy times): what a later pass over the same round routes against.
    let private afterPlanned (s: Snapshot) (planned: Dispatch list) (skip: DeviceId -> bool) =
        let busy = Array.copy s.BusyUntil
        let decodes = newBook ()
        for d in planned do
            record s decodes d
            let decodeDevices = if (auxDecoder s d).IsSome then [] else d.Decode.Devices
            for a, devices in [ d.Encode, d.Encode.Devices; d.Diffuse, d.Diffuse.Devices; d.Decode, decodeDevices ] do
                for dev in devices do
                    if not (skip dev) then busy.[dev.Value] <- max busy.[dev.Value] a.Finish
        busy, decodes

    /// Queue-behind (docs/policies.md, "Queueing behind running tasks"): after the round's own
    /// dispatches (`planned`, on devices free now), waiting requests are queued behind the tasks
    /// running (or just planned) on busy devices, at their predicted start — when every device of
    /// their group is predicted free. In urgency order, each waiting request with an admissible option
    /// takes the option whose predicted finish is best — on time first, then earliest finish, then
    /// fewer devices — on the node where the option's group (the k devices of that type free first)
    /// is free first, among the groups it may use:
    ///   * on any node but the one the round reserved: a group whose devices are all free within
    ///     `QueueHorizon` of now (a device that frees in a moment gets its next task without waiting
    ///     for the next round);
    ///   * on the node the round reserved (`reserved`, `Greedy.reservation`: it is left draining) —
    ///     only the most urgent waiting request, when some device of that node is still idle (so at
    ///     most one gang is queued ahead there) and none of its options
    ///     could be formed on the devices free when the round began (EASY backfilling's head), and only
    ///     when it is predicted on time there; it then gets a planned start on that node instead of an
    ///     idle hold. A late head is left waiting: the round at which the node has drained gives it to
    ///     the request the objective prefers.
    /// Both limits were measured (cogvideox-reference, simulator): committing every waiting request
    /// far ahead made the planner a list scheduler (attainment 0.87 → 0.77), and queueing small
    /// requests behind the devices of the reserved node kept it from draining (0.87 → 0.78). Encode, diffuse and decode are predicted exactly as for a start now (`route`),
    /// from the devices' busy times after the plan's dispatches, so a queued task never overlaps the
    /// work before it on its devices. Returns the queued dispatches in the order they were queued;
    /// their Reward is the option's with b taken at the queued finish. They use no device free now
    /// but the head's (on its draining node), so they leave the round's objective unchanged.
    /// `batched`: requests of the round's batches that have no dispatch of their own (DispatchPlan.Batched).
    let queueBehind (rd: Admissible.Round) (reserved: (NodeId * PlacementType) option) (batched: RequestId seq) (planned: Dispatch list) : Dispatch list =
        let s = rd.Snapshot
        let horizon = s.Now + s.Settings.QueueHorizon
        let busy, decodes = afterPlanned s planned (fun _ -> false)
        let scratch = Array.copy s.BusyUntil
        let aux = auxOf s
        let types = Admissible.typesOf s
        // primary devices by (node, type), each group's devices kept in the order they are predicted
        // free — (max now busy, id) ascending — so the k devices free first are its first k and the
        // group of k is free at the k-th one's time. A group is re-sorted only when a queued dispatch
        // moves its devices' busy times: sorting every group per waiting request and option was 45 % of
        // a 512 × 1000 round (dotnet-trace, 2026-12-01).
        let groupKeys, order =
            s.Cluster.Devices
            |> Array.filter (fun d -> PlacementType.isPrimary types.[d.Id.Value])
            |> Array.groupBy (fun d -> d.Node, types.[d.Id.Value])
            |> Array.map (fun (key, ds) -> key, ds |> Array.map _.Id)
            |> Array.unzip
        let resort i =
            let at (d: DeviceId) = max s.Now busy.[d.Value]
            System.Array.Sort(order.[i], System.Comparison(fun (a: DeviceId) (b: DeviceId) ->
                let c = compare (at a) (at b)
                if c <> 0 then c else compare a.Value b.Value))
        for i in 0 .. order.Length - 1 do
            resort i
        let ofType =
            groupKeys |> Array.indexed |> Array.groupBy (fun (_, (_, t)) -> t) |> Array.map (fun (t, xs) -> t, Array.map fst xs) |> dict
        let reservedIndex =
            match reserved with
            | Some key -> Array.tryFindIndex ((=) key) groupKeys |> Option.defaultValue -1
            | None -> -1
        let dispatched = System.Collections.Generic.HashSet<RequestId>(Seq.append (planned |> Seq.map _.Request) batched)
        let waiting = s.Queue |> List.filter (fun r -> not (dispatched.Contains r.Id))
        // the most free devices of each primary type on one node when the round began
        let mostFree = System.Collections.Generic.Dictionary<PlacementType, int>()
        for KeyValue((_, t), ds) in Admissible.freeByNodeAndType s do
            match mostFree.TryGetValue t with
            | true, n when n >= ds.Length -> ()
            | _ -> mostFree.[t] <- ds.Length
        let formable (o: DispatchOption) =
            match mostFree.TryGetValue o.Type with
            | true, n -> n >= o.Degree
            | _ -> false
        let mutable head = true
        [ for r in Admissible.byUrgency rd waiting do
              let options = Admissible.options rd r
              if not options.IsEmpty then
                  let headRule = head && not (List.exists formable options)
                  head <- false
                  // per option, the group free first (ties: the lowest lead id); a node with a device idle
                  // now is one the round left draining (the reservation): only the head may be queued there
                  let trials =
                      [ for o in options do
                            let mutable best = -1
                            let mutable bestFree = infinity * 1.0<s>
                            match ofType.TryGetValue o.Type with
                            | true, indices ->
                                for i in indices do
                                    let ds = order.[i]
                                    if ds.Length >= o.Degree then
                                        let draining = i = reservedIndex
                                        // the head only where a device of the group is still idle: at most one gang
                                        // is queued ahead on the reserved node, never behind queued work
                                        let idleNow = busy.[ds.[0].Value] <= s.Now
                                        let free = max s.Now busy.[ds.[o.Degree - 1].Value]
                                        if ((draining && headRule && idleNow) || (not draining && free <= horizon))
                                           && (best < 0 || free < bestFree || (free = bestFree && ds.[0].Value < order.[best].[0].Value)) then
                                            best <- i
                                            bestFree <- free
                            | _ -> ()
                            if best >= 0 then
                                let draining = best = reservedIndex
                                let group = List.ofArray (Array.sub order.[best] 0 o.Degree)
                                // a trial on a scratch copy (route pushes its devices' busy times forward): one buffer
                                // reused, not an array per trial — 4000 copies of 512 times a round at 512 × 1000 were
                                // 90 % of the round (dotnet-trace, 2026-12-01)
                                Array.blit busy 0 scratch 0 busy.Length
                                let d = route s scratch decodes aux o group
                                if not draining || d.OnTime then yield o, best, group, d ]
                  // the first trial by (on time first, earliest finish, fewer devices)
                  let better (o1: DispatchOption, _, _, d1: Dispatch) (o2: DispatchOption, _, _, d2: Dispatch) =
                      if d1.OnTime <> d2.OnTime then d1.OnTime
                      elif d1.Decode.Finish <> d2.Decode.Finish then d1.Decode.Finish < d2.Decode.Finish
                      else o1.Degree < o2.Degree
                  let first = trials |> List.fold (fun acc t -> match acc with Some b when not (better t b) -> acc | _ -> Some t) None
                  match first with
                  | Some(o, i, group, _) ->
                      let d = route s busy decodes aux o group
                      record s decodes d
                      resort i
                      let reward = o.Reward - Admissible.baseReward rd r o.OnTime + Admissible.baseReward rd r d.OnTime
                      yield { d with Reward = reward }
                  | None -> () ]

    /// Backfilling (docs/policies.md, "Backfilling"; EASY backfilling's backfill step, Lifka 1995): a device held
    /// idle for work booked later — `holds`, device → (free from, until the booked work starts): a gang queued
    /// behind running work waiting for the rest of its group (Snapshot.IdleUntil), or a free device of the node the
    /// round reserved (`Greedy.holds`) — takes waiting requests that end there before it. In urgency order, each request not dispatched by the round (`planned`, `batched`) takes a
    /// one-device admissible option of the held device's type, routed as a start now on that device (`route`:
    /// encode, diffuse and — when the type holds them — decode on it, else on the auxiliary devices after the
    /// round's work), when every task on the device ends by the hold's end; among the devices where it fits, the
    /// one it leaves the shortest gap on (best fit in time). A device may take several in turn. So a backfill
    /// never delays the booked work as predicted, and leaves the round's objective unchanged (it uses no device
    /// the round could plan on). Returns the backfilled dispatches (their Reward the option's with b taken at the
    /// routed finish), to run before the booked work on the held devices.
    let backfill (rd: Admissible.Round) (holds: Map<DeviceId, float<s> * float<s>>) (batched: RequestId seq) (planned: Dispatch list) : Dispatch list =
        let s = rd.Snapshot
        if holds.IsEmpty then []
        else
            let busy, decodes = afterPlanned s planned holds.ContainsKey
            let aux = auxOf s
            let types = Admissible.typesOf s
            // per held device: free from (now, then the end of its backfills) until the booked work starts
            let cursor = System.Collections.Generic.Dictionary<int, float<s>>()
            for KeyValue(d, (from, _)) in holds do
                cursor.[d.Value] <- from
            let scratch = Array.copy busy
            let dispatched = System.Collections.Generic.HashSet<RequestId>(Seq.append (planned |> Seq.map _.Request) batched)
            let waiting = s.Queue |> List.filter (fun r -> not (dispatched.Contains r.Id))
            // the dispatch's tasks on device `dev`, the latest end among them
            let endOn (dev: DeviceId) (d: Dispatch) =
                [ d.Encode; d.Diffuse; d.Decode ]
                |> List.filter (fun a -> List.contains dev a.Devices)
                |> List.fold (fun acc a -> max acc a.Finish) s.Now
            [ for r in Admissible.byUrgency rd waiting do
                  let options = Admissible.options rd r |> List.filter (fun o -> o.Degree = 1)
                  if not options.IsEmpty then
                      let trials =
                          [ for KeyValue(dev, (_, until)) in holds do
                                let t = types.[dev.Value]
                                for o in options do
                                    // the diffuse alone must fit: most requests skip the route
                                    if o.Type = t && cursor.[dev.Value] + CostModel.diffuseTime s.Cost r.Shape r.Steps 1 <= until then
                                        Array.blit busy 0 scratch 0 busy.Length
                                        scratch.[dev.Value] <- cursor.[dev.Value]
                                        let d = route s scratch decodes aux o [ dev ]
                                        let last = endOn dev d
                                        if last <= until then yield until - last, dev, o ]
                      match trials |> List.sortBy (fun (gap, dev, _) -> gap, dev.Value) |> List.tryHead with
                      | Some(_, dev, o) ->
                          busy.[dev.Value] <- cursor.[dev.Value]
                          let d = route s busy decodes aux o [ dev ]
                          record s decodes d
                          cursor.[dev.Value] <- max cursor.[dev.Value] (endOn dev d)
                          busy.[dev.Value] <- s.BusyUntil.[dev.Value]
                          let reward = o.Reward - Admissible.baseReward rd r o.OnTime + Admissible.baseReward rd r d.OnTime
                          yield { d with Reward = reward }
                      | None -> () ]

