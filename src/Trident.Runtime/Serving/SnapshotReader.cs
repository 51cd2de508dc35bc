// Reading a trident-snapshot document (SnapshotJson.Read): the whole document is checked first, every problem
// collected with its JSON path (as ProfileFile.parse and the manifest reader do), and the Snapshot is built only
// from a document without one — so the planner never meets an index it cannot follow (a busy_until shorter than
// the devices, a device without a type) or a value it would plan with silently (steps 0, a time limit of −1 s).

using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Scheduling;
using Trident.Scheduling.Mip;

namespace Trident.Runtime.Serving;

/// <summary>Reads one <c>trident-snapshot</c> document for <see cref="SnapshotJson.Read"/>: every problem at once.</summary>
internal sealed class SnapshotReader
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private readonly List<string> _errors = [];

    private static readonly string[] RootFields =
        ["format", "version", "now", "cluster", "profile", "cost_settings", "placement", "busy_until", "bookings", "idle_until", "queue", "completed", "settings", "plan"];
    private static readonly string[] Stages = [.. StageModule.all.Select(StageModule.name)];

    /// <summary>The snapshot, or <see cref="SnapshotFormatException"/> listing every problem.</summary>
    public static Snapshot Read(string json)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new SnapshotFormatException([$"$: not valid JSON: {ex.Message}"]);
        }
        using (doc)
        {
            var reader = new SnapshotReader();
            var snapshot = reader.Root(doc.RootElement);
            if (reader._errors.Count > 0 || snapshot is null) throw new SnapshotFormatException(reader._errors);
            return snapshot;
        }
    }

    // ---- the document -------------------------------------------------------------------------------------------

    private Snapshot? Root(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            Fail("$", $"must be a JSON object (a {SnapshotJson.Format} document), not a JSON {Kind(root)}");
            return null;
        }
        // another format or version: its fields mean something else, so they are not read
        if (!root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != SnapshotJson.Format)
        {
            Fail("format", root.TryGetProperty("format", out var f)
                ? $"{Short(f)} is not '{SnapshotJson.Format}': not a {SnapshotJson.Format} document"
                : $"missing: not a {SnapshotJson.Format} document");
            return null;
        }
        var readable = string.Join(", ", SnapshotJson.ReadableVersions);
        if (!root.TryGetProperty("version", out var version))
        {
            Fail("version", $"missing (this build reads version {readable})");
            return null;
        }
        if (version.ValueKind != JsonValueKind.Number || !version.TryGetInt32(out var v) || !SnapshotJson.ReadableVersions.Contains(v))
        {
            Fail("version", $"{Short(version)} is not a version this build reads (it reads version {readable}; a newer trident may have written the document)");
            return null;
        }
        Known(root, "", RootFields);

        var now = Num(root, "", "now", NonNegative);
        var cluster = Obj(root, "", "cluster") is { } c ? ReadCluster(c) : null;
        // the device count the other sections are checked against, though a device itself is bad
        int? n = root.TryGetProperty("cluster", out var cn) && cn.ValueKind == JsonValueKind.Object && cn.TryGetProperty("devices", out var dn)
                 && dn.ValueKind == JsonValueKind.Array ? dn.GetArrayLength() : null;
        var profile = Prop(root, "", "profile") is { } pe ? ReadProfile(pe) : null;
        var cost = Obj(root, "", "cost_settings") is { } cs ? ReadCostSettings(cs, profile) : null;
        var placement = Obj(root, "", "placement") is { } pl ? ReadPlacement(pl, n) : null;
        var busy = Arr(root, "", "busy_until") is { } bu ? ReadBusyUntil(bu, n) : null;
        var queue = Arr(root, "", "queue") is { } q ? ReadQueue(q, profile) : null;
        // absent from documents written before resumed requests were planned with their remaining stages
        var completed = Obj(root, "", "completed", required: false) is { } cp ? ReadCompleted(cp, queue) : MapModule.Empty<RequestId, Stage>();
        var settings = Obj(root, "", "settings") is { } st ? ReadSettings(st) : null;
        // absent from documents written before decode devices' later bookings were planned with
        var bookings = Obj(root, "", "bookings", required: false) is { } bk ? ReadBookings(bk, n) : SnapshotModule.noBookings;
        // absent from documents written before backfilling: no device held idle then
        var idle = Obj(root, "", "idle_until", required: false) is { } iu ? ReadIdleUntil(iu, n) : SnapshotModule.noIdle;
        // the recorded plan is not read, but trident replay prints its totals
        if (Obj(root, "", "plan", required: false) is { } plan) ReadPlan(plan);

        if (_errors.Count > 0 || now is null || cluster is null || profile is null || cost is null || placement is null || busy is null
            || queue is null || completed is null || settings is null || bookings is null || idle is null)
            return null;
        CostModel model;
        try
        {
            model = CostModelModule.create(cost, profile);
        }
        catch (ArgumentException ex)
        {
            // what the checks above let through and the cost model still refuses: reported, not thrown as a crash
            Fail("cost_settings", ex.Message);
            return null;
        }
        return new Snapshot(now.Value, cluster, model, placement, busy, ListModule.OfSeq(queue), completed, settings, bookings, idle);
    }

    private Cluster? ReadCluster(JsonElement c)
    {
        const string at = "cluster";
        Known(c, at, "node_count", "bandwidths", "devices");
        var nodes = Int(c, at, "node_count", x => x >= 1, "must be ≥ 1");
        Bandwidths? bandwidths = null;
        if (Obj(c, at, "bandwidths") is { } bw)
        {
            var bat = At(at, "bandwidths");
            Known(bw, bat, "intra_node", "inter_node", "host_to_device");
            var intra = Num(bw, bat, "intra_node", Positive);
            var inter = Num(bw, bat, "inter_node", Positive);
            var host = Num(bw, bat, "host_to_device", Positive);
            if (intra is not null && inter is not null && host is not null) bandwidths = new Bandwidths(intra.Value, inter.Value, host.Value);
        }
        var devices = new List<Device>();
        var seen = new HashSet<int>();
        var ok = true;
        if (Arr(c, at, "devices") is { } ds)
        {
            var dat = At(at, "devices");
            if (ds.GetArrayLength() == 0) Fail(dat, "must list at least one device");
            var i = 0;
            foreach (var d in ds.EnumerateArray())
            {
                var path = $"{dat}[{i}]";
                if (IsObject(d, path))
                {
                    Known(d, path, "id", "node", "memory_gb");
                    var id = Int(d, path, "id", x => x >= 0, "must be ≥ 0");
                    // the planner looks a device up by its id: the devices are 0 … n−1, listed in that order
                    if (id is { } x)
                    {
                        if (!seen.Add(x)) Fail(At(path, "id"), $"device {x} is listed more than once (each device once, ids 0 … n−1 in order)");
                        else if (x != i) Fail(At(path, "id"), $"{x} must be {i} (each device once, ids 0 … n−1 in order)");
                    }
                    var node = Int(d, path, "node", y => y >= 0, "must be ≥ 0");
                    if (node is { } nd && nodes is { } nc && nd >= nc)
                        Fail(At(path, "node"), $"{nd} is not a node of the cluster (cluster.node_count {nc}: nodes 0 … {nc - 1})");
                    var memory = Num(d, path, "memory_gb", Positive);
                    if (id is not null && node is not null && memory is not null)
                        devices.Add(new Device(DeviceId.NewDeviceId(id.Value), NodeId.NewNodeId(node.Value), memory.Value));
                    else ok = false;
                }
                else ok = false;
                i++;
            }
        }
        else ok = false;
        if (ok && devices.Count > 0 && nodes is { } count)
            foreach (var empty in Enumerable.Range(0, count).Where(k => devices.All(d => d.Node.Value != k)))
                Fail(At(at, "node_count"), $"node {empty} has no device (each of the {count} nodes needs one)");
        return ok && nodes is not null && bandwidths is not null ? new Cluster([.. devices], nodes.Value, bandwidths) : null;
    }

    private Profile? ReadProfile(JsonElement p)
    {
        var parsed = ProfileFile.parse(p.GetRawText());
        if (parsed.IsOk) return parsed.ResultValue;
        // the profile's own paths ($.stages.…) under the document's
        foreach (var e in parsed.ErrorValue) _errors.Add(e.StartsWith('$') ? "profile" + e[1..] : "profile: " + e);
        return null;
    }

    private CostSettings? ReadCostSettings(JsonElement e, Profile? profile)
    {
        const string at = "cost_settings";
        Known(e, at, "degrees", "efficiency_threshold", "min_degree_rules", "deadline");
        FSharpList<int>? degrees = null;
        if (Arr(e, at, "degrees") is { } ds)
        {
            var dat = At(at, "degrees");
            var ks = Values(ds, dat, (k, path) => Int(k, path, x => x >= 1, "must be ≥ 1"));
            if (ks is not null)
            {
                if (ks.Count == 0) Fail(dat, "must list at least one degree");
                else if (profile is not null && !ks.Intersect(ProfileModule.degrees(profile)).Any())
                    Fail(dat, $"none of {string.Join(", ", ks)} is a degree the profile measured ({string.Join(", ", ProfileModule.degrees(profile))})");
                else degrees = ListModule.OfSeq(ks);
            }
        }
        var threshold = Num(e, at, "efficiency_threshold", (x => x >= 0 && x <= 1, "must be from 0 to 1"));
        FSharpList<MinDegreeRule>? rules = null;
        if (Arr(e, at, "min_degree_rules") is { } rs)
        {
            var list = Items(rs, At(at, "min_degree_rules"), (r, path) =>
            {
                if (!IsObject(r, path)) return null;
                Known(r, path, "video", "above_pixel_frames", "min_degree");
                var video = Bool(r, path, "video");
                var above = Num(r, path, "above_pixel_frames", NonNegative);
                var min = Int(r, path, "min_degree", x => x >= 1, "must be ≥ 1");
                return video is not null && above is not null && min is not null ? new MinDegreeRule(video.Value, above.Value, min.Value) : null;
            });
            if (list is not null) rules = ListModule.OfSeq(list);
        }
        DeadlineRule? rule = null;
        if (Obj(e, at, "deadline") is { } d)
        {
            var dat = At(at, "deadline");
            var name = Str(d, dat, "rule");
            Known(d, dat, name == "slo_scale" ? new[] { "rule", "scale" } : new[] { "rule" });
            switch (name)
            {
                case "slo_scale":
                    if (Num(d, dat, "scale", Positive) is { } scale) rule = DeadlineRule.NewSloScale(scale);
                    break;
                case "reference_code":
                    rule = DeadlineRule.ReferenceCode;
                    break;
                case null:
                    break;
                default:
                    Fail(At(dat, "rule"), $"unknown deadline rule '{name}' (known: slo_scale, reference_code)");
                    break;
            }
        }
        return degrees is not null && threshold is not null && rules is not null && rule is not null
            ? new CostSettings(degrees, threshold.Value, rules, rule)
            : null;
    }

    private PlacementPlan? ReadPlacement(JsonElement p, int? devices)
    {
        const string at = "placement";
        Known(p, at, "types", "capacity", "alpha", "moves", "source");
        FSharpMap<DeviceId, PlacementType>? types = null;
        if (Obj(p, at, "types") is { } ts)
        {
            var tat = At(at, "types");
            var read = DeviceMap(ts, tat, devices, (v, path) =>
            {
                if (v.ValueKind != JsonValueKind.String) { Fail(path, "must be a placement type (a string)"); return null; }
                var t = PlacementTypeModule.tryParse(v.GetString()!);
                if (FSharpOption<PlacementType>.get_IsSome(t)) return t.Value;
                Fail(path, $"unknown placement type '{v.GetString()}' (known: {string.Join(", ", PlacementTypeModule.all.Select(PlacementTypeModule.name))})");
                return null;
            });
            // the planner looks up every device's type
            if (devices is { } count)
                foreach (var missing in Enumerable.Range(0, count).Where(d => !ts.EnumerateObject().Any(t => t.Name == d.ToString(Inv))))
                    Fail(tat, $"device {missing} has no type (every device of cluster.devices needs one)");
            types = read;
        }
        FSharpMap<Stage, double>? capacity = null;
        if (Obj(p, at, "capacity") is { } cs)
        {
            var cat = At(at, "capacity");
            var entries = new List<Tuple<Stage, double>>();
            var ok = true;
            foreach (var e in Distinct(cs, cat))
            {
                var path = At(cat, e.Name);
                var stage = ParseStage(e.Name);
                if (stage is null) Fail(path, $"unknown stage (known: {string.Join(", ", Stages)})");
                var value = Num(e.Value, path, NonNegative);
                if (stage is not null && value is not null) entries.Add(Tuple.Create(stage, value.Value));
                else ok = false;
            }
            if (ok) capacity = MapModule.OfSeq(entries);
        }
        var alpha = Num(p, at, "alpha", NonNegative);
        var moves = Int(p, at, "moves", x => x >= 0, "must be ≥ 0");
        var source = Str(p, at, "source");
        return types is not null && capacity is not null && alpha is not null && moves is not null && source is not null
            ? new PlacementPlan(types, capacity, alpha.Value, moves.Value, PlanSource.NewGreedy("replayed: " + source))
            : null;
    }

    private double[]? ReadBusyUntil(JsonElement b, int? devices)
    {
        const string at = "busy_until";
        var values = Values(b, at, (x, path) => Num(x, path, Finite));
        // indexed by device id: one entry per device
        if (devices is { } count && b.GetArrayLength() != count)
            Fail(at, $"has {b.GetArrayLength()} {(b.GetArrayLength() == 1 ? "entry" : "entries")} for the {count} {(count == 1 ? "device" : "devices")} of cluster.devices (one per device, in id order)");
        return values is null ? null : [.. values];
    }

    private List<Request>? ReadQueue(JsonElement q, Profile? profile)
    {
        var firstAt = new Dictionary<long, int>();
        return Items(q, "queue", (r, path) =>
        {
            if (!IsObject(r, path)) return null;
            Known(r, path, "id", "model", "height", "width", "frames", "steps", "arrival", "deadline", "priority");
            var id = Long(r, path, "id");
            if (id is { } x)
            {
                if (firstAt.TryGetValue(x, out var first)) Fail(At(path, "id"), $"request {x} is also queue[{first}] (each request once)");
                else firstAt[x] = IndexOf(path);
            }
            var model = Str(r, path, "model");
            if (model is not null && profile is not null && model != profile.Model.Value)
                Fail(At(path, "model"), $"'{model}' is not the profile's model '{profile.Model.Value}'");
            var height = Int(r, path, "height", y => y >= 1, "must be ≥ 1");
            var width = Int(r, path, "width", y => y >= 1, "must be ≥ 1");
            var frames = Int(r, path, "frames", y => y >= 1, "must be ≥ 1");
            if (frames > 1 && profile is { Video: false })
                Fail(At(path, "frames"), $"{frames}, but the profile's model '{profile.Model.Value}' is image-only (frames must be 1)");
            var steps = Int(r, path, "steps", y => y >= 1, "must be ≥ 1");
            var arrival = Num(r, path, "arrival", NonNegative);
            var deadline = Num(r, path, "deadline", Finite);
            if (arrival is { } a && deadline is { } d && d < a)
                Fail(At(path, "deadline"), $"{Fmt(d)} is before the request's arrival {Fmt(a)}");
            // FSharpOption's None is null: whether the priority was read is its own flag
            var (priorityRead, priority) = Prop(r, path, "priority") is { } p
                ? p.ValueKind == JsonValueKind.Null ? (true, FSharpOption<int>.None) : PriorityOf(At(path, "priority"), id, p)
                : (false, FSharpOption<int>.None);
            return id is not null && model is not null && height is not null && width is not null && frames is not null && steps is not null
                   && arrival is not null && deadline is not null && priorityRead
                ? new Request(RequestId.NewRequestId(id.Value), ModelName.NewModelName(model), new Shape(height.Value, width.Value, frames.Value),
                    steps.Value, arrival.Value, deadline.Value, priority)
                : null;
        });
    }

    // a request's priority as the API takes it: a whole JSON number (1.5, "2" or true name the request and the field) in
    // range (the one range message, Priority.problem); a replay file is refused, not clamped
    private (bool Read, FSharpOption<int> Priority) PriorityOf(string path, long? request, JsonElement priority)
    {
        var who = request is { } id ? $"request {id}: " : "";
        if (priority.ValueKind != JsonValueKind.Number || !priority.TryGetInt32(out var level))
        {
            Fail(path, $"{who}priority {Short(priority)} is not a whole number from {Priority.MinLevel} to {Priority.MaxLevel} or null");
            return (false, FSharpOption<int>.None);
        }
        if (Priority.problem(level) is { } why)
        {
            Fail(path, who + why.Value);
            return (false, FSharpOption<int>.None);
        }
        return (true, FSharpOption<int>.Some(level));
    }

    private FSharpMap<RequestId, Stage>? ReadCompleted(JsonElement c, List<Request>? queue)
    {
        const string at = "completed";
        var entries = new List<Tuple<RequestId, Stage>>();
        var ok = true;
        foreach (var e in Distinct(c, at))
        {
            var path = At(at, e.Name);
            long? id = null;
            if (!long.TryParse(e.Name, NumberStyles.AllowLeadingSign, Inv, out var x)) Fail(path, "is not a request id (a whole number)");
            else if (queue is not null && queue.All(r => r.Id.Value != x)) Fail(path, $"request {x} is not in the queue");
            else id = x;
            Stage? stage = null;
            // the last stage a resumed request completed: one that completed its decode is not waiting
            if (e.Value.ValueKind != JsonValueKind.String || ParseStage(e.Value.GetString()!) is not { } s || s.IsDecode)
                Fail(path, $"{Short(e.Value)} is not a stage a waiting request can have completed (encode or diffuse)");
            else stage = s;
            if (id is not null && stage is not null) entries.Add(Tuple.Create(RequestId.NewRequestId(id.Value), stage));
            else ok = false;
        }
        return ok ? MapModule.OfSeq(entries) : null;
    }

    private DispatchSettings? ReadSettings(JsonElement s)
    {
        const string at = "settings";
        Known(s, at, "on_time_reward", "late_reward_base", "idle_penalty", "communication_penalty", "device_penalty", "latency_weight",
            "time_limit_s", "backend", "candidates_per_free_device", "queue_horizon_s", "max_batch");
        var defaults = DispatchSettingsModule.defaults;
        var onTime = Num(s, at, "on_time_reward", Positive);
        var lateBase = Num(s, at, "late_reward_base", NonNegative);
        var idle = Num(s, at, "idle_penalty", NonNegative);
        FSharpMap<VrType, double>? communication = null;
        if (Obj(s, at, "communication_penalty") is { } cp)
        {
            var cat = At(at, "communication_penalty");
            var entries = new List<Tuple<VrType, double>>();
            var ok = true;
            foreach (var e in Distinct(cp, cat))
            {
                var path = At(cat, e.Name);
                var vr = VrTypeModule.all.FirstOrDefault(v => v.ToString() == e.Name);
                if (vr is null) Fail(path, $"unknown VR type (known: {string.Join(", ", VrTypeModule.all)})");
                var value = Num(e.Value, path, NonNegative);
                if (vr is not null && value is not null) entries.Add(Tuple.Create(vr, value.Value));
                else ok = false;
            }
            // the planner charges every option its VR type's penalty
            foreach (var vr in VrTypeModule.all.Where(v => !cp.EnumerateObject().Any(e => e.Name == v.ToString())))
            {
                Fail(cat, $"{vr} is missing (a penalty for each of {string.Join(", ", VrTypeModule.all)})");
                ok = false;
            }
            if (ok) communication = MapModule.OfSeq(entries);
        }
        var device = Num(s, at, "device_penalty", NonNegative);
        // absent from documents written before the latency term existed: the default then
        var latency = Num(s, at, "latency_weight", (x => x >= 0 && x < 1, "must be ≥ 0 and < 1"), required: false, absent: defaults.LatencyWeight);
        var timeLimit = Num(s, at, "time_limit_s", Positive);
        // absent from documents written before backends were recorded: the default then
        Backend? backend = BackendModule.defaultDispatchBackend;
        if (Str(s, at, "backend", required: false) is { } name)
        {
            var parsed = BackendModule.tryParse(name);
            if (FSharpOption<Backend>.get_IsSome(parsed)) backend = parsed.Value;
            else
            {
                Fail(At(at, "backend"), $"unknown MIP backend '{name}' (known: {string.Join(", ", BackendModule.all.Select(BackendModule.name))})");
                backend = null;
            }
        }
        var candidates = Int(s, at, "candidates_per_free_device", x => x >= 1, "must be ≥ 1");
        // absent from documents written before queue-behind existed: the default then
        var horizon = Num(s, at, "queue_horizon_s", NonNegative, required: false, absent: defaults.QueueHorizon);
        // absent from documents written before the dispatch MIP priced batches: no batch then
        var maxBatch = Int(s, at, "max_batch", x => x >= 1, "must be ≥ 1", required: false, absent: defaults.MaxBatch);
        return onTime is not null && lateBase is not null && idle is not null && communication is not null && device is not null && latency is not null
               && timeLimit is not null && backend is not null && candidates is not null && horizon is not null && maxBatch is not null
            ? new DispatchSettings(onTime.Value, lateBase.Value, idle.Value, communication, device.Value, latency.Value, timeLimit.Value, backend,
                candidates.Value, horizon.Value, maxBatch.Value)
            : null;
    }

    private FSharpMap<DeviceId, FSharpList<Tuple<double, double>>>? ReadBookings(JsonElement b, int? devices) =>
        DeviceMap(b, "bookings", devices, (v, path) =>
        {
            if (!IsArray(v, path)) return null;
            var previous = double.NegativeInfinity;
            var ok = true;
            var list = Items(v, path, (x, p) =>
            {
                if (x.ValueKind != JsonValueKind.Array || x.GetArrayLength() != 2)
                {
                    Fail(p, "must be a [start, end] pair of seconds");
                    return null;
                }
                var start = Num(x[0], p + "[0]", Finite);
                var end = Num(x[1], p + "[1]", Finite);
                if (start is null || end is null) return null;
                // a decode is planned into the first gap between them (Snapshot.earliestFit): in start order
                if (end < start) { Fail(p, $"ends ({Fmt(end.Value)}) before it starts ({Fmt(start.Value)})"); ok = false; }
                if (start < previous) { Fail(p, $"starts ({Fmt(start.Value)}) before the booking before it ({Fmt(previous)}): bookings are in start order"); ok = false; }
                previous = start.Value;
                return Tuple.Create(start.Value, end.Value);
            });
            return ok && list is not null ? ListModule.OfSeq(list) : null;
        });

    private FSharpMap<DeviceId, double>? ReadIdleUntil(JsonElement i, int? devices)
    {
        var entries = new List<Tuple<DeviceId, double>>();
        var ok = true;
        foreach (var (p, at, id) in DeviceKeys(i, "idle_until", devices))
            if (Num(p.Value, at, Finite) is { } x && id is { } d) entries.Add(Tuple.Create(d, x));
            else ok = false;
        return ok ? MapModule.OfSeq(entries) : null;
    }

    // the recorded plan is not replayed; trident replay prints its request count, objective and source
    private void ReadPlan(JsonElement p)
    {
        const string at = "plan";
        Num(p, at, "now", Finite);
        Num(p, at, "objective", Finite);
        Str(p, at, "source");
        if (Arr(p, at, "dispatches") is { } ds)
            Items(ds, At(at, "dispatches"), (d, path) =>
            {
                if (!IsObject(d, path)) return null;
                Long(d, path, "request");
                if (Arr(d, path, "batch_mates", required: false) is { } mates)
                    Values(mates, At(path, "batch_mates"), (m, mp) => m.ValueKind == JsonValueKind.Number && m.TryGetInt64(out var x) ? x : Fail<long?>(mp, "must be a request id (a whole number)"));
                return (object?)d;
            });
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    private static readonly (Func<double, bool>, string) Finite = (_ => true, "");
    private static readonly (Func<double, bool>, string) NonNegative = (x => x >= 0, "must be ≥ 0");
    private static readonly (Func<double, bool>, string) Positive = (x => x > 0, "must be > 0");

    private void Fail(string path, string message) => _errors.Add($"{path}: {message}");

    private T? Fail<T>(string path, string message)
    {
        Fail(path, message);
        return default;
    }

    private static string At(string path, string name) => path.Length == 0 ? name : path + "." + name;

    private static int IndexOf(string path) => int.Parse(path[(path.LastIndexOf('[') + 1)..^1], Inv);

    private static string Fmt(double x) => x.ToString("G", Inv);

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    // a value as the message quotes it (at most 40 characters of its JSON text)
    private static string Short(JsonElement e)
    {
        var raw = e.GetRawText();
        return raw.Length <= 40 ? raw : raw[..37] + "…";
    }

    private static Stage? ParseStage(string s) => StageModule.tryParse(s) is { } stage ? stage.Value : null;

    // every field not among `names`, and every field given more than once (JSON allows it; the last would win unseen)
    private void Known(JsonElement e, string path, params string[] names)
    {
        var seen = new HashSet<string>();
        foreach (var p in e.EnumerateObject())
        {
            if (!seen.Add(p.Name)) Fail(At(path, p.Name), "is given more than once");
            else if (!names.Contains(p.Name)) Fail(At(path, p.Name), $"unknown field (known: {string.Join(", ", names)})");
        }
    }

    // an object's entries, each name once (a repeated one reported, and read once)
    private List<JsonProperty> Distinct(JsonElement e, string path)
    {
        var seen = new HashSet<string>();
        var list = new List<JsonProperty>();
        foreach (var p in e.EnumerateObject())
            if (seen.Add(p.Name)) list.Add(p);
            else Fail(At(path, p.Name), "is given more than once");
        return list;
    }

    // an object keyed by device id (placement.types, bookings, idle_until): each key a device of cluster.devices, once;
    // its entries with their place and device (null: not one)
    private List<(JsonProperty Entry, string At, DeviceId? Device)> DeviceKeys(JsonElement e, string path, int? devices)
    {
        var keys = new List<(JsonProperty, string, DeviceId?)>();
        foreach (var p in Distinct(e, path))
        {
            var at = At(path, p.Name);
            DeviceId? id = null;
            if (!int.TryParse(p.Name, NumberStyles.None, Inv, out var d)) Fail(at, "is not a device id (a whole number ≥ 0)");
            else if (devices is { } n && d >= n) Fail(at, $"device {d} is not in cluster.devices ({(n == 0 ? "it lists none" : $"ids 0 … {n - 1}")})");
            else id = DeviceId.NewDeviceId(d);
            keys.Add((p, at, id));
        }
        return keys;
    }

    private FSharpMap<DeviceId, T>? DeviceMap<T>(JsonElement e, string path, int? devices, Func<JsonElement, string, T?> value) where T : class
    {
        var entries = new List<Tuple<DeviceId, T>>();
        var ok = true;
        foreach (var (p, at, id) in DeviceKeys(e, path, devices))
            if (value(p.Value, at) is { } v && id is { } d) entries.Add(Tuple.Create(d, v));
            else ok = false;
        return ok ? MapModule.OfSeq(entries) : null;
    }

    // every item read (each problem reported), or null when one could not be
    private List<T>? Items<T>(JsonElement array, string path, Func<JsonElement, string, T?> item) where T : class
    {
        var list = new List<T>();
        var ok = true;
        var i = 0;
        foreach (var x in array.EnumerateArray())
        {
            if (item(x, $"{path}[{i}]") is { } v) list.Add(v);
            else ok = false;
            i++;
        }
        return ok ? list : null;
    }

    // Items for value types: each read through a box, so that null still means "could not be read"
    private List<T>? Values<T>(JsonElement array, string path, Func<JsonElement, string, T?> item) where T : struct =>
        Items(array, path, (x, at) => item(x, at) is { } v ? new StrongBox<T>(v) : null)?.Select(b => b.Value).ToList();

    private JsonElement? Prop(JsonElement e, string path, string name, bool required = true)
    {
        if (e.TryGetProperty(name, out var v)) return v;
        if (required) Fail(At(path, name), "missing");
        return null;
    }

    private bool IsObject(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Object || Fail<bool>(path, $"must be an object, not a JSON {Kind(e)}");

    private bool IsArray(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Array || Fail<bool>(path, $"must be an array, not a JSON {Kind(e)}");

    private JsonElement? Obj(JsonElement e, string path, string name, bool required = true) =>
        Prop(e, path, name, required) is { } v && IsObject(v, At(path, name)) ? v : null;

    private JsonElement? Arr(JsonElement e, string path, string name, bool required = true) =>
        Prop(e, path, name, required) is { } v && IsArray(v, At(path, name)) ? v : null;

    // a finite number that keeps the rule (its message follows the value: "-1 must be > 0")
    private double? Num(JsonElement v, string path, (Func<double, bool> Ok, string Rule) rule)
    {
        if (v.ValueKind != JsonValueKind.Number) return Fail<double?>(path, $"must be a number, not {Short(v)}");
        if (!v.TryGetDouble(out var x) || !double.IsFinite(x)) return Fail<double?>(path, $"{Short(v)} is not a finite number");
        return rule.Ok(x) ? x : Fail<double?>(path, $"{Fmt(x)} {rule.Rule}");
    }

    private double? Num(JsonElement e, string path, string name, (Func<double, bool>, string) rule, bool required = true, double? absent = null) =>
        Prop(e, path, name, required) is { } v ? Num(v, At(path, name), rule) : absent;

    private int? Int(JsonElement v, string path, Func<int, bool> ok, string rule)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var x)) return Fail<int?>(path, $"must be a whole number, not {Short(v)}");
        return ok(x) ? x : Fail<int?>(path, $"{x} {rule}");
    }

    private int? Int(JsonElement e, string path, string name, Func<int, bool> ok, string rule, bool required = true, int? absent = null) =>
        Prop(e, path, name, required) is { } v ? Int(v, At(path, name), ok, rule) : absent;

    private long? Long(JsonElement e, string path, string name)
    {
        if (Prop(e, path, name) is not { } v) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var x) ? x : Fail<long?>(At(path, name), $"must be a whole number, not {Short(v)}");
    }

    private string? Str(JsonElement e, string path, string name, bool required = true)
    {
        if (Prop(e, path, name, required) is not { } v) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : Fail<string?>(At(path, name), $"must be a string, not {Short(v)}");
    }

    private bool? Bool(JsonElement e, string path, string name)
    {
        if (Prop(e, path, name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => Fail<bool?>(At(path, name), $"must be true or false, not {Short(v)}"),
        };
    }
}
