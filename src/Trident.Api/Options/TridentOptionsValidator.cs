using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Trident.Runtime.Onnx;

namespace Trident.Api.Options;

/// <summary>Checks every key of <see cref="TridentOptions"/> and reports all problems at once, each naming
/// its configuration key.</summary>
public sealed class TridentOptionsValidator : IValidateOptions<TridentOptions>
{
    private readonly IConfiguration? _configuration;

    /// <summary>Checks the bound values only.</summary>
    public TridentOptionsValidator()
    {
    }

    /// <summary>Also reports every unknown key and unparsable value of section <c>Trident</c> of
    /// <paramref name="configuration"/> (StrictBinding), before the rule checks.</summary>
    public TridentOptionsValidator(IConfiguration configuration) => _configuration = configuration;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, TridentOptions o) =>
        Problems(o) is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems.Select(p => p.Message)) : ValidateOptionsResult.Success;

    /// <summary><see cref="Validate"/>'s problems, each with the key it concerns (what
    /// <see cref="Trident.Api.Hosting.ServerHost.CheckPipeline"/> needs to know which checks it can still make).</summary>
    public IReadOnlyList<ConfigProblem> Problems(TridentOptions o)
    {
        var errors = new List<ConfigProblem>();
        if (_configuration is not null)
            errors.AddRange(StrictBinding.Problems(_configuration.GetSection(TridentOptions.Section), new TridentOptions(), _configuration));
        void Check(bool ok, string key, string rule, bool valueKnown = false)
        {
            if (ok) return;
            var full = $"{TridentOptions.Section}:{key}";
            // the value as a source gave it, when the rule does not say it already (a default is named by the rule)
            var given = _configuration?[full];
            var got = given is not null && !rule.Contains("(got ", StringComparison.Ordinal) ? $" (got '{given}')" : "";
            errors.Add(new(full, $"{full} {rule}{got}", ValueKnown: valueKnown));
        }

        var d = o.Devices;
        var ordinals = d.CudaOrdinals();
        Check(d.Kind is "cpu" or EmulationOptions.Kind || ordinals is not null, "Devices:Kind",
            $"must be 'cpu', '{EmulationOptions.Kind}', 'cuda' or a list of distinct CUDA devices such as 'cuda:0' or 'cuda:0,cuda:1' (got '{d.Kind}')");
        var e = o.Emulation;
        Check(Trident.Runtime.Devices.EmulatedProfile.Names.Contains(e.Profile), "Emulation:Profile",
            $"must be one of {string.Join(", ", Trident.Runtime.Devices.EmulatedProfile.Names)} (got '{e.Profile}')");
        Check(double.IsFinite(e.TimeScale) && e.TimeScale is >= 0.001 and <= 1000, "Emulation:TimeScale", "must be between 0.001 and 1000");
        // only emulated devices take their time from a profile: on other devices a time scale would be ignored silently
        // (serve --time-scale 0.05 on the CPU ran at full time); 1, the default, is what they do anyway
        Check(d.Kind == EmulationOptions.Kind || e.TimeScale == 1.0 || !double.IsFinite(e.TimeScale), "Emulation:TimeScale",
            string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"(--time-scale) applies to emulated devices only (--emulate PROFILE, i.e. Devices:Kind '{EmulationOptions.Kind}'), not to Devices:Kind '{d.Kind}', whose stages take their real time: leave it out, or add --emulate (got {e.TimeScale})"),
            valueKnown: true);
        Check(d.Count >= 0 && d.Count <= 1024, "Devices:Count", "must be between 0 (one per core) and 1024");
        Check(d.Kind != "cuda" || d.Count >= 1, "Devices:Count", "must be set (≥ 1) for Devices:Kind 'cuda' (or list the devices: 'cuda:0,cuda:1')");
        Check(!(d.Kind.StartsWith("cuda:", StringComparison.Ordinal) && ordinals is not null) || d.Count == 0 || d.Count == ordinals.Length,
            "Devices:Count", $"must be 0 or {ordinals?.Length} (the number of devices Devices:Kind lists)");
        Check(double.IsFinite(d.MemoryShare) && d.MemoryShare is > 0 and <= 1, "Devices:MemoryShare", "must be in (0, 1]");
        Check(double.IsFinite(d.Cuda.MemoryLimitGb) && d.Cuda.MemoryLimitGb >= 0, "Devices:Cuda:MemoryLimitGb", "must be ≥ 0 (0: no limit)");
        Check(Enum.TryParse<CudaArenaExtendStrategy>(d.Cuda.ArenaExtendStrategy, ignoreCase: true, out _), "Devices:Cuda:ArenaExtendStrategy",
            $"must be NextPowerOfTwo or SameAsRequested (got '{d.Cuda.ArenaExtendStrategy}')");
        Check(Enum.TryParse<CudnnConvAlgoSearch>(d.Cuda.CudnnConvAlgoSearch, ignoreCase: true, out _), "Devices:Cuda:CudnnConvAlgoSearch",
            $"must be Exhaustive, Heuristic or Default (got '{d.Cuda.CudnnConvAlgoSearch}')");
        Check(d.ThreadsPerDevice is >= 1 and <= 256, "Devices:ThreadsPerDevice", "must be between 1 and 256");
        Check(d.DevicesPerNode is >= 0 and <= 1024, "Devices:DevicesPerNode", "must be between 0 (all in one node) and 1024");
        Check(double.IsFinite(d.MemoryGb) && d.MemoryGb >= 0, "Devices:MemoryGb", "must be ≥ 0 (0: ask the device)");
        Check(d.Degrees is { Length: > 0 } && d.Degrees.All(k => k is 1 or 2 or 4 or 8), "Devices:Degrees", "must list degrees among 1, 2, 4, 8");

        var c = o.Cluster;
        Check(c.Mode is ClusterOptions.ModeNone or ClusterOptions.ModeLocalhost or ClusterOptions.ModeRedis, "Cluster:Mode",
            $"must be {ClusterOptions.ModeNone}, {ClusterOptions.ModeLocalhost} or {ClusterOptions.ModeRedis} (got '{c.Mode}')");
        Check(c.SiloPort is >= 0 and <= 65535, "Cluster:SiloPort", "must be between 0 and 65535");
        Check(c.GatewayPort is >= 0 and <= 65535, "Cluster:GatewayPort", "must be between 0 and 65535");
        Check(System.Net.IPAddress.TryParse(c.AdvertisedAddress, out _), "Cluster:AdvertisedAddress", $"must be an IP address (got '{c.AdvertisedAddress}')");
        Check(System.Net.IPEndPoint.TryParse(c.Primary, out var primary) && primary.Port > 0, "Cluster:Primary", $"must be IP:port of the coordinator's silo, e.g. 127.0.0.1:11111 (an IP address: a host name is not resolved; got '{c.Primary}')");
        Check(!string.IsNullOrWhiteSpace(c.Redis), "Cluster:Redis", "must be a Redis connection string (host:port)");
        Check(!string.IsNullOrWhiteSpace(c.ClusterId), "Cluster:ClusterId", "must not be empty");
        Check(!c.Kubernetes || c.Mode == ClusterOptions.ModeRedis, "Cluster:Kubernetes", "needs Cluster:Mode redis (the membership table lives in Redis)");
        Check(c.JoinTimeoutSeconds is >= 1 and <= 86_400, "Cluster:JoinTimeoutSeconds", "must be between 1 and 86400");
        Check(c.CoordinatorWaitSeconds is >= 1 and <= 86_400, "Cluster:CoordinatorWaitSeconds", "must be between 1 and 86400");
        Check(c.Mode == ClusterOptions.ModeNone || d.Kind == EmulationOptions.Kind, "Devices:Kind",
            $"must be '{EmulationOptions.Kind}' with Cluster:Mode '{c.Mode}': workers serve emulated devices only (ONNX Runtime stage outputs do not cross machines yet)");

        var s = o.Serving;
        Check(s.RoundPeriodMs is >= 10 and <= 60_000, "Serving:RoundPeriodMs", "must be between 10 and 60000");
        Check(s.QueueCapacity is >= 1 and <= 100_000, "Serving:QueueCapacity", "must be between 1 and 100000");
        Check(s.DispatchTimeLimitMs is >= 1 and <= 60_000, "Serving:DispatchTimeLimitMs", "must be between 1 and 60000");
        Check(s.PlacementTimeLimitMs is >= 1 and <= 600_000, "Serving:PlacementTimeLimitMs", "must be between 1 and 600000");
        Check(double.IsFinite(s.SloScale) && s.SloScale >= 1, "Serving:SloScale", "must be ≥ 1");
        Check(double.IsFinite(s.EfficiencyThreshold) && s.EfficiencyThreshold is > 0 and <= 1, "Serving:EfficiencyThreshold", "must be in (0, 1]");
        Check(s.RoundHistory is >= 1 and <= 10_000, "Serving:RoundHistory", "must be between 1 and 10000");
        Check(s.VideoFramesPerSecond is >= 1 and <= 120, "Serving:VideoFramesPerSecond", "must be between 1 and 120");
        Check(s.MaxBatch is >= 1 and <= 64, "Serving:MaxBatch", "must be between 1 and 64 (1 turns batching off)");
        Check(s.DrainSeconds is >= 0 and <= 3600, "Serving:DrainSeconds", "must be between 0 and 3600");
        Check(double.IsFinite(s.QueueHorizonSeconds) && s.QueueHorizonSeconds is >= 0 and <= 60, "Serving:QueueHorizonSeconds", "must be between 0 and 60 (0 turns queueing behind running tasks off)");
        Check(s.MaxSuspensions is >= 1 and <= 100, "Serving:MaxSuspensions", "must be between 1 and 100 (turn preemption off with Serving:Preemption false)");
        Check(s.DecodeTileFrames is >= 0 and <= 1000, "Serving:DecodeTileFrames", "must be between 0 (no decode pauses) and 1000 frames");
        if (!string.IsNullOrWhiteSpace(s.PlanFor))
        {
            var problems = new List<string>();
            var overLimits = new List<string>();
            foreach (var planned in PlanForMix.Parse(s.PlanFor, problems))
            {
                if (planned.Height > o.Limits.MaxHeight || planned.Width > o.Limits.MaxWidth || planned.Frames > o.Limits.MaxFrames)
                    overLimits.Add($"'{planned.Text}' is over the limits (Limits:MaxHeight {o.Limits.MaxHeight}, MaxWidth {o.Limits.MaxWidth}, MaxFrames {o.Limits.MaxFrames}): the server would refuse such requests");
                if (planned.Steps > o.Limits.MaxSteps)
                    overLimits.Add($"'{planned.Text}' has more steps than Limits:MaxSteps ({o.Limits.MaxSteps})");
            }
            foreach (var problem in problems) Check(false, "Serving:PlanFor", problem);
            // a class over the limits is still read as written: the pipeline's checks of the classes can run
            foreach (var problem in overLimits) Check(false, "Serving:PlanFor", problem, valueKnown: problems.Count == 0);
        }

        var l = o.Limits;
        Check(l.MaxWidth is >= 8 and <= 16_384, "Limits:MaxWidth", "must be between 8 and 16384");
        Check(l.MaxHeight is >= 8 and <= 16_384, "Limits:MaxHeight", "must be between 8 and 16384");
        Check(l.MaxFrames is >= 1 and <= 1024, "Limits:MaxFrames", "must be between 1 and 1024");
        Check(l.MaxSteps is >= 1 and <= 10_000, "Limits:MaxSteps", "must be between 1 and 10000");
        Check(l.MaxPromptLength is >= 1 and <= 1_000_000, "Limits:MaxPromptLength", "must be between 1 and 1000000");
        Check(l.MaxImagesPerRequest is >= 1 and <= 64, "Limits:MaxImagesPerRequest", "must be between 1 and 64");
        // a default is judged against its limit only when the limit itself is valid (else only the limit is named)
        Check(l.MaxWidth is not (>= 8 and <= 16_384) || (l.DefaultWidth >= 8 && l.DefaultWidth <= l.MaxWidth), "Limits:DefaultWidth",
            $"must be between 8 and Limits:MaxWidth ({l.MaxWidth}) (got {l.DefaultWidth})");
        Check(l.MaxHeight is not (>= 8 and <= 16_384) || (l.DefaultHeight >= 8 && l.DefaultHeight <= l.MaxHeight), "Limits:DefaultHeight",
            $"must be between 8 and Limits:MaxHeight ({l.MaxHeight}) (got {l.DefaultHeight})");
        Check(l.MaxSteps is not (>= 1 and <= 10_000) || (l.DefaultSteps >= 0 && l.DefaultSteps <= l.MaxSteps), "Limits:DefaultSteps",
            $"must be between 0 (the pipeline's default) and Limits:MaxSteps ({l.MaxSteps}) (got {l.DefaultSteps})");
        Check(l.MaxBodyBytes is >= 1024 and <= 1_073_741_824, "Limits:MaxBodyBytes", "must be between 1024 and 1073741824");
        Check(l.MaxDeadlineMs is >= 1 and <= 86_400_000, "Limits:MaxDeadlineMs", "must be between 1 and 86400000");
        Check(double.IsFinite(l.MaxPredictedSeconds) && l.MaxPredictedSeconds >= 0, "Limits:MaxPredictedSeconds", "must be ≥ 0 (0: no limit)");
        Check(double.IsFinite(l.MaxActivationGb) && l.MaxActivationGb >= 0, "Limits:MaxActivationGb", "must be ≥ 0 (0: no limit)");

        var m = o.Monitor;
        Check(double.IsFinite(m.WindowSeconds) && m.WindowSeconds is >= 1 and <= 86_400, "Monitor:WindowSeconds", "must be between 1 and 86400");
        Check(double.IsFinite(m.TriggerRatio) && m.TriggerRatio > 1, "Monitor:TriggerRatio", "must be > 1");
        Check(double.IsFinite(m.CooldownSeconds) && m.CooldownSeconds >= 0, "Monitor:CooldownSeconds", "must be ≥ 0");
        Check(m.MinArrivals is >= 1 and <= 1_000_000, "Monitor:MinArrivals", "must be between 1 and 1000000");
        Check(double.IsFinite(m.MinGain) && m.MinGain >= 0, "Monitor:MinGain", "must be ≥ 0");

        var j = o.Jobs;
        Check(j.Capacity is >= 1 and <= 10_000_000, "Jobs:Capacity", "must be between 1 and 10000000");
        Check(j.Capacity >= s.QueueCapacity, "Jobs:Capacity", "must be ≥ Serving:QueueCapacity (every queued job is held)");
        Check(double.IsFinite(j.RetentionSeconds) && j.RetentionSeconds >= 0, "Jobs:RetentionSeconds", "must be ≥ 0");

        var storage = o.Storage.Directory;
        Check(!string.IsNullOrWhiteSpace(storage) && storage.IndexOfAny(Path.GetInvalidPathChars()) < 0, "Storage:Directory",
            $"must be a directory path or '{StorageOptions.InMemory}' (got '{storage}')");
        if (!string.IsNullOrWhiteSpace(storage) && storage != StorageOptions.InMemory)
        {
            var full = o.Storage.Resolve(Trident.Runtime.Execution.PipelineLocator.FindHome())!;
            // a directory that cannot be created or written (under a file, read-only, /proc, /sys) is refused here, before
            // the server listens, naming the key, not a raw exception from the journal after it started
            var unusable = Trident.Runtime.Serving.JobJournal.Unusable(full);
            Check(unusable is null, "Storage:Directory", $"'{full}' cannot hold the job store: {unusable} (give a writable directory, or '{StorageOptions.InMemory}')");
        }

        Check(o.Pipeline is "tiny" or "tiny-fp16" || Directory.Exists(o.Pipeline), "Pipeline", $"'{o.Pipeline}' is neither 'tiny', 'tiny-fp16' nor a directory");
        if (o.Pipeline is not ("tiny" or "tiny-fp16") && Directory.Exists(o.Pipeline))
        {
            // A directory that is no servable pipeline (a broken export, an invalid manifest) stops `serve` before
            // it starts, with every problem listed, rather than failing readiness later.
            try
            {
                _ = Trident.Runtime.Pipelines.Export.PipelineDirectory.LoadManifest(Path.GetFullPath(o.Pipeline));
            }
            catch (Trident.Runtime.Pipelines.ManifestException ex)
            {
                foreach (var problem in ex.Errors) Check(false, "Pipeline", $"{o.Pipeline}: {problem}");
            }
        }
        Check(Enum.TryParse<Serilog.Events.LogEventLevel>(o.LogLevel, ignoreCase: true, out _), "LogLevel", "must be Verbose, Debug, Information, Warning, Error or Fatal");
        Check(TridentOptions.LogFormats.Contains(o.LogFormat), "LogFormat", $"must be auto, text or json (got '{o.LogFormat}')");
        var t = o.Telemetry;
        Check(t.OtlpEndpoint.Length == 0 || t.OtlpUri() is not null, "Telemetry:OtlpEndpoint",
            $"must be empty (no export) or an absolute http:// or https:// URI such as http://127.0.0.1:4317 (got '{t.OtlpEndpoint}')");
        Check(TelemetryOptions.OtlpProtocols.Contains(t.OtlpProtocol), "Telemetry:OtlpProtocol", $"must be grpc or http/protobuf (got '{t.OtlpProtocol}')");
        Check(t.OtlpExportIntervalMs is >= 100 and <= 3_600_000, "Telemetry:OtlpExportIntervalMs", "must be between 100 and 3600000");
        Check(!string.IsNullOrWhiteSpace(t.ServiceName), "Telemetry:ServiceName", "must not be empty");
        var cors = o.Cors;
        foreach (var origin in cors.Origins.Where(x => !CrossOriginOptions.IsOrigin(x)))
            Check(false, "Cors:Origins", $"'{origin}' is not an origin: give scheme://host[:port] with no path (e.g. http://localhost:3000), or * for any");
        Check(!(cors.Origins.Contains("*") && cors.Origins.Length > 1), "Cors:Origins", "* allows every origin: give it alone");
        Check(cors.PreflightMaxAgeSeconds is >= 0 and <= 86_400, "Cors:PreflightMaxAgeSeconds", "must be between 0 and 86400");
        for (var i = 0; i < o.Auth.ApiKeys.Length; i++)
            Check(o.Auth.ApiKeys[i].Length > 0 && !o.Auth.ApiKeys[i].Any(c => char.IsWhiteSpace(c) || char.IsControl(c)), $"Auth:ApiKeys:{i}",
                "must be a non-empty key without spaces or control characters (it is sent as 'Authorization: Bearer KEY')");
        Check(o.Profile.Length == 0 || File.Exists(o.Profile), "Profile", InputPath.NotAFile(o.Profile, "profile file"));
        return errors;
    }
}
