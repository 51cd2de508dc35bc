// Where configuration keys come from, and the mistakes of placement the binder cannot see: a configuration file whose
// keys sit beside the "Trident" object instead of inside it ({"Serving": {…}} rather than {"Trident": {"Serving": {…}}}),
// an environment variable spelt with single underscores (Trident_Serving_QueueCapacity, which configuration never reads:
// levels are separated by "__"), and the source (file, environment variable, command line) of each key a problem names.
// `serve` and `config --check` report the same (ConfigCommand.CheckWithNotes, Warnings).

using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.FileProviders;

namespace Trident.Api.Options;

/// <summary>The sources of a configuration's keys, and the problems and warnings of their placement.</summary>
public static class ConfigSources
{
    /// <summary>Top-level keys the host itself (ASP.NET Core, Kestrel, Serilog, the launcher) reads: a configuration
    /// file may give them beside <c>Trident</c> without a warning.</summary>
    public static readonly string[] HostKeys =
    [
        "urls", "http_ports", "https_ports", "https_port", "Logging", "Kestrel", "AllowedHosts", "Serilog", "ConnectionStrings",
        "config", "contentRoot", "environment", "applicationName", "hostBuilder", "DetailedErrors", "ShutdownTimeoutSeconds",
        "HostFilteringOptions", "ForwardedHeaders", "$schema", "OTEL_EXPORTER_OTLP_ENDPOINT", "preventHostingStartup",
        "hostingStartupAssemblies", "hostingStartupExcludeAssemblies", "suppressStatusMessages", "webroot", "detailedErrors",
        "captureStartupErrors", "startupTimeLimit", "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT",
    ];

    /// <summary>The keys directly under section <c>Trident</c> (Serving, Storage, Limits, Devices, Pipeline, …).</summary>
    public static IReadOnlyList<string> TridentKeys { get; } =
        [.. typeof(TridentOptions).GetProperties().Where(p => p.CanWrite).Select(p => p.Name)];

    private static readonly StringComparer Keys = StringComparer.OrdinalIgnoreCase;

    /// <summary>Where <paramref name="key"/> (a full key such as <c>Trident:Serving:QueueCapacty</c>, or a section) is
    /// given: the last source that gives it (the one that wins), as "file /path/trident.json", "environment variable
    /// Trident__Serving__QueueCapacty" or "the command line"; null when the configuration does not say (not a
    /// configuration root, or a source of another kind). <paramref name="environment"/>: the environment's names, read
    /// once for all the problems of one check (null: read now).</summary>
    public static string? SourceOf(IConfiguration configuration, string key, EnvironmentNames? environment = null)
    {
        if (configuration is not IConfigurationRoot root) return null;
        foreach (var provider in root.Providers.Reverse())
        {
            var given = provider.TryGet(key, out _) || provider.GetChildKeys([], key).Any();
            if (given) return Describe(provider, key, environment ?? new());
        }
        return null;
    }

    /// <summary>The names of environment variables (<paramref name="environment"/>'s, or the process's), read the first
    /// time a problem's source needs them and then kept: one check reads the environment once however many problems it
    /// names, and not at all when none comes from it.</summary>
    public sealed class EnvironmentNames(System.Collections.IDictionary? environment = null)
    {
        private string[]? _names;

        /// <summary>The names, in ordinal order.</summary>
        public IReadOnlyList<string> Names =>
            _names ??= [.. (environment ?? Environment.GetEnvironmentVariables()).Keys.OfType<string>().Order(StringComparer.Ordinal)];
    }

    /// <summary>How a person finds <paramref name="provider"/>'s key <paramref name="key"/>; null for a source of
    /// another kind.</summary>
    private static string? Describe(IConfigurationProvider provider, string key, EnvironmentNames environment) => provider switch
    {
        FileConfigurationProvider f => $"file {FilePath(f)}",
        EnvironmentVariablesConfigurationProvider e => EnvironmentName(key, Prefix(e), environment) is { } name ? $"environment variable {name}" : "the environment",
        CommandLineConfigurationProvider => "the command line",
        _ => null,
    };

    private static string FilePath(FileConfigurationProvider f) =>
        f.Source.FileProvider is PhysicalFileProvider p ? Path.Combine(p.Root, f.Source.Path ?? "") : f.Source.Path ?? "?";

