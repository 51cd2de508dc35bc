// The default backend: the configured pipeline (the bundled tiny one unless told otherwise) on ONNX
// Runtime, and a profile of this machine. The profile is the configured file when there is one; else a
// cached profile for this pipeline and machine; else a quick run of the profiler — a few shapes from the
// pipeline's smallest size up to the default size, degrees up to the largest diffuse group the layout
// allows, 4 steps, median of 3, and the larger accepted sizes once each — written to the cache
// (.cache/profiles/) for the next start. The cache key hashes what the numbers depend on: the pipeline's
// files, the core count, the thread budget, the provider and device kind, the devices' model names (nvidia-smi's
// GPU name, /proc/cpuinfo's CPU model: DeviceIdentity), the degrees, steps, repeats and batches, so a different
// machine, GPU model, provider or pipeline never reuses a stale profile. The key leaves out
// which sizes are measured: the cache is kept per size. The sizes measured in full are in
// {name}-{key}.json, those measured once (the extent) in extent/{name}-{key}.json; a start measures only
// the sizes its files lack, adds them, and serves the sizes it asks for (so changing one limit measures
// one size, not all).

using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Trident.Api.Options;
using Trident.Runtime.Devices;
using Trident.Runtime.Execution;
using Trident.Runtime.Pipelines;
using Trident.Runtime.Profiling;
using Trident.Scheduling;

namespace Trident.Api.Hosting;

/// <summary>ONNX Runtime executors over a pipeline directory, and this machine's profile.</summary>
public sealed class OnnxServingBackend : IServingBackend
{
    /// <inheritdoc />
    public async Task<ServingBackendParts> PrepareAsync(TridentOptions options, DeviceLayout layout, ILogger log, CancellationToken cancellationToken)
    {
        var home = PipelineLocator.FindHome();
        var directory = PipelineLocator.Resolve(options.Pipeline, home);
        // The quick profile runs on the first device's provider (all devices of a layout are of one kind).
        using var pipeline = LoadedPipeline.Open(directory, layout.Devices[0].Provider);
        var manifest = pipeline.Manifest;
        // every model loaded and checked against the manifest now: with a configured profile nothing else loads them
        // before the first request, which would otherwise be the one to fail
        var check = pipeline.Reopen();
        try
        {
            check.Verify(layout.Devices[0].IntraOpThreads, cancellationToken);
            // With a configured profile the first device's executor adopts the checked sessions (its placement type's
            // stages stay, the others are released when its worker starts), so no model is loaded twice at start. The
            // start-up profile measures on fresh sessions of the same device: the checked ones are released first.
            if (options.Profile.Length == 0)
            {
                check.Dispose();
                check = null;
            }
            var (profile, origin) = await ProfileAsync(options, layout, pipeline, home, log, cancellationToken);
            if (profile.Model.Value != manifest.Model)
                throw new InvalidOperationException($"the profile describes model '{profile.Model.Value}', the pipeline is '{manifest.Model}'");
            var executors = check is null ? new OnnxStageExecutorFactory(directory) : new OnnxStageExecutorFactory(directory, check, layout.Devices[0]);
            check = null; // the factory's now
            return new ServingBackendParts(manifest, executors, profile, origin, pipeline.Tokenizer);
        }
        finally
        {
            check?.Dispose();
        }
    }

