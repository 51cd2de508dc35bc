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

let private run = runCli

let private input (c: ComponentSignature) name = c.Inputs |> Seq.find (fun i -> i.Name = name)

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
let private writeFloatIdsEncoder (path: string) =
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

let ``the family comes from model_index.json and the signatures, and families not served are named`` =
    testCase "the family comes from model_index.json and the signatures, and families not served are named" <| fun () ->
        let dir = miniature ExportEra.OptimumCurrent PredictionType.Epsilon
        let indexPath = Path.Combine(dir, "model_index.json")
        let withClass (cls: string) =
            let index = JsonNode.Parse(File.ReadAllText indexPath)
            index["_class_name"] <- JsonValue.Create cls
            File.WriteAllText(indexPath, index.ToJsonString())
        withClass "StableDiffusionXLPipeline"
        let e = expectThrows<ManifestException> "ManifestException" (fun () -> ExportDirectory.Recognise dir |> ignore)
        Expect.stringContains e.Message "model_index.json says sdxl (StableDiffusionXLPipeline) but the denoiser's inputs (sample, timestep, encoder_hidden_states) are those of stable-diffusion" "class and signature disagree"
        Expect.stringContains e.Message "recognised as sdxl (StableDiffusionXLPipeline), which this version of Trident does not serve yet" "a family not served is named"
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

let private generate dir (extra: string list) =
    let out = TinyFixture.tempPath "out.png"
    let code, _, err =
        let prompt = if List.contains "--prompt" extra then [] else [ "--prompt"; "a photo of a cat" ]
        run ([ "generate"; "--pipeline"; dir; "--width"; "64"; "--height"; "64"; "--steps"; "3"; "--threads"; "1"; "--out"; out ]
             @ prompt @ extra)
    Expect.equal code 0 ("generate succeeds: " + err)
    File.ReadAllBytes out

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
        use r = post client "/v1/generations" """{"prompt":"a photo of a cat","width":64,"height":64,"steps":3,"seed":5}"""
        Expect.equal r.StatusCode HttpStatusCode.Accepted "accepted"
        let id = (json r).GetProperty("id").GetString()
        let final = pollUntil client 120.0 id isFinal
        Expect.equal (status final) "succeeded" (sprintf "succeeded: %O" final)
        use result = get client (sprintf "/v1/generations/%s/result" id)
        let served = Trident.Tests.Runtime.MediaChecks.decodeImage (result.Content.ReadAsByteArrayAsync().Result)
        let local = Trident.Tests.Runtime.MediaChecks.decodeImage (generate dir [ "--seed"; "5" ])
        Expect.equal served.Rgb local.Rgb "the server and generate compute the same pixels"
        use r = post client "/v1/generations" """{"prompt":"a photo of a cat","width":64,"height":64,"steps":3,"seed":5,"scheduler":"dpm++-2m-karras"}"""
        Expect.equal r.StatusCode HttpStatusCode.Accepted "accepted with a scheduler"
        let id = (json r).GetProperty("id").GetString()
        Expect.equal (status (pollUntil client 120.0 id isFinal)) "succeeded" "succeeded"
        use result = get client (sprintf "/v1/generations/%s/result" id)
        let served = Trident.Tests.Runtime.MediaChecks.decodeImage (result.Content.ReadAsByteArrayAsync().Result)
        let local = Trident.Tests.Runtime.MediaChecks.decodeImage (generate dir [ "--seed"; "5"; "--scheduler"; "dpm++-2m-karras" ])
        Expect.equal served.Rgb local.Rgb "the request's scheduler is the one that ran"
        // A prompt over CLIP's 77 tokens is truncated as diffusers does (start, 75 pieces, end); the status says so.
        let long = String.replicate 100 "cat "
        use r = post client "/v1/generations" (sprintf """{"prompt":"%s","width":64,"height":64,"steps":1,"seed":5}""" long)
        let prompt = (json r).GetProperty("id").GetString() |> fun id -> (pollUntil client 120.0 id isFinal).GetProperty("prompt")
        Expect.equal (prompt.GetProperty("tokens_total").GetInt32(), prompt.GetProperty("tokens_used").GetInt32(), prompt.GetProperty("truncated").GetBoolean())
            (100, 75, true) "100 tokens given, 75 kept"
        use bad = post client "/v1/generations" """{"prompt":"x","width":96,"height":64,"scheduler":"pndm"}"""
        Expect.equal bad.StatusCode HttpStatusCode.BadRequest "a size the family cannot take, a scheduler it does not support"
        let errors = (json bad).GetProperty("errors")
        Expect.stringContains (errors.GetProperty("width").ToString()) "multiple of 64" "names the accepted sizes"
        Expect.stringContains (errors.GetProperty("scheduler").ToString()) "accepted: ddim, euler, euler-ancestral, dpm++-2m-karras" "names the accepted schedulers"

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

[<Tests>]
let unitTests =
    testList "unit" [ testList "ExportTests" [
        ``each exporter era's signatures are read from the models, not assumed``
        ``a broken export gets one error listing every missing file, unknown component and mismatched input``
        ``the family comes from model_index.json and the signatures, and families not served are named``
        ``trident-pipeline.json in an export directory overrides what is recognised``
    ] |> testSequencedGroup "ExportTests" ]

[<Tests>]
let integrationTests =
    testList "integration" [ testList "ExportTests" [
        ``generate runs every era's export end to end, and the eras' signatures give the same image``
        ``the HTTP API serves an export directory, and its images equal generate's``
        ``a guidance value for a pipeline without guidance is a 400 naming guidance``
    ] |> testSequenced ]
