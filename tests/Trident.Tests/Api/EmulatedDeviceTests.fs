/// Emulated devices (Runtime/Devices/EmulatedStageExecutor.cs, Api/Hosting/EmulatedServingBackend.cs): the
/// scaled profile, the executor's durations, memory accounting, data flow and cancellation, the short serve
/// options, the configuration checks, and the real server and HTTP API on 16 and 128 emulated devices.
module Trident.Tests.Api.EmulatedDeviceTests

open System
open System.IO
open System.Net
open System.Threading
open Expecto
open Trident.Scheduling
open Trident.Runtime.Devices
open Trident.Runtime.Imaging
open Trident.Api.Options
open Trident.Tests.Api.ApiFixture
open Trident.Tests.TestSupport

let private flux = ReferenceProfiles.flux
let private scaled scale = EmulatedProfile.Scaled(flux, scale)
let private costOf profile = CostModel.create CostSettings.defaults profile
let private input width height frames steps seed =
    GenerationInput("a lighthouse at dusk", null, width, height, frames, steps, seed, 3.5)
let private executor memoryGb scale =
    let device = DeviceSpec(0, 0, DeviceKind.Emulated, 1, 0, memoryGb)
    new EmulatedStageExecutor(device, costOf (scaled scale), 25e9, scale)

type private Steps() =
    member val Seen = Collections.Generic.List<int>()
    member val OnStep: int -> unit = ignore with get, set
    interface IStepObserver with
        member this.StepCompleted(step, _) =
            this.Seen.Add step
            this.OnStep step

let ``a scaled profile multiplies every latency and keeps memory and transfer sizes`` =
    testCase "a scaled profile multiplies every latency and keeps memory and transfer sizes" <| fun () ->
        let s = scaled 0.05
        for original, emulated in List.zip flux.Diffuse.Points s.Diffuse.Points do
            Expect.floatClose Accuracy.veryHigh (float emulated.Seconds) (0.05 * float original.Seconds) "diffuse seconds × 0.05"
            Expect.equal emulated.PeakActivation original.PeakActivation "activation unchanged"
        Expect.equal s.DeviceMemory flux.DeviceMemory "device memory unchanged"
        Expect.equal s.Diffuse.Weights flux.Diffuse.Weights "weights unchanged"
        Expect.equal s.EmbeddingBytes flux.EmbeddingBytes "embedding bytes unchanged"
        let shape = { Height = 1024; Width = 1024; Frames = 1 }
        Expect.floatClose Accuracy.high (float (CostModel.tRef (costOf s) shape 28)) (0.05 * float (CostModel.tRef (costOf flux) shape 28)) "t_ref scales"
        Expect.throwsT<ArgumentException> (fun () -> EmulatedProfile.Reference "sdxl" |> ignore) "an unknown profile is refused"
        Expect.throwsT<ArgumentOutOfRangeException> (fun () -> EmulatedProfile.Scaled(flux, 0.0) |> ignore) "scale 0 is refused"

let ``an emulated task's duration is the scaled cost model's prediction`` =
    testCase "an emulated task's duration is the scaled cost model's prediction" <| fun () ->
        use e = executor 48.0 0.05
        let cost = costOf flux
        for (w, h) in [ 256, 256; 1024, 1024; 2048, 2048 ] do
            let i = input w h 1 28 1UL
            Expect.floatClose Accuracy.high (e.PredictedSeconds(Stage.Encode, i, 1)) (0.05 * float (CostModel.encodeTime cost i.Shape)) "encode"
            Expect.floatClose Accuracy.high (e.PredictedSeconds(Stage.Decode, i, 1)) (0.05 * float (CostModel.decodeTime cost i.Shape)) "decode"
            for k in [ 1; 2; 4; 8 ] do
                Expect.floatClose Accuracy.high (e.PredictedSeconds(Stage.Diffuse, i, k)) (0.05 * float (CostModel.diffuseTime cost i.Shape 28 k)) "diffuse"