    private static async Task<(Profile, string)> ProfileAsync(TridentOptions options, DeviceLayout layout, LoadedPipeline pipeline, string home, ILogger log, CancellationToken ct)
    {
        if (options.Profile.Length > 0)
        {
            var configured = Read(options.Profile);
            var size = pipeline.Manifest.Size;
            var maxWidth = Math.Min(size.MaxWidth, options.Limits.MaxWidth);
            var maxHeight = Math.Min(size.MaxHeight, options.Limits.MaxHeight);
            Shape? largest = configured.Diffuse.Points.IsEmpty ? null : configured.Diffuse.Points.MaxBy(p => p.Shape.PixelFrames)!.Shape;
            if ((largest?.PixelFrames ?? 0) < (double)maxWidth * maxHeight * size.MinFrames)
                log.LogWarning("Profile {Path} measures sizes up to {Measured}, but the server accepts up to {Width}×{Height} (Trident:Limits:MaxWidth, MaxHeight): larger requests are predicted from its curves extrapolated beyond the data (too fast where attention's quadratic cost grows); profile the largest size too (trident profile --shapes …) or lower the limits",
                    Path.GetFullPath(options.Profile), largest?.ToString() ?? "no size", maxWidth, maxHeight);
            return (configured, Path.GetFullPath(options.Profile));
        }

        var quick = QuickOptions(options, layout, pipeline.Manifest);
        var cacheDir = Path.IsPathRooted(options.ProfileCache) ? options.ProfileCache : Path.Combine(home, options.ProfileCache);
        var file = $"{pipeline.Manifest.Name}-{CacheKey(pipeline, layout, quick, DeviceIdentity.Names(layout))}.json";
        var fullPath = Path.Combine(cacheDir, file);
        var extentPath = Path.Combine(cacheDir, "extent", file);
        var full = Cached(fullPath, log);
        var extent = Cached(extentPath, log);
        bool Has(Profile? p, Shape s) => p is not null && ProfileModule.covers(quick.Degrees, p, s);
        var missing = quick.Shapes.Where(s => !Has(full, s)).ToList();
        var missingExtent = quick.Extent.Where(s => !Has(extent, s)).ToList();
        var reused = quick.Shapes.Where(s => Has(full, s)).Concat(quick.Extent.Where(s => Has(extent, s))).ToList();
        Profile? measured = null;
        if (missing.Count + missingExtent.Count > 0)
        {
            log.LogInformation("No profile configured: profiling {Pipeline} on this machine ({Shapes}; one timed run each: {Extent}; degrees {Degrees}; reused from the cache: {Reused}); cached at {Path}",
                pipeline.Manifest.Name, missing.Count > 0 ? string.Join(", ", missing) : "none", missingExtent.Count > 0 ? string.Join(", ", missingExtent) : "none",
                string.Join(",", quick.Degrees), reused.Count > 0 ? string.Join(", ", reused) : "none", fullPath);
            var progress = new ProfilingProgress(log, TimeProvider.System);
            measured = await Profiler.ProfileAsync(pipeline, quick with { Shapes = missing, Extent = missingExtent, Progress = progress }, ct);
            progress.Done();
            // each file keeps every size it ever measured under this key (a limit lowered and raised again measures nothing)
            if (missing.Count > 0) full = await Write(fullPath, Merged(full, ProfileModule.only(missing, measured)), ct);
            if (missingExtent.Count > 0) extent = await Write(extentPath, Merged(extent, ProfileModule.only(missingExtent, measured)), ct);
        }
        // the sizes asked for: in full from the one file, once from the other; the source is the latest measurement's
        var served = ProfileModule.only(quick.Shapes, full!);
        if (quick.Extent.Count > 0) served = ProfileModule.union(ProfileModule.only(quick.Extent, extent!), served);
        if (measured is not null) served = ProfileModule.union(served, measured);
        if (reused.Count > 0)
            served = ProfileModule.withNote($"{string.Join(", ", reused)} from the start-up profile cache (measured at an earlier start with the same pipeline files, provider, device kind and thread budget)", served);
        var what = measured is null ? "" : $" (measured at start: {string.Join(", ", missing.Concat(missingExtent))}{(reused.Count > 0 ? $"; from the cache: {string.Join(", ", reused)}" : "")})";
        return (served, fullPath + what);
    }

