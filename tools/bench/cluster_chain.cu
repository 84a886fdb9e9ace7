// Two figures that decide whether a batch-1 decode step could run on one thread-block cluster
// instead of the whole GPU (so that its phases meet through distributed shared memory and a
// cluster barrier, not through L2):
//   1. how fast a few multiprocessors can stream weights: blocks of one a multiprocessor (192 KB of
//      shared memory each) read their share of a buffer through a ring of four 48 KB bulk copies
//      (cp.async.bulk, one mbarrier a slot), from HBM (a 2 GB buffer) and from L2 (16 MB, read
//      once before timing); GB/s in all and a multiprocessor, for 1 to all multiprocessors;
//   2. what a dependent phase costs inside a cluster: each block computes its slice of a 768-float
//      vector from the whole vector (x / rms(x) + 0.001: the block sum of squares, then its slice),
//      stores the slice into every block's shared memory (st.shared::cluster), and the cluster
//      meets at barrier.cluster (release, acquire); µs a phase over 4000 phases, for clusters of
//      2 to 16 blocks (16 is a non-portable size on the H100).
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -I engine/src/main/cuda -o /tmp/cluster_chain tools/bench/cluster_chain.cu
//   /tmp/cluster_chain
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>
#include "bulk_copy.cuh"

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { \
    std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

constexpr int SLOTS = 4;
constexpr unsigned SLOT_BYTES = 48 * 1024;
constexpr int STREAM_THREADS = 128;

// Block b reads bytes [b · share, (b + 1) · share) of source, `passes` times, through the ring;
// every thread reads one word of each slot once it has arrived (so the data is used), and the
// block meets before the slot is filled again.
__global__ void __launch_bounds__(STREAM_THREADS, 1)
stream(const char* source, unsigned long long share, int passes, unsigned* sink) {
    extern __shared__ __align__(128) unsigned char ring[];
    __shared__ __align__(8) uint64_t full[SLOTS];
    const unsigned long long chunks = share / SLOT_BYTES;
    const char* mine = source + blockIdx.x * share;
    if (threadIdx.x == 0) {
        for (int s = 0; s < SLOTS; s++) coil_mbarrier_init(&full[s], 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    const unsigned long long total = chunks * passes;
    if (threadIdx.x == 0) {
        for (unsigned long long c = 0; c < SLOTS && c < total; c++) {
            coil_mbarrier_expect(&full[c], SLOT_BYTES);
            coil_bulk_copy(ring + c * SLOT_BYTES, mine + (c % chunks) * SLOT_BYTES, SLOT_BYTES, &full[c]);
        }
    }
    unsigned seen = 0;
    for (unsigned long long c = 0; c < total; c++) {
        const int slot = (int) (c % SLOTS);
        coil_mbarrier_wait(&full[slot], (unsigned) ((c / SLOTS) & 1), 1ll << 32);
        seen += reinterpret_cast<const unsigned*>(ring + slot * SLOT_BYTES)[threadIdx.x * 64];
        __syncthreads();
        if (threadIdx.x == 0 && c + SLOTS < total) {
            const unsigned long long next = c + SLOTS;
            coil_mbarrier_expect(&full[slot], SLOT_BYTES);
            coil_bulk_copy(ring + slot * SLOT_BYTES, mine + (next % chunks) * SLOT_BYTES, SLOT_BYTES, &full[slot]);
        }
    }
    if (seen == 0x12345678u) sink[0] = seen;
}

constexpr int WIDTH = 768;
constexpr int CHAIN_THREADS = 256;

__device__ __forceinline__ unsigned cluster_rank() {
    unsigned rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    return rank;
}

__device__ __forceinline__ unsigned cluster_size() {
    unsigned size;
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(size));
    return size;
}

__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

__device__ __forceinline__ void store_remote(const float* local, unsigned rank, float value) {
    unsigned remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(coil_shared_address(local)), "r"(rank));
    asm volatile("st.shared::cluster.f32 [%0], %1;" :: "r"(remote), "f"(value) : "memory");
}

// A chain of `phases` dependent phases within each cluster (clusters run independent chains).
__global__ void __launch_bounds__(CHAIN_THREADS, 1) cluster_chain(int phases, float* out) {
    __shared__ __align__(16) float x[2][WIDTH];
    __shared__ float partial[2][CHAIN_THREADS / 32];
    const unsigned rank = cluster_rank();
    const unsigned size = cluster_size();
    for (int i = threadIdx.x; i < WIDTH; i += CHAIN_THREADS) x[0][i] = 0.001f * (i % 17);
    const int first = (int) (WIDTH * rank / size);
    const int end = (int) (WIDTH * (rank + 1) / size);
    cluster_sync();
    for (int p = 0; p < phases; p++) {
        const int current = p & 1;
        float squares = 0.0f;
        for (int i = threadIdx.x; i < WIDTH; i += CHAIN_THREADS) squares = fmaf(x[current][i], x[current][i], squares);
        for (int o = 16; o > 0; o >>= 1) squares += __shfl_xor_sync(0xffffffffu, squares, o);
        if ((threadIdx.x & 31) == 0) partial[current][threadIdx.x >> 5] = squares;
        __syncthreads();
        float total = 0.0f;
        for (int w = 0; w < CHAIN_THREADS / 32; w++) total += partial[current][w];
        const float inverse = rsqrtf(total / WIDTH + 1e-5f);
        // Thread t of the block's slice sends its value to block t % size first, so that the
        // stores to one block spread over the slice's threads.
        for (int i = first + (int) threadIdx.x; i < end; i += CHAIN_THREADS) {
            const float value = x[current][i] * inverse + 0.001f;
            for (unsigned r = 0; r < size; r++) store_remote(&x[current ^ 1][i], (r + threadIdx.x) % size, value);
        }
        cluster_sync();
    }
    if (rank == 0 && threadIdx.x == 0) out[blockIdx.x] = x[phases & 1][5];
}

int main() {
    cudaDeviceProp properties;
    CHECK(cudaGetDeviceProperties(&properties, 0));
    const int sms = properties.multiProcessorCount;
    std::printf("%s, %d SMs\n", properties.name, sms);
    const size_t hbm_bytes = 2ull << 30;
    const size_t l2_bytes = 16ull << 20;
    char* buffer;
    unsigned* sink;
    CHECK(cudaMalloc(&buffer, hbm_bytes));
    CHECK(cudaMemset(buffer, 1, hbm_bytes));
    CHECK(cudaMalloc(&sink, 4));
    const int dynamic = SLOTS * SLOT_BYTES;
    CHECK(cudaFuncSetAttribute(stream, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic));
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    for (int from_l2 = 0; from_l2 < 2; from_l2++) {
        for (int blocks : {1, 2, 4, 8, 16, 32, 66, sms}) {
            const size_t region = from_l2 ? l2_bytes : hbm_bytes;
            unsigned long long share = region / blocks / SLOT_BYTES * SLOT_BYTES;
            if (!from_l2 && share > (256ull << 20)) share = 256ull << 20;
            const int passes = from_l2 ? 8 : 1;
            stream<<<blocks, STREAM_THREADS, dynamic>>>(buffer, share, 1, sink);  // warms L2 for the L2 case
            CHECK(cudaEventRecord(start));
            stream<<<blocks, STREAM_THREADS, dynamic>>>(buffer, share, passes, sink);
            CHECK(cudaEventRecord(stop));
            CHECK(cudaEventSynchronize(stop));
            float ms;
            CHECK(cudaEventElapsedTime(&ms, start, stop));
            const double gbs = (double) share * passes * blocks / (ms * 1e-3) / 1e9;
            std::printf("stream from %s, %3d blocks: %7.1f GB/s in all, %6.1f GB/s a multiprocessor (%.1f MB a block)\n",
                    from_l2 ? "L2 " : "HBM", blocks, gbs, gbs / blocks, share * passes / 1e6);
        }
    }
    float* out;
    CHECK(cudaMalloc(&out, 1024 * sizeof(float)));
    CHECK(cudaFuncSetAttribute(cluster_chain, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    const int phases = 4000;
    for (int size : {2, 4, 8, 16}) {
        for (int clusters : {1, 8}) {
            cudaLaunchConfig_t config = {};
            config.gridDim = dim3(size * clusters);
            config.blockDim = dim3(CHAIN_THREADS);
            cudaLaunchAttribute attribute[1];
            attribute[0].id = cudaLaunchAttributeClusterDimension;
            attribute[0].val.clusterDim.x = size;
            attribute[0].val.clusterDim.y = 1;
            attribute[0].val.clusterDim.z = 1;
            config.attrs = attribute;
            config.numAttrs = 1;
            int active = 0;
            if (cudaOccupancyMaxActiveClusters(&active, cluster_chain, &config) != cudaSuccess || active < clusters) {
                std::printf("cluster of %2d: %d clusters cannot be resident (%d)\n", size, clusters, active);
                cudaGetLastError();
                continue;
            }
            CHECK(cudaLaunchKernelEx(&config, cluster_chain, 10, out));
            CHECK(cudaEventRecord(start));
            CHECK(cudaLaunchKernelEx(&config, cluster_chain, phases, out));
            CHECK(cudaEventRecord(stop));
            CHECK(cudaEventSynchronize(stop));
            float ms;
            CHECK(cudaEventElapsedTime(&ms, start, stop));
            std::printf("cluster of %2d blocks, %d cluster(s): %.3f us a phase\n", size, clusters, 1000.0f * ms / phases);
        }
    }
    return 0;
}
