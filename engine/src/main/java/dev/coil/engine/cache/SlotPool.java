package dev.coil.engine.cache;

import java.util.ArrayDeque;

/** Bookkeeping of the Mamba state slots: which of {@code total} slots are free. */
public final class SlotPool {

    private final int total;
    private final ArrayDeque<Integer> free = new ArrayDeque<>();

    public SlotPool(int total) {
        this.total = total;
        for (int slot = 0; slot < total; slot++) {
            free.add(slot);
        }
    }

    public int total() {
        return total;
    }

    public int free() {
        return free.size();
    }

    public int inUse() {
        return total - free.size();
    }

    /** A free slot, or -1. */
    public int acquire() {
        Integer slot = free.poll();
        return slot == null ? -1 : slot;
    }

    public void release(int slot) {
        if (slot < 0 || slot >= total || free.contains(slot)) {
            throw new IllegalStateException("slot " + slot + " is not in use");
        }
        free.push(slot);
    }
}
