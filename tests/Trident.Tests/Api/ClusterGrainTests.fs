/// The cluster's grains in Orleans' in-process test host (TestClusterBuilder, two silos, each a worker with two
/// emulated flux devices): a device grain is pinned to the silo its key names and nowhere else; stage outputs
/// go from worker to worker and the result is the one a single process makes (an executor's own error reaches
/// the coordinator with its message); a silo stopped mid-task fails
/// the task with a clear error and its devices are not re-activated elsewhere.
module Trident.Tests.Api.ClusterGrainTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Orleans
open Orleans.Hosting
open Orleans.Runtime
open Orleans.TestingHost
open Microsoft.Extensions.DependencyInjection
open Trident.Scheduling
open Trident.Runtime.Devices
open Trident.Runtime.Clustering
open Trident.Tests.TestSupport

/// Each test silo is a worker of two emulated flux devices at time scale `scale`.
let private scale = 0.02
let private profile () = EmulatedProfile.Scaled(ReferenceProfiles.flux, scale)
let private cost () = CostModel.create CostSettings.defaults (profile ())
let private devices () =
    new WorkerDevices(DeviceLayout.Emulated(2, 2, 48.0), EmulatedStageExecutorFactory(cost (), 25e9, scale), "flux", "test")

type DeviceSilo() =
    interface ISiloConfigurator with
        member _.Configure(silo: ISiloBuilder) =
            silo.AddPlacementDirector<DevicePlacementStrategy, DevicePlacementDirector>() |> ignore
            silo.Services.AddSingleton<WorkerDevices>(fun _ -> devices ()) |> ignore

type private Cluster() =
    let cluster =
        let builder = TestClusterBuilder(2s)
        builder.AddSiloBuilderConfigurator<DeviceSilo>() |> ignore
        let c = builder.Build()
        c.Deploy()
        c
    member _.Value = cluster
    interface IDisposable with
        member _.Dispose() = cluster.Dispose()

let private endpointOf (silo: SiloHandle) = silo.SiloAddress.Endpoint.ToString()
let private input steps = GenerationInput("a lighthouse at dusk", null, 512, 512, 1, steps, 42UL, 3.5)

type private Steps() =
    member val Count = 0 with get, set
    interface IStepObserver with
        member this.StepCompleted(_, _) = this.Count <- this.Count + 1

let ``a device grain is activated on the silo its key names, and nowhere else`` (cluster: TestCluster) =
    for silo in cluster.Silos do
        for index in [ 0; 1 ] do
            let grain = cluster.GrainFactory.GetGrain<IDeviceGrain>(DeviceKeys.Of(endpointOf silo, index))
            Expect.equal (grain.Silo().Result) (silo.SiloAddress.ToString()) "pinned to its worker's silo"
    let nodes = cluster.Silos |> Seq.map (fun s -> cluster.GrainFactory.GetGrain<INodeGrain>(endpointOf s).Devices().Result) |> Array.ofSeq
    Expect.equal (nodes |> Array.map _.Length) [| 2; 2 |] "each worker lists its two devices"
    Expect.equal nodes[0].[1].Key (DeviceKeys.Of(endpointOf cluster.Silos[0], 1)) "device keys name the worker"
    let absent = cluster.GrainFactory.GetGrain<IDeviceGrain>("127.0.0.1:1/0")
    let e = expectThrowsAny<exn> "a device of a worker that is not in the cluster is not placed anywhere" (fun () -> absent.Silo().GetAwaiter().GetResult() |> ignore)
    Expect.stringContains (string e) "is not in the cluster" "the error names the missing worker"

