namespace Trident.Scheduling

// Design note. The two searches over simulations that the reports and the capacity planner make:
//   * the fewest nodes at which a policy reaches a target attainment (integer bisection after a
//     doubling bracket: attainment is taken as non-decreasing in the number of devices);
//   * the arrival rate at which a policy's attainment comes to a target (bisection on log rate
//     after a doubling/halving bracket: attainment is taken as non-increasing in the rate).
// Both take the simulation as a function, so they stay pure: the caller runs (and times, and
// reports progress of) each simulation. Every probe is counted and bounded.

/// One probe of a search: the value tried and the attainment the simulation gave.
type Probe = { Value: float; Attainment: float }

module Search =
    /// The fewest nodes n in [1, maxNodes] with `attainment n` ≥ target, probing from `start` (doubling
    /// up while short of the target, then bisecting). Returns the answer (None when even `maxNodes`
    /// falls short) and the probes in the order they were made. At most ⌈log2 maxNodes⌉ · 2 + 2 probes.
    /// Doubling stops early, with None, when two doublings in a row leave the attainment exactly where it
    /// was (as `rateFor`'s halving does), 0 included: the policy is taken never to reach the target (`cappedAt`).
    let fewestNodes (attainment: int -> float) (target: float) (start: int) (maxNodes: int) : int option * Probe list =
        if maxNodes < 1 then invalidArg (nameof maxNodes) "maxNodes must be at least 1"
        let probes = ResizeArray<Probe>()
        let cache = System.Collections.Generic.Dictionary<int, float>()
        let meets n =
            match cache.TryGetValue n with
            | true, a -> a >= target
            | _ ->
                let a = attainment n
                cache.[n] <- a
                probes.Add { Value = float n; Attainment = a }
                a >= target
        let start = start |> max 1 |> min maxNodes
        // bracket: lo fails (or 0), hi meets; doubling stops when two doublings in a row leave the attainment
        // where it was (capped by what more devices do not change, e.g. requests that never fit). That holds
        // for 0 too: nothing on time at n, 2n and 4n nodes (a quarter of the load of n, and even the first
        // arrivals, which find the cluster idle, late) is taken as deadlines no size meets; an overloaded
        // small cluster that is at 0 on n nodes and rises by 4n is not flat and goes on.
        let rec up lo n flat =
            if meets n then Some(lo, n)
            elif n >= maxNodes then None
            else
                let flat = if abs (cache.[n] - cache.[lo]) < 1e-9 then flat + 1 else 0
                if flat >= 2 then None else up n (min maxNodes (2 * n)) flat
        let bracket =
            if meets start then
                let rec down hi =
                    let n = hi / 2
                    if n < 1 then Some(0, hi)
                    elif meets n then down n
                    else Some(n, hi)
                down start
            else up start (min maxNodes (2 * start)) 0
        let answer =
            bracket
            |> Option.map (fun (lo, hi) ->
                let mutable lo, hi = lo, hi
                while hi - lo > 1 do
                    let mid = (lo + hi) / 2
                    if meets mid then hi <- mid else lo <- mid
                hi)
        answer, List.ofSeq probes

    /// When `fewestNodes` found no answer because the attainment stopped growing (its probes end below
    /// `maxNodes`): the attainment it is capped at and the node counts over which it stayed there; None
    /// when it had an answer or simply ran out of nodes.
    let cappedAt (answer: int option) (probes: Probe list) (maxNodes: int) : (float * int * int) option =
        match answer, probes with
        | None, _ :: _ when (probes |> List.map _.Value |> List.max) < float maxNodes ->
            let top = probes |> List.maxBy _.Value
            let flat = probes |> List.filter (fun p -> abs (p.Attainment - top.Attainment) < 1e-9) |> List.map _.Value
            Some(top.Attainment, int (List.min flat), int top.Value)
        | _ -> None

    /// The rate at which `attainment rate` comes within `tolerance` of `target`, from `start`
    /// (doubling or halving to bracket the target, at most 10 times, then bisecting on log rate);
    /// at most `maxProbes` simulations. Halving stops early when two halvings in a row leave the
    /// attainment where it was (it is capped by something the rate does not change, e.g. requests
    /// that never fit in memory). Returns the probe closest to the target and every probe.
    let rateFor (attainment: float -> float) (target: float) (tolerance: float) (start: float) (maxProbes: int) : Probe * Probe list =
        if start <= 0.0 then invalidArg (nameof start) "the start rate must be positive"
        if maxProbes < 1 then invalidArg (nameof maxProbes) "at least one probe"
        let probes = ResizeArray<Probe>()
        let probe r =
            let p = { Value = r; Attainment = attainment r }
            probes.Add p
            p
        let close (p: Probe) = abs (p.Attainment - target) <= tolerance
        let first = probe start
        // lo: attainment above target; hi: below
        let mutable lo, hi = None, None
        let place (p: Probe) = if p.Attainment > target then lo <- Some p.Value else hi <- Some p.Value
        place first
        let mutable doublings = 0
        let mutable found = close first
        let mutable flat = 0
        let mutable last = first.Attainment
        while not found && probes.Count < maxProbes && (lo.IsNone || hi.IsNone) && doublings < 10 && flat < 2 do
            let r = if lo.IsNone then hi.Value / 2.0 else lo.Value * 2.0
            let p = probe r
            place p
            found <- close p
            doublings <- doublings + 1
            flat <- (if lo.IsNone && abs (p.Attainment - last) < 1e-9 then flat + 1 else 0)
            last <- p.Attainment
        while not found && probes.Count < maxProbes && lo.IsSome && hi.IsSome do
            let p = probe (sqrt (lo.Value * hi.Value))
            place p
            found <- close p
        let best = probes |> Seq.minBy (fun p -> abs (p.Attainment - target))
        best, List.ofSeq probes
