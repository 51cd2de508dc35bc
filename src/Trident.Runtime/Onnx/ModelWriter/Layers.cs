// Common network blocks, built from plain ONNX operators at opset 17.
//
// Design note. The blocks are the ones a small diffusion pipeline needs (design §8): Linear, LayerNorm and
// GroupNorm, GELU and SiLU, multi-head attention, 2-D convolution, and 2x upsampling (nearest Resize, or
// DepthToSpace). Each creates its parameters through a WeightInit called with the full (scoped) parameter name
// and shape, so a seeded source gives the same weights for the same names. Normalisation scales and biases are
// ones and zeros, as at initialisation in real models. Layouts follow PyTorch's where it matters: activations
// are [batch, tokens, features] for transformers and [N, C, H, W] for convolutions; a Linear weight is stored
// [in, out] so that the block is a plain MatMul.

namespace Trident.Runtime.Onnx.ModelWriter;

/// <summary>
/// Supplies the values of a parameter: its full name, its shape, and its fan-in (inputs per output unit).
/// Must return product(shape) values.
/// </summary>
public delegate float[] WeightInit(string name, long[] shape, long fanIn);

public sealed partial class GraphBuilder
{
    /// <summary>
    /// x @ W + b over the last dimension: [..., inFeatures] -> [..., outFeatures]. Parameters "name.weight"
    /// ([inFeatures, outFeatures]) and "name.bias" ([outFeatures]).
    /// </summary>
    public ValueRef Linear(ValueRef x, int inFeatures, int outFeatures, WeightInit weights, string name, bool bias = true)
    {
        var w = Parameter(weights, name + ".weight", [inFeatures, outFeatures], inFeatures);
        var y = MatMul(x, w);
        return bias ? Add(y, Parameter(weights, name + ".bias", [outFeatures], inFeatures)) : y;
    }

    /// <summary>LayerNormalization over the last dimension (size <paramref name="features"/>), scale 1 and bias 0.</summary>
    public ValueRef LayerNorm(ValueRef x, int features, string name, float epsilon = 1e-5f)
    {
        var scale = Initializer(name + ".weight", Filled(features, 1f), features);
        var bias = Initializer(name + ".bias", Filled(features, 0f), features);
        return LayerNormalization(x, scale, bias, -1, epsilon);
    }

    /// <summary>
    /// GroupNorm on [N, C, H, W] with <paramref name="groups"/> groups, then a per-channel scale 1 and bias 0:
    /// reshape to [N, groups, C/groups*H*W], InstanceNormalization, reshape back.
    /// </summary>
    public ValueRef GroupNorm(ValueRef x, int channels, int groups, string name, float epsilon = 1e-5f)
    {
        if (groups <= 0 || channels % groups != 0)
            throw new ArgumentException($"GroupNorm '{name}': {channels} channels do not split into {groups} groups.");
        var grouped = Reshape(x, 0, groups, -1);
        var normalised = InstanceNormalization(
            grouped, Constant("ones", Filled(groups, 1f), groups), Constant("zeros", Filled(groups, 0f), groups), epsilon);
        var restored = Reshape(normalised, Shape(x));
        var scale = Initializer(name + ".weight", Filled(channels, 1f), channels, 1, 1);
        var bias = Initializer(name + ".bias", Filled(channels, 0f), channels, 1, 1);
        return Add(Mul(restored, scale), bias);
    }

    /// <summary>GELU, exact form: 0.5 x (1 + erf(x / sqrt 2)) (ONNX Runtime fuses this pattern).</summary>
    public ValueRef Gelu(ValueRef x)
    {
        var erf = Erf(Mul(x, Scalar(1f / MathF.Sqrt(2f))));
        return Mul(Mul(x, Scalar(0.5f)), Add(erf, Scalar(1f)));
    }

    /// <summary>SiLU (swish): x * sigmoid(x).</summary>
    public ValueRef SiLU(ValueRef x) => Mul(x, Sigmoid(x));

