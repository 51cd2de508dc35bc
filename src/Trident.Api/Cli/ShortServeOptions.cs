namespace Trident.Api.Cli;

/// <summary>
/// Short options of <c>trident serve</c> (and <c>trident worker</c>) that stand for configuration keys, so
/// the strict configuration binding validates them like any other key:
/// <c>--emulate P</c> = <c>--Trident:Devices:Kind emulated --Trident:Emulation:Profile P</c>,
/// <c>--devices N</c> = <c>--Trident:Devices:Count N</c>,
/// <c>--devices-per-node N</c> = <c>--Trident:Devices:DevicesPerNode N</c>,
/// <c>--time-scale S</c> = <c>--Trident:Emulation:TimeScale S</c>; for a cluster <c>--cluster M</c>,
/// <c>--primary H:P</c>, <c>--redis C</c>, <c>--silo-port P</c>, <c>--gateway-port P</c>, <c>--advertise IP</c> =
/// <c>Trident:Cluster:Mode</c>, <c>Primary</c>, <c>Redis</c>, <c>SiloPort</c>, <c>GatewayPort</c>,
/// <c>AdvertisedAddress</c>. Both <c>--name value</c> and
/// <c>--name=value</c> are accepted; every other argument is passed on unchanged.
/// </summary>
public static class ShortServeOptions
{
    private static readonly Dictionary<string, string[]> Keys = new(StringComparer.Ordinal)
    {
        ["emulate"] = ["Trident:Devices:Kind", "Trident:Emulation:Profile"],
        ["devices"] = ["Trident:Devices:Count"],
        ["devices-per-node"] = ["Trident:Devices:DevicesPerNode"],
        ["time-scale"] = ["Trident:Emulation:TimeScale"],
        ["cluster"] = ["Trident:Cluster:Mode"],
        ["primary"] = ["Trident:Cluster:Primary"],
        ["redis"] = ["Trident:Cluster:Redis"],
        ["silo-port"] = ["Trident:Cluster:SiloPort"],
        ["gateway-port"] = ["Trident:Cluster:GatewayPort"],
        ["advertise"] = ["Trident:Cluster:AdvertisedAddress"],
    };

    /// <summary><paramref name="args"/> with the short options replaced by their configuration keys.</summary>
    /// <exception cref="CliException">when a short option has no value.</exception>
    public static string[] Expand(IReadOnlyList<string> args)
    {
        var result = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            var name = a.StartsWith("--", StringComparison.Ordinal) ? a[2..] : "";
            string? value = null;
            if (name.IndexOf('=') is var eq and >= 0) (name, value) = (name[..eq], name[(eq + 1)..]);
            if (!Keys.TryGetValue(name, out var keys))
            {
                result.Add(a);
                continue;
            }
            if (value is null && i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) value = args[++i];
            if (string.IsNullOrEmpty(value)) throw new CliException([$"--{name}: needs a value"]);
            if (name == "emulate")
            {
                result.AddRange([$"--{keys[0]}", Trident.Api.Options.EmulationOptions.Kind, $"--{keys[1]}", value]);
            }
            else result.AddRange([$"--{keys[0]}", value]);
        }
        return [.. result];
    }
}
