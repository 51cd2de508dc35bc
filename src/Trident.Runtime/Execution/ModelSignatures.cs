// Checking a pipeline's ONNX models against its manifest before anything runs.
//
// Design note. trident-pipeline.json names each stage's inputs and outputs; until this check, a name the model
// does not have, an id input declared as float, latents of the wrong rank or a text encoder whose width is not
// the denoiser's surfaced only when a request ran the stage (generate crashed with a stack trace, and a server
// whose profile was configured started and failed its first request). The executors feed exactly what is
// checked here, so the rules are theirs:
//   text encoder   input_ids int32/int64 rank 2 (and attention_mask when named); no other input; the named
//                  sequence output float rank 3 (and the pooled output rank 2 when named);
//   denoiser       latents float32/float16 of the manifest's latent rank, its size-independent axes (channels) as
//                  the manifest says; timestep float32/float16/int64 rank 0 or 1; encoder_hidden_states float
//                  rank 3; the named extra inputs (text_embeds, time_ids, img_ids, txt_ids, guidance) present and no
//                  others; one output, the prediction, in the latents' type;
//   VAE decoder    one input, the latents, float of rank 4 (image) or 5 (video) with the manifest's channels; the
//                  image output of the same rank with 3 channels.
// A fixed (non-symbolic) dimension is compared with what Trident feeds; a symbolic one accepts anything. Across
// stages, the text embeddings the encode stage makes (measured by one run of the text encoder on one prompt, so a
// tokenizer longer than the encoder's position table or ids beyond its vocabulary fail here too) are compared with
// the denoiser's declared encoder_hidden_states. Every problem is reported at once, each under the manifest key it
// concerns (stages.transformer.inputs.timestep …), naming the model file, what it declares and what was expected.
// Check itself is pure (signatures in, problems out); LoadedPipeline.Verify loads the sessions and runs the probe.

using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines;

namespace Trident.Runtime.Execution;

/// <summary>A model's declared inputs and outputs (ONNX Runtime's metadata).</summary>
/// <param name="File">The model file, relative to the pipeline directory.</param>
/// <param name="Inputs">Declared inputs, in order.</param>
/// <param name="Outputs">Declared outputs, in order.</param>
public sealed record ModelSignature(string File, IReadOnlyList<TensorInfo> Inputs, IReadOnlyList<TensorInfo> Outputs)
{
    /// <summary>The signature of a loaded session.</summary>
    public static ModelSignature Of(string file, Session session) => new(file, session.Inputs, session.Outputs);
}

/// <summary>Checks a pipeline's model signatures against its manifest (see the file's note).</summary>
public static class ModelSignatures
{
    private static readonly TensorElementType[] Floats = [TensorElementType.Float, TensorElementType.Float16];
    private static readonly TensorElementType[] Ids = [TensorElementType.Int64, TensorElementType.Int32];
    private static readonly TensorElementType[] Timesteps = [TensorElementType.Float, TensorElementType.Float16, TensorElementType.Int64];

    /// <summary>The manifest key of a stage model's section (<c>stages.transformer</c>, …).</summary>
    public static string Key(PipelineManifest manifest, StageModel model) => model switch
    {
        StageModel.TextEncoder => "stages.text_encoder",
        StageModel.TextEncoder2 => "stages.text_encoder_2",
        StageModel.TextEncoder3 => "stages.text_encoder_3",
        StageModel.Denoiser => "stages." + (manifest.Stages.Denoiser.Architecture == DenoiserArchitecture.Unet ? "unet" : "transformer"),
        _ => "stages.vae_decoder",
    };

