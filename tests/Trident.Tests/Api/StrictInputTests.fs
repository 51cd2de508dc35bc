/// Nothing accepted is ever lost, inputs and configuration: every route refuses what it would coerce, cut or
/// ignore (numbers sent as strings, duplicate and unknown keys, OpenAI fields it does not implement,
/// priority out of range, seeds a JSON client cannot hold, requests over the cost limits), the job status
/// says how much of the prompt the encoder read, configuration keys of every source are checked (unknown keys,
/// unparsable values: exit 2 with the complete list), and trace files report every problem in one pass.
module Trident.Tests.Api.StrictInputTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open Microsoft.Extensions.Configuration
open Expecto
open Trident.Api.Options
open Trident.Scheduling
open Trident.Tests.Api.ApiFixture
open Trident.Tests.TestSupport

let private messagesOf (r: HttpResponseMessage) =
    let body = json r
    [ for p in body.GetProperty("errors").EnumerateObject() do
          for m in p.Value.EnumerateArray() -> p.Name, m.GetString() ]

/// 2^53 − 1: the largest integer a JavaScript number holds exactly.
let private maxSafe = 9_007_199_254_740_991L

/// A server with cost limits low enough that the tiny pipeline's largest request exceeds both, and the
/// smallest fits both.
type StrictServer() =
    inherit TridentFactory([ "Trident:Limits:MaxPredictedSeconds", "5"; "Trident:Limits:MaxActivationGb", "0.5" ])

let private server = Fixture(fun () -> new StrictServer())

let private cancel (client: HttpClient) (id: string) = client.DeleteAsync("/v1/generations/" + id).Result.Dispose()

let ``a number sent as a string, a duplicate key or an unknown field is a 400 naming it, on both generation routes`` =
    testCase "a number sent as a string, a duplicate key or an unknown field is a 400 naming it, on both generation routes" <| fun () ->
        let client = readyClient server.Value
        let expect (path: string) (body: string) (fields: string list) =
            use r = post client path body
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (sprintf "%s %s" path body)
            Expect.equal r.Content.Headers.ContentType.MediaType "application/problem+json" "problem+json"
            Expect.equal (errorsOf r) (Set.ofList fields) (sprintf "the fields named for %s" body)
        expect "/v1/generations" """{"prompt":"a fox","width":128,"height":128,"steps":"8"}""" [ "steps" ]
        expect "/v1/generations" """{"prompt":"a fox","width":"128","height":128,"seed":"7","guidance":"3"}""" [ "width"; "seed"; "guidance" ]
        expect "/v1/generations" """{"prompt":"a fox","steps":1,"steps":2}""" [ "steps" ]
        expect "/v1/generations" """{"prompt":"a fox","stpes":2,"sampler":"euler"}""" [ "stpes"; "sampler" ]
        expect "/v1/generations" """{"prompt":"a fox","width":1e400}""" [ "width" ]
        expect "/v1/images/generations" """{"prompt":"a fox","n":"2","size":"64x64"}""" [ "n" ]
        expect "/v1/images/generations" """{"prompt":"a fox","n":1,"n":2}""" [ "n" ]
        expect "/v1/images/generations" """{"prompt":"a fox","moderation":"low","style":"vivid","user":"u1","sizee":"64x64"}""" [ "moderation"; "style"; "user"; "sizee" ]
        expect "/v1/images/generations" """{"prompt":"a fox","model":"dall-e-3"}""" [ "model" ]
        // the messages say what is wrong with the value sent, not the range of a C# integer
        let message (path: string) (body: string) =
            use r = post client path body
            Expect.equal r.StatusCode HttpStatusCode.BadRequest body
            r.Content.ReadAsStringAsync().Result
        Expect.stringContains (message "/v1/generations" """{"prompt":"a fox","steps":2.5}""") "must be a whole number, written without a fraction or exponent (got 2.5)" "a fraction"
        Expect.stringContains (message "/v1/generations" """{"prompt":"a fox","steps":99999999999}""") "is out of range (got 99999999999)" "too large"
        Expect.stringContains (message "/v1/images/generations" """{"prompt":"a fox","size":"99999999999x64"}""") "a side is too large" "a size in digits that overflows"
        Expect.stringContains (message "/v1/generations" (String.replicate 5000 "[" + String.replicate 5000 "]")) "the body is not valid JSON:" "too deep: the parser's reason"
        use ok = post client "/v1/generations" """{"prompt":"a fox","width":64,"height":64,"steps":1}"""
        Expect.equal ok.StatusCode HttpStatusCode.Accepted "the same body with numbers is accepted"
        cancel client ((json ok).GetProperty("id").GetString())

/// A field of the wrong JSON type hid every other field's problems: the body was not bound at all, so the range checks
/// never ran and a client learnt one problem per attempt ("width": "abc" first, then "height": -5). Now the fields that
/// were read are checked in the same 400, on every body route (and in a form); a field that could not be read is named
/// once, for what was wrong with it, and nothing that depends on it is judged on its default.
let ``a field of the wrong type and another field out of range are named in one 400, on every body route`` =
    testCase "a field of the wrong type and another field out of range are named in one 400, on every body route" <| fun () ->
        let client = readyClient server.Value
        let expect (what: string) (r: HttpResponseMessage) (fields: (string * string) list) =
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (sprintf "%s: %s" what (r.Content.ReadAsStringAsync().Result))
            let messages = messagesOf r
            Expect.equal (messages |> List.map fst |> Set.ofList) (fields |> List.map fst |> Set.ofList) (sprintf "%s: the fields named (%A)" what messages)
            for field, part in fields do
                let said = messages |> List.filter (fun (f, _) -> f = field) |> List.map snd
                Expect.equal said.Length 1 (sprintf "%s: %s is named once (%A)" what field said)
                Expect.stringContains said.Head part (sprintf "%s: what is wrong with %s" what field)
        let postJson path body = expect (sprintf "%s %s" path body) (post client path body)
        postJson "/v1/generations" """{"prompt":"a fox","width":"abc","height":-5,"steps":true}"""
            [ "width", "must be a JSON number (got a string)"; "steps", "must be a JSON number (got a boolean)"; "height", "must be between" ]
        // the prompt of the wrong type is named for its type only (not also "is required"), the width's range beside it
        postJson "/v1/generations" """{"prompt":5,"width":100,"height":64,"steps":1}""" [ "prompt", "must be a JSON string (got a number)"; "width", "must be a multiple of 16" ]
        // diffusers' name of a field, and a range problem beside it
        postJson "/v1/generations" """{"prompt":"a fox","num_inference_steps":"8","seed":-1}""" [ "num_inference_steps", "must be a JSON number"; "seed", "must be between 0 and" ]
        // frames could not be read: fps and output_format are not judged as an image's (the default frames)
        postJson "/v1/generations" """{"prompt":"a fox","frames":"5","fps":8,"output_format":"mp4","guidance":-2}""" [ "frames", "must be a JSON number"; "guidance", "must be between 0 and 100" ]
        postJson "/v1/images/generations" """{"prompt":"a fox","n":"2","size":"100x64","style":"vivid"}"""
            [ "n", "must be a JSON number"; "style", "is not supported by this server"; "size", "width 100 must be a multiple of 16" ]
        postJson "/v1/videos" """{"prompt":"a fox","num_frames":"5","priority":9}""" [ "num_frames", "must be a JSON number"; "priority", "from -3 to 3" ]
        postJson "/v1/chat/completions" """{"messages":[{"role":"user","content":"a fox"}],"extra_body":{"seed":"7","num_inference_steps":0}}"""
            [ "seed", "must be a JSON number"; "num_inference_steps", "must be between 1 and" ]
        // a form: a number that does not parse stopped the reading of the whole form
        use form = new FormUrlEncodedContent([ Collections.Generic.KeyValuePair("prompt", "a fox"); Collections.Generic.KeyValuePair("num_frames", "abc")
                                               Collections.Generic.KeyValuePair("size", "100x64") ])
        expect "a form to /v1/videos" (client.PostAsync("/v1/videos", form).Result)
            [ "num_frames", "must be a whole number (got 'abc')"; "size", "width 100 must be a multiple of 16" ]

