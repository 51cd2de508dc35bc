/// The serving runtime (Trident.Runtime.Serving): busy-until estimates, snapshots for replay, the job store,
/// and the server end to end over test-only fake executors (real generation is tested in Api/*).
/// (In the tiny-pipeline collection, which runs alone: these tests time threads, and their planner solves
/// would otherwise compete with the scheduling properties' time-limited ones.)
module Trident.Tests.Runtime.ServingTests

open System
open System.Threading
open FsCheck
open FsCheck.FSharp
open Microsoft.Extensions.Logging.Abstractions
open Expecto
open Trident.Tests.TestSupport
open Trident.Scheduling
open Trident.Scheduling.Dispatching
open Trident.Scheduling.Placement
open Trident.Runtime.Devices
open Trident.Runtime.Imaging
open Trident.Runtime.Serving
open Trident.Tests.Generators
open Trident.Tests.Runtime.ServingFixtures

// ---------------------------------------------------------------------------------------------------------
// Busy-until
// ---------------------------------------------------------------------------------------------------------

/// One ledger operation on device d: 0 enqueue (predicted tenths), 1 start the oldest, 2 finish the oldest.
type LedgerOp = { Device: int; Op: int; Tenths: int; Advance: int }

let ``busy-until never calls a device with work in flight free, and calls every idle device free`` =
    testProp 300 "busy-until never calls a device with work in flight free, and calls every idle device free" <| fun () ->
        let opGen =
            gen {
                let! d = Gen.choose (0, 2)
                let! op = Gen.choose (0, 2)
                let! tenths = Gen.choose (0, 30)
                let! advance = Gen.choose (0, 20)
                return { Device = d; Op = op; Tenths = tenths; Advance = advance }
            }
        let prop (ops: LedgerOp list) =
            let ledger = DeviceLedger(3)
            let pending = Array.init 3 (fun _ -> System.Collections.Generic.Queue<int64>())
            let started = Array.init 3 (fun _ -> System.Collections.Generic.HashSet<int64>())
            let mutable now = 0.0
            let mutable id = 0L
            let mutable ok = true
            for o in ops do
                now <- now + float o.Advance * 0.1
                match o.Op with
                | 0 ->
                    id <- id + 1L
                    ledger.Enqueued(o.Device, EncodeTask(id, RequestId id, float o.Tenths * 0.1, CancellationToken.None, input "p" 1))
                    pending.[o.Device].Enqueue id
                | 1 when pending.[o.Device].Count > 0 ->
                    let t = pending.[o.Device].Peek()
                    if started.[o.Device].Add t then ledger.Started(o.Device, t, now)
                | 2 when pending.[o.Device].Count > 0 ->
                    let t = pending.[o.Device].Dequeue()
                    started.[o.Device].Remove t |> ignore
                    ledger.Finished(o.Device, t)
                | _ -> ()
                for d in 0..2 do
                    let busy = ledger.BusyUntil(d, now)
                    ok <- ok && (if pending.[d].Count > 0 then busy > now else busy <= now)
            ok |> Prop.label "busy-until > now exactly while the device has tasks"
        (Prop.forAll (Arb.fromGen (Gen.listOf opGen)) prop)

// ---------------------------------------------------------------------------------------------------------
// Snapshots for replay
// ---------------------------------------------------------------------------------------------------------

let ``a snapshot read back from its JSON is the same round and gets the same plan`` =
    testProp 40 "a snapshot read back from its JSON is the same round and gets the same plan" <| fun () ->
        let prop (spec: SnapshotSpec) =
            let s = buildSnapshot DispatchSettings.defaults spec
            let r = SnapshotJson.Read(SnapshotJson.Write(s, Unchecked.defaultof<DispatchPlan>))
            let plan (x: Snapshot) =
                (fst (Greedy.plan "replay" x)).Dispatches
                |> List.map (fun d -> d.Request, d.Degree, d.Encode.Devices, d.Diffuse.Devices, d.Decode.Devices)
            (r.Now = s.Now |> Prop.label "now")
            .&. (r.Cluster = s.Cluster |> Prop.label "cluster")
            .&. (r.Cost.Profile = s.Cost.Profile |> Prop.label "profile")
            .&. (r.Cost.Settings = s.Cost.Settings |> Prop.label "cost settings")
            .&. (r.Placement.Types = s.Placement.Types |> Prop.label "placement")
            .&. (r.BusyUntil = s.BusyUntil |> Prop.label "busy-until")
            .&. (r.Queue = s.Queue |> Prop.label "queue")
            .&. (r.Settings = s.Settings |> Prop.label "settings")
            .&. (plan r = plan s |> Prop.label "greedy plan")
        (Prop.forAll snapshotSpecs prop)

// ---------------------------------------------------------------------------------------------------------
// Job store
// ---------------------------------------------------------------------------------------------------------

/// A wall clock the test moves by hand.
type private ManualTime(start: DateTimeOffset) =
    inherit TimeProvider()
    let mutable now = start
    member _.Advance(by: TimeSpan) = now <- now + by
    override _.GetUtcNow() = now

