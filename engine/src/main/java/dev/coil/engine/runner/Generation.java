package dev.coil.engine.runner;

/**
 * The outcome of one generation: the generated ids (a stop token id that ended it included, an
 * end-of-sequence token not), their text, why it ended, timings.
 */
public record Generation(int[] tokenIds, String text, FinishReason finishReason, Timings timings) {
}
