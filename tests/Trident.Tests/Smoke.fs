module Trident.Tests.Smoke

open Xunit

[<Fact>]
let ``the test project runs`` () = Assert.Equal(2, 1 + 1)
