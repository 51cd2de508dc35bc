namespace Trident.Scheduling

// Design note. Text outputs of the simulator, as pure functions: the summary as an aligned table,
// CSV or JSON; per-request CSV; the fair latency statistics of compared runs; chart data (series
// of points that the shell draws with ScottPlot). Numbers are printed with the invariant culture.
//
// Fair statistics. A policy whose largest requests run out of memory looks fast when its latency
// is measured over the requests it completed. Compared runs of one trace are therefore measured
// (1) over the common set — the requests that every compared run completed — and (2) over all
// requests, a request a run did not complete (out of memory, unserved) counting as a miss of
// infinite latency: a percentile is ∞ when more than its share missed, the mean is ∞ when any did.
// Each run's own "completed only" statistics stay in `Summary`, labelled as such in reports.

open System
open System.Globalization
open System.Text
open System.Text.Json

/// Latency statistics over a set of requests, in seconds (NaN when the set is empty; +∞ where
/// misses decide it).
type LatencyStats =
    { Count: int
      /// requests of the set the run did not complete (counted as +∞)
      Missed: int
      Mean: float
      P50: float
      P95: float
      P99: float }

/// One run's latency among compared runs of the same trace.
type FairStats =
    { Policy: string
      Params: string
      /// over the requests every compared run completed
      Common: LatencyStats
      /// over all requests, misses (out of memory, unserved) as +∞
      All: LatencyStats
      /// over the common set: the wait from arrival to the request's first stage starting (the
      /// rest of its latency is its own run time, transfers and loads at the degree it ran at)
      CommonWait: LatencyStats }

/// A chart as data: the shell draws it (ScottPlot) as `File`.svg and `File`.png.
type Chart =
    { File: string
      Title: string
      XLabel: string
      YLabel: string
      /// logarithmic x axis (positive x only)
      XLog: bool
      YRange: (float * float) option
      /// draw as a step function (CDFs)
      Step: bool
      Series: (string * (float * float) list) list }

module Chart =
    /// For each series of the chart, in order, its name and the name of the first earlier series with exactly the
    /// same points, if any: two policies with identical results (B1 at its best degree and B3 when the best fixed
    /// degree is k*) draw one line, the later hiding the earlier, so the shell labels the later "NAME (= EARLIER)" and
    /// dashes it. Series without points have no twin.
    let twins (chart: Chart) : (string * string option) list =
        chart.Series
        |> List.mapi (fun i (name, points) ->
            let twin =
                if List.isEmpty points then None
                else chart.Series |> List.take i |> List.tryFind (fun (_, earlier) -> earlier = points) |> Option.map fst
            name, twin)

module Fair =
    /// Statistics of latencies (+∞ for a miss).
    let stats (latencies: float array) : LatencyStats =
        let sorted = Array.sort latencies
        let missed = sorted |> Array.sumBy (fun x -> if Double.IsPositiveInfinity x then 1 else 0)
        { Count = sorted.Length
          Missed = missed
          Mean = (if sorted.Length = 0 then nan elif missed > 0 then infinity else Array.average sorted)
          P50 = Simulator.percentile sorted 0.50
          P95 = Simulator.percentile sorted 0.95
          P99 = Simulator.percentile sorted 0.99 }

    /// The ids every run completed (runs of one trace).
    let commonSet (runs: SimResult list) : Set<RequestId> =
        match runs with
        | [] -> Set.empty
        | _ ->
            runs
            |> List.map (fun r -> r.Records |> Array.choose (fun x -> x.Latency |> Option.map (fun _ -> x.Request.Id)) |> Set.ofArray)
            |> Set.intersectMany

    /// The fair statistics of each run (same order), and the size of the common set.
    let ofRuns (runs: SimResult list) : int * FairStats list =
        let common = commonSet runs
        common.Count,
        runs
        |> List.map (fun r ->
            let lat (x: RequestRecord) = x.Latency |> Option.map float |> Option.defaultValue infinity
            let wait (x: RequestRecord) =
                match x.Encode, x.Diffuse with
                | Some e, _ -> float (e.Start - x.Request.Arrival)
                | None, Some d -> float (d.Start - x.Request.Arrival)
                | _ -> infinity
            let inCommon = r.Records |> Array.filter (fun x -> common.Contains x.Request.Id)
            { Policy = r.Policy
              Params = r.Params
              Common = inCommon |> Array.map lat |> stats
              All = r.Records |> Array.map lat |> stats
              CommonWait = inCommon |> Array.map wait |> stats })

