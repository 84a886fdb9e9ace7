package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * {@link Scorer}'s result through a serving {@link Engine}, for backends that only serve through it
 * (the GPU): one request with prompt logprobs, plus one generated token whose logprobs give the
 * distribution after the prompt's last token.
 */
public final class EngineScorer {

    private final Engine engine;

    public EngineScorer(Engine engine) {
        this.engine = engine;
    }

    public ScoreResult score(int[] ids, int topK) throws InterruptedException {
        RequestStream stream = engine.submit(new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(1), true,
                topK, topK));
        float[] logprobs = new float[ids.length];
        Arrays.fill(logprobs, Float.NaN);
        int[] ranks = new int[ids.length];
        List<List<TokenLogprob>> top = new ArrayList<>();
        while (true) {
            switch (stream.next()) {
                case EngineEvent.PromptLogprobs prompt -> {
                    for (int p = 0; p < prompt.positions().size(); p++) {
                        logprobs[p + 1] = prompt.positions().get(p).chosen().logprob();
                        ranks[p + 1] = prompt.positions().get(p).rank();
                        top.add(topK > 0 ? prompt.positions().get(p).top() : List.of());
                    }
                }
                case EngineEvent.Token token -> top.add(topK > 0 ? token.logprobs().top() : List.of());
                case EngineEvent.Finished finished -> {
                    return new ScoreResult(ids.clone(), logprobs, ranks, top);
                }
                case EngineEvent.Failed failed -> throw new IllegalStateException(
                        "scoring failed (" + failed.reason() + "): " + failed.message());
            }
        }
    }
}
