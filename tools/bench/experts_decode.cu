// A batch-1 decode step's routed experts at Nemotron-3-Nano's shape (H 2688, F 1856, E 128, k 6,
// relu(up)², bf16 weights), without the model: the engine's two launches (routed_experts.cu) against
// variants that route once a block and walk several outputs a warp, so that a launch is one wave of
// blocks. Each variant runs the same 64 steps (a different row of router scores each, so the experts
// change), captured in a CUDA graph; it prints µs a launch and the weights' GB/s, and checks that
// each variant's outputs equal the engine kernels' bit for bit.
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -I engine/src/main/cuda -o /tmp/experts_decode tools/bench/experts_decode.cu
//   /tmp/experts_decode [replays=20]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "routed_experts.cu"

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { \
    std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

constexpr int H = 2688;
constexpr int F = 1856;
constexpr int E = 128;
constexpr int K = 6;
constexpr int STEPS = 64;

__global__ void fill_bf16(__nv_bfloat16* out, size_t n, unsigned seed, float scale) {
    for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n; i += (size_t) gridDim.x * blockDim.x) {
        unsigned h = (unsigned) i * 2654435761u ^ seed;
        h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
        out[i] = __float2bfloat16(((h & 0xffff) / 65536.0f - 0.5f) * scale);
    }
}

__global__ void fill_f32(float* out, size_t n, unsigned seed, float scale) {
    for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n; i += (size_t) gridDim.x * blockDim.x) {
        unsigned h = (unsigned) i * 2246822519u ^ seed;
        h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
        out[i] = ((h & 0xffff) / 65536.0f - 0.5f) * scale;
    }
}

// Variant up: grid (blocks_x, pairs); each block routes its pair's row once, then each warp walks the
// outputs j = blockIdx.x · 8 + warp, + gridDim.x · 8, holding a whole row a lane (HELD chunks) and,
// with PIPE, the next output's row in flight while it sums this one. The sums run in the engine
// kernel's order (lane l: chunks l, l + 32, ...), so the outputs are equal bit for bit.
template <int HELD, bool PIPE>
__global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) up_walk(const float* __restrict__ logits, int per_token,
        RoutedExpertsRouter router, const float* __restrict__ x, const __nv_bfloat16* __restrict__ input,
        float* __restrict__ out) {
    __shared__ RoutedExpertsRowRouting routing;
    COIL_AFTER_PREVIOUS_KERNEL();
    const int lane = threadIdx.x & 31;
    const int pair = blockIdx.y;
    const int row = pair / per_token;
    const int slot = pair - row * per_token;
    routed_experts_route_row(logits, row, E, per_token, router, false, nullptr, nullptr, routing);
    const int expert = routing.ids[slot];
    constexpr int CHUNKS = H / 8;
    const uint4* rows = reinterpret_cast<const uint4*>(input) + (size_t) expert * F * CHUNKS;
    const float* x_row = x + (size_t) row * H;
    const int stride = gridDim.x * ROUTED_EXPERTS_WARPS;
    int j = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    uint4 held[HELD];
    auto load = [&](int output, uint4 (&into)[HELD]) {
#pragma unroll
        for (int t = 0; t < HELD; t++) {
            const int c = lane + 32 * t;
            if (c < CHUNKS) {
                into[t] = __ldg(rows + (size_t) output * CHUNKS + c);
            }
        }
    };
    if (j < F) {
        load(j, held);
    }
    for (; j < F; j += stride) {
        uint4 current[HELD];
#pragma unroll
        for (int t = 0; t < HELD; t++) {
            current[t] = held[t];
        }
        if (PIPE && j + stride < F) {
            load(j + stride, held);
        }
        float up = 0.0f;
#pragma unroll
        for (int t = 0; t < HELD; t++) {
            const int c = lane + 32 * t;
            if (c < CHUNKS) {
                float ws[8];
                float xs[8];
                routed_experts_widen_chunk<true>(current[t], ws);
                routed_experts_operand_chunk<true>(x_row, c, xs);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    up = fmaf(ws[i], xs[i], up);
                }
            }
        }
        up = coil_warp_sum(up);
        if (lane == 0) {
            out[(size_t) pair * F + j] = coil_squared_relu(up);
        }
        if (!PIPE && j + stride < F) {
            load(j + stride, held);
        }
    }
}

