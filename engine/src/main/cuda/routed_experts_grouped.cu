// The routed experts' grouped path, for many (row, slot) pairs (a prompt's chunk). The per-pair
// kernels (routed_experts.cu) read a pair's expert weights once per pair: 3 · F · H weights a pair, 28 MB a token of granite-4.0-h-
// tiny's layer. Here the pairs are grouped by expert and each block multiplies a tile of up to
// T pairs of one expert, so a block reads its slice of the expert's weights once for the whole
// tile (T = ROUTED_EXPERTS_TILE_PAIRS, or ROUTED_EXPERTS_SMALL_TILE_PAIRS on the tensor cores where
// the pairs an expert are few, below):
//   1. routed_experts_group (one block, plus blocks that round x to bf16 for the tensor-core
//      path): a counting sort of the pairs by expert, and the table of tiles (expert, first
//      sorted place, pairs), at most ceil(pairs / T) + E of them;
//   2. the input products over the tiles (bf16 experts on the tensor cores, here; f32 experts on the
//      CUDA cores, routed_experts_tiles_f32.cu): activated[p, j] = silu(gate) · up (gated experts) or
//      relu(up)² for the pair at sorted place p;
//   3. down over the tiles: y[pair, j] = Σ_c activated[p, c] · W[e·H + j, c] (f32, by pair);
//   4. routed_experts_combine: out[r, j] += Σ over slots s in order of weights[r, s] · y[r·k + s, j],
//      summed as routed_experts_down_add sums its slots' products.
// The grids follow from (rows, k, E, F, H) alone (the tile table's length is the bound; a block
// whose tile is empty returns at once), so the launches can be captured into a graph.
//
// A tile's rows are independent: each output of each pair is one sum over k in a fixed order
// (the mma's k16 steps in order, or one fma chain a thread), whatever the other pairs of the tile,
// so a row's output does not depend on the rows that share the launch, nor on the order of the
// pairs within an expert (the grouping's atomics do not fix it), nor on the tile's size: both
// tensor-core tiles take the same mma steps (k16 by k16, in order) for each (pair, weight row),
// whatever k they stage at a time, so their outputs are equal bit for bit.
//
// The small tile (16 pairs × the same 128 weight rows) serves decode steps of many rows: 64 rows ·
// 6 of 64 experts are about 6 pairs an expert, which the 64-pair tile holds in a tile that is
// nine-tenths zeros. Both tiles read an expert's weight slice once a tile and an expert's pairs
// then fit one tile of either size, so the bytes are the same; the 64-pair tile does 4 × the mma
// work (at granite-4.0-h-tiny's shapes about 19 GFLOP a layer, some 30 µs of mma.sync on an H200,
// beside the ~63 µs that reading the 302 MB takes), stages 4 × the operand rows, holds 4 × the
// accumulators (so fewer blocks a multiprocessor and fewer weight bytes in flight). The small tile
// reads an expert's weights once more for each further 16 pairs it has, so RoutedExpertsKernel
// takes it only while the mean stays well below 16 pairs an expert (its rule, and the reasons).
#include "routed_experts_tiles.cuh"

#define ROUTED_EXPERTS_GROUP_THREADS 1024
// The tensor-core tile (bf16 weights): 64 pairs × 128 weight rows (gate/up: 64 outputs' gate rows
// then their up rows; down: 128 outputs), K staged 64 at a time through a 3-stage cp.async ring in
// dynamic shared memory: each weight row's 128 contiguous bytes a stage (32 k's 64 bytes, scattered
// over 128 rows of the expert, left a 64-row decode step's small tiles reading an H200's memory at
// about 2.2 TB/s, and a prompt's large tiles slower than now). A staged row is CHUNK bf16 padded by
// 8 (64 → 144 bytes; 32 → 80): the 8 rows an ldmatrix reads start in 8 different 16-byte bank
// groups (9 and 5 groups apart, odd), so the reads do not conflict. The small tile: 16 pairs × 128
// weight rows alike.
#define ROUTED_EXPERTS_MMA_ROWS 128
#define ROUTED_EXPERTS_MMA_CHUNK 64
// 3 stages of 64: 82.9 KB of shared memory a block; the tile's 106 registers a thread leave 2 blocks a
// multiprocessor either way.
#define ROUTED_EXPERTS_MMA_STAGES 3
#define ROUTED_EXPERTS_SMALL_MMA_CHUNK 64
// 3 stages of 64: 62.2 KB of shared memory a block, so 3 blocks share a multiprocessor (and may take
// 85 registers): 3 × 2 chunks ahead × 16 KB of weights = 96 KB in flight a multiprocessor, where the
// 64-pair tile's 2 blocks keep 64 KB in flight.
#define ROUTED_EXPERTS_SMALL_MMA_STAGES 3
#define ROUTED_EXPERTS_SMALL_TILE_BLOCKS 3

