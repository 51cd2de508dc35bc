// Miniature Flux.1 exports (schnell and dev), structurally exact to Optimum's FluxPipeline export (the signatures
// are cited in FluxExport.cs: optimum/exporters/onnx/model_configs.py FluxTransformerOnnxConfig, T5EncoderOnnxConfig,
// CLIPTextOnnxConfig, VaeDecoderOnnxConfig; dummy inputs DummyFluxTransformerVisionInputGenerator /
// DummyFluxTransformerTextInputGenerator: img_ids and txt_ids int64, [n, 3] for diffusers ≥ 0.31 and [batch, n, 3]
// before). Configs follow the published black-forest-labs/FLUX.1-schnell and FLUX.1-dev repositories: scheduler
// FlowMatchEulerDiscreteScheduler (schnell: shift 1.0, use_dynamic_shifting false; dev: shift 3.0,
// use_dynamic_shifting true; both base_shift 0.5, max_shift 1.15, base_image_seq_len 256, max_image_seq_len 4096),
// vae scaling_factor 0.3611, shift_factor 0.1159, latent_channels 16, transformer guidance_embeds (dev only).
//
// The transformer in miniature: x_embedder (Linear 64 → D) on the packed tokens; a sinusoidal embedding of
// timestep × 1000 (the model receives σ), and for dev of guidance × 1000, each through Linear, SiLU, Linear; the
// projected pooled CLIP embedding and the mean T5 state added to it; img_ids and txt_ids (cast to float) through
// Linear(3 → D) as position terms (Flux uses them as rotary positions; a learned projection keeps every output
// dependent on them); the mean over tokens added to every token (attention's mixing in miniature); LayerNorm, SiLU,
// Linear; proj_out (Linear D → 64).

using System.Text.Json.Nodes;
using Trident.Runtime.Onnx;
using Trident.Runtime.Onnx.ModelWriter;
using Trident.Runtime.Pipelines.Tiny;
using Trident.Runtime.Pipelines.Tokenizers;

namespace Trident.Runtime.Pipelines.Export;

/// <summary>Flux.1 variants.</summary>
public enum FluxVariant
{
    /// <summary>FLUX.1-schnell: timestep-distilled, no guidance input, 4 steps.</summary>
    Schnell,

    /// <summary>FLUX.1-dev: guidance-distilled, a <c>guidance</c> input, 28 steps.</summary>
    Dev,
}

/// <summary>How an export declares Flux's img_ids / txt_ids.</summary>
/// <param name="Batched">[batch, n, 3] (Optimum with diffusers &lt; 0.31) rather than [n, 3] (diffusers ≥ 0.31).</param>
/// <param name="ElementType">int64 (Optimum) or float (other exporters).</param>
public sealed record FluxIds(bool Batched, TensorElementType ElementType)
{
    /// <summary>Optimum with diffusers ≥ 0.31: int64 [n, 3].</summary>
    public static readonly FluxIds Current = new(false, TensorElementType.Int64);

    /// <summary>Optimum with diffusers &lt; 0.31: int64 [batch, n, 3].</summary>
    public static readonly FluxIds Batched3D = new(true, TensorElementType.Int64);
}

public static partial class ExportMiniature
{
    private const int FluxWidth = 16, FluxChannels = 16, T5Width = 24;

    /// <summary>Writes a miniature Flux.1 export into <paramref name="directory"/>.</summary>
    /// <param name="directory">Where to write (created).</param>
    /// <param name="variant">schnell (no guidance input) or dev (embedded guidance).</param>
    /// <param name="ids">How the transformer declares img_ids / txt_ids.</param>
    /// <param name="seed">Weight seed.</param>
    public static void Flux(string directory, FluxVariant variant, FluxIds ids, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.ElementType is not (TensorElementType.Int64 or TensorElementType.Float))
            throw new ArgumentException($"ids are int64 or float, not {ids.ElementType}", nameof(ids));
        var dev = variant == FluxVariant.Dev;
        var w = DeterministicWeights.FanInNormal(seed);
        Directory.CreateDirectory(directory);
        string Dir(string name) => Directory.CreateDirectory(Path.Combine(directory, name)).FullName;

