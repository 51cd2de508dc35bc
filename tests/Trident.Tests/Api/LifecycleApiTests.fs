/// The server's lifecycle over HTTP, in process: what every route answers while the runtime starts, and a
/// graceful shutdown (the host stopping) with a job held running and its event stream open. The runtime runs
/// gated fake executors behind a test backend (no model), so each test holds a job exactly where it needs it.
module Trident.Tests.Api.LifecycleApiTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.TestHost
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Hosting
open Expecto
open Trident.Scheduling
open Trident.Api.Hosting
open Trident.Tests.Runtime
open Trident.Tests.Runtime.ServingFixtures
open Trident.Tests.Api.ApiFixture

/// A backend that is ready once `release` completes, serving the tiny pipeline's manifest with gated fake
/// executors and the test profile.
type GatedBackend(gates: Gates, release: Task) =
    interface IServingBackend with
        member _.PrepareAsync(_, _, _, ct) =
            task {
                do! release.WaitAsync ct
                return ServingBackendParts(TinyFixture.pipeline.Value.Manifest, GatedExecutors gates, testProfile, "test profile (gated backend)", TinyFixture.pipeline.Value.Tokenizer)
            }

/// A test server on one device over a gated backend.
type GatedServer(gates: Gates, release: Task, extra: (string * string) list) =
    inherit TridentFactory([ "Trident:Devices:Count", "1" ] @ extra)
    override this.ConfigureWebHost(builder: IWebHostBuilder) =
        base.ConfigureWebHost builder
        builder.ConfigureTestServices(fun services ->
            services.AddSingleton<IServingBackend>(GatedBackend(gates, release)) |> ignore) |> ignore

let private retryAfter (r: HttpResponseMessage) =
    if r.Headers.RetryAfter = null || not r.Headers.RetryAfter.Delta.HasValue then failwithf "%O has no Retry-After" r.RequestMessage.RequestUri
    r.Headers.RetryAfter.Delta.Value

let private expectUnavailable (r: HttpResponseMessage) (what: string) =
    Expect.equal r.StatusCode HttpStatusCode.ServiceUnavailable (what + ": 503")
    Expect.isGreaterThanOrEqual (retryAfter r).TotalSeconds 1.0 (what + ": Retry-After of at least a second")

let private metricState (client: HttpClient) =
    use m = get client "/metrics"
    Expect.equal m.StatusCode HttpStatusCode.OK "/metrics answers"
    let text = m.Content.ReadAsStringAsync().Result
    text.Split('\n') |> Array.tryPick (fun l -> if l.StartsWith "trident_serving_state{" && l.EndsWith "} 1" then Some(l.Split('"').[1]) else None)

let ``while the runtime starts, health, metrics and the API document answer, and readiness and work routes answer 503 with Retry-After`` =
    testCase "while the runtime starts, health, metrics and the API document answer, and readiness and work routes answer 503 with Retry-After" <| fun () ->
        let release = TaskCompletionSource()
        use factory = new GatedServer(Gates(), release.Task, [])
        let client = factory.CreateClient()
        use h = get client "/health"
        Expect.equal h.StatusCode HttpStatusCode.OK "/health while starting"
        Expect.equal (metricState client) (Some "starting") "/metrics says starting"
        use doc = get client "/openapi/v1.json"
        Expect.equal doc.StatusCode HttpStatusCode.OK "the API document while starting"
        use ready = get client "/ready"
        expectUnavailable ready "/ready while starting"
        use create = post client "/v1/generations" """{"prompt":"early"}"""
        expectUnavailable create "POST /v1/generations while starting"
        use images = post client "/v1/images/generations" """{"prompt":"early"}"""
        expectUnavailable images "POST /v1/images/generations while starting"
        for path in [ "/v1/generations/1"; "/v1/generations/1/result"; "/v1/generations/1/events"; "/v1/cluster"; "/v1/plan" ] do
            use r = get client path
            expectUnavailable r ("GET " + path + " while starting")
        release.SetResult()
        waitReady client
        Expect.equal (metricState client) (Some "ready") "/metrics says ready"
        let id = submit client """{"prompt":"on time","steps":2}"""
        Expect.equal (status (pollUntil client 60.0 id isFinal)) "succeeded" "served once ready"

