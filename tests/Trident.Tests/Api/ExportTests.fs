/// Exported pipelines served as they are (Trident.Runtime.Pipelines.Export): miniature diffusers/Optimum SD
/// exports of three exporter eras (ExportMiniature) recognised from model_index.json and their declared
/// signatures, explained by `trident inspect`, run by `trident generate` and by the HTTP API; a broken export
/// gets one error listing every problem, from inspect, generate and serve alike.
module Trident.Tests.Api.ExportTests

open System
open System.IO
open System.Net
open System.Text.Json.Nodes
open Expecto
open Trident.Runtime.Onnx
open Trident.Runtime.Onnx.ModelWriter
open Trident.Runtime.Pipelines
open Trident.Runtime.Pipelines.Export
open Trident.Runtime.Imaging
open Trident.Tests.TestSupport
open Trident.Tests.Runtime
open Trident.Tests.Api.ApiFixture

/// A fresh miniature SD export of `era` in its own temp folder.
let private miniature era prediction =
    let dir = TinyFixture.tempPath "sd-export"
    ExportMiniature.StableDiffusion(dir, era, prediction, (if prediction = PredictionType.VPrediction then "DDIMScheduler" else "PNDMScheduler"))
    dir

let private eras = [ ExportEra.DiffusersScript2022; ExportEra.Optimum2023; ExportEra.OptimumCurrent ]

let run = runCli

let input (c: ComponentSignature) name = c.Inputs |> Seq.find (fun i -> i.Name = name)

let ``each exporter era's signatures are read from the models, not assumed`` =
    testCase "each exporter era's signatures are read from the models, not assumed" <| fun () ->
        for era in eras do
            let export = ExportDirectory.Recognise(miniature era PredictionType.Epsilon)
            Expect.equal export.Family ExportFamily.StableDiffusion (sprintf "%O: family" era)
            let byName = export.Components |> Seq.map (fun c -> c.Component, c) |> Map.ofSeq
            let ids = input byName["text_encoder"] "input_ids"
            let timestep = input byName["unet"] "timestep"
            let sample = input byName["unet"] "sample"
            match era with
            | ExportEra.DiffusersScript2022 ->
                Expect.equal ids.ElementType TensorElementType.Int32 "2022 script: int32 ids"
                Expect.equal (timestep.ElementType, timestep.Declared()) (TensorElementType.Float, "[batch]") "2022 script: float [batch] timestep"
                Expect.equal (sample.Declared()) "[batch, channels, height, width]" "2022 script axis names"
                Expect.sequenceEqual byName["unet"].ExternalData [ "weights.pb" ] "weights.pb beside the UNet"
                Expect.isTrue (export.Notes |> Seq.exists (fun n -> n.Contains "scaling_factor: 0.18215")) "the per-family VAE default is noted"
            | ExportEra.Optimum2023 ->
                Expect.equal (ids.ElementType, ids.Declared()) (TensorElementType.Int64, "[batch_size, sequence_length]") "Optimum 1.x ids"
                Expect.equal (timestep.ElementType, timestep.Declared()) (TensorElementType.Int64, "[steps]") "Optimum 1.x: int64 [steps] timestep"
                Expect.equal (sample.Declared()) "[batch_size, num_channels, height, width]" "Optimum 1.x axis names"
                Expect.sequenceEqual byName["unet"].ExternalData [ "model.onnx_data" ] "model.onnx_data beside the UNet"
            | _ ->
                Expect.equal (timestep.ElementType, timestep.Declared()) (TensorElementType.Float, "[]") "Optimum today: float scalar timestep"
                Expect.equal (sample.Declared()) "[batch_size, 4, height, width]" "Optimum today: fixed channels"
            let m = export.Manifest
            Expect.equal (m.Latents.Channels, m.Latents.ScalingFactor, m.Size.MultipleOf) (4, 0.18215, 64) "latents and sizes"
            match m.Sampler with
            | :? DdimSettings as d -> Expect.equal d.PredictionType PredictionType.Epsilon "epsilon from the scheduler config"
            | other -> failtestf "expected DDIM, got %O" other
        let v = ExportDirectory.Recognise(miniature ExportEra.OptimumCurrent PredictionType.VPrediction)
        match v.Manifest.Sampler, v.Manifest.Tokenizer with
        | (:? DdimSettings as d), (:? ClipBpeTokenizerSettings as t) ->
            Expect.equal d.PredictionType PredictionType.VPrediction "v_prediction from the scheduler config"
            Expect.equal t.PadToken "!" "SD 2.x pads with '!' (special_tokens_map.json)"
        | other -> failtestf "unexpected %O" other

/// A text encoder whose input_ids is float: a mismatched input.
let writeFloatIdsEncoder (path: string) =
    let g = GraphBuilder("bad_text_encoder")
    let ids = g.Input("input_ids", TensorElementType.Float, Dim.Symbolic "batch_size", Dim.Symbolic "sequence_length")
    g.Output(g.Identity ids, "last_hidden_state", TensorElementType.Float, Dim.Symbolic "batch_size", Dim.Symbolic "sequence_length") |> ignore
    g.Save path

let private brokenExport () =
    let dir = miniature ExportEra.Optimum2023 PredictionType.Epsilon
    File.Delete(Path.Combine(dir, "tokenizer", "merges.txt"))
    File.Delete(Path.Combine(dir, "vae_decoder", "model.onnx"))
    writeFloatIdsEncoder (Path.Combine(dir, "text_encoder", "model.onnx"))
    let indexPath = Path.Combine(dir, "model_index.json")
    let index = JsonNode.Parse(File.ReadAllText indexPath)
    index["controlnet"] <- JsonArray(JsonValue.Create "diffusers", JsonValue.Create "ControlNetModel")
    File.WriteAllText(indexPath, index.ToJsonString())
    dir

let private expectEveryProblem (text: string) =
    for expected in
        [ "tokenizer/merges.txt: missing file"; "vae_decoder/model.onnx: missing file"; "model_index.json:controlnet: unknown component"
          "text_encoder/model.onnx:input_ids: expected int32 or int64 [batch, sequence], found float32 [batch_size, sequence_length]"
          "text_encoder/model.onnx:last_hidden_state: expected float [batch, sequence, hidden], found float32 [batch_size, sequence_length]" ] do
        Expect.stringContains text expected "every problem is listed"

let ``a broken export gets one error listing every missing file, unknown component and mismatched input`` =
    testCase "a broken export gets one error listing every missing file, unknown component and mismatched input" <| fun () ->
        let dir = brokenExport ()
        let e = expectThrows<ManifestException> "ManifestException" (fun () -> ExportDirectory.Recognise dir |> ignore)
        Expect.equal e.Errors.Count 5 (sprintf "five problems: %s" e.Message)
        expectEveryProblem e.Message
        let code, _, err = run [ "inspect"; dir ]
        Expect.equal code 2 "inspect exits 2"
        expectEveryProblem err
        let code, _, err = run [ "generate"; "--pipeline"; dir; "--prompt"; "x"; "--width"; "64"; "--height"; "64"; "--out"; TinyFixture.tempPath "x.png" ]
        Expect.equal code 2 "generate exits 2"
        expectEveryProblem err
        let code, _, err = run [ "serve"; "--pipeline"; dir; "--urls"; "http://127.0.0.1:0"; "--Trident:LogLevel"; "Fatal" ]
        Expect.equal code 2 "serve exits 2 without starting"
        expectEveryProblem err

