// A pipeline directory opened for execution: its manifest, tokenizer and sampler, and ONNX Runtime sessions
// for its three stage models, created lazily.
//
// Design note. On CPU a device is a slot of cores and a diffuse task of degree k runs one session with k
// intra-op threads (design §8), so a session is keyed by (stage model, intra-op threads): the same pipeline
// may hold a 1-thread and a 2-thread denoiser session, each created on first use and kept until Dispose.
// Each session holds its own copy of the model's weights and its own intra-op thread pool, whose idle
// threads sleep rather than spin unless the provider says otherwise. The provider (CPU or one CUDA device) is
// the pipeline's: a session for k threads is created with provider.WithThreads(k), which changes nothing on
// CUDA. The sampler-step graphs of the device-resident diffuse loop are cached here too. Creation is
// thread-safe and happens once per key (a Lazy per key); a creation that throws is not cached — its Lazy is
// dropped, so the next use tries again and a model file that was broken and then restored heals the
// pipeline without a restart (a Lazy alone would rethrow the first error forever). Session.Run is itself thread-safe, so executors
// built over one LoadedPipeline may run on several threads at once. Two concurrent runs on one session share
// its thread pool, though, so a serving worker per device should own its own LoadedPipeline (or at least
// its own sessions), as a GPU would hold its own copy of the weights.

using System.Collections.Concurrent;
using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines;
using Trident.Runtime.Pipelines.Samplers;
using Trident.Runtime.Pipelines.Tokenizers;

namespace Trident.Runtime.Execution;

/// <summary>The model file of one pipeline stage.</summary>
public enum StageModel
{
    /// <summary>The text encoder (the encode stage).</summary>
    TextEncoder,

    /// <summary>The transformer or UNet (the diffuse stage).</summary>
    Denoiser,

    /// <summary>The VAE decoder (the decode stage).</summary>
    VaeDecoder,

    /// <summary>A second text encoder (SDXL's text_encoder_2), also run by the encode stage.</summary>
    TextEncoder2,

    /// <summary>A T5 text encoder (SD3's text_encoder_3), also run by the encode stage.</summary>
    TextEncoder3,
}

/// <summary>A pipeline directory with its manifest and lazily created ONNX Runtime sessions. Thread-safe;
/// disposing it releases every session it created.</summary>
public sealed class LoadedPipeline : IDisposable
{
    private readonly ConcurrentDictionary<(StageModel Model, int Threads), Lazy<Session>> sessions = new();
    private readonly ConcurrentDictionary<(int Rank, TensorElementType Type, bool Guided), Lazy<Session>> steps = new();
    private volatile bool disposed;

    private LoadedPipeline(string directory, PipelineManifest manifest, ExecutionProvider provider)
    {
        Directory = directory;
        Manifest = manifest;
        Provider = provider;
        // every tokenizer's files read, each problem named by its key; a tokenizer made before a failure is released
        var errors = new List<ManifestError>();
        ITokenizer? Read(TokenizerSettings? settings, string key)
        {
            if (settings is null) return null;
            try
            {
                return TokenizerFactory.Create(settings, directory);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                errors.Add(new ManifestError(key, $"its files cannot be read as a {TokenizerKind(settings)} tokenizer: {e.Message}"));
                return null;
            }
        }
        var tokenizer = Read(manifest.Tokenizer, "tokenizer");
        Tokenizer2 = Read(manifest.Tokenizer2, "tokenizer_2");
        Tokenizer3 = Read(manifest.Tokenizer3, "tokenizer_3");
        if (errors.Count > 0)
        {
            foreach (var made in new[] { tokenizer, Tokenizer2, Tokenizer3 }) (made as IDisposable)?.Dispose();
            throw new ManifestException($"pipeline {directory} (its tokenizer files)", errors);
        }
        Tokenizer = tokenizer!;
        Sampler = SamplerFactory.Create(manifest.Sampler);
    }

    private static string TokenizerKind(TokenizerSettings settings) => settings switch
    {
        ClipBpeTokenizerSettings => "CLIP BPE (vocab.json, merges.txt)",
        T5TokenizerSettings => "T5 SentencePiece",
        _ => "byte",
    };