// Groups the (row, slot) pairs by expert. Block 0 (ROUTED_EXPERTS_GROUP_THREADS threads):
//   sorted: (pairs) int32, the pairs r·k + s of expert 0, then of expert 1, ... (an expert's pairs
//           in no fixed order); pairs with an id outside [0, E) are left out (combine makes their
//           rows NaN);
//   tiles:  (tile_capacity) int4 {expert, first sorted place, pairs (1..T), 0}, an expert's tiles
//           in a row, then {-1, 0, 0, 0} up to tile_capacity (>= ceil(pairs / T) + E - 1 holds them all);
//           T = tile_pairs, the tile products' pairs a tile (16 or 64).
// Blocks 1.. (when x16 is given): x16 = x rounded to bf16 (round to nearest even), the tensor-core
// products' operand, as the dense prefill products round their input.
//   ids: (pairs) int32;  x: (x_elements) f32;  x16: (x_elements) bf16 or null.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_GROUP_THREADS) routed_experts_group(
        const int* __restrict__ ids, int pairs, int experts, int4* __restrict__ tiles, int tile_capacity,
        int tile_pairs, int* __restrict__ sorted, const float* __restrict__ x, long long x_elements,
        __nv_bfloat16* __restrict__ x16) {
    COIL_AFTER_PREVIOUS_KERNEL(); // the ids (route's output) and x
    if (blockIdx.x > 0) {
        if (x16 != nullptr) {
            const long long stride = (long long) (gridDim.x - 1) * blockDim.x;
            for (long long i = (long long) (blockIdx.x - 1) * blockDim.x + threadIdx.x; i < x_elements; i += stride) {
                x16[i] = __float2bfloat16_rn(x[i]);
            }
        }
        return;
    }
    __shared__ int counts[ROUTED_EXPERTS_MAX_EXPERTS];
    __shared__ int cursor[ROUTED_EXPERTS_MAX_EXPERTS];     // an expert's first sorted place, then its next
    __shared__ int first_tile[ROUTED_EXPERTS_MAX_EXPERTS + 1];
    const int thread = threadIdx.x;
    for (int e = thread; e < ROUTED_EXPERTS_MAX_EXPERTS; e += blockDim.x) {
        counts[e] = 0;
    }
    __syncthreads();
    for (int i = thread; i < pairs; i += blockDim.x) {
        const int expert = ids[i];
        if (expert >= 0 && expert < experts) {
            atomicAdd(&counts[expert], 1);
        }
    }
    __syncthreads();
    // Exclusive scans of the counts and of the tiles per expert: warp 0, lane l experts 8l .. 8l + 7.
    if (thread < 32) {
        constexpr int EACH = ROUTED_EXPERTS_MAX_EXPERTS / 32;
        int pair_total = 0;
        int tile_total = 0;
#pragma unroll
        for (int i = 0; i < EACH; i++) {
            const int count = counts[thread * EACH + i]; // 0 beyond E
            pair_total += count;
            tile_total += (count + tile_pairs - 1) / tile_pairs;
        }
        int pair_before = pair_total;
        int tile_before = tile_total;
#pragma unroll
        for (int offset = 1; offset < 32; offset <<= 1) {
            const int pair_up = __shfl_up_sync(0xffffffffu, pair_before, offset);
            const int tile_up = __shfl_up_sync(0xffffffffu, tile_before, offset);
            if (thread >= offset) {
                pair_before += pair_up;
                tile_before += tile_up;
            }
        }
        pair_before -= pair_total;
        tile_before -= tile_total;
#pragma unroll
        for (int i = 0; i < EACH; i++) {
            const int expert = thread * EACH + i;
            const int count = counts[expert];
            cursor[expert] = pair_before;
            first_tile[expert] = tile_before;
            pair_before += count;
            tile_before += (count + tile_pairs - 1) / tile_pairs;
        }
        if (thread == 31) {
            first_tile[ROUTED_EXPERTS_MAX_EXPERTS] = tile_before;
        }
    }
    __syncthreads();
    // The tile table: tile t belongs to the last expert whose first tile is at or before t (the
    // experts after it with no pairs start past t).
    const int tile_count = first_tile[ROUTED_EXPERTS_MAX_EXPERTS];
    for (int t = thread; t < tile_capacity; t += blockDim.x) {
        if (t >= tile_count) {
            tiles[t] = make_int4(-1, 0, 0, 0);
            continue;
        }
        int low = 0;
        int high = experts - 1;
        while (low < high) {
            const int middle = (low + high + 1) >> 1;
            if (first_tile[middle] <= t) {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        const int first = cursor[low] + (t - first_tile[low]) * tile_pairs;
        const int size = min(tile_pairs, cursor[low] + counts[low] - first);
        tiles[t] = make_int4(low, first, size, 0);
    }
    __syncthreads();
    // The pairs into their experts' places.
    for (int i = thread; i < pairs; i += blockDim.x) {
        const int expert = ids[i];
        if (expert >= 0 && expert < experts) {
            sorted[atomicAdd(&cursor[expert], 1)] = i;
        }
    }
}

// ---- Tensor-core tiles (bf16 weights) ----

static __device__ __forceinline__ unsigned int routed_experts_shared_address(const void* pointer) {
    return (unsigned int) __cvta_generic_to_shared(pointer);
}

// Four 8 × 8 bf16 matrices from shared memory: matrix i from the rows lanes 8i .. 8i + 7 point at;
// lane l receives elements (l / 4, 2 (l % 4) .. 2 (l % 4) + 1) of each, in r[0 .. 3].
static __device__ __forceinline__ void routed_experts_load_matrices(unsigned int (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
            : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
            : "r"(routed_experts_shared_address(row)));
#endif
}

// d += a · b: a 16 × 16 (rows = pairs), b 16 × 8 (columns = weight rows), bf16, f32 accumulation.
static __device__ __forceinline__ void routed_experts_mma(float (&d)[4], const unsigned int (&a)[4], unsigned int b0,
        unsigned int b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}


// One tile's product on tensor cores, C (PAIRS pairs × 128 weight rows) = A · Wᵀ over K = depth:
//   GATE_UP: A row m = x16[row of the pair at sorted place first + m] (x16: (rows, H) bf16), the
//            weight rows 0 .. 63 = gate rows e·2F + j0 + n, 64 .. 127 = up rows e·2F + F + j0 + n,
//            j0 = 64 · blockIdx.y; out: activated16 (sorted pairs, F) bf16 = silu(gate) · up rounded
//            to bf16 (the down product's operand, as the dense MLP rounds it);
//   UP:      A as GATE_UP's, the weight rows e·F + j0 + n, j0 = 128 · blockIdx.y; out: activated16
//            = relu(up)² rounded to bf16;
//   DOWN:    A row m = activated16[first + m] ((sorted pairs, F) bf16), the weight rows e·H + j0 + n,
//            j0 = 128 · blockIdx.y; out: y (pairs, H) f32, the pair's row r·k + s.
// Rows past the tile's pairs, weight rows past the expert's outputs and k past depth are staged as
// zeros (cp.async's zero fill) and their outputs not stored.
// Warps, PAIRS 64: 2 along the pairs × 4 along the weight rows, each 32 pairs × 32 weight rows
// (gate/up: the gate and up rows of the same 16 outputs, so that silu(gate) · up is made in
// registers): per k16, two ldmatrix.x4 of A, two of B and 8 mma. PAIRS 16: 1 × 8, each 16 pairs ×
// 16 weight rows (gate/up: the gate and up rows of 8 outputs): per k16 one ldmatrix.x4 of A, one
// of B and 2 mma. Either way a (pair, weight row)'s sum takes the same mma steps in the same order.
// The staging takes 16-byte copies where depth is a multiple of 8 and the pointers are aligned,
// element loads otherwise (odd test sizes; no real model has them).
template <int MODE, int PAIRS, int STAGES, int CHUNK>
static __device__ __forceinline__ void routed_experts_tile_mma(const int4* __restrict__ tiles,
        const int* __restrict__ sorted, int per_token, const __nv_bfloat16* __restrict__ operand, int depth,
        const __nv_bfloat16* __restrict__ weights, int outputs, void* __restrict__ out) {
    static_assert(PAIRS == 64 || PAIRS == 16, "the tiles of 64 and of 16 pairs");
    static_assert(CHUNK == 32 || CHUNK == 64, "K staged 32 or 64 at a time");
    constexpr int STRIDE = CHUNK + 8;
    constexpr int ROWS = ROUTED_EXPERTS_MMA_ROWS;
    // The staging: a row's CHUNK k in PARTS 16-byte copies, PER_PASS rows a pass of the block's threads.
    constexpr int PARTS = CHUNK / 8;
    constexpr int PER_PASS = ROUTED_EXPERTS_THREADS / PARTS;
    constexpr int A_PASSES = (PAIRS + PER_PASS - 1) / PER_PASS;
    constexpr int B_PASSES = ROWS / PER_PASS;
    constexpr int WARPS_M = PAIRS == 64 ? 2 : 1;           // warps along the pairs
    constexpr int WARPS_N = ROUTED_EXPERTS_WARPS / WARPS_M; // warps along the weight rows
    constexpr int MI = PAIRS / (16 * WARPS_M);             // m16 tiles a warp
    constexpr int NI = ROWS / WARPS_N / 8;                 // n8 tiles a warp (even: ldmatrix.x4 takes two)
    constexpr bool GATE_UP = MODE == ROUTED_EXPERTS_GATE_UP;
    constexpr int WARP_OUTPUTS = GATE_UP ? NI * 4 : NI * 8; // a warp's outputs j
    // The ring, in dynamic shared memory: a_stage[STAGES][PAIRS][STRIDE], then b_stage[STAGES][ROWS][STRIDE].
    extern __shared__ __align__(16) unsigned char routed_experts_ring[];
    auto a_stage = reinterpret_cast<__nv_bfloat16 (*)[PAIRS][STRIDE]>(routed_experts_ring);
    auto b_stage = reinterpret_cast<__nv_bfloat16 (*)[ROWS][STRIDE]>(
            routed_experts_ring + sizeof(__nv_bfloat16) * STAGES * PAIRS * STRIDE);
    __shared__ int pair_of[PAIRS];     // the tile's pairs r·k + s
    __shared__ int operand_row[PAIRS]; // the row of A each reads

    COIL_AFTER_PREVIOUS_KERNEL(); // the tile table and the sorted pairs (group), the operand
    const int4 tile = tiles[blockIdx.x];
    if (tile.x < 0) {
        return;
    }
    const int expert = tile.x;
    const int first = tile.y;
    const int size = tile.z;
    const int thread = threadIdx.x;
    const int lane = thread & 31;
    const int warp = thread >> 5;
    const int warp_m = warp / WARPS_N; // pairs 16 MI warp_m ..
    const int warp_n = warp % WARPS_N;
    const int j0 = blockIdx.y * (GATE_UP ? ROWS / 2 : ROWS);
    routed_experts_stage_tile_pairs<MODE, PAIRS>(sorted, first, size, per_token, pair_of, operand_row);
    auto weight_row = [&](int n) { return routed_experts_tile_weight_row<MODE, ROWS>(expert, outputs, j0, n); };
    // This thread's share of the staging: 8 k from `part` of A's rows row0 + PER_PASS i (those below
    // PAIRS) and of B's rows row0 + PER_PASS i.
    const int part = (thread % PARTS) * 8;
    const int row0 = thread / PARTS;
    const __nv_bfloat16* a_source[A_PASSES];
    bool a_stager[A_PASSES];
    bool a_valid[A_PASSES];
#pragma unroll
    for (int i = 0; i < A_PASSES; i++) {
        const int row = row0 + PER_PASS * i;
        a_stager[i] = row < PAIRS;
        a_valid[i] = row < size;
        a_source[i] = operand + (size_t) operand_row[a_stager[i] ? row : 0] * depth;
    }
    const __nv_bfloat16* b_source[B_PASSES];
    bool b_valid[B_PASSES];
#pragma unroll
    for (int i = 0; i < B_PASSES; i++) {
        const long long row = weight_row(row0 + PER_PASS * i);
        b_valid[i] = row >= 0;
        b_source[i] = weights + (size_t) (row >= 0 ? row : 0) * depth;
    }
    const bool vector = depth % 8 == 0 && coil_aligned16(operand) && coil_aligned16(weights);
    auto stage = [&](int buffer, int chunk) {
        const int k = chunk * CHUNK + part;
        if (vector) {
            const bool inside = k < depth;
#pragma unroll
            for (int i = 0; i < A_PASSES; i++) {
                if (a_stager[i]) {
                    coil_copy16(&a_stage[buffer][row0 + PER_PASS * i][part],
                            a_source[i] + (inside && a_valid[i] ? k : 0), inside && a_valid[i]);
                }
            }
#pragma unroll
            for (int i = 0; i < B_PASSES; i++) {
                coil_copy16(&b_stage[buffer][row0 + PER_PASS * i][part],
                        b_source[i] + (inside && b_valid[i] ? k : 0), inside && b_valid[i]);
            }
        } else {
#pragma unroll
            for (int q = 0; q < 8; q++) {
                const bool inside = k + q < depth;
#pragma unroll
                for (int i = 0; i < A_PASSES; i++) {
                    if (a_stager[i]) {
                        a_stage[buffer][row0 + PER_PASS * i][part + q] =
                                inside && a_valid[i] ? a_source[i][k + q] : __float2bfloat16_rn(0.0f);
                    }
                }
#pragma unroll
                for (int i = 0; i < B_PASSES; i++) {
                    b_stage[buffer][row0 + PER_PASS * i][part + q] =
                            inside && b_valid[i] ? b_source[i][k + q] : __float2bfloat16_rn(0.0f);
                }
            }
        }
    };

    float accumulator[MI][NI][4];
#pragma unroll
    for (int mi = 0; mi < MI; mi++) {
#pragma unroll
        for (int ni = 0; ni < NI; ni++) {
#pragma unroll
            for (int q = 0; q < 4; q++) {
                accumulator[mi][ni][q] = 0.0f;
            }
        }
    }
    // The first weight row of the warp's n-tile ni: gate/up its outputs' gate rows (n-tiles
    // 0 .. NI/2 - 1) then their up rows (NI/2 ..), so that n-tile ni and ni + NI/2 are one output's
    // gate and up; up and down consecutive rows.
    auto tile_row = [&](int ni) -> int {
        if (GATE_UP) {
            return (ni < NI / 2 ? 0 : ROWS / 2) + WARP_OUTPUTS * warp_n + 8 * (ni % (NI / 2));
        }
        return WARP_OUTPUTS * warp_n + 8 * ni;
    };
    // ldmatrix addresses: A matrices (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15) of a
    // 16 × 16 block, as mma's a0 .. a3; B matrices (n-tile 2 bi: k 0-7, k 8-15), (n-tile 2 bi + 1:
    // k 0-7, k 8-15), as b0, b1 of n-tile 2 bi then of n-tile 2 bi + 1.
    const int a_lane_row = lane & 15;
    const int a_lane_k = (lane >> 4) * 8;
    int b_lane_row[NI / 2];
#pragma unroll
    for (int bi = 0; bi < NI / 2; bi++) {
        b_lane_row[bi] = tile_row(2 * bi + (lane >> 4)) + (lane & 7);
    }
    const int b_lane_k = ((lane >> 3) & 1) * 8;

    const int chunks = (depth + CHUNK - 1) / CHUNK;
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < chunks) {
            stage(s, s);
        }
        coil_copy_commit();
    }
    for (int chunk = 0; chunk < chunks; chunk++) {
        coil_copy_wait<STAGES - 2>();
        __syncthreads(); // chunk's stage is in; every warp is done with the stage refilled next
        const int next = chunk + STAGES - 1;
        if (next < chunks) {
            stage(next % STAGES, next);
        }
        coil_copy_commit();
        const int buffer = chunk % STAGES;
#pragma unroll
        for (int k16 = 0; k16 < CHUNK; k16 += 16) {
            unsigned int a[MI][4];
            unsigned int b[NI / 2][4];
#pragma unroll
            for (int mi = 0; mi < MI; mi++) {
                routed_experts_load_matrices(a[mi],
                        &a_stage[buffer][16 * MI * warp_m + 16 * mi + a_lane_row][k16 + a_lane_k]);
            }
#pragma unroll
            for (int bi = 0; bi < NI / 2; bi++) {
                routed_experts_load_matrices(b[bi], &b_stage[buffer][b_lane_row[bi]][k16 + b_lane_k]);
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++) {
#pragma unroll
                for (int ni = 0; ni < NI; ni++) {
                    routed_experts_mma(accumulator[mi][ni], a[mi], b[ni >> 1][2 * (ni & 1)], b[ni >> 1][2 * (ni & 1) + 1]);
                }
            }
        }
    }
    coil_copy_wait<0>();

    // Accumulator element q of (mi, ni): pair 16 MI warp_m + 16 mi + lane / 4 (+ 8 for q >= 2),
    // weight row tile_row(ni) + 2 (lane % 4) + q % 2.
    const int group = lane >> 2;
    const int column = 2 * (lane & 3);
#pragma unroll
    for (int mi = 0; mi < MI; mi++) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int m = 16 * MI * warp_m + 16 * mi + group + (q >= 2 ? 8 : 0);
            if (m >= size) {
                continue;
            }
            if (GATE_UP) {
                __nv_bfloat16* activated = static_cast<__nv_bfloat16*>(out) + (size_t) (first + m) * outputs;
#pragma unroll
                for (int ni = 0; ni < NI / 2; ni++) {
                    const int j = j0 + tile_row(ni) + column + (q & 1);
                    if (j < outputs) {
                        activated[j] = __float2bfloat16_rn(
                                coil_silu_product(accumulator[mi][ni][q], accumulator[mi][ni + NI / 2][q]));
                    }
                }
            } else if (MODE == ROUTED_EXPERTS_UP) {
                __nv_bfloat16* activated = static_cast<__nv_bfloat16*>(out) + (size_t) (first + m) * outputs;
#pragma unroll
                for (int ni = 0; ni < NI; ni++) {
                    const int j = j0 + tile_row(ni) + column + (q & 1);
                    if (j < outputs) {
                        activated[j] = __float2bfloat16_rn(coil_squared_relu(accumulator[mi][ni][q]));
                    }
                }
            } else {
                float* y = static_cast<float*>(out) + (size_t) pair_of[m] * outputs;
#pragma unroll
                for (int ni = 0; ni < NI; ni++) {
                    const int j = j0 + tile_row(ni) + column + (q & 1);
                    if (j < outputs) {
                        y[j] = accumulator[mi][ni][q];
                    }
                }
            }
        }
    }
}

