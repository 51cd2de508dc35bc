namespace Trident.Scheduling.Mip

// Design note
// -----------
// The only impure part of the MIP layer: one stage (one objective) is solved by Google OR-Tools
// 9.15 (`Google.OrTools` package, native `google-ortools-native.so` beside the managed dll).
// SCIP, CBC and HiGHS go through the linear solver wrapper (`Solver.CreateSolver`), CP-SAT through
// `CpModel`/`CpSolver`. Facts this code relies on, checked against that build:
//   * Every stage solves on its own solver object: separate objects solve correctly in parallel, so
//     there is no lock and solves run concurrently. A SCIP object costs ≈ 1 ms to create and ≈ 1.4 ms to
//     free (measured 2026-12-01 on this 2-core machine: create / clear / dispose 0.75–1.08 / 1.2 / 1.4 ms;
//     CBC 0.02 ms each) — a third of a 128-device dispatch round (≈ 6.4 ms). So the linear solvers come
//     from `Instances`: a stage takes a solver created ahead (or creates one), a background work item
//     creates the next, and the used one is freed on the thread pool — neither on the caller's path.
//     A solver made ahead is as fresh as one made now: every setting of a stage (time limit, threads,
//     hints, parameters) is set on it by the stage itself.
//   * The solvers get positional names (`c<i>` for the i-th variable in key order, `r<i>` for the
//     i-th constraint): the LP names of Model.fs cost `sprintf "%A"` per key. `toMpsText` uses the
//     LP names, in the same column and row order.
//   * The relative MIP gap is always set: MPSolverParameters' default is 1e-4, under which SCIP
//     stops early and still says OPTIMAL. A solve that stops on a positive `RelativeGap` is
//     reported as Feasible(gap, GapLimit).
//   * SCIP and HiGHS report INFEASIBLE for an unbounded integer model whose presolve ends in
//     "infeasible or unbounded", and CBC reports UNBOUNDED for an integer-infeasible model with an
//     unbounded relaxation: Solve.fs confirms both with a feasibility solve.
//   * MIP starts are hints (`Solver.SetHint`, `CpModel.AddHint`). HiGHS gets none: `SetHint` on a
//     HiGHS solver crashes the process (SIGSEGV) in 9.15.
//   * Silence: `SuppressOutput` for every linear solver; HiGHS still prints its "Running HiGHS"
//     banner to stdout unless its own `output_flag=false` is set (`SetSolverSpecificParameters…`
//     returns false for it, yet the banner is gone). CP-SAT logs nothing by default.
//   * CP-SAT needs integers: a model is handed to it when every variable is integral with finite
//     bounds (|bound| ≤ 1e9) and every row and the objective become integral when multiplied by a
//     power of ten up to 10^6 (each scaled separately; a scaled inequality's right-hand side is
//     rounded inwards, which is exact because its left-hand side is an integer). Any other model is
//     solved by SCIP instead and the result's Backend says so.
//   * HiGHS through this wrapper drops its incumbent when its time limit stops it: the status is
//     99 (unknown) and no solution is returned, so a HiGHS solve that hits the limit is Failed.
//   * Reported times are the solvers' own wall times (no clock is read here): the difference of
//     `WallTime()` (which runs from the object's creation) before the model is built and after the
//     solve, so that a solver created ahead does not count its wait.

open System
open System.Globalization
open Google.OrTools.LinearSolver
open Google.OrTools.Sat
open Trident.Scheduling

