/// Observability of the server, in process on the tiny pipeline: a generation's trace read from OpenTelemetry's
/// in-memory exporter (its spans and their parent-child structure) and pushed by OTLP to a local receiver,
/// the Prometheus output of OpenTelemetry's exporter, one request-log line per HTTP request with its trace
/// id, the log formats, the OpenAPI document (every route with a summary, examples and problem responses) and
/// the /docs page (nothing loaded from outside), and the example configuration (every key, its default,
/// strictly bound).
module Trident.Tests.Api.ObservabilityTests

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open System.Text.RegularExpressions
open System.Threading
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Routing
open Microsoft.AspNetCore.TestHost
open Microsoft.Extensions.Configuration
open Microsoft.Extensions.DependencyInjection
open OpenTelemetry.Trace
open Serilog.Core
open Serilog.Events
open Expecto
open Trident.Api.Hosting
open Trident.Api.Options
open Trident.Tests.Api.ApiFixture
open Trident.Tests.TestSupport

/// Collects formatted log lines (compact JSON).
type private LineSink() =
    let lines = ConcurrentQueue<string>()
    member _.Lines = List.ofSeq lines
    interface ILogEventSink with
        member _.Emit(e: LogEvent) =
            use w = new StringWriter()
            (TridentHosting.Formatter true).Format(e, w)
            lines.Enqueue(w.ToString())

/// A local OTLP/HTTP receiver: answers every POST 200 with an empty protobuf message and records the paths.
type private OtlpReceiver() =
    let port = Trident.Api.Hosting.Loopback.FreePort()
    let listener = new HttpListener()
    let paths = ConcurrentQueue<string>()
    do
        listener.Prefixes.Add(sprintf "http://127.0.0.1:%d/" port)
        listener.Start()
        let rec loop () =
            async {
                let! context = listener.GetContextAsync() |> Async.AwaitTask
                paths.Enqueue context.Request.Url.AbsolutePath
                use _ = context.Request.InputStream
                context.Response.StatusCode <- 200
                context.Response.ContentType <- "application/x-protobuf"
                context.Response.Close()
                return! loop ()
            }
        Async.Start(async { try do! loop () with _ -> () })
    member _.Endpoint = sprintf "http://127.0.0.1:%d" port
    member _.Paths = List.ofSeq paths
    interface IDisposable with
        member _.Dispose() = listener.Close()

/// A server whose spans also go to an in-memory list and by OTLP/HTTP to a local receiver, and whose request
/// log goes to a line sink.
type private ObservedServer(spans: List<Activity>, receiver: OtlpReceiver, requestLog: LineSink) =
    inherit TridentFactory([ "Trident:Telemetry:OtlpEndpoint", receiver.Endpoint
                             "Trident:Telemetry:OtlpProtocol", "http/protobuf"
                             "Trident:Telemetry:OtlpExportIntervalMs", "500" ])
    override this.ConfigureWebHost(builder: IWebHostBuilder) =
        base.ConfigureWebHost builder
        builder.ConfigureTestServices(fun services ->
            services.ConfigureOpenTelemetryTracerProvider(fun (b: TracerProviderBuilder) -> b.AddInMemoryExporter(spans) |> ignore) |> ignore
            services.AddSingleton(RequestLogger(Serilog.LoggerConfiguration().WriteTo.Sink(requestLog).CreateLogger())) |> ignore)
        |> ignore

/// The observed server with what it exported.
type private Observed() =
    let spans = List<Activity>()
    let receiver = new OtlpReceiver()
    let log = LineSink()
    let factory = new ObservedServer(spans, receiver, log)
    member _.Spans = spans
    member _.Receiver = receiver
    member _.RequestLog = log
    member _.Factory = factory
    interface IDisposable with
        member _.Dispose() =
            factory.Dispose()
            (receiver :> IDisposable).Dispose()

let private observed = Fixture(fun () -> new Observed())

let private spansOf (o: Observed) (trace: string) =
    lock o.Spans (fun () -> [ for s in o.Spans do if s.TraceId.ToHexString() = trace then yield s ])

