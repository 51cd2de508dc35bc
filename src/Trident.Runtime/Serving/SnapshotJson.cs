// A dispatch round's input (and plan) as JSON, so a failed or surprising round can be replayed offline:
// `Read` gives back a Snapshot that Planner.plan accepts. The profile is embedded in its own file format
// (docs/profile-format.md); the cost model is rebuilt from it and the cost settings. The placement's
// source is kept as text (a replayed placement is data, not a decision).

using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Scheduling;

namespace Trident.Runtime.Serving;

/// <summary>Writes and reads snapshots (format <c>trident-snapshot</c>, version 1).</summary>
public static class SnapshotJson
{
    /// <summary>The format name.</summary>
    public const string Format = "trident-snapshot";

    /// <summary>The snapshot, and the plan made from it when given, as one JSON object.</summary>
    public static string Write(Snapshot s, DispatchPlan? plan)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("format", Format);
            w.WriteNumber("version", 1);
            w.WriteNumber("now", s.Now);
            w.WriteStartObject("cluster");
            w.WriteNumber("node_count", s.Cluster.NodeCount);
            w.WriteStartObject("bandwidths");
            w.WriteNumber("intra_node", s.Cluster.Bandwidths.IntraNode);
            w.WriteNumber("inter_node", s.Cluster.Bandwidths.InterNode);
            w.WriteNumber("host_to_device", s.Cluster.Bandwidths.HostToDevice);
            w.WriteEndObject();
            w.WriteStartArray("devices");
            foreach (var d in s.Cluster.Devices)
            {
                w.WriteStartObject();
                w.WriteNumber("id", d.Id.Value);
                w.WriteNumber("node", d.Node.Value);
                w.WriteNumber("memory_gb", d.Memory);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WritePropertyName("profile");
            // through the round's writer (its layout), not the profile file's indented text
            ProfileFile.write(w, s.Cost.Profile);
            WriteCostSettings(w, s.Cost.Settings);
            w.WriteStartObject("placement");
            w.WriteStartObject("types");
            foreach (var kv in s.Placement.Types) w.WriteString(kv.Key.Value.ToString(CultureInfo.InvariantCulture), PlacementTypeModule.name(kv.Value));
            w.WriteEndObject();
            w.WriteStartObject("capacity");
            foreach (var kv in s.Placement.Capacity) w.WriteNumber(StageName(kv.Key), kv.Value);
            w.WriteEndObject();
            w.WriteNumber("alpha", s.Placement.Alpha);
            w.WriteNumber("moves", s.Placement.Moves);
            w.WriteString("source", PlanSourceModule.describe(s.Placement.Source));
            w.WriteEndObject();
            w.WriteStartArray("busy_until");
            foreach (var b in s.BusyUntil) w.WriteNumberValue(b);
            w.WriteEndArray();
            // later bookings of gap-filled decode devices (Snapshot.Bookings): device id → [[start, end], …]
            w.WriteStartObject("bookings");
            foreach (var kv in s.Bookings)
            {
                w.WriteStartArray(kv.Key.Value.ToString(CultureInfo.InvariantCulture));
                foreach (var (start, end) in kv.Value)
                {
                    w.WriteStartArray();
                    w.WriteNumberValue(start);
                    w.WriteNumberValue(end);
                    w.WriteEndArray();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
            // primary devices held idle for booked work (Snapshot.IdleUntil): device id → the booked work's start
            w.WriteStartObject("idle_until");
            foreach (var kv in s.IdleUntil)
                w.WriteNumber(kv.Key.Value.ToString(CultureInfo.InvariantCulture), kv.Value);
            w.WriteEndObject();
            w.WriteStartArray("queue");
            foreach (var r in s.Queue)
            {
                w.WriteStartObject();
                w.WriteNumber("id", r.Id.Value);
                w.WriteString("model", r.Model.Value);
                w.WriteNumber("height", r.Shape.Height);
                w.WriteNumber("width", r.Shape.Width);
                w.WriteNumber("frames", r.Shape.Frames);
                w.WriteNumber("steps", r.Steps);
                w.WriteNumber("arrival", r.Arrival);
                w.WriteNumber("deadline", r.Deadline);
                if (FSharpOption<int>.get_IsSome(r.Priority)) w.WriteNumber("priority", r.Priority.Value);
                else w.WriteNull("priority");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            // the last stage each resumed request completed before it was re-queued
            w.WriteStartObject("completed");
            foreach (var kv in s.Completed) w.WriteString(kv.Key.Value.ToString(CultureInfo.InvariantCulture), StageName(kv.Value));
            w.WriteEndObject();
            WriteDispatchSettings(w, s.Settings);
            if (plan is not null) WritePlan(w, plan);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static string StageName(Stage s) => s.IsEncode ? "encode" : s.IsDiffuse ? "diffuse" : "decode";

    private static Stage ParseStage(string s) => s switch
    {
        "encode" => Stage.Encode,
        "diffuse" => Stage.Diffuse,
        "decode" => Stage.Decode,
        _ => throw new FormatException($"unknown stage '{s}'"),
    };

    private static void WriteCostSettings(Utf8JsonWriter w, CostSettings c)
    {
        w.WriteStartObject("cost_settings");
        w.WriteStartArray("degrees");
        foreach (var k in c.Degrees) w.WriteNumberValue(k);
        w.WriteEndArray();
        w.WriteNumber("efficiency_threshold", c.EfficiencyThreshold);
        w.WriteStartArray("min_degree_rules");
        foreach (var r in c.MinDegreeRules)
        {
            w.WriteStartObject();
            w.WriteBoolean("video", r.Video);
            w.WriteNumber("above_pixel_frames", r.AbovePixelFrames);
            w.WriteNumber("min_degree", r.MinDegree);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartObject("deadline");
        switch (c.Deadline)
        {
            case DeadlineRule.SloScale slo:
                w.WriteString("rule", "slo_scale");
                w.WriteNumber("scale", slo.scale);
                break;
            default:
                w.WriteString("rule", "reference_code");
                break;
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>The snapshot's MIP backend; snapshots written before backends were recorded get the default.</summary>
    private static Trident.Scheduling.Mip.Backend ParseBackend(JsonElement settings)
    {
        if (!settings.TryGetProperty("backend", out var b)) return Trident.Scheduling.Mip.BackendModule.defaultDispatchBackend;
        var parsed = Trident.Scheduling.Mip.BackendModule.tryParse(b.GetString() ?? "");
        return FSharpOption<Trident.Scheduling.Mip.Backend>.get_IsSome(parsed)
            ? parsed.Value
            : throw new JsonException($"settings.backend: unknown MIP backend '{b.GetString()}' (known: scip, cbc, highs, cp-sat)");
    }

    private static void WriteDispatchSettings(Utf8JsonWriter w, DispatchSettings d)
    {
        w.WriteStartObject("settings");
        w.WriteNumber("on_time_reward", d.OnTimeReward);
        w.WriteNumber("late_reward_base", d.LateRewardBase);
        w.WriteNumber("idle_penalty", d.IdlePenalty);
        w.WriteStartObject("communication_penalty");
        foreach (var kv in d.CommunicationPenalty) w.WriteNumber(kv.Key.ToString(), kv.Value);
        w.WriteEndObject();
        w.WriteNumber("device_penalty", d.DevicePenalty);
        w.WriteNumber("latency_weight", d.LatencyWeight);
        w.WriteNumber("time_limit_s", d.TimeLimit);
        w.WriteString("backend", Trident.Scheduling.Mip.BackendModule.name(d.Backend));
        w.WriteNumber("candidates_per_free_device", d.CandidatesPerFreeDevice);
        w.WriteNumber("queue_horizon_s", d.QueueHorizon);
        w.WriteNumber("max_batch", d.MaxBatch);
        w.WriteEndObject();
    }

    private static void WritePlan(Utf8JsonWriter w, DispatchPlan plan)
    {
        w.WriteStartObject("plan");
        w.WriteNumber("now", plan.Now);
        w.WriteNumber("objective", plan.Objective);
        w.WriteString("source", PlanSourceModule.describe(plan.Source));
        w.WriteStartArray("dispatches");
        foreach (var d in plan.Dispatches)
        {
            w.WriteStartObject();
            w.WriteNumber("request", d.Request.Value);
            w.WriteNumber("degree", d.Degree);
            w.WriteString("vr", d.Vr.ToString());
            WriteAssignment(w, "encode", d.Encode);
            WriteAssignment(w, "diffuse", d.Diffuse);
            WriteAssignment(w, "decode", d.Decode);
            w.WriteBoolean("on_time", d.OnTime);
            w.WriteNumber("reward", d.Reward);
            // the requests the planner runs with it as one batch (none: alone)
            if (plan.Batched.TryFind(d.Request) is { } mates)
            {
                w.WriteStartArray("batch_mates");
                foreach (var m in mates.Value) w.WriteNumberValue(m.Value);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteAssignment(Utf8JsonWriter w, string name, StageAssignment a)
    {
        w.WriteStartObject(name);
        w.WriteStartArray("devices");
        foreach (var d in a.Devices) w.WriteNumberValue(d.Value);
        w.WriteEndArray();
        w.WriteNumber("start", a.Start);
        w.WriteNumber("finish", a.Finish);
        w.WriteEndObject();
    }

    /// <summary>The snapshot written by <see cref="Write"/> (its plan, if any, is not read). A document is user input
    /// (<c>trident replay FILE</c>): a request's priority outside <c>Priority.MinLevel</c> … <c>MaxLevel</c> is refused,
    /// naming the request and the range (<c>Priority.problem</c>), not clamped. Jobs recovered from the server's own
    /// storage (<see cref="JobJournal.Recover"/>) keep the priority stored, and the planner clamps one out of range
    /// (<c>Priority.level</c>), so a job journalled before the range existed still loads.</summary>
    /// <exception cref="FormatException">when the text is not such a snapshot, naming where (a priority out of range:
    /// the request's place and id).</exception>
    public static Snapshot Read(string json)
    {
        // where the reading is, for the error: a missing field or a value of the wrong type names its place
        var at = "$";
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.Field("format").GetString() != Format) throw new FormatException($"not a {Format} document");
            at = "cluster";
            var c = root.Field("cluster");
            var bw = c.Field("bandwidths");
            var devices = c.Field("devices").EnumerateArray()
                .Select(d => new Device(DeviceId.NewDeviceId(d.Field("id").GetInt32()), NodeId.NewNodeId(d.Field("node").GetInt32()), d.Field("memory_gb").GetDouble()))
                .ToArray();
            var cluster = new Cluster(devices, c.Field("node_count").GetInt32(),
                new Bandwidths(bw.Field("intra_node").GetDouble(), bw.Field("inter_node").GetDouble(), bw.Field("host_to_device").GetDouble()));
            at = "profile";
            var profile = ProfileFile.parse(root.Field("profile").GetRawText());
            if (profile.IsError) throw new FormatException("profile: " + string.Join("; ", profile.ErrorValue));
            at = "cost_settings";
            var cost = CostModelModule.create(ReadCostSettings(root.Field("cost_settings")), profile.ResultValue);
            at = "placement";
            var p = root.Field("placement");
            var types = p.Field("types").EnumerateObject()
                .Select(t => (DeviceId.NewDeviceId(int.Parse(t.Name, CultureInfo.InvariantCulture)),
                    PlacementTypeModule.tryParse(t.Value.GetString()!) is { } pt ? pt.Value : throw new FormatException($"unknown placement type '{t.Value.GetString()}'")))
                .ToArray();
            var capacity = p.Field("capacity").EnumerateObject().Select(e => (ParseStage(e.Name), e.Value.GetDouble())).ToArray();
            var placement = new PlacementPlan(
                MapModule.OfSeq(types.Select(t => Tuple.Create(t.Item1, t.Item2))),
                MapModule.OfSeq(capacity.Select(t => Tuple.Create(t.Item1, t.Item2))),
                p.Field("alpha").GetDouble(),
                p.Field("moves").GetInt32(),
                PlanSource.NewGreedy("replayed: " + p.Field("source").GetString()));
            at = "busy_until";
            var busy = root.Field("busy_until").EnumerateArray().Select(b => b.GetDouble()).ToArray();
            at = "queue";
            var queue = root.Field("queue").EnumerateArray().Select((r, i) =>
            {
                at = $"queue[{i}]";
                var id = r.Field("id").GetInt64();
                var priority = r.Field("priority");
                return new Request(
                    RequestId.NewRequestId(id),
                    ModelName.NewModelName(r.Field("model").GetString()!),
                    new Shape(r.Field("height").GetInt32(), r.Field("width").GetInt32(), r.Field("frames").GetInt32()),
                    r.Field("steps").GetInt32(),
                    r.Field("arrival").GetDouble(),
                    r.Field("deadline").GetDouble(),
                    priority.ValueKind == JsonValueKind.Null ? FSharpOption<int>.None : FSharpOption<int>.Some(PriorityOf(id, priority)));
            }).ToArray();
            // absent from documents written before resumed requests were planned with their remaining stages
            at = "completed";
            var completed = root.TryGetProperty("completed", out var cp)
                ? cp.EnumerateObject().Select(e => Tuple.Create(RequestId.NewRequestId(long.Parse(e.Name, CultureInfo.InvariantCulture)), ParseStage(e.Value.GetString()!)))
                : [];
            at = "settings";
            var st = root.Field("settings");
            var settings = new DispatchSettings(
                st.Field("on_time_reward").GetDouble(),
                st.Field("late_reward_base").GetDouble(),
                st.Field("idle_penalty").GetDouble(),
                MapModule.OfSeq(st.Field("communication_penalty").EnumerateObject().Select(e => Tuple.Create(ParseVr(e.Name), e.Value.GetDouble()))),
                st.Field("device_penalty").GetDouble(),
                // absent from documents written before the latency term existed: the default then
                st.TryGetProperty("latency_weight", out var lw) ? lw.GetDouble() : DispatchSettingsModule.defaults.LatencyWeight,
                st.Field("time_limit_s").GetDouble(),
                ParseBackend(st),
                st.Field("candidates_per_free_device").GetInt32(),
                // absent from documents written before queue-behind existed: the default then
                st.TryGetProperty("queue_horizon_s", out var qh) ? qh.GetDouble() : DispatchSettingsModule.defaults.QueueHorizon,
                // absent from documents written before the dispatch MIP priced batches: no batch then
                st.TryGetProperty("max_batch", out var mb) ? mb.GetInt32() : DispatchSettingsModule.defaults.MaxBatch);
            // absent from documents written before decode devices' later bookings were planned with
            at = "bookings";
            var bookings = root.TryGetProperty("bookings", out var bk)
                ? MapModule.OfSeq(bk.EnumerateObject().Select(e => Tuple.Create(
                    DeviceId.NewDeviceId(int.Parse(e.Name, CultureInfo.InvariantCulture)),
                    ListModule.OfSeq(e.Value.EnumerateArray().Select(x => Tuple.Create(x[0].GetDouble(), x[1].GetDouble()))))))
                : SnapshotModule.noBookings;
            // absent from documents written before backfilling: no device held idle then
            at = "idle_until";
            var idleUntil = root.TryGetProperty("idle_until", out var iu)
                ? MapModule.OfSeq(iu.EnumerateObject().Select(e => Tuple.Create(
                    DeviceId.NewDeviceId(int.Parse(e.Name, CultureInfo.InvariantCulture)), e.Value.GetDouble())))
                : SnapshotModule.noIdle;
            at = "now";
            return new Snapshot(root.Field("now").GetDouble(), cluster, cost, placement, busy, ListModule.OfSeq(queue), MapModule.OfSeq(completed), settings, bookings, idleUntil);
        }
        catch (FormatException ex) when (at != "$")
        {
            throw new FormatException($"not a valid {Format} document: at {at}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException($"not a valid {Format} document: at {at}: {ex.Message}", ex);
        }
    }

    // a request's priority as the API takes it: a whole JSON number (1.5, "2" or true name the request and the field, not
    // System.Text.Json's "One of the identified items was in an invalid format") in range (the one range message); a
    // replay file is refused, not clamped
    private static int PriorityOf(long request, JsonElement priority)
    {
        if (priority.ValueKind != JsonValueKind.Number || !priority.TryGetInt32(out var level))
            throw new FormatException(
                $"request {request}: priority {priority.GetRawText()} is not a whole number from {Priority.MinLevel} to {Priority.MaxLevel} or null");
        return Priority.problem(level) is { } why ? throw new FormatException($"request {request}: {why.Value}") : level;
    }

    // a required field: a missing one is named (JsonElement.GetProperty's KeyNotFoundException does not say which)
    private static JsonElement Field(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v
        : throw new KeyNotFoundException(e.ValueKind == JsonValueKind.Object ? $"the field '{name}' is missing" : $"'{name}' is asked of a JSON {e.ValueKind.ToString().ToLowerInvariant()}, not an object");

    private static VrType ParseVr(string s) =>
        VrTypeModule.all.FirstOrDefault(v => v.ToString() == s) ?? throw new FormatException($"unknown VR type '{s}'");

    private static CostSettings ReadCostSettings(JsonElement e)
    {
        var deadline = e.Field("deadline");
        var rule = deadline.Field("rule").GetString() switch
        {
            "slo_scale" => DeadlineRule.NewSloScale(deadline.Field("scale").GetDouble()),
            "reference_code" => DeadlineRule.ReferenceCode,
            var other => throw new FormatException($"unknown deadline rule '{other}'"),
        };
        return new CostSettings(
            ListModule.OfSeq(e.Field("degrees").EnumerateArray().Select(k => k.GetInt32())),
            e.Field("efficiency_threshold").GetDouble(),
            ListModule.OfSeq(e.Field("min_degree_rules").EnumerateArray().Select(r => new MinDegreeRule(
                r.Field("video").GetBoolean(), r.Field("above_pixel_frames").GetDouble(), r.Field("min_degree").GetInt32()))),
            rule);
    }
}
