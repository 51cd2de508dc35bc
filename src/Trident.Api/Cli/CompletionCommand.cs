using System.CommandLine;

namespace Trident.Api.Cli;

/// <summary>
/// <c>trident completion bash|zsh</c>: prints a shell completion script. The script asks the executable itself
/// what may come next (System.CommandLine's <c>[suggest:N]</c> directive), so completion always matches the
/// commands, options and choices of the build that runs. Install: <c>source &lt;(./trident completion bash)</c>.
/// </summary>
public static class CompletionCommand
{
    private static readonly Argument<string> Shell = new("shell")
    {
        Description = "the shell to complete in: bash or zsh (zsh through its bash completion layer)",
        DefaultValueFactory = _ => "bash",
    };

    static CompletionCommand() => Shell.AcceptOnlyFromAmong("bash", "zsh");

    /// <summary>The command.</summary>
    public static Command Command { get; } = new Command("completion",
        "print a shell completion script for trident (bash or zsh): `source <(./trident completion bash)`") { Shell }
        .With((r, _) =>
        {
            if (r.GetValue(Shell) == "zsh") Console.WriteLine("autoload -U +X bashcompinit && bashcompinit");
            Console.Write(Script);
            return 0;
        });

    /// <summary>The bash completion function: the words before the cursor, without the program's name, go to
    /// <c>trident [suggest:POSITION] "LINE"</c>, which prints one candidate a line.</summary>
    public const string Script = """
        _trident_complete() {
          local line="${COMP_LINE:0:COMP_POINT}"
          local rest="${line#*[[:space:]]}"
          [ "$rest" = "$line" ] && rest=""
          local IFS=$'\n'
          COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "[suggest:${#rest}]" "$rest" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _trident_complete trident ./trident

        """;
}
