using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Api.Options;
using Trident.Api.View;
using Trident.Scheduling;
using Trident.Scheduling.Dispatching;
using Trace = Trident.Scheduling.Trace;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident simulate</c>: replays a workload (a named generator or a trace file) against a
/// simulated cluster with every requested policy and prints one row per policy. A thin shell: it
/// parses options, reads the trace file, calls the F# simulator, prints and writes files.
/// </summary>
public static class SimulateCommand
{
    /// <summary>The workload options shared with <c>capacity</c>.</summary>
    internal static readonly Option<string> Workload_ = Opt.String("--workload",
        "a named workload (" + string.Join(", ", Workload.names) + ", " + EvaluateCommand.ProductionWorkload + "; poisson/bursty/shifting use --model, or the shapes of --profile) or a trace file (CSV or JSON lines)",
        required: true, helpName: "NAME|FILE").Completing([.. Workload.names, EvaluateCommand.ProductionWorkload]);
    internal static readonly Option<string> Model = Opt.String("--model", "the model of poisson/bursty/shifting workloads (" + string.Join(", ", Workload.models) + ")", "flux", helpName: "MODEL")
        .Completing(Workload.models);
    internal static readonly Option<double> Rate = Opt.Double("--rate", "a generated workload's request rate (requests/s) instead of its own", null, 1e-6, 1e6);
    internal static readonly Option<int> Steps = Opt.Int("--steps", "a generated workload's denoising steps instead of its own", null, 1, 10_000);
    internal static readonly Option<int> Count = Opt.Int("--count", "a generated workload's number of requests instead of its own", null, 1, 10_000_000);
    internal static readonly Option<string> Shapes = Opt.String("--shapes",
        "a generated workload's shapes, HEIGHTxWIDTH or HEIGHTxWIDTHxFRAMES,…, drawn uniformly, instead of its own (its rate stays its own: set --rate)",
        helpName: "HxW[xF],…");
    internal static readonly Option<string> Policies = Opt.String("--policies",
        "which policies: all, or a comma-separated list of B1…B6, Trident and Trident-preempt (Trident with step-boundary preemption; only when named)",
        "all", helpName: "all|B1,…,Trident,Trident-preempt");

    /// <summary>The cluster and scheduling options shared with <c>evaluate</c> and <c>capacity</c>.</summary>
    internal static readonly Option<int> Devices = Opt.Int("--devices", "devices in the simulated cluster", 128, 1, 100_000);
    internal static readonly Option<int> DevicesPerNode = Opt.Int("--devices-per-node", "devices per node [default: 8, or the largest divisor ≤ 8 of a smaller or odd-sized cluster]", null, 1, 64);
    internal static readonly Option<ulong> Seed = Opt.ULong("--seed", "the seed of generated workloads and of the jitter", ExperimentSettingsModule.defaults.Seed);
    internal static readonly Option<double> SloScale = Opt.Double("--slo-scale", "deadline = slo-scale × the request's reference latency", ExperimentSettingsModule.defaults.SloScale, 0.01, 1000);
    internal static readonly Option<string> DeadlineRule_ = Opt.Choice("--deadline-rule", "scale: --slo-scale × reference latency; reference: the published per-model deadlines", "scale", "scale", "reference");
    internal static readonly Option<int> B1Degree = Opt.Int("--b1-degree", "B1's fixed sequence-parallel degree [default: chosen per workload]", null, 1, 64);
    internal static readonly Option<string> Split = Opt.String("--split",
        "B5/B6's fixed split of the devices into encode:diffuse:decode devices, E:D:C relative weights, D > 0 [default: 10:63:27]; "
        + "at least one encode and one decode device from 3 devices on; a cluster of 1 or 2 devices runs every device as a diffuse device (encode and decode then run on the diffuse group's lead)", helpName: "E:D:C");
    internal static readonly Option<double> Jitter = Opt.Double("--jitter", "relative run-time noise of the simulated stages (0: none)", ExperimentSettingsModule.defaults.Jitter, 0.0, 2.0);
    internal static readonly Option<int> MaxSuspensions = Opt.Int("--max-suspensions", "Trident-preempt: the most times one request is suspended (docs/policies.md, Preemption)",
        ExperimentSettingsModule.defaults.Preemption.MaxSuspensions, 0, 1000);
    internal static readonly Option<bool> ResumeElsewhere = Opt.Flag("--resume-elsewhere",
        "Trident-preempt: a suspended request resumes on whichever group of its type and degree is free first, not always on its own devices (docs/policies.md, Preemption)");
    internal static readonly Option<bool> PreemptForDeadlinesOnly = Opt.Flag("--preempt-for-deadlines-only",
        "Trident-preempt: suspend only for a request that misses its deadline by waiting, not for latency too (docs/policies.md, Preemption for latency)");
    internal static readonly Option<string> ProfilePath = Opt.String("--profile", "simulate with a profile `trident profile` wrote instead of the model's reference profile", helpName: "FILE");

