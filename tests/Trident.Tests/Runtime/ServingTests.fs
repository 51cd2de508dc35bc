/// The serving runtime (Trident.Runtime.Serving): busy-until estimates, snapshots for replay, the job store,
/// and the server end to end over test-only fake executors (real generation is tested in Api/*).
/// (In the tiny-pipeline collection, which runs alone: these tests time threads, and their planner solves
/// would otherwise compete with the scheduling properties' time-limited ones.)
module Trident.Tests.Runtime.ServingTests

open System
open System.Threading
open FsCheck
open FsCheck.FSharp
open Microsoft.Extensions.Logging.Abstractions
open Expecto
open Trident.Tests.TestSupport
open Trident.Scheduling
open Trident.Scheduling.Dispatching
open Trident.Scheduling.Placement
open Trident.Runtime.Devices
open Trident.Runtime.Imaging
open Trident.Runtime.Serving
open Trident.Tests.Generators
open Trident.Tests.Runtime.ServingFixtures

// ---------------------------------------------------------------------------------------------------------
// Busy-until
// ---------------------------------------------------------------------------------------------------------

/// One ledger operation on device d: 0 enqueue (predicted tenths), 1 start the oldest, 2 finish the oldest.
type LedgerOp = { Device: int; Op: int; Tenths: int; Advance: int }

let ``busy-until never calls a device with work in flight free, and calls every idle device free`` =
    testProp 300 "busy-until never calls a device with work in flight free, and calls every idle device free" <| fun () ->
        let opGen =
            gen {
                let! d = Gen.choose (0, 2)
                let! op = Gen.choose (0, 2)
                let! tenths = Gen.choose (0, 30)
                let! advance = Gen.choose (0, 20)
                return { Device = d; Op = op; Tenths = tenths; Advance = advance }
            }
        let prop (ops: LedgerOp list) =
            let ledger = DeviceLedger(3)
            let pending = Array.init 3 (fun _ -> System.Collections.Generic.Queue<int64>())
            let started = Array.init 3 (fun _ -> System.Collections.Generic.HashSet<int64>())
            let mutable now = 0.0
            let mutable id = 0L
            let mutable ok = true
            for o in ops do
                now <- now + float o.Advance * 0.1
                match o.Op with
                | 0 ->
                    id <- id + 1L
                    ledger.Enqueued(o.Device, EncodeTask(id, RequestId id, float o.Tenths * 0.1, CancellationToken.None, input "p" 1))
                    pending.[o.Device].Enqueue id
                | 1 when pending.[o.Device].Count > 0 ->
                    let t = pending.[o.Device].Peek()
                    if started.[o.Device].Add t then ledger.Started(o.Device, t, now)
                | 2 when pending.[o.Device].Count > 0 ->
                    let t = pending.[o.Device].Dequeue()
                    started.[o.Device].Remove t |> ignore
                    ledger.Finished(o.Device, t)
                | _ -> ()
                for d in 0..2 do
                    let busy = ledger.BusyUntil(d, now)
                    ok <- ok && (if pending.[d].Count > 0 then busy > now else busy <= now)
            ok |> Prop.label "busy-until > now exactly while the device has tasks"
        (Prop.forAll (Arb.fromGen (Gen.listOf opGen)) prop)

/// A decode task whose latents the plan expects at `readyAt` (None: not known), `seconds` long.
let private decodeDue (id: int64) (seconds: float) (readyAt: float option) =
    DecodeTask(id, RequestId id, seconds, CancellationToken.None, input "p" 1, Threading.Tasks.TaskCompletionSource<StageOutput>().Task,
               LatentsReadyAt = Option.toNullable readyAt)

let ``a decode device's schedule holds a decode aside until its latents are due`` =
    testCase "a decode device's schedule holds a decode aside until its latents are due, as its worker does" <| fun () ->
        // a video's decode (5 s) booked first, its latents due at 60 s; an image's decode (1 s) due now booked after it
        let ledger = DeviceLedger(1)
        ledger.Enqueued(0, decodeDue 1L 5.0 (Some 60.0))
        ledger.Enqueued(0, decodeDue 2L 1.0 (Some 0.0))
        let struct (busy, later) = ledger.Schedule(0, 0.0)
        Expect.floatClose Accuracy.high busy 1.0 "busy until the image's decode ends, not for the video's decode now"
        Expect.equal (List.ofSeq later |> List.map (fun struct (a, e) -> a, e)) [ 60.0, 65.0 ] "the video's decode is a later booking when its latents are due"
        Expect.floatClose Accuracy.high (ledger.BusyUntil(0, 0.0)) 6.0 "busy-until alone counts both durations from now"

let ``an expedited decode goes first, inside the running decode it pauses`` =
    testCase "an expedited decode is scheduled first, and inside the running decode it pauses, which it lengthens" <| fun () ->
        // a video decode running since 0 s (10 s), two ready decodes queued (5 s, then the urgent 1 s)
        let ledger = DeviceLedger(1)
        ledger.Enqueued(0, decodeDue 1L 10.0 (Some 0.0))
        ledger.Started(0, 1L, 0.0)
        ledger.Enqueued(0, decodeDue 2L 5.0 (Some 0.0))
        ledger.Enqueued(0, decodeDue 3L 1.0 (Some 0.0))
        let order () = ledger.Runs(0, 2.0) |> Seq.map (fun r -> r.TaskId, r.Start, r.End) |> List.ofSeq
        Expect.equal (order ()) [ 1L, 0.0, 10.0; 2L, 10.0, 15.0; 3L, 15.0, 16.0 ] "queue order before"
        Expect.equal (ledger.Runs(0, 2.0, 3L) |> Seq.map _.TaskId |> List.ofSeq) [ 1L; 2L ] "a task left out"
        // put in ahead without a pause: after the running decode, before the queued one
        ledger.Expedite(0, 3L, Nullable())
        Expect.equal (order ()) [ 1L, 0.0, 10.0; 3L, 10.0, 11.0; 2L, 11.0, 16.0 ] "expedited first among the queued"
        // pausing the running decode: now, inside it; the running one ends a decode later
        let paused = DeviceLedger(1)
        paused.Enqueued(0, decodeDue 1L 10.0 (Some 0.0))
        paused.Started(0, 1L, 0.0)
        paused.Enqueued(0, decodeDue 2L 5.0 (Some 0.0))
        paused.Enqueued(0, decodeDue 3L 1.0 (Some 0.0))
        paused.Expedite(0, 3L, Nullable 1L)
        Expect.equal (paused.Runs(0, 2.0) |> Seq.map (fun r -> r.TaskId, r.Start, r.End) |> List.ofSeq)
            [ 1L, 0.0, 11.0; 3L, 2.0, 3.0; 2L, 11.0, 16.0 ] "inside the paused decode, which ends 1 s later"
        let struct (busy, later) = paused.Schedule(0, 2.0)
        Expect.floatClose Accuracy.high busy 16.0 "busy until the queued decode ends"
        Expect.isEmpty later "no gap"

let ``a device's schedule runs every queued task once, in order, from its busy-until`` =
    testProp 200 "a device's schedule runs every queued task once, without overlap, and is busy-until when nothing waits for latents" <| fun () ->
        let gen =
            Gen.listOf (Gen.zip3 (Gen.choose (0, 2)) (Gen.choose (1, 40)) (Gen.choose (0, 400)))
            |> Gen.map (List.truncate 12)
        Prop.forAll (Arb.fromGen gen) (fun specs ->
            let ledger = DeviceLedger(1)
            let now = 10.0
            specs
            |> List.iteri (fun i (kind, tenths, readyTenths) ->
                let id = int64 (i + 1)
                let seconds = float tenths * 0.1
                match kind with
                | 0 -> ledger.Enqueued(0, EncodeTask(id, RequestId id, seconds, CancellationToken.None, input "p" 1))
                | 1 -> ledger.Enqueued(0, decodeDue id seconds (Some(float readyTenths * 0.1)))
                | _ -> ledger.Enqueued(0, decodeDue id seconds None))
            let struct (busy, later) = ledger.Schedule(0, now)
            let later = List.ofSeq later |> List.map (fun struct (a, e) -> a, e)
            let total = specs |> List.sumBy (fun (_, tenths, _) -> max (float tenths * 0.1) 0.001)
            let ran = (busy - now) + (later |> List.sumBy (fun (a, e) -> e - a))
            let waitsForLatents = specs |> List.exists (fun (kind, _, r) -> kind = 1 && float r * 0.1 > now)
            (busy >= now |> Prop.label "busy-until ≥ now")
            .&. (later |> List.forall (fun (a, _) -> a > busy) |> Prop.label "later bookings start after a gap")
            .&. (later |> List.pairwise |> List.forall (fun ((_, e1), (a2, _)) -> a2 >= e1 - 1e-9) |> Prop.label "no overlap")
            .&. (abs (ran - total) < 1e-6 |> Prop.label (sprintf "every task runs once: %g of %g s" ran total))
            .&. ((waitsForLatents || (later.IsEmpty && abs (busy - ledger.BusyUntil(0, now)) < 1e-9)) |> Prop.label "nothing held: the busy-until"))

// ---------------------------------------------------------------------------------------------------------
// Snapshots for replay
// ---------------------------------------------------------------------------------------------------------

let ``a snapshot document with a missing field or a wrong type names where`` =
    testCase "a snapshot document with a missing field or a value of the wrong type is refused naming the field and its place" <| fun () ->
        let spec = Gen.sampleWithSize 10 50 snapshotSpecs.Generator |> Array.find (fun x -> x.Requests.Length >= 2)
        let good = SnapshotJson.Write(buildSnapshot DispatchSettings.defaults spec, Unchecked.defaultof<DispatchPlan>)
        let broken (change: System.Text.Json.Nodes.JsonNode -> unit) =
            let n = System.Text.Json.Nodes.JsonNode.Parse(good)
            change n
            (expectThrows<SnapshotFormatException> "refused" (fun () -> SnapshotJson.Read(n.ToJsonString()) |> ignore)).Message
        Expect.stringContains (broken (fun n -> n.AsObject().Remove "cluster" |> ignore)) "cluster: missing" "a missing section"
        Expect.stringContains (broken (fun n -> n.["queue"].[1].["steps"] <- System.Text.Json.Nodes.JsonValue.Create "8")) "queue[1].steps: must be a whole number, not \"8\"" "a string for a number, in the second request"
        Expect.stringContains (broken (fun n -> n.["settings"].AsObject().Remove "on_time_reward" |> ignore)) "settings.on_time_reward: missing" "a missing setting"

/// A replay file is user input: a request priority outside −3 … 3 is refused naming the request and the range (the
/// one message of Priority.problem); before, it was read and clamped by the planner without a word.
let ``a snapshot document with a priority out of range is refused naming the request; -3 to 3 and null load`` =
    testCase "a snapshot document with a priority out of range is refused naming the request and the range; -3 … 3 and null load" <| fun () ->
        let spec = Gen.sampleWithSize 10 50 snapshotSpecs.Generator |> Array.find (fun x -> x.Requests.Length >= 2)
        let good = SnapshotJson.Write(buildSnapshot DispatchSettings.defaults spec, Unchecked.defaultof<DispatchPlan>)
        let withPriority (p: System.Text.Json.Nodes.JsonNode) =
            let n = System.Text.Json.Nodes.JsonNode.Parse(good)
            n.["queue"].[1].["priority"] <- p
            n.ToJsonString()
        let id = System.Text.Json.Nodes.JsonNode.Parse(good).["queue"].[1].["id"].GetValue<int64>()
        for bad in [ 7; -4; 4; Int32.MaxValue ] do
            let message = (expectThrows<SnapshotFormatException> "refused" (fun () -> SnapshotJson.Read(withPriority (System.Text.Json.Nodes.JsonValue.Create bad)) |> ignore)).Message
            Expect.stringContains message (sprintf "queue[1].priority: request %d: " id) (sprintf "priority %d: names the request" bad)
            Expect.stringContains message (Priority.problem bad).Value (sprintf "priority %d: the range message" bad)
        // not a whole number: the request and the field named (before: System.Text.Json's "One of the identified items
        // was in an invalid format" for 1.5)
        for bad, raw in [ System.Text.Json.Nodes.JsonValue.Create 1.5 :> System.Text.Json.Nodes.JsonNode, "1.5"
                          System.Text.Json.Nodes.JsonValue.Create "2", "\"2\""
                          System.Text.Json.Nodes.JsonValue.Create true, "true"
                          System.Text.Json.Nodes.JsonValue.Create 1e12, "1000000000000" ] do
            let message = (expectThrows<SnapshotFormatException> "refused" (fun () -> SnapshotJson.Read(withPriority bad) |> ignore)).Message
            Expect.stringContains message (sprintf "queue[1].priority: request %d: priority %s is not a whole number from -3 to 3 or null" id raw) (sprintf "priority %s" raw)
        for p in Priority.MinLevel .. Priority.MaxLevel do
            let read = SnapshotJson.Read(withPriority (System.Text.Json.Nodes.JsonValue.Create p))
            Expect.equal (List.item 1 read.Queue).Priority (Some p) (sprintf "priority %d loads as it is" p)
        Expect.equal (List.item 1 (SnapshotJson.Read(withPriority null)).Queue).Priority None "null: no priority"

