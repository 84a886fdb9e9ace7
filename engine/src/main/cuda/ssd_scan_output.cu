// Mamba-2 SSD scan, step 4 of 4 (see ssd_scan.cuh): the outputs of each chunk.
#include "ssd_scan.cuh"

// y[l, h, p] = exp(cum_l) · Σ_n C[l, g, n] · S[p, n]                          (the state entering the chunk)
//            + Σ_{j ≤ l} gram[l, j] · exp(cum_l − cum_j) · dt_j · x[j, h, p]   (the chunk's own tokens)
//            + D[h] · x[l, h, p]
//   x: (rows, heads, head_dim) in rows of x_stride floats;  dt: (rows, heads) in rows of dt_stride;
//   A, D: (heads);  C: (rows, groups, state_size) in rows of bc_stride;  g = h / (heads / groups)
//   gram: from ssd_chunk_gram;  entering: (chunks_total, heads, head_dim, state_size), the states
//   entering each chunk (ssd_state_passing);  y: (rows, heads, head_dim), contiguous
// Both terms are products on the tensor cores, over slices of 32: first the state dimension
// (C · Sᵀ, then each row scaled by exp(cum_l)), then the chunk's tokens j, with the masked decay
// folded into the gram tile as it is read. Off the diagonal the decay factors into
// exp(cum_l − cum_ref) · exp(cum_ref − cum_j), ref the slice's last token: two factors ≤ 1 and two
// exponentials per row and column instead of one per element.
// Grid: p_tiles · sets · groups · chunks_total blocks (fastest first), sets = ⌈heads per group / HEADS⌉;
// 256 · HEADS threads: each 256 serve one of the block's HEADS heads, which share the C and gram
// tiles (loaded once for all of them). Warp w of a head owns row tiles w and 15 − w (16 tokens each,
// so that causal work is the same for every warp) and all 64 p columns.
// Shared memory: each head's sums, then STAGES stages of {the 256 × 32 tile of C or gram, per head a
// 64 × 32 tile of its entering state or 32 × 64 tile of its x, and 32 column factors}.
#define SSD_OUT_WIDE_STRIDE 36
#define SSD_OUT_X_STRIDE 72
#define SSD_OUT_WIDE (SSD_MAX_CHUNK * SSD_OUT_WIDE_STRIDE)
#define SSD_OUT_NARROW (64 * SSD_OUT_WIDE_STRIDE)
#define SSD_OUT_STAGE(heads) (SSD_OUT_WIDE + (heads) * (SSD_OUT_NARROW + SSD_SLICE))
#define SSD_OUT_SHARED_BYTES(heads, stages) ((heads) * sizeof(SsdSums) + (stages) * SSD_OUT_STAGE(heads) * 4)

