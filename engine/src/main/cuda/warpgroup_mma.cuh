// Hopper's warpgroup matrix multiply (wgmma.mma_async): bf16 operands, f32 accumulators, the
// four warps of a warpgroup computing one 64-row product together with B (and A, where it is in
// shared memory) read by the tensor cores straight from shared memory. Only sm_90a has these
// instructions: the helpers exist where COIL_HAS_WGMMA is defined, and kernels keep an mma.sync
// path for the other targets of the fatbin.
//
// Shared-memory operands are tiles stored in panels of rows × 128 bytes (64 bf16), each panel
// 1024-byte aligned, with 16-byte chunk c of row r at chunk c ^ (r mod 8): the tensor cores'
// 128-byte swizzle, which is also conflict-free for ldmatrix and cp.async.
//
// Accumulator layout (PTX ISA, wgmma register fragments): warp w of the warpgroup holds rows
// 16w .. 16w + 15; d[g] holds columns 8g .. 8g + 7 in mma.sync m16n8's layout (lane l: row l / 4
// in d[g][0..1], row l / 4 + 8 in d[g][2..3], columns 2 (l mod 4) and +1). A in registers has
// mma.sync m16n8k16's A layout, so a product's accumulators repack into the next one's A.
#ifndef COIL_WARPGROUP_MMA_CUH
#define COIL_WARPGROUP_MMA_CUH

#include "common.cuh"
#include <cstdint>

// Byte offset of 16-byte chunk `chunk` (0 .. 7) of row `row` in a panel of 128-byte rows laid out
// as above; the panel starts on 1024 bytes. Every target uses the layout, not only sm_90a.
static __device__ __forceinline__ unsigned coil_swizzled_chunk(int row, int chunk) {
    return row * 128 + ((chunk ^ (row & 7)) << 4);
}

// Byte offset of float `column` (0 .. 31) of row `row` in such a panel: 32-bit data, as tf32 operands.
static __device__ __forceinline__ unsigned coil_swizzled_float(int row, int column) {
    return coil_swizzled_chunk(row, column >> 2) + (column & 3) * 4;
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define COIL_HAS_WGMMA 1
#endif

#ifdef COIL_HAS_WGMMA
namespace coil_wgmma {

// Descriptor of a shared-memory operand (PTX ISA, "matrix descriptor"): start address, leading
// and stride byte offsets, each in 16-byte units, and swizzle mode 1 (128 bytes) in bits 62-63.
static __device__ __forceinline__ uint64_t descriptor(unsigned address, unsigned leading_bytes,
        unsigned stride_bytes) {
    return (uint64_t) ((address & 0x3FFFF) >> 4) | (uint64_t) ((leading_bytes >> 4) & 0x3FFF) << 16
            | (uint64_t) ((stride_bytes >> 4) & 0x3FFF) << 32 | (uint64_t) 1 << 62;
}

// K-major operand: the product's rows (or B's columns) are the tile's rows, K runs along them.
// address: the first row's first k-step column (a multiple of 32 bytes into the 128-byte row);
// rows 8 apart lie 1024 bytes apart; the leading offset is unused with swizzling.
static __device__ __forceinline__ uint64_t k_major(unsigned address) {
    return descriptor(address, 16, 1024);
}

// N-major B operand: K runs down the tile's rows, N along them. address: row k0 of the first
// panel; K rows 8 apart lie 1024 bytes apart, N's next 64 columns panel_bytes further on.
static __device__ __forceinline__ uint64_t n_major(unsigned address, unsigned panel_bytes) {
    return descriptor(address, panel_bytes, 1024);
}

// Shared memory written by the threads (cp.async included) becomes visible to the tensor cores'
// reads only through this fence, before the barrier that publishes it.
static __device__ __forceinline__ void publish_shared_to_tensor_cores() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Before a batch of products: every register they read or accumulate into is written.
static __device__ __forceinline__ void begin() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

// Closes the batch and waits for it: afterwards the accumulators hold the products.
static __device__ __forceinline__ void end_and_wait() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}

// Closes the batch without waiting for it: its accumulators may not be touched, nor its shared
// operands overwritten, until wait<0> (or wait<N> with N batches issued after it).
static __device__ __forceinline__ void commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

// Waits until at most Pending committed batches of this warpgroup are still running.
template <int Pending>
static __device__ __forceinline__ void wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}

