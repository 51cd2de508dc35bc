// Semantic validation of a pipeline manifest, shared by the JSON reader and by Save for manifests built in
// code. It accumulates every problem (style rule 10) and names each by the JSON path it would have in
// trident-pipeline.json, so an error reads the same whether the manifest came from a file or from code.

using K = Trident.Runtime.Pipelines.ManifestJson.Keys;

namespace Trident.Runtime.Pipelines;

internal static class ManifestValidator
{
    public static IReadOnlyList<ManifestError> Validate(PipelineManifest m, string? directory)
    {
        var v = new Checker(directory);
        v.NonEmpty(K.Name, m.Name);
        v.NonEmpty(K.Model, m.Model);
        if (!Enum.IsDefined(m.Kind)) v.Error(K.Kind, $"unknown kind {m.Kind}");

        CheckStages(v, m.Stages);
        CheckTokenizer(v, m.Tokenizer);
        if (m.Tokenizer2 is { } t2)
        {
            CheckTokenizer(v, t2, "tokenizer_2");
            if (t2.MaxLength != m.Tokenizer.MaxLength && m.Stages.Conditioning == TextConditioning.ConcatenateWidths)
                v.Error("tokenizer_2.max_length", $"{t2.MaxLength} differs from the first tokenizer's {m.Tokenizer.MaxLength}: the two encoders' states are joined token by token");
        }
        if ((m.Tokenizer2 is null) != (m.Stages.TextEncoder2 is null))
            v.Error("tokenizer_2", "a second text encoder needs a second tokenizer, and the reverse");
        if (m.Tokenizer3 is { } t3) CheckTokenizer(v, t3, "tokenizer_3");
        if ((m.Tokenizer3 is null) != (m.Stages.TextEncoder3 is null))
            v.Error("tokenizer_3", "a T5 text encoder needs a third tokenizer, and the reverse");
        CheckLatents(v, m.Latents, m.Kind);
        CheckSampler(v, m.Sampler);
        CheckGuidance(v, m.Guidance);
        CheckSize(v, m.Size, m.Kind, m.Latents);
        return v.Errors;
    }

    private static string P(params string[] parts) => string.Join('.', parts);

    private static void CheckStages(Checker v, PipelineStages s)
    {
        var te = P(K.Stages, K.TextEncoder);
        v.File(P(te, K.File), s.TextEncoder.File);
        v.NonEmpty(P(te, K.Inputs, K.InputIds), s.TextEncoder.InputIds);
        if (s.TextEncoder.AttentionMask is { } mask)
        {
            v.NonEmpty(P(te, K.Inputs, K.AttentionMask), mask);
            if (mask == s.TextEncoder.InputIds)
                v.Error(P(te, K.Inputs, K.AttentionMask), $"names the same tensor as '{K.InputIds}'");
        }
        v.NonEmpty(P(te, K.Outputs, K.LastHiddenState), s.TextEncoder.LastHiddenState);

        var dn = P(K.Stages, ManifestJson.DenoiserKey(s.Denoiser.Architecture));
        v.File(P(dn, K.File), s.Denoiser.File);
        var inputs = new (string Key, string Name)[]
        {
            (K.Latents, s.Denoiser.Latents), (K.Timestep, s.Denoiser.Timestep), (K.EncoderHiddenStates, s.Denoiser.EncoderHiddenStates),
        };
        for (var i = 0; i < inputs.Length; i++)
        {
            v.NonEmpty(P(dn, K.Inputs, inputs[i].Key), inputs[i].Name);
            for (var j = 0; j < i; j++)
                if (inputs[i].Name.Length > 0 && inputs[i].Name == inputs[j].Name)
                    v.Error(P(dn, K.Inputs, inputs[i].Key), $"names the same tensor as '{inputs[j].Key}'");
        }
        v.NonEmpty(P(dn, K.Outputs, K.Prediction), s.Denoiser.Prediction);

        if (s.TextEncoder2 is { } te2)
        {
            // Export-only (SDXL's text_encoder_2); paths name the component as the export directory does.
            v.File("stages.text_encoder_2.file", te2.File);
            v.NonEmpty("stages.text_encoder_2.outputs.last_hidden_state", te2.LastHiddenState);
        }
        if (s.TextEncoder3 is { } te3)
        {
            // Export-only (SD3's T5 text_encoder_3).
            v.File("stages.text_encoder_3.file", te3.File);
            v.NonEmpty("stages.text_encoder_3.outputs.last_hidden_state", te3.LastHiddenState);
        }
        if ((s.Denoiser.TextEmbeds is null) != ((s.TextEncoder2?.Pooled ?? s.TextEncoder.Pooled) is null))
            v.Error(P(dn, K.Inputs, "text_embeds"), "a pooled text input needs a text encoder with a pooled output, and the reverse");

        var vae = P(K.Stages, K.VaeDecoder);
        v.File(P(vae, K.File), s.VaeDecoder.File);
        v.NonEmpty(P(vae, K.Inputs, K.Latents), s.VaeDecoder.Latents);
        v.NonEmpty(P(vae, K.Outputs, K.Image), s.VaeDecoder.Image);
    }

