module Trident.Tests.CostModelTests

open Expecto
open Trident.Tests.TestSupport
open FsCheck
open FsCheck.FSharp
open Trident.Scheduling
open Trident.Tests.Generators

let private flux = CostModel.create CostSettings.defaults ReferenceProfiles.flux

let ``a measured point is reproduced exactly where the data are monotone`` =
    testCase "a measured point is reproduced exactly where the data are monotone" <| fun () ->
        // flux k = 1 is monotone in size, so the smoothed curve passes through every point
        for pt in ReferenceProfiles.flux.Diffuse.Points |> List.filter (fun p -> p.Degree = 1) do
            Expect.isTrue (close 1e-9 (float pt.Seconds) (float (CostModel.diffuseStep flux pt.Shape 1))) (sprintf "%O" pt.Shape)

let ``the reference memory checks of the data notes hold`` =
    testCase "the reference memory checks of the data notes hold" <| fun () ->
        // data/reference/README.md, "Checks these numbers were chosen to pass"
        let need p t shape k = float (CostModel.memoryNeed (CostModel.create CostSettings.defaults p) t shape k)
        Expect.isTrue (close 2e-3 32.4 (need ReferenceProfiles.sd3 EDC (Shape.image 2048 2048) 1)) "close 2e-3 32.4 (need ReferenceProfiles.sd3 EDC (Shape.image 2048 2048) 1)"
        Expect.isTrue (close 2e-3 38.0 (need ReferenceProfiles.flux EDC (Shape.image 1024 1024) 1)) "close 2e-3 38.0 (need ReferenceProfiles.flux EDC (Shape.image 1024 1024) 1)"
        Expect.isTrue (close 2e-3 50.6 (need ReferenceProfiles.flux EDC (Shape.image 2048 2048) 1)) "close 2e-3 50.6 (need ReferenceProfiles.flux EDC (Shape.image 2048 2048) 1)"
        Expect.isTrue (close 2e-3 45.0 (need ReferenceProfiles.cogvideox EDC (Shape.video 768 1360 81) 1)) "close 2e-3 45.0 (need ReferenceProfiles.cogvideox EDC (Shape.video 768 1360 8..."
        Expect.isTrue (close 2e-3 50.1 (need ReferenceProfiles.hunyuanvideo EDC (Shape.video 720 1280 17) 1)) "close 2e-3 50.1 (need ReferenceProfiles.hunyuanvideo EDC (Shape.video 720 128..."
        let hy = CostModel.create CostSettings.defaults ReferenceProfiles.hunyuanvideo
        Expect.isFalse (CostModel.fits hy D (Shape.video 720 1280 129) 1 48.0<GB>) "CostModel.fits hy D (Shape.video 720 1280 129) 1 48.0<GB>"
        Expect.isTrue (CostModel.fits hy D (Shape.video 720 1280 129) 2 48.0<GB>) "CostModel.fits hy D (Shape.video 720 1280 129) 2 48.0<GB>"

let ``k star is the largest degree whose efficiency reaches theta`` =
    testCase "k star is the largest degree whose efficiency reaches theta" <| fun () ->
        // flux 1024²: eff(2) = 0.78 < 0.8 → k* = 1; 2048²: eff(2) = 0.82, eff(4) = 0.79 → k* = 2
        Expect.equal (CostModel.kStar flux (Shape.image 1024 1024)) (Some 1) "CostModel.kStar flux (Shape.image 1024 1024)"
        Expect.equal (CostModel.kStar flux (Shape.image 2048 2048)) (Some 2) "CostModel.kStar flux (Shape.image 2048 2048)"

let ``the reference deadline rule follows the reference code`` =
    testCase "the reference deadline rule follows the reference code" <| fun () ->
        let m = CostModel.create { CostSettings.defaults with Deadline = ReferenceCode } ReferenceProfiles.flux
        let shape = Shape.image 1024 1024
        // k* = 1, t_D = 28 · 0.840336134 = 23.53 s → round(94.1) · 1.1 + 2 = 105.4 s
        Expect.isTrue (close 1e-9 (10.0 + 94.0 * 1.1 + 2.0) (float (CostModel.deadline m 10.0<s> shape 28))) "close 1e-9 (10.0 + 94.0 * 1.1 + 2.0) (float (CostModel.deadline m 10.0<s> sha..."

let ``the slo scale deadline is arrival plus scale times t_ref`` =
    testCase "the slo scale deadline is arrival plus scale times t_ref" <| fun () ->
        let m = CostModel.create { CostSettings.defaults with Deadline = SloScale 3.0 } ReferenceProfiles.sd3
        let shape = Shape.image 512 512
        Expect.isTrue (close 1e-9 (5.0 + 3.0 * float (CostModel.tRef m shape 20)) (float (CostModel.deadline m 5.0<s> shape 20))) "close 1e-9 (5.0 + 3.0 * float (CostModel.tRef m shape 20)) (float (CostModel...."

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

let ``the cost model is monotone in steps and in shape and never negative`` =
    testProp 300 "the cost model is monotone in steps and in shape and never negative" <| fun () ->
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

