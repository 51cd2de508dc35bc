/// Client priority (docs/policies.md, "Priority"): the levels and weights, the queue order (priority before
/// slack), a dispatch round giving a contested device to the higher priority (greedy and solver), and
/// preemption weighing a higher-priority request's deadline above a lower-priority one's.
module Trident.Tests.PriorityTests

open Expecto
open Trident.Scheduling
open Trident.Scheduling.Dispatching
open Trident.Scheduling.Mip
open Trident.Tests.SimulatorTests

let ``levels and weights: 2^p within -3 … 3, absent is 0, out of range is refused and clamped`` =
    testCase "levels and weights: 2^p within -3 … 3, absent is 0, out of range is refused and clamped" <| fun () ->
        Expect.equal (Priority.weight None) 1.0 "no priority weighs 1"
        Expect.equal (Priority.weight (Some 1)) 2.0 "priority 1 weighs 2"
        Expect.equal (Priority.weight (Some -3)) 0.125 "priority -3 weighs 1/8"
        Expect.equal (Priority.weight (Some 3)) 8.0 "priority 3 weighs 8"
        Expect.equal (Priority.level (Some 1000)) Priority.MaxLevel "a journalled value above the range is clamped"
        Expect.equal (Priority.level (Some -1000)) Priority.MinLevel "and below it"
        for p in Priority.MinLevel .. Priority.MaxLevel do
            Expect.isNone (Priority.problem p) (sprintf "%d is accepted" p)
        for p in [ Priority.MinLevel - 1; Priority.MaxLevel + 1; System.Int32.MaxValue; System.Int32.MinValue ] do
            match Priority.problem p with
            | Some why -> Expect.stringContains why "from -3 to 3" (sprintf "%d is refused naming the range" p)
            | None -> failtestf "%d was accepted" p

/// One flux device (⟨EDC⟩) busy until `now`, and two 512² requests: `tight` arrived first with the earlier
/// deadline, `loose` later with a later one; both finish on time on the device if started now.
let private contested (tightPriority: int option) (loosePriority: int option) =
    let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux
    let cluster = Cluster.uniform 1 1 48.0<GB> Bandwidths.pcie4Server
    let types = Map.ofList [ DeviceId 0, EDC ]
    let shape = Shape.image 512 512
    let stats: Trident.Scheduling.Placement.WorkloadStats = { Classes = [ { Shape = shape; Steps = 28; Share = 1.0 } ]; ArrivalRate = 0.5 }
    let capacity = Trident.Scheduling.Placement.Capacity.ofTypes (Trident.Scheduling.Placement.Capacity.stageWork cost stats) (Map.values types)
    let placement = { Types = types; Capacity = capacity; Alpha = 1.0; Moves = 0; Source = Greedy "test" }
    let now = 10.0<s>
    let request id (arrival: float<s>) priority =
        { Id = RequestId id; Model = cost.Profile.Model; Shape = shape; Steps = 28; Arrival = arrival
          Deadline = arrival + 60.0<s>; Priority = priority }
    let tight = request 1L 1.0<s> tightPriority
    let loose = request 2L 2.0<s> loosePriority
    let s =
        { Now = now; Cluster = cluster; Cost = cost; Placement = placement; BusyUntil = [| now |]
          Queue = [ loose; tight ]; Completed = Map.empty; Settings = { DispatchSettings.defaults with TimeLimit = 10.0<s> }
          Bookings = Map.empty; IdleUntil = Map.empty }
    s, tight, loose

/// The requests the solver's optimum serves in a round (the model solved alone: no greedy start, no bound check).
let private solverServes (s: Snapshot) =
    let prepared = Dispatcher.prepare s
    let cls = DispatchMip.classes prepared.Round prepared.Candidates
    let model = DispatchMip.modelOf s prepared.Free cls
    let result = Mip.solve (SolveSettings.create 10.0<s>) model
    Expect.equal result.Outcome Optimal "the round's model is solved to optimality"
    DispatchMip.choicesOf s prepared.Free prepared.Candidates cls result |> List.map _.Option.Request.Id

