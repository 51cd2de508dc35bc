/// API keys (Trident:Auth:ApiKeys, Hosting/ApiKeys.cs): with keys set, a /v1 request without one is a 401 problem with
/// WWW-Authenticate: Bearer, a wrong one too, any configured key passes; probes, metrics, the docs and the web view's
/// page stay open; the view's stream takes the key in its query (an EventSource sets no headers), no other route does;
/// a CORS preflight is answered without a key; bad keys are named by the validator.
module Trident.Tests.Api.ApiKeyTests

open System.Net
open System.Net.Http
open System.Net.Http.Headers
open System.Text
open Microsoft.Extensions.Configuration
open Expecto
open Trident.Tests.Api.ApiFixture

let private send (client: HttpClient) (meth: HttpMethod) (path: string) (key: string option) (body: string option) =
    use request = new HttpRequestMessage(meth, path)
    key |> Option.iter (fun k -> request.Headers.Authorization <- AuthenticationHeaderValue("Bearer", k))
    body |> Option.iter (fun b -> request.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
    client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Result

let ``with API keys a /v1 route needs one of them, probes and pages stay open`` =
    testCase "with API keys a /v1 route needs one of them, probes and pages stay open" <| fun () ->
        use factory =
            new TridentFactory([ "Trident:Auth:ApiKeys:0", "k-one"; "Trident:Auth:ApiKeys:1", "k-two"
                                 "Trident:Cors:Origins:0", "http://localhost:3000" ])
        let client = readyClient factory
        use missing = send client HttpMethod.Get "/v1/models" None None
        Expect.equal missing.StatusCode HttpStatusCode.Unauthorized "no key: 401"
        Expect.equal (missing.Headers.WwwAuthenticate |> Seq.map string |> List.ofSeq) [ "Bearer" ] "WWW-Authenticate: Bearer"
        Expect.equal missing.Content.Headers.ContentType.MediaType "application/problem+json" "a problem"
        let problem = json missing
        Expect.stringContains (problem.GetProperty("detail").GetString()) "Authorization: Bearer" "says how to send the key"
        Expect.equal (problem.GetProperty("trace_id").GetString().Length) 32 "with the trace id every problem has"
        use wrong = send client HttpMethod.Get "/v1/models" (Some "k-three") None
        Expect.equal wrong.StatusCode HttpStatusCode.Unauthorized "a wrong key: 401"
        Expect.stringContains ((json wrong).GetProperty("detail").GetString()) "not one of this server's" "says the key is wrong"
        for key in [ "k-one"; "k-two" ] do
            use ok = send client HttpMethod.Get "/v1/models" (Some key) None
            Expect.equal ok.StatusCode HttpStatusCode.OK (key + " passes")
        use accepted = send client HttpMethod.Post "/v1/generations" (Some "k-one") (Some """{"prompt":"x","width":64,"height":64,"steps":1}""")
        Expect.equal accepted.StatusCode HttpStatusCode.Accepted "a generation with a key"
        use refused = send client HttpMethod.Post "/v1/generations" None (Some """{"prompt":"x","width":64,"height":64,"steps":1}""")
        Expect.equal refused.StatusCode HttpStatusCode.Unauthorized "a generation without one"
        for path in [ "/health"; "/ready"; "/metrics"; "/openapi/v1.json"; "/" ] do
            use r = send client HttpMethod.Get path None None
            Expect.equal r.StatusCode HttpStatusCode.OK (path + " needs no key")
        use stream = send client HttpMethod.Get "/v1/view/events?api_key=k-two" None None
        Expect.equal stream.StatusCode HttpStatusCode.OK "the view's stream takes the key in its query"
        use streamWithout = send client HttpMethod.Get "/v1/view/events" None None
        Expect.equal streamWithout.StatusCode HttpStatusCode.Unauthorized "and needs it"
        let job = (json accepted).GetProperty("id").GetString()
        use jobStream = send client HttpMethod.Get (sprintf "/v1/generations/%s/events?api_key=k-one" job) None None
        Expect.equal jobStream.StatusCode HttpStatusCode.OK "a job's event stream takes it too (an EventSource in a browser)"
        for path in [ "/v1/models?api_key=k-one"; sprintf "/v1/generations/%s?api_key=k-one" job; sprintf "/v1/generations/%s/result?api_key=k-one" job ] do
            use r = send client HttpMethod.Get path None None
            Expect.equal r.StatusCode HttpStatusCode.Unauthorized (path + ": no other route takes the key in its query")
        use preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/generations")
        preflight.Headers.Add("Origin", "http://localhost:3000")
        preflight.Headers.Add("Access-Control-Request-Method", "POST")
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization,content-type")
        use answered = client.SendAsync(preflight).Result
        Expect.equal answered.StatusCode HttpStatusCode.NoContent "a CORS preflight (sent without credentials) is answered"
        // the OpenAPI document says the /v1 operations need the bearer key (and /docs asks for it); the probes do not
        use docs = send client HttpMethod.Get "/openapi/v1.json" None None
        let document = json docs
        let scheme = document.GetProperty("components").GetProperty("securitySchemes").GetProperty("bearer")
        Expect.equal (scheme.GetProperty("scheme").GetString()) "bearer" "a bearer scheme"
        let security (path: string) =
            let mutable s = Unchecked.defaultof<System.Text.Json.JsonElement>
            document.GetProperty("paths").GetProperty(path).GetProperty("get").TryGetProperty("security", &s)
        Expect.isTrue (security "/v1/models") "a /v1 operation needs the key"
        let schemesOf (path: string) =
            [ for requirement in document.GetProperty("paths").GetProperty(path).GetProperty("get").GetProperty("security").EnumerateArray() ->
                [ for p in requirement.EnumerateObject() -> p.Name ] ]
        Expect.equal (schemesOf "/v1/models") [ [ "bearer" ] ] "the bearer key only"
        for stream in [ "/v1/view/events"; "/v1/generations/{id}/events" ] do
            Expect.equal (schemesOf stream) [ [ "bearer" ]; [ "api_key_query" ] ] (stream + ": the bearer key or the query key")
        let query = document.GetProperty("components").GetProperty("securitySchemes").GetProperty("api_key_query")
        Expect.equal (query.GetProperty("in").GetString(), query.GetProperty("name").GetString()) ("query", "api_key") "the query key's place and name"
        use page = send client HttpMethod.Get "/docs" None None
        Expect.equal page.StatusCode HttpStatusCode.OK "the /docs page"
        Expect.stringContains (page.Content.ReadAsStringAsync().Result) "\"preferredSecurityScheme\":[\"bearer\"]" "its 'try it' starts on the bearer key"
        Expect.isFalse (security "/health") "/health does not"
        use plain = new DefaultServer()
        use plainDocs = send (readyClient plain) HttpMethod.Get "/openapi/v1.json" None None
        let mutable components = Unchecked.defaultof<System.Text.Json.JsonElement>
        let mutable schemes = Unchecked.defaultof<System.Text.Json.JsonElement>
        Expect.isFalse ((json plainDocs).TryGetProperty("components", &components) && components.TryGetProperty("securitySchemes", &schemes))
            "no security scheme on a server without keys"
        // loadgen: refused without a key (exit 1, naming --api-key), through with one
        let trace = Trident.Tests.Runtime.TinyFixture.tempPath "keyed-trace.csv"
        System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName trace) |> ignore
        System.IO.File.WriteAllLines(trace, [ "id,arrival_s,model,height,width,frames,steps,deadline_s,priority"; "0,0,tiny,64,64,1,1,,"; "1,0.1,tiny,64,64,1,1,," ])
        let loadgen (key: string list) =
            use fresh = factory.CreateClient()
            let args = Trident.Api.Cli.Commands.Parse(Trident.Api.Cli.LoadgenCommand.Command, [ "--workload"; trace; "--timeout"; "60" ] @ key)
            let out = new System.IO.StringWriter()
            Trident.Api.Cli.LoadgenCommand.RunAsync(args, fresh, out, System.Threading.CancellationToken.None).Result, string out
        let code, _ = loadgen []
        Expect.equal code 1 "loadgen without a key stops"
        let code, text = loadgen [ "--api-key"; "k-two" ]
        Expect.equal code 0 text
        Expect.stringContains text "succeeded=2" "loadgen with a key"

