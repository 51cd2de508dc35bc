/// Stable Diffusion 3 export directories end to end, on structurally exact miniatures (Sd3Miniature.cs): recognition
/// of both exporters' transformer signatures and both T5 tokenizer files, the conditioning (CLIP-L ‖ CLIP-G states
/// zero-padded to T5's width, then T5's tokens; pooled projections = both text_embeds), flow-matching Euler,
/// generate and the HTTP API.
module Trident.Tests.Api.Sd3ExportTests

open System
open System.IO
open System.Net
open System.Text.Json.Nodes
open Expecto
open Trident.Runtime.Onnx
open Trident.Runtime.Pipelines
open Trident.Runtime.Pipelines.Export
open Trident.Runtime.Pipelines.Tokenizers
open Trident.Tests.TestSupport
open Trident.Tests.Runtime
open Trident.Tests.Api.ApiFixture
open Trident.Tests.Api.ExportTests

let private sd3Eras = [ Sd3ExportEra.Optimum; Sd3ExportEra.Olive ]

/// A fresh miniature SD3 export in its own temp folder.
let private sd3Miniature era t5Files withVaeConfig =
    let dir = TinyFixture.tempPath "sd3-export"
    ExportMiniature.StableDiffusion3(dir, era, t5Files, withVaeConfig)
    dir

let private sd3 () = sd3Miniature Sd3ExportEra.Optimum T5TokenizerFormat.Both true

let ``SD3 exports of both exporters are recognised: three encoders, pooled projections, flow matching`` =
    testCase "SD3 exports of both exporters are recognised: three encoders, pooled projections, flow matching" <| fun () ->
        for era in sd3Eras do
            let dir = sd3Miniature era T5TokenizerFormat.Both true
            let export = ExportDirectory.Recognise dir
            Expect.equal export.Family ExportFamily.StableDiffusion3 (sprintf "%O: family" era)
            let byName = export.Components |> Seq.map (fun c -> c.Component, c) |> Map.ofSeq
            let transformer = byName["transformer"]
            let timestep = input transformer "timestep"
            let prediction = transformer.Outputs[0]
            match era with
            | Sd3ExportEra.Optimum ->
                Expect.equal (timestep.ElementType, timestep.Declared()) (TensorElementType.Float, "[step]") "Optimum: float [step] timestep"
                Expect.equal prediction.Name "out_hidden_states" "Optimum's output name"
            | _ ->
                Expect.equal (timestep.ElementType, timestep.Declared()) (TensorElementType.Float, "[batch_size]") "Olive: float [batch_size] timestep"
                Expect.equal prediction.Name "out_sample" "Olive's output name"
            Expect.equal ((input transformer "hidden_states").Declared(), (input transformer "pooled_projections").Declared(), (input transformer "encoder_hidden_states").Declared())
                ("[batch_size, 16, height, width]", "[batch_size, 40]", "[batch_size, sequence_length, 48]") "the transformer's inputs"
            Expect.equal ((input byName["text_encoder_3"] "input_ids").ElementType) TensorElementType.Int64 "T5 takes int64 ids"
            Expect.sequenceEqual (byName["text_encoder"].Outputs |> Seq.map (fun o -> o.Name))
                [ "text_embeds"; "last_hidden_state"; "hidden_states.0"; "hidden_states.1"; "hidden_states.2" ] "CLIPTextWithProjection outputs in Optimum's order"
            Expect.sequenceEqual byName["text_encoder_3"].ExternalData [ "model.onnx_data" ] "T5's external weights"
            let m = export.Manifest
            let s = m.Stages
            Expect.equal (s.TextEncoder.LastHiddenState, s.TextEncoder.Pooled) ("hidden_states.1", "text_embeds") "CLIP-L: penultimate layer and text_embeds"
            Expect.equal (s.TextEncoder2.LastHiddenState, s.TextEncoder2.Pooled) ("hidden_states.1", "text_embeds") "CLIP-G: penultimate layer and text_embeds"
            Expect.equal (s.TextEncoder3.File, s.TextEncoder3.LastHiddenState) ("text_encoder_3/model.onnx", "last_hidden_state") "T5"
            Expect.equal (s.Denoiser.Architecture, s.Denoiser.Latents, s.Denoiser.TextEmbeds, s.Denoiser.Prediction)
                (DenoiserArchitecture.Transformer, "hidden_states", "pooled_projections", prediction.Name) "the transformer's wiring"
            Expect.equal (m.Latents.Channels, m.Latents.ScalingFactor, m.Latents.ShiftFactor) (16, 1.5305, 0.0609) "vae_decoder/config.json"
            Expect.equal (m.Guidance.DefaultScale, m.Size.MultipleOf, m.ZerosForEmptyNegative) (7.0, 16, false) "SD3's defaults"
            match m.Sampler, m.Tokenizer2, m.Tokenizer3 with
            | (:? FlowEulerSettings as f), (:? ClipBpeTokenizerSettings as t2), (:? T5TokenizerSettings as t3) ->
                Expect.equal (f.Shift, f.NumTrainTimesteps, f.DefaultSteps) (3.0, 1000, 28) "FlowMatchEulerDiscreteScheduler, shift 3"
                Expect.equal t2.PadToken "!" "tokenizer_2 pads with '!'"
                Expect.equal (t3.File, t3.MaxLength) ("tokenizer_3/tokenizer.json", 256) "T5TokenizerFast's file, max_sequence_length 256"
            | other -> failtestf "unexpected %O" other
            Expect.sequenceEqual export.Schedulers [ "flow-euler" ] "flow matching only"
            let code, out, err = run [ "inspect"; dir ]
            Expect.equal code 0 ("inspect succeeds: " + err)
            Expect.stringContains out "family        sd3 (model_index.json: StableDiffusion3Pipeline)" "the family"
            Expect.stringContains out "tokenizer_3   T5 SentencePiece Unigram tokenizer_3/tokenizer.json, 256 tokens" "the T5 tokenizer"
            Expect.stringContains out "encoder_hidden_states = (hidden_states.1 of text_encoder/model.onnx ‖ hidden_states.1 of text_encoder_2/model.onnx, along the width, zero-padded to T5's width) followed on the token axis by last_hidden_state of text_encoder_3/model.onnx" "how the states are joined"
            Expect.stringContains out "pooled_projections = text_embeds of text_encoder/model.onnx ‖ text_embeds of text_encoder_2/model.onnx" "the pooled projections"
            Expect.stringContains out "flow-euler (shift 3; timestep = σ × 1000)" "the scheduler"
            let e = expectThrows<ManifestException> "ManifestException" (fun () -> m.Save(TinyFixture.tempPath "sd3-manifest"))
            Expect.stringContains e.Message "cannot be written to trident-pipeline.json" "SD3's conditioning is export-only"

