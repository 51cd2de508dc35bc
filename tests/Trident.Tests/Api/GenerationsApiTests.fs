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
open Expecto
open Trident.Runtime.Imaging
open Trident.Tests.Runtime
open Trident.Tests.Api.ApiFixture
open Trident.Tests.TestSupport

/// The server every GenerationsApiTests test talks to (xunit's class fixture): started on first use.
let private defaultServer = Fixture(fun () -> new DefaultServer())

/// Every route of the application (a route added later too): its methods, its pattern (group prefix included) and its
/// metadata.
let private routesOf (services: IServiceProvider) =
    Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetServices<Microsoft.AspNetCore.Routing.EndpointDataSource>(services)
    |> Seq.collect (fun source -> source.Endpoints)
    |> Seq.choose (fun e ->
        match e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.IHttpMethodMetadata>(), e with
        | null, _ -> None
        | methods, (:? Microsoft.AspNetCore.Routing.RouteEndpoint as r) -> Some(List.ofSeq methods.HttpMethods, r.RoutePattern.RawText, r.Metadata)
        | _ -> None)
    |> List.ofSeq

let ``a generation is accepted, served through every stage, and its result is a PNG of the requested size`` =
    testCase "a generation is accepted, served through every stage, and its result is a PNG of the requested size" <| fun () ->
        let client = readyClient defaultServer.Value
        use r = post client "/v1/generations" """{"prompt":"a red fox in fresh snow","width":128,"height":64,"steps":3,"seed":11}"""
        Expect.equal r.StatusCode HttpStatusCode.Accepted "r.StatusCode"
        let accepted = json r
        let id = accepted.GetProperty("id").GetString()
        Expect.equal r.Headers.Location.OriginalString (sprintf "/v1/generations/%s" id) "r.Headers.Location.OriginalString"
        Expect.equal (accepted.GetProperty("events_url").GetString()) (sprintf "/v1/generations/%s/events" id) "accepted.GetProperty(\"events_url\").GetString()"
        let final = pollUntil client 120.0 id isFinal
        Expect.equal (status final) "succeeded" "status final"
        Expect.equal (final.GetProperty("step").GetInt32()) 3 "final.GetProperty(\"step\").GetInt32()"
        let timings = final.GetProperty("timings")
        for stage in [ "encode"; "diffuse"; "decode" ] do
            Expect.isTrue (timings.GetProperty(stage).GetProperty("duration_ms").GetDouble() > 0.0) (stage + " has a duration")
        let route = final.GetProperty("route")
        // alone on the server it takes every device its degree can efficiently use (the latency term)
        Expect.equal (route.GetProperty("diffuse_devices").GetArrayLength()) (route.GetProperty("degree").GetInt32()) "one diffuse device per degree"
        Expect.isGreaterThanOrEqual (route.GetProperty("degree").GetInt32()) 1 "degree"
        let plannedBy = route.GetProperty("planned_by").GetString()
        Expect.isTrue (plannedBy.StartsWith "mip" || plannedBy.StartsWith "greedy") ("the route says how its plan was made: " + plannedBy)
        Expect.equal (final.GetProperty("deadline").GetProperty("source").GetString()) "slo" "final.GetProperty(\"deadline\").GetProperty(\"source\").GetString()"
        Expect.contains ([ JsonValueKind.True; JsonValueKind.False ]) (final.GetProperty("deadline").GetProperty("met").ValueKind) "[ JsonValueKind.True; JsonValueKind.False ]"
        // the deadline's wall-clock time is its own acceptance time + deadline.ms (never before created_at)
        let createdAt = final.GetProperty("created_at").GetDateTimeOffset()
        let deadlineAt = final.GetProperty("deadline").GetProperty("at").GetDateTimeOffset()
        let deadlineMs = final.GetProperty("deadline").GetProperty("ms").GetDouble()
        Expect.isGreaterThan deadlineMs 0.0 "deadline.ms"
        Expect.isLessThanOrEqual (abs ((deadlineAt - createdAt).TotalMilliseconds - deadlineMs)) 1.0 "deadline.at = created_at + deadline.ms"
        use png = get client (sprintf "/v1/generations/%s/result" id)
        Expect.equal png.StatusCode HttpStatusCode.OK "png.StatusCode"
        Expect.equal png.Content.Headers.ContentType.MediaType "image/png" "png.Content.Headers.ContentType.MediaType"
        let image = MediaChecks.decodeImage (png.Content.ReadAsByteArrayAsync().Result)
        Expect.equal ((image.Width, image.Height)) ((128, 64)) "(image.Width, image.Height)"

let ``a video request yields an MP4 with every frame at the server's frame rate`` =
    testCase "a video request yields an MP4 with every frame at the server's frame rate" <| fun () ->
        let client = readyClient defaultServer.Value
        let id = submit client """{"prompt":"waves","width":64,"height":64,"frames":5,"steps":2}"""
        Expect.equal (status (pollUntil client 120.0 id isFinal)) "succeeded" "status (pollUntil client 120.0 id isFinal)"
        use mp4 = get client (sprintf "/v1/generations/%s/result" id)
        Expect.equal mp4.Content.Headers.ContentType.MediaType "video/mp4" "a video is an MP4 by default"
        let v = MediaChecks.probeVideo (mp4.Content.ReadAsByteArrayAsync().Result) "mp4"
        Expect.equal (v.Codec, v.Frames, v.Width, v.Height) ("h264", 5, 64, 64) "codec, frames, size"
        Expect.floatClose Accuracy.medium v.FrameRate 8.0 "Trident:Serving:VideoFramesPerSecond"

let ``bad input gets one 400 problem naming every bad field`` =
    testCase "bad input gets one 400 problem naming every bad field" <| fun () ->
        let client = readyClient defaultServer.Value
        use r = post client "/v1/generations" """{"prompt":" ","width":100,"height":4096,"frames":0,"steps":0,"seed":-1,"guidance":-2,"deadline_ms":0}"""
        Expect.equal r.StatusCode HttpStatusCode.BadRequest "r.StatusCode"
        Expect.equal r.Content.Headers.ContentType.MediaType "application/problem+json" "r.Content.Headers.ContentType.MediaType"
        Expect.equal
            (errorsOf r)
            (set [ "prompt"; "width"; "height"; "frames"; "steps"; "seed"; "guidance"; "deadline_ms" ]: Set<string>)
            "errorsOf r"

let ``a size field's problems name each wrong side and its value; width and height fields name themselves`` =
    testCase "a size field's problems name each wrong side and its value; width and height fields name themselves" <| fun () ->
        let client = readyClient defaultServer.Value
        let messages (r: HttpResponseMessage) =
            Expect.equal r.StatusCode HttpStatusCode.BadRequest "400"
            [ for p in (json r).GetProperty("errors").EnumerateObject() do
                  for m in p.Value.EnumerateArray() -> p.Name, m.GetString() ]
        // before: "size": ["must be a multiple of 16", "must be a multiple of 16"], not saying which side
        use both = post client "/v1/images/generations" """{"prompt":"x","size":"100x100"}"""
        Expect.equal (messages both) [ "size", "width 100 must be a multiple of 16"; "size", "height 100 must be a multiple of 16" ] "each side named with its value"
        use one = post client "/v1/images/generations" """{"prompt":"x","size":"64x2000"}"""
        Expect.equal (messages one) [ "size", "height 2000 must be between 64 and 1024" ] "only the wrong side"
        // a server limit above the pipeline's maximum is not said beside the pipeline's range (before: frames "must be
        // between 1 and 9" and "must be at most 17 (server limit)", two bounds for one field)
        use frames = post client "/v1/generations" """{"prompt":"x","frames":1000}"""
        Expect.equal (messages frames) [ "frames", "must be between 1 and 9" ] "the pipeline's range alone"
        // the video route's size too: before, its problems were filed under width and height, fields the client did not send
        use video = post client "/v1/videos" """{"prompt":"x","size":"100x64","num_frames":5}"""
        Expect.equal (messages video) [ "size", "width 100 must be a multiple of 16" ] "the video route names the side under size"
        // width and height fields are their own names: the message stays as it was
        use native = post client "/v1/generations" """{"prompt":"x","width":100,"height":100}"""
        Expect.equal (messages native) [ "width", "must be a multiple of 16"; "height", "must be a multiple of 16" ] "the native route's fields"

let ``a negative prompt no classifier-free pass would read is refused on every route, naming negative_prompt and why`` =
    testCase "a negative prompt no classifier-free pass would read is refused on every route, naming negative_prompt and why" <| fun () ->
        let client = readyClient defaultServer.Value
        let refused (path: string) (body: string) (why: string) =
            use r = post client path body
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (sprintf "%s %s" path body)
            let errors = (json r).GetProperty("errors")
            Expect.equal [ for p in errors.EnumerateObject() -> p.Name ] [ "negative_prompt" ] (sprintf "%s: only negative_prompt is named" path)
            let message = errors.GetProperty("negative_prompt").Item(0).GetString()
            Expect.stringContains message why (sprintf "%s: says why" path)
        // before: a 202, and an image byte for byte the one without it (at guidance 1 no unconditional pass runs)
        refused "/v1/generations" """{"prompt":"x","width":64,"height":64,"guidance":1,"seed":5,"negative_prompt":"blurry"}""" "guidance 1 runs no classifier-free guidance"
        refused "/v1/images/generations" """{"prompt":"x","size":"64x64","guidance":1,"negative_prompt":"blurry"}""" "guidance 1 runs no classifier-free guidance"
        refused "/v1/videos" """{"prompt":"x","num_frames":5,"guidance_scale":1,"negative_prompt":"blurry"}""" "guidance_scale 1 runs no classifier-free guidance"
        refused "/v1/chat/completions" """{"messages":[{"role":"user","content":"x"}],"guidance_scale":1,"negative_prompt":"blurry"}""" "guidance_scale 1 runs no classifier-free guidance"
        // the pipeline's default scale decides when the request gives none (the tiny pipeline's is 4: the pure rule here)
        let byDefault = Trident.Runtime.Pipelines.GuidanceSettings(true, 1.0)
        Expect.stringContains (byDefault.NegativePromptUnused(System.Nullable(), "guidance", "p")) "the pipeline's default guidance 1" "a default scale of 1"
        Expect.isNull (byDefault.NegativePromptUnused(System.Nullable 2.0, "guidance", "p")) "a scale other than 1 reads it"
        Expect.stringContains (Trident.Runtime.Pipelines.GuidanceSettings(false, 1.0).NegativePromptUnused(System.Nullable(), "guidance", "p")) "pipeline 'p' has no classifier-free guidance" "no classifier-free guidance at all"
        // with classifier-free guidance (given, or the default) it is taken, and guidance 1 alone is too
        for body in [ """{"prompt":"x","width":64,"height":64,"steps":1,"guidance":2,"negative_prompt":"blurry"}"""
                      """{"prompt":"x","width":64,"height":64,"steps":1,"negative_prompt":"blurry"}"""
                      """{"prompt":"x","width":64,"height":64,"steps":1,"guidance":1}""" ] do
            let id = submit client body
            client.DeleteAsync("/v1/generations/" + id).Result.Dispose()

