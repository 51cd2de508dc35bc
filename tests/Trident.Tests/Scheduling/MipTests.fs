/// Models solved through the MIP layer (Mip/Model.fs, Mip/Solve.fs, Mip/OrTools.fs) with every
/// backend: known optima, brute force, every outcome, limits, lexicographic objectives, LP and MPS
/// text, concurrency and bounds. Each backend runs every solving test (`backendTests`); the tests
/// that do not solve run once.
module Trident.Tests.Scheduling.MipTests

open System
open System.IO
open System.Runtime.InteropServices
open System.Text.RegularExpressions
open System.Threading
open Expecto
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Scheduling.Mip
open Trident.Tests.TestSupport

/// Decision keys used by the test models.
type Key =
    | Item of int
    | Assign of worker: int * job: int
    | V of string

/// Explicit float tolerance: |a − b| ≤ tol·max(1, |a|, |b|).
let private close (tol: float) (a: float) (b: float) = abs (a - b) <= tol * max 1.0 (max (abs a) (abs b))

let private tol = 1e-6

let private settingsFor (backend: Backend) : SolveSettings<Key> =
    { SolveSettings.create 10.0<s> with Backend = backend }

let private objective (r: SolveResult<Key>) = r.Objectives.Head.Value

let private isOptimal (r: SolveResult<Key>) = r.Outcome = Optimal

/// Every constraint of `model` holds at the result's (rounded) values.
let private satisfiesAll (model: Model<Key>) (r: SolveResult<Key>) =
    model.Constraints |> List.forall (fun nc -> Constraint.isSatisfied tol r.Value nc.Constraint)

// ---- knapsack ---------------------------------------------------------------------------

type Knapsack =
    { Values: int[]
      Weights: int[]
      Capacity: int }

let private knapsackModel (k: Knapsack) =
    let x i = LinExpr.var (Item i)
    let n = k.Values.Length

    Model.empty
    |> Model.addVars [ for i in 0 .. n - 1 -> Var.binary (Item i) ]
    |> Model.addConstraint
        (ConstraintName.single "capacity")
        (LinExpr.sum [ for i in 0 .. n - 1 -> float k.Weights[i] * x i ] <== float k.Capacity)
    |> Model.maximize "value" (LinExpr.sum [ for i in 0 .. n - 1 -> float k.Values[i] * x i ])

let private subsets n = seq { 0 .. (1 <<< n) - 1 }
let private chosen (mask: int) i = mask &&& (1 <<< i) <> 0

let private total (weights: int[]) mask =
    weights |> Array.indexed |> Array.sumBy (fun (i, w) -> if chosen mask i then w else 0)

let private bruteForceKnapsack (k: Knapsack) =
    subsets k.Values.Length
    |> Seq.filter (fun mask -> total k.Weights mask <= k.Capacity)
    |> Seq.map (total k.Values)
    |> Seq.max

let private genKnapsack: Gen<Knapsack> =
    gen {
        let! n = Gen.choose (1, 10)
        let! values = Gen.arrayOfLength n (Gen.choose (1, 50))
        let! weights = Gen.arrayOfLength n (Gen.choose (1, 30))
        let! capacity = Gen.choose (0, Array.sum weights)

        return
            { Values = values
              Weights = weights
              Capacity = capacity }
    }

/// Smaller instances: one item fewer (capacity kept within the remaining weight) or half the capacity.
let private shrinkKnapsack (k: Knapsack) : seq<Knapsack> =
    seq {
        let n = k.Values.Length

        if n > 1 then
            for i in 0 .. n - 1 do
                let weights = Array.removeAt i k.Weights

                yield
                    { Values = Array.removeAt i k.Values
                      Weights = weights
                      Capacity = min k.Capacity (Array.sum weights) }

        if k.Capacity > 0 then
            yield { k with Capacity = k.Capacity / 2 }
    }

let private arbKnapsack = Arb.fromGenShrink (genKnapsack, shrinkKnapsack)

let private knownKnapsack (b: Backend) =
    testCase "a 0/1 knapsack reaches its known optimum" <| fun () ->
        // Instance P01 of Burkardt's knapsack_01 set: optimum 309 with items 1, 2, 3, 4 and 6.
        let k =
            { Values = [| 92; 57; 49; 68; 60; 43; 67; 84; 87; 72 |]
              Weights = [| 23; 31; 29; 44; 53; 38; 63; 85; 89; 82 |]
              Capacity = 165 }

        let r = Mip.solve (settingsFor b) (knapsackModel k)
        Expect.equal r.Outcome Optimal "outcome"
        Expect.floatClose Accuracy.medium (objective r) 309.0 "objective"
        let picked = [ for i in 0..9 do if r.Value(Item i) = 1.0 then i ]
        Expect.equal picked [ 0; 1; 2; 3; 5 ] "items picked"
        Expect.equal r.Backend b "the backend asked for solved it (a pure integer model)"

let private bruteForce (b: Backend) =
    testProp 100 "a knapsack optimum equals the brute-force optimum" <| fun () ->
        Prop.forAll arbKnapsack (fun k ->
            let model = knapsackModel k
            let r = Mip.solve (settingsFor b) model
            let best = float (bruteForceKnapsack k)

            (isOptimal r |> Prop.label (sprintf "outcome %A" r.Outcome))
            .&. (close tol best (objective r) |> Prop.label (sprintf "objective %g, brute force %g" (objective r) best))
            .&. (satisfiesAll model r |> Prop.label "solution satisfies the capacity")
            .&. (close tol (objective r) (r.Evaluate(model.Objectives.Head.Expr)) |> Prop.label "reported value is the solution's")
            |> Prop.classify (k.Capacity = 0) "empty knapsack"
            |> Prop.classify (k.Capacity >= Array.sum k.Weights) "everything fits")

