// Decoded VAE tensors to 8-bit images. The VAE decoder's output is in [-1, 1]; like diffusers it is mapped
// with (x / 2 + 0.5) clamped to [0, 1], times 255, rounded half to even (numpy's rounding), in float32. NaN
// becomes 0 so a diverged model still yields a (black) image rather than an exception.

namespace Trident.Runtime.Imaging;

/// <summary>Converts NCHW / NCFHW float tensors to RGB images.</summary>
public static class TensorImages
{
    /// <summary>The 8-bit value of one tensor value in [-1, 1].</summary>
    public static byte ToByte(float value)
    {
        if (float.IsNaN(value)) return 0;
        var unit = Math.Clamp(value * 0.5f + 0.5f, 0f, 1f);
        return (byte)MathF.Round(unit * 255f, MidpointRounding.ToEven);
    }

    /// <summary>Images of a batch × 3 × height × width tensor, one per batch item.</summary>
    /// <exception cref="ArgumentException">when the shape is not [B, 3, H, W] or does not match the data length.</exception>
    public static RgbImage[] FromNchw(ReadOnlySpan<float> data, ReadOnlySpan<long> shape)
    {
        if (shape.Length != 4) throw new ArgumentException($"expected a 4-d shape [batch, 3, height, width], got rank {shape.Length}", nameof(shape));
        var (batch, height, width) = (Dim(shape[0]), Dim(shape[2]), Dim(shape[3]));
        CheckChannelsAndLength(data, shape);
        var images = new RgbImage[batch];
        var plane = height * width;
        for (var b = 0; b < batch; b++)
            images[b] = FromPlanes(data.Slice(b * 3 * plane, 3 * plane), plane, plane, width, height);
        return images;
    }

    /// <summary>Frames of a batch × 3 × frames × height × width tensor: result[b][f] is frame f of item b.</summary>
    /// <exception cref="ArgumentException">when the shape is not [B, 3, F, H, W] or does not match the data length.</exception>
    public static RgbImage[][] FromNcfhw(ReadOnlySpan<float> data, ReadOnlySpan<long> shape)
    {
        if (shape.Length != 5) throw new ArgumentException($"expected a 5-d shape [batch, 3, frames, height, width], got rank {shape.Length}", nameof(shape));
        var (batch, frames, height, width) = (Dim(shape[0]), Dim(shape[2]), Dim(shape[3]), Dim(shape[4]));
        CheckChannelsAndLength(data, shape);
        var plane = height * width;
        var channel = frames * plane;
        var videos = new RgbImage[batch][];
        for (var b = 0; b < batch; b++)
        {
            videos[b] = new RgbImage[frames];
            var item = data.Slice(b * 3 * channel, 3 * channel);
            for (var f = 0; f < frames; f++)
                videos[b][f] = FromPlanes(item[(f * plane)..], channel, plane, width, height);
        }
        return videos;
    }

    // Reads R, G, B planes that start channelStride apart.
    private static RgbImage FromPlanes(ReadOnlySpan<float> first, int channelStride, int plane, int width, int height)
    {
        var pixels = new byte[plane * 3];
        for (var c = 0; c < 3; c++)
        {
            var src = first.Slice(c * channelStride, plane);
            for (var i = 0; i < plane; i++) pixels[i * 3 + c] = ToByte(src[i]);
        }
        return new RgbImage(width, height, pixels);
    }

    private static int Dim(long d) =>
        d is >= 1 and <= int.MaxValue ? (int)d : throw new ArgumentException($"dimension {d} out of range", "shape");

    private static void CheckChannelsAndLength(ReadOnlySpan<float> data, ReadOnlySpan<long> shape)
    {
        if (shape[1] != 3) throw new ArgumentException($"expected 3 channels, got {shape[1]}", nameof(shape));
        long count = 1;
        foreach (var d in shape) count *= Dim(d);
        if (count != data.Length) throw new ArgumentException($"shape holds {count} values but the data has {data.Length}", nameof(data));
    }
}
