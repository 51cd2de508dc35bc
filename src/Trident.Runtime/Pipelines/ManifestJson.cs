// Reading and writing trident-pipeline.json.
//
// Design note: the reader never stops at the first problem. It walks the JSON with a reader per object that
// knows its JSON path, records every missing, mistyped, unknown or duplicate property, and substitutes a
// placeholder so that reading can go on. The finished record then goes through the same ManifestValidator
// that checks manifests built in code; validator findings under a path the reader already reported (the
// placeholders) are dropped, so each problem is reported once and all problems are reported together.
// Serialisation is hand-written with Utf8JsonWriter rather than reflection so that the JSON shape (snake_case,
// nesting, defaults) is stated in one place, next to the reader it must agree with.

using System.Text.Json;

namespace Trident.Runtime.Pipelines;

internal static class ManifestJson
{
    /// <summary>JSON property names and enumeration spellings, in one place for reader and writer.</summary>
    internal static class Keys
    {
        public const string FormatVersion = "format_version";
        public const string Name = "name";
        public const string Model = "model";
        public const string Kind = "kind";
        public const string Stages = "stages";
        public const string TextEncoder = "text_encoder";
        public const string Transformer = "transformer";
        public const string Unet = "unet";
        public const string VaeDecoder = "vae_decoder";
        public const string File = "file";
        public const string Inputs = "inputs";
        public const string Outputs = "outputs";
        public const string InputIds = "input_ids";
        public const string AttentionMask = "attention_mask";
        public const string LastHiddenState = "last_hidden_state";
        public const string Latents = "latents";
        public const string Timestep = "timestep";
        public const string EncoderHiddenStates = "encoder_hidden_states";
        public const string Prediction = "prediction";
        public const string Image = "image";
        public const string Tokenizer = "tokenizer";
        public const string Type = "type";
        public const string MaxLength = "max_length";
        public const string PadId = "pad_id";
        public const string BosId = "bos_id";
        public const string EosId = "eos_id";
        public const string Offset = "offset";
        public const string Vocab = "vocab";
        public const string Merges = "merges";
        public const string PadToken = "pad_token";
        public const string Channels = "channels";
        public const string SpatialScaleFactor = "spatial_scale_factor";
        public const string TemporalCompression = "temporal_compression";
        public const string ScalingFactor = "scaling_factor";
        public const string ShiftFactor = "shift_factor";
        public const string Sampler = "sampler";
        public const string NumTrainTimesteps = "num_train_timesteps";
        public const string DefaultSteps = "default_steps";
        public const string Shift = "shift";
        public const string BetaStart = "beta_start";
        public const string BetaEnd = "beta_end";
        public const string BetaSchedule = "beta_schedule";
        public const string StepsOffset = "steps_offset";
        public const string SetAlphaToOne = "set_alpha_to_one";
        public const string PredictionType = "prediction_type";
        public const string DefaultScheduler = "default_scheduler";
        public const string Guidance = "guidance";
        public const string ClassifierFree = "classifier_free";
        public const string DefaultScale = "default_scale";
        public const string Size = "size";
        public const string MultipleOf = "multiple_of";
        public const string MinWidth = "min_width";
        public const string MaxWidth = "max_width";
        public const string MinHeight = "min_height";
        public const string MaxHeight = "max_height";
        public const string MinFrames = "min_frames";
        public const string MaxFrames = "max_frames";
    }

    internal static readonly (string Name, PipelineKind Value)[] Kinds =
        [("image", PipelineKind.Image), ("video", PipelineKind.Video)];

    private enum TokenizerType { Byte, ClipBpe }

    private static readonly (string Name, TokenizerType Value)[] TokenizerTypes =
        [("byte", TokenizerType.Byte), ("clip-bpe", TokenizerType.ClipBpe)];

    private enum SamplerType { FlowEuler, Ddim }

