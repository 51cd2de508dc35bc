// The three networks of the bundled tiny pipeline, written as ONNX graphs (design §8). Random weights, real
// architectures: the point is real compute with real shapes, not pictures.
//
// text_encoder — a pre-LN transformer (CLIP/T5-style) over byte tokens:
//     input_ids [batch, tokens] int64 → token embedding + learned positional embedding (the first `tokens`
//     rows of a max_length table) → L × (self-attention, GELU MLP) → final LayerNorm
//     → last_hidden_state [batch, tokens, text_width].
//
// transformer — a DiT (Peebles & Xie) with SD3/Flux-style text conditioning, over video latents:
//     hidden_states [batch, C, frames, h, w] → patch embedding: a Conv with kernel = stride = (1, 2, 2), i.e.
//     patch 2 per frame (as in video DiTs), plus a depthwise 3×3×3 convolution as the position signal
//     (conditional positional encoding; it works for any size, which a fixed sin-cos table would not)
//     → tokens [batch, frames·(h/2)·(w/2), d]: frames × patches, attended jointly (full 3-D attention, so
//     the cost is quadratic in frames·patches as in CogVideoX/HunyuanVideo).
//     timestep [batch] → sinusoidal embedding (256) → Linear, SiLU, Linear; plus the mean-pooled text states
//     through a Linear (SD3's pooled projection) → conditioning vector c.
//     encoder_hidden_states [batch, tokens, text_width] → Linear to d (the context embedder).
//     Each block, with adaLN modulation from c (shift, scale, gate for attention and MLP):
//         x += gate₁ · SelfAttention(LN(x)·(1 + scale₁) + shift₁)
//         x += CrossAttention(LN(x), context)
//         x += gate₂ · MLP(LN(x)·(1 + scale₂) + shift₂)
//     Final layer: adaLN-modulated LayerNorm, then unpatchify as a transposed Conv with kernel = stride =
//     (1, 2, 2) — a per-patch Linear from d to C·2·2 laid back onto the grid — → out_sample, same shape as
//     hidden_states (the flow-matching velocity).
//
// vae_decoder — an SD-style convolutional decoder applied to each latent frame (frames are folded into the
//     batch; temporal compression 1, so latent frame f is video frame f):
//     latent_sample [batch, C, frames, h, w] → conv_in 3×3 → residual block (GroupNorm, SiLU, conv) × 2
//     → 3 × (nearest 2× upsampling, conv 3×3, GroupNorm, SiLU), ×8 in all → GroupNorm, SiLU, conv_out 3×3
//     → sample [batch, 3, frames, 8h, 8w].
//
// Every size-dependent dimension is symbolic at the graph boundary and read from Shape nodes inside, so
// one file per stage serves all batch sizes, prompt lengths, frame counts and resolutions.

using Trident.Runtime.Onnx;
using Trident.Runtime.Onnx.ModelWriter;

namespace Trident.Runtime.Pipelines.Tiny;

internal static class TinyModels
{
    private const TensorElementType F32 = TensorElementType.Float;

    public static GraphBuilder TextEncoder(TinyPipelineSpec spec, WeightInit w)
    {
        var g = new GraphBuilder("tiny_text_encoder") { Description = "Trident tiny pipeline: byte-token transformer text encoder" };
        var d = spec.TextWidth;
        var ids = g.Input(TinyPipeline.InputIds, TensorElementType.Int64, "batch", "tokens");
        var table = g.Param(w, "embeddings.token.weight", [spec.VocabularySize, d], 1);
        var positions = g.Param(w, "embeddings.position.weight", [spec.MaxTokens, d], 1);
        var tokens = g.Dims(g.Shape(ids), 1, 2);
        var x = g.Add(g.Gather(table, ids), g.SlicePrefix(positions, tokens, 0));
        for (var l = 0; l < spec.TextLayers; l++)
        {
            var p = $"layers.{l}";
            var h = g.LayerNorm(x, d, p + ".norm1");
            x = g.Add(x, g.MultiHeadAttention(h, h, d, spec.TextHeads, w, p + ".attn"));
            x = g.Add(x, g.Mlp(g.LayerNorm(x, d, p + ".norm2"), d, d * spec.MlpRatio, w, p + ".mlp"));
        }
        var output = g.LayerNorm(x, d, "final_norm");
        g.Output(output, TinyPipeline.LastHiddenState, F32, "batch", "tokens", d);
        return g;
    }

