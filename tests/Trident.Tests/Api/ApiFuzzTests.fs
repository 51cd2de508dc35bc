/// The HTTP API fuzzed: FsCheck generates requests across every route of the server (the generation routes,
/// the OpenAI-compatible images route, cluster, plan, profile, health, ready, metrics, the OpenAPI document,
/// unknown paths) with random JSON shapes and types, boundary numbers, unicode and control characters,
/// invalid UTF-8, bodies over the server's limit and truncated ones, wrong methods and content types,
/// duplicate keys and deep nesting. Every answer must be one of the documented ones: never a 5xx (but a
/// documented 503), every 4xx a problem+json, every 400 naming the offending fields, /health answering
/// throughout; and every generation the server accepted must reach a final state.
///
/// TRIDENT_FUZZ_REQUESTS sets the request count (default 10,000); TRIDENT_REPLAY="seed,gamma" replays a run,
/// "seed,gamma,size" one failing request (the failure prints both the request and the replay command).
module Trident.Tests.Api.ApiFuzzTests

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json
open System.Threading
open Expecto
open FsCheck
open FsCheck.FSharp
open Trident.Tests.Api.ApiFixture
open Trident.Tests.TestSupport

/// Accepted work kept cheap: the only servable request is 64×64, one frame, one or two steps; a short queue.
type FuzzServer() =
    inherit
        TridentFactory(
            [ "Trident:Limits:MaxWidth", "64"
              "Trident:Limits:MaxHeight", "64"
              "Trident:Limits:MaxFrames", "1"
              "Trident:Limits:MaxSteps", "2"
              "Trident:Limits:DefaultSteps", "1"
              "Trident:Limits:MaxImagesPerRequest", "2"
              "Trident:Serving:QueueCapacity", "16" ]
        )

/// The server's Trident:Limits:MaxBodyBytes (its default).
let private maxBodyBytes = 1_048_576

let private server = Fixture(fun () -> new FuzzServer())

/// Requests per run: TRIDENT_FUZZ_REQUESTS, default 10,000.
let requestCount =
    match Environment.GetEnvironmentVariable "TRIDENT_FUZZ_REQUESTS" with
    | null
    | "" -> 10_000
    | value -> int value

// ---- requests --------------------------------------------------------------------------------

/// Which route a request aims at (its path may still be mangled).
type Target =
    | Generations
    | Images
    | Generation
    | GenerationResult
    | GenerationEvents
    | Fixed of string
    | Unknown

/// A request body: text (with the fields a 400 must name, when the body is well-formed JSON), or raw bytes.
type Body =
    | NoBody
    | Json of text: string * named: string list
    | Raw of bytes: byte[] * what: string

[<StructuredFormatDisplay("{Display}")>]
type FuzzRequest =
    { Method: string
      Path: string
      Target: Target
      /// Whether the path is the route's own (else the route is not matched: 404)
      Canonical: bool
      ContentType: string option
      Accept: string option
      Body: Body }

    member r.Display =
        let cut (s: string) = if s.Length > 400 then sprintf "%s… (%d chars)" (s.Substring(0, 400)) s.Length else s
        let body =
            match r.Body with
            | NoBody -> "no body"
            | Json(text, named) -> sprintf "%s (must name %A)" (JsonSerializer.Serialize(cut text)) named
            | Raw(bytes, what) ->
                sprintf "%s, %d bytes: %s" what bytes.Length (Convert.ToHexString(bytes, 0, min 200 bytes.Length))
        sprintf "%s %s [content-type %A, accept %A] %s" r.Method r.Path r.ContentType r.Accept body

    override r.ToString() = r.Display

// ---- JSON pieces -----------------------------------------------------------------------------

/// JSON text of a string (every non-ASCII character escaped, so invalid UTF-16 survives as \uXXXX).
let private quote (s: string) =
    let b = StringBuilder("\"")
    for c in s do
        match c with
        | '"' -> b.Append "\\\"" |> ignore
        | '\\' -> b.Append "\\\\" |> ignore
        | c when c < ' ' || c > '~' -> b.AppendFormat("\\u{0:x4}", int c) |> ignore
        | c -> b.Append c |> ignore
    b.Append('"').ToString()

/// How the server names a field whose key is `s`: its text with invalid UTF-16 replaced (U+FFFD).
/// JSON text of a string with its non-ASCII characters as they are (UTF-8 on the wire).
let private quoteRaw (s: string) =
    let b = StringBuilder("\"")
    for c in s do
        match c with
        | '"' -> b.Append "\\\"" |> ignore
        | '\\' -> b.Append "\\\\" |> ignore
        | c when c < ' ' -> b.AppendFormat("\\u{0:x4}", int c) |> ignore
        | c -> b.Append c |> ignore
    b.Append('"').ToString()

let private wireName (s: string) = Encoding.UTF8.GetString(Encoding.UTF8.GetBytes s)

let private words = [ "a fox"; "x"; ""; " "; "\t\n"; "prompt"; "null"; "true"; "64x64"; "b64_json"; "tiny"; "url"; "1"; "-1" ]

let private oddStrings =
    [ "\u0000"; "\u001f\u0007"; "\ud800"; "\udfff"; "a\ud83d"; "😀🦊"; "e\u0301"; "\u202eevil"; "\ufeff"; "\uffff"; "𝔸𝔸𝔸"
      "NaN"; "Infinity"; "-Infinity"; "1e400"; "0x10"; "64"; "64x"; "x64"; "64x64x64"; "-64x64"; "64X64"; " 64x64"; "64x64 "
      "+64x+64"; "٦٤x٦٤"; "99999999999x64"; "0x0"; "64x-0"; "1024x1024"; "%s%n"; "{{}}"; "<script>"; "'; DROP TABLE" ]

let private stringGen: Gen<string> =
    Gen.frequency
        [ 4, Gen.elements words
          3, Gen.elements oddStrings
          2, Gen.elements [ 'a' .. 'z' ] |> Gen.arrayOf |> Gen.map String
          1, Gen.choose (0, 0xFFFF) |> Gen.map char |> Gen.arrayOf |> Gen.map String
          1, Gen.choose (1990, 2010) |> Gen.map (fun n -> String('a', n))
          1, Gen.choose (990, 1010) |> Gen.map (fun n -> String.replicate n "😀") ]

