package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.PinnedBuffer;
import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.TokenHistory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The GPU sampler against the CPU {@link Sampler}, row by row: penalties exactly, the argmax, the set of
 * tokens the filters leave, and the token drawn when the kernel gets the uniform number the CPU sampler's
 * seeded generator draws first. Sampler's package-private steps (survivors, applyPenalties) are reached
 * reflectively, since only this package travels to the GPU machine.
 */
@GpuTest
class SamplingKernelTest {

    private static final double[] TEMPERATURES = {0.3, 0.7, 1.0, 1.6};
    private static final int[] TOP_KS = {0, 0, 1, 2, 7, 50, 600, 1_000_000};
    private static final double[] TOP_PS = {1, 1, 0.95, 0.9, 0.5, 0.1};
    private static final double[] MIN_PS = {0, 0, 0.02, 0.1, 0.5};

    /** One sequence: its logits, history and parameters, and a grammar's allowed tokens as bits (or null). */
    private record Row(float[] logits, int[] prompt, int[] output, SamplingParams params, int[] allowedBits) {

        /** The logits as the engine hands them to the sampler: -infinity where the grammar refuses. */
        float[] masked() {
            float[] masked = logits.clone();
            for (int id = 0; allowedBits != null && id < masked.length; id++) {
                if (id / 32 >= allowedBits.length || (allowedBits[id / 32] >>> (id % 32) & 1) == 0) {
                    masked[id] = Float.NEGATIVE_INFINITY;
                }
            }
            return masked;
        }

        TokenHistory history() {
            TokenHistory history = new TokenHistory(prompt);
            for (int token : output) {
                history.append(token);
            }
            return history;
        }
    }

