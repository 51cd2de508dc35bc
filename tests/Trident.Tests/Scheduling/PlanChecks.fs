/// The dispatch invariants of design.md §6, as checks that name every violation. Properties for
/// every planner (greedy, MIP, baselines) use the same checks.
module Trident.Tests.PlanChecks

open Trident.Scheduling
open Trident.Scheduling.Dispatching

let private eps = 1e-9<s>

/// No device is given two tasks that overlap in time, nor a task before it is free — on a device held idle for
/// booked work (Snapshot.IdleUntil) only one that ends by that work's start —, nor one that overlaps a later
/// booking of the device (Snapshot.Bookings).
let noOverlap (s: Snapshot) (plan: DispatchPlan) =
    let intervals =
        [ for d in plan.Dispatches do
              for g in d.Diffuse.Devices do
                  let from = if List.contains g d.Encode.Devices then d.Encode.Start else d.Diffuse.Start
                  yield g, from, d.Diffuse.Finish, d.Request
              for e in d.Encode.Devices do
                  if not (List.contains e d.Diffuse.Devices) then yield e, d.Encode.Start, d.Encode.Finish, d.Request
              for c in d.Decode.Devices do
                  yield c, d.Decode.Start, d.Decode.Finish, d.Request ]
    [ for (dev, group) in intervals |> List.groupBy (fun (d, _, _, _) -> d) do
          let free = s.BusyUntil.[dev.Value]
          // a device held idle for booked work (Snapshot.IdleUntil) takes a task before it that ends by its start
          let held = Map.tryFind dev s.IdleUntil
          for (_, a, b, r) in group do
              if a + eps < free then
                  match held with
                  | Some until when a + eps >= s.Now && b <= until + eps -> ()
                  | Some until ->
                      yield sprintf "%O: task of %O (%g–%g) runs into the work booked at %g on the held device" dev r (float a) (float b) (float until)
                  | None -> yield sprintf "%O: task of %O starts at %g before the device is free at %g" dev r (float a) (float free)
          for (a, b) in s.Bookings |> Map.tryFind dev |> Option.defaultValue [] do
              for (_, a', b', r) in group do
                  if a' + eps < b && a + eps < b' then
                      yield sprintf "%O: task of %O (%g–%g) overlaps a booking (%g–%g)" dev r (float a') (float b') (float a) (float b)
          let sorted = group |> List.sortBy (fun (_, a, b, _) -> a, b)
          for ((_, _, b1, r1), (_, a2, _, r2)) in List.pairwise sorted do
              if a2 + eps < b1 then
                  yield sprintf "%O: tasks of %O and %O overlap (%g < %g)" dev r1 r2 (float a2) (float b1) ]

