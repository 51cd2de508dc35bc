using System.CommandLine;
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
/// <c>trident models sdxl-miniature --out DIR [--era optimum-2023|optimum]</c> writes a miniature SDXL export;
/// <c>trident models flux-miniature --out DIR [--variant schnell|dev] [--ids 2d|3d] [--ids-type int64|float]</c> a
/// miniature Flux.1 export.
/// <c>trident models sd3-miniature --out DIR [--era optimum|olive] [--t5-files both|spiece.model|tokenizer.json]</c>
/// a miniature SD3 export (Sd3Miniature.cs).
/// </summary>
public static class ModelsCommand
{
    private static readonly (string Name, ExportEra Era)[] Eras =
        [("diffusers-2022", ExportEra.DiffusersScript2022), ("optimum-2023", ExportEra.Optimum2023), ("optimum", ExportEra.OptimumCurrent)];

    // the 2022 script predates SDXL
    private static readonly (string Name, ExportEra Era)[] SdxlEras = [.. Eras.Where(e => e.Era != ExportEra.DiffusersScript2022)];

    private static readonly Option<string> Out = Opt.String("--out", "the directory to write", required: true, helpName: "DIR");
    private static readonly Option<ulong> Seed = Opt.ULong("--seed", "the weights' seed (the same seed writes the same bytes)", 0);
    private static readonly Option<string> Era = Opt.Choice("--era", "whose exporter's layout and signatures to copy", "optimum", [.. Eras.Select(e => e.Name)]);
    private static readonly Option<string> SdxlEra = Opt.Choice("--era", "whose exporter's layout and signatures to copy", "optimum", [.. SdxlEras.Select(e => e.Name)]);
    private static readonly Option<string> Variant = Opt.Choice("--variant", "FLUX.1-schnell (no guidance input) or FLUX.1-dev (embedded guidance)", "schnell", "schnell", "dev");
    private static readonly Option<string> FluxIdsRank = Opt.Choice("--ids", "img_ids/txt_ids as [n, 3] (diffusers ≥ 0.31 exports) or [batch, n, 3] (older)", "2d", "2d", "3d");
    private static readonly Option<string> FluxIdsType = Opt.Choice("--ids-type", "element type of img_ids/txt_ids (Optimum: int64)", "int64", "int64", "float");
    private static readonly Option<string> Sd3Era = Opt.Choice("--era", "whose exporter's transformer signature to copy (Optimum: timestep [step] → out_hidden_states; Olive: timestep [batch_size] → out_sample)", "optimum", "optimum", "olive");
    private static readonly Option<string> T5Files = Opt.Choice("--t5-files", "which T5 tokenizer files tokenizer_3/ holds", "both", "both", "spiece.model", "tokenizer.json");
    private static readonly Option<string> Prediction = Opt.Choice("--prediction", "what the UNet predicts", "epsilon", "epsilon", "v_prediction");
    // SDXL base predicts ε only: its --prediction offers that value alone (it offered v_prediction, then refused it)
    private static readonly Option<string> SdxlPrediction = Opt.Choice("--prediction", "what the UNet predicts (SDXL base: epsilon only)", "epsilon", "epsilon");

    /// <summary>The command: <c>models tiny</c>, <c>models sd-miniature</c>, <c>models sdxl-miniature</c> and
    /// <c>models sd3-miniature</c>.</summary>
    public static Command Command { get; } = new Command("models",
        "write the bundled tiny pipeline (text encoder, video DiT, VAE decoder; ONNX), or a miniature SD 1.x/2.x, SDXL, SD3 or Flux.1 export, and print its files")
    {
        new Command(TinyPipeline.Name, "write the bundled tiny pipeline and print its files with sizes and SHA-256 hashes") { Out, Seed }.With(Tiny),
        new Command(SdMiniature, "write a miniature SD 1.x/2.x ONNX export in a real exporter's layout and signatures, to try inspect, generate and serve on")
            { Out, Seed, Era, Prediction }.With((r, ct) => WriteMiniature(r, sdxl: false)),
        new Command(SdxlMiniature, "write a miniature SDXL ONNX export (two text encoders, pooled embeddings, time_ids) in a real exporter's layout and signatures")
            { Out, Seed, SdxlEra, SdxlPrediction }.With((r, ct) => WriteMiniature(r, sdxl: true)),
        new Command(FluxMiniature, "write a miniature Flux.1 ONNX export (CLIP pooled + T5, packed latents, img_ids/txt_ids, guidance for dev) in Optimum's layout and signatures")
            { Out, Seed, Variant, FluxIdsRank, FluxIdsType }.With(WriteFlux),
        new Command(Sd3Miniature, "write a miniature SD3 ONNX export (CLIP-L, CLIP-G and T5 encoders, a transformer with pooled_projections, flow matching) in a real exporter's layout and signatures")
            { Out, Seed, Sd3Era, T5Files }.With(WriteSd3Miniature),
    };