let ``emulated stages hand real bytes on and decode a placeholder pattern that depends on prompt and seed`` =
    testCase "emulated stages hand real bytes on and decode a placeholder pattern that depends on prompt and seed" <| fun () ->
        use e = executor 48.0 0.001
        let cost = costOf flux
        let run (i: GenerationInput) =
            let embeddings = e.Encode(i, CancellationToken.None)
            let latents = e.Diffuse(i, embeddings, 2, Steps(), CancellationToken.None)
            embeddings, latents, e.Decode(i, latents, CancellationToken.None)
        let i = input 512 256 1 4 7UL
        let embeddings, latents, frames = run i
        Expect.equal embeddings.Bytes (int64 flux.EmbeddingBytes) "embeddings are the profile's size"
        Expect.equal latents.Bytes (int64 (CostModel.latentBytes cost i.Shape)) "latents are the profile's size for the shape"
        Expect.equal (embeddings.Value :?> byte[]).LongLength (int64 (round (float flux.EmbeddingBytes * 0.001))) "the embeddings carry the profile's bytes × the time scale"
        Expect.equal (latents.Value :?> byte[]).LongLength (e.Carried latents.Bytes) "so do the latents"
        Expect.equal frames.Count 1 "one frame"
        Expect.equal ((frames[0].Width, frames[0].Height)) ((64, 32)) "the request's aspect, 64 pixels on the longer side"
        Expect.equal (EmulatedStageExecutor.PlaceholderSize(48, 32)) (struct (48, 32)) "small requests keep their size"
        // H.264 takes even sides only: 1024 × 560 scaled to 64 × 35 made every such MP4 fail after its stages ran
        for w, h in [ 1024, 560; 1024, 592; 544, 1008; 1280, 720; 960, 544; 1280, 16 ] do
            let struct (pw, ph) = EmulatedStageExecutor.PlaceholderSize(w, h)
            Expect.isTrue (pw % 2 = 0 && ph % 2 = 0 && pw >= 2 && ph >= 2 && max pw ph = 64) (sprintf "%dx%d → %dx%d: even sides, the longer 64" w h pw ph)
        let _, _, again = run i
        Expect.sequenceEqual again[0].Pixels frames[0].Pixels "same prompt and seed: same pattern"
        let _, _, other = run (input 512 256 1 4 8UL)
        Expect.isFalse (other[0].Pixels.AsSpan().SequenceEqual(frames[0].Pixels)) "another seed: another pattern"
        let _, _, video = run (input 256 256 3 2 7UL)
        Expect.equal video.Count 3 "a video has every frame"
        Expect.isFalse (video[0].Pixels.AsSpan().SequenceEqual(video[1].Pixels)) "frames differ"
        Expect.equal (set e.Resident) (set [ Stage.Encode; Stage.Diffuse; Stage.Decode ]) "each stage's model became resident on first use"

let ``emulated devices account for memory as the cost model does`` =
    testCase "emulated devices account for memory as the cost model does" <| fun () ->
        // flux weights: E 9.8, D 23.8, C 0.17 GB
        use small = executor 30.0 0.001
        small.Load Stage.Encode
        Expect.throwsT<EmulatedOutOfMemoryException> (fun () -> small.Load Stage.Diffuse) "E + D weights (33.6 GB) exceed 30 GB"
        Expect.equal (set small.Resident) (set [ Stage.Encode ]) "the failed load is not kept"
        small.Unload Stage.Encode
        small.Load Stage.Diffuse
        Expect.floatClose Accuracy.high small.ResidentWeightsGb 23.8 "only D is resident"
        // decode of 2048² needs min(24, 4 × 4.19) = 16.8 GB of activation
        let big = input 2048 2048 1 2 1UL
        let latents = StageOutput(EmulatedStageExecutor.Payload(ReadOnlySpan(Array.zeroCreate<byte> 32), 64L), 64L)
        use edc = executor 40.0 0.001
        for s in [ Stage.Encode; Stage.Diffuse; Stage.Decode ] do edc.Load s
        Expect.throwsT<EmulatedOutOfMemoryException> (fun () -> edc.Decode(big, latents, CancellationToken.None) |> ignore) "⟨EDC⟩ 33.8 GB + 16.8 GB > 40 GB"
        use c = executor 40.0 0.001
        c.Load Stage.Decode
        Expect.equal (c.Decode(big, latents, CancellationToken.None)).Count 1 "⟨C⟩ 0.17 GB + 16.8 GB fits 40 GB"

