// Mamba-2 SSD scan, step 4 of 4, on Hopper's warpgroup MMAs: the same outputs as
// ssd_chunk_output (ssd_scan_output.cu has the formula), tf32 products with f32 accumulation.
#include "ssd_scan.cuh"
#include "warpgroup_mma.cuh"

// A block serves one chunk, two heads of one group and 64 columns p of head_dim, with two
// warpgroups (256 threads) per head. Warpgroup k of a head owns the chunk's row tiles k and 3 − k
// (64 tokens each), so both do the same causal work; each accumulates its rows × 64 p in registers.
// The chunk is walked in slices of 32, first of the state dimension n, then of the tokens j, through
// STAGES shared-memory stages. A stage holds the wide tile (256 rows × 32 floats of C, or of the Gram
// matrix), shared by the heads, and per head two narrow tiles of 64 rows p × 32 floats: the entering
// state S[p][n] (state slices), or x transposed, x[j][p] at row p, column j, and beside it the same
// scaled by the column factor f_j = exp(cum_ref − cum_j) · dt_j, ref the slice's last token (token
// slices). Tile rows are 128 bytes with 16-byte chunk c of row r at c ^ (r mod 8): wgmma's 128-byte
// swizzle. x reaches its tiles through a staging area per head that each thread fills and empties
// itself (cp.async, then its own loads).
//   state slice: acc += C · Sᵀ, both read from shared memory by the tensor cores; after the last,
//                row l is scaled by exp(cum_l).
//   token slice, for a row tile wholly after it: the decay factors as exp(cum_l − cum_ref) · f_j, so
//                the product is the plain Gram tile times the scaled x, both from shared memory,
//                into a scratch accumulator that joins acc scaled by exp(cum_l − cum_ref) per row.
//   token slice on the diagonal (it overlaps the row tile): L[l][j] = gram[l][j] · exp(cum_l −
//                cum_j) · dt_j for j ≤ l, else 0, made in registers as the A operand, times x.
// The skip term D · x joins acc in the diagonal slice that holds the row, from the staged f32 x, so
// that no block reads x again at its end. Needs x, C, the entering states and their row strides on
// 16 bytes, and head_dim and state_size multiples of 4 (the launcher checks).
// Shared memory: each head's sums, then, 1024-byte aligned, STAGES stages, then as many x staging areas.
#define SSD_WARPGROUP_NARROW_BYTES (2 * 64 * 128)
#define SSD_WARPGROUP_STAGE_BYTES(heads) (SSD_MAX_CHUNK * 128 + (heads) * SSD_WARPGROUP_NARROW_BYTES)
#define SSD_WARPGROUP_X_BYTES (SSD_SLICE * 64 * 4)
#define SSD_WARPGROUP_SHARED_BYTES(heads, stages) \
    ((heads) * sizeof(SsdSums) + 1024 + (stages) * (SSD_WARPGROUP_STAGE_BYTES(heads) + (heads) * SSD_WARPGROUP_X_BYTES))

#ifdef COIL_HAS_WGMMA
// Queues rows [first_pass · THREADS / 8, row_end) × 32 floats of a row-major matrix (row r at
// origin + r · stride) into a swizzled tile of ROWS rows, 16 bytes a copy: this thread (of
// THREADS) copies chunk thread mod 8 of rows thread / 8 + k · THREADS / 8. Rows at or past
// rows_valid and columns at or past columns_valid read as zeros.
template <int ROWS, int THREADS>
static __device__ __forceinline__ void ssd_copy_tile(unsigned tile, const float* origin, long long stride,
        int first_pass, int row_end, int rows_valid, int columns_valid, int thread, const float* fallback) {
    constexpr int ROWS_PER_PASS = THREADS / 8;
    const int row = thread >> 3;
    const int chunk = thread & 7;
    const unsigned destination = tile + coil_swizzled_chunk(row, chunk);
    const float* source = origin + row * stride + 4 * chunk;
    const bool column_valid = 4 * chunk < columns_valid;
#pragma unroll
    for (int pass = 0; pass < ROWS / ROWS_PER_PASS; pass++) {
        const int r = row + pass * ROWS_PER_PASS;
        if (pass >= first_pass && r < row_end) {
            const bool valid = column_valid && r < rows_valid;
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(destination + pass * ROWS_PER_PASS * 128),
                    "l"(valid ? source + pass * ROWS_PER_PASS * stride : fallback), "r"(valid ? 16 : 0));
        }
    }
}

