// The ONNX Runtime C function table, bound from C# through unmanaged function pointers.
//
// Design note. `OrtGetApiBase()` returns { GetApi(version), GetVersionString() }; GetApi returns the `OrtApi`
// struct of onnxruntime_c_api.h: a table of function pointers, append-only across releases, so a slot index
// never changes meaning. We pin API version 23 (ONNX Runtime 1.23): every slot used here exists since version
// 11, and asking for 23 rather than 30 keeps the binding loadable on any build from 1.23 on, while the library
// the project ships is 1.30.0. Only the functions Trident calls are bound. Each slot index below was counted
// in the C header (each ORT_API2_STATUS / ORT_CLASS_RELEASE / function-pointer member is one slot, zero-based)
// and agrees with the indexes that shared/platform.md lists as checked with a C compiler.
//
// C types map as: OrtX* -> IntPtr, size_t -> nuint, int64_t* -> long*, char* -> byte* (UTF-8), enums -> int.
// Functions returning OrtStatus* return IntPtr, which callers pass to OrtStatus.Check.

using System.Runtime.InteropServices;

namespace Trident.Runtime.Native;

internal sealed unsafe class OrtApi
{
    /// <summary>The ORT_API_VERSION asked of GetApi.</summary>
    public const uint ApiVersion = 23;

    private static readonly object Gate = new();
    private static OrtApi? instance;

    /// <summary>The table of the loaded library. Only valid after <see cref="Load"/> succeeded.</summary>
    public static OrtApi Instance =>
        Volatile.Read(ref instance) ?? throw new InvalidOperationException("ONNX Runtime is not loaded yet.");

    /// <summary>Loads the library (once per process) and reads its function table.</summary>
    public static OrtApi Load(string? configuredLibraryPath)
    {
        lock (Gate)
        {
            var library = NativeLibraryLoader.Load(configuredLibraryPath);
            if (instance is not null) return instance;

            if (!NativeLibrary.TryGetExport(library.Handle, "OrtGetApiBase", out var getApiBase))
                throw new OrtLibraryNotFoundException(
                    $"{library.Location.Path} does not export OrtGetApiBase: it is not an ONNX Runtime library.",
                    [library.Location.Path]);

            var apiBase = (IntPtr*)((delegate* unmanaged[Cdecl]<IntPtr>)getApiBase)();
            var getApi = (delegate* unmanaged[Cdecl]<uint, IntPtr>)apiBase[0];
            var getVersionString = (delegate* unmanaged[Cdecl]<byte*>)apiBase[1];
            var version = Marshal.PtrToStringUTF8((IntPtr)getVersionString()) ?? "unknown";
            var table = getApi(ApiVersion);
            if (table == IntPtr.Zero)
                throw new OrtLibraryNotFoundException(
                    $"ONNX Runtime {version} at {library.Location.Path} does not provide C API version {ApiVersion}; " +
                    $"Trident needs ONNX Runtime {NativeLibraryLoader.OrtVersion} (at least 1.23).",
                    [library.Location.Path]);

            Volatile.Write(ref instance, new OrtApi((IntPtr*)table, version, library.Location.Path));
            return instance!;
        }
    }

    /// <summary>The version string of the loaded library, e.g. "1.30.0".</summary>
    public readonly string VersionString;

    /// <summary>The file the library was loaded from.</summary>
    public readonly string LibraryPath;

    // --- OrtStatus -------------------------------------------------------------------------------------
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int> GetErrorCode;                        // 1
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte*> GetErrorMessage;                   // 2
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseStatus;                      // 93

    // --- OrtEnv ----------------------------------------------------------------------------------------
    public readonly delegate* unmanaged[Cdecl]<int, byte*, IntPtr*, IntPtr> CreateEnv;           // 3
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseEnv;                         // 92
    public readonly delegate* unmanaged[Cdecl]<byte***, int*, IntPtr> GetAvailableProviders;     // 125
    public readonly delegate* unmanaged[Cdecl]<byte**, int, IntPtr> ReleaseAvailableProviders;   // 126

