// Trident build script.  Run with:  dotnet fsi build.fsx -t <target>
//
// Targets:
//   setup  native dependencies: onnx.proto (Debian libonnx-dev)
//          (ONNX Runtime and OR-Tools come from NuGet with their native libraries: nothing to set up)
//   build  setup, paket restore, dotnet build of Trident.sln (Release)
//   test   build, then every test executable + scripts/explore.fsx; prints "N passed, N failed"
//          (arguments after `--` go to the test executables: `-t test -- --filter integration`)
//   bench  build, then `trident bench dispatch` at the reference configuration
//
// FAKE 5.20.3 is used as a library (the fake-cli tool cannot run scripts on this platform),
// so the execution context is initialised from the fsi arguments below.
#r "nuget: Fake.Core.Target, 5.20.3"
#r "nuget: Fake.Core.Process, 5.20.3"
#r "nuget: Fake.IO.FileSystem, 5.20.3"

open System
open System.IO
open Fake.Core
open Fake.IO

let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray
Context.FakeExecutionContext.Create false "build.fsx" args
|> Context.RuntimeContext.Fake
|> Context.setExecutionContext

let root = __SOURCE_DIRECTORY__
let configuration = "Release"

/// Runs a program and fails the target when it exits non-zero.
let run (program: string) (arguments: string list) (workDir: string) =
    let result =
        CreateProcess.fromRawCommand program arguments
        |> CreateProcess.withWorkingDirectory workDir
        |> Proc.run
    if result.ExitCode <> 0 then
        failwithf "'%s %s' failed with exit code %d" program (String.Join(" ", arguments)) result.ExitCode

/// Runs a program and returns its exit code and standard output (stderr passes through).
let capture (program: string) (arguments: string list) =
    CreateProcess.fromRawCommand program arguments
    |> CreateProcess.redirectOutput
    |> CreateProcess.withWorkingDirectory root
    |> Proc.run
    |> fun r -> r.ExitCode, r.Result.Output

let dotnet args = run "dotnet" args root

// ---------------------------------------------------------------------------------------------
// Native dependencies
// ---------------------------------------------------------------------------------------------

let isRoot () =
    try
        let code, out = capture "id" [ "-u" ]
        code = 0 && out.Trim() = "0"
    with _ -> false

let libraryPresent (name: string) =
    try
        let _, out = capture "/sbin/ldconfig" [ "-p" ]
        out.Contains name
    with _ -> false

/// Debian packages Trident needs, with the file that proves each is installed: onnx.proto (the ONNX model
/// types are generated from it), ffmpeg/ffprobe (videos are encoded by ffmpeg through FFMpegCore; the tests
/// read them back with ffprobe), and nodejs/npm (a test drives the server with the official `openai` npm
/// client; it is skipped, saying why, where npm cannot reach a registry), chromium (the web view's browser test)
/// and redis-server (the cluster's Redis membership, started by the cluster tests and `bench cluster`).
let debianPackages =
    [ "libonnx-dev", (fun () -> File.Exists "/usr/include/onnx/onnx.proto")
      "ffmpeg", (fun () -> File.Exists "/usr/bin/ffmpeg" && File.Exists "/usr/bin/ffprobe")
      "nodejs", (fun () -> File.Exists "/usr/bin/node")
      "npm", (fun () -> File.Exists "/usr/bin/npm")
      // the web view's browser test drives Debian's chromium through Microsoft.Playwright (never `playwright install`)
      "chromium", (fun () -> File.Exists "/usr/bin/chromium")
      // the cluster tests and `bench cluster` start their own redis-server for Redis membership (docs/cluster.md)
      "redis-server", (fun () -> File.Exists "/usr/bin/redis-server") ]

let ensureDebianPackages () =
    let missing = debianPackages |> List.filter (fun (_, present) -> not (present ())) |> List.map fst
    if not missing.IsEmpty then
        if isRoot () then
            Trace.tracefn "Installing Debian packages: %s" (String.Join(" ", missing))
            run "apt-get" [ "update"; "-qq" ] root
            run "apt-get" ([ "install"; "-y"; "-qq" ] @ missing) root
        else
            failwithf
                "Missing Debian packages: %s. Install them as root: apt-get install -y %s"
                (String.Join(", ", missing))
                (String.Join(" ", missing))

// ---------------------------------------------------------------------------------------------
// Tests: each test executable's plain closing line, summed into one closing line
// ---------------------------------------------------------------------------------------------

/// Expecto test executables (Release build output), run with `dotnet <dll>`.
let testAssemblies = [ "tests/Trident.Tests/bin/Release/net10.0/Trident.Tests.dll" ]

/// The closing line a test executable prints last: "N passed, N failed" or "N passed, N failed, N skipped".
let closingLine = Text.RegularExpressions.Regex(@"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")

