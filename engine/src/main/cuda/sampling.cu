// Token sampling over a batch of rows of logits, one row per sequence, each row with its own
// parameters: the steps of runner/Sampler.java in its order (penalties; greedy or temperature; top-k;
// top-p; min-p; draw).
//
// Every filter is a cut in one total order of the row, so no row is ever sorted: a radix select over
// 64-bit keys finds the cut. Score order: key = sortable(score) << 32 | (0xffffffff - id), so larger
// scores come first and equal scores go to the lower id, as the CPU sorts them. Id order: key =
// 0xffffffff - id. The select walks the key bits from the top, 8 at a time, summing a mass per digit
// (1 per token for top-k, the weight for top-p and the draw) until the running sum reaches the target.
#include "common.cuh"

#define COIL_SAMPLE_THREADS 1024

// Penalties in place, logits: (batch, vocab).
//   seen_offsets: (batch + 1) into seen_ids: each row's distinct prompt and output ids;
//   repetition: (batch) the HF penalty (1 is off);
//   count_offsets: (batch + 1) into count_ids and subtract: each distinct generated id with
//   presence + frequency · count, rounded to float as the CPU rounds it.
// Ids at or beyond vocab are ignored. Grid: (batch); the ids of a row are distinct, so no two threads
// touch one logit in a step, and the barrier keeps the CPU's order (repetition first).
extern "C" __global__ void sampling_penalties_f32(float* logits, int vocab, const int* __restrict__ seen_offsets,
        const int* __restrict__ seen_ids, const float* __restrict__ repetition, const int* __restrict__ count_offsets,
        const int* __restrict__ count_ids, const float* __restrict__ subtract) {
    const int row = blockIdx.x;
    float* scores = logits + (size_t) row * vocab;
    const float penalty = repetition[row];
    if (penalty != 1.0f) {
        for (int j = seen_offsets[row] + threadIdx.x; j < seen_offsets[row + 1]; j += blockDim.x) {
            const int id = seen_ids[j];
            if (id >= 0 && id < vocab) {
                const float logit = scores[id];
                scores[id] = logit > 0.0f ? __fdiv_rn(logit, penalty) : __fmul_rn(logit, penalty);
            }
        }
    }
    __syncthreads();
    for (int j = count_offsets[row] + threadIdx.x; j < count_offsets[row + 1]; j += blockDim.x) {
        const int id = count_ids[j];
        if (id >= 0 && id < vocab) {
            scores[id] = __fsub_rn(scores[id], subtract[j]);
        }
    }
}

