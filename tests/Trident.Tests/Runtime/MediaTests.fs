/// Result files: images through SkiaSharp (PNG lossless, JPEG and WebP close to the frame), videos through
/// ffmpeg (MP4 H.264 yuv420p +faststart, WebM VP9, animated WebP) with exactly the frames and frame rate asked
/// for — each read back with a library (SkiaSharp, ffprobe); and tensors to 8-bit frames like diffusers.
module Trident.Tests.Runtime.MediaTests

open System
open FsCheck.FSharp
open Expecto
open SkiaSharp
open Trident.Tests.TestSupport
open Trident.Runtime.Execution
open Trident.Runtime.Imaging
open Trident.Tests.Runtime.RuntimeGenerators
open Trident.Tests.Runtime.MediaChecks

// ---- images --------------------------------------------------------------------------------------------

let ``a PNG decodes back to the same pixels`` =
    testProp 100 "a PNG decodes back to the same pixels" <| fun () ->
        Prop.forAll (Arb.fromGen rgbImage) (fun image ->
            let file = Generation.EncodeFile [ image ]
            let decoded = decodeImage file.Bytes
            file.Format = MediaFormat.Png && file.MediaType = "image/png" && decoded.Format = SKEncodedImageFormat.Png
            && (decoded.Width, decoded.Height) = (image.Width, image.Height) && decoded.Rgb = image.Pixels)

let ``JPEG and WebP decode to the frame's size and close to its pixels, and compression trades size for fidelity`` =
    testCase "JPEG and WebP decode to the frame's size and close to its pixels, and compression trades size for fidelity" <| fun () ->
        let image = (movingFrames 1 64 48).Head
        for format, skia in [ MediaFormat.Jpeg, SKEncodedImageFormat.Jpeg; MediaFormat.Webp, SKEncodedImageFormat.Webp ] do
            let best = Generation.EncodeFile([ image ], OutputSpec(format))
            let small = Generation.EncodeFile([ image ], OutputSpec(format, 10))
            let d = decodeImage best.Bytes
            Expect.equal d.Format skia "format"
            Expect.equal (d.Width, d.Height) (64, 48) "size"
            Expect.isLessThan (meanAbsoluteDifference d.Rgb image.Pixels) 8.0 "quality 100 stays close to the frame (JPEG subsamples chroma)"
            Expect.isLessThan small.Bytes.Length best.Bytes.Length "quality 10 is smaller"
            Expect.isGreaterThan (meanAbsoluteDifference (decodeImage small.Bytes).Rgb image.Pixels) (meanAbsoluteDifference d.Rgb image.Pixels) "and further from the frame"

let ``output rules name the field and the accepted values`` =
    testCase "output rules name the field and the accepted values" <| fun () ->
        let check spec w h f = MediaFormats.Check(spec, w, h, f) |> Seq.map (fun struct (field, _) -> field) |> List.ofSeq
        Expect.equal (check (OutputSpec(MediaFormat.Png)) 64 64 9) [ "output_format" ] "png holds one image"
        Expect.equal (check (OutputSpec(MediaFormat.Mp4)) 64 64 1) [ "output_format" ] "mp4 is a video"
        Expect.equal (check (OutputSpec(MediaFormat.Mp4)) 63 64 9) [ "output_format" ] "mp4 needs even sizes"
        Expect.equal (check (OutputSpec(MediaFormat.Png, 50)) 64 64 1) [ "output_compression" ] "png is lossless"
        Expect.equal (check (OutputSpec(MediaFormat.Jpeg, 101)) 64 64 1) [ "output_compression" ] "0-100"
        Expect.equal (check (OutputSpec(FramesPerSecond = 8)) 64 64 1) [ "fps" ] "fps is for videos"
        Expect.equal (check (OutputSpec(MediaFormat.Webp, 50, 24)) 64 64 9) [] "animated webp"
        Expect.equal (MediaFormats.Crf(MediaFormat.Mp4, MediaFormats.DefaultQuality(MediaFormat.Mp4, 9))) 23 "libx264's default CRF"
        Expect.equal (MediaFormats.Crf(MediaFormat.Webm, MediaFormats.DefaultQuality(MediaFormat.Webm, 9))) 31 "libvpx-vp9's advised CRF"

// ---- videos --------------------------------------------------------------------------------------------

let ``an MP4 holds H.264 yuv420p with its index first, and exactly the frames and frame rate asked for`` =
    testCase "an MP4 holds H.264 yuv420p with its index first, and exactly the frames and frame rate asked for" <| fun () ->
        for count, fps in [ 9, 8; 5, 24 ] do
            let file = Generation.EncodeFile(movingFrames count 64 48, OutputSpec(FramesPerSecond = fps))
            Expect.equal file.Format MediaFormat.Mp4 "a video defaults to mp4"
            Expect.equal file.MediaType "video/mp4" "media type"
            let v = probeVideo file.Bytes "mp4"
            Expect.stringContains v.FormatName "mp4" "container"
            Expect.equal (v.Codec, v.PixelFormat) ("h264", "yuv420p") "codec and pixel format"
            Expect.equal (v.Width, v.Height) (64, 48) "size"
            Expect.equal v.Frames count "frames"
            Expect.floatClose Accuracy.medium v.FrameRate (float fps) "frame rate"
            Expect.isTrue v.FastStart "+faststart: moov before mdat"

