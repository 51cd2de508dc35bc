// The live web view: GET / is one static page (View/index.html, embedded: plain HTML, CSS and JavaScript, no build
// step, nothing loaded from outside the server), GET /v1/view/events its one server-sent-events stream. Each frame
// carries what the page reads of GET /v1/cluster (ViewClusterDto) and GET /v1/plan (its latest 12 rounds), both built
// by ClusterApi's own builders, plus what the page draws besides: the stage tasks of recent requests per device
// (predicted and actual times), the queue with slack and why each request waits, the states of the requests the stream
// follows (?jobs=: the page's own submissions) and the headline numbers — and nothing the page does not read (a frame
// was ≈ 100 KB with a few dozen requests). Frames are bounded (see ViewFrameDto), so a page left open for hours costs
// the server a constant amount per frame.

using System.Globalization;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http.HttpResults;
using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Runtime.Devices;
using Trident.Runtime.Serving;
using Trident.Scheduling;
using Trident.Scheduling.Dispatching;

namespace Trident.Api.Endpoints;

/// <summary>The web view's routes and its frame builder.</summary>
public static class ViewApi
{
    /// <summary>Seconds of finished tasks a frame keeps.</summary>
    public const double HorizonSeconds = 120;

    /// <summary>Most requests a frame looks at (the latest accepted).</summary>
    public const int MaxRequests = 1500;

    /// <summary>Most stage tasks in a frame (the latest kept).</summary>
    public const int MaxTasks = 4000;

    /// <summary>Most queue rows in a frame: the most urgent, as many as the page lists.</summary>
    public const int MaxQueueRows = 50;

    /// <summary>Most dispatch rounds in a frame's plan: the latest, as many as the page lists.</summary>
    public const int MaxRounds = 12;

    /// <summary>Resource name of the page.</summary>
    public const string PageResource = "trident-view:index.html";

