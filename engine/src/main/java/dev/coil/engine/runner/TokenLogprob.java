package dev.coil.engine.runner;

/**
 * A token and its log-probability under the model's distribution.
 *
 * @param id the token id
 * @param logprob natural log of its probability (&lt;= 0)
 */
public record TokenLogprob(int id, float logprob) {
}
