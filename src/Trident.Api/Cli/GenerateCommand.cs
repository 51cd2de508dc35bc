using System.Diagnostics;
using System.Globalization;
using Trident.Runtime.Execution;
using Trident.Runtime.Imaging;
using Trident.Runtime.Pipelines;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident generate</c>: runs encode, diffuse and decode in process and writes the result in the format
/// --out's extension names (.png, .jpg/.jpeg, .webp for an image; .mp4, .webm, .webp for a video), encoded as the
/// server encodes results (Generation.EncodeFile), or one PNG per frame (--frames-as png-sequence). Options are
/// checked against the pipeline's manifest, and every bad option is reported at once.
/// </summary>
public static class GenerateCommand
{
    public static Command Command { get; } = new(
        "generate",
        "generate --pipeline DIR|tiny --prompt TEXT --width W --height H [--frames 1] [--steps N] [--seed 0] [--guidance G] [--negative-prompt TEXT] [--threads T] [--scheduler NAME] [--compression 0-100] [--fps N] [--frames-as file|png-sequence] --out FILE.(png|jpg|webp|mp4|webm)",
        "generate an image or video in process; the format is --out's extension (a video: .mp4, .webm or .webp); --compression is output_compression (100 = least lossy); --frames-as png-sequence writes FILE_0000.png, FILE_0001.png, … instead of one file",
        Run);

    /// <summary>A parsed command line: the pipeline directory, the request, and where to write.</summary>
    public sealed record Options(string PipelineDirectory, GenerationRequest Request, string Output, OutputSpec File, bool PngSequence);

    // Request fields (GenerationRequest/Validate paths) to the options that set them.
    private static readonly Dictionary<string, string> OptionOf = new()
    {
        ["width"] = "--width", ["height"] = "--height", ["frames"] = "--frames", ["steps"] = "--steps",
        ["guidance"] = "--guidance", ["threads"] = "--threads", ["negative-prompt"] = "--negative-prompt",
        ["output_format"] = "--out", ["output_compression"] = "--compression", ["fps"] = "--fps", ["scheduler"] = "--scheduler",
    };

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var options = Parse(args);
        using var pipeline = LoadedPipeline.Open(options.PipelineDirectory);
        var request = options.Request;
        var clock = Stopwatch.StartNew();
        foreach (var model in pipeline.Models) pipeline.Session(model, request.IntraOpThreads);
        var loaded = clock.Elapsed;
        clock.Restart();
        var result = Generation.Run(pipeline, request, cancellationToken: ct);
        var generated = clock.Elapsed;
        var written = Write(result.Frames, options.Output, options.File, options.PngSequence);
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
        int? compression = args.Has("compression") ? args.Int("compression", 0, 0, 100) : null;
        int? fps = args.Has("fps") ? args.Int("fps", Generation.FramesPerSecond, 1, MediaFormats.MaxFramesPerSecond) : null;
        var framesAs = args.String("frames-as", "file");
        if (framesAs is not ("file" or "png-sequence")) args.Error($"--frames-as: '{framesAs}' is not 'file' or 'png-sequence'");
        var pngSequence = framesAs == "png-sequence";
        var format = output == "" ? null : MediaFormats.FromExtension(Path.GetExtension(output).TrimStart('.'));
        if (output != "" && format is null)
            args.Error($"--out: '{output}' must end in .png, .jpg, .jpeg or .webp (an image) or .mp4, .webm or .webp (a video)");
        else if (pngSequence && format is not (null or MediaFormat.Png))
            args.Error($"--out: '{output}' must end in .png with --frames-as png-sequence");
        var file = new OutputSpec(format, compression, fps);

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
            if (format is not null && !pngSequence && frames >= 1 && width >= 1 && height >= 1)
                foreach (var (field, message) in MediaFormats.Check(file, width, height, frames))
                    args.Error($"{OptionOf[field]}: {message}");
        }
        args.ThrowIfInvalid();
        return new Options(
            directory,
            new GenerationRequest(prompt, negative, width, height, frames, steps, seed, guidance, threads, scheduler),
            Path.GetFullPath(output),
            file,
            pngSequence);
    }

    /// <summary>Writes the frames: one file in <paramref name="file"/>'s format, or one PNG per frame
    /// (<c>{stem}_0000.png</c>, …); returns the paths.</summary>
    public static IReadOnlyList<string> Write(IReadOnlyList<RgbImage> frames, string output, OutputSpec file, bool pngSequence)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(output))!;
        Directory.CreateDirectory(directory);
        if (frames.Count == 1 || !pngSequence)
        {
            File.WriteAllBytes(output, Generation.EncodeFile(frames, file, file.FramesPerSecond ?? Generation.FramesPerSecond).Bytes);
            return [Path.GetFullPath(output)];
        }
        var stem = Path.GetFileNameWithoutExtension(output);
        var paths = new List<string>(frames.Count);
        for (var i = 0; i < frames.Count; i++)
        {
            var path = Path.Combine(directory, $"{stem}_{i:D4}.png");
            File.WriteAllBytes(path, Generation.EncodeFile([frames[i]]).Bytes);
            paths.Add(path);
        }
        return paths;
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
