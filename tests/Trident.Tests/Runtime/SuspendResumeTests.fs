/// Step-boundary preemption in the runtime (issue 12): a diffuse suspended at a denoising-step boundary keeps its
/// latents and sampler state, and resuming it gives the same latents, bit for bit, and the same image bytes as
/// the run never suspended — for the host loop and the device loop (run on the CPU provider), every sampler of the
/// tiny pipeline, with and without classifier-free guidance, suspended once or twice.
module Trident.Tests.Runtime.SuspendResumeTests

open System
open System.IO
open System.Text.RegularExpressions
open Expecto
open Trident.Runtime.Devices
open Trident.Runtime.Execution
open Trident.Runtime.Pipelines
open Trident.Runtime.Pipelines.Samplers

let private bits (l: Latents) = l.Tensor.AsFloat() |> Array.map BitConverter.SingleToInt32Bits

/// Counts the steps done (absolute, earlier segments included) as the run reports them.
type private Steps() =
    member val Done = 0 with get, set
    interface IProgress<DiffuseProgress> with
        member this.Report p = this.Done <- p.Completed

/// Runs `settings` suspending after each step count of `stops` in turn (then to the end): the final latents and
/// the steps at which it stopped.
let private runWithStops (executor: DiffuseExecutor) (embeddings: Embeddings) (settings: DiffuseSettings) (stops: int list) =
    let steps = Steps()
    let mutable pending = stops
    let suspend = Func<bool>(fun () -> match pending with k :: _ -> steps.Done >= k | [] -> false)
    let rec go (from: SuspendedDiffuse) (stoppedAt: int list) =
        let outcome = executor.Diffuse(embeddings, settings, from, suspend, steps)
        match outcome.Suspended with
        | null -> outcome.Latents, List.rev stoppedAt
        | s ->
            pending <- List.tail pending
            go s (s.Step :: stoppedAt)
    go null []

/// The tiny pipeline's networks under a DDIM (β-schedule) manifest: it runs every sampler of a β-schedule model,
/// σ-space ones included, whose runs keep state between steps (the multistep history, the ancestral noise).
let private ddimVariant () =
    let dir = TinyFixture.tempPath "tiny-ddim"
    Directory.CreateDirectory dir |> ignore
    for file in Directory.GetFiles(TinyFixture.directory.Value, "*", SearchOption.AllDirectories) do
        let target = Path.Combine(dir, Path.GetRelativePath(TinyFixture.directory.Value, file))
        Directory.CreateDirectory(Path.GetDirectoryName target) |> ignore
        File.Copy(file, target)
    let manifest = Path.Combine(dir, PipelineManifest.FileName)
    let ddim =
        "\"sampler\": { \"type\": \"ddim\", \"num_train_timesteps\": 1000, \"default_steps\": 8, \"beta_start\": 0.00085, "
        + "\"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"steps_offset\": 1, \"set_alpha_to_one\": false }"
    let text = Regex.Replace(File.ReadAllText manifest, "\"sampler\"\\s*:\\s*\\{[^}]*\\}", ddim)
    File.WriteAllText(manifest, text)
    dir

let ``a resumed diffuse is bit-identical to one never suspended`` =
    testCase "a diffuse suspended at step k and resumed gives the same latents and image bytes as one never suspended" <| fun () ->
      let dir = ddimVariant ()
      try
      use ddim = LoadedPipeline.Open dir
      Expect.equal (SamplerFactory.Names(ddim.Manifest.Sampler).Count) 4 "the β-schedule variant runs four samplers"
      let mutable checkedRuns = 0
      let mutable expectedRuns = 0
      for p in [ TinyFixture.pipeline.Value; ddim ] do
        let embeddings = EncodeExecutor(p).Encode([| "a fox in the snow" |], [| "" |], 1)
        let samplers = SamplerFactory.Names(p.Manifest.Sampler)
        expectedRuns <- expectedRuns + 2 * samplers.Count * 2 * 4
        for loop in [ DiffuseLoop.Host; DiffuseLoop.Device ] do
            let executor = DiffuseExecutor(p, loop)
            for sampler in samplers do
                for guidance in [ 4.0; 1.0 ] do
                    let settings = DiffuseSettings(64, 64, 1, 4, [| 21UL |], guidance, 1, sampler)
                    let whole = executor.Diffuse(embeddings, settings)
                    for stops in [ [ 1 ]; [ 2 ]; [ 3 ]; [ 1; 3 ] ] do
                        let resumed, stoppedAt = runWithStops executor embeddings settings stops
                        let what = sprintf "%O loop, %s, guidance %g, suspended after %A" loop sampler guidance stops
                        Expect.equal stoppedAt stops (what + ": it stopped where asked")
                        Expect.equal (bits resumed) (bits whole) (what + ": latents bit-identical")
                        checkedRuns <- checkedRuns + 1
                    // the image, as the server writes it
                    let resumed, _ = runWithStops executor embeddings settings [ 2 ]
                    let png (l: Latents) = (Generation.EncodeFile (DecodeExecutor(p).Decode(l, 1).[0])).Bytes
                    Expect.equal (png resumed) (png whole) (sprintf "%O loop, %s, guidance %g: the same PNG bytes" loop sampler guidance)
      Expect.isGreaterThanOrEqual expectedRuns (2 * 5 * 2 * 4) "flow Euler and the four β-schedule samplers (ddim, euler, euler-ancestral, dpm++-2m-karras)"
      Expect.equal checkedRuns expectedRuns "every combination ran"
      finally
          try Directory.Delete(Path.GetDirectoryName dir, true) with _ -> ()

