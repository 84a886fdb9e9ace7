// The few-rows products' operand (gemv.cu and lm_head_argmax.cu): x built in shared memory as
// bf16 from the modes gemv.cu lists, each as the separate kernel computes it, and the 16-byte
// weight chunks widened to f32.
#ifndef COIL_GEMV_OPERAND_CUH
#define COIL_GEMV_OPERAND_CUH
#include "common.cuh"

#define COIL_GEMV_WARPS 8
// 16-byte chunks (8 weights) a lane holds per pass, over all its columns: a warp with one column
// covers 8 × 32 × 8 = 2048 weights of its row per pass, with two columns 1024 of each.
#define COIL_GEMV_HELD 8
// The lean twins' (two columns of three chunks: rows of 768 in one pass, wider ones in more).
#define COIL_GEMV_HELD_LEAN 6

// Values of a normed operand row a thread keeps in registers: rows (or groups) up to 8 · 256 wide
// (CACHED, a template argument, where a kernel takes narrower rows and needs the registers).
#define COIL_GEMV_CACHED 8
// The lean twins' (rows up to 4 · 256 = 1024 wide).
#define COIL_GEMV_CACHED_LEAN 4

// History values of a conv channel kept in registers from before the wait (kernels up to 5 wide).
#define COIL_GEMV_CONV_HISTORY 4

// The conv epilogue's parameters (gemv.cu); states null when the launch has none.
struct CoilGemvConv {
    const float* weight;    // (channels, kernel)
    const float* bias;      // (channels) or null
    float* states;          // (slots, kernel - 1, channels)
    const int* slots;       // (rows)
    float* out;             // convolved: (rows, channels)
    int kernel;
    int first;              // the first output column that is a conv channel
    int channels;
};

// The RoPE and K/V-cache epilogue of a one-row q/k/v launch (gemv.cu); destinations null: none.
struct CoilGemvRope {
    const int* positions;     // (1): the row's position
    const int* destinations;  // (1): the row's cache row
    void* key_cache;          // (cache rows, kv_heads, head_dim) f32, or bf16 when cache_bf16
    void* value_cache;
    int cache_bf16;
    int head_dim;
    int rotary_dim;
    float theta;
};

// The parameters every few-rows product kernel takes (gemv.cu, gemv_mma.cu; GemvKernel passes them
// in this order), and the conv epilogue's struct made of them.
#define COIL_GEMV_PARAMETERS                                                                                  \
    const void *a, int a_stride, const float *__restrict__ b, int b_stride,                                   \
            const float *__restrict__ norm_weight, int group_size, float eps, float multiplier, float *h_out, \
            const float *conv_weight, const float *conv_bias, float *conv_states, const int *conv_slots,      \
            float *conv_out, int conv_kernel, int conv_first, int conv_channels, int silu_pair, int rows,     \
            int k, const __nv_bfloat16 *__restrict__ w0, float *__restrict__ out0, int n0,                   \
            const __nv_bfloat16 *__restrict__ w1, float *__restrict__ out1, int n1,                           \
            const __nv_bfloat16 *__restrict__ w2, float *__restrict__ out2, int n2,                           \
            const int *rope_positions, const int *rope_destinations, void *rope_key_cache,                    \
            void *rope_value_cache, int rope_cache_bf16, int rope_head_dim, int rope_rotary_dim, float rope_theta
#define COIL_GEMV_CONV_OF_PARAMETERS                                                                          \
    {conv_weight, conv_bias, conv_states, conv_slots, conv_out, conv_kernel, conv_first, conv_channels}
#define COIL_GEMV_ROPE_OF_PARAMETERS                                                                          \
    {rope_positions, rope_destinations, rope_key_cache, rope_value_cache, rope_cache_bf16, rope_head_dim,     \
            rope_rotary_dim, rope_theta}
