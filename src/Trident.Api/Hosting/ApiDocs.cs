// The API reference: the OpenAPI document (Microsoft.AspNetCore.OpenApi) at /openapi/v1.json and Scalar's page
// over it at /docs. Scalar.AspNetCore serves its script from the assembly (no CDN); its default web fonts and
// its telemetry are turned off, so the page loads nothing from outside the server.
//
// Each route declares its own metadata where it is mapped: WithName (the operation id), WithSummary,
// WithDescription, typed results (Results<Ok<T>, …>, which document 200/202 bodies and the 400
// ValidationProblem) and ProducesProblem for every other error status it can answer (problem+json) — or
// ProducesValidationProblem where the answer names fields (413 and 415 name `$`, the whole body); every /v1
// route's 400 is declared by the query check (QueryParameters). Every problem schema names trace_id, which every
// problem carries (Problems.Complete). The request and response examples are added here, by operation id (see Apply).

using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace Trident.Api.Hosting;

/// <summary>The OpenAPI document and the /docs page.</summary>
public static class ApiDocs
{
    /// <summary>Where the OpenAPI document is served.</summary>
    public const string DocumentPath = "/openapi/v1.json";

    /// <summary>The document's security scheme of the API keys (present when the server has keys).</summary>
    public const string BearerScheme = "bearer";

    /// <summary>The document's scheme of the key in an event stream's query (<c>?api_key=KEY</c>), the alternative
    /// to <see cref="BearerScheme"/> on those routes (present when the server has keys).</summary>
    public const string QueryKeyScheme = "api_key_query";

    /// <summary>Where the API reference page is served.</summary>
    public const string PagePath = "/docs";

