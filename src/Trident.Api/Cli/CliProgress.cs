using System.Globalization;
using Spectre.Console;

namespace Trident.Api.Cli;

/// <summary>
/// Progress of long command-line work (evaluate, profile, loadgen, bench, capacity), on standard error so that
/// standard output keeps the results: on a terminal a live bar (Spectre.Console) with the count, the elapsed time
/// and the latest step; otherwise one plain line per step (<c>[3/40] …</c>), since Spectre.Console draws nothing
/// when its output is not a terminal. Steps may be reported from several threads.
/// </summary>
public sealed class CliProgress : IDisposable
{
    private readonly string _title;
    private readonly int? _total;
    private readonly object _gate = new();
    private readonly ManualResetEventSlim _ready = new();
    private readonly ManualResetEventSlim _done = new();
    private readonly Task? _live;
    private ProgressTask? _task;
    private readonly TimeSpan _plainEvery;
    private readonly System.Diagnostics.Stopwatch _sincePrinted = System.Diagnostics.Stopwatch.StartNew();
    private int _steps;
    private bool _disposed;

    private CliProgress(string title, int? total, bool live, TimeSpan plainEvery)
    {
        _title = title;
        _total = total;
        _plainEvery = plainEvery;
        if (!live) return;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        _live = Task.Run(() => console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                _task = ctx.AddTask(Markup.Escape(title), maxValue: total ?? 1);
                _task.IsIndeterminate = total is null;
                _ready.Set();
                _done.Wait();
                if (total is null) _task.Value = _task.MaxValue;
                _task.StopTask();
            }));
        _ready.Wait();
    }

    /// <summary>Whether progress is drawn as a live bar (standard error is an interactive terminal).</summary>
    public static bool Live =>
        !Console.IsErrorRedirected
        && AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }).Profile.Capabilities.Interactive;

    /// <summary>Starts reporting progress of <paramref name="title"/>: <paramref name="total"/> steps, or an
    /// unknown number (null). Plain lines come at most every <paramref name="plainEvery"/> (default: one per
    /// step), and always for the first and the last step.</summary>
    /// <param name="live">a live bar (true) or plain lines (false) [default: <see cref="Live"/>].</param>
    public static CliProgress Start(string title, int? total, TimeSpan? plainEvery = null, bool? live = null) =>
        new(title, total, live ?? Live, plainEvery ?? TimeSpan.Zero);

    /// <summary>Whether this progress is drawn as a live bar (else as plain lines).</summary>
    public bool IsLive => _live is not null;

    /// <summary>One step done: <paramref name="message"/> says what it was.</summary>
    public void Step(string message)
    {
        lock (_gate)
        {
            _steps++;
            // a run that goes past its estimate (bench soak's drain) counts on without a total
            var count = _total is { } t && _steps <= t ? string.Create(CultureInfo.InvariantCulture, $"{_steps}/{t}") : _steps.ToString(CultureInfo.InvariantCulture);
            if (_task is null)
            {
                if (_steps > 1 && _sincePrinted.Elapsed < _plainEvery && _steps != _total) return;
                Console.Error.WriteLine($"[{count}] {message}");
                _sincePrinted.Restart();
                return;
            }
            _task.Increment(1);
            if (_total is null) _task.MaxValue = _steps + 1;
            var line = $"{_title} [{count}] {message}";
            _task.Description = Markup.Escape(line.Length > 100 ? line[..99] + "…" : line);
        }
    }

    /// <summary>Ends the live bar (it stays on screen, complete).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _done.Set();
        _live?.GetAwaiter().GetResult();
        _ready.Dispose();
        _done.Dispose();
    }
}
