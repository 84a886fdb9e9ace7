// Mamba-2 SSD scan, step 1 of 4 (see ssd_scan.cuh): the chunk's Gram matrix of C and B.
#include "ssd_scan.cuh"

// gram[q, g, i, j] = C_i · B_j over the state dimension, for tokens i, j of chunk q and group g.
//   B, C: (rows, groups, state_size) in rows of bc_stride floats
//   gram: (chunks of all sequences, groups, padded, padded), padded = chunk rounded up to 64; rows
//   and columns past the chunk's length hold zeros. Only j < 64 · (i / 64 + 1) is written: the
//   output step reads j ≤ i alone, in 32-wide slices that never reach past that bound.
// Grid: (padded / 64) · groups · chunks_total blocks, the row tile fastest; 256 threads. Warp w
// computes rows 16 (w % 4) .. + 16 of the block's 64 and columns (w / 4) · padded / 2 .. + padded / 2.
// Shared memory: two stages of C (64 × 32) and B (padded × 32) slices of the state dimension.
#define SSD_GRAM_STRIDE 36
#define SSD_GRAM_STAGE ((64 + SSD_MAX_CHUNK) * SSD_GRAM_STRIDE)
#define SSD_GRAM_SHARED_BYTES (2 * SSD_GRAM_STAGE * 4)

template <bool Split>
static __device__ __forceinline__ void ssd_chunk_gram(const float* __restrict__ B, const float* __restrict__ C,
        long long bc_stride, float* __restrict__ gram, int tokens, const int* starts, int chunk, int chunks,
        int groups, int state_size, int padded) {
    extern __shared__ float4 ssd_gram_shared4[];
    float* shared = reinterpret_cast<float*>(ssd_gram_shared4);
    ssd_require_shared(SSD_GRAM_SHARED_BYTES);
    // The chunk-state kernel after this one reads nothing it writes: let it start now (ssd_scan_states.cu).
    coil_launch_dependents();

    const int row_tiles = padded / 64;
    const int tile = blockIdx.x % row_tiles;
    const int group = (blockIdx.x / row_tiles) % groups;
    const int q = blockIdx.x / row_tiles / groups;
    const SsdChunk span = ssd_chunk(q, tokens, starts, chunk, chunks);
    const int first = 64 * tile;

    const float* c_origin = C + (span.first_row + first) * bc_stride + (long long) group * state_size;
    const float* b_origin = B + span.first_row * bc_stride + (long long) group * state_size;
    const bool vector = coil_aligned16(B) && coil_aligned16(C) && (bc_stride & 3) == 0 && (state_size & 3) == 0;
    const int c_rows = span.length - first;
    // Columns needed by this row tile: j < first + 64.
    const int b_rows = min(padded, first + 64);
    const int slices = (state_size + SSD_SLICE - 1) / SSD_SLICE;

    auto load = [&](int slice, int stage) {
        float* c_tile = shared + stage * SSD_GRAM_STAGE;
        float* b_tile = c_tile + 64 * SSD_GRAM_STRIDE;
        const int n0 = slice * SSD_SLICE;
        ssd_load_rows<SSD_SLICE, SSD_GRAM_STRIDE>(c_tile, c_origin + n0, bc_stride, 0, 64, c_rows,
                state_size - n0, vector, C);
        ssd_load_rows<SSD_SLICE, SSD_GRAM_STRIDE>(b_tile, b_origin + n0, bc_stride, 0, b_rows, span.length,
                state_size - n0, vector, B);
    };

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int row = 16 * (warp & 3);
    const int half = padded / 2;
    const int column0 = (warp >> 2) * half;
    // n-tiles of 8 columns this warp computes: those of its half below b_rows.
    const int column_tiles = max(0, min(half, b_rows - column0)) / 8;

    float acc[16][4];
#pragma unroll
    for (int nt = 0; nt < 16; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            acc[nt][e] = 0.0f;
        }
    }

    load(0, 0);
    ssd_commit();
    for (int slice = 0; slice < slices; slice++) {
        if (slice + 1 < slices) {
            load(slice + 1, (slice + 1) & 1);
            ssd_commit();
            ssd_wait<1>();
        } else {
            ssd_wait<0>();
        }
        __syncthreads();
        const float* c_tile = shared + (slice & 1) * SSD_GRAM_STAGE;
        const float* b_tile = c_tile + 64 * SSD_GRAM_STRIDE;
#pragma unroll
        for (int kk = 0; kk < SSD_SLICE / 8; kk++) {
            const int k = kk * 8 + t;
            SsdOperand<Split, 4> a;
            a.set(0, c_tile[(row + g) * SSD_GRAM_STRIDE + k]);
            a.set(1, c_tile[(row + g + 8) * SSD_GRAM_STRIDE + k]);
            a.set(2, c_tile[(row + g) * SSD_GRAM_STRIDE + k + 4]);
            a.set(3, c_tile[(row + g + 8) * SSD_GRAM_STRIDE + k + 4]);
#pragma unroll
            for (int nt = 0; nt < 16; nt++) {
                if (nt < column_tiles) {
                    const int j = column0 + nt * 8 + g;
                    SsdOperand<Split, 2> b;
                    b.set(0, b_tile[j * SSD_GRAM_STRIDE + k]);
                    b.set(1, b_tile[j * SSD_GRAM_STRIDE + k + 4]);
                    ssd_mma<Split>(acc[nt], a, b);
                }
            }
        }
        __syncthreads();
    }

    float* out = gram + ((long long) q * groups + group) * padded * padded;
#pragma unroll
    for (int nt = 0; nt < 16; nt++) {
        if (nt < column_tiles) {
            const int j = column0 + nt * 8 + 2 * t;
            const int i = first + row + g;
            *reinterpret_cast<float2*>(out + (long long) i * padded + j) = make_float2(acc[nt][0], acc[nt][1]);
            *reinterpret_cast<float2*>(out + (long long) (i + 8) * padded + j) = make_float2(acc[nt][2], acc[nt][3]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(SSD_THREADS, 2) ssd_chunk_gram_tf32(const float* B, const float* C,
        long long bc_stride, float* gram, int tokens, const int* starts, int chunk, int chunks, int groups,
        int state_size, int padded) {
    ssd_chunk_gram<false>(B, C, bc_stride, gram, tokens, starts, chunk, chunks, groups, state_size, padded);
}

extern "C" __global__ void __launch_bounds__(SSD_THREADS, 2) ssd_chunk_gram_f32(const float* B, const float* C,
        long long bc_stride, float* gram, int tokens, const int* starts, int chunk, int chunks, int groups,
        int state_size, int padded) {
    ssd_chunk_gram<true>(B, C, bc_stride, gram, tokens, starts, chunk, chunks, groups, state_size, padded);
}
