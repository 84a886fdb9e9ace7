package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.model.BlockSpec;
import org.junit.jupiter.api.Test;

/**
 * Routed experts the GPU kernels cannot take (Nemotron-3-Super's 512 experts, 22 a token) are refused
 * when the weights load, with the block, its numbers, the limits and the way out named; no device needed.
 */
class GpuWeightsLimitsTest {

    private static BlockSpec.Experts experts(int count, int perToken, int groups) {
        return new BlockSpec.Experts("backbone.layers.1.mixer.", count, perToken, 64, BlockSpec.ExpertKind.SQUARED_RELU,
                BlockSpec.Router.sigmoid(groups, groups, true, 2.5f), 1024);
    }

    @Test
    void expertsWithinTheLimitsLoad() {
        assertThatCode(() -> GpuWeights.requireExpertsTheKernelsTake(experts(256, 16, 32), "model"))
                .doesNotThrowAnyException();
    }

    @Test
    void tooManyExpertsOrTooManyATokenOrTooManyGroupsAreRefusedAtLoad() {
        assertThatThrownBy(() -> GpuWeights.requireExpertsTheKernelsTake(experts(512, 22, 1), "super"))
                .isInstanceOf(CheckpointException.class).hasMessageContaining("super")
                .hasMessageContaining("backbone.layers.1.mixer.").hasMessageContaining("512 routed experts, 22 a token")
                .hasMessageContaining("at most 256 experts, 16 a token").hasMessageContaining("--devices cpu");
        assertThatThrownBy(() -> GpuWeights.requireExpertsTheKernelsTake(experts(64, 17, 1), "model"))
                .isInstanceOf(CheckpointException.class).hasMessageContaining("17 a token");
        assertThatThrownBy(() -> GpuWeights.requireExpertsTheKernelsTake(experts(128, 2, 64), "model"))
                .isInstanceOf(CheckpointException.class).hasMessageContaining("in 64 groups");
    }
}
