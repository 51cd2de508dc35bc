using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Trident.Api.Options;

namespace Trident.Api.Cli;

/// <summary>
/// The options of <c>trident serve</c> (and <c>trident worker</c>). Each stands for configuration keys, so the
/// strict configuration binding validates them like any other key:
/// <c>--pipeline DIR</c> = <c>--Trident:Pipeline DIR</c>,
/// <c>--emulate P</c> = <c>--Trident:Devices:Kind emulated --Trident:Emulation:Profile P</c>,
/// <c>--devices N</c> = <c>--Trident:Devices:Count N</c>,
/// <c>--devices-per-node N</c> = <c>--Trident:Devices:DevicesPerNode N</c>,
/// <c>--time-scale S</c> = <c>--Trident:Emulation:TimeScale S</c>; for a cluster <c>--cluster M</c>,
/// <c>--primary H:P</c>, <c>--redis C</c>, <c>--silo-port P</c>, <c>--gateway-port P</c>, <c>--advertise IP</c> =
/// <c>Trident:Cluster:Mode</c>, <c>Primary</c>, <c>Redis</c>, <c>SiloPort</c>, <c>GatewayPort</c>,
/// <c>AdvertisedAddress</c>. Besides them the commands take <c>--urls</c>, <c>--config FILE</c>, any configuration
/// key as <c>--Section:Key value</c> (or <c>--Section:Key=value</c>) and the host's own keys
/// (<c>--environment</c>, <c>--contentRoot</c>, …, as WebApplicationFactory passes them); anything else is an
/// unknown option. A short option and a key it stands for given with different values are a usage error
/// (<see cref="Conflicts"/>).
/// </summary>
public static class ShortServeOptions
{
    /// <summary>--urls: where the server listens (ASP.NET Core's key).</summary>
    public static readonly Option<string> Urls = Opt.String("--urls", "where to listen, e.g. http://127.0.0.1:8080 (ASP.NET Core's urls key)", helpName: "URL");

    /// <summary>--config: a configuration file.</summary>
    public static readonly Option<string> Config = Opt.String("--config", "a JSON configuration file (keys as in docs/trident.example.json; `trident config --defaults` prints them)", helpName: "FILE");

    private static readonly (Option Option, string[] Keys)[] Keys =
    [
        (Opt.String("--pipeline", "the pipeline to serve: a directory (trident-pipeline.json, or a diffusers/Optimum ONNX export) or 'tiny' (Trident:Pipeline)", helpName: "DIR|tiny"), ["Trident:Pipeline"]),
        (Opt.String("--emulate", "serve emulated devices with this reference profile (flux, sd3, cogvideox, hunyuanvideo) instead of running the pipeline (Trident:Devices:Kind emulated, Trident:Emulation:Profile)", helpName: "PROFILE")
            .Completing(Trident.Runtime.Devices.EmulatedProfile.Names), ["Trident:Devices:Kind", "Trident:Emulation:Profile"]),
        (Opt.Int("--devices", "how many devices (Trident:Devices:Count)"), ["Trident:Devices:Count"]),
        (Opt.Int("--devices-per-node", "devices per node (Trident:Devices:DevicesPerNode)"), ["Trident:Devices:DevicesPerNode"]),
        (Opt.Double("--time-scale", "emulated devices only (--emulate): real seconds per emulated second, a stage takes its predicted time × this, e.g. 0.05 runs 20× faster (Trident:Emulation:TimeScale)"), ["Trident:Emulation:TimeScale"]),
        (Opt.Choice("--cluster", "cluster membership (Trident:Cluster:Mode): none, localhost or redis (docs/cluster.md)", null, "none", "localhost", "redis"), ["Trident:Cluster:Mode"]),
        (Opt.String("--primary", "the coordinator's silo endpoint with localhost membership (Trident:Cluster:Primary): an IP address and the silo port, e.g. 127.0.0.1:11111", helpName: "IP:PORT"), ["Trident:Cluster:Primary"]),
        (Opt.String("--redis", "the Redis connection string with redis membership (Trident:Cluster:Redis)", helpName: "HOST:PORT"), ["Trident:Cluster:Redis"]),
        (Opt.Int("--silo-port", "this process's silo port (Trident:Cluster:SiloPort)"), ["Trident:Cluster:SiloPort"]),
        (Opt.Int("--gateway-port", "this process's gateway port (Trident:Cluster:GatewayPort)"), ["Trident:Cluster:GatewayPort"]),
        (Opt.String("--advertise", "the address other silos reach this one at (Trident:Cluster:AdvertisedAddress)", helpName: "IP"), ["Trident:Cluster:AdvertisedAddress"]),
    ];

    /// <summary>The options, to add to a command.</summary>
    public static IEnumerable<Option> All => [.. Keys.Select(k => k.Option), Urls, Config];

