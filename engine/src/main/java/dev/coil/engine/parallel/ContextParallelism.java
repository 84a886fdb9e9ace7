package dev.coil.engine.parallel;

import java.util.Objects;

/**
 * Which of the serving engine's requests run with their context sharded, and how: the
 * {@link ShardedModel} that runs them, when ({@code --context-parallel}) and how a prompt is cut
 * ({@code --shard-layout}). The engine owns the model from the moment it is handed one and closes
 * it at shutdown.
 *
 * @param model  the sharded model, or null for an engine that never shards
 * @param mode   auto, always or never
 * @param layout how a sharded prompt is laid out over the devices
 */
public record ContextParallelism(ShardedModel model, ContextParallelMode mode, ShardLayout layout) {

    /** No sharded model: every request runs on the one-device engine. */
    public static final ContextParallelism NONE = new ContextParallelism(null, ContextParallelMode.NEVER,
            ShardLayout.ZIGZAG);

    public ContextParallelism {
        Objects.requireNonNull(mode, "context-parallel mode");
        Objects.requireNonNull(layout, "shard layout");
    }

    /**
     * Whether a request whose prompt and generated tokens take {@code positions} positions runs
     * sharded. Always: whenever there are two devices or more. Auto: when the positions exceed
     * what one device's cache holds for a sequence ({@link ShardedModel#positionsPerDevice}), or
     * when the one-device engine's cache could never hold them ({@code fitsOneDevice} false), which
     * it would otherwise refuse.
     */
    public boolean shards(long positions, boolean fitsOneDevice) {
        if (model == null || model.deviceCount() < 2) {
            return false;
        }
        return switch (mode) {
            case ALWAYS -> true;
            case AUTO -> positions > model.positionsPerDevice() || !fitsOneDevice;
            case NEVER -> false;
        };
    }

    /** The sharded model's path name ("ring xN"), or null without one. */
    public String path() {
        return model == null ? null : model.path();
    }

    @Override
    public String toString() {
        return model == null || model.deviceCount() < 2 ? "off"
                : mode + ", " + model.path() + ", " + layout + " shards";
    }
}
