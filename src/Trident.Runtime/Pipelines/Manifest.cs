// The pipeline manifest: what the runtime needs to know about a pipeline directory that the ONNX files
// themselves do not say. The directory follows the diffusers/Optimum ONNX export layout
// (text_encoder/model.onnx, transformer/model.onnx or unet/model.onnx, vae_decoder/model.onnx), so a real
// exported pipeline can be served by adding one `trident-pipeline.json` next to its folders.
//
// These records are plain data with value equality (no arrays), so a manifest can be compared after a
// save/load round trip. Reading, writing and validation live in ManifestJson.cs and ManifestValidator.cs;
// the format is documented in docs/pipeline-manifest.md.

namespace Trident.Runtime.Pipelines;

/// <summary>What a pipeline generates.</summary>
public enum PipelineKind
{
    /// <summary>Single images: latents are batch × channels × height × width.</summary>
    Image,

    /// <summary>Videos: latents are batch × channels × frames × height × width.</summary>
    Video,
}

/// <summary>The network that runs the diffuse stage; it also names the stage's folder.</summary>
public enum DenoiserArchitecture
{
    /// <summary>A diffusion transformer (DiT, SD3, Flux, video DiTs): folder <c>transformer/</c>.</summary>
    Transformer,

    /// <summary>A UNet (SD 1.x/2.x style): folder <c>unet/</c>.</summary>
    Unet,
}

/// <summary>The encode stage: token ids in, per-token embeddings out.</summary>
/// <param name="File">Model file, relative to the pipeline directory (e.g. <c>text_encoder/model.onnx</c>).</param>
/// <param name="InputIds">Name of the int64 token-id input (batch × max length).</param>
/// <param name="AttentionMask">Name of the int64 attention-mask input, or null when the model takes none
/// (CLIP exports take only the ids).</param>
/// <param name="LastHiddenState">Name of the embedding output (batch × max length × width); for SDXL's encoders the
/// penultimate layer's <c>hidden_states.{N−1}</c>, the state diffusers' StableDiffusionXLPipeline conditions on.</param>
/// <param name="Pooled">Name of a pooled output (batch × width) the denoiser also takes, or null: SDXL's second
/// encoder (CLIPTextModelWithProjection) gives <c>text_embeds</c>.</param>
public sealed record TextEncoderStage(string File, string InputIds, string? AttentionMask, string LastHiddenState, string? Pooled = null);

/// <summary>The diffuse stage: one denoising network evaluation per sampler step.</summary>
/// <param name="Architecture">Transformer or UNet; decides the manifest key and the default folder.</param>
/// <param name="File">Model file, relative to the pipeline directory.</param>
/// <param name="Latents">Name of the noisy-latent input (<c>hidden_states</c> for transformers,
/// <c>sample</c> for UNets in the Optimum export).</param>
/// <param name="Timestep">Name of the timestep input (the value <c>ISampler.Timesteps</c> yields).</param>
/// <param name="EncoderHiddenStates">Name of the text-embedding input.</param>
/// <param name="Prediction">Name of the output the sampler consumes (velocity for flow matching, noise for
/// DDIM); <c>out_sample</c> in the Optimum export.</param>
/// <param name="TextEmbeds">Name of the pooled text-embedding input (SDXL's <c>text_embeds</c>, [batch, width]),
/// fed from <see cref="TextEncoderStage.Pooled"/>; null when the denoiser takes none.</param>
/// <param name="TimeIds">Name of SDXL's micro-conditioning input <c>time_ids</c> ([batch, 6]: original height and
/// width, crop top and left, target height and width); null when the denoiser takes none.</param>
/// <param name="ImgIds">Name of Flux's image position ids <c>img_ids</c> ([(h/16)·(w/16), 3] or with a leading batch
/// axis: (0, row, column) of each packed latent token); null when the denoiser takes none.</param>
/// <param name="TxtIds">Name of Flux's text position ids <c>txt_ids</c> ([sequence, 3] or with a batch axis; zeros).</param>
/// <param name="Guidance">Name of Flux dev's embedded guidance-scale input <c>guidance</c> ([batch], float); null
/// when the denoiser takes none (schnell).</param>
public sealed record DenoiserStage(
    DenoiserArchitecture Architecture,
    string File,
    string Latents,
    string Timestep,
    string EncoderHiddenStates,
    string Prediction,
    string? TextEmbeds = null,
    string? TimeIds = null,
    string? ImgIds = null,
    string? TxtIds = null,
    string? Guidance = null);

