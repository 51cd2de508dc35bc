module Trident.Tests.Runtime.TokenizerTests

open System
open System.Text
open FsCheck.FSharp
open Expecto
open Trident.Tests.TestSupport
open Trident.Runtime.Pipelines
open Trident.Runtime.Pipelines.Tokenizers
open Trident.Tests.Runtime.RuntimeGenerators

// ---- byte tokenizer ------------------------------------------------------------------------------------

let private byteTokenizer maxLength = ByteTokenizer(ByteTokenizerSettings.WithDefaults maxLength)

let ``byte tokenizer round-trips every prompt that fits`` =
    testProp 300 "byte tokenizer round-trips every prompt that fits" <| fun () ->
        // Generated prompts have at most 100 scalars of at most 4 bytes each, so they always fit.
        let tokenizer = byteTokenizer 402
        (Prop.forAll (Arb.fromGen text) (fun s ->
            let bytes = Encoding.UTF8.GetByteCount s
            let encoded = tokenizer.Encode s
            (tokenizer.Decode encoded.InputIds = s |> Prop.label "decode ∘ encode = id")
            .&. (encoded.Length = bytes + 2 |> Prop.label "one id per byte plus BOS and EOS")
            |> Prop.classify (bytes <> s.Length) "non-ASCII"))

let ``byte tokenizer frames, pads and masks to the max length`` =
    testCase "byte tokenizer frames, pads and masks to the max length" <| fun () ->
        let tokenizer = byteTokenizer 8
        let t = tokenizer.Encode "hi"
        Expect.sequenceEqual t.InputIds ([| 1L; int64 'h' + 3L; int64 'i' + 3L; 2L; 0L; 0L; 0L; 0L |]) "t.InputIds"
        Expect.sequenceEqual t.AttentionMask ([| 1L; 1L; 1L; 1L; 0L; 0L; 0L; 0L |]) "t.AttentionMask"
        Expect.equal t.Length 4 "t.Length"

let ``byte tokenizer truncates long prompts at a character boundary`` =
    testProp 300 "byte tokenizer truncates long prompts at a character boundary" <| fun () ->
        (Prop.forAll (Arb.fromGen (Gen.zip text (Gen.choose (2, 24)))) (fun (s, maxLength) ->
            let tokenizer = byteTokenizer maxLength
            let encoded = tokenizer.Encode s
            let decoded = tokenizer.Decode encoded.InputIds
            (encoded.InputIds.Length = maxLength |> Prop.label "fixed length")
            .&. (s.StartsWith(decoded, StringComparison.Ordinal) |> Prop.label "decodes to a prefix of the prompt")
            .&. ((Encoding.UTF8.GetByteCount decoded > maxLength - 2 - 4 || decoded = s) |> Prop.label "drops at most one character")
            .&. (Array.contains 2L encoded.InputIds |> Prop.label "EOS is never truncated away")))

let ``byte tokenizer rejects special ids inside the byte range`` =
    testCase "byte tokenizer rejects special ids inside the byte range" <| fun () ->
        Expect.throwsT<ArgumentException> (fun () -> ByteTokenizer(ByteTokenizerSettings(16, 0, 1, 100, 3)) |> ignore) "ArgumentException is thrown"

// ---- CLIP BPE ------------------------------------------------------------------------------------------

