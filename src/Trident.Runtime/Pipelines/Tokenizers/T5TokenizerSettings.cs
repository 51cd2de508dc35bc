namespace Trident.Runtime.Pipelines;

/// <summary>T5's SentencePiece Unigram tokenizer (SD3's tokenizer_3, Flux's tokenizer_2).</summary>
/// <param name="MaxLength">Sequence length, <c>&lt;/s&gt;</c> included: diffusers' max_sequence_length (SD3 256).</param>
/// <param name="File">Path of tokenizer.json or spiece.model, relative to the pipeline directory.</param>
public sealed record T5TokenizerSettings(int MaxLength, string File) : TokenizerSettings(MaxLength);