// acc[i] += C rows of tile tiles[i] · Sᵀ over one 32-wide state slice, for the first COUNT tiles.
template <int COUNT>
static __device__ __forceinline__ void ssd_state_products(float (&acc)[2][8][4], const int (&tiles)[2], unsigned wide,
        unsigned narrow) {
    coil_wgmma::begin();
#pragma unroll
    for (int i = 0; i < COUNT; i++) {
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            coil_wgmma::multiply_shared_tf32_n64(acc[i], coil_wgmma::k_major(wide + tiles[i] * 64 * 128 + ks * 32),
                    coil_wgmma::k_major(narrow + ks * 32), 1);
        }
    }
    coil_wgmma::end_and_wait();
    coil_wgmma::hold(acc);
}

// acc += exp(cum_l − cum_ref) · (Gram rows of the tile at `rows` · scaled x) over one 32-token
// slice, the product taken into `scratch` first. row_factor: this thread's two rows' factors.
static __device__ __forceinline__ void ssd_after_products(float (&acc)[8][4], float (&scratch)[8][4],
        unsigned rows, unsigned scaled, const float (&row_factor)[2]) {
    coil_wgmma::begin();
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
        coil_wgmma::multiply_shared_tf32_n64(scratch, coil_wgmma::k_major(rows + ks * 32),
                coil_wgmma::k_major(scaled + ks * 32), ks > 0);
    }
    coil_wgmma::end_and_wait();
    coil_wgmma::hold(scratch);
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            acc[nt][e] = fmaf(row_factor[e >> 1], scratch[nt][e], acc[nt][e]);
        }
    }
}

// acc += L (A fragments a, the masked decayed Gram rows of the tile) · x over one 32-token slice.
static __device__ __forceinline__ void ssd_diagonal_products(float (&acc)[8][4], const unsigned (&a)[4][4],
        unsigned raw) {
    coil_wgmma::hold(acc);
    coil_wgmma::begin();
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
        coil_wgmma::multiply_registers_tf32_n64(acc, a[ks], coil_wgmma::k_major(raw + ks * 32));
    }
    coil_wgmma::end_and_wait();
    coil_wgmma::hold(acc);
}
#endif

