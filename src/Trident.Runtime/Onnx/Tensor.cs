// Managed tensors that move in and out of ONNX Runtime.
//
// Design note. A Tensor is an element type, a shape and a managed array (float[], Half[] or long[]) in
// row-major order: the form in which stage outputs (embeddings, latents) move between workers. It wraps the
// array it is given without copying. ToOrtValue wraps the same array in an OrtValue
// (OrtValue.CreateTensorValueFromMemory, which pins it until the OrtValue is disposed), so ORT reads — or,
// for a preallocated output, writes — it in place; CopyFrom copies an ORT-owned output into a fresh Tensor.
// float16 is System.Half here and ORT's Float16 there: the same 2-byte IEEE layout, reinterpreted, not
// converted. A Tensor never points into native memory and needs no disposal; its OrtValues do.

using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Trident.Runtime.Onnx;

/// <summary>ONNX tensor element types (TensorProto.DataType numbering, the same as ONNX Runtime's).</summary>
public enum TensorElementType
{
    Undefined = 0,
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    UInt16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    UInt32 = 12,
    UInt64 = 13,
    Complex64 = 14,
    Complex128 = 15,
    BFloat16 = 16,
}

/// <summary>A dense tensor held in a managed array. Supported element types: float32, float16 and int64.</summary>
public sealed class Tensor
{
    private readonly long[] shape;

    private Tensor(TensorElementType elementType, Array data, ReadOnlySpan<long> shape)
    {
        ElementType = elementType;
        Data = data;
        this.shape = shape.ToArray();
        var count = ElementCount(this.shape);
        if (count != data.LongLength)
            throw new ArgumentException(
                $"A tensor of shape [{string.Join(", ", this.shape)}] has {count} elements, but the data has {data.LongLength}.");
    }

    /// <summary>The element type.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>The dimensions, outermost first; every one is fixed and non-negative.</summary>
    public IReadOnlyList<long> Shape => shape;

    /// <summary>The shape array itself, for handing to native code (never exposed for mutation).</summary>
    internal long[] ShapeArray => shape;

    /// <summary>The elements in row-major order: a float[], Half[] or long[]. Not copied: do not mutate it during a Run.</summary>
    public Array Data { get; }

    /// <summary>Number of elements.</summary>
    public long Length => Data.LongLength;

    /// <summary>A float32 tensor over <paramref name="data"/> (not copied).</summary>
    public static Tensor FromFloat(float[] data, params long[] shape) => new(TensorElementType.Float, Checked(data), shape);

    /// <summary>A float16 tensor over <paramref name="data"/> (not copied).</summary>
    public static Tensor FromHalf(Half[] data, params long[] shape) => new(TensorElementType.Float16, Checked(data), shape);

    /// <summary>An int64 tensor over <paramref name="data"/> (not copied).</summary>
    public static Tensor FromInt64(long[] data, params long[] shape) => new(TensorElementType.Int64, Checked(data), shape);

    /// <summary>An int32 tensor over <paramref name="data"/> (not copied): token ids of older exports
    /// (diffusers' convert_stable_diffusion_checkpoint_to_onnx.py traced input_ids as int32).</summary>
    public static Tensor FromInt32(int[] data, params long[] shape) => new(TensorElementType.Int32, Checked(data), shape);

    /// <summary>The data as int32. Throws when the tensor holds another element type.</summary>
    public int[] AsInt32() => As<int>(TensorElementType.Int32);

    /// <summary>The data as float32. Throws when the tensor holds another element type.</summary>
    public float[] AsFloat() => As<float>(TensorElementType.Float);

    /// <summary>The data as float16. Throws when the tensor holds another element type.</summary>
    public Half[] AsHalf() => As<Half>(TensorElementType.Float16);

    /// <summary>The data as int64. Throws when the tensor holds another element type.</summary>
    public long[] AsInt64() => As<long>(TensorElementType.Int64);

    public override string ToString() => $"Tensor<{ElementType}>[{string.Join(", ", shape)}]";

    /// <summary>Size in bytes of one element of a supported type.</summary>
    internal static int ElementSize(TensorElementType type) => type switch
    {
        TensorElementType.Float => sizeof(float),
        TensorElementType.Float16 => 2,
        TensorElementType.Int64 => sizeof(long),
        TensorElementType.Int32 => sizeof(int),
        _ => throw Unsupported(type),
    };

    internal static bool IsSupported(TensorElementType type) =>
        type is TensorElementType.Float or TensorElementType.Float16 or TensorElementType.Int64 or TensorElementType.Int32;

    internal static NotSupportedException Unsupported(TensorElementType type) =>
        new($"Tensor element type {type} is not supported; Trident moves float32, float16, int64 and int32 tensors.");

    internal static long ElementCount(ReadOnlySpan<long> dims)
    {
        long count = 1;
        foreach (var d in dims)
        {
            if (d < 0) throw new ArgumentException($"Tensor dimensions must be non-negative, got {d}.");
            count = checked(count * d);
        }
        return count;
    }

