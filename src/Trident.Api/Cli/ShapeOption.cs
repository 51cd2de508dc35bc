using System.Globalization;
using Trident.Scheduling;

namespace Trident.Api.Cli;

/// <summary>The <c>--shapes</c> text of <c>profile</c> (HEIGHTxWIDTH, its frames apart in <c>--frames</c>) and of
/// <c>simulate</c>/<c>capacity</c> (HEIGHTxWIDTH or HEIGHTxWIDTHxFRAMES): one parser for both.</summary>
internal static class ShapeOption
{
    /// <summary>Comma-separated shapes, each number positive (frames 1 where not given); every bad part, or no part
    /// at all, goes to <paramref name="errors"/> as a <c>--shapes</c> error and is left out.</summary>
    public static List<Shape> Parse(string text, bool withFrames, CliErrors errors)
    {
        var result = new List<Shape>();
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var part in parts)
        {
            var fields = part.Split('x');
            var numbers = fields.Select(f => int.TryParse(f, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 0).ToArray();
            if ((fields.Length == 2 || (withFrames && fields.Length == 3)) && numbers.All(n => n > 0))
                result.Add(new Shape(numbers[0], numbers[1], fields.Length == 3 ? numbers[2] : 1));
            else errors.Add(withFrames
                ? $"--shapes: '{part}' is not HEIGHTxWIDTH or HEIGHTxWIDTHxFRAMES with positive numbers (e.g. 256x256 or 544x960x17)"
                : $"--shapes: '{part}' is not HEIGHTxWIDTH (e.g. 256x256)");
        }
        if (parts.Length == 0) errors.Add(withFrames ? "--shapes: needs at least one shape" : "--shapes: needs at least one HEIGHTxWIDTH");
        return result;
    }
}
