// A batch-1 decode step's chain of Mamba layers, without the model: each layer is in_proj (768 →
// 3352), a state update (24 heads, 2 KB of state a block), out_proj (1536 → 768), gate and up
// (768 → 4096) and down (2048 → 768), every product on an RMS-normed operand, all launched with
// programmatic stream serialization and replayed from a CUDA graph (24 layers, 407 MB of weights,
// so every replay reads them from HBM). It measures what each part of a launch costs the chain by
// changing one thing at a time.
//
// Where a product's weights come from (source): 0 each layer its own (HBM), 1 every layer layer
// 0's (L2), 2 none loaded (the chain's floor without weights).
//
// How a product holds its weights before its griddepcontrol.wait, and makes its operand after it
// (variant, in pairs: even = dependents start after the wait, odd = at the kernel's start):
//   0, 1 registers: each warp loads its rows into registers (16-byte loads), as gemv.cu does; the
//                   block makes the normed operand (each thread a stride of the row, a block sum,
//                   x in shared memory, two barriers);
//   2, 3 shared:    one thread starts a bulk copy (cp.async.bulk, completion on an mbarrier) of the
//                   block's rows into shared memory, so that the block needs few registers;
//   4, 5 reg+warp:  registers, and each warp makes the operand of its own chunks alone (no barrier;
//                   1/rms applied to the warp's sums);
//   6, 7 reg,nonorm: registers, the operand as it is (the floor of a product's body).
// Starting dependents at the kernel's start lets launch after launch stage its weights while the
// chain runs, as far ahead as the multiprocessors have room.
//
// Prefetcher (ahead > 0): a second branch of the graph (prefetch_blocks warps, one a block) that
// brings layer l's matrices into L2 (cp.async.bulk.prefetch.L2) once the chain's in_proj of layer
// l - ahead has passed its wait (a counter in global memory).
//
// COIL_CHAIN_RESERVE_KB (environment, default 0): shared memory each register-variant product block
// asks for beyond its operand, to cap how many of its blocks a multiprocessor holds (the engine's
// products take 128 registers, two blocks a multiprocessor; these take about 56, four), and so how
// much room the next launches have to stage their weights beside a running one.
//
// Thread 0 of block 0 of every launch records %globaltimer when its wait returns; the program
// prints the median over the replays of each phase's time to the next launch's wait.
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/decode_chain tools/bench/decode_chain.cu
//   /tmp/decode_chain [replays=40] [first source=0] [last source=2] [first variant=0] [last variant=3]
//                     [aheads, e.g. 0,1,2 = 0] [prefetch blocks=8]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <vector>

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { \
    std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;
constexpr int LAYERS = 24;
constexpr int PHASES = 5;
constexpr int MAX_K = 2048;

__device__ __forceinline__ unsigned long long global_time() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// How far the chain got: layer l's in_proj sets it to l + 1 once its wait returns.
__device__ unsigned int chain_progress;

// The L2 prefetcher (a second branch of the graph, a warp on each of a few multiprocessors): before
// layer l, once the chain has reached layer l - ahead, each lane prefetches its share of each of
// layer l's four matrices into L2 (cp.async.bulk.prefetch.L2, no registers or shared memory involved).
struct Matrix {
    const void* data;
    unsigned long long bytes;
};

__global__ void prefetcher(const Matrix* matrices, int layers, int ahead) {
    const int lane = blockIdx.x * 32 + threadIdx.x;
    const int lanes = gridDim.x * 32;
    for (int l = 0; l < layers; l++) {
        const unsigned int needed = l - ahead + 1;
        if (l - ahead >= 0) {
            unsigned int seen;
            do {
                asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(&chain_progress) : "memory");
                if (seen < needed) __nanosleep(100);
            } while (seen < needed);
        }
        for (int m = 0; m < 4; m++) {
            const Matrix matrix = matrices[l * 4 + m];
            const unsigned long long piece = (matrix.bytes / lanes + 15) / 16 * 16;
            const unsigned long long from = lane * piece;
            if (from < matrix.bytes) {
                const unsigned int size = (unsigned int) min(piece, matrix.bytes - from);
                asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;"
                        :: "l"((const char*) matrix.data + from), "r"(size) : "memory");
            }
        }
    }
}

