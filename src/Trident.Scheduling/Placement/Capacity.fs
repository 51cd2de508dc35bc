namespace Trident.Scheduling.Placement

// Design note. Both placement planners (the paper's heuristic and the MIP) reason about nodes as
// *compositions*: how many devices of each placement type a node holds. A node holds primary devices
// of at most one primary type (so a diffuse group of any k up to that count fits in it, and the
// node never fragments into groups of different types) plus auxiliary ⟨E⟩/⟨C⟩ devices.
//
// Capacity, in requests per second of the planned mix, with T̄_s the mix-average device-seconds of
// stage s per request (diffuse: steps · t_D(k*) · k*, i.e. all k devices' time):
//   a primary device of type t completes 1 / (T̄_D + [E∈t]·T̄_E + [C∈t]·T̄_C) requests per second, and
//   counts towards every stage it holds; an ⟨E⟩ device adds 1/T̄_E to encode, a ⟨C⟩ 1/T̄_C to decode.
// α = min over stages of capacity / arrival rate: the smallest stage headroom.

open Trident.Scheduling

/// One class of requests in the recent mix.
type RequestClass =
    { Shape: Shape
      Steps: int
      /// fraction of requests in this class (the shares of a mix sum to 1)
      Share: float }

/// Request statistics over a recent window.
type WorkloadStats =
    { Classes: RequestClass list
      /// arrivals per second
      ArrivalRate: float }

module WorkloadStats =
    /// Statistics of a list of requests observed over `window` seconds.
    let ofRequests (window: float<s>) (requests: Request list) =
        let n = float requests.Length
        { Classes =
            requests
            |> List.countBy (fun r -> r.Shape, r.Steps)
            |> List.sortBy (fun ((sh, st), _) -> sh.PixelFrames, sh.Height, sh.Width, st)
            |> List.map (fun ((sh, st), c) -> { Shape = sh; Steps = st; Share = float c / n })
          ArrivalRate = if window > 0.0<s> then n / float window else 0.0 }

/// A node's devices by placement type (at most one primary type).
type Composition = Map<PlacementType, int>

module Composition =
    let count (c: Composition) t = c |> Map.tryFind t |> Option.defaultValue 0
    let size (c: Composition) = c |> Map.toSeq |> Seq.sumBy snd

    /// The primary type of the node, if it has primary devices.
    let primary (c: Composition) =
        c |> Map.toList |> List.tryFind (fun (t, n) -> n > 0 && PlacementType.isPrimary t) |> Option.map fst

    /// Devices that must change type to turn `current` into `target`.
    let moves (current: Composition) (target: Composition) =
        PlacementType.all |> List.sumBy (fun t -> max 0 (count current t - count target t))

    let ofTypes (types: PlacementType seq) : Composition =
        types |> Seq.countBy id |> Map.ofSeq

/// Per-stage speeds of each placement type for a mix.
type StageSpeeds =
    { Encode: float
      Diffuse: float
      Decode: float }

