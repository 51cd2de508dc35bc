namespace Trident.Scheduling

// Design note. The cost model turns a profile (measured points) into latency and memory for any
// shape and degree. Profiles are noisy (docs/reference-profiles.md): the same size can be measured
// slower than a smaller one, and efficiency is not monotone in k. We keep the data as measured and
// smooth only here, in one place:
//   * per stage and degree, the points are reduced to one curve over x = height·width·frames;
//   * the curve is made non-decreasing by isotonic regression (pool-adjacent-violators, weighted by
//     the number of points pooled), so a bigger input never costs less;
//   * between knots it interpolates a power law (straight line in log-log), which is exact at the
//     knots, positive, and monotone; beyond the largest knot it extrapolates with the last segment's
//     exponent clamped to [1, 2] (attention is at most quadratic in tokens), below the smallest with
//     the first segment's exponent clamped to [0, 1]. It never goes below zero.
// The reference code fits a quadratic a·x² + b·x + c per degree; a least-squares quadratic is not
// exact at the measured points and can dip, which is why this curve is used instead.

/// A non-decreasing, positive curve y(x) through measured points.
type Curve =
    private
        { Xs: float array
          Ys: float array }

module Curve =
    /// Pool-adjacent-violators: the closest non-decreasing sequence (weighted least squares).
    let private isotonic (ys: float array) (ws: float array) =
        // blocks of (value, weight, count)
        let blocks = System.Collections.Generic.List<float * float * int>()
        for i in 0 .. ys.Length - 1 do
            blocks.Add(ys.[i], ws.[i], 1)
            let mutable merged = true
            while merged && blocks.Count >= 2 do
                let (v2, w2, c2) = blocks.[blocks.Count - 1]
                let (v1, w1, c1) = blocks.[blocks.Count - 2]
                if v1 > v2 then
                    blocks.RemoveAt(blocks.Count - 1)
                    blocks.[blocks.Count - 1] <- ((v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2)
                else
                    merged <- false
        [| for (v, _, c) in blocks do
               for _ in 1..c -> v |]

    /// Fits a curve to (x, y) points; x > 0, y ≥ 0. Points at the same x are averaged.
    let fit (points: (float * float) seq) =
        let grouped =
            points
            |> Seq.groupBy fst
            |> Seq.map (fun (x, g) -> x, Seq.averageBy snd g, float (Seq.length g))
            |> Seq.sortBy (fun (x, _, _) -> x)
            |> Array.ofSeq
        if grouped.Length = 0 then invalidArg (nameof points) "a curve needs at least one point"
        let xs = grouped |> Array.map (fun (x, _, _) -> x)
        let ys = isotonic (grouped |> Array.map (fun (_, y, _) -> max y 0.0)) (grouped |> Array.map (fun (_, _, w) -> w))
        { Xs = xs; Ys = ys }

    let private powerLaw x0 y0 exponent x = if y0 <= 0.0 then 0.0 else y0 * (x / x0) ** exponent

    let private exponent x0 y0 x1 y1 =
        if y0 <= 0.0 || y1 <= 0.0 || x1 <= x0 then 1.0 else log (y1 / y0) / log (x1 / x0)

    /// Evaluates the curve at x (> 0).
    let eval (c: Curve) (x: float) =
        let n = c.Xs.Length
        if n = 1 then
            // one point: proportional to size, the simplest monotone assumption
            c.Ys.[0] * (x / c.Xs.[0])
        elif x <= c.Xs.[0] then
            let e = exponent c.Xs.[0] c.Ys.[0] c.Xs.[1] c.Ys.[1] |> max 0.0 |> min 1.0
            powerLaw c.Xs.[0] c.Ys.[0] e x
        elif x >= c.Xs.[n - 1] then
            let e = exponent c.Xs.[n - 2] c.Ys.[n - 2] c.Xs.[n - 1] c.Ys.[n - 1] |> max 1.0 |> min 2.0
            powerLaw c.Xs.[n - 1] c.Ys.[n - 1] e x
        else
            let mutable i = 0
            while c.Xs.[i + 1] < x do
                i <- i + 1
            let x0, y0, x1, y1 = c.Xs.[i], c.Ys.[i], c.Xs.[i + 1], c.Ys.[i + 1]
            if y0 <= 0.0 then
                // linear where a power law is undefined
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            else
                powerLaw x0 y0 (exponent x0 y0 x1 y1) x

/// A minimum degree for large inputs (the reference code's rule; memory is checked separately).
type MinDegreeRule =
    { Video: bool
      /// applies when height·width·frames is strictly above this
      AbovePixelFrames: float
      MinDegree: int }

/// How a request's deadline is set when the client gives none.
type DeadlineRule =
    /// arrival + scale · t_ref
    | SloScale of scale: float
    /// the reference code's rule: arrival + round(4 · t_D(k*)) · 1.1 + 2 s
    | ReferenceCode

/// Settings of the cost model. Policies and planners share them.
type CostSettings =
    {
      /// degrees a request may use; intersected with the degrees the profile measured
      Degrees: int list
      /// efficiency threshold θ: degrees with eff(k) < θ are not worth their devices
      EfficiencyThreshold: float
      MinDegreeRules: MinDegreeRule list
      Deadline: DeadlineRule }

module CostSettings =
    /// The reference implementation's minimum degrees (design.md appendix).
    let referenceMinDegrees =
        [ { Video = false; AbovePixelFrames = 2048.0 * 2048.0 - 1.0; MinDegree = 2 }
          { Video = true; AbovePixelFrames = 720.0 * 1280.0 * 17.0; MinDegree = 2 }
          { Video = true; AbovePixelFrames = 720.0 * 1280.0 * 33.0; MinDegree = 4 }
          { Video = true; AbovePixelFrames = 720.0 * 1280.0 * 65.0; MinDegree = 8 } ]

    let defaults =
        { Degrees = [ 1; 2; 4; 8 ]
          EfficiencyThreshold = 0.8
          MinDegreeRules = referenceMinDegrees
          Deadline = SloScale 4.0 }

/// A profile made queryable: latency and memory for any shape and degree.
type CostModel =
    { Profile: Profile
      Settings: CostSettings
      /// degrees both allowed and measured, ascending
      Degrees: int list
      DiffuseStep: Map<int, Curve>
      DiffuseActivation: Map<int, Curve>
      EncodeTime: Curve
      EncodeActivation: Curve
      DecodeTime: Curve
      DecodeActivation: Curve }

module CostModel =
    let private curveOf (points: ProfilePoint list) (value: ProfilePoint -> float) =
        points |> List.map (fun p -> p.Shape.PixelFrames, value p) |> Curve.fit

    /// Builds the model. Fails when the profile has no degree in common with the settings.
    let create (settings: CostSettings) (profile: Profile) =
        let measured = Profile.degrees profile
        let degrees = settings.Degrees |> List.filter (fun k -> List.contains k measured) |> List.sort
        if degrees.IsEmpty then
            invalidArg (nameof profile) (sprintf "profile %O measures degrees %A, none of the allowed %A" profile.Model measured settings.Degrees)
        let byDegree (value: ProfilePoint -> float) =
            degrees
            |> List.map (fun k -> k, curveOf (profile.Diffuse.Points |> List.filter (fun p -> p.Degree = k)) value)
            |> Map.ofList
        { Profile = profile
          Settings = settings
          Degrees = degrees
          DiffuseStep = byDegree (fun p -> float p.Seconds)
          DiffuseActivation = byDegree (fun p -> float p.PeakActivation)
          EncodeTime = curveOf profile.Encode.Points (fun p -> float p.Seconds)
          EncodeActivation = curveOf profile.Encode.Points (fun p -> float p.PeakActivation)
          DecodeTime = curveOf profile.Decode.Points (fun p -> float p.Seconds)
          DecodeActivation = curveOf profile.Decode.Points (fun p -> float p.PeakActivation) }

    let private checkDegree (m: CostModel) k =
        if not (m.DiffuseStep.ContainsKey k) then
            invalidArg "k" (sprintf "degree %d is not among %A for %O" k m.Degrees m.Profile.Model)

    /// Seconds per denoising step at degree k.
    let diffuseStep (m: CostModel) (shape: Shape) (k: int) : float<s> =
        checkDegree m k
        Curve.eval m.DiffuseStep.[k] shape.PixelFrames * 1.0<s>

    /// The whole diffuse stage: steps · t_D(shape, k).
    let diffuseTime (m: CostModel) (shape: Shape) (steps: int) (k: int) = float steps * diffuseStep m shape k

    let encodeTime (m: CostModel) (shape: Shape) : float<s> = Curve.eval m.EncodeTime shape.PixelFrames * 1.0<s>
    let decodeTime (m: CostModel) (shape: Shape) : float<s> = Curve.eval m.DecodeTime shape.PixelFrames * 1.0<s>

    /// Peak activation of a stage on each device it runs on (diffuse: each of the k devices).
    let activation (m: CostModel) (stage: Stage) (shape: Shape) (k: int) : float<GB> =
        let x = shape.PixelFrames
        match stage with
        | Encode -> Curve.eval m.EncodeActivation x * 1.0<GB>
        | Decode -> Curve.eval m.DecodeActivation x * 1.0<GB>
        | Diffuse ->
            checkDegree m k
            Curve.eval m.DiffuseActivation.[k] x * 1.0<GB>

    /// eff(k) = t(1) / (k · t(k)), relative to the smallest allowed degree when 1 is not allowed.
    let efficiency (m: CostModel) (shape: Shape) (k: int) =
        let k0 = List.head m.Degrees
        let t0 = float (diffuseStep m shape k0) * float k0
        t0 / (float k * float (diffuseStep m shape k))

    /// Peak memory on one device of placement type `t` while it serves this request at degree k:
    /// resident weights plus the largest activation among the stages it runs (they run one after
    /// another). Auxiliary types run their one stage.
    let memoryNeed (m: CostModel) (t: PlacementType) (shape: Shape) (k: int) : float<GB> =
        let weights = Profile.weightsOf m.Profile t
        let peak =
            PlacementType.stages t
            |> Seq.map (fun s -> activation m s shape (if s = Diffuse then k else 1))
            |> Seq.max
        weights + peak

    /// Whether a device of type `t` with memory `memory` can serve this request at degree k.
    let fits (m: CostModel) (t: PlacementType) (shape: Shape) (k: int) (memory: float<GB>) =
        memoryNeed m t shape k <= memory

    /// Whether the lead of a diffuse group of primary type `t` (with `memory`) can run `stage`, one that `t` does not
    /// hold, by loading its weights beside t's own: t's weights + the stage's weights + its activation at batch 1.
    /// That is how a layout with no ⟨E⟩ (⟨C⟩) device at all serves a type that lacks E (C) — a cluster too small for
    /// the auxiliary device beside the group a request needs (docs/policies.md, "Small clusters"): the simulator
    /// drops the loaded model again at the device's next task of another stage, as the live worker does.
    let leadFits (m: CostModel) (t: PlacementType) (stage: Stage) (shape: Shape) (memory: float<GB>) =
        not (PlacementType.holds stage t)
        && Profile.weightsOf m.Profile t + (Profile.stage m.Profile stage).Weights + activation m stage shape 1 <= memory

    /// Seconds to load a stage's weights onto a device over a host-to-device link of `bandwidth`.
    let loadTime (m: CostModel) (bandwidth: float<B/s>) (stage: Stage) : float<s> =
        float (Profile.stage m.Profile stage).Weights * 1e9<B> / bandwidth

    /// The minimum degree from the rules (not memory).
    let ruleMinDegree (m: CostModel) (shape: Shape) =
        m.Settings.MinDegreeRules
        |> List.filter (fun r -> r.Video = (shape.Frames > 1) && shape.PixelFrames > r.AbovePixelFrames)
        |> List.fold (fun acc r -> max acc r.MinDegree) 1

    /// The smallest allowed degree that satisfies the rules and, on type `t` with `memory`, fits.
    let minDegree (m: CostModel) (t: PlacementType) (shape: Shape) (memory: float<GB>) =
        let rule = ruleMinDegree m shape
        m.Degrees |> List.tryFind (fun k -> k >= rule && fits m t shape k memory)

    /// k*(shape): the largest degree with eff ≥ θ, never below the smallest degree that satisfies
    /// the rules and fits a ⟨D⟩ device of the profile's memory. None when no degree fits at all.
    let kStar (m: CostModel) (shape: Shape) =
        match minDegree m D shape m.Profile.DeviceMemory with
        | None -> None
        | Some lo ->
            m.Degrees
            |> List.filter (fun k -> k >= lo && efficiency m shape k >= m.Settings.EfficiencyThreshold)
            |> List.tryLast
            |> Option.orElse (Some lo)

    // The ways `shape` can be served on `cluster`: (primary type, smallest degree, the stages that need a device beside
    // the group, node size), per node; `lead`: a stage the type lacks may run on the group's lead (leadFits).
    let private servingRoutes (m: CostModel) (cluster: Cluster) (shape: Shape) (lead: bool) =
        let devices = cluster.Devices
        let auxFits t = devices |> Array.exists (fun d -> fits m t shape 1 d.Memory)
        let nodes = devices |> Array.groupBy _.Node |> Array.map (fun (_, ds) -> ds.Length, (ds |> Array.map _.Memory |> Array.min))
        [ for t in [ EDC; DC; ED; D ] do
              for size, memory in nodes do
                  // per stage t lacks: None when neither an auxiliary device nor the lead can run it, else the
                  // devices it needs beside the group (none: t holds it, or the lead loads it)
                  let extraFor stage aux =
                      if PlacementType.holds stage t || (lead && leadFits m t stage shape memory) then Some []
                      elif auxFits aux then Some [ stage ]
                      else None
                  match minDegree m t shape memory, extraFor Encode E, extraFor Decode C with
                  | Some k, Some e, Some c -> yield t, k, e @ c, size
                  | _ -> () ]

    let private anyFits (cluster: Cluster) routes =
        routes |> List.exists (fun (_, k, extra: Stage list, size) -> k <= size && k + extra.Length <= cluster.Devices.Length)

    /// Whether `shape` can be served on `cluster` only by a layout whose group lead loads a stage its type lacks
    /// (`leadFits`): every layout with the auxiliary devices its type needs is too large for the cluster, and one
    /// without them serves it (flux 2048² on one node of two 48 GB devices).
    let needsLeadLoading (m: CostModel) (cluster: Cluster) (shape: Shape) =
        not (anyFits cluster (servingRoutes m cluster shape false)) && anyFits cluster (servingRoutes m cluster shape true)

    /// Why no placement of `cluster` can serve `shape` (None when some can). A route needs a group of k devices on one
    /// node that holds the request's diffuse at an allowed degree — a primary type (⟨EDC⟩, ⟨DC⟩, ⟨ED⟩ or ⟨D⟩) and
    /// `minDegree` on that node's smallest memory (the degree rules and the stages' memory) — plus, for each stage that
    /// type lacks, one device more holding that stage (`fits`), unless the group's lead can load it beside its own
    /// weights (`leadFits`: a layout without that auxiliary type runs the stage there). So 129-frame 720×1280
    /// HunyuanVideo on one node of eight 48 GB devices cannot be served: its diffuse needs 8 devices (the degree rules),
    /// ⟨ED⟩ and ⟨D⟩ then need a ⟨C⟩ device more (the 30 GB decode does not fit beside the DiT), and ⟨DC⟩ / ⟨EDC⟩ do
    /// not fit beside the decode; flux 2048² on one node of two 48 GB devices can: two ⟨DC⟩ at k = 2, the lead loading
    /// the text encoders. Pure; heterogeneous clusters are judged per node by its smallest device.
    let unservableOn (m: CostModel) (cluster: Cluster) (shape: Shape) : string option =
        let devices = cluster.Devices
        let nodes = devices |> Array.groupBy _.Node |> Array.map (fun (_, ds) -> ds.Length, (ds |> Array.map _.Memory |> Array.min))
        let routes = servingRoutes m cluster shape true
        if anyFits cluster routes then None
        elif routes.IsEmpty then
            Some(sprintf "%O does not fit any device of this cluster at any allowed degree (profile %s)" shape m.Profile.Model.Value)
        else
            let t, k, extra, _ = routes |> List.minBy (fun (_, k, extra, _) -> k + extra.Length, k)
            let largest = nodes |> Array.map fst |> Array.max
            let stages = extra |> List.map (function Encode -> "encoder" | Diffuse -> "diffuse" | Decode -> "decoder")
            Some(
                sprintf "%O cannot be served by any placement of this cluster (%d devices, at most %d on one node; profile %s): at best it needs a group of %d %s devices on one node%s"
                    shape devices.Length largest m.Profile.Model.Value k (PlacementType.name t)
                    (if extra.IsEmpty then "" else sprintf " and %d more for its %s" extra.Length (String.concat " and " stages))
            )

    /// The degree used for reference latencies: k*, or the largest degree when nothing fits.
    let referenceDegree (m: CostModel) (shape: Shape) =
        kStar m shape |> Option.defaultValue (List.last m.Degrees)

    /// t_ref = t_E + steps · t_D(k*) + t_C: the latency of a request served alone at its best degree.
    let tRef (m: CostModel) (shape: Shape) (steps: int) : float<s> =
        encodeTime m shape + diffuseTime m shape steps (referenceDegree m shape) + decodeTime m shape

    /// The deadline of a request that arrived at `arrival` when the client gives none.
    let deadline (m: CostModel) (arrival: float<s>) (shape: Shape) (steps: int) : float<s> =
        match m.Settings.Deadline with
        | SloScale scale -> arrival + scale * tRef m shape steps
        | ReferenceCode ->
            let td = float (diffuseTime m shape steps (referenceDegree m shape))
            arrival + (System.Math.Round(4.0 * td) * 1.1 + 2.0) * 1.0<s>

    /// Bytes moved from the diffuse group to a separate decode device.
    let latentBytes (m: CostModel) (shape: Shape) : float<B> = m.Profile.LatentBytesPerMpf * shape.Mpf

    /// Bytes moved from a separate encode device to the diffuse group.
    let embeddingBytes (m: CostModel) : float<B> = m.Profile.EmbeddingBytes

    // ---- batching ----------------------------------------------------------------------------------
    // A batch of b requests of one shape runs as one ONNX Runtime run with the batch dimension. Its time
    // relative to one request, f(b) = t(b) / t(1), comes from the profile's batch points (measured by
    // `trident profile`, batch sizes 1, 2, 4, …): at the measured shape nearest in log(height·width·frames)
    // with batch points at that stage and degree, linear between measured batch sizes, and per request
    // beyond the largest (f(b) = f(bmax) · b / bmax). Without batch points the assumption is the
    // conservative one: f(b) = b (batching gains nothing), and the best batch is 1.

    let private batchCurve (m: CostModel) (stage: Stage) (shape: Shape) (k: int) =
        let pts = (Profile.stage m.Profile stage).Batches |> List.filter (fun p -> p.Degree = (if stage = Diffuse then k else 1))
        if pts.IsEmpty then None
        else
            let x = log shape.PixelFrames
            let nearest = pts |> List.minBy (fun p -> abs (log p.Shape.PixelFrames - x), p.Shape.PixelFrames) |> fun p -> p.Shape
            let at = pts |> List.filter (fun p -> p.Shape = nearest) |> List.sortBy _.Batch
            match at |> List.tryFind (fun p -> p.Batch = 1) with
            | None -> None
            | Some one -> Some(at |> List.map (fun p -> p.Batch, float p.Seconds / float one.Seconds))

    /// f(b) = t(b) / t(1): the time of one run over b requests of `shape` relative to one request, for a
    /// stage at degree k (see the note above; b ≥ 1). 1 at b = 1.
    let batchFactor (m: CostModel) (stage: Stage) (shape: Shape) (k: int) (b: int) =
        if b < 1 then invalidArg (nameof b) (sprintf "batch %d: must be ≥ 1" b)
        match batchCurve m stage shape k with
        | None -> float b
        | Some curve ->
            let bs = curve |> List.toArray
            match bs |> Array.tryFind (fun (n, _) -> n = b) with
            | Some(_, f) -> f
            | None ->
                let (bmax, fmax) = bs.[bs.Length - 1]
                if b > bmax then fmax * float b / float bmax
                else
                    let i = bs |> Array.findIndexBack (fun (n, _) -> n < b)
                    let (b0, f0), (b1, f1) = bs.[i], bs.[i + 1]
                    f0 + (f1 - f0) * float (b - b0) / float (b1 - b0)

    /// A batch of b must serve at least this many times the requests per device-second of one request alone
    /// (b / f(b) ≥ 1.2) to be worth running: a batch finishes all its members together, ≈ f(b) times later
    /// than one alone, and below this gain it buys that stretch with almost no device time. Measured
    /// (2026-12-01, simulated, the tiny pipeline's CPU profile — 128² at degree 1: f(4) = 3.56, a gain of
    /// 1.12 — 2 devices, Poisson, 600 requests, seeds 1/2/3/42): at 10 req/s attainment without batching
    /// 0.853/0.825/0.843/0.797, with batches of any gain 0.798/0.787/0.822/0.740, with this floor
    /// 0.823/0.838/0.848/0.815 (mean 0.831 against 0.830 without batching; mean latency lower at every seed);
    /// at 20 req/s (overload) batches still cost attainment, less with the floor: 0.502/0.447/0.467/0.453
    /// without, 0.435/0.402/0.435/0.430 with any gain, 0.477/0.432/0.440/0.430 with it.
    /// Measured again 2026-12-03 after the fill became deadline-aware, on the start-up CPU profile of an AMD EPYC
    /// machine (64² at degree 1: a batch of 8 gains 1.29×, 128² 1.09×; `simulate --workload poisson --profile P
    /// --devices 2 --count 600 --max-batch 8`, same seeds): at 10 req/s without batching 0.632/0.637/0.617/0.620,
    /// with this floor 0.643/0.643/0.630/0.608, with a floor of 1.1 or 1.0 (the same plans) 0.617/0.587/0.578/0.592;
    /// at 20 req/s 0.508/0.498/0.497/0.457, 0.495/0.503/0.475/0.435 and 0.452/0.440/0.437/0.408 — a lower floor
    /// still costs attainment.
    [<Literal>]
    let MinBatchGain = 1.2

    /// The best batch size of the diffuse stage for `shape` at degree k: among the measured batch sizes,
    /// the one with the most requests per device-second (b / f(b)) whose batch latency stays within
    /// what the SLO allows (f(b) ≤ the deadline scale: SloScale s → s, the reference-code rule → 4, its
    /// typical ratio) and whose gain is at least `MinBatchGain`. 1 when the profile has no batch points.
    let bestBatch (m: CostModel) (shape: Shape) (k: int) =
        let allowed =
            match m.Settings.Deadline with
            | SloScale scale -> scale
            | ReferenceCode -> 4.0
        match batchCurve m Diffuse shape k with
        | None -> 1
        | Some curve ->
            curve
            |> List.filter (fun (b, f) -> b = 1 || (f <= allowed && float b / f >= MinBatchGain))
            |> List.maxBy (fun (b, f) -> float b / f, -b)
            |> fst

    /// The measured (shape, degree) points of the diffuse stage where a batch pays — best batch > 1 (`bestBatch`:
    /// within the SLO and at least `MinBatchGain`) — with that best batch, in shape then degree order. Empty when
    /// no measured shape batches (no batch points, or none gaining ≥ MinBatchGain: common on CPU devices).
    let batchingPoints (m: CostModel) : (Shape * int * int) list =
        (Profile.stage m.Profile Diffuse).Batches
        |> List.map (fun p -> p.Shape, p.Degree)
        |> List.distinct
        |> List.sortBy (fun (shape, k) -> shape.PixelFrames, k)
        |> List.choose (fun (shape, k) ->
            let b = bestBatch m shape k
            if b > 1 then Some(shape, k, b) else None)

    /// The time of a stage over a batch of b requests relative to one request, as the runtime runs it: the
    /// diffuse as one batch run, f(b); encode and decode as one run where that pays (f(b) < b) and one run per
    /// request otherwise (`PlanExecutor.BatchPays`), so min(f(b), b). b ≥ 1; 1 at b = 1.
    let runFactor (m: CostModel) (stage: Stage) (shape: Shape) (k: int) (b: int) =
        let f = batchFactor m stage shape k b
        if stage = Diffuse then f else min f (float b)

    /// Seconds of one stage over a batch of b requests of `shape` (diffuse: all `steps` steps, at degree k), as the
    /// runtime runs it (`runFactor`); the planner's batch routes and the simulator's batch tasks both take it.
    let batchTime (m: CostModel) (stage: Stage) (shape: Shape) (steps: int) (k: int) (b: int) : float<s> =
        let one =
            match stage with
            | Encode -> encodeTime m shape
            | Diffuse -> diffuseTime m shape steps k
            | Decode -> decodeTime m shape
        one * runFactor m stage shape k b
