// Owned ONNX Runtime objects as SafeHandles.
//
// Design note. Every native pointer the binding owns lives in a SafeHandle whose ReleaseHandle calls the
// matching OrtRelease* function, so an object is released exactly once, whether by Dispose or by the finalizer,
// and never while a call is using it: calls take a HandleLease (DangerousAddRef/DangerousRelease), so a Dispose
// that races with a Run defers the release until the Run is done. The handle object is created *before* the
// native call that fills it (Attach), so that no allocation can fail between ORT creating an object and the
// binding owning it. A session keeps its environment alive by holding a lease on it (see SessionHandle).

using System.Runtime.InteropServices;

namespace Trident.Runtime.Native;

internal abstract class OrtHandle : SafeHandle
{
    protected OrtHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Takes ownership of a pointer ORT just created. Called once, right after the creating call.</summary>
    public void Attach(IntPtr pointer)
    {
        if (!IsInvalid) throw new InvalidOperationException($"{GetType().Name} already owns a pointer.");
        SetHandle(pointer);
    }
}

internal sealed class EnvHandle : OrtHandle
{
    protected override unsafe bool ReleaseHandle() { OrtApi.Instance.ReleaseEnv(handle); return true; }
}

internal sealed class SessionOptionsHandle : OrtHandle
{
    protected override unsafe bool ReleaseHandle() { OrtApi.Instance.ReleaseSessionOptions(handle); return true; }
}

internal sealed class CudaProviderOptionsHandle : OrtHandle
{
    protected override unsafe bool ReleaseHandle() { OrtApi.Instance.ReleaseCUDAProviderOptions(handle); return true; }
}

/// <summary>An OrtSession. While it lives it holds a lease on the environment it was created in.</summary>
internal sealed class SessionHandle : OrtHandle
{
    private SafeHandle? environment;

    /// <summary>Keeps <paramref name="env"/> alive until this session is released.</summary>
    public void HoldEnvironment(SafeHandle env)
    {
        var added = false;
        env.DangerousAddRef(ref added);
        if (added) environment = env;
    }

    protected override unsafe bool ReleaseHandle()
    {
        OrtApi.Instance.ReleaseSession(handle);
        environment?.DangerousRelease();
        return true;
    }
}

internal sealed class MemoryInfoHandle : OrtHandle
{
    protected override unsafe bool ReleaseHandle() { OrtApi.Instance.ReleaseMemoryInfo(handle); return true; }
}

internal sealed class RunOptionsHandle : OrtHandle
{
    protected override unsafe bool ReleaseHandle() { OrtApi.Instance.ReleaseRunOptions(handle); return true; }
}

internal sealed class ValueHandle : OrtHandle
{
    protected override unsafe bool ReleaseHandle() { OrtApi.Instance.ReleaseValue(handle); return true; }
}

internal sealed class TypeInfoHandle : OrtHandle
{
    protected override unsafe bool ReleaseHandle() { OrtApi.Instance.ReleaseTypeInfo(handle); return true; }
}

internal sealed class TensorTypeAndShapeInfoHandle : OrtHandle
{
    protected override unsafe bool ReleaseHandle() { OrtApi.Instance.ReleaseTensorTypeAndShapeInfo(handle); return true; }
}

/// <summary>
/// Keeps a handle from being released while native code uses its pointer. Throws ObjectDisposedException
/// when the handle is already closed.
/// </summary>
internal readonly ref struct HandleLease
{
    private readonly SafeHandle handle;

    public HandleLease(SafeHandle handle)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        this.handle = handle;
        Pointer = handle.DangerousGetHandle();
    }

    public IntPtr Pointer { get; }

    public void Dispose() => handle.DangerousRelease();
}
