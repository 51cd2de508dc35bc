/// The simulator's properties (conservation, no double booking, monotone time, bit-identical
/// replays), Adjust-on-Dispatch across a shifting workload, the baselines' out-of-memory behaviour,
/// and the workload generators and trace format.
module Trident.Tests.SimulatorTests

open System
open Expecto
open Trident.Tests.TestSupport
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Scheduling.Placement
open Trident.Tests.Generators

// ---- specs -----------------------------------------------------------------------------------

/// One simulated run: cluster, profile, policy and a small trace, as shrinkable integers.
type SimSpec =
    { Profile: int
      Nodes: int
      PerNode: int
      /// index into `policyOf`
      Policy: int
      /// per request: shape index, gap to the previous arrival in tenths of a second, steps
      Requests: (int * int * int) list
      /// jitter in percent (0 most of the time)
      Jitter: int
      SloPercent: int }

let private clampI lo hi x = max lo (min hi x)
let private pickL (xs: 'a list) (i: int) = xs.[((i % xs.Length) + xs.Length) % xs.Length]

/// Solver limits generous enough that no solve in these small runs stops on time, so replays are
/// exact (a time-limited solve is the one source of nondeterminism).
let private testDispatch = { DispatchSettings.defaults with TimeLimit = 10.0<s> }

let policyOf (i: int) =
    pickL
        [ Baselines.b1 1
          Baselines.b1 2
          Baselines.b2
          Baselines.b3
          Baselines.b4
          Baselines.b5 StageSplit.paperLightLoad
          Baselines.b6 StageSplit.paperLightLoad
          Baselines.trident 0.5<s> (Some { AdjustSettings.defaults with Window = 20.0<s>; MinSamples = 5; Cooldown = 5.0<s>; TimeLimit = 10.0<s> })
          Baselines.tridentPreempt 0.5<s> None Dispatching.PreemptionSettings.defaults ]
        i

let buildRun (spec: SimSpec) =
    let profile = pickL ReferenceProfiles.all spec.Profile
    let cost =
        CostModel.create { CostSettings.defaults with Deadline = SloScale(float (clampI 50 800 (abs spec.SloPercent)) / 100.0) } profile
    let cluster = Cluster.uniform (clampI 1 3 spec.Nodes) (pickL [ 2; 4; 8 ] spec.PerNode) 48.0<GB> Bandwidths.pcie4Server
    let shapes = Workload.referenceShapes profile.Model.Value |> Option.get
    let arrivals =
        spec.Requests |> List.scan (fun t (_, gap, _) -> t + float (clampI 0 200 (abs gap)) * 0.1) 0.0 |> List.tail
    let requests =
        List.zip spec.Requests arrivals
        |> List.mapi (fun i ((sh, _, steps), t) ->
            let shape = pickL shapes sh
            let steps = clampI 1 8 (abs steps)
            { Id = RequestId(int64 i)
              Model = profile.Model
              Shape = shape
              Steps = steps
              Arrival = t * 1.0<s>
              Deadline = CostModel.deadline cost (t * 1.0<s>) shape steps
              Priority = None })
    let config =
        { SimConfig.create cluster cost with
            Dispatch = testDispatch
            PlacementTimeLimit = 10.0<s>
            Jitter = (if spec.Jitter % 4 = 0 then float (clampI 0 50 (abs spec.Jitter)) / 100.0 else 0.0)
            Seed = uint64 (abs spec.Jitter) }
    config, policyOf spec.Policy, requests

let simSpecGen =
    Gen.sized (fun size ->
        gen {
            let! profile = Gen.choose (0, 3)
            let! nodes = Gen.choose (1, 3)
            let! perNode = Gen.choose (0, 2)
            let! policy = Gen.choose (0, 8)
            let! n = Gen.choose (0, max 1 (min 40 size))
            let! requests = Gen.listOfLength n (Gen.zip3 (Gen.choose (0, 9)) (Gen.frequency [ 3, Gen.choose (0, 5); 1, Gen.choose (5, 200) ]) (Gen.choose (1, 8)))
            let! jitter = Gen.frequency [ 3, Gen.constant 0; 1, Gen.choose (0, 40) ]
            let! slo = Gen.choose (50, 800)
            return { Profile = profile; Nodes = nodes; PerNode = perNode; Policy = policy; Requests = requests; Jitter = jitter; SloPercent = slo }
        })

let simSpecs: Arbitrary<SimSpec> =
    Arb.fromGenShrink (simSpecGen, (ArbMap.defaults |> ArbMap.arbitrary<SimSpec>).Shrinker)

// ---- checks ----------------------------------------------------------------------------------

let private eps = 1e-9<s>

/// The tasks a request may run of a stage: one, and one more per suspension (diffuse: the rest of
/// its steps) or per decode pause (decode: the tiles after the pause).
let allowedTasks (result: SimResult) (id: RequestId) (stage: Stage) =
    let r = result.Records |> Array.find (fun x -> x.Request.Id = id)
    match stage with
    | Diffuse -> 1 + r.Suspensions
    | Decode -> 1 + r.DecodePauses
    | Encode -> 1

/// Every arrival ends in exactly one outcome, consistent with the tasks that ran; no request runs
/// a stage twice (a suspended diffuse task runs once more per suspension: the rest of its steps).
let conservation (requests: Request list) (result: SimResult) =
    [ if result.Records.Length <> requests.Length then
          yield sprintf "%d records for %d requests" result.Records.Length requests.Length
      let ids = result.Records |> Array.map (fun r -> r.Request.Id)
      if (Array.distinct ids).Length <> ids.Length then yield "a request has two records"
      if Set.ofArray ids <> (requests |> List.map _.Id |> Set.ofList) then yield "records and requests differ"
      for (key, n) in result.Tasks |> Array.countBy (fun t -> t.Request, t.Stage) do
          let allowed = allowedTasks result (fst key) (snd key)
          if n > allowed then yield sprintf "%O ran %A %d times" (fst key) (snd key) n
      for r in result.Records do
          let tasks = result.Tasks |> Array.filter (fun t -> t.Request = r.Request.Id)
          match r.Outcome with
          | OnTime
          | Late ->
              if tasks.Length <> 3 + r.Suspensions + r.DecodePauses || tasks |> Array.exists _.Failed then yield sprintf "%O completed with %d tasks" r.Request.Id tasks.Length
              if r.Segments |> List.sumBy _.Steps <> r.Request.Steps then yield sprintf "%O ran %d of %d steps" r.Request.Id (r.Segments |> List.sumBy _.Steps) r.Request.Steps
              match r.Finish with
              | Some f when (f <= r.Request.Deadline) <> (r.Outcome = OnTime) -> yield sprintf "%O: outcome %A but finish %g vs deadline %g" r.Request.Id r.Outcome (float f) (float r.Request.Deadline)
              | None -> yield sprintf "%O completed without a finish" r.Request.Id
              | _ -> ()
          | OutOfMemory _ ->
              if tasks |> Array.filter _.Failed |> Array.length <> 1 then yield sprintf "%O: OOM without exactly one failed task" r.Request.Id
          | Unserved ->
              if tasks.Length > 0 || r.Dispatched.IsSome then yield sprintf "%O unserved but dispatched" r.Request.Id ]

/// No device runs two tasks (or loads) at once.
let noDoubleBooking (result: SimResult) =
    let intervals =
        [ for t in result.Tasks do
              for d in t.Devices do
                  let load = t.Loads |> List.tryFind (fun (dev, _) -> dev = d) |> Option.map snd |> Option.defaultValue 0.0<s>
                  // a task that failed at its start (out of memory) and loaded nothing holds the device for no time: the
                  // simulator books nothing for it, so a later decode may take that moment (found by the decode order's
                  // reshuffles, 2026-12-01; the same happens with the earliest gap)
                  if t.Finish - (t.Start - load) > eps then yield d, t.Start - load, t.Finish, t.Request, t.Stage ]
    [ for (dev, xs) in intervals |> List.groupBy (fun (d, _, _, _, _) -> d) do
          let sorted = xs |> List.sortBy (fun (_, a, b, _, _) -> a, b)
          for ((_, _, b1, r1, s1), (_, a2, _, r2, s2)) in List.pairwise sorted do
              if a2 + eps < b1 then yield sprintf "%O: %O %A and %O %A overlap (%g < %g)" dev r1 s1 r2 s2 (float a2) (float b1) ]

/// Time moves forward: rounds in order; a request is dispatched after it arrives, and its stages
/// run after dispatch, in order, each ending after it starts.
let timeMonotone (result: SimResult) =
    [ for (a, b) in Array.pairwise result.Rounds do
          if b.Time < a.Time then yield sprintf "round at %g after round at %g" (float b.Time) (float a.Time)
      for r in result.Records do
          match r.Dispatched with
          | Some d when d + eps < r.Request.Arrival -> yield sprintf "%O dispatched before arrival" r.Request.Id
          | _ -> ()
          let stages = [ r.Encode; r.Diffuse; r.Decode ] |> List.choose id
          for t in stages do
              if t.Finish < t.Start then yield sprintf "%O %A ends before it starts" r.Request.Id t.Stage
              match r.Dispatched with
              | Some d when t.Start + eps < d -> yield sprintf "%O %A starts before dispatch" r.Request.Id t.Stage
              | _ -> ()
          for (a, b) in List.pairwise stages do
              if b.Start + eps < a.Finish then yield sprintf "%O %A starts before %A ends" r.Request.Id b.Stage a.Stage ]

let private labelled (name: string) (violations: string list) =
    List.isEmpty violations |> Prop.label (sprintf "%s: %A" name (List.truncate 5 violations))

// ---- properties ------------------------------------------------------------------------------

let ``every arrival ends in exactly one outcome`` =
    testProp 120 "every arrival ends in exactly one outcome" <| fun () ->
        Prop.forAll simSpecs (fun spec ->
            let config, policy, requests = buildRun spec
            let result = Simulator.run config policy requests
            labelled "conservation" (conservation requests result)
            |> Prop.classify (result.Summary.OutOfMemory > 0) "some OOM"
            |> Prop.classify (result.Summary.Unserved > 0) "some unserved"
            |> Prop.classify (result.Summary.Late > 0) "some late")

let ``no device runs two tasks at once in the simulation`` =
    testProp 120 "no device runs two tasks at once in the simulation" <| fun () ->
        Prop.forAll simSpecs (fun spec ->
            let config, policy, requests = buildRun spec
            let result = Simulator.run config policy requests
            labelled "no double booking" (noDoubleBooking result)
            |> Prop.classify (result.Tasks |> Array.exists (fun t -> t.Devices.Length > 1)) "some group task"
            |> Prop.classify (config.Jitter > 0.0) "jitter")

let ``simulated time is monotone`` =
    testProp 120 "simulated time is monotone" <| fun () ->
        Prop.forAll simSpecs (fun spec ->
            let config, policy, requests = buildRun spec
            labelled "time monotone" (timeMonotone (Simulator.run config policy requests)))

let ``a replay with the same trace and seed is bit-identical`` =
    testProp 60 "a replay with the same trace and seed is bit-identical" <| fun () ->
        Prop.forAll simSpecs (fun spec ->
            let config, policy, requests = buildRun spec
            let a = Simulator.run config policy requests
            let b = Simulator.run config policy requests
            let rounds (x: SimResult) = x.Rounds |> Array.map (fun r -> r.Time, r.Dispatched, r.Full)
            ((a.Records = b.Records) |> Prop.label "records differ")
            .&. ((a.Tasks = b.Tasks) |> Prop.label "tasks differ")
            .&. ((a.Replacements = b.Replacements) |> Prop.label "re-placements differ")
            .&. ((rounds a = rounds b) |> Prop.label "rounds differ"))

let ``a generated workload replays bit-identically through its trace file`` =
    testProp 40 "a generated workload replays bit-identically through its trace file" <| fun () ->
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (0, 3)) (Gen.choose (0, 1000)))) (fun (w, seed) ->
            let spec = { (pickL Workload.references w) with Count = 60 }
            let trace = Workload.generate spec (uint64 seed)
            let again = Workload.generate spec (uint64 seed)
            let viaCsv = Trace.parse (Trace.toCsv trace)
            let viaJson = Trace.parse (Trace.toJsonLines trace)
            ((trace = again) |> Prop.label "generator not deterministic")
            .&. ((viaCsv = Ok trace) |> Prop.label "CSV round trip")
            .&. ((viaJson = Ok trace) |> Prop.label "JSON lines round trip"))

