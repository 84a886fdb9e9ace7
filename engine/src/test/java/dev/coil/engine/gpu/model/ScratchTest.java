package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import org.junit.jupiter.api.Test;

/** Scratch buffers grow by a factor, so that a slowly growing length regrows them rarely. */
@GpuTest
class ScratchTest {

    @Test
    void aBufferGrowsByHalfAtLeastAndKeepsItsContentsUntilItGrows() {
        try (Scratch scratch = new Scratch(GpuFixture.device())) {
            DeviceBuffer first = scratch.bytes("keys", 4000);
            assertThat(first.bytes()).isEqualTo(4000);
            assertThat(scratch.allocations()).isEqualTo(1);
            first.copyFrom(new float[] {1, 2, 3});

            // Longer, but within half again as long: one allocation of 6000 bytes serves both.
            DeviceBuffer longer = scratch.bytes("keys", 4400);
            assertThat(longer.bytes()).isEqualTo(4400);
            assertThat(scratch.allocations()).isEqualTo(2);
            longer.copyFrom(new float[] {4, 5, 6});
            DeviceBuffer within = scratch.bytes("keys", 6000);
            assertThat(scratch.allocations()).as("6000 bytes fit the grown buffer").isEqualTo(2);
            assertThat(within.address()).isEqualTo(longer.address());
            float[] kept = new float[3];
            within.copyTo(kept);
            assertThat(kept).containsExactly(4, 5, 6);

            // Far longer: the exact size, which is more than half again as long; then a little longer
            // grows it to 60000 bytes, which the next requests fit.
            DeviceBuffer far = scratch.bytes("keys", 40000);
            assertThat(far.bytes()).isEqualTo(40000);
            assertThat(scratch.allocations()).isEqualTo(3);
            DeviceBuffer grown = scratch.bytes("keys", 41000);
            assertThat(scratch.allocations()).isEqualTo(4);
            assertThat(scratch.bytes("keys", 60000).address()).isEqualTo(grown.address());
            assertThat(scratch.allocations()).isEqualTo(4);

            // Another name is a buffer of its own, allocated at its exact size.
            assertThat(scratch.bytes("values", 4000).address()).isNotEqualTo(grown.address());
            assertThat(scratch.allocations()).isEqualTo(5);
        }
    }
}
