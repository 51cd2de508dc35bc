using System.Diagnostics;
using System.Globalization;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Api.View;
using Trident.Scheduling;
using Trace = Trident.Scheduling.Trace;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident simulate</c>: replays a workload (a named generator or a trace file) against a
/// simulated cluster with every requested policy and prints one row per policy. A thin shell: it
/// parses options, reads the trace file, calls the F# simulator, prints and writes files.
/// </summary>
public static class SimulateCommand
{
    public static Command Command { get; } = new(
        "simulate",
        "simulate --workload <name|file> [--model flux] [--devices 128] [--devices-per-node 8] [--policies all|B1,B2,…,Trident] "
        + "[--slo-scale 4] [--deadline-rule scale|reference] [--seed 42] [--rate r] [--steps n] [--count n] [--b1-degree k] "
        + "[--split 10:63:27] [--jitter 0] [--profile FILE] [--parallel 1] [--format table|csv|json] [--out DIR] [--write-trace FILE]",
        "simulate serving a workload with the baselines B1–B6 and Trident; workloads: "
        + string.Join(", ", Workload.names) + " (poisson/bursty/shifting use --model, or the shapes of --profile), or a trace file (CSV or JSON lines); "
        + "--profile FILE: simulate with a profile `trident profile` wrote instead of the model's reference profile",
        Run);

