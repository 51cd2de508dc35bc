namespace Trident.Scheduling.Placement

// Design note. The placement MIP (design.md §5), over node *templates*. A template is a node
// composition: p primaries of one type t plus e ⟨E⟩ and c ⟨C⟩ devices, p + e + c = node size.
// Nodes that are alike — same size, same memory, same current composition — form a node class, and
// the model counts how many nodes of each class take each template:
//   a[class, template] ∈ ℤ≥0,   Σ_template a[class, ·] = nodes in the class
//   α ≥ 0 and the class-aware capacity constraints of Capacity.fs (FlowCapacity) over the device
//   counts n_t = Σ a · (devices of type t in the template): each class routed only to the types that
//   can hold it, demand ≥ α · λ · share per class, device-seconds within n_t per type (when no class
//   has any route, the stage capacities cap_s = Σ a · n · speed(type, s) ≥ α · λ instead);
//   coverage[c]: every request class that some template can serve is served by some node
//               (a primary type that holds it at its needed degree ≤ p, and whose missing stages
//               can run somewhere: on an ⟨E⟩/⟨C⟩ device that holds the class — in the template on a
//               one-node cluster, where no other node can hold it — or, where lead routes are on,
//               on the group's lead in a template without that auxiliary type);
//   auxiliary[t]: nodes whose primary type lacks E (C) exist only if some node has an ⟨E⟩ (⟨C⟩)
//               (not where lead routes are on: the lead then runs the stage);
//   small clusters (leadLoading: some class can be served on this cluster only by a layout
//   whose group lead loads a stage its type lacks, CostModel.leadFits — one node of two 48 GB
//   devices and flux 2048²): the flows may also take lead routes (Capacity.fs), gated by
//   binaries has[E], has[C]: n_E ≤ devices · has[E], and the lead-E routes' device-seconds
//   ≤ devices · (1 − has[E]) — the lead runs the stage only in a layout with no ⟨E⟩ at all, as
//   the dispatcher does. Elsewhere the model is as it was: no lead routes, no binaries.
//   objectives, lexicographic: max α, then min weight moves Σ a · moves(class composition, template)
//   (plus tie-breaks worth less than one move together: types moving less data, V0 first; and
//   fewer nodes mixing primaries with ⟨E⟩/⟨C⟩ devices, so node-sized groups find whole nodes);
//   groups[t, k]: the work of classes whose smallest degree is ≥ k fits the devices of type t that
//   k-groups can use, Σ_n k·⌊p_n/k⌋ (Capacity.fs, FlowCapacity) — a group lives on one node.
// Counting per class removes the symmetry between identical nodes (a 16-node cluster with no
// placement yet is one class), so the model stays at a few hundred integers whatever the cluster.
// The heuristic's compositions are given as the MIP start when the model admits them.

open Trident.Scheduling
open Trident.Scheduling.Mip

/// Decision variables of the placement MIP.
type PlacementKey =
    | NodesWith of nodeClass: int * template: int
    | Alpha
    /// requests/s of a request class (index in the mix) served by a primary type, its group lead loading the
    /// encoder / decoder or not (Capacity.fs, FlowRoute)
    | Flow of requestClass: int * PlacementType * leadEncode: bool * leadDecode: bool
    /// 1 when the layout has devices of this auxiliary type (only where lead routes are on)
    | HasAux of PlacementType

