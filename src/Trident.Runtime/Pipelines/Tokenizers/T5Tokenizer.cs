// T5's SentencePiece Unigram tokenizer (Raffel et al. 2020; Kudo 2018), as Stable Diffusion 3 (tokenizer_3/) and
// Flux (tokenizer_2/) call it, read from either file an export ships:
//   • tokenizer.json — Hugging Face's fast-tokenizer file (model "Unigram", normalizer with T5's precompiled
//     charsmap, Metaspace pre-tokenizer). Read by Hugging Face tokenizers itself through Tokenizers.DotNet 1.4.1
//     (a native wrapper of the Rust library). Its post-processor (which appends </s>), truncation and padding
//     are removed before loading, so the library yields the content pieces only and the framing below is ours.
//   • spiece.model — the SentencePiece ModelProto. Read by Microsoft.ML.Tokenizers 2.0.1's
//     SentencePieceTokenizer (its Unigram model), with one repair: T5's trainer_spec says bos_id = −1 (T5 has no
//     start token), and the library indexes its vocabulary with that id and throws IndexOutOfRangeException. The
//     bos_id field is dropped when negative (the proto default, 1, is then a valid index; no start token is
//     ever added because the tokenizer is created with addBeginningOfSentence = false).
// When a directory has both, tokenizer.json wins: diffusers' pipelines load T5TokenizerFast, which reads it.
//
// Framing, as diffusers' StableDiffusion3Pipeline._get_t5_prompt_embeds (and FluxPipeline) call the tokenizer —
// padding="max_length", max_length=max_sequence_length (SD3: 256; Flux schnell: 256, dev: 512),
// truncation=True, add_special_tokens=True: the content pieces truncated to max_length − 1, then </s> (id 1 in
// T5's vocabulary), then <pad> (id 0) up to max_length. There is no start token. The attention mask is 1 over
// the content and </s>, 0 over the padding.

using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Microsoft.ML.Tokenizers;

namespace Trident.Runtime.Pipelines.Tokenizers;

/// <summary>T5's SentencePiece Unigram tokenizer (no start token; content, <c>&lt;/s&gt;</c>, <c>&lt;pad&gt;</c>).
/// Thread-safe. Disposing it releases the native Hugging Face tokenizer when it was read from tokenizer.json.</summary>
public sealed class T5Tokenizer : ITokenizer, IDisposable
{
    /// <summary>T5's end-of-sequence token.</summary>
    public const string EndOfSequence = "</s>";

    /// <summary>T5's pad token.</summary>
    public const string Pad = "<pad>";

    private readonly Func<string, IReadOnlyList<int>> contentIds;
    private readonly IDisposable? owned;

