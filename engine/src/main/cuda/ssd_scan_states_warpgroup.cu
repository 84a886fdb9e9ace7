// Mamba-2 SSD scan, step 2 of 4 on Hopper's warpgroup MMAs: the state each chunk adds on its own,
// the same as ssd_chunk_state (ssd_scan_states.cu has the formula), tf32 or split-tf32 products
// with f32 accumulation.
#include "ssd_scan.cuh"
#include "warpgroup_mma.cuh"

// own[q, h] = (f ∘ x)ᵀ · B over the chunk's tokens l, f_l = exp(cum_last − cum_l) · dt_l: a 64 p ×
// 128 n product with K = the tokens. wgmma reads tf32 operands in shared memory only K-major, and
// the tokens are the slow index of B in memory, so each 32-token slice of B is stored transposed
// into a tile of 128 rows n × 32 floats (128 bytes, wgmma's 128-byte swizzle); (f ∘ x)ᵀ is the A
// operand, from registers.
//
// A block serves what a block of the mma.sync kernel does: one chunk, two heads of one group (their
// B tile shared), 64 p and 128 n, with 256 threads; warpgroup k serves head k of the set and holds
// its 64 × 128 product in registers. Slices are copied two ahead into a staging area as they lie
// in memory (cp.async, two stages, rows of 136 floats for B and 72 for x: whole 512- and 256-byte
// rows a warp). From the stage,
// each thread moves four 16-byte pieces of B into the tile, transposed, and loads its A fragments,
// x scaled. Against the mma.sync kernel, whose every warp loads each operand element from shared
// memory into fragments (about 13 instructions a product on an H100), a slice here costs a thread
// 8 copies, 4 + 16 loads and 16 stores.
//
// Split-tf32 (the model's default precision, ssd_scan.cuh) needs three products a k-step and the
// registers of both operands' parts, so a block serves one head: warpgroup k takes the state's n
// 64k .. 64k + 63 (m64n64k8 products), B's big and small parts go into two tiles, and x's into the
// A fragments. On an H100 at the anchors' shape: 0.302-0.304 ms against 0.362-0.367 for the
// mma.sync kernel (docs/performance.md).
//
// The pieces of B a warp moves at a time are 16 tokens × two consecutive pieces: lane → token
// (lane mod 4) + 4 (lane / 8) and piece (lane / 4) mod 2. Its transposed stores (row 4 · piece + e,
// column token) hit 32 different banks, and its 16-byte loads from the staging rows, padded by two
// pieces, 8 different 16-byte bank groups a quarter warp; the fragments' loads from x's rows,
// padded by 8 floats, 32 different banks.
//
// Needs x and B on 16 bytes, their row strides, head_dim and state_size multiples of 4 floats (the
// launcher checks; elsewhere ssd_chunk_state_tf32_pair serves). Other targets than sm_90a run that
// kernel's body here.
#define SSD_STATE_WARPGROUP_B_BYTES (128 * 128)
#define SSD_STATE_WARPGROUP_B_STRIDE 136
#define SSD_STATE_WARPGROUP_X_STRIDE 72
// Heads a block serves, and B tiles: two heads and one tile, or with Split one head and two tiles.
#define SSD_STATE_WARPGROUP_HEADS(split) ((split) ? 1 : 2)
#define SSD_STATE_WARPGROUP_TILES(split) ((split) ? 2 : 1)
// A stage of the staging area: 32 tokens of B, then of each head's x, in padded rows.
#define SSD_STATE_WARPGROUP_STAGE_BYTES(heads) \
    (SSD_SLICE * (SSD_STATE_WARPGROUP_B_STRIDE + (heads) * SSD_STATE_WARPGROUP_X_STRIDE) * 4)
// Each head's sums and factors, then, 1024-byte aligned, the B tiles and two staging stages.
#define SSD_STATE_WARPGROUP_SHARED_BYTES(split)                                                              \
    (SSD_STATE_WARPGROUP_HEADS(split) * (sizeof(SsdSums) + SSD_MAX_CHUNK * 4) + 1024                          \
            + SSD_STATE_WARPGROUP_TILES(split) * SSD_STATE_WARPGROUP_B_BYTES                                  \
            + 2 * SSD_STATE_WARPGROUP_STAGE_BYTES(SSD_STATE_WARPGROUP_HEADS(split)))

#ifdef COIL_HAS_WGMMA
// Token and 16-byte piece of this lane in the warp's move `tile` of a slice: tile t covers tokens
// 16 (t mod 2) .. + 15 and pieces 2 (t / 2), + 1 (see above).
struct SsdStatePiece {
    int token;
    int piece;
};