module PlacementMip =
    /// A node class: nodes alike for placement.
    type NodeClass =
        { Index: int
          Size: int
          Memory: float<GB>
          Current: Composition
          Nodes: NodeId list }

    let nodeClasses (input: PlacementInput) =
        Cluster.nodes input.Cluster
        |> List.groupBy (fun n ->
            (Cluster.devicesOf input.Cluster n).Length, PlacementInput.nodeMemory input n, PlacementInput.currentComposition input n)
        |> List.mapi (fun i ((size, memory, current), nodes) ->
            { Index = i; Size = size; Memory = memory; Current = current; Nodes = nodes })

    /// Templates for a node of `size` devices with `memory`: one primary type (or none) + auxiliaries,
    /// using only types that can serve at least one request class.
    let templates (input: PlacementInput) (size: int) (memory: float<GB>) : Composition list =
        let serves t = input.Stats.Classes |> List.exists (Capacity.serves input.Cost memory size t)
        // when no primary type serves any class (a mix too large for these devices), keep every
        // primary type so that the layout still holds D; such classes are simply not covered
        let primaries =
            match PlacementType.primary |> List.filter serves with
            | [] -> PlacementType.primary
            | ps -> ps
        let auxE = serves E
        let auxC = serves PlacementType.C
        [ for t in (None :: (primaries |> List.map Some)) do
              let pRange = if t.IsNone then [ 0 ] else [ 1..size ]
              for p in pRange do
                  for e in (if auxE then [ 0 .. size - p ] else [ 0 ]) do
                      let c = size - p - e
                      if c = 0 || auxC then
                          yield
                              [ match t with
                                | Some t -> t, p
                                | None -> ()
                                E, e
                                PlacementType.C, c ]
                              |> List.filter (fun (_, n) -> n > 0)
                              |> Map.ofList ]

    /// Whether some class of the mix can be served on this cluster only by a layout whose group lead loads a stage
    /// its type lacks (CostModel.leadFits): a cluster too small for the auxiliary device the class needs beside its
    /// group. Only then does the model offer lead routes.
    let leadLoading (input: PlacementInput) =
        input.Stats.Classes |> List.exists (fun c -> CostModel.needsLeadLoading input.Cost input.Cluster c.Shape)

    /// Whether a template can serve request class c with its primaries, its missing stages run on an auxiliary
    /// device that holds c (in the template itself on a one-node cluster: no other node can hold it) or, with
    /// `lead`, on the group's lead in a template without that auxiliary type.
    let private templateServes (input: PlacementInput) (lead: bool) (memory: float<GB>) (tpl: Composition) (c: RequestClass) =
        match Composition.primary tpl with
        | Some t ->
            let completes stage aux =
                PlacementType.holds stage t
                || (Capacity.serves input.Cost memory (Composition.size tpl) aux c
                    && (input.Cluster.NodeCount > 1 || Composition.count tpl aux > 0))
                || (lead && Composition.count tpl aux = 0 && CostModel.leadFits input.Cost t stage c.Shape memory)
            match Capacity.neededDegree input.Cost memory t c with
            | Some k -> k <= Composition.count tpl t && completes Encode E && completes Decode PlacementType.C
            | None -> false
        | None -> false

    let private rate (input: PlacementInput) = if input.Stats.ArrivalRate > 0.0 then input.Stats.ArrivalRate else 1.0

    /// The model, and the templates of each node class.
    let model (input: PlacementInput) =
        let classes = nodeClasses input
        let tpls = classes |> List.map (fun cl -> cl.Index, templates input cl.Size cl.Memory |> Array.ofList) |> Map.ofList
        let work = Capacity.stageWork input.Cost input.Stats
        let vars =
            [ for cl in classes do
                  for j in 0 .. tpls.[cl.Index].Length - 1 -> cl, j, NodesWith(cl.Index, j) ]
        let stageCoef (stage: Stage) (tpl: Composition) =
            tpl
            |> Map.toSeq
            |> Seq.sumBy (fun (t, n) ->
                let sp = Capacity.speeds work t
                float n
                * (match stage with
                   | Encode -> sp.Encode
                   | Diffuse -> sp.Diffuse
                   | Decode -> sp.Decode))
        let tplOf (cl: NodeClass) j = tpls.[cl.Index].[j]
        let nodesOfClass =
            classes
            |> List.map (fun cl ->
                ConstraintName.create "nodes" [ "class", string cl.Index ],
                LinExpr.ofTerms [ for (cl', _, key) in vars do
                                      if cl'.Index = cl.Index then yield key, 1.0 ]
                === float cl.Nodes.Length)
        let memory = classes |> List.map _.Memory |> List.min
        let maxDegree = classes |> List.map _.Size |> List.max
        let lead = leadLoading input
        let routes =
            (if lead then
                 FlowCapacity.routesWith input.Cost memory maxDegree input.Cluster.Bandwidths.HostToDevice [ Auxiliary; Lead ] [ Auxiliary; Lead ] input.Stats
             else FlowCapacity.routes input.Cost memory maxDegree input.Stats)
            |> FlowCapacity.servableOn input
        let flowKey (r: FlowRoute) = Flow(r.Class, r.Type, r.LeadEncode, r.LeadDecode)
        let count t = LinExpr.ofTerms [ for (cl, j, key) in vars -> key, float (Composition.count (tplOf cl j) t) ]
        let capacity =
            if routes.IsEmpty then
                Stage.all
                |> List.map (fun stage ->
                    ConstraintName.create "capacity" [ "stage", Stage.letter stage ],
                    LinExpr.ofTerms [ for (cl, j, key) in vars -> key, stageCoef stage (tplOf cl j) ]
                    - rate input * LinExpr.var Alpha
                    >== 0.0)
            else
                let groups t k = LinExpr.ofTerms [ for (cl, j, key) in vars -> key, float (FlowCapacity.groupDevices [ tplOf cl j ] t k) ]
                FlowCapacity.constraints input.Stats routes count groups flowKey Alpha
        // lead routes only in a layout with no device of that auxiliary type (as the dispatcher runs them)
        let deviceCount = float (Cluster.deviceCount input.Cluster)
        let gated =
            [ for aux, isLead in [ E, (fun (r: FlowRoute) -> r.LeadEncode); PlacementType.C, (fun (r: FlowRoute) -> r.LeadDecode) ] do
                  let leadRoutes = routes |> List.filter isLead
                  if not leadRoutes.IsEmpty then yield aux, leadRoutes ]
        let gates =
            [ for aux, leadRoutes in gated do
                  yield ConstraintName.create "aux-present" [ "type", PlacementType.name aux ], count aux - deviceCount * LinExpr.var (HasAux aux) <== 0.0
                  yield
                      ConstraintName.create "lead-gate" [ "type", PlacementType.name aux ],
                      LinExpr.ofTerms [ for r in leadRoutes -> flowKey r, r.Primary ] + deviceCount * LinExpr.var (HasAux aux) <== deviceCount ]
        let coverage =
            input.Stats.Classes
            |> List.mapi (fun i c -> i, c)
            |> List.choose (fun (i, c) ->
                let serving = [ for (cl, j, key) in vars do
                                    if templateServes input lead cl.Memory (tplOf cl j) c then yield key, 1.0 ]
                if serving.IsEmpty then None
                else Some(ConstraintName.create "coverage" [ "class", string i; "shape", string c.Shape ], LinExpr.ofTerms serving >== 1.0))
        // a mix no placement of the cluster can serve at all has α = 0 whatever the layout: the layout still holds D
        // (the heuristic's always does), and needs no auxiliary device beside it — this row replaces the auxiliary
        // rows only then, so other models are unchanged
        let noneServable = not input.Stats.Classes.IsEmpty && input.Stats.Classes |> List.forall (fun c -> (CostModel.unservableOn input.Cost input.Cluster c.Shape).IsSome)
        let primaryPresent =
            if not noneServable then []
            else
                [ ConstraintName.single "primary-present",
                  LinExpr.ofTerms [ for (cl, j, key) in vars do
                                        match Composition.primary (tplOf cl j) with
                                        | Some t -> yield key, float (Composition.count (tplOf cl j) t)
                                        | None -> () ]
                  >== 1.0 ]
        let nodeCount = float (input.Cluster.NodeCount)
        let auxiliary =
            [ if not lead && not noneServable then
                  for stage, auxType in [ Encode, E; Decode, PlacementType.C ] do
                      let lacking = [ for (cl, j, key) in vars do
                                          match Composition.primary (tplOf cl j) with
                                          | Some t when not (PlacementType.holds stage t) -> yield key, 1.0
                                          | _ -> () ]
                      let having = [ for (cl, j, key) in vars do
                                         if Composition.count (tplOf cl j) auxType > 0 then yield key, nodeCount ]
                      if not lacking.IsEmpty then
                          yield ConstraintName.create "auxiliary" [ "stage", Stage.letter stage ], LinExpr.ofTerms lacking - LinExpr.ofTerms having <== 0.0 ]
        // second objective: weight moves, and among layouts with as few moves the one that moves
        // the least data (V0 ≺ V1, V2 ≺ V3: a tie-break worth less than one move in total)
        let communication (tpl: Composition) =
            tpl
            |> Map.toSeq
            |> Seq.sumBy (fun (t, n) ->
                float n
                * (match t with
                   | EDC -> 0.0
                   | DC
                   | ED -> 1.0
                   | D -> 2.0
                   | E
                   | PlacementType.C -> 1.0))
        let tieBreak = 0.5 / (3.0 * float (max 1 (Cluster.deviceCount input.Cluster)))
        // and then the layout with the fewest nodes that mix primaries with ⟨E⟩/⟨C⟩ devices: a node-sized
        // group needs a node of primaries only, so auxiliary devices are packed onto as few nodes as
        // possible (worth < ¼ move in total; cogvideox-reference and hunyuanvideo-reference, simulator:
        // three ⟨C⟩ devices on three nodes left 13 nodes for k = 8 groups instead of 15)
        let mixed (cl: NodeClass) (tpl: Composition) =
            match Composition.primary tpl with
            | Some t when Composition.count tpl t < cl.Size -> 1.0
            | _ -> 0.0
        let fragmentation = 0.25 / float (max 1 input.Cluster.NodeCount)
        let moves =
            LinExpr.ofTerms
                [ for (cl, j, key) in vars ->
                      key, float (Composition.moves cl.Current (tplOf cl j)) + tieBreak * communication (tplOf cl j) + fragmentation * mixed cl (tplOf cl j) ]
        let m =
            Model.empty
            |> Model.withVarNames (function
                | NodesWith(c, j) -> sprintf "a_c%d_t%d" c j
                | Alpha -> "alpha"
                | Flow(c, t, le, lc) -> FlowCapacity.varName c t le lc
                | HasAux t -> sprintf "has_%A" t)
            |> Model.addVar (Var.continuous 0.0 (if routes.IsEmpty then infinity else 1e6) Alpha)
            |> Model.addVars [ for r in routes -> Var.continuous 0.0 infinity (flowKey r) ]
            |> Model.addVars [ for (cl, _, key) in vars -> Var.integer 0.0 (float cl.Nodes.Length) key ]
            |> Model.addVars [ for aux, _ in gated -> Var.binary (HasAux aux) ]
            |> Model.addConstraints nodesOfClass
            |> Model.addConstraints capacity
            |> Model.addConstraints gates
            |> Model.addConstraints coverage
            |> Model.addConstraints primaryPresent
            |> Model.addConstraints auxiliary
            |> Model.maximize "alpha" (LinExpr.var Alpha)
            |> Model.minimize "moves" moves
        m, classes, tpls

    /// The heuristic's compositions as a MIP start, when every node's composition is a template.
    let startOf (input: PlacementInput) (classes: NodeClass list) (tpls: Map<int, Composition array>) (comps: Map<NodeId, Composition>) =
        let counts =
            [ for cl in classes do
                  for n in cl.Nodes -> cl.Index, tpls.[cl.Index] |> Array.tryFindIndex (fun t -> t = comps.[n]) ]
        if counts |> List.exists (snd >> Option.isNone) then None
        else
            let types = comps |> Map.toSeq |> Seq.collect (fun (_, c) -> c |> Map.toSeq |> Seq.collect (fun (t, n) -> Seq.replicate n t)) |> List.ofSeq
            let memory = classes |> List.map _.Memory |> List.min
            let maxDegree = classes |> List.map _.Size |> List.max
            let layout = comps |> Map.toList |> List.map snd
            let lead = leadLoading input
            // the routes the layout offers, as the model has them: lead routes only where the model has them too
            let encode, decode = if lead then FlowCapacity.completions layout else Auxiliary, Auxiliary
            let h2d = input.Cluster.Bandwidths.HostToDevice
            let routes = FlowCapacity.routesWith input.Cost memory maxDegree h2d [ encode ] [ decode ] input.Stats |> FlowCapacity.servableOn input
            // a complete start: α and the flows that achieve it (a partial hint leaves the solver to complete it)
            let alpha, flows =
                match FlowCapacity.solveRoutes input.Stats routes layout with
                | Some(alpha, flows) -> alpha, flows |> List.map (fun (r, v) -> Flow(r.Class, r.Type, r.LeadEncode, r.LeadDecode), v)
                | None ->
                    let work = Capacity.stageWork input.Cost input.Stats
                    Capacity.alpha (rate input) (Capacity.ofTypes work types), []
            let gates =
                if not lead then []
                else
                    let modelRoutes =
                        FlowCapacity.routesWith input.Cost memory maxDegree h2d [ Auxiliary; Lead ] [ Auxiliary; Lead ] input.Stats
                        |> FlowCapacity.servableOn input
                    [ for aux, isLead in [ E, (fun (r: FlowRoute) -> r.LeadEncode); PlacementType.C, (fun (r: FlowRoute) -> r.LeadDecode) ] do
                          if modelRoutes |> List.exists isLead then
                              yield HasAux aux, (if layout |> List.exists (fun c -> Composition.count c aux > 0) then 1.0 else 0.0) ]
            let zeros = [ for cl in classes do
                              for j in 0 .. tpls.[cl.Index].Length - 1 -> NodesWith(cl.Index, j), 0.0 ]
            let a =
                counts
                |> List.countBy (fun (c, j) -> NodesWith(c, j.Value))
                |> List.map (fun (k, n) -> k, float n)
            Some(Map.ofList (zeros @ ((Alpha, alpha) :: a) @ flows @ gates))

    /// Solves the placement MIP. Returns the node compositions and the solve statistics, or the
    /// reason it produced none.
    let solve (input: PlacementInput) (start: Map<NodeId, Composition> option) =
        let m, classes, tpls = model input
        let mipStart = start |> Option.bind (startOf input classes tpls)
        let settings = { SolveSettings.create input.TimeLimit with MipStart = mipStart; ObjectiveTolerance = 1e-6 }
        let result = Mip.solve settings m
        if result.HasSolution then
            let comps =
                [ for cl in classes do
                      let nodes = System.Collections.Generic.Queue<NodeId>(cl.Nodes)
                      // the nodes of a class share their current composition, so any order is as good
                      let wanted =
                          [ for j in 0 .. tpls.[cl.Index].Length - 1 do
                                for _ in 1 .. int (result.Value(NodesWith(cl.Index, j))) -> tpls.[cl.Index].[j] ]
                      for tpl in wanted -> nodes.Dequeue(), tpl ]
                |> Map.ofList
            let o = List.head result.Objectives
            let stats =
                { Backend = Backend.name result.Backend
                  Proven = (result.Outcome = Optimal)
                  Outcome =
                    (match result.Outcome with
                     | Optimal -> "optimal"
                     | Feasible(gap, stop) -> sprintf "feasible (stopped by %A, gap %.4f)" stop gap
                     | other -> sprintf "%A" other)
                  Objective = o.Value
                  Bound = o.BestBound
                  Gap = (match result.Outcome with Feasible(g, _) -> g | _ -> 0.0)
                  SolveTime = result.SolveTime
                  Variables = Seq.length m.Variables
                  Constraints = m.Constraints.Length }
            Ok(comps, stats, mipStart.IsSome)
        else
            Error(sprintf "placement MIP: %A after %.1f ms" result.Outcome (float result.SolveTime * 1000.0))

    /// Whether the MIP admits these compositions (each node's composition is one of its templates
    /// and the coverage and auxiliary constraints hold) — used to state when α(MIP) ≥ α(heuristic)
    /// must hold.
    let admits (input: PlacementInput) (comps: Map<NodeId, Composition>) =
        let m, classes, tpls = model input
        match startOf input classes tpls comps with
        | None -> false
        | Some values ->
            let value k = values |> Map.tryFind k |> Option.defaultValue 0.0
            m.Constraints
            |> List.filter (fun c -> not (List.contains c.Name.Family [ "capacity"; "demand"; "primary"; "groups"; "auxiliary-time"; "aux-present"; "lead-gate" ]))
            |> List.forall (fun c -> Constraint.isSatisfied 1e-6 value c.Constraint)
