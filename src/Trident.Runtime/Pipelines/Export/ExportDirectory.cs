// Recognising a diffusers/Optimum ONNX export directory as it is, without a trident-pipeline.json.
//
// Design note. An export says what it is in two places, and both are read:
//   1. model_index.json: the pipeline class (`_class_name`) and its components (`"unet": ["diffusers",
//      "OnnxRuntimeModel"]`, `[null, null]` for an absent one), plus per-component config files
//      (scheduler/scheduler_config.json, vae_decoder/config.json, unet/config.json, tokenizer/*.json);
//   2. the ONNX models' own signatures, read from ONNX Runtime's metadata (InputMetadata / OutputMetadata:
//      element type, rank, fixed sizes and dynamic axis names) — never assumed, because they changed with the
//      exporter's era:
//        diffusers' scripts/convert_stable_diffusion_checkpoint_to_onnx.py (2022; the `onnx` branches published
//          beside SD 1.x/2.x weights): input_ids int32 [batch, sequence]; UNet timestep float [batch]; the UNet's
//          weights in an external weights.pb;
//        Optimum 1.x (optimum/exporters/onnx/model_configs.py, UNetOnnxConfig with `"timestep": {0: "steps"}`):
//          input_ids int64 [batch_size, sequence_length]; timestep int64 [steps]; external model.onnx_data;
//        Optimum, current (`"timestep": {}`, "a scalar with no dimension"): timestep float [].
// The family comes from the class name and is confirmed by the denoiser's inputs (a UNet with text_embeds and
// time_ids is SDXL; a transformer with img_ids/txt_ids is Flux, with pooled_projections only SD3); a
// disagreement is an error. Every problem — a missing file, an unknown component, an input of the wrong type
// or rank, a family this version does not serve — is collected and reported at once, as one
// ManifestException whose paths are files relative to the directory.
//
// The result is an ordinary PipelineManifest built in memory, so everything downstream (executors, profiler,
// serving) runs an export exactly as it runs a hand-written manifest; a trident-pipeline.json in the directory
// still wins (PipelineDirectory.LoadManifest).
//
// Families served: SD 1.x/2.x UNet pipelines (StableDiffusionPipeline, OnnxStableDiffusionPipeline,
// ORTStableDiffusionPipeline) and SDXL (StableDiffusionXLPipeline, ORTStableDiffusionXLPipeline: two CLIP
// encoders, text_embeds and time_ids; see StableDiffusionXL below). SD3 and Flux are recognised, and reported as
// not served by this version.
// The default scheduler follows scheduler_config.json's _class_name where Trident has it (DDIMScheduler → ddim,
// EulerDiscreteScheduler → euler, EulerAncestralDiscreteScheduler → euler-ancestral, DPMSolverMultistepScheduler
// with use_karras_sigmas → dpm++-2m-karras); any other class runs as DDIM over the same β schedule, noted.

using System.Globalization;
using System.Text;
using System.Text.Json;
using Trident.Runtime.Onnx;

namespace Trident.Runtime.Pipelines.Export;

/// <summary>A pipeline family of the diffusers/Optimum exports.</summary>
public enum ExportFamily
{
    /// <summary>Stable Diffusion 1.x / 2.x: one CLIP text encoder, a UNet with sample/timestep/encoder_hidden_states.</summary>
    StableDiffusion,

    /// <summary>Stable Diffusion XL: two CLIP encoders, a UNet that also takes text_embeds and time_ids.</summary>
    StableDiffusionXL,

    /// <summary>Stable Diffusion 3: CLIP-L, CLIP-G and T5, a transformer with pooled_projections.</summary>
    StableDiffusion3,

    /// <summary>Flux.1: CLIP and T5, a transformer over packed latents with img_ids/txt_ids.</summary>
    Flux,
}

/// <summary>One ONNX component of an export as its model declares it.</summary>
/// <param name="Component">Folder / model_index key, e.g. <c>unet</c>.</param>
/// <param name="File">Model file relative to the directory.</param>
/// <param name="Inputs">Declared inputs (element type, shape with -1 for dynamic, axis names).</param>
/// <param name="Outputs">Declared outputs.</param>
/// <param name="ExternalData">External weight files beside the model (model.onnx_data, weights.pb, …).</param>
public sealed record ComponentSignature(
    string Component, string File, IReadOnlyList<TensorInfo> Inputs, IReadOnlyList<TensorInfo> Outputs, IReadOnlyList<string> ExternalData);

