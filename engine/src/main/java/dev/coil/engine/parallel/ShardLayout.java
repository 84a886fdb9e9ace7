package dev.coil.engine.parallel;

import java.util.Locale;

/** How a prompt's positions are cut among the devices of a context-parallel run. */
public enum ShardLayout {

    /**
     * 2N contiguous chunks; device i owns chunks i and 2N-1-i. Under the causal mask each device
     * then has about the same number of (query, key) pairs to score: an early chunk with few keys
     * before it is paired with a late one with many.
     */
    ZIGZAG,

    /** N contiguous chunks; device i owns chunk i. The last device scores N times the pairs of the first. */
    CONTIGUOUS;

    /** Parses "zigzag" or "contiguous"; the message of a bad value names both. */
    public static ShardLayout parse(String name) {
        String text = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        return switch (text) {
            case "zigzag" -> ZIGZAG;
            case "contiguous" -> CONTIGUOUS;
            default -> throw new IllegalArgumentException("shard layout must be zigzag or contiguous; got '" + name
                    + "'");
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
