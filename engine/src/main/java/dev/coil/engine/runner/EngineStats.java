package dev.coil.engine.runner;

/**
 * A snapshot of the engine's load and cache, for /metrics and the playground's cache panel.
 * Gauges describe now; counters are totals since start.
 *
 * @param runningRequests  requests scheduled in the last step (prefilling or decoding)
 * @param waitingRequests  requests queued, preempted ones included
 * @param kvBlocksTotal    KV blocks in the pool (0 for a model without attention)
 * @param kvBlocksInUse    blocks referenced by a request (cached but unreferenced blocks are free)
 * @param stateSlotsTotal  Mamba state slots (0 for a model without Mamba layers)
 * @param stateSlotsInUse  slots held by a request
 * @param prefixQueries    prefix-cache lookups (one per admitted request that may use the cache)
 * @param prefixHits       lookups that reused at least one token
 * @param prefixHitTokens  prompt tokens reused instead of computed
 * @param prefixQueryTokens prompt tokens looked up
 * @param preemptions      requests preempted for lack of blocks (each later recomputed)
 * @param stateSnapshots   Mamba state snapshots held by the prefix cache
 */
public record EngineStats(int runningRequests, int waitingRequests, int kvBlocksTotal, int kvBlocksInUse,
        int stateSlotsTotal, int stateSlotsInUse, long prefixQueries, long prefixHits, long prefixHitTokens,
        long prefixQueryTokens, long preemptions, long stateSnapshots) {
}
