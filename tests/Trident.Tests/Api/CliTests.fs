/// The command line (Trident.Api.Cli.Commands on System.CommandLine): `--help` of every command lists all its
/// options and starts nothing, `--version` prints the versions, an unknown option or bad values are refused
/// with exit code 2 and one error naming every bad option, and shell completion answers from the same
/// definitions.
module Trident.Tests.Api.CliTests

open System.CommandLine
open Expecto
open Trident.Api.Cli
open Trident.Tests.TestSupport

/// Every command with an action, as the words that name it ("simulate", "bench soak", …).
let rec private runnable (path: string list) (c: Command) : (string list * Command) list =
    let here = path @ [ c.Name ]
    [ if not (isNull c.Action) then yield here, c
      for sub in c.Subcommands do yield! runnable here sub ]

let private commands = Commands.All |> List.ofSeq |> List.collect (runnable [])

let ``--help of every command lists each of its options and exits 0 without running it`` =
    testCase "--help of every command lists each of its options and exits 0 without running it" <| fun () ->
        Expect.isGreaterThanOrEqual commands.Length 17 "serve, worker, …, and bench's and models' subcommands"
        for path, c in commands do
            let code, out, err = runCli (path @ [ "--help" ])
            let name = String.concat " " path
            Expect.equal code 0 (sprintf "%s --help: exit code (%s)" name err)
            Expect.stringContains out ("Usage:") (sprintf "%s --help: the usage" name)
            Expect.stringContains out (" " + name + " ") (sprintf "%s --help: the usage names the command" name)
            // a default is shown as it is written on the line (a list: 1,2 — System.CommandLine's own 1|2 is not the syntax)
            for m in System.Text.RegularExpressions.Regex.Matches(out, @"\[default: [^\]]*\]") do
                Expect.isFalse (m.Value.Contains "|") (sprintf "%s --help: %s is written as the option takes it" name m.Value)
            if name = "profile" then
                Expect.stringContains out "[default: 1,2]" "profile --help: --degrees' default"
                Expect.stringContains out "[default: 1,2,4,8]" "profile --help: --batches' default"
                // every stage is measured at the batch sizes, not only diffuse
                let batches = out.Split('\n') |> Array.find (fun l -> l.TrimStart().StartsWith "--batches")
                Expect.stringContains batches "each stage" "profile --help: --batches measures encode, diffuse and decode"
            for o in c.Options do
                Expect.stringContains out o.Name (sprintf "%s --help lists %s" name o.Name)
                if not (o :? Help.HelpOption) then
                    Expect.isFalse (System.String.IsNullOrWhiteSpace o.Description) (sprintf "%s %s has a description" name o.Name)
        let code, out, _ = runCli [ "--help" ]
        Expect.equal code 0 "trident --help"
        for c in Commands.All do
            Expect.stringContains out c.Name "trident --help lists every command"

let ``serve --help and simulate --help print help and start nothing`` =
    testCase "serve --help and simulate --help print help and start nothing" <| fun () ->
        // a server would bind this port and run until stopped; help returns at once with exit code 0
        let code, out, _ = runCli [ "serve"; "--urls"; "http://127.0.0.1:0"; "--help" ]
        Expect.equal code 0 "serve --help"
        Expect.stringContains out "--Trident:Serving:QueueCapacity" "serve's help says how configuration keys are given"
        let code, out, _ = runCli [ "simulate"; "--help" ]
        Expect.equal code 0 "simulate --help"
        Expect.stringContains out "[default: 128]" "defaults are shown"

let ``--version prints the version of trident and of its runtimes`` =
    testCase "--version prints the version of trident and of its runtimes" <| fun () ->
        let code, out, _ = runCli [ "--version" ]
        Expect.equal code 0 "exit code"
        Expect.stringStarts out "trident " "the first line"
        for part in [ "ONNX Runtime"; "OR-Tools"; ".NET" ] do
            Expect.stringContains out part "the runtimes' versions"

let ``an unknown option is refused with exit code 2, naming it once`` =
    testCase "an unknown option is refused with exit code 2, naming it once" <| fun () ->
        for args, bad in [ [ "simulate"; "--workload"; "poisson"; "--colour"; "red" ], "--colour"
                           [ "bench"; "dispatch"; "--rounds"; "3"; "--frobnicate" ], "--frobnicate"
                           [ "serve"; "--urls"; "http://127.0.0.1:0"; "--colour"; "red" ], "--colour"
                           [ "config"; "--defaults"; "--verbose=yes" ], "--verbose" ] do
            let code, _, err = runCli args
            Expect.equal code 2 (sprintf "%A: exit code" args)
            Expect.stringContains err (bad + ": unknown option") (sprintf "%A names the option" args)
            Expect.isFalse (err.Contains "'red'") "the unknown option's value is not reported as another error"
        let code, _, err = runCli [ "frobnicate" ]
        Expect.equal code 2 "an unknown command"
        Expect.stringContains err "unknown command 'frobnicate'" "the unknown command is named"

let ``two bad values give one error naming both`` =
    testCase "two bad values give one error naming both" <| fun () ->
        let code, out, err = runCli [ "capacity"; "--workload"; "poisson"; "--target"; "2"; "--parallel"; "x"; "--devices"; "-8" ]
        Expect.equal code 2 "exit code"
        Expect.equal out "" "nothing ran"
        let lines = err.Split('\n') |> Array.map _.Trim() |> Array.filter ((<>) "")
        Expect.equal (lines |> Array.filter (fun l -> l.EndsWith "invalid arguments") |> Array.length) 1 "one error"
        for expected in [ "--target: 2 is outside [0.01, 1]"; "--parallel: 'x' is not an integer"; "--devices: -8 is outside [1, 100000]" ] do
            Expect.contains lines expected "every bad value is named"
        // an option's error of several lines (a broken pipeline manifest's problems) is indented under it
        let dir = System.IO.Directory.CreateTempSubdirectory("trident-cli-")
        try
            System.IO.File.WriteAllText(System.IO.Path.Combine(dir.FullName, "trident-pipeline.json"), """{"format": "x"}""")
            let code, out, err = runCli [ "generate"; "--pipeline"; dir.FullName; "--prompt"; "x"; "--out"; System.IO.Path.Combine(dir.FullName, "x.png") ]
            Expect.equal code 2 "generate with a broken manifest"
            Expect.equal out "" "nothing ran"
            let lines = err.Split('\n') |> Array.map _.TrimEnd() |> Array.filter ((<>) "")
            let at = lines |> Array.findIndex (fun l -> l.StartsWith "  --pipeline: " && l.EndsWith "problems:")
            Expect.equal lines.[at + 1] "      format_version: required" "the manifest's problems are indented under --pipeline"
        finally
            dir.Delete true
        // generate's guidance range is the HTTP API's (0 to 100), not [0, Infinity]
        let code, _, err = runCli [ "generate"; "--prompt"; "x"; "--guidance"; "250"; "--out"; "/tmp/never.png" ]
        Expect.equal code 2 "generate --guidance 250"
        Expect.stringContains err "--guidance: 250 is outside [0, 100]" "the API's range"
        // a required option missing and a bad choice, together
        let code, _, err = runCli [ "models"; "sd-miniature"; "--era"; "1999" ]
        Expect.equal code 2 "models sd-miniature"
        Expect.stringContains err "--out: required" "the missing option"
        Expect.stringContains err "--era: '1999' is not one of diffusers-2022, optimum-2023, optimum" "the bad choice with the accepted ones"
        // the production day is a replayed log: a generator's overrides are refused, not ignored
        let code, out, err = runCli [ "simulate"; "--workload"; "gentd26-production"; "--rate"; "2" ]
        Expect.equal code 2 "simulate --workload gentd26-production --rate 2"
        Expect.equal out "" "nothing ran"
        Expect.stringContains err "not to gentd26-production (a replayed log)" "the override is named as not applying"
        // batching without batch points would batch nothing: refused, not ignored
        let code, out, err = runCli [ "simulate"; "--workload"; "poisson"; "--devices"; "2"; "--max-batch"; "4" ]
        Expect.equal code 2 "simulate --max-batch 4 on a reference profile"
        Expect.equal out "" "nothing ran"
        Expect.stringContains err "--max-batch: the reference profiles have no batch points" "names why"
        // with batch points, the command says where batches can form (test data: f(2) = 1.3, f(4) = 2, f(8) = 3.8)
        let file = System.IO.Path.GetTempFileName()
        try
            let profile = Trident.Tests.BatchingProperties.withBatches [ 1, 1.0; 2, 1.3; 4, 2.0; 8, 3.8 ] Trident.Scheduling.ReferenceProfiles.flux
            System.IO.File.WriteAllText(file, Trident.Scheduling.ProfileFile.serialize profile)
            let code, _, err = runCli [ "simulate"; "--workload"; "poisson"; "--profile"; file; "--devices"; "8"; "--count"; "20"; "--policies"; "Trident"; "--max-batch"; "4" ]
            Expect.equal code 0 "simulate --max-batch 4 with batch points runs"
            Expect.stringContains err "note: --max-batch 4: batches form at" "names where batches form"
        finally
            System.IO.File.Delete file

