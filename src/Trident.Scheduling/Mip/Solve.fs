namespace Trident.Scheduling.Mip

// Design note
// -----------
// Public entry point (defined at the end of OrTools.fs, which comes last in compile order because
// it holds the native backends):
//
//     Mip.solve : SolveSettings<'K> -> Model<'K> -> SolveResult<'K>
//
// It never throws for a bad model or a solver failure: every result is a `SolveOutcome`, and
// anything but `Optimal` or `Feasible` is the caller's cue to fall back (e.g. to a greedy plan).
// The solver is a value of the settings (`Backend`: SCIP, CBC, HiGHS or CP-SAT, all from Google
// OR-Tools); every solve builds and disposes its own solver objects, so solves run concurrently.
//
// This file holds the settings and result types and the pure orchestration around one native
// single-objective solve (a "stage"):
//   1. validate the model and settings (→ Failed with every problem listed);
//   2. decide constant constraints (no variables) here: a violated one makes the model Infeasible
//      without calling a solver, a satisfied one is dropped;
//   3. a model without variables is solved here (its objectives are constants);
//   4. otherwise solve the objectives lexicographically: stage i optimises objective i subject to
//      every earlier objective j being within tolerance of the value it reached
//      (`lexicographic[objective=<name>]` rows), starting from the previous stage's solution;
//   5. solvers do not always tell "infeasible" from "unbounded": CBC reports "relaxation
//      unbounded" for integer-infeasible models with an unbounded relaxation, and SCIP and HiGHS
//      report "infeasible" for unbounded integer models whose presolve ends in "infeasible or
//      unbounded". So an unbounded or infeasible report on the first stage of a model with an
//      objective is confirmed by a feasibility solve (no objective): feasible → Unbounded,
//      infeasible → Infeasible, undecided → Failed. Branch and bound cannot always decide:
//      2x − 2y = 1 over unbounded integers runs to the limit.
//
// Time: `TimeLimit` is split evenly over the stages and handed to the solver as its own limit
// (nothing here reads a clock), so the total stays within the limit up to the solver's overshoot;
// the feasibility check of step 5 gets the budget of one stage on top.

open Trident.Scheduling

/// The solver behind a solve (all from Google OR-Tools 9.15).
type Backend =
    /// SCIP 10 through OR-Tools' linear solver wrapper.
    | Scip
    /// COIN-OR CBC 2.10 through OR-Tools' linear solver wrapper.
    | Cbc
    /// HiGHS 1.12 through OR-Tools' linear solver wrapper (no MIP start: see OrTools.fs).
    | Highs
    /// CP-SAT, for pure integer models (integer variables with finite bounds, coefficients that
    /// become integers when scaled by a power of ten up to 10^6); any other model is solved by
    /// SCIP instead, and the result's `Backend` says so.
    | CpSat

/// Names and the default of the backends.
[<RequireQualifiedAccess>]
module Backend =
    /// Every backend.
    let all = [ Scip; Cbc; Highs; CpSat ]

    /// The lower-case name used on the command line and in reports ("scip", "cbc", "highs", "cp-sat").
    let name (b: Backend) =
        match b with
        | Scip -> "scip"
        | Cbc -> "cbc"
        | Highs -> "highs"
        | CpSat -> "cp-sat"

    /// The backend of a name (case-insensitive; "cpsat" and "sat" also mean CP-SAT).
    let tryParse (text: string) : Backend option =
        match text.Trim().ToLowerInvariant() with
        | "scip" -> Some Scip
        | "cbc" -> Some Cbc
        | "highs" -> Some Highs
        | "cp-sat" | "cpsat" | "sat" -> Some CpSat
        | _ -> None

    /// The default of placement and of any solve that names none: SCIP, the backend that proved the
    /// most placement models optimal within their limit (README, "Measured").
    let defaultBackend = Scip

    /// The default of the dispatch round: SCIP (without presolve, as dispatch rounds solve), the backend
    /// with the lowest p99 round time and mean solve time on `trident bench dispatch` on a quiet machine
    /// (2026-12-01, all backends on the same snapshots: 128 devices × 256 waiting p50 / p99 6.2 / 14.2 ms,
    /// CBC 4.6 / 17.0; 512 × 1000 13.5 / 21.0 ms, CBC 11.9 / 35.1; mean solve 1.9 / 2.4 ms, CBC 3.4 / 5.6;
    /// every round solved and proven optimal; README, "Measured").
    let defaultDispatchBackend = Scip

/// Why the solver stopped before proving optimality.
type StopReason =
    /// The time limit was reached.
    | TimeLimit
    /// The relative gap limit was reached.
    | GapLimit
    /// The node limit was reached.
    | NodeLimit
    /// Anything else (solution limit, numerical difficulties, …), described.
    | Other of string