// The 64-pair tiles. Dynamic shared memory: (64 + 128) × (64 + 8) × 2 × 3 = 82944 bytes (the ring).
// Grid: (tile_capacity, ceil(F / 64)); block: 256 threads.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) routed_experts_tile_gate_up_bf16(
        const int4* __restrict__ tiles, const int* __restrict__ sorted, int per_token,
        const __nv_bfloat16* __restrict__ x16, int hidden, const __nv_bfloat16* __restrict__ gate_and_up, int width,
        __nv_bfloat16* __restrict__ activated16) {
    routed_experts_tile_mma<ROUTED_EXPERTS_GATE_UP, ROUTED_EXPERTS_TILE_PAIRS, ROUTED_EXPERTS_MMA_STAGES,
            ROUTED_EXPERTS_MMA_CHUNK>(tiles, sorted, per_token, x16, hidden, gate_and_up, width, activated16);
}

// Grid: (tile_capacity, ceil(F / 128)); block: 256 threads.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) routed_experts_tile_up_bf16(
        const int4* __restrict__ tiles, const int* __restrict__ sorted, int per_token,
        const __nv_bfloat16* __restrict__ x16, int hidden, const __nv_bfloat16* __restrict__ up, int width,
        __nv_bfloat16* __restrict__ activated16) {
    routed_experts_tile_mma<ROUTED_EXPERTS_UP, ROUTED_EXPERTS_TILE_PAIRS, ROUTED_EXPERTS_MMA_STAGES,
            ROUTED_EXPERTS_MMA_CHUNK>(tiles, sorted, per_token, x16, hidden, up, width, activated16);
}

