/// A user's own export that is slightly wrong: its models are checked against trident-pipeline.json when the
/// pipeline is opened for work (LoadedPipeline.Verify; generate, profile and a server's start), every problem at
/// once under the manifest key it concerns, instead of a stack trace from the first request that runs the stage.
module Trident.Tests.Runtime.PipelineCheckTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open Trident.Tests.TestSupport
open Trident.Runtime.Execution
open Trident.Runtime.Onnx
open Trident.Runtime.Pipelines
open Trident.Runtime.Pipelines.Tiny
open Trident.Scheduling

// ---- the pure check, on declared signatures ----------------------------------------------------------------

let private info (name: string) (t: TensorElementType) (shape: int64 list) = TensorInfo(name, t, Array.ofList shape)
let private f32 = TensorElementType.Float

/// The tiny pipeline's signatures as its models declare them (-1: a symbolic axis).
let private tiny =
    Map [ StageModel.TextEncoder,
          ModelSignature("text_encoder/model.onnx", [| info "input_ids" TensorElementType.Int64 [ -1L; -1L ] |], [| info "last_hidden_state" f32 [ -1L; -1L; 256L ] |])
          StageModel.Denoiser,
          ModelSignature("transformer/model.onnx",
                         [| info "hidden_states" f32 [ -1L; 16L; -1L; -1L; -1L ]; info "timestep" f32 [ -1L ]; info "encoder_hidden_states" f32 [ -1L; -1L; 256L ] |],
                         [| info "out_sample" f32 [ -1L; 16L; -1L; -1L; -1L ] |])
          StageModel.VaeDecoder,
          ModelSignature("vae_decoder/model.onnx", [| info "latent_sample" f32 [ -1L; 16L; -1L; -1L; -1L ] |], [| info "sample" f32 [ -1L; 3L; -1L; -1L; -1L ] |]) ]

let private check (manifest: PipelineManifest) (signatures: Map<StageModel, ModelSignature>) =
    ModelSignatures.Check(manifest, fun m -> signatures.TryFind m |> Option.toObj) |> List.ofSeq

let private paths (errors: ManifestError list) = errors |> List.map _.Path |> List.distinct |> List.sort

let private withInputs (model: StageModel) (inputs: TensorInfo list) (s: Map<StageModel, ModelSignature>) =
    s.Add(model, ModelSignature(s.[model].File, Array.ofList inputs, s.[model].Outputs))

let private withOutputs (model: StageModel) (outputs: TensorInfo list) (s: Map<StageModel, ModelSignature>) =
    s.Add(model, ModelSignature(s.[model].File, s.[model].Inputs, Array.ofList outputs))

let ``the tiny pipeline's signatures pass the check`` =
    testCase "the tiny pipeline's signatures pass the check" <| fun () ->
        Expect.isEmpty (check (TinyPipeline.Manifest()) tiny) "no problem"

