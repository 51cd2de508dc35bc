/// A Trident cluster of separate processes on loopback (LocalCluster, as `trident bench cluster` starts it): a
/// coordinator and two workers of two emulated flux devices each, with Redis membership (redis-server started
/// by the set-up). Generations succeed with the image a single process makes for the same prompt and seed; a
/// worker killed with SIGKILL while work runs takes its devices out of the cluster and every accepted request
/// still ends succeeded (the work lost with it is re-queued and runs on the other worker); the worker restarted
/// on its address brings its devices back and takes new work. A worker started after the coordinator joins:
/// its devices appear in GET /v1/cluster and take work. With preemption on, a request running on a worker is
/// suspended there for an urgent one (the stop goes to the worker's device grain, the checkpoint stays on the
/// worker) and resumes with the single-process image. Both workers killed at once (localhost membership, the
/// coordinator the only silo left to vote): their devices are out within 40 s, /ready says 503, and the
/// coordinator logs one warning per worker and no error (Orleans' and Polly's for calls to a dead worker's grains).
module Trident.Tests.Api.ClusterProcessTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Threading
open Expecto
open Trident.Scheduling
open Trident.Runtime.Devices
open Trident.Runtime.Imaging
open Trident.Api.Cli
open Trident.Tests.Api.ApiFixture

let private scale = 0.02

/// The placeholder a single process (one emulated device, no cluster) makes for this prompt and seed.
let private singleProcessOf (prompt: string) (side: int) (seed: uint64) (steps: int) =
    let cost = CostModel.create CostSettings.defaults (EmulatedProfile.Scaled(ReferenceProfiles.flux, scale))
    use e = new EmulatedStageExecutor(DeviceSpec(0, 0, DeviceKind.Emulated, 1, 0, 48.0), cost, 25e9, scale)
    let i = GenerationInput(prompt, null, side, side, 1, steps, seed, 3.5)
    let frames = e.Decode(i, e.Diffuse(i, e.Encode(i, CancellationToken.None), 1, { new IStepObserver with member _.StepCompleted(_, _) = () }, CancellationToken.None), CancellationToken.None)
    frames[0].Pixels

let private singleProcess (prompt: string) (side: int) (seed: uint64) = singleProcessOf prompt side seed 28

let private body (prompt: string) side seed steps =
    sprintf """{"prompt":"%s","width":%d,"height":%d,"seed":%d,"steps":%d,"guidance":3.5}""" prompt side side seed steps

let private nodeOf (final: Text.Json.JsonElement) =
    (final.GetProperty("route").GetProperty("diffuse_devices")[0]).GetInt32() / 2

/// The devices of GET /v1/cluster as (id, node, online).
let private devices (client: HttpClient) =
    use r = get client "/v1/cluster"
    [ for d in (json r).GetProperty("devices").EnumerateArray() -> d.GetProperty("id").GetInt32(), d.GetProperty("node").GetInt32(), d.GetProperty("online").GetBoolean() ]

/// The sum of a counter's series in GET /metrics.
let private counter (client: HttpClient) (name: string) =
    use r = get client "/metrics"
    r.Content.ReadAsStringAsync().Result.Split('\n')
    |> Array.filter (fun l -> l.StartsWith(name + "{") || l.StartsWith(name + " "))
    |> Array.sumBy (fun l -> float (l.Substring(l.LastIndexOf(' ') + 1)))

