/// Every route of the HTTP API, in process on the real tiny pipeline (ApiFixture): generations (create,
/// status, result, cancel, events), the OpenAI-compatible images route, cluster, plan, health, readiness,
/// metrics and the OpenAPI document; validation errors; 429 under a full queue; options validation.
module Trident.Tests.Api.GenerationsApiTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open System.Threading
open Microsoft.Extensions.Options
open Xunit
open Trident.Runtime.Imaging
open Trident.Tests.Runtime
open Trident.Tests.Api.ApiFixture

let private errorsOf (r: HttpResponseMessage) =
    let body = json r
    [ for p in body.GetProperty("errors").EnumerateObject() -> p.Name ] |> Set.ofList

[<Collection(TinyFixture.Collection)>]
type GenerationsApiTests(factory: DefaultServer) =
    let client = readyClient factory

    interface IClassFixture<DefaultServer>

    [<Fact>]
    member _.``a generation is accepted, served through every stage, and its result is a PNG of the requested size``() =
        use r = post client "/v1/generations" """{"prompt":"a red fox in fresh snow","width":128,"height":64,"steps":3,"seed":11}"""
        Assert.Equal(HttpStatusCode.Accepted, r.StatusCode)
        let accepted = json r
        let id = accepted.GetProperty("id").GetString()
        Assert.Equal(sprintf "/v1/generations/%s" id, r.Headers.Location.OriginalString)
        Assert.Equal(sprintf "/v1/generations/%s/events" id, accepted.GetProperty("events_url").GetString())
        let final = pollUntil client 120.0 id isFinal
        Assert.Equal("succeeded", status final)
        Assert.Equal(3, final.GetProperty("step").GetInt32())
        let timings = final.GetProperty("timings")
        for stage in [ "encode"; "diffuse"; "decode" ] do
            Assert.True(timings.GetProperty(stage).GetProperty("duration_ms").GetDouble() > 0.0, stage + " has a duration")
        let route = final.GetProperty("route")
        Assert.Equal(1, route.GetProperty("diffuse_devices").GetArrayLength())
        let plannedBy = route.GetProperty("planned_by").GetString()
        Assert.True(plannedBy.StartsWith "mip" || plannedBy.StartsWith "greedy", "the route says how its plan was made: " + plannedBy)
        Assert.Equal("slo", final.GetProperty("deadline").GetProperty("source").GetString())
        Assert.Contains(final.GetProperty("deadline").GetProperty("met").ValueKind, [ JsonValueKind.True; JsonValueKind.False ])
        use png = get client (sprintf "/v1/generations/%s/result" id)
        Assert.Equal(HttpStatusCode.OK, png.StatusCode)
        Assert.Equal("image/png", png.Content.Headers.ContentType.MediaType)
        let image = PngDecoder.Decode(ReadOnlySpan(png.Content.ReadAsByteArrayAsync().Result))
        Assert.Equal((128, 64), (image.Width, image.Height))

    [<Fact>]
    member _.``a video request yields an animated PNG with every frame``() =
        let id = submit client """{"prompt":"waves","width":64,"height":64,"frames":3,"steps":2}"""
        Assert.Equal("succeeded", status (pollUntil client 120.0 id isFinal))
        use png = get client (sprintf "/v1/generations/%s/result" id)
        let frames = PngDecoder.DecodeFrames(ReadOnlySpan(png.Content.ReadAsByteArrayAsync().Result))
        Assert.Equal(3, frames.Count)

    [<Fact>]
    member _.``bad input gets one 400 problem naming every bad field``() =
        use r = post client "/v1/generations" """{"prompt":" ","width":100,"height":4096,"frames":0,"steps":0,"seed":-1,"guidance":-2,"deadline_ms":0}"""
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode)
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType.MediaType)
        Assert.Equal<Set<string>>(
            set [ "prompt"; "width"; "height"; "frames"; "steps"; "seed"; "guidance"; "deadline_ms" ],
            errorsOf r)

    [<Fact>]
    member _.``a field of the wrong type, or no JSON at all, is a 400 naming it``() =
        use typed = post client "/v1/generations" """{"prompt":"x","width":"wide"}"""
        Assert.Equal(HttpStatusCode.BadRequest, typed.StatusCode)
        Assert.Equal<Set<string>>(set [ "width" ], errorsOf typed)
        use empty = post client "/v1/generations" ""
        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode)

    [<Fact>]
    member _.``an unknown generation is 404 on every route``() =
        for path in [ "/v1/generations/999999"; "/v1/generations/999999/result"; "/v1/generations/999999/events" ] do
            use r = get client path
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode)
        use d = client.DeleteAsync("/v1/generations/999999").Result
        Assert.Equal(HttpStatusCode.NotFound, d.StatusCode)

    [<Fact>]
    member _.``cancelling a queued job cancels it at once, a running one at its next step, and a finished one is a conflict``() =
        // two long jobs fill both devices; the third waits
        let running = [ for i in 1..2 -> submit client (sprintf """{"prompt":"long %d","steps":1500}""" i) ]
        let queued = submit client """{"prompt":"waiting","steps":1500}"""
        for id in running do pollUntil client 60.0 id (fun s -> s.GetProperty("step").GetInt32() >= 1) |> ignore
        let waiting = json (get client ("/v1/generations/" + queued))
        Assert.Equal("queued", status waiting)
        Assert.Equal(1, waiting.GetProperty("queue_position").GetInt32())
        use cq = client.DeleteAsync("/v1/generations/" + queued).Result
        Assert.Equal(HttpStatusCode.OK, cq.StatusCode)
        Assert.Equal("cancelled", status (json cq))
        for id in running do
            use cr = client.DeleteAsync("/v1/generations/" + id).Result
            Assert.Equal(HttpStatusCode.Accepted, cr.StatusCode)
        for id in running do
            let final = pollUntil client 30.0 id isFinal
            Assert.Equal("cancelled", status final)
            Assert.True(final.GetProperty("step").GetInt32() < 1500, "stopped before its last step")
        use again = client.DeleteAsync("/v1/generations/" + queued).Result
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode)
        use result = get client (sprintf "/v1/generations/%s/result" queued)
        Assert.Equal(HttpStatusCode.Conflict, result.StatusCode)

    [<Fact>]
    member _.``server-sent events report each state change and every diffuse step until the final state``() =
        let id = submit client """{"prompt":"stream me","steps":300}"""
        use request = new HttpRequestMessage(HttpMethod.Get, sprintf "/v1/generations/%s/events" id)
        use response = client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Result
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType.MediaType)
        use reader = new StreamReader(response.Content.ReadAsStream())
        let events = ResizeArray<string * JsonElement>()
        let mutable kind = ""
        let mutable line = reader.ReadLine()
        while not (isNull line) do
            if line.StartsWith "event: " then kind <- line.Substring 7
            elif line.StartsWith "data: " then events.Add(kind, JsonDocument.Parse(line.Substring 6).RootElement)
            line <- reader.ReadLine()
        let progress = events |> Seq.filter (fun (k, _) -> k = "progress") |> Seq.map (fun (_, e) -> e.GetProperty("step").GetInt32()) |> List.ofSeq
        Assert.NotEmpty(progress)
        Assert.Equal<int list>(List.sort progress, progress)
        Assert.Equal(300, List.last progress)
        let final = snd events.[events.Count - 1]
        Assert.Equal("state", fst events.[events.Count - 1])
        Assert.Equal("succeeded", status final)
        Assert.Contains(events, fun (k, e) -> k = "state" && status e = "decoding")

    [<Fact>]
    member _.``the OpenAI-compatible route returns n base64 PNGs synchronously and validates its fields``() =
        use r = post client "/v1/images/generations" """{"prompt":"two foxes","n":2,"size":"64x64","response_format":"b64_json","steps":2}"""
        Assert.Equal(HttpStatusCode.OK, r.StatusCode)
        let data = (json r).GetProperty("data")
        Assert.Equal(2, data.GetArrayLength())
        for item in data.EnumerateArray() do
            let png = PngDecoder.Decode(ReadOnlySpan(Convert.FromBase64String(item.GetProperty("b64_json").GetString())))
            Assert.Equal((64, 64), (png.Width, png.Height))
        use bad = post client "/v1/images/generations" """{"prompt":"x","n":99,"size":"huge","response_format":"url"}"""
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode)
        Assert.Equal<Set<string>>(set [ "n"; "size"; "response_format" ], errorsOf bad)

    [<Fact>]
    member _.``the cluster lists every device with its placement type and resident models, and the plan its capacities and rounds``() =
        let id = submit client """{"prompt":"for the plan","steps":2}"""
        pollUntil client 120.0 id isFinal |> ignore
        let cluster = json (get client "/v1/cluster")
        let devices = cluster.GetProperty("devices")
        Assert.Equal(Environment.ProcessorCount, devices.GetArrayLength())
        for d in devices.EnumerateArray() do
            Assert.Contains(d.GetProperty("placement_type").GetString(), [ "EDC"; "DC"; "ED"; "D"; "E"; "C" ])
            Assert.Equal(JsonValueKind.Array, d.GetProperty("resident_models").ValueKind)
        Assert.Contains(devices.EnumerateArray(), fun d -> d.GetProperty("resident_models").GetArrayLength() > 0)
        Assert.Equal(64, cluster.GetProperty("queue").GetProperty("capacity").GetInt32())
        let plan = json (get client "/v1/plan")
        let placement = plan.GetProperty("placement")
        Assert.Equal(Environment.ProcessorCount, [ for _ in placement.GetProperty("types").EnumerateObject() -> () ].Length)
        for stage in [ "encode"; "diffuse"; "decode" ] do
            Assert.True(placement.GetProperty("capacity").GetProperty(stage).GetDouble() > 0.0, stage + " has capacity")
        let rounds = plan.GetProperty("recent_rounds")
        Assert.True(rounds.GetArrayLength() > 0, "rounds are listed")
        let last = rounds.[0]
        Assert.Contains(last.GetProperty("source").GetString(), [ "mip"; "greedy" ])
        Assert.True(last.GetProperty("plan_ms").GetDouble() >= 0.0)

    [<Fact>]
    member _.``health, readiness, Prometheus metrics and the OpenAPI document are served``() =
        use h = get client "/health"
        Assert.Equal("live", status (json h))
        use ready = get client "/ready"
        Assert.Equal("ready", status (json ready))
        let id = submit client """{"prompt":"metrics","steps":2}"""
        pollUntil client 120.0 id isFinal |> ignore
        use m = get client "/metrics"
        Assert.Equal("text/plain", m.Content.Headers.ContentType.MediaType)
        let text = m.Content.ReadAsStringAsync().Result
        for name in [ "trident_queue_depth"; "trident_requests_total{outcome=\"succeeded\"}"; "trident_slo_attainment"
                      "trident_stage_latency_seconds_bucket{stage=\"diffuse\",le=\"+Inf\"}"; "trident_device_utilisation{device=\"0\"}"
                      "trident_dispatch_solve_seconds_count"; "trident_replacements_total" ] do
            Assert.Contains(name, text)
        for line in text.Split('\n') do
            if line.Length > 0 && not (line.StartsWith "#") then Assert.StartsWith("trident_", line)
        let doc = json (get client "/openapi/v1.json")
        let paths = [ for p in doc.GetProperty("paths").EnumerateObject() -> p.Name ] |> Set.ofList
        for route in [ "/v1/generations"; "/v1/generations/{id}"; "/v1/generations/{id}/result"; "/v1/generations/{id}/events"
                       "/v1/images/generations"; "/v1/cluster"; "/v1/plan"; "/health"; "/ready"; "/metrics" ] do
            Assert.Contains(route, paths)

    [<Fact>]
    member _.``loadgen replays a trace file and prints SLO attainment, latency percentiles, errors and the simulator's comparison``() =
        let trace = TinyFixture.tempPath "trace.csv"
        Directory.CreateDirectory(Path.GetDirectoryName trace) |> ignore
        let lines =
            [ "id,arrival_s,model,height,width,frames,steps,deadline_s,priority" ]
            @ [ for i in 0..5 -> sprintf "%d,%g,tiny,%d,%d,1,2,," i (0.2 * float i) (if i % 2 = 0 then 64 else 128) 64 ]
        File.WriteAllLines(trace, lines)
        let out = new StringWriter()
        let args = Trident.Api.Cli.CliArgs([ "--workload"; trace; "--compare-sim"; "--timeout"; "60"; "--out"; TinyFixture.tempPath "requests.csv" ])
        let code = Trident.Api.Cli.LoadgenCommand.RunAsync(args, client, out, CancellationToken.None).Result
        let text = string out
        Assert.True((code = 0), text)
        Assert.Contains("measured: requests=6 succeeded=6 rejected_429=0 failed=0", text)
        for figure in [ "slo_attainment="; "mean_s="; "p95_s="; "p99_s="; "simulated: requests=6"; "median_abs_error_s=" ] do
            Assert.Contains(figure, text)

