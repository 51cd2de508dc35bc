// Seeded Gaussian noise for initial latents, identical on every runtime and platform.
//
// System.Random is not used: its algorithm is an implementation detail that has changed between .NET
// versions. The uniform source is xoshiro256** (Blackman & Vigna), its 256-bit state filled from the 64-bit
// seed by SplitMix64 as the authors recommend. Uniforms become normals with Marsaglia's polar form of the
// Box–Muller transform: draw u, v uniform in [−1, 1) until 0 < s = u² + v² < 1, then u·√(−2 ln s / s) and
// v·√(−2 ln s / s) are two independent N(0, 1) values. The polar form needs no sine or cosine, and its one
// transcendental, ln, is computed by PortableMath.Log from IEEE-754 +, −, ×, ÷ only (which, like √, are
// correctly rounded everywhere), whereas Math.Log defers to the platform's C library and may differ in
// the last bit. Values are produced in double and rounded to float once.

namespace Trident.Runtime.Pipelines.Samplers;

/// <summary>A deterministic stream of standard normal values from a 64-bit seed. Not thread-safe.</summary>
public sealed class GaussianNoise
{
    private ulong _s0, _s1, _s2, _s3;
    private double _spare;
    private bool _hasSpare;

    /// <summary>Starts the stream for <paramref name="seed"/>.</summary>
    public GaussianNoise(ulong seed)
    {
        var sm = seed;
        _s0 = SplitMix64(ref sm);
        _s1 = SplitMix64(ref sm);
        _s2 = SplitMix64(ref sm);
        _s3 = SplitMix64(ref sm);
    }

    /// <summary>One step of SplitMix64 (Steele, Lea &amp; Flood): advances <paramref name="state"/> and returns
    /// the next output.</summary>
    public static ulong SplitMix64(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>The next 64 raw bits of xoshiro256**.</summary>
    public ulong NextUInt64()
    {
        var result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A uniform double in [0, 1) with 53 random bits.</summary>
    public double NextUniform() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>The next standard normal value.</summary>
    public double NextGaussian()
    {
        if (_hasSpare)
        {
            _hasSpare = false;
            return _spare;
        }
        double u, v, s;
        do
        {
            u = 2.0 * NextUniform() - 1.0;
            v = 2.0 * NextUniform() - 1.0;
            s = u * u + v * v;
        } while (s >= 1.0 || s == 0.0);
        var factor = Math.Sqrt(-2.0 * PortableMath.Log(s) / s);
        _spare = v * factor;
        _hasSpare = true;
        return u * factor;
    }

    /// <summary>Fills <paramref name="destination"/> with the next values of the stream, in order; the same values
    /// as that many calls of <see cref="NextGaussian"/>.</summary>
    public void Fill(Span<float> destination)
    {
        for (var i = 0; i < destination.Length; i++) destination[i] = (float)NextGaussian();
    }

    /// <summary>The first <paramref name="count"/> values of the stream for <paramref name="seed"/>.</summary>
    public static float[] Sample(ulong seed, int count)
    {
        var values = new float[count];
        new GaussianNoise(seed).Fill(values);
        return values;
    }
}

/// <summary>Elementary functions computed from correctly rounded IEEE-754 operations only, so that their
/// results are bit-identical on every platform.</summary>
public static class PortableMath
{
    private const double Ln2 = 0.6931471805599453;
    private const double Sqrt2 = 1.4142135623730951;
    private const double MinNormal = 2.2250738585072014E-308; // 2^-1022

    /// <summary>
    /// Natural logarithm of a positive finite <paramref name="x"/>, within a few ulp of the true value.
    /// x = m·2^e with m in [√½, √2); ln m = 2·atanh(z) = 2·(z + z³/3 + z⁵/5 + …) with z = (m − 1)/(m + 1),
    /// |z| ≤ 0.1716, so 12 odd terms bring the truncation error below 1e-19.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">unless x is positive and finite.</exception>
    public static double Log(double x)
    {
        if (!(x > 0 && double.IsFinite(x))) throw new ArgumentOutOfRangeException(nameof(x), x, "must be positive and finite");
        var exponent = 0;
        if (x < MinNormal)
        {
            // Subnormal: scale into the normal range first (exact, a power of two).
            x *= 18014398509481984.0; // 2^54
            exponent = -54;
        }
        var bits = BitConverter.DoubleToInt64Bits(x);
        exponent += (int)((bits >> 52) & 0x7FF) - 1023;
        var m = BitConverter.Int64BitsToDouble((bits & 0x000F_FFFF_FFFF_FFFFL) | 0x3FF0_0000_0000_0000L);
        if (m >= Sqrt2)
        {
            m *= 0.5;
            exponent++;
        }
        var z = (m - 1.0) / (m + 1.0);
        var z2 = z * z;
        var series = 0.0;
        for (var k = 23; k >= 3; k -= 2) series = (series + 1.0 / k) * z2;
        var lnM = 2.0 * z * (1.0 + series);
        return exponent * Ln2 + lnM;
    }
}
