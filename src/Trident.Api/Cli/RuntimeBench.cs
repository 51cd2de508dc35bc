using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Trident.Runtime.Execution;
using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines.Samplers;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident bench runtime</c>: the paired overhead of the serving path over raw ONNX Runtime runs.
/// </summary>
/// <remarks>
/// Design note. "raw" is the ONNX Runtime work of one generation done directly on <c>InferenceSession</c>s of the
/// same model files with the same session options: the text encoder once, the denoiser once per step (the
/// 2-row batch with guidance), the decoder once, on inputs prepared beforehand (the same token ids, noise,
/// embeddings and latents) and preallocated outputs — the least any runtime could do. "serving" is
/// <c>Generation.Run</c>, the path a request takes through the executors: validation, tokenising, encode,
/// noise, every step (refilling inputs, guidance combine, sampler update), decode with unscaling and the
/// conversion to 8-bit frames. Writing the PNG is output formatting with no raw counterpart; it is reported
/// on its own line, not in the overhead.
/// Measurement. One warm-up of each, then pairs run interleaved — raw, serving, raw, serving, … (the order
/// inside a pair alternates) — so slow drifts in the load of a shared machine hit both sides alike. The
/// effect is the median of the paired relative differences (serving − raw) / raw, with a 95 % bootstrap
/// interval (2,000 resamples, fixed seed) and the interquartile range. When the interval is wider than the
/// effect (and wider than ±0.5 %, half the 1 % goal), more pairs are run, up to --max-runs; if it is still
/// wider, the result is reported as inconclusive with its interval instead of a point value.
/// </remarks>
internal static class RuntimeBench
{
    private const double GoalPct = 1.0;

    private static readonly Option<string> Pipeline = PipelineOption.Create(PipelineLocator.Tiny);
    private static readonly Option<int> Runs = Opt.Int("--runs", "interleaved pairs (raw, serving) to run at least", 12, 4, 10_000);
    private static readonly Option<int> MaxRuns = Opt.Int("--max-runs", "pairs to run at most while the spread exceeds the effect", 80, 4, 100_000);
    private static readonly Option<int> Width = Opt.Int("--width", "width in pixels", 256, 1);
    private static readonly Option<int> Height = Opt.Int("--height", "height in pixels", 256, 1);
    private static readonly Option<int> Frames = Opt.Int("--frames", "frames", 1, 1);
    private static readonly Option<int> Steps = Opt.Int("--steps", "denoising steps [default: the pipeline's]", null, 1);
    private static readonly Option<int> Threads = Opt.Int("--threads", "ONNX Runtime intra-op threads [default: one per core]", null, 1, 1024);
    private static readonly Option<string> Device = DeviceOption.Create();
    private static readonly Option<double> Guidance = Opt.Double("--guidance", "classifier-free guidance scale [default: the pipeline's]", null, 0);

