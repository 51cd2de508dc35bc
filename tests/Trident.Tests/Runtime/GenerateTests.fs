/// `trident generate` (Trident.Api.Cli.GenerateCommand over Trident.Runtime.Execution.Generation): real PNG and
/// APNG files of the requested size, identical bytes for identical arguments, and one error naming every bad
/// option.
module Trident.Tests.Runtime.GenerateTests

open System.IO
open Expecto
open Trident.Tests.TestSupport
open Trident.Api.Cli
open Trident.Runtime.Imaging

/// Runs `trident generate` in process on the tiny pipeline at 64×64, 2 steps, 1 thread, plus the given options.
let private generate (extra: string list) =
    let out = TinyFixture.tempPath "out.png"
    let args =
        [ "generate"; "--pipeline"; TinyFixture.directory.Value; "--prompt"; "a red fox in the snow"
          "--width"; "64"; "--height"; "64"; "--steps"; "2"; "--threads"; "1"; "--out"; out ] @ extra
    let code = Commands.RunAsync(Array.ofList args).GetAwaiter().GetResult()
    Expect.equal code 0 "code"
    out

let private errorsOf (args: string list) =
    let e = expectThrows<CliException> "CliException is thrown" (fun () -> GenerateCommand.Parse(CliArgs args) |> ignore)
    List.ofSeq e.Errors

let ``generate writes a PNG of the requested width and height`` =
    testCase "generate writes a PNG of the requested width and height" <| fun () ->
        let out = generate [ "--seed"; "3" ]
        let png = PngDecoder.Decode(File.ReadAllBytes out)
        Expect.equal ((png.Width, png.Height, png.Channels)) ((64, 64, 3)) "(png.Width, png.Height, png.Channels)"
        Expect.isFalse (Seq.contains "acTL" (PngDecoder.ReadChunks(File.ReadAllBytes out) |> Seq.map (fun c -> c.Type))) "does not contain \"acTL\""

let ``a video is an animated PNG with one frame per requested frame, or a PNG per frame`` =
    testCase "a video is an animated PNG with one frame per requested frame, or a PNG per frame" <| fun () ->
        let apng = File.ReadAllBytes(generate [ "--frames"; "3"; "--seed"; "4" ])
        let frames = PngDecoder.DecodeFrames apng
        Expect.equal frames.Count 3 "frames.Count"
        for f in frames do
            Expect.equal ((f.Image.Width, f.Image.Height)) ((64, 64)) "(f.Image.Width, f.Image.Height)"
        let first = generate [ "--frames"; "3"; "--seed"; "4"; "--frames-as"; "png-sequence" ]
        let dir = Path.GetDirectoryName first
        let files = Directory.GetFiles(dir, "out_*.png") |> Array.sort
        Expect.equal (files |> Array.map Path.GetFileName) ([| "out_0000.png"; "out_0001.png"; "out_0002.png" |]: string[]) "files |> Array.map Path.GetFileName"
        // The sequence holds the same frames as the animation.
        for i in 0 .. 2 do
            Expect.equal ((PngDecoder.Decode(File.ReadAllBytes files[i])).Pixels) (frames[i].Image.Pixels: byte[]) "(PngDecoder.Decode(File.ReadAllBytes files[i])).Pixels"

let ``identical arguments give identical bytes and another seed different bytes`` =
    testCase "identical arguments give identical bytes and another seed different bytes" <| fun () ->
        let a = File.ReadAllBytes(generate [ "--seed"; "11" ])
        let b = File.ReadAllBytes(generate [ "--seed"; "11" ])
        let c = File.ReadAllBytes(generate [ "--seed"; "12" ])
        Expect.equal b (a: byte[]) "b"
        Expect.notEqual c (a: byte[]) "c"

let ``bad generate arguments give one error listing every bad option`` =
    testCase "bad generate arguments give one error listing every bad option" <| fun () ->
        let errors =
            errorsOf
                [ "--pipeline"; TinyFixture.directory.Value; "--prompt"; "x"; "--width"; "100"; "--height"; "2048"
                  "--frames"; "12"; "--steps"; "0"; "--guidance"; "-1"; "--threads"; "0"; "--frames-as"; "gif"
                  "--out"; "picture.jpg"; "--colour"; "red" ]
        let options = [ "--width"; "--height"; "--frames"; "--steps"; "--guidance"; "--threads"; "--frames-as"; "--out"; "--colour" ]
        for option in options do
            Expect.equal (errors |> List.filter (fun e -> e.StartsWith(option + ":")) |> List.length) 1 "errors |> List.filter (fun e -> e.StartsWith(option + \":\")) |> List.length"
        Expect.equal errors.Length options.Length "errors.Length"
        Expect.contains errors "--width: must be a multiple of 16" "errors"
        Expect.contains errors "--height: must be between 64 and 1024" "errors"
        Expect.contains errors "--frames: must be between 1 and 9" "errors"

let ``a missing pipeline and missing required options are reported together`` =
    testCase "a missing pipeline and missing required options are reported together" <| fun () ->
        let errors = errorsOf [ "--pipeline"; TinyFixture.tempPath "nowhere"; "--width"; "64" ]
        let named = errors |> List.map (fun e -> e.Substring(0, e.IndexOf ':')) |> List.sort
        Expect.equal named ([ "--height"; "--out"; "--pipeline"; "--prompt" ]: string list) "named"

[<Tests>]
let tests =
    testList "integration" [ testList "GenerateTests" [
        ``generate writes a PNG of the requested width and height``
        ``a video is an animated PNG with one frame per requested frame, or a PNG per frame``
        ``identical arguments give identical bytes and another seed different bytes``
        ``bad generate arguments give one error listing every bad option``
        ``a missing pipeline and missing required options are reported together``
    ] |> testSequenced ]
