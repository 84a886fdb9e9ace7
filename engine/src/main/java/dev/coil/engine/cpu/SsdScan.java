package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.SequenceKernels.LANES;
import static dev.coil.engine.cpu.SequenceKernels.SPECIES;

import dev.coil.engine.ops.SsmShape;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;

/**
 * The Mamba-2 selective scan. Prefill uses the chunked SSD form: within a chunk of tokens,
 * with a_j = dt_j·A and cum_i = a_0 + … + a_i,
 * <pre>
 *   y_i = Σ_{j ≤ i} (C_i·B_j) · exp(cum_i − cum_j) · dt_j x_j      (inside the chunk: a masked product)
 *       + exp(cum_i) · S_in C_i                                     (the state entering the chunk)
 *       + D · x_i
 *   S_out = exp(cum_last) · S_in + Σ_j exp(cum_last − cum_j) · dt_j x_j ⊗ B_j
 * </pre>
 * which equals the token-by-token recurrence but is made of small dense products. Every exponent
 * is a difference cum_i − cum_j ≤ 0 (A &lt; 0, dt &gt; 0), so nothing overflows. Heads are independent
 * and run in parallel; C_i·B_j depends only on the group and is shared by the heads of a task.
 */
final class SsdScan {

    /** Rows of the masked decay matrix built at a time (a multiple of the product's four-row blocks). */
    private static final int DECAY_ROWS = 16;
    /** Below about this many state updates (tokens × heads × headDim × stateSize) a call stays on one thread. */
    private static final long SERIAL_WORK = 1 << 15;

    private final Parallel parallel;

    SsdScan(Parallel parallel) {
        this.parallel = parallel;
    }

    void scan(SsmShape shape, int tokens, int chunkSize, float[] x, float[] dt, float[] A, float[] B, float[] C,
            float[] D, float[] state, float[] y) {
        if (chunkSize <= 0) {
            throw new IllegalArgumentException("SSD scan chunk size must be positive, got " + chunkSize);
        }
        if (tokens <= 0) {
            return;
        }
        int heads = shape.heads();
        long work = (long) tokens * shape.stateFloats();
        int grain = work < SERIAL_WORK ? heads : ceilDiv(heads, parallel.threads());
        Operands operands = new Operands(shape, tokens, Math.min(chunkSize, tokens), x, dt, A, B, C, D, state, y);
        parallel.forRange(heads, grain, (first, end) -> scanHeads(operands, first, end));
    }

    private record Operands(SsmShape shape, int tokens, int chunkSize, float[] x, float[] dt, float[] A, float[] B,
            float[] C, float[] D, float[] state, float[] y) {}

    /**
     * One task's scratch. Tiles indexed by a token of the chunk along their rows have {@code columns}
     * (the chunk size rounded up to whole vectors) per row, so vector loops may run past the chunk's
     * last token into padding.
     */
    private static final class Workspace {
        final int columns;
        final float[] states;           // [heads of the task, stateSize, headDim]: S transposed
        final float[] bTransposed;      // [stateSize, columns]
        final float[] gram;             // [chunk, columns]: C_i·B_j, lower triangle
        final float[] decay;            // [DECAY_ROWS, columns]
        final float[] cumulative;       // [columns]: cum_i rounded to f32
        final float[] cumulativeLow;    // [columns]: cum_i − cumulative[i], so differences keep their digits
        final float[] factors;          // [chunk]
        final float[] inputs;           // [chunk, headDim]: dt_j x_j
        final float[] outputs;          // [chunk, headDim]

        Workspace(SsmShape shape, int heads, int chunk) {
            int headDim = shape.headDim();
            int stateSize = shape.stateSize();
            columns = ceilDiv(chunk, LANES) * LANES;
            states = new float[heads * stateSize * headDim];
            bTransposed = new float[stateSize * columns];
            gram = new float[chunk * columns];
            decay = new float[DECAY_ROWS * columns];
            cumulative = new float[columns];
            cumulativeLow = new float[columns];
            factors = new float[chunk];
            inputs = new float[chunk * headDim];
            outputs = new float[chunk * headDim];
        }
    }

    private static void scanHeads(Operands op, int firstHead, int endHead) {
        SsmShape shape = op.shape();
        int headDim = shape.headDim();
        int stateSize = shape.stateSize();
        int stateFloats = headDim * stateSize;
        Workspace workspace = new Workspace(shape, endHead - firstHead, op.chunkSize());

        // The state is [headDim, stateSize] per head; the chunk products want it as [stateSize, headDim].
        for (int h = firstHead; h < endHead; h++) {
            int local = (h - firstHead) * stateFloats;
            for (int p = 0; p < headDim; p++) {
                for (int n = 0; n < stateSize; n++) {
                    workspace.states[local + n * headDim + p] = op.state()[h * stateFloats + p * stateSize + n];
                }
            }
        }
        for (int chunkStart = 0; chunkStart < op.tokens(); chunkStart += op.chunkSize()) {
            int length = Math.min(op.chunkSize(), op.tokens() - chunkStart);
            int preparedGroup = -1;
            for (int h = firstHead; h < endHead; h++) {
                int group = shape.groupOfHead(h);
                if (group != preparedGroup) {
                    prepareGroup(op, group, chunkStart, length, workspace);
                    preparedGroup = group;
                }
                scanChunk(op, h, (h - firstHead) * stateFloats, chunkStart, length, workspace);
            }
        }
        for (int h = firstHead; h < endHead; h++) {
            int local = (h - firstHead) * stateFloats;
            for (int p = 0; p < headDim; p++) {
                for (int n = 0; n < stateSize; n++) {
                    op.state()[h * stateFloats + p * stateSize + n] = workspace.states[local + n * headDim + p];
                }
            }
        }
    }