    // A cached profile, or null when there is none or it is unreadable (then it is measured again).
    private static Profile? Cached(string path, ILogger log)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return Read(path);
        }
        catch (InvalidDataException ex)
        {
            log.LogWarning("Cached profile {Path} is unreadable ({Error}); profiling again", path, ex.Message);
            return null;
        }
    }

    private static Profile Merged(Profile? kept, Profile measured) => kept is null ? measured : ProfileModule.union(kept, measured);

    private static async Task<Profile> Write(string path, Profile profile, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = path + ".tmp";
        await File.WriteAllTextAsync(tmp, ProfileFile.serialize(profile), ct);
        File.Move(tmp, path, overwrite: true);
        return profile;
    }

    private static Profile Read(string path)
    {
        var parsed = ProfileFile.parse(File.ReadAllText(path));
        if (parsed.IsError) throw new InvalidDataException($"profile {path}: " + string.Join("; ", parsed.ErrorValue));
        return parsed.ResultValue;
    }

    /// <summary>The quick profile: up to three square sizes from the pipeline's smallest to the default size
    /// (doubling), one frame, degrees 1, 2, 4, 8 up to the largest node, 4 steps, median of 3 — and, measured by one
    /// timed run each after a warm-up (<see cref="ProfilerOptions.Extent"/>), the larger sizes the server accepts: the default side doubled
    /// while it is within the pipeline's and Trident:Limits' largest sides, then the largest width × height itself,
    /// so that no accepted size is predicted from a curve extrapolated beyond its data (one frame: a video's frames
    /// above the pipeline's fewest are still extrapolated).</summary>
    public static ProfilerOptions QuickOptions(TridentOptions options, DeviceLayout layout, PipelineManifest manifest)
    {
        var size = manifest.Size;
        var target = Math.Min(Math.Max(options.Limits.DefaultWidth, options.Limits.DefaultHeight), Math.Min(size.MaxWidth, size.MaxHeight));
        var sides = size.DoublingSides(3, target).ToList();
        if (sides.Count == 0 || sides[^1] < target) sides.Add(target / size.MultipleOf * size.MultipleOf);
        var nodeSize = layout.Devices.GroupBy(d => d.Node).Max(g => g.Count());
        var degrees = options.Devices.Degrees.Where(k => k <= nodeSize).Distinct().Order().ToArray();
        var shapes = sides.Distinct().Select(s => new Shape(s, s, size.MinFrames)).ToList();
        var maxWidth = Math.Min(size.MaxWidth, options.Limits.MaxWidth) / size.MultipleOf * size.MultipleOf;
        var maxHeight = Math.Min(size.MaxHeight, options.Limits.MaxHeight) / size.MultipleOf * size.MultipleOf;
        var extent = new List<Shape>();
        for (var side = shapes[^1].Width * 2L; side <= Math.Min(maxWidth, maxHeight); side *= 2)
            extent.Add(new Shape((int)side, (int)side, size.MinFrames));
        static long Pixels(Shape s) => (long)s.Width * s.Height;
        var largest = extent.Count > 0 ? Pixels(extent[^1]) : Pixels(shapes[^1]);
        if ((long)maxWidth * maxHeight > largest) extent.Add(new Shape(maxHeight, maxWidth, size.MinFrames));
        // only sizes the pipeline serves (a manifest may constrain more than the sides' range and multiple)
        extent.RemoveAll(e => manifest.CheckSize(e.Width, e.Height, e.Frames).Count > 0 || shapes.Contains(e));
        return new ProfilerOptions
        {
            Shapes = shapes,
            Extent = extent,
            Degrees = degrees.Length > 0 ? degrees : [1],
            // 4-step runs, median of 3: 2-step runs of 2 under-predicted the live per-step time by about 10 %
            Steps = 4,
            Repeats = 3,
            Command = "trident serve (quick profile at start)",
        };
    }

    /// <summary>The quick-profile cache key of a pipeline on a layout: 16 hex digits of a SHA-256 over everything the
    /// measured numbers depend on (see the file's note), <paramref name="deviceNames"/> included — the devices' model
    /// names (<see cref="DeviceIdentity.Names"/>), so that a profile measured on one GPU or CPU model is never reused
    /// on another.</summary>
    public static string CacheKey(LoadedPipeline pipeline, DeviceLayout layout, ProfilerOptions quick, IReadOnlyList<string> deviceNames)
    {
        var text = new StringBuilder();
        // trident-pipeline.json's form where the manifest has one (the tiny and manifest pipelines keep their
        // key); an export-only manifest (SDXL's conditioning) by its record text.
        text.Append(pipeline.Manifest.ExportOnly ? pipeline.Manifest.ToString() : Encoding.UTF8.GetString(pipeline.Manifest.ToJson()));
        foreach (var model in pipeline.Models)
        {
            var file = new FileInfo(pipeline.ModelPath(model));
            text.Append(CultureInfo.InvariantCulture, $"|{model}:{file.Length}:{file.LastWriteTimeUtc.Ticks}");
        }
        // A recognised export: every file of it (external weight files, configs, tokenizer files) by length and
        // write time, so a changed export is profiled again.
        if (Trident.Runtime.Pipelines.Export.PipelineDirectory.ExportOf(pipeline.Directory) is not null)
            text.Append("|export=").Append(Trident.Runtime.Pipelines.Export.ExportDirectory.Stamp(pipeline.Directory));
        text.Append(CultureInfo.InvariantCulture, $"|cores={Environment.ProcessorCount}|threads={layout.Devices[0].IntraOpThreads}|kind={layout.Devices[0].Kind}|provider={layout.Devices[0].Provider}");
        text.Append("|device-names=").Append(string.Join(";", deviceNames));
        text.Append(CultureInfo.InvariantCulture, $"|steps={quick.Steps}|repeats={quick.Repeats}|decode=file|format={ProfileFile.Version}");
        text.Append("|batches=").Append(string.Join(",", quick.Batches));
        // not the sizes: the cache is kept per size (ProfileAsync)
        text.Append("|degrees=").Append(string.Join(",", quick.Degrees)).Append("|per-size");
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16].ToLowerInvariant();
    }
}

