// A minimal, strict PNG decoder: enough to check that what Trident writes is a valid PNG and to read its
// pixels back, for tests and API checks. It verifies the signature, every chunk's CRC, IHDR first and IEND
// last with nothing after it, and the zlib stream's own Adler-32 (by reading it to its end). It decodes
// 8-bit, non-interlaced colour types 2 (RGB) and 6 (RGBA) with filters 0–4, and the frames of an APNG whose
// frames it can decode the same way (no canvas composition: each frame is returned as its own sub-image).

using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Trident.Runtime.Imaging;

/// <summary>Thrown when bytes are not a PNG this decoder accepts; the message says why.</summary>
public sealed class PngFormatException(string message) : Exception(message);

/// <summary>One chunk of a PNG file.</summary>
/// <param name="Type">The four-letter chunk type, e.g. <c>IHDR</c>.</param>
/// <param name="Data">The chunk data (a copy).</param>
/// <param name="Offset">Byte offset of the chunk's length field in the file.</param>
public sealed record PngChunk(string Type, byte[] Data, long Offset);

/// <summary>A decoded image: <see cref="Channels"/> bytes per pixel (3 = RGB, 4 = RGBA), row-major.</summary>
public sealed record PngImage(int Width, int Height, int Channels, byte[] Pixels)
{
    /// <summary>The pixels as RGB (alpha dropped).</summary>
    public RgbImage ToRgb()
    {
        if (Channels == 3) return new RgbImage(Width, Height, Pixels);
        var rgb = new byte[Width * Height * 3];
        for (var i = 0; i < Width * Height; i++)
        {
            rgb[i * 3] = Pixels[i * Channels];
            rgb[i * 3 + 1] = Pixels[i * Channels + 1];
            rgb[i * 3 + 2] = Pixels[i * Channels + 2];
        }
        return new RgbImage(Width, Height, rgb);
    }
}

/// <summary>An APNG frame control (fcTL).</summary>
public sealed record ApngFrameControl(
    int SequenceNumber,
    int Width,
    int Height,
    int XOffset,
    int YOffset,
    ushort DelayNumerator,
    ushort DelayDenominator,
    ApngDisposeOp DisposeOp,
    ApngBlendOp BlendOp);

/// <summary>One decoded APNG frame: its control chunk and its pixels (<c>Control.Width</c> × <c>Control.Height</c>).</summary>
public sealed record ApngFrame(ApngFrameControl Control, PngImage Image);

