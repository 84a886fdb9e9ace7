package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The SSD scan's chunk for a prompt chunk (no GPU needed). */
class ScanChunkTest {

    @Test
    void aPromptChunkOfOneScanChunkIsPaddedToTheKernelsTileOnly() {
        assertThat(StepMamba.scanChunk(1, 256)).isEqualTo(64);
        assertThat(StepMamba.scanChunk(64, 256)).isEqualTo(64);
        assertThat(StepMamba.scanChunk(65, 256)).isEqualTo(128);
        assertThat(StepMamba.scanChunk(128, 256)).isEqualTo(128);
        assertThat(StepMamba.scanChunk(255, 256)).isEqualTo(256);
    }

    @Test
    void longerPromptChunksKeepTheModelsChunk() {
        assertThat(StepMamba.scanChunk(256, 256)).isEqualTo(256);
        assertThat(StepMamba.scanChunk(2048, 256)).isEqualTo(256);
        assertThat(StepMamba.scanChunk(300, 128)).isEqualTo(128);
    }

    @Test
    void neverExceedsTheModelsChunk() {
        for (int model : new int[] {1, 4, 16, 64, 100, 256}) {
            for (int tokens = 1; tokens <= 600; tokens++) {
                int chunk = StepMamba.scanChunk(tokens, model);
                assertThat(chunk).isBetween(1, model);
                assertThat(chunk >= Math.min(tokens, model)).as("tokens %d, model chunk %d", tokens, model).isTrue();
            }
        }
    }
}
