// Validation of generation requests at the edge: every problem is collected, keyed by the field's wire
// name, so one 400 answer names each bad field. Sizes are checked against the pipeline's own constraint
// (PipelineManifest.CheckSize: range and multiple) and the configured limits, then against the cluster:
// a size no device can hold at any degree would wait forever, so it is refused here; and against the
// server's cost model: a request predicted to take longer than Limits:MaxPredictedSeconds served alone, or to
// need more than Limits:MaxActivationGb of activations on one device, is refused naming the limit and the
// estimate, under every field the request sent that drives that prediction (the size fields and, for the time, the
// steps; CostFields) or under `$`, the whole request, when it sent none of them (the defaults are over the limit); a
// size no placement can serve is reported the same way, under the size fields sent. Prompt lengths count Unicode characters (code points), the unit the docs name. Seeds are kept
// within 2^53 − 1 so a JavaScript client holds them exactly. The output fields (output_format,
// output_compression, fps) are checked against the result's size and frames (MediaFormats.Check); the video
// and chat routes name fields as vLLM-Omni and diffusers do (num_frames, num_inference_steps,
// guidance_scale), and `model`, where given, must name the served pipeline (CheckModel).

using Trident.Api.Contracts;
using Trident.Api.Hosting;
using Trident.Api.Options;
using Trident.Runtime.Devices;
using Trident.Runtime.Imaging;

namespace Trident.Api.Endpoints;

/// <summary>A validated submission.</summary>
/// <summary>A request's deadline (seconds after arrival) and priority level, each null when not sent.</summary>
internal sealed record Urgency(double? DeadlineSeconds, int? Priority);

internal sealed record ValidSubmission(GenerationInput Input, double? DeadlineSeconds, int? Priority, Estimate Estimate, int Images = 1)
{
    /// <summary>One input per image: the request's, with seeds seed, seed + 1, ….</summary>
    public IReadOnlyList<GenerationInput> Inputs => [.. Enumerable.Range(0, Images).Select(i => Input with { Seed = Input.Seed + (ulong)i })];
}

/// <summary>What the cost model predicts for a request served alone: seconds (t_ref = encode + steps × diffuse
/// step at its reference degree + decode) and the peak activation on one device in GB.</summary>
internal sealed record Estimate(double Seconds, double ActivationGb);

internal static class GenerationRequests
{
    /// <summary>The largest classifier-free guidance scale a request may ask for (the HTTP routes and <c>generate</c>);
    /// diffusers' pipelines use 1–20, so 100 only stops a typo or a runaway client.</summary>
    public const double MaxGuidanceScale = 100;

    /// <summary>The problems found, by field. A field the body could not be read for (<see cref="BodyRead{T}.Unread"/>:
    /// its JSON reading named it) is left out of the request, so the checks see its default: nothing more is said about
    /// it, and the checks that depend on it (<see cref="AnyUnread"/>) do not run — they would judge a value the client
    /// did not send.</summary>
    private sealed class Errors(IReadOnlySet<string>? unread)
    {
        public Dictionary<string, List<string>> ByField { get; } = new();

        public void Add(string field, string message)
        {
            if (unread is not null && unread.Contains(field.IndexOfAny(['.', '[']) is var i and > 0 ? field[..i] : field)) return;
            if (!ByField.TryGetValue(field, out var list)) ByField[field] = list = new List<string>();
            list.Add(message);
        }

        /// <summary>Whether any of <paramref name="fields"/> (wire names) could not be read.</summary>
        public bool AnyUnread(IEnumerable<string> fields) => unread is { Count: > 0 } && fields.Any(unread.Contains);

        public Dictionary<string, string[]> ToDictionary() => ByField.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
    }

    // The most images one request may ask for: the limit, and no more than the queue holds (a request's images are
    // queued together, so a larger one would be refused with a 429 however long the client waited).
    private static int MaxImages(ReadyServer ready, LimitOptions limits) =>
        Math.Min(limits.MaxImagesPerRequest, ready.Server.Setup.Settings.QueueCapacity);

    private static string MaxImagesKey(ReadyServer ready, LimitOptions limits) =>
        limits.MaxImagesPerRequest <= ready.Server.Setup.Settings.QueueCapacity
            ? "Trident:Limits:MaxImagesPerRequest"
            : $"the queue holds {ready.Server.Setup.Settings.QueueCapacity} requests: Trident:Serving:QueueCapacity";