// Order-preserving bits of a float; -0 counts as +0, since the CPU compares scores with > and ==.
static __device__ __forceinline__ unsigned int coil_sortable(float value) {
    const unsigned int bits = __float_as_uint(__fadd_rn(value, 0.0f));
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

static __device__ __forceinline__ unsigned long long coil_score_key(float score, int id) {
    return ((unsigned long long) coil_sortable(score) << 32) | (0xffffffffu - (unsigned int) id);
}

// Masses are summed in 64-bit fixed point, 2^44 units per 1: exact and order-free, native shared
// atomics (a double atomicAdd in shared memory is a compare-and-swap loop that stalls when a whole
// block hits one digit, as the top digits of similar scores do). Up to 2^20 tokens of weight <= 1 fit.
#define COIL_MASS_UNIT 17592186044416.0

// The most tokens the select keeps in its candidate list (see coil_select).
#define COIL_SELECT_LIST 4096

struct CoilSelectShared {
    unsigned long long mass[256];
    unsigned int count[256];
    int list[COIL_SELECT_LIST];  // the select's candidates: kept tokens under one prefix
    int collected;
    int listed;                  // tokens in list, or -1 while it holds no complete set
    unsigned long long prefix;
    double reduce[32];
    unsigned long long best[32];
    unsigned long long range_mass[32];  // the id-order draw: one range a warp
    int range_last[32];
    int drawn;
    int unique;
    unsigned long long found;
};

// Rounds of a pass whose scores and weights a thread loads together, before any of them
// is used: a round's loads would otherwise wait for the round before, a memory latency each.
#define COIL_SELECT_ROUNDS 4

// The largest key (present in the row, kept by keep) at which the mass summed over larger-or-equal keys
// first reaches target: sum >= target, or sum > target when strict. When it never does, the smallest
// kept key of positive mass (the CPU's "all of them" / "the last drawable one"). Every thread gets it;
// ~0 when nothing is kept. key(i, score), mass(i, score, weight) and keep(i, score, weight) see token
// i's score and weight, which the select loads from scores and weights (vocab each).
// A pass over the whole row also lists the kept tokens under its prefix; once they number at most
// COIL_SELECT_LIST, the later passes (whose prefixes only extend it) visit that list instead of the
// row: after the first digit or two, a few hundred tokens instead of the whole vocabulary.
template <typename Key, typename Mass, typename Keep>
static __device__ unsigned long long coil_select(int vocab, const float* scores, const float* weights, Key key,
        Mass mass, Keep keep, double target, bool strict, CoilSelectShared& shared) {
    unsigned long long prefix = 0;
    unsigned long long mask = 0;
    double before = 0.0;
    bool exhausted = false;
    int listed = -1;
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int d = threadIdx.x; d < 256; d += blockDim.x) {
            shared.mass[d] = 0ull;
            shared.count[d] = 0;
        }
        if (threadIdx.x == 0) {
            shared.collected = 0;
        }
        __syncthreads();
        // The tokens this pass visits: the candidate list when there is one, else the whole row,
        // whose kept tokens under the prefix it collects.
        const bool collect = listed < 0;
        const int items = collect ? vocab : listed;
        // Lanes of a warp that fall on the same digit add their masses together first and one of
        // them adds the sum: similar scores share their top digits, and a whole block adding into one
        // shared counter would serialise.
        const int rounds = (items + blockDim.x - 1) / blockDim.x;
        for (int first = 0; first < rounds; first += COIL_SELECT_ROUNDS) {
            int token[COIL_SELECT_ROUNDS];
            float score[COIL_SELECT_ROUNDS];
            float weight[COIL_SELECT_ROUNDS];
#pragma unroll
            for (int r = 0; r < COIL_SELECT_ROUNDS; r++) {
                const int j = min((first + r) * (int) blockDim.x + (int) threadIdx.x, items - 1);
                token[r] = collect ? j : shared.list[j];
                score[r] = scores[token[r]];
                weight[r] = weights[token[r]];
            }
            int digit[COIL_SELECT_ROUNDS];
            unsigned long long m[COIL_SELECT_ROUNDS];
#pragma unroll
            for (int r = 0; r < COIL_SELECT_ROUNDS; r++) {
                const int i = token[r];
                digit[r] = -1;
                m[r] = 0ull;
                if ((first + r) * (int) blockDim.x + (int) threadIdx.x < items && keep(i, score[r], weight[r])) {
                    const unsigned long long k = key(i, score[r]);
                    if ((k & mask) == prefix) {
                        digit[r] = (int) ((k >> shift) & 255);
                        m[r] = (unsigned long long) __double2ull_rn(mass(i, score[r], weight[r]) * COIL_MASS_UNIT);
                    }
                }
            }
#pragma unroll
            for (int r = 0; r < COIL_SELECT_ROUNDS; r++) {
                if (first + r >= rounds) {
                    break;
                }
                const unsigned int peers = __match_any_sync(0xffffffffu, digit[r]);
                if (digit[r] >= 0) {
                    unsigned long long sum = 0ull;
                    for (unsigned int rest = peers; rest != 0u; rest &= rest - 1u) {
                        sum += __shfl_sync(peers, m[r], __ffs(rest) - 1);
                    }
                    if ((threadIdx.x & 31) == __ffs(peers) - 1) {
                        atomicAdd(&shared.mass[digit[r]], sum);
                        atomicAdd(&shared.count[digit[r]], (unsigned int) __popc(peers));
                    }
                }
                if (collect) {
                    // One counter add a warp; each matching lane writes at the warp's base + its rank.
                    const unsigned int matching = __ballot_sync(0xffffffffu, digit[r] >= 0);
                    const int lane = threadIdx.x & 31;
                    int base = 0;
                    if (lane == 0 && matching != 0u) {
                        base = atomicAdd(&shared.collected, __popc(matching));
                    }
                    base = __shfl_sync(0xffffffffu, base, 0);
                    const int slot = base + __popc(matching & ((1u << lane) - 1u));
                    if (digit[r] >= 0 && slot < COIL_SELECT_LIST) {
                        shared.list[slot] = token[r];
                    }
                }
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int chosen = -1;
            if (!exhausted) {
                for (int d = 255; d >= 0; d--) {
                    if (shared.count[d] == 0) {
                        continue;
                    }
                    const double sum = before + (double) shared.mass[d] / COIL_MASS_UNIT;
                    if (strict ? sum > target : sum >= target) {
                        chosen = d;
                        break;
                    }
                    before = sum;
                }
            }
            if (chosen < 0) {
                exhausted = true;
                int lowest = -1;
                for (int d = 0; d < 256 && chosen < 0; d++) {
                    if (shared.count[d] != 0) {
                        lowest = lowest < 0 ? d : lowest;
                        if (shared.mass[d] > 0ull) {
                            chosen = d;
                        }
                    }
                }
                chosen = chosen < 0 ? lowest : chosen;
            }
            shared.prefix = chosen < 0 ? ~0ull : prefix | ((unsigned long long) chosen << shift);
            shared.unique = chosen >= 0 && shared.count[chosen] == 1;
        }
        __syncthreads();
        prefix = shared.prefix;
        if (prefix == ~0ull) {
            return prefix;
        }
        mask |= 255ull << shift;
        if (collect && shared.collected <= COIL_SELECT_LIST) {
            listed = shared.collected;
        }
        if (shared.unique && shift > 0) {
            // One kept key is left under the prefix: every later pass would choose its digits (a
            // lone key is chosen whether or not its mass reaches the target), so it is the result.
            const int items = listed < 0 ? vocab : listed;
            for (int j = threadIdx.x; j < items; j += blockDim.x) {
                const int i = listed < 0 ? j : shared.list[j];
                const float score = scores[i];
                if (keep(i, score, weights[i])) {
                    const unsigned long long k = key(i, score);
                    if ((k & mask) == prefix) {
                        shared.found = k;
                    }
                }
            }
            __syncthreads();
            return shared.found;
        }
        __syncthreads();
    }
    return prefix;
}

