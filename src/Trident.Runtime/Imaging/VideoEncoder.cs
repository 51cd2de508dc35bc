// Videos through Debian's ffmpeg, driven by FFMpegCore: the frames go to ffmpeg's stdin as raw rgb24 (a
// RawVideoPipeSource at the requested frame rate) — never as temporary images — and ffmpeg writes one file:
//   mp4   libx264, yuv420p, -preset veryfast, CRF, -movflags +faststart (the index first, so a player can start
//         before the download ends);
//   webm  libvpx-vp9, yuv420p, constant quality (CRF with -b:v 0), realtime deadline;
//   webp  libwebp_anim (animated WebP), lossy at the requested quality, looping forever.
// The output goes to a temporary file, not a pipe: +faststart rewrites the file's start once the frames are
// written, which needs a seekable output. Every frame is written as given, so the file holds exactly the
// frames and the frame rate the request asked for (the tests read both back with ffprobe / SkiaSharp).

using System.Globalization;
using FFMpegCore;
using FFMpegCore.Pipes;

namespace Trident.Runtime.Imaging;

/// <summary>Encodes frame sequences with ffmpeg.</summary>
public static class VideoEncoder
{
    /// <summary>The ffmpeg executable found on PATH, or null.</summary>
    public static string? FindFfmpeg() => FindOnPath("ffmpeg");

    /// <summary>The ffprobe executable found on PATH, or null.</summary>
    public static string? FindFfprobe() => FindOnPath("ffprobe");

    /// <summary>What to tell a user when ffmpeg is missing.</summary>
    public const string MissingFfmpeg =
        "ffmpeg is not installed (videos are encoded by Debian's ffmpeg): apt-get install -y ffmpeg, or run 'dotnet fsi build.fsx -t setup' as root";

    /// <summary>Encodes <paramref name="frames"/> (all the same size) as <paramref name="format"/> at
    /// <paramref name="framesPerSecond"/> with quality <paramref name="quality"/> (0–100).</summary>
    /// <exception cref="InvalidOperationException">when ffmpeg is missing or fails (its last error lines are in
    /// the message).</exception>
    /// <exception cref="OperationCanceledException">when cancelled.</exception>
    public static async Task<byte[]> EncodeAsync(IReadOnlyList<RgbImage> frames, MediaFormat format, int framesPerSecond, int quality,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frames.Count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(framesPerSecond, 1);
        var (width, height) = (frames[0].Width, frames[0].Height);
        if (frames.Any(f => f.Width != width || f.Height != height))
            throw new ArgumentException("every frame must have the same size", nameof(frames));
        if (FindFfmpeg() is null) throw new InvalidOperationException(MissingFfmpeg);

        var (extension, arguments) = format switch
        {
            MediaFormat.Mp4 => ("mp4", $"-c:v libx264 -pix_fmt yuv420p -preset veryfast -crf {MediaFormats.Crf(format, quality)} -movflags +faststart"),
            MediaFormat.Webm => ("webm", $"-c:v libvpx-vp9 -pix_fmt yuv420p -crf {MediaFormats.Crf(format, quality)} -b:v 0 -deadline realtime -cpu-used 8 -row-mt 1"),
            MediaFormat.Webp => ("webp", $"-c:v libwebp_anim -lossless 0 -quality {quality} -loop 0"),
            _ => throw new ArgumentException($"{MediaFormats.Name(format)} is not a video format", nameof(format)),
        };
        var output = Path.Combine(Path.GetTempPath(), $"trident-{Guid.NewGuid():N}.{extension}");
        try
        {
            var source = new RawVideoPipeSource(frames.Select(f => (IVideoFrame)new Rgb24Frame(f))) { FrameRate = framesPerSecond };
            var result = await FFMpegArguments
                .FromPipeInput(source)
                .OutputToFile(output, overwrite: true, o => o
                    .WithCustomArgument(arguments)
                    .WithCustomArgument("-r " + framesPerSecond.ToString(CultureInfo.InvariantCulture)))
                .WithLogLevel(FFMpegCore.Enums.FFMpegLogLevel.Error)
                .CancellableThrough(cancellationToken)
                .ProcessAsynchronously(throwOnError: false)
                .ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            if (!result.Success)
                throw new InvalidOperationException(
                    $"ffmpeg could not encode {frames.Count} frame(s) of {width}×{height} as {MediaFormats.Name(format)} (exit code {result.ExitCode}): "
                    + string.Join(" | ", result.StandardError.TakeLast(5)));
            return await File.ReadAllBytesAsync(output, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(output);
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(File.Exists);

    /// <summary>One frame as ffmpeg's rawvideo rgb24: the image's bytes as they are.</summary>
    private sealed class Rgb24Frame(RgbImage image) : IVideoFrame
    {
        public int Width => image.Width;
        public int Height => image.Height;
        public string PixelFormat => "rgb24";
        public void Serialize(Stream pipe) => pipe.Write(image.Pixels);
        public Task SerializeAsync(Stream pipe, CancellationToken token) => pipe.WriteAsync(image.Pixels, token).AsTask();
    }
}