let ``a profile survives a round trip through its file format`` =
    testCase "a profile survives a round trip through its file format" <| fun () ->
        for p in ReferenceProfiles.all do
            match ProfileFile.parse (ProfileFile.serialize p) with
            | Ok back -> Expect.equal back p "back"
            | Error errs -> failwithf "%A" errs

let ``a bad profile file reports every problem at once`` =
    testCase "a bad profile file reports every problem at once" <| fun () ->
        let json =
            """{ "format": "trident-profile", "version": 9, "model": "", "device_class": "x",
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
                Expect.isTrue (has expected) (sprintf "no error for %s in %A" expected errs)

let ``the example in docs/profile-format.md loads`` =
    testCase "the example in docs/profile-format.md loads" <| fun () ->
        // the repository root: the working directory or one above it (tests run from the root)
        let rec find (dir: System.IO.DirectoryInfo) =
            let path = System.IO.Path.Combine(dir.FullName, "docs", "profile-format.md")
            if System.IO.File.Exists path then path
            elif isNull dir.Parent then failwith "docs/profile-format.md not found above the working directory"
            else find dir.Parent
        let text = System.IO.File.ReadAllText(find (System.IO.DirectoryInfo(System.IO.Directory.GetCurrentDirectory())))
        let start = text.IndexOf "```json"
        Expect.isGreaterThanOrEqual start 0 "the page has a JSON example"
        let body = text.Substring(start + "```json".Length)
        let json = body.Substring(0, body.IndexOf "```")
        match ProfileFile.parse json with
        | Ok p ->
            Expect.equal p.Model.Value "flux" "the example's model"
            Expect.isNonEmpty p.Diffuse.Batches "its batch points load"
        | Error errs -> failwithf "the documented example does not load: %A" errs

let ``a profile file that is not JSON is rejected with a message`` =
    testCase "a profile file that is not JSON is rejected with a message" <| fun () ->
        match ProfileFile.parse "{ not json" with
        | Ok _ -> failwith "accepted"
        | Error [ e ] -> Expect.stringContains e "not valid JSON" "e"
        | Error errs -> failwithf "%A" errs

let ``a shape no placement of the cluster can serve is named, with what it needs`` =
    testCase "a shape no placement of the cluster can serve is named, with what it needs; one some placement serves is not" <| fun () ->
        let hunyuan = CostModel.create CostSettings.defaults ReferenceProfiles.hunyuanvideo
        let cluster nodes per = Cluster.uniform nodes per 48.0<GB> Bandwidths.pcie4Server
        let big = { Height = 720; Width = 1280; Frames = 129 }
        // its diffuse needs 8 devices (degree rules); ⟨ED⟩/⟨D⟩ then need a ⟨C⟩ device more; ⟨DC⟩/⟨EDC⟩ do not fit the decode
        match CostModel.unservableOn hunyuan (cluster 1 8) big with
        | Some why ->
            Expect.stringContains why "720x1280x129 cannot be served by any placement of this cluster (8 devices, at most 8 on one node" "names the shape and the cluster"
            Expect.stringContains why "a group of 8 ED devices on one node and 1 more for its decoder" "says what it needs"
        | None -> failtest "one node of eight 48 GB devices was taken to serve 129-frame 720p HunyuanVideo"
        Expect.isNone (CostModel.unservableOn hunyuan (cluster 2 8) big) "two nodes of eight: 8 ⟨ED⟩ on one, the ⟨C⟩ on the other"
        Expect.isNone (CostModel.unservableOn hunyuan (cluster 1 8) { big with Frames = 33 }) "33 frames: a group of 2"
        // a node too small for the degree rules' 8, whatever the device count
        Expect.isSome (CostModel.unservableOn hunyuan (cluster 4 4) big) "nodes of four cannot form a group of 8"
        let flux = CostModel.create CostSettings.defaults ReferenceProfiles.flux
        Expect.isNone (CostModel.unservableOn flux (Cluster.uniform 1 1 48.0<GB> Bandwidths.pcie4Server) (Shape.image 1024 1024)) "one device serves a 1024² image"
        match CostModel.unservableOn flux (Cluster.uniform 1 1 8.0<GB> Bandwidths.pcie4Server) (Shape.image 1024 1024) with
        | Some why -> Expect.stringContains why "does not fit any device of this cluster" "too little memory anywhere"
        | None -> failtest "an 8 GB device was taken to hold flux"

[<Tests>]
let tests =
    testList "unit" [ testList "CostModelTests" [
        ``a measured point is reproduced exactly where the data are monotone``
        ``the reference memory checks of the data notes hold``
        ``k star is the largest degree whose efficiency reaches theta``
        ``the reference deadline rule follows the reference code``
        ``the slo scale deadline is arrival plus scale times t_ref``
        ``the cost model is monotone in steps and in shape and never negative``
        ``a profile survives a round trip through its file format``
        ``a bad profile file reports every problem at once``
        ``a profile file that is not JSON is rejected with a message``
        ``the example in docs/profile-format.md loads``
        ``a shape no placement of the cluster can serve is named, with what it needs``
    ] |> testSequencedGroup "CostModelTests" ]
