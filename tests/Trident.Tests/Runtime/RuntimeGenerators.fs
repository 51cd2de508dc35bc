/// Generators and helpers for the runtime's pipeline and imaging tests: one generator per runtime type,
/// composed bottom-up; every property runs through `TestSupport.testProp`, so failures shrink and print a replayable seed.
module Trident.Tests.Runtime.RuntimeGenerators

open System
open System.IO
open FsCheck
open FsCheck.FSharp
open Trident.Runtime.Pipelines
open Trident.Runtime.Imaging

/// |a − b| ≤ tolerance · (1 + |a| + |b|): absolute near zero, relative for large values.
let close (tolerance: float) (a: float) (b: float) =
    abs (a - b) <= tolerance * (1.0 + abs a + abs b)

/// A fresh directory under the system temp folder, deleted when disposed.
type TempDirectory() =
    let path = Path.Combine(Path.GetTempPath(), "trident-tests-" + Guid.NewGuid().ToString("N"))
    do Directory.CreateDirectory path |> ignore
    member _.Path = path
    /// Writes a file (creating folders) and returns its full path.
    member _.Write(relative: string, contents: string) =
        let full = Path.Combine(path, relative)
        Directory.CreateDirectory(Path.GetDirectoryName full) |> ignore
        File.WriteAllText(full, contents)
        full
    interface IDisposable with
        member _.Dispose() = try Directory.Delete(path, true) with _ -> ()

// ---- numbers -------------------------------------------------------------------------------------------

/// A float in [lo, hi] with 1e-4 resolution.
let floatIn (lo: float) (hi: float) =
    Gen.choose (0, 10000) |> Gen.map (fun i -> lo + (hi - lo) * float i / 10000.0)

/// A double whose binary expansion does not terminate early (a/b), to exercise exact JSON round trips.
let awkwardPositive (lo: float) (hi: float) =
    Gen.map2 (fun (a: int) (b: int) -> lo + (hi - lo) * (float a / float b)) (Gen.choose (1, 996)) (Gen.choose (997, 1999))

/// A float32 array of the given length with values in [−range, range].
let floats (range: float) (length: int) =
    Gen.arrayOfLength length (floatIn -range range |> Gen.map float32)

let seed: Gen<uint64> = Gen.choose64 (Int64.MinValue, Int64.MaxValue) |> Gen.map uint64

// ---- manifests -----------------------------------------------------------------------------------------

let identifier =
    Gen.elements [ 'a' .. 'z' ]
    |> Gen.arrayOf
    |> Gen.map (fun cs -> "p" + String cs)

let relativeFile (folder: string) =
    Gen.elements [ "model.onnx"; "model_q8.onnx"; "weights/model.onnx" ] |> Gen.map (fun f -> folder + "/" + f)

let textEncoderStage =
    Gen.map3
        (fun file mask hidden -> TextEncoderStage(file, "input_ids", mask, hidden))
        (relativeFile "text_encoder")
        (Gen.elements [ null; "attention_mask" ])
        (Gen.elements [ "last_hidden_state"; "text_embeds" ])

let denoiserStage =
    gen {
        let! architecture = Gen.elements [ DenoiserArchitecture.Transformer; DenoiserArchitecture.Unet ]
        let folder, latents = if architecture = DenoiserArchitecture.Transformer then "transformer", "hidden_states" else "unet", "sample"
        let! file = relativeFile folder
        return DenoiserStage(architecture, file, latents, "timestep", "encoder_hidden_states", "out_sample")
    }

let vaeDecoderStage = relativeFile "vae_decoder" |> Gen.map (fun f -> VaeDecoderStage(f, "latent_sample", "sample"))

let tokenizerSettings: Gen<TokenizerSettings> =
    gen {
        let! maxLength = Gen.choose (2, 512)
        let! isByte = Gen.elements [ true; false ]
        if isByte then
            let! offset = Gen.choose (3, 1000)
            let! ids = Gen.shuffle [| 0; 1; 2 |]
            return ByteTokenizerSettings(maxLength, ids[0], ids[1], ids[2], offset) :> TokenizerSettings
        else
            let! pad = Gen.elements [ "<|endoftext|>"; "!" ]
            return ClipBpeTokenizerSettings(maxLength, "tokenizer/vocab.json", "tokenizer/merges.txt", pad)
    }

