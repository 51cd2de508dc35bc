namespace Trident.Scheduling

// Design note. The glue between a command line (or a test, or the serving engineer's load
// generator) and the simulator: a workload (a named generator or a trace), cluster settings and
// policy names in; prepared requests, the simulator configuration and the policy values out. Policy
// names are mapped to values here and nowhere else. B1 takes its degree as a parameter; without one
// it is run at every allowed degree that fits a node and reported at its best ("the best fixed
// degree"), with the other degrees kept for reports.

open Trident.Scheduling.Placement
open Trident.Scheduling.Dispatching

/// Settings of one experiment (one workload on one cluster, several policies).
type ExperimentSettings =
    { Devices: int
      DevicesPerNode: int
      /// seed of the workload generator (and of the simulator's jitter)
      Seed: uint64
      /// deadline = arrival + scale · t_ref (the default rule, scale 4) …
      SloScale: float
      /// … or the reference code's rule instead
      ReferenceDeadline: bool
      /// B1's degree; None: every degree, the best reported
      B1Degree: int option
      /// B5/B6's manual split
      Split: StageSplit
      /// Trident's minimum spacing between solver rounds
      RoundPeriod: float<s>
      Adjust: AdjustSettings
      Jitter: float
      /// device memory (default: the profile's device class)
      Memory: float<GB> option
      /// the profile to simulate with (e.g. one `trident profile` measured); None: the reference
      /// profile of the workload's model
      Profile: Profile option
      /// Trident-preempt's preemption settings (the bound on suspensions per request, …)
      Preemption: PreemptionSettings
      /// most requests of one (pipeline, shape, steps) per batch task (SimConfig.MaxBatch; 1: no batching).
      /// Batches form only where the profile has batch points (`trident profile` measures them, `--batches`);
      /// the reference profiles have none
      MaxBatch: int }

module ExperimentSettings =
    let defaults =
        { Devices = 128
          DevicesPerNode = 8
          Seed = 42UL
          SloScale = 4.0
          ReferenceDeadline = false
          B1Degree = None
          Split = StageSplit.paperLightLoad
          RoundPeriod = 0.5<s>
          Adjust = AdjustSettings.defaults
          Jitter = 0.0
          Memory = None
          Profile = None
          Preemption = PreemptionSettings.defaults
          MaxBatch = 1 }

    /// The settings for another cluster size (same node size).
    let withDevices (devices: int) (s: ExperimentSettings) = { s with Devices = devices }

    /// The settings with B1 at one degree.
    let withB1Degree (k: int) (s: ExperimentSettings) = { s with B1Degree = Some k }

    /// Devices per node when the user gives none: 8 (the reference servers), or for a cluster that
    /// 8 does not divide, its largest divisor ≤ 8 (so `--devices 2` is one node of 2).
    let devicesPerNodeFor (devices: int) =
        if devices < 1 then 8 else [ 8..-1..1 ] |> List.find (fun k -> devices % k = 0)

/// Where the requests come from.
type WorkloadInput =
    /// a generator (named, with overrides applied)
    | Generated of WorkloadSpec
    /// a trace someone brought: a name for reports and its lines
    | FromTrace of name: string * TraceRequest list

/// A workload ready to simulate.
type Prepared =
    { Name: string
      Note: string
      Model: string
      Config: SimConfig
      Trace: TraceRequest list
      Requests: Request list
      /// B1's degree: the settings' or, by default, the largest k* of the workload's shapes
      B1Default: int }