// What the kernels' bodies (coil_gemv, coil_gemv_mma) take: the same, with the conv's in one struct.
#define COIL_GEMV_BODY_PARAMETERS                                                                             \
    const void *a, int a_stride, const float *__restrict__ b, int b_stride,                                   \
            const float *__restrict__ norm_weight, int group_size, float eps, float multiplier, float *h_out, \
            const CoilGemvConv conv, int silu_pair, int rows, int k,                                          \
            const __nv_bfloat16 *__restrict__ w0, float *__restrict__ out0, int n0,                           \
            const __nv_bfloat16 *__restrict__ w1, float *__restrict__ out1, int n1,                           \
            const __nv_bfloat16 *__restrict__ w2, float *__restrict__ out2, int n2

// A launch's products (q, k, v) share its blocks in order: the first blocks0 cover product 0, the
// next blocks1 product 1, the rest product 2. The block's product, and the block's index within it.
struct CoilGemvSegment {
    const __nv_bfloat16* weights;
    float* out;
    int columns;
    int index;  // the product: 0, 1 or 2
    int block;  // the block among the product's
};

static __device__ __forceinline__ CoilGemvSegment coil_gemv_segment(int blocks0, int blocks1,
        const __nv_bfloat16* w0, float* out0, int n0, const __nv_bfloat16* w1, float* out1, int n1,
        const __nv_bfloat16* w2, float* out2, int n2) {
    int block = blockIdx.x;
    if (block < blocks0) {
        return {w0, out0, n0, 0, block};
    }
    block -= blocks0;
    if (block < blocks1) {
        return {w1, out1, n1, 1, block};
    }
    return {w2, out2, n2, 2, block - blocks1};
}

#define COIL_GEMV_F32 0
#define COIL_GEMV_BF16 1
#define COIL_GEMV_SILU 2
#define COIL_GEMV_GATED_NORM 3
#define COIL_GEMV_RESIDUAL_NORM 4

// The value of a normed operand element before its scale: the gated value y · silu(z), or the
// residual stream after the update.
template <int MODE>
static __device__ __forceinline__ float coil_gemv_normed_input(const float* a, const float* __restrict__ b,
        float multiplier, size_t a_index, size_t b_index) {
    if (MODE == COIL_GEMV_GATED_NORM) {
        return b == nullptr ? a[a_index] : coil_gated(a[a_index], b[b_index]);
    }
    return b == nullptr ? a[a_index] : __fadd_rn(a[a_index], __fmul_rn(b[b_index], multiplier));
}