module Capacity =
    /// Mix-average device-seconds per request of each stage.
    let stageWork (cost: CostModel) (stats: WorkloadStats) =
        let avg f = stats.Classes |> List.sumBy (fun c -> c.Share * f c)
        let e = avg (fun c -> float (CostModel.encodeTime cost c.Shape))
        let d =
            avg (fun c ->
                let k = CostModel.referenceDegree cost c.Shape
                float (CostModel.diffuseTime cost c.Shape c.Steps k) * float k)
        let dc = avg (fun c -> float (CostModel.decodeTime cost c.Shape))
        { Encode = e; Diffuse = d; Decode = dc }

    /// Requests per second one device of type t adds to each stage.
    let speeds (work: StageSpeeds) (t: PlacementType) : StageSpeeds =
        let holds s = PlacementType.holds s t
        if PlacementType.isPrimary t then
            let time =
                work.Diffuse
                + (if holds Encode then work.Encode else 0.0)
                + (if holds Decode then work.Decode else 0.0)
            let r = if time > 0.0 then 1.0 / time else 0.0
            { Encode = (if holds Encode then r else 0.0); Diffuse = r; Decode = (if holds Decode then r else 0.0) }
        else
            { Encode = (if holds Encode && work.Encode > 0.0 then 1.0 / work.Encode else 0.0)
              Diffuse = 0.0
              Decode = (if holds Decode && work.Decode > 0.0 then 1.0 / work.Decode else 0.0) }

    let private get (s: StageSpeeds) =
        function
        | Encode -> s.Encode
        | Diffuse -> s.Diffuse
        | Decode -> s.Decode

    /// Stage capacities (requests/s) of a set of devices given by their types.
    let ofTypes (work: StageSpeeds) (types: PlacementType seq) : Map<Stage, float> =
        let counts = Seq.countBy id types |> List.ofSeq
        Stage.all
        |> List.map (fun s -> s, counts |> List.sumBy (fun (t, n) -> float n * get (speeds work t) s))
        |> Map.ofList

    /// α: the smallest stage capacity over the arrival rate (capacity itself when the rate is 0).
    let alpha (rate: float) (capacity: Map<Stage, float>) =
        let m = capacity |> Map.toSeq |> Seq.map snd |> Seq.min
        if rate > 0.0 then m / rate else m

    /// Whether devices of type t (with `memory`) can serve class c: a primary type at some admissible
    /// degree no larger than `maxDegree`, an auxiliary type its one stage at degree 1.
    let serves (cost: CostModel) (memory: float<GB>) (maxDegree: int) (t: PlacementType) (c: RequestClass) =
        match CostModel.minDegree cost t c.Shape memory with
        | Some k -> (not (PlacementType.isPrimary t)) || k <= maxDegree
        | None -> false

    /// The smallest degree a class needs on type t (None when it cannot be served there).
    let neededDegree (cost: CostModel) (memory: float<GB>) (t: PlacementType) (c: RequestClass) =
        CostModel.minDegree cost t c.Shape memory

    /// Types whose devices can serve every class of the mix (memory feasibility of the type).
    let feasibleTypes (cost: CostModel) (memory: float<GB>) (nodeSize: int) (stats: WorkloadStats) =
        PlacementType.all
        |> List.filter (fun t -> stats.Classes |> List.forall (serves cost memory nodeSize t))

/// What both placement planners take.
type PlacementInput =
    { Cluster: Cluster
      Cost: CostModel
      Stats: WorkloadStats
      /// the placement in force, if any (moves are counted from it)
      Current: Map<DeviceId, PlacementType> option
      /// wall-clock limit of the MIP solve
      TimeLimit: float<s> }

module PlacementInput =
    /// Smallest device memory of a node.
    let nodeMemory (input: PlacementInput) (n: NodeId) =
        Cluster.devicesOf input.Cluster n |> Array.map (fun d -> (Cluster.device input.Cluster d).Memory) |> Array.min

    /// Current composition of a node (empty when there is no current placement).
    let currentComposition (input: PlacementInput) (n: NodeId) : Composition =
        match input.Current with
        | None -> Map.empty
        | Some cur -> Cluster.devicesOf input.Cluster n |> Seq.choose (fun d -> Map.tryFind d cur) |> Composition.ofTypes

    /// Turns per-node compositions into a device → type map, keeping each device's current type
    /// where the composition allows it (fewest weight moves).
    let assignDevices (input: PlacementInput) (compositions: Map<NodeId, Composition>) =
        [ for n in Cluster.nodes input.Cluster do
              let devices = Cluster.devicesOf input.Cluster n
              let target = compositions.[n]
              if Composition.size target <> devices.Length then
                  failwithf "composition of %O has %d devices, the node has %d" n (Composition.size target) devices.Length
              let remaining = System.Collections.Generic.Dictionary<PlacementType, int>()
              for t in PlacementType.all do
                  remaining.[t] <- Composition.count target t
              let current d = input.Current |> Option.bind (Map.tryFind d)
              // first keep devices whose current type is still wanted
              let kept =
                  [ for d in devices do
                        match current d with
                        | Some t when remaining.[t] > 0 ->
                            remaining.[t] <- remaining.[t] - 1
                            yield d, t
                        | _ -> () ]
              let keptIds = kept |> List.map fst |> Set.ofList
              let rest = devices |> Array.filter (fun d -> not (keptIds.Contains d))
              let fill =
                  [ for t in PlacementType.all do
                        for _ in 1 .. remaining.[t] -> t ]
              yield! kept
              yield! Array.zip rest (Array.ofList fill) ]
        |> Map.ofList

    /// Devices whose type differs from the current placement (0 without one).
    let moves (input: PlacementInput) (types: Map<DeviceId, PlacementType>) =
        match input.Current with
        | None -> 0
        | Some cur -> types |> Map.filter (fun d t -> Map.tryFind d cur <> Some t) |> Map.count

