module Trident.Tests.Runtime.T5TokenizerTests

// T5's SentencePiece Unigram tokenizer, read from both file formats exports ship (spiece.model through
// Microsoft.ML.Tokenizers, tokenizer.json through Hugging Face tokenizers), on tiny but real files written here
// (T5TokenizerFiles): T5's special ids (<pad> 0, </s> 1, <unk> 2, no start token; bos_id −1 as T5's own
// spiece.model has it) and a handful of scored pieces. Expected ids are computed by hand with the Unigram rule:
// the segmentation with the highest total log-probability (Kudo 2018), after the Metaspace rule (a "▁" before
// each word, whitespace runs collapsed).

open System
open System.IO
open Expecto
open Trident.Tests.TestSupport
open Trident.Runtime.Pipelines
open Trident.Runtime.Pipelines.Tokenizers
open Trident.Tests.Runtime.RuntimeGenerators

/// Ids 3, 4, … in this order (0–2 are <pad>, </s>, <unk>).
let private pieces: (string * float32) list =
    [ "▁", -2.0f      // 3
      "▁a", -1.0f     // 4
      "▁cat", -1.5f   // 5
      "c", -3.0f      // 6
      "a", -3.0f      // 7
      "t", -3.0f      // 8
      "s", -3.0f      // 9
      "▁c", -2.5f     // 10: "▁c" + "at" scores −4.5 < "▁cat" −1.5
      "at", -2.0f     // 11
      "▁photo", -2.0f // 12
      "▁of", -2.0f ]  // 13

let private write (dir: TempDirectory) =
    let list = ResizeArray(pieces |> List.map (fun (p, s) -> struct (p, s)))
    let spiece = Path.Combine(dir.Path, "tokenizer_3", "spiece.model")
    let json = Path.Combine(dir.Path, "tokenizer_3", "tokenizer.json")
    Directory.CreateDirectory(Path.GetDirectoryName spiece) |> ignore
    T5TokenizerFiles.WriteSentencePieceModel(spiece, list)
    T5TokenizerFiles.WriteTokenizerJson(json, list)
    spiece, json

/// Both readers of the same tokenizer, with the format's name.
let private both (maxLength: int) (check: string -> T5Tokenizer -> unit) =
    use dir = new TempDirectory()
    let spiece, json = write dir
    for name, path in [ "spiece.model", spiece; "tokenizer.json", json ] do
        use t = T5Tokenizer.Load(path, maxLength)
        check name t

let ``T5 encodes content, appends </s> and pads with <pad>`` =
    testCase "T5 encodes content, appends </s> and pads with <pad>" <| fun () ->
        both 8 <| fun name t ->
            Expect.equal (t.EosId, t.PadId) (1, 0) $"{name}: T5's </s> and <pad> ids"
            let e = t.Encode "a photo of a cat"
            Expect.sequenceEqual e.InputIds [| 4L; 12L; 13L; 4L; 5L; 1L; 0L; 0L |] $"{name}: ▁a ▁photo ▁of ▁a ▁cat </s> <pad> <pad> (no start token)"
            Expect.sequenceEqual e.AttentionMask [| 1L; 1L; 1L; 1L; 1L; 1L; 0L; 0L |] $"{name}: mask over content and </s>"
            Expect.equal e.Length 6 $"{name}: length"

let ``T5 picks the most probable segmentation and maps unknown characters to <unk>`` =
    testCase "T5 picks the most probable segmentation and maps unknown characters to <unk>" <| fun () ->
        both 16 <| fun name t ->
            // "▁cats": "▁cat"+"s" = −4.5 beats "▁c"+"at"+"s" = −7.5; "▁x": "▁" then the unknown "x"; whitespace runs collapse.
            Expect.sequenceEqual (t.ContentIds "a cat  cats x") [ 4; 5; 5; 9; 3; 2 ] $"{name}: a cat cats x"
            // T5 is cased: "A" is not "a".
            Expect.sequenceEqual (t.ContentIds "A") [ 3; 2 ] $"{name}: A"
            Expect.sequenceEqual (t.ContentIds "") Seq.empty $"{name}: empty prompt has no content"
            Expect.sequenceEqual (t.Encode "").InputIds [| 1L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L |] $"{name}: empty prompt is </s> then padding"

let ``T5 truncates to max length − 1 keeping </s>, and reports the tokens kept`` =
    testCase "T5 truncates to max length − 1 keeping </s>, and reports the tokens kept" <| fun () ->
        both 4 <| fun name t ->
            let e = t.Encode "a photo of a cat"
            Expect.sequenceEqual e.InputIds [| 4L; 12L; 13L; 1L |] $"{name}: three content pieces, then </s>"
            Expect.equal (t :> ITokenizer).ContentCapacity 3 $"{name}: capacity"
            let usage = PromptUsage.Of(t, "a photo of a cat")
            Expect.equal (usage.TokensTotal, usage.TokensUsed, usage.Truncated) (5, 3, true) $"{name}: 5 pieces, 3 kept"
            Expect.equal usage.UsedText "a photo of " $"{name}: the longest prefix whose pieces fit"

let ``T5 readers refuse files that are not T5 Unigram tokenizers, naming the file and the problem`` =
    testCase "T5 readers refuse files that are not T5 Unigram tokenizers, naming the file and the problem" <| fun () ->
        use dir = new TempDirectory()
        let bpe = dir.Write("t/tokenizer.json", """{ "model": { "type": "BPE", "vocab": {}, "merges": [] } }""")
        let e = expectThrows<InvalidDataException> "BPE tokenizer.json" (fun () -> T5Tokenizer.Load(bpe, 8) |> ignore)
        Expect.stringContains e.Message "'BPE'" "names the model type"
        Expect.stringContains e.Message "tokenizer.json" "names the file"
        let junk = dir.Write("t/spiece.model", "this is not a protobuf")
        let e = expectThrows<InvalidDataException> "junk spiece.model" (fun () -> T5Tokenizer.Load(junk, 8) |> ignore)
        Expect.stringContains e.Message "spiece.model" "names the file"

let ``the factory builds a T5 tokenizer from either file`` =
    testCase "the factory builds a T5 tokenizer from either file" <| fun () ->
        use dir = new TempDirectory()
        write dir |> ignore
        for file in [ "tokenizer_3/spiece.model"; "tokenizer_3/tokenizer.json" ] do
            let t = TokenizerFactory.Create(T5TokenizerSettings(256, file), dir.Path)
            Expect.equal (t.GetType()) typeof<T5Tokenizer> file
            Expect.equal t.MaxLength 256 file
            Expect.sequenceEqual (t.Encode "a cat").InputIds[..2] [| 4L; 5L; 1L |] file
            (t :?> IDisposable).Dispose()

[<Tests>]
let tests =
    testList "unit" [ testList "T5TokenizerTests" [
        ``T5 encodes content, appends </s> and pads with <pad>``
        ``T5 picks the most probable segmentation and maps unknown characters to <unk>``
        ``T5 truncates to max length − 1 keeping </s>, and reports the tokens kept``
        ``T5 readers refuse files that are not T5 Unigram tokenizers, naming the file and the problem``
        ``the factory builds a T5 tokenizer from either file``
    ] ]