let ``text that is not valid Unicode anywhere in a chat request, an extra_body that is not an object and a message without a role are a 400 naming where and why`` =
    testCase "text that is not valid Unicode anywhere in a chat request, an extra_body that is not an object and a message without a role are a 400 naming where and why" <| fun () ->
        let client = readyClient server.Value
        // bytes as sent: an escaped unpaired surrogate or a raw byte that is not UTF-8 (0xFF)
        let expect (body: byte[]) (fields: string list) =
            use content = new ByteArrayContent(body)
            content.Headers.ContentType <- Headers.MediaTypeHeaderValue("application/json")
            use r = client.PostAsync("/v1/chat/completions", content).Result
            let shown = Text.Encoding.UTF8.GetString body
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (sprintf "%s: %s" shown (r.Content.ReadAsStringAsync().Result))
            Expect.equal r.Content.Headers.ContentType.MediaType "application/problem+json" "problem+json"
            Expect.equal (errorsOf r) (Set.ofList fields) (sprintf "the fields named for %s" shown)
        let text (s: string) = Text.Encoding.UTF8.GetBytes s
        let raw (before: string) (after: string) = Array.concat [ text before; [| 0xFFuy |]; text after ]
        // a message's content is free-form JSON (a string or a list of parts): its text was read unchecked (500)
        expect (text """{"messages":[{"role":"user","content":"\ud800"}]}""") [ "messages[0].content" ]
        expect (raw """{"messages":[{"role":"user","content":" """ """"}]}""") [ "messages[0].content" ]
        expect (text """{"messages":[{"role":"user","content":[{"type":"text","text":"\ud800"}]}]}""") [ "messages[0].content[0].text" ]
        expect (text """{"messages":[{"role":"user","content":[{"type":"\udfff","text":"a"}]}]}""") [ "messages[0].content[0].type" ]
        expect (raw "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"" "\":\"a\"}]}]}") [ "messages[0].content[0].\uFFFD" ]
        // extra_body's fields were re-serialised before the walk (500 on a byte that is not UTF-8), wherever the bad text was
        expect (raw """{"messages":[{"role":"user","content":"a"}],"extra_body":{"negative_prompt":" """ """"}}""") [ "negative_prompt" ]
        expect (raw """{"messages":[{"role":"user","content":"a"}],"negative_prompt":" """ """","extra_body":{"seed":1}}""") [ "negative_prompt" ]
        // an extra_body that is not an object is named as such (it was "not a field of this route")
        expect (text """{"messages":[{"role":"user","content":"a"}],"extra_body":5}""") [ "extra_body" ]
        expect (text """{"messages":[{"role":"user","content":"a"}],"extra_body":[{"seed":1}]}""") [ "extra_body" ]
        use r = post client "/v1/chat/completions" """{"messages":[{"role":"user","content":"a"}],"extra_body":"x"}"""
        Expect.stringContains (r.Content.ReadAsStringAsync().Result) "must be a JSON object of generation parameters (got a string)" "why"
        // a key given twice inside the free-form content is named (it was "messages[0].content: has the wrong type or is malformed")
        expect (text """{"messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}""") [ "messages[0].content[0].text" ]
        // a message without a role (or with null) says so; it read "must be 'user' (got '')"
        for body in [ """{"messages":[{"content":"a"}]}"""; """{"messages":[{"role":null,"content":"a"}]}""" ] do
            use r = post client "/v1/chat/completions" body
            Expect.equal (messagesOf r) [ "messages[0].role", "is required and must be 'user': the one user message is the prompt" ] body

let ``priority outside -3 … 3 is refused naming the range, and deadline_ms with priority is accepted`` =
    testCase "priority outside -3 … 3 is refused naming the range, and deadline_ms with priority is accepted" <| fun () ->
        let client = readyClient server.Value
        for p in [ 4; -4; 1000 ] do
            use r = post client "/v1/generations" (sprintf """{"prompt":"x","width":64,"height":64,"steps":1,"priority":%d}""" p)
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (sprintf "priority %d" p)
            let messages = messagesOf r
            Expect.equal (messages |> List.map fst |> Set.ofList) (set [ "priority" ]) "the priority field is named"
            Expect.stringContains (snd messages.Head) "from -3 to 3" "the message names the range"
        for body in [ """{"prompt":"x","width":64,"height":64,"steps":1,"deadline_ms":60000,"priority":3}"""
                      """{"prompt":"x","width":64,"height":64,"steps":1,"deadline_ms":60000}"""
                      """{"prompt":"x","width":64,"height":64,"steps":1,"priority":-3}""" ] do
            cancel client (submit client body)

let ``server-drawn seeds fit in 2^53 − 1, larger client seeds are refused, and the OpenAI route reports each image's seed`` =
    testCase "server-drawn seeds fit in 2^53 − 1, larger client seeds are refused, and the OpenAI route reports each image's seed" <| fun () ->
        let client = readyClient server.Value
        for _ in 1..20 do
            use r = post client "/v1/generations" """{"prompt":"x","width":64,"height":64,"steps":1}"""
            Expect.equal r.StatusCode HttpStatusCode.Accepted "r.StatusCode"
            let body = json r
            let seed = body.GetProperty("seed").GetInt64()
            Expect.isTrue (seed >= 0L && seed <= maxSafe) (sprintf "seed %d is within [0, 2^53 − 1]" seed)
            cancel client (body.GetProperty("id").GetString())
        use big = post client "/v1/generations" (sprintf """{"prompt":"x","width":64,"height":64,"steps":1,"seed":%d}""" (maxSafe + 1L))
        Expect.equal big.StatusCode HttpStatusCode.BadRequest "a seed above 2^53 − 1 is refused"
        Expect.equal (errorsOf big) (set [ "seed" ]) "errorsOf big"
        use edge = post client "/v1/images/generations" (sprintf """{"prompt":"x","n":2,"size":"64x64","seed":%d}""" maxSafe)
        Expect.equal edge.StatusCode HttpStatusCode.BadRequest "the second image's seed would pass 2^53 − 1"
        use r = post client "/v1/images/generations" """{"prompt":"two foxes","n":2,"size":"64x64","steps":1,"seed":42}"""
        Expect.equal r.StatusCode HttpStatusCode.OK "r.StatusCode"
        let seeds = [ for item in (json r).GetProperty("data").EnumerateArray() -> item.GetProperty("seed").GetInt64() ]
        Expect.equal seeds [ 42L; 43L ] "each data item carries its seed"
        use drawn = post client "/v1/images/generations" """{"prompt":"a fox","size":"64x64","steps":1}"""
        Expect.equal drawn.StatusCode HttpStatusCode.OK "drawn.StatusCode"
        let seed = (json drawn).GetProperty("data").[0].GetProperty("seed").GetInt64()
        Expect.isTrue (seed >= 0L && seed <= maxSafe) "a drawn seed is reported and within [0, 2^53 − 1]"

let ``the job status says how much of the prompt the encoder read, and prompt limits count characters`` =
    testCase "the job status says how much of the prompt the encoder read, and prompt limits count characters" <| fun () ->
        let client = readyClient server.Value
        let usage (prompt: string) =
            let id = submit client (JsonSerializer.Serialize {| prompt = prompt; width = 64; height = 64; steps = 1 |})
            let status = json (get client ("/v1/generations/" + id))
            cancel client id
            status.GetProperty("prompt")
        // the tiny pipeline's byte tokenizer keeps 75 bytes
        let long = usage (String('a', 150))
        Expect.isTrue (long.GetProperty("truncated").GetBoolean()) "a 150-byte prompt is truncated"
        Expect.equal (long.GetProperty("tokens_total").GetInt32()) 150 "tokens_total"
        Expect.equal (long.GetProperty("tokens_used").GetInt32()) 75 "tokens_used"
        Expect.equal (long.GetProperty("characters_used").GetInt32()) 75 "characters_used"
        let short = usage "a fox"
        Expect.isFalse (short.GetProperty("truncated").GetBoolean()) "a short prompt is whole"
        Expect.equal (short.GetProperty("characters_used").GetInt32()) 5 "characters_used"
        let accented = usage (String('é', 50))
        Expect.equal (accented.GetProperty("tokens_total").GetInt32()) 100 "é is two bytes"
        Expect.equal (accented.GetProperty("characters_used").GetInt32()) 37 "the encoder reads 37 whole characters (74 bytes)"
        Expect.equal (accented.GetProperty("characters_total").GetInt32()) 50 "characters_total"
        // Limits:MaxPromptLength counts characters (code points), as documented: 1500 astral characters are
        // 3000 UTF-16 units but 1500 characters, under the 2000 limit
        let astral = String.replicate 1500 "𝔸"
        cancel client (submit client (JsonSerializer.Serialize {| prompt = astral; width = 64; height = 64; steps = 1 |}))
        use over = post client "/v1/generations" (JsonSerializer.Serialize {| prompt = String.replicate 2001 "𝔸"; width = 64; height = 64; steps = 1 |})
        Expect.equal over.StatusCode HttpStatusCode.BadRequest "2001 characters are over the limit"
        Expect.stringContains (snd (messagesOf over).Head) "2001" "the message counts characters"
        use images = post client "/v1/images/generations" (JsonSerializer.Serialize {| prompt = String('b', 100); size = "64x64"; steps = 1 |})
        Expect.equal images.StatusCode HttpStatusCode.OK "images.StatusCode"
        let item = (json images).GetProperty("data").[0]
        Expect.isTrue (item.GetProperty("prompt_truncated").GetBoolean()) "the OpenAI route says the prompt was cut"
        Expect.equal (item.GetProperty("revised_prompt").GetString()) (String('b', 75)) "revised_prompt is what the encoder read"
        use status = get client ("/v1/generations/" + item.GetProperty("id").GetString())
        let traceId = item.GetProperty("trace_id").GetString()
        Expect.isTrue (Text.RegularExpressions.Regex.IsMatch(traceId, "^[0-9a-f]{32}$")) "each image carries its job's trace id"
        Expect.equal ((json status).GetProperty("trace_id").GetString()) traceId "the same trace id as the job's status"

let ``requests predicted over the time or memory limit are refused naming the limit and the estimate, and a 202 carries the estimate`` =
    testCase "requests predicted over the time or memory limit are refused naming the limit and the estimate, and a 202 carries the estimate" <| fun () ->
        let client = readyClient server.Value
        use small = post client "/v1/generations" """{"prompt":"x","width":64,"height":64,"steps":1}"""
        Expect.equal small.StatusCode HttpStatusCode.Accepted "small.StatusCode"
        let body = json small
        Expect.isGreaterThan (body.GetProperty("predicted_seconds").GetDouble()) 0.0 "predicted_seconds"
        Expect.isGreaterThan (body.GetProperty("predicted_activation_gb").GetDouble()) 0.0 "predicted_activation_gb"
        cancel client (body.GetProperty("id").GetString())
        use big = post client "/v1/generations" """{"prompt":"x","width":1024,"height":1024,"frames":9}"""
        Expect.equal big.StatusCode HttpStatusCode.BadRequest "the largest request is refused"
        let text = String.Join("\n", messagesOf big |> List.map snd)
        Expect.stringContains text "Trident:Limits:MaxPredictedSeconds" "the time limit is named"
        Expect.stringContains text "Trident:Limits:MaxActivationGb" "the memory limit is named"
        Expect.stringContains text "predicted to take" "the estimate is given"
        use images = post client "/v1/images/generations" """{"prompt":"x","size":"1024x1024","steps":100}"""
        Expect.equal images.StatusCode HttpStatusCode.BadRequest "the OpenAI route applies the limits too"
        Expect.equal (errorsOf images) (set [ "size"; "steps" ]) "errorsOf images"

