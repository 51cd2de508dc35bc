// The durable half of the job store: one SQLite database (WAL, synchronous=NORMAL) in the storage directory,
// jobs.db, with one row per job held, and the result of every succeeded job as a file beside it,
// results/<id>.<ext> (png, jpg, webp, mp4 or webm: the extension says the format). A row is inserted (and committed) when a job is accepted, before the API answers 202; each
// state change is one small UPDATE of that row (status, error, finish time); a succeeded job's file is written
// (to a temporary name, then renamed) before its row says succeeded, so a row that says succeeded always
// has its file; an evicted job's row and file are deleted. Step progress, stage timings and routes are not
// written: after a restart a job that was queued or running starts again from the beginning (Load).
//
// One process at a time: the journal holds an exclusive lock on <directory>/lock for as long as it is open, so a
// second server started on the same storage directory stops at start-up saying so (JobStoreInUseException) instead
// of handing out the same job ids and overwriting the first one's rows and results. The lock is the operating
// system's (released when the process dies, kill -9 included); the file itself stays.
//
// A crash (kill -9) loses nothing that was committed: WAL keeps the database consistent, and every commit
// of this process is in the WAL before the call returns (synchronous=NORMAL only risks the last commits on
// a power loss, not on a process crash).

using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Trident.Runtime.Devices;
using Trident.Runtime.Imaging;

namespace Trident.Runtime.Serving;

/// <summary>A job as the journal holds it.</summary>
/// <param name="Id">The job's id.</param>
/// <param name="Input">What to generate.</param>
/// <param name="CreatedAt">Wall-clock time of acceptance.</param>
/// <param name="DeadlineSeconds">Deadline, seconds after arrival.</param>
/// <param name="DeadlineGiven">Whether the client set it.</param>
/// <param name="Priority">The client's priority, if any.</param>
/// <param name="Status">The last status written.</param>
/// <param name="Error">Why it failed.</param>
/// <param name="FinishedAt">Wall-clock time of its final state.</param>
/// <param name="Frames">Frames of its result.</param>
/// <param name="Width">Width of its result.</param>
/// <param name="Height">Height of its result.</param>
/// <param name="CancelRequested">Whether a cancel was accepted while it ran.</param>
public sealed record StoredJob(long Id, GenerationInput Input, DateTimeOffset CreatedAt, double DeadlineSeconds, bool DeadlineGiven, int? Priority,
    JobStatus Status, string? Error, DateTimeOffset? FinishedAt, int Frames, int Width, int Height, bool CancelRequested);

/// <summary>The job store's SQLite journal and result files.</summary>
public sealed class JobJournal : IDisposable
{
    private readonly object _gate = new();
    private readonly SqliteConnection _db;
    private readonly SqliteCommand _insert, _move, _delete, _cancel;
    private readonly FileStream _lock;
    private bool _closed;

    /// <summary>The suffix of a result file being written (renamed to its name once complete).</summary>
    public const string PartialSuffix = ".tmp";