/// A number literal and what it is: (text, fits int, fits long, finite double, valid JSON).
let private numbers =
    [ "0", true, true, true, true
      "-0", true, true, true, true
      "1", true, true, true, true
      "2", true, true, true, true
      "3", true, true, true, true
      "-1", true, true, true, true
      "16", true, true, true, true
      "64", true, true, true, true
      "65", true, true, true, true
      "128", true, true, true, true
      "1024", true, true, true, true
      "2147483647", true, true, true, true
      "2147483648", false, true, true, true
      "-2147483648", true, true, true, true
      "-2147483649", false, true, true, true
      "4294967296", false, true, true, true
      "9007199254740991", false, true, true, true
      "9007199254740992", false, true, true, true
      "9223372036854775807", false, true, true, true
      "9223372036854775808", false, false, true, true
      "-9223372036854775809", false, false, true, true
      "18446744073709551616", false, false, true, true
      "1.5", false, false, true, true
      "64.0", false, false, true, true
      "1e2", false, false, true, true
      "6.4E1", false, false, true, true
      "1e308", false, false, true, true
      "1e309", false, false, false, true
      "-1e400", false, false, false, true
      "1E+999999999", false, false, false, true
      "1e-400", false, false, true, true
      "0.000000000000000000000000000001", false, false, true, true
      "123456789012345678901234567890123456789012345678901234567890", false, false, true, true
      "NaN", false, false, false, false
      "Infinity", false, false, false, false
      "-Infinity", false, false, false, false
      "01", false, false, false, false
      ".5", false, false, false, false
      "1.", false, false, false, false
      "0x10", false, false, false, false
      "+1", false, false, false, false
      "1e", false, false, false, false ]

/// A JSON value of any shape: text and whether it is valid JSON.
let rec private anyValue (depth: int) : Gen<string * bool> =
    let scalar =
        Gen.frequency
            [ 3, Gen.elements numbers |> Gen.map (fun (t, _, _, _, ok) -> t, ok)
              3, stringGen |> Gen.map (fun s -> quote s, true)
              1, Gen.elements [ "true", true; "false", true; "null", true; "undefined", false; "'x'", false ] ]
    if depth <= 0 then scalar
    else
        let items = Gen.sized (fun n -> Gen.choose (0, min 4 (n / 10 + 1))) |> Gen.bind (fun k -> Gen.listOfLength k (anyValue (depth - 1)))
        Gen.frequency
            [ 4, scalar
              1, items |> Gen.map (fun vs -> "[" + String.Join(",", vs |> List.map fst) + "]", vs |> List.forall snd)
              1,
              Gen.zip items (Gen.listOfLength 4 stringGen)
              |> Gen.map (fun (vs, keys) ->
                  let pairs = List.zip (List.truncate vs.Length (keys @ keys @ keys)) vs
                  "{" + String.Join(",", pairs |> List.map (fun (k, (v, _)) -> quote k + ":" + v)) + "}",
                  vs |> List.forall snd) ]

/// Nesting deeper or shallower than the reader's limit (64).
let private nested: Gen<string * bool> =
    Gen.zip (Gen.elements [ 1; 2; 10; 60; 100; 1000; 100_000 ]) (Gen.elements [ "[", "]"; "{\"a\":", "}" ])
    |> Gen.map (fun (depth, (o, c)) -> String.replicate depth o + "1" + String.replicate depth c, true)

/// A field's JSON kind.
type Kind =
    | Str
    | Int
    | Long
    | Double

let private generationFields =
    [ "prompt", Str; "negative_prompt", Str; "width", Int; "height", Int; "frames", Int; "steps", Int; "seed", Long
      "guidance", Double; "deadline_ms", Long; "priority", Int; "output_format", Str; "output_compression", Int; "fps", Int
      "num_images", Int ]

let private imageFields =
    [ "prompt", Str; "n", Int; "size", Str; "response_format", Str; "model", Str; "negative_prompt", Str; "steps", Int; "seed", Long
      "guidance", Double; "output_format", Str; "output_compression", Int; "quality", Str; "background", Str
      "deadline_ms", Long; "priority", Int ]

let private unsupportedOpenAi =
    [ "style"; "user"; "moderation"; "partial_images"; "stream"; "image"; "mask" ]

/// A value for a field of `kind`: (text, valid JSON, whether the kind is wrong so the field must be named).
/// Whether a string (as the server reads it) is wrong for the field `name`: the OpenAI route's size is
/// WIDTHxHEIGHT in plain digits (or auto), its response_format b64_json or url, quality auto, background auto or
/// opaque; output_format names a format (png, jpeg, jpg, webp, mp4, webm — a format that does not fit the request
/// is named too, but that is not tracked here).
let private stringWrong (name: string) (s: string) =
    match name with
    | "size" -> not (s = "auto" || Text.RegularExpressions.Regex.IsMatch(s, "^[0-9]{1,9}x[0-9]{1,9}$"))
    | "response_format" -> s <> "b64_json" && s <> "url"
    | "quality" -> s <> "auto"
    | "background" -> s <> "auto" && s <> "opaque"
    | "output_format" -> not (List.contains s [ "png"; "jpeg"; "jpg"; "webp"; "mp4"; "webm" ])
    | _ -> false

/// A value for field `name` of `kind`: (text, valid JSON, 0 when right, 1 when its kind is wrong (or its text
/// invalid): a 400 names it, 2 when its value is wrong: a 400 names it too, beside any problem of form; -1 when
/// that is not known).
let private valueFor (name: string) (kind: Kind) : Gen<string * bool * int> =
    let level kindWrong valueWrong = if kindWrong then 1 elif valueWrong then 2 else 0
    let number =
        Gen.elements numbers
        |> Gen.map (fun (t, i, l, d, ok) ->
            let fits =
                match kind with
                | Int -> i
                | Long -> l
                | Double -> d
                | Str -> false
            t, ok, (if ok && not fits then 1 else 0))
    // escaped, an unpaired surrogate is invalid text (the field is named); raw, UTF-8 has already replaced it
    let goodString =
        Gen.zip stringGen (Gen.elements [ true; false ])
        |> Gen.map (fun (s, escaped) ->
            if escaped then quote s, true, level (kind <> Str || wireName s <> s) (stringWrong name s)
            else quoteRaw s, true, level (kind <> Str) (stringWrong name (wireName s)))
    let small =
        match kind with
        | Int -> Gen.elements [ "1"; "2"; "64"; "1" ] |> Gen.map (fun t -> t, true, 0)
        | Long -> Gen.choose (0, 1000) |> Gen.map (fun n -> string n, true, 0)
        | Double -> Gen.elements [ "0"; "3.5"; "7.5"; "100"; "100.0001" ] |> Gen.map (fun t -> t, true, 0)
        | Str -> Gen.elements [ "a fox"; "b64_json"; "64x64"; "tiny" ] |> Gen.map (fun t -> quote t, true, level false (stringWrong name t))
    Gen.frequency
        [ 5, small
          3, (if kind = Str then goodString else number)
          1, (if kind = Str then number else goodString)
          1, Gen.elements [ "null", true, 0; "true", true, 1; "[]", true, 1; "{}", true, 1; "[1]", true, 1 ]
          1,
          anyValue 2
          |> Gen.map (fun (t, ok) ->
              // of the right kind, its value is not known to be right: -1
              t, ok, (if t = "null" then 0 elif (kind = Str && t.StartsWith "\"") || (kind <> Str && t.Length > 0 && (Char.IsDigit t.[0] || t.[0] = '-')) then -1 else 1))
          1, nested |> Gen.map (fun (t, ok) -> t, ok, (if ok then 1 else 0)) ]

