namespace Trident.Scheduling.Mip

// Design note
// -----------
// A `Model<'K>` is an immutable value built by piping: declare variables with their kinds, add
// constraints named by a family and a key (rendered `family[key]`, e.g.
// `capacity[node=0,type=EDC]`), and add one or more objectives. Several objectives mean a
// lexicographic order (Solve.fs): the first is optimised, then fixed within a tolerance while the
// second is optimised, and so on.
//
// Nothing is checked while building (building stays total and cheap); `Model.validate` lists
// every problem at once (undeclared variables, empty domains, non-finite numbers, duplicate
// names) and the solver refuses an invalid model with `Failed`.
//
// LP names are derived, never typed by hand: a variable's name comes from the caller's name
// function (default `sprintf "%A"`), a constraint's from its display name; both are then made
// legal for the CPLEX LP readers (CBC's CoinLpIO accepts letters, digits and
// "!#$%&(),.;?@_'`{}~, at most 100 characters, no leading digit or '.', no keyword; we also avoid
// '"') and unique (a clash gets a `#2`, `#3`, … suffix).
// They are computed only for LP and MPS text: `sprintf "%A"` costs about 0.15–0.35 ms per key,
// so the solvers themselves get positional names (OrTools.fs). Columns are in key order and rows
// in insertion order in both, so the LP text written by `Model.toLpText` describes the problem the
// solver saw.

open System
open System.Collections.Generic
open System.Globalization
open System.Text

/// Direction of an objective.
type Sense =
    | Maximize
    | Minimize

/// The name of a constraint: a family and a key of labelled parts, displayed `family[k=v,…]`
/// (just `family` when the key is empty).
type ConstraintName =
    { Family: string
      Key: (string * string) list }

    /// `family[k1=v1,k2=v2]`, or `family` for an empty key.
    member n.Display =
        match n.Key with
        | [] -> n.Family
        | key ->
            let parts = key |> List.map (fun (k, v) -> k + "=" + v)
            n.Family + "[" + String.Join(",", parts) + "]"

    override n.ToString() = n.Display

/// Builders for constraint names.
[<RequireQualifiedAccess>]
module ConstraintName =
    /// A name with a family and a labelled key, e.g. `create "capacity" [ "node", "0"; "type", "EDC" ]`.
    let create (family: string) (key: (string * string) list) : ConstraintName = { Family = family; Key = key }

    /// A name for a constraint that is alone in its family.
    let single (family: string) : ConstraintName = { Family = family; Key = [] }

