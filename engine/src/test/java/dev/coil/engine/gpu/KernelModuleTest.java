package dev.coil.engine.gpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/** The kernel image as the jar carries it, and the failures a machine without CUDA meets. No GPU needed. */
class KernelModuleTest {

    @Test
    void aJarBuiltWithoutNvccSaysSo() {
        assertThatThrownBy(() -> KernelModule.image(getClass().getClassLoader(), "coil/cuda/absent.fatbin"))
                .isInstanceOf(CudaException.class)
                .hasMessageStartingWith("the GPU kernels were not built into this jar: coil/cuda/absent.fatbin is missing");
    }

    @Test
    void theBuiltImageIsAFatbin() {
        assumeTrue(KernelModule.isBuilt(), "built without nvcc: no kernel image to check");

        byte[] image = KernelModule.image(getClass().getClassLoader(), KernelModule.RESOURCE);

        // The fatbin container's magic number, 0xBA55ED50, little-endian.
        assertThat(image).startsWith((byte) 0x50, (byte) 0xED, (byte) 0x55, (byte) 0xBA);
    }

    @Test
    void openingADeviceEitherWorksOrSaysNoDeviceWasFound() {
        try {
            int count = CudaDevice.count();
            assertThat(count).isPositive();
        } catch (CudaException e) {
            assertThat(e).hasMessageStartingWith("no CUDA device found");
        }
    }
}
