using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;

namespace Trident.Api.Cli;

/// <summary>
/// The command line, on System.CommandLine: every command with its typed options (each documented by
/// <c>--help</c>), <c>--version</c>, shell completion (<c>trident completion bash</c>, over the library's
/// <c>[suggest]</c> directive). A command line with bad options is refused before anything runs, with one
/// error naming every bad option (unknown options included) and exit code 2. Each feature contributes its
/// command from its own file; this is the one place that lists them.
/// </summary>
public static class Commands
{
    /// <summary>Every command, in the order <c>--help</c> lists them.</summary>
    public static IReadOnlyList<Command> All { get; } =
    [
        ServeCommand.Command,
        WorkerCommand.Command,
        ConfigCommand.Command,
        LoadgenCommand.Command,
        BenchCommand.Command,
        ModelsCommand.Command,
        InspectCommand.Command,
        GenerateCommand.Command,
        ProfileCommand.Command,
        SimulateCommand.Command,
        EvaluateCommand.Command,
        CapacityCommand.Command,
        ReplayCommand.Command,
        CompletionCommand.Command,
    ];

    private static readonly RootCommand Root = BuildRoot();

    private static RootCommand BuildRoot()
    {
        var root = new RootCommand(
            "Trident: serves diffusion pipelines (text-to-image and text-to-video) on a cluster of devices, and simulates, "
            + "profiles and benchmarks their scheduling. Without a command (or with only options) it serves HTTP: `trident` = `trident serve`.");
        foreach (var c in All) root.Add(c);
        foreach (var v in root.Options.OfType<VersionOption>()) v.Action = new VersionAction();
        Reject(root);
        return root;
    }

    // Unknown tokens are reported by Errors (each unknown option named once, its value not reported again) in
    // place of the library's one-error-per-token messages; serve and worker pass configuration keys on (checked by
    // ShortServeOptions).
    private static void Reject(Command c)
    {
        c.TreatUnmatchedTokensAsErrors = !PassesConfigurationKeys(c);
        // values are converted (and range-checked) as the command line is parsed, not when first read, so every
        // bad value is among the parse errors
        c.Validators.Add(result =>
        {
            foreach (var o in result.Command.Options)
            {
                if (result.GetResult(o) is { } r)
                    try { r.GetValueOrDefault<object>(); } catch (InvalidOperationException) { /* recorded as a parse error */ }
                // the library skips its own check of required options once a value failed to convert
                else if (o.Required) result.AddError($"{o.Name}: required");
            }
        });
        foreach (var sub in c.Subcommands) Reject(sub);
    }

    /// <summary>Parses and runs a command line (serve when it names no command); exit code 2 for bad usage, 1 for an
    /// output (a file, or standard output) that could not be written (<see cref="OutputException"/>) and for a device
    /// whose execution provider cannot be added (<see cref="Trident.Runtime.Onnx.ExecutionProviderException"/>: CUDA
    /// without its libraries), each one line without a stack trace.</summary>
    public static async Task<int> RunAsync(string[] args, CancellationToken ct = default)
    {
        // No command, or only options (host options, as WebApplicationFactory passes them): serve.
        if (args.Length == 0 || (args[0].StartsWith('-') && args[0] is not ("--help" or "-h" or "-?" or "--version")))
            args = [ServeCommand.Command.Name, .. args];
        var parse = Root.Parse(args);
        var config = new InvocationConfiguration
        {
            Output = Console.Out, Error = Console.Error, EnableDefaultExceptionHandler = false,
            // Ctrl+C is the host's (serve drains) and each command's own: no forced exit by the library
            ProcessTerminationTimeout = null,
        };
        var command = parse.CommandResult.Command;
        // --help, --version, [suggest]: they run whatever else the command line holds
        var special = parse.Action is { } action && action is not ParseErrorAction && action != command.Action;
        // standard output that cannot be written (a closed pipe, /dev/full) is reported as a command's other outputs
        // are; a server's output is its log, which Serilog guards itself
        var stdout = Console.Out;
        var guarded = special || (command != ServeCommand.Command && command != WorkerCommand.Command);
        if (guarded)
        {
            Console.SetOut(new OutputPath.GuardedWriter(stdout));
            config.Output = Console.Out;
        }
        try
        {
            var code = special ? await parse.InvokeAsync(config, ct) : await RunCommandAsync(parse, command, args, config, ct);
            if (guarded) Console.Out.Flush();
            return code;
        }
        catch (OutputException e)
        {
            // an output path (or standard output) that could not be written: one line, no stack trace
            Console.Error.WriteLine($"trident{(command is RootCommand ? "" : " " + Path(command))}: {e.Message}");
            return 1;
        }
        catch (Trident.Runtime.Onnx.ExecutionProviderException e)
        {
            // a device whose execution provider cannot be added (--device cuda:N without CUDA's libraries): one line
            // naming the device and the libraries, exit 1, as serve says it of its configured devices
            Console.Error.WriteLine($"trident{(command is RootCommand ? "" : " " + Path(command))}: {e.Message}");
            return 1;
        }
        finally
        {
            if (guarded) Console.SetOut(stdout);
        }
    }