/// A JSON object body for a route with `fields`: known fields with good or bad values, unknown keys,
/// duplicated keys, escaped key names. Returns the text and the fields a 400 must name (["$"] when the text
/// is not valid JSON or nests deeper than the reader allows).
let private objectBody (fields: (string * Kind) list) (unsupported: string list) : Gen<string * string list> =
    gen {
        let! k = Gen.sized (fun n -> Gen.choose (0, min 8 (n / 8 + 2)))
        let! members =
            Gen.listOfLength
                k
                (Gen.frequency
                    [ 8,
                      gen {
                          let! name, kind = Gen.elements fields
                          let! text, ok, wrong = valueFor name kind
                          let! escaped = Gen.frequency [ 9, Gen.constant false; 1, Gen.constant true ]
                          let key = if escaped then "\"" + String.Join("", name |> Seq.map (fun c -> sprintf "\\u%04x" (int c))) + "\"" else quote name
                          return name, key, text, ok, wrong
                      }
                      2,
                      gen {
                          let! name =
                              Gen.frequency
                                  [ 3, Gen.elements ([ "stpes"; "Prompt"; "PROMPT"; "width "; ""; "sampler"; "id"; "$"; "errors"; "n"; "size"; "width"; "frames" ] @ unsupported)
                                    1, stringGen ]
                          let! text, ok = anyValue 1
                          let known = fields |> List.exists (fun (f, _) -> f = name)
                          // a known name with any value: named only when its kind is wrong, which is not tracked here
                          // (-1: not known whether it is named; a problem of another field is expected all the same)
                          return name, quote name, text, ok, (if known then -1 else 1)
                      } ])
        // the server reads nesting up to 64 levels; deeper is malformed
        let tooDeep (text: string) = text.StartsWith "[[[[" && text.Length > 2 * 64 || text.StartsWith "{\"a\":{\"a\":" && text.Length > 6 * 64
        let valid = members |> List.forall (fun (_, _, text, ok, _) -> ok && not (tooDeep text))
        let names = members |> List.map (fun (n, _, _, _, _) -> n)
        let duplicated = names |> List.countBy id |> List.filter (fun (_, c) -> c > 1) |> List.map fst
        let named =
            if not valid then [ "$" ]
            else
                // the form (keys, kinds, text) and the values of the fields whose form is right are named in one 400
                // (before, a problem of form hid every value's)
                let form = (members |> List.filter (fun (_, _, _, _, wrong) -> wrong = 1) |> List.map (fun (n, _, _, _, _) -> n)) @ duplicated
                let values = members |> List.filter (fun (_, _, _, _, wrong) -> wrong = 2) |> List.map (fun (n, _, _, _, _) -> n)
                form @ values |> List.distinct |> List.map wireName
        let text = "{" + String.Join(",", members |> List.map (fun (_, key, value, _, _) -> key + ":" + value)) + "}"
        return text, named
    }

/// A body that should often be accepted: a small, valid request (kept rare: it costs a generation).
let private servable (target: Target) : Gen<string * string list> =
    gen {
        let! steps = Gen.elements [ 1; 2 ]
        let! seed = Gen.choose (0, 1000)
        return
            (match target with
             | Images -> sprintf """{"prompt":"a fox","size":"64x64","steps":%d,"seed":%d}""" steps seed
             | _ -> sprintf """{"prompt":"a fox","width":64,"height":64,"steps":%d,"seed":%d}""" steps seed),
            []
    }

let private invalidUtf8 = [ [| 0xFFuy |]; [| 0xC3uy; 0x28uy |]; [| 0xEDuy; 0xA0uy; 0x80uy |]; [| 0xF4uy; 0x90uy; 0x80uy; 0x80uy |]; [| 0x80uy |]; [| 0xC0uy; 0xAFuy |] ]

/// Raw bodies: invalid UTF-8 inside keys and values, truncated JSON, bodies over the server's limit,
/// non-objects, empty, nothing but whitespace, a UTF-16 or UTF-8-BOM encoding.
let private rawBody (fields: (string * Kind) list) (unsupported: string list) : Gen<Body> =
    gen {
        let! text, _ = objectBody fields unsupported
        let bytes = Encoding.UTF8.GetBytes(text: string)
        let! choice = Gen.choose (0, 9)
        match choice with
        | 0
        | 1 ->
            let! bad = Gen.elements invalidUtf8
            let! where = Gen.elements [ "key"; "value"; "anywhere" ]
            let body =
                match where with
                | "key" -> Array.concat [ "{\"pro"B; bad; "mpt\":\"a fox\"}"B ]
                | "value" -> Array.concat [ "{\"prompt\":\"a "B; bad; "fox\",\"width\":64}"B ]
                | _ -> Array.concat [ bytes; bad ]
            return Raw(body, "invalid UTF-8 in the " + where)
        | 2
        | 3 ->
            let! cut = Gen.choose (0, max 0 (bytes.Length - 1))
            return Raw(bytes.[.. cut - 1], "truncated")
        | 4 ->
            let! size = Gen.elements [ 1_048_577; 1_500_000; 4_000_000 ]
            let! shape = Gen.elements [ "prompt"; "key"; "array"; "spaces" ]
            let body =
                match shape with
                | "prompt" -> "{\"prompt\":\"" + String('a', size) + "\"}"
                | "key" -> "{\"" + String('k', size) + "\":1}"
                | "array" -> "{\"prompt\":[" + String.replicate (size / 2) "1," + "1]}"
                | _ -> String(' ', size) + "{}"
            return Raw(Encoding.UTF8.GetBytes body, "over the body limit (" + shape + ")")
        | 5 -> return! Gen.elements [ "[]"; "1"; "\"x\""; "null"; "true"; "[{\"prompt\":\"x\"}]"; "{}{}"; "{} x"; "{\"prompt\":\"x\"}]" ] |> Gen.map (fun t -> Raw(Encoding.UTF8.GetBytes t, "not one object"))
        | 6 -> return! Gen.elements [ ""; " "; "\n\n"; "\u0000"; "{"; "}"; "{\"prompt\"" ] |> Gen.map (fun t -> Raw(Encoding.UTF8.GetBytes t, "empty or a fragment"))
        | 7 -> return Raw(Encoding.Unicode.GetBytes text, "UTF-16")
        | 8 -> return Raw(Array.append [| 0xEFuy; 0xBBuy; 0xBFuy |] bytes, "UTF-8 with a BOM")
        | _ ->
            let! noise = Gen.choose (0, 255) |> Gen.map byte |> Gen.arrayOf
            return Raw(noise, "random bytes")
    }

