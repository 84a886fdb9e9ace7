// Token sampling over a batch of rows of logits, one row per sequence, each row with its own
// parameters: the steps of runner/Sampler.java in its order (logit bias and penalties; greedy or temperature; top-k;
// top-p; min-p; draw).
//
// Every filter is a cut in one total order of the row, so no row is ever sorted: a radix select over
// 64-bit keys finds the cut. Score order: key = sortable(score) << 32 | (0xffffffff - id), so larger
// scores come first and equal scores go to the lower id, as the CPU sorts them. Id order: key =
// 0xffffffff - id. The select walks the key bits from the top, 8 at a time, summing a mass per digit
// (1 per token for top-k, the weight for top-p and the draw) until the running sum reaches the target.
#include "common.cuh"
#include "row_blocks.cuh"

#define COIL_SAMPLE_THREADS 1024

// Diagnostics: tools/bench/sampling_kernel.cu defines this to stamp points of one launch (%globaltimer,
// block 0). Labels: 0 start, 1 the row's best, 2 the weights, 3 top-p's select starts, 4 its cut, 5 the
// draw; in each pass of a select, 10 its sums cleared, 11 its tokens added, 12 the first meeting,
// 13 the row's sums, 14 the walk.
#ifndef COIL_SAMPLE_STAMP
#define COIL_SAMPLE_STAMP(label)
#endif

