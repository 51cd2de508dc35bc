module Trident.Tests.PlacementProperties

open Expecto
open Trident.Tests.TestSupport
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Scheduling.Placement
open Trident.Tests.Generators

type PlacementSpec =
    { Profile: int
      Cluster: ClusterSpec
      Requests: RequestSpec list
      RatePercent: int }

let placementSpecs =
    let g =
        gen {
            let! p = Gen.choose (0, profiles.Length - 1)
            let! c = clusterSpecGen
            let! n = Gen.choose (1, 12)
            let! rs = Gen.listOfLength n requestSpecGen
            let! rate = Gen.choose (1, 500)
            return { Profile = p; Cluster = c; Requests = rs; RatePercent = rate }
        }
    Arb.fromGenShrink (g, (ArbMap.defaults |> ArbMap.arbitrary<PlacementSpec>).Shrinker)

let buildInput (spec: PlacementSpec) =
    let cost = costModel spec.Profile
    let cluster = buildCluster spec.Cluster
    let requests =
        buildRequests cost (if spec.Requests.IsEmpty then [ { ShapeIndex = 0; Steps = 10; AgeTenths = 0; SloPercent = 300; Priority = 1 } ] else spec.Requests)
    let stats = { statsOf requests with ArrivalRate = float (max 1 (abs spec.RatePercent)) / 100.0 }
    placementInput cluster cost stats

let private typeCountsMatch (input: PlacementInput) (plan: PlacementPlan) =
    plan.Types.Count = Cluster.deviceCount input.Cluster

let ``the placement MIP's alpha is never below the heuristic's`` =
    testProp 60 "the placement MIP's alpha is never below the heuristic's" <| fun () ->
        Prop.forAll placementSpecs (fun spec ->
            let input = buildInput spec
            let heuristicComps = Heuristic.compositions input
            let heuristic = Heuristic.plan input
            match PlacementMip.solve input (Some heuristicComps) with
            | Error reason ->
                // the MIP may only be infeasible when the heuristic's layout breaks its constraints too
                // (on tiny clusters a type that lacks E or C cannot have its auxiliaries anywhere)
                not (PlacementMip.admits input heuristicComps) |> Prop.label reason |> Prop.classify true "MIP infeasible"
            | Ok(comps, _, _) ->
                let mip = Heuristic.planOf input (Greedy "test") comps
                let admitted = PlacementMip.admits input heuristicComps
                ((not admitted) || mip.Alpha >= heuristic.Alpha - 1e-6)
                |> Prop.label (sprintf "MIP α %.6f < heuristic α %.6f" mip.Alpha heuristic.Alpha)
                |> Prop.classify admitted "the MIP admits the heuristic's layout"
                |> Prop.classify (mip.Alpha > heuristic.Alpha + 1e-6) "MIP strictly better")

let ``the orchestrator's placement gives every device one type and never loses to the heuristic`` =
    testProp 60 "the orchestrator's placement gives every device one type and never loses to the heuristic" <| fun () ->
        Prop.forAll placementSpecs (fun spec ->
            let input = buildInput spec
            let plan = Planner.place input
            let heuristic = Heuristic.plan input
            (typeCountsMatch input plan |> Prop.label "every device typed")
            .&. (plan.Alpha >= heuristic.Alpha - 1e-6 |> Prop.label "α below the heuristic's")
            .&. (plan.Types |> Map.exists (fun _ t -> PlacementType.isPrimary t) |> Prop.label "some device holds D"))

let ``re-planning an unchanged workload moves no weights`` =
    testProp 40 "re-planning an unchanged workload moves no weights" <| fun () ->
        Prop.forAll placementSpecs (fun spec ->
            let input = buildInput spec
            let first = Planner.place input
            let second = Planner.place { input with Current = Some first.Types }
            // a re-plan may move weights only for a strictly better α (a time-limited first solve can
            // leave one to find); it never settles for a worse one, since the current layout is its start
            (second.Alpha >= first.Alpha - 1e-6 |> Prop.label (sprintf "α fell from %.6f to %.6f" first.Alpha second.Alpha))
            .&. ((second.Alpha > first.Alpha + 1e-6 || second.Moves = 0)
                 |> Prop.label (sprintf "%d moves with the same α" second.Moves)))