/// A server whose queue holds one request.
type SmallQueueFactory() =
    inherit TridentFactory([ "Trident:Serving:QueueCapacity", "1" ])

[<Collection(TinyFixture.Collection)>]
type QueueFullTests(factory: SmallQueueFactory) =
    let client = readyClient factory

    interface IClassFixture<SmallQueueFactory>

    [<Fact>]
    member _.``a full queue answers 429 with Retry-After, and every accepted request is still served``() =
        let accepted = ResizeArray<string>()
        let mutable refused: HttpResponseMessage = null
        let mutable n = 0
        while isNull refused && n < 20 do
            n <- n + 1
            let r = post client "/v1/generations" """{"prompt":"fill","steps":600}"""
            if r.StatusCode = HttpStatusCode.Accepted then accepted.Add((json r).GetProperty("id").GetString())
            elif r.StatusCode = enum 429 then refused <- r
            else failwithf "unexpected %O" r.StatusCode
        Assert.NotNull(refused)
        Assert.True(refused.Headers.RetryAfter.Delta.Value >= TimeSpan.FromSeconds 1.0, "Retry-After in seconds")
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType.MediaType)
        // nothing accepted is dropped: every job reaches a final state (cancelled to keep the test short)
        for id in accepted do client.DeleteAsync("/v1/generations/" + id).Result.Dispose()
        for id in accepted do
            Assert.Contains(status (pollUntil client 60.0 id isFinal), [ "cancelled"; "succeeded" ])

