// The batch-invariant product's tiles for prompt steps and any rows (pipelined, tiles, f32): see
// gemm_invariant.cuh for the order every kernel keeps.
#include "gemm_invariant.cuh"

namespace coil_invariant {

// A warp's sums: I × J pieces of 16 rows × 8 outputs, four values a lane (the m16n8 layout: rows g
// and g + 8, outputs 2t and 2t + 1).
template <int I, int J>
static __device__ __forceinline__ void zero_sums(float (&sums)[I][J][4]) {
#pragma unroll
    for (int i = 0; i < I; i++) {
#pragma unroll
        for (int j = 0; j < J; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                sums[i][j][e] = 0.0f;
            }
        }
    }
}

// A segment ends: its sums join the total, in the segments' order, and start again from zero.
template <int I, int J>
static __device__ __forceinline__ void fold_segment(float (&total)[I][J][4], float (&segment)[I][J][4]) {
#pragma unroll
    for (int i = 0; i < I; i++) {
#pragma unroll
        for (int j = 0; j < J; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                total[i][j][e] += segment[i][j][e];
                segment[i][j][e] = 0.0f;
            }
        }
    }
}

// Stores a warp's totals: piece (i, j) at rows first_row + 16i (+ g, + g + 8), outputs first_output +
// 8j + 2t (and + 1), two at a time where out's rows allow it; nothing past rows or outputs.
template <int I, int J>
static __device__ __forceinline__ void store_sums(float* __restrict__ out, int rows, int outputs,
        const float (&total)[I][J][4], int first_row, int first_output, int g, int t) {
    const bool pairs = outputs % 2 == 0 && (reinterpret_cast<uintptr_t>(out) & 7) == 0;
#pragma unroll
    for (int i = 0; i < I; i++) {
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int column = first_output + 8 * j + 2 * t;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int row = first_row + 16 * i + g + 8 * half;
                if (row >= rows) {
                    continue;
                }
                float* at = out + (size_t) row * outputs + column;
                const float first = total[i][j][2 * half];
                const float second = total[i][j][2 * half + 1];
                if (pairs && column + 1 < outputs) {
                    *reinterpret_cast<float2*>(at) = make_float2(first, second);
                } else {
                    if (column < outputs) {
                        at[0] = first;
                    }
                    if (column + 1 < outputs) {
                        at[1] = second;
                    }
                }
            }
        }
    }
}

// One window of a warp's I × J pieces from shared tiles of rows of WINDOW values (x_rows: the warp's
// first row, w_rows: its first output) into the segment's sums, which join the total when a segment
// ends (or at the last window).
template <typename W, int I, int J>
static __device__ __forceinline__ void warp_window(float (&total)[I][J][4], float (&segment)[I][J][4],
        const W (*x_rows)[WINDOW], const W (*w_rows)[WINDOW], int g, int t, int window, int windows) {
    uint4 a_low[I];
    uint4 a_high[I];
#pragma unroll
    for (int i = 0; i < I; i++) {
        a_low[i] = *reinterpret_cast<const uint4*>(&x_rows[16 * i + g][8 * t]);
        a_high[i] = *reinterpret_cast<const uint4*>(&x_rows[16 * i + g + 8][8 * t]);
    }
#pragma unroll
    for (int j = 0; j < J; j++) {
        const uint4 b = *reinterpret_cast<const uint4*>(&w_rows[8 * j + g][8 * t]);
#pragma unroll
        for (int i = 0; i < I; i++) {
            window_mma<W>(segment[i][j], a_low[i], a_high[i], b);
        }
    }
    if ((window + 1) % (SEGMENT / WINDOW) == 0 || window + 1 == windows) {
        fold_segment(total, segment);
    }
}

constexpr int TILE_ROWS = 64;
constexpr int TILE_OUTPUTS = 128;
constexpr int TILE_THREADS = 256;  // 8 warps: 2 along the rows × 4 along the outputs, 32 × 32 each

