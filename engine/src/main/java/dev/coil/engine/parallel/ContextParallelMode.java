package dev.coil.engine.parallel;

import dev.coil.engine.runner.Devices;
import java.util.Locale;

/** When a prompt's context is sharded over several devices ({@code --context-parallel}). */
public enum ContextParallelMode {

    /**
     * Only when the context does not fit one device. Virtual CPU devices share one memory, so a
     * context that fits them together fits one of them: on the CPU, auto never shards.
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

    /** Whether a prompt runs sharded over {@code devices} (CPU devices; CUDA is decided by its backend). */
    public boolean shards(Devices devices) {
        if (!devices.isCpu() || devices.count() < 2) {
            return false;
        }
        return this == ALWAYS;
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