// Design note (class-aware capacity). The stage capacities above treat request classes as
// fungible: a device of a type counts towards every class. Memory makes that false — on 48 GB an
// ⟨EDC⟩ device cannot decode flux 2048² nor hold most hunyuanvideo classes — and a placement
// planned with it can give a third of the cluster to a type that only one small class can use
// (the simulator showed exactly that on hunyuanvideo-reference). The fluid model below routes each
// class only to the types that can hold it:
//   f[c, t] ≥ 0           requests/s of class c served by primary type t (a route exists when t
//                         holds c at some degree ≤ the node size, and the ⟨E⟩/⟨C⟩ devices its VR
//                         needs can hold c too)
//   demand[c]:   Σ_t f[c, t] ≥ α · λ · share_c                 (classes with a route anywhere)
//   primary[t]:  Σ_c f[c, t] · w(c, t) ≤ n_t                   (device-seconds per second)
//   groups[t,k]: Σ_{c: k_min(c, t) ≥ k} f[c, t] · w(c, t) ≤ Σ_n k · ⌊p_n,t / k⌋   (each k_min > 1: a group
//                lives on one node, so classes that need k devices use only the nodes' k-groups; issue 11,
//                measured on cogvideox-reference, whose two largest classes need k = 8)
//   aux[E]:      Σ_{c, t ∌ E} f[c, t] · t_E(c) ≤ ρ · n_E;  aux[C] likewise with t_C
// where w(c, t) = steps · t_D(k) · k + [E ∈ t] · t_E + [C ∈ t] · t_C · h at k = max(k*, the smallest
// degree that fits t), h = k when k > half the node size and 1 otherwise, and
// ρ = AuxiliaryUtilisation (½). The factor h: a group decodes on its lead device after diffuse and
// releases the other k − 1 devices, but while that decode runs the node cannot form another group
// of more than half its devices, so a node-sized group's decode holds the whole node (measured on
// cogvideox-reference, where 768×1360×65/81 must run at k = 8: with decode on the group, 41 % of
// the devices stood idle waiting for nodes to drain; with ⟨C⟩ devices, 14 %). An auxiliary pool is a few one-device
// queues that every request of its VR passes through, and planned at full load it queues for long
// (the simulator showed 2 ⟨C⟩ devices sized for flux's decode work making small requests wait 13 s
// behind the large ones' decodes); auxiliary devices are cheap next to the primaries, so they are
// planned half busy. α is the largest share of the mix's rate the devices sustain. The placement
// MIP uses these constraints over its integer device counts; `FlowCapacity.alpha` solves the LP for
// fixed counts, which is how every placement's α is reported.
//
// Small clusters (docs/policies.md, "Small clusters"). A layout with no ⟨E⟩ (⟨C⟩) device at all runs the
// encode (decode) of a type that lacks it on the diffuse group's lead, which loads the stage's weights
// beside its own (CostModel.leadFits) — as the dispatcher does (Admissible.predictFinish, Assign.route)
// and the stage-level baselines do on one or two devices. Such a *lead* route costs the primary devices
// the stage and its load, w(c, t) += t_E + load_E (t_C · h + load_C), and the auxiliary pool nothing.
// One node of two 48 GB devices needs it for flux 2048²: k = 2 by the degree rules, ⟨EDC⟩ does not fit
// at 2048², and ⟨DC⟩ / ⟨ED⟩ / ⟨D⟩ at k = 2 leave no device for their ⟨E⟩ / ⟨C⟩ — two ⟨DC⟩ whose lead loads
// the text encoders serve it. A fixed layout's routes are lead routes for a stage exactly when it has no
// device of that auxiliary type and some primary type lacking the stage (`completions`); the placement MIP
// offers both kinds only where a class needs them (PlacementMip.leadLoading), gated by whether the layout
// has the auxiliary type.

