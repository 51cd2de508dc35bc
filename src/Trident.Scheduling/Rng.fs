namespace Trident.Scheduling

/// A pure, splittable pseudo-random generator (SplitMix64): a value in, a value and the next state
/// out. Planners never use randomness; workload generators, scenario generators and the simulator
/// do, and with this they stay deterministic for a seed on every platform and runtime.
[<Struct>]
type Rng =
    { State: uint64 }

module Rng =
    let create (seed: uint64) = { State = seed }

    /// The next 64 random bits and the next generator.
    let next (r: Rng) =
        let s = r.State + 0x9E3779B97F4A7C15UL
        let mutable z = s
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31), { State = s }

    /// Uniform in [0, 1).
    let uniform (r: Rng) =
        let bits, r = next r
        Operators.float (bits >>> 11) * (1.0 / 9007199254740992.0), r

    /// Uniform integer in [lo, hi] (inclusive).
    let between (lo: int) (hi: int) (r: Rng) =
        let u, r = uniform r
        lo + int (u * float (hi - lo + 1)) |> min hi, r

    /// Exponential with the given rate (mean 1/rate).
    let exponential (rate: float) (r: Rng) =
        let u, r = uniform r
        -log (1.0 - u) / rate, r

    /// One element of a non-empty array, uniformly.
    let pick (xs: 'a array) (r: Rng) =
        let i, r = between 0 (xs.Length - 1) r
        xs.[i], r

    /// An independent generator for a sub-stream (e.g. one per scenario).
    let split (r: Rng) =
        let a, r = next r
        { State = a }, r
