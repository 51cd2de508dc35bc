// Typed helpers for the ONNX operators the bundled pipeline uses. Each is one node of the default domain at
// the builder's opset, with the operator's own attribute names; anything not here is GraphBuilder.Node.

namespace Trident.Runtime.Onnx.ModelWriter;

public sealed partial class GraphBuilder
{
    // --- Elementwise -----------------------------------------------------------------------------------------

    /// <summary>a + b (numpy broadcasting).</summary>
    public ValueRef Add(ValueRef a, ValueRef b) => Node("Add", [a, b]);

    /// <summary>a - b (numpy broadcasting).</summary>
    public ValueRef Sub(ValueRef a, ValueRef b) => Node("Sub", [a, b]);

    /// <summary>a * b (numpy broadcasting).</summary>
    public ValueRef Mul(ValueRef a, ValueRef b) => Node("Mul", [a, b]);

    /// <summary>a / b (numpy broadcasting).</summary>
    public ValueRef Div(ValueRef a, ValueRef b) => Node("Div", [a, b]);

    /// <summary>1 / (1 + exp(-x)).</summary>
    public ValueRef Sigmoid(ValueRef x) => Node("Sigmoid", [x]);

    /// <summary>tanh(x).</summary>
    public ValueRef Tanh(ValueRef x) => Node("Tanh", [x]);

    /// <summary>The Gauss error function.</summary>
    public ValueRef Erf(ValueRef x) => Node("Erf", [x]);

    /// <summary>sin(x).</summary>
    public ValueRef Sin(ValueRef x) => Node("Sin", [x]);

    /// <summary>cos(x).</summary>
    public ValueRef Cos(ValueRef x) => Node("Cos", [x]);

    /// <summary>Square root.</summary>
    public ValueRef Sqrt(ValueRef x) => Node("Sqrt", [x]);

    /// <summary>Converts to another element type.</summary>
    public ValueRef Cast(ValueRef x, TensorElementType to) => Node("Cast", [x], Attr.Int("to", (long)to));

    /// <summary>A copy of x (useful to give a value a second name).</summary>
    public ValueRef Identity(ValueRef x) => Node("Identity", [x]);

    // --- Linear algebra and normalisation ----------------------------------------------------------------------

    /// <summary>Matrix product with numpy batching: [..., n, k] x [..., k, m] -> [..., n, m].</summary>
    public ValueRef MatMul(ValueRef a, ValueRef b) => Node("MatMul", [a, b]);

    /// <summary>Softmax along <paramref name="axis"/> (opset 13+: one axis, not the flattened tail).</summary>
    public ValueRef Softmax(ValueRef x, long axis = -1) => Node("Softmax", [x], Attr.Int("axis", axis));

    /// <summary>LayerNormalization (opset 17+) over the dimensions from <paramref name="axis"/> on.</summary>
    public ValueRef LayerNormalization(ValueRef x, ValueRef scale, ValueRef bias, long axis = -1, float epsilon = 1e-5f)
    {
        if (Opset < 17) throw new InvalidOperationException($"LayerNormalization needs opset 17 or later; this graph uses {Opset}.");
        return Node("LayerNormalization", [x, scale, bias], Attr.Int("axis", axis), Attr.Float("epsilon", epsilon));
    }

    /// <summary>InstanceNormalization: per sample and channel (dimension 1), over the remaining dimensions.</summary>
    public ValueRef InstanceNormalization(ValueRef x, ValueRef scale, ValueRef bias, float epsilon = 1e-5f) =>
        Node("InstanceNormalization", [x, scale, bias], Attr.Float("epsilon", epsilon));

    // --- Shapes ----------------------------------------------------------------------------------------------

    /// <summary>Reshape to <paramref name="shape"/>: 0 copies the input's dimension, -1 is inferred (once).</summary>
    public ValueRef Reshape(ValueRef x, params long[] shape) => Node("Reshape", [x, Int64s(shape)]);

    /// <summary>Reshape to a shape computed in the graph (an int64 1-D tensor).</summary>
    public ValueRef Reshape(ValueRef x, ValueRef shape) => Node("Reshape", [x, shape]);

    /// <summary>The shape of x as an int64 1-D tensor.</summary>
    public ValueRef Shape(ValueRef x) => Node("Shape", [x]);

    /// <summary>Permutes the dimensions: output dimension i is input dimension perm[i].</summary>
    public ValueRef Transpose(ValueRef x, params long[] perm) => Node("Transpose", [x], Attr.Ints("perm", perm));

    /// <summary>Concatenates along <paramref name="axis"/>.</summary>
    public ValueRef Concat(long axis, params ValueRef[] values) => Node("Concat", values, Attr.Int("axis", axis));

    /// <summary>Inserts size-1 dimensions at <paramref name="axes"/> (opset 13+: axes as an input).</summary>
    public ValueRef Unsqueeze(ValueRef x, params long[] axes) => Node("Unsqueeze", [x, Int64s(axes)]);

    // --- Convolution and resampling -----------------------------------------------------------------------------

    /// <summary>
    /// 2-D convolution. x: [N, Cin, H, W]; weight: [Cout, Cin/group, kH, kW]; bias: [Cout] or ValueRef.None.
    /// <paramref name="pads"/> is [top, left, bottom, right].
    /// </summary>
    public ValueRef Conv(
        ValueRef x, ValueRef weight, ValueRef bias, long[] kernelShape,
        long[]? strides = null, long[]? pads = null, long[]? dilations = null, long group = 1)
    {
        var attributes = new List<Attr> { Attr.Int("group", group), Attr.Ints("kernel_shape", kernelShape) };
        if (strides is not null) attributes.Add(Attr.Ints("strides", strides));
        if (pads is not null) attributes.Add(Attr.Ints("pads", pads));
        if (dilations is not null) attributes.Add(Attr.Ints("dilations", dilations));
        ValueRef[] inputs = bias.Name.Length == 0 ? [x, weight] : [x, weight, bias];
        return Node("Conv", inputs, attributes.ToArray());
    }

    /// <summary>Resize by per-dimension <paramref name="scales"/>; mode "nearest", "linear" or "cubic".</summary>
    public ValueRef Resize(ValueRef x, float[] scales, string mode = "nearest")
    {
        var scalesValue = Constant("scales", scales, scales.Length);
        return Node("Resize", [x, ValueRef.None, scalesValue], Attr.String("mode", mode));
    }

    /// <summary>Moves blocks of channels into space: [N, C*b*b, H, W] -> [N, C, H*b, W*b].</summary>
    public ValueRef DepthToSpace(ValueRef x, long blockSize, string mode = "CRD") =>
        Node("DepthToSpace", [x], Attr.Int("blocksize", blockSize), Attr.String("mode", mode));
}