let ``an emulated diffuse reports every step and stops at the step boundary after a cancel`` =
    testCase "an emulated diffuse reports every step and stops at the step boundary after a cancel" <| fun () ->
        use e = executor 48.0 0.01
        let i = input 256 256 1 50 3UL
        let embeddings = e.Encode(i, CancellationToken.None)
        let all = Steps()
        e.Diffuse(i, embeddings, 1, all, CancellationToken.None) |> ignore
        Expect.sequenceEqual all.Seen [ 1..50 ] "every step, in order"
        use cts = new CancellationTokenSource()
        let cut = Steps()
        cut.OnStep <- fun s -> if s = 3 then cts.Cancel()
        Expect.throwsT<OperationCanceledException> (fun () -> e.Diffuse(i, embeddings, 1, cut, cts.Token) |> ignore) "cancelled"
        Expect.sequenceEqual cut.Seen [ 1; 2; 3 ] "no step after the cancel"
        Expect.throwsT<ArgumentException> (fun () -> e.Diffuse(i, embeddings, 3, Steps(), CancellationToken.None) |> ignore) "degree 3 is not profiled"

let ``an emulated diffuse suspends at a step boundary and resumes to the same latents`` =
    testCase "an emulated diffuse suspends at a step boundary and resumes to the same latents" <| fun () ->
        use e = executor 48.0 0.01
        use other = executor 48.0 0.01
        Expect.isTrue (e :> IStageExecutor).CanSuspend "emulated devices can be preempted"
        let i = input 256 256 1 20 5UL
        let embeddings = e.Encode(i, CancellationToken.None)
        let whole = e.Diffuse(i, embeddings, 1, Steps(), CancellationToken.None)
        let first = Steps()
        let stop = ref false
        first.OnStep <- fun s -> if s = 7 then stop.Value <- true
        let segment = (e :> IStageExecutor).DiffuseSegment(i, embeddings, 1, first, null, (fun () -> stop.Value), CancellationToken.None)
        Expect.isNull segment.Latents "no latents from a suspended segment"
        let checkpoint = segment.Suspended
        Expect.isNotNull checkpoint "suspended"
        Expect.equal checkpoint.Step 7 "at the boundary after the step where it was asked"
        Expect.sequenceEqual first.Seen [ 1..7 ] "the first segment's steps"
        // resumed on another emulated device: the rest of the steps, the same bytes as the uninterrupted run
        let rest = Steps()
        let resumed = (other :> IStageExecutor).DiffuseSegment(i, embeddings, 1, rest, checkpoint, (fun () -> false), CancellationToken.None)
        Expect.isNull resumed.Suspended "ran to the end"
        Expect.sequenceEqual rest.Seen [ 8..20 ] "each remaining step once"
        Expect.sequenceEqual (resumed.Latents.Value :?> byte[]) (whole.Value :?> byte[]) "the same latents as without the suspension"
        Expect.equal resumed.Latents.Bytes whole.Bytes "the same size"
        // a segment runs at least one step even when asked to stop at once; a foreign checkpoint is refused
        let once = Steps()
        let early = (e :> IStageExecutor).DiffuseSegment(i, embeddings, 1, once, checkpoint, (fun () -> true), CancellationToken.None)
        Expect.equal early.Suspended.Step 8 "one step, then the boundary"
        let foreign = DiffuseCheckpoint(3, 20, 1, obj (), 0L)
        Expect.throwsT<ArgumentException> (fun () -> (e :> IStageExecutor).DiffuseSegment(i, embeddings, 1, Steps(), foreign, (fun () -> false), CancellationToken.None) |> ignore) "not an emulated checkpoint"

let ``an emulated payload is the digest, a generated block and its repeats`` =
    testCase "an emulated payload is the digest, a generated block and its repeats" <| fun () ->
        let digest seed = Array.init 32 (fun i -> byte (i * 7 + seed))
        let block = EmulatedStageExecutor.PayloadBlock
        let length = int64 (4 * block + 1000)
        let p = EmulatedStageExecutor.Payload(ReadOnlySpan(digest 1), length)
        Expect.equal p.LongLength length "the length asked for"
        Expect.sequenceEqual p.[.. 31] (digest 1) "starts with the digest"
        Expect.sequenceEqual (EmulatedStageExecutor.Payload(ReadOnlySpan(digest 1), length)) p "deterministic"
        Expect.isFalse (p.[32 .. block - 1] |> Array.forall ((=) 0uy)) "the block is generated, not zeros"
        for k in 1..4 do
            let upTo = min (k * block + block) p.Length
            Expect.sequenceEqual p.[k * block .. upTo - 1] p.[.. upTo - k * block - 1] $"repeat {k} of the block"
        let other = EmulatedStageExecutor.Payload(ReadOnlySpan(digest 2), length)
        Expect.isTrue (Seq.forall2 (<>) p.[32 .. 287] other.[32 .. 287]) "another digest gives other bytes"
        Expect.equal (EmulatedStageExecutor.Payload(ReadOnlySpan(digest 1), 8L)).Length 32 "at least the digest"

