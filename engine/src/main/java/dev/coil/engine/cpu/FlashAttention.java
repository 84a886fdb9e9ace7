package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.SequenceKernels.LANES;
import static dev.coil.engine.cpu.SequenceKernels.SPECIES;

import dev.coil.engine.ops.AttentionShape;
import java.util.Arrays;

/**
 * Causal attention, flash style: keys and values are visited one tile at a time and each query row
 * keeps a running max m, a running sum l of exp(score - m) and an accumulator of exp(score - m)·v,
 * rescaled by exp(m_old - m_new) whenever the max grows; out = accumulator / l. No score matrix
 * larger than one tile exists.
 *
 * <p>A unit of work is a block of consecutive query tokens times the query heads of one kv head (so
 * every loaded K/V tile serves the whole GQA group), optionally restricted to one slice of the key
 * range: decoding a single token over a long cache has too few blocks to keep all cores busy, so
 * the keys are split and the partial (m, l, accumulator) triples merged at the end. When a block
 * has only a few rows per kv head (decoding), one unit takes every kv head of its key slice: the
 * cache is [position, kvHeads, headDim], so each thread then streams one contiguous range of it
 * rather than a 1/kvHeads share of every position.
 */
final class FlashAttention {

    /** Keys per tile. */
    private static final int KEY_TILE = 64;
    /** Query rows (tokens × heads of one group) per block: queries, scores and accumulators stay in L2. */
    private static final int BLOCK_ROWS = 48;
    /** Blocks with fewer rows score each key by dot products; more rows amortise a transposed K tile. */
    private static final int TRANSPOSED_TILE_ROWS = 8;
    /** Each slice of a split key range covers at least this many keys. */
    private static final int MIN_SPLIT_KEYS = 512;
    /** Below about this many multiply-adds (q·k plus p·v) a call runs on the calling thread. */
    private static final long SERIAL_WORK = 1 << 18;

    private final Parallel parallel;

    FlashAttention(Parallel parallel) {
        this.parallel = parallel;
    }

    /** One call's operands and how its work is cut. */
    private record Problem(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys,
            float[] values, float[] out, int blockTokens, int blocks, int headsPerUnit, int splits,
            TransposedKeys transposedKeys) {

        int group() {
            return shape.queryHeads() / shape.kvHeads();
        }

        int blockRows() {
            return blockTokens * group();
        }

        /** Units per query block: each covers headsPerUnit consecutive kv heads. */
        int headUnits() {
            return shape.kvHeads() / headsPerUnit;
        }
    }

    /** Per-thread scratch, sized for one block. */
    private static final class Workspace {
        final float[] queries;
        final float[] keysTransposed;
        final float[] scores;
        final float[] accumulators;
        final float[] maxima;
        final float[] sums;
        /** Sum of the prefetching loads, kept so that they are not optimised away. */
        float sink;

        Workspace(int rows, int headDim) {
            queries = new float[rows * headDim];
            keysTransposed = new float[headDim * KEY_TILE];
            scores = new float[rows * KEY_TILE];
            accumulators = new float[rows * headDim];
            maxima = new float[rows];
            sums = new float[rows];
        }
    }

    /**
     * All key tiles, each transposed: [kvHeads, tiles, headDim, KEY_TILE], zero past the last key.
     * Made once per call when several query blocks would each transpose the same tiles.
     */
    private record TransposedKeys(float[] values, int tiles) {}

    /** Unmerged (max, sum, accumulator) per row of every (block, kv head, key slice). */
    private record Partials(float[] maxima, float[] sums, float[] accumulators) {}

