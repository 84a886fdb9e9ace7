package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.PinnedBuffer;
import dev.coil.engine.gpu.kernels.LogprobsKernel;
import dev.coil.engine.gpu.kernels.SamplingKernel;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.ModelConfig;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A step's tokens drawn on the device ({@link SamplingKernel}): the settings, penalty lists and
 * uniform numbers of its SAMPLE rows staged in pinned memory, the argmax for its other rows, the
 * tokens written to pinned memory. With host mapping (the default) the kernels read the staged
 * values and write the tokens in place, so a sampled step queues no copy; without it both go
 * through copies on the stream. Rows whose draw asks for logprobs get them computed beside the
 * draw ({@link LogprobsKernel}), into pinned memory of the same side.
 */
final class StepSampling {

    private final ModelConfig config;
    private final DeviceKernels kernels;
    private final SamplingKernel kernel;
    private final LogprobsKernel logprobsKernel;
    private final boolean hostMapped;
    /** Whether a step of greedy rows that all want logprobs is drawn by the logprobs launch alone. */
    private final boolean greedyInLogprobsLaunch = !"false".equalsIgnoreCase(
            System.getProperty(GpuBackend.GREEDY_LOGPROBS_LAUNCH_PROPERTY, "true"));
    /** Per side, pinned memory the draw's settings are staged in. */
    private final PinnedBuffer[] staging = new PinnedBuffer[2];
    /** Per side, pinned memory the logprobs records are written to. */
    private final PinnedBuffer[] records = new PinnedBuffer[2];
    /** Per side, each row of logits' record in {@link #records}, -1 for none (the last draw's). */
    private final int[][] recordOfRow = {new int[0], new int[0]};

    StepSampling(ModelConfig config, DeviceKernels kernels, boolean hostMapped) {
        this.config = config;
        this.kernels = kernels;
        this.kernel = new SamplingKernel(kernels.device.kernels());
        this.logprobsKernel = new LogprobsKernel(kernels.device.kernels());
        this.hostMapped = hostMapped;
    }

    /**
     * Draws the tokens of SAMPLE rows on the device with their settings and uniform numbers
     * (logit bias, penalties, temperature, top-k, top-p, min-p, as runner/Sampler), the argmax for the other
     * rows, into the pinned tokens, and returns them on the device. Reads and rewrites "model.logits"
     * after its copy to the host. The settings are staged in pinned memory of {@code side} (0 or
     * 1): a step queued behind another uses the other side's, which that step's draw may still be
     * reading. {@code argmax}: the rows' greedy tokens of the same logits when the step made them
     * (null if not); a draw without bias or penalties and with no logits divisor takes each row's best
     * logit from them instead of finding it again.
     */
    DeviceBuffer draw(StepLayout layout, int logitRows, PinnedBuffer tokensHost, int side, DeviceBuffer argmax) {
        return draw(layout, null, logitRows, tokensHost, side, argmax);
    }

