// A one-row decode step's end in one launch: the last residual update and the final norm,
// logits = lm_head · x, and the greedy token, argmax(logits).
//
// gemv.cu's one-row wide product makes the logits in ceil(vocab / 16) blocks (3073 for a 49k
// vocabulary), each loading its 16 rows into registers before it runs: a dozen waves of blocks,
// with about one tile of loads in flight a block, and every block making the normed operand again
// (2.2 TB/s on an H100). Then logits_argmax_f32 reads the whole row back with one block. Here one
// block a multiprocessor makes the operand once and loops over tiles of 16 rows, each tile a
// single bulk copy into a ring of shared-memory slots that thread 0 keeps `stages` tiles ahead;
// each block keeps the best logit it made, and the last block to finish reduces the blocks' bests
// into the token.
//
// Both halves equal the launches they replace, bit for bit: a warp sums its two rows exactly as
// the one-row wide product does (a lane's chunks lane, lane + 32, ... in that order, then
// coil_warp_sum), and the token is the lowest id of the largest logit, -1 when a logit is NaN or
// +infinity or all are -infinity (logits_argmax_f32's rule).
//
//   h, update: (hidden) f32 (update may be null); x = norm_weight · v / rms(v), v = h + update · multiplier
//   lm_head: (vocab, hidden) bf16, hidden a multiple of 8;  logits: (vocab) f32;  token: (1) int
//   token_host: null, or where the address of a pinned host int sits (0: none), which gets the token too
//   partials: (3 · gridDim.x) ints, the blocks' bests;  arrivals: one uint, 0 between launches
//   (the last block sets it back)
// Grid: at most one block a multiprocessor; block: 256 threads; dynamic shared memory:
// stages · 16 · hidden · 2 bytes (the ring) + 2 · hidden (x). sm_90 (bulk copies); elsewhere it traps.
#include "bulk_copy.cuh"
#include "gemv_operand.cuh"

#define COIL_LM_HEAD_COLUMNS 2                                      // rows of lm_head a warp sums
#define COIL_LM_HEAD_TILE (COIL_GEMV_WARPS * COIL_LM_HEAD_COLUMNS) // rows a block sums at a time
#define COIL_LM_HEAD_MAX_STAGES 8
#define COIL_LM_HEAD_SPIN_LIMIT (1LL << 26)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// Thread 0: tile t of lm_head (its rows below vocab) into ring slot `slot`, counted on full[slot].
static __device__ __forceinline__ void coil_lm_head_fetch(unsigned char* ring, uint64_t* full, int slot, int t,
        const __nv_bfloat16* __restrict__ lm_head, int hidden, int vocab) {
    const int rows = min(COIL_LM_HEAD_TILE, vocab - t * COIL_LM_HEAD_TILE);
    const unsigned bytes = (unsigned) rows * hidden * 2;
    coil_mbarrier_expect(&full[slot], bytes);
    coil_bulk_copy(ring + (size_t) slot * COIL_LM_HEAD_TILE * hidden * 2,
            lm_head + (size_t) t * COIL_LM_HEAD_TILE * hidden, bytes, &full[slot]);
}
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// The block's best of its warps' (each warp's lanes hold their warp's): thread 0 gets it, and
// whether any was bad. The barrier first frees the arrays for a second use.
static __device__ __forceinline__ void coil_lm_head_block_best(float& best, int& best_id, bool& bad, float* values,
        int* ids, int* flags) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
        values[warp] = best;
        ids[warp] = best_id;
        flags[warp] = bad;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < COIL_GEMV_WARPS; w++) {
            coil_better(best, best_id, values[w], ids[w]);
            bad |= flags[w] != 0;
        }
    }
}
#endif

