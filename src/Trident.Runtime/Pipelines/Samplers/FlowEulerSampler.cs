// Flow-matching Euler sampler (SD3/Flux style).
//
// Rectified-flow models are trained on x_σ = (1 − σ)·x₀ + σ·ε and predict the velocity v = ε − x₀, so
// integrating dx/dσ = v from σ = 1 (pure noise) to σ = 0 yields a sample. Step i is explicit Euler,
// x ← x + (σᵢ₊₁ − σᵢ)·v, and the network sees the timestep σᵢ·num_train_timesteps.
//
// The schedule (source: diffusers, src/diffusers/schedulers/scheduling_flow_match_euler_discrete.py,
// FlowMatchEulerDiscreteScheduler.set_timesteps / time_shift, and pipelines/flux/pipeline_flux.py,
// calculate_shift). N + 1 sigmas: the unshifted grid σᵢ = 1 − i/N (i = 0 … N − 1) and a final 0, warped by
//   • the static shift s (`shift`; use_dynamic_shifting false):  σ' = s·σ / (1 + (s − 1)·σ);
//   • or the resolution-dependent shift (`use_dynamic_shifting` true): μ linear in the packed image sequence
//     length L (the 2×2-patch token count (h/16)·(w/16) for an 8× VAE),
//         μ = base_shift + (L − base_image_seq_len)·(max_shift − base_shift)/(max_image_seq_len − base_image_seq_len),
//     and the exponential time shift σ' = e^μ / (e^μ + (1/σ − 1)) (diffusers' time_shift with exponent 1).
//   Both keep 0 and 1 fixed and are monotone; the final σ is 0 (diffusers appends it unshifted).
// Grid decision: diffusers' FluxPipeline passes sigmas = linspace(1, 1/N, N) to set_timesteps, which is exactly
// 1 − i/N, so for Flux this grid is diffusers' own. The scheduler's default grid (used by StableDiffusion3Pipeline,
// which passes no sigmas) is linspace(1, σ_min, N) with σ_min the shifted 1/num_train_timesteps, shifted once
// more; it differs from 1 − i/N only in the spacing of the tail (e.g. N = 4, s = 3: diffusers 1, 0.9, 0.75, 0.0029…
// is not reproduced; Trident's is 1, 0.9, 0.75, 0.5). Trident keeps the one textbook grid for both and says so.

namespace Trident.Runtime.Pipelines.Samplers;

/// <summary>Explicit Euler integration of a flow-matching velocity field.</summary>
public sealed class FlowEulerSampler : ISampler
{
    /// <summary>Creates the sampler with a static shift.</summary>
    /// <param name="numTrainTimesteps">Scale from σ to the network's timestep (1000 for SD3/Flux).</param>
    /// <param name="shift">Timestep shift s &gt; 0; 1 keeps the schedule linear.</param>
    /// <exception cref="ArgumentOutOfRangeException">when numTrainTimesteps &lt; 1 or shift is not positive.</exception>
    public FlowEulerSampler(int numTrainTimesteps = 1000, double shift = 1.0)
        : this(numTrainTimesteps, shift, null)
    {
    }

    private FlowEulerSampler(int numTrainTimesteps, double shift, double? mu)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numTrainTimesteps, 1);
        if (!(double.IsFinite(shift) && shift > 0)) throw new ArgumentOutOfRangeException(nameof(shift), shift, "must be positive");
        if (mu is { } m && !double.IsFinite(m)) throw new ArgumentOutOfRangeException(nameof(mu), mu, "must be finite");
        NumTrainTimesteps = numTrainTimesteps;
        Shift = shift;
        Mu = mu;
    }

    /// <summary>A sampler with the resolution-dependent (exponential) shift σ' = e^μ / (e^μ + (1/σ − 1)) for a
    /// run whose packed image sequence length gives <paramref name="mu"/> (see <see cref="MuOf"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">when μ is not finite.</exception>
    public static FlowEulerSampler WithMu(int numTrainTimesteps, double mu) => new(numTrainTimesteps, 1.0, mu);

    /// <summary>μ of diffusers' calculate_shift: linear in <paramref name="imageSequenceLength"/> L through
    /// (base_image_seq_len, base_shift) and (max_image_seq_len, max_shift), not clamped (diffusers extrapolates).</summary>
    /// <param name="imageSequenceLength">Packed latent tokens of the image: (height/16)·(width/16) for Flux.</param>
    /// <param name="dynamic">The scheduler config's dynamic-shift parameters.</param>
    public static double MuOf(int imageSequenceLength, DynamicShift dynamic)
    {
        ArgumentNullException.ThrowIfNull(dynamic);
        var slope = (dynamic.MaxShift - dynamic.BaseShift) / (dynamic.MaxImageSeqLen - dynamic.BaseImageSeqLen);
        return dynamic.BaseShift + (imageSequenceLength - dynamic.BaseImageSeqLen) * slope;
    }

    /// <summary>Scale from σ to the network's timestep.</summary>
    public int NumTrainTimesteps { get; }

    /// <summary>The static timestep shift s (1 when <see cref="Mu"/> is set).</summary>
    public double Shift { get; }

    /// <summary>μ of the exponential (resolution-dependent) shift, or null for the static shift.</summary>
    public double? Mu { get; }

    /// <inheritdoc />
    public int MaxSteps => 1 << 20;

    /// <summary>σᵢ of a run of <paramref name="steps"/>: σ₀ = 1, σ_steps = 0, shifted.</summary>
    public double Sigma(int index, int steps)
    {
        var sigma = 1.0 - (double)index / steps;
        if (Mu is { } mu)
        {
            // e^μ / (e^μ + (1/σ − 1)) written as e^μ·σ / (e^μ·σ + 1 − σ): exactly 0 at σ = 0 and 1 at σ = 1.
            var e = Math.Exp(mu) * sigma;
            return e / (e + (1.0 - sigma));
        }
        // s·σ / (1 + (s − 1)·σ) written as s·σ / (s·σ + 1 − σ): the same value, but exactly 1 at σ = 1
        // and exactly 0 at σ = 0 in floating point, for every s.
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
