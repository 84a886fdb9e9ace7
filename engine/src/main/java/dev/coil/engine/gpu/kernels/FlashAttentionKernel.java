package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.ops.AttentionShape;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Launches the flash attention forward of flash_attention.cu: the contract of {@code Ops.attention}
 * (causal, GQA) for a batch of equal-length sequences or prompt chunks of different lengths packed
 * in rows, on bf16 operands with f32 accumulation and
 * output, tensor cores for both products (warpgroup MMAs on Hopper, mma.sync elsewhere). Head dims
 * 64 and 128.
 */
public final class FlashAttentionKernel {

    /** Base-2 logarithm of e: the kernel's softmax runs on 2^x. */
    private static final double LOG2_E = 1.4426950408889634;

    /**
     * A compiled tile shape: queries per block, keys per step, warps (each owns queryRows / warps
     * rows). The kernel's name is flash_attention_d{headDim}_m{queryRows}_n{keyRows}_w{warps}.
     */
    record Tile(int headDim, int queryRows, int keyRows, int warps) {

        String kernelName() {
            return "flash_attention_d" + headDim + "_m" + queryRows + "_n" + keyRows + "_w" + warps;
        }

        /** The Q tile and one K and one V tile, bf16, and 1024 bytes to align them for the tensor cores. */
        int sharedBytes() {
            return (queryRows + 2 * keyRows) * headDim * 2 + 1024;
        }
    }

    /**
     * Every shape flash_attention.cu compiles, the first of each head dim the default. On an H100
     * (wgmma path) at the anchor shapes (1k to 16k tokens per sequence, causal or not) the 8-warp
     * tiles, two warpgroups of 64 rows each, were the fastest at every shape, by 1-8% over the
     * 4-warp ones (one warpgroup of two 64-row tiles); 64-key tiles at head dim 64, 32-key tiles
     * at 128 and 128-key tiles at 128 were 10-30% slower and are not compiled.
     */
    static final List<Tile> TILES = List.of(
            new Tile(64, 128, 128, 8),
            new Tile(64, 128, 128, 4),
            new Tile(128, 128, 64, 8),
            new Tile(128, 128, 64, 4));

    private final KernelModule module;
    private final Map<Tile, Kernel> prepared = new ConcurrentHashMap<>();
    private final Map<Tile, Kernel> preparedPartial = new ConcurrentHashMap<>();
    private final Map<Tile, Kernel> preparedPacked = new ConcurrentHashMap<>();

    public FlashAttentionKernel(KernelModule module) {
        this.module = module;
    }

    /**
     * Causal attention of {@code tokens} new queries per sequence against keys 0 .. past + tokens:
     * query t sits at position past + t. Query head h reads kv head h / (queryHeads / kvHeads).
     * q: [batch, tokens, queryHeads, headDim] bf16; keys, values: [batch, past + tokens, kvHeads,
     * headDim] bf16; out: [batch, tokens, queryHeads, headDim] f32; scores are q·k · scale.
     */
    public void launch(CudaStream stream, AttentionShape shape, int batch, int tokens, int past, float scale,
            DeviceBuffer q, DeviceBuffer keys, DeviceBuffer values, DeviceBuffer out) {
        launch(stream, defaultTile(shape.headDim()), shape, batch, tokens, past, scale, true, q, keys, values, out);
    }

    /** As {@link #launch}, every query seeing every key 0 .. past + tokens (encoders; benchmarks). */
    public void launchBidirectional(CudaStream stream, AttentionShape shape, int batch, int tokens, int past,
            float scale, DeviceBuffer q, DeviceBuffer keys, DeviceBuffer values, DeviceBuffer out) {
        launch(stream, defaultTile(shape.headDim()), shape, batch, tokens, past, scale, false, q, keys, values, out);
    }

