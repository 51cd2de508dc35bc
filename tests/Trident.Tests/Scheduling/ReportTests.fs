/// Reports and the searches over simulations: fair latency statistics (common set, misses as ∞),
/// reports that write only the sections they have, the capacity and paper-rate searches, small
/// clusters and simulating with a user's profile, and the production log replay.
module Trident.Tests.ReportTests

open System
open Expecto
open Trident.Scheduling

let private prepare settings input =
    match Experiment.prepare settings input with
    | Ok p -> p
    | Error e -> failwithf "%A" e

/// flux on one node of 8: B1 at k = 1 runs out of memory on 2048², B6 does not.
let private fluxRuns () =
    let settings = { ExperimentSettings.defaults with Devices = 8 }
    let spec = { (Workload.references |> List.find (fun w -> w.Name = "flux-reference")) with Count = 40; Rate = 0.2 }
    let p = prepare settings (Generated spec)
    let run policy = Simulator.run p.Config policy p.Requests
    p, [ run (Baselines.b1 1); run (Baselines.b6 settings.Split) ]

let ``the common set holds only requests every run completed, and misses count as infinite`` =
    testCase "the common set holds only requests every run completed, and misses count as infinite" <| fun () ->
        let _, runs = fluxRuns ()
        let b1, b6 = runs.[0], runs.[1]
        Expect.isGreaterThan b1.Summary.OutOfMemory 0 "B1 at k = 1 runs out of memory on the largest flux shapes"
        let count, fair = Fair.ofRuns runs
        let completed (r: SimResult) = r.Records |> Array.filter (fun x -> x.Latency.IsSome) |> Array.map (fun x -> x.Request.Id) |> Set.ofArray
        Expect.equal count (Set.intersect (completed b1) (completed b6)).Count "the common set is the intersection of the completed sets"
        Expect.isLessThan count b6.Records.Length "B1's out-of-memory requests are not in the common set"
        Expect.equal fair.[0].All.Missed (b1.Summary.OutOfMemory + b1.Summary.Unserved) "every miss of B1 is counted over all requests"
        Expect.isTrue (Double.IsPositiveInfinity fair.[0].All.Mean) "a mean with misses is infinite"
        // B6 over the common set is B6 measured on fewer requests than it completed: never a larger count
        Expect.equal fair.[1].Common.Count count "B6's common statistics are over the common set"
        Expect.equal fair.[1].Common.Missed 0 "nobody misses a request of the common set"
        Expect.isFalse (Double.IsInfinity fair.[1].Common.P95) "a common-set percentile is finite"
        Expect.equal fair.[1].CommonWait.Count count "waits over the common set"
        Expect.isLessThanOrEqual fair.[1].CommonWait.Mean fair.[1].Common.Mean "a wait is part of the latency"
        Expect.isGreaterThanOrEqual fair.[1].CommonWait.P50 0.0 "no request starts before it arrives"

let ``the summary table puts the fair latencies first and labels completed-only ones`` =
    testCase "the summary table puts the fair latencies first and labels completed-only ones" <| fun () ->
        let _, runs = fluxRuns ()
        let table = Report.table (Report.rows runs)
        let header = table.Split('\n').[0]
        Expect.stringContains header "common_mean_s" "common-set mean"
        Expect.stringContains header "all_p95_s" "all-request P95"
        Expect.stringContains header "completed_mean_s" "completed-only mean, labelled"
        Expect.isLessThan (header.IndexOf "common_mean_s") (header.IndexOf "completed_mean_s") "the fair statistics come first"
        Expect.stringContains (Report.json (Report.rows runs)) "\"inf\"" "an infinite statistic is the string inf in JSON"