// The grammar's mask, the logit bias, then the penalties, in place, logits: (batch, vocab).
//   mask_offsets: (batch + 1) into allowed_bits: each row's words of 32 tokens, bit id % 32 of word
//   id / 32 set where the token is allowed (an id past the row's words is not); a row without words
//   has no mask. Refused tokens get -infinity first, which the bias and the penalties leave so;
//   bias_offsets: (batch + 1) into bias_ids and biases: each row's distinct logit_bias ids, with the
//   number added to each (first, as vLLM applies logit_bias before the penalties);
//   seen_offsets: (batch + 1) into seen_ids: each row's distinct prompt and output ids;
//   repetition: (batch) the HF penalty (1 is off);
//   count_offsets: (batch + 1) into count_ids and subtract: each distinct generated id with
//   presence + frequency · count, rounded to float as the CPU rounds it.
// Ids at or beyond vocab are ignored. Grid: (batch); the ids of a list are distinct, so no two threads
// touch one logit in a pass, and the barriers keep the CPU's order (bias, repetition, then the rest).
extern "C" __global__ void sampling_penalties_f32(float* logits, int vocab, const int* __restrict__ bias_offsets,
        const int* __restrict__ bias_ids, const float* __restrict__ biases, const int* __restrict__ seen_offsets,
        const int* __restrict__ seen_ids, const float* __restrict__ repetition, const int* __restrict__ count_offsets,
        const int* __restrict__ count_ids, const float* __restrict__ subtract, const int* __restrict__ mask_offsets,
        const unsigned int* __restrict__ allowed_bits) {
    const int row = blockIdx.x;
    float* scores = logits + (size_t) row * vocab;
    const int mask_start = mask_offsets[row];
    const int mask_words = mask_offsets[row + 1] - mask_start;
    if (mask_words > 0) {
        for (int id = threadIdx.x; id < vocab; id += blockDim.x) {
            const bool allowed = id / 32 < mask_words && ((allowed_bits[mask_start + id / 32] >> (id % 32)) & 1u);
            if (!allowed) {
                scores[id] = -INFINITY;
            }
        }
    }
    __syncthreads();
    for (int j = bias_offsets[row] + threadIdx.x; j < bias_offsets[row + 1]; j += blockDim.x) {
        const int id = bias_ids[j];
        if (id >= 0 && id < vocab) {
            scores[id] = __fadd_rn(scores[id], biases[j]);
        }
    }
    __syncthreads();
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

// Masses are summed in 64-bit fixed point, 2^44 units per 1: exact and order-free, so that no sum
// depends on how the row is split between blocks (a block adds its digits' masses in 32-bit parts:
// see coil_add_mass). Up to 2^20 tokens of weight <= 1 fit. Totals (top-p's mass, the survivors'
// weight) are summed the same way.
#define COIL_MASS_UNIT 17592186044416.0

static __device__ __forceinline__ unsigned long long coil_fixed_mass(double mass) {
    return (unsigned long long) __double2ull_rn(mass * COIL_MASS_UNIT);
}

// The most tokens a block keeps in its candidate list (see coil_select).
#define COIL_SELECT_LIST 4096

// A block sums its tokens' masses a digit in shared memory with native 32-bit atomics (a 64-bit
// shared atomicAdd is a compare-and-swap loop, which stalls when a warp's lanes share a digit, as
// similar scores share their top ones): a mass, at most 2^44 (a weight of 1), goes in PARTS parts.
// Four parts of 11 bits (the last holds 2^44's bit as well) keep their sums below 2^32 for up to 2^20
// tokens a block; three of 15 bits (the last up to 2^14) for up to 2^16, with one atomic fewer a token
// (each costs about 1 µs a pass over 6000 tokens of similar scores, their lanes meeting on a digit).
#define COIL_MASS_PARTS 4
#define COIL_FEW_PARTS_TOKENS 65536

template <int PARTS>
static __device__ __forceinline__ void coil_add_mass(unsigned int (*parts)[256], int digit, unsigned long long mass) {
    static_assert(PARTS == 3 || PARTS == 4, "three parts of 15 bits or four of 11");
    constexpr int bits = PARTS == 3 ? 15 : 11;
    const unsigned long long low_bits = (1ull << bits) - 1;
#pragma unroll
    for (int p = 0; p < PARTS - 1; p++) {
        atomicAdd(&parts[p][digit], (unsigned int) ((mass >> (p * bits)) & low_bits));
    }
    atomicAdd(&parts[PARTS - 1][digit], (unsigned int) (mass >> ((PARTS - 1) * bits)));
}

// The mass the parts of one digit hold.
template <int PARTS>
static __device__ __forceinline__ unsigned long long coil_part_sum(const unsigned int* first, int stride) {
    constexpr int bits = PARTS == 3 ? 15 : 11;
    unsigned long long mass = 0ull;
#pragma unroll
    for (int p = 0; p < PARTS; p++) {
        mass += (unsigned long long) first[p * stride] << (p * bits);
    }
    return mass;
}

struct CoilSelectShared {
    unsigned int mass[2][COIL_MASS_PARTS][256];  // this block's sums a digit, by turn (see coil_add_mass)
    unsigned int count[2][256];
    int token[2][256];                  // a token of the digit (any one: read only where the count is 1)
    unsigned long long row_mass[256];   // the row's: every block's added up
    unsigned int row_count[256];
    int row_token[256];                 // the row's token of each digit of count 1
    unsigned long long first_mass[256]; // a select's first pass, kept for the next select (COIL_FIRST_PASS_KEEP)
    unsigned int first_count[256];
    int first_token[256];
    unsigned long long first_before;    // the kept mass above the digit that pass chose
    int first_digit;
    unsigned long long scale[32];       // a select's scaled target: one partial sum a warp
    double target;
    int list[COIL_SELECT_LIST];         // the select's candidates: kept tokens of this block under one prefix
    int collected[2];                   // tokens this block listed, by turn
    int all_listed;                     // every block of the row listed all its kept tokens
    unsigned long long prefix;
    int unique;                         // the row's only kept key under the prefix has this token, or -1
    unsigned long long cut_mass;        // the select's: the mass of the kept keys at or above its result
    unsigned long long partial[32];     // one a warp
    unsigned long long published[2][2]; // a meeting's values, by turn
    unsigned long long range_mass[32];  // the id-order draw: one range a warp
    int range_last[32];
    int drawn;
};

static_assert(COIL_SAMPLE_THREADS >= 320, "a select's meeting takes 256 threads for the digits and two warps besides");

// Rounds of a pass whose scores and weights a thread loads together, before any of them
// is used: a round's loads would otherwise wait for the round before, a memory latency each.
#define COIL_SELECT_ROUNDS 4

// The row's sum (max when maximum) of one 64-bit value a thread; every thread of the row gets it.
template <bool maximum>
static __device__ unsigned long long coil_row_reduce(unsigned long long value, CoilRowBlocks& blocks,
        CoilSelectShared& shared) {
    auto combine = [](unsigned long long a, unsigned long long b) { return maximum ? (a > b ? a : b) : a + b; };
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        value = combine(value, __shfl_xor_sync(0xffffffffu, value, offset));
    }
    if ((threadIdx.x & 31) == 0) {
        shared.partial[threadIdx.x >> 5] = value;
    }
    __syncthreads();
    const int slot = blocks.turn++ & 1;
    if (threadIdx.x == 0) {
        unsigned long long block = 0ull;
        for (int w = 0; w < (int) ((blockDim.x + 31) >> 5); w++) {
            block = combine(block, shared.partial[w]);
        }
        shared.published[slot][0] = block;
    }
    coil_row_sync();
    unsigned long long row = 0ull;
    for (unsigned int r = 0; r < blocks.size; r++) {
        row = combine(row, coil_row_read(&shared.published[slot][0], r));
    }
    return row;
}