// Grid: (tile_capacity, ceil(H / 128)); block: 256 threads.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) routed_experts_tile_down_bf16(
        const int4* __restrict__ tiles, const int* __restrict__ sorted, int per_token,
        const __nv_bfloat16* __restrict__ activated16, int width, const __nv_bfloat16* __restrict__ down, int hidden,
        float* __restrict__ y) {
    routed_experts_tile_mma<ROUTED_EXPERTS_DOWN, ROUTED_EXPERTS_TILE_PAIRS, ROUTED_EXPERTS_MMA_STAGES,
            ROUTED_EXPERTS_MMA_CHUNK>(tiles, sorted, per_token, activated16, width, down, hidden, y);
}

// The small tiles (16 pairs), over a tile table grouped with tile_pairs 16. Dynamic shared memory:
// (16 + 128) × (64 + 8) × 2 × 3 = 62208 bytes (the ring). Grid: (tile_capacity, ceil(F / 64)); block:
// 256 threads; registers for ROUTED_EXPERTS_SMALL_TILE_BLOCKS blocks a multiprocessor.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, ROUTED_EXPERTS_SMALL_TILE_BLOCKS)
        routed_experts_small_tile_gate_up_bf16(const int4* __restrict__ tiles, const int* __restrict__ sorted,
        int per_token, const __nv_bfloat16* __restrict__ x16, int hidden,
        const __nv_bfloat16* __restrict__ gate_and_up, int width, __nv_bfloat16* __restrict__ activated16) {
    routed_experts_tile_mma<ROUTED_EXPERTS_GATE_UP, ROUTED_EXPERTS_SMALL_TILE_PAIRS,
            ROUTED_EXPERTS_SMALL_MMA_STAGES, ROUTED_EXPERTS_SMALL_MMA_CHUNK>(
            tiles, sorted, per_token, x16, hidden, gate_and_up, width, activated16);
}

