package dev.coil.engine.parallel;

import java.util.Locale;

/**
 * When a request's context is sharded over several devices ({@code --context-parallel}); the rule
 * is {@link ContextParallelism#shards}.
 */
public enum ContextParallelMode {

    /**
     * Only when the context does not fit one device: prompt plus max_tokens past
     * {@link ShardedModel#positionsPerDevice}, or past what the serving engine's one-device cache
     * holds. Virtual CPU devices share one memory, so on the CPU only the second applies.
     */
    AUTO,
    /** Every prompt, whenever there are several devices. */
    ALWAYS,
    /** Never: one device runs the whole sequence. */
    NEVER;

    public static final String HELP = "auto, always or never";

    public static ContextParallelMode parse(String name) {
        String text = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        return switch (text) {
            case "auto" -> AUTO;
            case "always" -> ALWAYS;
            case "never" -> NEVER;
            default -> throw new IllegalArgumentException("--context-parallel must be " + HELP + "; got '" + name
                    + "'");
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
