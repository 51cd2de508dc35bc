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
    public static Command Command { get; } = new(
        "profile",
        "profile --pipeline DIR|tiny [--shapes 128x128,256x256,512x512] [--frames 1] [--degrees 1,2] [--steps 4] [--repeats 3] [--batches 1,2,4,8] [--device cpu|cuda:N] --out PROFILE.json",
        "measure each stage's latency (median after a warm-up) and peak memory per shape (HxW, times each frame count) and diffuse degree; write a profile",
        Run);

    private static async Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var pipelineArg = args.Required("pipeline");
        var output = args.Required("out");
        var sizes = Sizes(args, args.String("shapes", "128x128,256x256,512x512")!);
        var frames = args.IntList("frames", [1]);
        var degrees = args.IntList("degrees", [1, 2]);
        var steps = args.Int("steps", 4, 1, 10_000);
        var repeats = args.Int("repeats", 3, 1, 1_000);
        var batches = args.IntList("batches", [1, 2, 4, 8]);
        var device = args.String("device", "cpu")!;
        var (directory, manifest) = PipelineOption.Load(args, pipelineArg);
        var provider = DeviceOption.Parse(args, device);
        var options = new ProfilerOptions
        {
            Shapes = [.. sizes.SelectMany(s => frames.Select(f => new Shape(s.Height, s.Width, f)))],
            Degrees = degrees,
            Steps = steps,
            Repeats = repeats,
            Batches = batches,
            Command = string.Create(CultureInfo.InvariantCulture,
                $"trident profile --pipeline {pipelineArg} --shapes {string.Join(',', sizes.Select(s => $"{s.Height}x{s.Width}"))} --frames {string.Join(',', frames)} --degrees {string.Join(',', degrees)} --steps {steps} --repeats {repeats} --batches {string.Join(',', batches)} --device {device}"),
            Progress = new Printer(),
        };
        if (manifest is not null)
            foreach (var e in Profiler.Validate(manifest, options))
                args.Error($"--{e.Path}: {e.Message}");
        args.ThrowIfInvalid();

        using (var pipeline = LoadedPipeline.Open(directory, provider))
        {
            Console.WriteLine($"{"stage",-8} {"height",6} {"width",6} {"frames",6} {"degree",6} {"ms",10}  {"peak_MB",8}");
            var profile = await Profiler.ProfileAsync(pipeline, options, ct);
            var json = ProfileFile.serialize(profile);
            if (ProfileFile.parse(json) is { IsError: true } parsed)
            {
                Console.Error.WriteLine("trident profile: the profile does not parse back:");
                foreach (var e in parsed.ErrorValue) Console.Error.WriteLine($"  {e}");
                return 1;
            }
            var full = Path.GetFullPath(output);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            await File.WriteAllTextAsync(full, json, ct);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"weights: encode {profile.Encode.Weights * 1000:F1} MB, diffuse {profile.Diffuse.Weights * 1000:F1} MB, decode {profile.Decode.Weights * 1000:F1} MB; device memory {profile.DeviceMemory:F2} GB ({profile.DeviceClass})"));
            Console.WriteLine($"wrote {full} (diffuse ms are per step)");
        }
        return 0;
    }

    private static List<(int Height, int Width)> Sizes(CliArgs args, string text)
    {
        var result = new List<(int, int)>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var hw = part.Split('x');
            if (hw.Length == 2
                && int.TryParse(hw[0], NumberStyles.None, CultureInfo.InvariantCulture, out var h) && h > 0
                && int.TryParse(hw[1], NumberStyles.None, CultureInfo.InvariantCulture, out var w) && w > 0)
                result.Add((h, w));
            else args.Error($"--shapes: '{part}' is not HEIGHTxWIDTH (e.g. 256x256)");
        }
        if (result.Count == 0) args.Error("--shapes: needs at least one HEIGHTxWIDTH");
        return result;
    }

    /// <summary>Prints each point as it is measured (synchronously, unlike Progress&lt;T&gt;).</summary>
    private sealed class Printer : IProgress<MeasuredPoint>
    {
        public void Report(MeasuredPoint m)
        {
            var p = m.Point;
            var stage = m.Stage.IsEncode ? "encode" : m.Stage.IsDiffuse ? "diffuse" : "decode";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{stage,-8} {p.Shape.Height,6} {p.Shape.Width,6} {p.Shape.Frames,6} {p.Degree,6} {p.Seconds * 1000,10:F2}  {p.PeakActivation * 1000,8:F1}"));
        }
    }
}
