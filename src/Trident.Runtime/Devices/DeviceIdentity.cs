// What a device is, by name, for keys that must change when the hardware does (the quick-profile cache): a
// profile measured on one GPU model or CPU is wrong for another, even with the same core count and provider.
//
// Design note. A CUDA device's name comes from nvidia-smi (DeviceMemory.Cuda: the same query the server makes
// for the device's memory); a CPU slot's from the first "model name" line of /proc/cpuinfo; an emulated
// device has no hardware. A name that cannot be read is "unknown" — the key then still separates it from
// every named device, and the reason is not part of it (a transient failure must not change the key twice).

namespace Trident.Runtime.Devices;

/// <summary>Model names of devices (e.g. "NVIDIA H200", "AMD EPYC 7763 64-Core Processor").</summary>
public static class DeviceIdentity
{
    /// <summary>What a name that cannot be read is called.</summary>
    public const string Unknown = "unknown";

    /// <summary>The model name of one device: nvidia-smi's name for a CUDA device, /proc/cpuinfo's
    /// "model name" for a CPU slot, "emulated" for an emulated device; <see cref="Unknown"/> when it cannot be
    /// read. Never throws.</summary>
    public static string Of(DeviceSpec device) => device.Kind switch
    {
        DeviceKind.Cuda => CudaName(device.CudaOrdinal),
        DeviceKind.Cpu => CpuModel(File.Exists("/proc/cpuinfo") ? SafeLines("/proc/cpuinfo") : []),
        _ => "emulated",
    };

    /// <summary>The distinct model names of a layout's devices, in device order.</summary>
    public static IReadOnlyList<string> Names(DeviceLayout layout) =>
        layout.Devices.Select(Of).Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>The first "model name" of /proc/cpuinfo-style lines ("model name\t: X"), trimmed;
    /// <see cref="Unknown"/> when there is none (e.g. some ARM kernels name no model).</summary>
    public static string CpuModel(IEnumerable<string> cpuinfoLines)
    {
        foreach (var line in cpuinfoLines)
        {
            var colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Trim() == "model name")
            {
                var name = line[(colon + 1)..].Trim();
                if (name.Length > 0) return name;
            }
        }
        return Unknown;
    }

    private static string CudaName(int ordinal)
    {
        try
        {
            return DeviceMemory.Cuda(ordinal).Name;
        }
        catch (DeviceMemoryException)
        {
            return Unknown;
        }
    }

    private static IEnumerable<string> SafeLines(string path)
    {
        try
        {
            return File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
