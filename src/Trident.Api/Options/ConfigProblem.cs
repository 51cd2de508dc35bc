// One problem of the configuration, with the key it concerns, so that the checks that need the pipeline
// (ServerHost.CheckPipeline) can tell which of the keys they read are in doubt and run with the rest.

namespace Trident.Api.Options;

/// <summary>One configuration problem: the message a person reads, and the key it concerns.</summary>
/// <param name="Key">The full key (<c>Trident:Serving:SloScale</c>), as the problem names it.</param>
/// <param name="Message">The message, which starts with the key.</param>
/// <param name="Unknown">Whether <paramref name="Key"/> is not a configuration key: a misspelling of any key of its
/// section (or of the sections under it), whose value the options then lack.</param>
/// <param name="ValueKnown">Whether the key's value is read as given and breaks a rule that leaves it usable by the
/// checks that need the pipeline (Serving:PlanFor's classes over the limits); false: the value is in doubt.</param>
public sealed record ConfigProblem(string Key, string Message, bool Unknown = false, bool ValueKnown = false)
{
    /// <summary>Whether this problem puts the value of <paramref name="key"/> (a full key such as
    /// <c>Trident:Limits:MaxWidth</c>) in doubt: it is that key or a section above it, or an unknown key in its
    /// section or in a section above it (a misspelling of it, or of a section on its way). Keys are compared
    /// case-insensitively, as configuration compares them.</summary>
    public bool Concerns(string key)
    {
        if (ValueKnown) return false;
        var c = StringComparison.OrdinalIgnoreCase;
        if (string.Equals(Key, key, c) || key.StartsWith(Key + ":", c)) return true;
        if (!Unknown) return false;
        var at = Key.LastIndexOf(':');
        var section = at < 0 ? "" : Key[..at];
        return section.Length == 0 || key.StartsWith(section + ":", c);
    }
}
