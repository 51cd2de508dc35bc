/// The profiler (Trident.Runtime.Profiling): a measured profile of the tiny pipeline that the scheduling
/// core's parser accepts, with a point for every requested shape and degree.
[<Xunit.Collection(Trident.Tests.Runtime.TinyFixture.Collection)>]
module Trident.Tests.Runtime.ProfilerTests

open System
open Xunit
open Trident.Runtime.Profiling
open Trident.Scheduling

[<Fact>]
let ``the profiler's output parses with ProfileFile.parse and has a point for every shape and degree`` () =
    let shapes = [ { Height = 64; Width = 64; Frames = 1 }; { Height = 64; Width = 128; Frames = 2 } ]
    let options = ProfilerOptions(Shapes = shapes, Degrees = [| 1; 2 |], Steps = 1, Repeats = 1)
    let profile = Profiler.ProfileAsync(TinyFixture.pipeline.Value, options).GetAwaiter().GetResult()
    let parsed =
        match ProfileFile.parse (ProfileFile.serialize profile) with
        | Ok p -> p
        | Error errors -> failwithf "the profile does not parse: %A" errors
    Assert.Equal(profile, parsed)
    Assert.Equal(ModelName "tiny", parsed.Model)
    Assert.True(parsed.Video)
    Assert.Equal(8, parsed.DefaultSteps)
    let keys (s: StageProfile) = s.Points |> List.map (fun p -> p.Shape, p.Degree) |> List.sort
    Assert.Equal<(Shape * int) list>(shapes |> List.map (fun s -> s, 1) |> List.sort, keys parsed.Encode)
    Assert.Equal<(Shape * int) list>([ for s in shapes do for k in [ 1; 2 ] -> s, k ] |> List.sort, keys parsed.Diffuse)
    Assert.Equal<(Shape * int) list>(shapes |> List.map (fun s -> s, 1) |> List.sort, keys parsed.Decode)
    for stage in [ parsed.Encode; parsed.Diffuse; parsed.Decode ] do
        Assert.False(stage.Estimated)
        Assert.True(stage.Weights > 0.0<GB>)
        for p in stage.Points do
            Assert.True(p.Seconds > 0.0<s>)
            Assert.True(p.PeakActivation >= 0.0<GB>)
    Assert.True(parsed.Diffuse.Weights > parsed.Encode.Weights)
    Assert.Equal(2.0 * 77.0 * 256.0 * 4.0, float parsed.EmbeddingBytes) // guided: conditional + unconditional rows
    Assert.Equal(16.0 / 64.0 * 4.0 * 1e6, float parsed.LatentBytesPerMpf)
    Assert.Contains("measured by", parsed.Source)
    Assert.True(float parsed.DeviceMemory > 0.0)

[<Fact>]
let ``profiler options that do not fit the pipeline are all reported`` () =
    let options =
        ProfilerOptions(Shapes = [ { Height = 100; Width = 64; Frames = 1 }; { Height = 64; Width = 64; Frames = 40 } ], Degrees = [| 0 |], Steps = 0, Repeats = 0)
    let errors = Profiler.Validate(TinyFixture.pipeline.Value.Manifest, options) |> Seq.map (fun e -> e.Path) |> Seq.distinct |> Seq.sort |> List.ofSeq
    Assert.Equal<string list>([ "degrees"; "frames"; "repeats"; "shapes"; "steps" ], errors)
