/// Workers (Trident.Runtime.Devices): one FIFO executor per device over a bounded channel of typed stage
/// tasks. Run with the test-only fake executor of ServingFixtures, so timing and failures are controlled.
/// (In the tiny-pipeline collection, which runs alone: these tests time threads, and their planner solves
/// would otherwise compete with the scheduling properties' time-limited ones.)
module Trident.Tests.Runtime.WorkerTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Trident.Tests.TestSupport
open Trident.Scheduling
open Trident.Runtime.Devices
open Trident.Tests.Runtime.ServingFixtures

/// Records task starts and finishes into the same log the fake executors write to.
type private RecordingObserver(log: ExecutionLog) =
    interface IWorkerObserver with
        member _.Started(w, t) = log.Add(sprintf "start d%d %A %d" w.Device.Id t.Kind t.TaskId)
        member _.Finished(w, t, e) = log.Add(sprintf "finish d%d %A %d %s" w.Device.Id t.Kind t.TaskId (if isNull e then "ok" else "error"))

let private cpu id = DeviceSpec(id, 0, DeviceKind.Cpu, 1, 0, 8.0)

let private noProgress =
    { new IStepObserver with
        member _.StepCompleted(_, _) = () }

let private startWorker (log: ExecutionLog) id (t: PlacementType) stepMs =
    let factory = FakeExecutors(log, TimeSpan.FromMilliseconds(float stepMs), TimeSpan.FromMilliseconds 2.0, "fail") :> IStageExecutorFactory
    new Worker(cpu id, t, factory.Create(cpu id), RecordingObserver log, 16)

let private encode id prompt (ct: CancellationToken) = EncodeTask(id, RequestId id, 0.01, ct, input prompt 4)

let private enqueue (w: Worker) (t: StageTask) = w.EnqueueAsync(t, CancellationToken.None).AsTask().Wait()

/// Makes `w` busy with a request of its own: its encode (task `id`) and a diffuse of `steps` steps (task `id + 1`),
/// queued; returns the diffuse.
let private busyWith (w: Worker) (id: int64) (prompt: string) (steps: int) =
    let embeddings = encode id prompt CancellationToken.None
    let diffuse = DiffuseTask(id + 1L, RequestId id, 0.001 * float steps, CancellationToken.None, input prompt steps, embeddings.Result.Task, 1, 1, [||], noProgress)
    enqueue w embeddings
    enqueue w diffuse
    diffuse

/// Waits (at most 20 s) for a task to end in any way, without throwing its error.
let private finished (t: Task) = (t :> IAsyncResult).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds 20.0) |> ignore

let private indexOf (log: ExecutionLog) (prefix: string) =
    log.Entries |> List.findIndex (fun e -> e.StartsWith(prefix, StringComparison.Ordinal))

let ``a worker runs its tasks one at a time in the order they were queued`` =
    testCase "a worker runs its tasks one at a time in the order they were queued" <| fun () ->
        let log = ExecutionLog()
        use w = startWorker log 0 EDC 1
        let tasks = [ for i, p in List.indexed [ "a"; "b"; "c" ] -> encode (int64 (i + 1)) p CancellationToken.None ]
        for t in tasks do enqueue w t
        for t in tasks do finished t.Completion
        // a task's result is set before its worker reports it finished
        waitUntil 10.0 "the last finish is reported" (fun () -> log.Entries |> List.exists (fun e -> e.StartsWith "finish d0 Encode 3"))
        let runs = log.Entries |> List.filter (fun e -> e.StartsWith "d0 encode")
        Expect.equal runs ([ "d0 encode a"; "d0 encode b"; "d0 encode c" ]: string list) "runs"
        // starts and finishes alternate: never two tasks at once
        let events = log.Entries |> List.filter (fun e -> e.StartsWith "start" || e.StartsWith "finish") |> List.map (fun e -> e.Split(' ').[0])
        Expect.equal events ([ for _ in 1..3 do yield "start"; yield "finish" ]: string list) "events"

let ``a failing task fails its request with the error and the worker lives on`` =
    testCase "a failing task fails its request with the error and the worker lives on" <| fun () ->
        let log = ExecutionLog()
        use w = startWorker log 0 EDC 1
        let bad = encode 1L "fail" CancellationToken.None
        let good = encode 2L "fine" CancellationToken.None
        enqueue w bad
        enqueue w good
        finished bad.Completion
        finished good.Completion
        Expect.isTrue bad.Result.Task.IsFaulted "the failing task is reported failed"
        Expect.stringContains bad.Result.Task.Exception.InnerException.Message "encoder exploded" "bad.Result.Task.Exception.InnerException.Message"
        Expect.isTrue good.Result.Task.IsCompletedSuccessfully "the next task still runs"
        Expect.equal good.Result.Task.Result.Value (box "fine") "good.Result.Task.Result.Value"

