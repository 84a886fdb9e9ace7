// The linear layer of --batch-invariant (kernels in gemm_invariant_decode.cu and
// gemm_invariant_prompt.cu, their shared pieces here): out[t, n] = Σ_k x[t, k] · w[n, k] (x f32 or
// in w's 16-bit type, w row-major (n, k), out f32 row-major (t, n)), with every output summed in one
// order that depends on k alone: not on how many rows the launch has, where a row sits among them,
// or which of the kernels took it. So a request's products round alike whatever shares its step.
//
// 16-bit weights (tensor cores, mma.sync m16n8k16, f32 accumulation; x rounded to w's type to
// nearest even, as convert.cu rounds it): k is cut into segments of 256; within a segment the
// products are accumulated 32 k at a time (two m16n8k16 steps, the first taking k ≡ 0..3 mod 8 of
// the 32, the second k ≡ 4..7, so that a lane's 16-byte load of 8 consecutive k feeds both steps),
// from zero; the segments' sums are then added left to right to a total that starts at zero.
// Past K the operands are zeros. Four kernels keep that order:
//   - gemm_invariant_rows16_*: decode steps of fewer than 32 rows (or K past 3072), 16 rows a
//     block row, one warp a (segment, 8 outputs):
//     the weights stream straight from global memory into fragments (the first segment's asked for
//     before the launch waits for the kernel before it), the segments' sums meet in shared memory
//     and are added in order. So the grid is wide even for the few outputs of out_proj or down.
//   - gemm_invariant_rows_wide_*: decode steps of 32 to 128 rows, the same warps but each reading
//     its rows' x once for 32 outputs, 64 outputs a block.
//   - gemm_invariant_pipelined_*: prompt steps whose operand is already in w's type (rows of
//     whole 16-byte chunks): tiles of 128 rows × 128 outputs, windows copied into a ring in shared
//     memory three ahead of the one multiplied, the segment sums folded into the total as they end.
//   - gemm_invariant_tiles_*: any rows and operands, tiles of 64 rows × 128 outputs staged through
//     registers into shared memory one window ahead: the rest (f32 operands, odd widths).
// f32 weights (CUDA cores): gemm_invariant_f32, one fmaf at a time for k = 0, 1, … in every output.
#ifndef COIL_GEMM_INVARIANT_CUH
#define COIL_GEMM_INVARIANT_CUH

#include "common.cuh"