    /// <summary>
    /// Opens the pipeline in <paramref name="directory"/>: loads and validates its manifest — trident-pipeline.json,
    /// or the diffusers/Optimum export recognised as it is (PipelineDirectory.LoadManifest) — every problem at
    /// once, as a <see cref="ManifestException"/>, and its tokenizer (a tokenizer file that cannot be read is a
    /// ManifestException too, under the key <c>tokenizer</c>). Sessions are created on first use.
    /// </summary>
    /// <param name="directory">The pipeline directory (holding trident-pipeline.json or model_index.json).</param>
    /// <param name="provider">Execution provider of every session (its thread count is replaced per session);
    /// the CPU, without spinning, when null.</param>
    public static LoadedPipeline Open(string directory, ExecutionProvider? provider = null)
    {
        var full = Path.GetFullPath(directory);
        var manifest = Pipelines.Export.PipelineDirectory.LoadManifest(full);
        return new LoadedPipeline(full, manifest, provider ?? new ExecutionProvider.Cpu());
    }

    /// <summary>The execution provider of this pipeline's sessions.</summary>
    public ExecutionProvider Provider { get; }

    /// <summary>The pipeline directory (absolute).</summary>
    public string Directory { get; }

    /// <summary>The validated manifest.</summary>
    public PipelineManifest Manifest { get; }

    /// <summary>The manifest's tokenizer (stateless or internally synchronised: safe to share).</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>The second encoder's tokenizer (SDXL's tokenizer_2), or null.</summary>
    public ITokenizer? Tokenizer2 { get; }

    /// <summary>The T5 encoder's tokenizer (SD3's tokenizer_3), or null. Disposed with the pipeline.</summary>
    public ITokenizer? Tokenizer3 { get; }

    /// <summary>The manifest's sampler (stateless: safe to share).</summary>
    public ISampler Sampler { get; }

    private readonly ConcurrentDictionary<string, ISampler> samplers = new(StringComparer.Ordinal);

    /// <summary>The sampler called <paramref name="scheduler"/> (SamplerFactory.Names of the manifest's sampler),
    /// over the manifest's training schedule; the manifest's own when null. Created once per name; samplers are
    /// stateless (a run's state is ISampler.Start's), so they are shared.</summary>
    /// <exception cref="ArgumentException">when the name is not one the manifest's sampler admits.</exception>
    public ISampler SamplerFor(string? scheduler) =>
        scheduler is null ? Sampler : samplers.GetOrAdd(scheduler, name => SamplerFactory.Create(Manifest.Sampler, name));

    /// <summary>The stage models this pipeline has, in StageModel order: the three, then TextEncoder2 and
    /// TextEncoder3 when the manifest names a second and a third (T5) text encoder.</summary>
    public IReadOnlyList<StageModel> Models =>
    [
        StageModel.TextEncoder, StageModel.Denoiser, StageModel.VaeDecoder,
        .. Manifest.Stages.TextEncoder2 is null ? (StageModel[])[] : [StageModel.TextEncoder2],
        .. Manifest.Stages.TextEncoder3 is null ? (StageModel[])[] : [StageModel.TextEncoder3],
    ];

    /// <summary>Absolute path of a stage's model file.</summary>
    public string ModelPath(StageModel model) => PipelineManifest.ResolvePath(Directory, ModelFile(model));

    // a stage model's file as the manifest names it, relative to the pipeline directory
    private string ModelFile(StageModel model) => model switch
    {
        StageModel.TextEncoder => Manifest.Stages.TextEncoder.File,
        StageModel.Denoiser => Manifest.Stages.Denoiser.File,
        StageModel.VaeDecoder => Manifest.Stages.VaeDecoder.File,
        StageModel.TextEncoder2 => Manifest.Stages.TextEncoder2?.File
            ?? throw new InvalidOperationException($"pipeline '{Manifest.Name}' has no second text encoder"),
        StageModel.TextEncoder3 => Manifest.Stages.TextEncoder3?.File
            ?? throw new InvalidOperationException($"pipeline '{Manifest.Name}' has no T5 text encoder"),
        _ => throw new ArgumentOutOfRangeException(nameof(model), model, "unknown stage model"),
    };