    private static async Task<int> RunCommandAsync(ParseResult parse, Command command, string[] args, InvocationConfiguration config, CancellationToken ct)
    {
        if (command is RootCommand)
        {
            Console.Error.WriteLine($"trident: unknown command '{args[0]}' (known: {string.Join(", ", All.Select(c => c.Name))}; see trident --help)");
            return 2;
        }
        if (command.Action is null)
        {
            Console.Error.WriteLine($"trident {Path(command)}: which one? {string.Join(", ", command.Subcommands.Select(c => c.Name))} (see trident {Path(command)} --help)");
            return 2;
        }
        var errors = Errors(parse);
        try
        {
            if (errors.Count > 0) throw new CliException(errors);
            return await parse.InvokeAsync(config, ct);
        }
        catch (CliException e)
        {
            Console.Error.WriteLine($"trident {Path(command)}: invalid arguments");
            // an error of several lines (a pipeline manifest's problems under --pipeline) is indented under its option
            foreach (var err in e.Errors) Console.Error.WriteLine($"  {err.ReplaceLineEndings("\n    ")}");
            Console.Error.WriteLine($"see: trident {Path(command)} --help");
            return 2;
        }
    }

    /// <summary>Parses <paramref name="args"/> as the options of <paramref name="command"/> alone (for commands
    /// that run others, and for tests).</summary>
    /// <exception cref="CliException">listing every bad option.</exception>
    public static ParseResult Parse(Command command, IReadOnlyList<string> args)
    {
        _ = Root; // the commands' validators are installed with the root
        var parse = Root.Parse([.. Path(command).Split(' '), .. args]);
        var errors = Errors(parse);
        if (errors.Count > 0) throw new CliException(errors);
        return parse;
    }

