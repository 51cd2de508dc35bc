namespace Trident.Scheduling

// Design note. Adjust-on-Dispatch (design.md §7): re-placement without downtime.
//   * Trigger: some recent request has no route at all under the current placement (it would
//     wait for ever), or the Monitor's imbalance (fastest / slowest of arrival, encode, diffuse and
//     decode rates over its window) reaches `Threshold` (1.5), with at least `MinSamples` arrivals in the
//     window, at least `Cooldown` after the previous evaluation, one window after observation began
//     (completions lag arrivals at first) and while requests still arrive (when arrivals stop, the
//     backlog drains faster than requests arrive, which no placement needs to follow).
//   * Gate: the trigger alone cannot tell a placement that no longer fits the mix from plain
//     overload (arrivals outrun every stage, and no placement helps). So before solving, the rate
//     the current placement sustains for the recent mix (class-aware α at a rate of 1) is compared
//     with the rate it sustains for the mix it was planned for; within MinGain, the placement stays
//     without a solve. A placement made for a window too thin to trust (fewer than MinSamples
//     arrivals, or less than one window of observation: the first requests of a new kind, which the
//     uncovered trigger answers at once) is provisional and has no gate: the next trigger with a
//     full window solves again (`plannedFor`). Without that, a placement made for the first videos of
//     a burst "sustained" the lighter mix that followed at a higher rate and was kept for good — a
//     live run of the mixed trace kept 7 ⟨C⟩ + 1 ⟨E⟩ at α 0.015 where other runs had α 0.144.
//   * New placement: the Orchestrator (Planner.place) for the window's request statistics, with
//     `Current` set so that among the plans of best α it moves the fewest weights.
//   * Acceptance: the new plan is taken when it serves a larger share of the recent mix (some class
//     had no route under the current placement), or serves as much with α at least (1 + MinGain)
//     times the current placement's α for the same statistics. Otherwise the placement stays and
//     the cool-down still runs, so an imbalance that no placement can cure (plain overload) costs
//     one placement solve per cool-down, nothing more.
//   * Switch: metadata only. The dispatcher plans against the new types at once; a device loads a
//     stage model lazily when the first task that needs it reaches the head of its FIFO queue
//     (weights / host-to-device bandwidth, the device busy meanwhile) and drops the models its new
//     type no longer holds. Work planned under the old placement is ahead in the FIFO queues, so it
//     finishes first; no request is dropped or restarted.

open Trident.Scheduling.Placement

/// Settings of the re-placement loop.
type AdjustSettings =
    {
      /// the Monitor's sliding window
      Window: float<s>
      /// fastest / slowest stage throughput that triggers a re-placement (≥ 1)
      Threshold: float
      /// minimum time between two evaluations
      Cooldown: float<s>
      /// arrivals the window must hold before the trigger is read
      MinSamples: int
      /// relative α gain a new placement must bring when it covers no more of the mix
      MinGain: float
      /// the placement solve's time limit
      TimeLimit: float<s> }

module AdjustSettings =
    let defaults =
        { Window = 60.0<s>
          Threshold = 1.5
          Cooldown = 30.0<s>
          MinSamples = 20
          MinGain = 0.1
          TimeLimit = 1.0<s> }

/// What one evaluation decided.
type AdjustDecision =
    /// the trigger did not fire (imbalance below the threshold, too few samples)
    | NoTrigger
    /// the trigger fired but the current placement stays (with the reason)
    | Keep of imbalance: float * reason: string
    /// switch to this placement
    | Replace of imbalance: float * PlacementPlan