let ``a one-run report writes only the sections it has`` =
    testCase "a one-run report writes only the sections it has" <| fun () ->
        let p, runs = fluxRuns ()
        let spec = { (Workload.references |> List.find (fun w -> w.Name = "flux-reference")) with Count = 40; Rate = 0.2 }
        let point = { Group = "simulate"; Workload = spec; Input = Generated spec; Settings = { ExperimentSettings.defaults with Devices = 8 }; Value = spec.Rate }
        let condensed = Evaluation.condense point p.Config p.B1Default runs 1.0
        let files, charts = Evaluation.report "./trident simulate" "today" false 1.0 [] [ condensed ]
        let md = files |> List.find (fun (n, _) -> n = "README.md") |> snd
        for absent in [ "Request-rate sweep"; "SLO-scale sweep"; "published attainment"; "Paper-comparable"; "Infinity"; "NaN" ] do
            Expect.isFalse (md.Contains absent) (sprintf "the report has no '%s'" absent)
        Expect.stringContains md "(common)" "the headline latencies are over the common set"
        Expect.stringContains md "completed only" "the detailed table is labelled"
        Expect.equal (charts |> List.map _.File |> List.sort) [ "cdf-flux-reference"; "utilisation-flux-reference" ] "a CDF and a utilisation chart"
        for c in charts do
            Expect.stringContains md (c.File + ".png") "the markdown shows each chart"

let ``the headline's latency verdict names each statistic Trident loses, by how much and to whom`` =
    testCase "the headline's latency verdict names each statistic Trident loses, by how much and to whom" <| fun () ->
        let settings = { ExperimentSettings.defaults with Devices = 8 }
        let spec = { (Workload.references |> List.find (fun w -> w.Name = "flux-reference")) with Count = 40; Rate = 0.2 }
        let p = prepare settings (Generated spec)
        let runs = [ Baselines.b1 4; Baselines.b6 settings.Split; Baselines.trident settings.RoundPeriod (Some settings.Adjust) ] |> List.map (fun policy -> Simulator.run p.Config policy p.Requests)
        let point = { Group = "simulate"; Workload = spec; Input = Generated spec; Settings = settings; Value = spec.Rate }
        let files, _ = Evaluation.report "./trident simulate" "today" false 1.0 [] [ Evaluation.condense point p.Config p.B1Default runs 1.0 ]
        let md = files |> List.find (fun (n, _) -> n = "README.md") |> snd
        let row = md.Split('\n') |> Array.find (fun l -> l.StartsWith "| flux-reference |" && l.Contains " of 40 |") // the headline row: "N of 40" common
        let verdict = row.TrimEnd().TrimEnd('|').Split('|') |> Array.last |> fun c -> c.Trim()
        let _, fair = Fair.ofRuns runs
        let t = fair |> List.find (fun f -> f.Policy = "Trident")
        let others = fair |> List.filter (fun f -> f.Policy <> "Trident")
        let loses pick = pick t > (others |> List.map pick |> List.min) + 1e-9
        let lostMean, lostP95 = loses (fun f -> f.Common.Mean), loses (fun f -> f.Common.P95)
        if not lostMean && not lostP95 then Expect.equal verdict "yes" "no statistic lost: yes"
        else
            Expect.stringStarts verdict "**no** (" "a loss says no, then why"
            Expect.equal (verdict.Contains "mean +") lostMean "the mean is named exactly when it is lost"
            Expect.equal (verdict.Contains "P95 +") lostP95 "the P95 is named exactly when it is lost"
            Expect.isTrue (verdict.Contains " vs B1" || verdict.Contains " vs B6") "against the policy that has the lowest value"

let ``a chart names each series that repeats an earlier one's points, so the renderer can label and dash it`` =
    testCase "a chart names each series that repeats an earlier one's points, so the renderer can label and dash it" <| fun () ->
        // evaluate's charts had "B1 (best k)" drawn under B3 when the best fixed degree gave B3's results exactly
        let line = [ 1.0, 0.5; 2.0, 0.75; 4.0, 1.0 ]
        let chart =
            { File = "f"; Title = "t"; XLabel = "x"; YLabel = "y"; XLog = false; YRange = None; Step = false
              Series = [ "B1 (best k)", line; "B2", [ 1.0, 0.4 ]; "B3", line; "B4", []; "B5", []; "Trident", [ 1.0, 0.5; 2.0, 0.75; 4.0, 0.99 ] ] }
        Expect.equal (Chart.twins chart)
            [ "B1 (best k)", None; "B2", None; "B3", Some "B1 (best k)"; "B4", None; "B5", None; "Trident", None ]
            "B3 repeats B1 (best k); empty series and a near miss are no twins"

