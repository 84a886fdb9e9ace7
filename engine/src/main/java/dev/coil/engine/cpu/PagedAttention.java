package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.SequenceKernels.LANES;
import static dev.coil.engine.cpu.SequenceKernels.SPECIES;

import dev.coil.engine.load.DType;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.PagedKeyValues;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention over the paged cache, two ways.
 *
 * <p>Decode (one new token, or a few: at most {@link #IN_PLACE_ROWS} query rows per kv head) is memory
 * bound: each cached byte serves only the handful of query rows of one GQA group. The kernels read
 * keys and values straight from the blocks, in the cache's dtype, and each K/V row of a kv head is
 * read once for all the query rows of its group: tokens × group rows, row i being token i / group,
 * query head kvHead·group + i % group. The key range is cut into slices, one parallel task each; a
 * slice is walked a tile of positions at a time with the online softmax (running max m, sum l,
 * accumulator Σ exp(score - m)·v), and the slices' (m, l, accumulator) are merged at the end with
 * weights exp(m_slice - m) (flash-decoding). Each slice covers every kv head, so a thread streams
 * whole blocks: before the keys, then the values, of a tile are used, one int per cache line of
 * them is loaded in address order, since the per-head reads that follow jump by a whole row
 * (kvHeads · headDim elements) and the hardware prefetchers do not follow them.
 *
 * <p>bf16 is the top half of an f32, so one 32-bit lane loaded from a bf16 row holds two elements:
 * shifted left by 16 it is the even one, masked to its top half the odd one. Each 2·LANES-element
 * chunk of a bf16 head therefore widens with two integer operations into a vector of its even and a
 * vector of its odd elements. Queries are stored in that order (per chunk: even elements, then odd),
 * so dot products need no shuffle, and accumulators are kept in it and put back in order at the end.
 * Elements past the last whole chunk (head dims that are not a multiple of 2·LANES) stay in order.
 *
 * <p>Prefill (more rows) is compute bound: every query row sweeps every key. The sequence's positions
 * are gathered, in block-table order, into contiguous f32 rows and {@link FlashAttention} runs over
 * them; its tiled kernels use each loaded key for many rows, and the gather's extra pass costs
 * little there.
 *
 * <p>The cache's segments are read from every thread: they must come from a shared, global or
 * automatic arena.
 */
final class PagedAttention {

    /**
     * Calls with at most this many query rows per kv head (tokens × group), or a single token, attend
     * in place; more go through the gather. About where the gather's cost (a pass over the cache
     * that writes f32 rows) falls below what FlashAttention's tiling saves over the in-place kernels.
     */
    static final int IN_PLACE_ROWS = 32;
    /** Positions scored and accumulated at a time; a multiple of {@link #KEY_GROUP}. */
    static final int TILE = 32;
    /**
     * Scores per query row in the scratch: a tile and a vector more, since a group of four keys stores
     * a whole vector (its four sums, then partial sums that the next group overwrites or nobody reads).
     */
    static final int SCORE_STRIDE = TILE + LANES;
    /** Keys scored together against one query row, their lane sums reduced at once. */
    private static final int KEY_GROUP = 4;
    /** Each slice of the key range covers at least this many positions, so merging stays a small share. */
    private static final int MIN_SLICE_POSITIONS = 64;
    /** Below about this many cached elements (keys and values) a call runs on the calling thread. */
    private static final long SERIAL_ELEMENTS = 1 << 16;

    static final int CHUNK = 2 * LANES;
    static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, SPECIES.vectorShape());
    static final ByteOrder LITTLE = ByteOrder.LITTLE_ENDIAN;
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LITTLE);
    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LITTLE);

    private final FlashAttention attention;
    private final Parallel parallel;
    /** Per-thread tile scratch and running softmax state, grown to the largest call seen. */
    private final ThreadLocal<PagedWorkspace> workspaces = ThreadLocal.withInitial(PagedWorkspace::new);
    /** Per calling thread: the slices' unmerged results. */
    private final ThreadLocal<Partials> partials = ThreadLocal.withInitial(Partials::new);

    PagedAttention(FlashAttention attention, Parallel parallel) {
        this.attention = attention;
        this.parallel = parallel;
    }

    /** Decode steps run on the calling thread. */
    PagedAttention(FlashAttention attention) {
        this(attention, new Parallel(1));
    }

    void forward(AttentionShape shape, int tokens, int past, float scale, float[] q, PagedKeyValues cache,
            int[] blockTable, float[] out) {
        if (tokens <= 0) {
            return;
        }
        checkOperands(shape, tokens, past, cache, blockTable);
        if (!attendsInPlace(tokens, shape.queryHeads() / shape.kvHeads())) {
            int length = past + tokens;
            float[] keys = new float[length * cache.rowWidth()];
            float[] values = new float[keys.length];
            cache.gather(blockTable, 0, length, keys, values);
            attention.forward(shape, tokens, past, scale, q, keys, values, out);
            return;
        }
        attendInPlace(shape, tokens, past, scale, q, cache, blockTable, out);
    }

    /** Whether a call of {@code tokens} new tokens, {@code group} query heads per kv head, attends in place. */
    static boolean attendsInPlace(int tokens, int group) {
        return tokens == 1 || tokens * group <= IN_PLACE_ROWS;
    }

    private static void checkOperands(AttentionShape shape, int tokens, int past, PagedKeyValues cache,
            int[] blockTable) {
        if (cache.kvHeads() != shape.kvHeads() || cache.headDim() != shape.headDim()) {
            throw new IllegalArgumentException("paged cache holds " + cache.kvHeads() + " kv heads of dim "
                    + cache.headDim() + ", but the attention shape has " + shape.kvHeads() + " of dim "
                    + shape.headDim());
        }
        long positions = (long) blockTable.length * cache.blockSize();
        if (past < 0 || past + tokens > positions) {
            throw new IllegalArgumentException("block table of " + blockTable.length + " blocks of "
                    + cache.blockSize() + " positions cannot hold past " + past + " + " + tokens + " tokens");
        }
    }

    /** One call of the in-place path; queries: [kvHeads, groupRows, headDim], scaled, in chunk order. */
    private record Problem(AttentionShape shape, int tokens, int past, PagedKeyValues cache, boolean bf16,
            int[] table, float[] queries, float[] out, int slices, Partials partials) {

        int group() {
            return shape.queryHeads() / shape.kvHeads();
        }

        /** Query rows per kv head: every new token's heads of the group. */
        int groupRows() {
            return tokens * group();
        }

        int rows() {
            return tokens * shape.queryHeads();
        }

        int length() {
            return past + tokens;
        }

        /** Index in q and out of row i of kv head h's group. */
        int rowOffset(int kvHead, int i) {
            int token = i / group();
            int head = kvHead * group() + i % group();
            return (token * shape.queryHeads() + head) * shape.headDim();
        }
    }

    private void attendInPlace(AttentionShape shape, int tokens, int past, float scale, float[] q,
            PagedKeyValues cache, int[] table, float[] out) {
        int headDim = shape.headDim();
        boolean bf16 = cache.dtype() == DType.BF16;
        int length = past + tokens;
        long elements = 2L * length * cache.rowWidth();
        int slices = elements < SERIAL_ELEMENTS || parallel.threads() == 1 ? 1
                : Math.max(1, Math.min(2 * parallel.threads(), length / MIN_SLICE_POSITIONS));
        Partials results = null;
        if (slices > 1) {
            results = partials.get();
            results.ensure(slices * tokens * shape.queryHeads(), headDim);
        }
        float[] queries = new float[tokens * shape.queryHeads() * headDim];
        Problem problem = new Problem(shape, tokens, past, cache, bf16, table, queries, out, slices, results);
        for (int row = 0; row < problem.rows(); row++) {
            int kvHead = row / problem.groupRows();
            int from = problem.rowOffset(kvHead, row % problem.groupRows());
            if (bf16) {
                toChunkOrder(q, from, scale, queries, row * headDim, headDim);
            } else {
                for (int d = 0; d < headDim; d++) {
                    queries[row * headDim + d] = q[from + d] * scale;
                }
            }
        }
        parallel.forRange(slices, 1, (start, end) -> {
            PagedWorkspace workspace = workspaces.get();
            workspace.ensure(problem.rows(), headDim);
            for (int slice = start; slice < end; slice++) {
                attendSlice(problem, slice, workspace);
            }
        });
        if (slices > 1) {
            parallel.forRange(problem.rows(), Math.max(1, problem.rows() / parallel.threads()),
                    (start, end) -> mergeSlices(problem, start, end));
        }
    }

    /** Positions [length · slice / slices, length · (slice + 1) / slices), tile by tile, for every query row. */
    private static void attendSlice(Problem problem, int slice, PagedWorkspace workspace) {
        AttentionShape shape = problem.shape();
        PagedKeyValues cache = problem.cache();
        int headDim = shape.headDim();
        int groupRows = problem.groupRows();
        int rows = problem.rows();
        long headBytes = (long) headDim * cache.dtype().bytes();
        long rowBytes = cache.rowWidth() * (long) cache.dtype().bytes();
        int firstPosition = (int) ((long) problem.length() * slice / problem.slices());
        int endPosition = (int) ((long) problem.length() * (slice + 1) / problem.slices());
        Arrays.fill(workspace.maxima, 0, rows, Float.NEGATIVE_INFINITY);
        Arrays.fill(workspace.sums, 0, rows, 0f);
        Arrays.fill(workspace.accumulators, 0, rows * headDim, 0f);
        long[] offsets = workspace.offsets;

        for (int first = firstPosition; first < endPosition; first += TILE) {
            int count = Math.min(TILE, endPosition - first);
            for (int j = 0; j < count; j++) {
                int position = first + j;
                int row = position % cache.blockSize();
                offsets[j] = ((long) problem.table()[position / cache.blockSize()] * cache.blockSize() + row) * rowBytes;
            }
            // Keys past count repeat the last one: whole key groups are scored, the extra scores are never used.
            int scored = Math.ceilDiv(count, KEY_GROUP) * KEY_GROUP;
            Arrays.fill(offsets, count, scored, offsets[count - 1]);

            workspace.sink += touch(cache.keys(), offsets, count, rowBytes);
            for (int j = 0; j < scored; j += KEY_GROUP) {
                for (int kvHead = 0; kvHead < shape.kvHeads(); kvHead++) {
                    long head = kvHead * headBytes;
                    for (int row = kvHead * groupRows; row < (kvHead + 1) * groupRows; row++) {
                        if (problem.bf16()) {
                            PagedKeyScores.scoreFourBf16(problem.queries(), row * headDim, headDim, cache.keys(), offsets, j, head,
                                    workspace.scores, row * SCORE_STRIDE + j);
                        } else {
                            PagedKeyScores.scoreFourF32(problem.queries(), row * headDim, headDim, cache.keys(), offsets, j, head,
                                    workspace.scores, row * SCORE_STRIDE + j);
                        }
                    }
                }
            }
            for (int row = 0; row < rows; row++) {
                int token = row % groupRows / problem.group();
                int visible = Math.min(count, problem.past() + token - first + 1);
                SequenceKernels.onlineSoftmaxRow(workspace.scores, row * SCORE_STRIDE, visible, count,
                        workspace.maxima, workspace.sums, row, workspace.accumulators, headDim);
            }
            workspace.sink += touch(cache.values(), offsets, count, rowBytes);
            for (int kvHead = 0; kvHead < shape.kvHeads(); kvHead++) {
                PagedValueSums.accumulateValues(problem.bf16(), cache.values(), offsets, kvHead * headBytes, count,
                        kvHead * groupRows, groupRows, headDim, workspace);
            }
        }

        for (int row = 0; row < rows; row++) {
            int from = row * headDim;
            if (problem.slices() == 1) {
                int to = problem.rowOffset(row / groupRows, row % groupRows);
                emitRow(problem.bf16(), workspace.accumulators, from, 1f / workspace.sums[row], problem.out(), to,
                        headDim);
            } else {
                int partialRow = slice * rows + row;
                problem.partials().maxima[partialRow] = workspace.maxima[row];
                problem.partials().sums[partialRow] = workspace.sums[row];
                emitRow(problem.bf16(), workspace.accumulators, from, 1f, problem.partials().accumulators,
                        partialRow * headDim, headDim);
            }
        }
    }



    /** target[to, to + headDim) = q[from, from + headDim) · scale, each whole chunk as its even then odd elements. */
    private static void toChunkOrder(float[] q, int from, float scale, float[] target, int to, int headDim) {
        int d = 0;
        for (; d + CHUNK <= headDim; d += CHUNK) {
            for (int i = 0; i < LANES; i++) {
                target[to + d + i] = q[from + d + 2 * i] * scale;
                target[to + d + LANES + i] = q[from + d + 2 * i + 1] * scale;
            }
        }
        for (; d < headDim; d++) {
            target[to + d] = q[from + d] * scale;
        }
    }

    /** target[to + d] = accumulators row (at from) element d · factor, put back in order if it is in chunk order. */
    private static void emitRow(boolean chunkOrder, float[] accumulators, int from, float factor, float[] target,
            int to, int headDim) {
        int d = 0;
        if (chunkOrder) {
            for (; d + CHUNK <= headDim; d += CHUNK) {
                for (int i = 0; i < LANES; i++) {
                    target[to + d + 2 * i] = accumulators[from + d + i] * factor;
                    target[to + d + 2 * i + 1] = accumulators[from + d + LANES + i] * factor;
                }
            }
        }
        for (; d < headDim; d++) {
            target[to + d] = accumulators[from + d] * factor;
        }
    }

    /** Rows [start, end): the slices' triples brought to their common max m with weights exp(m_slice - m). */
    private static void mergeSlices(Problem problem, int start, int end) {
        int headDim = problem.shape().headDim();
        int rows = problem.rows();
        Partials partials = problem.partials();
        float[] out = problem.out();
        for (int row = start; row < end; row++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int slice = 0; slice < problem.slices(); slice++) {
                max = Math.max(max, partials.maxima[slice * rows + row]);
            }
            int to = problem.rowOffset(row / problem.groupRows(), row % problem.groupRows());
            Arrays.fill(out, to, to + headDim, 0f);
            float total = 0;
            for (int slice = 0; slice < problem.slices(); slice++) {
                int from = slice * rows + row;
                float sliceMax = partials.maxima[from];
                if (sliceMax == Float.NEGATIVE_INFINITY) {
                    continue;
                }
                float weight = (float) Math.exp(sliceMax - max);
                total += weight * partials.sums[from];
                addScaled(partials.accumulators, from * headDim, weight, out, to, headDim);
            }
            SequenceKernels.scale(out, to, headDim, 1f / total);
        }
    }

    /** out[to + i] += weight · source[from + i], i < count. */
    private static void addScaled(float[] source, int from, float weight, float[] out, int to, int count) {
        FloatVector w = FloatVector.broadcast(SPECIES, weight);
        int i = 0;
        for (; i + LANES <= count; i += LANES) {
            FloatVector.fromArray(SPECIES, source, from + i).fma(w, FloatVector.fromArray(SPECIES, out, to + i))
                    .intoArray(out, to + i);
        }
        for (; i < count; i++) {
            out[to + i] = Math.fma(weight, source[from + i], out[to + i]);
        }
    }

    /** Loads one int per 64-byte line of the rows at offsets[0 .. count) (rowBytes each), in that order. */
    private static int touch(MemorySegment segment, long[] offsets, int count, long rowBytes) {
        int a = 0, b = 0, c = 0, d = 0;
        for (int j = 0; j < count; j++) {
            long line = offsets[j];
            long end = line + rowBytes;
            for (; line + 256 <= end; line += 256) {
                a += segment.get(ValueLayout.JAVA_INT_UNALIGNED, line);
                b += segment.get(ValueLayout.JAVA_INT_UNALIGNED, line + 64);
                c += segment.get(ValueLayout.JAVA_INT_UNALIGNED, line + 128);
                d += segment.get(ValueLayout.JAVA_INT_UNALIGNED, line + 192);
            }
            for (; line < end; line += 64) {
                a += segment.get(ValueLayout.JAVA_INT_UNALIGNED, line);
            }
        }
        return a + b + c + d;
    }


    /** Unmerged (max, sum, accumulator) of every (slice, query row): row slice·rows + row. */
    private static final class Partials {
        float[] maxima = new float[0];
        float[] sums = new float[0];
        float[] accumulators = new float[0];

        void ensure(int rows, int headDim) {
            if (maxima.length < rows || accumulators.length < rows * headDim) {
                maxima = new float[rows];
                sums = new float[rows];
                accumulators = new float[rows * headDim];
            }
        }
    }
}
