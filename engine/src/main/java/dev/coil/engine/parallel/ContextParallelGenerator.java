package dev.coil.engine.parallel;

import dev.coil.engine.runner.Generation;
import dev.coil.engine.runner.Generator;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.SamplingParams;

/**
 * {@link Generator}'s loop, with the prompt prefilled sharded over virtual devices and every
 * generated token decoded over the sharded context.
 */
public final class ContextParallelGenerator {

    private final LoadedModel loaded;
    private final ContextParallelModel model;
    private final ShardLayout layout;

    public ContextParallelGenerator(LoadedModel loaded, VirtualDevices devices, ShardLayout layout) {
        this.loaded = loaded;
        this.model = new ContextParallelModel(loaded.model(), devices);
        this.layout = layout;
    }

    public RingGeneration generate(int[] prompt, SamplingParams params, boolean ignoreEndOfSequence) {
        ShardedSequence[] sequence = new ShardedSequence[1];
        Generation generation = Generator.generate(loaded, new Generator.Steps() {
            @Override
            public float[] prefill(int[] tokens) {
                sequence[0] = model.newSequence(layout, tokens.length);
                return model.lastLogits(sequence[0], model.prefill(sequence[0], tokens));
            }

            @Override
            public float[] decode(int token) {
                return model.decode(sequence[0], token);
            }
        }, prompt, params, ignoreEndOfSequence, text -> { });
        return new RingGeneration(generation, sequence[0].sharding());
    }
}