    /// <summary>The settings options, to add to a command.</summary>
    internal static readonly Option<int> MaxBatch = Opt.Int("--max-batch",
        "most requests of one shape and step count per batch task, within the profile's best batch (1: no batching); needs a --profile with batch points (`trident profile` measures them: --batches)",
        ExperimentSettingsModule.defaults.MaxBatch, 1, 64);
    internal static Option[] SettingsOptions => [Devices, DevicesPerNode, Seed, SloScale, DeadlineRule_, B1Degree, Split, Jitter, MaxSuspensions, ResumeElsewhere, PreemptForDeadlinesOnly, ProfilePath, MaxBatch];

    /// <summary>"3 policies", or "4 rows of 3 policies" when one (B1: its default and its best fixed degree) is
    /// reported more than once — "4 policies" said B1 was two, and "4 runs" was read as the simulations (B1 runs at
    /// every degree, each timed on its own line above).</summary>
    internal static string Runs(IReadOnlyList<string> policies)
    {
        var distinct = policies.Distinct().Count();
        var named = $"{distinct} polic{(distinct == 1 ? "y" : "ies")}";
        return policies.Count == distinct ? named : $"{policies.Count} rows of {named}";
    }

    private static readonly Option<string> Format = Opt.Choice("--format", "how to print the summary", "table", "table", "csv", "json");
    private static readonly Option<string> Out = Opt.String("--out", "also write summary.csv/json, trace.csv, requests-*.csv, a README.md report and its charts (SVG, PNG) here", helpName: "DIR");
    private static readonly Option<string> WriteTrace = Opt.String("--write-trace", "write the workload's trace to this file (.csv, or .jsonl for JSON lines)", helpName: "FILE");
    private static readonly Option<int> Parallel_ = Opt.Int("--parallel", "policies simulated at once", 1, 1, 64);

    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("simulate", "simulate serving a workload with the baselines B1–B6 and Trident on a simulated cluster and print one row per policy")
            { Workload_, Model, Rate, Steps, Count, Shapes, Policies };
        foreach (var o in SettingsOptions) c.Add(o);
        foreach (var o in new Option[] { Format, Out, WriteTrace, Parallel_ }) c.Add(o);
        // every problem of the command line found while parsing, in one error with the values that did not parse
        c.Check((values, errors) => Read(values, errors));
        return c.With(Run);
    }

    /// <summary>The settings and the workload, with every problem of the command line that needs no simulation (the
    /// settings, the workload, the policies, the output paths) in <paramref name="errors"/>.</summary>
    private static (ExperimentSettings Settings, WorkloadInput? Input, string? Note) Read(OptionValues args, CliErrors errors)
    {
        var settings = Settings(args, errors);
        CheckPolicies(args, errors);
        string? note = null;
        var input = args.Given(Workload_) ? Input(args, settings, errors, out note) : null;
        OutputPath.Check("--out", args.Get(Out), directory: true, create: true, errors);
        OutputPath.Check("--write-trace", args.Get(WriteTrace), directory: false, create: true, errors);
        return (settings, input, note);
    }

    /// <summary>Options shared with <c>evaluate</c>.</summary>
    internal static ExperimentSettings Settings(OptionValues args, CliErrors errors)
    {
        var d = ExperimentSettingsModule.defaults;
        var devices = args.Get(Devices);
        // without --devices-per-node: 8, or the largest divisor ≤ 8 of a smaller or odd-sized cluster
        var perNode = args.Maybe(DevicesPerNode) ?? ExperimentSettingsModule.devicesPerNodeFor(devices);
        if (devices % perNode != 0)
            errors.Add($"--devices/--devices-per-node: {devices} devices are not a whole number of nodes of {perNode} (give a multiple of --devices-per-node)");
        var seed = args.Get(Seed);
        var slo = args.Get(SloScale);
        var rule = args.Get(DeadlineRule_);
        if (rule == "reference" && args.Given(SloScale)) errors.Add("--slo-scale: not used with --deadline-rule reference");
        var b1 = args.Maybe(B1Degree) is { } k ? FSharpOption<int>.Some(k) : FSharpOption<int>.None;
        var split = d.Split;
        var splitText = args.Get(Split);
        if (splitText is not null)
        {
            var parts = splitText.Split(':');
            var values = parts.Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v : double.NaN).ToArray();
            if (values.Length != 3 || values.Any(double.IsNaN) || values[1] <= 0)
                errors.Add($"--split: '{splitText}' is not E:D:C with three non-negative numbers and D > 0");
            else split = new StageSplit(values[0], values[1], values[2]);
        }
        var jitter = args.Get(Jitter);
        var profile = FSharpOption<Profile>.None;
        var profilePath = args.Get(ProfilePath);
        if (profilePath is not null)
        {
            if (!File.Exists(profilePath)) errors.Add($"--profile: {InputPath.NotAFile(profilePath, "profile file")}");
            else
            {
                var parsed = ProfileFile.parse(File.ReadAllText(profilePath));
                if (parsed.IsError) foreach (var e in parsed.ErrorValue) errors.Add($"--profile {profilePath}: {e}");
                else if (ProfileModule.degrees(parsed.ResultValue) is var measured
                    && !measured.Any(k => CostSettingsModule.defaults.Degrees.Contains(k)))
                    // a file `trident profile` refuses to write today, but older ones or hand-made ones may hold it
                    errors.Add($"--profile {profilePath}: measures the diffuse at degree {string.Join(", ", measured)} only, none of the degrees Trident plans with ({string.Join(", ", CostSettingsModule.defaults.Degrees)}); profile again with --degrees 1,2 (or more of 1, 2, 4, 8)");
                else
                {
                    profile = FSharpOption<Profile>.Some(parsed.ResultValue);
                    // a device memory that holds no measured shape at any degree: the run can serve nothing
                    var pr = parsed.ResultValue;
                    if (!args.Validating && measured.Where(k => !CostSettingsModule.defaults.Degrees.Contains(k)).ToList() is { Count: > 0 } unused)
                        Console.Error.WriteLine($"warning: --profile {profilePath}: its points at degree {string.Join(", ", unused)} are not used (Trident plans the diffuse at {string.Join(", ", CostSettingsModule.defaults.Degrees)})");
                    var cost = CostModelModule.create(CostSettingsModule.defaults, pr);
                    if (!args.Validating && pr.Diffuse.Points.All(pt => CostModelModule.kStar(cost, pt.Shape) is null))
                        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"warning: --profile {profilePath}: its device_memory_gb ({pr.DeviceMemory:G4} GB) holds no measured shape's diffuse at any degree (weights {pr.Diffuse.Weights:G4} GB plus activation): every request will be unserved or run out of memory"));
                }
            }
        }
        // Trident-preempt: the most suspensions of one request (docs/policies.md, "Preemption")
        var preemption = new PreemptionSettings(
            args.Get(MaxSuspensions), d.Preemption.MinGain, d.Preemption.CandidatesPerRound, d.Preemption.ResumeElsewhere || args.Get(ResumeElsewhere), d.Preemption.DecodeTileFrames,
            d.Preemption.ForLatency && !args.Get(PreemptForDeadlinesOnly));
        // batching needs batch points: a profile without them (every reference profile) would batch nothing
        var maxBatch = args.Get(MaxBatch);
        if (maxBatch > 1 && profilePath is null)
            errors.Add("--max-batch: the reference profiles have no batch points, so nothing would batch; give --profile FILE written by `trident profile` (it measures batch points: --batches)");
        else if (maxBatch > 1 && profile is { } withPoints && withPoints.Value.Diffuse.Batches.IsEmpty)
            errors.Add($"--max-batch: the profile '{profilePath}' has no batch points, so nothing would batch; `trident profile` measures them unless --batches 1");
        var settings = new ExperimentSettings(devices, perNode, seed, slo, rule == "reference", b1, split, d.RoundPeriod, d.Adjust, jitter, d.Memory, profile, preemption, maxBatch);
        // say where batches can form at all: a profile measured on CPU devices often gains too little anywhere
        if (!args.Validating && maxBatch > 1 && profile is { } p && !p.Value.Diffuse.Batches.IsEmpty && !errors.Any)
        {
            var points = CostModelModule.batchingPoints(CostModelModule.create(Experiment.costSettings(settings), p.Value));
            Console.Error.WriteLine(points.IsEmpty
                ? $"note: --max-batch {maxBatch}: no measured shape of the profile gains ≥ {CostModelModule.MinBatchGain}× requests per device-second from a batch (within the SLO), so nothing will batch"
                : $"note: --max-batch {maxBatch}: batches form at {string.Join(", ", points.Select(x => $"{x.Item1} k={x.Item2} (best batch {x.Item3})"))}; other shapes run alone");
        }
        return settings;
    }

    private static Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var errors = new CliErrors();
        var policyNames = PolicyNames(OptionValues.Of(args));
        var format = args.GetValue(Format);
        var outDir = args.GetValue(Out);
        var writeTrace = args.GetValue(WriteTrace);
        var parallel = args.GetValue(Parallel_);
        var (settings, input, traceNote) = Read(OptionValues.Of(args), errors);
        errors.ThrowIfAny();

        var prepared = Experiment.prepare(settings, input!);
        if (prepared.IsError) { foreach (var e in prepared.ErrorValue) errors.Add(e); errors.ThrowIfAny(); }
        var p = prepared.ResultValue;
        var policies = Experiment.policies(settings, p, ListModule.OfSeq(policyNames));
        if (policies.IsError) { foreach (var e in policies.ErrorValue) errors.Add(PolicyError(e)); errors.ThrowIfAny(); }
        // what the numbers rest on: costs beyond the profile's data, requests no policy can run on this cluster
        var extrapolated = settings.Profile is { } prof ? EvaluateCommand.Extrapolated(prof.Value, p.Trace) : null;
        if (extrapolated is not null) Console.Error.WriteLine($"note: {extrapolated}");
        var beyondNode = Experiment.beyondNode(p) is { } bn ? bn.Value : null;
        if (beyondNode is not null) Console.Error.WriteLine($"note: {beyondNode}");

        if (writeTrace is not null)
        {
            OutputPath.Write("--write-trace", writeTrace, () =>
            {
                var dir = Path.GetDirectoryName(Path.GetFullPath(writeTrace));
                if (dir is not null) Directory.CreateDirectory(dir);
                File.WriteAllText(writeTrace, writeTrace.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) ? Trace.toJsonLines(p.Trace) : Trace.toCsv(p.Trace));
            });
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
        // a workload of images and videos: each class apart (and the suspensions of Trident-preempt)
        var classes = Report.classTable(ListModule.OfSeq(rows));
        if (format == "table" && classes.Length > 0) Console.Write(Environment.NewLine + classes);
        // requests with priorities: each level apart
        var priorities = Report.priorityTable(ListModule.OfSeq(rows));
        if (format == "table" && priorities.Length > 0) Console.Write(Environment.NewLine + priorities);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"workload {p.Name}: {CapacityCommand.Plural(p.Requests.Length, "request")} on {CapacityCommand.Plural(settings.Devices, "device")}; {Runs(rows.Select(r => r.Policy).ToList())} in {total.Elapsed.TotalSeconds:F1} s wall"));

        if (outDir is not null) OutputPath.Write("--out", outDir, () =>
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
            var notes = string.Join("; ", new[] { extrapolated, beyondNode }.Where(x => x is not null));
            var point = input is WorkloadInput.Generated g
                ? new EvalPoint("simulate", g.Item, input, settings, g.Item.Rate)
                : Evaluation.tracePoint("simulate", settings, p.Name, traceNote ?? "a trace file", p.Trace);
            if (notes.Length > 0) point = Evaluation.withNote(notes, point);
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
        });
        return Task.FromResult(0);
    }

    /// <summary>The workload to simulate: a trace file (checked against its model's profile) or a named
    /// generator (over <c>--profile</c>'s shapes when one is given); problems go to <paramref name="errors"/>.</summary>
    internal static WorkloadInput? Input(OptionValues args, ExperimentSettings settings, CliErrors errors, out string? note)
    {
        note = null;
        var workload = args.Text(Workload_);
        var model = args.Text(Model);
        var rate = args.Maybe(Rate) is { } r ? FSharpOption<double>.Some(r) : null;
        var steps = args.Maybe(Steps) is { } s ? FSharpOption<int>.Some(s) : null;
        var count = args.Maybe(Count) is { } c ? FSharpOption<int>.Some(c) : null;
        var shapesText = args.Get(Shapes);
        var shapes = shapesText is null ? null : ShapeOption.Parse(shapesText, withFrames: true, errors);
        WorkloadInput? input = null;
        if (workload == EvaluateCommand.ProductionWorkload)
        {
            // the production day evaluate reports, from the log in the repository: under the current directory, else
            // under Trident's home (TRIDENT_HOME, which ./trident sets), so the named workload is found from any directory
            if (rate is not null || steps is not null || count is not null || shapesText is not null)
                errors.Add($"--rate/--steps/--count/--shapes: apply to generated workloads, not to {workload} (a replayed log)");
            var log = File.Exists(EvaluateCommand.ProductionLog)
                ? EvaluateCommand.ProductionLog
                : Path.Combine(Trident.Runtime.Execution.PipelineLocator.FindHome(), EvaluateCommand.ProductionLog);
            if (!File.Exists(log))
                errors.Add($"--workload {workload}: no production log at {EvaluateCommand.ProductionLog} nor {log} (run from the repository root)");
            else
            {
                var (trace, productionNote, problems) = EvaluateCommand.ProductionTrace(settings, log);
                note = productionNote;
                foreach (var e in problems) errors.Add($"--workload {workload}: {log}: {e}");
                if (trace is not null) input = WorkloadInput.NewFromTrace(workload, trace);
            }
        }
        else if (File.Exists(workload) || Trace.looksLikeFile(workload))
        {
            if (rate is not null || steps is not null || count is not null || shapesText is not null)
                errors.Add("--rate/--steps/--count/--shapes: apply to generated workloads, not to a trace file");
            // every problem in one pass, each request checked against its model's reference profile
            var parsed = TraceFile.Parse(m => ProfileFor(settings, m), workload);
            if (parsed.IsError) foreach (var e in parsed.ErrorValue) errors.Add($"--workload {workload}: {e}");
            else input = WorkloadInput.NewFromTrace(Path.GetFileNameWithoutExtension(workload), parsed.ResultValue);
        }
        else
        {
            // --model picks a generic workload's shapes; with a profile the shapes (and model) are the profile's
            var generic = Workload.genericKinds.Contains(workload);
            if (args.Given(Model) && settings.Profile is { } withModel && model != withModel.Value.Model.Value)
                errors.Add($"--model/--profile: --model {model} conflicts with --profile, a profile of '{withModel.Value.Model.Value}' (a workload over a profile uses its model and measured shapes; leave out --model)");
            var spec = settings.Profile is { } prof
                ? Workload.forProfile(workload, prof.Value, CostModelModule.create(Experiment.costSettings(settings), prof.Value), settings.Devices)
                : Workload.tryNamed(workload, model);
            if (spec.IsError)
                errors.Add(generic && settings.Profile is null
                    ? $"--model: {spec.ErrorValue}"
                    : $"--workload: {spec.ErrorValue.Replace(", or a trace file)", $", {EvaluateCommand.ProductionWorkload}, or a trace file)")}");
            else if (args.Given(Model) && !generic && spec.ResultValue.Model != model && settings.Profile is null)
                errors.Add($"--model/--workload: --model {model} conflicts with --workload {workload}, a workload of '{spec.ResultValue.Model}' (--model picks the shapes of {string.Join("/", Workload.genericKinds)})");
            else
            {
                var generated = Workload.withOverrides(rate, steps, count, spec.ResultValue);
                if (shapes is { Count: > 0 })
                {
                    // an image-only model takes no video shape: said here once, not once per request by the trace check
                    var video = settings.Profile is { } pr ? pr.Value.Video : ReferenceProfiles.tryFind(generated.Model) is { } rp && rp.Value.Video;
                    foreach (var sh in shapes.Where(sh => sh.Frames > 1 && !video))
                        errors.Add($"--shapes: {sh} has {sh.Frames} frames, but model '{generated.Model}' is image-only");
                    generated = Workload.withShapes(ListModule.OfSeq(shapes), generated);
                }
                input = WorkloadInput.NewGenerated(generated);
            }
        }
        return input;
    }

    /// <summary>A problem with the policies, under the option it comes from (B1's degree: --b1-degree).</summary>
    internal static string PolicyError(string e) => e.StartsWith("B1's degree", StringComparison.Ordinal) ? $"--b1-degree: {e}" : $"--policies: {e}";

    /// <summary>Adds a problem for each unknown name of --policies.</summary>
    internal static void CheckPolicies(OptionValues args, CliErrors errors)
    {
        if (Experiment.policyNames(ListModule.OfSeq(PolicyNames(args))) is { IsError: true } bad)
            foreach (var e in bad.ErrorValue) errors.Add(PolicyError(e));
    }

    /// <summary>--policies as a list of names.</summary>
    internal static string[] PolicyNames(OptionValues args) =>
        args.Text(Policies).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

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