let ``flux is placed disaggregated on a 48 GB cluster`` =
    testCase "flux is placed disaggregated on a 48 GB cluster" <| fun () ->
        // flux ⟨EDC⟩ at 2048² needs 50.6 GB > 48 GB: 2048² requests must be served by a type without E or C
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
        let classes =
            [ 128; 256; 512; 1024; 2048 ] |> List.map (fun n -> { Shape = Shape.image n n; Steps = 28; Share = 0.2 })
        let input =
            { Cluster = Cluster.uniform 16 8 48.0<GB> Bandwidths.pcie4Server
              Cost = cost
              Stats = { Classes = classes; ArrivalRate = 1.5 }
              Current = None
              TimeLimit = 2.0<s> }
        let plan = Planner.place input
        let counts = PlacementPlan.counts plan
        Expect.isTrue (counts |> Map.exists (fun t n -> n >= 2 && t <> EDC && PlacementType.isPrimary t)) (sprintf "%A" counts)
        match plan.Source with
        | Mip _ -> ()
        | Greedy reason -> failwithf "fell back to the heuristic: %s" reason

let private cogvideoxInput (nodes: int) (classes: RequestClass list) =
    { Cluster = Cluster.uniform nodes 8 48.0<GB> Bandwidths.pcie4Server
      Cost = CostModel.create CostSettings.defaults ReferenceProfiles.cogvideox
      Stats = { Classes = classes; ArrivalRate = 0.05 }
      Current = None
      TimeLimit = 2.0<s> }

let ``a class that needs node-sized groups is served only by nodes with that many primaries`` =
    testCase "a class that needs node-sized groups is served only by nodes with that many primaries" <| fun () ->
        // cogvideox 768×1360×81 needs k = 8 on 48 GB: seven ⟨ED⟩ and one ⟨C⟩ on each of two nodes hold 14
        // primaries but no group of 8; eight ⟨ED⟩ on one node and six ⟨ED⟩ + two ⟨C⟩ on the other hold one
        let input = cogvideoxInput 2 [ { Shape = Shape.video 768 1360 81; Steps = 6; Share = 1.0 } ]
        let spread = [ Map.ofList [ ED, 7; PlacementType.C, 1 ]; Map.ofList [ ED, 7; PlacementType.C, 1 ] ]
        let packed = [ Map.ofList [ ED, 8 ]; Map.ofList [ ED, 6; PlacementType.C, 2 ] ]
        Expect.equal (FlowCapacity.alphaForLayout input spread) 0.0 "no node can form a group of 8"
        Expect.isGreaterThan (FlowCapacity.alphaForLayout input packed) 0.0 "one node forms a group of 8"

/// The hunyuanvideo reference mix (720×1280 and 960×544 at 17, 33, 65 and 129 frames, 50 steps, equal shares) on
/// `nodes` nodes of 8 devices of 48 GB, at `rate` requests per second.
let private hunyuanMix (nodes: int) (rate: float) (timeLimit: float<s>) =
    let shapes = [ for (h, w) in [ 720, 1280; 960, 544 ] do for f in [ 17; 33; 65; 129 ] -> Shape.video h w f ]
    { Cluster = Cluster.uniform nodes 8 48.0<GB> Bandwidths.pcie4Server
      Cost = CostModel.create CostSettings.defaults ReferenceProfiles.hunyuanvideo
      Stats = { Classes = [ for sh in shapes -> { Shape = sh; Steps = 50; Share = 1.0 / 8.0 } ]; ArrivalRate = rate }
      Current = None
      TimeLimit = timeLimit }

let ``a fresh placement packs auxiliary devices onto as few nodes as it can`` =
    testCase "a fresh placement packs auxiliary devices onto as few nodes as it can" <| fun () ->
        // the hunyuanvideo reference mix on 16 × 8: its 129-frame classes need whole nodes of primaries
        let input = hunyuanMix 16 0.058 20.0<s>
        let plan = Planner.place input
        let mixed =
            Cluster.nodes input.Cluster
            |> List.filter (fun n ->
                let ts = Cluster.devicesOf input.Cluster n |> Array.map (fun d -> plan.Types.[d])
                Array.exists PlacementType.isPrimary ts && not (Array.forall PlacementType.isPrimary ts))
        let auxiliary = plan.Types |> Map.filter (fun _ t -> not (PlacementType.isPrimary t)) |> Map.count
        Expect.isGreaterThan auxiliary 0 "hunyuanvideo decodes on ⟨C⟩ devices (its VAE does not fit beside the DiT)"
        // fewer than 8 auxiliary devices fit on one node beside primaries: exactly one node mixes them
        Expect.equal mixed.Length 1 (sprintf "%d nodes mix primaries with %d auxiliary devices: %A (%s)" mixed.Length auxiliary (PlacementPlan.counts plan) (PlanSource.describe plan.Source))

