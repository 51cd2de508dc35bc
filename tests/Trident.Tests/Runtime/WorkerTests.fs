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

let ``a stage the worker's type lacks, loaded for one task, is unloaded before its next task of another stage`` =
    testCase "a stage the worker's type lacks, loaded for one task, is unloaded before its next task of another stage" <| fun () ->
        // a group's lead runs the encode of a ⟨DC⟩ group when the placement has no ⟨E⟩ device (Admissible.leadRuns:
        // flux 2048² on two devices); the planners count on the text encoders being gone again before the decode
        let log = ExecutionLog()
        use w = startWorker log 0 DC 1
        let emb = encode 1L "x" CancellationToken.None
        enqueue w emb
        finished emb.Completion
        Expect.isTrue emb.Result.Task.IsCompletedSuccessfully "the ⟨DC⟩ worker ran the encode"
        Expect.isTrue (w.Resident.Contains Encode) "loading the encoder for it"
        let diffuse = DiffuseTask(2L, RequestId 1L, 0.01, CancellationToken.None, input "x" 2, emb.Result.Task, 1, 1, [||], noProgress)
        let decode = DecodeTask(3L, RequestId 1L, 0.01, CancellationToken.None, input "x" 2, diffuse.Result.Task)
        for t in [ diffuse :> StageTask; decode ] do enqueue w t
        finished decode.Completion
        Expect.isTrue decode.Result.Task.IsCompletedSuccessfully "the request completed"
        Expect.isFalse (w.Resident.Contains Encode) "the encoder was unloaded before the diffuse"
        Expect.equal w.Type DC "the worker's type is unchanged"

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

let ``a worker on the start-up check's sessions keeps its type's and releases the others`` =
    testCase "a worker whose executor adopted the start-up check's sessions keeps its type's, loads nothing again and releases the others" <| fun () ->
        // OnnxServingBackend with a configured profile: the first device's executor takes the sessions Verify made
        let pipeline = Trident.Runtime.Execution.LoadedPipeline.Open TinyFixture.directory.Value
        let check = pipeline.Reopen()
        check.Verify(1)
        let session m = check.Session(m, 1)
        let encoder, denoiser, decoder =
            session Trident.Runtime.Execution.StageModel.TextEncoder, session Trident.Runtime.Execution.StageModel.Denoiser,
            session Trident.Runtime.Execution.StageModel.VaeDecoder
        let executor = new OnnxStageExecutor(pipeline, 1, check)
        Expect.equal (set executor.Resident) (set [ Encode; Diffuse; Decode ]) "every stage resident at once, on the checked sessions"
        use w = new Worker(cpu 0, D, executor, RecordingObserver(ExecutionLog()), 4)
        waitUntil 60.0 "the D worker keeps only the denoiser" (fun () -> w.Resident.SetEquals [ Diffuse ])
        Expect.isFalse denoiser.Released "the denoiser runs on the checked session, not a second one"
        Expect.isTrue (encoder.Released && decoder.Released) "the text encoder's and the decoder's sessions are released when the worker starts"
        let emb = encode 1L "x" CancellationToken.None
        let diffuse = DiffuseTask(2L, RequestId 1L, 0.01, CancellationToken.None, input "x" 2, emb.Result.Task, 1, 1, [||], noProgress)
        enqueue w emb
        enqueue w diffuse
        finished diffuse.Result.Task
        Expect.isTrue diffuse.Result.Task.IsCompletedSuccessfully "a diffuse runs on the adopted session (the encode loaded its model again on first use)"
        Expect.isFalse denoiser.Released "still the checked session"

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

// ---------------------------------------------------------------------------------------------------------
// Backfill lane (live backfilling): Worker.EnqueueAhead and the gang gate (GangGate)
// ---------------------------------------------------------------------------------------------------------

let private ready (value: obj) = Task.FromResult(StageOutput(value, 64L))