let private routeBody (target: Target) : Gen<Body> =
    let fields, unsupported =
        match target with
        | Images -> imageFields, unsupportedOpenAi
        | _ -> generationFields, []
    Gen.frequency
        [ 12, objectBody fields unsupported |> Gen.map Json
          1, servable target |> Gen.map Json
          4, rawBody fields unsupported
          1, anyValue 3 |> Gen.map (fun (t, ok) -> Json(t, (if ok && t.StartsWith "{" then [] else [ "$" ]))) ]

let private idText: Gen<string> =
    Gen.frequency
        [ 6, Gen.choose (0, 60) |> Gen.map string
          2,
          Gen.elements
              [ "-1"; "0"; "2147483648"; "9007199254740993"; "9223372036854775807"; "9223372036854775808"; "-9223372036854775808"
                "99999999999999999999999"; "1.5"; "1e3"; "abc"; "%2e%2e"; "%F0%9F%A6%8A"; "+1"; "0x1"; " 1"; "%20"; "1;2"; "null" ] ]

let private fixedPaths =
    [ "/"; "/v1/cluster"; "/v1/plan"; "/v1/plan/rounds"; "/v1/profile"; "/health"; "/ready"; "/metrics"; "/openapi/v1.json" ]

let private unknownPaths =
    [ "/v1"; "/v1/"; "/v2/generations"; "/v1/generation"; "/v1/images"; "/v1/images/generations/1"
      "/openapi/v2.json"; "/openapi"; "/metrics/x"; "/v1/cluster/0"; "/v1/generations/1/result/x"; "/v1/generations/1/2"
      "//v1//generations"; "/%FF"; "/v1/%F0%9F%A6%8A"; "/" + String('a', 5000); "/favicon.ico"; "/.env"; "/v1/plan.json" ]

let private methods = [ "GET"; "POST"; "PUT"; "DELETE"; "PATCH"; "HEAD"; "OPTIONS" ]

let private contentTypes =
    Gen.frequency
        [ 10, Gen.constant (Some "application/json")
          1, Gen.constant None
          1,
          Gen.elements
              [ Some "text/plain"; Some "application/json; charset=utf-16"; Some "application/x-www-form-urlencoded"
                Some "multipart/form-data; boundary=x"; Some "application/problem+json"; Some "image/png"; Some "a/b/c;;"
                Some "application/json; charset=\u00e9" ] ]

let private accepts =
    Gen.frequency
        [ 8, Gen.constant None
          2, Gen.elements [ Some "application/json"; Some "*/*"; Some "text/html"; Some "application/xml"; Some "text/event-stream"; Some "image/png" ] ]

/// A whole request.
let private requests: Gen<FuzzRequest> =
    gen {
        let! target =
            Gen.frequency
                [ 10, Gen.constant Generations
                  5, Gen.constant Images
                  3, Gen.constant Generation
                  2, Gen.constant GenerationResult
                  1, Gen.constant GenerationEvents
                  4, Gen.elements fixedPaths |> Gen.map Fixed
                  2, Gen.constant Unknown ]
        let! id = idText
        // the id routes take a non-negative integer in plain digits (no sign, no spaces)
        let isLong = Text.RegularExpressions.Regex.IsMatch(id, "^[0-9]+$") && fst (Int64.TryParse id)
        let path, canonical =
            match target with
            | Generations -> "/v1/generations", true
            | Images -> "/v1/images/generations", true
            | Generation -> "/v1/generations/" + id, isLong
            | GenerationResult -> sprintf "/v1/generations/%s/result" id, isLong
            | GenerationEvents -> sprintf "/v1/generations/%s/events" id, isLong
            | Fixed p -> p, true
            | Unknown -> "", false
        let! path = if target = Unknown then Gen.elements unknownPaths else Gen.constant path
        let! query = Gen.frequency [ 9, Gen.constant ""; 1, Gen.elements [ "?x=1"; "?prompt=a"; "?id=1&id=2"; "?%FF"; "?" ] ]
        let right =
            match target with
            | Generations
            | Images -> "POST"
            | Generation -> "GET" // or DELETE, below
            | _ -> "GET"
        let! method =
            Gen.frequency
                [ 8, Gen.constant right
                  (if target = Generation then 3 else 0), Gen.constant "DELETE"
                  2, Gen.elements methods ]
        let! body =
            match target with
            | Generations
            | Images when method = "POST" -> routeBody target
            | _ -> Gen.frequency [ 6, Gen.constant NoBody; 1, routeBody Generations ]
        let! contentType = if body = NoBody then Gen.constant None else contentTypes
        let! accept = accepts
        return { Method = method; Path = path + query; Target = target; Canonical = canonical; ContentType = contentType; Accept = accept; Body = body }
    }

// ---- running and checking --------------------------------------------------------------------

/// TRIDENT_FUZZ_KEEP_GOING=1: a finding does not stop the run; each kind is printed (its first three
/// requests) and the run fails at its end with the count, so one run reports every kind of finding.
let keepGoing = Environment.GetEnvironmentVariable "TRIDENT_FUZZ_KEEP_GOING" = "1"

/// What every run records: requests sent, answers by status code, accepted generation ids.
type private Record() =
    member val Sent = 0 with get, set
    member val Statuses = ConcurrentDictionary<int, int>()
    member val Accepted = ConcurrentBag<string>()
    member val Clock = Stopwatch()
    member val Findings = ConcurrentDictionary<string, int>()

let private record = Record()

let private send (client: HttpClient) (r: FuzzRequest) =
    use message = new HttpRequestMessage(HttpMethod(r.Method), Uri(r.Path, UriKind.Relative))
    let content: HttpContent =
        match r.Body with
        | NoBody -> null
        | Json(text, _) -> new ByteArrayContent(Encoding.UTF8.GetBytes text)
        | Raw(bytes, _) -> new ByteArrayContent(bytes)
    if not (isNull content) then
        match r.ContentType with
        | Some t -> content.Headers.TryAddWithoutValidation("Content-Type", t) |> ignore
        | None -> ()
        message.Content <- content
    match r.Accept with
    | Some a -> message.Headers.TryAddWithoutValidation("Accept", a) |> ignore
    | None -> ()
    // an event stream of a live job ends with its final state: bounded like every other wait
    use cts = new CancellationTokenSource(TimeSpan.FromSeconds 60.0)
    use response = client.SendAsync(message, HttpCompletionOption.ResponseContentRead, cts.Token).Result
    let mediaType =
        match response.Content.Headers.ContentType with
        | null -> null
        | t -> t.MediaType
    int response.StatusCode, mediaType, response.Content.ReadAsStringAsync().Result

