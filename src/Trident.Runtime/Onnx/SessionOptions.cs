namespace Trident.Runtime.Onnx;

/// <summary>Graph optimisation level (GraphOptimizationLevel in the C API, same values).</summary>
public enum GraphOptimizationLevel
{
    DisableAll = 0,
    Basic = 1,
    Extended = 2,
    All = 99,
}

/// <summary>Whether independent nodes may run concurrently (ExecutionMode in the C API).</summary>
public enum ExecutionMode
{
    Sequential = 0,
    Parallel = 1,
}

/// <summary>Where a session runs: the CPU, or one CUDA device.</summary>
public abstract record ExecutionProvider
{
    private ExecutionProvider() { }

    /// <summary>ONNX Runtime's CPU execution provider (always present).</summary>
    public sealed record Cpu : ExecutionProvider;

    /// <summary>
    /// The CUDA execution provider on device <paramref name="DeviceId"/>. Needs a CUDA build of ONNX Runtime;
    /// with any other build, creating the session fails with an OrtException that says so.
    /// </summary>
    public sealed record Cuda(int DeviceId) : ExecutionProvider;
}

/// <summary>How a session is created.</summary>
public sealed record SessionOptions
{
    /// <summary>Threads used inside one operator (0 = ONNX Runtime's default, one per physical core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads used to run independent operators at once; only used with <see cref="ExecutionMode.Parallel"/>.</summary>
    public int InterOpThreads { get; init; }

    /// <summary>
    /// Whether idle intra-op (and inter-op) pool threads spin before they sleep (ONNX Runtime's default, true).
    /// Spinning shortens the hand-off between operators on a machine of one's own; where several sessions or
    /// processes share the cores, spinning threads burn the time slices the others need, so turn it off there.
    /// </summary>
    public bool AllowSpinning { get; init; } = true;

    /// <summary>Sequential (default) or parallel execution of independent nodes.</summary>
    public ExecutionMode ExecutionMode { get; init; } = ExecutionMode.Sequential;

    /// <summary>Graph optimisations applied when the model is loaded.</summary>
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.All;

    /// <summary>Minimum severity this session logs.</summary>
    public OrtLogSeverity LogSeverity { get; init; } = OrtLogSeverity.Warning;

    /// <summary>The execution provider; CPU unless configured otherwise.</summary>
    public ExecutionProvider ExecutionProvider { get; init; } = new ExecutionProvider.Cpu();
}