let ``each way a model's signature can differ from the manifest is reported under the key it concerns`` =
    testCase "each way a model's signature can differ from the manifest is reported under the key it concerns" <| fun () ->
        let manifest = TinyPipeline.Manifest()
        let denoiserInputs = tiny.[StageModel.Denoiser].Inputs |> List.ofSeq
        let cases =
            [ "an input renamed in the export",
              tiny |> withInputs StageModel.Denoiser (denoiserInputs |> List.map (fun i -> if i.Name = "encoder_hidden_states" then info "text" f32 [ -1L; -1L; 256L ] else i)),
              [ "stages.transformer.inputs"; "stages.transformer.inputs.encoder_hidden_states" ], "has no input 'encoder_hidden_states'"
              "token ids declared as float",
              tiny |> withInputs StageModel.TextEncoder [ info "input_ids" f32 [ -1L; -1L ] ],
              [ "stages.text_encoder.inputs.input_ids" ], "declares input 'input_ids' float32 [?, ?]; expected int64 or int32 [batch, tokens]"
              "an int32 timestep",
              tiny |> withInputs StageModel.Denoiser (denoiserInputs |> List.map (fun i -> if i.Name = "timestep" then info "timestep" TensorElementType.Int32 [ -1L ] else i)),
              [ "stages.transformer.inputs.timestep" ], "expected float32, float16 or int64"
              "image latents (rank 4) in a video pipeline's VAE",
              tiny |> withInputs StageModel.VaeDecoder [ info "latent_sample" f32 [ -1L; 16L; -1L; -1L ] ],
              [ "stages.vae_decoder.inputs.latents" ], "expected float32 or float16 [batch, channels, frames, height, width] (kind 'video')"
              "a VAE of 4 latent channels",
              tiny |> withInputs StageModel.VaeDecoder [ info "latent_sample" f32 [ -1L; 4L; -1L; -1L; -1L ] ],
              [ "stages.vae_decoder.inputs.latents" ], "4 channels, but latents.channels is 16"
              "a denoiser of 4 latent channels",
              tiny |> withInputs StageModel.Denoiser (denoiserInputs |> List.map (fun i -> if i.Name = "hidden_states" then info "hidden_states" f32 [ -1L; 4L; -1L; -1L; -1L ] else i)),
              [ "stages.transformer.inputs.latents" ], "axis 1 is 4, but the manifest's latents give 16 there"
              "an input the manifest does not name",
              tiny |> withInputs StageModel.VaeDecoder [ info "latent_sample" f32 [ -1L; 16L; -1L; -1L; -1L ]; info "return_dict" TensorElementType.Int64 [] ],
              [ "stages.vae_decoder.inputs" ], "takes 'return_dict' int64 [], which the manifest does not name"
              "a denoiser with two outputs",
              tiny |> withOutputs StageModel.Denoiser [ info "out_sample" f32 [ -1L; 16L; -1L; -1L; -1L ]; info "extra" f32 [ -1L ] ],
              [ "stages.transformer.outputs" ], "Trident reads exactly one, 'out_sample'"
              "a float16 prediction for float32 latents",
              tiny |> withOutputs StageModel.Denoiser [ info "out_sample" TensorElementType.Float16 [ -1L; 16L; -1L; -1L; -1L ] ],
              [ "stages.transformer.outputs.prediction" ], "the same type in and out"
              "a text encoder fixed at 64 tokens",
              tiny |> withInputs StageModel.TextEncoder [ info "input_ids" TensorElementType.Int64 [ -1L; 64L ] ],
              [ "stages.text_encoder.inputs.input_ids" ], "64 tokens, but the tokenizer makes 77 (tokenizer.max_length)"
              "an RGBA decoder",
              tiny |> withOutputs StageModel.VaeDecoder [ info "sample" f32 [ -1L; 4L; -1L; -1L; -1L ] ],
              [ "stages.vae_decoder.outputs.image" ], "4 channels, but Trident writes RGB (3)" ]
        for what, signatures, expected, text in cases do
            let errors = check manifest signatures
            Expect.equal (paths errors) expected (sprintf "%s: the keys (%A)" what errors)
            Expect.isTrue (errors |> List.exists (fun e -> e.Message.Contains text)) (sprintf "%s: says '%s' (%A)" what text errors)
            let file = signatures.[match expected.Head with
                                   | p when p.StartsWith "stages.text_encoder" -> StageModel.TextEncoder
                                   | p when p.StartsWith "stages.transformer" -> StageModel.Denoiser
                                   | _ -> StageModel.VaeDecoder].File
            Expect.isTrue (errors |> List.forall (fun e -> e.Message.Contains file)) (sprintf "%s: names the model file %s" what file)
        // a manifest naming an input the model lacks, and a model that could not be loaded (null): the others are checked
        let json = JsonNode.Parse(Text.Encoding.UTF8.GetString(manifest.ToJson()))
        json.["stages"].["text_encoder"].["inputs"].["attention_mask"] <- JsonValue.Create "attention_mask"
        let named = PipelineManifest.Parse(ReadOnlySpan(Text.Encoding.UTF8.GetBytes(json.ToJsonString())))
        let errors = ModelSignatures.Check(named, fun m -> if m = StageModel.Denoiser then null else tiny.[m]) |> List.ofSeq
        Expect.equal (paths errors) [ "stages.text_encoder.inputs.attention_mask" ] (sprintf "the mask the manifest names; nothing of the unloaded denoiser (%A)" errors)