let ``simulate --shapes draws a generated workload from the given shapes only, and refuses bad ones`` =
    testCase "simulate --shapes draws a generated workload from the given shapes only, and refuses bad ones" <| fun () ->
        let trace = System.IO.Path.ChangeExtension(System.IO.Path.GetTempFileName(), ".csv")
        try
            let code, _, err = runCli [ "simulate"; "--workload"; "poisson"; "--model"; "flux"; "--shapes"; "512x512, 256x768"; "--count"; "40"; "--devices"; "8"; "--policies"; "Trident"; "--write-trace"; trace ]
            Expect.equal code 0 (sprintf "simulate --shapes runs (%s)" err)
            let rows = System.IO.File.ReadAllLines trace |> Array.skip 1 |> Array.map (fun l -> let f = l.Split(',') in f.[3], f.[4])
            Expect.equal rows.Length 40 "every request"
            Expect.equal (rows |> Array.distinct |> Array.sort) [| "256", "768"; "512", "512" |] "only the given shapes, both drawn"
        finally
            System.IO.File.Delete trace
        let code, out, err = runCli [ "simulate"; "--workload"; "poisson"; "--model"; "flux"; "--shapes"; "512x0,abc,256x256x9" ]
        Expect.equal code 2 "bad shapes"
        Expect.equal out "" "nothing ran"
        Expect.stringContains err "'512x0' is not HEIGHTxWIDTH" "a zero side"
        Expect.stringContains err "'abc' is not HEIGHTxWIDTH" "not a shape"
        Expect.stringContains err "256x256x9 has 9 frames, but model 'flux' is image-only" "frames for an image model, said once"
        let code, _, err = runCli [ "simulate"; "--workload"; "gentd26-production"; "--shapes"; "512x512" ]
        Expect.equal code 2 "a replayed log takes no shapes"
        Expect.stringContains err "--shapes: apply to generated workloads" "names the option"

let ``simulate on one node of two devices leaves no flux request unserved under Trident`` =
    testCase "simulate on one node of two devices leaves no flux request unserved under Trident" <| fun () ->
        // before: Trident 0.790 attainment, 14 unserved (every 2048² request), utilisation 0.075; B6 0.870, 0 unserved
        let code, out, err = runCli [ "simulate"; "--workload"; "poisson"; "--rate"; "0.02"; "--count"; "100"; "--devices"; "2"; "--policies"; "B6,Trident"; "--format"; "csv" ]
        Expect.equal code 0 (sprintf "simulate runs (%s)" err)
        let lines = out.Split('\n') |> Array.map _.Trim() |> Array.filter ((<>) "")
        let header = lines |> Array.find (fun l -> l.StartsWith "policy,")
        let column = header.Split(',') |> Array.findIndex ((=) "unserved")
        let unserved (policy: string) =
            // the params column is quoted and may hold commas: count columns from the end
            let row = lines |> Array.find (fun l -> l.StartsWith(policy + ","))
            let cells = row.Split(',')
            int cells.[cells.Length - (header.Split(',').Length - column)]
        Expect.equal (unserved "Trident") 0 "Trident serves every request, 2048² included"
        Expect.equal (unserved "B6") 0 "as B6 does"

let ``shell completion is answered from the command definitions`` =
    testCase "shell completion is answered from the command definitions" <| fun () ->
        let code, out, _ = runCli [ "completion"; "bash" ]
        Expect.equal code 0 "completion bash"
        Expect.stringContains out "[suggest:" "the script asks trident itself"
        Expect.stringContains out "complete -o default -F _trident_complete trident" "and registers for trident"
        let line = "simulate --fo"
        let code, out, _ = runCli [ sprintf "[suggest:%d]" line.Length; line ]
        Expect.equal code 0 "suggest"
        Expect.equal (out.Split('\n') |> Array.map _.Trim() |> Array.filter ((<>) "") |> List.ofArray) [ "--format" ] "the option that matches"
        let line = "simulate --format "
        let _, out, _ = runCli [ sprintf "[suggest:%d]" line.Length; line ]
        for value in [ "table"; "csv"; "json" ] do
            Expect.stringContains out value "a choice's values are completed"

let ``off a terminal, progress is plain lines on standard error, at most one per interval but always the first and last`` =
    testCase "off a terminal, progress is plain lines on standard error, at most one per interval but always the first and last" <| fun () ->
        let err = new System.IO.StringWriter()
        let previous = System.Console.Error
        System.Console.SetError err
        try
            using (CliProgress.Start("every step", System.Nullable 3, live = false)) (fun p ->
                Expect.isFalse p.IsLive "plain"
                for i in 1..3 do p.Step(sprintf "step %d" i))
            using (CliProgress.Start("throttled", System.Nullable 50, System.Nullable(System.TimeSpan.FromHours 1.0), false)) (fun p ->
                for i in 1..50 do p.Step(sprintf "request %d" i))
            using (CliProgress.Start("open-ended", System.Nullable<int>(), live = false)) (fun p -> p.Step "probe")
        finally
            System.Console.SetError previous
        let lines = (string err).Split('\n') |> Array.map _.TrimEnd() |> Array.filter ((<>) "") |> List.ofArray
        Expect.equal lines [ "[1/3] step 1"; "[2/3] step 2"; "[3/3] step 3"; "[1/50] request 1"; "[50/50] request 50"; "[1] probe" ] "the lines"

let ``serve exits with code 1 naming the reason when the serving runtime cannot start`` =
    testCase "serve exits with code 1 naming the reason when the serving runtime cannot start" <| fun () ->
        // CUDA device 97 passes the configuration's checks but cannot be opened when the runtime starts (no such
        // device on any machine these tests run on); the server must stop, not answer 503 on /ready forever
        let dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), sprintf "trident-failstart-%d" (System.Random.Shared.Next()))
        try
            let run = System.Threading.Tasks.Task.Run(fun () ->
                runCli [ "serve"; "--urls"; "http://127.0.0.1:0"; "--Trident:Devices:Kind"; "cuda:97"
                         "--Trident:Devices:MemoryGb"; "8"; "--Trident:Storage:Directory"; dir ])
            Expect.isTrue (run.Wait(System.TimeSpan.FromMinutes 2.0)) "serve returned instead of running on"
            let code, _, err = run.Result
            Expect.equal code 1 (sprintf "exit code (stderr: %s)" err)
            Expect.stringContains err "the serving runtime could not start" "says what failed"
            if not Trident.Runtime.Onnx.OrtEnvironment.HasCudaDevice then
                Expect.stringContains err "cuda:97" "names the device whose provider could not be added"
        finally
            if System.IO.Directory.Exists dir then System.IO.Directory.Delete(dir, true)

/// Before: profile and bench runtime with --device cuda:0 where CUDA's libraries are missing ended in an unhandled
/// ExecutionProviderException (exit 134, a stack trace); serve says the same of a CUDA device in one line, exit 1.
let ``a CUDA device that cannot be used is one line and exit 1 from every command that takes --device`` =
    testCase "a CUDA device that cannot be used is one line and exit 1 from every command that takes --device" <| fun () ->
        if Trident.Runtime.Onnx.OrtEnvironment.HasCudaDevice then skiptest "a CUDA device is present: the cuda list covers it"
        let out = System.IO.Path.Combine(System.IO.Path.GetTempPath(), sprintf "trident-nocuda-%d" (System.Random.Shared.Next()))
        for args in [ [ "profile"; "--pipeline"; "tiny"; "--shapes"; "64x64"; "--degrees"; "1"; "--batches"; "1"; "--steps"; "1"; "--repeats"; "1"
                        "--device"; "cuda:0"; "--out"; System.IO.Path.Combine(out, "p.json") ]
                      [ "bench"; "runtime"; "--width"; "64"; "--height"; "64"; "--steps"; "1"; "--runs"; "4"; "--max-runs"; "4"; "--device"; "cuda:0" ] ] do
            let name = String.concat " " args
            let code, _, err = runCli args
            Expect.equal code 1 (sprintf "%s: exit code (%s)" name err)
            let lines = err.Split('\n') |> Array.filter (fun l -> l.Trim() <> "")
            Expect.equal lines.Length 1 (sprintf "%s: one line (%s)" name err)
            Expect.stringStarts lines.[0] (sprintf "trident %s: device cuda:0: the CUDA execution provider could not be added" (String.concat " " (List.takeWhile (fun (a: string) -> not (a.StartsWith "-")) args))) (sprintf "%s: the command, the device and what failed" name)
        Expect.isFalse (System.IO.Directory.Exists out) "nothing written"

/// Before: a value the parser refuses (--steps 0) was reported alone, and the request was checked against the
/// pipeline only after its models were loaded, once that was fixed.
let ``bench runtime reports bad values and a request the pipeline refuses in one error`` =
    testCase "bench runtime reports bad values and a request the pipeline refuses in one error" <| fun () ->
        let code, out, err = runCli [ "bench"; "runtime"; "--width"; "100"; "--frames"; "50"; "--steps"; "0"; "--runs"; "8"; "--max-runs"; "4" ]
        Expect.equal code 2 (sprintf "exit code (%s)" err)
        Expect.equal out "" "nothing ran"
        let lines = err.Split('\n') |> Array.map _.Trim() |> Array.filter ((<>) "") |> List.ofArray
        Expect.equal (lines |> List.filter (fun l -> l.EndsWith "invalid arguments") |> List.length) 1 "one error"
        for expected in [ "--steps: 0 is outside"; "--width: must be a multiple of 16"; "--frames: must be between 1 and 9"; "--max-runs: must be at least --runs (8)" ] do
            Expect.isTrue (lines |> List.exists (fun l -> l.StartsWith expected)) (sprintf "%s… among %A" expected lines)
        Expect.equal (lines |> List.filter (fun l -> l.StartsWith "--steps") |> List.length) 1 "the bad --steps named once"

/// Before: `inspect tiny` said "directory … does not exist", although every other command takes `tiny` as the bundled pipeline.
let ``inspect takes tiny as the bundled pipeline, as --pipeline does`` =
    testCase "inspect takes tiny as the bundled pipeline, as --pipeline does" <| fun () ->
        let code, out, err = runCli [ "inspect"; "tiny" ]
        Expect.equal code 0 (sprintf "exit code (%s)" err)
        Expect.stringContains out "\"name\": \"tiny\"" "the tiny pipeline's manifest"
        Expect.stringContains out "models (checked against the manifest" "its models, checked"

