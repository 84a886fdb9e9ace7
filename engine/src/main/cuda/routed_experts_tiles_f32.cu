// The grouped path's tiles for experts a checkpoint stores in f32 (weights keep their storage
// dtype on the GPU): the tile table routed_experts_grouped.cu makes, each tile's product on the
// CUDA cores, an fma chain a thread.
#include "routed_experts_tiles.cuh"

// The CUDA-core tile (f32 weights): 64 pairs × 64 weight rows (gate/up: 32 outputs' gate rows then
// their up rows), K staged 16 at a time, transposed (k-major) so that a thread reads its 4 pairs as
// one float4; rows padded to 68 floats (272 bytes, 16-byte aligned).
#define ROUTED_EXPERTS_FMA_ROWS 64
#define ROUTED_EXPERTS_FMA_CHUNK 16
#define ROUTED_EXPERTS_FMA_STRIDE 68

// One tile's product on the CUDA cores, C (64 pairs × 64 weight rows) = A · Wᵀ over K = depth, f32:
//   GATE_UP: A row m = x[row of the pair at sorted place first + m] ((rows, H) f32), weight rows
//            0 .. 31 = gate rows e·2F + j0 + n, 32 .. 63 = up rows e·2F + F + j0 + n - 32,
//            j0 = 32 · blockIdx.y; out: activated (sorted pairs, F) f32 = silu(gate) · up;
//   UP:      A as GATE_UP's, weight rows e·F + j0 + n, j0 = 64 · blockIdx.y; out: activated = relu(up)²;
//   DOWN:    A row m = activated[first + m] ((sorted pairs, F) f32), weight rows e·H + j0 + n,
//            j0 = 64 · blockIdx.y; out: y (pairs, H) f32.
// Thread (tx = thread % 16, ty = thread / 16) owns pairs 4 ty .. 4 ty + 3 and weight rows 2 tx,
// 2 tx + 1, 32 + 2 tx, 33 + 2 tx (gate/up: the gate and up rows of outputs j0 + 2 tx, j0 + 2 tx + 1):
// 16 sums, each one fma chain over k in order. Each staged weight is read by the 16 threads of its
// column across the tile's 64 pairs.
template <int MODE>
static __device__ __forceinline__ void routed_experts_tile_fma(const int4* __restrict__ tiles,
        const int* __restrict__ sorted, int per_token, const float* __restrict__ operand, int depth,
        const float* __restrict__ weights, int outputs, float* __restrict__ out) {
    constexpr int CHUNK = ROUTED_EXPERTS_FMA_CHUNK;
    constexpr int STRIDE = ROUTED_EXPERTS_FMA_STRIDE;
    constexpr int PAIRS = ROUTED_EXPERTS_TILE_PAIRS;
    constexpr int ROWS = ROUTED_EXPERTS_FMA_ROWS;
    constexpr bool GATE_UP = MODE == ROUTED_EXPERTS_GATE_UP;
    __shared__ __align__(16) float a_stage[CHUNK][STRIDE]; // (k, pair)
    __shared__ __align__(16) float b_stage[CHUNK][STRIDE]; // (k, weight row)
    __shared__ int pair_of[PAIRS];
    __shared__ int operand_row[PAIRS];

    COIL_AFTER_PREVIOUS_KERNEL(); // the tile table and the sorted pairs (group), the operand
    const int4 tile = tiles[blockIdx.x];
    if (tile.x < 0) {
        return;
    }
    const int expert = tile.x;
    const int first = tile.y;
    const int size = tile.z;
    const int thread = threadIdx.x;
    const int tx = thread & 15;
    const int ty = thread >> 4;
    const int j0 = blockIdx.y * (GATE_UP ? ROWS / 2 : ROWS);
    routed_experts_stage_tile_pairs<MODE, PAIRS>(sorted, first, size, per_token, pair_of, operand_row);

    // Staging: 64 rows × 16 k of each, 4 elements a thread, idx = thread + 256 i: row idx / 16, k idx % 16
    // (a half warp reads 16 consecutive floats of a row).
    const int k_part = thread & 15;
    const float* a_source[4];
    const float* b_source[4];
    bool a_valid[4];
    bool b_valid[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = (thread >> 4) + 16 * i;
        a_valid[i] = row < size;
        a_source[i] = operand + (size_t) operand_row[row] * depth;
        const long long weight_row = routed_experts_tile_weight_row<MODE, ROWS>(expert, outputs, j0, row);
        b_valid[i] = weight_row >= 0;
        b_source[i] = weights + (size_t) (weight_row >= 0 ? weight_row : 0) * depth;
    }

    float accumulator[4][4]; // (pair 4 ty + i, weight row c: 2 tx, 2 tx + 1, 32 + 2 tx, 33 + 2 tx)
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int c = 0; c < 4; c++) {
            accumulator[i][c] = 0.0f;
        }
    }
    for (int k0 = 0; k0 < depth; k0 += CHUNK) {
        const int k = k0 + k_part;
        const bool inside = k < depth;
        float a_values[4];
        float b_values[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            a_values[i] = inside && a_valid[i] ? __ldg(a_source[i] + k) : 0.0f;
            b_values[i] = inside && b_valid[i] ? __ldg(b_source[i] + k) : 0.0f;
        }
        __syncthreads(); // every thread is done with the last chunk
#pragma unroll
        for (int i = 0; i < 4; i++) {
            a_stage[k_part][(thread >> 4) + 16 * i] = a_values[i];
            b_stage[k_part][(thread >> 4) + 16 * i] = b_values[i];
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < CHUNK; kk++) {
            const float4 a = *reinterpret_cast<const float4*>(&a_stage[kk][4 * ty]);
            const float2 low = *reinterpret_cast<const float2*>(&b_stage[kk][2 * tx]);
            const float2 high = *reinterpret_cast<const float2*>(&b_stage[kk][ROWS / 2 + 2 * tx]);
            const float as[4] = {a.x, a.y, a.z, a.w};
            const float bs[4] = {low.x, low.y, high.x, high.y};
#pragma unroll
            for (int i = 0; i < 4; i++) {
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    accumulator[i][c] = fmaf(as[i], bs[c], accumulator[i][c]);
                }
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int m = 4 * ty + i;
        if (m >= size) {
            continue;
        }
        if (GATE_UP) {
            float* activated = out + (size_t) (first + m) * outputs;
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int j = j0 + 2 * tx + c;
                if (j < outputs) {
                    activated[j] = coil_silu_product(accumulator[i][c], accumulator[i][c + 2]);
                }
            }
        } else {
            // UP into the pair's sorted place, DOWN into its row r·k + s.
            float* target = out + (size_t) (MODE == ROUTED_EXPERTS_UP ? first + m : pair_of[m]) * outputs;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int j = j0 + (c < 2 ? 2 * tx + c : ROWS / 2 + 2 * tx + c - 2);
                if (j < outputs) {
                    target[j] = MODE == ROUTED_EXPERTS_UP ? coil_squared_relu(accumulator[i][c]) : accumulator[i][c];
                }
            }
        }
    }
}

