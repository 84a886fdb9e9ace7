#ifndef COIL_ROUTED_EXPERTS_TILES_CUH
#define COIL_ROUTED_EXPERTS_TILES_CUH
// What the grouped path's tiles share (routed_experts_grouped.cu: the grouping and the tensor-core
// tiles; routed_experts_tiles_f32.cu: the CUDA-core tiles): a tile's pairs and weight rows.
#include "routed_experts.cuh"

// Pairs a tile: the CUDA-core tiles and the large tensor-core tile; the small tensor-core tile.
#define ROUTED_EXPERTS_TILE_PAIRS 64
#define ROUTED_EXPERTS_SMALL_TILE_PAIRS 16

// What a tile multiplies: the gated experts' gate and up rows (A = x), the squared-ReLU experts' up
// rows (A = x), or the down rows (A = the activated values).
#define ROUTED_EXPERTS_GATE_UP 0
#define ROUTED_EXPERTS_UP 1
#define ROUTED_EXPERTS_DOWN 2

// A tile's pairs in shared memory, for both kinds of tile: pair_of[m] = the pair r·k + s at sorted
// place first + m, and operand_row[m] = the operand row it reads (gate/up, up: its row r of x; down:
// its sorted place). Rows past the tile's size read nothing (zero fill) but point at a row of the operand.
template <int MODE, int PAIRS>
static __device__ __forceinline__ void routed_experts_stage_tile_pairs(const int* __restrict__ sorted, int first,
        int size, int per_token, int* pair_of, int* operand_row) {
    const int thread = threadIdx.x;
    if (thread < PAIRS) {
        const int pair = thread < size ? sorted[first + thread] : 0;
        pair_of[thread] = pair;
        operand_row[thread] = MODE != ROUTED_EXPERTS_DOWN ? pair / per_token : first + (thread < size ? thread : 0);
    }
    __syncthreads();
}

// Weight row n of a tile of ROWS weight rows from output j0, or -1 past the expert's outputs.
// gate/up: rows 0 .. ROWS/2 - 1 are the gate rows e·2F + j0 + n, the rest the up rows of the same
// outputs (e·2F + F + j0 + n - ROWS/2); up: rows e·F + j0 + n; down: rows e·H + j0 + n.
template <int MODE, int ROWS>
static __device__ __forceinline__ long long routed_experts_tile_weight_row(int expert, int outputs, int j0, int n) {
    if (MODE == ROUTED_EXPERTS_GATE_UP) {
        const int j = j0 + (n & (ROWS / 2 - 1));
        return j < outputs ? (long long) expert * 2 * outputs + (n >= ROWS / 2 ? outputs : 0) + j : -1;
    }
    const int j = j0 + n;
    return j < outputs ? (long long) expert * outputs + j : -1;
}

#endif
