package dev.coil.engine.model;

/**
 * Which algorithm a forward call uses. PREFILL runs the chunked SSD scan (with HF's dt clamp) for
 * any number of tokens, so a prompt split into chunks computes exactly what one call computes;
 * DECODE runs the single-token SSM recurrence (no dt clamp, as HF's cached step).
 */
public enum Phase {
    PREFILL,
    DECODE
}
