// Locates and loads the ONNX Runtime native library, once per process.
//
// Design note. ONNX Runtime is not a NuGet package here: `dotnet fsi build.fsx -t setup` caches the CPU build
// of ONNX Runtime 1.30.0 at <repo>/.cache/onnxruntime/1.30.0/libonnxruntime.so.1, and a GPU deployment points
// Trident at a CUDA build of the same version. The search order is:
//   1. TRIDENT_ORT_LIBRARY (environment): a path to the library file;
//   2. the path passed by configuration;
//   3. <dir>/.cache/onnxruntime/1.30.0/libonnxruntime.so.1 for every <dir> from AppContext.BaseDirectory up to
//      the file-system root, then likewise from TRIDENT_HOME (environment).
// An explicit path (1 or 2) is authoritative: when it names no file the load fails instead of falling back to
// the search, because silently running on another build (say, the CPU one instead of the CUDA one) is worse
// than stopping. Every failure names each path tried and how to fix it. Location is a pure function of its
// inputs (LoaderInputs) so that tests can exercise failures without touching the process-wide library.

using System.Runtime.InteropServices;

namespace Trident.Runtime.Native;

/// <summary>What the loader looks at: the environment, configuration and the file system, as plain values.</summary>
/// <param name="EnvironmentLibraryPath">Value of TRIDENT_ORT_LIBRARY, or null when unset or empty.</param>
/// <param name="ConfiguredLibraryPath">Path passed by configuration, or null.</param>
/// <param name="BaseDirectory">Directory the search starts from (normally AppContext.BaseDirectory).</param>
/// <param name="TridentHome">Value of TRIDENT_HOME, or null when unset or empty.</param>
/// <param name="FileExists">File-existence test (File.Exists in production).</param>
public sealed record LoaderInputs(
    string? EnvironmentLibraryPath,
    string? ConfiguredLibraryPath,
    string BaseDirectory,
    string? TridentHome,
    Func<string, bool> FileExists)
{
    /// <summary>The inputs of this process: its environment, base directory and file system.</summary>
    public static LoaderInputs FromProcess(string? configuredLibraryPath) =>
        new(
            NullIfEmpty(Environment.GetEnvironmentVariable(NativeLibraryLoader.LibraryVariable)),
            NullIfEmpty(configuredLibraryPath),
            AppContext.BaseDirectory,
            NullIfEmpty(Environment.GetEnvironmentVariable(NativeLibraryLoader.HomeVariable)),
            File.Exists);

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}

/// <summary>Where the library was found, and which rule found it.</summary>
public sealed record LibraryLocation(string Path, string Source);

/// <summary>The ONNX Runtime library could not be found or loaded. The message names every path tried.</summary>
public sealed class OrtLibraryNotFoundException : DllNotFoundException
{
    public OrtLibraryNotFoundException(string message, IReadOnlyList<string> pathsTried, Exception? inner = null)
        : base(message, inner) => PathsTried = pathsTried;

    /// <summary>Every candidate path, in the order it was tried.</summary>
    public IReadOnlyList<string> PathsTried { get; }
}

/// <summary>A loaded ONNX Runtime library: its OS handle and where it came from.</summary>
public sealed record LoadedLibrary(IntPtr Handle, LibraryLocation Location);

/// <summary>Finds and loads libonnxruntime.so.1 (ONNX Runtime 1.30.0), once per process.</summary>
public static class NativeLibraryLoader
{
    /// <summary>Environment variable naming the library file; it overrides everything else.</summary>
    public const string LibraryVariable = "TRIDENT_ORT_LIBRARY";

    /// <summary>Environment variable naming a Trident checkout or installation to search from.</summary>
    public const string HomeVariable = "TRIDENT_HOME";

    /// <summary>The ONNX Runtime version the binding is written and tested against.</summary>
    public const string OrtVersion = "1.30.0";

    /// <summary>The library file name (Linux).</summary>
    public const string LibraryFileName = "libonnxruntime.so.1";