    private const string FluxMiniature = "flux-miniature";

    private static int WriteFlux(ParseResult args, CancellationToken ct)
    {
        var output = args.Text(Out);
        var seed = args.GetValue(Seed);
        var variant = args.Text(Variant) == "dev" ? FluxVariant.Dev : FluxVariant.Schnell;
        var ids = new FluxIds(args.Text(FluxIdsRank) == "3d",
            args.Text(FluxIdsType) == "float" ? Trident.Runtime.Onnx.TensorElementType.Float : Trident.Runtime.Onnx.TensorElementType.Int64);
        var errors = new CliErrors();
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any()) errors.Add($"--out: '{output}' exists and is not empty");
        OutputPath.Check("--out", output, directory: true, create: true, errors);
        errors.ThrowIfAny();
        OutputPath.Write("--out", output, () => ExportMiniature.Flux(output, variant, ids, seed));
        Console.WriteLine($"wrote a miniature Flux.1-{args.Text(Variant)} export (ids {args.Text(FluxIdsRank)} {args.Text(FluxIdsType)}, seed {seed}) to {Path.GetFullPath(output)}");
        PrintFiles(output);
        return 0;
    }

    private static void PrintFiles(string output)
    {
        foreach (var f in Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {Path.GetRelativePath(output, f),-40} {new FileInfo(f).Length,10:N0} B"));
    }

    private static int Tiny(ParseResult args, CancellationToken ct)
    {
        var output = args.Text(Out);
        var seed = args.GetValue(Seed);
        var errors = new CliErrors();
        OutputPath.Check("--out", output, directory: true, create: true, errors);
        errors.ThrowIfAny();
        IReadOnlyList<PipelineFile> files = [];
        OutputPath.Write("--out", output, () => files = TinyPipeline.Write(output, seed));
        Console.WriteLine($"wrote the tiny pipeline (seed {seed}) to {Path.GetFullPath(output)}");
        var width = files.Max(f => f.RelativePath.Length);
        foreach (var f in files)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {f.RelativePath.PadRight(width)}  {f.Bytes,12:N0} B  sha256 {f.Sha256}"));
        return 0;
    }

    private const string SdMiniature = "sd-miniature", SdxlMiniature = "sdxl-miniature", Sd3Miniature = "sd3-miniature";

    private static int WriteSd3Miniature(ParseResult args, CancellationToken ct)
    {
        var output = args.Text(Out);
        var seed = args.GetValue(Seed);
        var eraName = args.Text(Sd3Era);
        var filesName = args.Text(T5Files);
        var errors = new CliErrors();
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any()) errors.Add($"--out: '{output}' exists and is not empty");
        OutputPath.Check("--out", output, directory: true, create: true, errors);
        errors.ThrowIfAny();
        var era = eraName == "olive" ? Sd3ExportEra.Olive : Sd3ExportEra.Optimum;
        var files = filesName switch
        {
            "spiece.model" => T5TokenizerFormat.SentencePiece,
            "tokenizer.json" => T5TokenizerFormat.TokenizerJson,
            _ => T5TokenizerFormat.Both,
        };
        OutputPath.Write("--out", output, () => ExportMiniature.StableDiffusion3(output, era, files, withVaeConfig: true, seed));
        Console.WriteLine($"wrote a miniature SD3 export ({eraName}, T5 files: {filesName}, seed {seed}) to {Path.GetFullPath(output)}");
        PrintFiles(output);
        return 0;
    }

    private static int WriteMiniature(ParseResult args, bool sdxl)
    {
        var output = args.Text(Out);
        var seed = args.GetValue(Seed);
        var era = Eras.First(e => e.Name == args.GetValue(sdxl ? SdxlEra : Era));
        var predictionName = args.Text(sdxl ? SdxlPrediction : Prediction);
        var prediction = predictionName == "v_prediction" ? PredictionType.VPrediction : PredictionType.Epsilon;
        var errors = new CliErrors();
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any()) errors.Add($"--out: '{output}' exists and is not empty");
        OutputPath.Check("--out", output, directory: true, create: true, errors);
        errors.ThrowIfAny();
        OutputPath.Write("--out", output, () =>
        {
            if (sdxl) ExportMiniature.StableDiffusionXL(output, era.Era, seed);
            else
                ExportMiniature.StableDiffusion(output, era.Era, prediction,
                    prediction == PredictionType.VPrediction ? "DDIMScheduler" : "PNDMScheduler", seed);
        });
        Console.WriteLine($"wrote a miniature {(sdxl ? "SDXL" : "SD")} export ({era.Name}, {predictionName}, seed {seed}) to {Path.GetFullPath(output)}");
        PrintFiles(output);
        return 0;
    }
}
