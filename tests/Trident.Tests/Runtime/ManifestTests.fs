module Trident.Tests.Runtime.ManifestTests

open System
open System.IO
open System.Text
open System.Text.RegularExpressions
open FsCheck.FSharp
open Xunit
open Trident.Runtime.Pipelines
open Trident.Tests.Runtime.RuntimeGenerators

let private touchFiles (dir: TempDirectory) (m: PipelineManifest) =
    for f in namedFiles m do dir.Write(f, "x") |> ignore

let private errorsOf (json: string) (dir: string) =
    let e = Assert.Throws<ManifestException>(fun () -> PipelineManifest.Parse(Encoding.UTF8.GetBytes json, dir) |> ignore)
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

[<Fact>]
let ``a saved manifest loads back equal to the original`` () =
    check 100 (Prop.forAll (Arb.fromGen manifest) (fun m ->
        use dir = new TempDirectory()
        touchFiles dir m
        m.Save dir.Path
        let loaded = PipelineManifest.Load dir.Path
        let resaved = loaded.ToJson()
        (loaded = m |> Prop.label "loaded = saved")
        .&. (resaved = File.ReadAllBytes(Path.Combine(dir.Path, PipelineManifest.FileName)) |> Prop.label "saving again writes the same bytes")))

[<Fact>]
let ``generated manifests are valid and name only relative files`` () =
    check 200 (Prop.forAll (Arb.fromGen manifest) (fun m ->
        m.Validate() |> Seq.isEmpty |> Prop.label (String.Join("; ", m.Validate()))))

[<Fact>]
let ``a hand-written manifest in the Optimum layout loads with its defaults filled in`` () =
    use dir = new TempDirectory()
    for f in sd3Files do dir.Write(f, "x") |> ignore
    dir.Write(PipelineManifest.FileName, sd3Json) |> ignore
    let m = PipelineManifest.Load dir.Path
    Assert.Equal(DenoiserArchitecture.Transformer, m.Stages.Denoiser.Architecture)
    Assert.Equal("hidden_states", m.Stages.Denoiser.Latents)
    Assert.Null(m.Stages.TextEncoder.AttentionMask)
    Assert.Equal(ClipBpeTokenizerSettings(77, "tokenizer/vocab.json", "tokenizer/merges.txt", "<|endoftext|>") :> TokenizerSettings, m.Tokenizer)
    Assert.Equal(LatentSettings(16, 8, 1, 1.5305, 0.0609), m.Latents)
    Assert.Equal(FlowEulerSettings(1000, 28, 3.0) :> SamplerSettings, m.Sampler)
    Assert.Equal(SizeConstraint(16, 256, 1536, 256, 1536, 1, 1), m.Size)
    Assert.Equal<int64>([| 2L; 16L; 64L; 128L |], m.LatentShape(2, 1024, 512, 1))

[<Fact>]
let ``a manifest with several problems reports all of them at once`` () =
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
    Assert.Equal<string list>(List.sort expected, List.sort errors)

[<Fact>]
let ``the exception message lists every problem with its path`` () =
    use dir = new TempDirectory()
    let e = Assert.Throws<ManifestException>(fun () ->
        PipelineManifest.Parse(Encoding.UTF8.GetBytes(sd3Json), dir.Path, "x.json") |> ignore)
    Assert.StartsWith("x.json has 5 problems:", e.Message)
    for f in sd3Files do Assert.Contains($"file '{f}' does not exist", e.Message)

[<Fact>]
let ``missing sections are reported once each, not once per field`` () =
    let errors = errorsOf """{ "format_version": 1, "name": "x", "model": "m", "kind": "video" }""" null
    Assert.Equal<string list>(
        [ "stages: required"; "tokenizer: required"; "latents: required"; "sampler: required"; "guidance: required"; "size: required" ],
        errors)

[<Fact>]
let ``a pipeline with both a transformer and a unet is rejected`` () =
    let json = sd3Json.Replace("\"vae_decoder\":", "\"unet\": {}, \"vae_decoder\":")
    Assert.Equal<string list>([ "stages.unet: give either 'transformer' or 'unet', not both" ], errorsOf json null)

[<Fact>]
let ``a pipeline without a denoiser is rejected`` () =
    let json = Regex.Replace(sd3Json, "\"transformer\": \\{.*?\"out_sample\" \\} \\},", "", RegexOptions.Singleline)
    Assert.Equal<string list>([ "stages.transformer: required (or give a 'unet' stage instead)" ], errorsOf json null)

