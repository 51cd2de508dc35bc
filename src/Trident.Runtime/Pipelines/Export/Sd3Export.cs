// Stable Diffusion 3 export directories (StableDiffusion3Pipeline, ORTStableDiffusion3Pipeline).
//
// Signatures, from Optimum's export configs (optimum/exporters/onnx/model_configs.py):
//   text_encoder, text_encoder_2: CLIPTextWithProjectionOnnxConfig exported with output_hidden_states (as for
//     SDXL's second encoder): input_ids int64 {0: "batch_size", 1: "sequence_length"} → text_embeds,
//     last_hidden_state, hidden_states.0 … N.
//   text_encoder_3: T5EncoderOnnxConfig: input_ids {0: "batch_size", 1: "sequence_length"} → last_hidden_state
//     {0: "batch_size", 1: "sequence_length"}.
//   transformer: SD3TransformerOnnxConfig: hidden_states {0: "batch_size", 2: "height", 3: "width"},
//     encoder_hidden_states {0: "batch_size", 1: "sequence_length"}, pooled_projections {0: "batch_size"},
//     timestep {0: "step"} (DummyTransformerTimestepInputGenerator: float [batch]) → out_hidden_states
//     {0: "batch_size", 2: "height", 3: "width"} (torch_to_onnx_output_map: sample → out_hidden_states). Other
//     exporters of the same module name the output out_sample (timestep {0: "batch_size"}) or keep diffusers'
//     `sample`; all three are accepted.
//   vae_decoder: VaeDecoderOnnxConfig latent_sample {0: "batch_size", 2: "latent_height", 3: "latent_width"} → sample.
// Conditioning, as diffusers' StableDiffusion3Pipeline.encode_prompt does it: the CLIP-L and CLIP-G penultimate
// hidden states (hidden_states[-2]) concatenated on the width (768 + 1280 = 2048), zero-padded to T5's width
// (4096) and joined before T5's last_hidden_state on the token axis (77 + 256 tokens); pooled_projections = CLIP-L
// text_embeds ‖ CLIP-G text_embeds (768 + 1280 = 2048). The negative prompt is encoded the same way ("" when
// absent; SD3 has no force_zeros_for_empty_prompt). T5 reads max_sequence_length = 256 tokens (the pipeline's
// default, not the tokenizer's model_max_length of 512).
// Published stabilityai/stable-diffusion-3-medium-diffusers configs: scheduler FlowMatchEulerDiscreteScheduler
// with shift 3.0 and num_train_timesteps 1000; vae scaling_factor 1.5305, shift_factor 0.0609, latent_channels
// 16; transformer patch_size 2 (sizes are multiples of 8 × 2 = 16 pixels); __call__ defaults 28 steps, guidance
// scale 7.0, 1024².

using System.Globalization;
using System.Text;
using System.Text.Json;
using Trident.Runtime.Onnx;

namespace Trident.Runtime.Pipelines.Export;

public static partial class ExportDirectory
{
    private const double Sd3ScalingFactor = 1.5305, Sd3ShiftFactor = 0.0609;
    private const int Sd3LatentChannels = 16, Sd3T5MaxLength = 256, Sd3DefaultSteps = 28;
    private const double Sd3Shift = 3.0, Sd3GuidanceScale = 7.0;

    /// <summary>The prediction output names SD3 transformer exports use, in the order they are looked for.</summary>
    private static readonly string[] Sd3PredictionNames = ["out_hidden_states", "out_sample", "sample"];

    internal static void DescribeSd3Conditioning(StringBuilder s, PipelineManifest m)
    {
        var inv = CultureInfo.InvariantCulture;
        var (te, te2, te3) = (m.Stages.TextEncoder, m.Stages.TextEncoder2!, m.Stages.TextEncoder3!);
        s.AppendLine(inv, $"  conditioning  encoder_hidden_states = ({te.LastHiddenState} of {te.File} ‖ {te2.LastHiddenState} of {te2.File}, along the width, zero-padded to T5's width) followed on the token axis by {te3.LastHiddenState} of {te3.File}");
        s.AppendLine(inv, $"                {m.Stages.Denoiser.TextEmbeds} = {te.Pooled} of {te.File} ‖ {te2.Pooled} of {te2.File}");
        s.AppendLine(inv, $"                empty negative prompt: the empty string's embeddings");
    }

