using System.Globalization;
using Trident.Runtime.Pipelines;
using Trident.Runtime.Pipelines.Export;
using Trident.Runtime.Pipelines.Tiny;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident models tiny --out DIR [--seed S]</c>: writes the bundled tiny pipeline (deterministic in the
/// seed) and prints its files with sizes and SHA-256 hashes. <c>trident models sd-miniature --out DIR [--era E]
/// [--prediction epsilon|v_prediction]</c>: writes a miniature SD 1.x/2.x ONNX export in a real exporter's
/// layout and signatures (ExportMiniature), to try <c>inspect</c>, <c>generate</c> and <c>serve</c> on;
/// <c>trident models sdxl-miniature --out DIR [--era optimum-2023|optimum]</c> writes a miniature SDXL export.
/// </summary>
public static class ModelsCommand
{
    public static Command Command { get; } = new(
        "models",
        "models tiny|sd-miniature|sdxl-miniature --out DIR [--seed 0] [--era diffusers-2022|optimum-2023|optimum] [--prediction epsilon|v_prediction]",
        "write the bundled tiny pipeline (text encoder, video DiT, VAE decoder; ONNX), or a miniature SD 1.x/2.x or SDXL export, and print its files",
        Run);

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var what = args.Positional.Count > 0 ? args.Positional[0] : "";
        if (what is not (TinyPipeline.Name or SdMiniature or SdxlMiniature))
            args.Error(what == "" ? $"which models: '{TinyPipeline.Name}', '{SdMiniature}' or '{SdxlMiniature}'" : $"unknown models '{what}' (known: {TinyPipeline.Name}, {SdMiniature}, {SdxlMiniature})");
        var output = args.Required("out");
        var seed = args.ULong("seed", 0);
        if (what is SdMiniature or SdxlMiniature) return Task.FromResult(WriteMiniature(args, output, seed, what == SdxlMiniature));
        args.ThrowIfInvalid();

        var files = TinyPipeline.Write(output, seed);
        Console.WriteLine($"wrote the tiny pipeline (seed {seed}) to {Path.GetFullPath(output)}");
        var width = files.Max(f => f.RelativePath.Length);
        foreach (var f in files)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {f.RelativePath.PadRight(width)}  {f.Bytes,12:N0} B  sha256 {f.Sha256}"));
        return Task.FromResult(0);
    }

    private const string SdMiniature = "sd-miniature", SdxlMiniature = "sdxl-miniature";

    private static readonly (string Name, ExportEra Era)[] Eras =
        [("diffusers-2022", ExportEra.DiffusersScript2022), ("optimum-2023", ExportEra.Optimum2023), ("optimum", ExportEra.OptimumCurrent)];

    private static int WriteMiniature(CliArgs args, string output, ulong seed, bool sdxl)
    {
        var eraName = args.String("era", "optimum")!;
        var eras = sdxl ? Eras.Where(e => e.Era != ExportEra.DiffusersScript2022).ToArray() : Eras; // the 2022 script predates SDXL
        var era = eras.FirstOrDefault(e => e.Name == eraName);
        if (era.Name is null) args.Error($"--era: '{eraName}' is not one of {string.Join(", ", eras.Select(e => e.Name))}");
        var predictionName = args.String("prediction", "epsilon")!;
        PredictionType? prediction = predictionName switch { "epsilon" => PredictionType.Epsilon, "v_prediction" => PredictionType.VPrediction, _ => null };
        if (prediction is null) args.Error($"--prediction: '{predictionName}' is not one of epsilon, v_prediction");
        else if (sdxl && prediction != PredictionType.Epsilon) args.Error("--prediction: SDXL base predicts epsilon only");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any()) args.Error($"--out: '{output}' exists and is not empty");
        args.ThrowIfInvalid();
        if (sdxl) ExportMiniature.StableDiffusionXL(output, era.Era, seed);
        else
            ExportMiniature.StableDiffusion(output, era.Era, prediction!.Value,
                prediction == PredictionType.VPrediction ? "DDIMScheduler" : "PNDMScheduler", seed);
        Console.WriteLine($"wrote a miniature {(sdxl ? "SDXL" : "SD")} export ({era.Name}, {predictionName}, seed {seed}) to {Path.GetFullPath(output)}");
        foreach (var f in Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {Path.GetRelativePath(output, f),-40} {new FileInfo(f).Length,10:N0} B"));
        return 0;
    }
}
