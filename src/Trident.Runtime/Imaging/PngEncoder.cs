// PNG encoder for 8-bit RGB images, without an imaging library: signature, IHDR (colour type 2), one IDAT
// holding the zlib stream (System.IO.Compression.ZLibStream) of the filtered scanlines, IEND.
//
// Filtering: one fixed filter type on every row, or the adaptive choice PNG's authors recommend for true-colour
// images — per row, the filter whose output has the smallest sum of absolute values read as signed bytes
// (ties go to the lower filter type). Both are pure functions of the pixels, and no timestamps or other
// metadata chunks are written, so the same pixels give the same bytes for a given zlib implementation (the
// one bundled with the .NET runtime; a different zlib may choose different but equally valid matches).

using System.IO.Compression;

namespace Trident.Runtime.Imaging;

/// <summary>How scanlines are filtered before compression. The fixed choices use one PNG filter type on every
/// row (their values are the filter type numbers); <see cref="Adaptive"/> chooses per row.</summary>
public enum PngFilterStrategy
{
    /// <summary>Filter type 0 (none) on every row: fastest.</summary>
    None = 0,

    /// <summary>Filter type 1: difference to the pixel on the left.</summary>
    Sub = 1,

    /// <summary>Filter type 2: difference to the pixel above.</summary>
    Up = 2,

    /// <summary>Filter type 3: difference to the mean of left and above.</summary>
    Average = 3,

    /// <summary>Filter type 4: difference to the Paeth predictor.</summary>
    Paeth = 4,

    /// <summary>Per row, the filter with the smallest sum of absolute signed outputs: smaller files.</summary>
    Adaptive = 5,
}

/// <summary>Encoder settings.</summary>
/// <param name="Filter">Scanline filter choice.</param>
/// <param name="Compression">zlib compression level.</param>
public sealed record PngEncoderOptions(
    PngFilterStrategy Filter = PngFilterStrategy.Adaptive,
    CompressionLevel Compression = CompressionLevel.Optimal)
{
    /// <summary>Adaptive filtering, optimal compression.</summary>
    public static PngEncoderOptions Default { get; } = new();
}

/// <summary>Encodes <see cref="RgbImage"/>s as PNG.</summary>
public static class PngEncoder
{
    /// <summary>The PNG file of <paramref name="image"/>.</summary>
    public static byte[] Encode(RgbImage image, PngEncoderOptions? options = null)
    {
        using var buffer = new MemoryStream();
        Encode(image, buffer, options);
        return buffer.ToArray();
    }

    /// <summary>Writes the PNG file of <paramref name="image"/> to <paramref name="output"/>.</summary>
    public static void Encode(RgbImage image, Stream output, PngEncoderOptions? options = null)
    {
        output.Write(PngFormat.Signature);
        PngFormat.WriteChunk(output, PngFormat.Ihdr, PngFormat.HeaderData(image.Width, image.Height, PngFormat.ColorTypeRgb));
        PngFormat.WriteChunk(output, PngFormat.Idat, CompressImageData(image, options ?? PngEncoderOptions.Default));
        PngFormat.WriteChunk(output, PngFormat.Iend, []);
    }

    /// <summary>The zlib stream of the filtered scanlines (each row prefixed by its filter type).</summary>
    internal static byte[] CompressImageData(RgbImage image, PngEncoderOptions options)
    {
        if (!Enum.IsDefined(options.Filter))
            throw new ArgumentOutOfRangeException(nameof(options), options.Filter, "unknown filter strategy");
        const int bpp = 3;
        var stride = image.Width * bpp;
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, options.Compression, leaveOpen: true))
        {
            var zero = new byte[stride];
            var line = new byte[1 + stride];
            var candidate = new byte[stride];
            for (var y = 0; y < image.Height; y++)
            {
                var row = image.Pixels.AsSpan(y * stride, stride);
                var previous = y == 0 ? zero : image.Pixels.AsSpan((y - 1) * stride, stride);
                if (options.Filter != PngFilterStrategy.Adaptive)
                {
                    line[0] = (byte)options.Filter;
                    PngFormat.Filter(line[0], row, previous, bpp, line.AsSpan(1));
                }
                else
                {
                    var best = long.MaxValue;
                    for (var type = 0; type <= 4; type++)
                    {
                        PngFormat.Filter(type, row, previous, bpp, candidate);
                        long cost = 0;
                        foreach (var b in candidate) cost += Math.Abs((int)(sbyte)b);
                        if (cost >= best) continue;
                        best = cost;
                        line[0] = (byte)type;
                        candidate.CopyTo(line, 1);
                    }
                }
                zlib.Write(line);
            }
        }
        if (compressed.Length > PngFormat.MaxChunkLength)
            throw new InvalidOperationException($"compressed image data of {compressed.Length} bytes does not fit one PNG chunk");
        return compressed.ToArray();
    }
}
