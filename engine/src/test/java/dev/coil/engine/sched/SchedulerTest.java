package dev.coil.engine.sched;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.ServingCache;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.LayerState;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The scheduler and the cache's bookkeeping, with no model: tiny one-attention, one-Mamba layouts. */
class SchedulerTest {

    static final List<BlockSpec> HYBRID = List.of(
            new BlockSpec.Attention(0, "a.", "a.norm", 2, 1, 4, 0.5f, 0, 10000f, false),
            new BlockSpec.Mamba(1, "m.", "m.norm", 2, 2, 1, 2, 4, 4, true, false, 0f, Float.POSITIVE_INFINITY, 4,
                    1e-5f));

    static LayerState[] states() {
        return new LayerState[] {null, new LayerState.Mamba(new float[3 * 8], new float[2 * 2 * 2])};
    }

    static ServingCache cache(int blocks, int slots, int blockSize, boolean prefixCaching) {
        CacheSizing sizing = new CacheSizing(blockSize, DType.F32, blocks, slots, prefixCaching, 1, 1 << 20, 0, 0,
                List.of());
        return new ServingCache(sizing, HYBRID, SchedulerTest::states);
    }

    static ScheduledRequest request(String id, int promptLength, int[] tokens) {
        return new ScheduledRequest(id, promptLength, position -> tokens[position], true);
    }

