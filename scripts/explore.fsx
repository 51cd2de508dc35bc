// Plan exploration in F# interactive.
//
//   dotnet fsi build.fsx -t build      (once: builds the assembly this script loads)
//   dotnet fsi scripts/explore.fsx
//
// In a few steps: a cluster of 2 nodes × 8 devices, the flux reference profile, a queue of
// mixed-resolution requests; a placement (MIP, heuristic fallback) and one dispatch round, printed
// as tables; the round's MIP written as LP and MPS text for offline reproduction (any LP/MPS
// reader, e.g. `scip -f round.lp`).
//
// The MIP layer runs on Google OR-Tools: the build copies Google.OrTools.dll, Google.Protobuf.dll
// and the native google-ortools-native.so beside Trident.Scheduling.dll, where F# interactive
// finds them (the managed ones as dependencies of the #r, the native one beside Google.OrTools.dll).
#r "../src/Trident.Scheduling/bin/Release/net10.0/Trident.Scheduling.dll"

open System.IO
open Trident.Scheduling
open Trident.Scheduling.Placement
open Trident.Scheduling.Dispatching
open Trident.Scheduling.Mip

// 1. The cluster and the cost model.
let cluster = Cluster.uniform 2 8 48.0<GB> Bandwidths.pcie4Server
let cost = CostModel.create CostSettings.defaults ReferenceProfiles.flux

// 2. A queue: 24 requests of four square resolutions (256² and 2048² four times each, 512² and 1024² eight times
//    each: the sizes below, in turn) that arrived over the last 30 s.
let now = 100.0<s>
let sizes = [| 256; 512; 1024; 2048; 512; 1024 |]
let queue =
    [ for i in 0..23 do
          let n = sizes.[i % sizes.Length]
          let shape = Shape.image n n
          let arrival = now - float (24 - i) * 1.25<s>
          { Id = RequestId(int64 i)
            Model = cost.Profile.Model
            Shape = shape
            Steps = 28
            Arrival = arrival
            Deadline = CostModel.deadline cost arrival shape 28
            Priority = None } ]

// 3. A placement for this mix (requests per second over the window).
let placement =
    Planner.place
        { Cluster = cluster
          Cost = cost
          Stats = WorkloadStats.ofRequests 30.0<s> queue
          Current = None
          TimeLimit = 2.0<s> }

printfn "Placement (%s)" (PlanSource.describe placement.Source)
printfn "  %-8s %-6s %-6s" "device" "node" "type"
for KeyValue(d, t) in placement.Types do
    printfn "  %-8O %-6O %-6A" d (Cluster.nodeOf cluster d) t
let planned = WorkloadStats.ofRequests 30.0<s> queue
printfn "  stage capacity (req/s): %s"
    (placement.Capacity |> Map.toList |> List.map (fun (s, c) -> sprintf "%s=%.3f" (Stage.letter s) c) |> String.concat " ")
// α is the load factor (cap_s ≥ α · demand_s): the multiple of the mix's arrival rate the placement sustains
printfn "  alpha (load factor) = %.3f: sustains %.3f req/s of this mix, which arrives at %.3f req/s"
    placement.Alpha (placement.Alpha * planned.ArrivalRate) planned.ArrivalRate

// 4. One dispatch round: devices 0-2 are still busy with earlier work.
let snapshot =
    { Now = now
      Cluster = cluster
      Cost = cost
      Placement = placement
      BusyUntil = Array.init (Cluster.deviceCount cluster) (fun i -> if i < 3 then now + 20.0<s> else now - 1.0<s>)
      Queue = queue
      Completed = Map.empty
      Settings = DispatchSettings.defaults
      // no decode device has bookings ahead with gaps (the simulator fills these; Snapshot.Bookings)
      Bookings = Snapshot.noBookings; IdleUntil = Map.empty }

let plans = Planner.plan snapshot
let plan = plans.Dispatch
printfn ""
printfn "Dispatch round at t=%.1f s (%s)" (float now) (PlanSource.describe plan.Source)
printfn "  %-5s %-10s %-3s %-3s %-14s %-8s %-8s %-8s %-7s" "req" "shape" "k" "VR" "diffuse on" "E start" "D end" "C end" "on time"
for d in plan.Dispatches do
    let r = queue |> List.find (fun r -> r.Id = d.Request)
    printfn "  %-5O %-10O %-3d %-3O %-14s %-8.1f %-8.1f %-8.1f %-7b"
        d.Request r.Shape d.Degree d.Vr
        (d.Diffuse.Devices |> List.map string |> String.concat ",")
        (float d.Encode.Start) (float d.Diffuse.Finish) (float d.Decode.Finish) d.OnTime
let left = Planner.remaining snapshot plan
printfn "  %d dispatched, %d stay queued, objective %.1f" plan.Dispatches.Length left.Length plan.Objective

// 5. The round's MIP as LP and MPS text.
match Dispatcher.roundModel snapshot with
| Some model ->
    let dir = Path.Combine(__SOURCE_DIRECTORY__, "..", ".cache", "explore")
    Directory.CreateDirectory dir |> ignore
    let path = Path.GetFullPath(Path.Combine(dir, "round.lp"))
    File.WriteAllText(path, Model.toLpText model)
    File.WriteAllText(Path.ChangeExtension(path, ".mps"), Mip.toMpsText model)
    printfn ""
    printfn "The round's MIP: %d variables, %d constraints, written to %s (and .mps)" (Seq.length model.Variables) model.Constraints.Length path
| None -> printfn "Nothing to decide this round."

if plan.Dispatches.IsEmpty then failwith "explore: the round dispatched nothing"
