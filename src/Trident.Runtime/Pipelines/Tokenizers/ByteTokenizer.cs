// Byte-level tokenizer of the bundled tiny pipeline: no vocabulary files, every prompt representable.
// Each UTF-8 byte b becomes id b + offset; PAD, BOS and EOS take ids outside the byte range. When a prompt
// is too long, it is cut at a UTF-8 character boundary, so the kept ids always decode to a prefix of it.

using System.Text;

namespace Trident.Runtime.Pipelines.Tokenizers;

/// <summary>UTF-8 bytes plus an offset, framed by BOS/EOS and padded with PAD.</summary>
public sealed class ByteTokenizer : ITokenizer
{
    private readonly ByteTokenizerSettings _settings;

    /// <summary>Creates the tokenizer.</summary>
    /// <exception cref="ArgumentException">when special ids collide with each other or with the byte range, or
    /// the max length leaves no room for BOS and EOS.</exception>
    public ByteTokenizer(ByteTokenizerSettings settings)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.MaxLength, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(settings.Offset);
        long[] specials = [settings.PadId, settings.BosId, settings.EosId];
        if (specials.Distinct().Count() != 3 || specials.Any(id => id < 0 || (id >= settings.Offset && id < settings.Offset + 256)))
            throw new ArgumentException("PAD, BOS and EOS ids must be distinct, non-negative and outside the byte ids", nameof(settings));
        _settings = settings;
    }

    /// <inheritdoc />
    public int MaxLength => _settings.MaxLength;

    /// <summary>One more than the largest id this tokenizer emits.</summary>
    public int VocabularySize => Math.Max(_settings.Offset + 256, Math.Max(_settings.PadId, Math.Max(_settings.BosId, _settings.EosId)) + 1);

    /// <inheritdoc />
    public TokenizedText Encode(string text) => TokenizerFactory.Encode(this, text);

    /// <inheritdoc />
    public int EncodeInto(string text, Span<long> inputIds, Span<long> attentionMask)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var n = Math.Min(bytes.Length, MaxLength - 2);
        // Back off to the start of a character when the cut falls inside one (continuation bytes are 10xxxxxx).
        if (n < bytes.Length)
            while (n > 0 && (bytes[n] & 0xC0) == 0x80) n--;
        var content = new long[n];
        for (var i = 0; i < n; i++) content[i] = bytes[i] + _settings.Offset;
        return TokenizerFactory.Frame(content, _settings.BosId, _settings.EosId, _settings.PadId, inputIds, attentionMask, MaxLength);
    }

    /// <inheritdoc />
    public int CountContentTokens(string text) => Encoding.UTF8.GetByteCount(text);

    /// <summary>The text of the byte ids up to the first EOS, skipping BOS and PAD.</summary>
    public string Decode(ReadOnlySpan<long> ids)
    {
        var bytes = new List<byte>(ids.Length);
        foreach (var id in ids)
        {
            if (id == _settings.EosId) break;
            var b = id - _settings.Offset;
            if (b is >= 0 and < 256) bytes.Add((byte)b);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
