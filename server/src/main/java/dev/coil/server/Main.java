package dev.coil.server;

import dev.coil.server.cli.BenchCommand;
import dev.coil.server.cli.GenerateCommand;
import dev.coil.server.cli.RunBatchCommand;
import dev.coil.server.cli.ScoreCommand;
import dev.coil.server.cli.ServeCommand;
import dev.coil.server.cli.VllmFlags;
import java.io.PrintWriter;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.UsageMessageSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.UnmatchedArgumentException;

/** The coil command line: generate, score, bench, serve and run-batch. */
@Command(name = "coil", mixinStandardHelpOptions = true, version = "coil 0.1.0",
        description = "Coil: inference for hybrid attention + Mamba-2 language models.",
        subcommands = {GenerateCommand.class, ScoreCommand.class, BenchCommand.class, ServeCommand.class,
            RunBatchCommand.class})
public final class Main implements Runnable {

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /**
     * The command line as {@link #main} runs it: a failed command prints {@code coil: <message>} to the error
     * stream and exits 1, with the stack trace only under {@code -Dcoil.debug=true}; an option picocli cannot
     * parse prints {@code coil: <message>} (and, for a vLLM flag Coil lacks, what it does instead) and where the
     * options are listed, and exits 2.
     */
    public static CommandLine commandLine() {
        CommandLine commandLine = new CommandLine(new Main())
                .setExecutionExceptionHandler((exception, command, parseResult) -> {
                    command.getErr().println("coil: " + exception.getMessage());
                    if (Boolean.getBoolean("coil.debug")) {
                        exception.printStackTrace(command.getErr());
                    }
                    return 1;
                })
                .setParameterExceptionHandler(Main::parameterError);
        commandLine.getHelpSectionMap().put(UsageMessageSpec.SECTION_KEY_SYNOPSIS, Main::synopsis);
        for (CommandLine subcommand : commandLine.getSubcommands().values()) {
            subcommand.getHelpSectionMap().put(UsageMessageSpec.SECTION_KEY_SYNOPSIS, Main::synopsis);
        }
        return commandLine;
    }

    /**
     * picocli's synopsis, wrapped only at the spaces between its elements: picocli's own wrapping also
     * breaks after a '-' or ',' inside one ("[--[no-]" / "prefix-caching]"), which reads as two options.
     */
    static String synopsis(CommandLine.Help help) {
        UsageMessageSpec usage = help.commandSpec().usageMessage();
        int width = usage.width();
        String line;
        try {
            usage.width(100_000); // one line, to be wrapped below
            line = help.synopsis(help.synopsisHeadingLength()).strip();
        } finally {
            usage.width(width);
        }
        List<String> elements = new java.util.ArrayList<>();
        int depth = 0;
        int start = 0;
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            depth += c == '[' ? 1 : c == ']' ? -1 : 0;
            if (c == ' ' && depth == 0) {
                elements.add(line.substring(start, i));
                start = i + 1;
            }
        }
        elements.add(line.substring(start));
        String command = help.commandSpec().qualifiedName();
        int indent = help.synopsisHeadingLength() + command.length() + 1;
        StringBuilder out = new StringBuilder();
        int column = help.synopsisHeadingLength();
        for (String element : elements) {
            if (column > help.synopsisHeadingLength() && column + 1 + element.length() > width) {
                out.append(System.lineSeparator()).append(" ".repeat(indent));
                column = indent;
            } else if (column > help.synopsisHeadingLength()) {
                out.append(' ');
                column++;
            }
            out.append(element);
            column += element.length();
        }
        return out.append(System.lineSeparator()).toString();
    }

    /**
     * A malformed command line: the error and a pointer to --help, in two lines. picocli's default
     * follows the error with the whole usage (30 to 80 lines), which pushes the error itself off the
     * screen.
     */
    private static int parameterError(ParameterException exception, String[] args) {
        CommandLine failed = exception.getCommandLine();
        PrintWriter err = failed.getErr();
        err.println("coil: " + exception.getMessage());
        List<String> suggestions = List.of();
        if (exception instanceof UnmatchedArgumentException unmatched) {
            for (String argument : unmatched.getUnmatched()) {
                VllmFlags.instead(argument).ifPresent(hint -> err.println("coil: " + hint));
            }
            suggestions = unmatched.getSuggestions();
        }
        String command = failed.getCommandSpec().qualifiedName();
        err.println((suggestions.isEmpty() ? "" : "Did you mean " + String.join(" or ", suggestions) + "? ")
                + "Try '" + command + " --help' for the "
                + (failed.getSubcommands().isEmpty() ? "options." : "commands."));
        return failed.getCommandSpec().exitCodeOnInvalidInput();
    }
}