// The draw in id order (the CPU's candidate order without top-k or top-p): the first id whose
// running weight, summed over surviving ids from 0, passes target (sum > target); when rounding
// never lets it, the last id of positive weight. A radix select over id keys would add every token
// into the same digit counter for its first passes (ids share their top bits), so this scans
// instead, in the same fixed point (integer sums: any order gives the same running sums): each warp
// sums a contiguous range of ids, 32 consecutive ids a round (coalesced); thread 0 walks the 32
// range sums; the warp whose range holds the crossing walks it again a round at a time, its lanes'
// running sums made by a warp scan, and the first lane past the target is the draw. Every thread
// gets the id.
template <typename Mass, typename Keep>
static __device__ int coil_draw_by_id(int vocab, const float* scores, const float* weights, Mass mass, Keep keep,
        double target, CoilSelectShared& shared) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = (blockDim.x + 31) >> 5;
    const int per_warp = (vocab + warps * 32 - 1) / (warps * 32) * 32;
    const int begin = min(vocab, warp * per_warp);
    const int end = min(vocab, begin + per_warp);
    auto fixed_mass = [&](int i) {
        if (i >= end) {
            return 0ull;
        }
        const float score = scores[i];
        const float weight = weights[i];
        return keep(i, score, weight) ? (unsigned long long) __double2ull_rn(mass(i, score, weight) * COIL_MASS_UNIT)
                                      : 0ull;
    };
    unsigned long long local = 0ull;
    int last = -1;
