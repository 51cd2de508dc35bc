module Trident.Tests.Runtime.ManifestTests

open System
open System.IO
open System.Text
open System.Text.RegularExpressions
open FsCheck.FSharp
open Expecto
open Trident.Tests.TestSupport
open Trident.Runtime.Pipelines
open Trident.Tests.Runtime.RuntimeGenerators

let private touchFiles (dir: TempDirectory) (m: PipelineManifest) =
    for f in namedFiles m do dir.Write(f, "x") |> ignore

let private errorsOf (json: string) (dir: string) =
    let e = expectThrows<ManifestException> "ManifestException is thrown" (fun () -> PipelineManifest.Parse(Encoding.UTF8.GetBytes json, dir) |> ignore)
    e.Errors |> Seq.map string |> List.ofSeq

/// A valid image manifest in the Optimum layout, used as the base of the hand-written cases.
let private sd3Json =
    """{
  "format_version": 1,
  "name": "sd3-medium",
  "model": "sd3",
  "kind": "image",
  "stages": {
    "text_encoder": { "file": "text_encoder/model.onnx",
                      "inputs": { "input_ids": "input_ids" }, "outputs": { "last_hidden_state": "last_hidden_state" } },
    "transformer": { "file": "transformer/model.onnx",
                     "inputs": { "latents": "hidden_states", "timestep": "timestep", "encoder_hidden_states": "encoder_hidden_states" },
                     "outputs": { "prediction": "out_sample" } },
    "vae_decoder": { "file": "vae_decoder/model.onnx",
                     "inputs": { "latents": "latent_sample" }, "outputs": { "image": "sample" } }
  },
  "tokenizer": { "type": "clip-bpe", "max_length": 77, "vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt" },
  "latents": { "channels": 16, "spatial_scale_factor": 8, "scaling_factor": 1.5305, "shift_factor": 0.0609 },
  "sampler": { "type": "flow-euler", "default_steps": 28, "shift": 3.0 },
  "guidance": { "classifier_free": true, "default_scale": 7.0 },
  "size": { "multiple_of": 16, "min_width": 256, "max_width": 1536, "min_height": 256, "max_height": 1536 }
}"""

let private sd3Files =
    [ "text_encoder/model.onnx"; "transformer/model.onnx"; "vae_decoder/model.onnx"; "tokenizer/vocab.json"; "tokenizer/merges.txt" ]

let ``a saved manifest loads back equal to the original`` =
    testProp 100 "a saved manifest loads back equal to the original" <| fun () ->
        (Prop.forAll (Arb.fromGen manifest) (fun m ->
            use dir = new TempDirectory()
            touchFiles dir m
            m.Save dir.Path
            let loaded = PipelineManifest.Load dir.Path
            let resaved = loaded.ToJson()
            (loaded = m |> Prop.label "loaded = saved")
            .&. (resaved = File.ReadAllBytes(Path.Combine(dir.Path, PipelineManifest.FileName)) |> Prop.label "saving again writes the same bytes")))

let ``generated manifests are valid and name only relative files`` =
    testProp 200 "generated manifests are valid and name only relative files" <| fun () ->
        (Prop.forAll (Arb.fromGen manifest) (fun m ->
            m.Validate() |> Seq.isEmpty |> Prop.label (String.Join("; ", m.Validate()))))

let ``a hand-written manifest in the Optimum layout loads with its defaults filled in`` =
    testCase "a hand-written manifest in the Optimum layout loads with its defaults filled in" <| fun () ->
        use dir = new TempDirectory()
        for f in sd3Files do dir.Write(f, "x") |> ignore
        dir.Write(PipelineManifest.FileName, sd3Json) |> ignore
        let m = PipelineManifest.Load dir.Path
        Expect.equal m.Stages.Denoiser.Architecture DenoiserArchitecture.Transformer "m.Stages.Denoiser.Architecture"
        Expect.equal m.Stages.Denoiser.Latents "hidden_states" "m.Stages.Denoiser.Latents"
        Expect.isNull m.Stages.TextEncoder.AttentionMask "m.Stages.TextEncoder.AttentionMask"
        Expect.equal m.Tokenizer (ClipBpeTokenizerSettings(77, "tokenizer/vocab.json", "tokenizer/merges.txt", "<|endoftext|>") :> TokenizerSettings) "m.Tokenizer"
        Expect.equal m.Latents (LatentSettings(16, 8, 1, 1.5305, 0.0609)) "m.Latents"
        Expect.equal m.Sampler (FlowEulerSettings(1000, 28, 3.0) :> SamplerSettings) "m.Sampler"
        Expect.equal m.Size (SizeConstraint(16, 256, 1536, 256, 1536, 1, 1)) "m.Size"
        Expect.sequenceEqual (m.LatentShape(2, 1024, 512, 1)) ([| 2L; 16L; 64L; 128L |]) "m.LatentShape(2, 1024, 512, 1)"

