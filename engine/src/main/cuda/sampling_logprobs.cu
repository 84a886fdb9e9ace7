// Log-probabilities of drawn tokens on the device: what runner/Sampler.logSoftmax and topLogprobs give
// the host, for the rows whose requests ask for logprobs, so that their logits need not come back. The
// same records score a prompt's rows (prompt logprobs): sampling_logprobs_prompt_f32 then sets each
// row's given token's log-probability and rank (runner/Sampler.rank) in place of a drawn token's.
//
// Two launches around a step's draw. Before the grammar's mask, the bias and the penalties rewrite the
// logits in place, sampling_logprobs_top_f32 reads each such row's logits (divided by the model's
// divisor, as the host sees them) and writes its record: the log normalizer max + log(sum exp(x - max))
// (the exponentials in float, as the host's ExpWeights, their sum in fixed point), the `top` most
// likely tokens (larger log-probability first, equal ones by the lower id; -infinity left out, as the
// host's TopTokens), and a copy of the row. A row is split over a cluster of blocks where the batch
// leaves multiprocessors idle (on an H200 a row of 49160 takes one block 34 µs, eight 13). After the draw,
// sampling_logprobs_chosen_f32 reads the drawn token's logit from that copy. A step whose rows are all
// greedy and whose logits nothing rewrites needs neither the draw nor the copy: the first launch takes
// each row's argmax as it reads the row (its `tokens` arguments) and writes the chosen log-probability.
//
// Record of a row, in 4-byte words: [0, 2) the log normalizer (f64); [2] tokens found (int32, at most
// top); [3] the chosen token's log-probability (f32); [4, 4 + MOST) their ids; [4 + MOST, 4 + 2 MOST)
// their log-probabilities (f32), MOST = COIL_LOGPROB_MOST_TOP.
#include "common.cuh"
#include "row_blocks.cuh"

#define COIL_LOGPROB_THREADS 512
#define COIL_LOGPROB_WARPS (COIL_LOGPROB_THREADS / 32)
// OpenAI's largest top_logprobs; LogprobsKernel.MOST_TOP.
#define COIL_LOGPROB_MOST_TOP 20
#define COIL_LOGPROB_WORDS (4 + 2 * COIL_LOGPROB_MOST_TOP)
// The sum of exp(x - max) is kept in fixed point, 2^43 a unit: each term (at most 1) rounded to
// 2^-44, the sum exact whatever the order, so that a record does not depend on how many blocks took its
// row (a request's logprobs are the same at batch 1 as beside 63 others); 2^20 terms stay below 2^63.
#define COIL_LOGPROB_UNIT 8796093022208.0

static_assert(COIL_LOGPROB_WARPS <= 32 && COIL_LOGPROB_MOST_TOP <= 32, "a warp merges the warps' lists, a lane each");

// A logit as the host sees it: divided by the model's logits divisor (1: as it is), rounded as the host's
// float division.
static __device__ __forceinline__ float coil_logprob_logit(const float* row, int id, float divisor) {
    return divisor == 1.0f ? row[id] : __fdiv_rn(row[id], divisor);
}

// Chunks of four logits a thread holds in registers from the first pass to the last: a row's slice
// up to COIL_LOGPROB_THREADS · 16 logits (8192) is read from memory once, in 16-byte loads; the
// chunks past them are read again in each pass. A block alone holds a few loads in flight, so a pass
// over memory costs it about a latency a round of loads.
#define COIL_LOGPROB_HELD 4

// A block's slice of its row: [begin, end), begin a multiple of 4, so that the slice's chunks of four
// are 16-byte aligned where the row is.
struct CoilLogprobSlice {
    int begin;
    int end;
    int chunks;  // ceil((end - begin) / 4)
};