extern "C" __global__ void __launch_bounds__(COIL_GEMV_WARPS * 32, 1) lm_head_argmax_bf16(const float* h,
        const float* __restrict__ update, float multiplier, const float* __restrict__ norm_weight, float eps,
        const __nv_bfloat16* __restrict__ lm_head, int hidden, int vocab, int stages, float* __restrict__ logits,
        int* __restrict__ token, const unsigned long long* token_host, int* partials, unsigned int* arrivals) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(128) unsigned char coil_lm_head_shared[];
    __shared__ uint64_t full[COIL_LM_HEAD_MAX_STAGES];
    __shared__ float scratch[32];
    __shared__ float best_values[COIL_GEMV_WARPS];
    __shared__ int best_ids[COIL_GEMV_WARPS];
    __shared__ int bad_flags[COIL_GEMV_WARPS];
    __shared__ bool last_block;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int chunks = hidden / 8;
    const int tiles = (vocab + COIL_LM_HEAD_TILE - 1) / COIL_LM_HEAD_TILE;
    const size_t tile_bytes = (size_t) COIL_LM_HEAD_TILE * hidden * 2;
    unsigned char* ring = coil_lm_head_shared;
    __nv_bfloat16* x = reinterpret_cast<__nv_bfloat16*>(coil_lm_head_shared + stages * tile_bytes);

    // The weights and the norm's weights do not depend on the kernels before: the first tiles are
    // asked for before the wait.
    if (threadIdx.x == 0) {
        for (int slot = 0; slot < stages; slot++) {
            coil_mbarrier_init(&full[slot], 1);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        for (int slot = 0; slot < stages && blockIdx.x + slot * gridDim.x < tiles; slot++) {
            coil_lm_head_fetch(ring, full, slot, blockIdx.x + slot * gridDim.x, lm_head, hidden, vocab);
        }
    }
    float early_weight[COIL_GEMV_CACHED];
    coil_gemv_early_weights<COIL_GEMV_CACHED>(early_weight, norm_weight, hidden);
    COIL_AFTER_PREVIOUS_KERNEL();

    // The operand as gemv.cu's one-row product makes it. (Its barriers also make the ring's
    // initialised mbarriers visible to every thread.)
    coil_gemv_make_operand<COIL_GEMV_RESIDUAL_NORM, 1>(x, scratch, h, hidden, update, hidden, norm_weight,
            early_weight, hidden, eps, multiplier, nullptr, 1, hidden);

    float best = -INFINITY;
    int best_id = 0x7fffffff;
    bool bad = false;
    int round = 0;
    for (int t = blockIdx.x; t < tiles; t += gridDim.x, round++) {
        const int slot = round % stages;
        coil_mbarrier_wait(&full[slot], (round / stages) & 1, COIL_LM_HEAD_SPIN_LIMIT);
        const uint4* tile = reinterpret_cast<const uint4*>(ring + slot * tile_bytes);
        float acc[COIL_LM_HEAD_COLUMNS] = {0.0f, 0.0f};
        for (int c = lane; c < chunks; c += 32) {
            float xs[8];
            coil_bf16x8_to_float(*reinterpret_cast<const uint4*>(x + 8 * c), xs);
#pragma unroll
            for (int o = 0; o < COIL_LM_HEAD_COLUMNS; o++) {
                float w[8];
                coil_bf16x8_to_float(tile[(warp * COIL_LM_HEAD_COLUMNS + o) * chunks + c], w);
                float sum = acc[o];
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    sum = fmaf(w[j], xs[j], sum);
                }
                acc[o] = sum;
            }
        }
#pragma unroll
        for (int o = 0; o < COIL_LM_HEAD_COLUMNS; o++) {
            const float logit = coil_warp_sum(acc[o]);
            const int row = t * COIL_LM_HEAD_TILE + warp * COIL_LM_HEAD_COLUMNS + o;
            if (row < vocab) {
                if (lane == 0) {
                    logits[row] = logit;
                }
                // Rows rise within a warp, so the first of equal logits is the lowest id.
                bad |= isnan(logit) || logit == INFINITY;
                if (logit > best) {
                    best = logit;
                    best_id = row;
                }
            }
        }
        // Every warp is done with the slot: it takes the tile `stages` rounds on.
        __syncthreads();
        if (threadIdx.x == 0 && t + stages * gridDim.x < tiles) {
            coil_lm_head_fetch(ring, full, slot, t + stages * gridDim.x, lm_head, hidden, vocab);
        }
    }

    // The block's best (every lane of a warp holds its warp's), then the blocks' through the last one.
    coil_lm_head_block_best(best, best_id, bad, best_values, best_ids, bad_flags);
    if (threadIdx.x == 0) {
        partials[3 * blockIdx.x] = __float_as_int(best);
        partials[3 * blockIdx.x + 1] = best_id;
        partials[3 * blockIdx.x + 2] = bad;
        __threadfence();
        last_block = atomicAdd(arrivals, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last_block) {
        return;
    }
    __threadfence();
    best = -INFINITY;
    best_id = 0x7fffffff;
    bad = false;
    for (int b = threadIdx.x; b < gridDim.x; b += blockDim.x) {
        coil_better(best, best_id, __int_as_float(__ldcg(partials + 3 * b)), __ldcg(partials + 3 * b + 1));
        bad |= __ldcg(partials + 3 * b + 2) != 0;
    }
    coil_warp_better(best, best_id);
    bad = __any_sync(0xffffffffu, bad);
    coil_lm_head_block_best(best, best_id, bad, best_values, best_ids, bad_flags);
    if (threadIdx.x == 0) {
        const int chosen = bad || best_id == 0x7fffffff ? -1 : best_id;
        *token = chosen;
        // The host's copy, where the step's inputs name one: no copy-engine transfer after the graph.
        int* host = token_host != nullptr ? reinterpret_cast<int*>(*token_host) : nullptr;
        if (host != nullptr) {
            *host = chosen;
            __threadfence_system();
        }
        *arrivals = 0;
        coil_trace_mark_here(COIL_MARK_LM_HEAD_END);
    }
#else
    __trap();
#endif
}
