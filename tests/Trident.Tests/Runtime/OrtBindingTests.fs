/// The ONNX Runtime binding (Trident.Runtime.Native, Trident.Runtime.Onnx) and the model writer
/// (Trident.Runtime.Onnx.ModelWriter): graphs written with GraphBuilder run through the binding and agree
/// with reference computations written here; failures surface as OrtException with ORT's message.
module Trident.Tests.Runtime.OrtBindingTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open System.Threading.Tasks
open FsCheck
open FsCheck.FSharp
open Xunit
open Trident.Runtime.Native
open Trident.Runtime.Onnx
open Trident.Runtime.Onnx.ModelWriter

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

let private env = OrtEnvironment.Shared

/// One intra-op thread: the machine is shared, and results must not depend on threading.
let private singleThreaded = SessionOptions(IntraOpThreads = 1, InterOpThreads = 1)

let private session (g: GraphBuilder) = env.CreateSession(ReadOnlySpan(g.ToBytes()), singleThreaded)

let private run (s: Session) (inputs: Tensor array) = s.Run(ReadOnlySpan(inputs)) |> Seq.toArray

let private check (maxTest: int) property =
    Check.One(Config.QuickThrowOnFailure.WithMaxTest(maxTest), property)

/// |expected - actual| <= tolerance * (1 + |expected|), elementwise, with the first offender in the label.
let private approxEqual (tolerance: float32) (expected: float32 array) (actual: float32 array) =
    let offender =
        Array.zip expected actual
        |> Array.tryFindIndex (fun (e, a) -> abs (e - a) > tolerance * (1.0f + abs e))
    match offender with
    | _ when expected.Length <> actual.Length ->
        false |> Prop.label (sprintf "length %d <> %d" expected.Length actual.Length)
    | Some i -> false |> Prop.label (sprintf "element %d: expected %g, got %g" i expected.[i] actual.[i])
    | None -> true |> Prop.label "all elements within tolerance"

/// Small floats in [-4, 4], in steps of 1/1000, so references stay well conditioned.
let private smallFloat = Gen.choose (-4000, 4000) |> Gen.map (fun i -> float32 i / 1000.0f)

let private floats n = Gen.arrayOfLength n smallFloat

let private tempFile (suffix: string) =
    Path.Combine(Path.GetTempPath(), sprintf "trident-ort-%s%s" (Guid.NewGuid().ToString "N") suffix)

/// Row-major [m, k] x [k, n].
let private matMul (a: float32 array) (b: float32 array) m k n =
    Array.init (m * n) (fun idx ->
        let i, j = idx / n, idx % n
        let mutable acc = 0.0f
        for p in 0 .. k - 1 do
            acc <- acc + a.[i * k + p] * b.[p * n + j]
        acc)

/// Softmax of each row of a row-major [rows, cols] matrix.
let private softmaxRows (x: float32 array) cols =
    x
    |> Array.chunkBySize cols
    |> Array.collect (fun row ->
        let m = Array.max row
        let e = row |> Array.map (fun v -> exp (v - m))
        let s = Array.sum e
        e |> Array.map (fun v -> v / s))

// ---------------------------------------------------------------------------------------------------------
// Environment and loader
// ---------------------------------------------------------------------------------------------------------

[<Fact>]
let ``the shared environment runs ONNX Runtime 1.30.0 with its CPU provider`` () =
    Assert.Equal("1.30.0", env.Version)
    Assert.Contains("CPUExecutionProvider", env.AvailableProviders)
    Assert.True(File.Exists env.LibraryPath, env.LibraryPath)

[<Fact>]
let ``a missing TRIDENT_ORT_LIBRARY path is reported with the path and both fixes`` () =
    let missing = Path.Combine(Path.GetTempPath(), "no-such-dir", "libonnxruntime.so.1")
    let inputs = LoaderInputs(missing, null, Path.GetTempPath(), null, Func<_, _>(File.Exists))
    let e = Assert.Throws<OrtLibraryNotFoundException>(fun () -> NativeLibraryLoader.Locate inputs |> ignore)
    Assert.Equal<string seq>([ missing ], e.PathsTried)
    Assert.Contains(missing, e.Message)
    Assert.Contains("TRIDENT_ORT_LIBRARY", e.Message)
    Assert.Contains("dotnet fsi build.fsx -t setup", e.Message)

