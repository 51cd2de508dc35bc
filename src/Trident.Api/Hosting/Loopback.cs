using System.Net;
using System.Net.Sockets;

namespace Trident.Api.Hosting;

/// <summary>The loopback interface, where Trident's own benchmarks, cluster roles and tests bind.</summary>
public static class Loopback
{
    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; the listener is closed before
    /// returning, so another process could take it in between — callers bind it at once).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