// Grid: (tile_capacity, ceil(F / 128)); block: 256 threads.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, ROUTED_EXPERTS_SMALL_TILE_BLOCKS)
        routed_experts_small_tile_up_bf16(const int4* __restrict__ tiles, const int* __restrict__ sorted,
        int per_token, const __nv_bfloat16* __restrict__ x16, int hidden, const __nv_bfloat16* __restrict__ up,
        int width, __nv_bfloat16* __restrict__ activated16) {
    routed_experts_tile_mma<ROUTED_EXPERTS_UP, ROUTED_EXPERTS_SMALL_TILE_PAIRS,
            ROUTED_EXPERTS_SMALL_MMA_STAGES, ROUTED_EXPERTS_SMALL_MMA_CHUNK>(
            tiles, sorted, per_token, x16, hidden, up, width, activated16);
}

// Grid: (tile_capacity, ceil(H / 128)); block: 256 threads.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, ROUTED_EXPERTS_SMALL_TILE_BLOCKS)
        routed_experts_small_tile_down_bf16(const int4* __restrict__ tiles, const int* __restrict__ sorted,
        int per_token, const __nv_bfloat16* __restrict__ activated16, int width,
        const __nv_bfloat16* __restrict__ down, int hidden, float* __restrict__ y) {
    routed_experts_tile_mma<ROUTED_EXPERTS_DOWN, ROUTED_EXPERTS_SMALL_TILE_PAIRS,
            ROUTED_EXPERTS_SMALL_MMA_STAGES, ROUTED_EXPERTS_SMALL_MMA_CHUNK>(
            tiles, sorted, per_token, activated16, width, down, hidden, y);
}


