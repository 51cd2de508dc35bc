using System.Globalization;
using Trident.Runtime.Onnx;

namespace Trident.Api.Cli;

/// <summary>The <c>--device cpu|cuda:N</c> option of the commands that run a pipeline in process.</summary>
internal static class DeviceOption
{
    /// <summary>The provider <paramref name="device"/> names (CPU with one thread per core by default); a bad value is
    /// reported as an error of <c>--device</c> and the CPU returned in its place.</summary>
    public static ExecutionProvider Parse(CliArgs args, string device)
    {
        if (device == "cpu") return new ExecutionProvider.Cpu(Environment.ProcessorCount);
        if (device.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(device.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal))
            return new ExecutionProvider.Cuda(ordinal);
        args.Error($"--device: '{device}' is not 'cpu' or 'cuda:N'");
        return new ExecutionProvider.Cpu(Environment.ProcessorCount);
    }
}