let ``a diffuse group runs only once every device of the group reached it, and holds them until it ends`` =
    testCase "a diffuse group runs only once every device of the group reached it, and holds them until it ends" <| fun () ->
        let log = ExecutionLog()
        use w0 = startWorker log 0 EDC 2
        use w1 = startWorker log 1 EDC 2
        // w1 is busy first: a diffuse of its own (20 steps × 2 ms)
        let earlier = busyWith w1 1L "earlier" 20
        // then a degree-2 group led by w0
        let emb = encode 3L "group" CancellationToken.None
        let seat = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
        let lead = DiffuseTask(4L, RequestId 2L, 0.02, CancellationToken.None, input "group" 4, emb.Result.Task, 2, 2, [| seat |], noProgress)
        let reserve = ReserveTask(5L, RequestId 2L, 0.02, CancellationToken.None, seat, lead.Result.Task)
        enqueue w0 emb
        enqueue w0 lead
        enqueue w1 reserve
        finished reserve.Completion
        finished lead.Completion
        // a task's result is set before its worker reports it finished
        waitUntil 10.0 "the reservation is reported over" (fun () -> log.Entries |> List.exists (fun e -> e.StartsWith "finish d1 Reserve 5"))
        Expect.isTrue lead.Result.Task.IsCompletedSuccessfully "the group's diffuse succeeds"
        Expect.isTrue (indexOf log "finish d1 Diffuse 2" < indexOf log "d0 diffuse group threads=2") "the lead waits for the reserved device"
        Expect.isTrue (indexOf log "d0 diffuse group" < indexOf log "finish d1 Reserve 5") "the reserved device is held while the group runs"

let ``a cancelled request's queued tasks are skipped and its running diffuse stops at the next step`` =
    testCase "a cancelled request's queued tasks are skipped and its running diffuse stops at the next step" <| fun () ->
        let log = ExecutionLog()
        use w = startWorker log 0 EDC 5
        use cts = new CancellationTokenSource()
        let steps = ref 0
        let progress =
            { new IStepObserver with
                member _.StepCompleted(i, _) = steps.Value <- i }
        let emb = encode 1L "long" cts.Token
        let diffuse = DiffuseTask(2L, RequestId 1L, 1.0, cts.Token, input "long" 400, emb.Result.Task, 1, 1, [||], progress)
        let after = encode 3L "after" cts.Token
        enqueue w emb
        enqueue w diffuse
        enqueue w after
        waitUntil 20.0 "two steps ran" (fun () -> steps.Value >= 2)
        cts.Cancel()
        finished diffuse.Completion
        finished after.Completion
        Expect.isTrue diffuse.Result.Task.IsCanceled "the running diffuse ends cancelled"
        Expect.isTrue (steps.Value < 400) (sprintf "it stopped early (after %d of 400 steps)" steps.Value)
        Expect.isTrue after.Result.Task.IsCanceled "the queued task is cancelled"
        Expect.isFalse (Seq.contains "d0 encode after" log.Entries) "does not contain \"d0 encode after\""

let ``a retype unloads the models the new type no longer holds and runs after earlier work`` =
    testCase "a retype unloads the models the new type no longer holds and runs after earlier work" <| fun () ->
        let log = ExecutionLog()
        use w = startWorker log 0 EDC 1
        let emb = encode 1L "x" CancellationToken.None
        let diffuse = DiffuseTask(2L, RequestId 1L, 0.01, CancellationToken.None, input "x" 2, emb.Result.Task, 1, 1, [||], noProgress)
        let decode = DecodeTask(3L, RequestId 1L, 0.01, CancellationToken.None, input "x" 2, diffuse.Result.Task)
        let retype = RetypeTask(4L, D)
        for t in [ emb :> StageTask; diffuse; decode; retype ] do enqueue w t
        finished retype.Completion
        Expect.isTrue decode.Result.Task.IsCompletedSuccessfully "work queued before the retype ran under the old type"
        Expect.equal w.Type D "w.Type"
        Expect.equal (w.Resident |> List.ofSeq) ([ Diffuse ]: Stage list) "w.Resident |> List.ofSeq"

let ``a worker loads its type's models before its first task and on a retype, as a placement moves weights`` =
    testCase "a worker loads its type's models before its first task and on a retype, as a placement moves weights" <| fun () ->
        // The real executor over the bundled tiny pipeline: a stage is resident once its session exists.
        let executor = new OnnxStageExecutor(Trident.Runtime.Execution.LoadedPipeline.Open TinyFixture.directory.Value, 1)
        use w = new Worker(cpu 0, ED, executor, RecordingObserver(ExecutionLog()), 4)
        waitUntil 60.0 "the ED worker has its encoder and denoiser resident" (fun () -> w.Resident.SetEquals [ Encode; Diffuse ])
        let retype = RetypeTask(1L, C)
        enqueue w retype
        finished retype.Completion
        Expect.isTrue retype.Completion.IsCompletedSuccessfully "the retype ran"
        Expect.equal (w.Resident |> List.ofSeq) ([ Decode ]: Stage list) "after the retype to C only the decoder is resident, loaded before any decode task"