/// <summary>The decode stage: unscaled latents in, an image (or video) tensor in [-1, 1] out.</summary>
/// <param name="File">Model file, relative to the pipeline directory.</param>
/// <param name="Latents">Name of the latent input (<c>latent_sample</c>).</param>
/// <param name="Image">Name of the decoded output (<c>sample</c>), NCHW or NCFHW.</param>
public sealed record VaeDecoderStage(string File, string Latents, string Image);

/// <summary>The stage models of a pipeline: three, four with a second text encoder (SDXL, Flux), five with a third (SD3).</summary>
/// <param name="TextEncoder">The (first) text encoder.</param>
/// <param name="Denoiser">The transformer or UNet.</param>
/// <param name="VaeDecoder">The VAE decoder.</param>
/// <param name="TextEncoder2">A second text encoder run on the same prompts (SDXL's <c>text_encoder_2</c>), whose
/// sequence states are concatenated to the first's along the width axis, or null. Export directories only:
/// trident-pipeline.json does not express it.</param>
/// <param name="Conditioning">How two text encoders' outputs become the denoiser's conditioning.</param>
/// <param name="TextEncoder3">A T5 encoder run on the same prompts (SD3's <c>text_encoder_3</c>), whose sequence
/// states are joined to the CLIP states on the token axis (the CLIP states zero-padded to its width), or null.
/// Export directories only.</param>
public sealed record PipelineStages(
    TextEncoderStage TextEncoder,
    DenoiserStage Denoiser,
    VaeDecoderStage VaeDecoder,
    TextEncoderStage? TextEncoder2 = null,
    TextConditioning Conditioning = TextConditioning.ConcatenateWidths,
    TextEncoderStage? TextEncoder3 = null);

/// <summary>How the outputs of two text encoders condition the denoiser.</summary>
public enum TextConditioning
{
    /// <summary>SDXL and SD3: both encoders' sequence states concatenated along the width; the pooled embedding is
    /// the second encoder's (SDXL, whose first has none) or both encoders' concatenated (SD3).</summary>
    ConcatenateWidths,

    /// <summary>Flux (diffusers FluxPipeline.encode_prompt): the pooled embedding is the first encoder's (CLIP's
    /// pooler_output), the sequence is the second encoder's alone (T5's last_hidden_state).</summary>
    PooledFirstSequenceSecond,
}

/// <summary>How the prompt becomes token ids. Every tokenizer pads or truncates to <see cref="MaxLength"/>.</summary>
/// <param name="MaxLength">Sequence length the text encoder takes, special tokens included.</param>
public abstract record TokenizerSettings(int MaxLength);

/// <summary>The byte-level tokenizer of the bundled tiny pipeline: each UTF-8 byte b becomes id
/// b + <paramref name="Offset"/>, framed by BOS/EOS and padded with PAD.</summary>
public sealed record ByteTokenizerSettings(int MaxLength, int PadId, int BosId, int EosId, int Offset)
    : TokenizerSettings(MaxLength)
{
    /// <summary>The defaults: PAD 0, BOS 1, EOS 2, bytes from 3 (vocabulary of 259).</summary>
    public static ByteTokenizerSettings WithDefaults(int maxLength) => new(maxLength, 0, 1, 2, 3);
}

/// <summary>CLIP's byte-level BPE tokenizer, read from the Hugging Face <c>vocab.json</c> and <c>merges.txt</c>.</summary>
/// <param name="MaxLength">Sequence length, start and end tokens included (77 for CLIP).</param>
/// <param name="Vocab">Path of vocab.json, relative to the pipeline directory.</param>
/// <param name="Merges">Path of merges.txt, relative to the pipeline directory.</param>
/// <param name="PadToken">Token used for padding (<c>&lt;|endoftext|&gt;</c> for OpenAI CLIP, <c>!</c> for
/// OpenCLIP exports).</param>
public sealed record ClipBpeTokenizerSettings(int MaxLength, string Vocab, string Merges, string PadToken)
    : TokenizerSettings(MaxLength);