    private static void CheckTokenizer(Checker v, TokenizerSettings t, string key = K.Tokenizer)
    {
        // Room for the start and end tokens at least.
        v.Range(P(key, K.MaxLength), t.MaxLength, 2, 65536);
        switch (t)
        {
            case ByteTokenizerSettings b:
                var ids = new (string Key, int Id)[] { (K.PadId, b.PadId), (K.BosId, b.BosId), (K.EosId, b.EosId) };
                v.Range(P(key, K.Offset), b.Offset, 0, int.MaxValue - 256);
                for (var i = 0; i < ids.Length; i++)
                {
                    var path = P(key, ids[i].Key);
                    v.Range(path, ids[i].Id, 0, int.MaxValue);
                    if (ids[i].Id >= b.Offset && ids[i].Id - b.Offset < 256)
                        v.Error(path, $"id {ids[i].Id} collides with the byte ids {b.Offset}..{b.Offset + 255}");
                    for (var j = 0; j < i; j++)
                        if (ids[i].Id == ids[j].Id) v.Error(path, $"same id as '{ids[j].Key}'");
                }
                break;
            case T5TokenizerSettings t5:
                v.File(P(key, "file"), t5.File);
                break;
            case ClipBpeTokenizerSettings c:
                v.File(P(key, K.Vocab), c.Vocab);
                v.File(P(key, K.Merges), c.Merges);
                v.NonEmpty(P(key, K.PadToken), c.PadToken);
                break;
            default:
                v.Error(key, $"unsupported tokenizer settings {t.GetType().Name}");
                break;
        }
    }

    private static void CheckLatents(Checker v, LatentSettings l, PipelineKind kind)
    {
        v.Range(P(K.Latents, K.Channels), l.Channels, 1, 4096);
        v.Range(P(K.Latents, K.SpatialScaleFactor), l.SpatialScaleFactor, 1, 1024);
        if (kind == PipelineKind.Image && l.TemporalCompression != 1)
            v.Error(P(K.Latents, K.TemporalCompression), "must be 1 for an image pipeline");
        else v.Range(P(K.Latents, K.TemporalCompression), l.TemporalCompression, 1, 1024);
        if (!(double.IsFinite(l.ScalingFactor) && l.ScalingFactor > 0))
            v.Error(P(K.Latents, K.ScalingFactor), "must be a positive number");
        if (!double.IsFinite(l.ShiftFactor)) v.Error(P(K.Latents, K.ShiftFactor), "must be a finite number");
    }

    private static void CheckSampler(Checker v, SamplerSettings s)
    {
        v.Range(P(K.Sampler, K.NumTrainTimesteps), s.NumTrainTimesteps, 1, 1_000_000);
        // Flow matching's σ grid is continuous (its NumTrainTimesteps only scales σ to the network's timestep).
        v.Range(P(K.Sampler, K.DefaultSteps), s.DefaultSteps, 1, s is FlowEulerSettings ? 1 << 20 : Math.Max(1, s.NumTrainTimesteps));
        switch (s)
        {
            case FlowEulerSettings f:
                if (!(double.IsFinite(f.Shift) && f.Shift > 0)) v.Error(P(K.Sampler, K.Shift), "must be a positive number");
                if (f.Dynamic is { } dyn && (dyn.MaxImageSeqLen == dyn.BaseImageSeqLen || !double.IsFinite(dyn.BaseShift) || !double.IsFinite(dyn.MaxShift)))
                    v.Error(P(K.Sampler, "dynamic_shift"), "needs finite shifts and max_image_seq_len ≠ base_image_seq_len");
                break;
            case DdimSettings d:
                if (!(d.BetaStart > 0 && d.BetaStart < 1)) v.Error(P(K.Sampler, K.BetaStart), "must lie in (0, 1)");
                if (!(d.BetaEnd > 0 && d.BetaEnd < 1)) v.Error(P(K.Sampler, K.BetaEnd), "must lie in (0, 1)");
                else if (d.BetaEnd < d.BetaStart) v.Error(P(K.Sampler, K.BetaEnd), $"must not be below '{K.BetaStart}'");
                if (!Enum.IsDefined(d.BetaSchedule)) v.Error(P(K.Sampler, K.BetaSchedule), $"unknown schedule {d.BetaSchedule}");
                v.Range(P(K.Sampler, K.StepsOffset), d.StepsOffset, 0, Math.Max(0, d.NumTrainTimesteps - 1));
                if (!Samplers.SamplerFactory.BetaFamily.Contains(d.DefaultScheduler))
                    v.Error(P(K.Sampler, K.DefaultScheduler), $"'{d.DefaultScheduler}' is not one of {string.Join(", ", Samplers.SamplerFactory.BetaFamily)}");
                if (d.NumTrainTimesteps >= 1 && d.DefaultSteps >= 1 && d.DefaultSteps <= d.NumTrainTimesteps
                    && d.StepsOffset >= 0 && d.StepsOffset < d.NumTrainTimesteps
                    && d.DefaultSteps > Samplers.DdimSampler.MaxStepsFor(d.NumTrainTimesteps, d.StepsOffset))
                    v.Error(P(K.Sampler, K.DefaultSteps),
                        $"at most {Samplers.DdimSampler.MaxStepsFor(d.NumTrainTimesteps, d.StepsOffset)} steps fit "
                        + $"{d.NumTrainTimesteps} training timesteps with a steps offset of {d.StepsOffset}");
                break;
            default:
                v.Error(K.Sampler, $"unsupported sampler settings {s.GetType().Name}");
                break;
        }
    }

