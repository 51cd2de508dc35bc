module Trident.Tests.Runtime.PngTests

open System
open System.Buffers.Binary
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Text
open FsCheck.FSharp
open Expecto
open Trident.Tests.TestSupport
open Trident.Runtime.Imaging
open Trident.Tests.Runtime.RuntimeGenerators

// ---- CRC-32 --------------------------------------------------------------------------------------------

let ``CRC-32 of "123456789" is 0xCBF43926`` =
    testCase "CRC-32 of \"123456789\" is 0xCBF43926" <| fun () ->
        Expect.equal (Crc32.Compute(ReadOnlySpan<byte>(Encoding.ASCII.GetBytes "123456789"))) (0xCBF43926u) "Crc32.Compute(ReadOnlySpan<byte>(Encoding.ASCII.GetBytes \"123456789\"))"
        Expect.equal (Crc32.Compute ReadOnlySpan<byte>.Empty) 0u "Crc32.Compute ReadOnlySpan<byte>.Empty"

let ``CRC-32 computed in pieces equals CRC-32 of the whole`` =
    testProp 200 "CRC-32 computed in pieces equals CRC-32 of the whole" <| fun () ->
        let bytes = Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte)
        (Prop.forAll (Arb.fromGen (Gen.zip bytes bytes)) (fun (a, b) ->
            Crc32.Append(Crc32.Compute(ReadOnlySpan<byte> a), ReadOnlySpan<byte> b) = Crc32.Compute(ReadOnlySpan<byte>(Array.append a b))))

// ---- PNG -----------------------------------------------------------------------------------------------

let private encode (strategy: PngFilterStrategy) (image: RgbImage) =
    PngEncoder.Encode(image, PngEncoderOptions(strategy))

let private chunkTypes (png: byte[]) = PngDecoder.ReadChunks png |> Seq.map (fun c -> c.Type) |> List.ofSeq

let ``a PNG decodes back to the same pixels under every filter strategy`` =
    testProp 300 "a PNG decodes back to the same pixels under every filter strategy" <| fun () ->
        (Prop.forAll (Arb.fromGen (Gen.zip rgbImage filterStrategy)) (fun (image, strategy) ->
            let png = encode strategy image
            let decoded = PngDecoder.Decode png
            ((decoded.Width = image.Width && decoded.Height = image.Height) |> Prop.label "size")
            .&. (decoded.Channels = 3 |> Prop.label "RGB")
            .&. (decoded.Pixels = image.Pixels |> Prop.label "pixels")
            .&. (chunkTypes png = [ "IHDR"; "IDAT"; "IEND" ] |> Prop.label "chunks")
            |> Prop.classify (strategy = PngFilterStrategy.Adaptive) "adaptive"))

let ``PNG encoding is deterministic`` =
    testProp 100 "PNG encoding is deterministic" <| fun () ->
        (Prop.forAll (Arb.fromGen (Gen.zip rgbImage filterStrategy)) (fun (image, strategy) ->
            encode strategy image = encode strategy (RgbImage(image.Width, image.Height, Array.copy image.Pixels))))

let ``adaptive filtering picks non-trivial filters on smooth images`` =
    testCase "adaptive filtering picks non-trivial filters on smooth images" <| fun () ->
        let w, h = 32, 32
        let gradient = RgbImage(w, h, Array.init (w * h * 3) (fun i -> byte ((i / 3 % w) * 4 + (i / 3 / w) * 2)))
        let png = encode PngFilterStrategy.Adaptive gradient
        let idat = (PngDecoder.ReadChunks png |> Seq.find (fun c -> c.Type = "IDAT")).Data
        use raw = new MemoryStream()
        (new ZLibStream(new MemoryStream(idat), CompressionMode.Decompress)).CopyTo raw
        let filters = [ for y in 0 .. h - 1 -> raw.ToArray()[y * (1 + w * 3)] ] |> List.distinct
        Expect.isFalse (Seq.contains 0uy filters) "does not contain 0uy"
        Expect.isTrue (png.Length < (encode PngFilterStrategy.None gradient).Length) "png.Length < (encode PngFilterStrategy.None gradient).Length"