/// Presolve off (as the dispatch round solves) changes the work, never the optimum.
let private withoutPresolve (b: Backend) =
    testProp 50 "without presolve a knapsack optimum still equals the brute-force optimum" <| fun () ->
        Prop.forAll arbKnapsack (fun k ->
            let model = knapsackModel k
            let r = Mip.solve { settingsFor b with Presolve = false } model
            let best = float (bruteForceKnapsack k)
            (isOptimal r |> Prop.label (sprintf "outcome %A" r.Outcome))
            .&. (close tol best (objective r) |> Prop.label (sprintf "objective %g, brute force %g" (objective r) best))
            .&. (satisfiesAll model r |> Prop.label "solution satisfies the capacity"))

// ---- assignment -------------------------------------------------------------------------

let rec private permutations (xs: int list) : int list list =
    match xs with
    | [] -> [ [] ]
    | _ -> [ for x in xs do for rest in permutations (List.filter ((<>) x) xs) -> x :: rest ]

let private assignmentModel (cost: int[,]) =
    let n = Array2D.length1 cost
    let x i j = LinExpr.var (Assign(i, j))

    Model.empty
    |> Model.addVars [ for i in 0 .. n - 1 do for j in 0 .. n - 1 -> Var.binary (Assign(i, j)) ]
    |> Model.addConstraints [ for i in 0 .. n - 1 -> ConstraintName.create "worker" [ "i", string i ], LinExpr.sum [ for j in 0 .. n - 1 -> x i j ] === 1.0 ]
    |> Model.addConstraints [ for j in 0 .. n - 1 -> ConstraintName.create "job" [ "j", string j ], LinExpr.sum [ for i in 0 .. n - 1 -> x i j ] === 1.0 ]
    |> Model.minimize "cost" (LinExpr.sum [ for i in 0 .. n - 1 do for j in 0 .. n - 1 -> float cost[i, j] * x i j ])

let private genCosts: Gen<int[,]> =
    gen {
        let! n = Gen.choose (1, 6)
        let! cells = Gen.arrayOfLength (n * n) (Gen.choose (0, 20))
        return Array2D.init n n (fun i j -> cells[i * n + j])
    }

/// Smaller cost matrices: one worker and one job fewer.
let private shrinkCosts (cost: int[,]) : seq<int[,]> =
    let n = Array2D.length1 cost

    seq {
        if n > 1 then
            for k in 0 .. n - 1 ->
                Array2D.init (n - 1) (n - 1) (fun i j -> cost[(if i < k then i else i + 1), (if j < k then j else j + 1)])
    }

let private assignment (b: Backend) =
    testProp 100 "an assignment optimum equals the best permutation" <| fun () ->
        Prop.forAll (Arb.fromGenShrink (genCosts, shrinkCosts)) (fun cost ->
            let n = Array2D.length1 cost
            let r = Mip.solve (settingsFor b) (assignmentModel cost)

            let best =
                permutations [ 0 .. n - 1 ]
                |> List.map (fun p -> p |> List.indexed |> List.sumBy (fun (i, j) -> cost[i, j]))
                |> List.min

            let jobsOf i = [ for j in 0 .. n - 1 do if r.Value(Assign(i, j)) = 1.0 then j ]
            let assigned = [ for i in 0 .. n - 1 -> jobsOf i ]

            (isOptimal r |> Prop.label (sprintf "outcome %A" r.Outcome))
            .&. (close tol (float best) (objective r) |> Prop.label (sprintf "objective %g, best %d" (objective r) best))
            .&. (assigned |> List.forall (fun js -> js.Length = 1) |> Prop.label "one job per worker")
            .&. (assigned |> List.concat |> List.distinct |> List.length = n |> Prop.label "every job taken once"))

// ---- outcomes ---------------------------------------------------------------------------

let private x = LinExpr.var (V "x")
let private y = LinExpr.var (V "y")