static __device__ __forceinline__ CoilLogprobSlice coil_logprob_slice(const CoilRowBlocks& blocks, int vocab) {
    const int per_block = (((vocab + (int) blocks.size - 1) / (int) blocks.size) + 3) & ~3;
    CoilLogprobSlice slice;
    slice.begin = min(vocab, (int) blocks.rank * per_block);
    slice.end = min(vocab, slice.begin + per_block);
    slice.chunks = (slice.end - slice.begin + 3) / 4;
    return slice;
}

// Logits [first, first + 4) as the host sees them (coil_logprob_logit), -infinity past end; one 16-byte
// load where the row is aligned and the chunk whole.
static __device__ __forceinline__ float4 coil_logprob_chunk(const float* row, int first, int end, bool aligned,
        float divisor) {
    float4 chunk;
    if (aligned && first + 4 <= end) {
        chunk = *reinterpret_cast<const float4*>(row + first);
        if (divisor != 1.0f) {
            chunk = make_float4(__fdiv_rn(chunk.x, divisor), __fdiv_rn(chunk.y, divisor),
                    __fdiv_rn(chunk.z, divisor), __fdiv_rn(chunk.w, divisor));
        }
        return chunk;
    }
    chunk.x = first < end ? coil_logprob_logit(row, first, divisor) : -INFINITY;
    chunk.y = first + 1 < end ? coil_logprob_logit(row, first + 1, divisor) : -INFINITY;
    chunk.z = first + 2 < end ? coil_logprob_logit(row, first + 2, divisor) : -INFINITY;
    chunk.w = first + 3 < end ? coil_logprob_logit(row, first + 3, divisor) : -INFINITY;
    return chunk;
}

// Stores a chunk's logits before end into copy (the copy's row, aligned or not).
static __device__ __forceinline__ void coil_logprob_store(float* copy, int first, int end, bool aligned,
        float4 chunk) {
    if (aligned && first + 4 <= end) {
        *reinterpret_cast<float4*>(copy + first) = chunk;
        return;
    }
    const float values[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        if (first + j < end) {
            copy[first + j] = values[j];
        }
    }
}

static __device__ __forceinline__ float coil_chunk_max(float4 chunk) {
    return fmaxf(fmaxf(chunk.x, chunk.y), fmaxf(chunk.z, chunk.w));
}

// The largest score key (row_blocks.cuh: the argmax's rule) of a chunk's finite logits; 0 for none.
static __device__ __forceinline__ unsigned long long coil_chunk_key(float4 chunk, int first) {
    const float values[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
    unsigned long long best = 0ull;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const unsigned long long key = values[j] != -INFINITY ? coil_score_key(values[j], first + j) : 0ull;
        best = key > best ? key : best;
    }
    return best;
}

// exp(x - largest) of each, in float as the host's ExpWeights, in fixed point (-infinity adds 0).
static __device__ __forceinline__ unsigned long long coil_chunk_weights(float4 chunk, float largest) {
    return __double2ull_rn((double) expf(__fsub_rn(chunk.x, largest)) * COIL_LOGPROB_UNIT)
            + __double2ull_rn((double) expf(__fsub_rn(chunk.y, largest)) * COIL_LOGPROB_UNIT)
            + __double2ull_rn((double) expf(__fsub_rn(chunk.z, largest)) * COIL_LOGPROB_UNIT)
            + __double2ull_rn((double) expf(__fsub_rn(chunk.w, largest)) * COIL_LOGPROB_UNIT);
}

// A warp's best `top` tokens so far, as a sorted list a lane an entry (coil_better's order: larger
// first, the lower id on ties); `last` is the list's last entry once it holds `top`.
struct CoilWarpList {
    float entry;
    int entry_id;
    int kept;
    float last;
    int last_id;
};

