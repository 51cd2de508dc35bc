// The encode stage: prompts → text embeddings.
//
// Design note. All prompts of a batch, and with classifier-free guidance their negative prompts, are
// tokenised into one [rows, max_length] id tensor and encoded in a single Run: the tokenizer pads every
// prompt to the same length, so the shapes always agree. The rows are stacked [prompts; negative prompts],
// the layout the diffuse stage runs with guidance (see Embeddings). Whether the unconditional rows are made
// is the caller's choice, expressed by passing negative prompts (empty strings for "no negative prompt");
// the diffuse stage checks that it got them when its guidance scale needs them.
// The executor holds no state besides the pipeline: it is safe to call from several threads.

using Trident.Runtime.Onnx;

namespace Trident.Runtime.Execution;

/// <summary>Runs the text encoder of a pipeline.</summary>
public sealed class EncodeExecutor(LoadedPipeline pipeline)
{
    private readonly LoadedPipeline pipeline = pipeline ?? throw new ArgumentNullException(nameof(pipeline));

    /// <summary>
    /// Encodes <paramref name="prompts"/> and, when <paramref name="negativePrompts"/> is given (one per
    /// prompt; empty strings for none), the unconditional embeddings for classifier-free guidance, in one Run
    /// on the text encoder's session with <paramref name="intraOpThreads"/> threads.
    /// </summary>
    /// <exception cref="ArgumentException">when there are no prompts, the negative prompts do not match them
    /// in number, or negative prompts are given to a pipeline without classifier-free guidance.</exception>
    public Embeddings Encode(
        IReadOnlyList<string> prompts,
        IReadOnlyList<string>? negativePrompts = null,
        int intraOpThreads = 1,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0) throw new ArgumentException("at least one prompt is needed", nameof(prompts));
        if (negativePrompts is not null)
        {
            if (negativePrompts.Count != prompts.Count)
                throw new ArgumentException($"{negativePrompts.Count} negative prompts for {prompts.Count} prompts", nameof(negativePrompts));
            if (!pipeline.Manifest.Guidance.ClassifierFree)
                throw new ArgumentException($"pipeline '{pipeline.Manifest.Name}' has no classifier-free guidance: it takes no negative prompts", nameof(negativePrompts));
        }
        cancellationToken.ThrowIfCancellationRequested();

