using System.CommandLine;
using Trident.Runtime.Execution;
using Trident.Runtime.Pipelines;

namespace Trident.Api.Cli;

/// <summary>The <c>--pipeline</c> option shared by the commands that run a pipeline in process.</summary>
internal static class PipelineOption
{
    /// <summary>A new <c>--pipeline DIR|tiny</c> option (<paramref name="default"/>: none, then required).</summary>
    public static Option<string> Create(string? @default = null) =>
        Opt.String("--pipeline", "the pipeline: a directory (trident-pipeline.json, or a diffusers/Optimum ONNX export) or 'tiny' (the bundled one, written on first use)",
            @default, required: @default is null, helpName: "DIR|tiny");

    /// <summary>
    /// Resolves <c>--pipeline</c> (a directory, or <c>tiny</c> for the bundled one, written on first use)
    /// and loads its manifest (trident-pipeline.json, or the recognised diffusers/Optimum export). A problem is added to
    /// <paramref name="errors"/> as a <c>--pipeline</c> error; the manifest is then null.
    /// </summary>
    public static (string Directory, PipelineManifest? Manifest) Load(string pipelineArg, CliErrors errors)
    {
        if (pipelineArg == "") return ("", null);
        try
        {
            var directory = PipelineLocator.Resolve(pipelineArg);
            return (directory, Trident.Runtime.Pipelines.Export.PipelineDirectory.LoadManifest(directory));
        }
        catch (Exception e) when (e is ManifestException or IOException or UnauthorizedAccessException)
        {
            errors.Add($"--pipeline: {e.Message}");
            return ("", null);
        }
    }

    /// <summary>Loads and checks every model of <paramref name="pipeline"/> against its manifest
    /// (<see cref="LoadedPipeline.Verify"/>); its problems become a <c>--pipeline</c> error.</summary>
    /// <exception cref="CliException">listing the problems.</exception>
    public static void Verify(LoadedPipeline pipeline, int intraOpThreads, CancellationToken cancellationToken)
    {
        try
        {
            pipeline.Verify(intraOpThreads, cancellationToken);
        }
        catch (ManifestException e)
        {
            throw new CliException([$"--pipeline: {e.Message}"]);
        }
    }
}