    /// <summary>Where `build.fsx -t setup` caches the library, relative to the repository root.</summary>
    public static readonly string CacheRelativePath = Path.Combine(".cache", "onnxruntime", OrtVersion, LibraryFileName);

    private static readonly object Gate = new();
    private static LoadedLibrary? loaded;

    /// <summary>
    /// Finds the library file for the given inputs, without loading it.
    /// Throws <see cref="OrtLibraryNotFoundException"/> naming every path tried.
    /// </summary>
    public static LibraryLocation Locate(LoaderInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.EnvironmentLibraryPath is { } fromEnvironment)
            return Explicit(inputs, fromEnvironment, $"environment variable {LibraryVariable}");
        if (inputs.ConfiguredLibraryPath is { } fromConfiguration)
            return Explicit(inputs, fromConfiguration, "configuration");

        var tried = new List<string>();
        foreach (var (start, source) in SearchRoots(inputs))
        {
            for (var dir = new DirectoryInfo(Path.GetFullPath(start)); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, CacheRelativePath);
                if (tried.Contains(candidate)) continue;
                tried.Add(candidate);
                if (inputs.FileExists(candidate)) return new LibraryLocation(candidate, source);
            }
        }
        throw NotFound($"ONNX Runtime {OrtVersion} ({LibraryFileName}) was not found.", tried);
    }

    /// <summary>
    /// Loads the library for this process (the first call loads; later calls return the same library).
    /// <paramref name="configuredLibraryPath"/> is the path from configuration, or null to search.
    /// </summary>
    public static LoadedLibrary Load(string? configuredLibraryPath = null)
    {
        lock (Gate)
        {
            if (loaded is not null)
            {
                EnsureSameLibrary(loaded, configuredLibraryPath);
                return loaded;
            }
            var location = Locate(LoaderInputs.FromProcess(configuredLibraryPath));
            try
            {
                loaded = new LoadedLibrary(NativeLibrary.Load(location.Path), location);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw NotFound(
                    $"ONNX Runtime was found at {location.Path} (from {location.Source}) but could not be loaded: {e.Message}",
                    [location.Path], e);
            }
            return loaded;
        }
    }

    private static LibraryLocation Explicit(LoaderInputs inputs, string path, string source)
    {
        var full = Path.GetFullPath(path, inputs.BaseDirectory);
        if (inputs.FileExists(full)) return new LibraryLocation(full, source);
        throw NotFound($"ONNX Runtime library named by {source} does not exist.", [full]);
    }

    private static IEnumerable<(string Start, string Source)> SearchRoots(LoaderInputs inputs)
    {
        yield return (inputs.BaseDirectory, "search from the application base directory");
        if (inputs.TridentHome is { } home) yield return (home, $"search from {HomeVariable}");
    }

    private static OrtLibraryNotFoundException NotFound(string headline, IReadOnlyList<string> tried, Exception? inner = null)
    {
        var lines = string.Join(Environment.NewLine, tried.Select(p => "  " + p));
        var message =
            $"{headline}{Environment.NewLine}" +
            $"Paths tried:{Environment.NewLine}{lines}{Environment.NewLine}" +
            $"To fix: run 'dotnet fsi build.fsx -t setup' in the Trident repository (it caches ONNX Runtime {OrtVersion} " +
            $"in {CacheRelativePath}), or set {LibraryVariable} to the path of {LibraryFileName}, or set {HomeVariable} " +
            "to the repository root when running from outside it.";
        return new OrtLibraryNotFoundException(message, tried, inner);
    }

    // A process holds one ONNX Runtime; asking for a different file afterwards is a configuration error.
    private static void EnsureSameLibrary(LoadedLibrary library, string? configuredLibraryPath)
    {
        if (string.IsNullOrWhiteSpace(configuredLibraryPath)) return;
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(LibraryVariable))) return;
        var requested = Path.GetFullPath(configuredLibraryPath, AppContext.BaseDirectory);
        if (requested != library.Location.Path)
            throw new InvalidOperationException(
                $"ONNX Runtime is already loaded from {library.Location.Path}; a process loads it once, " +
                $"so the configured path {requested} cannot be used.");
    }
}