    /// <summary>The environment variable that gives <paramref name="key"/> (else one that gives a key under it) to the
    /// environment provider of <paramref name="prefix"/> (the provider reads the variables named with it, and drops it):
    /// <c>Trident__Serving__QueueCapacity</c> for <c>Trident:Serving:QueueCapacity</c> (unprefixed),
    /// <c>ASPNETCORE_Trident__Serving__QueueCapacity</c> (the host's <c>ASPNETCORE_</c> provider); <c>Trident__Serving</c>
    /// (not <c>TRIDENT__SERVING__X</c>, which sorts before it) for <c>Trident:Serving</c>.</summary>
    private static string? EnvironmentName(string key, string prefix, EnvironmentNames environment)
    {
        static string AsKey(string name) => name.Replace("__", ":", StringComparison.Ordinal);
        var names = environment.Names.Where(n => n.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)).ToArray();
        return names.FirstOrDefault(n => Keys.Equals(AsKey(n[prefix.Length..]), key))
            ?? names.FirstOrDefault(n => AsKey(n[prefix.Length..]).StartsWith(key + ":", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The prefix an environment provider reads its variables with: "" for the unprefixed one, <c>DOTNET_</c> and
    /// <c>ASPNETCORE_</c> for the host's. The provider keeps it private; its ToString says it
    /// ("EnvironmentVariablesConfigurationProvider Prefix: 'DOTNET_'"); "" when that does not.</summary>
    private static string Prefix(EnvironmentVariablesConfigurationProvider provider) =>
        System.Text.RegularExpressions.Regex.Match(provider.ToString(), "Prefix: '(.*)'$") is { Success: true } m ? m.Groups[1].Value : "";

    /// <summary><paramref name="message"/> with the source of <paramref name="key"/> appended, where the configuration
    /// tells it: "… (from file /etc/trident.json)".</summary>
    public static string WithSource(IConfiguration configuration, string key, string message, EnvironmentNames? environment = null) =>
        SourceOf(configuration, key, environment) is { } source ? $"{message} (from {source})" : message;

    /// <summary>Top-level keys that are keys of section <c>Trident</c> (<c>Serving</c>, <c>Storage</c>, …) given outside it:
    /// a configuration file's or the command line's (any such key), or an environment variable's that names a key under
    /// one (<c>Serving__QueueCapacity</c>; a variable such as PROFILE alone is someone else's). They would be ignored,
    /// so they are problems, each naming its source and the key meant.</summary>
    public static IReadOnlyList<ConfigProblem> Misplaced(IConfiguration configuration, EnvironmentNames? names = null)
    {
        var problems = new List<ConfigProblem>();
        if (configuration is not IConfigurationRoot root) return problems;
        names ??= new();
        var seen = new HashSet<string>(Keys);
        foreach (var provider in root.Providers.Reverse())
        {
            var environment = provider is EnvironmentVariablesConfigurationProvider;
            foreach (var top in provider.GetChildKeys([], null).Distinct(Keys))
            {
                var meant = TridentKeys.FirstOrDefault(k => Keys.Equals(k, top));
                if (meant is null || (environment && !provider.GetChildKeys([], top).Any()) || !seen.Add(top)) continue;
                var source = Describe(provider, top, names) is { } s ? $" (from {s})" : "";
                problems.Add(new ConfigProblem($"{TridentOptions.Section}:{meant}",
                    $"{top} is outside section {TridentOptions.Section}, so nothing reads it{source}: did you mean {TridentOptions.Section}:{meant}? "
                    + $"(in a JSON file, put it inside the \"{TridentOptions.Section}\" object; in the environment, {TridentOptions.Section}__{meant}__…)",
                    // the Trident keys themselves are as read (their defaults): the checks that need the pipeline still run
                    ValueKnown: true));
            }
        }
        return problems;
    }

    /// <summary>Warnings about keys nothing reads that are no error: a configuration file's top-level key that is neither
    /// <c>Trident</c>, a key of it (<see cref="Misplaced"/>), nor one the host reads (<see cref="HostKeys"/>); and an
    /// environment variable that starts with <c>Trident_</c> (any case) and a key of section Trident (Serving, Profile, …)
    /// but separates levels with single underscores, which configuration ignores (levels are separated by <c>__</c>).</summary>
    public static IReadOnlyList<string> Warnings(IConfiguration configuration, System.Collections.IDictionary? environment = null)
    {
        var warnings = new List<string>();
        if (configuration is IConfigurationRoot root)
            foreach (var file in root.Providers.OfType<FileConfigurationProvider>())
                foreach (var top in file.GetChildKeys([], null).Distinct(Keys).Order(Keys))
                    if (!Keys.Equals(top, TridentOptions.Section) && !TridentKeys.Contains(top, Keys) && !HostKeys.Contains(top, Keys))
                        warnings.Add($"{top} (in file {FilePath(file)}) is not a key Trident or the host reads, and is ignored: Trident's keys go inside the \"{TridentOptions.Section}\" object (docs/serving.md)");
        foreach (var name in (environment ?? Environment.GetEnvironmentVariables()).Keys.OfType<string>().Order(StringComparer.Ordinal))
            if (name.StartsWith(TridentOptions.Section + "_", StringComparison.OrdinalIgnoreCase) && !name.StartsWith(TridentOptions.Section + "__", StringComparison.OrdinalIgnoreCase)
                // a key of section Trident next (Trident_Serving_…, TRIDENT_PROFILE): Trident's own variables (TRIDENT_HOME,
                // TRIDENT_KIT, …) are not configuration keys
                && TridentKeys.Contains(name[(TridentOptions.Section.Length + 1)..].Split('_')[0], Keys))
            {
                var parts = name[(TridentOptions.Section.Length + 1)..].Split('_', StringSplitOptions.RemoveEmptyEntries);
                warnings.Add($"environment variable {name} is ignored: configuration separates levels with double underscores "
                    + $"({TridentOptions.Section}__{string.Join("__", KeyPath(typeof(TridentOptions), parts) ?? [.. parts])})");
            }
        return warnings;
    }

    /// <summary>The key below <paramref name="options"/> that single-underscore <paramref name="parts"/> of a variable's
    /// name mean, spelt as the options spell it: at each level the property whose name is the next parts run together
    /// (the most parts first), a section only while parts are left — PROFILE, CACHE → ProfileCache; SERVING, QUEUE,
    /// CAPACITY → Serving, QueueCapacity. Null when no property fits.</summary>
    private static string[]? KeyPath(Type options, string[] parts)
    {
        for (var n = parts.Length; n >= 1; n--)
        {
            var property = options.GetProperty(string.Concat(parts[..n]),
                System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase);
            if (property is not { CanWrite: true }) continue;
            if (n == parts.Length) return [property.Name];
            var type = property.PropertyType;
            if (type.IsClass && type != typeof(string) && !type.IsArray && KeyPath(type, parts[n..]) is { } rest) return [property.Name, .. rest];
        }
        return null;
    }
}