let ``a cluster of processes serves generations, survives a killed worker, and takes the restarted worker back`` =
    testCase "a cluster of processes serves generations, survives a killed worker, and takes the restarted worker back" <| fun () ->
        let log = new StringWriter()
        let cluster =
            LocalCluster.StartAsync(LocalClusterSpec(2, 2, "flux", scale, "redis", [| "--Trident:Serving:RoundPeriodMs"; "100" |]), log, TimeSpan.FromMinutes 4.0, CancellationToken.None).Result
        try
            use client = new HttpClient(BaseAddress = Uri cluster.Url, Timeout = TimeSpan.FromSeconds 30.0)
            use clusterView = get client "/v1/cluster"
            Expect.equal ((json clusterView).GetProperty("nodes").GetInt32()) 2 "two workers, two nodes"
            // 1. generations on both workers, each the single-process image
            let ids = [ for i in 1..8 -> i, submit client (body (sprintf "request %d" i) 256 (uint64 i) 28) ]
            let nodes = Collections.Generic.HashSet<int>()
            for i, id in ids do
                let final = pollUntil client 120.0 id isFinal
                Expect.equal (status final) "succeeded" (sprintf "generation %s: %O" id final)
                nodes.Add(nodeOf final) |> ignore
                use png = get client (sprintf "/v1/generations/%s/result" id)
                let image = Trident.Tests.Runtime.MediaChecks.decodeImage (png.Content.ReadAsByteArrayAsync().Result)
                Expect.sequenceEqual image.Rgb (singleProcess (sprintf "request %d" i) 256 (uint64 i)) "the single-process image for the same prompt and seed"
            Expect.equal nodes.Count 2 "work ran on both workers"
            // 2. kill -9 a worker while work runs: its devices leave the cluster, and every accepted request ends
            //    succeeded — the work lost with the worker is re-queued and runs on the other one
            let long = [ for i in 1..12 -> submit client (body (sprintf "long %d" i) 1024 (uint64 (100 + i)) 100) ]
            let deadline = DateTime.UtcNow.AddSeconds 60.0
            let running () = long |> List.filter (fun id -> status (json (get client ("/v1/generations/" + id))) = "diffusing") |> List.length
            while running () < 2 && DateTime.UtcNow < deadline do Thread.Sleep 100
            cluster.KillWorker 1
            let finals = long |> List.map (fun id -> pollUntil client 240.0 id isFinal)
            for f in finals do
                Expect.equal (status f) "succeeded" (sprintf "every accepted request ends succeeded (re-queued when its work was lost): %O" f)
            Expect.isGreaterThan (counter client "trident_requeued_total") 0.0 "work lost with the killed worker was re-queued"
            let killed = cluster.NodeOf 1
            for _, node, online in devices client do
                Expect.equal online (node <> killed) "the killed worker's devices are out of the cluster, the other's in"
            // 3. the worker restarted on its address takes new work: bursts of requests that need every device
            cluster.StartWorker 1
            let until = DateTime.UtcNow.AddSeconds 180.0
            let mutable onRestarted = false
            let mutable n = 0
            while not onRestarted && DateTime.UtcNow < until do
                let burst = [ for _ in 1..8 -> n <- n + 1; submit client (body (sprintf "after %d" n) 1024 (uint64 (1000 + n)) 50) ]
                for id in burst do
                    let final = pollUntil client 120.0 id isFinal
                    if status final = "succeeded" && nodeOf final = cluster.NodeOf 1 then onRestarted <- true
                if not onRestarted then Thread.Sleep 1000
            Expect.isTrue onRestarted "a request ran on the restarted worker"
            Expect.all (devices client) (fun (_, _, online) -> online) "the restarted worker's devices are back in the cluster"
        finally
            cluster.DisposeAsync().AsTask().Wait()

let ``a worker that starts after the coordinator joins the running cluster and takes work`` =
    testCase "a worker that starts after the coordinator joins the running cluster and takes work" <| fun () ->
        let log = new StringWriter()
        // the coordinator waits for the first worker's two devices only; the second worker starts later
        let cluster =
            LocalCluster.StartAsync(LocalClusterSpec(2, 2, "flux", scale, "redis", [| "--Trident:Serving:RoundPeriodMs"; "100" |], 1), log, TimeSpan.FromMinutes 4.0, CancellationToken.None).Result
        try
            use client = new HttpClient(BaseAddress = Uri cluster.Url, Timeout = TimeSpan.FromSeconds 30.0)
            Expect.equal (devices client |> List.length) 2 "the first worker's devices"
            let early = [ for i in 1..4 -> submit client (body (sprintf "early %d" i) 512 (uint64 i) 28) ]
            cluster.StartWorker 1
            let until = DateTime.UtcNow.AddSeconds 120.0
            while (devices client |> List.length) < 4 && DateTime.UtcNow < until do Thread.Sleep 250
            let joined = devices client
            Expect.equal (joined |> List.length) 4 "the joined worker's devices are in GET /v1/cluster"
            Expect.equal (joined |> List.filter (fun (id, _, _) -> id >= 2) |> List.map (fun (_, node, online) -> node, online)) [ 1, true; 1, true ] "as node 1, online"
            for id in early do Expect.equal (status (pollUntil client 120.0 id isFinal)) "succeeded" "requests accepted before the join succeed"
            // bursts of requests that need every device, until one runs on a joined device
            let until = DateTime.UtcNow.AddSeconds 180.0
            let mutable onJoined = false
            let mutable n = 0
            while not onJoined && DateTime.UtcNow < until do
                let burst = [ for _ in 1..8 -> n <- n + 1; submit client (body (sprintf "after join %d" n) 1024 (uint64 (1000 + n)) 50) ]
                for id in burst do
                    let final = pollUntil client 120.0 id isFinal
                    Expect.equal (status final) "succeeded" "requests after the join succeed"
                    let route = final.GetProperty("route")
                    let used = [ for p in [ "encode_device"; "decode_device" ] do if route.GetProperty(p).ValueKind = System.Text.Json.JsonValueKind.Number then yield route.GetProperty(p).GetInt32() ] @ [ for d in route.GetProperty("diffuse_devices").EnumerateArray() -> d.GetInt32() ]
                    if used |> List.exists (fun d -> d >= 2) then onJoined <- true
            Expect.isTrue onJoined "work reached the joined worker's devices"
        finally
            cluster.DisposeAsync().AsTask().Wait()

