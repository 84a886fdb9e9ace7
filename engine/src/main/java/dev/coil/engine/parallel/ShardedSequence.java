package dev.coil.engine.parallel;

import dev.coil.engine.model.AttentionMixer;
import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.KeyValueStore;
import dev.coil.engine.model.LayerState;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.ops.PagedKeyValues;

/**
 * One sequence whose context is spread over virtual devices: per device and attention block, the
 * keys and values of the positions that device holds (its prompt rows, and on the state device
 * the generated tokens' too); and, on the state device, the recurrent state of every Mamba block.
 * The state device holds the prompt's last chunk, so the Mamba state after the prompt is born there
 * and decoding continues there.
 */
public final class ShardedSequence {

    private final Sharding sharding;
    private final KeyValueShard[][] shards; // [device][block]; null for blocks without attention
    private final SequenceState recurrent; // the Mamba states, as the model's own mixers read them
    private int length;

    ShardedSequence(HybridModel model, Sharding sharding) {
        this.sharding = sharding;
        int blocks = model.config().blocks().size();
        this.shards = new KeyValueShard[sharding.devices()][blocks];
        for (int block = 0; block < blocks; block++) {
            if (model.mixer(block) instanceof AttentionMixer attention) {
                int width = attention.spec().kvHeads() * attention.spec().headDim();
                for (int device = 0; device < sharding.devices(); device++) {
                    shards[device][block] = new KeyValueShard(width, sharding.rows(device));
                }
            }
        }
        this.recurrent = model.newSequence(NO_KEY_VALUES, model.newLayerStates());
    }

    public Sharding sharding() {
        return sharding;
    }

    /** Tokens processed: the position of the next one. */
    public int length() {
        return length;
    }

    /** The device that holds the Mamba states and decodes. */
    public int stateDevice() {
        return sharding.owner(sharding.chunkCount() - 1);
    }

    /** How many positions of attention block {@code block} {@code device} holds. */
    public int shardLength(int device, int block) {
        return shards[device][block].length();
    }

    /** Mamba block {@code block}'s state: conv and SSM state after the tokens so far. */
    public LayerState.Mamba mambaState(int block) {
        return (LayerState.Mamba) recurrent.layer(block);
    }

    KeyValueShard[] shards(int block) {
        KeyValueShard[] perDevice = new KeyValueShard[shards.length];
        for (int device = 0; device < shards.length; device++) {
            perDevice[device] = shards[device][block];
        }
        return perDevice;
    }

    SequenceState recurrent() {
        return recurrent;
    }

    void advance(int tokens) {
        length += tokens;
    }

    /** The recurrent part has no attention layers: its K/V live in the shards. */
    private static final KeyValueStore NO_KEY_VALUES = new KeyValueStore() {
        @Override
        public int blockSize() {
            return 1;
        }

        @Override
        public PagedKeyValues layer(int block) {
            throw new IllegalStateException("the keys and values of a sharded sequence live in its shards, not in "
                    + "a paged store (block " + block + ")");
        }

        @Override
        public void reserve(SequenceState sequence, int positions) {
        }
    };
}