/// Reads server-sent events until the stream ends: (event, data) pairs.
let private readEvents (response: HttpResponseMessage) =
    use reader = new StreamReader(response.Content.ReadAsStream())
    let events = ResizeArray<string * JsonElement>()
    let mutable kind = ""
    let mutable line = reader.ReadLine()
    while not (isNull line) do
        if line.StartsWith "event: " then kind <- line.Substring 7
        elif line.StartsWith "data: " then events.Add((kind, JsonDocument.Parse(line.Substring 6).RootElement))
        line <- reader.ReadLine()
    List.ofSeq events

/// Opens a job's event stream and reads it to its end in the background.
let private openEvents (client: HttpClient) (id: string) =
    let request = new HttpRequestMessage(HttpMethod.Get, sprintf "/v1/generations/%s/events" id)
    let stream = client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Result
    Expect.equal stream.StatusCode HttpStatusCode.OK "the event stream is open"
    Task.Run(fun () -> try readEvents stream finally stream.Dispose())

/// The runtime's job behind a wire id (read before the host stops: afterwards the test server is gone).
let private jobOf (factory: GatedServer) (id: string) =
    let host = factory.Services.GetRequiredService<ServerHost>()
    host.Ready.Server.Find(RequestId(int64 id))

/// A gated server draining for `drainSeconds` on shutdown, with one 3-step job held at `stage` (its stage
/// entered) and the job's event stream open: the gate, the server, a ready client, the job's id, its
/// runtime job and its events.
let private heldJob (stage: Stage) (drainSeconds: int) =
    let gates = Gates()
    let held = gates.Hold("held", stage)
    let factory = new GatedServer(gates, Task.CompletedTask, [ "Trident:Serving:DrainSeconds", string drainSeconds ])
    let client = readyClient factory
    let id = submit client """{"prompt":"held","steps":3}"""
    held.WaitEntered 30.0
    let job = jobOf factory id
    let events = openEvents client id
    held, factory, client, id, job, events

let ``while shutting down, work routes and readiness answer 503 with Retry-After, job routes still answer, and an open event stream ends with the final state`` =
    testCase "while shutting down, work routes and readiness answer 503 with Retry-After, job routes still answer, and an open event stream ends with the final state" <| fun () ->
        // held in decode, which cannot be interrupted: the drain (60 s) cannot end before the test opens it
        let held, server, client, id, job, events = heldJob Stage.Decode 60
        use factory = server
        factory.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication()
        use create = post client "/v1/generations" """{"prompt":"late"}"""
        expectUnavailable create "POST /v1/generations while shutting down"
        Expect.isLessThanOrEqual (retryAfter create).TotalSeconds 60.0 "Retry-After: at most the drain time left"
        use images = post client "/v1/images/generations" """{"prompt":"late"}"""
        expectUnavailable images "POST /v1/images/generations while shutting down"
        use ready = get client "/ready"
        expectUnavailable ready "/ready while shutting down"
        use h = get client "/health"
        Expect.equal h.StatusCode HttpStatusCode.OK "/health while shutting down"
        Expect.equal (metricState client) (Some "draining") "/metrics says draining"
        Expect.equal (status (json (get client ("/v1/generations/" + id)))) "decoding" "the job's status is still served"
        use cancel = client.DeleteAsync("/v1/generations/" + id).Result
        Expect.equal cancel.StatusCode HttpStatusCode.Accepted "a cancel is still accepted while draining"
        held.Open()
        Expect.isTrue (events.Wait(TimeSpan.FromSeconds 60.0)) "the event stream ends"
        let kind, last = List.last events.Result
        Expect.equal (kind, status last) ("state", "cancelled") "the stream's last event is the job's final state"
        Expect.equal job.Status Trident.Runtime.Serving.JobStatus.Cancelled "the accepted cancel holds: cancelled, though its decode completed"
        Expect.isNull job.Result "no result"

