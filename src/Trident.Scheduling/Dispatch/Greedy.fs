namespace Trident.Scheduling.Dispatching

// Design note. The greedy policy: the fallback when the solver times out or fails, the solver's
// starting solution, and a policy of its own. Requests in urgency order (higher priority first, then
// least slack); each
// takes its best available option — highest reward, so on time before late and, among on-time
// options, the smallest efficient k (the device penalty) — on the node with the fewest free devices
// of that type that still has k (best fit). One pass, O(candidates · options · nodes).
//
// Best fit, not most free: the simulator showed that giving each small request the node with the
// most free devices keeps every node partly busy, so a request that needs a whole node (k = 8 for
// long videos) never finds one — on cogvideox-reference 80 of 128 devices stood idle while 362
// such requests waited. Best fit packs small groups onto nodes that are already in use and lets
// other nodes drain.
//
// Reservation. Best fit alone does not stop a steady stream of small requests from keeping every
// node partly busy. So each round, when the most urgent waiting request that has an admissible
// option cannot be started because no node has enough free devices of a suitable type, the round
// reserves for it the node whose devices of that type drain soonest (the k-th earliest free time;
// EASY backfilling's reservation for the head of the queue): that node's free devices are held out of
// the round, so the node drains and the request starts when it has. One reservation at a time; none
// while the most urgent request can start. Devices held idle for the head (and for gangs queued in
// earlier rounds) take one-device requests that end before it (`holds`, Assign.backfill: EASY's
// backfill step; docs/policies.md, "Backfilling").

open Trident.Scheduling