// Every lane offers one token (a finite log-probability, or none); those that would enter the list go
// in one by one, in any order, each placed after the entries better than it.
static __device__ __forceinline__ void coil_warp_offer(CoilWarpList& list, float logprob, int id, bool finite,
        int top, int lane) {
    unsigned int offered = __ballot_sync(0xffffffffu, finite
            && (list.kept < top || logprob > list.last || (logprob == list.last && id < list.last_id)));
    while (offered != 0u) {
        const int from = __ffs(offered) - 1;
        offered &= offered - 1;
        const float value = __shfl_sync(0xffffffffu, logprob, from);
        const int value_id = __shfl_sync(0xffffffffu, id, from);
        if (list.kept == top && !(value > list.last || (value == list.last && value_id < list.last_id))) {
            continue;  // the list's last entry rose past it since the lanes offered
        }
        const int place = __popc(__ballot_sync(0xffffffffu, lane < list.kept
                && (list.entry > value || (list.entry == value && list.entry_id < value_id))));
        const float above = __shfl_up_sync(0xffffffffu, list.entry, 1);
        const int above_id = __shfl_up_sync(0xffffffffu, list.entry_id, 1);
        if (lane > place && lane < top) {
            list.entry = above;
            list.entry_id = above_id;
        } else if (lane == place) {
            list.entry = value;
            list.entry_id = value_id;
        }
        list.kept = min(list.kept + 1, top);
        list.last = __shfl_sync(0xffffffffu, list.entry, top - 1);
        list.last_id = __shfl_sync(0xffffffffu, list.entry_id, top - 1);
    }
}

// A chunk's four tokens offered to the warp's list, one ballot each; `skip` (an id) is not offered.
static __device__ __forceinline__ void coil_warp_offer_chunk(CoilWarpList& list, float4 chunk, int first,
        double normalizer, int top, int lane, int skip) {
    const float values[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const bool finite = values[j] != -INFINITY && first + j != skip;
        const float logprob = finite ? (float) ((double) values[j] - normalizer) : -INFINITY;
        coil_warp_offer(list, logprob, first + j, finite, top, lane);
    }
}

// The warp's 32 (value, id) pairs sorted in coil_better's order, lane 0 the best (a bitonic sort).
static __device__ __forceinline__ void coil_warp_sort(float& value, int& id, int lane) {
#pragma unroll
    for (int size = 2; size <= 32; size <<= 1) {
#pragma unroll
        for (int stride = size / 2; stride > 0; stride >>= 1) {
            const float other = __shfl_xor_sync(0xffffffffu, value, stride);
            const int other_id = __shfl_xor_sync(0xffffffffu, id, stride);
            const bool other_better = other > value || (other == value && other_id < id);
            // In a run sorted best first the lower lane of a pair keeps the better; runs alternate.
            const bool best_first = (lane & size) == 0;
            const bool lower = (lane & stride) == 0;
            if (lower == best_first ? other_better : !other_better && !(other == value && other_id == id)) {
                value = other;
                id = other_id;
            }
        }
    }
}

struct CoilLogprobShared {
    float warp_values[COIL_LOGPROB_WARPS][COIL_LOGPROB_MOST_TOP];  // each warp's best, sorted
    int warp_ids[COIL_LOGPROB_WARPS][COIL_LOGPROB_MOST_TOP];
    int warp_found[COIL_LOGPROB_WARPS];
    float warp_max[COIL_LOGPROB_WARPS];
    unsigned long long warp_key[COIL_LOGPROB_WARPS];
    unsigned long long warp_sum[COIL_LOGPROB_WARPS];
    // What a block publishes to its row's other blocks.
    float block_max;
    unsigned long long block_key;  // the slice's argmax key, where the launch draws greedy tokens
    unsigned long long block_sum;
    float block_values[COIL_LOGPROB_MOST_TOP];  // the block's best, sorted
    int block_ids[COIL_LOGPROB_MOST_TOP];
    int block_found;
    // The row's first block: every block's list, read at once rather than a remote read a merge round.
    float row_values[COIL_ROW_MOST_BLOCKS][COIL_LOGPROB_MOST_TOP];
    int row_ids[COIL_ROW_MOST_BLOCKS][COIL_LOGPROB_MOST_TOP];
    int row_found[COIL_ROW_MOST_BLOCKS];
};

