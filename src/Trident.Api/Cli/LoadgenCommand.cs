// `trident loadgen`: replays a trace against a running server and reports what it measured; with
// --compare-sim it also runs the simulator on the same requests with the server's own profile, cluster and
// settings, and compares predicted with measured latency per request.
//
// Design note. The trace is a named generator (the tiny pipeline's mixes, or any of the scheduling core's
// workloads) or a trace file (CSV or JSON lines, docs in Workload.fs). It is cut to --duration seconds of
// arrivals and at most --count requests, and each request is submitted at its arrival offset without
// waiting for earlier answers. Latency is the server's own (arrival to finish, from its status), so client
// polling adds nothing to it; a 429 counts as an error and a miss. After the last submission the run waits at
// most --timeout seconds, then cancels what is left (also a miss). Only loopback addresses are accepted.
// For the comparison the simulator replays the accepted requests at the offsets and with the deadlines the
// server recorded, on a cluster of the server's devices, with Trident's policy (Baselines.trident) and the
// server's round period and Adjust-on-Dispatch settings.

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Api.Contracts;
using Trident.Api.Options;
using Trident.Scheduling;
using Trident.Scheduling.Placement;
using Trace = Trident.Scheduling.Trace;

namespace Trident.Api.Cli;

/// <summary>The <c>loadgen</c> command.</summary>
public static class LoadgenCommand
{
    /// <summary>Workloads over the tiny pipeline's sizes (64², 128², 256², 8 steps); tiny-same: one shape (128², or
    /// <c>--size</c>) at a constant rate, the same-shape load that batching serves.</summary>
    public static readonly string[] TinyWorkloads = ["tiny-constant", "tiny-poisson", "tiny-bursty", "tiny-shifting", "tiny-same"];

