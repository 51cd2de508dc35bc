/// Step-boundary preemption in the planner and the simulator: a suspended request is never lost or
/// run twice, its steps add up, the bound on suspensions holds, and an image that waiting would make
/// late runs on time on a suspended video's devices.
module Trident.Tests.PreemptionTests

open Expecto
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Scheduling.Dispatching
open Trident.Tests.TestSupport
open Trident.Tests.SimulatorTests

let private hunyuan (slo: float) = CostModel.create { CostSettings.defaults with Deadline = SloScale slo } ReferenceProfiles.hunyuanvideo

let private request (cost: CostModel) (id: int64) (arrival: float) (shape: Shape) (steps: int) =
    { Id = RequestId id
      Model = cost.Profile.Model
      Shape = shape
      Steps = steps
      Arrival = arrival * 1.0<s>
      Deadline = CostModel.deadline cost (arrival * 1.0<s>) shape steps
      Priority = None }

/// One node of 8 devices; solver limits generous enough that no solve stops on time (exact replays).
let private configFor (cost: CostModel) =
    { SimConfig.create (Cluster.uniform 1 8 48.0<GB> Bandwidths.pcie4Server) cost with
        Dispatch = { DispatchSettings.defaults with TimeLimit = 10.0<s> }
        PlacementTimeLimit = 10.0<s> }

let private preempting (bound: int) =
    Baselines.tridentPreempt 0.5<s> None { PreemptionSettings.defaults with MaxSuspensions = bound }

/// Four videos fill the ⟨ED⟩ devices of one node; two images arrive 30 s later, the second one
/// late if it waits for a free device (deadline = arrival + 1.5 · t_ref).
let private blockedImages () =
    let cost = hunyuan 1.5
    let video i t = request cost i t (Shape.video 960 544 33) 50
    cost,
    [ video 0L 0.0
      video 1L 0.5
      video 2L 0.7
      video 3L 0.8
      request cost 4L 30.0 (Shape.image 960 544) 50
      request cost 5L 31.0 (Shape.image 720 1280) 50 ]

let ``an image that waiting makes late runs on time on a suspended video's devices`` =
    testCase "an image that waiting makes late runs on time on a suspended video's devices" <| fun () ->
        let cost, requests = blockedImages ()
        let config = configFor cost
        let plain = Simulator.run config (Baselines.trident 0.5<s> None) requests
        let pre = Simulator.run config (preempting 2) requests
        let outcome (r: SimResult) id = (r.Records |> Array.find (fun x -> x.Request.Id = RequestId id)).Outcome
        Expect.equal (outcome plain 5L) Late "without preemption the second image waits and is late"
        Expect.equal (outcome pre 5L) OnTime "with preemption the second image is on time"
        Expect.equal plain.Summary.Suspensions 0 "Trident without preemption suspends nothing"
        Expect.isGreaterThanOrEqual pre.Summary.Suspensions 1 "a video was suspended"
        let suspended = pre.Records |> Array.filter (fun x -> x.Suspensions > 0)
        for x in suspended do
            Expect.equal x.Outcome (outcome plain x.Request.Id.Value) "the suspended video keeps its outcome"
            Expect.equal (x.Segments |> List.sumBy _.Steps) x.Request.Steps "its steps add up"
            let first, last = List.head x.Segments, List.last x.Segments
            Expect.isLessThan first.Steps x.Request.Steps "it stopped before its last step"
            // resumed on the same devices (the default), after the image and the latents' copy back
            Expect.equal last.Devices first.Devices "resumed on its own devices"
            let image = pre.Records |> Array.find (fun r -> r.Request.Id = RequestId 5L)
            Expect.isGreaterThanOrEqual last.Start image.Diffuse.Value.Finish "resumed after the image's diffuse"
        Expect.isGreaterThan pre.Summary.SloAttainment plain.Summary.SloAttainment "attainment rises"