let ``a request running on a worker is suspended for an urgent one and resumes there with its image`` =
    testCase "a request running on a worker is suspended for an urgent one and resumes there with its image" <| fun () ->
        let log = new StringWriter()
        let cluster =
            LocalCluster.StartAsync(
                LocalClusterSpec(1, 2, "flux", scale, "redis", [| "--Trident:Serving:RoundPeriodMs"; "100"; "--Trident:Serving:Preemption"; "true"; "--Trident:Limits:MaxSteps"; "400" |]),
                log, TimeSpan.FromMinutes 4.0, CancellationToken.None).Result
        try
            use client = new HttpClient(BaseAddress = Uri cluster.Url, Timeout = TimeSpan.FromSeconds 30.0)
            // both of the worker's devices busy with long requests (an hour's deadline: they can wait)
            let long seed =
                sprintf """{"prompt":"long %d","width":1024,"height":1024,"seed":%d,"steps":400,"guidance":3.5,"deadline_ms":3600000}""" seed seed
            let longs = [ 201; 202 ] |> List.map (fun seed -> seed, submit client (long seed))
            pollUntil client 120.0 (snd longs.Head) (fun e -> status e = "diffusing" && e.GetProperty("step").GetInt32() > 0) |> ignore
            // an urgent request (1 ms deadline: late whatever happens, so the sooner the better)
            let u = submit client """{"prompt":"urgent","width":256,"height":256,"seed":7,"steps":28,"guidance":3.5,"deadline_ms":1}"""
            let finalU = pollUntil client 120.0 u isFinal
            Expect.equal (status finalU) "succeeded" "the urgent request succeeded"
            for seed, id in longs do
                let final = pollUntil client 240.0 id isFinal
                Expect.equal (status final) "succeeded" (sprintf "long request %s succeeded: %O" id final)
                use png = get client (sprintf "/v1/generations/%s/result" id)
                let image = Trident.Tests.Runtime.MediaChecks.decodeImage (png.Content.ReadAsByteArrayAsync().Result)
                Expect.sequenceEqual image.Rgb (singleProcessOf (sprintf "long %d" seed) 1024 (uint64 seed) 400) "the single-process image, suspended or not"
            Expect.isGreaterThanOrEqual (counter client "trident_suspensions_total") 1.0 "a request was suspended on the worker"
            Expect.isGreaterThanOrEqual (counter client "trident_resumptions_total") 1.0 "and resumed"
            use plan = get client "/v1/plan"
            let preemptions = (json plan).GetProperty("recent_preemptions")
            let victims = [ for p in preemptions.EnumerateArray() -> string (p.GetProperty("victim").GetInt64()), string (p.GetProperty("urgent").GetInt64()) ]
            Expect.exists victims (fun (v, urgent) -> urgent = u && List.contains v (List.map snd longs)) (sprintf "a long request suspended for the urgent one: %A" victims)
        finally
            cluster.DisposeAsync().AsTask().Wait()

