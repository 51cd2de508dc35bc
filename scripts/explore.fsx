// Exploration script: filled in with the planners (issue 2 §8).
#r "../src/Trident.Scheduling/bin/Release/net10.0/Trident.Scheduling.dll"
printfn "Trident.Scheduling loaded"