// A round as the server writes it, to break one field at a time: sd3's profile (image-only), 4 devices on 2 nodes
// (busy-until 0 s for d1, idle otherwise), the heuristic placement, requests 0, 1, 2 waiting.
let private roundSpec =
    { Profile = 0
      Cluster = { Nodes = 2; PerNode = 1; Memory = 0 }
      PlacementMode = 0
      Types = []
      Busy = [ 0; 5; 0; 0 ]
      Requests = [ for i in 0..2 -> { ShapeIndex = i; Steps = 20; AgeTenths = 10 * (i + 1); SloPercent = 400; Priority = 1 } ] }

let private savedRound = lazy (SnapshotJson.Write(buildSnapshot DispatchSettings.defaults roundSpec, Unchecked.defaultof<DispatchPlan>))

let private node (v: obj) : System.Text.Json.Nodes.JsonNode =
    match v with
    | null -> null
    | :? System.Text.Json.Nodes.JsonNode as n -> n
    | :? string as s -> System.Text.Json.Nodes.JsonValue.Create s
    | :? int as i -> System.Text.Json.Nodes.JsonValue.Create i
    | :? float as f -> System.Text.Json.Nodes.JsonValue.Create f
    | other -> failwithf "no JSON for %A" other

/// The problems reading the round's text after `edit` (each `path: what is wrong`), or a failure when it loads.
let private problemsOfText (text: string) =
    (expectThrows<SnapshotFormatException> "refused" (fun () -> SnapshotJson.Read text |> ignore)).Errors |> List.ofSeq

/// The problems reading the round after `change` to its JSON tree.
let private problemsAfter (change: System.Text.Json.Nodes.JsonNode -> unit) =
    let n = System.Text.Json.Nodes.JsonNode.Parse savedRound.Value
    change n
    problemsOfText (n.ToJsonString())

/// Sets `path` (dotted, with [i] for items) of the round to `value` (a JsonNode, string, int, float or null).
let private setAt (path: string) (value: obj) (n: System.Text.Json.Nodes.JsonNode) =
    let parts = path.Replace("[", ".[").Split('.') |> Array.filter ((<>) "")
    let step (x: System.Text.Json.Nodes.JsonNode) (part: string) =
        if part.StartsWith "[" then x.[int (part.Trim('[', ']'))] else x.[part]
    let parent = parts.[.. parts.Length - 2] |> Array.fold step n
    let last = parts.[parts.Length - 1]
    if last.StartsWith "[" then parent.[int (last.Trim('[', ']'))] <- node value else parent.[last] <- node value

let private remove (path: string) (name: string) (n: System.Text.Json.Nodes.JsonNode) =
    let target = if path = "" then n else path.Replace("[", ".[").Split('.') |> Array.filter ((<>) "") |> Array.fold (fun (x: System.Text.Json.Nodes.JsonNode) p -> if p.StartsWith "[" then x.[int (p.Trim('[', ']'))] else x.[p]) n
    target.AsObject().Remove name |> ignore

let private expectProblems (change: System.Text.Json.Nodes.JsonNode -> unit) (expected: string list) (what: string) =
    Expect.equal (problemsAfter change) expected what

let ``the round written for the snapshot tests loads`` =
    testCase "the round the snapshot tests break one field at a time loads as written" <| fun () ->
        let s = SnapshotJson.Read savedRound.Value
        Expect.equal s.Cluster.Devices.Length 4 "4 devices"
        Expect.equal s.Queue.Length 3 "3 requests"

/// Before, the version was not read: a document of version 99 was planned as version 1.
let ``a snapshot document of another format or version is refused alone, naming the versions read`` =
    testCase "a snapshot document of another format or version is refused with that one problem, naming the versions this build reads" <| fun () ->
        expectProblems (setAt "version" 99) [ "version: 99 is not a version this build reads (it reads version 1; a newer trident may have written the document)" ] "version 99"
        expectProblems (setAt "version" "1") [ "version: \"1\" is not a version this build reads (it reads version 1; a newer trident may have written the document)" ] "a string"
        expectProblems (remove "" "version") [ "version: missing (this build reads version 1)" ] "no version"
        expectProblems (setAt "format" "trident-profile") [ "format: \"trident-profile\" is not 'trident-snapshot': not a trident-snapshot document" ] "another format"
        Expect.equal (problemsOfText "[1]") [ "$: must be a JSON object (a trident-snapshot document), not a JSON array" ] "not an object"
        Expect.stringStarts (List.exactlyOne (problemsOfText "{\"format\":")) "$: not valid JSON: " "not JSON"

/// Before, a busy_until shorter than the devices crashed the planner (IndexOutOfRangeException in
/// Admissible.freeByNodeAndType), a device without a type crashed it ("the placement has no type for device d1"),
/// and an empty device list was replayed as "1 of 2 devices free".
let ``a snapshot document whose devices disagree across cluster, busy_until, placement, bookings and idle_until is refused`` =
    testCase "a snapshot document whose device ids disagree across cluster, busy_until, placement.types, bookings and idle_until is refused naming each" <| fun () ->
        expectProblems (fun n -> n.["busy_until"].AsArray().RemoveAt 3)
            [ "busy_until: has 3 entries for the 4 devices of cluster.devices (one per device, in id order)" ] "busy_until short of a device"
        expectProblems (fun n -> n.["busy_until"].AsArray().Add 1.0)
            [ "busy_until: has 5 entries for the 4 devices of cluster.devices (one per device, in id order)" ] "busy_until with an extra entry"
        expectProblems (remove "placement.types" "1") [ "placement.types: device 1 has no type (every device of cluster.devices needs one)" ] "a device without a type"
        expectProblems (setAt "placement.types.7" "EDC") [ "placement.types.7: device 7 is not in cluster.devices (ids 0 … 3)" ] "a type for no device"
        expectProblems (setAt "placement.types.d1" "EDC") [ "placement.types.d1: is not a device id (a whole number ≥ 0)" ] "not an id"
        expectProblems (setAt "placement.types.0" "XYZ") [ "placement.types.0: unknown placement type 'XYZ' (known: EDC, DC, ED, D, E, C)" ] "an unknown type"
        expectProblems (setAt "cluster.devices[2].id" 1)
            [ "cluster.devices[2].id: device 1 is listed more than once (each device once, ids 0 … n−1 in order)" ] "a device twice"
        expectProblems (setAt "cluster.devices[1].id" 5) [ "cluster.devices[1].id: 5 must be 1 (each device once, ids 0 … n−1 in order)" ] "ids out of order"
        expectProblems (setAt "idle_until" (System.Text.Json.Nodes.JsonNode.Parse """{"9": 1000.5}"""))
            [ "idle_until.9: device 9 is not in cluster.devices (ids 0 … 3)" ] "held idle: no such device"
        expectProblems (setAt "bookings" (System.Text.Json.Nodes.JsonNode.Parse """{"4": [[1001, 1002]]}"""))
            [ "bookings.4: device 4 is not in cluster.devices (ids 0 … 3)" ] "bookings: no such device"
        expectProblems (setAt "bookings" (System.Text.Json.Nodes.JsonNode.Parse """{"0": [[1005, 1003], [1010, 1011], [1008, 1009], [1]]}"""))
            [ "bookings.0[0]: ends (1003) before it starts (1005)"
              "bookings.0[2]: starts (1008) before the booking before it (1010): bookings are in start order"
              "bookings.0[3]: must be a [start, end] pair of seconds" ] "bookings out of order"
        let none = problemsAfter (setAt "cluster.devices" (System.Text.Json.Nodes.JsonArray()))
        Expect.contains none "cluster.devices: must list at least one device" "no device"
        Expect.contains none "busy_until: has 4 entries for the 0 devices of cluster.devices (one per device, in id order)" "no device: busy_until"
        Expect.contains none "placement.types.0: device 0 is not in cluster.devices (it lists none)" "no device: the types"

let ``a snapshot document whose devices and nodes disagree is refused`` =
    testCase "a snapshot document with a device on a node outside node_count, or a node without a device, is refused naming it" <| fun () ->
        expectProblems (setAt "cluster.devices[3].node" 2)
            [ "cluster.devices[3].node: 2 is not a node of the cluster (cluster.node_count 2: nodes 0 … 1)" ] "a node outside node_count"
        expectProblems (setAt "cluster.node_count" 3) [ "cluster.node_count: node 2 has no device (each of the 3 nodes needs one)" ] "a node without a device"
        expectProblems (setAt "cluster.node_count" 0) [ "cluster.node_count: 0 must be ≥ 1" ] "no node"
        expectProblems (setAt "cluster.devices[0].memory_gb" -1.0) [ "cluster.devices[0].memory_gb: -1 must be > 0" ] "negative memory"
        // the other sections are still checked against the devices listed
        expectProblems (fun n -> setAt "cluster.devices[0].memory_gb" "8" n; n.["busy_until"].AsArray().RemoveAt 0)
            [ "cluster.devices[0].memory_gb: must be a number, not \"8\""
              "busy_until: has 3 entries for the 4 devices of cluster.devices (one per device, in id order)" ] "a bad device and busy_until"
        expectProblems (setAt "cluster.bandwidths.inter_node" 0) [ "cluster.bandwidths.inter_node: 0 must be > 0" ] "no bandwidth"

/// Before, each of these was planned and printed without a word ("2 waiting" for one request given twice).
let ``a snapshot document with a request the planner cannot plan is refused naming the request and the field`` =
    testCase "a snapshot document with a request of a bad size, steps, frames, times, model or a repeated id is refused naming the field" <| fun () ->
        let arrival = System.Text.Json.Nodes.JsonNode.Parse(savedRound.Value).["queue"].[1].["arrival"].GetValue<float>()
        for field, value, expected in
            [ "height", box -64, "queue[1].height: -64 must be ≥ 1"
              "width", box 0, "queue[1].width: 0 must be ≥ 1"
              "steps", box 0, "queue[1].steps: 0 must be ≥ 1"
              "steps", box 2.5, "queue[1].steps: must be a whole number, not 2.5"
              "frames", box 0, "queue[1].frames: 0 must be ≥ 1"
              "frames", box 17, "queue[1].frames: 17, but the profile's model 'sd3' is image-only (frames must be 1)"
              "arrival", box -1.0, "queue[1].arrival: -1 must be ≥ 0"
              "deadline", box -5.0, sprintf "queue[1].deadline: -5 is before the request's arrival %s" (arrival.ToString("G", Globalization.CultureInfo.InvariantCulture))
              "model", box "flux", "queue[1].model: 'flux' is not the profile's model 'sd3'"
              "id", box 0, "queue[1].id: request 0 is also queue[0] (each request once)" ] do
            expectProblems (setAt ("queue[1]." + field) value) [ expected ] (sprintf "%s %O" field value)
        // a number JSON can write but a double cannot hold
        let text = System.Text.Json.Nodes.JsonNode.Parse savedRound.Value
        setAt "queue[1].arrival" 12345.5 text
        Expect.equal (problemsOfText ((text.ToJsonString()).Replace("12345.5", "1e400"))) [ "queue[1].arrival: 1e400 is not a finite number" ] "an infinite arrival"

/// Before, `settings.time_limit_s: -1` was replayed as "time limit -1000 ms", then "solver failed".
let ``a snapshot document with settings the planner cannot plan with is refused naming each`` =
    testCase "a snapshot document with a time limit ≤ 0, or another setting or cost setting out of range, is refused naming it" <| fun () ->
        for path, value, expected in
            [ "settings.time_limit_s", box -1, "settings.time_limit_s: -1 must be > 0"
              "settings.time_limit_s", box 0, "settings.time_limit_s: 0 must be > 0"
              "settings.candidates_per_free_device", box 0, "settings.candidates_per_free_device: 0 must be ≥ 1"
              "settings.max_batch", box 0, "settings.max_batch: 0 must be ≥ 1"
              "settings.queue_horizon_s", box -1, "settings.queue_horizon_s: -1 must be ≥ 0"
              "settings.latency_weight", box 1, "settings.latency_weight: 1 must be ≥ 0 and < 1"
              "settings.on_time_reward", box 0, "settings.on_time_reward: 0 must be > 0"
              "settings.backend", box "glpk", "settings.backend: unknown MIP backend 'glpk' (known: scip, cbc, highs, cp-sat)"
              "settings.communication_penalty.V4", box 1, "settings.communication_penalty.V4: unknown VR type (known: V0, V1, V2, V3)"
              "cost_settings.deadline.scale", box 0, "cost_settings.deadline.scale: 0 must be > 0"
              "cost_settings.efficiency_threshold", box 2, "cost_settings.efficiency_threshold: 2 must be from 0 to 1"
              "cost_settings.degrees", box (System.Text.Json.Nodes.JsonNode.Parse "[3, 5]"), "cost_settings.degrees: none of 3, 5 is a degree the profile measured (1, 2, 4, 8)"
              "now", box -1, "now: -1 must be ≥ 0" ] do
            expectProblems (setAt path value) [ expected ] (sprintf "%s %O" path value)
        expectProblems (remove "settings.communication_penalty" "V2")
            [ "settings.communication_penalty: V2 is missing (a penalty for each of V0, V1, V2, V3)" ] "a VR type without a penalty"

