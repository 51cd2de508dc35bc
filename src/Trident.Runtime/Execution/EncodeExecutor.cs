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

        var stage = pipeline.Manifest.Stages.TextEncoder;
        var session = pipeline.Session(StageModel.TextEncoder, intraOpThreads);
        var rows = negativePrompts is null ? prompts.Count : 2 * prompts.Count;
        var length = pipeline.Tokenizer.MaxLength;
        var ids = new long[rows * length];
        var mask = new long[rows * length];
        for (var r = 0; r < rows; r++)
        {
            var text = r < prompts.Count ? prompts[r] : negativePrompts![r - prompts.Count];
            pipeline.Tokenizer.EncodeInto(text ?? "", ids.AsSpan(r * length, length), mask.AsSpan(r * length, length));
        }

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
        return new Embeddings(hidden, prompts.Count, negativePrompts is not null);
    }

    private static Tensor Ids(long[] values, int rows, int length, TensorInfo info) => info.ElementType switch
    {
        TensorElementType.Int64 => Tensor.FromInt64(values, rows, length),
        TensorElementType.Int32 => Tensor.FromInt32(Array.ConvertAll(values, v => checked((int)v)), rows, length),
        _ => throw new NotSupportedException($"text encoder input {info}: Trident feeds token ids as int64 or int32"),
    };
}
