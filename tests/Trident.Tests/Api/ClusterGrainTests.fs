/// The cluster's grains in Orleans' in-process test host (TestClusterBuilder, two silos, each a worker with two
/// emulated flux devices): a device grain is pinned to the silo its key names and nowhere else; stage outputs
/// go from worker to worker and the result is the one a single process makes (an executor's own error reaches
/// the coordinator with its message); a silo stopped mid-task fails
/// the task with a clear error and its devices are not re-activated elsewhere.
module Trident.Tests.Api.ClusterGrainTests

#nowarn "44" // RedisConnectionException's two-argument constructor (the exception as StackExchange.Redis throws it)

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
open Trident.Runtime.Serving
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

type private Cluster(silos: int16) =
    let cluster =
        let builder = TestClusterBuilder(silos)
        builder.AddSiloBuilderConfigurator<DeviceSilo>() |> ignore
        let c = builder.Build()
        c.Deploy()
        c
    member _.Value = cluster
    new() = new Cluster(2s)
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

/// A suspended diffuse's checkpoint keeps the embeddings it ran with: its resumption neither fetches them again nor
/// needs their producer to keep them (an output nobody released is dropped after 10 min, a checkpoint is kept 30; and
/// the producer's worker may be gone). Before, the resumption fetched them again and, once they were dropped there,
/// failed as a missing input — the checkpoint taken and lost, the job started again from nothing.
let ``a suspended remote diffuse resumes though its embeddings' producer no longer keeps them`` (cluster: TestCluster) =
    let key (s: int) (d: int) = DeviceKeys.Of(endpointOf cluster.Silos[s], d)
    let remote s d = new RemoteStageExecutor(cluster.GrainFactory, key s d, ClusterTransfers())
    let i = input 20
    let lead = remote 1 0
    Expect.isTrue (lead.WaitCanSuspend(TimeSpan.FromSeconds 30.0)) "an emulated worker's device can suspend"
    let embeddings = (remote 0 0 :> IStageExecutor).Encode(i, CancellationToken.None)
    let steps = Steps()
    let first = (lead :> IStageExecutor).DiffuseSegment(i, embeddings, 1, steps, null, Func<bool>(fun () -> steps.Count >= 2), CancellationToken.None)
    Expect.isNotNull first.Suspended "suspended at a step boundary"
    // the producer drops the embeddings (as when they outlive WorkerDevices.OutputLifetime)
    let handle = embeddings.Value :?> StageHandle
    cluster.GrainFactory.GetGrain<IDeviceGrain>(handle.Device).Release(handle.Output).Wait()
    Thread.Sleep 500 // one-way
    let rest = (remote 1 1 :> IStageExecutor).DiffuseSegment(i, embeddings, 1, Steps(), first.Suspended, Func<bool>(fun () -> false), CancellationToken.None)
    Expect.isNull rest.Suspended "ran to the end"
    let frames = (remote 0 1 :> IStageExecutor).Decode(i, rest.Latents, CancellationToken.None)
    use local = new EmulatedStageExecutor(DeviceSpec(0, 0, DeviceKind.Emulated, 1, 0, 48.0), cost (), 25e9, scale)
    let expected = local.Decode(i, local.Diffuse(i, local.Encode(i, CancellationToken.None), 1, Steps(), CancellationToken.None), CancellationToken.None)
    Expect.sequenceEqual frames[0].Pixels expected[0].Pixels "the same image as a diffuse never suspended"