/// The problems with one answer (empty when it is a documented one).
let check (r: FuzzRequest) (status: int, mediaType: string, body: string) : string list =
    [ let problem =
          if mediaType <> "application/problem+json" then None
          else
              try
                  Some(JsonDocument.Parse(body).RootElement.Clone())
              with _ ->
                  None
      if status >= 500 && status <> 503 then yield sprintf "answered %d (%s)" status body
      if status >= 200 && status < 300 && mediaType = "application/json" && r.Method <> "HEAD" then
          let parses =
              try
                  JsonDocument.Parse(body).Dispose()
                  true
              with _ ->
                  false
          if not parses then yield sprintf "a %d whose JSON does not parse: %s" status body
      if status >= 400 && r.Method <> "HEAD" then
          if mediaType <> "application/problem+json" then yield sprintf "a %d that is %s, not application/problem+json: %s" status mediaType body
          else
              match problem with
              | None -> yield sprintf "a %d whose problem+json does not parse: %s" status body
              | Some p ->
                  match p.TryGetProperty "status" with
                  | true, s when s.ValueKind = JsonValueKind.Number && s.GetInt32() = status -> ()
                  | _ -> yield sprintf "a %d whose problem's status is not %d: %s" status status body
      let postRoute = (r.Target = Generations || r.Target = Images) && r.Method = "POST"
      // a POST route takes no query parameter: one sent is the 400, before the body is read (the body's checks below
      // do not apply) — or the routing's 415 for a media type the route does not accept, which comes first; a bare "?"
      // sends none
      let queried = r.Path.Contains "?" && not (r.Path.EndsWith "?")
      if postRoute && queried then
          if status <> 400 && status <> 415 then yield sprintf "answered %d to a POST with query parameters, not 400 (or 415)" status
          match problem with
          | Some p ->
              match p.TryGetProperty "errors" with
              | true, errors when errors.ValueKind = JsonValueKind.Object && errors.EnumerateObject() |> Seq.isEmpty |> not -> ()
              | _ -> yield sprintf "a 400 for a query parameter that names none: %s" body
          | None -> ()
      let bodyRoute = postRoute && not queried
      if bodyRoute && (status = 400 || status = 413) then
          match problem with
          | Some p ->
              match p.TryGetProperty "errors" with
              | true, errors when errors.ValueKind = JsonValueKind.Object ->
                  let names = [ for e in errors.EnumerateObject() -> e.Name ] |> Set.ofList
                  if names.IsEmpty then yield sprintf "a 400 naming no field: %s" body
                  match r.Body with
                  | Json(_, named) when status = 400 ->
                      for n in named do
                          if not (names.Contains n) then yield sprintf "a 400 that does not name %s: %s" (JsonSerializer.Serialize n) body
                  | _ -> ()
              | _ -> yield sprintf "a 400 without errors: %s" body
          | None -> ()
      // application/json or a +json type, in UTF-8 (no charset, or utf-8): anything else is a 415
      let jsonType =
          match r.ContentType with
          | None -> true
          | Some t ->
              let parts = t.Split(';') |> Array.map (fun p -> p.Trim().ToLowerInvariant())
              let media = parts.[0]
              let charsets = parts |> Array.filter (fun p -> p.StartsWith "charset=") |> Array.map (fun p -> p.Substring(8).Trim('"'))
              (media = "application/json" || (media.StartsWith "application/" && media.EndsWith "+json"))
              && charsets |> Array.forall (fun c -> c = "utf-8")
      let overLimit =
          match r.Body with
          | Json(text, _) -> Encoding.UTF8.GetByteCount text > maxBodyBytes
          | Raw(bytes, _) -> bytes.Length > maxBodyBytes
          | NoBody -> false
      if bodyRoute && jsonType && status = 415 then yield sprintf "a 415 for Content-Type %A" r.ContentType
      if bodyRoute && not jsonType && status <> 415 then yield sprintf "answered %d to Content-Type %A, not 415" status r.ContentType
      if bodyRoute && jsonType then
          if overLimit then
              if status <> 413 && status <> 503 then yield sprintf "answered %d to a body over the limit, not 413" status
          else
              match r.Body with
              | Json(_, named) when not named.IsEmpty && status <> 400 && status <> 503 -> yield sprintf "answered %d, but %A must be named in a 400" status named
              | _ -> ()
      let knownPath = r.Canonical && r.Target <> Unknown
      if knownPath && r.Method <> "HEAD" then
          let allowed =
              match r.Target with
              | Generations -> [ "POST"; "GET" ] // GET: the list
              | Images -> [ "POST" ]
              | Generation -> [ "GET"; "DELETE" ]
              | _ -> [ "GET" ]
          if not (List.contains r.Method allowed) && status <> 405 then yield sprintf "%s on %s answered %d, not 405" r.Method r.Path status
      if not r.Canonical && status <> 404 && status <> 405 && not (r.Path.Contains "..") then
          yield sprintf "an unknown path answered %d, not 404" status ]

let private healthy (client: HttpClient) =
    use r = get client "/health"
    r.StatusCode = HttpStatusCode.OK

let private property () =
    let client = server.Value.CreateClient()
    client.Timeout <- TimeSpan.FromSeconds 90.0
    waitReady client
    if not record.Clock.IsRunning then record.Clock.Start()
    Prop.forAll (Arb.fromGen requests) (fun r ->
        let answer = send client r
        let status, _, body = answer
        record.Sent <- record.Sent + 1
        record.Statuses.AddOrUpdate(status, 1, (fun _ n -> n + 1)) |> ignore
        if status = 202 && r.Target = Generations && r.Method = "POST" then
            record.Accepted.Add((JsonDocument.Parse(body).RootElement.GetProperty "id").GetString())
        let problems = check r answer
        let problems =
            if record.Sent % 500 = 0 && not (healthy client) then "/health is not 200" :: problems else problems
        if keepGoing then
            for p in problems do
                let kind = Text.RegularExpressions.Regex.Replace((if p.Length > 70 then p.Substring(0, 70) else p), "[0-9]+", "N")
                let n = record.Findings.AddOrUpdate(kind, 1, (fun _ n -> n + 1))
                if n <= 3 then eprintfn "FUZZ FINDING [%s]: %s\n    request: %s" kind p r.Display
            true |> Prop.label ""
        else List.isEmpty problems |> Prop.label (String.Join("\n", problems)))

