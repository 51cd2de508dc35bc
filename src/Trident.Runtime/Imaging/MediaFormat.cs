// The output file formats and the rules that tie them to a request. Images (one frame) are PNG (default),
// JPEG or WebP, encoded by SkiaSharp (ImageEncoder); videos (several frames) are MP4 (H.264, yuv420p,
// +faststart; default), WebM (VP9) or animated WebP, encoded by Debian's ffmpeg through FFMpegCore
// (VideoEncoder). `output_compression` follows OpenAI's image API: 0–100, 100 (its default) the least lossy;
// it sets the quality of the lossy encoders and is refused for PNG, which is lossless.

using System.Text.Json.Serialization;

namespace Trident.Runtime.Imaging;

/// <summary>A file format of a generation's result.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<MediaFormat>))]
public enum MediaFormat
{
    /// <summary>PNG (lossless), one frame.</summary>
    Png,

    /// <summary>JPEG, one frame.</summary>
    Jpeg,

    /// <summary>WebP: a still image for one frame, an animated WebP for several.</summary>
    Webp,

    /// <summary>MP4: H.264 in yuv420p with the index first (+faststart).</summary>
    Mp4,

    /// <summary>WebM: VP9.</summary>
    Webm,
}

/// <summary>What the client asked of the output file; null members take the defaults.</summary>
/// <param name="Format">The format; null: PNG for an image, MP4 for a video.</param>
/// <param name="Compression">0–100 as OpenAI's <c>output_compression</c> (100 = least lossy); null: the
/// format's default (<see cref="MediaFormats.DefaultQuality"/>).</param>
/// <param name="FramesPerSecond">Frame rate written into a video; null: the server's
/// (<c>Trident:Serving:VideoFramesPerSecond</c>).</param>
public sealed record OutputSpec(MediaFormat? Format = null, int? Compression = null, int? FramesPerSecond = null);

/// <summary>An encoded result: the file's bytes and what it is.</summary>
/// <param name="Bytes">The file.</param>
/// <param name="Format">Its format.</param>
public sealed record EncodedMedia(byte[] Bytes, MediaFormat Format)
{
    /// <summary>Its media (MIME) type.</summary>
    public string MediaType => MediaFormats.MediaType(Format);
}

/// <summary>Names, media types and request rules of <see cref="MediaFormat"/>.</summary>
public static class MediaFormats
{
    /// <summary>Formats a one-frame result may have, by wire name.</summary>
    public static readonly IReadOnlyList<string> ImageNames = ["png", "jpeg", "webp"];

    /// <summary>Formats a video may have, by wire name.</summary>
    public static readonly IReadOnlyList<string> VideoNames = ["mp4", "webm", "webp"];

    /// <summary>Highest frame rate a request may ask for.</summary>
    public const int MaxFramesPerSecond = 120;