module Greedy =
    /// Free primary devices by node and type, counted.
    let freeCounts (s: Snapshot) =
        Admissible.freeByNodeAndType s |> Map.map (fun _ ds -> List.length ds)

    let private largestByType (free: Map<NodeId * PlacementType, int>) =
        let largest = System.Collections.Generic.Dictionary<PlacementType, int>()
        for KeyValue((_, t), n) in free do
            match largest.TryGetValue t with
            | true, m when m >= n -> ()
            | _ -> largest.[t] <- n
        fun (o: DispatchOption) ->
            match largest.TryGetValue o.Type with
            | true, n -> n >= o.Degree
            | _ -> false

    /// The node and type reserved this round (see the design note), if any, with the time the node is
    /// predicted drained for the head (the k-th earliest free time of its devices of that type, k the head's
    /// smallest degree there): EASY backfilling's shadow time.
    let reservationShadow (rd: Admissible.Round) : (NodeId * PlacementType * float<s>) option =
        let s = rd.Snapshot
        let formable = largestByType (freeCounts s)
        let head =
            Admissible.byUrgency rd s.Queue
            |> List.tryPick (fun r ->
                match Admissible.options rd r with
                | [] -> None
                | opts -> Some opts)
        match head with
        | Some opts when not (List.exists formable opts) ->
            // per type, the smallest degree the head may use
            let needs = opts |> List.groupBy _.Type |> List.map (fun (t, os) -> t, os |> List.map _.Degree |> List.min)
            [ for (t, k) in needs do
                  for n in Cluster.nodes s.Cluster do
                      let times =
                          Cluster.devicesOf s.Cluster n
                          |> Array.filter (fun d -> s.Placement.Types.[d] = t)
                          |> Array.map (fun d -> max s.Now s.BusyUntil.[d.Value])
                          |> Array.sort
                      if times.Length >= k then yield (times.[k - 1], n.Value), (n, t, times.[k - 1]) ]
            |> List.sortBy fst
            |> List.tryHead
            |> Option.map snd
        | _ -> None

    /// The node and type reserved this round (see the design note), if any.
    let reservation (rd: Admissible.Round) : (NodeId * PlacementType) option =
        reservationShadow rd |> Option.map (fun (n, t, _) -> n, t)

    /// The devices a round's backfill may use (`Assign.backfill`), device → (from, until): those the snapshot holds
    /// idle for booked work (Snapshot.IdleUntil), and the free devices of the reserved node that the round gives no
    /// task now — until the first task the round (`planned`) gives the device later (the head queued there), else
    /// the node's drain time (`shadow`, the round's `reservationShadow`). A device with a task from now (the queued
    /// head's lead, whose encode runs now and whose output it keeps for the diffuse) is not held idle. All from now.
    let holds (rd: Admissible.Round) (shadow: (NodeId * PlacementType * float<s>) option) (planned: Dispatch list) : Map<DeviceId, float<s> * float<s>> =
        let s = rd.Snapshot
        let idle = s.IdleUntil |> Map.map (fun _ until -> s.Now, until)
        match shadow with
        | None -> idle
        | Some(node, t, shadow) ->
            let first = System.Collections.Generic.Dictionary<int, float<s>>()
            for d in planned do
                for a in [ d.Encode; d.Diffuse; d.Decode ] do
                    for dev in a.Devices do
                        match first.TryGetValue dev.Value with
                        | true, x when x <= a.Start -> ()
                        | _ -> first.[dev.Value] <- a.Start
            Cluster.devicesOf s.Cluster node
            |> Array.filter (fun d -> s.Placement.Types.[d] = t && s.BusyUntil.[d.Value] <= s.Now)
            |> Array.fold (fun acc d ->
                let until = match first.TryGetValue d.Value with | true, x -> min x shadow | _ -> shadow
                if until > s.Now then Map.add d (s.Now, until) acc else acc) idle

    /// Turns a round's choices into dispatches (`Assign.materialise`) and appends the requests queued
    /// behind running tasks (`Assign.queueBehind`, with the round's reservation): what every Trident
    /// plan dispatches.
    let dispatches (rd: Admissible.Round) (choices: Choice list) : Dispatch list =
        let now = Assign.materialise rd.Snapshot choices
        let mates = choices |> Seq.collect (fun c -> c.Mates |> Seq.map _.Id)
        // the round's reservation, computed once (it sorts the queue by urgency): queue-behind and backfilling share it
        let shadow = reservationShadow rd
        let queued = Assign.queueBehind rd (shadow |> Option.map (fun (n, t, _) -> n, t)) mates now
        let planned = now @ rd.Held @ queued
        // backfills run before the work they are held for: listed ahead of the queued dispatches, so the live
        // workers' queues (in plan order) run them first
        now @ rd.Held @ Assign.backfill rd (holds rd shadow planned) mates planned @ queued

    /// The batches of a round's choices (DispatchPlan.Batched): each lead's mates.
    let batchedOf (choices: Choice list) : Map<RequestId, RequestId list> =
        choices |> List.filter (fun c -> not c.Mates.IsEmpty) |> List.map (fun c -> c.Option.Request.Id, c.Mates |> List.map _.Id) |> Map.ofList

    /// The free devices a round may use: all free primary devices but those of the reserved node.
    let roundFree (rd: Admissible.Round) : Map<NodeId * PlacementType, int> =
        let free = freeCounts rd.Snapshot
        match reservation rd with
        | Some key -> Map.remove key free
        | None -> free

    /// The requests of `queue` with an admissible option that can be formed on `free` (some node has
    /// that many free devices of the type), with those options, in the order the objective ranks them. Each
    /// priority level in its own order — the requests that can still be on time first, then the late ones, each
    /// part in urgency order (without priorities this is the whole order) — and the levels merged by the base
    /// reward their next request can still earn, ω · b (`Admissible.baseReward`: ω · B_on on time, ω times the
    /// ageing late reward when late; ties to the higher level): an on-time priority-1 request before an on-time
    /// priority-0 one, a late priority-1 request after it until its ageing reward passes B_on / 2. Not truncated.
    let offeredIn (rd: Admissible.Round) (free: Map<NodeId * PlacementType, int>) (queue: Request list) : (Request * DispatchOption list) list =
        let formable = largestByType free
        let offered =
            Admissible.byUrgency rd queue
            |> List.map (fun r -> r, Admissible.options rd r |> List.filter formable)
            |> List.filter (fun (_, opts) -> not opts.IsEmpty)
        let onTime (_, opts: DispatchOption list) = opts |> List.exists _.OnTime
        // urgency order is level first: each level is a run of `offered`
        let levels =
            offered
            |> List.groupBy (fun (r, _) -> Priority.level r.Priority)
            |> List.map (fun (_, xs) -> let a, b = List.partition onTime xs in a @ b)
        match levels with
        | [] -> []
        | [ one ] -> one
        | _ ->
            // merge the levels (at most 7) by the value of their next request
            let value ((r, _) as x) = Admissible.baseReward rd r (onTime x)
            let heads = levels |> List.map ref |> Array.ofList
            [ while heads |> Array.exists (fun h -> not h.Value.IsEmpty) do
                  let mutable best = -1
                  for i in 0 .. heads.Length - 1 do
                      match heads.[i].Value with
                      | x :: _ when best < 0 || value x > value (List.head heads.[best].Value) -> best <- i
                      | _ -> ()
                  let h = heads.[best]
                  yield List.head h.Value
                  h.Value <- List.tail h.Value ]

    /// Requests offered to a round over the given free devices, with their admissible options that
    /// can be formed (some node has that many free devices of the type): the most urgent requests
    /// that have any, at most CandidatesPerFreeDevice per free primary device. Options that cannot
    /// be formed are left out before the cut, so that urgent requests waiting for a large group do
    /// not crowd out the requests the free devices can serve (found by the simulator: on
    /// cogvideox-reference the cut kept only 8-device requests while 1–4 devices stood free).

    let candidatesIn (rd: Admissible.Round) (free: Map<NodeId * PlacementType, int>) (freePrimary: int) : (Request * DispatchOption list) list =
        let s = rd.Snapshot
        offeredIn rd free s.Queue |> List.truncate (max 0 (freePrimary * s.Settings.CandidatesPerFreeDevice))

    /// A request waits for a larger group only when that group is predicted free within this share of
    /// its start-now response time (best start-now finish − now): the bound on how long a request may
    /// wait for a group (docs/policies.md, "Waiting for a larger group").
    [<Literal>]
    let GroupWaitShare = 0.5

    /// A request waits for a larger group only when its predicted response time there is at least this
    /// share shorter than its best start-now response time:
    /// a prediction a few milliseconds off never flips the choice, a group freeing in 5 ms beats a start
    /// now that finishes 30 s later.
    [<Literal>]
    let GroupWaitGain = 0.10

    /// A request waits for a larger group only when the devices of that group idle, summed, at most this share
    /// of the group's own diffuse device-seconds (k · t_D(k)) before it starts: devices held for a group that
    /// frees later are lost to every other request meanwhile (six free devices held 5 ms for a group of 8 cost
    /// 0.03 device-seconds; held 20 s, 120).
    [<Literal>]
    let GroupIdleShare = 0.10

    /// "Start now at a small degree" or "wait a moment for a larger group" (docs/policies.md, "Waiting
    /// for a larger group"). Among the round's candidates (urgency order), a request whose best
    /// start-now option — on the devices free now, the reserved node held out — finishes at f_now
    /// (on time first, then earliest) and which has an admissible option that cannot be formed now is
    /// committed to the group of that option freeing first (the k devices of the type on one node free
    /// first) — in a round without a reservation (`reservation`: no request waits for a node to drain) — when
    ///   * the option is a larger degree of the same placement type as the start-now option (options of
    ///     different types are never compared: a ⟨C⟩ device booked by a commitment made ⟨D⟩ options look late,
    ///     and mixed-hunyuanvideo-batches fell from 0.880 to 0.683 when they were),
    ///   * no more requests wait (the round's queue, less those already committed) than primary devices are
    ///     free (less those the commitments took): under saturation every free device is used now,
    ///   * the group is predicted free by now + GroupWaitShare · (f_now − now) — for a growth degree (eff(k) < θ)
    ///     also by now + QueueHorizon (a group that frees in a moment counts as free) —, its devices idle meanwhile
    ///     at most GroupIdleShare · k · t_D(k) device-seconds in all, and
    ///   * its predicted finish there, routed as any queued dispatch (`Assign.route`), is
    ///     ≤ now + (1 − GroupWaitGain) · (f_now − now), and on time whenever f_now is.
    /// Committed dispatches push their devices' busy times, so a later request sees them. Returns the
    /// snapshot the round then plans (the committed requests out of the queue, their devices busy) and
    /// the committed dispatches (their Reward is the option's with b taken at the committed finish).
    let waitForGroups (rd: Admissible.Round) : Snapshot * Dispatch list =
        let s = rd.Snapshot
        // while the most urgent request waits for a node to drain (the round's reservation), groups are scarce:
        // nothing is committed ahead (cogvideox-reference, where k = 8 videos need whole nodes: attainment 0.942
        // with commitments in such rounds)
        let reserved = reservation rd
        let free = freeCounts s
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let formableNow = largestByType free
        // under saturation — more requests waiting than primary devices free — every free device is used now:
        // nothing waits for a group (checked again before each commitment, below)
        let candidates = if nFree = 0 || reserved.IsSome || s.Queue.Length > nFree then [] else candidatesIn rd free nFree
        // only requests with an option that cannot start now but finishes sooner than every one that can
        let bestNow (opts: DispatchOption list) = opts |> List.minBy (fun o -> (if o.OnTime then 0 else 1), o.Finish)
        // a growth degree (eff(k) < θ) takes more device-seconds than the request needs and is worth its devices only
        // when nobody else would use them (work conservation's grow step): it is waited for only when its group frees
        // within the queue horizon — "free in a moment", the live server's jitter — never longer (simulated at the
        // paper-comparable rates, growth waits of seconds raised flux's P95 8 % and broke sd3: attainment 1.000 → 0.965)
        let efficient (o: DispatchOption) = CostModel.efficiency s.Cost o.Request.Shape o.Degree >= s.Cost.Settings.EfficiencyThreshold
        let waiting =
            [ for (r, opts) in candidates do
                  let now = bestNow opts
                  // only a larger degree of the start-now option's own type: comparing across types let bookings of one
                  // type's auxiliary devices make another type's options look late (mixed-hunyuanvideo-batches 0.880 → 0.683)
                  let larger =
                      Admissible.options rd r
                      |> List.filter (fun o ->
                          o.Type = now.Type && o.Degree > now.Degree && not (formableNow o) && o.Finish < now.Finish)
                  if not larger.IsEmpty then yield r, now, larger ]
        if waiting.IsEmpty then s, []
        else
            let types = Admissible.typesOf s
            let groups =
                s.Cluster.Devices
                |> Array.filter (fun d -> PlacementType.isPrimary types.[d.Id.Value])
                |> Array.groupBy (fun d -> d.Node, types.[d.Id.Value])
                |> Array.map (fun ((_, t), ds) -> t, ds |> Array.map _.Id)
            let aux = Assign.auxOf s
            let busy = Array.copy s.BusyUntil
            // a trial routes on a scratch copy of `busy` (route pushes its devices' busy times forward): one buffer
            // reused, as in Assign.queueBehind, not an array per trial
            let scratch = Array.copy s.BusyUntil
            // the committed dispatches' decodes on ⟨C⟩ devices (their busy times are not pushed: a decode goes into
            // a gap, Assign.route); they become later bookings of the snapshot returned
            let decodes = Assign.newBook ()
            // per (type, degree): the group freeing first over the nodes — the same for every request until a
            // commitment changes the busy times (then recomputed): a round scans the nodes once per (type, degree)
            let firstGroups = System.Collections.Generic.Dictionary<struct (PlacementType * int), (float<s> * float<s> * DeviceId array) option>()
            let firstGroup (t: PlacementType) (k: int) =
                match firstGroups.TryGetValue(struct (t, k)) with
                | true, v -> v
                | _ ->
                    let v =
                        [ for (t', ds) in groups do
                              if t' = t && ds.Length >= k then
                                  let group = ds |> Array.sortBy (fun d -> max s.Now busy.[d.Value], d.Value) |> Array.take k
                                  let freeAt = group |> Array.fold (fun acc d -> max acc busy.[d.Value]) s.Now
                                  // the group's devices idle until the last of them frees
                                  let idle = group |> Array.sumBy (fun d -> freeAt - max s.Now busy.[d.Value])
                                  yield freeAt, idle, group ]
                        |> List.sortBy (fun (freeAt, idle, g) -> freeAt, idle, g.[0].Value)
                        |> List.tryHead
                    firstGroups.[struct (t, k)] <- v
                    v
            // requests still waiting (the round's queue less the commitments) and primary devices still free (less
            // those the commitments took): a commitment is made only while the first is not larger than the second
            let waitingLeft = ref s.Queue.Length
            let freeLeft = ref nFree
            let held =
                [ for (r, now, larger) in waiting do
                    if waitingLeft.Value <= freeLeft.Value then
                      let span = now.Finish - s.Now
                      let target = s.Now + (1.0 - GroupWaitGain) * span
                      let trials =
                          [ for o in larger do
                                // the group of the option freeing first over the nodes, within the wait bound
                                let best = firstGroup o.Type o.Degree
                                let idleBound = GroupIdleShare * float o.Degree * CostModel.diffuseTime s.Cost r.Shape r.Steps o.Degree
                                let waitBound = if efficient o then GroupWaitShare * span else min (GroupWaitShare * span) s.Settings.QueueHorizon
                                match best with
                                // waiting delays the start-now finish by at least the wait: skip the route when even that misses
                                | Some(freeAt, idle, group) when
                                    freeAt - s.Now <= waitBound && idle <= idleBound && o.Finish + (freeAt - s.Now) <= target ->
                                    Array.blit busy 0 scratch 0 busy.Length
                                    yield o, group, Assign.route s scratch decodes aux o (List.ofArray group)
                                | _ -> () ]
                      match trials |> List.sortBy (fun (o, _, d) -> (if d.OnTime then 0 else 1), d.Decode.Finish, o.Degree) |> List.tryHead with
                      | Some(o, group, d) when d.Decode.Finish <= target && (d.OnTime || not now.OnTime) ->
                          let takenFree = group |> Array.sumBy (fun g -> if busy.[g.Value] <= s.Now then 1 else 0)
                          let d = Assign.route s busy decodes aux o (List.ofArray group)
                          Assign.record s decodes d
                          firstGroups.Clear()
                          waitingLeft.Value <- waitingLeft.Value - 1
                          freeLeft.Value <- freeLeft.Value - takenFree
                          yield { d with Reward = o.Reward - Admissible.baseReward rd r o.OnTime + Admissible.baseReward rd r d.OnTime }
                      | _ -> () ]
            if held.IsEmpty then s, []
            else
                let ids = System.Collections.Generic.HashSet<RequestId>(held |> Seq.map _.Request)
                let booked = Assign.withBookings s decodes
                { booked with Queue = s.Queue |> List.filter (fun r -> not (ids.Contains r.Id)); BusyUntil = busy }, held

    /// The round every Trident plan works on: the snapshot's round after `waitForGroups` — the requests
    /// it commits to a larger group are out of the queue, their devices busy, and their dispatches in
    /// `Held`, which `dispatches` appends to every plan of the round.
    let round (s: Snapshot) : Admissible.Round =
        let rd = Admissible.round s
        match waitForGroups rd with
        | _, [] -> rd
        | s', held ->
            let next = Admissible.round s'
            if next.Aux = rd.Aux then
                // the commitments booked no ⟨E⟩/⟨C⟩ device: every request's routes, options and urgency are the same
                // as in the first round (they depend on the time and the auxiliary devices only), so its caches are
                // kept — the round's options are computed once (the common case: types that hold E and C)
                let out = System.Collections.Generic.HashSet<RequestId>(held |> Seq.map _.Request)
                { next with
                    TRef = rd.TRef
                    Routes = rd.Routes
                    Options = rd.Options
                    Urgency = rd.Urgency
                    Ordered = rd.Ordered |> Option.map (Array.filter (fun r -> not (out.Contains r.Id)))
                    Held = held }
            else { next with Held = held }

    /// Requests offered to a round (over `roundFree`), with their formable admissible options.
    let candidates (rd: Admissible.Round) (freePrimary: int) : (Request * DispatchOption list) list =
        candidatesIn rd (roundFree rd) freePrimary

    /// Greedy choices over the given options (per request, in the given order).
    let choose (free: Map<NodeId * PlacementType, int>) (optionsInOrder: (Request * DispatchOption list) list) : Choice list =
        // per type, the free count of each node (mutable for the pass)
        let byType =
            free
            |> Map.toList
            |> List.groupBy (fun ((_, t), _) -> t)
            |> List.map (fun (t, xs) -> t, xs |> List.map (fun ((n: NodeId, _), c) -> n, ref c) |> Array.ofList)
            |> Map.ofList
        let bestFit (t: PlacementType) (k: int) =
            match Map.tryFind t byType with
            | None -> None
            | Some nodes ->
                let mutable best = None
                for (n, c) in nodes do
                    if c.Value >= k then
                        match best with
                        | Some(_, (bc: int ref)) when bc.Value <= c.Value -> ()
                        | _ -> best <- Some(n, c)
                best
        [ for (_, opts) in optionsInOrder do
              let best =
                  opts
                  // highest reward first, then fewer devices (an explicit comparison: a tuple key is compared
                  // generically, boxed, per request)
                  |> List.sortWith (fun a b ->
                      let c = compare b.Reward a.Reward
                      if c <> 0 then c else compare a.Degree b.Degree)
                  |> List.tryPick (fun o -> bestFit o.Type o.Degree |> Option.map (fun nc -> o, nc))
              match best with
              | Some(o, (node, count)) ->
                  count.Value <- count.Value - o.Degree
                  yield { Option = o; Node = node; Mates = [] }
              | None -> () ]

    /// Nodes for groups of (type, degree), best fit, largest groups first; the nodes are returned
    /// in the order of `groups`. None when best fit cannot place them all (another packing may).
    let packBestFit (free: Map<NodeId * PlacementType, int>) (groups: (PlacementType * int) list) : NodeId list option =
        // per type, the nodes (in id order) and their free devices left; a linear scan per group
        let byType = System.Collections.Generic.Dictionary<PlacementType, (NodeId * int ref) array>()
        for (t, entries) in free |> Map.toList |> List.groupBy (fun ((_, t), _) -> t) do
            byType.[t] <- entries |> List.map (fun ((n, _), c) -> n, ref c) |> List.sortBy (fun (n, _) -> n.Value) |> Array.ofList
        let placed =
            groups
            |> List.mapi (fun i g -> i, g)
            |> List.sortBy (fun (i, (_, k)) -> -k, i)
            |> List.map (fun (i, (t, k)) ->
                match byType.TryGetValue t with
                | true, nodes ->
                    // best fit: the fewest devices left that still hold k, lowest node id on ties
                    let mutable best = -1
                    for j in 0 .. nodes.Length - 1 do
                        let left = (snd nodes.[j]).Value
                        if left >= k && (best < 0 || left < (snd nodes.[best]).Value) then best <- j
                    if best < 0 then i, None
                    else
                        let n, c = nodes.[best]
                        c.Value <- c.Value - k
                        i, Some n
                | _ -> i, None)
        if placed |> List.exists (snd >> Option.isNone) then None
        else Some(placed |> List.sortBy fst |> List.map (snd >> Option.get))

    /// The free devices of `free` that `choices` leave unused, per (node, type); empty entries dropped.
    let leftover (free: Map<NodeId * PlacementType, int>) (choices: Choice list) =
        let used = choices |> List.groupBy (fun c -> c.Node, c.Option.Type) |> List.map (fun (key, cs) -> key, cs |> List.sumBy _.Option.Degree) |> Map.ofList
        free
        |> Map.map (fun key n -> n - (Map.tryFind key used |> Option.defaultValue 0))
        |> Map.filter (fun _ n -> n > 0)

    /// Work conservation (docs/policies.md, "Work-conserving dispatch"): completes any plan's choices
    /// so that no free device of the round stays idle while a waiting request could use it.
    ///   1. fill: every waiting request the choices leave out — the whole queue, not only the round's
    ///      candidates — takes, most urgent first, its best option that still fits the devices left
    ///      (best fit, as `choose`);
    ///   2. grow: devices still left go to chosen requests, most urgent first: each moves to its
    ///      best-valued admissible option (value w + μ·k: a larger degree within the efficiency rule,
    ///      finishing sooner — the latency term) that fits the devices left plus its own group,
    ///      best fit among nodes.
    /// Both steps only add reward − μ · idle, so the result is never worse than `choices` under the
    /// round's objective.
    let conserve (rd: Admissible.Round) (free: Map<NodeId * PlacementType, int>) (choices: Choice list) : Choice list =
        let s = rd.Snapshot
        let mu = s.Settings.IdlePenalty
        let left = leftover free choices
        if left.IsEmpty then choices
        else
            let chosen = choices |> List.collect (fun c -> c.Option.Request.Id :: (c.Mates |> List.map _.Id)) |> Set.ofList
            let rest = s.Queue |> List.filter (fun r -> not (chosen.Contains r.Id))
            let filled = if rest.IsEmpty then choices else choices @ choose left (offeredIn rd left rest)
            let left = System.Collections.Generic.Dictionary<NodeId * PlacementType, int>(leftover free filled)
            if left.Count = 0 then filled
            else
                let value (o: DispatchOption) = o.Reward + mu * float o.Degree
                [ for c in filled do
                      if not c.Mates.IsEmpty then yield c // a batch keeps its option: its reward is the batch's
                      else
                          let o = c.Option
                          // the devices this request may take: those left, plus its own group
                          let avail (key: NodeId * PlacementType) =
                              (match left.TryGetValue key with
                               | true, n -> n
                               | _ -> 0)
                              + (if key = (c.Node, o.Type) then o.Degree else 0)
                          let better =
                              [ for o' in Admissible.options rd o.Request do
                                    if value o' > value o + 1e-9 then
                                        for KeyValue((n, t), _) in free do
                                            if t = o'.Type && avail (n, t) >= o'.Degree then yield o', n, avail (n, t) ]
                              |> List.sortBy (fun (o', (NodeId n), a) -> -(value o'), a, n)
                              |> List.tryHead
                          match better with
                          | Some(o', n, target) ->
                              // give back its own group, then take the new one (`target` counted both)
                              left.[(c.Node, o.Type)] <- avail (c.Node, o.Type)
                              left.[(n, o'.Type)] <- target - o'.Degree
                              yield { c with Option = o'; Node = n }
                          | None -> yield c ]

    /// A whole greedy round: the plan and the choices behind it.
    let plan (reason: string) (s: Snapshot) : DispatchPlan * Choice list =
        let rd = round s
        let free = roundFree rd
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let choices = choose free (candidatesIn rd free nFree) |> conserve rd free
        { Now = s.Now
          Dispatches = dispatches rd choices
          Objective = Assign.objective s nFree choices
          Source = Greedy reason
          Batched = batchedOf choices },
        choices