let ``an SD3 export without the VAE config or tokenizer.json gets SD3's defaults and reads spiece.model`` =
    testCase "an SD3 export without the VAE config or tokenizer.json gets SD3's defaults and reads spiece.model" <| fun () ->
        let dir = sd3Miniature Sd3ExportEra.Optimum T5TokenizerFormat.SentencePiece false
        let export = ExportDirectory.Recognise dir
        let m = export.Manifest
        Expect.equal (m.Latents.Channels, m.Latents.ScalingFactor, m.Latents.ShiftFactor) (16, 1.5305, 0.0609) "SD3's published VAE values"
        Expect.exists export.Notes (fun n -> n.StartsWith "vae_decoder/config.json shift_factor: 0.0609 (SD3 default; the export has no config.json)") "the default is noted"
        Expect.equal (m.Tokenizer3 :?> T5TokenizerSettings).File "tokenizer_3/spiece.model" "the SentencePiece model"
        use p = Trident.Runtime.Execution.LoadedPipeline.Open dir
        Expect.sequenceEqual (p.Tokenizer3.Encode "a photo of a cat").InputIds[..5] [| 4L; 5L; 6L; 4L; 7L; 1L |] "▁a ▁photo ▁of ▁a ▁cat </s>"
        Expect.sequenceEqual p.Models
            [ Trident.Runtime.Execution.StageModel.TextEncoder; Trident.Runtime.Execution.StageModel.Denoiser; Trident.Runtime.Execution.StageModel.VaeDecoder
              Trident.Runtime.Execution.StageModel.TextEncoder2; Trident.Runtime.Execution.StageModel.TextEncoder3 ] "five models"

