// Peak memory of a piece of work, measured from the process's resident set (Linux /proc).
//
// Design note. ONNX Runtime allocates activations natively (its CPU arena), out of reach of the GC's
// counters, so the profiler measures the whole process: the growth of the peak resident set (VmHWM) over
// the resident set just before the work. The kernel resets VmHWM to the current VmRSS when "5" is written
// to /proc/self/clear_refs (Linux ≥ 4.0), so every measurement starts clean. Before reading the baseline the
// GC runs and glibc's malloc_trim hands freed heap pages back to the kernel; otherwise memory freed by an
// earlier measurement would be reused without showing up as growth (for the same reason the GC is asked to
// decommit its free memory). Growths of a few MB are noisy (the 256×256 diffuse point of the tiny pipeline
// reads 2–23 MB across runs); the 512×512 points (150–200 MB) repeat within a few per cent.
// Where the reset is not available (another OS, a locked-down /proc) the measurement falls back to VmRSS
// after the work minus VmRSS before, which misses memory freed before the work ended and so underestimates;
// MeasuresPeak says which is in use.

using System.Globalization;
using System.Runtime.InteropServices;

namespace Trident.Runtime.Profiling;

/// <summary>Process resident-set measurements.</summary>
public static class ProcessMemory
{
    private const string StatusFile = "/proc/self/status";
    private const string ClearRefsFile = "/proc/self/clear_refs";

    /// <summary>Whether peak measurements are exact (VmHWM can be reset) rather than resident-set deltas.</summary>
    public static bool MeasuresPeak { get; } = ProbePeakReset();

    /// <summary>Current resident set in bytes (VmRSS), or 0 where /proc is unavailable.</summary>
    public static long ResidentBytes() => ReadStatusKb("VmRSS:") * 1024;

    /// <summary>
    /// Runs <paramref name="work"/> and returns how far the process's resident set rose above its level just
    /// before it, at the peak (see the file notes), in bytes; never negative.
    /// </summary>
    public static long PeakGrowth(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        Settle();
        var before = ResidentBytes();
        var peakReset = MeasuresPeak && TryResetPeak();
        work();
        var after = peakReset ? ReadStatusKb("VmHWM:") * 1024 : ResidentBytes();
        return Math.Max(0, after - before);
    }

    /// <summary>Collects garbage and returns free native heap pages to the kernel, so the resident set is a
    /// fair baseline.</summary>
    public static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        // Aggressive also decommits the GC's free memory, which a plain collection keeps for reuse.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        try
        {
            if (OperatingSystem.IsLinux()) MallocTrim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc: nothing to trim.
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    private static bool ProbePeakReset() => ReadStatusKb("VmHWM:") > 0 && TryResetPeak();

    private static bool TryResetPeak()
    {
        try
        {
            File.WriteAllText(ClearRefsFile, "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long ReadStatusKb(string key)
    {
        try
        {
            foreach (var line in File.ReadLines(StatusFile))
                if (line.StartsWith(key, StringComparison.Ordinal))
                {
                    var value = line[key.Length..].Trim();
                    var space = value.IndexOf(' ');
                    return long.Parse(space < 0 ? value : value[..space], CultureInfo.InvariantCulture);
                }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return 0;
    }
}
