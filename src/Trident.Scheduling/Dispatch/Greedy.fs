namespace Trident.Scheduling.Dispatching

// Design note. The greedy policy: the fallback when the solver times out or fails, the solver's
// starting solution, and a policy of its own. Requests in urgency order (least slack first); each
// takes its best available option — highest reward, so on time before late and, among on-time
// options, the smallest efficient k (the device penalty) — on the node with the most free devices of
// that type. One pass, O(candidates · options · nodes).

open Trident.Scheduling

module Greedy =
    /// Requests offered to a round, with their admissible options: the most urgent requests that
    /// have any, at most CandidatesPerFreeDevice per free primary device.
    let candidates (rd: Admissible.Round) (freePrimary: int) : (Request * DispatchOption list) list =
        Admissible.byUrgency rd rd.Snapshot.Queue
        |> Seq.map (fun r -> r, Admissible.options rd r)
        |> Seq.filter (fun (_, opts) -> not opts.IsEmpty)
        |> Seq.truncate (max 0 (freePrimary * rd.Snapshot.Settings.CandidatesPerFreeDevice))
        |> List.ofSeq

    /// Greedy choices over the given options (per request, in the given order).
    let choose (free: Map<NodeId * PlacementType, int>) (optionsInOrder: (Request * DispatchOption list) list) : Choice list =
        // per type, the free count of each node (mutable for the pass)
        let byType =
            free
            |> Map.toList
            |> List.groupBy (fun ((_, t), _) -> t)
            |> List.map (fun (t, xs) -> t, xs |> List.map (fun ((n: NodeId, _), c) -> n, ref c) |> Array.ofList)
            |> Map.ofList
        let mostFree (t: PlacementType) (k: int) =
            match Map.tryFind t byType with
            | None -> None
            | Some nodes ->
                let mutable best = None
                for (n, c) in nodes do
                    if c.Value >= k then
                        match best with
                        | Some(_, (bc: int ref)) when bc.Value >= c.Value -> ()
                        | _ -> best <- Some(n, c)
                best
        [ for (_, opts) in optionsInOrder do
              let best =
                  opts
                  |> List.sortBy (fun o -> -o.Reward, o.Degree)
                  |> List.tryPick (fun o -> mostFree o.Type o.Degree |> Option.map (fun nc -> o, nc))
              match best with
              | Some(o, (node, count)) ->
                  count.Value <- count.Value - o.Degree
                  yield { Option = o; Node = node }
              | None -> () ]

    /// Free primary devices by node and type, counted.
    let freeCounts (s: Snapshot) =
        Admissible.freeByNodeAndType s |> Map.map (fun _ ds -> List.length ds)

    /// A whole greedy round: the plan and the choices behind it.
    let plan (reason: string) (s: Snapshot) : DispatchPlan * Choice list =
        let free = freeCounts s
        let nFree = free |> Map.toSeq |> Seq.sumBy snd
        let choices = choose free (candidates (Admissible.round s) nFree)
        { Now = s.Now
          Dispatches = Assign.materialise s choices
          Objective = Assign.objective s nFree choices
          Source = Greedy reason },
        choices