let private outcomeTests (b: Backend) =
    let settings = settingsFor b

    [ testCase "a model whose constraints contradict each other is infeasible" <| fun () ->
          let model =
              Model.empty
              |> Model.addVars [ Var.binary (V "x"); Var.binary (V "y") ]
              |> Model.addConstraint (ConstraintName.single "too_much") (x + y >== 3.0)
              |> Model.maximize "value" (x + y)

          Expect.equal (Mip.solve settings model).Outcome Infeasible "outcome"

      testCase "an infeasible linear program is infeasible" <| fun () ->
          let model =
              Model.empty
              |> Model.addVars [ Var.continuous 0.0 1.0 (V "x"); Var.continuous 0.0 1.0 (V "y") ]
              |> Model.addConstraint (ConstraintName.single "too_much") (x + y >== 2.5)
              |> Model.minimize "value" x

          Expect.equal (Mip.solve settings model).Outcome Infeasible "outcome"

      testCase "an integer model with an unbounded relaxation but no integer point is infeasible" <| fun () ->
          // z = 1/2 is not integral, and x can grow without limit in the relaxation: CBC reports
          // "unbounded" here, and the feasibility check must correct it.
          let z = LinExpr.var (V "z")

          let model =
              Model.empty
              |> Model.addVars [ Var.integer 0.0 infinity (V "x"); Var.integer 0.0 1.0 (V "z") ]
              |> Model.addConstraint (ConstraintName.single "half") (2.0 * z === 1.0)
              |> Model.addConstraint (ConstraintName.single "link") (x - z >== -5.0)
              |> Model.maximize "value" x

          Expect.equal (Mip.solve settings model).Outcome Infeasible "outcome"

      testCase "a violated constraint without variables makes the model infeasible" <| fun () ->
          let model =
              Model.empty
              |> Model.addVar (Var.binary (V "x"))
              |> Model.addConstraint (ConstraintName.single "impossible") (LinExpr.constant 1.0 >== 2.0)
              |> Model.maximize "value" x

          Expect.equal (Mip.solve settings model).Outcome Infeasible "outcome"

      testCase "an integer model that can grow forever is unbounded" <| fun () ->
          // SCIP and HiGHS report "infeasible" here (infeasible or unbounded after presolve): the
          // feasibility check must correct it.
          let model =
              Model.empty
              |> Model.addVars [ Var.integer 0.0 infinity (V "x"); Var.integer 0.0 infinity (V "y") ]
              |> Model.addConstraint (ConstraintName.single "gap") (x - y <== 3.0)
              |> Model.maximize "value" (x + y)

          Expect.equal (Mip.solve settings model).Outcome Unbounded "outcome"

      testCase "a linear program that can grow forever is unbounded" <| fun () ->
          let model =
              Model.empty
              |> Model.addVars [ Var.continuous -infinity infinity (V "x"); Var.continuous 0.0 1.0 (V "y") ]
              |> Model.addConstraint (ConstraintName.single "upper") (x + y <== 3.0)
              |> Model.minimize "value" x

          Expect.equal (Mip.solve settings model).Outcome Unbounded "outcome" ]

/// Tests that stop before any solver is called: once, with the default backend.
let private validationTests =
    let settings = SolveSettings.create 10.0<s>

    [ testCase "an invalid model fails and names every problem" <| fun () ->
          let model =
              Model.empty
              |> Model.addVar (Var.continuous 2.0 1.0 (V "x"))
              |> Model.addConstraint (ConstraintName.single "uses_y") (x + y <== 3.0)
              |> Model.addConstraint (ConstraintName.single "uses_y") (y >== 0.0)
              |> Model.maximize "value" x

          match (Mip.solve settings model).Outcome with
          | Failed message ->
              Expect.stringContains message "empty domain" "the empty domain is named"
              Expect.stringContains message "V \"y\"" "the undeclared variable is named"
              Expect.stringContains message "uses_y is named twice" "the duplicate name is named"
          | other -> failtestf "expected Failed, got %A" other

      testCase "settings without a positive time limit fail before solving" <| fun () ->
          let model = Model.empty |> Model.addVar (Var.binary (V "x")) |> Model.maximize "value" x

          match (Mip.solve { settings with TimeLimit = 0.0<s> } model).Outcome with
          | Failed message -> Expect.stringContains message "TimeLimit" "the setting is named"
          | other -> failtestf "expected Failed, got %A" other

      testCase "every backend has a name that parses back to it" <| fun () ->
          for b in Backend.all do
              Expect.equal (Backend.tryParse (Backend.name b)) (Some b) (Backend.name b)

          Expect.equal (Backend.tryParse "CPSAT") (Some CpSat) "case-insensitive alias"
          Expect.equal (Backend.tryParse "gurobi") None "unknown name" ]

// ---- limits -----------------------------------------------------------------------------

/// A multi-dimensional knapsack (300 binaries, 15 capacity rows) that no backend closes in
/// seconds. Coefficients come from a fixed arithmetic formula: the instance is the same on every
/// run (no randomness). Its values are thirds, so CP-SAT hands it to SCIP.
let private hardItems, hardRows = 300, 15
let private hardWeight i j = float (((i * 7919 + j * 104729 + i * j * 31) % 97) + 5)

let private hardValue j =
    float (((j * 65537) % 89) + 10) + (Seq.sum [ for i in 0 .. hardRows - 1 -> hardWeight i j ]) / 3.0

let private hardCapacity i = (Seq.sum [ for j in 0 .. hardItems - 1 -> hardWeight i j ]) / 4.0

let private hardModelWith (value: int -> float) =
    let x j = LinExpr.var (Item j)

    Model.empty
    |> Model.addVars [ for j in 0 .. hardItems - 1 -> Var.binary (Item j) ]
    |> Model.addConstraints
        [ for i in 0 .. hardRows - 1 ->
              ConstraintName.create "capacity" [ "row", string i ],
              LinExpr.sum [ for j in 0 .. hardItems - 1 -> hardWeight i j * x j ] <== hardCapacity i ]
    |> Model.maximize "value" (LinExpr.sum [ for j in 0 .. hardItems - 1 -> value j * x j ])

let private hardModel = hardModelWith hardValue

/// The hard model with integral values (rounded down): a pure integer model that CP-SAT solves itself.
let private hardIntegerModel = hardModelWith (hardValue >> floor)

