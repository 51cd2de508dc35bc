/// The bundled tiny pipeline (Trident.Runtime.Pipelines.Tiny): deterministic files from a seed, a valid
/// manifest, and models with symbolic dimensions so that one file serves every size.
module Trident.Tests.Runtime.TinyPipelineTests

open System
open System.IO
open System.Security.Cryptography
open Expecto
open Trident.Tests.TestSupport
open Trident.Runtime.Execution
open Trident.Runtime.Pipelines
open Trident.Runtime.Pipelines.Tiny
open Trident.Tests.Runtime.RuntimeGenerators

/// (relative path, SHA-256) of every file under a directory, read back from disk, in path order.
let private hashes (root: string) =
    Directory.GetFiles(root, "*", SearchOption.AllDirectories)
    |> Array.map (fun f -> Path.GetRelativePath(root, f).Replace('\\', '/'), Convert.ToHexString(SHA256.HashData(File.ReadAllBytes f)))
    |> Array.sortBy fst
    |> List.ofArray

let ``the same seed writes byte-identical files and another seed different weights`` =
    testCase "the same seed writes byte-identical files and another seed different weights" <| fun () ->
        use a = new TempDirectory()
        use b = new TempDirectory()
        use c = new TempDirectory()
        let reported = TinyPipeline.Write(a.Path, 7UL)
        TinyPipeline.Write(b.Path, 7UL) |> ignore
        TinyPipeline.Write(c.Path, 8UL) |> ignore
        let first, second, other = hashes a.Path, hashes b.Path, hashes c.Path
        Expect.equal second (first: (string * string) list) "second"
        Expect.equal
            (first |> List.map fst)
            ([ "text_encoder/model.onnx"; "transformer/model.onnx"; "trident-pipeline.json"; "vae_decoder/model.onnx" ]: string list)
            "first |> List.map fst"
        // The manifest does not depend on the seed; every model does.
        for (path, hash), (_, otherHash) in List.zip first other do
            if path = PipelineManifest.FileName then Expect.equal otherHash hash "otherHash"
            else Expect.notEqual otherHash hash "otherHash"
        // What Write reports is what is on disk.
        for f in reported do
            Expect.equal ((first |> List.find (fun (p, _) -> p = f.RelativePath) |> snd).ToLowerInvariant()) f.Sha256 "(first |> List.find (fun (p, _) -> p = f.RelativePath) |> snd).ToLowerInvaria..."
            Expect.equal (FileInfo(Path.Combine(a.Path, f.RelativePath)).Length) f.Bytes "FileInfo(Path.Combine(a.Path, f.RelativePath)).Length"

let ``the written manifest loads with every file present and is a video pipeline that allows single frames`` =
    testCase "the written manifest loads with every file present and is a video pipeline that allows single frames" <| fun () ->
        let manifest = PipelineManifest.Load TinyFixture.directory.Value
        Expect.equal manifest (TinyPipeline.Manifest()) "manifest"
        Expect.equal manifest.Kind PipelineKind.Video "manifest.Kind"
        Expect.equal manifest.Size.MinFrames 1 "manifest.Size.MinFrames"
        Expect.equal manifest.Latents.TemporalCompression 1 "manifest.Latents.TemporalCompression"
        Expect.equal manifest.Size.MultipleOf 16 "manifest.Size.MultipleOf"
        Expect.isEmpty (manifest.CheckSize(256, 256, 1)) "manifest.CheckSize(256, 256, 1)"

let ``the tiny pipeline is written once into its cache folder and reused`` =
    testCase "the tiny pipeline is written once into its cache folder and reused" <| fun () ->
        let first = TinyFixture.directory.Value
        let stamp = File.GetLastWriteTimeUtc(Path.Combine(first, "transformer", "model.onnx"))
        let again = PipelineLocator.Resolve(PipelineLocator.Tiny, TinyFixture.home)
        Expect.equal again first "again"
        Expect.equal again (Path.Combine(TinyFixture.home, ".cache", "pipelines", "tiny-0")) "again"
        Expect.equal (File.GetLastWriteTimeUtc(Path.Combine(again, "transformer", "model.onnx"))) stamp "File.GetLastWriteTimeUtc(Path.Combine(again, \"transformer\", \"model.onnx\"))"

let ``every model declares symbolic batch, token, frame and size dimensions`` =
    testCase "every model declares symbolic batch, token, frame and size dimensions" <| fun () ->
        let p = TinyFixture.pipeline.Value
        let shapes (model: StageModel) =
            let s = p.Session(model, 1)
            [ for i in s.Inputs -> i.Name, List.ofSeq i.Shape ], [ for o in s.Outputs -> o.Name, List.ofSeq o.Shape ]
        Expect.equal
            (shapes StageModel.TextEncoder)
            (([ "input_ids", [ -1L; -1L ] ], [ "last_hidden_state", [ -1L; -1L; 256L ] ]): (string * int64 list) list * (string * int64 list) list)
            "shapes StageModel.TextEncoder"
        Expect.equal
            (shapes StageModel.Denoiser)
            (([ "hidden_states", [ -1L; 16L; -1L; -1L; -1L ]; "timestep", [ -1L ]; "encoder_hidden_states", [ -1L; -1L; 256L ] ],
              [ "out_sample", [ -1L; 16L; -1L; -1L; -1L ] ]): (string * int64 list) list * (string * int64 list) list)
            "shapes StageModel.Denoiser"
        Expect.equal
            (shapes StageModel.VaeDecoder)
            (([ "latent_sample", [ -1L; 16L; -1L; -1L; -1L ] ], [ "sample", [ -1L; 3L; -1L; -1L; -1L ] ]): (string * int64 list) list * (string * int64 list) list)
            "shapes StageModel.VaeDecoder"

[<Tests>]
let tests =
    testList "integration" [ testList "TinyPipelineTests" [
        ``the same seed writes byte-identical files and another seed different weights``
        ``the written manifest loads with every file present and is a video pipeline that allows single frames``
        ``the tiny pipeline is written once into its cache folder and reused``
        ``every model declares symbolic batch, token, frame and size dimensions``
    ] |> testSequenced ]
