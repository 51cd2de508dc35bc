// Flux.1 (schnell and dev) export directories: recognition and the manifest Trident runs them with.
//
// Layout and signatures, as Optimum exports FluxPipeline (optimum/exporters/onnx/model_configs.py):
//   text_encoder/    CLIPTextOnnxConfig: input_ids [batch_size, sequence_length] → last_hidden_state, pooler_output;
//                    FluxPipeline uses the pooled output only (pooled_prompt_embeds).
//   text_encoder_2/  T5EncoderOnnxConfig: input_ids [batch_size, sequence_length] → last_hidden_state (the sequence).
//   transformer/     FluxTransformerOnnxConfig: hidden_states {0: batch_size, 1: packed_height_width} (float
//                    [b, (h/16)·(w/16), 64]: 2×2-packed 16-channel latents), encoder_hidden_states {0: batch_size,
//                    1: sequence_length}, pooled_projections {0: batch_size}, timestep {0: step} (float),
//                    txt_ids {0: sequence_length} and img_ids {0: packed_height_width} (int64 [n, 3]) when exported
//                    with diffusers ≥ 0.31, {0: batch_size, 1: …} (int64 [b, n, 3]) before; guidance {0: batch_size}
//                    only when the config has guidance_embeds (dev) → out_hidden_states {0: batch_size,
//                    1: packed_height_width}. Other exporters declare the ids float: the element type is read.
//   vae_decoder/     VaeDecoderOnnxConfig: latent_sample → sample; Flux's AutoencoderKL has 16 latent channels,
//                    scaling_factor 0.3611, shift_factor 0.1159 (black-forest-labs/FLUX.1-schnell vae/config.json).
// The pipeline (diffusers pipelines/flux/pipeline_flux.py, FluxPipeline): the transformer is called with
// timestep = t / 1000, i.e. σ itself (the model multiplies by 1000 inside), and for dev with guidance =
// guidance_scale (default 3.5) as an input: no classifier-free pass, no negative prompt. Defaults: 28 steps
// (FluxPipeline.__call__), 4 for schnell (its model card); max_sequence_length 256 for schnell and 512 for dev
// (black-forest-labs/flux src/flux/util.py load_t5), or the transformer's fixed sequence axis when it declares one.

using System.Text.Json;
using Trident.Runtime.Onnx;

namespace Trident.Runtime.Pipelines.Export;

public static partial class ExportDirectory
{
    // Published black-forest-labs/FLUX.1-* vae/config.json.
    private const double FluxScalingFactor = 0.3611, FluxShiftFactor = 0.1159;
    private const int FluxLatentChannels = 16;

