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
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
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
    private static final int TILE = 32;
    /**
     * Scores per query row in the scratch: a tile and a vector more, since a group of four keys stores
     * a whole vector (its four sums, then partial sums that the next group overwrites or nobody reads).
     */
    private static final int SCORE_STRIDE = TILE + LANES;
    /** Keys scored together against one query row, their lane sums reduced at once. */
    private static final int KEY_GROUP = 4;
    /** Each slice of the key range covers at least this many positions, so merging stays a small share. */
    private static final int MIN_SLICE_POSITIONS = 64;
    /** Below about this many cached elements (keys and values) a call runs on the calling thread. */
    private static final long SERIAL_ELEMENTS = 1 << 16;

    private static final int CHUNK = 2 * LANES;
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, SPECIES.vectorShape());
    private static final ByteOrder LITTLE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LITTLE);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LITTLE);

    private final FlashAttention attention;
    private final Parallel parallel;
    /** Per-thread tile scratch and running softmax state, grown to the largest call seen. */
    private final ThreadLocal<Workspace> workspaces = ThreadLocal.withInitial(Workspace::new);
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
            Workspace workspace = workspaces.get();
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
    private static void attendSlice(Problem problem, int slice, Workspace workspace) {
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
                            scoreFourBf16(problem.queries(), row * headDim, headDim, cache.keys(), offsets, j, head,
                                    workspace.scores, row * SCORE_STRIDE + j);
                        } else {
                            scoreFourF32(problem.queries(), row * headDim, headDim, cache.keys(), offsets, j, head,
                                    workspace.scores, row * SCORE_STRIDE + j);
                        }
                    }
                }
            }
            for (int row = 0; row < rows; row++) {
                int token = row % groupRows / problem.group();
                int visible = Math.min(count, problem.past() + token - first + 1);
                updateRow(row, visible, count, headDim, workspace);
            }
            workspace.sink += touch(cache.values(), offsets, count, rowBytes);
            for (int kvHead = 0; kvHead < shape.kvHeads(); kvHead++) {
                accumulateValues(problem.bf16(), cache.values(), offsets, kvHead * headBytes, count,
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

    /**
     * scores[at + m] = query row (at qOffset, chunk order) · key j + m (f32, at offsets[j + m] + head),
     * m < 4: two vectors per step into eight accumulator chains (four would wait on the fma latency),
     * the four lane sums reduced together.
     */
    private static void scoreFourF32(float[] q, int qOffset, int headDim, MemorySegment keys, long[] offsets, int j,
            long head, float[] scores, int at) {
        long k0 = offsets[j] + head;
        long k1 = offsets[j + 1] + head;
        long k2 = offsets[j + 2] + head;
        long k3 = offsets[j + 3] + head;
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
        int d = 0;
        for (; d + CHUNK <= headDim; d += CHUNK) {
            FloatVector x = FloatVector.fromArray(SPECIES, q, qOffset + d);
            FloatVector y = FloatVector.fromArray(SPECIES, q, qOffset + d + LANES);
            long b = 4L * d;
            long c = b + 4L * LANES;
            s0 = x.fma(FloatVector.fromMemorySegment(SPECIES, keys, k0 + b, LITTLE), s0);
            t0 = y.fma(FloatVector.fromMemorySegment(SPECIES, keys, k0 + c, LITTLE), t0);
            s1 = x.fma(FloatVector.fromMemorySegment(SPECIES, keys, k1 + b, LITTLE), s1);
            t1 = y.fma(FloatVector.fromMemorySegment(SPECIES, keys, k1 + c, LITTLE), t1);
            s2 = x.fma(FloatVector.fromMemorySegment(SPECIES, keys, k2 + b, LITTLE), s2);
            t2 = y.fma(FloatVector.fromMemorySegment(SPECIES, keys, k2 + c, LITTLE), t2);
            s3 = x.fma(FloatVector.fromMemorySegment(SPECIES, keys, k3 + b, LITTLE), s3);
            t3 = y.fma(FloatVector.fromMemorySegment(SPECIES, keys, k3 + c, LITTLE), t3);
        }
        sumLanes(s0.add(t0), s1.add(t1), s2.add(t2), s3.add(t3)).intoArray(scores, at);
        for (; d < headDim; d++) {
            float x = q[qOffset + d];
            long b = 4L * d;
            scores[at] += x * keys.get(F32, k0 + b);
            scores[at + 1] += x * keys.get(F32, k1 + b);
            scores[at + 2] += x * keys.get(F32, k2 + b);
            scores[at + 3] += x * keys.get(F32, k3 + b);
        }
    }

    /** {@link #scoreFourF32} for bf16 keys, each chunk widened into its even and odd elements. */
    private static void scoreFourBf16(float[] q, int qOffset, int headDim, MemorySegment keys, long[] offsets, int j,
            long head, float[] scores, int at) {
        long k0 = offsets[j] + head;
        long k1 = offsets[j + 1] + head;
        long k2 = offsets[j + 2] + head;
        long k3 = offsets[j + 3] + head;
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
        int d = 0;
        for (; d + CHUNK <= headDim; d += CHUNK) {
            FloatVector even = FloatVector.fromArray(SPECIES, q, qOffset + d);
            FloatVector odd = FloatVector.fromArray(SPECIES, q, qOffset + d + LANES);
            long b = 2L * d;
            IntVector x0 = IntVector.fromMemorySegment(INTS, keys, k0 + b, LITTLE);
            IntVector x1 = IntVector.fromMemorySegment(INTS, keys, k1 + b, LITTLE);
            IntVector x2 = IntVector.fromMemorySegment(INTS, keys, k2 + b, LITTLE);
            IntVector x3 = IntVector.fromMemorySegment(INTS, keys, k3 + b, LITTLE);
            s0 = even.fma(evenHalves(x0), s0);
            t0 = odd.fma(oddHalves(x0), t0);
            s1 = even.fma(evenHalves(x1), s1);
            t1 = odd.fma(oddHalves(x1), t1);
            s2 = even.fma(evenHalves(x2), s2);
            t2 = odd.fma(oddHalves(x2), t2);
            s3 = even.fma(evenHalves(x3), s3);
            t3 = odd.fma(oddHalves(x3), t3);
        }
        sumLanes(s0.add(t0), s1.add(t1), s2.add(t2), s3.add(t3)).intoArray(scores, at);
        for (; d < headDim; d++) {
            float x = q[qOffset + d];
            long b = 2L * d;
            scores[at] += x * bf16(keys, k0 + b);
            scores[at + 1] += x * bf16(keys, k1 + b);
            scores[at + 2] += x * bf16(keys, k2 + b);
            scores[at + 3] += x * bf16(keys, k3 + b);
        }
    }

    private static FloatVector evenHalves(IntVector pairs) {
        return pairs.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector oddHalves(IntVector pairs) {
        return pairs.and(0xffff0000).reinterpretAsFloats();
    }

    private static float bf16(MemorySegment segment, long offset) {
        return Float.intBitsToFloat(segment.get(U16, offset) << 16);
    }

    // Lane-sum transpose of four dot products: pairing (s0, s1) and (s2, s3) at width 1, then the two
    // pairs at width 2, leaves lane l holding part of the sum of key l % 4; adding the lanes 4 and 8
    // apart then completes every sum in lanes 0 .. 3. About one horizontal reduction instead of four.
    private static final VectorShuffle<Float> SWAP_ONES = swapShuffle(1);
    private static final VectorShuffle<Float> SWAP_TWOS = swapShuffle(2);
    private static final VectorShuffle<Float> SWAP_FOURS = swapShuffle(4);
    private static final VectorShuffle<Float> SWAP_EIGHTS = swapShuffle(8);
    private static final VectorMask<Float> ODD_ONES = laneBitMask(1);
    private static final VectorMask<Float> ODD_TWOS = laneBitMask(2);

    /** The sums of the lanes of s0, s1, s2, s3 in lanes 0 .. 3 (the other lanes hold partial sums, if any). */
    private static FloatVector sumLanes(FloatVector s0, FloatVector s1, FloatVector s2, FloatVector s3) {
        FloatVector x = pairUp(pairUp(s0, s1, SWAP_ONES, ODD_ONES), pairUp(s2, s3, SWAP_ONES, ODD_ONES), SWAP_TWOS,
                ODD_TWOS);
        if (LANES > 4) {
            x = x.add(x.rearrange(SWAP_FOURS));
        }
        if (LANES > 8) {
            x = x.add(x.rearrange(SWAP_EIGHTS));
        }
        return x;
    }

    /**
     * Lanes whose w-bit is clear: x's lane plus its partner (index xor w); lanes whose w-bit is set: the
     * same for y. Fed vectors that each carry partial sums of 2^k dot products in blocks of w lanes,
     * it halves the partial sums per dot product and doubles how many dot products one vector carries.
     */
    private static FloatVector pairUp(FloatVector x, FloatVector y, VectorShuffle<Float> swap, VectorMask<Float> odd) {
        return x.blend(y, odd).add(y.blend(x, odd).rearrange(swap));
    }

    /** Lane l takes lane l xor width (the identity where width is not below the lane count: never used). */
    private static VectorShuffle<Float> swapShuffle(int width) {
        return VectorShuffle.fromOp(SPECIES, lane -> (lane ^ width) & (LANES - 1));
    }

    private static VectorMask<Float> laneBitMask(int width) {
        boolean[] bits = new boolean[LANES];
        for (int lane = 0; lane < LANES; lane++) {
            bits[lane] = (lane & width) != 0;
        }
        return VectorMask.fromArray(SPECIES, bits, 0);
    }

    /**
     * accumulators[firstRow + r] += Σ_j scores[firstRow + r, j] · value j of the head (at offsets[j] +
     * head), r < rows, j < count. A chunk is 2·LANES elements (bf16: its even, then its odd elements;
     * f32: two vectors in order). Four rows share each loaded chunk; a row left over takes four chunks
     * at a time (then two, then one), so that each pass runs eight independent accumulator chains
     * where the head is wide enough.
     */
    private static void accumulateValues(boolean bf16, MemorySegment values, long[] offsets, long head, int count,
            int firstRow, int rows, int headDim, Workspace workspace) {
        int chunks = headDim / CHUNK;
        int r = firstRow;
        for (; r + 4 <= firstRow + rows; r += 4) {
            for (int c = 0; c < chunks; c++) {
                if (bf16) {
                    fourRowsOneChunkBf16(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                } else {
                    fourRowsOneChunkF32(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                }
            }
        }
        for (; r < firstRow + rows; r++) {
            int c = 0;
            for (; c + 4 <= chunks; c += 4) {
                if (bf16) {
                    oneRowFourChunksBf16(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                } else {
                    oneRowFourChunksF32(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                }
            }
            for (; c + 2 <= chunks; c += 2) {
                if (bf16) {
                    oneRowTwoChunksBf16(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                } else {
                    oneRowTwoChunksF32(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                }
            }
            if (c < chunks) {
                if (bf16) {
                    oneRowOneChunkBf16(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                } else {
                    oneRowOneChunkF32(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                }
            }
        }
        if (chunks * CHUNK < headDim) {
            remainingElements(bf16, values, offsets, head, count, firstRow, rows, chunks * CHUNK, headDim, workspace);
        }
    }

    private static void fourRowsOneChunkF32(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a0 = r * headDim + d;
        int a1 = a0 + headDim;
        int a2 = a1 + headDim;
        int a3 = a2 + headDim;
        FloatVector r0l = FloatVector.fromArray(SPECIES, acc, a0);
        FloatVector r0h = FloatVector.fromArray(SPECIES, acc, a0 + LANES);
        FloatVector r1l = FloatVector.fromArray(SPECIES, acc, a1);
        FloatVector r1h = FloatVector.fromArray(SPECIES, acc, a1 + LANES);
        FloatVector r2l = FloatVector.fromArray(SPECIES, acc, a2);
        FloatVector r2h = FloatVector.fromArray(SPECIES, acc, a2 + LANES);
        FloatVector r3l = FloatVector.fromArray(SPECIES, acc, a3);
        FloatVector r3h = FloatVector.fromArray(SPECIES, acc, a3 + LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 4L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector low = FloatVector.fromMemorySegment(SPECIES, values, offset, LITTLE);
            FloatVector high = FloatVector.fromMemorySegment(SPECIES, values, offset + 4L * LANES, LITTLE);
            FloatVector w0 = FloatVector.broadcast(SPECIES, scores[p]);
            FloatVector w1 = FloatVector.broadcast(SPECIES, scores[p + SCORE_STRIDE]);
            FloatVector w2 = FloatVector.broadcast(SPECIES, scores[p + 2 * SCORE_STRIDE]);
            FloatVector w3 = FloatVector.broadcast(SPECIES, scores[p + 3 * SCORE_STRIDE]);
            r0l = w0.fma(low, r0l);
            r0h = w0.fma(high, r0h);
            r1l = w1.fma(low, r1l);
            r1h = w1.fma(high, r1h);
            r2l = w2.fma(low, r2l);
            r2h = w2.fma(high, r2h);
            r3l = w3.fma(low, r3l);
            r3h = w3.fma(high, r3h);
        }
        r0l.intoArray(acc, a0);
        r0h.intoArray(acc, a0 + LANES);
        r1l.intoArray(acc, a1);
        r1h.intoArray(acc, a1 + LANES);
        r2l.intoArray(acc, a2);
        r2h.intoArray(acc, a2 + LANES);
        r3l.intoArray(acc, a3);
        r3h.intoArray(acc, a3 + LANES);
    }

    private static void fourRowsOneChunkBf16(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a0 = r * headDim + d;
        int a1 = a0 + headDim;
        int a2 = a1 + headDim;
        int a3 = a2 + headDim;
        FloatVector r0e = FloatVector.fromArray(SPECIES, acc, a0);
        FloatVector r0o = FloatVector.fromArray(SPECIES, acc, a0 + LANES);
        FloatVector r1e = FloatVector.fromArray(SPECIES, acc, a1);
        FloatVector r1o = FloatVector.fromArray(SPECIES, acc, a1 + LANES);
        FloatVector r2e = FloatVector.fromArray(SPECIES, acc, a2);
        FloatVector r2o = FloatVector.fromArray(SPECIES, acc, a2 + LANES);
        FloatVector r3e = FloatVector.fromArray(SPECIES, acc, a3);
        FloatVector r3o = FloatVector.fromArray(SPECIES, acc, a3 + LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 2L * d;
        for (int j = 0; j < count; j++, p++) {
            IntVector x = IntVector.fromMemorySegment(INTS, values, offsets[j] + b, LITTLE);
            FloatVector even = evenHalves(x);
            FloatVector odd = oddHalves(x);
            FloatVector w0 = FloatVector.broadcast(SPECIES, scores[p]);
            FloatVector w1 = FloatVector.broadcast(SPECIES, scores[p + SCORE_STRIDE]);
            FloatVector w2 = FloatVector.broadcast(SPECIES, scores[p + 2 * SCORE_STRIDE]);
            FloatVector w3 = FloatVector.broadcast(SPECIES, scores[p + 3 * SCORE_STRIDE]);
            r0e = w0.fma(even, r0e);
            r0o = w0.fma(odd, r0o);
            r1e = w1.fma(even, r1e);
            r1o = w1.fma(odd, r1o);
            r2e = w2.fma(even, r2e);
            r2o = w2.fma(odd, r2o);
            r3e = w3.fma(even, r3e);
            r3o = w3.fma(odd, r3o);
        }
        r0e.intoArray(acc, a0);
        r0o.intoArray(acc, a0 + LANES);
        r1e.intoArray(acc, a1);
        r1o.intoArray(acc, a1 + LANES);
        r2e.intoArray(acc, a2);
        r2o.intoArray(acc, a2 + LANES);
        r3e.intoArray(acc, a3);
        r3o.intoArray(acc, a3 + LANES);
    }

    private static void oneRowFourChunksF32(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        FloatVector s2 = FloatVector.fromArray(SPECIES, acc, a + 2 * LANES);
        FloatVector s3 = FloatVector.fromArray(SPECIES, acc, a + 3 * LANES);
        FloatVector s4 = FloatVector.fromArray(SPECIES, acc, a + 4 * LANES);
        FloatVector s5 = FloatVector.fromArray(SPECIES, acc, a + 5 * LANES);
        FloatVector s6 = FloatVector.fromArray(SPECIES, acc, a + 6 * LANES);
        FloatVector s7 = FloatVector.fromArray(SPECIES, acc, a + 7 * LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 4L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            s0 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset, LITTLE), s0);
            s1 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 4L * LANES, LITTLE), s1);
            s2 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 8L * LANES, LITTLE), s2);
            s3 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 12L * LANES, LITTLE), s3);
            s4 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 16L * LANES, LITTLE), s4);
            s5 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 20L * LANES, LITTLE), s5);
            s6 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 24L * LANES, LITTLE), s6);
            s7 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 28L * LANES, LITTLE), s7);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
        s2.intoArray(acc, a + 2 * LANES);
        s3.intoArray(acc, a + 3 * LANES);
        s4.intoArray(acc, a + 4 * LANES);
        s5.intoArray(acc, a + 5 * LANES);
        s6.intoArray(acc, a + 6 * LANES);
        s7.intoArray(acc, a + 7 * LANES);
    }

    private static void oneRowFourChunksBf16(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        FloatVector s2 = FloatVector.fromArray(SPECIES, acc, a + 2 * LANES);
        FloatVector s3 = FloatVector.fromArray(SPECIES, acc, a + 3 * LANES);
        FloatVector s4 = FloatVector.fromArray(SPECIES, acc, a + 4 * LANES);
        FloatVector s5 = FloatVector.fromArray(SPECIES, acc, a + 5 * LANES);
        FloatVector s6 = FloatVector.fromArray(SPECIES, acc, a + 6 * LANES);
        FloatVector s7 = FloatVector.fromArray(SPECIES, acc, a + 7 * LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 2L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            IntVector x0 = IntVector.fromMemorySegment(INTS, values, offset, LITTLE);
            IntVector x1 = IntVector.fromMemorySegment(INTS, values, offset + 2L * CHUNK, LITTLE);
            IntVector x2 = IntVector.fromMemorySegment(INTS, values, offset + 4L * CHUNK, LITTLE);
            IntVector x3 = IntVector.fromMemorySegment(INTS, values, offset + 6L * CHUNK, LITTLE);
            s0 = w.fma(evenHalves(x0), s0);
            s1 = w.fma(oddHalves(x0), s1);
            s2 = w.fma(evenHalves(x1), s2);
            s3 = w.fma(oddHalves(x1), s3);
            s4 = w.fma(evenHalves(x2), s4);
            s5 = w.fma(oddHalves(x2), s5);
            s6 = w.fma(evenHalves(x3), s6);
            s7 = w.fma(oddHalves(x3), s7);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
        s2.intoArray(acc, a + 2 * LANES);
        s3.intoArray(acc, a + 3 * LANES);
        s4.intoArray(acc, a + 4 * LANES);
        s5.intoArray(acc, a + 5 * LANES);
        s6.intoArray(acc, a + 6 * LANES);
        s7.intoArray(acc, a + 7 * LANES);
    }

    private static void oneRowTwoChunksF32(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        FloatVector s2 = FloatVector.fromArray(SPECIES, acc, a + 2 * LANES);
        FloatVector s3 = FloatVector.fromArray(SPECIES, acc, a + 3 * LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 4L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            s0 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset, LITTLE), s0);
            s1 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 4L * LANES, LITTLE), s1);
            s2 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 8L * LANES, LITTLE), s2);
            s3 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 12L * LANES, LITTLE), s3);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
        s2.intoArray(acc, a + 2 * LANES);
        s3.intoArray(acc, a + 3 * LANES);
    }

    private static void oneRowTwoChunksBf16(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        FloatVector s2 = FloatVector.fromArray(SPECIES, acc, a + 2 * LANES);
        FloatVector s3 = FloatVector.fromArray(SPECIES, acc, a + 3 * LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 2L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            IntVector x = IntVector.fromMemorySegment(INTS, values, offset, LITTLE);
            IntVector y = IntVector.fromMemorySegment(INTS, values, offset + 2L * CHUNK, LITTLE);
            s0 = w.fma(evenHalves(x), s0);
            s1 = w.fma(oddHalves(x), s1);
            s2 = w.fma(evenHalves(y), s2);
            s3 = w.fma(oddHalves(y), s3);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
        s2.intoArray(acc, a + 2 * LANES);
        s3.intoArray(acc, a + 3 * LANES);
    }

    private static void oneRowOneChunkF32(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 4L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            s0 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset, LITTLE), s0);
            s1 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 4L * LANES, LITTLE), s1);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
    }

    private static void oneRowOneChunkBf16(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 2L * d;
        for (int j = 0; j < count; j++, p++) {
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            IntVector x = IntVector.fromMemorySegment(INTS, values, offsets[j] + b, LITTLE);
            s0 = w.fma(evenHalves(x), s0);
            s1 = w.fma(oddHalves(x), s1);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
    }

    /** Elements [from, headDim) of the accumulators (past the last whole chunk, in order), one at a time. */
    private static void remainingElements(boolean bf16, MemorySegment values, long[] offsets, long head, int count,
            int firstRow, int rows, int from, int headDim, Workspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int bytes = bf16 ? 2 : 4;
        for (int j = 0; j < count; j++) {
            long offset = offsets[j] + head;
            for (int d = from; d < headDim; d++) {
                long at = offset + (long) bytes * d;
                float value = bf16 ? bf16(values, at) : values.get(F32, at);
                for (int r = firstRow; r < firstRow + rows; r++) {
                    acc[r * headDim + d] = Math.fma(scores[r * SCORE_STRIDE + j], value, acc[r * headDim + d]);
                }
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

    /**
     * Online softmax for row r over the first {@code visible} of the tile's {@code count} scores (the
     * rest are causally masked): the scores become exp(score - m_new), zero where masked, and the
     * row's sum and accumulator are rescaled by exp(m_old - m_new).
     */
    private static void updateRow(int r, int visible, int count, int headDim, Workspace workspace) {
        float[] scores = workspace.scores;
        int base = r * SCORE_STRIDE;
        if (visible <= 0) {
            Arrays.fill(scores, base, base + count, 0f);
            return;
        }
        int j = 0;
        FloatVector maxVector = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
        for (; j + LANES <= visible; j += LANES) {
            maxVector = maxVector.max(FloatVector.fromArray(SPECIES, scores, base + j));
        }
        float tileMax = maxVector.reduceLanes(VectorOperators.MAX);
        for (; j < visible; j++) {
            tileMax = Math.max(tileMax, scores[base + j]);
        }
        float oldMax = workspace.maxima[r];
        float newMax = Math.max(oldMax, tileMax);
        FloatVector shift = FloatVector.broadcast(SPECIES, newMax);
        FloatVector sumVector = FloatVector.zero(SPECIES);
        j = 0;
        for (; j + LANES <= visible; j += LANES) {
            FloatVector weight = SequenceKernels.exp(FloatVector.fromArray(SPECIES, scores, base + j).sub(shift));
            weight.intoArray(scores, base + j);
            sumVector = sumVector.add(weight);
        }
        float tileSum = sumVector.reduceLanes(VectorOperators.ADD);
        for (; j < visible; j++) {
            float weight = (float) Math.exp(scores[base + j] - newMax);
            scores[base + j] = weight;
            tileSum += weight;
        }
        Arrays.fill(scores, base + visible, base + count, 0f);
        if (newMax > oldMax) {
            float correction = (float) Math.exp(oldMax - newMax);
            workspace.sums[r] *= correction;
            SequenceKernels.scale(workspace.accumulators, r * headDim, headDim, correction);
        }
        workspace.sums[r] += tileSum;
        workspace.maxima[r] = newMax;
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

    /** One thread's scratch: a tile's row offsets and scores, and every query row's running (m, l, accumulator). */
    private static final class Workspace {
        final long[] offsets = new long[TILE];
        /** Sum of the touching loads, kept so that they are not optimised away. */
        int sink;
        float[] scores = new float[0];
        float[] accumulators = new float[0];
        float[] maxima = new float[0];
        float[] sums = new float[0];

        void ensure(int rows, int headDim) {
            if (maxima.length < rows || accumulators.length < rows * headDim) {
                scores = new float[rows * SCORE_STRIDE];
                accumulators = new float[rows * headDim];
                maxima = new float[rows];
                sums = new float[rows];
            }
        }
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
