// How a session is created: the execution provider of its device, as a value, and the session-wide settings.
//
// Design note. A device's provider is configuration (style rule 19): `Cpu(intraOpThreads)` or
// `Cuda(deviceId, memoryLimitBytes, arenaExtendStrategy, cudnnConvAlgoSearch, useCopyStream, useTf32)`, and each value
// knows how to append itself to ORT's SessionOptions. No `if` on the device kind elsewhere.
// - CPU: intra-op spinning is off by default (`session.intra_op.allow_spinning` = 0): CPU slots share the
//   machine's cores, and spinning threads of one session steal the time slices of the others — measured here
//   with other work on the 2 cores, a 2-thread denoiser session took 685–711 ms for 8 steps at 256² with
//   spinning and 320–390 ms without.
// - CUDA: OrtCUDAProviderOptions with the keys ORT documents (device_id, gpu_mem_limit, arena_extend_strategy,
//   cudnn_conv_algo_search, do_copy_in_default_stream, use_tf32). Appending it loads libonnxruntime_providers_cuda.so,
//   which links the CUDA 13 libraries; on a machine without them ORT throws at append time, and that is turned
//   into an ExecutionProviderException naming the device and the libraries that did not load.

using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Trident.Runtime.Onnx;

/// <summary>ONNX Runtime log severities (OrtLoggingLevel).</summary>
public enum OrtLogSeverity
{
    Verbose = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
    Fatal = 4,
}

/// <summary>How the CUDA arena grows (ORT's arena_extend_strategy).</summary>
public enum CudaArenaExtendStrategy
{
    /// <summary>kNextPowerOfTwo (ORT's default): fewer, larger extensions.</summary>
    NextPowerOfTwo,

    /// <summary>kSameAsRequested: extend by exactly what is asked; tighter memory.</summary>
    SameAsRequested,
}

/// <summary>How cuDNN picks convolution algorithms (ORT's cudnn_conv_algo_search).</summary>
public enum CudnnConvAlgoSearch
{
    /// <summary>EXHAUSTIVE (ORT's default): benchmark every algorithm on first use of a shape.</summary>
    Exhaustive,

    /// <summary>HEURISTIC: cuDNN's heuristic choice, no benchmarking.</summary>
    Heuristic,

    /// <summary>DEFAULT: the default algorithm.</summary>
    Default,
}

/// <summary>Where a session runs: the CPU, or one CUDA device. Append-time failures name the device.</summary>
public abstract record ExecutionProvider
{
    private ExecutionProvider() { }

    /// <summary>ORT's CPU execution provider with <paramref name="IntraOpThreads"/> threads.</summary>
    /// <param name="IntraOpThreads">Threads inside one operator (a CPU slot's budget; k slots for degree k).</param>
    /// <param name="AllowSpinning">Whether idle pool threads spin before sleeping (ORT's default is yes; Trident's no).</param>
    public sealed record Cpu(int IntraOpThreads = 1, bool AllowSpinning = false) : ExecutionProvider
    {
        /// <inheritdoc />
        public override string Device => "cpu";

        /// <inheritdoc />
        public override ExecutionProvider WithThreads(int threads) => this with { IntraOpThreads = threads };

