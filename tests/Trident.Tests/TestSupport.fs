/// What every test file shares: FsCheck properties as Expecto tests (with TRIDENT_REPLAY and a printed
/// replay command), exceptions expected of a given type, and class-fixture-like shared fixtures.
///
/// Test names: every module's tests are one `testList` named after the module, under "unit" (fast, run
/// in parallel with other modules) or "integration" (the tiny-pipeline and serving tests that ran alone
/// under xunit: sequenced, one at a time, after everything else). `--filter unit` / `--filter integration`
/// select either half. Tests of one module never run concurrently with each other, as under xunit.
module Trident.Tests.TestSupport

open System
open System.Text.RegularExpressions
open Expecto
open FsCheck

// ---- properties ------------------------------------------------------------------------------

/// TRIDENT_REPLAY="seed,gamma,size" (as a failing property prints it) replays the failing case alone, then
/// shrinks it again; "seed,gamma" replays the whole run from that seed.
let replay: (uint64 * uint64 * int option) option =
    match Environment.GetEnvironmentVariable "TRIDENT_REPLAY" with
    | null
    | "" -> None
    | value ->
        let parts = value.Split(',') |> Array.map _.Trim()
        if parts.Length < 2 || parts.Length > 3 then failwithf "TRIDENT_REPLAY=%s: expected \"seed,gamma\" or \"seed,gamma,size\"" value
        Some(uint64 parts.[0], uint64 parts.[1], (if parts.Length = 3 then Some(int parts.[2]) else None))

/// The FsCheck configuration of a property with `maxTest` cases (and TRIDENT_REPLAY's seed, if set).
let propertyConfig (maxTest: int) =
    { FsCheckConfig.defaultConfig with maxTest = maxTest; replay = replay }

let private quote (s: string) = "'" + s.Replace("'", "'\\''") + "'"

/// Expecto's "Focus on error: etestPropertyWithConfig (seed, gamma, Some size) name" line.
let private focusSeed = Regex(@"\((\d+)UL, (\d+)UL, Some (\d+)\)")

/// The command that replays one failing property alone.
let replayCommand (replay: string) (fullName: string) =
    sprintf "TRIDENT_REPLAY=\"%s\" dotnet run --project tests/Trident.Tests -c Release -- --no-spinner --run %s" replay (quote fullName)