    // Keys of the host itself (HostDefaults, WebHostDefaults) that may come on its command line.
    private static readonly HashSet<string> HostKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        "applicationName", "environment", "contentRoot", "webroot", "https_port", "http_ports", "https_ports",
        "hostingStartupAssemblies", "hostingStartupExcludeAssemblies", "preventHostingStartup", "detailedErrors",
        "captureStartupErrors", "shutdownTimeoutSeconds", "suppressStatusMessages", "staticWebAssets",
    };

    /// <summary>The command line for the host: the options as configuration keys (with the values as given),
    /// then <c>--urls</c>, <c>--config</c> and the configuration keys given as such.</summary>
    public static string[] Expand(ParseResult r)
    {
        var result = new List<string>();
        foreach (var (option, keys) in Keys)
        {
            if (r.GetResult(option) is not { Implicit: false } given) continue;
            var value = given.Tokens[^1].Value;
            if (keys.Length == 2) result.AddRange([$"--{keys[0]}", Trident.Api.Options.EmulationOptions.Kind, $"--{keys[1]}", value]);
            else result.AddRange([$"--{keys[0]}", value]);
        }
        if (r.GetValue(Urls) is { } urls) result.AddRange(["--urls", urls]);
        if (r.GetValue(Config) is { } config) result.AddRange(["--config", config]);
        result.AddRange(r.UnmatchedTokens);
        return [.. result];
    }

    /// <summary>Each short option given beside a configuration key it stands for (<c>--devices 2 --Trident:Devices:Count 3</c>)
    /// with another value: one problem naming both, since the host would take one of them silently (the key, given later
    /// on its command line). The same value twice is no problem; values are compared as numbers where both are numbers
    /// (<c>2</c> and <c>2.0</c>), else as text. <c>--emulate P</c> stands for <c>Trident:Devices:Kind emulated</c> and
    /// <c>Trident:Emulation:Profile P</c>; configuration keys are compared ignoring case, as configuration reads them.</summary>
    public static IEnumerable<string> Conflicts(ParseResult r)
    {
        var given = Entries(r.UnmatchedTokens).Where(e => e is { Key: not null, Value: not null }).Select(e => (Key: e.Key!, Value: e.Value!)).ToList();
        foreach (var (option, keys) in Keys)
        {
            if (r.GetResult(option) is not { Implicit: false, Tokens.Count: > 0 } result) continue;
            var value = result.Tokens[^1].Value;
            for (var i = 0; i < keys.Length; i++)
            {
                // --emulate P sets Devices:Kind to emulated and Emulation:Profile to P
                var meant = keys.Length == 2 && i == 0 ? Trident.Api.Options.EmulationOptions.Kind : value;
                foreach (var (key, other) in given.Where(g => string.Equals(g.Key, keys[i], StringComparison.OrdinalIgnoreCase)))
                    if (!SameValue(meant, other))
                        yield return $"{option.Name}: {option.Name} {value} sets {keys[i]} to {meant}, but --{key} {other} sets it to {other}: give one of them, or the same value";
            }
        }
    }

    private static bool SameValue(string a, string b) =>
        string.Equals(a, b, StringComparison.Ordinal)
        || (double.TryParse(a, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var x)
            && double.TryParse(b, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var y) && x == y);

    /// <summary><paramref name="tokens"/> read as the host's command-line configuration reads them: <c>--Key=VALUE</c>
    /// (Value after the first <c>=</c>), <c>--Key VALUE</c> (the next token when it does not start with <c>--</c>),
    /// <c>--Key</c> with no value (Value null), or a token that is no key at all (Key null). <see cref="Conflicts"/> and
    /// <see cref="UnknownTokens"/> read the same entries.</summary>
    private static IEnumerable<(string? Key, string? Value, string Token)> Entries(IReadOnlyList<string> tokens)
    {
        for (var i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (!t.StartsWith("--", StringComparison.Ordinal) || t.Length <= 2) yield return (null, null, t);
            else if (t.IndexOf('=') is var equals and > 0) yield return (t[2..equals], t[(equals + 1)..], t);
            else if (i + 1 < tokens.Count && !tokens[i + 1].StartsWith("--", StringComparison.Ordinal)) yield return (t[2..], tokens[++i], t);
            else yield return (t[2..], null, t);
        }
    }

    /// <summary>The configuration keys among <paramref name="tokens"/> (<c>--Trident:Section:Key VALUE</c>) that are not keys
    /// of <see cref="TridentOptions"/>: each an error, as the configuration check would report it after the command line
    /// is accepted. Said beside the command line's other errors, so one run lists every mistake of it.</summary>
    public static IEnumerable<string> UnknownKeys(IReadOnlyList<string> tokens)
    {
        var given = Entries(tokens)
            .Where(e => e.Key is not null && e.Value is not null
                && e.Key.StartsWith(TridentOptions.Section + ":", StringComparison.OrdinalIgnoreCase))
            .Select(e => new KeyValuePair<string, string?>(e.Key!, e.Value));
        var config = new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(given).Build();
        return StrictBinding.Problems(config.GetSection(TridentOptions.Section), new TridentOptions())
            .Where(p => p.Unknown)
            .Select(p => $"{p.Message} (from the command line)");
    }

    /// <summary>The tokens left over that are neither a configuration key with its value nor a host key: each an error.</summary>
    public static IEnumerable<string> UnknownTokens(IReadOnlyList<string> tokens)
    {
        var entries = Entries(tokens).ToList();
        // WebApplicationFactory passes its settings as --Key=value, each section on the way too, empty
        // ("--Trident=" before "--Trident:Limits:MaxWidth=…"): a section of a given key is no unknown option
        bool Section(string key) => entries.Any(e => e.Key?.StartsWith(key + ":", StringComparison.OrdinalIgnoreCase) == true);
        foreach (var (key, value, token) in entries)
        {
            if (key is null) yield return $"'{token}': unexpected argument";
            else if (!key.Contains(':') && !HostKeys.Contains(key) && !(token.EndsWith('=') && Section(key)))
                yield return $"--{key}: unknown option (a configuration key is --Section:Key VALUE, e.g. --Trident:Serving:QueueCapacity 8)";
            else if (value is null) yield return $"--{key}: needs a value";
        }
    }
}