    private static readonly Option<string> Url = Cli.Opt.String("--url", "the server (loopback addresses only)", "http://127.0.0.1:8080", helpName: "URL");
    private static readonly Option<string> Workload_ = Cli.Opt.String("--workload",
        "the workload: " + string.Join(", ", TinyWorkloads) + ", " + string.Join(", ", Workload.names) + ", or a trace file (CSV or JSON lines)",
        required: true, helpName: "NAME|FILE").Completing([.. TinyWorkloads, .. Workload.names]);
    private static readonly Option<double> Rate = Cli.Opt.Double("--rate", "requests per second instead of the workload's own", null, 1e-6, 10_000);
    private static readonly Option<double> Load = Cli.Opt.Double("--load", "tiny workloads: the arrival rate as a multiple of the server's capacity by its profile (devices / a request's device-seconds at k = 1; 2 = twice what the devices can serve) instead of --rate", null, 1e-3, 1000);
    private static readonly Option<double> Duration = Cli.Opt.Double("--duration", "seconds of arrivals to replay", 30, 0.1, 3600);
    private static readonly Option<int> Count = Cli.Opt.Int("--count", "requests at most", 200, 1, 10_000);
    private static readonly Option<int> Steps = Cli.Opt.Int("--steps", "denoising steps of each request instead of the workload's", null, 1, 10_000);
    private static readonly Option<int> Size = Cli.Opt.Int("--size", "tiny-same only: the side of its one square shape in pixels instead of 128 (one of the tiny pipeline's 64, 128, 256)", null, 1, 4096);
    private static readonly Option<ulong> Seed = Cli.Opt.ULong("--seed", "the seed of a generated workload", 1);
    private static readonly Option<double> Timeout = Cli.Opt.Double("--timeout", "seconds to wait after the last submission before cancelling what is left", 120, 1, 3600);
    private static readonly Option<bool> Compare = Cli.Opt.Flag("--compare-sim", "also simulate the same requests with the server's profile, cluster and settings, and compare predicted with measured latency");
    private static readonly Option<string> Out = Cli.Opt.String("--out", "also write one CSV row per request", helpName: "requests.csv");
    private static readonly Option<string> ApiKey = Cli.Opt.String("--api-key",
        "the key of a server with API keys (Trident:Auth:ApiKeys), sent as a bearer token; default: the environment variable TRIDENT_API_KEY", helpName: "KEY");
    private static readonly Option<double> TimeScale = Cli.Opt.Double("--time-scale",
        "multiply the trace's arrival times and deadlines (seconds after arrival) by this, e.g. the --time-scale of an emulated server, so a trace made for real devices loads it alike",
        1, 1e-4, 1000);

    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("loadgen",
            "replay a trace against a running server (loopback only) and print SLO attainment, mean/P95/P99 latency and errors; "
            + "--compare-sim also simulates the same requests and prints predicted vs measured latency")
            { Url, Workload_, Rate, Load, Duration, Count, Steps, Size, Seed, Timeout, Compare, Out, TimeScale, ApiKey };
        // everything that can be checked without the server, checked while parsing: one error with the values that did
        // not parse, and before any request (before, --workload nosuch was named only after reading the server)
        c.Check((values, errors) => Check(values, errors));
        return c.With(Run);
    }

    /// <summary>Every problem of the command line that the server is not needed for, in <paramref name="errors"/>: the
    /// URL, --out, --load/--rate/--size against the workload, and the workload itself — a tiny workload, a named one or
    /// an existing file (a file's requests are checked against the server's profile once it is read). Returns the base
    /// URI (null when the URL is bad).</summary>
    private static Uri? Check(OptionValues args, CliErrors errors)
    {
        var url = args.Text(Url);
        var workload = args.Get(Workload_);
        var rate = args.Maybe(Rate);
        var load = args.Maybe(Load);
        var size = args.Maybe(Size);
        if (load is not null && rate is not null) errors.Add("--load/--rate: give --rate or --load, not both");
        else if (load is not null && workload is not null && !TinyWorkloads.Contains(workload))
            errors.Add($"--load: only the tiny workloads ({string.Join(", ", TinyWorkloads)}) take a load; give '{workload}' a --rate");
        if (size is not null && workload is not null && workload != "tiny-same")
            errors.Add($"--size: only tiny-same takes a size (its one shape); '{workload}' has its own shapes");
        else if (size is not (null or 64 or 128 or 256)) errors.Add($"--size: {size} is not one of the tiny pipeline's profiled sizes 64, 128, 256");
        if (workload is not null && !File.Exists(workload))
        {
            if (Scheduling.Trace.looksLikeFile(workload)) errors.Add($"--workload: {InputPath.NotAFile(workload, "trace file")}");
            else if (!TinyWorkloads.Contains(workload) && !Workload.names.Contains(workload))
                errors.Add($"--workload: unknown workload '{workload}' (known: {string.Join(", ", TinyWorkloads)}, {string.Join(", ", Workload.names)}, or a trace file)");
        }
        Uri? baseUri = null;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != "http")
            errors.Add($"--url: '{url}' is not an http URL");
        else if (!IsLoopback(uri))
            errors.Add($"--url: '{url}' is not a loopback address (loadgen only talks to this machine)");
        else baseUri = uri;
        OutputPath.Check("--out", args.Get(Out), directory: false, create: true, errors);
        return baseUri;
    }

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private sealed class Sent(TraceRequest trace)
    {
        public TraceRequest Trace { get; } = trace;
        public string? Id { get; set; }
        public int Code { get; set; }
        public string? Error { get; set; }
        public GenerationStatusDto? Final { get; set; }
    }

    private static Task<int> Run(ParseResult args, CancellationToken ct) => RunAsync(args, null, Console.Out, ct);

    /// <summary>Runs loadgen; <paramref name="client"/>, when given, is used instead of a client for --url (tests
    /// pass an in-process server's).</summary>
    public static async Task<int> RunAsync(ParseResult args, HttpClient? client, TextWriter o, CancellationToken ct)
    {
        var errors = new CliErrors();
        var url = args.Text(Url);
        var workload = args.Text(Workload_);
        var rate = args.Maybe(Rate);
        var duration = args.GetValue(Duration);
        var count = args.GetValue(Count);
        var steps = args.Maybe(Steps);
        var size = args.Maybe(Size);
        var load = args.Maybe(Load);
        var seed = args.GetValue(Seed);
        var timeout = args.GetValue(Timeout);
        var compare = args.GetValue(Compare);
        var output = args.GetValue(Out);
        var timeScale = args.GetValue(TimeScale);
        var baseUri = Check(OptionValues.Of(args), errors);
        errors.ThrowIfAny();

        using var owned = client is null ? new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(30) } : null;
        var http = client ?? owned!;
        if ((args.GetValue(ApiKey) ?? Environment.GetEnvironmentVariable("TRIDENT_API_KEY")) is { Length: > 0 } key)
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        ClusterDto cluster;
        Profile profile;
        try
        {
            cluster = (await http.GetFromJsonAsync<ClusterDto>("/v1/cluster", Json, ct))!;
            var parsed = ProfileFile.parse(await http.GetStringAsync("/v1/profile", ct));
            if (parsed.IsError) throw new InvalidDataException("the server's profile does not parse: " + string.Join("; ", parsed.ErrorValue));
            profile = parsed.ResultValue;
        }
        catch (HttpRequestException e) when (e.StatusCode == System.Net.HttpStatusCode.Unauthorized)
        {
            Console.Error.WriteLine(http.DefaultRequestHeaders.Authorization is null
                ? $"trident loadgen: {url} requires an API key (Trident:Auth:ApiKeys): give --api-key KEY or set TRIDENT_API_KEY"
                : $"trident loadgen: {url} refused the API key given (--api-key or TRIDENT_API_KEY): it is not one of its Trident:Auth:ApiKeys");
            return 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or InvalidDataException)
        {
            Console.Error.WriteLine($"trident loadgen: cannot read {url}/v1/cluster and /v1/profile ({e.Message}); is `trident serve` running and ready?");
            return 1;
        }
        var cost = CostModelModule.create(CostSettings(cluster.Settings), profile);
        var layout = SimCluster(cluster);

        var trace = Trace(workload, rate, load, steps, size ?? 128, count, seed, cost, layout, errors, o);
        if (trace is null) return 2;
        // the server's clock: arrivals and deadlines × --time-scale (an emulated server's profile is scaled alike)
        var requests = trace.Select(t => timeScale == 1 ? t : new TraceRequest(t.Id, t.Arrival * timeScale, t.Model, t.Shape, t.Steps,
                FSharpOption<double>.get_IsSome(t.Deadline) ? FSharpOption<double>.Some(t.Deadline.Value * timeScale) : t.Deadline,
                t.Priority))
            .Where(t => t.Arrival < duration).Take(count).ToArray();
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"loadgen: {requests.Length} requests over {(requests.Length > 0 ? requests[^1].Arrival : 0):F1} s to {url} ({cluster.Devices.Count} devices, pipeline {cluster.Pipeline})"));

        var busyBefore = await DeviceBusyAsync(http, ct);
        var sent = await ReplayAsync(http, requests, timeout, ct);
        var busyAfter = await DeviceBusyAsync(http, ct);
        Report(sent, o);
        ReportPhases(sent, o);
        ReportDevices(sent, busyBefore, busyAfter, cost, cluster.Devices.Count, o);
        if (output is not null) WriteCsv(output, sent, null, o);
        if (compare) CompareWithSimulation(sent, cost, layout, cluster.Settings, output, o);
        return 0;
    }

    private static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    internal static CostSettings CostSettings(SchedulingSettingsDto s) =>
        new(ListModule.OfSeq(s.Degrees), s.EfficiencyThreshold, CostSettingsModule.referenceMinDegrees, DeadlineRule.NewSloScale(s.SloScale));

    private static Cluster SimCluster(ClusterDto c) =>
        new(c.Devices.Select(d => new Device(DeviceId.NewDeviceId(d.Id), NodeId.NewNodeId(d.Node), d.MemoryGb)).ToArray(), c.Nodes,
            c.Devices[0].Kind == "cpu" ? new Bandwidths(10e9, 1.25e9, 10e9) : BandwidthsModule.pcie4Server);

    /// <summary>The trace: a tiny workload, a named workload of the scheduling core, or a file.</summary>
    private static IReadOnlyList<TraceRequest>? Trace(string workload, double? rate, double? load, int? steps, int size, int count, ulong seed, CostModel cost, Cluster cluster, CliErrors errors, TextWriter o)
    {
        if (File.Exists(workload) || Scheduling.Trace.looksLikeFile(workload))
        {
            // every problem in one pass, each request checked against the server's profile (model, image-only)
            var profile = cost.Profile;
            var parsed = TraceFile.Parse(model => model == profile.Model.Value
                ? FSharpResult<Profile, string>.NewOk(profile)
                : FSharpResult<Profile, string>.NewError($"model '{model}' is not the server's ('{profile.Model.Value}')"), workload);
            if (parsed.IsOk) return [.. parsed.ResultValue.OrderBy(t => t.Arrival)];
            Console.Error.WriteLine($"trident loadgen: {workload}:");
            foreach (var e in parsed.ErrorValue) Console.Error.WriteLine($"  {e}");
            return null;
        }
        WorkloadSpec spec;
        if (TinyWorkloads.Contains(workload))
        {
            var shapes = ListModule.OfSeq(new[] { 64, 128, 256 }.Select(n => new Shape(n, n, 1)));
            var s = steps ?? 8;
            var sorted = shapes.OrderBy(sh => sh.PixelFrames).ToArray();
            var mixShapes = workload == "tiny-same" ? ListModule.OfSeq([new Shape(size, size, 1)]) : shapes;
            // by default, the rate that keeps the server's devices ≈ 60 % busy at k = 1 by its profile (--load: that multiple)
            var r = rate ?? Math.Round(Workload.rateForLoad(cost, mixShapes, s, ClusterModule.deviceCount(cluster), load ?? 0.6), 2);
            var (arrivals, mix) = workload switch
            {
                "tiny-constant" => (ArrivalProcess.Constant, Mix.NewUniform(shapes)),
                "tiny-poisson" => (ArrivalProcess.Poisson, Mix.NewUniform(shapes)),
                "tiny-bursty" => (ArrivalProcess.NewBursty(3.0, 5.0, 15.0), Mix.NewUniform(shapes)),
                "tiny-same" => (ArrivalProcess.Constant, Mix.NewUniform(ListModule.OfSeq([new Shape(size, size, 1)]))),
                _ => (ArrivalProcess.Poisson, Mix.NewShifting(ListModule.OfSeq(sorted.Take(2)), ListModule.OfSeq(sorted.Skip(2)), 0.4, 0.6)),
            };
            spec = new WorkloadSpec(workload, "tiny", r, s, count, arrivals, mix,
                workload == "tiny-same" ? $"tiny pipeline, every request {size}²" : "tiny pipeline sizes 64², 128², 256²");
        }
        else
        {
            var named = Workload.tryNamed(workload, cost.Profile.Model.Value);
            if (named.IsError)
            {
                errors.Add($"--workload: {named.ErrorValue} (or {string.Join(", ", TinyWorkloads)})");
                errors.ThrowIfAny();
            }
            spec = Workload.withOverrides(Opt(rate), Opt(steps), FSharpOption<int>.Some(count), named.ResultValue);
        }
        o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"workload {spec.Name}: {spec.Rate:G4} req/s, {spec.Steps} steps, seed {seed}"));
        return [.. Workload.generate(spec, seed)];
    }

    private static FSharpOption<T> Opt<T>(T? v) where T : struct => v is { } x ? FSharpOption<T>.Some(x) : FSharpOption<T>.None;

    private static async Task<List<Sent>> ReplayAsync(HttpClient http, TraceRequest[] requests, double timeout, CancellationToken ct)
    {
        var sent = requests.Select(r => new Sent(r)).ToList();
        var clock = Stopwatch.StartNew();
        var posts = new List<Task>();
        using (var submitting = CliProgress.Start("loadgen: submitting", sent.Count, TimeSpan.FromSeconds(1)))
        {
            foreach (var s in sent)
            {
                var wait = s.Trace.Arrival - clock.Elapsed.TotalSeconds;
                if (wait > 0) await Task.Delay(TimeSpan.FromSeconds(wait), ct);
                posts.Add(Submit(s));
            }
            async Task Submit(Sent s)
            {
                await SubmitAsync(http, s, ct);
                submitting.Step(string.Create(CultureInfo.InvariantCulture,
                    $"request {s.Trace.Id} at {clock.Elapsed.TotalSeconds:F1} s: {(s.Id is not null ? "accepted" : s.Error)}"));
            }
            await Task.WhenAll(posts);
        }
        var deadline = clock.Elapsed.TotalSeconds + timeout;
        var open = sent.Where(s => s.Id is not null).ToList();
        using var finishing = CliProgress.Start("loadgen: finishing", open.Count, TimeSpan.FromSeconds(1));
        while (open.Count > 0 && clock.Elapsed.TotalSeconds < deadline)
        {
            // latency and finish times are the server's own (its status), so polling once a second only delays
            // loadgen's end, and keeps its status requests from taking the CPU the devices share
            await Task.Delay(1000, ct);
            foreach (var s in open.ToArray())
            {
                var status = await http.GetFromJsonAsync<GenerationStatusDto>($"/v1/generations/{s.Id}", Json, ct);
                if (status is { Status: "succeeded" or "failed" or "cancelled" })
                {
                    s.Final = status;
                    open.Remove(s);
                    finishing.Step(string.Create(CultureInfo.InvariantCulture, $"request {s.Trace.Id} {status.Status} at {clock.Elapsed.TotalSeconds:F1} s"));
                }
            }
        }
        foreach (var s in open)
        {
            s.Error = $"no result after {timeout:F0} s (cancelled)";
            using var _ = await http.DeleteAsync($"/v1/generations/{s.Id}", ct);
        }
        return sent;
    }

    // trident_device_busy_seconds_total by device from the server's /metrics (Prometheus text; a device that has
    // run nothing yet has no series and counts 0); null when /metrics cannot be read.
    private static async Task<Dictionary<string, double>?> DeviceBusyAsync(HttpClient http, CancellationToken ct)
    {
        const string name = "trident_device_busy_seconds_total{";
        try
        {
            var text = await http.GetStringAsync("/metrics", ct);
            var busy = new Dictionary<string, double>();
            foreach (var (series, v) in MetricSeries(text, name))
                busy[System.Text.RegularExpressions.Regex.Match(series, "device=\"([^\"]*)\"").Groups[1].Value] = v;
            return busy;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    /// <summary>The value of every series of /metrics (Prometheus text) whose line starts with
    /// <paramref name="prefix"/>, by its series (name and labels): the first number after the series.</summary>
    internal static Dictionary<string, double> MetricSeries(string metrics, string prefix)
    {
        var values = new Dictionary<string, double>();
        foreach (var line in metrics.Split('\n'))
        {
            if (!line.StartsWith(prefix, StringComparison.Ordinal)) continue;
            var end = line.IndexOf('}') is var brace and >= 0 ? brace + 1 : line.IndexOf(' ');
            if (end <= 0) continue;
            var value = line[end..].Trim().Split(' ')[0];
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) values[line[..end]] = v;
        }
        return values;
    }

    // The devices over the run: each one's busy seconds (trident_device_busy_seconds_total before and after) over
    // the span from the first arrival to the last finish, and the completed rate against the capacity — the
    // devices' summed 1/service-time, a request's service time being its device-seconds at k = 1 by the server's
    // profile (encode + steps · diffuse step + decode; Workload.meanDeviceSecondsAtK1 over the requests sent).
    private static void ReportDevices(List<Sent> sent, Dictionary<string, double>? before, Dictionary<string, double>? after, CostModel cost, int devices,
        TextWriter o)
    {
        var done = sent.Where(s => s.Final?.Status == "succeeded").ToList();
        if (done.Count == 0 || before is null || after is null) return;
        var first = sent.Where(s => s.Final is not null).Min(s => s.Final!.CreatedAt);
        var last = done.Max(s => s.Final!.CreatedAt.AddMilliseconds(s.Final.Timings.TotalMs!.Value));
        var span = (last - first).TotalSeconds;
        if (span <= 0) return;
        var ids = Enumerable.Range(0, devices).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        var busy = ids.Select(d => after.GetValueOrDefault(d) - before.GetValueOrDefault(d)).ToArray();
        var service = Workload.meanDeviceSecondsAtK1(cost, ListModule.OfSeq(sent.Select(s => s.Trace.Shape)), (int)Math.Round(sent.Average(s => s.Trace.Steps)));
        var capacity = devices / service;
        var rate = done.Count / span;
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"devices: busy_s={string.Join("/", busy.Select(b => b.ToString("F2", CultureInfo.InvariantCulture)))} "
            + $"utilisation={string.Join("/", busy.Select(b => (b / span).ToString("F3", CultureInfo.InvariantCulture)))} (over span_s={span:F2}) "
            + $"device_s_per_request={busy.Sum() / done.Count:F3}"));
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"capacity: profile_service_s={service:F3} capacity_per_s={capacity:F3} ({devices} devices / service time) completed_per_s={rate:F3} completed_over_capacity={rate / capacity:F3}"));
        var tasks = StageTasks(done);
        if (tasks.Count == 0) return;
        // the same capacity from this run's own service times: the device-seconds of stage work (each stage task's
        // run, from its inputs being ready to its end, times its devices) per request served, under the load the
        // machine has now; the devices' busy seconds beyond that are waits inside a task (inputs not ready yet)
        var run = ids.Select(d => tasks.Where(t => t.Devices.Contains(int.Parse(d, CultureInfo.InvariantCulture))).Sum(t => t.Seconds)).ToArray();
        var measured = tasks.Sum(t => t.Seconds * t.Devices.Count) / done.Count;
        var measuredCapacity = devices / measured;
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"capacity: measured_service_s={measured:F3} capacity_per_s={measuredCapacity:F3} (this run's stage work per request) completed_over_capacity={rate / measuredCapacity:F3} "
            + $"stage_run_s={string.Join("/", run.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))} "
            + $"busy_not_running_s={string.Join("/", busy.Zip(run, (b, r) => (b - r).ToString("F2", CultureInfo.InvariantCulture)))} "
            + $"idle_s={string.Join("/", busy.Select(b => (span - b).ToString("F2", CultureInfo.InvariantCulture)))}"));
        // idle while work waited: each device's gaps between its stage runs, counted only up to the last dispatch
        // (after it nothing waits for a device, so the drain's idle tail is not a gap to fill)
        var lastDispatch = done.Max(s => (s.Final!.CreatedAt - DateTimeOffset.UnixEpoch).TotalMilliseconds + (s.Final.Timings.Queued.EndMs ?? 0));
        var firstArrival = (first - DateTimeOffset.UnixEpoch).TotalMilliseconds;
        var gaps = ids.Select(d =>
        {
            var id = int.Parse(d, CultureInfo.InvariantCulture);
            var runs = tasks.Where(t => t.Devices.Contains(id)).Select(t => (Start: t.EndMs - t.Seconds * 1000, End: t.EndMs)).OrderBy(r => r.Start).ToList();
            var idle = new List<double>();
            var at = firstArrival;
            foreach (var (start, end) in runs)
            {
                if (at >= lastDispatch) break;
                var gap = Math.Min(start, lastDispatch) - at;
                if (gap > 0) idle.Add(gap);
                at = Math.Max(at, end);
            }
            return idle;
        }).ToArray();
        static string Ms(double v) => v.ToString("F1", CultureInfo.InvariantCulture);
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"gaps: idle_before_last_dispatch_s={string.Join("/", gaps.Select(g => (g.Sum() / 1000).ToString("F2", CultureInfo.InvariantCulture)))} "
            + $"count={string.Join("/", gaps.Select(g => g.Count))} p50_ms={string.Join("/", gaps.Select(g => Ms(Percentile([.. g.Order()], 0.5))))} "
            + $"max_ms={string.Join("/", gaps.Select(g => Ms(g.Count == 0 ? 0 : g.Max())))} first_ms={string.Join("/", gaps.Select(g => Ms(g.Count == 0 ? 0 : g[0])))} "
            + $"(from the first arrival to the last dispatch, span_s={(lastDispatch - firstArrival) / 1000:F2})"));
    }

    // One stage task of the run, rebuilt from its requests' timings: the requests of a batch share their stage
    // tasks, whose end the server records once for all of them. A device runs one task at a time, so on one
    // device the ends of two tasks are a run apart, and requests whose ends (arrival + end offset, each to
    // 0.1 ms) fall within a millisecond of each other ran in one task (its run: the longest member's).
    private sealed record StageRun(string Stage, IReadOnlyList<int> Devices, double EndMs, double Seconds, int Requests);

    private static List<StageRun> StageTasks(List<Sent> done)
    {
        var rows = new List<(string Stage, IReadOnlyList<int> Devices, double End, double Ms)>();
        foreach (var s in done)
        {
            var f = s.Final!;
            if (f.Route is not { } route) continue;
            var created = (f.CreatedAt - DateTimeOffset.UnixEpoch).TotalMilliseconds;
            void Add(string stage, StageTimingDto t, IReadOnlyList<int> on)
            {
                if (t is { EndMs: { } end, DurationMs: { } ms } && on.Count > 0) rows.Add((stage, on, created + end, ms));
            }
            if (route.EncodeDevice is { } e) Add("encode", f.Timings.Encode, [e]);
            Add("diffuse", f.Timings.Diffuse, route.DiffuseDevices);
            Add("decode", f.Timings.Decode, [route.DecodeDevice]);
        }
        var tasks = new List<StageRun>();
        foreach (var onDevice in rows.GroupBy(r => (r.Stage, r.Devices[0])))
        {
            var ordered = onDevice.OrderBy(r => r.End).ToList();
            for (var i = 0; i < ordered.Count;)
            {
                var j = i + 1;
                while (j < ordered.Count && ordered[j].End - ordered[i].End < 1.0) j++;
                tasks.Add(new StageRun(ordered[i].Stage, ordered[i].Devices, ordered[i].End, ordered.Skip(i).Take(j - i).Max(r => r.Ms) / 1000.0, j - i));
                i = j;
            }
        }
        return tasks;
    }

    // Where a request's time goes (means over the requests served, from the server's own timings): waiting to be
    // dispatched, each stage's run and the waits between them, and the result after the decode (output file,
    // completion); with the requests per stage task (the batch) and the stage's run per request in its task.
    private static void ReportPhases(List<Sent> sent, TextWriter o)
    {
        var done = sent.Where(s => s.Final?.Status == "succeeded" && s.Final.Timings.Decode.EndMs is not null && s.Final.Timings.Encode.StartMs is not null
            && s.Final.Timings.Diffuse.StartMs is not null).ToList();
        if (done.Count == 0) return;
        double Mean(Func<TimingsDto, double> f) => done.Average(s => f(s.Final!.Timings));
        var tasks = StageTasks(done);
        string Stage(string stage)
        {
            var of = tasks.Where(t => t.Stage == stage).ToList();
            return of.Count == 0 ? "-" : string.Create(CultureInfo.InvariantCulture,
                $"{of.Sum(t => t.Seconds) * 1000 / of.Sum(t => t.Requests):F1}ms/req@batch{(double)of.Sum(t => t.Requests) / of.Count:F2}");
        }
        var steps = done.Average(s => s.Final!.TotalSteps);
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"phases_ms: queued={Mean(t => t.Queued.DurationMs ?? 0):F1} to_encode={Mean(t => t.Encode.StartMs!.Value - (t.Queued.EndMs ?? 0)):F1} "
            + $"encode={Mean(t => t.Encode.DurationMs ?? 0):F1} to_diffuse={Mean(t => t.Diffuse.StartMs!.Value - t.Encode.EndMs!.Value):F1} "
            + $"diffuse={Mean(t => t.Diffuse.DurationMs ?? 0):F1} (step={Mean(t => t.Diffuse.DurationMs ?? 0) / steps:F1}) "
            + $"to_decode={Mean(t => t.Decode.StartMs!.Value - t.Diffuse.EndMs!.Value):F1} decode={Mean(t => t.Decode.DurationMs ?? 0):F1} "
            + $"result={Mean(t => t.TotalMs!.Value - t.Decode.EndMs!.Value):F1} total={Mean(t => t.TotalMs!.Value):F1}"));
        o.WriteLine($"stage_work: encode={Stage("encode")} diffuse={Stage("diffuse")} decode={Stage("decode")}");
    }

    private static async Task SubmitAsync(HttpClient http, Sent s, CancellationToken ct)
    {
        var t = s.Trace;
        var body = new GenerationRequestDto($"loadgen request {t.Id}", null, t.Shape.Width, t.Shape.Height, t.Shape.Frames, t.Steps, t.Id, null,
            FSharpOption<double>.get_IsSome(t.Deadline) ? (long)Math.Max(1, Math.Round((t.Deadline.Value - t.Arrival) * 1000)) : null,
            FSharpOption<int>.get_IsSome(t.Priority) ? t.Priority.Value : null);
        try
        {
            using var response = await http.PostAsJsonAsync("/v1/generations", body, Json, ct);
            s.Code = (int)response.StatusCode;
            if (response.StatusCode == HttpStatusCode.Accepted)
                s.Id = (await response.Content.ReadFromJsonAsync<GenerationAcceptedDto>(Json, ct))!.Id;
            else
                s.Error = $"HTTP {s.Code}: {Detail(await response.Content.ReadAsStringAsync(ct))}";
        }
        catch (HttpRequestException e)
        {
            s.Error = e.Message;
        }
    }

    // The problem's detail (its title when it has none), without the per-request trace id.
    private static string Detail(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.TryGetProperty("errors", out var errors)) return "invalid request: " + errors.GetRawText();
            return root.TryGetProperty("detail", out var d) ? d.GetString() ?? "" : root.TryGetProperty("title", out var t) ? t.GetString() ?? "" : body;
        }
        catch (JsonException)
        {
            return body.Length > 200 ? body[..200] : body;
        }
    }

    // nearest rank, NaN when empty: the simulator's own, so measured and simulated figures are read alike
    private static double Percentile(double[] sorted, double q) => Simulator.percentile(sorted, q);

    private static double Measured(Sent s) => s.Final!.Timings.TotalMs!.Value / 1000.0;

    private static void Report(List<Sent> sent, TextWriter o)
    {
        var done = sent.Where(s => s.Final?.Status == "succeeded").ToList();
        var latencies = done.Select(Measured).Order().ToArray();
        var met = done.Count(s => s.Final!.Deadline.Met == true);
        var rejected = sent.Count(s => s.Code == 429);
        var failed = sent.Count(s => s.Final?.Status == "failed");
        var other = sent.Count(s => s.Final is null || s.Final.Status == "cancelled") - rejected;
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"measured: requests={sent.Count} succeeded={done.Count} rejected_429={rejected} failed={failed} other_errors={other} "
            + $"slo_attainment={(sent.Count == 0 ? 0 : (double)met / sent.Count):F3} mean_s={(latencies.Length == 0 ? double.NaN : latencies.Average()):F3} "
            + $"p50_s={Percentile(latencies, 0.5):F3} p95_s={Percentile(latencies, 0.95):F3} p99_s={Percentile(latencies, 0.99):F3}"));
        // plan-to-start: from the job's dispatch (end of its queued time) to the start of its encode's work
        var planToStart = done.Where(s => s.Final!.Timings.Queued.EndMs is not null && s.Final.Timings.Encode.StartMs is not null)
            .Select(s => s.Final!.Timings.Encode.StartMs!.Value - s.Final.Timings.Queued.EndMs!.Value).Order().ToArray();
        if (planToStart.Length > 0)
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"plan_to_start: requests={planToStart.Length} mean_ms={planToStart.Average():F1} p50_ms={Percentile(planToStart, 0.5):F1} p95_ms={Percentile(planToStart, 0.95):F1} p99_ms={Percentile(planToStart, 0.99):F1}"));
        // throughput: succeeded requests per second from the first arrival to the last finish (server clock)
        if (done.Count > 0)
        {
            var first = sent.Where(s => s.Final is not null).Min(s => s.Final!.CreatedAt);
            var last = done.Max(s => s.Final!.CreatedAt.AddMilliseconds(s.Final.Timings.TotalMs!.Value));
            var span = (last - first).TotalSeconds;
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"throughput: succeeded={done.Count} span_s={span:F2} requests_per_s={(span > 0 ? done.Count / span : double.NaN):F3}"));
        }
        foreach (var e in sent.Where(s => s.Error is not null).Select(s => s.Error!).GroupBy(e => e).Take(5))
            o.WriteLine($"  error ×{e.Count()}: {e.Key}");
    }

    private static void CompareWithSimulation(List<Sent> sent, CostModel cost, Cluster cluster, SchedulingSettingsDto settings, string? output, TextWriter o)
    {
        var accepted = sent.Where(s => s.Final is not null).ToList();
        if (accepted.Count == 0)
        {
            o.WriteLine("compare-sim: no request reached the server; nothing to compare");
            return;
        }
        // the server's arrivals and deadlines, relative to its first accepted request
        var t0 = accepted.Min(s => s.Final!.CreatedAt);
        var requests = accepted.Select(s =>
        {
            var arrival = (s.Final!.CreatedAt - t0).TotalSeconds;
            return new Request(RequestId.NewRequestId(s.Trace.Id), cost.Profile.Model, s.Trace.Shape, s.Trace.Steps, arrival,
                arrival + s.Final.Deadline.Ms / 1000.0, FSharpOption<int>.None);
        }).ToArray();
        var m = settings.Monitor;
        var adjust = new AdjustSettings(m["window_s"], m["trigger_ratio"], m["cooldown_s"], (int)m["min_arrivals"], m["min_gain"], settings.PlacementTimeLimitS);
        var baseConfig = SimConfigModule.create(cluster, cost);
        var dispatch = DispatchSettingsModule.defaults;
        var config = new SimConfig(cluster, cost,
            DispatchSettingsModule.withTimeLimit(settings.DispatchTimeLimitS, dispatch),
            baseConfig.InitialSamples, settings.PlacementTimeLimitS, 0.0, 0UL,
            // the server's batch limit (a server that does not report it: no batching)
            Math.Max(1, settings.MaxBatch));
        var result = Simulator.run(config, Baselines.trident(settings.RoundPeriodS, FSharpOption<AdjustSettings>.Some(adjust)), ListModule.OfSeq(requests));
        var predicted = result.Records.ToDictionary(r => r.Request.Id.Value, r => r.Latency);
        var pairs = accepted.Where(s => s.Final!.Status == "succeeded" && FSharpOption<double>.get_IsSome(predicted[s.Trace.Id]))
            .Select(s => (Measured: Measured(s), Predicted: predicted[s.Trace.Id].Value)).ToArray();
        var sum = result.Summary;
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"simulated: requests={sum.Requests} on_time={sum.OnTime} late={sum.Late} unserved={sum.Unserved} slo_attainment={sum.SloAttainment:F3} "
            + $"mean_s={sum.MeanLatency:F3} p50_s={sum.P50Latency:F3} p95_s={sum.P95Latency:F3} p99_s={sum.P99Latency:F3} "
            + $"replacements={sum.Replacements} mip_rounds={sum.MipRounds}/{sum.Rounds}"));
        if (pairs.Length == 0)
        {
            o.WriteLine("compare-sim: no request both succeeded and was completed by the simulator");
            return;
        }
        var abs = pairs.Select(p => Math.Abs(p.Predicted - p.Measured)).Order().ToArray();
        var rel = pairs.Select(p => Math.Abs(p.Predicted - p.Measured) / p.Measured).Order().ToArray();
        var bias = pairs.Average(p => p.Predicted - p.Measured);
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"predicted vs measured latency over {pairs.Length} requests: median_abs_error_s={Percentile(abs, 0.5):F3} "
            + $"median_rel_error={Percentile(rel, 0.5):F3} p95_abs_error_s={Percentile(abs, 0.95):F3} mean_bias_s={bias:+0.000;-0.000}"));
        PhaseBreakdown(accepted, result.Records.ToDictionary(r => r.Request.Id.Value), o);
        if (output is not null) WriteCsv(output, sent, predicted, o);
    }

    /// <summary>Where prediction and measurement part: for each phase of a request (waiting before its encode,
    /// encode, the hand-over to diffuse, diffuse, the hand-over to decode, decode, and the tail from decode's end
    /// to completion — output encoding and bookkeeping, which the simulator does not model) the median measured
    /// and predicted seconds over the requests both completed, and the median of predicted − measured; then the
    /// control plane's per-request overhead: Σ over its three stages of measured − predicted seconds.</summary>
    private static void PhaseBreakdown(List<Sent> accepted, Dictionary<long, RequestRecord> simulated, TextWriter o)
    {
        static double? Ms(double? v) => v / 1000.0;
        var rows = new List<(string Phase, double Measured, double Predicted)>();
        var overheads = new List<double>();
        foreach (var s in accepted.Where(s => s.Final!.Status == "succeeded"))
        {
            if (!simulated.TryGetValue(s.Trace.Id, out var r) || !FSharpOption<double>.get_IsSome(r.Latency)) continue;
            if (!FSharpOption<TaskRecord>.get_IsSome(r.Encode) || !FSharpOption<TaskRecord>.get_IsSome(r.Diffuse) || !FSharpOption<TaskRecord>.get_IsSome(r.Decode)) continue;
            var t = s.Final!.Timings;
            var measured = new[] { Ms(t.Encode.StartMs), Ms(t.Encode.EndMs), Ms(t.Diffuse.StartMs), Ms(t.Diffuse.EndMs), Ms(t.Decode.StartMs), Ms(t.Decode.EndMs), Ms(t.TotalMs) };
            if (measured.Any(v => v is null)) continue;
            var a = r.Request.Arrival;
            var predicted = new[] { r.Encode.Value.Start - a, r.Encode.Value.Finish - a, r.Diffuse.Value.Start - a, r.Diffuse.Value.Finish - a,
                                    r.Decode.Value.Start - a, r.Decode.Value.Finish - a, r.Latency.Value };
            for (var i = 0; i < PhaseNames.Length; i++)
            {
                var m = measured[i]!.Value - (i == 0 ? 0 : measured[i - 1]!.Value);
                var p = predicted[i] - (i == 0 ? 0 : predicted[i - 1]);
                rows.Add((PhaseNames[i], m, p));
            }
            // Σ over the stages (encode, diffuse, decode) of measured − predicted; the hand-overs and waits between
            // them are the schedule's (shown above), not the per-stage overhead
            overheads.Add(new[] { 1, 3, 5 }.Sum(i => measured[i]!.Value - measured[i - 1]!.Value - (predicted[i] - predicted[i - 1])));
        }
        if (rows.Count == 0) return;
        o.WriteLine("phase breakdown (seconds, medians over requests both completed; predicted − measured < 0: the server is slower):");
        foreach (var phase in PhaseNames)
        {
            var of = rows.Where(x => x.Phase == phase).ToArray();
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {phase,-16} measured={Percentile([.. of.Select(x => x.Measured).Order()], 0.5):F4} predicted={Percentile([.. of.Select(x => x.Predicted).Order()], 0.5):F4} "
                + $"median_diff={Percentile([.. of.Select(x => x.Predicted - x.Measured).Order()], 0.5):+0.0000;-0.0000}"));
        }
        // What the live system adds to each request's stages beyond the work the simulator predicts for them: grain
        // calls, serialization, progress, thread scheduling (with emulated devices a stage's work is the prediction
        // itself, so this is the control plane's share).
        var ms = overheads.Select(x => x * 1000).Order().ToArray();
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"control plane: per-request overhead (encode + diffuse + decode, measured − predicted) over {ms.Length} requests: "
            + $"p50_ms={Percentile(ms, 0.5):F1} mean_ms={ms.Average():F1} p95_ms={Percentile(ms, 0.95):F1}"));
    }

    private static readonly string[] PhaseNames = ["wait", "encode", "encode→diffuse", "diffuse", "diffuse→decode", "decode", "tail"];

    private static void WriteCsv(string path, List<Sent> sent, Dictionary<long, FSharpOption<double>>? predicted, TextWriter o)
    {
        var text = new StringBuilder("id,arrival_s,height,width,frames,steps,status,measured_s,predicted_s,deadline_s,met,devices,degree\n");
        foreach (var s in sent)
        {
            var f = s.Final;
            var p = predicted is not null && predicted.TryGetValue(s.Trace.Id, out var v) && FSharpOption<double>.get_IsSome(v) ? v.Value.ToString("F4", CultureInfo.InvariantCulture) : "";
            text.Append(CultureInfo.InvariantCulture,
                $"{s.Trace.Id},{s.Trace.Arrival:F4},{s.Trace.Shape.Height},{s.Trace.Shape.Width},{s.Trace.Shape.Frames},{s.Trace.Steps},{f?.Status ?? (s.Code == 429 ? "rejected" : "error")},"
                + $"{(f?.Status == "succeeded" ? Measured(s).ToString("F4", CultureInfo.InvariantCulture) : "")},{p},{(f is null ? "" : (f.Deadline.Ms / 1000).ToString("F4", CultureInfo.InvariantCulture))},"
                + $"{(f?.Deadline.Met is { } met ? (met ? "true" : "false") : "")},{(f?.Route is { } r ? string.Join(' ', r.DiffuseDevices) : "")},{f?.Route?.Degree.ToString(CultureInfo.InvariantCulture) ?? ""}\n");
        }
        var full = Path.GetFullPath(path);
        OutputPath.Write("--out", full, () =>
        {
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllText(full, text.ToString());
        });
        o.WriteLine($"per-request results: {full}");
    }
}