let ``while no device is in the cluster, readiness and work routes answer 503 naming the reason, and serve again once one is back`` =
    testCase "while no device is in the cluster, readiness and work routes answer 503 naming the reason, and serve again once one is back" <| fun () ->
        use factory = new GatedServer(Gates(), Task.CompletedTask, [])
        use client = readyClient factory
        let server = factory.Services.GetRequiredService<ServerHost>().Ready.Server
        // the one device's worker leaves (a coordinator whose last worker died)
        server.DevicesLeft([| 0 |], "test: worker gone")
        let deadline = DateTime.UtcNow.AddSeconds 10.0
        let readyStatus () = (get client "/ready").StatusCode
        while readyStatus () = HttpStatusCode.OK && DateTime.UtcNow < deadline do Thread.Sleep 50
        use ready = get client "/ready"
        expectUnavailable ready "/ready with no device in the cluster"
        let detail (r: HttpResponseMessage) = (json r).GetProperty("detail").GetString()
        Expect.stringContains (detail ready) "no device is in the cluster" "/ready says why"
        Expect.stringContains (detail ready) "test: worker gone" "naming why the last device left"
        use create = post client "/v1/generations" """{"prompt":"nowhere","steps":2}"""
        expectUnavailable create "POST /v1/generations with no device in the cluster (refused, not accepted to fail later)"
        Expect.stringContains (detail create) "no device is in the cluster" "the refusal says why"
        use images = post client "/v1/images/generations" """{"prompt":"nowhere"}"""
        expectUnavailable images "POST /v1/images/generations with no device in the cluster"
        use h = get client "/health"
        Expect.equal h.StatusCode HttpStatusCode.OK "/health: the process is live"
        server.DevicesBack [| 0 |]
        let deadline = DateTime.UtcNow.AddSeconds 10.0
        while readyStatus () <> HttpStatusCode.OK && DateTime.UtcNow < deadline do Thread.Sleep 50
        Expect.equal (readyStatus ()) HttpStatusCode.OK "/ready once the device is back"
        let id = submit client """{"prompt":"back","steps":2}"""
        Expect.equal (status (pollUntil client 30.0 id isFinal)) "succeeded" "work is accepted and served again"

let ``on shutdown a job still running at the drain time is cancelled, and its open event stream ends with that final state`` =
    testCase "on shutdown a job still running at the drain time is cancelled, and its open event stream ends with that final state" <| fun () ->
        let held, server, client, id, job, events = heldJob Stage.Diffuse 1
        use factory = server
        // no request after this: the host may be gone as soon as the drain is over
        factory.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication()
        Expect.isTrue (events.Wait(TimeSpan.FromSeconds 60.0)) "the event stream ends"
        let kind, last = List.last events.Result
        Expect.equal (kind, status last) ("state", "cancelled") "the stream's last event is the job's final state"
        Expect.stringStarts (last.GetProperty("error").GetString()) "the server shut down before it finished" "the event says what cancelled it"
        Expect.equal job.Status Trident.Runtime.Serving.JobStatus.Cancelled "the job's final state"
        Expect.isFalse (job.View().Decode.Start.HasValue) "its decode never ran"


