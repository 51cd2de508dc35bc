using System.CommandLine;
using System.Globalization;
using Trident.Runtime.Onnx;

namespace Trident.Api.Cli;

/// <summary>The <c>--device cpu|cuda:N</c> option of the commands that run a pipeline in process.</summary>
internal static class DeviceOption
{
    /// <summary>A new <c>--device</c> option (default <c>cpu</c>), checked as it is parsed.</summary>
    public static Option<string> Create()
    {
        var o = Opt.String("--device", "where to run: cpu (one thread per core) or cuda:N (the CUDA device N)", "cpu", helpName: "cpu|cuda:N");
        o.Validators.Add(r =>
        {
            if (r.Tokens.Count > 0 && Parse(r.Tokens[^1].Value) is null) r.AddError($"--device: '{r.Tokens[^1].Value}' is not 'cpu' or 'cuda:N'");
        });
        o.CompletionSources.Add("cpu", "cuda:0");
        return o;
    }

    /// <summary>The provider <paramref name="device"/> names (CPU with one thread per core), or null when it names none.</summary>
    public static ExecutionProvider? Parse(string device)
    {
        if (device == "cpu") return new ExecutionProvider.Cpu(Environment.ProcessorCount);
        if (device.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(device.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal))
            return new ExecutionProvider.Cuda(ordinal);
        return null;
    }
}
