namespace Trident.Scheduling.Mip

// Design note
// -----------
// Decision variables are identified by a caller-chosen key type 'K (typically a DU such as
// `X of RequestId * Degree`), never by hand-built strings; LP names are derived from the keys
// later, in Model.fs. A linear expression is a `Map<'K, float>` of coefficients plus a constant,
// normalised eagerly: every operation drops coefficients that become exactly zero, so two
// expressions that denote the same linear function with the same float coefficients are equal
// under F#'s ordinary structural equality (no custom, tolerance-based float equality).
//
// There is one small operator set, all on `LinExpr<'K>`: `+`, `-` (with a float on either side
// for constants), unary `-`, scalar `*` on either side, and the constraint builders `<==`, `>==`,
// `===`, which move everything to the left-hand side and the constant to the right. `=` keeps its
// usual meaning (structural equality).

/// The domain of one decision variable. Bounds may be infinite (`-infinity` / `infinity`).
type VarKind =
    /// 0/1 variable.
    | Binary
    /// Integer variable in [lower, upper].
    | Integer of lower: float * upper: float
    /// Continuous variable in [lower, upper].
    | Continuous of lower: float * upper: float

/// A decision variable: the caller's key and its domain.
type Var<'K when 'K: comparison> = { Key: 'K; Kind: VarKind }

/// Builders for decision variables.
[<RequireQualifiedAccess>]
module Var =
    /// A 0/1 variable.
    let binary (key: 'K) : Var<'K> = { Key = key; Kind = Binary }

    /// An integer variable in [lower, upper] (either bound may be infinite).
    let integer (lower: float) (upper: float) (key: 'K) : Var<'K> =
        { Key = key; Kind = Integer(lower, upper) }

    /// A continuous variable in [lower, upper] (either bound may be infinite).
    let continuous (lower: float) (upper: float) (key: 'K) : Var<'K> =
        { Key = key; Kind = Continuous(lower, upper) }

    /// Lower and upper bound of a kind (Binary is [0, 1]).
    let bounds (kind: VarKind) : float * float =
        match kind with
        | Binary -> 0.0, 1.0
        | Integer(lo, hi)
        | Continuous(lo, hi) -> lo, hi

    /// True for Binary and Integer variables.
    let isIntegral (kind: VarKind) : bool =
        match kind with
        | Binary
        | Integer _ -> true
        | Continuous _ -> false

/// The sense of a linear constraint `terms (sense) rhs`.
type Relation =
    | LessOrEqual
    | GreaterOrEqual
    | Equal

/// A linear constraint `Terms Relation Rhs`, with every variable on the left-hand side and the
/// constant on the right. Built with `<==`, `>==` or `===`; named when added to a model.
type Constraint<'K when 'K: comparison> =
    private
        { terms: Map<'K, float>
          relation: Relation
          rhs: float }

    /// Non-zero coefficients of the left-hand side.
    member c.Terms = c.terms
    /// The constraint's sense.
    member c.Relation = c.relation
    /// The right-hand side constant.
    member c.Rhs = c.rhs

/// An affine expression: `Σ coefficient·variable + Constant`, with no zero coefficients.
type LinExpr<'K when 'K: comparison> =
    private
        { terms: Map<'K, float>
          constant: float }

    /// Non-zero coefficients, by variable key.
    member e.Terms = e.terms
    /// The constant part.
    member e.Constant = e.constant

    static member internal Make(terms: Map<'K, float>, constant: float) : LinExpr<'K> =
        { terms = terms; constant = constant }

    /// Adds `coef` to the coefficient of `key` in `terms`, dropping it when it becomes zero.
    static member internal AddTerm (terms: Map<'K, float>) (key: 'K) (coef: float) : Map<'K, float> =
        match Map.tryFind key terms with
        | Some c ->
            let sum = c + coef
            if sum = 0.0 then Map.remove key terms else Map.add key sum terms
        | None -> if coef = 0.0 then terms else Map.add key coef terms

    static member internal Scale (k: float) (e: LinExpr<'K>) : LinExpr<'K> =
        if k = 0.0 then
            { terms = Map.empty; constant = 0.0 }
        else
            // k·c can underflow to zero for tiny k·c: filter to keep the invariant.
            { terms = e.terms |> Map.map (fun _ c -> k * c) |> Map.filter (fun _ c -> c <> 0.0)
              constant = k * e.constant }

    static member internal Add (a: LinExpr<'K>) (b: LinExpr<'K>) : LinExpr<'K> =
        // Fold the smaller map into the larger one.
        let big, small = if a.terms.Count >= b.terms.Count then a, b else b, a

        { terms = Map.fold LinExpr<'K>.AddTerm big.terms small.terms
          constant = a.constant + b.constant }

    static member internal Relate (relation: Relation) (lhs: LinExpr<'K>) (rhs: LinExpr<'K>) : Constraint<'K> =
        let d = LinExpr<'K>.Add lhs (LinExpr<'K>.Scale -1.0 rhs)

        { terms = d.terms
          relation = relation
          rhs = -d.constant }

    /// The constant expression `c`.
    static member OfFloat(c: float) : LinExpr<'K> = { terms = Map.empty; constant = c }

    /// The zero expression (lets `List.sum` and `Seq.sumBy` work on expressions).
    static member Zero: LinExpr<'K> = { terms = Map.empty; constant = 0.0 }

    /// Sum of two expressions.
    static member (+)(a: LinExpr<'K>, b: LinExpr<'K>) = LinExpr<'K>.Add a b
    /// Expression plus a constant.
    static member (+)(a: LinExpr<'K>, c: float) = LinExpr<'K>.Add a (LinExpr<'K>.OfFloat c)
    /// Constant plus an expression.
    static member (+)(c: float, a: LinExpr<'K>) = LinExpr<'K>.Add (LinExpr<'K>.OfFloat c) a
    /// Difference of two expressions.
    static member (-)(a: LinExpr<'K>, b: LinExpr<'K>) = LinExpr<'K>.Add a (LinExpr<'K>.Scale -1.0 b)
    /// Expression minus a constant.
    static member (-)(a: LinExpr<'K>, c: float) = LinExpr<'K>.Add a (LinExpr<'K>.OfFloat -c)
    /// Constant minus an expression.
    static member (-)(c: float, a: LinExpr<'K>) = LinExpr<'K>.Add (LinExpr<'K>.OfFloat c) (LinExpr<'K>.Scale -1.0 a)
    /// Negation.
    static member (~-)(a: LinExpr<'K>) = LinExpr<'K>.Scale -1.0 a
    /// Scalar times expression.
    static member (*)(k: float, a: LinExpr<'K>) = LinExpr<'K>.Scale k a
    /// Expression times scalar.
    static member (*)(a: LinExpr<'K>, k: float) = LinExpr<'K>.Scale k a

    /// `a <= b` as a constraint.
    static member (<==)(a: LinExpr<'K>, b: LinExpr<'K>) = LinExpr<'K>.Relate LessOrEqual a b
    /// `a <= c` as a constraint.
    static member (<==)(a: LinExpr<'K>, c: float) = LinExpr<'K>.Relate LessOrEqual a (LinExpr<'K>.OfFloat c)
    /// `c <= a` as a constraint.
    static member (<==)(c: float, a: LinExpr<'K>) = LinExpr<'K>.Relate LessOrEqual (LinExpr<'K>.OfFloat c) a
    /// `a >= b` as a constraint.
    static member (>==)(a: LinExpr<'K>, b: LinExpr<'K>) = LinExpr<'K>.Relate GreaterOrEqual a b
    /// `a >= c` as a constraint.
    static member (>==)(a: LinExpr<'K>, c: float) = LinExpr<'K>.Relate GreaterOrEqual a (LinExpr<'K>.OfFloat c)
    /// `c >= a` as a constraint.
    static member (>==)(c: float, a: LinExpr<'K>) = LinExpr<'K>.Relate GreaterOrEqual (LinExpr<'K>.OfFloat c) a
    /// `a = b` as a constraint.
    static member (===)(a: LinExpr<'K>, b: LinExpr<'K>) = LinExpr<'K>.Relate Equal a b
    /// `a = c` as a constraint.
    static member (===)(a: LinExpr<'K>, c: float) = LinExpr<'K>.Relate Equal a (LinExpr<'K>.OfFloat c)
    /// `c = a` as a constraint.
    static member (===)(c: float, a: LinExpr<'K>) = LinExpr<'K>.Relate Equal (LinExpr<'K>.OfFloat c) a

/// Functions on linear expressions.
[<RequireQualifiedAccess>]
module LinExpr =
    /// The zero expression.
    let zero<'K when 'K: comparison> : LinExpr<'K> = LinExpr<'K>.Zero

    /// The constant expression `c`.
    let constant (c: float) : LinExpr<'K> = LinExpr<'K>.OfFloat c

    /// `coef · key`.
    let term (coef: float) (key: 'K) : LinExpr<'K> =
        LinExpr<'K>.Make((if coef = 0.0 then Map.empty else Map.ofList [ key, coef ]), 0.0)

    /// The variable `key` with coefficient 1.
    let var (key: 'K) : LinExpr<'K> = term 1.0 key

    /// The variable of a declared `Var` with coefficient 1.
    let ofVar (v: Var<'K>) : LinExpr<'K> = var v.Key

    /// `Σ coef·key` over the pairs; repeated keys are summed.
    let ofTerms (terms: seq<'K * float>) : LinExpr<'K> =
        LinExpr<'K>.Make(terms |> Seq.fold (fun m (k, c) -> LinExpr<'K>.AddTerm m k c) Map.empty, 0.0)

    /// Sum of expressions (the empty sum is zero).
    let sum (exprs: seq<LinExpr<'K>>) : LinExpr<'K> =
        let mutable terms = Map.empty
        let mutable constant = 0.0

        for e in exprs do
            terms <- Map.fold LinExpr<'K>.AddTerm terms e.Terms
            constant <- constant + e.Constant

        LinExpr<'K>.Make(terms, constant)

    /// The value of the expression when each variable `k` takes the value `value k`.
    let evaluate (value: 'K -> float) (e: LinExpr<'K>) : float =
        e.Terms |> Map.fold (fun acc k c -> acc + c * value k) e.Constant

    /// The keys with a non-zero coefficient.
    let keys (e: LinExpr<'K>) : Set<'K> =
        e.Terms |> Map.keys |> Set.ofSeq

/// Functions on constraints.
[<RequireQualifiedAccess>]
module Constraint =
    /// True when `value` satisfies the constraint within the absolute tolerance `tol`.
    let isSatisfied (tol: float) (value: 'K -> float) (c: Constraint<'K>) : bool =
        let lhs = c.Terms |> Map.fold (fun acc k coef -> acc + coef * value k) 0.0

        match c.Relation with
        | LessOrEqual -> lhs <= c.Rhs + tol
        | GreaterOrEqual -> lhs >= c.Rhs - tol
        | Equal -> abs (lhs - c.Rhs) <= tol