let ``bad API keys are named by the validator`` =
    testCase "bad API keys are named by the validator" <| fun () ->
        let problems (settings: (string * string) list) =
            let config = ConfigurationBuilder().AddInMemoryCollection(dict settings).Build()
            Trident.Api.Cli.ConfigCommand.Check config |> String.concat "\n"
        for key in [ ""; "two words"; "tab\there" ] do
            Expect.stringContains (problems [ "Trident:Auth:ApiKeys:0", "ok-key"; "Trident:Auth:ApiKeys:1", key ]) "Trident:Auth:ApiKeys:1" (sprintf "'%s' is refused" key)
        Expect.equal (problems [ "Trident:Auth:ApiKeys:0", "sk-0123456789" ]) "" "a plain key is accepted"

let ``a server listening beyond this machine without keys is warned about`` =
    testCase "a server listening beyond this machine without keys is warned about" <| fun () ->
        let warn (addresses: string list) (keys: string list) = Trident.Api.Hosting.ApiKeys.ExposedWithoutKeys(addresses, Array.ofList keys)
        for local in [ "http://127.0.0.1:8080"; "http://localhost:8080"; "http://[::1]:8080"; "http://127.0.0.2:9" ] do
            Expect.isNull (warn [ local ] []) (local + " is this machine only")
        for exposed in [ "http://0.0.0.0:8080"; "http://[::]:8080"; "http://+:80"; "http://*:80"; "http://192.168.1.5:8080" ] do
            let w = warn [ "http://127.0.0.1:1"; exposed ] []
            Expect.isNotNull w (exposed + " is reachable from elsewhere")
            Expect.stringContains w exposed "names the address"
            Expect.stringContains w "Trident:Auth:ApiKeys" "and the key to set"
            Expect.isNull (warn [ exposed ] [ "k" ]) (exposed + " with a key")

[<Tests>]
let integrationTests =
    testList "integration" [
        testList "ApiKeyTests" [ ``with API keys a /v1 route needs one of them, probes and pages stay open`` ] |> testSequenced ]

[<Tests>]
let unitTests =
    testList "unit" [ testList "ApiKeyTests" [ ``bad API keys are named by the validator``; ``a server listening beyond this machine without keys is warned about`` ] ]