let ``the family comes from model_index.json and the signatures, which must agree`` =
    testCase "the family comes from model_index.json and the signatures, which must agree" <| fun () ->
        let dir = miniature ExportEra.OptimumCurrent PredictionType.Epsilon
        let indexPath = Path.Combine(dir, "model_index.json")
        let withClass (cls: string) =
            let index = JsonNode.Parse(File.ReadAllText indexPath)
            index["_class_name"] <- JsonValue.Create cls
            File.WriteAllText(indexPath, index.ToJsonString())
        withClass "StableDiffusionXLPipeline"
        let e = expectThrows<ManifestException> "ManifestException" (fun () -> ExportDirectory.Recognise dir |> ignore)
        Expect.stringContains e.Message "model_index.json says sdxl (StableDiffusionXLPipeline) but the denoiser's inputs (sample, timestep, encoder_hidden_states) are those of stable-diffusion" "class and signature disagree"
        withClass "StableDiffusion3Pipeline"
        let e = expectThrows<ManifestException> "ManifestException" (fun () -> ExportDirectory.Recognise dir |> ignore)
        Expect.stringContains e.Message "model_index.json says sd3 (StableDiffusion3Pipeline) but the denoiser's inputs (sample, timestep, encoder_hidden_states) are those of stable-diffusion" "SD3's class on a UNet"
        withClass "KandinskyPipeline"
        let e = expectThrows<ManifestException> "ManifestException" (fun () -> ExportDirectory.Recognise dir |> ignore)
        Expect.stringContains e.Message "_class_name 'KandinskyPipeline' is not a pipeline Trident knows" "an unknown class"
        withClass "ORTStableDiffusionPipeline"
        Expect.equal (ExportDirectory.Recognise dir).Family ExportFamily.StableDiffusion "Optimum's ORT class name"

let ``trident-pipeline.json in an export directory overrides what is recognised`` =
    testCase "trident-pipeline.json in an export directory overrides what is recognised" <| fun () ->
        let dir = miniature ExportEra.Optimum2023 PredictionType.Epsilon
        let recognised = PipelineDirectory.LoadManifest dir
        Expect.isSome (Option.ofObj (PipelineDirectory.ExportOf dir)) "an export"
        let r = recognised
        let overridden = PipelineManifest("override", r.Model, r.Kind, r.Stages, r.Tokenizer, r.Latents, r.Sampler, r.Guidance, r.Size)
        overridden.Save dir
        Expect.equal (PipelineDirectory.LoadManifest dir).Name "override" "the manifest wins"
        Expect.isNull (PipelineDirectory.ExportOf dir) "no longer run as a recognised export"

// ---- end to end ----------------------------------------------------------------------------------------

let generate dir (extra: string list) =
    let out = TinyFixture.tempPath "out.png"
    let code, _, err =
        let prompt = if List.contains "--prompt" extra then [] else [ "--prompt"; "a photo of a cat" ]
        run ([ "generate"; "--pipeline"; dir; "--width"; "64"; "--height"; "64"; "--steps"; "3"; "--threads"; "1"; "--out"; out ]
             @ prompt @ extra)
    Expect.equal code 0 ("generate succeeds: " + err)
    File.ReadAllBytes out

/// Posts `body` to the server, waits for the job and checks that its image has the pixels `generate` makes with `extra`.
let expectServedAsGenerated client dir (body: string) extra (message: string) =
    use r = post client "/v1/generations" body
    Expect.equal r.StatusCode HttpStatusCode.Accepted "accepted"
    let id = (json r).GetProperty("id").GetString()
    let final = pollUntil client 120.0 id isFinal
    Expect.equal (status final) "succeeded" (sprintf "succeeded: %O" final)
    use result = get client (sprintf "/v1/generations/%s/result" id)
    let served = Trident.Tests.Runtime.MediaChecks.decodeImage (result.Content.ReadAsByteArrayAsync().Result)
    let local = Trident.Tests.Runtime.MediaChecks.decodeImage (generate dir extra)
    Expect.equal served.Rgb local.Rgb message

/// A 96-pixel width and an unknown scheduler: one 400 naming both fields and what they accept.
let private expectBadSizeAndScheduler client (accepted: string) =
    use bad = post client "/v1/generations" """{"prompt":"x","width":96,"height":64,"scheduler":"pndm"}"""
    Expect.equal bad.StatusCode HttpStatusCode.BadRequest "a size the family cannot take, a scheduler it does not support"
    let errors = (json bad).GetProperty("errors")
    Expect.stringContains (errors.GetProperty("width").ToString()) "multiple of 64" "names the accepted sizes"
    Expect.stringContains (errors.GetProperty("scheduler").ToString()) ("accepted: " + accepted) "names the accepted schedulers"

let ``generate runs every era's export end to end, and the eras' signatures give the same image`` =
    testCase "generate runs every era's export end to end, and the eras' signatures give the same image" <| fun () ->
        // Same weights (seed 0) behind three signatures: int32 or int64 ids, float [batch], int64 [steps] or float []
        // timesteps. Fed correctly, all three compute the same image, byte for byte.
        let images = [ for era in eras -> generate (miniature era PredictionType.Epsilon) [ "--seed"; "5" ] ]
        let png = Trident.Tests.Runtime.MediaChecks.decodeImage images[0]
        Expect.equal (png.Width, png.Height) (64, 64) "a 64×64 image"
        Expect.isGreaterThan (png.Rgb |> Array.distinct |> Array.length) 16 "not a flat image"
        for other in images.Tail do Expect.equal other images[0] "every era gives the same bytes"
        let dir = miniature ExportEra.OptimumCurrent PredictionType.Epsilon
        Expect.equal (generate dir [ "--seed"; "5" ]) images[0] "same seed and settings: the same bytes"
        Expect.notEqual (generate dir [ "--seed"; "6" ]) images[0] "another seed: another image"
        Expect.notEqual (generate dir [ "--seed"; "5"; "--prompt"; "a dog" ]) images[0] "the prompt reaches the UNet"
        Expect.notEqual (generate dir [ "--seed"; "5"; "--guidance"; "1" ]) images[0] "guidance changes the image"
        let v = generate (miniature ExportEra.OptimumCurrent PredictionType.VPrediction) [ "--seed"; "5" ]
        Expect.notEqual v images[0] "v-prediction is sampled differently"
        // Every scheduler the family admits runs; each is deterministic, and they differ.
        let bySchedule =
            [ for name in [ "ddim"; "euler"; "euler-ancestral"; "dpm++-2m-karras" ] ->
                let a = generate dir [ "--seed"; "5"; "--scheduler"; name ]
                Expect.equal (generate dir [ "--seed"; "5"; "--scheduler"; name ]) a (name + ": same seed and settings, the same bytes")
                a ]
        Expect.equal bySchedule[0] images[0] "ddim is the scheduler config's (PNDM's stand-in)"
        Expect.equal (List.distinct bySchedule).Length 4 "the schedulers compute different images"
        let code, _, err = run [ "generate"; "--pipeline"; dir; "--prompt"; "x"; "--width"; "64"; "--height"; "64"; "--scheduler"; "lms"; "--out"; TinyFixture.tempPath "x.png" ]
        Expect.equal code 2 "an unknown scheduler is refused"
        Expect.stringContains err "--scheduler: 'lms' is not one of ddim, euler, euler-ancestral, dpm++-2m-karras" "naming the accepted ones"

