// API keys: with Trident:Auth:ApiKeys set, every request to a /v1 route must present one of the keys as
// `Authorization: Bearer KEY` — what the OpenAI clients send for their api_key, and what vLLM's and TGI's
// `--api-key` servers check — or it is a 401 problem with `WWW-Authenticate: Bearer`. The event streams (the web
// view's GET /v1/view/events and a job's GET /v1/generations/{id}/events) also take the key as the query parameter
// `api_key`, because a browser's EventSource cannot set headers. /health, /ready, /metrics, the OpenAPI document,
// its page and the web view's page stay open (no job data; probes and scrapers need no key). CORS preflights are answered before this check (BrowserClients), as the
// Fetch standard sends them without credentials. Keys are compared in constant time.

using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Trident.Api.Options;

namespace Trident.Api.Hosting;

/// <summary>The API-key check of the /v1 routes.</summary>
public static class ApiKeys
{
    /// <summary>The query parameter the event streams may carry the key in.</summary>
    public const string QueryParameter = "api_key";

    /// <summary>The web view's event stream (it and the jobs' streams take the key in their query).</summary>
    public const string ViewEventsPath = "/v1/view/events";

    /// <summary>Whether a request's path is under the key check (the /v1 routes).</summary>
    public static bool Protects(PathString path) => path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase);

    /// <summary>The key a request presents: its bearer token, or on an event stream its <c>api_key</c> query
    /// parameter; null when it presents none.</summary>
    public static string? Presented(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return authorization["Bearer ".Length..].Trim();
        if (IsEventStream(request.Path) && request.Query.TryGetValue(QueryParameter, out var key))
            return key.ToString();
        return null;
    }

    /// <summary>Whether a path is one of the event streams a browser's EventSource reads (the web view's, a job's
    /// <c>/v1/generations/{id}/events</c>): the routes that take the key in their query.</summary>
    public static bool IsEventStream(PathString path) =>
        path.Equals(ViewEventsPath, StringComparison.OrdinalIgnoreCase)
        || path.StartsWithSegments("/v1/generations", StringComparison.OrdinalIgnoreCase, out var rest)
           && rest.Value is { } r && r.EndsWith("/events", StringComparison.Ordinal) && r.Count(c => c == '/') == 2;

    /// <summary>Whether <paramref name="key"/> is one of <paramref name="keys"/>, compared in constant time per key.</summary>
    public static bool Accepts(IReadOnlyList<string> keys, string key)
    {
        var presented = Encoding.UTF8.GetBytes(key);
        var accepted = false;
        foreach (var k in keys) accepted |= CryptographicOperations.FixedTimeEquals(presented, Encoding.UTF8.GetBytes(k));
        return accepted;
    }

    /// <summary>The warning for a server that listens beyond this machine with no API key, or null: anyone who
    /// reaches such an address can submit and cancel jobs and read every result.</summary>
    /// <param name="addresses">The addresses the server listens on (Kestrel's, e.g. <c>http://0.0.0.0:8080</c>).</param>
    /// <param name="keys">The configured API keys.</param>
    public static string? ExposedWithoutKeys(IEnumerable<string> addresses, IReadOnlyList<string> keys)
    {
        if (keys.Count > 0) return null;
        var open = addresses.Where(a => !IsLoopback(a)).ToList();
        return open.Count == 0 ? null
            : $"listening on {string.Join(", ", open)} with no API key (Trident:Auth:ApiKeys): anyone who reaches it can submit and cancel jobs " +
              "and read every result; set keys, or listen on 127.0.0.1 behind a proxy that authenticates";
    }

    // an address only this machine reaches: a loopback IP or localhost (0.0.0.0, [::], * and + are every interface)
    private static bool IsLoopback(string address)
    {
        var host = address.Contains("://", StringComparison.Ordinal) ? address[(address.IndexOf("://", StringComparison.Ordinal) + 3)..] : address;
        host = host.Split('/')[0];
        host = host.StartsWith('[') ? host[1..host.IndexOf(']')] : host.Split(':')[0];
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || System.Net.IPAddress.TryParse(host, out var ip) && System.Net.IPAddress.IsLoopback(ip);
    }

    /// <summary>Answers a /v1 request without an accepted key with a 401 problem when <c>Trident:Auth:ApiKeys</c>
    /// names keys (nothing otherwise); warns at start when the server listens beyond this machine without keys.</summary>
    public static WebApplication UseTridentApiKeys(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<TridentOptions>>();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features
                .Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses ?? [];
            if (ExposedWithoutKeys(addresses, options.Value.Auth.ApiKeys) is { } warning)
                app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Trident.Startup").LogWarning("{Warning:l}", warning);
        });
        app.Use(async (http, next) =>
        {
            var keys = options.Value.Auth.ApiKeys;
            var guarded = keys.Length > 0 && Protects(http.Request.Path);
            var presented = guarded ? Presented(http.Request) : null;
            if (!guarded || presented is not null && Accepts(keys, presented))
            {
                await next(http);
                return;
            }
            http.Response.Headers.WWWAuthenticate = "Bearer";
            var detail = presented is null
                ? "this server requires an API key: send 'Authorization: Bearer KEY' (a key of Trident:Auth:ApiKeys; the OpenAI clients send their api_key so)"
                : "the API key is not one of this server's (Trident:Auth:ApiKeys)";
            await TypedResults.Problem(detail, statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized").ExecuteAsync(http);
        });
        return app;
    }
}
