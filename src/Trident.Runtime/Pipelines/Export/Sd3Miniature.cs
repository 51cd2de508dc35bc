// A structurally exact miniature of a Stable Diffusion 3 ONNX export (see ExportMiniature.cs for what
// "structurally exact" means), written with Trident's graph builder.
//
// Sources of the signatures, per exporter (Sd3ExportEra):
//   Optimum: optimum/exporters/onnx/model_configs.py — CLIPTextWithProjectionOnnxConfig with output_hidden_states
//     for text_encoder and text_encoder_2 (input_ids int64 {0: "batch_size", 1: "sequence_length"} → text_embeds,
//     last_hidden_state, hidden_states.0 … N); T5EncoderOnnxConfig for text_encoder_3 (input_ids int64
//     {0: "batch_size", 1: "sequence_length"} → last_hidden_state {0: "batch_size", 1: "sequence_length"});
//     SD3TransformerOnnxConfig (hidden_states {0: "batch_size", 2: "height", 3: "width"}, encoder_hidden_states
//     {0: "batch_size", 1: "sequence_length"}, pooled_projections {0: "batch_size"}, timestep float {0: "step"} →
//     out_hidden_states {0: "batch_size", 2: "height", 3: "width"}); VaeDecoderOnnxConfig (latent_sample
//     {0: "batch_size", 2: "latent_height", 3: "latent_width"} → sample); model.onnx_data beside large models.
//   Olive: Microsoft Olive's olive/common/hf/io_config (SD3TransformerOnnxConfig: the same inputs with timestep
//     {0: "batch_size"} → out_sample {0: "batch_size", 2: "height", 3: "width"}); the other components as Optimum's.
// Configs follow the published stabilityai/stable-diffusion-3-medium-diffusers repository: model_index.json
// (StableDiffusion3Pipeline; CLIPTextModelWithProjection ×2, T5EncoderModel, CLIPTokenizer ×2, T5TokenizerFast,
// SD3Transformer2DModel, AutoencoderKL, FlowMatchEulerDiscreteScheduler), scheduler shift 3.0, vae scaling_factor
// 1.5305 / shift_factor 0.0609 / latent_channels 16, transformer patch_size 2, tokenizer_2 padding with "!",
// tokenizer_3 model_max_length 512 with spiece.model and tokenizer.json.
// Real widths (CLIP-L 768, CLIP-G 1280, T5 4096, pooled 2048) are tiny here: CLIP-L 16, CLIP-G 24, T5 48, so the
// joined CLIP states (40) are zero-padded to T5's width as in the real pipeline.

using System.Text.Json.Nodes;
using Trident.Runtime.Onnx;
using Trident.Runtime.Onnx.ModelWriter;
using Trident.Runtime.Pipelines.Tiny;
using Trident.Runtime.Pipelines.Tokenizers;

namespace Trident.Runtime.Pipelines.Export;

/// <summary>Which exporter wrote an SD3 export (their transformer signatures differ).</summary>
public enum Sd3ExportEra
{
    /// <summary>Optimum: transformer timestep float [step] → out_hidden_states.</summary>
    Optimum,

    /// <summary>Microsoft Olive: transformer timestep float [batch_size] → out_sample.</summary>
    Olive,
}

/// <summary>Which T5 tokenizer files an SD3 miniature ships in tokenizer_3/.</summary>
public enum T5TokenizerFormat
{
    /// <summary>spiece.model and tokenizer.json (as the published repository has them).</summary>
    Both,

    /// <summary>spiece.model only (a slow-tokenizer save).</summary>
    SentencePiece,

    /// <summary>tokenizer.json only (a fast-tokenizer save without the SentencePiece model).</summary>
    TokenizerJson,
}

public static partial class ExportMiniature
{
    private const int Sd3ClipL = 16, Sd3ClipG = 24, Sd3T5Width = 48, Sd3TransformerWidth = 16, Sd3Channels = 16;