    private sealed partial class Reader
    {
        private RecognisedExport Flux(string pipelineClass, ComponentSignature? transformer)
        {
            const string textFile = "text_encoder/model.onnx", text2File = "text_encoder_2/model.onnx";
            const string vaeFile = "vae_decoder/model.onnx", transformerFile = "transformer/model.onnx";
            foreach (var f in new[] { "tokenizer/vocab.json", "tokenizer/merges.txt", SchedulerConfig, textFile, text2File, transformerFile, vaeFile })
                if (!File.Exists(Combine(f))) errors.Add(new(f, "missing file"));
            var t5File = new[] { "tokenizer_2/spiece.model", "tokenizer_2/tokenizer.json" }.FirstOrDefault(f => File.Exists(Combine(f)));
            if (t5File is null) errors.Add(new("tokenizer_2/", "missing file: neither spiece.model nor tokenizer.json (T5's tokenizer)"));

            var text = File.Exists(Combine(textFile)) ? Signature("text_encoder", textFile) : null;
            var text2 = File.Exists(Combine(text2File)) ? Signature("text_encoder_2", text2File) : null;
            var vae = File.Exists(Combine(vaeFile)) ? Signature("vae_decoder", vaeFile) : null;
            Check(text, textFile,
                [new("input_ids", Ids, [2], "int32 or int64 [batch, sequence]")],
                [new("last_hidden_state", Floats, [3], "float [batch, sequence, hidden]"), new("pooler_output", Floats, [2], "float [batch, hidden]")],
                optionalInputs: ["attention_mask"]);
            Check(text2, text2File,
                [new("input_ids", Ids, [2], "int32 or int64 [batch, sequence]")],
                [new("last_hidden_state", Floats, [3], "float [batch, sequence, hidden]")],
                optionalInputs: ["attention_mask"]);
            TensorElementType[] idTypes = [TensorElementType.Int64, .. Floats];
            var dev = transformer?.Inputs.Any(i => i.Name == "guidance") == true;
            Check(transformer, transformerFile,
                [
                    new("hidden_states", Floats, [3], "float [batch, packed_height_width, 64]"),
                    new("encoder_hidden_states", Floats, [3], "float [batch, sequence, hidden]"),
                    new("pooled_projections", Floats, [2], "float [batch, width]"),
                    new("timestep", Floats, [0, 1], "float [batch] or float []"),
                    new("img_ids", idTypes, [2, 3], "int64 or float [packed_height_width, 3] or [batch, packed_height_width, 3]"),
                    new("txt_ids", idTypes, [2, 3], "int64 or float [sequence, 3] or [batch, sequence, 3]"),
                    .. dev ? new Expected[] { new("guidance", Floats, [1], "float [batch]") } : [],
                ],
                [new("out_hidden_states", Floats, [3], "float [batch, packed_height_width, 64]")]);
            CheckVae(vae, vaeFile);

            var (sampler, schedulerClass) = FlowFrom(ReadJson(SchedulerConfig, required: false), dev ? 28 : 4);
            var vaeConfig = ReadJson("vae_decoder/config.json", required: false);
            var latents = new LatentSettings(
                (int?)Number(vaeConfig, "latent_channels") ?? (int)Default("latent channels", FluxLatentChannels, vaeConfig, "Flux"),
                vaeConfig is { } vc && vc.TryGetProperty("block_out_channels", out var boc) && boc.ValueKind == JsonValueKind.Array && boc.GetArrayLength() > 0
                    ? 1 << (boc.GetArrayLength() - 1) : SdSpatialScale,
                1,
                Number(vaeConfig, "scaling_factor") ?? Default("vae_decoder/config.json scaling_factor", FluxScalingFactor, vaeConfig, "Flux"),
                Number(vaeConfig, "shift_factor") ?? Default("vae_decoder/config.json shift_factor", FluxShiftFactor, vaeConfig, "Flux"),
                Packing: 2);
            if (FixedDim(transformer, "hidden_states", 2) is { } features && features != latents.Channels * 4)
                errors.Add(new($"{transformerFile}:hidden_states", $"expected {latents.Channels * 4} features per token (2×2 patches of {latents.Channels} latent channels), found {features}"));
            var sequence = FixedDim(transformer, "encoder_hidden_states", 1) ?? (dev ? 512 : 256);
            var tokenizer = ClipTokenizer("tokenizer");
            var tokenizer2 = new T5TokenizerSettings(sequence, t5File ?? "tokenizer_2/tokenizer.json");
            var cell = 2 * latents.SpatialScaleFactor;

            var manifest = new PipelineManifest(
                Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar)),
                dev ? "flux-dev" : "flux-schnell",
                PipelineKind.Image,
                new PipelineStages(
                    new TextEncoderStage(textFile, "input_ids", MaskOf(text), "last_hidden_state", "pooler_output"),
                    new DenoiserStage(DenoiserArchitecture.Transformer, transformerFile, "hidden_states", "timestep", "encoder_hidden_states", "out_hidden_states",
                        TextEmbeds: "pooled_projections", ImgIds: "img_ids", TxtIds: "txt_ids", Guidance: dev ? "guidance" : null),
                    new VaeDecoderStage(vaeFile, "latent_sample", "sample"),
                    new TextEncoderStage(text2File, "input_ids", MaskOf(text2), "last_hidden_state"),
                    TextConditioning.PooledFirstSequenceSecond),
                tokenizer,
                latents,
                sampler,
                dev ? new GuidanceSettings(false, 3.5, Embedded: true) : new GuidanceSettings(false, 1.0),
                // 2×2 patches of 8× latent cells: width and height are multiples of 16 pixels.
                new SizeConstraint(cell, cell, 2048, cell, 2048, 1, 1),
                tokenizer2);
            if (errors.Count == 0) errors.AddRange(manifest.Validate(directory));
            if (errors.Count > 0) throw new ManifestException(directory, errors);
            return new RecognisedExport(directory, ExportFamily.Flux, pipelineClass, schedulerClass, manifest, components, notes);
        }

        // FlowMatchEulerDiscreteScheduler's config: shift, and use_dynamic_shifting with base_shift, max_shift,
        // base_image_seq_len, max_image_seq_len (diffusers' defaults 0.5, 1.15, 256, 4096 when absent). The
        // transformer takes σ itself, so the timestep scale is 1 (FluxPipeline passes timestep / 1000).
        private (FlowEulerSettings, string) FlowFrom(JsonElement? config, int defaultSteps)
        {
            if (config is not { } c)
                return (new FlowEulerSettings(1, defaultSteps, 1.0), "(none)");
            var cls = c.TryGetProperty("_class_name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "(no _class_name)";
            if (cls != "FlowMatchEulerDiscreteScheduler")
                notes.Add($"{SchedulerConfig}: {cls} runs as flow-matching Euler (the one scheduler Trident has for flow-matching models)");
            var shift = Number(c, "shift") ?? 1.0;
            if (!(shift > 0)) errors.Add(new($"{SchedulerConfig}:shift", $"must be positive, found {shift}"));
            DynamicShift? dynamic = null;
            if (c.TryGetProperty("use_dynamic_shifting", out var u) && u.ValueKind == JsonValueKind.True)
            {
                var d = DynamicShift.Flux;
                dynamic = new DynamicShift(
                    Number(c, "base_shift") ?? d.BaseShift, Number(c, "max_shift") ?? d.MaxShift,
                    (int?)Number(c, "base_image_seq_len") ?? d.BaseImageSeqLen, (int?)Number(c, "max_image_seq_len") ?? d.MaxImageSeqLen);
                if (dynamic.MaxImageSeqLen == dynamic.BaseImageSeqLen)
                    errors.Add(new($"{SchedulerConfig}:max_image_seq_len", $"must differ from base_image_seq_len ({dynamic.BaseImageSeqLen})"));
            }
            return (new FlowEulerSettings(1, defaultSteps, shift > 0 ? shift : 1.0, dynamic), cls);
        }
    }
}
