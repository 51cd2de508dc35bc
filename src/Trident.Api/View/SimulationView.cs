// `simulate --out DIR` writes view.html: the web view's page (View/index.html) with one finished simulated run
// embedded once, as compact column-wise JSON (format trident-sim-view/1, below), in the page's script element
// `trident-replay`. The page builds every timeline frame from it in the browser (index.html, simulation()), so the file
// grows with the run's requests and tasks, not with the number of frames shown: nothing is written per step.
//
// trident-sim-view/1 (times in simulated seconds unless said otherwise; arrays are columns, index = row):
//   policy, params, workload, model, span_s, summary {requests, on_time, late, oom, unserved, slo_attainment, p50_s, p95_s}
//   types: the placement type names; shapes: "H×W×F, N steps" of each (shape, steps) class, t_ref: its latency served
//     alone (CostModel.tRef: a request's slack is deadline − now − t_ref)
//   devices: {node[], memory_gb[]}
//   placements: [{at_s, types[] (index into types, per device), alpha, capacity {stage: req/s}, moves, source}] — the
//     initial placement first, then one per applied re-placement
//   adjustments: [{at_s, applied, imbalance, reason, moves, alpha_before, alpha_after, source}] — every Adjust-on-Dispatch
//     evaluation whose trigger fired; α of both placements for the window's mix (AdjustOnDispatch.alphaOf)
//   requests, tasks and rounds hold times as integer milliseconds, relative so that the numbers stay short (the page
//   restores the absolute times exactly by summing integers):
//   requests: {id[] (each minus the previous), arrival[] (ms after the previous row's arrival), deadline[] (ms after its
//     arrival), class[], priority[] (only when some request has one; null: none), dispatched[] (ms after arrival; null:
//     never), degree[], outcome[] (0 on time, 1 late, 2 out of memory, 3 unserved), finish[] (ms after arrival; null)}
//   tasks: {request[] (row in requests, minus the previous task's), stage[] (0 encode, 1 diffuse, 2 decode), start[] (ms
//     after its request was dispatched), duration[] (ms), devices[] (the task's devices, flattened), count[] (how many
//     of devices[] each task has), failed[] (rows that failed)}
//   rounds: {at[] (ms after the previous kept round), source[] (index into sources), waiting[], dispatched[]}; sources —
//     only the rounds that dispatched or ran the solver (as the live server's history keeps them)

using System.Text;
using System.Text.Json;
using Microsoft.FSharp.Core;
using Trident.Api.Endpoints;
using Trident.Scheduling;
using Trident.Scheduling.Placement;

namespace Trident.Api.View;

/// <summary>Writes a finished simulated run as the web view's self-contained replay page.</summary>
public static class SimulationView
{
    /// <summary>The format name written in the embedded JSON.</summary>
    public const string Format = "trident-sim-view/1";

    private static string StageName(Stage s) => StageModule.name(s);

    private static int StageIndex(Stage s) => s.IsEncode ? 0 : s.IsDiffuse ? 1 : 2;

    private static double Ms(double seconds) => Math.Round(seconds, 3);

