module Trident.Tests.CostModelTests

open Xunit
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Tests.Generators

let private flux = CostModel.create CostSettings.defaults ReferenceProfiles.flux

[<Fact>]
let ``a measured point is reproduced exactly where the data are monotone`` () =
    // flux k = 1 is monotone in size, so the smoothed curve passes through every point
    for pt in ReferenceProfiles.flux.Diffuse.Points |> List.filter (fun p -> p.Degree = 1) do
        Assert.True(close 1e-9 (float pt.Seconds) (float (CostModel.diffuseStep flux pt.Shape 1)), sprintf "%O" pt.Shape)

[<Fact>]
let ``the reference memory checks of the data notes hold`` () =
    // data/reference/README.md, "Checks these numbers were chosen to pass"
    let need p t shape k = float (CostModel.memoryNeed (CostModel.create CostSettings.defaults p) t shape k)
    Assert.True(close 2e-3 32.4 (need ReferenceProfiles.sd3 EDC (Shape.image 2048 2048) 1))
    Assert.True(close 2e-3 38.0 (need ReferenceProfiles.flux EDC (Shape.image 1024 1024) 1))
    Assert.True(close 2e-3 50.6 (need ReferenceProfiles.flux EDC (Shape.image 2048 2048) 1))
    Assert.True(close 2e-3 45.0 (need ReferenceProfiles.cogvideox EDC (Shape.video 768 1360 81) 1))
    Assert.True(close 2e-3 50.1 (need ReferenceProfiles.hunyuanvideo EDC (Shape.video 720 1280 17) 1))
    let hy = CostModel.create CostSettings.defaults ReferenceProfiles.hunyuanvideo
    Assert.False(CostModel.fits hy D (Shape.video 720 1280 129) 1 48.0<GB>)
    Assert.True(CostModel.fits hy D (Shape.video 720 1280 129) 2 48.0<GB>)

[<Fact>]
let ``k star is the largest degree whose efficiency reaches theta`` () =
    // flux 1024²: eff(2) = 0.78 < 0.8 → k* = 1; 2048²: eff(2) = 0.82, eff(4) = 0.79 → k* = 2
    Assert.Equal(Some 1, CostModel.kStar flux (Shape.image 1024 1024))
    Assert.Equal(Some 2, CostModel.kStar flux (Shape.image 2048 2048))

[<Fact>]
let ``the reference deadline rule follows the reference code`` () =
    let m = CostModel.create { CostSettings.defaults with Deadline = ReferenceCode } ReferenceProfiles.flux
    let shape = Shape.image 1024 1024
    // k* = 1, t_D = 28 · 0.840336134 = 23.53 s → round(94.1) · 1.1 + 2 = 105.4 s
    Assert.True(close 1e-9 (10.0 + 94.0 * 1.1 + 2.0) (float (CostModel.deadline m 10.0<s> shape 28)))

[<Fact>]
let ``the slo scale deadline is arrival plus scale times t_ref`` () =
    let m = CostModel.create { CostSettings.defaults with Deadline = SloScale 3.0 } ReferenceProfiles.sd3
    let shape = Shape.image 512 512
    Assert.True(close 1e-9 (5.0 + 3.0 * float (CostModel.tRef m shape 20)) (float (CostModel.deadline m 5.0<s> shape 20)))

let private shapesAndDegrees =
    gen {
        let! p = Gen.choose (0, profiles.Length - 1)
        let m = costModel p
        let! k = Gen.elements m.Degrees
        let! h = Gen.choose (16, 4096)
        let! w = Gen.choose (16, 4096)
        let! f = if m.Profile.Video then Gen.choose (1, 129) else Gen.constant 1
        let! grow = Gen.choose (1, 2000)
        let! steps = Gen.choose (1, 100)
        return p, k, Shape.video h w f, grow, steps
    }
    |> Arb.fromGen

[<Fact>]
let ``the cost model is monotone in steps and in shape and never negative`` () =
    Prop.forAll shapesAndDegrees (fun (p, k, shape, grow, steps) ->
        let m = costModel p
        let bigger = { shape with Height = shape.Height + grow }
        let t = CostModel.diffuseTime m shape steps k
        (t >= 0.0<s> |> Prop.label "non-negative")
        .&. (CostModel.diffuseTime m shape (steps + 1) k >= t |> Prop.label "monotone in steps")
        .&. (CostModel.diffuseStep m bigger k >= CostModel.diffuseStep m shape k |> Prop.label "monotone in size (diffuse)")
        .&. (CostModel.decodeTime m bigger >= CostModel.decodeTime m shape |> Prop.label "monotone in size (decode)")
        .&. (CostModel.activation m Diffuse bigger k >= CostModel.activation m Diffuse shape k |> Prop.label "activation monotone")
        .&. (CostModel.tRef m shape steps > 0.0<s> |> Prop.label "t_ref positive"))
    |> check 300

[<Fact>]
let ``a profile survives a round trip through its file format`` () =
    for p in ReferenceProfiles.all do
        match ProfileFile.parse (ProfileFile.serialize p) with
        | Ok back -> Assert.Equal(p, back)
        | Error errs -> failwithf "%A" errs

[<Fact>]
let ``a bad profile file reports every problem at once`` () =
    let json =
        """{ "format": "trident-profile", "version": 2, "model": "", "device_class": "x",
             "device_memory_gb": -1, "source": "test", "video": false, "default_steps": 0,
             "embedding_bytes": 1, "latent_bytes_per_mpf": 1, "colour": "red",
             "stages": { "encode": { "weights_gb": 1, "estimated": true, "points": [] },
                         "diffuse": { "weights_gb": 1, "estimated": false,
                                      "points": [ { "height": 64, "width": 64, "frames": 1, "degree": 1, "seconds": 0, "peak_activation_gb": 0 } ] } } }"""
    match ProfileFile.parse json with
    | Ok _ -> failwith "accepted a bad profile"
    | Error errs ->
        let has (s: string) = errs |> List.exists (fun e -> e.Contains s)
        for expected in [ "$.version"; "$.model"; "$.device_memory_gb"; "$.default_steps"; "$.colour: unknown field"; "$.stages.encode.points"; "$.stages.diffuse.points[0].seconds"; "$.stages.decode: missing" ] do
            Assert.True(has expected, sprintf "no error for %s in %A" expected errs)

[<Fact>]
let ``a profile file that is not JSON is rejected with a message`` () =
    match ProfileFile.parse "{ not json" with
    | Ok _ -> failwith "accepted"
    | Error [ e ] -> Assert.Contains("not valid JSON", e)
    | Error errs -> failwithf "%A" errs
