// Trident's typed ONNX Runtime errors.
//
// Design note. The managed API throws OnnxRuntimeException whose message starts with ORT's code,
// "[ErrorCode:InvalidArgument] …"; the code itself is not a public property, so it is read from that prefix
// once, here, to give callers a typed Code next to ORT's own message — never to decide control flow elsewhere.
// Every error also names the model file and, when known, the stage whose session failed, so a log line says
// which of a pipeline's three models broke.

using Microsoft.ML.OnnxRuntime;

namespace Trident.Runtime.Onnx;

/// <summary>ONNX Runtime error codes (OrtErrorCode in onnxruntime_c_api.h, same names and values).</summary>
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

/// <summary>An ONNX Runtime call failed. <see cref="OrtMessage"/> is ORT's own message, <see cref="Code"/> its code.</summary>
public class OrtException : Exception
{
    /// <summary>Creates the error; <paramref name="message"/> is the full text shown to people.</summary>
    public OrtException(OrtErrorCode code, string ortMessage, string message, string? model = null, string? stage = null, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
        OrtMessage = ortMessage;
        Model = model;
        Stage = stage;
    }

    /// <summary>The error code ORT reported.</summary>
    public OrtErrorCode Code { get; }

    /// <summary>ORT's message, without its "[ErrorCode:…]" prefix.</summary>
    public string OrtMessage { get; }

    /// <summary>The model file (or "(in memory)") of the failing session, when there is one.</summary>
    public string? Model { get; }

    /// <summary>The pipeline stage of that session (e.g. "denoiser"), when known.</summary>
    public string? Stage { get; }

    /// <summary>The typed error for <paramref name="e"/>, naming the model and stage.</summary>
    internal static OrtException From(OnnxRuntimeException e, string what, string? model, string? stage)
    {
        var (code, message) = Split(e.Message);
        var where = stage is null ? $"model {model ?? "(in memory)"}" : $"{stage} model {model ?? "(in memory)"}";
        return new OrtException(code, message, $"{what} failed for the {where}: ONNX Runtime {code}: {message}", model, stage, e);
    }

    /// <summary>ORT's code and message from an OnnxRuntimeException message ("[ErrorCode:Fail] text").</summary>
    internal static (OrtErrorCode Code, string Message) Split(string text)
    {
        const string prefix = "[ErrorCode:";
        if (text.StartsWith(prefix, StringComparison.Ordinal) && text.IndexOf(']') is var end and > 0
            && Enum.TryParse<OrtErrorCode>(text[prefix.Length..end], out var code))
            return (code, text[(end + 1)..].Trim());
        return (OrtErrorCode.Fail, text);
    }
}

/// <summary>An execution provider could not be added for a device (e.g. CUDA without its libraries).</summary>
public sealed class ExecutionProviderException(OrtErrorCode code, string ortMessage, string message, Exception? inner = null)
    : OrtException(code, ortMessage, message, inner: inner);