/// Orleans drops a grain's activation when it likes (idle past its collection age; the silo that held its directory
/// entry left the cluster: the operator's kills): a device's outputs are its worker's, not its activation's, so the
/// next stage still finds them — on the same device (the operator's "device …/7 has no output 8 (its worker
/// restarted?)") and on another worker's.
let ``stage outputs outlive their device grain's activation`` (cluster: TestCluster) =
    let key (s: int) (d: int) = DeviceKeys.Of(endpointOf cluster.Silos[s], d)
    let transfers = ClusterTransfers()
    let remote s d = new RemoteStageExecutor(cluster.GrainFactory, key s d, transfers) :> IStageExecutor
    let i = input 4
    let own = (remote 0 0).Encode(i, CancellationToken.None)
    let other = (remote 0 1).Encode(i, CancellationToken.None)
    let management = cluster.GrainFactory.GetGrain<IManagementGrain>(0L)
    let before = management.GetTotalActivationCount().Result
    management.ForceActivationCollection(TimeSpan.Zero).Wait()
    Expect.isLessThan (management.GetTotalActivationCount().Result) before "the device grains' activations were dropped"
    let latents = (remote 0 0).Diffuse(i, own, 1, Steps(), CancellationToken.None)
    let latents2 = (remote 1 0).Diffuse(i, other, 1, Steps(), CancellationToken.None)
    management.ForceActivationCollection(TimeSpan.Zero).Wait()
    let frames = (remote 1 1).Decode(i, latents, CancellationToken.None)
    let frames2 = (remote 0 0).Decode(i, latents2, CancellationToken.None)
    Expect.sequenceEqual frames[0].Pixels frames2[0].Pixels "both reach the same image"

type private NoSteps() =
    interface IStepSink with
        member _.Step(_, _) = Task.CompletedTask

/// A worker killed after its stage ended but before the coordinator had the reply leaves the job to resume from the
/// stage's input: the input stays until the coordinator releases it (it did when the worker's grain replied, and the
/// resumed stage found it missing). Here the diffuse's reply never reaches a RemoteStageExecutor (the grain is called
/// directly): its embeddings are still there for another device's diffuse, which releases them once it replied.
let ``a stage's input stays until the coordinator has the stage's reply`` (cluster: TestCluster) =
    let key (s: int) (d: int) = DeviceKeys.Of(endpointOf cluster.Silos[s], d)
    let remote s d = new RemoteStageExecutor(cluster.GrainFactory, key s d, ClusterTransfers()) :> IStageExecutor
    let i = input 4
    let embeddings = (remote 0 0).Encode(i, CancellationToken.None)
    let handle = embeddings.Value :?> StageHandle
    let sink = cluster.GrainFactory.CreateObjectReference<IStepSink>(NoSteps())
    for s, d in [ 1, 0; 0, 0 ] do // another worker's device, then the producer itself
        cluster.GrainFactory.GetGrain<IDeviceGrain>(key s d).Diffuse(WireInput.Of i, handle, 1, sink, CancellationToken.None).Wait()
    (remote 1 1).Diffuse(i, embeddings, 1, Steps(), CancellationToken.None) |> ignore
    Thread.Sleep 500 // the coordinator's release is one-way
    Expect.throws (fun () -> (remote 0 1).Diffuse(i, embeddings, 1, Steps(), CancellationToken.None) |> ignore) "released once the coordinator had a reply"

