/// `trident generate` (Trident.Api.Cli.GenerateCommand over Trident.Runtime.Execution.Generation): real PNG and
/// APNG files of the requested size, identical bytes for identical arguments, and one error naming every bad
/// option.
[<Xunit.Collection(Trident.Tests.Runtime.TinyFixture.Collection)>]
module Trident.Tests.Runtime.GenerateTests

open System.IO
open Xunit
open Trident.Api.Cli
open Trident.Runtime.Imaging

/// Runs `trident generate` in process on the tiny pipeline at 64×64, 2 steps, 1 thread, plus the given options.
let private generate (extra: string list) =
    let out = TinyFixture.tempPath "out.png"
    let args =
        [ "generate"; "--pipeline"; TinyFixture.directory.Value; "--prompt"; "a red fox in the snow"
          "--width"; "64"; "--height"; "64"; "--steps"; "2"; "--threads"; "1"; "--out"; out ] @ extra
    let code = Commands.RunAsync(Array.ofList args).GetAwaiter().GetResult()
    Assert.Equal(0, code)
    out

let private errorsOf (args: string list) =
    let e = Assert.Throws<CliException>(fun () -> GenerateCommand.Parse(CliArgs args) |> ignore)
    List.ofSeq e.Errors

[<Fact>]
let ``generate writes a PNG of the requested width and height`` () =
    let out = generate [ "--seed"; "3" ]
    let png = PngDecoder.Decode(File.ReadAllBytes out)
    Assert.Equal((64, 64, 3), (png.Width, png.Height, png.Channels))
    Assert.DoesNotContain("acTL", PngDecoder.ReadChunks(File.ReadAllBytes out) |> Seq.map (fun c -> c.Type))

[<Fact>]
let ``a video is an animated PNG with one frame per requested frame, or a PNG per frame`` () =
    let apng = File.ReadAllBytes(generate [ "--frames"; "3"; "--seed"; "4" ])
    let frames = PngDecoder.DecodeFrames apng
    Assert.Equal(3, frames.Count)
    for f in frames do
        Assert.Equal((64, 64), (f.Image.Width, f.Image.Height))
    let first = generate [ "--frames"; "3"; "--seed"; "4"; "--frames-as"; "png-sequence" ]
    let dir = Path.GetDirectoryName first
    let files = Directory.GetFiles(dir, "out_*.png") |> Array.sort
    Assert.Equal<string[]>([| "out_0000.png"; "out_0001.png"; "out_0002.png" |], files |> Array.map Path.GetFileName)
    // The sequence holds the same frames as the animation.
    for i in 0 .. 2 do
        Assert.Equal<byte[]>(frames[i].Image.Pixels, (PngDecoder.Decode(File.ReadAllBytes files[i])).Pixels)

[<Fact>]
let ``identical arguments give identical bytes and another seed different bytes`` () =
    let a = File.ReadAllBytes(generate [ "--seed"; "11" ])
    let b = File.ReadAllBytes(generate [ "--seed"; "11" ])
    let c = File.ReadAllBytes(generate [ "--seed"; "12" ])
    Assert.Equal<byte[]>(a, b)
    Assert.NotEqual<byte[]>(a, c)

[<Fact>]
let ``bad generate arguments give one error listing every bad option`` () =
    let errors =
        errorsOf
            [ "--pipeline"; TinyFixture.directory.Value; "--prompt"; "x"; "--width"; "100"; "--height"; "1024"
              "--frames"; "12"; "--steps"; "0"; "--guidance"; "-1"; "--threads"; "0"; "--frames-as"; "gif"
              "--out"; "picture.jpg"; "--colour"; "red" ]
    let options = [ "--width"; "--height"; "--frames"; "--steps"; "--guidance"; "--threads"; "--frames-as"; "--out"; "--colour" ]
    for option in options do
        Assert.Equal(1, errors |> List.filter (fun e -> e.StartsWith(option + ":")) |> List.length)
    Assert.Equal(options.Length, errors.Length)
    Assert.Contains("--width: must be a multiple of 16", errors)
    Assert.Contains("--height: must be between 64 and 512", errors)
    Assert.Contains("--frames: must be between 1 and 9", errors)

[<Fact>]
let ``a missing pipeline and missing required options are reported together`` () =
    let errors = errorsOf [ "--pipeline"; TinyFixture.tempPath "nowhere"; "--width"; "64" ]
    let named = errors |> List.map (fun e -> e.Substring(0, e.IndexOf ':')) |> List.sort
    Assert.Equal<string list>([ "--height"; "--out"; "--pipeline"; "--prompt" ], named)