    /** Bᵀ of the chunk and the lower triangle of C_i·B_j (j ≤ i) for one group. */
    private static void prepareGroup(Operands op, int group, int chunkStart, int length, Workspace workspace) {
        SsmShape shape = op.shape();
        int stateSize = shape.stateSize();
        int columns = workspace.columns;
        int rowStride = shape.groups() * stateSize;
        int base = (chunkStart * shape.groups() + group) * stateSize;
        for (int j = 0; j < length; j++) {
            for (int n = 0; n < stateSize; n++) {
                workspace.bTransposed[n * columns + j] = op.B()[base + j * rowStride + n];
            }
        }
        // Row block [r0, r1) needs columns j < r1 only (rounded up to a vector); the rest is never read.
        for (int r0 = 0; r0 < length; r0 += DECAY_ROWS) {
            int r1 = Math.min(length, r0 + DECAY_ROWS);
            SequenceKernels.multiplyAdd(r1 - r0, ceilDiv(r1, LANES) * LANES, stateSize, op.C(), base + r0 * rowStride,
                    rowStride, workspace.bTransposed, 0, columns, workspace.gram, r0 * columns, columns, false);
        }
    }

    private static void scanChunk(Operands op, int head, int stateOffset, int chunkStart, int length,
            Workspace workspace) {
        SsmShape shape = op.shape();
        int heads = shape.heads();
        int headDim = shape.headDim();
        int stateSize = shape.stateSize();
        int columns = workspace.columns;
        int group = shape.groupOfHead(head);
        int bcStride = shape.groups() * stateSize;
        int bcBase = (chunkStart * shape.groups() + group) * stateSize;
        int xStride = heads * headDim;
        int xBase = (chunkStart * heads + head) * headDim;
        float[] cumulative = workspace.cumulative;
        float[] cumulativeLow = workspace.cumulativeLow;
        float[] factors = workspace.factors;
        float[] inputs = workspace.inputs;
        float[] outputs = workspace.outputs;
        float[] states = workspace.states;

        double sum = 0;
        for (int i = 0; i < length; i++) {
            float step = op.dt()[(chunkStart + i) * heads + head];
            sum += (double) step * op.A()[head];
            cumulative[i] = (float) sum;
            cumulativeLow[i] = (float) (sum - cumulative[i]);
            System.arraycopy(op.x(), xBase + i * xStride, inputs, i * headDim, headDim);
            SequenceKernels.scale(inputs, i * headDim, headDim, step);
        }

        // Entering state: outputs[i] = exp(cum_i) · (C_i · S_in).
        SequenceKernels.multiplyAdd(length, headDim, stateSize, op.C(), bcBase, bcStride, states, stateOffset,
                headDim, outputs, 0, headDim, false);
        exponentials(cumulative, cumulativeLow, length, -1, false, factors);
        for (int i = 0; i < length; i++) {
            SequenceKernels.scale(outputs, i * headDim, headDim, factors[i]);
        }

        // Inside the chunk: outputs[i] += Σ_{j ≤ i} gram[i, j] · exp(cum_i − cum_j) · inputs[j].
        float[] decay = workspace.decay;
        float[] gram = workspace.gram;
        for (int r0 = 0; r0 < length; r0 += DECAY_ROWS) {
            int r1 = Math.min(length, r0 + DECAY_ROWS);
            for (int i = r0; i < r1; i++) {
                int row = (i - r0) * columns;
                FloatVector current = FloatVector.broadcast(SPECIES, cumulative[i]);
                FloatVector currentLow = FloatVector.broadcast(SPECIES, cumulativeLow[i]);
                // Whole vectors up to past the diagonal (into padding); j > i is then cleared.
                for (int j = 0; j <= i; j += LANES) {
                    FloatVector difference = current.sub(FloatVector.fromArray(SPECIES, cumulative, j))
                            .add(currentLow.sub(FloatVector.fromArray(SPECIES, cumulativeLow, j)));
                    SequenceKernels.exp(difference)
                            .mul(FloatVector.fromArray(SPECIES, gram, i * columns + j))
                            .intoArray(decay, row + j);
                }
                Arrays.fill(decay, row + i + 1, row + r1, 0f);
            }
            SequenceKernels.multiplyAdd(r1 - r0, headDim, r1, decay, 0, columns, inputs, 0, headDim, outputs,
                    r0 * headDim, headDim, true);
        }

        float skip = op.D()[head];
        FloatVector skipVector = FloatVector.broadcast(SPECIES, skip);
        for (int i = 0; i < length; i++) {
            int to = xBase + i * xStride;
            int from = i * headDim;
            int p = 0;
            for (; p + LANES <= headDim; p += LANES) {
                FloatVector.fromArray(SPECIES, op.x(), to + p)
                        .fma(skipVector, FloatVector.fromArray(SPECIES, outputs, from + p))
                        .intoArray(op.y(), to + p);
            }
            for (; p < headDim; p++) {
                op.y()[to + p] = Math.fma(skip, op.x()[to + p], outputs[from + p]);
            }
        }

        // Leaving state: S_out = exp(cum_last) · S_in + Σ_j Bᵀ[:, j] ⊗ exp(cum_last − cum_j) · inputs[j].
        exponentials(cumulative, cumulativeLow, length, length - 1, true, factors);
        for (int j = 0; j < length; j++) {
            SequenceKernels.scale(inputs, j * headDim, headDim, factors[j]);
        }
        float chunkDecay = (float) Math.exp((double) cumulative[length - 1] + cumulativeLow[length - 1]);
        SequenceKernels.scale(states, stateOffset, stateSize * headDim, chunkDecay);
        SequenceKernels.multiplyAdd(stateSize, headDim, length, workspace.bTransposed, 0, columns, inputs, 0, headDim,
                states, stateOffset, headDim, true);
    }