let ``a WebM holds VP9 and an animated WebP its frames, each at the frame rate asked for`` =
    testCase "a WebM holds VP9 and an animated WebP its frames, each at the frame rate asked for" <| fun () ->
        let frames = movingFrames 9 64 48
        let webm = Generation.EncodeFile(frames, OutputSpec(MediaFormat.Webm, FramesPerSecond = 8))
        Expect.equal webm.MediaType "video/webm" "media type"
        let v = probeVideo webm.Bytes "webm"
        Expect.stringContains v.FormatName "webm" "container"
        Expect.equal (v.Codec, v.Frames, v.Width, v.Height) ("vp9", 9, 64, 48) "codec, frames, size"
        Expect.floatClose Accuracy.medium v.FrameRate 8.0 "frame rate"
        let webp = Generation.EncodeFile(frames, OutputSpec(MediaFormat.Webp, FramesPerSecond = 8))
        Expect.equal webp.MediaType "image/webp" "media type"
        let d = decodeImage webp.Bytes
        Expect.equal (d.Format, d.Frames, d.Width, d.Height) (SKEncodedImageFormat.Webp, 9, 64, 48) "animated WebP frames and size"
        Expect.equal d.FrameDurationsMs (List.replicate 9 125) "each frame shows 1/8 s"
        Expect.isLessThan (meanAbsoluteDifference d.Rgb frames.Head.Pixels) 12.0 "its first frame is the first frame"

// ---- tensors to images ---------------------------------------------------------------------------------

let ``tensor values map from [-1, 1] to bytes like diffusers`` =
    testProp 200 "tensor values map from [-1, 1] to bytes like diffusers" <| fun () ->
        Expect.equal (TensorImages.ToByte -1.0f) 0uy "TensorImages.ToByte -1.0f"
        Expect.equal (TensorImages.ToByte 0.0f) 128uy "TensorImages.ToByte 0.0f"
        Expect.equal (TensorImages.ToByte 1.0f) 255uy "TensorImages.ToByte 1.0f"
        Expect.equal (TensorImages.ToByte -7.0f) 0uy "TensorImages.ToByte -7.0f"
        Expect.equal (TensorImages.ToByte 3.0f) 255uy "TensorImages.ToByte 3.0f"
        Expect.equal (TensorImages.ToByte Single.NaN) 0uy "TensorImages.ToByte Single.NaN"
        (Prop.forAll (Arb.fromGen (floatIn -1.0 1.0)) (fun v ->
            abs (float (TensorImages.ToByte(float32 v)) - (v + 1.0) / 2.0 * 255.0) <= 0.5 + 1e-4))

let ``an NCHW tensor becomes one RGB image per batch item`` =
    testCase "an NCHW tensor becomes one RGB image per batch item" <| fun () ->
        // batch 2, 3 channels, 2×3 pixels: item b, channel c, pixel i holds a value that encodes all three.
        let b, h, w = 2, 2, 3
        let value bi c i = float32 (bi * 100 + c * 10 + i) / 255.0f * 2.0f - 1.0f
        let data = [| for bi in 0 .. b - 1 do for c in 0 .. 2 do for i in 0 .. h * w - 1 -> value bi c i |]
        let images = TensorImages.FromNchw(ReadOnlySpan data, ReadOnlySpan [| 2L; 3L; 2L; 3L |])
        Expect.equal images.Length 2 "images.Length"
        for bi in 0 .. 1 do
            Expect.equal (images[bi].Width) 3 "images[bi].Width"
            Expect.equal (images[bi].Height) 2 "images[bi].Height"
            Expect.sequenceEqual (images[bi].Pixels) ([| for i in 0 .. h * w - 1 do for c in 0 .. 2 -> byte (bi * 100 + c * 10 + i) |]) "images[bi].Pixels"

let ``an NCFHW tensor becomes frames per batch item`` =
    testCase "an NCFHW tensor becomes frames per batch item" <| fun () ->
        let b, f, h, w = 2, 3, 1, 2
        let value bi c fi i = float32 (bi * 100 + c * 20 + fi * 5 + i) / 255.0f * 2.0f - 1.0f
        let data = [| for bi in 0 .. b - 1 do for c in 0 .. 2 do for fi in 0 .. f - 1 do for i in 0 .. h * w - 1 -> value bi c fi i |]
        let videos = TensorImages.FromNcfhw(ReadOnlySpan data, ReadOnlySpan [| 2L; 3L; 3L; 1L; 2L |])
        for bi in 0 .. 1 do
            for fi in 0 .. 2 do
                Expect.sequenceEqual ((videos[bi]).[fi].Pixels) ([| for i in 0 .. h * w - 1 do for c in 0 .. 2 -> byte (bi * 100 + c * 20 + fi * 5 + i) |]) "(videos[bi]).[fi].Pixels"
        Expect.throwsT<ArgumentException> (fun () -> TensorImages.FromNcfhw(ReadOnlySpan data, ReadOnlySpan [| 2L; 3L; 3L; 2L; 2L |]) |> ignore) "ArgumentException is thrown"
        Expect.throwsT<ArgumentException> (fun () -> TensorImages.FromNchw(ReadOnlySpan data, ReadOnlySpan [| 2L; 4L; 3L; 3L |]) |> ignore) "ArgumentException is thrown"

[<Tests>]
let tests =
    testList "unit" [ testList "MediaTests" [
        ``a PNG decodes back to the same pixels``
        ``JPEG and WebP decode to the frame's size and close to its pixels, and compression trades size for fidelity``
        ``output rules name the field and the accepted values``
        ``an MP4 holds H.264 yuv420p with its index first, and exactly the frames and frame rate asked for``
        ``a WebM holds VP9 and an animated WebP its frames, each at the frame rate asked for``
        ``tensor values map from [-1, 1] to bytes like diffusers``
        ``an NCHW tensor becomes one RGB image per batch item``
        ``an NCFHW tensor becomes frames per batch item``
    ] |> testSequencedGroup "MediaTests" ]
