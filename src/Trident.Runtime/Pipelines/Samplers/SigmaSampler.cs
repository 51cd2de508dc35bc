// Samplers in σ-space over a DDPM β schedule: Euler, Euler ancestral and DPM-Solver++ 2M, as diffusers'
// EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and DPMSolverMultistepScheduler (algorithm_type
// "dpmsolver++", solver_order 2, use_karras_sigmas) and k-diffusion's sample_euler, sample_euler_ancestral and
// sample_dpmpp_2m compute them (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
// Models"; Lu et al. 2022, "DPM-Solver++").
//
// The training schedule gives σ_t = √((1 − ᾱ_t)/ᾱ_t). The latents live unscaled, x = x₀ + σ·ε: they start as
// noise·σ_max (diffusers' init_noise_sigma for "linspace" spacing and Karras sigmas) and the network sees
// x / √(σ² + 1) (scale_model_input) at the timestep t of σ. Its output becomes the denoised estimate
//     ε-prediction: x̂₀ = x − σ·ε̂;     v-prediction: x̂₀ = x/(σ² + 1) − σ/√(σ² + 1)·v̂.
// Sigmas: "linspace" timesteps t_i = (T − 1)(1 − i/(N − 1)) with σ linearly interpolated over the training σ_t
// (diffusers' default for EulerDiscreteScheduler), or Karras sigmas σ_i = (σ_max^{1/ρ} + i/(N − 1)·(σ_min^{1/ρ} −
// σ_max^{1/ρ}))^ρ, ρ = 7, with t_i from log σ interpolated over the training schedule; then σ_N = 0.
// Steps, with d = (x − x̂₀)/σ:
//     Euler:            x ← x + (σ_{i+1} − σ_i)·d
//     Euler ancestral:  σ_up = √(σ_{i+1}²(σ_i² − σ_{i+1}²)/σ_i²), σ_down = √(σ_{i+1}² − σ_up²),
//                       x ← x + (σ_down − σ_i)·d + σ_up·z, z ~ N(0, 1) seeded per batch item and step
//     DPM++ 2M:         λ = −log σ, h = λ_{i+1} − λ_i; first (and last) step x ← (σ_{i+1}/σ_i)·x − (e^{−h} − 1)·x̂₀;
//                       otherwise r = h_{i−1}/h, D = (1 + 1/(2r))·x̂₀ − 1/(2r)·x̂₀_{prev}, x ← (σ_{i+1}/σ_i)·x − (e^{−h} − 1)·D.
// Euler is linear per step but scales the model input, and the other two carry state (the previous estimate,
// the noise), so these run on the host loop (ISamplerRun.Linear is false).

namespace Trident.Runtime.Pipelines.Samplers;

/// <summary>The σ-space methods.</summary>
public enum SigmaMethod
{
    /// <summary>Explicit Euler in σ (diffusers' EulerDiscreteScheduler).</summary>
    Euler,

    /// <summary>Euler with ancestral noise (EulerAncestralDiscreteScheduler).</summary>
    EulerAncestral,

    /// <summary>DPM-Solver++, second-order multistep (DPMSolverMultistepScheduler).</summary>
    DpmPlusPlus2M,
}

/// <summary>A σ-space sampler over a DDPM β schedule (see the file header for the formulas and sources).</summary>
public sealed class SigmaSampler : ISampler
{
    private const double Rho = 7.0;
    private readonly double[] trainSigmas;
    private readonly double[] logTrainSigmas;

    /// <summary>Creates the sampler over the training schedule ᾱ (one value per training timestep).</summary>
    public SigmaSampler(IReadOnlyList<double> alphasCumprod, PredictionType prediction, SigmaMethod method, bool karras)
    {
        ArgumentNullException.ThrowIfNull(alphasCumprod);
        if (alphasCumprod.Count < 2) throw new ArgumentException("the training schedule needs at least two timesteps", nameof(alphasCumprod));
        trainSigmas = alphasCumprod.Select(a => Math.Sqrt((1 - a) / a)).ToArray();
        logTrainSigmas = trainSigmas.Select(s => Math.Log(s)).ToArray();
        Prediction = prediction;
        Method = method;
        Karras = karras;
    }

    /// <summary>What the model predicts.</summary>
    public PredictionType Prediction { get; }

    /// <summary>The integration method.</summary>
    public SigmaMethod Method { get; }

    /// <summary>Whether the sigmas are Karras-spaced (else linspace timesteps).</summary>
    public bool Karras { get; }

    /// <inheritdoc />
    public int MaxSteps => trainSigmas.Length;

    /// <summary>σ_0 … σ_{N−1} and the final 0, with the timestep of each of the first N.</summary>
    public (double[] Sigmas, float[] Timesteps) Schedule(int steps)
    {
        SamplerFactory.CheckStep(0, 0, 0, steps, MaxSteps);
        var last = trainSigmas.Length - 1;
        var sigmas = new double[steps + 1];
        var timesteps = new float[steps];
        for (var i = 0; i < steps; i++)
        {
            var f = steps == 1 ? 0.0 : (double)i / (steps - 1);
            if (Karras)
            {
                double max = Math.Pow(trainSigmas[last], 1 / Rho), min = Math.Pow(trainSigmas[0], 1 / Rho);
                sigmas[i] = Math.Pow(max + f * (min - max), Rho);
                timesteps[i] = (float)TimestepOf(sigmas[i]);
            }
            else
            {
                var t = last * (1 - f);
                var lo = (int)Math.Floor(t);
                var hi = Math.Min(lo + 1, last);
                sigmas[i] = trainSigmas[lo] + (t - lo) * (trainSigmas[hi] - trainSigmas[lo]);
                timesteps[i] = (float)t;
            }
        }
        return (sigmas, timesteps);
    }