/// A stage whose input its producer no longer keeps loses no device: the error says "missing", names the producer, and
/// the job starts again (DeviceLostException.FromStart) with no worker reported lost; an input whose producer cannot be
/// reached names the producer — never the device that asked for it (the operator's healthy worker evicted).
let ``a missing stage input is attributed to its producer and evicts nobody`` (cluster: TestCluster) =
    let key (s: int) (d: int) = DeviceKeys.Of(endpointOf cluster.Silos[s], d)
    let directory = DeviceDirectory()
    directory.Add([ key 0 0; key 0 1; key 1 0; key 1 1 ]) |> ignore
    let reported = Collections.Concurrent.ConcurrentQueue<string>()
    directory.Lost <- Action<string, string>(fun k _ -> reported.Enqueue k)
    let remote s d = new RemoteStageExecutor(cluster.GrainFactory, key s d, ClusterTransfers(), directory, null, directory.Id(key s d)) :> IStageExecutor
    let i = input 4
    let ghost device = StageOutput(StageHandle(device, 123456789L, 1000L), 1000L)
    for producer in [ key 1 0; key 0 0 ] do
        let e = expectThrowsAny<DeviceLostException> "a stage whose input is not kept fails" (fun () ->
            (remote 0 0).Diffuse(i, ghost producer, 1, Steps(), CancellationToken.None) |> ignore)
        Expect.isTrue e.FromStart $"the job starts again (input of {producer})"
        Expect.equal e.Device -1 "no device is lost"
        Expect.stringContains e.Message producer "the producer is named"
        Expect.isEmpty reported "nobody is reported lost"
    // a released output: handed over once, then missing
    let embeddings = (remote 1 1).Encode(i, CancellationToken.None)
    (remote 0 1).Diffuse(i, embeddings, 1, Steps(), CancellationToken.None) |> ignore
    Thread.Sleep 500 // the coordinator's release is one-way
    let e = expectThrowsAny<DeviceLostException> "a released input is missing" (fun () ->
        (remote 0 0).Diffuse(i, embeddings, 1, Steps(), CancellationToken.None) |> ignore)
    Expect.isTrue e.FromStart "the job starts again"
    Expect.isEmpty reported "nobody is reported lost"
    // the producer's worker is not in the cluster: the producer is lost, not the device that asked
    let gone = "127.0.0.1:1/0"
    let e = expectThrowsAny<DeviceLostException> "an unreachable producer" (fun () ->
        (remote 0 0).Diffuse(i, ghost gone, 1, Steps(), CancellationToken.None) |> ignore)
    Expect.isFalse e.FromStart "resumes where it can"
    Expect.sequenceEqual (reported.ToArray()) [ gone ] "the producer is reported lost, and only it"
    // the attribution itself
    let executor = new RemoteStageExecutor(cluster.GrainFactory, key 0 0, ClusterTransfers())
    let missing = InvalidOperationException($"{DeviceGrain.InputMissing}{key 1 0}: output 8 is not kept there")
    Expect.equal (executor.Attribute(missing, null)) (Nullable(struct (key 1 0, true))) "missing: the producer, no loss"
    Expect.isNull (executor.LostDevice(missing, null) |> box) "a missing input is no lost device"
    let lost = InvalidOperationException($"{DeviceGrain.InputLost}{key 1 0}: SiloUnavailableException: gone")
    Expect.equal (executor.LostDevice(lost, null)) (key 1 0) "lost: the producer"

/// Three workers; the third is killed: every device of the two others still has its outputs (a guard: this passed
/// before the fix too, 4 runs — the killed silo did not drop the others' activations here).
let ``killing one worker leaves the others' outputs in place`` (cluster: TestCluster) =
    let key (s: int) (d: int) = DeviceKeys.Of(endpointOf cluster.Silos[s], d)
    let remote s d = new RemoteStageExecutor(cluster.GrainFactory, key s d, ClusterTransfers()) :> IStageExecutor
    let i = input 4
    let kept = [ for s in 0..1 do for d in 0..1 -> (s, d), (remote s d).Encode(i, CancellationToken.None) ]
    let victim = cluster.Silos[2]
    cluster.KillSiloAsync(victim).Wait()
    let management = cluster.GrainFactory.GetGrain<IManagementGrain>(0L)
    let deadline = DateTime.UtcNow.AddSeconds 90.0
    while management.GetHosts(true).Result.Count > 2 && DateTime.UtcNow < deadline do Thread.Sleep 200
    Expect.equal (management.GetHosts(true).Result.Count) 2 "the killed worker left the cluster"
    Thread.Sleep 2000 // the survivors' directories settle
    for (s, d), embeddings in kept do
        (remote s d).Diffuse(i, embeddings, 1, Steps(), CancellationToken.None) |> ignore

/// A worker's own store of stage outputs and checkpoints (WorkerDevices) in the test host.
let private storeOf (silo: SiloHandle) = (silo :?> InProcessSiloHandle).SiloHost.Services.GetRequiredService<WorkerDevices>()

type private NoWorkerEvents() =
    interface IWorkerObserver with
        member _.Started(_, _) = ()
        member _.Finished(_, _, _) = ()

/// An in-process coordinator's device workers over the cluster's devices — id 0: silo 0's device 0, 1: silo 1's
/// device 0, 2: silo 0's device 1, 3: silo 1's device 1 — and its PlanExecutor (as ServingLoop makes them).
let private coordinator (cluster: TestCluster) (suspended: SuspendedJob -> unit) =
    let places = [| 0, 0; 1, 0; 0, 1; 1, 1 |]
    let workers =
        places |> Array.mapi (fun id (s, d) ->
            let executor = new RemoteStageExecutor(cluster.GrainFactory, DeviceKeys.Of(endpointOf cluster.Silos[s], d), ClusterTransfers())
            executor.WaitCanSuspend(TimeSpan.FromSeconds 30.0) |> ignore
            new Worker(DeviceSpec(id, s, DeviceKind.Emulated, 1, 0, 48.0), EDC, executor, NoWorkerEvents(), 16))
    let plans = PlanExecutor(workers, DeviceLedger workers.Length, ServerClock TimeProvider.System, 8, null, Action<SuspendedJob>(suspended), Suspendable = true)
    workers, plans

