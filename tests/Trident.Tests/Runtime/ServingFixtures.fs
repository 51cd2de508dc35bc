/// Test-only building blocks for the serving runtime: a profile written here (not a measurement), and a
/// stage executor that runs no model, so the worker and loop tests control timing and failures exactly.
/// The server's own tests of generation (Api/*) run the real bundled pipeline.
module Trident.Tests.Runtime.ServingFixtures

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Threading
open Trident.Scheduling
open Trident.Runtime.Devices
open Trident.Runtime.Imaging

/// A small, made-up profile of a "test" model (test-only): encode 5 ms, diffuse 10 ms per step at
/// 64×64 (quadratic in pixels), 1.8× faster at degree 2, decode 5 ms.
let testProfile: Profile =
    let point h w k (sec: float) =
        { Shape = Shape.image h w
          Degree = k
          Seconds = sec * 1.0<s>
          PeakActivation = 0.01<GB> }
    let sizes = [ 64; 128; 256 ]
    let scale (n: int) = float (n * n) / (64.0 * 64.0)
    { Model = ModelName "test"
      DeviceClass = "test-only, not measured"
      DeviceMemory = 8.0<GB>
      Source = "tests/Trident.Tests/Runtime/ServingFixtures.fs (made up)"
      Video = false
      DefaultSteps = 4
      EmbeddingBytes = 1e5<B>
      LatentBytesPerMpf = 1e6<B>
      Encode = { Weights = 0.1<GB>; Estimated = true; Points = [ for n in sizes -> point n n 1 0.005 ]; Batches = [] }
      Diffuse =
        { Weights = 0.2<GB>
          Estimated = true
          Points =
            [ for n in sizes do
                  yield point n n 1 (0.010 * scale n ** 1.5)
                  yield point n n 2 (0.010 * scale n ** 1.5 / 1.8) ]
          Batches = [] }
      Decode = { Weights = 0.1<GB>; Estimated = true; Points = [ for n in sizes -> point n n 1 (0.005 * scale n) ]; Batches = [] } }

/// What a fake executor did, in order: "d0 encode 7", "d1 diffuse 7 k=2 threads=2", …
type ExecutionLog() =
    let entries = ConcurrentQueue<string>()
    member _.Add(s: string) = entries.Enqueue s
    member _.Entries = List.ofSeq entries

/// The stages a fake executor holds: a fake has no eager load, so a stage's first task loads it; thread-safe.
type ResidentStages() =
    let stages = HashSet<Stage>()
    member _.Load(s: Stage) = lock stages (fun () -> stages.Add s |> ignore)
    member _.Unload(s: Stage) = lock stages (fun () -> stages.Remove s |> ignore)
    member _.Snapshot = lock stages (fun () -> HashSet<Stage>(stages) :> IReadOnlySet<Stage>)

/// Test-only executor: no model. Encode and decode take `stageDelay`; each diffuse step takes `stepDelay`
/// and honours cancellation; a prompt equal to `failPrompt` makes encode throw. It can suspend a diffuse at a
/// step boundary (used when the serving settings turn preemption on).
type FakeExecutor(device: DeviceSpec, log: ExecutionLog, stepDelay: TimeSpan, stageDelay: TimeSpan, failPrompt: string) =
    let resident = ResidentStages()
    let load (s: Stage) = resident.Load s
    interface IStageExecutor with
        member _.Resident = resident.Snapshot
        member _.Unload s = resident.Unload s
        member _.Encode(input, ct) =
            load Encode
            log.Add(sprintf "d%d encode %s" device.Id input.Prompt)
            if input.Prompt = failPrompt then failwith "encoder exploded (test)"
            Thread.Sleep stageDelay
            StageOutput(box input.Prompt, 64L)
        member _.Diffuse(input, embeddings, threads, observer, ct) =
            load Diffuse
            log.Add(sprintf "d%d diffuse %s threads=%d" device.Id (string embeddings.Value) threads)
            for i in 1 .. input.Steps do
                ct.ThrowIfCancellationRequested()
                Thread.Sleep stepDelay
                observer.StepCompleted(i, input.Steps)
            StageOutput(box (input.Width, input.Height), 128L)
        // Suspendable (preemption): each step is logged as "d0 step <prompt> <k>"; a checkpoint is the steps done.
        member _.CanSuspend = true
        member _.DiffuseSegment(input, embeddings, threads, observer, from, suspend, ct) =
            load Diffuse
            let first = if isNull from then 0 else from.Step
            log.Add(sprintf "d%d diffuse %s threads=%d from=%d" device.Id (string embeddings.Value) threads first)
            let mutable i = first
            let mutable stopped = None
            while stopped.IsNone && i < input.Steps do
                ct.ThrowIfCancellationRequested()
                if i > first && suspend.Invoke() then stopped <- Some i
                else
                    Thread.Sleep stepDelay
                    log.Add(sprintf "d%d step %s %d" device.Id input.Prompt (i + 1))
                    observer.StepCompleted(i + 1, input.Steps)
                    i <- i + 1
            match stopped with
            | Some k -> DiffuseSegmentResult(null, DiffuseCheckpoint(k, input.Steps, threads, box k, 8L))
            | None -> DiffuseSegmentResult(StageOutput(box (input.Width, input.Height), 128L), null)
        member _.Decode(input, latents, ct) =
            load Decode
            log.Add(sprintf "d%d decode" device.Id)
            Thread.Sleep stageDelay
            let pixels = Array.init (input.Width * input.Height * 3) (fun i -> byte (i % 251))
            [| RgbImage(input.Width, input.Height, pixels) |] :> IReadOnlyList<RgbImage>
        member _.Dispose() = ()

