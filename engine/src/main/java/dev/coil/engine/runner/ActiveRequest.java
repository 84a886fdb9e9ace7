package dev.coil.engine.runner;

import dev.coil.engine.model.Batch;
import dev.coil.engine.tokenizer.StreamingDecoder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.IntStream;

/**
 * The output side of one request inside the engine: turns the logits the model computes for it
 * into sampled tokens, text deltas, logprobs and the final event, and keeps its clock. Owned by the
 * thread that runs it, the engine's step thread or, for a request whose context is sharded, the
 * {@link ShardedLane}'s; only {@link #cancelRequested} is touched from other threads.
 */
final class ActiveRequest {

    /** Engine paths, as the API and the playground name them. */
    static final String FLASH = "flash";
    static final String SSD_SCAN = "ssd-scan";
    static final String SSM_RECURRENCE = "ssm-recurrence";

    private final String id;
    private final Consumer<String> onEnd;
    private final EngineRequest request;
    private final RequestStream stream;
    private final int maxTokens;
    private final Set<Integer> endIds;
    private final Sampler sampler;
    private final TokenHistory history;
    /** The request's logit_bias as a draw carries it. */
    private final DrawBias logitBias;
    /** The grammar the output is held to (response_format json_object or json_schema, a choice), or null. */
    private final GrammarConstraint grammar;
    /** Where the output stands against its thinking budget; null for none. */
    private final ThinkingBudgetState thinking;
    /** allowed_token_ids and bad_words. */
    private final TokenRestrictions restrictions;
    /** The uniform number handed out with {@link #nextDraw} for the next token; NaN when none is pending. */
    private double pendingUniform = Double.NaN;
    /** The uniform number of the token after the pending one, handed out by {@link #drawAhead}; NaN when none. */
    private double aheadUniform = Double.NaN;
    private final StreamingDecoder decoder;
    private final StopMatcher stops;
    private final Set<String> paths = new LinkedHashSet<>();
    private final List<EngineEvent.PositionLogprobs> promptLogprobs = new ArrayList<>();

    private int[] generated = new int[16];
    private int generatedCount;
    /** The end-of-sequence id that ended the request (not a generated token), or -1. */
    private int endToken = -1;
    private int cachedPromptTokens;
    private volatile boolean cancelRequested;
    private boolean done;

    private final long submittedNanos;
    private long scheduledNanos;
    private long prefilledNanos;
    private long firstTokenNanos;

    /**
     * @param onEnd called with the id just before the final event is published, so that whoever
     *              reads that event sees the engine already rid of the request
     */
    ActiveRequest(String id, EngineRequest request, int maxTokens, Set<Integer> endIds, StreamingDecoder decoder,
            RequestStream stream, Consumer<String> onEnd) {
        this(id, request, maxTokens, endIds, decoder, null, stream, onEnd);
    }

    /** @param grammar the grammar the output is held to, or null */
    ActiveRequest(String id, EngineRequest request, int maxTokens, Set<Integer> endIds, StreamingDecoder decoder,
            GrammarConstraint grammar, RequestStream stream, Consumer<String> onEnd) {
        this(id, request, maxTokens, endIds, decoder, grammar, null, stream, onEnd);
    }

    /**
     * @param grammar the grammar the output is held to, or null
     * @param thinking where the output stands against its thinking budget, or null for none
     */
    ActiveRequest(String id, EngineRequest request, int maxTokens, Set<Integer> endIds, StreamingDecoder decoder,
            GrammarConstraint grammar, ThinkingBudgetState thinking, RequestStream stream, Consumer<String> onEnd) {
        this.grammar = grammar;
        this.thinking = thinking;
        this.onEnd = onEnd;
        this.id = id;
        this.request = request;
        this.stream = stream;
        this.maxTokens = maxTokens;
        this.endIds = request.ignoreEndOfSequence() ? Set.of() : endIds;
        this.sampler = new Sampler(request.sampling(), this.endIds);
        this.history = new TokenHistory(request.promptTokens());
        this.restrictions = TokenRestrictions.of(request.sampling());
        int[] biasIds = request.sampling().logitBias().keySet().stream().mapToInt(Integer::intValue).toArray();
        float[] biases = new float[biasIds.length];
        for (int i = 0; i < biasIds.length; i++) {
            biases[i] = request.sampling().logitBias().get(biasIds[i]);
        }
        this.logitBias = new DrawBias(biasIds, biases);
        this.decoder = decoder;
        this.stops = new StopMatcher(request.sampling().stopStrings(),
                request.sampling().includeStopStringInOutput());
        this.submittedNanos = System.nanoTime();
    }

