using System.Globalization;
using ScottPlot;
using Chart = Trident.Scheduling.Chart;
using ChartModule = Trident.Scheduling.ChartModule;

namespace Trident.Api.Cli;

/// <summary>
/// Draws the evaluation's charts (the F# report's <see cref="Chart"/> data) with ScottPlot 5 as
/// SVG and PNG. Rendering is I/O and stays in the shell; the data and titles are the report's.
/// A logarithmic x axis is drawn as log10 of the data with decade ticks labelled in the data's units.
/// </summary>
public static class ChartRenderer
{
    public const int Width = 800;
    public const int Height = 460;

    // the same colour for a policy on every chart; Trident black and thicker
    private static readonly string[] Palette =
        ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    private static string ColourOf(string series, int i) => series switch
    {
        "Trident" => "#000000",
        "B1" => Palette[0],
        "B1 (best k)" => Palette[9],
        "B2" => Palette[1],
        "B3" => Palette[2],
        "B4" => Palette[4],
        "B5" => Palette[5],
        "B6" => Palette[6],
        _ => Palette[i % Palette.Length],
    };

    /// <summary>Writes <c>File.svg</c> and <c>File.png</c> of the chart into <paramref name="dir"/>;
    /// returns the two paths.</summary>
    public static (string Svg, string Png) Render(Chart chart, string dir)
    {
        var plot = new Plot();
        var twins = ChartModule.twins(chart).Select(t => t.Item2?.Value).ToArray();
        var i = 0;
        foreach (var series in chart.Series)
        {
            var name = series.Item1;
            var points = series.Item2
                .Where(p => double.IsFinite(p.Item1) && double.IsFinite(p.Item2) && (!chart.XLog || p.Item1 > 0))
                .ToArray();
            if (points.Length == 0) { i++; continue; }
            var xs = points.Select(p => chart.XLog ? Math.Log10(p.Item1) : p.Item1).ToArray();
            var ys = points.Select(p => p.Item2).ToArray();
            var scatter = plot.Add.Scatter(xs, ys, Color.FromHex(ColourOf(name, i)));
            scatter.LegendText = name;
            scatter.LineWidth = name == "Trident" ? 2.5f : 1.5f;
            if (twins[i] is { } twin)
            {
                // the same points as an earlier series: said in the legend, dashed so the earlier line shows through
                scatter.LegendText = $"{name} (= {twin})";
                scatter.LinePattern = LinePattern.Dashed;
            }
            scatter.MarkerSize = points.Length <= 12 ? 6 : 0;
            if (chart.Step) scatter.ConnectStyle = ConnectStyle.StepHorizontal;
            i++;
        }
        plot.Title(chart.Title, 14);
        plot.XLabel(chart.XLabel);
        plot.YLabel(chart.YLabel);
        plot.Axes.AutoScale();
        if (chart.XLog)
        {
            // ticks at 1, 2 and 5 × 10^e inside the data's range, labelled in the data's units
            var limits = plot.Axes.GetLimits();
            var ticks = new List<double>();
            for (var e = (int)Math.Floor(limits.Left); e <= (int)Math.Ceiling(limits.Right); e++)
                foreach (var m in new[] { 1.0, 2.0, 5.0 })
                {
                    var v = Math.Log10(m) + e;
                    if (v >= limits.Left && v <= limits.Right) ticks.Add(v);
                }
            plot.Axes.Bottom.SetTicks(ticks.ToArray(), ticks.Select(v => Math.Pow(10, v).ToString("G4", CultureInfo.InvariantCulture)).ToArray());
        }
        if (chart.YRange is { } y) plot.Axes.SetLimitsY(y.Value.Item1, y.Value.Item2 + (y.Value.Item2 - y.Value.Item1) * 0.02);
        plot.ShowLegend(Edge.Right);
        Directory.CreateDirectory(dir);
        var svg = Path.Combine(dir, chart.File + ".svg");
        var png = Path.Combine(dir, chart.File + ".png");
        plot.SaveSvg(svg, Width, Height);
        plot.SavePng(png, Width, Height);
        return (svg, png);
    }
}