let ``embeddings of another width or length than the denoiser declares are reported`` =
    testCase "embeddings of another width or length than the denoiser declares are reported" <| fun () ->
        let manifest = TinyPipeline.Manifest()
        let denoiser = tiny.[StageModel.Denoiser]
        Expect.isEmpty (ModelSignatures.CheckEmbeddings(manifest, denoiser, [| 1L; 77L; 256L |], null)) "the tiny encoder's embeddings fit"
        let errors = ModelSignatures.CheckEmbeddings(manifest, denoiser, [| 1L; 77L; 128L |], null) |> List.ofSeq
        Expect.equal (paths errors) [ "stages.transformer.inputs.encoder_hidden_states" ] "the denoiser's text input"
        Expect.stringContains errors.Head.Message "a width of 128, not 256" "says both widths"
        let fixedTokens =
            ModelSignature(denoiser.File, denoiser.Inputs |> Seq.map (fun i -> if i.Name = "encoder_hidden_states" then info i.Name f32 [ -1L; 77L; 256L ] else i) |> Array.ofSeq, denoiser.Outputs)
        let errors = ModelSignatures.CheckEmbeddings(manifest, fixedTokens, [| 1L; 100L; 256L |], null) |> List.ofSeq
        Expect.stringContains errors.Head.Message "100 tokens, not 77" "says both token counts"

[<Tests>]
let signatureTests =
    testList "unit" [ testList "ModelSignatures" [
        ``the tiny pipeline's signatures pass the check``
        ``each way a model's signature can differ from the manifest is reported under the key it concerns``
        ``embeddings of another width or length than the denoiser declares are reported``
    ] ]

// ---- on real files: a copy of the tiny pipeline, altered ---------------------------------------------------

/// A copy of the tiny pipeline in a fresh folder, changed by `change` (given the folder).
let private copy (change: string -> unit) =
    let source = TinyFixture.directory.Value
    let dir = TinyFixture.tempPath "pipeline"
    for f in Directory.GetFiles(source, "*", SearchOption.AllDirectories) do
        let target = Path.Combine(dir, Path.GetRelativePath(source, f))
        Directory.CreateDirectory(Path.GetDirectoryName target) |> ignore
        File.Copy(f, target)
    change dir
    dir

let private editManifest (edit: JsonNode -> unit) (dir: string) =
    let path = Path.Combine(dir, PipelineManifest.FileName)
    let json = JsonNode.Parse(File.ReadAllText path)
    edit json
    File.WriteAllText(path, json.ToJsonString())

let private truncate (relative: string) (dir: string) =
    let path = Path.Combine(dir, relative)
    let bytes = File.ReadAllBytes path
    File.WriteAllBytes(path, bytes.[.. bytes.Length / 2])

/// The exception `f` throws, which must be an 'E.
let private thrown<'E when 'E :> exn> (f: unit -> unit) (what: string) : 'E =
    try
        f ()
        failtestf "%s: nothing was thrown" what
    with
    | :? 'E as e -> e
    | e when (e :? AssertException) |> not -> failtestf "%s: %s instead of %s" what (e.ToString()) typeof<'E>.Name

let private verifyErrors (dir: string) =
    use pipeline = LoadedPipeline.Open dir
    let e = thrown<ManifestException> (fun () -> pipeline.Verify(1)) "Verify refuses the pipeline"
    // the manifest exception's own message: every problem, no stack trace needed
    e.Errors |> List.ofSeq, e.Message

let ``a misnamed input and a truncated model are both reported when the pipeline is verified`` =
    testCase "a misnamed input and a truncated model are both reported when the pipeline is verified" <| fun () ->
        let dir = copy (fun d ->
            editManifest (fun n -> n.["stages"].["transformer"].["inputs"].["timestep"] <- JsonValue.Create "t") d
            truncate "vae_decoder/model.onnx" d)
        let errors, message = verifyErrors dir
        Expect.containsAll (paths errors) [ "stages.transformer.inputs.timestep"; "stages.vae_decoder.file" ] (sprintf "both problems (%s)" message)
        Expect.stringContains message "transformer/model.onnx has no input 't'" "names the file and the input"
        Expect.stringContains message "its inputs are 'hidden_states'" "lists what the model takes"
        Expect.stringContains message "'vae_decoder/model.onnx' cannot be loaded as an ONNX model" "names the file that does not load"

