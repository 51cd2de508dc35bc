// CLIP's byte-level BPE tokenizer (Radford et al. 2021), as used by Stable Diffusion's text encoders, read
// from a Hugging Face export's vocab.json (piece → id) and merges.txt (one "left right" pair per line, most
// frequent first, after a "#version" header).
//
// The BPE itself is Microsoft.ML.Tokenizers' BpeTokenizer (2.0.1) configured as CLIP's: byte-level (GPT-2's
// byte-to-unicode table), the end-of-word suffix "</w>" on each pre-token's last symbol, CLIP's pre-tokenising
// pattern and its two special tokens, and <|endoftext|> as the unknown token. Checked against the hand-written
// implementation this replaces: the same ids on real-format files (TokenizerTests). What the library does not
// do, and is kept here:
//   1. Clean: Unicode NFC, HTML entities decoded twice, runs of whitespace collapsed to one space, trimmed,
//      lower-cased (CLIP's basic_clean/whitespace_clean; ftfy's fixes are not applied).
//   2. Frame: <|startoftext|>, pieces truncated to max_length − 2, <|endoftext|>, pad token up to max_length — as
//      diffusers' pipelines call the tokenizer (truncation=True, padding="max_length").
// The library requires every piece a merge names to be in the vocabulary, as real CLIP vocabularies are.

using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Trident.Runtime.Pipelines.Tokenizers;

/// <summary>CLIP byte-level BPE tokenizer.</summary>
public sealed partial class ClipBpeTokenizer : ITokenizer
{
    /// <summary>The start-of-text token.</summary>
    public const string StartOfText = "<|startoftext|>";

    /// <summary>The end-of-text token; also CLIP's unknown token and OpenAI CLIP's pad token.</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>Suffix marking the last symbol of a word.</summary>
    public const string EndOfWord = "</w>";

    private static readonly string[] ByteToUnicode = BuildByteToUnicode();

    private readonly BpeTokenizer bpe;

    /// <summary>Creates the tokenizer from an in-memory vocabulary and merge list (rank = list position).</summary>
    /// <exception cref="ArgumentException">when the vocabulary lacks a special token or the pad token, or a merge
    /// names a piece the vocabulary lacks.</exception>
    public ClipBpeTokenizer(
        IReadOnlyDictionary<string, int> vocab,
        IEnumerable<(string Left, string Right)> merges,
        int maxLength = 77,
        string padToken = EndOfText)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        ArgumentNullException.ThrowIfNull(merges);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        MaxLength = maxLength;
        BosId = Lookup(vocab, StartOfText, "start token");
        EosId = Lookup(vocab, EndOfText, "end token");
        PadId = Lookup(vocab, padToken, "pad token");
        var special = new Dictionary<string, int>(StringComparer.Ordinal) { [StartOfText] = BosId, [EndOfText] = EosId };
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges.Select(m => $"{m.Left} {m.Right}").ToArray(),
                ByteLevel = true,
                EndOfWordSuffix = EndOfWord,
                PreTokenizer = new RegexPreTokenizer(PreTokenizer(), special),
                SpecialTokens = special,
                UnknownToken = EndOfText,
            });
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException($"not a CLIP BPE vocabulary and merge list: {e.Message}", e);
        }
    }

    /// <summary>Reads <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    /// <exception cref="InvalidDataException">when either file is malformed.</exception>
    public static ClipBpeTokenizer Load(string vocabPath, string mergesPath, int maxLength = 77, string padToken = EndOfText)
    {
        Dictionary<string, int>? vocab;
        try
        {
            using var stream = File.OpenRead(vocabPath);
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(stream);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{vocabPath}' is not a JSON object of token → id: {e.Message}", e);
        }
        if (vocab is null) throw new InvalidDataException($"'{vocabPath}' is not a JSON object of token → id");
        return new ClipBpeTokenizer(vocab, ReadMerges(mergesPath), maxLength, padToken);
    }

    private static List<(string, string)> ReadMerges(string path)
    {
        var merges = new List<(string, string)>();
        var lines = File.ReadAllLines(path, Encoding.UTF8);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0 || (i == 0 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new InvalidDataException($"'{path}' line {i + 1}: expected two symbols separated by one space, got '{line}'");
            merges.Add((parts[0], parts[1]));
        }
        return merges;
    }

    private static int Lookup(IReadOnlyDictionary<string, int> vocab, string token, string role) =>
        vocab.TryGetValue(token, out var id)
            ? id
            : throw new ArgumentException($"the vocabulary has no {role} '{token}'");

    /// <inheritdoc />
    public int MaxLength { get; }

    /// <summary>Id of <c>&lt;|startoftext|&gt;</c>.</summary>
    public int BosId { get; }

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c>, also used for pieces missing from the vocabulary.</summary>
    public int EosId { get; }

    /// <summary>Id of the pad token.</summary>
    public int PadId { get; }

    /// <inheritdoc />
    public TokenizedText Encode(string text) => TokenizerFactory.Encode(this, text);

    /// <inheritdoc />
    public int EncodeInto(string text, Span<long> inputIds, Span<long> attentionMask)
    {
        var tokens = bpe.EncodeToTokens(Clean(text), out _);
        var ids = new long[tokens.Count];
        for (var i = 0; i < ids.Length; i++) ids[i] = tokens[i].Id;
        return TokenizerFactory.Frame(ids, BosId, EosId, PadId, inputIds, attentionMask, MaxLength);
    }

    /// <inheritdoc />
    public int CountContentTokens(string text) => bpe.CountTokens(Clean(text));

    /// <summary>The BPE pieces of <paramref name="text"/> after cleaning, without start/end/pad tokens and
    /// without truncation (e.g. "a photo" → "a&lt;/w&gt;", "photo&lt;/w&gt;" with CLIP's merges).</summary>
    public IReadOnlyList<string> Tokenize(string text) => [.. bpe.EncodeToTokens(Clean(text), out _).Select(t => t.Value)];

    /// <summary>Step 1: NFC, HTML unescaping (twice, as CLIP does), whitespace collapse and trim, lower case.</summary>
    public static string Clean(string text)
    {
        var s = text.Normalize(NormalizationForm.FormC);
        s = WebUtility.HtmlDecode(WebUtility.HtmlDecode(s)).Trim();
        s = Whitespace().Replace(s, " ").Trim();
        return s.ToLowerInvariant();
    }

    /// <summary>
    /// GPT-2's reversible byte → printable character table, the alphabet of byte-level vocabularies: the printable
    /// Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes (controls, space, DEL,
    /// NBSP, soft hyphen) map in order to U+0100, U+0101, …, so that no symbol is whitespace or a control
    /// character. (The library applies it internally; this is for writing vocabularies, as the miniature exports do.)
    /// </summary>
    public static string ByteToUnicodeSymbol(byte b) => ByteToUnicode[b];

    private static string[] BuildByteToUnicode()
    {
        var table = new string[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= '¡' and <= '¬' or >= '®' and <= 'ÿ';
            table[b] = ((char)(printable ? b : next++)).ToString();
        }
        return table;
    }

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex PreTokenizer();

    [GeneratedRegex(@"\s+", RegexOptions.CultureInvariant)]
    private static partial Regex Whitespace();
}
