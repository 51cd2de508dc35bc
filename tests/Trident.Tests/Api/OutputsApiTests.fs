/// What clients of other image and video servers get from Trident: PNG, JPEG and WebP from the OpenAI image
/// route (b64_json and url, n images), MP4/WebM from /v1/generations and /v1/videos (OpenAI's asynchronous video
/// pattern, JSON or form), vLLM-Omni's diffusion chat route, the model list, diffusers' names as strict aliases —
/// and the official `openai` npm client against a real socket. Every file is decoded by a library (SkiaSharp,
/// ffprobe).
module Trident.Tests.Api.OutputsApiTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open System.Threading
open Expecto
open SkiaSharp
open Trident.Tests.Runtime
open Trident.Tests.Runtime.MediaChecks
open Trident.Tests.Api.ApiFixture
open Trident.Tests.TestSupport

let private server = Fixture(fun () -> new DefaultServer())

let private bytes (r: HttpResponseMessage) = r.Content.ReadAsByteArrayAsync().Result

let private b64 (item: JsonElement) = Convert.FromBase64String(item.GetProperty("b64_json").GetString())

let ``the image route answers PNG, JPEG or WebP as output_format asks, as base64 or as a URL of the result`` =
    testCase "the image route answers PNG, JPEG or WebP as output_format asks, as base64 or as a URL of the result" <| fun () ->
        let client = readyClient server.Value
        for name, format in [ "png", SKEncodedImageFormat.Png; "jpeg", SKEncodedImageFormat.Jpeg; "webp", SKEncodedImageFormat.Webp ] do
            use r = post client "/v1/images/generations" (sprintf """{"prompt":"a fox","size":"64x64","output_format":"%s","num_inference_steps":2}""" name)
            Expect.equal r.StatusCode HttpStatusCode.OK name
            let body = json r
            Expect.equal (body.GetProperty("output_format").GetString(), body.GetProperty("size").GetString()) (name, "64x64") "the answer names format and size"
            let image = decodeImage (b64 (body.GetProperty("data")[0]))
            Expect.equal (image.Format, image.Width, image.Height) (format, 64, 64) name
        use r = post client "/v1/images/generations" """{"prompt":"two foxes","n":2,"size":"64x64","response_format":"url","output_format":"jpeg","output_compression":60,"steps":2,"seed":7}"""
        Expect.equal r.StatusCode HttpStatusCode.OK "url"
        let data = (json r).GetProperty("data")
        Expect.equal [ for d in data.EnumerateArray() -> d.GetProperty("seed").GetInt64() ] [ 7L; 8L ] "n images, seeds seed, seed + 1"
        for d in data.EnumerateArray() do
            Expect.equal (d.GetProperty("b64_json").ValueKind) JsonValueKind.Null "no base64 with url"
            let url = Uri(d.GetProperty("url").GetString())
            Expect.stringStarts url.AbsolutePath "/v1/generations/" "a URL of the result route"
            use file = get client url.PathAndQuery
            Expect.equal file.Content.Headers.ContentType.MediaType "image/jpeg" "served as JPEG"
            Expect.equal (decodeImage (bytes file)).Format SKEncodedImageFormat.Jpeg "a JPEG"

let ``fields the image route cannot honour are a 400 naming each, and aliases stay strict`` =
    testCase "fields the image route cannot honour are a 400 naming each, and aliases stay strict" <| fun () ->
        let client = readyClient server.Value
        use bad = post client "/v1/images/generations" """{"prompt":"x","quality":"hd","background":"transparent","output_format":"gif","model":"dall-e-3"}"""
        Expect.equal bad.StatusCode HttpStatusCode.BadRequest "400"
        Expect.equal (errorsOf bad) (set [ "quality"; "background"; "output_format"; "model" ]) "each named"
        use style = post client "/v1/images/generations" """{"prompt":"x","style":"vivid","user":"me"}"""
        Expect.equal (errorsOf style) (set [ "style"; "user" ]) "OpenAI fields this server does not implement"
        use png = post client "/v1/images/generations" """{"prompt":"x","output_compression":50}"""
        Expect.equal (errorsOf png) (set [ "output_compression" ]) "png is lossless"
        use both = post client "/v1/images/generations" """{"prompt":"x","steps":2,"num_inference_steps":3}"""
        Expect.equal (errorsOf both) (set [ "num_inference_steps" ]) "an alias and its field together"
        use unknown = post client "/v1/generations" """{"prompt":"x","num_inference_step":2}"""
        Expect.equal (errorsOf unknown) (set [ "num_inference_step" ]) "unknown fields are still refused"
        use aliased = post client "/v1/images/generations" """{"prompt":"x","size":"64x64","num_inference_steps":2,"guidance_scale":3.5,"num_images_per_prompt":2,"quality":"auto"}"""
        Expect.equal aliased.StatusCode HttpStatusCode.OK "diffusers' names are accepted"
        Expect.equal ((json aliased).GetProperty("data").GetArrayLength()) 2 "num_images_per_prompt = n"
        use models = get client "/v1/models"
        let id = ((json models).GetProperty("data")[0]).GetProperty("id").GetString()
        use named = post client "/v1/images/generations" (sprintf """{"prompt":"x","size":"64x64","steps":2,"model":"%s"}""" id)
        Expect.equal named.StatusCode HttpStatusCode.OK "the model GET /v1/models lists is accepted"
        // the native route takes model too, with the same rule (before: a 400 "not a field of this route")
        use native = post client "/v1/generations" (sprintf """{"prompt":"x","width":64,"height":64,"steps":2,"model":"%s"}""" id)
        Expect.equal native.StatusCode HttpStatusCode.Accepted "POST /v1/generations with the served model's name"
        use other = post client "/v1/generations" """{"prompt":"x","model":"dall-e-3"}"""
        Expect.equal (errorsOf other) (set [ "model" ]) "another model is a 400 naming model"