let ``a text encoder of another width, and a tokenizer longer than the encoder takes, are refused before a request`` =
    testCase "a text encoder of another width, and a tokenizer longer than the encoder takes, are refused before a request" <| fun () ->
        // the text encoder of a pipeline whose width is 128, with the denoiser of one whose width is 256
        let narrow = copy (fun d ->
            let other = TinyFixture.tempPath "narrow"
            TinyPipeline.Write(other, 0UL, TinyPipelineSpec(TextWidth = 128)) |> ignore
            File.Copy(Path.Combine(other, "text_encoder/model.onnx"), Path.Combine(d, "text_encoder/model.onnx"), true))
        let errors, message = verifyErrors narrow
        Expect.equal (paths errors) [ "stages.transformer.inputs.encoder_hidden_states" ] message
        Expect.stringContains message "a width of 128, not 256" "says both widths"
        // 100 tokens through an encoder whose position table has 77: only a run shows it
        let long = copy (editManifest (fun n -> n.["tokenizer"].["max_length"] <- JsonValue.Create 100))
        let errors, message = verifyErrors long
        Expect.equal (paths errors) [ "stages.text_encoder" ] message
        Expect.stringContains message "tokenizer.max_length 100" "names the key and its value"

let ``generate, profile, bench runtime and inspect refuse a broken pipeline with its problems, exit 2 and no stack trace`` =
    testCase "generate, profile, bench runtime and inspect refuse a broken pipeline with its problems, exit 2 and no stack trace" <| fun () ->
        let dir = copy (editManifest (fun n -> n.["stages"].["vae_decoder"].["outputs"].["image"] <- JsonValue.Create "image"))
        let out = TinyFixture.tempPath "out"
        for args in [ [ "generate"; "--pipeline"; dir; "--prompt"; "x"; "--width"; "64"; "--height"; "64"; "--steps"; "1"; "--threads"; "1"; "--out"; Path.Combine(out, "x.png") ]
                      [ "profile"; "--pipeline"; dir; "--shapes"; "64x64"; "--degrees"; "1"; "--steps"; "1"; "--repeats"; "1"; "--batches"; "1"; "--out"; Path.Combine(out, "p.json") ]
                      [ "bench"; "runtime"; "--pipeline"; dir; "--runs"; "4"; "--max-runs"; "4"; "--width"; "64"; "--height"; "64"; "--steps"; "1"; "--threads"; "1" ]
                      [ "inspect"; dir ] ] do
            let code, _, err = runCli args
            Expect.equal code 2 (sprintf "%s: exit code (%s)" args.Head err)
            Expect.isFalse (err.Contains "   at ") (sprintf "%s: no stack trace (%s)" args.Head err)
            Expect.stringContains err "stages.vae_decoder.outputs.image: vae_decoder/model.onnx has no output 'image'" (sprintf "%s: the key, the file and the output" args.Head)
        Expect.isFalse (Directory.Exists out) "nothing written"

let ``a tokenizer file that cannot be read is a pipeline problem naming the file, not a crash`` =
    testCase "a tokenizer file that cannot be read is a pipeline problem naming the file, not a crash" <| fun () ->
        let dir = TinyFixture.tempPath "sd"
        Trident.Runtime.Pipelines.Export.ExportMiniature.StableDiffusion(dir, Trident.Runtime.Pipelines.Export.ExportEra.Optimum2023)
        File.WriteAllText(Path.Combine(dir, "tokenizer/vocab.json"), "{ \"a\": 1,")
        File.WriteAllText(Path.Combine(dir, "tokenizer/merges.txt"), "#version: 0.2\nno-space-here\n")
        let e = thrown<ManifestException> (fun () -> (LoadedPipeline.Open dir).Dispose()) "Open refuses the pipeline"
        Expect.equal (paths (List.ofSeq e.Errors)) [ "tokenizer" ] e.Message
        Expect.stringContains e.Message "tokenizer/vocab.json' is not a JSON object of token" "names the file and what is wrong"
        let code, _, err = runCli [ "generate"; "--pipeline"; dir; "--prompt"; "x"; "--steps"; "1"; "--threads"; "1"; "--out"; TinyFixture.tempPath "x.png" ]
        Expect.equal code 2 (sprintf "exit code (%s)" err)
        Expect.isFalse (err.Contains "   at ") (sprintf "no stack trace (%s)" err)
        Expect.stringContains err "tokenizer: its files cannot be read as a CLIP BPE" "the key and the kind"

