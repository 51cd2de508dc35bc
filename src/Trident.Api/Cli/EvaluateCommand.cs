using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Scheduling;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident evaluate</c>: runs the paper-style matrix (the four reference workloads at 128
/// devices with every policy; each again at its paper-comparable rate, found by bisection; the
/// production log replay; a request-rate sweep and an SLO-scale sweep on flux and cogvideox) and
/// writes the markdown report with its charts (ScottPlot, SVG and PNG). The matrix and the report
/// text are the F# <c>Evaluation</c> module's; this shell reads the files, runs and times the
/// simulations (one progress line each) and writes the files.
/// </summary>
public static class EvaluateCommand
{
    /// <summary>Where the committed full report lives; <c>--quick</c> never writes there.</summary>
    public const string CommittedDir = "docs/evaluation";

    /// <summary>Where <c>--quick</c> writes unless told otherwise (ignored by git).</summary>
    public const string QuickDir = "out/evaluation-quick";

    /// <summary>The production log the <c>production</c> group replays (relative to the working directory).</summary>
    public const string ProductionLog = "data/gentd26/requests.csv";

    private static readonly string[] Groups = ["reference", "paper", "production", "rate", "slo", "mixed"];

    private static readonly Option<bool> Quick = Opt.Flag("--quick", $"a reduced matrix, written to {QuickDir} (never over {CommittedDir})");
    private static readonly Option<string> Out = Opt.String("--out", $"where to write the report [default: {CommittedDir}, or {QuickDir} with --quick]", helpName: "DIR");
    private static readonly Option<int> Parallel_ = Opt.Int("--parallel", "simulations at once", 2, 1, 64);
    private static readonly Option<string> Only = Opt.Choice("--only", "run one group of the matrix only", null, Groups);
    private static readonly Option<string> LogPath = Opt.String("--production-log", "the production log the production group replays", ProductionLog, helpName: "FILE");

    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("evaluate",
            "run the simulated evaluation matrix (all policies, 128 devices) and write the report with charts (SVG and PNG)") { Quick, Out, Parallel_, Only, LogPath };
        foreach (var o in SimulateCommand.SettingsOptions) c.Add(o);
        // checked while parsing: their problems come in one error with the values that did not parse
        c.Check((values, errors) => Read(values, errors));
        return c.With(Run);
    }

    /// <summary>The settings and the output folder, with their problems in <paramref name="errors"/>.</summary>
    private static (ExperimentSettings Settings, string OutDir) Read(OptionValues args, CliErrors errors)
    {
        var quick = args.Get(Quick);
        var outDir = args.Get(Out) ?? (quick ? QuickDir : CommittedDir);
        if (quick && Committed(outDir) is { } committed)
            errors.Add($"--out: '{outDir}' is the committed report {committed}; --quick writes a reduced matrix and never over it: choose another folder");
        var settings = SimulateCommand.Settings(args, errors);
        OutputPath.Check("--out", outDir, directory: true, create: true, errors);
        // the production log, when the production group runs: one given by name must exist and parse (its problems here,
        // before hours of other simulations, not as a skipped group and exit 0 after them); the default one, absent when
        // evaluate runs outside the repository, is skipped with a message unless the production group is all that runs
        var only = args.Get(Only);
        if (only is null or "production")
        {
            var logPath = args.Text(LogPath);
            if (!File.Exists(logPath))
            {
                if (args.Given(LogPath) || only == "production")
                    errors.Add($"--production-log: {Trident.Api.Options.InputPath.NotAFile(logPath, "production log")}{(args.Given(LogPath) ? "" : " (the default; run from the repository root or give --production-log)")}");
            }
            else if (ParsedLog(logPath) is { IsError: true } bad)
                foreach (var e in bad.ErrorValue) errors.Add($"--production-log {logPath}: {e}");
        }
        return (settings, outDir);
    }

    private static Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var errors = new CliErrors();
        var quick = args.GetValue(Quick);
        var parallel = args.GetValue(Parallel_);
        var only = args.GetValue(Only);
        var logPath = args.Text(LogPath);
        var (settings, outDir) = Read(OptionValues.Of(args), errors);
        errors.ThrowIfAny();
        bool Wanted(string group) => only is null || only == group;

        var total = Stopwatch.StartNew();
        var results = new List<EvalResult>();
        var searches = new List<PaperSearch>();
        var points = Evaluation.matrix(quick, settings).Where(p => Wanted(p.Group)).ToList();
        using var progress = CliProgress.Start("evaluate", null);
        void Progress(string what, double secs, string result) =>
            progress.Step(string.Create(CultureInfo.InvariantCulture, $"{what}: {result} ({secs:F1} s; {total.Elapsed.TotalSeconds:F0} s in all)"));
        // a profile of another model than the reference workloads' leaves only its own
        if (settings.Profile is { } profile)
        {
            var model = profile.Value.Model.Value;
            var left = points.Where(p => p.Workload.Model != model).Select(p => $"{p.Group} {p.Workload.Name}").Distinct().ToList();
            if (Wanted("paper")) left.AddRange(Evaluation.referenceNames.Where(n => Evaluation.paperWorkload(quick, n).Model != model).Select(n => $"paper {n}"));
            points = points.Where(p => p.Workload.Model == model).ToList();
            if (left.Count > 0)
                Console.Error.WriteLine($"trident evaluate: the profile is for model '{model}': {left.Count} workload(s) of other models are left out ({string.Join(", ", left)}); "
                    + "the production day (an image log, sizes 512²–1024²) runs on it; the report has only what ran");
        }

        foreach (var point in points.Where(p => p.Group == "reference"))
            if (RunPoint(point, parallel, ct, Progress) is { } r) results.Add(r); else return Task.FromResult(130);

        if (Wanted("paper"))
        {
            foreach (var name in Evaluation.referenceNames)
            {
                var w = Evaluation.paperWorkload(quick, name);
                if (settings.Profile is { } pr && pr.Value.Model.Value != w.Model) continue;
                var search = PaperRate(settings, w, ct, Progress);
                if (search is null) return Task.FromResult(1);
                searches.Add(search);
                if (!search.Reached) continue; // B1 cannot come to the target at any rate (the report says why)
                if (RunPoint(Evaluation.paperPoint(settings, w, search), parallel, ct, Progress) is { } r) results.Add(r); else return Task.FromResult(130);
            }
        }

        if (Wanted("production"))
        {
            var point = ProductionPoint(settings, logPath);
            if (point is not null)
            {
                if (RunPoint(point, parallel, ct, Progress) is { } r) results.Add(r); else return Task.FromResult(130);
            }
        }

        foreach (var point in points.Where(p => p.Group is "rate" or "slo" or "mixed"))
            if (RunPoint(point, parallel, ct, Progress) is { } r) results.Add(r); else return Task.FromResult(130);
        total.Stop();
        progress.Dispose();
        var command = "./trident evaluate " + string.Join(" ", Environment.GetCommandLineArgs().Skip(2));
        var date = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
        var (files, charts) = Evaluation.report(command.TrimEnd(), date, quick, total.Elapsed.TotalSeconds, ListModule.OfSeq(searches), ListModule.OfSeq(results)).ToValueTuple();
        OutputPath.Write("--out", outDir, () =>
        {
            Directory.CreateDirectory(outDir);
            foreach (var file in files) File.WriteAllText(Path.Combine(outDir, file.Item1), file.Item2);
            foreach (var chart in charts) ChartRenderer.Render(chart, outDir);
        });
        Console.WriteLine($"wrote {Path.Combine(outDir, "README.md")} and {CapacityCommand.Plural(charts.Length, "chart")} (SVG and PNG) in {total.Elapsed.TotalSeconds:F0} s");
        return Task.FromResult(0);
    }

    /// <summary>The committed report's folder (<see cref="CommittedDir"/> under the current directory, or under Trident's
    /// home) that <paramref name="outDir"/> is, after following every link and <c>..</c> on both paths as the file
    /// system does; null when it is none of them. Before, only the path spelt as the current directory's was refused: a
    /// link to the folder, or <c>../docs/evaluation</c> from a folder below the home, wrote over it.</summary>
    private static string? Committed(string outDir)
    {
        var real = OutputPath.Real(outDir);
        return new[] { CommittedDir, Path.Combine(Trident.Runtime.Execution.PipelineLocator.FindHome(), CommittedDir) }
            .Select(OutputPath.Real).FirstOrDefault(c => string.Equals(c, real, StringComparison.Ordinal));
    }

    /// <summary>Runs every policy of a point (one progress line per simulation); null when cancelled or not preparable.
    /// Requests no policy can run on the point's cluster (<c>Experiment.beyondNode</c>) are said on standard error and in
    /// the point's note, as <c>simulate</c> does.</summary>
    public static EvalResult? RunPoint(EvalPoint point, int parallel, CancellationToken ct, Action<string, double, string> progress)
    {
        var prepared = Experiment.prepare(point.Settings, point.Input);
        if (prepared.IsError) { foreach (var e in prepared.ErrorValue) Console.Error.WriteLine($"trident evaluate: {point.Workload.Name}: {e}"); return null; }
        var p = prepared.ResultValue;
        if (Experiment.beyondNode(p) is { } beyond)
        {
            Console.Error.WriteLine($"trident evaluate: {point.Group} {point.Workload.Name}: note: {beyond.Value}");
            point = Evaluation.withNote(beyond.Value, point);
        }
        var policies = Experiment.policies(point.Settings, p, Evaluation.policyNames(point));
        if (policies.IsError) { foreach (var e in policies.ErrorValue) Console.Error.WriteLine($"trident evaluate: {e}"); return null; }
        var sw = Stopwatch.StartNew();
        var runs = SimulateCommand.RunPolicies(p, policies.ResultValue.ToArray(), parallel, ct, (r, secs) =>
            progress($"{point.Group} {point.Workload.Name} value={point.Value.ToString("G4", CultureInfo.InvariantCulture)} {r.Policy} {r.Params}", secs,
                $"attainment {r.Summary.SloAttainment.ToString("F3", CultureInfo.InvariantCulture)}"));
        sw.Stop();
        if (runs is null) return null;
        return Evaluation.condense(point, p.Config, p.B1Default, ListModule.OfSeq(runs), sw.Elapsed.TotalSeconds);
    }

    /// <summary>The rate at which B1 at its default degree reaches the published 0.24 (bisection over simulations).</summary>
    private static PaperSearch? PaperRate(ExperimentSettings settings, WorkloadSpec w, CancellationToken ct, Action<string, double, string> progress)
    {
        var first = Experiment.prepare(settings, WorkloadInput.NewGenerated(w));
        if (first.IsError) { foreach (var e in first.ErrorValue) Console.Error.WriteLine($"trident evaluate: {w.Name}: {e}"); return null; }
        var k = first.ResultValue.B1Default;
        var b1 = Baselines.b1(k);
        double Attainment(double rate)
        {
            ct.ThrowIfCancellationRequested();
            var p = Experiment.prepare(settings, WorkloadInput.NewGenerated(Evaluation.atRate(w, rate))).ResultValue;
            var sw = Stopwatch.StartNew();
            var r = Simulator.run(p.Config, b1, p.Requests);
            progress($"paper-rate search {w.Name} B1 k={k} rate={rate.ToString("G4", CultureInfo.InvariantCulture)}", sw.Elapsed.TotalSeconds,
                $"attainment {r.Summary.SloAttainment.ToString("F3", CultureInfo.InvariantCulture)}");
            return r.Summary.SloAttainment;
        }
        var (found, probes) = Search.rateFor(FuncConvert.FromFunc<double, double>(Attainment), Evaluation.PaperB1Attainment, Evaluation.PaperTolerance, w.Rate, 12).ToValueTuple();
        return new PaperSearch(w.Name, k, Evaluation.PaperB1Attainment, Evaluation.PaperTolerance, found, probes);
    }

    /// <summary>The production log replay, or null (with a message) when the log is missing or a profile of another model is used.</summary>
    private static EvalPoint? ProductionPoint(ExperimentSettings settings, string logPath)
    {
        if (!File.Exists(logPath))
        {
            Console.Error.WriteLine($"trident evaluate: no production log at {logPath}: the production group is skipped (run from the repository root or give --production-log)");
            return null;
        }
        var (trace, note, errors) = ProductionTrace(settings, logPath);
        if (trace is null) { foreach (var e in errors) Console.Error.WriteLine($"trident evaluate: {logPath}: {e}"); return null; }
        if (settings.Profile is { } profile && Extrapolated(profile.Value, trace) is { } beyond)
        {
            note += "; " + beyond;
            Console.Error.WriteLine($"trident evaluate: {ProductionWorkload}: {beyond}");
        }
        return Evaluation.tracePoint("production", settings, ProductionWorkload, note, trace);
    }

    /// <summary>What share of a trace's requests is larger than anything <paramref name="profile"/> measured, or smaller
    /// (the cost model extrapolates both ways: CostModel.fs, the power law beyond the largest and below the smallest
    /// knot), in words; null when none is. Said by <c>evaluate</c>, <c>simulate</c> and <c>capacity</c> with a profile.</summary>
    public static string? Extrapolated(Profile profile, FSharpList<TraceRequest> trace)
    {
        if (profile.Diffuse.Points.IsEmpty || trace.IsEmpty) return null;
        var largest = profile.Diffuse.Points.MaxBy(p => p.Shape.PixelFrames)!.Shape;
        var smallest = profile.Diffuse.Points.MinBy(p => p.Shape.PixelFrames)!.Shape;
        var above = trace.Count(t => t.Shape.PixelFrames > largest.PixelFrames);
        var below = trace.Count(t => t.Shape.PixelFrames < smallest.PixelFrames);
        if (above == 0 && below == 0) return null;
        var parts = new List<string>();
        if (above > 0)
            parts.Add(string.Create(CultureInfo.InvariantCulture,
                $"{above} of {trace.Length} requests ({100.0 * above / trace.Length:F0} %) are larger than the profile's largest measured size ({largest})"));
        if (below > 0)
            parts.Add(string.Create(CultureInfo.InvariantCulture,
                $"{below} of {trace.Length} requests ({100.0 * below / trace.Length:F0} %) are smaller than the profile's smallest measured size ({smallest})"));
        return string.Join("; ", parts)
            + ": their costs are extrapolated beyond the data (README, Known limits); profile those sizes for numbers that hold";
    }

    // The last production log parsed, by full path, length and write time: a command line is read twice (its validator,
    // then its run), and parsing the GenTD26 day takes ≈ 0.7 s here.
    private static (string Path, long Length, DateTime Written, FSharpResult<FSharpList<LogRequest>, FSharpList<string>> Log)? _lastLog;

    private static FSharpResult<FSharpList<LogRequest>, FSharpList<string>> ParsedLog(string logPath)
    {
        var file = new FileInfo(logPath);
        var key = (file.FullName, file.Length, file.LastWriteTimeUtc);
        if (_lastLog is { } last && (last.Path, last.Length, last.Written) == key) return last.Log;
        var log = Production.parse(File.ReadAllText(logPath));
        _lastLog = (key.FullName, key.Length, key.LastWriteTimeUtc, log);
        return log;
    }

    /// <summary>The name of the production day's workload (<c>simulate --workload gentd26-production</c>).</summary>
    public const string ProductionWorkload = "gentd26-production";

    /// <summary>The GenTD26 production day (Production.gentd26) from the log at <paramref name="logPath"/> for the
    /// settings' devices and seed (the sd3 profile, or --profile's), with its note; or, trace null, every problem
    /// with the log.</summary>
    internal static (FSharpList<TraceRequest>? Trace, string Note, IReadOnlyList<string> Errors) ProductionTrace(ExperimentSettings settings, string logPath)
    {
        var log = ParsedLog(logPath);
        if (log.IsError) return (null, "", [.. log.ErrorValue]);
        var profile = settings.Profile is { } p ? p.Value : ReferenceProfiles.sd3;
        var cost = CostModelModule.create(Experiment.costSettings(settings), profile);
        var replay = Production.gentd26(cost, settings.Devices, settings.Seed, log.ResultValue);
        if (replay.IsError) return (null, "", [replay.ErrorValue]);
        var (trace, note) = replay.ResultValue.ToValueTuple();
        return (trace, note, []);
    }
}
