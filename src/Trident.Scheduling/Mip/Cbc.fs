namespace Trident.Scheduling.Mip

// Design note
// -----------
// The only impure part of the MIP layer: one stage (one objective) is solved by CBC 2.10.8 through
// its C interface in `libCbcSolver.so.3` (Debian package coinor-libcbc3). Facts this code relies
// on, checked against that build:
//   * CBC is not thread-safe: every native call happens under one process-wide lock.
//   * A model's setters are invalid after Cbc_solve, so a fresh native model is built per stage
//     and deleted in `finally`.
//   * A NULL name crashes (strcpy), so every column and row gets a name; CBC is given positional
//     names (`c<i>` for the i-th variable in key order, `r<i>` for the i-th constraint), not the
//     key-derived LP names of Model.fs: the default `sprintf "%A"` costs about 0.15–0.35 ms per
//     key, i.e. 0.3–0.7 s for a 2,025-variable assignment model that CBC solves in 0.03–0.07 s. The MIP start is
//     passed by these names. LP text (on request) carries the readable names; the columns and
//     rows are in the same order, so the two describe the same problem.
//   * Cbc_addRow aborts the process on a sense other than L/G/E (no free rows).
//   * With no integer column, Cbc_solve bypasses CbcMain (plain Clp): parameters such as the time
//     limit are ignored and status/secondaryStatus stay −1, and isProvenInfeasible is also true
//     for an unbounded LP. A fixed integer column (bounds [0,0]) is therefore added to pure LPs,
//     so every model goes through CbcMain and reports statuses the same way.
//   * A model with no columns reports "abandoned" (handled before we get here, in Solve.fs); one
//     with no rows solves correctly, but an empty row `0 <= 0` is added anyway, as a guard for
//     preprocessing paths we have not exercised.
//   * The time limit counts CPU seconds unless timeMode is "elapsed"; Cbc_setMaximumSeconds is
//     honoured by CbcMain, but not to the millisecond: 0.05 s ran 0.05–0.06 s, while 1 s ran
//     1.34 s and 2 s ran 2.31 s on a 300×15 multi-knapsack (nodes are not interrupted).
//   * `threads` is passed only when more than one thread is asked for, so that the default stays
//     CBC's serial search (threads ≥ 1 selects CbcModel's threaded code path).
//   * A MIP start is not free: under a 0.05 s limit the 300×15 multi-knapsack ended 9.9 % from
//     its bound when started from a greedy solution, but 1.0 % without a start (CBC spends part of
//     the budget completing and checking the start). It is still the way to guarantee a solution.
//   * Log level 0 plus the "log 0" parameter keeps CBC silent on stdout.
//   * CBC is always handed a minimisation (a Maximize objective is negated, and so are the value
//     and bound read back): with Cbc_setObjSense(−1) and a MIP start, CBC 2.10.8 derives its
//     cutoff with the wrong sign and returns the start as "proven optimal" (status 0, secondary
//     status 1) with a bound better than the value.
//   * The bound (getBestPossibleObjValue) is not a certificate: when CBC proves optimality with a
//     cutoff (integer objective steps, or an incumbent no node can beat), it can leave the bound
//     at the root relaxation, several objective steps away from the optimum it just proved. The
//     status decides the outcome, and an Optimal stage reports its value as its bound. A missing
//     value reads as ±DBL_MAX or 1e50.
//   * Stopping on the gap reports status 0 with isProvenOptimal = 1 and secondary status 2.

open System
open System.Collections.Generic
open System.Diagnostics
open System.Globalization
open System.Runtime.InteropServices
open Trident.Scheduling

