namespace Trident.Scheduling

/// What a solver run reported, in domain terms (the MIP layer's result, summarised).
type SolveStats =
    {
      /// the solver that ran ("scip", "cbc", "highs", "cp-sat")
      Backend: string
      /// "optimal", or "feasible (stopped by time limit)", …
      Outcome: string
      /// the solver proved the objective optimal (within the layer's tolerances)
      Proven: bool
      Objective: float
      /// best bound the solver proved
      Bound: float
      /// relative gap between objective and bound (0 when optimal)
      Gap: float
      SolveTime: float<s>
      Variables: int
      Constraints: int }

/// How a plan was made. Every plan says so.
type PlanSource =
    | Mip of SolveStats
    /// the greedy policy, with the reason it was used (solver time-out, failure, or it is the policy)
    | Greedy of reason: string

module PlanSource =
    /// One line: the backend, outcome, objective and bound (3 decimals: an α such as 0.505 stays 0.505), relative
    /// gap (4 decimals) and solve time (ms); or greedy and why.
    let describe =
        function
        | Mip s -> sprintf "mip %s %s objective=%.3f bound=%.3f gap=%.4f time=%.1fms" s.Backend s.Outcome s.Objective s.Bound s.Gap (float s.SolveTime * 1000.0)
        | Greedy reason -> sprintf "greedy (%s)" reason

/// Where each stage model lives.
/// Invariants: every device of the cluster has exactly one type; `Capacity` is in requests per second
/// of the request mix the plan was made for, counting every device towards every class (an upper
/// bound); `Alpha` is the load factor α of design.md §5 (cap_s ≥ α · demand_s): the largest multiple
/// of the planned mix's arrival rate that the devices sustain when each class runs only where it
/// fits (Placement/Capacity.fs, class-aware capacity) — at most min over stages of Capacity / Demand.
/// α ≥ 1: the placement keeps up with the mix; α · rate is the sustained rate in requests per second
/// (a mix planned at a nominal 1 req/s, as the server's initial one, has α equal to that rate).
type PlacementPlan =
    { Types: Map<DeviceId, PlacementType>
      /// stage capacity, requests per second of the planned mix
      Capacity: Map<Stage, float>
      /// α: the load factor — the multiple of the planned mix's arrival rate the placement sustains (class-aware); higher is better
      Alpha: float
      /// weight moves from the previous placement: devices whose resident stage set changed
      Moves: int
      Source: PlanSource }

module PlacementPlan =
    let typeOf (p: PlacementPlan) (d: DeviceId) = p.Types.[d]

    /// How many devices of each type.
    let counts (p: PlacementPlan) =
        p.Types |> Map.toList |> List.countBy snd |> Map.ofList

/// One stage of one request on its devices, with predicted times (absolute).
/// Invariant: Start ≤ Finish.
type StageAssignment =
    { Devices: DeviceId list
      Start: float<s>
      Finish: float<s> }

/// One request's route through the cluster.
/// Invariants: Diffuse.Devices has `Degree` devices, all on one node and of one primary placement
/// type; Encode and Decode have one device each — except a stage the request completed before it was
/// re-queued (Snapshot.Completed): no device and Start = Finish; Encode.Finish ≤ Diffuse.Start and
/// Diffuse.Finish ≤ Decode.Start (transfers included).
type Dispatch =
    { Request: RequestId
      Degree: int
      Vr: VrType
      Encode: StageAssignment
      Diffuse: StageAssignment
      Decode: StageAssignment
      /// predicted Decode.Finish ≤ the request's deadline
      OnTime: bool
      /// the objective weight of this choice (the planner's reward for it)
      Reward: float }

/// One dispatch round's decisions. Requests of the queue not named here stay queued.
type DispatchPlan =
    { Now: float<s>
      Dispatches: Dispatch list
      /// the objective value the plan achieves (same objective for MIP and greedy plans)
      Objective: float
      Source: PlanSource
      /// the batches the planner chose (DispatchSettings.MaxBatch > 1): for a dispatch's request, the
      /// other requests it runs with as one batch (most urgent first); they have no dispatch of their own
      /// and run on the lead's route stretched to the batch's cost (Dispatching.Batching). Empty: none
      Batched: Map<RequestId, RequestId list> }

module DispatchPlan =
    /// The requests that run as mates of a planned batch (no dispatch of their own), lead by lead.
    let mates (plan: DispatchPlan) : RequestId list = plan.Batched |> Map.toList |> List.collect snd

    /// Every request the plan starts or queues: its dispatches' requests, then the planned batches' mates.
    let served (plan: DispatchPlan) : RequestId list = (plan.Dispatches |> List.map _.Request) @ mates plan
