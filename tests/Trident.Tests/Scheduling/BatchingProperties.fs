/// Same-shape batching in the scheduling core (issue 12): the cost model's batch factor and best batch, and the
/// batches a round forms around its plan (Dispatching.Batching).
module Trident.Tests.BatchingProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Scheduling.Dispatching
open Trident.Scheduling.Mip
open Trident.Tests.TestSupport
open Trident.Tests.Generators

/// Test data, not a measurement: batch points for every diffuse shape and degree of a profile, a batch of b
/// taking `factors.[b]` × the single-request time.
let withBatches (factors: (int * float) list) (p: Profile) =
    let batches =
        [ for pt in p.Diffuse.Points do
              for (b, f) in factors -> ({ Shape = pt.Shape; Degree = pt.Degree; Batch = b; Seconds = pt.Seconds * f }: BatchPoint) ]
    { p with Diffuse = { p.Diffuse with Batches = batches } }

let private testFactors = [ 1, 1.0; 2, 1.3; 4, 2.0; 8, 3.8 ]

/// A snapshot whose queue has many same-key requests (steps folded to 4 or 8) and whose profile has batch points.
let private batchSnapshot (spec: SnapshotSpec) =
    let s = buildSnapshot DispatchSettings.defaults spec
    let cost = CostModel.create s.Cost.Settings (withBatches testFactors s.Cost.Profile)
    { s with
        Cost = cost
        Queue = s.Queue |> List.map (fun r -> { r with Steps = if r.Steps % 2 = 0 then 4 else 8 }) }

let ``batches never mix keys, and every request is batched once or left waiting`` =
    testProp 200 "a batch never mixes shapes or steps; every request is in at most one batch task; none is lost or run twice" <| fun () ->
        Prop.forAll snapshotSpecs (fun spec ->
            let s = batchSnapshot spec
            let plan = (Planner.plan s).Dispatch
            let maxBatch = 1 + (spec.Requests.Length % 6)
            // the runtime's compatibility (guidance, sampler) as an arbitrary predicate
            let compatible (a: Request) (b: Request) = (a.Id.Value + b.Id.Value) % 5L <> 1L
            let limitOf (r: Request) k = Batching.limit s.Cost maxBatch r.Shape k
            // the images of one request as an arbitrary predicate, too
            let always (a: Request) (b: Request) = (a.Id.Value * 7L + b.Id.Value) % 11L = 3L
            let batches, left = Batching.form s.Cost limitOf compatible always plan s.Queue
            let members = batches |> List.collect (fun b -> b.Members |> List.map _.Id)
            let all = members @ (left |> List.map _.Id)
            let byId = plan.Dispatches |> List.map (fun d -> d.Request, d) |> Map.ofList
            // every dispatch leads a batch, in plan order, unless a batch whose diffuse starts before its own took it in
            let ledOrTakenIn =
                let leads = batches |> List.map (fun b -> b.Dispatch.Request)
                let mates = batches |> List.collect (fun b -> b.Members.Tail |> List.map _.Id) |> Set.ofList
                let startsLater (b: Batch) (m: Request) =
                    match byId.TryFind m.Id with
                    | Some q -> q.Diffuse.Start > byId.[b.Dispatch.Request].Diffuse.Start
                    | None -> true
                leads = (plan.Dispatches |> List.map _.Request |> List.filter (fun r -> not (mates.Contains r)))
                && batches |> List.forall (fun b -> b.Members.Tail |> List.forall (startsLater b))
            (batches |> List.forall (fun b -> b.Members |> List.forall (fun m -> Batching.key m = Batching.key b.Members.Head))
             |> Prop.label "one key (pipeline, shape, steps) per batch")
            .&. (batches |> List.forall (fun b -> b.Members.Tail |> List.forall (compatible b.Members.Head)) |> Prop.label "members compatible with the lead")
            .&. (batches |> List.forall (fun b -> b.Size <= limitOf b.Members.Head b.Dispatch.Degree && b.Size <= maxBatch) |> Prop.label "size within the limit")
            .&. ((members |> List.distinct |> List.length) = members.Length |> Prop.label "a request is in at most one batch")
            .&. ((List.sort all) = (s.Queue |> List.map _.Id |> List.sort) |> Prop.label "batched + waiting = the queue: none lost, none twice")
            .&. (ledOrTakenIn |> Prop.label "one batch per dispatch, led by it, unless a batch starting earlier took it in")
            .&. (batches
                 |> List.forall (fun b ->
                     let d = byId.[b.Dispatch.Request]
                     let lead = b.Members.Head
                     let expected = float (d.Diffuse.Finish - d.Diffuse.Start) * CostModel.batchFactor s.Cost Diffuse lead.Shape d.Degree b.Size
                     close 1e-9 (float (b.Dispatch.Diffuse.Finish - b.Dispatch.Diffuse.Start)) expected
                     && b.Dispatch.Decode.Start >= b.Dispatch.Diffuse.Finish - 1e-9<s>)
                 |> Prop.label "the batch's diffuse takes the batch time, decode after it")
            .&. (batches
                 |> List.forall (fun b ->
                     // a mate that joined on its deadline's merit never made a member late that was on time before it
                     let lead = b.Members.Head
                     let d = byId.[lead.Id]
                     let finishAt n = (Batching.stretch s.Cost lead d n).Decode.Finish
                     b.Members.Tail |> List.exists (always lead)
                     || [ 1 .. b.Size ]
                        |> List.forall (fun n ->
                            b.Members |> List.truncate n |> List.forall (fun m -> m.Deadline < finishAt n || m.Deadline >= finishAt b.Size)))
                 |> Prop.label "no member on time at a smaller size is made late by the mates after it")
            |> Prop.classify (batches |> List.exists (fun b -> b.Size > 1)) "some batch > 1")