    /// <summary>The T5 miniature's Unigram pieces (ids 3, 4, …): the words of "a photo of a cat", then every
    /// ASCII letter and digit alone and word-initial, so any ASCII prompt tokenizes without &lt;unk&gt;.</summary>
    public static IReadOnlyList<(string Piece, float Score)> T5Pieces { get; } = BuildT5Pieces();

    private static List<(string, float)> BuildT5Pieces()
    {
        var pieces = new List<(string, float)> { ("▁", -3f), ("▁a", -2f), ("▁photo", -2.5f), ("▁of", -2.2f), ("▁cat", -2.4f) };
        foreach (var c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        {
            if (c != 'a') pieces.Add(($"▁{c}", -7f));
            pieces.Add((c.ToString(), -6f));
        }
        return pieces;
    }

    /// <summary>
    /// Writes a miniature SD3 export (text_encoder/, text_encoder_2/, text_encoder_3/, tokenizer/, tokenizer_2/,
    /// tokenizer_3/, transformer/, vae_decoder/, scheduler/) into <paramref name="directory"/>.
    /// </summary>
    /// <param name="directory">Where to write (created).</param>
    /// <param name="era">Whose transformer signature to reproduce.</param>
    /// <param name="t5Files">Which T5 tokenizer files to write.</param>
    /// <param name="withVaeConfig">Whether vae_decoder/config.json is written (without it the SD3 defaults apply).</param>
    /// <param name="seed">Weight seed.</param>
    public static void StableDiffusion3(
        string directory, Sd3ExportEra era = Sd3ExportEra.Optimum, T5TokenizerFormat t5Files = T5TokenizerFormat.Both,
        bool withVaeConfig = true, ulong seed = 0)
    {
        var w = DeterministicWeights.FanInNormal(seed);
        Directory.CreateDirectory(directory);
        string Dir(string name) => Directory.CreateDirectory(Path.Combine(directory, name)).FullName;

        var vocabSize = WriteClipTokenizer(Dir("tokenizer"), ClipBpeTokenizer.EndOfText);
        var vocabSize2 = WriteClipTokenizer(Dir("tokenizer_2"), "!");
        var t5Vocab = WriteT5Tokenizer(Dir("tokenizer_3"), t5Files);
        WriteJson(Path.Combine(Dir("scheduler"), "scheduler_config.json"), new JsonObject
        {
            ["_class_name"] = "FlowMatchEulerDiscreteScheduler", ["_diffusers_version"] = "0.29.0.dev0",
            ["num_train_timesteps"] = 1000, ["shift"] = 3.0,
        });
        static JsonArray Pair(string? library, string? cls) => [library, cls];
        WriteJson(Path.Combine(directory, ExportDirectory.ModelIndex), new JsonObject
        {
            ["_class_name"] = "StableDiffusion3Pipeline",
            ["_diffusers_version"] = "0.29.0.dev0",
            ["scheduler"] = Pair("diffusers", "FlowMatchEulerDiscreteScheduler"),
            ["text_encoder"] = Pair("transformers", "CLIPTextModelWithProjection"),
            ["text_encoder_2"] = Pair("transformers", "CLIPTextModelWithProjection"),
            ["text_encoder_3"] = Pair("transformers", "T5EncoderModel"),
            ["tokenizer"] = Pair("transformers", "CLIPTokenizer"),
            ["tokenizer_2"] = Pair("transformers", "CLIPTokenizer"),
            ["tokenizer_3"] = Pair("transformers", "T5TokenizerFast"),
            ["transformer"] = Pair("diffusers", "SD3Transformer2DModel"),
            ["vae"] = Pair("diffusers", "AutoencoderKL"),
        });

        var textDir = Dir("text_encoder");
        ClipWithHiddenStates("text_encoder", vocabSize, Sd3ClipL, Sd3ClipL, w).Save(Path.Combine(textDir, "model.onnx"));
        var text2Dir = Dir("text_encoder_2");
        ClipWithHiddenStates("text_encoder_2", vocabSize2, Sd3ClipG, Sd3ClipG, w).Save(Path.Combine(text2Dir, "model.onnx"));
        var text3Dir = Dir("text_encoder_3");
        T5Encoder("text_encoder_3", t5Vocab, Sd3T5Width, w).SaveWithExternalData(Path.Combine(text3Dir, "model.onnx"), "model.onnx_data");
        var transformerDir = Dir("transformer");
        Sd3Transformer(era, w).SaveWithExternalData(Path.Combine(transformerDir, "model.onnx"), "model.onnx_data");
        var vaeDir = Dir("vae_decoder");
        VaeDecoder(ExportEra.OptimumCurrent, w, Sd3Channels).Save(Path.Combine(vaeDir, "model.onnx"));

        foreach (var (dir, width, vocab) in new[] { (textDir, Sd3ClipL, vocabSize), (text2Dir, Sd3ClipG, vocabSize2) })
            WriteJson(Path.Combine(dir, "config.json"), new JsonObject
            {
                ["architectures"] = new JsonArray("CLIPTextModelWithProjection"), ["hidden_size"] = width, ["num_hidden_layers"] = SdxlLayers,
                ["projection_dim"] = width, ["max_position_embeddings"] = MaxTokens, ["vocab_size"] = vocab, ["model_type"] = "clip_text_model",
            });
        WriteJson(Path.Combine(text3Dir, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("T5EncoderModel"), ["d_model"] = Sd3T5Width, ["num_layers"] = 1,
            ["vocab_size"] = t5Vocab, ["model_type"] = "t5",
        });
        WriteJson(Path.Combine(transformerDir, "config.json"), new JsonObject
        {
            ["_class_name"] = "SD3Transformer2DModel", ["in_channels"] = Sd3Channels, ["out_channels"] = Sd3Channels,
            ["patch_size"] = 2, ["joint_attention_dim"] = Sd3T5Width, ["pooled_projection_dim"] = Sd3ClipL + Sd3ClipG,
            ["caption_projection_dim"] = Sd3TransformerWidth, ["sample_size"] = 128, ["pos_embed_max_size"] = 192,
        });
        if (withVaeConfig)
            WriteJson(Path.Combine(vaeDir, "config.json"), new JsonObject
            {
                ["_class_name"] = "AutoencoderKL", ["latent_channels"] = Sd3Channels, ["block_out_channels"] = new JsonArray(128, 256, 512, 512),
                ["scaling_factor"] = 1.5305, ["shift_factor"] = 0.0609, ["sample_size"] = 1024, ["use_post_quant_conv"] = false,
            });
    }

    // tokenizer_3/ (SD3) or tokenizer_2/ (Flux): T5's files and their configs (T5TokenizerFast; model_max_length 512). Returns the vocabulary size.
    private static int WriteT5Tokenizer(string folder, T5TokenizerFormat format)
    {
        if (format != T5TokenizerFormat.TokenizerJson) T5TokenizerFiles.WriteSentencePieceModel(Path.Combine(folder, "spiece.model"), T5Pieces);
        if (format != T5TokenizerFormat.SentencePiece) T5TokenizerFiles.WriteTokenizerJson(Path.Combine(folder, "tokenizer.json"), T5Pieces);
        WriteJson(Path.Combine(folder, "special_tokens_map.json"), new JsonObject
        {
            ["eos_token"] = T5Tokenizer.EndOfSequence, ["pad_token"] = T5Tokenizer.Pad, ["unk_token"] = "<unk>",
        });
        WriteJson(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "T5Tokenizer", ["model_max_length"] = 512, ["eos_token"] = T5Tokenizer.EndOfSequence,
            ["pad_token"] = T5Tokenizer.Pad, ["unk_token"] = "<unk>", ["extra_ids"] = 0,
        });
        return T5TokenizerFiles.SpecialPieces.Count + T5Pieces.Count;
    }