/// First-fit greedy in item order: feasible by construction.
let private hardStart =
    let used = Array.zeroCreate<float> hardRows

    [ for j in 0 .. hardItems - 1 ->
          let fits = Seq.forall (fun i -> used[i] + hardWeight i j <= hardCapacity i) [ 0 .. hardRows - 1 ]
          if fits then
              for i in 0 .. hardRows - 1 do
                  used[i] <- used[i] + hardWeight i j
          Item j, (if fits then 1.0 else 0.0) ]
    |> Map.ofList

/// HiGHS gets no MIP start (OrTools.fs): under a tiny limit it may find nothing at all.
let private takesStart (b: Backend) = b <> Highs

/// HiGHS through OR-Tools 9.15 returns no solution when its time limit stops it (status 99,
/// incumbent dropped), so a limited HiGHS solve of a hard model ends in Failed.
let private keepsIncumbentOnTimeLimit (b: Backend) = b <> Highs

let private limitTests (b: Backend) =
    let settings = settingsFor b

    /// `mayFail`: the backend may find nothing at all within the limit.
    let underLimit (limit: float<s>) (mayFail: bool) (model: Model<Key>) =
        let startValue = LinExpr.evaluate (fun k -> hardStart[k]) model.Objectives.Head.Expr
        let r = Mip.solve { settings with TimeLimit = limit; MipStart = Some hardStart } model
        Expect.isLessThan r.SolveTime (limit + 5.0<s>) $"solve time under a {limit} s limit"

        match r.Outcome with
        | Feasible(gap, TimeLimit) ->
            let o = r.Objectives.Head
            Expect.isGreaterThan gap 0.0 "a positive gap"
            Expect.isTrue (close 1e-6 gap (abs (o.BestBound - o.Value) / abs o.Value)) $"gap {gap} is |bound − value| / |value| for {o}"
            Expect.isGreaterThanOrEqual o.BestBound (o.Value - tol) "the bound of a maximisation is at least its value"
        | Optimal -> ()
        | Failed message when mayFail -> Expect.stringContains message "time limit" "no solution within the limit"
        | other -> failtestf "expected Feasible(_, TimeLimit) or Optimal, got %A" other

        if r.HasSolution then
            Expect.isTrue (satisfiesAll model r) "the solution satisfies every capacity row"

            if takesStart b then
                Expect.isGreaterThanOrEqual (objective r) (startValue - tol) "the solution is at least as good as its start"

        r

    [ testCase "a hard model under a tiny time limit returns a solution at least as good as its start" <| fun () ->
          // HiGHS (no start) may find nothing within the limit; 0.2 s, not less: on a loaded 2-core machine CBC
          // did not get as far as loading its start within 0.05 s (seen once in a full run)
          let r = underLimit 0.2<s> (not (takesStart b && keepsIncumbentOnTimeLimit b)) hardModel
          Expect.equal r.Backend (if b = CpSat then Scip else b) "CP-SAT hands a model with fractional values to SCIP"

      testCase "a hard pure integer model under a short time limit returns a solution at least as good as its start" <| fun () ->
          // CP-SAT's presolve can outlast 0.05 s on this machine even with a complete hint: 1 s
          let r = underLimit 1.0<s> (not (keepsIncumbentOnTimeLimit b)) hardIntegerModel
          Expect.equal r.Backend b "the backend asked for solved it"

      testCase "a relative gap limit stops with a gap within the limit" <| fun () ->
          let r = Mip.solve { settings with RelativeGap = 0.05; TimeLimit = 2.0<s> } hardIntegerModel

          match r.Outcome with
          | Feasible(gap, GapLimit) -> Expect.isLessThanOrEqual gap (0.05 + 1e-9) "gap within the limit"
          | Optimal -> ()
          | Failed message when not (keepsIncumbentOnTimeLimit b) -> Expect.stringContains message "time limit" "stopped by the time limit"
          | other -> failtestf "expected Feasible(_, GapLimit) or Optimal, got %A" other

          if r.HasSolution then
              Expect.isTrue (satisfiesAll hardIntegerModel r) "the solution satisfies every capacity row" ]

// ---- lexicographic objectives -----------------------------------------------------------

type private TwoObjectives =
    { Knapsack: Knapsack
      Priorities: int[] }

let private genTwoObjectives =
    gen {
        let! k = genKnapsack
        // Few distinct values make ties in the first objective common.
        let! values = Gen.arrayOfLength k.Values.Length (Gen.choose (1, 3))
        let! priorities = Gen.arrayOfLength k.Values.Length (Gen.choose (-5, 9))

        return
            { Knapsack = { k with Values = values }
              Priorities = priorities }
    }

let private shrinkTwoObjectives (t: TwoObjectives) : seq<TwoObjectives> =
    seq {
        let n = t.Priorities.Length

        if n > 1 then
            for i in 0 .. n - 1 do
                let weights = Array.removeAt i t.Knapsack.Weights

                yield
                    { Knapsack =
                        { Values = Array.removeAt i t.Knapsack.Values
                          Weights = weights
                          Capacity = min t.Knapsack.Capacity (Array.sum weights) }
                      Priorities = Array.removeAt i t.Priorities }
    }

