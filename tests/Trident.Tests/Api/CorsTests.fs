/// Cross-origin requests (Trident:Cors, Hosting/BrowserClients.cs): a browser application on an allowed origin gets
/// its preflight answered and every answer (errors included) carries Access-Control-Allow-Origin and the exposed
/// headers; another origin, and every origin on a server with no Trident:Cors:Origins (the default), gets none; bad
/// settings are named by the validator.
module Trident.Tests.Api.CorsTests

open System.Net
open System.Net.Http
open System.Text
open Microsoft.Extensions.Configuration
open Expecto
open Trident.Tests.Api.ApiFixture

let private allowed = "http://localhost:3000"

let private preflight (client: HttpClient) (origin: string) =
    use request = new HttpRequestMessage(HttpMethod.Options, "/v1/generations")
    request.Headers.Add("Origin", origin)
    request.Headers.Add("Access-Control-Request-Method", "POST")
    request.Headers.Add("Access-Control-Request-Headers", "content-type")
    client.SendAsync(request).Result

let private postFrom (client: HttpClient) (origin: string) (body: string) =
    use request = new HttpRequestMessage(HttpMethod.Post, "/v1/generations")
    request.Headers.Add("Origin", origin)
    request.Content <- new StringContent(body, Encoding.UTF8, "application/json")
    client.SendAsync(request).Result

let private header (r: HttpResponseMessage) (name: string) =
    match r.Headers.TryGetValues name with
    | true, values -> Some(String.concat "," values)
    | _ -> None

let ``an allowed origin's preflight and answers carry CORS headers, other origins and the default server none`` =
    testCase "an allowed origin's preflight and answers carry CORS headers, other origins and the default server none" <| fun () ->
        // configured as people paste it (a trailing slash, capitals): matched as browsers send it (before, no match at all)
        use factory = new TridentFactory([ "Trident:Cors:Origins:0", "http://LocalHost:3000/"; "Trident:Cors:PreflightMaxAgeSeconds", "120" ])
        let client = readyClient factory
        use ok = preflight client allowed
        Expect.equal ok.StatusCode HttpStatusCode.NoContent "the preflight is answered"
        Expect.equal (header ok "Access-Control-Allow-Origin") (Some allowed) "the preflight allows the origin"
        Expect.stringContains (header ok "Access-Control-Allow-Methods" |> Option.defaultValue "") "POST" "and POST"
        Expect.equal (header ok "Access-Control-Allow-Headers" |> Option.map (fun h -> h.ToLowerInvariant())) (Some "content-type") "and the JSON body's header"
        Expect.equal (header ok "Access-Control-Max-Age") (Some "120") "the configured preflight age"
        use accepted = postFrom client allowed """{"prompt":"x","width":64,"height":64,"steps":1}"""
        Expect.equal accepted.StatusCode HttpStatusCode.Accepted "the request itself"
        Expect.equal (header accepted "Access-Control-Allow-Origin") (Some allowed) "a 202 carries the origin"
        Expect.stringContains (header accepted "Access-Control-Expose-Headers" |> Option.defaultValue "") "Location" "and exposes its Location"
        use refused = postFrom client allowed """{"prompt":"x","steps":-1}"""
        Expect.equal refused.StatusCode HttpStatusCode.BadRequest "a bad request"
        Expect.equal (header refused "Access-Control-Allow-Origin") (Some allowed) "a 400 carries the origin, so the page can read why"
        // the answer depends on the Origin header, so every answer says so, once (a shared cache keys on it)
        for r, what in [ ok, "the preflight"; accepted, "a 202"; refused, "a 400" ] do
            Expect.equal (r.Headers.Vary |> Seq.filter ((=) "Origin") |> Seq.length) 1 (what + ": Vary: Origin once")
        use sameOrigin = get client "/v1/generations?limit=1"
        Expect.contains sameOrigin.Headers.Vary "Origin" "a request without Origin: Vary: Origin too"
        use other = preflight client "http://elsewhere.example"
        Expect.isNone (header other "Access-Control-Allow-Origin") "another origin is not allowed"
        use otherPost = postFrom client "http://elsewhere.example" """{"prompt":"x","width":64,"height":64,"steps":1}"""
        Expect.isNone (header otherPost "Access-Control-Allow-Origin") "nor its requests"
        // the default: no cross-origin access at all
        use plain = new DefaultServer()
        let plainClient = readyClient plain
        use none = preflight plainClient allowed
        Expect.isNone (header none "Access-Control-Allow-Origin") "no origin by default (preflight)"
        use nonePost = postFrom plainClient allowed """{"prompt":"x","width":64,"height":64,"steps":1}"""
        Expect.isNone (header nonePost "Access-Control-Allow-Origin") "no origin by default (request)"
        Expect.isFalse (nonePost.Headers.Vary.Contains "Origin") "no Vary: Origin without Trident:Cors"

let ``origins are matched as browsers write them`` =
    testCase "origins are matched as browsers write them" <| fun () ->
        let normalize = Trident.Api.Options.CrossOriginOptions.Normalize
        for given, expected in [ "http://localhost:3000", "http://localhost:3000"; "http://localhost:3000/", "http://localhost:3000"
                                 "HTTP://LocalHost:3000/", "http://localhost:3000"; "https://app.example.com:443", "https://app.example.com"
                                 "http://app.example.com:80/", "http://app.example.com"; "https://app.example.com:8443", "https://app.example.com:8443" ] do
            Expect.equal (normalize given) expected given
        for bad in [ "http://localhost:3000/app"; "http://localhost:3000/?x=1"; "http://localhost:3000/#f"; "localhost:3000"; "ftp://host" ] do
            Expect.isNull (normalize bad) bad

let ``bad Cors settings are named by the validator`` =
    testCase "bad Cors settings are named by the validator" <| fun () ->
        let problems (settings: (string * string) list) =
            let config = ConfigurationBuilder().AddInMemoryCollection(dict settings).Build()
            Trident.Api.Cli.ConfigCommand.Check config |> String.concat "\n"
        for origin in [ "localhost:3000"; "http://localhost:3000/app"; "ftp://host"; "http://user@host"; "" ] do
            Expect.stringContains (problems [ "Trident:Cors:Origins:0", origin ]) "Trident:Cors:Origins" (sprintf "'%s' is refused" origin)
        Expect.stringContains (problems [ "Trident:Cors:Origins:0", "*"; "Trident:Cors:Origins:1", allowed ]) "give it alone" "* with another origin"
        Expect.stringContains (problems [ "Trident:Cors:PreflightMaxAgeSeconds", "-1" ]) "Trident:Cors:PreflightMaxAgeSeconds" "a negative age"
        for good in [ [ "Trident:Cors:Origins:0", "*" ]; [ "Trident:Cors:Origins:0", allowed; "Trident:Cors:Origins:1", "https://app.example.com:8443/" ] ] do
            Expect.equal (problems good) "" (sprintf "%A is accepted" good)

[<Tests>]
let integrationTests =
    testList "integration" [
        testList "CorsTests" [ ``an allowed origin's preflight and answers carry CORS headers, other origins and the default server none`` ]
        |> testSequenced ]

[<Tests>]
let unitTests =
    testList "unit" [ testList "CorsTests" [ ``origins are matched as browsers write them``; ``bad Cors settings are named by the validator`` ] ]
