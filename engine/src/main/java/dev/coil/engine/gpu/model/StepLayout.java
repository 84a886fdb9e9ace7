package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.PackedChunks;
import dev.coil.engine.gpu.kernels.PackedKeys;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.SequenceState;
import java.util.Arrays;
import java.util.function.Predicate;

/**
 * How one serving step's rows sit on the device, and the int32 inputs the kernels read, packed
 * into one array for one upload. Decode segments (one generated token each) come first, so their
 * rows [0, decodes) run through the batched conv/state updates and paged decode attention
 * together; prompt chunks follow, shortest first, their Mamba-2 conv, dt and SSD scan packed
 * into one launch each (chunks of the same number of scan chunks sit together), their attention
 * one chunk at a time.
 *
 * <pre>
 *   packed = ids [rows] | positions [rows] | cacheRows [rows] | decodeSlots [decodes]
 *          | decodeLengths [decodes] | decodeTables [decodes, tableStride] | prefill tables …
 *          | promptStarts [prompts + 1] | promptSlots [prompts] | promptClamped [prompts]
 *          | promptRowChunk [prompt rows] | promptKeyStarts [prompts + 1] | promptTableStarts [prompts]
 * </pre>
 * promptStarts counts rows from the first prompt row; promptKeyStarts counts the rows of the
 * chunks' keys (past and chunk) gathered one sequence after another; promptTableStarts gives where
 * each chunk's block table sits in packed.
 * A captured decode step pads its rows to a bucket: padded rows read token 0 at position 0, own
 * the cache's padding slot and block, and their logits are dropped.
 */
final class StepLayout {

    /**
     * System property: {@code -Dcoil.cuda.packedPrefill=false} runs each prompt chunk's conv, dt, SSD
     * scan and attention in launches of its own (the same results bit for bit), for comparisons.
     */
    static final String PACKED_PREFILL_PROPERTY = "coil.cuda.packedPrefill";

    final Batch batch;
    /** order[k]: the batch index of the k-th segment as laid out (decodes first). */
    final int[] order;
    final int decodes;
    /** Rows on the device: the batch's rows, or the bucket a captured step pads them to. */
    final int rows;
    final int tableStride;
    final int[] firstRow; // per laid-out segment
    final int[] tableOffset; // per laid-out prefill segment: where its block table starts in packed
    final int[] packed;
    private final int promptsOffset; // where promptStarts begins in packed

    private StepLayout(Batch batch, int[] order, int decodes, int rows, int tableStride, int blockSize,
            int paddingSlot, int paddingBlock) {
        this.batch = batch;
        this.order = order;
        this.decodes = decodes;
        this.rows = rows;
        this.tableStride = tableStride;
        this.firstRow = new int[order.length];
        this.tableOffset = new int[order.length];
        int prefillTables = 0;
        for (int k = decodes; k < order.length; k++) {
            SequenceState sequence = batch.segment(order[k]).sequence();
            prefillTables += Math.ceilDiv(sequence.length() + batch.tokens(order[k]), blockSize);
        }
        int decodeRows = rows - (batch.rows() - decodes);
        int prompts = order.length - decodes;
        int promptRows = batch.rows() - decodes;
        this.promptsOffset = 3 * rows + 2 * decodeRows + decodeRows * tableStride + prefillTables;
        this.packed = new int[promptsOffset + (prompts == 0 ? 0 : 5 * prompts + 2 + promptRows)];
        int keyStarts = promptsOffset + 3 * prompts + 1 + promptRows;
        Arrays.fill(packed, 2 * rows, 3 * rows, paddingBlock * blockSize);
        Arrays.fill(packed, 3 * rows, 3 * rows + decodeRows, paddingSlot);
        Arrays.fill(packed, 3 * rows + decodeRows, 3 * rows + 2 * decodeRows, 1);
        Arrays.fill(packed, decodeTablesOffset(), decodeTablesOffset() + decodeRows * tableStride, paddingBlock);
        int row = 0;
        int table = decodeTablesOffset() + decodeRows * tableStride;
        for (int k = 0; k < order.length; k++) {
            int s = order[k];
            Batch.Segment segment = batch.segment(s);
            SequenceState sequence = segment.sequence();
            int past = sequence.length();
            int[] blockTable = sequence.blockTable();
            firstRow[k] = row;
            if (k == decodes) {
                row = decodeRows; // prompt rows follow the padded decode rows
                firstRow[k] = row;
            }
            for (int t = 0; t < segment.tokens().length; t++, row++) {
                int position = past + t;
                packed[row] = segment.tokens()[t];
                packed[rows + row] = position;
                packed[2 * rows + row] = blockTable[position / blockSize] * blockSize + position % blockSize;
            }
            if (k < decodes) {
                packed[3 * rows + k] = sequence.slot();
                packed[3 * rows + decodeRows + k] = past + 1;
                System.arraycopy(blockTable, 0, packed, decodeTablesOffset() + k * tableStride,
                        Math.min(tableStride, sequence.blockCount()));
            } else {
                int blocks = Math.ceilDiv(past + segment.tokens().length, blockSize);
                tableOffset[k] = table;
                System.arraycopy(blockTable, 0, packed, table, blocks);
                table += blocks;
                int p = k - decodes;
                int start = firstRow[k] - decodeRows;
                packed[promptsOffset + p] = start;
                packed[promptsOffset + p + 1] = start + segment.tokens().length;
                packed[promptsOffset + prompts + 1 + p] = sequence.slot();
                packed[promptsOffset + 2 * prompts + 1 + p] = segment.clampedTokens();
                Arrays.fill(packed, promptsOffset + 3 * prompts + 1 + start,
                        promptsOffset + 3 * prompts + 1 + start + segment.tokens().length, p);
                packed[keyStarts + p + 1] = packed[keyStarts + p] + past + segment.tokens().length;
                packed[keyStarts + prompts + 1 + p] = tableOffset[k];
            }
        }
    }

