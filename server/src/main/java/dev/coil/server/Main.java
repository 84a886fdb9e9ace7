package dev.coil.server;

import dev.coil.server.cli.BenchCommand;
import dev.coil.server.cli.GenerateCommand;
import dev.coil.server.cli.ScoreCommand;
import dev.coil.server.cli.ServeCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The coil command line: generate, score, bench and serve. */
@Command(name = "coil", mixinStandardHelpOptions = true, version = "coil 0.1.0",
        description = "Coil: inference for hybrid attention + Mamba-2 language models.",
        subcommands = {GenerateCommand.class, ScoreCommand.class, BenchCommand.class, ServeCommand.class})
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
     * stream and exits 1, with the stack trace only under {@code -Dcoil.debug=true}.
     */
    public static CommandLine commandLine() {
        return new CommandLine(new Main())
                .setExecutionExceptionHandler((exception, commandLine, parseResult) -> {
                    commandLine.getErr().println("coil: " + exception.getMessage());
                    if (Boolean.getBoolean("coil.debug")) {
                        exception.printStackTrace(commandLine.getErr());
                    }
                    return 1;
                });
    }
}