        var manifest = pipeline.Manifest;
        var texts = new string[negativePrompts is null ? prompts.Count : 2 * prompts.Count];
        for (var r = 0; r < texts.Length; r++) texts[r] = (r < prompts.Count ? prompts[r] : negativePrompts![r - prompts.Count]) ?? "";
        var (hidden, pooled) = Run(StageModel.TextEncoder, manifest.Stages.TextEncoder, pipeline.Tokenizer, texts, intraOpThreads, cancellationToken);
        if (manifest.Stages.TextEncoder2 is { } second)
        {
            // SDXL (diffusers StableDiffusionXLPipeline.encode_prompt): each encoder's penultimate hidden states,
            // concatenated along the width (768 + 1280 = 2048 for SDXL base); the pooled embedding is the second
            // encoder's text_embeds.
            // Flux (FluxPipeline.encode_prompt): CLIP's pooled output and T5's sequence alone.
            // SD3 (StableDiffusion3Pipeline.encode_prompt) joins the two CLIP encoders' penultimate states as SDXL does,
            // and its pooled projections are both encoders' text_embeds concatenated (768 + 1280 = 2048).
            var (hidden2, pooled2) = Run(StageModel.TextEncoder2, second, pipeline.Tokenizer2!, texts, intraOpThreads, cancellationToken);
            if (manifest.Stages.Conditioning == Pipelines.TextConditioning.PooledFirstSequenceSecond) hidden = hidden2;
            else
            {
                hidden = ConcatWidth(hidden, hidden2);
                pooled = pooled is null ? pooled2 : pooled2 is null ? pooled : ConcatWidth(pooled, pooled2);
            }
        }
        if (manifest.Stages.TextEncoder3 is { } t5)
        {
            // SD3 (StableDiffusion3Pipeline.encode_prompt): the CLIP states [rows, 77, 2048] are zero-padded along the
            // width to T5's (torch.nn.functional.pad(clip_prompt_embeds, (0, t5_width − clip_width))) and joined to
            // T5's last_hidden_state [rows, max_sequence_length, 4096] on the token axis → [rows, 77 + 256, 4096].
            var (sequence, _) = Run(StageModel.TextEncoder3, t5, pipeline.Tokenizer3!, texts, intraOpThreads, cancellationToken);
            hidden = ConcatTokens(hidden, sequence);
        }
        if (manifest.ZerosForEmptyNegative && negativePrompts is not null)
        {
            // force_zeros_for_empty_prompt: an absent (empty) negative prompt is zeros, not the empty string's states.
            for (var r = prompts.Count; r < texts.Length; r++)
                if (texts[r].Length == 0)
                {
                    ZeroRow(hidden, r);
                    if (pooled is not null) ZeroRow(pooled, r);
                }
        }
        return new Embeddings(hidden, prompts.Count, negativePrompts is not null, pooled);
    }

    // One encoder over all rows in one Run: its (named) sequence output and, when the stage names one, its pooled output.
    private (Tensor Hidden, Tensor? Pooled) Run(
        StageModel model, Pipelines.TextEncoderStage stage, Pipelines.Tokenizers.ITokenizer tokenizer, string[] texts, int intraOpThreads, CancellationToken cancellationToken)
    {
        var session = pipeline.Session(model, intraOpThreads);
        var rows = texts.Length;
        var length = tokenizer.MaxLength;
        var ids = new long[rows * length];
        var mask = new long[rows * length];
        for (var r = 0; r < rows; r++)
            tokenizer.EncodeInto(texts[r], ids.AsSpan(r * length, length), mask.AsSpan(r * length, length));

        var inputs = new Tensor[session.Inputs.Count];
        if (inputs.Length != (stage.AttentionMask is null ? 1 : 2))
            throw new InvalidOperationException(
                $"the text encoder takes {inputs.Length} inputs ({string.Join(", ", session.Inputs)}); the manifest names " +
                (stage.AttentionMask is null ? $"only '{stage.InputIds}'" : $"'{stage.InputIds}' and '{stage.AttentionMask}'"));
        // The id and mask types are the model's own (int32 in exports traced by diffusers' original ONNX script,
        // int64 in Optimum's), read from its metadata.
        var idsIndex = session.InputIndex(stage.InputIds);
        inputs[idsIndex] = Ids(ids, rows, length, session.Inputs[idsIndex]);
        if (stage.AttentionMask is { } maskName)
        {
            var maskIndex = session.InputIndex(maskName);
            inputs[maskIndex] = Ids(mask, rows, length, session.Inputs[maskIndex]);
        }

        var outputs = session.Run(inputs, cancellationToken);
        var hidden = outputs[session.OutputIndex(stage.LastHiddenState)].Tensor;
        var pooled = stage.Pooled is { } p ? outputs[session.OutputIndex(p)].Tensor : null;
        return (hidden, pooled);
    }

    // Along the last axis: [rows, tokens, a] ‖ [rows, tokens, b] → float32 [rows, tokens, a + b] (states), or
    // [rows, a] ‖ [rows, b] → [rows, a + b] (pooled embeddings).
    private static Tensor ConcatWidth(Tensor left, Tensor right)
    {
        var rank = left.Shape.Count;
        if (rank != right.Shape.Count || rank is < 2 or > 3 || !left.Shape.Take(rank - 1).SequenceEqual(right.Shape.Take(rank - 1)))
            throw new InvalidOperationException($"the two text encoders' outputs {left} and {right} differ in rows or tokens");
        var l = left.As(TensorElementType.Float).AsFloat();
        var r = right.As(TensorElementType.Float).AsFloat();
        long a = left.Shape[^1], b = right.Shape[^1], tokens = left.Length / a;
        var joined = new float[tokens * (a + b)];
        for (long t = 0; t < tokens; t++)
        {
            l.AsSpan((int)(t * a), (int)a).CopyTo(joined.AsSpan((int)(t * (a + b))));
            r.AsSpan((int)(t * b), (int)b).CopyTo(joined.AsSpan((int)(t * (a + b) + a)));
        }
        return Tensor.FromFloat(joined, [.. left.Shape.Take(rank - 1), a + b]);
    }

    // [rows, n, a] (zero-padded to width w) ‖ [rows, m, w] → float32 [rows, n + m, w]: SD3's CLIP states before T5's.
    private static Tensor ConcatTokens(Tensor clip, Tensor t5)
    {
        if (clip.Shape.Count != 3 || t5.Shape.Count != 3 || clip.Shape[0] != t5.Shape[0])
            throw new InvalidOperationException($"the CLIP states {clip} and the T5 states {t5} differ in rows or rank");
        long rows = clip.Shape[0], n = clip.Shape[1], a = clip.Shape[2], m = t5.Shape[1], w = t5.Shape[2];
        if (a > w)
            throw new InvalidOperationException($"the CLIP states {clip} are wider than the T5 states {t5}: SD3 pads CLIP to T5's width");
        var c = clip.As(TensorElementType.Float).AsFloat();
        var t = t5.As(TensorElementType.Float).AsFloat();
        var joined = new float[rows * (n + m) * w];
        for (long r = 0; r < rows; r++)
        {
            var row = joined.AsSpan((int)(r * (n + m) * w), (int)((n + m) * w));
            for (long k = 0; k < n; k++) c.AsSpan((int)((r * n + k) * a), (int)a).CopyTo(row[(int)(k * w)..]);
            t.AsSpan((int)(r * m * w), (int)(m * w)).CopyTo(row[(int)(n * w)..]);
        }
        return Tensor.FromFloat(joined, rows, n + m, w);
    }

    private static void ZeroRow(Tensor t, int row)
    {
        var per = checked((int)(t.Length / t.Shape[0]));
        if (t.ElementType == TensorElementType.Float16) t.AsHalf().AsSpan(row * per, per).Clear();
        else t.AsFloat().AsSpan(row * per, per).Clear();
    }

    private static Tensor Ids(long[] values, int rows, int length, TensorInfo info) => info.ElementType switch
    {
        TensorElementType.Int64 => Tensor.FromInt64(values, rows, length),
        TensorElementType.Int32 => Tensor.FromInt32(Array.ConvertAll(values, v => checked((int)v)), rows, length),
        _ => throw new NotSupportedException($"text encoder input {info}: Trident feeds token ids as int64 or int32"),
    };
}
