// Structurally exact miniatures of real diffusers/Optimum ONNX exports, written with Trident's own graph
// builder, so that export recognition and every family's wiring are tested without downloading weights.
//
// "Structurally exact" means: the real export's file layout and config files, the components' input and output
// names, element types, ranks and dynamic axis names; only the sizes a signature does not fix (hidden widths,
// vocabulary, layer counts) are tiny, and the weights are deterministic random numbers. Every output depends on
// every input of its component (the UNet mixes sample, timestep and the text embeddings), so a wiring mistake
// — a wrong input, a swapped tensor, a timestep in the wrong unit — changes the image.
//
// Sources of the signatures (one per export era, ExportEra):
//   DiffusersScript2022: diffusers scripts/convert_stable_diffusion_checkpoint_to_onnx.py (the script behind the
//     `onnx` branches of CompVis/runwayml/stabilityai SD 1.x/2.x repositories): text_encoder input_ids int32
//     {0: "batch", 1: "sequence"} → last_hidden_state, pooler_output; unet sample {0: "batch", 1: "channels",
//     2: "height", 3: "width"}, timestep float {0: "batch"}, encoder_hidden_states {0: "batch", 1: "sequence"}
//     → out_sample, its weights collated into unet/weights.pb; vae_decoder latent_sample {0: "batch",
//     1: "channels", 2: "height", 3: "width"} → sample; model_index.json class OnnxStableDiffusionPipeline; no
//     per-component config.json.
//   Optimum2023: optimum/exporters/onnx/model_configs.py of Optimum 1.x: CLIPTextOnnxConfig input_ids int64
//     {0: "batch_size", 1: "sequence_length"}; UNetOnnxConfig sample {0: "batch_size", 1: "num_channels",
//     2: "height", 3: "width"}, timestep int64 {0: "steps"}, encoder_hidden_states {0: "batch_size",
//     1: "sequence_length"} → out_sample; VaeDecoderOnnxConfig latent_sample {0: "batch_size",
//     1: "num_channels_latent", 2: "height_latent", 3: "width_latent"} → sample {0: "batch_size",
//     1: "num_channels", 2: "height", 3: "width"}; external data unet/model.onnx_data; each component's
//     config.json copied beside it; model_index.json as diffusers saved it (StableDiffusionPipeline).
//   OptimumCurrent: the same file today: UNetOnnxConfig `"timestep": {}` ("a scalar with no dimension", float),
//     sample {0: "batch_size", 2: "height", 3: "width"} (channels fixed), VaeDecoderOnnxConfig latent_sample
//     {0: "batch_size", 2: "latent_height", 3: "latent_width"}.
// SDXL (StableDiffusionXL): optimum/exporters/onnx/model_configs.py, UNetOnnxConfig with addition_embed_type
//   "text_time" adds text_embeds {0: "batch_size"} and time_ids {0: "batch_size"} after encoder_hidden_states
//   (timestep int64 {0: "steps"} in Optimum 1.x, `{}` float today, as for SD); the text encoders are exported with
//   output_hidden_states (hidden_states.0 … N after last_hidden_state), text_encoder as CLIPTextOnnxConfig
//   (last_hidden_state, pooler_output) and text_encoder_2 as CLIPTextWithProjectionOnnxConfig (text_embeds
//   declared {0: "batch_size", 1: "sequence_length"}, last_hidden_state). Configs follow the published
//   stabilityai/stable-diffusion-xl-base-1.0 repository (EulerDiscreteScheduler, vae scaling_factor 0.13025,
//   force_zeros_for_empty_prompt, tokenizer_2 padding with "!").
// Config values (scheduler_config.json, vae config.json, tokenizer files) follow the published
// runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-1 repositories (PNDMScheduler / DDIMScheduler,
// β 0.00085–0.012 scaled_linear, steps_offset 1, scaling_factor 0.18215, model_max_length 77; SD 2.x pads with
// "!" and predicts v).

using System.Text.Json;
using System.Text.Json.Nodes;
using Trident.Runtime.Onnx;
using Trident.Runtime.Onnx.ModelWriter;
using Trident.Runtime.Pipelines.Tiny;
using Trident.Runtime.Pipelines.Tokenizers;

namespace Trident.Runtime.Pipelines.Export;

