namespace Trident.Scheduling.Dispatching

// Design note. Same-shape batching (issue 12). Requests with the same pipeline (model), shape and steps
// can run as one batch: one ONNX Runtime run per stage with the batch dimension. The dispatch MIP prices
// batches as options of their own (DispatchMip, `options` below; DispatchSettings.MaxBatch > 1): a dispatch
// it chose to run as a batch names its mates (DispatchPlan.Batched), which join it first. Every batch is
// formed around a dispatch of the round's plan: the dispatched request leads it, and waiting requests of the same key
// that the plan did not dispatch join it, most urgent (higher priority, then earliest deadline, then earliest arrival) first,
// up to the batch limit of the lead's shape and degree (the profile's best batch size, capped by the
// server's MaxBatch). The batch keeps the lead's route and gets its own cost: every stage takes
// t(b) = t(1) · f(b) (CostModel.batchTime), so encode, diffuse and decode of the route are stretched by the
// batch's extra time and the later stages shifted by it; encode and decode take min(f(b), b), as the runtime
// runs them one request per run where the batch run does not pay (CostModel.runFactor; the simulator's batch
// tasks take the same).
// A request is in at most one batch of a round; a batch never mixes keys; the requests of the queue are
// exactly those of the batches plus those left waiting (FsCheck properties in
// tests/Trident.Tests/Scheduling/BatchingProperties.fs). The runtime may refuse extra members the
// scheduler cannot see (a different guidance scale or sampler): `compatible` says which may share a run.

open Trident.Scheduling

/// One batch task of a round: the route of its lead and the requests it runs, lead first.
/// Invariants: Members is not empty, its head is the dispatch's request, all members share
/// (model, shape, steps), and the dispatch's stage times are those of the whole batch.
type Batch =
    { Dispatch: Dispatch
      Members: Request list }

    member this.Size = this.Members.Length

/// Running a request as one of `Size` members of a batch on a group of its option's type and degree,
/// started now: what the dispatch MIP prices besides the option alone (DispatchMip).
type BatchOption =
    { Option: DispatchOption
      /// b ≥ 2 members
      Size: int
      /// predicted finish: the option's, plus the batch's extra stage time (Batching.extraTime)
      Finish: float<s>
      OnTime: bool
      /// the member's reward (Admissible.memberReward); the group's device penalty δ·k is paid once per batch
      Reward: float }