    /// <summary>The OpenAPI document, with the server's description and the examples.</summary>
    public static IServiceCollection AddTridentApiDocs(this IServiceCollection services)
    {
        services.AddOpenApi(o =>
        {
            // HEAD is GET without the body (HeadRequests): the document lists each route once, as GET
            var byDocument = o.ShouldInclude;
            o.ShouldInclude = description => !HttpMethods.IsHead(description.HttpMethod ?? "") && byDocument(description);
            o.AddDocumentTransformer((document, context, _) =>
            {
                // with API keys the /v1 operations say so, and the /docs page asks for the key to try them
                if (context.ApplicationServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<Trident.Api.Options.TridentOptions>>().Value.Auth.ApiKeys.Length > 0)
                {
                    document.Components ??= new OpenApiComponents();
                    document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
                    document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
                    {
                        Type = SecuritySchemeType.Http,
                        Scheme = "bearer",
                        Description = "One of the server's API keys (Trident:Auth:ApiKeys), as 'Authorization: Bearer KEY'.",
                    };
                    document.Components.SecuritySchemes[QueryKeyScheme] = new OpenApiSecurityScheme
                    {
                        Type = SecuritySchemeType.ApiKey,
                        In = ParameterLocation.Query,
                        Name = ApiKeys.QueryParameter,
                        Description = "One of the server's API keys in the query, taken by the event streams only (a browser's EventSource cannot set headers).",
                    };
                    foreach (var (path, item) in document.Paths)
                        if (ApiKeys.Protects(new PathString(path)) && item.Operations is { } operations)
                            foreach (var operation in operations.Values)
                            {
                                // requirements in a list are alternatives: the bearer header, or on an event stream the query key
                                operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, document)] = [] }];
                                if (ApiKeys.IsEventStream(new PathString(path)))
                                    operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(QueryKeyScheme, document)] = [] });
                            }
                }
                document.Info.Title = "Trident";
                document.Info.Description =
                    "Stage-level serving of diffusion pipelines. Every error answer is application/problem+json; a 400 names each bad field. " +
                    "Jobs carry a trace_id (W3C) of their OpenTelemetry trace. Every GET route but the event streams answers HEAD too (headers only).";
                return Task.CompletedTask;
            });
            o.AddOperationTransformer((operation, _, _) =>
            {
                Apply(operation);
                return Task.CompletedTask;
            });
            // every problem carries trace_id (Problems.Complete), which the framework's ProblemDetails schemas do not name
            o.AddSchemaTransformer((schema, context, _) =>
            {
                if (typeof(Microsoft.AspNetCore.Mvc.ProblemDetails).IsAssignableFrom(context.JsonTypeInfo.Type)) AddTraceId(schema);
                return Task.CompletedTask;
            });
        });
        return services;
    }

    /// <summary>Maps the document and the page.</summary>
    public static IEndpointRouteBuilder MapTridentApiDocs(this IEndpointRouteBuilder app)
    {
        app.MapOpenApi(DocumentPath);
        // the options are read per request, not here: reading them while the app is built validates them, and a bad key
        // would then escape serve's own list of problems (exit 2) as an unhandled exception
        app.MapScalarApiReference(PagePath, (o, context) =>
        {
            var keyed = context.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<Trident.Api.Options.TridentOptions>>().Value.Auth.ApiKeys.Length > 0;
            o.WithTitle("Trident API")
                .WithOpenApiRoutePattern("/openapi/{documentName}.json")
                .DisableDefaultFonts()
                .DisableTelemetry();
            // with keys the page's "try it" starts on the bearer key (the query key is for browsers' event streams)
            if (keyed) o.AddPreferredSecuritySchemes([BearerScheme]);
        });
        return app;
    }

    // Examples are files (OpenApi/Examples, embedded): {operation id}.request.json for the request body and
    // {operation id}.{status}.json (or .txt for text bodies) for a response, taken from real answers of the tiny
    // pipeline's server. A problem+json answer without a file of its own gets the problem the API writes for
    // that status (its title and status; a detail as Problems.cs words it).
    private static readonly Dictionary<string, JsonNode> Files = LoadExamples();

    private static Dictionary<string, JsonNode> LoadExamples()
    {
        var assembly = typeof(ApiDocs).Assembly;
        var files = new Dictionary<string, JsonNode>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ExamplePrefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            var text = new StreamReader(stream).ReadToEnd();
            var key = name[ExamplePrefix.Length..];
            files[Path.GetFileNameWithoutExtension(key)] = key.EndsWith(".json", StringComparison.Ordinal) ? JsonNode.Parse(text)! : JsonValue.Create(text);
        }
        return files;
    }

    /// <summary>The resource-name prefix of the example files.</summary>
    public const string ExamplePrefix = "openapi-example:";

    // Operations whose 202 answer carries a Location header (TypedResults.Accepted with the job's status URL).
    private static readonly HashSet<string> AcceptedWithLocation = new(StringComparer.Ordinal) { "CreateGeneration", "CancelGeneration" };

    private static void Apply(OpenApiOperation operation)
    {
        var id = operation.OperationId ?? "";
        if (operation.RequestBody?.Content is { } body && Files.TryGetValue($"{id}.request", out var request))
            foreach (var media in body.Values) media.Example = request.DeepClone();
        if (operation.Responses is null) return;
        foreach (var (status, response) in operation.Responses)
        {
            if (response is OpenApiResponse r)
            {
                if (status is "429" or "503") AddHeader(r, "Retry-After", JsonSchemaType.Integer,
                    "Seconds to wait before trying again (a whole number ≥ 1): for a 429 the queue's predicted drain time; for a 503 "
                    + "the drain time left while the server shuts down, else a poll interval of 5 s (starting, or a cluster with "
                    + "no device). A 503 after a failed start has none.");
                if (status == "202" && AcceptedWithLocation.Contains(id)) AddHeader(r, "Location", JsonSchemaType.String,
                    "The job's status URL, /v1/generations/{id}.");
            }
            if (response.Content is not { } content) continue;
            foreach (var (type, media) in content)
            {
                if (Files.TryGetValue($"{id}.{status}", out var example)) media.Example = example.DeepClone();
                else if (type == "application/problem+json" && int.TryParse(status, out var code)) media.Example = ProblemExample(code);
            }
        }
    }

    // a problem schema's trace_id: the request's W3C trace id, as the 202s and job statuses carry it
    private static void AddTraceId(OpenApiSchema schema)
    {
        schema.Properties ??= new Dictionary<string, IOpenApiSchema>(StringComparer.Ordinal);
        schema.Properties[Trident.Api.Endpoints.Problems.TraceIdProperty] = new OpenApiSchema
        {
            Type = JsonSchemaType.String,
            Pattern = "^[0-9a-f]{32}$",
            Description = "The request's W3C trace id (32 hex digits): its OpenTelemetry trace, and the trace of every log line about it.",
        };
    }

    private static void AddHeader(OpenApiResponse response, string name, JsonSchemaType type, string description)
    {
        response.Headers ??= new Dictionary<string, IOpenApiHeader>(StringComparer.Ordinal);
        response.Headers[name] = new OpenApiHeader { Description = description, Schema = new OpenApiSchema { Type = type } };
    }

    // A problem as Problems.cs writes it for that status (its title and a detail of its words), completed as every
    // problem is (Problems.Complete: type and a trace_id of 32 hex digits).
    private static JsonNode ProblemExample(int status)
    {
        var (title, detail) = status switch
        {
            404 => ("Not found", "no generation 7 (never accepted, deleted, or evicted after its retention time)"),
            409 => ("Conflict", "generation 7 is diffusing; its result is not ready"),
            413 => ("Request body too large", "the body is over 1048576 bytes (Trident:Limits:MaxBodyBytes)"),
            415 => (Trident.Api.Endpoints.Problems.UnsupportedTitle,
                "POST /v1/generations: the body must be application/json (or a +json type), in UTF-8 (Content-Type: 'text/plain')"),
            500 => ("Generation failed", "generation 7 failed: OrtException: …"),
            503 => ("Starting", "the serving runtime is starting (opening the pipeline, profiling this machine)"),
            _ => (Trident.Api.Endpoints.Problems.TitleOf(status), null),
        };
        var problem = new JsonObject
        {
            ["type"] = Trident.Api.Endpoints.Problems.TypeOf(status),
            ["title"] = title,
            ["status"] = status,
            ["detail"] = detail,
        };
        // a body refused before it is read names the whole body
        if (status is 413 or 415) problem["errors"] = new JsonObject { ["$"] = new JsonArray(detail) };
        problem[Trident.Api.Endpoints.Problems.TraceIdProperty] = "4bf92f3577b34da6a3ce929d0e0e4736";
        return problem;
    }
}