/// A console whose every write fails as a full disk does (`> /dev/full`).
type private FullOutput() =
    inherit System.IO.TextWriter()
    override _.Encoding = System.Text.Encoding.UTF8
    override _.Write(_: char) : unit = raise (System.IO.IOException "No space left on device")
    override _.Write(_: string) : unit = raise (System.IO.IOException "No space left on device")
    override _.Write(_: char[], _: int, _: int) : unit = raise (System.IO.IOException "No space left on device")

let ``an output path a command cannot write is refused up front, and a failed write is one line with exit 1`` =
    testCase "an output path a command cannot write is refused up front, and a failed write is one line with exit 1" <| fun () ->
        let noStack (name: string) (err: string) =
            Expect.isFalse (err.Contains "   at ") (sprintf "%s: no stack trace (%s)" name err)
            Expect.isFalse (err.Contains "Unhandled exception") (sprintf "%s: no unhandled exception" name)
        // /proc takes no new files; a folder that does not exist is refused where the command does not create it
        let round = System.IO.Path.Combine(System.AppContext.BaseDirectory, "OpenApi", "Examples", "GetPlanRound.200.json")
        for args, option, path in
            [ [ "replay"; round; "--lp"; "/nonexistent-trident/dir/x.lp" ], "--lp", "/nonexistent-trident/dir/x.lp"
              [ "simulate"; "--workload"; "poisson"; "--out"; "/proc/nope" ], "--out", "/proc/nope"
              [ "simulate"; "--workload"; "poisson"; "--write-trace"; "/proc/nope/t.csv" ], "--write-trace", "/proc/nope/t.csv"
              [ "evaluate"; "--quick"; "--out"; "/proc/nope" ], "--out", "/proc/nope"
              [ "loadgen"; "--workload"; "tiny-poisson"; "--out"; "/proc/nope/r.csv" ], "--out", "/proc/nope/r.csv"
              [ "profile"; "--pipeline"; "tiny"; "--out"; "/proc/nope/p.json" ], "--out", "/proc/nope/p.json"
              [ "generate"; "--pipeline"; "tiny"; "--prompt"; "x"; "--width"; "64"; "--height"; "64"; "--out"; "/proc/nope/x.png" ], "--out", "/proc/nope/x.png"
              [ "models"; "tiny"; "--out"; "/proc/nope" ], "--out", "/proc/nope"
              [ "bench"; "soak"; "--out"; "/proc/nope/s.csv" ], "--out", "/proc/nope/s.csv"
              [ "bench"; "cluster"; "--out"; "/proc/nope/r.csv" ], "--out", "/proc/nope/r.csv" ] do
            let name = String.concat " " args
            let code, _, err = runCli args
            Expect.equal code 2 (sprintf "%s: refused before it runs (%s)" name err)
            Expect.stringContains err (sprintf "%s: cannot write '%s'" option path) (sprintf "%s: names the option and the path" name)
            noStack name err
        // a write that fails while it is made: one line naming the path and the reason, exit 1
        if System.IO.File.Exists "/dev/full" then
            for args, option in [ [ "replay"; round; "--lp"; "/dev/full" ], "--lp"
                                  [ "simulate"; "--workload"; "poisson"; "--count"; "20"; "--write-trace"; "/dev/full" ], "--write-trace" ] do
                let name = String.concat " " args
                let code, _, err = runCli args
                // 2 where this user may not create files in /dev (refused up front, naming it), else the write fails
                Expect.contains [ 1; 2 ] code (sprintf "%s: exit code (%s)" name err)
                Expect.stringContains err "/dev/full" (sprintf "%s: names the path" name)
                if code = 1 then
                    Expect.stringContains err (sprintf "could not write %s '/dev/full': No space left on device" option) (sprintf "%s: the reason" name)
                noStack name err
        // standard output that cannot be written: a command's output, and help
        for args, prefix in [ [ "config"; "--defaults" ], "trident config"; [ "simulate"; "--help" ], "trident simulate"; [ "--version" ], "trident" ] do
            let previousOut, previousErr = System.Console.Out, System.Console.Error
            let err = new System.IO.StringWriter()
            System.Console.SetOut(new FullOutput())
            System.Console.SetError err
            let code =
                try Commands.RunAsync(Array.ofList args).GetAwaiter().GetResult()
                finally
                    System.Console.SetOut previousOut
                    System.Console.SetError previousErr
            let name = String.concat " " args + " > /dev/full"
            Expect.equal code 1 (sprintf "%s: exit code (%s)" name (string err))
            Expect.stringContains (string err) (prefix + ": could not write to standard output: No space left on device") (name + ": names standard output and why")
            noStack name (string err)

let ``an input path of the wrong kind is named as a folder or a file, not as missing`` =
    testCase "an input path of the wrong kind is named as a folder or a file, not as missing" <| fun () ->
        let folder = System.IO.Directory.CreateTempSubdirectory("trident-input-").FullName
        let file = System.IO.Path.Combine(folder, "a.json")
        System.IO.File.WriteAllText(file, "{}")
        try
            // a folder where a file is read, and a file where a folder is read: each said so (not "does not exist",
            // nor File.ReadAllText's "Access to the path is denied")
            for args, expected in
                [ [ "replay"; folder ], "is a folder; give a trident-snapshot file"
                  [ "simulate"; "--workload"; folder; "--devices"; "8" ], "is a folder; give a trace file"
                  [ "simulate"; "--workload"; "poisson"; "--profile"; folder ], "is a folder; give a profile file"
                  [ "config"; "--check"; folder ], "is a folder; give a configuration file"
                  [ "serve"; "--urls"; "http://127.0.0.1:0"; "--config"; folder ], "is a folder; give a configuration file"
                  [ "inspect"; file ], "is a file; give a pipeline directory"
                  [ "generate"; "--pipeline"; file; "--prompt"; "x"; "--out"; System.IO.Path.Combine(folder, "x.png") ], "is a file, not a pipeline directory" ] do
                let name = String.concat " " args
                let code, _, err = runCli args
                Expect.contains [ 1; 2 ] code (sprintf "%s: exit code (%s)" name err)
                Expect.stringContains err expected (sprintf "%s: says what the path is" name)
                Expect.isFalse (err.Contains "does not exist") (sprintf "%s: not said to be missing" name)
                Expect.isFalse (err.Contains "   at ") (sprintf "%s: no stack trace" name)
        finally
            System.IO.Directory.Delete(folder, true)

/// A saved round edited by hand is input: before, `replay` of the server's example round with busy_until one device
/// short died of an IndexOutOfRangeException in the planner (exit 134), one with a device left out of placement.types
/// of a KeyNotFoundException, and one with steps 0 or a negative time limit was planned and printed as if nothing
/// were wrong. Each is refused with every problem on its own line, naming its JSON path, and exit 1 (the file cannot
/// be read), before anything is planned.
let ``replay of a round with bad fields lists every problem with its JSON path and exits 1, with no stack trace`` =
    testCase "replay of a round with bad fields lists every problem with its JSON path and exits 1, planning nothing and printing no stack trace" <| fun () ->
        let round = System.IO.Path.Combine(System.AppContext.BaseDirectory, "OpenApi", "Examples", "GetPlanRound.200.json")
        let code, _, err = runCli [ "replay"; round ]
        Expect.equal code 0 (sprintf "the server's example round replays (%s)" err)
        let dir = System.IO.Directory.CreateTempSubdirectory("trident-replay-").FullName
        try
            let edited (name: string) (change: System.Text.Json.Nodes.JsonNode -> unit) =
                let n = System.Text.Json.Nodes.JsonNode.Parse(System.IO.File.ReadAllText round)
                change n
                let file = System.IO.Path.Combine(dir, name + ".json")
                System.IO.File.WriteAllText(file, n.ToJsonString())
                file
            let shortBusy (n: System.Text.Json.Nodes.JsonNode) = n.["busy_until"].AsArray().RemoveAt 1
            let noType (n: System.Text.Json.Nodes.JsonNode) = n.["placement"].["types"].AsObject().Remove "1" |> ignore
            let noSteps (n: System.Text.Json.Nodes.JsonNode) = n.["queue"].[0].["steps"] <- System.Text.Json.Nodes.JsonValue.Create 0
            let badLimit (n: System.Text.Json.Nodes.JsonNode) = n.["settings"].["time_limit_s"] <- System.Text.Json.Nodes.JsonValue.Create -1
            let busyProblem = "busy_until: has 1 entry for the 2 devices of cluster.devices (one per device, in id order)"
            let typeProblem = "placement.types: device 1 has no type (every device of cluster.devices needs one)"
            let stepsProblem = "queue[0].steps: 0 must be ≥ 1"
            let limitProblem = "settings.time_limit_s: -1 must be > 0"
            for name, change, expected in
                [ "short-busy", shortBusy, [ busyProblem ]
                  "no-type", noType, [ typeProblem ]
                  "no-steps", noSteps, [ stepsProblem ]
                  "bad-limit", badLimit, [ limitProblem ]
                  "several", (fun n -> shortBusy n; noType n; noSteps n; badLimit n), [ typeProblem; busyProblem; stepsProblem; limitProblem ] ] do
                let file = edited name change
                let code, out, err = runCli [ "replay"; file ]
                Expect.equal code 1 (sprintf "%s: the file cannot be read (%s)" name err)
                Expect.equal out "" (sprintf "%s: nothing planned or printed" name)
                let header = sprintf "trident replay: %s: not a valid trident-snapshot document" file
                let lines = err.TrimEnd().Split('\n') |> Array.map _.TrimEnd('\r') |> List.ofArray
                match expected with
                | [ one ] -> Expect.equal lines [ header + ": " + one ] (sprintf "%s: one line" name)
                | many -> Expect.equal lines ((header + sprintf " (%d problems):" many.Length) :: (many |> List.map (fun e -> "  " + e))) (sprintf "%s: one problem a line" name)
                Expect.isFalse (err.Contains "   at ") (sprintf "%s: no stack trace" name)
        finally
            System.IO.Directory.Delete(dir, true)