    /// <summary>Options shared with <c>evaluate</c>.</summary>
    internal static ExperimentSettings Settings(CliArgs args, int defaultDevices)
    {
        var d = ExperimentSettingsModule.defaults;
        var devices = args.Int("devices", defaultDevices, 1, 100_000);
        // without --devices-per-node: 8, or the largest divisor ≤ 8 of a smaller or odd-sized cluster
        var perNode = args.Int("devices-per-node", ExperimentSettingsModule.devicesPerNodeFor(devices), 1, 64);
        var seed = args.ULong("seed", d.Seed);
        var slo = args.Double("slo-scale", d.SloScale, 0.01, 1000);
        var rule = args.String("deadline-rule", "scale")!;
        if (rule is not ("scale" or "reference")) args.Error($"--deadline-rule: '{rule}' is not 'scale' or 'reference'");
        if (rule == "reference" && args.Has("slo-scale")) args.Error("--slo-scale: not used with --deadline-rule reference");
        var b1 = args.Has("b1-degree") ? FSharpOption<int>.Some(args.Int("b1-degree", 1, 1, 64)) : FSharpOption<int>.None;
        var split = d.Split;
        var splitText = args.String("split");
        if (splitText is not null)
        {
            var parts = splitText.Split(':');
            var values = parts.Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v : double.NaN).ToArray();
            if (values.Length != 3 || values.Any(double.IsNaN) || values[1] <= 0)
                args.Error($"--split: '{splitText}' is not E:D:C with three non-negative numbers and D > 0");
            else split = new StageSplit(values[0], values[1], values[2]);
        }
        var jitter = args.Double("jitter", d.Jitter, 0.0, 2.0);
        var profile = FSharpOption<Profile>.None;
        var profilePath = args.String("profile");
        if (profilePath is not null)
        {
            if (!File.Exists(profilePath)) args.Error($"--profile: the file '{profilePath}' does not exist");
            else
            {
                var parsed = ProfileFile.parse(File.ReadAllText(profilePath));
                if (parsed.IsError) foreach (var e in parsed.ErrorValue) args.Error($"--profile {profilePath}: {e}");
                else profile = FSharpOption<Profile>.Some(parsed.ResultValue);
            }
        }
        return new ExperimentSettings(devices, perNode, seed, slo, rule == "reference", b1, split, d.RoundPeriod, d.Adjust, jitter, d.Memory, profile);
    }

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var workload = args.Required("workload");
        var model = args.String("model", "flux")!;
        var settings = Settings(args, 128);
        var policyNames = (args.String("policies", "all") ?? "all").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var format = args.String("format", "table")!;
        if (format is not ("table" or "csv" or "json")) args.Error($"--format: '{format}' is not table, csv or json");
        var outDir = args.String("out");
        var writeTrace = args.String("write-trace");
        var parallel = args.Int("parallel", 1, 1, 64);
        var rate = args.Has("rate") ? FSharpOption<double>.Some(args.Double("rate", 1, 1e-6, 1e6)) : FSharpOption<double>.None;
        var steps = args.Has("steps") ? FSharpOption<int>.Some(args.Int("steps", 1, 1, 10_000)) : FSharpOption<int>.None;
        var count = args.Has("count") ? FSharpOption<int>.Some(args.Int("count", 1, 1, 10_000_000)) : FSharpOption<int>.None;

        var input = Input(args, settings, workload, model, rate, steps, count);
        args.ThrowIfInvalid();

        var prepared = Experiment.prepare(settings, input!);
        if (prepared.IsError) { foreach (var e in prepared.ErrorValue) args.Error(e); args.ThrowIfInvalid(); }
        var p = prepared.ResultValue;
        var policies = Experiment.policies(settings, p, ListModule.OfSeq(policyNames));
        if (policies.IsError) { foreach (var e in policies.ErrorValue) args.Error($"--policies: {e}"); args.ThrowIfInvalid(); }

        if (writeTrace is not null)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(writeTrace));
            if (dir is not null) Directory.CreateDirectory(dir);
            File.WriteAllText(writeTrace, writeTrace.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) ? Trace.toJsonLines(p.Trace) : Trace.toCsv(p.Trace));
        }

        var total = Stopwatch.StartNew();
        var results = RunPolicies(p, policies.ResultValue.ToArray(), parallel, ct, (r, secs) =>
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {r.Policy} {r.Params}: {secs:F1} s")));
        total.Stop();
        if (results is null) return Task.FromResult(130);
        var (rows, b1) = Collapse(p.B1Default, results);
        // each row with its fair latency statistics (over the requests every row completed, and over all)
        var summaries = Report.rows(ListModule.OfSeq(rows));
        Console.Write(format switch
        {
            "csv" => Report.csv(summaries),
            "json" => Report.json(summaries),
            _ => Report.table(summaries),
        });
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"workload {p.Name}: {p.Requests.Length} requests on {settings.Devices} devices; {rows.Count} policies in {total.Elapsed.TotalSeconds:F1} s wall"));

        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, "summary.csv"), Report.csv(summaries));
            File.WriteAllText(Path.Combine(outDir, "summary.json"), Report.json(summaries));
            File.WriteAllText(Path.Combine(outDir, "trace.csv"), Trace.toCsv(p.Trace));
            foreach (var r in rows.Where(r => r.Policy != "B1").Concat(b1))
            {
                var name = r.Policy == "B1" ? $"requests-B1-k{r.Params.Split(' ')[0].Replace("k=", "")}.csv" : $"requests-{r.Policy}.csv";
                File.WriteAllText(Path.Combine(outDir, name), Report.requestsCsv(r));
            }
            var point = input is WorkloadInput.Generated g
                ? new EvalPoint("simulate", g.Item, input, settings, g.Item.Rate)
                : Evaluation.tracePoint("simulate", settings, p.Name, "a trace file", p.Trace);
            var condensed = Evaluation.condense(point, p.Config, p.B1Default, ListModule.OfSeq(results), total.Elapsed.TotalSeconds);
            var command = "./trident simulate " + string.Join(" ", Environment.GetCommandLineArgs().Skip(2));
            var date = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
            var (files, charts) = Evaluation.report(command, date, false, total.Elapsed.TotalSeconds, FSharpList<PaperSearch>.Empty, ListModule.OfSeq(new[] { condensed })).ToValueTuple();
            foreach (var file in files) File.WriteAllText(Path.Combine(outDir, file.Item1), file.Item2);
            foreach (var chart in charts) ChartRenderer.Render(chart, outDir);
            // the web view's replay of one run: Trident's when it ran, else the first policy's
            var shown = results.FirstOrDefault(r => r.Policy == "Trident") ?? results[0];
            File.WriteAllText(Path.Combine(outDir, "view.html"), SimulationView.Html(shown, p.Config, p.Name, p.Model, settings.Adjust));
            Console.Error.WriteLine($"wrote {outDir}/README.md, summary.csv, summary.json, trace.csv, requests-*.csv, {charts.Length} charts (SVG and PNG) "
                + $"and view.html (the web view replaying {shown.Policy}'s run)");
        }
        return Task.FromResult(0);
    }

    /// <summary>The workload to simulate: a trace file (checked against its model's profile) or a named
    /// generator (over <c>--profile</c>'s shapes when one is given); problems go to <paramref name="args"/>.</summary>
    internal static WorkloadInput? Input(CliArgs args, ExperimentSettings settings, string workload, string model,
        FSharpOption<double>? rate, FSharpOption<int>? steps, FSharpOption<int>? count)
    {
        WorkloadInput? input = null;
        if (File.Exists(workload) || Trace.looksLikeFile(workload))
        {
            if (rate is not null || steps is not null || count is not null)
                args.Error("--rate/--steps/--count: apply to generated workloads, not to a trace file");
            // every problem in one pass, each request checked against its model's reference profile
            var parsed = Trace.parseFileFor(FuncConvert.FromFunc((string m) => ProfileFor(settings, m)), workload);
            if (parsed.IsError) foreach (var e in parsed.ErrorValue) args.Error($"--workload {workload}: {e}");
            else input = WorkloadInput.NewFromTrace(Path.GetFileNameWithoutExtension(workload), parsed.ResultValue);
        }
        else
        {
            var spec = settings.Profile is { } prof
                ? Workload.forProfile(workload, prof.Value, CostModelModule.create(Experiment.costSettings(settings), prof.Value), settings.Devices)
                : Workload.tryNamed(workload, model);
            if (spec.IsError) args.Error($"--workload: {spec.ErrorValue}");
            else input = WorkloadInput.NewGenerated(Workload.withOverrides(rate, steps, count, spec.ResultValue));
        }
        return input;
    }

    /// <summary>The profile a trace's model is simulated with: <c>--profile</c>'s when it is that model's, else the reference profile.</summary>
    internal static FSharpResult<Profile, string> ProfileFor(ExperimentSettings settings, string model)
    {
        if (settings.Profile is { } given)
            return given.Value.Model.Value == model
                ? FSharpResult<Profile, string>.NewOk(given.Value)
                : FSharpResult<Profile, string>.NewError($"model '{model}' is not the model of --profile ('{given.Value.Model.Value}')");
        return ReferenceProfiles.tryFind(model) is { } p
            ? FSharpResult<Profile, string>.NewOk(p.Value)
            : FSharpResult<Profile, string>.NewError($"no profile for model '{model}' (known: sd3, flux, cogvideox, hunyuanvideo; or give one with --profile)");
    }

    /// <summary>Runs the policies (on up to <paramref name="parallel"/> threads); null when cancelled.</summary>
    internal static List<SimResult>? RunPolicies(Prepared p, Policy[] policies, int parallel, CancellationToken ct, Action<SimResult, double> progress)
    {
        var results = new SimResult[policies.Length];
        var gate = new object();
        try
        {
            Parallel.For(0, policies.Length, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = ct }, i =>
            {
                var sw = Stopwatch.StartNew();
                results[i] = Simulator.run(p.Config, policies[i], p.Requests);
                sw.Stop();
                lock (gate) progress(results[i], sw.Elapsed.TotalSeconds);
            });
        }
        catch (OperationCanceledException) { return null; }
        return results.ToList();
    }

    internal static (List<SimResult> Rows, List<SimResult> B1) Collapse(int b1Default, List<SimResult> results)
    {
        var t = Experiment.collapse(b1Default, ListModule.OfSeq(results));
        return (t.Item1.ToList(), t.Item2.ToList());
    }
}
