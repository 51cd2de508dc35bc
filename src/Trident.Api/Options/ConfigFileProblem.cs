// Says what is wrong with a JSON configuration file. The configuration loader (Microsoft.Extensions.Configuration.Json)
// says only "Failed to load configuration from file '…'" (its inner exception at best "Could not parse the JSON file."
// or "A duplicate key '…' was found."), so the file is read again here, as the loader reads it (comments skipped,
// trailing commas allowed), to name the line, the position and the parser's reason; and the keys of one object, at any
// depth, that are the same configuration key — configuration keys are case-insensitive, so "serving" and "Serving" are
// one section. The loader refuses those only where they give one value twice; objects whose keys do not collide it
// merges silently, so every file that loads is read here too (serve and worker: appsettings.json of the content root
// and the --config file; config --check). Different sources (a file, environment variables, the command line) give a
// key in any case by design: the later source wins, whatever the case (docs/serving.md).

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
        var inner = error.InnerException is { } i ? $" ({i.Message})" : "";
        return Find(path) ?? $"{path}: {error.Message}{inner}";
    }

    /// <summary>The line for configuration file <paramref name="path"/>, which exists but cannot be opened (no read
    /// permission, a socket), with the reason (<paramref name="error"/>, the exception of the open: the configuration
    /// loader opens the file outside its own error handling). Serve, worker and config --check say it alike.</summary>
    public static string Unreadable(string path, Exception error) => $"'{path}' cannot be read: {error.Message}";

    /// <summary>What is wrong with JSON configuration file <paramref name="path"/>, or null when nothing is: the line,
    /// the position and the parser's reason when it is not JSON (as the loader reads it: comments skipped, trailing
    /// commas allowed); else the keys of one object, at any depth, that are one configuration key — spelt the same,
    /// or differing only by case. The loader refuses such keys only when they reach one value twice
    /// (<c>"serving": {"QueueCapacity": 8}</c> and <c>"Serving": {"QueueCapacity": 9}</c>); objects whose keys do not
    /// collide (<c>"serving": {"QueueCapacity": 8}</c>, <c>"Serving": {"RoundPeriodMs": 50}</c>, or <c>"Trident"</c>
    /// and <c>"trident"</c> at the top) it merges into one section without a word, so they are found here.</summary>
    public static string? Find(string path)
    {
        byte[] bytes;
        try
        {
            // decoded as the loader decodes it (a StreamReader: UTF-8 unless a byte order mark says UTF-16 or UTF-32, the
            // mark skipped), so a file it loads — one an editor saved with a BOM — is read here too, not refused at byte 1
            bytes = Encoding.UTF8.GetBytes(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unreadable(path, e);
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
        return clashes.Count > 0 ? $"{path}: {string.Join("; ", clashes)}" : null;
    }

    /// <summary>Checks the JSON files among <paramref name="configuration"/>'s sources that exist (appsettings.json and
    /// appsettings.{Environment}.json in the content root, a <c>--config</c> file) with <see cref="Find"/>: they have
    /// loaded, so only keys one object gives twice can be wrong.</summary>
    /// <exception cref="InvalidDataException">naming each file's problem.</exception>
    public static void ThrowIfAny(Microsoft.Extensions.Configuration.IConfigurationBuilder configuration, string prefix = "")
    {
        var problems = new List<string>();
        foreach (var source in configuration.Sources.OfType<Microsoft.Extensions.Configuration.Json.JsonConfigurationSource>())
            if (source.Path is { } p && source.FileProvider?.GetFileInfo(p) is { Exists: true, PhysicalPath: { } file } && Find(file) is { } problem)
                problems.Add(prefix + problem);
        if (problems.Count > 0) throw new InvalidDataException(string.Join(Environment.NewLine + "  ", problems));
    }

    /// <summary>The file a configuration loader's <see cref="InvalidDataException"/> names ("Failed to load configuration
    /// from file '…'."), when it names one that exists; else null.</summary>
    public static string? FileOf(Exception error)
    {
        var m = error.Message;
        var (from, to) = (m.IndexOf('\''), m.LastIndexOf('\''));
        return from >= 0 && to > from + 1 && m[(from + 1)..to] is var path && File.Exists(path) ? path : null;
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