let private clusterJob (id: int64) (steps: int) =
    let i = input steps
    let r = { Id = RequestId id; Model = ModelName "flux"; Shape = Shape.image i.Height i.Width; Steps = steps; Arrival = 0.0<s>; Deadline = 60.0<s>; Priority = None }
    Job(r, i, DateTimeOffset.UtcNow, false)

let private route (id: int64) (encode: int) (diffuse: int) (decode: int) =
    let at d = { Devices = [ DeviceId d ]; Start = 0.0<s>; Finish = 1.0<s> }
    { Request = RequestId id; Degree = 1; Vr = VrType.V0; Encode = at encode; Diffuse = at diffuse; Decode = at decode; OnTime = true; Reward = 1.0 }

let private waitFor (seconds: float) (what: string) (condition: unit -> bool) =
    let deadline = DateTime.UtcNow.AddSeconds seconds
    while not (condition ()) && DateTime.UtcNow < deadline do
        Thread.Sleep 20
    if not (condition ()) then failwithf "timed out after %.0f s waiting until %s" seconds what

/// A job that ends without reading its stage outputs (cancelled, failed, or started again) has them freed on the
/// workers that made them at once. Before, an output was dropped only by the stage that read it, or once it was 10
/// minutes old and its worker stored another: a job cancelled during its diffuse left its embeddings on the encode
/// device's worker (4 MiB for flux; an idle worker kept them for good), and a job cancelled while suspended its
/// checkpoint as well.
let ``a job that ends without reading its stage outputs has them freed on the workers that made them`` (cluster: TestCluster) =
    let producer, diffuser = storeOf cluster.Silos[0], storeOf cluster.Silos[1]
    use stops = new Collections.Concurrent.BlockingCollection<SuspendedJob>()
    let workers, plans = coordinator cluster stops.Add
    try
        // cancelled during its diffuse: the embeddings on silo 0 (its encode device) are freed
        let before = producer.Outputs
        let job = clusterJob 1L 4000
        let d = route 1L 0 1 2
        plans.ExecuteAsync(job, d, JobRoute(1L, "test", d), CancellationToken.None).AsTask().Wait()
        waitFor 30.0 "the job diffuses" (fun () -> job.View().Step > 0)
        Expect.equal producer.Outputs (before + 1) "its embeddings are kept on the encode device's worker while it diffuses"
        Expect.isTrue (job.RequestCancel 0.0) "cancelled"
        waitFor 30.0 "the job is cancelled" (fun () -> job.Status = JobStatus.Cancelled)
        waitFor 5.0 "the cancelled job's embeddings are freed on their worker" (fun () -> producer.Outputs = before)
        // suspended, then cancelled before its resumption ran: its checkpoint (silo 1) and embeddings (silo 0) are freed
        let job2 = clusterJob 2L 4000
        let d2 = route 2L 0 1 2
        let task = plans.ExecuteAsync(job2, d2, JobRoute(2L, "test", d2), CancellationToken.None).AsTask().Result
        waitFor 30.0 "the second job diffuses" (fun () -> job2.View().Step > 0)
        task.Suspend.Request()
        let mutable stopped = Unchecked.defaultof<SuspendedJob>
        Expect.isTrue (stops.TryTake(&stopped, TimeSpan.FromSeconds 30.0)) "suspended"
        Expect.equal (producer.Outputs, diffuser.Checkpoints) (before + 1, 1) "its embeddings and its checkpoint are kept for its resumption"
        Expect.isTrue (job2.Suspend(0.0, stopped.Checkpoint.Step)) "suspended (as the serving loop records it)"
        Expect.isTrue (job2.RequestCancel 0.0) "cancelled while suspended"
        plans.ResumeAsync(stopped, stopped.Group, 1.0, 1.0, CancellationToken.None).AsTask().Wait()
        waitFor 5.0 "the cancelled job's checkpoint and embeddings are freed on their workers" (fun () ->
            producer.Outputs = before && diffuser.Checkpoints = 0)
    finally
        for w in workers do (w :> IDisposable).Dispose()