    public static (ValidSubmission? Submission, Dictionary<string, string[]> Errors) Validate(GenerationRequestDto dto, ReadyServer ready, LimitOptions limits,
        IReadOnlySet<string>? unread = null)
    {
        var e = new Errors(unread);
        var width = dto.Width ?? limits.DefaultWidth;
        var height = dto.Height ?? limits.DefaultHeight;
        var frames = dto.Frames ?? 1;
        var images = dto.NumImages ?? 1;
        if (images < 1 || images > MaxImages(ready, limits)) e.Add("num_images", $"must be between 1 and {MaxImages(ready, limits)} ({MaxImagesKey(ready, limits)})");
        else if (images > 1 && frames > 1) e.Add("num_images", "must be 1 for a video (one request makes one video)");
        var (steps, estimate) = Check(e, dto.Prompt, dto.NegativePrompt, width, height, frames, dto.Steps, dto.Seed, dto.Guidance, ready, limits,
            new CostFields(Sent(("width", dto.Width), ("height", dto.Height), ("frames", dto.Frames)), dto.Steps is null ? null : "steps"),
            seedReserve: Math.Max(0, Math.Min(images, limits.MaxImagesPerRequest) - 1));
        var output = Output(e, dto.OutputFormat, dto.OutputCompression, dto.Fps, width, height, frames, VideoAndImageNames);
        var urgency = Urgency(e, dto.DeadlineMs, dto.Priority, limits);
        CheckModel(e, dto.Model, ready);
        var schedulers = Trident.Runtime.Pipelines.Samplers.SamplerFactory.Names(ready.Manifest.Sampler);
        if (dto.Scheduler is { } scheduler && !schedulers.Contains(scheduler))
            e.Add("scheduler", $"'{scheduler}' is not a scheduler of pipeline '{ready.Manifest.Name}'; accepted: {string.Join(", ", schedulers)}");
        if (e.ByField.Count > 0 || estimate is null) return (null, e.ToDictionary());
        var input = new GenerationInput(dto.Prompt!, dto.NegativePrompt, width, height, frames, steps,
            dto.Seed is { } s ? (ulong)s : DrawSeed(images - 1),
            dto.Guidance ?? ready.Manifest.Guidance.DefaultScale, output, dto.Scheduler);
        return (new ValidSubmission(input, urgency.DeadlineSeconds, urgency.Priority, estimate, images), []);
    }

    /// <summary>A request's deadline and priority as every generation route takes them (<c>deadline_ms</c>: 1 …
    /// <c>Trident:Limits:MaxDeadlineMs</c>; <c>priority</c>: −3 … 3, <c>Priority.problem</c>), the problems added
    /// under those names. Null when not sent: the server's SLO deadline, priority 0.</summary>
    private static Urgency Urgency(Errors e, long? deadlineMs, int? priority, LimitOptions limits)
    {
        if (deadlineMs is { } ms && (ms < 1 || ms > limits.MaxDeadlineMs))
            e.Add("deadline_ms", $"must be between 1 and {limits.MaxDeadlineMs}");
        if (priority is { } p && Trident.Scheduling.Priority.problem(p) is { } why)
            e.Add("priority", why.Value);
        return new Urgency(deadlineMs / 1000.0, priority);
    }

    /// <summary>A server-drawn seed in [0, 2^53 − 1 − <paramref name="reserve"/>] (the images route gives the
    /// i-th image seed + i).</summary>
    private static ulong DrawSeed(int reserve) => (ulong)Random.Shared.NextInt64(0, JsonBody.MaxSafeInteger - reserve + 1);

