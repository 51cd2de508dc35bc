// Seeded, order-independent weights for generated models.
//
// Design note. The bundled pipeline must be the same model on every machine and every run, so its weights
// come from a seed, not from System.Random (whose algorithm is not a contract) nor from string.GetHashCode
// (randomised per process). Each parameter gets its own SplitMix64 stream, seeded by the model seed mixed
// with a 64-bit FNV-1a hash of the parameter's UTF-8 name. Values are approximately normal -- the centred sum
// of four uniforms (Irwin-Hall), scaled to unit variance -- and not Box-Muller: the sum needs only
// additions, multiplications and a correctly rounded square root, which IEEE 754 makes bit-identical on every
// machine (log, sin and cos are not). The standard deviation is gain / sqrt(fanIn), the usual scale that keeps
// activations of order one through a deep stack.
// Because the stream depends only on (seed, name), adding or reordering layers does not change the weights
// of the others.

using System.Text;

namespace Trident.Runtime.Onnx.ModelWriter;

/// <summary>Weight sources for <see cref="GraphBuilder"/> blocks.</summary>
public static class DeterministicWeights
{
    /// <summary>
    /// Normal weights with standard deviation <paramref name="gain"/> / sqrt(fanIn), determined by
    /// (<paramref name="seed"/>, parameter name) only.
    /// </summary>
    public static WeightInit FanInNormal(ulong seed, float gain = 1f) =>
        (name, shape, fanIn) => Normal(seed, name, Count(shape), gain / MathF.Sqrt(Math.Max(1, fanIn)));

    /// <summary>
    /// <paramref name="count"/> approximately normal values with mean 0 and standard deviation
    /// <paramref name="std"/>, determined by (seed, name) only.
    /// </summary>
    public static float[] Normal(ulong seed, string name, long count, float std)
    {
        const double unitVariance = 1.7320508075688772; // sqrt(3): the sum of 4 uniforms has variance 4/12
        var state = seed ^ Fnv1a(name);
        var values = new float[count];
        for (long i = 0; i < count; i++)
        {
            var sum = 0.0;
            for (var j = 0; j < 4; j++) sum += (SplitMix64(ref state) >> 11) * (1.0 / (1UL << 53));
            values[i] = (float)((sum - 2.0) * unitVariance * std);
        }
        return values;
    }

    private static long Count(long[] shape)
    {
        long count = 1;
        foreach (var d in shape) count = checked(count * d);
        return count;
    }

    private static ulong SplitMix64(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong Fnv1a(string text)
    {
        var hash = 0xCBF29CE484222325UL;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 0x100000001B3UL;
        }
        return hash;
    }
}
