package dev.coil.engine.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;

/**
 * Splits index ranges over a fixed set of worker threads (one per core by default). Work is cut
 * into at most {@code 4 × threads} contiguous ranges so that each task is large enough to amortise
 * scheduling and small enough to balance.
 */
public final class Parallel {

    /** Body of a parallel loop over [start, end). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int start, int end);
    }

    private final ForkJoinPool pool;
    private final int threads;

    public Parallel(int threads) {
        this.threads = Math.max(1, threads);
        this.pool = this.threads == 1 ? null : new ForkJoinPool(this.threads);
    }

    /** One worker per available core. */
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
        if (pool == null || pieces <= 1 || ForkJoinTask.inForkJoinPool()) {
            body.run(0, count);
            return;
        }
        ForkJoinTask<?>[] tasks = new ForkJoinTask<?>[pieces];
        for (int p = 0; p < pieces; p++) {
            int start = (int) ((long) count * p / pieces);
            int end = (int) ((long) count * (p + 1) / pieces);
            tasks[p] = new RecursiveAction() {
                @Override
                protected void compute() {
                    body.run(start, end);
                }
            };
        }
        pool.invoke(new RecursiveAction() {
            @Override
            protected void compute() {
                invokeAll(tasks);
            }
        });
    }
}
