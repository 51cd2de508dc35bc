// Writes T5 tokenizer files in the two formats exports ship, for the miniature exports and the tests: a
// SentencePiece ModelProto (spiece.model) and a Hugging Face tokenizer.json, from one list of Unigram pieces.
//
// Layouts, field by field, as T5's own files have them:
//   • spiece.model: sentencepiece_model.proto (google/sentencepiece, src/sentencepiece_model.proto) — ModelProto
//     { repeated SentencePiece pieces = 1 { piece = 1; score = 2 (float); type = 3 (NORMAL 1, UNKNOWN 2,
//     CONTROL 3) }; TrainerSpec trainer_spec = 2 { model_type = 3 (UNIGRAM 1); unk_id = 40; bos_id = 41;
//     eos_id = 42; pad_id = 43 }; NormalizerSpec normalizer_spec = 3 { name = 1; add_dummy_prefix = 3;
//     remove_extra_whitespaces = 4; escape_whitespaces = 5 } }. T5's ids: pad 0, eos 1, unk 2, bos −1.
//   • tokenizer.json: what transformers' T5Converter (convert_slow_tokenizer.py) writes — Unigram model with
//     [piece, score] pairs and unk_id 2; added_tokens <pad>, </s>, <unk>; Metaspace pre-tokenizer ("▁",
//     prepend_scheme "always"); whitespace runs collapsed; the post-processor "$A </s>".
// The normalizer here is the identity (no precompiled charsmap): real T5 files carry nmt_nfkc's charsmap, which
// both readers apply; a miniature does not need it.

using System.Text.Json;
using Google.Protobuf;

namespace Trident.Runtime.Pipelines.Tokenizers;

/// <summary>Writes T5 tokenizer files (spiece.model, tokenizer.json) from Unigram pieces.</summary>
public static class T5TokenizerFiles
{
    /// <summary>T5's special pieces, in T5's id order: <c>&lt;pad&gt;</c> 0, <c>&lt;/s&gt;</c> 1, <c>&lt;unk&gt;</c> 2.</summary>
    public static readonly IReadOnlyList<string> SpecialPieces = [T5Tokenizer.Pad, T5Tokenizer.EndOfSequence, "<unk>"];

    /// <summary>Id of <c>&lt;unk&gt;</c> in files written here.</summary>
    public const int UnknownId = 2;

    /// <summary>Writes a SentencePiece Unigram ModelProto: the special pieces (ids 0–2), then
    /// <paramref name="pieces"/> (ids 3, 4, …) with their log-probability scores.</summary>
    public static void WriteSentencePieceModel(string path, IReadOnlyList<(string Piece, float Score)> pieces)
    {
        using var file = File.Create(path);
        var output = new CodedOutputStream(file);
        for (var i = 0; i < SpecialPieces.Count; i++) WritePiece(output, SpecialPieces[i], 0f, i == UnknownId ? 2 : 3);
        foreach (var (piece, score) in pieces) WritePiece(output, piece, score, 1);
        output.WriteTag(2, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(Message(m =>
        {
            m.WriteTag(3, WireFormat.WireType.Varint); m.WriteEnum(1);      // model_type UNIGRAM
            m.WriteTag(40, WireFormat.WireType.Varint); m.WriteInt32(UnknownId);
            m.WriteTag(41, WireFormat.WireType.Varint); m.WriteInt32(-1);   // bos_id: T5 has none
            m.WriteTag(42, WireFormat.WireType.Varint); m.WriteInt32(1);
            m.WriteTag(43, WireFormat.WireType.Varint); m.WriteInt32(0);
        }));
        output.WriteTag(3, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(Message(m =>
        {
            m.WriteTag(1, WireFormat.WireType.LengthDelimited); m.WriteString("identity");
            m.WriteTag(3, WireFormat.WireType.Varint); m.WriteBool(true);
            m.WriteTag(4, WireFormat.WireType.Varint); m.WriteBool(true);
            m.WriteTag(5, WireFormat.WireType.Varint); m.WriteBool(true);
        }));
        output.Flush();
    }

    private static void WritePiece(CodedOutputStream output, string piece, float score, int type)
    {
        output.WriteTag(1, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(Message(m =>
        {
            m.WriteTag(1, WireFormat.WireType.LengthDelimited); m.WriteString(piece);
            m.WriteTag(2, WireFormat.WireType.Fixed32); m.WriteFloat(score);
            m.WriteTag(3, WireFormat.WireType.Varint); m.WriteEnum(type);
        }));
    }

    private static ByteString Message(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        var m = new CodedOutputStream(buffer);
        write(m);
        m.Flush();
        return ByteString.CopyFrom(buffer.ToArray());
    }

    /// <summary>Writes a Hugging Face tokenizer.json with the same pieces and ids as
    /// <see cref="WriteSentencePieceModel"/>.</summary>
    public static void WriteTokenizerJson(string path, IReadOnlyList<(string Piece, float Score)> pieces)
    {
        static object Added(int id, string content) => new Dictionary<string, object>
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        };
        static object Seq(string id) => new Dictionary<string, object> { ["Sequence"] = new Dictionary<string, object> { ["id"] = id, ["type_id"] = 0 } };
        var eos = new Dictionary<string, object> { ["SpecialToken"] = new Dictionary<string, object> { ["id"] = T5Tokenizer.EndOfSequence, ["type_id"] = 0 } };
        var metaspace = new Dictionary<string, object> { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "always", ["split"] = true };
        var vocab = SpecialPieces.Select(p => new object[] { p, 0.0 }).Concat(pieces.Select(p => new object[] { p.Piece, (double)p.Score })).ToArray();
        var json = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = SpecialPieces.Select((p, i) => Added(i, p)).ToArray(),
            ["normalizer"] = new Dictionary<string, object>
            {
                ["type"] = "Sequence",
                ["normalizers"] = new object[] { new Dictionary<string, object> { ["type"] = "Replace", ["pattern"] = new Dictionary<string, object> { ["Regex"] = " {2,}" }, ["content"] = " " } },
            },
            ["pre_tokenizer"] = new Dictionary<string, object>
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new object[] { new Dictionary<string, object> { ["type"] = "WhitespaceSplit" }, metaspace },
            },
            ["post_processor"] = new Dictionary<string, object>
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new object[] { Seq("A"), eos },
                ["pair"] = new object[] { Seq("A"), eos, Seq("B"), eos },
                ["special_tokens"] = new Dictionary<string, object>
                {
                    [T5Tokenizer.EndOfSequence] = new Dictionary<string, object> { ["id"] = T5Tokenizer.EndOfSequence, ["ids"] = new[] { 1 }, ["tokens"] = new[] { T5Tokenizer.EndOfSequence } },
                },
            },
            ["decoder"] = metaspace,
            ["model"] = new Dictionary<string, object> { ["type"] = "Unigram", ["unk_id"] = UnknownId, ["vocab"] = vocab, ["byte_fallback"] = false },
        };
        File.WriteAllText(path, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
    }
}