[<Fact>]
let ``invalid configuration stops serve at start-up with every bad key named`` () =
    let error = new StringWriter()
    let previous = Console.Error
    Console.SetError error
    let code =
        try
            Trident.Api.Cli.Commands.RunAsync(
                [| "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal"
                   "--Trident:Serving:QueueCapacity"; "0"; "--Trident:Devices:Kind"; "tpu"; "--Trident:Monitor:TriggerRatio"; "1" |]).Result
        finally
            Console.SetError previous
    Assert.Equal(2, code)
    let message = string error
    for key in [ "Trident:Serving:QueueCapacity"; "Trident:Devices:Kind"; "Trident:Monitor:TriggerRatio" ] do
        Assert.Contains(key, message)

[<Fact>]
let ``an unknown command is refused with the usage, and the commands include serve and loadgen`` () =
    let code = Trident.Api.Cli.Commands.RunAsync([| "frobnicate" |]).Result
    Assert.Equal(2, code)
    let names = Trident.Api.Cli.Commands.All |> Seq.map (fun c -> c.Name) |> Set.ofSeq
    Assert.Contains("serve", names)
    Assert.Contains("loadgen", names)

[<Fact>]
let ``loadgen talks to loopback addresses only`` () =
    let code = Trident.Api.Cli.Commands.RunAsync([| "loadgen"; "--url"; "http://192.0.2.1:8080"; "--workload"; "tiny-poisson" |]).Result
    Assert.Equal(2, code)
