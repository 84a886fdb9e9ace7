package dev.coil.server;

import dev.coil.server.cli.BenchCommand;
import dev.coil.server.cli.GenerateCommand;
import dev.coil.server.cli.RunBatchCommand;
import dev.coil.server.cli.ScoreCommand;
import dev.coil.server.cli.ServeCommand;
import java.io.PrintWriter;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;
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
     * parse prints {@code coil: <message>} and where the options are listed, and exits 2.
     */
    public static CommandLine commandLine() {
        return new CommandLine(new Main())
                .setExecutionExceptionHandler((exception, commandLine, parseResult) -> {
                    commandLine.getErr().println("coil: " + exception.getMessage());
                    if (Boolean.getBoolean("coil.debug")) {
                        exception.printStackTrace(commandLine.getErr());
                    }
                    return 1;
                })
                .setParameterExceptionHandler(Main::parameterError);
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
        List<String> suggestions = exception instanceof UnmatchedArgumentException unmatched
                ? unmatched.getSuggestions() : List.of();
        String command = failed.getCommandSpec().qualifiedName();
        err.println((suggestions.isEmpty() ? "" : "Did you mean " + String.join(" or ", suggestions) + "? ")
                + "Try '" + command + " --help' for the "
                + (failed.getSubcommands().isEmpty() ? "options." : "commands."));
        return failed.getCommandSpec().exitCodeOnInvalidInput();
    }
}