let private lexicographicTests (b: Backend) =
    let settings = settingsFor b

    [ testProp 100 "a second objective only breaks ties of the first" <| fun () ->
          Prop.forAll (Arb.fromGenShrink (genTwoObjectives, shrinkTwoObjectives)) (fun t ->
              let n = t.Priorities.Length

              let model =
                  knapsackModel t.Knapsack
                  |> Model.maximize "priority" (LinExpr.sum [ for i in 0 .. n - 1 -> float t.Priorities[i] * LinExpr.var (Item i) ])

              let r = Mip.solve settings model
              let feasible = subsets n |> Seq.filter (fun m -> total t.Knapsack.Weights m <= t.Knapsack.Capacity) |> List.ofSeq
              let best = feasible |> List.map (total t.Knapsack.Values) |> List.max
              let ties = feasible |> List.filter (fun m -> total t.Knapsack.Values m = best)
              let bestTie = ties |> List.map (total t.Priorities) |> List.max

              match r.Objectives with
              | [ first; second ] ->
                  (isOptimal r |> Prop.label (sprintf "outcome %A" r.Outcome))
                  .&. (close tol (float best) first.Value |> Prop.label (sprintf "first %g, best %d" first.Value best))
                  .&. (close tol (float bestTie) second.Value |> Prop.label (sprintf "second %g, best tie %d" second.Value bestTie))
                  |> Prop.classify (ties.Length > 1) "first objective tied"
              | other -> false |> Prop.label (sprintf "objectives %A" other))

      testCase "a maximisation started from a poor solution still reaches the optimum" <| fun () ->
          // Pinned regression (found by the property above, seed 16538693220727985348,13121945017009794247):
          // Debian's CBC 2.10.8 given a maximisation plus a MIP start returned the start (priority −5)
          // as "proven optimal" although the optimum is 4.
          let values = [| 3; 2; 2; 3; 2; 1; 3; 1; 3 |]
          let weights = [| 17; 8; 18; 19; 10; 7; 30; 11; 25 |]
          let priorities = [| 0; -4; 0; 9; -1; -3; -5; 7; 3 |]
          let item i = LinExpr.var (Item i)
          let weighted (a: int[]) = LinExpr.sum [ for i in 0..8 -> float a[i] * item i ]

          let model =
              Model.empty
              |> Model.addVars [ for i in 0..8 -> Var.binary (Item i) ]
              |> Model.addConstraint (ConstraintName.single "capacity") (weighted weights <== 37.0)
              |> Model.addConstraint (ConstraintName.single "value") (weighted values >== 7.0)
              |> Model.maximize "priority" (weighted priorities)

          let start = Map.ofList [ for i in 0..8 -> Item i, (if i = 0 || i = 1 || i = 4 then 1.0 else 0.0) ]
          let r = Mip.solve { settings with MipStart = Some start } model
          Expect.equal r.Outcome Optimal "outcome"
          Expect.equal (objective r) 4.0 "objective"

      testCase "a second objective that opposes the first cannot worsen it" <| fun () ->
          let x i = LinExpr.var (Item i)

          let model =
              Model.empty
              |> Model.addVars [ for i in 0..2 -> Var.binary (Item i) ]
              |> Model.addConstraint (ConstraintName.single "pick_two") (x 0 + x 1 + x 2 <== 2.0)
              |> Model.maximize "count" (x 0 + x 1 + x 2)
              |> Model.minimize "count_again" (x 0 + x 1 + x 2 + 10.0)
              |> Model.maximize "weighted" (5.0 * x 0 + 1.0 * x 1 + 3.0 * x 2)

          let r = Mip.solve settings model
          Expect.equal r.Outcome Optimal "outcome"
          Expect.equal (r.Objectives |> List.map (fun o -> o.Value)) [ 2.0; 12.0; 8.0 ] "objective values"
          Expect.equal [ for i in 0..2 -> r.Value(Item i) ] [ 1.0; 0.0; 1.0 ] "solution" ]

// ---- bounds and degenerate models ---------------------------------------------------------

let private solveOne (b: Backend) (kind: VarKind) (sense: Sense) (extra: Constraint<Key> list) =
    let model =
        Model.empty
        |> Model.addVar { Key = V "x"; Kind = kind }
        |> Model.addConstraints (extra |> List.mapi (fun i c -> ConstraintName.create "extra" [ "i", string i ], c))
        |> Model.addObjective "x" sense x

    Mip.solve (settingsFor b) model