        internal override void Append(SessionOptions options)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(IntraOpThreads, 1, nameof(IntraOpThreads));
            options.IntraOpNumThreads = IntraOpThreads;
            if (!AllowSpinning)
            {
                options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
                options.AddSessionConfigEntry("session.inter_op.allow_spinning", "0");
            }
        }
    }

    /// <summary>ORT's CUDA execution provider on CUDA device <paramref name="DeviceId"/>.</summary>
    /// <param name="DeviceId">CUDA ordinal.</param>
    /// <param name="MemoryLimitBytes">Arena limit (gpu_mem_limit); 0 = no limit.</param>
    /// <param name="ArenaExtendStrategy">How the arena grows.</param>
    /// <param name="ConvAlgoSearch">cuDNN convolution algorithm search.</param>
    /// <param name="UseCopyStream">Copies on their own stream (do_copy_in_default_stream = 0) rather than the compute stream.</param>
    /// <param name="UseTf32">float32 matrix products and convolutions in TensorFloat-32 on Ampere and later (ORT's use_tf32,
    /// default on): faster, with a 10-bit mantissa in the products, so results differ from full float32 by about 1e-3
    /// (relative) and may differ between batch sizes.</param>
    public sealed record Cuda(
        int DeviceId,
        long MemoryLimitBytes = 0,
        CudaArenaExtendStrategy ArenaExtendStrategy = CudaArenaExtendStrategy.NextPowerOfTwo,
        CudnnConvAlgoSearch ConvAlgoSearch = CudnnConvAlgoSearch.Exhaustive,
        bool UseCopyStream = false,
        bool UseTf32 = true) : ExecutionProvider
    {
        /// <summary>The libraries ORT's CUDA provider loads (it links CUDA 13; cuDNN 9 is loaded at run time).</summary>
        public static IReadOnlyList<string> RequiredLibraries { get; } =
            ["libcuda.so.1", "libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcufft.so.12", "libcudnn.so.9"];

        /// <inheritdoc />
        public override string Device => $"cuda:{DeviceId}";

        /// <inheritdoc />
        public override ExecutionProvider WithThreads(int threads) => this;

        /// <summary>ORT's provider option keys and values for this configuration (use_tf32 only when off: ORT's default is on).</summary>
        public Dictionary<string, string> ProviderOptions()
        {
            var options = new Dictionary<string, string>
            {
                ["device_id"] = DeviceId.ToString(CultureInfo.InvariantCulture),
                ["gpu_mem_limit"] = (MemoryLimitBytes > 0 ? MemoryLimitBytes : long.MaxValue).ToString(CultureInfo.InvariantCulture),
                ["arena_extend_strategy"] = ArenaExtendStrategy == CudaArenaExtendStrategy.NextPowerOfTwo ? "kNextPowerOfTwo" : "kSameAsRequested",
                ["cudnn_conv_algo_search"] = ConvAlgoSearch switch
                {
                    CudnnConvAlgoSearch.Heuristic => "HEURISTIC",
                    CudnnConvAlgoSearch.Default => "DEFAULT",
                    _ => "EXHAUSTIVE",
                },
                ["do_copy_in_default_stream"] = UseCopyStream ? "0" : "1",
            };
            if (!UseTf32) options["use_tf32"] = "0";
            return options;
        }

        internal override void Append(SessionOptions options)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(DeviceId, nameof(DeviceId));
            ArgumentOutOfRangeException.ThrowIfNegative(MemoryLimitBytes, nameof(MemoryLimitBytes));
            // Nodes the CUDA provider does not take fall back to the CPU provider: one host thread, no spinning.
            options.IntraOpNumThreads = 1;
            options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            using var cuda = new OrtCUDAProviderOptions();
            try
            {
                cuda.UpdateOptions(ProviderOptions());
                options.AppendExecutionProvider_CUDA(cuda);
            }
            catch (OnnxRuntimeException e)
            {
                var (code, message) = OrtException.Split(e.Message);
                var missing = MissingLibraries();
                var why = missing.Count > 0
                    ? $"these libraries did not load: {string.Join(", ", missing)}"
                    : "every CUDA library Trident checks for loaded, so see ONNX Runtime's message";
                throw new ExecutionProviderException(code, message,
                    $"device {Device}: the CUDA execution provider could not be added ({why}). ONNX Runtime {OrtEnvironment.Version}'s " +
                    $"CUDA provider needs an NVIDIA driver, CUDA 13 and cuDNN 9 on the library path; or run on the CPU " +
                    $"(--device cpu; a server: Trident:Devices:Kind=cpu). ONNX Runtime said: [{code}] {message}", e);
            }
        }

        /// <summary>Which of <see cref="RequiredLibraries"/> the dynamic loader cannot find here.</summary>
        public static IReadOnlyList<string> MissingLibraries()
        {
            var missing = new List<string>();
            foreach (var library in RequiredLibraries)
            {
                if (NativeLibrary.TryLoad(library, out var handle)) NativeLibrary.Free(handle);
                else missing.Add(library);
            }
            return missing;
        }
    }

    /// <summary>The device this provider runs on, as configuration spells it: <c>cpu</c> or <c>cuda:N</c>.</summary>
    public abstract string Device { get; }

    /// <summary>ONNX Runtime's name of the provider with its settings in words, e.g. "CPUExecutionProvider, 1 intra-op
    /// thread, no spinning" or "CUDAExecutionProvider on cuda:0, no memory limit, arena kNextPowerOfTwo, cuDNN search
    /// EXHAUSTIVE, copies on the compute stream" (<c>GET /v1/cluster</c>'s <c>execution_provider</c>).</summary>
    public string Description => this switch
    {
        Cpu c => $"CPUExecutionProvider, {c.IntraOpThreads} intra-op thread{(c.IntraOpThreads == 1 ? "" : "s")}, {(c.AllowSpinning ? "spinning" : "no spinning")}",
        Cuda g => $"CUDAExecutionProvider on {g.Device}, "
            + (g.MemoryLimitBytes > 0 ? $"memory limit {g.MemoryLimitBytes.ToString(CultureInfo.InvariantCulture)} bytes" : "no memory limit")
            + $", arena {g.ProviderOptions()["arena_extend_strategy"]}, cuDNN search {g.ProviderOptions()["cudnn_conv_algo_search"]}, "
            + (g.UseCopyStream ? "copies on their own stream" : "copies on the compute stream"),
        _ => ToString(),
    };

    /// <summary>This provider with <paramref name="threads"/> intra-op threads (a CPU slot group of degree k);
    /// providers whose work is not on host threads return themselves.</summary>
    public abstract ExecutionProvider WithThreads(int threads);

    /// <summary>Adds this provider (and its thread settings) to <paramref name="options"/>.</summary>
    internal abstract void Append(SessionOptions options);

    /// <summary>Checks that this provider can be added here, without loading a model: throws
    /// <see cref="ExecutionProviderException"/> (CUDA without its libraries) exactly as session creation would.</summary>
    public void EnsureAvailable()
    {
        using var options = new SessionSettings { Provider = this }.Create();
    }
}

/// <summary>How a session is created.</summary>
public sealed record SessionSettings
{
    /// <summary>The execution provider; one CPU thread unless configured otherwise.</summary>
    public ExecutionProvider Provider { get; init; } = new ExecutionProvider.Cpu();

    /// <summary>Graph optimisations applied when the model is loaded.</summary>
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>Minimum severity this session logs.</summary>
    public OrtLogSeverity LogSeverity { get; init; } = OrtLogSeverity.Warning;

    /// <summary>ORT's SessionOptions for these settings; the caller owns (disposes) them. Disposed here when
    /// appending the provider throws.</summary>
    public SessionOptions Create()
    {
        var options = new SessionOptions();
        try
        {
            options.ExecutionMode = ExecutionMode.ORT_SEQUENTIAL;
            options.InterOpNumThreads = 1;
            options.GraphOptimizationLevel = OptimizationLevel;
            options.LogSeverityLevel = (OrtLoggingLevel)(int)LogSeverity;
            Provider.Append(options);
            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }
}