static __device__ __forceinline__ SsdStatePiece ssd_state_piece(int tile, int lane) {
    SsdStatePiece result;
    result.token = (lane & 3) + 4 * (lane >> 3) + 16 * (tile & 1);
    result.piece = 2 * (tile >> 1) + ((lane >> 2) & 1);
    return result;
}

// Stores the four floats of a piece at rows 4 · piece + e, column token of a swizzled tile.
static __device__ __forceinline__ void ssd_store_transposed(unsigned char* tile, SsdStatePiece at, float4 value) {
    const float elements[4] = {value.x, value.y, value.z, value.w};
#pragma unroll
    for (int e = 0; e < 4; e++) {
        *reinterpret_cast<float*>(tile + coil_swizzled_float(4 * at.piece + e, at.token)) = elements[e];
    }
}
#endif

// Without Split: two heads a block, warpgroup k serving head k of the set with all 128 n. With
// Split (split-tf32, ssd_scan.cuh): one head a block, warpgroup k serving its n 64k .. 64k + 63,
// each operand carried as big + small (a tile of each for B) and each product taken as small · big
// + big · small + big · big, as ssd_mma does.
template <bool Split>
static __device__ __forceinline__ void ssd_chunk_state_warpgroup(const float* __restrict__ x, long long x_stride,
        const float* __restrict__ dt, long long dt_stride, const float* __restrict__ A, const float* __restrict__ B,
        long long bc_stride, float* __restrict__ own, float* __restrict__ decay, int tokens, const int* starts,
        int chunk, int chunks, int heads, int head_dim, int groups, int state_size) {
#ifdef COIL_HAS_WGMMA
    constexpr int HEADS = SSD_STATE_WARPGROUP_HEADS(Split);
    constexpr int GROUPS = Split ? 8 : 16;  // accumulator groups of 8 columns n: 64 or 128 n a warpgroup
    extern __shared__ float4 ssd_state_warpgroup_shared4[];
    ssd_require_shared((unsigned) SSD_STATE_WARPGROUP_SHARED_BYTES(Split));
    SsdSums* all_sums = reinterpret_cast<SsdSums*>(ssd_state_warpgroup_shared4);
    float* all_factors = reinterpret_cast<float*>(all_sums + HEADS);
    const unsigned shared_base = (unsigned) __cvta_generic_to_shared(ssd_state_warpgroup_shared4);
    // The B tile (and with Split its small parts' tile after it), then the staging stages.
    const unsigned tile = (shared_base + (unsigned) (HEADS * (sizeof(SsdSums) + SSD_MAX_CHUNK * 4)) + 1023) & ~1023u;
    const unsigned staging = tile + SSD_STATE_WARPGROUP_TILES(Split) * SSD_STATE_WARPGROUP_B_BYTES;
    // The same memory through a generic pointer, for the threads' own loads and stores.
    unsigned char* tile_bytes = reinterpret_cast<unsigned char*>(ssd_state_warpgroup_shared4) + (tile - shared_base);
    const unsigned char* staging_bytes = tile_bytes + SSD_STATE_WARPGROUP_TILES(Split) * SSD_STATE_WARPGROUP_B_BYTES;
    constexpr int STAGE_BYTES = SSD_STATE_WARPGROUP_STAGE_BYTES(HEADS);

    const SsdStateBlock where = ssd_state_block(HEADS, tokens, starts, chunk, chunks, heads, head_dim, groups,
            state_size);
    const int length = where.span.length;
    const int part = threadIdx.x >> 7;  // the warpgroup: head `part` of the set, or with Split the n half
    const int mine = Split ? 0 : part;  // this warpgroup's head within the set
    const int head = where.served.first + min(mine, where.served.count - 1);
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int p0 = 64 * where.p_tile;
    const int n0 = 128 * where.n_tile;
    const float* x_origin = x + where.span.first_row * x_stride + (long long) where.served.first * head_dim + p0;
    const float* b_origin = B + where.span.first_row * bc_stride + (long long) where.group * state_size + n0;
    const int slices = (length + SSD_SLICE - 1) / SSD_SLICE;

    // Slice `slice` into stage slice mod 2: B by the block, 8 tokens a pass of 32 pieces; x of the
    // set's heads, 8 tokens a pass of 16 pieces (each head by one warpgroup; with Split, one head by
    // the block, 16 tokens a pass). Rows past the chunk, columns past head_dim or state_size and
    // heads past the group's last read as zeros.
    auto copy = [&](int slice) {
        const int rows = length - slice * SSD_SLICE;
        const unsigned b_stage = staging + (slice & 1) * STAGE_BYTES;
        const unsigned x_stage = b_stage + SSD_SLICE * SSD_STATE_WARPGROUP_B_STRIDE * 4;
        const float* b_rows = b_origin + (long long) slice * SSD_SLICE * bc_stride;
        const float* x_rows = x_origin + (long long) slice * SSD_SLICE * x_stride;
        const int b_piece = threadIdx.x & 31;
        const int x_piece = threadIdx.x & 15;
#pragma unroll
        for (int pass = 0; pass < 4; pass++) {
            const int b_token = (threadIdx.x >> 5) + 8 * pass;
            const bool b_valid = b_token < rows && 4 * b_piece < state_size - n0;
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                    ::"r"(b_stage + (b_token * SSD_STATE_WARPGROUP_B_STRIDE + 4 * b_piece) * 4),
                    "l"(b_valid ? b_rows + (long long) b_token * bc_stride + 4 * b_piece : B), "r"(b_valid ? 16 : 0));
        }
#pragma unroll
        for (int pass = 0; pass < 2 * HEADS; pass++) {
            // Split: tokens thread / 16 + 16 pass; else head `part`, tokens (thread mod 128) / 16 + 8 pass.
            const int x_head = Split ? 0 : part;
            const int x_token = Split ? (threadIdx.x >> 4) + 16 * pass : ((threadIdx.x & 127) >> 4) + 8 * pass;
            const bool x_valid = x_token < rows && 4 * x_piece < head_dim - p0 && x_head < where.served.count;
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                    ::"r"(x_stage + ((x_head * SSD_SLICE + x_token) * SSD_STATE_WARPGROUP_X_STRIDE + 4 * x_piece) * 4),
                    "l"(x_valid ? x_rows + (long long) x_token * x_stride + (long long) x_head * head_dim + 4 * x_piece
                            : x),
                    "r"(x_valid ? 16 : 0));
        }
    };

    // The first two slices' copies go out before the sums' barriers.