    /// <summary>Every problem of a parsed command line, one line each, each naming its option: bad values, missing
    /// required options, unknown options (not the values that follow them) and stray arguments.</summary>
    public static IReadOnlyList<string> Errors(ParseResult parse)
    {
        var errors = new List<string>();
        foreach (var e in parse.Errors)
        {
            // the library's "unrecognized" error of an unmatched token: reported below, once per unknown option
            if (e.SymbolResult is CommandResult && !e.Message.StartsWith('-') && parse.UnmatchedTokens.Any(t => e.Message.Contains($"'{t}'", StringComparison.Ordinal)))
                continue;
            if (e.SymbolResult is OptionResult { Option: var o } r)
            {
                if (o.Required && r.IdentifierToken is null) errors.Add($"{o.Name}: required");
                else if (r.IdentifierToken is not null && r.Tokens.Count == 0 && o.Arity.MinimumNumberOfValues > 0) errors.Add($"{o.Name}: needs a value");
                else errors.Add(e.Message.StartsWith(o.Name + ":", StringComparison.Ordinal) ? e.Message : $"{o.Name}: {e.Message}");
            }
            else errors.Add(e.Message);
        }
        if (!PassesConfigurationKeys(parse.CommandResult.Command))
        {
            var afterUnknownOption = false;
            foreach (var t in parse.UnmatchedTokens)
            {
                if (t.StartsWith('-') && t.Length > 1 && !double.TryParse(t, out _))
                {
                    errors.Add($"{t.Split('=')[0]}: unknown option");
                    afterUnknownOption = !t.Contains('=');
                }
                else if (afterUnknownOption) afterUnknownOption = false;
                else errors.Add($"'{t}': unexpected argument");
            }
        }
        else
        {
            errors.AddRange(ShortServeOptions.UnknownTokens(parse.UnmatchedTokens));
            errors.AddRange(ShortServeOptions.Conflicts(parse));
            // the configuration check runs only once the command line is accepted: with other mistakes in it, its
            // misspelt keys are named now too, so one run lists them all
            if (errors.Count > 0) errors.AddRange(ShortServeOptions.UnknownKeys(parse.UnmatchedTokens));
        }
        return [.. errors.Distinct()];
    }

    private static bool PassesConfigurationKeys(Command c) => c == ServeCommand.Command || c == WorkerCommand.Command;

    /// <summary>"bench soak" for a subcommand, "simulate" for a command.</summary>
    private static string Path(Command c) =>
        c.Parents.OfType<Command>().FirstOrDefault() is { } parent and not RootCommand ? $"{Path(parent)} {c.Name}" : c.Name;

    /// <summary>The executable's version and the versions of the libraries it serves with.</summary>
    private sealed class VersionAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            static string Of(Type t) =>
                t.Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
                    .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion.Split('+')[0]
                ?? t.Assembly.GetName().Version?.ToString() ?? "unknown";
            var w = parseResult.InvocationConfiguration.Output;
            w.WriteLine($"trident {Of(typeof(Commands))}");
            w.WriteLine($"  ONNX Runtime {Trident.Runtime.Onnx.OrtEnvironment.Version}; OR-Tools {Of(typeof(Google.OrTools.LinearSolver.Solver))}; .NET {Environment.Version}");
            return 0;
        }
    }
}

/// <summary>An action of a command: runs with the parsed command line; a <see cref="CliException"/> it throws is
/// bad usage (exit code 2, every problem listed).</summary>
public static class CommandAction
{
    /// <summary><paramref name="command"/> with <paramref name="run"/> as its action.</summary>
    public static Command With(this Command command, Func<ParseResult, CancellationToken, Task<int>> run)
    {
        command.SetAction(run);
        return command;
    }

    /// <summary><paramref name="command"/> with a synchronous <paramref name="run"/> as its action.</summary>
    public static Command With(this Command command, Func<ParseResult, CancellationToken, int> run)
    {
        command.SetAction((r, ct) => Task.FromResult(run(r, ct)));
        return command;
    }
}

/// <summary>Problems found after parsing (a file that does not parse, options that contradict each other),
/// gathered so that one error lists them all.</summary>
public sealed class CliErrors
{
    private readonly List<string> _errors = [];

    /// <summary>Adds a problem, worded <c>--option: what is wrong</c>.</summary>
    public void Add(string message) => _errors.Add(message);

    /// <summary>Whether any problem was found.</summary>
    public bool Any => _errors.Count > 0;

    /// <summary>The problems found so far.</summary>
    public IReadOnlyList<string> List => _errors;

    /// <summary>Throws <see cref="CliException"/> listing every problem, if there is one.</summary>
    public void ThrowIfAny()
    {
        if (_errors.Count > 0) throw new CliException([.. _errors]);
    }
}

/// <summary>A command line that cannot be run, with every problem found.</summary>
public sealed class CliException(IReadOnlyList<string> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    /// <summary>Each problem, one line each.</summary>
    public IReadOnlyList<string> Errors { get; } = errors;
}
