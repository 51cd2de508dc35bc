using System.Globalization;

namespace Trident.Api.Cli;

/// <summary>
/// Command-line options of one command: <c>--name value</c> pairs, <c>--flag</c> switches and
/// positional words. Typed getters collect every problem; <see cref="ThrowIfInvalid"/> reports them
/// all at once, naming each option, so a user fixes a command line in one go.
/// </summary>
public sealed class CliArgs
{
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);
    private readonly List<string> _errors = new();

    public IReadOnlyList<string> Positional { get; }

    /// <summary>The arguments as given (for commands that hand them on, such as <c>serve</c>).</summary>
    public IReadOnlyList<string> Raw { get; }

    public CliArgs(IEnumerable<string> args)
    {
        var positional = new List<string>();
        var list = args.ToList();
        Raw = list;
        for (var i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                var name = a[2..];
                string? value = null;
                var eq = name.IndexOf('=');
                if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
                else if (i + 1 < list.Count && !list[i + 1].StartsWith("--", StringComparison.Ordinal)) value = list[++i];
                if (_options.ContainsKey(name)) _errors.Add($"--{name}: given more than once");
                _options[name] = value;
            }
            else positional.Add(a);
        }
        Positional = positional;
    }

    public bool Has(string name) { _read.Add(name); return _options.ContainsKey(name); }

    public bool Flag(string name)
    {
        _read.Add(name);
        if (!_options.TryGetValue(name, out var v)) return false;
        if (v is null || v is "true") return true;
        if (v is "false") return false;
        _errors.Add($"--{name}: a switch takes no value (got '{v}')");
        return false;
    }

    public string? String(string name, string? fallback = null)
    {
        _read.Add(name);
        if (!_options.TryGetValue(name, out var v)) return fallback;
        if (v is null) { _errors.Add($"--{name}: needs a value"); return fallback; }
        return v;
    }

    public string Required(string name)
    {
        var v = String(name);
        if (v is null && !_options.ContainsKey(name)) _errors.Add($"--{name}: required");
        return v ?? "";
    }

    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        var s = String(name);
        if (s is null) return fallback;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) { _errors.Add($"--{name}: '{s}' is not an integer"); return fallback; }
        if (v < min || v > max) { _errors.Add($"--{name}: {v} is outside [{min}, {max}]"); return fallback; }
        return v;
    }

    public double Double(string name, double fallback, double min = double.NegativeInfinity, double max = double.PositiveInfinity)
    {
        var s = String(name);
        if (s is null) return fallback;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v)) { _errors.Add($"--{name}: '{s}' is not a number"); return fallback; }
        if (v < min || v > max) { _errors.Add($"--{name}: {v} is outside [{min}, {max}]"); return fallback; }
        return v;
    }

    public ulong ULong(string name, ulong fallback)
    {
        var s = String(name);
        if (s is null) return fallback;
        if (!ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) { _errors.Add($"--{name}: '{s}' is not a non-negative integer"); return fallback; }
        return v;
    }

    /// <summary>A comma-separated list of integers, e.g. <c>--degrees 1,2,4</c>.</summary>
    public IReadOnlyList<int> IntList(string name, IReadOnlyList<int> fallback, int min = 1)
    {
        var s = String(name);
        if (s is null) return fallback;
        var result = new List<int>();
        foreach (var part in s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min) result.Add(v);
            else _errors.Add($"--{name}: '{part}' is not an integer ≥ {min}");
        }
        if (result.Count == 0) _errors.Add($"--{name}: needs at least one value");
        return result;
    }

    public void Error(string message) => _errors.Add(message);

    /// <summary>Throws <see cref="CliException"/> listing every problem, including unknown options.</summary>
    public void ThrowIfInvalid()
    {
        foreach (var name in _options.Keys)
            if (!_read.Contains(name)) _errors.Add($"--{name}: unknown option");
        if (_errors.Count > 0) throw new CliException(_errors);
    }
}

/// <summary>A command line that cannot be run, with every problem found.</summary>
public sealed class CliException(IReadOnlyList<string> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
