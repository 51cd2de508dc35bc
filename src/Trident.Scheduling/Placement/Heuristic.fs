namespace Trident.Scheduling.Placement

// Design note. The paper's placement heuristic (design.md §5), node-granular:
//   1. each request class picks its cheapest memory-feasible VR type, V0 ≺ V1 ≺ V2 ≺ V3;
//   2. nodes are shared among VR types in proportion to the *work* (device-seconds) of the classes
//      that prefer each — largest remainder, every preferred VR at least one node while nodes last;
//      when there are fewer nodes than VR types, the classes move to the most capable VR wanted
//      (the later one: ⟨D⟩ holds the least, so it fits the most);
//   3. inside a VR's nodes, primary and auxiliary devices are split so that their throughputs match
//      (primary : ⟨E⟩ : ⟨C⟩ ∝ primary time : T̄_E : T̄_C, at least one auxiliary of each kind the VR
//      needs), and laid out primaries first: the VR's first nodes are whole primary nodes (any k up
//      to the node size fits) and the auxiliaries gather on its last node;
//   4. a cluster too small for that: when the layout leaves a class without a route (its group and
//      the auxiliary devices it needs do not fit, as flux 2048² at k = 2 beside an ⟨E⟩ on one node of
//      two) and the same VRs with every device primary serve more of the mix — their group leads
//      loading the stages the type lacks (Capacity.fs, "Small clusters") — the latter is taken.

open Trident.Scheduling

