// The backend of emulated devices (Trident:Devices:Kind = emulated): no pipeline files and no ONNX Runtime. The
// profile is the reference profile named by Trident:Emulation:Profile with every latency × TimeScale; each
// device's executor sleeps that profile's predicted durations and accounts for its memory
// (Runtime/Devices/EmulatedStageExecutor.cs). Results are placeholder patterns, not generations.

using Microsoft.Extensions.Logging;
using Trident.Api.Options;
using Trident.Runtime.Devices;
using Trident.Runtime.Pipelines.Tokenizers;
using Trident.Scheduling;

namespace Trident.Api.Hosting;

/// <summary>Emulated devices over a scaled reference profile.</summary>
public sealed class EmulatedServingBackend : IServingBackend
{
    /// <inheritdoc />
    public Task<ServingBackendParts> PrepareAsync(TridentOptions options, DeviceLayout layout, ILogger log, CancellationToken cancellationToken)
    {
        var e = options.Emulation;
        var profile = EmulatedProfile.Scaled(EmulatedProfile.Reference(e.Profile), e.TimeScale);
        var manifest = EmulatedProfile.Manifest(profile);
        var cost = CostModelModule.create(ServerHost.CostSettings(options), profile);
        var executors = new EmulatedStageExecutorFactory(cost, layout.ToCluster().Bandwidths.HostToDevice, e.TimeScale);
        var origin = $"reference profile '{e.Profile}' × time scale {e.TimeScale} (emulated devices; results are placeholder patterns)";
        log.LogInformation("Emulating {Devices} {Profile} device(s) at time scale {Scale}", layout.Devices.Count, e.Profile, e.TimeScale);
        return Task.FromResult(new ServingBackendParts(manifest, executors, profile, origin,
            new ByteTokenizer((Trident.Runtime.Pipelines.ByteTokenizerSettings)manifest.Tokenizer))
        {
            ResultSize = (width, height) => EmulatedStageExecutor.PlaceholderSize(width, height),
        });
    }

    /// <summary>The emulated devices the options describe: Devices:Count of them (0: 8), in nodes of
    /// Devices:DevicesPerNode (0: 8), each with Devices:MemoryGb (0: the profile's device memory).</summary>
    public static DeviceLayout Layout(TridentOptions options)
    {
        var d = options.Devices;
        var memory = d.MemoryGb > 0 ? d.MemoryGb : (double)EmulatedProfile.Reference(options.Emulation.Profile).DeviceMemory;
        return DeviceLayout.Emulated(
            d.Count == 0 ? EmulationOptions.ReferenceNodeSize : d.Count,
            d.DevicesPerNode == 0 ? EmulationOptions.ReferenceNodeSize : d.DevicesPerNode,
            memory);
    }
}

/// <summary>Chooses the backend by the configured device kind.</summary>
public static class ServingBackends
{
    /// <summary>A cluster's coordinator (remote devices) when Cluster:Mode is not none; else emulated devices
    /// for Devices:Kind = emulated; else ONNX Runtime.</summary>
    public static IServingBackend For(TridentOptions options, IServiceProvider services) =>
        options.Cluster.Mode != ClusterOptions.ModeNone
            ? new ClusterServingBackend(services.GetRequiredService<Orleans.IGrainFactory>(), services.GetRequiredService<Orleans.Runtime.ILocalSiloDetails>())
            : options.Devices.Kind == EmulationOptions.Kind ? new EmulatedServingBackend() : new OnnxServingBackend();

    /// <summary>The devices the options describe (emulated or not).</summary>
    public static DeviceLayout Layout(TridentOptions options) =>
        options.Devices.Kind == EmulationOptions.Kind ? EmulatedServingBackend.Layout(options) : ServerHost.Layout(options.Devices);
}