let ``a generation is one trace: queue, dispatch round, each stage and each transfer are children of its root span`` =
    testCase "a generation is one trace: queue, dispatch round, each stage and each transfer are children of its root span" <| fun () ->
        let o = observed.Value
        let client = readyClient o.Factory
        use r = post client "/v1/generations" """{"prompt":"a traced fox","width":64,"height":64,"steps":2,"seed":3}"""
        let accepted = json r
        let trace = accepted.GetProperty("trace_id").GetString()
        Expect.isTrue (Regex.IsMatch(trace, "^[0-9a-f]{32}$")) "the 202 carries a W3C trace id"
        let final = pollUntil client 120.0 (accepted.GetProperty("id").GetString()) isFinal
        Expect.equal (status final) "succeeded" "the job succeeded"
        Expect.equal (final.GetProperty("trace_id").GetString()) trace "the status carries the same trace id"
        let spans = spansOf o trace
        let named name = spans |> List.filter (fun s -> s.DisplayName = name)
        let root =
            match named "trident.generation" with
            | [ r ] -> r
            | other -> failwithf "expected one root span, got %d: %A" other.Length [ for s in spans -> s.DisplayName ]
        // the root's parent is the HTTP request that submitted the job (ASP.NET Core's span, same trace)
        let post = spans |> List.tryFind (fun s -> s.SpanId = root.ParentSpanId)
        Expect.isSome post "the root span's parent is the POST request's span"
        Expect.equal (root.GetTagItem "trident.status") (box "succeeded") "the root span records the outcome"
        let children = spans |> List.filter (fun s -> s.ParentSpanId = root.SpanId)
        let childNames = children |> List.map (fun s -> s.DisplayName) |> List.countBy id |> Map.ofList
        for name in [ "trident.queue"; "trident.encode"; "trident.diffuse"; "trident.decode" ] do
            Expect.equal (Map.tryFind name childNames) (Some 1) (sprintf "one %s span under the root (children: %A)" name childNames)
        Expect.equal (Map.tryFind "trident.transfer" childNames) (Some 2) "two transfers: embeddings and latents"
        let rounds = named "trident.dispatch"
        Expect.isNonEmpty rounds "at least one dispatch round span"
        Expect.isTrue (rounds |> List.forall (fun s -> s.ParentSpanId = root.SpanId)) "dispatch rounds are children of the root"
        Expect.equal (rounds |> List.filter (fun s -> s.GetTagItem "trident.routed" = box true) |> List.length) 1 "exactly one round routed it"
        let one name = named name |> List.exactlyOne
        let ends (s: Activity) = s.StartTimeUtc + s.Duration
        let transfers = named "trident.transfer" |> List.map (fun s -> string (s.GetTagItem "trident.transfer.what"), s) |> Map.ofList
        Expect.equal (Set.ofSeq transfers.Keys) (set [ "embeddings"; "latents" ]) "one transfer of each"
        Expect.isTrue ((ends (one "trident.queue")) <= (one "trident.encode").StartTimeUtc) "queued before encoding"
        Expect.isTrue (ends (one "trident.encode") = transfers["embeddings"].StartTimeUtc) "the embeddings' hand-off starts when encode ends"
        Expect.isTrue (ends transfers["embeddings"] = (one "trident.diffuse").StartTimeUtc) "and ends when diffuse starts"
        Expect.isTrue (ends transfers["latents"] = (one "trident.decode").StartTimeUtc) "the latents' hand-off ends when decode starts"
        Expect.isTrue ((transfers["latents"].GetTagItem "trident.transfer.bytes" :?> int64) > 0L) "a transfer carries its size"
        for s in spans do
            if s.DisplayName.StartsWith "trident." then
                Expect.isTrue (s.StartTimeUtc >= root.StartTimeUtc && ends s <= ends root + TimeSpan.FromMilliseconds 1.0)
                    (sprintf "%s lies within the root span" s.DisplayName)
        // the request log: one line per request, each with its request's trace id; the POST's is the job's
        let lines = o.RequestLog.Lines
        let postLine = lines |> List.tryFind (fun l -> l.Contains "\"RequestMethod\":\"POST\"" && l.Contains "/v1/generations")
        Expect.isSome postLine "the POST was logged"
        Expect.stringContains postLine.Value (sprintf "\"@tr\":\"%s\"" trace) "the POST's log line carries the job's trace id"
        Expect.isTrue (lines |> List.forall (fun l -> l.Contains "\"@tr\":\"")) "every request line carries a trace id"
        let gets = lines |> List.filter (fun l -> l.Contains "\"RequestMethod\":\"GET\"" && l.Contains "\"RequestPath\":\"/v1/generations/") |> List.length
        Expect.isGreaterThanOrEqual gets 1 "each status poll is a line"
        // OTLP: the receiver gets traces and metrics (batched: within a few seconds)
        let deadline = DateTime.UtcNow.AddSeconds 30.0
        while not (List.contains "/v1/traces" o.Receiver.Paths && List.contains "/v1/metrics" o.Receiver.Paths) && DateTime.UtcNow < deadline do
            Thread.Sleep 200
        Expect.contains o.Receiver.Paths "/v1/traces" "spans were pushed by OTLP"
        Expect.contains o.Receiver.Paths "/v1/metrics" "metrics were pushed by OTLP"

