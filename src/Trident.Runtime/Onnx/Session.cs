// A loaded ONNX model: Trident's one wrapper of ORT's InferenceSession.
//
// Design note. Everything that does not change between runs is resolved once, at load: the input and output
// names in declared order (ORT's managed API caches their UTF-8 forms itself), their element types and shapes
// (-1 for a dynamic dimension), a name -> index map, and the memory the session's provider computes in (CPU, or
// the CUDA device) for device-resident values. A run then takes values in declared order. There are three
// entry points, for three ownership patterns, all on the same InferenceSession call with the same error and
// cancellation handling:
//   Run(Tensor[])                      managed in, managed out (ORT allocates the outputs, copied then freed);
//   Run(OrtValue[] in, OrtValue[] out) caller-owned values, outputs preallocated and reused across calls;
//   Run(OrtIoBinding)                  values bound once, e.g. device-resident latents on CUDA.
// Cancellation. Each run borrows a RunOptions from a small pool; a cancellable token registers a callback that
// sets RunOptions.Terminate, which ORT checks between nodes (≈24 ms after the flag on a chain of 1024² MatMuls).
// The registration is disposed (waiting for a callback in flight) before Terminate is reset to false and the
// RunOptions goes back to the pool, so a terminated flag never leaks into the next run.
// Errors. OnnxRuntimeException becomes OrtException with ORT's code and message, naming the stage and the model
// file; a terminated run becomes OperationCanceledException. Disposal. ORT allows concurrent runs on one
// session and so does this class; Dispose waits for runs in progress (a reader-writer lock) and then releases
// the InferenceSession and the pooled RunOptions, each exactly once.

using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;

namespace Trident.Runtime.Onnx;

/// <summary>An ONNX Runtime inference session. Thread-safe: Run may be called from several threads at once.</summary>
public sealed class Session : IDisposable
{
    private readonly InferenceSession session;
    private readonly string[] inputNames;
    private readonly string[] outputNames;
    private readonly Dictionary<string, int> inputIndex;
    private readonly Dictionary<string, int> outputIndex;
    private readonly ConcurrentBag<RunOptions> runOptions = new();
    private readonly ReaderWriterLockSlim lifetime = new(LockRecursionPolicy.NoRecursion);
    private bool disposed;

    private Session(InferenceSession session, ExecutionProvider provider, string model, string? stage)
    {
        this.session = session;
        Provider = provider;
        Model = model;
        Stage = stage;
        inputNames = session.InputNames.ToArray();
        outputNames = session.OutputNames.ToArray();
        Inputs = inputNames.Select(n => Info(n, session.InputMetadata[n], "input")).ToArray();
        Outputs = outputNames.Select(n => Info(n, session.OutputMetadata[n], "output")).ToArray();
        inputIndex = IndexByName(inputNames);
        outputIndex = IndexByName(outputNames);
    }

    /// <summary>The graph inputs, in the order Run takes them.</summary>
    public IReadOnlyList<TensorInfo> Inputs { get; }

    /// <summary>The graph outputs, in the order Run returns them.</summary>
    public IReadOnlyList<TensorInfo> Outputs { get; }

    /// <summary>Whether <see cref="Dispose"/> has released the session.</summary>
    public bool Released => Volatile.Read(ref disposed);

    /// <summary>The execution provider the session was created with.</summary>
    public ExecutionProvider Provider { get; }

    /// <summary>The model file, or "(in memory)".</summary>
    public string Model { get; }

    /// <summary>The pipeline stage the session serves (for errors), when given.</summary>
    public string? Stage { get; }

    /// <summary>Loads a model from an .onnx file.</summary>
    /// <exception cref="OrtException">when ORT cannot load it (missing file, corrupt model), naming the file and stage.</exception>
    /// <exception cref="ExecutionProviderException">when the provider cannot be added (CUDA without its libraries).</exception>
    public static Session Load(string modelPath, SessionSettings? settings = null, string? stage = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        var full = Path.GetFullPath(modelPath);
        return Open(settings ?? new SessionSettings(), full, stage, options => new InferenceSession(full, options));
    }

