package dev.coil.engine.bench;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.MemoryBandwidth;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.HugePageArena;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.PagedKeyValues;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Decode attention over a paged cache beside the same attention over contiguous f32 keys and values,
 * for one layer (by default 32 query heads on 8 kv heads of dim 128) at several context lengths. Each
 * variant cycles through enough independent caches to hold about {@link #WORKING_SET_BYTES}, far more
 * than any L3, so every call reads its keys and values from memory as a real decode step does (the
 * other layers and the weights evict them in between). The paged caches sit on huge pages where the
 * kernel offers them, as the serving engine's block pool does ({@link HugePageArena}).
 *
 * <p>Prints µs per call and the effective bandwidth: bytes of keys and values in the cache's own
 * dtype over time. "gather" copies the sequence out of the blocks into fresh contiguous f32 rows and
 * runs contiguous attention over them, the way the paged op serves prefill, here timed at decode.
 *
 * <p>Arguments (all optional): threads, block size, tokens per call, the shape as query heads x kv heads
 * x head dim (say {@code 12x4x64}, the attention layers of {@code coil bench}'s model; may be left
 * out), then context lengths.
 */
public final class PagedAttentionBenchmark {

    private static final long WORKING_SET_BYTES = 512L << 20;
    private static final int ROUNDS = 8;
    private static final double SECONDS_PER_ROUND = 0.25;
    private static final AttentionShape DEFAULT_SHAPE = new AttentionShape(32, 8, 128);

    private PagedAttentionBenchmark() {}

    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
        int blockSize = args.length > 1 ? Integer.parseInt(args[1]) : 16;
        int tokens = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        boolean shapeGiven = args.length > 3 && args[3].contains("x");
        AttentionShape shape = shapeGiven ? parseShape(args[3]) : DEFAULT_SHAPE;
        int firstContext = shapeGiven ? 4 : 3;
        int[] contexts = args.length > firstContext
                ? Arrays.stream(args, firstContext, args.length).mapToInt(Integer::parseInt).toArray()
                : new int[] {512, 4096, 32768};
        CpuOps ops = new CpuOps(new Parallel(threads));
        System.out.printf(Locale.ROOT, "%d threads, %d query heads on %d kv heads of dim %d, block size %d, %d token(s)"
                + " per call%n", threads, shape.queryHeads(), shape.kvHeads(), shape.headDim(), blockSize, tokens);
        System.out.printf(Locale.ROOT, "memory read bandwidth (all cores): %.1f GB/s%n",
                MemoryBandwidth.measureReadGBps(WORKING_SET_BYTES, 3));
        System.out.printf(Locale.ROOT, "%8s  %-26s %10s %10s%n", "context", "variant", "µs/call", "GB/s");
        for (int context : contexts) {
            int past = context - tokens;
            String[] names = {"paged bf16", "paged f32", "contiguous f32", "bf16 gather + contiguous"};
            PagedCase bf16 = new PagedCase(shape, DType.BF16, blockSize, tokens, past);
            Variant[] variants = {bf16, new PagedCase(shape, DType.F32, blockSize, tokens, past),
                    new ContiguousCase(shape, tokens, past), new GatherCase(bf16)};
            double[] micros = measure(variants, ops);
            for (int v = 0; v < variants.length; v++) {
                System.out.printf(Locale.ROOT, "%8d  %-26s %10.1f %10.1f%n", context, names[v], micros[v],
                        variants[v].bytesPerCall() / micros[v] / 1e3);
            }
        }
    }

    /** "12x4x64": query heads, kv heads, head dim. */
    private static AttentionShape parseShape(String text) {
        String[] parts = text.split("x");
        if (parts.length != 3) {
            throw new IllegalArgumentException("shape must be query heads x kv heads x head dim, as 12x4x64: " + text);
        }
        return new AttentionShape(Integer.parseInt(parts[0]), Integer.parseInt(parts[1]), Integer.parseInt(parts[2]));
    }

    /** A way of running one decode call over copy {@code copy} of the cached keys and values. */
    private interface Variant {
        int copies();

        long bytesPerCall();

        void run(Ops ops, int copy);
    }

    /**
     * µs per call of each variant: the fastest of {@link #ROUNDS} timed rounds (each at least
     * {@link #SECONDS_PER_ROUND} and one pass over every copy), after an untimed warm-up. The rounds of
     * the variants take turns, so that whatever else the machine runs disturbs them alike, and the
     * fastest round is the one it disturbed least.
     */
    private static double[] measure(Variant[] variants, Ops ops) {
        double[] best = new double[variants.length];
        Arrays.fill(best, Double.POSITIVE_INFINITY);
        for (Variant variant : variants) {
            long warmUpEnd = System.nanoTime() + 500_000_000L;
            for (int call = 0; System.nanoTime() < warmUpEnd || call < Math.max(variant.copies(), 20); call++) {
                variant.run(ops, call % variant.copies());
            }
        }
        for (int round = 0; round < ROUNDS; round++) {
            for (int v = 0; v < variants.length; v++) {
                Variant variant = variants[v];
                long start = System.nanoTime();
                long end = start + (long) (SECONDS_PER_ROUND * 1e9);
                int calls = 0;
                long now;
                do {
                    variant.run(ops, calls++ % variant.copies());
                    now = System.nanoTime();
                } while (now < end || calls < variant.copies());
                best[v] = Math.min(best[v], (now - start) / 1e3 / calls);
            }
        }
        return best;
    }

    private static float[] gaussian(SplittableRandom random, int count) {
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }

    private static int copiesFor(long bytesPerCopy) {
        return (int) Math.max(1, Math.min(4096, WORKING_SET_BYTES / bytesPerCopy));
    }

    /** Independent sequences in one paged store, each with its own shuffled blocks. */
    private static final class PagedCase implements Variant {
        final AttentionShape shape;
        final int tokens;
        final int past;
        final PagedKeyValues cache;
        final int[][] tables;
        final float[] q;
        final float[] out;

        PagedCase(AttentionShape shape, DType dtype, int blockSize, int tokens, int past) {
            this.shape = shape;
            this.tokens = tokens;
            this.past = past;
            int length = past + tokens;
            int blocksPerSequence = Math.ceilDiv(length, blockSize);
            long bytesPerSequence = blocksPerSequence * PagedKeyValues.blockBytes(dtype, blockSize, shape.kvHeads(),
                    shape.headDim());
            int copies = copiesFor(bytesPerSequence);
            int blocks = copies * blocksPerSequence;
            cache = new PagedKeyValues(HugePageArena.ofAuto(), dtype, blocks, blockSize, shape.kvHeads(),
                    shape.headDim());
            SplittableRandom random = new SplittableRandom(1);
            int[] order = new int[blocks];
            for (int i = 0; i < blocks; i++) {
                order[i] = i;
            }
            for (int i = blocks - 1; i > 0; i--) {
                int j = random.nextInt(i + 1);
                int swap = order[i];
                order[i] = order[j];
                order[j] = swap;
            }
            tables = new int[copies][];
            // One block's worth of rows at a time: the same random rows serve every block (only the bytes matter).
            int rows = blockSize;
            float[] keys = gaussian(random, rows * cache.rowWidth());
            float[] values = gaussian(random, rows * cache.rowWidth());
            for (int c = 0; c < copies; c++) {
                tables[c] = Arrays.copyOfRange(order, c * blocksPerSequence, (c + 1) * blocksPerSequence);
                for (int start = 0; start < length; start += rows) {
                    cache.write(tables[c], start, Math.min(rows, length - start), keys, values);
                }
            }
            q = gaussian(random, tokens * shape.queryHeads() * shape.headDim());
            out = new float[q.length];
        }

        @Override
        public int copies() {
            return tables.length;
        }

        @Override
        public long bytesPerCall() {
            return 2L * (past + tokens) * cache.rowWidth() * cache.dtype().bytes();
        }

        @Override
        public void run(Ops ops, int copy) {
            ops.pagedAttention(shape, tokens, past, scale(shape), q, cache, tables[copy], out);
        }
    }

    /** The prefill path at decode: gather the sequence into new f32 arrays, then contiguous attention. */
    private static final class GatherCase implements Variant {
        final PagedCase paged;

        GatherCase(PagedCase paged) {
            this.paged = paged;
        }

        @Override
        public int copies() {
            return paged.copies();
        }

        @Override
        public long bytesPerCall() {
            return paged.bytesPerCall();
        }

        @Override
        public void run(Ops ops, int copy) {
            int length = paged.past + paged.tokens;
            float[] keys = new float[length * paged.cache.rowWidth()];
            float[] values = new float[keys.length];
            paged.cache.gather(paged.tables[copy], 0, length, keys, values);
            ops.attention(paged.shape, paged.tokens, paged.past, scale(paged.shape), paged.q, keys, values, paged.out);
        }
    }

    /** Independent contiguous f32 caches ([length, kvHeads, headDim]). */
    private static final class ContiguousCase implements Variant {
        final AttentionShape shape;
        final int tokens;
        final int past;
        final float[][] keys;
        final float[][] values;
        final float[] q;
        final float[] out;

        ContiguousCase(AttentionShape shape, int tokens, int past) {
            this.shape = shape;
            this.tokens = tokens;
            this.past = past;
            int elements = (past + tokens) * shape.kvHeads() * shape.headDim();
            int copies = copiesFor(2L * elements * Float.BYTES);
            SplittableRandom random = new SplittableRandom(2);
            float[] keyRows = gaussian(random, elements);
            float[] valueRows = gaussian(random, elements);
            keys = new float[copies][];
            values = new float[copies][];
            for (int c = 0; c < copies; c++) {
                keys[c] = keyRows.clone();
                values[c] = valueRows.clone();
            }
            q = gaussian(random, tokens * shape.queryHeads() * shape.headDim());
            out = new float[q.length];
        }

        @Override
        public int copies() {
            return keys.length;
        }

        @Override
        public long bytesPerCall() {
            return 2L * keys[0].length * Float.BYTES;
        }

        @Override
        public void run(Ops ops, int copy) {
            ops.attention(shape, tokens, past, scale(shape), q, keys[copy], values[copy], out);
        }
    }

    private static float scale(AttentionShape shape) {
        return (float) (1 / Math.sqrt(shape.headDim()));
    }
}
