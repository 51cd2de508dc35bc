// The bundled tiny pipeline: a small but structurally faithful text-to-video pipeline written from a seed.
//
// Design note. Real weights cannot be downloaded here (design §8), so Trident writes its own pipeline in the
// diffusers/Optimum ONNX layout, with its trident-pipeline.json:
//     text_encoder/model.onnx    byte-token transformer                      (TinyModels.TextEncoder)
//     transformer/model.onnx     video DiT, patch 2, adaLN, cross-attention  (TinyModels.Transformer)
//     vae_decoder/model.onnx     per-frame conv decoder, ×8 upsampling        (TinyModels.VaeDecoder)
// The kind is `video` with frames 1–9 and temporal compression 1: one frame is an image (written as a plain
// PNG), more are a video (an APNG), so both paths run on one pipeline. Sampler: flow-matching Euler (shift 3,
// 8 default steps); classifier-free guidance (default scale 4); 16 latent channels, VAE factor 8; sizes
// 64–1024 in multiples of 16 (VAE 8 × patch 2).
// Weights come from DeterministicWeights seeded by (seed, "<stage>/<parameter name>"), and the writer emits
// nothing that depends on time or hash order, so the same seed gives byte-identical files; a test pins it.
// Sizes were chosen so that a 256×256, 8-step image with guidance takes about a second on a 2-core machine
// (docs/runtime.md has the measured numbers), with attention over frames × patches tokens so cost grows
// quadratically in tokens, as in real DiTs.

using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using Trident.Runtime.Onnx.ModelWriter;

namespace Trident.Runtime.Pipelines.Tiny;

/// <summary>The dimensions of the tiny pipeline's networks.</summary>
public sealed record TinyPipelineSpec
{
    /// <summary>Token-id sequence length (CLIP's 77).</summary>
    public int MaxTokens { get; init; } = 77;

    /// <summary>Token vocabulary: 256 bytes plus PAD, BOS, EOS (the byte tokenizer's defaults).</summary>
    public int VocabularySize { get; init; } = 259;

    /// <summary>Width of the text encoder and of its output embeddings.</summary>
    public int TextWidth { get; init; } = 256;

    /// <summary>Transformer layers of the text encoder.</summary>
    public int TextLayers { get; init; } = 2;

    /// <summary>Attention heads of the text encoder.</summary>
    public int TextHeads { get; init; } = 4;

    /// <summary>Width d of the DiT.</summary>
    public int ModelWidth { get; init; } = 256;

    /// <summary>DiT blocks.</summary>
    public int Depth { get; init; } = 6;

    /// <summary>DiT attention heads.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>MLP hidden width as a multiple of the model width.</summary>
    public int MlpRatio { get; init; } = 4;

    /// <summary>Sinusoidal timestep features.</summary>
    public int TimestepFeatures { get; init; } = 256;

    /// <summary>Latent channels (16, as SD3/Flux).</summary>
    public int LatentChannels { get; init; } = 16;

    /// <summary>DiT patch size along height and width.</summary>
    public int PatchSize { get; init; } = 2;

    /// <summary>Decoder channels: after conv_in, then after each 2× upsampling stage (3 stages: ×8).</summary>
    public IReadOnlyList<int> DecoderChannels { get; init; } = [128, 128, 64, 32];

    /// <summary>GroupNorm groups in the decoder.</summary>
    public int GroupNormGroups { get; init; } = 8;

    /// <summary>The pipeline Trident bundles.</summary>
    public static TinyPipelineSpec Default { get; } = new();

    /// <summary>Pixels per latent cell: 2^(upsampling stages).</summary>
    public int SpatialScaleFactor => 1 << (DecoderChannels.Count - 1);
}

/// <summary>One file of a written pipeline.</summary>
/// <param name="RelativePath">Path inside the pipeline directory, with '/'.</param>
/// <param name="Bytes">File size.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the contents.</param>
public sealed record PipelineFile(string RelativePath, long Bytes, string Sha256);

/// <summary>Writes the bundled tiny pipeline.</summary>
public static class TinyPipeline
{
    /// <summary>Bumped whenever the written files change for a given seed, so cached copies are rewritten.</summary>
    public const int GeneratorVersion = 2;

    /// <summary>The pipeline's and the profile's model name.</summary>
    public const string Name = "tiny";

    /// <summary>The name of the float16 variant: the same networks with float16 weights, inputs and outputs
    /// (Float16Conversion; compute stays float32 inside, so it runs on the CPU provider too).</summary>
    public const string Float16Name = "tiny-fp16";

    internal const string InputIds = "input_ids";
    internal const string LastHiddenState = "last_hidden_state";
    internal const string HiddenStates = "hidden_states";
    internal const string Timestep = "timestep";
    internal const string EncoderHiddenStates = "encoder_hidden_states";
    internal const string OutSample = "out_sample";
    internal const string LatentSample = "latent_sample";
    internal const string Sample = "sample";

    private const string TextEncoderFile = "text_encoder/model.onnx";
    private const string TransformerFile = "transformer/model.onnx";
    private const string VaeDecoderFile = "vae_decoder/model.onnx";
    private const string StampFile = ".trident-tiny";

