/// Step-boundary preemption on the live server (issue 12): two CPU devices busy with long requests, an urgent
/// request that waiting would make late suspends one of them at a step boundary; both finish, the suspended one's
/// events show `suspended` and `resumed` with the step, /metrics counts the suspension and the resumption, and its
/// image is byte-identical to the same request run without suspension.
module Trident.Tests.Api.PreemptionApiTests

open System
open System.IO
open System.Net.Http
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Expecto
open Trident.Runtime.Devices
open Trident.Runtime.Execution
open Trident.Tests.Runtime
open Trident.Tests.Api.ApiFixture

let private server =
    lazy (new TridentFactory([ "Trident:Devices:Count", "2"; "Trident:Serving:Preemption", "true"; "Trident:Serving:MaxSuspensions", "2" ]))

/// Reads a job's server-sent events until the stream ends: (event type, data) in order.
let private readEvents (client: HttpClient) (id: string) =
    Task.Run(fun () ->
        use request = new HttpRequestMessage(HttpMethod.Get, sprintf "/v1/generations/%s/events" id)
        use response = client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Result
        use reader = new StreamReader(response.Content.ReadAsStream())
        let events = ResizeArray<string * JsonElement>()
        let mutable kind = ""
        let mutable line = reader.ReadLine()
        while not (isNull line) do
            if line.StartsWith "event: " then kind <- line.Substring 7
            elif line.StartsWith "data: " then events.Add(kind, JsonDocument.Parse(line.Substring 6).RootElement.Clone())
            line <- reader.ReadLine()
        List.ofSeq events)

let private counter (metrics: string) (name: string) =
    metrics.Split('\n')
    |> Array.tryFind (fun l -> l.StartsWith(name + " ") || l.StartsWith(name + "{"))
    |> Option.map (fun l -> float (l.Substring(l.LastIndexOf ' ' + 1)))
    |> Option.defaultValue nan

/// The request's image computed without the server: the same stages on an executor of the same threads.
let private uninterrupted (prompt: string) (steps: int) (seed: uint64) (deviceThreads: int) (diffuseThreads: int) =
    use executor = new OnnxStageExecutor(LoadedPipeline.Open(TinyFixture.directory.Value, Trident.Runtime.Onnx.ExecutionProvider.Cpu(deviceThreads)), deviceThreads)
    let ex = executor :> IStageExecutor
    let input = GenerationInput(prompt, null, 64, 64, 1, steps, seed, 1.0)
    let observer = { new IStepObserver with member _.StepCompleted(_, _) = () }
    let embeddings = ex.Encode(input, CancellationToken.None)
    let latents = ex.Diffuse(input, embeddings, diffuseThreads, observer, CancellationToken.None)
    (Generation.EncodeFile(ex.Decode(input, latents, CancellationToken.None))).Bytes

