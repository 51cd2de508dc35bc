namespace Trident.Api.Contracts;

/// <summary>The task a device runs now.</summary>
public sealed record DeviceTaskDto(string Kind, string? Request);

/// <summary>One device of <c>GET /v1/cluster</c>.</summary>
/// <param name="Id">Device id.</param>
/// <param name="Node">Node id.</param>
/// <param name="Kind"><c>cpu</c>, <c>cuda</c> or <c>emulated</c>.</param>
/// <param name="IntraOpThreads">Its thread budget.</param>
/// <param name="PlacementType">Its type in the placement the planner uses now.</param>
/// <param name="WorkerType">The type its worker has applied (differs while a re-placement is on its way).</param>
/// <param name="ResidentModels">Stage models loaded on it.</param>
/// <param name="Busy">Whether it runs a task now.</param>
/// <param name="Current">The task it runs now.</param>
/// <param name="QueuedTasks">Tasks waiting in its channel.</param>
/// <param name="BusyForMs">Predicted time until it is free (0 when free).</param>
/// <param name="Utilisation">Busy share over the monitor window.</param>
/// <param name="MemoryGb">Memory the planners may fill on it.</param>
/// <param name="Device">Its ONNX Runtime device: <c>cpu</c> or <c>cuda:N</c>; an emulated device has none:
/// <c>emulated</c> in one process, <c>emulated on worker HOST:PORT</c> on a cluster's coordinator.</param>
/// <param name="ExecutionProvider">The provider its sessions use, with its settings (ONNX Runtime's name, e.g. "CPUExecutionProvider, 1 intra-op thread, no spinning").</param>
/// <param name="CanRun">Execution providers ONNX Runtime found for this kind of hardware here (OrtEnv.GetEpDevices).</param>
/// <param name="Online">Whether the device is in the cluster now: false while its worker is gone (it gets no
/// work until the worker is back); always true in one process.</param>
/// <param name="Worker">On a cluster's coordinator, the worker that hosts the device: its silo endpoint (HOST:PORT, as
/// the coordinator's log and /ready name it); null in one process.</param>
public sealed record DeviceDto(
    int Id, int Node, string Kind, int IntraOpThreads, string PlacementType, string WorkerType, IReadOnlyList<string> ResidentModels,
    bool Busy, DeviceTaskDto? Current, int QueuedTasks, double BusyForMs, double Utilisation, double MemoryGb,
    string Device, string ExecutionProvider, IReadOnlyList<string> CanRun, bool Online, string? Worker);

/// <summary>One (execution provider, hardware device) pair ONNX Runtime can run on this machine.</summary>
public sealed record EpDeviceDto(string ExecutionProvider, string ProviderVendor, string DeviceType, string DeviceVendor, uint VendorId, uint DeviceId);

/// <summary>The scheduling settings the server plans with (what a simulation of it needs besides the profile).</summary>
/// <param name="Degrees">Diffuse degrees allowed (and measured).</param>
/// <param name="EfficiencyThreshold">θ.</param>
/// <param name="SloScale">Deadline = arrival + SloScale × latency served alone, when the client gives none.</param>
/// <param name="RoundPeriodS">Serving-loop period: a round runs at least this often, and on every event.</param>
/// <param name="DispatchTimeLimitS">The dispatch MIP's time limit.</param>
/// <param name="PlacementTimeLimitS">The placement MIP's time limit.</param>
/// <param name="Monitor">Adjust-on-Dispatch: window_s, trigger_ratio, cooldown_s, min_arrivals, min_gain.</param>
/// <param name="MaxBatch">The most requests of one shape and step count run as one batch (Serving:MaxBatch; 1: batching
/// off; the profile's best batch caps it further).</param>
public sealed record SchedulingSettingsDto(IReadOnlyList<int> Degrees, double EfficiencyThreshold, double SloScale, double RoundPeriodS,
    double DispatchTimeLimitS, double PlacementTimeLimitS, IReadOnlyDictionary<string, double> Monitor, int MaxBatch);

/// <summary>The dispatch queue.</summary>
public sealed record QueueDto(int Waiting, int Capacity, IReadOnlyList<string> Requests);

/// <summary>One stage's figures over the monitor window.</summary>
public sealed record StageFiguresDto(string Stage, int Completed, double Throughput, double MeanSeconds, double Capacity);

/// <summary>The monitor's window.</summary>
/// <param name="WindowSeconds">The window.</param>
/// <param name="Arrivals">Arrivals in it.</param>
/// <param name="ArrivalRate">Arrivals per second.</param>
/// <param name="Stages">Per-stage throughput, mean duration and capacity.</param>
/// <param name="Imbalance">Fastest / slowest of the arrival and stage rates (null when one is zero and another is
/// not): Adjust-on-Dispatch fires at Monitor:TriggerRatio.</param>
public sealed record MonitorDto(double WindowSeconds, int Arrivals, double ArrivalRate, IReadOnlyList<StageFiguresDto> Stages, double? Imbalance);

