package dev.coil.engine.sched;

import java.util.List;

/**
 * What one engine step runs.
 *
 * @param chunks    per scheduled request, the positions to compute this step, running requests first
 * @param preempted requests pushed back to the waiting queue this step (their cache was released; they
 *                  are recomputed when readmitted)
 * @param rejected  requests that can never fit the cache; they are out of the scheduler
 */
public record StepPlan(List<Chunk> chunks, List<ScheduledRequest> preempted, List<ScheduledRequest> rejected) {

    /** Positions [start, start + count) of a request. */
    public record Chunk(ScheduledRequest request, int start, int count) {
        public int end() {
            return start + count;
        }

        /** True when this chunk reaches the request's last known token: the step samples the next one. */
        public boolean samples() {
            return end() == request.tokenCount();
        }
    }

    public boolean isEmpty() {
        return chunks.isEmpty();
    }

    public int tokens() {
        return chunks.stream().mapToInt(Chunk::count).sum();
    }
}