    private T5Tokenizer(int maxLength, int eosId, int padId, Func<string, IReadOnlyList<int>> contentIds, IDisposable? owned, string source)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        MaxLength = maxLength;
        EosId = eosId;
        PadId = padId;
        this.contentIds = contentIds;
        this.owned = owned;
        Source = source;
    }

    /// <summary>Reads the tokenizer from <paramref name="path"/>: a <c>tokenizer.json</c> (by its extension) or a
    /// SentencePiece <c>spiece.model</c>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="maxLength">Sequence length, <c>&lt;/s&gt;</c> included (SD3: 256).</param>
    /// <exception cref="InvalidDataException">when the file is not a T5 Unigram tokenizer (the message names the
    /// file and what was wrong).</exception>
    public static T5Tokenizer Load(string path, int maxLength) =>
        path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? FromTokenizerJson(path, maxLength) : FromSentencePiece(path, maxLength);

    /// <summary>Reads a SentencePiece Unigram ModelProto (<c>spiece.model</c>) with Microsoft.ML.Tokenizers.</summary>
    /// <exception cref="InvalidDataException">when the file is not a Unigram model with <c>&lt;/s&gt;</c> and
    /// <c>&lt;pad&gt;</c> pieces.</exception>
    public static T5Tokenizer FromSentencePiece(string path, int maxLength)
    {
        SentencePieceTokenizer sp;
        try
        {
            using var stream = new MemoryStream(WithoutNegativeBosId(File.ReadAllBytes(path)));
            sp = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or ArgumentException or InvalidOperationException
                                      or IndexOutOfRangeException or ArgumentOutOfRangeException or NotSupportedException)
        {
            throw new InvalidDataException($"'{path}' is not a SentencePiece model Trident can read: {e.Message}", e);
        }
        if (!sp.Vocabulary.TryGetValue(EndOfSequence, out var eos))
            throw new InvalidDataException($"'{path}' has no '{EndOfSequence}' piece: not a T5 SentencePiece model");
        if (!sp.Vocabulary.TryGetValue(Pad, out var pad))
            throw new InvalidDataException($"'{path}' has no '{Pad}' piece: not a T5 SentencePiece model");
        return new T5Tokenizer(maxLength, eos, pad,
            text => sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false), null, path);
    }

    /// <summary>Reads a Hugging Face <c>tokenizer.json</c> whose model is Unigram, with Hugging Face tokenizers
    /// (Tokenizers.DotNet); its post-processor, truncation and padding are dropped (the framing is Trident's).</summary>
    /// <exception cref="InvalidDataException">when the file is not JSON, its model is not Unigram, or it has no
    /// <c>&lt;/s&gt;</c> or <c>&lt;pad&gt;</c> token.</exception>
    public static T5Tokenizer FromTokenizerJson(string path, int maxLength)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"'{path}' is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not JSON: {e.Message}", e);
        }
        var type = (root["model"] as JsonObject)?["type"]?.GetValue<string>();
        if (type != "Unigram")
            throw new InvalidDataException($"'{path}': model.type is '{type ?? "(absent)"}'; a T5 tokenizer is 'Unigram'");
        var eos = TokenId(root, EndOfSequence) ?? throw new InvalidDataException($"'{path}' has no '{EndOfSequence}' token: not a T5 tokenizer");
        var pad = TokenId(root, Pad) ?? throw new InvalidDataException($"'{path}' has no '{Pad}' token: not a T5 tokenizer");
        root["post_processor"] = null;
        root["truncation"] = null;
        root["padding"] = null;

        // Tokenizers.DotNet loads from a path only: the edited copy lives in a temporary file for the load.
        var copy = Path.Combine(Path.GetTempPath(), $"trident-t5-{Guid.NewGuid():N}.json");
        global::Tokenizers.DotNet.Tokenizer native;
        try
        {
            File.WriteAllText(copy, root.ToJsonString());
            native = new global::Tokenizers.DotNet.Tokenizer(copy);
        }
        catch (Exception e) when (e is not InvalidDataException and not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' could not be read by Hugging Face tokenizers: {e.Message}", e);
        }
        finally
        {
            File.Delete(copy);
        }
        var gate = new Lock();
        return new T5Tokenizer(maxLength, eos, pad, text =>
        {
            uint[] ids;
            lock (gate) ids = native.Encode(text);
            return Array.ConvertAll(ids, id => checked((int)id));
        }, native, path);
    }

    // The id of `token`: from added_tokens (where T5's tokenizer.json lists <pad>, </s>, <unk>), else its position
    // in the Unigram vocabulary ([[piece, score], …]).
    private static int? TokenId(JsonObject root, string token)
    {
        if (root["added_tokens"] is JsonArray added)
            foreach (var t in added)
                if (t?["content"]?.GetValue<string>() == token && t["id"] is { } id) return id.GetValue<int>();
        if (root["model"]?["vocab"] is JsonArray vocab)
            for (var i = 0; i < vocab.Count; i++)
                if (vocab[i] is JsonArray { Count: > 0 } entry && entry[0]?.GetValue<string>() == token) return i;
        return null;
    }

    // ModelProto field 2 is trainer_spec; TrainerSpec field 41 is bos_id (sentencepiece_model.proto). Every other
    // byte is copied as it is.
    private static byte[] WithoutNegativeBosId(byte[] model)
    {
        const int TrainerSpec = 2, BosId = 41;
        using var buffer = new MemoryStream(model.Length);
        var input = new CodedInputStream(model);
        while (true)
        {
            var start = (int)input.Position;
            var tag = input.ReadTag();
            if (tag == 0) break;
            if (WireFormat.GetTagFieldNumber(tag) == TrainerSpec && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                var spec = input.ReadBytes().ToByteArray();
                using var output = new CodedOutputStream(buffer, leaveOpen: true);
                output.WriteTag(tag);
                output.WriteBytes(ByteString.CopyFrom(Filter(spec, (field, body) => field == BosId && body.ReadInt32() < 0)));
                output.Flush();
            }
            else
            {
                input.SkipLastField();
                buffer.Write(model, start, (int)input.Position - start);
            }
        }
        return buffer.ToArray();

        // Copies `message` without the fields for which `drop` (given the field number and a reader positioned at
        // the field's value) is true.
        static byte[] Filter(byte[] message, Func<int, CodedInputStream, bool> drop)
        {
            using var kept = new MemoryStream(message.Length);
            var reader = new CodedInputStream(message);
            while (true)
            {
                var start = (int)reader.Position;
                var tag = reader.ReadTag();
                if (tag == 0) break;
                var field = WireFormat.GetTagFieldNumber(tag);
                var valueAt = (int)reader.Position;
                var probe = new CodedInputStream(message, valueAt, message.Length - valueAt);
                var dropIt = WireFormat.GetTagWireType(tag) == WireFormat.WireType.Varint && drop(field, probe);
                reader.SkipLastField();
                if (!dropIt) kept.Write(message, start, (int)reader.Position - start);
            }
            return kept.ToArray();
        }
    }

    /// <inheritdoc />
    public int MaxLength { get; }

    /// <summary>T5 has no start token: MaxLength − 1 content pieces fit.</summary>
    public int ContentCapacity => MaxLength - 1;

    /// <summary>Id of <c>&lt;/s&gt;</c>.</summary>
    public int EosId { get; }

    /// <summary>Id of <c>&lt;pad&gt;</c>.</summary>
    public int PadId { get; }

    /// <summary>The file the tokenizer was read from.</summary>
    public string Source { get; }

    /// <summary>The content ids of <paramref name="text"/>: no <c>&lt;/s&gt;</c>, no padding, no truncation.</summary>
    public IReadOnlyList<int> ContentIds(string text) => contentIds(text ?? "");

    /// <inheritdoc />
    public TokenizedText Encode(string text) => TokenizerFactory.Encode(this, text);

    /// <inheritdoc />
    public int EncodeInto(string text, Span<long> inputIds, Span<long> attentionMask)
    {
        if (inputIds.Length != MaxLength) throw new ArgumentException($"must hold exactly {MaxLength} ids", nameof(inputIds));
        if (attentionMask.Length != MaxLength) throw new ArgumentException($"must hold exactly {MaxLength} values", nameof(attentionMask));
        var content = ContentIds(text);
        var n = Math.Min(content.Count, ContentCapacity);
        for (var i = 0; i < n; i++) inputIds[i] = content[i];
        inputIds[n] = EosId;
        inputIds[(n + 1)..].Fill(PadId);
        attentionMask[..(n + 1)].Fill(1);
        attentionMask[(n + 1)..].Fill(0);
        return n + 1;
    }

    /// <inheritdoc />
    public int CountContentTokens(string text) => ContentIds(text).Count;

    /// <summary>Releases the native tokenizer (tokenizer.json); nothing for spiece.model.</summary>
    public void Dispose() => owned?.Dispose();
}