/// A `trident serve` process on the tiny pipeline at `url`, its job store in `storage`, its output collected.
let private startTrident (url: string) (storage: string) =
    let start = Diagnostics.ProcessStartInfo("dotnet", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    for a in [ Path.Combine(AppContext.BaseDirectory, "trident.dll"); "serve"; "--urls"; url
               "--Trident:Pipeline"; TinyFixture.directory.Value; "--Trident:ProfileCache"; Path.Combine(TinyFixture.home, "profiles")
               "--Trident:Serving:DrainSeconds"; "1"; "--Trident:Serving:RoundPeriodMs"; "100"; "--Trident:Limits:MaxSteps"; "10000"
               "--Trident:Limits:MaxPredictedSeconds"; "100000"
               "--Trident:Limits:DefaultWidth"; "64"; "--Trident:Limits:DefaultHeight"; "64"; "--Trident:Storage:Directory"; storage ] do
        start.ArgumentList.Add a
    start.Environment.["TRIDENT_HOME"] <- TinyFixture.home
    let proc = Diagnostics.Process.Start start
    let output = Collections.Concurrent.ConcurrentQueue<string>()
    proc.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then output.Enqueue e.Data)
    proc.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then output.Enqueue e.Data)
    proc.BeginOutputReadLine()
    proc.BeginErrorReadLine()
    proc, output

/// Waits (at most 5 minutes: the quick profile runs at first start unless cached) until the process is ready.
let private waitProcessReady (client: HttpClient) (proc: Diagnostics.Process) (output: Collections.Concurrent.ConcurrentQueue<string>) =
    let deadline = DateTime.UtcNow.AddMinutes 5.0
    let mutable ready = false
    while not ready && DateTime.UtcNow < deadline && not proc.HasExited do
        try
            use r = get client "/ready"
            ready <- r.StatusCode = HttpStatusCode.OK
        with _ -> ()
        if not ready then Thread.Sleep 200
    if not ready then failwithf "trident serve did not become ready: %s" (String.Join("\n", output))

let private tempStorage () = Path.Combine(Path.GetTempPath(), "trident-jobs-" + Guid.NewGuid().ToString("N"))

let ``trident serve sent SIGTERM with a job running and its event stream open ends the stream with the final state, logs the job and exits`` =
    testCase "trident serve sent SIGTERM with a job running and its event stream open ends the stream with the final state, logs the job and exits" <| fun () ->
        let url = sprintf "http://127.0.0.1:%d" (Trident.Api.Hosting.Loopback.FreePort())
        let storage = tempStorage ()
        let proc, output = startTrident url storage
        use proc = proc
        try
            use client = new HttpClient(BaseAddress = Uri url)
            waitProcessReady client proc output
            let id = submit client """{"prompt":"sigterm","steps":10000}"""
            let events = openEvents client id
            pollUntil client 120.0 id (fun s -> s.GetProperty("step").GetInt32() >= 1) |> ignore
            use kill = Diagnostics.Process.Start("kill", [ "-TERM"; string proc.Id ])
            kill.WaitForExit()
            Expect.isTrue (events.Wait(TimeSpan.FromSeconds 60.0)) "the event stream ends"
            let kind, last = List.last events.Result
            Expect.equal (kind, status last) ("state", "cancelled") "the stream's last event is the job's final state"
            Expect.isTrue (proc.WaitForExit(TimeSpan.FromSeconds 60.0)) "the process exits"
            proc.WaitForExit()
            let logs = String.Join("\n", output)
            Expect.equal proc.ExitCode 0 ("a clean exit: " + logs)
            Expect.stringContains logs (sprintf "cancelled job %s" id) "the cancelled job is logged by id"
        finally
            if not proc.HasExited then proc.Kill true
            try Directory.Delete(storage, true) with _ -> ()