/// Solving one stage with OR-Tools.
module internal OrTools =
    type private LinearSolver = Google.OrTools.LinearSolver.Solver

    /// OR-Tools' id of a linear-solver backend.
    let private linearId (b: Backend) =
        match b with
        | Scip -> "SCIP"
        | Cbc -> "CBC"
        | Highs -> "HIGHS"
        | CpSat -> "CP-SAT"

    let private noSolution (backend: Backend) (outcome: SolveOutcome) (time: float<s>) : StageResult<'K> =
        { Outcome = outcome
          Values = Map.empty
          Objective = nan
          BestBound = nan
          Time = time
          Backend = backend }

    /// A solution found: optimal when the solver proved it (and the requested gap is 0 or closed), otherwise
    /// feasible with its gap, stopped by the gap limit (proved within it) or by the time limit.
    let private solved backend (request: StageRequest<'K>) proved values (value: float) (bound: float) time : StageResult<'K> =
        let gap = Solve.relativeGap value bound
        let outcome =
            if proved && (request.RelativeGap = 0.0 || gap <= 1e-9) then Optimal
            elif proved then Feasible(gap, GapLimit)
            else Feasible(gap, TimeLimit)
        { Outcome = outcome
          Values = values
          Objective = value
          BestBound = (if outcome = Optimal then value else bound)
          Time = time
          Backend = backend }

    /// Milliseconds for `SetTimeLimit` (at least 1: 0 would mean "no limit").
    let private milliseconds (t: float<s>) = max 1L (int64 (ceil (float t * 1000.0)))

    /// A linear solver that prints nothing (null when OR-Tools lacks the backend).
    let private createLinear (backend: Backend) : LinearSolver =
        let solver = LinearSolver.CreateSolver(linearId backend)

        if not (isNull solver) then
            solver.SuppressOutput()

            if backend = Highs then
                solver.SetSolverSpecificParametersAsString "output_flag=false" |> ignore

        solver

    /// Linear solvers made ahead and freed behind (design note): at most one spare per backend, created on
    /// the thread pool after a stage takes one; a used solver is disposed on the thread pool. The spares
    /// left at process exit are disposed then.
    module private Instances =
        let private spares = Collections.Concurrent.ConcurrentDictionary<Backend, Collections.Concurrent.ConcurrentQueue<LinearSolver>>()

        let private queueOf (backend: Backend) =
            spares.GetOrAdd(backend, fun _ -> Collections.Concurrent.ConcurrentQueue<LinearSolver>())

        let private disposeAll () =
            for q in spares.Values do
                let mutable s = Unchecked.defaultof<LinearSolver>
                while q.TryDequeue(&s) do
                    try s.Dispose() with _ -> ()

        do AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> disposeAll ())

        // an exception on a thread-pool thread would end the process: a spare that cannot be made is simply not
        // there (the next stage makes its solver itself and meets the error there), a solver that cannot be freed
        // is left to its finalizer
        let private background (work: unit -> unit) =
            Threading.ThreadPool.QueueUserWorkItem(fun _ -> try work () with _ -> ()) |> ignore

        let private refill (backend: Backend) =
            background (fun () ->
                let q = queueOf backend
                if q.IsEmpty then
                    let s = createLinear backend
                    if not (isNull s) then
                        // two stages may both refill at once: keep one spare, free the other
                        if q.IsEmpty then q.Enqueue s else s.Dispose())

        /// A fresh solver of the backend (null when OR-Tools lacks it); the next one is made on the thread pool.
        let take (backend: Backend) : LinearSolver =
            let mutable s = Unchecked.defaultof<LinearSolver>
            let solver = if (queueOf backend).TryDequeue(&s) then s else createLinear backend
            if not (isNull solver) then refill backend
            solver

        /// Frees a used solver on the thread pool.
        let release (solver: LinearSolver) =
            if not (isNull solver) then background solver.Dispose

    /// Adds the model's columns and rows (in key and insertion order) and the objective.
    let private build
        (solver: LinearSolver)
        (model: Model<'K>)
        (objective: Objective<'K> option)
        (columnName: int -> 'K -> string)
        (rowName: int -> NamedConstraint<'K> -> string)
        : Variable[] =
        let columns = Map.toArray model.Variables
        let index = Collections.Generic.Dictionary<'K, int>(HashIdentity.Structural)

        let vars =
            columns
            |> Array.mapi (fun i (k, kind) ->
                index[k] <- i
                let lo, hi = Var.bounds kind
                solver.MakeVar(lo, hi, Var.isIntegral kind, columnName i k))

        model.Constraints
        |> List.iteri (fun i nc ->
            let c = nc.Constraint

            let lo, hi =
                match c.Relation with
                | LessOrEqual -> -infinity, c.Rhs
                | GreaterOrEqual -> c.Rhs, infinity
                | Equal -> c.Rhs, c.Rhs

            let row = solver.MakeConstraint(lo, hi, rowName i nc)

            for KeyValue(k, coef) in c.Terms do
                row.SetCoefficient(vars[index[k]], coef))

        let o = solver.Objective()

        match objective with
        | Some objective ->
            for KeyValue(k, coef) in objective.Expr.Terms do
                o.SetCoefficient(vars[index[k]], coef)

            o.SetOffset objective.Expr.Constant
            o.SetOptimizationDirection(objective.Sense = Maximize)
        | None -> o.SetMinimization()

        vars

    let private positionalColumn (i: int) (_: 'K) = "c" + string i
    let private positionalRow (i: int) (_: NamedConstraint<'K>) = "r" + string i

    /// One stage with SCIP, CBC or HiGHS.
    let private solveLinear (backend: Backend) (request: StageRequest<'K>) : StageResult<'K> =
        let solver = Instances.take backend

        if isNull solver then
            noSolution backend (Failed(sprintf "OR-Tools has no %s solver" (linearId backend))) 0.0<s>
        else
          try
            // the solver's own clock runs from its creation: this stage's time is the difference
            let started = solver.WallTime()
            let model = request.Model
            let vars = build solver model request.Objective positionalColumn positionalRow
            let keys = model.Variables |> Map.keys |> Array.ofSeq

            if request.Threads > 1 then solver.SetNumThreads request.Threads |> ignore
            solver.SetTimeLimit(milliseconds request.TimeLimit)

            match request.Start with
            | Some start when backend <> Highs && not start.IsEmpty ->
                let hinted = keys |> Array.indexed |> Array.filter (fun (_, k) -> start.ContainsKey k)
                use hintVars = new MPVariableVector(hinted |> Array.map (fun (i, _) -> vars[i]))
                solver.SetHint(hintVars, hinted |> Array.map (fun (_, k) -> start[k]))
            | _ -> ()

            use parameters = new MPSolverParameters()
            parameters.SetDoubleParam(MPSolverParameters.DoubleParam.RELATIVE_MIP_GAP, request.RelativeGap)
            if not request.Presolve && backend <> Cbc then // OR-Tools' CBC interface rejects PRESOLVE (it logs every solve)
                parameters.SetIntegerParam(MPSolverParameters.IntegerParam.PRESOLVE, int MPSolverParameters.PresolveValues.PRESOLVE_OFF)
            let status = solver.Solve parameters
            let time = float (solver.WallTime() - started) / 1000.0 * 1.0<s>

            match status with
            | LinearSolver.ResultStatus.OPTIMAL
            | LinearSolver.ResultStatus.FEASIBLE ->
                let o = solver.Objective()
                let value = o.Value()
                let values = keys |> Array.mapi (fun i k -> k, vars[i].SolutionValue()) |> Map.ofArray
                let optimal = status = LinearSolver.ResultStatus.OPTIMAL
                // BestBound is a MIP notion; a linear program solved to optimality is its own bound.
                let bound = if solver.IsMip() && request.Objective.IsSome then o.BestBound() else value
                solved backend request optimal values value bound time
            | LinearSolver.ResultStatus.INFEASIBLE -> noSolution backend Infeasible time
            | LinearSolver.ResultStatus.UNBOUNDED -> noSolution backend Unbounded time
            | LinearSolver.ResultStatus.MODEL_INVALID -> noSolution backend (Failed(sprintf "%s: the model is invalid" (Backend.name backend))) time
            | LinearSolver.ResultStatus.ABNORMAL -> noSolution backend (Failed(sprintf "%s stopped abnormally" (Backend.name backend))) time
            | other ->
                // NOT_SOLVED, or 99 (unknown: HiGHS stopped by its time limit without a solution)
                noSolution
                    backend
                    (Failed(
                        sprintf
                            "%s found no feasible solution within the time limit of %g s (status %d)"
                            (Backend.name backend)
                            (float request.TimeLimit)
                            (int other)
                    ))
                    time
          finally
            Instances.release solver

    // ---- CP-SAT --------------------------------------------------------------------------------

    /// Largest bound and scaled coefficient handed to CP-SAT (keeps every row far from int64 overflow).
    let private cpMagnitude = 1e9

    let private powersOfTen = [| 1.0; 10.0; 100.0; 1e3; 1e4; 1e5; 1e6 |]

    let private isIntegral (x: float) = abs (x - Math.Round x) <= 1e-9 * max 1.0 (abs x)

    /// The smallest power of ten (≤ 10^6) that makes every number integral.
    let private scaleOf (xs: float seq) : float option =
        powersOfTen |> Array.tryFind (fun s -> xs |> Seq.forall (fun x -> isIntegral (x * s)))

    type private CpTranslation =
        { Model: CpModel
          Vars: IntVar[]
          /// the objective was multiplied by this
          Scale: float }

    /// The stage as a CP-SAT model, or why it is not a pure integer model.
    let private toCpSat (request: StageRequest<'K>) : Result<CpTranslation, string> =
        let columns = Map.toArray request.Model.Variables

        let notInteger =
            columns
            |> Array.tryPick (fun (k, kind) ->
                let lo, hi = Var.bounds kind

                if not (Var.isIntegral kind) then Some(sprintf "variable %A is continuous" k)
                elif not (abs lo <= cpMagnitude && abs hi <= cpMagnitude) then Some(sprintf "variable %A has a bound beyond ±1e9" k)
                else None)

        let rowScales =
            request.Model.Constraints
            |> List.map (fun nc -> nc, scaleOf (Map.values nc.Constraint.Terms))

        let objectiveScale =
            match request.Objective with
            | Some o -> scaleOf (Map.values o.Expr.Terms)
            | None -> Some 1.0

        let badRow =
            rowScales
            |> List.tryPick (fun (nc, scale) ->
                match scale with
                | None -> Some(sprintf "constraint %s has a coefficient that no power of ten up to 10^6 makes integral" nc.Name.Display)
                | Some s ->
                    let c = nc.Constraint

                    if c.Terms |> Map.exists (fun _ coef -> abs (coef * s) > cpMagnitude) then
                        Some(sprintf "constraint %s has a coefficient beyond ±1e9 once scaled" nc.Name.Display)
                    elif abs (c.Rhs * s) > 1e15 then
                        Some(sprintf "constraint %s has a right-hand side beyond ±1e15 once scaled" nc.Name.Display)
                    elif c.Relation = Equal && not (isIntegral (c.Rhs * s)) then
                        Some(sprintf "constraint %s is an equality with a right-hand side that is not integral once scaled" nc.Name.Display)
                    else
                        None)

        match notInteger, badRow, objectiveScale with
        | Some why, _, _
        | None, Some why, _ -> Error why
        | None, None, None -> Error "the objective has a coefficient that no power of ten up to 10^6 makes integral"
        | None, None, Some objScale ->
            let model = CpModel()
            let index = Collections.Generic.Dictionary<'K, int>(HashIdentity.Structural)

            let vars =
                columns
                |> Array.mapi (fun i (k, kind) ->
                    index[k] <- i
                    let lo, hi = Var.bounds kind
                    model.NewIntVar(int64 (ceil (lo - 1e-9)), int64 (floor (hi + 1e-9)), "c" + string i))

            let expression (terms: Map<'K, float>) (scale: float) =
                let b = LinearExpr.NewBuilder(terms.Count)

                for KeyValue(k, coef) in terms do
                    b.AddTerm(vars[index[k]] :> LinearExpr, int64 (Math.Round(coef * scale))) |> ignore

                b

            for nc, scale in rowScales do
                let s = scale.Value
                let c = nc.Constraint
                let rhs = c.Rhs * s
                // an integer left-hand side: round the bound inwards (within the tolerance of isIntegral)
                let down = int64 (floor (rhs + 1e-9 * max 1.0 (abs rhs)))
                let up = int64 (ceil (rhs - 1e-9 * max 1.0 (abs rhs)))

                let lo, hi =
                    match c.Relation with
                    | LessOrEqual -> Int64.MinValue, down
                    | GreaterOrEqual -> up, Int64.MaxValue
                    | Equal -> up, down

                model.AddLinearConstraint(expression c.Terms s, lo, hi) |> ignore

            match request.Objective with
            | Some o ->
                let e = expression o.Expr.Terms objScale
                if o.Sense = Maximize then model.Maximize e else model.Minimize e
            | None -> ()

            match request.Start with
            | Some start ->
                columns
                |> Array.iteri (fun i (k, kind) ->
                    match Map.tryFind k start with
                    | Some v ->
                        let lo, hi = Var.bounds kind
                        model.AddHint(vars[i], int64 (Math.Round(Math.Clamp(v, lo, hi))))
                    | None -> ())
            | None -> ()

            match model.Validate() with
            | "" -> Ok { Model = model; Vars = vars; Scale = objScale }
            | why -> Error("CP-SAT rejects the model: " + why)

    let private text (x: float) = x.ToString("R", CultureInfo.InvariantCulture)

    /// One stage with CP-SAT (a pure integer model, see `toCpSat`).
    let private solveCpSat (request: StageRequest<'K>) (t: CpTranslation) : StageResult<'K> =
        use solver = new CpSolver()

        solver.StringParameters <-
            sprintf
                "max_time_in_seconds:%s num_workers:%d relative_gap_limit:%s cp_model_presolve:%b"
                (text (float request.TimeLimit))
                request.Threads
                (text request.RelativeGap)
                request.Presolve

        let status = solver.Solve(t.Model, null)
        let time = solver.WallTime() * 1.0<s>
        let constant = request.Objective |> Option.map (fun o -> o.Expr.Constant) |> Option.defaultValue 0.0

        match status with
        | CpSolverStatus.Optimal
        | CpSolverStatus.Feasible ->
            let keys = request.Model.Variables |> Map.keys |> Array.ofSeq
            let values = keys |> Array.mapi (fun i k -> k, float (solver.Value t.Vars[i])) |> Map.ofArray

            let value, bound =
                match request.Objective with
                | Some _ -> solver.ObjectiveValue / t.Scale + constant, solver.BestObjectiveBound / t.Scale + constant
                | None -> constant, constant

            solved CpSat request (status = CpSolverStatus.Optimal) values value bound time
        | CpSolverStatus.Infeasible -> noSolution CpSat Infeasible time
        | CpSolverStatus.Unknown ->
            noSolution CpSat (Failed(sprintf "cp-sat found no feasible solution within the time limit of %g s" (float request.TimeLimit))) time
        | other -> noSolution CpSat (Failed(sprintf "cp-sat: %A" other)) time

    /// Solves one stage with the request's backend (CP-SAT hands a model that is not pure integer
    /// to SCIP). Managed exceptions (library missing, marshalling) become `Failed`; a crash inside
    /// a native solver cannot be caught and would end the process.
    let solveStage (request: StageRequest<'K>) : StageResult<'K> =
        try
            match request.Backend with
            | CpSat ->
                match toCpSat request with
                | Ok t -> solveCpSat request t
                | Error _ -> solveLinear Scip request
            | linear -> solveLinear linear request
        with
        | :? DllNotFoundException as e ->
            noSolution request.Backend (Failed($"the OR-Tools native library could not be loaded (google-ortools-native.so beside Google.OrTools.dll): {e.Message}")) 0.0<s>
        | :? TypeInitializationException as e ->
            noSolution request.Backend (Failed($"OR-Tools could not be initialised: {e.InnerException.Message}")) 0.0<s>
        | e -> noSolution request.Backend (Failed($"OR-Tools call failed: {e.GetType().Name}: {e.Message}")) 0.0<s>

    /// The model in free MPS format, written by OR-Tools' exporter with the LP names of
    /// `Model.lpNames` (first objective only, its constant as the objective offset).
    let toMpsText (model: Model<'K>) : string =
        use solver = createLinear Scip
        let names = Model.lpNames model
        let objective = List.tryHead model.Objectives
        build solver model objective (fun _ k -> names.Vars[k]) (fun i _ -> names.Rows[i]) |> ignore
        solver.ExportModelAsMpsFormat(false, false)

/// What a backend made of an MPS text: whether it read it, the size it read and the optimal value
/// of its objective (objective offset included), if proven.
type MpsCheck =
    { Read: bool
      Columns: int
      Rows: int
      Objective: float option }

/// The public entry point of the MIP layer (documented at the top of Solve.fs).
[<RequireQualifiedAccess>]
module Mip =
    /// Solves `model` with the settings' backend: objectives lexicographically, every outcome
    /// named (never throws for a bad model or a solver failure). Thread-safe without a lock: every
    /// solve has its own solver objects.
    let solve (settings: SolveSettings<'K>) (model: Model<'K>) : SolveResult<'K> = Solve.run OrTools.solveStage settings model

    /// The model as free MPS text (OR-Tools' exporter, LP names; first objective only). OR-Tools'
    /// C# wrapper reads MPS but not CPLEX LP text (its LP reader takes its own lp_solve-like
    /// dialect), so MPS is the format to hand a model to a second backend.
    let toMpsText (model: Model<'K>) : string = OrTools.toMpsText model

    /// Reads MPS text with OR-Tools' model builder and solves it with `backend` under `timeLimit`:
    /// for checking exported models with a backend other than the one that built them.
    let solveMpsText (backend: Backend) (timeLimit: float<s>) (mps: string) : MpsCheck =
        let model = Google.OrTools.ModelBuilder.Model()
        let read = model.ImportFromMpsString mps

        let objective =
            if not read then
                None
            else
                let solver =
                    Google.OrTools.ModelBuilder.Solver(
                        match backend with
                        | Scip -> "scip"
                        | Cbc -> "cbc"
                        | Highs -> "highs"
                        | CpSat -> "sat"
                    )

                solver.EnableOutput false
                if backend = Highs then solver.SetSolverSpecificParameters "output_flag=false"
                solver.SetTimeLimitInSeconds(float timeLimit)

                match solver.Solve model with
                | Google.OrTools.ModelBuilder.SolveStatus.OPTIMAL -> Some solver.ObjectiveValue
                | _ -> None

        { Read = read
          Columns = model.VariablesCount()
          Rows = model.ConstraintsCount()
          Objective = objective }