    /// <summary>The page with <paramref name="run"/> embedded (see the format above).</summary>
    /// <param name="run">One policy's simulated run.</param>
    /// <param name="config">The simulator's settings it ran with (cluster and cost model).</param>
    /// <param name="workload">Workload name (for the page's title).</param>
    /// <param name="model">Model name.</param>
    /// <param name="adjust">Adjust-on-Dispatch's settings it ran with (its window gives α before and after a re-placement).</param>
    public static string Html(SimResult run, SimConfig config, string workload, string model, AdjustSettings adjust)
    {
        var json = Json(run, config, workload, model, adjust);
        var page = ViewApi.PageHtml();
        const string marker = "<script id=\"trident-replay\" type=\"application/json\">null</script>";
        var at = page.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0) throw new InvalidOperationException("the web view's page has no trident-replay script element");
        // JSON in a script element: only "</" could end it early
        var safe = json.Replace("</", "<\\/", StringComparison.Ordinal);
        return page[..at] + "<script id=\"trident-replay\" type=\"application/json\">" + safe + "</script>" + page[(at + marker.Length)..];
    }

    /// <summary>The embedded JSON alone (format <see cref="Format"/>).</summary>
    public static string Json(SimResult run, SimConfig config, string workload, string model, AdjustSettings adjust)
    {
        var cluster = config.Cluster;
        var devices = cluster.Devices;
        var typeNames = PlacementTypeModule.all.Select(PlacementTypeModule.name).ToList();
        int TypeIndex(PlacementType t) => typeNames.IndexOf(PlacementTypeModule.name(t));
        var records = run.Records;
        var rowOf = new Dictionary<long, int>(records.Length);
        for (var i = 0; i < records.Length; i++) rowOf[records[i].Request.Id.Value] = i;
        var classes = new List<string>();
        var tRef = new List<double>();
        var classOf = new Dictionary<(int, int, int, int), int>();

        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("format", Format);
            w.WriteString("policy", run.Policy);
            w.WriteString("params", run.Params);
            w.WriteString("workload", workload);
            w.WriteString("model", model);
            w.WriteNumber("span_s", Ms(run.Summary.Span));
            var s = run.Summary;
            w.WriteStartObject("summary");
            w.WriteNumber("requests", s.Requests);
            w.WriteNumber("on_time", s.OnTime);
            w.WriteNumber("late", s.Late);
            w.WriteNumber("oom", s.OutOfMemory);
            w.WriteNumber("unserved", s.Unserved);
            w.WriteNumber("slo_attainment", Math.Round(s.SloAttainment, 4));
            w.WriteNumber("p50_s", Ms(s.P50Latency));
            w.WriteNumber("p95_s", Ms(s.P95Latency));
            w.WriteEndObject();
            Strings(w, "types", typeNames);
            w.WriteStartObject("devices");
            Numbers(w, "node", devices.Select(d => (double)d.Node.Value));
            Numbers(w, "memory_gb", devices.Select(d => d.Memory));
            w.WriteEndObject();

            // placements: the initial one, then each applied re-placement; adjustments: every evaluation that fired
            w.WriteStartArray("placements");
            void Placement(double at, PlacementPlan p)
            {
                w.WriteStartObject();
                w.WriteNumber("at_s", Ms(at));
                Numbers(w, "types", devices.Select(d => (double)TypeIndex(p.Types[d.Id])));
                w.WriteNumber("alpha", Math.Round(p.Alpha, 4));
                w.WriteStartObject("capacity");
                foreach (var kv in p.Capacity) w.WriteNumber(StageName(kv.Key), Math.Round(kv.Value, 4));
                w.WriteEndObject();
                w.WriteNumber("moves", p.Moves);
                w.WriteString("source", PlanSourceModule.describe(p.Source));
                w.WriteEndObject();
            }
            Placement(0, run.InitialPlacement);
            foreach (var (at, decision) in run.Adjustments.Select(a => (a.Item1, a.Item2)))
                if (decision is AdjustDecision.Replace replace) Placement(at, replace.Item2);
            w.WriteEndArray();

            w.WriteStartArray("adjustments");
            var current = run.InitialPlacement;
            var byArrival = records.Select(r => r.Request).OrderBy(r => r.Arrival).ToArray();
            foreach (var (at, decision) in run.Adjustments.Select(a => (a.Item1, a.Item2)))
            {
                var stats = WindowStats(byArrival, at, adjust);
                var before = AdjustOnDispatch.alphaOf(cluster, config.Cost, current.Types, stats);
                w.WriteStartObject();
                w.WriteNumber("at_s", Ms(at));
                switch (decision)
                {
                    case AdjustDecision.Replace replace:
                        var next = replace.Item2;
                        w.WriteBoolean("applied", true);
                        w.WriteNumber("imbalance", Finite(replace.imbalance));
                        w.WriteString("reason", $"{AdjustOnDispatch.describeImbalance(replace.imbalance)} reached the trigger");
                        w.WriteNumber("moves", devices.Count(d => !next.Types[d.Id].Equals(current.Types[d.Id])));
                        w.WriteNumber("alpha_before", Math.Round(before, 4));
                        w.WriteNumber("alpha_after", Math.Round(AdjustOnDispatch.alphaOf(cluster, config.Cost, next.Types, stats), 4));
                        w.WriteString("source", PlanSourceModule.describe(next.Source));
                        current = next;
                        break;
                    case AdjustDecision.Keep keep:
                        w.WriteBoolean("applied", false);
                        w.WriteNumber("imbalance", Finite(keep.imbalance));
                        w.WriteString("reason", $"{AdjustOnDispatch.describeImbalance(keep.imbalance)}: {keep.reason}");
                        w.WriteNumber("moves", 0);
                        w.WriteNumber("alpha_before", Math.Round(before, 4));
                        w.WriteNumber("alpha_after", Math.Round(before, 4));
                        w.WriteString("source", "kept");
                        break;
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();

            // requests, column by column; times in integer milliseconds, relative (see the format above)
            w.WriteStartObject("requests");
            Ints(w, "id", Deltas(records.Select(r => r.Request.Id.Value)));
            var arrival = records.Select(r => Milli(r.Request.Arrival)).ToArray();
            Ints(w, "arrival", Deltas(arrival));
            Ints(w, "deadline", records.Select((r, i) => Milli(r.Request.Deadline) - arrival[i]));
            Ints(w, "class", records.Select(r =>
            {
                var sh = r.Request.Shape;
                var key = (sh.Height, sh.Width, sh.Frames, r.Request.Steps);
                if (!classOf.TryGetValue(key, out var c))
                {
                    c = classes.Count;
                    classOf[key] = c;
                    classes.Add($"{sh.Height}×{sh.Width}×{sh.Frames}, {r.Request.Steps} steps");
                    tRef.Add(Ms(CostModelModule.tRef(config.Cost, sh, r.Request.Steps)));
                }
                return (long)c;
            }));
            if (records.Any(r => r.Request.Priority is not null))
                Nullable(w, "priority", records.Select(r => r.Request.Priority is { } p ? (long?)p.Value : null));
            var dispatched = records.Select(r => r.Dispatched is { } d ? (long?)Milli(d.Value) : null).ToArray();
            Nullable(w, "dispatched", dispatched.Select((d, i) => d - arrival[i]));
            Nullable(w, "degree", records.Select(r => r.Degree is { } k ? (long?)k.Value : null));
            Ints(w, "outcome", records.Select(r => (long)(r.Outcome.IsOnTime ? 0 : r.Outcome.IsLate ? 1 : r.Outcome.IsOutOfMemory ? 2 : 3)));
            Nullable(w, "finish", records.Select((r, i) => r.Finish is { } f ? (long?)(Milli(f.Value) - arrival[i]) : null));
            w.WriteEndObject();
            Strings(w, "shapes", classes);
            Numbers(w, "t_ref", tRef);

            // tasks, column by column (a diffuse task's devices follow each other in devices[])
            var tasks = run.Tasks;
            var rows = tasks.Select(t => rowOf[t.Request.Value]).ToArray();
            w.WriteStartObject("tasks");
            Ints(w, "request", Deltas(rows.Select(x => (long)x)));
            Ints(w, "stage", tasks.Select(t => (long)StageIndex(t.Stage)));
            Ints(w, "start", tasks.Select((t, i) => Milli(t.Start) - (dispatched[rows[i]] ?? arrival[rows[i]])));
            Ints(w, "duration", tasks.Select(t => Milli(t.Finish) - Milli(t.Start)));
            Ints(w, "devices", tasks.SelectMany(t => t.Devices.Select(d => (long)d.Value)));
            Ints(w, "count", tasks.Select(t => (long)t.Devices.Length));
            Ints(w, "failed", tasks.Select((t, i) => (t, i)).Where(x => x.t.Failed).Select(x => (long)x.i));
            w.WriteEndObject();

            // the rounds the live server would keep in its history: those that dispatched or ran the solver
            var sources = new List<string>();
            var sourceOf = new Dictionary<string, int>();
            var kept = run.Rounds.Where(r => r.Dispatched > 0 || r.Full).ToArray();
            w.WriteStartObject("rounds");
            Ints(w, "at", Deltas(kept.Select(r => Milli(r.Time))));
            Ints(w, "source", kept.Select(r =>
            {
                var text = PlanSourceModule.describe(r.Source);
                if (!sourceOf.TryGetValue(text, out var i)) { i = sources.Count; sourceOf[text] = i; sources.Add(text); }
                return (long)i;
            }));
            Ints(w, "waiting", kept.Select(r => (long)r.Waiting));
            Ints(w, "dispatched", kept.Select(r => (long)r.Dispatched));
            w.WriteEndObject();
            Strings(w, "sources", sources);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    // the request statistics of the Adjust-on-Dispatch window ending at `at` (as the simulator's monitor saw them)
    // (byArrival: the requests by arrival; the window stretches at most Monitor.MaxStretch windows back)
    private static WorkloadStats WindowStats(Request[] byArrival, double at, AdjustSettings adjust)
    {
        var since = byArrival.Length > 0 ? byArrival[0].Arrival : 0.0;
        var m = MonitorModule.create(adjust.Window, adjust.MinSamples, since);
        var from = at - MonitorModule.MaxStretch * adjust.Window;
        var lo = LowerBound(byArrival, from);
        for (var i = lo; i < byArrival.Length && byArrival[i].Arrival <= at; i++) m = MonitorModule.arrived(byArrival[i], m);
        return MonitorModule.stats(at, MonitorModule.trim(at, m));
    }

    // first index whose arrival is ≥ t
    private static int LowerBound(Request[] byArrival, double t)
    {
        int lo = 0, hi = byArrival.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (byArrival[mid].Arrival < t) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    private static double Finite(double x) => double.IsFinite(x) ? Math.Round(x, 4) : -1;

    private static void Numbers(Utf8JsonWriter w, string name, IEnumerable<double> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }

    private static long Milli(double seconds) => (long)Math.Round(seconds * 1000);

    // each value minus the one before (the first as it is): sums restore them exactly
    private static IEnumerable<long> Deltas(IEnumerable<long> values)
    {
        long previous = 0;
        foreach (var v in values)
        {
            yield return v - previous;
            previous = v;
        }
    }

    private static void Ints(Utf8JsonWriter w, string name, IEnumerable<long> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }

    private static void Nullable(Utf8JsonWriter w, string name, IEnumerable<long?> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values)
            if (v is { } x) w.WriteNumberValue(x);
            else w.WriteNullValue();
        w.WriteEndArray();
    }

    private static void Strings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }
}
