namespace Trident.Runtime.Pipelines.Tokenizers;

/// <summary>Turns a prompt into the fixed-length int64 token ids a text encoder takes.</summary>
public interface ITokenizer
{
    /// <summary>Sequence length of every encoding, special tokens included.</summary>
    int MaxLength { get; }

    /// <summary>Encodes <paramref name="text"/>: start token, content (truncated to fit), end token, then padding
    /// up to <see cref="MaxLength"/>.</summary>
    TokenizedText Encode(string text);

    /// <summary>Encodes into caller-owned spans of exactly <see cref="MaxLength"/> values each (a row of a batch
    /// tensor); the mask is 1 for real tokens and 0 for padding. Returns the number of real tokens.</summary>
    /// <exception cref="ArgumentException">when a span's length is not <see cref="MaxLength"/>.</exception>
    int EncodeInto(string text, Span<long> inputIds, Span<long> attentionMask);

    /// <summary>Content tokens of <paramref name="text"/> before truncation (start, end and padding not counted):
    /// more than <see cref="ContentCapacity"/> means the encoder reads only a prefix.</summary>
    int CountContentTokens(string text);

    /// <summary>Content tokens that fit in one encoding: MaxLength − 2 (start and end tokens) unless a tokenizer
    /// frames differently (T5 has no start token: MaxLength − 1).</summary>
    int ContentCapacity => MaxLength - 2;
}

/// <summary>How much of a prompt the encoder reads.</summary>
/// <param name="TokensTotal">Content tokens of the whole text.</param>
/// <param name="TokensUsed">Content tokens kept (at most ITokenizer.ContentCapacity).</param>
/// <param name="CharactersUsed">Unicode code points of the longest prefix whose tokens all fit.</param>
/// <param name="CharactersTotal">Unicode code points of the whole text.</param>
/// <param name="UsedText">That prefix.</param>
public sealed record PromptUsage(int TokensTotal, int TokensUsed, int CharactersUsed, int CharactersTotal, string UsedText)
{
    /// <summary>Whether tokens were cut.</summary>
    public bool Truncated => TokensUsed < TokensTotal;

    /// <summary>How much of <paramref name="text"/> <paramref name="tokenizer"/> keeps: the token counts, and the
    /// longest prefix (on code-point boundaries) whose tokens fit, found by bisection.</summary>
    public static PromptUsage Of(ITokenizer tokenizer, string text)
    {
        var capacity = Math.Max(0, tokenizer.ContentCapacity);
        var total = tokenizer.CountContentTokens(text);
        var bounds = new List<int> { 0 };
        var at = 0;
        foreach (var rune in text.EnumerateRunes()) bounds.Add(at += rune.Utf16SequenceLength);
        var characters = bounds.Count - 1;
        if (total <= capacity) return new PromptUsage(total, total, characters, characters, text);
        int lo = 0, hi = characters;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            if (tokenizer.CountContentTokens(text[..bounds[mid]]) <= capacity) lo = mid;
            else hi = mid - 1;
        }
        return new PromptUsage(total, tokenizer.CountContentTokens(text[..bounds[lo]]), lo, characters, text[..bounds[lo]]);
    }
}

/// <summary>One encoded prompt.</summary>
/// <param name="InputIds">Token ids, <c>MaxLength</c> of them.</param>
/// <param name="AttentionMask">1 for real tokens (start and end included), 0 for padding.</param>
/// <param name="Length">Number of real tokens.</param>
public sealed record TokenizedText(long[] InputIds, long[] AttentionMask, int Length);

/// <summary>Builds the tokenizer a manifest names.</summary>
public static class TokenizerFactory
{
    /// <summary>The tokenizer for <paramref name="settings"/>; file paths resolve against
    /// <paramref name="pipelineDirectory"/>.</summary>
    public static ITokenizer Create(TokenizerSettings settings, string pipelineDirectory) => settings switch
    {
        ByteTokenizerSettings b => new ByteTokenizer(b),
        ClipBpeTokenizerSettings c => ClipBpeTokenizer.Load(
            PipelineManifest.ResolvePath(pipelineDirectory, c.Vocab),
            PipelineManifest.ResolvePath(pipelineDirectory, c.Merges),
            c.MaxLength,
            c.PadToken),
        T5TokenizerSettings t => T5Tokenizer.Load(PipelineManifest.ResolvePath(pipelineDirectory, t.File), t.MaxLength),
        _ => throw new NotSupportedException($"tokenizer settings {settings.GetType().Name}"),
    };

    /// <summary>Shared framing: BOS, content truncated to MaxLength − 2, EOS, PAD; mask 1 over BOS..EOS.</summary>
    internal static int Frame(ReadOnlySpan<long> content, long bos, long eos, long pad, Span<long> ids, Span<long> mask, int maxLength)
    {
        if (ids.Length != maxLength) throw new ArgumentException($"must hold exactly {maxLength} ids", nameof(ids));
        if (mask.Length != maxLength) throw new ArgumentException($"must hold exactly {maxLength} values", nameof(mask));
        var n = Math.Min(content.Length, maxLength - 2);
        ids[0] = bos;
        content[..n].CopyTo(ids[1..]);
        ids[n + 1] = eos;
        ids[(n + 2)..].Fill(pad);
        mask[..(n + 2)].Fill(1);
        mask[(n + 2)..].Fill(0);
        return n + 2;
    }

    internal static TokenizedText Encode(ITokenizer tokenizer, string text)
    {
        var ids = new long[tokenizer.MaxLength];
        var mask = new long[tokenizer.MaxLength];
        var length = tokenizer.EncodeInto(text, ids, mask);
        return new TokenizedText(ids, mask, length);
    }
}
