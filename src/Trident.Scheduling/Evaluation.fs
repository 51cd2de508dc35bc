namespace Trident.Scheduling

// Design note. The paper-style evaluation matrix and its report, as data and text:
//   * reference: the four reference workloads at 128 devices (16 nodes × 8), every policy;
//   * rate: a request-rate sweep on flux and cogvideox;
//   * slo: an SLO-scale sweep on flux and cogvideox at their reference rates.
// The caller runs each point's policies with the simulator (timing them, possibly in parallel) and
// hands the results to `condense`, which keeps what the report needs (summaries, latency CDFs,
// utilisation over time for B1 and Trident) so that a long matrix does not hold every record.
// `report` writes the markdown and the SVG charts; every number in them comes from the runs.
// `--quick` runs fewer requests per workload and fewer sweep points, and the report says so.

open System
open System.Globalization
open System.Text

/// One point of the matrix.
type EvalPoint =
    {
      /// "reference", "rate" or "slo"
      Group: string
      Workload: WorkloadSpec
      Settings: ExperimentSettings
      /// the swept value: the rate (rate), the SLO scale (slo), the rate (reference)
      Value: float }

/// What the report keeps of one point.
type EvalResult =
    { Point: EvalPoint
      /// one row per policy, B1 at its best degree
      Rows: Summary list
      /// B1 at every degree
      B1: Summary list
      /// latency CDF per policy (reference points only)
      Cdfs: (string * (float * float) list) list
      /// utilisation over time (bin start, share busy) for B1 (best degree) and Trident
      Utilisation: (string * (float * float) list) list
      /// Trident's re-placements
      Replacements: ReplacementRecord list
      /// wall-clock seconds of the simulations (measured by the caller)
      Wall: float }

