// Where pipelines come from: a directory, or the bundled tiny pipeline written on demand into a cache.
//
// Design note. `tiny` names the bundled pipeline with seed 0. It is written once into
// <home>/.cache/pipelines/tiny-0 and reused (TinyPipeline.EnsureCached rewrites it when the generator
// changes). <home> is TRIDENT_HOME when set, else the nearest ancestor of the executable's directory that
// holds Trident.sln — the repository root — else the current directory.

using Trident.Runtime.Pipelines.Tiny;

namespace Trident.Runtime.Execution;

/// <summary>Resolves a pipeline argument (a directory or <c>tiny</c>) to a pipeline directory.</summary>
public static class PipelineLocator
{
    /// <summary>The name that selects the bundled tiny pipeline.</summary>
    public const string Tiny = TinyPipeline.Name;

    /// <summary>The name that selects the float16 variant of the bundled tiny pipeline.</summary>
    public const string TinyFloat16 = TinyPipeline.Float16Name;

    /// <summary>Seed of the tiny pipeline that <c>tiny</c> names.</summary>
    public const ulong TinySeed = 0;

    /// <summary>
    /// The pipeline directory for <paramref name="pipeline"/>: the tiny pipeline's cache folder (written
    /// first if needed) for <c>tiny</c>, else the directory itself.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">when a directory is named that does not exist.</exception>
    public static string Resolve(string pipeline, string? home = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pipeline);
        if (pipeline == Tiny) return TinyPipeline.EnsureCached(CacheRoot(home), TinySeed);
        if (pipeline == TinyFloat16) return TinyPipeline.EnsureCached(CacheRoot(home), TinySeed, float16: true);
        var full = Path.GetFullPath(pipeline);
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException(File.Exists(full)
                ? $"'{full}' is a file, not a pipeline directory (give the export's directory, or pass '{Tiny}' or '{TinyFloat16}' for the bundled pipeline)"
                : $"pipeline directory '{full}' does not exist (or pass '{Tiny}' or '{TinyFloat16}' for the bundled pipeline)");
        return full;
    }

    /// <summary>The folder that holds cached pipelines: &lt;home&gt;/.cache/pipelines.</summary>
    public static string CacheRoot(string? home = null) => Path.Combine(home ?? FindHome(), ".cache", "pipelines");

    /// <summary>The environment variable naming Trident's home (caches of pipelines and profiles).</summary>
    public const string HomeVariable = "TRIDENT_HOME";

    /// <summary>TRIDENT_HOME, else the nearest ancestor of the executable's directory holding Trident.sln,
    /// else the current directory.</summary>
    public static string FindHome()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(HomeVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) return Path.GetFullPath(fromEnvironment);
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Trident.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