/// Every dispatched request has one E, one D with k devices of one node and one primary type, one
/// C, in that order in time — a stage the request completed before it was re-queued (Snapshot.Completed)
/// has no device and no duration instead.
let wellFormed (s: Snapshot) (plan: DispatchPlan) =
    let queue = s.Queue |> List.map (fun r -> r.Id, r) |> Map.ofList
    [ for d in plan.Dispatches do
          let r = queue.[d.Request]
          let planned stage = Admissible.remains s r stage
          let nodes = d.Diffuse.Devices |> List.map (Cluster.nodeOf s.Cluster) |> List.distinct
          let types = d.Diffuse.Devices |> List.map (fun g -> s.Placement.Types.[g]) |> List.distinct
          let encodes = if planned Encode then 1 else 0
          let diffuses = if planned Diffuse then d.Degree else 0
          if d.Encode.Devices.Length <> encodes then yield sprintf "%O: %d encode devices, %d expected" d.Request d.Encode.Devices.Length encodes
          if d.Decode.Devices.Length <> 1 then yield sprintf "%O: %d decode devices" d.Request d.Decode.Devices.Length
          if d.Diffuse.Devices.Length <> diffuses then yield sprintf "%O: degree %d but %d devices, %d expected" d.Request d.Degree d.Diffuse.Devices.Length diffuses
          for (stage, a) in [ Encode, d.Encode; Diffuse, d.Diffuse ] do
              if not (planned stage) && a.Finish <> a.Start then yield sprintf "%O: its completed %A takes time" d.Request stage
          if List.distinct d.Diffuse.Devices <> d.Diffuse.Devices then yield sprintf "%O: a device twice in its group" d.Request
          if planned Diffuse then
              if nodes.Length <> 1 then yield sprintf "%O: diffuse group spans nodes %A" d.Request nodes
              if types.Length <> 1 || not (PlacementType.isPrimary types.Head) then yield sprintf "%O: diffuse group types %A" d.Request types
          // a stage the group's type lacks runs on its lead only when the placement has no auxiliary device of its
          // kind and the lead holds the stage beside its own weights (Admissible.leadRuns)
          let onLead stage (dev: DeviceId) =
              let aux = if stage = Encode then E else C
              (d.Diffuse.Devices.IsEmpty || d.Diffuse.Devices.Head = dev)
              && PlacementType.isPrimary s.Placement.Types.[dev]
              && not (s.Placement.Types |> Map.exists (fun _ t -> t = aux))
              && CostModel.leadFits s.Cost s.Placement.Types.[dev] stage r.Shape (Cluster.device s.Cluster dev).Memory
          let runs stage (dev: DeviceId) = PlacementType.holds stage s.Placement.Types.[dev] || onLead stage dev
          if planned Encode && not (runs Encode d.Encode.Devices.Head) then yield sprintf "%O: encode on a device without E" d.Request
          if not (runs Decode d.Decode.Devices.Head) then yield sprintf "%O: decode on a device without C" d.Request
          if d.Encode.Finish > d.Diffuse.Start + eps then yield sprintf "%O: diffuse starts before encode ends" d.Request
          if d.Diffuse.Finish > d.Decode.Start + eps then yield sprintf "%O: decode starts before diffuse ends" d.Request
          for a in [ d.Encode; d.Diffuse; d.Decode ] do
              if a.Start > a.Finish then yield sprintf "%O: a stage ends before it starts" d.Request
              if a.Start + eps < s.Now then yield sprintf "%O: starts before now" d.Request ]

/// Every device's resident models plus the activation of the task it runs fit its memory.
let memoryFits (s: Snapshot) (plan: DispatchPlan) =
    let queue = s.Queue |> List.map (fun r -> r.Id, r) |> Map.ofList
    [ for d in plan.Dispatches do
          let r = queue.[d.Request]
          let check dev k =
              let device = Cluster.device s.Cluster dev
              let t = s.Placement.Types.[dev]
              let need = CostModel.memoryNeed s.Cost t r.Shape k
              if need > device.Memory then
                  Some(sprintf "%O on %O (%A): needs %.1f GB, has %.1f GB" d.Request dev t (float need) (float device.Memory))
              else None
          yield! d.Diffuse.Devices |> List.choose (fun g -> check g d.Degree)
          yield! d.Encode.Devices |> List.filter (fun e -> not (List.contains e d.Diffuse.Devices)) |> List.choose (fun e -> check e 1)
          // a request resumed at its decode: a primary device runs that decode alone
          let decodeOnly (c: DeviceId) =
              d.Diffuse.Devices.IsEmpty && PlacementType.isPrimary s.Placement.Types.[c]
              && Admissible.decodeFits s.Cost s.Placement.Types.[c] r.Shape (Cluster.device s.Cluster c).Memory
          yield! d.Decode.Devices |> List.filter (fun c -> not (List.contains c d.Diffuse.Devices) && not (decodeOnly c)) |> List.choose (fun c -> check c 1) ]

/// k is allowed and passes the admissibility rules.
let degreesAdmissible (s: Snapshot) (plan: DispatchPlan) =
    let queue = s.Queue |> List.map (fun r -> r.Id, r) |> Map.ofList
    let nodeSize = s.Cluster.Devices |> Array.countBy _.Node |> Array.map snd |> Array.max
    [ for d in plan.Dispatches do
          // a request resumed at its decode (no diffuse group) is planned at degree 1
          if d.Diffuse.Devices.IsEmpty then
              if d.Degree <> 1 then yield sprintf "%O: resumed at its decode with degree %d" d.Request d.Degree
          else
              let r = queue.[d.Request]
              let t = s.Placement.Types.[d.Diffuse.Devices.Head]
              let memory = d.Diffuse.Devices |> List.map (fun g -> (Cluster.device s.Cluster g).Memory) |> List.min
              if not (List.contains d.Degree s.Cost.Degrees) then yield sprintf "%O: degree %d not allowed" d.Request d.Degree
              elif not (Admissible.degreeAdmissible s.Cost t r.Shape memory nodeSize d.Degree) then
                  yield sprintf "%O: degree %d not admissible for %O on %A" d.Request d.Degree r.Shape t ]

