// Wire DTOs of the generation routes (snake_case JSON). They are the API's contract only: the runtime's
// Job and GenerationInput never cross the wire.

namespace Trident.Api.Contracts;

/// <summary>Body of <c>POST /v1/generations</c>. Every field but <c>prompt</c> is optional (a parameter with a default
/// value is optional in the OpenAPI document's schema; one without is in its <c>required</c> list).</summary>
/// <param name="Prompt">What to generate.</param>
/// <param name="NegativePrompt">What to steer away from (classifier-free guidance).</param>
/// <param name="Width">Width in pixels (a multiple of the pipeline's size constraint).</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Frames">Frames: 1 for an image (default), more for a video pipeline.</param>
/// <param name="Steps">Denoising steps (default: the pipeline's).</param>
/// <param name="Seed">Seed of the initial noise (default: random).</param>
/// <param name="Guidance">Guidance scale (default: the pipeline's).</param>
/// <param name="DeadlineMs">Milliseconds from now by which the result is wanted (default: the server's SLO).</param>
/// <param name="Priority">Client priority, -3 … 3 (default 0); higher is served first and weighs 2^priority in the dispatch objective (docs/policies.md, "Priority").</param>
/// <param name="OutputFormat">The result file: png (default), jpeg or webp for an image; mp4 (default), webm or webp
/// (animated) for a video.</param>
/// <param name="OutputCompression">0–100 as OpenAI's image API (100, the default, is the least lossy): the quality of
/// jpeg, webp, mp4 and webm; refused for png (lossless).</param>
/// <param name="Fps">Frame rate of a video (default: <c>Trident:Serving:VideoFramesPerSecond</c>).</param>
/// <param name="NumImages">Images to make from this request (default 1, at most <c>Trident:Limits:MaxImagesPerRequest</c>;
/// 1 for a video): one job per image, seeds seed, seed + 1, …, queued together (all or none) and run as one batch when
/// batching is on (<c>Trident:Serving:MaxBatch</c> &gt; 1, in batches of at most that many); the 202 lists every
/// image's job in <c>images</c>.</param>
/// <remarks>diffusers' names are aliases: <c>num_inference_steps</c> = steps, <c>guidance_scale</c> = guidance,
/// <c>num_frames</c> = frames, <c>num_images_per_prompt</c> = num_images (one name per field).</remarks>
/// <param name="Scheduler">The sampler to denoise with (default: the pipeline's, from its scheduler config); one
/// of those the pipeline admits (a 400 lists them).</param>
/// <param name="Model">Optional, as on the OpenAI routes: when given, the served pipeline's name (as GET /v1/models
/// lists it) or its model's name; anything else is a 400 naming the one served.</param>
public sealed record GenerationRequestDto(
    string? Prompt,
    string? NegativePrompt = null,
    int? Width = null,
    int? Height = null,
    int? Frames = null,
    int? Steps = null,
    long? Seed = null,
    double? Guidance = null,
    long? DeadlineMs = null,
    int? Priority = null,
    string? OutputFormat = null,
    int? OutputCompression = null,
    int? Fps = null,
    int? NumImages = null,
    string? Scheduler = null,
    string? Model = null);

/// <summary>202 answer to <c>POST /v1/generations</c>.</summary>
/// <param name="Id">The job's id.</param>
/// <param name="Status">Always <c>queued</c>.</param>
/// <param name="StatusUrl">Where to poll the job's status.</param>
/// <param name="EventsUrl">Its server-sent events.</param>
/// <param name="ResultUrl">Its result, once it succeeded.</param>
/// <param name="TraceId">The W3C trace id (32 hex digits) of the job's trace: its spans (queue, dispatch rounds,
/// stages, transfers) when traces are exported (<c>Trident:Telemetry:OtlpEndpoint</c>), and the <c>trace</c> of
/// every log line about it.</param>
/// <param name="Seed">The seed the job uses (the client's, or drawn by the server in [0, 2^53 − 1]).</param>
/// <param name="PredictedSeconds">The cost model's latency of the request served alone on this server (the
/// figure checked against <c>Trident:Limits:MaxPredictedSeconds</c>).</param>
/// <param name="PredictedActivationGb">Its predicted peak activation on one device (checked against
/// <c>Trident:Limits:MaxActivationGb</c>).</param>
/// <param name="Deadline">The deadline the job was given (the client's <c>deadline_ms</c>, or the SLO rule's), as the
/// status shows it; <c>met</c> is null here. Every image's job of the request has the same.</param>
/// <param name="Priority">The priority level the scheduler uses, −3 … 3: the request's <c>priority</c>, 0 when it sent
/// none (or null). Every image's job of the request has the same.</param>
/// <param name="Images">Every image's job, in seed order (the first is the job above); one item unless
/// <c>num_images</c> &gt; 1.</param>
public sealed record GenerationAcceptedDto(string Id, string Status, string StatusUrl, string EventsUrl, string ResultUrl,
    long Seed, double PredictedSeconds, double PredictedActivationGb, DeadlineDto Deadline, int Priority, string? TraceId,
    IReadOnlyList<GenerationImageJobDto> Images);

