using System.Diagnostics;
using System.Globalization;
using Trident.Runtime.Execution;
using Trident.Runtime.Imaging;
using Trident.Runtime.Pipelines;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident generate</c>: runs encode, diffuse and decode in process and writes the result — a PNG for an
/// image, an animated PNG (default) or one PNG per frame for a video. Options are checked against the
/// pipeline's manifest, and every bad option is reported at once.
/// </summary>
public static class GenerateCommand
{
    public static Command Command { get; } = new(
        "generate",
        "generate --pipeline DIR|tiny --prompt TEXT --width W --height H [--frames 1] [--steps N] [--seed 0] [--guidance G] [--negative-prompt TEXT] [--threads T] [--scheduler NAME] [--frames-as apng|png-sequence] --out FILE.png",
        "generate an image or video in process; --frames-as png-sequence writes FILE_0000.png, FILE_0001.png, … instead of one animated PNG",
        Run);

    /// <summary>A parsed command line: the pipeline directory, the request, and where to write.</summary>
    public sealed record Options(string PipelineDirectory, GenerationRequest Request, string Output, VideoFormat VideoFormat);

    // Request fields (GenerationRequest/Validate paths) to the options that set them.
    private static readonly Dictionary<string, string> OptionOf = new()
    {
        ["width"] = "--width", ["height"] = "--height", ["frames"] = "--frames", ["steps"] = "--steps",
        ["guidance"] = "--guidance", ["threads"] = "--threads", ["negative-prompt"] = "--negative-prompt", ["scheduler"] = "--scheduler",
    };

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var options = Parse(args);
        using var pipeline = LoadedPipeline.Open(options.PipelineDirectory);
        var request = options.Request;
        var clock = Stopwatch.StartNew();
        foreach (var model in Enum.GetValues<StageModel>()) pipeline.Session(model, request.IntraOpThreads);
        var loaded = clock.Elapsed;
        clock.Restart();
        var result = Generation.Run(pipeline, request, cancellationToken: ct);
        var generated = clock.Elapsed;
        var written = Write(result.Frames, options.Output, options.VideoFormat);
        var total = clock.Elapsed;

        var m = pipeline.Manifest;
        var guidance = request.GuidanceScale ?? m.Guidance.DefaultScale;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{m.Name}: {request.Width}x{request.Height}x{request.Frames}, {request.Steps} steps, seed {request.Seed}, guidance {guidance:0.###}, {request.IntraOpThreads} thread(s)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"load {Ms(loaded)} ms, encode {Ms(result.Encode)} ms, diffuse {Ms(result.Diffuse)} ms ({result.Diffuse.TotalMilliseconds / request.Steps:F1} ms/step), decode {Ms(result.Decode)} ms, write {Ms(total - generated)} ms, total {Ms(total)} ms (after load)"));
        foreach (var path in written)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {path} ({new FileInfo(path).Length:N0} B)"));
        return Task.FromResult(0);
    }

    /// <summary>Parses and validates a command line, resolving the pipeline (writing the tiny one if needed).</summary>
    /// <exception cref="CliException">listing every bad option.</exception>
    public static Options Parse(CliArgs args)
    {
        var pipelineArg = args.Required("pipeline");
        var prompt = args.Required("prompt");
        var negative = args.String("negative-prompt");
        var output = args.Required("out");
        var width = RequiredInt(args, "width");
        var height = RequiredInt(args, "height");
        var frames = args.Int("frames", 1, 1);
        var stepsGiven = args.Has("steps");
        var steps = args.Int("steps", 0, 1, 10_000);
        var seed = args.ULong("seed", 0);
        double? guidance = args.Has("guidance") ? args.Double("guidance", double.NaN, 0) : null;
        var threads = args.Int("threads", Environment.ProcessorCount, 1, 1024);
        var scheduler = args.String("scheduler");
        var formatName = args.String("frames-as", "apng");
        var format = formatName switch
        {
            "apng" => VideoFormat.Apng,
            "png-sequence" => VideoFormat.PngSequence,
            _ => (VideoFormat?)null,
        };
        if (format is null) args.Error($"--frames-as: '{formatName}' is not 'apng' or 'png-sequence'");
        if (output != "" && !output.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            args.Error($"--out: '{output}' must end in .png");

        var (directory, manifest) = PipelineOption.Load(args, pipelineArg);

        if (manifest is not null)
        {
            if (!stepsGiven) steps = manifest.Sampler.DefaultSteps;
            var request = new GenerationRequest(prompt, negative, width, height, frames, steps, seed, guidance, threads, scheduler);
            foreach (var error in Generation.Validate(manifest, request))
            {
                var option = OptionOf.GetValueOrDefault(error.Path, error.Path);
                // An option that did not parse is already reported; its placeholder value is not checked again.
                var placeholder = option switch
                {
                    "--width" => width < 1, "--height" => height < 1, "--steps" => steps < 1,
                    "--guidance" => guidance is double g && double.IsNaN(g), "--frames" => frames < 1,
                    _ => false,
                };
                if (!placeholder) args.Error($"{option}: {error.Message}");
            }
        }
        args.ThrowIfInvalid();
        return new Options(
            directory,
            new GenerationRequest(prompt, negative, width, height, frames, steps, seed, guidance, threads, scheduler),
            Path.GetFullPath(output),
            format!.Value);
    }

    /// <summary>Writes the frames: one PNG, one animated PNG, or one PNG per frame; returns the paths.</summary>
    public static IReadOnlyList<string> Write(IReadOnlyList<RgbImage> frames, string output, VideoFormat format)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(output))!;
        Directory.CreateDirectory(directory);
        if (frames.Count == 1 || format == VideoFormat.Apng)
        {
            File.WriteAllBytes(output, Generation.EncodeFile(frames));
            return [Path.GetFullPath(output)];
        }
        return VideoFiles.Write(directory, Path.GetFileNameWithoutExtension(output), frames, format,
            FrameDelay.FromFramesPerSecond(Generation.FramesPerSecond), Generation.OutputPng);
    }

    private static int RequiredInt(CliArgs args, string name)
    {
        if (!args.Has(name))
        {
            args.Required(name);
            return 0;
        }
        return args.Int(name, 0, 1);
    }

    private static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture);
}
