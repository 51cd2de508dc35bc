namespace Trident.Runtime.Pipelines.Samplers;

/// <summary>Classifier-free guidance: combines the unconditional and conditional predictions of one step.</summary>
public static class ClassifierFreeGuidance
{
    /// <summary>
    /// Writes u + g·(c − u) to <paramref name="destination"/>, which may be the same memory as either input.
    /// It is computed as c + (g − 1)·(c − u), the same value, so that g = 1 (no guidance) returns the
    /// conditional prediction bit for bit.
    /// </summary>
    /// <exception cref="ArgumentException">when the three spans differ in length.</exception>
    public static void Combine(ReadOnlySpan<float> unconditional, ReadOnlySpan<float> conditional, float scale, Span<float> destination)
    {
        if (unconditional.Length != conditional.Length || destination.Length != conditional.Length)
            throw new ArgumentException(
                $"lengths differ: unconditional {unconditional.Length}, conditional {conditional.Length}, destination {destination.Length}");
        var g = scale - 1f;
        for (var i = 0; i < destination.Length; i++)
        {
            var c = conditional[i];
            destination[i] = c + g * (c - unconditional[i]);
        }
    }
}