module Batching =
    /// What must be equal for requests to share one run: (pipeline, shape, steps).
    let key (r: Request) = r.Model, r.Shape, r.Steps

    /// The batch limit for a lead of `shape` at degree k: the profile's best batch (CostModel.bestBatch),
    /// capped by `maxBatch`; 1 when the profile measured no batches at that degree (a version 1 profile,
    /// the reference profiles) or `maxBatch` ≤ 1 (batching off).
    let limit (cost: CostModel) (maxBatch: int) (shape: Shape) (k: int) =
        let measured = (Profile.stage cost.Profile Diffuse).Batches |> List.exists (fun b -> b.Degree = k)
        if not measured || maxBatch <= 1 then 1 else min maxBatch (CostModel.bestBatch cost shape k)

    /// Seconds a batch of b adds to a stage that takes `one` seconds for one request of `shape` alone:
    /// one · (runFactor(b) − 1), the diffuse at degree k, encode and decode at degree 1 (they run one request
    /// per run where a batch run does not pay: b runs at most). What both `extraTime` and `stretch` add.
    let private stageExtra (cost: CostModel) (shape: Shape) (stage: Stage) (k: int) (b: int) (one: float<s>) =
        one * (CostModel.runFactor cost stage shape (if stage = Diffuse then k else 1) b - 1.0)

    /// Seconds a batch of b adds to the route of request r at degree k: Σ over its stages of `stageExtra`
    /// with the cost model's times — what `stretch` adds to the last stage's finish. 0 for b ≤ 1.
    let extraTime (cost: CostModel) (r: Request) (k: int) (b: int) : float<s> =
        if b <= 1 then 0.0<s>
        else
            let extra stage one = stageExtra cost r.Shape stage k b one
            extra Encode (CostModel.encodeTime cost r.Shape)
            + extra Diffuse (CostModel.diffuseTime cost r.Shape r.Steps k)
            + extra Decode (CostModel.decodeTime cost r.Shape)

    /// The batch options of a request this round: for each of its options `opts` and each size b from 2 up
    /// to the batch limit of its shape at the option's degree (`limit`, with DispatchSettings.MaxBatch), the
    /// request run as one of b members. None for a request resumed after a lost device (it runs alone: its
    /// kept output is its own) or when batching is off (MaxBatch ≤ 1, or no batch points in the profile).
    let options (rd: Admissible.Round) (r: Request) (opts: DispatchOption list) : BatchOption list =
        let s = rd.Snapshot
        if s.Settings.MaxBatch <= 1 || s.Completed.ContainsKey r.Id then []
        else
            [ for o in opts do
                  for b in 2 .. limit s.Cost s.Settings.MaxBatch r.Shape o.Degree do
                      let f = o.Finish + extraTime s.Cost r o.Degree b
                      yield { Option = o; Size = b; Finish = f; OnTime = f <= r.Deadline; Reward = Admissible.memberReward rd r o.Vr f } ]

    /// The route of a batch of b requests: each stage of the lead's route takes the batch's time
    /// (CostModel.batchTime), later stages shifted by the extra time of earlier ones; OnTime is re-checked
    /// against the lead's deadline.
    let stretch (cost: CostModel) (lead: Request) (d: Dispatch) (b: int) : Dispatch =
        if b = 1 then d
        else
            let extra stage (a: StageAssignment) = stageExtra cost lead.Shape stage d.Degree b (a.Finish - a.Start)
            let eExtra = extra Encode d.Encode
            let dExtra = extra Diffuse d.Diffuse
            let cExtra = extra Decode d.Decode
            let encode = { d.Encode with Finish = d.Encode.Finish + eExtra }
            let diffuse = { d.Diffuse with Start = d.Diffuse.Start + eExtra; Finish = d.Diffuse.Finish + eExtra + dExtra }
            let decode =
                { d.Decode with
                    Start = d.Decode.Start + eExtra + dExtra
                    Finish = d.Decode.Finish + eExtra + dExtra + cExtra }
            { d with Encode = encode; Diffuse = diffuse; Decode = decode; OnTime = decode.Finish <= lead.Deadline }

    /// Forms the round's batches: one per dispatch of `plan`, in plan order. A dispatch the planner chose to
    /// run as a batch (`plan.Batched`, the dispatch MIP's batch options) takes those mates first that are
    /// waiting, share its key and are `compatible` with it (the runtime may refuse a mate the planner cannot
    /// see is different; it then stays waiting). Every dispatch is then joined by requests of `queue` with the
    /// same key, `compatible` with the lead, higher priority then earliest deadline first, up to `limitOf lead degree` members (see
    /// the module note) — the planner offers a round only a few candidates per free device, so a batch it
    /// priced at b may run larger with waiting requests it did not see — as long as one more member makes no
    /// member late that is on time at the batch's present size (a batch finishes all its members together,
    /// later the larger it is; members late anyway do not stop it: in overload batches still grow for
    /// throughput). Mates that `always` join the lead (the images of one multi-image request, which run as one
    /// batch by contract) come first and join regardless. Another dispatch's planned mates are never taken. Mates are the waiting requests the plan did not
    /// dispatch and the requests the plan *queued* to start later (a dispatch whose diffuse starts after the
    /// lead's, `Assign.queueBehind`): such a request runs in the lead's batch instead of after it — where the
    /// limit allows a batch, a batch of b costs f(b) < b runs (CostModel.bestBatch), so it finishes sooner and
    /// its queued devices stay free — and its own dispatch is dropped (found on the live server: the images of
    /// one `num_images` request were queued one behind another instead of batched whenever the profile
    /// predicted a run shorter than the queue horizon).
    /// Returns the batches and the requests of the queue left waiting (queue order).
    let form
        (cost: CostModel)
        (limitOf: Request -> int -> int)
        (compatible: Request -> Request -> bool)
        (always: Request -> Request -> bool)
        (plan: DispatchPlan)
        (queue: Request list)
        =
        let byId = queue |> List.map (fun r -> r.Id, r) |> Map.ofList
        let dispatched = plan.Dispatches |> List.map _.Request |> Set.ofList
        let mutable left = queue |> List.filter (fun r -> not (dispatched.Contains r.Id))
        // requests of the plan's dispatches already in a batch (as its lead or absorbed as a mate)
        let batched = System.Collections.Generic.HashSet<RequestId>()
        // the planner's mates are kept for their own leads, never taken into another batch
        let planned = DispatchPlan.mates plan |> Set.ofList
        let batches =
            [ for d in plan.Dispatches do
                  match byId.TryFind d.Request with
                  | None -> () // a dispatch of a request not in the queue: the caller reports it
                  | Some _ when batched.Contains d.Request -> () // absorbed into an earlier batch
                  | Some lead ->
                      batched.Add lead.Id |> ignore
                      let room = limitOf lead d.Degree - 1
                      // the planner's mates first (DispatchPlan.Batched), then others up to the limit
                      let own =
                          match Map.tryFind lead.Id plan.Batched with
                          | Some mine ->
                              let waiting = left |> List.map (fun r -> r.Id, r) |> Map.ofList
                              mine
                              |> List.choose waiting.TryFind
                              |> List.filter (fun r -> key r = key lead && compatible lead r)
                              |> List.truncate (max 0 room)
                          | None -> []
                      let limit = 1 + max 0 room
                      // work of another key the plan gives the lead's devices after the lead (a backfill's booked work,
                      // Assign.backfill): a larger batch would run into it, so the lead keeps the planner's batch (checked
                      // only when the batch could grow: a scan of the plan per dispatch)
                      let bookedAfter () =
                          plan.Dispatches
                          |> List.exists (fun q ->
                              q.Request <> d.Request
                              && (match byId.TryFind q.Request with
                                  | Some r -> key r <> key lead
                                  | None -> true)
                              && [ q.Encode; q.Diffuse; q.Decode ]
                                 |> List.exists (fun a -> a.Start >= d.Diffuse.Start && a.Devices |> List.exists (fun g -> List.contains g d.Diffuse.Devices)))
                      let mates =
                          if own.Length + 1 >= limit || bookedAfter () then own
                          else
                              let queuedLater =
                                  [ for q in plan.Dispatches do
                                        if q.Diffuse.Start > d.Diffuse.Start && not (batched.Contains q.Request) then
                                            match byId.TryFind q.Request with
                                            | Some r -> yield r
                                            | None -> () ]
                              let candidates =
                                  left @ queuedLater
                                  |> List.filter (fun r -> key r = key lead && compatible lead r && not (planned.Contains r.Id))
                                  |> List.sortBy (fun r -> (if always lead r then 0 else 1), -(Priority.level r.Priority), r.Deadline, r.Arrival, r.Id.Value)
                              // grow the batch while no member on time at its size is made late by one more
                              // (a batch finishes all its members at once, later the larger it is); the mates
                              // that `always` join (the images of one request) come first and join regardless.
                              // A rule on the mate itself (join only when on time in the batch or late even
                              // alone) changed nothing simulated (tiny profile, 2 devices, 10 and 20 req/s): not
                              // kept (docs/policies.md, "Batches in the dispatch MIP")
                              let finishAt b = (stretch cost lead d b).Decode.Finish
                              let mutable members = lead :: own
                              let mutable stopped = false
                              for c in candidates do
                                  let b = members.Length
                                  if not stopped && b < limit then
                                      if always lead c then members <- members @ [ c ]
                                      else
                                          let now, next = finishAt b, finishAt (b + 1)
                                          if members |> List.forall (fun m -> m.Deadline < now || m.Deadline >= next) then members <- members @ [ c ]
                                          else stopped <- true
                              List.tail members
                      let taken = mates |> List.map _.Id |> Set.ofList
                      for m in taken do
                          batched.Add m |> ignore
                      left <- left |> List.filter (fun r -> not (taken.Contains r.Id))
                      let members = lead :: mates
                      yield { Dispatch = stretch cost lead d members.Length; Members = members } ]
        batches, left
