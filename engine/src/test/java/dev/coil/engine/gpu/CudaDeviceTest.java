package dev.coil.engine.gpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The device, its memory, copies, pinned buffers, events and the kernel module, on a real GPU. */
@GpuTest
class CudaDeviceTest {

    /** Every kernel the launchers use; a jar built from older sources would miss some. */
    private static final List<String> KERNELS = List.of("rms_norm_f32", "gated_rms_norm_f32", "rope_f32",
            "residual_add_f32", "silu_multiply_f32", "squared_relu_f32", "f32_to_bf16", "f32_to_f16", "embedding_bf16",
            "embedding_f16", "embedding_f32", "causal_conv1d_f32", "causal_conv1d_state_f32",
            "causal_conv1d_update_f32", "ssm_state_update_f32");

    @Test
    void opensAnAmpereOrNewerDeviceWithAllKernels() {
        CudaDevice device = GpuFixture.device();

        assertThat(device.name()).isNotBlank();
        assertThat(device.computeCapability()).isGreaterThanOrEqualTo(80);
        assertThat(device.multiprocessors()).isPositive();
        assertThat(device.freeMemory()).isPositive().isLessThanOrEqualTo(device.totalMemory());
        for (String name : KERNELS) {
            assertThat(device.kernels().kernel(name).name()).isEqualTo(name);
        }
    }

    @Test
    void anUnknownKernelOrDeviceIsASentence() {
        CudaDevice device = GpuFixture.device();
        int count = CudaDevice.count();

        assertThatThrownBy(() -> device.kernels().kernel("no_such_kernel"))
                .isInstanceOf(CudaException.class)
                .hasMessageStartingWith("kernel 'no_such_kernel' is not in coil/cuda/coil.fatbin");
        assertThatThrownBy(() -> CudaDevice.open(count))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("cuda:" + count + " does not exist: this machine has " + count);
    }

    @Test
    void copiesRoundTripThroughSlicesAndSegments() {
        Random random = new Random(1);
        float[] values = Parity.uniform(random, 100_003, -1, 1);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer buffer = scope.upload(values);
            float[] back = new float[values.length];
            buffer.copyTo(back);
            Parity.assertExact("device buffer round trip", back, values);

            float[] middle = new float[1000];
            buffer.floatSlice(500, 1000).copyTo(middle);
            for (int i = 0; i < middle.length; i++) {
                assertThat(middle[i]).isEqualTo(values[500 + i]);
            }

            DeviceBuffer fromSegments = scope.poisoned(2 * values.length);
            fromSegments.copyFrom(MemorySegment.ofArray(values));
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment nativeCopy = arena.allocate(4L * values.length, 16);
                MemorySegment.copy(values, 0, nativeCopy, ValueLayout.JAVA_FLOAT, 0, values.length);
                fromSegments.floatSlice(values.length, values.length).copyFrom(nativeCopy);
            }
            float[] twice = new float[2 * values.length];
            fromSegments.copyTo(twice);
            for (int i = 0; i < values.length; i++) {
                assertThat(twice[i]).isEqualTo(values[i]);
                assertThat(twice[values.length + i]).isEqualTo(values[i]);
            }
        }
    }

    @Test
    void pinnedBuffersCopyAsynchronouslyInStreamOrder() {
        CudaDevice device = GpuFixture.device();
        int count = 1 << 20;
        long bytes = 4L * count;
        float[] values = Parity.uniform(new Random(2), count, -1, 1);
        try (DeviceScope scope = GpuFixture.scope()) {
            PinnedBuffer source = scope.keep(device.allocatePinned(bytes));
            PinnedBuffer destination = scope.keep(device.allocatePinned(bytes));
            MemorySegment.copy(values, 0, source.segment(), ValueLayout.JAVA_FLOAT, 0, count);
            destination.segment().fill((byte) 0x7f);
            DeviceBuffer first = scope.poisoned(count);
            DeviceBuffer second = scope.poisoned(count);
            CudaEvent start = scope.keep(device.newEvent());
            CudaEvent end = scope.keep(device.newEvent());

            start.record(scope.stream());
            first.copyFromAsync(source, 0, 0, bytes, scope.stream());
            second.copyFromAsync(first, bytes, scope.stream());
            second.copyToAsync(destination, 0, 0, bytes, scope.stream());
            end.record(scope.stream());
            float millis = end.millisSince(start);

            float[] back = destination.segment().toArray(ValueLayout.JAVA_FLOAT);
            Parity.assertExact("pinned round trip", back, values);
            System.out.printf("[timing] 4 MiB host → device → host through pinned buffers: %.3f ms%n", millis);
        }
    }
}