let ``stage outputs go worker to worker and the result is the single-process one`` (cluster: TestCluster) =
    let key (s: int) (d: int) = DeviceKeys.Of(endpointOf cluster.Silos[s], d)
    let transfers = ClusterTransfers()
    let remote s d = new RemoteStageExecutor(cluster.GrainFactory, key s d, transfers) :> IStageExecutor
    let i = input 4
    let embeddings = (remote 0 0).Encode(i, CancellationToken.None)
    Expect.isTrue (embeddings.Value :? StageHandle) "only a handle reaches the coordinator"
    let steps = Steps()
    let latents = (remote 1 0).Diffuse(i, embeddings, 1, steps, CancellationToken.None)
    let frames = (remote 0 1).Decode(i, latents, CancellationToken.None)
    use local = new EmulatedStageExecutor(DeviceSpec(0, 0, DeviceKind.Emulated, 1, 0, 48.0), cost (), 25e9, scale)
    let expected = local.Decode(i, local.Diffuse(i, local.Encode(i, CancellationToken.None), 1, Steps(), CancellationToken.None), CancellationToken.None)
    Expect.equal frames.Count 1 "one frame"
    Expect.sequenceEqual frames[0].Pixels expected[0].Pixels "the same image as in one process"
    // progress comes back through the observer (one-way calls: wait for the last ones)
    let deadline = DateTime.UtcNow.AddSeconds 30.0
    while steps.Count < 4 && DateTime.UtcNow < deadline do Thread.Sleep 20
    Expect.equal steps.Count 4 "every step was reported to the coordinator"
    Expect.throws (fun () -> (remote 1 0).Decode(i, latents, CancellationToken.None) |> ignore) "an output is handed over once"
    // an executor's own exception type (not one Orleans can serialize) reaches the coordinator with its message,
    // not as a CodecNotFoundException: a 16384² diffuse does not fit in a 48 GB emulated device
    let huge = GenerationInput("a lighthouse at dusk", null, 16384, 16384, 1, 4, 42UL, 3.5)
    let e = expectThrowsAny<exn> "a diffuse over the device's memory fails" (fun () ->
        (remote 1 1).Diffuse(huge, (remote 0 0).Encode(huge, CancellationToken.None), 1, Steps(), CancellationToken.None) |> ignore)
    Expect.stringContains (string e) "EmulatedOutOfMemoryException" "names the executor's error"
    Expect.stringContains (string e) "out of memory in D of 16384×16384×1" "carries its message"
    Expect.isFalse ((string e).Contains "CodecNotFound") "not a serialization failure"

let ``a silo stopped mid-task fails the task with a clear error and its devices are not re-activated elsewhere`` (cluster: TestCluster) =
    let victim = cluster.SecondarySilos[0]
    let key = DeviceKeys.Of(endpointOf victim, 0)
    let executor = new RemoteStageExecutor(cluster.GrainFactory, key, ClusterTransfers()) :> IStageExecutor
    let i = input 400
    let embeddings = executor.Encode(i, CancellationToken.None)
    let steps = Steps()
    let running = Task.Run(fun () -> executor.Diffuse(i, embeddings, 1, steps, CancellationToken.None) |> ignore)
    let deadline = DateTime.UtcNow.AddSeconds 60.0
    while steps.Count < 2 && DateTime.UtcNow < deadline do Thread.Sleep 20
    Expect.isGreaterThanOrEqual steps.Count 2 "the diffuse is running"
    cluster.KillSiloAsync(victim).Wait()
    Expect.throws (fun () -> running.Wait(TimeSpan.FromSeconds 120.0) |> ignore) "the task fails"
    Expect.isTrue running.IsFaulted "the task failed (not still running)"
    let again = cluster.GrainFactory.GetGrain<IDeviceGrain>(key)
    Expect.throws (fun () -> again.Silo().Wait()) "the dead worker's device is not re-activated on another silo"

