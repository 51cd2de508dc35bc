// A loaded ONNX model and its one Run.
//
// Design note. Everything that does not change between runs is resolved once, at load: the input and output
// names (marshalled to NUL-terminated UTF-8 in arrays on the pinned object heap, so their addresses can be
// handed to ORT on every run without pinning or freeing), their element types and shapes (-1 for a dynamic
// dimension), and a name -> index map. Run then takes the inputs in declared order as a span:
//   1. pin each input array and wrap it in an OrtValue with CreateTensorWithDataAsOrtValue (no copy); the
//      array stays pinned until that OrtValue is released;
//   2. call OrtApi.Run, letting ORT allocate the outputs;
//   3. take ownership of every output ORT returned (even when the run failed), copy each into a managed Tensor
//      and release it.
// A guard releases whatever was created when any step throws. Cancellation sets ORT's terminate flag on a
// per-run OrtRunOptions; ORT checks it between nodes and the run ends with OperationCanceledException.
// ORT allows concurrent Run calls on one session, and so does this class: a run only reads the session's
// state, and holds a lease on the session handle so that Dispose waits for it.

using System.Globalization;
using System.Runtime.InteropServices;
using Trident.Runtime.Native;

namespace Trident.Runtime.Onnx;

/// <summary>An ONNX Runtime inference session. Thread-safe: Run may be called from several threads at once.</summary>
public sealed class Session : IDisposable
{
    private const string CudaProviderName = "CUDAExecutionProvider";
    private const int OnnxTypeTensor = 1;      // ONNXType.ONNX_TYPE_TENSOR
    private const int OrtArenaAllocator = 1;   // OrtAllocatorType.OrtArenaAllocator
    private const int OrtMemTypeDefault = 0;   // OrtMemType.OrtMemTypeDefault

    private readonly SessionHandle handle;
    private readonly MemoryInfoHandle cpuMemory;
    private readonly IntPtr[] inputNames;      // on the pinned object heap; point into nameBuffers
    private readonly IntPtr[] outputNames;     // on the pinned object heap; point into nameBuffers
    private readonly byte[][] nameBuffers;     // on the pinned object heap; kept alive by this field
    private readonly Dictionary<string, int> inputIndex;
    private readonly Dictionary<string, int> outputIndex;
    private volatile bool disposed;

    private Session(SessionHandle handle, MemoryInfoHandle cpuMemory, TensorInfo[] inputs, TensorInfo[] outputs)
    {
        this.handle = handle;
        this.cpuMemory = cpuMemory;
        Inputs = inputs;
        Outputs = outputs;
        var buffers = new List<byte[]>();
        inputNames = PinnedNames(inputs, buffers);
        outputNames = PinnedNames(outputs, buffers);
        nameBuffers = buffers.ToArray();
        inputIndex = IndexByName(inputs);
        outputIndex = IndexByName(outputs);
    }

    /// <summary>The graph inputs, in the order Run takes them.</summary>
    public IReadOnlyList<TensorInfo> Inputs { get; }

    /// <summary>The graph outputs, in the order Run returns them.</summary>
    public IReadOnlyList<TensorInfo> Outputs { get; }

    /// <summary>Position of the input called <paramref name="name"/> in <see cref="Inputs"/>.</summary>
    public int InputIndex(string name) =>
        inputIndex.TryGetValue(name, out var i) ? i : throw new KeyNotFoundException(
            $"The model has no input '{name}'; its inputs are {string.Join(", ", Inputs.Select(x => x.Name))}.");

    /// <summary>Position of the output called <paramref name="name"/> in <see cref="Outputs"/>.</summary>
    public int OutputIndex(string name) =>
        outputIndex.TryGetValue(name, out var i) ? i : throw new KeyNotFoundException(
            $"The model has no output '{name}'; its outputs are {string.Join(", ", Outputs.Select(x => x.Name))}.");

