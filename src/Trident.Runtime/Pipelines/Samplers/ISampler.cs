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

    /// <summary>One run of <paramref name="steps"/> steps for a batch with <paramref name="seeds"/> (one per item:
    /// ancestral samplers draw their per-step noise from them). The default is the stateless linear run of
    /// <see cref="Timesteps"/> and <see cref="Step"/>.</summary>
    ISamplerRun Start(int steps, IReadOnlyList<ulong> seeds) => new LinearRun(this, steps);
}

/// <summary>The state of one sampling run: what the diffuse loop asks at each step.</summary>
public interface ISamplerRun
{
    /// <summary>The timestep fed to the network at each step.</summary>
    float[] Timesteps { get; }

    /// <summary>Whether each step is the sampler's <see cref="ISampler.LinearStep"/> with unit input and noise
    /// scales, so the loop may run it on the device (SamplerStepGraph).</summary>
    bool Linear { get; }

    /// <summary>The initial latents are standard noise times this (σ_max for σ-space samplers, else 1).</summary>
    double InitialNoiseScale { get; }

    /// <summary>The network sees the latents times this at step <paramref name="stepIndex"/> (1/√(σ² + 1) for
    /// σ-space samplers, else 1).</summary>
    double InputScale(int stepIndex);

    /// <summary>Advances <paramref name="latents"/> (the batch's conditional latents) by step
    /// <paramref name="stepIndex"/>, given the (guided) model output.</summary>
    void Step(Span<float> latents, ReadOnlySpan<float> modelOutput, int stepIndex);
}

/// <summary>The run of a stateless sampler that is linear per step (DDIM, flow-matching Euler).</summary>
internal sealed class LinearRun(ISampler sampler, int steps) : ISamplerRun
{
    public float[] Timesteps { get; } = sampler.Timesteps(steps);

    public bool Linear => true;

    public double InitialNoiseScale => 1;

    public double InputScale(int stepIndex) => 1;

    public void Step(Span<float> latents, ReadOnlySpan<float> modelOutput, int stepIndex) => sampler.Step(latents, modelOutput, stepIndex, steps);
}

/// <summary>Builds the sampler a manifest names.</summary>
public static class SamplerFactory
{
    /// <summary>Scheduler names a request may give for a pipeline whose manifest names
    /// <paramref name="settings"/>: the manifest's own first. A β-schedule (DDIM) model also runs under the
    /// σ-space samplers over the same schedule and prediction type; a flow-matching model only under flow Euler.</summary>
    public static IReadOnlyList<string> Names(SamplerSettings settings) => settings switch
    {
        DdimSettings d => [d.DefaultScheduler, .. BetaFamily.Where(n => n != d.DefaultScheduler)],
        FlowEulerSettings => [FlowEuler],
        _ => [],
    };

    /// <summary>The samplers over a β schedule (DDIM's family), in their listing order.</summary>
    public static readonly IReadOnlyList<string> BetaFamily = [Ddim, Euler, EulerAncestral, DpmPlusPlus2MKarras];

    /// <summary>Scheduler names (the <c>scheduler</c> request field).</summary>
    public const string Ddim = "ddim", Euler = "euler", EulerAncestral = "euler-ancestral", DpmPlusPlus2MKarras = "dpm++-2m-karras", FlowEuler = "flow-euler";

    /// <summary>The sampler called <paramref name="name"/> over the schedule of <paramref name="settings"/>; the
    /// manifest's own when <paramref name="name"/> is null.</summary>
    /// <exception cref="ArgumentException">when <paramref name="name"/> is not one of <see cref="Names"/>.</exception>
    public static ISampler Create(SamplerSettings settings, string? name)
    {
        if (settings is FlowEulerSettings f && name is null or FlowEuler) return new FlowEulerSampler(f.NumTrainTimesteps, f.Shift);
        name ??= Names(settings).FirstOrDefault();
        if (name is null || !Names(settings).Contains(name))
            throw new ArgumentException($"scheduler '{name}' is not one of {string.Join(", ", Names(settings))}", nameof(name));
        var d = (DdimSettings)settings;
        if (name == Ddim) return new DdimSampler(d.NumTrainTimesteps, d.BetaStart, d.BetaEnd, d.BetaSchedule, d.StepsOffset, d.SetAlphaToOne, d.PredictionType);
        var alphas = new DdimSampler(d.NumTrainTimesteps, d.BetaStart, d.BetaEnd, d.BetaSchedule, d.StepsOffset, d.SetAlphaToOne, d.PredictionType).AlphasCumprod;
        return name switch
        {
            Euler => new SigmaSampler(alphas, d.PredictionType, SigmaMethod.Euler, karras: false),
            EulerAncestral => new SigmaSampler(alphas, d.PredictionType, SigmaMethod.EulerAncestral, karras: false),
            _ => new SigmaSampler(alphas, d.PredictionType, SigmaMethod.DpmPlusPlus2M, karras: true),
        };
    }

    /// <summary>The sampler for <paramref name="settings"/>: its default scheduler.</summary>
    public static ISampler Create(SamplerSettings settings) => settings switch
    {
        FlowEulerSettings or DdimSettings => Create(settings, null),
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
