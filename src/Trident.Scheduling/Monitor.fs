namespace Trident.Scheduling

// Design note. The Monitor keeps what Adjust-on-Dispatch needs over a sliding window: the requests
// that arrived (their shapes and steps make the "recent request statistics" a new placement is
// planned for) and the stage tasks that completed. It is an immutable value: `arrived` and
// `completed` return a new monitor, old entries are dropped lazily when the window is read.
//
// Stage throughput. A stage's throughput is the number of its tasks completed per second over the
// window (a diffuse task of degree k counts once). Trident's dispatcher starts a request's encode
// together with its diffuse, so when diffuse is the bottleneck all three stages slow down together
// and the gap shows between the rate requests *arrive* and the rate they are served. The arrival
// rate is therefore reported with the stage rates, as the throughput of the entry point, and the
// imbalance is max / min over the four.
//
// Slow workloads. A window of fixed length holds too few arrivals to measure a rate when requests
// are minutes apart (hunyuanvideo-reference: one every 17 s), so the window stretches back to the
// `MinSamples`-th newest arrival when that is older than `Window` (at most `MaxStretch` windows).

open Trident.Scheduling.Placement

/// Sliding-window observations. Lists are newest first.
type Monitor =
    { Window: float<s>
      /// the window stretches back to cover at least this many arrivals
      MinSamples: int
      /// arrivals: time, shape, steps
      Arrivals: (float<s> * Shape * int) list
      /// completed stage tasks: time, stage
      Completions: (float<s> * Stage) list
      /// when observation began (rates over a window not yet full use the elapsed time)
      Since: float<s> }

/// Rates a monitor reports, in requests (or tasks) per second.
type StageThroughputs =
    { Arrivals: float
      Encode: float
      Diffuse: float
      Decode: float
      /// arrivals counted in the window
      Samples: int }

    /// fastest / slowest of the four rates (infinity when one is zero and another is not; 1 when all are zero)
    member this.Imbalance =
        let rates = [ this.Arrivals; this.Encode; this.Diffuse; this.Decode ]
        let hi = List.max rates
        let lo = List.min rates
        if hi <= 0.0 then 1.0 elif lo <= 0.0 then infinity else hi / lo

module Monitor =
    /// The window stretches at most to this many times its length.
    [<Literal>]
    let MaxStretch = 10.0

    let create (window: float<s>) (minSamples: int) (since: float<s>) =
        if window <= 0.0<s> then invalidArg (nameof window) "the window must be positive"
        { Window = window; MinSamples = max 0 minSamples; Arrivals = []; Completions = []; Since = since }

    /// Where the window ending at `now` starts: `Window` back, or further to cover MinSamples arrivals.
    let windowStart (now: float<s>) (m: Monitor) =
        let byTime = now - m.Window
        match List.tryItem (m.MinSamples - 1) m.Arrivals with
        | Some(t, _, _) when m.MinSamples > 0 && t <= byTime -> max (t - 1e-9<s>) (now - MaxStretch * m.Window)
        | _ -> byTime

    /// Drops entries older than the window.
    let trim (now: float<s>) (m: Monitor) =
        let start = windowStart now m
        { m with
            Arrivals = m.Arrivals |> List.takeWhile (fun (t, _, _) -> t > start)
            Completions = m.Completions |> List.takeWhile (fun (t, _) -> t > start) }

    /// The newest arrival, if any.
    let lastArrival (m: Monitor) = m.Arrivals |> List.tryHead |> Option.map (fun (t, _, _) -> t)

    /// A request arrived.
    let arrived (r: Request) (m: Monitor) =
        { m with Arrivals = (r.Arrival, r.Shape, r.Steps) :: m.Arrivals }

    /// A stage task completed at `time`.
    let completed (time: float<s>) (stage: Stage) (m: Monitor) =
        { m with Completions = (time, stage) :: m.Completions }

    /// The rates over the window ending at `now`.
    let throughputs (now: float<s>) (m: Monitor) : StageThroughputs =
        let start = windowStart now m
        let m = trim now m
        let span = float (now - max start m.Since) |> max 1e-9
        let count stage = m.Completions |> List.sumBy (fun (_, s) -> if s = stage then 1 else 0)
        { Arrivals = float m.Arrivals.Length / span
          Encode = float (count Encode) / span
          Diffuse = float (count Diffuse) / span
          Decode = float (count Decode) / span
          Samples = m.Arrivals.Length }

    /// The request statistics of the window ending at `now` (shape and steps mix, arrival rate).
    let stats (now: float<s>) (m: Monitor) : WorkloadStats =
        let start = windowStart now m
        let m = trim now m
        let span = now - max start m.Since |> max 1e-9<s>
        let n = float m.Arrivals.Length
        { Classes =
            m.Arrivals
            |> List.countBy (fun (_, sh, st) -> sh, st)
            |> List.sortBy (fun ((sh, st), _) -> sh.PixelFrames, sh.Height, sh.Width, st)
            |> List.map (fun ((sh, st), c) -> { Shape = sh; Steps = st; Share = float c / n })
          ArrivalRate = n / float span }