    /**
     * The layout of {@code batch}; with {@code bucket} > 0 (a batch of decodes only), its rows padded
     * to bucket and its decode tables to {@code tableStride} entries.
     */
    static StepLayout of(Batch batch, int blockSize, int paddingSlot, int paddingBlock, int bucket, int tableStride) {
        Integer[] indices = new Integer[batch.size()];
        for (int s = 0; s < indices.length; s++) {
            indices[s] = s;
        }
        // Decodes first, then prompt chunks from the shortest (a stable sort: ties keep the batch's order).
        Arrays.sort(indices, (a, b) -> {
            boolean decodeA = isDecode(batch, a);
            boolean decodeB = isDecode(batch, b);
            if (decodeA != decodeB) {
                return decodeA ? -1 : 1;
            }
            return decodeA ? 0 : Integer.compare(batch.tokens(a), batch.tokens(b));
        });
        int[] order = Arrays.stream(indices).mapToInt(Integer::intValue).toArray();
        int decodes = 0;
        int longest = 1;
        while (decodes < order.length && isDecode(batch, order[decodes])) {
            longest = Math.max(longest, batch.segment(order[decodes]).sequence().length() + 1);
            decodes++;
        }
        int stride = tableStride > 0 ? tableStride : Math.ceilDiv(longest, blockSize);
        int rows = bucket > 0 ? bucket : batch.rows();
        return new StepLayout(batch, order, decodes, rows, stride, blockSize, paddingSlot, paddingBlock);
    }

    /** One generated token whose logits only the sampler needs: the decode kernels take it. */
    static boolean isDecode(Batch batch, int segment) {
        Batch.Segment s = batch.segment(segment);
        return s.tokens().length == 1 && s.clampedTokens() == 0 && s.logits() != Batch.Logits.ALL;
    }

    /** True when every segment is a decode: the step a CUDA graph can replay. */
    boolean decodesOnly() {
        return decodes == order.length;
    }

    /** Decode rows on the device, padding included. */
    int decodeRows() {
        return rows - (batch.rows() - decodes);
    }

    Batch.Segment segment(int k) {
        return batch.segment(order[k]);
    }

    /** Whether some segment of the step passes {@code test}. */
    boolean anySegment(Predicate<Batch.Segment> test) {
        for (int k = 0; k < order.length; k++) {
            if (test.test(segment(k))) {
                return true;
            }
        }
        return false;
    }

    int tokens(int k) {
        return batch.tokens(order[k]);
    }

    int past(int k) {
        return batch.segment(order[k]).sequence().length();
    }

    /** Whether prompt chunks run packed, one launch of each prefill kernel for all ({@link #PACKED_PREFILL_PROPERTY}). */
    static boolean packsPrompts() {
        return Boolean.parseBoolean(System.getProperty(PACKED_PREFILL_PROPERTY, "true"));
    }

    /** Prompt chunks in the step. */
    int prompts() {
        return order.length - decodes;
    }

    /** Rows of the prompt chunks, all after the decode rows. */
    int promptRows() {
        return batch.rows() - decodes;
    }

    /**
     * Every prompt chunk as the packed kernels take them (the conv and dt read each row's chunk and
     * each chunk's clamped rows), rows counted from the first prompt row; {@code inputs} holds
     * {@link #packed} on the device.
     */
    PackedChunks promptChunks(DeviceBuffer inputs) {
        int prompts = prompts();
        return new PackedChunks(0, promptLengths(0, prompts), inputs.floatSlice(promptsOffset, prompts + 1L),
                inputs.floatSlice(promptsOffset + prompts + 1, prompts),
                inputs.floatSlice(promptsOffset + 2 * prompts + 1, prompts),
                inputs.floatSlice(promptsOffset + 3 * prompts + 1, promptRows()));
    }

    /**
     * Prompt chunks [from, to) of the laid-out order (0 = the first after the decodes) as the packed
     * SSD scan takes them: starts (still counted from the first prompt row) and slots only.
     */
    PackedChunks promptChunks(DeviceBuffer inputs, int from, int to) {
        return new PackedChunks(packed[promptsOffset + from], promptLengths(from, to), inputs.floatSlice(promptsOffset + from, to - from + 1L),
                inputs.floatSlice(promptsOffset + prompts() + 1 + from, to - from), null, null);
    }

    /** The prompt chunks' keys (each chunk's past and its own positions) as the packed gather and flash read them. */
    PackedKeys promptKeys(DeviceBuffer inputs) {
        int prompts = prompts();
        int keyStarts = promptsOffset + 3 * prompts + 1 + promptRows();
        int[] counts = new int[prompts];
        for (int p = 0; p < prompts; p++) {
            counts[p] = past(decodes + p) + tokens(decodes + p);
        }
        return new PackedKeys(counts, inputs.floatSlice(keyStarts, prompts + 1L), inputs,
                inputs.floatSlice(keyStarts + prompts + 1, prompts));
    }

    private int[] promptLengths(int from, int to) {
        int[] lengths = new int[to - from];
        for (int p = from; p < to; p++) {
            lengths[p - from] = tokens(decodes + p);
        }
        return lengths;
    }

    int idsOffset() {
        return 0;
    }

    int positionsOffset() {
        return rows;
    }

    int cacheRowsOffset() {
        return 2 * rows;
    }

    int decodeSlotsOffset() {
        return 3 * rows;
    }

    int decodeLengthsOffset() {
        return 3 * rows + decodeRows();
    }

    int decodeTablesOffset() {
        return 3 * rows + 2 * decodeRows();
    }
}