module Heuristic =
    /// The cheapest VR type that can serve the class, if any.
    let preferredVr (cost: CostModel) (memory: float<GB>) (nodeSize: int) (c: RequestClass) =
        VrType.all
        |> List.tryFind (fun v ->
            Capacity.serves cost memory nodeSize (VrType.primaryType v) c
            && (not (VrType.needsAuxEncode v) || Capacity.serves cost memory nodeSize E c)
            && (not (VrType.needsAuxDecode v) || Capacity.serves cost memory nodeSize PlacementType.C c))

    /// Integer shares of `total` in proportion to `weights` (largest remainder; ties to the first).
    let apportion (total: int) (weights: float list) =
        let sum = List.sum weights
        if sum <= 0.0 || total <= 0 then weights |> List.map (fun _ -> 0)
        else
            let exact = weights |> List.map (fun w -> float total * w / sum)
            let floors = exact |> List.map (fun x -> int (floor x))
            let left = total - List.sum floors
            let order =
                exact
                |> List.mapi (fun i x -> i, x - floor x)
                |> List.sortBy (fun (i, r) -> -r, i)
                |> List.take left
                |> List.map fst
                |> Set.ofList
            floors |> List.mapi (fun i f -> if order.Contains i then f + 1 else f)

    /// Compositions of the nodes (given by size) that serve VR `v` for the given classes. Devices of
    /// the VR are split primary : ⟨E⟩ : ⟨C⟩ in proportion to their work (at least one auxiliary of
    /// each kind the VR needs), then laid out node by node, primaries first, so the first nodes hold
    /// whole groups of primaries and the auxiliaries gather at the end.
    let private vrCompositionsWith (auxiliary: bool) (work: StageSpeeds) (sizes: int list) (v: VrType) : Composition list =
        let t = VrType.primaryType v
        let needE = VrType.needsAuxEncode v
        let needC = VrType.needsAuxDecode v
        let total = List.sum sizes
        let primaryTime =
            work.Diffuse
            + (if needE then 0.0 else work.Encode)
            + (if needC then 0.0 else work.Decode)
        let aux = (if needE then 1 else 0) + (if needC then 1 else 0)
        let p, e, c =
            if total <= aux || not auxiliary then total, 0, 0 // too few devices for the VR (or none asked for): all primary
            else
                match apportion total [ primaryTime; (if needE then work.Encode else 0.0); (if needC then work.Decode else 0.0) ] with
                | [ p; e; c ] ->
                    let e = if needE then max 1 e else 0
                    let c = if needC then max 1 c else 0
                    total - e - c, e, c
                | _ -> failwith "unreachable"
        let layout = List.replicate p t @ List.replicate e E @ List.replicate c PlacementType.C
        let rec cut (rest: PlacementType list) (sizes: int list) =
            match sizes with
            | [] -> []
            | n :: more -> Composition.ofTypes (List.take n rest) :: cut (List.skip n rest) more
        cut layout sizes

    /// Compositions of the nodes (given by size) that serve VR `v` for the given classes. Devices of
    /// the VR are split primary : ⟨E⟩ : ⟨C⟩ in proportion to their work (at least one auxiliary of
    /// each kind the VR needs), then laid out node by node, primaries first, so the first nodes hold
    /// whole groups of primaries and the auxiliaries gather at the end.
    let vrCompositions (work: StageSpeeds) (sizes: int list) (v: VrType) : Composition list = vrCompositionsWith true work sizes v

    /// Node compositions the heuristic chooses.
    let compositions (input: PlacementInput) : Map<NodeId, Composition> =
        let cost = input.Cost
        let nodes = Cluster.nodes input.Cluster
        let sizes = nodes |> List.map (fun n -> (Cluster.devicesOf input.Cluster n).Length)
        let memory = nodes |> List.map (PlacementInput.nodeMemory input) |> List.min
        let nodeSize = List.max sizes
        let work = Capacity.stageWork cost input.Stats
        let classWork (c: RequestClass) =
            let k = CostModel.referenceDegree cost c.Shape
            c.Share
            * float (CostModel.encodeTime cost c.Shape + CostModel.diffuseTime cost c.Shape c.Steps k * float k + CostModel.decodeTime cost c.Shape)
        // step 1
        let byVr =
            input.Stats.Classes
            |> List.groupBy (fun c -> preferredVr cost memory nodeSize c |> Option.defaultValue V3)
            |> List.sortBy fst
        // fewer nodes than VR types: merge into the most capable VR wanted
        let byVr =
            if byVr.Length <= nodes.Length then byVr
            else [ fst (List.last byVr), byVr |> List.collect snd ]
        let byVr = if byVr.IsEmpty then [ V0, [] ] else byVr
        // step 2: nodes per VR by work, each at least one
        let weights = byVr |> List.map (fun (_, cs) -> cs |> List.sumBy classWork |> max 1e-9)
        let shares = apportion (nodes.Length - byVr.Length) weights |> List.map ((+) 1)
        let vrOfNode = byVr |> List.zip shares |> List.collect (fun (n, (v, cs)) -> List.replicate n (v, cs))
        // step 3
        let assigned = List.zip nodes (List.zip sizes vrOfNode)
        let layout auxiliary =
            assigned
            |> List.groupBy (fun (_, (_, (v, _))) -> v)
            |> List.collect (fun (v, members) ->
                let comps = vrCompositionsWith auxiliary work (members |> List.map (fun (_, (size, _)) -> size)) v
                List.zip (members |> List.map fst) comps)
            |> Map.ofList
        // step 4: a layout that leaves a class without a route loses to one with every device primary that serves more
        let comps = layout true
        let served (l: Map<NodeId, Composition>) =
            FlowCapacity.servedShare cost memory nodeSize input.Cluster.Bandwidths.HostToDevice input.Stats (l |> Map.toList |> List.map snd)
        let all = input.Stats.Classes |> List.sumBy _.Share
        let share = served comps
        if share >= all - 1e-9 then comps
        else
            let primaries = layout false
            if served primaries > share + 1e-9 then primaries else comps

    /// Builds a placement plan from node compositions (shared with the MIP).
    let planOf (input: PlacementInput) (source: PlanSource) (comps: Map<NodeId, Composition>) : PlacementPlan =
        let types = PlacementInput.assignDevices input comps
        let work = Capacity.stageWork input.Cost input.Stats
        let capacity = Capacity.ofTypes work (types |> Map.toSeq |> Seq.map snd)
        { Types = types
          Capacity = capacity
          Alpha = FlowCapacity.alphaFor input types
          Moves = PlacementInput.moves input types
          Source = source }

    /// The paper's heuristic placement.
    let plan (input: PlacementInput) : PlacementPlan =
        compositions input |> planOf input (Greedy "placement heuristic (design.md §5 steps 1–3)")
