package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/**
 * Launches the kernels of sampling.cu: the steps of {@code runner.Sampler} for a batch of rows of logits,
 * one row per sequence, each with its own parameters.
 *
 * <p>Draws are defined by one uniform number in [0, 1) per row, chosen by the host (the sequence's seeded
 * generator, {@code nextDouble()}, exactly as the CPU sampler draws it): the token is the first survivor,
 * in the CPU's candidate order, whose running weight passes uniform · (total surviving weight). Rows whose
 * logits are all -infinity give -1 (the CPU throws); NaN and +infinity logits are not checked here.
 *
 * <p>On sm_90 a row is drawn by a cluster of up to {@value #MOST_BLOCKS_PER_ROW} blocks, each taking a
 * slice of the vocabulary, so that a small batch is not left to a few multiprocessors; every sum is
 * in fixed point, so the tokens do not depend on how many blocks a row gets.
 */
public final class SamplingKernel {

    /** The block size of every sampling kernel (COIL_SAMPLE_THREADS). */
    static final int THREADS = 1024;

    /** The vocabulary sampling.cu's 64-bit fixed-point sums of weights (2^44 per 1) can hold. */
    public static final int MAX_VOCAB = 1 << 20;

    /** Doubles per row of the settings buffer: temperature, top_p, min_p, uniform. */
    public static final int SETTINGS_PER_ROW = 4;

    /** The most blocks that draw one row together by default: the largest portable thread-block cluster. */
    public static final int MOST_BLOCKS_PER_ROW = RowClusters.MOST_BLOCKS_PER_ROW;

    /** The most blocks a row may be given: an H100's largest (non-portable) cluster. */
    public static final int LARGEST_BLOCKS_PER_ROW = RowClusters.LARGEST_BLOCKS_PER_ROW;

    /** {@code -Dcoil.cuda.samplingBlocks=N} fixes the blocks a row (1, 2, 4, 8 or 16; clamped to what the device allows). */
    public static final String BLOCKS_PROPERTY = "coil.cuda.samplingBlocks";

    private final Kernel penalties;
    private final Kernel argmax;
    private final Kernel sample;
    private final RowClusters rowClusters;

    public SamplingKernel(KernelModule module) {
        this.penalties = module.kernel("sampling_penalties_f32");
        this.argmax = module.kernel("sampling_argmax_f32");
        this.sample = module.kernel("sampling_sample_f32");
        this.rowClusters = new RowClusters(module, sample);
    }

    /**
     * The blocks that draw each row of a batch: the most (a power of two up to
     * {@value #MOST_BLOCKS_PER_ROW}) that leave every block a multiprocessor of its own (two rows of
     * 64 fill 128 of an H100's 132); 1 where clusters cannot be launched.
     */
    public int blocksPerRow(int batch) {
        Integer fixed = Integer.getInteger(BLOCKS_PROPERTY);
        return fixed != null ? rowClusters.largestAllowed(fixed) : rowClusters.blocksPerRow(batch);
    }

    /**
     * The grammar's mask, the logit bias, then the repetition, presence and frequency penalties, in
     * place on logits (batch, vocab) f32, in the CPU sampler's order and rounding.
     *
     * @param biasOffsets (batch + 1) int32 into biasIds and biases
     * @param biasIds the distinct logit_bias ids of each row
     * @param biases per bias id, the f32 added to its logit
     * @param seenOffsets (batch + 1) int32: row r's distinct prompt and output ids are
     *     seenIds[seenOffsets[r], seenOffsets[r + 1])
     * @param repetition (batch) f32, 1 is off
     * @param countOffsets (batch + 1) int32 into countIds and subtract
     * @param countIds the distinct generated ids of each row
     * @param subtract per generated id, (float) (presence + frequency · count) as the CPU rounds it
     * @param maskOffsets (batch + 1) int32 into allowedBits: row r's words of 32 tokens are
     *     allowedBits[maskOffsets[r], maskOffsets[r + 1]) (none: no mask); a token whose bit is clear
     *     gets -infinity before anything else
     * @param allowedBits bit id % 32 of a row's word id / 32 set where the grammar allows token id
     */
    public void applyPenalties(CudaStream stream, DeviceBuffer logits, int batch, int vocab, DeviceBuffer biasOffsets,
            DeviceBuffer biasIds, DeviceBuffer biases, DeviceBuffer seenOffsets, DeviceBuffer seenIds,
            DeviceBuffer repetition, DeviceBuffer countOffsets, DeviceBuffer countIds, DeviceBuffer subtract,
            DeviceBuffer maskOffsets, DeviceBuffer allowedBits) {
        requireRows(logits, batch, vocab);
        biasOffsets.requireFloats(batch + 1L, "biasOffsets");
        seenOffsets.requireFloats(batch + 1L, "seenOffsets");
        countOffsets.requireFloats(batch + 1L, "countOffsets");
        repetition.requireFloats(batch, "repetition");
        maskOffsets.requireFloats(batch + 1L, "maskOffsets");
        if (batch > 0) {
            penalties.launch(stream, batch, 1, 1, THREADS, 0, logits, vocab, biasOffsets, biasIds, biases,
                    seenOffsets, seenIds, repetition, countOffsets, countIds, subtract, maskOffsets, allowedBits);
        }
    }