    /**
     * out[i] = exp(cum_i − cum_reference) for i < count, or exp(cum_reference − cum_i) when
     * {@code negate}; with reference -1 meaning cum = 0 (the chunk's start).
     */
    private static void exponentials(float[] cumulative, float[] cumulativeLow, int count, int reference,
            boolean negate, float[] out) {
        float referenceHigh = reference < 0 ? 0f : cumulative[reference];
        float referenceLow = reference < 0 ? 0f : cumulativeLow[reference];
        FloatVector high = FloatVector.broadcast(SPECIES, referenceHigh);
        FloatVector low = FloatVector.broadcast(SPECIES, referenceLow);
        int i = 0;
        for (; i + LANES <= count; i += LANES) {
            FloatVector difference = FloatVector.fromArray(SPECIES, cumulative, i).sub(high)
                    .add(FloatVector.fromArray(SPECIES, cumulativeLow, i).sub(low));
            SequenceKernels.exp(negate ? difference.neg() : difference).intoArray(out, i);
        }
        for (; i < count; i++) {
            float difference = (cumulative[i] - referenceHigh) + (cumulativeLow[i] - referenceLow);
            out[i] = (float) Math.exp(negate ? -difference : difference);
        }
    }

    /**
     * One token: S = exp(dt·A) · S + dt · x ⊗ B, then y = S · C + D · x, per head, in place on the
     * state [heads, headDim, stateSize], vectorised along the state dimension.
     */
    void step(SsmShape shape, float[] x, float[] dt, float[] A, float[] B, float[] C, float[] D, float[] state,
            float[] y) {
        int heads = shape.heads();
        int grain = shape.stateFloats() < SERIAL_WORK ? heads : ceilDiv(heads, parallel.threads());
        parallel.forRange(heads, grain, (first, end) -> {
            for (int h = first; h < end; h++) {
                stepHead(shape, h, x, dt, A, B, C, D, state, y);
            }
        });
    }

    private static void stepHead(SsmShape shape, int head, float[] x, float[] dt, float[] A, float[] B, float[] C,
            float[] D, float[] state, float[] y) {
        int headDim = shape.headDim();
        int stateSize = shape.stateSize();
        int bc = shape.groupOfHead(head) * stateSize;
        float step = dt[head];
        float decay = (float) Math.exp(step * A[head]);
        FloatVector decayVector = FloatVector.broadcast(SPECIES, decay);
        for (int p = 0; p < headDim; p++) {
            int channel = head * headDim + p;
            float input = step * x[channel];
            FloatVector inputVector = FloatVector.broadcast(SPECIES, input);
            int row = channel * stateSize;
            FloatVector sum = FloatVector.zero(SPECIES);
            int n = 0;
            for (; n + LANES <= stateSize; n += LANES) {
                FloatVector updated = FloatVector.fromArray(SPECIES, B, bc + n)
                        .fma(inputVector, FloatVector.fromArray(SPECIES, state, row + n).mul(decayVector));
                updated.intoArray(state, row + n);
                sum = updated.fma(FloatVector.fromArray(SPECIES, C, bc + n), sum);
            }
            float total = Lanes.sum(sum);
            for (; n < stateSize; n++) {
                float updated = Math.fma(B[bc + n], input, state[row + n] * decay);
                state[row + n] = updated;
                total = Math.fma(updated, C[bc + n], total);
            }
            y[channel] = Math.fma(D[head], x[channel], total);
        }
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }
}
