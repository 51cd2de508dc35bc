// Renders the server's System.Diagnostics.Metrics instruments in the Prometheus text exposition format
// (version 0.0.4). A MeterListener attached to the server's own meter aggregates counters (sums per label
// set) and histograms (cumulative buckets from the instrument's advice, sum, count) as measurements
// arrive; observable gauges are read at each scrape. Instrument names are already Prometheus names.

using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Trident.Api.Metrics;

/// <summary>Prometheus text rendering of one meter.</summary>
public sealed class PrometheusExporter : IDisposable
{
    private sealed class Series
    {
        public required string Labels { get; init; }
        public double Value;
        public double[]? Bounds;
        public long[]? Buckets;
        public long Count;
    }

    private static readonly double[] DefaultBounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, ConcurrentDictionary<string, Series>> _series = new();
    private readonly ConcurrentDictionary<Instrument, byte> _instruments = new();
    private readonly object _scrape = new();

    /// <summary>Starts listening to <paramref name="meter"/>'s instruments.</summary>
    public PrometheusExporter(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (!ReferenceEquals(instrument.Meter, meter)) return;
            _instruments[instrument] = 0;
            listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var labels = Labels(tags);
        var byLabels = _series.GetOrAdd(instrument, _ => new ConcurrentDictionary<string, Series>());
        var series = byLabels.GetOrAdd(labels, l =>
        {
            var bounds = instrument is Histogram<double> h ? h.Advice?.HistogramBucketBoundaries?.ToArray() ?? DefaultBounds : null;
            return new Series { Labels = l, Bounds = bounds, Buckets = bounds is null ? null : new long[bounds.Length] };
        });
        lock (series)
        {
            switch (instrument)
            {
                case Histogram<double>:
                    for (var b = 0; b < series.Bounds!.Length; b++)
                        if (value <= series.Bounds[b]) series.Buckets![b]++;
                    series.Value += value;
                    series.Count++;
                    break;
                case ObservableGauge<double>:
                    series.Value = value;
                    break;
                default:
                    series.Value += value;
                    break;
            }
        }
    }

    private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.Length == 0) return "";
        var pairs = new List<string>(tags.Length);
        foreach (var t in tags) pairs.Add($"{t.Key}=\"{Escape(Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "")}\"");
        pairs.Sort(StringComparer.Ordinal);
        return string.Join(",", pairs);
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    private static string Number(double v) =>
        double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf" : double.IsNaN(v) ? "NaN" : v.ToString("R", CultureInfo.InvariantCulture);

    private static string With(string labels, string extra) => labels.Length == 0 ? $"{{{extra}}}" : $"{{{labels},{extra}}}";

    /// <summary>The current values of every instrument, as Prometheus text.</summary>
    public string Render()
    {
        lock (_scrape)
        {
            // gauges hold the values of this scrape only
            foreach (var (instrument, byLabels) in _series)
                if (instrument is ObservableGauge<double>) byLabels.Clear();
            _listener.RecordObservableInstruments();
            var text = new StringBuilder();
            foreach (var instrument in _instruments.Keys.OrderBy(i => i.Name, StringComparer.Ordinal))
            {
                var type = instrument switch
                {
                    Histogram<double> => "histogram",
                    ObservableGauge<double> => "gauge",
                    _ => "counter",
                };
                text.Append("# HELP ").Append(instrument.Name).Append(' ').Append(instrument.Description).Append('\n');
                text.Append("# TYPE ").Append(instrument.Name).Append(' ').Append(type).Append('\n');
                if (!_series.TryGetValue(instrument, out var byLabels)) continue;
                foreach (var s in byLabels.Values.OrderBy(s => s.Labels, StringComparer.Ordinal))
                {
                    lock (s)
                    {
                        if (type == "histogram")
                        {
                            for (var b = 0; b < s.Bounds!.Length; b++)
                                text.Append(instrument.Name).Append("_bucket").Append(With(s.Labels, $"le=\"{Number(s.Bounds[b])}\"")).Append(' ').Append(s.Buckets![b]).Append('\n');
                            text.Append(instrument.Name).Append("_bucket").Append(With(s.Labels, "le=\"+Inf\"")).Append(' ').Append(s.Count).Append('\n');
                            var labels = s.Labels.Length == 0 ? "" : $"{{{s.Labels}}}";
                            text.Append(instrument.Name).Append("_sum").Append(labels).Append(' ').Append(Number(s.Value)).Append('\n');
                            text.Append(instrument.Name).Append("_count").Append(labels).Append(' ').Append(s.Count).Append('\n');
                        }
                        else
                        {
                            text.Append(instrument.Name).Append(s.Labels.Length == 0 ? "" : $"{{{s.Labels}}}").Append(' ').Append(Number(s.Value)).Append('\n');
                        }
                    }
                }
            }
            return text.ToString();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _listener.Dispose();
}
