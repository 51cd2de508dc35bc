// The process's ONNX Runtime: its version, the providers compiled in, and the devices they can run on.
//
// Design note. ORT keeps one OrtEnv per process (OrtEnv.Instance(), created on first use with ORT's default
// logging) and every InferenceSession uses it, so this is a static facade, not an object to pass around.
// Two lists answer two different questions: GetAvailableProviders() is what the library was *compiled* with
// (CUDA and TensorRT are listed even on a machine without a GPU), GetEpDevices() is what can *run* here —
// one entry per (execution provider, hardware device) pair ORT found. /v1/cluster shows the latter.

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

    /// <summary>Whether ORT found a CUDA execution provider device here.</summary>
    public static bool HasCudaDevice => EpDevices.Any(d => d.ExecutionProvider == "CUDAExecutionProvider");

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
