using Trident.Runtime.Execution;
using Trident.Runtime.Pipelines;

namespace Trident.Api.Cli;

/// <summary>The <c>--pipeline</c> option shared by the commands that run a pipeline in process.</summary>
internal static class PipelineOption
{
    /// <summary>
    /// Resolves <c>--pipeline</c> (a directory, or <c>tiny</c> for the bundled one, written on first use)
    /// and loads its manifest (trident-pipeline.json, or the recognised diffusers/Optimum export). A problem is recorded on <paramref name="args"/> as a <c>--pipeline</c>
    /// error (reported with the others by <see cref="CliArgs.ThrowIfInvalid"/>); the manifest is then null.
    /// </summary>
    public static (string Directory, PipelineManifest? Manifest) Load(CliArgs args, string pipelineArg)
    {
        if (pipelineArg == "") return ("", null);
        try
        {
            var directory = PipelineLocator.Resolve(pipelineArg);
            return (directory, Trident.Runtime.Pipelines.Export.PipelineDirectory.LoadManifest(directory));
        }
        catch (Exception e) when (e is ManifestException or IOException or UnauthorizedAccessException)
        {
            args.Error($"--pipeline: {e.Message}");
            return ("", null);
        }
    }
}