let ``/metrics is OpenTelemetry's Prometheus output: counters, histograms with the instruments' buckets, gauges, nothing but trident_ series`` =
    testCase "/metrics is OpenTelemetry's Prometheus output: counters, histograms with the instruments' buckets, gauges, nothing but trident_ series" <| fun () ->
        let client = readyClient observed.Value.Factory
        let id = submit client """{"prompt":"counted","steps":2}"""
        pollUntil client 120.0 id isFinal |> ignore
        use m = get client "/metrics"
        let text = m.Content.ReadAsStringAsync().Result
        for line in [ "# TYPE trident_requests_total counter"; "# TYPE trident_stage_latency_seconds histogram"
                      "# TYPE trident_queue_depth gauge"; "# TYPE trident_serving_state gauge"
                      "trident_stage_latency_seconds_bucket{stage=\"diffuse\",le=\"0.01\"}"
                      "trident_stage_latency_seconds_bucket{stage=\"diffuse\",le=\"300\"}"
                      "trident_dispatch_solve_seconds_bucket{source=\"greedy\",le=\"0.0005\"}"
                      "trident_serving_state{state=\"ready\"} 1" ] do
            Expect.stringContains text line "the exposition has it"
        let succeeded =
            text.Split('\n') |> Array.find (fun l -> l.StartsWith "trident_requests_total{outcome=\"succeeded\"}")
        Expect.isGreaterThanOrEqual (float (succeeded.Split(' ').[1])) 1.0 "a succeeded request is counted"
        for line in text.Split('\n') do
            if line.Length > 0 && not (line.StartsWith "#") then Expect.stringStarts line "trident_" "only trident_ series"
        use wrong = post client "/metrics" "{}"
        Expect.equal wrong.StatusCode HttpStatusCode.MethodNotAllowed "POST /metrics is 405"