#pragma unroll 4
    for (int i = begin + lane; i < end; i += 32) {
        const unsigned long long m = fixed_mass(i);
        local += m;
        last = m > 0ull ? i : last;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        local += __shfl_xor_sync(0xffffffffu, local, offset);
        last = max(last, __shfl_xor_sync(0xffffffffu, last, offset));
    }
    if (lane == 0) {
        shared.range_mass[warp] = local;
        shared.range_last[warp] = last;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const double goal = target * COIL_MASS_UNIT;
        unsigned long long before = 0ull;
        int holder = -1;
        int last_drawable = -1;
        for (int t = 0; t < warps; t++) {
            last_drawable = shared.range_last[t] >= 0 ? shared.range_last[t] : last_drawable;
            if (holder < 0 && shared.range_mass[t] > 0ull && (double) (before + shared.range_mass[t]) > goal) {
                holder = t;
            } else if (holder < 0) {
                before += shared.range_mass[t];
            }
        }
        shared.prefix = before;
        shared.drawn = holder < 0 ? last_drawable : -2 - holder; // -2 - w: warp w walks its range
    }
    __syncthreads();
    if (shared.drawn == -2 - warp) {
        const double goal = target * COIL_MASS_UNIT;
        unsigned long long before = shared.prefix;
        int chosen = -1;
        for (int first = begin; first < end && chosen < 0; first += 32) {
            const int i = first + lane;
            const unsigned long long m = fixed_mass(i);
            unsigned long long running = m;
#pragma unroll
            for (int offset = 1; offset < 32; offset <<= 1) {
                const unsigned long long other = __shfl_up_sync(0xffffffffu, running, offset);
                running += lane >= offset ? other : 0ull;
            }
            const unsigned int passed = __ballot_sync(0xffffffffu, m > 0ull && (double) (before + running) > goal);
            if (passed != 0u) {
                chosen = first + __ffs(passed) - 1;
            }
            before += __shfl_sync(0xffffffffu, running, 31);
        }
        if (lane == 0) {
            shared.drawn = chosen >= 0 ? chosen : last;
        }
    }
    __syncthreads();
    const int drawn = shared.drawn;
    __syncthreads();
    return drawn;
}

static __device__ double coil_block_sum_double(double value, double* scratch) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
        scratch[threadIdx.x >> 5] = value;
    }
    __syncthreads();
    __syncthreads();
    double total = 0.0;
    for (int w = 0; w < (int) ((blockDim.x + 31) >> 5); w++) {
        total += scratch[w];
    }
    __syncthreads();
    return total;
}

// The largest score key of the row (the argmax, ties to the lower id); 0 when every score is -infinity.
static __device__ unsigned long long coil_row_best(const float* scores, int vocab, CoilSelectShared& shared) {
    unsigned long long best = 0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float s = scores[i];
        if (s != -INFINITY) {
            const unsigned long long k = coil_score_key(s, i);
            best = k > best ? k : best;
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, offset);
        best = other > best ? other : best;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
        shared.best[threadIdx.x >> 5] = best;
    }
    __syncthreads();
    best = 0;
    for (int w = 0; w < (int) ((blockDim.x + 31) >> 5); w++) {
        best = shared.best[w] > best ? shared.best[w] : best;
    }
    __syncthreads();
    return best;
}

static __device__ __forceinline__ int coil_key_id(unsigned long long key) {
    return (int) (0xffffffffu - (unsigned int) (key & 0xffffffffu));
}

// Greedy: out[row] = argmax of logits[row], ties to the lower id; -1 when every logit is -infinity.
// Grid: (batch); block: COIL_SAMPLE_THREADS.
extern "C" __global__ void sampling_argmax_f32(const float* logits, int vocab, int* out) {
    __shared__ CoilSelectShared shared;
    const unsigned long long best = coil_row_best(logits + (size_t) blockIdx.x * vocab, vocab, shared);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = best == 0 ? -1 : coil_key_id(best);
    }
}