let private job (time: TimeProvider) (id: int64) =
    let r =
        { Id = RequestId id
          Model = ModelName "test"
          Shape = Shape.image 64 64
          Steps = 1
          Arrival = 0.0<s>
          Deadline = 10.0<s>
          Priority = None }
    Job(r, input "p" 1, time.GetUtcNow(), false)

let ``the job store refuses new jobs only when full of active ones, and evicts finished jobs after their retention`` =
    testCase "the job store refuses new jobs only when full of active ones, and evicts finished jobs after their retention" <| fun () ->
        let time = ManualTime(DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero))
        let store = JobStore(2, TimeSpan.FromSeconds 60.0, time)
        let a, b, c = job time 1L, job time 2L, job time 3L
        Expect.isTrue (store.TryAdd a) "store.TryAdd a"
        Expect.isTrue (store.TryAdd b) "store.TryAdd b"
        Expect.isFalse (store.TryAdd c) "full of active jobs: refused, nothing dropped"
        Expect.isNotNull (store.Find(RequestId 1L)) "store.Find(RequestId 1L)"
        a.Fail("test", 1.0)
        Expect.isTrue (store.TryAdd c) "a finished job makes room"
        Expect.isNull (store.Find(RequestId 1L)) "store.Find(RequestId 1L)"
        b.Fail("test", 1.0)
        time.Advance(TimeSpan.FromSeconds 30.0)
        Expect.equal (store.EvictExpired()) 0 "store.EvictExpired()"
        time.Advance(TimeSpan.FromSeconds 40.0)
        Expect.equal (store.EvictExpired()) 1 "store.EvictExpired()"
        Expect.isNull (store.Find(RequestId 2L)) "store.Find(RequestId 2L)"
        Expect.isNotNull (store.Find(RequestId 3L)) "store.Find(RequestId 3L)"

// ---------------------------------------------------------------------------------------------------------
// The server over fake executors
// ---------------------------------------------------------------------------------------------------------

let private startServer (settings: ServingSettings) (devices: int) (executors: IStageExecutorFactory) =
    let mix =
        { Classes = [ { Shape = Shape.image 64 64; Steps = 4; Share = 1.0 } ]
          ArrivalRate = 1.0 }
    let setup = ServerSetup(DeviceLayout.Cpu(devices, 1, devices, 8.0), testProfile, CostSettings.defaults, executors, settings, mix)
    TridentServer.Start(setup, NullLoggerFactory.Instance, TimeProvider.System)

let private accepted (outcome: SubmitOutcome) =
    match outcome with
    | :? SubmitOutcome.Accepted as a -> a.Job
    | other -> failwithf "expected the job to be accepted, got %A" other

let private finishedWithin seconds (j: Job) =
    waitUntil seconds (sprintf "job %O is over" j.Id) (fun () -> Job.IsTerminalStatus j.Status)

