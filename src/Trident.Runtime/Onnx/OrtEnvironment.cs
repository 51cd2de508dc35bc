// The process's ONNX Runtime: its version, the providers compiled in, and the devices they can run on.
//
// Design note. ORT keeps one OrtEnv per process (OrtEnv.Instance(), created on first use with ORT's default
// logging) and every InferenceSession uses it, so this is a static facade, not an object to pass around.
// Two lists answer two different questions: GetAvailableProviders() is what the library was *compiled* with
// (CUDA and TensorRT are listed even on a machine without a GPU), GetEpDevices() is what can *run* here —
// one entry per (execution provider, hardware device) pair ORT found. /v1/cluster shows the latter.
// GetEpDevices() does not list the CUDA provider that the GPU package bundles (it lists only providers
// registered as plug-in libraries): measured on an H200 with ORT 1.31.0 (scripts/gpu-check.sh, 2026-11-30), the
// list held the CPU alone while CUDA sessions ran. Whether CUDA can run is therefore answered by creating one.

using Microsoft.ML.OnnxRuntime;

namespace Trident.Runtime.Onnx;

/// <summary>One execution provider on one hardware device, as ORT found it on this machine.</summary>
/// <param name="ExecutionProvider">ORT's provider name, e.g. CPUExecutionProvider.</param>
/// <param name="ProviderVendor">The provider's vendor.</param>
/// <param name="DeviceType">cpu, gpu or npu.</param>
/// <param name="DeviceVendor">The hardware vendor.</param>
/// <param name="VendorId">PCI vendor id (0x10de = NVIDIA).</param>
/// <param name="DeviceId">The hardware device id ORT reports.</param>
public sealed record EpDeviceInfo(string ExecutionProvider, string ProviderVendor, string DeviceType, string DeviceVendor, uint VendorId, uint DeviceId);

/// <summary>The process's ONNX Runtime environment.</summary>
public static class OrtEnvironment
{
    private static readonly Lazy<IReadOnlyList<EpDeviceInfo>> Devices = new(ReadEpDevices);

    /// <summary>ORT's version string, e.g. "1.31.0".</summary>
    public static string Version => OrtEnv.Instance().GetVersionString();

    /// <summary>Providers compiled into the library (not necessarily runnable here).</summary>
    public static IReadOnlyList<string> CompiledProviders => OrtEnv.Instance().GetAvailableProviders();

    /// <summary>The (provider, device) pairs that can run on this machine; read once per process.</summary>
    public static IReadOnlyList<EpDeviceInfo> EpDevices => Devices.Value;

    /// <summary>Whether a CUDA session can run here: ORT lists a CUDA provider device, or — where the NVIDIA
    /// driver (libcuda.so.1) loads — a one-node model loads on cuda:0. Answered once per process; without a driver
    /// it returns false without touching ORT's CUDA provider (no error line on stderr).</summary>
    public static bool HasCudaDevice => EpDevices.Any(d => d.ExecutionProvider == "CUDAExecutionProvider") || CudaSessionRuns.Value;

    private static readonly Lazy<bool> CudaSessionRuns = new(ProbeCudaSession);

    private static bool ProbeCudaSession()
    {
        if (!System.Runtime.InteropServices.NativeLibrary.TryLoad("libcuda.so.1", out var driver)) return false;
        System.Runtime.InteropServices.NativeLibrary.Free(driver);
        var g = new ModelWriter.GraphBuilder("cuda_probe");
        var x = g.Input("x", TensorElementType.Float, ModelWriter.Dim.Fixed(1));
        g.Output(g.Identity(x), "y", TensorElementType.Float, ModelWriter.Dim.Fixed(1));
        try
        {
            using var session = Session.Load(g.ToBytes(), new SessionSettings { Provider = new ExecutionProvider.Cuda(0) });
            return true;
        }
        catch (Exception e) when (e is OnnxRuntimeException or OrtException)
        {
            return false;
        }
    }

    private static IReadOnlyList<EpDeviceInfo> ReadEpDevices()
    {
        var result = new List<EpDeviceInfo>();
        foreach (var d in OrtEnv.Instance().GetEpDevices())
        {
            var hw = d.HardwareDevice;
            result.Add(new EpDeviceInfo(d.EpName, d.EpVendor, hw.Type.ToString().ToLowerInvariant(), hw.Vendor, hw.VendorId, hw.DeviceId));
        }
        return result;
    }
}