let ``the dispatch MIP prices batches`` =
    testProp 150 "the dispatch MIP prices batches: its plans keep every invariant, never mix keys, stay within the limit and never fall below greedy" <| fun () ->
        Prop.forAll snapshotSpecs (fun spec ->
            let maxBatch = 2 + (spec.Requests.Length % 5)
            let s0 = batchSnapshot spec
            let s = { s0 with Settings = { s0.Settings with MaxBatch = maxBatch } }
            let plan = Dispatcher.dispatch s
            let greedy, _ = Greedy.plan "reference" s
            let remaining = Planner.remaining s plan
            let checks =
                PlanChecks.all s plan remaining
                |> List.map (fun (name, violations) -> List.isEmpty violations |> Prop.label (sprintf "%s: %A" name violations))
                |> List.reduce (.&.)
            // the round's batches as the runtime forms them: a planned lead's batch starts with its planned mates
            let batches, left = Batching.form s.Cost (fun r k -> Batching.limit s.Cost maxBatch r.Shape k) (fun _ _ -> true) (fun _ _ -> false) plan s.Queue
            let planned =
                batches
                |> List.forall (fun b ->
                    match Map.tryFind b.Dispatch.Request plan.Batched with
                    | Some mates -> List.truncate mates.Length (b.Members.Tail |> List.map _.Id) = mates
                    | None -> true)
            let members = batches |> List.collect (fun b -> b.Members |> List.map _.Id)
            checks
            .&. (plan.Objective >= greedy.Objective - 1e-6 |> Prop.label (sprintf "mip %.3f < greedy %.3f" plan.Objective greedy.Objective))
            .&. (planned |> Prop.label "a planned batch starts with its planned mates")
            .&. (List.sort (members @ (left |> List.map _.Id)) = List.sort (s.Queue |> List.map _.Id) |> Prop.label "batched + waiting = the queue")
            |> Prop.classify (not plan.Batched.IsEmpty) "the MIP batched")

let ``the objective bound holds with batch options`` =
    testProp 80 "the objective bound holds with batch options: the solver never proves an optimum above it" <| fun () ->
        Prop.forAll snapshotSpecs (fun spec ->
            let s0 = batchSnapshot spec
            DispatchProperties.boundHolds { s0 with Settings = { s0.Settings with MaxBatch = 4 } })