        var vocabSize = WriteClipTokenizer(Dir("tokenizer"), ClipBpeTokenizer.EndOfText);
        var t5Vocab = WriteT5Tokenizer(Dir("tokenizer_2"), T5TokenizerFormat.Both);

        WriteJson(Path.Combine(Dir("scheduler"), "scheduler_config.json"), new JsonObject
        {
            ["_class_name"] = "FlowMatchEulerDiscreteScheduler", ["_diffusers_version"] = "0.30.0",
            ["base_image_seq_len"] = 256, ["base_shift"] = 0.5, ["max_image_seq_len"] = 4096, ["max_shift"] = 1.15,
            ["num_train_timesteps"] = 1000, ["shift"] = dev ? 3.0 : 1.0, ["use_dynamic_shifting"] = dev,
        });
        static JsonArray Pair(string? library, string? cls) => [library, cls];
        WriteJson(Path.Combine(directory, ExportDirectory.ModelIndex), new JsonObject
        {
            ["_class_name"] = "FluxPipeline", ["_diffusers_version"] = ids.Batched ? "0.30.0" : "0.31.0",
            ["scheduler"] = Pair("diffusers", "FlowMatchEulerDiscreteScheduler"),
            ["text_encoder"] = Pair("transformers", "CLIPTextModel"),
            ["text_encoder_2"] = Pair("transformers", "T5EncoderModel"),
            ["tokenizer"] = Pair("transformers", "CLIPTokenizer"),
            ["tokenizer_2"] = Pair("transformers", "T5TokenizerFast"),
            ["transformer"] = Pair("diffusers", "FluxTransformer2DModel"),
            ["vae"] = Pair("diffusers", "AutoencoderKL"),
        });

        var textDir = Dir("text_encoder");
        TextEncoder(ExportEra.OptimumCurrent, vocabSize, w).Save(Path.Combine(textDir, "model.onnx"));
        var t5ModelDir = Dir("text_encoder_2");
        T5Encoder("text_encoder_2", t5Vocab, T5Width, w).Save(Path.Combine(t5ModelDir, "model.onnx"));
        var transformerDir = Dir("transformer");
        FluxTransformer(dev, ids, w).SaveWithExternalData(Path.Combine(transformerDir, "model.onnx"), "model.onnx_data");
        var vaeDir = Dir("vae_decoder");
        VaeDecoder(ExportEra.OptimumCurrent, w, FluxChannels).Save(Path.Combine(vaeDir, "model.onnx"));