let ``a manifest with several problems reports all of them at once`` =
    testCase "a manifest with several problems reports all of them at once" <| fun () ->
        use dir = new TempDirectory()
        // The transformer file is deliberately not created.
        for f in sd3Files |> List.filter ((<>) "transformer/model.onnx") do dir.Write(f, "x") |> ignore
        let json =
            sd3Json
                .Replace("\"model\": \"sd3\",", "")
                .Replace("\"kind\": \"image\"", "\"kind\": \"movie\"")
                .Replace("\"channels\": 16", "\"channels\": 0")
                .Replace("\"shift\": 3.0", "\"shift\": -1, \"beta_start\": 0.001")
                .Replace("\"max_length\": 77", "\"max_length\": \"77\"")
                .Replace("\"max_width\": 1536", "\"max_width\": 128, \"colour\": \"blue\"")
                .Replace("\"default_scale\": 7.0", "\"default_scale\": 7.0, \"default_scale\": 8.0")
        let errors = errorsOf json dir.Path
        let expected =
            [ "model: required"
              "kind: 'movie' is not one of 'image', 'video'"
              "tokenizer.max_length: must be an integer"
              "latents.channels: must be between 1 and 4096"
              "sampler.shift: must be a positive number"
              "sampler.beta_start: not a parameter of the 'flow-euler' sampler"
              "guidance.default_scale: duplicate property"
              "size.max_width: must not be below 'min_width'"
              "size.colour: unknown property"
              "stages.transformer.file: file 'transformer/model.onnx' does not exist" ]
        Expect.equal (List.sort errors) (List.sort expected: string list) "List.sort errors"

let ``the exception message lists every problem with its path`` =
    testCase "the exception message lists every problem with its path" <| fun () ->
        use dir = new TempDirectory()
        let e =
            expectThrows<ManifestException> "ManifestException is thrown" (fun () ->
                PipelineManifest.Parse(Encoding.UTF8.GetBytes(sd3Json), dir.Path, "x.json") |> ignore)
        Expect.stringStarts e.Message "x.json has 5 problems:" "e.Message"
        for f in sd3Files do Expect.stringContains e.Message ($"file '{f}' does not exist") "e.Message"

let ``missing sections are reported once each, not once per field`` =
    testCase "missing sections are reported once each, not once per field" <| fun () ->
        let errors = errorsOf """{ "format_version": 1, "name": "x", "model": "m", "kind": "video" }""" null
        Expect.equal
            errors
            ([ "stages: required"; "tokenizer: required"; "latents: required"; "sampler: required"; "guidance: required"; "size: required" ]: string list)
            "errors"

let ``a pipeline with both a transformer and a unet is rejected`` =
    testCase "a pipeline with both a transformer and a unet is rejected" <| fun () ->
        let json = sd3Json.Replace("\"vae_decoder\":", "\"unet\": {}, \"vae_decoder\":")
        Expect.equal (errorsOf json null) ([ "stages.unet: give either 'transformer' or 'unet', not both" ]: string list) "errorsOf json null"

let ``a pipeline without a denoiser is rejected`` =
    testCase "a pipeline without a denoiser is rejected" <| fun () ->
        let json = Regex.Replace(sd3Json, "\"transformer\": \\{.*?\"out_sample\" \\} \\},", "", RegexOptions.Singleline)
        Expect.equal (errorsOf json null) ([ "stages.transformer: required (or give a 'unet' stage instead)" ]: string list) "errorsOf json null"

let ``file paths must stay inside the pipeline directory`` =
    testCase "file paths must stay inside the pipeline directory" <| fun () ->
        let json = sd3Json.Replace("\"vae_decoder/model.onnx\"", "\"../other/model.onnx\"").Replace("\"text_encoder/model.onnx\"", "\"/abs/model.onnx\"")
        Expect.equal
            (errorsOf json null)
            ([ "stages.text_encoder.file: '/abs/model.onnx' must be relative to the pipeline directory"
               "stages.vae_decoder.file: '../other/model.onnx' leaves the pipeline directory" ]: string list)
            "errorsOf json null"