    /** out[r] = argmax of logits[r] (batch, vocab), ties to the lower id; -1 for a row of -infinity. */
    public void argmax(CudaStream stream, DeviceBuffer logits, int batch, int vocab, DeviceBuffer out) {
        requireRows(logits, batch, vocab);
        out.requireFloats(batch, "out");
        if (batch > 0) {
            argmax.launch(stream, batch, 1, 1, THREADS, 0, logits, vocab, out);
        }
    }

    /**
     * Temperature, top-k, top-p, min-p and one draw per row (the argmax where the temperature is 0).
     *
     * @param logits (batch, vocab) f32, penalised, not modified
     * @param topK (batch) int32, 0 off
     * @param settings (batch, {@link #SETTINGS_PER_ROW}) f64: temperature, top_p, min_p, uniform in [0, 1);
     *     see {@link #settingsBits}
     * @param weights (batch, vocab) f32 workspace
     * @param out (batch) int32 tokens
     * @param survivors null, or (batch, vocab) int32 set to 1 where a token survives the filters with a
     *     non-zero probability
     */
    public void sample(CudaStream stream, DeviceBuffer logits, int batch, int vocab, DeviceBuffer topK,
            DeviceBuffer settings, DeviceBuffer weights, DeviceBuffer out, DeviceBuffer survivors) {
        sample(stream, logits, batch, vocab, topK, settings, weights, out, survivors, blocksPerRow(batch));
    }

    /**
     * As above, with {@code blocksPerRow} blocks drawing each row (1, or on sm_90 a power of two up to
     * {@value #LARGEST_BLOCKS_PER_ROW}); the tokens are the same for any of them.
     */
    public void sample(CudaStream stream, DeviceBuffer logits, int batch, int vocab, DeviceBuffer topK,
            DeviceBuffer settings, DeviceBuffer weights, DeviceBuffer out, DeviceBuffer survivors, int blocksPerRow) {
        sample(stream, logits, batch, vocab, topK, settings, weights, out, survivors, null, null, blocksPerRow);
    }

    /**
     * As above, also writing the tokens to {@code hostOut} (null for none; (batch) int32, typically a
     * {@link dev.coil.engine.gpu.PinnedBuffer#deviceView} that the host reads once the stream has passed
     * the launch). {@code bestIds}, when not null, is (batch) int32: each row's argmax of these logits
     * where an earlier launch found it ({@link ArgmaxKernel}'s and {@link LmHeadArgmaxKernel}'s rule:
     * the lowest id of the largest logit), -1 where not; the launch then skips finding it again.
     */
    public void sample(CudaStream stream, DeviceBuffer logits, int batch, int vocab, DeviceBuffer topK,
            DeviceBuffer settings, DeviceBuffer weights, DeviceBuffer out, DeviceBuffer survivors, DeviceBuffer hostOut,
            DeviceBuffer bestIds, int blocksPerRow) {
        rowClusters.require(blocksPerRow);
        requireRows(logits, batch, vocab);
        topK.requireFloats(batch, "topK");
        settings.requireFloats(2L * SETTINGS_PER_ROW * batch, "settings");
        weights.requireFloats((long) batch * vocab, "weights");
        out.requireFloats(batch, "out");
        if (survivors != null) {
            survivors.requireFloats((long) batch * vocab, "survivors");
        }
        if (hostOut != null) {
            hostOut.requireFloats(batch, "hostOut");
        }
        if (bestIds != null) {
            bestIds.requireFloats(batch, "bestIds");
        }
        if (batch > 0) {
            if (blocksPerRow == 1) {
                sample.launch(stream, batch, 1, 1, THREADS, 0, logits, vocab, topK, settings, weights, out, survivors,
                        hostOut, bestIds);
            } else {
                sample.launchClusters(stream, batch * blocksPerRow, blocksPerRow, THREADS, 0, logits, vocab, topK,
                        settings, weights, out, survivors, hostOut, bestIds);
            }
        }
    }

    /** Doubles as the int32 pairs a buffer upload takes (little-endian, as the device reads f64). */
    public static int[] settingsBits(double[] values) {
        int[] bits = new int[2 * values.length];
        for (int i = 0; i < values.length; i++) {
            long raw = Double.doubleToRawLongBits(values[i]);
            bits[2 * i] = (int) raw;
            bits[2 * i + 1] = (int) (raw >>> 32);
        }
        return bits;
    }

    private static void requireRows(DeviceBuffer logits, int batch, int vocab) {
        RowKernels.requireNonNegative(batch, "batch");
        RowKernels.requirePositive(vocab, "vocab");
        if (vocab >= MAX_VOCAB) {
            throw new IllegalArgumentException("vocab must be below " + MAX_VOCAB
                    + " (the fixed-point sums of sampling.cu), not " + vocab);
        }
        logits.requireFloats((long) batch * vocab, "logits");
    }
}
