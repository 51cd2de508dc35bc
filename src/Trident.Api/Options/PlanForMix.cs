// Trident:Serving:PlanFor — the request mix the initial placement is planned for, written as text so that it fits
// a command-line key as well as a JSON file: comma-separated classes HEIGHTxWIDTH[xFRAMES][@STEPS][:SHARE], e.g.
// "544x960x33@50:0.2,544x960@50:0.8" (a fifth of 129-frame videos, the rest images). Shares are relative weights
// (normalised; 1 where not given); steps default to the server's default steps. Without it the initial placement is
// planned for requests of the default size and steps, and a server meant for other shapes gets its placement from
// Adjust-on-Dispatch only once such requests arrive (docs/serving.md, "Configuration").

using System.Globalization;

namespace Trident.Api.Options;

/// <summary>One class of the planned mix.</summary>
/// <param name="Text">The entry as written.</param>
/// <param name="Height">Pixels.</param>
/// <param name="Width">Pixels.</param>
/// <param name="Frames">Frames (1: an image).</param>
/// <param name="Steps">Denoising steps; null: the server's default steps.</param>
/// <param name="Share">Relative weight (&gt; 0; the mix's shares are normalised to sum to 1).</param>
public sealed record PlannedClass(string Text, int Height, int Width, int Frames, int? Steps, double Share);

/// <summary>Parses <see cref="ServingOptions.PlanFor"/>.</summary>
public static class PlanForMix
{
    /// <summary>The classes of <paramref name="text"/>; every entry that is not HEIGHTxWIDTH[xFRAMES][@STEPS][:SHARE]
    /// with positive numbers (a positive finite share) goes to <paramref name="errors"/>, naming it, and is left
    /// out; so does an empty list.</summary>
    public static IReadOnlyList<PlannedClass> Parse(string text, List<string> errors)
    {
        var result = new List<PlannedClass>();
        var entries = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var entry in entries)
        {
            var rest = entry;
            double share = 1;
            int? steps = null;
            var problems = new List<string>();
            var colon = rest.IndexOf(':');
            if (colon >= 0)
            {
                if (!(double.TryParse(rest[(colon + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out share) && double.IsFinite(share) && share > 0))
                    problems.Add("the share (after ':') must be a positive number");
                rest = rest[..colon];
            }
            var at = rest.IndexOf('@');
            if (at >= 0)
            {
                if (int.TryParse(rest[(at + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0) steps = n;
                else problems.Add("the steps (after '@') must be a positive whole number");
                rest = rest[..at];
            }
            var fields = rest.Split('x');
            var numbers = fields.Select(f => int.TryParse(f, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 0).ToArray();
            if (!(fields.Length is 2 or 3 && numbers.All(n => n > 0))) problems.Add("the shape must be HEIGHTxWIDTH or HEIGHTxWIDTHxFRAMES with positive numbers");
            if (problems.Count == 0) result.Add(new PlannedClass(entry, numbers[0], numbers[1], fields.Length == 3 ? numbers[2] : 1, steps, share));
            else errors.Add($"'{entry}': {string.Join("; ", problems)} (a class is HEIGHTxWIDTH[xFRAMES][@STEPS][:SHARE], e.g. 544x960x33@50:0.2)");
        }
        if (entries.Length == 0) errors.Add("needs at least one class HEIGHTxWIDTH[xFRAMES][@STEPS][:SHARE]");
        return result;
    }
}
