/// The bundled tiny pipeline, shared by the execution, generate and profiler tests: written once (through the
/// same `tiny` resolution the CLI uses, under a test-only home in the temp folder, so later runs reuse it) and
/// opened once. Tests run its stages on one intra-op thread at tiny sizes (64×64, 1–2 steps) to stay fast on a
/// shared machine, in test lists under "integration" that run sequenced (one test at a time, after all other
/// tests), so their CPU and memory use neither slows nor disturbs the measurements of other tests.
module Trident.Tests.Runtime.TinyFixture

open System
open System.IO
open Trident.Runtime.Execution

/// A TRIDENT_HOME for tests: <temp>/trident-tests.
let home = Path.Combine(Path.GetTempPath(), "trident-tests")

/// The tiny pipeline's directory (seed 0), written on first use.
let directory = lazy (PipelineLocator.Resolve(PipelineLocator.Tiny, home))

/// The pipeline, opened once; sessions are created on first use and shared (Session.Run is thread-safe).
let pipeline = lazy (LoadedPipeline.Open directory.Value)

/// A unique path under the temp folder for one test's outputs.
let tempPath (name: string) =
    Path.Combine(Path.GetTempPath(), "trident-tests-out", Guid.NewGuid().ToString("N"), name)