    /// <summary>The <c>bench runtime</c> command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("runtime",
            "the runtime's overhead over the raw ONNX Runtime calls of one generation (paired, interleaved runs; median and bootstrap CI)")
            { Pipeline, Runs, MaxRuns, Width, Height, Frames, Steps, Threads, Device, Guidance };
        // the request checked against the pipeline's manifest while parsing, so that its problems come in the same
        // error as the values that did not parse (--steps 0 and a width the pipeline does not take: both named)
        c.Check((args, errors) => Read(args, errors));
        return c.With(Run);
    }

    /// <summary>The pipeline directory and the request from the options' values (in a validator, a value that did not
    /// parse reads as its default, and the errors naming it are dropped: OptionValues); every problem goes to
    /// <paramref name="errors"/>: a pipeline that cannot be read, --max-runs under --runs, a request the manifest
    /// refuses, a pipeline the raw-call baseline cannot replay.</summary>
    private static (string Directory, GenerationRequest Request) Read(OptionValues args, CliErrors errors)
    {
        var (directory, manifest) = PipelineOption.Load(args.Text(Pipeline), errors);
        // --runs as given and parsed, or its default; a --runs that did not parse is not compared (the parser names it)
        var runs = args.Given(Runs) ? args.Maybe(Runs) : args.Get(Runs);
        if (runs is { } r && args.Get(MaxRuns) is var m && m < r) errors.Add($"--max-runs: must be at least --runs ({r})");
        var request = new GenerationRequest("a red fox in the snow", null, args.Get(Width), args.Get(Height), args.Get(Frames),
            args.Maybe(Steps) ?? manifest?.Sampler.DefaultSteps ?? 1, 42, args.Maybe(Guidance), args.Maybe(Threads) ?? Environment.ProcessorCount);
        if (manifest is null) return (directory, request);
        foreach (var e in Generation.Validate(manifest, request)) errors.Add($"--{e.Path}: {e.Message}");
        // The raw-call baseline replays one encoder and a three-input denoiser; SDXL's second encoder, pooled
        // text_embeds and time_ids are not replayed (not measured here; the Trident side would be unmatched).
        if (manifest.ExportOnly)
            errors.Add($"--pipeline: '{directory}' conditions on a second text encoder, pooled embeddings or time_ids, which bench runtime's raw-call baseline does not replay; it measures single-encoder pipelines");
        return (directory, request);
    }

    private static int Run(ParseResult args, CancellationToken ct)
    {
        var errors = new CliErrors();
        var runs = args.GetValue(Runs);
        var maxRuns = args.GetValue(MaxRuns);
        var (directory, request) = Read(OptionValues.Of(args), errors);
        errors.ThrowIfAny();
        var threads = request.IntraOpThreads;
        var steps = request.Steps;
        var provider = DeviceOption.Parse(args.Text(Device))!.WithThreads(threads);

        // the models checked against the manifest first: a broken export is a --pipeline error, not a crash in the baseline
        using var pipeline = PipelineOption.Open(directory, provider, threads, keepSessions: true, ct);

        using var raw = RawCalls.Prepare(pipeline, request, ct);
        GenerationResult? last = null;
        double Serving()
        {
            var clock = Stopwatch.StartNew();
            last = Generation.Run(pipeline, request, cancellationToken: ct);
            return clock.Elapsed.TotalMilliseconds;
        }

        raw.Measure(ct);
        Serving();
        var progress = CliProgress.Start("bench runtime", null);
        var rawTimes = new List<RawTimes>();
        var servingTimes = new List<double>();
        var stageTimes = new List<(double Encode, double Diffuse, double Decode)>();
        void Pair()
        {
            ct.ThrowIfCancellationRequested();
            if (rawTimes.Count % 2 == 0)
            {
                rawTimes.Add(raw.Measure(ct));
                servingTimes.Add(Serving());
            }
            else
            {
                servingTimes.Add(Serving());
                rawTimes.Add(raw.Measure(ct));
            }
            stageTimes.Add((last!.Encode.TotalMilliseconds, last.Diffuse.TotalMilliseconds, last.Decode.TotalMilliseconds));
            progress.Step(string.Create(CultureInfo.InvariantCulture, $"pair {rawTimes.Count}: raw {rawTimes[^1].Total:F1} ms, serving {servingTimes[^1]:F1} ms"));
        }

        for (var i = 0; i < runs; i++) Pair();
        var effect = Effect(rawTimes, servingTimes);
        while (!effect.Precise && rawTimes.Count < maxRuns)
        {
            var more = Math.Min(maxRuns - rawTimes.Count, Math.Max(4, rawTimes.Count / 2));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {rawTimes.Count} pairs: overhead {effect.Median:F2} %, 95 % CI [{effect.Low:F2}, {effect.High:F2}] — spread larger than the effect; running {more} more pairs"));
            for (var i = 0; i < more; i++) Pair();
            effect = Effect(rawTimes, servingTimes);
        }

        progress.Dispose();
        var pngClock = Stopwatch.StartNew();
        var pngBytes = Generation.EncodeFile(last!.Frames).Bytes.LongLength;
        var pngMs = pngClock.Elapsed.TotalMilliseconds;
        var guidanceUsed = request.GuidanceScale ?? pipeline.Manifest.Guidance.DefaultScale;
        var rawMs = Median(rawTimes.Select(r => r.Total));
        var servingMs = Median(servingTimes);
        var diffs = rawTimes.Zip(servingTimes, (r, s) => s - r.Total).ToList();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench runtime: {pipeline.Manifest.Name} {request.Width}x{request.Height}x{request.Frames}, {steps} steps, guidance {guidanceUsed:0.###}, {provider}, ONNX Runtime {OrtEnvironment.Version}, {rawTimes.Count} pairs interleaved"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  medians: raw InferenceSession {rawMs:F2} ms, serving path {servingMs:F2} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  paired difference (serving - raw): median {Median(diffs):F2} ms, IQR [{Quantile(diffs, 0.25):F2}, {Quantile(diffs, 0.75):F2}] ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  paired overhead: median {effect.Median:F2} %, 95 % bootstrap CI [{effect.Low:F2}, {effect.High:F2}] %, IQR [{effect.Q1:F2}, {effect.Q3:F2}] %"));
        Console.WriteLine(effect.Precise
            ? string.Create(CultureInfo.InvariantCulture, $"  verdict: {(effect.High <= GoalPct ? "within" : effect.Low > GoalPct ? "above" : "not decided against")} the goal of ≤ {GoalPct:0.#} % (the CI {(effect.High <= GoalPct ? "lies below it" : effect.Low > GoalPct ? "lies above it" : "straddles it")})")
            : string.Create(CultureInfo.InvariantCulture, $"  verdict: inconclusive after {rawTimes.Count} pairs (the cap, --max-runs): the spread exceeds the effect; the overhead lies in [{effect.Low:F2}, {effect.High:F2}] % with 95 % confidence"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  raw runs: encode {Median(rawTimes.Select(r => r.Encode)):F2} ms, diffuse {Median(rawTimes.Select(r => r.Diffuse)):F2} ms ({steps} runs), decode {Median(rawTimes.Select(r => r.Decode)):F2} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  serving stages: encode {Median(stageTimes.Select(s => s.Encode)):F2} ms, diffuse {Median(stageTimes.Select(s => s.Diffuse)):F2} ms, decode {Median(stageTimes.Select(s => s.Decode)):F2} ms; PNG file (not in the overhead) {pngMs:F2} ms, {pngBytes:N0} B"));
        return 0;
    }

    /// <summary>The paired relative overhead: median, bootstrap CI, quartiles, and whether it is precise
    /// (the CI's half-width is within the effect, or within half the goal).</summary>
    private sealed record PairedEffect(double Median, double Low, double High, double Q1, double Q3)
    {
        public bool Precise => (High - Low) / 2 <= Math.Max(Math.Abs(Median), GoalPct / 2);
    }

    private static PairedEffect Effect(List<RawTimes> raw, List<double> serving)
    {
        var rel = raw.Zip(serving, (r, s) => (s - r.Total) / r.Total * 100).ToArray();
        var random = new Random(20261130);
        var medians = new double[2000];
        var sample = new double[rel.Length];
        for (var b = 0; b < medians.Length; b++)
        {
            for (var i = 0; i < rel.Length; i++) sample[i] = rel[random.Next(rel.Length)];
            medians[b] = Median(sample);
        }
        return new PairedEffect(Median(rel), Quantile(medians, 0.025), Quantile(medians, 0.975), Quantile(rel, 0.25), Quantile(rel, 0.75));
    }

    private static double Median(IEnumerable<double> values) => Trident.Runtime.Profiling.Profiler.Median(values.ToList());

    // Linear interpolation between order statistics (type 7).
    private static double Quantile(IReadOnlyCollection<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        var h = (sorted.Length - 1) * q;
        var lo = (int)Math.Floor(h);
        var hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    private sealed record RawTimes(double Encode, double Diffuse, double Decode)
    {
        public double Total => Encode + Diffuse + Decode;
    }

    /// <summary>One generation's ONNX Runtime work on raw InferenceSessions, with inputs and outputs built once.</summary>
    private sealed class RawCalls : IDisposable
    {
        private readonly List<IDisposable> owned = [];
        private readonly RunOptions options = new();
        private Call encoder = null!, denoiser = null!, decoder = null!;
        private int steps;

        private sealed record Call(InferenceSession Session, string[] InputNames, OrtValue[] Inputs, string[] OutputNames, OrtValue[] Outputs);

        public static RawCalls Prepare(LoadedPipeline pipeline, GenerationRequest request, CancellationToken ct)
        {
            var calls = new RawCalls();
            try
            {
                calls.Build(pipeline, request, ct);
                return calls;
            }
            catch
            {
                calls.Dispose();
                throw;
            }
        }

        private void Build(LoadedPipeline pipeline, GenerationRequest request, CancellationToken ct)
        {
            var m = pipeline.Manifest;
            var threads = request.IntraOpThreads;
            var guidance = request.GuidanceScale ?? m.Guidance.DefaultScale;
            var diffuser = new DiffuseExecutor(pipeline);
            var guided = diffuser.UsesGuidance(guidance);
            var rows = guided ? 2 : 1;
            steps = request.Steps;

            // Encoder: the same [rows, max_length] ids the executor builds (prompt, then the empty negative prompt).
            var length = pipeline.Tokenizer.MaxLength;
            var ids = new long[rows * length];
            var mask = new long[rows * length];
            for (var r = 0; r < rows; r++)
                pipeline.Tokenizer.EncodeInto(r == 0 ? request.Prompt : "", ids.AsSpan(r * length, length), mask.AsSpan(r * length, length));
            var te = m.Stages.TextEncoder;
            // ids in the type the model declares (int32 in older exports)
            var encoderSession = pipeline.Session(StageModel.TextEncoder, threads);
            Tensor IdsTensor(long[] values, string name) =>
                encoderSession.Inputs[encoderSession.InputIndex(name)].ElementType == TensorElementType.Int32
                    ? Tensor.FromInt32(Array.ConvertAll(values, v => (int)v), rows, length) : Tensor.FromInt64(values, rows, length);
            var encoderInputs = new Dictionary<string, Tensor> { [te.InputIds] = IdsTensor(ids, te.InputIds) };
            if (te.AttentionMask is { } maskName) encoderInputs[maskName] = IdsTensor(mask, maskName);
            var embeddings = new EncodeExecutor(pipeline).Encode([request.Prompt], guided ? [""] : null, threads, ct);
            encoder = Open(pipeline, StageModel.TextEncoder, threads, encoderInputs, [te.LastHiddenState], [embeddings.Tensor]);

            // Denoiser: the latent batch, the timestep and the embeddings, as each step feeds them.
            var dn = m.Stages.Denoiser;
            var shape = m.LatentShape(rows, request.Width, request.Height, request.Frames);
            var count = (int)shape.Aggregate(1L, (a, d) => a * d);
            var latents = Tensor.FromFloat(GaussianNoise.Sample(request.Seed, count), shape);
            var denoiserSession = pipeline.Session(StageModel.Denoiser, threads);
            var latentType = denoiserSession.Inputs[denoiserSession.InputIndex(dn.Latents)].ElementType;
            var timestepInfo = denoiserSession.Inputs[denoiserSession.InputIndex(dn.Timestep)];
            // the timestep in the type and rank the model declares: [rows] or a scalar, float or int64
            long[] timestepShape = timestepInfo.Shape.Count == 0 ? [] : [rows];
            var timestepCount = timestepInfo.Shape.Count == 0 ? 1 : rows;
            var timestep = Tensor.FromFloat(Enumerable.Repeat(500f, timestepCount).ToArray(), timestepShape).As(timestepInfo.ElementType == TensorElementType.Int64 ? TensorElementType.Float : timestepInfo.ElementType);
            if (timestepInfo.ElementType == TensorElementType.Int64) timestep = Tensor.FromInt64(Enumerable.Repeat(500L, timestepCount).ToArray(), timestepShape);
            denoiser = Open(pipeline, StageModel.Denoiser, threads, new Dictionary<string, Tensor>
            {
                [dn.Latents] = latents.As(latentType),
                [dn.Timestep] = timestep,
                [dn.EncoderHiddenStates] = embeddings.Tensor.As(denoiserSession.Inputs[denoiserSession.InputIndex(dn.EncoderHiddenStates)].ElementType),
            }, [dn.Prediction], [latents.As(latentType)]);

            // Decoder: unscaled latents of one item, as the decode executor feeds them.
            var one = diffuser.Diffuse(embeddings,
                new DiffuseSettings(request.Width, request.Height, request.Frames, 1, [request.Seed], guidance, threads), null, ct);
            var unscaled = (float[])one.Tensor.AsFloat().Clone();
            m.Latents.Unscale(unscaled);
            var decoderSession = pipeline.Session(StageModel.VaeDecoder, threads);
            var decodeType = decoderSession.Inputs[0].ElementType;
            var image = new DecodeExecutor(pipeline).DecodeTensor(one, threads, ct);
            decoder = Open(pipeline, StageModel.VaeDecoder, threads,
                new Dictionary<string, Tensor> { [m.Stages.VaeDecoder.Latents] = Tensor.FromFloat(unscaled, one.Tensor.Shape.ToArray()).As(decodeType) },
                [m.Stages.VaeDecoder.Image], [image]);
        }

        // A raw InferenceSession of a stage's model with the pipeline's session options, its inputs wrapped and
        // the outputs the executor reads preallocated (shaped like the given examples); other outputs (a CLIP
        // encoder's pooler_output) are not computed, as in the executor's runs that read one output.
        private Call Open(LoadedPipeline pipeline, StageModel model, int threads, Dictionary<string, Tensor> inputs, string[] outputNames, Tensor[] outputExamples)
        {
            using var sessionOptions = new SessionSettings { Provider = pipeline.Provider.WithThreads(threads) }.Create();
            var session = new InferenceSession(pipeline.ModelPath(model), sessionOptions);
            owned.Add(session);
            var inputNames = session.InputNames.ToArray();
            var inputValues = inputNames.Select(n => Own(inputs[n].ToOrtValue())).ToArray();
            var outputValues = outputExamples.Select(t => Own(Tensor.FromFloat(new float[t.Length], t.Shape.ToArray()).As(t.ElementType).ToOrtValue())).ToArray();
            return new Call(session, inputNames, inputValues, outputNames, outputValues);
        }

        private OrtValue Own(OrtValue value)
        {
            owned.Add(value);
            return value;
        }

        private void RunOnce(Call c) => c.Session.Run(options, c.InputNames, c.Inputs, c.OutputNames, c.Outputs);

        public RawTimes Measure(CancellationToken ct)
        {
            ct.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            RunOnce(encoder);
            var encode = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            for (var i = 0; i < steps; i++) RunOnce(denoiser);
            var diffuse = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            RunOnce(decoder);
            return new RawTimes(encode, diffuse, clock.Elapsed.TotalMilliseconds);
        }

        public void Dispose()
        {
            for (var i = owned.Count - 1; i >= 0; i--) owned[i].Dispose();
            owned.Clear();
            options.Dispose();
        }
    }
}