let ``an emulated diffuse waiting without a thread reports every step in order and stops after a cancel`` =
    testCase "an emulated diffuse waiting without a thread reports every step in order and stops after a cancel" <| fun () ->
        use e = executor 48.0 0.01
        let i = input 256 256 1 40 5UL
        let embeddings = e.Encode(i, CancellationToken.None)
        let all = Steps()
        let plain = e.Diffuse(i, embeddings, 1, Steps(), CancellationToken.None)
        let latents = e.DiffuseAsync(i, embeddings, 1, all, TimeSpan.FromMilliseconds 20.0, CancellationToken.None).GetAwaiter().GetResult()
        Expect.sequenceEqual all.Seen [ 1..40 ] "every step, in order"
        Expect.sequenceEqual (latents.Value :?> byte[]) (plain.Value :?> byte[]) "the same latents as the blocking call"
        use cts = new CancellationTokenSource()
        let cut = Steps()
        cut.OnStep <- fun s -> if s >= 3 then cts.Cancel()
        Expect.throwsT<OperationCanceledException> (fun () -> e.DiffuseAsync(i, embeddings, 1, cut, TimeSpan.Zero, cts.Token).GetAwaiter().GetResult() |> ignore) "cancelled"
        Expect.sequenceEqual cut.Seen [ 1; 2; 3 ] "no step after the cancel"

let ``serve's short options stand for configuration keys, and emulation keys are validated`` =
    testCase "serve's short options stand for configuration keys, and emulation keys are validated" <| fun () ->
        let serve args = Trident.Api.Cli.Commands.Parse(Trident.Api.Cli.ServeCommand.Command, args)
        let expanded = Trident.Api.Cli.ShortServeOptions.Expand(serve [ "--emulate"; "flux"; "--devices=128"; "--time-scale"; "0.05"; "--urls"; "http://127.0.0.1:0" ])
        Expect.sequenceEqual expanded
            [| "--Trident:Devices:Kind"; "emulated"; "--Trident:Emulation:Profile"; "flux"; "--Trident:Devices:Count"; "128"
               "--Trident:Emulation:TimeScale"; "0.05"; "--urls"; "http://127.0.0.1:0" |] "expanded"
        Expect.throwsT<Trident.Api.Cli.CliException> (fun () -> serve [ "--emulate" ] |> ignore) "a value is needed"
        let o = TridentOptions()
        o.Devices.Kind <- "emulated"
        o.Emulation.Profile <- "sdxl"
        o.Emulation.TimeScale <- 0.0
        let result = TridentOptionsValidator().Validate(null, o)
        Expect.isTrue result.Failed "invalid"
        Expect.stringContains result.FailureMessage "Trident:Emulation:Profile must be one of sd3, flux, cogvideox, hunyuanvideo (got 'sdxl')" "profile named"
        Expect.stringContains result.FailureMessage "Trident:Emulation:TimeScale" "time scale named"
        let layout = Trident.Api.Hosting.EmulatedServingBackend.Layout(TridentOptions(Devices = DeviceOptions(Kind = "emulated")))
        Expect.equal layout.Devices.Count 8 "Count 0: one reference node of 8"
        let layout = Trident.Api.Hosting.ServingBackends.Layout(TridentOptions(Devices = DeviceOptions(Kind = "emulated", Count = 20)))
        Expect.equal ((layout.Devices.Count, layout.NodeCount, layout.Devices[0].MemoryGb)) ((20, 3, 48.0)) "nodes of 8, the profile's 48 GB"

let ``an emulated server's monitor window, cool-down and re-check spacing are scaled like its stage times`` =
    testCase "an emulated server's monitor window, cool-down and re-check spacing are scaled like its stage times" <| fun () ->
        let o = TridentOptions()
        o.Devices.Kind <- "emulated"
        o.Emulation.TimeScale <- 0.05
        let m = Trident.Api.Hosting.ServerHost.MonitorSettings o
        Expect.floatClose Accuracy.high m.WindowSeconds 3.0 "60 s of the reference devices' time"
        Expect.floatClose Accuracy.high m.CooldownSeconds 1.5 "30 s"
        Expect.floatClose Accuracy.high m.RecheckSeconds 0.05 "1 s"
        Expect.equal (m.TriggerRatio, m.MinArrivals, m.MinGain) (1.5, 20, 0.1) "ratios and counts are not times"
        Expect.floatClose Accuracy.high (Trident.Api.Hosting.ServerHost.Settings o).Monitor.WindowSeconds 3.0 "the server's settings use it"
        let real = TridentOptions()
        real.Emulation.TimeScale <- 0.05
        let m = Trident.Api.Hosting.ServerHost.MonitorSettings real
        Expect.equal (m.WindowSeconds, m.CooldownSeconds, m.RecheckSeconds) (60.0, 30.0, 1.0) "real devices: the server's seconds"

