// A batch-1 decode step's routed experts at Nemotron-3-Nano's shape (H 2688, F 1856, E 128, k 6,
// relu(up)², bf16 weights), without the model: the engine's per-pair launches (routed_experts.cu)
// against its one-wave launches (routed_experts_walk.cu) at several grids, and what the routing alone
// costs. Each variant runs the same 64 steps (a different row of router scores each, so the experts
// change), captured in a CUDA graph; it prints µs a launch and the weights' TB/s, and checks that the
// one-wave launches' outputs equal the per-pair launches' bit for bit.
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -I engine/src/main/cuda -o /tmp/experts_decode tools/bench/experts_decode.cu
//   /tmp/experts_decode [replays=20]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "routed_experts.cu"
#include "routed_experts_walk.cu"

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

// The routing alone: every block routes row 0 of the scores, as each one-wave gate/up block does
// before its first weight load.
__global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) route_only(const float* __restrict__ logits,
        RoutedExpertsRouter router, int* __restrict__ sink) {
    __shared__ RoutedExpertsRowRouting routing;
    routed_experts_route_row(logits, 0, E, K, router, false, nullptr, nullptr, routing);
    if (threadIdx.x == 0 && routing.ids[0] < 0) {
        *sink = routing.ids[0];
    }
}

// The one-wave gate/up walk with the ids given (read from memory), no routing.
__global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) walk_up_ids_given(const float* __restrict__ x,
        const __nv_bfloat16* __restrict__ input, const int* __restrict__ ids, float* __restrict__ out) {
    const int pair = blockIdx.y;
    routed_experts_walk_inputs<false, 12>(x, H, input, ids[pair], F, blockIdx.x * ROUTED_EXPERTS_WARPS
            + (threadIdx.x >> 5), gridDim.x * ROUTED_EXPERTS_WARPS, out + (size_t) pair * F);
}

// The one-wave gate/up kernel held to two blocks a multiprocessor (at most 128 registers), HELD chunks a lane.
template <int HELD>
__global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) walk_up_two_blocks(const float* __restrict__ logits,
        RoutedExpertsRouter router, const float* __restrict__ x, const __nv_bfloat16* __restrict__ input,
        int* __restrict__ ids, float* __restrict__ weights, float* __restrict__ out) {
    routed_experts_walk_gate_up<false, HELD>(logits, E, K, router, x, 1, H, input, F, ids, weights, out);
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
    int *ids, *ids2;
    float *weights, *weights2;
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
    CHECK(cudaMalloc(&ids2, (size_t) STEPS * K * 4));
    CHECK(cudaMalloc(&weights2, (size_t) STEPS * K * 4));
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
    for (int blocks : {22, 33, 44}) {
        char name[64];
        std::snprintf(name, sizeof name, "up: walk_up_bf16_12, %d blocks a pair", blocks);
        report(name, time_steps([&](int s) {
            routed_experts_walk_up_bf16_12<<<dim3(blocks, K), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                    logits + (size_t) s * E, E, K, router.scoring, bias, 1, 1, 2.5f, x + (size_t) s * H, 1, H, up, F,
                    ids2 + s * K, weights2 + s * K, activated2 + (size_t) s * K * F);
        }, replays, stream));
        same(activated, activated2, (size_t) STEPS * K * F, "  outputs against the engine's per-pair launch");
        same(reinterpret_cast<float*>(ids), reinterpret_cast<float*>(ids2), (size_t) STEPS * K, "  ids");
        same(weights, weights2, (size_t) STEPS * K, "  weights");
    }
    report("up: the same walk, 22 blocks a pair, ids given", time_steps([&](int s) {
        walk_up_ids_given<<<dim3(22, K), ROUTED_EXPERTS_THREADS, 0, stream>>>(x + (size_t) s * H, up, ids + s * K,
                activated2 + (size_t) s * K * F);
    }, replays, stream));
    for (int blocks : {44, 66}) {
        for (const auto& variant : {std::pair{12, walk_up_two_blocks<12>}, std::pair{11, walk_up_two_blocks<11>}}) {
            const int held = variant.first;
            const auto kernel = variant.second;
            char name[64];
            std::snprintf(name, sizeof name, "up: two blocks an SM, %d held, %d a pair", held, blocks);
            report(name, time_steps([&](int s) {
                kernel<<<dim3(blocks, K), ROUTED_EXPERTS_THREADS, 0, stream>>>(logits + (size_t) s * E, router,
                        x + (size_t) s * H, up, ids2 + s * K, weights2 + s * K, activated2 + (size_t) s * K * F);
            }, replays, stream));
            same(activated, activated2, (size_t) STEPS * K * F, "  outputs against the engine's per-pair launch");
        }
    }
    std::printf("%-44s %8.2f us\n", "routing alone, 132 blocks", time_steps([&](int s) {
        route_only<<<132, ROUTED_EXPERTS_THREADS, 0, stream>>>(logits + (size_t) s * E, router, ids2);
    }, replays, stream));
    report("down: route_down_add (engine)", time_steps([&](int s) {
        routed_experts_route_down_add_bf16<<<dim3((H + 7) / 8, 1), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                logits + (size_t) s * E, router.scoring, bias, 1, 1, 2.5f, activated + (size_t) s * K * F, 1, K, F,
                down, E, H, out + (size_t) s * H);
    }, replays, stream));
    report("down: down_add, ids given (engine)", time_steps([&](int s) {
        routed_experts_down_add_bf16<<<dim3((H + 7) / 8, 1), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                activated + (size_t) s * K * F, 1, K, F, down, E, H, ids + s * K, weights + s * K, out2 + (size_t) s * H);
    }, replays, stream));
    // Bit-for-bit check of the one-wave down launch against the engine's per-pair one: one launch each from zero.
    auto down_walk = [&](int outputs, const float* step_logits, const float* values, float* target) {
        routed_experts_walk_down_add_bf16_8<<<dim3((H + outputs - 1) / outputs, 1), ROUTED_EXPERTS_THREADS, 0,
                stream>>>(step_logits, router.scoring, bias, 1, 1, 2.5f, values, 1, K, F, down, E, H, outputs, target);
    };
    for (int outputs : {8, 11, 12, 16}) {
        char name[64];
        std::snprintf(name, sizeof name, "down: walk_down_add_bf16_8, %d outputs a block", outputs);
        report(name, time_steps([&](int s) {
            down_walk(outputs, logits + (size_t) s * E, activated + (size_t) s * K * F, out2 + (size_t) s * H);
        }, replays, stream));
        CHECK(cudaMemset(out, 0, (size_t) H * 4));
        CHECK(cudaMemset(out2, 0, (size_t) H * 4));
        routed_experts_route_down_add_bf16<<<dim3((H + 7) / 8, 1), ROUTED_EXPERTS_THREADS, 0, stream>>>(
                logits, router.scoring, bias, 1, 1, 2.5f, activated, 1, K, F, down, E, H, out);
        down_walk(outputs, logits, activated, out2);
        CHECK(cudaStreamSynchronize(stream));
        same(out, out2, H, "  outputs against the engine's per-pair launch");
    }
    int occupancy = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, routed_experts_walk_up_bf16_12,
            ROUTED_EXPERTS_THREADS, 0));
    std::printf("walk_up_bf16_12: %d blocks a multiprocessor\n", occupancy);
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, routed_experts_walk_down_add_bf16_8,
            ROUTED_EXPERTS_THREADS, 0));
    std::printf("walk_down_add_bf16_8: %d blocks a multiprocessor\n", occupancy);
    return 0;
}
