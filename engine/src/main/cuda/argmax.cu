// Greedy decoding on the device: the next token of each row of logits, so a greedy request's
// step copies back one int instead of a vocabulary of floats.
#include "common.cuh"

#define COIL_ARGMAX_THREADS 1024

// out[row] = the lowest id of the largest logit of row (logits: (rows, vocab)), as runner/Sampler's
// argmax; -1 when the row holds a NaN or +infinity, or only -infinity (the CPU sampler refuses those).
// Grid: (rows); block: COIL_ARGMAX_THREADS.
extern "C" __global__ void __launch_bounds__(COIL_ARGMAX_THREADS) logits_argmax_f32(const float* __restrict__ logits,
        int vocab, int* __restrict__ out) {
    COIL_AFTER_PREVIOUS_KERNEL();
    __shared__ float values[32];
    __shared__ int ids[32];
    __shared__ int invalid;
    const float* row = logits + (size_t) blockIdx.x * vocab;
    if (threadIdx.x == 0) {
        invalid = 0;
    }
    __syncthreads();
    float best = -INFINITY;
    int best_id = 0x7fffffff;
    bool bad = false;
    // Each thread's ids rise, so the first of equal values it sees is its lowest id. Rows of a
    // multiple of 4 floats are read 16 bytes at a time, four loads in flight a thread.
    if ((vocab & 3) == 0) {
        const float4* row4 = reinterpret_cast<const float4*>(row);
#pragma unroll 4
        for (int q = threadIdx.x; q < (vocab >> 2); q += blockDim.x) {
            const float4 v = row4[q];
            const float values4[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                bad |= isnan(values4[j]) || values4[j] == INFINITY;
                if (values4[j] > best) {
                    best = values4[j];
                    best_id = 4 * q + j;
                }
            }
        }
    } else {
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
            const float v = row[i];
            bad |= isnan(v) || v == INFINITY;
            if (v > best) {
                best = v;
                best_id = i;
            }
        }
    }
    if (bad) {
        atomicOr(&invalid, 1);
    }
    coil_warp_better(best, best_id);
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    if (lane == 0) {
        values[warp] = best;
        ids[warp] = best_id;
    }
    __syncthreads();
    if (warp == 0) {
        const int warps = (blockDim.x + 31) >> 5;
        best = lane < warps ? values[lane] : -INFINITY;
        best_id = lane < warps ? ids[lane] : 0x7fffffff;
        coil_warp_better(best, best_id);
        if (lane == 0) {
            out[blockIdx.x] = invalid || best_id == 0x7fffffff ? -1 : best_id;
        }
    }
    coil_trace_mark(COIL_MARK_ARGMAX_END);
}

// x[i] = x[i] / divisor, rounded as Java's float division (the logits divisor some checkpoints
// apply), before the sampling kernels read the logits. Grid-stride over n elements.
extern "C" __global__ void logits_divide_f32(float* x, long long n, float divisor) {
    for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < n;
            i += (long long) gridDim.x * blockDim.x) {
        x[i] = __fdiv_rn(x[i], divisor);
    }
}

// A step's entry, before its graph: its int32 inputs from the host's pinned staging onto the
// device, and the greedy tokens of the step before fed to its ids, in one launch where a copy
// engine's transfer and a feed launch took two (5-8 µs of the device's time a decode step):
//   inputs[i] = staged[i] for i < count (staged: pinned host memory, read over the bus: unified addressing)
//   then ids[pairs[2p]] = tokens[pairs[2p + 1]] for p < pair_count (pairs: inputs + pairs_offset,
//   ids: inputs + ids_offset), where tokens is the step before's argmax output. A row the argmax refused
//   (-1) feeds token 0: the host fails that request when it reads the -1, and the step's row for it is
//   thrown away; the embedding lookup only must stay inside the table.
// Grid: 1; block: COIL_ENTRY_THREADS.
#define COIL_ENTRY_THREADS 256
extern "C" __global__ void __launch_bounds__(COIL_ENTRY_THREADS) step_entry(const int* __restrict__ staged,
        int count, int* __restrict__ inputs, const int* __restrict__ tokens, int pairs_offset, int pair_count,
        int ids_offset) {
    coil_trace_mark(COIL_MARK_ENTRY);
#pragma unroll 4
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        inputs[i] = staged[i];
    }
    __syncthreads(); // the staged ids first, the fed ones over them
    for (int p = threadIdx.x; p < pair_count; p += blockDim.x) {
        inputs[ids_offset + inputs[pairs_offset + 2 * p]] = max(tokens[inputs[pairs_offset + 2 * p + 1]], 0);
    }
}