/// Every way a solve can end.
type SolveOutcome =
    /// A solution proven optimal (for every objective, in lexicographic order).
    | Optimal
    /// A feasible solution with relative gap `gap` = |value − bound| / max(|value|, 1e-10)
    /// (the largest over the stages), and why the search stopped.
    | Feasible of gap: float * stoppedBy: StopReason
    /// No solution exists.
    | Infeasible
    /// The objective is unbounded over the feasible set.
    | Unbounded
    /// No usable answer (invalid model, solver error, no solution within the limits…), described.
    | Failed of string

/// How to solve. Build with `SolveSettings.create timeLimit` and `with` the rest.
type SolveSettings<'K when 'K: comparison> =
    {
        /// Wall-clock limit for the whole solve (all lexicographic stages). Required; > 0.
        TimeLimit: float<s>
        /// Stop when the relative gap is at most this (0 = prove optimality).
        RelativeGap: float
        /// The solver.
        Backend: Backend
        /// Solver threads (CP-SAT workers); 1 = a serial search.
        Threads: int
        /// Optional starting solution by key for the first objective (later objectives start
        /// from the previous one's solution), given to the solver as a hint; variables missing
        /// from it are completed by the solver. HiGHS gets no hint (see OrTools.fs).
        MipStart: Map<'K, float> option
        /// Lexicographic slack: objective i may lose ObjectiveTolerance·max(1, |value_i|) while
        /// later objectives are optimised.
        ObjectiveTolerance: float
        /// Whether the solver presolves the model (MPSolverParameters' PRESOLVE for SCIP, HiGHS and
        /// CBC — CBC's OR-Tools interface ignores it —, `cp_model_presolve` for CP-SAT). On by default;
        /// off for a model so small that presolving costs more than it saves (the dispatch round).
        Presolve: bool
    }

/// Builders for settings.
[<RequireQualifiedAccess>]
module SolveSettings =
    /// Settings with the given time limit, the default backend, gap 0, 1 thread, no MIP start,
    /// tolerance 1e-6, presolve on.
    let create (timeLimit: float<s>) : SolveSettings<'K> =
        { TimeLimit = timeLimit
          RelativeGap = 0.0
          Backend = Backend.defaultBackend
          Threads = 1
          MipStart = None
          ObjectiveTolerance = 1e-6
          Presolve = true }

/// The value reached by one objective and the best bound known for it.
type ObjectiveResult =
    {
        /// The objective's name.
        Name: string
        /// Its sense.
        Sense: Sense
        /// Its value at the returned solution (constant included).
        Value: float
        /// The solver's bound on it, given the earlier objectives: the value itself when its stage
        /// was proven optimal (a solver's own bound can be stale then), ±infinity when unknown.
        BestBound: float
    }

