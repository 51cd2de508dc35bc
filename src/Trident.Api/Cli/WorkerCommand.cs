using System.CommandLine;
using Microsoft.Extensions.Options;
using Orleans.Hosting;
using Orleans.Runtime;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Clustering;
using Trident.Runtime.Devices;
using Trident.Scheduling;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident worker</c>: one machine's devices in a Trident cluster (docs/cluster.md). An Orleans silo that
/// joins the coordinator's cluster (Trident:Cluster:Mode localhost — the default here, with the coordinator's
/// silo at Trident:Cluster:Primary — or redis) and hosts one grain per device, pinned to this silo; the
/// coordinator discovers the devices and runs stage tasks on them. Workers serve emulated devices
/// (<c>--emulate flux --devices 8 --time-scale 0.05</c>). Its silo and gateway ports are free ports unless
/// configured; <c>GET /health</c> on <c>--urls</c> (default a free loopback port) lists its devices.
/// </summary>
public static class WorkerCommand
{
    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("worker",
            "join a coordinator's cluster with this machine's emulated devices (docs/cluster.md), e.g. worker --emulate flux --devices 8 "
            + "--primary 127.0.0.1:11111; configuration keys as for serve (--Section:Key VALUE)");
        foreach (var o in ShortServeOptions.All) c.Add(o);
        return c.With(Run);
    }

    private static async Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var raw = ShortServeOptions.Expand(args).ToList();
        if (!raw.Any(a => a.StartsWith("--urls", StringComparison.Ordinal))) raw.AddRange(["--urls", "http://127.0.0.1:0"]);
        WebApplicationBuilder builder;
        try
        {
            builder = TridentHosting.CreateBuilder([.. raw]);
            builder.AddTridentConfiguration([.. raw]);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException or FormatException)
        {
            // --config names a file that does not exist or does not load (or the content root's appsettings.json does
            // not): a configuration error, as serve says it
            Console.Error.WriteLine("trident worker: invalid configuration (docs/serving.md lists every key):");
            Console.Error.WriteLine($"  {e.Message}");
            return 2;
        }
        builder.AddTridentLogging();
        builder.Services.AddTridentOptions();
        var bound = new TridentOptions();
        StrictBinding.Bind(builder.Configuration.GetSection(TridentOptions.Section), bound);
        var cluster = bound.Cluster;
        if (cluster.Mode == ClusterOptions.ModeNone) cluster.Mode = ClusterOptions.ModeLocalhost;
        // the coordinator's ports are the defaults: a worker takes free ports unless told
        if (builder.Configuration["Trident:Cluster:SiloPort"] is null) cluster.SiloPort = 0;
        if (builder.Configuration["Trident:Cluster:GatewayPort"] is null) cluster.GatewayPort = 0;
        builder.Logging.QuietOrleans();
        builder.Services.AddSingleton(sp => Devices(sp.GetRequiredService<IOptions<TridentOptions>>().Value));
        builder.Host.UseOrleans(silo => ClusterSilo.Configure(silo, cluster, coordinator: false));
        var app = builder.Build();
        app.MapGet("/health", (WorkerDevices devices, ILocalSiloDetails silo) => new
        {
            status = "live",
            silo = silo.SiloAddress.ToString(),
            model = devices.Model,
            profile = devices.ProfileSource,
            devices = devices.Layout.Devices.Count,
        });
        // any other route: a problem+json 404 that says this is a worker (the coordinator serves the API), not an empty 404
        app.MapFallback(WorkerNotFound);
        try
        {
            var options = app.Services.GetRequiredService<IOptions<TridentOptions>>().Value;
            if (options.Devices.Kind != EmulationOptions.Kind)
            {
                Console.Error.WriteLine($"trident worker: Trident:Devices:Kind must be '{EmulationOptions.Kind}' (--emulate PROFILE): workers serve emulated devices only (got '{options.Devices.Kind}')");
                return 2;
            }
            _ = app.Services.GetRequiredService<WorkerDevices>();
            await app.RunAsync(ct);
            return 0;
        }
        catch (OptionsValidationException e)
        {
            Console.Error.WriteLine("trident worker: invalid configuration (docs/serving.md lists every key):");
            foreach (var failure in e.Failures) Console.Error.WriteLine($"  {failure}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            // stopped (SIGTERM, Ctrl+C) while the silo was still joining: Orleans cancels its start, and the host
            // rethrows that; one line and exit 1 (it never served), not an unhandled exception with a stack trace
            var membership = cluster.Mode == ClusterOptions.ModeRedis ? $"membership in Redis at {cluster.Redis}" : $"the coordinator's silo at {cluster.Primary}";
            Console.Error.WriteLine($"trident worker: stopped before it joined the cluster ({membership}; docs/cluster.md)");
            return 1;
        }
        catch (Exception e)
        {
            // the silo could not start (a port it cannot bind, …): the reason and exit 1, not an abort
            Console.Error.WriteLine($"trident worker: the worker could not start: {e.GetType().Name}: {e.Message}");
            return 1;
        }
    }

    /// <summary>The answer of a worker's HTTP port to any route but <c>GET /health</c>: 404, application/problem+json,
    /// saying that this is a worker and that the coordinator (<c>trident serve</c> with Trident:Cluster:Mode) serves
    /// the API (/ready, /metrics, /v1/…).</summary>
    public static IResult WorkerNotFound(HttpContext http) => Results.Problem(
        statusCode: StatusCodes.Status404NotFound,
        title: "Not Found",
        detail: $"{http.Request.Method} {http.Request.Path} is not served here: this is a trident worker, whose HTTP port serves GET /health only; "
            + "the coordinator (trident serve with Trident:Cluster:Mode) serves the API (/ready, /metrics, /v1/…) (docs/cluster.md)");

    /// <summary>This worker's devices: Devices:Count emulated devices (0: 8) in one node, over the scaled
    /// reference profile the coordinator serves.</summary>
    public static WorkerDevices Devices(TridentOptions options)
    {
        var e = options.Emulation;
        var profile = EmulatedProfile.Scaled(EmulatedProfile.Reference(e.Profile), e.TimeScale);
        var count = options.Devices.Count == 0 ? EmulationOptions.ReferenceNodeSize : options.Devices.Count;
        var memory = options.Devices.MemoryGb > 0 ? options.Devices.MemoryGb : (double)profile.DeviceMemory;
        var layout = DeviceLayout.Emulated(count, count, memory);
        var cost = CostModelModule.create(ServerHost.CostSettings(options), profile);
        var factory = new EmulatedStageExecutorFactory(cost, layout.ToCluster().Bandwidths.HostToDevice, e.TimeScale);
        return new WorkerDevices(layout, factory, profile.Model.Value, ClusterServingBackend.ProfileSource(options));
    }
}
