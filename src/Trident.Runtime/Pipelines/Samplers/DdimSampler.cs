// DDIM sampler (Song et al. 2020) with η = 0, for epsilon-predicting UNets (SD 1.x/2.x style).
//
// Training noised x₀ as x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε with ᾱ_t = Π_{s≤t}(1 − β_s). Given the network's noise
// estimate ε̂ at timestep t, DDIM first estimates the clean sample
//     x̂₀ = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t
// and then re-noises it deterministically to the previous inference timestep p:
//     x_p = √ᾱ_p·x̂₀ + √(1 − ᾱ_p)·ε̂.
// Inference timesteps use diffusers' "leading" spacing: with r = T / N (integer division) they are
// (N − 1 − i)·r + steps_offset for i = 0..N−1, and p = t − r. After the last one (p < 0) ᾱ_p is 1 when
// set_alpha_to_one, so the final step returns x̂₀ itself, else ᾱ₀. Arithmetic is in double, stored as float.
// A v-predicting model (prediction_type "v_prediction", Salimans & Ho 2022, as diffusers' DDIMScheduler.step)
// gives v̂ instead: x̂₀ = √ᾱ_t·x_t − √(1 − ᾱ_t)·v̂ and ε̂ = √ᾱ_t·v̂ + √(1 − ᾱ_t)·x_t; the update is then the same,
// and still linear in (x_t, v̂).

namespace Trident.Runtime.Pipelines.Samplers;

/// <summary>Deterministic DDIM (η = 0) over a β schedule.</summary>
public sealed class DdimSampler : ISampler
{
    private readonly double[] _alphasCumprod;