    // --- OrtSessionOptions -----------------------------------------------------------------------------
    public readonly delegate* unmanaged[Cdecl]<IntPtr*, IntPtr> CreateSessionOptions;            // 10
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetSessionExecutionMode;     // 13
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetSessionLogSeverityLevel;  // 22
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetSessionGraphOptimizationLevel; // 23
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetIntraOpNumThreads;        // 24
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetInterOpNumThreads;        // 25
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseSessionOptions;              // 100
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, IntPtr> AddSessionConfigEntry; // 130

    // --- CUDA execution provider (OrtCUDAProviderOptionsV2 is opaque) -----------------------------------
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr> SessionOptionsAppendExecutionProvider_CUDA_V2; // 204
    public readonly delegate* unmanaged[Cdecl]<IntPtr*, IntPtr> CreateCUDAProviderOptions;       // 205
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte**, byte**, nuint, IntPtr> UpdateCUDAProviderOptions; // 206
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseCUDAProviderOptions;         // 208

    // --- OrtSession ------------------------------------------------------------------------------------
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, IntPtr, IntPtr*, IntPtr> CreateSession; // 7
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, IntPtr, IntPtr*, IntPtr> CreateSessionFromArray; // 8
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr*, IntPtr*, nuint, IntPtr*, nuint, IntPtr*, IntPtr> Run; // 9
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> SessionGetInputCount;     // 30
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> SessionGetOutputCount;    // 31
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr*, IntPtr> SessionGetInputTypeInfo;  // 33
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr*, IntPtr> SessionGetOutputTypeInfo; // 34
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr, byte**, IntPtr> SessionGetInputName;  // 36
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr, byte**, IntPtr> SessionGetOutputName; // 37
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseSession;                     // 95

    // --- OrtRunOptions ---------------------------------------------------------------------------------
    public readonly delegate* unmanaged[Cdecl]<IntPtr*, IntPtr> CreateRunOptions;                // 39
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> RunOptionsSetTerminate;           // 46
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseRunOptions;                  // 97

    // --- OrtValue (tensors) ----------------------------------------------------------------------------
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr> CreateTensorWithDataAsOrtValue; // 49
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void**, IntPtr> GetTensorMutableData;     // 51
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, IntPtr> GetTensorTypeAndShape;   // 65
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseValue;                       // 96

    // --- OrtTypeInfo / OrtTensorTypeAndShapeInfo -------------------------------------------------------
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, IntPtr> CastTypeInfoToTensorInfo; // 55 (result owned by the type info)
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr> GetOnnxTypeFromTypeInfo;    // 56
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr> GetTensorElementType;       // 60
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> GetDimensionsCount;       // 61
    public readonly delegate* unmanaged[Cdecl]<IntPtr, long*, nuint, IntPtr> GetDimensions;      // 62
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> GetTensorShapeElementCount; // 64
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseTypeInfo;                    // 98
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseTensorTypeAndShapeInfo;      // 99

    // --- OrtMemoryInfo / OrtAllocator ------------------------------------------------------------------
    public readonly delegate* unmanaged[Cdecl]<int, int, IntPtr*, IntPtr> CreateCpuMemoryInfo;   // 69
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseMemoryInfo;                  // 94
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void*, IntPtr> AllocatorFree;             // 76
    public readonly delegate* unmanaged[Cdecl]<IntPtr*, IntPtr> GetAllocatorWithDefaultOptions;  // 78