let ``a generation's output format, compression and frame rate reach its file`` =
    testCase "a generation's output format, compression and frame rate reach its file" <| fun () ->
        let client = readyClient server.Value
        let id = submit client """{"prompt":"waves","width":128,"height":64,"num_frames":5,"num_inference_steps":2,"output_format":"webm","output_compression":30,"fps":10}"""
        Expect.equal (status (pollUntil client 120.0 id isFinal)) "succeeded" "succeeded"
        use r = get client (sprintf "/v1/generations/%s/result" id)
        Expect.equal r.Content.Headers.ContentType.MediaType "video/webm" "webm"
        let v = probeVideo (bytes r) "webm"
        Expect.equal (v.Codec, v.Frames, v.Width, v.Height) ("vp9", 5, 128, 64) "codec, frames, size"
        Expect.floatClose Accuracy.medium v.FrameRate 10.0 "fps"
        use bad = post client "/v1/generations" """{"prompt":"x","frames":3,"output_format":"png","num_images_per_prompt":2}"""
        Expect.equal (errorsOf bad) (set [ "output_format"; "num_images" ]) "png holds one frame; one video per request (num_images_per_prompt is num_images' alias)"
        use many = post client "/v1/generations" """{"prompt":"x","num_images":5}"""
        Expect.equal (errorsOf many) (set [ "num_images" ]) "at most Trident:Limits:MaxImagesPerRequest (4) images"

// batching on, one device: a request's images wait for the one device together and run as one batch task
let private batching = Fixture(fun () -> new TridentFactory([ "Trident:Serving:MaxBatch", "8"; "Trident:Devices:Count", "1" ]))

/// trident_batch_size's (sum, count) from /metrics: requests in batch tasks of more than one, and those tasks.
let private batchSizes (client: HttpClient) =
    use r = get client "/metrics"
    let lines = r.Content.ReadAsStringAsync().Result.Split('\n')
    let value (name: string) =
        lines |> Array.tryFind (fun l -> l.StartsWith(name + "{")) |> Option.map (fun l -> float (l.Substring(l.LastIndexOf(' ') + 1))) |> Option.defaultValue 0.0
    value "trident_batch_size_sum", value "trident_batch_size_count"

let private finished (client: HttpClient) (id: string) =
    let status = pollUntil client 300.0 id (fun s -> List.contains (s.GetProperty("status").GetString()) [ "succeeded"; "failed"; "cancelled" ])
    Expect.equal (status.GetProperty("status").GetString()) "succeeded" (sprintf "job %s succeeded" id)
    use r = get client (sprintf "/v1/generations/%s/result" id)
    bytes r

let ``num_images on /v1/generations runs a request's images as one batch, each the same as its seed alone`` =
    testCase "num_images on /v1/generations runs a request's images as one batch, each the same as its seed alone" <| fun () ->
        let client = readyClient batching.Value
        let sumBefore, countBefore = batchSizes client
        use r = post client "/v1/generations" """{"prompt":"a fox","width":64,"height":64,"steps":2,"seed":21,"guidance":4,"num_images":3}"""
        Expect.equal r.StatusCode HttpStatusCode.Accepted "202"
        let body = json r
        let images = [ for i in body.GetProperty("images").EnumerateArray() -> i.GetProperty("id").GetString(), i.GetProperty("seed").GetInt64() ]
        Expect.equal (List.map snd images) [ 21L; 22L; 23L ] "one job per image, seeds seed, seed + 1, …"
        Expect.equal (fst images.Head) (body.GetProperty("id").GetString()) "the first image's job is the answer's job"
        let files = images |> List.map (fst >> finished client)
        let sumAfter, countAfter = batchSizes client
        Expect.equal (sumAfter - sumBefore, countAfter - countBefore) (3.0, 1.0) "the three images ran as one batch task of 3"
        // /v1/plan counts the round's requests and, apart, its dispatches: a batch of 3 is 3 requests in 1 dispatch
        let rounds = (json (get client "/v1/plan")).GetProperty("recent_rounds")
        let counts = [ for r in rounds.EnumerateArray() -> r.GetProperty("dispatched").GetInt32(), (match r.TryGetProperty "dispatches" with | true, d -> d.GetInt32() | _ -> -1) ]
        Expect.contains counts (3, 1) (sprintf "the batch's round: 3 requests in 1 dispatch (rounds: %A)" counts)
        Expect.isTrue (counts |> List.forall (fun (n, d) -> d >= 0 && d <= n && (n = 0 || d >= 1))) "every round: at most one dispatch per request, at least one when it routed any"
        Expect.notEqual files.[0] files.[1] "other seeds, other images"
        // each alone (nothing else waiting, so a batch of one); with guidance a batch item is bit-identical to it
        for (_, seed), file in List.zip images files do
            use alone = post client "/v1/generations" (sprintf """{"prompt":"a fox","width":64,"height":64,"steps":2,"seed":%d,"guidance":4}""" seed)
            Expect.equal (finished client ((json alone).GetProperty("id").GetString())) file (sprintf "the image of seed %d is the request run alone with it" seed)
        Expect.equal (batchSizes client) (sumAfter, countAfter) "requests alone ran alone"

