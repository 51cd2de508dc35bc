// What one stage hands to the next: the encode stage's text embeddings and the diffuse stage's latents.
//
// Design note. These are the objects that move between device workers (design §8, "Handoff"), so they are
// immutable wrappers around one Tensor each, with the few facts the next stage needs and the byte size the
// scheduler's transfer cost uses. With classifier-free guidance the unconditional embeddings travel in the
// same tensor as the conditional ones, stacked [conditional rows; unconditional rows]: that is exactly the
// batch the denoiser runs, so the diffuse stage feeds it to ONNX Runtime as it is, every step, without a copy.

using Trident.Runtime.Onnx;

namespace Trident.Runtime.Execution;

/// <summary>Text embeddings for a batch of prompts: the output of the encode stage.</summary>
public sealed class Embeddings
{
    /// <summary>Wraps <paramref name="tensor"/> (not copied).</summary>
    /// <param name="tensor">float32 or float16 [rows, tokens, width]; rows = batch, or 2 × batch with unconditional rows.</param>
    /// <param name="batch">Number of prompts.</param>
    /// <param name="hasUnconditional">Whether rows batch … 2·batch − 1 hold the unconditional (negative-prompt)
    /// embeddings for classifier-free guidance.</param>
    public Embeddings(Tensor tensor, int batch, bool hasUnconditional)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        if (tensor.ElementType is not (TensorElementType.Float or TensorElementType.Float16) || tensor.Shape.Count != 3)
            throw new ArgumentException($"embeddings must be a float32 or float16 [rows, tokens, width] tensor, got {tensor}", nameof(tensor));
        var rows = hasUnconditional ? 2L * batch : batch;
        if (tensor.Shape[0] != rows)
            throw new ArgumentException($"{tensor} has {tensor.Shape[0]} rows; a batch of {batch}{(hasUnconditional ? " with unconditional rows" : "")} needs {rows}", nameof(tensor));
        Tensor = tensor;
        Batch = batch;
        HasUnconditional = hasUnconditional;
    }

    /// <summary>[rows, tokens, width]: the conditional rows, then (with guidance) the unconditional rows.</summary>
    public Tensor Tensor { get; }

    /// <summary>Number of prompts.</summary>
    public int Batch { get; }

    /// <summary>Whether the unconditional embeddings are included.</summary>
    public bool HasUnconditional { get; }

    /// <summary>Size in bytes (what moves from the encode device to the diffuse device).</summary>
    public long Bytes => Tensor.Bytes;

    /// <summary>The conditional rows alone (a copy when unconditional rows are present).</summary>
    public Tensor Conditional()
    {
        if (!HasUnconditional) return Tensor;
        var count = checked((int)(Batch * (Tensor.Length / Tensor.Shape[0])));
        return Tensor.ElementType == TensorElementType.Float16
            ? Tensor.FromHalf(Tensor.AsHalf().AsSpan(0, count).ToArray(), Batch, Tensor.Shape[1], Tensor.Shape[2])
            : Tensor.FromFloat(Tensor.AsFloat().AsSpan(0, count).ToArray(), Batch, Tensor.Shape[1], Tensor.Shape[2]);
    }
}

/// <summary>Denoised latents for a batch of generations of one size: the output of the diffuse stage, in the
/// VAE's scaled latent space (the decode stage unscales a copy).</summary>
public sealed class Latents
{
    /// <summary>Wraps <paramref name="tensor"/> (not copied).</summary>
    /// <param name="tensor">float32 [batch, C, h, w] (image pipelines) or [batch, C, F', h, w] (video).</param>
    /// <param name="width">Output width in pixels.</param>
    /// <param name="height">Output height in pixels.</param>
    /// <param name="frames">Output frames (1 for an image).</param>
    public Latents(Tensor tensor, int width, int height, int frames)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.ElementType != TensorElementType.Float || tensor.Shape.Count is not (4 or 5))
            throw new ArgumentException($"latents must be a float32 tensor of rank 4 or 5, got {tensor}", nameof(tensor));
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(frames, 1);
        Tensor = tensor;
        Width = width;
        Height = height;
        Frames = frames;
    }

    /// <summary>The latent tensor.</summary>
    public Tensor Tensor { get; }

    /// <summary>Output width in pixels.</summary>
    public int Width { get; }

    /// <summary>Output height in pixels.</summary>
    public int Height { get; }

    /// <summary>Output frames.</summary>
    public int Frames { get; }

    /// <summary>Number of generations in the batch.</summary>
    public int Batch => (int)Tensor.Shape[0];

    /// <summary>Size in bytes (what moves from the diffuse device to the decode device).</summary>
    public long Bytes => Tensor.Length * sizeof(float);
}