// ---- Adjust-on-Dispatch ----------------------------------------------------------------------

let ``a shifting workload triggers a re-placement and no request is lost or run twice across it`` =
    testCase "a shifting workload triggers a re-placement and no request is lost or run twice across it" <| fun () ->
        // flux, light (128², 256²) then heavy (512²–2048²): the light mix is planned all ⟨EDC⟩, which
        // cannot decode 2048²; the heavy phase leaves those requests waiting, the diffuse rate falls
        // behind the arrival rate, and the Orchestrator re-places with ⟨C⟩ devices.
        let spec =
            match Workload.tryNamed "shifting" "flux" with
            | Ok w -> { w with Rate = 0.2; Count = 300 }
            | Error e -> failwith e
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
        let cluster = Cluster.uniform 2 8 48.0<GB> Bandwidths.pcie4Server
        let requests = Workload.toRequests cost (Workload.generate spec 7UL)
        let config = { SimConfig.create cluster cost with InitialSamples = 50; Dispatch = testDispatch; PlacementTimeLimit = 10.0<s> }
        let adjust = { AdjustSettings.defaults with Window = 150.0<s>; TimeLimit = 10.0<s> }
        let result = Simulator.run config (Baselines.trident 0.5<s> (Some adjust)) requests
        let initialTypes = PlacementPlan.counts result.InitialPlacement
        Expect.isTrue (result.Replacements.Length >= 1) (sprintf "no re-placement; initial %A, summary %A" initialTypes result.Summary)
        Expect.isEmpty (conservation requests result) "conservation requests result"
        Expect.isEmpty (noDoubleBooking result) "noDoubleBooking result"
        // every request completes: nothing was dropped or restarted by the switch
        Expect.equal (result.Summary.Unserved + result.Summary.OutOfMemory) 0 "result.Summary.Unserved + result.Summary.OutOfMemory"
        Expect.equal result.Tasks.Length (requests.Length * 3) "result.Tasks.Length"
        // the switch is metadata only: devices load lazily, and loads happen after the switch
        let firstSwitch = result.Replacements.[0].Time
        Expect.isTrue (result.Tasks |> Array.forall (fun t -> t.Loads.IsEmpty || t.Start >= firstSwitch)) "result.Tasks |> Array.forall (fun t -> t.Loads.IsEmpty || t.Start >= firstSwi..."
        // work planned before the switch ran on the old placement's devices: FIFO per device
        Expect.isEmpty (timeMonotone result) "timeMonotone result"

