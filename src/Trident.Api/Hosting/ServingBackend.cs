using Microsoft.Extensions.Logging;
using Trident.Api.Options;
using Trident.Runtime.Devices;
using Trident.Runtime.Pipelines;
using Trident.Scheduling;

namespace Trident.Api.Hosting;

/// <summary>What the server serves: the pipeline, an executor per device, and this machine's profile.</summary>
/// <param name="Manifest">The pipeline's manifest (size constraint, default steps and guidance).</param>
/// <param name="Executors">Creates each device's stage executor.</param>
/// <param name="Profile">The profile the cost model reads.</param>
/// <param name="ProfileOrigin">Where the profile came from (a file, the cache, a fresh run of the profiler).</param>
/// <param name="Tokenizer">The pipeline's tokenizer: the API reports how much of each prompt it keeps.</param>
/// <param name="Started">Called once the server runs (e.g. to add the backend's instruments to its meter); may be null.</param>
public sealed record ServingBackendParts(PipelineManifest Manifest, IStageExecutorFactory Executors, Profile Profile, string ProfileOrigin,
    Trident.Runtime.Pipelines.Tokenizers.ITokenizer Tokenizer, Action<Trident.Runtime.Serving.TridentServer>? Started = null)
{
    /// <summary>The size of the result the executors make for a request of width × height: the request's own (null), or
    /// emulated devices' placeholder size (<see cref="EmulatedStageExecutor.PlaceholderSize"/>).</summary>
    public Func<int, int, (int Width, int Height)>? ResultSize { get; init; }

    /// <summary>The worker (its silo endpoint) of the device of this id on a cluster's coordinator; null in one process,
    /// and for an id no worker reported.</summary>
    public Func<int, string?>? WorkerOf { get; init; }
}

/// <summary>Prepares the pipeline, its executors and the profile at start-up.</summary>
public interface IServingBackend
{
    /// <summary>The devices to serve on: by default those the options describe on this machine
    /// (<see cref="ServingBackends.Layout"/>); a cluster's coordinator waits for its workers' devices.</summary>
    Task<DeviceLayout> LayoutAsync(TridentOptions options, ILogger log, CancellationToken cancellationToken) =>
        Task.FromResult(ServingBackends.Layout(options));

    /// <summary>What the start waits for now, when that is not the default (opening the pipeline, profiling this
    /// machine): a cluster's coordinator says how many of its devices have joined. <c>/ready</c>'s 503 says it.</summary>
    string? Starting => null;

    /// <summary>Opens (or writes) the pipeline and finds (or measures) this machine's profile.</summary>
    Task<ServingBackendParts> PrepareAsync(TridentOptions options, DeviceLayout layout, ILogger log, CancellationToken cancellationToken);
}
