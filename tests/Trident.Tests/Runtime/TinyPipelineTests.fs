/// The bundled tiny pipeline (Trident.Runtime.Pipelines.Tiny): deterministic files from a seed, a valid
/// manifest, and models with symbolic dimensions so that one file serves every size.
[<Xunit.Collection(Trident.Tests.Runtime.TinyFixture.Collection)>]
module Trident.Tests.Runtime.TinyPipelineTests

open System
open System.IO
open System.Security.Cryptography
open Xunit
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

[<Fact>]
let ``the same seed writes byte-identical files and another seed different weights`` () =
    use a = new TempDirectory()
    use b = new TempDirectory()
    use c = new TempDirectory()
    let reported = TinyPipeline.Write(a.Path, 7UL)
    TinyPipeline.Write(b.Path, 7UL) |> ignore
    TinyPipeline.Write(c.Path, 8UL) |> ignore
    let first, second, other = hashes a.Path, hashes b.Path, hashes c.Path
    Assert.Equal<(string * string) list>(first, second)
    Assert.Equal<string list>(
        [ "text_encoder/model.onnx"; "transformer/model.onnx"; "trident-pipeline.json"; "vae_decoder/model.onnx" ],
        first |> List.map fst)
    // The manifest does not depend on the seed; every model does.
    for (path, hash), (_, otherHash) in List.zip first other do
        if path = PipelineManifest.FileName then Assert.Equal(hash, otherHash)
        else Assert.NotEqual<string>(hash, otherHash)
    // What Write reports is what is on disk.
    for f in reported do
        Assert.Equal(f.Sha256, (first |> List.find (fun (p, _) -> p = f.RelativePath) |> snd).ToLowerInvariant())
        Assert.Equal(f.Bytes, FileInfo(Path.Combine(a.Path, f.RelativePath)).Length)

[<Fact>]
let ``the written manifest loads with every file present and is a video pipeline that allows single frames`` () =
    let manifest = PipelineManifest.Load TinyFixture.directory.Value
    Assert.Equal(TinyPipeline.Manifest(), manifest)
    Assert.Equal(PipelineKind.Video, manifest.Kind)
    Assert.Equal(1, manifest.Size.MinFrames)
    Assert.Equal(1, manifest.Latents.TemporalCompression)
    Assert.Equal(16, manifest.Size.MultipleOf)
    Assert.Empty(manifest.CheckSize(256, 256, 1))

[<Fact>]
let ``the tiny pipeline is written once into its cache folder and reused`` () =
    let first = TinyFixture.directory.Value
    let stamp = File.GetLastWriteTimeUtc(Path.Combine(first, "transformer", "model.onnx"))
    let again = PipelineLocator.Resolve(PipelineLocator.Tiny, TinyFixture.home)
    Assert.Equal(first, again)
    Assert.Equal(Path.Combine(TinyFixture.home, ".cache", "pipelines", "tiny-0"), again)
    Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(again, "transformer", "model.onnx")))

[<Fact>]
let ``every model declares symbolic batch, token, frame and size dimensions`` () =
    let p = TinyFixture.pipeline.Value
    let shapes (model: StageModel) =
        let s = p.Session(model, 1)
        [ for i in s.Inputs -> i.Name, List.ofSeq i.Shape ], [ for o in s.Outputs -> o.Name, List.ofSeq o.Shape ]
    Assert.Equal<(string * int64 list) list * (string * int64 list) list>(
        ([ "input_ids", [ -1L; -1L ] ], [ "last_hidden_state", [ -1L; -1L; 256L ] ]), shapes StageModel.TextEncoder)
    Assert.Equal<(string * int64 list) list * (string * int64 list) list>(
        ([ "hidden_states", [ -1L; 16L; -1L; -1L; -1L ]; "timestep", [ -1L ]; "encoder_hidden_states", [ -1L; -1L; 256L ] ],
         [ "out_sample", [ -1L; 16L; -1L; -1L; -1L ] ]),
        shapes StageModel.Denoiser)
    Assert.Equal<(string * int64 list) list * (string * int64 list) list>(
        ([ "latent_sample", [ -1L; 16L; -1L; -1L; -1L ] ], [ "sample", [ -1L; 3L; -1L; -1L; -1L ] ]), shapes StageModel.VaeDecoder)