    private JobJournal(string directory, JobStoreLock? held)
    {
        Directory = Path.GetFullPath(directory);
        ResultsDirectory = Path.Combine(Directory, "results");
        System.IO.Directory.CreateDirectory(ResultsDirectory);
        // the lock taken at start-up (Reserve) is kept, so that no other server takes the store in between
        _lock = held is not null && held.Directory == Directory ? held.Adopt() : Lock(Directory);
        try
        {
            // a result file half written when the process ended (kill -9 in Moved, before its rename): nothing
            // refers to it (the job's row still says it runs, so it runs again); with the store's lock held no
            // other server writes here
            foreach (var partial in System.IO.Directory.EnumerateFiles(ResultsDirectory, "*" + PartialSuffix)) File.Delete(partial);
            _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(Directory, "jobs.db"), Pooling = false }.ToString());
            _db.Open();
            Execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;");
            Execute("""
                CREATE TABLE IF NOT EXISTS jobs (
                  id INTEGER PRIMARY KEY,
                  input TEXT NOT NULL,
                  created_at INTEGER NOT NULL,
                  deadline_s REAL NOT NULL,
                  deadline_given INTEGER NOT NULL,
                  priority INTEGER,
                  status INTEGER NOT NULL,
                  error TEXT,
                  finished_at INTEGER,
                  frames INTEGER NOT NULL DEFAULT 0,
                  width INTEGER NOT NULL DEFAULT 0,
                  height INTEGER NOT NULL DEFAULT 0,
                  cancel_requested INTEGER NOT NULL DEFAULT 0)
                """);
            _insert = Command("INSERT OR REPLACE INTO jobs (id, input, created_at, deadline_s, deadline_given, priority, status) VALUES ($id, $input, $created, $deadline, $given, $priority, $status)",
                "$id", "$input", "$created", "$deadline", "$given", "$priority", "$status");
            _move = Command("UPDATE jobs SET status = $status, error = $error, finished_at = $finished, frames = $frames, width = $width, height = $height WHERE id = $id",
                "$id", "$status", "$error", "$finished", "$frames", "$width", "$height");
            _delete = Command("DELETE FROM jobs WHERE id = $id", "$id");
            _cancel = Command("UPDATE jobs SET cancel_requested = 1 WHERE id = $id", "$id");
        }
        catch
        {
            // a database that does not open (not a database, a newer schema, a full disk): nothing stays open, the lock
            // included, so a start that fails here leaves the store free
            _insert?.Dispose();
            _move?.Dispose();
            _delete?.Dispose();
            _db?.Dispose();
            _lock.Dispose();
            throw;
        }
    }

    /// <summary>Opens (creating if needed) the journal in <paramref name="directory"/>.</summary>
    /// <exception cref="JobStoreInUseException">when another process (or another journal of this one) has the
    /// directory open.</exception>
    /// <param name="directory">The storage directory.</param>
    /// <param name="held">The store's lock taken before (<see cref="Reserve"/>): the journal keeps it (and releases it
    /// when disposed, or when the journal cannot be opened) instead of taking it again, so no other process can take the
    /// store in between.</param>
    public static JobJournal Open(string directory, JobStoreLock? held = null) => new(directory, held);

    /// <summary>Fails with <see cref="JobStoreInUseException"/> when a journal is open on <paramref name="directory"/>
    /// now (a check only: the lock is released at once; <see cref="Reserve"/> keeps it).</summary>
    public static void CheckFree(string directory) => Reserve(directory).Dispose();

    /// <summary>Takes the store's lock now (creating the directory if needed) and holds it until the returned lock is
    /// disposed or handed to <see cref="Open"/>: a server takes it before its slow start-up (profiling, model loads), so
    /// a second server on the same directory stops at once instead of starting too and writing the same files.</summary>
    /// <exception cref="JobStoreInUseException">when another process (or another journal or reservation of this one)
    /// holds the store.</exception>
    /// <exception cref="IOException">(or <see cref="UnauthorizedAccessException"/>) when the directory or its lock
    /// file cannot be created.</exception>
    public static JobStoreLock Reserve(string directory)
    {
        var full = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(full);
        return new JobStoreLock(full, Lock(full));
    }

    /// <summary>The store's files in its directory, each a file the journal opens or creates: the database (with SQLite's
    /// write-ahead log and shared-memory index beside it) and the lock.</summary>
    private static readonly string[] StoreFiles = ["jobs.db", "jobs.db-wal", "jobs.db-shm", "lock"];

    /// <summary>Why a store could not be kept in <paramref name="directory"/>, or null when it can: the directory, or a
    /// file in it, cannot be created (the nearest existing directory on its path is written to: a temporary file, deleted
    /// at once); or, where the directory exists, its layout is not the store's — <c>results</c> is not a directory or
    /// takes no new files, or <c>jobs.db</c>, its <c>-wal</c> / <c>-shm</c> files or <c>lock</c> is a directory. Nothing
    /// is left behind, no file of the store is opened (a store in use by a server counts as usable: its lock is checked
    /// apart, by <see cref="CheckFree"/>).</summary>
    public static string? Unusable(string directory)
    {
        try
        {
            var full = Path.GetFullPath(directory);
            var existing = full;
            while (!System.IO.Directory.Exists(existing))
            {
                if (File.Exists(existing))
                    return existing == full ? $"'{full}' is a file, not a directory" : $"'{existing}' on its path is a file, not a directory";
                existing = Path.GetDirectoryName(existing);
                if (existing is null) return $"no directory on the path of '{full}' exists";
            }
            if (existing == full)
            {
                // the layout of a store that exists: before, a results file (or a jobs.db folder) failed the journal's
                // open after the server listened, exit 1, naming no key
                var results = Path.Combine(full, "results");
                if (!System.IO.Directory.Exists(results) && (File.Exists(results) || new FileInfo(results).LinkTarget is not null))
                    return $"'{results}', where the store keeps its result files, is {(File.Exists(results) ? "a file" : "a broken link")}, not a directory";
                foreach (var name in StoreFiles)
                {
                    var path = Path.Combine(full, name);
                    if (System.IO.Directory.Exists(path)) return $"'{path}', a file of the store, is a directory";
                }
                if (System.IO.Directory.Exists(results) && NoNewFile(results) is { } resultsWhy) return resultsWhy;
            }
            return NoNewFile(existing);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    }

    // Why no file can be created in the existing directory <folder>, or null when one can (a temporary file, deleted at once).
    private static string? NoNewFile(string folder)
    {
        var probe = Path.Combine(folder, $".trident-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var why = e is UnauthorizedAccessException ? "access denied: read-only, or not this user's" : $"{e.GetType().Name}, e.g. a file system such as /proc or /sys";
            return $"no file can be created in '{folder}' ({why})";
        }
    }

    // The exclusive lock on <directory>/lock (FileShare.None: an advisory lock on Unix, a sharing mode on Windows).
    private static FileStream Lock(string directory)
    {
        var path = Path.Combine(directory, "lock");
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        // only a held lock is "in use"; a lock file that cannot be opened (a read-only file system, a socket or a
        // device at its path, an I/O error) is that IOException, with its own reason
        catch (IOException ex) when (ex.GetType() == typeof(IOException) && IsHeldLock(ex))
        {
            throw new JobStoreInUseException(directory, ex);
        }
    }

    // The error a held lock gives: flock's EWOULDBLOCK on Unix (the runtime reports errno as HResult: 11 on Linux,
    // 35 on macOS), a sharing or lock violation on Windows (HRESULT_FROM_WIN32 of ERROR_SHARING_VIOLATION 32 and
    // ERROR_LOCK_VIOLATION 33).
    private static bool IsHeldLock(IOException ex) =>
        OperatingSystem.IsWindows()
            ? ex.HResult is unchecked((int)0x80070020) or unchecked((int)0x80070021)
            : ex.HResult == (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD() ? 35 : 11);

    /// <summary>The storage directory (absolute).</summary>
    public string Directory { get; }

    /// <summary>Where result files are written.</summary>
    public string ResultsDirectory { get; }

    /// <summary>The file of a succeeded job's result in <paramref name="format"/>.</summary>
    public string ResultPath(long id, MediaFormat format) =>
        Path.Combine(ResultsDirectory, id.ToString(CultureInfo.InvariantCulture) + "." + MediaFormats.Extension(format));

    /// <summary>The result file held for a job, whatever its format; null when there is none.</summary>
    public string? FindResult(long id) =>
        Enum.GetValues<MediaFormat>().Select(f => ResultPath(id, f)).FirstOrDefault(File.Exists);

    /// <summary>Records an accepted job (committed when this returns).</summary>
    public void Accepted(Job job, int? priority)
    {
        lock (_gate)
        {
            if (_closed) return;
            var v = job.View();
            Set(_insert, job.Id.Value, JsonSerializer.Serialize(v.Input), v.CreatedAt.ToUnixTimeMilliseconds(), v.Deadline - v.Arrival, v.DeadlineGiven ? 1 : 0,
                priority, (int)v.Status);
            _insert.ExecuteNonQuery();
        }
    }

    /// <summary>Runs the accept path once — the input's JSON and the prepared insert — in a transaction that is rolled
    /// back: nothing is written. The first job accepted otherwise paid for their first use (≈ 60 ms on a 2-core machine)
    /// between its arrival and its hand-over to the serving loop, i.e. in its queue wait.</summary>
    public void WarmUp()
    {
        lock (_gate)
        {
            if (_closed) return;
            using var tx = _db.BeginTransaction();
            try
            {
                _insert.Transaction = tx;
                Set(_insert, -1L, JsonSerializer.Serialize(new GenerationInput("warm-up", null, 64, 64, 1, 1, 0, 0)), 0L, 0.0, 0, null, 0);
                _insert.ExecuteNonQuery();
            }
            finally
            {
                tx.Rollback();
                _insert.Transaction = null;
            }
        }
    }

    /// <summary>Records a job's new status (for a success, its result file first). Called under the job's lock.</summary>
    public void Moved(Job job, JobStatus status, string? error, JobResult? result, DateTimeOffset? finishedAt)
    {
        lock (_gate)
        {
            if (_closed) return;
            if (status == JobStatus.Succeeded && result is not null)
            {
                var path = ResultPath(job.Id.Value, result.Format);
                var temp = path + PartialSuffix;
                File.WriteAllBytes(temp, result.File);
                File.Move(temp, path, overwrite: true);
            }
            Set(_move, job.Id.Value, (int)status, error, finishedAt?.ToUnixTimeMilliseconds(), result?.Frames ?? 0, result?.Width ?? 0, result?.Height ?? 0);
            _move.ExecuteNonQuery();
        }
    }

    /// <summary>Records an accepted cancel of a running job (the cancel rule holds across a restart: the job
    /// comes back cancelled). Called under the job's lock, before the API answers.</summary>
    public void CancelAccepted(Job job)
    {
        lock (_gate)
        {
            if (_closed) return;
            Set(_cancel, job.Id.Value);
            _cancel.ExecuteNonQuery();
        }
    }

    /// <summary>Called when a write for a job failed (a full disk, the results folder gone): the job id, the state that
    /// was not recorded (null: its removal) and the error. The job goes on in memory (<see cref="Job"/>); the server
    /// logs it.</summary>
    public Action<long, JobStatus?, Exception>? WriteFailed { get; set; }

    /// <summary>Forgets a job (evicted): its row and its result file. A store that cannot take the delete (a full disk,
    /// its results folder gone) is reported through <see cref="WriteFailed"/>, not thrown: the eviction runs in the
    /// serving loop's round, which it must not fail (a row left behind is evicted again after a restart).</summary>
    public void Removed(long id)
    {
        lock (_gate)
        {
            if (_closed) return;
            try
            {
                Set(_delete, id);
                _delete.ExecuteNonQuery();
                foreach (var format in Enum.GetValues<MediaFormat>())
                {
                    var path = ResultPath(id, format);
                    if (File.Exists(path)) File.Delete(path);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Data.Common.DbException)
            {
                WriteFailed?.Invoke(id, null, e);
            }
        }
    }

    /// <summary>Every job recorded, in id order.</summary>
    public IReadOnlyList<StoredJob> Load()
    {
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT id, input, created_at, deadline_s, deadline_given, priority, status, error, finished_at, frames, width, height, cancel_requested FROM jobs ORDER BY id";
            using var r = cmd.ExecuteReader();
            var jobs = new List<StoredJob>();
            while (r.Read())
                jobs.Add(new StoredJob(r.GetInt64(0), JsonSerializer.Deserialize<GenerationInput>(r.GetString(1))!,
                    DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2)), r.GetDouble(3), r.GetInt64(4) != 0,
                    r.IsDBNull(5) ? null : r.GetInt32(5), (JobStatus)r.GetInt32(6), r.IsDBNull(7) ? null : r.GetString(7),
                    r.IsDBNull(8) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(8)), r.GetInt32(9), r.GetInt32(10), r.GetInt32(11), r.GetInt64(12) != 0));
            return jobs;
        }
    }

    /// <summary>
    /// The jobs to hold again after a restart, in id order, on a server clock that reads <paramref name="now"/>
    /// at wall time <paramref name="wall"/>. A finished job comes back as it was (its result read from its
    /// file; a missing file makes it failed, recorded so), and so does one whose cancel was accepted (it ends
    /// cancelled now), its arrival mapped onto the new clock so its
    /// retention runs from its real finish. A queued or running one comes back queued (recorded so), arriving
    /// now, its deadline the same time after arrival, writing its transitions here: Requeue is true, and
    /// Was is the status it had. A stored priority comes back as it is, even out of the API's range (a job
    /// journalled before the range existed): the planner clamps it (<c>Priority.level</c>); a replay file's is
    /// refused instead (<see cref="SnapshotJson.Read"/>).
    /// </summary>
    public IReadOnlyList<(Job Job, bool Requeue, JobStatus Was)> Recover(Trident.Scheduling.Ids.ModelName model, double now, DateTimeOffset wall)
    {
        var jobs = new List<(Job, bool, JobStatus)>();
        foreach (var s in Load())
        {
            var id = Trident.Scheduling.Ids.RequestId.NewRequestId(s.Id);
            var priority = s.Priority is { } p ? Microsoft.FSharp.Core.FSharpOption<int>.Some(p) : Microsoft.FSharp.Core.FSharpOption<int>.None;
            if (!Job.IsTerminalStatus(s.Status) && s.CancelRequested)
            {
                // a cancel was accepted: the job ends cancelled now, as the cancel rule promised
                var arrival = now - (wall - s.CreatedAt).TotalSeconds;
                var request = new Trident.Scheduling.Request(id, model, s.Input.Shape, s.Input.Steps, arrival, arrival + s.DeadlineSeconds, priority);
                // the reason it was cancelled is not stored (only that a cancel was accepted): say what is known
                const string reason = "cancelled while it ran; the server restarted before it stopped";
                var job = Job.Restored(request, s.Input, s.CreatedAt, s.DeadlineGiven, JobStatus.Cancelled, reason, null, now);
                Moved(job, JobStatus.Cancelled, reason, null, job.FinishedAt);
                jobs.Add((job, false, s.Status));
            }
            else if (Job.IsTerminalStatus(s.Status))
            {
                var arrival = now - (wall - s.CreatedAt).TotalSeconds;
                var finished = arrival + Math.Max(0, ((s.FinishedAt ?? s.CreatedAt) - s.CreatedAt).TotalSeconds);
                var status = s.Status;
                var error = s.Error;
                JobResult? result = null;
                if (status == JobStatus.Succeeded)
                {
                    if (ReadResult(s.Id) is var (bytes, format) && bytes is not null) result = new JobResult(bytes, format, s.Frames, s.Width, s.Height);
                    else
                    {
                        status = JobStatus.Failed;
                        error = "its result file was lost while the server was down";
                    }
                }
                var request = new Trident.Scheduling.Request(id, model, s.Input.Shape, s.Input.Steps, arrival, arrival + s.DeadlineSeconds, priority);
                var job = Job.Restored(request, s.Input, s.CreatedAt, s.DeadlineGiven, status, error, result, finished);
                if (status != s.Status) Moved(job, status, error, null, job.FinishedAt);
                jobs.Add((job, false, s.Status));
            }
            else
            {
                var request = new Trident.Scheduling.Request(id, model, s.Input.Shape, s.Input.Steps, now, now + s.DeadlineSeconds, priority);
                var job = new Job(request, s.Input, s.CreatedAt, s.DeadlineGiven, wall);
                if (s.Status != JobStatus.Queued) Moved(job, JobStatus.Queued, null, null, null);
                job.Journal = this;
                jobs.Add((job, true, s.Status));
            }
        }
        return jobs;
    }

    /// <summary>Reads a result file and its format (from its extension); null bytes when it is missing.</summary>
    public (byte[]? Bytes, MediaFormat Format) ReadResult(long id)
    {
        if (FindResult(id) is not { } path) return (null, MediaFormat.Png);
        return (File.ReadAllBytes(path), MediaFormats.FromExtension(Path.GetExtension(path)[1..])!.Value);
    }

    /// <summary>Tests: behave as if the process died now — nothing is written from here on (a kill -9 in
    /// process).</summary>
    public void Abandon()
    {
        lock (_gate) _closed = true;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            _closed = true;
            _insert.Dispose();
            _move.Dispose();
            _delete.Dispose();
            _cancel.Dispose();
            _db.Dispose();
            _lock.Dispose();
        }
    }

    private void Execute(string sql)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private SqliteCommand Command(string sql, params string[] names)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var n in names) cmd.Parameters.Add(new SqliteParameter { ParameterName = n });
        cmd.Prepare();
        return cmd;
    }

    private static void Set(SqliteCommand cmd, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++) cmd.Parameters[i].Value = values[i] ?? DBNull.Value;
    }
}

