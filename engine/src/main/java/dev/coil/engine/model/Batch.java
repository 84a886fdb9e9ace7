package dev.coil.engine.model;

import java.util.List;

/**
 * One forward step over several sequences: their new tokens laid end to end as the rows of one
 * activation matrix [rows, hidden]. Row-wise work (projections, norms, MLPs) runs once over all
 * rows, so each weight is read once per step however many sequences share it; sequence-wise work
 * (attention over a sequence's cache, the Mamba recurrence) runs per segment.
 */
public final class Batch {

    /** Which logits a segment needs back. */
    public enum Logits {
        /** None: a prefill chunk that is not the prompt's last. */
        NONE,
        /** The last position's (the next token is sampled from it). */
        LAST,
        /** Every position's (prompt logprobs, scoring). */
        ALL,
        /**
         * Only the greedy next token after the last position (the argmax, lowest id on ties): a
         * backend may pick it where the logits are and return just the id.
         */
        GREEDY,
        /**
         * Only the next token drawn as the segment's {@link Draw} says: a backend may draw it where
         * the logits are and return just the id.
         */
        SAMPLE
    }

    /**
     * Everything a backend needs to draw a segment's next token as the engine's sampler would, with
     * the sampler's own uniform number: the logit bias, penalties, then temperature, top-k, top-p, min-p, and the
     * first candidate whose running weight passes uniform · total.
     *
     * @param seenIds        distinct prompt and generated ids (for the repetition penalty; empty when it is 1)
     * @param countIds       distinct generated ids (for the presence and frequency penalties)
     * @param countPenalties per count id, (float) (presence + frequency · count)
     * @param uniform        in [0, 1), drawn by the request's seeded generator
     * @param biasIds        distinct ids whose logits get a bias before the penalties (logit_bias)
     * @param biases         per bias id, the number added to its logit
     * @param allowedBits    where a grammar holds the output: bit id % 32 of word id / 32 set where token
     *                       id may come next (one past the words may not), applied before anything
     *                       else; null without a grammar
     * @param logprobs       -1, or the request's logprobs: the backend returns the chosen token's
     *                       log-probability and this many most likely tokens' ({@link DrawnLogprobs}), of
     *                       the logits before the mask, bias, penalties and temperature
     */
    public record Draw(double temperature, int topK, double topP, double minP, float repetitionPenalty,
            int[] seenIds, int[] countIds, float[] countPenalties, double uniform, int[] biasIds, float[] biases,
            int[] allowedBits, int logprobs) {

        /**
         * The draw of a fed segment whose settings depend on the token it is fed (a grammar's allowed
         * tokens, penalties, bad words of several tokens): the backend ({@code Backend.drawsLater}) queues
         * the step's forward pass at submission and its draw once the engine has read the step before and
         * hands the draws over ({@code Backend.Submitted.draw}). Told apart by identity.
         */
        public static final Draw LATER = new Draw(0, 0, 1, 0, 1f, new int[0], new int[0], new float[0], 0,
                new int[0], new float[0], null, -1);

        /** True for {@link #LATER}. */
        public boolean later() {
            return this == LATER;
        }

        /** True when the draw changes logits before its temperature: a grammar's mask, a bias or a penalty. */
        public boolean adjustsLogits() {
            return allowedBits != null || biasIds.length > 0 || repetitionPenalty != 1f || countIds.length > 0;
        }
    }

    /**
     * Log-probabilities a backend computed with a drawn token, as the host's log-softmax of the
     * segment's logits gives them: the chosen token's, and the most likely tokens', most likely first,
     * equal ones by the lower id, -infinity left out.
     */
    public record DrawnLogprobs(float chosen, int[] topIds, float[] topLogprobs) {
    }

    /**
     * A prompt's rows scored where their logits are (prompt logprobs, {@code Backend.scoresPrompts}),
     * so that the logits of every row need not come back.
     *
     * @param top    how many most likely tokens each row lists (0 to 20)
     * @param tokens per row of the segment, the token whose log-probability and rank it gets (the
     *               prompt token after it), or -1 for none
     */
    public record PromptScoring(int top, int[] tokens) {
    }

    /**
     * One row of a {@link PromptScoring}, as the host's log-softmax of its logits gives it: the
     * token's log-probability (NaN for none) and rank (1 + the tokens more likely; 0 for none), and
     * the most likely tokens, most likely first, equal ones by the lower id, -infinity left out.
     */
    public record ScoredRow(float logprob, int rank, int[] topIds, float[] topLogprobs) {
    }

    /**
     * What a step gives back for one segment: the logits it asked for ([tokens, vocab], [vocab] or
     * null), or, for a {@link Logits#GREEDY} or {@link Logits#SAMPLE} segment, either the last
     * position's logits or the chosen token with null logits.
     *
     * @param token    the greedy token where the backend chose it; -1 otherwise, or where the logits
     *                 hold NaN or +infinity or only -infinity
     * @param logprobs with a chosen token whose draw asked for logprobs, where the backend computed
     *                 them ({@code Backend.drawsLogprobs}); null otherwise
     * @param scored   for a segment with a {@link PromptScoring}, each row's scores; its logits are
     *                 then the last row's only ([vocab]); null otherwise
     */
    public record Output(float[] logits, int token, DrawnLogprobs logprobs, List<ScoredRow> scored) {