let ``the capacity search finds the fewest nodes with as few probes as bisection needs`` =
    testCase "the capacity search finds the fewest nodes with as few probes as bisection needs" <| fun () ->
        for threshold in [ 1; 2; 7; 16; 17; 33; 64 ] do
            // below the threshold the attainment still grows with the cluster (a flat one is a cap: below)
            let attainment n = if n >= threshold then 0.995 else 0.5 + 0.001 * float n
            for start in [ 1; 16; 64 ] do
                let answer, probes = Search.fewestNodes attainment 0.99 start 64
                Expect.equal answer (Some threshold) (sprintf "threshold %d from %d" threshold start)
                Expect.isLessThanOrEqual probes.Length 14 "bounded probes"
        let answer, _ = Search.fewestNodes (fun n -> 0.5 + 0.001 * float n) 0.99 16 64
        Expect.isNone answer "a target never reached is said so"

let ``the capacity search stops doubling when the attainment is capped`` =
    testCase "the capacity search stops doubling when the attainment is capped" <| fun () ->
        // B1 on hunyuanvideo: capped at 0.100 by out-of-memory requests from 64 devices on, at every size
        let attainment n = if n >= 8 then 0.1 else 0.01 * float n
        let answer, probes = Search.fewestNodes attainment 0.99 2 (1_000_000 / 8)
        Expect.isNone answer "never reaches the target"
        Expect.isLessThanOrEqual probes.Length 5 (sprintf "stops after two flat doublings: %A" probes)
        Expect.equal (Search.cappedAt answer probes (1_000_000 / 8)) (Some(0.1, 8, 32)) "capped at 0.100 from 8 to 32 nodes"
        // an attainment of 0 that rises (an overloaded small cluster) is no cap: the search goes on to the answer
        let rising n = if n >= 64 then 0.995 elif n >= 4 then 0.01 * float n else 0.0
        let answer0, _ = Search.fewestNodes rising 0.99 1 128
        Expect.equal answer0 (Some 64) "0 at 1 and 2 nodes, then rising, is not a cap"
        Expect.isNone (Search.cappedAt (Some 64) [] 128) "an answer is no cap"

let ``the capacity search stops doubling when nothing is on time at any size`` =
    testCase "the capacity search stops doubling when nothing is on time at any size" <| fun () ->
        // deadlines no degree meets: 0 at every size; doubling to --max-devices would only repeat it
        let answer, probes = Search.fewestNodes (fun _ -> 0.0) 0.99 2 (1_000_000 / 8)
        Expect.isNone answer "never reaches the target"
        Expect.equal (probes |> List.map (fun p -> int p.Value)) [ 2; 4; 8 ] (sprintf "stops after two doublings at 0: %A" probes)
        Expect.equal (Search.cappedAt answer probes (1_000_000 / 8)) (Some(0.0, 2, 8)) "0 from 2 to 8 nodes"

let ``the rate search brackets and bisects to the target attainment`` =
    testCase "the rate search brackets and bisects to the target attainment" <| fun () ->
        // attainment falls with the rate: 1 / (1 + (r / 3)^2) reaches 0.24 at r = 3 · sqrt(1/0.24 − 1) ≈ 5.34
        let attainment r = 1.0 / (1.0 + (r / 3.0) ** 2.0)
        for start in [ 0.1; 1.5; 40.0 ] do
            let best, probes = Search.rateFor attainment 0.24 0.01 start 30
            Expect.isLessThanOrEqual (abs (best.Attainment - 0.24)) 0.01 (sprintf "from %g: %A" start probes)
            Expect.isLessThan (abs (best.Value - 5.34)) 0.3 "close to the analytic rate"
        // capped below the target whatever the rate (e.g. out-of-memory requests): gives up after two flat halvings
        let best, probes = Search.rateFor (fun _ -> 0.105) 0.24 0.02 1.0 12
        Expect.equal probes.Length 3 "the start and two flat halvings"
        Expect.isGreaterThan (abs (best.Attainment - 0.24)) 0.02 "not reached, and the caller can tell"