template <int HEADS, int STAGES, int FALLBACK_STAGES>
static __device__ __forceinline__ void ssd_chunk_output_warpgroup(const float* __restrict__ x, long long x_stride,
        const float* __restrict__ dt, long long dt_stride, const float* __restrict__ A,
        const float* __restrict__ C, long long bc_stride, const float* __restrict__ D,
        const float* __restrict__ gram, const float* __restrict__ entering, float* __restrict__ y, int tokens,
        const int* starts, int chunk, int chunks, int heads, int head_dim, int groups, int state_size, int padded) {
#ifdef COIL_HAS_WGMMA
    constexpr int THREADS = SSD_THREADS * HEADS;
    constexpr unsigned STAGE = SSD_WARPGROUP_STAGE_BYTES(HEADS);
    extern __shared__ float4 ssd_warpgroup_shared4[];
    ssd_require_shared((unsigned) SSD_WARPGROUP_SHARED_BYTES(HEADS, STAGES));
    SsdSums* all_sums = reinterpret_cast<SsdSums*>(ssd_warpgroup_shared4);
    const unsigned shared_base = (unsigned) __cvta_generic_to_shared(ssd_warpgroup_shared4);
    const unsigned stages = (shared_base + (unsigned) (HEADS * sizeof(SsdSums)) + 1023) & ~1023u;
    // The same stages through a generic pointer, for the threads' own loads and stores.
    unsigned char* stage_bytes = reinterpret_cast<unsigned char*>(ssd_warpgroup_shared4) + (stages - shared_base);

    const SsdOutputBlock where = ssd_output_block(HEADS, tokens, starts, chunk, chunks, heads, head_dim, groups);
    const SsdChunk span = where.span;
    const int length = span.length;
    const int part = where.part;
    const int local = where.local;
    const bool serving = where.serving;
    const int head = where.head;
    SsdSums& sums = all_sums[part];
    const float step = ssd_chunk_step(local, dt + span.first_row * dt_stride, dt_stride, head, length);

    const SsdOutputOrigins origin = ssd_output_origins(where, x, x_stride, C, bc_stride, gram, entering, heads,
            head_dim, groups, state_size, padded);
    const int p0 = origin.p0;
    const int row_end = (length + 63) / 64 * 64;
    const int state_slices = (state_size + 31) / 32;
    const int slices = state_slices + (length + 31) / 32;

    const int warp = local >> 5;
    const int lane = local & 31;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int tiles[2] = {warp >> 2, 3 - (warp >> 2)};
    const int warp_row = 16 * (warp & 3);

    // x of a token slice travels global → staging → the transposed narrow tile: warp w moves 8
    // tokens × 16 columns per pass (lane: token lane mod 8, columns 4 (lane / 8) .. + 3), two passes;
    // each thread's two 16-byte pieces sit in its own slots of the staging area.
    auto x_staging = [&](int stage) {
        return stages + STAGES * STAGE + (stage * HEADS + part) * SSD_WARPGROUP_X_BYTES;
    };
    auto copy_x = [&](int j0, int stage) {
#pragma unroll
        for (int pass = 0; pass < 2; pass++) {
            const int piece = warp + 8 * pass;
            const int j = 8 * (piece & 3) + (lane & 7);
            const int p = 4 * (4 * (piece >> 2) + (lane >> 3));
            const bool valid = j < length - j0 && p < head_dim - p0;
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(x_staging(stage) + (pass * 256 + local) * 16),
                    "l"(valid ? origin.x + (long long) (j0 + j) * x_stride + p : x), "r"(valid ? 16 : 0));
        }
    };
    // x of the slice at j0 into the raw and the scaled tile (the scaled one after the raw one).
    auto transpose_x = [&](int stage, int j0) {
        unsigned char* raw = stage_bytes + stage * STAGE + SSD_MAX_CHUNK * 128 + part * SSD_WARPGROUP_NARROW_BYTES;
        const float4* staged = reinterpret_cast<const float4*>(stage_bytes + (x_staging(stage) - stages));
#pragma unroll
        for (int pass = 0; pass < 2; pass++) {
            const int piece = warp + 8 * pass;
            const int j = 8 * (piece & 3) + (lane & 7);
            const int p = 4 * (4 * (piece >> 2) + (lane >> 3));
            const float factor =
                    coil_exp2_approx(ssd_difference(sums, j0 + SSD_SLICE - 1, j0 + j)) * sums.step[j0 + j];
            const float4 value = staged[pass * 256 + local];
            const float values[4] = {value.x, value.y, value.z, value.w};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const unsigned offset = coil_swizzled_float(p + e, j);
                // f32 bits, which the tensor cores read as tf32 (ssd_scan.cuh).
                *reinterpret_cast<float*>(raw + offset) = values[e];
                *reinterpret_cast<float*>(raw + 64 * 128 + offset) = values[e] * factor;
            }
        }
    };
    // acc += D · x for this thread's rows, from the f32 x of the slice that holds them (staged in
    // `stage`): rows j and j + 8, j = first + g, of the slice; columns 8 nt + 2t, + 1. Staging slot
    // of (j, p): piece (j / 8) + 4 (p / 16) of copy_x, lane (j mod 8) + 8 ((p / 4) mod 4).
    auto add_skip = [&](float (&rows)[8][4], int stage, int first) {
        const float* staged = reinterpret_cast<const float*>(stage_bytes + (x_staging(stage) - stages));
        // Read at each call (an L1 hit): held in a register through the slices, it made ptxas spill
        // (12 bytes a thread against 4).
        const float skip = D[head];
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int j = first + g + 8 * half;
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const int p = nt * 8 + 2 * t;
                const int piece = (j >> 3) + 4 * (p >> 4);
                const int slot = (piece >> 3) * 256 + 32 * (piece & 7) + (j & 7) + 8 * ((p >> 2) & 3);
                const float2 value = *reinterpret_cast<const float2*>(staged + 4 * slot + (p & 3));
                rows[nt][2 * half] = fmaf(skip, value.x, rows[nt][2 * half]);
                rows[nt][2 * half + 1] = fmaf(skip, value.y, rows[nt][2 * half + 1]);
            }
        }
    };
    // The copies of slice `index` into `stage`: the wide tile by the whole block, the state by its head's part.
    auto copy = [&](int index, int stage) {
        const unsigned wide = stages + stage * STAGE;
        const unsigned narrow = wide + SSD_MAX_CHUNK * 128 + part * SSD_WARPGROUP_NARROW_BYTES;
        if (index < state_slices) {
            const int n0 = 32 * index;
            ssd_copy_tile<SSD_MAX_CHUNK, THREADS>(wide, origin.c + n0, bc_stride, 0, row_end, length,
                    state_size - n0, threadIdx.x, C);
            ssd_copy_tile<64, SSD_THREADS>(narrow, origin.state + n0, state_size, 0, 64, head_dim - p0, state_size - n0,
                    local, entering);
        } else {
            const int j0 = 32 * (index - state_slices);
            // Row tiles ending before j0 never read this slice.
            ssd_copy_tile<SSD_MAX_CHUNK, THREADS>(wide, origin.gram + j0, padded, j0 / 64 * 64 / (THREADS / 8), row_end,
                    row_end, 32, threadIdx.x, gram);
            copy_x(j0, stage);
        }
    };

    float acc[2][8][4];