let ``the OpenAPI document describes every route: summary, examples, and problem+json error answers`` =
    testCase "the OpenAPI document describes every route: summary, examples, and problem+json error answers" <| fun () ->
        let o = observed.Value
        let client = readyClient o.Factory
        let doc = json (get client ApiDocs.DocumentPath)
        let paths = doc.GetProperty("paths")
        // every HTTP route the server maps (but the document, its page and the web view's page at /) is in the document
        let sources = o.Factory.Services.GetServices<EndpointDataSource>()
        let routes =
            [ for source in sources do
                for e in source.Endpoints do
                    match e with
                    | :? RouteEndpoint as r when not (isNull (r.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>())) ->
                        let pattern = "/" + r.RoutePattern.RawText.Trim('/')
                        let template = Regex.Replace(pattern, "\{(\w+)(:[^}]*)?\}", "{$1}")
                        if not (template.StartsWith ApiDocs.PagePath || template.StartsWith "/openapi" || template = "/") then
                            // HEAD is GET without a body (HeadRequests): the document lists the route once, as GET
                            for m in r.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>().HttpMethods do
                                if m <> "HEAD" then yield template, m.ToLowerInvariant()
                    | _ -> () ]
            |> List.distinct
        Expect.isGreaterThanOrEqual routes.Length 12 "the routes were found"
        for path, verb in routes do
            let mutable item = Unchecked.defaultof<JsonElement>
            Expect.isTrue (paths.TryGetProperty(path, &item)) (sprintf "%s is in the document" path)
            let mutable op = Unchecked.defaultof<JsonElement>
            Expect.isTrue (item.TryGetProperty(verb, &op)) (sprintf "%s %s is in the document" verb path)
            let name = sprintf "%s %s" (verb.ToUpperInvariant()) path
            Expect.isNotEmpty (op.GetProperty("summary").GetString()) (name + " has a summary")
            let mutable body = Unchecked.defaultof<JsonElement>
            if op.TryGetProperty("requestBody", &body) then
                for media in body.GetProperty("content").EnumerateObject() do
                    Expect.isTrue (media.Value.TryGetProperty("example", &item)) (name + " has a request example")
            let responses = [ for r in op.GetProperty("responses").EnumerateObject() -> r.Name, r.Value ]
            Expect.exists responses (fun (code, _) -> code.StartsWith "2") (name + " documents its success")
            for code, response in responses do
                let mutable content = Unchecked.defaultof<JsonElement>
                Expect.isTrue (response.TryGetProperty("content", &content)) (sprintf "%s %s has a body" name code)
                for media in content.EnumerateObject() do
                    if int code >= 400 then Expect.equal media.Name "application/problem+json" (sprintf "%s %s is a problem" name code)
                    let mutable schema = Unchecked.defaultof<JsonElement>
                    Expect.isTrue (media.Value.TryGetProperty("schema", &schema)) (sprintf "%s %s has a schema" name code)
                    // binary bodies (images, videos) have a schema but no example
                    let binary = media.Name.StartsWith "image/" || media.Name.StartsWith "video/" || media.Name = "application/octet-stream"
                    if not binary then
                        Expect.isTrue (media.Value.TryGetProperty("example", &schema)) (sprintf "%s %s %s has an example" name code media.Name)
        // the routes that can refuse work say so
        let codes (path: string) (verb: string) =
            [ for r in paths.GetProperty(path).GetProperty(verb).GetProperty("responses").EnumerateObject() -> r.Name ] |> Set.ofList
        Expect.isTrue (Set.isSubset (set [ "202"; "400"; "413"; "415"; "429"; "503" ]) (codes "/v1/generations" "post")) "POST /v1/generations"
        Expect.isTrue (Set.isSubset (set [ "200"; "404"; "503" ]) (codes "/v1/generations/{id}" "get")) "GET /v1/generations/{id}"

let ``the OpenAPI document's request bodies say what the routes accept: numbers as numbers, required only what is`` =
    testCase "the OpenAPI document's request bodies say what the routes accept: numbers as numbers, required only what is" <| fun () ->
        let client = observed.Value.Factory.CreateClient()
        let doc = json (get client ApiDocs.DocumentPath)
        let schemas = doc.GetProperty("components").GetProperty("schemas")
        let schemaOf (e: JsonElement) =
            let mutable r = Unchecked.defaultof<JsonElement>
            if e.TryGetProperty("$ref", &r) then schemas.GetProperty(r.GetString().Substring("#/components/schemas/".Length)) else e
        let requiredOf (s: JsonElement) =
            let mutable r = Unchecked.defaultof<JsonElement>
            if s.TryGetProperty("required", &r) then set [ for x in r.EnumerateArray() -> x.GetString() ] else Set.empty
        let typesOf (s: JsonElement) =
            let mutable t = Unchecked.defaultof<JsonElement>
            if not (s.TryGetProperty("type", &t)) then Set.empty
            elif t.ValueKind = JsonValueKind.Array then set [ for x in t.EnumerateArray() -> x.GetString() ]
            else set [ t.GetString() ]
        // each route's body: what its validation refuses when missing (prompt; the chat route's messages)
        for path, required in [ "/v1/generations", set [ "prompt" ]; "/v1/images/generations", set [ "prompt" ]
                                "/v1/videos", set [ "prompt" ]; "/v1/chat/completions", set [ "messages" ] ] do
            let content = doc.GetProperty("paths").GetProperty(path).GetProperty("post").GetProperty("requestBody").GetProperty("content")
            for media in content.EnumerateObject() do
                let body = schemaOf (media.Value.GetProperty("schema"))
                Expect.equal (requiredOf body) required (sprintf "POST %s (%s): required" path media.Name)
                for p in body.GetProperty("properties").EnumerateObject() do
                    let types = typesOf p.Value
                    if types.Contains "integer" || types.Contains "number" then
                        Expect.isFalse (types.Contains "string") (sprintf "POST %s: %s is a JSON number only (a string is refused)" path p.Name)
                        let mutable pattern = Unchecked.defaultof<JsonElement>
                        Expect.isFalse (p.Value.TryGetProperty("pattern", &pattern)) (sprintf "POST %s: %s has no digits pattern" path p.Name)
        let generation = schemas.GetProperty("GenerationRequestDto").GetProperty("properties")
        for field in [ "width"; "height"; "frames"; "steps"; "seed"; "deadline_ms"; "priority"; "num_images"; "fps" ] do
            Expect.equal (typesOf (generation.GetProperty field)) (set [ "null"; "integer" ]) (sprintf "%s: an integer (or null)" field)
        Expect.equal (typesOf (generation.GetProperty "guidance")) (set [ "null"; "number" ]) "guidance: a number (or null)"
        Expect.equal (requiredOf (schemas.GetProperty "ChatMessageDto")) (set [ "role"; "content" ]) "a chat message: role and content"
        // the headers the routes send
        let headersOf (path: string) (verb: string) (code: string) =
            let response = doc.GetProperty("paths").GetProperty(path).GetProperty(verb).GetProperty("responses").GetProperty(code)
            let mutable h = Unchecked.defaultof<JsonElement>
            if response.TryGetProperty("headers", &h) then set [ for x in h.EnumerateObject() -> x.Name ] else Set.empty
        Expect.contains (headersOf "/v1/generations" "post" "202") "Location" "a 202 names the job's status URL"
        Expect.contains (headersOf "/v1/generations/{id}" "delete" "202") "Location" "a cancel's 202 too"
        for path, verb in [ "/v1/generations", "post"; "/v1/images/generations", "post"; "/v1/videos", "post"; "/v1/chat/completions", "post" ] do
            Expect.contains (headersOf path verb "429") "Retry-After" (sprintf "%s %s 429: Retry-After" verb path)
            Expect.contains (headersOf path verb "503") "Retry-After" (sprintf "%s %s 503: Retry-After" verb path)
        Expect.contains (headersOf "/ready" "get" "503") "Retry-After" "GET /ready 503: Retry-After"