/// <summary>Decodes PNG and APNG files (8-bit RGB/RGBA, non-interlaced).</summary>
public static class PngDecoder
{
    /// <summary>The chunks of a PNG file, after checking the signature, every CRC, and that the file starts with
    /// IHDR and ends with IEND.</summary>
    /// <exception cref="PngFormatException">when the framing is broken.</exception>
    public static IReadOnlyList<PngChunk> ReadChunks(ReadOnlySpan<byte> png)
    {
        if (png.Length < PngFormat.Signature.Length || !png[..PngFormat.Signature.Length].SequenceEqual(PngFormat.Signature))
            throw new PngFormatException("missing PNG signature");
        var chunks = new List<PngChunk>();
        var position = PngFormat.Signature.Length;
        while (true)
        {
            if (png.Length - position < 12) throw new PngFormatException($"truncated chunk header at byte {position}");
            var length = BinaryPrimitives.ReadUInt32BigEndian(png[position..]);
            if (length > PngFormat.MaxChunkLength) throw new PngFormatException($"chunk length {length} at byte {position} exceeds 2^31 - 1");
            if (png.Length - position - 12 < length) throw new PngFormatException($"chunk at byte {position} runs past the end of the file");
            var typeBytes = png.Slice(position + 4, 4);
            foreach (var b in typeBytes)
                if (!(b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z'))
                    throw new PngFormatException($"invalid chunk type at byte {position}");
            var type = Encoding.ASCII.GetString(typeBytes);
            var data = png.Slice(position + 8, (int)length);
            var stored = BinaryPrimitives.ReadUInt32BigEndian(png[(position + 8 + (int)length)..]);
            var computed = Crc32.Append(Crc32.Compute(typeBytes), data);
            if (stored != computed)
                throw new PngFormatException($"CRC mismatch in {type} chunk at byte {position}: stored {stored:X8}, computed {computed:X8}");
            if (chunks.Count == 0 && type != PngFormat.Ihdr) throw new PngFormatException($"first chunk is {type}, not IHDR");
            chunks.Add(new PngChunk(type, data.ToArray(), position));
            position += 12 + (int)length;
            if (type == PngFormat.Iend)
            {
                if (length != 0) throw new PngFormatException("IEND chunk has data");
                if (position != png.Length) throw new PngFormatException($"{png.Length - position} bytes after IEND");
                return chunks;
            }
        }
    }

    /// <summary>The default image of a PNG (or APNG) file.</summary>
    /// <exception cref="PngFormatException">when the file is invalid or unsupported.</exception>
    public static PngImage Decode(ReadOnlySpan<byte> png)
    {
        var chunks = ReadChunks(png);
        var header = ReadHeader(chunks);
        var idat = new List<byte[]>();
        var lastIdat = -1;
        for (var i = 0; i < chunks.Count; i++)
        {
            if (chunks[i].Type != PngFormat.Idat) continue;
            if (lastIdat >= 0 && lastIdat != i - 1) throw new PngFormatException("IDAT chunks are not consecutive");
            idat.Add(chunks[i].Data);
            lastIdat = i;
        }
        if (idat.Count == 0) throw new PngFormatException("no IDAT chunk");
        return Inflate(idat, header.Width, header.Height, header.Channels, "IDAT");
    }

    /// <summary>The frames of an APNG file, in order, after checking acTL's frame count and that fcTL/fdAT
    /// sequence numbers run 0, 1, 2, … without gaps.</summary>
    /// <exception cref="PngFormatException">when the file is not a valid APNG.</exception>
    public static IReadOnlyList<ApngFrame> DecodeFrames(ReadOnlySpan<byte> png)
    {
        var chunks = ReadChunks(png);
        var header = ReadHeader(chunks);
        var actl = chunks.FirstOrDefault(c => c.Type == PngFormat.Actl)
            ?? throw new PngFormatException("no acTL chunk: not an animated PNG");
        if (actl.Data.Length != 8) throw new PngFormatException("acTL chunk must hold 8 bytes");
        var frameCount = BinaryPrimitives.ReadInt32BigEndian(actl.Data);

        var frames = new List<ApngFrame>();
        ApngFrameControl? control = null;
        var data = new List<byte[]>();
        var expectedSequence = 0;
        var frameFromIdat = false;

        void FinishFrame()
        {
            if (control is null) return;
            if (data.Count == 0) throw new PngFormatException($"frame {frames.Count} has no image data");
            frames.Add(new ApngFrame(control, Inflate(data, control.Width, control.Height, header.Channels, $"frame {frames.Count}")));
            data.Clear();
        }

        foreach (var chunk in chunks)
        {
            switch (chunk.Type)
            {
                case PngFormat.Fctl:
                    FinishFrame();
                    frameFromIdat = false;
                    control = ReadFrameControl(chunk.Data, header);
                    if (control.SequenceNumber != expectedSequence++)
                        throw new PngFormatException($"fcTL has sequence number {control.SequenceNumber}, expected {expectedSequence - 1}");
                    break;
                case PngFormat.Idat when control is not null:
                    if (frames.Count > 0) throw new PngFormatException("IDAT after the first frame");
                    frameFromIdat = true;
                    data.Add(chunk.Data);
                    break;
                case PngFormat.Fdat:
                    if (control is null) throw new PngFormatException("fdAT before any fcTL");
                    if (frameFromIdat) throw new PngFormatException("fdAT in the frame that IDAT carries");
                    if (chunk.Data.Length < 4) throw new PngFormatException("fdAT chunk shorter than its sequence number");
                    var sequence = BinaryPrimitives.ReadInt32BigEndian(chunk.Data);
                    if (sequence != expectedSequence++)
                        throw new PngFormatException($"fdAT has sequence number {sequence}, expected {expectedSequence - 1}");
                    data.Add(chunk.Data[4..]);
                    break;
            }
        }
        FinishFrame();
        if (frames.Count != frameCount) throw new PngFormatException($"acTL announces {frameCount} frames, found {frames.Count}");
        return frames;
    }

    private readonly record struct Header(int Width, int Height, int Channels);

    private static Header ReadHeader(IReadOnlyList<PngChunk> chunks)
    {
        var d = chunks[0].Data;
        if (d.Length != 13) throw new PngFormatException($"IHDR holds {d.Length} bytes, not 13");
        var width = BinaryPrimitives.ReadInt32BigEndian(d);
        var height = BinaryPrimitives.ReadInt32BigEndian(d.AsSpan(4));
        if (width < 1 || height < 1) throw new PngFormatException($"invalid size {width}×{height}");
        if (d[8] != 8) throw new PngFormatException($"bit depth {d[8]} is not supported (only 8)");
        var channels = d[9] switch
        {
            PngFormat.ColorTypeRgb => 3,
            PngFormat.ColorTypeRgba => 4,
            _ => throw new PngFormatException($"colour type {d[9]} is not supported (only 2 and 6)"),
        };
        if (d[10] != 0) throw new PngFormatException($"unknown compression method {d[10]}");
        if (d[11] != 0) throw new PngFormatException($"unknown filter method {d[11]}");
        if (d[12] != 0) throw new PngFormatException("interlaced images are not supported");
        if ((long)width * height * channels > int.MaxValue / 2) throw new PngFormatException($"image {width}×{height} is too large");
        return new Header(width, height, channels);
    }

    private static ApngFrameControl ReadFrameControl(byte[] d, Header header)
    {
        if (d.Length != PngFormat.FrameControlLength) throw new PngFormatException($"fcTL holds {d.Length} bytes, not {PngFormat.FrameControlLength}");
        var c = new ApngFrameControl(
            BinaryPrimitives.ReadInt32BigEndian(d),
            BinaryPrimitives.ReadInt32BigEndian(d.AsSpan(4)),
            BinaryPrimitives.ReadInt32BigEndian(d.AsSpan(8)),
            BinaryPrimitives.ReadInt32BigEndian(d.AsSpan(12)),
            BinaryPrimitives.ReadInt32BigEndian(d.AsSpan(16)),
            BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(20)),
            BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(22)),
            (ApngDisposeOp)d[24],
            (ApngBlendOp)d[25]);
        if (c.Width < 1 || c.Height < 1 || c.XOffset < 0 || c.YOffset < 0
            || (long)c.XOffset + c.Width > header.Width || (long)c.YOffset + c.Height > header.Height)
            throw new PngFormatException($"frame {c.Width}×{c.Height} at ({c.XOffset}, {c.YOffset}) does not fit the {header.Width}×{header.Height} canvas");
        if (!Enum.IsDefined(c.DisposeOp) || !Enum.IsDefined(c.BlendOp))
            throw new PngFormatException($"unknown dispose op {d[24]} or blend op {d[25]}");
        return c;
    }