let ``a broken SD3 export lists every problem of its T5 encoder, tokenizer, transformer and scheduler`` =
    testCase "a broken SD3 export lists every problem of its T5 encoder, tokenizer, transformer and scheduler" <| fun () ->
        let dir = sd3 ()
        File.Delete(Path.Combine(dir, "tokenizer_3", "spiece.model"))
        File.Delete(Path.Combine(dir, "tokenizer_3", "tokenizer.json"))
        writeFloatIdsEncoder (Path.Combine(dir, "text_encoder_3", "model.onnx"))
        let schedulerPath = Path.Combine(dir, "scheduler", "scheduler_config.json")
        let scheduler = JsonNode.Parse(File.ReadAllText schedulerPath)
        scheduler["_class_name"] <- JsonValue.Create "EulerDiscreteScheduler"
        File.WriteAllText(schedulerPath, scheduler.ToJsonString())
        // A transformer without pooled_projections (an SD 1.x-like signature under an SD3 model_index.json).
        let g = Trident.Runtime.Onnx.ModelWriter.GraphBuilder("transformer")
        let h = g.Input("hidden_states", TensorElementType.Float, Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "batch_size", Trident.Runtime.Onnx.ModelWriter.Dim.Fixed 16L, Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "height", Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "width")
        g.Input("timestep", TensorElementType.Float, Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "step") |> ignore
        g.Input("encoder_hidden_states", TensorElementType.Float, Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "batch_size", Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "sequence_length", Trident.Runtime.Onnx.ModelWriter.Dim.Fixed 48L) |> ignore
        g.Output(g.Identity h, "out_hidden_states", TensorElementType.Float, Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "batch_size", Trident.Runtime.Onnx.ModelWriter.Dim.Fixed 16L, Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "height", Trident.Runtime.Onnx.ModelWriter.Dim.Symbolic "width") |> ignore
        File.Delete(Path.Combine(dir, "transformer", "model.onnx_data"))
        g.Save(Path.Combine(dir, "transformer", "model.onnx"))
        let e = expectThrows<ManifestException> "ManifestException" (fun () -> ExportDirectory.Recognise dir |> ignore)
        for expected in
            [ "tokenizer_3/: missing file: neither tokenizer_3/tokenizer.json nor tokenizer_3/spiece.model exists"
              "text_encoder_3/model.onnx:input_ids: expected int32 or int64 [batch, sequence], found float32 [batch_size, sequence_length]"
              "text_encoder_3/model.onnx:last_hidden_state: expected float [batch, sequence, hidden], found float32 [batch_size, sequence_length]"
              "transformer/model.onnx:pooled_projections: missing input"
              "scheduler/scheduler_config.json: _class_name 'EulerDiscreteScheduler' is not FlowMatchEulerDiscreteScheduler" ] do
            Expect.stringContains e.Message expected "every problem is listed"
        let code, _, err = run [ "generate"; "--pipeline"; dir; "--prompt"; "x"; "--out"; TinyFixture.tempPath "x.png" ]
        Expect.equal code 2 "generate exits 2"
        Expect.stringContains err "transformer/model.onnx:pooled_projections: missing input" "and lists the problems"

let private close (a: float32[]) (b: float32[]) message =
    Expect.equal a.Length b.Length message
    Array.iteri2 (fun i (x: float32) (y: float32) -> Expect.isLessThan (abs (x - y)) 1e-5f (sprintf "%s (element %d)" message i)) a b