template <bool Split, int HEADS, int STAGES>
static __device__ __forceinline__ void ssd_chunk_output(const float* __restrict__ x, long long x_stride,
        const float* __restrict__ dt, long long dt_stride, const float* __restrict__ A,
        const float* __restrict__ C, long long bc_stride, const float* __restrict__ D,
        const float* __restrict__ gram, const float* __restrict__ entering, float* __restrict__ y, int tokens,
        const int* starts, int chunk, int chunks, int heads, int head_dim, int groups, int state_size, int padded) {
    constexpr int THREADS = SSD_THREADS * HEADS;
    constexpr int STAGE = SSD_OUT_STAGE(HEADS);
    extern __shared__ float4 ssd_output_shared4[];
    ssd_require_shared((unsigned) SSD_OUT_SHARED_BYTES(HEADS, STAGES));
    SsdSums* all_sums = reinterpret_cast<SsdSums*>(ssd_output_shared4);
    float* stages = reinterpret_cast<float*>(all_sums + HEADS);

    const SsdOutputBlock where = ssd_output_block(HEADS, tokens, starts, chunk, chunks, heads, head_dim, groups);
    const SsdChunk span = where.span;
    const int length = span.length;
    const int part = where.part;
    const int local = where.local;
    const bool serving = where.serving;
    const int head = where.head;
    SsdSums& sums = all_sums[part];
    ssd_chunk_sums(sums, local, ssd_chunk_step(local, dt + span.first_row * dt_stride, dt_stride, head, length),
            A[head]);

    const SsdOutputOrigins origin = ssd_output_origins(where, x, x_stride, C, bc_stride, gram, entering, heads,
            head_dim, groups, state_size, padded);
    const int p0 = origin.p0;
    // Rows of the row tiles that hold tokens of the chunk.
    const int row_end = min(SSD_MAX_CHUNK, (length + 15) / 16 * 16);
    const bool c_vector = coil_aligned16(C) && (bc_stride & 3) == 0 && (state_size & 3) == 0;
    const bool s_vector = coil_aligned16(entering) && (state_size & 3) == 0;
    const bool x_vector = coil_aligned16(x) && (x_stride & 3) == 0 && (head_dim & 3) == 0;
    const int state_slices = (state_size + SSD_SLICE - 1) / SSD_SLICE;
    const int token_slices = (length + SSD_SLICE - 1) / SSD_SLICE;
    const int slices = state_slices + token_slices;

    // The wide tile is copied by every thread of the block; each head's tiles by its own part.
    auto load = [&](int index, int stage) {
        float* wide = stages + stage * STAGE;
        float* narrow = wide + SSD_OUT_WIDE + part * SSD_OUT_NARROW;
        float* column_factors = wide + SSD_OUT_WIDE + HEADS * SSD_OUT_NARROW + part * SSD_SLICE;
        if (index < state_slices) {
            const int n0 = index * SSD_SLICE;
            ssd_load_rows<SSD_SLICE, SSD_OUT_WIDE_STRIDE, THREADS>(wide, origin.c + n0, bc_stride, 0, row_end,
                    length, state_size - n0, c_vector, C);
            ssd_load_rows<SSD_SLICE, SSD_OUT_WIDE_STRIDE>(narrow, origin.state + n0, state_size, 0, 64, head_dim - p0,
                    state_size - n0, s_vector, entering, local);
        } else {
            const int j0 = (index - state_slices) * SSD_SLICE;
            // Row tiles at or past j0 read this slice (earlier rows precede every token in it).
            ssd_load_rows<SSD_SLICE, SSD_OUT_WIDE_STRIDE, THREADS>(wide, origin.gram + j0, padded, j0, row_end, length,
                    SSD_SLICE, true, gram);
            ssd_load_rows<64, SSD_OUT_X_STRIDE>(narrow, origin.x + (long long) j0 * x_stride, x_stride, 0, SSD_SLICE,
                    length - j0, head_dim - p0, x_vector, x, local);
            if (local < SSD_SLICE) {
                const int j = j0 + local;
                column_factors[local] = exp2f(ssd_difference(sums, j0 + SSD_SLICE - 1, j)) * sums.step[j];
            }
        }
    };

    const int lane = local & 31;
    const int warp = local >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int row_tile[2] = {warp, 15 - warp};
    bool active[2];
    float row_high[2][2];
    float row_low[2][2];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        active[mt] = 16 * row_tile[mt] < length;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int r = 16 * row_tile[mt] + g + 8 * half;
            row_high[mt][half] = sums.high[r];
            row_low[mt][half] = sums.low[r];
        }
    }

    float acc[2][8][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                acc[mt][nt][e] = 0.0f;
            }
        }
    }
    const float skip = D[head];

    // STAGES-deep pipeline: slice i is copied STAGES - 1 iterations ahead, into the stage that
    // iteration i - 1 read (every thread is past it after this iteration's barrier).
