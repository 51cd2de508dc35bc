namespace Trident.Scheduling

// Design note. Workloads are traces: lists of requests as a client would submit them (arrival,
// model, shape, steps, optional deadline and priority). Generators draw them from a seed with the
// pure SplitMix generator, so a (spec, seed) pair is a trace; the trace file format (CSV or JSON
// lines) lets anyone bring their own. Parsing and printing are pure text functions: the caller
// reads and writes the file.
//
// The reference workloads follow the reference implementation's synthetic traces
// (docs/reference-profiles.md, data/reference/README.md): constant arrival interval, shape classes
// mixed uniformly at random. Two of them cannot be run as published on 128 devices and are scaled,
// each by a rule stated here and in docs/policies.md:
//   * cogvideox-reference runs 6 steps (the setting of the published 128-GPU result);
//   * hunyuanvideo-reference (and sd3-reference, whose original trace was not retrievable) use the
//     rate that loads 128 devices to about 70 % at k = 1: rate = 0.7 · 128 / mean device-seconds of
//     a request at k = 1 (encode + steps · t_D(k = 1) + decode), rounded.

open System
open System.Globalization
open System.Text
open System.Text.Json

/// One request of a trace, as submitted. `Deadline` is absolute (same clock as `Arrival`); when
/// absent the cost model's rule sets it.
type TraceRequest =
    { Id: int64
      Arrival: float<s>
      Model: string
      Shape: Shape
      Steps: int
      Deadline: float<s> option
      Priority: int option }

/// How arrivals are spaced.
type ArrivalProcess =
    /// one request every 1 / rate seconds (the reference traces)
    | Constant
    /// exponential gaps with mean 1 / rate
    | Poisson
    /// on/off MMPP: Poisson at `peak` · rate while on, at the rate that keeps the mean while off;
    /// on and off periods are exponential with means `meanOn` and `meanOff`
    | Bursty of peak: float * meanOn: float<s> * meanOff: float<s>

/// Which shapes requests have.
type Mix =
    /// each request draws one of the shapes uniformly
    | Uniform of Shape list
    /// light → heavy: request i of n draws from `heavy` with probability that ramps linearly from 0
    /// at i = from·n to 1 at i = until·n (a step when from = until), else from `light`
    | Shifting of light: Shape list * heavy: Shape list * from: float * until: float
    /// a stream of `stream` shapes (each drawn uniformly) arriving at the spec's rate and process,
    /// plus, every `every` seconds from time 0, a batch of `size` requests submitted together
    /// (0.1 s apart), each drawing one of `batch` uniformly; the spec's `Count` counts both
    | WithBatches of stream: Shape list * batch: Shape list * size: int * every: float<s>

/// A generator's parameters. `Rate` is the mean arrival rate in requests per second.
type WorkloadSpec =
    { Name: string
      Model: string
      Rate: float
      Steps: int
      Count: int
      Arrivals: ArrivalProcess
      Mix: Mix
      /// how the spec was derived (printed in reports)
      Note: string }