__device__ __forceinline__ void wait_for_previous() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void let_dependents_start() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ void to_float8(uint4 packed, float (&v)[8]) {
    const unsigned int words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        v[2 * j] = __uint_as_float(words[j] << 16);
        v[2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
    }
}

// The operand: x = in / rms(in), k floats into shared memory.
__device__ __forceinline__ void normed_operand(const float* in, int k, float* x) {
    __shared__ float partial[WARPS];
    float values[MAX_K / THREADS];
    float squares = 0.0f;
#pragma unroll
    for (int j = 0; j < MAX_K / THREADS; j++) {
        const int i = threadIdx.x + j * THREADS;
        values[j] = i < k ? in[i] : 0.0f;
        squares = fmaf(values[j], values[j], squares);
    }
    squares = warp_sum(squares);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = squares;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < WARPS; w++) total += partial[w];
    const float inverse = rsqrtf(total / k + 1e-5f);
#pragma unroll
    for (int j = 0; j < MAX_K / THREADS; j++) {
        const int i = threadIdx.x + j * THREADS;
        if (i < k) x[i] = values[j] * inverse;
    }
    __syncthreads();
}

__device__ __forceinline__ float dot8_values(const float (&w)[8], const float (&x)[8]) {
    float s = w[0] * x[0];
#pragma unroll
    for (int j = 1; j < 8; j++) s = fmaf(w[j], x[j], s);
    return s;
}

// The same with x's 8 values read from shared memory, 16 bytes at a time.
__device__ __forceinline__ float dot8(const float (&w)[8], const float* x) {
    const float4 a = *reinterpret_cast<const float4*>(x);
    const float4 b = *reinterpret_cast<const float4*>(x + 4);
    const float values[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    return dot8_values(w, values);
}

// Weights in registers: a warp holds COLUMNS rows, each lane the chunks lane + 32 i. BODY: how the
// normed operand is made after the wait:
//   0: by the block (each thread a stride of the row, a block sum, x in shared memory, two barriers);
//   1: by each warp alone: a lane loads the operand values of its own chunks from global memory
//      (L1 serves the block's other warps), sums their squares and their products with its weights,
//      and the warp's sum of squares gives 1/rms, applied to the warp's sums (no barrier);
//   2: no norm (the operand as it is, loaded as in 1): the floor of a product's body.
template <int COLUMNS, bool EARLY, int BODY>
__global__ void __launch_bounds__(THREADS) product_registers(const __nv_bfloat16* w, const float* in, float* out,
        int n, int k, unsigned long long* trace, int load, int mark) {
    constexpr int CHUNKS = 8 / COLUMNS;
    extern __shared__ __align__(16) float operand[];
    const int lane = threadIdx.x & 31;
    const int first = (blockIdx.x * WARPS + (threadIdx.x >> 5)) * COLUMNS;
    const int chunks = k / 8;
    uint4 held[COLUMNS][CHUNKS];
#pragma unroll
    for (int o = 0; o < COLUMNS; o++) {
        const uint4* row = reinterpret_cast<const uint4*>(w + (size_t) min(first + o, n - 1) * k);
#pragma unroll
        for (int i = 0; i < CHUNKS; i++) {
            const int c = lane + 32 * i;
            held[o][i] = c < chunks && load ? __ldg(row + c) : make_uint4(0, 0, 0, 0);
        }
    }
    if (EARLY) let_dependents_start();
    wait_for_previous();
    if (!EARLY) let_dependents_start();
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        *trace = global_time();
        if (mark > 0) asm volatile("st.relaxed.gpu.global.u32 [%0], %1;" :: "l"(&chain_progress), "r"(mark) : "memory");
    }
    float acc[COLUMNS] = {};
    float scale = 1.0f;
    if (BODY == 0) {
        normed_operand(in, k, operand);
#pragma unroll
        for (int i = 0; i < CHUNKS; i++) {
            const int c = lane + 32 * i;
            if (c < chunks) {
#pragma unroll
                for (int o = 0; o < COLUMNS; o++) {
                    float v[8];
                    to_float8(held[o][i], v);
                    acc[o] += dot8(v, operand + 8 * c);
                }
            }
        }
    } else {
        float squares = 0.0f;
        float4 xs[CHUNKS][2];
#pragma unroll
        for (int i = 0; i < CHUNKS; i++) {
            const int c = lane + 32 * i;
            if (c < chunks) {
                xs[i][0] = reinterpret_cast<const float4*>(in)[2 * c];
                xs[i][1] = reinterpret_cast<const float4*>(in)[2 * c + 1];
            }
        }
#pragma unroll
        for (int i = 0; i < CHUNKS; i++) {
            const int c = lane + 32 * i;
            if (c < chunks) {
                const float x[8] = {xs[i][0].x, xs[i][0].y, xs[i][0].z, xs[i][0].w, xs[i][1].x, xs[i][1].y,
                        xs[i][1].z, xs[i][1].w};
#pragma unroll
                for (int j = 0; j < 8; j++) squares = fmaf(x[j], x[j], squares);
#pragma unroll
                for (int o = 0; o < COLUMNS; o++) {
                    float v[8];
                    to_float8(held[o][i], v);
                    acc[o] += dot8_values(v, x);
                }
            }
        }
        if (BODY == 1) scale = rsqrtf(warp_sum(squares) / k + 1e-5f);
    }
#pragma unroll
    for (int o = 0; o < COLUMNS; o++) {
        const float total = warp_sum(acc[o]) * scale;
        if (lane == 0 && first + o < n) out[first + o] = total;
    }
}

