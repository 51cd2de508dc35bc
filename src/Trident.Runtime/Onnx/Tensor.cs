// Managed tensors that move in and out of ONNX Runtime.
//
// Design note. A Tensor is an element type, a shape and a managed array (float[], Half[] or long[]) in
// row-major order. It wraps the array it is given without copying, because latents and embeddings are large
// and move between stages; Session.Run pins that array for the length of the call and ORT reads it in place.
// Outputs are copied out of ORT's memory into fresh arrays, so a Tensor never points into native memory and
// needs no disposal.

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
        _ => throw Unsupported(type),
    };

    internal static bool IsSupported(TensorElementType type) =>
        type is TensorElementType.Float or TensorElementType.Float16 or TensorElementType.Int64;

    internal static NotSupportedException Unsupported(TensorElementType type) =>
        new($"Tensor element type {type} is not supported; Trident moves float32, float16 and int64 tensors.");

    /// <summary>Copies <paramref name="count"/> elements from native memory into a new tensor.</summary>
    internal static unsafe Tensor CopyFrom(TensorElementType type, void* source, long count, ReadOnlySpan<long> shape)
    {
        Array data = type switch
        {
            TensorElementType.Float => new ReadOnlySpan<float>(source, checked((int)count)).ToArray(),
            TensorElementType.Float16 => new ReadOnlySpan<Half>(source, checked((int)count)).ToArray(),
            TensorElementType.Int64 => new ReadOnlySpan<long>(source, checked((int)count)).ToArray(),
            _ => throw Unsupported(type),
        };
        return new Tensor(type, data, shape);
    }

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

    private T[] As<T>(TensorElementType expected) =>
        ElementType == expected
            ? (T[])Data
            : throw new InvalidOperationException($"The tensor holds {ElementType}, not {expected}.");

    private static T[] Checked<T>(T[] data) => data ?? throw new ArgumentNullException(nameof(data));
}

/// <summary>A tensor with the graph input or output name it belongs to.</summary>
public sealed record NamedTensor(string Name, Tensor Tensor);

/// <summary>A graph input or output as declared by the model: dynamic dimensions are -1.</summary>
public sealed record TensorInfo(string Name, TensorElementType ElementType, IReadOnlyList<long> Shape)
{
    public override string ToString() => $"{Name}: {ElementType}[{string.Join(", ", Shape)}]";
}
