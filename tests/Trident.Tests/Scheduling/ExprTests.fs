/// Linear expressions: eager normalisation and the operator set (Mip/Expr.fs).
module Trident.Tests.Scheduling.ExprTests

open FsCheck
open FsCheck.FSharp
open Expecto
open Trident.Tests.TestSupport
open Trident.Scheduling.Mip

/// Variable keys for these tests: a handful, so that generated expressions share variables.
type Key =
    | A
    | B
    | C
    | D
    | E

let private keys = [ A; B; C; D; E ]

/// Explicit float tolerance: |a − b| ≤ tol·max(1, |a|, |b|).
let private close (tol: float) (a: float) (b: float) = abs (a - b) <= tol * max 1.0 (max (abs a) (abs b))

let private tol = 1e-9

/// Dyadic numbers k/8 with |k| ≤ 800: zero is common (normalisation is exercised), and sums and
/// products of a few of them are exact in binary floating point.
let private genNumber: Gen<float> =
    Gen.frequency [ 1, Gen.constant 0.0; 6, Gen.choose (-800, 800) |> Gen.map (fun k -> float k / 8.0) ]

let private genExpr: Gen<LinExpr<Key>> =
    gen {
        let! terms = Gen.listOf (Gen.zip (Gen.elements keys) genNumber)
        let! constant = genNumber
        return LinExpr.ofTerms terms + constant
    }

/// A value for every key.
let private genAssignment: Gen<Key -> float> =
    Gen.listOfLength keys.Length genNumber
    |> Gen.map (fun vs ->
        let m = List.zip keys vs |> Map.ofList
        fun k -> m[k])

let private arb g = Arb.fromGen g

let private hasNoZeroCoefficient (e: LinExpr<Key>) = e.Terms |> Map.forall (fun _ c -> c <> 0.0)

let ``evaluating a sum gives the sum of the evaluations`` =
    testProp 200 "evaluating a sum gives the sum of the evaluations" <| fun () ->
        (
            Prop.forAll (arb (Gen.three genExpr |> Gen.zip genAssignment)) (fun (value, (a, b, c)) ->
                let ev = LinExpr.evaluate value

                (close tol (ev (a + b)) (ev a + ev b) |> Prop.label "a + b")
                .&. (close tol (ev (a - b)) (ev a - ev b) |> Prop.label "a - b")
                .&. (close tol (ev (-a)) (-(ev a)) |> Prop.label "-a")
                .&. (close tol (ev (LinExpr.sum [ a; b; c ])) (ev a + ev b + ev c) |> Prop.label "sum"))
        )

let ``scaling on either side gives the same expression and scales its value`` =
    testProp 200 "scaling on either side gives the same expression and scales its value" <| fun () ->
        (
            Prop.forAll (arb (Gen.zip3 genExpr genNumber genAssignment)) (fun (a, k, value) ->
                ((k * a) = (a * k) |> Prop.label "k * a = a * k")
                .&. (close tol (LinExpr.evaluate value (k * a)) (k * LinExpr.evaluate value a) |> Prop.label "value"))
        )

let ``no operation leaves a zero coefficient behind`` =
    testProp 200 "no operation leaves a zero coefficient behind" <| fun () ->
        (
            Prop.forAll (arb (Gen.zip3 genExpr genExpr genNumber)) (fun (a, b, k) ->
                [ "a + b", a + b
                  "a - b", a - b
                  "a - a", a - a
                  "k * a", k * a
                  "sum", LinExpr.sum [ a; b; -a ]
                  "a + k", a + k ]
                |> List.map (fun (name, e) -> hasNoZeroCoefficient e |> Prop.label name)
                |> List.reduce (.&.))
        )

let ``an expression minus itself is the zero expression`` =
    testProp 200 "an expression minus itself is the zero expression" <| fun () ->
        (Prop.forAll (arb genExpr) (fun a -> a - a = LinExpr.zero && a + (-a) = LinExpr.zero))

let ``addition is commutative and associative on normalised expressions`` =
    testProp 200 "addition is commutative and associative on normalised expressions" <| fun () ->
        // Dyadic coefficients make float addition exact here, so structural equality is the right test.
        (
            Prop.forAll (arb (Gen.three genExpr)) (fun (a, b, c) ->
                (a + b = b + a |> Prop.label "commutative")
                .&. ((a + b) + c = a + (b + c) |> Prop.label "associative")
                .&. (LinExpr.sum [ a; b; c ] = a + b + c |> Prop.label "sum agrees with +")
                .&. (List.sum [ a; b; c ] = a + b + c |> Prop.label "List.sum agrees with +"))
        )

