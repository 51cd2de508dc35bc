// The `trident` executable. `trident <command> …` runs a command of Cli/Commands.cs; `trident serve`, a bare
// `trident`, and host options alone (as WebApplicationFactory passes them) serve HTTP with the web
// application composed below: configuration, logging, options, the serving runtime, the routes.

using Trident.Api.Cli;
using Trident.Api.Endpoints;
using Trident.Api.Hosting;

/// <summary>Entry point and composition root.</summary>
public partial class Program
{
    /// <summary>Runs a command (serve by default).</summary>
    public static Task<int> Main(string[] args) => Commands.RunAsync(args);

    /// <summary>The HTTP server, composed from each feature's registrations.</summary>
    public static WebApplication BuildServer(string[] args)
    {
        var builder = TridentHosting.CreateBuilder(args);
        builder.AddTridentConfiguration(args);
        builder.AddTridentLogging();
        builder.AddTridentCluster();
        builder.AddTridentTelemetry();
        builder.Services.AddTridentOptions();
        builder.Services.AddTridentServing();
        builder.Services.AddTridentApi();

        var app = builder.Build();
        app.UseTridentCors();
        app.UseTridentRequestLogging();
        app.UseTridentApiKeys();
        app.UseExceptionHandler();
        app.UseStatusCodePages(Problems.WriteStatusPage);
        // every route, in one group that answers HEAD on its GET routes (HeadRequests) and a query parameter a /v1 GET or
        // DELETE route does not take with a 400 (QueryParameters)
        var routes = app.MapGroup("");
        routes.AnswerHeadAsGet();
        routes.CheckQueryParameters();
        routes.MapHealth();
        routes.MapGenerations();
        routes.MapImages();
        routes.MapVideos();
        routes.MapOpenAiCompat();
        routes.MapCluster();
        routes.MapView();
        routes.MapMetrics();
        routes.MapTridentApiDocs();
        return app;
    }
}
