// `trident bench soak`: serves the tiny pipeline in this process for --duration seconds at a steady rate below
// capacity and samples this process's resources every --sample-every seconds (resident set from
// /proc/self/status, managed heap, GC counts, threads, open file descriptors), then compares the end with the
// state after warm-up (the first 10 % of the run) against the goals: resident memory grows ≤ 10 %, threads and
// descriptors by at most a small constant, nothing fails.
//
// Design note. The server runs in process (Program.BuildServer on a free loopback port), so /proc/self is the
// server's own process; the driver shares it but keeps only counters and the ids in flight, nothing per request
// that outlives it. Requests alternate 64² and 128² with few steps; each is submitted at its slot
// (i / rate seconds) without waiting for earlier ones, polled to its final state, and its image downloaded, as
// a client would. Tests pass a client of an in-process test server instead (then --pipeline and --devices are
// that server's and may not be given). Finished jobs and their PNGs stay in the job store for
// Trident:Jobs:RetentionSeconds (600 s by default; --retention sets it), so in a run shorter than that the
// store is still filling: that growth is bounded (by the retention and Trident:Jobs:Capacity), not a leak.

using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.FSharp.Collections;
using Trident.Api.Contracts;
using Trident.Scheduling;

using Trident.Api.Hosting;

namespace Trident.Api.Cli;

/// <summary>The <c>bench soak</c> benchmark.</summary>
public static class SoakBench
{
    /// <summary>Goal: resident memory after warm-up vs end, in %.</summary>
    public const double RssGrowthGoalPercent = 10.0;

    /// <summary>Goal: threads and open descriptors may grow by at most this many.</summary>
    public const int CountGrowthGoal = 8;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>One sample of this process.</summary>
    public sealed record Sample(double Seconds, double RssMb, double HeapMb, double GcCommittedMb, int Gen0, int Gen1, int Gen2, int Threads, int Fds,
        long Submitted, long Succeeded, long Failed, long Rejected, int InFlight, int JobsHeld);

    private sealed class Counters
    {
        public long Submitted, Succeeded, Failed, Rejected, Errors;
        public readonly ConcurrentDictionary<string, byte> Open = new();
        public readonly ConcurrentDictionary<string, int> ErrorKinds = new();
        // jobs in the server's job store (active and retained finished ones); -1 when the server is not ours
        public Func<int> JobsHeld = () => -1;
        public void Error(string what) { Interlocked.Increment(ref Errors); ErrorKinds.AddOrUpdate(what, 1, (_, n) => n + 1); }
    }

    private static readonly Option<double> Duration = Opt.Double("--duration", "seconds of steady load", 600, 1, 7 * 86400);
    private static readonly Option<double> Rate = Opt.Double("--rate", "requests per second [default: below the server's capacity]", null, 1e-3, 1000);
    private static readonly Option<string> Pipeline = PipelineOption.Create("tiny");
    private static readonly Option<int> Devices = Opt.Int("--devices", "the in-process server's devices (0: one per core)", 0, 0, 256);
    private static readonly Option<double> SampleEvery = Opt.Double("--sample-every", "seconds between resource samples", 10, 0.1, 3600);
    private static readonly Option<int> Steps = Opt.Int("--steps", "denoising steps per request", 4, 1, 100);
    private static readonly Option<double> Drain = Opt.Double("--drain", "seconds to let accepted requests finish after the last submission", 60, 0, 3600);
    private static readonly Option<int> Retention = Opt.Int("--retention", "the server's job retention in seconds (Trident:Jobs:RetentionSeconds) [default: the server's]", null, 0, 86400);
    private static readonly Option<string> Out = Opt.String("--out", "also write the samples as CSV", helpName: "samples.csv");

    /// <summary>The <c>bench soak</c> command.</summary>
    public static Command Command { get; } = new Command("soak",
        "serve the tiny pipeline in process at a steady rate and sample resident memory, heap, GCs, threads and descriptors over time")
        { Duration, Rate, Pipeline, Devices, SampleEvery, Steps, Drain, Retention, Out }.With((r, ct) => RunAsync(r, null, Console.Out, ct));

