using System.CommandLine;
using System.Globalization;
using Trident.Runtime.Execution;
using Trident.Runtime.Pipelines;
using Trident.Runtime.Profiling;
using Trident.Scheduling;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident profile</c>: measures a pipeline's stages on this machine (Profiler.ProfileAsync), prints the
/// table, writes the profile (docs/profile-format.md) and checks that it parses back.
/// </summary>
public static class ProfileCommand
{
    private static readonly Option<string> Pipeline = PipelineOption.Create();
    private static readonly Option<string> Out = Opt.String("--out", "where to write the profile (docs/profile-format.md)", required: true, helpName: "PROFILE.json");
    private static readonly Option<string> Shapes = Opt.String("--shapes",
        "sizes to measure, HEIGHTxWIDTH,… [default: three squares from the pipeline's smallest accepted size, doubling — the server's start-up sizes: 64x64,128x128,256x256 for the tiny pipeline]",
        helpName: "HxW,…");
    private static readonly Option<IReadOnlyList<int>> Frames = Opt.IntList("--frames",
        "frame counts to measure each size at [default: the pipeline's smallest frame count, 1 for images]", []);
    private static readonly Option<IReadOnlyList<int>> Degrees = Opt.IntList("--degrees", "sequence-parallel degrees of the diffuse stage to measure", [1, 2]);
    private static readonly Option<int> Steps = Opt.Int("--steps", "denoising steps per measured run", 4, 1, 10_000);
    private static readonly Option<int> Repeats = Opt.Int("--repeats", "timed runs per point (the median is kept, after a warm-up)", 3, 1, 1_000);
    private static readonly Option<IReadOnlyList<int>> Batches = Opt.IntList("--batches", "batch sizes to measure each stage at (encode, diffuse at each degree, decode: requests of one shape run together)", [1, 2, 4, 8]);
    private static readonly Option<string> Device = DeviceOption.Create();

    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("profile",
            "measure each stage's latency (median after a warm-up) and peak memory per shape (HxW, times each frame count) and diffuse degree; write a profile")
            { Pipeline, Out, Shapes, Frames, Degrees, Steps, Repeats, Batches, Device };
        // the shapes, the pipeline and --out checked while parsing, so that their problems come in the same error as
        // the values that did not parse (--steps 0 and a shape the pipeline does not take: both named)
        c.Check((args, errors) => Read(args, errors));
        return c.With(Run);
    }

    /// <summary>The pipeline and the profiler's options from the values of the options (in a validator, a value that
    /// did not parse reads as its default, and the errors naming it are dropped: OptionValues); every problem of the
    /// values — a bad shape, a pipeline that cannot be read, options the pipeline does not take, an --out that cannot be
    /// written — goes to <paramref name="errors"/>.</summary>
    private static (string Directory, ProfilerOptions Options) Read(OptionValues args, CliErrors errors)
    {
        var pipelineArg = args.Text(Pipeline);
        var output = args.Get(Out);
        var shapesText = args.Get(Shapes);
        List<(int Height, int Width)> sizes = shapesText is null ? [] : [.. ShapeOption.Parse(shapesText, withFrames: false, errors).Select(s => (s.Height, s.Width))];
        var frames = args.Get(Frames) ?? [];
        var degrees = args.Get(Degrees) ?? [];
        var steps = args.Get(Steps);
        var repeats = args.Get(Repeats);
        var batches = args.Get(Batches) ?? [];
        var device = args.Text(Device);
        var (directory, manifest) = PipelineOption.Load(pipelineArg, errors);
        if (manifest is not null)
        {
            // the defaults: the pipeline's own smallest sizes and frame count, as the server's start-up profile
            // measures them (OnnxServingBackend.QuickOptions), so that the two profiles describe the same shapes
            if (shapesText is null)
                sizes = [.. manifest.Size.DoublingSides(3, int.MaxValue).Select(side => (side, side))];
            if (frames.Count == 0) frames = [manifest.Size.MinFrames];
        }
        var options = new ProfilerOptions
        {
            Shapes = [.. sizes.SelectMany(s => frames.Select(f => new Shape(s.Height, s.Width, f)))],
            Degrees = degrees,
            Steps = steps,
            Repeats = repeats,
            Batches = batches,
            Command = string.Create(CultureInfo.InvariantCulture,
                $"trident profile --pipeline {pipelineArg} --shapes {string.Join(',', sizes.Select(s => $"{s.Height}x{s.Width}"))} --frames {string.Join(',', frames)} --degrees {string.Join(',', degrees)} --steps {steps} --repeats {repeats} --batches {string.Join(',', batches)} --device {device}"),
        };
        if (manifest is not null)
            foreach (var e in Profiler.Validate(manifest, options))
                errors.Add($"--{e.Path}: {e.Message}");
        OutputPath.Check("--out", output, directory: false, create: true, errors);
        return (directory, options);
    }

    private static async Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var errors = new CliErrors();
        var (directory, read) = Read(OptionValues.Of(args), errors);
        errors.ThrowIfAny();
        var output = args.Text(Out);
        var provider = DeviceOption.Parse(args.Text(Device))!;
        var printer = new Printer();
        var options = read with { Progress = printer };

        // the models checked against the manifest first, on sessions released before measuring (each point loads its own)
        using (var pipeline = PipelineOption.Open(directory, provider, 1, keepSessions: false, ct))
        {
            var profile = await printer.Run(options.Shapes.Count, () => Profiler.ProfileAsync(pipeline, options, ct));
            var json = ProfileFile.serialize(profile);
            if (ProfileFile.parse(json) is { IsError: true } parsed)
            {
                Console.Error.WriteLine("trident profile: the profile does not parse back:");
                foreach (var e in parsed.ErrorValue) Console.Error.WriteLine($"  {e}");
                return 1;
            }
            var full = Path.GetFullPath(output);
            await OutputPath.WriteAsync("--out", full, async () =>
            {
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                await File.WriteAllTextAsync(full, json, ct);
            });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"weights: encode {profile.Encode.Weights * 1000:F1} MB, diffuse {profile.Diffuse.Weights * 1000:F1} MB, decode {profile.Decode.Weights * 1000:F1} MB; device memory {profile.DeviceMemory:F2} GB ({profile.DeviceClass})"));
            Console.WriteLine($"wrote {full} (diffuse ms are per step)");
        }
        return 0;
    }

    /// <summary>Prints each point as it is measured (synchronously, unlike Progress&lt;T&gt;): a table row on standard
    /// output and a progress step; with a live bar on the terminal the rows are printed when it ends.</summary>
    private sealed class Printer : IProgress<MeasuredPoint>
    {
        private static readonly string Header = $"{"stage",-8} {"height",6} {"width",6} {"frames",6} {"degree",6} {"batch",5} {"ms",10}  {"peak_MB",8}";
        private readonly List<string> _rows = [];
        private CliProgress? _progress;

        public async Task<T> Run<T>(int shapes, Func<Task<T>> profile)
        {
            using (_progress = CliProgress.Start("profile", null))
            {
                if (!_progress.IsLive) Console.WriteLine(Header);
                try { return await profile(); }
                finally
                {
                    _progress.Dispose();
                    if (_progress.IsLive)
                    {
                        Console.WriteLine(Header);
                        foreach (var row in _rows) Console.WriteLine(row);
                    }
                }
            }
        }

        public void Report(MeasuredPoint m)
        {
            var p = m.Point;
            var stage = m.Stage.IsEncode ? "encode" : m.Stage.IsDiffuse ? "diffuse" : "decode";
            var row = string.Create(CultureInfo.InvariantCulture,
                $"{stage,-8} {p.Shape.Height,6} {p.Shape.Width,6} {p.Shape.Frames,6} {p.Degree,6} {m.Batch,5} {p.Seconds * 1000,10:F2}  {(m.Batch == 1 ? (p.PeakActivation * 1000).ToString("F1", CultureInfo.InvariantCulture) : "-"),8}");
            if (_progress is { IsLive: true }) _rows.Add(row); else Console.WriteLine(row);
            _progress?.Step(string.Create(CultureInfo.InvariantCulture, $"{stage} {p.Shape.Height}x{p.Shape.Width}x{p.Shape.Frames} degree {p.Degree}{(m.Batch > 1 ? $" batch {m.Batch}" : "")}: {p.Seconds * 1000:F1} ms"));
        }
    }
}
