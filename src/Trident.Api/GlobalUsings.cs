// The scheduler's typed ids (RequestId, DeviceId, NodeId, ModelName) live in an F# AutoOpen module.
global using static Trident.Scheduling.Ids;