/// A server on `devices` emulated flux devices at time scale 0.01.
type EmulatedServer(devices: int) =
    inherit TridentFactory(
        [ "Trident:Devices:Kind", "emulated"
          "Trident:Devices:Count", string devices
          "Trident:Emulation:Profile", "flux"
          "Trident:Emulation:TimeScale", "0.01"
          "Trident:Limits:DefaultWidth", "256"
          "Trident:Limits:DefaultHeight", "256"
          "Trident:Serving:QueueCapacity", "256" ])

let private servesEvery (devices: int) (count: int) =
    use factory = new EmulatedServer(devices)
    let client = readyClient factory
    use cluster = get client "/v1/cluster"
    Expect.equal cluster.StatusCode HttpStatusCode.OK "cluster"
    Expect.equal ((json cluster).GetProperty("devices").GetArrayLength()) devices "every emulated device is listed"
    let sizes = [| 256; 512; 1024 |]
    let ids =
        [ for i in 0 .. count - 1 ->
              let side = sizes[i % sizes.Length]
              side, submit client (sprintf """{"prompt":"request %d","width":%d,"height":%d,"seed":%d}""" i side side i) ]
    for _, id in ids do
        let final = pollUntil client 120.0 id isFinal
        Expect.equal (status final) "succeeded" (sprintf "generation %s: %O" id final)
        Expect.equal (final.GetProperty("step").GetInt32()) 28 "flux's default 28 steps"
        use png = get client (sprintf "/v1/generations/%s/result" id)
        let image = Trident.Tests.Runtime.MediaChecks.decodeImage (png.Content.ReadAsByteArrayAsync().Result)
        Expect.equal ((image.Width, image.Height)) ((64, 64)) "a 64 × 64 placeholder PNG"

let ``the server and HTTP API serve generations on 16 emulated devices`` =
    testCase "the server and HTTP API serve generations on 16 emulated devices" <| fun () -> servesEvery 16 12

let ``the server and HTTP API serve generations on 128 emulated devices`` =
    testCase "the server and HTTP API serve generations on 128 emulated devices" <| fun () -> servesEvery 128 48

let ``a video decode pauses between two tiles for an expedited decode and decodes the same frames`` =
    testCase "a video decode pauses between two tiles for an expedited decode, which ends first; the video's frames are unchanged" <| fun () ->
        // hunyuanvideo at a 0.03 time scale: a 720×1280×129 decode 1.44 s in 11 tiles of 12 frames, an image's 0.03 s
        let scale = 0.03
        let cost = costOf (EmulatedProfile.Scaled(ReferenceProfiles.hunyuanvideo, scale))
        let device = DeviceSpec(0, 0, DeviceKind.Emulated, 1, 0, 80.0)
        let started = Collections.Concurrent.ConcurrentQueue<int64>()
        let pauses = Collections.Concurrent.ConcurrentQueue<int64 * int64>()
        let observer =
            { new IWorkerObserver with
                member _.Started(_, t) = started.Enqueue t.TaskId
                member _.Finished(_, _, _) = ()
                member _.DecodePaused(_, paused, urgent) = pauses.Enqueue((paused.TaskId, urgent.TaskId)) }
        use w = new Worker(device, PlacementType.C, new EmulatedStageExecutor(device, cost, 25e9, scale), observer, 16)
        let latents (seed: int) = StageOutput(box (Array.init 64 (fun i -> byte (i * 7 + seed))), 64L)
        let clip = GenerationInput("a long video", null, 1280, 720, 129, 50, 1UL, 6.0)
        let image seed = GenerationInput("an image", null, 1280, 720, 1, 50, seed, 6.0)
        let decode id (i: GenerationInput) (l: Tasks.Task<StageOutput>) =
            DecodeTask(id, RequestId id, 0.0, CancellationToken.None, i, l, TileFrames = 12, MaxPauses = 2)
        let video = decode 1L clip (Tasks.Task.FromResult(latents 1))
        let urgentLatents = Tasks.TaskCompletionSource<StageOutput>(Tasks.TaskCreationOptions.RunContinuationsAsynchronously)
        let urgent = decode 2L (image 2UL) urgentLatents.Task
        // ready and queued before the urgent one's latents are: not expedited, it waits for the video
        let plain = decode 3L (image 3UL) (Tasks.Task.FromResult(latents 3))
        for t in [ video; urgent; plain ] do w.EnqueueAsync(t, CancellationToken.None).AsTask().Wait()
        Trident.Tests.Runtime.ServingFixtures.waitUntil 10.0 "the video decode started" (fun () -> Seq.contains 1L started)
        urgentLatents.SetResult(latents 2)
        urgent.Expedite(Nullable 1L)
        Expect.isTrue (urgent.Result.Task.Wait(TimeSpan.FromSeconds 10.0)) "the expedited decode ran"
        Expect.isFalse video.Result.Task.IsCompleted "the expedited decode ended while the video decode was paused"
        Expect.isTrue (video.Result.Task.Wait(TimeSpan.FromSeconds 10.0)) "the video decode went on"
        Expect.isTrue (plain.Result.Task.Wait(TimeSpan.FromSeconds 10.0)) "the queued decode ran"
        Expect.sequenceEqual (List.ofSeq started) [ 1L; 2L; 3L ] "the expedited decode inside the video's; the one not expedited after it"
        Expect.sequenceEqual (List.ofSeq pauses) [ 1L, 2L ] "one pause, reported"
        Expect.equal video.Pauses 1 "counted on the paused decode"
        use fresh = new EmulatedStageExecutor(device, cost, 25e9, scale)
        let alone = fresh.Decode(clip, latents 1, CancellationToken.None)
        let frames = video.Result.Task.Result[0]
        Expect.equal frames.Count 129 "every frame"
        for f in 0 .. 128 do Expect.sequenceEqual frames[f].Pixels alone[f].Pixels (sprintf "frame %d as a decode never paused" f)