module AdjustOnDispatch =
    /// A trigger's imbalance as reports and the live view write it: "imbalance 1.73", or, for the infinite
    /// imbalance of a stage with no throughput or a recent request no device can serve, what that means.
    let describeImbalance (imbalance: float) =
        if System.Double.IsPositiveInfinity imbalance then
            "imbalance ∞: a stage without throughput or a request without a route"
        else
            sprintf "imbalance %.2f" imbalance

    /// Share of the mix that has at least one route (a primary type present that can hold it at an
    /// admissible degree, with the auxiliary devices its VR needs present and able to hold it — or, for
    /// a stage no device of the placement is an auxiliary for, the group's lead able to load it:
    /// CostModel.leadFits, as the dispatcher runs it).
    let coverage (cluster: Cluster) (cost: CostModel) (types: Map<DeviceId, PlacementType>) (stats: WorkloadStats) =
        let present = types |> Map.toSeq |> Seq.map snd |> Set.ofSeq
        let memory = cluster.Devices |> Array.map _.Memory |> Array.min
        let nodeSize = cluster.Devices |> Array.countBy _.Node |> Array.map snd |> Array.max
        let completes t stage aux (c: RequestClass) =
            PlacementType.holds stage t
            || (if present.Contains aux then Capacity.serves cost memory nodeSize aux c
                else CostModel.leadFits cost t stage c.Shape memory)
        let servable (c: RequestClass) =
            present
            |> Set.exists (fun t ->
                PlacementType.isPrimary t
                && Capacity.serves cost memory nodeSize t c
                && completes t Encode E c
                && completes t Decode PlacementType.C c)
        stats.Classes |> List.sumBy (fun c -> if servable c then c.Share else 0.0)

    /// α of a placement's types for the given statistics (class-aware, as the Orchestrator's).
    let alphaOf (cluster: Cluster) (cost: CostModel) (types: Map<DeviceId, PlacementType>) (stats: WorkloadStats) =
        FlowCapacity.alphaFor
            { Cluster = cluster; Cost = cost; Stats = stats; Current = None; TimeLimit = 1.0<s> }
            types

    /// One evaluation at `now`: the trigger, and when it fires, the new placement and whether to
    /// take it. `place` is the Orchestrator (Planner.place), passed in so that callers and tests
    /// can substitute it.
    /// Requests per second of the mix that the types sustain (α at a rate of 1).
    let sustainable (cluster: Cluster) (cost: CostModel) (types: Map<DeviceId, PlacementType>) (stats: WorkloadStats) =
        alphaOf cluster cost types { stats with ArrivalRate = 1.0 }

    // `confident` with the window's arrival count already at hand
    let private confidentWith (settings: AdjustSettings) (samples: int) (monitor: Monitor) (now: float<s>) =
        samples >= settings.MinSamples && now - monitor.Since >= settings.Window

    /// Whether the monitor's window at `now` is one a placement can be trusted to: at least `MinSamples`
    /// arrivals and one window of observation.
    let confident (settings: AdjustSettings) (monitor: Monitor) (now: float<s>) =
        confidentWith settings (Monitor.throughputs now monitor).Samples monitor now

    /// What a placement made (or confirmed) at `now` is planned for: the window's statistics when the
    /// window is `confident`, else None (provisional: `decide` solves again at the next trigger).
    let plannedFor (settings: AdjustSettings) (monitor: Monitor) (now: float<s>) =
        if confident settings monitor now then Some(Monitor.stats now monitor) else None

    /// `plannedFor`: the statistics the current placement was planned for, None when it is provisional
    /// (made for a window that was not `confident`; no gate then).
    let decide
        (settings: AdjustSettings)
        (place: PlacementInput -> PlacementPlan)
        (cluster: Cluster)
        (cost: CostModel)
        (current: PlacementPlan)
        (plannedFor: WorkloadStats option)
        (monitor: Monitor)
        (now: float<s>)
        : AdjustDecision =
        let rates = Monitor.throughputs now monitor
        let imbalance = rates.Imbalance
        let stats = Monitor.stats now monitor
        let ongoing = Monitor.lastArrival monitor |> Option.exists (fun t -> t > now - settings.Window)
        // a recent request that no device of the current placement can serve at all is the
        // strongest imbalance there is: it would wait for ever
        let uncovered = coverage cluster cost current.Types stats < 1.0 - 1e-9
        let imbalance = if uncovered then infinity else imbalance
        if not ongoing || (not uncovered && (not (confidentWith settings rates.Samples monitor now) || imbalance < settings.Threshold)) then
            NoTrigger
        elif
            (match plannedFor with
             | Some plannedFor ->
                 let planned = sustainable cluster cost current.Types plannedFor
                 planned > 0.0 && sustainable cluster cost current.Types stats >= (1.0 - settings.MinGain) * planned
             | None -> false)
        then
            Keep(imbalance, "the current placement sustains the recent mix as well as the one it was planned for")
        else
            let candidate =
                place
                    { Cluster = cluster
                      Cost = cost
                      Stats = stats
                      Current = Some current.Types
                      TimeLimit = settings.TimeLimit }
            let covNow = coverage cluster cost current.Types stats
            let covNew = coverage cluster cost candidate.Types stats
            let alphaNow = alphaOf cluster cost current.Types stats
            if candidate.Moves = 0 then Keep(imbalance, "the new placement equals the current one")
            elif covNew > covNow + 1e-9 then Replace(imbalance, candidate)
            elif covNew + 1e-9 < covNow then Keep(imbalance, sprintf "the new placement serves less of the mix (%.2f < %.2f)" covNew covNow)
            elif candidate.Alpha >= alphaNow * (1.0 + settings.MinGain) && candidate.Alpha > alphaNow then Replace(imbalance, candidate)
            else Keep(imbalance, sprintf "α %.3f → %.3f is below the %.0f %% gain required" alphaNow candidate.Alpha (settings.MinGain * 100.0))

    // ---- lazy loading --------------------------------------------------------------------------

    /// The stage models resident on a device after it runs a task of `stage` under placement type
    /// `t`: the models `t` no longer holds are dropped, and `stage` is loaded if missing.
    let residentAfter (t: PlacementType) (resident: Set<Stage>) (stage: Stage) =
        Set.add stage (Set.intersect resident (PlacementType.stages t))

    /// Seconds to load `stage`'s weights onto a device that lacks them (0 when resident).
    let loadTime (cluster: Cluster) (cost: CostModel) (resident: Set<Stage>) (stage: Stage) : float<s> =
        if resident.Contains stage then 0.0<s>
        else
            let bytes = float (Profile.stage cost.Profile stage).Weights * 1e9<B>
            bytes / cluster.Bandwidths.HostToDevice