// Any rows. Grid: (ceil(N / 128), ceil(rows / 64)); 256 threads. Each window's x and w tiles are read
// into registers while the window before is multiplied, then stored to the other half of shared
// memory (rows of 32 values, 64 bytes: a quarter-warp's 16-byte fragment loads fall on distinct banks).
template <typename W, typename X>
static __device__ void tiles(const X* __restrict__ x, int rows, int cols, const W* __restrict__ w, int outputs,
        float* __restrict__ out) {
    __shared__ __align__(16) W x_tile[2][TILE_ROWS][WINDOW];
    __shared__ __align__(16) W w_tile[2][TILE_OUTPUTS][WINDOW];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int warp_row = (warp / 4) * 32;
    const int warp_output = (warp % 4) * 32;
    const int first_row = blockIdx.y * TILE_ROWS;
    const int first_output = blockIdx.x * TILE_OUTPUTS;
    const bool vector = vectorizable(x, w, cols);
    const int windows = (cols + WINDOW - 1) / WINDOW;
    coil_grid_dependency_wait();
    coil_launch_dependents();

    // A thread's staged chunks: x row threadIdx.x / 4 (one), w rows threadIdx.x / 4 and + 64 (two);
    // chunk threadIdx.x % 4 (k 8 · chunk .. + 7 of the window).
    const int stage_row = threadIdx.x / 4;
    const int stage_chunk = threadIdx.x % 4;
    uint4 staged_x;
    uint4 staged_w[2];
    auto load = [&](int window) {
        const int k = window * WINDOW + 8 * stage_chunk;
        staged_x = load_operand8<W, X>(x, first_row + stage_row, rows, k, cols, vector);
        staged_w[0] = load_weights8<W>(w, first_output + stage_row, outputs, k, cols, vector);
        staged_w[1] = load_weights8<W>(w, first_output + stage_row + 64, outputs, k, cols, vector);
    };
    auto store = [&](int half) {
        *reinterpret_cast<uint4*>(&x_tile[half][stage_row][8 * stage_chunk]) = staged_x;
        *reinterpret_cast<uint4*>(&w_tile[half][stage_row][8 * stage_chunk]) = staged_w[0];
        *reinterpret_cast<uint4*>(&w_tile[half][stage_row + 64][8 * stage_chunk]) = staged_w[1];
    };

    float total[2][4][4];
    float c[2][4][4];
    zero_sums(total);
    zero_sums(c);
    load(0);
    store(0);
    __syncthreads();
    for (int window = 0; window < windows; window++) {
        const int half = window & 1;
        if (window + 1 < windows) {
            load(window + 1);
        }
        warp_window<W>(total, c, &x_tile[half][warp_row], &w_tile[half][warp_output], g, t, window, windows);
        if (window + 1 < windows) {
            store(half ^ 1);
        }
        __syncthreads();
    }
    store_sums(out, rows, outputs, total, first_row + warp_row, first_output + warp_output, g, t);
}

constexpr int PIPELINE_ROWS = 128;
constexpr int PIPELINE_OUTPUTS = 128;
constexpr int PIPELINE_THREADS = 256;  // 8 warps: 2 along the rows × 4 along the outputs, 64 × 32 each
constexpr int PIPELINE_STAGES = 4;     // windows in shared memory: the one multiplied and three coming
constexpr int PIPELINE_SHARED_BYTES = PIPELINE_STAGES * (PIPELINE_ROWS + PIPELINE_OUTPUTS) * WINDOW * 2;

// Prompt steps with a 16-bit operand: x in w's type, both with rows of whole 16-byte chunks at
// 16-byte aligned addresses (cols a multiple of 8; the caller checks). Grid: (ceil(N / 128),
// ceil(rows / 128)); 256 threads; PIPELINE_SHARED_BYTES of dynamic shared memory, a ring of
// PIPELINE_STAGES windows (rows of 32 values, 64 bytes, as in tiles) that cp.async fills
// PIPELINE_STAGES - 1 windows ahead of the one multiplied, so the loads of three windows are in
// flight while the tensor cores work; the first windows' weights are asked for before the launch
// waits for the kernel before it. A warp multiplies 64 rows × 32 outputs a window, the same
// fragments and the same order as the other kernels.
template <typename W>
static __device__ void pipelined(const W* __restrict__ x, int rows, int cols, const W* __restrict__ w, int outputs,
        float* __restrict__ out) {
    extern __shared__ __align__(16) unsigned char pipeline_shared[];
    W (*x_stage)[PIPELINE_ROWS][WINDOW] = reinterpret_cast<W (*)[PIPELINE_ROWS][WINDOW]>(pipeline_shared);
    W (*w_stage)[PIPELINE_OUTPUTS][WINDOW] = reinterpret_cast<W (*)[PIPELINE_OUTPUTS][WINDOW]>(
            pipeline_shared + (size_t) PIPELINE_STAGES * PIPELINE_ROWS * WINDOW * sizeof(W));
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int warp_row = (warp / 4) * 64;
    const int warp_output = (warp % 4) * 32;
    const int first_row = blockIdx.y * PIPELINE_ROWS;
    const int first_output = blockIdx.x * PIPELINE_OUTPUTS;
    const int windows = (cols + WINDOW - 1) / WINDOW;

    // A thread's copies of a window: rows copy_row and copy_row + 64 of each tile, 16-byte chunk
    // copy_chunk (k 8 · copy_chunk .. + 7 of the window). Past the matrices' edges: zeros.
    const int copy_row = threadIdx.x / 4;
    const int copy_chunk = threadIdx.x % 4;
    // Rows [first, first + 128) of a row-major (count, cols) matrix m, window `window`, into `tile`.
    auto copy_window = [&](W (*tile)[WINDOW], const W* m, int first, int count, int window) {
        const int k = window * WINDOW + 8 * copy_chunk;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int row = first + copy_row + 64 * half;
            const bool valid = row < count && k < cols;
            coil_copy16(&tile[copy_row + 64 * half][8 * copy_chunk], valid ? m + (size_t) row * cols + k : m, valid);
        }
    };
    auto copy_weights = [&](int window) {
        copy_window(w_stage[window % PIPELINE_STAGES], w, first_output, outputs, window);
    };
    auto copy_operand = [&](int window) {
        copy_window(x_stage[window % PIPELINE_STAGES], x, first_row, rows, window);
    };

    // The first PIPELINE_STAGES - 1 windows, one copy group each (the weights all join the first).