let ``emulated video pipelines take the frame counts their models take: 4k + 1`` =
    testCase "emulated video pipelines take the frame counts their models take: 4k + 1" <| fun () ->
        for profile in [ ReferenceProfiles.hunyuanvideo; ReferenceProfiles.cogvideox ] do
            let manifest = EmulatedProfile.Manifest profile
            Expect.equal manifest.Latents.TemporalCompression 4 (sprintf "%s: its VAE compresses time 4×" profile.Model.Value)
            Expect.isEmpty (manifest.Validate()) "a valid manifest"
            for f in [ 1; 17; 33; 65 ] do
                Expect.isEmpty (manifest.CheckSize(manifest.Size.MinWidth, manifest.Size.MinHeight, f)) (sprintf "%d frames are served" f)
            let wrong = manifest.CheckSize(manifest.Size.MinWidth, manifest.Size.MinHeight, 32) |> Seq.map string |> List.ofSeq
            Expect.equal wrong [ "frames: must be 1 more than a multiple of the temporal compression 4 (4k + 1; the nearest: 29 or 33)" ] "32 frames: named, with the nearest"
            // every frame count of the profile (the sizes PlanFor classes and workloads take) is one the pipeline serves
            for point in profile.Diffuse.Points do
                Expect.isEmpty (manifest.CheckSize(manifest.Size.MinWidth, manifest.Size.MinHeight, point.Shape.Frames)) (sprintf "the profile's %d frames" point.Shape.Frames)
        let flux = EmulatedProfile.Manifest ReferenceProfiles.flux
        Expect.equal flux.Latents.TemporalCompression 1 "an image model: 1"

/// A server on 8 emulated hunyuanvideo devices at time scale 0.01, its limits raised for 960×544 videos.
type EmulatedVideoServer() =
    inherit TridentFactory(
        [ "Trident:Devices:Kind", "emulated"
          "Trident:Emulation:Profile", "hunyuanvideo"
          "Trident:Emulation:TimeScale", "0.01"
          "Trident:Limits:MaxWidth", "1280"
          "Trident:Limits:MaxHeight", "1280"
          "Trident:Limits:MaxFrames", "129"
          "Trident:Limits:MaxActivationGb", "0"
          "Trident:Limits:DefaultWidth", "960"
          "Trident:Limits:DefaultHeight", "544" ])