let ``the imbalance trigger respects its threshold and sample count`` =
    testCase "the imbalance trigger respects its threshold and sample count" <| fun () ->
        let m0 = Monitor.create 10.0<s> 0 0.0<s>
        let r i t = { Id = RequestId i; Model = ModelName "flux"; Shape = Shape.image 512 512; Steps = 4; Arrival = t; Deadline = t + 10.0<s>; Priority = None }
        let m = [ 0L .. 19L ] |> List.fold (fun m i -> Monitor.arrived (r i (float i * 0.5<s>)) m) m0
        // 20 arrivals over the last 10 s, no completion: arrivals outrun every stage
        let rates = Monitor.throughputs 9.75<s> m
        Expect.equal rates.Samples 20 "rates.Samples"
        Expect.isTrue (Double.IsPositiveInfinity rates.Imbalance) "Double.IsPositiveInfinity rates.Imbalance"
        // reports and the live view say what an infinite imbalance means, never .NET's "Infinity"
        Expect.equal (AdjustOnDispatch.describeImbalance rates.Imbalance) "imbalance ∞: a stage without throughput or a request without a route" "infinite imbalance in words"
        Expect.equal (AdjustOnDispatch.describeImbalance 1.734) "imbalance 1.73" "finite imbalance"
        // balanced: as many of each stage completed
        let balanced =
            [ 0 .. 19 ] |> List.fold (fun m i -> m |> Monitor.completed (float i * 0.5<s>) Encode |> Monitor.completed (float i * 0.5<s>) Diffuse |> Monitor.completed (float i * 0.5<s>) Decode) m
        Expect.isTrue (close 1e-9 1.0 (Monitor.throughputs 9.75<s> balanced).Imbalance) "close 1e-9 1.0 (Monitor.throughputs 9.75<s> balanced).Imbalance"
        // old entries leave the window …
        Expect.equal ((Monitor.throughputs 100.0<s> balanced).Samples) 0 "(Monitor.throughputs 100.0<s> balanced).Samples"
        // … unless the window must stretch to hold MinSamples arrivals
        let stretched = { balanced with MinSamples = 15 }
        Expect.equal ((Monitor.throughputs 100.0<s> stretched).Samples) 15 "(Monitor.throughputs 100.0<s> stretched).Samples"

let ``a placement made for a thin window is provisional and the next trigger solves again`` =
    testCase "a placement made for a thin window is provisional: no gate, the next trigger with a full window solves again" <| fun () ->
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
        let cluster = Cluster.uniform 2 8 48.0<GB> Bandwidths.pcie4Server
        let settings = { AdjustSettings.defaults with Window = 10.0<s>; MinSamples = 20; MinGain = 0.05; TimeLimit = 10.0<s> }
        let r i (t: float<s>) size = { Id = RequestId i; Model = ModelName "flux"; Shape = Shape.image size size; Steps = 28; Arrival = t; Deadline = t + 60.0<s>; Priority = None }
        let m0 = Monitor.create settings.Window settings.MinSamples 0.0<s>
        // the first requests of a new kind: two 2048² images, answered at once by the uncovered trigger
        let thin = m0 |> Monitor.arrived (r 0L 9.0<s> 2048) |> Monitor.arrived (r 1L 9.5<s> 2048)
        Expect.isNone (AdjustOnDispatch.plannedFor settings thin 10.0<s>) "two arrivals: a placement made now is provisional"
        let first = Monitor.stats 10.0<s> thin
        let current = Planner.place { Cluster = cluster; Cost = cost; Stats = first; Current = None; TimeLimit = 10.0<s> }
        // then a full window of 256² and 1024² images: the 2048² placement sustains them at a higher rate than the mix
        // it was made for, so the gate keeps it without a solve — though a placement for them gains > 5 %
        let full = [ 0L .. 29L ] |> List.fold (fun m i -> Monitor.arrived (r (i + 2L) (20.0<s> + float i * 0.33<s>) (if i % 2L = 0L then 256 else 1024)) m) m0
        let now = 30.0<s>
        Expect.isSome (AdjustOnDispatch.plannedFor settings full now) "thirty arrivals over a window: planned for"
        match AdjustOnDispatch.decide settings Planner.place cluster cost current (Some first) full now with
        | Keep(_, reason) -> Expect.stringContains reason "sustains the recent mix" "planned for the thin window, the gate keeps it"
        | other -> failtestf "expected the gate to keep the placement, got %A" other
        match AdjustOnDispatch.decide settings Planner.place cluster cost current None full now with
        | Replace(_, plan) ->
            let before = AdjustOnDispatch.alphaOf cluster cost current.Types (Monitor.stats now full)
            Expect.isGreaterThan plan.Alpha (before * 1.05) "the new placement serves the full window's mix better"
        | other -> failtestf "provisional: expected a solve and a new placement, got %A" other

