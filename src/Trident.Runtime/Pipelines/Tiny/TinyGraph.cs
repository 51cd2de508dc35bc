// Graph pieces the bundled tiny pipeline needs beyond the GraphBuilder's helpers: shape arithmetic on
// dynamic dimensions (Gather/Slice of a Shape), reductions, Split, N-d convolutions and transposed
// convolutions, and parameters created from a WeightInit under an explicit name.
//
// Design note. The tiny models use explicit, PyTorch-style dotted parameter names ("blocks.0.attn.q.weight")
// instead of GraphBuilder scopes, and every parameter is created through Param below or a Layers block, so
// the seeded weights depend only on (seed, model, parameter name). Dimensions that are symbolic at the graph
// inputs (batch, tokens, frames, height, width) are never baked into constants: wherever a reshape needs one,
// it is read from a Shape node at run time, so one model file serves every size.

using Trident.Runtime.Onnx.ModelWriter;

namespace Trident.Runtime.Pipelines.Tiny;

internal static class TinyGraph
{
    /// <summary>A float parameter called <paramref name="name"/> with values from <paramref name="weights"/>.</summary>
    public static ValueRef Param(this GraphBuilder g, WeightInit weights, string name, long[] shape, long fanIn) =>
        g.Initializer(name, weights(name, shape, fanIn), shape);

    /// <summary>Gather along <paramref name="axis"/> (an embedding lookup for axis 0).</summary>
    public static ValueRef Gather(this GraphBuilder g, ValueRef data, ValueRef indices, long axis = 0) =>
        g.Node("Gather", [data, indices], Attr.Int("axis", axis));

    /// <summary>Dimensions [start, end) of x's shape, as an int64 1-D tensor (read at run time).</summary>
    public static ValueRef Dims(this GraphBuilder g, ValueRef shape, long start, long end) =>
        g.Node("Slice", [shape, g.Int64s(start), g.Int64s(end), g.Int64s(0)]);

    /// <summary>x[0:end] along <paramref name="axis"/>, with <paramref name="end"/> an int64 1-D tensor of one element.</summary>
    public static ValueRef SlicePrefix(this GraphBuilder g, ValueRef x, ValueRef end, long axis) =>
        g.Node("Slice", [x, g.Int64s(0), end, g.Int64s(axis)]);

    /// <summary>Mean over <paramref name="axes"/> (opset 17: axes is an attribute).</summary>
    public static ValueRef ReduceMean(this GraphBuilder g, ValueRef x, long[] axes, bool keepDims) =>
        g.Node("ReduceMean", [x], Attr.Ints("axes", axes), Attr.Int("keepdims", keepDims ? 1 : 0));

    /// <summary>Splits x into <paramref name="parts"/> equal pieces along <paramref name="axis"/>.</summary>
    public static ValueRef[] SplitEqual(this GraphBuilder g, ValueRef x, int parts, long axis) =>
        g.Node("Split", [x], parts, Attr.Int("axis", axis));

    /// <summary>x · (1 + scale) + shift: adaLN modulation of a normalised x.</summary>
    public static ValueRef Modulate(this GraphBuilder g, ValueRef x, ValueRef shift, ValueRef scale) =>
        g.Add(g.Mul(x, g.Add(scale, g.Scalar(1f))), shift);

    /// <summary>
    /// An N-d convolution with parameters "name.weight" ([out, in/groups, k...]) and "name.bias" ([out]);
    /// no padding unless <paramref name="pads"/> is given (ONNX order: all begins, then all ends).
    /// </summary>
    public static ValueRef ConvNd(
        this GraphBuilder g, ValueRef x, int inChannels, int outChannels, long[] kernel, WeightInit weights, string name,
        long[]? strides = null, long[]? pads = null, int groups = 1)
    {
        long fanIn = inChannels / groups;
        foreach (var k in kernel) fanIn *= k;
        long[] shape = [outChannels, inChannels / groups, .. kernel];
        var w = g.Param(weights, name + ".weight", shape, fanIn);
        var b = g.Param(weights, name + ".bias", [outChannels], fanIn);
        return g.Conv(x, w, b, kernel, strides, pads, group: groups);
    }

    /// <summary>
    /// A transposed convolution with kernel = stride and no padding: each input position becomes one
    /// non-overlapping output block, so it is a per-patch linear map (unpatchify). Parameters "name.weight"
    /// ([in, out, k...]) and "name.bias" ([out]); the fan-in of every output value is <paramref name="inChannels"/>.
    /// </summary>
    public static ValueRef Unpatchify(this GraphBuilder g, ValueRef x, int inChannels, int outChannels, long[] kernel, WeightInit weights, string name)
    {
        long[] shape = [inChannels, outChannels, .. kernel];
        var w = g.Param(weights, name + ".weight", shape, inChannels);
        var b = g.Param(weights, name + ".bias", [outChannels], inChannels);
        return g.Node("ConvTranspose", [x, w, b], Attr.Ints("kernel_shape", kernel), Attr.Ints("strides", kernel));
    }

    /// <summary>A 2-layer MLP with GELU: Linear(d → hidden), GELU, Linear(hidden → d).</summary>
    public static ValueRef Mlp(this GraphBuilder g, ValueRef x, int features, int hidden, WeightInit weights, string name) =>
        g.Linear(g.Gelu(g.Linear(x, features, hidden, weights, name + ".fc1")), hidden, features, weights, name + ".fc2");

    /// <summary>
    /// e^x for the constants of generated models, from IEEE-754 +, −, ×, ÷ only (like PortableMath.Log), so
    /// that the model bytes are the same on every platform: x = k·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its
    /// Taylor series (25 terms: the remainder is far below one ulp), times 2^k set exactly in the exponent.
    /// </summary>
    public static double PortableExp(double x)
    {
        const double ln2 = 0.6931471805599453;
        if (!double.IsFinite(x) || Math.Abs(x) > 700) throw new ArgumentOutOfRangeException(nameof(x), x, "must lie in [-700, 700]");
        var k = (long)Math.Round(x / ln2, MidpointRounding.ToEven);
        var r = x - k * ln2;
        double term = 1, sum = 1;
        for (var n = 1; n <= 25; n++)
        {
            term = term * r / n;
            sum += term;
        }
        return sum * BitConverter.Int64BitsToDouble((k + 1023) << 52);
    }
}
