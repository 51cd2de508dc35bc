// The registrations Program.cs composes: configuration sources, Serilog logging (text on a terminal, compact
// JSON otherwise; one line per HTTP request), validated options, the serving runtime, and the API's JSON,
// problem-details and OpenAPI services.

using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Configuration;
using Serilog.Formatting.Compact;
using Trident.Api.Options;

namespace Trident.Api.Hosting;

/// <summary>The logger the request-logging middleware writes to (the server's; replaceable in tests).</summary>
/// <param name="Logger">The Serilog logger.</param>
public sealed record RequestLogger(Serilog.ILogger Logger);

/// <summary>Extension methods that register each part of the server.</summary>
public static class TridentHosting
{
    /// <summary>The address served when none is configured: loopback only.</summary>
    public const string DefaultUrl = "http://127.0.0.1:8080";

    /// <summary><c>WebApplication.CreateBuilder(args)</c> with the configuration files not watched for changes
    /// (<c>hostBuilder:reloadConfigOnChange</c> false): nothing re-reads them after start-up, and the watcher ASP.NET
    /// adds for <c>appsettings.json</c> watches the whole content root with its subfolders, so every file written under
    /// it (results, the job journal, caches) woke its thread — ≈ 0.6 ms of CPU per request of the tiny pipeline on this
    /// 2-core machine (`/proc`, 2026-12-01).
    /// The host reads <c>appsettings.json</c> (and <c>appsettings.{Environment}.json</c>) from the content root, the
    /// directory it runs in unless <c>--contentRoot</c> says otherwise: one that does not load, or gives one key twice
    /// (spelt alike or differing only by case, which the loader merges), is an <see cref="InvalidDataException"/> naming
    /// the file, the line, the position and the reason (<see cref="ConfigFileProblem.Find"/>), as a <c>--config</c>
    /// file's is.</summary>
    public static WebApplicationBuilder CreateBuilder(string[] args)
    {
        WebApplicationBuilder builder;
        try
        {
            builder = WebApplication.CreateBuilder([.. args, "--hostBuilder:reloadConfigOnChange=false"]);
        }
        catch (InvalidDataException e) when (ConfigFileProblem.FileOf(e) is { } file)
        {
            // the loader's own message names only the file: say where and why
            throw new InvalidDataException(ConfigFileProblem.Describe(file, e));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && ConfigFileProblem.FileOf(e) is { } file)
        {
            // appsettings.json exists but cannot be opened (no read permission, a socket): the loader's raw exception
            throw new InvalidDataException(ConfigFileProblem.Unreadable(file, e));
        }
        ConfigFileProblem.ThrowIfAny(builder.Configuration);
        return builder;
    }