    /// <summary>diffusers' spellings of <c>prediction_type</c>.</summary>
    internal static readonly (string Name, PredictionType Value)[] PredictionTypes =
        [("epsilon", PredictionType.Epsilon), ("v_prediction", PredictionType.VPrediction)];

    private static readonly (string Name, SamplerType Value)[] SamplerTypes =
        [("flow-euler", SamplerType.FlowEuler), ("ddim", SamplerType.Ddim)];

    internal static readonly (string Name, BetaSchedule Value)[] BetaSchedules =
        [("linear", BetaSchedule.Linear), ("scaled_linear", BetaSchedule.ScaledLinear)];

    // Defaults of optional properties (documented in docs/pipeline-manifest.md).
    internal const int DefaultNumTrainTimesteps = 1000;
    internal const string DefaultClipPadToken = "<|endoftext|>";
    internal static readonly DdimSettings DdimDefaults = new(1000, 50, 0.00085, 0.012, BetaSchedule.ScaledLinear, 1, false);

    /// <summary>Stage key in the JSON for a denoiser architecture.</summary>
    internal static string DenoiserKey(DenoiserArchitecture a) =>
        a == DenoiserArchitecture.Transformer ? Keys.Transformer : Keys.Unet;

    /// <summary>Parses and validates; returns the manifest (null when it could not be built) and every error.</summary>
    public static (PipelineManifest? Manifest, IReadOnlyList<ManifestError> Errors) Read(ReadOnlySpan<byte> utf8Json, string? directory)
    {
        var errors = new List<ManifestError>();
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            document = JsonDocument.ParseValue(ref reader);
            // ParseValue stops after the first value: anything but comments and white space after it (a second object,
            // a stray bracket from a hand edit) is refused, not silently dropped
            var end = reader.BytesConsumed;
            bool more;
            try
            {
                more = reader.Read();
            }
            catch (JsonException)
            {
                more = true;
            }
            if (more)
            {
                document.Dispose();
                var (line, column) = Position(utf8Json, end);
                return (null, [new ManifestError("$", $"not valid JSON: content after the manifest's closing '}}' (line {line}, column {column})")]);
            }
        }
        catch (JsonException e)
        {
            return (null, [new ManifestError("$", $"not valid JSON: {e.Message}")]);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                return (null, [new ManifestError("$", "must be a JSON object")]);

            var root = new ObjectReader(document.RootElement, "$", errors);
            var manifest = ReadManifest(root);
            var readErrors = errors.ToList();
            foreach (var e in ManifestValidator.Validate(manifest, directory))
                if (!readErrors.Any(r => Covers(r.Path, e.Path))) errors.Add(e);
            return (manifest, errors);
        }
    }

    // 1-based line and column of the first byte after `offset` that is not white space (what follows the first value).
    private static (int Line, int Column) Position(ReadOnlySpan<byte> utf8, long offset)
    {
        var at = (int)offset;
        while (at < utf8.Length && utf8[at] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') at++;
        var before = utf8[..Math.Min(at, utf8.Length)];
        var line = 1 + before.Count((byte)'\n');
        var column = at - (before.LastIndexOf((byte)'\n') + 1) + 1;
        return (line, column);
    }

    private static bool Covers(string reported, string path) =>
        path == reported || path.StartsWith(reported + ".", StringComparison.Ordinal);

    private static PipelineManifest ReadManifest(ObjectReader root)
    {
        var version = root.Int(Keys.FormatVersion);
        if (root.Has(Keys.FormatVersion) && version != PipelineManifest.FormatVersion)
            root.Error(Keys.FormatVersion, $"unsupported format version {version}; this build reads version {PipelineManifest.FormatVersion}");
        var name = root.String(Keys.Name);
        var model = root.String(Keys.Model);
        var kind = root.Choice(Keys.Kind, Kinds, PipelineKind.Image);
        var stages = ReadStages(root.Object(Keys.Stages));
        var tokenizer = ReadTokenizer(root.Object(Keys.Tokenizer));
        var latents = ReadLatents(root.Object(Keys.Latents));
        var sampler = ReadSampler(root.Object(Keys.Sampler));
        var guidance = ReadGuidance(root.Object(Keys.Guidance));
        var size = ReadSize(root.Object(Keys.Size), kind);
        root.Finish();
        return new PipelineManifest(name, model, kind, stages, tokenizer, latents, sampler, guidance, size);
    }

    private static PipelineStages ReadStages(ObjectReader stages)
    {
        var textEncoder = ReadTextEncoder(stages.Object(Keys.TextEncoder));

        DenoiserStage denoiser;
        var hasTransformer = stages.Has(Keys.Transformer);
        var hasUnet = stages.Has(Keys.Unet);
        if (hasTransformer && hasUnet)
            stages.Error(Keys.Unet, $"give either '{Keys.Transformer}' or '{Keys.Unet}', not both");
        if (hasUnet && !hasTransformer)
            denoiser = ReadDenoiser(stages.Object(Keys.Unet), DenoiserArchitecture.Unet);
        else
        {
            if (!hasTransformer && stages.IsPresent)
                stages.Error(Keys.Transformer, $"required (or give a '{Keys.Unet}' stage instead)");
            denoiser = ReadDenoiser(stages.OptionalObject(Keys.Transformer), DenoiserArchitecture.Transformer);
        }
        if (hasTransformer && hasUnet) stages.MarkSeen(Keys.Unet);

        var vae = ReadVaeDecoder(stages.Object(Keys.VaeDecoder));
        stages.Finish();
        return new PipelineStages(textEncoder, denoiser, vae);
    }

    private static TextEncoderStage ReadTextEncoder(ObjectReader stage)
    {
        var file = stage.String(Keys.File);
        var inputs = stage.Object(Keys.Inputs);
        var inputIds = inputs.String(Keys.InputIds);
        var mask = inputs.OptionalString(Keys.AttentionMask);
        inputs.Finish();
        var outputs = stage.Object(Keys.Outputs);
        var hidden = outputs.String(Keys.LastHiddenState);
        outputs.Finish();
        stage.Finish();
        return new TextEncoderStage(file, inputIds, mask, hidden);
    }

    private static DenoiserStage ReadDenoiser(ObjectReader stage, DenoiserArchitecture architecture)
    {
        var file = stage.String(Keys.File);
        var inputs = stage.Object(Keys.Inputs);
        var latents = inputs.String(Keys.Latents);
        var timestep = inputs.String(Keys.Timestep);
        var text = inputs.String(Keys.EncoderHiddenStates);
        inputs.Finish();
        var outputs = stage.Object(Keys.Outputs);
        var prediction = outputs.String(Keys.Prediction);
        outputs.Finish();
        stage.Finish();
        return new DenoiserStage(architecture, file, latents, timestep, text, prediction);
    }

    private static VaeDecoderStage ReadVaeDecoder(ObjectReader stage)
    {
        var file = stage.String(Keys.File);
        var inputs = stage.Object(Keys.Inputs);
        var latents = inputs.String(Keys.Latents);
        inputs.Finish();
        var outputs = stage.Object(Keys.Outputs);
        var image = outputs.String(Keys.Image);
        outputs.Finish();
        stage.Finish();
        return new VaeDecoderStage(file, latents, image);
    }

    private static TokenizerSettings ReadTokenizer(ObjectReader tokenizer)
    {
        var type = tokenizer.Choice(Keys.Type, TokenizerTypes, TokenizerType.Byte);
        var maxLength = tokenizer.Int(Keys.MaxLength);
        TokenizerSettings result;
        if (type == TokenizerType.Byte)
        {
            var d = ByteTokenizerSettings.WithDefaults(maxLength);
            result = new ByteTokenizerSettings(
                maxLength,
                tokenizer.Int(Keys.PadId, d.PadId),
                tokenizer.Int(Keys.BosId, d.BosId),
                tokenizer.Int(Keys.EosId, d.EosId),
                tokenizer.Int(Keys.Offset, d.Offset));
        }
        else
        {
            result = new ClipBpeTokenizerSettings(
                maxLength,
                tokenizer.String(Keys.Vocab),
                tokenizer.String(Keys.Merges),
                tokenizer.String(Keys.PadToken, DefaultClipPadToken));
        }
        // With an unknown type the other properties cannot be judged; the type error says enough.
        if (!tokenizer.IsChoice(Keys.Type, TokenizerTypes)) tokenizer.MarkAllSeen();
        tokenizer.Finish($"not a setting of the '{Name(TokenizerTypes, type)}' tokenizer");
        return result;
    }

    private static LatentSettings ReadLatents(ObjectReader latents)
    {
        var result = new LatentSettings(
            latents.Int(Keys.Channels),
            latents.Int(Keys.SpatialScaleFactor),
            latents.Int(Keys.TemporalCompression, 1),
            latents.Number(Keys.ScalingFactor),
            latents.Number(Keys.ShiftFactor, 0.0));
        latents.Finish();
        return result;
    }

    private static SamplerSettings ReadSampler(ObjectReader sampler)
    {
        var type = sampler.Choice(Keys.Type, SamplerTypes, SamplerType.FlowEuler);
        var trainSteps = sampler.Int(Keys.NumTrainTimesteps, DefaultNumTrainTimesteps);
        var defaultSteps = sampler.Int(Keys.DefaultSteps);
        SamplerSettings result;
        if (type == SamplerType.FlowEuler)
            result = new FlowEulerSettings(trainSteps, defaultSteps, sampler.Number(Keys.Shift, 1.0));
        else
        {
            var d = DdimDefaults;
            result = new DdimSettings(
                trainSteps,
                defaultSteps,
                sampler.Number(Keys.BetaStart, d.BetaStart),
                sampler.Number(Keys.BetaEnd, d.BetaEnd),
                sampler.Choice(Keys.BetaSchedule, BetaSchedules, d.BetaSchedule, d.BetaSchedule),
                sampler.Int(Keys.StepsOffset, d.StepsOffset),
                sampler.Bool(Keys.SetAlphaToOne, d.SetAlphaToOne),
                sampler.Choice(Keys.PredictionType, PredictionTypes, d.PredictionType, d.PredictionType),
                Samplers.SamplerFactory.BetaFamily[sampler.Choice(Keys.DefaultScheduler, [.. Samplers.SamplerFactory.BetaFamily.Select((n, i) => (n, i))], 0, 0)]);
        }
        if (!sampler.IsChoice(Keys.Type, SamplerTypes)) sampler.MarkAllSeen();
        sampler.Finish($"not a parameter of the '{Name(SamplerTypes, type)}' sampler");
        return result;
    }

    private static GuidanceSettings ReadGuidance(ObjectReader guidance)
    {
        var result = new GuidanceSettings(guidance.Bool(Keys.ClassifierFree), guidance.Number(Keys.DefaultScale, 1.0));
        guidance.Finish();
        return result;
    }

    private static SizeConstraint ReadSize(ObjectReader size, PipelineKind kind)
    {
        var multiple = size.Int(Keys.MultipleOf);
        var minW = size.Int(Keys.MinWidth);
        var maxW = size.Int(Keys.MaxWidth);
        var minH = size.Int(Keys.MinHeight);
        var maxH = size.Int(Keys.MaxHeight);
        // Frame bounds are optional for images (always 1) and required for videos.
        var minF = kind == PipelineKind.Image ? size.Int(Keys.MinFrames, 1) : size.Int(Keys.MinFrames);
        var maxF = kind == PipelineKind.Image ? size.Int(Keys.MaxFrames, 1) : size.Int(Keys.MaxFrames);
        size.Finish();
        return new SizeConstraint(multiple, minW, maxW, minH, maxH, minF, maxF);
    }

    internal static string Name<T>((string Name, T Value)[] table, T value) where T : struct, Enum =>
        table.First(e => EqualityComparer<T>.Default.Equals(e.Value, value)).Name;

    /// <summary>Serialises a manifest (assumed valid) as indented UTF-8 JSON, every property explicit.</summary>
    public static byte[] Write(PipelineManifest m)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber(Keys.FormatVersion, PipelineManifest.FormatVersion);
            w.WriteString(Keys.Name, m.Name);
            w.WriteString(Keys.Model, m.Model);
            w.WriteString(Keys.Kind, Name(Kinds, m.Kind));

            w.WriteStartObject(Keys.Stages);
            var te = m.Stages.TextEncoder;
            w.WriteStartObject(Keys.TextEncoder);
            w.WriteString(Keys.File, te.File);
            w.WriteStartObject(Keys.Inputs);
            w.WriteString(Keys.InputIds, te.InputIds);
            if (te.AttentionMask is not null) w.WriteString(Keys.AttentionMask, te.AttentionMask);
            w.WriteEndObject();
            w.WriteStartObject(Keys.Outputs);
            w.WriteString(Keys.LastHiddenState, te.LastHiddenState);
            w.WriteEndObject();
            w.WriteEndObject();

            var dn = m.Stages.Denoiser;
            w.WriteStartObject(DenoiserKey(dn.Architecture));
            w.WriteString(Keys.File, dn.File);
            w.WriteStartObject(Keys.Inputs);
            w.WriteString(Keys.Latents, dn.Latents);
            w.WriteString(Keys.Timestep, dn.Timestep);
            w.WriteString(Keys.EncoderHiddenStates, dn.EncoderHiddenStates);
            w.WriteEndObject();
            w.WriteStartObject(Keys.Outputs);
            w.WriteString(Keys.Prediction, dn.Prediction);
            w.WriteEndObject();
            w.WriteEndObject();

            var vae = m.Stages.VaeDecoder;
            w.WriteStartObject(Keys.VaeDecoder);
            w.WriteString(Keys.File, vae.File);
            w.WriteStartObject(Keys.Inputs);
            w.WriteString(Keys.Latents, vae.Latents);
            w.WriteEndObject();
            w.WriteStartObject(Keys.Outputs);
            w.WriteString(Keys.Image, vae.Image);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndObject();

            w.WriteStartObject(Keys.Tokenizer);
            switch (m.Tokenizer)
            {
                case ByteTokenizerSettings b:
                    w.WriteString(Keys.Type, Name(TokenizerTypes, TokenizerType.Byte));
                    w.WriteNumber(Keys.MaxLength, b.MaxLength);
                    w.WriteNumber(Keys.PadId, b.PadId);
                    w.WriteNumber(Keys.BosId, b.BosId);
                    w.WriteNumber(Keys.EosId, b.EosId);
                    w.WriteNumber(Keys.Offset, b.Offset);
                    break;
                case ClipBpeTokenizerSettings c:
                    w.WriteString(Keys.Type, Name(TokenizerTypes, TokenizerType.ClipBpe));
                    w.WriteNumber(Keys.MaxLength, c.MaxLength);
                    w.WriteString(Keys.Vocab, c.Vocab);
                    w.WriteString(Keys.Merges, c.Merges);
                    w.WriteString(Keys.PadToken, c.PadToken);
                    break;
                default:
                    throw new NotSupportedException($"tokenizer settings {m.Tokenizer.GetType().Name}");
            }
            w.WriteEndObject();

            w.WriteStartObject(Keys.Latents);
            w.WriteNumber(Keys.Channels, m.Latents.Channels);
            w.WriteNumber(Keys.SpatialScaleFactor, m.Latents.SpatialScaleFactor);
            w.WriteNumber(Keys.TemporalCompression, m.Latents.TemporalCompression);
            w.WriteNumber(Keys.ScalingFactor, m.Latents.ScalingFactor);
            w.WriteNumber(Keys.ShiftFactor, m.Latents.ShiftFactor);
            w.WriteEndObject();

            w.WriteStartObject(Keys.Sampler);
            switch (m.Sampler)
            {
                case FlowEulerSettings f:
                    w.WriteString(Keys.Type, Name(SamplerTypes, SamplerType.FlowEuler));
                    w.WriteNumber(Keys.NumTrainTimesteps, f.NumTrainTimesteps);
                    w.WriteNumber(Keys.DefaultSteps, f.DefaultSteps);
                    w.WriteNumber(Keys.Shift, f.Shift);
                    break;
                case DdimSettings d:
                    w.WriteString(Keys.Type, Name(SamplerTypes, SamplerType.Ddim));
                    w.WriteNumber(Keys.NumTrainTimesteps, d.NumTrainTimesteps);
                    w.WriteNumber(Keys.DefaultSteps, d.DefaultSteps);
                    w.WriteNumber(Keys.BetaStart, d.BetaStart);
                    w.WriteNumber(Keys.BetaEnd, d.BetaEnd);
                    w.WriteString(Keys.BetaSchedule, Name(BetaSchedules, d.BetaSchedule));
                    w.WriteNumber(Keys.StepsOffset, d.StepsOffset);
                    w.WriteBoolean(Keys.SetAlphaToOne, d.SetAlphaToOne);
                    w.WriteString(Keys.PredictionType, Name(PredictionTypes, d.PredictionType));
                    w.WriteString(Keys.DefaultScheduler, d.DefaultScheduler);
                    break;
                default:
                    throw new NotSupportedException($"sampler settings {m.Sampler.GetType().Name}");
            }
            w.WriteEndObject();

            w.WriteStartObject(Keys.Guidance);
            w.WriteBoolean(Keys.ClassifierFree, m.Guidance.ClassifierFree);
            w.WriteNumber(Keys.DefaultScale, m.Guidance.DefaultScale);
            w.WriteEndObject();

            w.WriteStartObject(Keys.Size);
            w.WriteNumber(Keys.MultipleOf, m.Size.MultipleOf);
            w.WriteNumber(Keys.MinWidth, m.Size.MinWidth);
            w.WriteNumber(Keys.MaxWidth, m.Size.MaxWidth);
            w.WriteNumber(Keys.MinHeight, m.Size.MinHeight);
            w.WriteNumber(Keys.MaxHeight, m.Size.MaxHeight);
            w.WriteNumber(Keys.MinFrames, m.Size.MinFrames);
            w.WriteNumber(Keys.MaxFrames, m.Size.MaxFrames);
            w.WriteEndObject();

            w.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>
    /// Reads one JSON object, tracking its path. A reader over a missing or mistyped object is "absent": its
    /// getters return placeholders without reporting, since the parent already reported the object itself.
    /// </summary>
    private sealed class ObjectReader
    {
        private readonly Dictionary<string, JsonElement> _properties = new(StringComparer.Ordinal);
        private readonly List<string> _order = [];
        private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
        private readonly List<ManifestError> _errors;
        private readonly string _path;

        public ObjectReader(JsonElement? element, string path, List<ManifestError> errors)
        {
            _path = path;
            _errors = errors;
            IsPresent = element is not null;
            if (element is not { } e) return;
            foreach (var p in e.EnumerateObject())
            {
                if (_properties.ContainsKey(p.Name)) Error(p.Name, "duplicate property");
                else
                {
                    _properties[p.Name] = p.Value;
                    _order.Add(p.Name);
                }
            }
        }

        /// <summary>False for the placeholder reader of a missing object.</summary>
        public bool IsPresent { get; }

        private string ChildPath(string key) => _path == "$" ? key : $"{_path}.{key}";

        public void Error(string key, string message) => _errors.Add(new ManifestError(ChildPath(key), message));

        public bool Has(string key) => _properties.ContainsKey(key);

        public void MarkSeen(string key) => _seen.Add(key);

        public void MarkAllSeen() => _seen.UnionWith(_order);

        /// <summary>Whether the property holds one of the names in <paramref name="choices"/> (reports nothing).</summary>
        public bool IsChoice<T>(string key, (string Name, T Value)[] choices) =>
            _properties.TryGetValue(key, out var v) && v.ValueKind == JsonValueKind.String
            && choices.Any(c => c.Name == v.GetString());

        /// <summary>The property, or null when absent; reports "required" when <paramref name="required"/>.
        /// JSON null counts as absent.</summary>
        private JsonElement? Get(string key, bool required)
        {
            _seen.Add(key);
            if (_properties.TryGetValue(key, out var value) && value.ValueKind != JsonValueKind.Null) return value;
            if (required && IsPresent) Error(key, "required");
            return null;
        }

        public string String(string key) => StringCore(key, required: true) ?? "";

        public string String(string key, string fallback) => StringCore(key, required: false) ?? fallback;

        public string? OptionalString(string key) => StringCore(key, required: false);

        private string? StringCore(string key, bool required)
        {
            if (Get(key, required) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.String) return v.GetString();
            Error(key, "must be a string");
            return null;
        }

        public int Int(string key) => IntCore(key, required: true) ?? 0;

        public int Int(string key, int fallback) => IntCore(key, required: false) ?? fallback;

        private int? IntCore(string key, bool required)
        {
            if (Get(key, required) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i)) return i;
            Error(key, "must be an integer");
            return null;
        }

        public double Number(string key) => NumberCore(key, required: true) ?? 0;

        public double Number(string key, double fallback) => NumberCore(key, required: false) ?? fallback;

        private double? NumberCore(string key, bool required)
        {
            if (Get(key, required) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d)) return d;
            Error(key, "must be a number");
            return null;
        }

        public bool Bool(string key) => BoolCore(key, required: true) ?? false;

        public bool Bool(string key, bool fallback) => BoolCore(key, required: false) ?? fallback;

        private bool? BoolCore(string key, bool required)
        {
            if (Get(key, required) is not { } v) return null;
            if (v.ValueKind is JsonValueKind.True or JsonValueKind.False) return v.GetBoolean();
            Error(key, "must be true or false");
            return null;
        }

        /// <summary>A required string from a fixed set; <paramref name="placeholder"/> when missing or wrong.</summary>
        public T Choice<T>(string key, (string Name, T Value)[] choices, T placeholder) where T : struct
        {
            var s = StringCore(key, required: true);
            return s is null ? placeholder : Match(key, s, choices, placeholder);
        }

        /// <summary>An optional string from a fixed set, <paramref name="fallback"/> when absent.</summary>
        public T Choice<T>(string key, (string Name, T Value)[] choices, T placeholder, T fallback) where T : struct
        {
            var s = StringCore(key, required: false);
            return s is null ? fallback : Match(key, s, choices, placeholder);
        }

        private T Match<T>(string key, string s, (string Name, T Value)[] choices, T placeholder)
        {
            foreach (var (name, value) in choices)
                if (name == s) return value;
            Error(key, $"'{s}' is not one of {string.Join(", ", choices.Select(c => $"'{c.Name}'"))}");
            return placeholder;
        }

        /// <summary>A required nested object; an absent reader when it is missing or not an object.</summary>
        public ObjectReader Object(string key) => ObjectCore(key, required: true);

        /// <summary>An optional nested object; an absent reader (no error) when missing.</summary>
        public ObjectReader OptionalObject(string key) => ObjectCore(key, required: false);

        private ObjectReader ObjectCore(string key, bool required)
        {
            var v = Get(key, required);
            if (v is { ValueKind: not JsonValueKind.Object })
            {
                Error(key, "must be an object");
                v = null;
            }
            return new ObjectReader(v, ChildPath(key), _errors);
        }

        /// <summary>Reports every property that no getter asked for.</summary>
        public void Finish(string message = "unknown property")
        {
            foreach (var key in _order)
                if (!_seen.Contains(key)) Error(key, message);
        }
    }
}