namespace coil_invariant {


constexpr int SEGMENT = 256;       // k a segment (eight windows of 32)
constexpr int WINDOW = 32;         // k a window: two m16n8k16 steps

// The 16-bit type's conversions and its mma: TYPE, its pair type, the pair's rounding conversion
// and the type's name in PTX.
template <typename W>
struct Half;

#define COIL_INVARIANT_HALF(TYPE, PAIR, CONVERT_PAIR, PTX_TYPE)                                                 \
    template <>                                                                                                 \
    struct Half<TYPE> {                                                                                         \
        static __device__ __forceinline__ unsigned int pack(float low, float high) {                            \
            PAIR pair = CONVERT_PAIR(low, high);                                                                \
            return *reinterpret_cast<unsigned int*>(&pair);                                                     \
        }                                                                                                       \
        static __device__ __forceinline__ void mma(float (&c)[4], unsigned int a0, unsigned int a1,             \
                unsigned int a2, unsigned int a3, unsigned int b0, unsigned int b1) {                           \
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." PTX_TYPE "." PTX_TYPE ".f32 "                 \
                         "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"                      \
                         : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                       \
                         : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));                              \
        }                                                                                                       \
    };

COIL_INVARIANT_HALF(__nv_bfloat16, __nv_bfloat162, __floats2bfloat162_rn, "bf16")
COIL_INVARIANT_HALF(__half, __half2, __floats2half2_rn, "f16")
#undef COIL_INVARIANT_HALF

// Eight consecutive 16-bit values w[row][k .. k+7] (zeros past cols or for a row past rows).
// vector: the rows are 16-byte aligned (cols a multiple of 8 and an aligned base).
template <typename W>
static __device__ __forceinline__ uint4 load_weights8(const W* w, int row, int rows, int k, int cols, bool vector) {
    if (row >= rows) {
        return make_uint4(0u, 0u, 0u, 0u);
    }
    const W* at = w + (size_t) row * cols + k;
    if (vector && k + 8 <= cols) {
        return __ldg(reinterpret_cast<const uint4*>(at));
    }
    unsigned short bits[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        bits[j] = k + j < cols ? reinterpret_cast<const unsigned short*>(at)[j] : (unsigned short) 0;
    }
    return make_uint4(bits[0] | (unsigned int) bits[1] << 16, bits[2] | (unsigned int) bits[3] << 16,
            bits[4] | (unsigned int) bits[5] << 16, bits[6] | (unsigned int) bits[7] << 16);
}

// Eight consecutive operand values x[row][k .. k+7] in W, packed in pairs as the fragments take them
// (zeros past cols or for a row past rows). X is float (rounded here) or W (as stored).
template <typename W, typename X>
static __device__ __forceinline__ uint4 load_operand8(const X* x, int row, int rows, int k, int cols, bool vector) {
    if constexpr (sizeof(X) == 2) {
        return load_weights8<W>(reinterpret_cast<const W*>(x), row, rows, k, cols, vector);
    } else {
        float v[8];
        if (row >= rows) {
#pragma unroll
            for (int j = 0; j < 8; j++) {
                v[j] = 0.0f;
            }
        } else {
            const float* at = x + (size_t) row * cols + k;
            if (vector && k + 8 <= cols) {
                const float4 first = *reinterpret_cast<const float4*>(at);
                const float4 second = *reinterpret_cast<const float4*>(at + 4);
                v[0] = first.x, v[1] = first.y, v[2] = first.z, v[3] = first.w;
                v[4] = second.x, v[5] = second.y, v[6] = second.z, v[7] = second.w;
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    v[j] = k + j < cols ? at[j] : 0.0f;
                }
            }
        }
        return make_uint4(Half<W>::pack(v[0], v[1]), Half<W>::pack(v[2], v[3]), Half<W>::pack(v[4], v[5]),
                Half<W>::pack(v[6], v[7]));
    }
}

// One window's two mma steps on a lane's operands: a_low, a_high: rows g and g + 8, k = 8t .. 8t+7 of
// the window; b: output g, the same k. Step one takes k 8t .. 8t+3 (the fragment's k 2t, 2t+1, 2t+8,
// 2t+9), step two k 8t+4 .. 8t+7.
template <typename W>
static __device__ __forceinline__ void window_mma(float (&c)[4], uint4 a_low, uint4 a_high, uint4 b) {
    Half<W>::mma(c, a_low.x, a_high.x, a_low.y, a_high.y, b.x, b.y);
    Half<W>::mma(c, a_low.z, a_high.z, a_low.w, a_high.w, b.z, b.w);
}

// Whether x and w may be read 16 bytes at a time: cols a multiple of 8 (of 4 for f32 x, twice that
// for the two loads) and aligned bases.
template <typename W, typename X>
static __device__ __forceinline__ bool vectorizable(const X* x, const W* w, int cols) {
    return cols % 8 == 0 && coil_aligned16(x) && coil_aligned16(w);
}

// A lane's weights of one segment: weight row `output` (zeros where !valid), k = 8t .. 8t+7 of each
// window (zeros past the segment's end).
template <typename W>
static __device__ __forceinline__ void load_segment(uint4 (&b)[SEGMENT / WINDOW], const W* w, int output, bool valid,
        int segment, int cols, int t, bool vector) {
    const int begin = segment * SEGMENT;
    const int end = min(cols, begin + SEGMENT);
#pragma unroll
    for (int i = 0; i < SEGMENT / WINDOW; i++) {
        const int k = begin + i * WINDOW + 8 * t;
        b[i] = valid && k < end ? load_weights8<W>(w, output, output + 1, k, cols, vector) : make_uint4(0u, 0u, 0u, 0u);
    }
}

}  // namespace coil_invariant

#endif