let ``a constraint builder moves every variable left and the constant right`` =
    testProp 200 "a constraint builder moves every variable left and the constant right" <| fun () ->
        (
            Prop.forAll (arb (Gen.two genExpr)) (fun (a, b) ->
                let d = a - b

                let agrees (c: Constraint<Key>) relation =
                    c.Terms = d.Terms && c.Rhs = -d.Constant && c.Relation = relation

                (agrees (a <== b) LessOrEqual |> Prop.label "<==")
                .&. (agrees (a >== b) GreaterOrEqual |> Prop.label ">==")
                .&. (agrees (a === b) Equal |> Prop.label "==="))
        )

let ``a constraint holds exactly when its two sides compare that way`` =
    testProp 200 "a constraint holds exactly when its two sides compare that way" <| fun () ->
        // Exact dyadic arithmetic: comparing with zero tolerance is sound here.
        (
            Prop.forAll (arb (Gen.zip3 genExpr genExpr genAssignment)) (fun (a, b, value) ->
                let ea, eb = LinExpr.evaluate value a, LinExpr.evaluate value b

                (Constraint.isSatisfied 0.0 value (a <== b) = (ea <= eb) |> Prop.label "<=")
                .&. (Constraint.isSatisfied 0.0 value (a >== b) = (ea >= eb) |> Prop.label ">=")
                .&. (Constraint.isSatisfied 0.0 value (a === b) = (ea = eb) |> Prop.label "="))
        )

let ``constants are accepted on either side of every operator`` =
    testCase "constants are accepted on either side of every operator" <| fun () ->
        let x = LinExpr.var A
        Expect.equal (2.0 + x) (x + 2.0) "2.0 + x"
        Expect.equal (3.0 - x) (LinExpr.ofTerms [ A, -1.0 ] + 3.0) "3.0 - x"
        Expect.equal (x - 3.0) (x + -3.0) "x - 3.0"
        Expect.equal (x <== LinExpr.constant 4.0) (x <== 4.0: Constraint<Key>) "x <== LinExpr.constant 4.0"
        Expect.equal (LinExpr.constant 4.0 >== x) (4.0 >== x: Constraint<Key>) "LinExpr.constant 4.0 >== x"
        Expect.equal (x - 1.5 === LinExpr.zero) (x === 1.5: Constraint<Key>) "x - 1.5 === LinExpr.zero"

let ``building from terms sums repeated keys and drops cancelled ones`` =
    testCase "building from terms sums repeated keys and drops cancelled ones" <| fun () ->
        let e = LinExpr.ofTerms [ A, 2.0; B, 1.0; A, 3.0; B, -1.0; C, 0.0 ]
        Expect.equal e.Terms (Map.ofList [ A, 5.0 ]: Map<Key, float>) "e.Terms"
        Expect.equal e.Constant 0.0 "e.Constant"
        Expect.isEmpty ((LinExpr.term 0.0 D).Terms) "(LinExpr.term 0.0 D).Terms"
        Expect.equal (LinExpr.ofVar (Var.binary E)) (LinExpr.var E) "LinExpr.ofVar (Var.binary E)"

let ``the empty sum is zero`` =
    testCase "the empty sum is zero" <| fun () ->
        Expect.equal (LinExpr.sum []) (LinExpr.zero<Key>) "LinExpr.sum []"
        Expect.equal (LinExpr.evaluate (fun (_: Key) -> 1.0) (LinExpr.sum [])) 0.0 "LinExpr.evaluate (fun (_: Key) -> 1.0) (LinExpr.sum [])"

[<Tests>]
let tests =
    testList "unit" [ testList "ExprTests" [
        ``evaluating a sum gives the sum of the evaluations``
        ``scaling on either side gives the same expression and scales its value``
        ``no operation leaves a zero coefficient behind``
        ``an expression minus itself is the zero expression``
        ``addition is commutative and associative on normalised expressions``
        ``a constraint builder moves every variable left and the constant right``
        ``a constraint holds exactly when its two sides compare that way``
        ``constants are accepted on either side of every operator``
        ``building from terms sums repeated keys and drops cancelled ones``
        ``the empty sum is zero``
    ] |> testSequencedGroup "ExprTests" ]