    /// <summary>Runs the soak; <paramref name="client"/>, when given, talks to an in-process test server instead of
    /// one this command starts.</summary>
    public static async Task<int> RunAsync(ParseResult args, HttpClient? client, TextWriter o, CancellationToken ct)
    {
        var errors = new CliErrors();
        var duration = args.GetValue(Duration);
        var rateGiven = args.Given(Rate);
        var rate = args.Maybe(Rate) ?? 1;
        var pipeline = args.Text(Pipeline);
        var devices = args.GetValue(Devices);
        var every = args.GetValue(SampleEvery);
        var steps = args.GetValue(Steps);
        var drain = args.GetValue(Drain);
        var retention = args.Maybe(Retention);
        var output = args.GetValue(Out);
        if (client is not null && (args.Given(Pipeline) || args.Given(Devices) || retention is not null))
            errors.Add("--pipeline/--devices/--retention: not with a given server");
        if (client is null && pipeline != "tiny")
            PipelineOption.Load(pipeline, errors);
        if (every > duration) errors.Add($"--sample-every: {every} s is longer than --duration {duration} s");
        OutputPath.Check("--out", output, directory: false, create: true, errors);
        errors.ThrowIfAny();

        WebApplication? app = null;
        Func<int> jobsHeld = () => -1;
        Func<string?> failure = () => null;
        HttpClient? owned = null;
        try
        {
            if (client is null)
            {
                var port = Loopback.FreePort();
                var url = $"http://127.0.0.1:{port}";
                app = Program.BuildServer(["--urls", url, "--Trident:Pipeline", pipeline, "--Trident:Devices:Count", devices.ToString(CultureInfo.InvariantCulture),
                    "--Trident:LogLevel", "Warning",
                    .. (retention is { } r ? new[] { "--Trident:Jobs:RetentionSeconds", r.ToString(CultureInfo.InvariantCulture) } : [])]);
                o.WriteLine($"soak: starting the server in process on {url} (pipeline {pipeline}, devices {(devices == 0 ? "one per core" : devices)}, job retention {(retention is { } rs ? $"{rs} s" : "the default")})");
                await app.StartAsync(ct);
                var host = app.Services.GetRequiredService<Trident.Api.Hosting.ServerHost>();
                jobsHeld = () => host.Ready?.Server.Store.Count ?? -1;
                failure = () => host.Failure;
                owned = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
                client = owned;
            }
            if (await WaitReadyAsync(client, failure, ct) is { } why)
            {
                Console.Error.WriteLine($"trident bench soak: the server did not start: {why}");
                return 1;
            }
            var cluster = (await client.GetFromJsonAsync<ClusterDto>("/v1/cluster", Json, ct))!;
            if (!rateGiven)
            {
                // by the server's own profile: the rate that keeps its devices ≈ 20 % busy at k = 1 (a shared machine may need a lower --rate)
                var parsed = ProfileFile.parse(await client.GetStringAsync("/v1/profile", ct));
                if (parsed.IsOk)
                {
                    var cost = CostModelModule.create(LoadgenCommand.CostSettings(cluster.Settings), parsed.ResultValue);
                    var shapes = ListModule.OfSeq(new[] { new Shape(64, 64, 1), new Shape(128, 128, 1) });
                    rate = Math.Max(0.05, Math.Round(Workload.rateForLoad(cost, shapes, steps, cluster.Devices.Count, 0.2), 2));
                }
            }
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"soak: {duration:G} s at {rate:G4} req/s (64² and 128², {steps} steps) on {cluster.Devices.Count} devices, pipeline {cluster.Pipeline}; sample every {every:G} s; pid {Environment.ProcessId}; MALLOC_ARENA_MAX={Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") ?? "unset"}"));
            o.WriteLine("t_s rss_mb heap_mb gc_committed_mb gc0 gc1 gc2 threads fds submitted succeeded failed rejected in_flight jobs_held");

