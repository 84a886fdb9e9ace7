package dev.coil.engine.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The Mamba state slots: each slot held by one sequence at a time, released once, and counted right. */
class SlotPoolTest {

    @Test
    void acquiresEverySlotOnceThenReportsNoneLeft() {
        SlotPool pool = new SlotPool(4);
        Set<Integer> acquired = new HashSet<>();
        for (int i = 0; i < 4; i++) {
            int slot = pool.acquire();
            assertThat(slot).isBetween(0, 3);
            acquired.add(slot);
            assertThat(pool.inUse()).isEqualTo(i + 1);
            assertThat(pool.free()).isEqualTo(3 - i);
        }
        assertThat(acquired).as("no slot handed out twice").hasSize(4);
        assertThat(pool.acquire()).isEqualTo(-1);
        assertThat(pool.acquire()).as("asking again changes nothing").isEqualTo(-1);
        assertThat(pool.inUse()).isEqualTo(4);

        pool.release(2);
        assertThat(pool.free()).isEqualTo(1);
        assertThat(pool.acquire()).as("the released slot is the one left").isEqualTo(2);
        assertThat(pool.acquire()).isEqualTo(-1);
    }

    @Test
    void aPoolOfNoSlotsHasNothingToAcquire() {
        SlotPool pool = new SlotPool(0);
        assertThat(pool.acquire()).isEqualTo(-1);
        assertThat(pool.total()).isZero();
        assertThat(pool.free()).isZero();
    }

    @Test
    void releasingASlotNotInUseFailsAndChangesNothing() {
        SlotPool pool = new SlotPool(3);
        int slot = pool.acquire();
        pool.release(slot);
        assertThatThrownBy(() -> pool.release(slot)).as("a double release").isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("slot " + slot);
        int neverAcquired = (slot + 1) % 3;
        assertThatThrownBy(() -> pool.release(neverAcquired)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> pool.release(-1)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> pool.release(3)).as("past the last slot").isInstanceOf(IllegalStateException.class);
        assertThat(pool.free()).isEqualTo(3);

        List<Integer> all = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            all.add(pool.acquire());
        }
        assertThat(all).as("the failed releases queued nothing twice").containsExactlyInAnyOrder(0, 1, 2);
        assertThat(pool.acquire()).isEqualTo(-1);
    }

    /** Random acquires and releases against the set of held slots the test keeps. */
    @Test
    void randomAcquiresAndReleasesNeverHandOutAHeldSlot() {
        Random random = new Random(21);
        SlotPool pool = new SlotPool(7);
        List<Integer> held = new ArrayList<>();
        for (int op = 0; op < 5000; op++) {
            if (random.nextInt(5) < 3) {
                int slot = pool.acquire();
                if (held.size() == 7) {
                    assertThat(slot).as("operation %d: all held", op).isEqualTo(-1);
                } else {
                    assertThat(slot).as("operation %d", op).isBetween(0, 6).isNotIn(held);
                    held.add(slot);
                }
            } else if (!held.isEmpty()) {
                pool.release(held.remove(random.nextInt(held.size())));
            }
            assertThat(pool.inUse()).as("operation %d", op).isEqualTo(held.size());
            assertThat(pool.free() + pool.inUse()).isEqualTo(pool.total());
        }
    }
}