let ``the named workload gentd26-production is found from any directory`` =
    testCase "the named workload gentd26-production is found from any directory" <| fun () ->
        let elsewhere = System.IO.Directory.CreateTempSubdirectory("trident-cwd-").FullName
        let previous = System.IO.Directory.GetCurrentDirectory()
        System.IO.Directory.SetCurrentDirectory elsewhere
        try
            // a bad --split stops it before simulating; the log is read (or missed) on the way
            let code, _, err = runCli [ "simulate"; "--workload"; "gentd26-production"; "--split"; "1:0:1" ]
            Expect.equal code 2 (sprintf "exit code (%s)" err)
            Expect.stringContains err "--split" "the bad option is named"
            Expect.isFalse (err.Contains "no production log") (sprintf "the bundled log is found under Trident's home (%s)" err)
        finally
            System.IO.Directory.SetCurrentDirectory previous
            System.IO.Directory.Delete(elsewhere, true)

let ``models' help offers only the choices each command takes`` =
    testCase "models' help offers only the choices each command takes" <| fun () ->
        // SDXL base predicts epsilon only: sdxl-miniature offered v_prediction in its help, then refused it
        let code, out, _ = runCli [ "models"; "sdxl-miniature"; "--help" ]
        Expect.equal code 0 "sdxl-miniature --help"
        Expect.stringContains out "--prediction <epsilon>" "sdxl-miniature offers epsilon alone"
        Expect.isFalse (out.Contains "v_prediction") "nor v_prediction anywhere in its help"
        let code, out, _ = runCli [ "models"; "sd-miniature"; "--help" ]
        Expect.equal code 0 "sd-miniature --help"
        Expect.stringContains out "--prediction <epsilon|v_prediction>" "sd-miniature offers both"
        let code, _, err = runCli [ "models"; "sdxl-miniature"; "--prediction"; "v_prediction"; "--out"; "/nonexistent-trident/sdxl" ]
        Expect.equal code 2 (sprintf "sdxl-miniature --prediction v_prediction: refused (%s)" err)
        Expect.stringContains err "--prediction" "naming the option"

let ``capacity says the load is fixed for --devices only where it is scaled to them`` =
    testCase "capacity says the load is fixed for --devices only where it is scaled to them" <| fun () ->
        let loadLine (args: string list) =
            let code, _, err = runCli ([ "capacity"; "--devices"; "8"; "--count"; "20"; "--policies"; "B4"; "--max-devices"; "8"; "--target"; "0.5" ] @ args)
            Expect.equal code 0 (sprintf "capacity %A: exit code (%s)" args err)
            err.Split('\n') |> Array.find (fun l -> l.StartsWith "capacity: the workload is")
        // poisson without --profile runs at its reference rate whatever --devices is
        Expect.stringContains (loadLine [ "--workload"; "poisson" ]) "not scaled to --devices" "poisson over the reference mix"
        // over a profile's shapes without --rate it loads --devices to 70 %
        let profile = System.IO.Path.GetTempFileName()
        try
            System.IO.File.WriteAllText(profile, Trident.Scheduling.ProfileFile.serialize Trident.Scheduling.ReferenceProfiles.flux)
            Expect.stringContains (loadLine [ "--workload"; "poisson"; "--profile"; profile ]) "fixed for --devices 8" "poisson over --profile's shapes"
            Expect.stringContains (loadLine [ "--workload"; "poisson"; "--profile"; profile; "--rate"; "1" ]) "not scaled to --devices" "with --rate"
        finally
            System.IO.File.Delete profile
        let _, out, _ = runCli [ "capacity"; "--help" ]
        Expect.stringContains out "a generated workload over --profile's shapes without --rate" "the help says which workloads are scaled"

/// Before: `serve --devices 2 --Trident:Devices:Count 3` served 3 devices, saying nothing (the host's command line gives
/// the key after the short option's expansion, and the later one wins).
let ``a short serve option and the key it stands for with another value are a usage error naming both`` =
    testCase "a short serve option and the key it stands for with another value are a usage error naming both" <| fun () ->
        let code, out, err = runCli [ "serve"; "--devices"; "2"; "--Trident:Devices:Count"; "3"; "--urls"; "http://127.0.0.1:0"; "--Trident:Storage:Directory"; "memory" ]
        Expect.equal code 2 (sprintf "exit 2 (%s)" err)
        Expect.equal out "" "nothing served"
        Expect.stringContains err "--devices: --devices 2 sets Trident:Devices:Count to 2, but --Trident:Devices:Count 3 sets it to 3" "both named with their values"
        let parse args = Commands.Parse(ServeCommand.Command, args)
        let problems args =
            try
                parse args |> ignore
                []
            with :? CliException as e -> List.ofSeq e.Errors
        // --emulate P stands for two keys; the key's case and the = form do not hide a conflict
        let found = problems [ "--emulate"; "flux"; "--trident:devices:kind=cpu"; "--Trident:Emulation:Profile"; "sd3" ]
        Expect.equal found.Length 2 (sprintf "the kind and the profile: %A" found)
        Expect.stringContains found.[0] "--emulate flux sets Trident:Devices:Kind to emulated, but --trident:devices:kind cpu sets it to cpu" "the kind"
        Expect.stringContains found.[1] "--emulate flux sets Trident:Emulation:Profile to flux, but --Trident:Emulation:Profile sd3 sets it to sd3" "the profile"
        // the same value twice is no conflict (as text or as a number)
        Expect.isEmpty (problems [ "--devices"; "2"; "--Trident:Devices:Count"; "2.0"; "--emulate"; "flux"; "--Trident:Devices:Kind"; "emulated"
                                   "--time-scale=0.5"; "--Trident:Emulation:TimeScale"; "0.50" ]) "the same values"
        Expect.isEmpty (problems [ "--devices"; "2"; "--Trident:Devices:DevicesPerNode"; "3" ]) "another key is no conflict"

/// Before: `serve --time-scale 0.05` on CPU devices served at full time, saying nothing (only emulated devices take
/// their time from a profile); `config --check` of a file with the same keys said it was valid.
let ``a time scale for devices that are not emulated is refused by serve and by config --check alike`` =
    testCase "a time scale for devices that are not emulated is refused by serve and by config --check alike" <| fun () ->
        let problem = "Trident:Emulation:TimeScale (--time-scale) applies to emulated devices only (--emulate PROFILE, i.e. Devices:Kind 'emulated'), not to Devices:Kind 'cpu'"
        let code, out, err = runCli [ "serve"; "--time-scale"; "0.05"; "--urls"; "http://127.0.0.1:0"; "--Trident:Storage:Directory"; "memory" ]
        Expect.equal code 2 (sprintf "serve: exit 2 (%s)" err)
        Expect.equal out "" "nothing served"
        Expect.stringContains err problem "serve names the key, the short option and --emulate"
        let file = System.IO.Path.ChangeExtension(System.IO.Path.GetTempFileName(), ".json")
        try
            System.IO.File.WriteAllText(file, """{"Trident": {"Devices": {"Kind": "cpu"}, "Emulation": {"TimeScale": 0.05}}}""")
            let code, _, err = runCli [ "config"; "--check"; file ]
            Expect.equal code 2 (sprintf "config --check: exit 2 (%s)" err)
            Expect.stringContains err problem "config --check says the same"
            // the default scale, and any scale of emulated devices, is fine
            System.IO.File.WriteAllText(file, """{"Trident": {"Devices": {"Kind": "cpu"}, "Emulation": {"TimeScale": 1.0}}}""")
            let code, _, err = runCli [ "config"; "--check"; file ]
            Expect.isFalse (err.Contains "TimeScale") (sprintf "the default scale on cpu (%d: %s)" code err)
            System.IO.File.WriteAllText(file, """{"Trident": {"Devices": {"Kind": "emulated"}, "Emulation": {"TimeScale": 0.05}}}""")
            let code, _, err = runCli [ "config"; "--check"; file ]
            Expect.isFalse (err.Contains "TimeScale") (sprintf "emulated devices (%d: %s)" code err)
        finally
            System.IO.File.Delete file

/// Before: `profile --degrees 3` wrote a profile that `simulate --profile` and `capacity --profile` then died on with an
/// unhandled ArgumentException and its stack trace (exit 134): the planner runs the diffuse at 1, 2, 4 and 8 only.
let ``a diffuse degree the planner never uses is refused by profile, and a profile of such degrees alone by simulate`` =
    testCase "a diffuse degree the planner never uses is refused by profile, and a profile of such degrees alone by simulate and capacity" <| fun () ->
        let code, out, err = runCli [ "profile"; "--pipeline"; "tiny"; "--out"; System.IO.Path.Combine(System.IO.Path.GetTempPath(), "never.json"); "--degrees"; "1,3" ]
        Expect.equal code 2 (sprintf "profile --degrees 1,3: exit 2 (%s)" err)
        Expect.equal out "" "nothing measured"
        Expect.stringContains err "--degrees: 3 is not a degree Trident plans the diffuse at (1, 2, 4, 8)" "names the degree and the planned ones"
        let flux = Trident.Scheduling.ReferenceProfiles.flux
        let regrade (f: int -> int) =
            { flux with Diffuse = { flux.Diffuse with Points = flux.Diffuse.Points |> List.map (fun p -> { p with Degree = f p.Degree }) } }
        let file = System.IO.Path.ChangeExtension(System.IO.Path.GetTempFileName(), ".json")
        try
            System.IO.File.WriteAllText(file, Trident.Scheduling.ProfileFile.serialize (regrade (fun k -> 3 * k)))
            for command in [ "simulate"; "capacity" ] do
                let code, out, err = runCli [ command; "--workload"; "poisson"; "--profile"; file; "--devices"; "8"; "--count"; "10" ]
                Expect.equal code 2 (sprintf "%s: exit 2 (%s)" command err)
                Expect.equal out "" (sprintf "%s: nothing ran" command)
                Expect.stringContains err "none of the degrees Trident plans with (1, 2, 4, 8)" (sprintf "%s names the profile's problem" command)
                Expect.isFalse (err.Contains "   at ") (sprintf "%s: no stack trace" command)
            // points at an unplanned degree beside planned ones are left out, with a warning
            System.IO.File.WriteAllText(file, Trident.Scheduling.ProfileFile.serialize (regrade (fun k -> if k = 8 then 3 else k)))
            let code, _, err = runCli [ "simulate"; "--workload"; "poisson"; "--profile"; file; "--devices"; "8"; "--count"; "10"; "--policies"; "Trident" ]
            Expect.equal code 0 (sprintf "a profile with planned degrees runs (%s)" err)
            Expect.stringContains err "its points at degree 3 are not used" "says what is left out"
        finally
            System.IO.File.Delete file