    void forward(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys, float[] values,
            float[] out) {
        if (tokens <= 0) {
            return;
        }
        int group = shape.queryHeads() / shape.kvHeads();
        int blockTokens = Math.max(1, Math.min(tokens, BLOCK_ROWS / group));
        int blocks = ceilDiv(tokens, blockTokens);
        // Whole-cache slices need enough keys to give every thread about two slices on their own.
        boolean fewRows = blockTokens * group < TRANSPOSED_TILE_ROWS;
        boolean manyKeys = (past + tokens) / MIN_SPLIT_KEYS >= 2 * parallel.threads();
        int headsPerUnit = blocks == 1 && fewRows && manyKeys ? shape.kvHeads() : 1;
        int units = blocks * (shape.kvHeads() / headsPerUnit);
        int splits = keySlices(units, past + tokens);
        long work = 2L * tokens * shape.queryHeads() * (past + tokens) * shape.headDim();
        int tasks = units * splits;
        int grain = work < SERIAL_WORK ? tasks : 1;
        boolean shareTransposedKeys = blocks > 1 && blockTokens * group >= TRANSPOSED_TILE_ROWS;
        TransposedKeys transposedKeys = shareTransposedKeys ? transposeKeys(shape, past + tokens, keys, grain) : null;
        Problem problem = new Problem(shape, tokens, past, scale, q, keys, values, out, blockTokens, blocks,
                headsPerUnit, splits, transposedKeys);
        Partials partials = null;
        if (splits > 1) {
            int rows = blocks * shape.kvHeads() * splits * problem.blockRows();
            partials = new Partials(new float[rows], new float[rows], new float[rows * shape.headDim()]);
        }
        Partials slices = partials;
        parallel.forRange(tasks, grain, (start, end) -> {
            Workspace workspace = new Workspace(headsPerUnit * problem.blockRows(), shape.headDim());
            for (int task = start; task < end; task++) {
                // Adjacent tasks pair an early block with a late one: causal blocks grow in cost.
                int order = task / (problem.headUnits() * splits);
                int block = order % 2 == 0 ? order / 2 : blocks - 1 - order / 2;
                int firstKvHead = task / splits % problem.headUnits() * headsPerUnit;
                int slice = task % splits;
                attendBlock(problem, block, firstKvHead, slice, workspace, slices);
            }
        });
        if (splits > 1) {
            parallel.forRange(blocks * shape.kvHeads(), grain, (start, end) -> {
                for (int unit = start; unit < end; unit++) {
                    mergeSlices(problem, unit / shape.kvHeads(), unit % shape.kvHeads(), slices);
                }
            });
        }
    }

    private TransposedKeys transposeKeys(AttentionShape shape, int count, float[] keys, int grain) {
        int headDim = shape.headDim();
        int kvHeads = shape.kvHeads();
        int tiles = ceilDiv(count, KEY_TILE);
        float[] transposed = new float[kvHeads * tiles * headDim * KEY_TILE];
        parallel.forRange(kvHeads * tiles, grain == 1 ? 1 : kvHeads * tiles, (start, end) -> {
            for (int piece = start; piece < end; piece++) {
                int kvHead = piece / tiles;
                int firstKey = piece % tiles * KEY_TILE;
                int endKey = Math.min(count, firstKey + KEY_TILE);
                int base = piece * headDim * KEY_TILE;
                for (int j = firstKey; j < endKey; j++) {
                    int key = (j * kvHeads + kvHead) * headDim;
                    for (int d = 0; d < headDim; d++) {
                        transposed[base + d * KEY_TILE + j - firstKey] = keys[key + d];
                    }
                }
            }
        });
        return new TransposedKeys(transposed, tiles);
    }

    /** How many slices to cut the key range into so that there are about two units of work per thread. */
    private int keySlices(int units, int keys) {
        int wanted = 2 * parallel.threads();
        if (units >= wanted) {
            return 1;
        }
        return Math.max(1, Math.min(ceilDiv(wanted, units), keys / MIN_SPLIT_KEYS));
    }