/// POSTs a form (as OpenAI's and vLLM-Omni's clients call /v1/videos).
let private postForm (client: HttpClient) (path: string) (fields: (string * string) list) =
    use form = new MultipartFormDataContent()
    for k, v in fields do form.Add(new StringContent(v), k)
    client.PostAsync(path, form).Result

/// Polls a video until it is completed or failed.
let private pollVideo (client: HttpClient) (id: string) =
    let deadline = DateTime.UtcNow.AddSeconds 120.0
    let mutable last = json (get client ("/v1/videos/" + id))
    while status last <> "completed" && status last <> "failed" && DateTime.UtcNow < deadline do
        Thread.Sleep 50
        last <- json (get client ("/v1/videos/" + id))
    last

let ``a video job is created, polled, downloaded as an MP4 with the frames and rate asked for, and deleted`` =
    testCase "a video job is created, polled, downloaded as an MP4 with the frames and rate asked for, and deleted" <| fun () ->
        let client = readyClient server.Value
        // vLLM-Omni's benchmark client: a form with num_frames, fps, width, height, num_inference_steps, seed
        use created = postForm client "/v1/videos" [ "prompt", "waves"; "width", "128"; "height", "64"; "num_frames", "7"; "fps", "12"; "num_inference_steps", "2"; "seed", "5" ]
        Expect.equal created.StatusCode HttpStatusCode.OK "200 with the video object"
        let v = json created
        let id = v.GetProperty("id").GetString()
        Expect.stringStarts id "video_" "OpenAI-style id"
        Expect.equal (v.GetProperty("object").GetString()) "video" "object"
        Expect.contains [ "queued"; "in_progress" ] (status v) "not done yet"
        let final = pollVideo client id
        Expect.equal (status final) "completed" "completed"
        Expect.equal (final.GetProperty("progress").GetInt32()) 100 "progress"
        Expect.equal (final.GetProperty("size").GetString()) "128x64" "size"
        use content = get client (sprintf "/v1/videos/%s/content" id)
        Expect.equal content.Content.Headers.ContentType.MediaType "video/mp4" "mp4"
        let p = probeVideo (bytes content) "mp4"
        Expect.equal (p.Codec, p.PixelFormat, p.Frames, p.Width, p.Height) ("h264", "yuv420p", 7, 128, 64) "the file"
        Expect.floatClose Accuracy.medium p.FrameRate 12.0 "fps"
        Expect.isTrue p.FastStart "+faststart"
        use deleted = client.DeleteAsync("/v1/videos/" + id).Result
        Expect.isTrue ((json deleted).GetProperty("deleted").GetBoolean()) "deleted"
        use gone = get client ("/v1/videos/" + id)
        Expect.equal gone.StatusCode HttpStatusCode.NotFound "forgotten"
        // OpenAI's fields as JSON: seconds × fps + 1 frames, as an animated WebP on request
        use json' = post client "/v1/videos" """{"prompt":"rain","seconds":"1","size":"64x64","fps":4,"num_inference_steps":2,"output_format":"webp"}"""
        let webpId = (json json').GetProperty("id").GetString()
        Expect.equal (status (pollVideo client webpId)) "completed" "completed"
        use webpFile = get client (sprintf "/v1/videos/%s/content" webpId)
        let webp = decodeImage (bytes webpFile)
        Expect.equal (webp.Format, webp.Frames) (SKEncodedImageFormat.Webp, 5) "1 s at 4 fps: 5 frames"
        Expect.equal webp.FrameDurationsMs (List.replicate 5 250) "at 4 fps"
        use bad = postForm client "/v1/videos" [ "prompt", "x"; "seconds", "2"; "num_frames", "5"; "fps", "fast"; "output_format", "png" ]
        // every field's problem in one 400 (before, the value that did not convert hid the others)
        Expect.equal (errorsOf bad) (set [ "fps"; "seconds"; "output_format" ]) "a form value that does not convert is named with the other fields' problems"
        use bad2 = post client "/v1/videos" """{"prompt":"x","seconds":"2","num_frames":5,"output_format":"png","input_reference":"x"}"""
        Expect.equal (errorsOf bad2) (set [ "input_reference"; "seconds"; "output_format" ]) "unsupported fields are named with the others' problems"
        use bad3 = post client "/v1/videos" """{"prompt":"x","seconds":"2","num_frames":5,"output_format":"png"}"""
        Expect.equal (errorsOf bad3) (set [ "seconds"; "output_format" ]) "seconds or num_frames; a video format"
        // seconds that make more frames than the pipeline does: the seconds are named, not num_frames (not sent)
        use long = post client "/v1/videos" """{"prompt":"x","seconds":"4","fps":8,"size":"64x64"}"""
        Expect.equal (errorsOf long) (set [ "seconds" ]) "seconds named"
        Expect.stringContains (long.Content.ReadAsStringAsync().Result) "4 s at 8 fps is 33 frames" "and what they make"

/// A video's `seconds` is the clip's length as its request counts it ((frames − 1) / fps: seconds × fps + 1 frames), so
/// it is the seconds the request sent, and every seconds the route answers is one it takes back for the same frames.
/// Before, "1" answered "1.125" (frames / fps) and a request without a length "0.25", while "0.5" was refused ("must be
/// a whole number of seconds ≥ 1"): a client could not send back what it had received.
let ``a video's seconds is the length its request asked for, and the route takes back every seconds it answers`` =
    testCase "a video's seconds is the length its request asked for, and the route takes back every seconds it answers" <| fun () ->
        let client = readyClient server.Value
        // the video's seconds, frames and rate (the job is deleted at once: only the answer is looked at)
        let create (body: string) =
            use r = post client "/v1/videos" body
            Expect.equal r.StatusCode HttpStatusCode.OK (sprintf "%s: %s" body (r.Content.ReadAsStringAsync().Result))
            let v = json r
            client.DeleteAsync("/v1/videos/" + v.GetProperty("id").GetString()).Result.Dispose()
            v.GetProperty("seconds").GetString(), v.GetProperty("num_frames").GetInt32(), v.GetProperty("fps").GetInt32()
        Expect.equal (create """{"prompt":"v","size":"64x64","seconds":"1","num_inference_steps":1}""") ("1", 9, 8) "1 s at 8 fps: 9 frames, answered as the 1 s asked for"
        Expect.equal (create """{"prompt":"v","size":"64x64","seconds":"0.5","num_inference_steps":1}""") ("0.5", 5, 8) "half a second: 5 frames"
        // whatever made the frames (no length, num_frames, a length between two frame counts), the seconds answered
        // make the same frames again
        for body in [ """{"prompt":"v","size":"64x64","num_inference_steps":1}"""
                      """{"prompt":"v","size":"64x64","num_frames":3,"fps":3,"num_inference_steps":1}"""
                      """{"prompt":"v","size":"64x64","num_frames":7,"fps":12,"num_inference_steps":1}"""
                      """{"prompt":"v","size":"64x64","seconds":"0.3","num_inference_steps":1}""" ] do
            let seconds, frames, fps = create body
            let again = create (sprintf """{"prompt":"v","size":"64x64","seconds":"%s","fps":%d,"num_inference_steps":1}""" seconds fps)
            Expect.equal again (seconds, frames, fps) (sprintf "%s answered seconds %s: sent back, the same video" body seconds)
        // a length is digits with an optional fraction, greater than 0
        for seconds in [ "0"; "0.0"; "-1"; "1e1"; " 1"; "1."; ".5"; "1,5"; "four" ] do
            use r = post client "/v1/videos" (sprintf """{"prompt":"v","size":"64x64","seconds":"%s"}""" seconds)
            Expect.equal r.StatusCode HttpStatusCode.BadRequest seconds
            Expect.equal (errorsOf r) (set [ "seconds" ]) (seconds + ": seconds is named")
            Expect.stringContains ((json r).GetProperty("errors").GetProperty("seconds").[0].GetString()) "greater than 0 in plain digits" seconds

/// The frame range the video route states is the one it applies: from 2 frames (one frame is an image) to the most
/// frames. Before, num_frames 10 and seconds "8" said "must be between 1 and 9", yet num_frames 1 was refused with "a
/// video has at least 2 frames".
let ``the video route states the frame range it applies, from 2 frames to the most`` =
    testCase "the video route states the frame range it applies, from 2 frames to the most" <| fun () ->
        let client = readyClient server.Value
        let message (body: string) (field: string) =
            use r = post client "/v1/videos" body
            Expect.equal r.StatusCode HttpStatusCode.BadRequest body
            Expect.equal (errorsOf r) (set [ field ]) (sprintf "%s: %s is named" body field)
            (json r).GetProperty("errors").GetProperty(field).[0].GetString()
        for body, field in [ """{"prompt":"v","size":"64x64","num_frames":10}""", "num_frames"
                             """{"prompt":"v","size":"64x64","num_frames":0}""", "num_frames"
                             """{"prompt":"v","size":"64x64","num_frames":1}""", "num_frames"
                             """{"prompt":"v","size":"64x64","seconds":"8"}""", "seconds"
                             """{"prompt":"v","size":"64x64","seconds":"0.1"}""", "seconds" ] do
            Expect.stringContains (message body field) "must be between 2 and 9" (body + ": the range the route applies")
        Expect.stringContains (message """{"prompt":"v","size":"64x64","num_frames":1}""" "num_frames") "one frame is an image" "and why one frame is not a video"
        Expect.stringContains (message """{"prompt":"v","size":"64x64","seconds":"0.1"}""" "seconds") "0.1 s at 8 fps is 1 frame: the frame count must be between 2 and 9" "seconds that make one frame"
        // the ends of the range are taken
        for frames in [ 2; 9 ] do
            use ok = post client "/v1/videos" (sprintf """{"prompt":"v","size":"64x64","num_frames":%d,"num_inference_steps":1}""" frames)
            Expect.equal ok.StatusCode HttpStatusCode.OK (sprintf "%d frames: %s" frames (ok.Content.ReadAsStringAsync().Result))
            client.DeleteAsync("/v1/videos/" + (json ok).GetProperty("id").GetString()).Result.Dispose()

/// DELETE /v1/videos/{id} of a job still running: the video is gone at once, as OpenAI's API has it — a 404 on every
/// route right after the answer, not only once the job stopped. Before, a GET right after {"deleted": true} read
/// "in_progress" (and /v1/generations/{n} "diffusing") until the job's next step boundary.
let ``a video deleted while it runs is gone at once on every route, and its job still stops`` =
    testCase "a video deleted while it runs is gone at once on every route, and its job still stops" <| fun () ->
        let client = readyClient server.Value
        for attempt in 1..4 do
            // long steps (256², 9 frames): a GET right after the DELETE falls inside the running step
            use created = post client "/v1/videos" """{"prompt":"waves","size":"256x256","num_frames":9,"num_inference_steps":2000}"""
            Expect.equal created.StatusCode HttpStatusCode.OK "queued"
            let id = (json created).GetProperty("id").GetString()
            let job = id.Substring "video_".Length
            pollUntil client 120.0 job (fun s -> s.GetProperty("step").GetInt32() >= 1) |> ignore
            use deleted = client.DeleteAsync("/v1/videos/" + id).Result
            Expect.equal deleted.StatusCode HttpStatusCode.OK (sprintf "attempt %d: the DELETE" attempt)
            Expect.isTrue ((json deleted).GetProperty("deleted").GetBoolean()) "deleted"
            for path in [ "/v1/videos/" + id; "/v1/videos/" + id + "/content"; "/v1/generations/" + job; "/v1/generations/" + job + "/result" ] do
                use gone = get client path
                Expect.equal gone.StatusCode HttpStatusCode.NotFound (sprintf "attempt %d: %s right after the DELETE (%s)" attempt path (gone.Content.ReadAsStringAsync().Result))
            use again = client.DeleteAsync("/v1/videos/" + id).Result
            Expect.equal again.StatusCode HttpStatusCode.NotFound "a second DELETE: no such video"
            let listed (path: string) = [ for v in (json (get client path)).GetProperty("data").EnumerateArray() -> v.GetProperty("id").GetString() ]
            Expect.isFalse (List.contains id (listed "/v1/videos?limit=100")) "not listed as a video"
            Expect.isFalse (List.contains job (listed "/v1/generations?limit=100")) "not listed as a job"
            // its devices are freed: the job stops at its next step boundary and is forgotten (no job left running)
            let deadline = DateTime.UtcNow.AddSeconds 60.0
            let running () = (json (get client "/v1/cluster")).GetProperty("devices").EnumerateArray() |> Seq.exists (fun d -> d.GetProperty("busy").GetBoolean())
            while running () && DateTime.UtcNow < deadline do Thread.Sleep 20
            Expect.isFalse (running ()) "the deleted job stopped"
        // the id, not the video, is what is wrong in a malformed id (as on /v1/generations)
        for bad in [ "video_-1"; "video_abc"; "video_+1"; "12" ] do
            use r = get client ("/v1/videos/" + bad)
            Expect.equal r.StatusCode HttpStatusCode.NotFound bad
            Expect.stringContains ((json r).GetProperty("detail").GetString()) (sprintf "'%s' is not a video id" bad) bad

let ``a video form in another charset than UTF-8 is a 415, and percent-escapes that are not UTF-8 are a 400 naming the field`` =
    testCase "a video form in another charset than UTF-8 is a 415, and percent-escapes that are not UTF-8 are a 400 naming the field" <| fun () ->
        let client = readyClient server.Value
        let send (contentType: string) (body: string) =
            use content = new StringContent(body)
            content.Headers.ContentType <- Headers.MediaTypeHeaderValue.Parse contentType
            client.PostAsync("/v1/videos", content).Result
        // the form reader reads UTF-8 only: a latin-1 form's "caf%E9" was queued with the prompt "caf%E9"
        use latin1 = send "application/x-www-form-urlencoded; charset=latin1" "prompt=caf%E9&size=64x64&num_frames=3&num_inference_steps=1"
        Expect.equal latin1.StatusCode HttpStatusCode.UnsupportedMediaType (latin1.Content.ReadAsStringAsync().Result)
        Expect.equal latin1.Content.Headers.ContentType.MediaType "application/problem+json" "problem+json"
        Expect.equal (errorsOf latin1) (set [ "$" ]) "the body is named"
        use multipart = send "multipart/form-data; boundary=b; charset=iso-8859-1" "--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx\r\n--b--\r\n"
        Expect.equal multipart.StatusCode HttpStatusCode.UnsupportedMediaType "a multipart form naming another charset too"
        // UTF-8 forms: escapes that do not decode (a lone %E9, an encoded surrogate) are named, not kept as literal text
        use bad = send "application/x-www-form-urlencoded" "prompt=caf%E9&negative_prompt=%ED%A0%80&size=64x64&num_frames=3&num_inference_steps=1"
        Expect.equal bad.StatusCode HttpStatusCode.BadRequest (bad.Content.ReadAsStringAsync().Result)
        Expect.equal (errorsOf bad) (set [ "prompt"; "negative_prompt" ]) "each field with such escapes"
        use badKey = send "application/x-www-form-urlencoded" "prompt=x&%FF=1"
        Expect.equal (errorsOf badKey) (set [ "\uFFFD" ]) "a key that does not decode, shown with U+FFFD"
        // the same form in UTF-8 (charset named or not) is read as sent: "café", emoji included
        for contentType in [ "application/x-www-form-urlencoded"; "application/x-www-form-urlencoded; charset=UTF-8" ] do
            use ok = send contentType "prompt=caf%C3%A9+%F0%9F%A6%8A&size=64x64&num_frames=3&num_inference_steps=1"
            Expect.equal ok.StatusCode HttpStatusCode.OK (ok.Content.ReadAsStringAsync().Result)
            let video = json ok
            Expect.equal (video.GetProperty("prompt").GetString()) "caf\u00e9 \U0001F98A" "the prompt as sent"
            client.DeleteAsync("/v1/videos/" + video.GetProperty("id").GetString()).Result.Dispose()

let ``vLLM-Omni's chat route takes extra_body or top-level parameters and answers the image as a data URL`` =
    testCase "vLLM-Omni's chat route takes extra_body or top-level parameters and answers the image as a data URL" <| fun () ->
        let client = readyClient server.Value
        let image (body: string) =
            use r = post client "/v1/chat/completions" body
            Expect.equal r.StatusCode HttpStatusCode.OK body
            let answer = json r
            Expect.equal (answer.GetProperty("object").GetString()) "chat.completion" "object"
            let part = ((answer.GetProperty("choices")[0]).GetProperty("message").GetProperty("content"))[0]
            Expect.equal (part.GetProperty("type").GetString()) "image_url" "an image_url part"
            let url = part.GetProperty("image_url").GetProperty("url").GetString()
            Expect.stringStarts url "data:image/png;base64," "a PNG data URL"
            decodeImage (Convert.FromBase64String(url.Substring(url.IndexOf ',' + 1)))
        // exactly what vLLM-Omni's benchmark client (benchmarks/diffusion/backends.py) sends
        use models = get client "/v1/models"
        let model = ((json models).GetProperty("data")[0]).GetProperty("id").GetString()
        let a = image (sprintf """{"model":"%s","messages":[{"role":"user","content":"a red fox"}],"extra_body":{"height":64,"width":128,"num_inference_steps":2,"seed":3}}""" model)
        Expect.equal (a.Width, a.Height) (128, 64) "extra_body's size"
        // the OpenAI SDK's extra_body= merges the fields into the top level; text parts are the prompt
        let b = image """{"messages":[{"role":"user","content":[{"type":"text","text":"a red fox"}]}],"height":64,"width":128,"num_inference_steps":2,"seed":3,"guidance_scale":4.0}"""
        Expect.equal b.Rgb a.Rgb "the same request either way"
        use both = post client "/v1/chat/completions" """{"messages":[{"role":"user","content":"x"}],"seed":1,"extra_body":{"seed":2,"true_cfg_scale":4}}"""
        Expect.equal (errorsOf both) (set [ "extra_body.seed"; "true_cfg_scale" ]) "a field in both places, and unknown fields"
        use roles = post client "/v1/chat/completions" """{"messages":[{"role":"system","content":"be nice"},{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:,"}}]}],"stream":true}"""
        Expect.equal (errorsOf roles) (set [ "messages[0].role"; "messages[1].content[0]"; "stream" ]) "what the route cannot honour is named"

let ``the model list names the served pipeline, and the OpenAPI document lists the new routes`` =
    testCase "the model list names the served pipeline, and the OpenAPI document lists the new routes" <| fun () ->
        let client = readyClient server.Value
        use r = get client "/v1/models"
        let body = json r
        Expect.equal (body.GetProperty("object").GetString()) "list" "a list"
        let m = (body.GetProperty("data"))[0]
        Expect.equal (m.GetProperty("object").GetString(), m.GetProperty("owned_by").GetString()) ("model", "trident") "a model"
        Expect.equal (m.GetProperty("task").GetString()) "text-to-video" "the tiny pipeline makes videos (1–9 frames)"
        let doc = json (get client "/openapi/v1.json")
        let paths = [ for p in doc.GetProperty("paths").EnumerateObject() -> p.Name ] |> Set.ofList
        for route in [ "/v1/models"; "/v1/chat/completions"; "/v1/videos"; "/v1/videos/{id}"; "/v1/videos/{id}/content" ] do
            Expect.contains paths route "the OpenAPI document lists the route"

// ---- the official openai npm client ---------------------------------------------------------------------

/// Runs a process to its end within `seconds`; returns its exit code and its output, or None when it timed out.
let private run (file: string) (args: string list) (dir: string) (seconds: int) =
    let info = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir)
    for a in args do info.ArgumentList.Add a
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if p.WaitForExit(seconds * 1000) then Some(p.ExitCode, out.Result + err.Result)
    else
        p.Kill true
        None

