package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.TokenLogprob;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The device's logprobs records against the host's {@link Sampler#logSoftmax} and {@link
 * Sampler#topLogprobs} of the same rows: the chosen token's log-probability and the top tokens, in
 * order (equal log-probabilities by the lower id), on odd vocabularies, rows with ties, with -infinity
 * and with fewer finite logits than the tokens asked for.
 */
@GpuTest
class LogprobsKernelTest {

    /**
     * The host sums exp in another order (and with another exp): log-probabilities agree to this, times
     * their size where it passes 1 (a float's last place there).
     */
    private static final double TOLERANCE = 1e-6;

    @ParameterizedTest(name = "vocab {0}, rows {1}, seed {2}")
    @CsvSource({"49160,64,1", "49160,3,2", "50257,9,3", "1001,40,4", "37,21,5", "5,7,6", "1,2,7", "257,21,8"})
    void recordsEqualTheHostsLogSoftmaxAndTopTokens(int vocab, int batch, long seed) {
        Random random = new Random(seed);
        float[] logits = new float[batch * vocab];
        for (int r = 0; r < batch; r++) {
            fillRow(random, logits, r, vocab);
        }
        // Records for a subset of the rows, in another order, each with its own count and drawn token.
        int count = Math.max(1, batch * 2 / 3);
        int[] rows = new int[count];
        int[] tops = new int[count];
        int[] tokens = new int[batch];
        for (int i = 0; i < count; i++) {
            rows[i] = (batch - 1 - i * 3 % batch + batch) % batch;
            tops[i] = i % 7 == 0 ? 0 : i % 5 == 0 ? LogprobsKernel.MOST_TOP : 1 + random.nextInt(LogprobsKernel.MOST_TOP);
        }
        for (int r = 0; r < batch; r++) {
            do {
                tokens[r] = random.nextInt(vocab);
            } while (logits[r * vocab + tokens[r]] == Float.NEGATIVE_INFINITY);
        }
        LogprobsKernel kernel = new LogprobsKernel(GpuFixture.kernels());
        float[] words;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer records = scope.poisoned((long) count * LogprobsKernel.RECORD_WORDS);
            DeviceBuffer raw = scope.poisoned((long) count * vocab);
            DeviceBuffer rowBuffer = scope.upload(rows);
            kernel.top(scope.stream(), scope.upload(logits), vocab, 1f, count, rowBuffer, scope.upload(tops), raw, records);
            kernel.chosen(scope.stream(), raw, vocab, count, rowBuffer, scope.upload(tokens), records);
            words = scope.download(records, count * LogprobsKernel.RECORD_WORDS);
        }
        for (int i = 0; i < count; i++) {
            float[] row = java.util.Arrays.copyOfRange(logits, rows[i] * vocab, (rows[i] + 1) * vocab);
            float[] distribution = Sampler.logSoftmax(row);
            List<TokenLogprob> expected = Sampler.topLogprobs(distribution, tops[i]);
            int at = i * LogprobsKernel.RECORD_WORDS;
            String what = "record " + i + " (row " + rows[i] + ", top " + tops[i] + ")";
            assertThat((double) words[at + 3]).as(what + ": chosen").isCloseTo(distribution[tokens[rows[i]]],
                    near(distribution[tokens[rows[i]]]));
            assertSameTop(words, at, distribution, expected, what);
        }
    }

    /**
     * A row taken by 1, 2, 4, 8 or 16 blocks (those the device allows): every record's words equal bit for
     * bit, the normalizer included, so that a request's logprobs do not depend on the batch beside it.
     */
    @ParameterizedTest(name = "vocab {0}, rows {1}, seed {2}")
    @CsvSource({"49160,9,21", "50257,9,22", "1001,12,23", "37,6,24", "5,3,25"})
    void recordsAreTheSameWhateverTheBlocksARow(int vocab, int batch, long seed) {
        Random random = new Random(seed);
        float[] logits = new float[batch * vocab];
        for (int r = 0; r < batch; r++) {
            fillRow(random, logits, r, vocab);
        }
        int[] rows = new int[batch];
        int[] tops = new int[batch];
        for (int i = 0; i < batch; i++) {
            rows[i] = batch - 1 - i;
            tops[i] = i == 0 ? LogprobsKernel.MOST_TOP : 1 + random.nextInt(LogprobsKernel.MOST_TOP);
        }
        LogprobsKernel kernel = new LogprobsKernel(GpuFixture.kernels());
        float[] one = null;
        int compared = 0;
        for (int blocks = 1; blocks <= LogprobsKernel.LARGEST_BLOCKS_PER_ROW; blocks *= 2) {
            if (!kernel.allowsBlocksPerRow(blocks)) {
                continue;
            }
            float[] words;
            float[] copy;
            try (DeviceScope scope = GpuFixture.scope()) {
                DeviceBuffer records = scope.poisoned((long) batch * LogprobsKernel.RECORD_WORDS);
                DeviceBuffer raw = scope.poisoned((long) batch * vocab);
                kernel.top(scope.stream(), scope.upload(logits), vocab, 1f, batch, scope.upload(rows),
                        scope.upload(tops), raw, records, blocks);
                words = scope.download(records, batch * LogprobsKernel.RECORD_WORDS);
                copy = scope.download(raw, batch * vocab);
            }
            for (int i = 0; i < batch; i++) {
                for (int id = 0; id < vocab; id++) {
                    assertThat(copy[i * vocab + id]).as(blocks + " blocks: record " + i + "'s copy at " + id)
                            .isEqualTo(logits[rows[i] * vocab + id]);
                }
            }
            if (one == null) {
                one = words;
                continue;
            }
            for (int w = 0; w < words.length; w++) {
                int word = w % LogprobsKernel.RECORD_WORDS;
                int found = Float.floatToRawIntBits(one[w - word + 2]);
                boolean unused = word == 3 || (word >= 4 && (word - 4) % LogprobsKernel.MOST_TOP >= found);
                if (!unused) {
                    assertThat(Float.floatToRawIntBits(words[w])).as(blocks + " blocks: record "
                            + w / LogprobsKernel.RECORD_WORDS + ", word " + word)
                            .isEqualTo(Float.floatToRawIntBits(one[w]));
                }
            }
            compared++;
        }
        assertThat(compared).as("cluster sizes compared with one block").isGreaterThanOrEqualTo(
                kernel.allowsBlocksPerRow(2) ? 4 : 0);
    }

    /**
     * A prompt's rows: the logits divided by a divisor as they are read (as the host divides them), no
     * copy, then each record's given token (the next prompt token; -1 for none) with its log-probability
     * and its rank, which must equal {@link Sampler#rank} of the host's distribution exactly.
     */
    @ParameterizedTest(name = "vocab {0}, rows {1}, seed {2}, divisor {3}")
    @CsvSource({"49160,33,11,1", "49160,5,12,6", "1001,40,13,0.75", "37,21,14,3", "1,2,15,1"})
    void promptRecordsEqualTheHostsLogSoftmaxTopTokensAndRanks(int vocab, int batch, long seed, float divisor) {
        Random random = new Random(seed);
        float[] logits = new float[batch * vocab];
        for (int r = 0; r < batch; r++) {
            fillRow(random, logits, r, vocab);
        }
        int count = batch;
        int[] rows = new int[count];
        int[] tops = new int[count];
        int[] tokens = new int[count];
        for (int i = 0; i < count; i++) {
            rows[i] = (i * 7) % batch;
            tops[i] = i % 4 == 0 ? 0 : 1 + random.nextInt(LogprobsKernel.MOST_TOP);
            int row = rows[i];
            do {
                tokens[i] = random.nextInt(vocab);
            } while (logits[row * vocab + tokens[i]] == Float.NEGATIVE_INFINITY);
        }
        tokens[count - 1] = -1; // the prompt's last row: no prompt token after it
        LogprobsKernel kernel = new LogprobsKernel(GpuFixture.kernels());
        float[] words;
        float[] ranks;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer records = scope.poisoned((long) count * LogprobsKernel.RECORD_WORDS);
            DeviceBuffer rankBuffer = scope.poisoned(count);
            DeviceBuffer logitBuffer = scope.upload(logits);
            DeviceBuffer rowBuffer = scope.upload(rows);
            kernel.top(scope.stream(), logitBuffer, vocab, divisor, count, rowBuffer, scope.upload(tops), null, records);
            kernel.prompt(scope.stream(), logitBuffer, vocab, divisor, count, rowBuffer, scope.upload(tokens), records,
                    rankBuffer);
            words = scope.download(records, count * LogprobsKernel.RECORD_WORDS);
            ranks = scope.download(rankBuffer, count);
        }
        for (int i = 0; i < count; i++) {
            float[] distribution = Sampler.logSoftmax(dividedRow(logits, rows[i], vocab, divisor));
            int at = i * LogprobsKernel.RECORD_WORDS;
            String what = "record " + i + " (row " + rows[i] + ", top " + tops[i] + ", token " + tokens[i] + ")";
            int rank = Float.floatToRawIntBits(ranks[i]);
            if (tokens[i] < 0) {
                assertThat(rank).as(what + ": rank").isZero();
                assertThat(words[at + 3]).as(what + ": chosen").isNaN();
            } else {
                assertThat(rank).as(what + ": rank").isEqualTo(Sampler.rank(distribution, tokens[i]));
                assertThat((double) words[at + 3]).as(what + ": chosen").isCloseTo(distribution[tokens[i]],
                        near(distribution[tokens[i]]));
            }
            assertSameTop(words, at, distribution, Sampler.topLogprobs(distribution, tops[i]), what);
        }
    }

    /**
     * The greedy draw in the logprobs launch: each record's row gets its argmax (the largest logit
     * divided by the divisor as the host divides it, the lower id on ties, -1 for a row of -infinity),
     * written to both token buffers by row, and the record's chosen log-probability is that token's in
     * the host's log-softmax; the top tokens are as {@link LogprobsKernel#top} gives them.
     */
    @ParameterizedTest(name = "vocab {0}, rows {1}, seed {2}, divisor {3}")
    @CsvSource({"49160,9,31,1", "49160,64,32,6", "50257,3,33,0.75", "1001,21,34,3", "37,5,35,1", "1,2,36,1"})
    void greedyDrawInTheLogprobsLaunchIsTheArgmaxWithItsLogprob(int vocab, int batch, long seed, float divisor) {
        Random random = new Random(seed);
        float[] logits = new float[batch * vocab];
        for (int r = 0; r < batch; r++) {
            fillRow(random, logits, r, vocab);
        }
        if (batch > 2) {
            java.util.Arrays.fill(logits, vocab, 2 * vocab, Float.NEGATIVE_INFINITY); // row 1: nothing to draw
        }
        int[] rows = new int[batch];
        int[] tops = new int[batch];
        for (int i = 0; i < batch; i++) {
            rows[i] = batch - 1 - i;
            tops[i] = i % 3 == 0 ? 0 : 1 + random.nextInt(LogprobsKernel.MOST_TOP);
        }
        LogprobsKernel kernel = new LogprobsKernel(GpuFixture.kernels());
        float[] words;
        float[] tokens;
        float[] hostTokens;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer records = scope.poisoned((long) batch * LogprobsKernel.RECORD_WORDS);
            DeviceBuffer tokenBuffer = scope.poisoned(batch);
            DeviceBuffer hostTokenBuffer = scope.poisoned(batch);
            kernel.drawGreedy(scope.stream(), scope.upload(logits), vocab, divisor, batch, scope.upload(rows),
                    scope.upload(tops), records, tokenBuffer, hostTokenBuffer);
            words = scope.download(records, batch * LogprobsKernel.RECORD_WORDS);
            tokens = scope.download(tokenBuffer, batch);
            hostTokens = scope.download(hostTokenBuffer, batch);
        }
        for (int i = 0; i < batch; i++) {
            int row = rows[i];
            float[] divided = dividedRow(logits, row, vocab, divisor);
            int argmax = -1;
            for (int id = 0; id < vocab; id++) {
                if (divided[id] != Float.NEGATIVE_INFINITY && (argmax < 0 || divided[id] > divided[argmax])) {
                    argmax = id;
                }
            }
            String what = "record " + i + " (row " + row + ", top " + tops[i] + ")";
            assertThat(Float.floatToRawIntBits(tokens[row])).as(what + ": token").isEqualTo(argmax);
            assertThat(Float.floatToRawIntBits(hostTokens[row])).as(what + ": host token").isEqualTo(argmax);
            int at = i * LogprobsKernel.RECORD_WORDS;
            if (argmax < 0) {
                assertThat(words[at + 3]).as(what + ": chosen").isNaN();
                continue;
            }
            float[] distribution = Sampler.logSoftmax(divided);
            assertThat((double) words[at + 3]).as(what + ": chosen").isCloseTo(distribution[argmax],
                    near(distribution[argmax]));
            assertSameTop(words, at, distribution, Sampler.topLogprobs(distribution, tops[i]), what);
        }
    }

    /** Row {@code row} of {@code logits}, each logit divided by {@code divisor} as the host divides it. */
    private static float[] dividedRow(float[] logits, int row, int vocab, float divisor) {
        float[] divided = java.util.Arrays.copyOfRange(logits, row * vocab, (row + 1) * vocab);
        for (int id = 0; id < vocab; id++) {
            divided[id] /= divisor;
        }
        return divided;
    }

    /**
     * A record's top tokens against the host's, in order; ties rounded apart may trade places, tokens
     * equal on the device may not.
     */
    private static void assertSameTop(float[] words, int at, float[] distribution, List<TokenLogprob> expected,
            String what) {
        int found = Float.floatToRawIntBits(words[at + 2]);
        assertThat(found).as(what + ": found").isEqualTo(expected.size());
        for (int j = 0; j < found; j++) {
            int id = Float.floatToRawIntBits(words[at + 4 + j]);
            float value = words[at + 4 + LogprobsKernel.MOST_TOP + j];
            assertThat((double) value).as(what + ", place " + j).isCloseTo(expected.get(j).logprob(),
                    near(expected.get(j).logprob()));
            if (j > 0 && value == words[at + 4 + LogprobsKernel.MOST_TOP + j - 1]) {
                // Equal on the device (equal logits): the lower id first, as the host orders them.
                assertThat(id).as(what + ", place " + j + ": equal to the place before it")
                        .isGreaterThan(Float.floatToRawIntBits(words[at + 4 + j - 1]));
            }
            if (id != expected.get(j).id()) {
                // Only tokens the host rounds to within the tolerance of each other may trade places.
                assertThat((double) distribution[id]).as(what + ", place " + j + ": id " + id + " for "
                        + expected.get(j).id()).isCloseTo(expected.get(j).logprob(), near(expected.get(j).logprob()));
            }
        }
    }

    private static org.assertj.core.data.Offset<Double> near(double expected) {
        return within(TOLERANCE * Math.max(1, Math.abs(expected)));
    }

    /**
     * A row of logits: Gaussian, sometimes coarse (many exact ties), some -infinity; now and then a row
     * with only a few finite logits, fewer than the most tokens a record takes.
     */
    private static void fillRow(Random random, float[] logits, int row, int vocab) {
        double spread = 0.5 + random.nextDouble() * 8;
        boolean coarse = random.nextInt(3) == 0;
        boolean sparse = vocab > 1 && random.nextInt(5) == 0;
        for (int i = 0; i < vocab; i++) {
            double value = random.nextGaussian() * spread;
            logits[row * vocab + i] = coarse ? Math.round(value) : (float) value;
        }
        for (int i = 0; i < vocab; i++) {
            if (sparse ? random.nextInt(vocab) > 6 : random.nextInt(40) == 0) {
                logits[row * vocab + i] = Float.NEGATIVE_INFINITY;
            }
        }
        logits[row * vocab + random.nextInt(vocab)] = (float) random.nextGaussian(); // at least one finite
    }
}