let ``an emulated video server refuses frame counts its model does not take, naming the field, the form and the nearest`` =
    testCase "an emulated video server refuses frame counts its model does not take, naming the field, the form and the nearest" <| fun () ->
        use factory = new EmulatedVideoServer()
        let client = readyClient factory
        let refused (path: string) (body: string) (field: string) =
            use r = post client path body
            Expect.equal r.StatusCode HttpStatusCode.BadRequest (sprintf "%s %s" path body)
            let errors = (json r).GetProperty("errors")
            Expect.equal [ for p in errors.EnumerateObject() -> p.Name ] [ field ] (sprintf "only %s is named" field)
            let message = errors.GetProperty(field).[0].GetString()
            Expect.stringContains message "4k + 1" "the allowed form"
            Expect.stringContains message "29 or 33" "the nearest valid counts"
        refused "/v1/generations" """{"prompt":"v","width":960,"height":544,"frames":32,"steps":2}""" "frames"
        refused "/v1/videos" """{"prompt":"v","size":"960x544","num_frames":32,"num_inference_steps":2}""" "num_frames"
        refused "/v1/chat/completions" """{"messages":[{"role":"user","content":"v"}],"width":960,"height":544,"num_frames":32,"num_inference_steps":2}""" "num_frames"
        // one frame is a length the model takes (4 · 0 + 1) but an image, not a video: the videos route refuses it,
        // stating the range it applies (before: "a video has at least 2 frames", while 200 frames read "between 1 and …")
        use one = post client "/v1/videos" """{"prompt":"v","size":"960x544","num_frames":1,"num_inference_steps":2}"""
        Expect.equal one.StatusCode HttpStatusCode.BadRequest "one frame on /v1/videos"
        Expect.stringContains ((json one).GetProperty("errors").GetProperty("num_frames").[0].GetString()) "must be between 2 and" "names num_frames and the range"
        // nor does it point a count off the model's form at one frame (before: "the nearest: 1 or 5")
        use three = post client "/v1/videos" """{"prompt":"v","size":"960x544","num_frames":3,"num_inference_steps":2}"""
        Expect.stringContains ((json three).GetProperty("errors").GetProperty("num_frames").[0].GetString()) "the nearest: 5)" "the nearest video length"
        // a length the model takes is served, the default one included
        use ok = post client "/v1/videos" """{"prompt":"v","size":"960x544","num_frames":33,"num_inference_steps":2}"""
        Expect.equal ok.StatusCode HttpStatusCode.OK (ok.Content.ReadAsStringAsync().Result)
        use byDefault = post client "/v1/videos" """{"prompt":"v","size":"960x544","num_inference_steps":2}"""
        Expect.equal byDefault.StatusCode HttpStatusCode.OK (byDefault.Content.ReadAsStringAsync().Result)
        Expect.equal ((json byDefault).GetProperty("num_frames").GetInt32()) 5 "the shortest video: 4 · 1 + 1 frames"

let ``an emulated server's answers state the size of the file they return (a placeholder)`` =
    testCase "an emulated server's answers state the size of the file they return (a placeholder)" <| fun () ->
        use factory = new EmulatedVideoServer()
        let client = readyClient factory
        // emulated results are placeholders (the request's aspect, at most 64 pixels a side): the answers say so
        let struct (w, h) = EmulatedStageExecutor.PlaceholderSize(960, 544)
        use created = post client "/v1/videos" """{"prompt":"v","size":"960x544","num_frames":5,"num_inference_steps":2}"""
        Expect.equal created.StatusCode HttpStatusCode.OK (created.Content.ReadAsStringAsync().Result)
        let video = json created
        Expect.equal (video.GetProperty("size").GetString()) (sprintf "%dx%d" w h) "the video object states the placeholder's size"
        let id = video.GetProperty("id").GetString()
        let deadline = DateTime.UtcNow.AddSeconds 120.0
        let mutable last = video
        while last.GetProperty("status").GetString() <> "completed" && DateTime.UtcNow < deadline do
            Thread.Sleep 50
            last <- json (get client ("/v1/videos/" + id))
        Expect.equal (last.GetProperty("status").GetString()) "completed" (sprintf "the video is made: %O" last)
        Expect.equal (last.GetProperty("size").GetString()) (sprintf "%dx%d" w h) "completed: the same size"
        use content = get client ("/v1/videos/" + id + "/content")
        let probe = Trident.Tests.Runtime.MediaChecks.probeVideo (content.Content.ReadAsByteArrayAsync().Result) "mp4"
        Expect.equal ((probe.Width, probe.Height, probe.Frames)) ((w, h, 5)) "the file is that size, with the frames asked for"
        use images = post client "/v1/images/generations" """{"prompt":"i","size":"960x544","num_inference_steps":2}"""
        Expect.equal images.StatusCode HttpStatusCode.OK (images.Content.ReadAsStringAsync().Result)
        let answer = json images
        let png = Convert.FromBase64String(answer.GetProperty("data").[0].GetProperty("b64_json").GetString())
        let image = Trident.Tests.Runtime.MediaChecks.decodeImage png
        Expect.equal (answer.GetProperty("size").GetString()) (sprintf "%dx%d" image.Width image.Height) "the image answer states the returned image's size"
        Expect.equal ((image.Width, image.Height)) ((w, h)) "the placeholder's"
        // an image job is not a video: the videos route does not serve it as one (it served "object": "video", 1 frame)
        let imageJob = answer.GetProperty("data").[0].GetProperty("id").GetString()
        for path in [ "/v1/videos/video_" + imageJob; "/v1/videos/video_" + imageJob + "/content" ] do
            use notVideo = get client path
            Expect.equal notVideo.StatusCode HttpStatusCode.NotFound (sprintf "%s: %s" path (notVideo.Content.ReadAsStringAsync().Result))
            Expect.stringContains (notVideo.Content.ReadAsStringAsync().Result) "images are at /v1/generations/" "says where images are"

