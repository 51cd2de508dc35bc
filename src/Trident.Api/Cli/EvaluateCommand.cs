using System.Diagnostics;
using System.Globalization;
using Microsoft.FSharp.Collections;
using Trident.Scheduling;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident evaluate</c>: runs the paper-style matrix (the four reference workloads at 128
/// devices with every policy; a request-rate sweep and an SLO-scale sweep on flux and cogvideox)
/// and writes the markdown report with its SVG charts. The matrix and the report text are the F#
/// <c>Evaluation</c> module's; this shell runs the points, times them and writes the files.
/// </summary>
public static class EvaluateCommand
{
    public static Command Command { get; } = new(
        "evaluate",
        "evaluate [--out docs/evaluation] [--quick] [--seed 42] [--parallel 2] [--only reference|rate|slo]",
        "run the simulated evaluation matrix (all policies, 128 devices) and write the report with charts; --quick: a reduced matrix",
        Run);

    private static Task<int> Run(CliArgs args, CancellationToken ct)
    {
        var outDir = args.String("out", "docs/evaluation")!;
        var quick = args.Flag("quick");
        var parallel = args.Int("parallel", 2, 1, 64);
        var only = args.String("only");
        if (only is not null && only is not ("reference" or "rate" or "slo")) args.Error($"--only: '{only}' is not reference, rate or slo");
        var settings = SimulateCommand.Settings(args, 128);
        args.ThrowIfInvalid();

        var points = Evaluation.matrix(quick, settings).Where(p => only is null || p.Group == only).ToList();
        var results = new List<EvalResult>();
        var total = Stopwatch.StartNew();
        var i = 0;
        foreach (var point in points)
        {
            i++;
            var prepared = Experiment.prepare(point.Settings, WorkloadInput.NewGenerated(point.Workload));
            if (prepared.IsError) { foreach (var e in prepared.ErrorValue) Console.Error.WriteLine($"trident evaluate: {e}"); return Task.FromResult(1); }
            var p = prepared.ResultValue;
            var policies = Experiment.policies(point.Settings, p, ListModule.OfSeq(new[] { "all" }));
            if (policies.IsError) { foreach (var e in policies.ErrorValue) Console.Error.WriteLine($"trident evaluate: {e}"); return Task.FromResult(1); }
            var sw = Stopwatch.StartNew();
            var runs = SimulateCommand.RunPolicies(p, policies.ResultValue.ToArray(), parallel, ct, (_, _) => { });
            sw.Stop();
            if (runs is null) return Task.FromResult(130);
            var condensed = Evaluation.condense(point, p.Config, p.B1Default, ListModule.OfSeq(runs), sw.Elapsed.TotalSeconds);
            results.Add(condensed);
            var t = condensed.Rows.FirstOrDefault(r => r.Policy == "Trident");
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{i}/{points.Count}] {point.Group} {point.Workload.Name} value={point.Value:G4}: {sw.Elapsed.TotalSeconds:F1} s; Trident attainment {t?.SloAttainment:F3}, best other {condensed.Rows.Where(r => r.Policy != "Trident").Max(r => r.SloAttainment):F3}"));
        }
        total.Stop();

        var command = "./trident evaluate " + string.Join(" ", Environment.GetCommandLineArgs().Skip(2));
        var date = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
        Directory.CreateDirectory(outDir);
        foreach (var file in Evaluation.report(command.TrimEnd(), date, quick, total.Elapsed.TotalSeconds, ListModule.OfSeq(results)))
            File.WriteAllText(Path.Combine(outDir, file.Item1), file.Item2);
        Console.WriteLine($"wrote {Path.Combine(outDir, "README.md")} and {results.Count(r => r.Point.Group == "reference") * 2 + 4} charts in {total.Elapsed.TotalSeconds:F0} s");
        return Task.FromResult(0);
    }
}
