// The job store: every accepted job until its retention time after it finished. It is bounded: when it
// is full, finished jobs are evicted oldest first; when every job it holds is still active it refuses new
// ones (the API answers 429), so nothing accepted is ever dropped to make room. A job a client deleted while it
// still ran (DELETE /v1/videos/{id}: cancelled, it stops at its next step boundary) is gone for every reader at
// once — Find, Page and Recent leave it out, and the durable store forgets it — while it stays held (Active, Count)
// until it stops and is removed.

using Trident.Scheduling;

namespace Trident.Runtime.Serving;

/// <summary>Bounded, evicting store of jobs by id.</summary>
public sealed class JobStore
{
    private readonly object _gate = new();
    private readonly Dictionary<long, Job> _jobs = new();
    // Acceptance order; finished jobs are evicted from the front.
    private readonly LinkedList<Job> _order = new();
    // Ids of the jobs deleted while still running: hidden from the readers until they stop and are removed.
    private readonly HashSet<long> _deleted = new();
    private readonly TimeProvider _time;

    /// <summary>Creates an empty store.</summary>
    /// <param name="capacity">Most jobs held at once, active and finished.</param>
    /// <param name="retention">How long a finished job (and its result) is kept.</param>
    /// <param name="time">The wall clock.</param>
    public JobStore(int capacity, TimeSpan retention, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        Capacity = capacity;
        Retention = retention;
        _time = time;
    }

    /// <summary>Most jobs held at once.</summary>
    public int Capacity { get; }

    /// <summary>How long a finished job is kept.</summary>
    public TimeSpan Retention { get; }

    /// <summary>Jobs held now.</summary>
    public int Count { get { lock (_gate) return _jobs.Count; } }

    /// <summary>Adds a job, evicting expired and then the oldest finished jobs to make room. False when the
    /// store is full of active jobs.</summary>
    public bool TryAdd(Job job)
    {
        lock (_gate)
        {
            EvictExpired();
            if (_jobs.Count >= Capacity) EvictOldestFinished();
            if (_jobs.Count >= Capacity) return false;
            _jobs.Add(job.Id.Value, job);
            _order.AddLast(job);
            return true;
        }
    }

    /// <summary>The job with this id, if held and not deleted.</summary>
    public Job? Find(RequestId id)
    {
        lock (_gate) return _deleted.Contains(id.Value) ? null : _jobs.GetValueOrDefault(id.Value);
    }

    /// <summary>The jobs not yet over, in acceptance order.</summary>
    public IReadOnlyList<Job> Active()
    {
        lock (_gate) return _order.Where(j => !Job.IsTerminalStatus(j.Status)).ToArray();
    }

    /// <summary>The last <paramref name="max"/> jobs accepted (finished or not, not deleted), oldest first: what the
    /// web view draws. O(max) under the lock.</summary>
    public IReadOnlyList<Job> Recent(int max)
    {
        lock (_gate)
        {
            var jobs = new List<Job>(Math.Min(max, _jobs.Count));
            for (var node = _order.Last; node is not null && jobs.Count < max; node = node.Previous)
                if (!_deleted.Contains(node.Value.Id.Value)) jobs.Add(node.Value);
            jobs.Reverse();
            return jobs;
        }
    }

    /// <summary>A page of the held jobs (not deleted) that <paramref name="keep"/> admits, in id order (the order of acceptance):
    /// ascending, the jobs with an id above <paramref name="after"/>, or descending (newest first), those below it; at
    /// most <paramref name="limit"/> of them, and whether more follow. O(n log n) in the jobs held, under the lock
    /// (the store holds at most <see cref="Capacity"/>).</summary>
    /// <param name="keep">Which jobs to list (e.g. videos only, or some statuses).</param>
    /// <param name="after">The cursor: the last id of the previous page, or null for the first page.</param>
    /// <param name="limit">Most jobs in the page, ≥ 0.</param>
    /// <param name="ascending">Oldest first instead of newest first.</param>
    public (IReadOnlyList<Job> Jobs, bool HasMore) Page(Func<Job, bool> keep, long? after, int limit, bool ascending)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        lock (_gate)
        {
            var past = _jobs.Values.Where(j => after is not { } a || (ascending ? j.Id.Value > a : j.Id.Value < a))
                .Where(j => !_deleted.Contains(j.Id.Value)).Where(keep);
            var page = (ascending ? past.OrderBy(j => j.Id.Value) : past.OrderByDescending(j => j.Id.Value)).Take(limit + 1).ToList();
            var more = page.Count > limit;
            if (more) page.RemoveAt(limit);
            return (page, more);
        }
    }

    /// <summary>Drops finished jobs whose retention has passed; returns how many.</summary>
    public int EvictExpired()
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            var evicted = 0;
            for (var node = _order.First; node is not null;)
            {
                var next = node.Next;
                if (FinishedAt(node.Value) is { } at && now - at >= Retention)
                {
                    Remove(node);
                    evicted++;
                }
                node = next;
            }
            return evicted;
        }
    }

    // When a job finished, on the wall clock: its arrival time plus its time in the server.
    private static DateTimeOffset? FinishedAt(Job job) => job.FinishedAt;

    /// <summary>Called (under the store's lock) for every job evicted or deleted: the durable store forgets it (a job
    /// deleted while it runs: when it is deleted, and again, harmlessly, when it is removed).</summary>
    public Action<Job>? Evicted { get; set; }

    /// <summary>Adds a job recovered after a restart, whatever the capacity (it was held before).</summary>
    public void Restore(Job job)
    {
        lock (_gate)
        {
            _jobs[job.Id.Value] = job;
            _order.AddLast(job);
        }
    }

    /// <summary>Forgets a job a client deleted. A finished one is removed now (the durable store forgets it too): true.
    /// One not yet over — its cancel accepted first, so it ends Cancelled — is deleted at once for every reader (Find,
    /// Page and Recent leave it out; the durable store forgets it, so it does not come back after a restart) but stays
    /// held while it runs: false, and the caller calls Delete again once it is over, which removes it. False also when
    /// the job is not held.</summary>
    public bool Delete(Job job)
    {
        lock (_gate)
        {
            if (!_jobs.TryGetValue(job.Id.Value, out var held) || !ReferenceEquals(held, job)) return false;
            if (!job.View().IsTerminal)
            {
                if (_deleted.Add(job.Id.Value)) Evicted?.Invoke(job);
                return false;
            }
            for (var node = _order.First; node is not null; node = node.Next)
                if (ReferenceEquals(node.Value, job))
                {
                    Remove(node);
                    return true;
                }
            return false;
        }
    }

    /// <summary>Takes back a job just added (its acceptance could not be recorded).</summary>
    public void Withdraw(Job job)
    {
        lock (_gate)
        {
            if (_jobs.Remove(job.Id.Value)) _order.Remove(job);
        }
    }

    private void EvictOldestFinished()
    {
        for (var node = _order.First; node is not null; node = node.Next)
            if (node.Value.View().IsTerminal)
            {
                Remove(node);
                return;
            }
    }

    private void Remove(LinkedListNode<Job> node)
    {
        _jobs.Remove(node.Value.Id.Value);
        _deleted.Remove(node.Value.Id.Value);
        _order.Remove(node);
        Evicted?.Invoke(node.Value);
    }
}
