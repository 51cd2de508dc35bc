/// The profiler (Trident.Runtime.Profiling): a measured profile of the tiny pipeline that the scheduling
/// core's parser accepts, with a point for every requested shape and degree.
module Trident.Tests.Runtime.ProfilerTests

open System
open Expecto
open Trident.Tests.TestSupport
open Trident.Runtime.Profiling
open Trident.Scheduling

let ``the profiler's output parses with ProfileFile.parse and has a point for every shape and degree`` =
    testCase "the profiler's output parses with ProfileFile.parse and has a point for every shape and degree" <| fun () ->
        let shapes = [ { Height = 64; Width = 64; Frames = 1 }; { Height = 64; Width = 128; Frames = 2 } ]
        let options = ProfilerOptions(Shapes = shapes, Degrees = [| 1; 2 |], Steps = 1, Repeats = 1)
        let profile = Profiler.ProfileAsync(TinyFixture.pipeline.Value, options).GetAwaiter().GetResult()
        let parsed =
            match ProfileFile.parse (ProfileFile.serialize profile) with
            | Ok p -> p
            | Error errors -> failwithf "the profile does not parse: %A" errors
        Expect.equal parsed profile "parsed"
        Expect.equal parsed.Model (ModelName "tiny") "parsed.Model"
        Expect.isTrue parsed.Video "parsed.Video"
        Expect.equal parsed.DefaultSteps 8 "parsed.DefaultSteps"
        let keys (s: StageProfile) = s.Points |> List.map (fun p -> p.Shape, p.Degree) |> List.sort
        Expect.equal (keys parsed.Encode) (shapes |> List.map (fun s -> s, 1) |> List.sort: (Shape * int) list) "keys parsed.Encode"
        Expect.equal (keys parsed.Diffuse) ([ for s in shapes do for k in [ 1; 2 ] -> s, k ] |> List.sort: (Shape * int) list) "keys parsed.Diffuse"
        Expect.equal (keys parsed.Decode) (shapes |> List.map (fun s -> s, 1) |> List.sort: (Shape * int) list) "keys parsed.Decode"
        for stage in [ parsed.Encode; parsed.Diffuse; parsed.Decode ] do
            Expect.isFalse stage.Estimated "stage.Estimated"
            Expect.isTrue (stage.Weights > 0.0<GB>) "stage.Weights > 0.0<GB>"
            for p in stage.Points do
                Expect.isTrue (p.Seconds > 0.0<s>) "p.Seconds > 0.0<s>"
                Expect.isTrue (p.PeakActivation >= 0.0<GB>) "p.PeakActivation >= 0.0<GB>"
        Expect.isTrue (parsed.Diffuse.Weights > parsed.Encode.Weights) "parsed.Diffuse.Weights > parsed.Encode.Weights"
        Expect.equal (float parsed.EmbeddingBytes) (2.0 * 77.0 * 256.0 * 4.0) "float parsed.EmbeddingBytes" // guided: conditional + unconditional rows
        Expect.equal (float parsed.LatentBytesPerMpf) (16.0 / 64.0 * 4.0 * 1e6) "float parsed.LatentBytesPerMpf"
        Expect.stringContains parsed.Source "measured by" "parsed.Source"
        Expect.isTrue (float parsed.DeviceMemory > 0.0) "float parsed.DeviceMemory > 0.0"

let ``profiler options that do not fit the pipeline are all reported`` =
    testCase "profiler options that do not fit the pipeline are all reported" <| fun () ->
        let options =
            ProfilerOptions(Shapes = [ { Height = 100; Width = 64; Frames = 1 }; { Height = 64; Width = 64; Frames = 40 } ], Degrees = [| 0 |], Steps = 0, Repeats = 0)
        let errors = Profiler.Validate(TinyFixture.pipeline.Value.Manifest, options) |> Seq.map (fun e -> e.Path) |> Seq.distinct |> Seq.sort |> List.ofSeq
        Expect.equal errors ([ "degrees"; "frames"; "repeats"; "shapes"; "steps" ]: string list) "errors"

