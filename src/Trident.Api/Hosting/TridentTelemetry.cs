// Metrics and traces through OpenTelemetry. The serving runtime's System.Diagnostics.Metrics instruments (meter
// "Trident", ServingMetrics) and the host's own serving-state gauge are read by one MeterProvider: OpenTelemetry's
// Prometheus exporter serves them on /metrics under their own names (scope labels, target_info and the scrape
// cache off, so /metrics shows exactly the trident_* series, fresh at every scrape), and an OTLP exporter pushes
// them when Trident:Telemetry:OtlpEndpoint is set. The TracerProvider listens to the runtime's ActivitySource
// (one trace per generation, JobTrace) and to ASP.NET Core's request spans, so a generation's trace starts at
// the HTTP request that submitted it (or continues the client's, from its traceparent header); spans are
// exported by OTLP when an endpoint is configured. Spans are recorded either way, so every job has a trace id
// and every log line written inside a request or about a job carries it.
//
// Several hosts in one process (tests) each get their own MeterProvider; meters are global by name, so each
// host tags its meters with its own scope object and drops every other host's instruments (a view).

using System.Diagnostics.Metrics;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Trident.Api.Options;
using Trident.Runtime.Monitoring;

namespace Trident.Api.Hosting;

/// <summary>Identifies the meters of one host (the scope of its <see cref="Meter"/>s).</summary>
public sealed class TelemetryScope
{
}

/// <summary>OpenTelemetry registration of the server.</summary>
public static class TridentTelemetry
{
    /// <summary>Registers the MeterProvider (Prometheus exporter, OTLP when configured) and the TracerProvider
    /// (the runtime's and ASP.NET Core's spans, OTLP when configured). Reads <c>Trident:Telemetry</c> from the
    /// raw configuration; a bad value there is reported by the options validation at start-up (and nothing is
    /// exported meanwhile).</summary>
    public static WebApplicationBuilder AddTridentTelemetry(this WebApplicationBuilder builder)
    {
        var t = new TelemetryOptions();
        StrictBinding.Bind(builder.Configuration.GetSection($"{TridentOptions.Section}:Telemetry"), t);
        var otlp = t.OtlpUri();
        var protocol = t.OtlpProtocol == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        var interval = t.OtlpExportIntervalMs is >= 100 and <= 3_600_000 ? t.OtlpExportIntervalMs : new TelemetryOptions().OtlpExportIntervalMs;
        var scope = new TelemetryScope();
        builder.Services.AddSingleton(scope);
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(string.IsNullOrWhiteSpace(t.ServiceName) ? "trident" : t.ServiceName))
            .WithMetrics(m =>
            {
                m.AddMeter(ServingMetrics.MeterName)
                    .AddView(i => ReferenceEquals(i.Meter.Scope, scope) ? null : MetricStreamConfiguration.Drop)
                    .AddPrometheusExporter(o =>
                    {
                        o.ScopeInfoEnabled = false;
                        o.TargetInfoEnabled = false;
                        o.ScrapeResponseCacheDurationMilliseconds = 0;
                    });
                if (otlp is not null)
                    m.AddOtlpExporter((e, reader) =>
                    {
                        e.Endpoint = Signal(otlp, protocol, "v1/metrics");
                        e.Protocol = protocol;
                        reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = interval;
                    });
            })
            .WithTracing(tr =>
            {
                tr.AddSource(JobTrace.SourceName)
                    .AddAspNetCoreInstrumentation(o => o.Filter = http => !http.Request.Path.StartsWithSegments("/metrics"));
                if (otlp is not null)
                    tr.AddOtlpExporter(e =>
                    {
                        e.Endpoint = Signal(otlp, protocol, "v1/traces");
                        e.Protocol = protocol;
                    });
            });
        return builder;
    }

    // OTLP over HTTP posts each signal to its own path; an endpoint set in code is used as it is, so the
    // configured base gets the signal's path (an endpoint that already has a path is kept).
    private static Uri Signal(Uri endpoint, OtlpExportProtocol protocol, string path) =>
        protocol == OtlpExportProtocol.HttpProtobuf && endpoint.AbsolutePath == "/" ? new Uri(endpoint, path) : endpoint;
}

/// <summary><c>trident_serving_state{state}</c>: 1 for the state the server is in (starting, ready, draining,
/// failed), 0 for the others; answers before the serving runtime is up.</summary>
public sealed class ServingStateMetric : IDisposable
{
    private static readonly string[] States = ["starting", "ready", "draining", "failed"];
    private readonly Meter _meter;

    /// <summary>Creates the gauge on a meter of <paramref name="scope"/>, reading <paramref name="state"/> at
    /// each collection.</summary>
    public ServingStateMetric(TelemetryScope scope, Func<string> state)
    {
        _meter = new Meter(new MeterOptions(ServingMetrics.MeterName) { Scope = scope });
        _meter.CreateObservableGauge("trident_serving_state", () =>
        {
            var now = state();
            return States.Select(s => new Measurement<double>(s == now ? 1 : 0, new KeyValuePair<string, object?>("state", s)));
        }, null, "1 for the state the server is in.");
    }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();
}