/// <summary>Signs of life while a server profiles its pipeline at start (a first start measures for minutes on a busy
/// machine): the first point measured, then at most one line per <see cref="Interval"/> with how many points are done
/// and the last one, and a closing line with the count and the time taken. Lines, not one per point (a quick profile
/// measures dozens).</summary>
public sealed class ProfilingProgress(ILogger log, TimeProvider time) : IProgress<MeasuredPoint>
{
    /// <summary>The least time between two progress lines.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

    private readonly long _start = time.GetTimestamp();
    private long _lastLine = long.MinValue;
    private int _points;

    /// <inheritdoc />
    public void Report(MeasuredPoint value)
    {
        var points = Interlocked.Increment(ref _points);
        var now = time.GetTimestamp();
        lock (this)
        {
            if (_lastLine != long.MinValue && time.GetElapsedTime(_lastLine, now) < Interval) return;
            _lastLine = now;
        }
        var p = value.Point;
        // the strings as literals (:l): a JSON log would quote them
        log.LogInformation("Profiling: {Points} point(s) measured in {Seconds:F0} s; last {Stage:l} {Shape:l} at degree {Degree}{Batch:l}: {Time:G3} {Unit:l}",
            points, time.GetElapsedTime(_start, now).TotalSeconds, value.Stage.ToString().ToLowerInvariant(), p.Shape.ToString(), p.Degree,
            value.Batch > 1 ? $", batch {value.Batch}" : "", p.Seconds, value.Stage.IsDiffuse ? "s per step" : "s");
    }

    /// <summary>Logs the closing line.</summary>
    public void Done() =>
        log.LogInformation("Profiling: done, {Points} point(s) measured in {Seconds:F0} s", Volatile.Read(ref _points), time.GetElapsedTime(_start).TotalSeconds);
}

