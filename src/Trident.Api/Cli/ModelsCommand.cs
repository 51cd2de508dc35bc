using System.Globalization;
using Trident.Runtime.Pipelines.Tiny;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident models tiny --out DIR [--seed S]</c>: writes the bundled tiny pipeline (deterministic in the
/// seed) and prints its files with sizes and SHA-256 hashes.
/// </summary>
public static class ModelsCommand
{
    public static Command Command { get; } = new(
        "models",
        "models tiny --out DIR [--seed 0]",
        "write the bundled tiny pipeline (text encoder, video DiT, VAE decoder; ONNX) and print its files",
        Run);

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var what = args.Positional.Count > 0 ? args.Positional[0] : "";
        if (what != TinyPipeline.Name)
            args.Error(what == "" ? "which models: 'tiny'" : $"unknown models '{what}' (known: tiny)");
        var output = args.Required("out");
        var seed = args.ULong("seed", 0);
        args.ThrowIfInvalid();

        var files = TinyPipeline.Write(output, seed);
        Console.WriteLine($"wrote the tiny pipeline (seed {seed}) to {Path.GetFullPath(output)}");
        var width = files.Max(f => f.RelativePath.Length);
        foreach (var f in files)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {f.RelativePath.PadRight(width)}  {f.Bytes,12:N0} B  sha256 {f.Sha256}"));
        return Task.FromResult(0);
    }
}