    static int[] distinctTokens(int length, int offset) {
        int[] ids = new int[length + 200];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = offset + i;
        }
        return ids;
    }

    @Test
    void admitsFirstComeFirstServedUpToTheSequenceCap() {
        Scheduler scheduler = new Scheduler(3, 1000, cache(100, 3, 4, false));
        List<ScheduledRequest> requests = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            requests.add(request("r" + i, 5, distinctTokens(5, 1000 * i)));
            scheduler.add(requests.get(i));
        }
        StepPlan plan = scheduler.schedule();
        assertThat(plan.chunks()).extracting(chunk -> chunk.request().id()).containsExactly("r0", "r1", "r2");
        assertThat(scheduler.running()).isEqualTo(3);
        assertThat(scheduler.waiting()).isEqualTo(2);

        scheduler.complete(plan);
        scheduler.finish(requests.get(1));
        requests.get(0).appendToken();
        requests.get(2).appendToken();
        plan = scheduler.schedule();
        assertThat(plan.chunks()).extracting(chunk -> chunk.request().id() + "@" + chunk.start() + "+" + chunk.count())
                .containsExactly("r0@5+1", "r2@5+1", "r3@0+5");
    }

    @Test
    void longPromptsArePrefilledInChunksBesideDecodes() {
        Scheduler scheduler = new Scheduler(4, 16, cache(100, 4, 4, false));
        ScheduledRequest shortOne = request("short", 10, distinctTokens(10, 0));
        ScheduledRequest longOne = request("long", 40, distinctTokens(40, 5000));
        scheduler.add(shortOne);
        scheduler.add(longOne);

        List<String> steps = new ArrayList<>();
        for (int step = 0; step < 4; step++) {
            StepPlan plan = scheduler.schedule();
            steps.add(plan.chunks().stream().map(c -> c.request().id() + "+" + c.count()).toList().toString());
            assertThat(plan.tokens()).isLessThanOrEqualTo(16);
            scheduler.complete(plan);
            for (StepPlan.Chunk chunk : plan.chunks()) {
                if (chunk.samples()) {
                    chunk.request().appendToken();
                }
            }
        }
        assertThat(steps).containsExactly("[short+10, long+6]", "[short+1, long+15]", "[short+1, long+15]",
                "[short+1, long+4]");
        assertThat(longOne.computed()).isEqualTo(40);
    }

    @Test
    void batchInvariantPromptChunksDependOnThePromptAlone() {
        // 16 tokens a step, 4 sequences: chunks of 13, room left for three others' decodes.
        assertThat(new Scheduler(4, 16, cache(100, 4, 4, false), true).invariantChunk()).isEqualTo(13);
        Map<String, List<String>> alone = promptChunks(Map.of("long", 40));
        assertThat(alone.get("long")).containsExactly("0+13", "13+13", "26+13", "39+1");
        Map<String, List<String>> beside = promptChunks(Map.of("short", 10, "long", 40, "other", 30));
        assertThat(beside.get("long")).isEqualTo(alone.get("long"));
        assertThat(beside.get("other")).containsExactly("0+13", "13+13", "26+4");
        assertThat(beside.get("short")).containsExactly("0+10");
    }

    /**
     * Runs prompts of the given lengths (admitted in name order) through a batch-invariant
     * scheduler of 4 sequences and 16 tokens a step until each has generated 3 tokens; returns each
     * prompt's chunks as "start+count".
     */
    private static Map<String, List<String>> promptChunks(Map<String, Integer> lengths) {
        Scheduler scheduler = new Scheduler(4, 16, cache(100, 4, 4, false), true);
        Map<String, List<String>> chunks = new HashMap<>();
        List<ScheduledRequest> requests = new ArrayList<>();
        int offset = 0;
        for (String id : lengths.keySet().stream().sorted().toList()) {
            ScheduledRequest request = request(id, lengths.get(id), distinctTokens(lengths.get(id), offset));
            offset += 1000;
            requests.add(request);
            scheduler.add(request);
            chunks.put(id, new ArrayList<>());
        }
        for (int step = 0; step < 100 && !scheduler.isIdle(); step++) {
            StepPlan plan = scheduler.schedule();
            assertThat(plan.tokens()).isLessThanOrEqualTo(16);
            scheduler.complete(plan);
            for (StepPlan.Chunk chunk : plan.chunks()) {
                ScheduledRequest request = chunk.request();
                if (chunk.start() < request.promptLength()) {
                    chunks.get(request.id()).add(chunk.start() + "+" + chunk.count());
                }
                if (chunk.samples()) {
                    request.appendToken();
                    if (request.tokenCount() - request.promptLength() > 3) {
                        scheduler.finish(request);
                    }
                }
            }
        }
        assertThat(scheduler.isIdle()).as("every request done").isTrue();
        return chunks;
    }

    @Test
    void preemptsTheNewestRequestWhenBlocksRunOutAndRequeuesItFirst() {
        ServingCache cache = cache(5, 4, 4, false);
        Scheduler scheduler = new Scheduler(4, 100, cache);
        ScheduledRequest older = request("older", 8, distinctTokens(8, 0));
        ScheduledRequest newer = request("newer", 8, distinctTokens(8, 1000));
        ScheduledRequest queued = request("queued", 3, distinctTokens(3, 2000));
        scheduler.add(older);
        scheduler.add(newer);
        StepPlan plan = scheduler.schedule(); // 2 + 2 blocks of 5
        scheduler.complete(plan);
        older.appendToken();
        newer.appendToken();
        scheduler.add(queued);

        plan = scheduler.schedule(); // older needs a third block: the last free one; newer then needs one more
        assertThat(plan.preempted()).containsExactly(newer);
        assertThat(plan.chunks()).extracting(c -> c.request().id()).containsExactly("older");
        assertThat(newer.computed()).isZero();
        assertThat(newer.blockCount()).isZero();
        assertThat(newer.slot()).isEqualTo(-1);
        assertThat(cache.blockPool().inUse()).isEqualTo(3);
        assertThat(scheduler.preemptions()).isEqualTo(1);

        scheduler.complete(plan);
        older.appendToken();
        scheduler.finish(older);
        plan = scheduler.schedule();
        assertThat(plan.chunks()).extracting(c -> c.request().id() + "@" + c.start() + "+" + c.count())
                .as("the preempted request comes back first and recomputes its prompt and generated token")
                .containsExactly("newer@0+9", "queued@0+3");
    }

    /**
     * Under priority scheduling, the queue is taken by priority (lower first), then arrival; first come
     * first served takes arrival alone.
     */
    @Test
    void priorityOrdersTheQueueAndArrivalBreaksTies() {
        for (boolean byPriority : new boolean[] {true, false}) {
            Scheduler scheduler = new Scheduler(1, 1000, cache(100, 1, 4, false), false, byPriority);
            int[] priorities = {0, 5, -1, 5, 0, -1};
            List<ScheduledRequest> requests = new ArrayList<>();
            for (int i = 0; i < priorities.length; i++) {
                requests.add(new ScheduledRequest("p" + priorities[i] + "-" + i, 3, position -> position, true,
                        priorities[i]));
                scheduler.add(requests.get(i));
            }
            List<String> admitted = new ArrayList<>();
            while (!scheduler.isIdle()) {
                StepPlan plan = scheduler.schedule();
                scheduler.complete(plan);
                plan.chunks().forEach(chunk -> {
                    admitted.add(chunk.request().id());
                    scheduler.finish(chunk.request());
                });
            }
            assertThat(admitted).as(byPriority ? "by priority" : "first come first served").containsExactly(byPriority
                    ? new String[] {"p-1-2", "p-1-5", "p0-0", "p0-4", "p5-1", "p5-3"}
                    : new String[] {"p0-0", "p5-1", "p-1-2", "p5-3", "p0-4", "p-1-5"});
        }
    }

    /**
     * Under priority scheduling, a step out of blocks preempts the running request of the worst
     * priority not yet placed, which goes back to its place in the queue, not to its head.
     */
    @Test
    void priorityPreemptsTheWorstPriorityAndRequeuesItInOrder() {
        ServingCache cache = cache(5, 4, 4, false);
        Scheduler scheduler = new Scheduler(4, 100, cache, false, true);
        ScheduledRequest urgent = new ScheduledRequest("urgent", 8, position -> position, true, -1);
        ScheduledRequest background = new ScheduledRequest("background", 8, position -> 1000 + position, true, 9);
        ScheduledRequest queued = new ScheduledRequest("queued", 3, position -> 2000 + position, true, 0);
        scheduler.add(background);
        scheduler.add(urgent);
        StepPlan plan = scheduler.schedule(); // 2 + 2 blocks of 5, urgent first
        assertThat(plan.chunks()).extracting(c -> c.request().id()).containsExactly("urgent", "background");
        scheduler.complete(plan);
        urgent.appendToken();
        background.appendToken();
        scheduler.add(queued);

        plan = scheduler.schedule(); // urgent needs a third block; background then needs one more: it goes
        assertThat(plan.preempted()).containsExactly(background);
        assertThat(plan.chunks()).extracting(c -> c.request().id()).containsExactly("urgent");
        scheduler.complete(plan);
        urgent.appendToken();
        scheduler.finish(urgent);
        plan = scheduler.schedule();
        assertThat(plan.chunks()).extracting(c -> c.request().id())
                .as("the preempted request of priority 9 waits behind the one of priority 0")
                .containsExactly("queued", "background");
    }

    /**
     * Under priority scheduling, a better priority that cannot be admitted (every sequence taken)
     * preempts the running request of a strictly worse one, which waits behind it; equal priorities
     * preempt nothing.
     */
    @Test
    void aBetterPriorityWaitingPreemptsAWorseRunningOne() {
        ServingCache cache = cache(100, 4, 4, false);
        Scheduler scheduler = new Scheduler(1, 100, cache, false, true);
        ScheduledRequest batch = new ScheduledRequest("batch", 4, position -> position, true, 5);
        scheduler.add(batch);
        StepPlan plan = scheduler.schedule();
        scheduler.complete(plan);
        batch.appendToken();
        ScheduledRequest peer = new ScheduledRequest("peer", 4, position -> 100 + position, true, 5);
        scheduler.add(peer);
        plan = scheduler.schedule();
        assertThat(plan.preempted()).as("an equal priority waits").isEmpty();
        assertThat(plan.chunks()).extracting(c -> c.request().id()).containsExactly("batch");
        scheduler.complete(plan);
        batch.appendToken();

        ScheduledRequest urgent = new ScheduledRequest("urgent", 4, position -> 200 + position, true, 0);
        scheduler.add(urgent);
        plan = scheduler.schedule();
        assertThat(plan.preempted()).containsExactly(batch);
        assertThat(plan.chunks()).as("the preempted request's chunk is taken out of the step").isEmpty();
        assertThat(batch.computed()).isZero();
        plan = scheduler.schedule();
        assertThat(plan.chunks()).extracting(c -> c.request().id()).containsExactly("urgent");
        scheduler.complete(plan);
        scheduler.finish(urgent);
        plan = scheduler.schedule();
        assertThat(plan.chunks()).extracting(c -> c.request().id())
                .as("then the first of the two of priority 5, recomputing what it had").containsExactly("batch");
        assertThat(plan.chunks().getFirst().count()).isEqualTo(6);

        Scheduler fcfs = new Scheduler(1, 100, cache(100, 4, 4, false));
        ScheduledRequest first = request("first", 4, distinctTokens(4, 0));
        fcfs.add(first);
        fcfs.complete(fcfs.schedule());
        first.appendToken();
        fcfs.add(request("second", 4, distinctTokens(4, 100)));
        assertThat(fcfs.schedule().preempted()).as("first come first served preempts for no one").isEmpty();
    }

    @Test
    void aRequestLargerThanTheWholeCacheIsRejected() {
        Scheduler scheduler = new Scheduler(2, 100, cache(3, 2, 4, false));
        ScheduledRequest huge = request("huge", 20, distinctTokens(20, 0));
        ScheduledRequest small = request("small", 4, distinctTokens(4, 100));
        scheduler.add(huge);
        scheduler.add(small);
        StepPlan plan = scheduler.schedule();
        assertThat(plan.rejected()).containsExactly(huge);
        assertThat(plan.chunks()).extracting(c -> c.request().id()).containsExactly("small");
    }

    @Test
    void prefixCacheSharesFullBlocksAndRestoresTheSnapshot() {
        ServingCache cache = cache(20, 4, 4, true);
        Scheduler scheduler = new Scheduler(4, 100, cache);
        int[] tokens = distinctTokens(13, 0);
        ScheduledRequest first = request("first", 13, tokens);
        scheduler.add(first);
        StepPlan plan;
        do {
            plan = scheduler.schedule();
            // No model runs here: the "step" leaves its chunk's end in the state, so that each snapshot
            // (taken when the chunk completes) holds the position it was taken at.
            for (StepPlan.Chunk chunk : plan.chunks()) {
                ssm(cache, chunk.request())[0] = chunk.end();
            }
            scheduler.complete(plan);
        } while (first.computed() < 13);
        // Snapshots every block (interval 1): chunks end at 4, 8, 12, then 13.
        ssm(cache, first)[0] = 42f;
        int[] firstBlocks = {first.block(0), first.block(1), first.block(2)};
        scheduler.finish(first);

        ScheduledRequest second = request("second", 13, tokens);
        scheduler.add(second);
        plan = scheduler.schedule();
        assertThat(plan.chunks()).extracting(c -> c.start() + "+" + c.count()).containsExactly("12+1");
        assertThat(second.cachedPromptTokens()).isEqualTo(12);
        assertThat(ssm(cache, second)[0])
                .as("the slot holds the snapshot taken at 12, not a cleared state or the state at 13")
                .isEqualTo(12f);
        assertThat(cache.hits()).isEqualTo(1);
        for (int i = 0; i < 3; i++) {
            assertThat(second.block(i)).as("block %d is the first request's, shared", i).isEqualTo(firstBlocks[i]);
            assertThat(cache.blockPool().references(second.block(i))).isEqualTo(1);
        }
    }

    /** The second layer's (a Mamba layer's) SSM state of the request's slot, in host memory. */
    private static float[] ssm(ServingCache cache, ScheduledRequest request) {
        return ((LayerState.Mamba) ((dev.coil.engine.cache.HostStateStore) cache.store())
                .slotStates(request.slot())[1]).ssm();
    }

    @Test
    void thousandRandomSubmitCancelFinishOperationsLeakNothing() {
        Random random = new Random(1234);
        ServingCache cache = cache(24, 5, 4, true);
        Scheduler scheduler = new Scheduler(5, 24, cache);
        Map<ScheduledRequest, int[]> live = new HashMap<>();
        int next = 0;
        for (int op = 0; op < 1000; op++) {
            int choice = random.nextInt(10);
            if (choice < 3) {
                int length = 1 + random.nextInt(30);
                int[] tokens = new int[length + 64];
                for (int i = 0; i < tokens.length; i++) {
                    tokens[i] = random.nextInt(3); // few distinct tokens: prefixes repeat, blocks get shared
                }
                ScheduledRequest request = new ScheduledRequest("r" + next++, length, p -> tokens[p],
                        random.nextBoolean());
                live.put(request, tokens);
                scheduler.add(request);
            } else if (choice < 4 && !live.isEmpty()) {
                ScheduledRequest victim = List.copyOf(live.keySet()).get(random.nextInt(live.size()));
                scheduler.cancel(victim);
                live.remove(victim);
            } else {
                StepPlan plan = scheduler.schedule();
                plan.rejected().forEach(live::remove);
                scheduler.complete(plan);
                for (StepPlan.Chunk chunk : plan.chunks()) {
                    ScheduledRequest request = chunk.request();
                    if (!chunk.samples()) {
                        continue;
                    }
                    if (random.nextInt(6) == 0 || request.tokenCount() >= request.promptLength() + 60) {
                        scheduler.finish(request);
                        live.remove(request);
                    } else {
                        request.appendToken();
                    }
                }
            }
            assertConsistent(cache, live.keySet());
        }
        for (ScheduledRequest request : List.copyOf(live.keySet())) {
            scheduler.cancel(request);
        }
        assertThat(scheduler.isIdle()).isTrue();
        assertThat(cache.blockPool().inUse()).isZero();
        assertThat(cache.blockPool().free()).isEqualTo(cache.blockPool().total());
        assertThat(cache.slotPool().inUse()).isZero();
        assertThat(scheduler.preemptions()).as("the pool is small enough to force preemptions").isPositive();
        assertThat(cache.hits()).as("the token alphabet is small enough for prefix hits").isPositive();
    }

    /** Reference counts equal the block tables' references; slots equal the requests holding one. */
    private static void assertConsistent(ServingCache cache, Iterable<ScheduledRequest> requests) {
        Map<Integer, Integer> references = new HashMap<>();
        int slots = 0;
        for (ScheduledRequest request : requests) {
            for (int i = 0; i < request.blockCount(); i++) {
                references.merge(request.block(i), 1, Integer::sum);
            }
            assertThat((long) request.blockCount() * 4).isGreaterThanOrEqualTo(request.computed());
            if (request.slot() >= 0) {
                slots++;
            }
        }
        for (int block = 0; block < cache.blockPool().total(); block++) {
            assertThat(cache.blockPool().references(block)).as("references of block %d", block)
                    .isEqualTo(references.getOrDefault(block, 0));
        }
        assertThat(cache.blockPool().inUse()).isEqualTo(references.size());
        assertThat(cache.slotPool().inUse()).isEqualTo(slots);
    }
}
