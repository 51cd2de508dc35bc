// Trident build script.  Run with:  dotnet fsi build.fsx -t <target>
//
// Targets:
//   setup  native dependencies: CBC (Debian coinor-libcbc3), onnx.proto (Debian libonnx-dev),
//          (ONNX Runtime comes from NuGet, Microsoft.ML.OnnxRuntime.Gpu.Linux: nothing to set up)
//   build  setup, paket restore, dotnet build of Trident.sln (Release)
//   test   build, then every test project + scripts/explore.fsx; prints "N passed, N failed"
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

/// Debian packages Trident needs, with the file that proves each is installed.
let debianPackages =
    [ "coinor-libcbc3", (fun () -> libraryPresent "libCbcSolver.so.3")
      "libonnx-dev", (fun () -> File.Exists "/usr/include/onnx/onnx.proto") ]

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
// Tests: one TRX per project, summed into one closing line
// ---------------------------------------------------------------------------------------------

let testProjects = [ "tests/Trident.Tests/Trident.Tests.fsproj" ]

let trxCounters (path: string) =
    let doc = Xml.XmlDocument()
    doc.Load path
    let ns = Xml.XmlNamespaceManager(doc.NameTable)
    ns.AddNamespace("t", "http://microsoft.com/schemas/VisualStudio/TeamTest/2010")
    match doc.SelectSingleNode("//t:ResultSummary/t:Counters", ns) with
    | null -> None
    | node ->
        let attr (n: string) =
            match node.Attributes.[n] with
            | null -> 0
            | a -> int a.Value
        Some(attr "passed", attr "failed" + attr "error" + attr "timeout" + attr "aborted")

Target.create "setup" (fun _ -> ensureDebianPackages ())

Target.create "restore" (fun _ ->
    dotnet [ "tool"; "restore" ]
    dotnet [ "paket"; "restore" ])

Target.create "build" (fun _ -> dotnet [ "build"; "Trident.sln"; "-c"; configuration; "--nologo"; "-v"; "q"; "-clp:NoSummary" ])

Target.create "test" (fun _ ->
    let results = Path.Combine(root, "TestResults")
    Shell.cleanDir results
    let mutable passed = 0
    let mutable failed = 0
    for project in testProjects do
        let name = Path.GetFileNameWithoutExtension project
        let trx = Path.Combine(results, name + ".trx")
        let code =
            CreateProcess.fromRawCommand
                "dotnet"
                [ "test"; project; "-c"; configuration; "--no-build"; "--nologo"
                  "--logger"; sprintf "trx;LogFileName=%s" trx
                  "--logger"; "console;verbosity=minimal" ]
            |> CreateProcess.withWorkingDirectory root
            |> Proc.run
            |> fun r -> r.ExitCode
        match (if File.Exists trx then trxCounters trx else None) with
        | Some(p, f) ->
            passed <- passed + p
            failed <- failed + f
            if code <> 0 && f = 0 then
                Trace.traceErrorfn "%s: dotnet test exited %d with no failed test recorded (crash?)" name code
                failed <- failed + 1
            if p + f = 0 then
                Trace.traceErrorfn "%s: no test ran" name
                failed <- failed + 1
        | None ->
            Trace.traceErrorfn "%s: no TRX result (the test host crashed or did not start; exit code %d)" name code
            failed <- failed + 1
    // The exploration script runs as one more check, so it cannot rot.
    let exploreCode =
        CreateProcess.fromRawCommand "dotnet" [ "fsi"; "scripts/explore.fsx" ]
        |> CreateProcess.withWorkingDirectory root
        |> CreateProcess.withEnvironment [ "TRIDENT_CONFIGURATION", configuration ]
        |> Proc.run
        |> fun r -> r.ExitCode
    if exploreCode = 0 then passed <- passed + 1
    else
        Trace.traceErrorfn "scripts/explore.fsx exited %d" exploreCode
        failed <- failed + 1
    printfn "%d passed, %d failed" passed failed
    if failed > 0 || passed = 0 then exit 1)

Target.create "bench" (fun _ ->
    run "./trident" [ "bench"; "dispatch"; "--devices"; "128"; "--waiting"; "256" ] root)

open Fake.Core.TargetOperators

"setup" ==> "restore" ==> "build" ==> "test" |> ignore
"build" ==> "bench" |> ignore

Target.runOrDefaultWithArguments "test"
