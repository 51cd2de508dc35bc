using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Trident.Api.Options;
using Trident.Scheduling;
using Trace = Trident.Scheduling.Trace;

namespace Trident.Api.Cli;

/// <summary>
/// Reads a trace file for the pure parser <see cref="Trace.parseFor"/> (the scheduling core reads no files):
/// the shell's one place that turns a path into trace requests.
/// </summary>
public static class TraceFile
{
    /// <summary>
    /// Parses the trace file at <paramref name="path"/> (CSV or JSON lines), each request checked against the
    /// profile <paramref name="profileOf"/> gives for its model.
    /// </summary>
    /// <returns>The requests sorted by arrival, or every problem found (a missing file is said to be missing,
    /// not taken for a workload name).</returns>
    public static FSharpResult<FSharpList<TraceRequest>, FSharpList<string>> Parse(
        Func<string, FSharpResult<Profile, string>> profileOf, string path) =>
        File.Exists(path)
            ? Trace.parseFor(FuncConvert.FromFunc(profileOf), File.ReadAllText(path))
            : FSharpResult<FSharpList<TraceRequest>, FSharpList<string>>.NewError(
                ListModule.Singleton(InputPath.NotAFile(path, "trace file")));
}
