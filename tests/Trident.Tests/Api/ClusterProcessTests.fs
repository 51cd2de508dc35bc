/// A Trident cluster of separate processes on loopback (LocalCluster, as `trident bench cluster` starts it): a
/// coordinator and two workers of two emulated flux devices each, with Redis membership (redis-server started
/// by the set-up). Generations succeed with the image a single process makes for the same prompt and seed; a
/// worker killed with SIGKILL while work runs leaves no accepted request unfinished (each ends succeeded, or
/// failed with a reason); the worker restarted on its address takes new work.
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
let private singleProcess (prompt: string) (side: int) (seed: uint64) =
    let cost = CostModel.create CostSettings.defaults (EmulatedProfile.Scaled(ReferenceProfiles.flux, scale))
    use e = new EmulatedStageExecutor(DeviceSpec(0, 0, DeviceKind.Emulated, 1, 0, 48.0), cost, 25e9, scale)
    let i = GenerationInput(prompt, null, side, side, 1, 28, seed, 3.5)
    let frames = e.Decode(i, e.Diffuse(i, e.Encode(i, CancellationToken.None), 1, { new IStepObserver with member _.StepCompleted(_, _) = () }, CancellationToken.None), CancellationToken.None)
    frames[0].Pixels

let private body (prompt: string) side seed steps =
    sprintf """{"prompt":"%s","width":%d,"height":%d,"seed":%d,"steps":%d,"guidance":3.5}""" prompt side side seed steps

let private nodeOf (final: Text.Json.JsonElement) =
    (final.GetProperty("route").GetProperty("diffuse_devices")[0]).GetInt32() / 2

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
                let image = PngDecoder.Decode(ReadOnlySpan(png.Content.ReadAsByteArrayAsync().Result))
                Expect.sequenceEqual image.Pixels (singleProcess (sprintf "request %d" i) 256 (uint64 i)) "the single-process image for the same prompt and seed"
            Expect.equal nodes.Count 2 "work ran on both workers"
            // 2. kill -9 a worker while work runs: every accepted request ends, none stays running
            let long = [ for i in 1..12 -> submit client (body (sprintf "long %d" i) 1024 (uint64 (100 + i)) 100) ]
            let deadline = DateTime.UtcNow.AddSeconds 60.0
            let running () = long |> List.filter (fun id -> status (json (get client ("/v1/generations/" + id))) = "diffusing") |> List.length
            while running () < 2 && DateTime.UtcNow < deadline do Thread.Sleep 100
            cluster.KillWorker 1
            let finals = long |> List.map (fun id -> pollUntil client 180.0 id isFinal)
            for f in finals do
                Expect.contains [ "succeeded"; "failed" ] (status f) "every accepted request ends succeeded or failed"
                if status f = "failed" then
                    Expect.isFalse (String.IsNullOrWhiteSpace(f.GetProperty("error").GetString())) "a failure has a reason"
            Expect.exists finals (fun f -> status f = "failed") "work on the killed worker failed (it is not re-queued)"
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
        finally
            cluster.DisposeAsync().AsTask().Wait()

[<Tests>]
let integrationTests =
    testList "integration" [ testList "ClusterProcessTests" [
        ``a cluster of processes serves generations, survives a killed worker, and takes the restarted worker back``
    ] |> testSequenced ]
