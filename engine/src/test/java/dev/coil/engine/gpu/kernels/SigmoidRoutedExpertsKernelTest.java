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
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * NemotronH's routed experts on the device (routed_experts.cu with the sigmoid router and squared-ReLU
 * experts) against double-precision references written here: the sigmoid router's choice (the best
 * groups by their two best s + bias, then the best experts in them, ties to the lower group and id)
 * and its weights (normalised or not, scaled); relu(up)² of each chosen expert; the whole block on
 * the per-pair path, the grouped path (16- and 64-pair tensor-core tiles, CUDA-core tiles) and
 * addRouted, which must equal route then add bit for bit.
 */
@GpuTest
class SigmoidRoutedExpertsKernelTest {

    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, groups {3} keep {4}, normalise {5}")
    @CsvSource({
        "1,8,3,2,1,true", "9,64,6,1,1,true", "17,128,6,1,1,true", "5,64,8,8,4,true", "7,256,8,8,4,false",
        "4,12,2,3,2,false", "3,32,16,4,4,true"
    })
    void routeChoosesByBiasedSigmoidWithinTheBestGroups(int rows, int experts, int perToken, int groups,
            int groupsChosen, boolean normalize) {
        Random random = new Random(rows * 4099L + experts * 61L + perToken * 7L + groups);
        float[] logits = Parity.uniform(random, rows * experts, -4, 4);
        float[] bias = Parity.uniform(random, experts, -0.3, 0.3);
        if (rows > 2) {
            // every logit equal: every group ties, the lowest groups and ids are taken
            Arrays.fill(logits, 2 * experts, 3 * experts, 0.5f);
            Arrays.fill(bias, 0f);
        }
        float scale = normalize ? 2.5f : 1.5f;
        int[] expectedIds = new int[rows * perToken];
        double[] expectedWeights = new double[rows * perToken];
        referenceRoute(logits, bias, rows, experts, perToken, groups, groupsChosen, normalize, scale, expectedIds,
                expectedWeights);
        int[] ids = new int[rows * perToken];
        float[] weights;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer idsOut = scope.poisoned(rows * perToken);
            DeviceBuffer weightsOut = scope.poisoned(rows * perToken);
            RoutedExpertsRouter router = RoutedExpertsRouter.sigmoid(scope.upload(bias), groups, groupsChosen, normalize, scale);
            new RoutedExpertsKernel(GpuFixture.kernels()).route(scope.stream(), router, scope.upload(logits), rows,
                    experts, perToken, idsOut, weightsOut);
            weights = scope.download(weightsOut, rows * perToken);
            idsOut.copyTo(ids);
        }
        assertThat(ids).containsExactly(expectedIds);
        for (int i = 0; i < ids.length; i++) {
            assertThat((double) weights[i]).as("weight %d", i)
                    .isCloseTo(expectedWeights[i], org.assertj.core.data.Offset.offset(1e-6 * expectedWeights[i]));
        }
    }

    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}, {5}")
    @CsvSource({"1,8,3,40,16,BF16", "3,5,1,37,13,F32", "17,64,6,37,13,BF16", "2,6,2,300,131,F32",
        "11000,8,6,8,3,BF16"})
    void gateUpOfSquaredReluExpertsIsReluOfTheUpSquared(int rows, int experts, int perToken, int hidden, int width,
            DType dtype) {
        Random random = new Random(rows * 313L + experts * 11L + hidden + width + dtype.ordinal());
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        float[] up = TestMatrices.widened(block.up, dtype);
        float[] expected = new float[rows * perToken * width];
        for (int r = 0; r < rows; r++) {
            for (int s = 0; s < perToken; s++) {
                int expert = block.ids[r * perToken + s];
                for (int j = 0; j < width; j++) {
                    double u = Math.max(0, TestMatrices.dot(block.x, r * hidden, up, (expert * width + j) * hidden, hidden));
                    expected[(r * perToken + s) * width + j] = (float) (u * u);
                }
            }
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer out = scope.poisoned(expected.length);
            new RoutedExpertsKernel(GpuFixture.kernels()).gateUp(scope.stream(), scope.upload(block.x), rows, hidden,
                    block.upMatrix(scope, dtype), ExpertActivation.SQUARED_RELU, width, scope.upload(block.ids), perToken,
                    out);
            Parity.assertClose("relu(up)², " + rows + " rows, " + dtype, scope.download(out, expected.length),
                    expected, 1e-5);
        }
    }

    /**
     * add on each of its paths against the double block: per pair (few pairs), and grouped by expert
     * (the 16-pair and the 64-pair tensor-core tiles, with x and the activations rounded to bf16 as
     * there, equal to each other bit for bit; the CUDA-core tile for F32).
     */
    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}")
    @CsvSource({"3,8,3,40,16", "64,64,6,136,72", "17,8,3,37,13", "300,16,4,136,72"})
    void addMakesTheBlocksOutputOnEveryPath(int rows, int experts, int perToken, int hidden, int width) {
        Random random = new Random(rows * 733L + experts * 19L + hidden + width);
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        try (DeviceScope scope = GpuFixture.scope()) {
            String what = rows + " rows, " + experts + " experts (" + perToken + " a token), H " + hidden + ", F "
                    + width;
            if ((long) rows * perToken <= RoutedExpertsKernel.PER_PAIR_MAX_PAIRS) {
                for (DType dtype : new DType[] {DType.BF16, DType.F32}) {
                    Parity.assertClose("per pair, " + what + ", " + dtype, block.add(scope, dtype),
                            block.reference(dtype, false), 1e-5);
                }
            }
            float[] rounded = block.reference(DType.BF16, true);
            float[] small = block.addGrouped(scope, DType.BF16, RoutedExpertsKernel.SMALL_TILE_PAIRS);
            float[] large = block.addGrouped(scope, DType.BF16, RoutedExpertsKernel.TILE_PAIRS);
            Parity.assertClose("small tiles, " + what, small, rounded, 3e-3);
            Parity.assertExact("small against large tiles, " + what, small, large);
            Parity.assertClose("CUDA-core tiles, " + what, block.addGrouped(scope, DType.F32,
                    RoutedExpertsKernel.TILE_PAIRS), block.reference(DType.F32, false), 1e-5);
        }
    }

    /**
     * addRouted (the routing inside the gate/up launch, or route then the grouped path) equals route
     * then add. The BF16 cases of few rows take the one-wave down launch (routed_experts_walk.cu), and
     * its gate/up launch where routed_experts.cu's would take more than a wave (all but 1 row of 136,
     * 2 rows of 2688 by 264, on a GPU of 132 multiprocessors): rows of every held size, up to
     * Nemotron-3-Nano's H of 2688 (up) and an F of 1856 (down), warps walking several outputs.
     */
    @ParameterizedTest(name = "rows {0}, experts {1}, per token {2}, hidden {3}, width {4}, {5}")
    @CsvSource({"1,64,6,136,72,BF16", "10,64,6,136,72,F32", "10,64,6,136,72,BF16", "300,64,6,136,72,BF16",
        "257,64,6,136,72,F32", "2,16,6,2688,264,BF16", "3,16,6,2688,264,BF16", "2,16,6,1600,400,BF16",
        "2,16,6,520,1856,BF16",
        "3,16,4,264,600,BF16", "1,16,6,2688,1856,BF16"})
    void addRoutedEqualsRouteThenAdd(int rows, int experts, int perToken, int hidden, int width, DType dtype) {
        Random random = new Random(rows * 17L + hidden * 3L + width + dtype.ordinal());
        Block block = Block.random(random, rows, experts, perToken, hidden, width);
        float[] logits = Parity.uniform(random, rows * experts, -4, 4);
        float[] bias = Parity.uniform(random, experts, -0.3, 0.3);
        int pairs = rows * perToken;
        try (DeviceScope scope = GpuFixture.scope()) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            RoutedExpertsRouter router = RoutedExpertsRouter.sigmoid(scope.upload(bias), 8, 4, true, 2.5f);
            DeviceMatrix up = block.upMatrix(scope, dtype);
            DeviceMatrix down = block.downMatrix(scope, dtype);
            DeviceBuffer scores = scope.upload(logits);
            DeviceBuffer x = scope.upload(block.x);
            long bytes = RoutedExpertsKernel.workspaceBytes(rows, perToken, experts, width, hidden);

            DeviceBuffer ids = scope.poisoned(pairs);
            DeviceBuffer weights = scope.poisoned(pairs);
            DeviceBuffer out = scope.upload(block.residual);
            kernel.route(scope.stream(), router, scores, rows, experts, perToken, ids, weights);
            kernel.add(scope.stream(), x, rows, hidden, up, ExpertActivation.SQUARED_RELU, down, width, ids, weights,
                    perToken, scope.poisoned(Math.max(1, bytes / 4)), out);

            DeviceBuffer routedIds = scope.poisoned(pairs);
            DeviceBuffer routedWeights = scope.poisoned(pairs);
            DeviceBuffer routedOut = scope.upload(block.residual);
            kernel.addRouted(scope.stream(), router, scores, x, rows, hidden, up, ExpertActivation.SQUARED_RELU, down, width,
                    experts, perToken, routedIds, routedWeights, scope.poisoned(Math.max(1, bytes / 4)), routedOut);

            int[] expectedIds = new int[pairs];
            int[] actualIds = new int[pairs];
            ids.copyTo(expectedIds);
            routedIds.copyTo(actualIds);
            assertThat(actualIds).as("addRouted's ids").containsExactly(expectedIds);
            Parity.assertExact("addRouted's weights", scope.download(routedWeights, pairs),
                    scope.download(weights, pairs));
            Parity.assertExact("addRouted against route + add, " + rows + " rows, " + dtype,
                    scope.download(routedOut, rows * hidden), scope.download(out, rows * hidden));
        }
    }

    @Test
    void aRouterThatCannotChooseIsRefused() {
        try (DeviceScope scope = GpuFixture.scope()) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            DeviceBuffer buffer = scope.poisoned(4096);
            RoutedExpertsRouter groups = RoutedExpertsRouter.sigmoid(buffer, 4, 1, true, 1f);
            // 3 a row from one kept group of 2 (8 experts in 4 groups)
            assertThatThrownBy(() -> kernel.route(scope.stream(), groups, buffer, 2, 8, 3, buffer, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("groups");
            // 9 experts do not split into 4 groups
            assertThatThrownBy(() -> kernel.route(scope.stream(), groups, buffer, 2, 9, 1, buffer, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("9 experts");
            DeviceBuffer shortBias = scope.poisoned(4);
            assertThatThrownBy(() -> kernel.route(scope.stream(), RoutedExpertsRouter.sigmoid(shortBias, 1, 1, true, 1f), buffer, 2,
                    8, 2, buffer, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("correctionBias");
            assertThatThrownBy(() -> RoutedExpertsRouter.sigmoid(buffer, 64, 1, true, 1f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("groups");
            DeviceMatrix up = new DeviceMatrix(buffer, DType.BF16, 8 * 4, 8);
            // an up matrix of 8 experts of width 4 is read as 4 gated experts (2 · width rows each)
            assertThatThrownBy(() -> kernel.routeGateUp(scope.stream(), RoutedExpertsRouter.SOFTMAX, buffer, 8, 2, buffer, 2, 8, up,
                    ExpertActivation.SILU_GATED, 4, buffer, buffer, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("4 experts");
        }
    }

    /**
     * The sigmoid router in f32 where the kernel rounds (s, s + bias, the group sums), the weights in
     * double: ids ascending, each with its weight.
     */
    private static void referenceRoute(float[] logits, float[] bias, int rows, int experts, int perToken, int groups,
            int groupsChosen, boolean normalize, float scale, int[] ids, double[] weights) {
        int size = experts / groups;
        for (int r = 0; r < rows; r++) {
            float[] sigmoid = new float[experts];
            float[] choice = new float[experts];
            for (int e = 0; e < experts; e++) {
                sigmoid[e] = (float) (1 / (1 + Math.exp(-logits[r * experts + e])));
                choice[e] = sigmoid[e] + bias[e];
            }
            float[] groupScores = new float[groups];
            for (int g = 0; g < groups; g++) {
                float[] members = Arrays.copyOfRange(choice, g * size, (g + 1) * size);
                Arrays.sort(members);
                groupScores[g] = members[size - 1] + members[size - 2 < 0 ? 0 : size - 2];
            }
            Integer[] groupOrder = order(groupScores);
            for (int e = 0; e < experts; e++) {
                boolean kept = false;
                for (int g = 0; g < groupsChosen; g++) {
                    kept |= groupOrder[g] == e / size;
                }
                if (!kept && groups > 1) {
                    choice[e] = Float.NEGATIVE_INFINITY;
                }
            }
            Integer[] best = Arrays.copyOf(order(choice), perToken);
            double total = 0;
            for (int e : best) {
                total += sigmoid[e];
            }
            Arrays.sort(best);
            for (int s = 0; s < perToken; s++) {
                ids[r * perToken + s] = best[s];
                weights[r * perToken + s] = (normalize ? sigmoid[best[s]] / total : sigmoid[best[s]]) * scale;
            }
        }
    }

    /** Indices from the largest value down, a tie to the lower index. */
    private static Integer[] order(float[] values) {
        Integer[] order = new Integer[values.length];
        for (int i = 0; i < values.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> values[a] != values[b] ? Float.compare(values[b], values[a]) : Integer.compare(a, b));
        return order;
    }

    /** A block of squared-ReLU experts: x, every expert's up [E · F, H] and down [E · H, F], ids, weights, residual. */
    private record Block(int rows, int experts, int perToken, int hidden, int width, float[] x, float[] up,
            float[] down, int[] ids, float[] routeWeights, float[] residual) {

        static Block random(Random random, int rows, int experts, int perToken, int hidden, int width) {
            float[] x = Parity.uniform(random, rows * hidden, -1, 1);
            float[] up = Parity.uniform(random, experts * width * hidden, -1, 1);
            float[] down = Parity.uniform(random, experts * hidden * width, -1, 1);
            int[] ids = new int[rows * perToken];
            for (int r = 0; r < rows; r++) {
                int[] row = random.ints(0, experts).distinct().limit(perToken).sorted().toArray();
                System.arraycopy(row, 0, ids, r * perToken, perToken);
            }
            float[] routeWeights = Parity.uniform(random, rows * perToken, 0.05, 1);
            float[] residual = Parity.uniform(random, rows * hidden, -2, 2);
            return new Block(rows, experts, perToken, hidden, width, x, up, down, ids, routeWeights, residual);
        }

        /** residual + Σ_s weights[r, s] · down_e(relu(up_e(x[r]))²) in double; roundOperands: x and relu² to bf16. */
        float[] reference(DType dtype, boolean roundOperands) {
            float[] upWeights = TestMatrices.widened(up, dtype);
            float[] downWeights = TestMatrices.widened(down, dtype);
            float[] operand = roundOperands ? TestMatrices.widened(x, DType.BF16) : x;
            float[] expected = new float[rows * hidden];
            double[] activated = new double[width];
            for (int r = 0; r < rows; r++) {
                double[] moe = new double[hidden];
                for (int s = 0; s < perToken; s++) {
                    int expert = ids[r * perToken + s];
                    for (int c = 0; c < width; c++) {
                        double u = Math.max(0, TestMatrices.dot(operand, r * hidden, upWeights, (expert * width + c) * hidden, hidden));
                        activated[c] = roundOperands ? TestMatrices.round((float) (u * u), DType.BF16) : u * u;
                    }
                    for (int j = 0; j < hidden; j++) {
                        double product = 0;
                        for (int c = 0; c < width; c++) {
                            product += activated[c] * downWeights[(expert * hidden + j) * width + c];
                        }
                        moe[j] += routeWeights[r * perToken + s] * product;
                    }
                }
                for (int j = 0; j < hidden; j++) {
                    expected[r * hidden + j] = (float) (residual[r * hidden + j] + moe[j]);
                }
            }
            return expected;
        }

        float[] add(DeviceScope scope, DType dtype) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            long bytes = RoutedExpertsKernel.workspaceBytes(rows, perToken, experts, width, hidden);
            DeviceBuffer out = scope.upload(residual);
            kernel.add(scope.stream(), scope.upload(x), rows, hidden, upMatrix(scope, dtype), ExpertActivation.SQUARED_RELU,
                    downMatrix(scope, dtype), width, scope.upload(ids), scope.upload(routeWeights), perToken,
                    scope.poisoned(Math.max(1, bytes / 4)), out);
            return scope.download(out, rows * hidden);
        }

        float[] addGrouped(DeviceScope scope, DType dtype, int tilePairs) {
            RoutedExpertsKernel kernel = new RoutedExpertsKernel(GpuFixture.kernels());
            long bytes = RoutedExpertsKernel.groupedWorkspaceBytes(rows, perToken, experts, width, hidden);
            DeviceBuffer out = scope.upload(residual);
            kernel.addGrouped(scope.stream(), scope.upload(x), rows, hidden, upMatrix(scope, dtype),
                    ExpertActivation.SQUARED_RELU, downMatrix(scope, dtype), width, scope.upload(ids),
                    scope.upload(routeWeights), perToken, scope.poisoned(Math.max(1, bytes / 4)), out, tilePairs);
            return scope.download(out, rows * hidden);
        }

        DeviceMatrix upMatrix(DeviceScope scope, DType dtype) {
            return scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(up, experts * width, hidden, dtype)));
        }

        DeviceMatrix downMatrix(DeviceScope scope, DType dtype) {
            return scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(down, experts * hidden, width, dtype)));
        }
    }
}