#pragma unroll
    for (int slice = 0; slice < 2; slice++) {
        if (slice < slices) {
            copy(slice);
        }
        asm volatile("cp.async.commit_group;" ::);
    }
    ssd_state_factors<HEADS>(all_sums, all_factors, where, dt, dt_stride, A, decay, heads);

    float acc[GROUPS][4];
#pragma unroll
    for (int g = 0; g < GROUPS; g++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            acc[g][e] = 0.0f;
        }
    }
    for (int slice = 0; slice < slices; slice++) {
        asm volatile("cp.async.wait_group 1;" ::: "memory");  // this thread's copies of the slice
        coil_wgmma::wait<0>();  // the products of slice − 1, which read the B tile
        __syncthreads();        // every thread's copies; every warpgroup's products; at slice 0, the factors
        // B at row n, column token of the tile (with Split its big part there, its small part in the
        // tile after); x · f of this warpgroup's head as its A fragments: rows p 16 (warp mod 4) +
        // lane / 4 and + 8, columns (tokens) lane mod 4 and + 4 of each 8-token step. f32 bits, which
        // the tensor cores read as tf32 (ssd_scan.cuh).
        const float* b_stage = reinterpret_cast<const float*>(staging_bytes + (slice & 1) * STAGE_BYTES);
        const float* x_stage = b_stage + SSD_SLICE * SSD_STATE_WARPGROUP_B_STRIDE
                + mine * SSD_SLICE * SSD_STATE_WARPGROUP_X_STRIDE;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const SsdStatePiece b_at = ssd_state_piece(4 * warp + i, lane);
            const float4 value = *reinterpret_cast<const float4*>(
                    b_stage + b_at.token * SSD_STATE_WARPGROUP_B_STRIDE + 4 * b_at.piece);
            if constexpr (Split) {
                SsdOperand<true, 4> parts;
                parts.set(0, value.x);
                parts.set(1, value.y);
                parts.set(2, value.z);
                parts.set(3, value.w);
                ssd_store_transposed(tile_bytes, b_at, make_float4(__uint_as_float(parts.big[0]),
                        __uint_as_float(parts.big[1]), __uint_as_float(parts.big[2]), __uint_as_float(parts.big[3])));
                ssd_store_transposed(tile_bytes + SSD_STATE_WARPGROUP_B_BYTES, b_at,
                        make_float4(__uint_as_float(parts.small[0]), __uint_as_float(parts.small[1]),
                                __uint_as_float(parts.small[2]), __uint_as_float(parts.small[3])));
            } else {
                ssd_store_transposed(tile_bytes, b_at, value);
            }
        }
        const float* factors = all_factors + mine * SSD_MAX_CHUNK + slice * SSD_SLICE;
        const int p = 16 * (warp & 3) + (lane >> 2);
        SsdOperand<Split, 4> a[SSD_SLICE / 8];