    private OrtApi(IntPtr* table, string versionString, string libraryPath)
    {
        VersionString = versionString;
        LibraryPath = libraryPath;

        GetErrorCode = (delegate* unmanaged[Cdecl]<IntPtr, int>)table[1];
        GetErrorMessage = (delegate* unmanaged[Cdecl]<IntPtr, byte*>)table[2];
        ReleaseStatus = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[93];

        CreateEnv = (delegate* unmanaged[Cdecl]<int, byte*, IntPtr*, IntPtr>)table[3];
        ReleaseEnv = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[92];
        GetAvailableProviders = (delegate* unmanaged[Cdecl]<byte***, int*, IntPtr>)table[125];
        ReleaseAvailableProviders = (delegate* unmanaged[Cdecl]<byte**, int, IntPtr>)table[126];

        CreateSessionOptions = (delegate* unmanaged[Cdecl]<IntPtr*, IntPtr>)table[10];
        SetSessionExecutionMode = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)table[13];
        SetSessionLogSeverityLevel = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)table[22];
        SetSessionGraphOptimizationLevel = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)table[23];
        SetIntraOpNumThreads = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)table[24];
        SetInterOpNumThreads = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)table[25];
        ReleaseSessionOptions = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[100];
        AddSessionConfigEntry = (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, IntPtr>)table[130];

        SessionOptionsAppendExecutionProvider_CUDA_V2 = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr>)table[204];
        CreateCUDAProviderOptions = (delegate* unmanaged[Cdecl]<IntPtr*, IntPtr>)table[205];
        UpdateCUDAProviderOptions = (delegate* unmanaged[Cdecl]<IntPtr, byte**, byte**, nuint, IntPtr>)table[206];
        ReleaseCUDAProviderOptions = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[208];

        CreateSession = (delegate* unmanaged[Cdecl]<IntPtr, byte*, IntPtr, IntPtr*, IntPtr>)table[7];
        CreateSessionFromArray = (delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, IntPtr, IntPtr*, IntPtr>)table[8];
        Run = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr*, IntPtr*, nuint, IntPtr*, nuint, IntPtr*, IntPtr>)table[9];
        SessionGetInputCount = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)table[30];
        SessionGetOutputCount = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)table[31];
        SessionGetInputTypeInfo = (delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr*, IntPtr>)table[33];
        SessionGetOutputTypeInfo = (delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr*, IntPtr>)table[34];
        SessionGetInputName = (delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr, byte**, IntPtr>)table[36];
        SessionGetOutputName = (delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr, byte**, IntPtr>)table[37];
        ReleaseSession = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[95];

        CreateRunOptions = (delegate* unmanaged[Cdecl]<IntPtr*, IntPtr>)table[39];
        RunOptionsSetTerminate = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)table[46];
        ReleaseRunOptions = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[97];

        CreateTensorWithDataAsOrtValue = (delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr>)table[49];
        GetTensorMutableData = (delegate* unmanaged[Cdecl]<IntPtr, void**, IntPtr>)table[51];
        GetTensorTypeAndShape = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, IntPtr>)table[65];
        ReleaseValue = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[96];

        CastTypeInfoToTensorInfo = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, IntPtr>)table[55];
        GetOnnxTypeFromTypeInfo = (delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr>)table[56];
        GetTensorElementType = (delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr>)table[60];
        GetDimensionsCount = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)table[61];
        GetDimensions = (delegate* unmanaged[Cdecl]<IntPtr, long*, nuint, IntPtr>)table[62];
        GetTensorShapeElementCount = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)table[64];
        ReleaseTypeInfo = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[98];
        ReleaseTensorTypeAndShapeInfo = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[99];

        CreateCpuMemoryInfo = (delegate* unmanaged[Cdecl]<int, int, IntPtr*, IntPtr>)table[69];
        ReleaseMemoryInfo = (delegate* unmanaged[Cdecl]<IntPtr, void>)table[94];
        AllocatorFree = (delegate* unmanaged[Cdecl]<IntPtr, void*, IntPtr>)table[76];
        GetAllocatorWithDefaultOptions = (delegate* unmanaged[Cdecl]<IntPtr*, IntPtr>)table[78];
    }
}