    /// <summary>
    /// An OrtValue over this tensor's array (no copy; pinned until the OrtValue is disposed). The caller owns
    /// the OrtValue. ORT reads the array during a run, or writes it when the value is a preallocated output.
    /// </summary>
    public OrtValue ToOrtValue() => ElementType switch
    {
        TensorElementType.Float => OrtValue.CreateTensorValueFromMemory((float[])Data, shape),
        TensorElementType.Int64 => OrtValue.CreateTensorValueFromMemory((long[])Data, shape),
        TensorElementType.Int32 => OrtValue.CreateTensorValueFromMemory((int[])Data, shape),
        TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(
            OrtMemoryInfo.DefaultInstance, new HalfMemory((Half[])Data).Memory, shape),
        _ => throw Unsupported(ElementType),
    };

    /// <summary>A new tensor holding a copy of the CPU-resident tensor <paramref name="value"/>.</summary>
    public static Tensor CopyFrom(OrtValue value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!value.IsTensor) throw new NotSupportedException("the value is not a tensor; Trident moves tensors only");
        var info = value.GetTensorTypeAndShape();
        var type = (TensorElementType)(int)info.ElementDataType;
        var dims = info.Shape;
        var bytes = value.GetTensorDataAsSpan<byte>();
        Array data = type switch
        {
            TensorElementType.Float => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
            TensorElementType.Float16 => MemoryMarshal.Cast<byte, Half>(bytes).ToArray(),
            TensorElementType.Int64 => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
            TensorElementType.Int32 => MemoryMarshal.Cast<byte, int>(bytes).ToArray(),
            _ => throw Unsupported(type),
        };
        return new Tensor(type, data, dims);
    }

    /// <summary>This tensor as float32 (itself when it is float32; a converted copy of float16).</summary>
    public Tensor ToFloat() => ElementType switch
    {
        TensorElementType.Float => this,
        TensorElementType.Float16 => FromFloat(Array.ConvertAll((Half[])Data, h => (float)h), shape),
        _ => throw new InvalidOperationException($"{this} has no float32 form"),
    };

    /// <summary>This tensor in <paramref name="type"/> (float32 or float16): itself, or a converted copy.</summary>
    public Tensor As(TensorElementType type) => (ElementType, type) switch
    {
        var (a, b) when a == b => this,
        (TensorElementType.Float, TensorElementType.Float16) => FromHalf(Array.ConvertAll((float[])Data, f => (Half)f), shape),
        (TensorElementType.Float16, TensorElementType.Float) => ToFloat(),
        _ => throw new InvalidOperationException($"{this} cannot be converted to {type}"),
    };

    /// <summary>Size in bytes of the data.</summary>
    public long Bytes => Length * ElementSize(ElementType);

    private T[] As<T>(TensorElementType expected) =>
        ElementType == expected
            ? (T[])Data
            : throw new InvalidOperationException($"The tensor holds {ElementType}, not {expected}.");

    private static T[] Checked<T>(T[] data) => data ?? throw new ArgumentNullException(nameof(data));
}

/// <summary>A Half[] seen by ORT as Float16 memory (same layout); pins the array while ORT holds it.</summary>
internal sealed class HalfMemory(Half[] array) : MemoryManager<Float16>
{
    public override Span<Float16> GetSpan() => MemoryMarshal.Cast<Half, Float16>(array.AsSpan());

    public override unsafe MemoryHandle Pin(int elementIndex = 0)
    {
        var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
        var pointer = Unsafe.Add<Half>((void*)handle.AddrOfPinnedObject(), elementIndex);
        return new MemoryHandle(pointer, handle, this);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}

/// <summary>A tensor with the graph input or output name it belongs to.</summary>
public sealed record NamedTensor(string Name, Tensor Tensor);

/// <summary>A graph input or output as declared by the model: dynamic dimensions are -1.</summary>
public sealed record TensorInfo(string Name, TensorElementType ElementType, IReadOnlyList<long> Shape)
{
    /// <summary>The declared name of each dimension: the dynamic axis name (e.g. <c>batch_size</c>) for a symbolic
    /// dimension, "" for a fixed or unnamed one; empty when not read from a model.</summary>
    public IReadOnlyList<string> DimensionNames { get; init; } = [];

    /// <summary>The shape as declared: fixed sizes, and axis names (or ?) for dynamic dimensions, e.g. <c>[batch_size, 77]</c>.</summary>
    public string Declared() =>
        "[" + string.Join(", ", Shape.Select((d, i) => d >= 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : i < DimensionNames.Count && DimensionNames[i].Length > 0 ? DimensionNames[i] : "?")) + "]";

    /// <summary>The element type and the shape as declared, as messages print a model's input or output:
    /// <c>float32 [batch, 77, 768]</c>.</summary>
    public string Describe() => $"{TypeName(ElementType)} {Declared()}";

    /// <summary>An element type's name as ONNX and NumPy write it: <c>float32</c>, <c>float16</c>, <c>int64</c>, ….</summary>
    public static string TypeName(TensorElementType t) => t switch
    {
        TensorElementType.Float => "float32",
        TensorElementType.Float16 => "float16",
        TensorElementType.Int64 => "int64",
        TensorElementType.Int32 => "int32",
        _ => t.ToString().ToLowerInvariant(),
    };

    public override string ToString() => $"{Name}: {ElementType}[{string.Join(", ", Shape)}]";
}