    /** Query block {@code block} against key slice {@code slice}, for kv heads firstKvHead onward (headsPerUnit). */
    private static void attendBlock(Problem problem, int block, int firstKvHead, int slice, Workspace workspace,
            Partials partials) {
        AttentionShape shape = problem.shape();
        int group = problem.group();
        int headDim = shape.headDim();
        int kvStride = shape.kvHeads() * headDim;
        int heads = problem.headsPerUnit();
        int firstToken = block * problem.blockTokens();
        int endToken = Math.min(problem.tokens(), firstToken + problem.blockTokens());
        int rows = (endToken - firstToken) * group;

        // Row h·rows + r is kv head firstKvHead + h, token firstToken + r / group, query head
        // (firstKvHead + h)·group + r % group; the heads of a group are adjacent in q, so each token
        // contributes one contiguous run of group·headDim per kv head.
        float[] queries = workspace.queries;
        int run = group * headDim;
        for (int h = 0; h < heads; h++) {
            for (int t = firstToken; t < endToken; t++) {
                int from = (t * shape.queryHeads() + (firstKvHead + h) * group) * headDim;
                int to = h * rows * headDim + (t - firstToken) * run;
                for (int i = 0; i < run; i++) {
                    queries[to + i] = problem.q()[from + i] * problem.scale();
                }
            }
        }
        Arrays.fill(workspace.maxima, 0, heads * rows, Float.NEGATIVE_INFINITY);
        Arrays.fill(workspace.sums, 0, heads * rows, 0f);
        Arrays.fill(workspace.accumulators, 0, heads * rows * headDim, 0f);

        int lastPosition = problem.past() + endToken - 1;
        int tiles = lastPosition / KEY_TILE + 1;
        int firstTile = (int) ((long) tiles * slice / problem.splits());
        int endTile = (int) ((long) tiles * (slice + 1) / problem.splits());
        int firstPosition = problem.past() + firstToken;
        for (int tile = firstTile; tile < endTile; tile++) {
            int firstKey = tile * KEY_TILE;
            int count = Math.min(KEY_TILE, lastPosition + 1 - firstKey);
            if (heads == 1) {
                int keyBase = firstKey * kvStride + firstKvHead * headDim;
                scoreTile(problem, firstKvHead, firstKey, count, 0, rows, workspace);
                for (int r = 0; r < rows; r++) {
                    int visible = Math.min(count, firstPosition + r / group - firstKey + 1);
                    SequenceKernels.onlineSoftmaxRow(workspace.scores, r * KEY_TILE, visible, count, workspace.maxima,
                        workspace.sums, r, workspace.accumulators, headDim);
                }
                SequenceKernels.multiplyAdd(rows, headDim, count, workspace.scores, 0, KEY_TILE, problem.values(),
                        keyBase, kvStride, workspace.accumulators, 0, headDim, true);
                continue;
            }
            // Each phase ends by loading one float per cache line of the rows the next phase reads (this
            // tile's V, then the next tile's K), in address order: the per-head reads of a phase go through
            // the cache with a kvHeads·headDim stride that the hardware prefetchers do not run ahead of, so
            // without this every phase waits on memory instead of overlapping with the previous one.
            for (int h = 0; h < heads; h++) {
                scoreKeys(problem, firstKvHead + h, firstKey, 0, count, h * rows, rows, workspace);
            }
            workspace.sink += touch(problem.values(), firstKey * kvStride, (firstKey + count) * kvStride);
            for (int r = 0; r < heads * rows; r++) {
                int visible = Math.min(count, firstPosition + r % rows / group - firstKey + 1);
                SequenceKernels.onlineSoftmaxRow(workspace.scores, r * KEY_TILE, visible, count, workspace.maxima,
                        workspace.sums, r, workspace.accumulators, headDim);
            }
            for (int h = 0; h < heads; h++) {
                int firstRow = h * rows;
                int keyBase = firstKey * kvStride + (firstKvHead + h) * headDim;
                SequenceKernels.multiplyAdd(rows, headDim, count, workspace.scores, firstRow * KEY_TILE, KEY_TILE,
                        problem.values(), keyBase, kvStride, workspace.accumulators, firstRow * headDim, headDim,
                        true);
            }
            if (tile + 1 < endTile) {
                int nextKey = firstKey + KEY_TILE;
                int nextEnd = Math.min(lastPosition + 1, nextKey + KEY_TILE);
                workspace.sink += touch(problem.keys(), nextKey * kvStride, nextEnd * kvStride);
            }
        }

        for (int h = 0; h < heads; h++) {
            int kvHead = firstKvHead + h;
            int firstRow = h * rows;
            if (problem.splits() == 1) {
                for (int r = 0; r < rows; r++) {
                    int t = firstToken + r / group;
                    int head = kvHead * group + r % group;
                    int to = (t * shape.queryHeads() + head) * headDim;
                    System.arraycopy(workspace.accumulators, (firstRow + r) * headDim, problem.out(), to, headDim);
                    SequenceKernels.scale(problem.out(), to, headDim, 1f / workspace.sums[firstRow + r]);
                }
            } else {
                int partialRow = ((block * shape.kvHeads() + kvHead) * problem.splits() + slice) * problem.blockRows();
                System.arraycopy(workspace.maxima, firstRow, partials.maxima(), partialRow, rows);
                System.arraycopy(workspace.sums, firstRow, partials.sums(), partialRow, rows);
                System.arraycopy(workspace.accumulators, firstRow * headDim, partials.accumulators(),
                        partialRow * headDim, rows * headDim);
            }
        }
    }

