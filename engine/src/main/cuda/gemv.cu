// The linear layer for a few rows (decode): out[r, n] = Σ_k x[r, k] · W[n, k], W bf16 (N, K)
// row-major, f32 accumulation, for rows ≤ 8. A decode step of a small model is a chain of such
// products, each reading a few MB of weights once: cuBLAS spends several times the bytes' time on
// them. Here one warp owns one output column n and holds its weight row in registers (16-byte
// loads, all issued at once), so a launch keeps the whole matrix in flight.
//
// The operand x is built in shared memory by the block, from one of:
//   COIL_GEMV_F32        x = a (f32 rows of a_stride floats)
//   COIL_GEMV_BF16       x = a (bf16 rows of a_stride)
//   COIL_GEMV_SILU       x = silu(a) · b (the MLP's gate and up, f32 rows of a_stride / b_stride):
//                        silu_multiply_f32 fused into the down projection
//   COIL_GEMV_GATED_NORM x = weight · (a · silu(b)) / rms over each group of group_size channels
//                        (Mamba-2's gated RMSNorm, a = y, b = z): gated_rms_norm_f32 fused into
//                        out_proj. Needs group_size % 32 == 0.
// Each is computed as the separate kernel computes it (coil_silu, __fmul_rn) and rounded to bf16, the
// operand cuBLAS would multiply: so a decode row gets the same product here as in a larger batch,
// up to the order of the f32 sums.
//
// Up to three products over the same x run in one launch (q, k and v): segment s has weights ws,
// outputs outs (rows, ns) and ns columns; blocks cover the columns of segment 0, then 1, then 2.
//
// The weights do not depend on earlier kernels: they are loaded before griddepcontrol.wait, so a
// launch with programmatic stream serialization streams its weights while the kernel before it
// finishes (on sm_90; elsewhere, and without that launch attribute, the wait is a no-op).
//
// Grid: ceil((n0 + n1 + n2) / 8); block: 256 threads (8 warps, a column each);
// dynamic shared memory: 4 · rows · (k + k / group_size) bytes (group terms for GATED_NORM only).
#include "common.cuh"

#define COIL_GEMV_WARPS 8
// 16-byte chunks (8 weights) of a row each lane holds per pass: a pass covers 8 × 32 × 8 = 2048 columns.
#define COIL_GEMV_CHUNKS 8

#define COIL_GEMV_F32 0
#define COIL_GEMV_BF16 1
#define COIL_GEMV_SILU 2
#define COIL_GEMV_GATED_NORM 3

static __device__ __forceinline__ void coil_grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void coil_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

static __device__ __forceinline__ float coil_round_bf16(float value) {
    return __bfloat162float(__float2bfloat16_rn(value));
}

// x (rows, k) f32 into shared memory, from the mode's inputs. Every thread of the block takes part.
template <int MODE>
static __device__ __forceinline__ void coil_gemv_operand(float* x, float* group_squares, const void* a, int a_stride,
        const float* __restrict__ b, int b_stride, const float* __restrict__ norm_weight, int group_size, float eps,
        int rows, int k) {
    const int threads = blockDim.x;
    if (MODE == COIL_GEMV_GATED_NORM) {
        const int groups = k / group_size;
        for (int i = threadIdx.x; i < rows * groups; i += threads) {
            group_squares[i] = 0.0f;
        }
        __syncthreads();
        const float* y = (const float*) a;
        for (int r = 0; r < rows; r++) {
            // A warp's 32 consecutive channels lie in one group (group_size % 32 == 0, k too).
            for (int i = threadIdx.x; i < k; i += threads) {
                const float gated = y[(size_t) r * a_stride + i] * coil_silu(b[(size_t) r * b_stride + i]);
                x[r * k + i] = gated;
                const float squares = coil_warp_sum(gated * gated);
                if ((threadIdx.x & 31) == 0) {
                    atomicAdd(&group_squares[r * groups + i / group_size], squares);
                }
            }
        }
        __syncthreads();
        for (int r = 0; r < rows; r++) {
            for (int i = threadIdx.x; i < k; i += threads) {
                const float inverse_rms = 1.0f / sqrtf(group_squares[r * groups + i / group_size] / group_size + eps);
                x[r * k + i] = coil_round_bf16(norm_weight[i] * (x[r * k + i] * inverse_rms));
            }
        }
    } else {
        for (int r = 0; r < rows; r++) {
            for (int i = threadIdx.x; i < k; i += threads) {
                float value;
                if (MODE == COIL_GEMV_F32) {
                    value = ((const float*) a)[(size_t) r * a_stride + i];
                } else if (MODE == COIL_GEMV_BF16) {
                    value = __bfloat162float(((const __nv_bfloat16*) a)[(size_t) r * a_stride + i]);
                } else {
                    value = __fmul_rn(coil_silu(((const float*) a)[(size_t) r * a_stride + i]),
                            b[(size_t) r * b_stride + i]);
                }
                x[r * k + i] = coil_round_bf16(value);
            }
        }
    }
    __syncthreads();
}