// Weights in shared memory: thread 0 copies the block's rows (rows_per_block · k bf16, contiguous)
// with one bulk copy whose completion an mbarrier counts; the block waits on it after its operand.
template <bool EARLY>
__global__ void __launch_bounds__(THREADS, 4) product_shared(const __nv_bfloat16* w, const float* in, float* out,
        int n, int k, int rows_per_block, unsigned long long* trace) {
    extern __shared__ __align__(128) unsigned char staged[];
    __shared__ __align__(8) unsigned long long arrived;
    const int first_row = blockIdx.x * rows_per_block;
    const int rows = min(rows_per_block, n - first_row);
    const unsigned int bytes = (unsigned int) rows * k * 2;
    const unsigned int barrier = (unsigned int) __cvta_generic_to_shared(&arrived);
    const unsigned int tile = (unsigned int) __cvta_generic_to_shared(staged);
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(barrier));
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(barrier), "r"(bytes) : "memory");
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                :: "r"(tile), "l"(w + (size_t) first_row * k), "r"(bytes), "r"(barrier) : "memory");
    }
    if (EARLY) let_dependents_start();
    wait_for_previous();
    if (!EARLY) let_dependents_start();
    if (blockIdx.x == 0 && threadIdx.x == 0) *trace = global_time();
    float* x = reinterpret_cast<float*>(staged + (size_t) rows_per_block * k * 2);
    normed_operand(in, k, x);
    unsigned int done = 0;
    while (!done) {
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }"
                : "=r"(done) : "r"(barrier) : "memory");
    }
    const int lane = threadIdx.x & 31;
    const int chunks = k / 8;
    for (int r = threadIdx.x >> 5; r < rows; r += WARPS) {
        const uint4* row = reinterpret_cast<const uint4*>(staged + (size_t) r * k * 2);
        float acc = 0.0f;
        for (int c = lane; c < chunks; c += 32) {
            float v[8];
            to_float8(row[c], v);
            acc += dot8(v, x + 8 * c);
        }
        acc = warp_sum(acc);
        if (lane == 0) out[first_row + r] = acc;
    }
}

