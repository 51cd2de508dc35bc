/// `trident generate` (Trident.Api.Cli.GenerateCommand over Trident.Runtime.Execution.Generation): real image and
/// video files of the requested size in the format --out's extension names (read back with SkiaSharp and
/// ffprobe), identical bytes for identical arguments, and one error naming every bad option.
module Trident.Tests.Runtime.GenerateTests

open System.IO
open Expecto
open Trident.Tests.TestSupport
open Trident.Api.Cli
open SkiaSharp

/// Runs `trident generate` in process on the tiny pipeline at 64×64, 2 steps, 1 thread, plus the given options.
let private generateTo (name: string) (extra: string list) =
    let out = TinyFixture.tempPath name
    let args =
        [ "generate"; "--pipeline"; TinyFixture.directory.Value; "--prompt"; "a red fox in the snow"
          "--width"; "64"; "--height"; "64"; "--steps"; "2"; "--threads"; "1"; "--out"; out ] @ extra
    let code = Commands.RunAsync(Array.ofList args).GetAwaiter().GetResult()
    Expect.equal code 0 "code"
    out

let private generate = generateTo "out.png"

let private errorsOf (args: string list) =
    let e = expectThrows<CliException> "CliException is thrown" (fun () -> Commands.Parse(GenerateCommand.Command, args) |> ignore)
    List.ofSeq e.Errors

let ``generate writes a PNG, JPEG or WebP of the requested width and height`` =
    testCase "generate writes a PNG, JPEG or WebP of the requested width and height" <| fun () ->
        for name, format in [ "out.png", SKEncodedImageFormat.Png; "out.jpg", SKEncodedImageFormat.Jpeg; "out.webp", SKEncodedImageFormat.Webp ] do
            let image = MediaChecks.decodeImage (File.ReadAllBytes(generateTo name [ "--seed"; "3" ]))
            Expect.equal (image.Format, image.Width, image.Height, image.Frames) (format, 64, 64, 1) name

let ``a video is an MP4 (or WebM) with one frame per requested frame at the asked frame rate, or a PNG per frame`` =
    testCase "a video is an MP4 (or WebM) with one frame per requested frame at the asked frame rate, or a PNG per frame" <| fun () ->
        let mp4 = MediaChecks.probeVideo (File.ReadAllBytes(generateTo "clip.mp4" [ "--frames"; "5"; "--seed"; "4"; "--fps"; "12" ])) "mp4"
        Expect.equal (mp4.Codec, mp4.PixelFormat, mp4.Frames, mp4.Width, mp4.Height) ("h264", "yuv420p", 5, 64, 64) "mp4"
        Expect.floatClose Accuracy.medium mp4.FrameRate 12.0 "--fps"
        let webm = MediaChecks.probeVideo (File.ReadAllBytes(generateTo "clip.webm" [ "--frames"; "5"; "--seed"; "4"; "--compression"; "40" ])) "webm"
        Expect.equal (webm.Codec, webm.Frames) ("vp9", 5) "webm"
        let first = generate [ "--frames"; "3"; "--seed"; "4"; "--frames-as"; "png-sequence" ]
        let dir = Path.GetDirectoryName first
        let files = Directory.GetFiles(dir, "out_*.png") |> Array.sort
        Expect.equal (files |> Array.map Path.GetFileName) ([| "out_0000.png"; "out_0001.png"; "out_0002.png" |]: string[]) "files |> Array.map Path.GetFileName"
        for f in files do
            let image = MediaChecks.decodeImage (File.ReadAllBytes f)
            Expect.equal (image.Format, image.Width, image.Height) (SKEncodedImageFormat.Png, 64, 64) f

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
                  "--out"; "picture.gif"; "--colour"; "red" ]
        let options = [ "--width"; "--height"; "--frames"; "--steps"; "--guidance"; "--threads"; "--frames-as"; "--out"; "--colour" ]
        for option in options do
            Expect.equal (errors |> List.filter (fun e -> e.StartsWith(option + ":")) |> List.length) 1 "errors |> List.filter (fun e -> e.StartsWith(option + \":\")) |> List.length"
        Expect.equal errors.Length options.Length "errors.Length"
        Expect.contains errors "--width: must be a multiple of 16" "errors"
        Expect.contains errors "--height: must be between 64 and 1024" "errors"
        Expect.contains errors "--frames: must be between 1 and 9" "errors"

let ``a negative prompt no classifier-free pass reads is refused naming --negative-prompt, and read with guidance`` =
    testCase "a negative prompt no classifier-free pass reads is refused naming --negative-prompt, and read with guidance" <| fun () ->
        // before: exit 0, and the same image as without it (at --guidance 1 no unconditional pass runs)
        let errors =
            errorsOf [ "--pipeline"; TinyFixture.directory.Value; "--prompt"; "x"; "--width"; "64"; "--height"; "64"
                       "--guidance"; "1"; "--negative-prompt"; "blurry"; "--out"; TinyFixture.tempPath "negative.png" ]
        Expect.equal errors.Length 1 (sprintf "one error: %A" errors)
        Expect.stringStarts errors.Head "--negative-prompt: is not used: --guidance 1 runs no classifier-free guidance" "names the option and why"
        // at the tiny pipeline's default guidance (4) the unconditional pass reads it
        let without = File.ReadAllBytes(generate [ "--seed"; "5" ])
        let within = File.ReadAllBytes(generate [ "--seed"; "5"; "--negative-prompt"; "blurry" ])
        Expect.notEqual within without "the negative prompt changes the image"