[<Fact>]
let ``file paths must stay inside the pipeline directory`` () =
    let json = sd3Json.Replace("\"vae_decoder/model.onnx\"", "\"../other/model.onnx\"").Replace("\"text_encoder/model.onnx\"", "\"/abs/model.onnx\"")
    Assert.Equal<string list>(
        [ "stages.text_encoder.file: '/abs/model.onnx' must be relative to the pipeline directory"
          "stages.vae_decoder.file: '../other/model.onnx' leaves the pipeline directory" ],
        errorsOf json null)

[<Fact>]
let ``unsupported format versions and invalid JSON are reported`` () =
    Assert.Equal<string list>(
        [ "format_version: unsupported format version 2; this build reads version 1" ],
        errorsOf (sd3Json.Replace("\"format_version\": 1", "\"format_version\": 2")) null)
    let parse = errorsOf "{ \"name\": " null
    Assert.Single parse |> ignore
    Assert.StartsWith("$: not valid JSON", parse.Head)

[<Fact>]
let ``DDIM step counts must fit the training schedule`` () =
    let json = sd3Json.Replace("\"type\": \"flow-euler\", \"default_steps\": 28, \"shift\": 3.0", "\"type\": \"ddim\", \"default_steps\": 1000")
    Assert.Equal<string list>(
        [ "sampler.default_steps: at most 999 steps fit 1000 training timesteps with a steps offset of 1" ],
        errorsOf json null)

[<Fact>]
let ``video manifests check frame counts against the temporal compression`` () =
    let json =
        sd3Json
            .Replace("\"kind\": \"image\"", "\"kind\": \"video\"")
            .Replace("\"shift_factor\": 0.0609", "\"shift_factor\": 0, \"temporal_compression\": 4")
            .Replace("\"max_height\": 1536", "\"max_height\": 1536, \"min_frames\": 2, \"max_frames\": 4")
    Assert.Equal<string list>(
        [ "size.max_frames: no frame count between 2 and 4 is 1 more than a multiple of the temporal compression 4" ],
        errorsOf json null)
    let ok = PipelineManifest.Parse(Encoding.UTF8.GetBytes(json.Replace("\"max_frames\": 4", "\"max_frames\": 33")))
    Assert.Equal<int64>([| 1L; 16L; 9L; 60L; 104L |], ok.LatentShape(1, 832, 480, 33))
    Assert.Empty(ok.CheckSize(832, 480, 33))
    Assert.Equal<string list>(
        [ "width: must be a multiple of 16"; "frames: must be 1 more than a multiple of the temporal compression 4" ],
        ok.CheckSize(840, 480, 32) |> Seq.map string |> List.ofSeq)

[<Fact>]
let ``saving an invalid manifest throws and writes nothing`` () =
    use dir = new TempDirectory()
    let m = PipelineManifest.Parse(Encoding.UTF8.GetBytes sd3Json)
    let latents = LatentSettings(m.Latents.Channels, m.Latents.SpatialScaleFactor, 1, 0.0, 0.0)
    let bad = PipelineManifest("", m.Model, m.Kind, m.Stages, m.Tokenizer, latents, m.Sampler, m.Guidance, m.Size)
    let e = Assert.Throws<ManifestException>(fun () -> bad.Save dir.Path)
    Assert.Equal<string list>([ "name: must not be empty"; "latents.scaling_factor: must be a positive number" ], e.Errors |> Seq.map string |> List.ofSeq)
    Assert.False(File.Exists(Path.Combine(dir.Path, PipelineManifest.FileName)))

[<Fact>]
let ``the example in docs/pipeline-manifest.md is a valid manifest`` () =
    let rec root (d: DirectoryInfo) = if File.Exists(Path.Combine(d.FullName, "Trident.sln")) then d.FullName else root d.Parent
    let doc = File.ReadAllText(Path.Combine(root (DirectoryInfo AppContext.BaseDirectory), "docs", "pipeline-manifest.md"))
    let example = Regex.Match(doc, "```json\\s*\\n(.*?)```", RegexOptions.Singleline).Groups[1].Value
    let m = PipelineManifest.Parse(Encoding.UTF8.GetBytes example)
    Assert.Equal(PipelineKind.Image, m.Kind)

[<Fact>]
let ``unscaling latents divides by the scaling factor and adds the shift`` () =
    let latents = [| 0.0f; 1.5305f; -3.061f |]
    LatentSettings(16, 8, 1, 1.5305, 0.0609).Unscale(Span latents)
    Assert.Equal<float32>([| 0.0609f; 1.0609f; -1.9391f |] |> Array.map (fun x -> MathF.Round(x, 4)), latents |> Array.map (fun x -> MathF.Round(x, 4)))
