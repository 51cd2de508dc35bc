module Trident.Tests.Runtime.TokenizerTests

open System
open System.Text
open FsCheck.FSharp
open Xunit
open Trident.Runtime.Pipelines
open Trident.Runtime.Pipelines.Tokenizers
open Trident.Tests.Runtime.RuntimeGenerators

// ---- byte tokenizer ------------------------------------------------------------------------------------

let private byteTokenizer maxLength = ByteTokenizer(ByteTokenizerSettings.WithDefaults maxLength)

[<Fact>]
let ``byte tokenizer round-trips every prompt that fits`` () =
    // Generated prompts have at most 100 scalars of at most 4 bytes each, so they always fit.
    let tokenizer = byteTokenizer 402
    check 300 (Prop.forAll (Arb.fromGen text) (fun s ->
        let bytes = Encoding.UTF8.GetByteCount s
        let encoded = tokenizer.Encode s
        (tokenizer.Decode encoded.InputIds = s |> Prop.label "decode ∘ encode = id")
        .&. (encoded.Length = bytes + 2 |> Prop.label "one id per byte plus BOS and EOS")
        |> Prop.classify (bytes <> s.Length) "non-ASCII"))

[<Fact>]
let ``byte tokenizer frames, pads and masks to the max length`` () =
    let tokenizer = byteTokenizer 8
    let t = tokenizer.Encode "hi"
    Assert.Equal<int64>([| 1L; int64 'h' + 3L; int64 'i' + 3L; 2L; 0L; 0L; 0L; 0L |], t.InputIds)
    Assert.Equal<int64>([| 1L; 1L; 1L; 1L; 0L; 0L; 0L; 0L |], t.AttentionMask)
    Assert.Equal(4, t.Length)

[<Fact>]
let ``byte tokenizer truncates long prompts at a character boundary`` () =
    check 300 (Prop.forAll (Arb.fromGen (Gen.zip text (Gen.choose (2, 24)))) (fun (s, maxLength) ->
        let tokenizer = byteTokenizer maxLength
        let encoded = tokenizer.Encode s
        let decoded = tokenizer.Decode encoded.InputIds
        (encoded.InputIds.Length = maxLength |> Prop.label "fixed length")
        .&. (s.StartsWith(decoded, StringComparison.Ordinal) |> Prop.label "decodes to a prefix of the prompt")
        .&. ((Encoding.UTF8.GetByteCount decoded > maxLength - 2 - 4 || decoded = s) |> Prop.label "drops at most one character")
        .&. (Array.contains 2L encoded.InputIds |> Prop.label "EOS is never truncated away")))

[<Fact>]
let ``byte tokenizer rejects special ids inside the byte range`` () =
    Assert.Throws<ArgumentException>(fun () -> ByteTokenizer(ByteTokenizerSettings(16, 0, 1, 100, 3)) |> ignore) |> ignore

// ---- CLIP BPE ------------------------------------------------------------------------------------------

/// A tiny vocabulary using CLIP's real ids for the pieces of "a photo of a cat" (320, 1125, 539, 2368) and
/// the special tokens (49406, 49407), with merges that build "photo</w>", "of</w>" and "cat</w>".
let private vocabJson =
    """{ "a</w>": 320, "photo</w>": 1125, "of</w>": 539, "cat</w>": 2368, "!": 0, "c": 66, "at</w>": 382,
         "<|startoftext|>": 49406, "<|endoftext|>": 49407 }"""

let private mergesTxt =
    String.Join(
        "\n",
        [ "#version: 0.2"
          "p h"          // rank 0
          "t o</w>"      // rank 1
          "ph o"         // rank 2
          "pho to</w>"   // rank 3
          "o f</w>"      // rank 4
          "c a"          // rank 5
          "ca t</w>"     // rank 6
          "a t</w>"      // rank 7: loses to "c a" in "cat"
          "" ])

let private clip (maxLength: int) (pad: string) (merges: string) =
    use dir = new TempDirectory()
    let vocab = dir.Write("tokenizer/vocab.json", vocabJson)
    let mergesPath = dir.Write("tokenizer/merges.txt", merges)
    ClipBpeTokenizer.Load(vocab, mergesPath, maxLength, pad)

[<Fact>]
let ``CLIP BPE encodes "a photo of a cat" to CLIP's ids`` () =
    let tokenizer = clip 77 ClipBpeTokenizer.EndOfText mergesTxt
    Assert.Equal<string list>([ "a</w>"; "photo</w>"; "of</w>"; "a</w>"; "cat</w>" ], tokenizer.Tokenize "a photo of a cat" |> List.ofSeq)
    let t = tokenizer.Encode "a photo of a cat"
    Assert.Equal<int64>([| 49406L; 320L; 1125L; 539L; 320L; 2368L; 49407L |], t.InputIds[..6])
    Assert.All(t.InputIds[7..], fun id -> Assert.Equal(49407L, id))
    Assert.Equal(7, t.Length)
    Assert.Equal(7L, Array.sum t.AttentionMask)
    Assert.Equal(77, t.InputIds.Length)

[<Fact>]
let ``CLIP BPE merges the lowest-ranked pair first`` () =
    let swapped = String.Join("\n", [ "#version: 0.2"; "a t</w>"; "c a"; "ca t</w>" ])
    Assert.Equal<string list>([ "cat</w>" ], (clip 77 ClipBpeTokenizer.EndOfText mergesTxt).Tokenize "cat" |> List.ofSeq)
    // With "a t</w>" ranked before "c a", "cat" becomes c + at</w>, and "ca t</w>" never applies.
    Assert.Equal<string list>([ "c"; "at</w>" ], (clip 77 ClipBpeTokenizer.EndOfText swapped).Tokenize "cat" |> List.ofSeq)

