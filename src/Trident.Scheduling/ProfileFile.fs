namespace Trident.Scheduling

// The profile file (docs/profile-format.md): plain JSON, units in the field names. Parsing is
// pure (text in, profile or every problem out); the caller reads and writes the file.

open System
open System.IO
open System.Text
open System.Text.Json

module ProfileFile =
    [<Literal>]
    let Format = "trident-profile"

    /// The version this build writes. Version 2 added each stage's "batches" (batch sizes 1, 2, 4, … per
    /// shape and degree); version 1 files still load, with no batch points (best batch 1).
    [<Literal>]
    let Version = 2

    /// The versions this build reads.
    let ReadableVersions = [ 1; 2 ]

    let private stageKey =
        function
        | Encode -> "encode"
        | Diffuse -> "diffuse"
        | Decode -> "decode"

    // ---- writing ---------------------------------------------------------------------------------

    /// Writes a profile as one JSON object through `w` (stable field order), e.g. embedded in a larger document
    /// written by the same writer (a saved dispatch round), in that writer's layout.
    let write (w: Utf8JsonWriter) (p: Profile) : unit =
         w.WriteStartObject()
         w.WriteString("format", Format)
         w.WriteNumber("version", Version)
         w.WriteString("model", p.Model.Value)
         w.WriteString("device_class", p.DeviceClass)
         w.WriteNumber("device_memory_gb", float p.DeviceMemory)
         w.WriteString("source", p.Source)
         w.WriteBoolean("video", p.Video)
         w.WriteNumber("default_steps", p.DefaultSteps)
         w.WriteNumber("embedding_bytes", float p.EmbeddingBytes)
         w.WriteNumber("latent_bytes_per_mpf", float p.LatentBytesPerMpf)
         w.WriteStartObject("stages")
         for stage in Stage.all do
             let sp = Profile.stage p stage
             w.WriteStartObject(stageKey stage)
             w.WriteNumber("weights_gb", float sp.Weights)
             w.WriteBoolean("estimated", sp.Estimated)
             w.WriteStartArray("points")
             for pt in sp.Points do
                 w.WriteStartObject()
                 w.WriteNumber("height", pt.Shape.Height)
                 w.WriteNumber("width", pt.Shape.Width)
                 w.WriteNumber("frames", pt.Shape.Frames)
                 w.WriteNumber("degree", pt.Degree)
                 w.WriteNumber("seconds", float pt.Seconds)
                 w.WriteNumber("peak_activation_gb", float pt.PeakActivation)
                 w.WriteEndObject()
             w.WriteEndArray()
             w.WriteStartArray("batches")
             for b in sp.Batches do
                 w.WriteStartObject()
                 w.WriteNumber("height", b.Shape.Height)
                 w.WriteNumber("width", b.Shape.Width)
                 w.WriteNumber("frames", b.Shape.Frames)
                 w.WriteNumber("degree", b.Degree)
                 w.WriteNumber("batch", b.Batch)
                 w.WriteNumber("seconds", float b.Seconds)
                 w.WriteEndObject()
             w.WriteEndArray()
             w.WriteEndObject()
         w.WriteEndObject()
         w.WriteEndObject()

    /// Serialises a profile as indented JSON (stable field order; same profile → same text).
    let serialize (p: Profile) : string =
        use ms = new MemoryStream()
        (use w = new Utf8JsonWriter(ms, JsonWriterOptions(Indented = true))
         write w p)
        Encoding.UTF8.GetString(ms.ToArray()) + "\n"

    // ---- reading ---------------------------------------------------------------------------------

    /// Collects problems while reading; every problem names its JSON path.
    type private Reader() =
        let errors = ResizeArray<string>()
        member _.Errors = List.ofSeq errors
        member _.Fail(path: string, msg: string) = errors.Add(sprintf "%s: %s" path msg)

        member r.Prop(e: JsonElement, path: string, name: string) : JsonElement option =
            match e.TryGetProperty name with
            | true, v -> Some v
            | _ ->
                r.Fail(path + "." + name, "missing")
                None

        member r.Known(e: JsonElement, path: string, names: string list) =
            for p in e.EnumerateObject() do
                if not (List.contains p.Name names) then r.Fail(path + "." + p.Name, "unknown field")

        member r.Str(e: JsonElement, path: string, name: string) =
            r.Prop(e, path, name)
            |> Option.bind (fun v ->
                if v.ValueKind = JsonValueKind.String then Some(v.GetString())
                else r.Fail(path + "." + name, "must be a string"); None)

        member r.Num(e: JsonElement, path: string, name: string, ok: float -> bool, rule: string) =
            r.Prop(e, path, name)
            |> Option.bind (fun v ->
                if v.ValueKind <> JsonValueKind.Number then r.Fail(path + "." + name, "must be a number"); None
                else
                    let x = v.GetDouble()
                    if Double.IsFinite x && ok x then Some x
                    else r.Fail(path + "." + name, sprintf "%g %s" x rule); None)

        member r.Int(e: JsonElement, path: string, name: string, ok: int -> bool, rule: string) =
            r.Prop(e, path, name)
            |> Option.bind (fun v ->
                match v.ValueKind, v.TryGetInt32() with
                | JsonValueKind.Number, (true, x) when ok x -> Some x
                | JsonValueKind.Number, (true, x) -> r.Fail(path + "." + name, sprintf "%d %s" x rule); None
                | _ -> r.Fail(path + "." + name, "must be an integer"); None)

        member r.Bool(e: JsonElement, path: string, name: string) =
            r.Prop(e, path, name)
            |> Option.bind (fun v ->
                match v.ValueKind with
                | JsonValueKind.True -> Some true
                | JsonValueKind.False -> Some false
                | _ -> r.Fail(path + "." + name, "must be true or false"); None)

    let private positive = (fun x -> x > 0.0), "must be > 0"
    let private nonNegative = (fun x -> x >= 0.0), "must be ≥ 0"
    let private positiveInt = (fun x -> x > 0), "must be ≥ 1"

    let private readPoint (r: Reader) (path: string) (e: JsonElement) =
        if e.ValueKind <> JsonValueKind.Object then r.Fail(path, "must be an object"); None
        else
            r.Known(e, path, [ "height"; "width"; "frames"; "degree"; "seconds"; "peak_activation_gb" ])
            let h = r.Int(e, path, "height", fst positiveInt, snd positiveInt)
            let w = r.Int(e, path, "width", fst positiveInt, snd positiveInt)
            let f = r.Int(e, path, "frames", fst positiveInt, snd positiveInt)
            let k = r.Int(e, path, "degree", fst positiveInt, snd positiveInt)
            let sec = r.Num(e, path, "seconds", fst positive, snd positive)
            let act = r.Num(e, path, "peak_activation_gb", fst nonNegative, snd nonNegative)
            match h, w, f, k, sec, act with
            | Some h, Some w, Some f, Some k, Some sec, Some act ->
                Some { Shape = { Height = h; Width = w; Frames = f }
                       Degree = k
                       Seconds = sec * 1.0<s>
                       PeakActivation = act * 1.0<GB> }
            | _ -> None

    let private readBatch (r: Reader) (path: string) (e: JsonElement) : BatchPoint option =
        if e.ValueKind <> JsonValueKind.Object then r.Fail(path, "must be an object"); None
        else
            r.Known(e, path, [ "height"; "width"; "frames"; "degree"; "batch"; "seconds" ])
            let h = r.Int(e, path, "height", fst positiveInt, snd positiveInt)
            let w = r.Int(e, path, "width", fst positiveInt, snd positiveInt)
            let f = r.Int(e, path, "frames", fst positiveInt, snd positiveInt)
            let k = r.Int(e, path, "degree", fst positiveInt, snd positiveInt)
            let b = r.Int(e, path, "batch", fst positiveInt, snd positiveInt)
            let sec = r.Num(e, path, "seconds", fst positive, snd positive)
            match h, w, f, k, b, sec with
            | Some h, Some w, Some f, Some k, Some b, Some sec ->
                Some({ Shape = { Height = h; Width = w; Frames = f }; Degree = k; Batch = b; Seconds = sec * 1.0<s> }: BatchPoint)
            | _ -> None

    // Version 1 has no "batches"; version 2 requires it (an empty array: nothing measured).
    let private readStage (r: Reader) (version: int) (path: string) (stage: Stage) (e: JsonElement) =
        if e.ValueKind <> JsonValueKind.Object then r.Fail(path, "must be an object"); None
        else
            r.Known(e, path, [ "weights_gb"; "estimated"; "points" ] @ (if version >= 2 then [ "batches" ] else []))
            let batches =
                if version < 2 then Some []
                else
                    r.Prop(e, path, "batches")
                    |> Option.bind (fun arr ->
                        if arr.ValueKind <> JsonValueKind.Array then r.Fail(path + ".batches", "must be an array"); None
                        else
                            let bs = [ for i, be in Seq.indexed (arr.EnumerateArray()) -> readBatch r (sprintf "%s.batches[%d]" path i) be ]
                            if List.forall Option.isSome bs then
                                let bs = List.choose id bs
                                if stage <> Diffuse then
                                    bs |> List.iteri (fun i b -> if b.Degree <> 1 then r.Fail(sprintf "%s.batches[%d].degree" path i, "must be 1 for encode and decode"))
                                bs
                                |> List.countBy (fun b -> b.Shape, b.Degree, b.Batch)
                                |> List.filter (fun (_, n) -> n > 1)
                                |> List.iter (fun ((sh, k, b), _) -> r.Fail(path + ".batches", sprintf "shape %O at degree %d and batch %d appears more than once" sh k b))
                                bs
                                |> List.groupBy (fun b -> b.Shape, b.Degree)
                                |> List.iter (fun ((sh, k), g) ->
                                    if not (g |> List.exists (fun b -> b.Batch = 1)) then
                                        r.Fail(path + ".batches", sprintf "shape %O at degree %d has batch points but none at batch 1 (the reference of the others)" sh k))
                                Some bs
                            else None)
            let weights = r.Num(e, path, "weights_gb", fst nonNegative, snd nonNegative)
            let estimated = r.Bool(e, path, "estimated")
            let points =
                r.Prop(e, path, "points")
                |> Option.bind (fun arr ->
                    if arr.ValueKind <> JsonValueKind.Array then r.Fail(path + ".points", "must be an array"); None
                    else
                        let pts = [ for i, pe in Seq.indexed (arr.EnumerateArray()) -> readPoint r (sprintf "%s.points[%d]" path i) pe ]
                        if pts.IsEmpty then r.Fail(path + ".points", "needs at least one point")
                        if List.forall Option.isSome pts then Some(List.choose id pts) else None)
            points
            |> Option.iter (fun pts ->
                if stage <> Diffuse then
                    pts |> List.iteri (fun i p -> if p.Degree <> 1 then r.Fail(sprintf "%s.points[%d].degree" path i, "must be 1 for encode and decode"))
                pts
                |> List.countBy (fun p -> p.Shape, p.Degree)
                |> List.filter (fun (_, n) -> n > 1)
                |> List.iter (fun ((sh, k), _) -> r.Fail(path + ".points", sprintf "shape %O at degree %d appears more than once" sh k)))
            match weights, estimated, points, batches with
            | Some w, Some est, Some pts, Some bs -> Some { Weights = w * 1.0<GB>; Estimated = est; Points = pts; Batches = bs }
            | _ -> None

    /// Parses and validates a profile; on failure, every problem found, each naming its JSON path.
    let parse (json: string) : Result<Profile, string list> =
        let r = Reader()
        try
            use doc = JsonDocument.Parse(json)
            let e = doc.RootElement
            if e.ValueKind <> JsonValueKind.Object then Error [ "$: a profile must be a JSON object" ]
            else
                let p = "$"
                r.Known(e, p, [ "format"; "version"; "model"; "device_class"; "device_memory_gb"; "source"; "video"; "default_steps"; "embedding_bytes"; "latent_bytes_per_mpf"; "stages" ])
                match r.Str(e, p, "format") with
                | Some f when f <> Format -> r.Fail("$.format", sprintf "'%s' is not '%s'" f Format)
                | _ -> ()
                let version =
                    r.Int(e, p, "version", (fun v -> List.contains v ReadableVersions),
                          sprintf "is not a supported version (this build reads versions %s)" (ReadableVersions |> List.map string |> String.concat ", "))
                    |> Option.defaultValue Version
                let model = r.Str(e, p, "model")
                model |> Option.iter (fun m -> if String.IsNullOrWhiteSpace m then r.Fail("$.model", "must not be empty"))
                let deviceClass = r.Str(e, p, "device_class")
                let memory = r.Num(e, p, "device_memory_gb", fst positive, snd positive)
                let source = r.Str(e, p, "source")
                let video = r.Bool(e, p, "video")
                let steps = r.Int(e, p, "default_steps", fst positiveInt, snd positiveInt)
                let emb = r.Num(e, p, "embedding_bytes", fst nonNegative, snd nonNegative)
                let lat = r.Num(e, p, "latent_bytes_per_mpf", fst nonNegative, snd nonNegative)
                let stages =
                    r.Prop(e, p, "stages")
                    |> Option.bind (fun se ->
                        if se.ValueKind <> JsonValueKind.Object then r.Fail("$.stages", "must be an object"); None
                        else
                            r.Known(se, "$.stages", [ "encode"; "diffuse"; "decode" ])
                            let read stage =
                                r.Prop(se, "$.stages", stageKey stage)
                                |> Option.bind (readStage r version ("$.stages." + stageKey stage) stage)
                            match read Encode, read Diffuse, read Decode with
                            | Some en, Some di, Some de -> Some(en, di, de)
                            | _ -> None)
                match model, deviceClass, memory, source, video, steps, emb, lat, stages, r.Errors with
                | Some m, Some dc, Some mem, Some src, Some v, Some st, Some emb, Some lat, Some(en, di, de), [] ->
                    Ok { Model = ModelName m
                         DeviceClass = dc
                         DeviceMemory = mem * 1.0<GB>
                         Source = src
                         Video = v
                         DefaultSteps = st
                         EmbeddingBytes = emb * 1.0<B>
                         LatentBytesPerMpf = lat * 1.0<B>
                         Encode = en
                         Diffuse = di
                         Decode = de }
                | _ -> Error r.Errors
        with :? JsonException as ex ->
            Error [ sprintf "$: not valid JSON: %s" ex.Message ]