let ``a request over the cost limits is refused under every field it sent that drives the prediction, on every route`` =
    testCase "a request over the cost limits is refused under every field it sent that drives the prediction, on every route" <| fun () ->
        let client = readyClient server.Value
        // field → the limits named under it ("time", "memory")
        let limitsByField (r: HttpResponseMessage) =
            messagesOf r
            |> List.groupBy fst
            |> List.map (fun (field, ms) ->
                field,
                set [ for _, m in ms do
                        if m.Contains "Trident:Limits:MaxPredictedSeconds" then "time"
                        if m.Contains "Trident:Limits:MaxActivationGb" then "memory" ])
            |> Map.ofList
        let expect (path: string) (body: string) (expected: (string * string list) list) =
            use r = post client path body
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (sprintf "%s %s" path body)
            let text = String.Join("\n", messagesOf r |> List.map snd)
            Expect.stringContains text "predicted to take" (sprintf "the message gives the estimate: %s" body)
            Expect.equal (limitsByField r) (Map.ofList [ for f, ls in expected -> f, set ls ]) (sprintf "the fields named for %s %s" path body)
        // the time depends on the size and the steps, the activations on the size alone; fields left to their defaults are not named
        expect "/v1/generations" """{"prompt":"x","width":1024,"height":1024,"frames":9}"""
            [ "width", [ "time"; "memory" ]; "height", [ "time"; "memory" ]; "frames", [ "time"; "memory" ] ]
        expect "/v1/generations" """{"prompt":"x","width":1024,"height":1024,"frames":9,"steps":50}"""
            [ "width", [ "time"; "memory" ]; "height", [ "time"; "memory" ]; "frames", [ "time"; "memory" ]; "steps", [ "time" ] ]
        expect "/v1/images/generations" """{"prompt":"x","size":"1024x1024","num_inference_steps":100}"""
            [ "size", [ "time"; "memory" ]; "steps", [ "time" ] ]
        expect "/v1/videos" """{"prompt":"x","size":"1024x1024","num_frames":9}"""
            [ "size", [ "time"; "memory" ]; "num_frames", [ "time"; "memory" ] ]
        expect "/v1/videos" """{"prompt":"x","width":1024,"height":1024,"seconds":"1","num_inference_steps":50}"""
            [ "width", [ "time"; "memory" ]; "height", [ "time"; "memory" ]; "seconds", [ "time"; "memory" ]; "num_inference_steps", [ "time" ] ]

// ---- configuration (no server) ------------------------------------------------------------------

/// `trident` with these arguments: its exit code and what it wrote to standard error.
let private run (args: string list) =
    let error = new StringWriter()
    let previous = Console.Error
    Console.SetError error
    let code =
        try
            Trident.Api.Cli.Commands.RunAsync(Array.ofList args).Result
        finally
            Console.SetError previous
    code, string error