    /// <summary>Creates the sampler; the defaults are Stable Diffusion 1.x's scheduler configuration.</summary>
    public DdimSampler(
        int numTrainTimesteps = 1000,
        double betaStart = 0.00085,
        double betaEnd = 0.012,
        BetaSchedule betaSchedule = BetaSchedule.ScaledLinear,
        int stepsOffset = 1,
        bool setAlphaToOne = false,
        PredictionType predictionType = PredictionType.Epsilon)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numTrainTimesteps, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(stepsOffset);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(stepsOffset, numTrainTimesteps);
        if (!(betaStart > 0 && betaStart < 1)) throw new ArgumentOutOfRangeException(nameof(betaStart), betaStart, "must lie in (0, 1)");
        if (!(betaEnd >= betaStart && betaEnd < 1)) throw new ArgumentOutOfRangeException(nameof(betaEnd), betaEnd, "must lie in [beta_start, 1)");
        if (!Enum.IsDefined(predictionType)) throw new ArgumentOutOfRangeException(nameof(predictionType), predictionType, "unknown prediction type");
        NumTrainTimesteps = numTrainTimesteps;
        StepsOffset = stepsOffset;
        PredictionType = predictionType;
        _alphasCumprod = AlphasCumprodOf(numTrainTimesteps, betaStart, betaEnd, betaSchedule);
        FinalAlphaCumprod = setAlphaToOne ? 1.0 : _alphasCumprod[0];
        MaxSteps = MaxStepsFor(numTrainTimesteps, stepsOffset);
    }

    /// <summary>Length T of the training schedule.</summary>
    public int NumTrainTimesteps { get; }

    /// <summary>What the model predicts: ε or v.</summary>
    public PredictionType PredictionType { get; }

    /// <summary>Offset added to every inference timestep.</summary>
    public int StepsOffset { get; }

    /// <summary>ᾱ used after the last inference timestep.</summary>
    public double FinalAlphaCumprod { get; }

    /// <summary>ᾱ_t for t = 0..T−1 (a copy).</summary>
    public double[] AlphasCumprod => (double[])_alphasCumprod.Clone();

    /// <inheritdoc />
    public int MaxSteps { get; }

    /// <summary>The largest N whose leading-spaced timesteps (N − 1)·(T / N) + offset stay below T.</summary>
    public static int MaxStepsFor(int numTrainTimesteps, int stepsOffset)
    {
        for (var n = numTrainTimesteps; n > 1; n--)
            if ((long)(n - 1) * (numTrainTimesteps / n) + stepsOffset < numTrainTimesteps) return n;
        return 1;
    }

    private static double[] AlphasCumprodOf(int t, double betaStart, double betaEnd, BetaSchedule schedule)
    {
        var result = new double[t];
        var product = 1.0;
        for (var i = 0; i < t; i++)
        {
            var fraction = t == 1 ? 0.0 : (double)i / (t - 1);
            var beta = schedule switch
            {
                BetaSchedule.Linear => betaStart + fraction * (betaEnd - betaStart),
                BetaSchedule.ScaledLinear => Square(Math.Sqrt(betaStart) + fraction * (Math.Sqrt(betaEnd) - Math.Sqrt(betaStart))),
                _ => throw new ArgumentOutOfRangeException(nameof(schedule), schedule, "unknown beta schedule"),
            };
            product *= 1.0 - beta;
            result[i] = product;
        }
        return result;
    }

    private static double Square(double x) => x * x;

    /// <summary>The integer training timestep of step <paramref name="stepIndex"/> of a run of
    /// <paramref name="steps"/>.</summary>
    public int TrainTimestep(int stepIndex, int steps) => (steps - 1 - stepIndex) * (NumTrainTimesteps / steps) + StepsOffset;

    /// <inheritdoc />
    public float[] Timesteps(int steps)
    {
        SamplerFactory.CheckStep(0, 0, 0, steps, MaxSteps);
        var t = new float[steps];
        for (var i = 0; i < steps; i++) t[i] = TrainTimestep(i, steps);
        return t;
    }

    /// <summary>ᾱ at the timestep step <paramref name="stepIndex"/> moves to (the final ᾱ after the last).</summary>
    public double PreviousAlphaCumprod(int stepIndex, int steps)
    {
        var previous = TrainTimestep(stepIndex, steps) - NumTrainTimesteps / steps;
        return previous >= 0 ? _alphasCumprod[previous] : FinalAlphaCumprod;
    }

    /// <inheritdoc />
    public void Step(Span<float> latents, ReadOnlySpan<float> modelOutput, int stepIndex, int steps)
    {
        SamplerFactory.CheckStep(latents.Length, modelOutput.Length, stepIndex, steps, MaxSteps);
        var alpha = _alphasCumprod[TrainTimestep(stepIndex, steps)];
        var alphaPrev = PreviousAlphaCumprod(stepIndex, steps);
        double sqrtAlpha = Math.Sqrt(alpha), sqrtOneMinusAlpha = Math.Sqrt(1 - alpha);
        double sqrtAlphaPrev = Math.Sqrt(alphaPrev), sqrtOneMinusAlphaPrev = Math.Sqrt(1 - alphaPrev);
        var v = PredictionType == PredictionType.VPrediction;
        for (var i = 0; i < latents.Length; i++)
        {
            double x = latents[i], output = modelOutput[i];
            var x0 = v ? sqrtAlpha * x - sqrtOneMinusAlpha * output : (x - sqrtOneMinusAlpha * output) / sqrtAlpha;
            var eps = v ? sqrtAlpha * output + sqrtOneMinusAlpha * x : output;
            latents[i] = (float)(sqrtAlphaPrev * x0 + sqrtOneMinusAlphaPrev * eps);
        }
    }

    /// <inheritdoc />
    public (double Keep, double Move) LinearStep(int stepIndex, int steps)
    {
        SamplerFactory.CheckStep(0, 0, stepIndex, steps, MaxSteps);
        var alpha = _alphasCumprod[TrainTimestep(stepIndex, steps)];
        var alphaPrev = PreviousAlphaCumprod(stepIndex, steps);
        double a = Math.Sqrt(alpha), s = Math.Sqrt(1 - alpha), ap = Math.Sqrt(alphaPrev), sp = Math.Sqrt(1 - alphaPrev);
        if (PredictionType == PredictionType.VPrediction)
            // x' = ap·(a·x − s·v) + sp·(a·v + s·x)
            return (ap * a + sp * s, sp * a - ap * s);
        // x' = ap · (x − s·ε)/a + sp·ε
        var keep = ap / a;
        return (keep, sp - keep * s);
    }
}