let ``no suspension without a bound, and the decision follows the objective`` =
    testCase "no suspension without a bound, and the decision follows the objective" <| fun () ->
        let cost, requests = blockedImages ()
        let config = configFor cost
        let zero = Simulator.run config (preempting 0) requests
        let plain = Simulator.run config (Baselines.trident 0.5<s> None) requests
        Expect.equal zero.Summary.Suspensions 0 "MaxSuspensions = 0 never suspends"
        Expect.equal (zero.Records |> Array.map _.Outcome) (plain.Records |> Array.map _.Outcome) "and serves as Trident does"
        // a gain threshold above the on-time reward: the image's gain never clears it
        let strict =
            Baselines.tridentPreempt 0.5<s> None { PreemptionSettings.defaults with MinGain = 2.0 * DispatchSettings.defaults.OnTimeReward }
        Expect.equal (Simulator.run config strict requests).Summary.Suspensions 0 "no suspension when gain − loss is below MinGain"
        // V(r, f): on time beats late, and sooner beats later
        let r = List.last requests
        let v = Preemption.value DispatchSettings.defaults r
        Expect.isGreaterThan (v r.Deadline) (v (r.Deadline + 1.0<s>)) "on time is worth more than late"
        Expect.isGreaterThan (v r.Arrival) (v r.Deadline) "sooner is worth more"
        Expect.isNonEmpty (PreemptionSettings.validate { PreemptionSettings.defaults with MaxSuspensions = -1 }) "a negative bound is refused"
        Expect.isEmpty (PreemptionSettings.validate PreemptionSettings.defaults) "the defaults are valid"

/// A random blocked node: videos at the start, images later, random steps, SLO scale and bound.
type private PreemptSpec =
    { Videos: (int * int) list
      Images: (int * int * int) list
      SloTenths: int
      Bound: int }

let private preemptSpecs =
    gen {
        let! videos = Gen.listOfLength 4 (Gen.zip (Gen.choose (0, 2)) (Gen.choose (5, 50))) |> Gen.map (List.truncate 4)
        let! nv = Gen.choose (1, 4)
        let! ni = Gen.choose (1, 6)
        let! images = Gen.listOfLength ni (Gen.zip3 (Gen.choose (0, 1)) (Gen.choose (5, 150)) (Gen.choose (5, 50)))
        let! slo = Gen.choose (11, 40)
        let! bound = Gen.choose (0, 3)
        return { Videos = List.truncate nv videos; Images = images; SloTenths = slo; Bound = bound }
    }
    |> Arb.fromGen

let private runSpec (spec: PreemptSpec) =
    let cost = hunyuan (float spec.SloTenths / 10.0)
    let videoShapes = [| Shape.video 960 544 33; Shape.video 960 544 17; Shape.video 720 1280 17 |]
    let imageShapes = [| Shape.image 960 544; Shape.image 720 1280 |]
    let requests =
        [ for i, (sh, steps) in List.indexed spec.Videos -> request cost (int64 i) (0.25 * float i) videoShapes.[sh] steps
          for j, (sh, t, steps) in List.indexed spec.Images -> request cost (int64 (10 + j)) (float t) imageShapes.[sh] steps ]
    requests, Simulator.run (configFor cost) (preempting spec.Bound) requests

let ``a suspended request is never lost or run twice and its steps add up`` =
    testProp 40 "a suspended request is never lost or run twice and its steps add up" <| fun () ->
        Prop.forAll preemptSpecs (fun spec ->
            let requests, result = runSpec spec
            let steps =
                [ for r in result.Records do
                      if r.Outcome = OnTime || r.Outcome = Late then
                          let done' = r.Segments |> List.sumBy _.Steps
                          if done' <> r.Request.Steps then yield sprintf "%O: %d steps done + %d remaining ≠ %d" r.Request.Id done' (r.Request.Steps - done') r.Request.Steps
                      if r.Suspensions > spec.Bound then yield sprintf "%O suspended %d times, bound %d" r.Request.Id r.Suspensions spec.Bound
                      if r.Segments.Length > 0 && r.Segments.Length <> r.Suspensions + 1 then
                          yield sprintf "%O: %d diffuse tasks for %d suspensions" r.Request.Id r.Segments.Length r.Suspensions
                      for (a, b) in List.pairwise r.Segments do
                          if b.Start < a.Finish then yield sprintf "%O resumed before it stopped" r.Request.Id
                          if b.Devices.Length <> a.Devices.Length then yield sprintf "%O resumed at another degree" r.Request.Id ]
            let ok (name: string) (violations: string list) = List.isEmpty violations |> Prop.label (sprintf "%s: %A" name (List.truncate 5 violations))
            (ok "conservation" (conservation requests result))
            .&. (ok "no double booking" (noDoubleBooking result))
            .&. (ok "time monotone" (timeMonotone result))
            .&. (ok "steps and bound" steps)
            .&. ((result.Summary.Suspensions = (result.Records |> Array.sumBy _.Suspensions)) |> Prop.label "summary counts suspensions")
            |> Prop.classify (result.Summary.Suspensions > 0) "some suspension")

[<Tests>]
let tests =
    testList "unit" [ testList "PreemptionTests" [
        ``an image that waiting makes late runs on time on a suspended video's devices``
        ``no suspension without a bound, and the decision follows the objective``
        ``a suspended request is never lost or run twice and its steps add up``
    ] ]
