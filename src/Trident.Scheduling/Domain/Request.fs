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
      /// optional client priority; higher is more important
      Priority: int option }