            var (samples, counters) = await DriveAsync(client, duration, rate, steps, every, drain, jobsHeld, o, ct);
            var warm = Summarize(samples, duration, counters, o);
            if (output is not null) WriteCsv(output, samples, o);
            return warm ? 0 : 1;
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException e)
        {
            Console.Error.WriteLine("trident bench soak: invalid server configuration (docs/serving.md lists every key):");
            foreach (var f in e.Failures) Console.Error.WriteLine($"  {f}");
            return 2;
        }
        finally
        {
            owned?.Dispose();
            if (app is not null)
            {
                await app.StopAsync(CancellationToken.None);
                await app.DisposeAsync();
            }
        }
    }


    /// <summary>Waits for /ready; null when ready, else why the server cannot become ready.</summary>
    private static async Task<string?> WaitReadyAsync(HttpClient client, Func<string?> failure, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddMinutes(10);
        while (true)
        {
            try
            {
                using var r = await client.GetAsync("/ready", ct);
                if (r.StatusCode == HttpStatusCode.OK) return null;
            }
            catch (HttpRequestException) { }
            if (failure() is { } why) return why;
            if (DateTime.UtcNow > deadline) return "not ready within 10 minutes";
            await Task.Delay(200, ct);
        }
    }

    private static async Task<(List<Sample>, Counters)> DriveAsync(HttpClient client, double duration, double rate, int steps, double every, double drain,
        Func<int> jobsHeld, TextWriter o, CancellationToken ct)
    {
        var c = new Counters { JobsHeld = jobsHeld };
        var samples = new List<Sample>();
        var clock = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // the sample lines are the soak's progress; on a terminal a live bar says where the run is as well
        using var progress = CliProgress.Live ? CliProgress.Start("bench soak", (int)Math.Ceiling(duration / every) + 1) : null;

        void TakeSample()
        {
            var s = Measure(clock.Elapsed.TotalSeconds, c);
            samples.Add(s);
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{s.Seconds:F1} {s.RssMb:F1} {s.HeapMb:F1} {s.GcCommittedMb:F1} {s.Gen0} {s.Gen1} {s.Gen2} {s.Threads} {s.Fds} {s.Submitted} {s.Succeeded} {s.Failed} {s.Rejected} {s.InFlight} {s.JobsHeld}"));
            progress?.Step(string.Create(CultureInfo.InvariantCulture, $"{s.Seconds:F0} s of {duration:F0}: resident {s.RssMb:F0} MB, {s.Succeeded} succeeded"));
        }

        TakeSample();
        var sampler = Task.Run(async () =>
        {
            var next = every;
            while (!stop.IsCancellationRequested)
            {
                var wait = next - clock.Elapsed.TotalSeconds;
                if (wait > 0) try { await Task.Delay(TimeSpan.FromSeconds(wait), stop.Token); } catch (OperationCanceledException) { return; }
                lock (samples) TakeSample();
                next += every;
            }
        }, CancellationToken.None);
        var poller = Task.Run(() => PollAsync(client, c, stop.Token), CancellationToken.None);

        var inFlightPosts = new ConcurrentDictionary<long, Task>();
        for (long i = 0; ; i++)
        {
            var at = i / rate;
            if (at >= duration || ct.IsCancellationRequested) break;
            var wait = at - clock.Elapsed.TotalSeconds;
            if (wait > 0) try { await Task.Delay(TimeSpan.FromSeconds(wait), ct); } catch (OperationCanceledException) { break; }
            var n = i;
            var post = SubmitAsync(client, c, n, steps, ct);
            inFlightPosts[n] = post;
            _ = post.ContinueWith(_ => inFlightPosts.TryRemove(n, out Task? _), TaskScheduler.Default);
        }
        await Task.WhenAll(inFlightPosts.Values);
        // let what was accepted finish (at most --drain s), so the end counts are final
        var until = clock.Elapsed.TotalSeconds + drain;
        while (!c.Open.IsEmpty && clock.Elapsed.TotalSeconds < until && !ct.IsCancellationRequested)
            await Task.Delay(100, CancellationToken.None);
        await stop.CancelAsync();
        await sampler;
        await poller;
        lock (samples) TakeSample();
        return (samples, c);
    }

    private static async Task SubmitAsync(HttpClient client, Counters c, long n, int steps, CancellationToken ct)
    {
        var size = n % 2 == 0 ? 64 : 128;
        var body = new GenerationRequestDto($"soak request {n}", null, size, size, 1, steps, n, null, null, null);
        Interlocked.Increment(ref c.Submitted);
        try
        {
            using var r = await client.PostAsJsonAsync("/v1/generations", body, Json, ct);
            if (r.StatusCode == HttpStatusCode.Accepted)
                c.Open[(await r.Content.ReadFromJsonAsync<GenerationAcceptedDto>(Json, ct))!.Id] = 0;
            else if (r.StatusCode == HttpStatusCode.TooManyRequests)
                Interlocked.Increment(ref c.Rejected);
            else
                c.Error($"HTTP {(int)r.StatusCode} on submit");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            c.Error($"submit: {e.GetType().Name}");
        }
    }

    private static async Task PollAsync(HttpClient client, Counters c, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try { await Task.Delay(100, ct); } catch (OperationCanceledException) { return; }
            foreach (var id in c.Open.Keys)
            {
                try
                {
                    var s = await client.GetFromJsonAsync<GenerationStatusDto>($"/v1/generations/{id}", Json, ct);
                    if (s is null || s.Status is not ("succeeded" or "failed" or "cancelled")) continue;
                    if (s.Status == "succeeded" && s.ResultUrl is { } result)
                    {
                        // download the result as a client would (and check it is a PNG)
                        var png = await client.GetByteArrayAsync(result, ct);
                        if (png.Length > 8 && png[1] == (byte)'P') Interlocked.Increment(ref c.Succeeded);
                        else c.Error("result is not a PNG");
                    }
                    else
                    {
                        Interlocked.Increment(ref c.Failed);
                        c.Error($"job {s.Status}: {s.Error}");
                    }
                    c.Open.TryRemove(id, out _);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
                {
                    c.Error($"poll: {e.GetType().Name}");
                    c.Open.TryRemove(id, out _);
                }
            }
        }
    }

    /// <summary>This process now: /proc/self/status's VmRSS and Threads, /proc/self/fd, the GC's figures.</summary>
    private static Sample Measure(double seconds, Counters c)
    {
        double rssKb = 0;
        var threads = 0;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rssKb = double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                else if (line.StartsWith("Threads:", StringComparison.Ordinal)) threads = int.Parse(line[8..].Trim(), CultureInfo.InvariantCulture);
            }
        }
        catch (IOException) { }
        if (rssKb == 0)
        {
            using var p = Process.GetCurrentProcess();
            rssKb = p.WorkingSet64 / 1024.0;
            threads = p.Threads.Count;
        }
        int fds;
        try { fds = Directory.EnumerateFileSystemEntries("/proc/self/fd").Count(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { fds = -1; }
        return new Sample(seconds, rssKb / 1024.0, GC.GetTotalMemory(false) / 1048576.0, GC.GetGCMemoryInfo().TotalCommittedBytes / 1048576.0, GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2),
            threads, fds, Interlocked.Read(ref c.Submitted), Interlocked.Read(ref c.Succeeded), Interlocked.Read(ref c.Failed), Interlocked.Read(ref c.Rejected), c.Open.Count, c.JobsHeld());
    }

    /// <summary>Prints the summary and the verdict; true when every goal is met.</summary>
    private static bool Summarize(List<Sample> samples, double duration, Counters c, TextWriter o)
    {
        var end = samples[^1];
        // the first sample at or after 10 % of the run (the state once the pipeline, caches and pools are warm)
        var warm = samples.FirstOrDefault(s => s.Seconds >= 0.1 * duration && s != end) ?? samples[0];
        var peak = samples.Max(s => s.RssMb);
        var rssGrowth = (end.RssMb - warm.RssMb) / warm.RssMb * 100.0;
        var threadGrowth = end.Threads - warm.Threads;
        var fdGrowth = end.Fds - warm.Fds;
        // what the GC has not committed: native memory (ONNX Runtime, malloc, code), so growth of the managed
        // heap (such as the job store filling over its retention) and growth outside it show apart
        var nativeGrowth = (end.RssMb - end.GcCommittedMb) - (warm.RssMb - warm.GcCommittedMb);
        var jobs = end.JobsHeld >= 0 ? $" jobs_held_warm={warm.JobsHeld} jobs_held_end={end.JobsHeld}" : "";
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"summary: samples={samples.Count} warm_at_s={warm.Seconds:F1} end_at_s={end.Seconds:F1} "
            + $"rss_warm_mb={warm.RssMb:F1} rss_end_mb={end.RssMb:F1} rss_peak_mb={peak:F1} rss_growth_pct={rssGrowth:+0.0;-0.0} (goal ≤ {RssGrowthGoalPercent:G}) "
            + $"heap_warm_mb={warm.HeapMb:F1} heap_end_mb={end.HeapMb:F1} gc_committed_warm_mb={warm.GcCommittedMb:F1} gc_committed_end_mb={end.GcCommittedMb:F1} rss_outside_gc_growth_mb={nativeGrowth:+0.0;-0.0} gc0={end.Gen0} gc1={end.Gen1} gc2={end.Gen2} "
            + $"threads_warm={warm.Threads} threads_end={end.Threads} fds_warm={warm.Fds} fds_end={end.Fds}{jobs}"));
        var errors = Interlocked.Read(ref c.Errors);
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"requests: submitted={end.Submitted} succeeded={end.Succeeded} failed={end.Failed} rejected_429={end.Rejected} other_errors={errors - end.Failed} unfinished={end.InFlight}"));
        foreach (var (what, n) in c.ErrorKinds.OrderByDescending(e => e.Value).Take(5))
            o.WriteLine($"  error ×{n}: {what}");
        var problems = new List<string>();
        if (rssGrowth > RssGrowthGoalPercent) problems.Add(string.Create(CultureInfo.InvariantCulture, $"resident memory grew {rssGrowth:F1} % > {RssGrowthGoalPercent:G} %"));
        if (threadGrowth > CountGrowthGoal) problems.Add($"threads grew by {threadGrowth} > {CountGrowthGoal}");
        if (fdGrowth > CountGrowthGoal) problems.Add($"open descriptors grew by {fdGrowth} > {CountGrowthGoal}");
        if (end.Failed > 0 || errors > 0 || end.InFlight > 0) problems.Add($"{errors} request errors, {end.InFlight} unfinished");
        if (end.Succeeded == 0) problems.Add("no request succeeded");
        o.WriteLine(problems.Count == 0
            ? $"verdict: PASS (resident memory, threads and descriptors within the goals; nothing accepted was lost)"
            : $"verdict: FAIL ({string.Join("; ", problems)})");
        return problems.Count == 0;
    }

    private static void WriteCsv(string path, List<Sample> samples, TextWriter o)
    {
        var text = new StringBuilder("t_s,rss_mb,heap_mb,gc_committed_mb,gc0,gc1,gc2,threads,fds,submitted,succeeded,failed,rejected,in_flight,jobs_held\n");
        foreach (var s in samples)
            text.Append(CultureInfo.InvariantCulture,
                $"{s.Seconds:F2},{s.RssMb:F2},{s.HeapMb:F2},{s.GcCommittedMb:F2},{s.Gen0},{s.Gen1},{s.Gen2},{s.Threads},{s.Fds},{s.Submitted},{s.Succeeded},{s.Failed},{s.Rejected},{s.InFlight},{s.JobsHeld}\n");
        var full = Path.GetFullPath(path);
        OutputPath.Write("--out", full, () =>
        {
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllText(full, text.ToString());
        });
        o.WriteLine($"samples: {full}");
    }
}