/// Before: `serve --devices x --colour red --Trident:Serving:QueueCapacty 3` named --devices and --colour, and the
/// misspelt key only on the next run (the configuration check ran once the command line was accepted).
let ``serve names a misspelt configuration key beside the command line's other mistakes`` =
    testCase "serve names a misspelt configuration key beside the command line's other mistakes, in one run" <| fun () ->
        let code, out, err = runCli [ "serve"; "--devices"; "x"; "--colour"; "red"; "--Trident:Serving:QueueCapacty"; "3"; "--urls"; "http://127.0.0.1:0" ]
        Expect.equal code 2 (sprintf "exit 2 (%s)" err)
        Expect.equal out "" "nothing served"
        for expected in [ "--devices: 'x' is not an integer"; "--colour: unknown option"
                          "Trident:Serving:QueueCapacty is not a configuration key (keys under Trident:Serving: RoundPeriodMs, QueueCapacity" ] do
            Expect.stringContains err expected "every mistake in one run"

/// Before: `Limits:MaxWidth -5` also gave "Trident:Limits:DefaultWidth must be between 8 and Limits:MaxWidth", a key
/// nobody set, and neither message said the value.
let ``a bad limit is named with its value, and the default it bounds is not judged against it`` =
    testCase "a bad limit is named with its value, and the default it bounds is not judged against it" <| fun () ->
        let file = System.IO.Path.ChangeExtension(System.IO.Path.GetTempFileName(), ".json")
        try
            System.IO.File.WriteAllText(file, """{"Trident": {"Limits": {"MaxWidth": -5, "MaxHeight": 128}}}""")
            let code, _, err = runCli [ "config"; "--check"; file ]
            Expect.equal code 2 (sprintf "config --check: exit 2 (%s)" err)
            Expect.stringContains err "Trident:Limits:MaxWidth must be between 8 and 16384 (got '-5')" "the limit with its value"
            Expect.isFalse (err.Contains "DefaultWidth must be") "the default width is not judged against a limit that is wrong"
            // a valid limit below the default: the default is named, with both values
            Expect.stringContains err "Trident:Limits:DefaultHeight must be between 8 and Limits:MaxHeight (128) (got 256)" "the default against a valid limit"
        finally
            System.IO.File.Delete file

/// Before: loadgen and capacity reported the values that did not parse (or were out of range) alone, and their other
/// problems (an unknown workload or policy, --load with a named workload, a URL that is not loopback) on the next run;
/// loadgen named an unknown workload only after reading the server (or said no server ran).
let ``loadgen and capacity report every problem of the command line at once, loadgen before any request`` =
    testCase "loadgen and capacity report every problem of the command line at once, loadgen before any request" <| fun () ->
        let lines (err: string) = err.Split('\n') |> Array.map _.Trim() |> Array.filter ((<>) "")
        let code, out, err = runCli [ "capacity"; "--workload"; "nosuch"; "--target"; "2"; "--policies"; "B1,B9"; "--devices"; "16"; "--max-devices"; "4" ]
        Expect.equal (code, out) (2, "") (sprintf "capacity: exit 2, nothing run (%s)" err)
        let got = lines err
        Expect.contains got "--target: 2 is outside [0.01, 1]" "the range"
        // a target of 0, which every cluster reaches, is refused (it halved the cluster through minutes of overloaded runs)
        let code, _, err = runCli [ "capacity"; "--workload"; "poisson"; "--target"; "0" ]
        Expect.equal code 2 "capacity --target 0: exit 2"
        Expect.stringContains err "--target: 0 is outside [0.01, 1]" "--target 0"
        Expect.contains got "--max-devices: 4 is less than one node (8 devices)" "--max-devices"
        Expect.isTrue (got |> Array.exists (fun l -> l.StartsWith "--policies: unknown policy 'B9'")) (sprintf "the policy: %s" err)
        Expect.isTrue (got |> Array.exists (fun l -> l.StartsWith "--workload: unknown workload 'nosuch'")) (sprintf "the workload: %s" err)
        // a value that did not parse leaves out the checks that read it (no second error about --devices)
        let code, _, err = runCli [ "capacity"; "--workload"; "poisson"; "--devices"; "x"; "--devices-per-node"; "3" ]
        Expect.equal code 2 "capacity: exit 2"
        Expect.equal (lines err |> Array.filter (fun l -> l.StartsWith "--devices")) [| "--devices: 'x' is not an integer" |] (sprintf "one error for --devices: %s" err)
        // nothing listens on this port: a request would say the server cannot be read, exit 1
        let url = sprintf "http://127.0.0.1:%d" (Trident.Api.Hosting.Loopback.FreePort())
        let code, out, err = runCli [ "loadgen"; "--workload"; "nosuch"; "--url"; url ]
        Expect.equal (code, out) (2, "") (sprintf "loadgen: exit 2 before any request (%s)" err)
        Expect.isTrue (lines err |> Array.exists (fun l -> l.StartsWith "--workload: unknown workload 'nosuch' (known: tiny-constant")) (sprintf "the workload named: %s" err)
        Expect.isFalse (err.Contains "cannot read") "the server was not asked"
        let code, _, err = runCli [ "loadgen"; "--workload"; "flux-reference"; "--count"; "0"; "--load"; "2"; "--url"; "http://example.com:8080"; "--size"; "64" ]
        Expect.equal code 2 "loadgen: exit 2"
        let got = lines err
        for expected in [ "--count: 0 is outside [1, 10000]"
                          "--load: only the tiny workloads (tiny-constant, tiny-poisson, tiny-bursty, tiny-shifting, tiny-same) take a load; give 'flux-reference' a --rate"
                          "--size: only tiny-same takes a size (its one shape); 'flux-reference' has its own shapes"
                          "--url: 'http://example.com:8080' is not a loopback address (loadgen only talks to this machine)" ] do
            Expect.contains got expected (sprintf "every problem at once: %s" err)
        let code, _, err = runCli [ "loadgen"; "--workload"; "/nonexistent-trident/trace.csv"; "--url"; url ]
        Expect.equal code 2 "a missing trace file: exit 2"
        Expect.stringContains err "--workload: the trace file '/nonexistent-trident/trace.csv' does not exist" "named as missing, before any request"

/// Before: only `--out docs/evaluation` spelt from the current directory was refused; a link to the committed report,
/// or a path to it through `..` (from a folder below the repository, or after a link), let --quick write over it.
/// Before: a --production-log that did not exist or did not parse skipped the production group after the other
/// simulations ran, wrote a report without it and exited 0.
let ``evaluate refuses a production log it cannot replay before it simulates anything`` =
    testCase "evaluate refuses a production log it cannot replay before it simulates anything" <| fun () ->
        let dir = System.IO.Directory.CreateTempSubdirectory("trident-eval-")
        try
            let log = System.IO.Path.Combine(dir.FullName, "log.csv")
            System.IO.File.WriteAllText(log, "a,b\n1,2\n")
            let out = System.IO.Path.Combine(dir.FullName, "report")
            for path, expected in [ System.IO.Path.Combine(dir.FullName, "missing.csv"), "does not exist"
                                    log, "line 1: the header must be" ] do
                let code, _, err = runCli [ "evaluate"; "--quick"; "--production-log"; path; "--out"; out ]
                Expect.equal code 2 (sprintf "%s: exit 2 (%s)" path err)
                Expect.stringContains err ("--production-log") "names the option"
                Expect.stringContains err expected "and what is wrong with the log"
                Expect.isFalse (System.IO.Directory.Exists out) "nothing was written"
        finally
            dir.Delete true

let ``evaluate --quick refuses the committed report however the path reaches it`` =
    testCase "evaluate --quick refuses the committed report however the path reaches it" <| fun () ->
        let committed = System.IO.Path.Combine(Trident.Runtime.Execution.PipelineLocator.FindHome(), "docs", "evaluation")
        let dir = System.IO.Directory.CreateTempSubdirectory("trident-evaluate-").FullName
        try
            let link = System.IO.Path.Combine(dir, "report")
            System.IO.File.CreateSymbolicLink(link, committed) |> ignore
            // a link inside docs: its .. is docs, not dir
            let inDocs = System.IO.Path.Combine(dir, "docs-link")
            System.IO.File.CreateSymbolicLink(inDocs, committed) |> ignore
            for out in [ link; link + "/"; System.IO.Path.Combine(inDocs, "..", "evaluation"); System.IO.Path.Combine(committed, "..", "evaluation") ] do
                // --devices 7 of nodes of 2 is refused too, so that nothing runs whatever --out does
                let code, _, err = runCli [ "evaluate"; "--quick"; "--out"; out; "--devices"; "7"; "--devices-per-node"; "2" ]
                Expect.equal code 2 (sprintf "%s: exit 2" out)
                Expect.stringContains err (sprintf "--out: '%s' is the committed report " out) (sprintf "%s: refused (%s)" out err)
            // another folder beside it is not the report
            let code, _, err = runCli [ "evaluate"; "--quick"; "--out"; System.IO.Path.Combine(dir, "elsewhere"); "--devices"; "7"; "--devices-per-node"; "2" ]
            Expect.equal code 2 "the bad --devices"
            Expect.isFalse (err.Contains "--out:") (sprintf "another folder is taken (%s)" err)
        finally
            System.IO.Directory.Delete(dir, true)