let latentSettings (kind: PipelineKind) =
    gen {
        let! channels = Gen.elements [ 4; 16; 32 ]
        let! scale = Gen.elements [ 1; 8; 16 ]
        let! temporal = if kind = PipelineKind.Image then Gen.constant 1 else Gen.elements [ 1; 4; 8 ]
        let! scaling = awkwardPositive 0.1 2.0
        let! shift = Gen.oneof [ Gen.constant 0.0; awkwardPositive -0.5 0.5 ]
        return LatentSettings(channels, scale, temporal, scaling, shift)
    }

let samplerSettings: Gen<SamplerSettings> =
    gen {
        let! train = Gen.elements [ 100; 1000 ]
        let! steps = Gen.choose (1, 50)
        let! flow = Gen.elements [ true; false ]
        if flow then
            let! shift = awkwardPositive 0.5 6.0
            return FlowEulerSettings(train, steps, shift) :> SamplerSettings
        else
            let! betaStart = awkwardPositive 0.0001 0.001
            let! betaEnd = awkwardPositive 0.01 0.03
            let! schedule = Gen.elements [ BetaSchedule.Linear; BetaSchedule.ScaledLinear ]
            let! offset = Gen.choose (0, 1)
            let! alphaOne = Gen.elements [ true; false ]
            return DdimSettings(train, steps, betaStart, betaEnd, schedule, offset, alphaOne)
    }

let guidanceSettings =
    Gen.oneof [ Gen.constant (GuidanceSettings(false, 1.0)); awkwardPositive 1.0 12.0 |> Gen.map (fun g -> GuidanceSettings(true, g)) ]

let sizeConstraint (kind: PipelineKind) (latents: LatentSettings) =
    gen {
        let! k = Gen.elements [ 1; 2; 4 ]
        let multiple = latents.SpatialScaleFactor * k
        let! minW = Gen.choose (1, 8)
        let! extraW = Gen.choose (0, 64)
        let! minH = Gen.choose (1, 8)
        let! extraH = Gen.choose (0, 64)
        let! minF, maxF =
            if kind = PipelineKind.Image then Gen.constant (1, 1)
            else Gen.map2 (fun a b -> (a * latents.TemporalCompression + 1, (a + b) * latents.TemporalCompression + 1)) (Gen.choose (0, 4)) (Gen.choose (0, 16))
        return SizeConstraint(multiple, minW * multiple, (minW + extraW) * multiple, minH * multiple, (minH + extraH) * multiple, minF, maxF)
    }

/// A valid manifest (by construction, no filtering).
let manifest =
    gen {
        let! name = identifier
        let! model = identifier
        let! kind = Gen.elements [ PipelineKind.Image; PipelineKind.Video ]
        let! stages = Gen.map3 (fun t d v -> PipelineStages(t, d, v)) textEncoderStage denoiserStage vaeDecoderStage
        let! tokenizer = tokenizerSettings
        let! latents = latentSettings kind
        let! sampler = samplerSettings
        let! guidance = guidanceSettings
        let! size = sizeConstraint kind latents
        return PipelineManifest(name, model, kind, stages, tokenizer, latents, sampler, guidance, size)
    }

/// Every file a manifest names, relative to its directory.
let namedFiles (m: PipelineManifest) =
    [ m.Stages.TextEncoder.File; m.Stages.Denoiser.File; m.Stages.VaeDecoder.File ]
    @ (match m.Tokenizer with
       | :? ClipBpeTokenizerSettings as c -> [ c.Vocab; c.Merges ]
       | _ -> [])

// ---- text ----------------------------------------------------------------------------------------------

/// A Unicode scalar value (no lone surrogates), biased towards ASCII, as a string of 1 or 2 UTF-16 units.
let scalar =
    Gen.frequency
        [ 6, Gen.choose (0x20, 0x7E)
          2, Gen.choose (0xA0, 0x7FF)
          1, Gen.choose (0x800, 0xD7FF)
          1, Gen.choose (0x10000, 0x10FFFF) ]
    |> Gen.map Char.ConvertFromUtf32

let text = Gen.arrayOf scalar |> Gen.map String.Concat

// ---- images --------------------------------------------------------------------------------------------

let rgbImage =
    gen {
        let! w = Gen.choose (1, 17)
        let! h = Gen.choose (1, 17)
        let! pixels = Gen.arrayOfLength (w * h * 3) (Gen.choose (0, 255) |> Gen.map byte)
        return RgbImage(w, h, pixels)
    }