    void launch(CudaStream stream, Tile tile, AttentionShape shape, int batch, int tokens, int past, float scale,
            boolean causal, DeviceBuffer q, DeviceBuffer keys, DeviceBuffer values, DeviceBuffer out) {
        int headDim = shape.headDim();
        if (tile.headDim() != headDim) {
            throw new IllegalArgumentException("tile " + tile + " is for head dim " + tile.headDim() + ", not " + headDim);
        }
        RowKernels.requirePositive(batch, "batch");
        check(shape, batch, tokens, past + tokens, past, scale, q, keys, values, out);
        if (tokens == 0) {
            return;
        }
        int rowBlocks = (tokens + tile.queryRows() - 1) / tile.queryRows();
        if (rowBlocks > 65535 || batch > 65535) {
            throw new IllegalArgumentException("flash attention takes at most 65535 · " + tile.queryRows()
                    + " tokens and 65535 sequences per launch, not " + tokens + " tokens and " + batch + " sequences");
        }
        Kernel kernel = prepared.computeIfAbsent(tile, t -> prepare(t, ""));
        kernel.launch(stream, shape.queryHeads(), rowBlocks, batch, tile.warps() * 32, tile.sharedBytes(), q, keys,
                values, out, tokens, past, shape.queryHeads(), shape.kvHeads(), (float) (scale * LOG2_E),
                causal ? 1 : 0);
    }

    /**
     * {@link #launch} for the prompt chunks of several sequences in one launch: chunk z's queries in
     * rows queries.starts[z] .. of q and out, at positions past + t with past = keys.counts[z] −
     * queries.lengths[z], against its keys in rows keys.starts[z] .. of {@code keys} and
     * {@code values}; each chunk's rows equal those of a launch for it alone.
     */
    public void launchPacked(CudaStream stream, AttentionShape shape, PackedChunks queries, PackedKeys keys,
            float scale, DeviceBuffer q, DeviceBuffer keyRows, DeviceBuffer valueRows, DeviceBuffer out) {
        Tile tile = defaultTile(shape.headDim());
        if (queries.first() != 0 || queries.chunks() != keys.sequences()) {
            throw new IllegalArgumentException("queries from row 0 and one key range a chunk: " + queries.chunks()
                    + " chunks from row " + queries.first() + ", " + keys.sequences() + " key ranges");
        }
        int[] lengths = queries.lengths();
        int[] counts = keys.counts();
        for (int z = 0; z < lengths.length; z++) {
            if (counts[z] < lengths[z]) {
                throw new IllegalArgumentException("chunk " + z + " has " + lengths[z] + " queries but only "
                        + counts[z] + " keys (its own positions at least)");
            }
        }
        checkOperands(shape, queries.rows(), keys.rows(), scale, q, keyRows, valueRows, out);
        int rowBlocks = (queries.longest() + tile.queryRows() - 1) / tile.queryRows();
        if (rowBlocks == 0) {
            return;
        }
        if (rowBlocks > 65535 || queries.chunks() > 65535) {
            throw new IllegalArgumentException("flash attention takes at most 65535 · " + tile.queryRows()
                    + " tokens and 65535 chunks per launch");
        }
        Kernel kernel = preparedPacked.computeIfAbsent(tile, t -> prepare(t, "_packed"));
        kernel.launch(stream, shape.queryHeads(), rowBlocks, queries.chunks(), tile.warps() * 32, tile.sharedBytes(),
                q, keyRows, valueRows, out, queries.starts(), keys.starts(), shape.queryHeads(), shape.kvHeads(),
                (float) (scale * LOG2_E), 1);
    }