    /// <summary>
    /// The session of <paramref name="model"/> with <paramref name="intraOpThreads"/> intra-op threads,
    /// created on first use and owned by this pipeline (do not dispose it).
    /// </summary>
    public Session Session(StageModel model, int intraOpThreads)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(intraOpThreads, 1);
        var session = ValueOrForget(sessions, (Model: model, Threads: intraOpThreads),
            key => new Lazy<Session>(() => CreateSession(key.Model, key.Threads), LazyThreadSafetyMode.ExecutionAndPublication));
        if (disposed)
        {
            // Dispose ran while this session was being created: do not hand out a session nobody will release.
            session.Dispose();
            throw new ObjectDisposedException(nameof(LoadedPipeline));
        }
        return session;
    }

    /// <summary>The sampler-step graph (SamplerStepGraph) for latents of <paramref name="rank"/> in
    /// <paramref name="type"/>, on this pipeline's provider; created on first use and owned by the pipeline.</summary>
    internal Session StepSession(int rank, TensorElementType type, bool guided)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var session = ValueOrForget(steps, (Rank: rank, Type: type, Guided: guided), key => new Lazy<Session>(
            () => Onnx.Session.Load(SamplerStepGraph.Build(key.Rank, key.Type, key.Guided),
                new SessionSettings { Provider = Provider.WithThreads(1) }, "sampler step"),
            LazyThreadSafetyMode.ExecutionAndPublication));
        if (disposed)
        {
            session.Dispose();
            throw new ObjectDisposedException(nameof(LoadedPipeline));
        }
        return session;
    }

    // The session of `key`, created once; when creation throws, this exact Lazy is removed (not a newer one
    // another thread already added), so the error reaches this caller and the next caller loads again.
    private static Session ValueOrForget<TKey>(ConcurrentDictionary<TKey, Lazy<Session>> cache, TKey key, Func<TKey, Lazy<Session>> create)
        where TKey : notnull
    {
        var lazy = cache.GetOrAdd(key, create);
        try
        {
            return lazy.Value;
        }
        catch
        {
            cache.TryRemove(new KeyValuePair<TKey, Lazy<Session>>(key, lazy));
            throw;
        }
    }

    /// <summary>
    /// A new pipeline over the same directory, manifest and provider, with no sessions yet: the
    /// profiler measures each point on fresh sessions, and a server can open one per device this way.
    /// </summary>
    public LoadedPipeline Reopen()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return new LoadedPipeline(Directory, Manifest, Provider);
    }

    /// <summary>Whether the session of <paramref name="model"/> with <paramref name="intraOpThreads"/> threads exists
    /// (created and not failed).</summary>
    public bool HasSession(StageModel model, int intraOpThreads) =>
        sessions.TryGetValue((model, intraOpThreads), out var lazy) && lazy.IsValueCreated;

    /// <summary>
    /// Moves this pipeline's sessions of <paramref name="models"/> (those created, at any thread count) into a new
    /// pipeline over the same directory, manifest and provider, and returns it: the new pipeline owns and releases
    /// them, this one no longer holds them. A server hands the sessions <see cref="Verify"/> created to the device that
    /// runs those stages, so a model is not loaded a second time at start (for a GPU model of tens of GB, a second load
    /// of tens of seconds). Call it while no other thread creates sessions of those models on this pipeline.
    /// </summary>
    public LoadedPipeline Detach(IReadOnlyCollection<StageModel> models)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var taken = Reopen();
        foreach (var (key, lazy) in sessions)
            if (models.Contains(key.Model) && lazy.IsValueCreated && sessions.TryRemove(new KeyValuePair<(StageModel, int), Lazy<Session>>(key, lazy)))
                taken.sessions[key] = lazy;
        return taken;
    }

    /// <summary>
    /// Loads every stage model's session with <paramref name="intraOpThreads"/> threads (kept, as <see cref="Session"/>
    /// keeps them), checks their inputs and outputs against the manifest (<see cref="ModelSignatures"/>), and runs the
    /// text encoder once on one prompt to check the embeddings it makes against the denoiser's declared input — so that
    /// a model that does not load, an input the manifest names that the model lacks, a wrong type or rank, or stages
    /// that do not fit together are reported before the first request, not by it.
    /// </summary>
    /// <exception cref="ManifestException">listing every problem, each under the manifest key it concerns and naming the
    /// model file.</exception>
    /// <exception cref="ExecutionProviderException">when the provider cannot be added at all (CUDA without its libraries).</exception>
    public void Verify(int intraOpThreads = 1, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var errors = new List<ManifestError>();
        var signatures = new Dictionary<StageModel, ModelSignature>();
        foreach (var model in Models)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var file = ModelFile(model);
            try
            {
                signatures[model] = ModelSignature.Of(file, Session(model, intraOpThreads));
            }
            catch (ExecutionProviderException)
            {
                throw; // the device, not the model: reported as it is
            }
            catch (Exception e) when (e is OrtException or NotSupportedException or IOException or UnauthorizedAccessException)
            {
                errors.Add(new ManifestError(ModelSignatures.Key(Manifest, model) + ".file", $"'{file}' cannot be loaded as an ONNX model: {Reason(e)}"));
            }
        }
        errors.AddRange(ModelSignatures.Check(Manifest, m => signatures.GetValueOrDefault(m)));
        var encoders = Models.Where(m => m is StageModel.TextEncoder or StageModel.TextEncoder2 or StageModel.TextEncoder3).ToList();
        if (errors.Count == 0 && encoders.All(signatures.ContainsKey))
        {
            // one prompt through the encode stage as a request runs it: catches what metadata cannot say (a
            // tokenizer longer than the encoder's position table, ids beyond its vocabulary)
            try
            {
                var embeddings = new EncodeExecutor(this).Encode(["a pipeline check"], null, intraOpThreads, cancellationToken);
                errors.AddRange(ModelSignatures.CheckEmbeddings(Manifest, signatures[StageModel.Denoiser], embeddings.Tensor.Shape, embeddings.Pooled?.Shape));
            }
            catch (Exception e) when (e is OrtException or InvalidOperationException or NotSupportedException or KeyNotFoundException)
            {
                errors.Add(new ManifestError(ModelSignatures.Key(Manifest, StageModel.TextEncoder),
                    $"a run of the text encoder ({Manifest.Stages.TextEncoder.File}) on one prompt of tokenizer.max_length {Manifest.Tokenizer.MaxLength} tokens failed " +
                    $"(does the encoder take that many tokens, and ids of the tokenizer's vocabulary?): {Reason(e)}"));
            }
        }
        if (errors.Count > 0) throw new ManifestException($"pipeline {Directory} (its models against {ManifestSource})", errors);
    }

    // what went wrong, in ONNX Runtime's own words when it was ONNX Runtime
    private static string Reason(Exception e) => e is OrtException o ? $"ONNX Runtime {o.Code}: {o.OrtMessage}" : e.Message;

    private string ManifestSource =>
        File.Exists(System.IO.Path.Combine(Directory, PipelineManifest.FileName)) ? PipelineManifest.FileName : "the recognised export";

    private Session CreateSession(StageModel model, int intraOpThreads) =>
        Onnx.Session.Load(ModelPath(model), new SessionSettings { Provider = Provider.WithThreads(intraOpThreads) }, StageName(model));

    private static string StageName(StageModel model) => model switch
    {
        StageModel.TextEncoder => "text encoder",
        StageModel.Denoiser => "denoiser",
        StageModel.TextEncoder2 => "second text encoder",
        StageModel.TextEncoder3 => "T5 text encoder",
        _ => "VAE decoder",
    };

    /// <summary>Releases every session this pipeline created; runs in progress finish first.</summary>
    public void Dispose()
    {
        disposed = true;
        foreach (var lazy in sessions.Values)
            if (lazy.IsValueCreated) lazy.Value.Dispose();
        sessions.Clear();
        foreach (var lazy in steps.Values)
            if (lazy.IsValueCreated) lazy.Value.Dispose();
        steps.Clear();
        foreach (var tokenizer in new[] { Tokenizer, Tokenizer2, Tokenizer3 }) (tokenizer as IDisposable)?.Dispose();
    }
}