[<Fact>]
let ``the search names every directory it tried from the base directory and TRIDENT_HOME`` () =
    let baseDir = Path.Combine(Path.GetTempPath(), "trident-base", "bin", "Release")
    let home = Path.Combine(Path.GetTempPath(), "trident-home")
    let inputs = LoaderInputs(null, null, baseDir, home, Func<_, _>(fun _ -> false))
    let e = Assert.Throws<OrtLibraryNotFoundException>(fun () -> NativeLibraryLoader.Locate inputs |> ignore)
    let expected dir = Path.Combine(dir, ".cache", "onnxruntime", "1.30.0", "libonnxruntime.so.1")
    for dir in [ baseDir; Path.GetDirectoryName baseDir; home; "/" ] do
        Assert.Contains(expected dir, e.PathsTried)
        Assert.Contains(expected dir, e.Message)
    Assert.Equal(e.PathsTried.Count, (Set.ofSeq e.PathsTried).Count)

[<Fact>]
let ``the search finds the cached library in an ancestor of the base directory`` () =
    let root = Path.Combine(Path.GetTempPath(), "trident-checkout")
    let cached = Path.Combine(root, ".cache", "onnxruntime", "1.30.0", "libonnxruntime.so.1")
    let inputs = LoaderInputs(null, null, Path.Combine(root, "tests", "bin"), null, Func<_, _>(fun p -> p = cached))
    Assert.Equal(cached, (NativeLibraryLoader.Locate inputs).Path)

[<Fact>]
let ``a configured path is used as given and never falls back to the search`` () =
    let configured = Path.Combine(Path.GetTempPath(), "elsewhere", "libonnxruntime.so.1")
    let found = LoaderInputs(null, configured, "/", null, Func<_, _>(fun p -> p = configured))
    Assert.Equal(configured, (NativeLibraryLoader.Locate found).Path)
    let missing = LoaderInputs(null, configured, "/", null, Func<_, _>(fun p -> p <> configured))
    let e = Assert.Throws<OrtLibraryNotFoundException>(fun () -> NativeLibraryLoader.Locate missing |> ignore)
    Assert.Equal<string seq>([ configured ], e.PathsTried)

// ---------------------------------------------------------------------------------------------------------
// Graphs built with GraphBuilder, run through the binding, against references
// ---------------------------------------------------------------------------------------------------------

let private matMulModel () =
    let g = GraphBuilder("matmul")
    let a = g.Input("a", TensorElementType.Float, Dim.Symbolic "m", Dim.Symbolic "k")
    let b = g.Input("b", TensorElementType.Float, Dim.Symbolic "k", Dim.Symbolic "n")
    g.Output(g.MatMul(a, b), "c", TensorElementType.Float, Dim.Symbolic "m", Dim.Symbolic "n") |> ignore
    g

[<Fact>]
let ``a session reports its inputs and outputs with -1 for symbolic dimensions`` () =
    use s = session (matMulModel ())
    Assert.Equal<string seq>([ "a"; "b" ], s.Inputs |> Seq.map (fun i -> i.Name))
    Assert.Equal<int64 seq>([ -1L; -1L ], s.Inputs.[0].Shape)
    Assert.Equal(TensorElementType.Float, s.Outputs.[0].ElementType)
    Assert.Equal(1, s.InputIndex "b")
    Assert.Equal(0, s.OutputIndex "c")

[<Fact>]
let ``a MatMul graph agrees with the reference product`` () =
    use s = session (matMulModel ())
    let case =
        gen {
            let! m = Gen.choose (1, 6)
            let! k = Gen.choose (1, 6)
            let! n = Gen.choose (1, 6)
            let! a = floats (m * k)
            let! b = floats (k * n)
            return m, k, n, a, b
        }
    check 100 (Prop.forAll (Arb.fromGen case) (fun (m, k, n, a, b) ->
        let out = run s [| Tensor.FromFloat(a, int64 m, int64 k); Tensor.FromFloat(b, int64 k, int64 n) |]
        let c = out.[0].Tensor
        (c.Shape |> Seq.toList = [ int64 m; int64 n ] |> Prop.label "shape [m, n]")
        .&. approxEqual 1e-5f (matMul a b m k n) (c.AsFloat())))