/// <summary>Which exporter (and when) wrote an export: the signatures differ between them.</summary>
public enum ExportEra
{
    /// <summary>diffusers' convert_stable_diffusion_checkpoint_to_onnx.py (2022): int32 ids, float [batch] timestep, weights.pb.</summary>
    DiffusersScript2022,

    /// <summary>Optimum 1.x (2023): int64 ids, int64 [steps] timestep, model.onnx_data, component configs.</summary>
    Optimum2023,

    /// <summary>Optimum today: int64 ids, float [] timestep, fixed channel axes.</summary>
    OptimumCurrent,
}

/// <summary>Writes miniature export directories (see the file's header for the sources).</summary>
public static partial class ExportMiniature
{
    private const TensorElementType F32 = TensorElementType.Float;
    private const int TextWidth = 32;
    private const int UnetWidth = 16;
    private const int VaeWidth = 8;
    private const int MaxTokens = 77;
    private const int LatentChannels = 4;

    // A few merges so that the miniature tokenizer exercises BPE: "a photo of a cat" has merged pieces.
    private static readonly (string, string)[] Merges =
    [
        ("a", "t</w>"), ("c", "at</w>"), ("p", "h"), ("ph", "o"), ("t", "o</w>"), ("pho", "to</w>"), ("o", "f</w>"),
    ];

    /// <summary>
    /// Writes a miniature SD 1.x/2.x export into <paramref name="directory"/> (created; must be empty or absent).
    /// </summary>
    /// <param name="directory">Where to write.</param>
    /// <param name="era">Which exporter's signatures and layout to reproduce.</param>
    /// <param name="prediction">The scheduler config's prediction_type (SD 2.x at 768² predicts v).</param>
    /// <param name="schedulerClass">The scheduler config's _class_name (PNDMScheduler for SD 1.5, DDIMScheduler for SD 2.1).</param>
    /// <param name="seed">Weight seed.</param>
    public static void StableDiffusion(
        string directory, ExportEra era, PredictionType prediction = PredictionType.Epsilon, string schedulerClass = "PNDMScheduler", ulong seed = 0)
    {
        var script = era == ExportEra.DiffusersScript2022;
        var w = DeterministicWeights.FanInNormal(seed);
        Directory.CreateDirectory(directory);
        string Dir(string name) => Directory.CreateDirectory(Path.Combine(directory, name)).FullName;

        var pad = prediction == PredictionType.VPrediction ? "!" : ClipBpeTokenizer.EndOfText;
        var vocabSize = WriteClipTokenizer(Dir("tokenizer"), pad);

        // Scheduler.
        var scheduler = new JsonObject
        {
            ["_class_name"] = schedulerClass,
            ["_diffusers_version"] = script ? "0.6.0" : "0.30.0",
            ["beta_end"] = 0.012,
            ["beta_schedule"] = "scaled_linear",
            ["beta_start"] = 0.00085,
            ["clip_sample"] = false,
            ["num_train_timesteps"] = 1000,
            ["set_alpha_to_one"] = false,
            ["skip_prk_steps"] = true,
            ["steps_offset"] = 1,
            ["trained_betas"] = null,
        };
        if (!script || prediction != PredictionType.Epsilon)
            scheduler["prediction_type"] = prediction == PredictionType.VPrediction ? "v_prediction" : "epsilon";
        WriteJson(Path.Combine(Dir("scheduler"), "scheduler_config.json"), scheduler);

        // model_index.json.
        static JsonArray Pair(string? library, string? cls) => [library, cls];
        var index = script
            ? new JsonObject
            {
                ["_class_name"] = "OnnxStableDiffusionPipeline",
                ["_diffusers_version"] = "0.6.0",
                ["feature_extractor"] = Pair("transformers", "CLIPFeatureExtractor"),
                ["safety_checker"] = Pair("diffusers", "OnnxRuntimeModel"),
                ["scheduler"] = Pair("diffusers", schedulerClass),
                ["text_encoder"] = Pair("diffusers", "OnnxRuntimeModel"),
                ["tokenizer"] = Pair("transformers", "CLIPTokenizer"),
                ["unet"] = Pair("diffusers", "OnnxRuntimeModel"),
                ["vae_decoder"] = Pair("diffusers", "OnnxRuntimeModel"),
                ["vae_encoder"] = Pair("diffusers", "OnnxRuntimeModel"),
            }
            : new JsonObject
            {
                ["_class_name"] = "StableDiffusionPipeline",
                ["_diffusers_version"] = "0.30.0",
                ["feature_extractor"] = Pair(null, null),
                ["image_encoder"] = Pair(null, null),
                ["requires_safety_checker"] = false,
                ["safety_checker"] = Pair(null, null),
                ["scheduler"] = Pair("diffusers", schedulerClass),
                ["text_encoder"] = Pair("transformers", "CLIPTextModel"),
                ["tokenizer"] = Pair("transformers", "CLIPTokenizer"),
                ["unet"] = Pair("diffusers", "UNet2DConditionModel"),
                ["vae"] = Pair("diffusers", "AutoencoderKL"),
            };
        WriteJson(Path.Combine(directory, ExportDirectory.ModelIndex), index);

        // The three models.
        var textDir = Dir("text_encoder");
        TextEncoder(era, vocabSize, w).Save(Path.Combine(textDir, "model.onnx"));
        var unetDir = Dir("unet");
        var unet = Unet(era, w);
        if (script) unet.SaveWithExternalData(Path.Combine(unetDir, "model.onnx"), "weights.pb");
        else unet.SaveWithExternalData(Path.Combine(unetDir, "model.onnx"), "model.onnx_data");
        var vaeDir = Dir("vae_decoder");
        VaeDecoder(era, w).Save(Path.Combine(vaeDir, "model.onnx"));

        if (!script)
        {
            WriteJson(Path.Combine(textDir, "config.json"), new JsonObject
            {
                ["architectures"] = new JsonArray("CLIPTextModel"), ["hidden_size"] = TextWidth,
                ["max_position_embeddings"] = MaxTokens, ["vocab_size"] = vocabSize, ["model_type"] = "clip_text_model",
            });
            WriteJson(Path.Combine(unetDir, "config.json"), new JsonObject
            {
                ["_class_name"] = "UNet2DConditionModel", ["in_channels"] = LatentChannels, ["out_channels"] = LatentChannels,
                ["cross_attention_dim"] = TextWidth, ["sample_size"] = 64,
            });
            WriteJson(Path.Combine(vaeDir, "config.json"), new JsonObject
            {
                ["_class_name"] = "AutoencoderKL", ["latent_channels"] = LatentChannels,
                ["block_out_channels"] = new JsonArray(128, 256, 512, 512), ["scaling_factor"] = 0.18215, ["sample_size"] = 512,
            });
        }
    }

