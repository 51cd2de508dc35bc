using System.CommandLine;
using Trident.Runtime.Execution;
using Trident.Runtime.Pipelines;
using Trident.Runtime.Pipelines.Export;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident inspect DIR</c> (or <c>tiny</c>, the bundled pipeline): says what a pipeline directory is and how Trident will run it — for a
/// diffusers/Optimum export the recognised family, every component's declared inputs and outputs (element type,
/// shape with dynamic axis names), external weight files, tokenizer, scheduler (and stand-ins), latents,
/// guidance and accepted sizes; for a directory with trident-pipeline.json, its manifest. A directory that is
/// not servable gets one error listing every problem, and exit code 2.
/// </summary>
public static class InspectCommand
{
    private static readonly Argument<string> Dir = new("DIR")
    {
        Description = $"the pipeline directory, or '{PipelineLocator.Tiny}' ('{PipelineLocator.TinyFloat16}') for the bundled one (written on first use), as --pipeline takes it",
    };

    /// <summary>The command.</summary>
    public static Command Command { get; } = new Command("inspect",
        "explain a pipeline directory (a diffusers/Optimum ONNX export, or one with trident-pipeline.json): what was recognised and how it will run") { Dir }
        .With(Run);

    private static Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var arg = args.GetValue(Dir)!;
        string directory;
        try
        {
            // the bundled pipeline by name, as every command's --pipeline takes it
            directory = arg is PipelineLocator.Tiny or PipelineLocator.TinyFloat16 ? PipelineLocator.Resolve(arg) : Path.GetFullPath(arg);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"trident inspect: {e.Message}");
            return Task.FromResult(2);
        }
        if (!Directory.Exists(directory))
        {
            Console.Error.WriteLine(File.Exists(directory)
                ? $"trident inspect: '{directory}' is a file; give a pipeline directory"
                : $"trident inspect: directory '{directory}' does not exist");
            return Task.FromResult(2);
        }
        try
        {
            if (PipelineDirectory.ExportOf(directory) is { } export)
            {
                Console.Write(export.Describe());
                return Task.FromResult(0);
            }
            var manifest = PipelineDirectory.LoadManifest(directory);
            Console.WriteLine(directory);
            Console.WriteLine($"  {PipelineManifest.FileName} (it decides how the pipeline runs):");
            Console.WriteLine(System.Text.Encoding.UTF8.GetString(manifest.ToJson()));
            // the models as they declare themselves, checked against the manifest (what generate and serve check first)
            using var pipeline = Trident.Runtime.Execution.LoadedPipeline.Open(directory);
            pipeline.Verify(1, ct);
            Console.WriteLine("  models (checked against the manifest: names, element types, ranks, fixed axes, the text encoder's width):");
            foreach (var model in pipeline.Models)
            {
                var session = pipeline.Session(model, 1);
                Console.WriteLine($"  {model,-13} {Path.GetRelativePath(directory, pipeline.ModelPath(model)).Replace('\\', '/')}");
                foreach (var i in session.Inputs) Console.WriteLine($"      in  {i.Name}: {i.Describe()}");
                foreach (var o in session.Outputs) Console.WriteLine($"      out {o.Name}: {o.Describe()}");
            }
            return Task.FromResult(0);
        }
        catch (ManifestException e)
        {
            Console.Error.WriteLine($"trident inspect: {e.Message}");
            return Task.FromResult(2);
        }
    }
}