let ``the HTTP API serves an export directory, and its images equal generate's`` =
    testCase "the HTTP API serves an export directory, and its images equal generate's" <| fun () ->
        let dir = miniature ExportEra.Optimum2023 PredictionType.Epsilon
        use factory = new TridentFactory([ "Trident:Pipeline", dir; "Trident:ProfileCache", TinyFixture.tempPath "profiles" ])
        let client = readyClient factory
        expectServedAsGenerated client dir """{"prompt":"a photo of a cat","width":64,"height":64,"steps":3,"seed":5}""" [ "--seed"; "5" ]
            "the server and generate compute the same pixels"
        expectServedAsGenerated client dir """{"prompt":"a photo of a cat","width":64,"height":64,"steps":3,"seed":5,"scheduler":"dpm++-2m-karras"}"""
            [ "--seed"; "5"; "--scheduler"; "dpm++-2m-karras" ] "the request's scheduler is the one that ran"
        // A prompt over CLIP's 77 tokens is truncated as diffusers does (start, 75 pieces, end); the status says so.
        let long = String.replicate 100 "cat "
        use r = post client "/v1/generations" (sprintf """{"prompt":"%s","width":64,"height":64,"steps":1,"seed":5}""" long)
        let prompt = (json r).GetProperty("id").GetString() |> fun id -> (pollUntil client 120.0 id isFinal).GetProperty("prompt")
        Expect.equal (prompt.GetProperty("tokens_total").GetInt32(), prompt.GetProperty("tokens_used").GetInt32(), prompt.GetProperty("truncated").GetBoolean())
            (100, 75, true) "100 tokens given, 75 kept"
        expectBadSizeAndScheduler client "ddim, euler, euler-ancestral, dpm++-2m-karras"

let ``a guidance value for a pipeline without guidance is a 400 naming guidance`` =
    testCase "a guidance value for a pipeline without guidance is a 400 naming guidance" <| fun () ->
        // The export with a trident-pipeline.json override that turns classifier-free guidance off.
        let dir = miniature ExportEra.OptimumCurrent PredictionType.Epsilon
        let r = PipelineDirectory.LoadManifest dir
        PipelineManifest(r.Name, r.Model, r.Kind, r.Stages, r.Tokenizer, r.Latents, r.Sampler, GuidanceSettings(false, 1.0), r.Size).Save dir
        use factory = new TridentFactory([ "Trident:Pipeline", dir; "Trident:ProfileCache", TinyFixture.tempPath "profiles" ])
        let client = readyClient factory
        use bad = post client "/v1/generations" """{"prompt":"x","width":64,"height":64,"guidance":7.5}"""
        Expect.equal bad.StatusCode HttpStatusCode.BadRequest "guidance on a model without guidance"
        Expect.stringContains ((json bad).GetProperty("errors").GetProperty("guidance").ToString()) "has no classifier-free guidance: omit guidance or send 1" "names the accepted value"
        use ok = post client "/v1/generations" """{"prompt":"x","width":64,"height":64,"steps":2,"guidance":1}"""
        Expect.equal ok.StatusCode HttpStatusCode.Accepted "guidance 1 is accepted"

// ---- SDXL ----------------------------------------------------------------------------------------------

let private sdxlEras = [ ExportEra.Optimum2023; ExportEra.OptimumCurrent ]

/// A fresh miniature SDXL export of `era` in its own temp folder.
let private sdxlMiniature era =
    let dir = TinyFixture.tempPath "sdxl-export"
    ExportMiniature.StableDiffusionXL(dir, era)
    dir

let ``SDXL exports of both Optimum eras are recognised: two encoders, text_embeds and time_ids`` =
    testCase "SDXL exports of both Optimum eras are recognised: two encoders, text_embeds and time_ids" <| fun () ->
        for era in sdxlEras do
            let dir = sdxlMiniature era
            let export = ExportDirectory.Recognise dir
            Expect.equal export.Family ExportFamily.StableDiffusionXL (sprintf "%O: family" era)
            let byName = export.Components |> Seq.map (fun c -> c.Component, c) |> Map.ofSeq
            let unet = byName["unet"]
            let timestep, sample = input unet "timestep", input unet "sample"
            match era with
            | ExportEra.Optimum2023 ->
                Expect.equal (timestep.ElementType, timestep.Declared()) (TensorElementType.Int64, "[steps]") "Optimum 1.x: int64 [steps] timestep"
                Expect.equal (sample.Declared()) "[batch_size, num_channels, height, width]" "Optimum 1.x axis names"
            | _ ->
                Expect.equal (timestep.ElementType, timestep.Declared()) (TensorElementType.Float, "[]") "Optimum today: float scalar timestep"
                Expect.equal (sample.Declared()) "[batch_size, 4, height, width]" "Optimum today: fixed channels"
            Expect.equal ((input unet "text_embeds").Declared(), (input unet "time_ids").Declared()) ("[batch_size, 24]", "[batch_size, 6]") "SDXL's added conditioning"
            Expect.sequenceEqual (byName["text_encoder_2"].Outputs |> Seq.map (fun o -> o.Name))
                [ "text_embeds"; "last_hidden_state"; "hidden_states.0"; "hidden_states.1"; "hidden_states.2" ] "CLIPTextWithProjection outputs in Optimum's order"
            let m = export.Manifest
            Expect.equal m.Stages.TextEncoder.LastHiddenState "hidden_states.1" "the first encoder's penultimate layer"
            let second = m.Stages.TextEncoder2
            Expect.equal (second.File, second.LastHiddenState, second.Pooled) ("text_encoder_2/model.onnx", "hidden_states.1", "text_embeds") "the second encoder's penultimate layer and pooled output"
            Expect.equal (m.Stages.Denoiser.TextEmbeds, m.Stages.Denoiser.TimeIds) ("text_embeds", "time_ids") "the UNet's added inputs"
            Expect.equal (m.Latents.ScalingFactor, m.Guidance.DefaultScale, m.ZerosForEmptyNegative) (0.13025, 5.0, true) "SDXL's configs"
            match m.Tokenizer2, m.Sampler with
            | (:? ClipBpeTokenizerSettings as t), (:? DdimSettings as d) ->
                Expect.equal t.PadToken "!" "tokenizer_2 pads with '!'"
                Expect.equal d.DefaultScheduler "euler" "EulerDiscreteScheduler runs as euler"
            | other -> failtestf "unexpected %O" other
            Expect.sequenceEqual export.Schedulers [ "euler"; "ddim"; "euler-ancestral"; "dpm++-2m-karras" ] "the config's scheduler first"
            let code, out, err = run [ "inspect"; dir ]
            Expect.equal code 0 ("inspect succeeds: " + err)
            Expect.stringContains out "family        sdxl (model_index.json: StableDiffusionXLPipeline)" "the family"
            Expect.stringContains out "encoder_hidden_states = hidden_states.1 of text_encoder/model.onnx ‖ hidden_states.1 of text_encoder_2/model.onnx" "how the states are joined"
            Expect.stringContains out "time_ids = (height, width, 0, 0, height, width) per request" "the micro-conditioning"
            let e = expectThrows<ManifestException> "ManifestException" (fun () -> m.Save(TinyFixture.tempPath "sdxl-manifest"))
            Expect.stringContains e.Message "cannot be written to trident-pipeline.json" "SDXL's conditioning is export-only"