// ---- baselines and memory --------------------------------------------------------------------

let ``pipeline-level baselines run out of memory on flux 2048² and stage-level ones do not`` =
    testCase "pipeline-level baselines run out of memory on flux 2048² and stage-level ones do not" <| fun () ->
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
        let cluster = Cluster.uniform 2 8 48.0<GB> Bandwidths.pcie4Server
        let trace =
            [ for i in 0..9 ->
                  { TraceRequest.Id = int64 i; Arrival = float i * 5.0<s>; Model = "flux"; Shape = Shape.image (if i % 2 = 0 then 2048 else 512) (if i % 2 = 0 then 2048 else 512); Steps = 4; Deadline = None; Priority = None } ]
        let requests = Workload.toRequests cost trace
        let config = { SimConfig.create cluster cost with Dispatch = testDispatch; PlacementTimeLimit = 10.0<s> }
        for policy in [ Baselines.b1 2; Baselines.b3; Baselines.b4 ] do
            let s = (Simulator.run config policy requests).Summary
            Expect.isTrue (s.OutOfMemory = 5) (sprintf "%s: %d OOM" policy.Name s.OutOfMemory)
        for policy in [ Baselines.b6 StageSplit.paperLightLoad; Baselines.trident 0.5<s> None ] do
            let s = (Simulator.run config policy requests).Summary
            Expect.isTrue (s.OutOfMemory = 0 && s.Unserved = 0) (sprintf "%s: %d OOM, %d unserved" policy.Name s.OutOfMemory s.Unserved)

let ``no baseline runs a request below its minimum degree on any cluster shape`` =
    testProp 120 "no baseline runs a request below its minimum degree on any cluster shape" <| fun () ->
        // node sizes 1, 2, 4 and 8 and every baseline; the reference mixes hold large videos (cogvideox 768×1360×81 needs k ≥ 8)
        let specs = simSpecGen |> Gen.zip (Gen.choose (0, 3)) |> Gen.zip (Gen.choose (0, 6)) |> Arb.fromGen
        Prop.forAll specs (fun (policy, (perNode, spec)) ->
            let config, _, requests = buildRun { spec with Policy = policy }
            let nodes = clampI 1 3 spec.Nodes
            let size = pickL [ 1; 2; 4; 8 ] perNode
            let config = { config with Cluster = Cluster.uniform nodes size 48.0<GB> Bandwidths.pcie4Server }
            let result = Simulator.run config (policyOf policy) requests
            let below =
                [ for r in result.Records do
                      match r.Degree with
                      | Some k when k < CostModel.ruleMinDegree config.Cost r.Request.Shape ->
                          yield sprintf "%O %O ran at k = %d below its minimum %d" r.Request.Id r.Request.Shape k (CostModel.ruleMinDegree config.Cost r.Request.Shape)
                      | Some k when not (List.contains k config.Cost.Degrees) ->
                          // B6's ⟨D⟩ devices of a node of 8 are 5: a degree is lowered to an allowed one, not to 5
                          yield sprintf "%O ran at k = %d, not an allowed degree %A" r.Request.Id k config.Cost.Degrees
                      | _ -> () ]
            let beyond =
                [ for r in result.Records do
                      if CostModel.ruleMinDegree config.Cost r.Request.Shape > size && r.Outcome <> Unserved then
                          yield sprintf "%O needs k ≥ %d on nodes of %d but ended %A" r.Request.Id (CostModel.ruleMinDegree config.Cost r.Request.Shape) size r.Outcome ]
            labelled (sprintf "%s below its minimum degree" (policyOf policy).Name) (below @ beyond)
            |> Prop.classify (result.Records |> Array.exists (fun r -> CostModel.ruleMinDegree config.Cost r.Request.Shape > size)) "a request beyond the node")

let ``hunyuanvideo co-located on one device runs out of memory at 720p`` =
    testCase "hunyuanvideo co-located on one device runs out of memory at 720p" <| fun () ->
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.hunyuanvideo
        let cluster = Cluster.uniform 1 8 48.0<GB> Bandwidths.pcie4Server
        let trace = [ { TraceRequest.Id = 0L; Arrival = 0.0<s>; Model = "hunyuanvideo"; Shape = Shape.video 720 1280 17; Steps = 2; Deadline = None; Priority = None } ]
        let result = Simulator.run (SimConfig.create cluster cost) (Baselines.b1 2) (Workload.toRequests cost trace)
        match result.Records.[0].Outcome with
        | OutOfMemory(_, _, need, memory) -> Expect.isTrue (need > memory) "need > memory"
        | other -> failwithf "expected OOM, got %A" other

// ---- workloads -------------------------------------------------------------------------------

let ``reference workloads follow the published traces`` =
    testCase "reference workloads follow the published traces" <| fun () ->
        let flux = Workload.references |> List.find (fun w -> w.Name = "flux-reference")
        let trace = Workload.generate flux 1UL
        Expect.equal trace.Length 2700 "trace.Length"
        Expect.isTrue (close 1e-9 (2699.0 / 1.5) (float (List.last trace).Arrival)) "close 1e-9 (2699.0 / 1.5) (float (List.last trace).Arrival)"
        Expect.equal (trace |> List.map _.Shape |> List.distinct |> List.length) 5 "trace |> List.map _.Shape |> List.distinct |> List.length"
        Expect.isTrue (trace |> List.forall (fun t -> t.Steps = 28)) "trace |> List.forall (fun t -> t.Steps = 28)"
        let cog = Workload.references |> List.find (fun w -> w.Name = "cogvideox-reference")
        Expect.equal cog.Steps 6 "cog.Steps"
        Expect.equal ((Workload.generate cog 1UL) |> List.map _.Shape |> List.distinct |> List.length) 8 "(Workload.generate cog 1UL) |> List.map _.Shape |> List.distinct |> List.length"