// Pins the accumulators to this point of the instruction stream: the compiler sees them read
// and written here, so it moves no use of them above end_and_wait (nor a write below begin).
template <int GROUPS>
static __device__ __forceinline__ void hold(float (&d)[GROUPS][4]) {
#pragma unroll
    for (int g = 0; g < GROUPS; g++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            asm volatile("" : "+f"(d[g][e])::"memory");
        }
    }
}

// Pins a register A operand the same way: it is computed here, before the begin() after it. The
// compiler otherwise sinks its arithmetic between the products, and ptxas then fences each of them
// (warning C7519: warpgroup.arrive injected).
static __device__ __forceinline__ void hold(unsigned (&a)[4]) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
        asm volatile("" : "+r"(a[e])::"memory");
    }
}

// hold for each of a warp's accumulator tiles.
template <int TILES, int GROUPS>
static __device__ __forceinline__ void hold(float (&d)[TILES][GROUPS][4]) {
#pragma unroll
    for (int t = 0; t < TILES; t++) {
        hold(d[t]);
    }
}

#define COIL_WGMMA_D4(d, g) "+f"(d[g][0]), "+f"(d[g][1]), "+f"(d[g][2]), "+f"(d[g][3])
#define COIL_WGMMA_D16(d, g) COIL_WGMMA_D4(d, g), COIL_WGMMA_D4(d, g + 1), COIL_WGMMA_D4(d, g + 2), \
        COIL_WGMMA_D4(d, g + 3)
// The accumulator operands' names in a wgmma's text: %0 .. %31 for 64 columns (32 registers a
// thread), %0 .. %63 for 128 (64 registers), in the order COIL_WGMMA_D16 binds them.
#define COIL_WGMMA_D32_NAMES                                                                                        \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                      \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define COIL_WGMMA_D64_NAMES                                                                                        \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                      \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                             \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                             \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

template <int N>
__device__ __forceinline__ void multiply_shared(float (&d)[N / 8][4], uint64_t a, uint64_t b, int accumulate);

template <int N>
__device__ __forceinline__ void multiply_registers_n_major(float (&d)[N / 8][4], const unsigned (&a)[4],
        uint64_t b);

// d (64 × 64 per warpgroup, f32) = a (64 × 16, K-major in shared memory) · b (64 × 16, K-major in
// shared memory)ᵀ, plus d when accumulate is nonzero.
template <>
__device__ __forceinline__ void multiply_shared<64>(float (&d)[8][4], uint64_t a, uint64_t b, int accumulate) {
    asm volatile(
            "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %34, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
            COIL_WGMMA_D32_NAMES ", %32, %33, accumulate, 1, 1, 0, 0;\n}\n"
            : COIL_WGMMA_D16(d, 0), COIL_WGMMA_D16(d, 4)
            : "l"(a), "l"(b), "r"(accumulate));
}