[<Fact>]
let ``a Softmax graph agrees with the reference softmax over the last axis`` () =
    let g = GraphBuilder("softmax")
    let x = g.Input("x", TensorElementType.Float, Dim.Symbolic "rows", Dim.Symbolic "cols")
    g.Output(g.Softmax(x, -1L), "y", TensorElementType.Float, Dim.Symbolic "rows", Dim.Symbolic "cols") |> ignore
    use s = session g
    let case =
        gen {
            let! rows = Gen.choose (1, 5)
            let! cols = Gen.choose (1, 9)
            let! x = floats (rows * cols)
            return rows, cols, x
        }
    check 100 (Prop.forAll (Arb.fromGen case) (fun (rows, cols, x) ->
        let y = (run s [| Tensor.FromFloat(x, int64 rows, int64 cols) |]).[0].Tensor.AsFloat()
        approxEqual 1e-5f (softmaxRows x cols) y))

/// Reference 2-D convolution, one image: x [cin, h, w], weight [cout, cin, k, k], zero padding `pad`, stride 1.
let private conv2d (x: float32 array) (weight: float32 array) (bias: float32 array) cin cout h w k pad =
    let oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    Array.init (cout * oh * ow) (fun idx ->
        let o, y, xo = idx / (oh * ow), (idx / ow) % oh, idx % ow
        let mutable acc = bias.[o]
        for c in 0 .. cin - 1 do
            for dy in 0 .. k - 1 do
                for dx in 0 .. k - 1 do
                    let iy, ix = y + dy - pad, xo + dx - pad
                    if iy >= 0 && iy < h && ix >= 0 && ix < w then
                        acc <- acc + x.[(c * h + iy) * w + ix] * weight.[((o * cin + c) * k + dy) * k + dx]
        acc)

[<Fact>]
let ``a Conv graph with initializer weights agrees with the reference convolution`` () =
    let cin, cout, k, pad = 2, 3, 3, 1
    let case =
        gen {
            let! h = Gen.choose (1, 6)
            let! w = Gen.choose (1, 6)
            let! x = floats (cin * h * w)
            let! weight = floats (cout * cin * k * k)
            let! bias = floats cout
            return h, w, x, weight, bias
        }
    check 40 (Prop.forAll (Arb.fromGen case) (fun (h, w, x, weight, bias) ->
        let g = GraphBuilder("conv")
        let input = g.Input("x", TensorElementType.Float, Dim.Fixed 1L, Dim.Fixed(int64 cin), Dim.Symbolic "h", Dim.Symbolic "w")
        let wv = g.Initializer("w", weight, int64 cout, int64 cin, int64 k, int64 k)
        let bv = g.Initializer("b", bias, int64 cout)
        let y = g.Conv(input, wv, bv, [| int64 k; int64 k |], pads = [| int64 pad; int64 pad; int64 pad; int64 pad |])
        g.Output(y, "y", TensorElementType.Float, null) |> ignore
        use s = session g
        let out = (run s [| Tensor.FromFloat(x, 1L, int64 cin, int64 h, int64 w) |]).[0].Tensor
        (out.Shape |> Seq.toList = [ 1L; int64 cout; int64 h; int64 w ] |> Prop.label "same-padded shape")
        .&. approxEqual 1e-4f (conv2d x weight bias cin cout h w k pad) (out.AsFloat())))

// ---------------------------------------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------------------------------------

let private identityModel (elementType: TensorElementType) =
    let g = GraphBuilder("identity")
    let x = g.Input("x", elementType, Dim.Symbolic "n")
    g.Output(x |> g.Identity, "y", elementType, Dim.Symbolic "n") |> ignore
    g

[<Fact>]
let ``int64 tensors round-trip through ONNX Runtime unchanged`` () =
    use s = session (identityModel TensorElementType.Int64)
    let values =
        Gen.oneof [ ArbMap.defaults |> ArbMap.generate<int64>
                    Gen.elements [ Int64.MinValue; Int64.MaxValue; 0L; -1L ] ]
        |> Gen.arrayOf
    check 100 (Prop.forAll (Arb.fromGen values) (fun data ->
        let out = (run s [| Tensor.FromInt64(data, int64 data.Length) |]).[0].Tensor
        out.ElementType = TensorElementType.Int64 && out.AsInt64() = data))

let private anyHalf = Gen.choose (0, 65535) |> Gen.map (fun bits -> BitConverter.UInt16BitsToHalf(uint16 bits))