let ``a broken SDXL export lists every problem of its second encoder and tokenizer`` =
    testCase "a broken SDXL export lists every problem of its second encoder and tokenizer" <| fun () ->
        let dir = sdxlMiniature ExportEra.OptimumCurrent
        File.Delete(Path.Combine(dir, "tokenizer_2", "merges.txt"))
        writeFloatIdsEncoder (Path.Combine(dir, "text_encoder_2", "model.onnx"))
        let e = expectThrows<ManifestException> "ManifestException" (fun () -> ExportDirectory.Recognise dir |> ignore)
        for expected in
            [ "tokenizer_2/merges.txt: missing file"
              "text_encoder_2/model.onnx:input_ids: expected int32 or int64 [batch, sequence], found float32 [batch_size, sequence_length]"
              "text_encoder_2/model.onnx:text_embeds: missing output"
              "text_encoder_2/model.onnx:hidden_states: missing outputs hidden_states.0 … hidden_states.N" ] do
            Expect.stringContains e.Message expected "every problem is listed"

let row (t: Tensor) (r: int) =
    let per = int (t.Length / t.Shape[0])
    t.AsFloat().AsSpan(r * per, per).ToArray()

let ``SDXL encode: both encoders' penultimate states side by side, pooled from the second, zeros for an empty negative prompt`` =
    testCase "SDXL encode: both encoders' penultimate states side by side, pooled from the second, zeros for an empty negative prompt" <| fun () ->
        let dir = sdxlMiniature ExportEra.OptimumCurrent
        use p = Trident.Runtime.Execution.LoadedPipeline.Open dir
        let prompt = "a photo of a cat"
        let e = Trident.Runtime.Execution.EncodeExecutor(p).Encode([| prompt |], [| "" |])
        Expect.sequenceEqual e.Tensor.Shape [ 2L; 77L; 80L ] "[cond; uncond] × 77 tokens × (32 + 48)"
        Expect.sequenceEqual e.Pooled.Shape [ 2L; 24L ] "text_embeds of both rows"
        // Each encoder run alone on its own tokenizer's ids.
        let alone (file: string) (tokenizer: Trident.Runtime.Pipelines.Tokenizers.ITokenizer) =
            use s = Session.Load(Path.Combine(dir, file))
            let outputs = s.Run(ReadOnlySpan [| Tensor.FromInt64(tokenizer.Encode(prompt).InputIds, 1L, 77L) |])
            let get name = outputs[s.OutputIndex name].Tensor.AsFloat()
            get "hidden_states.1", (if file.Contains "_2" then get "text_embeds" else [||])
        let h1, _ = alone "text_encoder/model.onnx" p.Tokenizer
        let h2, pooled = alone "text_encoder_2/model.onnx" p.Tokenizer2
        // A batch of two rows and a batch of one may round differently in the last bits (ONNX Runtime's kernels).
        let close (a: float32[]) (b: float32[]) message =
            Expect.equal a.Length b.Length message
            Array.iteri2 (fun i (x: float32) (y: float32) -> Expect.isLessThan (abs (x - y)) 1e-5f (sprintf "%s (element %d)" message i)) a b
        let joined = row e.Tensor 0
        for t in 0 .. 76 do
            close (joined[t * 80 .. t * 80 + 31]) (h1[t * 32 .. t * 32 + 31]) "columns 0–31: text_encoder's hidden_states.1"
            close (joined[t * 80 + 32 .. t * 80 + 79]) (h2[t * 48 .. t * 48 + 47]) "columns 32–79: text_encoder_2's hidden_states.1"
        close (row e.Pooled 0) pooled "the pooled row is text_encoder_2's text_embeds"
        Expect.isTrue (row e.Tensor 1 |> Array.forall ((=) 0f) && row e.Pooled 1 |> Array.forall ((=) 0f)) "force_zeros_for_empty_prompt: an empty negative prompt is zeros"
        let n = Trident.Runtime.Execution.EncodeExecutor(p).Encode([| prompt |], [| "a dog" |])
        Expect.isFalse (row n.Tensor 1 |> Array.forall ((=) 0f)) "a negative prompt is encoded"

let ``every input of the SDXL miniature's UNet and encoders changes every output`` =
    testCase "every input of the SDXL miniature's UNet and encoders changes every output" <| fun () ->
        let dir = sdxlMiniature ExportEra.OptimumCurrent
        let noise seed (shape: int64 list) =
            Tensor.FromFloat(Trident.Runtime.Pipelines.Samplers.GaussianNoise.Sample(seed, int (List.reduce (*) shape)), Array.ofList shape)
        use unet = Session.Load(Path.Combine(dir, "unet", "model.onnx"))
        let baseline : Tensor[] =
            [| noise 1UL [ 1L; 4L; 8L; 8L ]; Tensor.FromFloat([| 500f |]); noise 2UL [ 1L; 77L; 80L ]; noise 3UL [ 1L; 24L ]
               Tensor.FromFloat([| 64f; 64f; 0f; 0f; 64f; 64f |], 1L, 6L) |]
        let names = [| "sample"; "timestep"; "encoder_hidden_states"; "text_embeds"; "time_ids" |]
        let runUnet (inputs: Tensor[]) =
            let ordered = Array.init inputs.Length (fun i -> inputs[Array.IndexOf(names, unet.Inputs[i].Name)])
            (unet.Run(ReadOnlySpan ordered)[0]).Tensor.AsFloat()
        let reference = runUnet baseline
        let changed : Tensor[] =
            [| noise 4UL [ 1L; 4L; 8L; 8L ]; Tensor.FromFloat([| 400f |]); noise 5UL [ 1L; 77L; 80L ]; noise 6UL [ 1L; 24L ]
               Tensor.FromFloat([| 128f; 64f; 0f; 0f; 128f; 64f |], 1L, 6L) |]
        for i in 0 .. names.Length - 1 do
            let inputs = Array.copy baseline
            inputs[i] <- changed[i]
            Expect.notEqual (runUnet inputs) reference (sprintf "the UNet's out_sample depends on %s" names[i])
        for file in [ "text_encoder/model.onnx"; "text_encoder_2/model.onnx" ] do
            use s = Session.Load(Path.Combine(dir, file))
            let ids (last: int64) = Tensor.FromInt64(Array.init 77 (fun t -> if t = 3 then last else int64 t), 1L, 77L)
            let a, b = s.Run(ReadOnlySpan [| ids 3L |]), s.Run(ReadOnlySpan [| ids 40L |])
            for o in 0 .. s.Outputs.Count - 1 do
                Expect.notEqual (a[o].Tensor.AsFloat()) (b[o].Tensor.AsFloat()) (sprintf "%s: %s depends on input_ids" file s.Outputs[o].Name)

let ``the SDXL UNet's text_embeds and time_ids reach it in the device-resident loop as in the host loop`` =
    testCase "the SDXL UNet's text_embeds and time_ids reach it in the device-resident loop as in the host loop" <| fun () ->
        // DDIM is the linear sampler the device loop (I/O binding, run here on the CPU provider) takes.
        use p = Trident.Runtime.Execution.LoadedPipeline.Open(sdxlMiniature ExportEra.OptimumCurrent, ExecutionProvider.Cpu(1))
        let emb = Trident.Runtime.Execution.EncodeExecutor(p).Encode([| "a photo of a cat" |], [| "" |], 1)
        let latents loop guidance =
            let settings = Trident.Runtime.Execution.DiffuseSettings(64, 64, 1, 3, [| 7UL |], guidance, 1, "ddim")
            Trident.Runtime.Execution.DiffuseExecutor(p, loop).Diffuse(emb, settings).Tensor.AsFloat()
        for guidance in [ 5.0; 1.0 ] do
            let host = latents Trident.Runtime.Execution.DiffuseLoop.Host guidance
            let device = latents Trident.Runtime.Execution.DiffuseLoop.Device guidance
            let diff = Array.map2 (fun (a: float32) b -> abs (a - b)) host device |> Array.max
            Expect.isLessThan diff 1e-4f (sprintf "guidance %g: max difference" guidance)