/// <summary>What <see cref="ExportDirectory.Recognise"/> found: the family, the components as declared, the
/// manifest Trident runs, and notes on every default or stand-in it chose.</summary>
public sealed record RecognisedExport(
    string Directory,
    ExportFamily Family,
    string PipelineClass,
    string SchedulerClass,
    PipelineManifest Manifest,
    IReadOnlyList<ComponentSignature> Components,
    IReadOnlyList<string> Notes)
{
    /// <summary>The schedulers a request may name for this export (the <c>scheduler</c> field).</summary>
    public IReadOnlyList<string> Schedulers => Samplers.SamplerFactory.Names(Manifest.Sampler);

    /// <summary>A human-readable account: family, components and signatures, and how the pipeline will run.</summary>
    public string Describe()
    {
        var m = Manifest;
        var s = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        s.AppendLine(inv, $"{Directory}");
        s.AppendLine(inv, $"  family        {ExportDirectory.FamilyName(Family)} (model_index.json: {PipelineClass})");
        s.AppendLine(inv, $"  pipeline name {m.Name}; profile model '{m.Model}'");
        foreach (var c in Components)
        {
            s.AppendLine(inv, $"  {c.Component,-13} {c.File}{(c.ExternalData.Count > 0 ? $" (+ external weights {string.Join(", ", c.ExternalData)})" : "")}");
            foreach (var i in c.Inputs) s.AppendLine(inv, $"      in  {i.Name}: {i.Describe()}");
            foreach (var o in c.Outputs) s.AppendLine(inv, $"      out {o.Name}: {o.Describe()}");
        }
        if (m.Tokenizer is ClipBpeTokenizerSettings t)
            s.AppendLine(inv, $"  tokenizer     CLIP BPE {t.Vocab} + {t.Merges}, {t.MaxLength} tokens, pad '{t.PadToken}'");
        if (m.Tokenizer2 is ClipBpeTokenizerSettings t2)
            s.AppendLine(inv, $"  tokenizer_2   CLIP BPE {t2.Vocab} + {t2.Merges}, {t2.MaxLength} tokens, pad '{t2.PadToken}'");
        if (m.Tokenizer2 is T5TokenizerSettings t5)
            s.AppendLine(inv, $"  tokenizer_2   T5 SentencePiece {t5.File}, {t5.MaxLength} tokens (max_sequence_length)");
        if (m.Tokenizer3 is T5TokenizerSettings t3)
            s.AppendLine(inv, $"  tokenizer_3   T5 SentencePiece Unigram {t3.File}, {t3.MaxLength} tokens (max_sequence_length), </s> then <pad>");
        if (m.Stages.TextEncoder2 is { } flux && m.Stages.Conditioning == TextConditioning.PooledFirstSequenceSecond)
        {
            var d = m.Stages.Denoiser;
            s.AppendLine(inv, $"  conditioning  {d.EncoderHiddenStates} = {flux.LastHiddenState} of {flux.File}; {d.TextEmbeds} = {m.Stages.TextEncoder.Pooled} of {m.Stages.TextEncoder.File}");
            s.AppendLine(inv, $"                latents packed 2×2 into tokens ({m.Latents.Channels * m.Latents.Packing * m.Latents.Packing} features); {d.ImgIds} = (0, row, column) per token, {d.TxtIds} = zeros");
            var guidance = d.Guidance is { } g
                ? $"{g} = the request's guidance scale (embedded guidance, dev; no classifier-free pass)"
                : "no guidance input (schnell): no guidance scale, no negative prompt";
            s.AppendLine(inv, $"                {guidance}");
        }
        else if (m.Stages.TextEncoder3 is not null) ExportDirectory.DescribeSd3Conditioning(s, m);
        else if (m.Stages.TextEncoder2 is { } te2)
        {
            s.AppendLine(inv, $"  conditioning  encoder_hidden_states = {m.Stages.TextEncoder.LastHiddenState} of {m.Stages.TextEncoder.File} ‖ {te2.LastHiddenState} of {te2.File} (concatenated along the width)");
            if (te2.Pooled is { } pooled) s.AppendLine(inv, $"                {m.Stages.Denoiser.TextEmbeds} = {pooled} of {te2.File}");
            if (m.Stages.Denoiser.TimeIds is { } ids) s.AppendLine(inv, $"                {ids} = (height, width, 0, 0, height, width) per request");
            s.AppendLine(inv, $"                empty negative prompt: {(m.ZerosForEmptyNegative ? "zeros (force_zeros_for_empty_prompt)" : "the empty string's embeddings")}");
        }
        var sampler = m.Sampler switch
        {
            DdimSettings d => $"{d.DefaultScheduler} ({(d.PredictionType == PredictionType.VPrediction ? "v_prediction" : "epsilon")}, {d.BetaSchedule} β {d.BetaStart}–{d.BetaEnd}, steps_offset {d.StepsOffset})",
            FlowEulerSettings { Dynamic: { } d } f => $"flow-euler (resolution-dependent shift: μ from {d.BaseShift} at {d.BaseImageSeqLen} to {d.MaxShift} at {d.MaxImageSeqLen} image tokens; timestep = σ × {f.NumTrainTimesteps})",
            FlowEulerSettings f => $"flow-euler (shift {f.Shift}; timestep = σ × {f.NumTrainTimesteps})",
            _ => m.Sampler.GetType().Name,
        };
        s.AppendLine(inv, $"  scheduler     {SchedulerClass} -> {sampler}, {m.Sampler.DefaultSteps} steps by default; a request may name: {string.Join(", ", Schedulers)}");
        s.AppendLine(inv, $"  latents       {m.Latents.Channels} channels, /{m.Latents.SpatialScaleFactor}, scaling_factor {m.Latents.ScalingFactor}, shift_factor {m.Latents.ShiftFactor}");
        s.AppendLine(inv, $"  guidance      classifier-free {(m.Guidance.ClassifierFree ? "yes" : "no")}{(m.Guidance.Embedded ? ", embedded (a model input)" : "")}, default scale {m.Guidance.DefaultScale}");
        s.AppendLine(inv, $"  sizes         {m.Size.MinWidth}–{m.Size.MaxWidth} × {m.Size.MinHeight}–{m.Size.MaxHeight}, multiples of {m.Size.MultipleOf}");
        foreach (var n in Notes) s.AppendLine(inv, $"  note: {n}");
        return s.ToString();
    }
}

/// <summary>Reads a diffusers/Optimum ONNX export directory.</summary>
public static partial class ExportDirectory
{
    /// <summary>The file that marks an export directory.</summary>
    public const string ModelIndex = "model_index.json";

    private const string SchedulerConfig = "scheduler/scheduler_config.json";

    // Components of model_index.json Trident knows. Those it does not run (vae_encoder, safety_checker, …)
    // are accepted and ignored; any other key naming a component is an error.
    private static readonly HashSet<string> KnownComponents =
    [
        "text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2", "tokenizer_3",
        "unet", "transformer", "vae", "vae_decoder", "vae_encoder", "scheduler",
        "safety_checker", "feature_extractor", "image_encoder",
    ];

    // Per-family defaults for exports without component config files (the oldest have none), from the
    // published diffusers configs: SD 1.x/2.x vae/config.json scaling_factor 0.18215, latent_channels 4,
    // four VAE blocks (×8); tokenizer_config.json model_max_length 77.
    private const double SdScalingFactor = 0.18215;
    private const double SdxlScalingFactor = 0.13025;
    private const int SdLatentChannels = 4;
    private const int SdSpatialScale = 8;
    private const int ClipMaxLength = 77;

    /// <summary>Whether <paramref name="directory"/> looks like an export (has model_index.json).</summary>
    public static bool IsExport(string directory) => File.Exists(Path.Combine(directory, ModelIndex));

    /// <summary>The name of a family as the CLI and errors print it.</summary>
    public static string FamilyName(ExportFamily family) => family switch
    {
        ExportFamily.StableDiffusion => "stable-diffusion (SD 1.x/2.x)",
        ExportFamily.StableDiffusionXL => "sdxl",
        ExportFamily.StableDiffusion3 => "sd3",
        ExportFamily.Flux => "flux",
        _ => family.ToString(),
    };

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, RecognisedExport> Cache = new();

    /// <summary>
    /// Recognises the export in <paramref name="directory"/>: reads model_index.json, the component configs and
    /// every ONNX model's declared signature, and builds the manifest Trident runs it with. The result is cached
    /// per directory and file stamps (a changed file is read again).
    /// </summary>
    /// <exception cref="ManifestException">listing every missing file, unknown component and mismatched input.</exception>
    public static RecognisedExport Recognise(string directory)
    {
        var full = Path.GetFullPath(directory);
        var key = full + "|" + Stamp(full);
        if (Cache.TryGetValue(key, out var cached)) return cached;
        var result = new Reader(full).Read();
        Cache[key] = result;
        return result;
    }

    /// <summary>Length and write time of every file under <paramref name="directory"/> (what a cache key of its
    /// content needs without reading gigabytes of weights).</summary>
    public static string Stamp(string directory)
    {
        var s = new StringBuilder();
        foreach (var f in System.IO.Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(f);
            s.Append(CultureInfo.InvariantCulture, $"{Path.GetRelativePath(directory, f)}:{info.Length}:{info.LastWriteTimeUtc.Ticks};");
        }
        return s.ToString();
    }

    private static string Describe(ExportFamily family) => FamilyName(family);

    /// <summary>One expected input or output: its name, the element types and ranks an export may declare.</summary>
    private sealed record Expected(string Name, TensorElementType[] Types, int[] Ranks, string Description);

    private static readonly TensorElementType[] Floats = [TensorElementType.Float, TensorElementType.Float16];
    private static readonly TensorElementType[] Ids = [TensorElementType.Int32, TensorElementType.Int64];

    private sealed partial class Reader(string directory)
    {
        private readonly List<ManifestError> errors = [];
        private readonly List<string> notes = [];
        private readonly List<ComponentSignature> components = [];

        public RecognisedExport Read()
        {
            var index = ReadJson(ModelIndex, required: true);
            var pipelineClass = index?.TryGetProperty("_class_name", out var cls) == true && cls.ValueKind == JsonValueKind.String
                ? cls.GetString()! : "";
            if (index is { } ix) CheckComponents(ix);
            var fromClass = FamilyOfClass(pipelineClass);
            if (index is not null && fromClass is null)
                errors.Add(new(ModelIndex, $"_class_name '{pipelineClass}' is not a pipeline Trident knows (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusion3Pipeline, FluxPipeline and their Onnx/ORT forms)"));

            var unetFile = "unet/model.onnx";
            var transformerFile = "transformer/model.onnx";
            var unet = File.Exists(Combine(unetFile)) ? Signature("unet", unetFile) : null;
            var transformer = File.Exists(Combine(transformerFile)) ? Signature("transformer", transformerFile) : null;
            var fromSignature = FamilyOfSignature(unet, transformer);
            if (fromClass is { } a && fromSignature is { } b && a != b)
                errors.Add(new(unet is not null ? unetFile : transformerFile,
                    $"model_index.json says {Describe(a)} ({pipelineClass}) but the denoiser's inputs ({string.Join(", ", (unet ?? transformer)!.Inputs.Select(i => i.Name))}) are those of {Describe(b)}"));
            var family = fromClass ?? fromSignature;
            if (family is null)
            {
                if (unet is null && transformer is null) errors.Add(new("unet/", "missing: neither unet/model.onnx nor transformer/model.onnx exists"));
                throw new ManifestException(directory, errors);
            }
            return family switch
            {
                ExportFamily.Flux => Flux(pipelineClass, transformer),
                ExportFamily.StableDiffusionXL => StableDiffusionXL(pipelineClass, unet, index),
                ExportFamily.StableDiffusion3 => StableDiffusion3(pipelineClass, transformer),
                _ => StableDiffusion(pipelineClass, unet),
            };
        }

        // ---- SDXL -------------------------------------------------------------------------------------------
        //
        // Optimum's SDXL export (optimum/exporters/onnx/model_configs.py, UNetOnnxConfig with
        // addition_embed_type "text_time": text_embeds {0: "batch_size"}, time_ids {0: "batch_size"}; the text
        // encoders exported with output_hidden_states, giving hidden_states.0 … hidden_states.N beside
        // last_hidden_state, and text_encoder_2 as CLIPTextWithProjectionOnnxConfig with text_embeds first).
        // diffusers' StableDiffusionXLPipeline conditions on hidden_states[-2] of each encoder (the penultimate
        // layer, hidden_states.{N−1}), concatenated along the width, and on text_encoder_2's text_embeds.

        private RecognisedExport StableDiffusionXL(string pipelineClass, ComponentSignature? unet, JsonElement? index)
        {
            const string textFile = "text_encoder/model.onnx", text2File = "text_encoder_2/model.onnx";
            const string vaeFile = "vae_decoder/model.onnx", unetFile = "unet/model.onnx";
            foreach (var f in new[] { "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt", SchedulerConfig, textFile, text2File, unetFile, vaeFile })
                if (!File.Exists(Combine(f))) errors.Add(new(f, "missing file"));
            var text = File.Exists(Combine(textFile)) ? Signature("text_encoder", textFile) : null;
            var text2 = File.Exists(Combine(text2File)) ? Signature("text_encoder_2", text2File) : null;
            var vae = File.Exists(Combine(vaeFile)) ? Signature("vae_decoder", vaeFile) : null;
            var penultimate = CheckClipWithHiddenStates(text, textFile, pooled: null);
            var penultimate2 = CheckClipWithHiddenStates(text2, text2File, pooled: "text_embeds");
            CheckUnet(unet, unetFile,
                new("text_embeds", Floats, [2], "float [batch, width]"),
                new("time_ids", Floats, [2], "float [batch, 6]"));
            CheckVae(vae, vaeFile);
            if (FixedDim(unet, "time_ids", 1) is { } n && n != 6)
                errors.Add(new($"{unetFile}:time_ids", $"expected float [batch, 6] (original size, crop offsets, target size), found {n} columns"));

            var (sampler, schedulerClass) = DdimFrom(ReadJson(SchedulerConfig, required: false));
            // Published stabilityai/stable-diffusion-xl-base-1.0 vae/config.json: scaling_factor 0.13025.
            var latents = LatentsOf(unet, SdxlScalingFactor, "SDXL");
            var tokenizer = ClipTokenizer("tokenizer");
            var tokenizer2 = ClipTokenizer("tokenizer_2");
            // diffusers' StableDiffusionXLPipeline registers force_zeros_for_empty_prompt (true unless model_index.json says otherwise).
            var zeros = index is { ValueKind: JsonValueKind.Object } ix && ix.TryGetProperty("force_zeros_for_empty_prompt", out var fz)
                && fz.ValueKind is JsonValueKind.True or JsonValueKind.False ? fz.GetBoolean() : true;

            var name = Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
            var manifest = new PipelineManifest(
                name,
                "stable-diffusion-xl",
                PipelineKind.Image,
                new PipelineStages(
                    new TextEncoderStage(textFile, "input_ids", MaskOf(text), penultimate ?? "hidden_states"),
                    new DenoiserStage(DenoiserArchitecture.Unet, unetFile, "sample", "timestep", "encoder_hidden_states", "out_sample", "text_embeds", "time_ids"),
                    new VaeDecoderStage(vaeFile, "latent_sample", "sample"),
                    new TextEncoderStage(text2File, "input_ids", MaskOf(text2), penultimate2 ?? "hidden_states", "text_embeds")),
                tokenizer,
                latents,
                sampler,
                // diffusers' StableDiffusionXLPipeline.__call__ default guidance_scale 5.0.
                new GuidanceSettings(true, 5.0),
                new SizeConstraint(8 * latents.SpatialScaleFactor, 8 * latents.SpatialScaleFactor, 2048, 8 * latents.SpatialScaleFactor, 2048, 1, 1),
                tokenizer2,
                zeros);
            if (errors.Count == 0) errors.AddRange(manifest.Validate(directory));
            if (errors.Count > 0) throw new ManifestException(directory, errors);
            return new RecognisedExport(directory, ExportFamily.StableDiffusionXL, pipelineClass, schedulerClass, manifest, components, notes);
        }

        // A CLIP text encoder exported with its hidden states: input_ids, last_hidden_state, hidden_states.0 … N
        // (and `pooled` when named). Returns the penultimate state's name, hidden_states.{N−1}.
        private string? CheckClipWithHiddenStates(ComponentSignature? c, string file, string? pooled)
        {
            Expected[] outputs = pooled is null
                ? [new("last_hidden_state", Floats, [3], "float [batch, sequence, hidden]")]
                : [new(pooled, Floats, [2], "float [batch, projection]"), new("last_hidden_state", Floats, [3], "float [batch, sequence, hidden]")];
            Check(c, file, [new("input_ids", Ids, [2], "int32 or int64 [batch, sequence]")], outputs, optionalInputs: ["attention_mask"]);
            if (c is null) return null;
            var layers = c.Outputs
                .Select(o => o.Name.StartsWith("hidden_states.", StringComparison.Ordinal) && int.TryParse(o.Name["hidden_states.".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var k) ? k : -1)
                .Where(k => k >= 0).ToArray();
            if (layers.Length < 2)
            {
                errors.Add(new($"{file}:hidden_states", "missing outputs hidden_states.0 … hidden_states.N: SDXL conditions on the penultimate layer (export with output_hidden_states, as Optimum does for SDXL)"));
                return null;
            }
            var name = $"hidden_states.{layers.Max() - 1}";
            var state = c.Outputs.FirstOrDefault(o => o.Name == name);
            if (state is null || !Floats.Contains(state.ElementType) || state.Shape.Count != 3)
                errors.Add(new($"{file}:{name}", $"expected float [batch, sequence, hidden], found {(state is null ? "nothing" : state.Describe())}"));
            return name;
        }

        // ---- SD 1.x / 2.x -------------------------------------------------------------------------------------

        private RecognisedExport StableDiffusion(string pipelineClass, ComponentSignature? unet)
        {
            const string textFile = "text_encoder/model.onnx", vaeFile = "vae_decoder/model.onnx", unetFile = "unet/model.onnx";
            foreach (var f in new[] { "tokenizer/vocab.json", "tokenizer/merges.txt", SchedulerConfig, textFile, unetFile, vaeFile })
                if (!File.Exists(Combine(f))) errors.Add(new(f, "missing file"));

            var text = File.Exists(Combine(textFile)) ? Signature("text_encoder", textFile) : null;
            var vae = File.Exists(Combine(vaeFile)) ? Signature("vae_decoder", vaeFile) : null;
            Check(text, textFile,
                [new("input_ids", Ids, [2], "int32 or int64 [batch, sequence]")],
                [new("last_hidden_state", Floats, [3], "float [batch, sequence, hidden]")],
                optionalInputs: ["attention_mask"]);
            CheckUnet(unet, unetFile);
            CheckVae(vae, vaeFile);

            // Configs: scheduler (required), VAE and UNet (optional, per-family defaults), tokenizer (optional).
            var scheduler = ReadJson(SchedulerConfig, required: false);
            var (sampler, schedulerClass) = DdimFrom(scheduler);
            var latents = LatentsOf(unet, SdScalingFactor, "SD 1.x/2.x");
            var spatial = latents.SpatialScaleFactor;
            var tokenizer = ClipTokenizer("tokenizer");

            var name = Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
            var manifest = new PipelineManifest(
                name,
                "stable-diffusion",
                PipelineKind.Image,
                new PipelineStages(
                    new TextEncoderStage(textFile, "input_ids", MaskOf(text), "last_hidden_state"),
                    new DenoiserStage(DenoiserArchitecture.Unet, unetFile, "sample", "timestep", "encoder_hidden_states", "out_sample"),
                    new VaeDecoderStage(vaeFile, "latent_sample", "sample")),
                tokenizer,
                latents,
                sampler,
                new GuidanceSettings(true, 7.5),
                // The UNet halves the latent three times; a traced ONNX UNet has no branch for odd sizes (diffusers'
                // forward_upsample_size is fixed at export), so sizes are multiples of 8 latent cells.
                new SizeConstraint(8 * spatial, 8 * spatial, 2048, 8 * spatial, 2048, 1, 1));
            if (errors.Count == 0) errors.AddRange(manifest.Validate(directory));
            if (errors.Count > 0) throw new ManifestException(directory, errors);
            return new RecognisedExport(directory, ExportFamily.StableDiffusion, pipelineClass, schedulerClass, manifest, components, notes);
        }

        private static string? MaskOf(ComponentSignature? text) =>
            text?.Inputs.Any(i => i.Name == "attention_mask") == true ? "attention_mask" : null;

        private void CheckUnet(ComponentSignature? unet, string unetFile, params Expected[] extra) =>
            Check(unet, unetFile,
                [
                    new("sample", Floats, [4], "float [batch, channels, height, width]"),
                    new("timestep", [TensorElementType.Int64, .. Floats], [0, 1], "int64 [batch], float [] or float [batch]"),
                    new("encoder_hidden_states", Floats, [3], "float [batch, sequence, hidden]"),
                    .. extra,
                ],
                [new("out_sample", Floats, [4], "float [batch, channels, height, width]")]);

        private void CheckVae(ComponentSignature? vae, string vaeFile) =>
            Check(vae, vaeFile,
                [new("latent_sample", Floats, [4], "float [batch, channels, height, width]")],
                [new("sample", Floats, [4], "float [batch, 3, height, width]")]);

        // Latent geometry from vae_decoder/config.json (scaling_factor, shift_factor, latent_channels,
        // block_out_channels) and unet/config.json (in_channels), else the UNet's declared channel axis, else the
        // family's defaults (noted).
        // SD3 passes its transformer (folder "transformer", latent input "hidden_states") and its own defaults.
        private LatentSettings LatentsOf(ComponentSignature? unet, double defaultScaling, string family,
            string denoiserFolder = "unet", string latentInput = "sample", double? defaultShift = null, int defaultChannels = SdLatentChannels)
        {
            var vaeConfig = ReadJson("vae_decoder/config.json", required: false);
            var unetConfig = ReadJson($"{denoiserFolder}/config.json", required: false);
            var scaling = Number(vaeConfig, "scaling_factor") ?? Default("vae_decoder/config.json scaling_factor", defaultScaling, vaeConfig, family);
            var shift = Number(vaeConfig, "shift_factor")
                ?? (defaultShift is { } ds ? Default("vae_decoder/config.json shift_factor", ds, vaeConfig, family) : 0.0);
            var channels = (int?)Number(vaeConfig, "latent_channels") ?? (int?)Number(unetConfig, "in_channels")
                ?? FixedDim(unet, latentInput, 1) ?? (int)Default("latent channels", defaultChannels, vaeConfig, family);
            var blocks = vaeConfig is { } vc && vc.TryGetProperty("block_out_channels", out var boc) && boc.ValueKind == JsonValueKind.Array
                ? boc.GetArrayLength() : 0;
            var spatial = blocks > 0 ? 1 << (blocks - 1) : SdSpatialScale;
            return new LatentSettings(channels, spatial, 1, scaling, shift);
        }

        // A CLIPTokenizer folder (vocab.json, merges.txt; tokenizer_config.json and special_tokens_map.json when present).
        private ClipBpeTokenizerSettings ClipTokenizer(string folder)
        {
            var tokenizerConfig = ReadJson($"{folder}/tokenizer_config.json", required: false);
            var specialTokens = ReadJson($"{folder}/special_tokens_map.json", required: false);
            var maxLength = (int?)Number(tokenizerConfig, "model_max_length") is { } ml and >= 2 and <= 65536 ? ml : ClipMaxLength;
            var pad = TokenString(specialTokens, "pad_token") ?? TokenString(tokenizerConfig, "pad_token") ?? Tokenizers.ClipBpeTokenizer.EndOfText;
            return new ClipBpeTokenizerSettings(maxLength, $"{folder}/vocab.json", $"{folder}/merges.txt", pad);
        }

        // The scheduler config as DDIM settings: DDIM runs as itself; PNDM (SD 1.x's published scheduler) and the
        // other ε/v schedulers over the same β schedule run as DDIM, the documented stand-in (same training
        // schedule and timesteps, a first-order deterministic update instead of their own).
        private (DdimSettings, string) DdimFrom(JsonElement? config)
        {
            var d = ManifestJson.DdimDefaults;
            if (config is not { } c) return (d, "(none)");
            var cls = c.TryGetProperty("_class_name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "(no _class_name)";
            var karras = c.TryGetProperty("use_karras_sigmas", out var k) && k.ValueKind == JsonValueKind.True;
            // The config's scheduler when Trident has it (diffusers' class names), else DDIM as the stand-in.
            var scheduler = (cls, karras) switch
            {
                ("DDIMScheduler", _) => Samplers.SamplerFactory.Ddim,
                ("EulerDiscreteScheduler", false) => Samplers.SamplerFactory.Euler,
                ("EulerAncestralDiscreteScheduler", false) => Samplers.SamplerFactory.EulerAncestral,
                ("DPMSolverMultistepScheduler", true) => Samplers.SamplerFactory.DpmPlusPlus2MKarras,
                _ => null,
            };
            if (scheduler is null)
                notes.Add($"{SchedulerConfig}: {cls}{(karras ? " with Karras sigmas" : "")} runs as DDIM over the same β schedule (stand-in; Trident has no {cls}{(karras ? " with Karras sigmas" : "")})");
            var schedule = (c.TryGetProperty("beta_schedule", out var bs) ? bs.GetString() : null) switch
            {
                null or "scaled_linear" => BetaSchedule.ScaledLinear,
                "linear" => BetaSchedule.Linear,
                var other => Unknown(other),
            };
            var prediction = (c.TryGetProperty("prediction_type", out var pt) ? pt.GetString() : null) switch
            {
                null or "epsilon" => PredictionType.Epsilon,
                "v_prediction" => PredictionType.VPrediction,
                var other => UnknownPrediction(other),
            };
            var settings = new DdimSettings(
                (int?)Number(c, "num_train_timesteps") ?? d.NumTrainTimesteps,
                d.DefaultSteps,
                Number(c, "beta_start") ?? d.BetaStart,
                Number(c, "beta_end") ?? d.BetaEnd,
                schedule,
                (int?)Number(c, "steps_offset") ?? d.StepsOffset,
                c.TryGetProperty("set_alpha_to_one", out var one) && one.ValueKind is JsonValueKind.True or JsonValueKind.False ? one.GetBoolean() : d.SetAlphaToOne,
                prediction,
                scheduler ?? Samplers.SamplerFactory.Ddim);
            return (settings, cls);

            BetaSchedule Unknown(string? v)
            {
                errors.Add(new(SchedulerConfig, $"beta_schedule '{v}' is not one of 'linear', 'scaled_linear'"));
                return d.BetaSchedule;
            }

            PredictionType UnknownPrediction(string? v)
            {
                errors.Add(new(SchedulerConfig, $"prediction_type '{v}' is not one of 'epsilon', 'v_prediction'"));
                return PredictionType.Epsilon;
            }
        }

        private double Default(string what, double value, JsonElement? config, string family)
        {
            notes.Add($"{what}: {value.ToString(CultureInfo.InvariantCulture)} ({family} default{(config is null ? "; the export has no config.json" : "")})");
            return value;
        }

        // ---- signatures -----------------------------------------------------------------------------------

        private ComponentSignature? Signature(string component, string file)
        {
            try
            {
                using var session = Session.Load(Combine(file), new SessionSettings { OptimizationLevel = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL }, component);
                var folder = Path.GetDirectoryName(Combine(file))!;
                var external = System.IO.Directory.EnumerateFiles(folder)
                    .Select(Path.GetFileName).OfType<string>()
                    .Where(f => !f.EndsWith(".onnx", StringComparison.Ordinal) && !f.EndsWith(".json", StringComparison.Ordinal))
                    .Order(StringComparer.Ordinal).ToArray();
                var signature = new ComponentSignature(component, file, session.Inputs, session.Outputs, external);
                components.Add(signature);
                return signature;
            }
            catch (Exception e) when (e is OrtException or NotSupportedException or IOException)
            {
                errors.Add(new(file, $"cannot be loaded: {e.Message}"));
                return null;
            }
        }

        private void Check(ComponentSignature? c, string file, Expected[] inputs, Expected[] outputs, string[]? optionalInputs = null)
        {
            if (c is null) return;
            foreach (var e in inputs) CheckOne(c.Inputs, e, file, "input");
            foreach (var e in outputs) CheckOne(c.Outputs, e, file, "output");
            var known = inputs.Select(e => e.Name).Concat(optionalInputs ?? []).ToHashSet(StringComparer.Ordinal);
            foreach (var i in c.Inputs.Where(i => !known.Contains(i.Name)))
                errors.Add(new($"{file}:{i.Name}", $"unexpected input {i.Describe()}; a {c.Component} takes {string.Join(", ", known)}"));
        }

        private void CheckOne(IReadOnlyList<TensorInfo> declared, Expected e, string file, string side)
        {
            var found = declared.FirstOrDefault(i => i.Name == e.Name);
            if (found is null)
                errors.Add(new($"{file}:{e.Name}", $"missing {side}: expected {e.Description}; the model's {side}s are {string.Join(", ", declared.Select(d => $"{d.Name} {d.Describe()}"))}"));
            else if (!e.Types.Contains(found.ElementType) || !e.Ranks.Contains(found.Shape.Count))
                errors.Add(new($"{file}:{e.Name}", $"expected {e.Description}, found {found.Describe()}"));
        }

        private static int? FixedDim(ComponentSignature? c, string input, int axis) =>
            c?.Inputs.FirstOrDefault(i => i.Name == input) is { } i && i.Shape.Count > axis && i.Shape[axis] > 0 ? (int)i.Shape[axis] : null;

        // ---- model_index.json -----------------------------------------------------------------------------

        private void CheckComponents(JsonElement index)
        {
            if (index.ValueKind != JsonValueKind.Object)
            {
                errors.Add(new(ModelIndex, "must be a JSON object"));
                return;
            }
            foreach (var p in index.EnumerateObject())
            {
                if (p.Name.StartsWith('_') || p.Value.ValueKind != JsonValueKind.Array) continue; // metadata and options
                var parts = p.Value.EnumerateArray().ToArray();
                if (parts.All(v => v.ValueKind == JsonValueKind.Null)) continue; // an absent component
                if (!KnownComponents.Contains(p.Name))
                    errors.Add(new($"{ModelIndex}:{p.Name}", $"unknown component {p.Value.GetRawText()}; Trident knows {string.Join(", ", KnownComponents.Order(StringComparer.Ordinal))}"));
            }
        }

        private static ExportFamily? FamilyOfClass(string cls)
        {
            var bare = cls.StartsWith("ORT", StringComparison.Ordinal) ? cls[3..] : cls.StartsWith("Onnx", StringComparison.Ordinal) ? cls[4..] : cls;
            return bare switch
            {
                "StableDiffusionPipeline" => ExportFamily.StableDiffusion,
                "StableDiffusionXLPipeline" => ExportFamily.StableDiffusionXL,
                "StableDiffusion3Pipeline" => ExportFamily.StableDiffusion3,
                "FluxPipeline" => ExportFamily.Flux,
                _ => null,
            };
        }

        private static ExportFamily? FamilyOfSignature(ComponentSignature? unet, ComponentSignature? transformer)
        {
            static bool Has(ComponentSignature c, string name) => c.Inputs.Any(i => i.Name == name);
            if (unet is not null) return Has(unet, "text_embeds") || Has(unet, "time_ids") ? ExportFamily.StableDiffusionXL : ExportFamily.StableDiffusion;
            if (transformer is not null)
                return Has(transformer, "img_ids") || Has(transformer, "txt_ids") ? ExportFamily.Flux
                    : Has(transformer, "pooled_projections") ? ExportFamily.StableDiffusion3 : null;
            return null;
        }

        // ---- files ----------------------------------------------------------------------------------------

        private string Combine(string relative) => Path.Combine(directory, relative);

        private JsonElement? ReadJson(string relative, bool required)
        {
            var path = Combine(relative);
            if (!File.Exists(path))
            {
                if (required) errors.Add(new(relative, "missing file"));
                return null;
            }
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
                return doc.RootElement.Clone();
            }
            catch (JsonException e)
            {
                errors.Add(new(relative, $"is not valid JSON: {e.Message}"));
                return null;
            }
        }

        private static double? Number(JsonElement? o, string name) =>
            o is { ValueKind: JsonValueKind.Object } e && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d)
                && double.IsFinite(d) && Math.Abs(d) < 1e9 ? d : null;

        // special_tokens_map.json / tokenizer_config.json hold a token as a string or as {"content": "…"}.
        private static string? TokenString(JsonElement? o, string name)
        {
            if (o is not { ValueKind: JsonValueKind.Object } e || !e.TryGetProperty(name, out var v)) return null;
            if (v.ValueKind == JsonValueKind.String) return v.GetString();
            if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) return c.GetString();
            return null;
        }
    }
}