let ``α of a placement counts a device it does not name as no device`` =
    testCase "α of a placement counts a device it does not name as no device" <| fun () ->
        // a worker's devices join the cluster before a placement names them (the serving loop asks α of
        // the current placement then)
        let input = cogvideoxInput 2 [ { Shape = Shape.video 768 432 17; Steps = 6; Share = 1.0 } ]
        let nodeZero = Cluster.devicesOf input.Cluster (NodeId 0) |> Array.map (fun d -> d, EDC) |> Map.ofArray
        let alpha = FlowCapacity.alphaFor input nodeZero
        Expect.isGreaterThan alpha 0.0 "node 0's devices serve the class"
        let both = FlowCapacity.alphaForLayout input [ Map.ofList [ EDC, 8 ]; Map.ofList [ EDC, 8 ] ]
        Expect.isLessThan alpha both "the node the placement does not name adds nothing"

/// The flux poisson workload's mix (its reference shapes, uniform, 28 steps) on one node of `devices` 48 GB devices.
let private fluxSmallInput (devices: int) (rate: float) =
    let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
    let shapes = Workload.referenceShapes "flux" |> Option.get
    { Cluster = Cluster.uniform 1 devices 48.0<GB> Bandwidths.pcie4Server
      Cost = cost
      Stats = { Classes = [ for sh in shapes -> { Shape = sh; Steps = 28; Share = 1.0 / float shapes.Length } ]; ArrivalRate = rate }
      Current = None
      TimeLimit = 5.0<s> }

/// The classes of the input's mix that the dispatcher finds no admissible option for under `types` (an idle cluster,
/// one request of each class): what the placement leaves unserved.
let private unroutedUnder (input: PlacementInput) (types: Map<DeviceId, PlacementType>) =
    let n = Cluster.deviceCount input.Cluster
    let requests =
        input.Stats.Classes
        |> List.mapi (fun i c ->
            { Id = RequestId(int64 i)
              Model = input.Cost.Profile.Model
              Shape = c.Shape
              Steps = c.Steps
              Arrival = 0.0<s>
              Deadline = 4.0 * CostModel.tRef input.Cost c.Shape c.Steps
              Priority = None })
    let work = Capacity.stageWork input.Cost input.Stats
    let snapshot =
        { Now = 0.0<s>
          Cluster = input.Cluster
          Cost = input.Cost
          Placement = { Types = types; Capacity = Capacity.ofTypes work (Map.values types); Alpha = 0.0; Moves = 0; Source = Greedy "test" }
          BusyUntil = Array.zeroCreate n
          Queue = requests
          Completed = Map.empty
          Settings = DispatchSettings.defaults
          Bookings = Map.empty
          IdleUntil = Map.empty }
    let rd = Dispatching.Admissible.round snapshot
    [ for r in requests do
          if List.isEmpty (Dispatching.Admissible.options rd r) then yield r.Shape ]

let ``on one node of two or three devices the placement serves every flux class some placement can serve`` =
    testCase "on one node of two or three devices the placement serves every flux class some placement can serve" <| fun () ->
        // flux 2048² needs k = 2 (the degree rules) and ⟨EDC⟩ does not fit it on 48 GB: on one node of two, ⟨DC⟩ /
        // ⟨ED⟩ / ⟨D⟩ at k = 2 leave no device for their ⟨E⟩ / ⟨C⟩, so only two ⟨DC⟩ whose lead loads the text encoders
        // serve it. The MIP was infeasible there (its coverage row for 2048² asked for a template whose ⟨E⟩ could not
        // exist) and the heuristic's ⟨DC⟩ + ⟨E⟩ left every 2048² request unserved.
        for devices in [ 1; 2; 3; 4 ] do
            for rate in [ 0.02; 1.5 ] do
                let input = fluxSmallInput devices rate
                let servable = input.Stats.Classes |> List.filter (fun c -> (CostModel.unservableOn input.Cost input.Cluster c.Shape).IsNone) |> List.map _.Shape
                if devices >= 2 then
                    Expect.equal servable.Length input.Stats.Classes.Length (sprintf "1 × %d: some placement serves every class, 2048² included" devices)
                else
                    Expect.isFalse (List.contains (Shape.image 2048 2048) servable) "1 × 1: 2048² needs two devices"
                let plan = Planner.place input
                let what = sprintf "1 × %d at %g req/s: %A (%s)" devices rate (PlacementPlan.counts plan) (PlanSource.describe plan.Source)
                match plan.Source with
                | Mip _ -> ()
                | Greedy reason -> failtestf "%s: fell back to the heuristic: %s" what reason
                Expect.isGreaterThan plan.Alpha 0.0 what
                let unrouted = unroutedUnder input plan.Types
                Expect.isEmpty (unrouted |> List.filter (fun sh -> List.contains sh servable)) (sprintf "%s: classes without a route: %A" what unrouted)
                // the fallback too: the heuristic's layout serves every class some placement serves
                let heuristic = Heuristic.plan input
                let unroutedHeuristic = unroutedUnder input heuristic.Types
                Expect.isEmpty
                    (unroutedHeuristic |> List.filter (fun sh -> List.contains sh servable))
                    (sprintf "1 × %d: the heuristic's %A leaves %A without a route" devices (PlacementPlan.counts heuristic) unroutedHeuristic)

