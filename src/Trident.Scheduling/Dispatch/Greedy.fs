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
    let candidates (s: Snapshot) (freePrimary: int) : (Request * DispatchOption list) list =
        Admissible.byUrgency s s.Queue
        |> Seq.map (fun r -> r, Admissible.options s r)
        |> Seq.filter (fun (_, opts) -> not opts.IsEmpty)
        |> Seq.truncate (max 0 (freePrimary * s.Settings.CandidatesPerFreeDevice))
        |> List.ofSeq

    /// Greedy choices over the given options (per request, in the given order).
    let choose (s: Snapshot) (optionsInOrder: (Request * DispatchOption list) list) : Choice list =
        let mutable free =
            Admissible.freeByNodeAndType s |> Map.map (fun _ ds -> List.length ds)
        [ for (_, opts) in optionsInOrder do
              let best =
                  opts
                  |> List.sortBy (fun o -> -o.Reward, o.Degree)
                  |> List.tryPick (fun o ->
                      free
                      |> Map.toList
                      |> List.filter (fun ((_, t), n) -> t = o.Type && n >= o.Degree)
                      |> List.sortBy (fun ((node: NodeId, _), n) -> -n, node.Value)
                      |> List.tryHead
                      |> Option.map (fun ((node, _), _) -> { Option = o; Node = node }))
              match best with
              | Some ch ->
                  let key = ch.Node, ch.Option.Type
                  free <- free |> Map.add key (free.[key] - ch.Option.Degree)
                  yield ch
              | None -> () ]

    /// Free primary devices now.
    let freePrimary (s: Snapshot) =
        Admissible.freeByNodeAndType s |> Map.toSeq |> Seq.sumBy (snd >> List.length)

    /// A whole greedy round: the plan and the choices behind it.
    let plan (reason: string) (s: Snapshot) : DispatchPlan * Choice list =
        let nFree = freePrimary s
        let opts = candidates s nFree
        let choices = choose s opts
        { Now = s.Now
          Dispatches = Assign.materialise s choices
          Objective = Assign.objective s nFree choices
          Source = Greedy reason },
        choices