[<Fact>]
let ``CLIP BPE cleans case, whitespace and HTML entities before tokenising`` () =
    let tokenizer = clip 77 ClipBpeTokenizer.EndOfText mergesTxt
    Assert.Equal("a&b c", ClipBpeTokenizer.Clean "  A&amp;amp;B\n\n\t c ")
    Assert.Equal<int64>((tokenizer.Encode "a photo of a cat").InputIds, (tokenizer.Encode "  A   PHOTO\tof a\n Cat ").InputIds)

[<Fact>]
let ``CLIP BPE pre-tokenises contractions, single digits and punctuation runs`` () =
    let tokenizer = clip 77 ClipBpeTokenizer.EndOfText "#version: 0.2\n"
    Assert.Equal<string list>(
        [ "i"; "t</w>"; "'"; "s</w>"; "4</w>"; "2</w>"; "!"; "!</w>" ],
        tokenizer.Tokenize "It's 42!!" |> List.ofSeq)

[<Fact>]
let ``CLIP BPE maps bytes to printable symbols`` () =
    Assert.Equal("A", ClipBpeTokenizer.ByteToUnicodeSymbol(byte 'A'))
    Assert.Equal("Ā", ClipBpeTokenizer.ByteToUnicodeSymbol 0uy)
    Assert.Equal("Ġ", ClipBpeTokenizer.ByteToUnicodeSymbol 32uy)
    Assert.Equal("ÿ", ClipBpeTokenizer.ByteToUnicodeSymbol 255uy)
    let symbols = [ for b in 0 .. 255 -> ClipBpeTokenizer.ByteToUnicodeSymbol(byte b) ]
    Assert.Equal(256, symbols |> List.distinct |> List.length)
    Assert.All(symbols, fun s -> Assert.False(Char.IsWhiteSpace s[0] || Char.IsControl s[0]))
    // "é" is UTF-8 C3 A9, both printable Latin-1 bytes.
    let tokenizer = clip 77 ClipBpeTokenizer.EndOfText "#version: 0.2\n"
    Assert.Equal<string list>([ "Ã"; "©</w>" ], tokenizer.Tokenize "é" |> List.ofSeq)

[<Fact>]
let ``CLIP BPE truncates to the max length keeping the end token, and pads with the pad token`` () =
    let short = clip 8 "!" mergesTxt
    let long = short.Encode "a a a a a a a a a a a a"
    Assert.Equal<int64>([| 49406L; 320L; 320L; 320L; 320L; 320L; 320L; 49407L |], long.InputIds)
    Assert.Equal(8L, Array.sum long.AttentionMask)
    let padded = (clip 6 "!" mergesTxt).Encode "a cat"
    Assert.Equal<int64>([| 49406L; 320L; 2368L; 49407L; 0L; 0L |], padded.InputIds)
    Assert.Equal<int64>([| 1L; 1L; 1L; 1L; 0L; 0L |], padded.AttentionMask)

[<Fact>]
let ``CLIP BPE maps pieces missing from the vocabulary to the end token and keeps special tokens`` () =
    let tokenizer = clip 77 ClipBpeTokenizer.EndOfText mergesTxt
    Assert.Equal<int64>([| 49406L; 49407L; 49407L; 320L; 49407L |], (tokenizer.Encode "dz a").InputIds[..4])
    Assert.Equal<string list>([ "a</w>"; "<|endoftext|>"; "cat</w>" ], tokenizer.Tokenize "a<|endoftext|>cat" |> List.ofSeq)

[<Fact>]
let ``CLIP BPE gives the same ids on repeated calls (the cache is transparent)`` () =
    let tokenizer = clip 77 ClipBpeTokenizer.EndOfText mergesTxt
    let words = Gen.elements [ "a"; "photo"; "of"; "cat"; "at"; "dog" ]
    check 100 (Prop.forAll (Arb.fromGen (Gen.listOf words)) (fun ws ->
        let prompt = String.Join(" ", ws)
        let first = tokenizer.Encode prompt
        let fresh = (clip 77 ClipBpeTokenizer.EndOfText mergesTxt).Encode prompt
        first.InputIds = (tokenizer.Encode prompt).InputIds && first.InputIds = fresh.InputIds))

[<Fact>]
let ``a CLIP vocabulary without the special tokens is rejected`` () =
    use dir = new TempDirectory()
    let vocab = dir.Write("vocab.json", """{ "a</w>": 1 }""")
    let merges = dir.Write("merges.txt", "#version: 0.2\n")
    let e = Assert.Throws<ArgumentException>(fun () -> ClipBpeTokenizer.Load(vocab, merges) |> ignore)
    Assert.Contains("<|startoftext|>", e.Message)

[<Fact>]
let ``the factory builds the tokenizer a manifest names`` () =
    use dir = new TempDirectory()
    dir.Write("tokenizer/vocab.json", vocabJson) |> ignore
    dir.Write("tokenizer/merges.txt", mergesTxt) |> ignore
    let c = TokenizerFactory.Create(ClipBpeTokenizerSettings(77, "tokenizer/vocab.json", "tokenizer/merges.txt", "<|endoftext|>"), dir.Path)
    Assert.IsType<ClipBpeTokenizer>(c) |> ignore
    Assert.Equal(77, c.MaxLength)
    Assert.IsType<ByteTokenizer>(TokenizerFactory.Create(ByteTokenizerSettings.WithDefaults 16, dir.Path)) |> ignore