/// The result of a solve.
type SolveResult<'K when 'K: comparison> =
    {
        /// How the solve ended.
        Outcome: SolveOutcome
        /// One entry per objective, in priority order; empty unless Optimal or Feasible.
        Objectives: ObjectiveResult list
        /// Value of every declared variable, as the solver returned it; empty unless Optimal or
        /// Feasible.
        Values: Map<'K, float>
        /// Declared kinds of the variables, so that `Value` can round integers.
        Kinds: Map<'K, VarKind>
        /// Time the solver reported for its solves (summed over stages); for reporting only.
        SolveTime: float<s>
        /// The backend that solved the model: the settings' one, or SCIP when CP-SAT was asked
        /// for a model that is not pure integer.
        Backend: Backend
    }

    /// True when the outcome carries a solution (Optimal or Feasible).
    member r.HasSolution =
        match r.Outcome with
        | Optimal
        | Feasible _ -> true
        | _ -> false

    /// The value of a variable, rounded to the nearest integer for Binary and Integer variables.
    /// Throws `KeyNotFoundException` when there is no solution or the key was not declared.
    member r.Value(key: 'K) : float =
        let v = r.Values[key]

        match Map.tryFind key r.Kinds with
        | Some kind when Var.isIntegral kind -> System.Math.Round v
        | _ -> v

    /// `Value` as an option (None when there is no solution or the key was not declared).
    member r.TryValue(key: 'K) : float option =
        if r.Values.ContainsKey key then Some(r.Value key) else None

    /// An expression evaluated at the solution (integers rounded, see `Value`).
    member r.Evaluate(e: LinExpr<'K>) : float =
        LinExpr.evaluate (fun k -> r.Value k) e

/// One single-objective solve handed to the native backend.
type internal StageRequest<'K when 'K: comparison> =
    { Model: Model<'K>
      Objective: Objective<'K> option
      TimeLimit: float<s>
      RelativeGap: float
      Backend: Backend
      Threads: int
      Start: Map<'K, float> option
      Presolve: bool }

/// What one stage returned. `Objective` and `BestBound` include the objective's constant.
type internal StageResult<'K when 'K: comparison> =
    { Outcome: SolveOutcome
      Values: Map<'K, float>
      Objective: float
      BestBound: float
      Time: float<s>
      /// the backend that solved the stage (see `SolveResult.Backend`)
      Backend: Backend }

/// The pure orchestration around a stage solver.
module internal Solve =
    /// Absolute tolerance for constraints without variables (decided here, not by the solver).
    let constantTolerance = 1e-9

    /// |value − bound| / max(|value|, 1e-10); 0 when they are equal (also for equal infinities).
    let relativeGap (value: float) (bound: float) : float =
        if value = bound then 0.0 else abs (value - bound) / max (abs value) 1e-10

    let private failed (model: Model<'K>) (backend: Backend) (message: string) : SolveResult<'K> =
        { Outcome = Failed message
          Objectives = []
          Values = Map.empty
          Kinds = model.Variables
          SolveTime = 0.0<s>
          Backend = backend }

    let private noSolution (model: Model<'K>) (backend: Backend) (outcome: SolveOutcome) (time: float<s>) : SolveResult<'K> =
        { Outcome = outcome
          Objectives = []
          Values = Map.empty
          Kinds = model.Variables
          SolveTime = time
          Backend = backend }

    let private checkSettings (model: Model<'K>) (settings: SolveSettings<'K>) : string list =
        [ if not (System.Double.IsFinite(float settings.TimeLimit) && settings.TimeLimit > 0.0<s>) then
              sprintf "TimeLimit must be a positive number of seconds, not %g" (float settings.TimeLimit)
          if not (settings.RelativeGap >= 0.0) then
              sprintf "RelativeGap must be >= 0, not %g" settings.RelativeGap
          if settings.Threads < 1 then
              sprintf "Threads must be >= 1, not %d" settings.Threads
          if not (settings.ObjectiveTolerance >= 0.0) then
              sprintf "ObjectiveTolerance must be >= 0, not %g" settings.ObjectiveTolerance
          match settings.MipStart with
          | Some start ->
              for KeyValue(k, v) in start do
                  if not (model.Variables.ContainsKey k) then
                      sprintf "MipStart names variable %A, which is not declared" k
                  if not (System.Double.IsFinite v) then
                      sprintf "MipStart value of %A is %g" k v
          | None -> () ]

    /// Values with integer variables rounded (what callers read through `SolveResult.Value`).
    let private rounded (kinds: Map<'K, VarKind>) (values: Map<'K, float>) : 'K -> float =
        fun k ->
            match Map.tryFind k values with
            | Some v ->
                match Map.tryFind k kinds with
                | Some kind when Var.isIntegral kind -> System.Math.Round v
                | _ -> v
            | None -> 0.0

    /// The row that keeps objective `o` within tolerance of `value` in later stages.
    let private fixObjective (tolerance: float) (o: Objective<'K>) (value: float) : NamedConstraint<'K> =
        let slack = tolerance * max 1.0 (abs value)

        { Name = ConstraintName.create "lexicographic" [ "objective", o.Name ]
          Constraint =
            match o.Sense with
            | Maximize -> o.Expr >== value - slack
            | Minimize -> o.Expr <== value + slack }

    /// Runs a model through `stage` (the native single-objective solver); see the design note.
    let run (stage: StageRequest<'K> -> StageResult<'K>) (settings: SolveSettings<'K>) (model: Model<'K>) : SolveResult<'K> =
        match Model.validate model @ checkSettings model settings with
        | _ :: _ as errors -> failed model settings.Backend ("invalid model or settings: " + String.concat "; " errors)
        | [] ->
            let constant, rows = model.Constraints |> List.partition (fun nc -> nc.Constraint.Terms.IsEmpty)

            let violated =
                constant
                |> List.filter (fun nc -> not (Constraint.isSatisfied constantTolerance (fun _ -> 0.0) nc.Constraint))

            if not violated.IsEmpty then
                noSolution model settings.Backend Infeasible 0.0<s>
            elif model.Variables.IsEmpty then
                { Outcome = Optimal
                  Objectives =
                    model.Objectives
                    |> List.map (fun o ->
                        { Name = o.Name
                          Sense = o.Sense
                          Value = o.Expr.Constant
                          BestBound = o.Expr.Constant })
                  Values = Map.empty
                  Kinds = model.Variables
                  SolveTime = 0.0<s>
                  Backend = settings.Backend }
            else
                let baseModel = model |> Model.filterConstraints (fun nc -> not nc.Constraint.Terms.IsEmpty)
                let objectives = model.Objectives
                let stageCount = max 1 objectives.Length
                let perStage = settings.TimeLimit / float stageCount
                let kinds = model.Variables

                let request (m: Model<'K>) (objective: Objective<'K> option) (start: Map<'K, float> option) =
                    { Model = m
                      Objective = objective
                      TimeLimit = perStage
                      RelativeGap = settings.RelativeGap
                      Backend = settings.Backend
                      Threads = settings.Threads
                      Presolve = settings.Presolve
                      Start = start }

                /// Stage results so far (newest first) and the time spent.
                let finish (solved: (Objective<'K> option * StageResult<'K>) list) (stopped: StopReason option) (time: float<s>) : SolveResult<'K> =
                    let last = snd solved.Head
                    let value = rounded kinds last.Values
                    let bounds = solved |> List.choose (fun (o, r) -> o |> Option.map (fun o -> o.Name, r.BestBound)) |> Map.ofList

                    let stageOutcomes = solved |> List.rev |> List.map (fun (_, r) -> r.Outcome)

                    let gaps =
                        stageOutcomes
                        |> List.choose (function
                            | Feasible(g, _) -> Some g
                            | _ -> None)

                    let firstReason =
                        stageOutcomes
                        |> List.tryPick (function
                            | Feasible(_, why) -> Some why
                            | _ -> None)

                    let outcome =
                        match stopped, firstReason with
                        // An objective whose stage did not complete has no bound: infinite gap.
                        | Some why, _ -> Feasible(infinity, why)
                        | None, Some why -> Feasible(List.fold max 0.0 gaps, why)
                        | None, None -> Optimal

                    { Outcome = outcome
                      Objectives =
                        objectives
                        |> List.map (fun o ->
                            { Name = o.Name
                              Sense = o.Sense
                              Value = LinExpr.evaluate value o.Expr
                              BestBound =
                                match Map.tryFind o.Name bounds with
                                | Some b -> b
                                | None -> if o.Sense = Maximize then infinity else -infinity })
                      Values = last.Values
                      Kinds = kinds
                      SolveTime = time
                      Backend = last.Backend }

                let rec loop (stageModel: Model<'K>) (remaining: Objective<'K> option list) solved (time: float<s>) =
                    match remaining with
                    | [] -> finish solved None time
                    | objective :: rest ->
                        let start =
                            match solved with
                            | [] -> settings.MipStart
                            | (_, previous) :: _ -> Some previous.Values

                        let r = stage (request stageModel objective start)
                        let time = time + r.Time

                        match r.Outcome, solved with
                        | (Optimal | Feasible _), _ ->
                            let next =
                                match objective with
                                | Some o ->
                                    let v = LinExpr.evaluate (rounded kinds r.Values) o.Expr
                                    let fix = fixObjective settings.ObjectiveTolerance o v
                                    stageModel |> Model.addConstraint fix.Name fix.Constraint
                                | None -> stageModel

                            loop next rest ((objective, r) :: solved) time
                        | (Unbounded | Infeasible), [] when objective.IsSome ->
                            // Confirm with a feasibility solve (see the design note, step 5).
                            let check = stage (request stageModel None None)
                            let time = time + check.Time

                            match check.Outcome with
                            | Optimal
                            | Feasible _ -> noSolution model r.Backend Unbounded time
                            | Infeasible -> noSolution model r.Backend Infeasible time
                            | Unbounded -> noSolution model r.Backend (Failed "the solver reported an unbounded feasibility problem") time
                            | Failed why ->
                                noSolution model r.Backend (Failed(sprintf "the solver reported %A and the feasibility check failed: %s" r.Outcome why)) time
                        | Unbounded, _ :: _ -> noSolution model r.Backend Unbounded time
                        | (Unbounded | Infeasible | Failed _), [] -> noSolution model r.Backend r.Outcome time
                        | (Infeasible | Failed _), _ :: _ ->
                            // A later stage lost the earlier stages' solution (numerics or limits):
                            // keep that solution and say why the order was not completed.
                            let name = objective |> Option.map (fun o -> o.Name) |> Option.defaultValue "?"
                            finish solved (Some(Other(sprintf "objective %s: %A" name r.Outcome))) time

                let stages =
                    match objectives with
                    | [] -> [ None ]
                    | os -> os |> List.map Some

                loop (baseModel |> Model.withObjectives []) stages [] 0.0<s>
