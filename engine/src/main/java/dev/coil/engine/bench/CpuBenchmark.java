package dev.coil.engine.bench;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.MemoryBandwidth;
import dev.coil.engine.load.Checkpoint;
import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ExpertTensors;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.model.Phase;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.runner.Generator;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.TokenHistory;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Prefill and decode speed on the CPU, beside the decode floor: the bytes of weights one decoded
 * token must read, over the machine's measured memory read bandwidth.
 */
public final class CpuBenchmark {

    /**
     * One prompt length: prefill rate, then greedy decode time per token, and the floor from the
     * bandwidth measured just before that decode (this machine's bandwidth drifts between runs).
     */
    public record Row(int promptTokens, double prefillSeconds, double prefillTokensPerSecond, int decodeTokens,
            double decodeMillisPerToken, double decodeTokensPerSecond, double bandwidthGBps,
            double floorMillisPerToken) {

        /** floor / measured: 1.0 would be reading the weights at full bandwidth and nothing else. */
        public double fractionOfFloor() {
            return floorMillisPerToken / decodeMillisPerToken;
        }
    }

    public record Result(String architecture, long parameters, long weightBytesPerToken, int threads, List<Row> rows) {
    }

    private CpuBenchmark() {
    }

    /**
     * Bytes of weights read per decoded token: every tensor but the embedding table (one row), unless
     * tied; of routed experts, only the share of them one token takes (perToken of count).
     */
    public static long weightBytesPerToken(LoadedModel loaded) {
        Checkpoint checkpoint = loaded.checkpoint();
        ModelConfig config = loaded.config();
        long total = 0;
        for (String name : checkpoint.names()) {
            total += checkpoint.info(name).byteSize();
        }
        for (BlockSpec block : config.blocks()) {
            if (block instanceof BlockSpec.Mlp mlp && mlp.experts() != null) {
                BlockSpec.Experts experts = mlp.experts();
                long bytes = 0;
                for (Matrix[] matrices : List.of(ExpertTensors.inputs(checkpoint, experts, config.hiddenSize()),
                        ExpertTensors.downs(checkpoint, experts, config.hiddenSize()))) {
                    for (Matrix matrix : matrices) {
                        bytes += matrix.byteSize();
                    }
                }
                total -= bytes - bytes / experts.count() * experts.perToken();
            }
        }
        if (config.lmHeadName() != null) {
            String embedding = checkpoint.has(config.embeddingName()) ? config.embeddingName()
                    : config.embeddingName().replace("embeddings.weight", "embedding.weight");
            total -= checkpoint.info(embedding).byteSize();
        }
        return total;
    }

    public static Result run(LoadedModel loaded, CpuOps ops, int[] promptLengths, int decodeTokens,
            java.util.function.Consumer<String> log) {
        HybridModel model = loaded.model();
        long bytes = weightBytesPerToken(loaded);
        Generator generator = new Generator(loaded, ops);
        List<Row> rows = new ArrayList<>();
        SplittableRandom random = new SplittableRandom(1);
        log.accept("warming up (the JIT compiles the kernels on first use)...");
        warmUp(model, ops, generator, random);
        for (int length : promptLengths) {
            int[] prompt = new int[length];
            for (int i = 0; i < length; i++) {
                prompt[i] = 1 + random.nextInt(model.config().vocabSize() - 1);
            }
            log.accept("prefill of a " + length + "-token prompt...");
            SequenceState sequence = model.newSequence();
            long start = System.nanoTime();
            float[] logits = generator.prefill(sequence, prompt);
            double prefillSeconds = (System.nanoTime() - start) / 1e9;

            log.accept("measuring memory read bandwidth...");
            double bandwidth = MemoryBandwidth.measureReadGBps();
            double floorMillis = bytes / (bandwidth * 1e9) * 1e3;
            log.accept("decode of " + decodeTokens + (decodeTokens == 1 ? " token..." : " tokens..."));
            Sampler greedy = new Sampler(SamplingParams.greedy());
            TokenHistory history = new TokenHistory(prompt);
            int token = greedy.sample(logits, history);
            history.append(token);
            model.forward(ops, sequence, new int[] {token}, Phase.DECODE, false); // warm-up step, not timed
            long decodeStart = System.nanoTime();
            for (int i = 0; i < decodeTokens; i++) {
                logits = model.forward(ops, sequence, new int[] {token}, Phase.DECODE, false);
                token = greedy.sample(logits, history);
                history.append(token);
            }
            double millisPerToken = (System.nanoTime() - decodeStart) / 1e6 / decodeTokens;
            rows.add(new Row(length, prefillSeconds, length / prefillSeconds, decodeTokens, millisPerToken,
                    1000.0 / millisPerToken, bandwidth, floorMillis));
        }
        return new Result(model.config().architecture(), loaded.checkpoint().parameterCount(), bytes,
                ops.parallel().threads(), rows);
    }

    /** A short untimed prefill and a few decode steps, so that timed runs see compiled kernels. */
    private static void warmUp(HybridModel model, CpuOps ops, Generator generator, SplittableRandom random) {
        for (int round = 0; round < 2; round++) {
            int[] prompt = random.ints(256, 1, model.config().vocabSize()).toArray();
            SequenceState sequence = model.newSequence();
            generator.prefill(sequence, prompt);
            for (int i = 0; i < 8; i++) {
                model.forward(ops, sequence, new int[] {prompt[i]}, Phase.DECODE, false);
            }
        }
    }
}
