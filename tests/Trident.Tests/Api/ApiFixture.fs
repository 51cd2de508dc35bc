/// The server in process (WebApplicationFactory<Program>) on the real bundled tiny pipeline: the same
/// composition root as `trident serve`, with test settings (loopback test server, a profile cache under the
/// tests' temp home so the quick profile runs once per machine, small limits). Every API test runs in the
/// tiny-pipeline collection, alone, so generation timings do not disturb other tests.
module Trident.Tests.Api.ApiFixture

open System
open System.IO
open System.Net
open System.Net.Http
open System.Net.Http.Json
open System.Text
open System.Text.Json
open System.Threading
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Mvc.Testing
open Trident.Tests.Runtime

/// The settings every test server gets, and extra ones per fixture.
let baseSettings =
    [ "Trident:Pipeline", TinyFixture.directory.Value
      "Trident:ProfileCache", Path.Combine(TinyFixture.home, "profiles")
      "Trident:LogLevel", "Warning"
      "Trident:Limits:MaxSteps", "2000"
      // the admission limit on predicted seconds depends on the profile measured on this machine (slow on a
      // loaded one); tests of long jobs must not depend on it (StrictInputTests sets its own)
      "Trident:Limits:MaxPredictedSeconds", "100000"
      "Trident:Limits:DefaultWidth", "64"
      "Trident:Limits:DefaultHeight", "64"
      "Trident:Serving:RoundPeriodMs", "100"
      // one request per task: the API tests count queued and running jobs; batching has its own tests
      // (BatchingTests, BatchingProperties, the simulator's)
      "Trident:Serving:MaxBatch", "1"
      // in-process servers keep their jobs in memory: each test starts empty (the durable store is tested on its own)
      "Trident:Storage:Directory", "memory" ]

/// A test server with `extra` settings on top of the base ones.
type TridentFactory(extra: (string * string) list) =
    inherit WebApplicationFactory<Program>()
    override _.ConfigureWebHost(builder: IWebHostBuilder) =
        for key, value in baseSettings @ extra do
            builder.UseSetting(key, value) |> ignore

/// A test server with the base settings (a class fixture needs exactly one public constructor).
type DefaultServer() =
    inherit TridentFactory([])

/// JSON as the API writes it.
let json (response: HttpResponseMessage) =
    let text = response.Content.ReadAsStringAsync().Result
    JsonDocument.Parse(text).RootElement

/// The field names of a validation problem's `errors` object (a 400's body).
let errorsOf (response: HttpResponseMessage) =
    [ for p in (json response).GetProperty("errors").EnumerateObject() -> p.Name ] |> Set.ofList

let post (client: HttpClient) (path: string) (body: string) =
    client.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json")).Result

let get (client: HttpClient) (path: string) = client.GetAsync(path).Result

/// Waits until /ready answers 200 (the runtime started: pipeline opened, profile read or measured).
let waitReady (client: HttpClient) =
    let deadline = DateTime.UtcNow.AddMinutes 5.0
    let mutable ready = false
    while not ready && DateTime.UtcNow < deadline do
        use r = get client "/ready"
        ready <- r.StatusCode = HttpStatusCode.OK
        if not ready then Thread.Sleep 100
    if not ready then failwith "the test server did not become ready within 5 minutes"

/// A ready client of a fresh server.
let readyClient (factory: #TridentFactory) =
    let client = factory.CreateClient()
    waitReady client
    client

/// Polls a generation's status until `stop` holds for it (at most `seconds`); returns the last status.
let pollUntil (client: HttpClient) (seconds: float) (id: string) (stop: JsonElement -> bool) =
    let deadline = DateTime.UtcNow.AddSeconds seconds
    let mutable last = json (get client ("/v1/generations/" + id))
    while not (stop last) && DateTime.UtcNow < deadline do
        Thread.Sleep 20
        last <- json (get client ("/v1/generations/" + id))
    if not (stop last) then failwithf "generation %s: condition not reached in %.0f s; last status %O" id seconds last
    last

let status (e: JsonElement) = e.GetProperty("status").GetString()

let isFinal (e: JsonElement) = status e = "succeeded" || status e = "failed" || status e = "cancelled"

/// Submits a generation; returns its id (fails the test unless 202).
let submit (client: HttpClient) (body: string) =
    use r = post client "/v1/generations" body
    if r.StatusCode <> HttpStatusCode.Accepted then
        failwithf "expected 202, got %O: %s" r.StatusCode (r.Content.ReadAsStringAsync().Result)
    (json r).GetProperty("id").GetString()
