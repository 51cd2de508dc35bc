// Animated PNG (APNG 1.0) for video frames. Layout:
//   signature, IHDR, acTL(num_frames, num_plays),
//   fcTL(seq 0), IDAT            ← frame 0 is also the default image that non-APNG viewers show
//   fcTL(seq 1), fdAT(seq 2)     ← frame 1
//   fcTL(seq 3), fdAT(seq 4)     ← frame 2, …
//   IEND
// fcTL and fdAT share one sequence counter starting at 0. Every frame covers the whole canvas (offsets 0,
// dispose op NONE, blend op SOURCE), so each frame's pixels are exactly the frame given, and fdAT carries the
// same zlib stream an IDAT would. Encoding is deterministic like PngEncoder's.

using System.Buffers.Binary;

namespace Trident.Runtime.Imaging;

/// <summary>How long each frame shows: <see cref="Numerator"/> / <see cref="Denominator"/> seconds (APNG treats a
/// denominator of 0 as 100).</summary>
public readonly record struct FrameDelay(ushort Numerator, ushort Denominator)
{
    /// <summary>The delay of one frame at <paramref name="framesPerSecond"/> (1 to 65535).</summary>
    public static FrameDelay FromFramesPerSecond(int framesPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(framesPerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(framesPerSecond, ushort.MaxValue);
        return new FrameDelay(1, (ushort)framesPerSecond);
    }
}

/// <summary>Encodes frame sequences as APNG.</summary>
public static class ApngEncoder
{
    /// <summary>The APNG file of <paramref name="frames"/> (all the same size).</summary>
    /// <param name="frames">At least one frame.</param>
    /// <param name="delay">Display time of each frame.</param>
    /// <param name="plays">How many times the animation plays; 0 loops forever.</param>
    /// <param name="options">Filtering and compression.</param>
    /// <exception cref="ArgumentException">when there are no frames or they differ in size.</exception>
    public static byte[] Encode(IReadOnlyList<RgbImage> frames, FrameDelay delay, int plays = 0, PngEncoderOptions? options = null)
    {
        if (frames.Count == 0) throw new ArgumentException("an animation needs at least one frame", nameof(frames));
        ArgumentOutOfRangeException.ThrowIfNegative(plays);
        var (width, height) = (frames[0].Width, frames[0].Height);
        for (var i = 1; i < frames.Count; i++)
            if (frames[i].Width != width || frames[i].Height != height)
                throw new ArgumentException($"frame {i} is {frames[i].Width}×{frames[i].Height}, frame 0 is {width}×{height}", nameof(frames));
        options ??= PngEncoderOptions.Default;

        using var output = new MemoryStream();
        output.Write(PngFormat.Signature);
        PngFormat.WriteChunk(output, PngFormat.Ihdr, PngFormat.HeaderData(width, height, PngFormat.ColorTypeRgb));
        var actl = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(actl, frames.Count);
        BinaryPrimitives.WriteInt32BigEndian(actl.AsSpan(4), plays);
        PngFormat.WriteChunk(output, PngFormat.Actl, actl);

        var sequence = 0;
        for (var i = 0; i < frames.Count; i++)
        {
            PngFormat.WriteChunk(output, PngFormat.Fctl, FrameControl(sequence++, width, height, delay));
            var data = PngEncoder.CompressImageData(frames[i], options);
            if (i == 0)
            {
                PngFormat.WriteChunk(output, PngFormat.Idat, data);
                continue;
            }
            if (data.Length > PngFormat.MaxChunkLength - 4)
                throw new InvalidOperationException($"frame {i} does not fit one fdAT chunk");
            var fdat = new byte[4 + data.Length];
            BinaryPrimitives.WriteInt32BigEndian(fdat, sequence++);
            data.CopyTo(fdat, 4);
            PngFormat.WriteChunk(output, PngFormat.Fdat, fdat);
        }
        PngFormat.WriteChunk(output, PngFormat.Iend, []);
        return output.ToArray();
    }

    private static byte[] FrameControl(int sequence, int width, int height, FrameDelay delay)
    {
        var data = new byte[PngFormat.FrameControlLength];
        BinaryPrimitives.WriteInt32BigEndian(data, sequence);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(4), width);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(8), height);
        // x and y offsets (bytes 12..19) stay 0: every frame covers the canvas.
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(20), delay.Numerator);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(22), delay.Denominator);
        data[24] = (byte)ApngDisposeOp.None;
        data[25] = (byte)ApngBlendOp.Source;
        return data;
    }
}

/// <summary>What happens to a frame's region before the next frame (APNG dispose_op).</summary>
public enum ApngDisposeOp : byte
{
    /// <summary>Leave it as it is.</summary>
    None = 0,

    /// <summary>Clear it to transparent black.</summary>
    Background = 1,

    /// <summary>Restore what was there before the frame.</summary>
    Previous = 2,
}

/// <summary>How a frame combines with the canvas (APNG blend_op).</summary>
public enum ApngBlendOp : byte
{
    /// <summary>Replace the region.</summary>
    Source = 0,

    /// <summary>Alpha-composite over the region.</summary>
    Over = 1,
}

/// <summary>How a video's frames are written to files.</summary>
public enum VideoFormat
{
    /// <summary>One animated PNG, <c>{stem}.png</c>.</summary>
    Apng,

    /// <summary>One PNG per frame, <c>{stem}_0000.png</c>, <c>{stem}_0001.png</c>, ….</summary>
    PngSequence,
}

/// <summary>Writes video frames to files.</summary>
public static class VideoFiles
{
    /// <summary>Writes <paramref name="frames"/> under <paramref name="directory"/> (created if missing) and
    /// returns the paths written, in frame order.</summary>
    public static IReadOnlyList<string> Write(
        string directory, string stem, IReadOnlyList<RgbImage> frames, VideoFormat format, FrameDelay delay, PngEncoderOptions? options = null)
    {
        Directory.CreateDirectory(directory);
        switch (format)
        {
            case VideoFormat.Apng:
                var path = Path.Combine(directory, stem + ".png");
                File.WriteAllBytes(path, ApngEncoder.Encode(frames, delay, 0, options));
                return [path];
            case VideoFormat.PngSequence:
                var paths = new List<string>(frames.Count);
                for (var i = 0; i < frames.Count; i++)
                {
                    var framePath = Path.Combine(directory, $"{stem}_{i:D4}.png");
                    File.WriteAllBytes(framePath, PngEncoder.Encode(frames[i], options));
                    paths.Add(framePath);
                }
                return paths;
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, "unknown video format");
        }
    }
}