let ``a suspension is resumed once and only by the same run`` =
    testCase "a suspended diffuse resumes once, with the same settings, and a suspend check is never asked before a segment's first step" <| fun () ->
        let p = TinyFixture.pipeline.Value
        let embeddings = EncodeExecutor(p).Encode([| "a fox" |], null, 1)
        let executor = DiffuseExecutor(p, DiffuseLoop.Host)
        let settings = DiffuseSettings(64, 64, 1, 3, [| 5UL |], 1.0, 1)
        // asked before every step but the first: always true stops after exactly one step per segment
        let always = Func<bool>(fun () -> true)
        let first = executor.Diffuse(embeddings, settings, null, always, null)
        Expect.isNull first.Latents "suspended"
        Expect.equal first.Suspended.Step 1 "after the segment's first step"
        Expect.isGreaterThan first.Suspended.Bytes 0L "its latents are kept"
        let other = DiffuseSettings(64, 64, 1, 3, [| 6UL |], 1.0, 1)
        Expect.throwsT<ArgumentException> (fun () -> executor.Diffuse(embeddings, other, first.Suspended, null, null) |> ignore) "another seed is not this run"
        let second = executor.Diffuse(embeddings, settings, first.Suspended, always, null)
        Expect.equal second.Suspended.Step 2 "the resumed segment runs one step, then stops again"
        Expect.throwsT<InvalidOperationException> (fun () -> executor.Diffuse(embeddings, settings, first.Suspended, null, null) |> ignore) "a suspension resumes once"
        let last = executor.Diffuse(embeddings, settings, second.Suspended, always, null)
        Expect.isNull last.Suspended "the last segment's only step is its first: it runs to the end"
        Expect.equal (bits last.Latents) (bits (executor.Diffuse(embeddings, settings))) "and the latents are the run's"

let ``a diffuse suspended on one worker resumes bit-identically on another`` =
    testCase "a diffuse suspended by one worker's executor and resumed by another's (its own sessions) gives the run's latents" <| fun () ->
        // a second worker of the machine: the same pipeline directory opened again, so other sessions
        use second = LoadedPipeline.Open TinyFixture.directory.Value
        let first = TinyFixture.pipeline.Value
        for loop in [ DiffuseLoop.Host; DiffuseLoop.Device ] do
            for guidance in [ 4.0; 1.0 ] do
                let settings = DiffuseSettings(64, 64, 1, 4, [| 33UL |], guidance, 1)
                let embeddings = EncodeExecutor(first).Encode([| "a heron at dawn" |], [| "" |], 1)
                let whole = DiffuseExecutor(first, loop).Diffuse(embeddings, settings)
                let stopAfter2 = Func<bool>(fun () -> true)
                // asked before every step but the segment's first: stops after one step, then after the next
                let one = DiffuseExecutor(first, loop).Diffuse(embeddings, settings, null, stopAfter2, null)
                let two = DiffuseExecutor(first, loop).Diffuse(embeddings, settings, one.Suspended, stopAfter2, null)
                Expect.equal two.Suspended.Step 2 "suspended after two steps on the first worker"
                let rest = DiffuseExecutor(second, loop).Diffuse(embeddings, settings, two.Suspended, null, null)
                Expect.equal (bits rest.Latents) (bits whole) (sprintf "%O loop, guidance %g: resumed elsewhere, latents bit-identical" loop guidance)

[<Tests>]
let tests =
    testList "integration" [ testList "SuspendResumeTests" [
        ``a resumed diffuse is bit-identical to one never suspended``
        ``a suspension is resumed once and only by the same run``
        ``a diffuse suspended on one worker resumes bit-identically on another``
    ] |> testSequenced ]