/// An emulated pipeline presents the real model's guidance: guidance-distilled FLUX.1-dev and HunyuanVideo take the scale
/// as an input and read no negative prompt (before, every emulated manifest declared classifier-free guidance at 3.5,
/// so an emulated flux server accepted a negative prompt the real model ignores); CogVideoX and SD3 run it.
let ``an emulated pipeline presents the real model's guidance`` =
    testCase "an emulated pipeline presents the real model's guidance" <| fun () ->
        let guidance (p: Profile) = (EmulatedProfile.Manifest p).Guidance
        for p, scale in [ ReferenceProfiles.flux, 3.5; ReferenceProfiles.hunyuanvideo, 6.0 ] do
            let g = guidance p
            Expect.isFalse g.ClassifierFree (p.Model.Value + ": no unconditional pass")
            Expect.isTrue g.Embedded (p.Model.Value + ": the scale is the denoiser's input")
            Expect.equal g.DefaultScale scale (p.Model.Value + ": diffusers' default scale")
            Expect.isTrue g.Accepted (p.Model.Value + ": a request may set the scale")
            Expect.isSome (Option.ofObj (g.NegativePromptUnused(Nullable(), "guidance", p.Model.Value))) (p.Model.Value + ": a negative prompt would not be read")
        for p, scale in [ ReferenceProfiles.cogvideox, 6.0; ReferenceProfiles.sd3, 7.0 ] do
            let g = guidance p
            Expect.isTrue g.ClassifierFree (p.Model.Value + ": classifier-free guidance")
            Expect.equal g.DefaultScale scale (p.Model.Value + ": diffusers' default scale")
            Expect.isNone (Option.ofObj (g.NegativePromptUnused(Nullable(), "guidance", p.Model.Value))) (p.Model.Value + ": the negative prompt is read")

[<Tests>]
let unitTests =
    testList "unit" [ testList "EmulatedDeviceTests" [
        ``an emulated pipeline presents the real model's guidance``
        ``a scaled profile multiplies every latency and keeps memory and transfer sizes``
        ``an emulated task's duration is the scaled cost model's prediction``
        ``emulated stages hand real bytes on and decode a placeholder pattern that depends on prompt and seed``
        ``emulated devices account for memory as the cost model does``
        ``an emulated diffuse reports every step and stops at the step boundary after a cancel``
        ``an emulated diffuse suspends at a step boundary and resumes to the same latents``
        ``an emulated payload is the digest, a generated block and its repeats``
        ``an emulated diffuse waiting without a thread reports every step in order and stops after a cancel``
        ``serve's short options stand for configuration keys, and emulation keys are validated``
        ``an emulated server's monitor window, cool-down and re-check spacing are scaled like its stage times``
        ``emulated video pipelines take the frame counts their models take: 4k + 1``
    ] ]

[<Tests>]
let integrationTests =
    testList "integration" [ testList "EmulatedDeviceTests" [
        ``a video decode pauses between two tiles for an expedited decode and decodes the same frames``
        ``the server and HTTP API serve generations on 16 emulated devices``
        ``the server and HTTP API serve generations on 128 emulated devices``
        ``an emulated video server refuses frame counts its model does not take, naming the field, the form and the nearest``
        ``an emulated server's answers state the size of the file they return (a placeholder)``
    ] |> testSequenced ]