// Variant down: a block takes OUTPUTS outputs j and all k slots of one row: its warps walk the
// OUTPUTS · k (output, slot) dots (a whole weight row a lane, HELD chunks, the next dot's row in
// flight), each dot's warp sum into shared memory; then thread t < OUTPUTS adds output t's k dots in
// slot order, each times its weight, and adds that to out: the engine kernel's arithmetic and order.
template <int HELD, int OUTPUTS>
__global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) down_walk(const float* __restrict__ logits, int per_token,
        RoutedExpertsRouter router, const float* __restrict__ hidden_values, const __nv_bfloat16* __restrict__ down,
        float* __restrict__ out) {
    __shared__ RoutedExpertsRowRouting routing;
    __shared__ float dots[OUTPUTS][ROUTED_EXPERTS_MAX_PER_TOKEN];
    COIL_AFTER_PREVIOUS_KERNEL();
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int row = blockIdx.y;
    routed_experts_route_row(logits, row, E, per_token, router, false, nullptr, nullptr, routing);
    constexpr int CHUNKS = F / 8;
    const int first = blockIdx.x * OUTPUTS;
    const int items = min(OUTPUTS, H - first) * per_token;
    const float* values = hidden_values + (size_t) row * per_token * F;
    auto row_of = [&](int item) {
        const int output = first + item / per_token;
        const int slot = item % per_token;
        return reinterpret_cast<const uint4*>(down) + ((size_t) routing.ids[slot] * H + output) * CHUNKS;
    };
    uint4 held[HELD];
    auto load = [&](int item, uint4 (&into)[HELD]) {
        const uint4* weights = row_of(item);
#pragma unroll
        for (int t = 0; t < HELD; t++) {
            const int c = lane + 32 * t;
            if (c < CHUNKS) {
                into[t] = coil_load_streaming(weights + c);
            }
        }
    };
    int item = warp;
    if (item < items) {
        load(item, held);
    }
    for (; item < items; item += ROUTED_EXPERTS_WARPS) {
        uint4 current[HELD];
#pragma unroll
        for (int t = 0; t < HELD; t++) {
            current[t] = held[t];
        }
        if (item + ROUTED_EXPERTS_WARPS < items) {
            load(item + ROUTED_EXPERTS_WARPS, held);
        }
        const int slot = item % per_token;
        const float* slot_values = values + (size_t) slot * F;
        float partial = 0.0f;
#pragma unroll
        for (int t = 0; t < HELD; t++) {
            const int c = lane + 32 * t;
            if (c < CHUNKS) {
                float ws[8];
                float vs[8];
                routed_experts_widen_chunk<true>(current[t], ws);
                routed_experts_operand_chunk<true>(slot_values, c, vs);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    partial = fmaf(ws[i], vs[i], partial);
                }
            }
        }
        partial = coil_warp_sum(partial);
        if (lane == 0) {
            dots[item / per_token][slot] = partial;
        }
    }
    __syncthreads();
    if (threadIdx.x < OUTPUTS && first + (int) threadIdx.x < H) {
        float moe = 0.0f;
        for (int s = 0; s < per_token; s++) {
            moe = __fadd_rn(moe, __fmul_rn(routing.weights[s], dots[threadIdx.x][s]));
        }
        float* target = out + (size_t) row * H + first + threadIdx.x;
        *target = __fadd_rn(*target, moe);
    }
}

template <typename Launch>
static float time_steps(Launch launch, int replays, cudaStream_t stream) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    for (int step = 0; step < STEPS; step++) {
        launch(step);
    }
    CHECK(cudaStreamEndCapture(stream, &graph));
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CHECK(cudaGraphLaunch(exec, stream));
    CHECK(cudaStreamSynchronize(stream));
    std::vector<float> times;
    cudaEvent_t start, end;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&end));
    for (int r = 0; r < replays; r++) {
        CHECK(cudaEventRecord(start, stream));
        CHECK(cudaGraphLaunch(exec, stream));
        CHECK(cudaEventRecord(end, stream));
        CHECK(cudaEventSynchronize(end));
        float ms;
        CHECK(cudaEventElapsedTime(&ms, start, end));
        times.push_back(ms * 1000.0f / STEPS);
    }
    std::sort(times.begin(), times.end());
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
    return times[times.size() / 2];
}