    /// <summary>Checks the fields shared by both generation routes; returns the steps to use and, when the
    /// size and steps are valid, the cost model's estimate. <paramref name="minFrames"/>: the fewest frames the route
    /// takes (2 on the video route), the lower bound the frames' range states.</summary>
    private static (int Steps, Estimate? Estimate) Check(Errors e, string? prompt, string? negative, int width, int height, int frames, int? steps, long? seed,
        double? guidance, ReadyServer ready, LimitOptions limits, CostFields costFields, string sizeField = "", int seedReserve = 0,
        IReadOnlyDictionary<string, string>? names = null, int minFrames = 1)
    {
        string Wire(string field) => names is not null && names.TryGetValue(field, out var w) ? w : field;
        if (string.IsNullOrWhiteSpace(prompt)) e.Add("prompt", "is required and must not be blank");
        else if (Characters(prompt) is var n && n > limits.MaxPromptLength)
            e.Add("prompt", $"must be at most {limits.MaxPromptLength} characters (Unicode code points; got {n})");
        if (negative is not null && Characters(negative) is var m && m > limits.MaxPromptLength)
            e.Add("negative_prompt", $"must be at most {limits.MaxPromptLength} characters (Unicode code points; got {m})");

        // a side's problem: under its own field, or under the size field that gave both sides, then naming the side
        // and its value ("width 100 must be a multiple of 16": "must be …" twice would not say which side)
        void Side(string side, int value, string message)
        {
            if (sizeField.Length > 0) e.Add(sizeField, $"{side} {value} {message}");
            else e.Add(side, message);
        }
        var sizeErrors = 0;
        foreach (var err in ready.Manifest.CheckSize(width, height, frames, limits.MaxFrames, minFrames))
        {
            if (err.Path == "width") Side("width", width, err.Message);
            else if (err.Path == "height") Side("height", height, err.Message);
            else e.Add(Wire(err.Path), err.Path == "frames" ? FramesMessage(err.Message, frames, minFrames) : err.Message);
            sizeErrors++;
        }
        // a server limit is said where it binds: not when the value is also beyond the pipeline's own maximum, which the
        // pipeline's range above already says and is the tighter bound ("between 1 and 9" and "at most 17" disagreed)
        var size = ready.Manifest.Size;
        static bool Binds(int value, int limit, int pipelineMax) => value > limit && (limit < pipelineMax || value <= pipelineMax);
        if (Binds(width, limits.MaxWidth, size.MaxWidth)) { Side("width", width, $"must be at most {limits.MaxWidth} (server limit)"); sizeErrors++; }
        if (Binds(height, limits.MaxHeight, size.MaxHeight)) { Side("height", height, $"must be at most {limits.MaxHeight} (server limit)"); sizeErrors++; }
        if (Binds(frames, limits.MaxFrames, size.MaxFrames)) { e.Add(Wire("frames"), $"must be at most {limits.MaxFrames} (server limit)"); sizeErrors++; }
        // a size no placement of the cluster can serve: reported with the limits' problems below (every problem at once)
        // (neither is judged when a field of the shape or steps could not be read: it would be the default's verdict)
        var shapeKnown = !e.AnyUnread(ShapeFields);
        var unservable = sizeErrors == 0 && shapeKnown ? ready.Server.Unservable(new Trident.Scheduling.Shape(height, width, frames)) : null;

        var defaultSteps = limits.DefaultSteps > 0 ? limits.DefaultSteps : ready.Manifest.Sampler.DefaultSteps;
        var s = steps ?? Math.Min(defaultSteps, limits.MaxSteps);
        var stepsOk = s >= 1 && s <= limits.MaxSteps;
        if (!stepsOk) e.Add(Wire("steps"), $"must be between 1 and {limits.MaxSteps}");
        if (seed is < 0 || seed > JsonBody.MaxSafeInteger - seedReserve)
            e.Add("seed", $"must be between 0 and {JsonBody.MaxSafeInteger - seedReserve} (2^53 − 1{(seedReserve > 0 ? " − (n − 1)" : "")}: the largest integer a JSON client holds exactly)");
        if (guidance is { } g && !(double.IsFinite(g) && g >= 0 && g <= MaxGuidanceScale)) e.Add(Wire("guidance"), $"must be between 0 and {MaxGuidanceScale}");
        else
        {
            if (guidance is { } g1 && g1 != 1.0 && !ready.Manifest.Guidance.Accepted)
                e.Add(Wire("guidance"), $"pipeline '{ready.Manifest.Name}' has no classifier-free guidance: omit guidance or send 1");
            // a negative prompt no unconditional pass would read is refused, like the other no-op fields (fps on an image)
            if (negative is not null && !e.AnyUnread(GuidanceFields) && ready.Manifest.Guidance.NegativePromptUnused(guidance, Wire("guidance"), ready.Manifest.Name) is { } unused)
                e.Add("negative_prompt", unused);
        }
        Estimate? estimate = null;
        if (!(sizeErrors > 0 || !stepsOk || !shapeKnown || e.ByField.ContainsKey("width") || e.ByField.ContainsKey("height")))
        {
            estimate = Predict(ready, new Trident.Scheduling.Shape(height, width, frames), s);
            var what = $"{width}×{height}, {frames} frame(s), {s} step{(s == 1 ? "" : "s")}";
            // the time depends on the steps too: not judged on the default for steps that could not be read
            var stepsKnown = !e.AnyUnread(StepsFields);
            foreach (var (problem, byTime) in OverLimitsByLimit(estimate, what, limits))
                if (stepsKnown || !byTime)
                    foreach (var field in costFields.For(byTime)) e.Add(field, problem);
        }
        // the shape decides it: under the size fields the request sent, as the activation limit
        if (unservable is not null) foreach (var field in costFields.For(byTime: false)) e.Add(field, unservable);
        return (s, estimate);
    }

    /// <summary>Why a request of <paramref name="estimate"/> (described as <paramref name="what"/>) is over
    /// Limits:MaxPredictedSeconds or MaxActivationGb; empty when it is within both.</summary>
    public static IEnumerable<string> OverLimits(Estimate estimate, string what, LimitOptions limits) =>
        OverLimitsByLimit(estimate, what, limits).Select(p => p.Message);