    private sealed partial class Reader
    {
        private RecognisedExport StableDiffusion3(string pipelineClass, ComponentSignature? transformer)
        {
            const string textFile = "text_encoder/model.onnx", text2File = "text_encoder_2/model.onnx", text3File = "text_encoder_3/model.onnx";
            const string vaeFile = "vae_decoder/model.onnx", transformerFile = "transformer/model.onnx";
            foreach (var f in new[] { "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt", SchedulerConfig, textFile, text2File, text3File, transformerFile, vaeFile })
                if (!File.Exists(Combine(f))) errors.Add(new(f, "missing file"));
            // Newer exports ship tokenizer.json (T5TokenizerFast) beside or instead of spiece.model.
            var t5File = new[] { "tokenizer_3/tokenizer.json", "tokenizer_3/spiece.model" }.FirstOrDefault(f => File.Exists(Combine(f)));
            if (t5File is null) errors.Add(new("tokenizer_3/", "missing file: neither tokenizer_3/tokenizer.json nor tokenizer_3/spiece.model exists"));

            var text = File.Exists(Combine(textFile)) ? Signature("text_encoder", textFile) : null;
            var text2 = File.Exists(Combine(text2File)) ? Signature("text_encoder_2", text2File) : null;
            var text3 = File.Exists(Combine(text3File)) ? Signature("text_encoder_3", text3File) : null;
            var vae = File.Exists(Combine(vaeFile)) ? Signature("vae_decoder", vaeFile) : null;
            var penultimate = CheckClipWithHiddenStates(text, textFile, pooled: "text_embeds");
            var penultimate2 = CheckClipWithHiddenStates(text2, text2File, pooled: "text_embeds");
            Check(text3, text3File,
                [new("input_ids", Ids, [2], "int32 or int64 [batch, sequence]")],
                [new("last_hidden_state", Floats, [3], "float [batch, sequence, hidden]")],
                optionalInputs: ["attention_mask"]);
            var prediction = transformer?.Outputs.Select(o => o.Name).FirstOrDefault(n => Sd3PredictionNames.Contains(n)) ?? Sd3PredictionNames[0];
            Check(transformer, transformerFile,
                [
                    new("hidden_states", Floats, [4], "float [batch, channels, height, width]"),
                    new("encoder_hidden_states", Floats, [3], "float [batch, sequence, joint_attention_dim]"),
                    new("pooled_projections", Floats, [2], "float [batch, pooled_projection_dim]"),
                    new("timestep", [TensorElementType.Int64, .. Floats], [0, 1], "float [batch] (or int64 [batch], float [])"),
                ],
                [new(prediction, Floats, [4], $"float [batch, channels, height, width], named {string.Join(" or ", Sd3PredictionNames)}")]);
            CheckVae(vae, vaeFile);
            CheckSd3Widths(text, text2, text3, transformer, textFile, text2File, text3File, transformerFile);

            var (sampler, schedulerClass) = FlowMatchFrom(ReadJson(SchedulerConfig, required: false));
            var latents = LatentsOf(transformer, Sd3ScalingFactor, "SD3", "transformer", "hidden_states", Sd3ShiftFactor, Sd3LatentChannels);
            var transformerConfig = ReadJson("transformer/config.json", required: false);
            var patch = (int?)Number(transformerConfig, "patch_size") is { } p and >= 1 and <= 16 ? p : 2;
            var multiple = latents.SpatialScaleFactor * patch;

            var name = Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
            var manifest = new PipelineManifest(
                name,
                "stable-diffusion-3",
                PipelineKind.Image,
                new PipelineStages(
                    new TextEncoderStage(textFile, "input_ids", MaskOf(text), penultimate ?? "hidden_states", "text_embeds"),
                    new DenoiserStage(DenoiserArchitecture.Transformer, transformerFile, "hidden_states", "timestep", "encoder_hidden_states", prediction, "pooled_projections"),
                    new VaeDecoderStage(vaeFile, "latent_sample", "sample"),
                    new TextEncoderStage(text2File, "input_ids", MaskOf(text2), penultimate2 ?? "hidden_states", "text_embeds"),
                    TextEncoder3: new TextEncoderStage(text3File, "input_ids", MaskOf(text3), "last_hidden_state")),
                ClipTokenizer("tokenizer"),
                latents,
                sampler,
                new GuidanceSettings(true, Sd3GuidanceScale),
                new SizeConstraint(multiple, multiple, 2048, multiple, 2048, 1, 1),
                ClipTokenizer("tokenizer_2"),
                ZerosForEmptyNegative: false,
                Tokenizer3: new T5TokenizerSettings(Sd3T5MaxLength, t5File ?? "tokenizer_3/spiece.model"));
            if (errors.Count == 0) errors.AddRange(manifest.Validate(directory));
            if (errors.Count > 0) throw new ManifestException(directory, errors);
            return new RecognisedExport(directory, ExportFamily.StableDiffusion3, pipelineClass, schedulerClass, manifest, components, notes);
        }