let ``a cluster with room for the auxiliary devices never has its group leads load stages`` =
    testCase "a cluster with room for the auxiliary devices never has its group leads load stages" <| fun () ->
        // lead routes are a fallback for clusters too small for an ⟨E⟩/⟨C⟩ beside the group a class needs: with
        // three devices flux 2048² is served by two ⟨DC⟩ and an ⟨E⟩ (or two ⟨ED⟩ and a ⟨C⟩), and the MIP offers no
        // lead route, so 128-device placements are the model's as before
        for devices in [ 3; 4; 8 ] do
            let input = fluxSmallInput devices 1.5
            Expect.isFalse (PlacementMip.leadLoading input) (sprintf "1 × %d" devices)
        Expect.isTrue (PlacementMip.leadLoading (fluxSmallInput 2 1.5)) "1 × 2: 2048² needs it"
        let big = { fluxSmallInput 8 1.5 with Cluster = Cluster.uniform 16 8 48.0<GB> Bandwidths.pcie4Server }
        Expect.isFalse (PlacementMip.leadLoading big) "16 × 8"
        // a fixed layout with no ⟨E⟩ runs its ⟨DC⟩ devices' encodes on the lead; one with an ⟨E⟩ does not
        Expect.equal (FlowCapacity.completions [ Map.ofList [ DC, 2 ] ]) (Lead, Auxiliary) "⟨DC⟩ × 2"
        Expect.equal (FlowCapacity.completions [ Map.ofList [ DC, 1; E, 1 ] ]) (Auxiliary, Auxiliary) "⟨DC⟩ + ⟨E⟩"
        Expect.equal (FlowCapacity.completions [ Map.ofList [ EDC, 2 ] ]) (Auxiliary, Auxiliary) "⟨EDC⟩ × 2 lacks nothing"

let ``a class no placement of the cluster can serve does not hold α at 0`` =
    testCase "a class no placement of the cluster can serve does not hold α at 0" <| fun () ->
        // 129-frame 720p hunyuanvideo needs 8 ⟨ED⟩ and a ⟨C⟩ (CostModel.unservableOn): on one node of eight no layout
        // serves it, and its demand row made every layout's α 0, leaving the MIP nothing to choose by
        let input = hunyuanMix 1 0.01 10.0<s>
        Expect.isSome (CostModel.unservableOn input.Cost input.Cluster (Shape.video 720 1280 129)) "720×1280×129 needs nine devices"
        let plan = Planner.place input
        match plan.Source with
        | Mip _ -> ()
        | Greedy reason -> failtestf "fell back to the heuristic: %s" reason
        Expect.isGreaterThan plan.Alpha 0.0 (sprintf "α of %A" (PlacementPlan.counts plan))

[<Tests>]
let tests =
    testList "unit" [ testList "PlacementProperties" [
        ``the placement MIP's alpha is never below the heuristic's``
        ``the orchestrator's placement gives every device one type and never loses to the heuristic``
        ``re-planning an unchanged workload moves no weights``
        ``flux is placed disaggregated on a 48 GB cluster``
        ``a class that needs node-sized groups is served only by nodes with that many primaries``
        ``a fresh placement packs auxiliary devices onto as few nodes as it can``
        ``α of a placement counts a device it does not name as no device``
        ``on one node of two or three devices the placement serves every flux class some placement can serve``
        ``a cluster with room for the auxiliary devices never has its group leads load stages``
        ``a class no placement of the cluster can serve does not hold α at 0``
    ] |> testSequencedGroup "PlacementProperties" ]