/// <summary>A pipeline directory: a trident-pipeline.json manifest, or an export recognised as it is.</summary>
public static class PipelineDirectory
{
    /// <summary>
    /// The manifest of the pipeline in <paramref name="directory"/>: its trident-pipeline.json when there is one
    /// (an override for layouts nobody else writes), else the recognised export (model_index.json).
    /// </summary>
    /// <exception cref="ManifestException">every problem with the manifest or the export at once.</exception>
    public static PipelineManifest LoadManifest(string directory)
    {
        if (File.Exists(Path.Combine(directory, PipelineManifest.FileName))) return PipelineManifest.Load(directory);
        if (ExportDirectory.IsExport(directory)) return ExportDirectory.Recognise(directory).Manifest;
        throw new ManifestException(directory, [new ManifestError("$",
            $"neither '{PipelineManifest.FileName}' nor '{ExportDirectory.ModelIndex}' exists in '{directory}': it is not a pipeline directory")]);
    }

    /// <summary>The recognised export in <paramref name="directory"/>, or null when a trident-pipeline.json
    /// decides how it runs (or it is no export).</summary>
    public static RecognisedExport? ExportOf(string directory) =>
        !File.Exists(Path.Combine(directory, PipelineManifest.FileName)) && ExportDirectory.IsExport(directory)
            ? ExportDirectory.Recognise(directory) : null;
}