int main(int argc, char** argv) {
    const int replays = argc > 1 ? std::atoi(argv[1]) : 20;
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
    const size_t matrix = (size_t) E * F * H;
    __nv_bfloat16 *up, *down;
    float *logits, *bias, *x, *activated, *activated2, *out, *out2;
    int* ids;
    float* weights;
    CHECK(cudaMalloc(&up, matrix * 2));
    CHECK(cudaMalloc(&down, matrix * 2));
    CHECK(cudaMalloc(&logits, (size_t) STEPS * E * 4));
    CHECK(cudaMalloc(&bias, E * 4));
    CHECK(cudaMalloc(&x, (size_t) STEPS * H * 4));
    CHECK(cudaMalloc(&activated, (size_t) STEPS * K * F * 4));
    CHECK(cudaMalloc(&activated2, (size_t) STEPS * K * F * 4));
    CHECK(cudaMalloc(&out, (size_t) STEPS * H * 4));
    CHECK(cudaMalloc(&out2, (size_t) STEPS * H * 4));
    CHECK(cudaMalloc(&ids, (size_t) STEPS * K * 4));
    CHECK(cudaMalloc(&weights, (size_t) STEPS * K * 4));
    fill_bf16<<<4096, 256>>>(up, matrix, 1, 0.08f);
    fill_bf16<<<4096, 256>>>(down, matrix, 2, 0.08f);
    fill_f32<<<256, 256>>>(logits, (size_t) STEPS * E, 3, 8.0f);
    fill_f32<<<1, 256>>>(bias, E, 4, 0.1f);
    fill_f32<<<256, 256>>>(x, (size_t) STEPS * H, 5, 2.0f);
    CHECK(cudaMemset(out, 0, (size_t) STEPS * H * 4));
    CHECK(cudaMemset(out2, 0, (size_t) STEPS * H * 4));
    CHECK(cudaDeviceSynchronize());
    const RoutedExpertsRouter router{ROUTED_EXPERTS_SIGMOID_NORMALIZED, bias, 1, 1, 2.5f};
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    routed_experts_route<<<STEPS, ROUTED_EXPERTS_THREADS, 0, stream>>>(logits, STEPS, E, K, router.scoring, bias, 1, 1,
            2.5f, ids, weights);
    CHECK(cudaStreamSynchronize(stream));
    const double bytes = (double) K * F * H * 2;
    auto report = [&](const char* name, float us) {
        std::printf("%-44s %8.2f us  %6.2f TB/s\n", name, us, bytes / (us * 1e-6) / 1e12);
    };
    auto same = [&](const float* a, const float* b, size_t n, const char* name) {
        std::vector<float> ha(n), hb(n);
        CHECK(cudaMemcpy(ha.data(), a, n * 4, cudaMemcpyDeviceToHost));
        CHECK(cudaMemcpy(hb.data(), b, n * 4, cudaMemcpyDeviceToHost));
        const bool equal = std::memcmp(ha.data(), hb.data(), n * 4) == 0;
        std::printf("%-44s %s\n", name, equal ? "bit for bit" : "DIFFERENT");
    };
    // The engine's launches.
    report("up: route_gate_up (engine)", time_steps([&](int s) {
        routed_experts_route_gate_up_bf16<<<dim3((F + 7) / 8, K), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                logits + (size_t) s * E, E, K, router.scoring, bias, 1, 1, 2.5f, x + (size_t) s * H, 1, H, up, 0, F,
                ids + s * K, weights + s * K, activated + (size_t) s * K * F);
    }, replays, stream));
    report("up: gate_up, ids given (engine)", time_steps([&](int s) {
        routed_experts_gate_up_bf16<<<dim3((F + 7) / 8, K), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                x + (size_t) s * H, 1, H, up, 0, E, F, ids + s * K, K, activated + (size_t) s * K * F);
    }, replays, stream));
    for (int blocks : {22, 33, 44, 66, 88}) {
        char name[64];
        std::snprintf(name, sizeof name, "up: walk, %d blocks a pair, pipelined", blocks);
        report(name, time_steps([&](int s) {
            up_walk<11, true><<<dim3(blocks, K), ROUTED_EXPERTS_THREADS, 0, stream>>>(logits + (size_t) s * E, K, router,
                    x + (size_t) s * H, up, activated2 + (size_t) s * K * F);
        }, replays, stream));
        same(activated, activated2, (size_t) STEPS * K * F, "  outputs against the engine's");
        std::snprintf(name, sizeof name, "up: walk, %d blocks a pair", blocks);
        report(name, time_steps([&](int s) {
            up_walk<11, false><<<dim3(blocks, K), ROUTED_EXPERTS_THREADS, 0, stream>>>(logits + (size_t) s * E, K, router,
                    x + (size_t) s * H, up, activated2 + (size_t) s * K * F);
        }, replays, stream));
    }
    report("down: route_down_add (engine)", time_steps([&](int s) {
        routed_experts_route_down_add_bf16<<<dim3((H + 7) / 8, 1), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                logits + (size_t) s * E, router.scoring, bias, 1, 1, 2.5f, activated + (size_t) s * K * F, 1, K, F,
                down, E, H, out + (size_t) s * H);
    }, replays, stream));
    report("down: down_add, ids given (engine)", time_steps([&](int s) {
        routed_experts_down_add_bf16<<<dim3((H + 7) / 8, 1), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                activated + (size_t) s * K * F, 1, K, F, down, E, H, ids + s * K, weights + s * K, out2 + (size_t) s * H);
    }, replays, stream));
    // Bit-for-bit check of the walk against the engine: one launch each from zero.
    auto down_check = [&](auto kernel, int outputs) {
        CHECK(cudaMemset(out, 0, (size_t) H * 4));
        CHECK(cudaMemset(out2, 0, (size_t) H * 4));
        routed_experts_route_down_add_bf16<<<dim3((H + 7) / 8, 1), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                logits, router.scoring, bias, 1, 1, 2.5f, activated, 1, K, F, down, E, H, out);
        kernel<<<dim3((H + outputs - 1) / outputs, 1), ROUTED_EXPERTS_THREADS, 0, stream>>>(logits, K, router,
                activated, down, out2);
        CHECK(cudaStreamSynchronize(stream));
        same(out, out2, H, "  outputs against the engine's");
    };
    auto down_time = [&](const char* name, auto kernel, int outputs) {
        report(name, time_steps([&](int s) {
            kernel<<<dim3((H + outputs - 1) / outputs, 1), ROUTED_EXPERTS_THREADS, 0, stream>>>(logits + (size_t) s * E,
                    K, router, activated + (size_t) s * K * F, down, out2 + (size_t) s * H);
        }, replays, stream));
        down_check(kernel, outputs);
    };
    down_time("down: walk, 4 outputs a block", down_walk<8, 4>, 4);
    down_time("down: walk, 8 outputs a block", down_walk<8, 8>, 8);
    down_time("down: walk, 12 outputs a block", down_walk<8, 12>, 12);
    down_time("down: walk, 16 outputs a block", down_walk<8, 16>, 16);
    down_time("down: walk, 24 outputs a block", down_walk<8, 24>, 24);
    int occupancy = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, up_walk<11, true>, ROUTED_EXPERTS_THREADS, 0));
    std::printf("up_walk<11, pipelined>: %d blocks a multiprocessor\n", occupancy);
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, up_walk<11, false>, ROUTED_EXPERTS_THREADS, 0));
    std::printf("up_walk<11>: %d blocks a multiprocessor\n", occupancy);
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, down_walk<8, 8>, ROUTED_EXPERTS_THREADS, 0));
    std::printf("down_walk<8, 8>: %d blocks a multiprocessor\n", occupancy);
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, routed_experts_route_gate_up_bf16,
            ROUTED_EXPERTS_THREADS, 0));
    std::printf("route_gate_up: %d blocks a multiprocessor\n", occupancy);
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, routed_experts_route_down_add_bf16,
            ROUTED_EXPERTS_THREADS, 0));
    std::printf("route_down_add: %d blocks a multiprocessor\n", occupancy);
    return 0;
}