// Grid: (tile_capacity, ceil(F / 32)); block: 256 threads.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_tile_gate_up_f32(
        const int4* __restrict__ tiles, const int* __restrict__ sorted, int per_token, const float* __restrict__ x,
        int hidden, const float* __restrict__ gate_and_up, int width, float* __restrict__ activated) {
    routed_experts_tile_fma<ROUTED_EXPERTS_GATE_UP>(tiles, sorted, per_token, x, hidden, gate_and_up, width, activated);
}

// Grid: (tile_capacity, ceil(F / 64)); block: 256 threads.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_tile_up_f32(
        const int4* __restrict__ tiles, const int* __restrict__ sorted, int per_token, const float* __restrict__ x,
        int hidden, const float* __restrict__ up, int width, float* __restrict__ activated) {
    routed_experts_tile_fma<ROUTED_EXPERTS_UP>(tiles, sorted, per_token, x, hidden, up, width, activated);
}

// Grid: (tile_capacity, ceil(H / 64)); block: 256 threads.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_tile_down_f32(
        const int4* __restrict__ tiles, const int* __restrict__ sorted, int per_token,
        const float* __restrict__ activated, int width, const float* __restrict__ down, int hidden,
        float* __restrict__ y) {
    routed_experts_tile_fma<ROUTED_EXPERTS_DOWN>(tiles, sorted, per_token, activated, width, down, hidden, y);
}
