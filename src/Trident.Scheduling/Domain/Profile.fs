namespace Trident.Scheduling

/// One measured batch point of a stage: the time of one run over `Batch` requests of the same shape
/// (one ONNX Runtime run with the batch dimension), at a degree. Profile format version 2.
type BatchPoint =
    { Shape: Shape
      /// sequence-parallel degree k (1 for encode and decode)
      Degree: int
      /// requests in the run, ≥ 1
      Batch: int
      /// diffuse: seconds per step of the whole batch; encode/decode: seconds per call of the whole batch
      Seconds: float<s> }

/// One measured point of a stage: latency and peak activation for a shape and degree.
type ProfilePoint =
    { Shape: Shape
      /// sequence-parallel degree k (1 for encode and decode)
      Degree: int
      /// diffuse: seconds per step; encode/decode: seconds per call
      Seconds: float<s>
      /// activation memory above the weights, on each of the k devices
      PeakActivation: float<GB> }

type StageProfile =
    { Weights: float<GB>
      /// true when the numbers are estimates rather than measurements
      Estimated: bool
      Points: ProfilePoint list
      /// batch measurements (batch sizes 1, 2, 4, … per shape and degree); empty: no batching measured
      /// (the cost model then assumes a batch of b costs b runs and the best batch is 1)
      Batches: BatchPoint list }

/// Latency and memory of one model's three stages on one device class (docs/profile-format.md).
type Profile =
    { Model: ModelName
      DeviceClass: string
      DeviceMemory: float<GB>
      /// provenance: the command and machine that measured it, or where the numbers come from
      Source: string
      Video: bool
      DefaultSteps: int
      /// encode output for one request (moved encode → diffuse)
      EmbeddingBytes: float<B>
      /// diffuse output per megapixel-frame (moved diffuse → decode)
      LatentBytesPerMpf: float<B>
      Encode: StageProfile
      Diffuse: StageProfile
      Decode: StageProfile }

module Profile =
    let stage (p: Profile) =
        function
        | Encode -> p.Encode
        | Diffuse -> p.Diffuse
        | Decode -> p.Decode

    /// The diffuse degrees the profile has measurements for, ascending.
    let degrees (p: Profile) =
        p.Diffuse.Points |> List.map _.Degree |> List.distinct |> List.sort

    /// Whether the profile measured `shape` in every stage: encode and decode, and the diffuse at each of `degrees`.
    let covers (degrees: int seq) (p: Profile) (shape: Shape) =
        let has (points: ProfilePoint list) k = points |> List.exists (fun x -> x.Shape = shape && x.Degree = k)
        has p.Encode.Points 1 && has p.Decode.Points 1 && degrees |> Seq.forall (has p.Diffuse.Points)

    /// The profile with only the points and batch points of `shapes`.
    let only (shapes: Shape seq) (p: Profile) =
        let keep = Set.ofSeq shapes
        let stage (s: StageProfile) =
            { s with
                Points = s.Points |> List.filter (fun x -> keep.Contains x.Shape)
                Batches = s.Batches |> List.filter (fun b -> keep.Contains b.Shape) }
        { p with Encode = stage p.Encode; Diffuse = stage p.Diffuse; Decode = stage p.Decode }

    /// `measured`, with the points and batch points of `kept` for the shapes `measured` has no point of (its own
    /// win): the union of two measurements of one model on one device class. Everything else is `measured`'s.
    let union (kept: Profile) (measured: Profile) =
        if kept.Model <> measured.Model then
            invalidArg (nameof kept) (sprintf "profiles of two models (%O, %O) are not merged" kept.Model measured.Model)
        let mine =
            [ measured.Encode; measured.Diffuse; measured.Decode ] |> List.collect (fun s -> s.Points |> List.map _.Shape) |> Set.ofList
        let add (m: StageProfile) (k: StageProfile) =
            { m with
                Points = m.Points @ (k.Points |> List.filter (fun x -> not (mine.Contains x.Shape)))
                Batches = m.Batches @ (k.Batches |> List.filter (fun b -> not (mine.Contains b.Shape))) }
        { measured with
            Encode = add measured.Encode kept.Encode
            Diffuse = add measured.Diffuse kept.Diffuse
            Decode = add measured.Decode kept.Decode }

    /// The profile with `note` added to its source (its provenance).
    let withNote (note: string) (p: Profile) = { p with Source = p.Source + "; " + note }

    /// Resident weights of a placement type.
    let weightsOf (p: Profile) (t: PlacementType) =
        PlacementType.stages t |> Seq.sumBy (fun s -> (stage p s).Weights)