[<Fact>]
let ``float16 tensors round-trip through ONNX Runtime bit for bit`` () =
    use s = session (identityModel TensorElementType.Float16)
    check 100 (Prop.forAll (Arb.fromGen (Gen.arrayOf anyHalf)) (fun data ->
        let out = (run s [| Tensor.FromHalf(data, int64 data.Length) |]).[0].Tensor.AsHalf()
        Array.map BitConverter.HalfToUInt16Bits out = Array.map BitConverter.HalfToUInt16Bits data))

[<Fact>]
let ``ONNX Runtime reads float16 tensors as System.Half values`` () =
    let g = GraphBuilder("half_to_float")
    let x = g.Input("x", TensorElementType.Float16, Dim.Symbolic "n")
    g.Output(g.Cast(x, TensorElementType.Float), "y", TensorElementType.Float, Dim.Symbolic "n") |> ignore
    use s = session g
    check 100 (Prop.forAll (Arb.fromGen (Gen.arrayOf anyHalf)) (fun data ->
        let out = (run s [| Tensor.FromHalf(data, int64 data.Length) |]).[0].Tensor.AsFloat()
        Array.forall2 (fun (h: Half) (f: float32) -> (Half.IsNaN h && Single.IsNaN f) || float32 h = f) data out))

// ---------------------------------------------------------------------------------------------------------
// Failures: clear exceptions with ORT's message, never a crash
// ---------------------------------------------------------------------------------------------------------

[<Fact>]
let ``a corrupt model file gives an OrtException carrying ORT's message`` () =
    let path = tempFile ".onnx"
    File.WriteAllBytes(path, Text.Encoding.UTF8.GetBytes "this is not an ONNX model")
    try
        let fromFile = Assert.Throws<OrtException>(fun () -> env.CreateSession(path, singleThreaded) |> ignore)
        Assert.Equal(OrtErrorCode.InvalidProtobuf, fromFile.Code)
        Assert.Contains("Protobuf parsing failed", fromFile.Message)
        Assert.Contains(path, fromFile.Message)
        let fromBytes =
            Assert.Throws<OrtException>(fun () -> env.CreateSession(ReadOnlySpan(File.ReadAllBytes path), singleThreaded) |> ignore)
        Assert.Equal(OrtErrorCode.InvalidProtobuf, fromBytes.Code)
    finally
        File.Delete path

[<Fact>]
let ``a missing model file gives an OrtException naming the file`` () =
    let path = tempFile ".onnx"
    let e = Assert.Throws<OrtException>(fun () -> env.CreateSession(path, singleThreaded) |> ignore)
    Assert.Contains(path, e.Message)

[<Fact>]
let ``an input of the wrong shape gives an OrtException carrying ORT's message`` () =
    let g = GraphBuilder("fixed_k")
    let a = g.Input("a", TensorElementType.Float, Dim.Symbolic "m", Dim.Fixed 3L)
    let b = g.Initializer("b", Array.create 6 1.0f, 3L, 2L)
    g.Output(g.MatMul(a, b), "c", TensorElementType.Float, Dim.Symbolic "m", Dim.Fixed 2L) |> ignore
    use s = session g
    let e = Assert.Throws<OrtException>(fun () -> run s [| Tensor.FromFloat(Array.zeroCreate 8, 2L, 4L) |] |> ignore)
    Assert.Equal(OrtErrorCode.InvalidArgument, e.Code)
    Assert.Contains("invalid dimensions", e.Message)
    Assert.Contains("a", e.Message)
    // The session is still usable afterwards.
    Assert.Equal<int64 seq>([ 2L; 2L ], (run s [| Tensor.FromFloat(Array.zeroCreate 6, 2L, 3L) |]).[0].Tensor.Shape)

[<Fact>]
let ``an input of the wrong element type gives an OrtException`` () =
    use s = session (identityModel TensorElementType.Float)
    let e = Assert.Throws<OrtException>(fun () -> run s [| Tensor.FromInt64([| 1L |], 1L) |] |> ignore)
    Assert.Equal(OrtErrorCode.InvalidArgument, e.Code)

[<Fact>]
let ``the wrong number of inputs is rejected before ONNX Runtime is called`` () =
    use s = session (matMulModel ())
    Assert.Throws<ArgumentException>(fun () -> run s [| Tensor.FromFloat([| 1.0f |], 1L, 1L) |] |> ignore) |> ignore

