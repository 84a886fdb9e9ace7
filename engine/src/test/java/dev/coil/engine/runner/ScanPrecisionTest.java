package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.gpu.kernels.SsdScanKernel;
import org.junit.jupiter.api.Test;

class ScanPrecisionTest {

    @Test
    void parsesBothNamesInAnyCaseAndMapsThemToTheKernels() {
        assertThat(ScanPrecision.parse("f32")).isEqualTo(ScanPrecision.F32);
        assertThat(ScanPrecision.parse(" TF32 ")).isEqualTo(ScanPrecision.TF32);
        assertThat(ScanPrecision.F32.kernelPrecision()).isEqualTo(SsdScanKernel.Precision.F32);
        assertThat(ScanPrecision.TF32.kernelPrecision()).isEqualTo(SsdScanKernel.Precision.TF32);
        assertThat(ScanPrecision.TF32).hasToString("tf32");
    }

    @Test
    void aBadNameIsRefusedNamingTheFlagAndBothValues() {
        assertThatThrownBy(() -> ScanPrecision.parse("bf16"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("--ssd-precision must be f32 or tf32; got 'bf16'");
        assertThatThrownBy(() -> ScanPrecision.parse(null)).isInstanceOf(IllegalArgumentException.class);
    }
}
