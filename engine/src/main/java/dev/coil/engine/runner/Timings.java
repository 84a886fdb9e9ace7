package dev.coil.engine.runner;

/** Where a request's time went: prefill of the prompt, then decode of each generated token. */
public record Timings(int promptTokens, double prefillMillis, int generatedTokens, double decodeMillis) {

    public double prefillTokensPerSecond() {
        return prefillMillis > 0 ? promptTokens * 1000.0 / prefillMillis : 0;
    }

    /** Decode rate over the tokens after the first (the first comes out of the prefill's logits). */
    public double decodeTokensPerSecond() {
        return decodeMillis > 0 ? generatedTokens * 1000.0 / decodeMillis : 0;
    }
}
