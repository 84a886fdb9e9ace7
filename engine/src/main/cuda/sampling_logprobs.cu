// Log-probabilities of drawn tokens on the device: what runner/Sampler.logSoftmax and topLogprobs give
// the host, for the rows whose requests ask for logprobs, so that their logits need not come back. The
// same records score a prompt's rows (prompt logprobs): sampling_logprobs_prompt_f32 then sets each
// row's given token's log-probability and rank (runner/Sampler.rank) in place of a drawn token's.
//
// Two launches around a step's draw. Before the grammar's mask, the bias and the penalties rewrite the
// logits in place, sampling_logprobs_top_f32 reads each such row's logits (divided by the model's
// divisor, as the host sees them) and writes its record: the log normalizer max + log(sum exp(x - max))
// (the exponentials in float, their sum in double, as the host's ExpWeights), the `top` most likely
// tokens (larger log-probability first, equal ones by the lower id; -infinity left out, as the host's
// TopTokens), and a copy of the row. After the draw, sampling_logprobs_chosen_f32 reads the drawn token's
// logit from that copy.
//
// Record of a row, in 4-byte words: [0, 2) the log normalizer (f64); [2] tokens found (int32, at most
// top); [3] the chosen token's log-probability (f32); [4, 4 + MOST) their ids; [4 + MOST, 4 + 2 MOST)
// their log-probabilities (f32), MOST = COIL_LOGPROB_MOST_TOP.
#include "common.cuh"

#define COIL_LOGPROB_THREADS 1024
#define COIL_LOGPROB_WARPS (COIL_LOGPROB_THREADS / 32)
// OpenAI's largest top_logprobs; LogprobsKernel.MOST_TOP.
#define COIL_LOGPROB_MOST_TOP 20
#define COIL_LOGPROB_WORDS (4 + 2 * COIL_LOGPROB_MOST_TOP)

// A logit as the host sees it: divided by the model's logits divisor (1: as it is), rounded as the host's
// float division.
static __device__ __forceinline__ float coil_logprob_logit(const float* row, int id, float divisor) {
    return divisor == 1.0f ? row[id] : __fdiv_rn(row[id], divisor);
}

