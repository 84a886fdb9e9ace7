package dev.coil.engine.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Splits index ranges over a fixed set of threads: the calling thread plus {@code threads - 1}
 * workers that live as long as this object. A decode step calls it a few hundred times for
 * matrices that take ~100 µs each, so the hand-off must cost about a microsecond, not the ~20 µs
 * of a fork-join round trip: workers spin briefly after each job (the next one usually follows
 * within microseconds) and only then park.
 *
 * <p>Work is cut into at most {@code 4 × threads} contiguous pieces, claimed from a shared counter,
 * so faster threads take more. One job runs at a time; a call made from inside a job's body runs
 * serially on the calling thread.
 */
public final class Parallel {

    /** Body of a parallel loop over [start, end). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int start, int end);
    }

    /** How long an idle worker keeps polling for the next job before parking. */
    private static final long SPIN_NANOS = 200_000;

    private static final ThreadLocal<Boolean> INSIDE_JOB = ThreadLocal.withInitial(() -> false);

    private final int threads;
    private final ReentrantLock submitLock = new ReentrantLock();
    private final AtomicReference<Job> current = new AtomicReference<>();
    private final Thread[] workers;

    public Parallel(int threads) {
        this.threads = Math.max(1, threads);
        this.workers = new Thread[this.threads - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = Thread.ofPlatform().daemon().name("coil-cpu-" + (i + 1)).start(this::workLoop);
        }
    }

    /** One thread per available core. */
    public static Parallel allCores() {
        return new Parallel(Runtime.getRuntime().availableProcessors());
    }

    public int threads() {
        return threads;
    }

    /** Runs body over [0, count) cut into ranges of at least {@code minGrain} indices. */
    public void forRange(int count, int minGrain, RangeBody body) {
        if (count <= 0) {
            return;
        }
        int pieces = Math.min(threads * 4, Math.max(1, count / Math.max(1, minGrain)));
        if (threads == 1 || pieces <= 1 || INSIDE_JOB.get()) {
            body.run(0, count);
            return;
        }
        submitLock.lock();
        INSIDE_JOB.set(true);
        try {
            Job job = new Job(body, count, pieces);
            current.set(job);
            for (Thread worker : workers) {
                LockSupport.unpark(worker);
            }
            job.work();
            while (job.remaining.get() > 0) {
                Thread.onSpinWait();
            }
            current.compareAndSet(job, null);
            job.rethrow();
        } finally {
            INSIDE_JOB.set(false);
            submitLock.unlock();
        }
    }

    private void workLoop() {
        INSIDE_JOB.set(true);
        Job last = null;
        while (true) {
            Job job = current.get();
            if (job != null && job != last) {
                job.work();
                last = job;
                continue;
            }
            long idleSince = System.nanoTime();
            while ((job = current.get()) == null || job == last) {
                if (System.nanoTime() - idleSince < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.parkNanos(this, 50_000_000);
                }
            }
        }
    }

    /** One forRange call: pieces are claimed from {@code next}; {@code remaining} counts unfinished ones. */
    private static final class Job {
        private final RangeBody body;
        private final int count;
        private final int pieces;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger remaining;
        private volatile Throwable failure;

        Job(RangeBody body, int count, int pieces) {
            this.body = body;
            this.count = count;
            this.pieces = pieces;
            this.remaining = new AtomicInteger(pieces);
        }

        void work() {
            int piece;
            while ((piece = next.getAndIncrement()) < pieces) {
                try {
                    if (failure == null) {
                        int start = (int) ((long) count * piece / pieces);
                        int end = (int) ((long) count * (piece + 1) / pieces);
                        body.run(start, end);
                    }
                } catch (Throwable t) {
                    failure = t;
                } finally {
                    remaining.decrementAndGet();
                }
            }
        }

        void rethrow() {
            Throwable t = failure;
            if (t instanceof RuntimeException runtime) {
                throw runtime;
            }
            if (t instanceof Error error) {
                throw error;
            }
        }
    }
}