let ``scaled reference rates load 128 devices to about 70 % at k = 1`` =
    testCase "scaled reference rates load 128 devices to about 70 % at k = 1" <| fun () ->
        for name in [ "hunyuanvideo-reference"; "sd3-reference" ] do
            let w = Workload.references |> List.find (fun x -> x.Name = name)
            let cost = CostModel.create CostSettings.defaults (ReferenceProfiles.tryFind w.Model).Value
            let shapes = Workload.referenceShapes w.Model |> Option.get
            let load = w.Rate * Workload.meanDeviceSecondsAtK1 cost shapes w.Steps / 128.0
            Expect.isTrue (load > 0.65 && load < 0.75) (sprintf "%s loads 128 devices to %.3f" name load)

let ``Poisson and bursty generators keep the mean rate`` =
    testCase "Poisson and bursty generators keep the mean rate" <| fun () ->
        for kind in [ "poisson"; "bursty" ] do
            let w = match Workload.tryNamed kind "flux" with Ok w -> { w with Count = 6000; Rate = 2.0 } | Error e -> failwith e
            let trace = Workload.generate w 3UL
            let rate = float (trace.Length - 1) / float (List.last trace).Arrival
            Expect.isTrue (abs (rate - 2.0) < 0.3) (sprintf "%s: rate %.3f" kind rate)
            Expect.isTrue (trace |> List.pairwise |> List.forall (fun (a, b) -> b.Arrival >= a.Arrival)) (kind + " arrivals not sorted")

let ``the shifting generator moves from light to heavy shapes`` =
    testCase "the shifting generator moves from light to heavy shapes" <| fun () ->
        let w = match Workload.tryNamed "shifting" "flux" with Ok w -> { w with Count = 1000 } | Error e -> failwith e
        let trace = Workload.generate w 5UL |> Array.ofList
        let mean (xs: TraceRequest array) = xs |> Array.averageBy (fun t -> t.Shape.PixelFrames)
        Expect.isTrue (mean trace.[0..300] * 4.0 < mean trace.[700..]) "mean trace.[0..300] * 4.0 < mean trace.[700..]"
        Expect.isTrue (trace.[0..300] |> Array.forall (fun t -> t.Shape.Height <= 256)) "trace.[0..300] |> Array.forall (fun t -> t.Shape.Height <= 256)"

let ``a bad trace reports every problem at once`` =
    testCase "a bad trace reports every problem at once" <| fun () ->
        let text = "id,arrival_s,model,height,width,frames,steps,deadline_s,priority\n0,0,flux,512,512,1,28,,\n1,x,flux,0,512,1,28,,\n1,2,flux,512,512,1,-3,,\n2,5,flux,512,512,1,28,1,\n0,7,flux,512,512,1,28,,\n3,8,flux,512,512,1,28,,4\n"
        match Trace.parse text with
        | Ok _ -> failwith "accepted a bad trace"
        | Error errors ->
            let all = String.Join("\n", errors)
            for expected in [ "line 3: arrival_s"; "line 3: height"; "line 4: steps"; "line 5: deadline_s"; "id 0 appears 2 times"; "line 7: priority 4 is out of range" ] do
                Expect.isTrue (all.Contains expected) (sprintf "missing '%s' in:\n%s" expected all)

let ``a trace file's own deadlines are kept and missing ones follow the cost model`` =
    testCase "a trace file's own deadlines are kept and missing ones follow the cost model" <| fun () ->
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
        let text = "{\"id\":3,\"arrival_s\":1.5,\"model\":\"flux\",\"height\":512,\"width\":512,\"frames\":1,\"steps\":28,\"deadline_s\":9.5}\n{\"id\":4,\"arrival_s\":2,\"model\":\"flux\",\"height\":512,\"width\":512,\"frames\":1,\"steps\":28}\n"
        match Trace.parse text with
        | Error e -> failwithf "%A" e
        | Ok trace ->
            let rs = Workload.toRequests cost trace
            Expect.equal (rs.[0].Deadline) (9.5<s>) "rs.[0].Deadline"
            Expect.equal (rs.[1].Deadline) (CostModel.deadline cost 2.0<s> (Shape.image 512 512) 28) "rs.[1].Deadline"

let ``the experiment maps every policy name and B1 expands to every degree`` =
    testCase "the experiment maps every policy name and B1 expands to every degree" <| fun () ->
        let settings = ExperimentSettings.defaults
        let prepared =
            match Experiment.prepare settings (Generated { (List.head Workload.references) with Count = 10 }) with
            | Ok p -> p
            | Error e -> failwithf "%A" e
        match Experiment.policies settings prepared [ "all" ] with
        | Ok ps ->
            Expect.equal (ps |> List.map _.Name) ([ "B1"; "B1"; "B1"; "B1"; "B2"; "B3"; "B4"; "B5"; "B6"; "Trident" ]: string list) "ps |> List.map _.Name"
        | Error e -> failwithf "%A" e
        match Experiment.policies settings prepared [ "B7" ] with
        | Ok _ -> failwith "accepted B7"
        | Error e -> Expect.stringContains e.Head "B7" "e.Head"


// ---- work conservation -------------------------------------------------------------------------

/// The snapshot a round at `t` leaves behind, rebuilt from the run's records alone: devices busy
/// until the last task of any request dispatched by `t`, the requests arrived by `t` and not yet
/// dispatched queued. Exact without jitter and without re-placement (the placement is the initial one).
let snapshotAfter (config: SimConfig) (result: SimResult) (t: float<s>) : Snapshot =
    let busy = Array.zeroCreate (Cluster.deviceCount config.Cluster)
    let dispatchedBy (r: RequestRecord) = r.Dispatched |> Option.exists (fun d -> d <= t)
    for r in result.Records do
        if dispatchedBy r then
            for task in [ r.Encode; r.Diffuse; r.Decode ] |> List.choose id do
                for d in task.Devices do
                    busy.[d.Value] <- max busy.[d.Value] task.Finish
    { Now = t
      Cluster = config.Cluster
      Cost = config.Cost
      Placement = result.InitialPlacement
      BusyUntil = busy
      Queue = [ for r in result.Records do if r.Request.Arrival <= t && not (dispatchedBy r) then yield r.Request ]
      Completed = Map.empty
      Settings = config.Dispatch
      Bookings = Map.empty; IdleUntil = Map.empty }