let ``/docs is Scalar's page over the document and loads nothing from outside the server`` =
    testCase "/docs is Scalar's page over the document and loads nothing from outside the server" <| fun () ->
        let client = readyClient observed.Value.Factory
        use page = get client ApiDocs.PagePath
        Expect.equal page.StatusCode HttpStatusCode.OK "the page (after its redirect) answers"
        let url = page.RequestMessage.RequestUri
        let html = page.Content.ReadAsStringAsync().Result
        Expect.stringContains html "<script" "it is a page with scripts"
        let refs =
            [ for m in Regex.Matches(html, "(?:src|href)\\s*=\\s*\"([^\"]*)\"") -> m.Groups.[1].Value ]
            @ [ for m in Regex.Matches(html, "\"(?:url|favicon)\"\\s*:\\s*\"([^\"]*)\"") -> m.Groups.[1].Value ]
        Expect.isGreaterThanOrEqual refs.Length 3 "the script, its module and the document are referenced"
        Expect.isEmpty [ for m in Regex.Matches(html, "(?:https?:)?//[A-Za-z0-9.-]+") -> m.Value ] "no absolute or protocol-relative URL in the page"
        for r in refs do
            // relative references resolve on this server: the scripts beside the page, the document from the root
            let target = if r.StartsWith "openapi/" then Uri(url, "/" + r) else Uri(url, r)
            use asset = client.GetAsync(target).Result
            Expect.equal asset.StatusCode HttpStatusCode.OK (sprintf "%s is served by the server" r)

let private example () =
    ConfigurationBuilder().AddJsonStream(new MemoryStream(Text.Encoding.UTF8.GetBytes(Trident.Api.Cli.ConfigCommand.Example()))).Build()

/// Every configuration key of TridentOptions, as "Section:Key" paths.
let rec private keys (prefix: string) (t: Type) =
    [ for p in t.GetProperties() do
        if p.CanWrite then
            let path = prefix + ":" + p.Name
            if p.PropertyType.IsClass && p.PropertyType <> typeof<string> && not p.PropertyType.IsArray then yield! keys path p.PropertyType
            else yield path ]