// The best `top` of `lists` sorted lists (list l: values[l], ids[l], found[l] long; at most 32), by one
// warp, lane l holding list l: each round every lane offers its list's head (-infinity and no id once
// spent), the warp picks the best (coil_better: larger first, the lower id on ties), and the lane whose
// head it was moves past it (an id is in one list only). Lane 0 writes them to out_values and out_ids;
// every lane returns how many there are (fewer than top once every list is spent).
static __device__ int coil_merge_lists(const float (*values)[COIL_LOGPROB_MOST_TOP],
        const int (*ids)[COIL_LOGPROB_MOST_TOP], const int* found, int lists, int top, int lane, float* out_values,
        int* out_ids) {
    const bool holds = lane < lists;
    const int listed = holds ? found[lane] : 0;
    const float* mine = values[holds ? lane : 0];
    const int* mine_ids = ids[holds ? lane : 0];
    int head = 0;
    int merged = 0;
    while (merged < top) {
        float value = head < listed ? mine[head] : -INFINITY;
        int id = head < listed ? mine_ids[head] : 0x7fffffff;
        coil_warp_better(value, id);
        if (id == 0x7fffffff) {
            break;
        }
        if (head < listed && mine_ids[head] == id) {
            head++;
        }
        if (lane == 0) {
            out_values[merged] = value;
            out_ids[merged] = id;
        }
        merged++;
    }
    return merged;
}