    /// <summary>The manifest of the tiny pipeline.</summary>
    public static PipelineManifest Manifest(TinyPipelineSpec? spec = null, bool float16 = false)
    {
        spec ??= TinyPipelineSpec.Default;
        var multiple = spec.SpatialScaleFactor * spec.PatchSize;
        var name = float16 ? Float16Name : Name;
        return new PipelineManifest(
            name,
            name,
            PipelineKind.Video,
            new PipelineStages(
                new TextEncoderStage(TextEncoderFile, InputIds, null, LastHiddenState),
                new DenoiserStage(DenoiserArchitecture.Transformer, TransformerFile, HiddenStates, Timestep, EncoderHiddenStates, OutSample),
                new VaeDecoderStage(VaeDecoderFile, LatentSample, Sample)),
            ByteTokenizerSettings.WithDefaults(spec.MaxTokens),
            new LatentSettings(spec.LatentChannels, spec.SpatialScaleFactor, TemporalCompression: 1, ScalingFactor: 1.5305, ShiftFactor: 0.0609),
            new FlowEulerSettings(NumTrainTimesteps: 1000, DefaultSteps: 8, Shift: 3.0),
            new GuidanceSettings(ClassifierFree: true, DefaultScale: 4.0),
            new SizeConstraint(multiple, 64, 1024, 64, 1024, MinFrames: 1, MaxFrames: 9));
    }

    /// <summary>
    /// Writes the pipeline for <paramref name="seed"/> into <paramref name="directory"/> (created if missing;
    /// files of the same names are overwritten) and returns its files with sizes and hashes, manifest first.
    /// </summary>
    /// <param name="directory">Where to write (created if missing).</param>
    /// <param name="seed">Seed of the random weights: the same seed writes the same bytes.</param>
    /// <param name="spec">The sizes of the pipeline (the bundled tiny pipeline's when null).</param>
    /// <param name="float16">Write the float16 variant (<see cref="Float16Name"/>): the same weights rounded to float16.</param>
    public static IReadOnlyList<PipelineFile> Write(string directory, ulong seed, TinyPipelineSpec? spec = null, bool float16 = false)
    {
        spec ??= TinyPipelineSpec.Default;
        var manifest = Manifest(spec, float16);
        var weights = DeterministicWeights.FanInNormal(seed);
        WeightInit For(string stage) => (name, shape, fanIn) => weights(stage + "/" + name, shape, fanIn);
        byte[] Bytes(GraphBuilder g) => float16 ? Float16Conversion.ToFloat16(g.Build()).ToByteArray() : g.ToBytes();

        var files = new List<(string Path, byte[] Bytes)>
        {
            (PipelineManifest.FileName, manifest.ToJson()),
            (TextEncoderFile, Bytes(TinyModels.TextEncoder(spec, For("text_encoder")))),
            (TransformerFile, Bytes(TinyModels.Transformer(spec, For("transformer")))),
            (VaeDecoderFile, Bytes(TinyModels.VaeDecoder(spec, For("vae_decoder")))),
        };
        var result = new List<PipelineFile>(files.Count);
        foreach (var (relative, bytes) in files)
        {
            var full = PipelineManifest.ResolvePath(directory, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllBytes(full, bytes);
            result.Add(new PipelineFile(relative, bytes.LongLength, Convert.ToHexStringLower(SHA256.HashData(bytes))));
        }
        return result;
    }

    /// <summary>
    /// The directory of the tiny pipeline for <paramref name="seed"/> under <paramref name="cacheRoot"/>
    /// (<c>tiny-&lt;seed&gt;</c>), written first when it is missing or was written by another generator
    /// version. Safe against concurrent callers: the pipeline is written to a fresh folder and moved into
    /// place, and a loser of that race uses the winner's copy.
    /// </summary>
    public static string EnsureCached(string cacheRoot, ulong seed, bool float16 = false)
    {
        var name = float16 ? Float16Name : Name;
        var directory = Path.Combine(cacheRoot, $"{name}-{seed}");
        var stamp = Stamp(seed, float16);
        if (IsCurrent(directory, stamp)) return directory;

        Directory.CreateDirectory(cacheRoot);
        var staging = Path.Combine(cacheRoot, $".{name}-{seed}.{Environment.ProcessId}.{Guid.NewGuid():N}");
        try
        {
            Write(staging, seed, float16: float16);
            File.WriteAllText(Path.Combine(staging, StampFile), stamp);
            if (Directory.Exists(directory) && !IsCurrent(directory, stamp)) Directory.Delete(directory, recursive: true);
            try
            {
                Directory.Move(staging, directory);
            }
            catch (IOException) when (IsCurrent(directory, stamp))
            {
                // Another process put a current copy in place first.
            }
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
        return directory;
    }

    private static string Stamp(ulong seed, bool float16) =>
        $"trident tiny pipeline{(float16 ? " (float16)" : "")}, generator {GeneratorVersion}, seed {seed}\n";

    private static bool IsCurrent(string directory, string stamp)
    {
        var path = Path.Combine(directory, StampFile);
        return File.Exists(path) && File.ReadAllText(path, Encoding.UTF8) == stamp
               && File.Exists(Path.Combine(directory, PipelineManifest.FileName));
    }
}