/// A degree-2 gang led by `lead` (task `id`, an encode `id - 1` before it on the lead) with a Reserve (task `id + 1`)
/// on `member`, sharing one gate; queued. Returns (lead diffuse, reserve).
let private gang (lead: Worker) (mate: Worker) (id: int64) (prompt: string) (steps: int) (ct: CancellationToken) =
    let emb = encode (id - 1L) prompt ct
    let seat = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    let gate = GangGate(id, [| seat |])
    let diffuse = DiffuseTask(id, RequestId id, 0.02, ct, input prompt steps, emb.Result.Task, 2, 2, [| seat |], noProgress, Gate = gate)
    let reserve = ReserveTask(id + 1L, RequestId id, 0.02, ct, seat, diffuse.Result.Task, Gate = gate)
    enqueue lead emb
    enqueue lead diffuse
    enqueue mate reserve
    diffuse, reserve

/// A one-device diffuse (task `id`) of `steps` steps with `embeddings` as its input: a backfill (the test may hold its
/// input back).
let private laneDiffuse (id: int64) (prompt: string) (steps: int) (embeddings: Task<StageOutput>) (ct: CancellationToken) =
    DiffuseTask(id, RequestId id, 0.01, ct, input prompt steps, embeddings, 1, 1, [||], noProgress)

/// A device made busy until the test releases it: a diffuse waiting for embeddings the test sets (once its worker
/// took it).
let private blocked (w: Worker) (id: int64) =
    let release = TaskCompletionSource<StageOutput>(TaskCreationOptions.RunContinuationsAsynchronously)
    let t = laneDiffuse id "blocker" 2 release.Task CancellationToken.None
    enqueue w t
    waitUntil 20.0 "the worker takes the blocker" (fun () -> obj.ReferenceEquals(w.Current, t))
    release, t

let private has (log: ExecutionLog) (entry: string) = log.Entries |> List.exists (fun e -> e.StartsWith(entry, StringComparison.Ordinal))

let private pending () = TaskCompletionSource<StageOutput>(TaskCreationOptions.RunContinuationsAsynchronously)

/// The lead's device `w0` busy with a blocker (task `blockerId`, released by the test) and a gang led there (task `id`,
/// of `ct`) whose member on `w1` is seated: (release, blocker, lead, reserve).
let private seatedGang (log: ExecutionLog) (w0: Worker) (w1: Worker) (blockerId: int64) (id: int64) (prompt: string) (ct: CancellationToken) =
    let release, blocker = blocked w0 blockerId
    let lead, reserve = gang w0 w1 id prompt 4 ct
    waitUntil 20.0 "the member is seated" (fun () -> has log (sprintf "start d%d Reserve %d" w1.Device.Id (id + 1L)))
    release, blocker, lead, reserve

/// A backfill (task `id`, `steps` steps, its input there) sent to `w`'s lane; returned once it runs.
let private runningBackfill (log: ExecutionLog) (w: Worker) (id: int64) (prompt: string) (steps: int) (ct: CancellationToken) =
    let backfill = laneDiffuse id prompt steps (ready (box prompt)) ct
    w.EnqueueAhead backfill
    waitUntil 20.0 "the backfill starts" (fun () -> has log (sprintf "start d%d Diffuse %d" w.Device.Id id))
    backfill

let ``a backfill sent to a seated gang member runs before the gang, which starts only after it ends`` =
    testCase "a backfill sent to a seated gang member runs before the gang, which starts only after it ends" <| fun () ->
        let log = ExecutionLog()
        use w0 = startWorker log 0 EDC 1
        use w1 = startWorker log 1 EDC 2
        // the lead's device is busy; the member's is seated at once
        let release, blocker, lead, reserve = seatedGang log w0 w1 1L 11L "group" CancellationToken.None
        // a backfill on the seated member, its input there: it runs inside the gang's gate (1000 steps × 2 ms)
        let backfill = runningBackfill log w1 21L "backfill" 1000 CancellationToken.None
        // the lead's device frees and reaches the lead, which waits for the backfill to leave the gate
        release.SetResult(StageOutput(box "blocker", 64L))
        finished blocker.Completion
        finished lead.Completion
        finished reserve.Completion
        Expect.isTrue backfill.Result.Task.IsCompletedSuccessfully "the backfill ran"
        Expect.isTrue lead.Result.Task.IsCompletedSuccessfully "the gang ran"
        Expect.isTrue (indexOf log "start d0 Diffuse 11" < indexOf log "finish d1 Diffuse 21") "the lead was reached while the backfill ran"
        Expect.isTrue (indexOf log "finish d1 Diffuse 21" < indexOf log "d0 diffuse group threads=2") "the gang starts after the backfill ends"
        waitUntil 10.0 "the reservation is reported over" (fun () -> has log "finish d1 Reserve 12")

