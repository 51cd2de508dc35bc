// Flux's packed latents (source: diffusers, src/diffusers/pipelines/flux/pipeline_flux.py, FluxPipeline._pack_latents
// and _unpack_latents). The transformer reads the latent image as a sequence of p×p patches:
//     packed[b, i·(W/p) + j, c·p² + dy·p + dx] = latents[b, c, p·i + dy, p·j + dx]
// for latents [B, C, H, W] (H, W latent cells, both multiples of p) and packed [B, (H/p)·(W/p), C·p²] — diffusers'
// view(b, c, h/2, 2, w/2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h/2)·(w/2), c·4) for p = 2. Trident keeps the
// latents packed for the whole diffuse stage (the sampler is elementwise, and standard Gaussian noise stays standard
// Gaussian under a permutation) and unpacks once, before the VAE decoder.

namespace Trident.Runtime.Pipelines;

/// <summary>Packs and unpacks latents into p×p patch tokens, as diffusers' FluxPipeline does.</summary>
public static class PackedLatents
{
    /// <summary>[B, C, H, W] → [B, (H/p)·(W/p), C·p²].</summary>
    /// <exception cref="ArgumentException">when the lengths do not match or H, W are not multiples of p.</exception>
    public static float[] Pack(ReadOnlySpan<float> latents, int batch, int channels, int height, int width, int p)
    {
        Check(latents.Length, batch, channels, height, width, p);
        var packed = new float[latents.Length];
        for (int b = 0, n = 0; b < batch; b++)
            for (var c = 0; c < channels; c++)
                for (var y = 0; y < height; y++)
                    for (var x = 0; x < width; x++, n++)
                        packed[Index(b, c, y, x, channels, height, width, p)] = latents[n];
        return packed;
    }

    /// <summary>[B, (H/p)·(W/p), C·p²] → [B, C, H, W].</summary>
    /// <exception cref="ArgumentException">when the lengths do not match or H, W are not multiples of p.</exception>
    public static float[] Unpack(ReadOnlySpan<float> packed, int batch, int channels, int height, int width, int p)
    {
        Check(packed.Length, batch, channels, height, width, p);
        var latents = new float[packed.Length];
        for (int b = 0, n = 0; b < batch; b++)
            for (var c = 0; c < channels; c++)
                for (var y = 0; y < height; y++)
                    for (var x = 0; x < width; x++, n++)
                        latents[n] = packed[Index(b, c, y, x, channels, height, width, p)];
        return latents;
    }

    // The packed position of latents[b, c, y, x].
    private static int Index(int b, int c, int y, int x, int channels, int height, int width, int p)
    {
        int tokens = height / p * (width / p), features = channels * p * p;
        var token = y / p * (width / p) + x / p;
        var feature = c * p * p + y % p * p + x % p;
        return (b * tokens + token) * features + feature;
    }

    private static void Check(int length, int batch, int channels, int height, int width, int p)
    {
        if (p < 1 || height % p != 0 || width % p != 0)
            throw new ArgumentException($"latent size {height}×{width} is not a multiple of the patch {p}");
        if ((long)batch * channels * height * width != length)
            throw new ArgumentException($"{length} values for latents [{batch}, {channels}, {height}, {width}]");
    }
}
