// CLIP's byte-level BPE tokenizer (Radford et al. 2021), as used by Stable Diffusion's text encoders, read
// from a Hugging Face export's vocab.json (piece → id) and merges.txt (one "left right" pair per line, most
// frequent first, after a "#version" header).
//
// Algorithm:
//   1. Clean: Unicode NFC, HTML entities decoded twice, runs of whitespace collapsed to one space, trimmed,
//      lower-cased.
//   2. Pre-tokenise with CLIP's pattern: the two special tokens, the contractions 's 't 're 've 'm 'll 'd,
//      runs of letters, single digits, and runs of anything else that is not whitespace.
//   3. Map each pre-token's UTF-8 bytes to printable characters (the GPT-2 byte-to-unicode table, so every
//      byte has a vocabulary symbol and no symbol is whitespace), and mark the last symbol with "</w>".
//   4. BPE: repeatedly merge every occurrence (left to right) of the adjacent pair with the lowest merge
//      rank until no adjacent pair has a rank. The resulting pieces are looked up in the vocabulary; a piece
//      that is missing maps to the unknown token, which for CLIP is <|endoftext|>.
//   5. Frame: <|startoftext|>, pieces truncated to max_length − 2, <|endoftext|>, pad token up to max_length.
// BPE results per pre-token are cached (bounded), since prompts reuse the same words.

using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

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

    private const int CacheCapacity = 10_000;

    private static readonly string[] ByteToUnicode = BuildByteToUnicode();

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);

    /// <summary>Creates the tokenizer from an in-memory vocabulary and merge list (rank = list position).</summary>
    /// <exception cref="ArgumentException">when the vocabulary lacks a special token or the pad token.</exception>
    public ClipBpeTokenizer(
        IReadOnlyDictionary<string, int> vocab,
        IEnumerable<(string Left, string Right)> merges,
        int maxLength = 77,
        string padToken = EndOfText)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        _vocab = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        _ranks = new Dictionary<(string, string), int>();
        foreach (var pair in merges) _ranks.TryAdd(pair, _ranks.Count);
        MaxLength = maxLength;
        BosId = Lookup(StartOfText, "start token");
        EosId = Lookup(EndOfText, "end token");
        PadId = Lookup(padToken, "pad token");
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

    private int Lookup(string token, string role) =>
        _vocab.TryGetValue(token, out var id)
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
        var pieces = Tokenize(text);
        var ids = new long[pieces.Count];
        for (var i = 0; i < ids.Length; i++) ids[i] = _vocab.TryGetValue(pieces[i], out var id) ? id : EosId;
        return TokenizerFactory.Frame(ids, BosId, EosId, PadId, inputIds, attentionMask, MaxLength);
    }

    /// <inheritdoc />
    public int CountContentTokens(string text) => Tokenize(text).Count;

    /// <summary>The BPE pieces of <paramref name="text"/> after cleaning, without start/end/pad tokens and
    /// without truncation (e.g. "a photo" → "a&lt;/w&gt;", "photo&lt;/w&gt;" with CLIP's merges).</summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        var pieces = new List<string>();
        foreach (Match match in PreTokenizer().Matches(Clean(text)))
        {
            var token = match.Value;
            if (token is StartOfText or EndOfText)
            {
                pieces.Add(token);
                continue;
            }
            pieces.AddRange(_cache.TryGetValue(token, out var cached) ? cached : CacheBpe(token));
        }
        return pieces;
    }

    private string[] CacheBpe(string token)
    {
        var result = Bpe(token);
        if (_cache.Count < CacheCapacity) _cache.TryAdd(token, result);
        return result;
    }

    /// <summary>Step 1: NFC, HTML unescaping (twice, as CLIP does), whitespace collapse and trim, lower case.</summary>
    public static string Clean(string text)
    {
        var s = text.Normalize(NormalizationForm.FormC);
        s = WebUtility.HtmlDecode(WebUtility.HtmlDecode(s)).Trim();
        s = Whitespace().Replace(s, " ").Trim();
        return s.ToLowerInvariant();
    }

    private string[] Bpe(string token)
    {
        var bytes = Encoding.UTF8.GetBytes(token);
        var word = new List<string>(bytes.Length);
        foreach (var b in bytes) word.Add(ByteToUnicode[b]);
        word[^1] += EndOfWord;

        while (word.Count > 1)
        {
            var bestRank = int.MaxValue;
            (string, string) best = default;
            for (var i = 0; i + 1 < word.Count; i++)
                if (_ranks.TryGetValue((word[i], word[i + 1]), out var rank) && rank < bestRank)
                {
                    bestRank = rank;
                    best = (word[i], word[i + 1]);
                }
            if (bestRank == int.MaxValue) break;

            var merged = new List<string>(word.Count);
            for (var i = 0; i < word.Count; i++)
            {
                if (i + 1 < word.Count && word[i] == best.Item1 && word[i + 1] == best.Item2)
                {
                    merged.Add(best.Item1 + best.Item2);
                    i++;
                }
                else merged.Add(word[i]);
            }
            word = merged;
        }
        return [.. word];
    }

    /// <summary>
    /// GPT-2's reversible byte → printable character table: the printable Latin-1 bytes ('!'..'~', '¡'..'¬',
    /// '®'..'ÿ') map to themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen) map in order to
    /// U+0100, U+0101, …, so that no symbol is whitespace or a control character.
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