// A select pass's meeting, once every block has added its tokens' digits: block k of the row adds up
// digits [k · D, (k + 1) · D) over the row's blocks (D = 256 / blocks) and stores their totals into every
// block, one (digit, block) pair a thread, a digit's blocks in adjacent lanes, so that each block reads
// 1/blocks of the sums rather than all of them; then a second meeting, after which each block holds
// the row's sums (row_mass, row_count, row_token), all_listed, and with scale the scaled target
// (target times the row's sum of the warps' shared.scale) in shared.target.
static __device__ void coil_meet(CoilSelectShared& shared, int slot, CoilRowBlocks& blocks, bool few_parts, bool scale,
        double target) {
    coil_row_sync();
    COIL_SAMPLE_STAMP(12);
    if (threadIdx.x < 256) {
        const unsigned int other = threadIdx.x % blocks.size;
        const int d = (int) (blocks.rank * (256 / blocks.size) + threadIdx.x / blocks.size);
        const unsigned int* parts = coil_row_address(&shared.mass[slot][0][d], other);
        unsigned long long row_mass = few_parts ? coil_part_sum<3>(parts, 256) : coil_part_sum<4>(parts, 256);
        unsigned int row_count = coil_row_read(&shared.count[slot][d], other);
        int row_token = coil_row_read(&shared.token[slot][d], other);
        row_token = row_count != 0 ? row_token : -1;
        for (unsigned int offset = 1; offset < blocks.size; offset <<= 1) {
            row_mass += __shfl_xor_sync(0xffffffffu, row_mass, offset);
            row_count += __shfl_xor_sync(0xffffffffu, row_count, offset);
            row_token = max(row_token, __shfl_xor_sync(0xffffffffu, row_token, offset));
        }
        *coil_row_address(&shared.row_mass[d], other) = row_mass;
        *coil_row_address(&shared.row_count[d], other) = row_count;
        *coil_row_address(&shared.row_token[d], other) = row_token;
    } else if (threadIdx.x < 288) {
        // Whether every block listed all its kept tokens: a lane a block.
        const unsigned int rank = threadIdx.x - 256;
        const int collected = rank < blocks.size ? coil_row_read(&shared.collected[slot], rank) : 0;
        const int most = __reduce_max_sync(0xffffffffu, collected);
        if (rank == 0) {
            shared.all_listed = most <= COIL_SELECT_LIST;
        }
    } else if (threadIdx.x < 320 && scale) {
        // Lane w adds warp w's partials over the row's blocks.
        const unsigned int lane = threadIdx.x & 31;
        unsigned long long total = 0ull;
        for (unsigned int r = 0; r < blocks.size; r++) {
            total += coil_row_read(&shared.scale[lane], r);
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) {
            total += __shfl_xor_sync(0xffffffffu, total, offset);
        }
        if (lane == 0) {
            shared.target = (double) total / COIL_MASS_UNIT * target;
        }
    }
    coil_row_sync();
}

// The first pass of a select from the one kept in shared.first_* (COIL_FIRST_PASS_FROM_CUT below): no
// meeting, since every block holds the same kept sums.
static __device__ void coil_first_pass_from_cut(CoilSelectShared& shared, unsigned long long cut_mass) {
    if (threadIdx.x < 256) {
        const int d = threadIdx.x;
        const int chosen = shared.first_digit;
        const bool at = d == chosen;
        shared.row_mass[d] = d > chosen ? shared.first_mass[d] : at ? cut_mass - shared.first_before : 0ull;
        shared.row_count[d] = d > chosen ? shared.first_count[d] : at ? min(shared.first_count[d], 2u) : 0u;
        shared.row_token[d] = d >= chosen ? shared.first_token[d] : -1;
    }
    if (threadIdx.x == 0) {
        shared.all_listed = 0;
    }
    __syncthreads();
}