let private boundTests (b: Backend) =
    let settings = settingsFor b

    [ testCase "continuous and integer bounds are honoured" <| fun () ->
          let cases =
              [ Continuous(-2.5, 4.25), Maximize, [], 4.25
                Continuous(-2.5, 4.25), Minimize, [], -2.5
                Continuous(-infinity, infinity), Minimize, [ x >== -3.5 ], -3.5
                Continuous(-infinity, 7.0), Maximize, [], 7.0
                Integer(-3.0, 7.0), Maximize, [], 7.0
                Integer(-3.0, 7.0), Minimize, [], -3.0
                Integer(-infinity, 5.0), Maximize, [], 5.0
                Integer(0.0, infinity), Maximize, [ 2.0 * x <== 9.0 ], 4.0
                Integer(-infinity, infinity), Minimize, [ 2.0 * x >== -9.0 ], -4.0
                Integer(0.0, 100.0), Maximize, [ 0.5 * x <== 4.75 ], 9.0
                Binary, Maximize, [], 1.0
                Binary, Minimize, [], 0.0 ]

          for kind, sense, extra, expected in cases do
              let r = solveOne b kind sense extra
              Expect.equal r.Outcome Optimal (sprintf "%A %A: outcome" kind sense)
              Expect.isTrue (close tol expected (r.Value(V "x"))) (sprintf "%A %A: x = %g, expected %g" kind sense (r.Value(V "x")) expected)

      testCase "integer values are read rounded and continuous ones as solved" <| fun () ->
          let r = solveOne b (Integer(0.0, infinity)) Maximize [ 3.0 * x <== 10.0 ]
          Expect.equal (r.Value(V "x")) 3.0 "rounded integer value"
          Expect.isLessThanOrEqual (abs (r.Values[V "x"] - 3.0)) 1e-6 "raw integer value"
          let c = solveOne b (Continuous(0.0, infinity)) Maximize [ 3.0 * x <== 10.0 ]
          Expect.isTrue (close tol (10.0 / 3.0) (c.Value(V "x"))) (sprintf "continuous value %g" (c.Value(V "x")))

      testCase "a model without constraints puts every variable at its best bound" <| fun () ->
          let model =
              Model.empty
              |> Model.addVars [ Var.integer -3.0 10.0 (V "a"); Var.continuous -2.5 7.5 (V "b"); Var.binary (V "c") ]
              |> Model.minimize "value" (LinExpr.var (V "a") - LinExpr.var (V "b") + 2.0 * LinExpr.var (V "c") + 1.0)

          let r = Mip.solve settings model
          Expect.equal r.Outcome Optimal "outcome"
          Expect.equal [ r.Value(V "a"); r.Value(V "b"); r.Value(V "c") ] [ -3.0; 7.5; 0.0 ] "solution"
          Expect.isTrue (close tol -9.5 (objective r)) $"objective {objective r}"

      testCase "a model without variables has its constant objective" <| fun () ->
          let model =
              Model.empty
              |> Model.addConstraint (ConstraintName.single "trivially_true") (LinExpr.constant 1.0 <== 2.0)
              |> Model.maximize "constant" (LinExpr.constant 42.0)

          let r = Mip.solve settings model
          Expect.equal r.Outcome Optimal "outcome"
          Expect.equal (objective r) 42.0 "objective"
          Expect.isEmpty r.Values "no values"

      testCase "a model without objectives finds a feasible point" <| fun () ->
          let model =
              Model.empty
              |> Model.addVars [ Var.integer 0.0 10.0 (V "x"); Var.continuous 0.0 10.0 (V "y") ]
              |> Model.addConstraint (ConstraintName.single "sum") (x + y === 7.5)
              |> Model.addConstraint (ConstraintName.single "x_big") (x >== 5.0)

          let r = Mip.solve settings model
          Expect.equal r.Outcome Optimal "outcome"
          Expect.isEmpty r.Objectives "no objectives"
          Expect.isTrue (satisfiesAll model r) "the point satisfies every constraint"

      testCase "a pure integer model with decimal coefficients is solved by the backend asked for" <| fun () ->
          // CP-SAT scales rows and the objective by powers of ten; 1.5·x ≤ 7.25 allows x ≤ 4.
          let model =
              Model.empty
              |> Model.addVars [ Var.integer 0.0 10.0 (V "x"); Var.integer 0.0 10.0 (V "y") ]
              |> Model.addConstraint (ConstraintName.single "scaled") (1.5 * x + 0.25 * y <== 7.25)
              |> Model.maximize "value" (0.1 * x + 0.01 * y)

          let r = Mip.solve settings model
          Expect.equal r.Outcome Optimal "outcome"
          Expect.equal r.Backend b "backend"
          // x = 4 leaves 1.25 for 0.25·y: y = 5; value 0.45 (x = 3, y = 11 is out of bounds)
          Expect.equal [ r.Value(V "x"); r.Value(V "y") ] [ 4.0; 5.0 ] "solution"
          Expect.isTrue (close tol 0.45 (objective r)) $"objective {objective r}" ]

// ---- LP and MPS text --------------------------------------------------------------------

/// A model that touches every LP feature: all kinds, free and half-infinite bounds, a constant
/// constraint, an unused variable, odd characters in keys and names.
let private showcase =
    let v name = LinExpr.var (V name)

    Model.empty
    |> Model.addVars
        [ Var.binary (V "pick[0]")
          Var.binary (V "pick[1]")
          Var.integer -3.0 12.0 (V "count")
          Var.integer 0.0 infinity (V "st")
          Var.continuous -infinity infinity (V "free flow")
          Var.continuous -infinity 4.5 (V "1st-load")
          Var.continuous 0.0 1.0 (V "unused") ]
    |> Model.addConstraints
        [ ConstraintName.create "capacity" [ "node", "0"; "type", "EDC" ], v "count" + 2.0 * v "st" <== 20.5
          ConstraintName.create "capacity" [ "node", "1"; "type", "EDC" ], v "count" - v "1st-load" >== -1.0
          ConstraintName.create "link" [ "pick", "0" ], v "free flow" === 3.0 * v "pick[0]" - v "pick[1]"
          ConstraintName.single "one pick", v "pick[0]" + v "pick[1]" <== 1.0
          ConstraintName.single "constant", LinExpr.constant 0.0 <== 1.0
          ConstraintName.create "upper" [ "what", "1st-load" ], v "1st-load" + v "st" <== 8.0 ]
    |> Model.maximize "value" (v "count" + 0.5 * v "st" + v "free flow" + 2.0 * v "1st-load" + 1.25)

