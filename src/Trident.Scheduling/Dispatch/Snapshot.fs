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
      CandidatesPerFreeDevice: int }

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
          CandidatesPerFreeDevice = 2 }

/// Everything a dispatch round knows. Plain data; the planner reads nothing else.
type Snapshot =
    { Now: float<s>
      Cluster: Cluster
      Cost: CostModel
      Placement: PlacementPlan
      /// when each device finishes the work already given to it (≤ Now when idle);
      /// indexed by device id
      BusyUntil: float<s> array
      /// waiting requests, not yet dispatched
      Queue: Request list
      Settings: DispatchSettings }

/// What one call of the planner returns.
type Plans =
    { Dispatch: DispatchPlan
      /// the placement the dispatch plan was made against
      Placement: PlacementPlan }