    /** scores[firstRow + r, j] = queries[firstRow + r] · key firstKey + j of kvHead, for r < rows, j < count. */
    private static void scoreTile(Problem problem, int kvHead, int firstKey, int count, int firstRow, int rows,
            Workspace workspace) {
        int headDim = problem.shape().headDim();
        int keyStride = problem.shape().kvHeads() * headDim;
        int keyBase = firstKey * keyStride + kvHead * headDim;
        float[] keys = problem.keys();
        float[] scores = workspace.scores;
        if (rows < TRANSPOSED_TILE_ROWS) {
            scoreKeys(problem, kvHead, firstKey, 0, count, firstRow, rows, workspace);
            return;
        }
        // Columns past count (up to a whole vector) belong to later keys or padding; their scores are never used.
        int columns = ceilDiv(count, LANES) * LANES;
        TransposedKeys shared = problem.transposedKeys();
        if (shared != null) {
            int offset = (kvHead * shared.tiles() + firstKey / KEY_TILE) * headDim * KEY_TILE;
            SequenceKernels.multiplyAdd(rows, columns, headDim, workspace.queries, firstRow * headDim, headDim,
                    shared.values(), offset, KEY_TILE, scores, firstRow * KEY_TILE, KEY_TILE, false);
            return;
        }
        float[] transposed = workspace.keysTransposed;
        for (int j = 0; j < count; j++) {
            int key = keyBase + j * keyStride;
            for (int d = 0; d < headDim; d++) {
                transposed[d * KEY_TILE + j] = keys[key + d];
            }
        }
        SequenceKernels.multiplyAdd(rows, columns, headDim, workspace.queries, firstRow * headDim, headDim, transposed,
                0, KEY_TILE, scores, firstRow * KEY_TILE, KEY_TILE, false);
    }

    /** scores[firstRow + r, j] = queries[firstRow + r] · key firstKey + j of kvHead, for r < rows, from ≤ j < to. */
    private static void scoreKeys(Problem problem, int kvHead, int firstKey, int from, int to, int firstRow, int rows,
            Workspace workspace) {
        int headDim = problem.shape().headDim();
        int keyStride = problem.shape().kvHeads() * headDim;
        int keyBase = firstKey * keyStride + kvHead * headDim;
        float[] keys = problem.keys();
        float[] scores = workspace.scores;
        int j = from;
        if (SequenceKernels.EIGHT_LANES) {
            for (; j + 8 <= to; j += 8) {
                int key = keyBase + j * keyStride;
                for (int r = firstRow; r < firstRow + rows; r++) {
                    SequenceKernels.dotEight(workspace.queries, r * headDim, keys, key, keyStride, headDim, scores,
                            r * KEY_TILE + j);
                }
            }
        }
        for (; j + 4 <= to; j += 4) {
            int key = keyBase + j * keyStride;
            for (int r = firstRow; r < firstRow + rows; r++) {
                SequenceKernels.dotFour(workspace.queries, r * headDim, keys, key, keyStride, headDim, scores,
                        r * KEY_TILE + j);
            }
        }
        for (; j < to; j++) {
            int key = keyBase + j * keyStride;
            for (int r = firstRow; r < firstRow + rows; r++) {
                scores[r * KEY_TILE + j] = SequenceKernels.dot(workspace.queries, r * headDim, keys, key, headDim);
            }
        }
    }

    /** Combines the key slices of one (block, kv head): weights exp(m_slice - m) bring them to a common max m. */
    private static void mergeSlices(Problem problem, int block, int kvHead, Partials partials) {
        AttentionShape shape = problem.shape();
        int group = problem.group();
        int headDim = shape.headDim();
        int firstToken = block * problem.blockTokens();
        int endToken = Math.min(problem.tokens(), firstToken + problem.blockTokens());
        int rows = (endToken - firstToken) * group;
        int firstRow = (block * shape.kvHeads() + kvHead) * problem.splits() * problem.blockRows();
        for (int r = 0; r < rows; r++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int s = 0; s < problem.splits(); s++) {
                max = Math.max(max, partials.maxima()[firstRow + s * problem.blockRows() + r]);
            }
            int t = firstToken + r / group;
            int head = kvHead * group + r % group;
            int to = (t * shape.queryHeads() + head) * headDim;
            Arrays.fill(problem.out(), to, to + headDim, 0f);
            float total = 0;
            for (int s = 0; s < problem.splits(); s++) {
                int row = firstRow + s * problem.blockRows() + r;
                float sliceMax = partials.maxima()[row];
                if (sliceMax == Float.NEGATIVE_INFINITY) {
                    continue;
                }
                float weight = (float) Math.exp(sliceMax - max);
                total += weight * partials.sums()[row];
                int from = row * headDim;
                for (int d = 0; d < headDim; d++) {
                    problem.out()[to + d] += weight * partials.accumulators()[from + d];
                }
            }
            SequenceKernels.scale(problem.out(), to, headDim, 1f / total);
        }
    }

    /** Loads one float per 64-byte line of array[from, to), so that those lines are in cache when next read. */
    private static float touch(float[] array, int from, int to) {
        float a = 0, b = 0, c = 0, d = 0;
        int i = from;
        for (; i + 64 <= to; i += 64) {
            a += array[i];
            b += array[i + 16];
            c += array[i + 32];
            d += array[i + 48];
        }
        for (; i < to; i += 16) {
            a += array[i];
        }
        return a + b + c + d;
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }
}