let ``the queue is ordered by priority, then slack`` =
    testCase "the queue is ordered by priority, then slack" <| fun () ->
        let s, tight, loose = contested None None
        let ids (s: Snapshot) =
            let byRound = Admissible.byUrgency (Admissible.round s) s.Queue |> List.map _.Id
            // the order the live server's queue positions count (before: arrival order, so a priority-3 request that
            // arrived last showed position 3 while it was dispatched first)
            Expect.equal (Admissible.urgencyOrder s.Cost s.Now s.Queue |> List.map _.Id) byRound "urgencyOrder is the round's order"
            byRound
        Expect.equal (ids s) [ tight.Id; loose.Id ] "without priorities: least slack first"
        let s1, _, _ = contested None (Some 1)
        Expect.equal (ids s1) [ loose.Id; tight.Id ] "the priority-1 request first, though it has more slack"
        let s2, _, _ = contested (Some -1) None
        Expect.equal (ids s2) [ loose.Id; tight.Id ] "a negative priority goes after priority 0"
        let s3, _, _ = contested (Some 2) (Some 2)
        Expect.equal (ids s3) [ tight.Id; loose.Id ] "equal priorities: slack decides"

let ``a contested device goes to the higher priority, in the greedy plan and the solver's`` =
    testCase "a contested device goes to the higher priority, in the greedy plan and the solver's" <| fun () ->
        let served (plan: DispatchPlan) = DispatchPlan.served plan
        let s, tight, _ = contested None None
        Expect.equal (served (Greedy.plan "test" s |> fst)) [ tight.Id ] "without priorities the greedy plan serves the least slack"
        let s1, tight1, loose1 = contested None (Some 1)
        let rd = Admissible.round s1
        let reward r = Admissible.options rd r |> List.map _.Reward |> List.max
        Expect.floatClose Accuracy.medium (reward loose1 - 2.0 * DispatchSettings.defaults.OnTimeReward) (reward tight1 - DispatchSettings.defaults.OnTimeReward)
            "the priority-1 request's on-time reward is doubled, its penalties are not"
        Expect.equal (served (Greedy.plan "test" s1 |> fst)) [ loose1.Id ] "the greedy plan serves the priority-1 request"
        Expect.equal (solverServes s1) [ loose1.Id ] "the solver's optimum serves the priority-1 request"
        Expect.equal (served (Dispatcher.dispatch s1)) [ loose1.Id ] "and so does the dispatch round"

let ``a late priority-1 request does not take the device from an on-time priority-0 one`` =
    testCase "a late priority-1 request does not take the device from an on-time priority-0 one" <| fun () ->
        // the priority-1 request's deadline is 1 s away: late whatever it does, its reward is 2 × an ageing late reward
        // (≈ 2 × 180), less than the on-time reward of the priority-0 request (1000): the objective, the candidate
        // order and so the greedy plan all give the device to the priority-0 request; at priority 3 (8 × 180) the other
        let s0, tight, loose0 = contested None (Some 1)
        let loose = { loose0 with Deadline = s0.Now + 1.0<s> }
        let s = { s0 with Queue = [ loose; tight ] }
        let rd = Admissible.round s
        Expect.isFalse (Admissible.options rd loose |> List.exists _.OnTime) "the priority-1 request is late whatever it does"
        Expect.isTrue (Admissible.options rd tight |> List.exists _.OnTime) "the priority-0 request can be on time"
        Expect.equal (Greedy.offeredIn rd (Greedy.roundFree rd) s.Queue |> List.map (fst >> _.Id)) [ tight.Id; loose.Id ] "the on-time request is offered first"
        Expect.equal (DispatchPlan.served (Greedy.plan "test" s |> fst)) [ tight.Id ] "the greedy plan serves the on-time priority-0 request"
        Expect.equal (solverServes s) [ tight.Id ] "so does the solver's optimum"
        Expect.equal (DispatchPlan.served (Dispatcher.dispatch s)) [ tight.Id ] "and the dispatch round"
        // at priority 3 the same late request is worth 8 × its ageing late reward, more than the on-time reward: it
        // goes first (a premium request whose deadline cannot be met is not pushed behind ordinary on-time work)
        let s3 = { s with Queue = [ { loose with Priority = Some 3 }; tight ] }
        let rd3 = Admissible.round s3
        let late3 = Admissible.baseReward rd3 (List.head s3.Queue) false
        Expect.isGreaterThan late3 DispatchSettings.defaults.OnTimeReward "8 × the ageing late reward exceeds the on-time reward"
        Expect.equal (Greedy.offeredIn rd3 (Greedy.roundFree rd3) s3.Queue |> List.map (fst >> _.Id)) [ loose.Id; tight.Id ] "the priority-3 request is offered first"
        Expect.equal (DispatchPlan.served (Greedy.plan "test" s3 |> fst)) [ loose.Id ] "the greedy plan serves it"
        Expect.equal (solverServes s3) [ loose.Id ] "so does the solver's optimum"

/// A request from `PreemptionTests`' scenario: four videos on one node, two images 30 s later.
let private request (cost: CostModel) (id: int64) (arrival: float) (shape: Shape) =
    { Id = RequestId id; Model = cost.Profile.Model; Shape = shape; Steps = 50; Arrival = arrival * 1.0<s>
      Deadline = CostModel.deadline cost (arrival * 1.0<s>) shape 50; Priority = None }

