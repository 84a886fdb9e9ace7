package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.PinnedBuffer;
import dev.coil.engine.gpu.kernels.LogprobsKernel;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.ModelConfig;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A step's scored prompt rows ({@link Batch.PromptScoring}): their log-probabilities, ranks and top
 * tokens computed where the logits are ({@link LogprobsKernel#top} without the copy, then
 * {@link LogprobsKernel#prompt}), from the logits as the host sees them (divided by the model's
 * divisor), so that only a record of 45 words a row comes back instead of the row's logits. Runs
 * before a draw rewrites the logits. Per side, like {@link StepSampling}: the rows, tops and tokens
 * staged in pinned memory, the records and ranks read back into pinned memory.
 */
final class StepScoring {

    private final ModelConfig config;
    private final DeviceKernels kernels;
    private final LogprobsKernel kernel;
    /** Per side, the staged rows, tops and tokens (count ints each). */
    private final PinnedBuffer[] staging = new PinnedBuffer[2];
    /** Per side, the records then the ranks, read back. */
    private final PinnedBuffer[] results = new PinnedBuffer[2];
    /** Per side, per segment in the layout's order, its first record (-1: not scored); and the records in all. */
    private final int[][] firstRecord = {new int[0], new int[0]};
    private final int[] counts = new int[2];

    StepScoring(ModelConfig config, DeviceKernels kernels) {
        this.config = config;
        this.kernels = kernels;
        this.kernel = new LogprobsKernel(kernels.device.kernels());
    }

    /**
     * Queues the records of every scored segment's rows of "model.logits" (undivided, {@code
     * logitRows} rows, each segment's wanted rows in the layout's order) into {@code side}'s pinned
     * memory.
     */
    void score(StepLayout layout, int logitRows, int side) {
        int vocab = config.vocabSize();
        int[] first = new int[layout.order.length];
        Arrays.fill(first, -1);
        List<int[]> parts = new ArrayList<>(); // per scored segment: {first row of logits, rows, segment k}
        int count = 0;
        int row = 0;
        for (int k = 0; k < layout.order.length; k++) {
            Batch.Segment segment = layout.segment(k);
            int wanted = GpuStep.wantedRows(segment);
            if (segment.scoring() != null) {
                if (segment.scoring().top() > LogprobsKernel.MOST_TOP) {
                    throw new IllegalArgumentException("at most " + LogprobsKernel.MOST_TOP
                            + " top prompt logprobs are scored on the device, not " + segment.scoring().top());
                }
                first[k] = count;
                parts.add(new int[] {row, wanted, k});
                count += wanted;
            }
            row += wanted;
        }
        firstRecord[side] = first;
        counts[side] = count;
        if (count == 0) {
            return;
        }
        int[] inputs = new int[3 * count];
        for (int[] part : parts) {
            Batch.PromptScoring scoring = layout.segment(part[2]).scoring();
            for (int r = 0; r < part[1]; r++) {
                int record = first[part[2]] + r;
                inputs[record] = part[0] + r;
                inputs[count + record] = scoring.top();
                inputs[2 * count + record] = scoring.tokens()[r];
            }
        }
        staging[side] = kernels.device.pinnedAtLeast(staging[side], 4L * inputs.length, 1 << 12);
        MemorySegment.copy(inputs, 0, staging[side].segment(), ValueLayout.JAVA_INT, 0, inputs.length);
        DeviceBuffer staged = kernels.scratch.floats("scoring.inputs", inputs.length);
        staged.copyFromAsync(staging[side], 0, 0, 4L * inputs.length, kernels.stream);
        DeviceBuffer rows = staged.floatSlice(0, count);
        DeviceBuffer tops = staged.floatSlice(count, count);
        DeviceBuffer tokens = staged.floatSlice(2L * count, count);

        long recordFloats = (long) LogprobsKernel.RECORD_WORDS * count;
        DeviceBuffer out = kernels.scratch.floats("scoring.records", recordFloats + count);
        DeviceBuffer records = out.floatSlice(0, recordFloats);
        DeviceBuffer ranks = out.floatSlice(recordFloats, count);
        DeviceBuffer logits = kernels.scratch.floats("model.logits", (long) logitRows * vocab);
        float divisor = config.logitsDivisor();
        kernel.top(kernels.stream, logits, vocab, divisor, count, rows, tops, null, records);
        kernel.prompt(kernels.stream, logits, vocab, divisor, count, rows, tokens, records, ranks);
        results[side] = kernels.device.pinnedAtLeast(results[side], 4L * (recordFloats + count), 1 << 12);
        out.copyToAsync(results[side], 0, 0, 4L * (recordFloats + count), kernels.stream);
    }

    /**
     * The scores of the segment at layout position {@code k} in the last scoring of {@code side}, once
     * the stream has passed it; null where that segment was not scored.
     */
    List<Batch.ScoredRow> rows(int side, int k, int rowCount) {
        int first = k < firstRecord[side].length ? firstRecord[side][k] : -1;
        if (first < 0) {
            return null;
        }
        MemorySegment memory = results[side].segment();
        long ranksAt = 4L * LogprobsKernel.RECORD_WORDS * counts[side];
        List<Batch.ScoredRow> scored = new ArrayList<>(rowCount);
        for (int r = 0; r < rowCount; r++) {
            int record = first + r;
            LogprobsKernel.Record read = LogprobsKernel.read(memory, record);
            scored.add(new Batch.ScoredRow(read.chosen(), memory.get(ValueLayout.JAVA_INT, ranksAt + 4L * record),
                    read.topIds(), read.topLogprobs()));
        }
        return scored;
    }

    void close() {
        for (PinnedBuffer buffer : staging) {
            if (buffer != null) {
                buffer.close();
            }
        }
        for (PinnedBuffer buffer : results) {
            if (buffer != null) {
                buffer.close();
            }
        }
    }
}
