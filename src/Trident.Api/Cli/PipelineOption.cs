using System.CommandLine;
using Trident.Runtime.Execution;
using Trident.Runtime.Onnx;
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

    /// <summary>Opens the pipeline in <paramref name="directory"/> (its tokenizer files read) and loads and checks every
    /// model against its manifest (<see cref="LoadedPipeline.Verify"/>), on sessions of <paramref name="intraOpThreads"/>
    /// threads that the pipeline keeps, or, with <paramref name="keepSessions"/> false, releases before returning; a
    /// problem becomes a <c>--pipeline</c> error (and nothing is left open).</summary>
    /// <exception cref="CliException">listing the problems.</exception>
    public static LoadedPipeline Open(string directory, ExecutionProvider? provider, int intraOpThreads, bool keepSessions, CancellationToken cancellationToken)
    {
        LoadedPipeline? pipeline = null;
        try
        {
            pipeline = LoadedPipeline.Open(directory, provider);
            if (keepSessions) pipeline.Verify(intraOpThreads, cancellationToken);
            else
                using (var check = pipeline.Reopen())
                    check.Verify(intraOpThreads, cancellationToken);
            return pipeline;
        }
        catch (ManifestException e)
        {
            pipeline?.Dispose();
            throw new CliException([$"--pipeline: {e.Message}"]);
        }
        catch
        {
            pipeline?.Dispose();
            throw;
        }
    }
}