#pragma unroll
    for (int stage = 0; stage < STAGES - 1; stage++) {
        if (stage < slices) {
            load(stage, stage);
        }
        ssd_commit();
    }
    for (int index = 0; index < slices; index++) {
        ssd_wait<STAGES - 2>();
        __syncthreads();
        if (index + STAGES - 1 < slices) {
            load(index + STAGES - 1, (index + STAGES - 1) % STAGES);
        }
        ssd_commit();
        const float* wide = stages + (index % STAGES) * STAGE;
        const float* narrow = wide + SSD_OUT_WIDE + part * SSD_OUT_NARROW;
        const float* column_factors = wide + SSD_OUT_WIDE + HEADS * SSD_OUT_NARROW + part * SSD_SLICE;

        if (index < state_slices) {
            // acc[l][p] += Σ_n C[l][n] · S[p][n]: A = the C tile, B[k = n][p] = S[p][n].
#pragma unroll
            for (int kk = 0; kk < SSD_SLICE / 8; kk++) {
                const int k = kk * 8 + t;
                SsdOperand<Split, 4> a[2];
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const int r = 16 * row_tile[mt] + g;
                    a[mt].set(0, wide[r * SSD_OUT_WIDE_STRIDE + k]);
                    a[mt].set(1, wide[(r + 8) * SSD_OUT_WIDE_STRIDE + k]);
                    a[mt].set(2, wide[r * SSD_OUT_WIDE_STRIDE + k + 4]);
                    a[mt].set(3, wide[(r + 8) * SSD_OUT_WIDE_STRIDE + k + 4]);
                }
#pragma unroll
                for (int nt = 0; nt < 8; nt++) {
                    const int p = nt * 8 + g;
                    SsdOperand<Split, 2> b;
                    b.set(0, narrow[p * SSD_OUT_WIDE_STRIDE + k]);
                    b.set(1, narrow[p * SSD_OUT_WIDE_STRIDE + k + 4]);
#pragma unroll
                    for (int mt = 0; mt < 2; mt++) {
                        if (active[mt]) {
                            ssd_mma<Split>(acc[mt][nt], a[mt], b);
                        }
                    }
                }
            }
            if (index == state_slices - 1) {
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const float scale0 = exp2f(row_high[mt][0] + row_low[mt][0]);
                    const float scale1 = exp2f(row_high[mt][1] + row_low[mt][1]);
#pragma unroll
                    for (int nt = 0; nt < 8; nt++) {
                        acc[mt][nt][0] *= scale0;
                        acc[mt][nt][1] *= scale0;
                        acc[mt][nt][2] *= scale1;
                        acc[mt][nt][3] *= scale1;
                    }
                }
            }
        } else {
            const int slice = index - state_slices;
            const int j0 = slice * SSD_SLICE;
            const int ref = j0 + SSD_SLICE - 1;
            // Per row tile: 0 = precedes the slice (nothing to add), 1 = wholly after it (factored
            // decay), 2 = overlaps it (masked decay per element).
            int mode[2];
            float row_factor[2][2];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                const int tile = row_tile[mt];
                mode[mt] = !active[mt] || tile < 2 * slice ? 0 : (tile >= 2 * slice + 2 ? 1 : 2);
#pragma unroll
                for (int half = 0; half < 2; half++) {
                    row_factor[mt][half] = mode[mt] == 1
                            ? exp2f((row_high[mt][half] - sums.high[ref]) + (row_low[mt][half] - sums.low[ref]))
                            : 0.0f;
                }
            }
#pragma unroll
            for (int kk = 0; kk < SSD_SLICE / 8; kk++) {
                const int k = kk * 8 + t;
                const float column0 = column_factors[k];
                const float column1 = column_factors[k + 4];
                const int j_first = j0 + k;
                const int j_second = j_first + 4;
                SsdOperand<Split, 4> a[2];
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const int r = 16 * row_tile[mt] + g;
                    const float gram00 = wide[r * SSD_OUT_WIDE_STRIDE + k];
                    const float gram10 = wide[(r + 8) * SSD_OUT_WIDE_STRIDE + k];
                    const float gram01 = wide[r * SSD_OUT_WIDE_STRIDE + k + 4];
                    const float gram11 = wide[(r + 8) * SSD_OUT_WIDE_STRIDE + k + 4];
                    if (mode[mt] == 1) {
                        a[mt].set(0, gram00 * (row_factor[mt][0] * column0));
                        a[mt].set(1, gram10 * (row_factor[mt][1] * column0));
                        a[mt].set(2, gram01 * (row_factor[mt][0] * column1));
                        a[mt].set(3, gram11 * (row_factor[mt][1] * column1));
                    } else if (mode[mt] == 2) {
                        auto decayed = [&](float value, int half, int row, int j) {
                            if (j > row) {
                                return 0.0f;
                            }
                            const float difference = (row_high[mt][half] - sums.high[j])
                                    + (row_low[mt][half] - sums.low[j]);
                            return value * exp2f(difference) * sums.step[j];
                        };
                        a[mt].set(0, decayed(gram00, 0, r, j_first));
                        a[mt].set(1, decayed(gram10, 1, r + 8, j_first));
                        a[mt].set(2, decayed(gram01, 0, r, j_second));
                        a[mt].set(3, decayed(gram11, 1, r + 8, j_second));
                    }
                }