/// Variables of the class-aware capacity model.
type FlowKey =
    /// requests/s of class (index in the mix) served by a primary type, its lead loading the encoder / decoder or not
    | Route of cls: int * PlacementType * leadEncode: bool * leadDecode: bool
    | FlowAlpha

/// Where a route runs a stage its primary type lacks.
type Completion =
    /// on an auxiliary ⟨E⟩ / ⟨C⟩ device
    | Auxiliary
    /// on the diffuse group's lead, which loads the stage (a layout with no device of that auxiliary type)
    | Lead

/// One way a class can be served: its primary type and the device-seconds per request it costs
/// the primary devices and the auxiliary ⟨E⟩/⟨C⟩ devices.
type FlowRoute =
    { Class: int
      Type: PlacementType
      /// the smallest degree the class fits at on the type: its groups need that many devices of one node
      MinDegree: int
      Primary: float
      AuxEncode: float
      AuxDecode: float
      /// the group's lead runs the encode, loading the encoder (the type lacks E; no ⟨E⟩ device)
      LeadEncode: bool
      /// the group's lead runs the decode, loading the decoder (the type lacks C; no ⟨C⟩ device)
      LeadDecode: bool }

module FlowRoute =
    /// The route's variable in the capacity model.
    let key (r: FlowRoute) = Route(r.Class, r.Type, r.LeadEncode, r.LeadDecode)