let ``small clusters get nodes that fit them`` =
    testCase "small clusters get nodes that fit them" <| fun () ->
        Expect.equal (ExperimentSettings.devicesPerNodeFor 2) 2 "2 devices: one node of 2"
        Expect.equal (ExperimentSettings.devicesPerNodeFor 12) 6 "12 devices: nodes of 6"
        Expect.equal (ExperimentSettings.devicesPerNodeFor 128) 8 "128 devices: nodes of 8"
        let settings = { ExperimentSettings.defaults with Devices = 2; DevicesPerNode = ExperimentSettings.devicesPerNodeFor 2 }
        let spec = { (Workload.references |> List.find (fun w -> w.Name = "sd3-reference")) with Count = 20; Rate = 0.5 }
        let p = prepare settings (Generated spec)
        Expect.isLessThanOrEqual p.B1Default 2 "B1's default degree fits the node"
        let r = Simulator.run p.Config (Baselines.trident settings.RoundPeriod (Some settings.Adjust)) p.Requests
        Expect.equal r.Records.Length 20 "every request has a record"

let ``a profile of another model is simulated with its own shapes and steps`` =
    testCase "a profile of another model is simulated with its own shapes and steps" <| fun () ->
        // a user's profile: the SD3 reference measurements under another model name, as `trident profile` would write them
        let text = ProfileFile.serialize { ReferenceProfiles.sd3 with Model = ModelName "mine"; Source = "measured here" }
        let profile = match ProfileFile.parse text with Ok p -> p | Error e -> failwithf "%A" e
        let settings = { ExperimentSettings.defaults with Devices = 4; DevicesPerNode = 4; Profile = Some profile }
        let cost = CostModel.create (Experiment.costSettings settings) profile
        let spec = match Workload.forProfile "poisson" profile cost settings.Devices with Ok w -> w | Error e -> failwith e
        Expect.equal spec.Model "mine" "the profile's model"
        Expect.equal spec.Steps profile.DefaultSteps "the profile's default steps"
        let p = prepare settings (Generated { spec with Count = 30 })
        Expect.equal p.Config.Cost.Profile.Source "measured here" "simulated with the given profile"
        Expect.isTrue (p.Trace |> List.forall (fun t -> List.contains t.Shape (Workload.profileShapes profile))) "shapes the profile measured"
        match Workload.forProfile "flux-reference" profile cost 4 with
        | Ok _ -> failwith "a flux workload with a profile of another model"
        | Error e -> Expect.stringContains e "mine" "the error names the profile's model"

let ``the production replay keeps arrivals, steps and images and loads the cluster as stated`` =
    testCase "the production replay keeps arrivals, steps and images and loads the cluster as stated" <| fun () ->
        let text = "arrival_s,steps,images\n0,30,1\n10,40,4\n20,30,2\n100,30,1\n"
        let log = match Production.parse text with Ok l -> l | Error e -> failwithf "%A" e
        let cost = CostModel.create CostSettings.defaults ReferenceProfiles.sd3
        let c = Production.compressionFor cost Production.diffusionDbLike 8 0.7 log
        let trace = Production.replay "sd3" Production.diffusionDbLike c 7UL log
        Expect.equal trace.Length 8 "one request per image"
        Expect.equal (trace |> List.map (fun t -> float t.Arrival)) [ 0.0; 10.0 / c; 10.0 / c; 10.0 / c; 10.0 / c; 20.0 / c; 20.0 / c; 100.0 / c ] "arrivals compressed by c"
        Expect.equal (trace |> List.map _.Steps) [ 30; 40; 40; 40; 40; 30; 30; 30 ] "the log's steps"
        Expect.equal (trace |> List.skip 1 |> List.take 4 |> List.map _.Shape |> List.distinct).Length 1 "the images of one prompt share its size"
        // with one size the offered load is exactly the stated one
        let one = [ Shape.image 512 512, 1.0 ]
        let c1 = Production.compressionFor cost one 8 0.7 log
        let load = Evaluation.offeredLoad cost 8 (Workload.toRequests cost (Production.replay "sd3" one c1 7UL log))
        Expect.floatClose Accuracy.medium load 0.7 "the replay loads 8 devices to 70 %"
        Expect.equal (Production.replay "sd3" Production.diffusionDbLike c 7UL log) trace "the same seed gives the same trace"
        match Production.parse "arrival_s,steps,images\nx,30,1\n5,0,1\n" with
        | Ok _ -> failwith "accepted a bad log"
        | Error e ->
            let all = String.Join("\n", e)
            Expect.stringContains all "line 2: arrival_s" "bad arrival named"
            Expect.stringContains all "line 3: steps" "bad steps named"

let private cli (args: string list) = Trident.Api.Cli.Commands.RunAsync(Array.ofList args).Result