let ``extent shapes are measured by one timed run each, at every degree, without batch points`` =
    testCase "extent shapes are measured by one timed run each, at every degree, without batch points" <| fun () ->
        let main = { Height = 64; Width = 64; Frames = 1 }
        let extent = { Height = 128; Width = 128; Frames = 1 }
        let reported = Collections.Concurrent.ConcurrentQueue<MeasuredPoint>()
        let progress = { new IProgress<MeasuredPoint> with member _.Report m = reported.Enqueue m }
        let options = ProfilerOptions(Shapes = [ main ], Extent = [ extent ], Degrees = [| 1; 2 |], Steps = 1, Repeats = 1, Batches = [| 1; 2 |], Progress = progress)
        let profile = Profiler.ProfileAsync(TinyFixture.pipeline.Value, options).GetAwaiter().GetResult()
        let batches = reported |> Seq.filter (fun m -> m.Batch > 1) |> Seq.map (fun m -> string m.Stage, m.Point.Shape, m.Point.Degree, m.Batch) |> Seq.sort |> List.ofSeq
        Expect.equal batches (List.sort [ "Encode", main, 1, 2; "Diffuse", main, 1, 2; "Diffuse", main, 2, 2; "Decode", main, 1, 2 ]) "each batch point above 1 is reported as it is measured"
        Expect.equal (reported |> Seq.filter (fun m -> m.Batch = 1) |> Seq.length) 8 "and each point once (4 per shape: encode, two degrees, decode)"
        for stage, degrees in [ profile.Encode, [ 1 ]; profile.Diffuse, [ 1; 2 ]; profile.Decode, [ 1 ] ] do
            let keys = stage.Points |> List.map (fun p -> p.Shape, p.Degree) |> List.sort
            Expect.equal keys ([ for s in [ main; extent ] do for k in degrees -> s, k ] |> List.sort) "a point for the main and the extent shape"
            Expect.isTrue (stage.Batches |> List.forall (fun b -> b.Shape = main)) "batch points for the main shape only"
        Expect.stringContains profile.Source "measured by one timed run each after a warm-up" "the source says how the extent was measured"
        let overlapping = ProfilerOptions(Shapes = [ main ], Extent = [ main; { Height = 100; Width = 64; Frames = 1 } ])
        let errors = Profiler.Validate(TinyFixture.pipeline.Value.Manifest, overlapping) |> Seq.map (fun e -> e.Path) |> Seq.distinct |> Seq.sort |> List.ofSeq
        Expect.equal errors [ "extent" ] "an extent shape listed among the shapes, and one the pipeline does not serve, are refused"

let ``the start-up profile measures every size the server accepts, the larger ones once`` =
    testCase "the start-up profile measures every size the server accepts, the larger ones once" <| fun () ->
        let manifest = Trident.Runtime.Pipelines.Tiny.TinyPipeline.Manifest()
        let layout = Trident.Runtime.Devices.DeviceLayout.Cpu(2, 1, 2, 8.0)
        let quick (configure: Trident.Api.Options.TridentOptions -> unit) =
            let o = Trident.Api.Options.TridentOptions()
            configure o
            let q = Trident.Api.Hosting.OnnxServingBackend.QuickOptions(o, layout, manifest)
            [ for s in q.Shapes -> s.Height, s.Width ], [ for s in q.Extent -> s.Height, s.Width ]
        let shapes, extent = quick ignore
        Expect.equal shapes [ 64, 64; 128, 128; 256, 256 ] "in full: up to the default size (256²)"
        Expect.equal extent [ 512, 512; 1024, 1024 ] "once each: up to the limits' largest size (1024²)"
        Expect.equal (quick (fun o -> o.Limits.MaxWidth <- 256; o.Limits.MaxHeight <- 256) |> snd) [] "nothing above the default when the limits stop there"
        Expect.equal (quick (fun o -> o.Limits.MaxHeight <- 512) |> snd) [ 512, 512; 512, 1024 ] "a rectangle: its largest width × height"

let ``the start-up profile cache is kept per size: a start measures only the sizes the cache lacks`` =
    testCase "the start-up profile cache is kept per size: a start measures only the sizes the cache lacks" <| fun () ->
        let cache = TinyFixture.tempPath "profiles"
        let prepare (maxSide: int) (threads: int) =
            let o = Trident.Api.Options.TridentOptions(Pipeline = TinyFixture.directory.Value, ProfileCache = cache)
            o.Limits.DefaultWidth <- 64
            o.Limits.DefaultHeight <- 64
            o.Limits.MaxWidth <- maxSide
            o.Limits.MaxHeight <- maxSide
            let layout = Trident.Runtime.Devices.DeviceLayout.Cpu(1, threads, 1, 8.0)
            let parts =
                Trident.Api.Hosting.OnnxServingBackend()
                    .PrepareAsync(o, layout, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, Threading.CancellationToken.None)
                    .GetAwaiter().GetResult()
            parts.Profile, parts.ProfileOrigin
        let at (side: int) (p: Profile) = [ p.Encode; p.Diffuse; p.Decode ] |> List.collect (fun s -> s.Points |> List.filter (fun x -> x.Shape.Width = side))
        let sizes (p: Profile) = p.Diffuse.Points |> List.map (fun x -> x.Shape.Width) |> List.distinct |> List.sort
        let first, origin1 = prepare 64 1
        // a larger limit adds one size measured once: 64² comes from the cache, its points as they were
        let second, origin2 = prepare 128 1
        Expect.equal (at 64 second) (at 64 first) "64²'s points reused, not measured again"
        Expect.stringContains origin1 "(measured at start: 64x64)" "the first start measures its one size"
        Expect.equal (sizes first) [ 64 ] "64² only"
        Expect.stringContains origin2 "(measured at start: 128x128; from the cache: 64x64)" (sprintf "only the new size is measured: %s" origin2)
        Expect.equal (sizes second) [ 64; 128 ] "both sizes served"
        Expect.isTrue (second.Diffuse.Batches |> List.forall (fun b -> b.Shape.Width = 64)) "64²'s batch points kept; none for the size measured once"
        Expect.stringContains second.Source "from the start-up profile cache" "the source says what was reused"
        // back to the first limit: nothing to measure, and only the sizes asked for are served
        let third, origin3 = prepare 64 1
        Expect.isFalse (origin3.Contains "measured at start") (sprintf "nothing measured: %s" origin3)
        Expect.equal (sizes third) [ 64 ] "the larger size is kept in the cache but not served"
        Expect.equal (at 64 third) (at 64 first) "the same points"
        // another thread budget (another provider configuration) reuses nothing
        let _, origin4 = prepare 64 2
        Expect.stringContains origin4 "(measured at start: 64x64)" (sprintf "another provider measures again: %s" origin4)