let ``Trident's simulated rounds leave no device idle that a waiting request could use`` =
    testProp 80 "Trident's simulated rounds leave no device idle that a waiting request could use" <| fun () ->
        Prop.forAll simSpecs (fun spec ->
            let config, _, requests = buildRun spec
            let config = { config with Jitter = 0.0 }
            let result = Simulator.run config (Baselines.trident 0.5<s> None) requests
            let empty t = { Now = t; Dispatches = []; Objective = 0.0; Source = Greedy "check"; Batched = Map.empty }
            let violations =
                [ for t in result.Rounds |> Array.map _.Time |> Array.distinct do
                      let s = snapshotAfter config result t
                      for v in PlanChecks.workConserving s (empty t) do
                          yield sprintf "t=%g: %s" (float t) v ]
            labelled "work conservation" violations
            |> Prop.classify (result.Rounds |> Array.exists (fun r -> not r.Full && r.Dispatched > 0 && (match r.Source with Greedy g -> g.StartsWith "greedy between" | _ -> false))) "some round between solves"
            |> Prop.classify (result.Summary.MipRounds > 0) "some solver round")

let ``an overloaded small cluster stays busy between solves`` =
    testCase "an overloaded small cluster stays busy between solves" <| fun () ->
        // the live server's measurement of issue 11 in the simulator: 2 devices, short requests at
        // twice the cluster's capacity; rounds that need the solver come faster than its 0.5 s spacing
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
        let cluster = Cluster.uniform 1 2 80.0<GB> Bandwidths.pcie4Server
        let shape = Shape.image 256 256
        let service = CostModel.encodeTime cost shape + CostModel.diffuseTime cost shape 4 1 + CostModel.decodeTime cost shape
        let gap = service / 4.0
        let requests =
            [ for i in 0..199 ->
                  let t = float i * gap
                  { Id = RequestId(int64 i); Model = ReferenceProfiles.flux.Model; Shape = shape; Steps = 4; Arrival = t
                    Deadline = CostModel.deadline cost t shape 4; Priority = None } ]
        let config = { SimConfig.create cluster cost with Dispatch = testDispatch; PlacementTimeLimit = 10.0<s> }
        let trident = Baselines.trident 0.5<s> None
        let result = Simulator.run config trident requests
        Expect.isEmpty (conservation requests result) "conservation"
        Expect.isEmpty (noDoubleBooking result) "no double booking"
        Expect.isGreaterThanOrEqual result.Summary.Utilisation 0.9 (sprintf "Trident's utilisation (service %.3f s)" (float service))
        // every round needing the solver (no proof without it): between two solves greedy fills the
        // devices; a policy whose rounds wait for the next solve instead idles them
        let alwaysSolve = { trident with Quick = Some(fun _ -> None) }
        let conserving = Simulator.run config alwaysSolve requests
        let waiting = Simulator.run config { alwaysSolve with Between = None } requests
        Expect.isGreaterThanOrEqual conserving.Summary.Utilisation 0.9 "utilisation with greedy between solves"
        Expect.isTrue (conserving.Rounds |> Array.exists (fun r -> not r.Full && r.Dispatched > 0)) "some round ran between solves"
        Expect.isLessThan waiting.Summary.Utilisation conserving.Summary.Utilisation "rounds that wait for the solver idle devices"

// ---- decode device: late binding -----------------------------------------------------------------

/// Decodes on auxiliary ⟨C⟩ devices that waited although another ⟨C⟩ device of the same type was idle
/// over a whole window in which it would have finished the decode sooner (latents moved there
/// from the diffuse lead): the executor binds a decode to the device whose schedule finishes it first,
/// and tasks only ever join a schedule later (no suspension, no re-placement), so such a window
/// was idle when the decode was booked too.
let decodeWaitedBesideIdleDevice (config: SimConfig) (result: SimResult) =
    let typeOf = PlacementPlan.typeOf result.InitialPlacement
    let busy =
        [ for t in result.Tasks do
              for d in t.Devices do
                  let load = t.Loads |> List.tryFind (fun (dev, _) -> dev = d) |> Option.map snd |> Option.defaultValue 0.0<s>
                  yield d, (t.Start - load, t.Finish) ]
        |> List.groupBy fst
        |> List.map (fun (d, xs) -> d, List.map snd xs)
        |> Map.ofList
    let idle d (a: float<s>) (b: float<s>) =
        busy |> Map.tryFind d |> Option.defaultValue [] |> List.forall (fun (s, f) -> f <= a + eps || s >= b - eps)
    [ for r in result.Records do
          match r.Outcome, r.Diffuse, r.Decode with
          | (OnTime | Late), Some df, Some { Devices = [ c ]; Start = start; Finish = finish } when typeOf c = C && not (List.contains c df.Devices) ->
              let lead = List.head df.Devices
              let duration = finish - start
              for dev in config.Cluster.Devices do
                  if dev.Id <> c && typeOf dev.Id = C then
                      let ready = df.Finish + Cluster.transferTime config.Cluster (CostModel.latentBytes config.Cost r.Request.Shape) lead dev.Id
                      if ready + duration + eps < finish && idle dev.Id ready (ready + duration) then
                          yield sprintf "%O decoded on %O until %g; %O was idle from %g, done by %g" r.Request.Id c (float finish) dev.Id (float ready) (float (ready + duration))
          | _ -> () ]

let ``no decode waits while another decode device is idle`` =
    testProp 80 "a decode on a ⟨C⟩ device never waits while another ⟨C⟩ device could have finished it sooner" <| fun () ->
        Prop.forAll simSpecs (fun spec ->
            let config, _, requests = buildRun spec
            let policy = pickL [ Baselines.b5 StageSplit.paperLightLoad; Baselines.b6 StageSplit.paperLightLoad; Baselines.trident 0.5<s> None ] spec.Policy
            let result = Simulator.run config policy requests
            let cDevices = config.Cluster.Devices |> Array.filter (fun d -> PlacementPlan.typeOf result.InitialPlacement d.Id = C) |> Array.length
            labelled "late binding" (decodeWaitedBesideIdleDevice config result)
            .&. labelled "no double booking" (noDoubleBooking result)
            |> Prop.classify (cDevices >= 2) "two or more ⟨C⟩ devices")

