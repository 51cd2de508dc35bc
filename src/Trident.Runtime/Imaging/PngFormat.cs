// Pieces of the PNG format (ISO/IEC 15948) and its APNG extension shared by the encoders and the decoder:
// the signature, chunk framing (length, type, data, CRC-32 over type and data, all big-endian) and the five
// scanline filters. Only 8-bit samples are handled, so "bytes per pixel" equals the channel count.

using System.Buffers.Binary;
using System.Text;

namespace Trident.Runtime.Imaging;

internal static class PngFormat
{
    public static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    public const string Ihdr = "IHDR";
    public const string Idat = "IDAT";
    public const string Iend = "IEND";
    public const string Actl = "acTL";
    public const string Fctl = "fcTL";
    public const string Fdat = "fdAT";

    public const byte ColorTypeRgb = 2;
    public const byte ColorTypeRgba = 6;
    public const int FrameControlLength = 26;

    /// <summary>Largest chunk data length PNG allows (2³¹ − 1).</summary>
    public const int MaxChunkLength = int.MaxValue;

    /// <summary>Writes one chunk: length, type, data, CRC of type + data.</summary>
    public static void WriteChunk(Stream output, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> header = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(header, data.Length);
        Encoding.ASCII.GetBytes(type, header[4..]);
        var crc = Crc32.Append(Crc32.Compute(header[4..]), data);
        output.Write(header);
        output.Write(data);
        Span<byte> trailer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(trailer, crc);
        output.Write(trailer);
    }

    /// <summary>IHDR data for an 8-bit, non-interlaced image of the given colour type.</summary>
    public static byte[] HeaderData(int width, int height, byte colorType)
    {
        var data = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(data, width);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(4), height);
        data[8] = 8; // bit depth
        data[9] = colorType;
        // compression method 0, filter method 0, interlace method 0
        return data;
    }

    /// <summary>The Paeth predictor: whichever of left, up, upper-left is closest to left + up − upper-left.</summary>
    public static int Paeth(int a, int b, int c)
    {
        var p = a + b - c;
        var pa = Math.Abs(p - a);
        var pb = Math.Abs(p - b);
        var pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>Applies filter <paramref name="type"/> (0–4) to <paramref name="row"/> given the previous
    /// (unfiltered) row, writing to <paramref name="output"/>; <paramref name="previous"/> is all zeros for
    /// the first row.</summary>
    public static void Filter(int type, ReadOnlySpan<byte> row, ReadOnlySpan<byte> previous, int bpp, Span<byte> output)
    {
        for (var i = 0; i < row.Length; i++)
        {
            int a = i >= bpp ? row[i - bpp] : 0, b = previous[i], c = i >= bpp ? previous[i - bpp] : 0;
            var predictor = type switch
            {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) >> 1,
                4 => Paeth(a, b, c),
                _ => throw new ArgumentOutOfRangeException(nameof(type), type, "PNG filter types are 0–4"),
            };
            output[i] = (byte)(row[i] - predictor);
        }
    }

    /// <summary>Reverses filter <paramref name="type"/> in place on <paramref name="row"/>.</summary>
    public static void Unfilter(int type, Span<byte> row, ReadOnlySpan<byte> previous, int bpp)
    {
        for (var i = 0; i < row.Length; i++)
        {
            int a = i >= bpp ? row[i - bpp] : 0, b = previous[i], c = i >= bpp ? previous[i - bpp] : 0;
            var predictor = type switch
            {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) >> 1,
                4 => Paeth(a, b, c),
                _ => throw new PngFormatException($"unknown filter type {type}"),
            };
            row[i] = (byte)(row[i] + predictor);
        }
    }
}