let ``the PNG header says 8-bit RGB, non-interlaced`` =
    testCase "the PNG header says 8-bit RGB, non-interlaced" <| fun () ->
        let png = PngEncoder.Encode(RgbImage(3, 2, Array.zeroCreate 18))
        Expect.sequenceEqual (png[..7]) ([| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0x0Duy; 0x0Auy; 0x1Auy; 0x0Auy |]) "png[..7]"
        let ihdr = (PngDecoder.ReadChunks png)[0]
        Expect.sequenceEqual ihdr.Data ([| 0uy; 0uy; 0uy; 3uy; 0uy; 0uy; 0uy; 2uy; 8uy; 2uy; 0uy; 0uy; 0uy |]) "ihdr.Data"

let ``any single corrupted byte after the signature is detected`` =
    testProp 300 "any single corrupted byte after the signature is detected" <| fun () ->
        let case =
            gen {
                let! image = rgbImage
                let png = PngEncoder.Encode image
                let! position = Gen.choose (8, png.Length - 1)
                let! flip = Gen.choose (1, 255)
                return png, position, byte flip
            }
        (Prop.forAll (Arb.fromGen case) (fun (png, position, flip) ->
            let corrupted = Array.copy png
            corrupted[position] <- corrupted[position] ^^^ flip
            try
                PngDecoder.Decode corrupted |> ignore
                false
            with :? PngFormatException -> true))

/// Writes a PNG chunk by hand (independently of the encoder) for decoder tests.
let private rawChunk (output: Stream) (chunkType: string) (data: byte[]) =
    let typeBytes = Encoding.ASCII.GetBytes chunkType
    let header = Array.zeroCreate<byte> 4
    BinaryPrimitives.WriteInt32BigEndian(Span header, data.Length)
    output.Write header
    output.Write typeBytes
    output.Write data
    let crc = Array.zeroCreate<byte> 4
    BinaryPrimitives.WriteUInt32BigEndian(Span crc, Crc32.Compute(ReadOnlySpan<byte>(Array.append typeBytes data)))
    output.Write crc

let ``the decoder reads RGBA images with every filter type`` =
    testCase "the decoder reads RGBA images with every filter type" <| fun () ->
        // 5×2 RGBA; row 0 uses filter 1 (Sub) and row 1 filter 4 (Paeth), filtered by hand.
        let w, h = 5, 2
        let pixels = Array.init (w * h * 4) (fun i -> byte (i * 37 % 256))
        let filtered =
            [| yield 1uy
               for i in 0 .. w * 4 - 1 -> pixels[i] - (if i >= 4 then pixels[i - 4] else 0uy)
               yield 4uy
               for i in 0 .. w * 4 - 1 ->
                   let a, b, c = (if i >= 4 then int pixels[w * 4 + i - 4] else 0), int pixels[i], (if i >= 4 then int pixels[i - 4] else 0)
                   let p = a + b - c
                   let pa, pb, pc = abs (p - a), abs (p - b), abs (p - c)
                   let predictor = if pa <= pb && pa <= pc then a elif pb <= pc then b else c
                   pixels[w * 4 + i] - byte predictor |]
        use compressed = new MemoryStream()
        (use z = new ZLibStream(compressed, CompressionLevel.Fastest, true) in z.Write filtered)
        use png = new MemoryStream()
        png.Write([| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0x0Duy; 0x0Auy; 0x1Auy; 0x0Auy |])
        rawChunk png "IHDR" [| 0uy; 0uy; 0uy; byte w; 0uy; 0uy; 0uy; byte h; 8uy; 6uy; 0uy; 0uy; 0uy |]
        rawChunk png "tEXt" (Encoding.ASCII.GetBytes "Comment\000ignored")
        let data = compressed.ToArray()
        // Split the zlib stream over two IDAT chunks, as encoders may.
        rawChunk png "IDAT" data[.. 9]
        rawChunk png "IDAT" data[10 ..]
        rawChunk png "IEND" [||]
        let decoded = PngDecoder.Decode(png.ToArray())
        Expect.equal decoded.Channels 4 "decoded.Channels"
        Expect.sequenceEqual decoded.Pixels pixels "decoded.Pixels"
        Expect.sequenceEqual (decoded.ToRgb().Pixels) (pixels |> Array.chunkBySize 4 |> Array.collect (fun p -> p[..2])) "decoded.ToRgb().Pixels"