    /// <summary>
    /// Runs the model. <paramref name="inputs"/> are in the order of <see cref="Inputs"/>; the result holds
    /// every output, in the order of <see cref="Outputs"/>, copied into managed memory. ORT checks the element
    /// types and shapes: a mismatch throws OrtException with ORT's message. Cancelling
    /// <paramref name="cancellationToken"/> terminates the run (OperationCanceledException).
    /// </summary>
    public unsafe IReadOnlyList<NamedTensor> Run(ReadOnlySpan<Tensor> inputs, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (inputs.Length != Inputs.Count)
            throw new ArgumentException(
                $"The model takes {Inputs.Count} inputs ({string.Join(", ", Inputs)}), but {inputs.Length} were given.",
                nameof(inputs));
        cancellationToken.ThrowIfCancellationRequested();

        var api = OrtApi.Instance;
        using var sessionLease = new HandleLease(handle);
        using var memoryLease = new HandleLease(cpuMemory);
        using var inputValues = new InputValues(inputs.Length);
        for (var i = 0; i < inputs.Length; i++)
            inputValues.Add(i, api, memoryLease.Pointer, inputs[i] ?? throw new ArgumentNullException($"inputs[{i}]"));

        var outputHandles = new ValueHandle[Outputs.Count];
        for (var i = 0; i < outputHandles.Length; i++) outputHandles[i] = new ValueHandle();
        try
        {
            var outputValues = new IntPtr[Outputs.Count];
            IntPtr status;
            RunOptionsHandle? runOptions = null;
            var registration = default(CancellationTokenRegistration);
            try
            {
                if (cancellationToken.CanBeCanceled)
                {
                    runOptions = CreateRunOptions(api);
                    registration = cancellationToken.Register(static state => Terminate((RunOptionsHandle)state!), runOptions);
                }
                var runOptionsPointer = runOptions?.DangerousGetHandle() ?? IntPtr.Zero;
                fixed (IntPtr* inNames = inputNames)
                fixed (IntPtr* outNames = outputNames)
                fixed (IntPtr* inValues = inputValues.Pointers)
                fixed (IntPtr* outValues = outputValues)
                {
                    status = api.Run(
                        sessionLease.Pointer, runOptionsPointer,
                        inNames, inValues, (nuint)inputs.Length,
                        outNames, (nuint)outputValues.Length, outValues);
                }
                // Own what ORT returned before anything else can throw.
                for (var i = 0; i < outputValues.Length; i++)
                    if (outputValues[i] != IntPtr.Zero) outputHandles[i].Attach(outputValues[i]);
            }
            finally
            {
                registration.Dispose(); // waits for a running Terminate, so runOptions outlives it
                runOptions?.Dispose();
            }

            try
            {
                OrtStatus.Check(status);
            }
            catch (OrtException e) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("The ONNX Runtime run was terminated: cancellation was requested.", e, cancellationToken);
            }

            var results = new NamedTensor[outputHandles.Length];
            for (var i = 0; i < results.Length; i++)
                results[i] = new NamedTensor(Outputs[i].Name, ReadTensor(api, outputHandles[i].DangerousGetHandle()));
            return results;
        }
        finally
        {
            foreach (var output in outputHandles) output.Dispose();
        }
    }

    /// <summary>Releases the session; runs in progress finish first. Safe to call more than once.</summary>
    public void Dispose()
    {
        disposed = true;
        handle.Dispose();
        cpuMemory.Dispose();
    }

    // ------------------------------------------------------------------------------------------------------
    // Loading
    // ------------------------------------------------------------------------------------------------------

    internal static unsafe Session FromFile(OrtEnvironment env, string modelPath, SessionOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        var path = Utf8.NullTerminated(Path.GetFullPath(modelPath));
        fixed (byte* pathPointer = path)
            return Open(env, options, pathPointer, null, 0);
    }

    internal static unsafe Session FromBytes(OrtEnvironment env, ReadOnlySpan<byte> model, SessionOptions options)
    {
        if (model.IsEmpty) throw new ArgumentException("The model is empty.", nameof(model));
        fixed (byte* modelPointer = model)
            return Open(env, options, null, modelPointer, (nuint)model.Length);
    }

    // Creates the session from a path (modelPath != null) or from bytes, then resolves its signature.
    private static unsafe Session Open(OrtEnvironment env, SessionOptions options, byte* modelPath, byte* model, nuint modelLength)
    {
        ArgumentNullException.ThrowIfNull(options);
        var api = OrtApi.Instance;
        var session = new SessionHandle();
        var cpuMemory = new MemoryInfoHandle();
        try
        {
            using (var sessionOptions = CreateSessionOptions(api, env, options))
            using (var envLease = new HandleLease(env.Handle))
            {
                IntPtr raw;
                OrtStatus.Check(modelPath != null
                    ? api.CreateSession(envLease.Pointer, modelPath, sessionOptions.DangerousGetHandle(), &raw)
                    : api.CreateSessionFromArray(envLease.Pointer, model, modelLength, sessionOptions.DangerousGetHandle(), &raw));
                session.Attach(raw);
                session.HoldEnvironment(env.Handle);
            }

            IntPtr memory;
            OrtStatus.Check(api.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory));
            cpuMemory.Attach(memory);

            var pointer = session.DangerousGetHandle();
            var inputs = ReadSignature(api, pointer, inputsSide: true);
            var outputs = ReadSignature(api, pointer, inputsSide: false);
            return new Session(session, cpuMemory, inputs, outputs);
        }
        catch
        {
            cpuMemory.Dispose();
            session.Dispose();
            throw;
        }
    }

    private static unsafe SessionOptionsHandle CreateSessionOptions(OrtApi api, OrtEnvironment env, SessionOptions options)
    {
        if (options.IntraOpThreads < 0 || options.InterOpThreads < 0)
            throw new ArgumentOutOfRangeException(nameof(options), "Thread counts must be 0 (ONNX Runtime's default) or more.");
        var handle = new SessionOptionsHandle();
        try
        {
            IntPtr raw;
            OrtStatus.Check(api.CreateSessionOptions(&raw));
            handle.Attach(raw);
            OrtStatus.Check(api.SetIntraOpNumThreads(raw, options.IntraOpThreads));
            OrtStatus.Check(api.SetInterOpNumThreads(raw, options.InterOpThreads));
            OrtStatus.Check(api.SetSessionExecutionMode(raw, (int)options.ExecutionMode));
            OrtStatus.Check(api.SetSessionGraphOptimizationLevel(raw, (int)options.OptimizationLevel));
            OrtStatus.Check(api.SetSessionLogSeverityLevel(raw, (int)options.LogSeverity));
            if (!options.AllowSpinning)
            {
                AddConfigEntry(api, raw, "session.intra_op.allow_spinning", "0");
                AddConfigEntry(api, raw, "session.inter_op.allow_spinning", "0");
            }
            switch (options.ExecutionProvider)
            {
                case ExecutionProvider.Cpu:
                    break; // ORT always has its CPU provider, and falls back to it for every node.
                case ExecutionProvider.Cuda cuda:
                    AppendCuda(api, env, raw, cuda.DeviceId);
                    break;
                default:
                    throw new NotSupportedException($"Unknown execution provider {options.ExecutionProvider}.");
            }
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static unsafe void AddConfigEntry(OrtApi api, IntPtr sessionOptions, string key, string value)
    {
        var keyBytes = Utf8.NullTerminated(key);
        var valueBytes = Utf8.NullTerminated(value);
        fixed (byte* keyPointer = keyBytes)
        fixed (byte* valuePointer = valueBytes)
            OrtStatus.Check(api.AddSessionConfigEntry(sessionOptions, keyPointer, valuePointer));
    }

    private static unsafe void AppendCuda(OrtApi api, OrtEnvironment env, IntPtr sessionOptions, int deviceId)
    {
        var library = $"ONNX Runtime {env.Version} loaded from {env.LibraryPath}";
        var fix = $"Point {NativeLibraryLoader.LibraryVariable} at a CUDA build of ONNX Runtime {NativeLibraryLoader.OrtVersion}, " +
                  "or configure the CPU execution provider.";
        if (!env.AvailableProviders.Contains(CudaProviderName))
            throw new OrtException(
                OrtErrorCode.EpFail,
                $"The CUDA execution provider was requested (device {deviceId}), but {library} is built without it " +
                $"(its providers: {string.Join(", ", env.AvailableProviders)}). {fix}");

        using var cudaOptions = new CudaProviderOptionsHandle();
        try
        {
            IntPtr raw;
            OrtStatus.Check(api.CreateCUDAProviderOptions(&raw));
            cudaOptions.Attach(raw);
            var key = Utf8.NullTerminated("device_id");
            var value = Utf8.NullTerminated(deviceId.ToString(CultureInfo.InvariantCulture));
            fixed (byte* keyPointer = key)
            fixed (byte* valuePointer = value)
            {
                var keys = stackalloc byte*[] { keyPointer };
                var values = stackalloc byte*[] { valuePointer };
                OrtStatus.Check(api.UpdateCUDAProviderOptions(raw, keys, values, 1));
            }
            OrtStatus.Check(api.SessionOptionsAppendExecutionProvider_CUDA_V2(sessionOptions, raw));
        }
        catch (OrtException e)
        {
            throw new OrtException(
                e.Code,
                $"The CUDA execution provider (device {deviceId}) could not be added: {library} lists it, but it failed " +
                $"to load, usually because its provider library (libonnxruntime_providers_cuda.so) or the CUDA and cuDNN " +
                $"libraries it needs are missing. ONNX Runtime said: {e.Message} {fix}",
                e);
        }
    }

    // Names, element types and shapes of the inputs (inputsSide) or the outputs, in declared order.
    private static unsafe TensorInfo[] ReadSignature(OrtApi api, IntPtr session, bool inputsSide)
    {
        var side = inputsSide ? "input" : "output";
        nuint count;
        OrtStatus.Check(inputsSide ? api.SessionGetInputCount(session, &count) : api.SessionGetOutputCount(session, &count));
        IntPtr allocator; // ORT's default CPU allocator: a process-wide object that is never freed
        OrtStatus.Check(api.GetAllocatorWithDefaultOptions(&allocator));

        var result = new TensorInfo[(int)count];
        for (nuint i = 0; i < count; i++)
        {
            byte* rawName;
            OrtStatus.Check(inputsSide
                ? api.SessionGetInputName(session, i, allocator, &rawName)
                : api.SessionGetOutputName(session, i, allocator, &rawName));
            string name;
            try
            {
                name = Marshal.PtrToStringUTF8((IntPtr)rawName) ?? "";
            }
            finally
            {
                OrtStatus.Check(api.AllocatorFree(allocator, rawName));
            }

            using var typeInfo = new TypeInfoHandle();
            IntPtr rawTypeInfo;
            OrtStatus.Check(inputsSide
                ? api.SessionGetInputTypeInfo(session, i, &rawTypeInfo)
                : api.SessionGetOutputTypeInfo(session, i, &rawTypeInfo));
            typeInfo.Attach(rawTypeInfo);

            int onnxType;
            OrtStatus.Check(api.GetOnnxTypeFromTypeInfo(rawTypeInfo, &onnxType));
            if (onnxType != OnnxTypeTensor)
                throw new NotSupportedException($"The model's {side} '{name}' is not a tensor (ONNXType {onnxType}); Trident moves tensors only.");
            IntPtr tensorInfo; // owned by typeInfo
            OrtStatus.Check(api.CastTypeInfoToTensorInfo(rawTypeInfo, &tensorInfo));
            var (elementType, shape) = ReadTypeAndShape(api, tensorInfo);
            if (!Tensor.IsSupported(elementType))
                throw new NotSupportedException(
                    $"The model's {side} '{name}' has element type {elementType}; Trident moves float32, float16 and int64 tensors.");
            result[(int)i] = new TensorInfo(name, elementType, shape);
        }
        return result;
    }

    private static unsafe (TensorElementType Type, long[] Shape) ReadTypeAndShape(OrtApi api, IntPtr tensorTypeAndShape)
    {
        int elementType;
        OrtStatus.Check(api.GetTensorElementType(tensorTypeAndShape, &elementType));
        nuint rank;
        OrtStatus.Check(api.GetDimensionsCount(tensorTypeAndShape, &rank));
        var shape = new long[(int)rank];
        fixed (long* dims = shape)
            OrtStatus.Check(api.GetDimensions(tensorTypeAndShape, dims, rank));
        return ((TensorElementType)elementType, shape);
    }

    // ------------------------------------------------------------------------------------------------------
    // Running
    // ------------------------------------------------------------------------------------------------------

    private static unsafe RunOptionsHandle CreateRunOptions(OrtApi api)
    {
        var runOptions = new RunOptionsHandle();
        IntPtr raw;
        OrtStatus.Check(api.CreateRunOptions(&raw));
        runOptions.Attach(raw);
        return runOptions;
    }

    private static unsafe void Terminate(RunOptionsHandle runOptions)
    {
        using var lease = new HandleLease(runOptions);
        OrtStatus.Check(OrtApi.Instance.RunOptionsSetTerminate(lease.Pointer));
    }

    // Copies an output OrtValue (owned by the caller) into a managed tensor.
    private static unsafe Tensor ReadTensor(OrtApi api, IntPtr value)
    {
        using var info = new TensorTypeAndShapeInfoHandle();
        IntPtr rawInfo;
        OrtStatus.Check(api.GetTensorTypeAndShape(value, &rawInfo));
        info.Attach(rawInfo);
        var (elementType, shape) = ReadTypeAndShape(api, rawInfo);
        nuint count;
        OrtStatus.Check(api.GetTensorShapeElementCount(rawInfo, &count));
        void* data = null;
        if (count > 0) OrtStatus.Check(api.GetTensorMutableData(value, &data));
        return Tensor.CopyFrom(elementType, data, checked((long)count), shape);
    }

    private static IntPtr[] PinnedNames(TensorInfo[] infos, List<byte[]> buffers)
    {
        var pointers = GC.AllocateArray<IntPtr>(infos.Length, pinned: true);
        for (var i = 0; i < infos.Length; i++)
        {
            var utf8 = Utf8.NullTerminated(infos[i].Name);
            var pinnedBuffer = GC.AllocateArray<byte>(utf8.Length, pinned: true);
            utf8.CopyTo(pinnedBuffer, 0);
            buffers.Add(pinnedBuffer);
            pointers[i] = Marshal.UnsafeAddrOfPinnedArrayElement(pinnedBuffer, 0);
        }
        return pointers;
    }

    private static Dictionary<string, int> IndexByName(TensorInfo[] infos)
    {
        var index = new Dictionary<string, int>(infos.Length, StringComparer.Ordinal);
        for (var i = 0; i < infos.Length; i++) index[infos[i].Name] = i;
        return index;
    }

    /// <summary>
    /// The OrtValues wrapping the inputs of one run, and the pins that keep their arrays in place. Dispose
    /// releases every value before unpinning its array, including after a partial failure.
    /// </summary>
    private sealed class InputValues : IDisposable
    {
        private readonly ValueHandle[] values;
        private readonly GCHandle[] pins;

        public InputValues(int count)
        {
            values = new ValueHandle[count];
            pins = new GCHandle[count];
            Pointers = new IntPtr[count];
        }

        /// <summary>The OrtValue* of each input, for OrtApi.Run.</summary>
        public IntPtr[] Pointers { get; }

        public unsafe void Add(int index, OrtApi api, IntPtr cpuMemoryInfo, Tensor tensor)
        {
            values[index] = new ValueHandle();
            pins[index] = GCHandle.Alloc(tensor.Data, GCHandleType.Pinned);
            var bytes = (nuint)(tensor.Length * Tensor.ElementSize(tensor.ElementType));
            var shape = tensor.ShapeArray;
            IntPtr raw;
            fixed (long* dims = shape)
            {
                OrtStatus.Check(api.CreateTensorWithDataAsOrtValue(
                    cpuMemoryInfo, (void*)pins[index].AddrOfPinnedObject(), bytes,
                    dims, (nuint)shape.Length, (int)tensor.ElementType, &raw));
            }
            values[index].Attach(raw);
            Pointers[index] = raw;
        }

        public void Dispose()
        {
            for (var i = 0; i < values.Length; i++)
            {
                values[i]?.Dispose();
                if (pins[i].IsAllocated) pins[i].Free();
            }
        }
    }
}