    /// <summary>The wire name (lower case, as OpenAI's <c>output_format</c>).</summary>
    public static string Name(MediaFormat format) => format switch
    {
        MediaFormat.Png => "png",
        MediaFormat.Jpeg => "jpeg",
        MediaFormat.Webp => "webp",
        MediaFormat.Mp4 => "mp4",
        MediaFormat.Webm => "webm",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    /// <summary>The format of a wire name (<c>jpg</c> is taken for <c>jpeg</c>); null when unknown.</summary>
    public static MediaFormat? Parse(string? name) => name switch
    {
        "png" => MediaFormat.Png,
        "jpeg" or "jpg" => MediaFormat.Jpeg,
        "webp" => MediaFormat.Webp,
        "mp4" => MediaFormat.Mp4,
        "webm" => MediaFormat.Webm,
        _ => null,
    };

    /// <summary>The file extension (without the dot).</summary>
    public static string Extension(MediaFormat format) => format == MediaFormat.Jpeg ? "jpg" : Name(format);

    /// <summary>The format a file extension (without the dot, any case) names; null when none.</summary>
    public static MediaFormat? FromExtension(string extension) => Parse(extension.ToLowerInvariant());

    /// <summary>The media (MIME) type.</summary>
    public static string MediaType(MediaFormat format) => format switch
    {
        MediaFormat.Png => "image/png",
        MediaFormat.Jpeg => "image/jpeg",
        MediaFormat.Webp => "image/webp",
        MediaFormat.Mp4 => "video/mp4",
        MediaFormat.Webm => "video/webm",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    /// <summary>Whether the format is encoded by ffmpeg as a video (for WebP: when there are several frames).</summary>
    public static bool IsVideo(MediaFormat format, int frames) => format is MediaFormat.Mp4 or MediaFormat.Webm || (format == MediaFormat.Webp && frames > 1);

    /// <summary>The format a result of <paramref name="frames"/> frames gets under <paramref name="spec"/>.</summary>
    public static MediaFormat Resolve(OutputSpec? spec, int frames) =>
        spec?.Format ?? (frames > 1 ? MediaFormat.Mp4 : MediaFormat.Png);

    /// <summary>The encoder quality (0–100) when the request gives no <c>output_compression</c>: 100 for JPEG and
    /// still WebP (OpenAI's default), libwebp's 75 for animated WebP, and for MP4/WebM the quality whose CRF is
    /// the encoder's own default (libx264: 23, <see cref="Crf"/>; libvpx-vp9: 31, as its guide advises for
    /// 720p).</summary>
    public static int DefaultQuality(MediaFormat format, int frames) => format switch
    {
        MediaFormat.Jpeg => 100,
        MediaFormat.Webp => frames > 1 ? 75 : 100,
        MediaFormat.Mp4 => 55, // CRF round(51 × 0.45) = 23
        MediaFormat.Webm => 51, // CRF round(63 × 0.49) = 31
        _ => 100,
    };

    /// <summary>The constant rate factor of a video quality q (0–100): round(max × (100 − q) / 100), where max
    /// is the encoder's worst CRF (libx264 51, libvpx-vp9 63).</summary>
    public static int Crf(MediaFormat format, int quality) =>
        (int)Math.Round((format == MediaFormat.Webm ? 63 : 51) * (100 - quality) / 100.0, MidpointRounding.AwayFromZero);

    /// <summary>Every problem with <paramref name="spec"/> for a result of the given size, as (field, message)
    /// pairs named by the wire fields <c>output_format</c>, <c>output_compression</c> and <c>fps</c>.</summary>
    public static IReadOnlyList<(string Field, string Message)> Check(OutputSpec spec, int width, int height, int frames)
    {
        var errors = new List<(string, string)>();
        var format = Resolve(spec, frames);
        if (frames > 1 && format is MediaFormat.Png or MediaFormat.Jpeg)
            errors.Add(("output_format", $"'{Name(format)}' holds one image; a video ({frames} frames) is one of: {string.Join(", ", VideoNames)}"));
        if (frames == 1 && format is MediaFormat.Mp4 or MediaFormat.Webm)
            errors.Add(("output_format", $"'{Name(format)}' is a video format; an image (1 frame) is one of: {string.Join(", ", ImageNames)}"));
        if (format == MediaFormat.Mp4 && (width % 2 != 0 || height % 2 != 0))
            errors.Add(("output_format", $"mp4 (H.264, yuv420p) needs an even width and height, got {width}×{height}"));
        if (spec.Compression is { } c)
        {
            if (c is < 0 or > 100) errors.Add(("output_compression", "must be between 0 and 100"));
            else if (format == MediaFormat.Png) errors.Add(("output_compression", "applies to jpeg, webp, mp4 and webm; png is lossless"));
        }
        if (spec.FramesPerSecond is { } fps)
        {
            if (fps < 1 || fps > MaxFramesPerSecond) errors.Add(("fps", $"must be between 1 and {MaxFramesPerSecond}"));
            else if (frames == 1) errors.Add(("fps", "applies to videos; this request is one image"));
        }
        return errors;
    }
}
