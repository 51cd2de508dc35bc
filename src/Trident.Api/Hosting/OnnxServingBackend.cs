// The default backend: the configured pipeline (the bundled tiny one unless told otherwise) on ONNX
// Runtime, and a profile of this machine. The profile is the configured file when there is one; else a
// cached profile for this pipeline and machine; else a quick run of the profiler — a few shapes from the
// pipeline's smallest size up to the default size, degrees up to the largest diffuse group the layout
// allows, 2 steps, 2 repeats — written to the cache (.cache/profiles/) for the next start. The cache key
// hashes what the numbers depend on: the pipeline's files, the core count, the thread budget and the
// degrees, so a different machine or pipeline never reuses a stale profile.

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
        var (profile, origin) = await ProfileAsync(options, layout, pipeline, home, log, cancellationToken);
        if (profile.Model.Value != manifest.Model)
            throw new InvalidOperationException($"the profile describes model '{profile.Model.Value}', the pipeline is '{manifest.Model}'");
        return new ServingBackendParts(manifest, new OnnxStageExecutorFactory(directory), profile, origin, pipeline.Tokenizer);
    }

    private static async Task<(Profile, string)> ProfileAsync(TridentOptions options, DeviceLayout layout, LoadedPipeline pipeline, string home, ILogger log, CancellationToken ct)
    {
        if (options.Profile.Length > 0)
            return (Read(options.Profile), Path.GetFullPath(options.Profile));

        var quick = QuickOptions(options, layout, pipeline.Manifest);
        var cacheDir = Path.IsPathRooted(options.ProfileCache) ? options.ProfileCache : Path.Combine(home, options.ProfileCache);
        var cached = Path.Combine(cacheDir, $"{pipeline.Manifest.Name}-{CacheKey(pipeline, layout, quick)}.json");
        if (File.Exists(cached))
        {
            try
            {
                return (Read(cached), cached);
            }
            catch (InvalidDataException ex)
            {
                log.LogWarning("Cached profile {Path} is unreadable ({Error}); profiling again", cached, ex.Message);
            }
        }
        log.LogInformation("No profile configured: profiling {Pipeline} on this machine ({Shapes}; degrees {Degrees}); cached at {Path}",
            pipeline.Manifest.Name, string.Join(", ", quick.Shapes), string.Join(",", quick.Degrees), cached);
        var profile = await Profiler.ProfileAsync(pipeline, quick, ct);
        Directory.CreateDirectory(cacheDir);
        var tmp = cached + ".tmp";
        await File.WriteAllTextAsync(tmp, ProfileFile.serialize(profile), ct);
        File.Move(tmp, cached, overwrite: true);
        return (profile, cached + " (measured at start)");
    }

    private static Profile Read(string path)
    {
        var parsed = ProfileFile.parse(File.ReadAllText(path));
        if (parsed.IsError) throw new InvalidDataException($"profile {path}: " + string.Join("; ", parsed.ErrorValue));
        return parsed.ResultValue;
    }

    /// <summary>The quick profile: up to three square sizes from the pipeline's smallest to the default size
    /// (doubling), one frame, degrees 1, 2, 4, 8 up to the largest node, 2 steps, 2 repeats.</summary>
    public static ProfilerOptions QuickOptions(TridentOptions options, DeviceLayout layout, PipelineManifest manifest)
    {
        var size = manifest.Size;
        var target = Math.Min(Math.Max(options.Limits.DefaultWidth, options.Limits.DefaultHeight), Math.Min(size.MaxWidth, size.MaxHeight));
        var sides = size.DoublingSides(3, target).ToList();
        if (sides.Count == 0 || sides[^1] < target) sides.Add(target / size.MultipleOf * size.MultipleOf);
        var nodeSize = layout.Devices.GroupBy(d => d.Node).Max(g => g.Count());
        var degrees = options.Devices.Degrees.Where(k => k <= nodeSize).Distinct().Order().ToArray();
        return new ProfilerOptions
        {
            Shapes = [.. sides.Distinct().Select(s => new Shape(s, s, size.MinFrames))],
            Degrees = degrees.Length > 0 ? degrees : [1],
            // 4-step runs, median of 3: 2-step runs of 2 under-predicted the live per-step time by about 10 %
            Steps = 4,
            Repeats = 3,
            Command = "trident serve (quick profile at start)",
        };
    }

    private static string CacheKey(LoadedPipeline pipeline, DeviceLayout layout, ProfilerOptions quick)
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
        text.Append(CultureInfo.InvariantCulture, $"|cores={Environment.ProcessorCount}|threads={layout.Devices[0].IntraOpThreads}|kind={layout.Devices[0].Kind}");
        text.Append(CultureInfo.InvariantCulture, $"|steps={quick.Steps}|repeats={quick.Repeats}|decode=file|format={ProfileFile.Version}");
        text.Append("|batches=").Append(string.Join(",", quick.Batches));
        text.Append("|degrees=").Append(string.Join(",", quick.Degrees)).Append("|shapes=").Append(string.Join(",", quick.Shapes));
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16].ToLowerInvariant();
    }
}