let ``unsupported format versions and invalid JSON are reported`` =
    testCase "unsupported format versions and invalid JSON are reported" <| fun () ->
        Expect.equal
            (errorsOf (sd3Json.Replace("\"format_version\": 1", "\"format_version\": 2")) null)
            ([ "format_version: unsupported format version 2; this build reads version 1" ]: string list)
            "errorsOf (sd3Json.Replace(\"\\\"format_version\\\": 1\", \"\\\"format_version\\\": 2\")) ..."
        let parse = errorsOf "{ \"name\": " null
        Expect.hasLength parse 1 "one error"
        Expect.stringStarts parse.Head "$: not valid JSON" "parse.Head"

let ``content after the manifest's object is refused, naming where it starts; comments and white space are not`` =
    testCase "content after the manifest's object is refused, naming where it starts; comments and white space are not" <| fun () ->
        // a hand edit that leaves a stray bracket, or two manifests pasted into one file: the rest was silently dropped
        for tail, line, column in [ ",}", 20, 2; "\n{ \"name\": \"other\" }", 21, 1; "]", 20, 2 ] do
            let errors = errorsOf (sd3Json + tail) null
            Expect.equal errors [ sprintf "$: not valid JSON: content after the manifest's closing '}' (line %d, column %d)" line column ] (sprintf "after the object: %A" tail)
        let ok = PipelineManifest.Parse(Encoding.UTF8.GetBytes(sd3Json + "\n  // exported by hand\n\n"))
        Expect.equal ok.Name "sd3-medium" "a comment and blank lines after the object are fine"

let ``DDIM step counts must fit the training schedule`` =
    testCase "DDIM step counts must fit the training schedule" <| fun () ->
        let json = sd3Json.Replace("\"type\": \"flow-euler\", \"default_steps\": 28, \"shift\": 3.0", "\"type\": \"ddim\", \"default_steps\": 1000")
        Expect.equal
            (errorsOf json null)
            ([ "sampler.default_steps: at most 999 steps fit 1000 training timesteps with a steps offset of 1" ]: string list)
            "errorsOf json null"

let ``video manifests check frame counts against the temporal compression`` =
    testCase "video manifests check frame counts against the temporal compression" <| fun () ->
        let json =
            sd3Json
                .Replace("\"kind\": \"image\"", "\"kind\": \"video\"")
                .Replace("\"shift_factor\": 0.0609", "\"shift_factor\": 0, \"temporal_compression\": 4")
                .Replace("\"max_height\": 1536", "\"max_height\": 1536, \"min_frames\": 2, \"max_frames\": 4")
        Expect.equal
            (errorsOf json null)
            ([ "size.max_frames: no frame count between 2 and 4 is 1 more than a multiple of the temporal compression 4" ]: string list)
            "errorsOf json null"
        let ok = PipelineManifest.Parse(Encoding.UTF8.GetBytes(json.Replace("\"max_frames\": 4", "\"max_frames\": 33")))
        Expect.sequenceEqual (ok.LatentShape(1, 832, 480, 33)) ([| 1L; 16L; 9L; 60L; 104L |]) "ok.LatentShape(1, 832, 480, 33)"
        Expect.isEmpty (ok.CheckSize(832, 480, 33)) "ok.CheckSize(832, 480, 33)"
        Expect.equal
            (ok.CheckSize(840, 480, 32) |> Seq.map string |> List.ofSeq)
            ([ "width: must be a multiple of 16"; "frames: must be 1 more than a multiple of the temporal compression 4 (4k + 1; the nearest: 29 or 33)" ]: string list)
            "ok.CheckSize(840, 480, 32) |> Seq.map string |> List.ofSeq"
        // a caller's own frame limit (a server's MaxFrames) bounds the counts suggested: never one it refuses
        let nearest (frames: int) (limit: int) =
            ok.CheckSize(832, 480, frames, limit) |> Seq.map string |> Seq.exactlyOne
        Expect.stringEnds (nearest 32 30) "the nearest: 29)" "33 is over a limit of 30"
        Expect.stringEnds (nearest 32 17) "the nearest: 17)" "both over a limit of 17: the largest count within it"