// The largest key (present in the row, kept by keep) at which the mass summed over larger-or-equal keys
// first reaches target: sum >= target, or sum > target when strict. When it never does, the smallest
// kept key of positive mass (the CPU's "all of them" / "the last drawable one"). Every thread of the
// row gets it; ~0 when nothing is kept. shared.cut_mass then holds that sum over the result and the
// kept keys above it (in fixed point; 0 when nothing is kept). key(i, score), mass(i, score, weight)
// and keep(i, score, weight) see token i's score and weight, which the select loads from scores and
// weights (vocab each).
// Each block sums the digits of its slice; the row's sums are the blocks' added up, the same in any
// split. A pass over the whole slice also lists the block's kept tokens under its prefix; once every
// block's list is complete (at most COIL_SELECT_LIST), the later passes (whose prefixes only extend
// it) visit the lists instead of the slices: after the first digit or two, a few hundred tokens
// instead of the whole vocabulary. Each digit also keeps one of its tokens, so that a digit of one
// key gives the result without another pass.
// scaled: the target is target times the row's sum of scale_partial (one a thread, fixed point),
// summed at the first pass's meeting rather than in a meeting of its own.
// first_pass: COIL_FIRST_PASS_KEEP keeps the first pass's row sums and choice in shared.first_*;
// COIL_FIRST_PASS_FROM_CUT makes the first pass from them instead of from the tokens, for a select
// whose kept keys are the kept select's at or above its result, of the same masses, and cut_mass
// that result's (the draw after top-p without min-p). Its digits above the kept choice hold what they
// held; that digit holds cut_mass less the mass above it (a count of 2 stands for "more than one",
// where the kept pass counted several: the next pass then counts them); the digits below, nothing.
#define COIL_FIRST_PASS_OWN 0
#define COIL_FIRST_PASS_KEEP 1
#define COIL_FIRST_PASS_FROM_CUT 2
template <typename Key, typename Mass, typename Keep>
static __device__ unsigned long long coil_select(const float* scores, const float* weights, Key key, Mass mass,
        Keep keep, double target, bool strict, bool scaled, unsigned long long scale_partial, CoilRowBlocks& blocks,
        CoilSelectShared& shared, int first_pass = COIL_FIRST_PASS_OWN, unsigned long long cut_mass_given = 0ull) {
    const int lane = (int) (threadIdx.x & 31);
    if (scaled) {
        // The scale's sum meets the first pass's digit sums: a warp's partial now, the row's below.
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) {
            scale_partial += __shfl_xor_sync(0xffffffffu, scale_partial, offset);
        }
        if (lane == 0) {
            shared.scale[threadIdx.x >> 5] = scale_partial;
        }
    }
    unsigned long long prefix = 0;
    unsigned long long mask = 0;
    unsigned long long before = 0ull;  // (warp 0) the mass of the kept keys above the prefix
    unsigned long long cut_mass = 0ull;  // (warp 0) the mass of the kept keys at or above the chosen digits
    bool exhausted = false;
    int listed = -1;
    // The same in every block of the row: no block visits more tokens in a pass than a slice holds.
    const bool few_parts = blocks.slice <= COIL_FEW_PARTS_TOKENS;
    for (int shift = 56; shift >= 0; shift -= 8) {
        const bool derived = first_pass == COIL_FIRST_PASS_FROM_CUT && shift == 56 && shared.first_digit >= 0;
        const int slot = blocks.turn++ & 1;
        for (int d = threadIdx.x; d < 256 && !derived; d += blockDim.x) {
#pragma unroll
            for (int p = 0; p < COIL_MASS_PARTS; p++) {
                shared.mass[slot][p][d] = 0u;
            }
            shared.count[slot][d] = 0u;
        }
        if (threadIdx.x == 0) {
            shared.collected[slot] = 0;
        }
        __syncthreads();
        COIL_SAMPLE_STAMP(10);
        // The tokens this pass visits: the candidate list when there is one, else the block's slice,
        // whose kept tokens under the prefix it collects.
        const bool collect = listed < 0;
        const int items = derived ? 0 : collect ? blocks.end - blocks.begin : listed;
        const int rounds = (items + blockDim.x - 1) / blockDim.x;
        for (int first = 0; first < rounds; first += COIL_SELECT_ROUNDS) {
            int token[COIL_SELECT_ROUNDS];
            float score[COIL_SELECT_ROUNDS];
            float weight[COIL_SELECT_ROUNDS];
#pragma unroll
            for (int r = 0; r < COIL_SELECT_ROUNDS; r++) {
                const int j = min((first + r) * (int) blockDim.x + (int) threadIdx.x, items - 1);
                token[r] = collect ? blocks.begin + j : shared.list[j];
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
                        m[r] = coil_fixed_mass(mass(i, score[r], weight[r]));
                    }
                }
            }