let ``fuzzed requests to every route get only documented answers`` =
    testProp requestCount "fuzzed requests to every route get only documented answers" property

let ``after the fuzz run the server is healthy and every accepted generation reaches a final state`` =
    testCase "after the fuzz run the server is healthy and every accepted generation reaches a final state" <| fun () ->
        let client = readyClient server.Value
        let elapsed = record.Clock.Elapsed.TotalSeconds
        let histogram = record.Statuses |> Seq.sortBy _.Key |> Seq.map (fun kv -> sprintf "%d: %d" kv.Key kv.Value)
        printfn "API fuzz: %d requests in %.1f s; status codes %s; %d generations accepted" record.Sent elapsed (String.Join(", ", histogram)) record.Accepted.Count
        for kv in record.Findings do
            eprintfn "FUZZ FINDINGS: %d × %s" kv.Value kv.Key
        Expect.isEmpty record.Findings.Keys "findings of the run (TRIDENT_FUZZ_KEEP_GOING)"
        if replay.IsNone then Expect.isGreaterThanOrEqual record.Sent requestCount "the run sent every request"
        Expect.isTrue (healthy client) "/health answers 200 after the run"
        use ready = get client "/ready"
        Expect.equal ready.StatusCode HttpStatusCode.OK "/ready answers 200 after the run"
        for id in record.Accepted do
            let final = pollUntil client 120.0 id isFinal
            Expect.contains [ "succeeded"; "cancelled" ] (status final) (sprintf "generation %s ends succeeded (or cancelled by the fuzzer)" id)

// ---- what the fuzzer found, one input each ----------------------------------------------------

/// Sends `body` (bytes as given) with `contentType` and `accept`; returns the status, media type and problem.
let private raw (client: HttpClient) (method: string) (path: string) (contentType: string option) (accept: string option) (body: byte[] option) =
    let r =
        { Method = method; Path = path; Target = Unknown; Canonical = true; ContentType = contentType; Accept = accept
          Body = (match body with Some b -> Raw(b, "regression") | None -> NoBody) }
    let status, mediaType, text = send client r
    status, mediaType, (if mediaType = "application/problem+json" then Some(JsonDocument.Parse(text).RootElement.Clone()) else None)

let private errorNames (problem: JsonElement option) =
    match problem with
    | Some p ->
        match p.TryGetProperty "errors" with
        | true, e -> [ for x in e.EnumerateObject() -> x.Name ]
        | _ -> []
    | None -> []

let ``a key of invalid UTF-8 or an unpaired surrogate escape is a 400 naming it, not a 500`` =
    testCase "a key of invalid UTF-8 or an unpaired surrogate escape is a 400 naming it, not a 500" <| fun () ->
        let client = readyClient server.Value
        // before: 500 (System.Text.Json refuses to read the name: InvalidOperationException)
        for body, name in
            [ Array.concat [ "{\"pro"B; [| 0xEDuy; 0xA0uy; 0x80uy |]; "mpt\":\"a fox\"}"B ], "pro\ufffd\ufffd\ufffdmpt"
              Array.concat [ "{\"pro"B; [| 0xFFuy |]; "mpt\":\"a fox\"}"B ], "pro\ufffdmpt"
              "{\"prompt\":\"a fox\",\"\\ud800\":1}"B, "\ufffd"
              "{\"\\udb24x\":true,\"height\":1}"B, "\ufffdx" ] do
            for path in [ "/v1/generations"; "/v1/images/generations" ] do
                let status, mediaType, problem = raw client "POST" path (Some "application/json") None (Some body)
                Expect.equal status 400 (sprintf "%s %s" path (Convert.ToHexString body))
                Expect.equal mediaType "application/problem+json" "problem+json"
                Expect.contains (errorNames problem) name "the key is named, U+FFFD in place of what is not text"
        // a string value that is not valid Unicode names its field
        let status, _, problem = raw client "POST" "/v1/generations" (Some "application/json") None (Some "{\"prompt\":\"a \\udc00 fox\"}"B)
        Expect.equal status 400 "an unpaired surrogate in the prompt"
        Expect.equal (errorNames problem) [ "prompt" ] "the prompt is named"

let ``404, 405 and 415 answers are problem+json whatever the Accept header`` =
    testCase "404, 405 and 415 answers are problem+json whatever the Accept header" <| fun () ->
        let client = readyClient server.Value
        // before: text/plain "Status Code: 405; Method Not Allowed" when the client accepts no JSON
        for method, path, contentType, body, expected in
            [ "PUT", "/health", None, None, 405
              "PATCH", "/v1/images/generations", None, None, 405
              "GET", "/v1/nothing", None, None, 404
              "POST", "/v1/generations", Some "text/plain", Some "{\"prompt\":\"x\"}"B, 415
              // before: text/plain "No OpenAPI document with the name 'v2' was found."
              "GET", "/openapi/v2.json", None, None, 404 ] do
            for accept in [ None; Some "text/html"; Some "application/xml"; Some "text/event-stream" ] do
                let status, mediaType, problem = raw client method path contentType accept body
                Expect.equal status expected (sprintf "%s %s, Accept %A" method path accept)
                Expect.equal mediaType "application/problem+json" (sprintf "%s %s, Accept %A" method path accept)
                Expect.equal (problem.Value.GetProperty("status").GetInt32()) expected "the problem's status"

/// A problem's title is written alike whoever wrote it: an unknown path, an unknown job and an unknown video are each
/// "Not found" (before, an unknown path answered "Not Found", the framework's reason phrase, and an unknown job "Not
/// found"), a wrong method "Method not allowed", as the routes' "Bad request", "Too many requests" and "Unsupported
/// media type" are (a worker's 404: LifecycleApiTests).
let ``problem titles are written alike, an unknown path's and an unknown job's 404 the same`` =
    testCase "problem titles are written alike, an unknown path's and an unknown job's 404 the same" <| fun () ->
        let client = readyClient server.Value
        let title method path =
            let _, _, problem = raw client method path None None None
            problem.Value.GetProperty("title").GetString()
        for method, path in [ "GET", "/v1/nothing"; "GET", "/v1/generations/999999"; "GET", "/v1/generations/abc"; "DELETE", "/v1/generations/999999"
                              "GET", "/v1/videos/video_999999"; "GET", "/v1/plan/rounds/999999" ] do
            Expect.equal (title method path) "Not found" (sprintf "%s %s" method path)
        Expect.equal (title "PUT" "/health") "Method not allowed" "a wrong method"