    /**
     * As above, with {@code draws} (per batch segment) in place of the segments' {@link Batch.Draw#LATER}
     * draws: a step drawn later, a null draw taking the row's argmax.
     */
    DeviceBuffer draw(StepLayout layout, List<Batch.Draw> draws, int logitRows, PinnedBuffer tokensHost, int side,
            DeviceBuffer argmax) {
        int vocab = config.vocabSize();
        DeviceBuffer logits = kernels.scratch.floats("model.logits", (long) logitRows * vocab);
        int[] topK = new int[logitRows];
        double[] settings = new double[SamplingKernel.SETTINGS_PER_ROW * logitRows];
        float[] repetition = new float[logitRows];
        Arrays.fill(repetition, 1f);
        int[] biasOffsets = new int[logitRows + 1];
        int[] seenOffsets = new int[logitRows + 1];
        int[] countOffsets = new int[logitRows + 1];
        int[] maskOffsets = new int[logitRows + 1];
        List<int[]> seen = new ArrayList<>();
        List<Batch.Draw> counted = new ArrayList<>();
        Batch.Draw[] byRow = new Batch.Draw[logitRows];
        int row = 0;
        for (int k = 0; k < layout.order.length; k++) {
            Batch.Segment segment = layout.segment(k);
            int wanted = layout.decodesOnly() ? 1 : GpuStep.wantedRows(segment);
            if (segment.logits() == Batch.Logits.SAMPLE) {
                byRow[row + wanted - 1] = draws != null && segment.drawnLater() ? draws.get(layout.order[k])
                        : segment.draw();
            }
            row += wanted;
        }
        int biasTotal = 0;
        int seenTotal = 0;
        int countTotal = 0;
        int maskTotal = 0;
        boolean penalties = false;
        for (int r = 0; r < logitRows; r++) {
            Batch.Draw draw = byRow[r];
            if (draw != null) {
                settings[4 * r] = draw.temperature();
                settings[4 * r + 1] = draw.topP();
                settings[4 * r + 2] = draw.minP();
                settings[4 * r + 3] = draw.uniform();
                topK[r] = draw.topK();
                repetition[r] = draw.repetitionPenalty();
                seen.add(draw.seenIds());
                counted.add(draw);
                biasTotal += draw.biasIds().length;
                seenTotal += draw.seenIds().length;
                countTotal += draw.countIds().length;
                maskTotal += draw.allowedBits() == null ? 0 : draw.allowedBits().length;
                penalties |= draw.adjustsLogits();
            } else {
                settings[4 * r + 1] = 1; // temperature 0: the argmax
            }
            biasOffsets[r + 1] = biasTotal;
            seenOffsets[r + 1] = seenTotal;
            countOffsets[r + 1] = countTotal;
            maskOffsets[r + 1] = maskTotal;
        }
        LogprobRows logprobRows = LogprobRows.of(byRow);
        recordOfRow[side] = logprobRows.recordOfRow;
        int count = logprobRows.rows.length;
        if (greedyInLogprobsLaunch && count == logitRows && !penalties
                && Arrays.stream(byRow).allMatch(draw -> draw.temperature() == 0)) {
            return drawGreedyInTopPass(logits, logitRows, logprobRows, tokensHost, side);
        }
        if (config.logitsDivisor() != 1f) {
            kernels.argmax.divide(kernels.stream, logits, (long) logitRows * vocab, config.logitsDivisor());
        }
        Staging staged = new Staging(side);
        int topKAt = staged.add("sampling.topK", MemorySegment.ofArray(topK));
        int settingsAt = staged.add("sampling.settings", MemorySegment.ofArray(SamplingKernel.settingsBits(settings)));
        int logprobRowsAt = -1;
        if (count > 0) {
            logprobRowsAt = staged.add("sampling.logprobRows", MemorySegment.ofArray(logprobRows.rows));
            staged.add("sampling.logprobTops", MemorySegment.ofArray(logprobRows.tops));
        }
        int first = -1;
        if (penalties) {
            int[] biasIds = new int[Math.max(1, biasTotal)];
            float[] biases = new float[Math.max(1, biasTotal)];
            int[] seenIds = new int[Math.max(1, seenTotal)];
            int[] countIds = new int[Math.max(1, countTotal)];
            float[] subtract = new float[Math.max(1, countTotal)];
            int[] allowedBits = new int[Math.max(1, maskTotal)];
            int at = 0;
            for (int[] ids : seen) {
                System.arraycopy(ids, 0, seenIds, at, ids.length);
                at += ids.length;
            }
            at = 0;
            int biasAt = 0;
            int maskAt = 0;
            for (Batch.Draw draw : counted) {
                if (draw.allowedBits() != null) {
                    System.arraycopy(draw.allowedBits(), 0, allowedBits, maskAt, draw.allowedBits().length);
                    maskAt += draw.allowedBits().length;
                }
                System.arraycopy(draw.countIds(), 0, countIds, at, draw.countIds().length);
                System.arraycopy(draw.countPenalties(), 0, subtract, at, draw.countIds().length);
                at += draw.countIds().length;
                System.arraycopy(draw.biasIds(), 0, biasIds, biasAt, draw.biasIds().length);
                System.arraycopy(draw.biases(), 0, biases, biasAt, draw.biasIds().length);
                biasAt += draw.biasIds().length;
            }
            first = staged.add("sampling.biasOffsets", MemorySegment.ofArray(biasOffsets));
            staged.add("sampling.biasIds", MemorySegment.ofArray(biasIds));
            staged.add("sampling.biases", MemorySegment.ofArray(biases));
            staged.add("sampling.seenOffsets", MemorySegment.ofArray(seenOffsets));
            staged.add("sampling.seenIds", MemorySegment.ofArray(seenIds));
            staged.add("sampling.repetition", MemorySegment.ofArray(repetition));
            staged.add("sampling.countOffsets", MemorySegment.ofArray(countOffsets));
            staged.add("sampling.countIds", MemorySegment.ofArray(countIds));
            staged.add("sampling.subtract", MemorySegment.ofArray(subtract));
            staged.add("sampling.maskOffsets", MemorySegment.ofArray(maskOffsets));
            staged.add("sampling.allowedBits", MemorySegment.ofArray(allowedBits));
        }
        staged.stage();
        DeviceBuffer recordsOut = null;
        DeviceBuffer raw = null;
        if (count > 0) {
            // Before the mask, bias and penalties rewrite the logits: the logprobs are of the logits as they are.
            recordsOut = recordsOut(side, count);
            raw = kernels.scratch.floats("sampling.logprobRaw", (long) count * vocab);
            // The logits are divided already (above).
            logprobsKernel.top(kernels.stream, logits, vocab, 1f, count, staged.buffer(logprobRowsAt),
                    staged.buffer(logprobRowsAt + 1), raw, recordsOut);
        }
        if (penalties) {
            kernel.applyPenalties(kernels.stream, logits, logitRows, vocab, staged.buffer(first),
                    staged.buffer(first + 1), staged.buffer(first + 2), staged.buffer(first + 3),
                    staged.buffer(first + 4), staged.buffer(first + 5), staged.buffer(first + 6),
                    staged.buffer(first + 7), staged.buffer(first + 8), staged.buffer(first + 9),
                    staged.buffer(first + 10));
        }
        DeviceBuffer tokens = kernels.scratch.floats("sampling.tokens", logitRows);
        DeviceBuffer hostTokens = hostMapped ? tokensHost.deviceView(0, 4L * logitRows) : null;
        kernel.sample(kernels.stream, logits, logitRows, vocab, staged.buffer(topKAt), staged.buffer(settingsAt),
                kernels.scratch.floats("sampling.weights", (long) logitRows * vocab), tokens, null, hostTokens,
                penalties || config.logitsDivisor() != 1f ? null : argmax, kernel.blocksPerRow(logitRows));
        if (count > 0) {
            logprobsKernel.chosen(kernels.stream, raw, vocab, count, staged.buffer(logprobRowsAt), tokens, recordsOut);
            copyRecordsBack(recordsOut, side, count);
        }
        if (!hostMapped) {
            tokens.copyToAsync(tokensHost, 0, 0, 4L * logitRows, kernels.stream);
        }
        return tokens;
    }