#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                acc[i][nt][e] = 0.0f;
            }
        }
    }

    // Slice i is copied STAGES − 1 iterations ahead into stage i mod STAGES, which iteration i − 1
    // read: every warpgroup has waited for its products before this iteration's barrier. The first
    // copies need no sums: they go out with dt's load, before the sums' barriers.
#pragma unroll
    for (int stage = 0; stage < STAGES - 1; stage++) {
        if (stage < slices) {
            copy(stage, stage);
        }
        asm volatile("cp.async.commit_group;" ::);
    }
    ssd_chunk_sums(sums, local, step, A[head]);
    for (int index = 0; index < slices; index++) {
        const int stage = index % STAGES;
        asm volatile("cp.async.wait_group %0;" ::"n"(STAGES - 2) : "memory");
        if (index >= state_slices) {
            transpose_x(stage, 32 * (index - state_slices));
        }
        coil_wgmma::publish_shared_to_tensor_cores();
        __syncthreads();
        if (index + STAGES - 1 < slices) {
            copy(index + STAGES - 1, (index + STAGES - 1) % STAGES);
        }
        asm volatile("cp.async.commit_group;" ::);
        const unsigned wide = stages + stage * STAGE;
        const unsigned narrow = wide + SSD_MAX_CHUNK * 128 + part * SSD_WARPGROUP_NARROW_BYTES;

        if (index < state_slices) {
            // Branches outside the batches: a wgmma batch on a path the compiler cannot prove
            // uniform would be serialized.
            const bool first_active = 64 * tiles[0] < length;
            const bool second_active = 64 * tiles[1] < length;
            if (first_active && second_active) {
                ssd_state_products<2>(acc, tiles, wide, narrow);
            } else if (first_active) {
                ssd_state_products<1>(acc, tiles, wide, narrow);
            }
            if (index == state_slices - 1) {
#pragma unroll
                for (int i = 0; i < 2; i++) {
#pragma unroll
                    for (int half = 0; half < 2; half++) {
                        const int r = 64 * tiles[i] + warp_row + g + 8 * half;
                        const float scale = coil_exp2_approx(sums.high[r] + sums.low[r]);
#pragma unroll
                        for (int nt = 0; nt < 8; nt++) {
                            acc[i][nt][2 * half] *= scale;
                            acc[i][nt][2 * half + 1] *= scale;
                        }
                    }
                }
            }
            continue;
        }

        const int j0 = 32 * (index - state_slices);
        const int ref = j0 + SSD_SLICE - 1;
        const float* wide_floats = reinterpret_cast<const float*>(stage_bytes + stage * STAGE);
        // Each tile by itself, so that no wgmma batch sits in a branch the compiler cannot prove uniform.
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int r0 = 64 * tiles[i];
            if (r0 >= length || j0 > r0 + 63) {
                continue;  // the tile's rows all precede the slice
            }
            if (j0 + SSD_SLICE - 1 < r0) {
                float row_factor[2];
#pragma unroll
                for (int half = 0; half < 2; half++) {
                    row_factor[half] = coil_exp2_approx(ssd_difference(sums, r0 + warp_row + g + 8 * half, ref));
                }
                float scratch[8][4];
                ssd_after_products(acc[i], scratch, wide + r0 * 128, narrow + 64 * 128, row_factor);
                continue;
            }
            if (j0 == r0 + (warp_row & 32)) {
                add_skip(acc[i], stage, warp_row & 16);
            }
            unsigned a[4][4];
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int r = r0 + warp_row + g + 8 * half;
                const float row_high = sums.high[r];
                const float row_low = sums.low[r];
#pragma unroll
                for (int ks = 0; ks < 4; ks++) {
#pragma unroll
                    for (int c = 0; c < 2; c++) {
                        const int k = 8 * ks + t + 4 * c;
                        const int j = j0 + k;
                        const float value = wide_floats[coil_swizzled_float(r, k) / 4];
                        const float decayed = j > r ? 0.0f
                                : value * coil_exp2_approx((row_high - sums.high[j]) + (row_low - sums.low[j]))
                                        * sums.step[j];
                        a[ks][half + 2 * c] = __float_as_uint(decayed);
                    }
                }
            }
            ssd_diagonal_products(acc[i], a, narrow);
        }
    }

    if (!serving) {
        return;
    }
    const long long y_stride = (long long) heads * head_dim;