/// <summary>The job store's lock, taken by <see cref="JobJournal.Reserve"/>: held until disposed, or until the journal
/// it is handed to (<see cref="JobJournal.Open"/>) is.</summary>
public sealed class JobStoreLock : IDisposable
{
    private FileStream? _file;

    internal JobStoreLock(string directory, FileStream file)
    {
        Directory = directory;
        _file = file;
    }

    /// <summary>The storage directory (absolute).</summary>
    public string Directory { get; }

    // The journal takes the lock over: disposing this no longer releases it.
    internal FileStream Adopt() =>
        Interlocked.Exchange(ref _file, null) ?? throw new InvalidOperationException($"the lock of the job store {Directory} was released or handed over already");

    /// <summary>Releases the lock, unless a journal has taken it over.</summary>
    public void Dispose() => Interlocked.Exchange(ref _file, null)?.Dispose();
}

/// <summary>The job store's directory is open in another process (or another journal of this one): two servers on one
/// store would hand out the same job ids and overwrite each other's jobs and results.</summary>
public sealed class JobStoreInUseException(string directory, Exception inner)
    : InvalidOperationException($"the job store {directory} is in use by another trident server (its lock file {Path.Combine(directory, "lock")} is held); " +
        "give each server its own Trident:Storage:Directory, or 'memory' for a store that is not kept", inner)
{
    /// <summary>The storage directory.</summary>
    public string Directory { get; } = directory;
}