let ``generate runs SDXL exports of both eras end to end, deterministically`` =
    testCase "generate runs SDXL exports of both eras end to end, deterministically" <| fun () ->
        // Same weights behind Optimum 1.x's and today's signatures (int64 [steps] or float [] timestep): with DDIM's
        // integer timesteps, the same image. (Euler's σ-interpolated timesteps are fractional: an int64 timestep
        // input gets them rounded, as Optimum's ORT pipeline casts them, so the eras differ there.)
        let byEra = [ for era in sdxlEras -> generate (sdxlMiniature era) [ "--seed"; "5"; "--scheduler"; "ddim" ] ]
        Expect.equal byEra[1] byEra[0] "both eras give the same bytes"
        let dir = sdxlMiniature ExportEra.OptimumCurrent
        let image = generate dir [ "--seed"; "5" ]
        let png = Trident.Tests.Runtime.MediaChecks.decodeImage image
        Expect.equal (png.Width, png.Height) (64, 64) "a 64×64 image"
        Expect.isGreaterThan (png.Rgb |> Array.distinct |> Array.length) 16 "not a flat image"
        Expect.equal (generate dir [ "--seed"; "5" ]) image "same seed and settings: the same bytes"
        Expect.notEqual (generate dir [ "--seed"; "6" ]) image "another seed: another image"
        Expect.notEqual (generate dir [ "--seed"; "5"; "--prompt"; "a dog" ]) image "the prompt reaches the UNet"
        Expect.notEqual (generate dir [ "--seed"; "5"; "--negative-prompt"; "a dog" ]) image "a negative prompt replaces the zeros"
        Expect.notEqual (generate dir [ "--seed"; "5"; "--guidance"; "1" ]) image "guidance changes the image"
        Expect.equal (generate dir [ "--seed"; "5"; "--scheduler"; "euler" ]) image "euler is the scheduler config's"
        Expect.notEqual byEra[1] image "ddim is another scheduler"
        let out = TinyFixture.tempPath "wide.png"
        let code, _, err = run [ "generate"; "--pipeline"; dir; "--prompt"; "a cat"; "--width"; "128"; "--height"; "64"; "--steps"; "2"; "--threads"; "1"; "--out"; out ]
        Expect.equal code 0 ("a 128×64 image: " + err)
        let wide = Trident.Tests.Runtime.MediaChecks.decodeImage (File.ReadAllBytes out)
        Expect.equal (wide.Width, wide.Height) (128, 64) "time_ids follow the requested size"
        let code, _, err = run [ "bench"; "runtime"; "--pipeline"; dir; "--width"; "64"; "--height"; "64"; "--steps"; "1" ]
        Expect.equal code 2 "bench runtime refuses SDXL"
        Expect.stringContains err "does not replay" "saying why"

let ``the HTTP API serves an SDXL export, and its images equal generate's`` =
    testCase "the HTTP API serves an SDXL export, and its images equal generate's" <| fun () ->
        let dir = sdxlMiniature ExportEra.Optimum2023
        use factory = new TridentFactory([ "Trident:Pipeline", dir; "Trident:ProfileCache", TinyFixture.tempPath "profiles" ])
        let client = readyClient factory
        expectServedAsGenerated client dir """{"prompt":"a photo of a cat","width":64,"height":64,"steps":3,"seed":5}""" [ "--seed"; "5" ]
            "the server and generate compute the same pixels"
        expectBadSizeAndScheduler client "euler, ddim, euler-ancestral, dpm++-2m-karras"

// ---- Flux ----------------------------------------------------------------------------------------------

/// The id declarations of the Flux exports: Optimum with diffusers ≥ 0.31 (int64 [n, 3]), before (int64 [batch, n, 3]),
/// and float ids as other exporters declare them.
let private fluxIds = [ FluxIds.Current; FluxIds.Batched3D; FluxIds(false, TensorElementType.Float) ]

/// A fresh miniature Flux export in its own temp folder.
let private fluxMiniature variant ids =
    let dir = TinyFixture.tempPath "flux-export"
    ExportMiniature.Flux(dir, variant, ids)
    dir

let ``Flux exports are recognised: schnell and dev, both id layouts, CLIP pooled + T5, packed latents`` =
    testCase "Flux exports are recognised: schnell and dev, both id layouts, CLIP pooled + T5, packed latents" <| fun () ->
        for variant in [ FluxVariant.Schnell; FluxVariant.Dev ] do
            for ids in fluxIds do
                let what = sprintf "%A %A" variant ids
                let r = ExportDirectory.Recognise(fluxMiniature variant ids)
                let m = r.Manifest
                let dev = variant = FluxVariant.Dev
                Expect.equal r.Family ExportFamily.Flux what
                let transformer = r.Components |> Seq.find (fun c -> c.Component = "transformer")
                let imgIds = input transformer "img_ids"
                Expect.equal (imgIds.ElementType, imgIds.Shape.Count) (ids.ElementType, (if ids.Batched then 3 else 2)) (what + ": img_ids as declared")
                Expect.equal (m.Stages.Conditioning) TextConditioning.PooledFirstSequenceSecond (what + ": CLIP pooled, T5 sequence")
                Expect.equal m.Stages.TextEncoder.Pooled "pooler_output" (what + ": CLIP's pooled output")
                Expect.equal m.Stages.Denoiser.TextEmbeds "pooled_projections" what
                Expect.equal (m.Stages.Denoiser.ImgIds, m.Stages.Denoiser.TxtIds) ("img_ids", "txt_ids") what
                Expect.equal m.Stages.Denoiser.Guidance (if dev then "guidance" else null) (what + ": guidance input for dev only")
                Expect.equal m.Guidance (if dev then GuidanceSettings(false, 3.5, true) else GuidanceSettings(false, 1.0)) (what + ": no classifier-free pass")
                Expect.equal m.Latents (LatentSettings(16, 8, 1, 0.3611, 0.1159, 2)) (what + ": 16 channels, packed 2×2, Flux's VAE normalisation")
                Expect.equal (m.Tokenizer2 :?> T5TokenizerSettings).MaxLength (if dev then 512 else 256) (what + ": max_sequence_length")
                // schnell: shift 1, static; dev: use_dynamic_shifting. The transformer takes σ itself (scale 1).
                let expected = if dev then FlowEulerSettings(1, 28, 3.0, DynamicShift.Flux) else FlowEulerSettings(1, 4, 1.0)
                Expect.equal m.Sampler (expected :> SamplerSettings) (what + ": the scheduler config")
                Expect.sequenceEqual (m.LatentShape(2, 64, 32, 1)) [| 2L; 8L; 64L |] (what + ": [batch, (h/16)(w/16), 64]")
                Expect.isTrue m.ExportOnly (what + ": served from the directory, not a trident-pipeline.json")
        let code, out, err = run [ "inspect"; fluxMiniature FluxVariant.Dev FluxIds.Batched3D ]
        Expect.equal code 0 ("inspect: " + err)
        for part in [ "flux (model_index.json: FluxPipeline)"; "img_ids: int64 [batch_size, packed_height_width, 3]"; "guidance"; "T5 SentencePiece"
                      "resolution-dependent shift"; "latents packed 2×2" ] do
            Expect.stringContains out part (sprintf "inspect explains %s" part)