/// <summary><c>GET /v1/cluster</c>.</summary>
/// <remarks><c>EpDevices</c> is what ONNX Runtime can run here (not what it was compiled with), with its version in
/// <c>OnnxRuntime</c>.</remarks>
public sealed record ClusterDto(string Pipeline, string Model, int Nodes, IReadOnlyList<DeviceDto> Devices, QueueDto Queue, int JobsStored, MonitorDto Monitor,
    SchedulingSettingsDto Settings, string OnnxRuntime, IReadOnlyList<EpDeviceDto> EpDevices);

/// <summary>The placement in force.</summary>
/// <param name="Types">Placement type of each device (by device id).</param>
/// <param name="Capacity">Stage capacity in requests per second of the mix it was planned for.</param>
/// <param name="Alpha">Load factor α (design.md §5): the multiple of the planned mix's arrival rate the placement sustains; the initial placement is planned for a nominal 1 request/s of the default request (or of Trident:Serving:PlanFor's mix), so there α is the sustained rate in requests per second.</param>
/// <param name="Moves">Devices that changed type when it was made.</param>
/// <param name="Source">How it was made.</param>
public sealed record PlacementDto(IReadOnlyDictionary<string, string> Types, IReadOnlyDictionary<string, double> Capacity, double Alpha, int Moves, string Source);

/// <summary>One dispatch round.</summary>
/// <param name="Dispatched">Requests it dispatched, each member of a batch counted (a batch of 4 is 4; <c>trident replay</c>
/// prints the same round as "4 requests in 1 dispatch").</param>
/// <param name="Dispatches">The dispatches that carried them: a batch is one (the "1 dispatch" of that line).</param>
public sealed record RoundDto(long Round, double AtS, int Waiting, int Dispatched, int Dispatches, string Source, string Detail, double? Objective, double? Gap,
    double? SolveMs, double PlanMs);

/// <summary><c>GET /v1/plan/rounds</c>: the dispatch rounds still in the history, newest first; each one's snapshot and
/// plan is <c>GET /v1/plan/rounds/{round}</c>.</summary>
/// <param name="Latest">The number of the last round run (0 before the first); rounds with nothing to decide are numbered
/// but not kept, so the kept numbers have gaps.</param>
/// <param name="History">How many rounds the history keeps (<c>Trident:Serving:RoundHistory</c>): the last ones that
/// dispatched a request, ran the solver or failed.</param>
/// <param name="Rounds">The kept rounds, newest first, as <c>GET /v1/plan</c>'s <c>recent_rounds</c>.</param>
public sealed record PlanRoundsDto(long Latest, int History, IReadOnlyList<RoundDto> Rounds);

/// <summary>One re-placement attempt.</summary>
public sealed record ReplacementDto(double AtS, string Reason, bool Applied, int Moves, double AlphaBefore, double AlphaAfter, string Source);

/// <summary>One step-boundary preemption: <c>Victim</c> suspended at the boundary after <c>Step</c> steps in all (as the
/// decision expected it; the victim's <c>suspended</c> event gives the step it stopped at) so that <c>Urgent</c> takes its
/// <c>Devices</c>, because the dispatch objective's gain exceeded the loss (docs/policies.md, "Preemption").</summary>
public sealed record PreemptionDto(long Round, double AtS, long Victim, long Urgent, int Step, double Gain, double Loss, IReadOnlyList<int> Devices);

/// <summary>One decode preemption decided: <c>Urgent</c>'s decode expedited on decode device <c>Device</c>, between two
/// tiles of <c>Paused</c>'s decode when one is named (else first after the decode running there), ahead of
/// <c>Delayed</c> decodes, because the dispatch objective's gain exceeded their loss (docs/policies.md, "Decode
/// preemption").</summary>
public sealed record DecodePreemptionDto(long Round, double AtS, long Urgent, long? Paused, int Device, int Delayed, double Gain, double Loss);

/// <summary><c>GET /v1/plan</c>.</summary>
/// <remarks><c>RecentPreemptions</c> and <c>RecentDecodePreemptions</c> are newest first and empty unless
/// <c>Trident:Serving:Preemption</c> is on.</remarks>
public sealed record PlanDto(long Rounds, PlacementDto Placement, PlacementDto InitialPlacement, IReadOnlyList<RoundDto> RecentRounds, IReadOnlyList<ReplacementDto> Replacements,
    IReadOnlyList<PreemptionDto> RecentPreemptions, IReadOnlyList<DecodePreemptionDto> RecentDecodePreemptions);

/// <summary><c>GET /health</c> and <c>GET /ready</c>.</summary>
public sealed record HealthDto(string Status, string? Pipeline, string? Profile, double UptimeSeconds);
