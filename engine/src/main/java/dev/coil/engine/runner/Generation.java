package dev.coil.engine.runner;

/** The outcome of one generation: the generated ids (stop tokens excluded), their text, why it ended, timings. */
public record Generation(int[] tokenIds, String text, FinishReason finishReason, Timings timings) {
}