// Grid: (records · blocks a row), on sm_90 in clusters of the blocks a row (1 to 16; elsewhere 1), each
// block a slice of the row; COIL_LOGPROB_THREADS threads. logits: (batch, vocab) f32, each divided by
// `divisor` as it is read; rows: per record, its row of logits; tops: per record, how many top tokens
// (0 to MOST); raw: (records, vocab) f32, the copy, or null for none; records: (records,
// COIL_LOGPROB_WORDS) words, as above. vocab at most 2^20.
// tokens, host_tokens: (batch) int32 by row of logits, or null: where given, the launch is also the
// greedy draw of its rows: tokens[rows[i]] (and host_tokens[rows[i]]) = the row's argmax (the largest
// divided logit, the lower id on ties; -1 when every logit is -infinity, as sampling_sample_f32 at
// temperature 0), and the record's chosen log-probability is that token's (what
// sampling_logprobs_chosen_f32 would give it), so that a step of greedy rows that all want logprobs
// and whose logits nothing rewrites needs no other launch.
extern "C" __global__ void __launch_bounds__(COIL_LOGPROB_THREADS) sampling_logprobs_top_f32(
        const float* __restrict__ logits, int vocab, float divisor, const int* __restrict__ rows,
        const int* __restrict__ tops, float* __restrict__ raw, unsigned int* __restrict__ records,
        int* __restrict__ tokens, int* __restrict__ host_tokens) {
    __shared__ CoilLogprobShared shared;
    CoilRowBlocks blocks = coil_row_blocks(vocab);
    const CoilLogprobSlice slice = coil_logprob_slice(blocks, vocab);
    const int record = blockIdx.x / blocks.size;
    const float* row = logits + (size_t) rows[record] * vocab;
    float* copy = raw == nullptr ? nullptr : raw + (size_t) record * vocab;
    const bool row_aligned = coil_aligned16(row);
    const bool copy_aligned = copy != nullptr && coil_aligned16(copy);
    const int top = min(max(tops[record], 0), COIL_LOGPROB_MOST_TOP);
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    // This thread's chunks: threadIdx.x + k · THREADS, the first HELD of them kept in registers.
    auto first_of = [&](int chunk) { return slice.begin + 4 * chunk; };
    constexpr int rest = COIL_LOGPROB_HELD * COIL_LOGPROB_THREADS;

    // The row's largest logit (and where the launch draws, its argmax key): the slice's, then every block's.
    const bool draws = tokens != nullptr;
    float4 held[COIL_LOGPROB_HELD];
    float largest = -INFINITY;
    unsigned long long best_key = 0ull;
#pragma unroll
    for (int k = 0; k < COIL_LOGPROB_HELD; k++) {
        const int chunk = threadIdx.x + k * COIL_LOGPROB_THREADS;
        held[k] = chunk < slice.chunks ? coil_logprob_chunk(row, first_of(chunk), slice.end, row_aligned, divisor)
                                       : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
        largest = fmaxf(largest, coil_chunk_max(held[k]));
        if (draws) {
            const unsigned long long key = coil_chunk_key(held[k], first_of(chunk));
            best_key = key > best_key ? key : best_key;
        }
    }
#pragma unroll 4
    for (int chunk = threadIdx.x + rest; chunk < slice.chunks; chunk += COIL_LOGPROB_THREADS) {
        const float4 values = coil_logprob_chunk(row, first_of(chunk), slice.end, row_aligned, divisor);
        largest = fmaxf(largest, coil_chunk_max(values));
        if (draws) {
            const unsigned long long key = coil_chunk_key(values, first_of(chunk));
            best_key = key > best_key ? key : best_key;
        }
    }
    largest = coil_warp_max(largest);
    if (draws) {
        for (int offset = 16; offset > 0; offset >>= 1) {
            const unsigned long long other = __shfl_xor_sync(0xffffffffu, best_key, offset);
            best_key = other > best_key ? other : best_key;
        }
    }
    if (lane == 0) {
        shared.warp_max[warp] = largest;
        shared.warp_key[warp] = best_key;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float block = shared.warp_max[0];
        unsigned long long block_key = shared.warp_key[0];
        for (int w = 1; w < COIL_LOGPROB_WARPS; w++) {
            block = fmaxf(block, shared.warp_max[w]);
            block_key = shared.warp_key[w] > block_key ? shared.warp_key[w] : block_key;
        }
        shared.block_max = block;
        shared.block_key = block_key;
    }
    coil_row_sync();
    largest = -INFINITY;
    for (unsigned int r = 0; r < blocks.size; r++) {
        largest = fmaxf(largest, coil_row_read(&shared.block_max, r));
    }

    // The sum of exp(x - max) in fixed point; the row copied on the way.
    unsigned long long sum = 0ull;
#pragma unroll
    for (int k = 0; k < COIL_LOGPROB_HELD; k++) {
        const int chunk = threadIdx.x + k * COIL_LOGPROB_THREADS;
        if (chunk < slice.chunks) {
            sum += coil_chunk_weights(held[k], largest);
            if (copy != nullptr) {
                coil_logprob_store(copy, first_of(chunk), slice.end, copy_aligned, held[k]);
            }
        }
    }
#pragma unroll 4
    for (int chunk = threadIdx.x + rest; chunk < slice.chunks; chunk += COIL_LOGPROB_THREADS) {
        const float4 values = coil_logprob_chunk(row, first_of(chunk), slice.end, row_aligned, divisor);
        sum += coil_chunk_weights(values, largest);
        if (copy != nullptr) {
            coil_logprob_store(copy, first_of(chunk), slice.end, copy_aligned, values);
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    }
    if (lane == 0) {
        shared.warp_sum[warp] = sum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned long long block = 0ull;
        for (int w = 0; w < COIL_LOGPROB_WARPS; w++) {
            block += shared.warp_sum[w];
        }
        shared.block_sum = block;
    }
    coil_row_sync();
    sum = 0ull;
    for (unsigned int r = 0; r < blocks.size; r++) {
        sum += coil_row_read(&shared.block_sum, r);
    }
    const double normalizer = (double) largest + log((double) sum / COIL_LOGPROB_UNIT);

    // Each warp's best `top` of its tokens (the warp's chunks go round together, so a ballot is the warp's).
    // The list starts as the best of the lanes' best held tokens, sorted at once, so that few of the
    // tokens offered after them pass its last entry and go in one at a time.
    CoilWarpList list = {-INFINITY, 0x7fffffff, 0, -INFINITY, 0x7fffffff};
    if (top > 0) {
        float best = -INFINITY;
        int best_id = 0x7fffffff;
#pragma unroll
        for (int k = 0; k < COIL_LOGPROB_HELD; k++) {
            const int first = first_of(threadIdx.x + k * COIL_LOGPROB_THREADS);
            const float values[4] = {held[k].x, held[k].y, held[k].z, held[k].w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                if (values[j] != -INFINITY) {
                    coil_better(best, best_id, (float) ((double) values[j] - normalizer), first + j);
                }
            }
        }
        const int lane_best_id = best_id;
        coil_warp_sort(best, best_id, lane);
        list.entry = lane < top ? best : -INFINITY;
        list.entry_id = lane < top ? best_id : 0x7fffffff;
        list.kept = min(top, __popc(__ballot_sync(0xffffffffu, best_id != 0x7fffffff)));
        list.last = __shfl_sync(0xffffffffu, list.entry, top - 1);
        list.last_id = __shfl_sync(0xffffffffu, list.entry_id, top - 1);
#pragma unroll
        for (int k = 0; k < COIL_LOGPROB_HELD; k++) {
            const int chunk = threadIdx.x + k * COIL_LOGPROB_THREADS;
            coil_warp_offer_chunk(list, held[k], first_of(chunk), normalizer, top, lane, lane_best_id);
        }
        for (int chunk = threadIdx.x + rest; chunk - lane < slice.chunks; chunk += COIL_LOGPROB_THREADS) {
            const float4 values = chunk < slice.chunks
                    ? coil_logprob_chunk(row, first_of(chunk), slice.end, row_aligned, divisor)
                    : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
            coil_warp_offer_chunk(list, values, first_of(chunk), normalizer, top, lane, -1);
        }
    }
    const float entry = list.entry;
    const int entry_id = list.entry_id;
    const int kept = list.kept;
    if (lane < kept) {
        shared.warp_values[warp][lane] = entry;
        shared.warp_ids[warp][lane] = entry_id;
    }
    if (lane == 0) {
        shared.warp_found[warp] = kept;
    }
    __syncthreads();

    // Warp 0 merges the warps' lists into the block's.
    if (warp == 0) {
        const int found = coil_merge_lists(shared.warp_values, shared.warp_ids, shared.warp_found, COIL_LOGPROB_WARPS,
                top, lane, shared.block_values, shared.block_ids);
        if (lane == 0) {
            shared.block_found = found;
        }
    }
    coil_row_sync();

    // The row's first block copies the blocks' lists out of their shared memory (the other blocks wait at
    // the last barrier until it has), then merges them, lane r holding block r's.
    if (blocks.rank == 0 && warp == 0) {
        for (int at = lane; at < (int) blocks.size * top; at += 32) {
            const unsigned int from = (unsigned int) (at / top);
            shared.row_values[from][at % top] = coil_row_read(&shared.block_values[at % top], from);
            shared.row_ids[from][at % top] = coil_row_read(&shared.block_ids[at % top], from);
        }
        if (lane < (int) blocks.size) {
            shared.row_found[lane] = coil_row_read(&shared.block_found, (unsigned int) lane);
        }
        __syncwarp();
        unsigned int* out = records + (size_t) record * COIL_LOGPROB_WORDS;
        const int found = coil_merge_lists(shared.row_values, shared.row_ids, shared.row_found, (int) blocks.size, top,
                lane, reinterpret_cast<float*>(out + 4 + COIL_LOGPROB_MOST_TOP), reinterpret_cast<int*>(out + 4));
        if (lane == 0) {
            const unsigned long long bits = (unsigned long long) __double_as_longlong(normalizer);
            out[0] = (unsigned int) bits;
            out[1] = (unsigned int) (bits >> 32);
            out[2] = (unsigned int) found;
            out[3] = __float_as_uint(__int_as_float(0x7fc00000));  // NaN until the chosen token is known
            if (draws) {
                unsigned long long key = 0ull;
                for (unsigned int r = 0; r < blocks.size; r++) {
                    const unsigned long long other = coil_row_read(&shared.block_key, r);
                    key = other > key ? other : key;
                }
                const int token = key == 0ull ? -1 : coil_key_id(key);
                tokens[rows[record]] = token;
                if (host_tokens != nullptr) {
                    host_tokens[rows[record]] = token;
                }
                if (token >= 0) {
                    out[3] = __float_as_uint((float) ((double) coil_logprob_logit(row, token, divisor) - normalizer));
                }
            }
        }
    }
    coil_row_sync();
}

// Grid: one thread a record, in blocks of 128. tokens: (batch) int32, the step's chosen tokens by row of
// logits; the rest as above. A token outside the vocabulary (a row of -infinity) leaves NaN.
extern "C" __global__ void sampling_logprobs_chosen_f32(const float* __restrict__ raw, int vocab, int count,
        const int* __restrict__ rows, const int* __restrict__ tokens, unsigned int* __restrict__ records) {
    const int record = blockIdx.x * blockDim.x + threadIdx.x;
    if (record >= count) {
        return;
    }
    unsigned int* out = records + (size_t) record * COIL_LOGPROB_WORDS;
    const int token = tokens[rows[record]];
    if (token < 0 || token >= vocab) {
        return;
    }
    const double normalizer = __longlong_as_double((long long) (((unsigned long long) out[1] << 32) | out[0]));
    out[3] = __float_as_uint((float) ((double) raw[(size_t) record * vocab + token] - normalizer));
}

#define COIL_LOGPROB_PROMPT_THREADS 256

// A prompt's rows, after sampling_logprobs_top_f32 with the same logits, rows and divisor. Grid: (records),
// COIL_LOGPROB_PROMPT_THREADS threads. tokens: per record, the token whose log-probability and rank
// it gets (the prompt token after its row), or -1 for none; ranks: (records) int32, 1 + the count of
// the row's log-probabilities above that token's, as floats (as the host's Sampler.rank: logits a
// float apart may round to one log-probability), or 0 for none.
extern "C" __global__ void __launch_bounds__(COIL_LOGPROB_PROMPT_THREADS) sampling_logprobs_prompt_f32(
        const float* __restrict__ logits, int vocab, float divisor, const int* __restrict__ rows,
        const int* __restrict__ tokens, unsigned int* __restrict__ records, int* __restrict__ ranks) {
    __shared__ int warp_counts[COIL_LOGPROB_PROMPT_THREADS / 32];
    const int record = blockIdx.x;
    const int token = tokens[record];
    if (token < 0 || token >= vocab) {
        if (threadIdx.x == 0) {
            ranks[record] = 0;
        }
        return;
    }
    const float* row = logits + (size_t) rows[record] * vocab;
    unsigned int* out = records + (size_t) record * COIL_LOGPROB_WORDS;
    const double normalizer = __longlong_as_double((long long) (((unsigned long long) out[1] << 32) | out[0]));
    const float chosen = (float) ((double) coil_logprob_logit(row, token, divisor) - normalizer);
    int above = 0;
    for (int id = threadIdx.x; id < vocab; id += COIL_LOGPROB_PROMPT_THREADS) {
        above += (float) ((double) coil_logprob_logit(row, id, divisor) - normalizer) > chosen ? 1 : 0;
    }
    above = __reduce_add_sync(0xffffffffu, above);
    if (threadIdx.x % 32 == 0) {
        warp_counts[threadIdx.x / 32] = above;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int total = 0;
        for (int w = 0; w < COIL_LOGPROB_PROMPT_THREADS / 32; w++) {
            total += warp_counts[w];
        }
        ranks[record] = total + 1;
        out[3] = __float_as_uint(chosen);
    }
}