/// <summary>Latent-space geometry and the VAE's latent normalisation.</summary>
/// <param name="Channels">Latent channels (4 for SD 1.x, 16 for SD3/Flux).</param>
/// <param name="SpatialScaleFactor">Pixels per latent cell along width and height (8 for most VAEs).</param>
/// <param name="TemporalCompression">Frames per latent frame for video VAEs (1 for images). A causal video
/// VAE maps F frames to (F − 1) / c + 1 latent frames.</param>
/// <param name="ScalingFactor">The VAE's <c>scaling_factor</c>: latents are divided by it before decoding.</param>
/// <param name="ShiftFactor">The VAE's <c>shift_factor</c>: added after the division (0 for SD 1.x, 0.0609 for
/// SD3).</param>
/// <param name="Packing">Side p of the square patches the denoiser reads as tokens (Flux: 2, diffusers'
/// FluxPipeline._pack_latents): latents live as [batch, (h/f/p)·(w/f/p), C·p²] and are unpacked to
/// [batch, C, h/f, w/f] before decoding; 1 for unpacked latents.</param>
public sealed record LatentSettings(
    int Channels,
    int SpatialScaleFactor,
    int TemporalCompression,
    double ScalingFactor,
    double ShiftFactor,
    int Packing = 1)
{
    /// <summary>Latent frames for <paramref name="frames"/> video frames: (frames − 1) / c + 1.</summary>
    public int LatentFrames(int frames) => (frames - 1) / TemporalCompression + 1;

    /// <summary>Undoes the VAE latent normalisation in place, before the decoder runs:
    /// x ← x / scaling_factor + shift_factor.</summary>
    public void Unscale(Span<float> latents)
    {
        var scale = (float)(1.0 / ScalingFactor);
        var shift = (float)ShiftFactor;
        for (var i = 0; i < latents.Length; i++) latents[i] = latents[i] * scale + shift;
    }
}

/// <summary>Beta schedule of a DDPM-trained model.</summary>
public enum BetaSchedule
{
    /// <summary>β linear from beta_start to beta_end.</summary>
    Linear,

    /// <summary>√β linear from √beta_start to √beta_end (Stable Diffusion's schedule).</summary>
    ScaledLinear,
}

/// <summary>What an epsilon-family denoiser predicts (diffusers' <c>prediction_type</c> in scheduler_config.json).</summary>
public enum PredictionType
{
    /// <summary>The noise ε (SD 1.x, SD 2.x base at 512²).</summary>
    Epsilon,

    /// <summary>The velocity v = √ᾱ·ε − √(1 − ᾱ)·x₀ (Salimans &amp; Ho 2022; SD 2.x at 768²).</summary>
    VPrediction,
}

/// <summary>The sampler (scheduler) that turns model predictions into denoising steps.</summary>
/// <param name="NumTrainTimesteps">Length of the training noise schedule (1000 for all common models).</param>
/// <param name="DefaultSteps">Steps used when a request does not say.</param>
public abstract record SamplerSettings(int NumTrainTimesteps, int DefaultSteps);

/// <summary>Flow-matching Euler (SD3/Flux style): the model predicts a velocity.</summary>
/// <param name="NumTrainTimesteps">Scale from σ to the network's timestep (1000).</param>
/// <param name="DefaultSteps">Steps used when a request does not say.</param>
/// <param name="Shift">Timestep shift s: σ' = s·σ / (1 + (s − 1)·σ); 1 leaves the schedule linear, SD3 uses 3.</param>
/// <param name="Dynamic">The resolution-dependent shift (scheduler_config.json use_dynamic_shifting), which then
/// replaces <paramref name="Shift"/>; null for the static shift.</param>
public sealed record FlowEulerSettings(int NumTrainTimesteps, int DefaultSteps, double Shift, DynamicShift? Dynamic = null)
    : SamplerSettings(NumTrainTimesteps, DefaultSteps);