/// The openai package version the test installs (npm), and where (kept between runs under the tests' home).
let private openaiVersion = "7.59.0"

/// A Kestrel server on 127.0.0.1 (a random port) with the base settings: node reaches it over a socket.
type private SocketServer() =
    inherit TridentFactory([])
    member this.Start() =
        this.UseKestrel(fun (o: Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions) -> o.Listen(IPAddress.Loopback, 0))
        this.StartServer()

/// Behind a reverse proxy on this machine the images route's `url` answers are the address the client reached
/// (X-Forwarded-Proto / -Host), not the server's own; before, http://127.0.0.1:PORT whatever the proxy said.
let ``an image url follows the scheme and host a proxy on this machine forwards`` =
    testCase "an image url follows the scheme and host a proxy on this machine forwards" <| fun () ->
        use factory = new SocketServer()
        factory.Start()
        let client = factory.CreateClient()
        waitReady client
        let urlOf (headers: (string * string) list) =
            use request = new HttpRequestMessage(HttpMethod.Post, "/v1/images/generations")
            for k, v in headers do request.Headers.Add(k, v)
            request.Content <- new StringContent("""{"prompt":"proxied","size":"64x64","steps":1,"response_format":"url"}""", Text.Encoding.UTF8, "application/json")
            use r = client.SendAsync(request).Result
            Expect.equal r.StatusCode HttpStatusCode.OK "the images"
            (json r).GetProperty("data").[0].GetProperty("url").GetString()
        Expect.stringStarts (urlOf [ "X-Forwarded-Proto", "https"; "X-Forwarded-Host", "api.example.com" ]) "https://api.example.com/v1/generations/" "the forwarded address"
        Expect.stringStarts (urlOf []) (client.BaseAddress.ToString().TrimEnd('/') + "/v1/generations/") "without a proxy, the server's own"