let ``a broken Flux export lists every problem of its transformer and T5 files`` =
    testCase "a broken Flux export lists every problem of its transformer and T5 files" <| fun () ->
        let dir = fluxMiniature FluxVariant.Schnell FluxIds.Current
        File.Delete(Path.Combine(dir, "tokenizer_2", "spiece.model"))
        File.Delete(Path.Combine(dir, "tokenizer_2", "tokenizer.json"))
        File.Delete(Path.Combine(dir, "text_encoder_2", "model.onnx"))
        // A transformer whose img_ids are int32 and that lacks txt_ids (the other inputs declared, unused).
        let g = GraphBuilder("transformer")
        let f32 = TensorElementType.Float
        let sym = Dim.Symbolic
        let h = g.Input("hidden_states", f32, sym "batch_size", sym "packed_height_width", Dim.Fixed 64L)
        g.Input("encoder_hidden_states", f32, sym "batch_size", sym "sequence_length", Dim.Fixed 24L) |> ignore
        g.Input("pooled_projections", f32, sym "batch_size", Dim.Fixed 32L) |> ignore
        g.Input("timestep", f32, sym "step") |> ignore
        g.Input("img_ids", TensorElementType.Int32, sym "packed_height_width", Dim.Fixed 3L) |> ignore
        g.Output(g.Identity h, "out_hidden_states", f32, sym "batch_size", sym "packed_height_width", Dim.Fixed 64L) |> ignore
        g.Save(Path.Combine(dir, "transformer", "model.onnx"))
        let e = expectThrows<ManifestException> "ManifestException" (fun () -> ExportDirectory.Recognise dir |> ignore)
        for part in [ "tokenizer_2/: missing file: neither spiece.model nor tokenizer.json"; "text_encoder_2/model.onnx: missing file"
                      "transformer/model.onnx:img_ids: expected int64 or float"; "transformer/model.onnx:txt_ids: missing input" ] do
            Expect.stringContains e.Message part (sprintf "names %s" part)

let ``Flux latents pack into 2x2 patch tokens as diffusers' _pack_latents does, and unpack back`` =
    testCase "Flux latents pack into 2x2 patch tokens as diffusers' _pack_latents does, and unpack back" <| fun () ->
        // [1, 2, 2, 4]: channel 0 holds 0…7, channel 1 holds 8…15, row-major. Token 0 is the left 2×2 patch
        // (rows 0–1, columns 0–1) of each channel in turn; token 1 the right one.
        let latents = Array.init 16 float32
        let packed = PackedLatents.Pack(ReadOnlySpan latents, 1, 2, 2, 4, 2)
        Expect.sequenceEqual packed [| 0f; 1f; 4f; 5f; 8f; 9f; 12f; 13f; 2f; 3f; 6f; 7f; 10f; 11f; 14f; 15f |] "feature c·4 + dy·2 + dx of token i·(W/2) + j"
        Expect.sequenceEqual (PackedLatents.Unpack(ReadOnlySpan packed, 1, 2, 2, 4, 2)) latents "unpack inverts pack"
        Expect.throwsT<ArgumentException> (fun () -> PackedLatents.Pack(ReadOnlySpan latents, 1, 2, 2, 4, 3) |> ignore) "sizes not divisible by the patch"

let ``every input of the Flux miniature's transformer and encoders changes every output`` =
    testCase "every input of the Flux miniature's transformer and encoders changes every output" <| fun () ->
        for ids in [ FluxIds.Current; FluxIds.Batched3D ] do
            let dir = fluxMiniature FluxVariant.Dev ids
            let noise seed (shape: int64 list) =
                Tensor.FromFloat(Trident.Runtime.Pipelines.Samplers.GaussianNoise.Sample(seed, int (List.reduce (*) shape)), Array.ofList shape)
            let idShape n = if ids.Batched then [| 1L; n; 3L |] else [| n; 3L |]
            let positions (values: int64[]) n = Tensor.FromInt64(values, idShape n)
            use t = Session.Load(Path.Combine(dir, "transformer", "model.onnx"))
            let names = [| "hidden_states"; "encoder_hidden_states"; "pooled_projections"; "timestep"; "img_ids"; "txt_ids"; "guidance" |]
            let baseline : Tensor[] =
                [| noise 1UL [ 1L; 4L; 64L ]; noise 2UL [ 1L; 5L; 24L ]; noise 3UL [ 1L; 32L ]; Tensor.FromFloat([| 0.5f |], 1L)
                   positions [| 0L; 0L; 0L; 0L; 0L; 1L; 0L; 1L; 0L; 0L; 1L; 1L |] 4L; positions (Array.zeroCreate 15) 5L; Tensor.FromFloat([| 3.5f |], 1L) |]
            let changed : Tensor[] =
                [| noise 4UL [ 1L; 4L; 64L ]; noise 5UL [ 1L; 5L; 24L ]; noise 6UL [ 1L; 32L ]; Tensor.FromFloat([| 0.25f |], 1L)
                   positions [| 0L; 0L; 0L; 0L; 1L; 0L; 0L; 0L; 1L; 0L; 1L; 1L |] 4L; positions (Array.init 15 (fun i -> if i % 3 = 1 then 1L else 0L)) 5L
                   Tensor.FromFloat([| 1.5f |], 1L) |]
            let runT (inputs: Tensor[]) =
                let ordered = Array.init inputs.Length (fun i -> inputs[Array.IndexOf(names, t.Inputs[i].Name)])
                (t.Run(ReadOnlySpan ordered)[0]).Tensor.AsFloat()
            let reference = runT baseline
            for i in 0 .. names.Length - 1 do
                let inputs = Array.copy baseline
                inputs[i] <- changed[i]
                let out = runT inputs
                // every token's output changes (not only the tokens whose input changed)
                for token in 0 .. 3 do
                    Expect.notEqual out[token * 64 .. token * 64 + 63] reference[token * 64 .. token * 64 + 63] (sprintf "%A: token %d of out_hidden_states depends on %s" ids token names[i])
        let dir = fluxMiniature FluxVariant.Schnell FluxIds.Current
        for file, length in [ "text_encoder/model.onnx", 77; "text_encoder_2/model.onnx", 256 ] do
            use s = Session.Load(Path.Combine(dir, file))
            let ids (last: int64) = Tensor.FromInt64(Array.init length (fun t -> if t = 3 then last else int64 (t % 20)), 1L, int64 length)
            let a, b = s.Run(ReadOnlySpan [| ids 3L |]), s.Run(ReadOnlySpan [| ids 40L |])
            for o in 0 .. s.Outputs.Count - 1 do
                let x, y = a[o].Tensor.AsFloat(), b[o].Tensor.AsFloat()
                Expect.notEqual x y (sprintf "%s: %s depends on input_ids" file s.Outputs[o].Name)
                // T5's encoder attends both ways: its first state depends on a later token (CLIP's is causal).
                if file.StartsWith "text_encoder_2" then
                    Expect.notEqual x[0 .. 7] y[0 .. 7] (sprintf "%s: the first state of %s depends on token 3" file s.Outputs[o].Name)

