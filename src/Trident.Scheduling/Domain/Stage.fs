namespace Trident.Scheduling

/// The three stages of a diffusion pipeline.
type Stage =
    /// text encoders (E)
    | Encode
    /// the denoising transformer, run for N steps (D)
    | Diffuse
    /// the VAE decoder (C)
    | Decode

module Stage =
    let all = [ Encode; Diffuse; Decode ]

    let letter =
        function
        | Encode -> "E"
        | Diffuse -> "D"
        | Decode -> "C"

    /// The stage's name in documents and the API: encode, diffuse, decode.
    let name =
        function
        | Encode -> "encode"
        | Diffuse -> "diffuse"
        | Decode -> "decode"

    /// The stage of a `name`, or None.
    let tryParse (s: string) = all |> List.tryFind (fun stage -> name stage = s)

/// The set of stage models resident on one device. Primary types hold D; auxiliary types do not.
type PlacementType =
    | EDC
    | DC
    | ED
    | D
    | E
    | C

module PlacementType =
    let all = [ EDC; DC; ED; D; E; C ]
    let primary = [ EDC; DC; ED; D ]
    let auxiliary = [ E; C ]

    // built once (the dispatch round asks per device and per option)
    let private edcStages, dcStages, edStages = Set.ofList [ Encode; Diffuse; Decode ], Set.ofList [ Diffuse; Decode ], Set.ofList [ Encode; Diffuse ]
    let private dStages, eStages, cStages = Set.singleton Diffuse, Set.singleton Encode, Set.singleton Decode

    /// The stages whose models a device of this type keeps resident.
    let stages (t: PlacementType) =
        match t with
        | EDC -> edcStages
        | DC -> dcStages
        | ED -> edStages
        | D -> dStages
        | E -> eStages
        | C -> cStages

    let holds stage t = stages t |> Set.contains stage
    let isPrimary t = holds Diffuse t

    let name (t: PlacementType) = sprintf "%A" t

    let tryParse (s: string) =
        all |> List.tryFind (fun t -> name t = s.Trim().ToUpperInvariant().Trim('<', '>'))

/// Virtual replica types, by communication cost: which placement types together serve a whole request.
type VrType =
    /// ⟨EDC⟩: everything on the diffuse group, no transfer
    | V0
    /// ⟨DC⟩ + ⟨E⟩: embeddings move to the group
    | V1
    /// ⟨ED⟩ + ⟨C⟩: latents move off the group
    | V2
    /// ⟨D⟩ + ⟨E⟩ + ⟨C⟩: both move
    | V3

module VrType =
    let all = [ V0; V1; V2; V3 ]

    /// The VR type formed when a diffuse group of primary type `t` is completed by auxiliaries.
    let ofPrimary =
        function
        | EDC -> Some V0
        | DC -> Some V1
        | ED -> Some V2
        | D -> Some V3
        | E
        | C -> None

    /// The primary placement type of a VR.
    let primaryType =
        function
        | V0 -> EDC
        | V1 -> DC
        | V2 -> ED
        | V3 -> D

    /// Whether the VR needs an auxiliary ⟨E⟩ / ⟨C⟩ device.
    let needsAuxEncode v = not (PlacementType.holds Encode (primaryType v))
    let needsAuxDecode v = not (PlacementType.holds Decode (primaryType v))