/// Runs one test executable, echoing its output; returns its exit code and the counts of its closing line.
/// Lines of the form "failed test: NAME: MESSAGE" (tests/Trident.Tests/Main.fs), repeated above the closing line.
let failedTests = Collections.Generic.List<string>()

let runTestAssembly (dll: string) (extraArgs: string list) =
    let mutable counts = None
    let onLine (line: string) =
        if not (isNull line) then
            printfn "%s" line
            if line.StartsWith "failed test: " then failedTests.Add line
            let m = closingLine.Match(line.Trim())
            if m.Success then
                let skipped = if m.Groups.[3].Success then int m.Groups.[3].Value else 0
                counts <- Some(int m.Groups.[1].Value, int m.Groups.[2].Value, skipped)
    let code =
        CreateProcess.fromRawCommand "dotnet" ([ dll; "--no-spinner" ] @ extraArgs)
        |> CreateProcess.withWorkingDirectory root
        |> CreateProcess.redirectOutput
        |> CreateProcess.withOutputEventsNotNull onLine (fun line -> eprintfn "%s" line)
        |> Proc.run
        |> fun r -> r.ExitCode
    code, counts

Target.create "setup" (fun _ -> ensureDebianPackages ())

Target.create "restore" (fun _ ->
    dotnet [ "tool"; "restore" ]
    dotnet [ "paket"; "restore" ])

Target.create "build" (fun _ ->
    let started = DateTime.UtcNow
    dotnet [ "build"; "Trident.sln"; "-c"; configuration; "--nologo"; "-v"; "q"; "-clp:NoSummary" ]
    // ./trident rebuilds when a source is newer than its stamp: this build is its build too (stamped with the time it
    // started, so a source saved during it still counts as newer), and a first ./trident after it does not build again
    let stamp = Path.Combine(root, ".cache", "build.stamp")
    Directory.CreateDirectory(Path.GetDirectoryName stamp) |> ignore
    File.WriteAllText(stamp, "")
    File.SetLastWriteTimeUtc(stamp, started))

/// The test target's closing line and whether it passed, printed after FAKE's build report so it comes last.
let mutable testOutcome: (string * bool) option = None

Target.create "test" (fun p ->
    // Arguments after `--` go to every test executable, e.g. `-t test -- --filter integration`.
    let extra = p.Context.Arguments
    let mutable passed = 0
    let mutable failed = 0
    let mutable skipped = 0
    for dll in testAssemblies do
        let name = Path.GetFileNameWithoutExtension dll
        if not (File.Exists(Path.Combine(root, dll))) then
            Trace.traceErrorfn "%s: %s is missing (not built?)" name dll
            failed <- failed + 1
        else
            match runTestAssembly dll extra with
            | code, Some(p, f, s) ->
                passed <- passed + p
                failed <- failed + f
                skipped <- skipped + s
                if p + f = 0 then
                    Trace.traceErrorfn "%s: no test ran (exit code %d)" name code
                    failed <- failed + 1
                elif code <> 0 && f = 0 then
                    Trace.traceErrorfn "%s exited %d with no failed test counted (crash?)" name code
                    failed <- failed + 1
            | code, None ->
                Trace.traceErrorfn "%s printed no closing line (it crashed or did not start; exit code %d)" name code
                failed <- failed + 1
    // The exploration script runs as one more check, so it cannot rot.
    let exploreCode =
        CreateProcess.fromRawCommand "dotnet" [ "fsi"; "scripts/explore.fsx" ]
        |> CreateProcess.withWorkingDirectory root
        |> CreateProcess.withEnvironment [ ("TRIDENT_CONFIGURATION", configuration) ]
        |> Proc.run
        |> fun r -> r.ExitCode
    if exploreCode = 0 then passed <- passed + 1
    else
        Trace.traceErrorfn "scripts/explore.fsx exited %d" exploreCode
        failed <- failed + 1
    // The closing line is exactly "N passed, N failed" (what CI reads); skipped tests (those that need a CUDA
    // device, on a machine without one) are counted on the line before it.
    let line =
        (failedTests |> Seq.map (fun l -> l + "\n") |> String.concat "")
        + (if skipped > 0 then sprintf "%d skipped (tests that need what this machine lacks, e.g. a CUDA device)\n" skipped else "")
        + sprintf "%d passed, %d failed" passed failed
    testOutcome <- Some(line, failed = 0 && passed > 0))

Target.create "bench" (fun _ ->
    run "./trident" [ "bench"; "dispatch"; "--devices"; "128"; "--waiting"; "256" ] root)

open Fake.Core.TargetOperators

"setup" ==> "restore" ==> "build" ==> "test" |> ignore
"build" ==> "bench" |> ignore

Target.runOrDefaultWithArguments "test"

match testOutcome with
| Some(line, ok) ->
    printfn "%s" line
    if not ok then exit 1
| None -> ()