let ``the decoder rejects unsupported formats with a reason`` =
    testCase "the decoder rejects unsupported formats with a reason" <| fun () ->
        use png = new MemoryStream()
        png.Write([| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0x0Duy; 0x0Auy; 0x1Auy; 0x0Auy |])
        rawChunk png "IHDR" [| 0uy; 0uy; 0uy; 1uy; 0uy; 0uy; 0uy; 1uy; 16uy; 2uy; 0uy; 0uy; 0uy |]
        rawChunk png "IEND" [||]
        let e = expectThrows<PngFormatException> "PngFormatException is thrown" (fun () -> PngDecoder.Decode(png.ToArray()) |> ignore)
        Expect.stringContains e.Message "bit depth 16" "e.Message"
        Expect.throwsT<PngFormatException> (fun () -> PngDecoder.Decode(Encoding.ASCII.GetBytes "GIF89a") |> ignore) "PngFormatException is thrown"

// ---- APNG ----------------------------------------------------------------------------------------------

let ``an APNG has one fcTL per frame, IDAT then fdAT chunks, and sequence numbers 0, 1, 2, ...`` =
    testProp 100 "an APNG has one fcTL per frame, IDAT then fdAT chunks, and sequence numbers 0, 1, 2, ..." <| fun () ->
        (Prop.forAll (Arb.fromGen (Gen.zip frames filterStrategy)) (fun (fs, strategy) ->
            let n = List.length fs
            let png = ApngEncoder.Encode(ResizeArray fs, FrameDelay.FromFramesPerSecond 8, 0, PngEncoderOptions(strategy))
            let chunks = PngDecoder.ReadChunks png |> List.ofSeq
            let types = chunks |> List.map (fun c -> c.Type)
            let expected = [ "IHDR"; "acTL"; "fcTL"; "IDAT" ] @ List.concat (List.replicate (n - 1) [ "fcTL"; "fdAT" ]) @ [ "IEND" ]
            let sequence =
                chunks
                |> List.filter (fun c -> c.Type = "fcTL" || c.Type = "fdAT")
                |> List.map (fun c -> BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan c.Data))
            let actl = chunks |> List.find (fun c -> c.Type = "acTL")
            let decoded = PngDecoder.DecodeFrames png
            (types = expected |> Prop.label $"chunk order {types}")
            .&. (sequence = [ 0 .. 2 * n - 2 ] |> Prop.label $"sequence numbers {sequence}")
            .&. (BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan actl.Data) = n |> Prop.label "acTL frame count")
            .&. (BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan(actl.Data, 4, 4)) = 0 |> Prop.label "loops forever")
            .&. (decoded |> Seq.map (fun f -> f.Image.Pixels) |> List.ofSeq = (fs |> List.map (fun f -> f.Pixels)) |> Prop.label "frame pixels")
            .&. (decoded |> Seq.forall (fun f -> f.Control.DelayNumerator = 1us && f.Control.DelayDenominator = 8us) |> Prop.label "delay 1/8 s")
            .&. ((PngDecoder.Decode png).Pixels = fs.Head.Pixels |> Prop.label "default image is frame 0")))

let ``APNG frames must share one size`` =
    testCase "APNG frames must share one size" <| fun () ->
        let frame w = RgbImage(w, 2, Array.zeroCreate (w * 6))
        Expect.throwsT<ArgumentException> (fun () -> ApngEncoder.Encode([| frame 2; frame 3 |], FrameDelay(1us, 10us)) |> ignore) "ArgumentException is thrown"
        Expect.throwsT<ArgumentException> (fun () -> ApngEncoder.Encode([||], FrameDelay(1us, 10us)) |> ignore) "ArgumentException is thrown"

let ``a decoder finds a gap in APNG sequence numbers`` =
    testCase "a decoder finds a gap in APNG sequence numbers" <| fun () ->
        let fs = [| for i in 0 .. 2 -> RgbImage(2, 2, Array.create 12 (byte i)) |]
        let png = ApngEncoder.Encode(fs, FrameDelay(1us, 10us))
        // Re-number the last fdAT (sequence 4 → 5) and fix its CRC so only the sequence is wrong.
        let last = PngDecoder.ReadChunks png |> Seq.findBack (fun c -> c.Type = "fdAT")
        let at = int last.Offset
        BinaryPrimitives.WriteInt32BigEndian(Span(png, at + 8, 4), 5)
        let crc = Crc32.Compute(ReadOnlySpan(png, at + 4, 4 + last.Data.Length))
        BinaryPrimitives.WriteUInt32BigEndian(Span(png, at + 8 + last.Data.Length, 4), crc)
        let e = expectThrows<PngFormatException> "PngFormatException is thrown" (fun () -> PngDecoder.DecodeFrames png |> ignore)
        Expect.stringContains e.Message "sequence number 5, expected 4" "e.Message"