let ``SD3 encode: CLIP-L ‖ CLIP-G zero-padded to T5's width, then T5's tokens; pooled projections are both text_embeds`` =
    testCase "SD3 encode: CLIP-L ‖ CLIP-G zero-padded to T5's width, then T5's tokens; pooled projections are both text_embeds" <| fun () ->
        let dir = sd3 ()
        use p = Trident.Runtime.Execution.LoadedPipeline.Open dir
        let prompt = "a photo of a cat"
        let e = Trident.Runtime.Execution.EncodeExecutor(p).Encode([| prompt |], [| "" |])
        Expect.sequenceEqual e.Tensor.Shape [ 2L; 77L + 256L; 48L ] "[cond; uncond] × (77 CLIP + 256 T5 tokens) × T5's width"
        Expect.sequenceEqual e.Pooled.Shape [ 2L; 40L ] "pooled projections: 16 + 24"
        let alone (file: string) (tokenizer: ITokenizer) (outputs: string list) =
            use s = Session.Load(Path.Combine(dir, file))
            let r = s.Run(ReadOnlySpan [| Tensor.FromInt64(tokenizer.Encode(prompt).InputIds, 1L, int64 tokenizer.MaxLength) |])
            outputs |> List.map (fun name -> r[s.OutputIndex name].Tensor.AsFloat())
        let l = alone "text_encoder/model.onnx" p.Tokenizer [ "hidden_states.1"; "text_embeds" ]
        let g = alone "text_encoder_2/model.onnx" p.Tokenizer2 [ "hidden_states.1"; "text_embeds" ]
        let t5 = alone "text_encoder_3/model.onnx" p.Tokenizer3 [ "last_hidden_state" ]
        let joined = row e.Tensor 0
        for t in 0 .. 76 do
            close (joined[t * 48 .. t * 48 + 15]) (l[0][t * 16 .. t * 16 + 15]) "columns 0–15: CLIP-L's hidden_states.1"
            close (joined[t * 48 + 16 .. t * 48 + 39]) (g[0][t * 24 .. t * 24 + 23]) "columns 16–39: CLIP-G's hidden_states.1"
            Expect.isTrue (joined[t * 48 + 40 .. t * 48 + 47] |> Array.forall ((=) 0f)) "columns 40–47: zero padding to T5's width"
        close (joined[77 * 48 ..]) t5[0] "tokens 77–332: T5's last_hidden_state"
        close (row e.Pooled 0) (Array.append l[1] g[1]) "pooled projections: CLIP-L text_embeds ‖ CLIP-G text_embeds"
        Expect.isFalse (row e.Tensor 1 |> Array.forall ((=) 0f)) "an empty negative prompt is the empty string's states (SD3 has no zeros)"

let ``every input of the SD3 miniature's transformer and T5 encoder changes every output`` =
    testCase "every input of the SD3 miniature's transformer and T5 encoder changes every output" <| fun () ->
        let dir = sd3 ()
        let noise seed (shape: int64 list) =
            Tensor.FromFloat(Trident.Runtime.Pipelines.Samplers.GaussianNoise.Sample(seed, int (List.reduce (*) shape)), Array.ofList shape)
        use transformer = Session.Load(Path.Combine(dir, "transformer", "model.onnx"))
        let names = [| "hidden_states"; "timestep"; "encoder_hidden_states"; "pooled_projections" |]
        let baseline : Tensor[] = [| noise 1UL [ 1L; 16L; 4L; 4L ]; Tensor.FromFloat([| 900f |], 1L); noise 2UL [ 1L; 333L; 48L ]; noise 3UL [ 1L; 40L ] |]
        let changed : Tensor[] = [| noise 4UL [ 1L; 16L; 4L; 4L ]; Tensor.FromFloat([| 500f |], 1L); noise 5UL [ 1L; 333L; 48L ]; noise 6UL [ 1L; 40L ] |]
        let runIt (inputs: Tensor[]) =
            let ordered = Array.init inputs.Length (fun i -> inputs[Array.IndexOf(names, transformer.Inputs[i].Name)])
            (transformer.Run(ReadOnlySpan ordered)[0]).Tensor.AsFloat()
        let reference = runIt baseline
        for i in 0 .. names.Length - 1 do
            let inputs = Array.copy baseline
            inputs[i] <- changed[i]
            Expect.notEqual (runIt inputs) reference (sprintf "the transformer's prediction depends on %s" names[i])
        use t5 = Session.Load(Path.Combine(dir, "text_encoder_3", "model.onnx"))
        let ids (last: int64) = Tensor.FromInt64(Array.init 8 (fun t -> if t = 7 then last else int64 (t + 3)), 1L, 8L)
        let stateOf (input: Tensor) = (t5.Run(ReadOnlySpan [| input |])[0]).Tensor.AsFloat()
        let a, b = stateOf (ids 3L), stateOf (ids 40L)
        for t in 0 .. 7 do
            Expect.notEqual a[t * 48 .. t * 48 + 47] b[t * 48 .. t * 48 + 47] (sprintf "T5's state of token %d depends on the last token" t)