let ``a server with a configured profile refuses a broken pipeline at start, not at its first request`` =
    testCase "a server with a configured profile refuses a broken pipeline at start, not at its first request" <| fun () ->
        // a configured profile skips the start-up profiling, the only thing that ran the models before the first request
        let profile = TinyFixture.tempPath "profile.json"
        let measured =
            Trident.Runtime.Profiling.Profiler
                .ProfileAsync(TinyFixture.pipeline.Value,
                              Trident.Runtime.Profiling.ProfilerOptions(Shapes = [ { Height = 64; Width = 64; Frames = 1 } ], Degrees = [ 1 ], Steps = 1, Repeats = 1, Batches = [ 1 ]),
                              Threading.CancellationToken.None)
                .GetAwaiter().GetResult()
        Directory.CreateDirectory(Path.GetDirectoryName profile) |> ignore
        File.WriteAllText(profile, Trident.Scheduling.ProfileFile.serialize measured)
        let dir = copy (editManifest (fun n -> n.["stages"].["transformer"].["inputs"].["encoder_hidden_states"] <- JsonValue.Create "text"))
        let o = Trident.Api.Options.TridentOptions(Pipeline = dir, Profile = profile)
        let layout = Trident.Runtime.Devices.DeviceLayout.Cpu(1, 1, 1, 8.0)
        let prepare () =
            Trident.Api.Hosting.OnnxServingBackend()
                .PrepareAsync(o, layout, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, Threading.CancellationToken.None)
                .GetAwaiter().GetResult() |> ignore
        let e = thrown<ManifestException> prepare "the start fails"
        Expect.stringContains e.Message "stages.transformer.inputs.encoder_hidden_states: transformer/model.onnx has no input 'text'" "names the key, the file and the input"

[<Tests>]
let tests =
    testList "integration" [ testList "PipelineCheckTests" [
        ``a misnamed input and a truncated model are both reported when the pipeline is verified``
        ``a text encoder of another width, and a tokenizer longer than the encoder takes, are refused before a request``
        ``generate, profile, bench runtime and inspect refuse a broken pipeline with its problems, exit 2 and no stack trace``
        ``a tokenizer file that cannot be read is a pipeline problem naming the file, not a crash``
        ``a server with a configured profile refuses a broken pipeline at start, not at its first request``
    ] |> testSequenced ]

// ---- native resources on a failed start ----------------------------------------------------------------------

/// An executor that counts its disposals (every other member does nothing): a DispatchProxy over the interface.
type CountingExecutor() =
    inherit Reflection.DispatchProxy()
    member val Disposed: int ref = ref 0 with get, set
    override this.Invoke(m, _) =
        if m.Name = "Dispose" then Threading.Interlocked.Increment this.Disposed |> ignore
        null

let ``a worker whose third executor cannot be made releases the two it made`` =
    testCase "a worker whose third executor cannot be made releases the two it made" <| fun () ->
        // each executor of a worker process owns a pipeline (tokenizers, later sessions); a start that fails part-way
        // must not keep the ones made before the failure
        let made = Collections.Generic.List<CountingExecutor>()
        let factory =
            { new Trident.Runtime.Devices.IStageExecutorFactory with
                member _.Create device =
                    if made.Count = 2 then raise (ManifestException("pipeline x", [| ManifestError("tokenizer", "cannot be read (test)") |]))
                    let e = Reflection.DispatchProxy.Create<Trident.Runtime.Devices.IStageExecutor, CountingExecutor>()
                    made.Add(e :?> CountingExecutor)
                    e }
        let layout = Trident.Runtime.Devices.DeviceLayout.Cpu(4, 1, 4, 8.0)
        thrown<ManifestException> (fun () -> new Trident.Runtime.Clustering.WorkerDevices(layout, factory, "tiny", "test") |> ignore) "the start fails"
        |> ignore
        Expect.equal [ for e in made -> e.Disposed.Value ] [ 1; 1 ] "each executor made before the failure disposed once"

[<Tests>]
let disposalTests =
    testList "unit" [ testList "PipelineLoadDisposal" [
        ``a worker whose third executor cannot be made releases the two it made``
    ] ]