    private static readonly Lazy<byte[]> Page = new(() =>
    {
        using var stream = typeof(ViewApi).Assembly.GetManifestResourceStream(PageResource)
            ?? throw new InvalidOperationException($"the web view's page ({PageResource}) is not embedded");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    /// <summary>The page's HTML (also what <c>simulate --out</c> fills with a finished run's frames).</summary>
    public static string PageHtml() => System.Text.Encoding.UTF8.GetString(Page.Value);

    /// <summary>Maps <c>/</c> and <c>/v1/view/events</c>.</summary>
    public static IEndpointRouteBuilder MapView(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => TypedResults.Bytes(Page.Value, "text/html; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/v1/view/events", Events).WithTags("Cluster").WithName("ViewEvents")
            .WithSummary("Server-sent events for the web view: one frame (cluster, plan, timeline, queue, headline) per period")
            .WithDescription("Event `frame`, every max(round period, 0.5 s): what the page draws of GET /v1/cluster (pipeline, devices' lanes and placement, queue size, monitor) and GET /v1/plan (its 12 latest rounds), the stage tasks of recent requests on their devices (predicted and actual seconds), the queue (slack, priority, why each waits), the requests named in `jobs` (comma-separated ids, at most 20: the page's own submissions; none without it) and headline numbers: succeeded, met and attainment count the requests this process finished since it started (not those recovered from the job journal as already over), and the P50/P95 latencies are over the same requests, those of them still held among the frame's (latency_samples: as many as succeeded until finished jobs are evicted or more than 1,500 were accepted). A query parameter other than jobs and api_key is a 400 naming it. Bounded: at most 1,500 requests, 4,000 tasks, 50 queue rows.")
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    /// <summary>Most requests one stream follows (<c>?jobs=</c>): the page follows the last 20 it submitted.</summary>
    public const int MaxFollowed = 20;

    private static Results<ServerSentEventsResult<ViewFrameDto>, ProblemHttpResult> Events(HttpContext http, ServerHost host, string? jobs)
    {
        if (host.Ready is not { } ready) return Problems.NotReady(http, host);
        var (followed, error) = Followed(jobs);
        if (error is not null)
            return TypedResults.Problem(new HttpValidationProblemDetails(new Dictionary<string, string[]> { ["jobs"] = [error] })
            {
                Status = StatusCodes.Status400BadRequest,
                Title = "Bad request",
                Detail = error,
            });
        return TypedResults.ServerSentEvents(Stream(ready, followed, http.RequestAborted));
    }

    /// <summary>The request ids of <c>?jobs=</c> (comma-separated, at most <see cref="MaxFollowed"/>), or why they are not.</summary>
    public static (long[] Ids, string? Error) Followed(string? jobs)
    {
        if (string.IsNullOrEmpty(jobs)) return ([], null);
        var parts = jobs.Split(',');
        if (parts.Length > MaxFollowed) return ([], $"{parts.Length} request ids; a stream follows at most {MaxFollowed}");
        var ids = new long[parts.Length];
        for (var i = 0; i < parts.Length; i++)
            if (!long.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]) || ids[i] < 1)
                return ([], $"'{parts[i]}' is not a request id (a positive integer, as POST /v1/generations answers it)");
        return (ids, null);
    }

    private static async IAsyncEnumerable<SseItem<ViewFrameDto>> Stream(ReadyServer ready, long[] followed, [EnumeratorCancellation] CancellationToken ct)
    {
        var period = TimeSpan.FromSeconds(Math.Max(0.5, ready.Server.Setup.Settings.RoundPeriodSeconds));
        using var timer = new PeriodicTimer(period);
        long n = 0;
        do
        {
            yield return new SseItem<ViewFrameDto>(Frame(ready, followed), "frame") { EventId = (++n).ToString(CultureInfo.InvariantCulture) };
        }
        while (await Tick(timer, ct));
    }

    private static async Task<bool> Tick(PeriodicTimer timer, CancellationToken ct)
    {
        try { return await timer.WaitForNextTickAsync(ct); }
        catch (OperationCanceledException) { return false; }
    }

    private static string Stage(TaskKind k) => k switch { TaskKind.Encode => "encode", TaskKind.Diffuse => "diffuse", _ => "decode" };

    /// <summary>One frame of the stream, from the server's state now; its <c>jobs</c> are the <paramref name="followed"/>
    /// requests the server still holds (none when null).</summary>
    public static ViewFrameDto Frame(ReadyServer ready, IReadOnlyCollection<long>? followed = null)
    {
        var server = ready.Server;
        var now = server.Clock.Now;
        var cluster = ClusterApi.ClusterOf(ready);
        var plan = ClusterApi.PlanOf(ready);
        var state = server.State;
        var jobs = server.Store.Recent(MaxRequests);
        var views = jobs.Select(j => (Job: j, View: j.View())).ToArray();
        var tasks = new List<ViewTaskDto>();
        var latencies = new List<double>();
        foreach (var (job, v) in views)
        {
            // the requests the headline's counts are of (TridentServer.Deadlines): those this process finished, not
            // those recovered from the journal as already over (45 succeeded had 85 latency samples after a restart)
            if (v.Status == JobStatus.Succeeded && v.Finished is { } f && !job.FinishedBeforeRestart) latencies.Add(f - v.Arrival);
            if (v.Route is not { } route) continue;
            if (v.IsTerminal && (v.Finished ?? now) < now - HorizonSeconds) continue;
            var d = route.Dispatch;
            var status = GenerationsApi.Name(v.Status);
            void Add(TaskKind kind, StageAssignment a, StageTiming t) =>
                tasks.Add(new ViewTaskDto(Wire(v.Id), Stage(kind), a.Devices.Select(x => x.Value).ToArray(), d.Degree,
                    Math.Round(a.Start, 3), Math.Round(a.Finish, 3), Round(t.Start), Round(t.Finish), status));
            Add(TaskKind.Encode, d.Encode, v.Encode);
            Add(TaskKind.Diffuse, d.Diffuse, v.Diffuse);
            Add(TaskKind.Decode, d.Decode, v.Decode);
        }
        var truncated = tasks.Count > MaxTasks || jobs.Count >= MaxRequests;
        if (tasks.Count > MaxTasks) tasks.RemoveRange(0, tasks.Count - MaxTasks);

        var queued = views.Where(x => x.View.Status == JobStatus.Queued && x.View.Route is null).Select(x =>
        {
            var (job, v) = x;
            var request = job.Request;
            var tRef = CostModelModule.tRef(server.Cost, request.Shape, request.Steps);
            // the planner's own reason from the last round that saw it (Admissible.waitReasons)
            var reason = state.Waits.TryGetValue(v.Id.Value, out var w)
                ? $"{WaitReasonModule.describe(w.Reason)} (round {w.Round})"
                : "arrived after the last round: waits for the next";
            return (Level: Priority.level(request.Priority), Row: new ViewQueueItemDto(Wire(v.Id), Math.Round(v.Deadline - now - tRef, 3),
                Math.Round(v.Deadline - now, 3), Math.Round(now - v.Arrival, 3), request.Priority is { } p ? p.Value : null,
                $"{v.Input.Height}×{v.Input.Width}×{v.Input.Frames}, {v.Input.Steps} steps", reason));
        }).OrderByDescending(q => q.Level).ThenBy(q => q.Row.SlackS).Take(MaxQueueRows).Select(q => q.Row).ToArray(); // the dispatcher's urgency order: priority, then slack

        // only the requests the page follows (its own submissions): the last 200 requests' rows were a quarter of a loaded frame
        var recent = (followed ?? []).Distinct().Select(id => server.Store.Find(RequestId.NewRequestId(id))).OfType<Job>().Select(j => j.View())
            .Select(v => new ViewJobDto(Wire(v.Id), GenerationsApi.Name(v.Status), v.Step, v.Input.Steps, v.Error)).ToArray();

        latencies.Sort();
        var (succeeded, met) = server.Deadlines;
        var headline = new ViewHeadlineDto(succeeded == 0 ? null : Math.Round((double)met / succeeded, 4), succeeded, met,
            Percentile(latencies, 0.50), Percentile(latencies, 0.95), latencies.Count, cluster.Monitor.ArrivalRate, server.Waiting,
            cluster.Devices.Count(x => x.Busy));
        // what the page reads of /v1/cluster and /v1/plan (on 128 devices the devices' other fields were 50 of a frame's 55 KB)
        var view = new ViewClusterDto(cluster.Pipeline, cluster.Model, cluster.Nodes,
            cluster.Devices.Select(x => new ViewDeviceDto(x.Id, x.Node, x.PlacementType, x.WorkerType, x.ResidentModels, x.Busy, x.Current, x.QueuedTasks,
                x.Utilisation, Math.Round(x.MemoryGb, 3))).ToArray(),
            new ViewQueueSizeDto(cluster.Queue.Waiting, cluster.Queue.Capacity), cluster.Monitor);
        plan = plan with { RecentRounds = plan.RecentRounds.Take(MaxRounds).ToArray() };
        return new ViewFrameDto(Math.Round(now, 3), HorizonSeconds, headline, view, plan, tasks, queued, recent, truncated);
    }

    private static string Wire(RequestId id) => id.Value.ToString(CultureInfo.InvariantCulture);

    private static double? Round(double? x) => x is { } v ? Math.Round(v, 3) : null;

    // nearest-rank percentile of sorted values
    private static double? Percentile(List<double> sorted, double q) =>
        sorted.Count == 0 ? null : Math.Round(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)], 3);
}