module Workload =
    // ---- reference shapes --------------------------------------------------------------------

    let private images sizes = sizes |> List.map (fun n -> Shape.image n n)

    let private videos hws frames =
        [ for (h, w) in hws do
              for f in frames -> Shape.video h w f ]

    /// The shape classes of each model's reference trace.
    let referenceShapes (model: string) =
        match model with
        | "flux" -> Some(images [ 128; 256; 512; 1024; 2048 ])
        | "sd3" -> Some(images [ 128; 256; 512; 1024; 1536 ])
        | "cogvideox" -> Some(videos [ 768, 432; 768, 1360 ] [ 17; 33; 65; 81 ])
        | "hunyuanvideo" -> Some(videos [ 720, 1280; 960, 544 ] [ 17; 33; 65; 129 ])
        | _ -> None

    /// Mean device-seconds of one request at k = 1 (encode + steps · t_D(1) + decode) over shapes.
    let meanDeviceSecondsAtK1 (cost: CostModel) (shapes: Shape list) (steps: int) =
        let k0 = List.head cost.Degrees
        shapes
        |> List.averageBy (fun sh ->
            float (CostModel.encodeTime cost sh + CostModel.diffuseTime cost sh steps k0 * float k0 + CostModel.decodeTime cost sh))

    /// The arrival rate that loads `devices` devices to `load` (0..1) at k = 1.
    let rateForLoad (cost: CostModel) (shapes: Shape list) (steps: int) (devices: int) (load: float) =
        load * float devices / meanDeviceSecondsAtK1 cost shapes steps

    // ---- named workloads ---------------------------------------------------------------------

    /// The reference workloads, by name.
    let references: WorkloadSpec list =
        [ { Name = "flux-reference"
            Model = "flux"
            Rate = 1.5
            Steps = 28
            Count = 2700
            Arrivals = Constant
            Mix = Uniform (referenceShapes "flux" |> Option.get)
            Note = "as published: 2700 requests, one every 0.667 s (1.5 req/s), 28 steps, 128²–2048² uniform" }
          { Name = "cogvideox-reference"
            Model = "cogvideox"
            Rate = 1.5
            Steps = 6
            Count = 2700
            Arrivals = Constant
            Mix = Uniform (referenceShapes "cogvideox" |> Option.get)
            Note =
              "2700 requests at 1.5 req/s as published, 6 steps (the setting of the published 128-GPU result; at 50 steps the trace asks ≈6× the capacity of 128 devices)" }
          { Name = "hunyuanvideo-reference"
            Model = "hunyuanvideo"
            Rate = 0.058
            Steps = 50
            Count = 1800
            Arrivals = Constant
            Mix = Uniform (referenceShapes "hunyuanvideo" |> Option.get)
            Note =
              "1800 requests, 50 steps as published, at 0.058 req/s instead of 1 req/s: the rate that loads 128 devices to ≈70 % at k = 1 (mean 1534 device-seconds per request)" }
          { Name = "sd3-reference"
            Model = "sd3"
            Rate = 20.0
            Steps = 20
            Count = 6000
            Arrivals = Constant
            Mix = Uniform (referenceShapes "sd3" |> Option.get)
            Note =
              "ours (the original trace was not retrievable): 6000 requests, 20 steps, 128²–1536² uniform, at 20 req/s — the rate that loads 128 devices to ≈68 % at k = 1 (mean 4.33 device-seconds per request)" } ]

    /// Mixed image + video workloads (issue 12, preemption): one model's images and long videos on
    /// one cluster, where a video can hold a group of devices for many minutes.
    let mixed: WorkloadSpec list =
        let images = [ Shape.image 720 1280; Shape.image 960 544 ]
        let videos = [ Shape.video 720 1280 129; Shape.video 960 544 129 ]
        [ { Name = "mixed-hunyuanvideo"
            Model = "hunyuanvideo"
            Rate = 0.12
            Steps = 50
            Count = 800
            Arrivals = Poisson
            // 4 : 1 images to videos (each image shape listed four times)
            Mix = Uniform(List.replicate 4 images |> List.concat |> fun xs -> xs @ videos)
            Note =
              "ours: hunyuanvideo 720×1280 and 960×544 images (80 %) and 129-frame videos of the same sizes (20 %), 50 steps, Poisson at 0.12 req/s, 800 requests: the videos alone load 128 devices to ≈86 % at k = 8 (mean 4604 device-seconds per video)" }
          { Name = "mixed-hunyuanvideo-batches"
            Model = "hunyuanvideo"
            Rate = 0.12
            Steps = 50
            Count = 600
            Arrivals = Poisson
            Mix = WithBatches(images, videos, 24, 1200.0<s>)
            Note =
              "ours: hunyuanvideo 720×1280 and 960×544 images, Poisson at 0.12 req/s, and every 1200 s from 0 a batch of 24 129-frame videos of the same sizes submitted together (the videos alone load 128 devices to ≈72 % at k = 1: 24 · 4604 device-seconds per 1200 s), 50 steps, 600 requests; 0.12 req/s is the rate at which B1 at its default degree (k = 8) reaches ≈ 0.24 attainment (the paper-comparable load, as the paper group finds it for the reference workloads)" } ]

    /// Generic generators over a model's reference shapes.
    let genericKinds = [ "poisson"; "bursty"; "shifting" ]

    /// Every name `tryNamed` knows (generic kinds take the model separately).
    let names = (references |> List.map _.Name) @ (mixed |> List.map _.Name) @ genericKinds

    /// The models a generic kind takes (those with a reference workload, whose shapes, rate and steps it uses).
    let models = references |> List.map _.Model |> List.distinct

    /// A generic kind over a base spec and its shapes; `over` says what the shapes, rate and count are (e.g.
    /// "over the reference mix"), for the workload's note.
    let private generic (name: string) (over: string) (reference: WorkloadSpec) (shapes: Shape list) : Result<WorkloadSpec, string> =
        let model = reference.Model
        let sorted = shapes |> List.sortBy _.PixelFrames
        let half = max 1 (sorted.Length / 2)
        match name with
        | "poisson" ->
            Ok { reference with Name = sprintf "poisson-%s" model; Arrivals = Poisson; Note = sprintf "Poisson arrivals %s" over }
        | "bursty" ->
            Ok
                { reference with
                    Name = sprintf "bursty-%s" model
                    Arrivals = Bursty(3.0, 30.0<s>, 90.0<s>)
                    Note = sprintf "on/off MMPP %s: 3× the mean rate for 30 s on average, then a third of it for 90 s" over }
        | _ ->
            Ok
                { reference with
                    Name = sprintf "shifting-%s" model
                    Arrivals = Poisson
                    Mix = (if sorted.Length < 2 then Uniform sorted else Shifting(List.take half sorted, List.skip half sorted, 0.4, 0.6))
                    Note = sprintf "Poisson arrivals %s; light shapes (smaller half) first, ramping to heavy shapes (larger half) between 40 %% and 60 %% of the trace" over }

    /// A named workload. Reference names carry their model; the generic kinds (`poisson`,
    /// `bursty`, `shifting`) use `model`'s reference shapes, rate and steps.
    let tryNamed (name: string) (model: string) : Result<WorkloadSpec, string> =
        match references @ mixed |> List.tryFind (fun w -> w.Name = name) with
        | Some w -> Ok w
        | None ->
            match List.contains name genericKinds, references |> List.tryFind (fun w -> w.Model = model) with
            | false, _ -> Error(sprintf "unknown workload '%s' (known: %s, or a trace file)" name (String.Join(", ", names)))
            | true, None -> Error(sprintf "no reference shapes for model '%s' (known: %s)" model (String.Join(", ", models)))
            | true, Some reference -> generic name "over the reference mix" reference (referenceShapes model |> Option.get)

    /// The shapes a profile measured (its diffuse points), smallest first.
    let profileShapes (p: Profile) =
        p.Diffuse.Points |> List.map _.Shape |> List.distinct |> List.sortBy _.PixelFrames

    /// A workload over a profile (e.g. one `trident profile` measured): a reference workload of the
    /// profile's model as it is, or a generic kind (`poisson`, `bursty`, `shifting`) over the
    /// profile's measured shapes at its default steps, 1000 requests, at the rate that loads
    /// `devices` devices to 70 % at the smallest degree (the rule of the scaled reference workloads).
    let forProfile (name: string) (profile: Profile) (cost: CostModel) (devices: int) : Result<WorkloadSpec, string> =
        let model = profile.Model.Value
        match references |> List.tryFind (fun w -> w.Name = name) with
        | Some w when w.Model = model -> Ok w
        | Some w -> Error(sprintf "workload '%s' is for model '%s', the profile for '%s' (use %s with a profile of another model)" name w.Model model (String.Join(", ", genericKinds)))
        | None when not (List.contains name genericKinds) ->
            Error(sprintf "unknown workload '%s' (known: %s, or a trace file)" name (String.Join(", ", names)))
        | None ->
            let shapes = profileShapes profile
            let rate = rateForLoad cost shapes profile.DefaultSteps devices 0.7
            let spec =
                { Name = model
                  Model = model
                  Rate = rate
                  Steps = profile.DefaultSteps
                  Count = 1000
                  Arrivals = Constant
                  Mix = Uniform shapes
                  Note = "" }
            let over =
                sprintf "over the profile's %d measured shapes, %d steps, by default 1000 requests at %.4g req/s (70 %% load of %d devices at k = %d)"
                    shapes.Length profile.DefaultSteps rate devices (List.head cost.Degrees)
            generic name over { spec with Note = over } shapes


    /// Applies the command line's overrides.
    let withOverrides (rate: float option) (steps: int option) (count: int option) (w: WorkloadSpec) =
        { w with
            Rate = defaultArg rate w.Rate
            Steps = defaultArg steps w.Steps
            Count = defaultArg count w.Count }

    /// A workload over other shapes: `shapes` drawn uniformly instead of its mix (the command line's `--shapes`); its
    /// rate, steps and count stay (the rate was chosen for its own shapes: give another where the load matters).
    let withShapes (shapes: Shape list) (w: WorkloadSpec) =
        if shapes.IsEmpty then invalidArg (nameof shapes) "at least one shape"
        { w with
            Mix = Uniform shapes
            Note = sprintf "%s; shapes %s only (uniform, --shapes)" w.Note (String.Join(", ", shapes |> List.map string)) }

    // ---- generation --------------------------------------------------------------------------

    /// The trace of a spec for a seed. Ids are 0..Count-1 in arrival order; the first arrival is at 0.
    let generate (spec: WorkloadSpec) (seed: uint64) : TraceRequest list =
        if spec.Rate <= 0.0 then invalidArg (nameof spec) "the arrival rate must be positive"
        if spec.Count < 0 then invalidArg (nameof spec) "the count must be non-negative"
        // separate streams for arrivals and shapes, so a rate override keeps the shape sequence
        let arrivalRng, rest = Rng.split (Rng.create seed)
        let shapeRng, _ = Rng.split rest
        let ar = ref arrivalRng
        let sr = ref shapeRng
        let draw (rng: Rng ref) f =
            let v, r = f rng.Value
            rng.Value <- r
            v
        // MMPP state: on?, time the current period ends; t: the previous arrival
        let on = ref true
        let periodEnd = ref 0.0
        let t = ref 0.0
        let nextArrival i =
            if i = 0 then 0.0
            else
                match spec.Arrivals with
                | Constant -> float i / spec.Rate
                | Poisson -> t.Value + draw ar (Rng.exponential spec.Rate)
                | Bursty(peak, meanOn, meanOff) ->
                    let onShare = float meanOn / float (meanOn + meanOff)
                    let peak = min peak (1.0 / onShare)
                    let rateOn = peak * spec.Rate
                    let rateOff = max 1e-9 ((spec.Rate - onShare * rateOn) / (1.0 - onShare))
                    // memoryless: draw a gap at the current state's rate; if it crosses the
                    // period end, move to the period end, switch state and draw again
                    let mutable now = t.Value
                    let mutable result = None
                    while result.IsNone do
                        let rate = if on.Value then rateOn else rateOff
                        let gap = draw ar (Rng.exponential rate)
                        if now + gap <= periodEnd.Value then result <- Some(now + gap)
                        else
                            now <- periodEnd.Value
                            on.Value <- not on.Value
                            periodEnd.Value <- periodEnd.Value + draw ar (Rng.exponential (1.0 / float (if on.Value then meanOn else meanOff)))
                    result.Value
        match spec.Arrivals with
        | Bursty(_, meanOn, _) -> periodEnd.Value <- draw ar (Rng.exponential (1.0 / float meanOn))
        | _ -> ()
        // stream arrivals, in order (the arrival process's i-th arrival)
        let streamIndex = ref 0
        let nextStream () =
            t.Value <- nextArrival streamIndex.Value
            streamIndex.Value <- streamIndex.Value + 1
            t.Value
        let arrivals =
            match spec.Mix with
            | WithBatches(stream, batch, size, every) ->
                if size < 1 || every <= 0.0<s> || stream.IsEmpty || batch.IsEmpty then
                    invalidArg (nameof spec) "a batched mix needs stream and batch shapes, a batch size ≥ 1 and a positive period"
                let streamShapes, batchShapes = Array.ofList stream, Array.ofList batch
                // merge the stream with the batches (batch b's m-th request at b · every + 0.1 · m)
                let pending = ref (nextStream ())
                let slot = ref 0
                [ for _ in 0 .. spec.Count - 1 do
                      let batchAt = float (slot.Value / size) * float every + 0.1 * float (slot.Value % size)
                      if batchAt <= pending.Value then
                          slot.Value <- slot.Value + 1
                          yield batchAt, draw sr (Rng.pick batchShapes)
                      else
                          let at = pending.Value
                          pending.Value <- nextStream ()
                          yield at, draw sr (Rng.pick streamShapes) ]
            | Uniform shapes ->
                let shapes = Array.ofList shapes
                [ for _ in 0 .. spec.Count - 1 -> nextStream (), draw sr (Rng.pick shapes) ]
            | Shifting(light, heavy, from, until) ->
                [ for i in 0 .. spec.Count - 1 do
                      let at = nextStream ()
                      let x = if spec.Count <= 1 then 0.0 else float i / float (spec.Count - 1)
                      let pHeavy =
                          if x < from then 0.0
                          elif x >= until then 1.0
                          else (x - from) / (until - from)
                      let u = draw sr Rng.uniform
                      yield at, draw sr (Rng.pick (Array.ofList (if u < pHeavy then heavy else light))) ]
        [ for i, (at, shape) in List.indexed arrivals ->
              { Id = int64 i
                Arrival = at * 1.0<s>
                Model = spec.Model
                Shape = shape
                Steps = spec.Steps
                Deadline = None
                Priority = None } ]

    /// Scheduling requests from trace lines: the trace's deadline, or the cost model's rule.
    let toRequests (cost: CostModel) (trace: TraceRequest list) : Request list =
        trace
        |> List.map (fun t ->
            { Id = RequestId t.Id
              Model = ModelName t.Model
              Shape = t.Shape
              Steps = t.Steps
              Arrival = t.Arrival
              Deadline = t.Deadline |> Option.defaultWith (fun () -> CostModel.deadline cost t.Arrival t.Shape t.Steps)
              Priority = t.Priority })