let ``a long request suspended for an urgent one resumes and gives its uninterrupted image`` =
    testCase "a long request suspended for an urgent one: both finish, suspended/resumed events and metrics, the same image bytes" <| fun () ->
        let client = readyClient server.Value
        let steps = 1500
        let long seed = sprintf """{"prompt":"a long walk","steps":%d,"seed":%d,"guidance":1.0,"deadline_ms":3600000}""" steps seed
        let a = submit client (long 31)
        let b = submit client (long 32)
        let eventsA, eventsB = readEvents client a, readEvents client b
        // both devices busy: the first long request diffuses (the second diffuses beside it, or waits for its devices)
        pollUntil client 120.0 a (fun e -> status e = "diffusing" && e.GetProperty("step").GetInt32() > 0) |> ignore
        // an urgent request (1 ms deadline: late whatever happens, so the sooner the better) that waiting keeps
        // waiting for a long request's devices
        let u = submit client """{"prompt":"urgent","steps":2,"seed":7,"guidance":1.0,"deadline_ms":1}"""
        let finalU = pollUntil client 300.0 u isFinal
        Expect.equal (status finalU) "succeeded" "the urgent request succeeded"
        let finals = [ a; b ] |> List.map (fun id -> id, pollUntil client 600.0 id isFinal)
        for id, f in finals do
            Expect.equal (status f) "succeeded" (sprintf "long request %s succeeded" id)
        let events = [ a, eventsA.Result; b, eventsB.Result ]
        let suspended =
            events |> List.filter (fun (_, es) -> es |> List.exists (fun (k, _) -> k = "suspended"))
        Expect.isNonEmpty suspended "a long request was suspended for the urgent one"
        for id, es in suspended do
            let kinds = es |> List.map fst
            let at k = kinds |> List.findIndex ((=) k)
            let stop = es |> List.find (fun (k, _) -> k = "suspended") |> snd
            let step = stop.GetProperty("step").GetInt32()
            Expect.equal (status stop) "suspended" "the suspended event's status"
            Expect.isTrue (step >= 1 && step < steps) (sprintf "%s stopped at a step boundary inside the run (step %d)" id step)
            Expect.isLessThan (at "suspended") (at "resumed") "resumed after it was suspended"
            let resumed = es |> List.find (fun (k, _) -> k = "resumed") |> snd
            Expect.equal (status resumed) "diffusing" "the resumed event's status"
            Expect.equal (resumed.GetProperty("step").GetInt32()) step "it resumes at the step it stopped at"
            // never run twice: progress after the resumption goes on from the step it stopped at, each step once
            let progress = es |> List.filter (fun (k, _) -> k = "progress") |> List.map (fun (_, e) -> e.GetProperty("step").GetInt32())
            Expect.equal progress (List.distinct progress) "no step is reported twice"
            Expect.equal (List.last progress) steps "every step ran"
        // GET /v1/plan keeps each preemption: the suspended request, the urgent one, the step and the devices
        let recent = [ for x in (json (get client "/v1/plan")).GetProperty("recent_preemptions").EnumerateArray() -> x ]
        for id, _ in suspended do
            match recent |> List.tryFind (fun x -> string (x.GetProperty("victim").GetInt64()) = id) with
            | Some x ->
                Expect.equal (string (x.GetProperty("urgent").GetInt64())) u "the urgent request took its devices"
                let planned = x.GetProperty("step").GetInt32()
                Expect.isTrue (planned >= 0 && planned < steps) (sprintf "the boundary the decision expected is inside the run (%d)" planned)
                Expect.isGreaterThan (x.GetProperty("gain").GetDouble()) (x.GetProperty("loss").GetDouble()) "gain > loss"
                Expect.isNonEmpty [ for d in x.GetProperty("devices").EnumerateArray() -> d ] "the devices it gave up"
            | None -> failtestf "GET /v1/plan's recent_preemptions does not list request %s" id
        use metrics = get client "/metrics"
        let text = metrics.Content.ReadAsStringAsync().Result
        Expect.isGreaterThanOrEqual (counter text "trident_suspensions_total") (float suspended.Length) "trident_suspensions_total counts it"
        Expect.isGreaterThanOrEqual (counter text "trident_resumptions_total") (float suspended.Length) "trident_resumptions_total counts it"
        // the image equals the request's image computed without any suspension, on the same threads
        let cluster = json (get client "/v1/cluster")
        let threads = [ for d in cluster.GetProperty("devices").EnumerateArray() -> d.GetProperty("intra_op_threads").GetInt32() ]
        for id, _ in suspended do
            let view = json (get client ("/v1/generations/" + id))
            let seed = view.GetProperty("seed").GetInt64()
            let degree = view.GetProperty("route").GetProperty("diffuse_devices").GetArrayLength()
            use result = get client (sprintf "/v1/generations/%s/result" id)
            let served = result.Content.ReadAsByteArrayAsync().Result
            let reference = uninterrupted "a long walk" steps (uint64 seed) threads.Head (degree * threads.Head)
            Expect.isTrue (served = reference) (sprintf "request %s's image is byte-identical to its uninterrupted image" id)

/// A server of its own (the test above watches its server's suspensions).
let private latencyServer =
    lazy (new TridentFactory([ "Trident:Devices:Count", "2"; "Trident:Serving:Preemption", "true"; "Trident:Serving:MaxSuspensions", "2" ]))

let ``a short request on time by waiting suspends a long one for latency`` =
    testCase "preemption for latency (the default): a short request on time by waiting takes a long request's devices" <| fun () ->
        let client = readyClient latencyServer.Value
        let steps = 1500
        // every deadline an hour away: nobody is late by waiting, so only the objective's latency term can suspend
        let body prompt steps seed = sprintf """{"prompt":"%s","steps":%d,"seed":%d,"guidance":1.0,"deadline_ms":3600000}""" prompt steps seed
        let a = submit client (body "a long walk" steps 41)
        let b = submit client (body "a long walk" steps 42)
        pollUntil client 120.0 a (fun e -> status e = "diffusing" && e.GetProperty("step").GetInt32() > 0) |> ignore
        pollUntil client 120.0 b (fun e -> status e = "diffusing" && e.GetProperty("step").GetInt32() > 0) |> ignore
        let u = submit client (body "short" 2 7)
        let finalU = pollUntil client 300.0 u isFinal
        Expect.equal (status finalU) "succeeded" "the short request succeeded"
        let recent = [ for x in (json (get client "/v1/plan")).GetProperty("recent_preemptions").EnumerateArray() -> x ]
        match recent |> List.tryFind (fun x -> string (x.GetProperty("urgent").GetInt64()) = u) with
        | Some x ->
            let victim = string (x.GetProperty("victim").GetInt64())
            Expect.contains [ a; b ] victim "a long request was suspended for it"
            Expect.isGreaterThan (x.GetProperty("gain").GetDouble()) (x.GetProperty("loss").GetDouble()) "gain > loss"
            Expect.isLessThan (x.GetProperty("gain").GetDouble()) 1000.0 "a latency gain only (no on-time reward changes hands)"
        | None -> failtestf "GET /v1/plan's recent_preemptions has no suspension for request %s (it waited for a long request's devices)" u
        for id in [ a; b ] do
            Expect.equal (status (pollUntil client 600.0 id isFinal)) "succeeded" (sprintf "long request %s succeeded" id)

[<Tests>]
let tests =
    testList "integration" [ testList "PreemptionApiTests" [
        ``a long request suspended for an urgent one resumes and gives its uninterrupted image``
        ``a short request on time by waiting suspends a long one for latency``
    ] |> testSequenced ]
