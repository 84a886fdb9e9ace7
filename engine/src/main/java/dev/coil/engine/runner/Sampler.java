package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.random.RandomGenerator;

/**
 * Picks the next token of one sequence from the model's logits, following {@link SamplingParams}.
 *
 * <p>The steps, in the order HF transformers and vLLM apply them:
 * <ol start="0">
 *   <li>logit bias (OpenAI's logit_bias, applied first as vLLM does): logit += bias; and while fewer than
 *       min_tokens tokens are generated, -infinity for the end-of-sequence and stop token ids (vLLM's
 *       min_tokens);
 *   <li>repetition penalty (HF): for every token in the prompt or output, logit / p if positive, else
 *       logit · p;
 *   <li>presence and frequency penalties (OpenAI, over generated tokens only as vLLM does):
 *       logit -= presence · [count &gt; 0] + frequency · count;
 *   <li>temperature 0: the argmax, ties to the lowest id; otherwise divide by the temperature;
 *   <li>top-k: keep the k largest (ties to lower ids);
 *   <li>top-p: keep the smallest set of most likely tokens whose probability sums to at least p (at least
 *       one token);
 *   <li>min-p: drop tokens whose probability is below minP times the largest;
 *   <li>draw from what is left, renormalised.
 * </ol>
 * A vocabulary of 100k+ tokens is never fully sorted unless top-p needs most of it: top-k uses a bounded
 * heap, and top-p sorts only the tokens above a probability threshold that it lowers until they hold
 * enough mass. The exponentials over the whole vocabulary are {@link ExpWeights}'s, as the GPU's draw takes them.
 *
 * <p>Each sampler owns a random generator seeded from {@link SamplingParams#seed()}, so a request with a
 * seed draws the same tokens however it is batched. Not thread-safe: one sampler per sequence. The logits
 * passed in are never modified (log-probabilities for the response come from the unmodified ones).
 */
public final class Sampler {

    private final SamplingParams params;
    private final RandomGenerator random;
    /** The ids min_tokens holds back: end-of-sequence and stop token ids, distinct, in increasing order. */
    private final int[] heldBack;
    /** (vocab) the logits after the penalties. */
    private float[] scores = new float[0];
    /** (vocab) candidate token ids; each filter keeps a prefix. */
    private int[] candidates = new int[0];
    /** (vocab) exp((score - max) / temperature), parallel to candidates: probabilities up to a factor. */
    private float[] weights = new float[0];

    /** A sampler whose min_tokens holds back the stop token ids only (the caller has no end-of-sequence ids). */
    public Sampler(SamplingParams params) {
        this(params, Set.of());
    }

    /** @param endIds the end-of-sequence ids min_tokens holds back with the stop token ids (none with ignore_eos) */
    public Sampler(SamplingParams params, Set<Integer> endIds) {
        this.params = params;
        this.random = params.seed() == null ? new SplittableRandom() : new SplittableRandom(params.seed());
        this.heldBack = heldBack(endIds, params);
    }

