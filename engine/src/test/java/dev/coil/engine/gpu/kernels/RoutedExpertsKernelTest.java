package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.TestMatrices;
import dev.coil.engine.load.DType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The routed experts' kernels (routed_experts.cu) against double-precision references of the ops
 * written here: the router's choice (ties to the lower id, ids ascending) and softmax weights, the
 * chosen experts' silu(gate) · up and their weighted down products added to the residual stream, on
 * odd sizes (scalar paths) and sizes of whole 16-byte chunks (vector paths), BF16 and F32 weights,
 * and more (row, slot) pairs or rows than a grid's y dimension spans; and {@code add} on both of its
 * paths (per pair, and grouped by expert on tensor or CUDA cores), the grouped path against the
 * per-pair one, a row's output whatever rows share the call, and its workspace's size; the routing
 * folded into the gate/up launch against route bit for bit, {@code addRouted} against route then
 * add, and the small tensor-core tile against the reference and the 64-pair tile.
 */
@GpuTest
class RoutedExpertsKernelTest {

    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}")
    @CsvSource({"1,8,3", "3,5,1", "17,64,6", "4,256,16", "3,16,16", "6,200,7", "5,33,2"})
    void routePicksTheBestExpertsLowerIdOnTiesAscendingWithSoftmaxWeights(int rows, int experts, int perToken) {
        Random random = new Random(rows * 1009L + experts * 31L + perToken);
        float[] logits = Parity.uniform(random, rows * experts, -4, 4);
        // Per row, the tie whose lower id must win a place the higher one does not get (-1: none).
        int[] tieLow = new int[rows];
        int[] tieHigh = new int[rows];
        Arrays.fill(tieLow, -1);
        for (int r = 0; r < rows; r++) {
            if (r % 3 == 0 && perToken < experts) {
                // k - 1 clear winners, then two equal logits for the last place, the rest below them.
                // Odd rows of more than 32 experts tie two ids of the same lane (ids 32 apart).
                List<Integer> order = shuffled(experts, random);
                int low;
                int high;
                if (r % 2 == 1 && experts > 32) {
                    low = random.nextInt(experts - 32);
                    high = low + 32;
                } else {
                    int a = order.get(0);
                    int b = order.get(1);
                    low = Math.min(a, b);
                    high = Math.max(a, b);
                }
                order.remove(Integer.valueOf(low));
                order.remove(Integer.valueOf(high));
                for (int e = 0; e < experts; e++) {
                    logits[r * experts + e] = (float) (-4 + 3 * random.nextDouble()); // below -1
                }
                for (int i = 0; i < perToken - 1; i++) {
                    logits[r * experts + order.get(i)] = 1.5f + 0.25f * i;
                }
                // A pick of the higher id (or of the last seen, or of both) fails.
                logits[r * experts + low] = 0.75f;
                logits[r * experts + high] = 0.75f;
                tieLow[r] = low;
                tieHigh[r] = high;
            } else if (r % 3 == 1 && experts > 1) {
                // Two equal best logits: both taken, with equal weights.
                int a = random.nextInt(experts);
                int b = (a + 1 + random.nextInt(experts - 1)) % experts;
                logits[r * experts + a] = 5f;
                logits[r * experts + b] = 5f;
            } else if (r % 3 == 2) {
                // A NaN counts as -infinity: never taken while a number is left.
                logits[r * experts + random.nextInt(experts)] = Float.NaN;
            }
        }
        int[] expectedIds = new int[rows * perToken];
        double[] expectedWeights = new double[rows * perToken];
        referenceRoute(logits, rows, experts, perToken, expectedIds, expectedWeights);

        int[] ids = new int[rows * perToken];
        float[] weights;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer idsOut = scope.poisoned(rows * perToken);
            DeviceBuffer weightsOut = scope.poisoned(rows * perToken);
            new RoutedExpertsKernel(GpuFixture.kernels()).route(scope.stream(), scope.upload(logits), rows, experts,
                    perToken, idsOut, weightsOut);
            weights = scope.download(weightsOut, rows * perToken);
            idsOut.copyTo(ids);
        }
        for (int r = 0; r < rows; r++) {
            int[] row = Arrays.copyOfRange(ids, r * perToken, (r + 1) * perToken);
            for (int s = 1; s < perToken; s++) {
                assertThat(row[s]).as("row %d's ids %s ascending", r, Arrays.toString(row)).isGreaterThan(row[s - 1]);
            }
            if (tieLow[r] >= 0) {
                assertThat(row).as("row %d: of the tied experts %d and %d the lower is taken", r, tieLow[r],
                        tieHigh[r]).contains(tieLow[r]).doesNotContain(tieHigh[r]);
            }
            assertThat(row).as("row %d's ids", r)
                    .containsExactly(Arrays.copyOfRange(expectedIds, r * perToken, (r + 1) * perToken));
        }
        for (int i = 0; i < rows * perToken; i++) {
            double error = Math.abs(weights[i] - expectedWeights[i]);
            assertThat(error).as("weight %d: %s, expected %s", i, weights[i], expectedWeights[i])
                    .isLessThanOrEqualTo(1e-6 * expectedWeights[i]);
        }
    }

    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}, {5}")
    @CsvSource({
        "1,8,3,40,16,BF16", "1,8,3,40,16,F32", "3,5,1,37,13,F32", "3,5,1,37,13,BF16",
        "17,64,6,40,16,F32", "17,64,6,37,13,BF16", "3,8,3,520,264,BF16", "2,6,2,300,131,F32",
        "3,5,2,36,16,BF16", "4,16,16,24,8,F32", "11000,8,6,8,3,BF16"
    })
    void gateUpIsSiluOfTheGateTimesTheUpOfEachChosenExpert(int rows, int experts, int perToken, int hidden, int width,
            DType dtype) {
        Random random = new Random(rows * 7919L + experts * 131L + hidden * 17L + width + dtype.ordinal());
        float[] x = Parity.uniform(random, rows * hidden, -1, 1);
        float[] gateAndUp = Parity.uniform(random, experts * 2 * width * hidden, -1, 1);
        int[] ids = chosenIds(random, rows, experts, perToken);
        float[] weights = TestMatrices.widened(gateAndUp, dtype);

        float[] expected = new float[rows * perToken * width];
        for (int r = 0; r < rows; r++) {
            for (int s = 0; s < perToken; s++) {
                int expert = ids[r * perToken + s];
                for (int j = 0; j < width; j++) {
                    double gate = TestMatrices.dot(x, r * hidden, weights, (expert * 2 * width + j) * hidden, hidden);
                    double up = TestMatrices.dot(x, r * hidden, weights, (expert * 2 * width + width + j) * hidden, hidden);
                    expected[(r * perToken + s) * width + j] = (float) (gate / (1 + Math.exp(-gate)) * up);
                }
            }
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix matrix = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(gateAndUp, experts * 2 * width, hidden, dtype)));
            DeviceBuffer out = scope.poisoned(expected.length);
            new RoutedExpertsKernel(GpuFixture.kernels()).gateUp(scope.stream(), scope.upload(x), rows, hidden, matrix,
                    width, scope.upload(ids), perToken, out);
            Parity.assertClose("routed gate/up " + rows + " rows, " + experts + " experts (" + perToken + " a token), H "
                    + hidden + ", F " + width + ", " + dtype, scope.download(out, expected.length), expected, 1e-5);
        }
    }

    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}, {5}")
    @CsvSource({
        "1,8,3,40,16,BF16", "1,8,3,40,16,F32", "3,5,1,37,13,F32", "3,5,1,37,13,BF16",
        "17,64,6,40,16,F32", "17,64,6,37,13,BF16", "3,8,3,264,520,BF16", "2,6,2,131,300,F32",
        "3,5,2,16,36,BF16", "4,16,16,24,8,F32", "5,12,12,40,24,BF16", "70000,4,1,8,3,F32"
    })
    void downAddAddsTheWeightedSumOfTheChosenExpertsDownProducts(int rows, int experts, int perToken, int hidden,
            int width, DType dtype) {
        Random random = new Random(rows * 6151L + experts * 127L + hidden * 13L + width + dtype.ordinal());
        float[] hiddenValues = Parity.uniform(random, rows * perToken * width, -1, 1);
        float[] down = Parity.uniform(random, experts * hidden * width, -1, 1);
        float[] residual = Parity.uniform(random, rows * hidden, -2, 2);
        int[] ids = chosenIds(random, rows, experts, perToken);
        float[] routeWeights = Parity.uniform(random, rows * perToken, 0.05, 1);
        float[] weights = TestMatrices.widened(down, dtype);

        float[] expected = new float[rows * hidden];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < hidden; j++) {
                double moe = 0;
                for (int s = 0; s < perToken; s++) {
                    int expert = ids[r * perToken + s];
                    moe += routeWeights[r * perToken + s]
                            * TestMatrices.dot(hiddenValues, (r * perToken + s) * width, weights, (expert * hidden + j) * width, width);
                }
                expected[r * hidden + j] = (float) (residual[r * hidden + j] + moe);
            }
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix matrix = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(down, experts * hidden, width, dtype)));
            DeviceBuffer out = scope.upload(residual);
            new RoutedExpertsKernel(GpuFixture.kernels()).downAdd(scope.stream(), scope.upload(hiddenValues), rows,
                    perToken, width, matrix, hidden, scope.upload(ids), scope.upload(routeWeights), out);
            Parity.assertClose("routed down + residual " + rows + " rows, " + experts + " experts (" + perToken
                    + " a token), H " + hidden + ", F " + width + ", " + dtype, scope.download(out, expected.length),
                    expected, 1e-5);
        }
    }

    /** The three launches in a row, as a step runs them, against the reference block. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"BF16", "F32"})
    void theThreeLaunchesMakeTheBlocksOutput(DType dtype) {
        int rows = 3;
        int experts = 64;
        int perToken = 6;
        int hidden = 40;
        int width = 13;
        Random random = new Random(77 + dtype.ordinal());
        float[] x = Parity.uniform(random, rows * hidden, -1, 1);
        float[] logits = Parity.uniform(random, rows * experts, -3, 3);
        float[] gateAndUp = Parity.uniform(random, experts * 2 * width * hidden, -1, 1);
        float[] down = Parity.uniform(random, experts * hidden * width, -1, 1);
        float[] residual = Parity.uniform(random, rows * hidden, -2, 2);
        float[] gateAndUpWeights = TestMatrices.widened(gateAndUp, dtype);
        float[] downWeights = TestMatrices.widened(down, dtype);

        int[] ids = new int[rows * perToken];
        double[] routeWeights = new double[rows * perToken];
        referenceRoute(logits, rows, experts, perToken, ids, routeWeights);
        float[] expected = new float[rows * hidden];
        for (int r = 0; r < rows; r++) {
            double[] activated = new double[perToken * width];
            for (int s = 0; s < perToken; s++) {
                int expert = ids[r * perToken + s];
                for (int c = 0; c < width; c++) {
                    double gate = TestMatrices.dot(x, r * hidden, gateAndUpWeights, (expert * 2 * width + c) * hidden, hidden);
                    double up = TestMatrices.dot(x, r * hidden, gateAndUpWeights, (expert * 2 * width + width + c) * hidden, hidden);
                    activated[s * width + c] = gate / (1 + Math.exp(-gate)) * up;
                }
            }
            for (int j = 0; j < hidden; j++) {
                double moe = 0;
                for (int s = 0; s < perToken; s++) {
                    int row = (ids[r * perToken + s] * hidden + j) * width;
                    double product = 0;
                    for (int c = 0; c < width; c++) {
                        product += activated[s * width + c] * downWeights[row + c];
                    }
                    moe += routeWeights[r * perToken + s] * product;
                }
                expected[r * hidden + j] = (float) (residual[r * hidden + j] + moe);
            }
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix gateAndUpMatrix = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(gateAndUp, experts * 2 * width, hidden, dtype)));
            DeviceMatrix downMatrix = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(down, experts * hidden, width, dtype)));
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            DeviceBuffer idsOut = scope.poisoned(rows * perToken);
            DeviceBuffer weightsOut = scope.poisoned(rows * perToken);
            DeviceBuffer activatedOut = scope.poisoned(rows * perToken * width);
            DeviceBuffer out = scope.upload(residual);
            kernel.route(scope.stream(), scope.upload(logits), rows, experts, perToken, idsOut, weightsOut);
            kernel.gateUp(scope.stream(), scope.upload(x), rows, hidden, gateAndUpMatrix, width, idsOut, perToken,
                    activatedOut);
            kernel.downAdd(scope.stream(), activatedOut, rows, perToken, width, downMatrix, hidden, idsOut, weightsOut,
                    out);
            Parity.assertClose("routed experts block, " + dtype, scope.download(out, expected.length), expected, 1e-5);
        }
    }

    /**
     * {@code add} against the double-precision block on both paths: up to {@link
     * RoutedExpertsKernel#PER_PAIR_MAX_PAIRS} pairs it runs gateUp and downAdd (f32 operands), beyond
     * it the grouped path. There, with BF16 weights, the tensor cores take x and the activations
     * silu(gate) · up rounded to bf16 (as the dense prefill products round their operands), so the
     * reference rounds them alike: x exactly as the kernel does, the activations from its double
     * values. An activation whose f32 sum lies by a rounding boundary may then land one bf16 step
     * (2^-8) from the reference's, which moves its outputs by up to about 1e-3 of the output scale
     * (seen: 1.4e-3 at the worst of 156000): the bound per element is 3e-3 of the scale, and the
     * relative norm error, which such rare steps barely move, must stay under 2e-4 (seen 9e-5; x
     * left unrounded in the reference would give about 3e-3).
     */
    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}, {5}")
    @CsvSource({
        "1,8,3,40,16,BF16", "1,8,3,40,16,F32", "3,64,6,520,264,BF16", "3,64,6,520,264,F32", "3,5,2,37,13,BF16",
        "3,5,2,37,13,F32",
        "300,64,6,520,264,BF16", "300,64,6,520,264,F32", "257,8,3,37,13,BF16", "257,8,3,37,13,F32",
        "1000,5,1,64,32,BF16", "1000,5,1,64,32,F32", "1000,5,1,37,13,BF16"
    })
    void addMakesTheBlocksOutputOnBothPaths(int rows, int experts, int perToken, int hidden, int width,
            DType dtype) {
        Random random = new Random(rows * 4099L + experts * 67L + hidden * 11L + width + dtype.ordinal());
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        boolean grouped = rows * perToken > RoutedExpertsKernel.PER_PAIR_MAX_PAIRS;
        boolean roundOperands = grouped && dtype == DType.BF16;
        float[] expected = block.reference(dtype, roundOperands);
        try (DeviceScope scope = GpuFixture.scope()) {
            float[] actual = block.add(scope, dtype, block.ids, block.routeWeights, block.x, block.residual, rows);
            String what = "routed experts add, " + rows + " rows, " + experts + " experts (" + perToken
                    + " a token), H " + hidden + ", F " + width + ", " + dtype + (grouped ? ", grouped" : ", per pair");
            Parity.assertClose(what, actual, expected, roundOperands ? 3e-3 : 1e-5);
            assertNormClose(what, actual, expected, roundOperands ? 2e-4 : 2e-6);
        }
    }

    /**
     * The grouped path against the per-pair path (gateUp then downAdd) on the same 800 pairs. With F32
     * weights only the order of the f32 sums differs; with BF16 the grouped path's operands are
     * rounded to bf16 (x, and the activations: up to 2^-9 relative each), the per-pair path's are not:
     * a relative norm error of about 3e-3 (seen 2.7e-3), 1.3e-2 of the scale at the worst of 51200
     * outputs. The bounds: 5e-3 on the norm and 3e-2 per element for BF16, 1e-6 and 1e-5 for F32.
     * A lost or doubled slot, a wrong expert or a pair's output given to another row is off by the
     * whole scale.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"BF16", "F32"})
    void theGroupedPathEqualsThePerPairPath(DType dtype) {
        int rows = 200;
        int experts = 16;
        int perToken = 4;
        int hidden = 256;
        int width = 128;
        Random random = new Random(5003 + dtype.ordinal());
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        try (DeviceScope scope = GpuFixture.scope()) {
            float[] grouped = block.add(scope, dtype, block.ids, block.routeWeights, block.x, block.residual, rows);
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            DeviceMatrix gateAndUp = block.gateAndUpMatrix(scope, dtype);
            DeviceMatrix down = block.downMatrix(scope, dtype);
            DeviceBuffer ids = scope.upload(block.ids);
            DeviceBuffer activated = scope.poisoned((long) rows * perToken * width);
            DeviceBuffer out = scope.upload(block.residual);
            kernel.gateUp(scope.stream(), scope.upload(block.x), rows, hidden, gateAndUp, width, ids, perToken,
                    activated);
            kernel.downAdd(scope.stream(), activated, rows, perToken, width, down, hidden, ids,
                    scope.upload(block.routeWeights), out);
            float[] perPair = scope.download(out, rows * hidden);
            // Against the residual's change only: the residual (added last on both paths) would hide errors.
            float[] groupedChange = new float[rows * hidden];
            float[] perPairChange = new float[rows * hidden];
            for (int i = 0; i < rows * hidden; i++) {
                groupedChange[i] = grouped[i] - block.residual[i];
                perPairChange[i] = perPair[i] - block.residual[i];
            }
            Parity.assertClose("grouped against per-pair, " + dtype, groupedChange, perPairChange,
                    dtype == DType.BF16 ? 3e-2 : 1e-5);
            assertNormClose("grouped against per-pair, " + dtype, groupedChange, perPairChange,
                    dtype == DType.BF16 ? 5e-3 : 1e-6);
        }
    }

    /**
     * A row's output on the grouped path does not depend on the rows beside it: 40 rows give the same
     * outputs, bit for bit, among 160 companions before them and among 300 others after them (other
     * experts, other tiles, other places in their tiles). Each output of a tile's pair is one sum
     * over k in a fixed order (the mma's k steps, or one thread's fma chain) whatever the tile's other
     * pairs, and each row's slots are added in slot order.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"BF16", "F32"})
    void aRowsOutputDoesNotDependOnItsCompanionRows(DType dtype) {
        int rows = 40;
        int experts = 16;
        int perToken = 4;
        int hidden = 136;
        int width = 72;
        Random random = new Random(9001 + dtype.ordinal());
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        Block before = Block.random(new Random(17), 160, experts, perToken, hidden, width);
        Block after = Block.random(new Random(23), 300, experts, perToken, hidden, width);
        try (DeviceScope scope = GpuFixture.scope()) {
            float[] first = block.addAmong(scope, dtype, before, true);
            float[] second = block.addAmong(scope, dtype, after, false);
            Parity.assertExact("the 40 rows among other companions, " + dtype, second, first);
        }
    }

    /**
     * routeGateUp's routing, made by each block itself, against route bit for bit (ids, and weights as
     * f32 bits, NaN rows included), and its activations against gateUp's on route's ids bit for bit;
     * on logits full of ties (at the last place, at the best, all equal, +0 against -0), NaNs and
     * infinities, E up to 256 and k up to 16, odd sizes, and more pairs than a grid's y dimension spans.
     */
    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}, {5}")
    @CsvSource({
        "1,64,6,40,16,BF16", "1,64,6,40,16,F32", "10,8,3,37,13,BF16", "10,5,1,37,13,F32", "12,256,16,24,8,BF16",
        "10,200,7,36,16,F32", "11,33,2,40,24,BF16", "10,16,16,24,8,F32", "3,64,6,520,264,BF16",
        "11000,8,6,8,3,BF16"
    })
    void routeGateUpRoutesAsRouteBitForBitAndMakesGateUpsOutputs(int rows, int experts, int perToken, int hidden,
            int width, DType dtype) {
        Random random = new Random(rows * 3571L + experts * 41L + perToken * 7L + hidden + width + dtype.ordinal());
        float[] logits = trickyLogits(random, rows, experts, perToken);
        float[] x = Parity.uniform(random, rows * hidden, -1, 1);
        float[] gateAndUp = Parity.uniform(random, experts * 2 * width * hidden, -1, 1);
        int pairs = rows * perToken;
        try (DeviceScope scope = GpuFixture.scope()) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            DeviceMatrix matrix = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(gateAndUp, experts * 2 * width, hidden, dtype)));
            DeviceBuffer logitsIn = scope.upload(logits);
            DeviceBuffer xIn = scope.upload(x);
            DeviceBuffer routeIds = scope.poisoned(pairs);
            DeviceBuffer routeWeights = scope.poisoned(pairs);
            DeviceBuffer gateUpOut = scope.poisoned((long) pairs * width);
            kernel.route(scope.stream(), logitsIn, rows, experts, perToken, routeIds, routeWeights);
            kernel.gateUp(scope.stream(), xIn, rows, hidden, matrix, width, routeIds, perToken, gateUpOut);
            DeviceBuffer fusedIds = scope.poisoned(pairs);
            DeviceBuffer fusedWeights = scope.poisoned(pairs);
            DeviceBuffer fusedOut = scope.poisoned((long) pairs * width);
            kernel.routeGateUp(scope.stream(), logitsIn, experts, perToken, xIn, rows, hidden, matrix, width, fusedIds,
                    fusedWeights, fusedOut);

            int[] expectedIds = new int[pairs];
            int[] ids = new int[pairs];
            routeIds.copyTo(expectedIds);
            fusedIds.copyTo(ids);
            assertThat(ids).as("the fused routing's ids against route's").containsExactly(expectedIds);
            int[] referenceIds = new int[pairs];
            referenceRoute(logits, rows, experts, perToken, referenceIds, new double[pairs]);
            assertThat(ids).as("the fused routing's ids against the reference").containsExactly(referenceIds);
            assertThat(bits(scope.download(fusedWeights, pairs))).as("the fused routing's weights (f32 bits)")
                    .containsExactly(bits(scope.download(routeWeights, pairs)));
            Parity.assertExact("routeGateUp's activations against gateUp's, " + rows + " rows, " + experts
                    + " experts (" + perToken + " a token), " + dtype, scope.download(fusedOut, pairs * width),
                    scope.download(gateUpOut, pairs * width));
        }
    }

    /**
     * addRouted (from the scores) against route then add: the outputs, ids and weights bit for bit, on
     * the per-pair path (routing folded into gate/up) and on the grouped path (route, then the same
     * grouped launches), with the small and the large tensor-core tile and the CUDA-core tile.
     */
    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}, {5}")
    @CsvSource({
        "1,64,6,520,264,BF16", "1,64,6,520,264,F32", "10,64,6,136,72,BF16", "3,5,2,37,13,F32", "4,256,16,24,8,BF16",
        "64,64,6,136,72,BF16", "300,64,6,136,72,BF16", "257,8,3,37,13,F32", "4,8,6,1536,200,BF16",
        "1,8,6,1000,512,BF16", "2,8,3,200,1000,BF16", "1,8,3,64,2000,BF16", "1,8,3,1544,96,BF16"
    })
    void addRoutedEqualsRouteThenAdd(int rows, int experts, int perToken, int hidden, int width, DType dtype) {
        Random random = new Random(rows * 2063L + experts * 53L + hidden * 5L + width + dtype.ordinal());
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        float[] logits = trickyLogits(random, rows, experts, perToken);
        int pairs = rows * perToken;
        try (DeviceScope scope = GpuFixture.scope()) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            DeviceMatrix gateAndUp = block.gateAndUpMatrix(scope, dtype);
            DeviceMatrix down = block.downMatrix(scope, dtype);
            DeviceBuffer scores = scope.upload(logits);
            DeviceBuffer x = scope.upload(block.x);
            long bytes = RoutedExpertsKernel.workspaceBytes(rows, perToken, experts, width, hidden);

            DeviceBuffer ids = scope.poisoned(pairs);
            DeviceBuffer weights = scope.poisoned(pairs);
            DeviceBuffer out = scope.upload(block.residual);
            kernel.route(scope.stream(), scores, rows, experts, perToken, ids, weights);
            kernel.add(scope.stream(), x, rows, hidden, gateAndUp, down, width, ids, weights, perToken,
                    scope.poisoned(Math.max(1, bytes / 4)), out);

            DeviceBuffer routedIds = scope.poisoned(pairs);
            DeviceBuffer routedWeights = scope.poisoned(pairs);
            DeviceBuffer routedOut = scope.upload(block.residual);
            kernel.addRouted(scope.stream(), scores, x, rows, hidden, gateAndUp, down, width, experts, perToken,
                    routedIds, routedWeights, scope.poisoned(Math.max(1, bytes / 4)), routedOut);

            int[] expectedIds = new int[pairs];
            int[] actualIds = new int[pairs];
            ids.copyTo(expectedIds);
            routedIds.copyTo(actualIds);
            assertThat(actualIds).as("addRouted's ids").containsExactly(expectedIds);
            assertThat(bits(scope.download(routedWeights, pairs))).as("addRouted's weights (f32 bits)")
                    .containsExactly(bits(scope.download(weights, pairs)));
            String what = "addRouted against route + add, " + rows + " rows, " + experts + " experts (" + perToken
                    + " a token), " + dtype;
            float[] expected = scope.download(out, rows * hidden);
            float[] actual = scope.download(routedOut, rows * hidden);
            // Rows whose every logit is NaN have NaN weights and outputs on both paths: compare bits.
            assertThat(bits(actual)).as(what).containsExactly(bits(expected));
        }
    }

    /**
     * The small tensor-core tile (16 pairs) of the grouped path, forced whatever the pairs, against
     * the double-precision block with x and the activations rounded to bf16 (the bounds of {@link
     * #addMakesTheBlocksOutputOnBothPaths}) and against the 64-pair tile: equal bit for bit, since
     * both stage the same k chunks and take the same mma steps in the same order for each (pair,
     * weight row), and combine the slots alike. 64 rows · 6 of 64 experts is a decode step's ~6 pairs
     * an expert; 17 · 3 of 8 gives ~6 an expert in odd sizes (element staging); 300 · 4 of 16 gives
     * ~75 an expert, five small tiles each.
     */
    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}")
    @CsvSource({"64,64,6,520,264", "17,8,3,37,13", "300,16,4,136,72"})
    void theSmallTileMakesTheBlocksOutputAndEqualsTheLargeTile(int rows, int experts, int perToken, int hidden,
            int width) {
        Random random = new Random(rows * 8191L + experts * 97L + hidden * 3L + width);
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        float[] expected = block.reference(DType.BF16, true);
        try (DeviceScope scope = GpuFixture.scope()) {
            float[] small = block.addGrouped(scope, DType.BF16, RoutedExpertsKernel.SMALL_TILE_PAIRS);
            float[] large = block.addGrouped(scope, DType.BF16, RoutedExpertsKernel.TILE_PAIRS);
            String what = "small tiles, " + rows + " rows, " + experts + " experts (" + perToken + " a token), H "
                    + hidden + ", F " + width;
            Parity.assertClose(what, small, expected, 3e-3);
            assertNormClose(what, small, expected, 2e-4);
            Parity.assertExact(what + ", against the 64-pair tiles", small, large);
        }
    }

    /** The rule that picks the tile: from (rows, k, E) alone, small while rows · k ≤ 8 E. */
    @Test
    void theSmallTileServesFewPairsAnExpert() {
        assertThat(RoutedExpertsKernel.tilePairs(16, 6, 64)).isEqualTo(RoutedExpertsKernel.SMALL_TILE_PAIRS);
        assertThat(RoutedExpertsKernel.tilePairs(64, 6, 64)).isEqualTo(RoutedExpertsKernel.SMALL_TILE_PAIRS);
        assertThat(RoutedExpertsKernel.tilePairs(85, 6, 64)).isEqualTo(RoutedExpertsKernel.SMALL_TILE_PAIRS);
        assertThat(RoutedExpertsKernel.tilePairs(86, 6, 64)).isEqualTo(RoutedExpertsKernel.TILE_PAIRS);
        assertThat(RoutedExpertsKernel.tilePairs(512, 6, 64)).isEqualTo(RoutedExpertsKernel.TILE_PAIRS);
    }

    /**
     * A row's output does not depend on the rows beside it with the small tile either: 40 rows among
     * 100 companions before them and among 150 after them (2 of 64 experts a token: both calls take the
     * small tile) give the same outputs bit for bit, and so among 300 after them, which takes the
     * 64-pair tile: a row's output does not change where the batch crosses the tile rule.
     */
    @Test
    void aRowsOutputDoesNotDependOnItsCompanionRowsOnTheSmallTile() {
        int rows = 40;
        int experts = 64;
        int perToken = 2;
        int hidden = 136;
        int width = 72;
        Random random = new Random(4421);
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        Block before = Block.random(new Random(29), 100, experts, perToken, hidden, width);
        Block after = Block.random(new Random(31), 150, experts, perToken, hidden, width);
        Block many = Block.random(new Random(37), 300, experts, perToken, hidden, width);
        assertThat(RoutedExpertsKernel.tilePairs(rows + before.rows, perToken, experts))
                .isEqualTo(RoutedExpertsKernel.SMALL_TILE_PAIRS);
        assertThat(RoutedExpertsKernel.tilePairs(rows + after.rows, perToken, experts))
                .isEqualTo(RoutedExpertsKernel.SMALL_TILE_PAIRS);
        assertThat(RoutedExpertsKernel.tilePairs(rows + many.rows, perToken, experts))
                .isEqualTo(RoutedExpertsKernel.TILE_PAIRS);
        try (DeviceScope scope = GpuFixture.scope()) {
            float[] first = block.addAmong(scope, DType.BF16, before, true);
            float[] second = block.addAmong(scope, DType.BF16, after, false);
            float[] third = block.addAmong(scope, DType.BF16, many, false);
            Parity.assertExact("the 40 rows among other companions, small tiles", second, first);
            Parity.assertExact("the 40 rows on the small and the 64-pair tiles", third, first);
        }
    }

    @Test
    void badRoutedArgumentsAreRefusedWithTheirNames() {
        try (DeviceScope scope = GpuFixture.scope()) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            DeviceBuffer buffer = scope.poisoned(8192);
            DeviceBuffer small = scope.poisoned(5);
            DeviceMatrix gateAndUp = new DeviceMatrix(buffer, DType.BF16, 8 * 2 * 4, 8); // 8 experts, F 4, H 8
            DeviceMatrix down = new DeviceMatrix(buffer, DType.BF16, 8 * 8, 4);
            assertThatThrownBy(() -> kernel.routeGateUp(scope.stream(), small, 8, 2, buffer, 2, 8, gateAndUp, 4,
                    buffer, buffer, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("logits");
            assertThatThrownBy(() -> kernel.routeGateUp(scope.stream(), buffer, 16, 2, buffer, 2, 8, gateAndUp, 4,
                    buffer, buffer, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("experts");
            // 2 rows × 2 experts need 4 weights; 3 floats are too few.
            DeviceBuffer tooFewWeights = scope.poisoned(3);
            assertThatThrownBy(() -> kernel.routeGateUp(scope.stream(), buffer, 8, 2, buffer, 2, 8, gateAndUp, 4,
                    buffer, tooFewWeights, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("weights");
            assertThatThrownBy(() -> kernel.addRouted(scope.stream(), small, buffer, 2, 8, gateAndUp, down, 4, 8, 2,
                    buffer, buffer, buffer, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("scores");
            assertThatThrownBy(() -> kernel.addRouted(scope.stream(), buffer, buffer, 2, 8, gateAndUp, down, 4, 9, 2,
                    buffer, buffer, buffer, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("experts");
            assertThatThrownBy(() -> kernel.addRouted(scope.stream(), buffer, buffer, 2, 8, gateAndUp, down, 4, 8, 2,
                    buffer, buffer, small, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("workspace");
        }
    }

    @Test
    void aWorkspaceTooSmallOrBadlyShapedWeightsAreRefused() {
        int rows = 40;
        int experts = 8;
        int perToken = 2;
        int hidden = 16;
        int width = 8;
        long bytes = RoutedExpertsKernel.workspaceBytes(rows, perToken, experts, width, hidden);
        long previous = 0;
        for (int r = 0; r <= 100; r++) {
            long need = RoutedExpertsKernel.workspaceBytes(r, perToken, experts, width, hidden);
            assertThat(need).as("workspace for %d rows", r).isGreaterThanOrEqualTo(previous);
            previous = need;
        }
        assertThatThrownBy(() -> RoutedExpertsKernel.workspaceBytes(rows, 9, experts, width, hidden))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("perToken");
        try (DeviceScope scope = GpuFixture.scope()) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            DeviceBuffer buffer = scope.poisoned(4096);
            DeviceBuffer small = scope.poisoned(bytes / 4 - 1);
            DeviceBuffer enough = scope.poisoned(bytes / 4);
            DeviceMatrix gateAndUp = new DeviceMatrix(buffer, DType.BF16, experts * 2 * width, hidden);
            DeviceMatrix down = new DeviceMatrix(buffer, DType.BF16, experts * hidden, width);
            assertThatThrownBy(() -> kernel.add(scope.stream(), buffer, rows, hidden, gateAndUp, down, width, buffer,
                    buffer, perToken, small, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("workspace");
            // The per-pair path's smaller need is checked too.
            long perPairBytes = RoutedExpertsKernel.workspaceBytes(2, perToken, experts, width, hidden);
            assertThat(perPairBytes).isLessThan(bytes);
            DeviceBuffer perPairSmall = scope.poisoned(perPairBytes / 4 - 1);
            assertThatThrownBy(() -> kernel.add(scope.stream(), buffer, 2, hidden, gateAndUp, down, width, buffer,
                    buffer, perToken, perPairSmall, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("workspace");
            DeviceMatrix downF32 = new DeviceMatrix(buffer, DType.F32, experts * hidden, width);
            assertThatThrownBy(() -> kernel.add(scope.stream(), buffer, rows, hidden, gateAndUp, downF32, width,
                    buffer, buffer, perToken, enough, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("F32");
            DeviceMatrix fewerExperts = new DeviceMatrix(buffer, DType.BF16, (experts - 1) * hidden, width);
            assertThatThrownBy(() -> kernel.add(scope.stream(), buffer, rows, hidden, gateAndUp, fewerExperts, width,
                    buffer, buffer, perToken, enough, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("experts");
        }
    }

    /** ‖actual − expected‖ ≤ bound · ‖expected‖ (Euclidean norms over all elements). */
    private static void assertNormClose(String what, float[] actual, float[] expected, double bound) {
        double errorSquares = 0;
        double squares = 0;
        for (int i = 0; i < expected.length; i++) {
            double error = (double) actual[i] - expected[i];
            errorSquares += error * error;
            squares += (double) expected[i] * expected[i];
        }
        double relative = Math.sqrt(errorSquares / Math.max(squares, Double.MIN_NORMAL));
        assertThat(relative).as("%s: relative norm error", what).isLessThanOrEqualTo(bound);
    }

    /** A block's inputs: x, the stacked weights, each row's chosen experts and weights, and the residual. */
    private record Block(int rows, int experts, int perToken, int hidden, int width, float[] x, float[] gateAndUp,
            float[] down, int[] ids, float[] routeWeights, float[] residual) {

        static Block random(Random random, int rows, int experts, int perToken, int hidden, int width) {
            float[] x = Parity.uniform(random, rows * hidden, -1, 1);
            float[] gateAndUp = Parity.uniform(random, experts * 2 * width * hidden, -1, 1);
            float[] down = Parity.uniform(random, experts * hidden * width, -1, 1);
            int[] ids = chosenIds(random, rows, experts, perToken);
            float[] routeWeights = Parity.uniform(random, rows * perToken, 0.05, 1);
            float[] residual = Parity.uniform(random, rows * hidden, -2, 2);
            return new Block(rows, experts, perToken, hidden, width, x, gateAndUp, down, ids, routeWeights, residual);
        }

        /**
         * residual + Σ_s weights[r, s] · down_e(silu(gate_e(x[r])) · up_e(x[r])) in double, the weights
         * rounded to the dtype; with roundOperands x and the activations rounded to bf16 first.
         */
        float[] reference(DType dtype, boolean roundOperands) {
            float[] gateAndUpWeights = TestMatrices.widened(gateAndUp, dtype);
            float[] downWeights = TestMatrices.widened(down, dtype);
            float[] operand = roundOperands ? TestMatrices.widened(x, DType.BF16) : x;
            float[] expected = new float[rows * hidden];
            double[] activated = new double[width];
            double[] moe = new double[hidden];
            for (int r = 0; r < rows; r++) {
                Arrays.fill(moe, 0);
                for (int s = 0; s < perToken; s++) {
                    int expert = ids[r * perToken + s];
                    for (int c = 0; c < width; c++) {
                        double gate = TestMatrices.dot(operand, r * hidden, gateAndUpWeights, (expert * 2 * width + c) * hidden,
                                hidden);
                        double up = TestMatrices.dot(operand, r * hidden, gateAndUpWeights,
                                (expert * 2 * width + width + c) * hidden, hidden);
                        double value = gate / (1 + Math.exp(-gate)) * up;
                        activated[c] = roundOperands ? TestMatrices.round((float) value, DType.BF16) : value;
                    }
                    double weight = routeWeights[r * perToken + s];
                    for (int j = 0; j < hidden; j++) {
                        int row = (expert * hidden + j) * width;
                        double product = 0;
                        for (int c = 0; c < width; c++) {
                            product += activated[c] * downWeights[row + c];
                        }
                        moe[j] += weight * product;
                    }
                }
                for (int j = 0; j < hidden; j++) {
                    expected[r * hidden + j] = (float) (residual[r * hidden + j] + moe[j]);
                }
            }
            return expected;
        }

        DeviceMatrix gateAndUpMatrix(DeviceScope scope, DType dtype) {
            return scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(gateAndUp, experts * 2 * width, hidden, dtype)));
        }

        DeviceMatrix downMatrix(DeviceScope scope, DType dtype) {
            return scope.keep(DeviceMatrix.upload(GpuFixture.device(), TestMatrices.of(down, experts * hidden, width,
                    dtype)));
        }

        /** add over {@code count} rows of the given inputs with this block's weights: the outputs (count, H). */
        float[] add(DeviceScope scope, DType dtype, int[] rowIds, float[] rowWeights, float[] rowX,
                float[] rowResidual, int count) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            long bytes = RoutedExpertsKernel.workspaceBytes(count, perToken, experts, width, hidden);
            DeviceBuffer workspace = scope.poisoned(Math.max(1, bytes / 4));
            DeviceBuffer out = scope.upload(rowResidual);
            kernel.add(scope.stream(), scope.upload(rowX), count, hidden, gateAndUpMatrix(scope, dtype),
                    downMatrix(scope, dtype), width, scope.upload(rowIds), scope.upload(rowWeights), perToken,
                    workspace, out);
            return scope.download(out, count * hidden);
        }

        /** add's grouped path over this block's rows in tiles of {@code tilePairs} pairs: the outputs (rows, H). */
        float[] addGrouped(DeviceScope scope, DType dtype, int tilePairs) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            long bytes = RoutedExpertsKernel.groupedWorkspaceBytes(rows, perToken, experts, width, hidden);
            DeviceBuffer out = scope.upload(residual);
            kernel.addGrouped(scope.stream(), scope.upload(x), rows, hidden, gateAndUpMatrix(scope, dtype),
                    ExpertActivation.SILU_GATED, downMatrix(scope, dtype), width, scope.upload(ids), scope.upload(routeWeights), perToken,
                    scope.poisoned(Math.max(1, bytes / 4)), out, tilePairs);
            return scope.download(out, rows * hidden);
        }

        /**
         * add over this block's rows together with the companion's (theirs first when
         * companionsFirst), with this block's weights: this block's rows' outputs.
         */
        float[] addAmong(DeviceScope scope, DType dtype, Block companions, boolean companionsFirst) {
            int count = rows + companions.rows;
            int[] allIds = new int[count * perToken];
            float[] allWeights = new float[count * perToken];
            float[] allX = new float[count * hidden];
            float[] allResidual = new float[count * hidden];
            int mine = companionsFirst ? companions.rows : 0;
            int theirs = companionsFirst ? 0 : rows;
            System.arraycopy(ids, 0, allIds, mine * perToken, rows * perToken);
            System.arraycopy(companions.ids, 0, allIds, theirs * perToken, companions.rows * perToken);
            System.arraycopy(routeWeights, 0, allWeights, mine * perToken, rows * perToken);
            System.arraycopy(companions.routeWeights, 0, allWeights, theirs * perToken, companions.rows * perToken);
            System.arraycopy(x, 0, allX, mine * hidden, rows * hidden);
            System.arraycopy(companions.x, 0, allX, theirs * hidden, companions.rows * hidden);
            System.arraycopy(residual, 0, allResidual, mine * hidden, rows * hidden);
            System.arraycopy(companions.residual, 0, allResidual, theirs * hidden, companions.rows * hidden);
            float[] all = add(scope, dtype, allIds, allWeights, allX, allResidual, count);
            return Arrays.copyOfRange(all, mine * hidden, (mine + rows) * hidden);
        }
    }

    @Test
    void badArgumentsAreRefusedWithTheirNames() {
        try (DeviceScope scope = GpuFixture.scope()) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            DeviceBuffer buffer = scope.poisoned(4096);
            DeviceBuffer small = scope.poisoned(5);
            DeviceMatrix gateAndUp = new DeviceMatrix(buffer, DType.F32, 8 * 2 * 4, 8); // 8 experts, F 4, H 8
            DeviceMatrix down = new DeviceMatrix(buffer, DType.BF16, 8 * 8, 4);
            assertThatThrownBy(() -> kernel.route(scope.stream(), buffer, 2, 8, 9, buffer, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("perToken");
            assertThatThrownBy(() -> kernel.route(scope.stream(), buffer, 1, 300, 6, buffer, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("experts");
            assertThatThrownBy(() -> kernel.route(scope.stream(), buffer, 1, 64, 17, buffer, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("perToken");
            assertThatThrownBy(() -> kernel.route(scope.stream(), small, 1, 8, 2, buffer, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("logits");
            assertThatThrownBy(() -> kernel.gateUp(scope.stream(), buffer, 2, 8, gateAndUp, 4, buffer, 2, small))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("out");
            assertThatThrownBy(() -> kernel.gateUp(scope.stream(), buffer, 2, 9, gateAndUp, 4, buffer, 2, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("columns");
            assertThatThrownBy(() -> kernel.gateUp(scope.stream(), buffer, 2, 8, gateAndUp, 5, buffer, 2, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("multiple");
            DeviceMatrix half = new DeviceMatrix(buffer, DType.F16, 8 * 2 * 4, 8);
            assertThatThrownBy(() -> kernel.gateUp(scope.stream(), buffer, 2, 8, half, 4, buffer, 2, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("F16");
            assertThatThrownBy(() -> kernel.downAdd(scope.stream(), buffer, 2, 9, 4, down, 8, buffer, buffer, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("perToken");
            assertThatThrownBy(() -> kernel.downAdd(scope.stream(), buffer, 3, 2, 4, down, 8, buffer, small, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("weights");
        }
    }

    /**
     * Each row's k best experts by logit (a tie to the lower id, NaN as -infinity) and the softmax of
     * their logits: each logit less the best rounded to f32 as the op defines it, the rest in double;
     * ids and weights stored by id ascending.
     */
    private static void referenceRoute(float[] logits, int rows, int experts, int perToken, int[] ids,
            double[] weights) {
        for (int r = 0; r < rows; r++) {
            float[] row = new float[experts];
            Integer[] order = new Integer[experts];
            for (int e = 0; e < experts; e++) {
                float value = logits[r * experts + e];
                row[e] = Float.isNaN(value) ? Float.NEGATIVE_INFINITY : value;
                order[e] = e;
            }
            Arrays.sort(order, (a, b) -> row[a] != row[b] ? Float.compare(row[b], row[a]) : Integer.compare(a, b));
            float top = row[order[0]];
            double sum = 0;
            double[] exponentials = new double[perToken];
            for (int s = 0; s < perToken; s++) {
                exponentials[s] = Math.exp(row[order[s]] - top);
                sum += exponentials[s];
            }
            Integer[] byId = Arrays.copyOf(order, perToken);
            Arrays.sort(byId);
            for (int s = 0; s < perToken; s++) {
                ids[r * perToken + s] = byId[s];
                int place = Arrays.asList(order).indexOf(byId[s]);
                weights[r * perToken + s] = exponentials[place] / sum;
            }
        }
    }

    /**
     * Router scores that try the routing's order: per row one of a tie for the last place (k - 1 clear
     * winners, then two equal logits, the lower id to be taken), two equal best, NaNs and infinities,
     * every logit equal, every logit NaN (the ids 0 .. k-1 and NaN weights), +0 against -0 at the
     * top; or plain random.
     */
    private static float[] trickyLogits(Random random, int rows, int experts, int perToken) {
        float[] logits = Parity.uniform(random, rows * experts, -4, 4);
        for (int r = 0; r < rows; r++) {
            int at = r * experts;
            switch (r % 8) {
                case 0 -> {
                    if (perToken < experts) {
                        List<Integer> order = shuffled(experts, random);
                        for (int e = 0; e < experts; e++) {
                            logits[at + e] = (float) (-4 + 3 * random.nextDouble());
                        }
                        for (int i = 0; i < perToken - 1; i++) {
                            logits[at + order.get(i)] = 1.5f + 0.25f * i;
                        }
                        logits[at + order.get(perToken - 1)] = 0.75f;
                        logits[at + order.get(perToken)] = 0.75f;
                    }
                }
                case 1 -> {
                    int a = random.nextInt(experts);
                    logits[at + a] = 5f;
                    logits[at + (a + 1 + random.nextInt(Math.max(1, experts - 1))) % experts] = 5f;
                }
                case 2 -> {
                    logits[at + random.nextInt(experts)] = Float.NaN;
                    logits[at + random.nextInt(experts)] = Float.NEGATIVE_INFINITY;
                    logits[at + random.nextInt(experts)] = Float.POSITIVE_INFINITY;
                }
                case 3 -> Arrays.fill(logits, at, at + experts, 1f);
                case 5 -> Arrays.fill(logits, at, at + experts, Float.NaN);
                case 6 -> {
                    for (int e = 0; e < experts; e++) {
                        logits[at + e] = -1f - Math.abs(logits[at + e]);
                    }
                    logits[at + random.nextInt(experts)] = 0f;
                    logits[at + random.nextInt(experts)] = -0f;
                }
                default -> {
                }
            }
        }
        return logits;
    }

    /** Each value's f32 bits (NaNs compare by their bits). */
    private static int[] bits(float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToRawIntBits(values[i]);
        }
        return bits;
    }

    /** Per row, k distinct experts ascending, as route stores them. */
    private static int[] chosenIds(Random random, int rows, int experts, int perToken) {
        int[] ids = new int[rows * perToken];
        for (int r = 0; r < rows; r++) {
            List<Integer> order = shuffled(experts, random);
            int[] row = new int[perToken];
            for (int s = 0; s < perToken; s++) {
                row[s] = order.get(s);
            }
            Arrays.sort(row);
            System.arraycopy(row, 0, ids, r * perToken, perToken);
        }
        return ids;
    }

    private static List<Integer> shuffled(int count, Random random) {
        List<Integer> values = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            values.add(i);
        }
        Collections.shuffle(values, random);
        return values;
    }
}