let ``a field of the wrong type, or no JSON at all, is a 400 naming it`` =
    testCase "a field of the wrong type, or no JSON at all, is a 400 naming it" <| fun () ->
        let client = readyClient defaultServer.Value
        use typed = post client "/v1/generations" """{"prompt":"x","width":"wide"}"""
        Expect.equal typed.StatusCode HttpStatusCode.BadRequest "typed.StatusCode"
        Expect.equal (errorsOf typed) (set [ "width" ]: Set<string>) "errorsOf typed"
        use empty = post client "/v1/generations" ""
        Expect.equal empty.StatusCode HttpStatusCode.BadRequest "empty.StatusCode"

let ``an unknown generation is 404 on every route`` =
    testCase "an unknown generation is 404 on every route" <| fun () ->
        let client = readyClient defaultServer.Value
        for path in [ "/v1/generations/999999"; "/v1/generations/999999/result"; "/v1/generations/999999/events" ] do
            use r = get client path
            Expect.equal r.StatusCode HttpStatusCode.NotFound "r.StatusCode"
        use d = client.DeleteAsync("/v1/generations/999999").Result
        Expect.equal d.StatusCode HttpStatusCode.NotFound "d.StatusCode"

/// The priority the scheduler uses (absent = 0) and the deadline the job was given are echoed by the 202 and the
/// status; before, only the web view's queue showed the priority and the 202 showed no deadline.
let ``the 202 and the status echo the priority and the deadline, 0 when no priority is sent`` =
    testCase "the 202 and the status echo the priority and the deadline, 0 when no priority is sent" <| fun () ->
        let client = readyClient defaultServer.Value
        let check (body: string) (priority: int) (source: string) =
            use r = post client "/v1/generations" body
            Expect.equal r.StatusCode HttpStatusCode.Accepted (body + ": 202")
            let accepted = json r
            let id = accepted.GetProperty("id").GetString()
            Expect.equal (accepted.GetProperty("priority").GetInt32()) priority (body + ": the 202's priority")
            let final = pollUntil client 120.0 id isFinal
            Expect.equal (final.GetProperty("priority").GetInt32()) priority (body + ": the status's priority")
            let shown = accepted.GetProperty("deadline")
            let real = final.GetProperty("deadline")
            Expect.equal (shown.GetProperty("source").GetString()) source (body + ": the 202's deadline source")
            Expect.equal (shown.GetProperty("met").ValueKind) JsonValueKind.Null (body + ": met is unknown at the 202")
            Expect.equal (shown.GetProperty("ms").GetDouble()) (real.GetProperty("ms").GetDouble()) (body + ": the 202's deadline.ms is the status's")
            Expect.equal (shown.GetProperty("at").GetDateTimeOffset()) (real.GetProperty("at").GetDateTimeOffset()) (body + ": the 202's deadline.at is the status's")
        check """{"prompt":"urgent","steps":2,"priority":2,"deadline_ms":60000}""" 2 "client"
        check """{"prompt":"plain","steps":2}""" 0 "slo"
        check """{"prompt":"null","steps":2,"priority":null}""" 0 "slo"
        check """{"prompt":"low","steps":2,"priority":-3}""" -3 "slo"

/// The OpenAI-compatible routes take Trident's `priority` and `deadline_ms` as extension fields (the `openai` clients
/// send them in `extra_body`; vLLM's server takes `priority` the same way) and hand them to the scheduler as the native
/// route does: the video object echoes both, the images' and the chat's jobs show them in their status, and a priority
/// out of range is a 400 naming it on every route. Before, each was a 400 "unknown field" and a video had no priority.
let ``the OpenAI-compatible routes take priority and deadline_ms and the video object echoes them`` =
    testCase "the OpenAI-compatible routes take priority and deadline_ms and the video object echoes them" <| fun () ->
        let client = readyClient defaultServer.Value
        let jobStatus (id: string) = pollUntil client 120.0 id isFinal
        let expectUrgency (what: string) (shown: JsonElement) (priority: int) (source: string) =
            Expect.equal (shown.GetProperty("priority").GetInt32()) priority (what + ": priority")
            Expect.equal (shown.GetProperty("deadline").GetProperty("source").GetString()) source (what + ": deadline source")
            if source = "client" then
                Expect.equal (shown.GetProperty("deadline").GetProperty("ms").GetDouble()) 60000.0 (what + ": deadline ms")
        // videos: the 200 and the video object
        use video = post client "/v1/videos" """{"prompt":"x","size":"64x64","num_frames":5,"num_inference_steps":2,"priority":2,"deadline_ms":60000}"""
        Expect.equal video.StatusCode HttpStatusCode.OK "the video is queued"
        let created = json video
        expectUrgency "the video's 200" created 2 "client"
        let videoJob = created.GetProperty("id").GetString().Substring("video_".Length)
        jobStatus videoJob |> ignore
        expectUrgency "the video object" (json (get client ("/v1/videos/" + created.GetProperty("id").GetString()))) 2 "client"
        expectUrgency "the video's job status" (jobStatus videoJob) 2 "client"
        use plain = post client "/v1/videos" """{"prompt":"x","size":"64x64","num_frames":5,"num_inference_steps":2}"""
        expectUrgency "a video without them" (json plain) 0 "slo"
        // images: top level, as extra_body puts them
        use images = post client "/v1/images/generations" """{"prompt":"x","size":"64x64","steps":2,"n":2,"priority":-1,"deadline_ms":60000}"""
        Expect.equal images.StatusCode HttpStatusCode.OK "the images"
        for image in (json images).GetProperty("data").EnumerateArray() do
            expectUrgency "an image's job" (jobStatus (image.GetProperty("id").GetString())) -1 "client"
        // chat: top level or in extra_body
        use chat = post client "/v1/chat/completions" """{"messages":[{"role":"user","content":"x"}],"extra_body":{"height":64,"width":64,"num_inference_steps":2,"priority":3}}"""
        Expect.equal chat.StatusCode HttpStatusCode.OK "the chat completion"
        let chatJob = (json chat).GetProperty("id").GetString().Substring("chatcmpl-".Length)
        expectUrgency "the chat's job" (jobStatus chatJob) 3 "slo"
        // out of range: named on every route
        for path, body in [ "/v1/videos", """{"prompt":"x","num_frames":5,"priority":4}"""
                            "/v1/images/generations", """{"prompt":"x","priority":-4}"""
                            "/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"priority":9,"deadline_ms":0}""" ] do
            use r = post client path body
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (path + ": 400")
            let errors = (json r).GetProperty("errors")
            Expect.stringContains (errors.GetProperty("priority").Item(0).GetString()) "-3" (path + ": the priority's range")
            if body.Contains "deadline_ms" then
                Expect.stringContains (errors.GetProperty("deadline_ms").Item(0).GetString()) "between 1 and" (path + ": the deadline's range")

/// HEAD (RFC 9110 §9.3.2: GET's status and headers, no body) on every GET route — `curl -I`, load balancers' health
/// checks, a client asking a result's size. Before, every HEAD was a 405. Event streams stay GET only (a HEAD would hold
/// the connection open for a stream nobody reads).
let ``HEAD answers every GET route as GET does, and event streams stay GET only`` =
    testCase "HEAD answers every GET route as GET does, and event streams stay GET only" <| fun () ->
        let factory = defaultServer.Value
        let client = readyClient factory
        let id = submit client """{"prompt":"head","width":64,"height":64,"steps":1}"""
        pollUntil client 120.0 id isFinal |> ignore
        let head (path: string) =
            use request = new HttpRequestMessage(HttpMethod.Head, path)
            client.SendAsync(request).Result
        for path in [ "/health"; "/ready"; "/v1/models"; "/v1/cluster"; "/v1/plan"; "/v1/profile"; "/metrics"; "/openapi/v1.json"
                      "/v1/generations/" + id; "/v1/generations/" + id + "/result"; "/v1/generations/999999"; "/v1/videos/video_999999" ] do
            use g = get client path
            use h = head path
            Expect.equal h.StatusCode g.StatusCode (path + ": HEAD's status is GET's")
            Expect.equal (string h.Content.Headers.ContentType) (string g.Content.Headers.ContentType) (path + ": HEAD's media type is GET's")
        use result = get client ("/v1/generations/" + id + "/result")
        use resultHead = head ("/v1/generations/" + id + "/result")
        Expect.equal resultHead.Content.Headers.ContentLength (Nullable(int64 (result.Content.ReadAsByteArrayAsync().Result.Length)))
            "a result's HEAD gives its length"
        for path in [ "/v1/generations/" + id + "/events"; "/v1/view/events" ] do
            use h = head path
            Expect.equal h.StatusCode HttpStatusCode.MethodNotAllowed (path + ": an event stream is GET only")
        // every GET route of the application has HEAD, except the event streams: a route added later is covered too
        let endpoints =
            [ for methods, pattern, metadata in routesOf factory.Services do
                  if List.contains "GET" methods then
                      pattern, List.contains "HEAD" methods, Trident.Api.Hosting.HeadRequests.IsEventStream metadata ]
        Expect.isGreaterThan endpoints.Length 10 "the GET routes are found"
        for pattern, hasHead, stream in endpoints do
            Expect.equal hasHead (not stream) (sprintf "%s: HEAD unless an event stream" pattern)
        Expect.equal (endpoints |> List.filter (fun (_, _, s) -> s) |> List.length) 2 "two event streams (a job's, the view's)"