// x (rows, k) as bf16 into shared memory, from the mode's inputs. Every thread of the block takes part.
template <int MODE, int CACHED = COIL_GEMV_CACHED>
static __device__ __forceinline__ void coil_gemv_operand(__nv_bfloat16* x, float* scratch, const void* a,
        int a_stride, const float* __restrict__ b, int b_stride, const float* __restrict__ norm_weight,
        const float (&early_weight)[CACHED], int group_size, float eps, float multiplier, float* h_out,
        int rows, int k) {
    if (MODE == COIL_GEMV_GATED_NORM || MODE == COIL_GEMV_RESIDUAL_NORM) {
        const float* input = (const float*) a;
        const bool writes_h = MODE == COIL_GEMV_RESIDUAL_NORM && h_out != nullptr && b != nullptr
                && blockIdx.x == 0;
        for (int r = 0; r < rows; r++) {
            for (int group = 0; group < k; group += group_size) {
                // A thread's first COIL_GEMV_CACHED values stay in registers between the sum of
                // squares and the scaling (the same values in the same order as recomputing them).
                float cached[CACHED];
                float squares = 0.0f;
#pragma unroll
                for (int j = 0; j < CACHED; j++) {
                    const int i = threadIdx.x + j * blockDim.x;
                    if (i < group_size) {
                        cached[j] = coil_gemv_normed_input<MODE>(input, b, multiplier,
                                (size_t) r * a_stride + group + i, (size_t) r * b_stride + group + i);
                        squares = fmaf(cached[j], cached[j], squares);
                    }
                }
                for (int i = threadIdx.x + CACHED * blockDim.x; i < group_size; i += blockDim.x) {
                    const float v = coil_gemv_normed_input<MODE>(input, b, multiplier,
                            (size_t) r * a_stride + group + i, (size_t) r * b_stride + group + i);
                    squares = fmaf(v, v, squares);
                }
                squares = coil_block_sum(squares, scratch);
                const float inverse_rms = 1.0f / sqrtf(squares / group_size + eps);
#pragma unroll
                for (int j = 0; j < CACHED; j++) {
                    const int i = threadIdx.x + j * blockDim.x;
                    if (i < group_size) {
                        const float weight = group == 0 && r == 0 ? early_weight[j] : norm_weight[group + i];
                        x[r * k + group + i] = __float2bfloat16_rn(weight * (cached[j] * inverse_rms));
                        if (writes_h) {
                            h_out[(size_t) r * k + group + i] = cached[j];
                        }
                    }
                }
                for (int i = threadIdx.x + CACHED * blockDim.x; i < group_size; i += blockDim.x) {
                    const float v = coil_gemv_normed_input<MODE>(input, b, multiplier,
                            (size_t) r * a_stride + group + i, (size_t) r * b_stride + group + i);
                    x[r * k + group + i] = __float2bfloat16_rn(norm_weight[group + i] * (v * inverse_rms));
                    if (writes_h) {
                        h_out[(size_t) r * k + group + i] = v;
                    }
                }
            }
        }
    } else if (MODE == COIL_GEMV_BF16 && (rows == 1 || a_stride == k) && k % 8 == 0 && coil_aligned16(a)) {
        // Rows back to back: 16-byte copies without index arithmetic (the down projection's operand,
        // made by the gate and up launch). The general loop below (a 2-byte load and an index
        // division an element) kept that launch 2 µs longer: 5.0 against 3.0 µs on an H100.
        const uint4* source = reinterpret_cast<const uint4*>(a);
        uint4* target = reinterpret_cast<uint4*>(x);
        for (int c = threadIdx.x; c < rows * k / 8; c += blockDim.x) {
            target[c] = source[c];
        }
    } else if (MODE == COIL_GEMV_F32 && (rows == 1 || a_stride == k) && k % 4 == 0 && coil_aligned16(a)) {
        // The same for f32 rows (o_proj's operand, the attention output): 16-byte loads, each value
        // rounded to bf16 as below.
        const float4* source = reinterpret_cast<const float4*>(a);
        for (int c = threadIdx.x; c < rows * k / 4; c += blockDim.x) {
            const float4 v = source[c];
            x[4 * c] = __float2bfloat16_rn(v.x);
            x[4 * c + 1] = __float2bfloat16_rn(v.y);
            x[4 * c + 2] = __float2bfloat16_rn(v.z);
            x[4 * c + 3] = __float2bfloat16_rn(v.w);
        }
    } else {
        // One loop over all rows, unrolled, so that a thread's loads are all in flight at once.
#pragma unroll 8
        for (int e = threadIdx.x; e < rows * k; e += blockDim.x) {
            const int r = e / k;
            const int i = e - r * k;
            const size_t index = (size_t) r * a_stride + i;
            if (MODE == COIL_GEMV_BF16) {
                x[e] = ((const __nv_bfloat16*) a)[index];
            } else if (MODE == COIL_GEMV_F32) {
                x[e] = __float2bfloat16_rn(((const float*) a)[index]);
            } else {
                x[e] = __float2bfloat16_rn(coil_silu_product(((const float*) a)[index],
                        b[(size_t) r * b_stride + i]));
            }
        }
    }
    __syncthreads();
}