let ``video frames are written as one APNG or as one PNG per frame`` =
    testCase "video frames are written as one APNG or as one PNG per frame" <| fun () ->
        use dir = new TempDirectory()
        let fs = [| for i in 0 .. 3 -> RgbImage(4, 3, Array.create 36 (byte (i * 60))) |]
        let apng = VideoFiles.Write(dir.Path, "clip", fs, VideoFormat.Apng, FrameDelay.FromFramesPerSecond 24)
        Expect.sequenceEqual apng ([ Path.Combine(dir.Path, "clip.png") ]) "apng"
        Expect.equal ((PngDecoder.DecodeFrames(File.ReadAllBytes(apng[0]))).Count) 4 "(PngDecoder.DecodeFrames(File.ReadAllBytes(apng[0]))).Count"
        let sequence = VideoFiles.Write(dir.Path, "clip", fs, VideoFormat.PngSequence, FrameDelay.FromFramesPerSecond 24)
        Expect.sequenceEqual sequence ([ for i in 0 .. 3 -> Path.Combine(dir.Path, $"clip_%04d{i}.png") ]) "sequence"
        for i in 0 .. 3 do Expect.sequenceEqual ((PngDecoder.Decode(File.ReadAllBytes(sequence[i]))).Pixels) (fs[i].Pixels) "(PngDecoder.Decode(File.ReadAllBytes(sequence[i]))).Pixels"

// ---- independent check with Python's zlib --------------------------------------------------------------

let private pythonWithZlib =
    lazy
        (try
            use p = Process.Start(ProcessStartInfo("python3", "-c \"import zlib\"", RedirectStandardError = true, UseShellExecute = false))
            p.WaitForExit 10000 && p.ExitCode = 0
         with _ -> false)

/// Parses PNG/APNG files with Python's zlib (CRCs, decompression, unfiltering). It reads one path per line
/// on stdin and answers, per frame, "width height <hex of the RGB pixels>", then the fcTL/fdAT sequence
/// numbers, then "end" — one process serves a whole property run.
let private pythonChecker =
    """
import sys, zlib, struct
def check(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
    pos, chunks = 8, []
    while pos < len(data):
        n, = struct.unpack('>I', data[pos:pos+4]); kind = data[pos+4:pos+8]; body = data[pos+8:pos+8+n]
        crc, = struct.unpack('>I', data[pos+8+n:pos+12+n])
        assert zlib.crc32(kind + body) & 0xffffffff == crc, 'crc ' + kind.decode()
        chunks.append((kind.decode(), body)); pos += 12 + n
    assert chunks[0][0] == 'IHDR' and chunks[-1][0] == 'IEND' and pos == len(data), 'framing'
    w, h, depth, ctype, comp, filt, inter = struct.unpack('>IIBBBBB', chunks[0][1])
    assert (depth, ctype, comp, filt, inter) == (8, 2, 0, 0, 0), 'header'
    frames, seqs, current = [], [], None
    for kind, body in chunks:
        if kind == 'fcTL':
            seqs.append(struct.unpack('>I', body[:4])[0]); fw, fh = struct.unpack('>II', body[4:12])
            current = [fw, fh, b'']; frames.append(current)
        elif kind == 'fdAT':
            seqs.append(struct.unpack('>I', body[:4])[0]); current[2] += body[4:]
        elif kind == 'IDAT':
            if current is None: current = [w, h, b'']; frames.append(current)
            current[2] += body
    return [f'{fw} {fh} {unfilter(zlib.decompress(z), fw, fh).hex()}' for fw, fh, z in frames] + ['seq ' + ' '.join(map(str, seqs))]
def unfilter(raw, w, h):
    stride, out, prev = w * 3, bytearray(), bytearray(w * 3)
    assert len(raw) == h * (stride + 1), 'length'
    for y in range(h):
        f, row = raw[y*(stride+1)], bytearray(raw[y*(stride+1)+1:(y+1)*(stride+1)])
        for i in range(stride):
            a = row[i-3] if i >= 3 else 0; b = prev[i]; c = prev[i-3] if i >= 3 else 0
            p = a + b - c; pa, pb, pc = abs(p-a), abs(p-b), abs(p-c)
            pred = [0, a, b, (a+b)//2, a if pa <= pb and pa <= pc else (b if pb <= pc else c)][f]
            row[i] = (row[i] + pred) & 255
        out += row; prev = row
    return bytes(out)
for line in sys.stdin:
    try:
        print('\n'.join(check(line.strip())))
    except Exception as e:
        print('error', repr(e))
    print('end', flush=True)
"""

