// A sampler is the numerical integrator of a diffusion pipeline's diffuse stage. It is stateless between
// calls: the step count is an argument of every method, so one instance (built once per pipeline from its
// manifest) serves concurrent requests with different step counts. Latents are updated in place on float
// spans, the layout the ONNX tensors already have.

namespace Trident.Runtime.Pipelines.Samplers;

/// <summary>Turns denoiser predictions into denoising steps.</summary>
public interface ISampler
{
    /// <summary>The largest step count the sampler supports.</summary>
    int MaxSteps { get; }

    /// <summary>The timestep value to feed the network at each of <paramref name="steps"/> steps, in order
    /// (decreasing). Flow matching yields σ·num_train_timesteps; DDIM yields integer training timesteps.</summary>
    /// <exception cref="ArgumentOutOfRangeException">unless 1 ≤ steps ≤ <see cref="MaxSteps"/>.</exception>
    float[] Timesteps(int steps);

    /// <summary>Advances <paramref name="latents"/> in place by step <paramref name="stepIndex"/> (0-based) of a
    /// run of <paramref name="steps"/>, given the network's <paramref name="modelOutput"/> for that step.</summary>
    /// <exception cref="ArgumentException">when the spans differ in length or the index is out of range.</exception>
    void Step(Span<float> latents, ReadOnlySpan<float> modelOutput, int stepIndex, int steps);

    /// <summary>Step <paramref name="stepIndex"/> as the linear map it is, x ← Keep·x + Move·modelOutput (both
    /// samplers are linear per step), so the step can run where the latents live — on the device, as a tiny
    /// ONNX graph — instead of on the host.</summary>
    (double Keep, double Move) LinearStep(int stepIndex, int steps);
}

/// <summary>Builds the sampler a manifest names.</summary>
public static class SamplerFactory
{
    /// <summary>The sampler for <paramref name="settings"/>.</summary>
    public static ISampler Create(SamplerSettings settings) => settings switch
    {
        FlowEulerSettings f => new FlowEulerSampler(f.NumTrainTimesteps, f.Shift),
        DdimSettings d => new DdimSampler(d.NumTrainTimesteps, d.BetaStart, d.BetaEnd, d.BetaSchedule, d.StepsOffset, d.SetAlphaToOne, d.PredictionType),
        _ => throw new NotSupportedException($"sampler settings {settings.GetType().Name}"),
    };

    internal static void CheckStep(int latents, int modelOutput, int stepIndex, int steps, int maxSteps)
    {
        if (steps < 1 || steps > maxSteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"must be between 1 and {maxSteps}");
        if (stepIndex < 0 || stepIndex >= steps)
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, $"must be between 0 and {steps - 1}");
        if (latents != modelOutput)
            throw new ArgumentException($"model output has {modelOutput} values but the latents have {latents}", nameof(modelOutput));
    }
}