/// Adds the replay command to a failing property's report (Expecto prints the seed, not how to use it).
let rec private withReplayCommand (test: Test) =
    match test with
    | TestLabel(name, inner, focus) -> TestLabel(name, withReplayCommand inner, focus)
    | TestCase(AsyncFsCheck(testConfig, stressConfig, run), focus) ->
        let run' config =
            // Expecto sets the running test's full name just before it calls this, on this thread.
            let fullName = testName
            async {
                try
                    return! run config
                with :? FailedException as e ->
                    let m = focusSeed.Match e.Message
                    if not m.Success then return raise e
                    else
                        let replay = sprintf "%s,%s,%s" m.Groups.[1].Value m.Groups.[2].Value m.Groups.[3].Value
                        return
                            raise (
                                FailedException(
                                    sprintf "%s\nSeed: %s. Replay this property alone:\n\t%s" e.Message replay
                                        (replayCommand replay fullName)
                                )
                            )
            }
        TestCase(AsyncFsCheck(testConfig, stressConfig, run'), focus)
    | other -> other

/// A property test of `maxTest` cases. `body` builds the property when the test first runs (not when
/// the test list is built), so a property's set-up costs nothing for tests that are filtered out.
let testProp (maxTest: int) (name: string) (body: unit -> Property) : Test =
    testPropertyWithConfig (propertyConfig maxTest) name (lazy (body ())) |> withReplayCommand

/// Runs `cleanup` after a test's code has finished, passed or failed.
let rec afterTest (cleanup: unit -> unit) (test: Test) =
    match test with
    | TestLabel(name, inner, focus) -> TestLabel(name, afterTest cleanup inner, focus)
    | TestCase(AsyncFsCheck(testConfig, stressConfig, run), focus) ->
        TestCase(AsyncFsCheck(testConfig, stressConfig, fun c -> async { try return! run c finally cleanup () }), focus)
    | TestCase(Sync f, focus) -> TestCase(Sync(fun () -> try f () finally cleanup ()), focus)
    | TestCase(Async a, focus) -> TestCase(Async(async { try return! a finally cleanup () }), focus)
    | other -> other

// ---- exceptions ------------------------------------------------------------------------------

/// What `f` throws, if anything.
let private thrownBy (f: unit -> unit) : exn option =
    try
        f ()
        None
    with e ->
        Some e

/// Expects `f` to throw exactly an 'E (not a subtype, like xunit's Assert.Throws) and returns it.
let expectThrows<'E when 'E :> exn> (message: string) (f: unit -> unit) : 'E =
    match thrownBy f with
    | Some(:? 'E as e) when e.GetType() = typeof<'E> -> e
    | Some e -> failtestf "%s. Expected %s to be thrown, got %O" message typeof<'E>.FullName e
    | None -> failtestf "%s. Expected %s to be thrown, nothing was thrown" message typeof<'E>.FullName

/// Expects `f` to throw an 'E or a subtype of it (like xunit's Assert.ThrowsAny) and returns it.
let expectThrowsAny<'E when 'E :> exn> (message: string) (f: unit -> unit) : 'E =
    match thrownBy f with
    | Some(:? 'E as e) -> e
    | Some e -> failtestf "%s. Expected %s (or a subtype) to be thrown, got %O" message typeof<'E>.FullName e
    | None -> failtestf "%s. Expected %s to be thrown, nothing was thrown" message typeof<'E>.FullName

// ---- the command line ------------------------------------------------------------------------

/// Runs `trident ARGS` in process (Trident.Api.Cli.Commands), capturing standard output and error: the exit
/// code, the output, the errors. The console is the whole process's: tests that call it are sequenced.
let runCli (args: string list) =
    let out, err = new IO.StringWriter(), new IO.StringWriter()
    let previousOut, previousErr = Console.Out, Console.Error
    Console.SetOut out
    Console.SetError err
    let code =
        try Trident.Api.Cli.Commands.RunAsync(Array.ofList args).GetAwaiter().GetResult()
        finally
            Console.SetOut previousOut
            Console.SetError previousErr
    code, string out, string err

// ---- shared fixtures -------------------------------------------------------------------------

/// A fixture built on first use and shared by the tests of one sequenced list (xunit's class fixture).
/// Building one disposes every other live fixture (the tests that used it have run: sequenced tests run
/// one list after another); `Fixtures.DisposeAll` at the end of the run disposes the last.
type Fixture<'T when 'T :> IDisposable>(create: unit -> 'T) =
    let mutable value: 'T option = None
    member this.Value =
        lock Fixtures.Live (fun () ->
            match value with
            | Some v -> v
            | None ->
                Fixtures.DisposeAllBut(this :> obj)
                let v = create ()
                value <- Some v
                Fixtures.Live.Add(this :> obj, (fun () -> lock Fixtures.Live (fun () -> value <- None); v.Dispose()))
                v)

and Fixtures private () =
    static member val Live: Collections.Generic.List<obj * (unit -> unit)> = Collections.Generic.List<obj * (unit -> unit)>()
    static member DisposeAllBut(keep: obj) =
        let others = Fixtures.Live |> Seq.filter (fun (o, _) -> not (obj.ReferenceEquals(o, keep))) |> List.ofSeq
        for (o, dispose) in others do
            Fixtures.Live.RemoveAll(fun (x, _) -> obj.ReferenceEquals(x, o)) |> ignore
            try dispose () with e -> eprintfn "disposing a test fixture failed: %O" e
    /// Disposes every live fixture (called once the run has finished).
    static member DisposeAll() = lock Fixtures.Live (fun () -> Fixtures.DisposeAllBut null)
