// The ONNX Runtime environment: the library, its logger, and the factory for sessions.
//
// Design note. ORT keeps one OrtEnv per process (CreateEnv hands back the same object, reference-counted), and
// its logging settings are those of the first creation. So Trident has one shared environment, created on first
// use from the process's settings (TRIDENT_ORT_LIBRARY or the search of NativeLibraryLoader); Create exists for
// a host that wants to pass the library path and log level from its configuration before anything else runs.
// Sessions hold a lease on the environment's handle, so disposing the environment never pulls it out from
// under a live session.

using System.Runtime.InteropServices;
using Trident.Runtime.Native;

namespace Trident.Runtime.Onnx;

/// <summary>ONNX Runtime log severities (OrtLoggingLevel).</summary>
public enum OrtLogSeverity
{
    Verbose = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
    Fatal = 4,
}

/// <summary>How to create the environment.</summary>
public sealed record OrtEnvironmentOptions
{
    /// <summary>Path of libonnxruntime.so.1 from configuration; null to search (TRIDENT_ORT_LIBRARY still wins).</summary>
    public string? LibraryPath { get; init; }

    /// <summary>Minimum severity ORT logs (to stderr).</summary>
    public OrtLogSeverity LogSeverity { get; init; } = OrtLogSeverity.Warning;

    /// <summary>Identifier ORT puts in its log lines.</summary>
    public string LogId { get; init; } = "trident";
}

/// <summary>The loaded ONNX Runtime and its OrtEnv; creates sessions.</summary>
public sealed class OrtEnvironment : IDisposable
{
    private static readonly Lazy<OrtEnvironment> SharedInstance =
        new(() => new OrtEnvironment(new OrtEnvironmentOptions(), isShared: true));

    private readonly EnvHandle handle;
    private readonly bool isShared;

    private unsafe OrtEnvironment(OrtEnvironmentOptions options, bool isShared)
    {
        var api = OrtApi.Load(options.LibraryPath);
        this.isShared = isShared;
        Version = api.VersionString;
        LibraryPath = api.LibraryPath;
        handle = new EnvHandle();
        IntPtr env;
        var logId = Utf8.NullTerminated(options.LogId);
        fixed (byte* logIdPtr = logId)
            OrtStatus.Check(api.CreateEnv((int)options.LogSeverity, logIdPtr, &env));
        handle.Attach(env);
        try
        {
            AvailableProviders = ReadAvailableProviders(api);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The process's environment, created on first use with default options. Dispose does nothing to it.</summary>
    public static OrtEnvironment Shared => SharedInstance.Value;

    /// <summary>Creates an environment with the given options (the library is still loaded once per process).</summary>
    public static OrtEnvironment Create(OrtEnvironmentOptions options) =>
        new(options ?? throw new ArgumentNullException(nameof(options)), isShared: false);

    /// <summary>ONNX Runtime's version string, e.g. "1.30.0".</summary>
    public string Version { get; }

    /// <summary>The library file this process loaded.</summary>
    public string LibraryPath { get; }

    /// <summary>
    /// Execution providers compiled into the library, e.g. "CPUExecutionProvider". A listed provider may
    /// still fail to load when its own provider library or drivers are missing.
    /// </summary>
    public IReadOnlyList<string> AvailableProviders { get; }

    /// <summary>Loads a model from an .onnx file.</summary>
    public Session CreateSession(string modelPath, SessionOptions? options = null) =>
        Session.FromFile(this, modelPath, options ?? new SessionOptions());

    /// <summary>Loads a model from its serialised bytes.</summary>
    public Session CreateSession(ReadOnlySpan<byte> model, SessionOptions? options = null) =>
        Session.FromBytes(this, model, options ?? new SessionOptions());

    internal EnvHandle Handle => handle;

    /// <summary>Releases this environment's reference; sessions still open keep it alive until they close.</summary>
    public void Dispose()
    {
        if (!isShared) handle.Dispose();
    }

    private static unsafe IReadOnlyList<string> ReadAvailableProviders(OrtApi api)
    {
        byte** names;
        int count;
        OrtStatus.Check(api.GetAvailableProviders(&names, &count));
        try
        {
            var result = new string[count];
            for (var i = 0; i < count; i++) result[i] = Marshal.PtrToStringUTF8((IntPtr)names[i]) ?? "";
            return result;
        }
        finally
        {
            OrtStatus.Check(api.ReleaseAvailableProviders(names, count));
        }
    }
}

internal static class Utf8
{
    /// <summary>UTF-8 bytes of <paramref name="text"/> followed by a NUL.</summary>
    public static byte[] NullTerminated(string text)
    {
        var bytes = new byte[System.Text.Encoding.UTF8.GetByteCount(text) + 1];
        System.Text.Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