    // T5EncoderModel in miniature: token embedding (T5 has no absolute positions), one block — RMS-style norm
    // (LayerNorm here), a feed-forward with the token mean mixed in (attention's role: every state depends on
    // every token) — and the final norm. SD3's text_encoder_3 and Flux's text_encoder_2, of width `width`.
    private static GraphBuilder T5Encoder(string name, int vocabSize, int width, WeightInit w)
    {
        var g = new GraphBuilder(name) { Description = "Trident miniature T5EncoderModel" };
        Dim batch = "batch_size", sequence = "sequence_length";
        var ids = g.Input("input_ids", TensorElementType.Int64, batch, sequence);
        var h = g.Gather(g.Param(w, "shared.weight", [vocabSize, width], 1), ids);
        var mixed = g.Add(h, g.ReduceMean(h, [1], keepDims: true));
        h = g.Add(h, g.Linear(g.Gelu(g.Linear(g.LayerNorm(mixed, width, "encoder.block.0.layer_norm"), width, 2 * width, w, "encoder.block.0.wi")),
            2 * width, width, w, "encoder.block.0.wo"));
        g.Output(g.LayerNorm(h, width, "encoder.final_layer_norm"), "last_hidden_state", F32, batch, sequence, width);
        return g;
    }

    // SD3Transformer2DModel in miniature: the latent projected in (conv), conditioned per channel by the timestep
    // embedding (sinusoid of σ·1000 → Linear, SiLU, Linear) plus the pooled projections (Linear, SiLU, Linear) —
    // SD3's `temb` — and by the mean of the joint text sequence (context_embedder), then a conv and the projection
    // out to 16 channels. The timestep is float [step] (Optimum) or [batch_size] (Olive), reshaped to [N, 1].
    private static GraphBuilder Sd3Transformer(Sd3ExportEra era, WeightInit w)
    {
        var g = new GraphBuilder("transformer") { Description = $"Trident miniature SD3Transformer2DModel ({era})" };
        Dim batch = "batch_size";
        var hidden = g.Input("hidden_states", F32, batch, Sd3Channels, "height", "width");
        var text = g.Input("encoder_hidden_states", F32, batch, "sequence_length", Sd3T5Width);
        var pooled = g.Input("pooled_projections", F32, batch, Sd3ClipL + Sd3ClipG);
        var timestep = g.Input("timestep", F32, era == Sd3ExportEra.Optimum ? "step" : "batch_size");

        var sinusoid = TimestepSinusoid(g, timestep);
        var temb = g.Linear(g.SiLU(g.Linear(sinusoid, 2 * SinusoidHalf, Sd3TransformerWidth, w, "time_text_embed.timestep_embedder.linear_1")),
            Sd3TransformerWidth, Sd3TransformerWidth, w, "time_text_embed.timestep_embedder.linear_2");
        var pooledEmb = g.Linear(g.SiLU(g.Linear(pooled, Sd3ClipL + Sd3ClipG, Sd3TransformerWidth, w, "time_text_embed.text_embedder.linear_1")),
            Sd3TransformerWidth, Sd3TransformerWidth, w, "time_text_embed.text_embedder.linear_2");
        var context = g.Linear(g.ReduceMean(text, [1], keepDims: false), Sd3T5Width, Sd3TransformerWidth, w, "context_embedder");
        var condition = g.Reshape(g.Add(g.Add(temb, pooledEmb), context), -1, Sd3TransformerWidth, 1, 1);

        var h = g.Conv2d(hidden, Sd3Channels, Sd3TransformerWidth, 3, w, "pos_embed.proj");
        h = g.Conv2d(g.SiLU(g.Add(h, condition)), Sd3TransformerWidth, Sd3TransformerWidth, 3, w, "transformer_blocks.0.conv");
        var output = g.Conv2d(g.SiLU(h), Sd3TransformerWidth, Sd3Channels, 3, w, "proj_out");
        g.Output(output, era == Sd3ExportEra.Optimum ? "out_hidden_states" : "out_sample", F32, batch, Sd3Channels, "height", "width");
        return g;
    }
}