[<Fact>]
let ``asking for CUDA on a library that cannot append it gives a clear OrtException`` () =
    let options = SessionOptions(IntraOpThreads = 1, ExecutionProvider = ExecutionProvider.Cuda(0))
    let e =
        Assert.Throws<OrtException>(fun () -> env.CreateSession(ReadOnlySpan((matMulModel ()).ToBytes()), options) |> ignore)
    Assert.Contains("CUDA execution provider", e.Message)
    Assert.Contains("device 0", e.Message)
    Assert.Contains("TRIDENT_ORT_LIBRARY", e.Message)
    // The CPU path keeps working after the failed attempt.
    use s = session (matMulModel ())
    Assert.Single(run s [| Tensor.FromFloat([| 2.0f |], 1L, 1L); Tensor.FromFloat([| 3.0f |], 1L, 1L) |]) |> ignore

// ---------------------------------------------------------------------------------------------------------
// Lifetime, concurrency, cancellation
// ---------------------------------------------------------------------------------------------------------

let private denseModel features =
    let g = GraphBuilder("dense")
    let x = g.Input("x", TensorElementType.Float, Dim.Symbolic "batch", Dim.Fixed(int64 features))
    let y = g.Linear(x, features, features, DeterministicWeights.FanInNormal 7UL, "fc")
    g.Output(g.Softmax(y, -1L), "y", TensorElementType.Float, Dim.Symbolic "batch", Dim.Fixed(int64 features)) |> ignore
    g

[<Fact>]
let ``ten thousand runs leave process memory flat`` () =
    // Each run pins a fresh 16 KB input and receives a 16 KB output, so leaking either (an OrtValue never
    // released, or an array never unpinned) would add about 140 MB over the 9,000 measured runs.
    use s = session (denseModel 256)
    use cts = new CancellationTokenSource()
    let measure () =
        GC.Collect()
        GC.WaitForPendingFinalizers()
        GC.Collect()
        use p = Process.GetCurrentProcess()
        p.Refresh()
        p.WorkingSet64, p.PrivateMemorySize64, GC.GetTotalMemory true
    let runOnce i =
        let input = Tensor.FromFloat(Array.init (16 * 256) (fun j -> float32 ((i + j) % 256) / 256.0f), 16L, 256L)
        // Alternate the plain path and the path with run options (a cancellable token).
        let token = if i % 2 = 0 then CancellationToken.None else cts.Token
        s.Run(ReadOnlySpan [| input |], token) |> ignore
    for i in 1 .. 1_000 do runOnce i
    let workingSet1k, private1k, managed1k = measure ()
    let watch = Stopwatch.StartNew()
    for i in 1_001 .. 10_000 do runOnce i
    let workingSet10k, private10k, managed10k = measure ()
    let limit = 20L * 1024L * 1024L
    let mb (bytes: int64) = float bytes / 1048576.0
    let report =
        sprintf "over 9,000 runs (%d ms): working set %+.1f MB, private %+.1f MB, managed heap %+.1f MB"
            watch.ElapsedMilliseconds (mb (workingSet10k - workingSet1k)) (mb (private10k - private1k)) (mb (managed10k - managed1k))
    Assert.True(workingSet10k - workingSet1k < limit, report)
    Assert.True(private10k - private1k < limit, report)
    Assert.True(managed10k - managed1k < limit, report)

[<Fact>]
let ``a session from bytes and a session from the same file give the same outputs`` () =
    let g = denseModel 16
    let path = tempFile ".onnx"
    g.Save path
    try
        use fromBytes = session g
        use fromFile = env.CreateSession(path, singleThreaded)
        check 50 (Prop.forAll (Arb.fromGen (floats (3 * 16))) (fun x ->
            let input = [| Tensor.FromFloat(x, 3L, 16L) |]
            (run fromBytes input).[0].Tensor.AsFloat() = (run fromFile input).[0].Tensor.AsFloat()))
    finally
        File.Delete path

[<Fact>]
let ``concurrent runs on one session give the results of sequential runs`` () =
    use s = session (denseModel 32)
    let inputs = Array.init 8 (fun i -> Tensor.FromFloat(Array.init (4 * 32) (fun j -> float32 ((i * 31 + j) % 17) / 17.0f), 4L, 32L))
    let sequential = inputs |> Array.map (fun t -> (run s [| t |]).[0].Tensor.AsFloat())
    let concurrent = Array.zeroCreate 400
    Parallel.For(0, concurrent.Length, ParallelOptions(MaxDegreeOfParallelism = 4), fun i ->
        concurrent.[i] <- (run s [| inputs.[i % inputs.Length] |]).[0].Tensor.AsFloat()) |> ignore
    Assert.Equal<float32 array seq>(Array.init concurrent.Length (fun i -> sequential.[i % inputs.Length]), concurrent)