/// The list routes (GET /v1/generations, GET /v1/videos: OpenAI's cursor pagination) page through the jobs held:
/// newest first by default, `after` the previous page's last_id, `limit`, `order`, and on the native route a status
/// filter; /v1/videos lists videos only; a bad parameter is a 400 naming it. Before, both were 405s.
let ``the list routes page through the jobs held, newest first, and name a bad parameter`` =
    testCase "the list routes page through the jobs held, newest first, and name a bad parameter" <| fun () ->
        let client = readyClient defaultServer.Value
        let images = [ for i in 1..3 -> submit client (sprintf """{"prompt":"list %d","width":64,"height":64,"steps":1}""" i) ]
        let videos =
            [ for _ in 1..2 ->
                use r = post client "/v1/videos" """{"prompt":"list","size":"64x64","num_frames":5,"num_inference_steps":1}"""
                (json r).GetProperty("id").GetString() ]
        for id in images @ (videos |> List.map (fun v -> v.Substring 6)) do pollUntil client 120.0 id isFinal |> ignore
        // every page of a route, following last_id
        let pages (path: string) (query: string) =
            let rec next (after: string option) acc =
                let url = path + "?limit=2" + query + (after |> Option.map (fun a -> "&after=" + a) |> Option.defaultValue "")
                use r = get client url
                Expect.equal r.StatusCode HttpStatusCode.OK (url + ": 200")
                let page = json r
                Expect.equal (page.GetProperty("object").GetString()) "list" "a list object"
                let ids = [ for d in page.GetProperty("data").EnumerateArray() -> d.GetProperty("id").GetString() ]
                Expect.isLessThanOrEqual ids.Length 2 "at most limit jobs on a page"
                if not ids.IsEmpty then
                    Expect.equal (page.GetProperty("first_id").GetString()) ids.Head "first_id"
                    Expect.equal (page.GetProperty("last_id").GetString()) (List.last ids) "last_id"
                if page.GetProperty("has_more").GetBoolean() then next (Some(List.last ids)) (acc @ ids) else acc @ ids
            next None []
        let number (id: string) = int64 (id.Replace("video_", ""))
        let all = pages "/v1/generations" ""
        Expect.equal (all |> List.map number) (all |> List.map number |> List.sortDescending |> List.distinct) "newest first, no job twice"
        for id in images @ (videos |> List.map (fun v -> v.Substring 6)) do Expect.contains all id (id + " is listed")
        let ascending = pages "/v1/generations" "&order=asc"
        Expect.equal ascending (List.rev all) "order=asc is the same jobs oldest first"
        let listedVideos = pages "/v1/videos" ""
        for v in videos do Expect.contains listedVideos v (v + " is listed as a video")
        Expect.all listedVideos (fun v -> v.StartsWith "video_") "only videos on /v1/videos"
        Expect.isFalse (listedVideos |> List.exists (fun v -> List.contains (v.Substring 6) images)) "no image on /v1/videos"
        use succeeded = get client "/v1/generations?limit=100&status=succeeded"
        let statuses = [ for d in (json succeeded).GetProperty("data").EnumerateArray() -> d.GetProperty("status").GetString() ]
        Expect.isNonEmpty statuses "succeeded jobs are listed"
        Expect.all statuses ((=) "succeeded") "the status filter keeps only those"
        for path, field in [ "/v1/generations?limit=101", "limit"; "/v1/generations?limit=abc", "limit"; "/v1/videos?order=up", "order"
                             "/v1/videos?after=12", "after"; "/v1/generations?after=video_3", "after"; "/v1/generations?status=done", "status"
                             "/v1/generations?limt=5", "limt"; "/v1/videos?status=queued", "status" ] do
            use r = get client path
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (path + ": 400")
            Expect.equal (errorsOf r) (set [ field ]) (path + ": names " + field)
        // every unknown status is named, not only the last
        use twoBad = get client "/v1/generations?status=done,succeeded,later"
        let message = (json twoBad).GetProperty("errors").GetProperty("status").[0].GetString()
        Expect.stringContains message "'done', 'later' are not statuses" message

/// Every /v1 GET route (and the DELETEs and POSTs) names a query parameter it does not take in a 400, as the lists do; the event
/// streams take `api_key` (a browser's EventSource sets no headers). Before, /v1/view/events?foo=1 and every route but
/// the lists and /v1/plan/rounds ignored an unknown parameter without a word.
let ``every /v1 route names a query parameter it does not take, and the event streams take api_key`` =
    testCase "every /v1 GET, DELETE and POST route names a query parameter it does not take, and the event streams take api_key" <| fun () ->
        let factory = defaultServer.Value
        let client = readyClient factory
        let job = submit client """{"prompt":"query","width":64,"height":64,"steps":1}"""
        pollUntil client 120.0 job isFinal |> ignore
        use created = post client "/v1/videos" """{"prompt":"query","size":"64x64","num_frames":3,"num_inference_steps":1}"""
        let video = (json created).GetProperty("id").GetString()
        pollUntil client 120.0 (video.Substring 6) isFinal |> ignore
        let round = (json (get client "/v1/plan/rounds")).GetProperty("rounds").[0].GetProperty("round").GetInt64()
        let send (m: HttpMethod) (path: string) =
            use request = new HttpRequestMessage(m, path)
            client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Result
        // every GET and DELETE route of the application under /v1, with its parameters filled in
        let v1 =
            [ for methods, pattern, metadata in routesOf factory.Services do
                  if pattern.StartsWith "/v1" then
                      match methods |> List.tryFind (fun m -> m = "GET" || m = "DELETE") with
                      | Some m -> yield m, pattern, metadata
                      | None -> () ]
        let routes = v1 |> List.map (fun (m, pattern, _) -> m, pattern) |> List.distinct
        let fill (pattern: string) =
            let withVideo = if pattern.StartsWith "/v1/videos" then pattern.Replace("{id}", video) else pattern
            Text.RegularExpressions.Regex.Replace(withVideo, "\\{id[^/]*\\}", job).Replace("{n}", string round)
        Expect.isGreaterThanOrEqual routes.Length 15 "the GET and DELETE routes are found"
        for m, pattern in routes do
            let path = fill pattern
            use bad = send (HttpMethod m) (path + "?foo=1")
            let text = bad.Content.ReadAsStringAsync().Result
            Expect.equal bad.StatusCode HttpStatusCode.BadRequest (sprintf "%s %s?foo=1: %s" m path text)
            Expect.equal (errorsOf bad) (set [ "foo" ]) (sprintf "%s %s: names foo" m path)
        // every POST route under /v1 takes no query parameter: ?foo=1 is the one error (the body, empty here, is not
        // read) and nothing is queued — before, the query was ignored and the body's errors (or a job) came back
        let posts =
            [ for methods, pattern, _ in routesOf factory.Services do
                  if pattern.StartsWith "/v1" && List.contains "POST" methods then yield pattern ] |> List.distinct
        Expect.isGreaterThanOrEqual posts.Length 4 "the POST routes are found"
        let queuedBefore = (json (get client "/v1/generations?limit=100")).GetProperty("data").GetArrayLength()
        for pattern in posts do
            use bad = post client (pattern + "?foo=1") "{}"
            Expect.equal bad.StatusCode HttpStatusCode.BadRequest (sprintf "POST %s?foo=1: %s" pattern (bad.Content.ReadAsStringAsync().Result))
            Expect.equal (errorsOf bad) (set [ "foo" ]) (sprintf "POST %s: names foo only" pattern)
            Expect.stringContains (bad.Content.ReadAsStringAsync().Result) "takes no query parameters" (sprintf "POST %s: says it takes none" pattern)
        Expect.equal ((json (get client "/v1/generations?limit=100")).GetProperty("data").GetArrayLength()) queuedBefore "nothing was queued"
        // the view's stream: before, ?foo=1 was a stream like any other
        use view = send HttpMethod.Get "/v1/view/events?foo=1&jobs=1"
        Expect.equal view.StatusCode HttpStatusCode.BadRequest "an unknown parameter of the view's stream"
        Expect.stringContains (view.Content.ReadAsStringAsync().Result) "its parameters: jobs, api_key" "and what it takes"
        // the key in the query: the event streams only (without keys configured it is not checked, but taken)
        for path in [ "/v1/view/events?api_key=k&jobs=" + job; sprintf "/v1/generations/%s/events?api_key=k" job ] do
            use stream = send HttpMethod.Get path
            Expect.equal stream.StatusCode HttpStatusCode.OK (path + ": api_key is a parameter of an event stream")
            Expect.equal stream.Content.Headers.ContentType.MediaType "text/event-stream" path
        use cluster = send HttpMethod.Get "/v1/cluster?api_key=k"
        Expect.equal (errorsOf cluster) (set [ "api_key" ]) "no other route takes the key in its query"
        // the parameters a route takes are still taken
        use content = send HttpMethod.Get (sprintf "/v1/videos/%s/content?variant=video" video)
        Expect.equal content.StatusCode HttpStatusCode.OK "variant is a parameter of the content"
        // one filter checks them all, from what each handler declares (before, 14 handlers called the check by hand, and a
        // route without the call ignored an unknown parameter): each route carries the parameters it takes
        let taken =
            [ for m, pattern, metadata in v1 ->
                  match metadata.GetMetadata<Trident.Api.Endpoints.QueryParametersMetadata>() with
                  | null -> failtestf "%s %s carries no query parameters: it is not checked" m pattern
                  | q -> (m, pattern.TrimEnd '/'), List.ofSeq q.Names ]
            |> Map.ofList
        let takes (m: string) (pattern: string) = taken |> Map.tryFind (m, pattern) |> Option.defaultWith (fun () -> failtestf "no route %s %s among %A" m pattern (Map.keys taken))
        Expect.equal (takes "GET" "/v1/generations") [ "after"; "limit"; "order"; "status" ] "the native list"
        Expect.equal (takes "GET" "/v1/videos") [ "after"; "limit"; "order" ] "OpenAI's list"
        Expect.equal (takes "GET" "/v1/videos/{id}/content") [ "variant" ] "a video's content"
        Expect.equal (takes "GET" "/v1/view/events") [ "jobs"; "api_key" ] "the view's stream"
        Expect.equal (takes "GET" "/v1/generations/{id:long:regex(^[0-9]+$)}/events") [ "api_key" ] "a job's stream"
        for (m, pattern), names in Map.toList taken do
            if not (pattern.EndsWith "/events" || List.contains pattern [ "/v1/generations"; "/v1/videos"; "/v1/videos/{id}/content" ]) then
                Expect.isEmpty names (sprintf "%s %s takes no query parameter" m pattern)

/// A query parameter given more than once is a 400 saying so, as a key given twice in a body is. Before, the binding
/// joined the values: `limit=5&limit=6` was "must be a whole number from 0 to 100 (got '5,6')", and `order=asc&order=asc`
/// "must be 'asc' … (got 'asc,asc')".
let ``a query parameter given more than once is a 400 saying so, not its values joined`` =
    testCase "a query parameter given more than once is a 400 saying so, not its values joined" <| fun () ->
        let client = readyClient defaultServer.Value
        for path, field, values in [ "/v1/generations?limit=5&limit=6", "limit", "'5', '6'"
                                     "/v1/generations?status=queued&status=succeeded", "status", "'queued', 'succeeded'"
                                     "/v1/videos?order=asc&limit=2&order=asc", "order", "'asc', 'asc'"
                                     "/v1/view/events?jobs=1&jobs=2", "jobs", "'1', '2'" ] do
            use r = get client path
            let text = r.Content.ReadAsStringAsync().Result
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (sprintf "%s: %s" path text)
            Expect.equal (errorsOf r) (set [ field ]) (path + ": names " + field)
            let message = (json r).GetProperty("errors").GetProperty(field).[0].GetString()
            Expect.equal message (sprintf "is given more than once (a parameter may appear once; got %s)" values) path
            Expect.stringContains ((json r).GetProperty("detail").GetString()) (sprintf "a query parameter may be given once; got '%s' more than once" field) path
        // with an unknown one: both named
        use both = get client "/v1/generations?limt=5&limit=1&limit=2"
        Expect.equal (errorsOf both) (set [ "limt"; "limit" ]) "an unknown parameter and a repeated one"
        // once each is read as before
        use once = get client "/v1/generations?limit=5&order=asc"
        Expect.equal once.StatusCode HttpStatusCode.OK "each parameter once"