let ``a request goes through encode, diffuse and decode on the planned devices and yields a PNG`` =
    testCase "a request goes through encode, diffuse and decode on the planned devices and yields a PNG" <| fun () ->
        let log = ExecutionLog()
        let server = startServer (ServingSettings()) 2 (FakeExecutors log)
        try
            let j = server.Submit(input "hello" 4, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 j
            let v = j.View()
            Expect.equal v.Status JobStatus.Succeeded "v.Status"
            let png = PngDecoder.Decode(ReadOnlySpan(j.Result.Png))
            Expect.equal ((png.Width, png.Height)) ((64, 64)) "(png.Width, png.Height)"
            let route = v.Route.Dispatch
            Expect.contains log.Entries (sprintf "d%d encode hello" route.Encode.Devices.Head.Value) "log.Entries"
            Expect.contains log.Entries (sprintf "d%d diffuse hello threads=%d" route.Diffuse.Devices.Head.Value route.Degree) "log.Entries"
            Expect.isTrue (v.Encode.Finish.Value <= v.Diffuse.Start.Value + 1e-9 || route.Encode.Devices <> route.Diffuse.Devices) "encode before diffuse"
            Expect.isTrue (v.Diffuse.Finish.Value <= v.Decode.Finish.Value) "decode after diffuse"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``a failing stage fails only its own request, with the error`` =
    testCase "a failing stage fails only its own request, with the error" <| fun () ->
        let log = ExecutionLog()
        let server = startServer (ServingSettings()) 2 (FakeExecutors log)
        try
            let bad = server.Submit(input "fail" 2, Nullable(), Nullable()) |> accepted
            let good = server.Submit(input "fine" 2, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 bad
            finishedWithin 30.0 good
            Expect.equal bad.Status JobStatus.Failed "bad.Status"
            Expect.stringContains (bad.View().Error) "encoder exploded" "bad.View().Error"
            Expect.equal good.Status JobStatus.Succeeded "good.Status"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``a full queue refuses with a retry time and every accepted request is served`` =
    testCase "a full queue refuses with a retry time and every accepted request is served" <| fun () ->
        let log = ExecutionLog()
        let executors = FakeExecutors(log, TimeSpan.FromMilliseconds 20.0, TimeSpan.FromMilliseconds 1.0, "fail")
        let server = startServer (ServingSettings(QueueCapacity = 2)) 1 executors
        try
            let outcomes = [ for i in 1..8 -> server.Submit(input (sprintf "p%d" i) 5, Nullable(), Nullable()) ]
            let jobs = outcomes |> List.choose (fun (o: SubmitOutcome) -> match o with :? SubmitOutcome.Accepted as a -> Some a.Job | _ -> None)
            let refused = outcomes |> List.choose (fun (o: SubmitOutcome) -> match o with :? SubmitOutcome.Refused as r -> Some r | _ -> None)
            Expect.isNonEmpty refused "refused"
            for r in refused do Expect.isTrue (r.RetryAfter >= TimeSpan.FromSeconds 1.0) "Retry-After of at least a second"
            for j in jobs do finishedWithin 60.0 j
            for j in jobs do Expect.equal j.Status JobStatus.Succeeded "every job succeeded"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``cancelling a queued job cancels it at once and a running one at its next step`` =
    testCase "cancelling a queued job cancels it at once and a running one at its next step" <| fun () ->
        let log = ExecutionLog()
        let executors = FakeExecutors(log, TimeSpan.FromMilliseconds 10.0, TimeSpan.FromMilliseconds 1.0, "fail")
        let server = startServer (ServingSettings()) 1 executors
        try
            let running = server.Submit(input "running" 500, Nullable(), Nullable()) |> accepted
            let queued = server.Submit(input "queued" 500, Nullable(), Nullable()) |> accepted
            waitUntil 30.0 "the first job is diffusing" (fun () -> running.View().Step >= 1)
            Expect.isTrue (server.Cancel queued) "server.Cancel queued"
            Expect.equal queued.Status JobStatus.Cancelled "queued.Status"
            Expect.isTrue (server.Cancel running) "server.Cancel running"
            finishedWithin 10.0 running
            Expect.equal running.Status JobStatus.Cancelled "running.Status"
            Expect.isTrue (running.View().Step < 500) "stopped before its last step"
            Expect.isFalse (server.Cancel running) "a finished job cannot be cancelled again"
            Expect.isFalse (Seq.contains "d0 encode queued" log.Entries) "does not contain \"d0 encode queued\""
        finally
            server.DisposeAsync().AsTask().Wait()

let ``the live loop evaluates Adjust-on-Dispatch over its monitor as the simulator does, and a new placement reaches the workers`` =
    testCase "the live loop evaluates Adjust-on-Dispatch over its monitor as the simulator does, and a new placement reaches the workers" <| fun () ->
        let log = ExecutionLog()
        let executors = FakeExecutors(log, TimeSpan.FromMilliseconds 2.0, TimeSpan.FromMilliseconds 1.0, "fail")
        // a 1 s window, and a threshold of 1 that every evaluation with enough recent arrivals reaches
        let settings = ServingSettings(RoundPeriodSeconds = 0.05, Monitor = Trident.Runtime.Monitoring.MonitorSettings(1.0, 1.0, 0.2, 4, 0.1))
        let server = startServer settings 4 executors
        try
            let jobs =
                [ for i in 1..25 ->
                      let size = if i % 2 = 0 then 64 else 256
                      Thread.Sleep 100
                      server.Submit(GenerationInput(sprintf "p%d" i, null, size, size, 1, 6, uint64 i, 1.0), Nullable(), Nullable()) |> accepted ]
            for j in jobs do finishedWithin 60.0 j
            for j in jobs do Expect.equal j.Status JobStatus.Succeeded "every job succeeded"
            waitUntil 10.0 "an evaluation is recorded" (fun () -> not server.State.Placements.IsEmpty)
            let state = server.State
            let evaluation = state.Placements.[0]
            Expect.isTrue (evaluation.Reason.StartsWith "imbalance") evaluation.Reason
            // whatever was decided, the workers end up with the planned types
            waitUntil 10.0 "every worker has its planned type" (fun () ->
                server.Workers |> Seq.forall (fun w -> w.Type = server.State.Placement.Types.[w.Device.DeviceId]))
        finally
            server.DisposeAsync().AsTask().Wait()

[<Tests>]
let tests =
    testList "integration" [ testList "ServingTests" [
        ``busy-until never calls a device with work in flight free, and calls every idle device free``
        ``a snapshot read back from its JSON is the same round and gets the same plan``
        ``the job store refuses new jobs only when full of active ones, and evicts finished jobs after their retention``
        ``a request goes through encode, diffuse and decode on the planned devices and yields a PNG``
        ``a failing stage fails only its own request, with the error``
        ``a full queue refuses with a retry time and every accepted request is served``
        ``cancelling a queued job cancels it at once and a running one at its next step``
        ``the live loop evaluates Adjust-on-Dispatch over its monitor as the simulator does, and a new placement reaches the workers``
    ] |> testSequenced ]