let private lpNamePattern = Regex("^[A-Za-z\"!#$%&(),;?@_'`{}~][A-Za-z0-9\"!#$%&(),.;?@_'`{}~]*$")

let private genName: Gen<string> =
    let chars = "aZ09 _-.[]=,:;+*/\\<>|\"'`{}~!#$%&()?@é\t" |> Seq.toList

    Gen.frequency
        [ 3, Gen.listOf (Gen.elements chars) |> Gen.map (fun cs -> String(Array.ofList cs))
          1, Gen.elements [ "st"; "End"; "free"; "inf"; "e1"; "1x"; ".5"; ""; "x"; "x#2" ]
          1, Gen.choose (90, 140) |> Gen.map (fun n -> String('y', n)) ]

let private textTests =
    [ testCase "LP text has every section and names every constraint" <| fun () ->
          let text = Model.toLpText showcase
          let names = Model.lpNames showcase
          let lines = text.Split('\n') |> Array.map (fun l -> l.Trim())

          let sections = [ "Maximize"; "Subject To"; "Bounds"; "Generals"; "Binaries"; "End" ]
          let positions = sections |> List.map (fun s -> Array.IndexOf(lines, s))
          Expect.isFalse (List.contains -1 positions) $"every section is present: {positions}"
          Expect.equal positions (List.sort positions) "sections in order"

          for nc, row in Seq.zip showcase.Constraints names.Rows do
              Expect.contains lines ("\\ " + nc.Name.Display) "display name as a comment"
              Expect.exists lines (fun l -> l.StartsWith(row + ":")) $"row {row} is written"
              Expect.isMatch row (string lpNamePattern) "legal row name"

          Expect.contains names.Rows "capacity(node_0,type_EDC)" "a readable row name"

          for KeyValue(_, n) in names.Vars do
              Expect.isMatch n (string lpNamePattern) "legal variable name"

      testProp 200 "LP names are legal and unique for any keys and constraint names" <| fun () ->
          Prop.forAll (Arb.fromGen (Gen.two (Gen.listOf genName))) (fun (varKeys, rowKeys) ->
              let model =
                  Model.empty
                  |> Model.addVars (varKeys |> List.map (fun k -> Var.binary (V k)))
                  |> Model.addConstraints (rowKeys |> List.map (fun k -> ConstraintName.create k [ "k", k ], LinExpr.var (V "x") <== 1.0))
                  |> Model.maximize "st" LinExpr.zero

              let names = Model.lpNames model
              let vars = names.Vars |> Map.values |> List.ofSeq
              let rows = List.ofArray names.Rows @ List.ofArray names.Objectives
              let legal (n: string) = lpNamePattern.IsMatch n && n.Length <= 100

              (vars |> List.forall legal |> Prop.label (sprintf "variable names %A" vars))
              .&. (rows |> List.forall legal |> Prop.label (sprintf "row names %A" rows))
              .&. (List.distinct vars = vars |> Prop.label "variable names unique")
              .&. (List.distinct rows = rows |> Prop.label "row and objective names unique")
              .&. (vars.Length = model.Variables.Count |> Prop.label "one name per variable"))

      testCase "MPS text carries the LP names and every row" <| fun () ->
          let mps = Mip.toMpsText showcase
          let names = Model.lpNames showcase

          for row in names.Rows do
              Expect.stringContains mps row $"row {row}"

          for KeyValue(_, n) in names.Vars do
              Expect.stringContains mps n $"column {n}" ]

/// A second backend for the export round trip: a linear one other than `b` (the showcase has
/// continuous variables, which CP-SAT would hand to SCIP anyway).
let private secondBackend (b: Backend) = if b = Scip then Highs else Scip

let private roundTrip (b: Backend) =
    testCase "an exported model read back by a second backend has the same optimum" <| fun () ->
        // OR-Tools' C# wrapper reads MPS text but not CPLEX LP text (its LP reader takes an
        // lp_solve-like dialect), so the export is MPS; it has the LP text's names and rows.
        let r = Mip.solve (settingsFor b) showcase
        Expect.equal r.Outcome Optimal "outcome of the model itself"
        let path = Path.Combine(Path.GetTempPath(), $"trident-mip-{Guid.NewGuid():N}.mps")

        try
            File.WriteAllText(path, Mip.toMpsText showcase)
            let read = Mip.solveMpsText (secondBackend b) 10.0<s> (File.ReadAllText path)
            Expect.isTrue read.Read "the MPS text is read"
            Expect.equal read.Columns showcase.Variables.Count "columns"
            Expect.equal read.Rows showcase.Constraints.Length "rows"

            match read.Objective with
            | Some value -> Expect.isTrue (close tol (objective r) value) $"optimum {value} read back vs {objective r} solved"
            | None -> failtestf "the second backend (%s) found no optimum" (Backend.name (secondBackend b))
        finally
            File.Delete path

// ---- concurrency ------------------------------------------------------------------------