/// One run's images and videos apart (mixed workloads): attainment (0..1) and P95 latency (s, ∞
/// when a class's P95 request did not complete) of each class.
type ClassStats =
    { ImagesAttainment: float
      ImagesP95: float
      VideosAttainment: float
      VideosP95: float }

module Report =
    let private inv = CultureInfo.InvariantCulture
    let private f (digits: int) (x: float) = if Double.IsNaN x then "" else x.ToString("F" + string digits, inv)

    let private g (digits: int) (x: float) = if Double.IsPositiveInfinity x then "inf" else f digits x

    /// The summary columns: name and value of each, as printed. The headline latencies are the fair
    /// ones (`common_*`: over the requests every compared run completed; `all_*`: over all requests,
    /// a miss as ∞, printed `inf`); `completed_*` are over this run's completed requests only.
    let columns (s: Summary, fair: FairStats) : (string * string) list =
        [ "policy", s.Policy
          "params", s.Params
          "slo_attainment", f 3 s.SloAttainment
          "common_mean_s", g 1 fair.Common.Mean
          "common_p50_s", g 1 fair.Common.P50
          "common_p95_s", g 1 fair.Common.P95
          "common_p99_s", g 1 fair.Common.P99
          "all_p50_s", g 1 fair.All.P50
          "all_p95_s", g 1 fair.All.P95
          "completed_mean_s", f 1 (float s.MeanLatency)
          "completed_p95_s", f 1 (float s.P95Latency)
          "on_time", string s.OnTime
          "late", string s.Late
          "oom", string s.OutOfMemory
          "unserved", string s.Unserved
          "utilisation", f 3 s.Utilisation
          "replacements", string s.Replacements
          "loads", string s.Loads
          "rounds", string s.Rounds
          "mip_share", f 3 s.MipShare
          "solve_p50_ms", f 1 (1000.0 * float s.SolveP50)
          "solve_p95_ms", f 1 (1000.0 * float s.SolveP95)
          "solve_max_ms", f 1 (1000.0 * float s.SolveMax) ]

    /// The rows of compared runs: each run's summary with its fair statistics.
    let rows (runs: SimResult list) : (Summary * FairStats) list =
        let _, fair = Fair.ofRuns runs
        List.zip (runs |> List.map _.Summary) fair

    /// Columns padded to their widest cell: the first two left-aligned, the rest right-aligned.
    let private aligned (header: string list) (cells: string list list) =
        let widths =
            header |> List.mapi (fun i h -> (h.Length :: (cells |> List.map (fun c -> c.[i].Length))) |> List.max)
        let line (xs: string list) =
            xs
            |> List.mapi (fun i x -> if i < 2 then x.PadRight widths.[i] else x.PadLeft widths.[i])
            |> fun xs -> String.Join("  ", xs).TrimEnd()
        let sb = StringBuilder()
        sb.AppendLine(line header) |> ignore
        for c in cells do
            sb.AppendLine(line c) |> ignore
        sb.ToString()

    /// An aligned text table (numbers right-aligned).
    let table (rows: (Summary * FairStats) list) =
        match rows with
        | [] -> ""
        | first :: _ ->
            aligned (columns first |> List.map fst) (rows |> List.map (columns >> List.map snd))

    /// SLO attainment and P95 latency (s) over a group of requests (a request not completed counts as ∞).
    let private attainmentAndP95 (rs: RequestRecord array) =
        let onTime = rs |> Array.sumBy (fun r -> if r.Outcome = OnTime then 1 else 0)
        let lat = rs |> Array.map (fun r -> r.Latency |> Option.map float |> Option.defaultValue infinity) |> Array.sort
        float onTime / float rs.Length, Simulator.percentile lat 0.95

    /// Images (one frame) and videos apart, for a run that mixes them: each class's SLO attainment
    /// and P95 latency over all its requests (a request not completed counts as ∞); None when the
    /// run holds one class only.
    let classStats (run: SimResult) : ClassStats option =
        let isVideo (r: RequestRecord) = r.Request.Shape.Frames > 1
        if run.Records |> Array.forall isVideo || run.Records |> Array.forall (isVideo >> not) then None
        else
            let cls video = run.Records |> Array.filter (fun r -> isVideo r = video) |> attainmentAndP95
            let ia, ip = cls false
            let va, vp = cls true
            Some { ImagesAttainment = ia; ImagesP95 = ip; VideosAttainment = va; VideosP95 = vp }

    /// Images and videos apart, for workloads that mix them (`classStats` per policy), with the
    /// suspensions and decode pauses (preemption). "" when the runs hold one class only.
    let classTable (runs: SimResult list) =
        match runs |> List.choose (fun run -> classStats run |> Option.map (fun c -> run, c)) with
        | [] -> ""
        | rows ->
            let header = [ "policy"; "params"; "images_attainment"; "images_p95_s"; "videos_attainment"; "videos_p95_s"; "suspensions"; "decode_pauses"; "initial_placement" ]
            let placement (run: SimResult) =
                PlacementPlan.counts run.InitialPlacement |> Map.toList |> List.map (fun (t, n) -> sprintf "%O×%d" t n) |> String.concat " "
            let cells =
                [ for run, c in rows ->
                      [ run.Policy; run.Params; f 3 c.ImagesAttainment; g 1 c.ImagesP95; f 3 c.VideosAttainment; g 1 c.VideosP95
                        string run.Summary.Suspensions; string run.Summary.DecodePauses; placement run ] ]
            aligned header cells

    /// Each priority level apart, for runs whose requests carry priorities (docs/policies.md, "Priority"):
    /// per policy and level (highest first), the requests, SLO attainment and P95 latency over all of that
    /// level's requests (a request not completed counts as ∞). "" when no request has a priority.
    let priorityTable (runs: SimResult list) =
        let level (r: RequestRecord) = Priority.level r.Request.Priority
        if runs |> List.forall (fun run -> run.Records |> Array.forall (fun r -> r.Request.Priority.IsNone)) then ""
        else
            let header = [ "policy"; "params"; "priority"; "requests"; "attainment"; "p95_s" ]
            let cells =
                [ for run in runs do
                      for lv, rs in run.Records |> Array.groupBy level |> Array.sortBy (fun (lv, _) -> -lv) do
                          let attainment, p95 = attainmentAndP95 rs
                          yield [ run.Policy; run.Params; string lv; string rs.Length; f 3 attainment; g 1 p95 ] ]
            aligned header cells

    let private csvCell (s: string) =
        if s.IndexOfAny([| ','; '"'; '\n' |]) >= 0 then "\"" + s.Replace("\"", "\"\"") + "\"" else s

    /// CSV with a header.
    let csv (rows: (Summary * FairStats) list) =
        match rows with
        | [] -> ""
        | first :: _ ->
            let sb = StringBuilder()
            sb.AppendLine(String.Join(",", columns first |> List.map fst)) |> ignore
            for r in rows do
                sb.AppendLine(String.Join(",", columns r |> List.map (snd >> csvCell))) |> ignore
            sb.ToString()

    /// A JSON array of objects (numbers as numbers, NaN as null, ∞ as the string "inf").
    let json (rows: (Summary * FairStats) list) =
        use ms = new IO.MemoryStream()
        (use w = new Utf8JsonWriter(ms, JsonWriterOptions(Indented = true))
         w.WriteStartArray()
         for r in rows do
             w.WriteStartObject()
             for (name, value) in columns r do
                 match name with
                 | "policy"
                 | "params" -> w.WriteString(name, value)
                 | _ when value = "" -> w.WriteNull(name)
                 | _ when value = "inf" -> w.WriteString(name, value)
                 | _ -> w.WriteNumber(name, Double.Parse(value, inv))
             w.WriteEndObject()
         w.WriteEndArray())
        Encoding.UTF8.GetString(ms.ToArray()) + "\n"

    /// Per-request records as CSV: one row per request (times in seconds from the trace's start); `suspensions`
    /// and `decode_pauses` count its preemptions, `diffuse_segments` lists its diffuse tasks in order as
    /// `start-finish:steps@devices` separated by `;` (one per suspension more than one; empty when never run);
    /// `detail` says what an out-of-memory task needed, and why an unserved request's shape cannot be served by any
    /// placement of the cluster when it cannot (CostModel.unservableOn; empty for one that merely never ran).
    let requestsCsv (result: SimResult) =
        let sb = StringBuilder()
        sb.AppendLine
            "id,arrival_s,deadline_s,height,width,frames,steps,dispatched_s,degree,vr,encode_start_s,encode_finish_s,diffuse_start_s,diffuse_finish_s,decode_start_s,decode_finish_s,finish_s,latency_s,outcome,diffuse_devices,suspensions,decode_pauses,diffuse_segments,detail"
        |> ignore
        let t (x: float<s>) = (float x).ToString("F3", inv)
        let opt g = Option.map g >> Option.defaultValue ""
        for r in result.Records do
            let q = r.Request
            let detail =
                match r.Outcome with
                | OutOfMemory(stage, d, need, memory) -> sprintf "%s on %O needs %.1f GB of %.1f GB" (Stage.letter stage) d (float need) (float memory)
                | Unserved -> r.Unservable |> Option.defaultValue ""
                | _ -> ""
            let cells =
                [ string q.Id.Value
                  t q.Arrival
                  t q.Deadline
                  string q.Shape.Height
                  string q.Shape.Width
                  string q.Shape.Frames
                  string q.Steps
                  r.Dispatched |> opt t
                  r.Degree |> opt string
                  r.Vr |> opt (sprintf "%A")
                  r.Encode |> opt (fun x -> t x.Start)
                  r.Encode |> opt (fun x -> t x.Finish)
                  r.Diffuse |> opt (fun x -> t x.Start)
                  r.Diffuse |> opt (fun x -> t x.Finish)
                  r.Decode |> opt (fun x -> t x.Start)
                  r.Decode |> opt (fun x -> t x.Finish)
                  r.Finish |> opt t
                  r.Latency |> opt t
                  Outcome.name r.Outcome
                  r.Diffuse |> opt (fun x -> String.Join(" ", x.Devices |> List.map string))
                  string r.Suspensions
                  string r.DecodePauses
                  String.Join(
                      ";",
                      r.Segments
                      |> List.map (fun x -> sprintf "%s-%s:%d@%s" (t x.Start) (t x.Finish) x.Steps (String.Join(" ", x.Devices |> List.map string)))
                  )
                  detail ]
            sb.AppendLine(String.Join(",", cells |> List.map csvCell)) |> ignore
        sb.ToString()

    /// The latency CDF of a run over all its requests: (latency, share of all requests finished
    /// within it), at most `points` points; a request not completed never counts, so the curve ends
    /// at the run's completed share.
    let latencyCdf (result: SimResult) (points: int) =
        let lat = result.Records |> Array.choose (fun r -> r.Latency |> Option.map float) |> Array.sort
        let n = lat.Length
        if n = 0 then []
        else
            let step = max 1 (n / points)
            [ for i in 0..step .. n - 1 -> lat.[i], float (i + 1) / float result.Records.Length
              yield lat.[n - 1], float n / float result.Records.Length ]

