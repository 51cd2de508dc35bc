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

    private static string StageName(Stage s) => StageModule.name(s);

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

    /// <summary>The snapshot written by <see cref="Write"/>. A document is user input (<c>trident replay FILE</c>), and
    /// the server's own rounds are read back by the same rules: it is checked whole before anything is built, and every
    /// problem is reported at once, each naming its JSON path (<c>queue[3].steps: 0 must be ≥ 1</c>; the embedded
    /// profile's as <see cref="ProfileFile.parse"/> gives them, under <c>profile</c>). Checked: the format and version
    /// (<see cref="ReadableVersions"/>; another version is refused before its fields are read), every field's presence,
    /// type and range (sizes, steps and frames ≥ 1, times finite, arrivals ≥ 0 and deadlines not before them, a time
    /// limit &gt; 0, …), unknown and repeated fields, the devices (ids 0 … n−1 in order, each on a node of
    /// <c>node_count</c>, every node with one) against <c>busy_until</c> (one entry per device), <c>placement.types</c>
    /// (one type per device, no other id), <c>bookings</c> and <c>idle_until</c> (known devices), the queue (unique ids,
    /// the profile's model, frames 1 for an image-only profile) against <c>completed</c> (requests of the queue), and
    /// the recorded plan's fields that <c>trident replay</c> prints (the plan is otherwise not read). A request's
    /// priority outside <c>Priority.MinLevel</c> … <c>MaxLevel</c> is refused naming the request and the range
    /// (<c>Priority.problem</c>), not clamped. Jobs recovered from the server's own storage
    /// (<see cref="JobJournal.Recover"/>) keep the priority stored, and the planner clamps one out of range
    /// (<c>Priority.level</c>), so a job journalled before the range existed still loads. Pure.</summary>
    /// <exception cref="SnapshotFormatException">(a <see cref="FormatException"/>) listing every problem found.</exception>
    public static Snapshot Read(string json) => SnapshotReader.Read(json);

    /// <summary>The versions <see cref="Read"/> reads (<see cref="Write"/> writes version 1).</summary>
    public static IReadOnlyList<int> ReadableVersions { get; } = [1];
}

/// <summary>A <c>trident-snapshot</c> document that <see cref="SnapshotJson.Read"/> refused, with every problem found.</summary>
public sealed class SnapshotFormatException : FormatException
{
    /// <summary>Creates the exception from the problems found, each worded <c>path: what is wrong</c>.</summary>
    public SnapshotFormatException(IReadOnlyList<string> errors) : base(FormatMessage(errors)) => Errors = errors;

    /// <summary>Every problem found, in document order, each worded <c>path: what is wrong</c>.</summary>
    public IReadOnlyList<string> Errors { get; }

    private static string FormatMessage(IReadOnlyList<string> errors) =>
        errors.Count == 1
            ? $"not a valid {SnapshotJson.Format} document: {errors[0]}"
            : $"not a valid {SnapshotJson.Format} document ({errors.Count} problems):" + Environment.NewLine
              + string.Join(Environment.NewLine, errors.Select(e => "  " + e));
}