    /// <summary>
    /// Multi-head scaled dot-product attention with input and output projections.
    /// query: [B, Tq, dModel]; keyValue: [B, Tk, dKeyValue] (pass query again for self-attention);
    /// returns [B, Tq, dModel]. Parameters "name.q", "name.k", "name.v", "name.out" (Linear).
    /// Batch and token counts may be symbolic.
    /// </summary>
    public ValueRef MultiHeadAttention(
        ValueRef query, ValueRef keyValue, int dModel, int heads, WeightInit weights, string name, int? dKeyValue = null)
    {
        if (heads <= 0 || dModel % heads != 0)
            throw new ArgumentException($"Attention '{name}': dModel {dModel} is not a multiple of {heads} heads.");
        var headDim = dModel / heads;
        var kvFeatures = dKeyValue ?? dModel;
        var q = SplitHeads(Linear(query, dModel, dModel, weights, name + ".q"), heads, headDim);        // [B, H, Tq, Dh]
        var k = SplitHeads(Linear(keyValue, kvFeatures, dModel, weights, name + ".k"), heads, headDim); // [B, H, Tk, Dh]
        var v = SplitHeads(Linear(keyValue, kvFeatures, dModel, weights, name + ".v"), heads, headDim); // [B, H, Tk, Dh]
        var scores = Mul(MatMul(q, Transpose(k, 0, 1, 3, 2)), Scalar(1f / MathF.Sqrt(headDim)));     // [B, H, Tq, Tk]
        var context = MatMul(Softmax(scores, -1), v);                                                   // [B, H, Tq, Dh]
        var merged = Reshape(Transpose(context, 0, 2, 1, 3), 0, 0, dModel);                            // [B, Tq, dModel]
        return Linear(merged, dModel, dModel, weights, name + ".out");
    }

    /// <summary>
    /// 2-D convolution with a square kernel and "same" padding by default: [N, inChannels, H, W] ->
    /// [N, outChannels, H/stride, W/stride]. Parameters "name.weight" ([out, in, k, k]) and "name.bias" ([out]).
    /// </summary>
    public ValueRef Conv2d(
        ValueRef x, int inChannels, int outChannels, int kernel, WeightInit weights, string name,
        int stride = 1, int? padding = null)
    {
        var pad = padding ?? kernel / 2;
        long fanIn = (long)inChannels * kernel * kernel;
        var w = Parameter(weights, name + ".weight", [outChannels, inChannels, kernel, kernel], fanIn);
        var b = Parameter(weights, name + ".bias", [outChannels], fanIn);
        return Conv(x, w, b, [kernel, kernel], strides: [stride, stride], pads: [pad, pad, pad, pad]);
    }

    /// <summary>Nearest-neighbour 2x upsampling of [N, C, H, W].</summary>
    public ValueRef Upsample2x(ValueRef x) => Resize(x, [1f, 1f, 2f, 2f], "nearest");

    /// <summary>Pixel shuffle: [N, C*f*f, H, W] -> [N, C, H*f, W*f] (DepthToSpace, CRD order as in PyTorch).</summary>
    public ValueRef PixelShuffle(ValueRef x, int factor) => DepthToSpace(x, factor, "CRD");

    private ValueRef SplitHeads(ValueRef x, int heads, int headDim) =>
        Transpose(Reshape(x, 0, 0, heads, headDim), 0, 2, 1, 3);

    private ValueRef Parameter(WeightInit weights, string name, long[] shape, long fanIn)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var values = weights(Scoped(name), shape, fanIn)
                     ?? throw new InvalidOperationException($"The weight source returned nothing for '{Scoped(name)}'.");
        return Initializer(name, values, shape);
    }

    private static float[] Filled(int count, float value)
    {
        var data = new float[count];
        Array.Fill(data, value);
        return data;
    }
}