#pragma unroll
            for (int r = 0; r < COIL_SELECT_ROUNDS; r++) {
                if (first + r >= rounds) {
                    break;
                }
                if (digit[r] >= 0) {
                    if (few_parts) {
                        coil_add_mass<3>(shared.mass[slot], digit[r], m[r]);
                    } else {
                        coil_add_mass<4>(shared.mass[slot], digit[r], m[r]);
                    }
                    atomicAdd(&shared.count[slot][digit[r]], 1u);
                    shared.token[slot][digit[r]] = token[r];
                }
                if (collect) {
                    // One counter add a warp; each matching lane writes at the warp's base + its rank.
                    const unsigned int matching = __ballot_sync(0xffffffffu, digit[r] >= 0);
                    int base = 0;
                    if (lane == 0 && matching != 0u) {
                        base = atomicAdd(&shared.collected[slot], __popc(matching));
                    }
                    base = __shfl_sync(0xffffffffu, base, 0);
                    const int place = base + __popc(matching & ((1u << lane) - 1u));
                    if (digit[r] >= 0 && place < COIL_SELECT_LIST) {
                        shared.list[place] = token[r];
                    }
                }
            }
        }
        COIL_SAMPLE_STAMP(11);
        if (derived) {
            coil_first_pass_from_cut(shared, cut_mass_given);
        } else {
            coil_meet(shared, slot, blocks, few_parts, scaled && shift == 56, target);
            if (scaled && shift == 56) {
                target = shared.target;
            }
            if (first_pass == COIL_FIRST_PASS_KEEP && shift == 56 && threadIdx.x < 256) {
                shared.first_mass[threadIdx.x] = shared.row_mass[threadIdx.x];
                shared.first_count[threadIdx.x] = shared.row_count[threadIdx.x];
                shared.first_token[threadIdx.x] = shared.row_token[threadIdx.x];
            }
        }
        COIL_SAMPLE_STAMP(13);
        // The walk from the top digit down, by warp 0: lane l takes digits 255 - 8l to 248 - 8l, and a
        // warp scan gives each lane the mass above its digits. Running sums are exact (integers).
        if (threadIdx.x < 32) {
            unsigned long long digit_mass[8];
            unsigned int digit_count[8];
            unsigned long long lane_mass = 0ull;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                digit_mass[j] = shared.row_mass[255 - 8 * lane - j];
                digit_count[j] = shared.row_count[255 - 8 * lane - j];
                lane_mass += digit_mass[j];
            }
            unsigned long long inclusive = lane_mass;
#pragma unroll
            for (int offset = 1; offset < 32; offset <<= 1) {
                const unsigned long long other = __shfl_up_sync(0xffffffffu, inclusive, offset);
                inclusive += lane >= offset ? other : 0ull;
            }
            unsigned long long running = before + inclusive - lane_mass;
            int found = -1;
            unsigned long long above = 0ull;
            unsigned long long reached = 0ull;
            if (!exhausted) {
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    if (found < 0 && digit_count[j] != 0) {
                        const double sum = (double) (running + digit_mass[j]) / COIL_MASS_UNIT;
                        if (strict ? sum > target : sum >= target) {
                            found = j;
                            above = running;
                            reached = running + digit_mass[j];
                        }
                    }
                    running += found < 0 ? digit_mass[j] : 0ull;
                }
            }
            const unsigned int crossing = __ballot_sync(0xffffffffu, found >= 0);
            int chosen = -1;
            if (crossing != 0u) {
                const int winner = __ffs(crossing) - 1;
                chosen = __shfl_sync(0xffffffffu, 255 - 8 * lane - found, winner);
                before = __shfl_sync(0xffffffffu, above, winner);
                cut_mass = __shfl_sync(0xffffffffu, reached, winner);
            } else {
                // Rounding kept the sums below the target (or an earlier pass ran out): the smallest
                // kept digit of positive mass, else the smallest kept one. Every kept key of positive
                // mass is then at or above the result.
                if (!exhausted) {
                    cut_mass = before + __shfl_sync(0xffffffffu, inclusive, 31);
                }
                exhausted = true;
                int lowest = -1;
                for (int d = 0; d < 256 && chosen < 0; d++) {
                    if (shared.row_count[d] != 0) {
                        lowest = lowest < 0 ? d : lowest;
                        if (shared.row_mass[d] > 0ull) {
                            chosen = d;
                        }
                    }
                }
                chosen = chosen < 0 ? lowest : chosen;
            }
            if (lane == 0) {
                if (first_pass == COIL_FIRST_PASS_KEEP && shift == 56) {
                    // Kept only where the pass crossed its target (not rounding's fallback).
                    shared.first_digit = crossing != 0u ? chosen : -1;
                    shared.first_before = before;
                }
                shared.prefix = chosen < 0 ? ~0ull : prefix | ((unsigned long long) chosen << shift);
                shared.unique = chosen >= 0 && shared.row_count[chosen] == 1 ? shared.row_token[chosen] : -1;
                shared.cut_mass = cut_mass;
            }
        }
        __syncthreads();
        COIL_SAMPLE_STAMP(14);
        prefix = shared.prefix;
        if (prefix == ~0ull) {
            return prefix;
        }
        mask |= 255ull << shift;
        if (collect && shared.all_listed) {
            listed = shared.collected[slot];
        }
        if (shared.unique >= 0 && shift > 0) {
            // One kept key is left under the prefix: every later pass would choose its digits (a
            // lone key is chosen whether or not its mass reaches the target), so it is the result.
            const int i = shared.unique;
            return key(i, scores[i]);
        }
        __syncthreads();
    }
    return prefix;
}