let ``saving an invalid manifest throws and writes nothing`` =
    testCase "saving an invalid manifest throws and writes nothing" <| fun () ->
        use dir = new TempDirectory()
        let m = PipelineManifest.Parse(Encoding.UTF8.GetBytes sd3Json)
        let latents = LatentSettings(m.Latents.Channels, m.Latents.SpatialScaleFactor, 1, 0.0, 0.0)
        let bad = PipelineManifest("", m.Model, m.Kind, m.Stages, m.Tokenizer, latents, m.Sampler, m.Guidance, m.Size)
        let e = expectThrows<ManifestException> "ManifestException is thrown" (fun () -> bad.Save dir.Path)
        Expect.equal (e.Errors |> Seq.map string |> List.ofSeq) ([ "name: must not be empty"; "latents.scaling_factor: must be a positive number" ]: string list) "e.Errors |> Seq.map string |> List.ofSeq"
        Expect.isFalse (File.Exists(Path.Combine(dir.Path, PipelineManifest.FileName))) "File.Exists(Path.Combine(dir.Path, PipelineManifest.FileName))"

let ``the example in docs/pipeline-manifest.md is a valid manifest`` =
    testCase "the example in docs/pipeline-manifest.md is a valid manifest" <| fun () ->
        let rec root (d: DirectoryInfo) = if File.Exists(Path.Combine(d.FullName, "Trident.sln")) then d.FullName else root d.Parent
        let doc = File.ReadAllText(Path.Combine(root (DirectoryInfo AppContext.BaseDirectory), "docs", "pipeline-manifest.md"))
        let example = Regex.Match(doc, "```json\\s*\\n(.*?)```", RegexOptions.Singleline).Groups[1].Value
        let m = PipelineManifest.Parse(Encoding.UTF8.GetBytes example)
        Expect.equal m.Kind PipelineKind.Image "m.Kind"

let ``unscaling latents divides by the scaling factor and adds the shift`` =
    testCase "unscaling latents divides by the scaling factor and adds the shift" <| fun () ->
        let latents = [| 0.0f; 1.5305f; -3.061f |]
        LatentSettings(16, 8, 1, 1.5305, 0.0609).Unscale(Span latents)
        Expect.sequenceEqual (latents |> Array.map (fun x -> MathF.Round(x, 4))) ([| 0.0609f; 1.0609f; -1.9391f |] |> Array.map (fun x -> MathF.Round(x, 4))) "latents |> Array.map (fun x -> MathF.Round(x, 4))"

let ``the sizes to profile start at the pipeline's smallest side and double within its range`` =
    testCase "the sizes to profile start at the pipeline's smallest side and double within its range" <| fun () ->
        let sides (c: SizeConstraint) count upTo = List.ofSeq (c.DoublingSides(count, upTo))
        let tiny = SizeConstraint(64, 64, 1024, 64, 1024, 1, 9)
        Expect.equal (sides tiny 3 Int32.MaxValue) [ 64; 128; 256 ] "the tiny pipeline: the server's start-up sizes"
        Expect.equal (sides (SizeConstraint(16, 256, 1536, 256, 1536, 1, 1)) 3 Int32.MaxValue) [ 256; 512; 1024 ] "an SD3 export"
        Expect.equal (sides tiny 3 128) [ 64; 128 ] "none above the bound"
        Expect.equal (sides (SizeConstraint(16, 256, 500, 256, 1536, 1, 1)) 3 Int32.MaxValue) [ 256 ] "none above what both dimensions accept"
        Expect.equal (sides (SizeConstraint(16, 70, 1024, 60, 1024, 1, 1)) 3 Int32.MaxValue) [ 80; 160; 320 ] "the smallest side rounded up to the multiple"
        Expect.isEmpty (sides tiny 3 32) "empty when even the smallest side is above the bound"

[<Tests>]
let tests =
    testList "unit" [ testList "ManifestTests" [
        ``a saved manifest loads back equal to the original``
        ``generated manifests are valid and name only relative files``
        ``a hand-written manifest in the Optimum layout loads with its defaults filled in``
        ``a manifest with several problems reports all of them at once``
        ``the exception message lists every problem with its path``
        ``missing sections are reported once each, not once per field``
        ``a pipeline with both a transformer and a unet is rejected``
        ``a pipeline without a denoiser is rejected``
        ``file paths must stay inside the pipeline directory``
        ``unsupported format versions and invalid JSON are reported``
        ``content after the manifest's object is refused, naming where it starts; comments and white space are not``
        ``DDIM step counts must fit the training schedule``
        ``the sizes to profile start at the pipeline's smallest side and double within its range``
        ``video manifests check frame counts against the temporal compression``
        ``saving an invalid manifest throws and writes nothing``
        ``the example in docs/pipeline-manifest.md is a valid manifest``
        ``unscaling latents divides by the scaling factor and adds the shift``
    ] |> testSequencedGroup "ManifestTests" ]