let private serve (args: string list) = run ([ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal" ] @ args)

let ``unparsable values and unknown keys from the command line or a config file stop serve with exit 2 and every key named`` =
    testCase "unparsable values and unknown keys from the command line or a config file stop serve with exit 2 and every key named" <| fun () ->
        let file = Path.Combine(Path.GetTempPath(), sprintf "trident-strict-%d.json" Environment.ProcessId)
        File.WriteAllText(file, """{"Trident":{"Monitor":{"WindowSecs":5},"Jobs":{"Capacity":"lots"}}}""")
        try
            let code, message =
                serve [ "--config"; file; "--Trident:Serving:SloScale"; "abc"; "--Trident:Serving:QueueCapacty"; "5"
                        "--Trident:Devices:Degrees"; "banana"; "--Trident:Colour"; "red" ]
            Expect.equal code 2 "exit code"
            for key in [ "Trident:Serving:SloScale"; "Trident:Serving:QueueCapacty"; "Trident:Devices:Degrees"; "Trident:Colour"
                         "Trident:Monitor:WindowSecs"; "Trident:Jobs:Capacity" ] do
                Expect.stringContains message key "every bad key is named"
            Expect.stringContains message "'abc'" "the bad value is quoted"
        finally
            File.Delete file

let ``a config file that does not exist stops serve with exit 2`` =
    testCase "a config file that does not exist stops serve with exit 2" <| fun () ->
        let code, message = serve [ "--config"; "/nonexistent/trident.json" ]
        Expect.equal code 2 "exit code"
        Expect.stringContains message "does not exist" "message"

let ``a config file that does not load is named with the line, the position and why, by serve, worker and config --check`` =
    testCase "a config file that does not load is named with the line, the position and why, by serve, worker and config --check" <| fun () ->
        let dir = Directory.CreateTempSubdirectory("trident-config-")
        try
            // a missing comma on line 4 (the trailing comma on line 3 and the comment are allowed, as the loader allows them)
            let broken = Path.Combine(dir.FullName, "broken.json")
            File.WriteAllText(broken, "{\n  \"Trident\": { // the server\n    \"Serving\": { \"QueueCapacity\": 8, }\n    \"LogFormat\": \"text\"\n  }\n}\n")
            // one key under two spellings that differ only by case: the same configuration key, given twice
            let cased = Path.Combine(dir.FullName, "cased.json")
            File.WriteAllText(cased, "{ \"Trident\": {\n  \"serving\": { \"QueueCapacity\": 8 },\n  \"Serving\": { \"QueueCapacity\": 9 } } }\n")
            for command in [ [ "config"; "--check" ]; [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal"; "--config" ]
                             [ "worker"; "--config" ] ] do
                let name = String.concat " " command
                let code, message = run (command @ [ broken ])
                Expect.equal code 2 (sprintf "%s, broken JSON: exit code (%s)" name message)
                Expect.stringContains message (broken + ": line 4, position 5: ") (sprintf "%s names the file, the line and the position" name)
                Expect.stringContains message "is invalid after a value" (sprintf "%s gives the parser's reason" name)
                let code, message = run (command @ [ cased ])
                Expect.equal code 2 (sprintf "%s, keys differing by case: exit code (%s)" name message)
                Expect.stringContains message (cased + ": keys 'serving' (line 2) and 'Serving' (line 3) differ only by case") (sprintf "%s says so" name)
        finally
            dir.Delete(true)

let ``a bad --urls stops serve with exit 2 naming the address`` =
    testCase "a bad --urls stops serve with exit 2 naming the address, before anything starts" <| fun () ->
        let code, message = run [ "serve"; "--urls"; "notaurl"; "--Trident:LogLevel"; "Fatal" ]
        Expect.equal code 2 "exit code"
        Expect.stringContains message "'notaurl'" "the address is named"
        let problems (urls: string) = Trident.Api.Cli.ServeCommand.UrlProblems urls |> List.ofSeq
        Expect.isEmpty (problems "http://127.0.0.1:8080;http://*:9000;https://[::1]:0;http://localhost") "good addresses"
        Expect.isEmpty (problems null) "none given"
        let bad = problems "http://127.0.0.1:99999;ftp://127.0.0.1:1;http://127.0.0.1:8080"
        Expect.equal bad.Length 2 (sprintf "two bad addresses: %A" bad)
        Expect.stringContains bad.[0] "port must be between 0 and 65535" "the port"
        Expect.stringContains bad.[1] "scheme must be http or https" "the scheme"

let ``configuration errors that need the pipeline stop serve with exit 2 before it listens, and config --check reports them`` =
    testCase "configuration errors that need the pipeline stop serve with exit 2 before it listens, and config --check reports them" <| fun () ->
        // the port is taken: a server that got as far as listening would fail to bind (exit 1), not name the key
        let taken = new Sockets.TcpListener(IPAddress.Loopback, 0)
        taken.Start()
        try
            let port = (taken.LocalEndpoint :?> IPEndPoint).Port
            let emulated = [ "--urls"; sprintf "http://127.0.0.1:%d" port; "--Trident:LogLevel"; "Fatal"; "--Trident:Storage:Directory"; "memory"
                             "--Trident:Devices:Kind"; "emulated"; "--Trident:Emulation:Profile"; "hunyuanvideo"; "--Trident:Limits:MaxWidth"; "1280" ]
            let code, message = run ("serve" :: emulated @ [ "--Trident:Serving:PlanFor"; "544x1000" ])
            Expect.equal code 2 (sprintf "a PlanFor class the pipeline does not serve: exit 2 (%s)" message)
            Expect.stringContains message "Trident:Serving:PlanFor: '544x1000' is not a size pipeline hunyuanvideo-emulated serves" "the start's message"
            let code, message = run ("serve" :: emulated @ [ "--Trident:Limits:DefaultWidth"; "100" ])
            Expect.equal code 2 (sprintf "a configured default size the pipeline does not serve: exit 2 (%s)" message)
            Expect.stringContains message "Trident:Limits:DefaultWidth × DefaultHeight 100×256 is not a size pipeline hunyuanvideo-emulated serves" "the start's message"
        finally
            taken.Stop()
        let check (json: string) =
            let file = Path.Combine(Path.GetTempPath(), sprintf "trident-check-%d-%d.json" Environment.ProcessId (abs (json.GetHashCode())))
            File.WriteAllText(file, json)
            try run [ "config"; "--check"; file ] finally File.Delete file
        let code, message = check """{"Trident":{"Serving":{"PlanFor":"64x64x10"}}}"""
        Expect.equal code 2 (sprintf "the tiny pipeline serves 1–9 frames (%s)" message)
        Expect.stringContains message "Trident:Serving:PlanFor: '64x64x10' is not a size pipeline tiny serves" "named as serve names it"
        let code, message = check """{"Trident":{"Devices":{"Kind":"emulated"},"Emulation":{"Profile":"hunyuanvideo"},"Limits":{"DefaultWidth":100}}}"""
        Expect.equal code 2 (sprintf "emulated: the reference profile's manifest (%s)" message)
        Expect.stringContains message "Trident:Limits:DefaultWidth × DefaultHeight 100×256 is not a size pipeline hunyuanvideo-emulated serves" "named"
        let code, message = check """{"Trident":{"Devices":{"Kind":"emulated"},"Emulation":{"Profile":"hunyuanvideo"},"Limits":{"MaxFrames":129},"Serving":{"PlanFor":"544x960x33@50"}}}"""
        Expect.equal code 2 (sprintf "emulated: the limits are checked too, the profile being known (%s)" message)
        Expect.stringContains message "is predicted to need" "the activation limit"
        let code, message = check """{"Trident":{"Serving":{"PlanFor":"64x64@4"}}}"""
        Expect.equal code 0 (sprintf "a class the tiny pipeline serves (%s)" message)
        Expect.stringContains message "checked against Trident:Limits:MaxPredictedSeconds and MaxActivationGb when serve starts" "the limits wait for the profile, said"
        // a pipeline directory: its manifest (what the validator reads)
        let code, message = check (sprintf """{"Trident":{"Pipeline":%s,"Serving":{"PlanFor":"64x64x10"}}}""" (JsonSerializer.Serialize Trident.Tests.Runtime.TinyFixture.directory.Value))
        Expect.equal code 2 (sprintf "the tiny pipeline's directory (%s)" message)
        Expect.stringContains message "Trident:Serving:PlanFor: '64x64x10' is not a size pipeline tiny serves" "named"

let ``environment variables are bound as strictly as other sources, and lists take a comma-separated value`` =
    testCase "environment variables are bound as strictly as other sources, and lists take a comma-separated value" <| fun () ->
        let prefix = sprintf "TRIDENTSTRICT%d_" Environment.ProcessId
        Environment.SetEnvironmentVariable(prefix + "Trident__Serving__SloScale", "abc")
        Environment.SetEnvironmentVariable(prefix + "Trident__Serving__Unknown", "1")
        Environment.SetEnvironmentVariable(prefix + "Trident__Devices__Degrees", "1, 2")
        try
            let configuration = ConfigurationBuilder().AddEnvironmentVariables(prefix).Build()
            let options = TridentOptions()
            let errors = StrictBinding.Bind(configuration.GetSection "Trident", options) |> List.ofSeq
            Expect.equal errors.Length 2 (sprintf "two problems: %A" errors)
            Expect.exists errors (fun e -> e.StartsWith "Trident:Serving:SloScale") "SloScale named"
            Expect.exists errors (fun e -> e.StartsWith "Trident:Serving:Unknown") "Unknown named"
            Expect.equal options.Devices.Degrees [| 1; 2 |] "Degrees from a comma-separated value"
            Expect.equal options.Serving.SloScale 4.0 "a bad value leaves the default (and is reported)"
            let validator = TridentOptionsValidator(configuration)
            let result = validator.Validate(null, options)
            Expect.isTrue result.Failed "the validator reports the binding problems"
        finally
            for key in [ "Trident__Serving__SloScale"; "Trident__Serving__Unknown"; "Trident__Devices__Degrees" ] do
                Environment.SetEnvironmentVariable(prefix + key, null)

// ---- trace files ----------------------------------------------------------------------------------

let private flux = (ReferenceProfiles.tryFind "flux").Value

let private fluxOnly (model: string) =
    if model = "flux" then Ok flux else Error(sprintf "no profile for model '%s'" model)

let ``a trace file's problems all come in one pass, and an image-only model's video rows are refused`` =
    testCase "a trace file's problems all come in one pass, and an image-only model's video rows are refused" <| fun () ->
        let text =
            String.Join("\n",
                [ "id,arrival_s,model,height,width,frames,steps,colour"
                  "1,0.0,flux,1024,1024,1,28,red"
                  "2,0.5,flux,abc,1024,1,28,red"
                  "3,1.0,flux,1024,1024,4,28,red"
                  "3,1.5,flux,1024,1024,1,28,red" ])
        match Trace.parseFor fluxOnly text with
        | Ok _ -> failtest "the trace has problems"
        | Error errors ->
            let all = String.Join("\n", errors)
            Expect.stringContains all "unknown column 'colour'" "the header problem"
            Expect.stringContains all "line 3: height" "the field problem"
            Expect.stringContains all "line 4: frames = 4" "the image-only model's video row"
            Expect.stringContains all "image-only" "says why"
            Expect.stringContains all "id 3 appears 2 times" "the duplicate id"
        // a bad line's id still counts for duplicates, and a second model is named, in the same pass
        let mixed = "id,arrival_s,model,height,width,frames,steps\n1,-1,flux,1024,1024,1,28\n1,0,flux,1024,1024,1,28\n2,0,sd3,1024,1024,1,28"
        match Trace.parseFor (fun m -> if m = "flux" || m = "sd3" then Ok flux else Error "unknown") mixed with
        | Ok _ -> failtest "the trace has problems"
        | Error errors ->
            let all = String.Join("\n", errors)
            Expect.stringContains all "line 2: arrival_s = '-1'" "the bad line"
            Expect.stringContains all "id 1 appears 2 times" "its id counted although the line is bad"
            Expect.stringContains all "one model per trace; the trace has flux, sd3" "both models named"
        let fluxVideo = "id,arrival_s,model,height,width,frames,steps\n1,0,flux,1024,1024,4,28"
        Expect.isError (Trace.parseFor fluxOnly fluxVideo) "frames = 4 on flux is refused"
        let jsonLines =
            String.Join("\n",
                [ """{"id":1,"arrival_s":0,"model":"flux","height":"1024","width":1024,"frames":1,"steps":28}"""
                  """{"id":2,"arrival_s":0,"model":"flux","height":1024,"width":1024,"frames":1,"steps":28,"steps":4}""" ])
        match Trace.parseFor fluxOnly jsonLines with
        | Ok _ -> failtest "a string number and a duplicate key are refused"
        | Error errors ->
            let all = String.Join("\n", errors)
            Expect.stringContains all "line 1: height must be a JSON number" "the string number"
            Expect.stringContains all "line 2: field 'steps' is given 2 times" "the duplicate key"

let ``a missing trace file is reported as missing, not as an unknown workload`` =
    testCase "a missing trace file is reported as missing, not as an unknown workload" <| fun () ->
        match Trident.Api.Cli.TraceFile.Parse(Func<_, _>(fluxOnly), "/nonexistent/trace.csv") with
        | Ok _ -> failtest "no such file"
        | Error errors -> Expect.stringContains (String.Join("\n", errors)) "does not exist" "the message"
        Expect.isTrue (Trace.looksLikeFile "traces/run.csv") "a path is a file"
        Expect.isTrue (Trace.looksLikeFile "run.jsonl") "a trace extension is a file"
        Expect.isFalse (Trace.looksLikeFile "tiny-poisson") "a workload name is not"

/// The validator's problems with the default options changed by `change`.
let private problems (change: TridentOptions -> unit) =
    let o = TridentOptions()
    change o
    let r = TridentOptionsValidator().Validate(null, o)
    if r.Failed then List.ofSeq r.Failures else []

let ``the storage directory is validated like other keys, relative to the Trident home, and memory keeps jobs in memory`` =
    testCase "the storage directory is validated like other keys, relative to the Trident home, and memory keeps jobs in memory" <| fun () ->
        let validate (directory: string) = problems (fun o -> o.Storage.Directory <- directory)
        let file = Path.GetTempFileName()
        try
            Expect.isEmpty (validate ".cache/jobs") "the default is valid"
            Expect.isEmpty (validate "memory") "memory is valid"
            for bad in [ ""; "  "; file ] do
                let errors = validate bad
                Expect.exists errors (fun e -> e.StartsWith "Trident:Storage:Directory") (sprintf "'%s' is an error naming the key: %A" bad errors)
            Expect.equal (StorageOptions(Directory = "memory").Resolve "/home/t") null "memory: no directory"
            Expect.equal (StorageOptions().Resolve "/home/t") "/home/t/.cache/jobs" "relative to the home"
            Expect.equal (StorageOptions(Directory = "/var/jobs").Resolve "/home/t") "/var/jobs" "absolute as given"
            let code, message = serve [ "--Trident:Storage"; "x" ]
            Expect.equal code 2 "a value for the section stops serve"
            Expect.stringContains message "Trident:Storage" "naming it"
        finally
            File.Delete file

let ``the mix the initial placement is planned for is configurable, and a bad class is named`` =
    testCase "Serving:PlanFor sets the mix the initial placement is planned for; a bad class, one over the limits or one the pipeline does not serve is named" <| fun () ->
        let validate (planFor: string) = problems (fun o -> o.Serving.PlanFor <- planFor)
        Expect.isEmpty (validate "") "empty: the default mix"
        Expect.isEmpty (validate "64x64x9@4:1, 128x128:3") "two classes"
        let errors = validate "64x64@4:0.5,abc,2048x2048,64x64@0,64x64:-1"
        Expect.equal errors.Length 4 (sprintf "four bad classes: %A" errors)
        Expect.isTrue (errors |> List.forall (fun e -> e.StartsWith "Trident:Serving:PlanFor")) "each names the key"
        for bad in [ "'abc'"; "'2048x2048' is over the limits"; "'64x64@0'"; "'64x64:-1'" ] do
            Expect.exists errors (fun e -> e.Contains bad) (sprintf "%s named: %A" bad errors)
        let manifest = Trident.Runtime.Pipelines.Tiny.TinyPipeline.Manifest()
        let mix (planFor: string) =
            let o = TridentOptions()
            o.Serving.PlanFor <- planFor
            Trident.Api.Hosting.ServerHost.InitialMix(o, manifest)
        let planned = mix "64x64x9@4:1, 128x128:2, 128x128:1"
        let classes = planned.Classes |> List.map (fun c -> c.Shape.Height, c.Shape.Width, c.Shape.Frames, c.Steps, c.Share)
        Expect.equal classes [ 64, 64, 9, 4, 0.25; 128, 128, 1, manifest.Sampler.DefaultSteps, 0.75 ] "shares normalised, the same class once, default steps"
        Expect.equal planned.ArrivalRate 1.0 "a nominal 1 request/s"
        let fallback = mix ""
        Expect.equal (fallback.Classes |> List.map (fun c -> c.Shape.Height, c.Shape.Width, c.Share)) [ 256, 256, 1.0 ] "empty: the default size"
        let ex = expectThrows<InvalidOperationException> "10 frames: the tiny pipeline serves 1–9" (fun () -> mix "64x64x10" |> ignore)
        Expect.stringContains ex.Message "Trident:Serving:PlanFor: '64x64x10' is not a size pipeline" "names the key and the class"
        Expect.stringContains ex.Message "frames" "and what is wrong"
        // a class the generation routes would refuse (predicted time or activations over the limits) stops the start too
        let hunyuan = Trident.Runtime.Devices.EmulatedProfile.Manifest(ReferenceProfiles.hunyuanvideo)
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.hunyuanvideo
        let heavy = TridentOptions()
        heavy.Serving.PlanFor <- "544x960x33@50:0.2,544x960@50:0.8"
        let refused = expectThrows<InvalidOperationException> "33 frames of 544×960 need more than 8 GB" (fun () -> Trident.Api.Hosting.ServerHost.InitialMix(heavy, hunyuan, cost) |> ignore)
        Expect.stringContains refused.Message "'544x960x33@50:0.2' is predicted to need" "names the class"
        Expect.stringContains refused.Message "Limits:MaxActivationGb = 8" "and the limit"
        heavy.Limits.MaxActivationGb <- 80.0
        heavy.Limits.MaxPredictedSeconds <- 0.0
        Expect.equal (Trident.Api.Hosting.ServerHost.InitialMix(heavy, hunyuan, cost).Classes.Length) 2 "with the limits raised it plans for both"

let ``the default request size is one the pipeline serves`` =
    testCase "the built-in default size moves to the nearest one the pipeline serves; a configured one it does not serve stops the start, named" <| fun () ->
        let hunyuan = Trident.Runtime.Devices.EmulatedProfile.Manifest(ReferenceProfiles.hunyuanvideo)
        let log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance
        let o = TridentOptions()
        o.Limits.MaxWidth <- 1280
        o.Limits.MaxHeight <- 1280
        Trident.Api.Hosting.ServerHost.FitDefaultSize(o, hunyuan, log)
        Expect.isEmpty (hunyuan.CheckSize(o.Limits.DefaultWidth, o.Limits.DefaultHeight, 1)) (sprintf "%d×%d is served" o.Limits.DefaultWidth o.Limits.DefaultHeight)
        Expect.equal (o.Limits.DefaultWidth, o.Limits.DefaultHeight) (hunyuan.Size.MinWidth, hunyuan.Size.MinHeight) "the smallest sides, nearest to 256"
        let mix = Trident.Api.Hosting.ServerHost.InitialMix(o, hunyuan)
        Expect.equal (mix.Classes |> List.map (fun c -> c.Shape.Width, c.Shape.Height)) [ o.Limits.DefaultWidth, o.Limits.DefaultHeight ] "the initial placement is planned for it"
        let tiny = Trident.Runtime.Pipelines.Tiny.TinyPipeline.Manifest()
        let kept = TridentOptions()
        Trident.Api.Hosting.ServerHost.FitDefaultSize(kept, tiny, log)
        Expect.equal (kept.Limits.DefaultWidth, kept.Limits.DefaultHeight) (256, 256) "a served default is kept"
        let widthOnly = TridentOptions()
        widthOnly.Limits.DefaultWidth <- 960
        widthOnly.Limits.MaxWidth <- 1280
        Trident.Api.Hosting.ServerHost.FitDefaultSize(widthOnly, hunyuan, log)
        Expect.equal (widthOnly.Limits.DefaultWidth, widthOnly.Limits.DefaultHeight) (960, hunyuan.Size.MinHeight) "a configured width is kept, the built-in height fitted"
        let configured = TridentOptions()
        configured.Limits.DefaultWidth <- 100
        let ex = expectThrows<InvalidOperationException> "100 is not a multiple of the tiny pipeline's 16" (fun () -> Trident.Api.Hosting.ServerHost.FitDefaultSize(configured, tiny, log))
        Expect.stringContains ex.Message "Trident:Limits:DefaultWidth × DefaultHeight 100×256 is not a size pipeline" "names the keys"

/// Writes `json` to a file of its own, runs `f` on its path, deletes it.
let private withFile (json: string) (f: string -> 'T) =
    let file = Path.Combine(Path.GetTempPath(), sprintf "trident-cfg-%d-%s.json" Environment.ProcessId (Guid.NewGuid().ToString "N"))
    File.WriteAllText(file, json)
    try f file finally File.Delete file

/// serve with these arguments on a taken port: a server that got as far as listening fails to bind (exit 1).
let private serveTaken (args: string list) =
    let taken = new Sockets.TcpListener(IPAddress.Loopback, 0)
    taken.Start()
    try
        let port = (taken.LocalEndpoint :?> IPEndPoint).Port
        run ([ "serve"; "--urls"; sprintf "http://127.0.0.1:%d" port; "--Trident:LogLevel"; "Fatal"; "--Trident:Storage:Directory"; "memory" ] @ args)
    finally
        taken.Stop()

let ``the keys' problems and the pipeline's come in one run, unless a key the pipeline's checks read is in doubt`` =
    testCase "the keys' problems and the pipeline's come in one run, unless a key the pipeline's checks read is in doubt" <| fun () ->
        // a bad value of a key no pipeline check reads (SloScale feeds only the limits' check, which waits for the
        // profile on the tiny pipeline anyway), a default size and a PlanFor class the tiny pipeline does not serve
        let keys = [ "Trident:Serving:SloScale", "abc"; "Trident:Serving:RoundPeriodMs", "1"
                     "Trident:Limits:DefaultWidth", "100"; "Trident:Serving:PlanFor", "64x64x10" ]
        let expected = [ "Trident:Serving:SloScale must be a finite number (got 'abc')"
                         "Trident:Serving:RoundPeriodMs must be between 10 and 60000"
                         "Trident:Limits:DefaultWidth × DefaultHeight 100×256 is not a size pipeline tiny serves"
                         "Trident:Serving:PlanFor: '64x64x10' is not a size pipeline tiny serves" ]
        let json (pairs: (string * string) list) =
            let o = Text.Json.Nodes.JsonObject()
            for key, value in pairs do
                let parts = key.Split ':'
                let mutable node = o
                for part in parts.[.. parts.Length - 2] do
                    if isNull node.[part] then node.[part] <- Text.Json.Nodes.JsonObject()
                    node <- node.[part].AsObject()
                node.[parts.[parts.Length - 1]] <- Text.Json.Nodes.JsonValue.Create value
            o.ToJsonString()
        let code, message = withFile (json keys) (fun file -> run [ "config"; "--check"; file ])
        Expect.equal code 2 (sprintf "config --check: exit 2 (%s)" message)
        for e in expected do Expect.stringContains message e (sprintf "config --check reports it in the same run: %s" e)
        let code, message = serveTaken [ for k, v in keys do yield "--" + k; yield v ]
        Expect.equal code 2 (sprintf "serve: exit 2 before it listens (%s)" message)
        for e in expected do Expect.stringContains message e (sprintf "serve reports it in the same run: %s" e)
        // a class over the limits is still read as written: the pipeline's check of the classes runs too
        let code, message = withFile """{"Trident":{"Serving":{"PlanFor":"64x64x10, 2048x64"}}}""" (fun file -> run [ "config"; "--check"; file ])
        Expect.equal code 2 "config --check: exit 2"
        Expect.stringContains message "'2048x64' is over the limits" "the validator's rule"
        Expect.stringContains message "'64x64x10' is not a size pipeline tiny serves" "and the pipeline's, in one run"
        // a key that says which pipeline it is, in doubt (a bad value, or a misspelling of one): no pipeline check, said
        for doubt, key in [ "\"Devices\":{\"Kind\":\"banana\"}", "Trident:Devices:Kind"; "\"Pipelin\":\"tiny\"", "Trident:Pipelin"
                            "\"Devices\":{\"Kind\":\"emulated\"},\"Emulation\":{\"Profile\":\"nope\"}", "Trident:Emulation:Profile" ] do
            let code, message = withFile (sprintf """{"Trident":{%s,"Limits":{"DefaultWidth":100}}}""" doubt) (fun file -> run [ "config"; "--check"; file ])
            Expect.equal code 2 (sprintf "%s: exit 2 (%s)" key message)
            Expect.isFalse (message.Contains "is not a size pipeline") (sprintf "%s: the pipeline is not known, so nothing is said of it (%s)" key message)
            Expect.stringContains message (sprintf "not checked: %s (a problem above)" key) (sprintf "%s: a note says what was not checked and why" key)
        // a default size key in doubt: that check waits, PlanFor's runs
        let code, message = withFile """{"Trident":{"Limits":{"DefaultWidht":100},"Serving":{"PlanFor":"64x64x10"}}}""" (fun file -> run [ "config"; "--check"; file ])
        Expect.equal code 2 "exit 2"
        Expect.stringContains message "Trident:Limits:DefaultWidht is not a configuration key" "the misspelling"
        Expect.stringContains message "'64x64x10' is not a size pipeline tiny serves" "PlanFor's check runs"
        Expect.stringContains message "DefaultWidth × DefaultHeight (whether the pipeline serves it) was not checked" "the default size's waits, said"

let ``a default size set to 256 is kept as set, and refused where the pipeline does not serve it`` =
    testCase "a default size set to 256 is kept as set, and refused where the pipeline does not serve it" <| fun () ->
        let hunyuan = """"Devices":{"Kind":"emulated"},"Emulation":{"Profile":"hunyuanvideo"},"Limits":{"MaxWidth":1280,"MaxHeight":1280"""
        for limits, named in [ ",\"DefaultWidth\":256", "DefaultWidth is set"; ",\"DefaultHeight\":256", "DefaultHeight is set"
                               ",\"DefaultWidth\":256,\"DefaultHeight\":256", "DefaultWidth and DefaultHeight are set" ] do
            let code, message = withFile (sprintf """{"Trident":{%s%s}}}""" hunyuan limits) (fun file -> run [ "config"; "--check"; file ])
            Expect.equal code 2 (sprintf "%s: config --check refuses it (%s)" limits message)
            Expect.stringContains message "Trident:Limits:DefaultWidth × DefaultHeight 256×256 is not a size pipeline hunyuanvideo-emulated serves" "named as the start names it"
            Expect.stringContains message named "says which key is set"
        let emulated = [ "--Trident:Devices:Kind"; "emulated"; "--Trident:Emulation:Profile"; "hunyuanvideo"; "--Trident:Limits:MaxWidth"; "1280"; "--Trident:Limits:MaxHeight"; "1280" ]
        let code, message = serveTaken (emulated @ [ "--Trident:Limits:DefaultWidth"; "256" ])
        Expect.equal code 2 (sprintf "serve: exit 2 before it listens (%s)" message)
        Expect.stringContains message "256×256 is not a size pipeline hunyuanvideo-emulated serves" "named"
        // unset, the built-in 256 is moved (the start logs it): valid
        let code, message = withFile (sprintf """{"Trident":{%s}}}""" hunyuan) (fun file -> run [ "config"; "--check"; file ])
        Expect.equal code 0 (sprintf "the built-in default is fitted (%s)" message)
        // set from an environment variable (with a prefix of this process's, so no other test's server reads it): set too
        let prefix = sprintf "TRIDENTSIZE%d_" Environment.ProcessId
        Environment.SetEnvironmentVariable(prefix + "Trident__Limits__DefaultHeight", "256")
        try
            let configuration =
                ConfigurationBuilder()
                    .AddInMemoryCollection(dict [ "Trident:Devices:Kind", "emulated"; "Trident:Emulation:Profile", "hunyuanvideo"
                                                  "Trident:Limits:MaxWidth", "1280"; "Trident:Limits:MaxHeight", "1280" ])
                    .AddEnvironmentVariables(prefix).Build()
            let struct (problems, _) = Trident.Api.Cli.ConfigCommand.CheckWithNotes(configuration)
            Expect.exists problems (fun p -> p.Contains "256×256 is not a size pipeline hunyuanvideo-emulated serves") (sprintf "the environment's 256 is kept as set: %A" problems)
        finally
            Environment.SetEnvironmentVariable(prefix + "Trident__Limits__DefaultHeight", null)

let ``one key given twice in a file, spelt alike or differing only by case, is refused even where the loader merges it`` =
    testCase "one key given twice in a file, spelt alike or differing only by case, is refused even where the loader merges it" <| fun () ->
        let dir = Directory.CreateTempSubdirectory("trident-config-")
        try
            // objects whose keys do not collide: the loader merges them into one section without a word
            let files =
                [ "top.json", "{ \"Trident\": {\n  \"serving\": { \"QueueCapacity\": 8 } },\n  \"trident\": { \"Serving\": { \"RoundPeriodMs\": 50 } } }\n",
                  "keys 'Trident' (line 1) and 'trident' (line 3) differ only by case"
                  "deep.json", "{ \"Trident\": {\n  \"serving\": { \"QueueCapacity\": 8 },\n  \"Serving\": { \"RoundPeriodMs\": 50 } } }\n",
                  "keys 'serving' (line 2) and 'Serving' (line 3) differ only by case"
                  "twice.json", "{ \"Trident\": {\n  \"Serving\": { \"QueueCapacity\": 8 },\n  \"Serving\": { \"RoundPeriodMs\": 50 } } }\n",
                  "key 'Serving' is given twice in one object (lines 2 and 3)" ]
            for name, text, expected in files do
                let file = Path.Combine(dir.FullName, name)
                File.WriteAllText(file, text)
                for command in [ [ "config"; "--check" ]; [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal"; "--config" ]; [ "worker"; "--config" ] ] do
                    let what = String.concat " " command + " " + name
                    let code, message = run (command @ [ file ])
                    Expect.equal code 2 (sprintf "%s: exit code (%s)" what message)
                    Expect.stringContains message (file + ": " + expected) (sprintf "%s: names the file, both keys and their lines" what)
        finally
            dir.Delete(true)

let ``the content root's appsettings.json that does not load is named with the line, the position and why`` =
    testCase "the content root's appsettings.json that does not load is named with the line, the position and why" <| fun () ->
        let dir = Directory.CreateTempSubdirectory("trident-root-")
        try
            let settings = Path.Combine(dir.FullName, "appsettings.json")
            for text, expected in [ "{\n  \"Trident\": {\n    \"LogLevel\": \"Warning\"\n    \"LogFormat\": \"text\"\n  }\n}\n", ": line 4, position 5: '\"' is invalid after a value"
                                    "{ \"Trident\": {\n  \"serving\": { \"QueueCapacity\": 8 },\n  \"Serving\": { \"RoundPeriodMs\": 50 } } }\n", ": keys 'serving' (line 2) and 'Serving' (line 3) differ only by case" ] do
                File.WriteAllText(settings, text)
                for command in [ [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal" ]; [ "worker" ] ] do
                    let what = String.concat " " command
                    let code, message = run (command @ [ "--contentRoot"; dir.FullName ])
                    Expect.equal code 2 (sprintf "%s: exit code (%s)" what message)
                    Expect.stringContains message (settings + expected) (sprintf "%s: names the file, the line and why" what)
                    Expect.isFalse (message.Contains "   at ") (sprintf "%s: no stack trace" what)
        finally
            dir.Delete(true)

/// `worker --primary localhost:PORT` crashed the worker (IPEndPoint.Parse out of the silo's configuration: a stack trace,
/// exit 134) while config --check said "must be host:port" of the same value: the primary is an IP address and a port.
let ``a worker's --primary that is not IP:port is a usage error naming the form, not a crash`` =
    testCase "a worker's --primary that is not IP:port is a usage error naming the form, not a crash" <| fun () ->
        for primary in [ "localhost:19711"; "notahost" ] do
            let code, message = run [ "worker"; "--emulate"; "flux"; "--primary"; primary; "--silo-port"; "0"; "--gateway-port"; "0"; "--urls"; "http://127.0.0.1:0" ]
            Expect.equal code 2 (sprintf "%s: exit code (%s)" primary message)
            Expect.stringContains message (sprintf "must be IP:port of the coordinator's silo, e.g. 127.0.0.1:11111 (an IP address: a host name is not resolved; got '%s')" primary) primary
            Expect.isFalse (message.Contains "   at ") (sprintf "%s: no stack trace" primary)

/// `worker --cluster none` was accepted and ran as a localhost-mode worker (none is serve's one-process default; a worker
/// in no cluster makes no sense): a usage error naming the option and the values it takes, from the line or a key.
let ``a worker with cluster mode none is a usage error naming --cluster and the modes it takes`` =
    testCase "a worker with cluster mode none is a usage error naming --cluster and the modes it takes" <| fun () ->
        for args in [ [ "--cluster"; "none" ]; [ "--Trident:Cluster:Mode"; "none" ] ] do
            let what = String.concat " " args
            let code, message = run ([ "worker"; "--emulate"; "flux"; "--silo-port"; "0"; "--gateway-port"; "0"; "--urls"; "http://127.0.0.1:0" ] @ args)
            Expect.equal code 2 (sprintf "%s: exit 2 (%s)" what message)
            Expect.stringContains message "trident worker: --cluster (Trident:Cluster:Mode) must be localhost (the default for a worker) or redis" (sprintf "%s: names the option and its values" what)
            Expect.stringContains message "'none' is one process with no cluster" (sprintf "%s: says why none is no worker's mode" what)
        Expect.isNull (Trident.Api.Cli.WorkerCommand.ModeProblem null) "no mode given: localhost, a worker's default"
        for mode in [ "localhost"; "redis" ] do Expect.isNull (Trident.Api.Cli.WorkerCommand.ModeProblem mode) (sprintf "%s is a worker's mode" mode)

let ``a configuration file saved with a byte order mark is read as the loader reads it, not refused at its first byte`` =
    testCase "a configuration file saved with a byte order mark is read as the loader reads it, not refused at its first byte" <| fun () ->
        let dir = Directory.CreateTempSubdirectory("trident-bom-")
        try
            // the loader (a StreamReader) skips a UTF-8 byte order mark and reads UTF-16 by its mark: such a file loads
            let bad = """{ "Trident": { "Serving": { "QueueCapacity": 0 } } }"""
            for encoding, name in [ Text.UTF8Encoding(true) :> Text.Encoding, "UTF-8 with BOM"; Text.UnicodeEncoding(false, true), "UTF-16" ] do
                let file = Path.Combine(dir.FullName, "trident.json")
                File.WriteAllText(file, bad, encoding)
                Expect.isNull (ConfigFileProblem.Find file) (sprintf "%s: nothing wrong with the file (before: '0xEF'/'0xFF' is an invalid start of a value)" name)
                // its keys are read and checked: the bad value is named, by config --check, serve (--config and the content
                // root's appsettings.json) and worker
                let settings = Path.Combine(dir.FullName, "appsettings.json")
                File.WriteAllText(settings, bad, encoding)
                for command in [ [ "config"; "--check"; file ]; [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal"; "--config"; file ]
                                 [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal"; "--contentRoot"; dir.FullName ]; [ "worker"; "--config"; file ] ] do
                    let what = sprintf "%s: %s" name (String.concat " " command)
                    let code, message = run command
                    Expect.equal code 2 (sprintf "%s: exit 2 (%s)" what message)
                    Expect.stringContains message "Trident:Serving:QueueCapacity must be between 1 and 100000" (sprintf "%s: the file's key is checked" what)
                    Expect.isFalse (message.Contains "invalid start of a value") (sprintf "%s: the file is not refused" what)
                File.Delete settings
                File.WriteAllText(file, """{ "Trident": { "Serving": { "QueueCapacity": 8 } } }""", encoding)
                let code, message = run [ "config"; "--check"; file ]
                Expect.equal code 0 (sprintf "%s: a valid file is valid (%s)" name message)
        finally
            dir.Delete(true)

let ``a configuration file that exists but cannot be opened is a configuration error, not an unhandled exception`` =
    testCase "a configuration file that exists but cannot be opened is a configuration error, not an unhandled exception" <| fun () ->
        // a socket at the file's path: it exists, and opening it fails (ENXIO) as a file without read permission does
        // (EACCES; not testable as root): the loader opens it outside its own error handling
        let dir = Directory.CreateTempSubdirectory("trident-unreadable-")
        let bind (path: string) =
            let socket = new Sockets.Socket(Sockets.AddressFamily.Unix, Sockets.SocketType.Stream, Sockets.ProtocolType.Unspecified)
            socket.Bind(Sockets.UnixDomainSocketEndPoint path)
            socket
        try
            let file = Path.Combine(dir.FullName, "trident.json")
            use _file = bind file
            use _settings = bind (Path.Combine(dir.FullName, "appsettings.json"))
            for command, path in [ [ "config"; "--check"; file ], file
                                   [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal"; "--config"; file ], file
                                   [ "worker"; "--config"; file ], file
                                   [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal"; "--contentRoot"; dir.FullName ], Path.Combine(dir.FullName, "appsettings.json") ] do
                let what = String.concat " " command
                let code, message =
                    try run command
                    with e -> failtestf "%s: an unhandled exception (before: exit 134 with a stack trace): %s" what (e.GetBaseException().Message)
                Expect.equal code 2 (sprintf "%s: exit 2 (%s)" what message)
                Expect.stringContains message (sprintf "'%s' cannot be read: " path) (sprintf "%s: names the file and why" what)
                Expect.isFalse (message.Contains "   at ") (sprintf "%s: no stack trace" what)
        finally
            dir.Delete(true)

let ``a list given as elements by one source and as a value by another is the later source's`` =
    testCase "a list given as elements by one source and as a value by another is the later source's" <| fun () ->
        let prefix = sprintf "TRIDENTLIST%d_" Environment.ProcessId
        Environment.SetEnvironmentVariable(prefix + "Trident__Devices__Degrees", "1,2")
        try
            withFile """{"Trident": {"Devices": {"Degrees": [1, 3]}}}""" (fun file ->
                let bind (configuration: IConfigurationRoot) =
                    let options = TridentOptions()
                    let errors = StrictBinding.Bind(configuration.GetSection "Trident", options, configuration) |> List.ofSeq
                    errors, options.Devices.Degrees
                // the variable after the file (as serve and config --check read them): the variable's 1,2
                let later = ConfigurationBuilder().AddJsonFile(file).AddEnvironmentVariables(prefix).Build()
                Expect.equal (bind later) ([], [| 1; 2 |]) "the environment's value overrides the file's array (before: the file's [1, 3], refused as the variable's)"
                Expect.isEmpty (Trident.Api.Cli.ConfigCommand.Check later) "valid as config --check and serve check it"
                // the file after the variable: the file's array
                let earlier = ConfigurationBuilder().AddEnvironmentVariables(prefix).AddJsonFile(file).Build()
                let errors, _ = bind earlier
                Expect.isEmpty errors "elements given last are bound"
                Expect.exists (Trident.Api.Cli.ConfigCommand.Check earlier) (fun p -> p.StartsWith "Trident:Devices:Degrees must list degrees among 1, 2, 4, 8" && p.EndsWith(sprintf "(from file %s)" file))
                    "the file's [1, 3] is refused, naming the file")
        finally
            Environment.SetEnvironmentVariable(prefix + "Trident__Devices__Degrees", null)

/// An environment (names and values) that counts how often its names are read.
type private CountingEnvironment() =
    inherit Collections.Hashtable()
    member val Reads = 0 with get, set
    override this.Keys =
        this.Reads <- this.Reads + 1
        base.Keys

let ``one check reads the environment's names once for all its problems, and names the variable that gives the key`` =
    testCase "one check reads the environment's names once for all its problems, and names the variable that gives the key" <| fun () ->
        // the configuration reads prefixed variables (a variable of this process reaches the other tests' servers), as the
        // host's DOTNET_ and ASPNETCORE_ providers do: the check names the variable with its prefix (before: "the
        // environment", as it looked for the name without it)
        let prefix = sprintf "TRIDENTSOURCE%d_" Environment.ProcessId
        let variables = [ "Trident__Serving__QueueCapacty", "8"; "Trident__Serving__RoundPeriodMs", "abc"; "Trident__Limits__MaxWidht", "64"
                          "TRIDENT__MONITOR__WINDOWSECONDS", "5"; "Trident__Monitor", "5" ]
        for name, value in variables do Environment.SetEnvironmentVariable(prefix + name, value)
        try
            let configuration = ConfigurationBuilder().AddEnvironmentVariables(prefix).Build()
            let environment = CountingEnvironment()
            for name, value in variables do environment.[prefix + name] <- value
            let struct (found, _) = Trident.Api.Cli.ConfigCommand.CheckWithNotes(configuration, environment)
            let problems = List.ofSeq found
            for name in [ "Trident__Serving__QueueCapacty"; "Trident__Serving__RoundPeriodMs"; "Trident__Limits__MaxWidht" ] do
                Expect.exists problems (fun p -> p.EndsWith(sprintf "(from environment variable %s%s)" prefix name)) (sprintf "%s named: %A" name problems)
            // Trident:Monitor given a value: the variable that gives it, not the one under it that sorts first
            Expect.exists problems (fun p -> p.Contains "is a section" && p.EndsWith(sprintf "(from environment variable %sTrident__Monitor)" prefix)) (sprintf "the section's own variable: %A" problems)
            Expect.equal environment.Reads 1 (sprintf "the environment's names are read once for %d problems" problems.Length)
        finally
            for name, _ in variables do Environment.SetEnvironmentVariable(prefix + name, null)

/// `trident` run as a process of its own with these environment variables added: its exit code, standard output and
/// standard error (an environment variable set in this process would reach the other tests' servers).
let private runProcess (args: string list) (environment: (string * string) list) =
    let start = Diagnostics.ProcessStartInfo("dotnet", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "trident.dll"))
    for a in args do start.ArgumentList.Add a
    start.Environment.["TRIDENT_HOME"] <- Trident.Tests.Runtime.TinyFixture.home
    for k, v in environment do start.Environment.[k] <- v
    use proc = Diagnostics.Process.Start start
    let out = proc.StandardOutput.ReadToEndAsync()
    let err = proc.StandardError.ReadToEndAsync()
    proc.WaitForExit()
    proc.ExitCode, out.Result, err.Result

let ``Trident keys outside section Trident are refused naming the key meant, and other unknown top-level keys are warned about`` =
    testCase "Trident keys outside section Trident are refused naming the key meant, and other unknown top-level keys are warned about" <| fun () ->
        let json = """{"urls": "http://127.0.0.1:8690", "Logging": {"LogLevel": {"Default": "Warning"}}, "AllowedHosts": "*",
                       "Serving": {"QueueCapacity": 3}, "Storage": {"Directory": "/tmp/opsfix-x"}, "Foo": 1}"""
        withFile json (fun file ->
            let code, out, err = runProcess [ "config"; "--check"; file ] []
            Expect.equal code 2 (sprintf "config --check: exit 2 (%s)" err)
            for key in [ "Serving"; "Storage" ] do
                Expect.stringContains err (sprintf "%s is outside section Trident, so nothing reads it (from file %s): did you mean Trident:%s?" key file key) (key + " named")
            Expect.stringContains err (sprintf "warning: Foo (in file %s) is not a key Trident or the host reads" file) "an unknown top-level key is a warning"
            for host in [ "urls"; "Logging"; "AllowedHosts" ] do
                Expect.isFalse (err.Contains(sprintf "warning: %s " host)) (sprintf "the host's own %s is fine" host)
            // the count with the problems, on standard error; nothing on standard output
            Expect.stringContains err (sprintf "trident config: %s: 2 problem(s):" file) "the count on stderr"
            Expect.equal out "" "nothing on stdout"
            let code, message = serve [ "--config"; file ]
            Expect.equal code 2 (sprintf "serve: exit 2 (%s)" message)
            Expect.stringContains message "did you mean Trident:Serving?" "serve names it too")
        withFile """{"Trident": {"Serving": {"QueueCapacity": 8}}}""" (fun file ->
            let code, out, err = runProcess [ "config"; "--check"; file ] []
            Expect.equal (code, out.Trim()) (0, file + ": valid") (sprintf "a valid file: its line on stdout (%s)" err))

let ``config --check reads the environment as serve does, and each bad key names its source`` =
    testCase "config --check reads the environment as serve does, and each bad key names its source" <| fun () ->
        withFile """{"Trident": {"Serving": {"QueueCapacity": 8}, "Jobs": {"Capacity": "lots"}}}""" (fun file ->
            let code, _, err = runProcess [ "config"; "--check"; file ] [ "Trident__Serving__QueueCapacty", "8"; "Trident_Serving_RoundPeriodMs", "50"; "TRIDENT_PROFILE_CACHE", "/tmp/x" ]
            Expect.equal code 2 (sprintf "exit 2 (%s)" err)
            Expect.stringContains err "Trident:Serving:QueueCapacty is not a configuration key" "the environment's key is checked (before: valid)"
            Expect.stringContains err "(from environment variable Trident__Serving__QueueCapacty)" "naming the variable"
            Expect.stringContains err (sprintf "(got 'lots') (from file %s)" file) "the file's key names the file"
            Expect.stringContains err "warning: environment variable Trident_Serving_RoundPeriodMs is ignored: configuration separates levels with double underscores (Trident__Serving__RoundPeriodMs)" "single underscores: a warning"
            // the key as the options spell it (before: Trident__PROFILE__CACHE, which is no key)
            Expect.stringContains err "warning: environment variable TRIDENT_PROFILE_CACHE is ignored: configuration separates levels with double underscores (Trident__ProfileCache)" "the key meant"
            Expect.isFalse (err.Contains "TRIDENT_HOME is ignored") "Trident's own variables are not configuration keys")
        // serve reads the host's DOTNET_ and ASPNETCORE_ variables too: a bad key from one is named with its variable
        let code, _, err = runProcess [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal" ]
                                      [ "ASPNETCORE_Trident__Serving__QueueCapacty", "8"; "DOTNET_Trident__Limits__MaxWidht", "64" ]
        Expect.equal code 2 (sprintf "serve: exit 2 (%s)" err)
        Expect.stringContains err "(from environment variable ASPNETCORE_Trident__Serving__QueueCapacty)" "the ASPNETCORE_ variable named (before: the environment)"
        Expect.stringContains err "(from environment variable DOTNET_Trident__Limits__MaxWidht)" "the DOTNET_ variable named"
        let code, message = serve [ "--Trident:Serving:QueueCapacty"; "5" ]
        Expect.equal code 2 (sprintf "serve: exit 2 (%s)" message)
        Expect.stringContains message "Trident:Serving:QueueCapacty is not a configuration key" "named"
        Expect.stringContains message "(from the command line)" "with its source"

/// `serve args` stops before it listens (exit 2) with `expected`, no stack trace, and `config --check` of a file whose
/// Trident:Storage:Directory is `store` stops too (exit 2) saying `checkSays`.
let private storeRefused (args: string list) (store: string) (expected: string) (checkSays: string) =
    let code, message = serve args
    Expect.equal code 2 (sprintf "serve: exit 2 before it listens (before: exit 1 with a raw IOException) (%s)" message)
    Expect.stringContains message expected "the key, the path and what is wrong"
    Expect.isFalse (message.Contains "   at ") "no stack trace"
    withFile (sprintf """{"Trident": {"Storage": {"Directory": "%s"}}}""" store) (fun json ->
        let code, message = run [ "config"; "--check"; json ]
        Expect.equal code 2 (sprintf "config --check too (%s)" message)
        Expect.stringContains message checkSays "the same problem")

let ``a storage directory that cannot be created or written is a configuration error naming the key`` =
    testCase "a storage directory that cannot be created or written is a configuration error naming the key" <| fun () ->
        let file = Path.GetTempFileName()
        try
            let under = Path.Combine(file, "jobs")
            storeRefused [ "--Trident:Storage:Directory"; under ] under
                (sprintf "Trident:Storage:Directory '%s' cannot hold the job store: '%s' on its path is a file, not a directory" under file)
                "Trident:Storage:Directory"
            if Directory.Exists "/proc/sys" then
                let code, message = serve [ "--Trident:Storage:Directory"; "/proc/sys/opsfix-jobs" ]
                Expect.equal code 2 (sprintf "/proc/sys: exit 2 (%s)" message)
                Expect.stringContains message "no file can be created in '/proc/sys'" "named"
            Expect.isNull (Trident.Runtime.Serving.JobJournal.Unusable(Path.Combine(Path.GetTempPath(), "opsfix-" + Guid.NewGuid().ToString "N", "jobs"))) "a directory that can be created is usable (and is not created by the check)"
            // a store another server holds (or is starting on: it takes the lock before its start-up work) stops serve
            // before it listens, with the store's message
            let held = Path.Combine(Path.GetTempPath(), "opsfix-held-" + Guid.NewGuid().ToString "N")
            let lock = Trident.Runtime.Serving.JobJournal.Reserve held
            try
                let code, message = serve [ "--Trident:Storage:Directory"; held ]
                Expect.equal code 1 (sprintf "a store in use: exit 1 (%s)" message)
                Expect.stringContains message (sprintf "trident serve: the job store %s is in use by another trident server" held) "named"
            finally
                lock.Dispose()
                Directory.Delete(held, true)
        finally
            File.Delete file

/// Before: a store whose results/ is a file started, listened and then failed opening the journal: exit 1 with the
/// raw IOException ("The file '…/results' already exists"), naming no key.
let ``a job store whose layout is not the store's stops serve before it listens, naming the key`` =
    testCase "a job store whose layout is not the store's stops serve before it listens, naming the key" <| fun () ->
        let store = Directory.CreateTempSubdirectory("trident-layout-").FullName
        // emulated devices: the old code reached the journal at once (no profiling of this machine first)
        let emulated = [ "--emulate"; "flux"; "--devices"; "1"; "--Trident:Limits:DefaultWidth"; "256"; "--Trident:Limits:DefaultHeight"; "256"
                         "--Trident:Storage:Directory"; store ]
        try
            let results = Path.Combine(store, "results")
            File.WriteAllText(results, "")
            storeRefused emulated store
                (sprintf "Trident:Storage:Directory '%s' cannot hold the job store: '%s', where the store keeps its result files, is a file, not a directory" store results)
                "where the store keeps its result files, is a file"
            File.Delete results
            for name in [ "jobs.db"; "jobs.db-wal"; "lock" ] do
                let folder = Directory.CreateDirectory(Path.Combine(store, name)).FullName
                let code, message = serve emulated
                Expect.equal code 2 (sprintf "%s a folder: exit 2 (%s)" name message)
                Expect.stringContains message (sprintf "cannot hold the job store: '%s', a file of the store, is a directory" folder) (sprintf "%s named" name)
                Directory.Delete folder
            // the layout of a store as a server leaves it is usable
            Directory.CreateDirectory results |> ignore
            File.WriteAllText(Path.Combine(store, "lock"), "")
            Expect.isNull (Trident.Runtime.Serving.JobJournal.Unusable store) "a store with its results folder and lock"
        finally
            Directory.Delete(store, true)

[<Tests>]
let integrationTests =
    testList "integration" [
        testList "StrictInputTests" [
            ``a number sent as a string, a duplicate key or an unknown field is a 400 naming it, on both generation routes``
            ``a field of the wrong type and another field out of range are named in one 400, on every body route``
            ``text that is not valid Unicode anywhere in a chat request, an extra_body that is not an object and a message without a role are a 400 naming where and why``
            ``priority outside -3 … 3 is refused naming the range, and deadline_ms with priority is accepted``
            ``server-drawn seeds fit in 2^53 − 1, larger client seeds are refused, and the OpenAI route reports each image's seed``
            ``the job status says how much of the prompt the encoder read, and prompt limits count characters``
            ``requests predicted over the time or memory limit are refused naming the limit and the estimate, and a 202 carries the estimate``
            ``a request over the cost limits is refused under every field it sent that drives the prediction, on every route``
        ] |> testSequenced ]

[<Tests>]
let unitTests =
    testList "unit" [ testList "StrictInputTests" [
        ``unparsable values and unknown keys from the command line or a config file stop serve with exit 2 and every key named``
        ``a config file that does not exist stops serve with exit 2``
        ``a config file that does not load is named with the line, the position and why, by serve, worker and config --check``
        ``a bad --urls stops serve with exit 2 naming the address``
        ``configuration errors that need the pipeline stop serve with exit 2 before it listens, and config --check reports them``
        ``environment variables are bound as strictly as other sources, and lists take a comma-separated value``
        ``a configuration file that exists but cannot be opened is a configuration error, not an unhandled exception``
        ``a list given as elements by one source and as a value by another is the later source's``
        ``one check reads the environment's names once for all its problems, and names the variable that gives the key``
        ``a trace file's problems all come in one pass, and an image-only model's video rows are refused``
        ``a missing trace file is reported as missing, not as an unknown workload``
        ``the storage directory is validated like other keys, relative to the Trident home, and memory keeps jobs in memory``
        ``the mix the initial placement is planned for is configurable, and a bad class is named``
        ``the default request size is one the pipeline serves``
        ``the keys' problems and the pipeline's come in one run, unless a key the pipeline's checks read is in doubt``
        ``a default size set to 256 is kept as set, and refused where the pipeline does not serve it``
        ``one key given twice in a file, spelt alike or differing only by case, is refused even where the loader merges it``
        ``the content root's appsettings.json that does not load is named with the line, the position and why``
        ``a worker's --primary that is not IP:port is a usage error naming the form, not a crash``
        ``a worker with cluster mode none is a usage error naming --cluster and the modes it takes``
        ``a configuration file saved with a byte order mark is read as the loader reads it, not refused at its first byte``
        ``Trident keys outside section Trident are refused naming the key meant, and other unknown top-level keys are warned about``
        ``config --check reads the environment as serve does, and each bad key names its source``
        ``a storage directory that cannot be created or written is a configuration error naming the key``
        ``a job store whose layout is not the store's stops serve before it listens, naming the key``
    ] |> testSequencedGroup "GenerationsApiTests" ]