    @ParameterizedTest(name = "vocab {0}, batch {1}")
    @CsvSource({"49160,1", "49160,64", "1001,17", "1001,64", "37,5", "50257,3"})
    void greedyPicksTheCpuArgmax(int vocab, int batch) {
        Random random = new Random(vocab * 31L + batch);
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < batch; r++) {
            rows.add(new Row(logits(random, vocab), new int[0], new int[0], SamplingParams.greedy(), null));
        }
        int[] expected = rows.stream().mapToInt(row -> new Sampler(row.params()).sample(row.logits(), row.history()))
                .toArray();
        SamplingKernel kernel = new SamplingKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer logits = scope.upload(flatten(rows, vocab));
            DeviceBuffer argmax = scope.poisoned(batch);
            kernel.argmax(scope.stream(), logits, batch, vocab, argmax);
            assertThat(downloadInts(scope, argmax, batch)).containsExactly(expected);
            DeviceBuffer sampled = scope.poisoned(batch);
            kernel.sample(scope.stream(), logits, batch, vocab, scope.upload(new int[batch]),
                    scope.upload(SamplingKernel.settingsBits(settings(rows, new double[batch]))),
                    scope.poisoned((long) batch * vocab), sampled, null);
            assertThat(downloadInts(scope, sampled, batch)).containsExactly(expected);
        }
    }

    @ParameterizedTest(name = "vocab {0}, batch {1}")
    @CsvSource({"49160,64", "1001,64", "37,9"})
    void penaltiesEqualTheCpus(int vocab, int batch) throws Exception {
        Random random = new Random(vocab + 7L * batch);
        List<Row> rows = randomRows(random, vocab, batch);
        float[] expected = new float[batch * vocab];
        Method apply = Class.forName("dev.coil.engine.runner.Sampler").getDeclaredMethod("applyPenalties",
                float[].class, int.class, TokenHistory.class, SamplingParams.class);
        apply.setAccessible(true);
        for (int r = 0; r < batch; r++) {
            float[] row = rows.get(r).masked();
            apply.invoke(null, row, vocab, rows.get(r).history(), rows.get(r).params());
            System.arraycopy(row, 0, expected, r * vocab, vocab);
        }
        SamplingKernel kernel = new SamplingKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer logits = scope.upload(flatten(rows, vocab));
            penalise(scope, kernel, logits, rows, vocab);
            float[] actual = scope.download(logits, batch * vocab);
            // Arrays of millions: compared element by element, with a count of differences on failure
            // (AssertJ's containsExactly diffs the lists first, which is quadratic).
            dev.coil.engine.gpu.Parity.assertExact("penalties, vocab " + vocab + " × " + batch, actual, expected);
            assertThat(actual).isNotEqualTo(flatten(rows, vocab));
        }
    }

    /**
     * Every split of a row between blocks (1, 2, 4, 8 and 16 on sm_90) leaves the CPU's survivors and draws
     * the CPU's token: the same tokens, so a row's draw does not depend on the batch it is in. The same
     * again when the launch is given the rows' argmax (for all rows but every third), as a serving step
     * gives it the greedy launch's tokens.
     */
    @ParameterizedTest(name = "vocab {0}, batch {1}, seed {2}")
    @CsvSource({"49160,64,1", "49160,64,2", "49160,3,8", "1001,64,3", "1001,64,4", "1001,64,5", "37,33,6",
            "50257,16,7", "5,9,9"})
    void filtersLeaveTheCpuSurvivorsAndDrawsLandOnTheCpuToken(int vocab, int batch, long seed) throws Exception {
        Random random = new Random(seed);
        List<Row> rows = randomRows(random, vocab, batch);
        Method survivorsOf = Sampler.class.getDeclaredMethod("survivors", float[].class, TokenHistory.class);
        survivorsOf.setAccessible(true);
        double[] uniforms = new double[batch];
        int[] expectedTokens = new int[batch];
        int[][] expectedSurvivors = new int[batch][];
        for (int r = 0; r < batch; r++) {
            Row row = rows.get(r);
            expectedSurvivors[r] = row.params().isGreedy() ? new int[0]
                    : (int[]) survivorsOf.invoke(new Sampler(row.params()), row.masked(), row.history());
            expectedTokens[r] = new Sampler(row.params()).sample(row.masked(), row.history());
            // The sampler's first draw: the uniform its seeded generator gives first.
            uniforms[r] = new SplittableRandom(row.params().seed()).nextDouble();
        }
        SamplingKernel kernel = new SamplingKernel(GpuFixture.kernels());
        List<Integer> splits = GpuFixture.kernels().clusterLaunches() ? List.of(1, 2, 4, 8, 16) : List.of(1);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer logits = scope.upload(flatten(rows, vocab));
            penalise(scope, kernel, logits, rows, vocab);
            DeviceBuffer topKs = scope.upload(topKs(rows));
            DeviceBuffer settings = scope.upload(SamplingKernel.settingsBits(settings(rows, uniforms)));
            // The rows' argmax as the step's greedy launch finds it, every third row left to the kernel (-1).
            DeviceBuffer argmax = scope.poisoned(batch);
            new ArgmaxKernel(GpuFixture.kernels()).launch(scope.stream(), logits, batch, vocab, argmax);
            int[] known = downloadInts(scope, argmax, batch);
            for (int r = 0; r < batch; r += 3) {
                known[r] = -1;
            }
            DeviceBuffer bestIds = scope.upload(known);
            for (int launch = 0; launch < 2 * splits.size(); launch++) {
                int blocksPerRow = splits.get(launch / 2);
                boolean given = launch % 2 == 1;
                DeviceBuffer survivors = scope.poisoned((long) batch * vocab);
                DeviceBuffer tokens = scope.poisoned(batch);
                kernel.sample(scope.stream(), logits, batch, vocab, topKs, settings,
                        scope.poisoned((long) batch * vocab), tokens, survivors, null, given ? bestIds : null,
                        blocksPerRow);
                int[] mask = downloadInts(scope, survivors, batch * vocab);
                int[] actualTokens = downloadInts(scope, tokens, batch);
                int differentTokens = 0;
                for (int r = 0; r < batch; r++) {
                    int[] actual = idsOf(mask, r, vocab);
                    String where = "row " + r + " of vocab " + vocab + ", " + blocksPerRow + " blocks a row"
                            + (given ? ", its best given" : "") + ", with " + rows.get(r).params();
                    if (rows.get(r).params().isGreedy()) {
                        assertThat(actual).as(where).isEmpty();
                    } else {
                        assertThat(actual).as(where).isEqualTo(expectedSurvivors[r]);
                    }
                    assertThat(actualTokens[r]).as(where + ", uniform " + uniforms[r]).isEqualTo(expectedTokens[r]);
                    differentTokens += expectedSurvivors[r].length > 1 ? 1 : 0;
                }
                assertThat(differentTokens).as("rows with a choice to make").isPositive();
            }
        }
    }

    /**
     * The serving step's way: top-k and settings read in place from pinned host memory, the tokens
     * written there as well as to the device. The same draws as from device copies.
     */
    @Test
    void settingsReadFromPinnedMemoryAndTokensWrittenThereGiveTheSameDraws() {
        int vocab = 49160;
        int batch = 6;
        Random random = new Random(23);
        List<Row> rows = randomRows(random, vocab, batch);
        double[] uniforms = random.doubles(batch).toArray();
        int[] topK = topKs(rows);
        int[] settingBits = SamplingKernel.settingsBits(settings(rows, uniforms));
        SamplingKernel kernel = new SamplingKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope();
                PinnedBuffer pinned = GpuFixture.device().allocatePinned(16384)) {
            DeviceBuffer logits = scope.upload(flatten(rows, vocab));
            DeviceBuffer expected = scope.poisoned(batch);
            kernel.sample(scope.stream(), logits, batch, vocab, scope.upload(topK), scope.upload(settingBits),
                    scope.poisoned((long) batch * vocab), expected, null);
            MemorySegment memory = pinned.segment();
            MemorySegment.copy(topK, 0, memory, ValueLayout.JAVA_INT, 0, batch);
            MemorySegment.copy(settingBits, 0, memory, ValueLayout.JAVA_INT, 4096, settingBits.length);
            for (int r = 0; r < batch; r++) {
                memory.setAtIndex(ValueLayout.JAVA_INT, 2048 + r, -7);
            }
            DeviceBuffer tokens = scope.poisoned(batch);
            kernel.sample(scope.stream(), logits, batch, vocab, pinned.deviceView(0, 4L * batch),
                    pinned.deviceView(4096, 4L * settingBits.length), scope.poisoned((long) batch * vocab), tokens,
                    null, pinned.deviceView(8192, 4L * batch), null, kernel.blocksPerRow(batch));
            int[] onDevice = downloadInts(scope, tokens, batch);
            scope.stream().synchronize();
            int[] onHost = new int[batch];
            for (int r = 0; r < batch; r++) {
                onHost[r] = memory.getAtIndex(ValueLayout.JAVA_INT, 2048 + r);
            }
            int[] wanted = downloadInts(scope, expected, batch);
            assertThat(Arrays.stream(wanted).boxed().toList()).allMatch(id -> id >= 0 && id < vocab);
            assertThat(onDevice).containsExactly(wanted);
            assertThat(onHost).containsExactly(wanted);
        }
    }

    @Test
    void aSplitTheDeviceCannotLaunchIsRefused() {
        SamplingKernel kernel = new SamplingKernel(GpuFixture.kernels());
        assertThat(kernel.blocksPerRow(1)).isBetween(1, SamplingKernel.MOST_BLOCKS_PER_ROW);
        assertThat(kernel.blocksPerRow(1000)).isEqualTo(1);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer buffer = scope.poisoned(64);
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> kernel.sample(scope.stream(), buffer, 1, 8,
                    buffer, buffer, buffer, buffer, null, 3)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("3 blocks a row");
        }
    }

    @Test
    void aRowOfMinusInfinityGivesMinusOne() {
        int vocab = 300;
        float[] logits = new float[2 * vocab];
        Arrays.fill(logits, Float.NEGATIVE_INFINITY);
        logits[vocab + 17] = 0;
        SamplingKernel kernel = new SamplingKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer deviceLogits = scope.upload(logits);
            DeviceBuffer tokens = scope.poisoned(2);
            kernel.sample(scope.stream(), deviceLogits, 2, vocab, scope.upload(new int[] {5, 5}),
                    scope.upload(SamplingKernel.settingsBits(new double[] {1, 0.9, 0.1, 0.5, 1, 0.9, 0.1, 0.5})),
                    scope.poisoned(2L * vocab), tokens, null);
            assertThat(downloadInts(scope, tokens, 2)).containsExactly(-1, 17);
        }
    }

    /** Prints µs per batch of 1 and of 64 rows × 49160, one block a row and the default split; asserts nothing about speed. */
    @ParameterizedTest(name = "batch {0}")
    @ValueSource(ints = {1, 64})
    void timingsForBatchesOf1And64(int batch) {
        int vocab = 49160;
        Random random = new Random(11);
        float[] flat = new float[batch * vocab];
        for (int r = 0; r < batch; r++) {
            System.arraycopy(logits(random, vocab), 0, flat, r * vocab, vocab);
        }
        CudaDevice device = GpuFixture.device();
        SamplingKernel kernel = new SamplingKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer logits = scope.upload(flat);
            DeviceBuffer weights = scope.poisoned((long) batch * vocab);
            DeviceBuffer tokens = scope.poisoned(batch);
            String[] names = {"argmax", "temperature only", "min_p 0.05", "top_k 50", "top_p 0.9",
                    "top_k 50 + top_p 0.9 + min_p 0.05"};
            int[][] topK = {null, {0}, {0}, {50}, {0}, {50}};
            double[][] setting = {null, {0.8, 1, 0, 0.5}, {0.8, 1, 0.05, 0.5}, {0.8, 1, 0, 0.5}, {0.8, 0.9, 0, 0.5},
                    {0.8, 0.9, 0.05, 0.5}};
            for (int c = 0; c < names.length; c++) {
                DeviceBuffer topKs = null;
                DeviceBuffer settings = null;
                if (topK[c] != null) {
                    int[] k = new int[batch];
                    Arrays.fill(k, topK[c][0]);
                    double[] s = new double[batch * 4];
                    for (int r = 0; r < batch; r++) {
                        System.arraycopy(setting[c], 0, s, r * 4, 4);
                    }
                    topKs = scope.upload(k);
                    settings = scope.upload(SamplingKernel.settingsBits(s));
                }
                DeviceBuffer deviceTopK = topKs;
                DeviceBuffer deviceSettings = settings;
                for (int blocksPerRow : deviceTopK == null ? List.of(1) : List.of(1, kernel.blocksPerRow(batch), 16)) {
                    Runnable work = deviceTopK == null
                            ? () -> kernel.argmax(scope.stream(), logits, batch, vocab, tokens)
                            : () -> kernel.sample(scope.stream(), logits, batch, vocab, deviceTopK, deviceSettings,
                                    weights, tokens, null, blocksPerRow);
                    work.run();
                    int[] picked = downloadInts(scope, tokens, batch);
                    assertThat(Arrays.stream(picked).boxed().toList()).allMatch(id -> id >= 0 && id < vocab);
                    int repeats = 20;
                    try (CudaEvent start = device.newEvent(); CudaEvent end = device.newEvent()) {
                        start.record(scope.stream());
                        for (int i = 0; i < repeats; i++) {
                            work.run();
                        }
                        end.record(scope.stream());
                        end.synchronize();
                        System.out.printf("[timing] sampling %s, batch %d × vocab %d, %d blocks a row: %.1f µs%n",
                                names[c], batch, vocab, blocksPerRow, end.millisSince(start) * 1000 / repeats);
                    }
                }
            }
        }
    }

    private static void penalise(DeviceScope scope, SamplingKernel kernel, DeviceBuffer logits, List<Row> rows,
            int vocab) {
        int batch = rows.size();
        int[] biasOffsets = new int[batch + 1];
        List<Integer> biasIds = new ArrayList<>();
        List<Float> biases = new ArrayList<>();
        int[] seenOffsets = new int[batch + 1];
        int[] countOffsets = new int[batch + 1];
        List<Integer> seenIds = new ArrayList<>();
        List<Integer> countIds = new ArrayList<>();
        List<Float> subtract = new ArrayList<>();
        float[] repetition = new float[batch];
        int[] maskOffsets = new int[batch + 1];
        List<Integer> allowedBits = new ArrayList<>();
        for (int r = 0; r < batch; r++) {
            Row row = rows.get(r);
            if (row.allowedBits() != null) {
                Arrays.stream(row.allowedBits()).forEach(allowedBits::add);
            }
            maskOffsets[r + 1] = allowedBits.size();
            TreeSet<Integer> seen = new TreeSet<>();
            TreeMap<Integer, Integer> counts = new TreeMap<>();
            Arrays.stream(row.prompt()).forEach(seen::add);
            for (int token : row.output()) {
                seen.add(token);
                counts.merge(token, 1, Integer::sum);
            }
            SamplingParams params = row.params();
            params.logitBias().forEach((id, bias) -> {
                biasIds.add(id);
                biases.add(bias);
            });
            biasOffsets[r + 1] = biasIds.size();
            repetition[r] = (float) params.repetitionPenalty();
            seenIds.addAll(seen);
            seenOffsets[r + 1] = seenIds.size();
            if (params.presencePenalty() != 0 || params.frequencyPenalty() != 0) {
                counts.forEach((id, count) -> {
                    countIds.add(id);
                    subtract.add((float) (params.presencePenalty() + params.frequencyPenalty() * count));
                });
            }
            countOffsets[r + 1] = countIds.size();
        }
        float[] subtractArray = new float[subtract.size()];
        for (int i = 0; i < subtractArray.length; i++) {
            subtractArray[i] = subtract.get(i);
        }
        float[] biasArray = new float[Math.max(1, biases.size())];
        for (int i = 0; i < biases.size(); i++) {
            biasArray[i] = biases.get(i);
        }
        int[] biasIdArray = biasIds.isEmpty() ? new int[1] : biasIds.stream().mapToInt(Integer::intValue).toArray();
        kernel.applyPenalties(scope.stream(), logits, batch, vocab, scope.upload(biasOffsets),
                scope.upload(biasIdArray), scope.upload(biasArray), scope.upload(seenOffsets),
                scope.upload(seenIds.stream().mapToInt(Integer::intValue).toArray()), scope.upload(repetition),
                scope.upload(countOffsets), scope.upload(countIds.stream().mapToInt(Integer::intValue).toArray()),
                scope.upload(subtractArray), scope.upload(maskOffsets),
                scope.upload(allowedBits.isEmpty() ? new int[1] : allowedBits.stream().mapToInt(Integer::intValue).toArray()));
    }

    /** Rows with random logits, histories (some ids beyond the vocabulary) and parameters. */
    private static List<Row> randomRows(Random random, int vocab, int batch) {
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < batch; r++) {
            int[] prompt = random.ints(random.nextInt(200), 0, vocab + 3).toArray();
            int[] output = random.ints(random.nextInt(60), 0, Math.min(vocab, 40 + random.nextInt(vocab))).toArray();
            SamplingParams params = SamplingParams.builder()
                    .temperature(r % 11 == 10 ? 0 : TEMPERATURES[random.nextInt(TEMPERATURES.length)])
                    .topK(TOP_KS[random.nextInt(TOP_KS.length)])
                    .topP(TOP_PS[random.nextInt(TOP_PS.length)])
                    .minP(MIN_PS[random.nextInt(MIN_PS.length)])
                    .repetitionPenalty(random.nextBoolean() ? 1 : 0.8 + random.nextDouble() * 0.6)
                    .presencePenalty(random.nextBoolean() ? 0 : random.nextDouble() * 4 - 2)
                    .frequencyPenalty(random.nextBoolean() ? 0 : random.nextDouble() * 4 - 2)
                    .seed(random.nextLong())
                    .logitBias(randomBias(random, vocab, prompt))
                    .build();
            float[] logits = logits(random, vocab);
            // The mask draws from a generator of its own, so that the rows are those drawn without masks.
            rows.add(new Row(logits, prompt, output, params, randomMask(new Random(params.seed()), logits)));
        }
        return rows;
    }

    /**
     * A grammar's allowed tokens for a third of the rows: a random half of the vocabulary and the row's
     * eight best tokens (so that a row keeps what choice it had), with the last word left out at times
     * (when it holds none of those eight), whose tokens the kernel must then refuse too.
     */
    private static int[] randomMask(Random random, float[] logits) {
        if (random.nextInt(3) != 0) {
            return null;
        }
        int vocab = logits.length;
        int[] bits = new int[(vocab + 31) / 32];
        for (int id = 0; id < vocab; id++) {
            if (random.nextBoolean()) {
                bits[id / 32] |= 1 << (id % 32);
            }
        }
        int[] best = IntStream.range(0, vocab).boxed().sorted((a, b) -> Float.compare(logits[b], logits[a]))
                .limit(8).mapToInt(Integer::intValue).toArray();
        boolean lastWordNeeded = false;
        for (int id : best) {
            bits[id / 32] |= 1 << (id % 32);
            lastWordNeeded |= id / 32 == bits.length - 1;
        }
        return random.nextBoolean() && bits.length > 1 && !lastWordNeeded ? Arrays.copyOf(bits, bits.length - 1)
                : bits;
    }

    /**
     * No bias for a third of the rows; for the others, up to 40 ids (some beyond the vocabulary, some
     * of the prompt's, so that the bias meets the repetition penalty) with biases in [-100, 100].
     */
    private static Map<Integer, Float> randomBias(Random random, int vocab, int[] prompt) {
        Map<Integer, Float> bias = new TreeMap<>();
        if (random.nextInt(3) == 0) {
            return bias;
        }
        int count = 1 + random.nextInt(40);
        for (int i = 0; i < count; i++) {
            int id = prompt.length > 0 && random.nextBoolean() ? prompt[random.nextInt(prompt.length)]
                    : random.nextInt(vocab + 3);
            float value = switch (random.nextInt(4)) {
                case 0 -> -100f;
                case 1 -> 100f;
                default -> (float) (random.nextDouble() * 20 - 10);
            };
            bias.put(id, value);
        }
        return bias;
    }

    /**
     * Gaussian logits at a random spread; some rows on a coarse grid, so that equal scores (and so the
     * tie to the lower id) occur, and a few -infinity entries.
     */
    private static float[] logits(Random random, int vocab) {
        float[] logits = new float[vocab];
        double spread = 0.5 + random.nextDouble() * 6;
        boolean coarse = random.nextInt(4) == 0;
        for (int i = 0; i < vocab; i++) {
            double value = random.nextGaussian() * spread;
            logits[i] = coarse ? Math.round(value * 2) / 2f : (float) value;
        }
        for (int i = 0; i < vocab / 50; i++) {
            logits[random.nextInt(vocab)] = Float.NEGATIVE_INFINITY;
        }
        return logits;
    }

    private static float[] flatten(List<Row> rows, int vocab) {
        float[] flat = new float[rows.size() * vocab];
        for (int r = 0; r < rows.size(); r++) {
            System.arraycopy(rows.get(r).logits(), 0, flat, r * vocab, vocab);
        }
        return flat;
    }

    private static int[] topKs(List<Row> rows) {
        return rows.stream().mapToInt(row -> row.params().topK()).toArray();
    }

    private static double[] settings(List<Row> rows, double[] uniforms) {
        double[] settings = new double[rows.size() * SamplingKernel.SETTINGS_PER_ROW];
        for (int r = 0; r < rows.size(); r++) {
            SamplingParams params = rows.get(r).params();
            settings[r * 4] = params.temperature();
            settings[r * 4 + 1] = params.topP();
            settings[r * 4 + 2] = params.minP();
            settings[r * 4 + 3] = uniforms[r];
        }
        return settings;
    }

    private static int[] downloadInts(DeviceScope scope, DeviceBuffer buffer, int count) {
        float[] raw = scope.download(buffer, count);
        int[] ints = new int[count];
        for (int i = 0; i < count; i++) {
            ints[i] = Float.floatToRawIntBits(raw[i]);
        }
        return ints;
    }

    private static int[] idsOf(int[] mask, int row, int vocab) {
        return java.util.stream.IntStream.range(0, vocab).filter(i -> mask[row * vocab + i] == 1).toArray();
    }
}