let ``a backfill that arrives after its gang started runs after the gang`` =
    testCase "a backfill that arrives after its gang started runs after the gang, and one on a free worker at once" <| fun () ->
        let log = ExecutionLog()
        use w0 = startWorker log 0 EDC 5
        use w1 = startWorker log 1 EDC 5
        // a gang of 400 steps × 5 ms: long enough to send the backfill while it runs
        let lead, reserve = gang w0 w1 11L "group" 400 CancellationToken.None
        waitUntil 20.0 "the gang runs" (fun () -> has log "d0 diffuse group")
        let late = encode 21L "late" CancellationToken.None
        w1.EnqueueAhead late
        finished late.Completion
        Expect.isTrue late.Result.Task.IsCompletedSuccessfully "it ran"
        Expect.isTrue lead.Result.Task.IsCompletedSuccessfully "the gang ran"
        Expect.isTrue (indexOf log "finish d1 Reserve 12" < indexOf log "d1 encode late") "after the gang"
        // on an idle worker the lane wakes it
        let idle = encode 22L "idle" CancellationToken.None
        w0.EnqueueAhead idle
        finished idle.Completion
        Expect.isTrue idle.Result.Task.IsCompletedSuccessfully "an idle worker runs a lane task"
        finished reserve.Completion

let ``lane tasks run before the queued ones, in lane order`` =
    testCase "lane tasks run before the tasks queued on the channel, in lane order" <| fun () ->
        let log = ExecutionLog()
        use w = startWorker log 0 EDC 1
        let release, blocker = blocked w 1L
        let queued = encode 2L "queued" CancellationToken.None
        enqueue w queued
        let a = encode 3L "a" CancellationToken.None
        let b = encode 4L "b" CancellationToken.None
        w.EnqueueAhead a
        w.EnqueueAhead b
        Expect.equal w.QueueLength 3 "the lane counts in the queue length"
        release.SetResult(StageOutput(box "blocker", 64L))
        finished queued.Completion
        let runs = log.Entries |> List.filter (fun e -> e.StartsWith "d0 encode")
        Expect.equal runs ([ "d0 encode a"; "d0 encode b"; "d0 encode queued" ]: string list) "lane first, in order"
        finished blocker.Completion
        waitUntil 10.0 "the queue is empty" (fun () -> w.QueueLength = 0)

let ``a backfill whose input is not there does not hold its gang`` =
    testCase "a backfill whose input is not there does not hold its gang: the gang runs, then the backfill once its input comes" <| fun () ->
        // a lane task is taken only with its input: one waiting for an encode queued on another device would hold the
        // gang, and that device may wait for the gang (a placement change's barrier for decodes the gang feeds)
        let log = ExecutionLog()
        use w0 = startWorker log 0 EDC 1
        use w1 = startWorker log 1 EDC 1
        let release, blocker, lead, reserve = seatedGang log w0 w1 1L 11L "group" CancellationToken.None
        let input1 = pending ()
        let backfill = laneDiffuse 21L "backfill" 2 input1.Task CancellationToken.None
        let behind = encode 22L "behind" CancellationToken.None
        w1.EnqueueAhead backfill
        w1.EnqueueAhead behind
        release.SetResult(StageOutput(box "blocker", 64L))
        finished lead.Completion
        finished reserve.Completion
        Expect.isTrue lead.Result.Task.IsCompletedSuccessfully "the gang ran without the backfill"
        Expect.isFalse (has log "start d1 Diffuse 21") "the backfill waits for its input, outside the gate"
        Expect.isFalse (has log "d1 encode behind") "the lane keeps its order: the task behind it waits too"
        input1.SetResult(StageOutput(box "late", 64L))
        finished backfill.Completion
        finished behind.Completion
        Expect.isTrue backfill.Result.Task.IsCompletedSuccessfully "the backfill ran once its input came"
        Expect.isTrue (indexOf log "d1 diffuse late" < indexOf log "d1 encode behind") "in lane order"
        // a lane head whose request is cancelled while it waits for its input ends at once
        use cts = new CancellationTokenSource()
        let never = laneDiffuse 31L "never" 2 (pending ()).Task cts.Token
        w1.EnqueueAhead never
        cts.Cancel()
        finished never.Completion
        Expect.isTrue never.Result.Task.IsCanceled "cancelled, not left waiting"
        finished blocker.Completion