/// One node of two flux devices ⟨EDC⟩ with batch points (f(2) = 1.3), idle at now = 100 s, and four 512² requests
/// of 28 steps — two of one shape, two of another — each due at twice its single run's finish.
let private twoDevicesFourRequests (maxBatch: int) =
    let cost = CostModel.create CostSettings.defaults (withBatches testFactors ReferenceProfiles.flux)
    let cluster = Cluster.uniform 1 2 80.0<GB> Bandwidths.pcie4Server
    let types = cluster.Devices |> Array.map (fun d -> d.Id, EDC) |> Map.ofArray
    let now = 100.0<s>
    let request i (shape: Shape) =
        let single = CostModel.encodeTime cost shape + CostModel.diffuseTime cost shape 28 1 + CostModel.decodeTime cost shape
        { Id = RequestId(int64 i); Model = cost.Profile.Model; Shape = shape; Steps = 28; Arrival = now
          Deadline = now + 2.0 * single; Priority = None }
    let a, b = Shape.image 512 512, Shape.image 768 768
    let queue = [ request 1 a; request 2 b; request 3 a; request 4 b ]
    let placement = { Types = types; Capacity = Map.empty; Alpha = 1.0; Moves = 0; Source = Greedy "test" }
    { Now = now; Cluster = cluster; Cost = cost; Placement = placement; BusyUntil = Array.create 2 (now - 1.0<s>)
      Queue = queue; Completed = Map.empty; Settings = { DispatchSettings.defaults with MaxBatch = maxBatch }; Bookings = Map.empty; IdleUntil = Map.empty }

let ``a batch is an option of the dispatch MIP`` =
    testList "batches in the dispatch MIP" [
        testCase "two free devices and two pairs of same-shape requests: two batches of two, all four on time" <| fun () ->
            let s = twoDevicesFourRequests 4
            let plan = Dispatcher.dispatch s
            Expect.equal plan.Dispatches.Length 2 (sprintf "one dispatch per device (%s)" (PlanSource.describe plan.Source))
            Expect.equal plan.Batched.Count 2 "each leads a batch"
            let served = DispatchPlan.served plan
            Expect.equal (List.sort served) [ RequestId 1L; RequestId 2L; RequestId 3L; RequestId 4L ] "all four run now"
            let shapeOf id = (s.Queue |> List.find (fun r -> r.Id = id)).Shape
            for KeyValue(lead, mates) in plan.Batched do
                Expect.equal (mates |> List.map shapeOf) [ shapeOf lead ] "a batch never mixes shapes"
            let batches, left = Batching.form s.Cost (fun r k -> Batching.limit s.Cost 4 r.Shape k) (fun _ _ -> true) (fun _ _ -> false) plan s.Queue
            Expect.isEmpty left "nothing waits"
            Expect.isTrue (batches |> List.forall (fun b -> b.Size = 2 && b.Dispatch.OnTime)) "two batches of two, each on time at its batch cost"
            let greedy, _ = Greedy.plan "reference" s
            Expect.isGreaterThan plan.Objective (greedy.Objective + 1000.0) "the batches earn two more on-time rewards than greedy's two starts"
        testCase "batching off (MaxBatch 1): no batch variable, two requests run, two wait" <| fun () ->
            let s = twoDevicesFourRequests 1
            Expect.isFalse
                (Dispatcher.roundModel s |> Option.exists (fun m -> m.Variables |> Map.exists (fun k _ -> match k with X _ | G _ -> true | _ -> false)))
                "no batch variables"
            let plan = Dispatcher.dispatch s
            Expect.isEmpty plan.Batched "no planned batch"
            Expect.equal (Planner.remaining s plan).Length 2 "two wait"
        testCase "the model names its batch families in LP text" <| fun () ->
            let s = twoDevicesFourRequests 4
            let lp = Dispatcher.roundModel s |> Option.get |> Model.toLpText
            Expect.stringContains lp "batch" "the batch constraints"
            Expect.stringContains lp "x_r" "member variables"
            Expect.stringContains lp "g_r" "batch-count variables"
    ]