// The draw in id order (the CPU's candidate order without top-k or top-p): the first id whose
// running weight, summed over surviving ids from 0, passes target (sum > target); when rounding
// never lets it, the last id of positive weight. Written to *out. A radix select over id keys would
// add every token into the same digit counter for its first passes (ids share their top bits), so
// this scans instead, in the same fixed point (integer sums: any order gives the same running sums):
// each warp of each block sums a contiguous range of the block's slice, 32 consecutive ids a round
// (coalesced); the blocks publish their totals; the block whose slice holds the crossing walks its
// warps' sums; the warp whose range holds it walks it again a round at a time, its lanes' running
// sums made by a warp scan, and the first lane past the target is the draw.
template <typename Mass, typename Keep>
static __device__ void coil_draw_by_id(const float* scores, const float* weights, Mass mass, Keep keep,
        double target, CoilRowBlocks& blocks, CoilSelectShared& shared, int* out) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = (blockDim.x + 31) >> 5;
    const int per_warp = (blocks.end - blocks.begin + warps * 32 - 1) / (warps * 32) * 32;
    const int begin = min(blocks.end, blocks.begin + warp * per_warp);
    const int end = min(blocks.end, begin + per_warp);
    auto fixed_mass = [&](int i) {
        if (i >= end) {
            return 0ull;
        }
        const float score = scores[i];
        const float weight = weights[i];
        return keep(i, score, weight) ? coil_fixed_mass(mass(i, score, weight)) : 0ull;
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
    const int slot = blocks.turn++ & 1;
    if (threadIdx.x == 0) {
        unsigned long long total = 0ull;
        int block_last = -1;
        for (int t = 0; t < warps; t++) {
            total += shared.range_mass[t];
            block_last = max(block_last, shared.range_last[t]);
        }
        shared.published[slot][0] = total;
        shared.published[slot][1] = (unsigned long long) (long long) block_last;
    }
    coil_row_sync();
    if (threadIdx.x == 0) {
        const double goal = target * COIL_MASS_UNIT;
        unsigned long long before = 0ull;
        int holder = -1;
        int last_drawable = -1;
        for (unsigned int r = 0; r < blocks.size; r++) {
            const unsigned long long total = coil_row_read(&shared.published[slot][0], r);
            const int block_last = (int) (long long) coil_row_read(&shared.published[slot][1], r);
            last_drawable = block_last >= 0 ? block_last : last_drawable;
            if (holder < 0 && total > 0ull && (double) (before + total) > goal) {
                holder = (int) r;
            } else if (holder < 0) {
                before += total;
            }
        }
        shared.drawn = -1;
        if (holder < 0 && blocks.rank == 0) {
            *out = last_drawable;
        }
        if (holder == (int) blocks.rank) {
            int holder_warp = -1;
            for (int t = 0; t < warps && holder_warp < 0; t++) {
                if (shared.range_mass[t] > 0ull && (double) (before + shared.range_mass[t]) > goal) {
                    holder_warp = t;
                } else {
                    before += shared.range_mass[t];
                }
            }
            shared.prefix = before;
            shared.drawn = -2 - holder_warp;  // -2 - w: warp w walks its range
        }
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
            *out = chosen >= 0 ? chosen : last;
        }
    }
}

// The largest score key of the row (the argmax, ties to the lower id); 0 when every score is -infinity.
static __device__ unsigned long long coil_row_best(const float* scores, CoilRowBlocks& blocks,
        CoilSelectShared& shared) {
    unsigned long long best = 0;
    for (int i = blocks.begin + threadIdx.x; i < blocks.end; i += blockDim.x) {
        const float s = scores[i];
        if (s != -INFINITY) {
            const unsigned long long k = coil_score_key(s, i);
            best = k > best ? k : best;
        }
    }
    return coil_row_reduce<true>(best, blocks, shared);
}

// Greedy: out[row] = argmax of logits[row], ties to the lower id; -1 when every logit is -infinity.
// Grid: (batch), no clusters; block: COIL_SAMPLE_THREADS.
extern "C" __global__ void sampling_argmax_f32(const float* logits, int vocab, int* out) {
    __shared__ CoilSelectShared shared;
    CoilRowBlocks blocks = coil_row_blocks(vocab);
    const unsigned long long best = coil_row_best(logits + (size_t) blockIdx.x * vocab, blocks, shared);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = best == 0 ? -1 : coil_key_id(best);
    }
}