let ``every problem body carries a type and trace_id as 32 hex digits, as the 202s do, whatever the Accept header`` =
    testCase "every problem body carries a type and trace_id as 32 hex digits, as the 202s do, whatever the Accept header" <| fun () ->
        let client = readyClient server.Value
        let hex32 = Text.RegularExpressions.Regex("^[0-9a-f]{32}$")
        // before: trace_id a traceparent ("00-…-…-01") where there was one; none and no type on 404 (no route), 405 and 415
        for method, path, contentType, body, expected in
            [ "GET", "/v1/nothing", None, None, 404
              "PUT", "/health", None, None, 405
              "POST", "/v1/generations", Some "text/plain", Some "{\"prompt\":\"x\"}"B, 415
              "POST", "/v1/generations", Some "application/json; charset=utf-16", Some "{\"prompt\":\"x\"}"B, 415
              "POST", "/v1/generations", Some "application/json", Some(Encoding.UTF8.GetBytes("{\"prompt\":\"" + String('a', maxBodyBytes) + "\"}")), 413
              "POST", "/v1/generations", Some "application/json", Some "{\"prompt\":\"x\",\"steps\":0}"B, 400
              "GET", "/v1/generations/999999", None, None, 404
              "GET", "/v1/videos/video_999999", None, None, 404 ] do
            for accept in [ None; Some "application/json"; Some "text/html" ] do
                let what = sprintf "%s %s (%d), Accept %A" method path expected accept
                let status, _, problem = raw client method path contentType accept body
                Expect.equal status expected what
                let problem = Expect.wantSome problem (what + ": problem+json")
                let mutable field = Unchecked.defaultof<JsonElement>
                Expect.isTrue (problem.TryGetProperty("type", &field) && field.GetString().StartsWith "https://") (what + ": a type")
                Expect.isTrue (problem.TryGetProperty("trace_id", &field)) (what + ": a trace_id")
                Expect.isTrue (hex32.IsMatch(field.GetString())) (sprintf "%s: trace_id %s is 32 hex digits" what (field.GetString()))
                Expect.isFalse (problem.TryGetProperty("traceId", &field)) (what + ": no second trace id")
        // the same form as the trace id of a 202
        use accepted = post client "/v1/generations" """{"prompt":"x","width":64,"height":64,"steps":1}"""
        Expect.isTrue (hex32.IsMatch((json accepted).GetProperty("trace_id").GetString())) "a 202's trace_id is 32 hex digits"
        client.DeleteAsync("/v1/generations/" + (json accepted).GetProperty("id").GetString()).Result.Dispose()

let ``a job id is plain digits: ' 1' and '+1' are not job 1`` =
    testCase "a job id is plain digits: ' 1' and '+1' are not job 1" <| fun () ->
        let client = readyClient server.Value
        let id = submit client """{"prompt":"a fox","width":64,"height":64,"steps":1}"""
        // before: GET /v1/generations/%20<id> answered job <id> (the long route constraint allows spaces and '+')
        for path in [ "/v1/generations/%20" + id; "/v1/generations/+" + id; sprintf "/v1/generations/%s%%20/result" id ] do
            let status, mediaType, _ = raw client "GET" path None None None
            Expect.equal status 404 path
            Expect.equal mediaType "application/problem+json" path
        let status, _, _ = raw client "GET" ("/v1/generations/" + id) None None None
        Expect.equal status 200 "the plain id is the job"
        pollUntil client 120.0 id isFinal |> ignore

let ``a generation path whose id is not a job id says so in its 404`` =
    testCase "a generation path whose id is not a job id says so in its 404" <| fun () ->
        let client = readyClient server.Value
        // before: "no route matches GET /v1/generations/abc (every route is listed in /openapi/v1.json)", which does not
        // say that the id is what is wrong
        for method, path, id in
            [ "GET", "/v1/generations/abc", "abc"
              "GET", "/v1/generations/99999999999999999999", "99999999999999999999"
              "GET", "/v1/generations/1.5/result", "1.5"
              "GET", "/v1/generations/%201/events", " 1"
              "DELETE", "/v1/generations/x7", "x7"
              // before: "no generation -1 (never accepted, or evicted …)", as if -1 could be an id
              "GET", "/v1/generations/-1", "-1"
              "GET", "/v1/generations/-1/result", "-1"
              "GET", "/v1/generations/-1/events", "-1"
              "DELETE", "/v1/generations/-1", "-1" ] do
            let status, mediaType, problem = raw client method path None None None
            Expect.equal (status, mediaType) (404, "application/problem+json") path
            let detail = problem.Value.GetProperty("detail").GetString()
            Expect.stringContains detail (sprintf "'%s' is not a generation id (ids are non-negative whole numbers in plain digits, at most 9223372036854775807" id) path
        let _, _, other = raw client "GET" "/v1/generationz/1" None None None
        Expect.stringContains (other.Value.GetProperty("detail").GetString()) "(every route is listed in /openapi/v1.json)" "another unknown path as before"