let ``trident serve killed with SIGKILL while jobs are queued and running, restarted on the same storage, ends every accepted job`` =
    testCase "trident serve killed with SIGKILL while jobs are queued and running, restarted on the same storage, ends every accepted job" <| fun () ->
        let storage = tempStorage ()
        let url = sprintf "http://127.0.0.1:%d" (Trident.Api.Hosting.Loopback.FreePort())
        let first, firstOutput = startTrident url storage
        use first = first
        let mutable second = None
        try
            use client = new HttpClient(BaseAddress = Uri url, Timeout = TimeSpan.FromSeconds 30.0)
            waitProcessReady client first firstOutput
            // small fast requests, submitted back to back: the kill comes right after the last 202
            let ids = [ for i in 1..16 -> submit client (sprintf """{"prompt":"kill %d","steps":%d}""" i (1 + i % 2)) ]
            use kill = Diagnostics.Process.Start("kill", [ "-KILL"; string first.Id ])
            kill.WaitForExit()
            Expect.isTrue (first.WaitForExit(TimeSpan.FromSeconds 30.0)) "the killed process is gone"
            let restarted = DateTimeOffset.UtcNow
            let proc, output = startTrident url storage
            second <- Some proc
            waitProcessReady client proc output
            // a client reconnecting to a re-queued job's event stream gets its current state, then the rest to the end
            let events = openEvents client (List.last ids)
            let deadline = DateTime.UtcNow.AddSeconds 120.0
            for id in ids do
                let mutable last = None
                while (match last with Some s -> not (isFinal s) | None -> true) && DateTime.UtcNow < deadline do
                    use r = get client ("/v1/generations/" + id)
                    Expect.equal r.StatusCode HttpStatusCode.OK (sprintf "generation %s (answered 202 before the kill) is known after the restart" id)
                    last <- Some(json r)
                    if not (isFinal last.Value) then Thread.Sleep 50
                let s = last.Value
                Expect.isTrue (isFinal s) (sprintf "generation %s ends (not stuck): %O" id s)
                match status s with
                | "succeeded" ->
                    use result = get client (sprintf "/v1/generations/%s/result" id)
                    Expect.equal result.StatusCode HttpStatusCode.OK (sprintf "generation %s: its result is served" id)
                | "failed" -> Expect.isFalse (String.IsNullOrEmpty(s.GetProperty("error").GetString())) (sprintf "generation %s failed with a reason" id)
                | _ -> ()
            Expect.isTrue (events.Wait(TimeSpan.FromSeconds 60.0)) "the reconnected event stream ends"
            let firstKind, _ = List.head events.Result
            Expect.equal firstKind "state" "it starts with the current state"
            let lastKind, last = List.last events.Result
            Expect.isTrue (lastKind = "state" && isFinal last) (sprintf "it ends with the final state: %O" last)
            // a job queued again has a new arrival and its deadline runs from it (docs/serving.md, "Restart"): the
            // status's deadline time is after the restart, not the first arrival's deadline
            let recovered =
                output |> Seq.choose (fun l -> let m = Text.RegularExpressions.Regex.Match(l, "Recovered job (\\d+)") in if m.Success then Some m.Groups.[1].Value else None)
                |> Seq.distinct |> List.ofSeq
            for id in recovered do
                use r = get client ("/v1/generations/" + id)
                let s = json r
                let at = s.GetProperty("deadline").GetProperty("at").GetDateTimeOffset()
                Expect.isGreaterThan at restarted (sprintf "generation %s, queued again: its deadline (%O) runs from its recovery (after %O)" id at restarted)
            let requeued = output |> Seq.filter (fun l -> l.Contains "Recovered job") |> Seq.length
            printfn "kill -9: %d accepted, %d recovered as queued or running" ids.Length requeued
            Expect.isGreaterThan requeued 0 "the kill came while jobs were queued or running (the restart re-queued some)"
        finally
            if not first.HasExited then first.Kill true
            second |> Option.iter (fun p -> (if not p.HasExited then p.Kill true); p.Dispose())
            try Directory.Delete(storage, true) with _ -> ()

let ``the host's shutdown timeout is the drain time plus 5 s`` =
    testCase "the host's shutdown timeout is the drain time plus 5 s" <| fun () ->
        for drain, expected in [ None, 35.0; Some "7", 12.0; Some "0", 5.0 ] do
            let args =
                [ yield! [ "--urls"; "http://127.0.0.1:0"; "--Trident:Pipeline"; TinyFixture.directory.Value ]
                  match drain with
                  | Some d -> yield! [ "--Trident:Serving:DrainSeconds"; d ]
                  | None -> () ]
            let app = Program.BuildServer(Array.ofList args)
            try
                let host = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<HostOptions>>().Value
                Expect.equal host.ShutdownTimeout (TimeSpan.FromSeconds expected) (sprintf "DrainSeconds %A" drain)
            finally
                (app :> IAsyncDisposable).DisposeAsync().AsTask().Wait()

