package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.PinnedBuffer;
import dev.coil.engine.gpu.kernels.SamplingKernel;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.ModelConfig;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A step's tokens drawn on the device ({@link SamplingKernel}): the settings, penalty lists and
 * uniform numbers of its SAMPLE rows uploaded, the argmax for its other rows, the tokens copied to
 * pinned memory.
 */
final class StepSampling {

    private final ModelConfig config;
    private final DeviceKernels kernels;
    private final SamplingKernel kernel;
    /** The side of the draw in progress (see {@link #draw}). */
    private int side;
    /** Per side, pinned memory the draw's settings are staged in before their copy on the stream. */
    private final PinnedBuffer[] staging = new PinnedBuffer[2];
    /** Bytes of the current side's staging used by the draw in progress. */
    private long staged;

    StepSampling(ModelConfig config, DeviceKernels kernels) {
        this.config = config;
        this.kernels = kernels;
        this.kernel = new SamplingKernel(kernels.device.kernels());
    }

    static boolean hasSampledRows(StepLayout layout) {
        for (int k = 0; k < layout.order.length; k++) {
            if (layout.segment(k).logits() == Batch.Logits.SAMPLE) {
                return true;
            }
        }
        return false;
    }

    /**
     * Draws the tokens of SAMPLE rows on the device with their settings and uniform numbers
     * (penalties, temperature, top-k, top-p, min-p, as runner/Sampler), the argmax for the other
     * rows, into the pinned tokens, and returns them on the device. Reads and rewrites "model.logits"
     * after its copy to the host. The settings are staged in pinned memory of {@code side} (0 or
     * 1) and copied on the stream into device buffers of that side: a step queued behind another
     * uses the other side's, which that step's copies and draw may still be reading.
     */
    DeviceBuffer draw(StepLayout layout, int logitRows, PinnedBuffer tokensHost, int side) {
        this.side = side;
        this.staged = 0;
        int vocab = config.vocabSize();
        if (config.logitsDivisor() != 1f) {
            kernels.argmax.divide(kernels.stream, kernels.scratch.floats("model.logits", (long) logitRows * vocab),
                    (long) logitRows * vocab, config.logitsDivisor());
        }
        int[] topK = new int[logitRows];
        double[] settings = new double[SamplingKernel.SETTINGS_PER_ROW * logitRows];
        float[] repetition = new float[logitRows];
        Arrays.fill(repetition, 1f);
        int[] seenOffsets = new int[logitRows + 1];
        int[] countOffsets = new int[logitRows + 1];
        List<int[]> seen = new ArrayList<>();
        List<Batch.Draw> counted = new ArrayList<>();
        Batch.Draw[] byRow = new Batch.Draw[logitRows];
        int row = 0;
        for (int k = 0; k < layout.order.length; k++) {
            Batch.Segment segment = layout.segment(k);
            int wanted = layout.decodesOnly() ? 1 : GpuStep.wantedRows(segment);
            if (segment.logits() == Batch.Logits.SAMPLE) {
                byRow[row + wanted - 1] = segment.draw();
            }
            row += wanted;
        }
        int seenTotal = 0;
        int countTotal = 0;
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
                seenTotal += draw.seenIds().length;
                countTotal += draw.countIds().length;
                penalties |= draw.repetitionPenalty() != 1f || draw.countIds().length > 0;
            } else {
                settings[4 * r + 1] = 1; // temperature 0: the argmax
            }
            seenOffsets[r + 1] = seenTotal;
            countOffsets[r + 1] = countTotal;
        }
        DeviceBuffer logits = kernels.scratch.floats("model.logits", (long) logitRows * vocab);
        if (penalties) {
            int[] seenIds = new int[Math.max(1, seenTotal)];
            int[] countIds = new int[Math.max(1, countTotal)];
            float[] subtract = new float[Math.max(1, countTotal)];
            int at = 0;
            for (int[] ids : seen) {
                System.arraycopy(ids, 0, seenIds, at, ids.length);
                at += ids.length;
            }
            at = 0;
            for (Batch.Draw draw : counted) {
                System.arraycopy(draw.countIds(), 0, countIds, at, draw.countIds().length);
                System.arraycopy(draw.countPenalties(), 0, subtract, at, draw.countIds().length);
                at += draw.countIds().length;
            }
            kernel.applyPenalties(kernels.stream, logits, logitRows, vocab, upload("sampling.seenOffsets", seenOffsets),
                    upload("sampling.seenIds", seenIds), upload("sampling.repetition", repetition),
                    upload("sampling.countOffsets", countOffsets), upload("sampling.countIds", countIds),
                    upload("sampling.subtract", subtract));
        }
        DeviceBuffer tokens = kernels.scratch.floats("sampling.tokens", logitRows);
        kernel.sample(kernels.stream, logits, logitRows, vocab, upload("sampling.topK", topK),
                upload("sampling.settings", SamplingKernel.settingsBits(settings)),
                kernels.scratch.floats("sampling.weights", (long) logitRows * vocab), tokens, null);
        tokens.copyToAsync(tokensHost, 0, 0, 4L * logitRows, kernels.stream);
        return tokens;
    }

    private DeviceBuffer upload(String name, int[] values) {
        return upload(name, MemorySegment.ofArray(values));
    }

    private DeviceBuffer upload(String name, float[] values) {
        return upload(name, MemorySegment.ofArray(values));
    }

    /**
     * 4-byte values into this side's device buffer {@code name}: staged in this side's pinned memory
     * from {@code staged} on, then copied on the stream. When the staging is too small a larger one
     * replaces it once the copies already queued from the old one are done.
     */
    private DeviceBuffer upload(String name, MemorySegment values) {
        long bytes = values.byteSize();
        DeviceBuffer buffer = kernels.scratch.floats(name + "." + side, bytes / 4);
        staging[side] = kernels.device.pinnedAtLeast(staging[side], staged + bytes, Math.max(2 * (staged + bytes),
                1 << 14));
        MemorySegment.copy(values, 0, staging[side].segment(), staged, bytes);
        buffer.copyFromAsync(staging[side], staged, 0, bytes, kernels.stream);
        staged += align(bytes);
        return buffer;
    }

    private static long align(long bytes) {
        return (bytes + 255) & ~255L;
    }

    void close() {
        for (PinnedBuffer buffer : staging) {
            if (buffer != null) {
                buffer.close();
            }
        }
    }
}
