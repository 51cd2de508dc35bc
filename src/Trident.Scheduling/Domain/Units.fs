namespace Trident.Scheduling

/// Units of measure used throughout the scheduling core.
[<AutoOpen>]
module Units =
    /// seconds
    [<Measure>] type s
    /// milliseconds
    [<Measure>] type ms
    /// gigabytes (1e9 bytes)
    [<Measure>] type GB
    /// bytes
    [<Measure>] type B
    /// requests (for rates: req/s)
    [<Measure>] type req