// out[r, j] = out[r, j] + moe, moe = Σ over slots s = 0 .. k-1 in order of weights[r, s] · y[r·k + s, j],
// in f32 on its own from 0 and added to out once: routed_experts_down_add's order of sums. A row with
// an id outside [0, E) becomes NaN, as there.
//   y: (rows · k, H) f32;  ids, weights: (rows, k);  out: (rows, H) f32, read and written.
// Grid: (ceil(H / 256), min(rows, 65535)), striding over the rows; a thread an output.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_combine(
        const float* __restrict__ y, int rows, int per_token, int hidden, int experts, const int* __restrict__ ids,
        const float* __restrict__ weights, float* __restrict__ out) {
    COIL_AFTER_PREVIOUS_KERNEL(); // y (the down tiles), the ids and weights, the residual stream
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= hidden) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        float moe = 0.0f;
        bool in_range = true;
        for (int s = 0; s < per_token; s++) {
            const size_t pair = (size_t) r * per_token + s;
            const int expert = ids[pair];
            in_range &= expert >= 0 && expert < experts;
            moe = __fadd_rn(moe, __fmul_rn(weights[pair], y[pair * hidden + j]));
        }
        float* target = out + (size_t) r * hidden + j;
        *target = in_range ? __fadd_rn(*target, moe) : __int_as_float(0x7fc00000);
    }
}