let ``cancelling a queued job cancels it at once, a running one at its next step, and a finished one is a conflict`` =
    testCase "cancelling a queued job cancels it at once, a running one at its next step, and a finished one is a conflict" <| fun () ->
        let client = readyClient defaultServer.Value
        // three long jobs on two devices: the first fills one device or both (a lone request's degree
        // grows, the latency term), the others run or wait
        let ids = [ for i in 1..3 -> submit client (sprintf """{"prompt":"long %d","steps":1500}""" i) ]
        pollUntil client 60.0 ids.Head (fun s -> s.GetProperty("step").GetInt32() >= 1) |> ignore
        let views = [ for id in ids -> id, json (get client ("/v1/generations/" + id)) ]
        let waiting = views |> List.filter (fun (_, v) -> status v = "queued")
        let running = views |> List.filter (fun (_, v) -> status v <> "queued") |> List.map fst
        Expect.isNonEmpty waiting "a job waits"
        Expect.isNonEmpty running "a job runs"
        for id in running do pollUntil client 60.0 id (fun s -> s.GetProperty("step").GetInt32() >= 1) |> ignore
        let queued, first = waiting |> List.minBy (fun (_, v) -> v.GetProperty("queue_position").GetInt32())
        Expect.equal (first.GetProperty("queue_position").GetInt32()) 1 "the first waiting job's queue position"
        use cq = client.DeleteAsync("/v1/generations/" + queued).Result
        Expect.equal cq.StatusCode HttpStatusCode.OK "cq.StatusCode"
        Expect.equal (status (json cq)) "cancelled" "status (json cq)"
        // what cancelled it is its error (before: null whatever cancelled it)
        Expect.equal ((json cq).GetProperty("error").GetString()) (sprintf "cancelled by DELETE /v1/generations/%s" queued) "the queued job's reason"
        // its time in the queue ended when it was cancelled, as its total did (before: end_ms null beside a total_ms)
        for answer in [ json cq; json (get client ("/v1/generations/" + queued)) ] do
            let timings = answer.GetProperty("timings")
            let inQueue = timings.GetProperty("queued")
            let total = timings.GetProperty("total_ms").GetDouble()
            Expect.equal (inQueue.GetProperty("end_ms").GetDouble()) total "the queued phase ends at the cancel, the job's end"
            Expect.equal (inQueue.GetProperty("duration_ms").GetDouble()) (total - inQueue.GetProperty("start_ms").GetDouble()) "and lasted until then"
            for stage in [ "encode"; "diffuse"; "decode" ] do
                Expect.equal (timings.GetProperty(stage).GetProperty("start_ms").ValueKind) JsonValueKind.Null (stage + " never started")
        for (id, _) in waiting do
            if id <> queued then client.DeleteAsync("/v1/generations/" + id).Result.Dispose()
        for id in running do
            use cr = client.DeleteAsync("/v1/generations/" + id).Result
            Expect.equal cr.StatusCode HttpStatusCode.Accepted "cr.StatusCode"
        for id in running do
            let final = pollUntil client 30.0 id isFinal
            Expect.equal (status final) "cancelled" "status final"
            Expect.equal (final.GetProperty("error").GetString()) (sprintf "cancelled by DELETE /v1/generations/%s" id) "the running job's reason"
            Expect.isTrue (final.GetProperty("step").GetInt32() < 1500) "stopped before its last step"
        use again = client.DeleteAsync("/v1/generations/" + queued).Result
        Expect.equal again.StatusCode HttpStatusCode.Conflict "again.StatusCode"
        // how it ended, in words (before: "generation 2 is already cancelled", "… is already succeeded")
        Expect.equal ((json again).GetProperty("detail").GetString()) (sprintf "generation %s has already been cancelled" queued) "the 409 of a cancelled job"
        let done' = submit client """{"prompt":"short","width":64,"height":64,"steps":1}"""
        Expect.equal (status (pollUntil client 60.0 done' isFinal)) "succeeded" "a short job succeeds"
        use late = client.DeleteAsync("/v1/generations/" + done').Result
        Expect.equal late.StatusCode HttpStatusCode.Conflict "cancelling a succeeded job"
        Expect.equal ((json late).GetProperty("detail").GetString()) (sprintf "generation %s has already succeeded" done') "the 409 of a succeeded job"
        use result = get client (sprintf "/v1/generations/%s/result" queued)
        Expect.equal result.StatusCode HttpStatusCode.Conflict "result.StatusCode"

let ``server-sent events report each state change and every diffuse step until the final state`` =
    testCase "server-sent events report each state change and every diffuse step until the final state" <| fun () ->
        let client = readyClient defaultServer.Value
        let id = submit client """{"prompt":"stream me","steps":300}"""
        use request = new HttpRequestMessage(HttpMethod.Get, sprintf "/v1/generations/%s/events" id)
        use response = client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Result
        Expect.equal response.Content.Headers.ContentType.MediaType "text/event-stream" "response.Content.Headers.ContentType.MediaType"
        use reader = new StreamReader(response.Content.ReadAsStream())
        let events = ResizeArray<string * JsonElement>()
        let mutable kind = ""
        let mutable line = reader.ReadLine()
        while not (isNull line) do
            if line.StartsWith "event: " then kind <- line.Substring 7
            elif line.StartsWith "data: " then events.Add(kind, JsonDocument.Parse(line.Substring 6).RootElement)
            line <- reader.ReadLine()
        let progress = events |> Seq.filter (fun (k, _) -> k = "progress") |> Seq.map (fun (_, e) -> e.GetProperty("step").GetInt32()) |> List.ofSeq
        Expect.isNonEmpty progress "progress"
        Expect.equal progress (List.sort progress: int list) "progress"
        Expect.equal (List.last progress) 300 "List.last progress"
        let final = snd events.[events.Count - 1]
        Expect.equal (fst events.[events.Count - 1]) "state" "fst events.[events.Count - 1]"
        Expect.equal (status final) "succeeded" "status final"
        Expect.exists events (fun (k, e) -> k = "state" && status e = "decoding") "events"

let ``the OpenAI-compatible route returns n base64 PNGs synchronously and validates its fields`` =
    testCase "the OpenAI-compatible route returns n base64 PNGs synchronously and validates its fields" <| fun () ->
        let client = readyClient defaultServer.Value
        use r = post client "/v1/images/generations" """{"prompt":"two foxes","n":2,"size":"64x64","response_format":"b64_json","steps":2}"""
        Expect.equal r.StatusCode HttpStatusCode.OK "r.StatusCode"
        let data = (json r).GetProperty("data")
        Expect.equal (data.GetArrayLength()) 2 "data.GetArrayLength()"
        for item in data.EnumerateArray() do
            let png = MediaChecks.decodeImage (Convert.FromBase64String(item.GetProperty("b64_json").GetString()))
            Expect.equal ((png.Width, png.Height)) ((64, 64)) "(png.Width, png.Height)"
        use bad = post client "/v1/images/generations" """{"prompt":"x","n":99,"size":"huge","response_format":"gif"}"""
        Expect.equal bad.StatusCode HttpStatusCode.BadRequest "bad.StatusCode"
        Expect.equal (errorsOf bad) (set [ "n"; "size"; "response_format" ]: Set<string>) "errorsOf bad"

/// The synchronous multi-image routes are all or none: a DELETE of one of a call's jobs while the call waits ends the
/// call at once — its other jobs cancelled, a 409 naming every job of the call. Before, the call waited for the other
/// image to run to "succeeded" and then answered 409 "generation 4 was cancelled", naming neither the other job nor
/// its orphaned image.
let ``a cancelled image of a multi-image call cancels the others and answers 409 at once, naming every job`` =
    testCase "a cancelled image of a multi-image call cancels the others and answers 409 at once, naming every job" <| fun () ->
        let client = readyClient defaultServer.Value
        let newest () =
            [ for j in (json (get client "/v1/generations?limit=100")).GetProperty("data").EnumerateArray() -> int64 (j.GetProperty("id").GetString()) ]
        for path, body in [ "/v1/images/generations", """{"prompt":"two foxes","n":2,"size":"64x64","steps":2000}"""
                            "/v1/chat/completions", """{"messages":[{"role":"user","content":"two foxes"}],"num_images_per_prompt":2,"height":64,"width":64,"num_inference_steps":2000}""" ] do
            let before = newest () |> List.fold max 0L
            let call = client.PostAsync(path, new StringContent(body, Text.Encoding.UTF8, "application/json"))
            let deadline = DateTime.UtcNow.AddSeconds 60.0
            let mutable jobs = []
            while jobs.Length < 2 && DateTime.UtcNow < deadline do
                jobs <- newest () |> List.filter (fun id -> id > before) |> List.sort
                if jobs.Length < 2 then Thread.Sleep 20
            Expect.equal jobs.Length 2 (path + ": the call's two jobs")
            let first, second = string jobs[0], string jobs[1]
            pollUntil client 60.0 first (fun s -> s.GetProperty("step").GetInt32() >= 1 || isFinal s) |> ignore
            use cancel = client.DeleteAsync("/v1/generations/" + second).Result
            Expect.contains [ HttpStatusCode.OK; HttpStatusCode.Accepted ] cancel.StatusCode (path + ": the cancel is accepted")
            Expect.isTrue (call.Wait(TimeSpan.FromSeconds 20.0)) (path + ": the call answers at once, not after the other image's 2,000 steps")
            use answer = call.Result
            let text = answer.Content.ReadAsStringAsync().Result
            Expect.equal answer.StatusCode HttpStatusCode.Conflict (path + ": 409 " + text)
            let detail = (json answer).GetProperty("detail").GetString()
            Expect.stringStarts detail (sprintf "generation %s was cancelled" second) (path + ": the cancelled job first")
            Expect.stringContains detail (sprintf "its jobs: %s cancelled, %s cancelled" first second) (path + ": every job of the call, each with how it ends")
            let other = pollUntil client 60.0 first isFinal
            Expect.equal (status other) "cancelled" (path + ": the other image was cancelled with it")
            Expect.stringContains (other.GetProperty("error").GetString()) (sprintf "generation %s, another image of its request, was cancelled" second) (path + ": and says why")

let ``the cluster lists every device with its placement type and resident models, and the plan its capacities and rounds`` =
    testCase "the cluster lists every device with its placement type and resident models, and the plan its capacities and rounds" <| fun () ->
        let client = readyClient defaultServer.Value
        let id = submit client """{"prompt":"for the plan","steps":2}"""
        pollUntil client 120.0 id isFinal |> ignore
        let cluster = json (get client "/v1/cluster")
        let devices = cluster.GetProperty("devices")
        Expect.equal (devices.GetArrayLength()) Environment.ProcessorCount "devices.GetArrayLength()"
        for d in devices.EnumerateArray() do
            Expect.contains ([ "EDC"; "DC"; "ED"; "D"; "E"; "C" ]) (d.GetProperty("placement_type").GetString()) "[ \"EDC\"; \"DC\"; \"ED\"; \"D\"; \"E\"; \"C\" ]"
            Expect.equal (d.GetProperty("resident_models").ValueKind) JsonValueKind.Array "d.GetProperty(\"resident_models\").ValueKind"
        Expect.exists (devices.EnumerateArray()) (fun d -> d.GetProperty("resident_models").GetArrayLength() > 0) "devices.EnumerateArray()"
        Expect.equal (cluster.GetProperty("queue").GetProperty("capacity").GetInt32()) 64 "cluster.GetProperty(\"queue\").GetProperty(\"capacity\").GetInt32()"
        let plan = json (get client "/v1/plan")
        let placement = plan.GetProperty("placement")
        Expect.equal ([ for _ in placement.GetProperty("types").EnumerateObject() -> () ].Length) Environment.ProcessorCount "[ for _ in placement.GetProperty(\"types\").EnumerateObject() -> () ].Length"
        for stage in [ "encode"; "diffuse"; "decode" ] do
            Expect.isTrue (placement.GetProperty("capacity").GetProperty(stage).GetDouble() > 0.0) (stage + " has capacity")
        let rounds = plan.GetProperty("recent_rounds")
        Expect.isTrue (rounds.GetArrayLength() > 0) "rounds are listed"
        let last = rounds.[0]
        Expect.contains ([ "mip"; "greedy" ]) (last.GetProperty("source").GetString()) "[ \"mip\"; \"greedy\" ]"
        Expect.isTrue (last.GetProperty("plan_ms").GetDouble() >= 0.0) "last.GetProperty(\"plan_ms\").GetDouble() >= 0.0"

let ``a kept dispatch round is served as its snapshot and plan, and trident replay re-solves it with a certificate and LP text`` =
    testCase "a kept dispatch round is served as its snapshot and plan, and trident replay re-solves it with a certificate and LP text" <| fun () ->
        let client = readyClient defaultServer.Value
        let id = submit client """{"prompt":"for a replay","steps":2}"""
        pollUntil client 120.0 id isFinal |> ignore
        let rounds = (json (get client "/v1/plan")).GetProperty("recent_rounds")
        let dispatching = [ for r in rounds.EnumerateArray() do if r.GetProperty("dispatched").GetInt32() > 0 then yield r.GetProperty("round").GetInt64() ]
        Expect.isNonEmpty dispatching "a kept round that dispatched"
        // the list of kept rounds: the same rounds, newest first, with the last round's number and the history's size
        let listed = json (get client "/v1/plan/rounds")
        let numbers = [ for r in listed.GetProperty("rounds").EnumerateArray() -> r.GetProperty("round").GetInt64() ]
        Expect.contains numbers dispatching.Head "the list has the kept round that dispatched"
        Expect.equal numbers (List.sortDescending numbers) "newest first"
        Expect.isGreaterThanOrEqual (listed.GetProperty("latest").GetInt64()) numbers.Head "latest is the last round run"
        Expect.equal (listed.GetProperty("history").GetInt32()) 32 "the history's size (Trident:Serving:RoundHistory)"
        use answer = get client (sprintf "/v1/plan/rounds/%d" dispatching.Head)
        Expect.equal answer.StatusCode HttpStatusCode.OK "the kept round"
        let text = answer.Content.ReadAsStringAsync().Result
        let doc = JsonDocument.Parse(text).RootElement
        Expect.equal (doc.GetProperty("format").GetString()) "trident-snapshot" "format"
        Expect.isTrue (doc.GetProperty("plan").GetProperty("dispatches").GetArrayLength() > 0) "the recorded plan"
        use zero = get client "/v1/plan/rounds/0"
        Expect.equal zero.StatusCode HttpStatusCode.BadRequest "round 0"
        Expect.equal (errorsOf zero) (set [ "n" ]) "the bad field is named"
        use gone = get client "/v1/plan/rounds/999999999"
        Expect.equal gone.StatusCode HttpStatusCode.NotFound "a round never made"
        let detail = (json gone).GetProperty("detail").GetString()
        Expect.stringContains detail "round 999999999 has not run yet" "the 404 says why"
        Expect.stringContains detail (sprintf "%d" dispatching.Head) "the 404 lists the kept rounds"
        Expect.stringContains detail "that dispatched a request, ran the solver or failed" "and which rounds are kept"
        // a positive integer too large for a round number is a round not run yet, not a malformed number
        use huge = get client "/v1/plan/rounds/99999999999999999999"
        Expect.equal huge.StatusCode HttpStatusCode.NotFound "a number beyond every round"
        Expect.stringContains ((json huge).GetProperty("detail").GetString()) "round 99999999999999999999 has not run yet" "named as written"
        // the list takes no parameters: limit=1 would otherwise be ignored
        use limited = get client "/v1/plan/rounds?limit=1"
        Expect.equal limited.StatusCode HttpStatusCode.BadRequest "a parameter of the list"
        Expect.equal (errorsOf limited) (set [ "limit" ]) "named"
        let dir = Directory.CreateTempSubdirectory("trident-replay-")
        try
            let file = Path.Combine(dir.FullName, "round.json")
            let lp = Path.Combine(dir.FullName, "round.lp")
            File.WriteAllText(file, text)
            let out = new StringWriter()
            let previous = Console.Out
            Console.SetOut out
            let code =
                try Trident.Api.Cli.Commands.RunAsync([| "replay"; file; "--lp"; lp |]).Result
                finally Console.SetOut previous
            Expect.equal code 0 (string out)
            let printed = string out
            for part in [ "certificate:"; "recorded:"; "plan: " ] do
                Expect.stringContains printed part "replay output"
            Expect.isTrue (File.Exists lp) "the LP file"
            Expect.stringContains (File.ReadAllText lp) "once[" "the LP text names the once constraints"
            // a backend asked for is solved with, even when the round's greedy plan is proven optimal without it (before:
            // "certificate: no solve — greedy …" for most rounds of a lightly loaded server)
            let solved = new StringWriter()
            Console.SetOut solved
            let code =
                try Trident.Api.Cli.Commands.RunAsync([| "replay"; file; "--backend"; "cbc" |]).Result
                finally Console.SetOut previous
            Expect.equal code 0 (string solved)
            Expect.stringContains (string solved) "certificate: backend=" "the solver's certificate"
            File.WriteAllText(file, "{}")
            Expect.equal (Trident.Api.Cli.Commands.RunAsync([| "replay"; file |]).Result) 1 "an unreadable snapshot"
            Expect.equal (Trident.Api.Cli.Commands.RunAsync([| "replay"; file; "--backend"; "glpk" |]).Result) 2 "an unknown backend"
        finally
            dir.Delete(true)

let ``health, readiness, Prometheus metrics and the OpenAPI document are served`` =
    testCase "health, readiness, Prometheus metrics and the OpenAPI document are served" <| fun () ->
        let client = readyClient defaultServer.Value
        use h = get client "/health"
        Expect.equal (status (json h)) "live" "status (json h)"
        use ready = get client "/ready"
        Expect.equal (status (json ready)) "ready" "status (json ready)"
        let id = submit client """{"prompt":"metrics","steps":2}"""
        pollUntil client 120.0 id isFinal |> ignore
        use m = get client "/metrics"
        Expect.equal m.Content.Headers.ContentType.MediaType "text/plain" "m.Content.Headers.ContentType.MediaType"
        let text = m.Content.ReadAsStringAsync().Result
        for name in [ "trident_queue_depth"; "trident_requests_total{outcome=\"succeeded\"}"; "trident_slo_attainment"
                      "trident_stage_latency_seconds_bucket{stage=\"diffuse\",le=\"+Inf\"}"; "trident_device_utilisation{device=\"0\"}"
                      "trident_dispatch_solve_seconds_count"; "trident_replacements_total" ] do
            Expect.stringContains text name "text"
        for line in text.Split('\n') do
            if line.Length > 0 && not (line.StartsWith "#") then Expect.stringStarts line "trident_" "line"
        let doc = json (get client "/openapi/v1.json")
        let paths = [ for p in doc.GetProperty("paths").EnumerateObject() -> p.Name ] |> Set.ofList
        for route in [ "/v1/generations"; "/v1/generations/{id}"; "/v1/generations/{id}/result"; "/v1/generations/{id}/events"
                       "/v1/images/generations"; "/v1/cluster"; "/v1/plan"; "/health"; "/ready"; "/metrics" ] do
            Expect.contains paths route "the OpenAPI document lists the route"

/// The OpenAPI document describes the error bodies the server sends: for every /v1 operation, the schema it declares
/// for a 400 (an unknown query parameter; a body route: a field of the wrong type), a 404 (an unknown id) and a body
/// route's 415 names every property of the real answer, which the test fetches. Before, the GET and DELETE routes'
/// 400s and every 404 were declared as ProblemDetails — no `errors`, which a 400 carries, and no `trace_id`, which
/// every problem carries.
let ``every route's declared 400, 404 and 415 schemas name the properties of the answers it sends`` =
    testCase "every route's declared 400, 404 and 415 schemas name the properties of the answers it sends" <| fun () ->
        let client = readyClient defaultServer.Value
        let document = json (get client Trident.Api.Hosting.ApiDocs.DocumentPath)
        let schemas = document.GetProperty("components").GetProperty("schemas")
        let resolve (schema: JsonElement) =
            match schema.TryGetProperty "$ref" with
            | true, reference -> schemas.GetProperty(reference.GetString().Split('/') |> Array.last)
            | _ -> schema
        let declared (schema: JsonElement) =
            match (resolve schema).TryGetProperty "properties" with
            | true, properties -> [ for p in properties.EnumerateObject() -> p.Name ] |> Set.ofList
            | _ -> Set.empty
        let send (m: string) (path: string) (content: HttpContent) =
            use request = new HttpRequestMessage(HttpMethod m, path)
            request.Content <- content
            client.SendAsync(request).Result
        let body (mediaType: string) (text: string) =
            let content = new StringContent(text)
            content.Headers.ContentType <- Headers.MediaTypeHeaderValue mediaType
            content :> HttpContent
        // ids no job or round has
        let missing (path: string) =
            path.Replace("/v1/videos/{id}", "/v1/videos/video_999999").Replace("{id}", "999999").Replace("{n}", "999999")
        let mutable compared = 0
        for path in document.GetProperty("paths").EnumerateObject() do
            if path.Name.StartsWith "/v1/" then
                for operation in path.Value.EnumerateObject() do
                    let m = operation.Name.ToUpperInvariant()
                    let url = missing path.Name
                    let answers =
                        [ if m = "POST" then
                              400, (fun () -> send m url (body "application/json" """{"prompt":5}"""))
                              415, (fun () -> send m url (body "text/plain" "{}"))
                          else
                              400, (fun () -> send m (url + "?foo=1") null)
                              if path.Name.Contains "{" then 404, (fun () -> send m url null) ]
                    for status, answer in answers do
                        use answer = answer ()
                        let text = answer.Content.ReadAsStringAsync().Result
                        let what = sprintf "%s %s %d" m path.Name status
                        Expect.equal (int answer.StatusCode) status (sprintf "%s: the status (%s)" what text)
                        let sent = [ for p in JsonDocument.Parse(text).RootElement.EnumerateObject() -> p.Name ] |> Set.ofList
                        match operation.Value.GetProperty("responses").TryGetProperty(string status) with
                        | true, response ->
                            let schema = response.GetProperty("content").GetProperty("application/problem+json").GetProperty("schema")
                            let names = declared schema
                            Expect.isEmpty (Set.difference sent names)
                                (sprintf "%s: the answer's properties the declared schema (%s) does not name; it names %A; the server sent %s"
                                    what (schema.GetRawText()) names text)
                            compared <- compared + 1
                        | _ -> failtestf "%s: the server answers %d, which the document does not declare (%s)" what status text
        Expect.isGreaterThanOrEqual compared 30 "the 400s, 404s and 415s of every /v1 route are compared"

let ``loadgen replays a trace file and prints SLO attainment, latency percentiles, errors and the simulator's comparison`` =
    testCase "loadgen replays a trace file and prints SLO attainment, latency percentiles, errors and the simulator's comparison" <| fun () ->
        let client = readyClient defaultServer.Value
        let trace = TinyFixture.tempPath "trace.csv"
        Directory.CreateDirectory(Path.GetDirectoryName trace) |> ignore
        let lines =
            [ "id,arrival_s,model,height,width,frames,steps,deadline_s,priority" ]
            @ [ for i in 0..5 -> sprintf "%d,%g,tiny,%d,%d,1,2,," i (0.2 * float i) (if i % 2 = 0 then 64 else 128) 64 ]
        File.WriteAllLines(trace, lines)
        let out = new StringWriter()
        let args = Trident.Api.Cli.Commands.Parse(Trident.Api.Cli.LoadgenCommand.Command, [ "--workload"; trace; "--compare-sim"; "--timeout"; "60"; "--out"; TinyFixture.tempPath "requests.csv" ])
        let code = Trident.Api.Cli.LoadgenCommand.RunAsync(args, client, out, CancellationToken.None).Result
        let text = string out
        Expect.isTrue ((code = 0)) text
        Expect.stringContains text "measured: requests=6 succeeded=6 rejected_429=0 failed=0" "text"
        for figure in [ "slo_attainment="; "mean_s="; "p95_s="; "p99_s="; "simulated: requests=6"; "median_abs_error_s=" ] do
            Expect.stringContains text figure "text"
        // the comparison simulates with the server's batch limit, which /v1/cluster reports
        let settings = (json (get client "/v1/cluster")).GetProperty("settings")
        Expect.equal (settings.GetProperty("max_batch").GetInt32()) 1 "the test server's Serving:MaxBatch (ApiFixture: 1)"
        Expect.stringContains text "6 requests over 1.0 s" "the trace's own arrival times"
        // --time-scale: the same trace on a server whose clock runs at half the trace's (an emulated one's --time-scale)
        let scaled = new StringWriter()
        let args = Trident.Api.Cli.Commands.Parse(Trident.Api.Cli.LoadgenCommand.Command, [ "--workload"; trace; "--time-scale"; "0.5"; "--timeout"; "60" ])
        Expect.equal (Trident.Api.Cli.LoadgenCommand.RunAsync(args, client, scaled, CancellationToken.None).Result) 0 (string scaled)
        Expect.stringContains (string scaled) "6 requests over 0.5 s" "arrivals × 0.5"
        // where the time went, from the server's own timings: phases, and each stage task's work per request
        for figure in [ "phases_ms: queued="; " encode="; " diffuse="; " decode="; " result="; "stage_work: encode=" ] do
            Expect.stringContains text figure "text"
        let batches =
            System.Text.RegularExpressions.Regex.Matches(text, @"ms/req@batch([0-9.]+)") |> Seq.map (fun m -> float m.Groups.[1].Value) |> List.ofSeq
        Expect.equal batches.Length 3 "one batch figure per stage"
        for b in batches do
            Expect.isTrue (b >= 1.0 && b <= 6.0) (sprintf "requests per stage task between 1 and the 6 sent: %g" b)

let ``bench soak drives the server at a steady rate and prints resource samples, a summary and a verdict`` =
    testCase "bench soak drives the server at a steady rate and prints resource samples, a summary and a verdict" <| fun () ->
        let client = readyClient defaultServer.Value
        let out = new StringWriter()
        let csv = TinyFixture.tempPath "soak.csv"
        // a few seconds only: the shape of the report and that samples were taken, not the memory verdict
        let args = Trident.Api.Cli.Commands.Parse(Trident.Api.Cli.SoakBench.Command, [ "--duration"; "3"; "--rate"; "2"; "--steps"; "2"; "--sample-every"; "0.5"; "--drain"; "60"; "--out"; csv ])
        let code = Trident.Api.Cli.SoakBench.RunAsync(args, client, out, CancellationToken.None).Result
        let text = string out
        Expect.isTrue (code = 0 || code = 1) text
        let lines = text.Split('\n') |> Array.map (fun l -> l.TrimEnd())
        let header = lines |> Array.findIndex (fun l -> l.StartsWith "t_s rss_mb heap_mb gc_committed_mb gc0 gc1 gc2 threads fds")
        let samples =
            lines |> Array.skip (header + 1) |> Array.takeWhile (fun l -> l <> "" && Char.IsDigit l.[0])
            |> Array.map (fun l -> l.Split(' ') |> Array.map (fun f -> Double.Parse(f, Globalization.CultureInfo.InvariantCulture)))
        Expect.isGreaterThanOrEqual samples.Length 4 "samples taken (t = 0, every 0.5 s, the end)"
        for row in samples do
            Expect.equal row.Length 15 "fields of a sample"
            Expect.isGreaterThan row.[1] 10.0 "resident set in MB"
            Expect.isGreaterThan row.[7] 1.0 "threads"
            Expect.isGreaterThan row.[8] 2.0 "open descriptors"
        Expect.equal (samples |> Array.map (fun r -> r.[0]) |> Array.sort) (samples |> Array.map (fun r -> r.[0])) "in time order"
        Expect.stringContains text "requests: submitted=6 succeeded=6 failed=0 rejected_429=0 other_errors=0 unfinished=0" "every request served"
        for figure in [ "summary: samples="; "rss_warm_mb="; "rss_end_mb="; "rss_growth_pct="; "(goal ≤ 10)"; "heap_end_mb="; "gc_committed_end_mb="; "rss_outside_gc_growth_mb="; "gc2="; "threads_warm="; "threads_end="; "fds_warm="; "fds_end="; "verdict: " ] do
            Expect.stringContains text figure "text"
        let rows = File.ReadAllLines csv
        Expect.equal rows.[0] "t_s,rss_mb,heap_mb,gc_committed_mb,gc0,gc1,gc2,threads,fds,submitted,succeeded,failed,rejected,in_flight,jobs_held" "CSV header"
        Expect.equal (rows.Length - 1) samples.Length "one CSV row per sample"

/// A server whose queue holds one request.
type SmallQueueFactory() =
    inherit TridentFactory([ "Trident:Serving:QueueCapacity", "1" ])

let private smallQueueServer = Fixture(fun () -> new SmallQueueFactory())

let ``a full queue answers 429 with Retry-After, and every accepted request is still served`` =
    testCase "a full queue answers 429 with Retry-After, and every accepted request is still served" <| fun () ->
        let client = readyClient smallQueueServer.Value
        // more images than the queue holds is a 400 naming the cap, not a 429 a client would retry for ever
        let tooMany = post client "/v1/generations" """{"prompt":"many","num_images":2}"""
        Expect.equal tooMany.StatusCode HttpStatusCode.BadRequest "2 images on a queue of 1"
        Expect.stringContains (tooMany.Content.ReadAsStringAsync().Result) "Trident:Serving:QueueCapacity" "names the queue's capacity"
        let accepted = ResizeArray<string>()
        let mutable refused: HttpResponseMessage = null
        let mutable n = 0
        while isNull refused && n < 20 do
            n <- n + 1
            let r = post client "/v1/generations" """{"prompt":"fill","steps":600}"""
            if r.StatusCode = HttpStatusCode.Accepted then accepted.Add((json r).GetProperty("id").GetString())
            elif r.StatusCode = enum 429 then refused <- r
            else failwithf "unexpected %O" r.StatusCode
        Expect.isNotNull refused "refused"
        Expect.isTrue (refused.Headers.RetryAfter.Delta.Value >= TimeSpan.FromSeconds 1.0) "Retry-After in seconds"
        Expect.equal refused.Content.Headers.ContentType.MediaType "application/problem+json" "refused.Content.Headers.ContentType.MediaType"
        // before: no type (the framework has no default for 429) and a traceparent for trace_id
        let problem = json refused
        Expect.equal (problem.GetProperty("type").GetString()) "https://tools.ietf.org/html/rfc6585#section-4" "the 429's type"
        Expect.isTrue (Text.RegularExpressions.Regex.IsMatch(problem.GetProperty("trace_id").GetString(), "^[0-9a-f]{32}$")) "the 429's trace_id: 32 hex digits"
        // nothing accepted is dropped: every job reaches a final state (cancelled to keep the test short)
        for id in accepted do client.DeleteAsync("/v1/generations/" + id).Result.Dispose()
        for id in accepted do
            Expect.contains ([ "cancelled"; "succeeded" ]) (status (pollUntil client 60.0 id isFinal)) "[ \"cancelled\"; \"succeeded\" ]"

let private examplesServer = Fixture(fun () -> new SmallQueueFactory())

/// The OpenAPI examples of error answers (OpenApi/Examples/{operation}.{status}.json, and those /docs shows for a
/// status without a file of its own), each checked against the answer the server gives to the request it illustrates:
/// the same status, the same keys (those of `errors` too), the same type and title, a trace_id of 32 hex digits in
/// both, and each message the same but for its numbers (the example's come from another moment: a queue's length).
/// Before, the 400 and 429 examples had no trace_id and the 400s showed messages the server does not write.
let ``every example of an error answer is what the server answers, keys and message shape`` =
    testCase "every example of an error answer is what the server answers, keys and message shape" <| fun () ->
        let client = readyClient examplesServer.Value
        let folder = Path.Combine(AppContext.BaseDirectory, "OpenApi", "Examples")
        let file (name: string) = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, name + ".json"))).RootElement
        let document = json (get client Trident.Api.Hosting.ApiDocs.DocumentPath)
        let example (name: string) =
            match name.Split ' ' with
            | [| verb; path; code |] ->
                document.GetProperty("paths").GetProperty(path).GetProperty(verb).GetProperty("responses").GetProperty(code)
                    .GetProperty("content").GetProperty("application/problem+json").GetProperty("example")
            | _ -> file name
        let request = (file "CreateGeneration.request").GetRawText()
        let shape (s: string) = Text.RegularExpressions.Regex.Replace(s, "[0-9]+", "#")
        let keys (e: JsonElement) = [ for p in e.EnumerateObject() -> p.Name ] |> List.sort
        let compare (name: string) (answer: HttpResponseMessage) =
            let text = answer.Content.ReadAsStringAsync().Result
            let real = JsonDocument.Parse(text).RootElement
            let shown = example name
            let what = sprintf "%s (the server answered %s)" name text
            Expect.equal (int answer.StatusCode) (shown.GetProperty("status").GetInt32()) (what + ": the status")
            Expect.equal (real.GetProperty("status").GetInt32()) (int answer.StatusCode) (what + ": the body's status")
            Expect.equal answer.Content.Headers.ContentType.MediaType "application/problem+json" (what + ": a problem")
            Expect.equal (keys shown) (keys real) (what + ": the keys")
            for key in [ "type"; "title" ] do
                Expect.equal (shown.GetProperty(key).GetString()) (real.GetProperty(key).GetString()) (sprintf "%s: the %s" what key)
            for e in [ shown; real ] do
                Expect.isTrue (Text.RegularExpressions.Regex.IsMatch(e.GetProperty("trace_id").GetString(), "^[0-9a-f]{32}$")) (what + ": trace_id, 32 hex digits")
            let mutable detail = Unchecked.defaultof<JsonElement>
            if shown.TryGetProperty("detail", &detail) then
                Expect.equal (shape (detail.GetString())) (shape (real.GetProperty("detail").GetString())) (what + ": the detail, numbers aside")
            let mutable errors = Unchecked.defaultof<JsonElement>
            if shown.TryGetProperty("errors", &errors) then
                let messages (e: JsonElement) = [ for p in e.EnumerateObject() -> p.Name, [ for m in p.Value.EnumerateArray() -> shape (m.GetString()) ] ]
                Expect.equal (messages errors) (messages (real.GetProperty "errors")) (what + ": the errors, numbers aside")
        // one request served first: round 1 ran and is kept, as GetPlanRound.404 shows
        let one = submit client """{"prompt":"one","steps":2}"""
        Expect.equal (status (pollUntil client 60.0 one isFinal)) "succeeded" "the first request"
        compare "GetPlanRound.404" (get client "/v1/plan/rounds/999")
        // examples /docs makes for statuses without a file
        compare "get /v1/generations/{id} 404" (get client "/v1/generations/7")
        let text = new StringContent("{}")
        text.Headers.ContentType <- Headers.MediaTypeHeaderValue "text/plain"
        compare "post /v1/generations 415" (client.PostAsync("/v1/generations", text).Result)
        // the example's request with the example's bad width
        let badWidth = Nodes.JsonNode.Parse(request)
        badWidth["width"] <- Nodes.JsonValue.Create 100
        compare "CreateGeneration.400" (post client "/v1/generations" (badWidth.ToJsonString()))
        compare "CreateImages.400" (post client "/v1/images/generations" """{"prompt":"a lighthouse at dusk","style":"vivid"}""")
        compare "GetPlanRound.400" (get client "/v1/plan/rounds/abc")
        // a queue of one: the second long request is refused
        let accepted = ResizeArray<string>()
        let mutable refused: HttpResponseMessage = null
        while isNull refused && accepted.Count < 20 do
            let r = post client "/v1/generations" """{"prompt":"fill","steps":600}"""
            if r.StatusCode = HttpStatusCode.Accepted then accepted.Add((json r).GetProperty("id").GetString())
            elif r.StatusCode = enum 429 then refused <- r
            else failwithf "unexpected %O" r.StatusCode
        Expect.isNotNull refused "a request is refused"
        compare "CreateGeneration.429" refused
        for id in accepted do client.DeleteAsync("/v1/generations/" + id).Result.Dispose()
        for id in accepted do pollUntil client 60.0 id isFinal |> ignore

/// The OpenAPI examples of success answers (OpenApi/Examples/{operation}.{status}.json) have the keys of the server's
/// answers to the requests they illustrate, at the top level, in each object under it and in the items of each array
/// (the union over the items; the values are another moment's). The text examples: the server-sent events have the
/// event names, ids and data keys of the real streams', and the Prometheus text names the metrics (and their types)
/// the server exports; the profile and round examples are documents the server reads back. Before, the cancel example
/// of a job cancelled at once showed every stage run, the profile and round examples were version-1 profiles without
/// batch points (which `trident replay` refused), the round lacked its bookings, completed stages and two settings,
/// the plan's and the view's rounds their dispatches, and the metrics five counters and the histograms' buckets.
let ``every example of a success answer has the keys the server writes`` =
    testCase "every example of a success answer has the keys the server writes" <| fun () ->
        let client = readyClient examplesServer.Value
        // the examples as the server embeds them (the text ones are not copied next to the tests)
        let text (name: string) =
            use stream = typeof<Trident.Api.Hosting.ApiDocs>.Assembly.GetManifestResourceStream(Trident.Api.Hosting.ApiDocs.ExamplePrefix + name)
            Expect.isNotNull stream (name + " is an embedded example")
            (new StreamReader(stream)).ReadToEnd()
        let file (name: string) = JsonDocument.Parse(text (name + ".json")).RootElement
        // ".a.b" for an object's key, ".a[].b" for a key of an array's items
        let rec keys (path: string) (e: JsonElement) =
            [ match e.ValueKind with
              | JsonValueKind.Object ->
                  for p in e.EnumerateObject() do
                      yield path + "." + p.Name
                      yield! keys (path + "." + p.Name) p.Value
              | JsonValueKind.Array ->
                  for item in e.EnumerateArray() do yield! keys (path + "[]") item
              | _ -> () ]
            |> List.distinct |> List.sort
        // the values that show no keys: null, or an empty array (the other side's keys under them are another moment's)
        let rec hollow (path: string) (e: JsonElement) =
            [ match e.ValueKind with
              | JsonValueKind.Null -> yield path
              | JsonValueKind.Array when e.GetArrayLength() = 0 -> yield path
              | JsonValueKind.Object -> for p in e.EnumerateObject() do yield! hollow (path + "." + p.Name) p.Value
              | JsonValueKind.Array -> for item in e.EnumerateArray() do yield! hollow (path + "[]") item
              | _ -> () ]
        let under (paths: string list) (key: string) = paths |> List.exists (fun h -> key.StartsWith(h + ".") || key.StartsWith(h + "[]"))
        let sameKeys (name: string) (shown: JsonElement) (real: JsonElement) (answer: string) =
            let shownHollow, realHollow = hollow "" shown, hollow "" real
            let shown = keys "" shown |> List.filter (not << under realHollow)
            let real = keys "" real |> List.filter (not << under shownHollow)
            let missing = real |> List.filter (fun k -> not (List.contains k shown))
            let invented = shown |> List.filter (fun k -> not (List.contains k real))
            Expect.isTrue (missing.IsEmpty && invented.IsEmpty)
                (sprintf "%s: the keys; the example lacks %A and has %A the server does not write (the server answered %s)" name missing invented answer)
        let compare (name: string) (answer: HttpResponseMessage) =
            let body = answer.Content.ReadAsStringAsync().Result
            Expect.equal (sprintf "%s.%d" (name.Split('.')[0]) (int answer.StatusCode)) name (sprintf "%s: the status (%s)" name body)
            sameKeys name (file name) (JsonDocument.Parse(body).RootElement) body
        // server-sent events: (event, id, data) of each
        let events (t: string) =
            [ for block in t.Replace("\r\n", "\n").Split("\n\n", StringSplitOptions.RemoveEmptyEntries) do
                  let field (f: string) =
                      block.Split '\n' |> Array.tryPick (fun l -> if l.StartsWith(f + ": ") then Some(l.Substring(f.Length + 2)) else None)
                  match field "data" with
                  | Some data -> yield (defaultArg (field "event") "message", field "id" |> Option.isSome, JsonDocument.Parse(data).RootElement)
                  | None -> () ]
        let compareEvents (name: string) (real: (string * bool * JsonElement) list) =
            let shown = events (text (name + ".txt"))
            let names (es: (string * bool * JsonElement) list) = es |> List.map (fun (e, _, _) -> e) |> List.distinct |> List.sort
            Expect.equal (names shown) (names real) (name + ": the event names")
            for e, hasId, data in shown @ real do
                Expect.isTrue hasId (sprintf "%s: event %s has an id" name e)
                let _, _, like = real |> List.find (fun (r, _, _) -> r = e)
                sameKeys (sprintf "%s, event %s" name e) data like (like.GetRawText())
        // one event stream's text: to its end, or its first `first` events
        let stream (path: string) (first: int option) =
            use request = new HttpRequestMessage(HttpMethod.Get, path)
            use response = client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Result
            Expect.equal response.Content.Headers.ContentType.MediaType "text/event-stream" (path + ": an event stream")
            use reader = new StreamReader(response.Content.ReadAsStream())
            let lines = ResizeArray<string>()
            let mutable line = reader.ReadLine()
            let enough () = first |> Option.exists (fun n -> lines |> Seq.filter (fun l -> l.StartsWith "data: ") |> Seq.length >= n)
            while not (isNull line) && not (enough () && line = "") do
                lines.Add line
                line <- reader.ReadLine()
            String.Join("\n", lines) + "\n\n"
        let created = post client "/v1/generations" ((file "CreateGeneration.request").GetRawText())
        let id = (json created).GetProperty("id").GetString()
        compare "CreateGeneration.202" created
        let final = pollUntil client 120.0 id isFinal
        compare "GetGeneration.200" (get client ("/v1/generations/" + id))
        compare "GetPlanRound.200" (get client (sprintf "/v1/plan/rounds/%d" (final.GetProperty("route").GetProperty("round").GetInt64())))
        compare "Health.200" (get client "/health")
        compare "Ready.200" (get client "/ready")
        compare "ListModels.200" (get client "/v1/models")
        compare "GetCluster.200" (get client "/v1/cluster")
        compare "GetPlan.200" (get client "/v1/plan")
        compare "ListPlanRounds.200" (get client "/v1/plan/rounds")
        compare "GetProfile.200" (get client "/v1/profile")
        // the documents the server reads back: the profile as a profile file, the round as `trident replay` reads it
        let profile = Trident.Scheduling.ProfileFile.parse (text "GetProfile.200.json")
        Expect.isTrue profile.IsOk (sprintf "GetProfile.200 is a profile file: %A" profile)
        Trident.Runtime.Serving.SnapshotJson.Read(text "GetPlanRound.200.json") |> ignore
        // a job followed from its start: its states and its steps
        let streamed = submit client """{"prompt":"events","steps":20}"""
        compareEvents "GenerationEvents.200" (events (stream (sprintf "/v1/generations/%s/events" streamed) None))
        compare "CreateImages.200" (post client "/v1/images/generations" ((file "CreateImages.request").GetRawText()))
        compare "ChatCompletions.200" (post client "/v1/chat/completions" ((file "ChatCompletions.request").GetRawText()))
        let video = post client "/v1/videos" ((file "CreateVideo.request").GetRawText())
        let videoId = (json video).GetProperty("id").GetString()
        compare "CreateVideo.200" video
        let deadline = DateTime.UtcNow.AddSeconds 120.0
        let videoStatus () = (json (get client ("/v1/videos/" + videoId))).GetProperty("status").GetString()
        while List.contains (videoStatus ()) [ "queued"; "in_progress" ] && DateTime.UtcNow < deadline do
            Thread.Sleep 50
        Expect.equal (videoStatus ()) "completed" "the video"
        compare "GetVideo.200" (get client ("/v1/videos/" + videoId))
        compare "ListVideos.200" (get client "/v1/videos?limit=1")
        compare "ListGenerations.200" (get client "/v1/generations?limit=2")
        compare "DeleteVideo.200" (client.DeleteAsync("/v1/videos/" + videoId).Result)
        // the metrics the server exports, by name and type, and the names of their samples (a histogram's _bucket, _sum
        // and _count); the labels and values depend on what ran
        let metrics (t: string) =
            [ for l in t.Split '\n' do
                  if l.StartsWith "# TYPE " then yield l.Substring 7
                  elif l <> "" && not (l.StartsWith "#") then yield "sample " + l.Substring(0, l.IndexOfAny [| '{'; ' ' |]) ]
            |> List.distinct |> List.sort
        let exported = (get client "/metrics").Content.ReadAsStringAsync().Result
        Expect.equal (metrics (text "Metrics.200.txt")) (metrics exported) "Metrics.200.txt: the metrics, their types and their samples' names"
        compareEvents "ViewEvents.200" (events (stream "/v1/view/events" (Some 1)))
        // cancel: a long job that runs (202, it stops at its next step) and, with every device busy, one that waits (200,
        // cancelled at once); long jobs are submitted until one stays queued (the devices' count and a lone job's degree vary)
        let running = ResizeArray<string>()
        let mutable waiting = None
        while waiting.IsNone && running.Count < 64 do
            let job = submit client """{"prompt":"long","steps":2000}"""
            // the first starts on an idle server; a later one still queued after 2 s waits for a busy device
            let until = DateTime.UtcNow.AddSeconds(if running.Count = 0 then 30.0 else 2.0)
            let mutable last = json (get client ("/v1/generations/" + job))
            while status last = "queued" && DateTime.UtcNow < until do
                Thread.Sleep 20
                last <- json (get client ("/v1/generations/" + job))
            if status last = "queued" then waiting <- Some job else running.Add job
        Expect.isNonEmpty running "a long job runs"
        compare "CancelGeneration.200" (client.DeleteAsync("/v1/generations/" + waiting.Value).Result)
        pollUntil client 60.0 running[0] (fun s -> s.GetProperty("step").GetInt32() >= 1) |> ignore
        compare "CancelGeneration.202" (client.DeleteAsync("/v1/generations/" + running[0]).Result)
        for job in running do client.DeleteAsync("/v1/generations/" + job).Result.Dispose()
        for job in running do pollUntil client 60.0 job isFinal |> ignore

let ``invalid configuration stops serve at start-up with every bad key named`` =
    testCase "invalid configuration stops serve at start-up with every bad key named" <| fun () ->
        let error = new StringWriter()
        let previous = Console.Error
        Console.SetError error
        let code =
            try
                Trident.Api.Cli.Commands.RunAsync(
                    [| "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal"
                       "--Trident:Serving:QueueCapacity"; "0"; "--Trident:Devices:Kind"; "tpu"; "--Trident:Monitor:TriggerRatio"; "1"
                       "--Trident:Serving:DrainSeconds"; "-1"; "--Trident:Serving:QueueHorizonSeconds"; "-0.5" |]).Result
            finally
                Console.SetError previous
        Expect.equal code 2 "code"
        let message = string error
        for key in [ "Trident:Serving:QueueCapacity"; "Trident:Devices:Kind"; "Trident:Monitor:TriggerRatio"; "Trident:Serving:DrainSeconds"; "Trident:Serving:QueueHorizonSeconds" ] do
            Expect.stringContains message key "message"

let ``an unknown command is refused with the usage, and the commands include serve and loadgen`` =
    testCase "an unknown command is refused with the usage, and the commands include serve and loadgen" <| fun () ->
        let code = Trident.Api.Cli.Commands.RunAsync([| "frobnicate" |]).Result
        Expect.equal code 2 "code"
        let names = Trident.Api.Cli.Commands.All |> Seq.map (fun c -> c.Name) |> Set.ofSeq
        Expect.contains names "serve" "the commands include serve"
        Expect.contains names "loadgen" "the commands include loadgen"

let ``bench soak refuses bad arguments, naming each, before starting a server`` =
    testCase "bench soak refuses bad arguments, naming each, before starting a server" <| fun () ->
        let errors =
            try
                Trident.Api.Cli.Commands.Parse(Trident.Api.Cli.SoakBench.Command, [ "--duration"; "x"; "--rate"; "0"; "--bogus"; "1"; "--sample-every" ]) |> ignore
                []
            with :? Trident.Api.Cli.CliException as e -> e.Errors |> List.ofSeq
        Expect.equal (List.sort errors) (List.sort [ "--duration: 'x' is not a number"; "--rate: 0 is outside [0.001, 1000]"; "--sample-every: needs a value"; "--bogus: unknown option" ]) "every bad option, once"
        Expect.equal (Trident.Api.Cli.Commands.RunAsync([| "bench"; "soak"; "--devices"; "-1" |]).Result) 2 "exit code"

let ``loadgen talks to loopback addresses only`` =
    testCase "loadgen talks to loopback addresses only" <| fun () ->
        let code = Trident.Api.Cli.Commands.RunAsync([| "loadgen"; "--url"; "http://192.0.2.1:8080"; "--workload"; "tiny-poisson" |]).Result
        Expect.equal code 2 "code"

/// The API tests on the real pipeline: sequenced, alone, like the other tiny-pipeline tests (the queue tests'
/// server starts after the first server is disposed).
[<Tests>]
let integrationTests =
    testList "integration" [
        testList "GenerationsApiTests" [
            ``a generation is accepted, served through every stage, and its result is a PNG of the requested size``
            ``every example of an error answer is what the server answers, keys and message shape``
            ``every example of a success answer has the keys the server writes``
            ``a video request yields an MP4 with every frame at the server's frame rate``
            ``bad input gets one 400 problem naming every bad field``
            ``a size field's problems name each wrong side and its value; width and height fields name themselves``
            ``a negative prompt no classifier-free pass would read is refused on every route, naming negative_prompt and why``
            ``a field of the wrong type, or no JSON at all, is a 400 naming it``
            ``an unknown generation is 404 on every route``
            ``the 202 and the status echo the priority and the deadline, 0 when no priority is sent``
            ``the OpenAI-compatible routes take priority and deadline_ms and the video object echoes them``
            ``HEAD answers every GET route as GET does, and event streams stay GET only``
            ``the list routes page through the jobs held, newest first, and name a bad parameter``
            ``every /v1 route names a query parameter it does not take, and the event streams take api_key``
            ``a query parameter given more than once is a 400 saying so, not its values joined``
            ``every route's declared 400, 404 and 415 schemas name the properties of the answers it sends``
            ``cancelling a queued job cancels it at once, a running one at its next step, and a finished one is a conflict``
            ``server-sent events report each state change and every diffuse step until the final state``
            ``the OpenAI-compatible route returns n base64 PNGs synchronously and validates its fields``
            ``a cancelled image of a multi-image call cancels the others and answers 409 at once, naming every job``
            ``the cluster lists every device with its placement type and resident models, and the plan its capacities and rounds``
            ``health, readiness, Prometheus metrics and the OpenAPI document are served``
            ``a kept dispatch round is served as its snapshot and plan, and trident replay re-solves it with a certificate and LP text``
            ``loadgen replays a trace file and prints SLO attainment, latency percentiles, errors and the simulator's comparison``
            ``bench soak drives the server at a steady rate and prints resource samples, a summary and a verdict``
        ] |> testSequenced
        testList "QueueFullTests" [
            ``a full queue answers 429 with Retry-After, and every accepted request is still served``
        ] |> testSequenced ]

let ``a round that is not kept is named with why and the rounds that are`` =
    testCase "a round that is not kept is named with why and the rounds that are" <| fun () ->
        let notKept round latest kept = Trident.Api.Endpoints.ClusterApi.NotKept(round, latest, ResizeArray<int64>(kept: int64 list), 32)
        let kept = [ 3L; 5L; 6L; 7L; 12L ]
        let future = notKept 200L 125L kept
        Expect.stringStarts future "round 200 has not run yet (the last round is 125); kept: rounds 3, 5–7, 12 — " "a round not run yet"
        Expect.stringContains future "the last 32 rounds (Trident:Serving:RoundHistory) that dispatched a request, ran the solver or failed" "what is kept"
        Expect.stringStarts (notKept 2L 125L kept) "round 2 is older than the oldest round kept; kept: rounds 3, 5–7, 12" "an evicted round"
        Expect.stringStarts (notKept 4L 125L kept) "round 4 decided nothing (no request could start and the solver did not run), so it was not kept" "a round between kept ones"
        Expect.stringStarts (notKept 1L 4L []) "round 1 decided nothing" "nothing kept yet"
        Expect.stringContains (notKept 1L 4L []) "no round is kept yet" "nothing kept yet"
        Expect.stringContains (notKept 10L 10L [ 9L ]) "kept: round 9 —" "one round"

/// Start-up and command-line checks that start no server (they ran in parallel with other modules).
[<Tests>]
let unitTests =
    testList "unit" [ testList "GenerationsApiTests" [
        ``invalid configuration stops serve at start-up with every bad key named``
        ``an unknown command is refused with the usage, and the commands include serve and loadgen``
        ``loadgen talks to loopback addresses only``
        ``bench soak refuses bad arguments, naming each, before starting a server``
        ``a round that is not kept is named with why and the rounds that are``
    ] |> testSequencedGroup "GenerationsApiTests" ]