#pragma unroll
    for (int window = 0; window < PIPELINE_STAGES - 1; window++) {
        if (window < windows) {
            copy_weights(window);
        }
    }
    coil_grid_dependency_wait();
    coil_launch_dependents();
#pragma unroll
    for (int window = 0; window < PIPELINE_STAGES - 1; window++) {
        if (window < windows) {
            copy_operand(window);
        }
        coil_copy_commit();
    }

    float total[4][4][4];
    float c[4][4][4];
    zero_sums(total);
    zero_sums(c);
    for (int window = 0; window < windows; window++) {
        // This window's group has landed (a group is committed every window, empty or not), and
        // every warp is done with the window before, whose stage the copies below refill.
        coil_copy_wait<PIPELINE_STAGES - 2>();
        __syncthreads();
        const int ahead = window + PIPELINE_STAGES - 1;
        if (ahead < windows) {
            copy_weights(ahead);
            copy_operand(ahead);
        }
        coil_copy_commit();
        const int stage = window % PIPELINE_STAGES;
        warp_window<W>(total, c, &x_stage[stage][warp_row], &w_stage[stage][warp_output], g, t, window, windows);
    }
    coil_copy_wait<0>();
    store_sums(out, rows, outputs, total, first_row + warp_row, first_output + warp_output, g, t);
}

constexpr int F32_TILE = 32;  // rows and outputs a block of gemm_invariant_f32

// f32 weights. Grid: (ceil(N / 32), ceil(rows / 32)); 256 threads, each 4 rows of one output; the
// tiles of x and w pass through shared memory 32 k at a time, each output a chain of fmaf in k order.
static __device__ void f32_tiles(const float* __restrict__ x, int rows, int cols, const float* __restrict__ w,
        int outputs, float* __restrict__ out) {
    __shared__ float x_tile[F32_TILE][F32_TILE + 1];
    __shared__ float w_tile[F32_TILE][F32_TILE + 1];
    const int column = threadIdx.x % F32_TILE;
    const int row_group = threadIdx.x / F32_TILE;  // rows row_group + 8 · i
    const int first_row = blockIdx.y * F32_TILE;
    const int first_output = blockIdx.x * F32_TILE;
    float sums[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    coil_grid_dependency_wait();
    coil_launch_dependents();
    for (int k0 = 0; k0 < cols; k0 += F32_TILE) {
        for (int i = threadIdx.x; i < F32_TILE * F32_TILE; i += blockDim.x) {
            const int r = i / F32_TILE;
            const int k = k0 + i % F32_TILE;
            x_tile[r][i % F32_TILE] = first_row + r < rows && k < cols ? x[(size_t) (first_row + r) * cols + k] : 0.0f;
            w_tile[r][i % F32_TILE] =
                    first_output + r < outputs && k < cols ? w[(size_t) (first_output + r) * cols + k] : 0.0f;
        }
        __syncthreads();
        const int steps = min(F32_TILE, cols - k0);
        for (int k = 0; k < steps; k++) {
            const float weight = w_tile[column][k];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                sums[i] = fmaf(x_tile[row_group + 8 * i][k], weight, sums[i]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = first_row + row_group + 8 * i;
        if (row < rows && first_output + column < outputs) {
            out[(size_t) row * outputs + first_output + column] = sums[i];
        }
    }
}

}  // namespace coil_invariant

#define COIL_GEMM_INVARIANT_TILES(NAME, W, X)                                                                        \
    extern "C" __global__ void __launch_bounds__(coil_invariant::TILE_THREADS) gemm_invariant_tiles_##NAME(        \
            const X* x, int rows, int cols, const W* w, int outputs, float* out) {                                \
        coil_invariant::tiles<W, X>(x, rows, cols, w, outputs, out);                                              \
    }

#define COIL_GEMM_INVARIANT_PIPELINED(NAME, W)                                                                   \
    extern "C" __global__ void __launch_bounds__(coil_invariant::PIPELINE_THREADS, 1)                             \
            gemm_invariant_pipelined_##NAME(const W* x, int rows, int cols, const W* w, int outputs, float* out) { \
        coil_invariant::pipelined<W>(x, rows, cols, w, outputs, out);                                             \
    }

COIL_GEMM_INVARIANT_TILES(bf16_xf32, __nv_bfloat16, float)
COIL_GEMM_INVARIANT_TILES(bf16_xbf16, __nv_bfloat16, __nv_bfloat16)
COIL_GEMM_INVARIANT_TILES(f16_xf32, __half, float)
COIL_GEMM_INVARIANT_TILES(f16_xf16, __half, __half)
COIL_GEMM_INVARIANT_PIPELINED(bf16, __nv_bfloat16)
COIL_GEMM_INVARIANT_PIPELINED(f16, __half)

extern "C" __global__ void __launch_bounds__(256) gemm_invariant_f32(const float* x, int rows, int cols,
        const float* w, int outputs, float* out) {
    coil_invariant::f32_tiles(x, rows, cols, w, outputs, out);
}