/// The cache key names the hardware: a profile measured on one GPU or CPU model is never reused on another
/// (same pipeline, cores, provider and options); the CPU model is read from /proc/cpuinfo's "model name".
let ``the start-up profile cache key changes with the devices' model names`` =
    testCase "the start-up profile cache key changes with the devices' model names" <| fun () ->
        let layout = Trident.Runtime.Devices.DeviceLayout.Cpu(1, 1, 1, 8.0)
        let o = Trident.Api.Options.TridentOptions(Pipeline = TinyFixture.directory.Value)
        let quick = Trident.Api.Hosting.OnnxServingBackend.QuickOptions(o, layout, TinyFixture.pipeline.Value.Manifest)
        let key (names: string list) = Trident.Api.Hosting.OnnxServingBackend.CacheKey(TinyFixture.pipeline.Value, layout, quick, names)
        Expect.equal (key [ "NVIDIA H200" ]) (key [ "NVIDIA H200" ]) "the same hardware, the same key"
        Expect.notEqual (key [ "NVIDIA H200" ]) (key [ "NVIDIA A100-SXM4-80GB" ]) "another GPU model, another key"
        Expect.notEqual (key [ "NVIDIA H200" ]) (key [ Trident.Runtime.Devices.DeviceIdentity.Unknown ]) "an unreadable name is not a known one"
        let cpuinfo = [ "processor\t: 0"; "vendor_id\t: AuthenticAMD"; "model name\t: AMD EPYC 7763 64-Core Processor"; "model name\t: other" ]
        Expect.equal (Trident.Runtime.Devices.DeviceIdentity.CpuModel cpuinfo) "AMD EPYC 7763 64-Core Processor" "the first model name"
        Expect.equal (Trident.Runtime.Devices.DeviceIdentity.CpuModel [ "processor\t: 0"; "BogoMIPS\t: 50.00" ]) Trident.Runtime.Devices.DeviceIdentity.Unknown "none named"
        Expect.equal (Trident.Runtime.Devices.DeviceIdentity.Of layout.Devices.[0]) (Trident.Runtime.Devices.DeviceIdentity.CpuModel(IO.File.ReadAllLines "/proc/cpuinfo")) "a CPU slot is this machine's CPU model"

/// Before: a value the parser refuses (--steps 0) was reported alone, and the shapes, the pipeline and --out were
/// checked only once it was fixed; the README promises one error naming every bad option.
let ``profile reports bad values, bad shapes and an unwritable --out in one error`` =
    testCase "profile reports bad values, bad shapes and an unwritable --out in one error" <| fun () ->
        let code, out, err = runCli [ "profile"; "--pipeline"; "tiny"; "--shapes"; "100x64,abc"; "--steps"; "0"; "--batches"; "2,x"; "--out"; "/proc/nope/p.json" ]
        Expect.equal code 2 (sprintf "exit code (%s)" err)
        Expect.equal out "" "nothing ran"
        let lines = err.Split('\n') |> Array.map _.Trim() |> Array.filter ((<>) "") |> List.ofArray
        Expect.equal (lines |> List.filter (fun l -> l.EndsWith "invalid arguments") |> List.length) 1 "one error"
        for expected in [ "--steps: 0 is outside [1, 10000]"; "--batches: 'x' is not an integer ≥ 1"; "--shapes: 'abc' is not HEIGHTxWIDTH (e.g. 256x256)"
                          "--shapes: 100x64: height: must be a multiple of 16"; "--out: cannot write '/proc/nope/p.json'" ] do
            Expect.isTrue (lines |> List.exists (fun l -> l.StartsWith expected)) (sprintf "%s… among %A" expected lines)
        // a value that did not parse is not reported again by the profiler's own check (--batches needs 1 among them)
        Expect.isFalse (err.Contains "--batches: needs distinct") "the bad --batches named once"

[<Tests>]
let tests =
    testList "integration" [ testList "ProfilerTests" [
        ``the profiler's output parses with ProfileFile.parse and has a point for every shape and degree``
        ``profiler options that do not fit the pipeline are all reported``
        ``profile reports bad values, bad shapes and an unwritable --out in one error``
        ``extent shapes are measured by one timed run each, at every degree, without batch points``
        ``the start-up profile measures every size the server accepts, the larger ones once``
        ``the start-up profile cache is kept per size: a start measures only the sizes the cache lacks``
        ``the start-up profile cache key changes with the devices' model names``
    ] |> testSequenced ]
