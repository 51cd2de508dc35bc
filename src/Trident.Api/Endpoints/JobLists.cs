// The list routes' query: OpenAI's cursor pagination (its list-videos route takes after, limit 0–100 and order
// asc|desc, newest first by default, and answers {object: "list", data, first_id, last_id, has_more}); the native
// route takes the same and a status filter. A job is listed while the store holds it (until its retention ends
// after it finished; Trident:Jobs:RetentionSeconds). Every bad parameter is a 400 naming it (one the route does not
// take: QueryParameters, before the handler).

using System.Globalization;
using Trident.Api.Contracts;
using Trident.Runtime.Serving;

namespace Trident.Api.Endpoints;

/// <summary>A list route's parsed query.</summary>
/// <param name="After">The cursor: list the jobs past this id (older for newest first, newer for oldest first).</param>
/// <param name="Limit">Most jobs on the page.</param>
/// <param name="Ascending">Oldest first.</param>
internal sealed record JobListQuery(long? After, int Limit, bool Ascending)
{
    /// <summary>Jobs on a page when the query gives no limit.</summary>
    public const int DefaultLimit = 20;

    /// <summary>Most jobs on one page (OpenAI's bound).</summary>
    public const int MaxLimit = 100;

    /// <summary>Parses <c>after</c>, <c>limit</c> and <c>order</c>; an id is plain digits after <paramref name="idPrefix"/>.
    /// Null with the problems by parameter when one is bad.</summary>
    public static (JobListQuery? Query, Dictionary<string, string[]> Errors) Parse(string? after, string? limit, string? order, string idPrefix)
    {
        var errors = new Dictionary<string, string[]>();
        long? cursor = null;
        if (after is not null)
        {
            if (after.StartsWith(idPrefix, StringComparison.Ordinal)
                && long.TryParse(after.AsSpan(idPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                cursor = id;
            else errors["after"] = [$"'{after}' is not a job id: give the last_id of the previous page (ids look like {idPrefix}123)"];
        }
        var count = DefaultLimit;
        if (limit is not null && !(int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out count) && count <= MaxLimit))
            errors["limit"] = [$"must be a whole number from 0 to {MaxLimit} (got '{limit}')"];
        if (order is not (null or "asc" or "desc"))
            errors["order"] = [$"must be 'asc' (oldest first) or 'desc' (newest first, the default) (got '{order}')"];
        return errors.Count > 0 ? (null, errors) : (new JobListQuery(cursor, count, order == "asc"), errors);
    }

    /// <summary>The page of <paramref name="store"/>'s jobs that <paramref name="keep"/> admits, as <paramref name="wire"/>
    /// shows each, with ids as <paramref name="id"/> writes them.</summary>
    public JobListDto<T> Page<T>(JobStore store, Func<Job, bool> keep, Func<Job, T> wire, Func<Job, string> id)
    {
        var (jobs, more) = store.Page(keep, After, Limit, Ascending);
        return new JobListDto<T>("list", jobs.Select(wire).ToArray(), jobs.Count > 0 ? id(jobs[0]) : null,
            jobs.Count > 0 ? id(jobs[^1]) : null, more);
    }
}