// Filters and one draw per row; temperature-0 rows take the argmax.
//   logits: (batch, vocab), penalised;  top_k: (batch), 0 off;
//   settings: (batch, 4) f64: temperature, top_p, min_p, uniform in [0, 1);
//   weights: (batch, vocab) f32 workspace; out: (batch) the token, -1 when every logit is -infinity;
//   survivors: null, or (batch, vocab) int32 set to 1 where a token survives the filters with a
//   non-zero weight and 0 elsewhere (for tests).
// Weights follow the CPU: w = (float) exp((score - max) / temperature) in double, except that without
// top-k and top-p the CPU keeps its whole-vocabulary weights, exp of the float argument
// (score - max) · (float) (1 / temperature); that form also gives top-p's total without top-k.
// Draw: target = uniform · (sum of surviving weights), then the first survivor, in score order when
// top-k or top-p is on and in id order otherwise (the CPU's candidate order), whose running sum
// passes the target. Grid: (batch); block: COIL_SAMPLE_THREADS.
extern "C" __global__ void __launch_bounds__(COIL_SAMPLE_THREADS) sampling_sample_f32(const float* logits, int vocab,
        const int* __restrict__ top_k, const double* __restrict__ settings, float* weights, int* out, int* survivors) {
    __shared__ CoilSelectShared shared;
    const int row = blockIdx.x;
    const float* scores = logits + (size_t) row * vocab;
    float* w = weights + (size_t) row * vocab;
    const double temperature = settings[row * 4];
    const double top_p = settings[row * 4 + 1];
    const double min_p = settings[row * 4 + 2];
    const double uniform = settings[row * 4 + 3];
    const unsigned long long best = coil_row_best(scores, vocab, shared);
    if (best == 0) {
        if (threadIdx.x == 0) {
            out[row] = -1;
        }
        if (survivors != nullptr) {
            for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
                survivors[(size_t) row * vocab + i] = 0;
            }
        }
        return;
    }
    if (temperature == 0.0) {
        if (threadIdx.x == 0) {
            out[row] = coil_key_id(best);
        }
        if (survivors != nullptr) {
            for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
                survivors[(size_t) row * vocab + i] = 0;
            }
        }
        return;
    }
    const float max = scores[coil_key_id(best)];
    const int k = top_k[row];
    const bool by_count = k > 0 && k < vocab;
    const bool nucleus = top_p < 1.0;
    const bool score_order = by_count || nucleus;
    const float scale = (float) (1.0 / temperature);
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float s = scores[i];
        w[i] = score_order ? (float) exp(((double) s - (double) max) / temperature)
                           : (float) exp((double) __fmul_rn(__fsub_rn(s, max), scale));
    }
    __syncthreads();
    auto score_key = [](int i, float score) { return coil_score_key(score, i); };
    auto one = [](int, float, float) { return 1.0; };
    auto weight = [](int, float, float weight) { return (double) weight; };
    auto finite = [](int, float score, float) { return score != -INFINITY; };
    unsigned long long cut = 0;
    if (by_count) {
        cut = coil_select(vocab, scores, w, score_key, one, finite, (double) k, false, shared);
    }
    if (nucleus) {
        double total;
        if (by_count) {
            double partial = 0.0;
            for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
                partial += scores[i] != -INFINITY && coil_score_key(scores[i], i) >= cut ? (double) w[i] : 0.0;
            }
            total = coil_block_sum_double(partial, shared.reduce);
        } else {
            double partial = 0.0;
            for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
                partial += (double) (float) exp((double) __fmul_rn(__fsub_rn(scores[i], max), scale));
            }
            total = coil_block_sum_double(partial, shared.reduce);
        }
        const unsigned long long top_k_cut = cut;
        auto in_top_k = [top_k_cut](int i, float score, float) {
            return score != -INFINITY && coil_score_key(score, i) >= top_k_cut;
        };
        cut = coil_select(vocab, scores, w, score_key, weight, in_top_k, total * top_p, false, shared);
    }
    const unsigned long long final_cut = cut;
    const double floor = min_p;  // min_p times the largest weight, which is the maximum's: exactly 1
    auto survives = [=](int i, float score, float weight) {
        return weight > 0.0f && (!score_order || coil_score_key(score, i) >= final_cut)
                && (min_p <= 0.0 || (double) weight >= floor);
    };
    if (survivors != nullptr) {
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
            survivors[(size_t) row * vocab + i] = survives(i, scores[i], w[i]) ? 1 : 0;
        }
    }
    double partial = 0.0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        partial += survives(i, scores[i], w[i]) ? (double) w[i] : 0.0;
    }
    const double total = coil_block_sum_double(partial, shared.reduce);
    if (score_order) {
        const unsigned long long drawn = coil_select(vocab, scores, w, score_key, weight, survives, uniform * total,
                true, shared);
        if (threadIdx.x == 0) {
            out[row] = coil_key_id(drawn);
        }
    } else {
        const int drawn = coil_draw_by_id(vocab, scores, w, weight, survives, uniform * total, shared);
        if (threadIdx.x == 0) {
            out[row] = drawn;
        }
    }
}