let ``Flux encode: the sequence is T5's and the pooled embedding CLIP's`` =
    testCase "Flux encode: the sequence is T5's and the pooled embedding CLIP's" <| fun () ->
        let dir = fluxMiniature FluxVariant.Schnell FluxIds.Current
        use p = Trident.Runtime.Execution.LoadedPipeline.Open(dir, ExecutionProvider.Cpu(1))
        let prompt = "a photo of a cat"
        let e = Trident.Runtime.Execution.EncodeExecutor(p).Encode([| prompt |])
        Expect.sequenceEqual e.Tensor.Shape [| 1L; 256L; 24L |] "T5's [batch, 256, width]"
        Expect.sequenceEqual e.Pooled.Shape [| 1L; 32L |] "CLIP's pooled [batch, width]"
        let encodeAlone (file: string) (tokenizer: Trident.Runtime.Pipelines.Tokenizers.ITokenizer) output =
            use s = Session.Load(Path.Combine(dir, file))
            let ids = Array.zeroCreate<int64> tokenizer.MaxLength
            tokenizer.EncodeInto(prompt, Span ids, Span(Array.zeroCreate<int64> tokenizer.MaxLength)) |> ignore
            (s.Run(ReadOnlySpan [| Tensor.FromInt64(ids, 1L, int64 ids.Length) |])[s.OutputIndex output]).Tensor.AsFloat()
        Expect.sequenceEqual (e.Tensor.AsFloat()) (encodeAlone "text_encoder_2/model.onnx" p.Tokenizer2 "last_hidden_state") "T5's last_hidden_state"
        Expect.sequenceEqual (e.Pooled.AsFloat()) (encodeAlone "text_encoder/model.onnx" p.Tokenizer "pooler_output") "CLIP's pooler_output"

let ``Flux's ids and guidance reach the transformer in the device-resident loop as in the host loop`` =
    testCase "Flux's ids and guidance reach the transformer in the device-resident loop as in the host loop" <| fun () ->
        for ids in [ FluxIds.Current; FluxIds.Batched3D ] do
            use p = Trident.Runtime.Execution.LoadedPipeline.Open(fluxMiniature FluxVariant.Dev ids, ExecutionProvider.Cpu(1))
            let emb = Trident.Runtime.Execution.EncodeExecutor(p).Encode([| "a photo of a cat"; "a dog" |])
            let latents loop =
                let settings = Trident.Runtime.Execution.DiffuseSettings(64, 32, 1, 3, [| 7UL; 8UL |], 3.5, 1)
                Trident.Runtime.Execution.DiffuseExecutor(p, loop).Diffuse(emb, settings).Tensor
            let host = latents Trident.Runtime.Execution.DiffuseLoop.Host
            let device = latents Trident.Runtime.Execution.DiffuseLoop.Device
            Expect.sequenceEqual host.Shape [| 2L; 16L; 4L; 8L |] (sprintf "%A: unpacked to [batch, 16, h/8, w/8] for the decoder" ids)
            let diff = Array.map2 (fun (a: float32) b -> abs (a - b)) (host.AsFloat()) (device.AsFloat()) |> Array.max
            Expect.isLessThan diff 1e-4f (sprintf "%A: max difference" ids)

let ``Flux dev's diffuse stage equals two hand-fed transformer calls at the resolution-dependent shift`` =
    testCase "Flux dev's diffuse stage equals two hand-fed transformer calls at the resolution-dependent shift" <| fun () ->
        // 64×64: 4×4 packed tokens of 64 features, L = 16, μ = 0.5 + (16 − 256)·0.65/3840 = 0.459375 (dev's
        // use_dynamic_shifting). Two steps: σ = 1, then e^μ·½ / (e^μ·½ + ½) = logistic(μ), then 0; the transformer
        // takes σ itself (not ×1000), img_ids (0, row, column), txt_ids zeros, guidance 3.5.
        let dir = fluxMiniature FluxVariant.Dev FluxIds.Current
        use p = Trident.Runtime.Execution.LoadedPipeline.Open(dir, ExecutionProvider.Cpu(1))
        let emb = Trident.Runtime.Execution.EncodeExecutor(p).Encode([| "a photo of a cat" |])
        let settings = Trident.Runtime.Execution.DiffuseSettings(64, 64, 1, 2, [| 9UL |], 3.5, 1)
        let served = Trident.Runtime.Execution.DiffuseExecutor(p, Trident.Runtime.Execution.DiffuseLoop.Host).Diffuse(emb, settings).Tensor
        use t = Session.Load(Path.Combine(dir, "transformer", "model.onnx"))
        let imgIds = Array.init 48 (fun k -> match k % 3 with | 1 -> int64 (k / 3 / 4) | 2 -> int64 (k / 3 % 4) | _ -> 0L)
        let handFed mu =
            let sampler = Trident.Runtime.Pipelines.Samplers.FlowEulerSampler.WithMu(1, mu)
            let timesteps = sampler.Timesteps 2
            let x = Trident.Runtime.Pipelines.Samplers.GaussianNoise.Sample(9UL, 16 * 64)
            for step in 0 .. 1 do
                let byName =
                    dict [ "hidden_states", Tensor.FromFloat(Array.copy x, 1L, 16L, 64L); "encoder_hidden_states", emb.Tensor
                           "pooled_projections", emb.Pooled; "timestep", Tensor.FromFloat([| timesteps[step] |], 1L)
                           "img_ids", Tensor.FromInt64(imgIds, 16L, 3L); "txt_ids", Tensor.FromInt64(Array.zeroCreate 768, 256L, 3L)
                           "guidance", Tensor.FromFloat([| 3.5f |], 1L) ]
                let inputs = Array.init t.Inputs.Count (fun i -> byName[t.Inputs[i].Name])
                let v = (t.Run(ReadOnlySpan inputs)[0]).Tensor.AsFloat()
                sampler.Step(Span x, ReadOnlySpan v, step, 2)
            timesteps, PackedLatents.Unpack(ReadOnlySpan x, 1, 16, 8, 8, 2)
        let timesteps, expected = handFed 0.459375
        Expect.equal timesteps[0] 1.0f "the first timestep is σ = 1"
        Expect.floatClose Accuracy.high (float timesteps[1]) (1.0 / (1.0 + exp -0.459375)) "the second is logistic(μ)"
        Expect.sequenceEqual served.Shape [| 1L; 16L; 8L; 8L |] "unpacked latents"
        let maxDiff (other: float32[]) = Array.map2 (fun (a: float32) b -> abs (a - b)) (served.AsFloat()) other |> Array.max
        // The pipeline's sessions and this one may fuse differently: float rounding, far below a wiring mistake.
        Expect.isLessThan (maxDiff expected) 1e-3f "the diffuse stage's latents are the hand-fed run's"
        Expect.isGreaterThan (maxDiff (snd (handFed 0.0))) 1e-2f "control: the unshifted schedule gives other latents"