#pragma unroll
        for (int ks = 0; ks < SSD_SLICE / 8; ks++) {
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int k = 8 * ks + (lane & 3) + 4 * c;
                const float factor = factors[k];
                a[ks].set(2 * c, x_stage[k * SSD_STATE_WARPGROUP_X_STRIDE + p] * factor);
                a[ks].set(2 * c + 1, x_stage[k * SSD_STATE_WARPGROUP_X_STRIDE + p + 8] * factor);
            }
        }
        coil_wgmma::publish_shared_to_tensor_cores();
        __syncthreads();  // the B tile written; the stage read, which takes slice + 2
        if (slice + 2 < slices) {
            copy(slice + 2);
        }
        asm volatile("cp.async.commit_group;" ::);
        if constexpr (Split) {
#pragma unroll
            for (int ks = 0; ks < SSD_SLICE / 8; ks++) {
                coil_wgmma::hold(a[ks].big);
                coil_wgmma::hold(a[ks].small);
            }
        }
        coil_wgmma::begin();
#pragma unroll
        for (int ks = 0; ks < SSD_SLICE / 8; ks++) {
            if constexpr (Split) {
                // This warpgroup's 64 rows n of each tile; the small cross terms first.
                const unsigned big = tile + part * 64 * 128 + ks * 32;
                const unsigned small = big + SSD_STATE_WARPGROUP_B_BYTES;
                coil_wgmma::multiply_registers_tf32_n64(acc, a[ks].small, coil_wgmma::k_major(big));
                coil_wgmma::multiply_registers_tf32_n64(acc, a[ks].big, coil_wgmma::k_major(small));
                coil_wgmma::multiply_registers_tf32_n64(acc, a[ks].big, coil_wgmma::k_major(big));
            } else {
                coil_wgmma::multiply_registers_tf32_n128(acc, a[ks].big, coil_wgmma::k_major(tile + ks * 32));
            }
        }
        coil_wgmma::commit();
    }
    coil_wgmma::wait<0>();
    coil_wgmma::hold(acc);

    // Launched beside the Gram kernel, as ssd_chunk_state: the grid ends only after that kernel has.
    coil_grid_dependency_wait();
    if (mine >= where.served.count) {
        return;
    }
    // Warp w of the warpgroup holds rows p 16 (w mod 4) + lane / 4 and + 8; acc[g] columns
    // n 8g + 2 (lane mod 4), + 1 of the warpgroup's.
    float* out = own + ((long long) where.q * heads + head) * head_dim * state_size;
    const int n_first = n0 + (Split ? 64 * part : 0);
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int row = p0 + 16 * (warp & 3) + (lane >> 2) + 8 * half;
        if (row >= head_dim) {
            continue;
        }
#pragma unroll
        for (int g = 0; g < GROUPS; g++) {
            const int n = n_first + 8 * g + 2 * (lane & 3);
            if (n < state_size) {  // state_size is even: n + 1 is inside too
                *reinterpret_cast<float2*>(out + (long long) row * state_size + n) =
                        make_float2(acc[g][2 * half], acc[g][2 * half + 1]);
            }
        }
    }
#else
    // Other targets: the mma.sync kernel (the launcher gives the larger of the two shared memories).
    ssd_chunk_state<Split, SSD_STATE_WARPGROUP_HEADS(Split)>(x, x_stride, dt, dt_stride, A, B, bc_stride, own, decay,
            tokens, starts, chunk, chunks, heads, head_dim, groups, state_size);
#endif
}

#define SSD_STATE_WARPGROUP_ENTRY(name, split)                                                                     \
    extern "C" __global__ void __launch_bounds__(SSD_THREADS, 2) name(const float* x, long long x_stride,           \
            const float* dt, long long dt_stride, const float* A, const float* B, long long bc_stride, float* own,  \
            float* decay, int tokens, const int* starts, int chunk, int chunks, int heads_, int head_dim,           \
            int groups, int state_size) {                                                                            \
        ssd_chunk_state_warpgroup<split>(x, x_stride, dt, dt_stride, A, B, bc_stride, own, decay, tokens, starts,   \
                chunk, chunks, heads_, head_dim, groups, state_size);                                                \
    }

// Two heads of a group a block, sharing the B tile.
SSD_STATE_WARPGROUP_ENTRY(ssd_chunk_state_tf32_warpgroup_pair, false)
// Split-tf32, one head a block.
SSD_STATE_WARPGROUP_ENTRY(ssd_chunk_state_f32_warpgroup, true)