// The state update's shape: 384 blocks of 128 threads, each reading 2 KB of state before its wait
// and writing it back after, four outputs a block.
template <bool EARLY>
__global__ void __launch_bounds__(128) state_update(float* state, const float* in, int n_in, float* out,
        unsigned long long* trace) {
    float4* slice = reinterpret_cast<float4*>(state) + (size_t) blockIdx.x * 128 + threadIdx.x;
    const float4 s = *slice;
    if (EARLY) let_dependents_start();
    wait_for_previous();
    if (!EARLY) let_dependents_start();
    if (blockIdx.x == 0 && threadIdx.x == 0) *trace = global_time();
    const int output = blockIdx.x * 4 + (threadIdx.x >> 5);
    const float v = in[output % n_in];
    const float total = warp_sum(s.x * v + s.y * v + s.z * v + s.w * v);
    *slice = make_float4(0.5f * s.x + v, 0.5f * s.y + v, 0.5f * s.z + v, 0.5f * s.w + v);
    if ((threadIdx.x & 31) == 0) out[output] = total * 1e-3f;
}

struct Product {
    __nv_bfloat16* w;
    int n, k;
};

static void launch(cudaStream_t stream, const void* kernel, int blocks, int threads, size_t shared, void** args) {
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(blocks);
    config.blockDim = dim3(threads);
    config.dynamicSmemBytes = shared;
    config.stream = stream;
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attribute;
    config.numAttrs = 1;
    CHECK(cudaLaunchKernelExC(&config, kernel, args));
}

template <int COLUMNS, int BODY>
static const void* registers_kernel(bool early) {
    return early ? (const void*) product_registers<COLUMNS, true, BODY> : (const void*) product_registers<COLUMNS, false, BODY>;
}

// Variants: 0, 1 registers (block norm) with dependents after the wait or at the start; 2, 3 shared;
// 4, 5 registers with the warp's norm; 6, 7 registers without a norm.
static const void* product_kernel(int variant, int columns) {
    const bool early = variant & 1;
    if (variant == 2 || variant == 3) return early ? (const void*) product_shared<true> : (const void*) product_shared<false>;
    const int body = variant < 2 ? 0 : variant < 6 ? 1 : 2;
    if (columns == 2) return body == 0 ? registers_kernel<2, 0>(early) : body == 1 ? registers_kernel<2, 1>(early) : registers_kernel<2, 2>(early);
    return body == 0 ? registers_kernel<1, 0>(early) : body == 1 ? registers_kernel<1, 1>(early) : registers_kernel<1, 2>(early);
}

