namespace Trident.Api.Contracts;

/// <summary>One stage task of one request on the web view's timeline (times in seconds on the server clock).</summary>
/// <param name="Request">Request id.</param>
/// <param name="Stage"><c>encode</c>, <c>diffuse</c> or <c>decode</c>.</param>
/// <param name="Devices">Devices it runs on (one for encode and decode, the degree's for diffuse).</param>
/// <param name="Degree">The request's sequence-parallel degree k.</param>
/// <param name="PredictedStartS">Start the dispatch plan predicted.</param>
/// <param name="PredictedFinishS">Finish the dispatch plan predicted.</param>
/// <param name="StartS">Actual start (null until it started).</param>
/// <param name="FinishS">Actual finish (null until it finished).</param>
/// <param name="Status">The request's status now.</param>
public sealed record ViewTaskDto(string Request, string Stage, IReadOnlyList<int> Devices, int Degree, double PredictedStartS, double PredictedFinishS,
    double? StartS, double? FinishS, string Status);

/// <summary>One waiting request of the web view's queue.</summary>
/// <param name="Id">Request id.</param>
/// <param name="SlackS">Deadline − now − its latency served alone (t_ref of the cost model): negative is late already.</param>
/// <param name="DeadlineInS">Deadline − now.</param>
/// <param name="WaitingS">Time since arrival.</param>
/// <param name="Priority">Client priority (higher is more important), or null.</param>
/// <param name="Shape">height×width×frames, steps.</param>
/// <param name="Reason">Why it waits, as the last dispatch round that saw it decided (Admissible.waitReasons): no admissible
/// option free, lost to a more urgent one, or no route on this placement — with the round — or arrived after the last round.</param>
public sealed record ViewQueueItemDto(string Id, double SlackS, double DeadlineInS, double WaitingS, int? Priority, string Shape, string Reason);

/// <summary>One request the stream follows (<c>?jobs=</c>), as the submit form's progress reads it (its deadline, arrival and finish are in
/// <c>GET /v1/generations/{id}</c>).</summary>
/// <param name="Id">Request id.</param>
/// <param name="Status">Its status now.</param>
/// <param name="Step">Denoising steps done.</param>
/// <param name="TotalSteps">Its steps.</param>
/// <param name="Error">Why it failed, or null.</param>
public sealed record ViewJobDto(string Id, string Status, int Step, int TotalSteps, string? Error);

/// <summary>Headline numbers.</summary>
/// <param name="Attainment">SLO attainment since this process started: succeeded by their deadline / succeeded (null before the first).</param>
/// <param name="Succeeded">Requests this process finished successfully since it started (not those recovered from the job journal as
/// already over: the previous process's; the same count as /metrics).</param>
/// <param name="Met">Of those, how many met their deadline.</param>
/// <param name="P50LatencyS">Median end-to-end latency of the same requests, those of them still held among the frame's (the latest
/// 1,500 accepted, until their retention ends), in seconds.</param>
/// <param name="P95LatencyS">95th percentile of the same.</param>
/// <param name="LatencySamples">How many requests the percentiles are over: <paramref name="Succeeded"/> until finished requests are
/// evicted or more than 1,500 were accepted, fewer after.</param>
/// <param name="ArrivalRate">Arrivals per second over the monitor window.</param>
/// <param name="Waiting">Requests waiting for dispatch.</param>
/// <param name="BusyDevices">Devices running a task now.</param>
public sealed record ViewHeadlineDto(double? Attainment, long Succeeded, long Met, double? P50LatencyS, double? P95LatencyS, int LatencySamples,
    double ArrivalRate, int Waiting, int BusyDevices);

/// <summary>One device as the web view draws it: the fields of <c>GET /v1/cluster</c>'s device that the page reads (its
/// lane, the placement table), without the ones it never shows (kind, threads, execution provider, what it can run…), which
/// made most of a frame on a large cluster.</summary>
/// <param name="Id">Device id.</param>
/// <param name="Node">Its node.</param>
/// <param name="PlacementType">Type in the placement plan.</param>
/// <param name="WorkerType">Type its worker last loaded (differs from the plan's while a change is pending).</param>
/// <param name="ResidentModels">Stage models resident.</param>
/// <param name="Busy">Whether it runs a task now.</param>
/// <param name="Current">The task it runs, if any.</param>
/// <param name="QueuedTasks">Tasks waiting on it.</param>
/// <param name="Utilisation">Busy share over the monitor window.</param>
/// <param name="MemoryGb">Its memory (GB, three decimals).</param>
public sealed record ViewDeviceDto(int Id, int Node, string PlacementType, string WorkerType, IReadOnlyList<string> ResidentModels, bool Busy,
    DeviceTaskDto? Current, int QueuedTasks, double Utilisation, double MemoryGb);

/// <summary>The queue's size in a frame (its rows are the frame's <c>queue</c>).</summary>
public sealed record ViewQueueSizeDto(int Waiting, int Capacity);

/// <summary>The cluster as the web view draws it: <c>GET /v1/cluster</c>'s body less what the page never reads (the
/// devices' other fields, the waiting ids, the settings, ONNX Runtime's devices).</summary>
public sealed record ViewClusterDto(string Pipeline, string Model, int Nodes, IReadOnlyList<ViewDeviceDto> Devices, ViewQueueSizeDto Queue, MonitorDto Monitor);

/// <summary>One frame of the web view's stream (<c>GET /v1/view/events</c>): what the page draws of <c>GET /v1/cluster</c>
/// (<see cref="ViewClusterDto"/>) and the body of <c>GET /v1/plan</c> with its 12 latest rounds (those the page lists), plus
/// the timeline, the queue and the headline numbers. Bounded: tasks of the last <c>HorizonS</c> seconds and of the requests
/// not over, of at most the last 1,500 requests and at most 4,000 tasks; at most 50 queue rows (most urgent first: those the
/// page lists) and the requests the stream follows (<c>?jobs=</c>, at most 20).</summary>
public sealed record ViewFrameDto(double NowS, double HorizonS, ViewHeadlineDto Headline, ViewClusterDto Cluster, PlanDto Plan,
    IReadOnlyList<ViewTaskDto> Tasks, IReadOnlyList<ViewQueueItemDto> Queue, IReadOnlyList<ViewJobDto> Jobs, bool Truncated);