/// Before: completion offered nothing after --emulate, simulate --model or --workload.
let ``shell completion offers the reference profiles, the models and the named workloads`` =
    testCase "shell completion offers the reference profiles, the models and the named workloads" <| fun () ->
        let suggest (line: string) =
            let code, out, _ = runCli [ sprintf "[suggest:%d]" line.Length; line ]
            Expect.equal code 0 (sprintf "suggest %s" line)
            out.Split('\n') |> Array.map _.Trim() |> Array.filter ((<>) "") |> Set.ofArray
        let profiles = Set.ofSeq Trident.Runtime.Devices.EmulatedProfile.Names
        Expect.equal (suggest "serve --emulate ") profiles "serve --emulate: the reference profiles"
        Expect.equal (suggest "worker --emulate ") profiles "worker --emulate"
        Expect.equal (suggest "simulate --model ") (Set.ofList Trident.Scheduling.Workload.models) "simulate --model: the models of the generic workloads"
        let named = Set.ofList Trident.Scheduling.Workload.names
        Expect.equal (suggest "simulate --workload ") (named.Add EvaluateCommand.ProductionWorkload) "simulate --workload: every named workload"
        Expect.equal (suggest "capacity --workload ") (named.Add EvaluateCommand.ProductionWorkload) "capacity --workload"
        Expect.equal (suggest "loadgen --workload ") (Set.union named (Set.ofSeq LoadgenCommand.TinyWorkloads)) "loadgen --workload: the tiny workloads too"
        Expect.equal (suggest "loadgen --workload tiny-s") (set [ "tiny-same"; "tiny-shifting" ]) "by prefix"

/// `trident serve` on emulated devices (fast to start) in a process of its own, its standard output `stdout`: "full"
/// (/dev/full) or "closed" (a pipe whose reading end is closed at once); with its exit code and standard error once it
/// has served a generation and been sent SIGTERM.
let private serveWithStdout (stdout: string) (format: string) =
    let url = sprintf "http://127.0.0.1:%d" (Trident.Api.Hosting.Loopback.FreePort())
    let args = [ System.IO.Path.Combine(System.AppContext.BaseDirectory, "trident.dll"); "serve"; "--urls"; url; "--emulate"; "flux"
                 "--time-scale"; "0.01"; "--Trident:Storage:Directory"; "memory"; "--Trident:LogFormat"; format ]
    let start =
        match stdout with
        | "full" ->
            // the shell points standard output at /dev/full, then becomes the server
            let s = System.Diagnostics.ProcessStartInfo("/bin/sh", UseShellExecute = false, RedirectStandardError = true)
            for a in [ "-c"; "exec dotnet \"$@\" > /dev/full"; "sh" ] @ args do s.ArgumentList.Add a
            s
        | _ ->
            let s = System.Diagnostics.ProcessStartInfo("dotnet", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
            for a in args do s.ArgumentList.Add a
            s
    start.Environment.["TRIDENT_HOME"] <- Trident.Tests.Runtime.TinyFixture.home
    use proc = System.Diagnostics.Process.Start start
    if stdout = "closed" then proc.StandardOutput.Close()
    let err = System.Text.StringBuilder()
    proc.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lock err (fun () -> err.AppendLine e.Data |> ignore))
    proc.BeginErrorReadLine()
    try
        use client = new System.Net.Http.HttpClient(BaseAddress = System.Uri url, Timeout = System.TimeSpan.FromSeconds 10.0)
        let deadline = System.DateTime.UtcNow.AddMinutes 2.0
        let mutable ready = false
        while not ready && System.DateTime.UtcNow < deadline && not proc.HasExited do
            try
                use r = client.GetAsync("/ready").Result
                ready <- r.StatusCode = System.Net.HttpStatusCode.OK
            with _ -> ()
            if not ready then System.Threading.Thread.Sleep 200
        Expect.isTrue ready (sprintf "stdout %s: the server became ready (%O)" stdout err)
        let id = Trident.Tests.Api.ApiFixture.submit client """{"prompt":"logless","steps":2}"""
        let final = Trident.Tests.Api.ApiFixture.pollUntil client 60.0 id Trident.Tests.Api.ApiFixture.isFinal
        Expect.equal (Trident.Tests.Api.ApiFixture.status final) "succeeded" (sprintf "stdout %s: a generation is served" stdout)
        use kill = System.Diagnostics.Process.Start("kill", [ "-TERM"; string proc.Id ])
        kill.WaitForExit()
        Expect.isTrue (proc.WaitForExit(System.TimeSpan.FromSeconds 60.0)) (sprintf "stdout %s: the server exits on SIGTERM" stdout)
        proc.WaitForExit()
        proc.ExitCode, lock err (fun () -> string err)
    finally
        if not proc.HasExited then proc.Kill true

let ``serve keeps serving when its log cannot be written to standard output, and says so once on standard error`` =
    testCase "serve keeps serving when its log cannot be written to standard output, and says so once on standard error" <| fun () ->
        let noStack (name: string) (err: string) =
            Expect.isFalse (err.Contains "   at ") (sprintf "%s: no stack trace (%s)" name err)
            Expect.isFalse (err.Contains "Unhandled exception") (sprintf "%s: no unhandled exception" name)
        if System.IO.File.Exists "/dev/full" then
            let code, err = serveWithStdout "full" "text"
            Expect.equal code 0 (sprintf "> /dev/full: a clean exit (%s)" err)
            noStack "> /dev/full" err
            let notice = "trident: the log could not be written to standard output (No space left on device); the server keeps serving"
            Expect.stringContains err notice "> /dev/full: said once, with the reason"
            Expect.equal (err.Split(notice).Length - 1) 1 "> /dev/full: once, not per line"
        // a closed pipe drops what is written (.NET ignores EPIPE on the console): nothing to say, nothing to crash
        let code, err = serveWithStdout "closed" "json"
        Expect.equal code 0 (sprintf "| closed pipe: a clean exit (%s)" err)
        noStack "| closed pipe" err

let ``a worker stopped before it joins the cluster exits with one line, not an unhandled exception`` =
    testCase "a worker stopped before it joins the cluster exits with one line, not an unhandled exception" <| fun () ->
        // no coordinator listens at the primary's port: the silo keeps trying to join until SIGTERM
        let primary = sprintf "127.0.0.1:%d" (Trident.Api.Hosting.Loopback.FreePort())
        let start = System.Diagnostics.ProcessStartInfo("dotnet", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
        for a in [ System.IO.Path.Combine(System.AppContext.BaseDirectory, "trident.dll"); "worker"; "--emulate"; "flux"; "--primary"; primary
                   "--Trident:LogLevel"; "Fatal" ] do
            start.ArgumentList.Add a
        start.Environment.["TRIDENT_HOME"] <- Trident.Tests.Runtime.TinyFixture.home
        use proc = System.Diagnostics.Process.Start start
        let err = System.Text.StringBuilder()
        proc.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lock err (fun () -> err.AppendLine e.Data |> ignore))
        proc.OutputDataReceived.Add ignore
        proc.BeginErrorReadLine()
        proc.BeginOutputReadLine()
        try
            System.Threading.Thread.Sleep 8000
            Expect.isFalse proc.HasExited (sprintf "the worker waits for its coordinator (%O)" err)
            use kill = System.Diagnostics.Process.Start("kill", [ "-TERM"; string proc.Id ])
            kill.WaitForExit()
            Expect.isTrue (proc.WaitForExit(System.TimeSpan.FromSeconds 60.0)) "the worker exits on SIGTERM"
            proc.WaitForExit()
            let err = lock err (fun () -> string err)
            Expect.equal proc.ExitCode 1 (sprintf "exit 1: it never served (%s)" err)
            Expect.stringContains err (sprintf "trident worker: stopped before it joined the cluster (the coordinator's silo at %s" primary) "one line saying why"
            Expect.isFalse (err.Contains "Unhandled exception") (sprintf "no unhandled exception (%s)" err)
            Expect.isFalse (err.Contains "   at ") "no stack trace"
        finally
            if not proc.HasExited then proc.Kill true

/// A trident process (`dotnet trident.dll ARGS`) with its standard error collected.
let private startCli (args: string list) =
    let start = System.Diagnostics.ProcessStartInfo("dotnet", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    for a in System.IO.Path.Combine(System.AppContext.BaseDirectory, "trident.dll") :: args do start.ArgumentList.Add a
    start.Environment.["TRIDENT_HOME"] <- Trident.Tests.Runtime.TinyFixture.home
    let proc = System.Diagnostics.Process.Start start
    let err = System.Text.StringBuilder()
    proc.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lock err (fun () -> err.AppendLine e.Data |> ignore))
    proc.OutputDataReceived.Add ignore
    proc.BeginErrorReadLine()
    proc.BeginOutputReadLine()
    proc, (fun () -> lock err (fun () -> string err))

// GET /ready's status and body; (0, "") while nothing answers.
let private readyOf (client: System.Net.Http.HttpClient) =
    try
        use r = client.GetAsync("/ready").Result
        int r.StatusCode, r.Content.ReadAsStringAsync().Result
    with _ -> 0, ""