#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int r = 64 * tiles[i] + warp_row + g + 8 * half;
            if (r >= length) {
                continue;
            }
            float* y_row = y + (span.first_row + r) * y_stride + (long long) head * head_dim + p0;
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const int p = nt * 8 + 2 * t;
                if (p < head_dim - p0) {
                    *reinterpret_cast<float2*>(y_row + p) = make_float2(acc[i][nt][2 * half], acc[i][nt][2 * half + 1]);
                }
            }
        }
    }
#else
    // Other targets: the mma.sync kernel (the launcher gives it its shared memory).
    ssd_chunk_output<false, HEADS, FALLBACK_STAGES>(x, x_stride, dt, dt_stride, A, C, bc_stride, D, gram, entering, y, tokens,
            starts, chunk, chunks, heads, head_dim, groups, state_size, padded);
#endif
}

#define SSD_OUTPUT_WARPGROUP_ENTRY(name, heads, stages, fallback_stages, blocks)                                                           \
    extern "C" __global__ void __launch_bounds__(SSD_THREADS * (heads), blocks) name(const float* x,               \
            long long x_stride, const float* dt, long long dt_stride, const float* A, const float* C,                \
            long long bc_stride, const float* D, const float* gram, const float* entering, float* y, int tokens,     \
            const int* starts, int chunk, int chunks, int heads_, int head_dim, int groups, int state_size,          \
            int padded) {                                                                                            \
        ssd_chunk_output_warpgroup<heads, stages, fallback_stages>(x, x_stride, dt, dt_stride, A, C, bc_stride, D, gram, entering, y,        \
                tokens, starts, chunk, chunks, heads_, head_dim, groups, state_size, padded);                        \
    }

// Two heads a block sharing the C and Gram tiles; two stages, one block an SM (three stages of the
// mma.sync kernel elsewhere, as ssd_chunk_output_tf32_pair). With one head a block, or with three
// stages for half a chunk's rows, the kernel was slower on an H100 (1.02 and 0.79 ms against 0.67 at
// the anchor shape), so those are not compiled.
SSD_OUTPUT_WARPGROUP_ENTRY(ssd_chunk_output_tf32_warpgroup_pair, 2, 2, 3, 1)