    /**
     * Partial attention for ring attention: {@code tokens} queries at positions past + t against
     * {@code keys} keys at positions 0 .. keys − 1 (causal: query t sees keys up to past + t; else
     * every key), normalized over the keys seen, with each row's base-2 log-sum-exp of the scaled
     * scores in lse, for {@code ContextParallelKernels.merge}. One sequence; q: [tokens, queryHeads,
     * headDim] bf16; keys, values: [keys, kvHeads, headDim] bf16; out: [tokens, queryHeads, headDim]
     * f32; lse: [tokens, queryHeads] f32. A row that sees no key gets a zero row and lse −inf.
     */
    public void launchPartial(CudaStream stream, AttentionShape shape, int tokens, int keyCount, int past,
            float scale, boolean causal, DeviceBuffer q, DeviceBuffer keys, DeviceBuffer values, DeviceBuffer out,
            DeviceBuffer lse) {
        Tile tile = defaultTile(shape.headDim());
        RowKernels.requireNonNegative(keyCount, "keys");
        check(shape, 1, tokens, keyCount, past, scale, q, keys, values, out);
        lse.requireFloats((long) tokens * shape.queryHeads(), "lse");
        if (tokens == 0) {
            return;
        }
        int rowBlocks = (tokens + tile.queryRows() - 1) / tile.queryRows();
        if (rowBlocks > 65535) {
            throw new IllegalArgumentException("flash attention takes at most 65535 · " + tile.queryRows()
                    + " tokens per launch, not " + tokens);
        }
        Kernel kernel = preparedPartial.computeIfAbsent(tile, t -> prepare(t, "_partial"));
        kernel.launch(stream, shape.queryHeads(), rowBlocks, 1, tile.warps() * 32, tile.sharedBytes(), q, keys, values,
                out, lse, tokens, keyCount, past, shape.queryHeads(), shape.kvHeads(), (float) (scale * LOG2_E),
                causal ? 1 : 0);
    }

    /** Sizes, scale and alignment of one launch's operands: batch sequences of tokens queries and keyCount keys. */
    private static void check(AttentionShape shape, int batch, int tokens, int keyCount, int past, float scale,
            DeviceBuffer q, DeviceBuffer keys, DeviceBuffer values, DeviceBuffer out) {
        RowKernels.requireNonNegative(tokens, "tokens");
        RowKernels.requireNonNegative(past, "past");
        checkOperands(shape, (long) batch * tokens, (long) batch * keyCount, scale, q, keys, values, out);
    }

    /** The scale, and the operands' sizes and alignment for queryRows query rows and keyRows key rows. */
    private static void checkOperands(AttentionShape shape, long queryRows, long keyRows, float scale,
            DeviceBuffer q, DeviceBuffer keys, DeviceBuffer values, DeviceBuffer out) {
        if (!(scale > 0) || !Float.isFinite(scale)) {
            throw new IllegalArgumentException("scale must be positive and finite, not " + scale);
        }
        long queryElements = queryRows * shape.queryHeads() * shape.headDim();
        long keyElements = keyRows * shape.kvHeads() * shape.headDim();
        q.requireBytes(2 * queryElements, "q (bf16)");
        keys.requireBytes(2 * keyElements, "keys (bf16)");
        values.requireBytes(2 * keyElements, "values (bf16)");
        out.requireFloats(queryElements, "out");
        requireAligned(q, "q");
        requireAligned(keys, "keys");
        requireAligned(values, "values");
        requireAligned(out, "out");
    }

    /**
     * The tile's kernel of an entry point ("": the one-launch forward, "_partial", "_packed"), allowed
     * its shared memory (over the 48 KiB default for some tiles).
     */
    private Kernel prepare(Tile tile, String entry) {
        String name = tile.kernelName();
        Kernel kernel = module.kernel("flash_attention" + entry + name.substring("flash_attention".length()));
        kernel.allowDynamicSharedBytes(tile.sharedBytes());
        return kernel;
    }

    static Tile defaultTile(int headDim) {
        return TILES.stream().filter(tile -> tile.headDim() == headDim).findFirst().orElseThrow(
                () -> new IllegalArgumentException("flash attention supports head dims 64 and 128, not " + headDim));
    }

    static List<Tile> tiles(int headDim) {
        return TILES.stream().filter(tile -> tile.headDim() == headDim).toList();
    }

    /** The kernel reads rows in 16-byte pieces and writes float pairs: buffers start on 16 bytes. */
    private static void requireAligned(DeviceBuffer buffer, String name) {
        if (buffer.address() % 16 != 0) {
            throw new IllegalArgumentException(name + " must start on a 16-byte boundary on the device");
        }
    }
}