let ``preemption makes a lower-priority video late for a higher-priority image, not for an equal one`` =
    testCase "preemption makes a lower-priority video late for a higher-priority image, not for an equal one" <| fun () ->
        // four videos fill the ⟨ED⟩ devices of one node and finish just on time (deadline = their finish without
        // preemption + 1 s); an image arriving at 31 s is late if it waits. Suspending a video for it makes that
        // video late: at equal priority the image's gain (one on-time reward, plus latency terms) and the video's
        // loss (one on-time reward, plus latency terms) differ by the latency terms only, below a MinGain of half
        // an on-time reward, so nothing is suspended; at priority 1 the image's gain is doubled and a video is
        let cost = CostModel.create { CostSettings.defaults with Deadline = SloScale 1.5 } ReferenceProfiles.hunyuanvideo
        let config =
            { SimConfig.create (Cluster.uniform 1 8 48.0<GB> Bandwidths.pcie4Server) cost with
                Dispatch = { DispatchSettings.defaults with TimeLimit = 10.0<s> }
                PlacementTimeLimit = 10.0<s> }
        let videos0 = [ for i in 0L .. 3L -> { request cost i 0.0 (Shape.video 960 544 33) with Deadline = 100000.0<s> } ]
        let image = request cost 5L 31.0 (Shape.image 720 1280)
        let plainPolicy () = Baselines.trident 0.5<s> None
        let preempting () =
            Baselines.tridentPreempt 0.5<s> None { PreemptionSettings.defaults with MinGain = 0.5 * DispatchSettings.defaults.OnTimeReward }
        let loose = Simulator.run config (plainPolicy ()) (videos0 @ [ image ])
        let finishOf (r: SimResult) id = (r.Records |> Array.find (fun x -> x.Request.Id = id)).Finish.Value
        let videos = videos0 |> List.map (fun v -> { v with Deadline = finishOf loose v.Id + 1.0<s> })
        let outcome (r: SimResult) id = (r.Records |> Array.find (fun x -> x.Request.Id = id)).Outcome
        let plain = Simulator.run config (plainPolicy ()) (videos @ [ image ])
        Expect.equal (outcome plain image.Id) Late "without preemption the image waits and is late"
        for v in videos do
            Expect.equal (outcome plain v.Id) OnTime (sprintf "video %O is on time without preemption" v.Id)
        let equal = Simulator.run config (preempting ()) (videos @ [ image ])
        Expect.equal equal.Summary.Suspensions 0 "at equal priority no video is made late for the image"
        Expect.equal (outcome equal image.Id) Late "so the image is late"
        let urgent = { image with Priority = Some 1 }
        let higher = Simulator.run config (preempting ()) (videos @ [ urgent ])
        Expect.isGreaterThanOrEqual higher.Summary.Suspensions 1 "for a priority-1 image a video is suspended"
        Expect.equal (outcome higher urgent.Id) OnTime "and the image is on time"
        let lateVideos = videos |> List.filter (fun v -> outcome higher v.Id <> OnTime)
        Expect.equal lateVideos.Length 1 "one video pays for it"
        // `simulate` prints each level apart: the priority-1 image on time, the four priority-0 videos at 3 of 4
        let table = Report.priorityTable [ higher ]
        let rows = table.Split([| '\n' |], System.StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun l -> l.Split([| ' ' |], System.StringSplitOptions.RemoveEmptyEntries))
        Expect.equal (rows |> Array.map (fun r -> r.[r.Length - 4 .. r.Length - 2])) [| [| "priority"; "requests"; "attainment" |]; [| "1"; "1"; "1.000" |]; [| "0"; "4"; "0.750" |] |] "one row per level, highest first"
        Expect.equal (Report.priorityTable [ equal ]) "" "no table without priorities"
        let suspended = higher.Records |> Array.filter (fun x -> x.Suspensions > 0)
        for x in suspended do
            Expect.equal (x.Segments |> List.sumBy _.Steps) x.Request.Steps "the suspended video's steps add up"

[<Tests>]
let tests =
    testList "unit" [ testList "PriorityTests" [
        ``levels and weights: 2^p within -3 … 3, absent is 0, out of range is refused and clamped``
        ``the queue is ordered by priority, then slack``
        ``a contested device goes to the higher priority, in the greedy plan and the solver's``
        ``a late priority-1 request does not take the device from an on-time priority-0 one``
        ``preemption makes a lower-priority video late for a higher-priority image, not for an equal one``
    ] ]
