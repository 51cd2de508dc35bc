/// The durable job store (JobJournal under TridentServer): a server "crashes" (its journal is abandoned: no
/// write after that point, as after kill -9) and a second server opens the same directory. Gated fake
/// executors hold jobs exactly where each test needs them. The real process killed with SIGKILL is tested in
/// Api/LifecycleApiTests.
module Trident.Tests.Runtime.DurabilityTests

open System
open System.Diagnostics
open System.IO
open Microsoft.Extensions.Logging.Abstractions
open Expecto
open FsCheck
open FsCheck.FSharp
open Trident.Tests.TestSupport
open Trident.Scheduling
open Trident.Scheduling.Placement
open Trident.Runtime.Devices
open Trident.Runtime.Serving
open Trident.Tests.Runtime.ServingFixtures

let private tempDirectory () =
    let d = Path.Combine(Path.GetTempPath(), "trident-jobs-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory d |> ignore
    d

let private startServer (directory: string) (retention: TimeSpan) (executors: IStageExecutorFactory) =
    let mix =
        { Classes = [ { Shape = Shape.image 64 64; Steps = 4; Share = 1.0 } ]
          ArrivalRate = 1.0 }
    let settings = ServingSettings(StorageDirectory = directory, JobRetention = retention, RoundPeriodSeconds = 0.05)
    let setup = ServerSetup(DeviceLayout.Cpu(1, 1, 1, 8.0), testProfile, CostSettings.defaults, executors, settings, mix)
    TridentServer.Start(setup, NullLoggerFactory.Instance, TimeProvider.System)

/// Crashes `server`: nothing it does from now on reaches the disk; then stops its threads.
let private crash (server: TridentServer) =
    server.Journal.Abandon()
    server.DisposeAsync().AsTask().Wait()

let ``after a crash, queued and running jobs run again under their ids and finished ones keep their state and result`` =
    testCase "after a crash, queued and running jobs run again under their ids and finished ones keep their state and result" <| fun () ->
        let dir = tempDirectory ()
        let gates = Gates()
        let held = gates.Hold("running", Stage.Diffuse)
        let first = startServer dir (TimeSpan.FromMinutes 10.0) (GatedExecutors gates)
        let mutable second = None
        let mutable reheld = None
        try
            let done' = first.Submit(input "done" 2, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 done'
            Expect.equal done'.Status JobStatus.Succeeded "the first job succeeded"
            let running = first.Submit(input "running" 3, Nullable(), Nullable()) |> accepted
            held.WaitEntered 30.0
            let cancelled = first.Submit(input "cancelled" 2, Nullable(), Nullable()) |> accepted
            let queued = first.Submit(input "queued" 2, Nullable(), Nullable()) |> accepted
            Expect.isTrue (first.Cancel cancelled) "a queued job's cancel is accepted"
            finishedWithin 30.0 cancelled
            let cancelledStatus = JobStatus.Cancelled
            Expect.equal running.Status JobStatus.Diffusing "held while diffusing"
            let png = done'.Result.File
            crash first
            // the re-run job is held at its diffuse until it has a subscriber: otherwise it may finish before
            // Subscribe, whose stream then holds the final state alone (seen once in a loaded test run)
            let again = Gates()
            let heldAgain = again.Hold("running", Stage.Diffuse)
            reheld <- Some heldAgain
            let server = startServer dir (TimeSpan.FromMinutes 10.0) (GatedExecutors again)
            second <- Some server
            let find (j: Job) =
                match server.Find j.Id with
                | null -> failwithf "job %O was lost" j.Id
                | x -> x
            let d = find done'
            Expect.equal d.Status JobStatus.Succeeded "a succeeded job stays succeeded"
            Expect.equal d.Result.File png "with its result"
            Expect.equal (d.View().Input) (done'.View().Input) "and its parameters"
            Expect.equal (find cancelled).Status cancelledStatus "a cancelled job stays cancelled"
            let r, q = find running, find queued
            // a re-queued job's subscriber gets its current state first, then every event to its end
            let events = r.Subscribe()
            heldAgain.Open()
            finishedWithin 30.0 r
            finishedWithin 30.0 q
            Expect.equal r.Status JobStatus.Succeeded "the running job ran again from the start"
            Expect.equal q.Status JobStatus.Succeeded "the queued job ran"
            Expect.equal (r.View().Input) (running.View().Input) "with its full parameters"
            let seen = ResizeArray<JobEvent>()
            let mutable e = Unchecked.defaultof<JobEvent>
            while events.TryRead(&e) do seen.Add e
            Expect.isTrue (seen.Count >= 2) "events after reconnecting"
            Expect.equal seen.[0].Kind JobEventKind.State "the first event is the current state"
            Expect.equal (Seq.last seen).Status JobStatus.Succeeded "the stream ends with the final state"
            Expect.isTrue events.Completion.IsCompleted "and ends"
            let fresh = server.Submit(input "fresh" 1, Nullable(), Nullable()) |> accepted
            Expect.isGreaterThan fresh.Id.Value queued.Id.Value "new ids continue after the recovered ones"
            finishedWithin 30.0 fresh
        finally
            held.Open()
            reheld |> Option.iter (fun (g: StageGate) -> g.Open())
            second |> Option.iter (fun s -> s.DisposeAsync().AsTask().Wait())
            Directory.Delete(dir, true)

/// A result the job store cannot write (its results folder gone; a full disk alike) ended the job "succeeded" in
/// memory while the write threw: its event stream stopped before the final state, its waiters (the synchronous
/// routes) never woke, and after a restart it ran again though its client had been told it succeeded. Now it ends
/// failed, naming the store, and everything waiting on it ends.
let ``a result the job store cannot write ends the job failed, naming the store, and wakes everything waiting on it`` =
    testCase "a result the job store cannot write ends the job failed, naming the store, and wakes everything waiting on it" <| fun () ->
        let dir = tempDirectory ()
        let gates = Gates()
        let held = gates.Hold("lost", Stage.Diffuse)
        let server = startServer dir (TimeSpan.FromMinutes 10.0) (GatedExecutors gates)
        try
            let job = server.Submit(input "lost" 2, Nullable(), Nullable()) |> accepted
            held.WaitEntered 30.0
            let events = job.Subscribe()
            Directory.Delete(server.Journal.ResultsDirectory, true)
            held.Open()
            Expect.isTrue (job.Final.Wait(TimeSpan.FromSeconds 30.0)) "its waiters wake"
            Expect.equal job.Status JobStatus.Failed "failed, not succeeded without a stored result"
            Expect.stringContains (job.View().Error) "could not be stored in the job store" "the error names the store"
            Expect.isNull job.Result "no result is served that the store does not hold"
            let seen = ResizeArray<JobEvent>()
            let mutable e = Unchecked.defaultof<JobEvent>
            while events.TryRead(&e) do seen.Add e
            Expect.equal (Seq.last seen).Status JobStatus.Failed "its event stream carries the final state"
            Expect.isTrue (events.Completion.Wait(TimeSpan.FromSeconds 5.0)) "and ends"
        finally
            held.Open()
            server.DisposeAsync().AsTask().Wait()
            Directory.Delete(dir, true)

/// Evicting a job whose store lost its results folder threw DirectoryNotFoundException out of the serving loop's
/// round (one failed round per evicted job, an error with a stack trace each).
let ``forgetting a job whose results folder is gone does not throw`` =
    testCase "forgetting a job whose results folder is gone does not throw" <| fun () ->
        let dir = tempDirectory ()
        let journal = JobJournal.Open dir
        try
            Directory.Delete(journal.ResultsDirectory, true)
            let failures = ResizeArray()
            journal.WriteFailed <- Action<int64, Nullable<JobStatus>, exn>(fun id _ e -> failures.Add(id, e))
            journal.Removed 7L
            Expect.isEmpty failures "nothing to delete is no failure"
        finally
            journal.Dispose()
            Directory.Delete(dir, true)

let ``a finished job recovered after its retention ended is forgotten with its result file`` =
    testCase "a finished job recovered after its retention ended is forgotten with its result file" <| fun () ->
        let dir = tempDirectory ()
        let first = startServer dir (TimeSpan.FromSeconds 1.0) (GatedExecutors(Gates()))
        let j = first.Submit(input "short" 1, Nullable(), Nullable()) |> accepted
        finishedWithin 30.0 j
        Expect.equal j.Status JobStatus.Succeeded "succeeded"
        let file = first.Journal.ResultPath(j.Id.Value, Trident.Runtime.Imaging.MediaFormat.Png)
        Expect.isTrue (File.Exists file) "its result is a file beside the database"
        crash first
        Threading.Thread.Sleep 1200
        let second = startServer dir (TimeSpan.FromSeconds 1.0) (GatedExecutors(Gates()))
        try
            Expect.isNull (second.Find j.Id) "retention ended while the server was down: forgotten"
            Expect.isFalse (File.Exists file) "its result file is deleted"
        finally
            second.DisposeAsync().AsTask().Wait()
            Directory.Delete(dir, true)

let ``jobs queued again after a restart are counted as recovered, not accepted`` =
    testCase "jobs queued again after a restart are counted as recovered, not accepted" <| fun () ->
        let dir = tempDirectory ()
        let gates = Gates()
        let held = gates.Hold("running", Stage.Diffuse)
        let first = startServer dir (TimeSpan.FromMinutes 10.0) (GatedExecutors gates)
        let scope = obj ()
        let counts = Collections.Concurrent.ConcurrentDictionary<string, int64>()
        use listener = new Diagnostics.Metrics.MeterListener()
        listener.InstrumentPublished <- fun i l -> if obj.ReferenceEquals(i.Meter.Scope, scope) && i.Name = "trident_requests_total" then l.EnableMeasurementEvents i
        listener.SetMeasurementEventCallback<int64>(fun _ value tags _ ->
            for t in tags do
                if t.Key = "outcome" then counts.AddOrUpdate(string t.Value, value, fun _ v -> v + value) |> ignore)
        listener.Start()
        let mutable second = None
        try
            first.Submit(input "running" 3, Nullable(), Nullable()) |> accepted |> ignore
            held.WaitEntered 30.0
            first.Submit(input "queued" 2, Nullable(), Nullable()) |> accepted |> ignore
            crash first
            let mix = { Classes = [ { Shape = Shape.image 64 64; Steps = 4; Share = 1.0 } ]; ArrivalRate = 1.0 }
            let settings = ServingSettings(StorageDirectory = dir, JobRetention = TimeSpan.FromMinutes 10.0, RoundPeriodSeconds = 0.05)
            let setup = ServerSetup(DeviceLayout.Cpu(1, 1, 1, 8.0), testProfile, CostSettings.defaults, GatedExecutors(Gates()), settings, mix)
            second <- Some(TridentServer.Start(setup, NullLoggerFactory.Instance, TimeProvider.System, scope))
            let get k = match counts.TryGetValue k with | true, v -> v | _ -> 0L
            Expect.equal (get "recovered") 2L "both jobs queued again are counted as recovered"
            Expect.equal (get "accepted") 0L "accepted counts this process's acceptances only"
        finally
            second |> Option.iter (fun s -> s.DisposeAsync().AsTask().Wait())
            Directory.Delete(dir, true)

let ``a second server on the same job store is refused while the first has it open`` =
    testCase "a second journal on the same directory is refused naming the store while the first is open, and opens once it is closed" <| fun () ->
        let dir = tempDirectory ()
        try
            let first = JobJournal.Open dir
            let refused = expectThrows<JobStoreInUseException> "a second journal on the same directory" (fun () -> JobJournal.Open dir |> ignore)
            Expect.stringContains refused.Message dir "names the directory"
            Expect.stringContains refused.Message "Trident:Storage:Directory" "and the key to change"
            expectThrows<JobStoreInUseException> "the start-up check too" (fun () -> JobJournal.CheckFree dir) |> ignore
            first.Dispose()
            JobJournal.CheckFree dir
            use again = JobJournal.Open dir
            Expect.equal again.Directory (Path.GetFullPath dir) "opens once the first is closed"
        finally
            Directory.Delete(dir, true)

/// A result file half written when the process ended (kill -9 between its write and its rename) is removed when the
/// store is opened again; before, nothing ever deleted it. Complete result files stay.
let ``a result file left half written by a killed server is removed when the store opens`` =
    testCase "a result file left half written by a killed server is removed when the store opens" <| fun () ->
        let dir = tempDirectory ()
        try
            (JobJournal.Open dir).Dispose()
            let results = Path.Combine(dir, "results")
            let partial = Path.Combine(results, "7.png" + JobJournal.PartialSuffix)
            let complete = Path.Combine(results, "8.png")
            File.WriteAllBytes(partial, [| 1uy; 2uy |])
            File.WriteAllBytes(complete, [| 3uy |])
            use again = JobJournal.Open dir
            Expect.isFalse (File.Exists partial) "the partial file is gone"
            Expect.isTrue (File.Exists complete) "a complete result stays"
        finally
            Directory.Delete(dir, true)

let ``a lock file that cannot be opened is its own error, not another server's lock`` =
    testCase "a lock file that cannot be opened (a socket at its path) is reported as it is, not as a store in use by another server" <| fun () ->
        let dir = tempDirectory ()
        try
            // opening a socket fails with ENXIO: a plain IOException, as a read-only file system's EROFS is
            use socket = new Net.Sockets.Socket(Net.Sockets.AddressFamily.Unix, Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Unspecified)
            socket.Bind(Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(dir, "lock")))
            let error =
                try
                    JobJournal.CheckFree dir
                    None
                with e -> Some e
            match error with
            | Some(:? JobStoreInUseException as e) -> failtestf "a socket at the lock's path was called another server's lock: %s" e.Message
            | Some(:? IOException) -> ()
            | other -> failtestf "expected the IOException of opening the lock file, got %A" other
        finally
            Directory.Delete(dir, true)

let ``a start that fails once the journal holds the store's lock releases it`` =
    testCase "a journal that cannot open, or a server whose recovery fails, releases the store's lock: the next start is not refused" <| fun () ->
        let dir = tempDirectory ()
        let free what =
            try JobJournal.CheckFree dir
            with :? JobStoreInUseException -> failtestf "%s: the store is still locked by the start that failed (a second start would be refused)" what
        try
            // a jobs.db that is no database: the journal fails while opening, after it took over the lock taken at start-up
            File.WriteAllText(Path.Combine(dir, "jobs.db"), String.replicate 64 "not a database, ")
            let held = JobJournal.Reserve dir
            expectThrowsAny<Microsoft.Data.Sqlite.SqliteException> "a jobs.db that is no database" (fun () -> JobJournal.Open(dir, held) |> ignore) |> ignore
            free "the journal that did not open"
            File.Delete(Path.Combine(dir, "jobs.db"))
            // a row the server cannot read back: its start fails in the recovery, with the journal open
            (JobJournal.Open dir).Dispose()
            do
                use db = new Microsoft.Data.Sqlite.SqliteConnection(sprintf "Data Source=%s;Pooling=False" (Path.Combine(dir, "jobs.db")))
                db.Open()
                use insert = db.CreateCommand()
                insert.CommandText <- "INSERT INTO jobs (id, input, created_at, deadline_s, deadline_given, status) VALUES (1, 'not json', 0, 10, 0, 0)"
                insert.ExecuteNonQuery() |> ignore
            expectThrowsAny<exn> "a row it cannot read back" (fun () -> startServer dir (TimeSpan.FromMinutes 10.0) (GatedExecutors(Gates())) |> ignore) |> ignore
            free "the server whose recovery failed"
        finally
            Directory.Delete(dir, true)

let ``a journal write per transition is cheap`` =
    testCase "a journal write per transition is cheap" <| fun () ->
        let dir = tempDirectory ()
        let journal = JobJournal.Open dir
        try
            let n = 500
            let jobs =
                [| for i in 1..n -> testJob DateTimeOffset.UtcNow (int64 i) 2 |]
            let watch = Stopwatch.StartNew()
            for j in jobs do journal.Accepted(j, Nullable())
            for status in [ JobStatus.Encoding; JobStatus.Diffusing; JobStatus.Decoding ] do
                for j in jobs do journal.Moved(j, status, null, null, Nullable())
            watch.Stop()
            let perWrite = watch.Elapsed.TotalMilliseconds / float (4 * n)
            printfn "job journal: %.3f ms per transition (%d single-row commits)" perWrite (4 * n)
            Expect.equal (journal.Load().Count) n "every job recorded"
            Expect.isLessThan perWrite 5.0 "a transition costs well under a stage's time"
        finally
            journal.Dispose()
            Directory.Delete(dir, true)

// ---------------------------------------------------------------------------------------------------------
// The job state machine, model-based
// ---------------------------------------------------------------------------------------------------------

/// One step of a random interleaving; `Pick` chooses among the jobs submitted so far.
type JobOp =
    | Submit
    | NextStage of Pick: int
    | Succeed of Pick: int
    | Fail of Pick: int
    | Cancel of Pick: int
    | StoppedAfterCancel of Pick: int
    | Expire
    | Restart

/// What the model expects of one job.
type private Expected = { mutable Status: JobStatus; mutable CancelRequested: bool; mutable Gone: bool }

/// A clock the test moves by hand: wall clock and timestamps (so the server clock) move together.
type private HandTime(start: DateTimeOffset) =
    inherit TimeProvider()
    let mutable now = start
    member _.Advance(by: TimeSpan) = now <- now + by
    override _.GetUtcNow() = now
    override _.GetTimestamp() = now.UtcTicks
    override _.TimestampFrequency = TimeSpan.TicksPerSecond

let private stageOf (s: JobStatus) =
    match s with
    | JobStatus.Queued -> Some TaskKind.Encode
    | JobStatus.Encoding -> Some TaskKind.Diffuse
    | JobStatus.Diffusing -> Some TaskKind.Decode
    | _ -> None

/// The documented machine: forward only along queued → encoding → diffusing → decoding → a final state
/// (any of the three from any active state), nothing after a final state; a restart may put an active job
/// back to queued.
let private allowed (from: JobStatus) (to': JobStatus) (restarted: bool) =
    from = to'
    || (not (Job.IsTerminalStatus from)
        && (Job.IsTerminalStatus to' || int to' > int from || (restarted && to' = JobStatus.Queued)))

let ``the job store follows the documented state machine across submits, cancels, stages, failures, expiry and restarts`` =
    testProp 60 "the job store follows the documented state machine across submits, cancels, stages, failures, expiry and restarts" <| fun () ->
        let opGen =
            Gen.frequency
                [ 4, Gen.constant Submit
                  5, Gen.map NextStage (Gen.choose (0, 50))
                  2, Gen.map Succeed (Gen.choose (0, 50))
                  1, Gen.map Fail (Gen.choose (0, 50))
                  2, Gen.map Cancel (Gen.choose (0, 50))
                  1, Gen.map StoppedAfterCancel (Gen.choose (0, 50))
                  1, Gen.constant Expire
                  1, Gen.constant Restart ]
        let prop (ops: JobOp list) =
            let dir = tempDirectory ()
            let time = HandTime(DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero))
            let retention = TimeSpan.FromSeconds 60.0
            let model = ModelName "test"
            let mutable journal = JobJournal.Open dir
            let newStore (j: JobJournal) =
                let s = JobStore(1000, retention, time)
                s.Evicted <- fun job -> j.Removed job.Id.Value
                s
            let mutable store = newStore journal
            let mutable clock = ServerClock(time)
            let expected = Collections.Generic.Dictionary<int64, Expected>()
            let mutable nextId = 0L
            let failures = ResizeArray<string>()
            let check (what: string) (ok: bool) = if not ok then failures.Add what
            let png = [| 1uy; 2uy; 3uy |]
            try
                for op in ops do
                    let ids = expected |> Seq.filter (fun kv -> not kv.Value.Gone) |> Seq.map _.Key |> Array.ofSeq
                    let pick (i: int) = if ids.Length = 0 then None else Some(ids.[i % ids.Length])
                    let before = expected |> Seq.map (fun kv -> kv.Key, kv.Value.Status) |> Map.ofSeq
                    let now = clock.Now
                    let jobOf id = store.Find(RequestId id)
                    let mutable restarted = false
                    match op with
                    | Submit ->
                        nextId <- nextId + 1L
                        let r =
                            { Id = RequestId nextId
                              Model = model
                              Shape = Shape.image 64 64
                              Steps = 2
                              Arrival = now * 1.0<s>
                              Deadline = (now + 10.0) * 1.0<s>
                              Priority = None }
                        let job = Job(r, input (sprintf "job %d" nextId) 2, clock.UtcNow, false)
                        check "a submit is accepted" (store.TryAdd job)
                        journal.Accepted(job, Nullable())
                        job.Journal <- journal
                        expected.[nextId] <- { Status = JobStatus.Queued; CancelRequested = false; Gone = false }
                    | NextStage i ->
                        pick i |> Option.iter (fun id ->
                            let e = expected.[id]
                            match stageOf e.Status with
                            | Some kind ->
                                (jobOf id).StageStarted(kind, now)
                                if not e.CancelRequested then
                                    e.Status <- (match kind with TaskKind.Encode -> JobStatus.Encoding | TaskKind.Diffuse -> JobStatus.Diffusing | _ -> JobStatus.Decoding)
                            | None -> ())
                    | Succeed i ->
                        pick i |> Option.iter (fun id ->
                            let e = expected.[id]
                            let ok = (jobOf id).Succeed(JobResult(png, Trident.Runtime.Imaging.MediaFormat.Png, 1, 64, 64), now)
                            if not (Job.IsTerminalStatus e.Status) then
                                e.Status <- (if e.CancelRequested then JobStatus.Cancelled else JobStatus.Succeeded)
                            check "Succeed says whether the job succeeded" (ok = (e.Status = JobStatus.Succeeded && before.[id] <> JobStatus.Succeeded)))
                    | Fail i ->
                        pick i |> Option.iter (fun id ->
                            let e = expected.[id]
                            (jobOf id).Fail("stage failed", now)
                            if not (Job.IsTerminalStatus e.Status) then
                                e.Status <- (if e.CancelRequested then JobStatus.Cancelled else JobStatus.Failed))
                    | Cancel i ->
                        pick i |> Option.iter (fun id ->
                            let e = expected.[id]
                            let accepted = (jobOf id).RequestCancel now
                            check "a cancel is accepted exactly while the job is not over" (accepted = not (Job.IsTerminalStatus e.Status))
                            if accepted then
                                e.CancelRequested <- true
                                if e.Status = JobStatus.Queued then e.Status <- JobStatus.Cancelled)
                    | StoppedAfterCancel i ->
                        pick i |> Option.iter (fun id ->
                            let e = expected.[id]
                            if e.CancelRequested then
                                (jobOf id).Cancelled now
                                if not (Job.IsTerminalStatus e.Status) then e.Status <- JobStatus.Cancelled)
                    | Expire ->
                        time.Advance(retention + TimeSpan.FromSeconds 1.0)
                        store.EvictExpired() |> ignore
                        for kv in expected do
                            if Job.IsTerminalStatus kv.Value.Status then kv.Value.Gone <- true
                    | Restart ->
                        restarted <- true
                        journal.Abandon()
                        journal.Dispose()
                        journal <- JobJournal.Open dir
                        store <- newStore journal
                        clock <- ServerClock(time)
                        for job, requeue, _ in journal.Recover(model, clock.Now, clock.UtcNow) do
                            store.Restore job
                            ignore requeue
                        store.EvictExpired() |> ignore
                        for kv in expected do
                            if not kv.Value.Gone && not (Job.IsTerminalStatus kv.Value.Status) then
                                // an accepted cancel holds across the restart; the rest run again from the start
                                kv.Value.Status <- (if kv.Value.CancelRequested then JobStatus.Cancelled else JobStatus.Queued)
                                kv.Value.CancelRequested <- false
                    // the store, the journal and the model agree after every step
                    let rows = journal.Load() |> Seq.map (fun r -> r.Id, r) |> Map.ofSeq
                    for kv in expected do
                        let id, e = kv.Key, kv.Value
                        match store.Find(RequestId id) with
                        | null ->
                            check (sprintf "job %d is held unless evicted after its retention (%A)" id op) e.Gone
                            check (sprintf "an evicted job %d leaves no row" id) (not (rows.ContainsKey id))
                            check (sprintf "an evicted job %d leaves no result file" id) (isNull (journal.FindResult id))
                        | job ->
                            check (sprintf "job %d is not evicted before its retention" id) (not e.Gone)
                            check (sprintf "job %d: %A, expected %A after %A" id job.Status e.Status op) (job.Status = e.Status)
                            // a cancelled job says what cancelled it, across restarts too (a journalled cancel included)
                            if job.Status = JobStatus.Cancelled then
                                check (sprintf "cancelled job %d has a reason (%A)" id op) (not (String.IsNullOrEmpty(job.View().Error)))
                            match before.TryFind id with
                            | Some b -> check (sprintf "job %d moved %A → %A (%A)" id b job.Status op) (allowed b job.Status restarted)
                            | None -> ()
                            check (sprintf "job %d: the journal says %A" id job.Status) (rows.ContainsKey id && rows.[id].Status = job.Status)
                            let hasResult = not (isNull job.Result)
                            check (sprintf "job %d (%A): a result exactly when succeeded" id job.Status) (hasResult = (job.Status = JobStatus.Succeeded))
                            check (sprintf "job %d (%A): a result file exactly when succeeded" id job.Status)
                                (not (isNull (journal.FindResult id)) = (job.Status = JobStatus.Succeeded))
                    let held = expected.Values |> Seq.filter (fun e -> not e.Gone) |> Seq.length
                    let gone = expected.Values |> Seq.filter _.Gone |> Seq.length
                    check "counters: submitted = held + evicted" (int nextId = held + gone)
                    check "counters: the store holds the held jobs" (store.Count = held)
                    check "counters: the journal has one row per held job" (rows.Count = held)
                    check "counters: active jobs are the non-final ones" (store.Active().Count = (expected.Values |> Seq.filter (fun e -> not e.Gone && not (Job.IsTerminalStatus e.Status)) |> Seq.length))
            finally
                journal.Dispose()
                Directory.Delete(dir, true)
            (failures.Count = 0) |> Prop.label (String.Join("; ", failures |> Seq.distinct |> Seq.truncate 5))
        Prop.forAll (Arb.fromGen (Gen.listOf opGen)) prop

[<Tests>]
let tests =
    testList "integration" [ testList "DurabilityTests" [
        ``after a crash, queued and running jobs run again under their ids and finished ones keep their state and result``
        ``a finished job recovered after its retention ended is forgotten with its result file``
        ``a result the job store cannot write ends the job failed, naming the store, and wakes everything waiting on it``
        ``forgetting a job whose results folder is gone does not throw``
        ``a journal write per transition is cheap``
        ``a second server on the same job store is refused while the first has it open``
        ``a lock file that cannot be opened is its own error, not another server's lock``
        ``a result file left half written by a killed server is removed when the store opens``
        ``a start that fails once the journal holds the store's lock releases it``
        ``jobs queued again after a restart are counted as recovered, not accepted``
        ``the job store follows the documented state machine across submits, cancels, stages, failures, expiry and restarts``
    ] |> testSequenced ]