module FlowCapacity =
    open Trident.Scheduling.Mip

    /// ρ: the share of an auxiliary pool's time the placement plans to use.
    [<Literal>]
    let AuxiliaryUtilisation = 0.5

    /// The routes of each class on devices of `memory` with groups of at most `maxDegree`, a stage the primary type
    /// lacks run as `encode` / `decode` say (each way it may be: an auxiliary device that holds the stage, or the
    /// group's lead when it can load it; `hostToDevice` prices the load).
    let routesWith
        (cost: CostModel)
        (memory: float<GB>)
        (maxDegree: int)
        (hostToDevice: float<B/s>)
        (encode: Completion list)
        (decode: Completion list)
        (stats: WorkloadStats)
        : FlowRoute list =
        [ for (i, c) in List.indexed stats.Classes do
              for t in PlacementType.primary do
                  match CostModel.minDegree cost t c.Shape memory with
                  | Some lo when lo <= maxDegree ->
                      let k =
                          cost.Degrees
                          |> List.filter (fun k -> k >= max lo (CostModel.referenceDegree cost c.Shape) && k <= maxDegree && CostModel.fits cost t c.Shape k memory)
                          |> List.tryHead
                          |> Option.defaultValue lo
                      let tE = float (CostModel.encodeTime cost c.Shape)
                      let tC = float (CostModel.decodeTime cost c.Shape)
                      let needE = not (PlacementType.holds Encode t)
                      let needC = not (PlacementType.holds Decode t)
                      // the ways this type completes a stage it lacks (one way, unused, when it holds the stage)
                      let ways stage aux need (modes: Completion list) =
                          if not need then [ Auxiliary ]
                          else
                              modes
                              |> List.filter (function
                                  | Auxiliary -> Capacity.serves cost memory maxDegree aux c
                                  | Lead -> CostModel.leadFits cost t stage c.Shape memory)
                      let hold = if 2 * k > maxDegree then float k else 1.0
                      for e in ways Encode E needE encode do
                          for d in ways Decode PlacementType.C needC decode do
                              let leadE = needE && e = Lead
                              let leadC = needC && d = Lead
                              yield
                                  { Class = i
                                    Type = t
                                    MinDegree = lo
                                    Primary =
                                      float (CostModel.diffuseTime cost c.Shape c.Steps k) * float k
                                      + (if not needE then tE
                                         elif leadE then tE + float (CostModel.loadTime cost hostToDevice Encode)
                                         else 0.0)
                                      + (if not needC then tC * hold
                                         elif leadC then tC * hold + float (CostModel.loadTime cost hostToDevice Decode)
                                         else 0.0)
                                    AuxEncode = (if needE && not leadE then tE else 0.0)
                                    AuxDecode = (if needC && not leadC then tC else 0.0)
                                    LeadEncode = leadE
                                    LeadDecode = leadC }
                  | _ -> () ]

    /// The routes of each class on devices of `memory` with groups of at most `maxDegree`, a stage the type lacks
    /// run on an auxiliary device (a layout that has them; `routesWith`).
    let routes (cost: CostModel) (memory: float<GB>) (maxDegree: int) (stats: WorkloadStats) : FlowRoute list =
        // no lead route, so no load to price: the bandwidth is unused
        routesWith cost memory maxDegree 1.0<B/s> [ Auxiliary ] [ Auxiliary ] stats

    /// How a fixed layout (one composition per node) runs the encode and the decode of its primary types that lack
    /// them: on the group's lead when it has no ⟨E⟩ (⟨C⟩) device and some primary type lacking the stage, else on its
    /// auxiliary devices — as the dispatcher does.
    let completions (nodes: Composition list) : Completion * Completion =
        let has t = nodes |> List.exists (fun c -> Composition.count c t > 0)
        let lacking stage =
            nodes |> List.exists (Map.exists (fun t n -> n > 0 && PlacementType.isPrimary t && not (PlacementType.holds stage t)))
        (if not (has E) && lacking Encode then Lead else Auxiliary), (if not (has PlacementType.C) && lacking Decode then Lead else Auxiliary)

    /// The routes a fixed layout offers: every primary type's (a type the layout lacks gets no devices), the stages a
    /// type lacks run as `completions` says.
    let routesOf (cost: CostModel) (memory: float<GB>) (maxDegree: int) (hostToDevice: float<B/s>) (stats: WorkloadStats) (nodes: Composition list) =
        let e, d = completions nodes
        routesWith cost memory maxDegree hostToDevice [ e ] [ d ] stats

    /// Devices of type t that groups of k devices can use in a layout (one composition per node):
    /// Σ_n k · ⌊count_n(t) / k⌋ — a group is on one node.
    let groupDevices (nodes: Composition list) (t: PlacementType) (k: int) =
        nodes |> List.sumBy (fun c -> k * (Composition.count c t / k))

    /// The model's constraints over device counts given as expressions of the caller's variables
    /// (`count t`, and `groups t k`: the devices of type t that k-groups can use, see `groupDevices`),
    /// with the flow variables and α mapped into the caller's keys.
    let constraints
        (stats: WorkloadStats)
        (routes: FlowRoute list)
        (count: PlacementType -> LinExpr<'K>)
        (groups: PlacementType -> int -> LinExpr<'K>)
        (flow: FlowRoute -> 'K)
        (alpha: 'K)
        : (ConstraintName * Constraint<'K>) list =
        let rate = if stats.ArrivalRate > 0.0 then stats.ArrivalRate else 1.0
        let served = routes |> List.map _.Class |> Set.ofList
        let f (r: FlowRoute) = flow r
        [ for (i, c) in List.indexed stats.Classes do
              if served.Contains i then
                  yield
                      ConstraintName.create "demand" [ "class", string i; "shape", string c.Shape ],
                      LinExpr.ofTerms [ for r in routes do
                                            if r.Class = i then yield f r, 1.0 ]
                      - (rate * c.Share) * LinExpr.var alpha
                      >== 0.0
          for t in PlacementType.primary do
              let rs = routes |> List.filter (fun r -> r.Type = t)
              if not rs.IsEmpty then
                  yield
                      ConstraintName.create "primary" [ "type", PlacementType.name t ],
                      LinExpr.ofTerms [ for r in rs -> f r, r.Primary ] - count t <== 0.0
                  // whole groups: the work of classes that need groups of ≥ k devices fits the devices
                  // that k-groups can use (degrees divide one another, so groups of k or more use
                  // multiples of k of a node; with other degree sets this still holds for each k)
                  for k in rs |> List.map _.MinDegree |> List.filter (fun k -> k > 1) |> List.distinct |> List.sort do
                      yield
                          ConstraintName.create "groups" [ "type", PlacementType.name t; "degree", string k ],
                          LinExpr.ofTerms [ for r in rs do
                                                if r.MinDegree >= k then yield f r, r.Primary ]
                          - groups t k
                          <== 0.0
          for (aux, work) in [ E, (fun (r: FlowRoute) -> r.AuxEncode); PlacementType.C, (fun (r: FlowRoute) -> r.AuxDecode) ] do
              let rs = routes |> List.filter (fun r -> work r > 0.0)
              if not rs.IsEmpty then
                  yield
                      ConstraintName.create "auxiliary-time" [ "type", PlacementType.name aux ],
                      LinExpr.ofTerms [ for r in rs -> f r, work r ] - AuxiliaryUtilisation * count aux <== 0.0 ]

    /// Name of a route's variable in a model ("f_c<class>_<type>", "+E" / "+C" for a stage its lead loads).
    let varName (cls: int) (t: PlacementType) (leadE: bool) (leadC: bool) =
        sprintf "f_c%d_%A%s%s" cls t (if leadE then "+E" else "") (if leadC then "+C" else "")

    /// α of a fixed layout (one composition per node) over the given routes — the largest share of the mix's rate
    /// it sustains (an LP) — with the flows that achieve it, by route key. None when no class has a route, or the
    /// solve fails.
    let solveRoutes (stats: WorkloadStats) (routes: FlowRoute list) (nodes: Composition list) =
        if routes.IsEmpty then None
        else
            let count t = LinExpr.constant (float (nodes |> List.sumBy (fun c -> Composition.count c t)))
            let groups t k = LinExpr.constant (float (groupDevices nodes t k))
            let m =
                Model.empty
                |> Model.withVarNames (function
                    | Route(c, t, le, lc) -> varName c t le lc
                    | FlowAlpha -> "alpha")
                |> Model.addVar (Var.continuous 0.0 1e6 FlowAlpha)
                |> Model.addVars [ for r in routes -> Var.continuous 0.0 infinity (FlowRoute.key r) ]
                |> Model.addConstraints (constraints stats routes count groups FlowRoute.key FlowAlpha)
                |> Model.maximize "alpha" (LinExpr.var FlowAlpha)
            let result = Mip.solve (SolveSettings.create 2.0<s>) m
            if result.HasSolution then
                Some(result.Value FlowAlpha, routes |> List.map (fun r -> r, result.Value(FlowRoute.key r)))
            else None

    /// α of a fixed layout (one composition per node) with the routes it offers (`routesOf`: a stage a type lacks on
    /// the layout's auxiliary devices, or on the group's lead where it has none) and the flows that achieve it.
    let solve (cost: CostModel) (memory: float<GB>) (maxDegree: int) (hostToDevice: float<B/s>) (stats: WorkloadStats) (nodes: Composition list) =
        solveRoutes stats (routesOf cost memory maxDegree hostToDevice stats nodes) nodes

    /// α of a fixed layout (see `solve`).
    let alpha (cost: CostModel) (memory: float<GB>) (maxDegree: int) (hostToDevice: float<B/s>) (stats: WorkloadStats) (nodes: Composition list) : float option =
        solve cost memory maxDegree hostToDevice stats nodes |> Option.map fst

    /// The share of the mix a fixed layout can serve at all: the classes with a route (`routesOf`) on a primary type
    /// of the layout whose smallest degree fits one node's devices of that type.
    let servedShare (cost: CostModel) (memory: float<GB>) (maxDegree: int) (hostToDevice: float<B/s>) (stats: WorkloadStats) (nodes: Composition list) =
        let largest t = nodes |> List.fold (fun acc c -> max acc (Composition.count c t)) 0
        let servedClasses =
            routesOf cost memory maxDegree hostToDevice stats nodes
            |> List.filter (fun r -> r.MinDegree <= largest r.Type)
            |> List.map _.Class
            |> Set.ofList
        stats.Classes |> List.indexed |> List.sumBy (fun (i, c) -> if servedClasses.Contains i then c.Share else 0.0)

    /// The routes of the classes some placement of the input's cluster can serve (CostModel.unservableOn). A class no
    /// placement can serve — its group and the devices for the stages its type lacks do not fit the cluster, as
    /// 129-frame 720p hunyuanvideo on one node of eight — gets no demand row, as a class with no route at all:
    /// otherwise it holds α at 0 for every layout, and the placement MIP has nothing to choose by. When no class of
    /// the mix is servable, the routes stay as they are (α is 0 whatever the layout; the model still places D).
    let servableOn (input: PlacementInput) (routes: FlowRoute list) =
        let servable =
            input.Stats.Classes |> List.map (fun c -> (CostModel.unservableOn input.Cost input.Cluster c.Shape).IsNone) |> Array.ofList
        if Array.forall id servable || not (Array.exists id servable) then routes
        else routes |> List.filter (fun r -> servable.[r.Class])

    /// α of a placement input's cluster for a layout (one composition per node): the class-aware α over the classes
    /// some placement of the cluster can serve (`servableOn`), or the stage-capacity α when no class has a route (or
    /// the LP fails).
    let alphaForLayout (input: PlacementInput) (nodes: Composition list) =
        let memory = Cluster.nodes input.Cluster |> List.map (PlacementInput.nodeMemory input) |> List.min
        let maxDegree = Cluster.nodes input.Cluster |> List.map (fun n -> (Cluster.devicesOf input.Cluster n).Length) |> List.max
        let routes = routesOf input.Cost memory maxDegree input.Cluster.Bandwidths.HostToDevice input.Stats nodes |> servableOn input
        match solveRoutes input.Stats routes nodes |> Option.map fst with
        | Some a -> a
        | None ->
            let types = nodes |> Seq.collect (fun c -> c |> Map.toSeq |> Seq.collect (fun (t, n) -> Seq.replicate n t))
            Capacity.alpha input.Stats.ArrivalRate (Capacity.ofTypes (Capacity.stageWork input.Cost input.Stats) types)

    /// α of a placement input's cluster for a device → type map (`alphaForLayout` over its nodes). A device
    /// the map does not name (one that joined after the placement was made) counts as no device.
    let alphaFor (input: PlacementInput) (types: Map<DeviceId, PlacementType>) =
        Cluster.nodes input.Cluster
        |> List.map (fun n -> Cluster.devicesOf input.Cluster n |> Seq.choose (fun d -> Map.tryFind d types) |> Composition.ofTypes)
        |> alphaForLayout input