// One row of sampling_sample_f32, by the row's blocks; every block returns at the same point.
// best_id: the row's argmax when the caller knows it (coil_row_best's rule), else -1.
static __device__ void coil_sample_row(const float* scores, int vocab, int k, double temperature, double top_p,
        double min_p, double uniform, int best_id, float* w, int* out, int* survivors, CoilRowBlocks& blocks,
        CoilSelectShared& shared) {
    COIL_SAMPLE_STAMP(0);
    // Every block of the row takes the same branch (best_id is the row's), so their meetings still pair.
    const unsigned long long best = best_id >= 0 ? coil_score_key(scores[best_id], best_id)
                                                  : coil_row_best(scores, blocks, shared);
    COIL_SAMPLE_STAMP(1);
    if (best == 0 || temperature == 0.0) {
        if (blocks.rank == 0 && threadIdx.x == 0) {
            *out = best == 0 ? -1 : coil_key_id(best);
        }
        if (survivors != nullptr) {
            for (int i = blocks.begin + threadIdx.x; i < blocks.end; i += blockDim.x) {
                survivors[i] = 0;
            }
        }
        return;
    }
    const float max = scores[coil_key_id(best)];
    const bool by_count = k > 0 && k < vocab;
    const bool nucleus = top_p < 1.0;
    const bool score_order = by_count || nucleus;
    const float scale = (float) (1.0 / temperature);
    const double floor = min_p;  // min_p times the largest weight, which is the maximum's: exactly 1
    // The weights, and in the same pass the sums that need no cut: top-p's total without top-k (of the
    // float-argument weights, as the CPU's) and, in id order, the survivors' total.
    unsigned long long nucleus_partial = 0ull;
    unsigned long long id_order_partial = 0ull;
    const bool whole_needed = !score_order || (nucleus && !by_count);
    for (int i = blocks.begin + threadIdx.x; i < blocks.end; i += blockDim.x) {
        const float s = scores[i];
        const float whole = whole_needed ? (float) exp((double) __fmul_rn(__fsub_rn(s, max), scale)) : 0.0f;
        const float weight = score_order ? (float) exp(((double) s - (double) max) / temperature) : whole;
        w[i] = weight;
        if (nucleus && !by_count) {
            nucleus_partial += coil_fixed_mass(whole);
        }
        if (!score_order && weight > 0.0f && (min_p <= 0.0 || (double) weight >= floor)) {
            id_order_partial += coil_fixed_mass(weight);
        }
    }
    // Each block reads only its own slice of w.
    __syncthreads();
    COIL_SAMPLE_STAMP(2);
    auto score_key = [](int i, float score) { return coil_score_key(score, i); };
    auto one = [](int, float, float) { return 1.0; };
    auto weight = [](int, float, float weight) { return (double) weight; };
    auto finite = [](int, float score, float) { return score != -INFINITY; };
    unsigned long long cut = 0;
    if (by_count) {
        cut = coil_select(scores, w, score_key, one, finite, (double) k, false, false, 0ull, blocks, shared);
    }
    // Without min-p, top-p's survivors are its select's kept keys at or above the cut: their total
    // is the select's cut mass (the same fixed-point sum a pass over the survivors would make).
    bool survivors_summed = false;
    unsigned long long survivors_mass = 0ull;
    if (nucleus) {
        unsigned long long partial = nucleus_partial;
        if (by_count) {
            for (int i = blocks.begin + threadIdx.x; i < blocks.end; i += blockDim.x) {
                partial += scores[i] != -INFINITY && coil_score_key(scores[i], i) >= cut ? coil_fixed_mass(w[i]) : 0ull;
            }
        }
        COIL_SAMPLE_STAMP(3);
        const unsigned long long top_k_cut = cut;
        auto in_top_k = [top_k_cut](int i, float score, float) {
            return score != -INFINITY && coil_score_key(score, i) >= top_k_cut;
        };
        // The target: top_p times the total, which the select's first pass sums.
        cut = coil_select(scores, w, score_key, weight, in_top_k, top_p, false, true, partial, blocks, shared,
                min_p <= 0.0 ? COIL_FIRST_PASS_KEEP : COIL_FIRST_PASS_OWN);
        COIL_SAMPLE_STAMP(4);
        if (min_p <= 0.0) {
            survivors_mass = shared.cut_mass;
            survivors_summed = true;
        }
    }
    const unsigned long long final_cut = cut;
    auto survives = [=](int i, float score, float weight) {
        return weight > 0.0f && (!score_order || coil_score_key(score, i) >= final_cut)
                && (min_p <= 0.0 || (double) weight >= floor);
    };
    if (survivors != nullptr) {
        for (int i = blocks.begin + threadIdx.x; i < blocks.end; i += blockDim.x) {
            survivors[i] = survives(i, scores[i], w[i]) ? 1 : 0;
        }
    }
    if (score_order) {
        // The target: uniform times the survivors' total, summed by the select's first pass unless known.
        unsigned long long partial = 0ull;
        if (!survivors_summed) {
            for (int i = blocks.begin + threadIdx.x; i < blocks.end; i += blockDim.x) {
                partial += survives(i, scores[i], w[i]) ? coil_fixed_mass(w[i]) : 0ull;
            }
        }
        const double target = survivors_summed ? uniform * ((double) survivors_mass / COIL_MASS_UNIT) : uniform;
        // After top-p without min-p, the survivors are top-p's kept keys at or above its cut: the
        // draw's first pass comes from top-p's.
        const unsigned long long drawn = coil_select(scores, w, score_key, weight, survives, target, true,
                !survivors_summed, partial, blocks, shared,
                survivors_summed ? COIL_FIRST_PASS_FROM_CUT : COIL_FIRST_PASS_OWN, survivors_mass);
        COIL_SAMPLE_STAMP(5);
        if (blocks.rank == 0 && threadIdx.x == 0) {
            *out = coil_key_id(drawn);
        }
    } else {
        survivors_mass = coil_row_reduce<false>(id_order_partial, blocks, shared);
        const double total = (double) survivors_mass / COIL_MASS_UNIT;
        coil_draw_by_id(scores, w, weight, survives, uniform * total, blocks, shared, out);
    }
}