let ``a gang starts however its embeddings and its last seat race`` =
    testCase "a gang starts however its embeddings and its last seat race the lead's wait" <| fun () ->
        // the lead once read its embeddings as missing, saw them arrive before it chose what to wait on, and then waited
        // for neither, with every seat taken: a job never finished (found under the suite's load)
        let log = ExecutionLog()
        use w0 = startWorker log 0 EDC 0
        use w1 = startWorker log 1 EDC 0
        let random = Random 7
        for i in 1..300 do
            let id = 1000L * int64 i
            let embeddings = pending ()
            let seat = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
            let gate = GangGate(id, [| seat |])
            let diffuse = DiffuseTask(id, RequestId id, 0.001, CancellationToken.None, input "race" 1, embeddings.Task, 2, 2, [| seat |], noProgress, Gate = gate)
            let reserve = ReserveTask(id + 1L, RequestId id, 0.001, CancellationToken.None, seat, diffuse.Result.Task, Gate = gate)
            // one of them is there before the lead is reached, the other arrives a few microseconds after the lead's
            // worker took it (while it decides what to wait for)
            let seatFirst = i % 2 = 0
            if seatFirst then
                enqueue w1 reserve
                seat.Task.Wait(TimeSpan.FromSeconds 10.0) |> ignore
            else embeddings.SetResult(StageOutput(box "race", 64L))
            enqueue w0 diffuse
            let sw = Diagnostics.Stopwatch.StartNew()
            while not (obj.ReferenceEquals(w0.Current, diffuse)) && sw.Elapsed < TimeSpan.FromSeconds 10.0 do
                Thread.SpinWait 1
            let spin = random.Next 400
            Thread.SpinWait spin
            if seatFirst then embeddings.SetResult(StageOutput(box "race", 64L)) else enqueue w1 reserve
            let ended = (diffuse.Completion :> IAsyncResult).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds 10.0)
            Expect.isTrue ended (sprintf "gang %d started and ended (spin %d)" i spin)
            finished reserve.Completion
            Expect.isTrue diffuse.Result.Task.IsCompletedSuccessfully "it ran"

