namespace Trident.Scheduling

/// height × width × frames (frames = 1 for an image). Pixels, not latent units.
[<Struct>]
type Shape =
    { Height: int
      Width: int
      Frames: int }

    /// height · width · frames, the size the cost model interpolates over
    member this.PixelFrames = float this.Height * float this.Width * float this.Frames
    /// megapixel-frames
    member this.Mpf = this.PixelFrames / 1e6
    override this.ToString() =
        if this.Frames = 1 then sprintf "%dx%d" this.Height this.Width
        else sprintf "%dx%dx%d" this.Height this.Width this.Frames

module Shape =
    let image h w = { Height = h; Width = w; Frames = 1 }
    let video h w f = { Height = h; Width = w; Frames = f }

/// A generation request as the scheduler sees it (the prompt lives in the runtime).
type Request =
    { Id: RequestId
      Model: ModelName
      Shape: Shape
      /// denoising steps, ≥ 1
      Steps: int
      /// when it arrived
      Arrival: float<s>
      /// when it should be finished (absolute, same clock as Arrival)
      Deadline: float<s>
      /// optional client priority, Priority.MinLevel … MaxLevel (absent = 0); higher is more important:
      /// it orders the queue before deadline slack and weights the request's reward by 2^priority
      /// (`Priority.weight`, docs/policies.md, "Priority")
      Priority: int option }

/// Client priority levels (docs/policies.md, "Priority"). A request's priority p (absent = 0) orders
/// the dispatch queue before deadline slack (higher first) and weights its reward in the dispatch
/// objective and the preemption rule by ω(p) = 2^p: a priority-1 request is worth two priority-0
/// requests when devices are short. The range is small on purpose: ω spans 1/8 … 8, so the largest
/// reward of a round stays within 8 × the on-time reward and the solver's relative gap keeps its meaning.
module Priority =
    /// the lowest priority accepted (ω = 1/8)
    [<Literal>]
    let MinLevel = -3

    /// the highest priority accepted (ω = 8)
    [<Literal>]
    let MaxLevel = 3

    /// The level of an optional priority: absent = 0; values outside MinLevel … MaxLevel (which the API
    /// and the trace parser refuse) are clamped, so a job journalled before the range existed still loads.
    let level (p: int option) = match p with None -> 0 | Some p -> max MinLevel (min MaxLevel p)

    /// ω(p) = 2^level(p), the factor on a request's rewards.
    let weight (p: int option) = pown 2.0 (level p)

    /// Why a priority is refused, or None when it is in range (the one message the API and the trace
    /// parser give).
    let problem (p: int) =
        if p < MinLevel || p > MaxLevel then
            Some(sprintf "priority %d is out of range: it must be an integer from %d to %d (higher is more urgent; each level doubles the request's weight)" p MinLevel MaxLevel)
        else None
