namespace Trident.Scheduling

// Design note. A production request log replayed as a workload. The log (data/gentd26/, from the
// GenTD26 dataset: a production Stable Diffusion service, README there) gives each request's
// arrival (one-second resolution), its denoising steps and its images per prompt; it has no image
// sizes. The replay:
//   * takes a window of the log (a first request and a count);
//   * compresses time by a factor c (arrival' = (arrival − first arrival) / c), chosen so that the
//     window's work loads the cluster to a stated level: c = load · devices · span / work, where
//     work = Σ images · (mean device-seconds of one image at the smallest degree over the size mix)
//     and span is the window's arrival span — the same rule as the scaled reference workloads;
//   * serves each image of a request as one scheduling request arriving with it (a prompt with
//     n images is n requests of one image: the scheduler has no batch dimension), all with the
//     request's steps and one size drawn for the request from a DiffusionDB-like mix.
// Parsing is pure text; the caller reads the file. Sizes come from a seeded generator.

open System
open System.Globalization

/// One request of the production log.
type LogRequest =
    {
      /// seconds since the log's first request
      Arrival: float<s>
      Steps: int
      Images: int }

module Production =
    /// The header of the reduced log file (data/gentd26/requests.csv).
    [<Literal>]
    let Header = "arrival_s,steps,images"

    /// A DiffusionDB-like size mix: (shape, weight). An assumption, not a measurement: DiffusionDB
    /// (Wang et al., 2022) holds Stable Diffusion images of user-chosen sizes with its 512×512
    /// default dominating; the weights here are ours and stated in the report.
    let diffusionDbLike: (Shape * float) list =
        [ Shape.image 512 512, 0.60
          Shape.image 768 512, 0.15
          Shape.image 512 768, 0.10
          Shape.image 768 768, 0.10
          Shape.image 1024 1024, 0.05 ]

    /// Parses the reduced log; every problem is reported, each with its line.
    let parse (text: string) : Result<LogRequest list, string list> =
        let lines = text.Replace("\r\n", "\n").Split('\n')
        let errors = ResizeArray<string>()
        if lines.Length = 0 || lines.[0].Trim() <> Header then
            errors.Add(sprintf "line 1: the header must be '%s'" Header)
        let rows =
            [ for i in 1 .. lines.Length - 1 do
                  let line = lines.[i].Trim()
                  if line <> "" then
                      let cells = line.Split(',')
                      let where = sprintf "line %d" (i + 1)
                      if cells.Length <> 3 then errors.Add(sprintf "%s: %d fields, expected 3" where cells.Length)
                      else
                          let num (name: string) (s: string) =
                              match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with
                              | true, x when Double.IsFinite x && x >= 0.0 -> Some x
                              | _ ->
                                  errors.Add(sprintf "%s: %s = '%s' is not a finite number ≥ 0" where name s)
                                  None
                          let count (name: string) (s: string) =
                              match Int32.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture) with
                              | true, x when x >= 1 -> Some x
                              | _ ->
                                  errors.Add(sprintf "%s: %s = '%s' is not an integer ≥ 1" where name s)
                                  None
                          match num "arrival_s" cells.[0], count "steps" cells.[1], count "images" cells.[2] with
                          | Some a, Some st, Some n -> yield { Arrival = a * 1.0<s>; Steps = st; Images = n }
                          | _ -> () ]
        if errors.Count > 0 then Error(List.ofSeq errors)
        elif rows.IsEmpty then Error [ "the log has no requests" ]
        else Ok(rows |> List.sortBy _.Arrival)

    /// Mean device-seconds of one image of `steps` steps at the smallest degree over the mix.
    let private imageWork (cost: CostModel) (mix: (Shape * float) list) (steps: int) =
        let total = mix |> List.sumBy snd
        mix |> List.sumBy (fun (sh, w) -> w / total * Workload.meanDeviceSecondsAtK1 cost [ sh ] steps)

    /// The time-compression factor that loads `devices` devices to `load` (0..1] with the log's
    /// work at the smallest degree. Needs at least two distinct arrivals.
    let compressionFor (cost: CostModel) (mix: (Shape * float) list) (devices: int) (load: float) (log: LogRequest list) =
        let span = float ((log |> List.map _.Arrival |> List.max) - (log |> List.map _.Arrival |> List.min))
        if span <= 0.0 then invalidArg (nameof log) "the log window needs two distinct arrivals"
        let work = log |> List.sumBy (fun r -> float r.Images * imageWork cost mix r.Steps)
        load * float devices * span / work

    /// The replay: one trace request per image, arrivals compressed by `compression`, one size per
    /// log request drawn from `mix` with `seed`. Ids are 0.. in arrival order.
    let replay (model: string) (mix: (Shape * float) list) (compression: float) (seed: uint64) (log: LogRequest list) : TraceRequest list =
        if compression <= 0.0 then invalidArg (nameof compression) "the compression factor must be positive"
        if mix.IsEmpty then invalidArg (nameof mix) "the size mix is empty"
        let total = mix |> List.sumBy snd
        let cumulative = mix |> List.scan (fun acc (_, w) -> acc + w / total) 0.0 |> List.tail |> Array.ofList
        let shapes = mix |> List.map fst |> Array.ofList
        let first = match log with r :: _ -> r.Arrival | [] -> 0.0<s>
        let mutable rng = Rng.create seed
        let mutable id = 0L
        [ for r in log do
              let u, next = Rng.uniform rng
              rng <- next
              let i = cumulative |> Array.tryFindIndex (fun c -> u < c) |> Option.defaultValue (shapes.Length - 1)
              for _ in 1 .. r.Images do
                  yield
                      { Id = id
                        Arrival = (r.Arrival - first) / compression
                        Model = model
                        Shape = shapes.[i]
                        Steps = r.Steps
                        Deadline = None
                        Priority = None }
                  id <- id + 1L ]

    /// The log's requests with from ≤ arrival < until.
    let window (from: float<s>) (until: float<s>) (log: LogRequest list) =
        log |> List.filter (fun r -> r.Arrival >= from && r.Arrival < until)

    /// The evaluation's replay of the GenTD26 log: the day 2024-11-21 (day 6 of the reduced log,
    /// whose clock starts at 2024-11-15 00:00), Stable Diffusion 3's profile, the DiffusionDB-like mix,
    /// compressed to load `devices` devices to 70 % at the smallest degree. Returns the trace and a
    /// note that states every choice.
    let gentd26 (cost: CostModel) (devices: int) (seed: uint64) (log: LogRequest list) : Result<TraceRequest list * string, string> =
        let day = window (6.0 * 86400.0<s>) (7.0 * 86400.0<s>) log
        if day.Length < 2 then Error "the log has fewer than two requests on 2024-11-21"
        else
            let load = 0.7
            let c = compressionFor cost diffusionDbLike devices load day
            let trace = replay cost.Profile.Model.Value diffusionDbLike c seed day
            let mix = String.Join(", ", diffusionDbLike |> List.map (fun (sh, w) -> sprintf "%O %.0f %%" sh (100.0 * w)))
            let note =
                sprintf "production log GenTD26 (data/gentd26/), the day 2024-11-21: %d requests, %d images (one request per image, arriving with its prompt), the log's steps (%s); time compressed %.1f× (24 h → %.0f s) to load %d devices to %.0f %% at k = %d; sizes per prompt from a DiffusionDB-like mix (our assumption: %s); %s profile"
                    day.Length trace.Length
                    (String.Join(", ", day |> List.countBy _.Steps |> List.sortBy (fun (_, n) -> -n) |> List.truncate 3 |> List.map (fun (st, n) -> sprintf "%d steps × %d" st n)))
                    c (86400.0 / c) devices (100.0 * load) (List.head cost.Degrees) mix cost.Profile.Model.Value
            Ok(trace, note)