/// A running Python checker: `Check path` returns its answer lines.
type private PythonChecker(dir: TempDirectory) =
    let script = dir.Write("check.py", pythonChecker)
    let info = ProcessStartInfo("python3", RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false)
    do info.ArgumentList.Add script
    let p = Process.Start info
    member _.Check(path: string) =
        p.StandardInput.WriteLine path
        p.StandardInput.Flush()
        let lines = ResizeArray()
        let mutable line = p.StandardOutput.ReadLine()
        while line <> null && line <> "end" do
            lines.Add line
            line <- p.StandardOutput.ReadLine()
        List.ofSeq lines
    interface IDisposable with
        member _.Dispose() =
            p.StandardInput.Close()
            p.WaitForExit 10000 |> ignore
            p.Dispose()

/// Runs only where `python3 -c 'import zlib'` works; elsewhere it is reported as skipped. The folder and
/// the Python process live for the whole property run (shrinking included) and are disposed after it.
let ``Python's zlib accepts our PNGs and APNGs and reads the same pixels`` =
    let resources: (TempDirectory * PythonChecker) option ref = ref None
    testProp 50 "Python's zlib accepts our PNGs and APNGs and reads the same pixels" (fun () ->
        if not pythonWithZlib.Value then skiptest "python3 with zlib is not available"
        let dir = new TempDirectory()
        let python = new PythonChecker(dir)
        resources.Value <- Some(dir, python)
        Prop.forAll (Arb.fromGen (Gen.zip frames filterStrategy)) (fun (fs, strategy) ->
            let options = PngEncoderOptions(strategy)
            let single = Path.Combine(dir.Path, "one.png")
            File.WriteAllBytes(single, PngEncoder.Encode(fs.Head, options))
            let animated = Path.Combine(dir.Path, "anim.png")
            File.WriteAllBytes(animated, ApngEncoder.Encode(ResizeArray fs, FrameDelay(1us, 10us), 0, options))
            let line (f: RgbImage) = $"{f.Width} {f.Height} {Convert.ToHexString(f.Pixels).ToLowerInvariant()}"
            let n = List.length fs
            (python.Check single = [ line fs.Head; "seq " ] |> Prop.label "PNG")
            .&. (python.Check animated = (fs |> List.map line) @ [ "seq " + String.Join(" ", [ 0 .. 2 * n - 2 ]) ] |> Prop.label "APNG")))
    |> afterTest (fun () ->
        match resources.Value with
        | Some(dir, python) ->
            resources.Value <- None
            (python :> IDisposable).Dispose()
            (dir :> IDisposable).Dispose()
        | None -> ())

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
    testList "unit" [ testList "PngTests" [
        ``CRC-32 of "123456789" is 0xCBF43926``
        ``CRC-32 computed in pieces equals CRC-32 of the whole``
        ``a PNG decodes back to the same pixels under every filter strategy``
        ``PNG encoding is deterministic``
        ``adaptive filtering picks non-trivial filters on smooth images``
        ``the PNG header says 8-bit RGB, non-interlaced``
        ``any single corrupted byte after the signature is detected``
        ``the decoder reads RGBA images with every filter type``
        ``the decoder rejects unsupported formats with a reason``
        ``an APNG has one fcTL per frame, IDAT then fdAT chunks, and sequence numbers 0, 1, 2, ...``
        ``APNG frames must share one size``
        ``a decoder finds a gap in APNG sequence numbers``
        ``video frames are written as one APNG or as one PNG per frame``
        ``Python's zlib accepts our PNGs and APNGs and reads the same pixels``
        ``tensor values map from [-1, 1] to bytes like diffusers``
        ``an NCHW tensor becomes one RGB image per batch item``
        ``an NCFHW tensor becomes frames per batch item``
    ] |> testSequencedGroup "PngTests" ]
