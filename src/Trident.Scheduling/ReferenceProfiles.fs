namespace Trident.Scheduling

// Built-in reference profiles for sd3, flux, cogvideox and hunyuanvideo.
//
// Provenance (copied from the project's reference data; docs/reference-profiles.md keeps the full
// notes and data/reference/ the original CSV files):
//   * diffuse seconds per step by shape and degree — MEASURED by the TridentServe authors: the profile
//     table of PKU-DAIR/Hetu-DiT, hetu_dit/model_profiler.py, on an A100-40GB / L20-48GB class GPU.
//     Kept exactly as published (noisy: efficiency is not monotone in k; sd3 128² and 256² repeat the
//     k = 1 value for every k). The cost model smooths, not this table.
//   * encode/decode seconds, weights and activation memory — ESTIMATES (stage_estimates.csv):
//     weights = parameter counts × 2 bytes; encode = one text-encoder call (constant);
//     decode = fixed + per-mpf · mpf; diffuse activation = per-mpf · mpf / k;
//     decode activation = min(max, per-mpf · mpf). Encode activation is not estimated by the source
//     and is taken as 0 (the encoders' weights dominate their memory).
//   * batching — no batch points: the published table measures one request per run, so the cost model
//     assumes a batch of b costs b runs (no gain) and the best batch size is 1 (CostModel.batchFactor).
//     Measure your own with `trident profile`, which records batch sizes 1, 2, 4, ….
//   * embedding_bytes and latent_bytes_per_mpf — ESTIMATES derived from the architectures:
//     text states of 512 tokens × 4096 × 2 bytes; latents of 16 channels at 1/8 resolution in fp16
//     (0.5 B per pixel), and 1/4 of that again for the video models' 4× temporal compression.

