// The routed experts' block input and the router's scores in one launch, for a decode step's few
// rows. Without it a step spends two launches before the experts: the residual update with the
// block's RMSNorm (residual_rms_norm_f32, which can neither start early nor let the next launch do
// so), then the router's product. Here every block makes the normed rows itself, as
// residual_rms_norm_f32 makes them (the same 256 threads striding over a row, the same block sums:
// the same f32 values), and its warps take one expert's score each, on those f32 values; block 0
// also stores the updated residual stream and the normed rows for the shared MLP and the experts.
// The router's rows and the norm's weights do not depend on earlier kernels: they are loaded
// before the wait.
#include "routed_experts.cuh"

static_assert(ROUTED_EXPERTS_THREADS == COIL_ROW_THREADS, "the norm's block sums take residual_rms_norm_f32's threads");

// v = h + update · multiplier (h when update is null), stored by block 0 to h_out (not h: the other
// blocks are still reading h); normed = norm_weight · v / sqrt(mean(v²) + eps), stored by block 0
// to normed_out; logits[r, e] = Σ_c normed[r, c] · router[e, c] in f32 (a lane's 16-byte chunks
// of the row, then the warp's sum).
//   h, update, h_out, normed_out: (rows, H) f32;  norm_weight: (H) f32;  router: (E, H) bf16 or f32;
//   logits: (rows, E) f32.
// Grid: ceil(E / ROUTED_EXPERTS_WARPS); block: ROUTED_EXPERTS_THREADS (= COIL_ROW_THREADS, the
// norm's threads); dynamic shared memory: rows · H floats (the normed rows).
//
// A lane's 16-byte chunks of its expert's router row loaded before the wait (rows up to
// 12 · 32 · 8 = 3072 bf16 values; the rest of a longer row after it), and a thread's values of the
// norm's row kept in registers (rows up to 12 · 256 = 3072).
#define ROUTED_EXPERTS_ROUTER_HELD 12
#define ROUTED_EXPERTS_NORM_CACHED 12

template <bool BF16>
static __device__ __forceinline__ void routed_experts_norm_router(const float* __restrict__ h,
        const float* __restrict__ update, float multiplier, const float* __restrict__ norm_weight, float eps,
        int rows, int hidden, float* __restrict__ h_out, float* __restrict__ normed_out,
        const void* __restrict__ router, int experts, float* __restrict__ logits) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    extern __shared__ __align__(16) float routed_experts_normed_rows[];
    __shared__ float scratch[32];
    const int lane = threadIdx.x & 31;
    const int expert = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    const bool vector = hidden % ELEMENTS == 0 && coil_aligned16(router);
    const int chunks = hidden / ELEMENTS;
    const uint4* row_chunks = reinterpret_cast<const uint4*>(static_cast<const unsigned char*>(router)
            + (size_t) expert * hidden * (BF16 ? 2 : 4));
    // Before the wait (neither depends on earlier kernels): the router row's first chunks and the
    // norm's weights this thread applies.
    uint4 held[ROUTED_EXPERTS_ROUTER_HELD];
#pragma unroll
    for (int t = 0; t < ROUTED_EXPERTS_ROUTER_HELD; t++) {
        const int c = lane + 32 * t;
        held[t] = vector && expert < experts && c < chunks ? __ldg(row_chunks + c) : make_uint4(0, 0, 0, 0);
    }
    float weight[ROUTED_EXPERTS_NORM_CACHED];