    String id() {
        return id;
    }

    EngineRequest request() {
        return request;
    }

    int promptLength() {
        return request.promptLength();
    }

    int generatedCount() {
        return generatedCount;
    }

    /** Most tokens this request generates: max_tokens, or what the context window leaves. */
    int maxTokens() {
        return maxTokens;
    }

    /** The token generated last: what the model sees next. */
    int lastToken() {
        if (generatedCount == 0) {
            throw new IllegalStateException(id + " has generated no token yet");
        }
        return generated[generatedCount - 1];
    }

    /** Prompt then generated tokens: what the model must have seen before the next sample. */
    int tokenAt(int position) {
        int prompt = request.promptLength();
        if (position < prompt) {
            return request.promptToken(position);
        }
        // A step queued before the request's end was known fed the end-of-sequence id on (it is not
        // among the generated tokens): the cache holds it.
        return position - prompt == generatedCount && endToken >= 0 ? endToken : generated[position - prompt];
    }

    /** False when the next token is this request's last by max_tokens. */
    boolean mayContinue() {
        return generatedCount + 1 < maxTokens;
    }

    /** The prompt and the generated tokens so far. */
    int[] allTokens() {
        int prompt = request.promptLength();
        int[] all = Arrays.copyOf(request.promptTokens(), prompt + generatedCount);
        System.arraycopy(generated, 0, all, prompt, generatedCount);
        return all;
    }

    boolean wantsPromptLogprobs() {
        return request.promptLogprobs() >= 0;
    }

    boolean isDone() {
        return done;
    }

    boolean cancelRequested() {
        return cancelRequested;
    }

    void requestCancel() {
        cancelRequested = true;
    }

    void addPath(String path) {
        paths.add(path);
    }

    void setCachedPromptTokens(int tokens) {
        cachedPromptTokens = tokens;
    }

    void markScheduled() {
        if (scheduledNanos == 0) {
            scheduledNanos = System.nanoTime();
        }
    }