/// A constraint with its name.
type NamedConstraint<'K when 'K: comparison> =
    { Name: ConstraintName
      Constraint: Constraint<'K> }

/// One objective of a model. The constant part of `Expr` is included in reported values.
type Objective<'K when 'K: comparison> =
    { Name: string
      Sense: Sense
      Expr: LinExpr<'K> }

/// A mixed-integer linear model over variables keyed by 'K.
[<NoEquality; NoComparison>]
type Model<'K when 'K: comparison> =
    private
        { vars: Map<'K, VarKind>
          revConstraints: NamedConstraint<'K> list
          revObjectives: Objective<'K> list
          varName: 'K -> string }

    /// Declared variables and their kinds (in key order, which is also the solver's column order).
    member m.Variables = m.vars
    /// Constraints in the order they were added.
    member m.Constraints = List.rev m.revConstraints
    /// Objectives in lexicographic priority order (the first matters most).
    member m.Objectives = List.rev m.revObjectives
    /// The caller's naming function for variables (before LP sanitising).
    member m.VarName = m.varName

/// LP-legal, unique names for the columns and rows of a model.
type LpNames<'K when 'K: comparison> =
    {
        /// LP name of every declared variable.
        Vars: Map<'K, string>
        /// LP name of every constraint, in `Model.Constraints` order.
        Rows: string[]
        /// LP name of every objective, in `Model.Objectives` order (distinct from the row names).
        Objectives: string[]
    }

/// Building, checking and writing models.
[<RequireQualifiedAccess>]
module Model =
    /// The empty model; variables are named with `sprintf "%A"` of their keys.
    let empty<'K when 'K: comparison> : Model<'K> =
        { vars = Map.empty
          revConstraints = []
          revObjectives = []
          varName = fun k -> sprintf "%A" k }

    /// Uses `name` to derive LP names of variables (the result is still sanitised and made unique).
    let withVarNames (name: 'K -> string) (model: Model<'K>) : Model<'K> = { model with varName = name }

    /// Declares a variable. Re-declaring a key with the same kind is a no-op; with another kind it
    /// throws `ArgumentException` (a programming error, not an input error).
    let addVar (v: Var<'K>) (model: Model<'K>) : Model<'K> =
        match Map.tryFind v.Key model.vars with
        | Some kind when kind = v.Kind -> model
        | Some kind -> invalidArg "v" (sprintf "variable %A is already declared as %A, not %A" v.Key kind v.Kind)
        | None -> { model with vars = Map.add v.Key v.Kind model.vars }

    /// Declares several variables (see `addVar`).
    let addVars (vs: seq<Var<'K>>) (model: Model<'K>) : Model<'K> = Seq.fold (fun m v -> addVar v m) model vs

    /// Adds a named constraint.
    let addConstraint (name: ConstraintName) (c: Constraint<'K>) (model: Model<'K>) : Model<'K> =
        { model with revConstraints = { Name = name; Constraint = c } :: model.revConstraints }

    /// Adds several named constraints, in order.
    let addConstraints (cs: seq<ConstraintName * Constraint<'K>>) (model: Model<'K>) : Model<'K> =
        Seq.fold (fun m (n, c) -> addConstraint n c m) model cs

    /// Adds an objective after the existing ones (lower lexicographic priority).
    let addObjective (name: string) (sense: Sense) (expr: LinExpr<'K>) (model: Model<'K>) : Model<'K> =
        { model with revObjectives = { Name = name; Sense = sense; Expr = expr } :: model.revObjectives }

    /// Adds an objective to maximise (see `addObjective`).
    let maximize (name: string) (expr: LinExpr<'K>) (model: Model<'K>) : Model<'K> = addObjective name Maximize expr model

    /// Adds an objective to minimise (see `addObjective`).
    let minimize (name: string) (expr: LinExpr<'K>) (model: Model<'K>) : Model<'K> = addObjective name Minimize expr model

    /// Keeps only the constraints that satisfy `keep` (internal: used to drop constant rows).
    let internal filterConstraints (keep: NamedConstraint<'K> -> bool) (model: Model<'K>) : Model<'K> =
        { model with revConstraints = List.filter keep model.revConstraints }

    /// Replaces the objectives (internal: one stage of a lexicographic solve).
    let internal withObjectives (objectives: Objective<'K> list) (model: Model<'K>) : Model<'K> =
        { model with revObjectives = List.rev objectives }

    /// Every problem that prevents solving the model, empty when it is valid: variables used but
    /// not declared, empty or NaN domains, non-finite coefficients or right-hand sides, duplicate
    /// constraint or objective names.
    let validate (model: Model<'K>) : string list =
        let errors = ResizeArray<string>()
        let undeclared = SortedSet<'K>()

        let checkTerms (where: string) (terms: Map<'K, float>) =
            for KeyValue(k, c) in terms do
                if not (model.vars.ContainsKey k) then undeclared.Add k |> ignore
                if not (Double.IsFinite c) then errors.Add(sprintf "%s: coefficient of %A is %g" where k c)

        for KeyValue(k, kind) in model.vars do
            let lo, hi = Var.bounds kind

            if Double.IsNaN lo || Double.IsNaN hi || lo > hi || lo = infinity || hi = -infinity then
                errors.Add(sprintf "variable %A has an empty domain %A" k kind)

        let names = HashSet<string>()

        for nc in model.Constraints do
            let where = "constraint " + nc.Name.Display
            checkTerms where nc.Constraint.Terms
            if not (Double.IsFinite nc.Constraint.Rhs) then errors.Add(sprintf "%s: right-hand side is %g" where nc.Constraint.Rhs)
            if not (names.Add nc.Name.Display) then errors.Add(sprintf "%s is named twice" where)

        let objectiveNames = HashSet<string>()

        for o in model.Objectives do
            let where = "objective " + o.Name
            checkTerms where o.Expr.Terms
            if not (Double.IsFinite o.Expr.Constant) then errors.Add(sprintf "%s: constant is %g" where o.Expr.Constant)
            if not (objectiveNames.Add o.Name) then errors.Add(sprintf "%s is named twice" where)

        for k in undeclared do
            errors.Add(sprintf "variable %A is used but not declared" k)

        List.ofSeq errors

    // ---- LP names -------------------------------------------------------------------------

    let private lpKeywords =
        set
            [ "min"; "max"; "minimize"; "maximize"; "minimum"; "maximum"; "minimise"; "maximise"
              "subject"; "to"; "st"; "s.t."; "such"; "that"; "bound"; "bounds"; "gen"; "general"
              "generals"; "integer"; "integers"; "int"; "bin"; "binary"; "binaries"; "semi"; "semis"
              "semi-continuous"; "end"; "free"; "inf"; "infinity" ]

    /// Longest LP name CoinLpIO accepts is 100; leave room for a uniqueness suffix.
    let private maxBaseLength = 90

    /// CoinLpIO's legal characters, less '"' (which `%A` puts around every string and which
    /// other LP tools handle badly).
    let private isLpChar (c: char) =
        Char.IsAsciiLetterOrDigit c || "!#$%&(),.;?@_'`{}~".IndexOf c >= 0

    /// Maps any text to an LP-legal name (not yet unique). Brackets become parentheses so that
    /// `capacity[node=0]` stays readable as `capacity(node_0)`; runs of other illegal characters
    /// (spaces, quotes, '=', '-', …) become one '_', and are dropped at the end (`V "a"` → `V_a`).
    let sanitize (text: string) : string =
        let sb = StringBuilder()
        let mutable pendingUnderscore = false

        for c in text do
            let mapped =
                match c with
                | '[' -> '('
                | ']' -> ')'
                | c when isLpChar c -> c
                | _ -> '\000'

            if mapped = '\000' then
                pendingUnderscore <- true
            else
                if pendingUnderscore then sb.Append '_' |> ignore
                pendingUnderscore <- false
                sb.Append mapped |> ignore

        let s = sb.ToString()
        let s = if s.Length = 0 then "_" else s
        let s = if Char.IsAsciiDigit s[0] || s[0] = '.' || lpKeywords.Contains(s.ToLowerInvariant()) then "_" + s else s
        if s.Length > maxBaseLength then s.Substring(0, maxBaseLength) else s

    let private uniquify (taken: HashSet<string>) (name: string) =
        if taken.Add name then
            name
        else
            let rec next i =
                let candidate = name + "#" + string i
                if taken.Add candidate then candidate else next (i + 1)

            next 2

    /// LP names of the declared variables (they depend only on the keys and the name function).
    let lpVarNames (model: Model<'K>) : Map<'K, string> =
        let taken = HashSet<string>()
        model.vars |> Map.map (fun k _ -> uniquify taken (sanitize (model.varName k)))

    /// LP names of the constraints (in `Model.Constraints` order) and of the objectives, which
    /// share one namespace in the LP format.
    let lpRowNames (model: Model<'K>) : string[] * string[] =
        let taken = HashSet<string>()
        let rows = model.Constraints |> List.map (fun nc -> uniquify taken (sanitize nc.Name.Display)) |> Array.ofList
        let objectives = model.Objectives |> List.map (fun o -> uniquify taken (sanitize o.Name)) |> Array.ofList
        rows, objectives

    /// The LP names of a model's variables, constraints and objectives.
    let lpNames (model: Model<'K>) : LpNames<'K> =
        let rows, objectives = lpRowNames model
        { Vars = lpVarNames model; Rows = rows; Objectives = objectives }

    // ---- LP text --------------------------------------------------------------------------

    let private num (x: float) =
        if Double.IsPositiveInfinity x then "+inf"
        elif Double.IsNegativeInfinity x then "-inf"
        else x.ToString("R", CultureInfo.InvariantCulture)

    /// Writes `+ 3 x - 2.5 y …`, wrapping long lines (LP readers limit line length).
    let private appendTerms (sb: StringBuilder) (names: Map<'K, string>) (name: 'K -> string) (terms: seq<'K * float>) =
        let mutable lineLength = 0

        for k, c in terms do
            let n = match Map.tryFind k names with Some n -> n | None -> sanitize (name k)
            let piece = (if c < 0.0 then " - " else " + ") + num (abs c) + " " + n
            if lineLength + piece.Length > 200 then
                sb.Append("\n  ") |> ignore
                lineLength <- 0
            sb.Append piece |> ignore
            lineLength <- lineLength + piece.Length

    /// The model in CPLEX LP format (Maximize/Minimize, Subject To, Bounds, Generals, Binaries,
    /// End), readable by `cbc model.lp solve`. Only the first objective is written as the
    /// objective; the others, and objective constants, are written as comments, since the format
    /// has one objective. Each row is preceded by a comment with its display name
    /// (`\ capacity[node=0,type=EDC]`). A constraint without variables is written with a zero
    /// coefficient on one variable so that the row, feasible or not, is kept. Variables that
    /// appear nowhere else get a zero objective coefficient so that readers create their column.
    let toLpText (model: Model<'K>) : string =
        let names = lpNames model
        let sb = StringBuilder()
        let line (s: string) = sb.Append(s).Append('\n') |> ignore
        let objectives = model.Objectives
        let constraints = model.Constraints

        line (
            sprintf
                "\\ Trident MIP model: %d variables, %d constraints, %d objectives"
                model.vars.Count
                constraints.Length
                objectives.Length
        )

        let firstVar = model.vars |> Seq.tryHead |> Option.map (fun kv -> kv.Key)

        let used = HashSet<'K>()
        for nc in constraints do
            for k in nc.Constraint.Terms.Keys do used.Add k |> ignore
        match objectives with
        | o :: _ -> for k in o.Expr.Terms.Keys do used.Add k |> ignore
        | [] -> ()

        let unused = model.vars |> Seq.filter (fun kv -> not (used.Contains kv.Key)) |> Seq.map (fun kv -> kv.Key, 0.0)

        objectives
        |> List.iteri (fun i o ->
            if i > 0 then
                line (sprintf "\\ objective %d (%A, ties of earlier objectives only) %s:" (i + 1) o.Sense names.Objectives[i])
                sb.Append "\\ " |> ignore
                appendTerms sb names.Vars model.varName (Map.toSeq o.Expr.Terms)
                line ""
            if o.Expr.Constant <> 0.0 then
                line (sprintf "\\ objective %s has constant %s (not written)" names.Objectives[i] (num o.Expr.Constant)))

        let primary =
            match objectives with
            | o :: _ -> Some o
            | [] -> None

        line (
            match primary with
            | Some { Sense = Maximize } -> "Maximize"
            | _ -> "Minimize"
        )

        sb.Append(" " + (if names.Objectives.Length > 0 then names.Objectives[0] else "obj") + ":") |> ignore
        let objTerms = Seq.append (primary |> Option.map (fun o -> Map.toSeq o.Expr.Terms) |> Option.defaultValue Seq.empty) unused
        if Seq.isEmpty objTerms then
            match firstVar with
            | Some k -> appendTerms sb names.Vars model.varName [ k, 0.0 ]
            | None -> ()
        else
            appendTerms sb names.Vars model.varName objTerms
        line ""

        line "Subject To"

        constraints
        |> List.iteri (fun i nc ->
            let c = nc.Constraint
            line ("\\ " + nc.Name.Display)
            sb.Append(" " + names.Rows[i] + ":") |> ignore

            if c.Terms.IsEmpty then
                match firstVar with
                | Some k -> appendTerms sb names.Vars model.varName [ k, 0.0 ]
                | None -> ()
            else
                appendTerms sb names.Vars model.varName (Map.toSeq c.Terms)

            let op =
                match c.Relation with
                | LessOrEqual -> "<="
                | GreaterOrEqual -> ">="
                | Equal -> "="

            line (sprintf " %s %s" op (num c.Rhs)))

        line "Bounds"

        for KeyValue(k, kind) in model.vars do
            match kind with
            | Binary -> ()
            | Integer(lo, hi)
            | Continuous(lo, hi) ->
                let n = names.Vars[k]
                if Double.IsNegativeInfinity lo && Double.IsPositiveInfinity hi then
                    line (sprintf " %s free" n)
                else
                    line (sprintf " %s <= %s <= %s" (num lo) n (num hi))

        let section title (pick: VarKind -> bool) =
            let keys = model.vars |> Seq.filter (fun kv -> pick kv.Value) |> Seq.toList
            if not keys.IsEmpty then
                line title
                for kv in keys do
                    line (" " + names.Vars[kv.Key])

        section "Generals" (function Integer _ -> true | _ -> false)
        section "Binaries" (function Binary -> true | _ -> false)
        line "End"
        sb.ToString()