// Whether `condition` holds within `seconds` (polled every 250 ms).
let private within (seconds: float) (condition: unit -> bool) =
    let deadline = System.DateTime.UtcNow.AddSeconds seconds
    while not (condition ()) && System.DateTime.UtcNow < deadline do System.Threading.Thread.Sleep 250
    condition ()

let ``a localhost cluster: the coordinator says what it waits for, another cluster id ends a worker, a coordinator restart ends its workers with one line`` =
    testCase "a localhost cluster: the coordinator says what it waits for, another cluster id ends a worker, a coordinator restart ends its workers with one line" <| fun () ->
        let port () = Trident.Api.Hosting.Loopback.FreePort()
        let silo, gateway, http = port (), port (), port ()
        let store = System.IO.Path.Combine(System.IO.Path.GetTempPath(), sprintf "clusterfix-store-%d" http)
        let coordinator () =
            startCli [ "serve"; "--cluster"; "localhost"; "--emulate"; "flux"; "--devices"; "2"; "--time-scale"; "0.02"; "--silo-port"; string silo
                       "--gateway-port"; string gateway; "--urls"; sprintf "http://127.0.0.1:%d" http; "--Trident:Storage:Directory"; store ]
        let worker (extra: string list) =
            startCli ([ "worker"; "--emulate"; "flux"; "--devices"; "2"; "--time-scale"; "0.02"; "--primary"; sprintf "127.0.0.1:%d" silo ] @ extra)
        use client = new System.Net.Http.HttpClient(BaseAddress = System.Uri(sprintf "http://127.0.0.1:%d" http), Timeout = System.TimeSpan.FromSeconds 10.0)
        let ready () = readyOf client
        let first, firstErr = coordinator ()
        let mutable procs = [ first ]
        try
            // /ready while waiting: what for, and how many joined
            Expect.isTrue (within 120.0 (fun () -> (snd (ready ())).Contains "waiting for 2 device(s) from workers: 0 joined")) (sprintf "/ready says what it waits for: %A %s" (ready ()) (firstErr ()))
            // a worker of another cluster id: one line and exit 2, not Orleans' warnings forever
            let stranger, strangerErr = worker [ "--Trident:Cluster:ClusterId"; "other" ]
            procs <- stranger :: procs
            Expect.isTrue (stranger.WaitForExit(System.TimeSpan.FromSeconds 120.0)) (sprintf "a worker of another cluster id ends (%s)" (strangerErr ()))
            stranger.WaitForExit()
            Expect.equal stranger.ExitCode 2 (sprintf "exit 2 (%s)" (strangerErr ()))
            Expect.stringContains (strangerErr ()) "has another cluster id than this worker's 'other'" "one line naming the cluster id"
            // a worker joins; the coordinator is ready
            let good, goodErr = worker []
            procs <- good :: procs
            Expect.isTrue (within 180.0 (fun () -> fst (ready ()) = 200)) (sprintf "the coordinator is ready with the worker's devices: %A %s" (ready ()) (goodErr ()))
            // the coordinator restarts: the worker ends with one line and exit 3 (Orleans' localhost membership is gone)
            first.Kill true
            first.WaitForExit()
            let second, secondErr = coordinator ()
            procs <- second :: procs
            Expect.isTrue (good.WaitForExit(System.TimeSpan.FromSeconds 120.0)) (sprintf "the worker ends (%s; coordinator: %s)" (goodErr ()) (secondErr ()))
            good.WaitForExit()
            let err = goodErr ()
            Expect.equal good.ExitCode 3 (sprintf "exit 3 (%s)" err)
            Expect.stringContains err "trident worker: the coordinator restarted; localhost membership does not survive it: restart this worker, or use --cluster redis" "one line saying why and what to do"
            Expect.isFalse (err.Contains "   at ") (sprintf "no stack trace (%s)" err)
            Expect.isFalse (err.Contains "FATAL EXCEPTION") "not Orleans' fatal-error dump"
        finally
            for p in procs do
                if not p.HasExited then p.Kill true
                p.Dispose()
            try System.IO.Directory.Delete(store, true) with _ -> ()

let ``a worker of another profile present at the coordinator's start is refused, the coordinator starts on the workers of its profile, and a worker's health says when its coordinator is unreachable`` =
    testCase "a worker of another profile present at the coordinator's start is refused, the coordinator starts on the workers of its profile, and a worker's health says when its coordinator is unreachable" <| fun () ->
        // before: the coordinator exited 1 once the sd3 worker's devices made up its count ("workers serve another
        // profile …"), though a worker of another profile joining after the start was refused and the cluster served on
        let port () = Trident.Api.Hosting.Loopback.FreePort()
        let silo, gateway, http, strangerHttp, goodSilo, goodHttp = port (), port (), port (), port (), port (), port ()
        let store = System.IO.Path.Combine(System.IO.Path.GetTempPath(), sprintf "profilestart-store-%d" http)
        let worker (profile: string) (extra: string list) =
            startCli ([ "worker"; "--emulate"; profile; "--devices"; "2"; "--time-scale"; "0.02"; "--primary"; sprintf "127.0.0.1:%d" silo ] @ extra)
        use client = new System.Net.Http.HttpClient(BaseAddress = System.Uri(sprintf "http://127.0.0.1:%d" http), Timeout = System.TimeSpan.FromSeconds 10.0)
        let ready () = readyOf client
        let coordinator, coordinatorErr =
            startCli [ "serve"; "--cluster"; "localhost"; "--emulate"; "flux"; "--devices"; "2"; "--time-scale"; "0.02"; "--silo-port"; string silo
                       "--gateway-port"; string gateway; "--urls"; sprintf "http://127.0.0.1:%d" http; "--Trident:Storage:Directory"; store
                       "--Trident:Cluster:JoinTimeoutSeconds"; "600" ]
        let mutable procs = [ coordinator ]
        try
            Expect.isTrue (within 120.0 (fun () -> (snd (ready ())).Contains "waiting for 2 device(s) from workers: 0 joined")) (sprintf "the coordinator waits: %A %s" (ready ()) (coordinatorErr ()))
            // a worker of another profile, present before any of the right one: refused, not counted, and the coordinator keeps waiting
            let stranger, strangerErr = worker "sd3" [ "--urls"; sprintf "http://127.0.0.1:%d" strangerHttp ]
            procs <- stranger :: procs
            let refusedText = sprintf "refused, serving another profile than the coordinator's 'emulated flux × 0.02' (--emulate, --time-scale): 127.0.0.1:"
            Expect.isTrue (within 120.0 (fun () -> (snd (ready ())).Contains refusedText))
                (sprintf "/ready names the refused worker and why: %A (coordinator: %s; worker: %s)" (ready ()) (coordinatorErr ()) (strangerErr ()))
            let status, text = ready ()
            Expect.equal status 503 "not ready: no device of its profile joined"
            Expect.stringContains text "waiting for 2 device(s) from workers: 0 joined" "the refused worker's devices are not counted"
            Expect.stringContains text "(2 device(s), serves 'emulated sd3 × 0.02')" "what the refused worker serves"
            use strangerClient = new System.Net.Http.HttpClient(BaseAddress = System.Uri(sprintf "http://127.0.0.1:%d" strangerHttp), Timeout = System.TimeSpan.FromSeconds 10.0)
            let health () = try strangerClient.GetStringAsync("/health").Result with _ -> ""
            Expect.isTrue (within 60.0 (fun () -> (health ()).Contains "\"status\":\"refused\"")) (sprintf "the refused worker was told: its /health says refused (%s)" (health ()))
            Expect.isFalse coordinator.HasExited (sprintf "the coordinator keeps waiting (%s)" (coordinatorErr ()))
            // a worker of its profile: the coordinator becomes ready on its devices only
            let good, goodErr = worker "flux" [ "--silo-port"; string goodSilo; "--urls"; sprintf "http://127.0.0.1:%d" goodHttp ]
            procs <- good :: procs
            Expect.isTrue (within 180.0 (fun () -> fst (ready ()) = 200)) (sprintf "ready with the right worker's devices: %A %s %s" (ready ()) (coordinatorErr ()) (goodErr ()))
            use view = client.GetAsync("/v1/cluster").Result
            let cluster = System.Text.Json.JsonDocument.Parse(view.Content.ReadAsStringAsync().Result).RootElement
            Expect.equal (cluster.GetProperty("nodes").GetInt32()) 1 "one node: the worker of the coordinator's profile"
            Expect.equal (cluster.GetProperty("devices").GetArrayLength()) 2 "its two devices, none of the refused worker's"
            // each row names its worker (before: no worker, and "device": "cpu" as if a CPU of the coordinator's machine)
            let endpoint = sprintf "127.0.0.1:%d" goodSilo
            for d in cluster.GetProperty("devices").EnumerateArray() do
                Expect.equal (d.GetProperty("worker").GetString()) endpoint "the device's worker: its silo endpoint"
                Expect.equal (d.GetProperty("device").GetString()) ("emulated on worker " + endpoint) "an emulated device on that worker"
            // /ready's profile counts no workers (before: "… on 1 worker(s)", fixed at the start as workers joined and left)
            let profile = System.Text.Json.JsonDocument.Parse(snd (ready ())).RootElement.GetProperty("profile").GetString()
            Expect.equal profile "reference profile 'flux' × time scale 0.02 on the cluster's workers (emulated devices; results are placeholder patterns; GET /v1/cluster lists each device's worker)" "the profile the workers serve"
            Expect.isFalse stranger.HasExited "the refused worker keeps running (a coordinator of its profile would use it)"
            // a worker's /health says whether its coordinator is in the membership (before: "live" and nothing else while
            // the coordinator was down); the worker keeps running either way
            use goodClient = new System.Net.Http.HttpClient(BaseAddress = System.Uri(sprintf "http://127.0.0.1:%d" goodHttp), Timeout = System.TimeSpan.FromSeconds 10.0)
            let goodHealth () = try goodClient.GetStringAsync("/health").Result with _ -> ""
            Expect.stringContains (goodHealth ()) "\"coordinator\":\"active\"" "the coordinator is active"
            coordinator.Kill true
            coordinator.WaitForExit()
            Expect.isTrue (within 60.0 (fun () -> (goodHealth ()).Contains "\"coordinator\":\"unreachable\"")) (sprintf "the coordinator killed: /health says unreachable (%s)" (goodHealth ()))
            let health = goodHealth ()
            Expect.stringContains health "\"status\":\"live\"" "the worker itself is live"
            Expect.stringContains health "membership held by the coordinator's silo at 127.0.0.1:" "why: the membership it holds could not be read"
            Expect.isFalse good.HasExited (sprintf "the worker keeps running (%s)" (goodErr ()))
        finally
            for p in procs do
                if not p.HasExited then p.Kill true
                p.Dispose()
            try System.IO.Directory.Delete(store, true) with _ -> ()

