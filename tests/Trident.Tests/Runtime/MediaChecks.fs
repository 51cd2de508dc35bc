/// Reading result files back with the libraries (never with our own code): SkiaSharp decodes images and animated
/// WebP, ffprobe (through FFMpegCore) reads MP4 and WebM.
module Trident.Tests.Runtime.MediaChecks

open System
open System.IO
open FFMpegCore
open SkiaSharp
open Trident.Runtime.Imaging

/// An image decoded by SkiaSharp: its format, size, frame count and the RGB bytes of its first frame.
type DecodedImage = { Format: SKEncodedImageFormat; Width: int; Height: int; Frames: int; FrameDurationsMs: int list; Rgb: byte[] }

/// Decodes an image (PNG, JPEG, WebP — animated too) with SkiaSharp; fails the test when it cannot.
let decodeImage (bytes: byte[]) =
    use data = SKData.CreateCopy bytes
    use codec = SKCodec.Create data
    if isNull codec then failwithf "SkiaSharp cannot decode these %d bytes" bytes.Length
    let info = SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul)
    let rgba = Array.zeroCreate<byte> (info.Width * info.Height * 4)
    let result = codec.GetPixels(info, rgba)
    if result <> SKCodecResult.Success then failwithf "SkiaSharp decoding failed: %A" result
    let rgb = Array.init (info.Width * info.Height * 3) (fun i -> rgba[i / 3 * 4 + i % 3])
    { Format = codec.EncodedFormat
      Width = info.Width
      Height = info.Height
      Frames = max 1 codec.FrameCount
      FrameDurationsMs = codec.FrameInfo |> Array.map (fun f -> f.Duration) |> List.ofArray
      Rgb = rgb }

/// What ffprobe reads from a video file.
type ProbedVideo = { FormatName: string; Codec: string; PixelFormat: string; Width: int; Height: int; Frames: int; FrameRate: float; FastStart: bool }

/// Whether an MP4's index (moov) comes before its data (mdat): +faststart.
let private moovFirst (bytes: byte[]) =
    let find (tag: string) =
        let t = Text.Encoding.ASCII.GetBytes tag
        let mutable at = -1
        let mutable i = 4
        while at < 0 && i + 4 <= bytes.Length do
            if bytes[i] = t[0] && bytes[i + 1] = t[1] && bytes[i + 2] = t[2] && bytes[i + 3] = t[3] then at <- i
            i <- i + 1
        at
    let moov, mdat = find "moov", find "mdat"
    moov > 0 && mdat > 0 && moov < mdat

/// Reads a video with ffprobe: container, codec, pixel format, size, the number of frames (every frame
/// decoded) and the average frame rate.
let probeVideo (bytes: byte[]) (extension: string) =
    let path = Path.Combine(Path.GetTempPath(), $"trident-probe-{Guid.NewGuid():N}.{extension}")
    File.WriteAllBytes(path, bytes)
    try
        let analysis = FFProbe.Analyse path
        let video = analysis.PrimaryVideoStream
        let frames = FFProbe.GetFrames path
        { FormatName = analysis.Format.FormatName
          Codec = video.CodecName
          PixelFormat = video.PixelFormat
          Width = video.Width.GetValueOrDefault()
          Height = video.Height.GetValueOrDefault()
          Frames = frames.Frames.Count
          FrameRate = video.AverageFrameRate
          FastStart = moovFirst bytes }
    finally
        File.Delete path

/// Frames of one size with a smooth pattern (so lossy codecs keep them close) that moves from frame to frame.
let movingFrames (count: int) (width: int) (height: int) =
    [ for f in 0 .. count - 1 ->
        RgbImage(width, height, Array.init (width * height * 3) (fun i ->
            let p = i / 3
            let x, y = p % width, p / width
            byte ((x * 4 + y * 2 + f * 16 + (i % 3) * 60) % 256))) ]

/// Mean absolute difference of two RGB byte arrays.
let meanAbsoluteDifference (a: byte[]) (b: byte[]) =
    if a.Length <> b.Length then failwithf "lengths differ: %d and %d" a.Length b.Length
    (Array.fold2 (fun acc (x: byte) (y: byte) -> acc + abs (int x - int y)) 0 a b |> float) / float a.Length
