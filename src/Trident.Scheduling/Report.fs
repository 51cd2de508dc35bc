namespace Trident.Scheduling

// Design note. Text outputs of the simulator, as pure functions: the summary as an aligned table,
// CSV or JSON; per-request CSV; simple SVG line charts (no charting library is available, and a
// chart is a few dozen lines of SVG text); the markdown report of one `simulate` run. Numbers are
// printed with the invariant culture.

open System
open System.Globalization
open System.Text
open System.Text.Json

module Report =
    let private inv = CultureInfo.InvariantCulture
    let private f (digits: int) (x: float) = if Double.IsNaN x then "" else x.ToString("F" + string digits, inv)

    /// The summary columns: name and value of each, as printed.
    let columns (s: Summary) : (string * string) list =
        [ "policy", s.Policy
          "params", s.Params
          "slo_attainment", f 3 s.SloAttainment
          "mean_s", f 1 (float s.MeanLatency)
          "p50_s", f 1 (float s.P50Latency)
          "p95_s", f 1 (float s.P95Latency)
          "p99_s", f 1 (float s.P99Latency)
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

    /// An aligned text table (numbers right-aligned).
    let table (rows: Summary list) =
        match rows with
        | [] -> ""
        | first :: _ ->
            let header = columns first |> List.map fst
            let cells = rows |> List.map (columns >> List.map snd)
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

    let private csvCell (s: string) =
        if s.IndexOfAny([| ','; '"'; '\n' |]) >= 0 then "\"" + s.Replace("\"", "\"\"") + "\"" else s

    /// CSV with a header.
    let csv (rows: Summary list) =
        match rows with
        | [] -> ""
        | first :: _ ->
            let sb = StringBuilder()
            sb.AppendLine(String.Join(",", columns first |> List.map fst)) |> ignore
            for r in rows do
                sb.AppendLine(String.Join(",", columns r |> List.map (snd >> csvCell))) |> ignore
            sb.ToString()

    /// A JSON array of objects (numbers as numbers, NaN as null).
    let json (rows: Summary list) =
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
                 | _ -> w.WriteNumber(name, Double.Parse(value, inv))
             w.WriteEndObject()
         w.WriteEndArray())
        Encoding.UTF8.GetString(ms.ToArray()) + "\n"

    /// Per-request records as CSV.
    let requestsCsv (result: SimResult) =
        let sb = StringBuilder()
        sb.AppendLine
            "id,arrival_s,deadline_s,height,width,frames,steps,dispatched_s,degree,vr,encode_start_s,encode_finish_s,diffuse_start_s,diffuse_finish_s,decode_start_s,decode_finish_s,finish_s,latency_s,outcome,diffuse_devices,detail"
        |> ignore
        let t (x: float<s>) = (float x).ToString("F3", inv)
        let opt g = Option.map g >> Option.defaultValue ""
        for r in result.Records do
            let q = r.Request
            let detail =
                match r.Outcome with
                | OutOfMemory(stage, d, need, memory) -> sprintf "%s on %O needs %.1f GB of %.1f GB" (Stage.letter stage) d (float need) (float memory)
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
                  detail ]
            sb.AppendLine(String.Join(",", cells |> List.map csvCell)) |> ignore
        sb.ToString()

    /// The latency CDF of a run's completed requests: (latency, fraction ≤ it), at most `points` points.
    let latencyCdf (result: SimResult) (points: int) =
        let lat = result.Records |> Array.choose (fun r -> r.Latency |> Option.map float) |> Array.sort
        let n = lat.Length
        if n = 0 then []
        else
            let step = max 1 (n / points)
            [ for i in 0..step .. n - 1 -> lat.[i], float (i + 1) / float result.Records.Length
              yield lat.[n - 1], float n / float result.Records.Length ]