#pragma unroll
    for (int j = 0; j < ROUTED_EXPERTS_NORM_CACHED; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        weight[j] = i < hidden ? norm_weight[i] : 0.0f;
    }
    COIL_AFTER_PREVIOUS_KERNEL(); // h and the update: the block before's output

    for (int r = 0; r < rows; r++) {
        float* values = routed_experts_normed_rows + (size_t) r * hidden;
        const size_t row = (size_t) r * hidden;
        // residual_rms_norm_f32's arithmetic in its order: a thread's values i = thread + j · 256,
        // the first ROUTED_EXPERTS_NORM_CACHED of them loaded together and kept in registers.
        float cached[ROUTED_EXPERTS_NORM_CACHED];
        float squares = 0.0f;
#pragma unroll
        for (int j = 0; j < ROUTED_EXPERTS_NORM_CACHED; j++) {
            const int i = threadIdx.x + j * blockDim.x;
            if (i < hidden) {
                cached[j] = update == nullptr ? h[row + i]
                                              : __fadd_rn(h[row + i], __fmul_rn(update[row + i], multiplier));
                squares = fmaf(cached[j], cached[j], squares);
            }
        }
        for (int i = threadIdx.x + ROUTED_EXPERTS_NORM_CACHED * blockDim.x; i < hidden; i += blockDim.x) {
            const float v = update == nullptr ? h[row + i] : __fadd_rn(h[row + i], __fmul_rn(update[row + i], multiplier));
            values[i] = v;
            squares = fmaf(v, v, squares);
        }
        squares = coil_block_sum(squares, scratch);
        const float inverse_rms = 1.0f / sqrtf(squares / hidden + eps);
#pragma unroll
        for (int j = 0; j < ROUTED_EXPERTS_NORM_CACHED; j++) {
            const int i = threadIdx.x + j * blockDim.x;
            if (i < hidden) {
                const float normed = weight[j] * (cached[j] * inverse_rms);
                values[i] = normed;
                if (blockIdx.x == 0) {
                    h_out[row + i] = cached[j];
                    normed_out[row + i] = normed;
                }
            }
        }
        for (int i = threadIdx.x + ROUTED_EXPERTS_NORM_CACHED * blockDim.x; i < hidden; i += blockDim.x) {
            const float v = values[i];
            const float normed = norm_weight[i] * (v * inverse_rms);
            values[i] = normed;
            if (blockIdx.x == 0) {
                h_out[row + i] = v;
                normed_out[row + i] = normed;
            }
        }
    }
    __syncthreads();
    for (int r = 0; r < rows && expert < experts; r++) {
        const float* x = routed_experts_normed_rows + (size_t) r * hidden;
        float sum = 0.0f;
        if (vector) {
            // The sum of chunk c (its 16 bytes of weights `packed`) into sum, chunks in order.
            auto add_chunk = [&](uint4 packed, int c) {
                float weights_of_chunk[8];
                float values[8];
                routed_experts_widen_chunk<BF16>(packed, weights_of_chunk);
                routed_experts_operand_chunk<BF16>(x, c, values);
#pragma unroll
                for (int i = 0; i < ELEMENTS; i++) {
                    sum = fmaf(weights_of_chunk[i], values[i], sum);
                }
            };
#pragma unroll
            for (int t = 0; t < ROUTED_EXPERTS_ROUTER_HELD; t++) {
                if (lane + 32 * t < chunks) {
                    add_chunk(held[t], lane + 32 * t);
                }
            }
            for (int c = lane + 32 * ROUTED_EXPERTS_ROUTER_HELD; c < chunks; c += 32) {
                add_chunk(__ldg(row_chunks + c), c);
            }
        } else {
            for (int c = lane; c < hidden; c += 32) {
                sum = fmaf(routed_experts_weight<BF16>(row_chunks, c), x[c], sum);
            }
        }
        sum = coil_warp_sum(sum);
        if (lane == 0) {
            logits[(size_t) r * experts + expert] = sum;
        }
    }
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_norm_router_bf16(
        const float* __restrict__ h, const float* __restrict__ update, float multiplier,
        const float* __restrict__ norm_weight, float eps, int rows, int hidden, float* __restrict__ h_out,
        float* __restrict__ normed_out, const __nv_bfloat16* __restrict__ router, int experts,
        float* __restrict__ logits) {
    routed_experts_norm_router<true>(h, update, multiplier, norm_weight, eps, rows, hidden, h_out, normed_out, router,
            experts, logits);
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_norm_router_f32(
        const float* __restrict__ h, const float* __restrict__ update, float multiplier,
        const float* __restrict__ norm_weight, float eps, int rows, int hidden, float* __restrict__ h_out,
        float* __restrict__ normed_out, const float* __restrict__ router, int experts, float* __restrict__ logits) {
    routed_experts_norm_router<false>(h, update, multiplier, norm_weight, eps, rows, hidden, h_out, normed_out,
            router, experts, logits);
}