// d (64 × 64 per warpgroup, f32) += a (64 × 16, bf16 in registers) · b (16 × 64, N-major in shared memory).
template <>
__device__ __forceinline__ void multiply_registers_n_major<64>(float (&d)[8][4], const unsigned (&a)[4],
        uint64_t b) {
    asm volatile(
            "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %37, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
            COIL_WGMMA_D32_NAMES ", {%32, %33, %34, %35}, %36, accumulate, 1, 1, 1;\n}\n"
            : COIL_WGMMA_D16(d, 0), COIL_WGMMA_D16(d, 4)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

// d (64 × 128 per warpgroup, f32) = a (64 × 16, K-major in shared memory) · b (128 × 16, K-major in
// shared memory)ᵀ, plus d when accumulate is nonzero.
template <>
__device__ __forceinline__ void multiply_shared<128>(float (&d)[16][4], uint64_t a, uint64_t b, int accumulate) {
    asm volatile(
            "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %66, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
            COIL_WGMMA_D64_NAMES ", %64, %65, accumulate, 1, 1, 0, 0;\n}\n"
            : COIL_WGMMA_D16(d, 0), COIL_WGMMA_D16(d, 4), COIL_WGMMA_D16(d, 8), COIL_WGMMA_D16(d, 12)
            : "l"(a), "l"(b), "r"(accumulate));
}

// d (64 × 128 per warpgroup, f32) += a (64 × 16, bf16 in registers) · b (16 × 128, N-major in shared memory).
template <>
__device__ __forceinline__ void multiply_registers_n_major<128>(float (&d)[16][4], const unsigned (&a)[4],
        uint64_t b) {
    asm volatile(
            "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %69, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
            COIL_WGMMA_D64_NAMES ", {%64, %65, %66, %67}, %68, accumulate, 1, 1, 1;\n}\n"
            : COIL_WGMMA_D16(d, 0), COIL_WGMMA_D16(d, 4), COIL_WGMMA_D16(d, 8), COIL_WGMMA_D16(d, 12)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

// tf32 operands (f32 data whose low 13 mantissa bits the tensor cores ignore), both K-major: the
// only layout wgmma takes for tf32. Rows of 32 floats fill the 128-byte swizzle; a k-step (8
// values) is 32 bytes, as bf16's 16.

// d (64 × 64 per warpgroup, f32) = a (64 × 8, tf32, K-major in shared memory) · b (64 × 8, tf32,
// K-major in shared memory)ᵀ, plus d when accumulate is nonzero.
static __device__ __forceinline__ void multiply_shared_tf32_n64(float (&d)[8][4], uint64_t a, uint64_t b,
        int accumulate) {
    asm volatile(
            "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %34, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32 "
            COIL_WGMMA_D32_NAMES ", %32, %33, accumulate, 1, 1;\n}\n"
            : COIL_WGMMA_D16(d, 0), COIL_WGMMA_D16(d, 4)
            : "l"(a), "l"(b), "r"(accumulate));
}

// d (64 × 64 per warpgroup, f32) += a (64 × 8, tf32 in registers: lane l of warp w holds rows
// 16w + l / 4 and + 8, columns l mod 4 and + 4, as a0 = (row, c), a1 = (row + 8, c), a2 = (row,
// c + 4), a3 = (row + 8, c + 4)) · b (64 × 8, tf32, K-major in shared memory)ᵀ.
static __device__ __forceinline__ void multiply_registers_tf32_n64(float (&d)[8][4], const unsigned (&a)[4],
        uint64_t b) {
    asm volatile(
            "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %37, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32 "
            COIL_WGMMA_D32_NAMES ", {%32, %33, %34, %35}, %36, accumulate, 1, 1;\n}\n"
            : COIL_WGMMA_D16(d, 0), COIL_WGMMA_D16(d, 4)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

// d (64 × 128 per warpgroup, f32) += a (64 × 8, tf32 in registers, laid out as in
// multiply_registers_tf32_n64) · b (128 × 8, tf32, K-major in shared memory)ᵀ.
static __device__ __forceinline__ void multiply_registers_tf32_n128(float (&d)[16][4], const unsigned (&a)[4],
        uint64_t b) {
    asm volatile(
            "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %69, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 "
            COIL_WGMMA_D64_NAMES ", {%64, %65, %66, %67}, %68, accumulate, 1, 1;\n}\n"
            : COIL_WGMMA_D16(d, 0), COIL_WGMMA_D16(d, 4), COIL_WGMMA_D16(d, 8), COIL_WGMMA_D16(d, 12)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

#undef COIL_WGMMA_D16
#undef COIL_WGMMA_D4

}  // namespace coil_wgmma
#endif  // COIL_HAS_WGMMA
#endif  // COIL_WARPGROUP_MMA_CUH
