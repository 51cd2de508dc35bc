// Section "Trident:Emulation": what emulated devices (Trident:Devices:Kind = emulated) emulate. `trident serve
// --emulate flux --devices 128 --time-scale 0.05` sets these keys (and Devices:Kind, Devices:Count).

namespace Trident.Api.Options;

/// <summary>Section <c>Trident:Emulation</c>: the reference profile emulated devices run and the time scale.</summary>
public sealed class EmulationOptions
{
    /// <summary>The value of <c>Trident:Devices:Kind</c> that selects emulated devices.</summary>
    public const string Kind = "emulated";

    /// <summary>Devices when <c>Trident:Devices:Count</c> is 0, and devices per node when
    /// <c>Trident:Devices:DevicesPerNode</c> is 0: one node of the reference cluster (8 GPUs).</summary>
    public const int ReferenceNodeSize = 8;

    /// <summary>The reference profile (sd3, flux, cogvideox or hunyuanvideo) whose cost model sets each task's
    /// duration and memory; device memory is the profile's (48 GB) unless Devices:MemoryGb says otherwise.</summary>
    public string Profile { get; set; } = "flux";

    /// <summary>Every latency of the profile is multiplied by this (0.05: twenty times faster than the
    /// reference GPUs); deadlines and plans use the scaled times too.</summary>
    public double TimeScale { get; set; } = 1.0;
}