let ``the example configuration has every key with its default and binds strictly`` =
    testCase "the example configuration has every key with its default and binds strictly" <| fun () ->
        let config = example ()
        Expect.isEmpty (Trident.Api.Cli.ConfigCommand.Check config) "the example binds strictly and validates"
        let present = config.AsEnumerable() |> Seq.map (fun kv -> kv.Key) |> Set.ofSeq
        for key in keys TridentOptions.Section typeof<TridentOptions> do
            Expect.isTrue (present.Contains key || present.Contains(key + ":0")) (sprintf "%s is in the example" key)
        let bound = TridentOptions()
        Expect.isEmpty (StrictBinding.Bind(config.GetSection TridentOptions.Section, bound)) "every key of the example is known"
        Expect.equal (JsonSerializer.Serialize bound) (JsonSerializer.Serialize(TridentOptions())) "every value in the example is the default"

/// The keys docs/serving.md's configuration table names: each row's first cell, where "`A:B:C` / `D`" names A:B:C and
/// its sibling A:B:D.
let private documentedKeys () =
    let rec root (d: DirectoryInfo) = if File.Exists(Path.Combine(d.FullName, "Trident.sln")) then d.FullName else root d.Parent
    let doc = File.ReadAllLines(Path.Combine(root (DirectoryInfo AppContext.BaseDirectory), "docs", "serving.md"))
    [ for line in doc do
        if line.StartsWith "| `" then
            let cell = line.Split('|').[1]
            let names = cell.Split('/') |> Array.map (fun n -> n.Trim().Trim('`'))
            let first = names.[0]
            yield first
            let parent = first.Substring(0, max 0 (first.LastIndexOf ':'))
            for sibling in names |> Array.skip 1 do yield parent + ":" + sibling ]
    |> Set.ofList

let ``every key config --defaults prints is in docs/serving.md's table`` =
    testCase "every key config --defaults prints is in docs/serving.md's table" <| fun () ->
        let documented = documentedKeys ()
        let printed =
            example().AsEnumerable()
            |> Seq.filter (fun kv -> not (isNull kv.Value))
            // a list's elements (Devices:Degrees:0) are its key's
            |> Seq.map (fun kv -> System.Text.RegularExpressions.Regex.Replace(kv.Key, ":[0-9]+$", ""))
            |> Set.ofSeq
        let missing = printed |> Set.filter (fun k -> not (documented |> Set.exists (fun d -> String.Equals(d, k, StringComparison.OrdinalIgnoreCase))))
        Expect.isEmpty missing "every key of the example file has a row in docs/serving.md's table"

let ``logs are text on a terminal and compact JSON otherwise, each line with the trace id of its span`` =
    testCase "logs are text on a terminal and compact JSON otherwise, each line with the trace id of its span" <| fun () ->
        Expect.isTrue (TridentHosting.IsJson("auto", true)) "auto, redirected: JSON"
        Expect.isFalse (TridentHosting.IsJson("auto", false)) "auto, terminal: text"
        Expect.isTrue (TridentHosting.IsJson("json", false)) "json: JSON"
        Expect.isFalse (TridentHosting.IsJson("text", true)) "text: text"
        use source = new ActivitySource("Trident.Tests.Logs")
        use listener = new ActivityListener(ShouldListenTo = (fun s -> s.Name = source.Name), Sample = (fun _ -> ActivitySamplingResult.AllData))
        ActivitySource.AddActivityListener listener
        for json in [ true; false ] do
            let written = new StringWriter()
            let sink =
                { new ILogEventSink with
                    member _.Emit e = (TridentHosting.Formatter json).Format(e, written) }
            use logger = TridentHosting.CreateLogger("Information", (if json then "json" else "text"), false, sink)
            use span = source.StartActivity("work")
            logger.ForContext(Constants.SourceContextPropertyName, "Test").Information("job {Request} done", 7)
            let line = written.ToString()
            let trace = span.TraceId.ToHexString()
            if json then
                let e = JsonDocument.Parse(line).RootElement
                Expect.equal (e.GetProperty("@tr").GetString()) trace "JSON: @tr is the span's trace id"
                Expect.equal (e.GetProperty("Request").GetInt32()) 7 "JSON: the properties are fields"
            else
                Expect.stringContains line "job 7 done" "text: the rendered message"
                Expect.stringContains line (" trace=" + trace) "text: the trace id"

