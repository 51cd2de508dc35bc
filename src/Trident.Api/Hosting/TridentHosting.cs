// The registrations Program.cs composes: configuration sources, Serilog JSON logging, validated options,
// the serving runtime, and the API's JSON, problem-details and OpenAPI services.

using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Json;
using Trident.Api.Options;

namespace Trident.Api.Hosting;

/// <summary>Extension methods that register each part of the server.</summary>
public static class TridentHosting
{
    /// <summary>The address served when none is configured: loopback only.</summary>
    public const string DefaultUrl = "http://127.0.0.1:8080";

    /// <summary>Adds the file named by <c>--config</c> (then environment variables and the command line again,
    /// so they still win) and binds to <see cref="DefaultUrl"/> unless an address is configured.</summary>
    public static WebApplicationBuilder AddTridentConfiguration(this WebApplicationBuilder builder, string[] args)
    {
        if (builder.Configuration["config"] is { Length: > 0 } file)
        {
            var path = Path.GetFullPath(file);
            if (!File.Exists(path)) throw new FileNotFoundException($"--config: '{path}' does not exist", path);
            builder.Configuration.AddJsonFile(path, optional: false, reloadOnChange: false);
            builder.Configuration.AddEnvironmentVariables();
            builder.Configuration.AddCommandLine(args);
        }
        if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey])
            && string.IsNullOrEmpty(builder.Configuration["Kestrel:Endpoints:Http:Url"]))
            builder.WebHost.UseUrls(DefaultUrl);
        return builder;
    }

    /// <summary>Structured JSON logs (one object per event) on standard output through Serilog; the level
    /// comes from <c>Trident:LogLevel</c> (default Information).</summary>
    public static WebApplicationBuilder AddTridentLogging(this WebApplicationBuilder builder)
    {
        var level = Enum.TryParse<LogEventLevel>(builder.Configuration["Trident:LogLevel"], ignoreCase: true, out var l) ? l : LogEventLevel.Information;
        var logger = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .MinimumLevel.Override("Microsoft", level > LogEventLevel.Warning ? level : LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", level > LogEventLevel.Information ? level : LogEventLevel.Information)
            // Orleans (a cluster's silos) logs every placement retry with a stack trace through Polly (platform.md)
            .MinimumLevel.Override("Orleans", level > LogEventLevel.Warning ? level : LogEventLevel.Warning)
            .MinimumLevel.Override("Orleans.Runtime.Placement", level > LogEventLevel.Error ? level : LogEventLevel.Error)
            .MinimumLevel.Override("Polly", level > LogEventLevel.Error ? level : LogEventLevel.Error)
            .Enrich.FromLogContext()
            .WriteTo.Console(new JsonFormatter(renderMessage: true))
            .CreateLogger();
        builder.Logging.ClearProviders();
        builder.Logging.AddSerilog(logger, dispose: true);
        return builder;
    }

    /// <summary>Options bound strictly from section <c>Trident</c> (binding never throws: unknown keys and
    /// unparsable values are reported by the validator), validated at start-up.</summary>
    public static IServiceCollection AddTridentOptions(this IServiceCollection services)
    {
        services.AddOptions<TridentOptions>()
            .Configure<IConfiguration>((o, configuration) => StrictBinding.Bind(configuration.GetSection(TridentOptions.Section), o))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<TridentOptions>>(sp => new TridentOptionsValidator(sp.GetRequiredService<IConfiguration>()));
        return services;
    }

    /// <summary>The serving runtime: the backend (ONNX Runtime, or emulated devices) and the host that starts it.</summary>
    public static IServiceCollection AddTridentServing(this IServiceCollection services)
    {
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<IServingBackend>(sp => ServingBackends.For(sp.GetRequiredService<IOptions<TridentOptions>>().Value, sp));
        services.AddSingleton<ServerHost>();
        services.AddHostedService(sp => sp.GetRequiredService<ServerHost>());
        // The host waits for its services (Kestrel's open requests, the drain) at most DrainSeconds + 5 s.
        // Read from configuration, not the validated options, so a bad value is reported by the options
        // validation at start-up rather than thrown from the host's constructor.
        services.AddOptions<HostOptions>().Configure<IConfiguration>((host, config) =>
        {
            var drain = int.TryParse(config[$"{TridentOptions.Section}:Serving:DrainSeconds"], out var d) && d is >= 0 and <= 3600
                ? d
                : new ServingOptions().DrainSeconds;
            host.ShutdownTimeout = TimeSpan.FromSeconds(drain + 5);
        });
        return services;
    }

    /// <summary>snake_case JSON, ProblemDetails for errors, the OpenAPI document.</summary>
    public static IServiceCollection AddTridentApi(this IServiceCollection services)
    {
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
            o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        });
        services.AddProblemDetails();
        services.AddOpenApi();
        return services;
    }
}
