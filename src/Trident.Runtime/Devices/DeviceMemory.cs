// How much memory a device has, asked of the device itself (never a constant).
//
// Design note. CUDA: `nvidia-smi --query-gpu=memory.total,memory.free,name --format=csv,noheader,nounits -i N`
// (MiB), the one tool every NVIDIA driver installs; when it is missing or fails, the error says so and names
// the device, since the planners cannot place models without the number. CPU: MemTotal from /proc/meminfo
// times the configured share, divided among the CPU slots by the caller.

using System.Diagnostics;
using System.Globalization;

namespace Trident.Runtime.Devices;

/// <summary>A device's memory: total and currently free, in bytes, and what the device calls itself.</summary>
public sealed record DeviceMemoryInfo(long TotalBytes, long FreeBytes, string Name);

/// <summary>The device's memory could not be read.</summary>
public sealed class DeviceMemoryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Reads device memory from the device.</summary>
public static class DeviceMemory
{
    /// <summary>Total and free memory of CUDA device <paramref name="ordinal"/>, from nvidia-smi.</summary>
    /// <exception cref="DeviceMemoryException">when nvidia-smi is absent, fails, or does not know the device.</exception>
    public static DeviceMemoryInfo Cuda(int ordinal)
    {
        var device = $"cuda:{ordinal}";
        string output;
        try
        {
            var start = new ProcessStartInfo("nvidia-smi",
                ["--query-gpu=memory.total,memory.free,name", "--format=csv,noheader,nounits", "-i", ordinal.ToString(CultureInfo.InvariantCulture)])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start) ?? throw new DeviceMemoryException($"device {device}: nvidia-smi did not start");
            output = process.StandardOutput.ReadToEnd();
            var error = process.StandardError.ReadToEnd();
            if (!process.WaitForExit(10_000)) throw new DeviceMemoryException($"device {device}: nvidia-smi did not answer within 10 s");
            if (process.ExitCode != 0)
                throw new DeviceMemoryException($"device {device}: nvidia-smi failed (exit {process.ExitCode}): {(error + output).Trim()}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new DeviceMemoryException(
                $"device {device}: cannot read its memory: nvidia-smi is not installed or not on PATH (it comes with the NVIDIA driver). " +
                "Set Trident:Devices:MemoryGb to give the memory yourself, or configure CPU devices.", e);
        }
        var fields = output.Trim().Split(',', StringSplitOptions.TrimEntries);
        if (fields.Length < 3 || !long.TryParse(fields[0], CultureInfo.InvariantCulture, out var totalMib) || !long.TryParse(fields[1], CultureInfo.InvariantCulture, out var freeMib))
            throw new DeviceMemoryException($"device {device}: unexpected nvidia-smi output '{output.Trim()}'");
        return new DeviceMemoryInfo(totalMib << 20, freeMib << 20, fields[2]);
    }

    /// <summary>Total and available memory of this machine from /proc/meminfo.</summary>
    /// <exception cref="DeviceMemoryException">when /proc/meminfo cannot be read.</exception>
    public static DeviceMemoryInfo Host()
    {
        long total = 0, available = 0;
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal)) total = Kib(line);
                else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)) available = Kib(line);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DeviceMemoryException("cannot read /proc/meminfo for the CPU devices' memory; set Trident:Devices:MemoryGb", e);
        }
        if (total <= 0) throw new DeviceMemoryException("/proc/meminfo has no MemTotal line; set Trident:Devices:MemoryGb");
        return new DeviceMemoryInfo(total, available > 0 ? available : total, "host memory");
    }

    /// <summary>Memory of each of <paramref name="slots"/> CPU slots: MemTotal × <paramref name="share"/> / slots, in GB.</summary>
    public static double CpuSlotGb(double share, int slots) => Host().TotalBytes * share / slots / 1e9;

    private static long Kib(string line)
    {
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 2 && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var kib) ? kib * 1024 : 0;
    }
}
