/// The stage executors (Trident.Runtime.Execution) on the tiny pipeline: tensors handed from stage to stage
/// have the shapes the manifest promises, guidance batches the unconditional rows, and cancellation stops a
/// diffuse run at a step boundary.
module Trident.Tests.Runtime.ExecutionTests

open System
open System.Threading
open FsCheck
open FsCheck.FSharp
open Expecto
open Trident.Tests.TestSupport
open Trident.Runtime.Execution
open Trident.Runtime.Onnx
open Trident.Tests.Runtime.RuntimeGenerators

let private pipeline () = TinyFixture.pipeline.Value

/// One request of a batch: sizes that respect the manifest's constraint (multiples of 16 from 64), short
/// videos included, batches of one or two, guidance on or off.
type private Case =
    { Width: int; Height: int; Frames: int; Prompts: string list; Guidance: float }

let private case =
    gen {
        let! w = Gen.choose (4, 6)
        let! h = Gen.choose (4, 6)
        let! frames = Gen.choose (1, 3)
        let! batch = Gen.choose (1, 2)
        let! prompts = Gen.listOfLength batch (Gen.elements [ ""; "a fox"; "a lighthouse at dusk, oil painting"; "ünïcødé ✓" ])
        let! guidance = Gen.elements [ 1.0; 4.0 ]
        return { Width = w * 16; Height = h * 16; Frames = frames; Prompts = prompts; Guidance = guidance }
    }

let ``encode, diffuse and decode hand over tensors of the shapes the manifest gives`` =
    testProp 6 "encode, diffuse and decode hand over tensors of the shapes the manifest gives" <| fun () ->
        let p = pipeline ()
        let m = p.Manifest
        let diffuser = DiffuseExecutor p
        (Prop.forAll (Arb.fromGen case) (fun c ->
            let batch = c.Prompts.Length
            let guided = diffuser.UsesGuidance c.Guidance
            let negatives = if guided then List.replicate batch "" |> Array.ofList else null
            let embeddings = EncodeExecutor(p).Encode(Array.ofList c.Prompts, negatives, 1)
            let seeds = [| for b in 1 .. batch -> uint64 b |]
            let latents = diffuser.Diffuse(embeddings, DiffuseSettings(c.Width, c.Height, c.Frames, 1, seeds, c.Guidance, 1))
            let frames = DecodeExecutor(p).Decode(latents, 1)
            let rows = if guided then 2 * batch else batch
            (List.ofSeq embeddings.Tensor.Shape = [ int64 rows; int64 m.Tokenizer.MaxLength; 256L ] |> Prop.label "embeddings [rows, tokens, width]")
            .&. (List.ofSeq latents.Tensor.Shape = List.ofArray (m.LatentShape(batch, c.Width, c.Height, c.Frames)) |> Prop.label "latents = manifest latent shape")
            .&. (latents.Bytes = int64 batch * 16L * int64 c.Frames * int64 (c.Height / 8) * int64 (c.Width / 8) * 4L |> Prop.label "latent bytes")
            .&. ((frames.Length = batch && frames |> Array.forall (fun item -> item.Length = c.Frames)) |> Prop.label "batch × frames")
            .&. (frames |> Array.forall (Array.forall (fun f -> f.Width = c.Width && f.Height = c.Height)) |> Prop.label "frame size")
            |> Prop.classify guided "guided"
            |> Prop.classify (c.Frames > 1) "video"
            |> Prop.classify (batch > 1) "batched"))

let ``cancelling during diffuse stops at a step boundary`` =
    testCase "cancelling during diffuse stops at a step boundary" <| fun () ->
        let p = pipeline ()
        let embeddings = EncodeExecutor(p).Encode([| "a fox" |], [| "" |], 1)
        use cts = new CancellationTokenSource()
        let seen = ResizeArray<int>()
        let progress =
            { new IProgress<DiffuseProgress> with
                member _.Report step =
                    seen.Add step.Completed
                    if step.Completed = 2 then cts.Cancel() }
        let settings = DiffuseSettings(64, 64, 1, 6, [| 1UL |], 4.0, 1)
        expectThrowsAny<OperationCanceledException>
            "OperationCanceledException is thrown"
            (fun () ->
            DiffuseExecutor(p).Diffuse(embeddings, settings, progress, cts.Token) |> ignore) |> ignore
        Expect.equal (List.ofSeq seen) ([ 1; 2 ]: int list) "List.ofSeq seen"