let ``a body over the limit sent without a Content-Length is a 413 on every body route, a form's too`` =
    testCase "a body over the limit sent without a Content-Length is a 413 on every body route, a form's too" <| fun () ->
        // a real socket (a free port): the in-memory test server gives every body a Content-Length, so a chunked one never arrives
        use factory = new SocketServer()
        factory.Start()
        let client = factory.CreateClient()
        waitReady client
        use socket = new HttpClient(BaseAddress = client.BaseAddress)
        let unsized (body: byte[]) (contentType: string) =
            let content =
                { new HttpContent() with
                    member _.SerializeToStreamAsync(stream, _) = stream.WriteAsync(body, 0, body.Length)
                    member _.TryComputeLength(length: byref<int64>) =
                        length <- 0L
                        false }
            content.Headers.ContentType <- Headers.MediaTypeHeaderValue.Parse contentType
            content
        let big = String('a', 1_100_000)
        for path, contentType, body in
            [ "/v1/videos", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n" + big + "\r\n--b--\r\n"
              "/v1/videos", "application/x-www-form-urlencoded", "prompt=" + big
              "/v1/videos", "application/json", "{\"prompt\":\"" + big + "\"}"
              "/v1/generations", "application/json", "{\"prompt\":\"" + big + "\"}" ] do
            use content = unsized (Text.Encoding.UTF8.GetBytes body) contentType
            Expect.isFalse content.Headers.ContentLength.HasValue "sent chunked, without a Content-Length"
            use r = socket.PostAsync(path, content).Result
            // a multipart form over the limit was a 400 "the form could not be read: Multipart body length limit … exceeded"
            Expect.equal r.StatusCode HttpStatusCode.RequestEntityTooLarge (sprintf "%s %s: %s" path contentType (r.Content.ReadAsStringAsync().Result))
            Expect.equal (errorsOf r) (set [ "$" ]) "the body is named"