    /**
     * Logits of prompt positions [first, first + rows) ([rows, vocab] from {@code logits}): the
     * logprob each gives the next prompt token, sent as one event once the prompt is done.
     */
    void acceptPromptLogits(int first, float[] logits, int rows, int vocab) {
        int top = request.promptLogprobs();
        acceptPromptRows(first, rows, (r, next) -> {
            float[] distribution = Sampler.logSoftmax(Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab));
            return new EngineEvent.PositionLogprobs(new TokenLogprob(next, distribution[next]),
                    top > 0 ? Sampler.topLogprobs(distribution, top) : List.of(), Sampler.rank(distribution, next));
        });
    }

    /** Each prompt row's logprobs, as made from row r and the prompt token after it. */
    @FunctionalInterface
    private interface PromptRow {
        EngineEvent.PositionLogprobs logprobs(int row, int next);
    }

    /**
     * Records rows [first, first + rows) of the prompt: each position with a prompt token after it
     * not recorded yet (a preempted request recomputes positions it has).
     */
    private void acceptPromptRows(int first, int rows, PromptRow row) {
        for (int r = 0; r < rows; r++) {
            int position = first + r;
            if (position + 1 >= request.promptLength()) {
                break;
            }
            if (position < promptLogprobs.size()) {
                continue; // recomputed after a preemption: already recorded
            }
            promptLogprobs.add(row.logprobs(r, request.promptToken(position + 1)));
        }
    }

    /**
     * What a backend scores prompt rows [first, first + rows) for ({@link Batch.PromptScoring}): the
     * top count, and each row's next prompt token (-1 past the prompt's last).
     */
    Batch.PromptScoring promptScoring(int first, int rows) {
        int[] tokens = new int[rows];
        for (int r = 0; r < rows; r++) {
            int position = first + r;
            tokens[r] = position + 1 < request.promptLength() ? request.promptToken(position + 1) : -1;
        }
        return new Batch.PromptScoring(Math.max(0, request.promptLogprobs()), tokens);
    }

    /** As {@link #acceptPromptLogits}, for rows a backend scored ({@link #promptScoring}). */
    void acceptScoredPromptRows(int first, List<Batch.ScoredRow> rows) {
        int top = request.promptLogprobs();
        acceptPromptRows(first, rows.size(), (r, next) -> {
            Batch.ScoredRow row = rows.get(r);
            return new EngineEvent.PositionLogprobs(new TokenLogprob(next, row.logprob()),
                    listed(row.topIds(), row.topLogprobs(), top), row.rank());
        });
    }

    /** The first {@code most} (at most) of a backend's top tokens, as logprobs. */
    private static List<TokenLogprob> listed(int[] ids, float[] logprobs, int most) {
        int count = Math.min(most, ids.length);
        List<TokenLogprob> top = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            top.add(new TokenLogprob(ids[i], logprobs[i]));
        }
        return top;
    }

    /**
     * The prompt's logprobs computed in one piece elsewhere (the sharded scorer): scores.logprobs()[i]
     * belongs to prompt token i, scores.topLogprobs().get(i) to the distribution after it.
     */
    void acceptPromptScores(ScoreResult scores) {
        int top = request.promptLogprobs();
        for (int position = promptLogprobs.size(); position + 1 < request.promptLength(); position++) {
            int next = request.promptToken(position + 1);
            promptLogprobs.add(new EngineEvent.PositionLogprobs(new TokenLogprob(next, scores.logprobs()[position + 1]),
                    top > 0 ? scores.topLogprobs().get(position) : List.of(), scores.ranks()[position + 1]));
        }
    }

    /**
     * True when the next token is all this request needs from a step and it is the argmax of the
     * model's own logits: greedy, no logit bias, no penalties, no logprobs, min_tokens reached. A
     * backend may then pick it on the device ({@link #acceptNextToken}).
     */
    boolean needsOnlyGreedyToken() {
        return request.sampling().isGreedy() && request.sampling().logitBias().isEmpty() && restrictions.isEmpty()
                && generatedCount >= request.sampling().minTokens() && needsOnlyItsToken();
    }

    /** No logprobs, and a draw that can be made ahead (see {@link #drawsWithoutHistory}). */
    private boolean needsOnlyItsToken() {
        return request.logprobs() < 0 && drawsWithoutHistory();
    }

    /**
     * No penalties (whose lists hold the generated tokens), no grammar (whose allowed tokens depend on
     * the token before), no bad word of several tokens (the same), no thinking budget (whose end is
     * forced after the tokens it counts), and a token to make.
     */
    private boolean drawsWithoutHistory() {
        SamplingParams sampling = request.sampling();
        return sampling.repetitionPenalty() == 1 && sampling.presencePenalty() == 0 && sampling.frequencyPenalty() == 0
                && grammar == null && !restrictions.dependsOnHistory() && thinking == null && maxTokens > 0;
    }

    /**
     * For a request whose token is not the plain argmax (sampled, or greedy with a bias, penalties,
     * a grammar or logprobs: a draw at temperature 0): what a backend needs to draw the next token
     * itself, with the uniform number this request's sampler would use (kept, so that logits coming
     * back instead are drawn with the same number), the grammar's allowed tokens and the logprobs
     * wanted; null when the request needs its logits (it wants logprobs and
     * {@code logprobsDrawn}, whether the backend computes them with a draw, is false).
     */
    Batch.Draw nextDraw(boolean logprobsDrawn) {
        SamplingParams sampling = request.sampling();
        if (needsOnlyGreedyToken() || (request.logprobs() >= 0 && !logprobsDrawn) || maxTokens == 0) {
            return null;
        }
        if (Double.isNaN(pendingUniform)) {
            pendingUniform = sampler.nextUniform();
        }
        int[] seen = new int[0];
        if (sampling.repetitionPenalty() != 1) {
            IntStream.Builder ids = IntStream.builder();
            history.forEachSeen(ids::add);
            seen = ids.build().toArray();
        }
        List<int[]> counts = new ArrayList<>();
        if (sampling.presencePenalty() != 0 || sampling.frequencyPenalty() != 0) {
            history.forEachOutputCount((id, count) -> counts.add(new int[] {id, count}));
        }
        int[] countIds = new int[counts.size()];
        float[] penalties = new float[counts.size()];
        for (int i = 0; i < countIds.length; i++) {
            countIds[i] = counts.get(i)[0];
            penalties[i] = (float) (sampling.presencePenalty() + sampling.frequencyPenalty() * counts.get(i)[1]);
        }
        DrawBias bias = biasAt(generatedCount, restrictions.banned(generated, generatedCount));
        return new Batch.Draw(sampling.temperature(), sampling.topK(), sampling.topP(), sampling.minP(),
                (float) sampling.repetitionPenalty(), seen, countIds, penalties, pendingUniform, bias.ids(),
                bias.values(), allowedBits(), request.logprobs());
    }

    /**
     * The tokens that may come next ({@link TokenBits}): those the grammar allows here, allowed_token_ids
     * lists and a spent thinking budget forces; null when all allow every token.
     */
    private int[] allowedBits() {
        int[] bits = TokenBits.intersect(grammar == null ? null : grammar.allowedBits(endIds), restrictions.allowedBits());
        return thinking == null ? bits : TokenBits.intersect(bits, thinking.allowedBits());
    }

    /**
     * True when the output is held to a grammar not finished yet with something to walk: where
     * {@code token} leads, or with -1 its present state where that is not walked yet.
     */
    boolean hasGrammarToWalk(int token) {
        return grammar != null && !done && !grammar.done() && (token >= 0 || !grammar.walked());
    }

    /**
     * Walks the grammar's allowed tokens at its present state, or, with {@code token} 0 or more, where
     * taking that token leads, so that the step thread then finds them walked (TokenMasks keeps them);
     * from any thread, while no other touches this request. A grammar that allows no token there walks
     * to no bits, which the step thread reports ({@link #noTokenLeft}).
     */
    void walkGrammar(int token) {
        if (token >= 0) {
            grammar.walkAfter(token);
        } else {
            grammar.allowedBits(endIds);
        }
    }

    /**
     * Null when some token may come next; else why none may: the request's own constraints
     * (allowed_token_ids, the output's grammar, bad_words, min_tokens holding back the end) leave no
     * token, so no draw can be made. The message leads with the parameter to change.
     */
    String noTokenLeft() {
        int[] bits = allowedBits();
        if (bits == null) {
            return null; // bad words and held-back ends forbid a few ids of a whole vocabulary
        }
        int[] banned = restrictions.banned(generated, generatedCount);
        int[] heldBack = generatedCount >= request.sampling().minTokens() ? new int[0] : sampler.heldBack();
        boolean bansUsed = false;
        boolean holdUsed = false;
        for (int word = 0; word < bits.length; word++) {
            for (int rest = bits[word]; rest != 0; rest &= rest - 1) {
                int id = word * 32 + Integer.numberOfTrailingZeros(rest);
                boolean isBanned = Arrays.stream(banned).anyMatch(b -> b == id);
                boolean isHeld = Arrays.stream(heldBack).anyMatch(h -> h == id);
                if (!isBanned && !isHeld) {
                    return null;
                }
                bansUsed |= isBanned;
                holdUsed |= isHeld;
            }
        }
        List<String> causes = new ArrayList<>();
        if (restrictions.allowedBits() != null) {
            causes.add("allowed_token_ids");
        }
        if (bansUsed) {
            causes.add("bad_words");
        }
        if (holdUsed) {
            causes.add("min_tokens (holding back the end of sequence)");
        }
        boolean forcing = thinking != null && thinking.forcing();
        if (forcing) {
            causes.add("thinking_token_budget (forcing the reasoning's end)");
        }
        if (grammar != null) {
            causes.add("the output's grammar (response_format, tools or guided decoding)");
        }
        String lead = restrictions.allowedBits() != null ? "allowed_token_ids" : bansUsed ? "bad_words"
                : holdUsed ? "min_tokens" : forcing ? "thinking_token_budget" : "response_format";
        String where = generatedCount == 0 ? "first" : "after " + generatedCount + " generated token" + (generatedCount == 1 ? "" : "s");
        String together = causes.size() == 1 ? causes.getFirst()
                : String.join(", ", causes.subList(0, causes.size() - 1)) + " and " + causes.getLast() + " together";
        return lead + ": no token is left to generate " + where + "; " + together + (causes.size() == 1 ? " allows"
                : " allow") + " none";
    }

    private EngineEvent.PositionLogprobs positionLogprobs(int token, float[] distribution) {
        return new EngineEvent.PositionLogprobs(new TokenLogprob(token, distribution[token]),
                request.logprobs() > 0 ? Sampler.topLogprobs(distribution, request.logprobs()) : List.of());
    }

    /** The logprobs the backend computed with the token it drew (its top list at most as long as asked). */
    private EngineEvent.PositionLogprobs positionLogprobs(int token, Batch.DrawnLogprobs drawn) {
        if (drawn == null) {
            throw new IllegalStateException(id + ": the backend chose the token without the logprobs it was asked for");
        }
        return new EngineEvent.PositionLogprobs(new TokenLogprob(token, drawn.chosen()),
                listed(drawn.topIds(), drawn.topLogprobs(), request.logprobs()));
    }

    /** A draw's bias lists: distinct ids, and what is added to each one's logit. */
    private record DrawBias(int[] ids, float[] values) {
    }

    /**
     * The bias of a draw of the token at {@code index} (0 the first generated): the logit_bias, and
     * -infinity for the {@code banned} ids (bad words) and, while min_tokens holds them back, for the
     * end-of-sequence and stop ids (the sampler's {@link Sampler#heldBack()}).
     */
    private DrawBias biasAt(int index, int[] banned) {
        int[] heldBack = index >= request.sampling().minTokens() ? new int[0] : sampler.heldBack();
        if (heldBack.length == 0 && banned.length == 0) {
            return logitBias;
        }
        int[] forbidden = IntStream.concat(Arrays.stream(heldBack), Arrays.stream(banned)).distinct().sorted()
                .toArray();
        int[] ids = IntStream.concat(Arrays.stream(logitBias.ids()), Arrays.stream(forbidden)).distinct().sorted()
                .toArray();
        float[] values = new float[ids.length];
        for (int i = 0; i < ids.length; i++) {
            values[i] = Arrays.binarySearch(forbidden, ids[i]) >= 0 ? Float.NEGATIVE_INFINITY
                    : request.sampling().logitBias().get(ids[i]);
        }
        return new DrawBias(ids, values);
    }

    /**
     * True when a backend may draw this request's token after next before the next one is known:
     * drawn (see {@link #nextDraw}; with logprobs only where the backend computes them), no penalties
     * (their lists hold the generated tokens), no grammar.
     */
    boolean canDrawAhead() {
        return !needsOnlyGreedyToken() && drawsWithoutHistory();
    }

    /**
     * True when the request's next token can be drawn by a backend once the token before is known
     * ({@link Batch.Draw#LATER}): its draw depends on that token (a grammar, penalties, bad words of
     * several tokens) and is made by {@link #nextDraw} after it is accepted.
     */
    boolean canDrawLater() {
        return !needsOnlyGreedyToken() && maxTokens > 0;
    }

    /**
     * The draw of the token after the one {@link #nextDraw} handed out, with the uniform number the
     * sampler gives next (see {@link #canDrawAhead}); it becomes the pending draw once the token
     * before is accepted.
     */
    Batch.Draw drawAhead() {
        if (!canDrawAhead() || Double.isNaN(pendingUniform) || !Double.isNaN(aheadUniform)) {
            throw new IllegalStateException(id + ": no draw to follow");
        }
        aheadUniform = sampler.nextUniform();
        SamplingParams sampling = request.sampling();
        // Bad words here are single tokens (see drawsWithoutHistory): the same whatever comes before.
        DrawBias bias = biasAt(generatedCount + 1, restrictions.banned(generated, generatedCount));
        return new Batch.Draw(sampling.temperature(), sampling.topK(), sampling.topP(), sampling.minP(), 1f,
                new int[0], new int[0], new float[0], aheadUniform, bias.ids(), bias.values(), allowedBits(),
                request.logprobs());
    }

    /**
     * As {@link #acceptNextLogits}, for a token the backend picked (greedy, see {@link
     * #needsOnlyGreedyToken}, or drawn, see {@link #nextDraw}) with, where the request wants them, the
     * log-probabilities it computed.
     */
    boolean acceptNextToken(int token, Batch.DrawnLogprobs logprobs) {
        return accept(null, token, logprobs);
    }

    /**
     * The logits after the last token the model has seen: samples the next token, publishes it, and
     * says whether the request is finished (then the final event has been published too). With
     * max_tokens 0 nothing is sampled and {@code logits} may be null.
     */
    boolean acceptNextLogits(float[] logits) {
        return accept(logits, -1, null);
    }

    /** logits null: {@code chosen} was picked from them already, and {@code drawn} has its logprobs. */
    private boolean accept(float[] logits, int chosen, Batch.DrawnLogprobs drawn) {
        if (prefilledNanos == 0) {
            prefilledNanos = System.nanoTime();
            if (wantsPromptLogprobs()) {
                stream.publish(new EngineEvent.PromptLogprobs(promptLogprobs));
            }
        }
        if (maxTokens == 0) {
            return finish(FinishReason.LENGTH, null, null, "");
        }
        int token;
        float[] allowed = null;
        if (logits != null) {
            int[] bits = allowedBits();
            allowed = restrictions.ban(bits == null ? logits : TokenBits.masked(logits, bits), generated, generatedCount);
        }
        if (logits == null) {
            token = chosen;
        } else if (!Double.isNaN(pendingUniform)) {
            token = sampler.sample(allowed, history, pendingUniform);
        } else {
            token = sampler.sample(allowed, history);
        }
        pendingUniform = aheadUniform;
        aheadUniform = Double.NaN;
        if (firstTokenNanos == 0) {
            firstTokenNanos = System.nanoTime();
        }
        // The model's end-of-sequence token ends the request outside its output. A stop token id is
        // output like any token (text, logprob, usage) and then ends it, as vLLM does; where one id is
        // both, the end-of-sequence meaning wins, as in vLLM's check order.
        if (endIds.contains(token)) {
            endToken = token;
            return finish(FinishReason.STOP, null, null, releasedAtEnd());
        }
        EngineEvent.PositionLogprobs logprobs = null;
        if (request.logprobs() >= 0) {
            logprobs = logits != null ? positionLogprobs(token, Sampler.logSoftmax(logits)) : positionLogprobs(token, drawn);
        }
        if (generatedCount == generated.length) {
            generated = Arrays.copyOf(generated, 2 * generated.length);
        }
        generated[generatedCount++] = token;
        history.append(token);
        String text = "";
        String decoded = "";
        StopMatcher.Result released = null;
        if (decoder != null) {
            decoded = decoder.accept(token);
            if (thinking != null) {
                thinking.accept(decoded, decoder.midCharacter());
            }
            // vLLM's min_tokens: stop strings count only from the token after the first min_tokens.
            released = stops.accept(decoded, generatedCount > request.sampling().minTokens());
            text = released.text() == null ? "" : released.text();
        }
        stream.publish(new EngineEvent.Token(token, text, decoded, logprobs));
        if (released != null && released.stopped()) {
            return finish(FinishReason.STOP, released.stopString(), null, "");
        }
        // Before max_tokens: a stop token that is also the last token allowed ends with STOP and its
        // id, as an end-of-sequence token or a stop string there does.
        if (request.sampling().stopTokenIds().contains(token)) {
            return finish(FinishReason.STOP, null, token, releasedAtEnd());
        }
        if (grammar != null) {
            grammar.accept(token);
            if (grammar.done()) {
                return finish(FinishReason.STOP, null, null, releasedAtEnd());
            }
        }
        if (generatedCount >= maxTokens) {
            return finish(FinishReason.LENGTH, null, null, releasedAtEnd());
        }
        String noToken = noTokenLeft();
        if (noToken != null) {
            fail(EngineEvent.Failed.Reason.NO_TOKEN_LEFT, noToken);
            return true;
        }
        return false;
    }

    /** Text still held back by the decoder or the stop matcher when generation ends. */
    private String releasedAtEnd() {
        if (decoder == null || stops.stopped()) {
            return "";
        }
        StopMatcher.Result last = stops.accept(decoder.flush());
        StringBuilder text = new StringBuilder(last.text() == null ? "" : last.text());
        if (!last.stopped()) {
            text.append(stops.flush());
        }
        return text.toString();
    }

    private boolean finish(FinishReason reason, String stopString, Integer stopTokenId, String text) {
        done = true;
        long now = System.nanoTime();
        long scheduled = scheduledNanos == 0 ? now : scheduledNanos;
        long prefilled = prefilledNanos == 0 ? now : prefilledNanos;
        RequestTimings timings = new RequestTimings(millis(submittedNanos, scheduled), millis(scheduled, prefilled),
                millis(prefilled, now), firstTokenNanos == 0 ? 0 : millis(submittedNanos, firstTokenNanos),
                request.promptLength() - cachedPromptTokens, generatedCount);
        EngineEvent.Usage usage = new EngineEvent.Usage(request.promptLength(), generatedCount, cachedPromptTokens);
        onEnd.accept(id);
        stream.publish(new EngineEvent.Finished(text, reason, stopString, stopTokenId, usage, timings,
                List.copyOf(paths)));
        return true;
    }

    /** Ends the request without a result (cancelled, rejected, or an engine error). */
    void fail(EngineEvent.Failed.Reason reason, String message) {
        if (!done) {
            done = true;
            onEnd.accept(id);
            stream.publish(new EngineEvent.Failed(reason, message));
        }
    }

    private static double millis(long from, long to) {
        return (to - from) / 1e6;
    }
}