/// <summary>Parameters of the resolution-dependent shift of diffusers' FlowMatchEulerDiscreteScheduler
/// (use_dynamic_shifting): μ is linear in the packed image sequence length through (BaseImageSeqLen, BaseShift)
/// and (MaxImageSeqLen, MaxShift). Flux's scheduler_config.json: 0.5, 1.15, 256, 4096.</summary>
/// <param name="BaseShift">μ at <paramref name="BaseImageSeqLen"/> (base_shift).</param>
/// <param name="MaxShift">μ at <paramref name="MaxImageSeqLen"/> (max_shift).</param>
/// <param name="BaseImageSeqLen">base_image_seq_len, in tokens.</param>
/// <param name="MaxImageSeqLen">max_image_seq_len, in tokens (≠ BaseImageSeqLen).</param>
public sealed record DynamicShift(double BaseShift, double MaxShift, int BaseImageSeqLen, int MaxImageSeqLen)
{
    /// <summary>Flux.1's values (black-forest-labs/FLUX.1-schnell and -dev scheduler_config.json).</summary>
    public static readonly DynamicShift Flux = new(0.5, 1.15, 256, 4096);
}

/// <summary>DDIM with η = 0 over an epsilon-predicting UNet.</summary>
/// <param name="NumTrainTimesteps">Length T of the training noise schedule.</param>
/// <param name="DefaultSteps">Steps used when a request does not say.</param>
/// <param name="BetaStart">β at timestep 0 (SD: 0.00085).</param>
/// <param name="BetaEnd">β at timestep T − 1 (SD: 0.012).</param>
/// <param name="BetaSchedule">How β goes from start to end.</param>
/// <param name="StepsOffset">Added to every inference timestep ("leading" spacing; SD uses 1).</param>
/// <param name="SetAlphaToOne">Whether the step after the last timestep uses ᾱ = 1 (a clean sample) rather than
/// ᾱ₀; SD 1.x configs say false.</param>
/// <param name="PredictionType">What the UNet predicts: ε (default) or v.</param>
/// <param name="DefaultScheduler">The scheduler a request gets when it names none, over this β schedule:
/// <c>ddim</c> (default), <c>euler</c>, <c>euler-ancestral</c> or <c>dpm++-2m-karras</c> (an export's
/// scheduler_config.json _class_name decides it).</param>
public sealed record DdimSettings(
    int NumTrainTimesteps,
    int DefaultSteps,
    double BetaStart,
    double BetaEnd,
    BetaSchedule BetaSchedule,
    int StepsOffset,
    bool SetAlphaToOne,
    PredictionType PredictionType = PredictionType.Epsilon,
    string DefaultScheduler = "ddim")
    : SamplerSettings(NumTrainTimesteps, DefaultSteps);

/// <summary>Classifier-free guidance.</summary>
/// <param name="ClassifierFree">Whether the pipeline runs an unconditional pass and combines the two.</param>
/// <param name="DefaultScale">Guidance scale used when a request does not say; 1 when guidance is unsupported.</param>
/// <param name="Embedded">Whether the scale is fed to the denoiser as an input (Flux dev's guidance-distilled
/// <c>guidance</c>) instead of combining two passes; then <paramref name="ClassifierFree"/> is false.</param>
public sealed record GuidanceSettings(bool ClassifierFree, double DefaultScale, bool Embedded = false)
{
    /// <summary>Whether a request may set the guidance scale (classifier-free or embedded).</summary>
    public bool Accepted => ClassifierFree || Embedded;

    /// <summary>Whether a run at <paramref name="guidanceScale"/> runs classifier-free guidance: an unconditional pass
    /// (the one that reads the negative prompt) combined with the conditional one. Not at scale 1, where the
    /// combination is the conditional pass alone and the unconditional one is skipped, nor on a pipeline without it.
    /// The one predicate the executors, the API and the CLI use.</summary>
    public bool RunsClassifierFree(double guidanceScale) => ClassifierFree && guidanceScale != 1.0;

    /// <summary>Why a negative prompt would be ignored by a run at <paramref name="guidanceScale"/> (null when the
    /// request gave none: the pipeline's default scale), as a message for the negative prompt's field; null when the
    /// run reads it (<see cref="RunsClassifierFree"/>). <paramref name="guidanceName"/> is the scale's name where the
    /// message is read (<c>guidance</c>, <c>guidance_scale</c>, <c>--guidance</c>); <paramref name="pipeline"/> the
    /// pipeline's name.</summary>
    public string? NegativePromptUnused(double? guidanceScale, string guidanceName, string pipeline)
    {
        var scale = guidanceScale ?? DefaultScale;
        if (RunsClassifierFree(scale)) return null;
        if (!ClassifierFree)
            return $"is not used: pipeline '{pipeline}' has no classifier-free guidance, so no unconditional pass reads a negative prompt; omit it";
        var given = guidanceScale is null ? $"the pipeline's default {guidanceName} {scale}" : $"{guidanceName} {scale}";
        return $"is not used: {given} runs no classifier-free guidance (at 1 the unconditional pass, which reads the "
            + $"negative prompt, is skipped); send a {guidanceName} other than 1, or no negative prompt";
    }
}

