// The sampler step and classifier-free guidance as a tiny ONNX graph, so the diffuse loop can keep its latents
// on the device between steps (CUDA): the denoiser's prediction never comes back to the host.
//
//   inputs   x [B, …], prediction [rows, …] (rows = 2B with guidance, else B), coefficients [3] = (keep, move, g)
//   outputs  x_next = keep·x + move·m, with m = u + g·(c − u) (guided; c, u the halves of prediction) or m = prediction
//            model_input = [x_next; x_next] (guided) or x_next: the denoiser's next latent input
// Both samplers are linear per step (ISampler.LinearStep), which is what makes this graph exact.

using Trident.Runtime.Onnx;
using Trident.Runtime.Onnx.ModelWriter;

namespace Trident.Runtime.Execution;

internal static class SamplerStepGraph
{
    public const string X = "x";
    public const string Prediction = "prediction";
    public const string Coefficients = "coefficients";
    public const string XNext = "x_next";
    public const string ModelInput = "model_input";

    /// <summary>The step model for latents of <paramref name="rank"/> in <paramref name="type"/>.</summary>
    public static byte[] Build(int rank, TensorElementType type, bool guided)
    {
        var g = new GraphBuilder(guided ? "trident_guided_step" : "trident_step");
        Dim[] dims = [.. Enumerable.Range(0, rank).Select(i => (Dim)$"d{i}")];
        Dim[] rowDims = [(Dim)"rows", .. dims.Skip(1)];
        var x = g.Input(X, type, dims);
        var prediction = g.Input(Prediction, type, rowDims);
        var coefficients = g.Input(Coefficients, type, 3);
        ValueRef Coefficient(long i) => g.Node("Slice", [coefficients, g.Int64s(i), g.Int64s(i + 1), g.Int64s(0)]);
        var m = prediction;
        if (guided)
        {
            var halves = g.Node("Split", [prediction], 2, Attr.Int("axis", 0));
            m = g.Add(halves[1], g.Mul(Coefficient(2), g.Sub(halves[0], halves[1])));
        }
        var next = g.Add(g.Mul(Coefficient(0), x), g.Mul(Coefficient(1), m));
        g.Output(next, XNext, type, dims);
        g.Output(guided ? g.Concat(0, next, next) : next, ModelInput, type, rowDims);
        return g.ToBytes();
    }
}
