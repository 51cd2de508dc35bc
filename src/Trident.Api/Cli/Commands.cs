namespace Trident.Api.Cli;

/// <summary>One subcommand of the <c>trident</c> executable.</summary>
public sealed record Command(string Name, string Usage, string Summary, Func<CliArgs, CancellationToken, Task<int>> Run);

/// <summary>
/// The command line: maps a subcommand name to its handler in exactly one place. Each feature
/// contributes its command from its own file.
/// </summary>
public static class Commands
{
    public static IReadOnlyList<Command> All { get; } =
    [
        ServeCommand.Command,
        WorkerCommand.Command,
        ConfigCommand.Command,
        LoadgenCommand.Command,
        BenchCommand.Command,
        ModelsCommand.Command,
        GenerateCommand.Command,
        ProfileCommand.Command,
        SimulateCommand.Command,
        EvaluateCommand.Command,
        ReplayCommand.Command,
    ];

    public static async Task<int> RunAsync(string[] args, CancellationToken ct = default)
    {
        if (args.Length > 0 && args[0] is "help" or "--help" or "-h")
        {
            PrintUsage(Console.Out);
            return 0;
        }
        if (args.Length > 0 && args[0] is "version" or "--version")
        {
            PrintVersion(Console.Out);
            return 0;
        }
        // No command, or only options (host options, as WebApplicationFactory passes them): serve.
        if (args.Length == 0 || args[0].StartsWith("--", StringComparison.Ordinal)) args = [ServeCommand.Command.Name, .. args];
        var command = All.FirstOrDefault(c => c.Name == args[0]);
        if (command is null)
        {
            Console.Error.WriteLine($"trident: unknown command '{args[0]}'");
            PrintUsage(Console.Error);
            return 2;
        }
        try
        {
            return await command.Run(new CliArgs(args.Skip(1)), ct);
        }
        catch (CliException e)
        {
            Console.Error.WriteLine($"trident {command.Name}: invalid arguments");
            foreach (var err in e.Errors) Console.Error.WriteLine($"  {err}");
            Console.Error.WriteLine($"usage: trident {command.Usage}");
            return 2;
        }
    }

    /// <summary>The executable's version and the versions of the libraries it serves with.</summary>
    private static void PrintVersion(TextWriter w)
    {
        static string Of(Type t) =>
            t.Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
                .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion.Split('+')[0]
            ?? t.Assembly.GetName().Version?.ToString() ?? "unknown";
        w.WriteLine($"trident {Of(typeof(Commands))}");
        w.WriteLine($"  ONNX Runtime {Trident.Runtime.Onnx.OrtEnvironment.Version}; OR-Tools {Of(typeof(Google.OrTools.LinearSolver.Solver))}; .NET {Environment.Version}");
    }

    private static void PrintUsage(TextWriter w)
    {
        w.WriteLine("usage: trident <command> [options]");
        w.WriteLine("       trident --version");
        w.WriteLine();
        foreach (var c in All) w.WriteLine($"  {c.Usage}\n      {c.Summary}");
    }
}