        public Output(float[] logits, int token) {
            this(logits, token, null);
        }

        public Output(float[] logits, int token, DrawnLogprobs logprobs) {
            this(logits, token, logprobs, null);
        }

        public static Output ofLogits(float[] logits) {
            return new Output(logits, -1);
        }
    }

    /**
     * New tokens of one sequence.
     *
     * @param clampedTokens   how many of the leading tokens are prompt tokens: Mamba's prefill dt clamp
     *                        applies to them, not to generated tokens (HF clamps in prefill, not in its
     *                        cached decode step), so recomputing a sequence reproduces its first pass
     * @param previousSegment -1, or the index of a segment of the batch submitted just before this one
     *                        whose chosen token (greedy or drawn) is this segment's one token, not yet
     *                        known to the host: a backend that feeds tokens on the device takes it from
     *                        there (tokens then holds a placeholder)
     * @param scoring         with {@link Logits#ALL}, where the backend scores prompts itself: what to
     *                        score each row for, in place of returning every row's logits; else null
     */
    public record Segment(SequenceState sequence, int[] tokens, int clampedTokens, Logits logits, Draw draw,
            int previousSegment, PromptScoring scoring) {

        public Segment(SequenceState sequence, int[] tokens, int clampedTokens, Logits logits) {
            this(sequence, tokens, clampedTokens, logits, null, -1);
        }

        public Segment(SequenceState sequence, int[] tokens, int clampedTokens, Logits logits, Draw draw,
                int previousSegment) {
            this(sequence, tokens, clampedTokens, logits, draw, previousSegment, null);
        }

        /** A prompt chunk scored by the backend ({@link PromptScoring}). */
        public static Segment scored(SequenceState sequence, int[] tokens, int clampedTokens, PromptScoring scoring) {
            return new Segment(sequence, tokens, clampedTokens, Logits.ALL, null, -1, scoring);
        }

        public Segment(SequenceState sequence, int[] tokens, int clampedTokens, Logits logits, Draw draw) {
            this(sequence, tokens, clampedTokens, logits, draw, -1);
        }

        /**
         * A one-token decode whose token is the one the previous batch chose for its segment
         * {@code previous} (a GREEDY or SAMPLE segment there), on the device.
         */
        public static Segment fedFrom(int previous, SequenceState sequence, Logits logits, Draw draw) {
            return new Segment(sequence, new int[] {0}, 0, logits, draw, previous);
        }

        /** True when the token comes from the previous batch's output on the device. */
        public boolean fed() {
            return previousSegment >= 0;
        }

        /** True when the segment's draw comes once the batch is queued ({@link Draw#LATER}). */
        public boolean drawnLater() {
            return draw != null && draw.later();
        }

        public Segment {
            if (previousSegment >= 0 && (tokens.length != 1 || clampedTokens != 0)) {
                throw new IllegalArgumentException("a fed segment is one generated token");
            }
            if ((logits == Logits.SAMPLE) != (draw != null)) {
                throw new IllegalArgumentException("a SAMPLE segment, and only one, carries a draw");
            }
            if (tokens.length == 0) {
                throw new IllegalArgumentException("a segment needs at least one token");
            }
            if (scoring != null && (logits != Logits.ALL || scoring.tokens().length != tokens.length)) {
                throw new IllegalArgumentException("a scored segment asks for every row, a token for each");
            }
            if (clampedTokens < 0 || clampedTokens > tokens.length) {
                throw new IllegalArgumentException("clampedTokens " + clampedTokens + " outside [0, " + tokens.length
                        + "]");
            }
        }
    }

    private final List<Segment> segments;
    private final int[] firstRow;
    private final int[] past;
    private final int rows;

    public Batch(List<Segment> segments) {
        this.segments = List.copyOf(segments);
        this.firstRow = new int[this.segments.size()];
        this.past = new int[this.segments.size()];
        int row = 0;
        for (int s = 0; s < firstRow.length; s++) {
            firstRow[s] = row;
            past[s] = this.segments.get(s).sequence().length();
            row += this.segments.get(s).tokens().length;
        }
        this.rows = row;
    }

    public int size() {
        return segments.size();
    }

    public Segment segment(int index) {
        return segments.get(index);
    }

    /** Total new tokens: the rows of the step's activations. */
    public int rows() {
        return rows;
    }

    public int firstRow(int index) {
        return firstRow[index];
    }

    public int tokens(int index) {
        return segments.get(index).tokens().length;
    }

    /** Position of the segment's first new token: tokens its sequence had before this step. */
    public int past(int index) {
        return past[index];
    }

    public LayerState state(int index, int block) {
        return segments.get(index).sequence().layer(block);
    }

    SequenceState sequence(int index) {
        return segments.get(index).sequence();
    }
}