    private static PngImage Inflate(List<byte[]> parts, int width, int height, int channels, string what)
    {
        var stride = width * channels;
        var raw = new byte[(long)height * (stride + 1)];
        using (var input = new MemoryStream(parts.SelectMany(p => p).ToArray()))
        using (var zlib = new ZLibStream(input, CompressionMode.Decompress))
        {
            try
            {
                var read = 0;
                while (read < raw.Length)
                {
                    var n = zlib.Read(raw, read, raw.Length - read);
                    if (n == 0) throw new PngFormatException($"{what}: image data ends after {read} of {raw.Length} bytes");
                    read += n;
                }
                // Reading to the end makes zlib check the Adler-32 trailer.
                if (zlib.Read(new byte[1], 0, 1) != 0) throw new PngFormatException($"{what}: more image data than {width}×{height} needs");
            }
            catch (InvalidDataException e)
            {
                throw new PngFormatException($"{what}: corrupt zlib stream: {e.Message}");
            }
        }

        var pixels = new byte[height * stride];
        var previous = new byte[stride];
        for (var y = 0; y < height; y++)
        {
            var filter = raw[y * (stride + 1)];
            var row = pixels.AsSpan(y * stride, stride);
            raw.AsSpan(y * (stride + 1) + 1, stride).CopyTo(row);
            PngFormat.Unfilter(filter, row, y == 0 ? previous : pixels.AsSpan((y - 1) * stride, stride), channels);
        }
        return new PngImage(width, height, channels, pixels);
    }
}
