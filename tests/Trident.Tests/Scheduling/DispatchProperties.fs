module Trident.Tests.DispatchProperties

open Xunit
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Scheduling.Dispatching
open Trident.Tests.Generators

/// Turns the named invariant checks into one labelled property.
let invariantsHold (s: Snapshot) (plan: DispatchPlan) =
    let dispatched = plan.Dispatches |> List.map _.Request |> Set.ofList
    let remaining = s.Queue |> List.filter (fun r -> not (dispatched.Contains r.Id))
    PlanChecks.all s plan remaining
    |> List.map (fun (name, violations) -> (List.isEmpty violations) |> Prop.label (sprintf "%s: %A" name violations))
    |> List.reduce (.&.)
    |> Prop.classify plan.Dispatches.IsEmpty "nothing dispatched"
    |> Prop.classify (plan.Dispatches |> List.exists (fun d -> d.Degree > 1)) "some k > 1"
    |> Prop.classify (plan.Dispatches |> List.exists (fun d -> d.Vr <> V0)) "some disaggregated VR"

[<Fact>]
let ``greedy plans keep every dispatch invariant`` () =
    Prop.forAll snapshotSpecs (fun spec ->
        let s = buildSnapshot DispatchSettings.defaults spec
        let plan, _ = Greedy.plan "test" s
        invariantsHold s plan)
    |> check 300

[<Fact>]
let ``greedy dispatches something when a request fits an idle group`` () =
    Prop.forAll snapshotSpecs (fun spec ->
        let spec = { spec with Busy = [] }
        let s = buildSnapshot DispatchSettings.defaults spec
        let plan, _ = Greedy.plan "test" s
        let anyAdmissible = s.Queue |> List.exists (fun r -> not (Admissible.options s r).IsEmpty)
        (not anyAdmissible || not plan.Dispatches.IsEmpty) |> Prop.label "idle cluster, admissible request, nothing dispatched")
    |> check 200