    /** The distinct end-of-sequence and stop token ids, in increasing order. */
    private static int[] heldBack(Set<Integer> endIds, SamplingParams params) {
        TreeSet<Integer> ids = new TreeSet<>(endIds);
        ids.addAll(params.stopTokenIds());
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** What min_tokens holds back until it is reached: end-of-sequence and stop ids, distinct, increasing. */
    int[] heldBack() {
        return heldBack;
    }

    public SamplingParams params() {
        return params;
    }

    /**
     * The next token.
     *
     * @param logits (vocab) the model's output for the last position; not modified
     * @param history the sequence's prompt and generated tokens (the caller appends the returned token)
     * @throws IllegalStateException when the logits hold NaN or +infinity, or are all -infinity
     */
    public int sample(float[] logits, TokenHistory history) {
        int vocab = penalisedScores(logits, history);
        if (params.isGreedy()) {
            return argmax(scores, vocab);
        }
        return draw(filter(vocab), random.nextDouble());
    }

    /** As {@link #sample(float[], TokenHistory)}, drawing with {@code uniform} (from {@link #nextUniform}). */
    public int sample(float[] logits, TokenHistory history, double uniform) {
        int vocab = penalisedScores(logits, history);
        if (params.isGreedy()) {
            return argmax(scores, vocab);
        }
        return draw(filter(vocab), uniform);
    }

    /** The uniform number in [0, 1) the next draw uses, taken from this sampler's seeded generator. */
    public double nextUniform() {
        return random.nextDouble();
    }

    /** The ids that steps 0 to 6 leave with a non-zero probability, in increasing order (for tests). */
    int[] survivors(float[] logits, TokenHistory history) {
        int count = filter(penalisedScores(logits, history));
        int[] ids = new int[count];
        int drawable = 0;
        for (int j = 0; j < count; j++) {
            if (weights[j] > 0) {
                ids[drawable++] = candidates[j];
            }
        }
        int[] sorted = Arrays.copyOf(ids, drawable);
        Arrays.sort(sorted);
        return sorted;
    }

    /**
     * Steps 0 to 2 (the bias, then the penalties), in place on {@code logits[0, vocab)}. Ids at or beyond
     * {@code vocab} are ignored.
     */
    static void applyPenalties(float[] logits, int vocab, TokenHistory history, SamplingParams params) {
        params.logitBias().forEach((id, bias) -> {
            if (id < vocab) {
                logits[id] += bias;
            }
        });
        if (params.repetitionPenalty() != 1) {
            float penalty = (float) params.repetitionPenalty();
            history.forEachSeen(id -> {
                if (id < vocab) {
                    float logit = logits[id];
                    logits[id] = logit > 0 ? logit / penalty : logit * penalty;
                }
            });
        }
        if (params.presencePenalty() != 0 || params.frequencyPenalty() != 0) {
            double presence = params.presencePenalty();
            double frequency = params.frequencyPenalty();
            history.forEachOutputCount((id, count) -> {
                if (id < vocab) {
                    logits[id] -= (float) (presence + frequency * count);
                }
            });
        }
    }

    /** Log-softmax of {@code logits}: log p_i = logit_i - log Σ_j exp(logit_j); -infinity stays -infinity. */
    public static float[] logSoftmax(float[] logits) {
        float max = checkedMax(logits, logits.length);
        float[] out = new float[logits.length];
        double logNormalizer = max + Math.log(ExpWeights.compute(logits, logits.length, max, 1f, out));
        for (int i = 0; i < logits.length; i++) {
            out[i] = (float) (logits[i] - logNormalizer);
        }
        return out;
    }

    /**
     * vLLM's rank of token {@code id} in a distribution: 1 + the number of tokens more likely than it
     * (tokens as likely as it do not push it down).
     */
    public static int rank(float[] logprobs, int id) {
        float logprob = logprobs[id];
        int above = 0;
        for (float other : logprobs) {
            if (other > logprob) {
                above++;
            }
        }
        return above + 1;
    }

    /**
     * The {@code k} most likely tokens, most likely first, equal log-probabilities by lower id. Tokens at
     * -infinity are left out, so fewer than k may come back.
     */
    public static List<TokenLogprob> topLogprobs(float[] logprobs, int k) {
        int wanted = Math.min(Math.max(k, 0), logprobs.length);
        int[] ids = new int[wanted];
        int found = TopTokens.largest(logprobs, logprobs.length, wanted, ids);
        List<TokenLogprob> top = new ArrayList<>(found);
        for (int i = 0; i < found; i++) {
            top.add(new TokenLogprob(ids[i], logprobs[ids[i]]));
        }
        return top;
    }

    /** Copies the logits into scores (rejecting NaN and +infinity) and applies steps 0 to 2. */
    private int penalisedScores(float[] logits, TokenHistory history) {
        int vocab = logits.length;
        if (scores.length < vocab) {
            scores = new float[vocab];
            candidates = new int[vocab];
            weights = new float[vocab];
        }
        for (int i = 0; i < vocab; i++) {
            checkLogit(logits[i], i);
        }
        System.arraycopy(logits, 0, scores, 0, vocab);
        applyPenalties(scores, vocab, history, params);
        if (history.generatedCount() < params.minTokens()) {
            for (int id : heldBack) {
                if (id < vocab) {
                    scores[id] = Float.NEGATIVE_INFINITY;
                }
            }
        }
        return vocab;
    }

    /**
     * Steps 3 to 6: leaves the survivors in candidates[0, count) with their weights and returns count.
     * Survivors may include tokens of weight 0 (-infinity logits) when no filter removed them; those are
     * never drawn.
     */
    private int filter(int vocab) {
        int topK = params.topK();
        boolean sortedByScore = topK > 0 && topK < vocab;
        int count;
        double total;
        if (sortedByScore) {
            count = TopTokens.largest(scores, vocab, topK, candidates);
            if (count == 0) {
                throw allMinusInfinity();
            }
            total = candidateWeights(count);
        } else {
            float max = checkedMax(scores, vocab);
            total = ExpWeights.compute(scores, vocab, max, (float) (1 / params.temperature()), weights);
            for (int id = 0; id < vocab; id++) {
                candidates[id] = id;
            }
            count = vocab;
        }
        if (params.topP() < 1) {
            double mass = total * params.topP();
            if (!sortedByScore) {
                count = gatherMostLikely(count, mass);
            }
            count = nucleus(count, mass);
        }
        if (params.minP() > 0) {
            count = dropBelowMinP(count);
        }
        return count;
    }

    private static void checkLogit(float logit, int id) {
        if (Float.isNaN(logit) || logit == Float.POSITIVE_INFINITY) {
            throw new IllegalStateException("logit of token " + id + " is " + logit
                    + "; the model produced a non-finite output");
        }
    }

    private static float checkedMax(float[] values, int length) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < length; i++) {
            checkLogit(values[i], i);
            max = Math.max(max, values[i]);
        }
        if (max == Float.NEGATIVE_INFINITY) {
            throw allMinusInfinity();
        }
        return max;
    }

    private static IllegalStateException allMinusInfinity() {
        return new IllegalStateException("every logit is -infinity; there is no token to pick");
    }

    /** Index of the largest score, the lowest such id on ties. */
    private static int argmax(float[] scores, int vocab) {
        int best = -1;
        float bestScore = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            if (scores[i] > bestScore) {
                bestScore = scores[i];
                best = i;
            }
        }
        if (best < 0) {
            throw allMinusInfinity();
        }
        return best;
    }

    /** Weights of top-k candidates, sorted, so candidates[0] holds the maximum. Returns their sum. */
    private double candidateWeights(int count) {
        float max = scores[candidates[0]];
        double total = 0;
        for (int j = 0; j < count; j++) {
            weights[j] = weight(scores[candidates[j]], max);
            total += weights[j];
        }
        return total;
    }

    /** exp((score - max) / temperature): a probability up to the normaliser, 1 for the most likely token. */
    private float weight(float score, float max) {
        return (float) Math.exp((score - (double) max) / params.temperature());
    }

    /**
     * Reduces unsorted candidates to the most likely ones, sorted, holding at least {@code mass} of weight.
     * Candidates with weight at least a threshold are moved to the front; while they hold too little mass
     * the threshold drops and the rest is scanned again. Whatever stays behind weighs less than everything
     * in front, so the nucleus of step 5 lies inside what is returned. A peaked distribution needs one pass
     * and a short sort; only a nearly flat one sorts most of the vocabulary. Weight-0 tokens never move.
     */
    private int gatherMostLikely(int count, double mass) {
        int front = 0;
        double frontMass = 0;
        float threshold = 1e-2f;
        while (true) {
            for (int j = front; j < count; j++) {
                if (weights[j] >= threshold) {
                    frontMass += weights[j];
                    swap(j, front++);
                }
            }
            if (frontMass >= mass || front == count || threshold == Float.MIN_VALUE) {
                break;
            }
            threshold = Math.max(threshold * 0.1f, Float.MIN_VALUE);
        }
        TopTokens.sortDescending(scores, candidates, front);
        float max = scores[candidates[0]];
        for (int j = 0; j < front; j++) {
            weights[j] = weight(scores[candidates[j]], max);
        }
        return front;
    }

    private void swap(int a, int b) {
        int id = candidates[a];
        candidates[a] = candidates[b];
        candidates[b] = id;
        float w = weights[a];
        weights[a] = weights[b];
        weights[b] = w;
    }

    /** Step 5 on sorted candidates: the shortest prefix whose weight reaches {@code mass}. */
    private int nucleus(int count, double mass) {
        double cumulative = 0;
        for (int j = 0; j < count; j++) {
            cumulative += weights[j];
            if (cumulative >= mass) {
                return j + 1;
            }
        }
        return count;
    }

    /** Step 6: keep candidates with weight at least minP times the largest weight. */
    private int dropBelowMinP(int count) {
        float largest = 0;
        for (int j = 0; j < count; j++) {
            largest = Math.max(largest, weights[j]);
        }
        double floor = params.minP() * largest;
        int kept = 0;
        for (int j = 0; j < count; j++) {
            if (weights[j] >= floor) {
                candidates[kept] = candidates[j];
                weights[kept] = weights[j];
                kept++;
            }
        }
        return kept;
    }

    /** Step 7: one draw from the weights of the first {@code count} candidates. */
    private int draw(int count, double uniform) {
        double total = 0;
        for (int j = 0; j < count; j++) {
            total += weights[j];
        }
        double target = uniform * total;
        double cumulative = 0;
        int lastDrawable = -1;
        for (int j = 0; j < count; j++) {
            if (weights[j] > 0) {
                cumulative += weights[j];
                lastDrawable = j;
                if (target < cumulative) {
                    return candidates[j];
                }
            }
        }
        // Reached only when rounding puts the target on the total itself.
        return candidates[lastDrawable];
    }
}