let ``guidance without unconditional embeddings is refused, and scale 1 runs the conditional rows alone`` =
    testCase "guidance without unconditional embeddings is refused, and scale 1 runs the conditional rows alone" <| fun () ->
        let p = pipeline ()
        let conditionalOnly = EncodeExecutor(p).Encode([| "a fox" |], null, 1)
        let both = EncodeExecutor(p).Encode([| "a fox" |], [| "" |], 1)
        let settings g = DiffuseSettings(64, 64, 1, 1, [| 3UL |], g, 1)
        let e = expectThrows<ArgumentException> "ArgumentException is thrown" (fun () -> DiffuseExecutor(p).Diffuse(conditionalOnly, settings 4.0) |> ignore)
        Expect.stringContains e.Message "unconditional" "e.Message"
        // With scale 1 the unconditional rows are ignored: the same latents as without them.
        let a = DiffuseExecutor(p).Diffuse(conditionalOnly, settings 1.0).Tensor.AsFloat()
        let b = DiffuseExecutor(p).Diffuse(both, settings 1.0).Tensor.AsFloat()
        Expect.equal b (a: float32[]) "b"
        Expect.equal both.Bytes (2L * int64 both.Tensor.Shape[1] * 256L * 4L) "both.Bytes"

let ``diffuse settings that do not fit the manifest are all reported`` =
    testCase "diffuse settings that do not fit the manifest are all reported" <| fun () ->
        let p = pipeline ()
        let embeddings = EncodeExecutor(p).Encode([| "a fox" |], null, 1)
        let e =
            expectThrows<ArgumentException>
                "ArgumentException is thrown"
                (fun () ->
                DiffuseExecutor(p).Diffuse(embeddings, DiffuseSettings(72, 2048, 20, 0, [| 1UL; 2UL |], 1.0, 1)) |> ignore)
        for field in [ "width"; "height"; "frames"; "steps"; "seeds" ] do
            Expect.stringContains e.Message (field + ":") "e.Message"

let ``the same seed gives the same latents and another seed different ones`` =
    testCase "the same seed gives the same latents and another seed different ones" <| fun () ->
        let p = pipeline ()
        let embeddings = EncodeExecutor(p).Encode([| "a fox" |], [| "" |], 1)
        let run seed = DiffuseExecutor(p).Diffuse(embeddings, DiffuseSettings(64, 64, 2, 2, [| seed |], 4.0, 1)).Tensor.AsFloat()
        Expect.equal (run 5UL) (run 5UL: float32[]) "run 5UL"
        Expect.notEqual (run 6UL) (run 5UL: float32[]) "run 6UL"

let ``sessions with and without spinning threads compute the same latents`` =
    testCase "sessions with and without spinning threads compute the same latents" <| fun () ->
        // The CPU provider turns spinning off by default (AddSessionConfigEntry); ORT must accept the entries and
        // the numbers must not depend on them.
        use spinning = LoadedPipeline.Open(TinyFixture.directory.Value, ExecutionProvider.Cpu(1, true))
        let p = pipeline ()
        let latents (q: LoadedPipeline) =
            let embeddings = EncodeExecutor(q).Encode([| "a fox" |], [| "" |], 2)
            DiffuseExecutor(q).Diffuse(embeddings, DiffuseSettings(64, 64, 1, 1, [| 9UL |], 4.0, 2)).Tensor.AsFloat()
        Expect.equal (latents spinning) (latents p: float32[]) "latents spinning"

[<Tests>]
let tests =
    testList "integration" [ testList "ExecutionTests" [
        ``encode, diffuse and decode hand over tensors of the shapes the manifest gives``
        ``cancelling during diffuse stops at a step boundary``
        ``guidance without unconditional embeddings is refused, and scale 1 runs the conditional rows alone``
        ``diffuse settings that do not fit the manifest are all reported``
        ``the same seed gives the same latents and another seed different ones``
        ``sessions with and without spinning threads compute the same latents``
    ] |> testSequenced ]