    /// <summary><see cref="OverLimits"/>, each message with whether it is the time limit's (which the steps drive as
    /// well as the size) rather than the activation limit's (the size alone).</summary>
    private static IEnumerable<(string Message, bool ByTime)> OverLimitsByLimit(Estimate estimate, string what, LimitOptions limits)
    {
        if (limits.MaxPredictedSeconds > 0 && estimate.Seconds > limits.MaxPredictedSeconds)
            yield return ($"{what} is predicted to take {Seconds(estimate.Seconds)} s served alone on this server, over "
                + $"Trident:Limits:MaxPredictedSeconds = {limits.MaxPredictedSeconds} (ask for fewer steps, frames or pixels)", true);
        if (limits.MaxActivationGb > 0 && estimate.ActivationGb > limits.MaxActivationGb)
            yield return ($"{what} is predicted to need {estimate.ActivationGb:F2} GB of activations on one device, over "
                + $"Trident:Limits:MaxActivationGb = {limits.MaxActivationGb}", false);
    }

    // seconds to three significant digits (0.0123, 1.23, 123): a limit of 0.02 s at a small emulation time scale read
    // "predicted to take 0.0 s … over 0.02" with one decimal
    private static string Seconds(double seconds) =>
        seconds >= 100 ? seconds.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)
        : seconds.ToString("G3", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The key of a problem with the whole request rather than one field (as for a body that is not JSON).</summary>
    public const string WholeRequest = "$";

    /// <summary>Where a request over the cost limits is reported: the wire names of the fields the request sent that
    /// set its size (width, height, size, frames, num_frames, seconds), and of its steps field when it sent one. The
    /// predicted time depends on both, the activations on the size alone; a limit none of the sent fields drives (the
    /// request relied on the defaults) is reported under <see cref="WholeRequest"/>.</summary>
    private sealed record CostFields(IReadOnlyList<string> Size, string? Steps)
    {
        public IReadOnlyList<string> For(bool byTime)
        {
            IReadOnlyList<string> fields = byTime && Steps is not null ? [.. Size, Steps] : Size;
            return fields.Count > 0 ? fields : [WholeRequest];
        }
    }

    /// <summary>The names of the fields whose value was sent (not null).</summary>
    private static string[] Sent(params (string Field, object? Value)[] fields) =>
        [.. fields.Where(f => f.Value is not null).Select(f => f.Field)];

    /// <summary>The cost model's estimate of a request served alone.</summary>
    public static Estimate Predict(ReadyServer ready, Trident.Scheduling.Shape shape, int steps) => Predict(ready.Server.Cost, shape, steps);

    /// <summary>A cost model's estimate of a request served alone: seconds (t_ref) and the largest stage's activations
    /// on one device (GB).</summary>
    public static Estimate Predict(Trident.Scheduling.CostModel cost, Trident.Scheduling.Shape shape, int steps)
    {
        var k = Trident.Scheduling.CostModelModule.referenceDegree(cost, shape);
        var seconds = Trident.Scheduling.CostModelModule.tRef(cost, shape, steps);
        var activation = new[] { Trident.Scheduling.Stage.Encode, Trident.Scheduling.Stage.Diffuse, Trident.Scheduling.Stage.Decode }
            .Max(stage => Trident.Scheduling.CostModelModule.activation(cost, stage, shape, stage.IsDiffuse ? k : 1));
        return new Estimate(Math.Round(seconds, 3), Math.Round(activation, 4));
    }

    /// <summary>Length in the unit the docs and Limits:MaxPromptLength name: Unicode characters (code points).</summary>
    public static int Characters(string text)
    {
        var n = 0;
        foreach (var _ in text.EnumerateRunes()) n++;
        return n;
    }

    /// <summary>Validates an OpenAI-style request; returns one input per image (seeds seed, seed + 1, …) and whether
    /// the answer carries URLs.</summary>
    public static (IReadOnlyList<GenerationInput>? Inputs, bool Urls, Urgency Urgency, Dictionary<string, string[]> Errors) Validate(ImageGenerationRequestDto dto, ReadyServer ready, LimitOptions limits,
        IReadOnlySet<string>? unread = null)
    {
        var e = new Errors(unread);
        var urgency = Urgency(e, dto.DeadlineMs, dto.Priority, limits);
        var n = dto.N ?? 1;
        if (n < 1 || n > MaxImages(ready, limits)) e.Add("n", $"must be between 1 and {MaxImages(ready, limits)} ({MaxImagesKey(ready, limits)})");
        if (dto.ResponseFormat is not (null or "b64_json" or "url")) e.Add("response_format", "must be 'b64_json' or 'url'");
        CheckModel(e, dto.Model, ready);
        if (dto.Quality is not (null or "auto"))
            e.Add("quality", $"only 'auto' (the server's settings): '{dto.Quality}' has no meaning for this pipeline; set steps (num_inference_steps) instead");
        if (dto.Background is not (null or "auto" or "opaque"))
            e.Add("background", "must be 'auto' or 'opaque': images are opaque RGB");
        var (width, height) = Size(e, dto.Size, "size", limits);
        var steps = e.ByField.ContainsKey("size")
            ? 0
            : Check(e, dto.Prompt, dto.NegativePrompt, width, height, 1, dto.Steps, dto.Seed, dto.Guidance, ready, limits,
                new CostFields(Sent(("size", dto.Size)), dto.Steps is null ? null : "steps"), sizeField: "size",
                seedReserve: Math.Max(0, Math.Min(n, limits.MaxImagesPerRequest) - 1)).Steps;
        if (e.ByField.ContainsKey("size") && string.IsNullOrWhiteSpace(dto.Prompt)) e.Add("prompt", "is required and must not be blank");
        var output = Output(e, dto.OutputFormat, dto.OutputCompression, null, width, height, 1, MediaFormats.ImageNames);
        if (e.ByField.Count > 0) return (null, false, urgency, e.ToDictionary());
        var seed = dto.Seed is { } s ? (ulong)s : DrawSeed(n - 1);
        var inputs = Enumerable.Range(0, n)
            .Select(i => new GenerationInput(dto.Prompt!, dto.NegativePrompt, width, height, 1, steps, seed + (ulong)i,
                dto.Guidance ?? ready.Manifest.Guidance.DefaultScale, output))
            .ToArray();
        return (inputs, dto.ResponseFormat == "url", urgency, []);
    }

    /// <summary>Wire names of the videos and chat routes (vLLM-Omni's and diffusers') for the fields Check names.</summary>
    private static readonly IReadOnlyDictionary<string, string> DiffusersNames = new Dictionary<string, string>
    {
        ["frames"] = "num_frames", ["steps"] = "num_inference_steps", ["guidance"] = "guidance_scale",
    };

    /// <summary>Validates <c>POST /v1/videos</c>.</summary>
    public static (ValidSubmission? Submission, Dictionary<string, string[]> Errors) Validate(VideoCreateRequestDto dto, ReadyServer ready, LimitOptions limits,
        int defaultFps, IReadOnlySet<string>? unread = null)
    {
        var e = new Errors(unread);
        CheckModel(e, dto.Model, ready);
        OnePerRequest(e, dto.NumImagesPerPrompt, "num_images_per_prompt", "one request makes one video");
        var urgency = Urgency(e, dto.DeadlineMs, dto.Priority, limits);
        int width = dto.Width ?? limits.DefaultWidth, height = dto.Height ?? limits.DefaultHeight;
        if (dto.Size is not null)
        {
            if (dto.Width is not null || dto.Height is not null) e.Add("size", "give size or width and height, not both");
            (width, height) = Size(e, dto.Size, "size", limits);
        }
        var fps = dto.Fps ?? defaultFps;
        var frames = dto.NumFrames ?? DefaultVideoFrames(ready);
        if (dto.Seconds is { } seconds)
        {
            if (dto.NumFrames is not null) e.Add("seconds", "give seconds or num_frames, not both");
            else if (ClipSeconds(seconds) is not { } length)
                e.Add("seconds", "must be a number of seconds greater than 0 in plain digits, as a string (e.g. \"4\" or \"0.5\")");
            // a frame rate out of range is named under fps (Output); frames are not made from it
            else if (fps is >= 1 and <= MediaFormats.MaxFramesPerSecond)
                frames = FramesOf(length, fps, ready.Manifest.Latents.TemporalCompression);
        }
        var judged = !(e.ByField.ContainsKey("size") || e.ByField.ContainsKey("seconds"));
        var (steps, estimate) = !judged
            ? (0, null)
            : Check(e, dto.Prompt, dto.NegativePrompt, width, height, frames, dto.NumInferenceSteps, dto.Seed, dto.GuidanceScale, ready, limits,
                new CostFields(Sent(("size", dto.Size), ("width", dto.Width), ("height", dto.Height), ("num_frames", dto.NumFrames), ("seconds", dto.Seconds)),
                    dto.NumInferenceSteps is null ? null : "num_inference_steps"),
                sizeField: dto.Size is not null ? "size" : "", names: DiffusersNames, minFrames: MinVideoFrames);
        // too few frames for a video is said whatever else is wrong (one frame is an image, which this route would hand
        // back as a PNG under a video's name), in the words of the range Check states
        if (!judged && dto.NumFrames is < MinVideoFrames)
            foreach (var problem in ready.Manifest.CheckSize(width, height, frames, limits.MaxFrames, MinVideoFrames).Where(p => p.Path == "frames"))
                e.Add("num_frames", FramesMessage(problem.Message, frames, MinVideoFrames));
        // a frame count made from seconds: its problems are the seconds' (the client sent no num_frames)
        if (dto.Seconds is not null && dto.NumFrames is null && e.ByField.Remove("num_frames", out var framesProblems))
            foreach (var problem in framesProblems)
                e.Add("seconds", $"{dto.Seconds} s at {fps} fps is {frames} frame{(frames == 1 ? "" : "s")}: the frame count {problem}");
        var output = Output(e, dto.OutputFormat, dto.OutputCompression, dto.Fps, width, height, frames, MediaFormats.VideoNames);
        if (e.ByField.Count > 0 || estimate is null) return (null, e.ToDictionary());
        var input = new GenerationInput(dto.Prompt!, dto.NegativePrompt, width, height, frames, steps,
            dto.Seed is { } s ? (ulong)s : DrawSeed(0), dto.GuidanceScale ?? ready.Manifest.Guidance.DefaultScale,
            output with { FramesPerSecond = fps });
        return (new ValidSubmission(input, urgency.DeadlineSeconds, urgency.Priority, estimate), []);
    }

    /// <summary>Validates <c>POST /v1/chat/completions</c>: one input per image (seeds seed, seed + 1, …).</summary>
    public static (IReadOnlyList<GenerationInput>? Inputs, Urgency Urgency, Dictionary<string, string[]> Errors) Validate(ChatCompletionRequestDto dto, ReadyServer ready, LimitOptions limits,
        IReadOnlySet<string>? unread = null)
    {
        var e = new Errors(unread);
        CheckModel(e, dto.Model, ready);
        var urgency = Urgency(e, dto.DeadlineMs, dto.Priority, limits);
        if (dto.Stream is true) e.Add("stream", "streaming is not implemented: send false or leave it out (progress: POST /v1/generations and its events)");
        if (dto.N is not (null or 1)) e.Add("n", "must be 1 (one choice); for several images send num_images_per_prompt");
        var prompt = ChatPrompt(e, dto.Messages);
        var n = dto.NumImagesPerPrompt ?? 1;
        if (n < 1 || n > MaxImages(ready, limits)) e.Add("num_images_per_prompt", $"must be between 1 and {MaxImages(ready, limits)} ({MaxImagesKey(ready, limits)})");
        int width = dto.Width ?? limits.DefaultWidth, height = dto.Height ?? limits.DefaultHeight, frames = dto.NumFrames ?? 1;
        var steps = Check(e, prompt ?? "", dto.NegativePrompt, width, height, frames, dto.NumInferenceSteps, dto.Seed, dto.GuidanceScale, ready, limits,
            new CostFields(Sent(("width", dto.Width), ("height", dto.Height), ("num_frames", dto.NumFrames)), dto.NumInferenceSteps is null ? null : "num_inference_steps"),
            seedReserve: Math.Max(0, Math.Min(n, limits.MaxImagesPerRequest) - 1), names: DiffusersNames).Steps;
        if (prompt is null) e.ByField.Remove("prompt");
        var output = Output(e, dto.OutputFormat, dto.OutputCompression, dto.Fps, width, height, frames, VideoAndImageNames);
        if (e.ByField.Count > 0) return (null, urgency, e.ToDictionary());
        var seed = dto.Seed is { } s ? (ulong)s : DrawSeed(n - 1);
        var inputs = Enumerable.Range(0, n)
            .Select(i => new GenerationInput(prompt!, dto.NegativePrompt, width, height, frames, steps, seed + (ulong)i,
                dto.GuidanceScale ?? ready.Manifest.Guidance.DefaultScale, output))
            .ToArray();
        return (inputs, urgency, []);
    }

    /// <summary>The prompt of a chat request: the text of its one user message (a string, or its text parts joined
    /// by newlines); null after adding the errors when there is none.</summary>
    private static string? ChatPrompt(Errors e, IReadOnlyList<ChatMessageDto>? messages)
    {
        if (messages is null || messages.Count == 0)
        {
            e.Add("messages", "is required: one message with role 'user' holding the prompt");
            return null;
        }
        string? prompt = null;
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m.Role != "user")
            {
                // a missing or null role was shown as "got ''"
                e.Add($"messages[{i}].role", m.Role is null
                    ? "is required and must be 'user': the one user message is the prompt"
                    : $"must be 'user' (got '{m.Role}'): the one user message is the prompt; this server generates images, it does not chat");
                continue;
            }
            if (prompt is not null)
            {
                e.Add($"messages[{i}]", "is a second user message: send the prompt as one message");
                continue;
            }
            var content = m.Content;
            if (content.ValueKind == System.Text.Json.JsonValueKind.String) prompt = content.GetString();
            else if (content.ValueKind == System.Text.Json.JsonValueKind.Array)
            {
                var texts = new List<string>();
                var j = 0;
                foreach (var part in content.EnumerateArray())
                {
                    var type = part.ValueKind == System.Text.Json.JsonValueKind.Object && part.TryGetProperty("type", out var t) && t.ValueKind == System.Text.Json.JsonValueKind.String ? t.GetString() : null;
                    if (type == "text" && part.TryGetProperty("text", out var text) && text.ValueKind == System.Text.Json.JsonValueKind.String && part.EnumerateObject().Count() == 2)
                        texts.Add(text.GetString()!);
                    else if (type is "image_url" or "input_image" or "video_url")
                        e.Add($"messages[{i}].content[{j}]", $"is a '{type}' part: image and video inputs are not supported (text-to-image and text-to-video only)");
                    else e.Add($"messages[{i}].content[{j}]", "must be {\"type\": \"text\", \"text\": \"…\"}");
                    j++;
                }
                prompt = string.Join("\n", texts);
            }
            else e.Add($"messages[{i}].content", "must be a string or a list of text parts");
            prompt ??= "";
        }
        var named = e.ByField.Keys.Any(k => k.StartsWith("messages", StringComparison.Ordinal));
        if (prompt is null && !named) e.Add("messages", "needs one message with role 'user' holding the prompt");
        if (prompt is not null && string.IsNullOrWhiteSpace(prompt) && !named) e.Add("messages", "the user message's text (the prompt) must not be blank");
        return string.IsNullOrWhiteSpace(prompt) ? null : prompt;
    }

    /// <summary>The rule for <c>model</c> fields: optional; when given, the served pipeline's id (its name, as GET
    /// /v1/models lists it) or its model name. Anything else is refused rather than served by a pipeline the client
    /// did not ask for.</summary>
    private static void CheckModel(Errors e, string? model, ReadyServer ready)
    {
        if (model is not null && model != ready.Manifest.Name && model != ready.Manifest.Model)
            e.Add("model", $"this server serves '{ready.Manifest.Name}' (model '{ready.Manifest.Model}'; GET /v1/models lists it): omit model or name that one");
    }

    /// <summary>A field that must be 1 when given.</summary>
    private static void OnePerRequest(Errors e, int? value, string field, string why)
    {
        if (value is not (null or 1)) e.Add(field, $"must be 1: {why}");
    }

    /// <summary>Wire names of the fields that set a request's shape (its size, frames; a video's frame rate, from which
    /// seconds make frames).</summary>
    private static readonly string[] ShapeFields = ["width", "height", "size", "frames", "num_frames", "seconds", "fps"];

    /// <summary>Wire names of a request's steps field.</summary>
    private static readonly string[] StepsFields = ["steps", "num_inference_steps"];

    /// <summary>Wire names of a request's guidance field.</summary>
    private static readonly string[] GuidanceFields = ["guidance", "guidance_scale"];

    /// <summary>Accepted <c>output_format</c> names where both images and videos are made.</summary>
    private static readonly IReadOnlyList<string> VideoAndImageNames = ["png", "jpeg", "webp", "mp4", "webm"];

    /// <summary>The output spec of a request's output fields (named by their wire names), with every problem added.</summary>
    private static OutputSpec Output(Errors e, string? formatName, int? compression, int? fps, int width, int height, int frames, IReadOnlyList<string> names)
    {
        MediaFormat? format = null;
        if (formatName is not null)
        {
            format = MediaFormats.Parse(formatName);
            if (format is null || !names.Contains(MediaFormats.Name(format.Value)))
            {
                e.Add("output_format", $"must be one of: {string.Join(", ", names)} (got '{formatName}')");
                format = null;
            }
        }
        var spec = new OutputSpec(format, compression, fps);
        // the output's rules depend on its format and on the result's shape (fps on an image, compression for png)
        if (!e.ByField.ContainsKey("output_format") && !e.AnyUnread(["output_format", .. ShapeFields]))
            foreach (var (field, message) in MediaFormats.Check(spec, width, height, frames)) e.Add(field, message);
        return spec;
    }

    /// <summary>WIDTHxHEIGHT (or <c>auto</c>: the default size) of a size field.</summary>
    private static (int Width, int Height) Size(Errors e, string? size, string field, LimitOptions limits)
    {
        if (size is null or "auto") return (limits.DefaultWidth, limits.DefaultHeight);
        // plain ASCII digits only: int.TryParse alone would take " 64", "+64" and the current culture's forms
        var match = SizePattern.Match(size);
        if (!match.Success)
        {
            e.Add(field, $"must be WIDTHxHEIGHT in digits, e.g. {limits.DefaultWidth}x{limits.DefaultHeight}, or 'auto'");
            return (limits.DefaultWidth, limits.DefaultHeight);
        }
        if (!int.TryParse(match.Groups[1].ValueSpan, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var width)
            || !int.TryParse(match.Groups[2].ValueSpan, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var height))
        {
            e.Add(field, $"'{size}': a side is too large (at most {limits.MaxWidth}x{limits.MaxHeight} here)");
            return (limits.DefaultWidth, limits.DefaultHeight);
        }
        return (width, height);
    }

    /// <summary>Frames of a video request that names none: the pipeline's shortest video (two frames or more,
    /// a length its VAE's temporal compression allows).</summary>
    private static int DefaultVideoFrames(ReadyServer ready)
    {
        var m = ready.Manifest;
        var tc = Math.Max(1, m.Latents.TemporalCompression);
        var min = Math.Max(MinVideoFrames, m.Size.MinFrames);
        return 1 + tc * ((min - 1 + tc - 1) / tc);
    }

    /// <summary>The fewest frames of a video on <c>/v1/videos</c>: one frame is an image.</summary>
    public const int MinVideoFrames = 2;

    /// <summary>A frame-count problem, with why when the count is one frame on a route that takes videos only.</summary>
    private static string FramesMessage(string message, int frames, int minFrames) =>
        frames == 1 && minFrames > 1 ? $"{message}: one frame is an image (POST /v1/images/generations or /v1/generations)" : message;

    private static readonly System.Text.RegularExpressions.Regex SecondsPattern = new("^[0-9]+(\\.[0-9]+)?\\z", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>The length in seconds of a video request's <c>seconds</c> (plain digits with an optional fraction:
    /// "4", "0.5", "1.125"); null when it is not one or not greater than 0. A length beyond a decimal's range reads as
    /// the largest one (its frame count is then over every limit, and named so).</summary>
    public static decimal? ClipSeconds(string seconds)
    {
        if (!SecondsPattern.IsMatch(seconds)) return null;
        var length = decimal.TryParse(seconds, System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var s)
            ? s : decimal.MaxValue;
        return length > 0 ? length : null;
    }

    /// <summary>The frames of a clip of <paramref name="seconds"/> at <paramref name="fps"/>: diffusion video models count
    /// a clip of s seconds at r fps as s × r + 1 frames (Wan: 5 s at 16 fps = 81 frames), s × r rounded down, then rounded
    /// down to a length the VAE's temporal compression <paramref name="temporalCompression"/> allows (1 + a multiple of
    /// it). The inverse of <see cref="SecondsOf"/>: a clip's reported length gives its frames back.</summary>
    public static int FramesOf(decimal seconds, int fps, int temporalCompression)
    {
        var tc = Math.Max(1, temporalCompression);
        // at most int.MaxValue − 1 intervals (a longer clip is over every limit anyway), without overflowing the product
        var intervals = seconds >= int.MaxValue ? int.MaxValue - 1 : (long)Math.Min(int.MaxValue - 1, decimal.Floor(seconds * fps));
        return (int)(1 + tc * (intervals / tc));
    }

    /// <summary>The length of a clip of <paramref name="frames"/> at <paramref name="fps"/> as <c>/v1/videos</c> counts it
    /// ((frames − 1) / fps: 9 frames at 8 fps are "1"), as a string the route takes back for the same frames
    /// (<see cref="FramesOf"/>): exact where six decimals hold it (every rate of the form 2^a·5^b, 8 and 16 fps among
    /// them), else rounded up in the sixth decimal ("0.333334" for 1 frame interval at 3 fps), so that s × fps is never
    /// under the frame intervals it stands for.</summary>
    public static string SecondsOf(int frames, int fps)
    {
        var exact = (decimal)Math.Max(0, frames - 1) / Math.Max(1, fps);
        return (decimal.Ceiling(exact * 1_000_000m) / 1_000_000m).ToString("0.######", System.Globalization.CultureInfo.InvariantCulture);
    }

    private static readonly System.Text.RegularExpressions.Regex SizePattern = new("^([0-9]+)x([0-9]+)$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>diffusers' names of the generation route's fields.</summary>
    public static readonly IReadOnlyDictionary<string, string> GenerationAliases = new Dictionary<string, string>
    {
        ["num_inference_steps"] = "steps", ["guidance_scale"] = "guidance", ["num_frames"] = "frames", ["num_images_per_prompt"] = "num_images",
    };

    /// <summary>diffusers' names of the image route's fields.</summary>
    public static readonly IReadOnlyDictionary<string, string> ImageAliases = new Dictionary<string, string>
    {
        ["num_inference_steps"] = "steps", ["guidance_scale"] = "guidance", ["num_images_per_prompt"] = "n",
    };

    /// <summary>Fields of OpenAI's video API this server does not implement, and why.</summary>
    public static readonly IReadOnlyDictionary<string, string> UnsupportedVideoFields = new Dictionary<string, string>
    {
        ["input_reference"] = "image-to-video is not implemented (text-to-video only)",
        ["image_reference"] = "image-to-video is not implemented (text-to-video only)",
        ["remixed_from_video_id"] = "remixes are not implemented",
        ["user"] = "requests are not attributed to users",
    };

    /// <summary>Fields of OpenAI's image API this server does not implement, and why: each is a 400 naming it
    /// rather than a silent no-op.</summary>
    public static readonly IReadOnlyDictionary<string, string> UnsupportedOpenAiFields = new Dictionary<string, string>
    {
        ["style"] = "the pipeline has no styles",
        ["user"] = "requests are not attributed to users",
        ["moderation"] = "there is no moderation",
        ["partial_images"] = "streaming is not implemented (use POST /v1/generations and its events)",
        ["stream"] = "streaming is not implemented (use POST /v1/generations and its events)",
        ["image"] = "image edits are not implemented",
        ["mask"] = "image edits are not implemented",
    };
}
