namespace Trident.Scheduling

open Trident.Scheduling.Mip

/// Settings of the dispatch planner: the objective's weights and the solve's limits.
/// Defaults follow the reference implementation (design.md appendix) where it has a value.
type DispatchSettings =
    {
      /// reward of an option predicted to finish by the deadline
      OnTimeReward: float
      /// a late option's reward is min(OnTimeReward − 1, ⌊LateRewardBase · (1 + lateness / t_ref)⌋),
      /// lateness = how late the request is even at its best (now + t_ref − deadline): ageing
      LateRewardBase: float
      /// μ: cost of each free primary device left idle by the round
      IdlePenalty: float
      /// cost of moving data between devices, by VR type (V0 moves nothing)
      CommunicationPenalty: Map<VrType, float>
      /// δ: cost per device used by an option. Below IdlePenalty, so that a device nobody else can
      /// use goes to a larger degree rather than idling (docs/policies.md, "Dispatch objective")
      DevicePenalty: float
      /// λ < 1: the latency term's weight. An option's reward loses λ · (finish − now) / (slowest
      /// admissible finish of that request − now), a share in [0, 1]: among equally on-time options
      /// the one finishing sooner wins, and never at the price of a unit of on-time reward
      LatencyWeight: float
      /// the solver's wall-clock limit per round; on time-out the best plan found (never worse
      /// than greedy, which is the solver's start) is used, or greedy itself
      TimeLimit: float<s>
      /// the MIP solver of a round (a value, not a flag; default: `Backend.defaultDispatchBackend`)
      Backend: Backend
      /// at most this many waiting requests per free primary device are offered to a round,
      /// most urgent first (a round can start at most one request per free device)
      CandidatesPerFreeDevice: int
      /// queue-behind: a request left waiting by a round is queued behind the running tasks when
      /// its group's devices are predicted free within this many seconds of now (the most urgent
      /// request is queued however far ahead; docs/policies.md, "Queueing behind running tasks")
      QueueHorizon: float<s>
      /// the most requests of one (pipeline, shape, steps) the MIP may run as one batch on one group
      /// (the server's MaxBatch; each batch also within the profile's best batch, Batching.limit): a batch
      /// is one option of the round with its own cost (docs/policies.md, "Batches in the dispatch MIP").
      /// 1: the planner prices no batch (batches may still form around its plan, Batching.form)
      MaxBatch: int }

module DispatchSettings =
    let defaults =
        { OnTimeReward = 1000.0
          LateRewardBase = 100.0
          IdlePenalty = 1.0
          CommunicationPenalty = Map.ofList [ V0, 0.0; V1, 2.0; V2, 4.0; V3, 6.0 ]
          DevicePenalty = 0.25
          LatencyWeight = 0.5
          TimeLimit = 0.05<s>
          Backend = Backend.defaultDispatchBackend
          CandidatesPerFreeDevice = 2
          QueueHorizon = 0.0<s>
          MaxBatch = 1 }

    /// `d` with the solver's wall-clock limit per round (seconds).
    let withTimeLimit (seconds: float<s>) (d: DispatchSettings) = { d with TimeLimit = seconds }

    /// `d` with another MIP backend.
    let withBackend (backend: Backend) (d: DispatchSettings) = { d with Backend = backend }

    /// `d` with another queue-behind horizon (seconds).
    let withQueueHorizon (seconds: float<s>) (d: DispatchSettings) = { d with QueueHorizon = seconds }

    /// `d` with another batch limit for the MIP's batch options.
    let withMaxBatch (n: int) (d: DispatchSettings) = { d with MaxBatch = n }

/// Everything a dispatch round knows. Plain data; the planner reads nothing else.
type Snapshot =
    { Now: float<s>
      Cluster: Cluster
      Cost: CostModel
      Placement: PlacementPlan
      /// when each device finishes the work already given to it (≤ Now when idle); for a device
      /// named in `Bookings`, when the work running or booked back to back from now ends (its later
      /// bookings are there); indexed by device id
      BusyUntil: float<s> array
      /// waiting requests, not yet dispatched
      Queue: Request list
      /// the last stage each resumed request of the queue completed before its work was lost with a
      /// device (Encode: it resumes at its diffuse; Diffuse: at its decode); a request not named here
      /// starts from its encode. Its plan has no task for a completed stage (Assign.materialise).
      Completed: Map<RequestId, Stage>
      Settings: DispatchSettings
      /// Later bookings of the devices whose executor runs a decode in the earliest gap of their
      /// schedule that holds it (decode-only ⟨C⟩ devices that need no load: Simulator.runTask, the
      /// live worker's decode queue): their booked intervals (start, end) after BusyUntil, in start
      /// order. A decode planned on such a device takes the earliest gap after BusyUntil that holds it
      /// (`Snapshot.gapStart`, Assign.route), as the executor will run it — not the end of its last
      /// booking, which for a video's decode booked when its diffuse starts is minutes ahead. A device
      /// not named here is busy until BusyUntil and free after it. Empty: no device is.
      Bookings: Map<DeviceId, (float<s> * float<s>) list>
      /// Primary devices idle now whose next booked work starts later — a gang queued behind running work
      /// (Assign.queueBehind) waits there for the rest of its group: device → the start of that work. Their
      /// BusyUntil stays the end of the booked work, so no round plans on them, except a one-device
      /// request that ends by then (backfilling, `Assign.backfill`): the simulator's executor runs a
      /// one-device task that needs no load in the earliest gap that holds it. Empty: no device is held
      /// idle (the live server's snapshot: its workers run each device's queue in order).
      IdleUntil: Map<DeviceId, float<s>> }

module Snapshot =
    /// No later bookings (`Bookings` of a snapshot whose devices are all busy until BusyUntil only).
    let noBookings : Map<DeviceId, (float<s> * float<s>) list> = Map.empty

    /// No device held idle for booked work (`IdleUntil` of a snapshot whose devices are busy until BusyUntil
    /// and free after it).
    let noIdle : Map<DeviceId, float<s>> = Map.empty

    /// The earliest start ≥ `from` at which a task of `duration` seconds fits between the `busy` intervals
    /// (start, end; start order): the executor's rule for a one-device task that needs no load (Simulator.fs,
    /// `earliestGap`). Pure.
    let earliestFit (busy: (float<s> * float<s>) list) (from: float<s>) (duration: float<s>) : float<s> =
        busy |> List.fold (fun c (a, e) -> if e > c && a < c + duration then e else c) from

    /// The earliest start ≥ `from` at which a task of `duration` seconds fits on device `d` between its
    /// later bookings (`Bookings`; `from` itself when it has none): `earliestFit` over them. Pure.
    let gapStart (s: Snapshot) (d: DeviceId) (from: float<s>) (duration: float<s>) : float<s> =
        if s.Bookings.IsEmpty then from
        else
            match Map.tryFind d s.Bookings with
            | None -> from
            | Some xs -> earliestFit xs from duration

/// What one call of the planner returns.
type Plans =
    { Dispatch: DispatchPlan
      /// the placement the dispatch plan was made against
      Placement: PlacementPlan }