let ``a server holds its job store from before its start-up work, so a second one on the same directory is refused at once`` =
    testCase "a server holds its job store from before its start-up work, so a second one on the same directory is refused at once" <| fun () ->
        let dir = Path.Combine(Path.GetTempPath(), "opsfix-store-" + Guid.NewGuid().ToString("N"))
        let release = TaskCompletionSource()
        try
            let factory = new GatedServer(Gates(), release.Task, [ "Trident:Storage:Directory", dir ])
            let client = factory.CreateClient()
            use ready = get client "/ready"
            Expect.equal ready.StatusCode HttpStatusCode.ServiceUnavailable "still starting (the backend's preparation is held)"
            // before: the start-up only checked the lock and took it when the journal opened after the preparation
            Expect.throwsT<Trident.Runtime.Serving.JobStoreInUseException> (fun () -> Trident.Runtime.Serving.JobJournal.CheckFree dir) "in use while starting"
            release.SetResult()
            waitReady client
            Expect.throwsT<Trident.Runtime.Serving.JobStoreInUseException> (fun () -> Trident.Runtime.Serving.JobJournal.CheckFree dir) "in use once ready (the journal kept the lock)"
            (factory :> IDisposable).Dispose()
            // the host waits for its services' StopAsync only up to its shutdown timeout (drain time + 5 s): on a loaded
            // machine (CI, 2 cores, the whole suite) the stop that releases the store can end a moment after Dispose
            // returns (seen once: in use right after Dispose), so the store must be free within 30 s, not at once
            let freed = Diagnostics.Stopwatch.StartNew()
            let mutable free = false
            while not free do
                try
                    Trident.Runtime.Serving.JobJournal.CheckFree dir
                    free <- true
                with :? Trident.Runtime.Serving.JobStoreInUseException when freed.Elapsed < TimeSpan.FromSeconds 30.0 ->
                    Thread.Sleep 100
        finally
            if Directory.Exists dir then Directory.Delete(dir, true)

/// Emulated devices whose executors count their disposals, and a start-up step after the server is built that throws
/// (the backend's Started callback, where a backend adds its instruments to the server's meter).
type private FailingAfterBuildBackend() =
    let inner = EmulatedServingBackend() :> IServingBackend
    let counts = [| 0; 0 |] // executors made, disposed
    member _.Made = Volatile.Read(&counts.[0])
    member _.Disposed = Volatile.Read(&counts.[1])
    interface IServingBackend with
        member _.PrepareAsync(options, layout, log, ct) =
            task {
                let! parts = inner.PrepareAsync(options, layout, log, ct)
                let executors =
                    { new Trident.Runtime.Devices.IStageExecutorFactory with
                        member _.Create device =
                            Interlocked.Increment(&counts.[0]) |> ignore
                            let e = parts.Executors.Create device
                            { new Trident.Runtime.Devices.IStageExecutor with
                                member _.Resident = e.Resident
                                member _.Unload stage = e.Unload stage
                                member _.Encode(input, c) = e.Encode(input, c)
                                member _.Diffuse(input, embeddings, threads, observer, c) = e.Diffuse(input, embeddings, threads, observer, c)
                                member _.Decode(input, latents, c) = e.Decode(input, latents, c)
                                member _.Dispose() =
                                    Interlocked.Increment(&counts.[1]) |> ignore
                                    e.Dispose() } }
                return ServingBackendParts(parts.Manifest, executors, parts.Profile, parts.ProfileOrigin, parts.Tokenizer,
                    Action<Trident.Runtime.Serving.TridentServer>(fun _ -> raise (InvalidOperationException "the backend's instruments could not be added")))
            }