/// P/Invoke declarations for the CBC C interface (signatures from Cbc_C_Interface.h, 2.10.8).
module internal CbcNative =
    [<Literal>]
    let Library = "libCbcSolver.so.3"

    [<DllImport(Library)>]
    extern nativeint Cbc_newModel()

    [<DllImport(Library)>]
    extern void Cbc_deleteModel(nativeint model)

    [<DllImport(Library)>]
    extern void Cbc_addCol(nativeint model, string name, double lb, double ub, double obj, byte isInteger, int nz, int[] rows, double[] coefs)

    [<DllImport(Library)>]
    extern void Cbc_addRow(nativeint model, string name, int nz, int[] cols, double[] coefs, byte sense, double rhs)

    [<DllImport(Library)>]
    extern void Cbc_setObjSense(nativeint model, double sense)

    [<DllImport(Library)>]
    extern void Cbc_setParameter(nativeint model, string name, string value)

    [<DllImport(Library)>]
    extern void Cbc_setMaximumSeconds(nativeint model, double maxSeconds)

    [<DllImport(Library)>]
    extern void Cbc_setLogLevel(nativeint model, int logLevel)

    [<DllImport(Library)>]
    extern void Cbc_setMIPStart(nativeint model, int count, string[] colNames, double[] colValues)

    [<DllImport(Library)>]
    extern int Cbc_solve(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_status(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_secondaryStatus(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_isProvenOptimal(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_isProvenInfeasible(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_isContinuousUnbounded(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_isAbandoned(nativeint model)

    [<DllImport(Library)>]
    extern nativeint Cbc_bestSolution(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_getNumCols(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_getNumRows(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_getNumIntegers(nativeint model)

    [<DllImport(Library)>]
    extern nativeint Cbc_getColSolution(nativeint model)

    [<DllImport(Library)>]
    extern double Cbc_getObjValue(nativeint model)

    [<DllImport(Library)>]
    extern double Cbc_getBestPossibleObjValue(nativeint model)

    [<DllImport(Library)>]
    extern int Cbc_readLp(nativeint model, string filename)

/// Solving one stage with CBC.
module internal Cbc =
    open CbcNative

    /// The one lock every CBC call goes through (CBC is not thread-safe).
    let private gate = obj ()

    /// CBC's infinity.
    let private cbcInfinity = Double.MaxValue

    let private toCbc (x: float) =
        if Double.IsPositiveInfinity x then cbcInfinity
        elif Double.IsNegativeInfinity x then -cbcInfinity
        else x

    /// CBC reports "no value" as ±DBL_MAX (or 1e50 for a missing incumbent): map to ±infinity.
    let private ofCbc (x: float) =
        if x >= 1e50 then infinity
        elif x <= -1e50 then -infinity
        else x

    let private text (x: float) = x.ToString("R", CultureInfo.InvariantCulture)

    /// Name of the fixed integer column added to pure LPs (see the design note).
    let private lpDummyName = "lp_as_mip"

    /// CBC's name for the i-th column (variables in key order).
    let private columnName (i: int) = "c" + string i

    let private senseByte (r: Relation) =
        match r with
        | LessOrEqual -> byte 'L'
        | GreaterOrEqual -> byte 'G'
        | Equal -> byte 'E'

    /// Maps CBC's status words to an outcome (`gap` from the objective value and bound).
    let private classify (m: nativeint) (hasSolution: bool) (gap: float) (timeLimit: float<s>) : SolveOutcome =
        let status = Cbc_status m
        let secondary = Cbc_secondaryStatus m

        if Cbc_isContinuousUnbounded m <> 0 || secondary = 7 then
            Unbounded
        elif Cbc_isProvenInfeasible m <> 0 || (secondary = 1 && not hasSolution) then
            Infeasible
        elif hasSolution then
            match status, secondary with
            | 0, 2 when gap > 1e-9 -> Feasible(gap, GapLimit)
            | 0, _ when Cbc_isProvenOptimal m <> 0 -> Optimal
            | _, 2 -> Feasible(gap, GapLimit)
            | _, 3 -> Feasible(gap, NodeLimit)
            | _, 4 -> Feasible(gap, TimeLimit)
            | _, 5 -> Feasible(gap, Other "stopped on a user event")
            | _, 6 -> Feasible(gap, Other "stopped on the solution limit")
            | _, 8 -> Feasible(gap, Other "stopped on the iteration limit")
            | 2, _ -> Feasible(gap, Other "abandoned after numerical difficulties")
            | _ -> Feasible(gap, Other(sprintf "CBC status %d, secondary status %d" status secondary))
        else
            match status, secondary with
            | _, 4 -> Failed(sprintf "time limit of %g s reached before any feasible solution was found" (float timeLimit))
            | _, 3 -> Failed "node limit reached before any feasible solution was found"
            | 2, _ -> Failed "CBC abandoned the solve after numerical difficulties"
            | _ when Cbc_isAbandoned m <> 0 -> Failed "CBC abandoned the solve after numerical difficulties"
            | _ -> Failed(sprintf "no solution and unknown CBC status %d, secondary status %d" status secondary)

    let private solveLocked (request: StageRequest<'K>) : StageResult<'K> =
        let model = request.Model
        let columns = model.Variables |> Map.toArray
        let index = Dictionary<'K, int>(HashIdentity.Structural)
        columns |> Array.iteri (fun i (k, _) -> index[k] <- i)

        let objectiveTerms, sense, constant =
            match request.Objective with
            | Some o -> o.Expr.Terms, o.Sense, o.Expr.Constant
            | None -> Map.empty, Minimize, 0.0

        // CBC minimises `direction · objective` (see the design note on maximisation).
        let direction = if sense = Maximize then -1.0 else 1.0
        let sw = Stopwatch.StartNew()
        let m = Cbc_newModel ()

        if m = 0n then
            { Outcome = Failed "Cbc_newModel returned NULL"
              Values = Map.empty
              Objective = nan
              BestBound = nan
              Time = 0.0<s> }
        else
            try
                Cbc_setLogLevel(m, 0)
                Cbc_setParameter(m, "log", "0")
                Cbc_setParameter(m, "timeMode", "elapsed")
                if request.Threads > 1 then Cbc_setParameter(m, "threads", string request.Threads)
                Cbc_setParameter(m, "ratioGap", text request.RelativeGap)
                Cbc_setMaximumSeconds(m, float request.TimeLimit)

                let mutable integers = 0

                for i, (k, kind) in Array.indexed columns do
                    let lo, hi = Var.bounds kind
                    let obj = direction * (objectiveTerms |> Map.tryFind k |> Option.defaultValue 0.0)
                    let isInt = Var.isIntegral kind
                    if isInt then integers <- integers + 1
                    Cbc_addCol(m, columnName i, toCbc lo, toCbc hi, obj, (if isInt then 1uy else 0uy), 0, null, null)

                if integers = 0 then
                    Cbc_addCol(m, lpDummyName, 0.0, 0.0, 0.0, 1uy, 0, null, null)

                model.Constraints
                |> List.iteri (fun i nc ->
                    let c = nc.Constraint
                    let cols = Array.zeroCreate c.Terms.Count
                    let coefs = Array.zeroCreate c.Terms.Count
                    let mutable j = 0

                    for KeyValue(k, coef) in c.Terms do
                        cols[j] <- index[k]
                        coefs[j] <- coef
                        j <- j + 1

                    Cbc_addRow(m, "r" + string i, cols.Length, cols, coefs, senseByte c.Relation, c.Rhs))

                if model.Constraints.IsEmpty then
                    Cbc_addRow(m, "~empty", 0, [||], [||], byte 'L', 0.0)

                Cbc_setObjSense(m, 1.0)

                match request.Start with
                | Some start when not start.IsEmpty ->
                    // CBC 2.10.8 looks MIP-start columns up by name in the *preprocessed* model and
                    // can abort ("Illegal index … in ClpModel::getColumnName"): no preprocessing then
                    Cbc_setParameter(m, "preprocess", "off")
                    let entries = start |> Map.toArray
                    Cbc_setMIPStart(m, entries.Length, entries |> Array.map (fun (k, _) -> columnName index[k]), Array.map snd entries)
                | _ -> ()

                Cbc_solve m |> ignore

                let hasSolution = Cbc_bestSolution m <> 0n
                let values =
                    if hasSolution then
                        let n = Cbc_getNumCols m
                        let p = Cbc_getColSolution m
                        if p = 0n || n < columns.Length then
                            None
                        else
                            let xs = Array.zeroCreate<float> n
                            Marshal.Copy(p, xs, 0, n)
                            Some(columns |> Array.mapi (fun i (k, _) -> k, xs[i]) |> Map.ofArray)
                    else
                        None

                let value = if hasSolution then direction * ofCbc (Cbc_getObjValue m) + constant else nan
                let cbcBound = direction * ofCbc (Cbc_getBestPossibleObjValue m) + constant

                let outcome =
                    match classify m hasSolution (Solve.relativeGap value cbcBound) request.TimeLimit, values with
                    | (Optimal | Feasible _), None -> Failed "CBC reported a solution but returned no column values"
                    | outcome, _ -> outcome

                let bound = if outcome = Optimal then value else cbcBound

                sw.Stop()

                { Outcome = outcome
                  Values = (match outcome with Optimal | Feasible _ -> values |> Option.defaultValue Map.empty | _ -> Map.empty)
                  Objective = value
                  BestBound = bound
                  Time = sw.Elapsed.TotalSeconds * 1.0<s> }
            finally
                Cbc_deleteModel m

    /// Solves one stage under the process-wide CBC lock. Managed exceptions from the binding
    /// (library missing, entry point missing, marshalling) become `Failed`; a crash inside CBC
    /// itself cannot be caught and would end the process.
    let solveStage (request: StageRequest<'K>) : StageResult<'K> =
        try
            lock gate (fun () -> solveLocked request)
        with
        | :? DllNotFoundException as e ->
            { Outcome = Failed($"{Library} could not be loaded (install the Debian package coinor-libcbc3): {e.Message}")
              Values = Map.empty
              Objective = nan
              BestBound = nan
              Time = 0.0<s> }
        | e ->
            { Outcome = Failed($"CBC call failed: {e.GetType().Name}: {e.Message}")
              Values = Map.empty
              Objective = nan
              BestBound = nan
              Time = 0.0<s> }

    /// What CBC's own LP reader made of an LP file: its size (dummy columns excluded) and the
    /// optimal value of its objective, if any. For checking `Model.toLpText` output.
    type LpFileCheck =
        { ReadStatus: int
          Columns: int
          Rows: int
          Integers: int
          Objective: float option }

    /// Reads an LP file with CBC (Cbc_readLp) and solves it with `timeLimit`.
    let checkLpFile (path: string) (timeLimit: float<s>) : LpFileCheck =
        lock gate (fun () ->
            let m = Cbc_newModel ()

            try
                Cbc_setLogLevel(m, 0)
                Cbc_setParameter(m, "log", "0")
                Cbc_setParameter(m, "timeMode", "elapsed")
                Cbc_setMaximumSeconds(m, float timeLimit)
                let read = Cbc_readLp(m, path)
                let cols, rows, ints = Cbc_getNumCols m, Cbc_getNumRows m, Cbc_getNumIntegers m
                Cbc_solve m |> ignore
                let optimal = Cbc_isProvenOptimal m <> 0

                { ReadStatus = read
                  Columns = cols
                  Rows = rows
                  Integers = ints
                  Objective = if optimal then Some(Cbc_getObjValue m) else None }
            finally
                Cbc_deleteModel m)

/// The public entry point of the MIP layer (documented at the top of Solve.fs).
[<RequireQualifiedAccess>]
module Mip =
    /// Solves `model` with CBC under `settings`: objectives lexicographically, every outcome
    /// named (never throws for a bad model or a solver failure). Thread-safe: concurrent calls
    /// are serialised behind one process-wide lock.
    let solve (settings: SolveSettings<'K>) (model: Model<'K>) : SolveResult<'K> = Solve.run Cbc.solveStage settings model
