using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Trident.Api.Options;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident config --defaults</c>: prints the annotated configuration file with every key of section
/// <c>Trident</c> and its default (docs/trident.example.json, embedded at build time; a test keeps it equal to
/// the options' defaults). <c>trident config --check FILE</c>: validates a configuration file as <c>serve</c>
/// would (every unknown key and bad value named, and the problems that need the pipeline where its manifest is had
/// without loading models: ServerHost.CheckPipeline; a note says which checks are left to serve's start), with the
/// environment variables as serve reads them (Trident__Serving__QueueCapacity overrides the file's key), each bad key
/// named with its source, keys given outside section Trident refused and other unknown top-level keys and
/// single-underscore Trident_ variables warned about (ConfigSources); exit 0 when it is valid, 2 otherwise. The
/// problems and their count go to stderr, "FILE: valid" to stdout.
/// </summary>
public static class ConfigCommand
{
    /// <summary>The resource name of the embedded example file.</summary>
    public const string ExampleResource = "trident.example.json";

    private static readonly Option<bool> Defaults = Opt.Flag("--defaults", "print every configuration key with its default and what it means (a file to start from)");
    private static readonly Option<string> CheckFile = Opt.String("--check", "check a configuration file as serve would: every unknown key and bad value named; exit 0 when valid, 2 otherwise", helpName: "FILE");

    /// <summary>The command.</summary>
    public static Command Command { get; } = new Command("config",
        "print every configuration key with its default (--defaults), or check a configuration file (--check FILE)") { Defaults, CheckFile }.With(Run);

    /// <summary>The annotated example configuration (JSON with // comments).</summary>
    public static string Example()
    {
        using var stream = typeof(ConfigCommand).Assembly.GetManifestResourceStream(ExampleResource)
            ?? throw new InvalidOperationException($"the resource {ExampleResource} is missing from the build");
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>Every problem of configuration <paramref name="configuration"/>'s section <c>Trident</c>, as
    /// <c>serve</c> reports them at start-up.</summary>
    public static IReadOnlyList<string> Check(IConfiguration configuration) => CheckWithNotes(configuration).Problems;

    /// <summary><see cref="Check"/>'s problems — those of the keys (the validator's), then those that need the pipeline
    /// (ServerHost.CheckPipeline), each check of which runs unless a problem of the keys puts a key it reads in doubt —
    /// and notes on the checks left to <c>serve</c>'s start or not made. <c>serve</c> reports the same list. The names of
    /// the environment's variables (<paramref name="environment"/>'s, or the process's) are read once, for all the
    /// problems' sources.</summary>
    public static (IReadOnlyList<string> Problems, IReadOnlyList<string> Notes) CheckWithNotes(IConfiguration configuration,
        System.Collections.IDictionary? environment = null)
    {
        var options = new TridentOptions();
        StrictBinding.Bind(configuration.GetSection(TridentOptions.Section), options, configuration);
        var found = new TridentOptionsValidator(configuration).Problems(options);
        var pipeline = Trident.Api.Hosting.ServerHost.CheckPipeline(options, configuration, found);
        // each key's problem names the source that gives the key (file, environment variable, command line) where the
        // configuration tells it; keys given outside section Trident are problems too (ConfigSources.Misplaced)
        var names = new ConfigSources.EnvironmentNames(environment);
        return ([.. ConfigSources.Misplaced(configuration, names).Select(p => p.Message),
            .. found.Select(p => ConfigSources.WithSource(configuration, p.Key, p.Message, names)), .. pipeline.Problems], pipeline.Notes);
    }

    private static Task<int> Run(ParseResult args, CancellationToken ct)
    {
        var errors = new CliErrors();
        var defaults = args.GetValue(Defaults);
        var check = args.GetValue(CheckFile);
        if (defaults == (check is not null)) errors.Add("give either --defaults or --check FILE");
        if (check is not null && !File.Exists(check))
            errors.Add($"--check: {InputPath.NotAFile(Path.GetFullPath(check), "configuration file")}");
        errors.ThrowIfAny();
        if (defaults)
        {
            Console.Write(Example());
            return Task.FromResult(0);
        }
        IConfiguration configuration;
        try
        {
            // the environment as serve reads it (after the file: a variable overrides the file's key)
            configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(check!), optional: false, reloadOnChange: false)
                .AddEnvironmentVariables().Build();
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or System.Text.Json.JsonException)
        {
            // the loader names only the file: the line, the position and the reason come from reading it again
            Console.Error.WriteLine($"trident config: not a valid JSON configuration file: {ConfigFileProblem.Describe(check!, e)}");
            return Task.FromResult(2);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // the loader opens the file outside its own error handling: one that exists but cannot be opened (no read
            // permission, a socket) is a bad input like the others, not an unhandled exception
            Console.Error.WriteLine("trident config: " + ConfigFileProblem.Unreadable(Path.GetFullPath(check!), e));
            return Task.FromResult(2);
        }
        // it loaded: keys it gives twice without colliding on one value are merged silently by the loader
        if (ConfigFileProblem.Find(Path.GetFullPath(check!)) is { } fileProblem)
        {
            Console.Error.WriteLine($"trident config: not a valid JSON configuration file: {fileProblem}");
            return Task.FromResult(2);
        }
        var (problems, notes) = CheckWithNotes(configuration);
        foreach (var w in ConfigSources.Warnings(configuration)) Console.Error.WriteLine($"  warning: {w}");
        // the problems and their count on stderr (as the other commands report errors), a valid file's line on stdout
        if (problems.Count > 0) Console.Error.WriteLine($"trident config: {check}: {problems.Count} problem(s):");
        foreach (var p in problems) Console.Error.WriteLine($"  {p}");
        foreach (var n in notes) Console.Error.WriteLine($"  note: {n}");
        if (problems.Count == 0) Console.WriteLine($"{check}: valid");
        return Task.FromResult(problems.Count == 0 ? 0 : 2);
    }
}
