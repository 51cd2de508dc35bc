// Section "Trident:Cluster": one Trident across machines on Orleans (docs/cluster.md). Mode none (the default)
// is the whole system in one process with no external service. With localhost or redis, `trident serve` is
// the coordinator (HTTP API, job store, planner, serving loop; no devices of its own) and waits for
// Trident:Devices:Count devices from `trident worker` processes before it plans.

namespace Trident.Api.Options;

/// <summary>Section <c>Trident:Cluster</c>.</summary>
public sealed class ClusterOptions
{
    /// <summary>Mode: one process, no cluster.</summary>
    public const string ModeNone = "none";

    /// <summary>Mode: Orleans' localhost clustering, the coordinator's silo as the primary (one machine).</summary>
    public const string ModeLocalhost = "localhost";

    /// <summary>Mode: Orleans' Redis clustering (several machines; no single membership holder).</summary>
    public const string ModeRedis = "redis";

    /// <summary><c>none</c>, <c>localhost</c> or <c>redis</c>.</summary>
    public string Mode { get; set; } = ModeNone;

    /// <summary>The silo port (silo-to-silo traffic); 0 on a worker picks a free port.</summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>The gateway port (Orleans clients; unused by Trident, required by a silo); 0 on a worker picks a free port.</summary>
    public int GatewayPort { get; set; } = 30000;

    /// <summary>The address this silo advertises to the others (its own IP on a real network; a pod's IP on
    /// Kubernetes).</summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";

    /// <summary>localhost mode, workers: the coordinator's silo endpoint (host:port), the membership's primary.</summary>
    public string Primary { get; set; } = "127.0.0.1:11111";

    /// <summary>redis mode: the Redis connection string (host:port[,options]).</summary>
    public string Redis { get; set; } = "127.0.0.1:6379";

    /// <summary>The Orleans cluster id (every process of one Trident has the same).</summary>
    public string ClusterId { get; set; } = "trident";

    /// <summary>Running in Kubernetes pods: Orleans' Kubernetes hosting sets this silo's address from the pod
    /// (POD_IP, POD_NAME, POD_NAMESPACE; deploy/ sets them) and watches the pods of the cluster; membership stays
    /// Redis (Mode redis).</summary>
    public bool Kubernetes { get; set; }

    /// <summary>How long the coordinator waits at start for Devices:Count devices to join, seconds; also how long
    /// queued requests wait for a worker when every worker has left (then they fail with that reason).</summary>
    public int JoinTimeoutSeconds { get; set; } = 120;

    /// <summary>redis mode, workers: how long a worker that joined the membership waits for the coordinator's silo to
    /// be in it, seconds, from the worker's start; then it exits with one line (another cluster id than the
    /// coordinator's finds a membership of its own in Redis, with no coordinator). 300: as long as a worker tries to
    /// join in localhost mode (Orleans' MaxJoinAttemptTime).</summary>
    public int CoordinatorWaitSeconds { get; set; } = 300;
}