/// Each request at most once, only requests of the queue; the rest stay queued.
let conservation (s: Snapshot) (plan: DispatchPlan) (remaining: Request list) =
    let leads = plan.Dispatches |> List.map _.Request
    let ids = DispatchPlan.served plan
    let queued = s.Queue |> List.map _.Id |> Set.ofList
    let byId = s.Queue |> List.map (fun r -> r.Id, r) |> Map.ofList
    [ if List.distinct ids <> ids then yield "a request is dispatched twice (or is a batch mate and dispatched)"
      for KeyValue(lead, ms) in plan.Batched do
          if not (List.contains lead leads) then yield sprintf "batch lead %O has no dispatch" lead
          if ms.IsEmpty then yield sprintf "batch of %O has no mate" lead
          match byId.TryFind lead with
          | Some l ->
              for m in ms do
                  match byId.TryFind m with
                  | Some r when Batching.key r <> Batching.key l -> yield sprintf "batch of %O mixes keys with %O" lead m
                  | _ -> ()
              match plan.Dispatches |> List.tryFind (fun d -> d.Request = lead) with
              | Some d when 1 + ms.Length > Batching.limit s.Cost s.Settings.MaxBatch l.Shape d.Degree ->
                  yield sprintf "batch of %O has %d members, above its limit" lead (1 + ms.Length)
              | _ -> ()
          | None -> ()
      for i in ids do
          if not (queued.Contains i) then yield sprintf "%O dispatched but not queued" i
      let back = remaining |> List.map _.Id |> Set.ofList
      if Set.union back (Set.ofList ids) <> queued || not (Set.intersect back (Set.ofList ids)).IsEmpty then
          yield "dispatched + remaining is not the queue" ]

/// All invariants of a plan, as (name, violations).
let all (s: Snapshot) (plan: DispatchPlan) (remaining: Request list) =
    [ "no device runs two tasks at once", noOverlap s plan
      "every request has one E, one D in one node, one C, in order", wellFormed s plan
      "every device's models and activations fit its memory", memoryFits s plan
      "every degree is allowed and admissible", degreesAdmissible s plan
      "no request is dispatched twice or lost", conservation s plan remaining ]

/// Work conservation (docs/policies.md, "Work-conserving dispatch"): after the plan, no free primary
/// device — busy-until ≤ now and not in a dispatched group — of a node the round does not reserve
/// stays idle while a request the plan leaves queued has an admissible option that fits it (some
/// node has at least k such devices of the option's type). Checked for Trident's planners only: the
/// baselines' FIFO heads block by design.
let workConserving (s: Snapshot) (plan: DispatchPlan) =
    // the round the plan was made on: requests committed to a larger group are dispatched (their devices used)
    let rd = Greedy.round s
    let reserved = Greedy.reservation rd
    let used = plan.Dispatches |> List.collect _.Diffuse.Devices |> Set.ofList
    let idle =
        s.Cluster.Devices
        |> Array.filter (fun d ->
            s.BusyUntil.[d.Id.Value] <= s.Now
            && PlacementType.isPrimary s.Placement.Types.[d.Id]
            && not (used.Contains d.Id)
            && reserved <> Some(d.Node, s.Placement.Types.[d.Id]))
        |> Array.countBy (fun d -> d.Node, s.Placement.Types.[d.Id])
    let dispatched = DispatchPlan.served plan |> Set.ofList
    [ for r in s.Queue do
          if not (dispatched.Contains r.Id) then
              for o in Admissible.options rd r do
                  match idle |> Array.tryFind (fun ((_, t), n) -> t = o.Type && n >= o.Degree) with
                  | Some((node, t), n) ->
                      yield sprintf "%O waits with a %d-device option on %A while %O has %d idle %A devices" r.Id o.Degree o.Type node n t
                  | None -> () ]