/// The coordinator's log (LogLevel Warning: warnings and errors) as lines.
let private coordinatorLog (cluster: LocalCluster) =
    Directory.GetFiles(cluster.LogDirectory, "coordinator-*.log")
    |> Array.collect (fun f ->
        use r = new StreamReader(new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        r.ReadToEnd().Split('\n'))

/// Waits until `condition` holds, at most `seconds`; false when it did not.
let private within (seconds: float) (condition: unit -> bool) =
    let deadline = DateTime.UtcNow.AddSeconds seconds
    while not (condition ()) && DateTime.UtcNow < deadline do Thread.Sleep 250
    condition ()

let private refusals (cluster: LocalCluster) =
    coordinatorLog cluster |> Array.filter (fun l -> l.Contains "serves another profile") |> Array.length

/// The coordinator's log lines at Error (JSON lines: the log is redirected).
let private errors (lines: string[]) = lines |> Array.filter (fun l -> l.Contains "\"@l\":\"Error\"")

/// The first few of `lines`, each cut at 300 characters (for a failure's message).
let private firstOf (lines: string[]) =
    String.Join("\n", lines |> Array.truncate 3 |> Array.map (fun l -> if l.Length > 300 then l.Substring(0, 300) + " …" else l))

let private oneWorker () =
    let log = new StringWriter()
    LocalCluster.StartAsync(LocalClusterSpec(1, 2, "flux", scale, "localhost", [| "--Trident:Serving:RoundPeriodMs"; "100" |]), log, TimeSpan.FromMinutes 4.0, CancellationToken.None).Result

let ``a worker restarted on its address is checked as a new one: another profile is refused, other devices join as a new node`` =
    testCase "a worker restarted on its address is checked as a new one: another profile is refused, other devices join as a new node" <| fun () ->
        let cluster = oneWorker ()
        try
            use client = new HttpClient(BaseAddress = Uri cluster.Url, Timeout = TimeSpan.FromSeconds 30.0)
            cluster.KillWorker 0
            Expect.isTrue (within 120.0 (fun () -> devices client |> List.forall (fun (_, _, online) -> not online))) "the killed worker's devices are out"
            // back on its address serving another profile: refused, its devices stay out
            cluster.StartWorker(0, profile = "sd3")
            Expect.isTrue (within 120.0 (fun () -> refusals cluster > 0)) "the returning worker serving sd3 is refused (logged: serves another profile)"
            Thread.Sleep 3000
            Expect.equal (devices client) [ 0, 0, false; 1, 0, false ] "its devices stay out: the flux cluster does not serve on a worker of another profile"
            // back again with the right profile and one device instead of two: the old devices stay out, it joins as a new node
            cluster.KillWorker 0
            cluster.StartWorker(0, devices = 1)
            Expect.isTrue (within 120.0 (fun () -> devices client |> List.exists (fun (_, _, online) -> online))) "the corrected worker's device is in"
            Expect.equal (devices client) [ 0, 0, false; 1, 0, false; 2, 1, true ] "the device it has now, as a new node; the two it had stay out"
            let id = submit client (body "one device" 256 7UL 28)
            let final = pollUntil client 120.0 id isFinal
            Expect.equal (status final) "succeeded" (sprintf "served on the device it has: %O" final)
            Expect.equal [ for d in final.GetProperty("route").GetProperty("diffuse_devices").EnumerateArray() -> d.GetInt32() ] [ 2 ] "on device 2"
        finally
            cluster.DisposeAsync().AsTask().Wait()

let ``a worker refused for its profile and restarted on the same address with the right one joins`` =
    testCase "a worker refused for its profile and restarted on the same address with the right one joins" <| fun () ->
        let log = new StringWriter()
        let cluster =
            LocalCluster.StartAsync(LocalClusterSpec(2, 2, "flux", scale, "localhost", [| "--Trident:Serving:RoundPeriodMs"; "100" |], 1), log, TimeSpan.FromMinutes 4.0, CancellationToken.None).Result
        try
            use client = new HttpClient(BaseAddress = Uri cluster.Url, Timeout = TimeSpan.FromSeconds 30.0)
            cluster.StartWorker(1, profile = "sd3")
            Expect.isTrue (within 120.0 (fun () -> refusals cluster > 0)) "the worker serving sd3 is refused (logged: serves another profile)"
            Expect.equal (devices client |> List.length) 2 "its devices are not used"
            cluster.KillWorker 1
            cluster.StartWorker 1
            Expect.isTrue (within 120.0 (fun () -> (devices client |> List.length) = 4)) "the corrected worker on the same address joins"
            Expect.equal (devices client) [ 0, 0, true; 1, 0, true; 2, 1, true; 3, 1, true ] "as node 1, online"
            Expect.equal (refusals cluster) 1 "the refusal was logged once"
        finally
            cluster.DisposeAsync().AsTask().Wait()

let ``GET /v1/cluster does not call the grains of a worker that left, and says so once`` =
    testCase "GET /v1/cluster does not call the grains of a worker that left, and says so once" <| fun () ->
        let cluster = oneWorker ()
        try
            use client = new HttpClient(BaseAddress = Uri cluster.Url, Timeout = TimeSpan.FromSeconds 30.0)
            // a request's models are resident on the worker, as they are after any work
            Expect.equal (status (pollUntil client 120.0 (submit client (body "warm" 256 1UL 28)) isFinal)) "succeeded" "a request ran"
            let atKill = coordinatorLog cluster |> Array.length
            cluster.KillWorker 0
            // GET /v1/cluster every 250 ms until the membership says the worker is gone: each asks its devices' grains
            Expect.isTrue (within 120.0 (fun () -> devices client |> List.forall (fun (_, _, online) -> not online))) "the killed worker's devices are out"
            Thread.Sleep 3000
            let before = coordinatorLog cluster |> Array.length
            // uncached calls: the devices' resident models are refreshed at most every 2 s
            for _ in 1..4 do
                Expect.all (devices client) (fun (_, _, online) -> not online) "reported offline"
                Thread.Sleep 2500
            let added = coordinatorLog cluster |> Array.skip before
            let grainErrors = added |> Array.filter (fun l -> l.Contains "Resident" || l.Contains "pinned to the worker" || l.Contains "Failed to address")
            Expect.isEmpty grainErrors (sprintf "no call to the gone worker's grains, no error logged per request (%d lines added)" added.Length)
            let leaves = coordinatorLog cluster |> Array.filter (fun l -> l.Contains "left the cluster (") |> Array.length
            Expect.equal leaves 1 "one warning for the worker's leave"
            // before: a Polly "Execution attempt" and an Orleans "Failed to address message" error, each with its stack
            // trace, for every call to the dead worker's grains until the membership declared it dead
            let logged = errors (coordinatorLog cluster |> Array.skip atKill)
            Expect.isEmpty logged (sprintf "no error logged for the worker's loss, before or after the membership declared it dead; %d logged, the first:\n%s" logged.Length (firstOf logged))
        finally
            cluster.DisposeAsync().AsTask().Wait()

let ``every worker killed at once: the coordinator takes their devices out within 40 s, says so once per worker, and logs no error while they are gone`` =
    testCase "every worker killed at once: the coordinator takes their devices out within 40 s, says so once per worker, and logs no error while they are gone" <| fun () ->
        // localhost membership, the coordinator the primary silo: with both workers dead it is the only silo left to vote.
        // Orleans' defaults needed the dead workers' entries stale (90 s without an IAmAlive): 83 s measured, /ready 200
        // meanwhile; and every GET /v1/cluster until then logged Polly's and Orleans' errors with stack traces
        let log = new StringWriter()
        let cluster =
            LocalCluster.StartAsync(LocalClusterSpec(2, 2, "flux", scale, "localhost", [| "--Trident:Serving:RoundPeriodMs"; "100" |]), log, TimeSpan.FromMinutes 4.0, CancellationToken.None).Result
        try
            use client = new HttpClient(BaseAddress = Uri cluster.Url, Timeout = TimeSpan.FromSeconds 30.0)
            Expect.equal (status (pollUntil client 120.0 (submit client (body "warm" 256 1UL 28)) isFinal)) "succeeded" "a request ran"
            let before = coordinatorLog cluster |> Array.length
            let killed = Diagnostics.Stopwatch.StartNew()
            cluster.KillWorker 0
            cluster.KillWorker 1
            // GET /v1/cluster every 250 ms meanwhile: it asks the devices' grains for their resident models until they are out
            let out = within 40.0 (fun () -> devices client |> List.forall (fun (_, _, online) -> not online))
            let took = killed.Elapsed.TotalSeconds
            Expect.isTrue out (sprintf "both workers' devices are out within 40 s of the kill (Orleans' defaults: ≈ 80 s); still in after %.0f s: %A" took (devices client))
            let notReady () = (get client "/ready").StatusCode = HttpStatusCode.ServiceUnavailable
            Expect.isTrue (within (max 1.0 (40.0 - killed.Elapsed.TotalSeconds)) notReady) "/ready says 503 (no device is in the cluster) within 40 s of the kill"
            use refused = client.PostAsync("/v1/generations", new StringContent(body "after" 256 2UL 28, Text.Encoding.UTF8, "application/json")).Result
            Expect.equal refused.StatusCode HttpStatusCode.ServiceUnavailable "a new request is refused, not accepted to fail after the join timeout"
            for _ in 1..4 do
                devices client |> ignore
                Thread.Sleep 2500
            let added = coordinatorLog cluster |> Array.skip before
            Expect.isEmpty (errors added) (sprintf "no error logged for the workers' loss (Polly's placement retries, Orleans' messaging), out after %.1f s; %d logged, the first:\n%s" took (errors added).Length (firstOf (errors added)))
            let leaves = added |> Array.filter (fun l -> l.Contains "left the cluster (") |> Array.length
            Expect.equal leaves 2 "one warning per worker's leave"
        finally
            cluster.DisposeAsync().AsTask().Wait()

/// Which events Trident's logger keeps: the coordinator's and worker's log (TridentHosting.CreateLogger) at Information.
let private kept (category: string) (level: Serilog.Events.LogEventLevel) (template: string) (error: exn) =
    let events = Collections.Generic.List<Serilog.Events.LogEvent>()
    let sink = { new Serilog.Core.ILogEventSink with member _.Emit e = events.Add e }
    use logger = Trident.Api.Hosting.TridentHosting.CreateLogger(null, "json", true, sink)
    logger.ForContext(Serilog.Core.Constants.SourceContextPropertyName, category).Write(level, error, template, "Request [S127.0.0.1:1 …]->[ device/127.0.0.1:2/1]")
    events.Count = 1

[<Tests>]
let unitTests =
    testList "unit" [ testList "ClusterProcessTests" [
        testCase "Orleans' errors about a message to a silo that is gone are dropped, other errors kept, Polly's placement retries off" <| fun () ->
            let gone = Orleans.Runtime.SiloUnavailableException "device grain '127.0.0.1:2/1' is pinned to the worker at 127.0.0.1:2, which is not in the cluster"
            Expect.isFalse (kept "Orleans.Messaging" Serilog.Events.LogEventLevel.Error "Failed to address message {Message}" gone) "an addressing failure to a gone silo: dropped"
            Expect.isFalse (kept "Orleans.Messaging" Serilog.Events.LogEventLevel.Error "Failed to address message {Message}" (AggregateException(InvalidOperationException("wrapped", gone)))) "also when wrapped"
            Expect.isFalse (kept "Orleans.Runtime.GrainDirectory.ClientDirectory" Serilog.Events.LogEventLevel.Error "Exception publishing client routing table to silo {Silo}" gone) "publishing to a gone silo: dropped"
            Expect.isFalse (kept "Orleans.Runtime.GrainCallCancellationManager" Serilog.Events.LogEventLevel.Error "Error while cancelling {Count} requests to {Silo}" gone) "cancelling calls to a gone silo: dropped"
            Expect.isTrue (kept "Orleans.Messaging" Serilog.Events.LogEventLevel.Error "Failed to address message {Message}" (InvalidOperationException "a placement bug")) "an addressing failure with another cause: kept"
            Expect.isTrue (kept "Orleans.Runtime.Catalog" Serilog.Events.LogEventLevel.Error "Failed to activate {Message}" gone) "another Orleans error: kept"
            Expect.isTrue (kept "Orleans.Messaging" Serilog.Events.LogEventLevel.Warning "Detected application deadlock on message {Message}" gone) "Orleans.Messaging's warnings: kept"
            Expect.isFalse (kept "Polly" Serilog.Events.LogEventLevel.Error "Execution attempt. Source: {Source}" gone) "Polly's retry attempts (Orleans' placement): off"
    ] ]

[<Tests>]
let integrationTests =
    testList "integration" [ testList "ClusterProcessTests" [
        ``a cluster of processes serves generations, survives a killed worker, and takes the restarted worker back``
        ``a worker that starts after the coordinator joins the running cluster and takes work``
        ``a request running on a worker is suspended for an urgent one and resumes there with its image``
        ``a worker restarted on its address is checked as a new one: another profile is refused, other devices join as a new node``
        ``a worker refused for its profile and restarted on the same address with the right one joins``
        ``GET /v1/cluster does not call the grains of a worker that left, and says so once``
        ``every worker killed at once: the coordinator takes their devices out within 40 s, says so once per worker, and logs no error while they are gone``
    ] |> testSequenced ]
