package dev.coil.engine.runner;

/**
 * Where one served request's time went, in milliseconds from submit.
 *
 * @param queueMillis      submit until its first scheduled step
 * @param prefillMillis    first scheduled step until the prompt's last chunk was computed
 * @param decodeMillis     from then until the end
 * @param firstTokenMillis submit until the first generated token was sampled (time to first token)
 * @param computedPromptTokens prompt tokens computed (those not served by the prefix cache)
 */
public record RequestTimings(double queueMillis, double prefillMillis, double decodeMillis, double firstTokenMillis,
        int computedPromptTokens, int generatedTokens) {

    public double prefillTokensPerSecond() {
        return prefillMillis > 0 ? computedPromptTokens * 1000.0 / prefillMillis : 0;
    }

    /** Tokens after the first (which comes out of the prefill) over the decode time. */
    public double decodeTokensPerSecond() {
        return decodeMillis > 0 && generatedTokens > 1 ? (generatedTokens - 1) * 1000.0 / decodeMillis : 0;
    }

    public double totalMillis() {
        return queueMillis + prefillMillis + decodeMillis;
    }
}
