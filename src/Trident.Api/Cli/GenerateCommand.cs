using System.CommandLine;
using System.CommandLine.Parsing;
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
    /// <summary>A parsed command line: the pipeline directory, the request, and where to write.</summary>
    public sealed record Options(string PipelineDirectory, GenerationRequest Request, string Output, OutputSpec File, bool PngSequence);

    // Request fields (GenerationRequest/Validate paths) to the options that set them.
    private static readonly Dictionary<string, string> OptionOf = new()
    {
        ["width"] = "--width", ["height"] = "--height", ["frames"] = "--frames", ["steps"] = "--steps",
        ["guidance"] = "--guidance", ["threads"] = "--threads", ["negative-prompt"] = "--negative-prompt",
        ["output_format"] = "--out", ["output_compression"] = "--compression", ["fps"] = "--fps", ["scheduler"] = "--scheduler",
    };

    private static readonly Option<string> Pipeline = PipelineOption.Create(PipelineLocator.Tiny);
    private static readonly Option<string> Prompt = Opt.String("--prompt", "what to generate", required: true, helpName: "TEXT");
    private static readonly Option<string> Negative = Opt.String("--negative-prompt", "what to steer away from (classifier-free guidance's negative prompt; refused where none runs: --guidance 1)", helpName: "TEXT");
    private static readonly Option<int> Width = Opt.Int("--width", "width in pixels (the pipeline's manifest says which are accepted) [default: the server's default size for the pipeline: 256, or the nearest side it serves]", null, 1);
    private static readonly Option<int> Height = Opt.Int("--height", "height in pixels [default: the default size's height, as for --width]", null, 1);
    private static readonly Option<int> Frames = Opt.Int("--frames", "frames (1: an image)", 1, 1);
    private static readonly Option<int> Steps = Opt.Int("--steps", "denoising steps [default: the pipeline's]", null, 1, 10_000);
    private static readonly Option<ulong> Seed = Opt.ULong("--seed", "the noise seed (the same arguments and seed give the same bytes)", 0);
    private static readonly Option<double> Guidance = Opt.Double("--guidance", "classifier-free guidance scale [default: the pipeline's]", null, 0, Endpoints.GenerationRequests.MaxGuidanceScale);
    private static readonly Option<int> Threads = Opt.Int("--threads", "ONNX Runtime intra-op threads [default: one per core]", null, 1, 1024);
    private static readonly Option<string> Scheduler = Opt.String("--scheduler", "the sampler's scheduler [default: the pipeline's]", helpName: "NAME");
    private static readonly Option<int> Compression = Opt.Int("--compression", "output_compression: 0–100, 100 = least lossy (JPEG, WebP, video)", null, 0, 100);
    private static readonly Option<int> Fps = Opt.Int("--fps", $"a video's frame rate [default: {Generation.FramesPerSecond}]", null, 1, MediaFormats.MaxFramesPerSecond);
    private static readonly Option<string> FramesAs = Opt.Choice("--frames-as", "a video as one file, or one PNG per frame (FILE_0000.png, FILE_0001.png, …)", "file", "file", "png-sequence");
    private static readonly Option<string> Out = Opt.String("--out", "where to write; the extension is the format: .png, .jpg/.jpeg, .webp for an image; .mp4, .webm, .webp for a video", required: true, helpName: "FILE");

    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("generate",
            "generate an image or video in process; the format is --out's extension. Options are checked against the pipeline's manifest, every bad one reported at once")
            { Pipeline, Prompt, Negative, Width, Height, Frames, Steps, Seed, Guidance, Threads, Scheduler, Compression, Fps, FramesAs, Out };
        // the request checked against the pipeline's manifest while parsing, so its problems come in the same error
        c.Validators.Add(result =>
        {
            foreach (var e in Check(result)) result.AddError(e);
        });
        return c.With(Run);
    }

    private static Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var options = Parse(args);
        var request = options.Request;
        var clock = Stopwatch.StartNew();
        // every model loaded (the sessions the run uses) and checked against the manifest: a broken export is its list
        // of problems, not a crash mid-run
        using var pipeline = PipelineOption.Open(options.PipelineDirectory, null, request.IntraOpThreads, keepSessions: true, ct);
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

    /// <summary>A parsed command line's options (resolving the pipeline, writing the tiny one if needed).</summary>
    public static Options Parse(ParseResult args)
    {
        var (directory, manifest) = PipelineOption.Load(args.Text(Pipeline), new CliErrors());
        var request = Request(o => args.GetValue(o), o => args.Maybe(o), manifest, DefaultSize(manifest!).Size) with
        {
            Seed = args.GetValue(Seed), GuidanceScale = args.Maybe(Guidance),
        };
        var output = args.Text(Out);
        return new Options(directory, request, Path.GetFullPath(output), Spec(output, args.Maybe(Compression), args.Maybe(Fps)),
            args.GetValue(FramesAs) == "png-sequence");
    }

    private static OutputSpec Spec(string output, int? compression, int? fps) =>
        new(MediaFormats.FromExtension(Path.GetExtension(output).TrimStart('.')), compression, fps);

    // The request from the options' values (steps: the manifest's default unless given; width and height: the
    // default size unless given).
    private static GenerationRequest Request(Func<Option<string>, string?> text, Func<Option<int>, int?> integer, PipelineManifest? manifest, (int Width, int Height) size) =>
        new(text(Prompt) ?? "", text(Negative), integer(Width) ?? size.Width, integer(Height) ?? size.Height, integer(Frames) ?? 1,
            integer(Steps) ?? manifest?.Sampler.DefaultSteps ?? 0, 0, null, integer(Threads) ?? Environment.ProcessorCount, text(Scheduler));

    /// <summary>The size a request without --width/--height gets: the server's default for the pipeline (the built-in
    /// 256 × 256, each side moved to the nearest the pipeline serves: ServerHost.FitDefaultSize), or (0, 0) and why
    /// when no size within the default limits fits the pipeline.</summary>
    private static ((int Width, int Height) Size, string? Problem) DefaultSize(PipelineManifest manifest)
    {
        var o = new Trident.Api.Options.TridentOptions();
        try
        {
            Trident.Api.Hosting.ServerHost.FitDefaultSize(o, manifest, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, (false, false));
            return ((o.Limits.DefaultWidth, o.Limits.DefaultHeight), null);
        }
        catch (InvalidOperationException e)
        {
            return ((0, 0), e.Message);
        }
    }

    // The problems of the values that parsed: the output's extension, the request against the manifest, the
    // media format's limits. An option that did not parse is reported by the parser and not checked again here.
    private static IEnumerable<string> Check(CommandResult r)
    {
        bool Failed(Option o)
        {
            if (r.GetResult(o) is not { } given) return false;
            try { given.GetValueOrDefault<object>(); return false; }
            catch (InvalidOperationException) { return true; }
        }
        T? Value<T>(Option<T> o) where T : struct => r.GetResult(o) is { Implicit: false } given && !Failed(o) ? given.GetValueOrDefault<T>() : null;
        // a text option left out is read at its default (--pipeline: the bundled tiny one), checked as if given
        string? Text(Option<string> o) => r.TryGet(o, out var value) ? value : null;

        var errors = new List<string>();
        // as the HTTP API refuses it: a blank prompt is no prompt
        if (Text(Prompt) is { } prompt && string.IsNullOrWhiteSpace(prompt))
            errors.Add($"{Prompt.Name}: is required and must not be blank");
        var output = Text(Out);
        var pngSequence = Text(FramesAs) == "png-sequence";
        var format = output is null ? null : MediaFormats.FromExtension(Path.GetExtension(output).TrimStart('.'));
        if (output is not null && format is null)
            errors.Add($"--out: '{output}' must end in .png, .jpg, .jpeg or .webp (an image) or .mp4, .webm or .webp (a video)");
        else if (pngSequence && format is not (null or MediaFormat.Png))
            errors.Add($"--out: '{output}' must end in .png with --frames-as png-sequence");
        var unwritable = new CliErrors();
        OutputPath.Check("--out", output, directory: false, create: true, unwritable);
        errors.AddRange(unwritable.List);

        if (Text(Pipeline) is not { } pipeline) return errors;
        var problems = new CliErrors();
        var (_, manifest) = PipelineOption.Load(pipeline, problems);
        errors.AddRange(problems.List);
        if (manifest is null) return errors;
        var failed = Command.Options.Where(Failed).Select(o => o.Name).ToHashSet();
        var (size, noDefault) = DefaultSize(manifest);
        var request = Request(Text, Value, manifest, size) with { GuidanceScale = Value(Guidance) };
        foreach (var error in Generation.Validate(manifest, request))
        {
            var option = OptionOf.GetValueOrDefault(error.Path, error.Path);
            // a side left out with no default size is reported once, below, not as its placeholder 0
            var missing = noDefault is not null && ((option == Width.Name && r.GetResult(Width) is null) || (option == Height.Name && r.GetResult(Height) is null));
            if (!failed.Contains(option) && !missing) errors.Add($"{option}: {error.Message}");
        }
        if (noDefault is not null && (r.GetResult(Width) is null || r.GetResult(Height) is null))
            errors.Add($"--width and --height are required for pipeline {manifest.Name}: it has no default size ({noDefault})");
        if (format is not null && !pngSequence && request is { Frames: >= 1, Width: >= 1, Height: >= 1 })
            foreach (var (field, message) in MediaFormats.Check(Spec(output!, Value(Compression), Value(Fps)), request.Width, request.Height, request.Frames))
                errors.Add($"{OptionOf[field]}: {message}");
        return errors;
    }

    /// <summary>Writes the frames: one file in <paramref name="file"/>'s format, or one PNG per frame
    /// (<c>{stem}_0000.png</c>, …); returns the paths. A failed write is an <see cref="OutputException"/> naming
    /// <c>--out</c>, the path and the reason.</summary>
    public static IReadOnlyList<string> Write(IReadOnlyList<RgbImage> frames, string output, OutputSpec file, bool pngSequence)
    {
        IReadOnlyList<string> written = [];
        OutputPath.Write("--out", output, () => written = WriteFiles(frames, output, file, pngSequence));
        return written;
    }

    private static IReadOnlyList<string> WriteFiles(IReadOnlyList<RgbImage> frames, string output, OutputSpec file, bool pngSequence)
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

    private static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture);
}
