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

let private accepted (outcome: SubmitOutcome) =
    match outcome with
    | :? SubmitOutcome.Accepted as a -> a.Job
    | other -> failwithf "expected the job to be accepted, got %A" other

let private finishedWithin seconds (j: Job) =
    waitUntil seconds (sprintf "job %O is over" j.Id) (fun () -> Job.IsTerminalStatus j.Status)

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
            let png = done'.Result.Png
            crash first
            let server = startServer dir (TimeSpan.FromMinutes 10.0) (GatedExecutors(Gates()))
            second <- Some server
            let find (j: Job) =
                match server.Find j.Id with
                | null -> failwithf "job %O was lost" j.Id
                | x -> x
            let d = find done'
            Expect.equal d.Status JobStatus.Succeeded "a succeeded job stays succeeded"
            Expect.equal d.Result.Png png "with its result"
            Expect.equal (d.View().Input) (done'.View().Input) "and its parameters"
            Expect.equal (find cancelled).Status cancelledStatus "a cancelled job stays cancelled"
            let r, q = find running, find queued
            // a re-queued job's subscriber gets its current state first, then every event to its end
            let events = r.Subscribe()
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
            second |> Option.iter (fun s -> s.DisposeAsync().AsTask().Wait())
            Directory.Delete(dir, true)

let ``a finished job recovered after its retention ended is forgotten with its result file`` =
    testCase "a finished job recovered after its retention ended is forgotten with its result file" <| fun () ->
        let dir = tempDirectory ()
        let first = startServer dir (TimeSpan.FromSeconds 1.0) (GatedExecutors(Gates()))
        let j = first.Submit(input "short" 1, Nullable(), Nullable()) |> accepted
        finishedWithin 30.0 j
        Expect.equal j.Status JobStatus.Succeeded "succeeded"
        let file = first.Journal.ResultPath j.Id.Value
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

let ``a journal write per transition is cheap`` =
    testCase "a journal write per transition is cheap" <| fun () ->
        let dir = tempDirectory ()
        let journal = JobJournal.Open dir
        try
            let n = 500
            let jobs =
                [| for i in 1..n ->
                     let r =
                         { Id = RequestId(int64 i)
                           Model = ModelName "test"
                           Shape = Shape.image 64 64
                           Steps = 2
                           Arrival = 0.0<s>
                           Deadline = 10.0<s>
                           Priority = None }
                     Job(r, input "p" 2, DateTimeOffset.UtcNow, false) |]
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

[<Tests>]
let tests =
    testList "integration" [ testList "DurabilityTests" [
        ``after a crash, queued and running jobs run again under their ids and finished ones keep their state and result``
        ``a finished job recovered after its retention ended is forgotten with its result file``
        ``a journal write per transition is cheap``
    ] |> testSequenced ]