let ``a decode whose latents are not ready does not block a ready decode queued behind it`` =
    testCase "a decode whose latents are not ready does not block a ready decode queued behind it" <| fun () ->
        let log = ExecutionLog()
        use w = startWorker log 0 EDC 1
        let late = TaskCompletionSource<StageOutput>(TaskCreationOptions.RunContinuationsAsynchronously)
        let first = DecodeTask(1L, RequestId 1L, 0.01, CancellationToken.None, input "first" 2, late.Task)
        let second = DecodeTask(2L, RequestId 2L, 0.01, CancellationToken.None, input "second" 2, Task.FromResult(StageOutput(box (64, 64), 128L)))
        enqueue w first
        enqueue w second
        finished second.Result.Task
        Expect.isTrue second.Result.Task.IsCompletedSuccessfully "the ready decode ran while the first waited for its latents"
        Expect.isFalse first.Result.Task.IsCompleted "the first decode still waits"
        late.SetResult(StageOutput(box (64, 64), 128L))
        finished first.Result.Task
        Expect.isTrue first.Result.Task.IsCompletedSuccessfully "the held decode ran once its latents were ready"
        waitUntil 10.0 "the queue is empty" (fun () -> w.QueueLength = 0)

let ``a suspended or failed diffuse ends its attempt at once, not after the work its decode device runs`` =
    testCase "a suspended diffuse is handed back for resumption, and a failed one fails its job, at once, while its decode device still runs other work" <| fun () ->
        let log = ExecutionLog()
        use w0 = startWorker log 0 ED 1
        use w1 = startWorker log 1 C 1
        // the decode device is busy for about 3 s: a 3000-step diffuse stands in for a long video decode
        let blocker = busyWith w1 1001L "blocker" 3000
        let suspended = TaskCompletionSource<Trident.Runtime.Serving.SuspendedJob>()
        let plans =
            Trident.Runtime.Serving.PlanExecutor([| w0; w1 |], Trident.Runtime.Serving.DeviceLedger 2, Trident.Runtime.Serving.ServerClock TimeProvider.System, 8,
                null, Action<_>(fun s -> suspended.TrySetResult s |> ignore), Suspendable = true)
        let job = testJob DateTimeOffset.UtcNow 7L 2000
        let at (ds: int list) = { Devices = ds |> List.map DeviceId; Start = 0.0<s>; Finish = 1.0<s> }
        let d = { Request = RequestId 7L; Degree = 1; Vr = VrType.V0; Encode = at [ 0 ]; Diffuse = at [ 0 ]; Decode = at [ 1 ]; OnTime = true; Reward = 1.0 }
        let task = plans.ExecuteAsync(job, d, Trident.Runtime.Serving.JobRoute(1L, "test", d), CancellationToken.None).AsTask().Result
        waitUntil 10.0 "the job diffuses" (fun () -> job.View().Step > 0)
        task.Suspend.Request()
        Expect.isTrue (suspended.Task.Wait(TimeSpan.FromSeconds 2.0)) "handed back within 2 s of the request"
        Expect.isFalse blocker.Result.Task.IsCompleted "while the decode device still runs its 3 s of work"
        let s = suspended.Task.Result
        Expect.isGreaterThan s.Checkpoint.Step 0 "suspended after a step"
        Expect.equal (s.DecodeDevice, s.Withdrawn) (1, false) "its decode device; a suspension, not a withdrawal"
        // so is a failure: a job whose encode fails is failed at once, not when the decode device gets to its decode
        let failing =
            let j = testJob DateTimeOffset.UtcNow 8L 4
            Trident.Runtime.Serving.Job(j.Request, input "fail" 4, DateTimeOffset.UtcNow, false)
        let d8 = { d with Request = RequestId 8L }
        plans.ExecuteAsync(failing, d8, Trident.Runtime.Serving.JobRoute(2L, "test", d8), CancellationToken.None).AsTask().Wait()
        waitUntil 2.0 "the failing job has failed" (fun () -> failing.Status = Trident.Runtime.Serving.JobStatus.Failed)
        Expect.stringContains (failing.View().Error) "encoder exploded" "with the stage's error"
        Expect.isFalse blocker.Result.Task.IsCompleted "while the decode device still runs its work"
        // the stopped attempt's decode is skipped when the decode device gets to it: it never decodes
        finished blocker.Result.Task
        waitUntil 10.0 "the decode device reaches the stopped attempt's decode" (fun () -> log.Entries |> List.exists (fun e -> e = sprintf "finish d1 Decode %d error" s.DecodeTaskId))
        Expect.isFalse (log.Entries |> List.contains "d1 decode") "nothing was decoded"

[<Tests>]
let tests =
    testList "integration" [ testList "WorkerTests" [
        ``a worker runs its tasks one at a time in the order they were queued``
        ``a decode whose latents are not ready does not block a ready decode queued behind it``
        ``a failing task fails its request with the error and the worker lives on``
        ``a diffuse group runs only once every device of the group reached it, and holds them until it ends``
        ``a cancelled request's queued tasks are skipped and its running diffuse stops at the next step``
        ``a retype unloads the models the new type no longer holds and runs after earlier work``
        ``a worker loads its type's models before its first task and on a retype, as a placement moves weights``
        ``a suspended or failed diffuse ends its attempt at once, not after the work its decode device runs``
    ] |> testSequenced ]