[<Tests>]
let integrationTests =
    let withCluster (name: string) (test: TestCluster -> unit) =
        testCase name <| fun () ->
            use c = new Cluster()
            test c.Value
    let withCluster3 (name: string) (test: TestCluster -> unit) =
        testCase name <| fun () ->
            use c = new Cluster(3s)
            test c.Value
    testList "integration" [ testList "ClusterGrainTests" [
        withCluster "a device grain is activated on the silo its key names, and nowhere else" ``a device grain is activated on the silo its key names, and nowhere else``
        withCluster "stage outputs go worker to worker and the result is the single-process one" ``stage outputs go worker to worker and the result is the single-process one``
        withCluster "a remote diffuse is suspended at a step boundary and resumes on its worker with the same result" ``a remote diffuse is suspended at a step boundary and resumes on its worker with the same result``
        withCluster "a silo stopped mid-task fails the task with a clear error and its devices are not re-activated elsewhere" ``a silo stopped mid-task fails the task with a clear error and its devices are not re-activated elsewhere``
        withCluster "a suspended remote diffuse resumes though its embeddings' producer no longer keeps them" ``a suspended remote diffuse resumes though its embeddings' producer no longer keeps them``
        withCluster "stage outputs outlive their device grain's activation" ``stage outputs outlive their device grain's activation``
        withCluster "a stage's input stays until the coordinator has the stage's reply" ``a stage's input stays until the coordinator has the stage's reply``
        withCluster "a missing stage input is attributed to its producer and evicts nobody" ``a missing stage input is attributed to its producer and evicts nobody``
        withCluster3 "killing one worker leaves the others' outputs in place" ``killing one worker leaves the others' outputs in place``
        withCluster "a job that ends without reading its stage outputs has them freed on the workers that made them" ``a job that ends without reading its stage outputs has them freed on the workers that made them``
    ] |> testSequenced ]