/// <summary>The output sizes a pipeline accepts.</summary>
/// <param name="MultipleOf">Width and height must be multiples of this (a multiple of the VAE scale factor, and
/// of the patch size for transformers).</param>
/// <param name="MinWidth">Smallest width in pixels.</param>
/// <param name="MaxWidth">Largest width in pixels.</param>
/// <param name="MinHeight">Smallest height in pixels.</param>
/// <param name="MaxHeight">Largest height in pixels.</param>
/// <param name="MinFrames">Smallest frame count (1 for images).</param>
/// <param name="MaxFrames">Largest frame count (1 for images).</param>
public sealed record SizeConstraint(
    int MultipleOf,
    int MinWidth,
    int MaxWidth,
    int MinHeight,
    int MaxHeight,
    int MinFrames,
    int MaxFrames)
{
    /// <summary>Square sides to profile: from the smallest side both dimensions accept (rounded up to
    /// <see cref="MultipleOf"/>), doubling, at most <paramref name="count"/> of them and none above
    /// <paramref name="upTo"/> (pixels; capped at the largest side both dimensions accept). The sizes the server's
    /// start-up profile and <c>trident profile</c> measure by default (64, 128, 256 for the tiny pipeline). Empty
    /// when even the smallest side is above <paramref name="upTo"/>.</summary>
    public IReadOnlyList<int> DoublingSides(int count, int upTo)
    {
        var smallest = Math.Max(MinWidth, MinHeight);
        smallest = (smallest + MultipleOf - 1) / MultipleOf * MultipleOf;
        var limit = Math.Min(upTo, Math.Min(MaxWidth, MaxHeight));
        var sides = new List<int>();
        for (var side = smallest; side <= limit && sides.Count < count; side *= 2) sides.Add(side);
        return sides;
    }
}

