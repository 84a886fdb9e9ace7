package dev.coil.engine.bench;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.MemoryBandwidth;
import dev.coil.engine.load.Checkpoint;
import dev.coil.engine.load.DType;
import dev.coil.engine.load.WeightStorage;
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
     * One prompt length: prefill rate, then greedy decode time per token (over all its tokens), in
     * rounds of {@link #ROUND_TOKENS}, each after a bandwidth measurement: bandwidthGBps is the
     * rounds' median, floorMillisPerToken the floor at it, and fractionOfFloor the median over the
     * rounds of that round's floor / its ms per token, each pair measured within a second (this
     * machine's bandwidth drifts from minute to minute, so a floor measured once would be compared
     * with decode rounds run at other speeds).
     */
    public record Row(int promptTokens, double prefillSeconds, double prefillTokensPerSecond, int decodeTokens,
            double decodeMillisPerToken, double decodeTokensPerSecond, double bandwidthGBps,
            double floorMillisPerToken, double fractionOfFloor) {
    }

    /** The K/V cache's storage in the benchmark's sequences: serve's default (--kv-dtype bf16). */
    public static final DType KV_DTYPE = DType.BF16;

    /** Decode tokens between two bandwidth measurements. */
    public static final int ROUND_TOKENS = 16;

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
        try (MemoryBandwidth.Meter meter = new MemoryBandwidth.Meter()) {
            for (int length : promptLengths) {
                int[] prompt = new int[length];
                for (int i = 0; i < length; i++) {
                    prompt[i] = 1 + random.nextInt(model.config().vocabSize() - 1);
                }
                rows.add(row(model, ops, generator, meter, bytes, prompt, decodeTokens, log));
            }
        }
        return new Result(model.config().architecture(), loaded.checkpoint().parameterCount(), bytes,
                ops.parallel().threads(), rows);
    }

    /** The prompt's prefill, then {@code decodeTokens} greedy tokens in rounds, each after a bandwidth measurement. */
    private static Row row(HybridModel model, CpuOps ops, Generator generator, MemoryBandwidth.Meter meter, long bytes,
            int[] prompt, int decodeTokens, java.util.function.Consumer<String> log) {
        log.accept("prefill of a " + prompt.length + "-token prompt...");
        SequenceState sequence = model.newSequence(KV_DTYPE);
        long start = System.nanoTime();
        float[] logits = generator.prefill(sequence, prompt);
        double prefillSeconds = (System.nanoTime() - start) / 1e9;

        log.accept("decode of " + decodeTokens + (decodeTokens == 1 ? " token" : " tokens")
                + ", the memory read bandwidth measured before each " + ROUND_TOKENS + "...");
        GreedyDecode decode = new GreedyDecode(model, ops, sequence, prompt, logits);
        decode.warmUpStep();
        List<Double> bandwidths = new ArrayList<>();
        List<Double> fractions = new ArrayList<>();
        long decodeNanos = 0;
        for (int done = 0; done < decodeTokens; ) {
            int round = Math.min(ROUND_TOKENS, decodeTokens - done);
            double bandwidth = meter.measureGBps(2);
            long roundNanos = decode.round(round);
            decodeNanos += roundNanos;
            done += round;
            bandwidths.add(bandwidth);
            fractions.add(floorMillis(bytes, bandwidth) / (roundNanos / 1e6 / round));
        }
        double millisPerToken = decodeNanos / 1e6 / decodeTokens;
        double bandwidth = median(bandwidths);
        return new Row(prompt.length, prefillSeconds, prompt.length / prefillSeconds, decodeTokens, millisPerToken,
                1000.0 / millisPerToken, bandwidth, floorMillis(bytes, bandwidth), median(fractions));
    }

    /** The weight-read floor in ms per token: {@code bytes} at {@code bandwidthGBps}. */
    static double floorMillis(long bytes, double bandwidthGBps) {
        return bytes / (bandwidthGBps * 1e9) * 1e3;
    }

    static double median(List<Double> values) {
        List<Double> sorted = values.stream().sorted().toList();
        int middle = sorted.size() / 2;
        return sorted.size() % 2 == 1 ? sorted.get(middle) : (sorted.get(middle - 1) + sorted.get(middle)) / 2;
    }

    /**
     * One storage's decode in {@link #compareStorages}: ms/token over its rounds, median and fastest;
     * the bandwidth measured before each pair of rounds, median; the floor at it; and the median over
     * the rounds of each round's floor / its ms per token.
     */
    public record StorageRow(WeightStorage storage, int rounds, int tokensPerRound, double medianMillisPerToken,
            double fastestMillisPerToken, double bandwidthGBps, double floorMillisPerToken, double fractionOfFloor) {
    }

    /**
     * The same greedy decode from each of {@code storages} (one model loaded per storage), in one
     * process, alternating rounds of {@code tokensPerRound} tokens between them, after the same prompt.
     * A machine whose speed drifts from minute to minute (a shared virtual machine) slows both alike,
     * which separate runs cannot promise.
     */
    public static List<StorageRow> compareStorages(List<LoadedModel> models, List<WeightStorage> storages,
            CpuOps ops, MemoryBandwidth.Meter meter, int promptLength, int rounds, int tokensPerRound,
            java.util.function.Consumer<String> log) {
        SplittableRandom random = new SplittableRandom(1);
        List<GreedyDecode> decodes = new ArrayList<>();
        log.accept("warming up and prefilling a " + promptLength + "-token prompt for each storage...");
        int[] prompt = random.ints(promptLength, 1, models.get(0).config().vocabSize()).toArray();
        for (LoadedModel loaded : models) {
            Generator generator = new Generator(loaded, ops);
            warmUp(loaded.model(), ops, generator, new SplittableRandom(2));
            SequenceState sequence = loaded.model().newSequence(KV_DTYPE);
            decodes.add(new GreedyDecode(loaded.model(), ops, sequence, prompt, generator.prefill(sequence, prompt)));
        }
        List<List<Double>> times = new ArrayList<>();
        List<List<Double>> fractions = new ArrayList<>();
        models.forEach(model -> {
            times.add(new ArrayList<>());
            fractions.add(new ArrayList<>());
        });
        List<Double> bandwidths = new ArrayList<>();
        long bytes = weightBytesPerToken(models.get(0));
        log.accept("decoding " + rounds + " rounds of " + tokensPerRound + " tokens from each, alternately, the memory"
                + " read bandwidth measured before each pair...");
        for (int round = 0; round < rounds; round++) {
            double bandwidth = meter.measureGBps(2);
            bandwidths.add(bandwidth);
            for (int m = 0; m < models.size(); m++) {
                double millisPerToken = decodes.get(m).round(tokensPerRound) / 1e6 / tokensPerRound;
                times.get(m).add(millisPerToken);
                fractions.get(m).add(floorMillis(bytes, bandwidth) / millisPerToken);
            }
        }
        double bandwidth = median(bandwidths);
        List<StorageRow> rows = new ArrayList<>();
        for (int m = 0; m < models.size(); m++) {
            rows.add(new StorageRow(storages.get(m), rounds, tokensPerRound, median(times.get(m)),
                    times.get(m).stream().min(Double::compare).orElseThrow(), bandwidth, floorMillis(bytes, bandwidth),
                    median(fractions.get(m))));
        }
        return rows;
    }

    /** Greedy decode of one sequence after its prompt: each step feeds the last token drawn and draws the next. */
    private static final class GreedyDecode {

        private final HybridModel model;
        private final CpuOps ops;
        private final SequenceState sequence;
        private final Sampler greedy = new Sampler(SamplingParams.greedy());
        private final TokenHistory history;
        private int token;

        /** After {@code prompt}, prefilled into {@code sequence} with {@code promptLogits}: its first token drawn. */
        GreedyDecode(HybridModel model, CpuOps ops, SequenceState sequence, int[] prompt, float[] promptLogits) {
            this.model = model;
            this.ops = ops;
            this.sequence = sequence;
            this.history = new TokenHistory(prompt);
            this.token = greedy.sample(promptLogits, history);
            history.append(token);
        }

        /** One untimed step of the last token drawn, nothing drawn from it: the decode path's first call. */
        void warmUpStep() {
            model.forward(ops, sequence, new int[] {token}, Phase.DECODE, false);
        }

        /** {@code count} steps; the nanoseconds they took. */
        long round(int count) {
            long start = System.nanoTime();
            for (int i = 0; i < count; i++) {
                float[] logits = model.forward(ops, sequence, new int[] {token}, Phase.DECODE, false);
                token = greedy.sample(logits, history);
                history.append(token);
            }
            return System.nanoTime() - start;
        }
    }

    /**
     * Decode steps of the warm-up. A step calls its small kernels (norms, the SSM step, the products'
     * hand-offs) a few dozen times each; the JIT compiles them fully only after thousands of calls, and
     * until then a step ran up to 2.5x slower: with 16 warm-up steps the first timed windows of 16
     * tokens took 20-30 ms against 17-19 later (2-core development machine, 2026-11-29).
     */
    static final int WARM_UP_DECODE_STEPS = 64;

    /** Two short untimed prefills and their decode steps, so that timed runs see compiled kernels. */
    private static void warmUp(HybridModel model, CpuOps ops, Generator generator, SplittableRandom random) {
        for (int round = 0; round < 2; round++) {
            int[] prompt = random.ints(256, 1, model.config().vocabSize()).toArray();
            SequenceState sequence = model.newSequence(KV_DTYPE);
            generator.prefill(sequence, prompt);
            for (int i = 0; i < WARM_UP_DECODE_STEPS; i++) {
                model.forward(ops, sequence, new int[] {prompt[i]}, Phase.DECODE, false);
            }
        }
    }
}