let ``a remote diffuse is suspended at a step boundary and resumes on its worker with the same result`` (cluster: TestCluster) =
    let key (s: int) (d: int) = DeviceKeys.Of(endpointOf cluster.Silos[s], d)
    let transfers = ClusterTransfers()
    let remote s d = new RemoteStageExecutor(cluster.GrainFactory, key s d, transfers)
    let i = input 100
    let lead = remote 1 0
    Expect.isTrue (lead.WaitCanSuspend(TimeSpan.FromSeconds 30.0)) "an emulated worker's device can suspend"
    let encoder = remote 0 0 :> IStageExecutor
    let embeddings = encoder.Encode(i, CancellationToken.None)
    let steps = Steps()
    // the coordinator's signal turns true after the third step reported: the worker stops at a later boundary
    let first = (lead :> IStageExecutor).DiffuseSegment(i, embeddings, 1, steps, null, Func<bool>(fun () -> steps.Count >= 3), CancellationToken.None)
    Expect.isNull first.Latents "suspended: no latents yet"
    let checkpoint = first.Suspended
    Expect.isNotNull checkpoint "suspended at a step boundary"
    Expect.isTrue (checkpoint.Step >= 3 && checkpoint.Step < 100) (sprintf "after the signal and before the end (step %d)" checkpoint.Step)
    Expect.isTrue (checkpoint.State :? CheckpointHandle) "only a handle reaches the coordinator; the state stays on the worker"
    Expect.equal steps.Count checkpoint.Step "every step up to the boundary was reported"
    // resumed on the other device of the same worker: the remaining steps only, then the latents
    let resumedSteps = Steps()
    let rest = (remote 1 1 :> IStageExecutor).DiffuseSegment(i, embeddings, 1, resumedSteps, checkpoint, Func<bool>(fun () -> false), CancellationToken.None)
    Expect.isNull rest.Suspended "ran to the end"
    Expect.equal resumedSteps.Count (100 - checkpoint.Step) "the resumption reports the remaining steps only"
    let frames = (remote 0 1 :> IStageExecutor).Decode(i, rest.Latents, CancellationToken.None)
    use local = new EmulatedStageExecutor(DeviceSpec(0, 0, DeviceKind.Emulated, 1, 0, 48.0), cost (), 25e9, scale)
    let expected = local.Decode(i, local.Diffuse(i, local.Encode(i, CancellationToken.None), 1, Steps(), CancellationToken.None), CancellationToken.None)
    Expect.sequenceEqual frames[0].Pixels expected[0].Pixels "the same image as a diffuse never suspended"
    let again = expectThrowsAny<exn> "a checkpoint runs once" (fun () ->
        (remote 1 1 :> IStageExecutor).DiffuseSegment(i, embeddings, 1, Steps(), checkpoint, Func<bool>(fun () -> false), CancellationToken.None) |> ignore)
    Expect.stringContains (string again) "is not kept" "names why"
    // a checkpoint stays on the worker that made it: resuming it on the other worker fails, naming that
    let embeddings2 = encoder.Encode(i, CancellationToken.None)
    let steps2 = Steps()
    let stopped = (lead :> IStageExecutor).DiffuseSegment(i, embeddings2, 1, steps2, null, Func<bool>(fun () -> steps2.Count >= 1), CancellationToken.None)
    Expect.isNotNull stopped.Suspended "suspended again"
    let e = expectThrowsAny<exn> "another worker cannot resume it" (fun () ->
        (remote 0 1 :> IStageExecutor).DiffuseSegment(i, embeddings2, 1, Steps(), stopped.Suspended, Func<bool>(fun () -> false), CancellationToken.None) |> ignore)
    Expect.stringContains (string e) "stays on its own worker" "names the rule"

[<Tests>]
let integrationTests =
    let withCluster (name: string) (test: TestCluster -> unit) =
        testCase name <| fun () ->
            use c = new Cluster()
            test c.Value
    testList "integration" [ testList "ClusterGrainTests" [
        withCluster "a device grain is activated on the silo its key names, and nowhere else" ``a device grain is activated on the silo its key names, and nowhere else``
        withCluster "stage outputs go worker to worker and the result is the single-process one" ``stage outputs go worker to worker and the result is the single-process one``
        withCluster "a remote diffuse is suspended at a step boundary and resumes on its worker with the same result" ``a remote diffuse is suspended at a step boundary and resumes on its worker with the same result``
        withCluster "a silo stopped mid-task fails the task with a clear error and its devices are not re-activated elsewhere" ``a silo stopped mid-task fails the task with a clear error and its devices are not re-activated elsewhere``
    ] |> testSequenced ]
