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

    /// Resident weights of a placement type.
    let weightsOf (p: Profile) (t: PlacementType) =
        PlacementType.stages t |> Seq.sumBy (fun s -> (stage p s).Weights)