let ``a snapshot document with unknown fields, a completed stage of no request, or a bad recorded plan is refused`` =
    testCase "a snapshot document with an unknown or repeated field, a completed stage of no waiting request, or a recorded plan replay cannot print is refused" <| fun () ->
        expectProblems (setAt "completed" (System.Text.Json.Nodes.JsonNode.Parse """{"99": "encode"}""")) [ "completed.99: request 99 is not in the queue" ] "no such request"
        expectProblems (setAt "completed" (System.Text.Json.Nodes.JsonNode.Parse """{"0": "decode"}"""))
            [ "completed.0: \"decode\" is not a stage a waiting request can have completed (encode or diffuse)" ] "a finished request"
        Expect.equal (problemsOfText (savedRound.Value.Replace("\"busy_until\":", "\"busy_untill\":")))
            [ "busy_untill: unknown field (known: format, version, now, cluster, profile, cost_settings, placement, busy_until, bookings, idle_until, queue, completed, settings, plan)"
              "busy_until: missing" ] "a misspelt field"
        Expect.equal (problemsOfText (savedRound.Value.Replace("\"now\":", "\"now\":1,\"now\":"))) [ "now: is given more than once" ] "a field twice"
        expectProblems (setAt "plan" (System.Text.Json.Nodes.JsonNode.Parse """{"now": 1000, "objective": "high", "source": "greedy", "dispatches": [{"request": 0, "batch_mates": [1.5]}]}"""))
            [ "plan.objective: must be a number, not \"high\""; "plan.dispatches[0].batch_mates[0]: must be a request id (a whole number)" ] "a plan replay cannot print"
        // the embedded profile's problems under its place
        expectProblems (setAt "profile.stages.encode.points[0].seconds" -1.0) [ "profile.stages.encode.points[0].seconds: -1 must be > 0" ] "the profile's own"

/// Every problem of a file comes in one pass: the newcomer's edits of one saved round, made together.
let ``a snapshot document with several problems reports them all at once`` =
    testCase "a snapshot document with several problems in several sections reports every one at once, each with its JSON path" <| fun () ->
        let n = System.Text.Json.Nodes.JsonNode.Parse savedRound.Value
        n.["busy_until"].AsArray().RemoveAt 3
        remove "placement.types" "1" n
        setAt "queue[0].height" -64 n
        setAt "queue[1].steps" 0 n
        setAt "queue[2].frames" 0 n
        setAt "queue[2].model" "flux" n
        setAt "queue[1].id" 0 n
        setAt "settings.time_limit_s" -1 n
        setAt "cluster.devices[3].node" 5 n
        let e = expectThrows<SnapshotFormatException> "refused" (fun () -> SnapshotJson.Read(n.ToJsonString()) |> ignore)
        let expected =
            [ "cluster.devices[3].node: 5 is not a node of the cluster (cluster.node_count 2: nodes 0 … 1)"
              "placement.types: device 1 has no type (every device of cluster.devices needs one)"
              "busy_until: has 3 entries for the 4 devices of cluster.devices (one per device, in id order)"
              "queue[0].height: -64 must be ≥ 1"
              "queue[1].id: request 0 is also queue[0] (each request once)"
              "queue[1].steps: 0 must be ≥ 1"
              "queue[2].model: 'flux' is not the profile's model 'sd3'"
              "queue[2].frames: 0 must be ≥ 1"
              "settings.time_limit_s: -1 must be > 0" ]
        Expect.equal (List.ofSeq e.Errors) expected "every problem, in document order"
        Expect.equal e.Message
            (sprintf "not a valid trident-snapshot document (9 problems):%s%s" Environment.NewLine (expected |> List.map (fun x -> "  " + x) |> String.concat Environment.NewLine))
            "the message lists them, one a line"

let ``a snapshot read back from its JSON is the same round and gets the same plan`` =
    testProp 40 "a snapshot read back from its JSON is the same round and gets the same plan" <| fun () ->
        let prop (spec: SnapshotSpec) =
            let s = buildSnapshot DispatchSettings.defaults spec
            let json = SnapshotJson.Write(s, Unchecked.defaultof<DispatchPlan>)
            let r = SnapshotJson.Read json
            let plan (x: Snapshot) =
                (fst (Greedy.plan "replay" x)).Dispatches
                |> List.map (fun d -> d.Request, d.Degree, d.Encode.Devices, d.Diffuse.Devices, d.Decode.Devices)
            (r.Now = s.Now |> Prop.label "now")
            .&. (not (json.Contains '\n') |> Prop.label "one line: the embedded profile is not indented")
            .&. (r.Cluster = s.Cluster |> Prop.label "cluster")
            .&. (r.Cost.Profile = s.Cost.Profile |> Prop.label "profile")
            .&. (r.Cost.Settings = s.Cost.Settings |> Prop.label "cost settings")
            .&. (r.Placement.Types = s.Placement.Types |> Prop.label "placement")
            .&. (r.BusyUntil = s.BusyUntil |> Prop.label "busy-until")
            .&. (r.Bookings = s.Bookings |> Prop.label "later bookings")
            .&. (r.IdleUntil = s.IdleUntil |> Prop.label "devices held idle")
            .&. (r.Queue = s.Queue |> Prop.label "queue")
            .&. (r.Settings = s.Settings |> Prop.label "settings")
            .&. (plan r = plan s |> Prop.label "greedy plan")
        (Prop.forAll snapshotSpecs prop)

// ---------------------------------------------------------------------------------------------------------
// Job store
// ---------------------------------------------------------------------------------------------------------

/// A wall clock the test moves by hand.
type private ManualTime(start: DateTimeOffset) =
    inherit TimeProvider()
    let mutable now = start
    member _.Advance(by: TimeSpan) = now <- now + by
    override _.GetUtcNow() = now

let private job (time: TimeProvider) (id: int64) = testJob (time.GetUtcNow()) id 1

let ``the job store refuses new jobs only when full of active ones, and evicts finished jobs after their retention`` =
    testCase "the job store refuses new jobs only when full of active ones, and evicts finished jobs after their retention" <| fun () ->
        let time = ManualTime(DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero))
        let store = JobStore(2, TimeSpan.FromSeconds 60.0, time)
        let a, b, c = job time 1L, job time 2L, job time 3L
        Expect.isTrue (store.TryAdd a) "store.TryAdd a"
        Expect.isTrue (store.TryAdd b) "store.TryAdd b"
        Expect.isFalse (store.TryAdd c) "full of active jobs: refused, nothing dropped"
        Expect.isNotNull (store.Find(RequestId 1L)) "store.Find(RequestId 1L)"
        a.Fail("test", 1.0)
        Expect.isTrue (store.TryAdd c) "a finished job makes room"
        Expect.isNull (store.Find(RequestId 1L)) "store.Find(RequestId 1L)"
        b.Fail("test", 1.0)
        time.Advance(TimeSpan.FromSeconds 30.0)
        Expect.equal (store.EvictExpired()) 0 "store.EvictExpired()"
        time.Advance(TimeSpan.FromSeconds 40.0)
        Expect.equal (store.EvictExpired()) 1 "store.EvictExpired()"
        Expect.isNull (store.Find(RequestId 2L)) "store.Find(RequestId 2L)"
        Expect.isNotNull (store.Find(RequestId 3L)) "store.Find(RequestId 3L)"

// ---------------------------------------------------------------------------------------------------------
// The server over fake executors
// ---------------------------------------------------------------------------------------------------------

let private startServer (settings: ServingSettings) (devices: int) (executors: IStageExecutorFactory) =
    let mix =
        { Classes = [ { Shape = Shape.image 64 64; Steps = 4; Share = 1.0 } ]
          ArrivalRate = 1.0 }
    let setup = ServerSetup(DeviceLayout.Cpu(devices, 1, devices, 8.0), testProfile, CostSettings.defaults, executors, settings, mix)
    TridentServer.Start(setup, NullLoggerFactory.Instance, TimeProvider.System)