// acc[r] += Σ over the 8 weights of one chunk at column c8 (a multiple of 8) · x[r, c8 .. c8 + 7].
template <int ROWS>
static __device__ __forceinline__ void coil_gemv_chunk(float (&acc)[ROWS], uint4 weights, const float* x, int k,
        int c8, int rows) {
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&weights);
    float w[8];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float2 pair = __bfloat1622float2(pairs[j]);
        w[2 * j] = pair.x;
        w[2 * j + 1] = pair.y;
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        if (r < rows) {
            const float4 low = *reinterpret_cast<const float4*>(x + r * k + c8);
            const float4 high = *reinterpret_cast<const float4*>(x + r * k + c8 + 4);
            float sum = acc[r];
            sum = fmaf(w[0], low.x, sum);
            sum = fmaf(w[1], low.y, sum);
            sum = fmaf(w[2], low.z, sum);
            sum = fmaf(w[3], low.w, sum);
            sum = fmaf(w[4], high.x, sum);
            sum = fmaf(w[5], high.y, sum);
            sum = fmaf(w[6], high.z, sum);
            sum = fmaf(w[7], high.w, sum);
            acc[r] = sum;
        }
    }
}

template <int MODE, int ROWS>
static __device__ __forceinline__ void coil_gemv(const void* a, int a_stride, const float* __restrict__ b,
        int b_stride, const float* __restrict__ norm_weight, int group_size, float eps, int rows, int k,
        const __nv_bfloat16* __restrict__ w0, float* __restrict__ out0, int n0,
        const __nv_bfloat16* __restrict__ w1, float* __restrict__ out1, int n1,
        const __nv_bfloat16* __restrict__ w2, float* __restrict__ out2, int n2) {
    extern __shared__ __align__(16) float coil_gemv_shared[];
    const int lane = threadIdx.x & 31;
    const int column = blockIdx.x * COIL_GEMV_WARPS + (threadIdx.x >> 5);
    const __nv_bfloat16* weights = w0;
    float* out = out0;
    int columns = n0;
    int n = column;
    if (n >= n0) {
        n -= n0;
        weights = w1;
        out = out1;
        columns = n1;
        if (n >= n1) {
            n -= n1;
            weights = w2;
            out = out2;
            columns = n2;
        }
    }
    const bool active = n < columns;
    const int chunks = k / 8;
    const uint4* row = reinterpret_cast<const uint4*>(weights + (size_t) (active ? n : 0) * k);

    uint4 held[COIL_GEMV_CHUNKS];
#pragma unroll
    for (int i = 0; i < COIL_GEMV_CHUNKS; i++) {
        const int c = lane + 32 * i;
        held[i] = active && c < chunks ? __ldg(row + c) : make_uint4(0, 0, 0, 0);
    }
    coil_grid_dependency_wait();
    coil_launch_dependents();

    float* x = coil_gemv_shared;
    coil_gemv_operand<MODE>(x, x + rows * k, a, a_stride, b, b_stride, norm_weight, group_size, eps, rows, k);

    float acc[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        acc[r] = 0.0f;
    }
    const int per_pass = 32 * COIL_GEMV_CHUNKS;
    for (int first = 0; first < chunks; first += per_pass) {
        if (first > 0) {
#pragma unroll
            for (int i = 0; i < COIL_GEMV_CHUNKS; i++) {
                const int c = first + lane + 32 * i;
                held[i] = active && c < chunks ? __ldg(row + c) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int i = 0; i < COIL_GEMV_CHUNKS; i++) {
            const int c = first + lane + 32 * i;
            if (c < chunks) {
                coil_gemv_chunk<ROWS>(acc, held[i], x, k, 8 * c, rows);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        const float total = coil_warp_sum(acc[r]);
        if (active && lane == 0 && r < rows) {
            out[(size_t) r * columns + n] = total;
        }
    }
}

#define COIL_GEMV_ENTRY(name, MODE, ROWS)                                                                       \
    extern "C" __global__ void __launch_bounds__(COIL_GEMV_WARPS * 32) name(const void* a, int a_stride,        \
            const float* __restrict__ b, int b_stride, const float* __restrict__ norm_weight, int group_size,     \
            float eps, int rows, int k, const __nv_bfloat16* __restrict__ w0, float* __restrict__ out0, int n0,  \
            const __nv_bfloat16* __restrict__ w1, float* __restrict__ out1, int n1,                              \
            const __nv_bfloat16* __restrict__ w2, float* __restrict__ out2, int n2) {                            \
        coil_gemv<MODE, ROWS>(a, a_stride, b, b_stride, norm_weight, group_size, eps, rows, k, w0, out0, n0, w1, \
                out1, n1, w2, out2, n2);                                                                         \
    }

// Rows buckets 1, 2, 4 and 8: a launch for r rows takes the smallest bucket ≥ r.
COIL_GEMV_ENTRY(gemv_f32_rows1, COIL_GEMV_F32, 1)
COIL_GEMV_ENTRY(gemv_f32_rows2, COIL_GEMV_F32, 2)
COIL_GEMV_ENTRY(gemv_f32_rows4, COIL_GEMV_F32, 4)
COIL_GEMV_ENTRY(gemv_f32_rows8, COIL_GEMV_F32, 8)
COIL_GEMV_ENTRY(gemv_bf16_rows1, COIL_GEMV_BF16, 1)
COIL_GEMV_ENTRY(gemv_bf16_rows2, COIL_GEMV_BF16, 2)
COIL_GEMV_ENTRY(gemv_bf16_rows4, COIL_GEMV_BF16, 4)
COIL_GEMV_ENTRY(gemv_bf16_rows8, COIL_GEMV_BF16, 8)
COIL_GEMV_ENTRY(gemv_silu_rows1, COIL_GEMV_SILU, 1)
COIL_GEMV_ENTRY(gemv_silu_rows2, COIL_GEMV_SILU, 2)
COIL_GEMV_ENTRY(gemv_silu_rows4, COIL_GEMV_SILU, 4)
COIL_GEMV_ENTRY(gemv_silu_rows8, COIL_GEMV_SILU, 8)
COIL_GEMV_ENTRY(gemv_gated_norm_rows1, COIL_GEMV_GATED_NORM, 1)
COIL_GEMV_ENTRY(gemv_gated_norm_rows2, COIL_GEMV_GATED_NORM, 2)
COIL_GEMV_ENTRY(gemv_gated_norm_rows4, COIL_GEMV_GATED_NORM, 4)
COIL_GEMV_ENTRY(gemv_gated_norm_rows8, COIL_GEMV_GATED_NORM, 8)
