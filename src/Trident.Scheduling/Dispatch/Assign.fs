namespace Trident.Scheduling.Dispatching

// Design note. Planners decide (request, primary type, degree, node); this module turns those
// decisions into concrete routes, the same way for the MIP and the greedy policy:
//   * the diffuse group = the k lowest-id free devices of that type on that node;
//   * encode runs on the group's first device when the type holds E (no transfer), else on the
//     ⟨E⟩ device whose encode result would reach the group first (queueing behind work already
//     given to it, transfer included);
//   * decode runs on the group's first device when the type holds C, else on the ⟨C⟩ device that
//     would finish it first;
//   * a stage a resumed request completed before it was re-queued (Snapshot.Completed) gets no
//     task: its assignment has no device and no duration (Start = Finish = now), and the next stage
//     starts once the kept output has moved (one intra-node transfer). A request resumed at its
//     decode is offered degree-1 options only (Admissible.routes): its one device runs the decode
//     when the type holds C.
// Auxiliary devices are queues: each assignment pushes the device's busy-until forward, so no
// device is given two overlapping tasks.

open Trident.Scheduling

/// A decision: start this option on this node.
type Choice = { Option: DispatchOption; Node: NodeId }

module Assign =
    /// The objective both planners maximise: Σ option rewards − μ · (free primary devices left idle).
    let objective (s: Snapshot) (freePrimary: int) (choices: Choice list) =
        let used = choices |> List.sumBy (fun c -> c.Option.Degree)
        (choices |> List.sumBy (fun c -> c.Option.Reward)) - s.Settings.IdlePenalty * float (freePrimary - used)

    let private bestAux (s: Snapshot) (aux: Map<PlacementType, Device array>) (t: PlacementType) (shape: Shape) (score: Device -> float<s>) =
        aux |> Map.tryFind t |> Option.defaultValue [||]
        |> Array.filter (fun d -> CostModel.fits s.Cost t shape 1 d.Memory)
        |> Array.sortBy (fun d -> score d, d.Id.Value)
        |> Array.tryHead

    /// Turns choices into dispatches. Fails when a choice asks for more free devices than its
    /// node has (a planner bug, never a user error).
    let materialise (s: Snapshot) (choices: Choice list) : Dispatch list =
        let free = Admissible.freeByNodeAndType s |> Map.map (fun _ ds -> List.sortBy (fun (d: DeviceId) -> d.Value) ds)
        let mutable free = free
        let busy = Array.copy s.BusyUntil
        let aux = Map.ofList [ E, Admissible.auxDevices s E; C, Admissible.auxDevices s C ]
        let c = s.Cost
        let xfer bytes a b = Cluster.transferTime s.Cluster bytes a b
        [ for ch in choices do
              let o = ch.Option
              let r = o.Request
              let key = ch.Node, o.Type
              let avail = free |> Map.tryFind key |> Option.defaultValue []
              if avail.Length < o.Degree then
                  failwithf "planner bug: %O needs %d free %A devices on %O, %d are free" r.Id o.Degree o.Type ch.Node avail.Length
              let group = List.take o.Degree avail
              free <- free |> Map.add key (List.skip o.Degree avail)
              let lead = List.head group
              let tE = CostModel.encodeTime c r.Shape
              let tC = CostModel.decodeTime c r.Shape
              let bw = s.Cluster.Bandwidths.IntraNode
              // a stage the request completed before it was re-queued gets no task: no device, no time
              let skipped at = { Devices = []; Start = at; Finish = at }
              // encode
              let encode, diffuseStart =
                  if not (Admissible.remains s r Encode) then skipped s.Now, s.Now + CostModel.embeddingBytes c / bw
                  elif PlacementType.holds Encode o.Type then
                      { Devices = [ lead ]; Start = s.Now; Finish = s.Now + tE }, s.Now + tE
                  else
                      let emb = CostModel.embeddingBytes c
                      let arrive (d: Device) = max s.Now busy.[d.Id.Value] + tE + xfer emb d.Id lead
                      match bestAux s aux E r.Shape arrive with
                      | None -> failwithf "planner bug: %O on %A needs an ⟨E⟩ device and none can hold it" r.Id o.Type
                      | Some d ->
                          let start = max s.Now busy.[d.Id.Value]
                          busy.[d.Id.Value] <- start + tE
                          { Devices = [ d.Id ]; Start = start; Finish = start + tE }, max s.Now (arrive d)
              // diffuse (a request resumed at its decode: its latents are moved from the device that kept them)
              let diffuse =
                  if Admissible.remains s r Diffuse then
                      { Devices = group; Start = diffuseStart; Finish = diffuseStart + CostModel.diffuseTime c r.Shape r.Steps o.Degree }
                  else skipped s.Now
              let latentsReady = if diffuse.Devices.IsEmpty then s.Now + CostModel.latentBytes c r.Shape / bw else diffuse.Finish
              let diffuseFinish = diffuse.Finish
              // decode
              let decode =
                  if PlacementType.holds Decode o.Type then
                      { Devices = [ lead ]; Start = latentsReady; Finish = latentsReady + tC }
                  else
                      let lat = CostModel.latentBytes c r.Shape
                      let ready (d: Device) = max busy.[d.Id.Value] (if diffuse.Devices.IsEmpty then latentsReady else diffuseFinish + xfer lat lead d.Id)
                      match bestAux s aux C r.Shape (fun d -> ready d + tC) with
                      | None -> failwithf "planner bug: %O on %A needs a ⟨C⟩ device and none can hold it" r.Id o.Type
                      | Some d ->
                          let start = ready d
                          busy.[d.Id.Value] <- start + tC
                          { Devices = [ d.Id ]; Start = start; Finish = start + tC }
              for g in diffuse.Devices do
                  busy.[g.Value] <- diffuseFinish
              if PlacementType.holds Decode o.Type then busy.[lead.Value] <- decode.Finish
              yield
                  { Request = r.Id
                    Degree = o.Degree
                    Vr = o.Vr
                    Encode = encode
                    Diffuse = diffuse
                    Decode = decode
                    OnTime = decode.Finish <= r.Deadline
                    Reward = o.Reward } ]
