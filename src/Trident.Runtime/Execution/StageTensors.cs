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
    /// <param name="pooled">float32 or float16 [rows, width] pooled embeddings in the same row order (SDXL's
    /// <c>text_embeds</c>), or null when the pipeline has none.</param>
    public Embeddings(Tensor tensor, int batch, bool hasUnconditional, Tensor? pooled = null)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        if (tensor.ElementType is not (TensorElementType.Float or TensorElementType.Float16) || tensor.Shape.Count != 3)
            throw new ArgumentException($"embeddings must be a float32 or float16 [rows, tokens, width] tensor, got {tensor}", nameof(tensor));
        var rows = hasUnconditional ? 2L * batch : batch;
        if (tensor.Shape[0] != rows)
            throw new ArgumentException($"{tensor} has {tensor.Shape[0]} rows; a batch of {batch}{(hasUnconditional ? " with unconditional rows" : "")} needs {rows}", nameof(tensor));
        if (pooled is not null && (pooled.ElementType is not (TensorElementType.Float or TensorElementType.Float16) || pooled.Shape.Count != 2 || pooled.Shape[0] != rows))
            throw new ArgumentException($"pooled embeddings must be a float32 or float16 [{rows}, width] tensor, got {pooled}", nameof(pooled));
        Tensor = tensor;
        Batch = batch;
        HasUnconditional = hasUnconditional;
        Pooled = pooled;
    }

    /// <summary>[rows, width] pooled embeddings in the rows' order, or null.</summary>
    public Tensor? Pooled { get; }

    /// <summary>[rows, tokens, width]: the conditional rows, then (with guidance) the unconditional rows.</summary>
    public Tensor Tensor { get; }

    /// <summary>Number of prompts.</summary>
    public int Batch { get; }

    /// <summary>Whether the unconditional embeddings are included.</summary>
    public bool HasUnconditional { get; }

    /// <summary>Size in bytes (what moves from the encode device to the diffuse device).</summary>
    public long Bytes => Tensor.Bytes + (Pooled?.Bytes ?? 0);

    /// <summary>The conditional rows alone (a copy when unconditional rows are present).</summary>
    public Tensor Conditional() => HasUnconditional ? FirstRows(Tensor, Batch) : Tensor;

    /// <summary>The conditional rows of <see cref="Pooled"/> alone, or null.</summary>
    public Tensor? PooledConditional() => Pooled is null || !HasUnconditional ? Pooled : FirstRows(Pooled, Batch);

    /// <summary>The embeddings of several batches as one batch, in order: their conditional rows, then (with
    /// guidance) their unconditional rows, as one encode run over all the prompts would lay them out.</summary>
    /// <exception cref="ArgumentException">when the parts differ in element type, tokens, width, unconditional
    /// rows or pooled embeddings.</exception>
    public static Embeddings Stack(IReadOnlyList<Embeddings> parts)
    {
        ArgumentOutOfRangeException.ThrowIfZero(parts.Count);
        if (parts.Count == 1) return parts[0];
        var first = parts[0];
        if (parts.Any(p => p.HasUnconditional != first.HasUnconditional || (p.Pooled is null) != (first.Pooled is null)
                || p.Tensor.ElementType != first.Tensor.ElementType || !p.Tensor.Shape.Skip(1).SequenceEqual(first.Tensor.Shape.Skip(1))))
            throw new ArgumentException("embeddings of one batch must share element type, tokens, width, unconditional rows and pooled embeddings", nameof(parts));
        var tensor = StackRows(parts.Select(p => (p.Tensor, p.Batch)).ToArray(), first.HasUnconditional);
        var pooled = first.Pooled is null ? null : StackRows(parts.Select(p => (p.Pooled!, p.Batch)).ToArray(), first.HasUnconditional);
        return new Embeddings(tensor, parts.Sum(p => p.Batch), first.HasUnconditional, pooled);
    }

    // [c₀; u₀], [c₁; u₁], … → [c₀; c₁; …; u₀; u₁; …] (without unconditional rows: [c₀; c₁; …]).
    private static Tensor StackRows(IReadOnlyList<(Tensor Rows, int Batch)> parts, bool unconditional)
    {
        var perRow = checked((int)(parts[0].Rows.Length / parts[0].Rows.Shape[0]));
        var rows = parts.Sum(p => (int)p.Rows.Shape[0]);
        var shape = parts[0].Rows.Shape.ToArray();
        shape[0] = rows;
        var half = parts[0].Rows.ElementType == TensorElementType.Float16;
        var halves = half ? new Half[rows * perRow] : null;
        var floats = half ? null : new float[rows * perRow];
        var at = 0;
        foreach (var pass in unconditional ? new[] { 0, 1 } : [0])
            foreach (var (t, batch) in parts)
            {
                var count = batch * perRow;
                if (half) t.AsHalf().AsSpan(pass * count, count).CopyTo(halves.AsSpan(at));
                else t.AsFloat().AsSpan(pass * count, count).CopyTo(floats.AsSpan(at));
                at += count;
            }
        return half ? Tensor.FromHalf(halves!, shape) : Tensor.FromFloat(floats!, shape);
    }

    private static Tensor FirstRows(Tensor t, int rows)
    {
        var count = checked((int)(rows * (t.Length / t.Shape[0])));
        var shape = t.Shape.ToArray();
        shape[0] = rows;
        return t.ElementType == TensorElementType.Float16
            ? Tensor.FromHalf(t.AsHalf().AsSpan(0, count).ToArray(), shape)
            : Tensor.FromFloat(t.AsFloat().AsSpan(0, count).ToArray(), shape);
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

    /// <summary>Generation <paramref name="i"/> of the batch alone (a copy), as a batch of one.</summary>
    public Latents Item(int i)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(i);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(i, Batch);
        var perItem = checked((int)(Tensor.Length / Batch));
        var shape = Tensor.Shape.ToArray();
        shape[0] = 1;
        return new Latents(Tensor.FromFloat(Tensor.AsFloat().AsSpan(i * perItem, perItem).ToArray(), shape), Width, Height, Frames);
    }
}