let ``generate runs SD3 exports of both exporters and both T5 files end to end, deterministically`` =
    testCase "generate runs SD3 exports of both exporters and both T5 files end to end, deterministically" <| fun () ->
        // Same weights behind Optimum's and Olive's signatures, and T5 read from tokenizer.json or spiece.model: the same bytes.
        let variants =
            [ sd3Miniature Sd3ExportEra.Optimum T5TokenizerFormat.Both true
              sd3Miniature Sd3ExportEra.Olive T5TokenizerFormat.TokenizerJson true
              sd3Miniature Sd3ExportEra.Optimum T5TokenizerFormat.SentencePiece false ]
        let images = [ for dir in variants -> generate dir [ "--seed"; "5" ] ]
        Expect.equal images[1] images[0] "Olive's signature gives Optimum's bytes"
        Expect.equal images[2] images[0] "spiece.model and the VAE defaults give the same bytes"
        let dir = variants[0]
        let image = images[0]
        let png = MediaChecks.decodeImage image
        Expect.equal (png.Width, png.Height) (64, 64) "a 64×64 image"
        Expect.isGreaterThan (png.Rgb |> Array.distinct |> Array.length) 16 "not a flat image"
        Expect.equal (generate dir [ "--seed"; "5" ]) image "same seed and settings: the same bytes"
        Expect.notEqual (generate dir [ "--seed"; "6" ]) image "another seed: another image"
        Expect.notEqual (generate dir [ "--seed"; "5"; "--prompt"; "a dog" ]) image "the prompt reaches the transformer"
        Expect.notEqual (generate dir [ "--seed"; "5"; "--negative-prompt"; "a dog" ]) image "the negative prompt reaches the transformer"
        Expect.notEqual (generate dir [ "--seed"; "5"; "--guidance"; "1" ]) image "guidance changes the image"
        Expect.equal (generate dir [ "--seed"; "5"; "--scheduler"; "flow-euler" ]) image "flow-euler is the default"
        let code, _, err = run [ "generate"; "--pipeline"; dir; "--prompt"; "x"; "--scheduler"; "ddim"; "--out"; TinyFixture.tempPath "x.png" ]
        Expect.equal code 2 "a scheduler SD3 does not support"
        Expect.stringContains err "flow-euler" "names the accepted scheduler"
        let code, _, err = run [ "bench"; "runtime"; "--pipeline"; dir; "--width"; "64"; "--height"; "64"; "--steps"; "1" ]
        Expect.equal code 2 "bench runtime refuses SD3"
        Expect.stringContains err "does not replay" "saying why"

let ``the HTTP API serves an SD3 export, and its images equal generate's`` =
    testCase "the HTTP API serves an SD3 export, and its images equal generate's" <| fun () ->
        let dir = sd3Miniature Sd3ExportEra.Olive T5TokenizerFormat.Both true
        use factory = new TridentFactory([ "Trident:Pipeline", dir; "Trident:ProfileCache", TinyFixture.tempPath "profiles" ])
        let client = readyClient factory
        expectServedAsGenerated client dir """{"prompt":"a photo of a cat","negative_prompt":"a dog","width":64,"height":64,"steps":3,"seed":5}"""
            [ "--seed"; "5"; "--negative-prompt"; "a dog" ] "the server and generate compute the same pixels"
        use bad = post client "/v1/generations" """{"prompt":"x","width":72,"height":64,"scheduler":"euler"}"""
        Expect.equal bad.StatusCode HttpStatusCode.BadRequest "a size SD3 cannot take, a scheduler it does not support"
        let errors = (json bad).GetProperty("errors")
        Expect.stringContains (errors.GetProperty("width").ToString()) "multiple of 16" "names the accepted sizes"
        Expect.stringContains (errors.GetProperty("scheduler").ToString()) "accepted: flow-euler" "names the accepted scheduler"

[<Tests>]
let unitTests =
    testList "unit" [ testList "Sd3ExportTests" [
        ``SD3 exports of both exporters are recognised: three encoders, pooled projections, flow matching``
        ``an SD3 export without the VAE config or tokenizer.json gets SD3's defaults and reads spiece.model``
        ``a broken SD3 export lists every problem of its T5 encoder, tokenizer, transformer and scheduler``
        ``SD3 encode: CLIP-L ‖ CLIP-G zero-padded to T5's width, then T5's tokens; pooled projections are both text_embeds``
        ``every input of the SD3 miniature's transformer and T5 encoder changes every output``
    ] |> testSequencedGroup "Sd3ExportTests" ]

[<Tests>]
let integrationTests =
    testList "integration" [ testList "Sd3ExportTests" [
        ``generate runs SD3 exports of both exporters and both T5 files end to end, deterministically``
        ``the HTTP API serves an SD3 export, and its images equal generate's``
    ] |> testSequenced ]