/// Minimal SVG charts.
module Svg =
    let private inv = CultureInfo.InvariantCulture
    let private n (x: float) = x.ToString("0.##", inv)

    let palette =
        [| "#1f77b4"; "#ff7f0e"; "#2ca02c"; "#d62728"; "#9467bd"; "#8c564b"; "#e377c2"; "#7f7f7f"; "#bcbd22"; "#17becf" |]

    /// A colour per series name, stable across charts (Trident always the same red-black).
    let colour (name: string) (i: int) =
        match name with
        | "Trident" -> "#000000"
        | "B1" -> palette.[0]
        | "B1 (best k)" -> palette.[9]
        | "B2" -> palette.[1]
        | "B3" -> palette.[2]
        | "B4" -> palette.[4]
        | "B5" -> palette.[5]
        | "B6" -> palette.[6]
        | _ -> palette.[i % palette.Length]

    let private escape (s: string) = s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;")

    /// "Nice" tick values covering [lo, hi].
    let ticks (lo: float) (hi: float) (count: int) =
        let span = max 1e-12 (hi - lo)
        let raw = span / float (max 1 count)
        let mag = 10.0 ** floor (log10 raw)
        let step =
            [ 1.0; 2.0; 2.5; 5.0; 10.0 ] |> List.map (fun m -> m * mag) |> List.find (fun s -> s >= raw)
        let first = ceil (lo / step) * step
        [ for i in 0..1000 do
              let v = first + float i * step
              if v <= hi + step * 1e-9 then yield v ]

    /// A line chart: one polyline per series (name, points), axes with ticks, a legend on the right.
    /// `xLog`: logarithmic x axis (positive x only). Ranges default to the data.
    let lineChart (title: string) (xLabel: string) (yLabel: string) (xLog: bool) (yRange: (float * float) option) (series: (string * (float * float) list) list) =
        let width, height = 720.0, 420.0
        let left, right, top, bottom = 70.0, 150.0, 40.0, 50.0
        let pw, ph = width - left - right, height - top - bottom
        let pts = series |> List.collect snd |> List.filter (fun (x, y) -> not (Double.IsNaN x || Double.IsNaN y) && (not xLog || x > 0.0))
        let tx x = if xLog then log10 x else x
        let xs = pts |> List.map (fst >> tx)
        let x0, x1 =
            match xs with
            | [] -> 0.0, 1.0
            | _ -> List.min xs, (if List.max xs = List.min xs then List.min xs + 1.0 else List.max xs)
        let y0, y1 =
            match yRange, pts with
            | Some r, _ -> r
            | None, [] -> 0.0, 1.0
            | None, _ ->
                let ys = pts |> List.map snd
                let lo = min 0.0 (List.min ys)
                let hi = List.max ys
                lo, (if hi <= lo then lo + 1.0 else hi * 1.05)
        let px x = left + (tx x - x0) / (x1 - x0) * pw
        let py y = top + ph - (y - y0) / (y1 - y0) * ph
        let sb = StringBuilder()
        let add (s: string) = sb.Append(s).Append('\n') |> ignore
        add (sprintf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%s\" height=\"%s\" viewBox=\"0 0 %s %s\" font-family=\"sans-serif\" font-size=\"12\">" (n width) (n height) (n width) (n height))
        add (sprintf "<rect width=\"%s\" height=\"%s\" fill=\"white\"/>" (n width) (n height))
        add (sprintf "<text x=\"%s\" y=\"22\" font-size=\"14\" font-weight=\"bold\">%s</text>" (n left) (escape title))
        // grid and ticks
        for v in ticks y0 y1 5 do
            add (sprintf "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#dddddd\"/>" (n left) (n (py v)) (n (left + pw)) (n (py v)))
            add (sprintf "<text x=\"%s\" y=\"%s\" text-anchor=\"end\">%s</text>" (n (left - 6.0)) (n (py v + 4.0)) (v.ToString("0.###", inv)))
        let xTicks =
            if xLog then
                [ for e in int (floor x0) .. int (ceil x1) do
                      for m in [ 1.0; 2.0; 5.0 ] do
                          let v = m * 10.0 ** float e
                          if log10 v >= x0 - 1e-9 && log10 v <= x1 + 1e-9 then yield v ]
            else ticks x0 x1 6
        for v in xTicks do
            add (sprintf "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#eeeeee\"/>" (n (px v)) (n top) (n (px v)) (n (top + ph)))
            add (sprintf "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">%s</text>" (n (px v)) (n (top + ph + 16.0)) (v.ToString("0.###", inv)))
        add (sprintf "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" stroke=\"#333333\"/>" (n left) (n top) (n pw) (n ph))
        add (sprintf "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">%s</text>" (n (left + pw / 2.0)) (n (height - 12.0)) (escape xLabel))
        add (sprintf "<text transform=\"translate(16,%s) rotate(-90)\" text-anchor=\"middle\">%s</text>" (n (top + ph / 2.0)) (escape yLabel))
        // series
        series
        |> List.iteri (fun i (name, points) ->
            let c = colour name i
            let ok = points |> List.filter (fun (x, y) -> not (Double.IsNaN x || Double.IsNaN y) && (not xLog || x > 0.0))
            let path = String.Join(" ", ok |> List.map (fun (x, y) -> sprintf "%s,%s" (n (px x)) (n (py (max y0 (min y1 y))))))
            let dash = if name = "Trident" then "" else ""
            let w = if name = "Trident" then 2.5 else 1.5
            if ok.Length > 1 then add (sprintf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"%s\"/>" c (n w) dash path)
            if ok.Length <= 12 then
                for (x, y) in ok do
                    add (sprintf "<circle cx=\"%s\" cy=\"%s\" r=\"3\" fill=\"%s\"/>" (n (px x)) (n (py (max y0 (min y1 y)))) c)
            let ly = top + 10.0 + float i * 18.0
            add (sprintf "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"%s\"/>" (n (left + pw + 12.0)) (n ly) (n (left + pw + 32.0)) (n ly) c (n w))
            add (sprintf "<text x=\"%s\" y=\"%s\">%s</text>" (n (left + pw + 38.0)) (n (ly + 4.0)) (escape name)))
        add "</svg>"
        sb.ToString()