    /**
     * A step whose rows are all greedy and all want logprobs, with no mask, bias or penalty: the
     * logprobs launch draws the tokens too ({@link LogprobsKernel#drawGreedy}, the logits divided as it
     * reads them), so that the step queues one launch where it queued the logits' division, the
     * logprobs, the draw and the chosen tokens' logprobs.
     */
    private DeviceBuffer drawGreedyInTopPass(DeviceBuffer logits, int logitRows, LogprobRows logprobRows,
            PinnedBuffer tokensHost, int side) {
        Staging staged = new Staging(side);
        int rowsAt = staged.add("sampling.logprobRows", MemorySegment.ofArray(logprobRows.rows));
        staged.add("sampling.logprobTops", MemorySegment.ofArray(logprobRows.tops));
        staged.stage();
        DeviceBuffer recordsOut = recordsOut(side, logitRows);
        DeviceBuffer tokens = kernels.scratch.floats("sampling.tokens", logitRows);
        DeviceBuffer hostTokens = hostMapped ? tokensHost.deviceView(0, 4L * logitRows) : null;
        logprobsKernel.drawGreedy(kernels.stream, logits, config.vocabSize(), config.logitsDivisor(), logitRows,
                staged.buffer(rowsAt), staged.buffer(rowsAt + 1), recordsOut, tokens, hostTokens);
        copyRecordsBack(recordsOut, side, logitRows);
        if (!hostMapped) {
            tokens.copyToAsync(tokensHost, 0, 0, 4L * logitRows, kernels.stream);
        }
        return tokens;
    }