let ``bad log format and telemetry settings are named by the validator`` =
    testCase "bad log format and telemetry settings are named by the validator" <| fun () ->
        let config =
            ConfigurationBuilder()
                .AddInMemoryCollection(dict [ "Trident:LogFormat", "xml"; "Trident:Telemetry:OtlpEndpoint", "localhost:4317"
                                              "Trident:Telemetry:OtlpProtocol", "udp"; "Trident:Telemetry:Endpoint", "x" ])
                .Build()
        let problems = Trident.Api.Cli.ConfigCommand.Check config |> String.concat "\n"
        for key in [ "Trident:LogFormat"; "Trident:Telemetry:OtlpEndpoint"; "Trident:Telemetry:OtlpProtocol"; "Trident:Telemetry:Endpoint" ] do
            Expect.stringContains problems key (sprintf "%s is named" key)

[<Tests>]
let integrationTests =
    testList "integration" [
        testList "ObservabilityTests" [
            ``a generation is one trace: queue, dispatch round, each stage and each transfer are children of its root span``
            ``/metrics is OpenTelemetry's Prometheus output: counters, histograms with the instruments' buckets, gauges, nothing but trident_ series``
            ``the OpenAPI document describes every route: summary, examples, and problem+json error answers``
            ``the OpenAPI document's request bodies say what the routes accept: numbers as numbers, required only what is``
            ``/docs is Scalar's page over the document and loads nothing from outside the server``
        ] |> testSequenced ]

/// A clock the test moves by hand (timestamps in ticks of 1 s granularity are enough here).
type private SteppedTime() =
    inherit TimeProvider()
    let mutable ticks = 0L
    member _.Advance(seconds: float) = ticks <- ticks + int64 (seconds * float TimeSpan.TicksPerSecond)
    override _.TimestampFrequency = TimeSpan.TicksPerSecond
    override _.GetTimestamp() = ticks

let ``a server profiling at start logs the first point, then a line at most every 10 s, then when it is done`` =
    testCase "a server profiling at start logs the first point, then a line at most every 10 s, then when it is done" <| fun () ->
        let lines = ConcurrentQueue<string>()
        let log =
            { new Microsoft.Extensions.Logging.ILogger with
                member _.BeginScope _ = null
                member _.IsEnabled _ = true
                member _.Log(_, _, state, ex, formatter) = lines.Enqueue(formatter.Invoke(state, ex)) }
        let time = SteppedTime()
        let progress = Trident.Api.Hosting.ProfilingProgress(log, time) :> IProgress<Trident.Runtime.Profiling.MeasuredPoint>
        let point stage (side: int) degree seconds =
            Trident.Runtime.Profiling.MeasuredPoint(stage, { Shape = Trident.Scheduling.Shape.image side side; Degree = degree; Seconds = seconds * 1.0<Trident.Scheduling.Units.s>; PeakActivation = 0.0<Trident.Scheduling.Units.GB> })
        progress.Report(point Trident.Scheduling.Stage.Encode 64 1 0.012)
        time.Advance 4.0
        progress.Report(point Trident.Scheduling.Stage.Diffuse 64 1 0.25)  // within 10 s of the first line: quiet
        time.Advance 7.0
        progress.Report(point Trident.Scheduling.Stage.Diffuse 128 2 0.5)  // 11 s after it: a line
        time.Advance 1.0
        progress.Report(point Trident.Scheduling.Stage.Decode 128 1 0.03)
        time.Advance 2.0
        (progress :?> Trident.Api.Hosting.ProfilingProgress).Done()
        Expect.equal (List.ofSeq lines)
            [ "Profiling: 1 point(s) measured in 0 s; last encode 64x64 at degree 1: 0.012 s"
              "Profiling: 3 point(s) measured in 11 s; last diffuse 128x128 at degree 2: 0.5 s per step"
              "Profiling: done, 4 point(s) measured in 14 s" ] "first, throttled, done"

[<Tests>]
let unitTests =
    testList "unit" [
        testList "ObservabilityTests" [
            ``the example configuration has every key with its default and binds strictly``
            ``every key config --defaults prints is in docs/serving.md's table``
            ``logs are text on a terminal and compact JSON otherwise, each line with the trace id of its span``
            ``bad log format and telemetry settings are named by the validator``
            ``a server profiling at start logs the first point, then a line at most every 10 s, then when it is done``
        ] ]