[<Fact>]
let ``a disposed session can be disposed again and refuses to run`` () =
    let s = session (denseModel 4)
    s.Dispose()
    s.Dispose()
    Assert.Throws<ObjectDisposedException>(fun () -> run s [| Tensor.FromFloat(Array.zeroCreate 4, 1L, 4L) |] |> ignore) |> ignore

/// 300 chained 512x512 products with an identity matrix: about a second of work on one thread.
let private slowModelSize = 512

let private slowModel () =
    let g = GraphBuilder("slow")
    let size = int64 slowModelSize
    let x = g.Input("x", TensorElementType.Float, Dim.Fixed size, Dim.Fixed size)
    let identity = Array.init (slowModelSize * slowModelSize) (fun i -> if i % (slowModelSize + 1) = 0 then 1.0f else 0.0f)
    let w = g.Initializer("w", identity, size, size)
    let y = Seq.fold (fun v _ -> g.MatMul(v, w)) x (seq { 1 .. 300 })
    g.Output(y, "y", TensorElementType.Float, Dim.Fixed size, Dim.Fixed size) |> ignore
    g

[<Fact>]
let ``cancelling the token terminates a run in progress`` () =
    use s = session (slowModel ())
    let input = Tensor.FromFloat(Array.create (slowModelSize * slowModelSize) 1.0f, int64 slowModelSize, int64 slowModelSize)
    use cts = new CancellationTokenSource()
    // a dedicated thread, not a timer: under parallel tests the thread pool that runs timer
    // callbacks can be starved until after the run has finished
    let canceller = Thread((fun () -> Thread.Sleep 50; cts.Cancel()), IsBackground = true)
    canceller.Start()
    let e = Assert.ThrowsAny<OperationCanceledException>(fun () -> s.Run(ReadOnlySpan [| input |], cts.Token) |> ignore)
    canceller.Join()
    Assert.Equal(cts.Token, e.CancellationToken)
    // ORT's own error inside proves the run was terminated in progress (a token cancelled before
    // the call never reaches ORT; see the next test). No wall-clock comparison: on a loaded
    // machine both runs stretch unpredictably.
    Assert.IsType<OrtException>(e.InnerException) |> ignore
    // A later run with a live token is not affected by the earlier terminate flag.
    use live = new CancellationTokenSource()
    let out = s.Run(ReadOnlySpan [| input |], live.Token).[0].Tensor.AsFloat()
    Assert.True(out |> Array.forall ((=) 1.0f), "identity products")

[<Fact>]
let ``a token cancelled before the run stops it before ONNX Runtime is called`` () =
    use s = session (denseModel 4)
    use cts = new CancellationTokenSource()
    cts.Cancel()
    Assert.ThrowsAny<OperationCanceledException>(fun () ->
        s.Run(ReadOnlySpan [| Tensor.FromFloat(Array.zeroCreate 4, 1L, 4L) |], cts.Token) |> ignore) |> ignore

// ---------------------------------------------------------------------------------------------------------
// Model writer
// ---------------------------------------------------------------------------------------------------------

let private transformerBlock (seed: uint64) =
    let g = GraphBuilder("block")
    let weights = DeterministicWeights.FanInNormal seed
    let x = g.Input("x", TensorElementType.Float, Dim.Symbolic "batch", Dim.Symbolic "tokens", Dim.Fixed 16L)
    let y =
        use _ = g.Scope "block0"
        let h = g.Add(x, g.MultiHeadAttention(g.LayerNorm(x, 16, "norm1"), g.LayerNorm(x, 16, "norm1kv"), 16, 4, weights, "attn"))
        let m = g.Linear(g.Gelu(g.Linear(g.LayerNorm(h, 16, "norm2"), 16, 32, weights, "fc1")), 32, 16, weights, "fc2")
        g.Add(h, g.SiLU m)
    g.Output(y, "y", TensorElementType.Float, Dim.Symbolic "batch", Dim.Symbolic "tokens", Dim.Fixed 16L) |> ignore
    g