module Experiment =
    /// The cost model's settings for the experiment's deadline rule.
    let costSettings (settings: ExperimentSettings) =
        { CostSettings.defaults with
            Deadline = if settings.ReferenceDeadline then ReferenceCode else SloScale settings.SloScale }

    /// Checks the settings and builds cluster, cost model and requests. Every problem is reported.
    let prepare (settings: ExperimentSettings) (input: WorkloadInput) : Result<Prepared, string list> =
        let errors = ResizeArray<string>()
        if settings.DevicesPerNode < 1 then errors.Add "devices per node must be at least 1"
        if settings.Devices < 1 then errors.Add "devices must be at least 1"
        elif settings.DevicesPerNode >= 1 && settings.Devices % settings.DevicesPerNode <> 0 then
            errors.Add(sprintf "devices (%d) must be a multiple of devices per node (%d)" settings.Devices settings.DevicesPerNode)
        if settings.SloScale <= 0.0 then errors.Add "the SLO scale must be positive"
        if settings.Jitter < 0.0 then errors.Add "jitter must be ≥ 0"
        let name, note, trace =
            match input with
            | Generated spec -> spec.Name, spec.Note, Workload.generate spec settings.Seed
            | FromTrace(name, trace) -> name, "a trace file", trace
        let models = trace |> List.map _.Model |> List.distinct
        let profile =
            match models with
            | [] ->
                errors.Add "the workload has no requests"
                None
            | [ m ] ->
                let found =
                    match settings.Profile with
                    | Some p when p.Model.Value = m -> Some p
                    | Some p ->
                        errors.Add(sprintf "the profile is for model '%s', the workload's requests are for '%s'" p.Model.Value m)
                        None
                    | None -> ReferenceProfiles.tryFind m
                match found with
                | Some p ->
                    // an image-only model takes no video rows (frames > 1)
                    for t in trace do
                        for e in Trace.checkAgainst p t do errors.Add(sprintf "request %d: %s" t.Id e)
                    Some p
                | None when settings.Profile.IsNone ->
                    errors.Add(sprintf "no profile for model '%s' (known: sd3, flux, cogvideox, hunyuanvideo; or give one with --profile)" m)
                    None
                | None -> None
            | ms ->
                errors.Add(sprintf "one model per simulation; the trace has %s" (System.String.Join(", ", ms)))
                None
        match profile with
        | Some p when errors.Count = 0 ->
            let cost = CostModel.create (costSettings settings) p
            let memory = defaultArg settings.Memory p.DeviceMemory
            let cluster = Cluster.uniform (settings.Devices / settings.DevicesPerNode) settings.DevicesPerNode memory Bandwidths.pcie4Server
            let config = { SimConfig.create cluster cost with Jitter = settings.Jitter; Seed = settings.Seed; MaxBatch = settings.MaxBatch }
            let b1 =
                match settings.B1Degree with
                | Some k -> k
                | None ->
                    let k = Baselines.b1DefaultDegree cost (trace |> List.map _.Shape |> List.distinct)
                    // the largest allowed degree that fits a node, when k* does not
                    match cost.Degrees |> List.filter (fun d -> d <= min k settings.DevicesPerNode) with
                    | [] -> List.head cost.Degrees
                    | ds -> List.max ds
            Ok
                { Name = name
                  Note = note
                  Model = p.Model.Value
                  Config = config
                  Trace = trace
                  Requests = Workload.toRequests cost trace
                  B1Default = b1 }
        | _ -> Error(List.ofSeq errors)

    /// The requests no policy can run on the prepared cluster because the minimum-degree rules
    /// (CostSettings.MinDegreeRules) ask for more devices than one node has, in words; None when there are
    /// none. Every policy, baselines included, counts them unserved (Baselines.round, Admissible).
    let beyondNode (p: Prepared) : string option =
        let cost = p.Config.Cost
        let nodeSize = p.Config.Cluster.Devices |> Array.countBy _.Node |> Array.map snd |> Array.max
        let beyond = p.Requests |> List.filter (fun r -> CostModel.ruleMinDegree cost r.Shape > nodeSize)
        match beyond with
        | [] -> None
        | _ ->
            let shapes = beyond |> List.map (fun r -> sprintf "%O (k ≥ %d)" r.Shape (CostModel.ruleMinDegree cost r.Shape)) |> List.distinct
            Some(
                sprintf "%d of %d requests (%s) need a degree above the node's %d devices (the minimum-degree rules): no policy can run them, and every policy counts them unserved"
                    beyond.Length p.Requests.Length (System.String.Join(", ", shapes)) nodeSize
            )

    /// Every policy name, in report order.
    let names = Baselines.names

    /// The policies a list of names asks for, in the order of `names` (then Trident-preempt): all (or nothing) is
    /// every policy but Trident-preempt; names are matched ignoring case; an unknown name is an error naming the known
    /// ones. Checked alone (the command line's check) and by `policies`.
    let policyNames (requested: string list) : Result<string list, string list> =
        match requested |> List.map (fun s -> s.Trim()) |> List.filter ((<>) "") with
        | []
        | [ "all" ] -> Ok names
        | xs ->
            let known = names @ [ Baselines.PreemptName ]
            let bad = xs |> List.filter (fun x -> not (known |> List.exists (fun n -> n.ToLowerInvariant() = x.ToLowerInvariant())))
            if bad.IsEmpty then Ok(known |> List.filter (fun n -> xs |> List.exists (fun x -> x.ToLowerInvariant() = n.ToLowerInvariant())))
            else Error [ for b in bad -> sprintf "unknown policy '%s' (known: all, %s)" b (System.String.Join(", ", known)) ]

    /// The policies for the names ("all", or names from `names` or Trident-preempt,
    /// case-insensitive). B1 without a degree expands to one policy per degree; Trident-preempt is
    /// Trident with step-boundary preemption, run only when named.
    let policies (settings: ExperimentSettings) (prepared: Prepared) (requested: string list) : Result<Policy list, string list> =
        let wanted = policyNames requested
        let nodeSize = settings.DevicesPerNode
        let degrees = prepared.Config.Cost.Degrees |> List.filter (fun k -> k <= nodeSize)
        match wanted, settings.B1Degree with
        | Error e, _ -> Error e
        | Ok _, Some k when not (List.contains k degrees) ->
            Error [ sprintf "B1's degree %d is not among the allowed degrees that fit a node (%s)" k (System.String.Join(", ", degrees)) ]
        | Ok ws, b1 ->
            Ok
                [ for w in ws do
                      match w with
                      | "B1" ->
                          match b1 with
                          | Some k -> yield Baselines.b1 k
                          | None -> yield! degrees |> List.map Baselines.b1
                      | "B2" -> yield Baselines.b2
                      | "B3" -> yield Baselines.b3
                      | "B4" -> yield Baselines.b4
                      | "B5" -> yield Baselines.b5 settings.Split
                      | "B6" -> yield Baselines.b6 settings.Split
                      | Baselines.PreemptName -> yield Baselines.tridentPreempt settings.RoundPeriod (Some settings.Adjust) settings.Preemption
                      | _ -> yield Baselines.trident settings.RoundPeriod (Some settings.Adjust) ]

    /// Better run first: higher attainment, then lower mean latency.
    let private rank (r: SimResult) =
        -r.Summary.SloAttainment, (let m = float r.Summary.MeanLatency in if System.Double.IsNaN m then infinity else m)

    /// One result per policy — B1 at its default degree, and B1 again at its best fixed degree when
    /// that is another — and B1's runs at every degree.
    let collapse (b1Default: int) (results: SimResult list) : SimResult list * SimResult list =
        let b1 = results |> List.filter (fun r -> r.Policy = "B1")
        match b1 with
        | []
        | [ _ ] -> results, b1
        | _ ->
            let relabel (r: SimResult) (label: string) = { r with Params = label; Summary = { r.Summary with Params = label } }
            let best = b1 |> List.sortBy rank |> List.head
            let byDefault = b1 |> List.tryFind (fun r -> r.Params = sprintf "k=%d" b1Default) |> Option.defaultValue best
            let ks = System.String.Join("/", b1 |> List.map (fun r -> r.Params.Replace("k=", "")))
            let b1Rows =
                if obj.ReferenceEquals(best, byDefault) then
                    [ relabel best (sprintf "%s (default: largest k*; best of k=%s)" best.Params ks) ]
                else
                    [ relabel byDefault (sprintf "%s (default: largest k*)" byDefault.Params)
                      relabel best (sprintf "%s (best fixed degree of k=%s)" best.Params ks) ]
            let rows =
                b1Rows @ (results |> List.filter (fun r -> r.Policy <> "B1"))
                |> List.sortBy (fun r -> List.findIndex ((=) r.Policy) (names @ [ Baselines.PreemptName ]))
            rows, b1
