/// The test executable: every `[<Tests>]` value of this assembly, run by Expecto with the command line's
/// arguments (`--filter`, `--filter-test-case`, `--run`, `--list-tests`, `--sequenced`, `--summary`, …; see
/// `--help`), then one plain closing line "N passed, N failed" (", N skipped" when tests were ignored).
/// The exit code is non-zero on any failed or errored test, on a crash, and when no test ran.
module Trident.Tests.Main

open System
open System.IO
open System.Text
open Expecto
open Expecto.Impl
open Trident.Tests.TestSupport

/// Writes past Expecto's colouring Console.Out wrapper, straight to the process's standard output.
let private writePlain (text: string) =
    Console.Out.Flush()
    use stdout = Console.OpenStandardOutput()
    let bytes = Encoding.UTF8.GetBytes text
    stdout.Write(bytes, 0, bytes.Length)
    stdout.Flush()

/// What starts each failed test's line above the closing line (build.fsx repeats these lines at the very end).
[<Literal>]
let failedTestPrefix = "failed test: "

[<EntryPoint>]
let main argv =
    // The web API tests (WebApplicationFactory) find the server's content root from here.
    Directory.SetCurrentDirectory AppContext.BaseDirectory
    let informational =
        argv |> Array.exists (fun a -> a = "--list-tests" || a = "--help" || a = "-h" || a = "--version")
    let mutable summary: TestRunSummary option = None
    let code =
        try
            try
                runTestsInAssemblyWithCLIArgs [ Append_Summary_Handler(SummaryHandler(fun s -> summary <- Some s)) ] argv
            finally
                Fixtures.DisposeAll()
        with e ->
            writePlain (sprintf "\nthe test run crashed: %O\n" e)
            3
    match summary with
    | None when informational -> code
    | None ->
        writePlain "\n0 passed, 0 failed\nno test ran\n"
        if code <> 0 then code else 4
    | Some s ->
        let count (xs: (FlatTest * TestSummary) list) = xs |> List.sumBy (fun (_, r) -> r.count)
        let passed = count s.passed
        let failed = count s.failed + count s.errored
        let skipped = count s.ignored
        let line =
            if skipped > 0 then sprintf "%d passed, %d failed, %d skipped" passed failed skipped
            else sprintf "%d passed, %d failed" passed failed
        // Each failed test's name and the start of its message, just above the closing line, so a log that keeps
        // only its tail (CI's) still says which test failed and why.
        let failures =
            s.failed @ s.errored
            |> List.map (fun (test, r) ->
                let why =
                    match r.result with
                    | TestResult.Failed message -> message
                    | TestResult.Error e -> sprintf "%s: %s" (e.GetType().Name) e.Message
                    | other -> string other
                // Without colour codes and without the stack trace (the full report is above, in Expecto's log).
                let plain = Text.RegularExpressions.Regex.Replace(why, "\u001b\\[[0-9;]*m", "")
                let cut = plain.IndexOf("\n   at ")
                let message = if cut > 0 then plain.Substring(0, cut) else plain
                let oneLine = message.Replace("\r", " ").Replace("\n", " ").Trim()
                let short = if oneLine.Length > 400 then oneLine.Substring(0, 400) + " …" else oneLine
                // a failing property's seed (TestSupport's replay note) survives the cut
                let seed = Text.RegularExpressions.Regex.Match(oneLine, @"Seed: (\d+,\d+,\d+)")
                let short = if seed.Success && not (short.Contains seed.Value) then sprintf "%s [replay: TRIDENT_REPLAY=\"%s\"]" short seed.Groups.[1].Value else short
                sprintf "%s%s: %s\n" failedTestPrefix (test.fullName ".") short)
            |> String.concat ""
        writePlain ("\n" + failures + line + "\n")
        if code <> 0 then code
        elif failed > 0 then 1
        elif passed = 0 then 4
        else 0