        // The widths the conditioning joins must agree where the models fix them: the transformer's
        // encoder_hidden_states width is T5's (CLIP's joined width must not exceed it), its pooled_projections width is
        // the two text_embeds widths together.
        private void CheckSd3Widths(ComponentSignature? text, ComponentSignature? text2, ComponentSignature? text3, ComponentSignature? transformer,
            string textFile, string text2File, string text3File, string transformerFile)
        {
            static long? Last(ComponentSignature? c, string name, bool output = true) =>
                (output ? c?.Outputs : c?.Inputs)?.FirstOrDefault(o => o.Name == name) is { Shape.Count: > 0 } t && t.Shape[^1] > 0 ? t.Shape[^1] : null;
            var pooled = (Last(text, "text_embeds"), Last(text2, "text_embeds"));
            if (pooled is ({ } a, { } b) && Last(transformer, "pooled_projections", output: false) is { } pw && pw != a + b)
                errors.Add(new($"{transformerFile}:pooled_projections", $"width {pw} is not text_embeds of {textFile} ({a}) + text_embeds of {text2File} ({b}) = {a + b}"));
            var t5 = Last(text3, "last_hidden_state");
            if (t5 is { } w && Last(transformer, "encoder_hidden_states", output: false) is { } ew && ew != w)
                errors.Add(new($"{transformerFile}:encoder_hidden_states", $"width {ew} is not the width of {text3File}'s last_hidden_state ({w})"));
            if (t5 is { } w5 && (Last(text, "last_hidden_state"), Last(text2, "last_hidden_state")) is ({ } c1, { } c2) && c1 + c2 > w5)
                errors.Add(new(text3File, $"last_hidden_state width {w5} is narrower than the joined CLIP states ({c1} + {c2}): SD3 pads CLIP to T5's width"));
        }

        // FlowMatchEulerDiscreteScheduler's config: shift (3.0 for SD3) and num_train_timesteps; any other scheduler
        // class is an error (SD3 is trained for flow matching only).
        private (FlowEulerSettings, string) FlowMatchFrom(JsonElement? config)
        {
            if (config is not { } c) return (new FlowEulerSettings(1000, Sd3DefaultSteps, Sd3Shift), "(none)");
            var cls = c.TryGetProperty("_class_name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "(no _class_name)";
            if (cls != "FlowMatchEulerDiscreteScheduler")
                errors.Add(new(SchedulerConfig, $"_class_name '{cls}' is not FlowMatchEulerDiscreteScheduler: SD3 is served with flow-matching Euler only"));
            if (c.TryGetProperty("use_dynamic_shifting", out var dyn) && dyn.ValueKind == JsonValueKind.True)
                notes.Add($"{SchedulerConfig}: use_dynamic_shifting is true; SD3 runs with the static shift {Number(c, "shift") ?? Sd3Shift}");
            var shift = Number(c, "shift") ?? Sd3Shift;
            if (!(shift > 0)) errors.Add(new(SchedulerConfig, $"shift {shift} must be a positive number"));
            var trainSteps = (int?)Number(c, "num_train_timesteps") ?? 1000;
            return (new FlowEulerSettings(trainSteps, Sd3DefaultSteps, shift > 0 ? shift : Sd3Shift), cls);
        }
    }
}