// Grid: (records). logits: (batch, vocab) f32, each divided by `divisor` as it is read; rows: per record,
// its row of logits; tops: per record, how many top tokens (0 to MOST); raw: (records, vocab) f32, the
// copy, or null for none; records: (records, COIL_LOGPROB_WORDS) words, as above.
extern "C" __global__ void __launch_bounds__(COIL_LOGPROB_THREADS) sampling_logprobs_top_f32(
        const float* __restrict__ logits, int vocab, float divisor, const int* __restrict__ rows,
        const int* __restrict__ tops, float* __restrict__ raw, unsigned int* __restrict__ records) {
    // Each warp's best `top`, sorted; then the row's.
    __shared__ float warp_values[COIL_LOGPROB_WARPS][COIL_LOGPROB_MOST_TOP];
    __shared__ int warp_ids[COIL_LOGPROB_WARPS][COIL_LOGPROB_MOST_TOP];
    __shared__ int warp_found[COIL_LOGPROB_WARPS];
    __shared__ float max_scratch[COIL_LOGPROB_WARPS];
    __shared__ double sum_scratch[COIL_LOGPROB_WARPS];

    const int record = blockIdx.x;
    const float* row = logits + (size_t) rows[record] * vocab;
    float* copy = raw == nullptr ? nullptr : raw + (size_t) record * vocab;
    const int top = min(max(tops[record], 0), COIL_LOGPROB_MOST_TOP);
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;

    // The row's largest logit.
    float largest = -INFINITY;
#pragma unroll 4
    for (int id = threadIdx.x; id < vocab; id += COIL_LOGPROB_THREADS) {
        largest = fmaxf(largest, coil_logprob_logit(row, id, divisor));
    }
    largest = coil_warp_max(largest);
    if (lane == 0) {
        max_scratch[warp] = largest;
    }
    __syncthreads();
    largest = max_scratch[0];
    for (int w = 1; w < COIL_LOGPROB_WARPS; w++) {
        largest = fmaxf(largest, max_scratch[w]);
    }

    // The sum of exp(x - max) (each in float, summed in double, in the same order on every run), copying
    // the row on the way.
    double sum = 0.0;
#pragma unroll 4
    for (int id = threadIdx.x; id < vocab; id += COIL_LOGPROB_THREADS) {
        const float x = coil_logprob_logit(row, id, divisor);
        if (copy != nullptr) {
            copy[id] = x;
        }
        sum += (double) expf(__fsub_rn(x, largest));
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    }
    if (lane == 0) {
        sum_scratch[warp] = sum;
    }
    __syncthreads();
    sum = 0.0;
    for (int w = 0; w < COIL_LOGPROB_WARPS; w++) {
        sum += sum_scratch[w];
    }
    const double normalizer = (double) largest + log(sum);

    // Each thread's best `top` of its ids, sorted (ids visited in increasing order, so an equal value
    // never displaces a kept lower id).
    float mine[COIL_LOGPROB_MOST_TOP];
    int mine_ids[COIL_LOGPROB_MOST_TOP];
    int kept = 0;
    if (top > 0) {
        for (int id = threadIdx.x; id < vocab; id += COIL_LOGPROB_THREADS) {
            const float x = coil_logprob_logit(row, id, divisor);
            if (x == -INFINITY) {
                continue;
            }
            const float logprob = (float) ((double) x - normalizer);
            if (kept == top && !(logprob > mine[top - 1])) {
                continue;
            }
            int at = kept < top ? kept++ : top - 1;
            while (at > 0 && logprob > mine[at - 1]) {
                mine[at] = mine[at - 1];
                mine_ids[at] = mine_ids[at - 1];
                at--;
            }
            mine[at] = logprob;
            mine_ids[at] = id;
        }
    }

    // Each warp merges its lanes' lists: `top` rounds of the best head (coil_better's order: larger
    // first, the lower id on ties), whose lane moves past it. An id is in one lane's list only, so the
    // winning id names its lane.
    int head = 0;
    int found = 0;
    for (int round = 0; round < top; round++) {
        float value = head < kept ? mine[head] : -INFINITY;
        int id = head < kept ? mine_ids[head] : 0x7fffffff;
        coil_warp_better(value, id);
        if (id == 0x7fffffff) {
            break;  // every list of the warp is spent
        }
        if (head < kept && mine_ids[head] == id) {
            head++;
        }
        if (lane == 0) {
            warp_values[warp][round] = value;
            warp_ids[warp][round] = id;
        }
        found++;
    }
    if (lane == 0) {
        warp_found[warp] = found;
    }
    __syncthreads();

    // Warp 0 merges the warps' lists the same way, lane w holding warp w's (an id in one warp's only).
    if (warp != 0) {
        return;
    }
    unsigned int* out = records + (size_t) record * COIL_LOGPROB_WORDS;
    head = 0;
    found = 0;
    const int listed = warp_found[lane];
    for (int round = 0; round < top; round++) {
        float value = head < listed ? warp_values[lane][head] : -INFINITY;
        int id = head < listed ? warp_ids[lane][head] : 0x7fffffff;
        coil_warp_better(value, id);
        if (id == 0x7fffffff) {
            break;  // fewer finite logits than top
        }
        if (head < listed && warp_ids[lane][head] == id) {
            head++;
        }
        if (lane == 0) {
            out[4 + round] = (unsigned int) id;
            out[4 + COIL_LOGPROB_MOST_TOP + round] = __float_as_uint(value);
        }
        found++;
    }
    if (lane == 0) {
        const unsigned long long bits = (unsigned long long) __double_as_longlong(normalizer);
        out[0] = (unsigned int) bits;
        out[1] = (unsigned int) (bits >> 32);
        out[2] = (unsigned int) found;
        out[3] = __float_as_uint(__int_as_float(0x7fc00000));  // NaN until the chosen token is known
    }
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