module ReferenceProfiles =
    /// (height, width, frames, [k1; k2; k4; k8]) seconds per step
    type private Row = int * int * int * float list

    let private degrees = [ 1; 2; 4; 8 ]

    /// Device memory of the reference device class (L20, 48 GB).
    let deviceMemory = 48.0<GB>

    let private make (name: string) video defaultSteps (encW, difW, decW) encS (decPerMpf, decFixed) difActPerMpf (decActPerMpf, decActMax) latentBytesPerMpf (rows: Row list) =
        let shapes = rows |> List.map (fun (h, w, f, _) -> { Height = h; Width = w; Frames = f })
        let one (sh: Shape) seconds act =
            { Shape = sh; Degree = 1; Seconds = seconds * 1.0<s>; PeakActivation = act * 1.0<GB> }
        { Model = ModelName name
          DeviceClass = "A100-40GB / L20-48GB class GPU"
          DeviceMemory = deviceMemory
          Source =
            "diffuse seconds per step: measured by the TridentServe authors (PKU-DAIR/Hetu-DiT hetu_dit/model_profiler.py); encode/decode latency, weights, activations and transfer sizes: estimates (docs/reference-profiles.md)"
          Video = video
          DefaultSteps = defaultSteps
          EmbeddingBytes = 512.0 * 4096.0 * 2.0 * 1.0<B>
          LatentBytesPerMpf = latentBytesPerMpf * 1.0<B>
          Encode =
            { Weights = encW * 1.0<GB>
              Estimated = true
              Points = shapes |> List.map (fun sh -> one sh encS 0.0)
              Batches = [] }
          Diffuse =
            { Weights = difW * 1.0<GB>
              Estimated = false
              Points =
                [ for (h, w, f, ts) in rows do
                      let sh = { Height = h; Width = w; Frames = f }
                      for k, t in List.zip degrees ts ->
                          { Shape = sh
                            Degree = k
                            Seconds = t * 1.0<s>
                            PeakActivation = difActPerMpf * sh.Mpf / float k * 1.0<GB> } ]
              Batches = [] }
          Decode =
            { Weights = decW * 1.0<GB>
              Estimated = true
              Points = shapes |> List.map (fun sh -> one sh (decFixed + decPerMpf * sh.Mpf) (min decActMax (decActPerMpf * sh.Mpf)))
              Batches = [] } }

    /// sd3: diffuse measured, the rest estimated (see the module note).
    let sd3 =
        make "sd3" false 20 (11.2, 4.2, 0.17) 0.15 (0.5, 0.02) 0.6 (4.0, 24.0) 500000.0
            [
              128, 128, 1, [ 0.022045855; 0.022045855; 0.022045855; 0.022045855 ]
              256, 256, 1, [ 0.029664788; 0.029664788; 0.029664788; 0.029664788 ]
              512, 512, 1, [ 0.059171598; 0.063011972; 0.063011972; 0.063011972 ]
              1024, 1024, 1, [ 0.242718447; 0.178571429; 0.166666667; 0.153846154 ]
              1536, 1536, 1, [ 0.595238095; 0.367430923; 0.297619048; 0.17303433 ]
            ]

    /// flux: diffuse measured, the rest estimated (see the module note).
    let flux =
        make "flux" false 28 (9.8, 23.8, 0.17) 0.10 (0.5, 0.02) 0.8 (4.0, 24.0) 500000.0
            [
              128, 128, 1, [ 0.054288817; 0.055005501; 0.050556117; 0.046296296 ]
              256, 256, 1, [ 0.108577633; 0.110011001; 0.101112235; 0.092592593 ]
              512, 512, 1, [ 0.22172949; 0.194931774; 0.136612022; 0.121212121 ]
              1024, 1024, 1, [ 0.840336134; 0.537634409; 0.323624595; 0.227272727 ]
              2048, 2048, 1, [ 4.67; 2.85; 1.48; 1.28 ]
              3072, 3072, 1, [ 15.5; 9; 4.55; 2.46 ]
              4096, 4096, 1, [ 39.83; 22.97; 11.76; 5.66 ]
            ]

    /// cogvideox: diffuse measured, the rest estimated (see the module note).
    let cogvideox =
        make "cogvideox" true 50 (9.5, 11.1, 0.43) 0.10 (0.4, 0.5) 0.25 (0.5, 24.0) 125000.0
            [
              768, 1360, 81, [ 30.5; 17.75; 9.1; 4.75 ]
              768, 1360, 65, [ 22.14; 13.07; 6.77; 3.56 ]
              768, 1360, 33, [ 9.37; 5.63; 3; 1.57 ]
              768, 1360, 17, [ 4.71; 2.91; 1.55; 0.840336134 ]
              768, 1360, 1, [ 1.26; 0.78125; 0.483091787; 0.297619048 ]
              768, 432, 81, [ 5.72; 3.51; 1.89; 1.01 ]
              768, 432, 65, [ 4.42; 2.76; 1.49; 0.826446281 ]
              768, 432, 33, [ 2.16; 0.751879699; 0.751879699; 0.452488688 ]
              768, 432, 17, [ 1.19; 0.763358779; 0.45045045; 0.3 ]
              768, 432, 1, [ 0.384615385; 0.262467192; 0.225733634; 0.158730159 ]
            ]

    /// hunyuanvideo: diffuse measured, the rest estimated (see the module note).
    let hunyuanvideo =
        make "hunyuanvideo" true 50 (16.2, 25.6, 0.49) 0.15 (0.4, 0.5) 0.25 (0.5, 30.0) 125000.0
            [
              720, 1280, 129, [ 118; 64.48; 31.92; 16.35 ]
              720, 1280, 65, [ 37.53; 21; 10.7; 5.8 ]
              720, 1280, 33, [ 13.7; 8.01; 4.1; 2.35 ]
              720, 1280, 17, [ 5.84; 3.61; 1.86; 1.08 ]
              720, 1280, 1, [ 0.787401575; 0.68; 0.48; 0.38 ]
              960, 544, 129, [ 43.58; 24.6; 12.4; 6.67 ]
              960, 544, 65, [ 15.09; 8.76; 4.51; 2.3 ]
              960, 544, 33, [ 6.01; 3.68; 2.03; 1 ]
              960, 544, 17, [ 2.77; 1.83; 1.02; 0.68 ]
              960, 544, 1, [ 0.54; 0.46; 0.38; 0.3 ]
            ]

    /// All built-in profiles.
    let all = [ sd3; flux; cogvideox; hunyuanvideo ]

    /// The built-in profile of a model, by name.
    let tryFind (name: string) = all |> List.tryFind (fun p -> p.Model.Value = name)