[<Fact>]
let ``the builder writes byte-identical models for identical calls`` () =
    let first = (transformerBlock 1UL).ToBytes()
    Assert.Equal<byte array>(first, (transformerBlock 1UL).ToBytes())
    Assert.NotEqual<byte array>(first, (transformerBlock 2UL).ToBytes())
    let model = Onnx.ModelProto.Parser.ParseFrom first
    Assert.Equal(8L, model.IrVersion)
    Assert.Equal(17L, model.OpsetImport.[0].Version)
    Assert.Contains(model.Graph.Initializer, fun t -> t.Name = "block0/attn.q.weight")

[<Fact>]
let ``a transformer block built from the layer helpers runs for any batch and token count`` () =
    use s = session (transformerBlock 3UL)
    let case =
        gen {
            let! batch = Gen.choose (1, 3)
            let! tokens = Gen.choose (1, 7)
            let! x = floats (batch * tokens * 16)
            return batch, tokens, x
        }
    check 30 (Prop.forAll (Arb.fromGen case) (fun (batch, tokens, x) ->
        let y = (run s [| Tensor.FromFloat(x, int64 batch, int64 tokens, 16L) |]).[0].Tensor
        (y.Shape |> Seq.toList = [ int64 batch; int64 tokens; 16L ] |> Prop.label "shape preserved")
        .&. (y.AsFloat() |> Array.forall Single.IsFinite |> Prop.label "finite")))

/// Reference multi-head self-attention for one sequence x [t, d], with the builder's parameter names.
let private attentionReference (weights: WeightInit) (x: float32 array) t d heads =
    let linear name =
        let w = weights.Invoke(name + ".weight", [| int64 d; int64 d |], int64 d)
        let b = weights.Invoke(name + ".bias", [| int64 d |], int64 d)
        fun (input: float32 array) -> matMul input w t d d |> Array.mapi (fun i v -> v + b.[i % d])
    let q, k, v = linear "attn.q" x, linear "attn.k" x, linear "attn.v" x
    let dh = d / heads
    let context = Array.zeroCreate (t * d)
    for h in 0 .. heads - 1 do
        let head (m: float32 array) = Array.init (t * dh) (fun i -> m.[(i / dh) * d + h * dh + i % dh])
        let qh, kh, vh = head q, head k, head v
        let kT = Array.init (dh * t) (fun i -> kh.[(i % t) * dh + i / t])
        let scores = matMul qh kT t dh t |> Array.map (fun s -> s / sqrt (float32 dh))
        let out = matMul (softmaxRows scores t) vh t t dh
        for i in 0 .. t - 1 do
            for j in 0 .. dh - 1 do
                context.[i * d + h * dh + j] <- out.[i * dh + j]
    linear "attn.out" context

[<Fact>]
let ``the multi-head attention helper agrees with the reference attention`` () =
    let d, heads = 8, 2
    let weights = DeterministicWeights.FanInNormal 11UL
    let g = GraphBuilder("attention")
    let x = g.Input("x", TensorElementType.Float, Dim.Fixed 1L, Dim.Symbolic "tokens", Dim.Fixed(int64 d))
    g.Output(g.MultiHeadAttention(x, x, d, heads, weights, "attn"), "y", TensorElementType.Float, null) |> ignore
    use s = session g
    let case = gen {
        let! t = Gen.choose (1, 6)
        let! x = floats (t * d)
        return t, x }
    check 50 (Prop.forAll (Arb.fromGen case) (fun (t, x) ->
        let y = (run s [| Tensor.FromFloat(x, 1L, int64 t, int64 d) |]).[0].Tensor.AsFloat()
        approxEqual 1e-4f (attentionReference weights x t d heads) y))

