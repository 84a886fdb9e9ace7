package dev.coil.engine.runner;

import dev.coil.engine.ops.Ops;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Ops that a test can hold between calls, so that what the step thread has done when the test
 * looks is known rather than raced: {@link #hold()} stops the step thread at its next op call,
 * {@link #advance()} lets exactly one call through and waits until the thread stops again,
 * {@link #release()} lets it run freely.
 */
final class SteppedOps {

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private boolean held;
    private long permits;
    private boolean waiting;
    private final Ops ops;

    SteppedOps(Ops delegate) {
        this.ops = (Ops) Proxy.newProxyInstance(Ops.class.getClassLoader(), new Class<?>[] {Ops.class},
                (proxy, method, arguments) -> {
                    if (method.getDeclaringClass() == Ops.class) {
                        awaitTurn();
                    }
                    try {
                        return method.invoke(delegate, arguments);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    Ops ops() {
        return ops;
    }

    private void awaitTurn() throws InterruptedException {
        lock.lock();
        try {
            while (held && permits == 0) {
                waiting = true;
                changed.signalAll();
                changed.await();
            }
            waiting = false;
            if (held) {
                permits--;
            }
        } finally {
            lock.unlock();
        }
    }

    /** From here on the step thread stops at each op call until {@link #advance()} or {@link #release()}. */
    void hold() {
        lock.lock();
        try {
            held = true;
            permits = 0;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Lets one op call through and returns once the step thread waits at the next one; false when
     * it did not come back to an op call within {@code timeoutMillis} (it ran out of work).
     */
    boolean advance(long timeoutMillis) throws InterruptedException {
        lock.lock();
        try {
            permits++;
            changed.signalAll();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
            while (!(waiting && permits == 0)) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                changed.awaitNanos(left);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Lets the step thread run freely again. */
    void release() {
        lock.lock();
        try {
            held = false;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }
}