// The normed operands when the norm spans the whole row (one group) of at most
// COIL_GEMV_CACHED · 256 values: every row's loads are issued together and the rows' sums of
// squares are reduced with one barrier, each as coil_block_sum reduces it (the same sums, so the
// same operand as the row-by-row path). Rows of 1 and 2 keep their values in registers between
// the two passes; more rows read them again (from L1), unless the caller keeps them (KEEP_ROWS: the
// tensor-core kernels of 4 rows, which have the registers).
template <int MODE, int ROWS, int CACHED = COIL_GEMV_CACHED, bool KEEP_ROWS = false>
static __device__ __forceinline__ void coil_gemv_normed_rows(__nv_bfloat16* x, float* scratch, const float* input,
        int a_stride, const float* __restrict__ b, int b_stride, const float* __restrict__ norm_weight,
        const float (&early_weight)[CACHED], float eps, float multiplier, float* h_out, int rows, int k) {
    constexpr bool KEEP = ROWS <= 2 || KEEP_ROWS;
    const bool writes_h = MODE == COIL_GEMV_RESIDUAL_NORM && h_out != nullptr && b != nullptr && blockIdx.x == 0;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    float kept[KEEP ? ROWS : 1][CACHED];
    float squares[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        squares[r] = 0.0f;
        if (r < rows) {
#pragma unroll
            for (int j = 0; j < CACHED; j++) {
                const int i = threadIdx.x + j * blockDim.x;
                if (i < k) {
                    const float v = coil_gemv_normed_input<MODE>(input, b, multiplier, (size_t) r * a_stride + i,
                            (size_t) r * b_stride + i);
                    if (KEEP) {
                        kept[KEEP ? r : 0][j] = v;
                    }
                    squares[r] = fmaf(v, v, squares[r]);
                }
            }
        }
    }
    const int warps = (blockDim.x + 31) >> 5;
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        const float total = coil_warp_sum(squares[r]);
        if (lane == 0) {
            scratch[r * 32 + warp] = total;
        }
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        if (r < rows) {
            const float total = coil_warp_sum(lane < warps ? scratch[r * 32 + lane] : 0.0f);
            const float inverse_rms = 1.0f / sqrtf(total / k + eps);
#pragma unroll
            for (int j = 0; j < CACHED; j++) {
                const int i = threadIdx.x + j * blockDim.x;
                if (i < k) {
                    const float v = KEEP ? kept[KEEP ? r : 0][j]
                                         : coil_gemv_normed_input<MODE>(input, b, multiplier,
                                                   (size_t) r * a_stride + i, (size_t) r * b_stride + i);
                    x[r * k + i] = __float2bfloat16_rn(early_weight[j] * (v * inverse_rms));
                    if (writes_h) {
                        h_out[(size_t) r * k + i] = v;
                    }
                }
            }
        }
    }
    __syncthreads();
}

// The operand every few-rows product makes (gemv.cu, gemv_mma.cu, lm_head_argmax.cu): a norm over
// the whole row, when the row fits the threads' registers (CACHED values each), by
// coil_gemv_normed_rows; everything else (grouped norms, wider rows such as Nemotron-3-Nano's 2688)
// by coil_gemv_operand. The choice is made here once: a launch that called coil_gemv_normed_rows
// for any width read unwritten shared memory beyond CACHED · blockDim.x values.
template <int MODE, int ROWS, int CACHED = COIL_GEMV_CACHED, bool KEEP_ROWS = false>
static __device__ __forceinline__ void coil_gemv_make_operand(__nv_bfloat16* x, float* scratch, const void* a,
        int a_stride, const float* __restrict__ b, int b_stride, const float* __restrict__ norm_weight,
        const float (&early_weight)[CACHED], int group_size, float eps, float multiplier, float* h_out,
        int rows, int k) {
    if ((MODE == COIL_GEMV_GATED_NORM || MODE == COIL_GEMV_RESIDUAL_NORM) && group_size == k
            && k <= CACHED * (int) blockDim.x) {
        coil_gemv_normed_rows<MODE, ROWS, CACHED, KEEP_ROWS>(x, scratch, (const float*) a, a_stride, b, b_stride,
                norm_weight, early_weight, eps, multiplier, h_out, rows, k);
    } else {
        coil_gemv_operand<MODE, CACHED>(x, scratch, a, a_stride, b, b_stride, norm_weight, early_weight,
                group_size, eps, multiplier, h_out, rows, k);
    }
}

// A thread's values of the norm's weights (its indices i = threadIdx.x + j · blockDim.x of the first
// group of size values), read before the wait with the matrix: they do not depend on earlier
// kernels. norm_weight null: zeros (an operand without a norm).
template <int CACHED>
static __device__ __forceinline__ void coil_gemv_early_weights(float (&early_weight)[CACHED],
        const float* __restrict__ norm_weight, int size) {
#pragma unroll
    for (int j = 0; j < CACHED; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        early_weight[j] = norm_weight != nullptr && i < size ? norm_weight[i] : 0.0f;
    }
}

#endif