let ``the official openai npm client gets PNG, JPEG, WebP and url images and an MP4 through /v1/videos`` =
    testCase "the official openai npm client gets PNG, JPEG, WebP and url images and an MP4 through /v1/videos" <| fun () ->
        if isNull (Trident.Runtime.Imaging.VideoEncoder.FindFfmpeg()) then failwith Trident.Runtime.Imaging.VideoEncoder.MissingFfmpeg
        let onPath name = (Environment.GetEnvironmentVariable "PATH").Split(':') |> Array.exists (fun d -> File.Exists(Path.Combine(d, name)))
        if not (onPath "node" && onPath "npm") then skiptest "node and npm are not installed (Debian: apt-get install -y nodejs npm)"
        // openai 7 uses Node 20's globals (File, for the multipart video request); it declares Node ≥ 22 but runs on 20
        match run "node" [ "--version" ] "." 30 with
        | Some(0, v) when (let m = Text.RegularExpressions.Regex.Match(v, @"^v(\d+)\.") in m.Success && int m.Groups[1].Value >= 20) -> ()
        | Some(_, v) -> skiptest (sprintf "openai@%s needs Node.js 20 or later; this node is %s (Debian 12's nodejs is 18: install a newer one)" openaiVersion (v.Trim()))
        | None -> skiptest "node --version did not answer within 30 s"
        let scratch = Path.Combine(TinyFixture.home, "openai-npm-" + openaiVersion)
        Directory.CreateDirectory scratch |> ignore
        if not (File.Exists(Path.Combine(scratch, "node_modules", "openai", "package.json"))) then
            match run "npm" [ "install"; "openai@" + openaiVersion; "--no-audit"; "--no-fund"; "--loglevel=error"; "--prefix"; scratch ] scratch 240 with
            | Some(0, _) -> ()
            | Some(code, output) -> skiptest (sprintf "npm could not install openai@%s (exit %d; no registry?): %s" openaiVersion code output)
            | None -> skiptest (sprintf "npm install openai@%s took over 240 s" openaiVersion)
        File.Copy(Path.Combine(AppContext.BaseDirectory, "openai-client", "drive.mjs"), Path.Combine(scratch, "drive.mjs"), true)
        use factory = new SocketServer()
        factory.Start()
        let client = factory.CreateClient()
        waitReady client
        let baseUrl = client.BaseAddress.ToString().TrimEnd('/')
        Expect.stringStarts baseUrl "http://127.0.0.1:" "a loopback socket"
        let out = Path.Combine(scratch, "out")
        if Directory.Exists out then Directory.Delete(out, true)
        Directory.CreateDirectory out |> ignore
        match run "node" [ "drive.mjs"; baseUrl; out ] scratch 300 with
        | None -> failwith "the openai client did not finish within 300 s"
        | Some(code, output) ->
            Expect.equal code 0 output
            for name, format in [ "image.png", SKEncodedImageFormat.Png; "image.jpeg", SKEncodedImageFormat.Jpeg; "image.webp", SKEncodedImageFormat.Webp; "url.png", SKEncodedImageFormat.Png ] do
                let image = decodeImage (File.ReadAllBytes(Path.Combine(out, name)))
                Expect.equal (image.Format, image.Width, image.Height) (format, 64, 64) name
            let v = probeVideo (File.ReadAllBytes(Path.Combine(out, "video.mp4"))) "mp4"
            Expect.equal (v.Codec, v.Width, v.Height, v.Frames) ("h264", 64, 64, 9) "seconds 1 at 8 fps: 9 frames"
            Expect.stringContains output "videos.delete: " "the video was deleted"

