package dev.coil.engine.gpu.model;

import dev.coil.engine.model.Batch;
import dev.coil.engine.model.SequenceState;
import java.util.Arrays;

/**
 * How one serving step's rows sit on the device, and the int32 inputs the kernels read, packed
 * into one array for one upload. Decode segments (one generated token each) come first, so their
 * rows [0, decodes) run through the batched conv/state updates and paged decode attention
 * together; prompt chunks follow, each run through the prefill kernels on its own.
 *
 * <pre>
 *   packed = ids [rows] | positions [rows] | cacheRows [rows] | decodeSlots [decodes]
 *          | decodeLengths [decodes] | decodeTables [decodes, tableStride] | prefill tables …
 * </pre>
 * A captured decode step pads its rows to a bucket: padded rows read token 0 at position 0, own
 * the cache's padding slot and block, and their logits are dropped.
 */
final class StepLayout {

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
        this.packed = new int[3 * rows + 2 * decodeRows + decodeRows * tableStride + prefillTables];
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
        Arrays.sort(indices, (a, b) -> Boolean.compare(!isDecode(batch, a), !isDecode(batch, b)));
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

    int tokens(int k) {
        return batch.tokens(order[k]);
    }

    int past(int k) {
        return batch.segment(order[k]).sequence().length();
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