let ``a request goes through encode, diffuse and decode on the planned devices and yields a PNG`` =
    testCase "a request goes through encode, diffuse and decode on the planned devices and yields a PNG" <| fun () ->
        let log = ExecutionLog()
        let server = startServer (ServingSettings()) 2 (FakeExecutors log)
        try
            let j = server.Submit(input "hello" 4, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 j
            let v = j.View()
            Expect.equal v.Status JobStatus.Succeeded "v.Status"
            Expect.equal j.Result.MediaType "image/png" "an image is a PNG by default"
            let png = Trident.Tests.Runtime.MediaChecks.decodeImage j.Result.File
            Expect.equal ((png.Width, png.Height)) ((64, 64)) "(png.Width, png.Height)"
            let route = v.Route.Dispatch
            Expect.contains log.Entries (sprintf "d%d encode hello" route.Encode.Devices.Head.Value) "log.Entries"
            Expect.contains log.Entries (sprintf "d%d diffuse hello threads=%d" route.Diffuse.Devices.Head.Value route.Degree) "log.Entries"
            Expect.isTrue (v.Encode.Finish.Value <= v.Diffuse.Start.Value + 1e-9 || route.Encode.Devices <> route.Diffuse.Devices) "encode before diffuse"
            Expect.isTrue (v.Diffuse.Finish.Value <= v.Decode.Finish.Value) "decode after diffuse"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``a failing stage fails only its own request, with the error`` =
    testCase "a failing stage fails only its own request, with the error" <| fun () ->
        let log = ExecutionLog()
        let server = startServer (ServingSettings()) 2 (FakeExecutors log)
        try
            let bad = server.Submit(input "fail" 2, Nullable(), Nullable()) |> accepted
            let good = server.Submit(input "fine" 2, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 bad
            finishedWithin 30.0 good
            Expect.equal bad.Status JobStatus.Failed "bad.Status"
            Expect.stringContains (bad.View().Error) "encoder exploded" "bad.View().Error"
            Expect.equal good.Status JobStatus.Succeeded "good.Status"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``a full queue refuses with a retry time and every accepted request is served`` =
    testCase "a full queue refuses with a retry time and every accepted request is served" <| fun () ->
        let log = ExecutionLog()
        let executors = FakeExecutors(log, TimeSpan.FromMilliseconds 20.0, TimeSpan.FromMilliseconds 1.0, "fail")
        let server = startServer (ServingSettings(QueueCapacity = 2)) 1 executors
        try
            let outcomes = [ for i in 1..8 -> server.Submit(input (sprintf "p%d" i) 5, Nullable(), Nullable()) ]
            let jobs = outcomes |> List.choose (fun (o: SubmitOutcome) -> match o with :? SubmitOutcome.Accepted as a -> Some a.Job | _ -> None)
            let refused = outcomes |> List.choose (fun (o: SubmitOutcome) -> match o with :? SubmitOutcome.Refused as r -> Some r | _ -> None)
            Expect.isNonEmpty refused "refused"
            for r in refused do Expect.isTrue (r.RetryAfter >= TimeSpan.FromSeconds 1.0) "Retry-After of at least a second"
            for j in jobs do finishedWithin 60.0 j
            for j in jobs do Expect.equal j.Status JobStatus.Succeeded "every job succeeded"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``cancelling a queued job cancels it at once and a running one at its next step`` =
    testCase "cancelling a queued job cancels it at once and a running one at its next step" <| fun () ->
        let log = ExecutionLog()
        let executors = FakeExecutors(log, TimeSpan.FromMilliseconds 10.0, TimeSpan.FromMilliseconds 1.0, "fail")
        let server = startServer (ServingSettings()) 1 executors
        try
            let running = server.Submit(input "running" 500, Nullable(), Nullable()) |> accepted
            let queued = server.Submit(input "queued" 500, Nullable(), Nullable()) |> accepted
            waitUntil 30.0 "the first job is diffusing" (fun () -> running.View().Step >= 1)
            Expect.isTrue (server.Cancel queued) "server.Cancel queued"
            Expect.equal queued.Status JobStatus.Cancelled "queued.Status"
            Expect.isTrue (server.Cancel running) "server.Cancel running"
            finishedWithin 10.0 running
            Expect.equal running.Status JobStatus.Cancelled "running.Status"
            Expect.isTrue (running.View().Step < 500) "stopped before its last step"
            Expect.isFalse (server.Cancel running) "a finished job cannot be cancelled again"
            Expect.isFalse (Seq.contains "d0 encode queued" log.Entries) "does not contain \"d0 encode queued\""
        finally
            server.DisposeAsync().AsTask().Wait()

let ``the live loop evaluates Adjust-on-Dispatch over its monitor as the simulator does, and a new placement reaches the workers`` =
    testCase "the live loop evaluates Adjust-on-Dispatch over its monitor as the simulator does, and a new placement reaches the workers" <| fun () ->
        let log = ExecutionLog()
        let executors = FakeExecutors(log, TimeSpan.FromMilliseconds 2.0, TimeSpan.FromMilliseconds 1.0, "fail")
        // a 1 s window, and a threshold of 1 that every evaluation with enough recent arrivals reaches
        let settings = ServingSettings(RoundPeriodSeconds = 0.05, Monitor = Trident.Runtime.Monitoring.MonitorSettings(1.0, 1.0, 0.2, 4, 0.1))
        let server = startServer settings 4 executors
        try
            let jobs =
                [ for i in 1..25 ->
                      let size = if i % 2 = 0 then 64 else 256
                      Thread.Sleep 100
                      server.Submit(GenerationInput(sprintf "p%d" i, null, size, size, 1, 6, uint64 i, 1.0), Nullable(), Nullable()) |> accepted ]
            for j in jobs do finishedWithin 60.0 j
            for j in jobs do Expect.equal j.Status JobStatus.Succeeded "every job succeeded"
            waitUntil 10.0 "an evaluation is recorded" (fun () -> not server.State.Placements.IsEmpty)
            let state = server.State
            let evaluation = state.Placements.[0]
            Expect.isTrue (evaluation.Reason.StartsWith "imbalance") evaluation.Reason
            // whatever was decided, the workers end up with the planned types
            waitUntil 10.0 "every worker has its planned type" (fun () ->
                server.Workers |> Seq.forall (fun w -> w.Type = server.State.Placement.Types.[w.Device.DeviceId]))
        finally
            server.DisposeAsync().AsTask().Wait()

// ---------------------------------------------------------------------------------------------------------
// Job lifecycle: the cancel rule, timings of the stages that ran, back-pressure, graceful shutdown
// ---------------------------------------------------------------------------------------------------------

let private png64 = JobResult([| 1uy |], Trident.Runtime.Imaging.MediaFormat.Png, 1, 64, 64)

let ``a cancel and a success racing on one job: exactly one wins, and an accepted cancel never leaves a result`` =
    testCase "a cancel and a success racing on one job: exactly one wins, and an accepted cancel never leaves a result" <| fun () ->
        let time = ManualTime(DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero))
        let mutable accepted, refused = 0, 0
        for i in 1..2000 do
            let j = job time (int64 i)
            j.StageStarted(TaskKind.Decode, 0.5)
            use start = new Barrier(2)
            let succeed = Tasks.Task.Run(fun () -> start.SignalAndWait(); j.Succeed(png64, 1.0))
            start.SignalAndWait()
            let cancel = j.RequestCancel 1.0
            let succeeded = succeed.Result
            let v = j.View()
            if cancel then
                accepted <- accepted + 1
                Expect.isFalse succeeded "an accepted cancel: the success lost"
                Expect.equal v.Status JobStatus.Cancelled "an accepted cancel ends the job cancelled"
                Expect.isNull j.Result "an accepted cancel leaves no result"
            else
                refused <- refused + 1
                Expect.isTrue succeeded "a refused cancel: the success won"
                Expect.equal v.Status JobStatus.Succeeded "a refused cancel leaves the job succeeded"
                Expect.isNotNull j.Result "a refused cancel leaves the result"
        Expect.equal (accepted + refused) 2000 "every race had one winner"

let private gatedServer (settings: ServingSettings) (devices: int) =
    let gates = Gates()
    gates, startServer settings devices (GatedExecutors gates)

let ``a DELETE racing a job's decode either ends it cancelled with no result or is refused and it succeeds, never both`` =
    testCase "a DELETE racing a job's decode either ends it cancelled with no result or is refused and it succeeds, never both" <| fun () ->
        let gates, server = gatedServer (ServingSettings()) 1
        try
            for i in 1..150 do
                let prompt = sprintf "race %d" i
                let gate = gates.Hold(prompt, Stage.Decode)
                let j = server.Submit(input prompt 2, Nullable(), Nullable()) |> accepted
                gate.WaitEntered 30.0
                use start = new Barrier(2)
                let opener = Tasks.Task.Run(fun () -> start.SignalAndWait(); gate.Open())
                start.SignalAndWait()
                let cancelAccepted = server.Cancel j
                opener.Wait()
                finishedWithin 30.0 j
                if cancelAccepted then
                    Expect.equal j.Status JobStatus.Cancelled (sprintf "%s: a cancel was accepted, so the job ends cancelled" prompt)
                    Expect.isNull j.Result (sprintf "%s: an accepted cancel serves no result" prompt)
                else
                    Expect.equal j.Status JobStatus.Succeeded (sprintf "%s: a refused cancel leaves the job succeeding" prompt)
                    Expect.isNotNull j.Result (sprintf "%s: and its result" prompt)
        finally
            server.DisposeAsync().AsTask().Wait()

/// Where a test cancels a job.
type CancelPoint =
    | WhileQueued
    | During of Stage

let private stagesBefore (point: CancelPoint) =
    match point with
    | WhileQueued -> []
    | During Stage.Encode -> [ Stage.Encode ]
    | During Stage.Diffuse -> [ Stage.Encode; Stage.Diffuse ]
    | During _ -> [ Stage.Encode; Stage.Diffuse; Stage.Decode ]

let ``a cancelled job reports timings only for the stages that ran, at every cancel point`` =
    testCase "a cancelled job reports timings only for the stages that ran, at every cancel point" <| fun () ->
        let gates, server = gatedServer (ServingSettings()) 1
        try
            for point in [ WhileQueued; During Stage.Encode; During Stage.Diffuse; During Stage.Decode ] do
                let name = sprintf "%A" point
                // a blocker holds the only device at encode, so a job submitted behind it stays queued
                let blocker = gates.Hold("blocker " + name, Stage.Encode)
                let b = server.Submit(input ("blocker " + name) 2, Nullable(), Nullable()) |> accepted
                blocker.WaitEntered 30.0
                let prompt = "victim " + name
                let gate =
                    match point with
                    | WhileQueued -> None
                    | During stage -> Some(gates.Hold(prompt, stage))
                let j = server.Submit(input prompt 3, Nullable(), Nullable()) |> accepted
                if point <> WhileQueued then blocker.Open()
                gate |> Option.iter (fun g -> g.WaitEntered 30.0)
                Expect.isTrue (server.Cancel j) (name + ": the cancel is accepted")
                gate |> Option.iter (fun g -> g.Open())
                blocker.Open()
                finishedWithin 30.0 j
                finishedWithin 30.0 b
                // a job behind it on the same FIFO worker: once it is over, every task of the victim was reached
                let after = server.Submit(input ("after " + name) 1, Nullable(), Nullable()) |> accepted
                finishedWithin 30.0 after
                let v = j.View()
                Expect.equal v.Status JobStatus.Cancelled (name + ": cancelled")
                Expect.isNull j.Result (name + ": no result")
                let ran = stagesBefore point
                for stage, timing in [ Stage.Encode, v.Encode; Stage.Diffuse, v.Diffuse; Stage.Decode, v.Decode ] do
                    if List.contains stage ran then
                        Expect.isTrue (timing.Start.HasValue && timing.Finish.HasValue && timing.Seconds.HasValue)
                            (sprintf "%s: %A ran, so it has a start, an end and a duration (%A)" name stage timing)
                    else
                        Expect.isFalse (timing.Start.HasValue || timing.Finish.HasValue || timing.Seconds.HasValue)
                            (sprintf "%s: %A never ran, so it has no timing (%A)" name stage timing)
        finally
            server.DisposeAsync().AsTask().Wait()

let ``a refusal's Retry-After is the queue's predicted drain time, not the refused request's own cost`` =
    testCase "a refusal's Retry-After is the queue's predicted drain time, not the refused request's own cost" <| fun () ->
        let gates, server = gatedServer (ServingSettings(QueueCapacity = 2)) 1
        try
            let blocker = gates.Hold("blocker", Stage.Encode)
            let b = server.Submit(input "blocker" 500, Nullable(), Nullable()) |> accepted
            blocker.WaitEntered 30.0
            // long jobs until the queue is full (the only device is held, so they wait)
            let rec fill n accepted =
                match server.Submit(input (sprintf "long %d" n) 500, Nullable(), Nullable()) with
                | :? SubmitOutcome.Accepted -> fill (n + 1) (accepted + 1)
                | _ when n > 20 -> failwith "the queue never filled"
                | _ -> accepted
            let waiting = fill 1 0
            Expect.isGreaterThanOrEqual waiting 2 "at least the queue's capacity is waiting"
            match server.Submit(input "short" 1, Nullable(), Nullable()) with
            | :? SubmitOutcome.Refused as r ->
                let perLong = float (CostModel.tRef server.Cost (Shape.image 64 64) 500)
                let own = float (CostModel.tRef server.Cost (Shape.image 64 64) 1)
                Expect.isGreaterThan (float waiting * perLong) (2.0 * Math.Ceiling own) "the queue's work dwarfs the refused request's own cost"
                Expect.isGreaterThanOrEqual r.RetryAfter.TotalSeconds (Math.Floor(float waiting * perLong))
                    "Retry-After covers at least the waiting work over the one device"
                Expect.equal r.RetryAfter.TotalSeconds (Math.Ceiling r.RetryAfter.TotalSeconds) "whole seconds"
            | other -> failwithf "expected a refusal, got %A" other
            blocker.Open()
            finishedWithin 60.0 b
        finally
            server.DisposeAsync().AsTask().Wait()

let ``draining refuses new work, lets running jobs finish, and cancels what is left at the drain time with a final event`` =
    testCase "draining refuses new work, lets running jobs finish, and cancels what is left at the drain time with a final event" <| fun () ->
        // a job that finishes within the drain time succeeds
        let gates, server = gatedServer (ServingSettings()) 1
        try
            let gate = gates.Hold("finishing", Stage.Diffuse)
            let j = server.Submit(input "finishing" 2, Nullable(), Nullable()) |> accepted
            gate.WaitEntered 30.0
            let drain = server.DrainAsync(TimeSpan.FromSeconds 60.0, TimeSpan.FromSeconds 3.0)
            Expect.isTrue server.Draining "draining"
            match server.Submit(input "late" 1, Nullable(), Nullable()) with
            | :? SubmitOutcome.Stopping as s -> Expect.isGreaterThanOrEqual s.RetryAfter.TotalSeconds 1.0 "Retry-After"
            | other -> failwithf "expected Stopping while draining, got %A" other
            gate.Open()
            Expect.isTrue (drain.Wait(TimeSpan.FromSeconds 30.0)) "the drain ends when the work in flight is done"
            Expect.equal j.Status JobStatus.Succeeded "work in flight finished during the drain"
        finally
            server.DisposeAsync().AsTask().Wait()
        // a job still running at the drain time is cancelled, and its subscribers see that final state
        let gates, server = gatedServer (ServingSettings()) 1
        try
            let gate = gates.Hold("stuck", Stage.Diffuse)
            let j = server.Submit(input "stuck" 2, Nullable(), Nullable()) |> accepted
            gate.WaitEntered 30.0
            let events = j.Subscribe()
            let drain = server.DrainAsync(TimeSpan.FromSeconds 0.2, TimeSpan.FromSeconds 3.0)
            Expect.isTrue (drain.Wait(TimeSpan.FromSeconds 30.0)) "the drain ends"
            Expect.equal j.Status JobStatus.Cancelled "cancelled at the drain time"
            let seen = Collections.Generic.List<JobEvent>()
            let mutable e = Unchecked.defaultof<JobEvent>
            while events.TryRead(&e) do seen.Add e
            Expect.isTrue events.Completion.IsCompleted "the event stream ended"
            Expect.equal seen.[seen.Count - 1].Status JobStatus.Cancelled "its last event is the final state"
            Expect.isFalse (j.View().Decode.Start.HasValue) "the decode never ran"
        finally
            server.DisposeAsync().AsTask().Wait()

/// Log lines, rendered, from every logger of the server.
type private LineLogs() =
    let lines = Collections.Concurrent.ConcurrentQueue<string>()
    member _.Lines = List.ofSeq lines
    interface Microsoft.Extensions.Logging.ILoggerFactory with
        member _.CreateLogger _ =
            { new Microsoft.Extensions.Logging.ILogger with
                member _.BeginScope _ = null
                member _.IsEnabled _ = true
                member _.Log(_, _, state, ex, formatter) = lines.Enqueue(formatter.Invoke(state, ex)) }
        member _.AddProvider _ = ()
        member _.Dispose() = ()

let ``at the drain time each cancelled job is logged with the state it was in, queued or running`` =
    testCase "at the drain time each cancelled job is logged with the state it was in, queued or running" <| fun () ->
        let mix =
            { Classes = [ { Shape = Shape.image 64 64; Steps = 4; Share = 1.0 } ]
              ArrivalRate = 1.0 }
        let gates = Gates()
        let setup = ServerSetup(DeviceLayout.Cpu(1, 1, 1, 8.0), testProfile, CostSettings.defaults, GatedExecutors gates, ServingSettings(), mix)
        let logs = new LineLogs()
        let server = TridentServer.Start(setup, logs, TimeProvider.System)
        try
            let gate = gates.Hold("running", Stage.Diffuse)
            let running = server.Submit(input "running" 2, Nullable(), Nullable()) |> accepted
            gate.WaitEntered 30.0
            let waiting = server.Submit(input "waiting" 2, Nullable(), Nullable()) |> accepted
            Expect.equal waiting.Status JobStatus.Queued "the second job waits for the one device"
            let drain = server.DrainAsync(TimeSpan.FromSeconds 0.2, TimeSpan.FromSeconds 3.0)
            Expect.isTrue (drain.Wait(TimeSpan.FromSeconds 30.0)) "the drain ends"
            Expect.equal waiting.Status JobStatus.Cancelled "the queued job is cancelled"
            let line (job: Job) = logs.Lines |> List.tryFind (fun l -> l.Contains(sprintf "cancelled job %d (" job.Id.Value))
            Expect.equal (line waiting |> Option.map (fun l -> l.Contains "(queued)")) (Some true) (sprintf "the queued job's line says queued: %A" (line waiting))
            Expect.equal (line running |> Option.map (fun l -> l.Contains "(diffusing)")) (Some true) (sprintf "the running job's line says diffusing: %A" (line running))
        finally
            server.DisposeAsync().AsTask().Wait()

let ``a session that failed to load is loaded again by the next task, so restoring the model file heals the server`` =
    testCase "a session that failed to load is loaded again by the next task, so restoring the model file heals the server" <| fun () ->
        let source = TinyFixture.directory.Value
        let dir = TinyFixture.tempPath "pipeline"
        for f in IO.Directory.GetFiles(source, "*", IO.SearchOption.AllDirectories) do
            let target = IO.Path.Combine(dir, IO.Path.GetRelativePath(source, f))
            IO.Directory.CreateDirectory(IO.Path.GetDirectoryName target) |> ignore
            IO.File.Copy(f, target)
        let decoder =
            use p = Trident.Runtime.Execution.LoadedPipeline.Open dir
            p.ModelPath Trident.Runtime.Execution.StageModel.VaeDecoder
        let good = IO.File.ReadAllBytes decoder
        IO.File.WriteAllBytes(decoder, Text.Encoding.ASCII.GetBytes "not an ONNX model")
        let server = startServer (ServingSettings()) 1 (OnnxStageExecutorFactory dir)
        try
            let broken = server.Submit(input "broken" 1, Nullable(), Nullable()) |> accepted
            finishedWithin 120.0 broken
            Expect.equal broken.Status JobStatus.Failed "the job fails while the decoder is broken"
            let error = broken.View().Error
            Expect.stringContains error (IO.Path.GetFileName decoder) "the error names the model file"
            IO.File.WriteAllBytes(decoder, good)
            let healed = server.Submit(input "healed" 1, Nullable(), Nullable()) |> accepted
            finishedWithin 120.0 healed
            Expect.equal healed.Status JobStatus.Succeeded (sprintf "the next job succeeds without a restart (%s)" (healed.View().Error))
        finally
            server.DisposeAsync().AsTask().Wait()

let ``with a round period longer than the test every request is served: rounds never wait for the period`` =
    testCase "with a round period longer than the test every request is served: rounds never wait for the period" <| fun () ->
        // work conservation (issue 11): more requests than devices, and a round period far longer than
        // the test; rounds run on every event and plan at once (solved, or proven optimal without the
        // solver), so each finish starts the next request — before issue 11 a round that needed the
        // solver within a period of the last solve waited for the period's end
        let log = ExecutionLog()
        let executors = FakeExecutors(log, TimeSpan.FromMilliseconds 5.0, TimeSpan.FromMilliseconds 1.0, "fail")
        let server = startServer (ServingSettings(RoundPeriodSeconds = 600.0, QueueCapacity = 32)) 2 executors
        try
            let jobs = [ for i in 1..10 -> server.Submit(input (sprintf "p%d" i) 4, Nullable(), Nullable()) |> accepted ]
            for j in jobs do finishedWithin 120.0 j
            for j in jobs do Expect.equal j.Status JobStatus.Succeeded "every job succeeded"
            let rounds = server.State.Rounds |> Seq.filter (fun r -> r.Dispatched > 0) |> Seq.length
            Expect.isGreaterThanOrEqual rounds 2 "rounds that dispatched, within less than one period"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``before the server is ready its loop has planned the dispatch path once, leaving no trace, and the first request goes in the round it triggers`` =
    testCase "before the server is ready its loop has planned the dispatch path once, leaving no trace, and the first request goes in the round it triggers" <| fun () ->
        // Found on a fresh `trident serve`: the first 64², 2-step request on an idle server waited 0.5–0.9 s in the queue
        // (its deadline 0.32 s) because its round was the first to run the planner's code (JIT, first-use
        // initialisation); the same round took 1–3 ms from the second request on. Now the loop runs the planning half of
        // a round (and Adjust-on-Dispatch's evaluation) on synthetic requests before Start returns — i.e. before the host
        // reports ready — and the journal its insert in a rolled-back transaction; neither may leave anything behind.
        let log = ExecutionLog()
        let dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "trident-warmup-" + Guid.NewGuid().ToString("N"))
        let settings = ServingSettings(StorageDirectory = dir, RoundPeriodSeconds = 600.0)
        let server = startServer settings 2 (FakeExecutors log)
        try
            try
                let w = server.WarmUp
                Expect.isNotNull (box w) "the loop warmed up before Start returned"
                Expect.equal w.Requests 1 "one synthetic request per class of the planned mix (64×64, 4 steps)"
                Expect.equal w.Dispatched 1 (sprintf "the idle cluster dispatches it (%s)" w.Detail)
                Expect.equal server.State.Round 0L "the warm-up is no round"
                Expect.isEmpty server.State.Rounds "no round in the history"
                Expect.isTrue (server.State.BusyUntil |> Seq.forall (fun b -> b = 0.0)) "no device was booked"
                Expect.isEmpty (server.Store.Recent 10) "no job in the store"
                Expect.isEmpty (server.Journal.Load()) "no row in the journal (the warm-up's insert was rolled back)"
                Expect.equal server.Waiting 0 "nothing waits"
                Expect.isEmpty log.Entries "no stage ran"
                let j = server.Submit(input "first" 2, Nullable(), Nullable()) |> accepted
                Expect.equal j.Id (RequestId 1L) "the first job is job 1"
                finishedWithin 30.0 j
                Expect.equal j.Status JobStatus.Succeeded "it succeeded"
                // the round period (600 s) is far longer than the test: the submission itself woke the loop
                Expect.equal (j.View().Route.Round) 1L "dispatched in round 1, the round its submission triggered"
                Expect.equal [ for s in server.Journal.Load() -> s.Id ] [ 1L ] "the journal holds job 1 only"
            finally
                server.DisposeAsync().AsTask().Wait()
        finally
            try System.IO.Directory.Delete(dir, true) with _ -> ()

