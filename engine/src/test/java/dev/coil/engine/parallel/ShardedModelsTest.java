package dev.coil.engine.parallel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.model.TestModels;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.ScoreResult;
import dev.coil.engine.runner.Scorer;
import org.junit.jupiter.api.Test;

/** What --devices and --context-parallel open, and which requests the result shards. */
class ShardedModelsTest {

    /** One sequence at a time: a second run or a score while a run is open fails at once, then works again. */
    @Test
    void aSecondSequenceWhileOneIsOpenIsRefusedNotQueued() {
        LoadedModel model = TestModels.load("bamba");
        int[] ids = ContextParallelScorerTest.prompt(9, model.config().vocabSize(), 2);
        try (ShardedModel sharded = ShardedModels.open(model, Devices.parse("cpu:2"), 2)) {
            try (ShardedRun run = sharded.newRun(ShardLayout.ZIGZAG)) {
                run.prefill(ids);
                assertThatThrownBy(() -> sharded.newRun(ShardLayout.ZIGZAG))
                        .isInstanceOf(IllegalStateException.class).hasMessageContaining("one sequence at a time");
                assertThatThrownBy(() -> sharded.score(ids, 0, ShardLayout.ZIGZAG))
                        .isInstanceOf(IllegalStateException.class).hasMessageContaining("one sequence at a time");
            }
            assertThat(sharded.score(ids, 0, ShardLayout.ZIGZAG).result().logprobs()).hasSize(ids.length);
            try (ShardedRun again = sharded.newRun(ShardLayout.CONTIGUOUS)) {
                assertThat(again.prefill(ids)).hasSize(model.config().vocabSize());
            }
        }
    }

    @Test
    void cpuDevicesOpenVirtualDevicesThatScoreAsTheScorerDoes() {
        LoadedModel model = TestModels.load("bamba");
        int[] ids = ContextParallelScorerTest.prompt(21, model.config().vocabSize(), 5);
        try (ShardedModel sharded = ShardedModels.open(model, Devices.parse("cpu:3"), 3)) {
            assertThat(sharded.deviceCount()).isEqualTo(3);
            assertThat(sharded.path()).isEqualTo("ring x3");
            assertThat(sharded.positionsPerDevice()).isEqualTo(Long.MAX_VALUE);
            RingScore score = sharded.score(ids, 2, ShardLayout.CONTIGUOUS);
            // The one-device scorer, not the sharded one that CpuShardedModel itself runs.
            ScoreResult expected = new Scorer(model, ContextParallelScorerTest.ONE_DEVICE).score(ids, 2);
            assertThat(score.sharding().layout()).isEqualTo(ShardLayout.CONTIGUOUS);
            assertThat(score.sharding().devices()).isEqualTo(3);
            ContextParallelScorerTest.assertSameScores(score.result(), expected, "cpu:3");
        }
    }

    @Test
    void fewerThanTwoDevicesAndCudaDevicesAreRefusedNamingTheFlag() {
        LoadedModel model = TestModels.load("bamba");
        assertThatThrownBy(() -> ShardedModels.open(model, Devices.parse("cpu"), 2))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least two devices")
                .hasMessageContaining("--devices cpu");
        assertThatThrownBy(() -> ShardedModels.open(model, Devices.parse("cuda:0,cuda:1"), 2))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("context parallelism over CUDA devices (--devices cuda:0,cuda:1)");
        assertThatThrownBy(() -> ShardedModels.open(model, Devices.auto(), 2))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("resolved");
    }

    @Test
    void modeDecidesWhichRequestsShard() {
        LoadedModel model = TestModels.load("bamba");
        assertThat(ShardedModels.contextParallelism(model, Devices.parse("cpu:2"), 2, ContextParallelMode.NEVER,
                ShardLayout.ZIGZAG).model()).isNull();
        assertThat(ShardedModels.contextParallelism(model, Devices.parse("cpu"), 2, ContextParallelMode.ALWAYS,
                ShardLayout.ZIGZAG).shards(10, true)).isFalse();
        // CUDA's refusal is not reached when nothing would be sharded.
        assertThat(ShardedModels.contextParallelism(model, Devices.parse("cuda:0,cuda:1"), 2,
                ContextParallelMode.NEVER, ShardLayout.ZIGZAG).shards(10, false)).isFalse();

        ContextParallelism always = ShardedModels.contextParallelism(model, Devices.parse("cpu:2"), 2,
                ContextParallelMode.ALWAYS, ShardLayout.ZIGZAG);
        ContextParallelism auto = new ContextParallelism(always.model(), ContextParallelMode.AUTO, ShardLayout.ZIGZAG);
        try (ShardedModel sharded = always.model()) {
            assertThat(always.shards(1, true)).isTrue();
            assertThat(always.path()).isEqualTo("ring x2");
            assertThat(always).hasToString("always, ring x2, zigzag shards");
            assertThat(auto.shards(1L << 40, true)).as("virtual devices hold any context").isFalse();
            assertThat(auto.shards(10, false)).as("past the one-device cache").isTrue();
        }
    }
}