    /// <summary>Loads a model from its serialised bytes.</summary>
    public static Session Load(byte[] model, SessionSettings? settings = null, string? stage = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Length == 0) throw new ArgumentException("The model is empty.", nameof(model));
        return Open(settings ?? new SessionSettings(), "(in memory)", stage, options => new InferenceSession(model, options));
    }

    private static Session Open(SessionSettings settings, string model, string? stage, Func<SessionOptions, InferenceSession> create)
    {
        using var options = settings.Create();
        InferenceSession? inference = null;
        try
        {
            inference = create(options);
            return new Session(inference, settings.Provider, model, stage);
        }
        catch (OnnxRuntimeException e)
        {
            inference?.Dispose();
            throw OrtException.From(e, "loading", model, stage);
        }
        catch
        {
            inference?.Dispose();
            throw;
        }
    }

    /// <summary>Position of the input called <paramref name="name"/> in <see cref="Inputs"/>.</summary>
    public int InputIndex(string name) =>
        inputIndex.TryGetValue(name, out var i) ? i : throw new KeyNotFoundException(
            $"The {Describe()} has no input '{name}'; its inputs are {string.Join(", ", inputNames)}.");

    /// <summary>Position of the output called <paramref name="name"/> in <see cref="Outputs"/>.</summary>
    public int OutputIndex(string name) =>
        outputIndex.TryGetValue(name, out var i) ? i : throw new KeyNotFoundException(
            $"The {Describe()} has no output '{name}'; its outputs are {string.Join(", ", outputNames)}.");

    /// <summary>
    /// Runs the model on managed tensors. <paramref name="inputs"/> are in the order of <see cref="Inputs"/>;
    /// the result holds every output, in the order of <see cref="Outputs"/>, copied into managed memory. ORT
    /// checks element types and shapes: a mismatch throws OrtException with ORT's message.
    /// </summary>
    /// <exception cref="OperationCanceledException">when <paramref name="cancellationToken"/> is cancelled (the run is terminated).</exception>
    public IReadOnlyList<NamedTensor> Run(ReadOnlySpan<Tensor> inputs, CancellationToken cancellationToken = default)
    {
        CheckCount(inputs.Length, Inputs.Count, "inputs");
        var values = new OrtValue?[inputs.Length];
        try
        {
            for (var i = 0; i < inputs.Length; i++)
                values[i] = (inputs[i] ?? throw new ArgumentNullException($"inputs[{i}]")).ToOrtValue();
            using var outputs = Execute(cancellationToken, values!, static (s, o, v) => s.session.Run(o, s.inputNames, v, s.outputNames));
            var result = new NamedTensor[outputs.Count];
            var k = 0;
            foreach (var output in outputs)
            {
                result[k] = new NamedTensor(outputNames[k], Tensor.CopyFrom(output));
                k++;
            }
            return result;
        }
        finally
        {
            foreach (var value in values) value?.Dispose();
        }
    }

    /// <summary>
    /// Runs the model on caller-owned values: <paramref name="inputs"/> in the order of <see cref="Inputs"/>,
    /// <paramref name="outputs"/> preallocated in the order of <see cref="Outputs"/> (ORT writes them in place,
    /// so they can be reused across runs with no allocation).
    /// </summary>
    public void Run(IReadOnlyList<OrtValue> inputs, IReadOnlyList<OrtValue> outputs, CancellationToken cancellationToken = default)
    {
        CheckCount(inputs.Count, Inputs.Count, "inputs");
        CheckCount(outputs.Count, Outputs.Count, "outputs");
        Execute(cancellationToken, (inputs, outputs), static (s, o, v) =>
        {
            s.session.Run(o, s.inputNames, v.inputs, s.outputNames, v.outputs);
            return 0;
        });
    }

    /// <summary>Runs the model on the values bound to <paramref name="binding"/> (made by <see cref="CreateBinding"/>).</summary>
    public void Run(OrtIoBinding binding, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(binding);
        Execute(cancellationToken, binding, static (s, o, b) =>
        {
            s.session.RunWithBinding(o, b);
            return 0;
        });
    }

    /// <summary>A new I/O binding on this session; the caller owns (disposes) it.</summary>
    public OrtIoBinding CreateBinding()
    {
        lifetime.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            return session.CreateIoBinding();
        }
        finally
        {
            lifetime.ExitReadLock();
        }
    }

    /// <summary>The memory this session's provider computes in: CPU memory, or the CUDA device's.
    /// The caller owns (disposes) the returned info.</summary>
    public OrtMemoryInfo DeviceMemory() => Provider switch
    {
        ExecutionProvider.Cuda cuda => new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, cuda.DeviceId, OrtMemType.Default),
        _ => new OrtMemoryInfo(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default),
    };

    /// <summary>An allocator for <see cref="DeviceMemory"/> values of this session (e.g. latents kept on the GPU).
    /// The caller owns (disposes) it, after the values it allocated.</summary>
    public OrtAllocator CreateDeviceAllocator()
    {
        lifetime.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            using var memory = DeviceMemory();
            return new OrtAllocator(session, memory);
        }
        catch (OnnxRuntimeException e)
        {
            throw OrtException.From(e, "creating a device allocator", Model, Stage);
        }
        finally
        {
            lifetime.ExitReadLock();
        }
    }

    /// <summary>Releases the session; runs in progress finish first. Safe to call more than once.</summary>
    public void Dispose()
    {
        lifetime.EnterWriteLock();
        try
        {
            if (disposed) return;
            disposed = true;
            session.Dispose();
            while (runOptions.TryTake(out var o)) o.Dispose();
        }
        finally
        {
            lifetime.ExitWriteLock();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Describe()} on {Provider.Device}";

    // The one path every run takes: lifetime lease, pooled RunOptions with cancellation, typed errors.
    private TResult Execute<TState, TResult>(CancellationToken ct, TState state, Func<Session, RunOptions, TState, TResult> run)
    {
        ct.ThrowIfCancellationRequested();
        lifetime.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (!runOptions.TryTake(out var options)) options = new RunOptions();
            var registration = ct.CanBeCanceled
                ? ct.UnsafeRegister(static o => ((RunOptions)o!).Terminate = true, options)
                : default;
            try
            {
                return run(this, options, state);
            }
            catch (OnnxRuntimeException e) when (ct.IsCancellationRequested)
            {
                throw new OperationCanceledException($"The run of the {Describe()} was terminated: cancellation was requested.", e, ct);
            }
            catch (OnnxRuntimeException e)
            {
                throw OrtException.From(e, "a run", Model, Stage);
            }
            finally
            {
                registration.Dispose(); // waits for a Terminate callback in flight
                if (options.Terminate) options.Terminate = false; // reset before reuse
                runOptions.Add(options);
            }
        }
        finally
        {
            lifetime.ExitReadLock();
        }
    }

    private string Describe() => Stage is null ? $"model {Model}" : $"{Stage} model {Model}";

    private void CheckCount(int given, int expected, string what)
    {
        if (given != expected)
            throw new ArgumentException(
                $"The {Describe()} takes {expected} {what} ({string.Join(", ", what == "inputs" ? Inputs : Outputs)}), but {given} were given.");
    }

    private TensorInfo Info(string name, NodeMetadata metadata, string side)
    {
        if (!metadata.IsTensor)
            throw new NotSupportedException($"The {side} '{name}' of the {Describe()} is not a tensor ({metadata.OnnxValueType}); Trident moves tensors only.");
        var type = (TensorElementType)(int)metadata.ElementDataType;
        if (!Tensor.IsSupported(type))
            throw new NotSupportedException($"The {side} '{name}' of the {Describe()} has element type {type}; Trident moves float32, float16 and int64 tensors.");
        return new TensorInfo(name, type, metadata.Dimensions.Select(d => (long)d).ToArray())
        {
            DimensionNames = metadata.SymbolicDimensions.Select(s => s ?? "").ToArray(),
        };
    }

    private static Dictionary<string, int> IndexByName(string[] names)
    {
        var index = new Dictionary<string, int>(names.Length, StringComparer.Ordinal);
        for (var i = 0; i < names.Length; i++) index[names[i]] = i;
        return index;
    }
}