let ``a body over Limits:MaxBodyBytes is a 413 and a charset other than UTF-8 a 415, each naming the body`` =
    testCase "a body over Limits:MaxBodyBytes is a 413 and a charset other than UTF-8 a 415, each naming the body" <| fun () ->
        let client = readyClient server.Value
        // before: the whole body was read and parsed, however large (a 4 MB prompt: a 400 on prompt's length)
        let huge = Encoding.UTF8.GetBytes("{\"prompt\":\"" + String('a', maxBodyBytes) + "\"}")
        for path in [ "/v1/generations"; "/v1/images/generations" ] do
            let status, mediaType, problem = raw client "POST" path (Some "application/json") None (Some huge)
            Expect.equal status 413 path
            Expect.equal mediaType "application/problem+json" path
            Expect.equal (errorNames problem) [ "$" ] "the body is named"
            // before: read as UTF-8 whatever the charset said (a UTF-16 body: "not a JSON object")
            for contentType in [ "application/json; charset=utf-16"; "application/json; charset=latin1" ] do
                let status, _, problem = raw client "POST" path (Some contentType) None (Some(Encoding.Unicode.GetBytes "{\"prompt\":\"x\"}"))
                Expect.equal status 415 contentType
                Expect.equal (errorNames problem) [ "$" ] "the body is named"
        let status, _, _ = raw client "POST" "/v1/generations" (Some "application/json; charset=UTF-8") None (Some "{\"prompt\":\"x\",\"width\":\"64\"}"B)
        Expect.equal status 400 "charset=UTF-8 is read (and the body's problem reported)"
        // another media type: every 415 names the body and says what the route takes (before: the routing's 415 for
        // text/plain had no errors, while the charset 415 and the 413 named `$`)
        let json' = "application/json (or a +json type), in UTF-8"
        for path, takes in [ "/v1/generations", json'; "/v1/images/generations", json'; "/v1/chat/completions", json'
                             "/v1/videos", "application/json (or a +json type), multipart/form-data or application/x-www-form-urlencoded, in UTF-8" ] do
            for contentType in [ "text/plain"; "application/xml" ] do
                let status, mediaType, problem = raw client "POST" path (Some contentType) None (Some "{\"prompt\":\"x\"}"B)
                Expect.equal (status, mediaType) (415, "application/problem+json") (path + " " + contentType)
                Expect.equal (errorNames problem) [ "$" ] (path + ": the body is named")
                let message = problem.Value.GetProperty("errors").GetProperty("$").[0].GetString()
                Expect.stringContains message (sprintf "the body must be %s (Content-Type: '%s')" takes contentType) (path + ": what it takes")
                Expect.equal (problem.Value.GetProperty("title").GetString()) "Unsupported media type" (path + ": the title of every 415")
        // no Content-Type at all is read as JSON (lenient: curl -H 'Content-Type:', some clients)
        let status, _, problem = raw client "POST" "/v1/generations" None None (Some "{\"prompt\":\"x\",\"steps\":0}"B)
        Expect.equal status 400 "a body without a Content-Type is read as JSON"
        Expect.equal (errorNames problem) [ "steps" ] "and its problem named"
        // curl -d without -H sends application/x-www-form-urlencoded: a JSON body sent so is told how to send it (before:
        // only what the route takes), and a real form is not
        let form = "application/x-www-form-urlencoded"
        for path in [ "/v1/generations"; "/v1/images/generations"; "/v1/chat/completions" ] do
            for body in [ "{\"prompt\":\"x\"}"B; "  \n[1]"B ] do
                let status, _, problem = raw client "POST" path (Some form) None (Some body)
                Expect.equal status 415 (path + ": a form is not taken")
                let message = problem.Value.GetProperty("errors").GetProperty("$").[0].GetString()
                Expect.stringContains message (sprintf "(Content-Type: '%s'); the body looks like JSON: send Content-Type: application/json (curl -d sends %s unless given -H 'Content-Type: application/json')" form form) path
                Expect.equal (problem.Value.GetProperty("detail").GetString()) message (path + ": the detail says it too")
            let _, _, problem = raw client "POST" path (Some form) None (Some "prompt=x"B)
            Expect.isFalse (problem.Value.GetProperty("detail").GetString().Contains "looks like JSON") (path + ": a form that is not JSON gets no such hint")
        let _, _, plain = raw client "POST" "/v1/generations" (Some "text/plain") None (Some "{\"prompt\":\"x\"}"B)
        Expect.isFalse (plain.Value.GetProperty("detail").GetString().Contains "looks like JSON") "only a form's body is looked at"

/// A UTF-8 byte order mark before a JSON body is skipped, as the configuration files' is (some editors and Windows
/// tools write one; RFC 8259 lets a parser ignore it). Before, every body route answered "'0xEF' is an invalid start of
/// a value" under `$`.
let ``a JSON body that starts with a UTF-8 byte order mark is read as JSON on every body route`` =
    testCase "a JSON body that starts with a UTF-8 byte order mark is read as JSON on every body route" <| fun () ->
        let client = readyClient server.Value
        let bom = Encoding.UTF8.GetPreamble()
        // a body with one bad field: the field is named, so the JSON was read (not `$`)
        for path, body, field in [ "/v1/generations", """{"prompt":"x","steps":0}""", "steps"
                                   "/v1/images/generations", """{"prompt":"x","n":0}""", "n"
                                   "/v1/videos", """{"prompt":"x","num_frames":0}""", "num_frames"
                                   "/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"num_inference_steps":0}""", "num_inference_steps" ] do
            let status, _, problem = raw client "POST" path (Some "application/json") None (Some(Array.append bom (Encoding.UTF8.GetBytes body)))
            Expect.equal status 400 path
            Expect.equal (errorNames problem) [ field ] (path + ": the field is named, the body read")
        let status, _, _ = raw client "POST" "/v1/generations" (Some "application/json") None (Some(Array.append bom "{\"prompt\":\"x\",\"width\":64,\"height\":64,\"steps\":1}"B))
        Expect.equal status 202 "a good body after a byte order mark is accepted"
        // only one mark, at the start: a second is the body's first character, and not JSON
        let status, _, problem = raw client "POST" "/v1/generations" (Some "application/json") None (Some(Array.concat [ bom; bom; "{}"B ]))
        Expect.equal (status, errorNames problem) (400, [ "$" ]) "two marks"

let ``the OpenAI size is WIDTHxHEIGHT in plain digits: ' 64x64', '+64x+64' and '64x64 ' are a 400 naming size`` =
    testCase "the OpenAI size is WIDTHxHEIGHT in plain digits: ' 64x64', '+64x+64' and '64x64 ' are a 400 naming size" <| fun () ->
        let client = readyClient server.Value
        // before: int.TryParse read ' 64x64', '+64x+64', '64x64 ' and '64 x 64' as 64x64 (a generation ran)
        for size in [ " 64x64"; "+64x+64"; "64x64 "; "64 x 64"; "64x\u00a064"; "64X64"; "0064x64x" ] do
            let body = sprintf "{\"prompt\":\"a fox\",\"size\":\"%s\",\"steps\":1}" size
            let status, _, problem = raw client "POST" "/v1/images/generations" (Some "application/json") None (Some(Encoding.UTF8.GetBytes body))
            Expect.equal status 400 size
            Expect.equal (errorNames problem) [ "size" ] size
        let status, _, _ = raw client "POST" "/v1/images/generations" (Some "application/json") None (Some "{\"prompt\":\"a fox\",\"size\":\"64x64\",\"steps\":1}"B)
        Expect.equal status 200 "64x64 is a size"

[<Tests>]
let integrationTests =
    testList "integration" [
        testList "ApiFuzzTests" [
            ``fuzzed requests to every route get only documented answers``
            ``after the fuzz run the server is healthy and every accepted generation reaches a final state``
            ``a key of invalid UTF-8 or an unpaired surrogate escape is a 400 naming it, not a 500``
            ``404, 405 and 415 answers are problem+json whatever the Accept header``
            ``problem titles are written alike, an unknown path's and an unknown job's 404 the same``
            ``every problem body carries a type and trace_id as 32 hex digits, as the 202s do, whatever the Accept header``
            ``a job id is plain digits: ' 1' and '+1' are not job 1``
            ``a generation path whose id is not a job id says so in its 404``
            ``a body over Limits:MaxBodyBytes is a 413 and a charset other than UTF-8 a 415, each naming the body``
            ``a JSON body that starts with a UTF-8 byte order mark is read as JSON on every body route``
            ``the OpenAI size is WIDTHxHEIGHT in plain digits: ' 64x64', '+64x+64' and '64x64 ' are a 400 naming size``
        ] |> testSequenced ]