/// Decodes on a decode-only ⟨C⟩ device that waited while that device idled: the live worker runs a decode as soon
/// as its latents are ready and the device is free (Worker.cs, held decodes), and the simulator's decode order
/// (docs/policies.md, "Decode order") reschedules the decodes not yet started so that the device never idles while
/// one is ready — a decode booked minutes ahead does not hold the device against one ready before it. Checked on
/// the executed tasks: between its latents' arrival and its start, the device is busy throughout.
let decodeWaitedOnIdleDevice (config: SimConfig) (result: SimResult) =
    let typeOf = PlacementPlan.typeOf result.InitialPlacement
    let busy =
        [ for t in result.Tasks do
              for d in t.Devices do
                  yield d, (t.Start, t.Finish) ]
        |> List.groupBy fst
        |> List.map (fun (d, xs) -> d, xs |> List.map snd |> List.sortBy fst)
        |> Map.ofList
    // the first moment in [a, b) the device is idle, if any
    let firstIdle d (a: float<s>) (b: float<s>) =
        let mutable c = a
        for (s, f) in busy |> Map.tryFind d |> Option.defaultValue [] do
            if s <= c + eps && f > c then c <- f
        if c < b - eps then Some c else None
    [ for r in result.Records do
          match r.Outcome, r.Diffuse, r.Decode with
          | (OnTime | Late), Some df, Some { Devices = [ c ]; Start = start } when typeOf c = C && not (List.contains c df.Devices) ->
              let ready = df.Finish + Cluster.transferTime config.Cluster (CostModel.latentBytes config.Cost r.Request.Shape) (List.head df.Devices) c
              match firstIdle c ready start with
              | Some at -> yield sprintf "%O: latents on %O at %g, decode started at %g, the device idle at %g" r.Request.Id c (float ready) (float start) (float at)
              | None -> ()
          | _ -> () ]

let ``no decode waits on an idle decode device`` =
    testProp 80 "a decode on a ⟨C⟩ device never waits while that device idles (decode order)" <| fun () ->
        Prop.forAll simSpecs (fun spec ->
            let config, _, requests = buildRun spec
            let policy = pickL [ Baselines.b5 StageSplit.paperLightLoad; Baselines.b6 StageSplit.paperLightLoad; Baselines.trident 0.5<s> None ] spec.Policy
            let result = Simulator.run config policy requests
            labelled "decode order" (decodeWaitedOnIdleDevice config result)
            .&. labelled "no double booking" (noDoubleBooking result)
            |> Prop.classify (result.Records |> Array.exists (fun r -> match r.Diffuse, r.Decode with Some df, Some dc -> dc.Start > df.Finish + 1.0<s> | _ -> false)) "some decode waited")

// ---- batching (issue 12) -------------------------------------------------------------------------

/// The run of a spec with same-shape batching on: test batch points (BatchingProperties.withBatches) and MaxBatch 4.
let private batched (spec: SimSpec) =
    let config, policy, requests = buildRun spec
    let cost = CostModel.create config.Cost.Settings (BatchingProperties.withBatches [ 1, 1.0; 2, 1.3; 4, 2.0 ] config.Cost.Profile)
    { config with Cost = cost; MaxBatch = 4 }, policy, requests

let ``batches in the simulator keep conservation and never double-book`` =
    testProp 80 "with batching every arrival still ends in exactly one outcome and no device runs two tasks at once" <| fun () ->
        Prop.forAll simSpecs (fun spec ->
            let config, policy, requests = batched spec
            let result = Simulator.run config policy requests
            let shared = result.Records |> Array.filter (fun r -> r.Diffuse.IsSome) |> Array.countBy (fun r -> r.Diffuse.Value) |> Array.map snd
            // a batch's tasks carry its lead's id, so each member's stages are read from its own record
            let served =
                [ let ids = result.Records |> Array.map (fun r -> r.Request.Id)
                  if (Array.distinct ids).Length <> ids.Length || Set.ofArray ids <> (requests |> List.map _.Id |> Set.ofList) then
                      yield "records and requests differ"
                  // a suspended diffuse task or paused decode (Trident-preempt; never a batch) runs once more per suspension
                  for (key, n) in result.Tasks |> Array.countBy (fun t -> t.Request, t.Stage) do
                      let allowed = allowedTasks result (fst key) (snd key)
                      if n > allowed then yield sprintf "%O ran %A %d times" (fst key) (snd key) n
                  for r in result.Records do
                      match r.Outcome, r.Encode, r.Diffuse, r.Decode, r.Finish with
                      | (OnTime | Late), Some e, Some d, Some c, Some f ->
                          if e.Failed || d.Failed || c.Failed || f <> c.Finish then yield sprintf "%O completed with a failed stage" r.Request.Id
                          if (f <= r.Request.Deadline) <> (r.Outcome = OnTime) then yield sprintf "%O: outcome %A vs its deadline" r.Request.Id r.Outcome
                      | (OnTime | Late), _, _, _, _ -> yield sprintf "%O completed without all three stages" r.Request.Id
                      | Unserved, _, _, _, _ when r.Dispatched.IsSome -> yield sprintf "%O unserved but dispatched" r.Request.Id
                      | _ -> () ]
            labelled "every request served once, or not at all" served
            .&. labelled "no double booking" (noDoubleBooking result)
            .&. (shared |> Array.forall (fun n -> n <= 4) |> Prop.label "a diffuse task serves at most MaxBatch requests")
            |> Prop.classify (shared |> Array.exists (fun n -> n > 1)) "some batch > 1")

let ``a same-shape burst finishes sooner with batching`` =
    testCase "a same-shape burst finishes sooner with batching, every request served once" <| fun () ->
        let cost = CostModel.create CostSettings.defaults (BatchingProperties.withBatches [ 1, 1.0; 2, 1.3; 4, 2.0 ] ReferenceProfiles.flux)
        let cluster = Cluster.uniform 1 2 48.0<GB> Bandwidths.pcie4Server
        let shape = Shape.image 512 512
        let requests =
            [ for i in 0..23 ->
                  { Id = RequestId(int64 i); Model = cost.Profile.Model; Shape = shape; Steps = 8; Arrival = 0.0<s>
                    Deadline = CostModel.deadline cost 0.0<s> shape 8; Priority = None } ]
        let run maxBatch =
            let config = { SimConfig.create cluster cost with Dispatch = testDispatch; PlacementTimeLimit = 10.0<s>; MaxBatch = maxBatch }
            Simulator.run config (Baselines.trident 0.5<s> None) requests
        let off, on = run 1, run 4
        Expect.equal (on.Summary.OnTime + on.Summary.Late) 24 "every request served with batching"
        Expect.equal (off.Summary.OnTime + off.Summary.Late) 24 "every request served without"
        Expect.isLessThan (on.Tasks |> Array.filter (fun t -> t.Stage = Diffuse) |> Array.length) 24 "fewer diffuse tasks than requests"
        Expect.isLessThan on.Summary.Span off.Summary.Span "the burst ends sooner"