let ``evaluate --quick never writes over the committed report`` =
    testCase "evaluate --quick never writes over the committed report" <| fun () ->
        Expect.equal (cli [ "evaluate"; "--quick"; "--out"; "docs/evaluation" ]) 2 "refused before any simulation"
        Expect.equal (cli [ "evaluate"; "--only"; "everything" ]) 2 "an unknown group is refused"

let ``simulate and capacity run a small cluster with a profile written to a file, and draw PNG and SVG charts`` =
    testCase "simulate and capacity run a small cluster with a profile written to a file, and draw PNG and SVG charts" <| fun () ->
        let dir = IO.Path.Combine(IO.Path.GetTempPath(), "trident-report-" + string (Guid.NewGuid()))
        IO.Directory.CreateDirectory dir |> ignore
        try
            let profile = IO.Path.Combine(dir, "mine.json")
            IO.File.WriteAllText(profile, ProfileFile.serialize { ReferenceProfiles.sd3 with Model = ModelName "mine" })
            let out = IO.Path.Combine(dir, "sim")
            Expect.equal (cli [ "simulate"; "--workload"; "poisson"; "--profile"; profile; "--devices"; "2"; "--count"; "30"; "--policies"; "B1,B6,Trident"; "--out"; out ]) 0 "simulate exit code"
            let md = IO.File.ReadAllText(IO.Path.Combine(out, "README.md"))
            Expect.stringContains md "2 devices = 1 node × 2" "one node of two devices without --devices-per-node (\"1 node\", not \"1 nodes\")"
            for chart in [ "cdf-poisson-mine"; "utilisation-poisson-mine" ] do
                let png = IO.File.ReadAllBytes(IO.Path.Combine(out, chart + ".png"))
                Expect.sequenceEqual png.[0..7] [| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0x0Duy; 0x0Auy; 0x1Auy; 0x0Auy |] "a PNG"
                Expect.stringContains (IO.File.ReadAllText(IO.Path.Combine(out, chart + ".svg"))) "<svg" "an SVG"
            Expect.equal (cli [ "simulate"; "--workload"; "poisson"; "--profile"; profile; "--devices"; "2"; "--count"; "20"; "--policies"; "B6"; "--out"; IO.Path.Combine(dir, "b6") ]) 0 "a report without B1 or Trident"
            Expect.equal (cli [ "capacity"; "--workload"; "poisson"; "--profile"; profile; "--devices"; "2"; "--count"; "30"; "--policies"; "B1,Trident"; "--max-devices"; "8"; "--target"; "0.9" ]) 0 "capacity exit code"
            Expect.equal (cli [ "capacity"; "--workload"; "poisson"; "--target"; "2" ]) 2 "a target above 1 is refused"
            Expect.equal (cli [ "simulate"; "--workload"; "flux-reference"; "--profile"; profile ]) 2 "a flux workload with a profile of another model is refused"
        finally
            IO.Directory.Delete(dir, true)

let ``capacity says a policy with nothing on time never reaches the target, after two doublings`` =
    testCase "capacity says a policy with nothing on time never reaches the target, after two doublings" <| fun () ->
        // deadlines of 0.01 × the reference latency: no request is on time on any cluster
        let code, out, err =
            Trident.Tests.TestSupport.runCli
                [ "capacity"; "--workload"; "poisson"; "--devices"; "2"; "--count"; "20"; "--policies"; "B6"; "--slo-scale"; "0.01"; "--max-devices"; "64"; "--target"; "0.9" ]
        Expect.equal code 0 (sprintf "capacity exit code (%s)" err)
        Expect.stringContains out " never reaches the target (attainment 0.000, nothing on time, at 2 to 8 devices; there 0 on time" "said, with the sizes tried"
        Expect.isFalse (out.Contains "> 64") "no bound of --max-devices claimed"
        Expect.stringContains err "capacity: 3 simulations" "2, 4 and 8 devices, not on to 64"