    public static GraphBuilder Transformer(TinyPipelineSpec spec, WeightInit w)
    {
        var g = new GraphBuilder("tiny_dit") { Description = "Trident tiny pipeline: video DiT denoiser (patch 2, adaLN, cross-attention)" };
        int d = spec.ModelWidth, c = spec.LatentChannels, p = spec.PatchSize;
        long[] patch = [1, p, p];

        var latents = g.Input(TinyPipeline.HiddenStates, F32, "batch", c, "frames", "height", "width");
        var timestep = g.Input(TinyPipeline.Timestep, F32, "batch");
        var text = g.Input(TinyPipeline.EncoderHiddenStates, F32, "batch", "tokens", spec.TextWidth);

        // Patch embedding and position signal: [B, d, F, h/p, w/p].
        var grid = g.ConvNd(latents, c, d, patch, w, "patch_embed", strides: patch);
        grid = g.Add(grid, g.ConvNd(grid, d, d, [3, 3, 3], w, "pos_embed", pads: [1, 1, 1, 1, 1, 1], groups: d));
        var x = g.Transpose(g.Reshape(grid, 0, 0, -1), 0, 2, 1); // [B, N, d], N = F·(h/p)·(w/p)

        // Conditioning: sinusoidal timestep embedding + pooled text.
        var half = spec.TimestepFeatures / 2;
        var frequencies = new float[half];
        const double ln10000 = 9.210340371976184; // max period 10⁴, as in DiT and diffusers
        for (var i = 0; i < half; i++) frequencies[i] = (float)TinyGraph.PortableExp(-ln10000 * i / half);
        var angles = g.Mul(g.Unsqueeze(timestep, 1), g.Constant("timestep_frequencies", frequencies, half));
        var sinusoid = g.Concat(-1, g.Cos(angles), g.Sin(angles));
        var temb = g.Linear(g.SiLU(g.Linear(sinusoid, spec.TimestepFeatures, d, w, "time_embed.linear_1")), d, d, w, "time_embed.linear_2");
        var pooled = g.Linear(g.ReduceMean(text, [1], keepDims: false), spec.TextWidth, d, w, "pooled_projection");
        var condition = g.SiLU(g.Add(temb, pooled)); // [B, d]
        var context = g.Linear(text, spec.TextWidth, d, w, "context_embedder"); // [B, T, d]

        for (var b = 0; b < spec.Depth; b++)
        {
            var n = $"blocks.{b}";
            var mod = g.SplitEqual(g.Unsqueeze(g.Linear(condition, d, 6 * d, w, n + ".adaln"), 1), 6, -1); // 6 × [B, 1, d]
            var h = g.Modulate(g.LayerNorm(x, d, n + ".norm1"), mod[0], mod[1]);
            x = g.Add(x, g.Mul(mod[2], g.MultiHeadAttention(h, h, d, spec.Heads, w, n + ".attn")));
            x = g.Add(x, g.MultiHeadAttention(g.LayerNorm(x, d, n + ".norm2"), context, d, spec.Heads, w, n + ".cross_attn"));
            h = g.Modulate(g.LayerNorm(x, d, n + ".norm3"), mod[3], mod[4]);
            x = g.Add(x, g.Mul(mod[5], g.Mlp(h, d, d * spec.MlpRatio, w, n + ".mlp")));
        }

        var final = g.SplitEqual(g.Unsqueeze(g.Linear(condition, d, 2 * d, w, "final.adaln"), 1), 2, -1);
        var y = g.Modulate(g.LayerNorm(x, d, "final.norm"), final[0], final[1]);
        y = g.Reshape(g.Transpose(y, 0, 2, 1), g.Shape(grid)); // back to [B, d, F, h/p, w/p]
        var velocity = g.Unpatchify(y, d, c, patch, w, "final.unpatchify");
        g.Output(velocity, TinyPipeline.OutSample, F32, "batch", c, "frames", "height", "width");
        return g;
    }

    public static GraphBuilder VaeDecoder(TinyPipelineSpec spec, WeightInit w)
    {
        var g = new GraphBuilder("tiny_vae_decoder") { Description = "Trident tiny pipeline: per-frame convolutional VAE decoder (x8)" };
        var ch = spec.DecoderChannels;
        var c = spec.LatentChannels;
        var latents = g.Input(TinyPipeline.LatentSample, F32, "batch", c, "frames", "height", "width");
        var shape = g.Shape(latents);

        // Fold frames into the batch: [B, C, F, h, w] → [B·F, C, h, w].
        var perFrame = g.Reshape(
            g.Transpose(latents, 0, 2, 1, 3, 4),
            g.Concat(0, g.Int64s(-1, c), g.Dims(shape, 3, 5)));

        var x = g.Conv2d(perFrame, c, ch[0], 3, w, "conv_in");
        var skip = x;
        var r = g.Conv2d(g.SiLU(g.GroupNorm(x, ch[0], spec.GroupNormGroups, "mid.norm1")), ch[0], ch[0], 3, w, "mid.conv1");
        r = g.Conv2d(g.SiLU(g.GroupNorm(r, ch[0], spec.GroupNormGroups, "mid.norm2")), ch[0], ch[0], 3, w, "mid.conv2");
        x = g.Add(skip, r);
        for (var i = 1; i < ch.Count; i++)
        {
            var n = $"up.{i - 1}";
            x = g.Conv2d(g.Upsample2x(x), ch[i - 1], ch[i], 3, w, n + ".conv");
            x = g.SiLU(g.GroupNorm(x, ch[i], spec.GroupNormGroups, n + ".norm"));
        }
        var last = ch[^1];
        x = g.Conv2d(g.SiLU(g.GroupNorm(x, last, spec.GroupNormGroups, "norm_out")), last, 3, 3, w, "conv_out"); // [B·F, 3, H, W]

        // Unfold: [B·F, 3, H, W] → [B, F, 3, H, W] → [B, 3, F, H, W].
        var unfolded = g.Reshape(x, g.Concat(0, g.Dims(shape, 0, 1), g.Dims(shape, 2, 3), g.Dims(g.Shape(x), 1, 4)));
        var image = g.Transpose(unfolded, 0, 2, 1, 3, 4);
        g.Output(image, TinyPipeline.Sample, F32, "batch", 3, "frames", "image_height", "image_width");
        return g;
    }
}