let ``where batches pay, batching keeps an overloaded stream on time`` =
    testCase "where batches pay, batching keeps an overloaded stream of one shape on time" <| fun () ->
        // batch points as a GPU's (the H200 profile in docs/gpu-check: a batch of 8 costs 1.64x one request's step)
        let profile = BatchingProperties.withBatches [ 1, 1.0; 2, 1.1; 4, 1.3; 8, 1.6 ] ReferenceProfiles.flux
        let run maxBatch =
            let settings = { ExperimentSettings.defaults with Devices = 8; DevicesPerNode = 8; Profile = Some profile; MaxBatch = maxBatch }
            let spec = Workload.tryNamed "poisson" "flux" |> Result.defaultWith failwith
            // 256² at 6 req/s: about 2.4x what 8 devices serve one request at a time
            let spec = spec |> Workload.withOverrides (Some 6.0) None (Some 300) |> Workload.withShapes [ Shape.image 256 256 ]
            let p = Experiment.prepare settings (Generated spec) |> Result.defaultWith (fun e -> failwithf "%A" e)
            Simulator.run p.Config (Baselines.trident settings.RoundPeriod (Some settings.Adjust)) p.Requests
        let off, on = run 1, run 8
        Expect.equal (on.Summary.OnTime + on.Summary.Late) 300 "every request served with batching"
        Expect.isLessThan off.Summary.SloAttainment 0.8 "one request at a time cannot keep up"
        Expect.isGreaterThanOrEqual on.Summary.SloAttainment 0.95 "batches of up to 8 do"

let ``on one node of two devices Trident serves flux 2048² and on one device says why it cannot`` =
    testCase "on one node of two devices Trident serves flux 2048² and on one device says why it cannot" <| fun () ->
        // `simulate --workload poisson --rate 0.02 --count 100 --devices N`: before, Trident placed ⟨DC⟩ + ⟨E⟩ on two
        // devices (the placement MIP infeasible) and left every 2048² request unserved with an empty detail
        let run devices =
            let settings = { ExperimentSettings.defaults with Devices = devices; DevicesPerNode = devices }
            let spec = Workload.tryNamed "poisson" "flux" |> Result.defaultWith failwith |> Workload.withOverrides (Some 0.02) None (Some 100)
            let p = Experiment.prepare settings (Generated spec) |> Result.defaultWith (fun e -> failwithf "%A" e)
            p, Simulator.run p.Config (Baselines.trident settings.RoundPeriod (Some settings.Adjust)) p.Requests
        let p, two = run 2
        let large = p.Requests |> List.filter (fun r -> r.Shape = Shape.image 2048 2048)
        Expect.isNonEmpty large "the trace has 2048² requests"
        Expect.equal two.Summary.Unserved 0 (sprintf "every request served on two devices (%s)" (PlanSource.describe two.InitialPlacement.Source))
        Expect.equal two.Summary.OutOfMemory 0 "nothing runs out of memory"
        for r in two.Records do
            if r.Request.Shape = Shape.image 2048 2048 then
                Expect.equal r.Degree (Some 2) "2048² at k = 2"
                // the group's lead runs the encode, loading the text encoders (no ⟨E⟩ device fits beside the group)
                Expect.equal (r.Encode |> Option.map _.Devices) (r.Diffuse |> Option.map (fun d -> [ List.head d.Devices ])) "encode on the group's lead"
        Expect.isGreaterThan two.Summary.Loads 0 "the lead loads the encoder"
        let _, one = run 1
        Expect.equal one.Summary.Unserved large.Length "one device cannot form a group of 2"
        let csv = Report.requestsCsv one
        for r in one.Records do
            if r.Outcome = Unserved then
                Expect.stringContains (defaultArg r.Unservable "") "2048x2048 cannot be served by any placement of this cluster" "the record says why"
                Expect.stringContains (defaultArg r.Unservable "") "a group of 2" "and what it needs"
            else Expect.isNone r.Unservable "only unserved requests say why"
        Expect.stringContains csv "at best it needs a group of 2 DC devices on one node" "the requests CSV's detail says it"

[<Tests>]
let tests =
    testList "unit" [ testList "SimulatorTests" [
        ``no decode waits while another decode device is idle``
        ``no decode waits on an idle decode device``
        ``batches in the simulator keep conservation and never double-book``
        ``a same-shape burst finishes sooner with batching``
        ``where batches pay, batching keeps an overloaded stream on time``
        ``every arrival ends in exactly one outcome``
        ``no device runs two tasks at once in the simulation``
        ``simulated time is monotone``
        ``a replay with the same trace and seed is bit-identical``
        ``a generated workload replays bit-identically through its trace file``
        ``a shifting workload triggers a re-placement and no request is lost or run twice across it``
        ``the imbalance trigger respects its threshold and sample count``
        ``a placement made for a thin window is provisional and the next trigger solves again``
        ``pipeline-level baselines run out of memory on flux 2048² and stage-level ones do not``
        ``no baseline runs a request below its minimum degree on any cluster shape``
        ``hunyuanvideo co-located on one device runs out of memory at 720p``
        ``reference workloads follow the published traces``
        ``scaled reference rates load 128 devices to about 70 % at k = 1``
        ``Poisson and bursty generators keep the mean rate``
        ``the shifting generator moves from light to heavy shapes``
        ``a bad trace reports every problem at once``
        ``a trace file's own deadlines are kept and missing ones follow the cost model``
        ``the experiment maps every policy name and B1 expands to every degree``
        ``Trident's simulated rounds leave no device idle that a waiting request could use``
        ``an overloaded small cluster stays busy between solves``
        ``on one node of two devices Trident serves flux 2048² and on one device says why it cannot``
    ] |> testSequencedGroup "SimulatorTests" ]
