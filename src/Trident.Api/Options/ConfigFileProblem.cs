// Says what is wrong with a JSON configuration file the configuration loader refused. The loader
// (Microsoft.Extensions.Configuration.Json) says only "Failed to load configuration from file '…'" (its inner
// exception at best "Could not parse the JSON file." or "A duplicate key '…' was found."), so the file is read again
// here, as the loader reads it (comments skipped, trailing commas allowed), to name the line, the position and the
// parser's reason; and, for a file that parses, the keys of one object that are the same configuration key —
// configuration keys are case-insensitive, so "serving" and "Serving" are one section, and a value given under
// both is a duplicate.

using System.Text;
using System.Text.Json;

namespace Trident.Api.Options;

/// <summary>Why a JSON configuration file does not load, in one line a person can act on.</summary>
public static class ConfigFileProblem
{
    /// <summary>The problem of configuration file <paramref name="path"/>, which the configuration loader refused
    /// with <paramref name="error"/>: the file, then the line and position (both 1-based, the position in bytes
    /// of UTF-8) and the JSON parser's reason; or the keys of one object that differ only by case (or not at all),
    /// with their lines; or, when neither explains it, the loader's own messages.</summary>
    public static string Describe(string path, Exception error)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"{path}: cannot be read: {e.Message}";
        }
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        // the keys seen in each open object (case-insensitive, as configuration keys are), with the line of each
        var objects = new Stack<Dictionary<string, (string Name, long Line)>?>();
        var clashes = new List<string>();
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        objects.Push(new Dictionary<string, (string, long)>(StringComparer.OrdinalIgnoreCase));
                        break;
                    case JsonTokenType.StartArray:
                        objects.Push(null);
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        objects.Pop();
                        break;
                    case JsonTokenType.PropertyName when objects.Peek() is { } keys:
                        var name = reader.GetString()!;
                        var line = LineOf(bytes, reader.TokenStartIndex);
                        if (keys.TryGetValue(name, out var first))
                            clashes.Add(first.Name == name
                                ? $"key '{name}' is given twice in one object (lines {first.Line} and {line})"
                                : $"keys '{first.Name}' (line {first.Line}) and '{name}' (line {line}) differ only by case: configuration keys are "
                                  + "case-insensitive, so they are the same key; write it once");
                        else keys[name] = (name, line);
                        break;
                }
            }
        }
        catch (JsonException e)
        {
            return $"{path}: line {e.LineNumber + 1}, position {e.BytePositionInLine + 1}: {Reason(e.Message)}";
        }
        if (clashes.Count > 0) return $"{path}: {string.Join("; ", clashes)}";
        var inner = error.InnerException is { } i ? $" ({i.Message})" : "";
        return $"{path}: {error.Message}{inner}";
    }

    // 1-based line of a byte offset.
    private static long LineOf(byte[] bytes, long offset)
    {
        long line = 1;
        for (var k = 0L; k < offset && k < bytes.Length; k++)
            if (bytes[k] == (byte)'\n') line++;
        return line;
    }

    // The parser's message without its own "LineNumber: n | BytePositionInLine: m." (0-based, given above 1-based).
    private static string Reason(string message)
    {
        var at = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (at >= 0 ? message[..at] : message).Trim();
    }
}