module Evaluation =
    let private inv = CultureInfo.InvariantCulture

    let referenceNames = [ "flux-reference"; "cogvideox-reference"; "hunyuanvideo-reference"; "sd3-reference" ]

    let private spec name = Workload.references |> List.find (fun w -> w.Name = name)

    /// The swept rates (requests per second).
    let rates (quick: bool) (model: string) =
        match model, quick with
        | "flux", false -> [ 1.5; 2.25; 3.0; 3.75; 4.5 ]
        | "flux", true -> [ 1.5; 3.0; 4.5 ]
        | _, false -> [ 0.75; 1.0; 1.25; 1.5; 1.75 ]
        | _, true -> [ 0.75; 1.25; 1.75 ]

    /// The swept SLO scales.
    let sloScales (quick: bool) = if quick then [ 2.0; 4.0; 8.0 ] else [ 2.0; 3.0; 4.0; 6.0; 8.0 ]

    /// The matrix. Quick: a third of the requests per workload and fewer sweep points.
    let matrix (quick: bool) (settings: ExperimentSettings) : EvalPoint list =
        let scale (w: WorkloadSpec) = if quick then { w with Count = max 100 (w.Count / 3) } else w
        [ for name in referenceNames do
              let w = scale (spec name)
              yield { Group = "reference"; Workload = w; Settings = settings; Value = w.Rate }
          for name in [ "flux-reference"; "cogvideox-reference" ] do
              let w = scale (spec name)
              for rate in rates quick w.Model do
                  // the same trace length in time: count scales with the rate
                  let count = int (round (float w.Count * rate / w.Rate))
                  yield { Group = "rate"; Workload = { w with Rate = rate; Count = count }; Settings = settings; Value = rate }
          for name in [ "flux-reference"; "cogvideox-reference" ] do
              let w = scale (spec name)
              for slo in sloScales quick do
                  yield { Group = "slo"; Workload = w; Settings = { settings with SloScale = slo; ReferenceDeadline = false }; Value = slo } ]

    /// A row's display name: the policy, with B1's second row (its best fixed degree) told apart.
    let label (s: Summary) =
        if s.Policy = "B1" && s.Params.Contains "best fixed degree" then "B1 (best k)" else s.Policy

    /// Keeps what the report needs of one point's results (every policy, B1 at every degree).
    let condense (point: EvalPoint) (config: SimConfig) (b1Default: int) (results: SimResult list) (wall: float) : EvalResult =
        let rows, b1 = Experiment.collapse b1Default results
        let reference = point.Group = "reference"
        { Point = point
          Rows = rows |> List.map _.Summary
          B1 = b1 |> List.map _.Summary
          Cdfs = if reference then rows |> List.map (fun r -> label r.Summary, Report.latencyCdf r 200) else []
          Utilisation =
            if reference then
                rows
                |> List.filter (fun r -> r.Policy = "Trident" || obj.ReferenceEquals(r, rows |> List.find (fun x -> x.Policy = "B1")))
                |> List.map (fun r ->
                    let bin = max 10.0<s> (r.Summary.Span / 200.0)
                    label r.Summary, Simulator.utilisationSeries config r bin |> Array.map (fun (t, u) -> float t, u) |> List.ofArray)
            else []
          Replacements = rows |> List.filter (fun r -> r.Policy = "Trident") |> List.collect (fun r -> List.ofArray r.Replacements)
          Wall = wall }

    // ---- the report ----------------------------------------------------------------------------

    let private f (d: int) (x: float) = if Double.IsNaN x then "–" else x.ToString("F" + string d, inv)

    let private row (cells: string list) = "| " + String.Join(" | ", cells) + " |"

    let private summaryTable (rows: Summary list) =
        [ yield row [ "policy"; "params"; "SLO attainment"; "mean s"; "P50 s"; "P95 s"; "P99 s"; "OOM"; "unserved"; "utilisation"; "re-placements"; "rounds"; "MIP share"; "solve P95 ms" ]
          yield row [ "---"; "---"; "---:"; "---:"; "---:"; "---:"; "---:"; "---:"; "---:"; "---:"; "---:"; "---:"; "---:"; "---:" ]
          for s in rows ->
              row
                  [ (if s.Policy = "Trident" then "**Trident**" else label s)
                    s.Params
                    f 3 s.SloAttainment
                    f 1 (float s.MeanLatency)
                    f 1 (float s.P50Latency)
                    f 1 (float s.P95Latency)
                    f 1 (float s.P99Latency)
                    string s.OutOfMemory
                    string s.Unserved
                    f 3 s.Utilisation
                    string s.Replacements
                    string s.Rounds
                    f 3 s.MipShare
                    f 1 (1000.0 * float s.SolveP95) ] ]

    let private bestBaseline (rows: Summary list) =
        rows
        |> List.filter (fun s -> s.Policy <> "Trident")
        |> List.sortBy (fun s -> -s.SloAttainment, float s.MeanLatency)
        |> List.tryHead

    let private trident (rows: Summary list) = rows |> List.tryFind (fun s -> s.Policy = "Trident")
    let private b1 (rows: Summary list) = rows |> List.tryFind (fun s -> s.Policy = "B1")

    let private ratio (a: float) (b: float) = if b > 0.0 && not (Double.IsNaN a) then a / b else nan

    /// Published B1 → TridentServe numbers (128 L20 GPUs): attainment, P95 seconds.
    let published =
        [ "sd3-reference", (0.24, 0.95, 99.0, 28.0)
          "cogvideox-reference", (0.15, 0.86, 550.0, 230.0) ]
        |> Map.ofList

    /// The report: (file name, text) for the markdown and each chart.
    let report (command: string) (date: string) (quick: bool) (totalWall: float) (results: EvalResult list) : (string * string) list =
        let md = StringBuilder()
        let add (s: string) = md.Append(s).Append('\n') |> ignore
        let files = ResizeArray<string * string>()
        let refs = results |> List.filter (fun r -> r.Point.Group = "reference")
        let settings = match results with r :: _ -> r.Point.Settings | [] -> ExperimentSettings.defaults
        add "# Trident — simulated evaluation"
        add ""
        add (sprintf "Produced by `%s` on %s, in %.0f s of wall-clock time (simulations only: %.0f s)." command date totalWall (results |> List.sumBy _.Wall))
        if quick then
            add ""
            add "**Reduced matrix (`--quick`)**: a third of the requests of each workload and three points per sweep. Run `./trident evaluate` without `--quick` for the full matrix."
        add ""
        add "Every number below comes from the discrete-event simulator (`src/Trident.Scheduling/Simulator.fs`) driving the same planners and cost model as the server. Diffuse latencies are the reference implementation's measurements; encode/decode latency and all memory figures are documented estimates (`docs/reference-profiles.md`), so absolute numbers are the model's, not a GPU's."
        add ""
        add "## Setup"
        add ""
        add (sprintf "- Cluster: %d devices = %d nodes × %d, 48 GB each (the L20 class of the published runs), PCIe 4.0 ×16 host-to-device and intra-node links (25 GB/s), 12.5 GB/s between nodes." settings.Devices (settings.Devices / settings.DevicesPerNode) settings.DevicesPerNode)
        add (sprintf "- Deadlines: arrival + %g · t_ref unless a sweep says otherwise (t_ref = encode + steps · t_D(k*) + decode)." settings.SloScale)
        add (sprintf "- Workload seed %d; runs are deterministic for a trace and seed (the solver's time limit aside)." settings.Seed)
        add "- Policies (docs/policies.md): B1 static pipeline-level (fixed k, reported at its best k), B2 bucketed pipeline-level, B3 dynamic pipeline-level FIFO, B4 dynamic pipeline-level SRTF, B5 bucketed stage-level (fixed split), B6 dynamic stage-level SRTF (fixed split), Trident (placement MIP + dispatch MIP + Adjust-on-Dispatch)."
        add "- Latency statistics are over completed requests; OOM and unserved requests count as SLO misses."
        add ""
        add "| workload | requests | rate req/s | steps | note |"
        add "|---|---:|---:|---:|---|"
        for r in refs do
            let w = r.Point.Workload
            add (row [ w.Name; string w.Count; f 3 w.Rate; string w.Steps; w.Note ])
        add ""
        // headline
        add "## Headline"
        add ""
        add "| workload | Trident | B1 (default k) | B1 (best k) | best baseline | Trident P95 s | B1 P95 s | best baseline P95 s | Trident mean s | B1 mean s | Trident ≥ every baseline |"
        add "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"
        for r in refs do
            match trident r.Rows, b1 r.Rows, bestBaseline r.Rows with
            | Some t, Some b, Some best ->
                let bestK = r.Rows |> List.filter (fun s -> s.Policy = "B1") |> List.maxBy _.SloAttainment
                let ok = r.Rows |> List.forall (fun s -> s.Policy = "Trident" || t.SloAttainment >= s.SloAttainment - 1e-12)
                add (row [ r.Point.Workload.Name; f 3 t.SloAttainment
                           sprintf "%s (%s)" (f 3 b.SloAttainment) (b.Params.Split(' ').[0])
                           sprintf "%s (%s)" (f 3 bestK.SloAttainment) (bestK.Params.Split(' ').[0])
                           sprintf "%s %s" (label best) (f 3 best.SloAttainment)
                           f 1 (float t.P95Latency); f 1 (float b.P95Latency); f 1 (float best.P95Latency); f 1 (float t.MeanLatency); f 1 (float b.MeanLatency)
                           (if ok then "yes" else "**no**") ])
            | _ -> ()
        add ""
        add "Attainment is the share of all requests finished by their deadline; latencies are over completed requests (a policy whose requests run out of memory is measured on the rest). B1's default degree is the largest k* among the workload's shapes; its best fixed degree is the best of 1, 2, 4 and 8."
        add ""
        add "Against the published B1 → TridentServe factors (128 L20 GPUs; B1 there is static pipeline-level xDiT; ours is B1 at its default degree):"
        add ""
        add "| workload | published attainment | ours (B1 → Trident) | published P95 s | ours P95 s | published P95 factor | our P95 factor |"
        add "|---|---|---|---|---|---:|---:|"
        for r in refs do
            match Map.tryFind r.Point.Workload.Name published, trident r.Rows, b1 r.Rows with
            | Some(pa, pt, p95a, p95t), Some t, Some b ->
                add (row [ r.Point.Workload.Name; sprintf "%.2f → %.2f" pa pt; sprintf "%s → %s" (f 2 b.SloAttainment) (f 2 t.SloAttainment)
                           sprintf "%.0f → %.0f" p95a p95t; sprintf "%s → %s" (f 0 (float b.P95Latency)) (f 0 (float t.P95Latency))
                           f 1 (p95a / p95t); f 1 (ratio (float b.P95Latency) (float t.P95Latency)) ])
            | _ -> ()
        add ""
        // reference workloads
        add "## Reference workloads"
        for r in refs do
            let name = r.Point.Workload.Name
            add ""
            add (sprintf "### %s" name)
            add ""
            add (sprintf "%s. Simulated in %.1f s." r.Point.Workload.Note r.Wall)
            add ""
            for line in summaryTable r.Rows do
                add line
            add ""
            if r.B1.Length > 1 then
                add ("B1 at every fixed degree: " + String.Join("; ", r.B1 |> List.map (fun s -> sprintf "%s → attainment %s, P95 %s s, OOM %d" s.Params (f 3 s.SloAttainment) (f 1 (float s.P95Latency)) s.OutOfMemory)) + ".")
                add ""
            if not r.Replacements.IsEmpty then
                add ("Trident's re-placements: " + String.Join("; ", r.Replacements |> List.map (fun p -> sprintf "t = %.0f s (imbalance %.2f, %d devices moved)" (float p.Time) p.Imbalance p.Moves)) + ".")
                add ""
            let cdf = sprintf "cdf-%s.svg" name
            files.Add(cdf, Svg.lineChart (sprintf "Latency CDF — %s (completed requests; height = share of all requests)" name) "latency (s, log scale)" "share of requests" true (Some(0.0, 1.0)) r.Cdfs)
            let util = sprintf "utilisation-%s.svg" name
            files.Add(util, Svg.lineChart (sprintf "Device utilisation over time — %s" name) "time (s)" "share of devices busy" false (Some(0.0, 1.0)) r.Utilisation)
            add (sprintf "![latency CDF](%s) ![utilisation over time](%s)" cdf util)
        // sweeps
        let sweep (group: string) (model: string) (title: string) (xLabel: string) =
            let points = results |> List.filter (fun r -> r.Point.Group = group && r.Point.Workload.Model = model) |> List.sortBy (fun r -> r.Point.Value)
            if not points.IsEmpty then
                let policies = points |> List.collect (fun r -> r.Rows |> List.map label) |> List.distinct
                // B1's best degree is reported on its own row only when it is not the default one
                let find (r: EvalResult) p =
                    r.Rows
                    |> List.tryFind (fun s -> label s = p)
                    |> Option.orElse (if p = "B1 (best k)" then r.Rows |> List.tryFind (fun s -> s.Policy = "B1") else None)
                let series =
                    [ for p in policies ->
                          p, points |> List.choose (fun r -> find r p |> Option.map (fun s -> r.Point.Value, s.SloAttainment)) ]
                let file = sprintf "%s-%s.svg" group model
                files.Add(file, Svg.lineChart title xLabel "SLO attainment" false (Some(0.0, 1.0)) series)
                add ""
                add (sprintf "### %s" title)
                add ""
                add (sprintf "![%s](%s)" title file)
                add ""
                add (row ((xLabel :: policies) @ [ "B1's best k" ]))
                add (row ([ "---:" ] @ (policies |> List.map (fun _ -> "---:")) @ [ "---" ]))
                for r in points do
                    let cells = policies |> List.map (fun p -> find r p |> Option.map (fun s -> f 3 s.SloAttainment) |> Option.defaultValue "")
                    let bk =
                        match r.Rows |> List.filter (fun s -> s.Policy = "B1") with
                        | [] -> ""
                        | b1s -> (b1s |> List.maxBy _.SloAttainment).Params.Split(' ').[0]
                    add (row ((f 2 r.Point.Value :: cells) @ [ bk ]))
                add ""
                add "P95 latency (s):"
                add ""
                add (row (xLabel :: policies))
                add (row ("---:" :: (policies |> List.map (fun _ -> "---:"))))
                for r in points do
                    let cells = policies |> List.map (fun p -> find r p |> Option.map (fun s -> f 1 (float s.P95Latency)) |> Option.defaultValue "")
                    add (row (f 2 r.Point.Value :: cells))
        add ""
        add "## Request-rate sweep"
        sweep "rate" "flux" "SLO attainment vs request rate — flux (28 steps)" "rate (req/s)"
        sweep "rate" "cogvideox" "SLO attainment vs request rate — cogvideox (6 steps)" "rate (req/s)"
        add ""
        add "## SLO-scale sweep"
        sweep "slo" "flux" "SLO attainment vs SLO scale — flux-reference" "SLO scale"
        sweep "slo" "cogvideox" "SLO attainment vs SLO scale — cogvideox-reference" "SLO scale"
        add ""
        ("README.md", md.ToString()) :: List.ofSeq files