/// <summary>One image's job of a <c>POST /v1/generations</c> request.</summary>
/// <param name="Id">The job's id.</param>
/// <param name="Seed">The seed of its initial noise.</param>
/// <param name="StatusUrl">Where to poll its status.</param>
/// <param name="ResultUrl">Its result, once it succeeded.</param>
public sealed record GenerationImageJobDto(string Id, long Seed, string StatusUrl, string ResultUrl);

/// <summary>How much of a prompt the text encoder reads: the tokenizer keeps a fixed number of tokens and cuts
/// the rest, so a client can see whether (and where) its prompt was cut.</summary>
/// <param name="TokensTotal">Content tokens of the whole prompt (start/end tokens not counted).</param>
/// <param name="TokensUsed">Content tokens the encoder reads (at most the tokenizer's capacity).</param>
/// <param name="Truncated">Whether tokens were cut.</param>
/// <param name="CharactersUsed">Characters (Unicode code points) of the prompt the encoder read.</param>
/// <param name="CharactersTotal">Characters of the whole prompt.</param>
public sealed record PromptUsageDto(int TokensTotal, int TokensUsed, bool Truncated, int CharactersUsed, int CharactersTotal);

/// <summary>One stage's timing in milliseconds (null until known).</summary>
public sealed record StageTimingDto(double? StartMs, double? EndMs, double? DurationMs);

/// <summary>All timings of a job, relative to its arrival.</summary>
public sealed record TimingsDto(StageTimingDto Queued, StageTimingDto Encode, StageTimingDto Diffuse, StageTimingDto Decode, double? TotalMs);

/// <summary>The job's deadline.</summary>
/// <param name="At">Wall-clock time of the deadline.</param>
/// <param name="Ms">Milliseconds after arrival.</param>
/// <param name="Source"><c>client</c> (deadline_ms) or <c>slo</c> (the server's rule).</param>
/// <param name="Met">Whether it was met; null until the job succeeds.</param>
public sealed record DeadlineDto(DateTimeOffset At, double Ms, string Source, bool? Met);

/// <summary>The devices and plan that served a job.</summary>
/// <param name="Round">The dispatch round that routed it.</param>
/// <param name="PlannedBy">How that round's plan was made (MIP statistics, or greedy and why).</param>
/// <param name="Degree">Devices of its diffuse group (k).</param>
/// <param name="Vr">Virtual-replica type (V0 … V3).</param>
/// <param name="EncodeDevice">Device that encoded; null when the job, re-queued after its work was lost with a
/// device, resumed after its encode (its route plans only the stages it had left).</param>
/// <param name="DiffuseDevices">Devices of the diffuse group (the first one leads); empty when the job resumed
/// after its diffuse.</param>
/// <param name="DecodeDevice">Device that decoded.</param>
/// <param name="PredictedFinishMs">The plan's predicted finish, after arrival.</param>
/// <param name="PredictedOnTime">Whether the plan predicted it to meet its deadline.</param>
public sealed record RouteDto(
    long Round, string PlannedBy, int Degree, string Vr, int? EncodeDevice, IReadOnlyList<int> DiffuseDevices, int DecodeDevice,
    double PredictedFinishMs, bool PredictedOnTime);

/// <summary><c>GET /v1/generations/{id}</c>.</summary>
/// <param name="Priority">The priority level the scheduler uses, −3 … 3 (<c>Priority.level</c>: the request's
/// <c>priority</c>, 0 when it sent none).</param>
/// <param name="TraceId">The W3C trace id of the job's trace (see <see cref="GenerationAcceptedDto"/>); null for a
/// job restored finished after a restart.</param>
/// <param name="Error">Why a failed job failed, or what cancelled a cancelled one (a DELETE, a client of a
/// synchronous route that went away, the server's shutdown); null otherwise.</param>
public sealed record GenerationStatusDto(
    string Id,
    string Status,
    DateTimeOffset CreatedAt,
    int? QueuePosition,
    int Step,
    int TotalSteps,
    int Width,
    int Height,
    int Frames,
    long Seed,
    PromptUsageDto Prompt,
    PromptUsageDto? NegativePrompt,
    TimingsDto Timings,
    DeadlineDto Deadline,
    int Priority,
    RouteDto? Route,
    string? Error,
    string? ResultUrl,
    string? TraceId);

/// <summary>One server-sent event of <c>GET /v1/generations/{id}/events</c>.</summary>
public sealed record GenerationEventDto(string Id, long Sequence, string Status, int Step, int TotalSteps, string? Error);

/// <summary>A page of jobs (<c>GET /v1/generations</c>, <c>GET /v1/videos</c>), as OpenAI's list answers are shaped.</summary>
/// <param name="Object">Always <c>list</c>.</param>
/// <param name="Data">The jobs of the page, in the order asked for (newest first by default).</param>
/// <param name="FirstId">The first job's id, or null for an empty page.</param>
/// <param name="LastId">The last job's id, or null for an empty page: give it as <c>after</c> for the next page.</param>
/// <param name="HasMore">Whether more jobs follow this page.</param>
public sealed record JobListDto<T>(string Object, IReadOnlyList<T> Data, string? FirstId, string? LastId, bool HasMore);