    /// <summary>Adds the file named by <c>--config</c> (then environment variables and the command line again,
    /// so they still win) and binds to <see cref="DefaultUrl"/> unless an address is configured. A file that does not
    /// exist is a <see cref="FileNotFoundException"/>; one that does not load (not JSON, or one key given twice, e.g.
    /// under names differing only by case, at any depth, whether or not the loader refuses it) an
    /// <see cref="InvalidDataException"/> naming the file, the line, the position and the reason
    /// (<see cref="ConfigFileProblem.Find"/>).</summary>
    public static WebApplicationBuilder AddTridentConfiguration(this WebApplicationBuilder builder, string[] args)
    {
        if (builder.Configuration["config"] is { Length: > 0 } file)
        {
            var path = Path.GetFullPath(file);
            if (!File.Exists(path))
                throw new FileNotFoundException($"--config: {InputPath.NotAFile(path, "configuration file")}", path);
            try
            {
                builder.Configuration.AddJsonFile(path, optional: false, reloadOnChange: false);
            }
            catch (Exception e) when (e is InvalidDataException or FormatException)
            {
                // the loader's own message names only the file: say where and why
                throw new InvalidDataException("--config: " + ConfigFileProblem.Describe(path, e));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // it exists but cannot be opened (no read permission, a socket): the loader opens it outside its own
                // error handling, so this is its raw exception; a configuration error like the others (exit 2)
                throw new InvalidDataException("--config: " + ConfigFileProblem.Unreadable(path, e));
            }
            // it loaded: keys it gives twice without colliding on one value are merged silently by the loader
            if (ConfigFileProblem.Find(path) is { } problem) throw new InvalidDataException("--config: " + problem);
            builder.Configuration.AddEnvironmentVariables();
            builder.Configuration.AddCommandLine(args);
        }
        if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey])
            && string.IsNullOrEmpty(builder.Configuration["Kestrel:Endpoints:Http:Url"]))
            builder.WebHost.UseUrls(DefaultUrl);
        return builder;
    }

    /// <summary>Orleans' watchdog warning "Participant check thread has not completed for {TimeSinceLastTick}" when that
    /// time is longer than this process has lived: a false alarm (at a silo's start it measures from the machine's boot,
    /// e.g. "21:23:38" on a machine up that long), not a stalled check. A real stall (shorter than the process's life) is
    /// kept.</summary>
    public static bool WatchdogFalseAlarm(LogEvent e) =>
        e.MessageTemplate.Text.StartsWith("Participant check thread has not completed for", StringComparison.Ordinal)
        && e.Properties.TryGetValue("TimeSinceLastTick", out var v) && v is ScalarValue { Value: var value }
        && (value is TimeSpan t ? t : TimeSpan.TryParse(value?.ToString(), System.Globalization.CultureInfo.InvariantCulture, out var parsed) ? parsed : TimeSpan.Zero)
            > DateTime.Now - System.Diagnostics.Process.GetCurrentProcess().StartTime + TimeSpan.FromMinutes(1);

    /// <summary>Orleans' errors about a message it could not deliver because its target silo is gone (a worker that died
    /// or is being declared dead): Trident says a worker's loss itself, in one warning ("Worker … left the cluster",
    /// docs/cluster.md), and every such call's failure reaches its caller (the stage call that fails takes the worker's
    /// devices out; GET /v1/cluster reports them offline). Each is logged at Error with a stack trace, and
    /// the first of them repeats for every call until the membership declares the silo dead (a pair every ≈ 2.5 s
    /// from GET /v1/cluster alone, 13 in 14 s with work running: measured 2026-12-03). Dropped, when the exception
    /// says the target silo is unavailable or unreachable (<see cref="SiloGone"/>):
    /// <list type="bullet">
    /// <item>Orleans.Messaging "Failed to address message" (SelectTargetFailed: the message is rejected to its caller,
    /// who gets the same exception);</item>
    /// <item>Orleans.Runtime.GrainDirectory.ClientDirectory "Exception publishing client routing table to silo" (to the
    /// dead silo, as it is declared dead);</item>
    /// <item>Orleans.Runtime.GrainCallCancellationManager "Error while cancelling … requests to" the dead silo (the
    /// requests themselves fail with its loss).</item>
    /// </list>
    /// Any other cause (an addressing failure of a live silo, a placement bug) is kept. (Polly, which logs each of
    /// Orleans' placement retries as an Error, is off altogether: see <see cref="CreateLogger"/>.)</summary>
    public static bool OrleansSiloGoneError(LogEvent e) =>
        e.Level >= LogEventLevel.Error && e.Exception is { } x
        && e.Properties.TryGetValue("SourceContext", out var source) && source is ScalarValue { Value: string category }
        && (category == "Orleans.Messaging" && e.MessageTemplate.Text.StartsWith("Failed to address message", StringComparison.Ordinal)
            || category == "Orleans.Runtime.GrainDirectory.ClientDirectory" && e.MessageTemplate.Text.StartsWith("Exception publishing client routing table", StringComparison.Ordinal)
            || category == "Orleans.Runtime.GrainCallCancellationManager" && e.MessageTemplate.Text.StartsWith("Error while cancelling", StringComparison.Ordinal))
        && SiloGone(x);

    /// <summary>Whether <paramref name="error"/> (or an exception inside it) says that a silo is unavailable (Orleans'
    /// SiloUnavailableException: not in the membership, or Trident's device placement finding its worker gone) or
    /// cannot be connected to (ConnectionFailedException, which Orleans' rejections carry in their message
    /// only).</summary>
    public static bool SiloGone(Exception error)
    {
        for (Exception? e = error; e is not null; e = e.InnerException)
            if (e.GetType().Name is "SiloUnavailableException" or "ConnectionFailedException"
                || e.GetType().Name == "OrleansMessageRejectionException" && e.Message.Contains("ConnectionFailedException", StringComparison.Ordinal))
                return true;
        return error is AggregateException a && a.InnerExceptions.Any(SiloGone);
    }

    /// <summary>The host's "Hosting failed to start" error when the cause is an address already in use: <c>serve</c> and
    /// <c>worker</c> report that in one line naming the address (ServeCommand, WorkerCommand), so the host's own stack
    /// trace of it is dropped. Any other failure to start keeps its trace.</summary>
    public static bool ReportedStartFailure(LogEvent e) =>
        e.Exception is IOException { InnerException: Microsoft.AspNetCore.Connections.AddressInUseException }
        && e.Properties.TryGetValue("SourceContext", out var source)
        && source is ScalarValue { Value: "Microsoft.Extensions.Hosting.Internal.Host" };

    /// <summary>The text format's line: time, level, message, then the trace id of the request or job the line
    /// belongs to (when there is one), the source and any exception.</summary>
    public const string TextTemplate = "{Timestamp:HH:mm:ss.fff} {Level:u3} {Message:lj}{TraceSuffix} ({SourceContext}){NewLine}{Exception}";

    /// <summary>Logs through Serilog on standard output: human-readable text (<see cref="TextTemplate"/>) or
    /// compact JSON (one object per line, the message rendered in <c>@m</c>, the trace id in <c>@tr</c>) as <c>Trident:LogFormat</c> says (auto: text
    /// on a terminal, JSON when the output is redirected); the level from <c>Trident:LogLevel</c> (default
    /// Information), Microsoft.* (ASP.NET Core included) at Warning, the host's lifetime messages kept. Bad values
    /// fall back to the defaults here and are reported by the options validation at start-up.</summary>
    public static WebApplicationBuilder AddTridentLogging(this WebApplicationBuilder builder, ILogEventSink? observer = null)
    {
        var logger = CreateLogger(builder.Configuration["Trident:LogLevel"], builder.Configuration["Trident:LogFormat"], Console.IsOutputRedirected, observer: observer);
        builder.Logging.ClearProviders();
        // AddSerilog also registers the diagnostic context that UseSerilogRequestLogging needs
        builder.Services.AddSerilog(logger, dispose: true);
        builder.Services.AddSingleton(new RequestLogger(logger));
        return builder;
    }

    /// <summary>One line per HTTP request (method, path, status, time; Error for an exception or a 5xx other than
    /// 503) through Serilog's request
    /// logging, on the server's logger (not Serilog's static one), carrying the request's trace id.</summary>
    public static WebApplication UseTridentRequestLogging(this WebApplication app)
    {
        var logger = app.Services.GetRequiredService<RequestLogger>().Logger;
        app.UseSerilogRequestLogging(o =>
        {
            o.Logger = logger;
            // a 503 is the documented answer while starting or draining (readiness polls get it every few
            // hundred ms): not an error
            o.GetLevel = (http, _, error) =>
                error is not null || (http.Response.StatusCode >= 500 && http.Response.StatusCode != StatusCodes.Status503ServiceUnavailable)
                    ? LogEventLevel.Error
                    : LogEventLevel.Information;
        });
        return app;
    }

    /// <summary>The logger <see cref="AddTridentLogging"/> configures: on standard output, or into
    /// <paramref name="sink"/> when given (tests; lines formatted with <see cref="Formatter"/>).</summary>
    /// <param name="levelName">A Serilog level name (default Information).</param>
    /// <param name="format">auto, text or json (default auto).</param>
    /// <param name="redirected">Whether the output is not a terminal (auto picks JSON then).</param>
    /// <param name="sink">Where events go instead of standard output, or null.</param>
    public static Serilog.Core.Logger CreateLogger(string? levelName, string? format, bool redirected, ILogEventSink? sink = null, ILogEventSink? observer = null)
    {
        var level = Enum.TryParse<LogEventLevel>(levelName, ignoreCase: true, out var l) ? l : LogEventLevel.Information;
        var configuration = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .MinimumLevel.Override("Microsoft", level > LogEventLevel.Warning ? level : LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", level > LogEventLevel.Information ? level : LogEventLevel.Information)
            // Orleans (a cluster's silos) logs every placement retry with a stack trace through Polly (platform.md)
            .MinimumLevel.Override("Orleans", level > LogEventLevel.Warning ? level : LogEventLevel.Warning)
            .MinimumLevel.Override("Orleans.Runtime.Placement", level > LogEventLevel.Error ? level : LogEventLevel.Error)
            // Polly is used by Orleans' placement only (Orleans.Runtime's retry pipeline "Orleans.Placement"), and its
            // only events above Warning are each failed attempt of a retry ("Execution attempt", at Error with a stack
            // trace): the call's outcome reaches its caller after the last attempt, and an addressing failure that
            // matters is Orleans.Messaging's "Failed to address message" (kept unless its silo is gone:
            // OrleansSiloGoneError). Fatal only (Polly reports nothing at that level here).
            .MinimumLevel.Override("Polly", LogEventLevel.Fatal)
            .Filter.ByExcluding(WatchdogFalseAlarm)
            .Filter.ByExcluding(OrleansSiloGoneError)
            .Filter.ByExcluding(ReportedStartFailure)
            .Enrich.FromLogContext();
        if (observer is not null) configuration = configuration.WriteTo.Sink(observer);
        var json = IsJson(format, redirected);
        if (!json) configuration = configuration.Enrich.With<TraceSuffix>();
        configuration = sink is not null ? configuration.WriteTo.Sink(sink)
            // standard output that cannot be written (a full disk, /dev/full) loses the log, not the server: GuardedSink
            : configuration.WriteTo.Sink(LoggerSinkConfiguration.Wrap(console => new GuardedSink(console, Console.Error), to =>
            {
                if (json) to.Console(Formatter(json: true));
                // the console sink's own template renderer, for its colours on a terminal
                else to.Console(outputTemplate: TextTemplate, formatProvider: System.Globalization.CultureInfo.InvariantCulture);
            }));
        return configuration.CreateLogger();
    }

    /// <summary>
    /// The server's log on standard output, which may become unwritable while it serves: a full disk under the file
    /// it is redirected to, <c>/dev/full</c> (a closed pipe is no failure: .NET drops what is written to it). A server
    /// keeps serving without its log rather than stop or print a stack trace: a line that cannot be written is dropped,
    /// the first of a run of such lines is reported once on <paramref name="notices"/> (standard error) with the reason,
    /// and when lines are written again, how many were lost. Every line is tried, so the log comes back once the
    /// output can take it again (a disk with room again). Serilog would drop the lines too (it catches a sink's
    /// exceptions), silently.
    /// </summary>
    public sealed class GuardedSink(ILogEventSink inner, TextWriter notices) : ILogEventSink, IDisposable
    {
        private readonly object _gate = new();
        private long _lost;

        /// <summary>Lines dropped since the output last took one (0 while it takes them).</summary>
        public long Lost => Interlocked.Read(ref _lost);

        /// <inheritdoc />
        public void Emit(LogEvent logEvent)
        {
            try
            {
                inner.Emit(logEvent);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or UnauthorizedAccessException)
            {
                lock (_gate)
                    if (_lost++ == 0)
                        Notice($"trident: the log could not be written to standard output ({e.Message}); the server keeps serving, and log lines are dropped until it can be written again");
                return;
            }
            if (Interlocked.Read(ref _lost) > 0)
                lock (_gate)
                    if (_lost > 0)
                    {
                        Notice($"trident: the log is written to standard output again; {_lost} line(s) were dropped");
                        _lost = 0;
                    }
        }

        private void Notice(string line)
        {
            try
            {
                notices.WriteLine(line);
                notices.Flush();
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                // standard error cannot be written either: nothing is left to say it on
            }
        }

        /// <inheritdoc />
        public void Dispose() => (inner as IDisposable)?.Dispose();
    }

    /// <summary>Whether <paramref name="format"/> (auto, text or json) means JSON on an output that is
    /// (<paramref name="redirected"/>) or is not a terminal.</summary>
    public static bool IsJson(string? format, bool redirected) => format?.ToLowerInvariant() switch
    {
        "json" => true,
        "text" => false,
        _ => redirected,
    };

    /// <summary>How a line is written: Serilog's compact JSON with the message rendered (<c>@m</c>, so a line
    /// reads and greps as text too), or the text of <see cref="TextTemplate"/>.</summary>
    public static Serilog.Formatting.ITextFormatter Formatter(bool json) => json
        ? new RenderedCompactJsonFormatter()
        : new Serilog.Formatting.Display.MessageTemplateTextFormatter(TextTemplate, System.Globalization.CultureInfo.InvariantCulture);

    // The text line's " trace=<id>" when the event has a trace id (the request's or the job's span), else nothing.
    private sealed class TraceSuffix : ILogEventEnricher
    {
        public void Enrich(LogEvent logEvent, ILogEventPropertyFactory factory) =>
            logEvent.AddPropertyIfAbsent(factory.CreateProperty("TraceSuffix", logEvent.TraceId is { } t ? $" trace={t.ToHexString()}" : ""));
    }

    /// <summary>Options bound strictly from section <c>Trident</c> (binding never throws: unknown keys and
    /// unparsable values are reported by the validator), validated at start-up.</summary>
    public static IServiceCollection AddTridentOptions(this IServiceCollection services)
    {
        services.AddOptions<TridentOptions>()
            .Configure<IConfiguration>((o, configuration) => StrictBinding.Bind(configuration.GetSection(TridentOptions.Section), o, configuration))
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
            // numbers are JSON numbers: the request bodies are read strictly anyway (JsonBody), and the OpenAPI
            // generator reads these options, so with the web defaults' AllowReadingFromString it declared every
            // numeric field as "integer or string"; writing is the same either way
            o.SerializerOptions.NumberHandling = JsonNumberHandling.Strict;
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
            o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        });
        services.AddProblemDetails(o => o.CustomizeProblemDetails = c => Trident.Api.Endpoints.Problems.Complete(c.ProblemDetails, c.HttpContext));
        // after the framework's writer (which AddProblemDetails registers): for the clients it declines
        services.AddSingleton<IProblemDetailsWriter, Trident.Api.Endpoints.Problems.AnyAcceptWriter>();
        services.AddTridentApiDocs();
        services.AddTridentCors();
        services.AddTridentForwardedHeaders();
        return services;
    }
}