let private concurrency (b: Backend) =
    testProp 10 "concurrent solves from several threads each get their own correct result" <| fun () ->
        Prop.forAll (Arb.fromGen (Gen.arrayOfLength 8 genKnapsack)) (fun instances ->
            let results = Array.zeroCreate instances.Length

            let threads =
                instances
                |> Array.mapi (fun i k ->
                    Thread(fun () ->
                        // Solve each instance a few times to overlap with the other threads.
                        results[i] <- [ for _ in 1..3 -> Mip.solve (settingsFor b) (knapsackModel k) ]))

            threads |> Array.iter (fun t -> t.Start())
            threads |> Array.iter (fun t -> t.Join())

            Array.zip instances results
            |> Array.mapi (fun i (k, rs) ->
                let best = float (bruteForceKnapsack k)

                rs
                |> List.forall (fun r -> isOptimal r && close tol best (objective r))
                |> Prop.label (sprintf "instance %d: best %g, got %A" i best (rs |> List.map (fun r -> r.Outcome, objective r))))
            |> Array.reduce (.&.))

/// The linear solvers are made ahead (OrTools.fs, `Instances`): a solve's time must be its own, not the time a
/// spare solver waited since it was created.
let private ownTime (b: Backend) =
    testCase "a solve's reported time is its own, not the wait of a solver made ahead" <| fun () ->
        let k = { Values = [| 5; 4; 3 |]; Weights = [| 4; 3; 2 |]; Capacity = 5 }
        Mip.solve (settingsFor b) (knapsackModel k) |> ignore // leaves a spare made after it
        Thread.Sleep 400
        let sw = Diagnostics.Stopwatch.StartNew()
        let r = Mip.solve (settingsFor b) (knapsackModel k)
        let elapsed = sw.Elapsed.TotalSeconds
        Expect.isTrue (isOptimal r) "solved"
        // the solver's clock counts whole milliseconds: allow one
        Expect.isLessThanOrEqual (float r.SolveTime) (elapsed + 0.001) (sprintf "reported %g s within the call's %g s" (float r.SolveTime) elapsed)

let private backendTests (b: Backend) =
    testList
        (Backend.name b)
        ([ knownKnapsack b; bruteForce b; withoutPresolve b; assignment b ]
         @ outcomeTests b
         @ limitTests b
         @ lexicographicTests b
         @ boundTests b
         @ [ roundTrip b; concurrency b; ownTime b ])

// ---- silence ----------------------------------------------------------------------------

module private Libc =
    [<DllImport("libc.so.6", SetLastError = true)>]
    extern int dup(int fd)

    [<DllImport("libc.so.6", SetLastError = true)>]
    extern int dup2(int oldfd, int newfd)

    [<DllImport("libc.so.6", EntryPoint = "open", SetLastError = true)>]
    extern int openFile(string path, int flags, int mode)

    [<DllImport("libc.so.6")>]
    extern int close(int fd)

    [<DllImport("libc.so.6")>]
    extern int fflush(nativeint stream)

    [<DllImport("libc.so.6")>]
    extern int puts(string s)

/// Runs `action` with the process's file descriptor 1 (C stdout, where native solvers print)
/// sent to a file and returns what was written there. A test helper only: the product itself
/// redirects nothing.
let private captureNativeStdout (action: unit -> unit) : string =
    let path = Path.Combine(Path.GetTempPath(), $"trident-stdout-{Guid.NewGuid():N}.txt")
    Console.Out.Flush()
    Libc.fflush 0n |> ignore
    let saved = Libc.dup 1
    let fd = Libc.openFile (path, 0o1 ||| 0o100 ||| 0o1000, 0o644) // O_WRONLY | O_CREAT | O_TRUNC
    Expect.isTrue (saved >= 0 && fd >= 0) "could not redirect stdout"
    Libc.dup2 (fd, 1) |> ignore
    Libc.close fd |> ignore

    try
        action ()
    finally
        Libc.fflush 0n |> ignore
        Libc.dup2 (saved, 1) |> ignore
        Libc.close saved |> ignore

    let text = File.ReadAllText path
    File.Delete path
    text

let private silence =
    testCase "no backend prints to stdout whatever the outcome" <| fun () ->
        let marker = "capture-check"

        let output =
            captureNativeStdout (fun () ->
                Libc.puts marker |> ignore

                for b in Backend.all do
                    let settings = settingsFor b
                    Mip.solve settings (knapsackModel { Values = [| 3; 4 |]; Weights = [| 2; 3 |]; Capacity = 4 }) |> ignore
                    Mip.solve { settings with TimeLimit = 0.05<s>; MipStart = Some hardStart } hardIntegerModel |> ignore
                    Mip.solve { settings with TimeLimit = 0.05<s> } hardModel |> ignore
                    Mip.solve settings showcase |> ignore
                    solveOne b (Integer(0.0, infinity)) Maximize [] |> ignore
                    solveOne b (Continuous(0.0, 1.0)) Maximize [ x >== 2.0 ] |> ignore
                    solveOne b (Integer(0.0, 1.0)) Maximize [ x >== 2.0 ] |> ignore

                Mip.solveMpsText Highs 10.0<s> (Mip.toMpsText showcase) |> ignore)

        // The marker proves the capture works; anything else came from a solver (HiGHS prints a
        // banner unless its output_flag is off).
        Expect.equal output (marker + "\n") "stdout during the solves"

[<Tests>]
let tests =
    testList "unit" [
        testList "MipTests" (validationTests @ textTests @ [ for b in Backend.all -> backendTests b ])
        |> testSequencedGroup "MipTests"
    ]

/// Redirects the process's stdout: runs alone, after the parallel tests (the "integration" half).
[<Tests>]
let silenceTests =
    testList "integration" [ testList "MipTests" [ silence ] |> testSequenced ]
