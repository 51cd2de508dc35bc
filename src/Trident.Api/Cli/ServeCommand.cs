using System.CommandLine;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident serve</c>: the HTTP server on the bundled tiny pipeline (or a configured one), one CPU device
/// per core, bound to 127.0.0.1:8080. Every option is a configuration key for ASP.NET Core's command-line
/// provider (<c>--urls http://127.0.0.1:9000</c>, <c>--Trident:Serving:QueueCapacity 8</c>); <c>--config
/// file.json</c> adds a configuration file.
/// </summary>
public static class ServeCommand
{
    /// <summary>The command.</summary>
    public static Command Command { get; } = Build();

    private static Command Build()
    {
        var c = new Command("serve",
            "serve the HTTP API (the default when no command is given). Every configuration key can be given as "
            + "--Section:Key VALUE (e.g. --Trident:Serving:QueueCapacity 8; docs/serving.md lists them); the options below are short forms");
        foreach (var o in ShortServeOptions.All) c.Add(o);
        return c.With(Run);
    }

    private static async Task<int> Run(ParseResult args, CancellationToken ct)
    {
        WebApplication app;
        try
        {
            app = Program.BuildServer(ShortServeOptions.Expand(args));
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException or FormatException)
        {
            // --config names a file that does not exist or is not JSON: a configuration error, not a crash
            Console.Error.WriteLine("trident serve: invalid configuration (docs/serving.md lists every key):");
            Console.Error.WriteLine($"  {e.Message}{(e.InnerException is { } inner ? $" ({inner.Message})" : "")}");
            return 2;
        }
        if (UrlProblems(app.Configuration["urls"]) is { Count: > 0 } badUrls)
        {
            // refused here: Kestrel would fail to bind only after the serving runtime started, and abort the process
            Console.Error.WriteLine("trident serve: invalid --urls (e.g. http://127.0.0.1:8080; several separated by ';'):");
            foreach (var problem in badUrls) Console.Error.WriteLine($"  {problem}");
            return 2;
        }
        try
        {
            // validated before the host starts, so a bad configuration is this list and exit 2, not the host's
            // start-up failure with a stack trace in the log; with the problems that need the pipeline, where its
            // manifest is had without starting anything (before the server listens, not the start's failure after it
            // listened, exit 1), those the keys' problems leave checkable included: config --check's list
            foreach (var warning in Trident.Api.Options.ConfigSources.Warnings(app.Configuration))
                Console.Error.WriteLine($"trident serve: warning: {warning}");
            if (ConfigCommand.CheckWithNotes(app.Configuration).Problems is { Count: > 0 } problems)
            {
                Console.Error.WriteLine("trident serve: invalid configuration (docs/serving.md lists every key):");
                foreach (var problem in problems) Console.Error.WriteLine($"  {problem}");
                return 2;
            }
            var options = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Trident.Api.Options.TridentOptions>>().Value;
            // a job store another server holds (running, or still starting: it takes the lock before its start-up work)
            // stops this one before it listens; the start takes the lock for good (ServerHost), so a race is refused there
            if (options.Storage.Resolve(Trident.Runtime.Execution.PipelineLocator.FindHome()) is { } storage)
                try
                {
                    Trident.Runtime.Serving.JobJournal.CheckFree(storage);
                }
                catch (Trident.Runtime.Serving.JobStoreInUseException e)
                {
                    Console.Error.WriteLine($"trident serve: {e.Message}");
                    return 1;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // what the configuration's check could not see (its lock file cannot be opened): before it listens, naming the key
                    Console.Error.WriteLine("trident serve: invalid configuration (docs/serving.md lists every key):");
                    Console.Error.WriteLine($"  {Trident.Api.Options.TridentOptions.Section}:Storage:Directory '{storage}' cannot hold the job store: {e.Message}");
                    return 2;
                }
            var host = app.Services.GetRequiredService<Trident.Api.Hosting.ServerHost>();
            await app.RunAsync(ct);
            if (host.Failure is { } failure)
            {
                Console.Error.WriteLine($"trident serve: the serving runtime could not start: {failure}");
                return 1;
            }
            return 0;
        }
        catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            Console.Error.WriteLine($"trident serve: {e.Message} (another server is running there; pass --urls http://127.0.0.1:PORT)");
            return 1;
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException e)
        {
            Console.Error.WriteLine("trident serve: invalid configuration (docs/serving.md lists every key):");
            foreach (var failure in e.Failures) Console.Error.WriteLine($"  {failure}");
            return 2;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // the host could not start (an address it cannot bind, …): the reason and exit 1, not an abort
            var cluster = new Trident.Api.Options.TridentOptions();
            Trident.Api.Options.StrictBinding.Bind(app.Configuration.GetSection(Trident.Api.Options.TridentOptions.Section), cluster);
            Console.Error.WriteLine($"trident serve: the server could not start: {Trident.Api.Hosting.ClusterSilo.StartFailure(e, cluster.Cluster)}");
            return 1;
        }
    }

    /// <summary>What is wrong with each address of an ASP.NET Core <c>urls</c> value (';'-separated), parsed as Kestrel
    /// parses them (BindingAddress): not an address, a scheme other than http or https, a port outside 0–65535. Empty
    /// when every address is fine or none is given.</summary>
    public static List<string> UrlProblems(string? urls)
    {
        var problems = new List<string>();
        foreach (var url in (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                var address = Microsoft.AspNetCore.Http.BindingAddress.Parse(url);
                if (address.IsNamedPipe || address.IsUnixPipe) continue;
                if (address.Scheme is not ("http" or "https")) problems.Add($"'{url}': the scheme must be http or https");
                else if (address.Port is < 0 or > 65535) problems.Add($"'{url}': the port must be between 0 and 65535");
            }
            catch (FormatException e)
            {
                problems.Add($"'{url}': {e.Message}");
            }
        }
        return problems;
    }
}