let ``batch factor and best batch`` =
    testList "batch cost" [
        testCase "without batch points a batch of b costs b runs and the best batch is 1" <| fun () ->
            let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
            let shape = Shape.image 512 512
            Expect.equal (CostModel.batchFactor cost Diffuse shape 1 4) 4.0 "f(4) = 4"
            Expect.equal (CostModel.bestBatch cost shape 1) 1 "best batch 1"
            Expect.equal (Batching.limit cost 8 shape 1) 1 "no batching without batch points"
        testCase "with batch points the best batch maximises requests per device-second within the SLO" <| fun () ->
            let cost = CostModel.create CostSettings.defaults (withBatches testFactors ReferenceProfiles.flux)
            let shape = Shape.image 512 512
            Expect.equal (CostModel.batchFactor cost Diffuse shape 1 2) 1.3 "measured f(2)"
            Expect.floatClose Accuracy.high (CostModel.batchFactor cost Diffuse shape 1 3) 1.65 "f(3) between f(2) and f(4)"
            Expect.floatClose Accuracy.high (CostModel.batchFactor cost Diffuse shape 1 16) (3.8 * 2.0) "beyond 8: per request"
            // b / f(b): 1, 1.54, 2, 2.1 — 8 is best and f(8) = 3.8 ≤ the SLO scale 4
            Expect.equal (CostModel.bestBatch cost shape 1) 8 "best batch 8"
            Expect.equal (Batching.limit cost 4 shape 1) 4 "capped by MaxBatch"
            Expect.equal (Batching.limit cost 1 shape 1) 1 "MaxBatch 1 turns batching off"
            let tight = CostModel.create { CostSettings.defaults with Deadline = SloScale 2.0 } (withBatches testFactors ReferenceProfiles.flux)
            Expect.equal (CostModel.bestBatch tight shape 1) 4 "a tighter SLO (scale 2) allows f(b) ≤ 2: best batch 4"
        testCase "encode and decode cost at most b runs, as the runtime runs them item by item where a batch does not pay" <| fun () ->
            let p = withBatches testFactors ReferenceProfiles.flux
            // a decode whose batch run costs more than b runs (f(2) = 2.5, f(4) = 3)
            let decodeBatches =
                [ for pt in p.Decode.Points do
                      for (b, f) in [ 1, 1.0; 2, 2.5; 4, 3.0 ] -> ({ Shape = pt.Shape; Degree = pt.Degree; Batch = b; Seconds = pt.Seconds * f }: BatchPoint) ]
            let cost = CostModel.create CostSettings.defaults { p with Decode = { p.Decode with Batches = decodeBatches } }
            let shape = Shape.image 512 512
            Expect.equal (CostModel.batchFactor cost Decode shape 1 2) 2.5 "the measured decode f(2)"
            Expect.equal (CostModel.runFactor cost Decode shape 1 2) 2.0 "two runs of one: 2"
            Expect.equal (CostModel.runFactor cost Decode shape 1 4) 3.0 "where the batch run pays, it runs"
            Expect.equal (CostModel.runFactor cost Diffuse shape 1 2) 1.3 "the diffuse always runs the batch"
            Expect.equal (CostModel.runFactor cost Encode shape 1 3) 3.0 "no encode batch points: b runs"
            Expect.floatClose Accuracy.high (float (CostModel.batchTime cost Decode shape 28 1 2)) (2.0 * float (CostModel.decodeTime cost shape)) "batch time = one run · runFactor"
    ]

let ``profile files carry batch points`` =
    testList "profile format version 2" [
        testCase "batch points round-trip" <| fun () ->
            let p = withBatches testFactors ReferenceProfiles.sd3
            match ProfileFile.parse (ProfileFile.serialize p) with
            | Ok q -> Expect.equal q.Diffuse.Batches p.Diffuse.Batches "batches survive"
            | Error e -> failtestf "%A" e
        testCase "a version 1 file still loads, with no batch points" <| fun () ->
            let text = ProfileFile.serialize ReferenceProfiles.sd3
            let v1 = text.Replace("\"version\": 2", "\"version\": 1").Replace(",\n      \"batches\": []", "")
            Expect.isFalse (v1.Contains "batches") "the version 1 text has no batches"
            match ProfileFile.parse v1 with
            | Ok q -> Expect.isEmpty q.Diffuse.Batches "no batch points"
            | Error e -> failtestf "%A" e
        testCase "an unknown version and batch points without batch 1 are clear errors" <| fun () ->
            let text = ProfileFile.serialize (withBatches [ 2, 1.3 ] ReferenceProfiles.sd3)
            match ProfileFile.parse text with
            | Ok _ -> failtest "batch points without batch 1 must be refused"
            | Error e -> Expect.exists e (fun m -> m.Contains "none at batch 1") "names the missing batch 1"
            match ProfileFile.parse (ProfileFile.serialize ReferenceProfiles.sd3 |> fun t -> t.Replace("\"version\": 2", "\"version\": 3")) with
            | Ok _ -> failtest "version 3 must be refused"
            | Error e -> Expect.exists e (fun m -> m.Contains "$.version" && m.Contains "1, 2") "names the readable versions"
    ]

[<Tests>]
let tests =
    testList "BatchingProperties" [
        ``batches never mix keys, and every request is batched once or left waiting``
        ``the dispatch MIP prices batches``
        ``the objective bound holds with batch options``
        ``a batch is an option of the dispatch MIP``
        ``batch factor and best batch``
        ``profile files carry batch points``
    ]