/// The trace file format: CSV with a header, or JSON lines (one object per line). Both carry the
/// same fields; `deadline_s` and `priority` are optional (empty / absent).
///
///     id,arrival_s,model,height,width,frames,steps,deadline_s,priority
///     0,0,flux,1024,1024,1,28,,
///     {"id":1,"arrival_s":0.6666666666666666,"model":"flux","height":512,"width":512,"frames":1,"steps":28}
module Trace =
    /// The CSV header.
    [<Literal>]
    let Header = "id,arrival_s,model,height,width,frames,steps,deadline_s,priority"

    let private num (x: float) = x.ToString("R", CultureInfo.InvariantCulture)

    /// CSV text (round-trip exact: floats are printed with "R").
    let toCsv (trace: TraceRequest seq) =
        let sb = StringBuilder()
        sb.Append(Header).Append('\n') |> ignore
        for t in trace do
            sb.Append(t.Id).Append(',')
                .Append(num (float t.Arrival)).Append(',')
                .Append(t.Model).Append(',')
                .Append(t.Shape.Height).Append(',')
                .Append(t.Shape.Width).Append(',')
                .Append(t.Shape.Frames).Append(',')
                .Append(t.Steps).Append(',')
                .Append(t.Deadline |> Option.map (float >> num) |> Option.defaultValue "").Append(',')
                .Append(t.Priority |> Option.map string |> Option.defaultValue "")
                .Append('\n')
            |> ignore
        sb.ToString()

    /// JSON lines text.
    let toJsonLines (trace: TraceRequest seq) =
        let sb = StringBuilder()
        for t in trace do
            sb.Append(sprintf "{\"id\":%d,\"arrival_s\":%s,\"model\":%s,\"height\":%d,\"width\":%d,\"frames\":%d,\"steps\":%d"
                        t.Id (num (float t.Arrival)) (JsonSerializer.Serialize t.Model) t.Shape.Height t.Shape.Width t.Shape.Frames t.Steps) |> ignore
            t.Deadline |> Option.iter (fun d -> sb.Append(",\"deadline_s\":").Append(num (float d)) |> ignore)
            t.Priority |> Option.iter (fun p -> sb.Append(",\"priority\":").Append(p) |> ignore)
            sb.Append("}\n") |> ignore
        sb.ToString()

    type private Fields =
        { Id: string option
          Arrival: string option
          Model: string option
          Height: string option
          Width: string option
          Frames: string option
          Steps: string option
          Deadline: string option
          Priority: string option }

    /// Validates one line's fields, adding every problem to `errors`, and the line's id and model to `seen` when its
    /// id parses (whatever else is wrong with the line: duplicate ids and models are checked over every line).
    /// A column missing from the header is reported once there, not again on every line.
    let private build (absent: Set<string>) (where: string) (f: Fields) (errors: ResizeArray<string>) (seen: ResizeArray<int64 * string>) =
        let err (msg: string) = errors.Add(sprintf "%s: %s" where msg)
        let required name (v: string option) =
            match v with
            | Some s when s.Trim() <> "" -> Some(s.Trim())
            | _ ->
                if not (absent.Contains name) then err (sprintf "%s is missing" name)
                None
        let integer name lo (v: string option) =
            required name v
            |> Option.bind (fun s ->
                match Int64.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture) with
                | true, x when x >= lo -> Some x
                | true, x ->
                    err (sprintf "%s = %d is below %d" name x lo)
                    None
                | _ ->
                    err (sprintf "%s = '%s' is not an integer" name s)
                    None)
        let real name (v: string) =
            match Double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture) with
            | true, x when Double.IsFinite x && x >= 0.0 -> Some x
            | _ ->
                err (sprintf "%s = '%s' is not a finite number ≥ 0" name v)
                None
        let optional (v: string option) = v |> Option.map (fun s -> s.Trim()) |> Option.filter (fun s -> s <> "")
        let id = integer "id" 0L f.Id
        let arrival = required "arrival_s" f.Arrival |> Option.bind (real "arrival_s")
        let model = required "model" f.Model
        id |> Option.iter (fun i -> seen.Add((i, defaultArg model "")))
        let h = integer "height" 1L f.Height
        let w = integer "width" 1L f.Width
        let fr = integer "frames" 1L f.Frames
        let steps = integer "steps" 1L f.Steps
        let deadline = optional f.Deadline |> Option.map (real "deadline_s")
        let priority =
            optional f.Priority
            |> Option.map (fun s ->
                match Int32.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture) with
                | true, p ->
                    match Priority.problem p with
                    | None -> Some p
                    | Some why ->
                        err why
                        None
                | _ ->
                    err (sprintf "priority = '%s' is not an integer" s)
                    None)
        match id, arrival, model, h, w, fr, steps with
        | Some id, Some a, Some m, Some h, Some w, Some fr, Some st when
            (deadline |> Option.forall Option.isSome) && (priority |> Option.forall Option.isSome) ->
            let d = deadline |> Option.map (fun d -> d.Value * 1.0<s>)
            match d with
            | Some d when d < a * 1.0<s> -> err (sprintf "deadline_s %g is before arrival_s %g" (float d) a); None
            | _ when h > 100000L || w > 100000L || fr > 100000L || st > 100000L -> err "height, width, frames and steps must be at most 100000"; None
            | _ ->
                Some
                    { Id = id
                      Arrival = a * 1.0<s>
                      Model = m
                      Shape = Shape.video (int h) (int w) (int fr)
                      Steps = int st
                      Deadline = d
                      Priority = Option.flatten priority }
        | _ -> None

    /// Header problems are reported and the lines are still read (with the columns that are there), so every
    /// problem of the file comes in one pass.
    let private parseCsv (lines: string array) (errors: ResizeArray<string>) (seen: ResizeArray<int64 * string>) =
        let header = lines.[0].Split(',') |> Array.map (fun s -> s.Trim().ToLowerInvariant())
        let known = Header.Split(',')
        for h in header do
            if not (Array.contains h known) then errors.Add(sprintf "line 1: unknown column '%s' (known: %s)" h Header)
        let absent = [ "id"; "arrival_s"; "model"; "height"; "width"; "frames"; "steps" ] |> List.filter (fun h -> not (Array.contains h header))
        for h in absent do
            errors.Add(sprintf "line 1: column '%s' is missing" h)
        let absent = Set.ofList absent
        let rows =
            let col name = Array.tryFindIndex ((=) name) header
            [ for i in 1 .. lines.Length - 1 do
                  let line = lines.[i]
                  if line.Trim() <> "" then
                      let cells = line.Split(',')
                      let where = sprintf "line %d" (i + 1)
                      if cells.Length <> header.Length then
                          errors.Add(sprintf "%s: %d fields, the header has %d" where cells.Length header.Length)
                      else
                          let get name = col name |> Option.map (fun j -> cells.[j])
                          match build absent where
                                    { Id = get "id"; Arrival = get "arrival_s"; Model = get "model"; Height = get "height"; Width = get "width"
                                      Frames = get "frames"; Steps = get "steps"; Deadline = get "deadline_s"; Priority = get "priority" } errors seen with
                          | Some t -> yield (where, t)
                          | None -> () ]
        rows

    let private parseJsonLines (lines: string array) (errors: ResizeArray<string>) (seen: ResizeArray<int64 * string>) =
        let known = Set.ofArray (Header.Split(','))
        [ for i in 0 .. lines.Length - 1 do
              let line = lines.[i]
              if line.Trim() <> "" then
                  let where = sprintf "line %d" (i + 1)
                  try
                      use doc = JsonDocument.Parse(line)
                      if doc.RootElement.ValueKind <> JsonValueKind.Object then errors.Add(sprintf "%s: not a JSON object" where)
                      else
                          let props = doc.RootElement.EnumerateObject() |> Seq.map (fun p -> p.Name, p.Value) |> List.ofSeq
                          for (name, _) in props do
                              if not (known.Contains name) then errors.Add(sprintf "%s: unknown field '%s'" where name)
                          // as strict as the HTTP API: a key once, numbers as JSON numbers
                          for (name, n) in props |> List.countBy fst do
                              if n > 1 then errors.Add(sprintf "%s: field '%s' is given %d times" where name n)
                          for (name, v) in props do
                              if name <> "model" && known.Contains name && v.ValueKind = JsonValueKind.String then
                                  errors.Add(sprintf "%s: %s must be a JSON number, not a string" where name)
                          let get name =
                              props
                              |> List.tryFind (fun (n, _) -> n = name)
                              |> Option.bind (fun (_, v) ->
                                  match v.ValueKind with
                                  | JsonValueKind.Null -> None
                                  | JsonValueKind.String -> Some(v.GetString())
                                  | _ -> Some(v.GetRawText()))
                          match build Set.empty where
                                    { Id = get "id"; Arrival = get "arrival_s"; Model = get "model"; Height = get "height"; Width = get "width"
                                      Frames = get "frames"; Steps = get "steps"; Deadline = get "deadline_s"; Priority = get "priority" } errors seen with
                          | Some t -> yield (where, t)
                          | None -> ()
                  with :? JsonException as e -> errors.Add(sprintf "%s: invalid JSON (%s)" where e.Message) ]

    // ids given on more than one line (over every line whose id parsed)
    let private duplicates (seen: ResizeArray<int64 * string>) (errors: ResizeArray<string>) =
        for (id, n) in seen |> Seq.countBy fst |> Seq.filter (fun (_, n) -> n > 1) do
            errors.Add(sprintf "id %d appears %d times" id n)

    /// Problems of one request against the profile it will run with: its model must be the profile's, and
    /// an image-only model (a profile without video) takes frames = 1.
    let checkAgainst (profile: Profile) (t: TraceRequest) : string list =
        [ if t.Model <> profile.Model.Value then
              yield sprintf "model '%s' is not the profile's model '%s'" t.Model profile.Model.Value
          elif not profile.Video && t.Shape.Frames > 1 then
              yield sprintf "frames = %d, but model '%s' is image-only (frames must be 1)" t.Shape.Frames t.Model ]

    /// Parses a trace (CSV with header, or JSON lines — told apart by the first non-blank character) and
    /// checks each request against the profile `profileOf` gives its model (None: the model is unknown).
    /// Every problem — header, fields, model and frames, duplicate ids, more than one model — is reported in one
    /// pass (ids and models over every line whose id parses, bad lines too). Returns the
    /// requests sorted by arrival (then id), or every problem found.
    let parseFor (profileOf: string -> Result<Profile, string>) (text: string) : Result<TraceRequest list, string list> =
        let lines = text.Replace("\r\n", "\n").Split('\n')
        let first = lines |> Array.tryFind (fun l -> l.Trim() <> "")
        let errors = ResizeArray<string>()
        let seen = ResizeArray<int64 * string>()
        let rows =
            match first with
            | None ->
                errors.Add "the trace is empty"
                []
            | Some l when l.TrimStart().StartsWith "{" -> parseJsonLines lines errors seen
            | Some _ ->
                let start = lines |> Array.findIndex (fun l -> l.Trim() <> "")
                parseCsv lines.[start..] errors seen
        for (where, t) in rows do
            match profileOf t.Model with
            | Ok p -> for e in checkAgainst p t do errors.Add(sprintf "%s: %s" where e)
            | Error e -> errors.Add(sprintf "%s: %s" where e)
        let trace = rows |> List.map snd
        duplicates seen errors
        // one model per trace: a server or a simulation serves one (checked over every line, bad ones too)
        match seen |> Seq.map snd |> Seq.filter ((<>) "") |> Seq.distinct |> List.ofSeq with
        | [] | [ _ ] -> ()
        | models -> errors.Add(sprintf "one model per trace; the trace has %s" (System.String.Join(", ", models)))
        if errors.Count > 0 then Error(List.ofSeq errors)
        else Ok(trace |> List.sortBy (fun t -> t.Arrival, t.Id))

    /// Parses a trace without a profile check (any model, any frames): `parseFor` with every model accepted.
    let parse (text: string) : Result<TraceRequest list, string list> =
        let lines = text.Replace("\r\n", "\n").Split('\n')
        let first = lines |> Array.tryFind (fun l -> l.Trim() <> "")
        let errors = ResizeArray<string>()
        let seen = ResizeArray<int64 * string>()
        let trace =
            match first with
            | None ->
                errors.Add "the trace is empty"
                []
            | Some l when l.TrimStart().StartsWith "{" -> parseJsonLines lines errors seen |> List.map snd
            | Some _ ->
                let start = lines |> Array.findIndex (fun l -> l.Trim() <> "")
                parseCsv lines.[start..] errors seen |> List.map snd
        duplicates seen errors
        if errors.Count > 0 then Error(List.ofSeq errors)
        else Ok(trace |> List.sortBy (fun t -> t.Arrival, t.Id))

    /// Whether a workload argument names a file rather than a workload (a path separator or a trace extension).
    let looksLikeFile (workload: string) =
        workload.Contains '/' || workload.Contains '\\'
        || [ ".csv"; ".jsonl"; ".json"; ".txt" ] |> List.exists (fun e -> workload.EndsWith(e, System.StringComparison.OrdinalIgnoreCase))