let ``a missing pipeline and missing required options are reported together`` =
    testCase "a missing pipeline and missing required options are reported together" <| fun () ->
        let errors = errorsOf [ "--pipeline"; TinyFixture.tempPath "nowhere"; "--width"; "64" ]
        let named = errors |> List.map (fun e -> e.Substring(0, e.IndexOf ':')) |> List.sort
        // --height has a default (the pipeline's default size), which a pipeline that cannot be read has not
        Expect.equal named ([ "--out"; "--pipeline"; "--prompt" ]: string list) "named"

/// Only a prompt and a file: the bundled tiny pipeline at the size a server gives a request without one (256 × 256,
/// the built-in default the tiny pipeline serves as it is). Before: --pipeline, --width and --height were required.
let ``generate with only --prompt and --out runs the bundled pipeline at the default size`` =
    testCase "generate with only --prompt and --out runs the bundled pipeline at the default size" <| fun () ->
        let out = TinyFixture.tempPath "defaults.png"
        let code = Commands.RunAsync([| "generate"; "--prompt"; "a red fox"; "--steps"; "1"; "--threads"; "1"; "--out"; out |]).GetAwaiter().GetResult()
        Expect.equal code 0 "exit code"
        let image = MediaChecks.decodeImage (File.ReadAllBytes out)
        Expect.equal (image.Width, image.Height) (256, 256) "the default size"
        // one side given: the other keeps its default
        let parsed = GenerateCommand.Parse(Commands.Parse(GenerateCommand.Command, [ "--prompt"; "x"; "--width"; "128"; "--out"; out ]))
        Expect.equal (parsed.Request.Width, parsed.Request.Height) (128, 256) "--width given, --height defaulted"

/// The bundled pipeline by default (--pipeline left out, as the README's examples leave it) gets every check an explicit
/// --pipeline tiny gets. Before: the checks against the manifest and the output format were skipped and the run
/// threw (ManifestException, ArgumentException: exit 134 with a stack trace) or wrote a PNG ignoring --compression.
let ``without --pipeline the bundled pipeline's checks apply, as with --pipeline tiny`` =
    testCase "without --pipeline the bundled pipeline's checks apply, as with --pipeline tiny" <| fun () ->
        let out = TinyFixture.tempPath "default.png"
        for extra, expected in
            [ [ "--width"; "100"; "--height"; "4096"; "--steps"; "1" ], [ "--width: must be a multiple of 16"; "--height: must be between 64 and 1024" ]
              [ "--scheduler"; "foo" ], [ "--scheduler: 'foo' is not one of" ]
              [ "--guidance"; "1"; "--negative-prompt"; "x" ], [ "--negative-prompt: is not used" ]
              [ "--frames"; "9" ], [ "--out: 'png' holds one image" ]
              [ "--compression"; "50" ], [ "--compression: applies to" ] ] do
            let args = [ "--prompt"; "a fox"; "--out"; out ] @ extra
            let errors = errorsOf args
            Expect.equal errors.Length expected.Length (sprintf "%A: one problem per bad option: %A" extra errors)
            for e in expected do
                Expect.isTrue (errors |> List.exists (fun x -> x.StartsWith e)) (sprintf "%A: %s… among %A" extra e errors)
            Expect.equal errors (errorsOf ([ "--pipeline"; "tiny" ] @ args)) (sprintf "%A: as with --pipeline tiny" extra)
            let code, _, err = runCli ([ "generate" ] @ args)
            Expect.equal code 2 (sprintf "%A: exit code (%s)" extra err)
            Expect.isFalse (err.Contains "   at ") (sprintf "%A: no stack trace" extra)
        Expect.isFalse (File.Exists out) "nothing written"

/// Before: a blank --prompt ran (the HTTP API refuses it: 'prompt: is required and must not be blank').
let ``a blank prompt is refused as the HTTP API refuses it`` =
    testCase "a blank prompt is refused as the HTTP API refuses it" <| fun () ->
        for prompt in [ ""; "   " ] do
            let errors = errorsOf [ "--pipeline"; TinyFixture.directory.Value; "--prompt"; prompt; "--width"; "100"; "--out"; TinyFixture.tempPath "blank.png" ]
            Expect.equal errors [ "--prompt: is required and must not be blank"; "--width: must be a multiple of 16" ] (sprintf "%A: with the other bad options" prompt)

[<Tests>]
let tests =
    testList "integration" [ testList "GenerateTests" [
        ``generate writes a PNG, JPEG or WebP of the requested width and height``
        ``a video is an MP4 (or WebM) with one frame per requested frame at the asked frame rate, or a PNG per frame``
        ``identical arguments give identical bytes and another seed different bytes``
        ``bad generate arguments give one error listing every bad option``
        ``a negative prompt no classifier-free pass reads is refused naming --negative-prompt, and read with guidance``
        ``a missing pipeline and missing required options are reported together``
        ``generate with only --prompt and --out runs the bundled pipeline at the default size``
        ``without --pipeline the bundled pipeline's checks apply, as with --pipeline tiny``
        ``a blank prompt is refused as the HTTP API refuses it``
    ] |> testSequenced ]