    private static void CheckGuidance(Checker v, GuidanceSettings g)
    {
        var path = P(K.Guidance, K.DefaultScale);
        if (!(double.IsFinite(g.DefaultScale) && g.DefaultScale >= 0)) v.Error(path, "must be a number ≥ 0");
        else if (!g.Accepted && g.DefaultScale != 1.0)
            v.Error(path, $"must be 1 when '{K.ClassifierFree}' is false");
    }

    private static void CheckSize(Checker v, SizeConstraint s, PipelineKind kind, LatentSettings latents)
    {
        var multiple = P(K.Size, K.MultipleOf);
        v.Range(multiple, s.MultipleOf, 1, 65536);
        if (s.MultipleOf >= 1 && latents.SpatialScaleFactor >= 1 && s.MultipleOf % latents.SpatialScaleFactor != 0)
            v.Error(multiple, $"must be a multiple of the VAE scale factor {latents.SpatialScaleFactor}");
        CheckBounds(v, K.MinWidth, K.MaxWidth, s.MinWidth, s.MaxWidth, s.MultipleOf);
        CheckBounds(v, K.MinHeight, K.MaxHeight, s.MinHeight, s.MaxHeight, s.MultipleOf);

        if (kind == PipelineKind.Image)
        {
            if (s.MinFrames != 1) v.Error(P(K.Size, K.MinFrames), "must be 1 for an image pipeline");
            if (s.MaxFrames != 1) v.Error(P(K.Size, K.MaxFrames), "must be 1 for an image pipeline");
            return;
        }
        var before = v.Errors.Count;
        v.Range(P(K.Size, K.MinFrames), s.MinFrames, 1, 1_000_000);
        v.Range(P(K.Size, K.MaxFrames), s.MaxFrames, 1, 1_000_000);
        if (v.Errors.Count > before) return;
        var c = latents.TemporalCompression;
        if (s.MaxFrames < s.MinFrames) v.Error(P(K.Size, K.MaxFrames), $"must not be below '{K.MinFrames}'");
        else if (c >= 1 && (s.MaxFrames - 1) / c * c + 1 < s.MinFrames)
            v.Error(P(K.Size, K.MaxFrames),
                $"no frame count between {s.MinFrames} and {s.MaxFrames} is 1 more than a multiple of the temporal compression {c}");
    }

    private static void CheckBounds(Checker v, string minKey, string maxKey, int min, int max, int multiple)
    {
        var before = v.Errors.Count;
        v.Range(P(K.Size, minKey), min, 1, 1 << 20);
        v.Range(P(K.Size, maxKey), max, 1, 1 << 20);
        if (v.Errors.Count > before || multiple < 1) return;
        if (max < min) v.Error(P(K.Size, maxKey), $"must not be below '{minKey}'");
        else if (max / multiple * multiple < min)
            v.Error(P(K.Size, maxKey), $"no multiple of {multiple} lies between {min} and {max}");
    }

    private sealed class Checker(string? directory)
    {
        public List<ManifestError> Errors { get; } = [];

        public void Error(string path, string message) => Errors.Add(new ManifestError(path, message));

        public void NonEmpty(string path, string value)
        {
            if (string.IsNullOrWhiteSpace(value)) Error(path, "must not be empty");
        }

        public void Range(string path, int value, int min, int max)
        {
            if (value < min || value > max)
                Error(path, max == int.MaxValue ? $"must be at least {min}" : $"must be between {min} and {max}");
        }

        /// <summary>A relative path that stays inside the pipeline directory and, when a directory is known,
        /// names an existing file.</summary>
        public void File(string path, string relative)
        {
            if (string.IsNullOrWhiteSpace(relative))
            {
                Error(path, "must not be empty");
                return;
            }
            if (Path.IsPathRooted(relative) || relative.StartsWith('/') || relative.StartsWith('\\'))
            {
                Error(path, $"'{relative}' must be relative to the pipeline directory");
                return;
            }
            var depth = 0;
            foreach (var segment in relative.Split('/', '\\'))
            {
                depth += segment switch { ".." => -1, "" or "." => 0, _ => 1 };
                if (depth < 0)
                {
                    Error(path, $"'{relative}' leaves the pipeline directory");
                    return;
                }
            }
            if (directory is not null && !System.IO.File.Exists(PipelineManifest.ResolvePath(directory, relative)))
                Error(path, $"file '{relative}' does not exist");
        }
    }
}
