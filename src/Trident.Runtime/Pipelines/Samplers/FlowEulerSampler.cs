// Flow-matching Euler sampler (SD3/Flux style).
//
// Rectified-flow models are trained on x_σ = (1 − σ)·x₀ + σ·ε and predict the velocity v = ε − x₀, so
// integrating dx/dσ = v from σ = 1 (pure noise) to σ = 0 yields a sample. The schedule is N + 1 sigmas
// linear from 1 to 0, σᵢ = 1 − i/N, optionally warped by the timestep shift s,
//     σ' = s·σ / (1 + (s − 1)·σ),
// which keeps 0 and 1 fixed, stays monotone for s > 0, and for s > 1 spends more steps at high noise (SD3
// uses s = 3 at 1024²). Step i is explicit Euler, x ← x + (σᵢ₊₁ − σᵢ)·v, and the network sees the timestep
// σᵢ·num_train_timesteps. (diffusers ends the evaluated sigmas at 1/num_train_timesteps rather than at 1/N
// before appending 0; the linear 1 → 0 grid here is the textbook one and differs only in the spacing.)

namespace Trident.Runtime.Pipelines.Samplers;

/// <summary>Explicit Euler integration of a flow-matching velocity field.</summary>
public sealed class FlowEulerSampler : ISampler
{
    /// <summary>Creates the sampler.</summary>
    /// <param name="numTrainTimesteps">Scale from σ to the network's timestep (1000 for SD3/Flux).</param>
    /// <param name="shift">Timestep shift s &gt; 0; 1 keeps the schedule linear.</param>
    public FlowEulerSampler(int numTrainTimesteps = 1000, double shift = 1.0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numTrainTimesteps, 1);
        if (!(double.IsFinite(shift) && shift > 0)) throw new ArgumentOutOfRangeException(nameof(shift), shift, "must be positive");
        NumTrainTimesteps = numTrainTimesteps;
        Shift = shift;
    }

    /// <summary>Scale from σ to the network's timestep.</summary>
    public int NumTrainTimesteps { get; }

    /// <summary>The timestep shift s.</summary>
    public double Shift { get; }

    /// <inheritdoc />
    public int MaxSteps => 1 << 20;

    /// <summary>σᵢ of a run of <paramref name="steps"/>: σ₀ = 1, σ_steps = 0, shifted.</summary>
    public double Sigma(int index, int steps)
    {
        // s·σ / (1 + (s − 1)·σ) written as s·σ / (s·σ + 1 − σ): the same value, but exactly 1 at σ = 1
        // and exactly 0 at σ = 0 in floating point, for every s.
        var sigma = 1.0 - (double)index / steps;
        var scaled = Shift * sigma;
        return scaled / (scaled + (1.0 - sigma));
    }

    /// <summary>All <paramref name="steps"/> + 1 sigmas of a run, from 1 down to 0.</summary>
    public double[] Sigmas(int steps)
    {
        SamplerFactory.CheckStep(0, 0, 0, steps, MaxSteps);
        var sigmas = new double[steps + 1];
        for (var i = 0; i <= steps; i++) sigmas[i] = Sigma(i, steps);
        return sigmas;
    }

    /// <inheritdoc />
    public float[] Timesteps(int steps)
    {
        SamplerFactory.CheckStep(0, 0, 0, steps, MaxSteps);
        var t = new float[steps];
        for (var i = 0; i < steps; i++) t[i] = (float)(Sigma(i, steps) * NumTrainTimesteps);
        return t;
    }

    /// <inheritdoc />
    public void Step(Span<float> latents, ReadOnlySpan<float> modelOutput, int stepIndex, int steps)
    {
        SamplerFactory.CheckStep(latents.Length, modelOutput.Length, stepIndex, steps, MaxSteps);
        var dt = (float)(Sigma(stepIndex + 1, steps) - Sigma(stepIndex, steps));
        for (var i = 0; i < latents.Length; i++) latents[i] += dt * modelOutput[i];
    }

    /// <inheritdoc />
    public (double Keep, double Move) LinearStep(int stepIndex, int steps)
    {
        SamplerFactory.CheckStep(0, 0, stepIndex, steps, MaxSteps);
        return (1.0, (float)(Sigma(stepIndex + 1, steps) - Sigma(stepIndex, steps)));
    }
}
