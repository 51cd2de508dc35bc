// API keys: with Trident:Auth:ApiKeys set, every request to a /v1 route must present one of the keys as
// `Authorization: Bearer KEY` — what the OpenAI clients send for their api_key, and what vLLM's and TGI's
// `--api-key` servers check — or it is a 401 problem with `WWW-Authenticate: Bearer`. The web view's event stream
// (GET /v1/view/events) also takes the key as the query parameter `api_key`, because a browser's EventSource cannot
// set headers. /health, /ready, /metrics, the OpenAPI document, its page and the web view's page stay open (no job
// data; probes and scrapers need no key). CORS preflights are answered before this check (BrowserClients), as the
// Fetch standard sends them without credentials. Keys are compared in constant time.

using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Trident.Api.Options;

namespace Trident.Api.Hosting;

/// <summary>The API-key check of the /v1 routes.</summary>
public static class ApiKeys
{
    /// <summary>The query parameter the web view's event stream may carry the key in.</summary>
    public const string QueryParameter = "api_key";

    /// <summary>The path of the one route that takes the key in its query.</summary>
    public const string ViewEventsPath = "/v1/view/events";

    /// <summary>Whether a request's path is under the key check (the /v1 routes).</summary>
    public static bool Protects(PathString path) => path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase);

    /// <summary>The key a request presents: its bearer token, or on the view's event stream its <c>api_key</c> query
    /// parameter; null when it presents none.</summary>
    public static string? Presented(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return authorization["Bearer ".Length..].Trim();
        if (request.Path.Equals(ViewEventsPath, StringComparison.OrdinalIgnoreCase) && request.Query.TryGetValue(QueryParameter, out var key))
            return key.ToString();
        return null;
    }

    /// <summary>Whether <paramref name="key"/> is one of <paramref name="keys"/>, compared in constant time per key.</summary>
    public static bool Accepts(IReadOnlyList<string> keys, string key)
    {
        var presented = Encoding.UTF8.GetBytes(key);
        var accepted = false;
        foreach (var k in keys) accepted |= CryptographicOperations.FixedTimeEquals(presented, Encoding.UTF8.GetBytes(k));
        return accepted;
    }

    /// <summary>Answers a /v1 request without an accepted key with a 401 problem when <c>Trident:Auth:ApiKeys</c>
    /// names keys (nothing otherwise).</summary>
    public static WebApplication UseTridentApiKeys(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<TridentOptions>>();
        app.Use(async (http, next) =>
        {
            var keys = options.Value.Auth.ApiKeys;
            if (keys.Length == 0 || !Protects(http.Request.Path) || Presented(http.Request) is { } key && Accepts(keys, key))
            {
                await next(http);
                return;
            }
            http.Response.Headers.WWWAuthenticate = "Bearer";
            var detail = Presented(http.Request) is null
                ? "this server requires an API key: send 'Authorization: Bearer KEY' (a key of Trident:Auth:ApiKeys; the OpenAI clients send their api_key so)"
                : "the API key is not one of this server's (Trident:Auth:ApiKeys)";
            await TypedResults.Problem(detail, statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized").ExecuteAsync(http);
        });
        return app;
    }
}