    /// <summary>
    /// Every problem of the models' signatures against <paramref name="manifest"/>. <paramref name="signatureOf"/> gives
    /// each stage model's signature, or null when the model could not be loaded (its problem is reported by the caller;
    /// the checks that need it are skipped).
    /// </summary>
    public static IReadOnlyList<ManifestError> Check(PipelineManifest manifest, Func<StageModel, ModelSignature?> signatureOf)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(signatureOf);
        var errors = new List<ManifestError>();
        var stages = manifest.Stages;
        TextEncoder(errors, manifest, StageModel.TextEncoder, stages.TextEncoder, manifest.Tokenizer.MaxLength, signatureOf(StageModel.TextEncoder));
        if (stages.TextEncoder2 is { } te2)
            TextEncoder(errors, manifest, StageModel.TextEncoder2, te2, manifest.Tokenizer2?.MaxLength, signatureOf(StageModel.TextEncoder2));
        if (stages.TextEncoder3 is { } te3)
            TextEncoder(errors, manifest, StageModel.TextEncoder3, te3, manifest.Tokenizer3?.MaxLength, signatureOf(StageModel.TextEncoder3));
        Denoiser(errors, manifest, signatureOf(StageModel.Denoiser));
        VaeDecoder(errors, manifest, signatureOf(StageModel.VaeDecoder));
        return errors;
    }

    /// <summary>
    /// Problems of the text embeddings the encode stage made (<paramref name="embeddings"/>: [rows, tokens, width],
    /// and <paramref name="pooled"/> [rows, width] or null) against the denoiser's declared inputs: a fixed token count
    /// or width of encoder_hidden_states (text_embeds) that differs.
    /// </summary>
    public static IReadOnlyList<ManifestError> CheckEmbeddings(PipelineManifest manifest, ModelSignature denoiser, IReadOnlyList<long> embeddings, IReadOnlyList<long>? pooled)
    {
        var errors = new List<ManifestError>();
        var stage = manifest.Stages.Denoiser;
        var key = Key(manifest, StageModel.Denoiser);
        var encoders = manifest.Stages.TextEncoder2 is null && manifest.Stages.TextEncoder3 is null
            ? $"the text encoder ({manifest.Stages.TextEncoder.File})"
            : "the text encoders";
        if (Find(denoiser.Inputs, stage.EncoderHiddenStates) is { } text && text.Shape.Count == embeddings.Count)
            for (var axis = 1; axis < embeddings.Count; axis++)
                if (text.Shape[axis] > 0 && text.Shape[axis] != embeddings[axis])
                    errors.Add(new($"{key}.inputs.encoder_hidden_states",
                        $"{denoiser.File} declares '{text.Name}' {text.Describe()}, but {encoders} give{(encoders.StartsWith("the text encoders", StringComparison.Ordinal) ? "" : "s")} " +
                        $"embeddings [{string.Join(", ", embeddings)}] for one prompt: " +
                        (axis == embeddings.Count - 1
                            ? $"a width of {embeddings[axis]}, not {text.Shape[axis]} (export the text encoder and the denoiser of one model)"
                            : $"{embeddings[axis]} tokens, not {text.Shape[axis]} (set tokenizer.max_length to the tokens the denoiser takes)")));
        if (stage.TextEmbeds is { } name && pooled is not null && Find(denoiser.Inputs, name) is { } embeds && embeds.Shape.Count == pooled.Count)
            for (var axis = 1; axis < pooled.Count; axis++)
                if (embeds.Shape[axis] > 0 && embeds.Shape[axis] != pooled[axis])
                    errors.Add(new($"{key}.inputs.text_embeds",
                        $"{denoiser.File} declares '{name}' {embeds.Describe()}, but {encoders} give pooled embeddings [{string.Join(", ", pooled)}]: a width of {pooled[axis]}, not {embeds.Shape[axis]}"));
        return errors;
    }

    private static void TextEncoder(List<ManifestError> errors, PipelineManifest manifest, StageModel model, TextEncoderStage stage, int? maxLength, ModelSignature? s)
    {
        if (s is null) return;
        var key = Key(manifest, model);
        // a fixed token axis (axis 1) must be the tokenizer's length
        void Tokens(TensorInfo? t, string path)
        {
            if (t is not null && maxLength is { } length && t.Shape[1] > 0 && t.Shape[1] != length)
                errors.Add(new(path, $"{s.File} declares '{t.Name}' {t.Describe()}: {t.Shape[1]} tokens, but the tokenizer makes {length} (tokenizer.max_length)"));
        }
        Tokens(Input(errors, s, key + ".inputs.input_ids", stage.InputIds, Ids, [2], "int64 or int32 [batch, tokens]"), key + ".inputs.input_ids");
        if (stage.AttentionMask is { } mask)
            Input(errors, s, key + ".inputs.attention_mask", mask, Ids, [2], "int64 or int32 [batch, tokens]");
        Unexpected(errors, s, key, [stage.InputIds, .. stage.AttentionMask is null ? [] : new[] { stage.AttentionMask }], "the text encoder");
        Tokens(Output(errors, s, key + ".outputs.last_hidden_state", stage.LastHiddenState, Floats, [3], "float32 or float16 [batch, tokens, width]"),
            key + ".outputs.last_hidden_state");
        if (stage.Pooled is { } pooled)
            Output(errors, s, key + ".outputs.pooled", pooled, Floats, [2], "float32 or float16 [batch, width]");
    }

    private static void Denoiser(List<ManifestError> errors, PipelineManifest manifest, ModelSignature? s)
    {
        if (s is null) return;
        var stage = manifest.Stages.Denoiser;
        var key = Key(manifest, StageModel.Denoiser);
        // what Trident feeds as latents at two sizes: the axes that do not change with the size are fixed (channels)
        var size = manifest.Size;
        var (small, large) = (manifest.LatentShape(1, size.MultipleOf * 2, size.MultipleOf * 2, size.MinFrames),
            manifest.LatentShape(1, size.MultipleOf * 3, size.MultipleOf * 3, size.MinFrames + manifest.Latents.TemporalCompression));
        var layout = manifest.Latents.Packing > 1 && manifest.Kind == PipelineKind.Image ? "[batch, tokens, channels × packing²]"
            : manifest.Kind == PipelineKind.Image ? "[batch, channels, height, width]" : "[batch, channels, frames, height, width]";
        var latents = Input(errors, s, key + ".inputs.latents", stage.Latents, Floats, [small.Length],
            $"float32 or float16 {layout} (kind '{(manifest.Kind == PipelineKind.Image ? "image" : "video")}')");
        if (latents is not null)
            for (var axis = 1; axis < small.Length; axis++)
                if (small[axis] == large[axis] && latents.Shape[axis] > 0 && latents.Shape[axis] != small[axis])
                    errors.Add(new($"{key}.inputs.latents",
                        $"{s.File} declares '{latents.Name}' {latents.Describe()}: axis {axis} is {latents.Shape[axis]}, but the manifest's latents give {small[axis]} there " +
                        $"({layout}; latents.channels {manifest.Latents.Channels}{(manifest.Latents.Packing > 1 ? $", packing {manifest.Latents.Packing}" : "")})"));
        Input(errors, s, key + ".inputs.timestep", stage.Timestep, Timesteps, [0, 1], "float32, float16 or int64 [] or [batch]");
        Input(errors, s, key + ".inputs.encoder_hidden_states", stage.EncoderHiddenStates, Floats, [3], "float32 or float16 [batch, tokens, width]");
        string?[] extras = [stage.TextEmbeds, stage.TimeIds, stage.ImgIds, stage.TxtIds, stage.Guidance];
        foreach (var (name, what) in extras.Zip(["text_embeds", "time_ids", "img_ids", "txt_ids", "guidance"]))
            if (name is not null && Find(s.Inputs, name) is null)
                errors.Add(new($"{key}.inputs.{what}", $"{s.File} has no input '{name}'; its inputs are {List(s.Inputs)}"));
        Unexpected(errors, s, key, [stage.Latents, stage.Timestep, stage.EncoderHiddenStates, .. extras.OfType<string>()], "the denoiser");
        var prediction = Output(errors, s, key + ".outputs.prediction", stage.Prediction, Floats, [small.Length], $"float32 or float16 {layout}, as the latents");
        if (s.Outputs.Count > 1)
            errors.Add(new($"{key}.outputs", $"{s.File} has {s.Outputs.Count} outputs ({List(s.Outputs)}); Trident reads exactly one, '{stage.Prediction}': export the denoiser with one output"));
        if (prediction is not null && latents is not null && prediction.ElementType != latents.ElementType)
            errors.Add(new($"{key}.outputs.prediction",
                $"{s.File} takes '{latents.Name}' as {TensorInfo.TypeName(latents.ElementType)} but returns '{prediction.Name}' as {TensorInfo.TypeName(prediction.ElementType)}: Trident needs the same type in and out"));
    }

    private static void VaeDecoder(List<ManifestError> errors, PipelineManifest manifest, ModelSignature? s)
    {
        if (s is null) return;
        var stage = manifest.Stages.VaeDecoder;
        const string key = "stages.vae_decoder";
        var video = manifest.Kind == PipelineKind.Video;
        var rank = video ? 5 : 4;
        var layout = video ? "[batch, channels, frames, height, width] (kind 'video')" : "[batch, channels, height, width] (kind 'image')";
        var latents = Input(errors, s, key + ".inputs.latents", stage.Latents, Floats, [rank], "float32 or float16 " + layout);
        if (latents is not null && latents.Shape[1] > 0 && latents.Shape[1] != manifest.Latents.Channels)
            errors.Add(new(key + ".inputs.latents",
                $"{s.File} declares '{latents.Name}' {latents.Describe()}: {latents.Shape[1]} channels, but latents.channels is {manifest.Latents.Channels} " +
                "(the denoiser's latents are decoded as they are: export the VAE of the same model)"));
        Unexpected(errors, s, key, [stage.Latents], "the VAE decoder");
        var image = Output(errors, s, key + ".outputs.image", stage.Image, Floats, [rank],
            "float32 or float16 " + (video ? "[batch, 3, frames, height, width]" : "[batch, 3, height, width]"));
        if (image is not null && image.Shape[1] > 0 && image.Shape[1] != 3)
            errors.Add(new(key + ".outputs.image", $"{s.File} declares '{image.Name}' {image.Describe()}: {image.Shape[1]} channels, but Trident writes RGB (3)"));
    }

    // The input called `name`, when present with an accepted type and rank; else a problem under `path`, and null.
    private static TensorInfo? Input(List<ManifestError> errors, ModelSignature s, string path, string name, TensorElementType[] types, int[] ranks, string expected) =>
        Declared(errors, s, s.Inputs, "input", path, name, types, ranks, expected);

    private static TensorInfo? Output(List<ManifestError> errors, ModelSignature s, string path, string name, TensorElementType[] types, int[] ranks, string expected) =>
        Declared(errors, s, s.Outputs, "output", path, name, types, ranks, expected);

    private static TensorInfo? Declared(List<ManifestError> errors, ModelSignature s, IReadOnlyList<TensorInfo> declared, string side, string path,
        string name, TensorElementType[] types, int[] ranks, string expected)
    {
        if (Find(declared, name) is not { } found)
        {
            errors.Add(new(path, $"{s.File} has no {side} '{name}' (expected {expected}); its {side}s are {List(declared)}"));
            return null;
        }
        if (types.Contains(found.ElementType) && ranks.Contains(found.Shape.Count)) return found;
        errors.Add(new(path, $"{s.File} declares {side} '{name}' {found.Describe()}; expected {expected}"));
        return null;
    }

    private static void Unexpected(List<ManifestError> errors, ModelSignature s, string key, IReadOnlyList<string> fed, string what)
    {
        foreach (var input in s.Inputs.Where(i => !fed.Contains(i.Name)))
            errors.Add(new($"{key}.inputs",
                $"{s.File} takes '{input.Name}' {input.Describe()}, which the manifest does not name: Trident feeds {what} exactly {string.Join(", ", fed.Select(n => $"'{n}'"))}"
                + (what == "the text encoder" && input.Name.Contains("mask", StringComparison.OrdinalIgnoreCase) ? $" (name a mask input as {key}.inputs.attention_mask)" : "")));
    }

    private static TensorInfo? Find(IReadOnlyList<TensorInfo> declared, string name) => declared.FirstOrDefault(i => i.Name == name);

    private static string List(IReadOnlyList<TensorInfo> declared) =>
        declared.Count == 0 ? "none" : string.Join(", ", declared.Select(d => $"'{d.Name}' {d.Describe()}"));
}