let ``generate runs Flux schnell and dev end to end; every id layout gives the same image`` =
    testCase "generate runs Flux schnell and dev end to end; every id layout gives the same image" <| fun () ->
        // Same weights behind int64 [n, 3], int64 [batch, n, 3] and float [n, 3] ids: the same image, byte for byte.
        for variant in [ FluxVariant.Schnell; FluxVariant.Dev ] do
            let byIds = [ for ids in fluxIds -> generate (fluxMiniature variant ids) [ "--seed"; "5" ] ]
            Expect.equal byIds[1] byIds[0] (sprintf "%A: batched ids give the same bytes" variant)
            Expect.equal byIds[2] byIds[0] (sprintf "%A: float ids give the same bytes" variant)
            let dir = fluxMiniature variant FluxIds.Current
            let image = byIds[0]
            let png = Trident.Tests.Runtime.MediaChecks.decodeImage image
            Expect.equal (png.Width, png.Height) (64, 64) "a 64×64 image"
            Expect.isGreaterThan (png.Rgb |> Array.distinct |> Array.length) 16 "not a flat image"
            Expect.equal (generate dir [ "--seed"; "5" ]) image "same seed and settings: the same bytes"
            Expect.notEqual (generate dir [ "--seed"; "6" ]) image "another seed: another image"
            Expect.notEqual (generate dir [ "--seed"; "5"; "--prompt"; "a dog" ]) image "the prompt reaches the transformer"
            let out = TinyFixture.tempPath "negative.png"
            let code, _, err = run [ "generate"; "--pipeline"; dir; "--prompt"; "a cat"; "--negative-prompt"; "a dog"; "--width"; "64"; "--height"; "64"; "--steps"; "2"; "--out"; out ]
            Expect.equal code 2 (sprintf "%A: no negative prompt without classifier-free guidance" variant)
            Expect.stringContains err "negative" "names the negative prompt"
        let dev = fluxMiniature FluxVariant.Dev FluxIds.Current
        Expect.notEqual (generate dev [ "--seed"; "5"; "--guidance"; "1.5" ]) (generate dev [ "--seed"; "5" ]) "dev: the embedded guidance reaches the transformer"
        let schnell = fluxMiniature FluxVariant.Schnell FluxIds.Current
        let out = TinyFixture.tempPath "guided.png"
        let code, _, err = run [ "generate"; "--pipeline"; schnell; "--prompt"; "a cat"; "--guidance"; "3.5"; "--width"; "64"; "--height"; "64"; "--steps"; "2"; "--out"; out ]
        Expect.equal code 2 "schnell takes no guidance scale"
        Expect.stringContains err "guidance" "names guidance"
        let code, _, err = run [ "generate"; "--pipeline"; schnell; "--prompt"; "a cat"; "--width"; "128"; "--height"; "48"; "--steps"; "2"; "--out"; out ]
        Expect.equal code 0 ("a 128×48 image: " + err)
        let wide = Trident.Tests.Runtime.MediaChecks.decodeImage (File.ReadAllBytes out)
        Expect.equal (wide.Width, wide.Height) (128, 48) "img_ids and the packing follow the requested size"

let ``the HTTP API serves Flux exports, byte-equal to generate, and names bad sizes, schedulers and guidance`` =
    testCase "the HTTP API serves Flux exports, byte-equal to generate, and names bad sizes, schedulers and guidance" <| fun () ->
        let dev = fluxMiniature FluxVariant.Dev FluxIds.Batched3D
        use factory = new TridentFactory([ "Trident:Pipeline", dev; "Trident:ProfileCache", TinyFixture.tempPath "profiles" ])
        let client = readyClient factory
        expectServedAsGenerated client dev """{"prompt":"a photo of a cat","width":64,"height":64,"steps":3,"seed":5,"guidance":2.5}""" [ "--seed"; "5"; "--guidance"; "2.5" ]
            "the server and generate compute the same pixels"
        use bad = post client "/v1/generations" """{"prompt":"x","width":72,"height":64,"scheduler":"euler"}"""
        Expect.equal bad.StatusCode HttpStatusCode.BadRequest "a size not divisible by 16, a scheduler Flux does not run"
        let errors = (json bad).GetProperty("errors")
        Expect.stringContains (errors.GetProperty("width").ToString()) "multiple of 16" "names the size"
        Expect.stringContains (errors.GetProperty("scheduler").ToString()) "accepted: flow-euler" "names the accepted scheduler"
        let schnell = fluxMiniature FluxVariant.Schnell FluxIds.Current
        use factory2 = new TridentFactory([ "Trident:Pipeline", schnell; "Trident:ProfileCache", TinyFixture.tempPath "profiles" ])
        let client2 = readyClient factory2
        use guided = post client2 "/v1/generations" """{"prompt":"x","width":64,"height":64,"guidance":3.5}"""
        Expect.equal guided.StatusCode HttpStatusCode.BadRequest "a guidance scale for schnell"
        Expect.stringContains ((json guided).GetProperty("errors").GetProperty("guidance").ToString()) "omit guidance or send 1" "names the field and the accepted value"
        expectServedAsGenerated client2 schnell """{"prompt":"a photo of a cat","width":64,"height":64,"steps":3,"seed":5}""" [ "--seed"; "5" ]
            "schnell: the server and generate compute the same pixels"

[<Tests>]
let fluxUnitTests =
    testList "unit" [ testList "FluxExportTests" [
        ``Flux exports are recognised: schnell and dev, both id layouts, CLIP pooled + T5, packed latents``
        ``a broken Flux export lists every problem of its transformer and T5 files``
        ``Flux latents pack into 2x2 patch tokens as diffusers' _pack_latents does, and unpack back``
        ``every input of the Flux miniature's transformer and encoders changes every output``
        ``Flux encode: the sequence is T5's and the pooled embedding CLIP's``
        ``Flux's ids and guidance reach the transformer in the device-resident loop as in the host loop``
        ``Flux dev's diffuse stage equals two hand-fed transformer calls at the resolution-dependent shift``
    ] |> testSequencedGroup "ExportTests" ]

[<Tests>]
let fluxIntegrationTests =
    testList "integration" [ testList "FluxExportTests" [
        ``generate runs Flux schnell and dev end to end; every id layout gives the same image``
        ``the HTTP API serves Flux exports, byte-equal to generate, and names bad sizes, schedulers and guidance``
    ] |> testSequenced ]

[<Tests>]
let unitTests =
    testList "unit" [ testList "ExportTests" [
        ``each exporter era's signatures are read from the models, not assumed``
        ``a broken export gets one error listing every missing file, unknown component and mismatched input``
        ``the family comes from model_index.json and the signatures, which must agree``
        ``trident-pipeline.json in an export directory overrides what is recognised``
        ``SDXL exports of both Optimum eras are recognised: two encoders, text_embeds and time_ids``
        ``a broken SDXL export lists every problem of its second encoder and tokenizer``
        ``SDXL encode: both encoders' penultimate states side by side, pooled from the second, zeros for an empty negative prompt``
        ``every input of the SDXL miniature's UNet and encoders changes every output``
        ``the SDXL UNet's text_embeds and time_ids reach it in the device-resident loop as in the host loop``
    ] |> testSequencedGroup "ExportTests" ]

[<Tests>]
let integrationTests =
    testList "integration" [ testList "ExportTests" [
        ``generate runs every era's export end to end, and the eras' signatures give the same image``
        ``the HTTP API serves an export directory, and its images equal generate's``
        ``a guidance value for a pipeline without guidance is a 400 naming guidance``
        ``generate runs SDXL exports of both eras end to end, deterministically``
        ``the HTTP API serves an SDXL export, and its images equal generate's``
    ] |> testSequenced ]