/// A tiny vocabulary using CLIP's real ids for the pieces of "a photo of a cat" (320, 1125, 539, 2368) and
/// the special tokens (49406, 49407), with merges that build "photo</w>", "of</w>" and "cat</w>". Complete as
/// real vocabularies are (the BPE library refuses a merge naming a missing piece): every piece the merges and
/// the tests' prompts use is in it, single bytes at their byte-table ids (0–255, "</w>" forms 256–511, as
/// CLIP orders them), merged pieces the tests do not check by id above 40000; "d" and "z</w>" are missing on
/// purpose.
let private vocabJson =
    """{ "a</w>": 320, "photo</w>": 1125, "of</w>": 539, "cat</w>": 2368, "!": 0, "c": 66, "at</w>": 382,
         "a": 64, "h": 71, "i": 72, "o": 78, "p": 79, "t": 83, "'": 6, "Ã": 127,
         "!</w>": 256, "2</w>": 273, "4</w>": 275, "f</w>": 325, "o</w>": 334, "s</w>": 338, "t</w>": 339, "©</w>": 358,
         "ph": 40001, "to</w>": 40002, "pho": 40003, "ca": 40004,
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

let ``CLIP BPE encodes "a photo of a cat" to CLIP's ids`` =
    testCase "CLIP BPE encodes \"a photo of a cat\" to CLIP's ids" <| fun () ->
        let tokenizer = clip 77 ClipBpeTokenizer.EndOfText mergesTxt
        Expect.equal (tokenizer.Tokenize "a photo of a cat" |> List.ofSeq) ([ "a</w>"; "photo</w>"; "of</w>"; "a</w>"; "cat</w>" ]: string list) "tokenizer.Tokenize \"a photo of a cat\" |> List.ofSeq"
        let t = tokenizer.Encode "a photo of a cat"
        Expect.sequenceEqual (t.InputIds[..6]) ([| 49406L; 320L; 1125L; 539L; 320L; 2368L; 49407L |]) "t.InputIds[..6]"
        for id in t.InputIds[7..] do Expect.equal id 49407L "padding after the end token"
        Expect.equal t.Length 7 "t.Length"
        Expect.equal (Array.sum t.AttentionMask) 7L "Array.sum t.AttentionMask"
        Expect.equal t.InputIds.Length 77 "t.InputIds.Length"

let ``CLIP BPE merges the lowest-ranked pair first`` =
    testCase "CLIP BPE merges the lowest-ranked pair first" <| fun () ->
        let swapped = String.Join("\n", [ "#version: 0.2"; "a t</w>"; "c a"; "ca t</w>" ])
        Expect.equal ((clip 77 ClipBpeTokenizer.EndOfText mergesTxt).Tokenize "cat" |> List.ofSeq) ([ "cat</w>" ]: string list) "(clip 77 ClipBpeTokenizer.EndOfText mergesTxt).Tokenize \"cat\" |> List.ofSeq"
        // With "a t</w>" ranked before "c a", "cat" becomes c + at</w>, and "ca t</w>" never applies.
        Expect.equal ((clip 77 ClipBpeTokenizer.EndOfText swapped).Tokenize "cat" |> List.ofSeq) ([ "c"; "at</w>" ]: string list) "(clip 77 ClipBpeTokenizer.EndOfText swapped).Tokenize \"cat\" |> List.ofSeq"

let ``CLIP BPE cleans case, whitespace and HTML entities before tokenising`` =
    testCase "CLIP BPE cleans case, whitespace and HTML entities before tokenising" <| fun () ->
        let tokenizer = clip 77 ClipBpeTokenizer.EndOfText mergesTxt
        Expect.equal (ClipBpeTokenizer.Clean "  A&amp;amp;B\n\n\t c ") "a&b c" "ClipBpeTokenizer.Clean \" A&amp;amp;B\\n\\n\\t c \""
        Expect.sequenceEqual ((tokenizer.Encode "  A   PHOTO\tof a\n Cat ").InputIds) ((tokenizer.Encode "a photo of a cat").InputIds) "(tokenizer.Encode \" A PHOTO\\tof a\\n Cat \").InputIds"

let ``CLIP BPE pre-tokenises contractions, single digits and punctuation runs`` =
    testCase "CLIP BPE pre-tokenises contractions, single digits and punctuation runs" <| fun () ->
        let tokenizer = clip 77 ClipBpeTokenizer.EndOfText "#version: 0.2\n"
        Expect.equal
            (tokenizer.Tokenize "It's 42!!" |> List.ofSeq)
            ([ "i"; "t</w>"; "'"; "s</w>"; "4</w>"; "2</w>"; "!"; "!</w>" ]: string list)
            "tokenizer.Tokenize \"It's 42!!\" |> List.ofSeq"

let ``CLIP BPE maps bytes to printable symbols`` =
    testCase "CLIP BPE maps bytes to printable symbols" <| fun () ->
        Expect.equal (ClipBpeTokenizer.ByteToUnicodeSymbol(byte 'A')) "A" "ClipBpeTokenizer.ByteToUnicodeSymbol(byte 'A')"
        Expect.equal (ClipBpeTokenizer.ByteToUnicodeSymbol 0uy) "Ā" "ClipBpeTokenizer.ByteToUnicodeSymbol 0uy"
        Expect.equal (ClipBpeTokenizer.ByteToUnicodeSymbol 32uy) "Ġ" "ClipBpeTokenizer.ByteToUnicodeSymbol 32uy"
        Expect.equal (ClipBpeTokenizer.ByteToUnicodeSymbol 255uy) "ÿ" "ClipBpeTokenizer.ByteToUnicodeSymbol 255uy"
        let symbols = [ for b in 0 .. 255 -> ClipBpeTokenizer.ByteToUnicodeSymbol(byte b) ]
        Expect.equal (symbols |> List.distinct |> List.length) 256 "symbols |> List.distinct |> List.length"
        for s in symbols do Expect.isFalse (Char.IsWhiteSpace s[0] || Char.IsControl s[0]) (sprintf "symbol %A starts with whitespace or a control character" s)
        // "é" is UTF-8 C3 A9, both printable Latin-1 bytes.
        let tokenizer = clip 77 ClipBpeTokenizer.EndOfText "#version: 0.2\n"
        Expect.equal (tokenizer.Tokenize "é" |> List.ofSeq) ([ "Ã"; "©</w>" ]: string list) "tokenizer.Tokenize \"é\" |> List.ofSeq"

let ``CLIP BPE truncates to the max length keeping the end token, and pads with the pad token`` =
    testCase "CLIP BPE truncates to the max length keeping the end token, and pads with the pad token" <| fun () ->
        let short = clip 8 "!" mergesTxt
        let long = short.Encode "a a a a a a a a a a a a"
        Expect.sequenceEqual long.InputIds ([| 49406L; 320L; 320L; 320L; 320L; 320L; 320L; 49407L |]) "long.InputIds"
        Expect.equal (Array.sum long.AttentionMask) 8L "Array.sum long.AttentionMask"
        let padded = (clip 6 "!" mergesTxt).Encode "a cat"
        Expect.sequenceEqual padded.InputIds ([| 49406L; 320L; 2368L; 49407L; 0L; 0L |]) "padded.InputIds"
        Expect.sequenceEqual padded.AttentionMask ([| 1L; 1L; 1L; 1L; 0L; 0L |]) "padded.AttentionMask"

let ``CLIP BPE maps pieces missing from the vocabulary to the end token and keeps special tokens`` =
    testCase "CLIP BPE maps pieces missing from the vocabulary to the end token and keeps special tokens" <| fun () ->
        let tokenizer = clip 77 ClipBpeTokenizer.EndOfText mergesTxt
        Expect.sequenceEqual ((tokenizer.Encode "dz a").InputIds[..4]) ([| 49406L; 49407L; 49407L; 320L; 49407L |]) "(tokenizer.Encode \"dz a\").InputIds[..4]"
        Expect.equal (tokenizer.Tokenize "a<|endoftext|>cat" |> List.ofSeq) ([ "a</w>"; "<|endoftext|>"; "cat</w>" ]: string list) "tokenizer.Tokenize \"a<|endoftext|>cat\" |> List.ofSeq"

let ``CLIP BPE gives the same ids on repeated calls (the cache is transparent)`` =
    testProp 100 "CLIP BPE gives the same ids on repeated calls (the cache is transparent)" <| fun () ->
        let tokenizer = clip 77 ClipBpeTokenizer.EndOfText mergesTxt
        let words = Gen.elements [ "a"; "photo"; "of"; "cat"; "at"; "dog" ]
        (Prop.forAll (Arb.fromGen (Gen.listOf words)) (fun ws ->
            let prompt = String.Join(" ", ws)
            let first = tokenizer.Encode prompt
            let fresh = (clip 77 ClipBpeTokenizer.EndOfText mergesTxt).Encode prompt
            first.InputIds = (tokenizer.Encode prompt).InputIds && first.InputIds = fresh.InputIds))

let ``a CLIP vocabulary without the special tokens is rejected`` =
    testCase "a CLIP vocabulary without the special tokens is rejected" <| fun () ->
        use dir = new TempDirectory()
        let vocab = dir.Write("vocab.json", """{ "a</w>": 1 }""")
        let merges = dir.Write("merges.txt", "#version: 0.2\n")
        let e = expectThrows<ArgumentException> "ArgumentException is thrown" (fun () -> ClipBpeTokenizer.Load(vocab, merges) |> ignore)
        Expect.stringContains e.Message "<|startoftext|>" "e.Message"

let ``the factory builds the tokenizer a manifest names`` =
    testCase "the factory builds the tokenizer a manifest names" <| fun () ->
        use dir = new TempDirectory()
        dir.Write("tokenizer/vocab.json", vocabJson) |> ignore
        dir.Write("tokenizer/merges.txt", mergesTxt) |> ignore
        let c = TokenizerFactory.Create(ClipBpeTokenizerSettings(77, "tokenizer/vocab.json", "tokenizer/merges.txt", "<|endoftext|>"), dir.Path)
        Expect.equal ((c).GetType()) typeof<ClipBpeTokenizer> "a ClipBpeTokenizer"
        Expect.equal c.MaxLength 77 "c.MaxLength"
        Expect.equal ((TokenizerFactory.Create(ByteTokenizerSettings.WithDefaults 16, dir.Path)).GetType()) typeof<ByteTokenizer> "a ByteTokenizer"

[<Tests>]
let tests =
    testList "unit" [ testList "TokenizerTests" [
        ``byte tokenizer round-trips every prompt that fits``
        ``byte tokenizer frames, pads and masks to the max length``
        ``byte tokenizer truncates long prompts at a character boundary``
        ``byte tokenizer rejects special ids inside the byte range``
        ``CLIP BPE encodes "a photo of a cat" to CLIP's ids``
        ``CLIP BPE merges the lowest-ranked pair first``
        ``CLIP BPE cleans case, whitespace and HTML entities before tokenising``
        ``CLIP BPE pre-tokenises contractions, single digits and punctuation runs``
        ``CLIP BPE maps bytes to printable symbols``
        ``CLIP BPE truncates to the max length keeping the end token, and pads with the pad token``
        ``CLIP BPE maps pieces missing from the vocabulary to the end token and keeps special tokens``
        ``CLIP BPE gives the same ids on repeated calls (the cache is transparent)``
        ``a CLIP vocabulary without the special tokens is rejected``
        ``the factory builds the tokenizer a manifest names``
    ] |> testSequencedGroup "TokenizerTests" ]