/// One-line messages of the cluster's failures (no developer advice, no false alarms).
[<Tests>]
let messageTests =
    testList "unit" [ testList "ClusterMessages" [
        testCase "an unreachable Redis is one line naming it, without StackExchange.Redis' advice to developers" <| fun () ->
            let e = StackExchange.Redis.RedisConnectionException(StackExchange.Redis.ConnectionFailureType.UnableToConnect,
                        "It was not possible to connect to the redis server(s). Error connecting right now. To allow this multiplexer to continue retrying until it's able to connect, use abortConnect=false in your connection string or AbortOnConnectFail=false; in your code.")
            let options = Trident.Api.Options.ClusterOptions(Mode = "redis", Redis = "127.0.0.1:8599")
            let line = Trident.Api.Hosting.ClusterSilo.StartFailure(InvalidOperationException("start failed", e), options)
            Expect.equal line "cannot reach Redis at 127.0.0.1:8599 (Trident:Cluster:Redis, --redis): It was not possible to connect to the redis server(s)." "named, advice cut"
            Expect.stringContains (Trident.Api.Hosting.ClusterSilo.StartFailure(IO.IOException "port taken", options)) "IOException: port taken" "anything else as it is"
        testCase "a silo's start failure is one line, though Orleans' message carries its inner exception's stack trace" <| fun () ->
            // as a worker whose coordinator never answered printed it after Orleans' 5 min (2026-12-02; there an OrleansMessageRejectionException)
            let e = OrleansException("Exception while sending message: Orleans.Runtime.Messaging.ConnectionFailedException: Unable to connect to endpoint S127.0.0.1:19101:0. See InnerException\n ---> Orleans.Networking.Shared.SocketConnectionException: Unable to connect to 127.0.0.1:19101. Error: ConnectionRefused\n   at Orleans.Networking.Shared.SocketConnectionFactory.ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken)")
            let line = Trident.Api.Hosting.ClusterSilo.StartFailure(e, Trident.Api.Options.ClusterOptions())
            Expect.equal line "OrleansException: Exception while sending message: Orleans.Runtime.Messaging.ConnectionFailedException: Unable to connect to endpoint S127.0.0.1:19101:0. See InnerException" "its first line"
        testCase "a worker's last line says whether its coordinator restarted or the cluster declared it dead" <| fun () ->
            // Orleans' contexts in a localhost cluster (2026-12-02): the coordinator killed and started again; the worker
            // paused (SIGSTOP) for 80 s, its coordinator up all along — it said "the coordinator restarted" then too
            let restarted = "The development membership table version decreased from 7 to 2. The cluster's membership state has been lost and this silo must terminate."
            let dead = "I have been told I am dead, so this silo will stop! Reason: The membership view classifies this silo as Dead (in Refresh). Membership: [Version: 5, MinimumSiloGeneration: 155210260, 0 retained deaths, 2 silos, SiloAddress=S127.0.0.1:19131:155213769 SiloName=Silo_1d741 Status=Active, SiloAddress=S127.0.0.1:19134:155213769 SiloName=Silo_911de Status=Dead]."
            let localhost = Trident.Api.Options.ClusterOptions(Mode = "localhost")
            let redis = Trident.Api.Options.ClusterOptions(Mode = "redis")
            let fatal options (context: string) (e: exn) = Trident.Api.Cli.WorkerCommand.FatalErrorLine(options, null, context, e)
            let struct (line, code) = fatal localhost restarted (OrleansException restarted)
            Expect.equal code 3 "restarted: exit 3"
            Expect.stringContains line "the coordinator restarted; localhost membership does not survive it" "restarted: says so"
            for options in [ localhost; redis ] do
                let struct (line, code) = fatal options dead null
                Expect.equal code 3 $"declared dead ({options.Mode}): exit 3"
                Expect.stringContains line "the cluster declared this worker dead (I have been told I am dead, so this silo will stop! Reason: The membership view classifies this silo as Dead (in Refresh)); it did not answer" $"declared dead ({options.Mode}): says so"
                Expect.isFalse (line.Contains "restarted") $"not a coordinator restart ({options.Mode})"
                Expect.isFalse (line.Contains "Version: 5") "without the membership view"
            let struct (_, code) = fatal localhost "Catalog" (InvalidOperationException "broken")
            Expect.equal code 1 "any other fatal error: exit 1"
        testCase "a redis-mode worker with no coordinator names the other cluster ids in its Redis: exit 2 when there are some, else 1" <| fun () ->
            // the entries as Orleans.Clustering.Redis 10.4.2 stored them (2026-12-02): the coordinator active (Status 3), a worker dead (6)
            let coordinator = """{"SiloAddress":{"SiloAddress":"127.0.0.1:19501@155215391"},"Status":3,"SuspectTimes":[],"ProxyPort":19502,"HostName":"vm","SiloName":"trident-coordinator","RoleName":"trident","UpdateZone":0,"FaultZone":0,"StartTime":"2026-12-02T11:23:11.8855405Z","IAmAliveTime":"2026-12-02T11:23:15.112523Z"}"""
            Expect.isTrue (Trident.Api.Cli.WorkerCommand.HoldsCoordinator [ "2"; coordinator ]) "an active coordinator (the Version field is no entry)"
            Expect.isFalse (Trident.Api.Cli.WorkerCommand.HoldsCoordinator [ coordinator.Replace("\"Status\":3", "\"Status\":6") ]) "a dead one is none"
            Expect.isFalse (Trident.Api.Cli.WorkerCommand.HoldsCoordinator [ coordinator.Replace("trident-coordinator", "Silo_1d741"); "not json {" ]) "a worker, or an entry that does not read, is none"
            let options = Trident.Api.Options.ClusterOptions(Mode = "redis", Redis = "10.0.0.5:6379", ClusterId = "wrong", CoordinatorWaitSeconds = 300)
            let struct (line, code) = Trident.Api.Cli.WorkerCommand.AloneLine(options, 1, Trident.Api.Cli.RedisClusterIds([| struct ("old", false); struct ("trident", true) |], null))
            Expect.equal code 2 "other ids: exit 2"
            Expect.equal line "trident worker: no coordinator in the cluster 'wrong' (membership in Redis at 10.0.0.5:6379) 300 s after the worker's start (Trident:Cluster:CoordinatorWaitSeconds; this worker was alone in it); that Redis holds the membership of other cluster id(s): 'old', 'trident' (its coordinator is active): give the worker the coordinator's Trident:Cluster:ClusterId (docs/cluster.md)" "the line"
            let struct (line, code) = Trident.Api.Cli.WorkerCommand.AloneLine(options, 3, Trident.Api.Cli.RedisClusterIds([||], null))
            Expect.equal code 1 "no other id: exit 1, as a localhost worker whose coordinator never came"
            Expect.stringContains line "(Trident:Cluster:CoordinatorWaitSeconds; 2 other worker(s) in it); no other cluster id is in that Redis: start the coordinator with the same --redis and Trident:Cluster:ClusterId" "says so"
            let struct (line, code) = Trident.Api.Cli.WorkerCommand.AloneLine(options, 1, Trident.Api.Cli.RedisClusterIds([||], "RedisTimeoutException: Timeout"))
            Expect.equal code 1 "ids not listed: exit 1"
            Expect.stringContains line "the other cluster ids in that Redis could not be listed (RedisTimeoutException: Timeout)" "says why"
        testCase "workers of another profile at the coordinator's start are refused whole, and a join timeout names them and why" <| fun () ->
            // before: a worker of another profile present at the start made the coordinator exit 1 (InvalidOperationException)
            let flux, sd3 = "emulated flux × 0.02", "emulated sd3 × 0.02"
            let device (endpoint: string) i (profile: string) = WireDevice($"{endpoint}/{i}", "emulated", 48.0, 1, "flux", profile)
            let a, b, c = "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"
            let found = [ device a 0 sd3; device a 1 sd3; device b 0 flux; device b 1 flux; device c 0 flux; device c 1 "emulated flux × 0.05" ]
            let struct (accepted, refused) = Trident.Api.Hosting.ClusterServingBackend.SplitByProfile(found, flux)
            Expect.equal [ for d in accepted -> d.Key ] [ b + "/0"; b + "/1" ] "only the devices of the worker serving the coordinator's profile"
            Expect.equal (List.ofSeq refused) [ Trident.Api.Hosting.ClusterServingBackend.RefusedWorker(a, sd3, 2)
                                                Trident.Api.Hosting.ClusterServingBackend.RefusedWorker(c, "emulated flux × 0.05", 2) ]
                "a worker with any device of another profile (or time scale) is refused whole, with what it serves"
            let struct (none, all) = Trident.Api.Hosting.ClusterServingBackend.SplitByProfile(found |> List.filter (fun d -> d.Key.StartsWith b), flux)
            Expect.equal (Seq.length none, Seq.length all) (2, 0) "all of the right profile: nothing refused"
            let message = Trident.Api.Hosting.ClusterServingBackend.JoinTimeoutMessage([||], 4, 120, refused, flux)
            Expect.equal message ("0 of 4 device(s) joined within 120 s (Trident:Cluster:JoinTimeoutSeconds): no worker serving the coordinator's profile joined; "
                                  + "refused, serving another profile than the coordinator's 'emulated flux × 0.02' (--emulate, --time-scale): "
                                  + "127.0.0.1:9001 (2 device(s), serves 'emulated sd3 × 0.02'), 127.0.0.1:9003 (2 device(s), serves 'emulated flux × 0.05')")
                "only wrong-profile workers: the timeout says why none counted"
            Expect.equal (Trident.Api.Hosting.ClusterServingBackend.JoinTimeoutMessage(accepted, 4, 120, [||], flux))
                "2 of 4 device(s) joined within 120 s (Trident:Cluster:JoinTimeoutSeconds): 127.0.0.1:9002 (2)" "none refused: the devices that joined"
        testCase "a worker's health reads the coordinator's state off the membership's entries" <| fun () ->
            let where = "membership in Redis at 10.0.0.5:6379"
            let state (members: (string * SiloStatus) list) =
                let struct (s, detail) = Trident.Api.Cli.WorkerCommand.CoordinatorState([| for n, st in members -> struct (n, st) |], where)
                s, detail
            let coordinator = Trident.Api.Hosting.ClusterSilo.CoordinatorSiloName
            Expect.equal (state [ "Silo_1", SiloStatus.Active; coordinator, SiloStatus.Dead; coordinator, SiloStatus.Active ]) ("active", null) "an active coordinator (an earlier one dead)"
            Expect.equal (state [ coordinator, SiloStatus.Joining ]) ("joining", null) "joining"
            Expect.equal (state [ "Silo_1", SiloStatus.Active; coordinator, SiloStatus.Dead ])
                ("unreachable", "the coordinator's silo is dead in the cluster's membership (membership in Redis at 10.0.0.5:6379)") "declared dead: unreachable, saying so"
            Expect.equal (state [ "Silo_1", SiloStatus.Active ])
                ("unreachable", "no coordinator's silo in the cluster's membership (membership in Redis at 10.0.0.5:6379)") "none in the membership"
        testCase "the placement after a membership change marks the devices out of the cluster offline" <| fun () ->
            let plan: PlacementPlan =
                { Types = Map [ DeviceId 0, EDC; DeviceId 1, D ]; Capacity = Map.empty; Alpha = 1.0; Moves = 0; Source = Greedy "test" }
            let line = Trident.Runtime.Serving.ServingLoop.Describe(plan, Func<int, bool>(fun d -> d = 0))
            Expect.equal line "d0=EDC(offline) d1=D" "device 0 is out"
        testCase "Orleans' watchdog warning is dropped when it names a time longer than the process has lived" <| fun () ->
            let parser = Serilog.Parsing.MessageTemplateParser()
            let event (t: TimeSpan) =
                Serilog.Events.LogEvent(DateTimeOffset.Now, Serilog.Events.LogEventLevel.Warning, null,
                    parser.Parse "Participant check thread has not completed for {TimeSinceLastTick}, potentially indicating lock contention or deadlock, CPU starvation, or another execution anomaly.",
                    [ Serilog.Events.LogEventProperty("TimeSinceLastTick", Serilog.Events.ScalarValue t) ])
            Expect.isTrue (Trident.Api.Hosting.TridentHosting.WatchdogFalseAlarm(event (TimeSpan.Parse "21:23:38"))) "the machine's uptime: a false alarm"
            Expect.isFalse (Trident.Api.Hosting.TridentHosting.WatchdogFalseAlarm(event (TimeSpan.FromSeconds 5.0))) "a real stall is kept"
        testCase "the host's stack trace of an address in use is dropped (serve and worker say it in one line); other start failures keep theirs" <| fun () ->
            let parser = Serilog.Parsing.MessageTemplateParser()
            let event (source: string) (e: exn) =
                Serilog.Events.LogEvent(DateTimeOffset.Now, Serilog.Events.LogEventLevel.Error, e, parser.Parse "Hosting failed to start",
                    [ Serilog.Events.LogEventProperty("SourceContext", Serilog.Events.ScalarValue source) ])
            let inUse = IO.IOException("Failed to bind to address http://127.0.0.1:8080: address already in use.",
                                       Microsoft.AspNetCore.Connections.AddressInUseException "Address already in use")
            let host = "Microsoft.Extensions.Hosting.Internal.Host"
            Expect.isTrue (Trident.Api.Hosting.TridentHosting.ReportedStartFailure(event host inUse)) "reported by serve/worker"
            Expect.isFalse (Trident.Api.Hosting.TridentHosting.ReportedStartFailure(event host (IO.IOException "disk full"))) "another failure keeps its trace"
            Expect.isFalse (Trident.Api.Hosting.TridentHosting.ReportedStartFailure(event "Trident.Serving" inUse)) "only the host's own line"
            // through the logger serve and worker use: the host's line is gone, an unrelated error stays
            let lines = Collections.Generic.List<string>()
            let sink = { new Serilog.Core.ILogEventSink with member _.Emit e = lines.Add(e.RenderMessage()) }
            use logger = Trident.Api.Hosting.TridentHosting.CreateLogger(null, "text", true, sink = sink)
            logger.ForContext("SourceContext", host).Error(inUse, "Hosting failed to start")
            logger.ForContext("SourceContext", host).Error(IO.IOException "disk full", "Hosting failed to start")
            Expect.equal (List.ofSeq lines) [ "Hosting failed to start" ] "one line left: the other failure's"
    ] ]