    // The (fractional) training timestep whose log σ is log σ: linear interpolation over the increasing log σ_t.
    private double TimestepOf(double sigma)
    {
        var l = Math.Log(sigma);
        if (l <= logTrainSigmas[0]) return 0;
        var last = logTrainSigmas.Length - 1;
        if (l >= logTrainSigmas[last]) return last;
        var hi = Array.BinarySearch(logTrainSigmas, l);
        if (hi >= 0) return hi;
        hi = ~hi;
        var lo = hi - 1;
        return lo + (l - logTrainSigmas[lo]) / (logTrainSigmas[hi] - logTrainSigmas[lo]);
    }

    /// <inheritdoc />
    public float[] Timesteps(int steps) => Schedule(steps).Timesteps;

    /// <summary>Not available: a σ-space step needs its run's state (<see cref="Start"/>).</summary>
    public void Step(Span<float> latents, ReadOnlySpan<float> modelOutput, int stepIndex, int steps) =>
        throw new NotSupportedException($"{Method} steps need a run's state: call Start");

    /// <summary>Not available: the step is not a plain linear map of (x, output).</summary>
    public (double Keep, double Move) LinearStep(int stepIndex, int steps) =>
        throw new NotSupportedException($"{Method} is not run as a linear step on the device");

    /// <inheritdoc />
    public ISamplerRun Start(int steps, IReadOnlyList<ulong> seeds)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        var (sigmas, timesteps) = Schedule(steps);
        return new Run(this, sigmas, timesteps, seeds);
    }

    private sealed class Run(SigmaSampler sampler, double[] sigmas, float[] timesteps, IReadOnlyList<ulong> seeds) : ISamplerRun
    {
        private float[]? previousDenoised;
        private float[]? denoised;

        public float[] Timesteps => timesteps;

        public bool Linear => false;

        public double InitialNoiseScale => sigmas[0];

        public double InputScale(int stepIndex) => 1 / Math.Sqrt(sigmas[stepIndex] * sigmas[stepIndex] + 1);

        public void Step(Span<float> x, ReadOnlySpan<float> output, int i)
        {
            SamplerFactory.CheckStep(x.Length, output.Length, i, timesteps.Length, sampler.MaxSteps);
            double sigma = sigmas[i], next = sigmas[i + 1];
            denoised ??= new float[x.Length];
            var v = sampler.Prediction == PredictionType.VPrediction;
            double c = 1 / (sigma * sigma + 1), cv = sigma / Math.Sqrt(sigma * sigma + 1);
            for (var k = 0; k < x.Length; k++)
                denoised[k] = (float)(v ? x[k] * c - cv * output[k] : x[k] - sigma * output[k]);

            switch (sampler.Method)
            {
                case SigmaMethod.Euler:
                    for (var k = 0; k < x.Length; k++) x[k] = (float)(x[k] + (next - sigma) * (x[k] - denoised[k]) / sigma);
                    break;
                case SigmaMethod.EulerAncestral:
                {
                    var up = Math.Sqrt(Math.Max(0, next * next * (sigma * sigma - next * next) / (sigma * sigma)));
                    var down = Math.Sqrt(Math.Max(0, next * next - up * up));
                    for (var k = 0; k < x.Length; k++) x[k] = (float)(x[k] + (down - sigma) * (x[k] - denoised[k]) / sigma);
                    if (up > 0) AddNoise(x, up, i);
                    break;
                }
                default:
                {
                    var h = Math.Log(sigma) - Math.Log(next); // λ_{i+1} − λ_i with λ = −log σ (infinite at σ = 0)
                    var ratio = next / sigma;
                    var factor = next == 0 ? 1.0 : -double.ExpM1(-h); // −(e^{−h} − 1); at σ = 0 the step returns x̂₀
                    if (previousDenoised is null || next == 0)
                        for (var k = 0; k < x.Length; k++) x[k] = (float)(ratio * x[k] + factor * denoised[k]);
                    else
                    {
                        var hLast = Math.Log(sigmas[i - 1]) - Math.Log(sigma);
                        var r = hLast / h;
                        double a = 1 + 1 / (2 * r), b = 1 / (2 * r);
                        for (var k = 0; k < x.Length; k++) x[k] = (float)(ratio * x[k] + factor * (a * denoised[k] - b * previousDenoised[k]));
                    }
                    (previousDenoised, denoised) = (denoised, previousDenoised);
                    break;
                }
            }
        }

        // z ~ N(0, 1) per batch item (x holds seeds.Count equal slices) and step, from the item's seed, so an
        // item's image does not depend on what it is batched with.
        private void AddNoise(Span<float> x, double scale, int step)
        {
            var per = x.Length / seeds.Count;
            var z = new float[per];
            for (var b = 0; b < seeds.Count; b++)
            {
                new GaussianNoise(seeds[b] ^ (0x9E3779B97F4A7C15UL * (ulong)(step + 1))).Fill(z);
                var slice = x.Slice(b * per, per);
                for (var k = 0; k < per; k++) slice[k] = (float)(slice[k] + scale * z[k]);
            }
        }
    }
}