// ---------------------------------------------------------------------------------------------------------
// Devices that leave, come back and join (the cluster's membership; the multi-process test is ClusterProcessTests)
// ---------------------------------------------------------------------------------------------------------

/// `inner` with its diffuse and discard replaced (the losing executors below).
let private withDiffuse (inner: IStageExecutor) (diffuse: GenerationInput -> StageOutput -> int -> IStepObserver -> CancellationToken -> StageOutput)
                        (discard: StageOutput -> unit) =
    { new IStageExecutor with
        member _.Resident = inner.Resident
        member _.Unload s = inner.Unload s
        member _.Encode(i, ct) = inner.Encode(i, ct)
        member _.Diffuse(i, e, t, o, ct) = diffuse i e t o ct
        member _.Decode(i, l, ct) = inner.Decode(i, l, ct)
        member _.Discard(output: StageOutput) = discard output
        member _.Dispose() = inner.Dispose() }

/// Fake executors whose first diffuse (of any device) fails as a device lost with its worker would, naming
/// its own device; everything else runs as FakeExecutor does.
type private LosingExecutors(log: ExecutionLog) =
    let fakes = FakeExecutors(log) :> IStageExecutorFactory
    let mutable lost = -1
    member _.Lost = lost
    interface IStageExecutorFactory with
        member _.Create device =
            let inner = fakes.Create device
            withDiffuse inner
                (fun i e t o ct ->
                    if Interlocked.CompareExchange(&lost, device.Id, -1) = -1 then
                        raise (DeviceLostException(device.Id, sprintf "device %d left the cluster (test)" device.Id))
                    inner.Diffuse(i, e, t, o, ct))
                inner.Discard

