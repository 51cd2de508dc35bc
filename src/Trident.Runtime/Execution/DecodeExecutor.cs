// The decode stage: latents → RGB frames.
//
// Design note. The latents arrive in the VAE's scaled space; the decoder wants x / scaling_factor +
// shift_factor, so a copy is unscaled (the Latents object handed over is never modified: a worker may still
// hold it, e.g. to retry). The whole batch decodes in one Run. The output is [B, 3, H, W] for image
// pipelines and [B, 3, F, H, W] for video ones, in [-1, 1]; TensorImages turns it into 8-bit frames, and the
// result is indexed [batch item][frame] either way (one frame per item for images).
// The executor holds no state besides the pipeline: it is safe to call from several threads.

using Trident.Runtime.Imaging;
using Trident.Runtime.Onnx;
using Trident.Runtime.Pipelines;

namespace Trident.Runtime.Execution;

/// <summary>Runs the VAE decoder of a pipeline.</summary>
public sealed class DecodeExecutor(LoadedPipeline pipeline)
{
    private readonly LoadedPipeline pipeline = pipeline ?? throw new ArgumentNullException(nameof(pipeline));

    /// <summary>Decodes <paramref name="latents"/> on the decoder's session with <paramref name="intraOpThreads"/>
    /// threads; result[b][f] is frame f of batch item b.</summary>
    /// <exception cref="InvalidOperationException">when the decoder's output does not have the requested size.</exception>
    public RgbImage[][] Decode(Latents latents, int intraOpThreads = 1, CancellationToken cancellationToken = default)
    {
        var decoded = DecodeTensor(latents, intraOpThreads, cancellationToken);
        var shape = decoded.Shape.ToArray();
        var data = decoded.ToFloat().AsFloat();
        if (pipeline.Manifest.Kind == PipelineKind.Image)
            return TensorImages.FromNchw(data, shape).Select(image => new[] { image }).ToArray();
        return TensorImages.FromNcfhw(data, shape);
    }

    /// <summary>The decoder's output tensor for <paramref name="latents"/>, in [-1, 1]: [B, 3, H, W] or
    /// [B, 3, F, H, W], in the decoder's output type (float32 or float16).</summary>
    public Tensor DecodeTensor(Latents latents, int intraOpThreads = 1, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(latents);
        cancellationToken.ThrowIfCancellationRequested();
        var manifest = pipeline.Manifest;
        var stage = manifest.Stages.VaeDecoder;
        var session = pipeline.Session(StageModel.VaeDecoder, intraOpThreads);
        if (session.Inputs.Count != 1)
            throw new InvalidOperationException(
                $"the VAE decoder takes {session.Inputs.Count} inputs ({string.Join(", ", session.Inputs)}); Trident feeds exactly '{stage.Latents}'");

        var unscaled = (float[])latents.Tensor.AsFloat().Clone();
        manifest.Latents.Unscale(unscaled);
        var input = Tensor.FromFloat(unscaled, latents.Tensor.Shape.ToArray())
            .As(session.Inputs[session.InputIndex(stage.Latents)].ElementType); // float16 decoders get float16 latents
        var output = session.Run([input], cancellationToken)[session.OutputIndex(stage.Image)].Tensor;

        var expectedFrames = manifest.Kind == PipelineKind.Video ? latents.Frames : 1;
        var s = output.Shape;
        var ok = manifest.Kind == PipelineKind.Image
            ? s.Count == 4 && s[0] == latents.Batch && s[1] == 3 && s[2] == latents.Height && s[3] == latents.Width
            : s.Count == 5 && s[0] == latents.Batch && s[1] == 3 && s[2] == expectedFrames && s[3] == latents.Height && s[4] == latents.Width;
        if (!ok)
            throw new InvalidOperationException(
                $"the VAE decoder returned {output} for {latents.Batch} × {latents.Width}×{latents.Height}×{latents.Frames}; " +
                $"expected [{latents.Batch}, 3, {(manifest.Kind == PipelineKind.Video ? expectedFrames + ", " : "")}{latents.Height}, {latents.Width}]");
        return output;
    }
}