// Filters and one draw per row; temperature-0 rows take the argmax.
//   logits: (batch, vocab), penalised;  top_k: (batch), 0 off;
//   settings: (batch, 4) f64: temperature, top_p, min_p, uniform in [0, 1);
//   weights: (batch, vocab) f32 workspace; out: (batch) the token, -1 when every logit is -infinity;
//   survivors: null, or (batch, vocab) int32 set to 1 where a token survives the filters with a
//   non-zero weight and 0 elsewhere (for tests); host_out: null, or (batch) a second copy of out,
//   typically in page-locked host memory, so that the host reads the tokens without a copy;
//   best_ids: null, or (batch) each row's argmax where a kernel before found it (the lowest id of the
//   largest logit, as logits_argmax_f32 and lm_head_argmax give it), -1 where not: the kernel then
//   skips its own pass for the row's best.
// Weights follow the CPU: w = (float) exp((score - max) / temperature) in double, except that without
// top-k and top-p the CPU keeps its whole-vocabulary weights, exp of the float argument
// (score - max) · (float) (1 / temperature); that form also gives top-p's total without top-k.
// Draw: target = uniform · (sum of surviving weights), then the first survivor, in score order when
// top-k or top-p is on and in id order otherwise (the CPU's candidate order), whose running sum
// passes the target. Grid: (batch · blocks a row), in clusters of the blocks a row on sm_90 (1, 2, 4,
// 8 or 16); block: COIL_SAMPLE_THREADS.
extern "C" __global__ void __launch_bounds__(COIL_SAMPLE_THREADS) sampling_sample_f32(const float* logits, int vocab,
        const int* __restrict__ top_k, const double* __restrict__ settings, float* weights, int* out, int* survivors,
        int* host_out, const int* __restrict__ best_ids) {
    __shared__ CoilSelectShared shared;
    coil_trace_mark(COIL_MARK_SAMPLING_START);
    CoilRowBlocks blocks = coil_row_blocks(vocab);
    const int row = blockIdx.x / blocks.size;
    coil_sample_row(logits + (size_t) row * vocab, vocab, top_k[row], settings[row * 4], settings[row * 4 + 1],
            settings[row * 4 + 2], settings[row * 4 + 3], best_ids != nullptr ? best_ids[row] : -1,
            weights + (size_t) row * vocab, out + row,
            survivors == nullptr ? nullptr : survivors + (size_t) row * vocab, blocks, shared);
    // No block leaves while another may still read its shared memory; after this barrier every
    // block's writes are seen by the others, the token (which any of the row's blocks may write) too.
    coil_row_sync();
    if (host_out != nullptr && blocks.rank == 0 && threadIdx.x == 0) {
        host_out[row] = out[row];
    }
    coil_trace_mark(COIL_MARK_SAMPLING_END);
}