let ``evaluate says, on standard error and in the report, which requests need more devices than a node has`` =
    testCase "evaluate says, on standard error and in the report, which requests need more devices than a node has" <| fun () ->
        // one device per node: a 2048² flux image needs k ≥ 2 (the minimum-degree rules), so no policy can run it
        let request i (shape: Shape) : TraceRequest =
            { Id = int64 i; Arrival = float i * 5.0<s>; Model = "flux"; Shape = shape; Steps = 20; Deadline = None; Priority = None }
        let trace = [ request 0 (Shape.image 1024 1024); request 1 (Shape.image 2048 2048); request 2 (Shape.image 1024 1024) ]
        let settings = { ExperimentSettings.defaults with Devices = 2; DevicesPerNode = 1 }
        let point = Evaluation.tracePoint "reference" settings "small" "three requests" trace
        let err = new IO.StringWriter()
        let previous = Console.Error
        Console.SetError err
        let result =
            try Trident.Api.Cli.EvaluateCommand.RunPoint(point, 1, Threading.CancellationToken.None, fun _ _ _ -> ())
            finally Console.SetError previous
        Expect.isNotNull (box result) "the point ran"
        let said = "1 of 3 requests (2048x2048"
        Expect.stringContains (string err) ("trident evaluate: reference small: note: " + said) (sprintf "on standard error: %s" (string err))
        Expect.stringContains result.Point.Workload.Note ("three requests; " + said) "in the point's note"
        let files, _ = Evaluation.report "./trident evaluate" "today" false 1.0 [] [ result ]
        let md = files |> List.find (fun (n, _) -> n = "README.md") |> snd
        Expect.stringContains md "need a degree above the node's 1 devices" "in the report"

let ``evaluate with a profile says what share of a workload is costed beyond the profile's data`` =
    testCase "evaluate with a profile says what share of a workload is costed beyond the profile's data" <| fun () ->
        let profile = ReferenceProfiles.sd3
        let largest = profile.Diffuse.Points |> List.maxBy (fun p -> p.Shape.PixelFrames)
        let request i (shape: Shape) : TraceRequest =
            { Id = int64 i; Arrival = float i * 1.0<s>; Model = "sd3"; Shape = shape; Steps = 20; Deadline = None; Priority = None }
        let within = [ for i in 0..2 -> request i largest.Shape ]
        Expect.isNull (Trident.Api.Cli.EvaluateCommand.Extrapolated(profile, within)) "nothing beyond the largest measured size"
        let beyond = within @ [ request 3 (Shape.image (largest.Shape.Height * 2) (largest.Shape.Width * 2)) ]
        let note = Trident.Api.Cli.EvaluateCommand.Extrapolated(profile, beyond)
        Expect.stringContains note "1 of 4 requests (25 %)" "the share named"
        Expect.stringContains note (string largest.Shape) "the largest measured size named"
        // below the smallest measured size the cost model extrapolates too (CostModel.fs): said as well
        let smallest = profile.Diffuse.Points |> List.minBy (fun p -> p.Shape.PixelFrames)
        let below = within @ [ request 3 (Shape.image (smallest.Shape.Height / 2) (smallest.Shape.Width / 2)) ]
        let note = Trident.Api.Cli.EvaluateCommand.Extrapolated(profile, below)
        Expect.isNotNull note "a request below the smallest measured size is said"
        Expect.stringContains note "1 of 4 requests (25 %) are smaller than the profile's smallest measured size" "the share below named"
        Expect.stringContains note (string smallest.Shape) "the smallest measured size named"

let ``replay counts requests and dispatches as /v1/plan does`` =
    testCase "replay counts requests and dispatches as /v1/plan does" <| fun () ->
        // /v1/plan's recent_rounds[].dispatched counts requests (a batch of 4 is 4); replay said "1 dispatched" for it
        Expect.equal (Trident.Api.Cli.ReplayCommand.Dispatched(4, 1)) "4 requests in 1 dispatch" "a batch of 4"
        Expect.equal (Trident.Api.Cli.ReplayCommand.Dispatched(1, 1)) "1 request in 1 dispatch" "one alone"
        Expect.equal (Trident.Api.Cli.ReplayCommand.Dispatched(0, 0)) "0 requests in 0 dispatches" "nothing"

let ``a generic workload over a profile keeps the profile's note`` =
    testCase "a generic workload over a profile keeps the profile's note" <| fun () ->
        let p = ReferenceProfiles.sd3
        let cost = CostModel.create CostSettings.defaults p
        for kind in Workload.genericKinds do
            match Workload.forProfile kind p cost 8 with
            | Ok w ->
                Expect.stringContains w.Note "over the profile's" (sprintf "%s: the profile's shapes and rate named" kind)
                Expect.isFalse (w.Note.Contains "reference mix") (sprintf "%s: not the reference mix: %s" kind w.Note)
            | Error e -> failtest e
        match Workload.tryNamed "poisson" "flux" with
        | Ok w -> Expect.stringContains w.Note "over the reference mix" "without a profile: the reference mix"
        | Error e -> failtest e