        WriteJson(Path.Combine(textDir, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPTextModel"), ["hidden_size"] = TextWidth, ["max_position_embeddings"] = MaxTokens,
            ["vocab_size"] = vocabSize, ["model_type"] = "clip_text_model",
        });
        WriteJson(Path.Combine(t5ModelDir, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("T5EncoderModel"), ["d_model"] = T5Width, ["vocab_size"] = t5Vocab, ["model_type"] = "t5",
        });
        WriteJson(Path.Combine(transformerDir, "config.json"), new JsonObject
        {
            ["_class_name"] = "FluxTransformer2DModel", ["in_channels"] = 4 * FluxChannels, ["patch_size"] = 1,
            ["joint_attention_dim"] = T5Width, ["pooled_projection_dim"] = TextWidth, ["guidance_embeds"] = dev,
        });
        WriteJson(Path.Combine(vaeDir, "config.json"), new JsonObject
        {
            ["_class_name"] = "AutoencoderKL", ["latent_channels"] = FluxChannels, ["block_out_channels"] = new JsonArray(128, 256, 512, 512),
            ["scaling_factor"] = 0.3611, ["shift_factor"] = 0.1159, ["use_post_quant_conv"] = false, ["use_quant_conv"] = false,
        });
    }

    private static GraphBuilder FluxTransformer(bool dev, FluxIds ids, WeightInit w)
    {
        var g = new GraphBuilder("transformer") { Description = $"Trident miniature FluxTransformer2DModel ({(dev ? "dev" : "schnell")}, ids {(ids.Batched ? "[batch, n, 3]" : "[n, 3]")} {ids.ElementType})" };
        Dim batch = "batch_size", tokens = "packed_height_width", sequence = "sequence_length";
        var hidden = g.Input("hidden_states", F32, batch, tokens, 4 * FluxChannels);
        var text = g.Input("encoder_hidden_states", F32, batch, sequence, T5Width);
        var pooled = g.Input("pooled_projections", F32, batch, TextWidth);
        var timestep = g.Input("timestep", F32, "step");
        var imgIds = ids.Batched ? g.Input("img_ids", ids.ElementType, batch, tokens, 3) : g.Input("img_ids", ids.ElementType, tokens, 3);
        var txtIds = ids.Batched ? g.Input("txt_ids", ids.ElementType, batch, sequence, 3) : g.Input("txt_ids", ids.ElementType, sequence, 3);
        var guidance = dev ? g.Input("guidance", F32, batch) : default;

        var x = g.Linear(hidden, 4 * FluxChannels, FluxWidth, w, "x_embedder");
        var vec = Embedding(g, timestep, w, "time_text_embed.timestep_embedder");
        if (dev) vec = g.Add(vec, Embedding(g, guidance, w, "time_text_embed.guidance_embedder"));
        vec = g.Add(vec, g.Linear(pooled, TextWidth, FluxWidth, w, "time_text_embed.text_embedder"));
        vec = g.Add(vec, g.Linear(g.ReduceMean(text, [1], keepDims: false), T5Width, FluxWidth, w, "context_embedder"));
        var imgPosition = g.Linear(ids.ElementType == F32 ? imgIds : g.Cast(imgIds, F32), 3, FluxWidth, w, "pos_embed.img");
        var txtPosition = g.ReduceMean(g.Linear(ids.ElementType == F32 ? txtIds : g.Cast(txtIds, F32), 3, FluxWidth, w, "pos_embed.txt"), [ids.Batched ? 1 : 0], keepDims: ids.Batched);
        var h = g.Add(g.Add(g.Add(x, imgPosition), txtPosition), g.Reshape(vec, -1, 1, FluxWidth));
        h = g.Add(h, g.ReduceMean(h, [1], keepDims: true)); // joint attention in miniature: every token sees every token
        h = g.Add(h, g.Linear(g.SiLU(g.LayerNorm(h, FluxWidth, "single_transformer_blocks.0.norm")), FluxWidth, FluxWidth, w, "single_transformer_blocks.0.proj"));
        g.Output(g.Linear(h, FluxWidth, 4 * FluxChannels, w, "proj_out"), "out_hidden_states", F32, batch, tokens, 4 * FluxChannels);
        return g;
    }

    // Flux's Timesteps(256, flip_sin_to_cos, 0) + TimestepEmbedding in miniature: the value × 1000 (FluxTransformer2DModel
    // scales timestep and guidance so), a sinusoid of 8 frequencies, Linear, SiLU, Linear → [N, FluxWidth].
    private static ValueRef Embedding(GraphBuilder g, ValueRef value, WeightInit w, string name)
    {
        const int half = 8;
        var frequencies = new float[half];
        for (var i = 0; i < half; i++) frequencies[i] = (float)TinyGraph.PortableExp(-9.210340371976184 * i / half); // max period 10⁴
        var angles = g.Mul(g.Mul(g.Reshape(value, -1, 1), g.Scalar(1000f)), g.Constant($"{name}.frequencies", frequencies, 1, half));
        var sinusoid = g.Concat(-1, g.Cos(angles), g.Sin(angles));
        return g.Linear(g.SiLU(g.Linear(sinusoid, 2 * half, FluxWidth, w, $"{name}.linear_1")), FluxWidth, FluxWidth, w, $"{name}.linear_2");
    }
}