#pragma unroll
                for (int nt = 0; nt < 8; nt++) {
                    const int p = nt * 8 + g;
                    SsdOperand<Split, 2> b;
                    b.set(0, narrow[k * SSD_OUT_X_STRIDE + p]);
                    b.set(1, narrow[(k + 4) * SSD_OUT_X_STRIDE + p]);
#pragma unroll
                    for (int mt = 0; mt < 2; mt++) {
                        if (mode[mt] != 0) {
                            ssd_mma<Split>(acc[mt][nt], a[mt], b);
                        }
                    }
                }
            }
            // The skip term D · x of the row tiles inside this slice, from the x tile in hand.
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                if (mode[mt] == 2) {
                    const int local = 16 * row_tile[mt] + g - j0;
#pragma unroll
                    for (int nt = 0; nt < 8; nt++) {
                        const int p = nt * 8 + 2 * t;
                        acc[mt][nt][0] = fmaf(skip, narrow[local * SSD_OUT_X_STRIDE + p], acc[mt][nt][0]);
                        acc[mt][nt][1] = fmaf(skip, narrow[local * SSD_OUT_X_STRIDE + p + 1], acc[mt][nt][1]);
                        acc[mt][nt][2] = fmaf(skip, narrow[(local + 8) * SSD_OUT_X_STRIDE + p], acc[mt][nt][2]);
                        acc[mt][nt][3] = fmaf(skip, narrow[(local + 8) * SSD_OUT_X_STRIDE + p + 1], acc[mt][nt][3]);
                    }
                }
            }
        }
    }

    const long long y_stride = (long long) heads * head_dim;
    const bool pairs = (head_dim & 1) == 0;
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        if (!serving || !active[mt]) {
            continue;
        }
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int r = 16 * row_tile[mt] + g + 8 * half;
            if (r >= length) {
                continue;
            }
            float* row = y + (span.first_row + r) * y_stride + (long long) head * head_dim;
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const int p = p0 + nt * 8 + 2 * t;
                const float first = acc[mt][nt][2 * half];
                const float second = acc[mt][nt][2 * half + 1];
                if (pairs && p + 1 < head_dim) {
                    *reinterpret_cast<float2*>(row + p) = make_float2(first, second);
                } else {
                    if (p < head_dim) {
                        row[p] = first;
                    }
                    if (p + 1 < head_dim) {
                        row[p + 1] = second;
                    }
                }
            }
        }
    }
}

#define SSD_OUTPUT_ENTRY(name, split, heads, stages, blocks)                                                  \
    extern "C" __global__ void __launch_bounds__(SSD_THREADS * (heads), blocks) name(const float* x,               \
            long long x_stride, const float* dt, long long dt_stride, const float* A, const float* C,                \
            long long bc_stride, const float* D, const float* gram, const float* entering, float* y, int tokens,     \
            const int* starts, int chunk, int chunks, int heads_, int head_dim, int groups, int state_size,          \
            int padded) {                                                                                            \
        ssd_chunk_output<split, heads, stages>(x, x_stride, dt, dt_stride, A, C, bc_stride, D, gram, entering, y,   \
                tokens, starts, chunk, chunks, heads_, head_dim, groups, state_size, padded);                        \
    }

// One head a block: two blocks of 8 warps fit an SM. Split products need more registers (one block
// an SM), which leaves room for a third stage.
SSD_OUTPUT_ENTRY(ssd_chunk_output_tf32, false, 1, 2, 2)
SSD_OUTPUT_ENTRY(ssd_chunk_output_f32, true, 1, 3, 1)
// Two heads a block, sharing the C and gram tiles: one block of 16 warps an SM, three stages.
SSD_OUTPUT_ENTRY(ssd_chunk_output_tf32_pair, false, 2, 3, 1)