[<Tests>]
let tests =
    testList "integration" [ testList "OutputsApiTests" [
        ``the image route answers PNG, JPEG or WebP as output_format asks, as base64 or as a URL of the result``
        ``fields the image route cannot honour are a 400 naming each, and aliases stay strict``
        ``a generation's output format, compression and frame rate reach its file``
        ``num_images on /v1/generations runs a request's images as one batch, each the same as its seed alone``
        ``a video job is created, polled, downloaded as an MP4 with the frames and rate asked for, and deleted``
        ``a video's seconds is the length its request asked for, and the route takes back every seconds it answers``
        ``the video route states the frame range it applies, from 2 frames to the most``
        ``a video deleted while it runs is gone at once on every route, and its job still stops``
        ``a video form in another charset than UTF-8 is a 415, and percent-escapes that are not UTF-8 are a 400 naming the field``
        ``vLLM-Omni's chat route takes extra_body or top-level parameters and answers the image as a data URL``
        ``the model list names the served pipeline, and the OpenAPI document lists the new routes``
        ``the official openai npm client gets PNG, JPEG, WebP and url images and an MP4 through /v1/videos``
        ``a body over the limit sent without a Content-Length is a 413 on every body route, a form's too``
        ``an image url follows the scheme and host a proxy on this machine forwards``
    ] |> testSequenced ]
