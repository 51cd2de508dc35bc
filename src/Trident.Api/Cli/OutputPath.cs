// Output paths of the commands (--out, --lp, --write-trace, standard output), treated alike: before any long work a
// command checks each path it will write (Check: its folder, or the nearest existing folder above it when the command
// creates the folders, is a folder this process can create files in; else a usage error, exit 2, with the other bad
// options), and every write goes through Write, so a failure while writing (disk full, a file made read-only
// meanwhile, /dev/full as standard output) is one line naming the path and the reason, exit 1 — never an unhandled
// exception with a stack trace.

namespace Trident.Api.Cli;

/// <summary>A command could not write one of its outputs; the message names the output (option and path, or
/// standard output) and the reason. <see cref="Commands.RunAsync"/> prints it and exits with code 1.</summary>
public sealed class OutputException(string message, Exception inner) : IOException(message, inner);

/// <summary>Checks and writes of a command's output paths.</summary>
public static class OutputPath
{
    /// <summary>Adds a usage error to <paramref name="errors"/> unless <paramref name="path"/> can be written: a file
    /// path (<paramref name="directory"/> false) must not be a folder, and its folder must exist (or, with
    /// <paramref name="create"/>, the nearest existing folder above it, the command creating the rest) and take new
    /// files — tried by creating and deleting a file there. Nothing is checked when <paramref name="path"/> is null
    /// (the option was not given).</summary>
    /// <param name="option">The option that names the path (<c>--out</c>), for the message.</param>
    /// <param name="path">The path given.</param>
    /// <param name="directory">Whether the path is a folder the command writes files into.</param>
    /// <param name="create">Whether the command creates missing folders on the way.</param>
    /// <param name="errors">Where the problem goes.</param>
    public static void Check(string option, string? path, bool directory, bool create, CliErrors errors)
    {
        if (path is null) return;
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            errors.Add($"{option}: '{path}' is not a valid path ({e.Message})");
            return;
        }
        if (!directory && Directory.Exists(full))
        {
            errors.Add($"{option}: '{full}' is a folder; give a file path");
            return;
        }
        if (directory && File.Exists(full))
        {
            errors.Add($"{option}: '{full}' is a file; give a folder");
            return;
        }
        var folder = directory ? full : Path.GetDirectoryName(full) ?? full;
        var existing = folder;
        while (!Directory.Exists(existing))
        {
            if (File.Exists(existing))
            {
                errors.Add($"{option}: cannot write '{full}': '{existing}' is a file, not a folder");
                return;
            }
            if (!create)
            {
                errors.Add($"{option}: cannot write '{full}': the folder '{folder}' does not exist");
                return;
            }
            existing = Path.GetDirectoryName(existing);
            if (existing is null) return;
        }
        var probe = Path.Combine(existing, $".trident-write-check-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using var _ = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            errors.Add($"{option}: cannot write '{full}': no file can be created in '{existing}' ({Reason(e, probe)})");
        }
    }

    /// <summary><paramref name="path"/> as an absolute path with every symbolic link on it followed and each <c>.</c> and
    /// <c>..</c> taken as the file system takes it (after a link, <c>..</c> is the parent of the link's target), as
    /// realpath(3) does; the part of the path that does not exist is kept as written (its <c>..</c> taken lexically).
    /// A path whose links do not end (a loop) is returned as <see cref="Path.GetFullPath(string)"/> gives it.</summary>
    public static string Real(string path)
    {
        var absolute = Path.IsPathFullyQualified(path) ? path : Path.Combine(Directory.GetCurrentDirectory(), path);
        return Real(absolute, 0) ?? Path.GetFullPath(absolute);
    }

    private static string? Real(string absolute, int links)
    {
        var root = Path.GetPathRoot(absolute) ?? "/";
        var current = root;
        foreach (var part in absolute[root.Length..].Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".") continue;
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? current;
                continue;
            }
            var next = Path.Combine(current, part);
            if (new FileInfo(next).LinkTarget is { } target)
            {
                // 40: the kernel's own limit of links followed in one lookup
                if (links >= 40) return null;
                var resolved = Real(Path.IsPathFullyQualified(target) ? target : Path.Combine(current, target), links + 1);
                if (resolved is null) return null;
                next = resolved;
            }
            current = next;
        }
        return current.Length > root.Length ? current.TrimEnd(Path.DirectorySeparatorChar) : current;
    }

    /// <summary>Runs <paramref name="write"/>, which writes <paramref name="path"/>; an I/O failure becomes an
    /// <see cref="OutputException"/> naming <paramref name="option"/>, the path and the reason.</summary>
    public static void Write(string option, string path, Action write)
    {
        try
        {
            write();
        }
        catch (Exception e) when (e is IOException and not OutputException or UnauthorizedAccessException)
        {
            throw Failed(option, path, e);
        }
    }

    /// <summary><see cref="Write(string, string, Action)"/> for an asynchronous write.</summary>
    public static async Task WriteAsync(string option, string path, Func<Task> write)
    {
        try
        {
            await write();
        }
        catch (Exception e) when (e is IOException and not OutputException or UnauthorizedAccessException)
        {
            throw Failed(option, path, e);
        }
    }

    private static OutputException Failed(string option, string path, Exception e)
    {
        var full = Path.GetFullPath(path);
        return new OutputException($"could not write {option} '{full}': {Reason(e, full)}", e);
    }

    // The exception's message without the path it repeats ("Access to the path '/proc/x' is denied.").
    private static string Reason(Exception e, string path) =>
        System.Text.RegularExpressions.Regex.Replace(e.Message, @"\s*:?\s*'" + System.Text.RegularExpressions.Regex.Escape(path) + "'", "").Trim();

    /// <summary>Standard output that reports a failed write (a closed pipe, <c>/dev/full</c>) as an
    /// <see cref="OutputException"/> naming standard output.</summary>
    public sealed class GuardedWriter(TextWriter inner) : TextWriter
    {
        /// <inheritdoc />
        public override System.Text.Encoding Encoding => inner.Encoding;

        /// <inheritdoc />
        public override IFormatProvider FormatProvider => inner.FormatProvider;

        /// <inheritdoc />
        [System.Diagnostics.CodeAnalysis.AllowNull]
        public override string NewLine { get => inner.NewLine; set => inner.NewLine = value!; }

        private static void Guard(Action write)
        {
            try
            {
                write();
            }
            catch (IOException e) when (e is not OutputException)
            {
                throw new OutputException($"could not write to standard output: {e.Message}", e);
            }
        }

        /// <inheritdoc />
        public override void Write(char value) => Guard(() => inner.Write(value));

        /// <inheritdoc />
        public override void Write(string? value) => Guard(() => inner.Write(value));

        /// <inheritdoc />
        public override void Write(char[] buffer, int index, int count) => Guard(() => inner.Write(buffer, index, count));

        /// <inheritdoc />
        public override void WriteLine(string? value) => Guard(() => inner.WriteLine(value));

        /// <inheritdoc />
        public override void Flush() => Guard(inner.Flush);
    }
}
