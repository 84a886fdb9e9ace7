package dev.coil.engine.gpu.blas;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** The token buckets whose products share one cuBLASLt algorithm (no GPU needed). */
class CublasLtBucketTest {

    @Test
    void smallCountsRoundUpToSixteens() {
        assertThat(CublasLt.bucket(1)).isEqualTo(16);
        assertThat(CublasLt.bucket(16)).isEqualTo(16);
        assertThat(CublasLt.bucket(17)).isEqualTo(32);
        assertThat(CublasLt.bucket(64)).isEqualTo(64);
    }

    @Test
    void largerCountsRoundUpToPowersOfTwoAndTheirMidpoints() {
        assertThat(CublasLt.bucket(65)).isEqualTo(96);
        assertThat(CublasLt.bucket(96)).isEqualTo(96);
        assertThat(CublasLt.bucket(97)).isEqualTo(128);
        assertThat(CublasLt.bucket(129)).isEqualTo(192);
        assertThat(CublasLt.bucket(2047)).isEqualTo(2048);
        assertThat(CublasLt.bucket(2048)).isEqualTo(2048);
        assertThat(CublasLt.bucket(2064)).isEqualTo(3072);
        assertThat(CublasLt.bucket(3073)).isEqualTo(4096);
    }

    @Test
    void everyCountLiesInItsBucketAndBucketsGrowByAtMostAHalf() {
        for (int n = 1; n <= 70_000; n++) {
            int bucket = CublasLt.bucket(n);
            assertThat(bucket).isGreaterThanOrEqualTo(n);
            if (n > 64) {
                assertThat((double) bucket / n).as("bucket of %d", n).isLessThan(1.5);
            }
            assertThat(CublasLt.bucket(bucket)).isEqualTo(bucket);
        }
        assertThat(CublasLt.bucket(Integer.MAX_VALUE)).isEqualTo(Integer.MAX_VALUE);
    }

    @Test
    void refusesCountsBelowOne() {
        assertThatThrownBy(() -> CublasLt.bucket(0)).isInstanceOf(IllegalArgumentException.class);
    }
}