int main(int argc, char** argv) {
    const int replays = argc > 1 ? std::atoi(argv[1]) : 40;
    // Which weights: 0 each layer its own (from HBM), 1 every layer layer 0's (from L2), 2 none loaded.
    const int first_source = argc > 2 ? std::atoi(argv[2]) : 0;
    const int last_source = argc > 3 ? std::atoi(argv[3]) : 2;
    const int first_variant = argc > 4 ? std::atoi(argv[4]) : 0;
    const int last_variant = argc > 5 ? std::atoi(argv[5]) : 3;
    // Multiprocessors the prefetcher takes, and the layers ahead it runs (a list, e.g. "0,1,2"; 0: no prefetcher).
    const int prefetch_blocks = argc > 7 ? std::atoi(argv[7]) : 8;
    std::vector<int> aheads;
    for (const char* p = argc > 6 ? argv[6] : "0"; *p; ) {
        aheads.push_back(std::atoi(p));
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
    }
    cudaDeviceProp properties;
    CHECK(cudaGetDeviceProperties(&properties, 0));
    // Per layer: in_proj, out_proj, gate_up, down (the state update sits between in_proj and out_proj).
    const int shapes[4][2] = {{3352, 768}, {768, 1536}, {4096, 768}, {768, 2048}};
    std::vector<Product> products;
    size_t weight_bytes = 0;
    for (int l = 0; l < LAYERS; l++) {
        for (auto& s : shapes) {
            Product p{nullptr, s[0], s[1]};
            CHECK(cudaMalloc(&p.w, (size_t) p.n * p.k * 2));
            CHECK(cudaMemset(p.w, 0x3c, (size_t) p.n * p.k * 2));
            weight_bytes += (size_t) p.n * p.k * 2;
            products.push_back(p);
        }
    }
    float* buffers;      // a 4096-float buffer per launch
    float* state;
    unsigned long long* trace;
    const int launches = LAYERS * PHASES;
    CHECK(cudaMalloc(&buffers, (size_t) (launches + 1) * 4096 * sizeof(float)));
    CHECK(cudaMemset(buffers, 0, (size_t) (launches + 1) * 4096 * sizeof(float)));
    CHECK(cudaMalloc(&state, (size_t) LAYERS * 384 * 512 * sizeof(float)));
    CHECK(cudaMemset(state, 0, (size_t) LAYERS * 384 * 512 * sizeof(float)));
    CHECK(cudaMalloc(&trace, (size_t) launches * replays * sizeof(unsigned long long)));
    for (bool early : {false, true}) {
        CHECK(cudaFuncSetAttribute(product_kernel(2 + early, 1), cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    }
    const char* reserve_kb = std::getenv("COIL_CHAIN_RESERVE_KB");
    const size_t reserve = reserve_kb == nullptr ? 0 : (size_t) std::atoi(reserve_kb) * 1024;
    for (int variant : {0, 1, 4, 5, 6, 7}) {
        for (int columns : {1, 2}) {
            CHECK(cudaFuncSetAttribute(product_kernel(variant, columns), cudaFuncAttributeMaxDynamicSharedMemorySize,
                    (int) (MAX_K * 4 + reserve)));
        }
    }
    cudaStream_t stream, side;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
    cudaEvent_t fork, join;
    CHECK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
    CHECK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
    unsigned int* progress;
    CHECK(cudaGetSymbolAddress((void**) &progress, chain_progress));
    std::vector<Matrix> host_matrices;
    for (auto& p : products) host_matrices.push_back({p.w, (unsigned long long) p.n * p.k * 2});
    Matrix* matrices;
    CHECK(cudaMalloc(&matrices, host_matrices.size() * sizeof(Matrix)));
    CHECK(cudaMemcpy(matrices, host_matrices.data(), host_matrices.size() * sizeof(Matrix), cudaMemcpyHostToDevice));
    std::printf("%s, %d SMs: %d Mamba layers (%d launches), %.0f MB of weights, %zu KB reserved a product block\n",
            properties.name, properties.multiProcessorCount, LAYERS, launches, weight_bytes / 1e6, reserve / 1024);
    const char* names[PHASES] = {"in_proj", "state", "out_proj", "gate_up", "down"};
    const char* sources[3] = {"HBM", "L2", "none"};
    for (int ahead : aheads)
    for (int source = first_source; source <= last_source; source++) {
        for (int variant = first_variant; variant <= last_variant; variant++) {
            const bool shared = variant == 2 || variant == 3;
            if (source == 2 && shared) continue;
            if (ahead > 0 && (shared || source != 0)) continue;
            const bool early = variant & 1;
            std::vector<cudaGraphExec_t> execs;
            for (int r = 0; r < replays; r++) {
                cudaGraph_t graph;
                CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
                CHECK(cudaMemsetAsync(progress, 0, sizeof(unsigned int), stream));
                if (ahead > 0) {
                    CHECK(cudaEventRecord(fork, stream));
                    CHECK(cudaStreamWaitEvent(side, fork, 0));
                    prefetcher<<<prefetch_blocks, 32, 0, side>>>(matrices, LAYERS, ahead);
                    CHECK(cudaGetLastError());
                    CHECK(cudaEventRecord(join, side));
                }
                int index = 0;
                for (int l = 0; l < LAYERS; l++) {
                    for (int phase = 0; phase < PHASES; phase++, index++) {
                        const float* in = buffers + (size_t) index * 4096;
                        float* out = buffers + (size_t) (index + 1) * 4096;
                        unsigned long long* t = trace + (size_t) r * launches + index;
                        if (phase == 1) {
                            float* s = state + (size_t) l * 384 * 512;
                            int n_in = 3352;
                            void* args[] = {&s, &in, &n_in, &out, &t};
                            launch(stream, early ? (const void*) state_update<true> : (const void*) state_update<false>,
                                    384, 128, 0, args);
                            continue;
                        }
                        Product p = products[(size_t) (source == 1 ? 0 : l) * 4 + (phase == 0 ? 0 : phase - 1)];
                        int load = source != 2;
                        if (index == 0) in = buffers + (size_t) launches * 4096;
                        const int rows_per_block = p.k == 768 ? 16 : 8;
                        const int blocks = (p.n + rows_per_block - 1) / rows_per_block;
                        const int columns = rows_per_block / WARPS;
                        int n = p.n, k = p.k, rpb = rows_per_block;
                        if (shared) {
                            void* args[] = {&p.w, &in, &out, &n, &k, &rpb, &t};
                            launch(stream, product_kernel(variant, columns), blocks, THREADS,
                                    (size_t) rows_per_block * k * 2 + (size_t) k * 4, args);
                        } else {
                            int mark = phase == 0 ? l + 1 : 0;
                            void* args[] = {&p.w, &in, &out, &n, &k, &t, &load, &mark};
                            launch(stream, product_kernel(variant, columns), blocks, THREADS, (size_t) k * 4 + reserve, args);
                        }
                    }
                }
                if (ahead > 0) CHECK(cudaStreamWaitEvent(stream, join, 0));
                CHECK(cudaStreamEndCapture(stream, &graph));
                cudaGraphExec_t exec;
                CHECK(cudaGraphInstantiate(&exec, graph, 0));
                CHECK(cudaGraphDestroy(graph));
                execs.push_back(exec);
            }
            // Warm up, then time all replays back to back.
            CHECK(cudaGraphLaunch(execs[0], stream));
            CHECK(cudaStreamSynchronize(stream));
            cudaEvent_t start, stop;
            CHECK(cudaEventCreate(&start));
            CHECK(cudaEventCreate(&stop));
            CHECK(cudaEventRecord(start, stream));
            for (auto exec : execs) CHECK(cudaGraphLaunch(exec, stream));
            CHECK(cudaEventRecord(stop, stream));
            CHECK(cudaEventSynchronize(stop));
            float ms;
            CHECK(cudaEventElapsedTime(&ms, start, stop));
            std::vector<unsigned long long> times((size_t) launches * replays);
            CHECK(cudaMemcpy(times.data(), trace, times.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
            double median[PHASES];
            for (int phase = 0; phase < PHASES; phase++) {
                std::vector<double> deltas;
                for (int r = 0; r < replays; r++) {
                    for (int l = 0; l + 1 < LAYERS; l++) {
                        const size_t i = (size_t) r * launches + l * PHASES + phase;
                        deltas.push_back((times[i + 1] - times[i]) / 1000.0);
                    }
                }
                std::nth_element(deltas.begin(), deltas.begin() + deltas.size() / 2, deltas.end());
                median[phase] = deltas[deltas.size() / 2];
            }
            double first_to_last = 0;
            for (int r = 0; r < replays; r++) {
                first_to_last += (times[(size_t) r * launches + launches - 1] - times[(size_t) r * launches]) / 1000.0;
            }
            std::printf("prefetch %d ahead, weights from %-4s into %-9s, dependents start %-10s: %7.1f us a replay, %6.1f first wait to last;"
                    " per launch", ahead, sources[source], shared ? "shared" : variant < 2 ? "registers" : variant < 6 ? "reg+warp" : "reg,nonorm", early ? "at start" : "after wait",
                    1000.0 * ms / replays, first_to_last / replays);
            for (int phase = 0; phase < PHASES; phase++) std::printf(" %s %.2f", names[phase], median[phase]);
            std::printf("\n");
            for (auto exec : execs) CHECK(cudaGraphExecDestroy(exec));
        }
    }
    return 0;
}