/// Creates fake executors sharing one log.
type FakeExecutors(log: ExecutionLog, stepDelay: TimeSpan, stageDelay: TimeSpan, failPrompt: string) =
    new(log) = FakeExecutors(log, TimeSpan.FromMilliseconds 5.0, TimeSpan.FromMilliseconds 2.0, "fail")
    interface IStageExecutorFactory with
        member _.Create device = new FakeExecutor(device, log, stepDelay, stageDelay, failPrompt)

/// A generation input of the test profile's smallest size.
let input (prompt: string) (steps: int) =
    GenerationInput(prompt, null, 64, 64, 1, steps, 1UL, 1.0)

/// Waits until `condition` holds, at most `seconds`; fails the test otherwise.
let waitUntil (seconds: float) (what: string) (condition: unit -> bool) =
    let deadline = DateTime.UtcNow.AddSeconds seconds
    while not (condition ()) && DateTime.UtcNow < deadline do
        Thread.Sleep 10
    if not (condition ()) then failwithf "timed out after %.0f s waiting until %s" seconds what

/// One stage of one job held by a test: the executor reports that the stage's work began, then waits until
/// the test opens the gate. A cancellable gate also ends (with OperationCanceledException) when the job is
/// cancelled, as a diffuse step boundary does; a non-cancellable one models a run that cannot be interrupted
/// (an ONNX Runtime decode), so it always returns once opened.
type StageGate(cancellable: bool) =
    let entered = new ManualResetEventSlim(false)
    let opened = new ManualResetEventSlim(false)
    member _.Pass(ct: CancellationToken) =
        entered.Set()
        if cancellable then opened.Wait ct else opened.Wait()
    /// Waits until the stage's work began (fails the test after `seconds`).
    member _.WaitEntered(seconds: float) =
        if not (entered.Wait(TimeSpan.FromSeconds seconds)) then failwithf "the gated stage did not begin within %.0f s" seconds
    member _.Open() = opened.Set()

/// The gates of one test, by prompt and stage; an ungated stage runs at once.
type Gates() =
    let gates = ConcurrentDictionary<string * Stage, StageGate>()
    /// Holds `stage` of the job with `prompt` (decode gates are not cancellable, the others are).
    member _.Hold(prompt: string, stage: Stage) = gates.GetOrAdd((prompt, stage), fun _ -> StageGate(stage <> Stage.Decode))
    member _.Pass(prompt: string, stage: Stage, ct: CancellationToken) =
        match gates.TryGetValue((prompt, stage)) with
        | true, g -> g.Pass ct
        | _ -> ()

/// Test-only executor whose stages take no time unless a test holds them at a gate; diffuse checks
/// cancellation at every step, as the real one does.
type GatedExecutor(gates: Gates) =
    let resident = ResidentStages()
    let load (s: Stage) = resident.Load s
    interface IStageExecutor with
        member _.Resident = resident.Snapshot
        member _.Unload s = resident.Unload s
        member _.Encode(input, ct) =
            load Stage.Encode
            gates.Pass(input.Prompt, Stage.Encode, ct)
            StageOutput(box input.Prompt, 64L)
        member _.Diffuse(input, embeddings, threads, observer, ct) =
            load Stage.Diffuse
            gates.Pass(input.Prompt, Stage.Diffuse, ct)
            for i in 1 .. input.Steps do
                ct.ThrowIfCancellationRequested()
                observer.StepCompleted(i, input.Steps)
            StageOutput(box (input.Width, input.Height), 128L)
        member _.Decode(input, latents, ct) =
            load Stage.Decode
            gates.Pass(input.Prompt, Stage.Decode, ct)
            let pixels = Array.init (input.Width * input.Height * 3) (fun i -> byte (i % 251))
            [| RgbImage(input.Width, input.Height, pixels) |] :> IReadOnlyList<RgbImage>
        member _.Dispose() = ()

/// Creates gated executors sharing one set of gates.
type GatedExecutors(gates: Gates) =
    interface IStageExecutorFactory with
        member _.Create _ = new GatedExecutor(gates)

/// The job of a submission that must have been accepted; fails the test otherwise.
let accepted (outcome: Trident.Runtime.Serving.SubmitOutcome) =
    match outcome with
    | :? Trident.Runtime.Serving.SubmitOutcome.Accepted as a -> a.Job
    | other -> failwithf "expected the job to be accepted, got %A" other

/// Waits until the job is in a final state, at most `seconds`; fails the test otherwise.
let finishedWithin seconds (j: Trident.Runtime.Serving.Job) =
    waitUntil seconds (sprintf "job %O is over" j.Id) (fun () -> Trident.Runtime.Serving.Job.IsTerminalStatus j.Status)

/// A job of the test model (64×64, `steps` steps, deadline 10 s after arrival 0) created at `createdAt`.
let testJob (createdAt: DateTimeOffset) (id: int64) (steps: int) =
    let r =
        { Id = RequestId id
          Model = ModelName "test"
          Shape = Shape.image 64 64
          Steps = steps
          Arrival = 0.0<s>
          Deadline = 10.0<s>
          Priority = None }
    Trident.Runtime.Serving.Job(r, input "p" steps, createdAt, false)
