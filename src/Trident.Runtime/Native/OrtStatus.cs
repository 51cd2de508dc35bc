// Turns an OrtStatus* into an exception.
//
// Design note. Every ORT function that can fail returns OrtStatus*: NULL on success, otherwise an object
// that the caller owns and must release. Check reads the code and ORT's own message, releases the status in
// `finally` (so even a failing read cannot leak it) and throws OrtException. Every status-returning call in
// the binding goes through Check; none is ignored.

using System.Runtime.InteropServices;

namespace Trident.Runtime.Native;

/// <summary>ONNX Runtime error codes (OrtErrorCode in onnxruntime_c_api.h, same numeric values).</summary>
public enum OrtErrorCode
{
    Ok = 0,
    Fail = 1,
    InvalidArgument = 2,
    NoSuchFile = 3,
    NoModel = 4,
    EngineError = 5,
    RuntimeException = 6,
    InvalidProtobuf = 7,
    ModelLoaded = 8,
    NotImplemented = 9,
    InvalidGraph = 10,
    EpFail = 11,
    ModelLoadCanceled = 12,
    ModelRequiresCompilation = 13,
    NotFound = 14,
    DeviceReset = 15,
}

/// <summary>An ONNX Runtime call failed. <see cref="Exception.Message"/> carries ORT's own message.</summary>
public sealed class OrtException : Exception
{
    public OrtException(OrtErrorCode code, string message, Exception? inner = null)
        : base(message, inner) => Code = code;

    /// <summary>The error code ORT reported.</summary>
    public OrtErrorCode Code { get; }
}

internal static unsafe class OrtStatus
{
    /// <summary>Returns when <paramref name="status"/> is NULL; otherwise releases it and throws OrtException.</summary>
    public static void Check(IntPtr status)
    {
        if (status == IntPtr.Zero) return;
        var api = OrtApi.Instance;
        OrtErrorCode code;
        string message;
        try
        {
            code = (OrtErrorCode)api.GetErrorCode(status);
            message = Marshal.PtrToStringUTF8((IntPtr)api.GetErrorMessage(status)) ?? "(ONNX Runtime gave no message)";
        }
        finally
        {
            api.ReleaseStatus(status);
        }
        throw new OrtException(code, message);
    }
}