    /**
     * Where the logprobs kernel writes {@code count} records for {@code side}: that side's pinned
     * records in place, or a device buffer that {@link #copyRecordsBack} copies there without host mapping.
     */
    private DeviceBuffer recordsOut(int side, int count) {
        long recordBytes = 4L * LogprobsKernel.RECORD_WORDS * count;
        records[side] = kernels.device.pinnedAtLeast(records[side], recordBytes, 1 << 12);
        return hostMapped ? records[side].deviceView(0, recordBytes)
                : kernels.scratch.floats("sampling.logprobRecords." + side, recordBytes / 4);
    }

    private void copyRecordsBack(DeviceBuffer recordsOut, int side, int count) {
        if (!hostMapped) {
            recordsOut.copyToAsync(records[side], 0, 0, 4L * LogprobsKernel.RECORD_WORDS * count, kernels.stream);
        }
    }

    /**
     * The logprobs drawn with row {@code row}'s token in the last draw of {@code side}, once the stream
     * has passed it; null where that row's draw asked for none.
     */
    Batch.DrawnLogprobs logprobs(int side, int row) {
        int record = row < recordOfRow[side].length ? recordOfRow[side][row] : -1;
        if (record < 0) {
            return null;
        }
        LogprobsKernel.Record read = LogprobsKernel.read(records[side].segment(), record);
        return new Batch.DrawnLogprobs(read.chosen(), read.topIds(), read.topLogprobs());
    }

    /** The rows of logits whose draws ask for logprobs: their rows, top counts, and each row's record. */
    private record LogprobRows(int[] rows, int[] tops, int[] recordOfRow) {

        static LogprobRows of(Batch.Draw[] byRow) {
            int[] recordOfRow = new int[byRow.length];
            Arrays.fill(recordOfRow, -1);
            int count = 0;
            for (int r = 0; r < byRow.length; r++) {
                if (byRow[r] != null && byRow[r].logprobs() >= 0) {
                    if (byRow[r].logprobs() > LogprobsKernel.MOST_TOP) {
                        throw new IllegalArgumentException("at most " + LogprobsKernel.MOST_TOP
                                + " top logprobs are drawn on the device, not " + byRow[r].logprobs());
                    }
                    recordOfRow[r] = count++;
                }
            }
            int[] rows = new int[count];
            int[] tops = new int[count];
            for (int r = 0; r < byRow.length; r++) {
                if (recordOfRow[r] >= 0) {
                    rows[recordOfRow[r]] = r;
                    tops[recordOfRow[r]] = byRow[r].logprobs();
                }
            }
            return new LogprobRows(rows, tops, recordOfRow);
        }
    }

    /**
     * One draw's arrays of 4-byte values, staged together in this side's pinned memory (grown first,
     * so that every array of the draw lies in one buffer), then handed to the kernels in place, or
     * copied on the stream into device buffers of that side when host mapping is off.
     */
    private final class Staging {
        private final int side;
        private final List<String> names = new ArrayList<>();
        private final List<MemorySegment> values = new ArrayList<>();
        private final List<DeviceBuffer> buffers = new ArrayList<>();

        Staging(int side) {
            this.side = side;
        }

        /** Adds an array and returns its index. */
        int add(String name, MemorySegment array) {
            names.add(name);
            values.add(array);
            return values.size() - 1;
        }

        void stage() {
            long total = 0;
            for (MemorySegment array : values) {
                total += align(array.byteSize());
            }
            staging[side] = kernels.device.pinnedAtLeast(staging[side], total, Math.max(2 * total, 1 << 14));
            long at = 0;
            for (int i = 0; i < values.size(); i++) {
                long bytes = values.get(i).byteSize();
                MemorySegment.copy(values.get(i), 0, staging[side].segment(), at, bytes);
                if (hostMapped) {
                    buffers.add(staging[side].deviceView(at, bytes));
                } else {
                    DeviceBuffer buffer = kernels.scratch.floats(names.get(i) + "." + side, bytes / 4);
                    buffer.copyFromAsync(staging[side], at, 0, bytes, kernels.stream);
                    buffers.add(buffer);
                }
                at += align(bytes);
            }
        }

        DeviceBuffer buffer(int index) {
            return buffers.get(index);
        }
    }

    private static long align(long bytes) {
        return (bytes + 255) & ~255L;
    }

    void close() {
        for (PinnedBuffer[] buffers : List.of(staging, records)) {
            for (PinnedBuffer buffer : buffers) {
                if (buffer != null) {
                    buffer.close();
                }
            }
        }
    }
}
