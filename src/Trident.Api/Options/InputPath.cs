namespace Trident.Api.Options;

/// <summary>How a file the user named for reading (a configuration, a profile, a trace) is said to be unusable.</summary>
public static class InputPath
{
    /// <summary>Why <paramref name="path"/>, which is not a file, cannot be read as one: "'PATH' is a folder; give a
    /// WHAT" when it is a folder, else "the WHAT 'PATH' does not exist".</summary>
    /// <param name="path">The path as the user gave it (or made full by the caller).</param>
    /// <param name="what">What was expected, e.g. "profile file".</param>
    public static string NotAFile(string path, string what) =>
        Directory.Exists(path) ? $"'{path}' is a folder; give a {what}" : $"the {what} '{path}' does not exist";
}