let ``a redis-mode worker of another cluster id than the coordinator's ends with one line naming the ids in that Redis, a worker of its cluster stays and its health says when the coordinator is gone`` =
    testCase "a redis-mode worker of another cluster id than the coordinator's ends with one line naming the ids in that Redis, a worker of its cluster stays and its health says when the coordinator is gone" <| fun () ->
        // Redis membership is per cluster id: a worker of another id finds a table of its own, joins it alone and,
        // before, logged "Joined" and waited forever; now it ends once Trident:Cluster:CoordinatorWaitSeconds pass
        let port () = Trident.Api.Hosting.Loopback.FreePort()
        let redisPort, silo, gateway, http = port (), port (), port (), port ()
        let redisAddress = sprintf "127.0.0.1:%d" redisPort
        let store = System.IO.Path.Combine(System.IO.Path.GetTempPath(), sprintf "redisid-store-%d" http)
        let start = System.Diagnostics.ProcessStartInfo("redis-server", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
        for a in [ "--port"; string redisPort; "--bind"; "127.0.0.1"; "--save"; ""; "--appendonly"; "no" ] do start.ArgumentList.Add a
        use redis = System.Diagnostics.Process.Start start
        redis.OutputDataReceived.Add ignore
        redis.ErrorDataReceived.Add ignore
        redis.BeginOutputReadLine()
        redis.BeginErrorReadLine()
        let common = [ "--cluster"; "redis"; "--redis"; redisAddress; "--emulate"; "flux"; "--devices"; "2"; "--time-scale"; "0.02" ]
        let worker (id: string) (extra: string list) =
            startCli ([ "worker" ] @ common @ [ "--Trident:Cluster:ClusterId"; id; "--Trident:Cluster:CoordinatorWaitSeconds"; "8" ] @ extra)
        use client = new System.Net.Http.HttpClient(BaseAddress = System.Uri(sprintf "http://127.0.0.1:%d" http), Timeout = System.TimeSpan.FromSeconds 10.0)
        let ready () = readyOf client
        let mutable procs = []
        try
            Expect.isTrue (within 30.0 (fun () ->
                try
                    use probe = new System.Net.Sockets.TcpClient()
                    probe.Connect(System.Net.IPAddress.Loopback, redisPort)
                    true
                with _ -> false)) "redis-server listens"
            let coordinator, coordinatorErr =
                startCli ([ "serve" ] @ common @ [ "--Trident:Cluster:ClusterId"; "right"; "--silo-port"; string silo; "--gateway-port"; string gateway
                                                   "--urls"; sprintf "http://127.0.0.1:%d" http; "--Trident:Storage:Directory"; store ])
            procs <- [ coordinator ]
            Expect.isTrue (within 120.0 (fun () -> (snd (ready ())).Contains "waiting for 2 device(s) from workers: 0 joined")) (sprintf "the coordinator is up: %A %s" (ready ()) (coordinatorErr ()))
            // another cluster id: alone in a membership of its own; one line naming the ids in that Redis, exit 2
            let stranger, strangerErr = worker "wrong" []
            procs <- stranger :: procs
            Expect.isTrue (stranger.WaitForExit(System.TimeSpan.FromSeconds 90.0)) (sprintf "a worker of another cluster id ends (%s)" (strangerErr ()))
            stranger.WaitForExit()
            let err = strangerErr ()
            Expect.equal stranger.ExitCode 2 (sprintf "exit 2 (%s)" err)
            Expect.stringContains err (sprintf "trident worker: no coordinator in the cluster 'wrong' (membership in Redis at %s) 8 s after the worker's start" redisAddress) "one line naming the cluster id and Redis"
            Expect.stringContains err "that Redis holds the membership of other cluster id(s): 'right' (its coordinator is active): give the worker the coordinator's Trident:Cluster:ClusterId" "the ids present, and what to do"
            Expect.isFalse (err.Contains "   at ") (sprintf "no stack trace (%s)" err)
            // the coordinator's cluster id: the worker finds the coordinator and stays past the wait
            let started = System.DateTime.UtcNow
            let goodHttp = port ()
            let good, goodErr = worker "right" [ "--urls"; sprintf "http://127.0.0.1:%d" goodHttp ]
            procs <- good :: procs
            Expect.isTrue (within 120.0 (fun () -> fst (ready ()) = 200)) (sprintf "the coordinator is ready with the worker's devices: %A %s" (ready ()) (goodErr ()))
            let past = started.AddSeconds 12.0 - System.DateTime.UtcNow
            if past > System.TimeSpan.Zero then System.Threading.Thread.Sleep past
            Expect.isFalse good.HasExited (sprintf "a worker of the coordinator's cluster stays past the wait (%s)" (goodErr ()))
            // its /health says the coordinator is active, and once the coordinator is killed (its entry declared dead in
            // Redis) unreachable; the worker stays (before: /health said nothing of the coordinator)
            use goodClient = new System.Net.Http.HttpClient(BaseAddress = System.Uri(sprintf "http://127.0.0.1:%d" goodHttp), Timeout = System.TimeSpan.FromSeconds 10.0)
            let health () = try goodClient.GetStringAsync("/health").Result with _ -> ""
            Expect.stringContains (health ()) "\"coordinator\":\"active\"" "the coordinator is active"
            coordinator.Kill true
            coordinator.WaitForExit()
            Expect.isTrue (within 90.0 (fun () -> (health ()).Contains "\"coordinator\":\"unreachable\"")) (sprintf "the coordinator killed: /health says unreachable (%s)" (health ()))
            Expect.stringContains (health ()) (sprintf "in the cluster's membership (membership in Redis at %s)" redisAddress) "why, and where the membership is"
            Expect.stringContains (health ()) "\"status\":\"live\"" "the worker itself is live"
            Expect.isFalse good.HasExited (sprintf "the worker stays (%s)" (goodErr ()))
        finally
            for p in procs do
                if not p.HasExited then p.Kill true
                p.Dispose()
            if not redis.HasExited then redis.Kill()
            redis.WaitForExit()
            try System.IO.Directory.Delete(store, true) with _ -> ()

/// Sequenced with the other tests that redirect the console (Console.SetOut is process-wide).
[<Tests>]
let tests =
    testList "integration" [ testList "CliTests" [
        ``--help of every command lists each of its options and exits 0 without running it``
        ``serve --help and simulate --help print help and start nothing``
        ``--version prints the version of trident and of its runtimes``
        ``an unknown option is refused with exit code 2, naming it once``
        ``two bad values give one error naming both``
        ``shell completion is answered from the command definitions``
        ``simulate --shapes draws a generated workload from the given shapes only, and refuses bad ones``
        ``simulate on one node of two devices leaves no flux request unserved under Trident``
        ``off a terminal, progress is plain lines on standard error, at most one per interval but always the first and last``
        ``serve exits with code 1 naming the reason when the serving runtime cannot start``
        ``a CUDA device that cannot be used is one line and exit 1 from every command that takes --device``
        ``bench runtime reports bad values and a request the pipeline refuses in one error``
        ``inspect takes tiny as the bundled pipeline, as --pipeline does``
        ``an output path a command cannot write is refused up front, and a failed write is one line with exit 1``
        ``an input path of the wrong kind is named as a folder or a file, not as missing``
        ``replay of a round with bad fields lists every problem with its JSON path and exits 1, with no stack trace``
        ``the named workload gentd26-production is found from any directory``
        ``models' help offers only the choices each command takes``
        ``capacity says the load is fixed for --devices only where it is scaled to them``
        ``a short serve option and the key it stands for with another value are a usage error naming both``
        ``a time scale for devices that are not emulated is refused by serve and by config --check alike``
        ``a diffuse degree the planner never uses is refused by profile, and a profile of such degrees alone by simulate``
        ``serve names a misspelt configuration key beside the command line's other mistakes``
        ``a bad limit is named with its value, and the default it bounds is not judged against it``
        ``loadgen and capacity report every problem of the command line at once, loadgen before any request``
        ``evaluate refuses a production log it cannot replay before it simulates anything``
        ``evaluate --quick refuses the committed report however the path reaches it``
        ``shell completion offers the reference profiles, the models and the named workloads``
        ``serve keeps serving when its log cannot be written to standard output, and says so once on standard error``
        ``a worker stopped before it joins the cluster exits with one line, not an unhandled exception``
        ``a localhost cluster: the coordinator says what it waits for, another cluster id ends a worker, a coordinator restart ends its workers with one line``
        ``a worker of another profile present at the coordinator's start is refused, the coordinator starts on the workers of its profile, and a worker's health says when its coordinator is unreachable``
        ``a redis-mode worker of another cluster id than the coordinator's ends with one line naming the ids in that Redis, a worker of its cluster stays and its health says when the coordinator is gone``
    ] |> testSequenced ]
