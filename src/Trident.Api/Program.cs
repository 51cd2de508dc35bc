using Trident.Api.Cli;

return await Commands.RunAsync(args);
