// The model of a batch-1 step's chain of Mamba layers that tools/bench/tagged_chain.cu and
// tools/bench/fused_chain.cu run (decode_chain.cu's shapes: the 300M hybrid's widths, 24 layers):
// its sizes, its random bf16 weights, and the chain in double precision on the host, which both
// check their output against. Each layer, on the residual h:
//   p = W_in · (h / rms(h))                      (z, x, B, C, dt)
//   s = s · exp(-softplus(dt) · 0.1 (head + 1)) + softplus(dt) · B · x;  y = s · C + x   (per head and row)
//   v = y · silu(z);  h += W_out · (v / rms(v))
//   h += W_down · (silu(W_gate · (h / rms(h))) · W_up · (h / rms(h)))
#ifndef COIL_BENCH_MAMBA_CHAIN_CUH
#define COIL_BENCH_MAMBA_CHAIN_CUH

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>
#include <vector>

constexpr int HIDDEN = 768, INNER = 1536, HEADS = 24, HEAD_DIM = 64, STATE = 128, FFN = 2048;
constexpr int PROJECTED = 2 * INNER + 2 * STATE + HEADS;  // z, x, B, C, dt: 3352
constexpr int Z_AT = 0, X_AT = INNER, B_AT = 2 * INNER, C_AT = 2 * INNER + STATE, DT_AT = 2 * INNER + 2 * STATE;
constexpr int LAYERS = 24;
// Both chains' blocks: 256 threads.
constexpr int THREADS = 256, WARPS = THREADS / 32;
constexpr float EPS = 1e-5f;

// Device pieces both chains use.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float silu(float v) { return v / (1.0f + __expf(-v)); }

__device__ __forceinline__ unsigned long long global_time() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// The sum of every thread's value over the block (partial: WARPS floats of shared scratch, free
// again only after the block's next barrier).
__device__ __forceinline__ float block_sum(float value, float* partial) {
    value = warp_sum(value);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = value;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < WARPS; w++) total += partial[w];
    return total;
}

// Eight bf16 weights (one 16-byte load) dotted with x[0..8), added to sum.
__device__ __forceinline__ float dot8(uint4 q, const float* x, float sum) {
    const float4 x0 = *reinterpret_cast<const float4*>(x);
    const float4 x1 = *reinterpret_cast<const float4*>(x + 4);
    sum = fmaf(__uint_as_float(q.x << 16), x0.x, sum);
    sum = fmaf(__uint_as_float(q.x & 0xffff0000u), x0.y, sum);
    sum = fmaf(__uint_as_float(q.y << 16), x0.z, sum);
    sum = fmaf(__uint_as_float(q.y & 0xffff0000u), x0.w, sum);
    sum = fmaf(__uint_as_float(q.z << 16), x1.x, sum);
    sum = fmaf(__uint_as_float(q.z & 0xffff0000u), x1.y, sum);
    sum = fmaf(__uint_as_float(q.w << 16), x1.z, sum);
    return fmaf(__uint_as_float(q.w & 0xffff0000u), x1.w, sum);
}

// One (head, row) item's state update by a warp, lane l holding states l + 32 j of the row:
// writes the new row and returns y = s · C + x (over the warp). bc: B then C (2 · STATE floats).
__device__ __forceinline__ float update_state_row(const float (&before)[STATE / 32], float decay, float dt, float x,
        const float* bc, float* row, int lane) {
    float y = 0.0f;
#pragma unroll
    for (int j = 0; j < STATE / 32; j++) {
        const int n = lane + 32 * j;
        const float s = before[j] * decay + dt * bc[n] * x;
        row[n] = s;
        y = fmaf(s, bc[STATE + n], y);
    }
    return warp_sum(y) + x;
}

__global__ void fill_bf16(unsigned short* out, size_t count, unsigned int seed, float scale) {
    for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < count; i += (size_t) gridDim.x * blockDim.x) {
        unsigned int h = (unsigned int) i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        const float u = (h & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
        out[i] = (unsigned short) (__float_as_uint(u * scale) >> 16);
    }
}

static double bf16_value(unsigned short bits) {
    const unsigned int word = (unsigned int) bits << 16;
    float f;
    std::memcpy(&f, &word, 4);
    return f;
}