/// <summary>One problem found in a manifest (or a request checked against it).</summary>
/// <param name="Path">JSON path of the offending value, e.g. <c>stages.transformer.file</c>; <c>$</c> for the root.</param>
/// <param name="Message">What is wrong with it.</param>
public sealed record ManifestError(string Path, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>Thrown when a manifest is invalid; carries every problem found, not just the first.</summary>
public sealed class ManifestException : Exception
{
    /// <summary>Creates the exception; <paramref name="source"/> names the file (or "manifest").</summary>
    public ManifestException(string source, IReadOnlyList<ManifestError> errors)
        : base(FormatMessage(source, errors)) => Errors = errors;

    /// <summary>Every problem found, in document order.</summary>
    public IReadOnlyList<ManifestError> Errors { get; }

    private static string FormatMessage(string source, IReadOnlyList<ManifestError> errors) =>
        $"{source} has {errors.Count} problem{(errors.Count == 1 ? "" : "s")}:" + Environment.NewLine
        + string.Join(Environment.NewLine, errors.Select(e => "  " + e));
}

/// <summary>A pipeline manifest: the contents of <c>trident-pipeline.json</c>.</summary>
/// <param name="Name">Pipeline name, as requests and the API refer to it.</param>
/// <param name="Model">Model family name: the model name of the scheduling profile that describes this
/// pipeline's costs.</param>
/// <param name="Kind">Image or video.</param>
/// <param name="Stages">The three stage models.</param>
/// <param name="Tokenizer">How prompts become token ids.</param>
/// <param name="Latents">Latent geometry and normalisation.</param>
/// <param name="Sampler">The denoising sampler and its parameters.</param>
/// <param name="Guidance">Classifier-free guidance support.</param>
/// <param name="Size">Accepted output sizes.</param>
/// <param name="Tokenizer2">The tokenizer of <see cref="PipelineStages.TextEncoder2"/> (SDXL's <c>tokenizer_2</c>),
/// or null.</param>
/// <param name="ZerosForEmptyNegative">Whether an empty negative prompt is encoded as zeros rather than as the
/// empty string (diffusers' <c>force_zeros_for_empty_prompt</c> in SDXL's model_index.json).</param>
/// <param name="Tokenizer3">The tokenizer of <see cref="PipelineStages.TextEncoder3"/> (SD3's T5
/// <c>tokenizer_3</c>), or null.</param>
public sealed record PipelineManifest(
    string Name,
    string Model,
    PipelineKind Kind,
    PipelineStages Stages,
    TokenizerSettings Tokenizer,
    LatentSettings Latents,
    SamplerSettings Sampler,
    GuidanceSettings Guidance,
    SizeConstraint Size,
    TokenizerSettings? Tokenizer2 = null,
    bool ZerosForEmptyNegative = false,
    TokenizerSettings? Tokenizer3 = null)
{
    /// <summary>Whether this manifest uses conditioning that trident-pipeline.json cannot express (a second
    /// text encoder, pooled embeddings, time_ids): such a pipeline is served from its export directory.</summary>
    public bool ExportOnly =>
        Stages.TextEncoder2 is not null || Stages.TextEncoder.Pooled is not null || Stages.Denoiser.TextEmbeds is not null
        || Stages.Denoiser.TimeIds is not null || Tokenizer2 is not null || ZerosForEmptyNegative
        || Stages.Denoiser.ImgIds is not null || Stages.Denoiser.TxtIds is not null || Stages.Denoiser.Guidance is not null
        || Latents.Packing != 1 || Guidance.Embedded || Sampler is FlowEulerSettings { Dynamic: not null }
        || Tokenizer is T5TokenizerSettings || Tokenizer2 is T5TokenizerSettings
        || Stages.TextEncoder3 is not null || Tokenizer3 is not null;

    /// <summary>The manifest's file name at the root of a pipeline directory.</summary>
    public const string FileName = "trident-pipeline.json";

    /// <summary>The format version this code reads and writes.</summary>
    public const int FormatVersion = 1;

    /// <summary>Reads and validates <c>trident-pipeline.json</c> in <paramref name="directory"/>, including that
    /// every file it names exists.</summary>
    /// <exception cref="ManifestException">listing every problem found.</exception>
    public static PipelineManifest Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new ManifestException(path, [new ManifestError("$", $"file '{FileName}' does not exist in '{directory}'")]);
        return Parse(File.ReadAllBytes(path), directory, path);
    }

    /// <summary>Parses and validates manifest JSON. File existence is checked only when
    /// <paramref name="directory"/> is given.</summary>
    /// <exception cref="ManifestException">listing every problem found.</exception>
    public static PipelineManifest Parse(ReadOnlySpan<byte> utf8Json, string? directory = null, string source = "manifest")
    {
        var (manifest, errors) = ManifestJson.Read(utf8Json, directory);
        if (errors.Count > 0 || manifest is null) throw new ManifestException(source, errors);
        return manifest;
    }

    /// <summary>Validates this manifest and writes it to <c>trident-pipeline.json</c> in
    /// <paramref name="directory"/> (created if missing). The files it names need not exist yet.</summary>
    /// <exception cref="ManifestException">when the manifest is invalid; nothing is written then.</exception>
    public void Save(string directory)
    {
        var bytes = ToJson();
        Directory.CreateDirectory(directory);
        File.WriteAllBytes(Path.Combine(directory, FileName), bytes);
    }

    /// <summary>Validates this manifest and serialises it as indented snake_case UTF-8 JSON.</summary>
    /// <exception cref="ManifestException">when the manifest is invalid.</exception>
    public byte[] ToJson()
    {
        if (ExportOnly)
            throw new ManifestException("manifest", [new ManifestError("stages",
                "a second text encoder, pooled embeddings or time_ids cannot be written to trident-pipeline.json; serve the export directory as it is")]);
        var errors = Validate();
        if (errors.Count > 0) throw new ManifestException("manifest", errors);
        return ManifestJson.Write(this);
    }

    /// <summary>Every problem with this manifest; also checks that the files it names exist under
    /// <paramref name="directory"/> when one is given.</summary>
    public IReadOnlyList<ManifestError> Validate(string? directory = null) => ManifestValidator.Validate(this, directory);

    /// <summary>Absolute path of a file the manifest names, relative to <paramref name="directory"/>.</summary>
    public static string ResolvePath(string directory, string relativePath) =>
        Path.GetFullPath(Path.Combine(directory, relativePath));

    /// <summary>Shape of the initial latent tensor for one generation: [batch, C, h/f, w/f] for images,
    /// [batch, C, F', h/f, w/f] for videos, with F' = (frames − 1) / temporal_compression + 1.</summary>
    public long[] LatentShape(int batch, int width, int height, int frames)
    {
        var f = Latents.SpatialScaleFactor;
        if (Latents.Packing is var p and > 1 && Kind == PipelineKind.Image)
            return [batch, (long)(height / f / p) * (width / f / p), Latents.Channels * p * p];
        return Kind == PipelineKind.Image
            ? [batch, Latents.Channels, height / f, width / f]
            : [batch, Latents.Channels, Latents.LatentFrames(frames), height / f, width / f];
    }

    /// <summary>The image's token count after 2×2 patching, (h/f/2)·(w/f/2): the L of the resolution-dependent
    /// shift (diffusers FluxPipeline and StableDiffusion3Pipeline compute image_seq_len so).</summary>
    public int ImageSequenceLength(int width, int height)
    {
        var cell = Latents.SpatialScaleFactor * 2;
        return height / cell * (width / cell);
    }

    /// <summary>Problems with a requested output size, with paths <c>width</c>, <c>height</c> and
    /// <c>frames</c>; empty when the size is accepted. <paramref name="maxFrames"/>: the most frames the caller
    /// serves besides the pipeline's own maximum (a server's limit), so that a frame count off the temporal
    /// compression's form is pointed at counts it can have (the limit itself is the caller's to report).
    /// <paramref name="minFrames"/>: the fewest frames the caller takes besides the pipeline's own minimum (a video
    /// route: 2, one frame being an image), so that the range a message states is the one the caller applies.</summary>
    public IReadOnlyList<ManifestError> CheckSize(int width, int height, int frames, int? maxFrames = null, int? minFrames = null)
    {
        var errors = new List<ManifestError>();
        CheckDimension(errors, "width", width, Size.MinWidth, Size.MaxWidth, Size.MultipleOf);
        CheckDimension(errors, "height", height, Size.MinHeight, Size.MaxHeight, Size.MultipleOf);
        var min = Math.Max(Size.MinFrames, minFrames ?? 0);
        if (frames < min || frames > Size.MaxFrames)
            errors.Add(new ManifestError("frames", $"must be between {min} and {Size.MaxFrames}"));
        else if ((frames - 1) % Latents.TemporalCompression != 0)
            errors.Add(new ManifestError("frames",
                $"must be 1 more than a multiple of the temporal compression {Latents.TemporalCompression} "
                + $"({Latents.TemporalCompression}k + 1; the nearest: {string.Join(" or ", NearestFrames(frames, maxFrames, minFrames))})"));
        return errors;
    }

    /// <summary>The valid frame counts nearest to <paramref name="frames"/> (1 more than a multiple of the temporal
    /// compression, within the size constraint, <paramref name="maxFrames"/> and <paramref name="minFrames"/> when
    /// given): the one below and the one above, where each exists; the largest valid count within them when both are
    /// outside them.</summary>
    public IReadOnlyList<int> NearestFrames(int frames, int? maxFrames = null, int? minFrames = null)
    {
        var c = Math.Max(1, Latents.TemporalCompression);
        var max = Math.Min(Size.MaxFrames, maxFrames ?? int.MaxValue);
        var min = Math.Max(Size.MinFrames, minFrames ?? 0);
        var below = 1 + (Math.Max(frames, 1) - 1) / c * c;
        var above = below < frames ? below + c : below;
        var nearest = new[] { below, above }.Distinct().Where(f => f >= min && f <= max).ToList();
        var largest = 1 + (max - 1) / c * c;
        if (nearest.Count == 0 && max >= 1 && largest >= min) nearest.Add(largest);
        return nearest;
    }

    private static void CheckDimension(List<ManifestError> errors, string name, int value, int min, int max, int multiple)
    {
        if (value < min || value > max) errors.Add(new ManifestError(name, $"must be between {min} and {max}"));
        else if (value % multiple != 0) errors.Add(new ManifestError(name, $"must be a multiple of {multiple}"));
    }
}