/// Before, a start-up step that threw after the server was built (metrics, the backend's Started) left the server
/// running: its workers and their executors, and its journal holding the job store's lock, so the store stayed locked.
let ``a start-up that fails after the server is built disposes the server and frees the job store`` =
    testCase "a start-up that fails after the server is built disposes the server and frees the job store" <| fun () ->
        let dir = Path.Combine(Path.GetTempPath(), "echo-failed-start-" + Guid.NewGuid().ToString("N"))
        let options = Trident.Api.Options.TridentOptions()
        options.Devices.Kind <- "emulated"
        options.Devices.Count <- 2
        options.Storage.Directory <- dir
        let backend = FailingAfterBuildBackend()
        let host = new ServerHost(backend, Microsoft.Extensions.Options.Options.Create options,
                                  Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, TimeProvider.System)
        try
            host.StartAsync(CancellationToken.None).Wait()
            waitUntil 60.0 "the start fails" (fun () -> not (isNull host.Failure))
            // the start's task is over once StopAsync returns
            host.StopAsync(CancellationToken.None).Wait()
            Expect.stringContains host.Failure "the backend's instruments could not be added" "the failure says why"
            Expect.isNull host.Ready "not ready"
            Expect.equal backend.Made 2 "one executor per device was made"
            Expect.equal backend.Disposed backend.Made "every executor is disposed (the server's workers are)"
            Trident.Runtime.Serving.JobJournal.CheckFree dir
        finally
            host.DisposeAsync().AsTask().Wait()
            if Directory.Exists dir then Directory.Delete(dir, true)

let ``a worker's HTTP port answers other routes with a problem+json 404 saying it is a worker`` =
    testCase "a worker's HTTP port answers other routes with a problem+json 404 saying it is a worker" <| fun () ->
        let http = Microsoft.AspNetCore.Http.DefaultHttpContext()
        http.RequestServices <- ServiceCollection().AddLogging().BuildServiceProvider()
        http.Request.Method <- "GET"
        http.Request.Path <- Microsoft.AspNetCore.Http.PathString "/v1/models"
        let body = new MemoryStream()
        http.Response.Body <- body
        (Trident.Api.Cli.WorkerCommand.WorkerNotFound http).ExecuteAsync(http).Wait()
        Expect.equal http.Response.StatusCode 404 "404"
        Expect.stringContains http.Response.ContentType "application/problem+json" "a problem"
        let text = Text.Encoding.UTF8.GetString(body.ToArray())
        Expect.stringContains text "GET /v1/models is not served here: this is a trident worker" "says it is a worker"
        Expect.stringContains text "the coordinator" "and where the API is"
        // titled as the coordinator's 404s are (before: "Not Found")
        Expect.stringContains text "\"title\":\"Not found\"" "the title"

[<Tests>]
let tests =
    testList "integration" [ testList "LifecycleApiTests" [
        ``while the runtime starts, health, metrics and the API document answer, and readiness and work routes answer 503 with Retry-After``
        ``a server holds its job store from before its start-up work, so a second one on the same directory is refused at once``
        ``while shutting down, work routes and readiness answer 503 with Retry-After, job routes still answer, and an open event stream ends with the final state``
        ``while no device is in the cluster, readiness and work routes answer 503 naming the reason, and serve again once one is back``
        ``on shutdown a job still running at the drain time is cancelled, and its open event stream ends with that final state``
        ``trident serve sent SIGTERM with a job running and its event stream open ends the stream with the final state, logs the job and exits``
        ``trident serve killed with SIGKILL while jobs are queued and running, restarted on the same storage, ends every accepted job``
    ] |> testSequenced ]

[<Tests>]
let unitTests =
    testList "unit" [ testList "LifecycleApiTests" [
        ``the host's shutdown timeout is the drain time plus 5 s``
        ``a worker's HTTP port answers other routes with a problem+json 404 saying it is a worker``
        ``a start-up that fails after the server is built disposes the server and frees the job store``
    ] ]