// The chain in double precision on the host, from zero states.
static std::vector<double> reference(const std::vector<std::vector<unsigned short>>& weights, const std::vector<float>& input) {
    std::vector<double> h(input.begin(), input.end());
    std::vector<double> state((size_t) LAYERS * HEADS * HEAD_DIM * STATE, 0.0);
    auto product = [](const std::vector<unsigned short>& w, int row, int k, const std::vector<double>& x, double scale) {
        double sum = 0.0;
        for (int i = 0; i < k; i++) sum += bf16_value(w[(size_t) row * k + i]) * x[i];
        return sum * scale;
    };
    auto inverse_rms = [](const std::vector<double>& v) {
        double s = 0.0;
        for (double x : v) s += x * x;
        return 1.0 / std::sqrt(s / v.size() + EPS);
    };
    for (int l = 0; l < LAYERS; l++) {
        const auto& in_proj = weights[l * 4];
        const auto& out_proj = weights[l * 4 + 1];
        const auto& gate_up = weights[l * 4 + 2];
        const auto& down = weights[l * 4 + 3];
        double inverse = inverse_rms(h);
        std::vector<double> p(PROJECTED);
        for (int r = 0; r < PROJECTED; r++) p[r] = product(in_proj, r, HIDDEN, h, inverse);
        std::vector<double> v(INNER);
        for (int item = 0; item < HEADS * HEAD_DIM; item++) {
            const int head = item / HEAD_DIM;
            const double dt = std::log1p(std::exp(p[DT_AT + head]));
            const double decay = std::exp(-dt * 0.1 * (head + 1));
            const double x = p[X_AT + item];
            double y = x;
            for (int n = 0; n < STATE; n++) {
                double& s = state[((size_t) l * HEADS * HEAD_DIM + item) * STATE + n];
                s = s * decay + dt * p[B_AT + n] * x;
                y += s * p[C_AT + n];
            }
            const double z = p[Z_AT + item];
            v[item] = y * z / (1.0 + std::exp(-z));
        }
        inverse = inverse_rms(v);
        for (int r = 0; r < HIDDEN; r++) h[r] += product(out_proj, r, INNER, v, inverse);
        inverse = inverse_rms(h);
        std::vector<double> hidden(FFN);
        for (int u = 0; u < FFN; u++) {
            const double gate = product(gate_up, u, HIDDEN, h, inverse);
            const double up = product(gate_up, FFN + u, HIDDEN, h, inverse);
            hidden[u] = gate / (1.0 + std::exp(-gate)) * up;
        }
        for (int r = 0; r < HIDDEN; r++) h[r] += product(down, r, FFN, hidden, 1.0);
    }
    return h;
}

// The chain's output on the device (HIDDEN floats) against the reference: "largest difference D
// of the largest value V (ok)", or WRONG past a thousandth of V.
static void print_difference(const float* output, const std::vector<double>& expected, const char* name) {
    std::vector<float> got(HIDDEN);
    if (cudaMemcpy(got.data(), output, HIDDEN * 4, cudaMemcpyDeviceToHost) != cudaSuccess) std::abort();
    double worst = 0.0, scale = 0.0;
    for (int i = 0; i < HIDDEN; i++) {
        worst = std::fmax(worst, std::fabs(got[i] - expected[i]));
        scale = std::fmax(scale, std::fabs(expected[i]));
    }
    std::printf("%s: largest difference from the double reference %.3g of the largest value %.3g (%s)\n", name, worst,
            scale, worst <= 1e-3 * scale ? "ok" : "WRONG");
}

// Layer l's matrix m (0 in_proj, 1 out_proj, 2 gate and up (gate rows, then up rows), 3 down),
// row-major (rows, columns), on the device; its values also into host.
static const int MATRIX_SHAPES[4][2] = {{PROJECTED, HIDDEN}, {HIDDEN, INNER}, {2 * FFN, HIDDEN}, {HIDDEN, FFN}};

static unsigned short* random_matrix(int layer, int matrix, std::vector<unsigned short>& host) {
    const size_t count = (size_t) MATRIX_SHAPES[matrix][0] * MATRIX_SHAPES[matrix][1];
    unsigned short* weights;
    if (cudaMalloc(&weights, count * 2) != cudaSuccess) std::abort();
    fill_bf16<<<1024, 256>>>(weights, count, 977u * (layer * 4 + matrix) + 13u,
            1.7f / std::sqrt((float) MATRIX_SHAPES[matrix][1]));
    host.resize(count);
    if (cudaMemcpy(host.data(), weights, count * 2, cudaMemcpyDeviceToHost) != cudaSuccess) std::abort();
    return weights;
}

#endif
