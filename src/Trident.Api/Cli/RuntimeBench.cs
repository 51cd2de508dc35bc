using System.Diagnostics;
using System.Globalization;
using Trident.Runtime.Execution;
using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines.Samplers;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident bench runtime</c>: what the runtime adds on top of ONNX Runtime for one generation.
/// </summary>
/// <remarks>
/// Design note. "raw" is the sum of the Session.Run calls the executors make for the request — the text
/// encoder once, the denoiser once per step (with guidance, on the 2-row batch), the decoder once — on the
/// same sessions and with tensors of the same shapes prepared beforehand, each Run timed on its own.
/// "trident" is the whole in-process generate path timed end to end: validation, tokenising, encode, noise,
/// every step with guidance combine and sampler update, decode with unscaling and the conversion to 8-bit
/// frames, and the PNG (or APNG) file in memory. The two alternate within each run, in alternating order,
/// after one warm-up of each; the reported numbers are medians over the runs, the median of the per-run
/// ratios (which pairs each trident run with the raw run next to it and so cancels slow drifts in the load
/// of a shared machine), and the best run of each (other load only ever adds time).
/// </remarks>
internal static class RuntimeBench
{
    public static int Run(CliArgs args, CancellationToken ct)
    {
        var pipelineArg = args.String("pipeline", PipelineLocator.Tiny)!;
        var runs = args.Int("runs", 10, 1, 10_000);
        var width = args.Int("width", 256, 1);
        var height = args.Int("height", 256, 1);
        var frames = args.Int("frames", 1, 1);
        var stepsGiven = args.Has("steps");
        var steps = args.Int("steps", 8, 1);
        var threads = args.Int("threads", Environment.ProcessorCount, 1, 1024);
        double? guidance = args.Has("guidance") ? args.Double("guidance", 1, 0) : null;
        var (directory, _) = PipelineOption.Load(args, pipelineArg);
        args.ThrowIfInvalid();

        using var pipeline = LoadedPipeline.Open(directory);
        if (!stepsGiven) steps = pipeline.Manifest.Sampler.DefaultSteps;
        var request = new GenerationRequest("a red fox in the snow", null, width, height, frames, steps, 42, guidance, threads);
        foreach (var e in Generation.Validate(pipeline.Manifest, request)) args.Error($"--{e.Path}: {e.Message}");
        args.ThrowIfInvalid();

        var raw = RawCalls.Prepare(pipeline, request, ct);
        long pngBytes = 0;
        GenerationResult? last = null;
        double Trident()
        {
            var clock = Stopwatch.StartNew();
            last = Generation.Run(pipeline, request, cancellationToken: ct);
            pngBytes = Generation.EncodeFile(last.Frames).LongLength;
            return clock.Elapsed.TotalMilliseconds;
        }

        raw.Measure(ct);
        Trident();
        var rawTimes = new List<RawTimes>();
        var tridentTimes = new List<double>();
        var stageTimes = new List<(double Encode, double Diffuse, double Decode)>();
        for (var i = 0; i < runs; i++)
        {
            ct.ThrowIfCancellationRequested();
            if (i % 2 == 0)
            {
                rawTimes.Add(raw.Measure(ct));
                tridentTimes.Add(Trident());
            }
            else
            {
                tridentTimes.Add(Trident());
                rawTimes.Add(raw.Measure(ct));
            }
            stageTimes.Add((last!.Encode.TotalMilliseconds, last.Diffuse.TotalMilliseconds, last.Decode.TotalMilliseconds));
        }

        var rawMs = Median(rawTimes.Select(r => r.Total));
        var tridentMs = Median(tridentTimes);
        var guidanceUsed = request.GuidanceScale ?? pipeline.Manifest.Guidance.DefaultScale;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench runtime: {pipeline.Manifest.Name} {width}x{height}x{frames}, {steps} steps, guidance {guidanceUsed:0.###}, {threads} thread(s), {runs} runs interleaved (medians)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"raw_ms={rawMs:F2} trident_ms={tridentMs:F2} overhead_pct={(tridentMs - rawMs) / rawMs * 100:F2}"));
        var paired = Median(rawTimes.Zip(tridentTimes, (r, t) => (t - r.Total) / r.Total * 100));
        var (rawMin, tridentMin) = (rawTimes.Min(r => r.Total), tridentTimes.Min());
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  paired: median over runs of (trident - raw) / raw = {paired:F2} %; best runs: raw {rawMin:F2} ms, trident {tridentMin:F2} ms, {(tridentMin - rawMin) / rawMin * 100:F2} %; raw runs spread {rawMin:F1}-{rawTimes.Max(r => r.Total):F1} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  raw Session.Run: encode {Median(rawTimes.Select(r => r.Encode)):F2} ms, diffuse {Median(rawTimes.Select(r => r.Diffuse)):F2} ms ({steps} runs), decode {Median(rawTimes.Select(r => r.Decode)):F2} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  trident stages: encode {Median(stageTimes.Select(s => s.Encode)):F2} ms, diffuse {Median(stageTimes.Select(s => s.Diffuse)):F2} ms, decode {Median(stageTimes.Select(s => s.Decode)):F2} ms, output file {pngBytes:N0} B"));
        return 0;
    }

    private static double Median(IEnumerable<double> values) => Trident.Runtime.Profiling.Profiler.Median(values.ToList());

    private sealed record RawTimes(double Encode, double Diffuse, double Decode)
    {
        public double Total => Encode + Diffuse + Decode;
    }

    /// <summary>The executors' Session.Run calls for one request, with their inputs built once.</summary>
    private sealed class RawCalls
    {
        private readonly Session encoder, denoiser, decoder;
        private readonly Tensor[] encoderInputs, denoiserInputs, decoderInputs;
        private readonly int steps;

        private RawCalls(Session encoder, Tensor[] encoderInputs, Session denoiser, Tensor[] denoiserInputs, int steps, Session decoder, Tensor[] decoderInputs)
        {
            (this.encoder, this.encoderInputs, this.denoiser, this.denoiserInputs, this.steps, this.decoder, this.decoderInputs) =
                (encoder, encoderInputs, denoiser, denoiserInputs, steps, decoder, decoderInputs);
        }

        public static RawCalls Prepare(LoadedPipeline pipeline, GenerationRequest request, CancellationToken ct)
        {
            var m = pipeline.Manifest;
            var threads = request.IntraOpThreads;
            var guidance = request.GuidanceScale ?? m.Guidance.DefaultScale;
            var diffuser = new DiffuseExecutor(pipeline);
            var guided = diffuser.UsesGuidance(guidance);
            var rows = guided ? 2 : 1;

            // Encoder: the same [rows, max_length] ids the executor builds (prompt, then the empty negative prompt).
            var encoder = pipeline.Session(StageModel.TextEncoder, threads);
            var length = pipeline.Tokenizer.MaxLength;
            var ids = new long[rows * length];
            var mask = new long[rows * length];
            for (var r = 0; r < rows; r++)
                pipeline.Tokenizer.EncodeInto(r == 0 ? request.Prompt : "", ids.AsSpan(r * length, length), mask.AsSpan(r * length, length));
            var te = m.Stages.TextEncoder;
            var encoderInputs = new Tensor[encoder.Inputs.Count];
            encoderInputs[encoder.InputIndex(te.InputIds)] = Tensor.FromInt64(ids, rows, length);
            if (te.AttentionMask is { } maskName) encoderInputs[encoder.InputIndex(maskName)] = Tensor.FromInt64(mask, rows, length);

            // Denoiser: the 2-row latent batch, the timestep and the embeddings, as each step feeds them.
            var embeddings = new EncodeExecutor(pipeline).Encode([request.Prompt], guided ? [""] : null, threads, ct);
            var denoiser = pipeline.Session(StageModel.Denoiser, threads);
            var shape = m.LatentShape(rows, request.Width, request.Height, request.Frames);
            var dn = m.Stages.Denoiser;
            var denoiserInputs = new Tensor[3];
            denoiserInputs[denoiser.InputIndex(dn.Latents)] =
                Tensor.FromFloat(GaussianNoise.Sample(request.Seed, (int)shape.Aggregate(1L, (a, d) => a * d)), shape);
            denoiserInputs[denoiser.InputIndex(dn.Timestep)] = Tensor.FromFloat(Enumerable.Repeat(500f, rows).ToArray(), rows);
            denoiserInputs[denoiser.InputIndex(dn.EncoderHiddenStates)] = embeddings.Tensor;

            // Decoder: unscaled latents of one item, as the decode executor feeds them.
            var latents = diffuser.Diffuse(embeddings,
                new DiffuseSettings(request.Width, request.Height, request.Frames, 1, [request.Seed], guidance, threads), null, ct);
            var unscaled = (float[])latents.Tensor.AsFloat().Clone();
            m.Latents.Unscale(unscaled);
            var decoder = pipeline.Session(StageModel.VaeDecoder, threads);
            Tensor[] decoderInputs = [Tensor.FromFloat(unscaled, latents.Tensor.Shape.ToArray())];
            return new RawCalls(encoder, encoderInputs, denoiser, denoiserInputs, request.Steps, decoder, decoderInputs);
        }

        public RawTimes Measure(CancellationToken ct)
        {
            var clock = Stopwatch.StartNew();
            encoder.Run(encoderInputs, ct);
            var encode = clock.Elapsed.TotalMilliseconds;
            var diffuse = 0.0;
            for (var i = 0; i < steps; i++)
            {
                clock.Restart();
                denoiser.Run(denoiserInputs, ct);
                diffuse += clock.Elapsed.TotalMilliseconds;
            }
            clock.Restart();
            decoder.Run(decoderInputs, ct);
            return new RawTimes(encode, diffuse, clock.Elapsed.TotalMilliseconds);
        }
    }
}