[<Fact>]
let ``the GELU, SiLU and LayerNorm helpers agree with their formulas`` () =
    let g = GraphBuilder("activations")
    let x = g.Input("x", TensorElementType.Float, Dim.Symbolic "rows", Dim.Fixed 5L)
    g.Output(g.Gelu x, "gelu", TensorElementType.Float, null) |> ignore
    g.Output(g.SiLU x, "silu", TensorElementType.Float, null) |> ignore
    g.Output(g.LayerNorm(x, 5, "norm"), "norm", TensorElementType.Float, null) |> ignore
    use s = session g
    let erf (v: float) = // Abramowitz-Stegun 7.1.26, |error| < 1.5e-7
        let t = 1.0 / (1.0 + 0.3275911 * abs v)
        let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp (-v * v)
        if v >= 0.0 then y else -y
    let case = gen {
        let! rows = Gen.choose (1, 4)
        let! x = floats (rows * 5)
        return rows, x }
    check 50 (Prop.forAll (Arb.fromGen case) (fun (rows, x) ->
        let out = run s [| Tensor.FromFloat(x, int64 rows, 5L) |]
        let gelu = x |> Array.map (fun v -> float32 (0.5 * float v * (1.0 + erf (float v / sqrt 2.0))))
        let silu = x |> Array.map (fun v -> v / (1.0f + exp (-v)))
        let norm =
            x |> Array.chunkBySize 5 |> Array.collect (fun row ->
                let mean = Array.average row
                let var = row |> Array.averageBy (fun v -> (v - mean) * (v - mean))
                row |> Array.map (fun v -> (v - mean) / sqrt (var + 1e-5f)))
        (approxEqual 1e-4f gelu (out.[0].Tensor.AsFloat()) |> Prop.label "gelu")
        .&. (approxEqual 1e-5f silu (out.[1].Tensor.AsFloat()) |> Prop.label "silu")
        .&. (approxEqual 1e-4f norm (out.[2].Tensor.AsFloat()) |> Prop.label "layer norm")))

[<Fact>]
let ``the decoder helpers upsample and keep GroupNorm statistics per group`` () =
    let g = GraphBuilder("decoder")
    let weights = DeterministicWeights.FanInNormal 5UL
    let x = g.Input("x", TensorElementType.Float, Dim.Symbolic "n", Dim.Fixed 4L, Dim.Symbolic "h", Dim.Symbolic "w")
    g.Output(g.Upsample2x x, "up", TensorElementType.Float, null) |> ignore
    g.Output(g.PixelShuffle(x, 2), "shuffled", TensorElementType.Float, null) |> ignore
    g.Output(g.GroupNorm(x, 4, 2, "gn"), "gn", TensorElementType.Float, null) |> ignore
    g.Output(g.Conv2d(x, 4, 6, 3, weights, "conv", stride = 2), "down", TensorElementType.Float, null) |> ignore
    use s = session g
    let h, w = 3, 5
    let input = Array.init (4 * h * w) (fun i -> float32 ((i * 7) % 11) - 5.0f)
    let out = run s [| Tensor.FromFloat(input, 1L, 4L, int64 h, int64 w) |]
    let up = out.[0].Tensor
    Assert.Equal<int64 seq>([ 1L; 4L; int64 (2 * h); int64 (2 * w) ], up.Shape)
    Assert.Equal(input.[0], up.AsFloat().[2 * w + 1]) // (0, 0, 1, 1) comes from (0, 0, 0, 0)
    Assert.Equal<int64 seq>([ 1L; 1L; int64 (2 * h); int64 (2 * w) ], out.[1].Tensor.Shape)
    let gn = out.[2].Tensor.AsFloat()
    for group in gn |> Array.chunkBySize (2 * h * w) do
        Assert.True(abs (Array.average group) < 1e-4f, "group mean is 0")
        Assert.True(abs (Array.averageBy (fun v -> v * v) group - 1.0f) < 1e-3f, "group variance is 1")
    Assert.Equal<int64 seq>([ 1L; 6L; 2L; 3L ], out.[3].Tensor.Shape)

[<Fact>]
let ``the builder rejects duplicate names and values from elsewhere`` () =
    let g = GraphBuilder("checks")
    let x = g.Input("x", TensorElementType.Float, Dim.Fixed 1L)
    Assert.Throws<ArgumentException>(fun () -> g.Input("x", TensorElementType.Float, Dim.Fixed 1L) |> ignore) |> ignore
    Assert.Throws<ArgumentException>(fun () -> g.Add(x, ValueRef "nowhere") |> ignore) |> ignore
    Assert.Throws<InvalidOperationException>(fun () -> g.ToBytes() |> ignore) |> ignore

[<Fact>]
let ``deterministic weights depend only on the seed and the parameter name`` () =
    let w = DeterministicWeights.FanInNormal 9UL
    Assert.Equal<float32 array>(w.Invoke("a", [| 100L |], 4L), w.Invoke("a", [| 100L |], 4L))
    Assert.NotEqual<float32 array>(w.Invoke("a", [| 100L |], 4L), w.Invoke("b", [| 100L |], 4L))
    let many = DeterministicWeights.Normal(9UL, "stats", 20_000L, 1.0f)
    Assert.True(abs (Array.average many) < 0.05f)
    Assert.True(abs (Array.averageBy (fun v -> v * v) many - 1.0f) < 0.05f)
