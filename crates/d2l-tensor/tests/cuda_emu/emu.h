// Host emulation of the CUDA subset kernels.cu uses: blocks run one after the
// other, the threads of a block are std::threads meeting at a std::barrier.
#include <cmath>
#include <cstring>
#include <cstdint>
#include <thread>
#include <barrier>
#include <vector>
#include <functional>
#include <memory>
struct dim3e { unsigned x = 0, y = 0, z = 0; };
thread_local dim3e threadIdx, blockIdx;
dim3e blockDim, gridDim;
std::barrier<> *g_bar = nullptr;
inline void __syncthreads() { g_bar->arrive_and_wait(); }
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double f; std::memcpy(&f, &i, 8); return f; }
inline long long __float2ll_rz(float v) { if (v != v) return 0; if (v >= 9.2233720368547758e18f) return INT64_MAX; if (v <= -9.2233720368547758e18f) return INT64_MIN; return (long long)v; }
inline long long __double2ll_rz(double v) { if (v != v) return 0; if (v >= 9.2233720368547758e18) return INT64_MAX; if (v <= -9.2233720368547758e18) return INT64_MIN; return (long long)v; }
using std::exp; using std::log; using std::log1p; using std::sqrt; using std::sin; using std::cos; using std::tanh; using std::erf; using std::fabs; using std::pow;
template <class F> void launch(unsigned gx, unsigned gy, unsigned bx, F f) {
    blockDim = {bx, 1, 1}; gridDim = {gx, gy, 1};
    for (unsigned by = 0; by < gy; ++by)
    for (unsigned b = 0; b < gx; ++b) {
        std::barrier<> bar(bx); g_bar = &bar;
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < bx; ++t) ts.emplace_back([=] { threadIdx = {t, 0, 0}; blockIdx = {b, by, 0}; f(); });
        for (auto &t : ts) t.join();
    }
}
