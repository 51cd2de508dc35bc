// Cross-origin requests (CORS, the Fetch standard): a web application served from another origin (a UI on
// http://localhost:3000 calling the API on :8080) may call the API only when the server says so in its answers'
// Access-Control-* headers and answers the browser's preflight (OPTIONS) for requests with a JSON body. ASP.NET
// Core's CORS middleware does both; this composes its policy from Trident:Cors. Nothing is allowed by default.

using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Options;
using Trident.Api.Options;

namespace Trident.Api.Hosting;

/// <summary>The CORS policy of <c>Trident:Cors</c>.</summary>
public static class BrowserClients
{
    /// <summary>Response headers a browser script may read besides the CORS-safelisted ones: a 202's status URL,
    /// a 429's or 503's wait, a file's name.</summary>
    public static readonly string[] ExposedHeaders = ["Location", "Retry-After", "Content-Disposition"];

    /// <summary>Sets <paramref name="builder"/> to the policy of <paramref name="cors"/> (which allows at least one
    /// origin): its origins (or any), the API's methods, any request header (an API key's Authorization among them), and
    /// not the browser's credentials mode (the API uses no cookies).</summary>
    public static CorsPolicyBuilder Apply(CorsPolicyBuilder builder, CrossOriginOptions cors)
    {
        if (cors.Origins is ["*"]) builder.AllowAnyOrigin();
        // as browsers write them: a configured "http://localhost:3000/" matched nothing before
        else builder.WithOrigins([.. cors.Normalized()]);
        return builder
            .WithMethods(HttpMethods.Get, HttpMethods.Head, HttpMethods.Post, HttpMethods.Delete)
            .AllowAnyHeader()
            .WithExposedHeaders(ExposedHeaders)
            .SetPreflightMaxAge(TimeSpan.FromSeconds(cors.PreflightMaxAgeSeconds));
    }

    /// <summary>Registers ASP.NET Core's CORS services with the policy of <c>Trident:Cors</c> as the default one (none
    /// when it names no origin). The policy is made when the first request reads it, after the options were
    /// validated at start-up.</summary>
    public static IServiceCollection AddTridentCors(this IServiceCollection services)
    {
        services.AddCors();
        services.AddOptions<Microsoft.AspNetCore.Cors.Infrastructure.CorsOptions>()
            .Configure<IOptions<TridentOptions>>((options, trident) =>
            {
                var cors = trident.Value.Cors;
                if (cors.Origins.Length > 0) options.AddDefaultPolicy(builder => Apply(builder, cors));
            });
        return services;
    }

    /// <summary>Reads the scheme, host and client address a reverse proxy forwards (<c>X-Forwarded-Proto</c>,
    /// <c>-Host</c>, <c>-For</c>) from a proxy on this machine (ASP.NET Core's default known proxies: loopback), so the
    /// URLs the API writes (the images route's <c>url</c> answers) are the ones the client reached; a proxy on another
    /// machine is trusted with ASP.NET Core's own switch <c>ASPNETCORE_FORWARDEDHEADERS_ENABLED=true</c>.</summary>
    public static IServiceCollection AddTridentForwardedHeaders(this IServiceCollection services) =>
        services.Configure<ForwardedHeadersOptions>(o => o.ForwardedHeaders =
            ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto | ForwardedHeaders.XForwardedHost);

    /// <summary>Answers cross-origin requests as <c>Trident:Cors</c> allows (nothing when it names no origin); first
    /// in the pipeline, so error answers (a 400, a 429, a 500 the exception handler writes) carry the headers too and
    /// a browser script can read them.</summary>
    public static WebApplication UseTridentCors(this WebApplication app)
    {
        app.UseForwardedHeaders();
        // With named origins an answer's CORS headers depend on the request's Origin (none without one, or for an
        // origin not allowed), so every answer says so and a shared cache keeps one copy per origin: ASP.NET Core adds
        // "Vary: Origin" only to the cross-origin requests it evaluates, and only for more than one origin. (The
        // options are read per request, after start-up validated them.)
        app.Use((http, next) =>
        {
            var origins = http.RequestServices.GetRequiredService<IOptions<TridentOptions>>().Value.Cors.Origins;
            if (origins.Length > 0 && origins is not ["*"])
                http.Response.OnStarting(() =>
                {
                    if (!http.Response.Headers.Vary.Any(v => v is not null
                            && v.Split(',').Any(f => f.Trim().Equals("Origin", StringComparison.OrdinalIgnoreCase))))
                        http.Response.Headers.Append("Vary", "Origin");
                    return Task.CompletedTask;
                });
            return next(http);
        });
        app.UseCors();
        return app;
    }
}