let ``a request whose work is lost with a device is re-queued from its last completed stage and succeeds on the devices left`` =
    testCase "a request whose work is lost with a device is re-queued from its last completed stage and succeeds on the devices left" <| fun () ->
        let log = ExecutionLog()
        let executors = LosingExecutors log
        let server = startServer (ServingSettings()) 2 executors
        try
            let j = server.Submit(input "lost" 4, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 j
            Expect.equal j.Status JobStatus.Succeeded "the request succeeds after its re-queue"
            Expect.equal j.Requeues 1 "queued again once"
            let lost = executors.Lost
            Expect.isFalse (server.State.IsOnline lost) "the device that was lost is out of the cluster"
            let route = j.View().Route.Dispatch
            Expect.isFalse (route.Diffuse.Devices |> List.exists (fun d -> d.Value = lost)) "the second route avoids the lost device"
            // the encode that completed on a device still in the cluster is kept; on the lost device it runs again
            let encodes = log.Entries |> List.filter (fun e -> e.EndsWith " encode lost")
            let firstEncode = encodes.Head
            let expected = if firstEncode.StartsWith(sprintf "d%d " lost) then 2 else 1
            Expect.equal encodes.Length expected (sprintf "encodes: %A (lost d%d)" encodes lost)
            // the second route plans the stages left only: no encode (no device, no time) when the encode was kept
            Expect.equal route.Encode.Devices.IsEmpty (expected = 1) (sprintf "the second route's encode: %A" route.Encode)
            if expected = 1 then Expect.equal route.Encode.Start route.Encode.Finish "a kept encode takes no time in the plan"
            server.DevicesBack [| lost |]
            waitUntil 10.0 "the device is back" (fun () -> server.State.IsOnline lost)
            let k = server.Submit(input "after" 4, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 k
            Expect.equal k.Status JobStatus.Succeeded "served after the device came back"
        finally
            server.DisposeAsync().AsTask().Wait()

/// Fake executors whose every diffuse fails as work lost with a device that still answers (no device leaves: the
/// request resumes from its kept encode each time); the outputs they are told nobody will read are logged as
/// "discard d<device> <value>".
type private AlwaysLosingExecutors(log: ExecutionLog) =
    let fakes = FakeExecutors(log) :> IStageExecutorFactory
    interface IStageExecutorFactory with
        member _.Create device =
            let inner = fakes.Create device
            withDiffuse inner
                (fun _ _ _ _ _ -> raise (DeviceLostException(-1, "a device could not be reached but answers now (test)")))
                (fun output -> log.Add(sprintf "discard d%d %O" device.Id output.Value))

/// A request whose re-queues are spent fails, and the output it kept to resume from is discarded on the device that
/// made it (a cluster worker frees it; before, it stayed there until it expired). While it is re-queued, its kept
/// output is not discarded: every attempt resumes from it.
let ``a request that fails after its last re-queue has the output it kept discarded`` =
    testCase "a request that fails after its last re-queue has the output it kept discarded" <| fun () ->
        let log = ExecutionLog()
        let server = startServer (ServingSettings()) 2 (AlwaysLosingExecutors log)
        try
            let j = server.Submit(input "forever" 4, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 j
            Expect.equal j.Status JobStatus.Failed "failed once its re-queues were spent"
            Expect.equal j.Requeues ServingLoop.MaxRequeues "re-queued as often as allowed"
            let encodes = log.Entries |> List.filter (fun e -> e.EndsWith " encode forever")
            Expect.equal encodes.Length 1 (sprintf "encoded once, every attempt resumed from it: %A" log.Entries)
            let encoder = encodes.Head.Split(' ')[0]
            waitUntil 5.0 "the kept embeddings are discarded" (fun () -> log.Entries |> List.exists (fun e -> e.StartsWith "discard"))
            Expect.equal (log.Entries |> List.filter (fun e -> e.StartsWith "discard")) [ sprintf "discard %s forever" encoder ] "discarded once, on their device"
        finally
            server.DisposeAsync().AsTask().Wait()

/// Gated executors (GatedExecutor: a stage runs at once unless the test holds it) whose diffuse of each prompt in
/// `lose` fails once, after its gate, as work lost with device `lostDevice` (-1: no device leaves, so the job resumes
/// from its kept encode; a device id: that device leaves, so the job starts again); they log each output and
/// checkpoint they are told nobody will read ("output <value>", "checkpoint <state>"). After `Break`, asking one
/// whether it can suspend fails: the next dispatch cannot carry out its route (it asks while building the diffuse).
type private DiscardCounting(gates: Gates, lose: string list, lostDevice: int) =
    let discarded = Collections.Concurrent.ConcurrentQueue<string>()
    let lost = Collections.Concurrent.ConcurrentDictionary<string, bool>()
    let mutable broken = false
    member _.Discarded = List.ofSeq discarded
    member _.Break() = broken <- true
    interface IStageExecutorFactory with
        member _.Create device =
            let inner = new GatedExecutor(gates) :> IStageExecutor
            { new IStageExecutor with
                member _.Resident = inner.Resident
                member _.Unload s = inner.Unload s
                member _.Encode(i, ct) = inner.Encode(i, ct)
                member _.Diffuse(i, e, t, o, ct) =
                    let latents = inner.Diffuse(i, e, t, o, ct)
                    if List.contains i.Prompt lose && lost.TryAdd(i.Prompt, true) then
                        raise (DeviceLostException(lostDevice, sprintf "the diffuse of %s was lost (test)" i.Prompt))
                    latents
                member _.CanSuspend = if broken then invalidOp "this executor cannot tell whether it can suspend (test)" else false
                member _.Decode(i, l, ct) = inner.Decode(i, l, ct)
                member _.Discard(output: StageOutput) = discarded.Enqueue(sprintf "output %O" output.Value)
                member _.Discard(checkpoint: DiffuseCheckpoint) = discarded.Enqueue(sprintf "checkpoint %O" checkpoint.State)
                member _.Dispose() = inner.Dispose() }

/// One device of DiscardCounting executors; "lost" (500 steps, due in 1 s: late whatever happens) loses its diffuse
/// once with no device leaving, so it is queued again to resume from its encode kept on device 0, while "blocker"
/// (500 steps, due in 8 s: late if it waits behind "lost") has the device first and is held at its encode; "lost",
/// late, is not queued behind it (Assign.queueBehind: the device is busy for seconds) and stays queued. Returns the
/// executors, the server, "lost", the blocker and the blocker's encode gate.
let private requeuedBehindBlocker (settings: ServingSettings) =
    let gates = Gates()
    let executors = DiscardCounting(gates, [ "lost" ], -1)
    let server = startServer settings 1 executors
    let diffuse = gates.Hold("lost", Stage.Diffuse)
    let lost = server.Submit(input "lost" 500, Nullable 1.0, Nullable()) |> accepted
    diffuse.WaitEntered 30.0
    let encode = gates.Hold("blocker", Stage.Encode)
    let blocker = server.Submit(input "blocker" 500, Nullable 8.0, Nullable()) |> accepted
    diffuse.Open()
    encode.WaitEntered 30.0
    waitUntil 30.0 "the lost request is queued again" (fun () -> lost.Requeues = 1 && lost.Status = JobStatus.Queued)
    Expect.isNull (lost.View().Route) "it waits for the device, not routed"
    Expect.isEmpty executors.Discarded "its kept encode is not discarded while it is queued to resume from it"
    executors, server, lost, blocker, encode

/// A queued job's kept output (Job.Resume) is discarded once when it is cancelled before a dispatch takes it.
let ``a queued request cancelled while it waits to resume has the output it kept discarded once`` =
    testCase "a queued request cancelled while it waits to resume has the output it kept discarded once" <| fun () ->
        let executors, server, lost, blocker, encode = requeuedBehindBlocker (ServingSettings())
        try
            Expect.isTrue (server.Cancel lost) "the cancel is accepted"
            Expect.equal lost.Status JobStatus.Cancelled "a queued job is cancelled at once"
            waitUntil 10.0 "the kept encode is discarded" (fun () -> not executors.Discarded.IsEmpty)
            encode.Open()
            finishedWithin 30.0 blocker
            // a request after the blocker on the same device: every round that could discard it again has run
            let after = server.Submit(input "after" 1, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 after
            Expect.equal blocker.Status JobStatus.Succeeded "the blocker succeeded"
            Expect.equal executors.Discarded [ "output lost" ] "its kept encode, once"
        finally
            server.DisposeAsync().AsTask().Wait()

/// With no device left, a queued job that kept an output to resume from fails and the output is discarded once.
let ``a request waiting to resume that fails because no device is left has the output it kept discarded once`` =
    testCase "a request waiting to resume that fails because no device is left has the output it kept discarded once" <| fun () ->
        let executors, server, lost, blocker, encode = requeuedBehindBlocker (ServingSettings(NoDeviceSeconds = 0.2))
        try
            server.DevicesLeft([| 0 |], "left (test)")
            finishedWithin 30.0 lost
            Expect.equal lost.Status JobStatus.Failed "failed: no device within the bound"
            Expect.stringContains (lost.View().Error) "no device is left in the cluster" "the reason"
            waitUntil 10.0 "the kept encode is discarded" (fun () -> not executors.Discarded.IsEmpty)
            encode.Open()
            finishedWithin 30.0 blocker
            server.DevicesBack [| 0 |]
            waitUntil 10.0 "the server is ready again" (fun () -> isNull server.NoDevice)
            let after = server.Submit(input "after" 1, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 after
            Expect.equal executors.Discarded [ "output lost" ] "its kept encode, once"
        finally
            server.DisposeAsync().AsTask().Wait()

/// A dispatch that cannot carry out its route fails the job; the output the job kept to resume from is discarded once.
let ``a request whose resuming dispatch fails has the output it kept discarded once`` =
    testCase "a request whose resuming dispatch fails has the output it kept discarded once" <| fun () ->
        // preemption on: a dispatch asks the diffuse device's executor whether it can suspend
        let executors, server, lost, blocker, encode = requeuedBehindBlocker (ServingSettings(Preemption = PreemptionSettings.defaults))
        try
            executors.Break()
            encode.Open()
            finishedWithin 30.0 lost
            Expect.equal lost.Status JobStatus.Failed "its route could not be carried out"
            Expect.stringContains (lost.View().Error) "could not carry out its route" "the reason"
            finishedWithin 30.0 blocker
            waitUntil 10.0 "the kept encode is discarded" (fun () -> not executors.Discarded.IsEmpty)
            Expect.equal executors.Discarded [ "output lost" ] "its kept encode, once"
        finally
            server.DisposeAsync().AsTask().Wait()

/// A job whose work is lost with the device that holds its kept output starts again from scratch: that output is
/// discarded once, and the attempt that succeeds discards nothing.
let ``a request re-queued from the start has the output it kept discarded once`` =
    testCase "a request re-queued from the start has the output it kept discarded once" <| fun () ->
        let gates = Gates()
        let executors = DiscardCounting(gates, [ "again" ], 0)
        let server = startServer (ServingSettings()) 1 executors
        try
            let j = server.Submit(input "again" 2, Nullable(), Nullable()) |> accepted
            waitUntil 30.0 "the device is out" (fun () -> not (server.State.IsOnline 0))
            waitUntil 10.0 "the encode made on it is discarded" (fun () -> not executors.Discarded.IsEmpty)
            server.DevicesBack [| 0 |]
            finishedWithin 30.0 j
            Expect.equal j.Status JobStatus.Succeeded "it succeeds once the device is back"
            Expect.equal j.Requeues 1 "queued again once"
            Expect.isFalse (j.View().Route.Dispatch.Encode.Devices.IsEmpty) "from the start: encoded again"
            Expect.equal executors.Discarded [ "output again" ] "the first encode, once"
        finally
            server.DisposeAsync().AsTask().Wait()

/// The default batch stages run item by item; an item that fails leaves the items before it made and unread: they are
/// discarded (on a cluster worker they are freed) before the error goes on.
let ``a batch stage run item by item discards the items it made when a later one fails`` =
    testCase "a batch stage run item by item discards the items it made when a later one fails" <| fun () ->
        let discarded = Collections.Generic.List<obj>()
        let executor =
            { new IStageExecutor with
                member _.Resident = Collections.Generic.HashSet<Stage>() :> Collections.Generic.IReadOnlySet<Stage>
                member _.Unload _ = ()
                member _.Encode(i, _) = if i.Prompt = "bad" then failwith "encoder exploded (test)" else StageOutput(box i.Prompt, 64L)
                member _.Diffuse(_, _, _, _, _) = failwith "not used"
                member _.Decode(_, _, _) = failwith "not used"
                member _.Discard(output: StageOutput) = discarded.Add output.Value
                member _.Dispose() = () }
        let ok = executor.EncodeBatch([| input "a" 4; input "b" 4 |], CancellationToken.None)
        Expect.equal (ok.Value :?> SequentialBatch).Items.Count 2 "a batch that runs keeps every item"
        Expect.isEmpty discarded "and discards nothing"
        Expect.throws (fun () -> executor.EncodeBatch([| input "a" 4; input "b" 4; input "bad" 4; input "c" 4 |], CancellationToken.None) |> ignore) "the failure goes on"
        Expect.sequenceEqual discarded [ box "a"; box "b" ] "the items made before it are discarded, the ones after it never run"

let ``with every device gone, queued requests fail with the reason after the bound, new ones are refused, and a device that joins takes new work`` =
    testCase "with every device gone, queued requests fail with the reason after the bound, new ones are refused, and a device that joins takes new work" <| fun () ->
        let log = ExecutionLog()
        // the one device is lost during the request's diffuse: the request is queued again with no device left
        let server = startServer (ServingSettings(NoDeviceSeconds = 0.5)) 1 (LosingExecutors log)
        try
            let j = server.Submit(input "nowhere" 2, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 j
            Expect.isFalse (server.State.IsOnline 0) "the device is out"
            Expect.equal j.Status JobStatus.Failed "no capacity within the bound"
            Expect.stringContains (j.View().Error) "no device is left in the cluster" "the reason"
            // while no device is in, new work is refused (503 in the API) with the reason, not accepted to fail later
            Expect.stringContains server.NoDevice "no device is in the cluster" "the server says why it is not ready"
            match server.Submit(input "refused" 2, Nullable(), Nullable()) with
            | :? SubmitOutcome.Unavailable as u ->
                Expect.stringContains u.Reason "no device is in the cluster" "the refusal's reason"
                Expect.stringContains u.Reason "left the cluster (test)" "naming why the last device left"
                Expect.isGreaterThanOrEqual u.RetryAfter.TotalSeconds 1.0 "Retry-After"
            | other -> failtestf "a request with no device in the cluster is refused, not %A" other
            let joined = server.JoinNode([| DeviceSpec(0, 0, DeviceKind.Cpu, 1, 0, 8.0) |])
            Expect.equal (joined |> Seq.map (fun d -> d.Id, d.Node) |> List.ofSeq) [ 1, 1 ] "the new device takes the next id and node"
            waitUntil 10.0 "the joined device has its worker" (fun () -> server.Workers.Count = 2 && server.State.IsOnline 1)
            Expect.equal server.Cluster.NodeCount 2 "the cluster has the new node"
            waitUntil 10.0 "the server is ready again" (fun () -> isNull server.NoDevice)
            let k = server.Submit(input "joined" 2, Nullable(), Nullable()) |> accepted
            finishedWithin 30.0 k
            Expect.equal k.Status JobStatus.Succeeded "the joined device serves"
            Expect.contains log.Entries "d1 encode joined" "on the joined device"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``the planners' view renumbers the devices in the cluster node by node and maps plans back`` =
    testCase "the planners' view renumbers the devices in the cluster node by node and maps plans back" <| fun () ->
        let cluster = Cluster.uniform 3 2 48.0<GB> Bandwidths.pcie4Server
        // node 0 gone entirely, device 3 of node 1 gone
        let view = LiveView.Of(cluster, [| false; false; true; false; true; true |])
        let c = view.Cluster
        Expect.equal (c.Devices |> Array.map (fun d -> d.Id.Value, d.Node.Value)) [| 0, 0; 1, 1; 2, 1 |] "dense ids, dense nodes"
        Expect.equal c.NodeCount 2 "nodes with a device left"
        Expect.equal ([ 0..2 ] |> List.map view.Physical) [ 2; 4; 5 ] "back to the physical ids"
        Expect.equal ([ 0..5 ] |> List.map view.ViewOf) [ -1; -1; 0; -1; 1; 2 ] "and forth"
        let at (ds: int list) = { Devices = ds |> List.map DeviceId; Start = 0.0<s>; Finish = 1.0<s> }
        let d = { Request = RequestId 1L; Degree = 2; Vr = V0; Encode = at [ 0 ]; Diffuse = at [ 1; 2 ]; Decode = at [ 2 ]; OnTime = true; Reward = 1.0 }
        let p = view.ToPhysical d
        Expect.equal (p.Encode.Devices, p.Diffuse.Devices, p.Decode.Devices) ([ DeviceId 2 ], [ DeviceId 4; DeviceId 5 ], [ DeviceId 5 ]) "a dispatch over the view runs on the physical devices"
        Expect.equal (LiveView.Of(cluster, Array.create 6 false).Count) 0 "no device left"; Expect.isTrue (obj.ReferenceEquals(LiveView.Of(cluster, Array.create 6 false).Cluster, null)) "no device left: no cluster to plan on"
        Expect.isTrue (LiveView.Of(cluster, Array.create 6 true).Whole) "every device in: the cluster itself"

// ---------------------------------------------------------------------------------------------------------
// Step-boundary preemption (issue 12) in the live loop, on suspendable fake executors
// ---------------------------------------------------------------------------------------------------------

let private preempting (bound: int) = ServingSettings(Preemption = { PreemptionSettings.defaults with MaxSuspensions = bound })

/// The steps a fake executor ran for `prompt`, in order.
let private stepsRun (log: ExecutionLog) (prompt: string) =
    log.Entries
    |> List.choose (fun e ->
        match e.Split(' ') with
        | [| _; "step"; p1; p2; k |] when p1 + " " + p2 = prompt -> Some(int k)
        | _ -> None)

/// One device of fake executors (3 ms steps) with preemption, at most 2 suspensions per request, and its log.
let private preemptingServer () =
    let log = ExecutionLog()
    log, startServer (preempting 2) 1 (FakeExecutors(log, TimeSpan.FromMilliseconds 3.0, TimeSpan.FromMilliseconds 1.0, "fail"))

/// "long one": `steps` steps with a loose deadline (suspending it costs little), once it diffuses; with its events.
let private diffusingLong (server: TridentServer) (steps: int) =
    let long = server.Submit(input "long one" steps, Nullable 3600.0, Nullable()) |> accepted
    let events = long.Subscribe()
    waitUntil 30.0 "the long request diffuses" (fun () -> long.View().Step > 0)
    long, events

let ``a request suspended for an urgent one resumes on its devices, and one cancelled while suspended ends at once`` =
    testCase "a request suspended for an urgent one resumes on its own device after it; one cancelled while suspended ends at once" <| fun () ->
        let log, server = preemptingServer ()
        try
            let long, events = diffusingLong server 300
            // 1 ms deadline: late whatever happens, so the sooner the better; waiting keeps it behind 300 steps
            let urgent = server.Submit(input "urgent one" 100, Nullable 0.001, Nullable()) |> accepted
            finishedWithin 60.0 urgent
            finishedWithin 60.0 long
            Expect.equal urgent.Status JobStatus.Succeeded "the urgent request succeeded"
            Expect.equal long.Status JobStatus.Succeeded "the suspended request succeeded"
            Expect.equal (long.View().Suspensions) 1 "it was suspended once (one urgent request)"
            let steps = stepsRun log "long one"
            Expect.equal steps [ 1..300 ] "every step of it ran once, in order: none lost, none twice"
            Expect.equal (stepsRun log "urgent one") [ 1..100 ] "every step of the urgent one ran once"
            // the urgent request's diffuse ran inside the long one's: between its suspension and its resumption
            let entries = log.Entries
            let resumedAt = entries |> List.findIndex (fun e -> e.StartsWith "d0 diffuse long one" && not (e.EndsWith "from=0"))
            let urgentLast = entries |> List.findIndex (fun e -> e = "d0 step urgent one 100")
            Expect.isLessThan urgentLast resumedAt "the long request resumed after the urgent one's diffuse"
            let mutable seen = []
            let mutable e = Unchecked.defaultof<JobEvent>
            while events.TryRead(&e) do seen <- e :: seen
            let seen = List.rev seen
            let kinds = seen |> List.map _.Kind
            let stop = seen |> List.find (fun x -> x.Kind = JobEventKind.Suspended)
            let go = seen |> List.find (fun x -> x.Kind = JobEventKind.Resumed)
            Expect.equal stop.Status JobStatus.Suspended "the suspended event's status"
            Expect.equal go.Status JobStatus.Diffusing "the resumed event's status"
            Expect.equal go.Step stop.Step "it resumes at the step it stopped at"
            Expect.isLessThan (List.findIndex ((=) JobEventKind.Suspended) kinds) (List.findIndex ((=) JobEventKind.Resumed) kinds) "suspended, then resumed"
            // cancelled while suspended: at once, and none of its steps runs after
            let victim = server.Submit(input "victim one" 300, Nullable 3600.0, Nullable()) |> accepted
            waitUntil 30.0 "the next long request diffuses" (fun () -> victim.View().Step > 0)
            let blocker = server.Submit(input "blocker one" 200, Nullable 0.001, Nullable()) |> accepted
            waitUntil 30.0 "it is suspended" (fun () -> victim.Status = JobStatus.Suspended)
            let before = (stepsRun log "victim one").Length
            Expect.isTrue (server.Cancel victim) "the cancel is accepted"
            Expect.equal victim.Status JobStatus.Cancelled "a suspended job is cancelled at once"
            finishedWithin 60.0 blocker
            Expect.equal blocker.Status JobStatus.Succeeded "the urgent request still succeeds"
            waitUntil 10.0 "the devices are idle" (fun () -> server.Workers |> Seq.forall (fun w -> isNull w.Current && w.QueueLength = 0))
            Expect.equal (stepsRun log "victim one").Length before "no step of the cancelled request ran after the cancel"
        finally
            server.DisposeAsync().AsTask().Wait()

/// Fake executors (FakeExecutor's timings, suspendable) that tell `at` "suspended <prompt>" when a diffuse stops at a
/// step boundary (before its worker reports the stop) and "encode <prompt>" before an encode, and log each output and
/// checkpoint they are told nobody will read ("output <value>", "checkpoint <state>").
type private SuspendObserving(log: ExecutionLog, at: string -> unit) =
    let fakes = FakeExecutors(log, TimeSpan.FromMilliseconds 3.0, TimeSpan.FromMilliseconds 1.0, "fail") :> IStageExecutorFactory
    let discarded = Collections.Concurrent.ConcurrentQueue<string>()
    member _.Discarded = List.ofSeq discarded
    interface IStageExecutorFactory with
        member _.Create device =
            let inner = fakes.Create device
            { new IStageExecutor with
                member _.Resident = inner.Resident
                member _.Unload s = inner.Unload s
                member _.Encode(i, ct) =
                    at ("encode " + i.Prompt)
                    inner.Encode(i, ct)
                member _.Diffuse(i, e, t, o, ct) = inner.Diffuse(i, e, t, o, ct)
                member _.CanSuspend = true
                member _.DiffuseSegment(i, e, t, o, from, suspend, ct) =
                    let segment = inner.DiffuseSegment(i, e, t, o, from, suspend, ct)
                    if not (isNull segment.Suspended) then at ("suspended " + i.Prompt)
                    segment
                member _.Decode(i, l, ct) = inner.Decode(i, l, ct)
                member _.Discard(output: StageOutput) = discarded.Enqueue(sprintf "output %O" output.Value)
                member _.Discard(checkpoint: DiffuseCheckpoint) = discarded.Enqueue(sprintf "checkpoint %O" checkpoint.State)
                member _.Dispose() = inner.Dispose() }

/// A request cancelled while it is suspended never resumes, and its checkpoint and the embeddings kept for its
/// resumption are discarded once each — cancelled as its diffuse stops at the boundary (before its worker reports the
/// stop: the stop was then reported as a cancellation, and the checkpoint never discarded), or once the urgent
/// request's encode runs after it (the stop reported; its resumption queued by the loop or not yet).
let ``a request cancelled as it is suspended has its checkpoint and embeddings discarded once`` =
    testCase "a request cancelled as it is suspended has its checkpoint and embeddings discarded once" <| fun () ->
        for point in [ "suspended long one"; "encode urgent one" ] do
            let log = ExecutionLog()
            let cancel = ref (fun (_: string) -> ())
            let executors = SuspendObserving(log, fun event -> cancel.Value event)
            let server = startServer (preempting 2) 1 executors
            try
                let long, _ = diffusingLong server 300
                cancel.Value <- fun event -> if event = point then Expect.isTrue (server.Cancel long) (point + ": the cancel is accepted")
                let urgent = server.Submit(input "urgent one" 100, Nullable 0.001, Nullable()) |> accepted
                finishedWithin 60.0 long
                Expect.equal long.Status JobStatus.Cancelled (point + ": cancelled, not resumed")
                finishedWithin 60.0 urgent
                Expect.equal urgent.Status JobStatus.Succeeded (point + ": the urgent request succeeded")
                let stoppedAt = long.View().Step
                // (the assertion below says what was discarded if they are not)
                try waitUntil 10.0 "the checkpoint and the embeddings are discarded" (fun () -> executors.Discarded.Length >= 2) with _ -> ()
                // a request after them on the device: every round that could discard them again has run
                let after = server.Submit(input "after one" 2, Nullable(), Nullable()) |> accepted
                finishedWithin 30.0 after
                Expect.equal (List.sort executors.Discarded) [ sprintf "checkpoint %d" stoppedAt; "output long one" ] (point + ": each once")
                Expect.isFalse (log.Entries |> List.exists (fun e -> e.StartsWith "d0 diffuse long one" && not (e.EndsWith "from=0")))
                    (point + ": it never resumed")
            finally
                server.DisposeAsync().AsTask().Wait()

let ``a segment with a resumption queued behind it is suspended for a later urgent request, and the resumption moves behind its own`` =
    testCase "a segment with a resumption queued behind it is suspended for a later urgent one; the queued resumption is withdrawn and runs after the segment's own" <| fun () ->
        let log, server = preemptingServer ()
        try
            let long, events = diffusingLong server 400
            // a first urgent request suspends it; the long one's resumption is queued behind it on the one device
            let first = server.Submit(input "first one" 300, Nullable 0.001, Nullable()) |> accepted
            waitUntil 30.0 "the first urgent request diffuses, the long one suspended" (fun () -> first.View().Step > 0 && long.Status = JobStatus.Suspended)
            // a second one: waiting, it would run after both; suspending the first costs the first its 50 steps only
            let second = server.Submit(input "second one" 50, Nullable 0.001, Nullable()) |> accepted
            for j in [ second; first; long ] do
                finishedWithin 60.0 j
            Expect.equal (second.Status, first.Status, long.Status) (JobStatus.Succeeded, JobStatus.Succeeded, JobStatus.Succeeded) "all succeeded"
            Expect.equal (first.View().Suspensions, long.View().Suspensions, second.View().Suspensions) (1, 1, 0)
                "the first urgent request and the long one suspended once each (a withdrawn resumption is not a suspension)"
            Expect.equal (stepsRun log "long one") [ 1..400 ] "every step of the long request ran once, in order"
            Expect.equal (stepsRun log "first one") [ 1..300 ] "every step of the first urgent request ran once, in order"
            Expect.equal (stepsRun log "second one") [ 1..50 ] "every step of the second ran once"
            let entries = log.Entries
            let resumed prompt = entries |> List.filter (fun e -> e.StartsWith("d0 diffuse " + prompt) && not (e.EndsWith "from=0"))
            Expect.equal (resumed "long one").Length 1 (sprintf "the long request resumed once, its withdrawn resumption ran nothing: %A" (resumed "long one"))
            let at e = entries |> List.findIndex ((=) e)
            let secondLast = at "d0 step second one 50"
            let firstResumed = at (resumed "first one" |> List.exactlyOne)
            let longResumed = at (resumed "long one" |> List.exactlyOne)
            Expect.isLessThan secondLast firstResumed "the second urgent request ran inside the first's diffuse"
            Expect.isLessThan firstResumed longResumed "the long request resumed after the first's resumption, as the simulator orders them"
            let mutable seen = []
            let mutable e = Unchecked.defaultof<JobEvent>
            while events.TryRead(&e) do seen <- e :: seen
            let kinds = List.rev seen |> List.map _.Kind
            Expect.equal (kinds |> List.filter ((=) JobEventKind.Suspended)).Length 1 "one suspended event for the long request"
            Expect.equal (kinds |> List.filter ((=) JobEventKind.Resumed)).Length 1 "one resumed event"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``with ResumeElsewhere a suspended request resumes on the group free first`` =
    testCase "with ResumeElsewhere a request suspended for an urgent one resumes on another group of its degree that frees first, every step once" <| fun () ->
        let log = ExecutionLog()
        let settings = ServingSettings(Preemption = { PreemptionSettings.defaults with MaxSuspensions = 1; ResumeElsewhere = true })
        let server = startServer settings 4 (FakeExecutors(log, TimeSpan.FromMilliseconds 3.0, TimeSpan.FromMilliseconds 1.0, "fail"))
        try
            // the long request (a loose deadline: suspending it costs little) and a shorter late one fill the devices
            let long = server.Submit(input "long one" 300, Nullable 3600.0, Nullable()) |> accepted
            waitUntil 30.0 "the long request diffuses" (fun () -> long.View().Step > 0)
            let group = long.View().Route.Dispatch.Diffuse.Devices |> List.map _.Value
            let short = server.Submit(input "short one" 60, Nullable 0.001, Nullable()) |> accepted
            waitUntil 30.0 "the short request diffuses" (fun () -> short.View().Step > 0)
            let shortGroup = short.View().Route.Dispatch.Diffuse.Devices |> List.map _.Value
            Expect.isTrue (Set.intersect (Set.ofList group) (Set.ofList shortGroup)).IsEmpty "the two run on different devices"
            Expect.equal shortGroup.Length group.Length "of the same degree (both grew to the idle devices)"
            // the urgent one suspends the long one (its loss is the smallest) and runs 200 steps on its devices; the
            // short one's devices free after its 60 steps, long before
            let urgent = server.Submit(input "urgent one" 200, Nullable 0.001, Nullable()) |> accepted
            for j in [ urgent; short; long ] do
                finishedWithin 60.0 j
            Expect.equal (long.View().Suspensions) 1 "the long request was suspended once"
            Expect.equal (urgent.Status, short.Status, long.Status) (JobStatus.Succeeded, JobStatus.Succeeded, JobStatus.Succeeded) "all succeeded"
            Expect.equal (stepsRun log "long one") [ 1..300 ] "every step of it ran once, in order"
            let resumedOn =
                log.Entries
                |> List.pick (fun e ->
                    match e.Split(' ') with
                    | [| d; "diffuse"; "long"; "one"; _; from |] when from <> "from=0" -> Some(int (d.Substring 1))
                    | _ -> None)
            Expect.isFalse (List.contains resumedOn group) (sprintf "resumed on device %d, outside its own group %A (the urgent work's)" resumedOn group)
            Expect.isTrue (List.contains resumedOn shortGroup) "on the group that freed first"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``with preemption a late image's decode runs between two tiles of a video decode on the decode device`` =
    testCase "with preemption a late image's decode is expedited into a running video decode on the ⟨C⟩ device, and every request succeeds" <| fun () ->
        // hunyuanvideo emulated at a 0.1 time scale on one node of eight 48 GB devices: the placement for these videos
        // and images is seven ⟨ED⟩ and one ⟨C⟩ device, so every decode runs on the ⟨C⟩ one; a 720×1280×33 video
        // decode takes 1.27 s there in 3 tiles of 12 frames, a 960×544 image's 0.07 s
        let scale = 0.1
        let profile = Trident.Runtime.Devices.EmulatedProfile.Scaled(ReferenceProfiles.hunyuanvideo, scale)
        let cost = CostModel.create CostSettings.defaults profile
        let video = { Height = 720; Width = 1280; Frames = 33 }
        let image = { Height = 544; Width = 960; Frames = 1 }
        let mix =
            { Classes = [ { Shape = video; Steps = 50; Share = 0.3 }; { Shape = image; Steps = 50; Share = 0.7 } ]
              ArrivalRate = 0.01 }
        // no re-placement while the test runs (it would need 10⁶ arrivals)
        let settings =
            ServingSettings(Preemption = PreemptionSettings.defaults, Monitor = Trident.Runtime.Monitoring.MonitorSettings(60.0, 1.5, 30.0, 1000000, 0.1))
        let setup = ServerSetup(DeviceLayout.Emulated(8, 8, 48.0), profile, CostSettings.defaults, EmulatedStageExecutorFactory(cost, 25e9, scale), settings, mix)
        let server = TridentServer.Start(setup, NullLoggerFactory.Instance, TimeProvider.System)
        try
            let types = server.InitialPlacement.Types |> Map.toList |> List.map (snd >> PlacementType.name)
            Expect.equal (types |> List.filter ((=) "C")).Length 1 (sprintf "one ⟨C⟩ device (placement %A)" types)
            let request (shape: Shape) seed = GenerationInput("a harbour", null, shape.Width, shape.Height, shape.Frames, 2, seed, 6.0)
            let videos = [ for i in 1..3 -> server.Submit(request video (uint64 i), Nullable 3600.0, Nullable()) |> accepted ]
            waitUntil 60.0 "a video decodes" (fun () -> videos |> List.exists (fun v -> v.Status = JobStatus.Decoding || Job.IsTerminalStatus v.Status))
            for v in videos do Expect.isFalse (Job.IsTerminalStatus v.Status) (sprintf "video %d ended %A before decoding: %s" v.Id.Value v.Status (v.View().Error))
            let decoding = videos |> List.find (fun v -> v.Status = JobStatus.Decoding)
            // a 1 ms deadline: late whatever happens, so the sooner the better, and waiting means the videos decode first
            let late = server.Submit(request image 9UL, Nullable 0.001, Nullable()) |> accepted
            for j in late :: videos do finishedWithin 60.0 j
            for j in late :: videos do Expect.equal j.Status JobStatus.Succeeded "every request succeeds"
            let imageDecode, videoDecode = late.View().Decode, decoding.View().Decode
            Expect.isGreaterThan imageDecode.Start.Value videoDecode.Start.Value "the image's decode started after the video's"
            Expect.isLessThan imageDecode.Finish.Value videoDecode.Finish.Value "and ended before it: it ran between two of its tiles"
            let decided = server.State.DecodePreemptions |> Seq.filter (fun x -> x.Urgent = late.Id.Value) |> List.ofSeq
            Expect.equal (decided |> List.map (fun x -> Option.ofNullable x.Paused)) [ Some decoding.Id.Value ] "the decision is listed, naming the paused video"
        finally
            server.DisposeAsync().AsTask().Wait()

let ``with preemption every request is served once: a suspended request is never lost or run twice`` =
    testProp 6 "with preemption on, every request succeeds and runs each of its steps exactly once, within the suspension bound" <| fun () ->
        Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.choose (1, 3)) (Gen.choose (1, 3)) (Gen.choose (1, 2)))) (fun (urgents, bound, devices) ->
            let log = ExecutionLog()
            let server = startServer (preempting bound) devices (FakeExecutors(log, TimeSpan.FromMilliseconds 2.0, TimeSpan.FromMilliseconds 1.0, "fail"))
            try
                let longs = [ for i in 1..devices -> server.Submit(input (sprintf "long %d" i) 200, Nullable 3600.0, Nullable()) |> accepted ]
                waitUntil 30.0 "a long request diffuses" (fun () -> longs.Head.View().Step > 0)
                let us = [ for i in 1..urgents -> server.Submit(input (sprintf "urgent %d" i) 20, Nullable 0.001, Nullable()) |> accepted ]
                let all = longs @ us
                for j in all do
                    finishedWithin 60.0 j
                all
                |> List.map (fun j ->
                    let prompt = j.Input.Prompt
                    (j.Status = JobStatus.Succeeded |> Prop.label (sprintf "%s succeeded" prompt))
                    .&. (stepsRun log prompt = [ 1 .. j.Input.Steps ] |> Prop.label (sprintf "%s ran each step once, in order" prompt))
                    .&. (j.View().Suspensions <= bound |> Prop.label (sprintf "%s was suspended at most %d times" prompt bound)))
                |> List.reduce (.&.)
                // not vacuous: an urgent request that waiting makes late always suspends a long one here
                |> (.&.) (longs |> List.sumBy (fun j -> j.View().Suspensions) >= 1 |> Prop.label "a long request was suspended")
            finally
                server.DisposeAsync().AsTask().Wait())

[<Tests>]
let tests =
    testList "integration" [ testList "ServingTests" [
        ``with preemption a late image's decode runs between two tiles of a video decode on the decode device``
        ``a request suspended for an urgent one resumes on its devices, and one cancelled while suspended ends at once``
        ``with preemption every request is served once: a suspended request is never lost or run twice``
        ``a segment with a resumption queued behind it is suspended for a later urgent request, and the resumption moves behind its own``
        ``with ResumeElsewhere a suspended request resumes on the group free first``
        ``busy-until never calls a device with work in flight free, and calls every idle device free``
        ``a decode device's schedule holds a decode aside until its latents are due``
        ``a device's schedule runs every queued task once, in order, from its busy-until``
        ``a snapshot read back from its JSON is the same round and gets the same plan``
        ``a snapshot document with a missing field or a wrong type names where``
        ``a snapshot document with a priority out of range is refused naming the request; -3 to 3 and null load``
        ``the round written for the snapshot tests loads``
        ``a snapshot document of another format or version is refused alone, naming the versions read``
        ``a snapshot document whose devices disagree across cluster, busy_until, placement, bookings and idle_until is refused``
        ``a snapshot document whose devices and nodes disagree is refused``
        ``a snapshot document with a request the planner cannot plan is refused naming the request and the field``
        ``a snapshot document with settings the planner cannot plan with is refused naming each``
        ``a snapshot document with unknown fields, a completed stage of no request, or a bad recorded plan is refused``
        ``a snapshot document with several problems reports them all at once``
        ``the job store refuses new jobs only when full of active ones, and evicts finished jobs after their retention``
        ``a request goes through encode, diffuse and decode on the planned devices and yields a PNG``
        ``a failing stage fails only its own request, with the error``
        ``a full queue refuses with a retry time and every accepted request is served``
        ``cancelling a queued job cancels it at once and a running one at its next step``
        ``the live loop evaluates Adjust-on-Dispatch over its monitor as the simulator does, and a new placement reaches the workers``
        ``a DELETE racing a job's decode either ends it cancelled with no result or is refused and it succeeds, never both``
        ``a cancelled job reports timings only for the stages that ran, at every cancel point``
        ``a refusal's Retry-After is the queue's predicted drain time, not the refused request's own cost``
        ``draining refuses new work, lets running jobs finish, and cancels what is left at the drain time with a final event``
        ``at the drain time each cancelled job is logged with the state it was in, queued or running``
        ``a session that failed to load is loaded again by the next task, so restoring the model file heals the server``
        ``with a round period longer than the test every request is served: rounds never wait for the period``
        ``before the server is ready its loop has planned the dispatch path once, leaving no trace, and the first request goes in the round it triggers``
        ``a request whose work is lost with a device is re-queued from its last completed stage and succeeds on the devices left``
        ``a request that fails after its last re-queue has the output it kept discarded``
        ``a queued request cancelled while it waits to resume has the output it kept discarded once``
        ``a request waiting to resume that fails because no device is left has the output it kept discarded once``
        ``a request whose resuming dispatch fails has the output it kept discarded once``
        ``a request re-queued from the start has the output it kept discarded once``
        ``a request cancelled as it is suspended has its checkpoint and embeddings discarded once``
        ``with every device gone, queued requests fail with the reason after the bound, new ones are refused, and a device that joins takes new work``
    ] |> testSequenced ]

let ``a device seated at a gang that has not started is held idle until the gang's predicted start`` =
    testCase "a device seated at a gang that has not started is held idle until the gang's predicted start, and no longer once it runs" <| fun () ->
        // d1 runs a 10 s task since 0 s; a 4 s gang led by d0 with a Reserve on d1 queued behind it; d0 has taken its lead
        let ledger = DeviceLedger(2)
        let noProgress = { new IStepObserver with member _.StepCompleted(_, _) = () }
        ledger.Enqueued(1, EncodeTask(1L, RequestId 1L, 10.0, CancellationToken.None, input "busy" 1))
        ledger.Started(1, 1L, 0.0)
        let seat = System.Threading.Tasks.TaskCompletionSource()
        let gate = GangGate(2L, [| seat |])
        let embeddings = System.Threading.Tasks.Task.FromResult(StageOutput(box "e", 1L))
        let lead = DiffuseTask(2L, RequestId 2L, 4.0, CancellationToken.None, input "gang" 4, embeddings, 2, 2, [| seat |], noProgress, Gate = gate)
        ledger.Enqueued(0, lead)
        ledger.Enqueued(1, ReserveTask(3L, RequestId 2L, 4.0, CancellationToken.None, seat, lead.Result.Task, Gate = gate))
        ledger.Started(0, 2L, 1.0)
        Expect.floatClose Accuracy.high (ledger.GangStarts(2.0).[2L]) 10.0 "the gang starts when d1 reaches it"
        Expect.equal (ledger.IdleUntil(2.0) |> Seq.map (fun kv -> kv.Key, kv.Value) |> List.ofSeq) [ 0, 10.0 ] "d0 is held idle until then"
        Expect.floatClose Accuracy.high (ledger.BusyUntil(0, 2.0)) 14.0 "d0's busy-until is the gang's end"
        Expect.floatClose Accuracy.high (ledger.BusyUntil(1, 2.0)) 14.0 "d1's too"
        // a backfill on d0 (3 s, through its lane): ahead of the gang; d0 is no longer idle
        ledger.EnqueuedAhead(0, EncodeTask(4L, RequestId 4L, 3.0, CancellationToken.None, input "backfill" 1))
        Expect.isEmpty (ledger.IdleUntil(2.0)) "a device with a backfill is not idle"
        Expect.floatClose Accuracy.high (ledger.BusyUntil(0, 2.0)) 14.0 "the gang still ends at 14 s"
        ledger.Started(0, 4L, 2.0)
        ledger.Finished(0, 4L)
        Expect.equal (ledger.IdleUntil(3.0) |> Seq.map (fun kv -> kv.Key, kv.Value) |> List.ofSeq) [ 0, 10.0 ] "idle again after the backfill"
        // the gang starts (d1 done): nothing is held idle, the gang runs from its start
        ledger.Finished(1, 1L)
        ledger.Started(1, 3L, 10.0)
        ledger.GangRunning 2L
        Expect.isEmpty (ledger.IdleUntil(11.0)) "no device is held idle once the gang runs"
        Expect.isEmpty (ledger.GangStarts 11.0) "no gang waits"
        Expect.floatClose Accuracy.high (ledger.BusyUntil(1, 11.0)) 14.0 "d1 runs the gang from 10 s"

[<Tests>]
let unitTests =
    testList "unit" [ testList "ServingTests" [
        ``a device seated at a gang that has not started is held idle until the gang's predicted start``
        ``an expedited decode goes first, inside the running decode it pauses``
        ``a cancel and a success racing on one job: exactly one wins, and an accepted cancel never leaves a result``
        ``the planners' view renumbers the devices in the cluster node by node and maps plans back``
        ``a batch stage run item by item discards the items it made when a later one fails``
    ] ]