let ``a gang whose member runs a backfill never waits forever`` =
    testCase "cancelling the gang or the backfill, a failing backfill and a stopping worker leave nothing waiting" <| fun () ->
        let log = ExecutionLog()
        use w0 = startWorker log 0 EDC 1
        use w1 = startWorker log 1 EDC 2
        // 1. the gang's request is cancelled while its seated member runs a backfill: the lead ends cancelled, the
        //    member after its backfill
        use cts = new CancellationTokenSource()
        let release, blocker, lead, reserve = seatedGang log w0 w1 1L 11L "group" cts.Token
        let backfill1 = runningBackfill log w1 21L "backfill1" 2000 CancellationToken.None
        release.SetResult(StageOutput(box "blocker", 64L))
        waitUntil 20.0 "the lead is reached" (fun () -> has log "start d0 Diffuse 11")
        cts.Cancel()
        finished lead.Completion
        Expect.isTrue lead.Result.Task.IsCanceled "the waiting lead ends cancelled"
        finished reserve.Completion
        finished backfill1.Completion
        Expect.isTrue backfill1.Result.Task.IsCompletedSuccessfully "the backfill ran"
        waitUntil 10.0 "the reservation is reported over" (fun () -> has log "finish d1 Reserve 12")
        finished blocker.Completion
        // 2. the backfill's own request is cancelled while it runs inside the gate, and a failing backfill behind it:
        //    the gang starts after them
        let release2, blocker2, lead2, reserve2 = seatedGang log w0 w1 31L 41L "group2" CancellationToken.None
        use cancelBackfill = new CancellationTokenSource()
        let backfill2 = runningBackfill log w1 51L "backfill2" 5000 cancelBackfill.Token
        let failing = encode 52L "fail" CancellationToken.None
        w1.EnqueueAhead failing
        release2.SetResult(StageOutput(box "blocker", 64L))
        waitUntil 20.0 "the lead is reached" (fun () -> has log "start d0 Diffuse 41")
        Expect.isFalse lead2.Result.Task.IsCompleted "the lead waits for the backfill"
        cancelBackfill.Cancel()
        finished lead2.Completion
        finished reserve2.Completion
        finished backfill2.Completion
        finished failing.Completion
        Expect.isTrue backfill2.Result.Task.IsCanceled "the cancelled backfill ends cancelled"
        Expect.isTrue failing.Result.Task.IsFaulted "the failing backfill fails"
        Expect.isTrue lead2.Result.Task.IsCompletedSuccessfully "the gang ran after them"
        finished blocker2.Completion
        // 3. the member's worker stops while seated with a backfill running and one waiting: the running one ends, the
        //    waiting one is reported failed, the gang still runs
        let release3, blocker3, lead3, reserve3 = seatedGang log w0 w1 61L 71L "group3" CancellationToken.None
        let running = runningBackfill log w1 81L "running" 1000 CancellationToken.None
        let waiting = encode 82L "waiting" CancellationToken.None
        w1.EnqueueAhead waiting
        w1.BeginStop()
        finished running.Completion
        Expect.isTrue running.Result.Task.IsCompletedSuccessfully "the running backfill ends"
        release3.SetResult(StageOutput(box "blocker", 64L))
        finished lead3.Completion
        finished reserve3.Completion
        Expect.isTrue lead3.Result.Task.IsCompletedSuccessfully "the gang runs"
        finished waiting.Completion
        Expect.isTrue waiting.Result.Task.IsFaulted "the waiting backfill is reported failed (the worker stops)"
        Expect.isFalse (has log "d1 encode waiting") "and never ran"
        finished blocker3.Completion
        // a task sent to a stopped worker's lane is reported failed at once
        waitUntil 20.0 "the stopped worker's loop ends" (fun () -> has log "finish d1 Encode 82")
        let after = encode 91L "after" CancellationToken.None
        w1.EnqueueAhead after
        Expect.isTrue after.Result.Task.IsFaulted "failed at once"

[<Tests>]
let tests =
    testList "integration" [ testList "WorkerTests" [
        ``a worker runs its tasks one at a time in the order they were queued``
        ``a decode whose latents are not ready does not block a ready decode queued behind it``
        ``a failing task fails its request with the error and the worker lives on``
        ``a diffuse group runs only once every device of the group reached it, and holds them until it ends``
        ``a cancelled request's queued tasks are skipped and its running diffuse stops at the next step``
        ``a retype unloads the models the new type no longer holds and runs after earlier work``
        ``a stage the worker's type lacks, loaded for one task, is unloaded before its next task of another stage``
        ``a worker loads its type's models before its first task and on a retype, as a placement moves weights``
        ``a worker on the start-up check's sessions keeps its type's and releases the others``
        ``a suspended or failed diffuse ends its attempt at once, not after the work its decode device runs``
        ``a backfill sent to a seated gang member runs before the gang, which starts only after it ends``
        ``a backfill that arrives after its gang started runs after the gang``
        ``a backfill whose input is not there does not hold its gang``
        ``a gang starts however its embeddings and its last seat race``
        ``lane tasks run before the queued ones, in lane order``
        ``a gang whose member runs a backfill never waits forever``
    ] |> testSequenced ]