    private const int SdxlTextWidth = 32, SdxlText2Width = 48, SdxlProjection = 24, SdxlLayers = 2;

    /// <summary>
    /// Writes a miniature SDXL export (Optimum's layout: text_encoder/, text_encoder_2/, tokenizer/,
    /// tokenizer_2/, unet/, vae_decoder/, scheduler/) into <paramref name="directory"/>. The eras differ in the
    /// UNet's timestep (int64 [steps] in Optimum 1.x, float [] today) and its channel axis (dynamic
    /// "num_channels" then, fixed 4 now); <see cref="ExportEra.DiffusersScript2022"/> predates SDXL.
    /// </summary>
    /// <exception cref="ArgumentException">for <see cref="ExportEra.DiffusersScript2022"/>.</exception>
    public static void StableDiffusionXL(string directory, ExportEra era, ulong seed = 0)
    {
        if (era == ExportEra.DiffusersScript2022)
            throw new ArgumentException("diffusers' 2022 ONNX script predates SDXL: SDXL exports are Optimum's", nameof(era));
        var w = DeterministicWeights.FanInNormal(seed);
        Directory.CreateDirectory(directory);
        string Dir(string name) => Directory.CreateDirectory(Path.Combine(directory, name)).FullName;

        // stabilityai/stable-diffusion-xl-base-1.0: tokenizer pads with <|endoftext|>, tokenizer_2 with "!".
        var vocabSize = WriteClipTokenizer(Dir("tokenizer"), ClipBpeTokenizer.EndOfText);
        var vocabSize2 = WriteClipTokenizer(Dir("tokenizer_2"), "!");
        // Its scheduler/scheduler_config.json (EulerDiscreteScheduler).
        WriteJson(Path.Combine(Dir("scheduler"), "scheduler_config.json"), new JsonObject
        {
            ["_class_name"] = "EulerDiscreteScheduler", ["_diffusers_version"] = "0.30.0",
            ["beta_end"] = 0.012, ["beta_schedule"] = "scaled_linear", ["beta_start"] = 0.00085, ["clip_sample"] = false,
            ["interpolation_type"] = "linear", ["num_train_timesteps"] = 1000, ["prediction_type"] = "epsilon",
            ["sample_max_value"] = 1.0, ["set_alpha_to_one"] = false, ["skip_prk_steps"] = true, ["steps_offset"] = 1,
            ["timestep_spacing"] = "leading", ["trained_betas"] = null, ["use_karras_sigmas"] = false,
        });
        static JsonArray Pair(string? library, string? cls) => [library, cls];
        WriteJson(Path.Combine(directory, ExportDirectory.ModelIndex), new JsonObject
        {
            ["_class_name"] = "StableDiffusionXLPipeline",
            ["_diffusers_version"] = "0.30.0",
            ["feature_extractor"] = Pair(null, null),
            ["force_zeros_for_empty_prompt"] = true,
            ["image_encoder"] = Pair(null, null),
            ["scheduler"] = Pair("diffusers", "EulerDiscreteScheduler"),
            ["text_encoder"] = Pair("transformers", "CLIPTextModel"),
            ["text_encoder_2"] = Pair("transformers", "CLIPTextModelWithProjection"),
            ["tokenizer"] = Pair("transformers", "CLIPTokenizer"),
            ["tokenizer_2"] = Pair("transformers", "CLIPTokenizer"),
            ["unet"] = Pair("diffusers", "UNet2DConditionModel"),
            ["vae"] = Pair("diffusers", "AutoencoderKL"),
        });

        var textDir = Dir("text_encoder");
        ClipWithHiddenStates("text_encoder", vocabSize, SdxlTextWidth, null, w).Save(Path.Combine(textDir, "model.onnx"));
        var text2Dir = Dir("text_encoder_2");
        ClipWithHiddenStates("text_encoder_2", vocabSize2, SdxlText2Width, SdxlProjection, w).Save(Path.Combine(text2Dir, "model.onnx"));
        var unetDir = Dir("unet");
        Unet(era, w, SdxlTextWidth + SdxlText2Width, SdxlProjection).SaveWithExternalData(Path.Combine(unetDir, "model.onnx"), "model.onnx_data");
        var vaeDir = Dir("vae_decoder");
        VaeDecoder(era, w).Save(Path.Combine(vaeDir, "model.onnx"));

        WriteJson(Path.Combine(textDir, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPTextModel"), ["hidden_size"] = SdxlTextWidth, ["num_hidden_layers"] = SdxlLayers,
            ["max_position_embeddings"] = MaxTokens, ["vocab_size"] = vocabSize, ["model_type"] = "clip_text_model",
        });
        WriteJson(Path.Combine(text2Dir, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPTextModelWithProjection"), ["hidden_size"] = SdxlText2Width, ["num_hidden_layers"] = SdxlLayers,
            ["projection_dim"] = SdxlProjection, ["max_position_embeddings"] = MaxTokens, ["vocab_size"] = vocabSize2, ["model_type"] = "clip_text_model",
        });
        WriteJson(Path.Combine(unetDir, "config.json"), new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel", ["addition_embed_type"] = "text_time", ["addition_time_embed_dim"] = 256,
            ["in_channels"] = LatentChannels, ["out_channels"] = LatentChannels, ["cross_attention_dim"] = SdxlTextWidth + SdxlText2Width,
            ["projection_class_embeddings_input_dim"] = SdxlProjection + 6 * 256, ["sample_size"] = 128,
        });
        WriteJson(Path.Combine(vaeDir, "config.json"), new JsonObject
        {
            ["_class_name"] = "AutoencoderKL", ["latent_channels"] = LatentChannels, ["force_upcast"] = true,
            ["block_out_channels"] = new JsonArray(128, 256, 512, 512), ["scaling_factor"] = 0.13025, ["sample_size"] = 1024,
        });
    }

    // A CLIP text encoder as Optimum exports it for SDXL (output_hidden_states): CLIPTextOnnxConfig gives
    // last_hidden_state, pooler_output, hidden_states.0 … N; CLIPTextWithProjectionOnnxConfig (projection given)
    // gives text_embeds, last_hidden_state, hidden_states.0 … N. Optimum declares text_embeds with the axes
    // {0: "batch_size", 1: "sequence_length"} although its second axis is the projection width: the file declares
    // those names, and ONNX Runtime's shape inference replaces the second by the width when it loads the model
    // (its metadata reads [batch_size, projection]). hidden_states.0 is the embeddings, hidden_states.i the i-th layer's output,
    // last_hidden_state the final LayerNorm of hidden_states.N; the pooled outputs are the token mean (CLIP
    // takes the end token's state; either depends on every token), projected for text_embeds.
    internal static GraphBuilder ClipWithHiddenStates(string component, int vocabSize, int width, int? projection, WeightInit w)
    {
        var g = new GraphBuilder(component) { Description = $"Trident miniature {(projection is null ? "CLIPTextModel" : "CLIPTextModelWithProjection")} with hidden states" };
        Dim batch = "batch_size", sequence = "sequence_length";
        var ids = g.Input("input_ids", TensorElementType.Int64, batch, sequence);
        var table = g.Param(w, $"{component}.embeddings.token_embedding.weight", [vocabSize, width], 1);
        var positions = g.Param(w, $"{component}.embeddings.position_embedding.weight", [MaxTokens, width], 1);
        var states = new List<ValueRef> { g.Add(g.Gather(table, ids), g.SlicePrefix(positions, g.Dims(g.Shape(ids), 1, 2), 0)) };
        for (var layer = 0; layer < SdxlLayers; layer++)
        {
            var h = states[^1];
            states.Add(g.Add(h, g.Linear(g.Gelu(g.LayerNorm(h, width, $"{component}.encoder.layers.{layer}.norm")), width, width, w, $"{component}.encoder.layers.{layer}.fc")));
        }
        var last = g.LayerNorm(states[^1], width, $"{component}.final_layer_norm");
        var pooled = g.ReduceMean(last, [1], keepDims: false);
        if (projection is { } p)
        {
            g.Output(g.Linear(pooled, width, p, w, $"{component}.text_projection", bias: false), "text_embeds", F32, batch, sequence);
            g.Output(last, "last_hidden_state", F32, batch, sequence, width);
        }
        else
        {
            g.Output(last, "last_hidden_state", F32, batch, sequence, width);
            g.Output(pooled, "pooler_output", F32, batch, width);
        }
        for (var i = 0; i < states.Count; i++) g.Output(states[i], $"hidden_states.{i}", F32, batch, sequence, width);
        return g;
    }

    // The CLIPTokenizer files in `folder`: a byte-level vocabulary (each byte alone and word-final), a few merges,
    // the start and end tokens; special_tokens_map.json and tokenizer_config.json with `pad`. Returns the vocabulary size.
    internal static int WriteClipTokenizer(string folder, string pad)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var b = 0; b < 256; b++) vocab[ClipBpeTokenizer.ByteToUnicodeSymbol((byte)b)] = b;
        for (var b = 0; b < 256; b++) vocab[ClipBpeTokenizer.ByteToUnicodeSymbol((byte)b) + ClipBpeTokenizer.EndOfWord] = 256 + b;
        foreach (var (l, r) in Merges) vocab.TryAdd(l + r, vocab.Count);
        vocab[ClipBpeTokenizer.StartOfText] = vocab.Count;
        vocab[ClipBpeTokenizer.EndOfText] = vocab.Count;
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllLines(Path.Combine(folder, "merges.txt"), ["#version: 0.2", .. Merges.Select(m => $"{m.Item1} {m.Item2}")]);
        WriteJson(Path.Combine(folder, "special_tokens_map.json"), new JsonObject
        {
            ["bos_token"] = Token(ClipBpeTokenizer.StartOfText),
            ["eos_token"] = Token(ClipBpeTokenizer.EndOfText),
            ["pad_token"] = pad,
            ["unk_token"] = Token(ClipBpeTokenizer.EndOfText),
        });
        WriteJson(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["do_lower_case"] = true,
            ["model_max_length"] = MaxTokens,
            ["tokenizer_class"] = "CLIPTokenizer",
            ["pad_token"] = Token(pad),
        });
        return vocab.Count;
    }

    private static JsonObject Token(string content) => new()
    {
        ["content"] = content, ["lstrip"] = false, ["normalized"] = true, ["rstrip"] = false, ["single_word"] = false,
    };

    internal static void WriteJson(string path, JsonNode node) =>
        File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    // CLIPTextModel in miniature: token + position embeddings, LayerNorm, a Linear; pooler_output is the mean
    // over tokens (real CLIP takes the end token's state; either way it depends on every token).
    private static GraphBuilder TextEncoder(ExportEra era, int vocabSize, WeightInit w)
    {
        var script = era == ExportEra.DiffusersScript2022;
        var g = new GraphBuilder("text_encoder") { Description = $"Trident miniature CLIPTextModel ({era})" };
        Dim batch = script ? "batch" : "batch_size", sequence = script ? "sequence" : "sequence_length";
        var ids = g.Input("input_ids", script ? TensorElementType.Int32 : TensorElementType.Int64, batch, sequence);
        var ids64 = script ? g.Cast(ids, TensorElementType.Int64) : ids;
        var table = g.Param(w, "embeddings.token_embedding.weight", [vocabSize, TextWidth], 1);
        var positions = g.Param(w, "embeddings.position_embedding.weight", [MaxTokens, TextWidth], 1);
        var x = g.Add(g.Gather(table, ids64), g.SlicePrefix(positions, g.Dims(g.Shape(ids), 1, 2), 0));
        x = g.Linear(g.Gelu(g.LayerNorm(x, TextWidth, "encoder.norm")), TextWidth, TextWidth, w, "encoder.fc");
        var hidden = g.LayerNorm(x, TextWidth, "final_layer_norm");
        g.Output(hidden, "last_hidden_state", F32, batch, sequence, TextWidth);
        g.Output(g.ReduceMean(hidden, [1], keepDims: false), "pooler_output", F32, batch, TextWidth);
        return g;
    }

    // UNet2DConditionModel in miniature: conv_in, a timestep embedding (sinusoid → Linear, SiLU, Linear) and the
    // mean text state projected, both added per channel, conv, conv_out. The timestep may be a scalar, [1] or
    // [batch] (reshaped to [N, 1] and broadcast), int64 or float, as each era declares it.
    private static GraphBuilder Unet(ExportEra era, WeightInit w, int textWidth = TextWidth, int? pooledWidth = null)
    {
        var sdxl = pooledWidth is not null;
        var g = new GraphBuilder("unet") { Description = $"Trident miniature UNet2DConditionModel{(sdxl ? " (SDXL, addition_embed_type text_time)" : "")} ({era})" };
        var (batch, channels, sequence) = era switch
        {
            ExportEra.DiffusersScript2022 => ((Dim)"batch", (Dim)"channels", (Dim)"sequence"),
            ExportEra.Optimum2023 => ((Dim)"batch_size", (Dim)"num_channels", (Dim)"sequence_length"),
            _ => ((Dim)"batch_size", (Dim)LatentChannels, (Dim)"sequence_length"),
        };
        var sample = g.Input("sample", F32, batch, channels, "height", "width");
        var timestep = era switch
        {
            ExportEra.DiffusersScript2022 => g.Input("timestep", F32, "batch"),
            ExportEra.Optimum2023 => g.Input("timestep", TensorElementType.Int64, "steps"),
            _ => g.Input("timestep", F32),
        };
        var text = g.Input("encoder_hidden_states", F32, batch, sequence, textWidth);
        // SDXL: text_embeds {0: "batch_size"} and time_ids {0: "batch_size"} (Optimum's UNetOnnxConfig when
        // addition_embed_type is "text_time"); the other axes are the traced sizes.
        var textEmbeds = sdxl ? g.Input("text_embeds", F32, batch, pooledWidth!.Value) : default;
        var timeIds = sdxl ? g.Input("time_ids", F32, batch, 6) : default;

        var t = era == ExportEra.Optimum2023 ? g.Cast(timestep, F32) : timestep;
        const int half = SinusoidHalf;
        var frequencies = SinusoidFrequencies();
        var sinusoid = TimestepSinusoid(g, t);
        var temb = g.Linear(g.SiLU(g.Linear(sinusoid, 2 * half, UnetWidth, w, "time_embedding.linear_1")), UnetWidth, UnetWidth, w, "time_embedding.linear_2");
        if (sdxl)
        {
            // add_time_proj (a sinusoid of each of the six time_ids), concatenated with text_embeds, through
            // add_embedding (Linear, SiLU, Linear), added to the timestep embedding, as UNet2DConditionModel does.
            var idAngles = g.Mul(g.Reshape(timeIds, -1, 6, 1), g.Constant("add_time_frequencies", frequencies, 1, 1, half));
            var idEmbedding = g.Reshape(g.Concat(-1, g.Cos(idAngles), g.Sin(idAngles)), -1, 6 * 2 * half);
            var added = g.Concat(-1, textEmbeds, idEmbedding);
            var addWidth = pooledWidth!.Value + 6 * 2 * half;
            temb = g.Add(temb, g.Linear(g.SiLU(g.Linear(added, addWidth, UnetWidth, w, "add_embedding.linear_1")), UnetWidth, UnetWidth, w, "add_embedding.linear_2"));
        }
        var context = g.Linear(g.ReduceMean(text, [1], keepDims: false), textWidth, UnetWidth, w, "context_proj");
        var condition = g.Reshape(g.Add(temb, context), -1, UnetWidth, 1, 1);

        var h = g.Conv2d(sample, LatentChannels, UnetWidth, 3, w, "conv_in");
        h = g.Conv2d(g.SiLU(g.Add(h, condition)), UnetWidth, UnetWidth, 3, w, "mid_block.conv");
        var output = g.Conv2d(g.SiLU(h), UnetWidth, LatentChannels, 3, w, "conv_out");
        g.Output(output, "out_sample", F32, batch, channels, "height", "width");
        return g;
    }

    private const int SinusoidHalf = 8;

    // diffusers' Timesteps frequencies 10⁴^(−i/8), i < 8 (max period 10⁴).
    private static float[] SinusoidFrequencies()
    {
        var values = new float[SinusoidHalf];
        for (var i = 0; i < SinusoidHalf; i++) values[i] = (float)TinyGraph.PortableExp(-9.210340371976184 * i / SinusoidHalf);
        return values;
    }

    // The sinusoidal timestep embedding (cos ‖ sin of t · frequencies) of a timestep of any rank, reshaped to
    // [N, 1]: [N, 16].
    private static ValueRef TimestepSinusoid(GraphBuilder g, ValueRef t)
    {
        var angles = g.Mul(g.Reshape(t, -1, 1), g.Constant("time_frequencies", SinusoidFrequencies(), 1, SinusoidHalf));
        return g.Concat(-1, g.Cos(angles), g.Sin(angles));
    }

    // AutoencoderKL's decoder in miniature: conv_in, three (2× upsample, conv, SiLU), conv_out, tanh (×8).
    internal static GraphBuilder VaeDecoder(ExportEra era, WeightInit w, int latentChannels = LatentChannels)
    {
        var g = new GraphBuilder("vae_decoder") { Description = $"Trident miniature AutoencoderKL decoder ({era})" };
        ValueRef latent = era switch
        {
            ExportEra.DiffusersScript2022 => g.Input("latent_sample", F32, "batch", "channels", "height", "width"),
            ExportEra.Optimum2023 => g.Input("latent_sample", F32, "batch_size", "num_channels_latent", "height_latent", "width_latent"),
            _ => g.Input("latent_sample", F32, "batch_size", latentChannels, "latent_height", "latent_width"),
        };
        var x = g.Conv2d(latent, latentChannels, VaeWidth, 3, w, "decoder.conv_in");
        for (var i = 0; i < 3; i++) x = g.SiLU(g.Conv2d(g.Upsample2x(x), VaeWidth, VaeWidth, 3, w, $"decoder.up_blocks.{i}.conv"));
        var image = g.Tanh(g.Conv2d(x, VaeWidth, 3, 3, w, "decoder.conv_out"));
        switch (era)
        {
            case ExportEra.DiffusersScript2022:
                g.Output(image, "sample", F32, "batch", 3, "Convsample_dim_2", "Convsample_dim_3"); // names torch.onnx made up
                break;
            case ExportEra.Optimum2023:
                g.Output(image, "sample", F32, "batch_size", "num_channels", "height", "width");
                break;
            default:
                g.Output(image, "sample", F32, "batch_size", 3, "latent_height * 8", "latent_width * 8");
                break;
        }
        return g;
    }
}
