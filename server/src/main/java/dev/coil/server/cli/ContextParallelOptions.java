package dev.coil.server.cli;

import dev.coil.engine.parallel.ContextParallelMode;
import dev.coil.engine.parallel.ShardLayout;
import picocli.CommandLine.Option;

/** --context-parallel and --shard-layout: whether and how one sequence's context is sharded over --devices. */
public final class ContextParallelOptions {

    @Option(names = "--context-parallel", paramLabel = "MODE", defaultValue = "auto",
            description = "Shard a request's context over the --devices (ring attention, Mamba state passing): "
                    + ContextParallelMode.HELP + ". auto shards only a context that does not fit one device "
                    + "(for serve, also one the one-device cache cannot hold; on virtual CPU devices, cpu:N, only "
                    + "that) (default ${DEFAULT-VALUE}).")
    String mode;

    @Option(names = "--shard-layout", paramLabel = "LAYOUT", defaultValue = "zigzag",
            description = "How a sharded prompt is cut: zigzag (device i holds chunks i and 2N-1-i of 2N, "
                    + "balancing the causal mask's work) or contiguous (device i holds chunk i of N) "
                    + "(default ${DEFAULT-VALUE}).")
    String layout;

    public ContextParallelMode mode() {
        return ContextParallelMode.parse(mode);
    }

    public ShardLayout layout() {
        return ShardLayout.parse(layout);
    }
}