let ``simulate's errors name the option they come from`` =
    testCase "simulate's errors name the option they come from" <| fun () ->
        let run (args: string list) =
            let err = new System.IO.StringWriter()
            let previous = System.Console.Error
            System.Console.SetError err
            let code =
                try Trident.Api.Cli.Commands.RunAsync(Array.ofList ("simulate" :: args)).Result
                finally System.Console.SetError previous
            code, string err
        for args, expected in
            [ [ "--workload"; "poisson"; "--model"; "nosuch" ], "--model: no reference shapes"
              [ "--workload"; "flux-reference"; "--b1-degree"; "3"; "--policies"; "B1" ], "--b1-degree: B1's degree 3"
              [ "--workload"; "flux-reference"; "--devices"; "2"; "--devices-per-node"; "4" ], "--devices/--devices-per-node:"
              [ "--workload"; "nosuch" ], "gentd26-production, or a trace file"
              [ "--workload"; "flux-reference"; "--model"; "sd3" ], "--model/--workload:" ] do
            let code, text = run args
            Expect.equal code 2 (sprintf "%A: exit 2 (%s)" args text)
            Expect.stringContains text expected (sprintf "%A" args)

let ``a plan's source text gives the objective and bound to three decimals`` =
    testCase "a plan's source text gives the objective and bound to three decimals" <| fun () ->
        let stats objective bound =
            PlanSource.Mip
                { Backend = "scip"; Outcome = "optimal"; Proven = true; Objective = objective; Bound = bound; Gap = 0.0
                  SolveTime = 0.0123<s>; Variables = 10; Constraints = 5 }
        // a placement's objective is its α: one decimal printed 0.505 as 0.5 and 3.6098 as 3.6
        Expect.equal (PlanSource.describe (stats 0.505 0.505)) "mip scip optimal objective=0.505 bound=0.505 gap=0.0000 time=12.3ms" "α 0.505"
        Expect.stringContains (PlanSource.describe (stats 3.6098 3.6098)) "objective=3.610 bound=3.610" "α 3.6098"
        Expect.stringContains (PlanSource.describe (stats 997.5 1000.25)) "objective=997.500 bound=1000.250" "a dispatch round's objective"
        Expect.equal (PlanSource.describe (PlanSource.Greedy "time limit")) "greedy (time limit)" "greedy and why"

[<Tests>]
let cliTests =
    testList "unit" [ testList "ReportCliTests" [
        ``evaluate --quick never writes over the committed report``
        ``evaluate with a profile says what share of a workload is costed beyond the profile's data``
        ``capacity says a policy with nothing on time never reaches the target, after two doublings``
        ``evaluate says, on standard error and in the report, which requests need more devices than a node has``
        ``simulate and capacity run a small cluster with a profile written to a file, and draw PNG and SVG charts``
    ] |> testSequencedGroup "ReportCliTests" ]

[<Tests>]
let tests =
    testList "unit" [ testList "ReportTests" [
        ``the common set holds only requests every run completed, and misses count as infinite``
        ``the summary table puts the fair latencies first and labels completed-only ones``
        ``a one-run report writes only the sections it has``
        ``the headline's latency verdict names each statistic Trident loses, by how much and to whom``
        ``a chart names each series that repeats an earlier one's points, so the renderer can label and dash it``
        ``the capacity search finds the fewest nodes with as few probes as bisection needs``
        ``the capacity search stops doubling when nothing is on time at any size``
        ``the capacity search stops doubling when the attainment is capped``
        ``a generic workload over a profile keeps the profile's note``
        ``simulate's errors name the option they come from``
        ``replay counts requests and dispatches as /v1/plan does``
        ``the rate search brackets and bisects to the target attainment``
        ``small clusters get nodes that fit them``
        ``a profile of another model is simulated with its own shapes and steps``
        ``the production replay keeps arrivals, steps and images and loads the cluster as stated``
        ``a plan's source text gives the objective and bound to three decimals``
    ] ]
