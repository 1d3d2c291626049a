// d2l-rs CUDA kernels, compiled at run time with NVRTC after the generated
// op-code header (see op_codes.rs; no other headers needed).
//
// Conventions
// * Every elementwise kernel takes the element count `n` (64-bit) and uses a
//   grid-stride loop with 64-bit indices; the host launches 256 threads/block.
// * Strided operands are described by `Strided` (must match the #[repr(C)]
//   struct in real.rs): element offset, rank (1..=8) and per-dimension
//   shape/stride in elements.  Linear index i is decomposed row-major over
//   `shape`.  Broadcasting is expressed with stride 0.
// * Outputs are always fresh contiguous buffers.
// * Dtype suffixes: f32 = float, f64 = double, i64 = long long, u8 = unsigned char.
//
// Op codes (UNARY_OP_*, BINARY_OP_*, CMP_OP_*, REDUCE_KIND_*, POOL_MODE_*) are
// not defined here: they are listed once in op_codes.rs, which generates the
// #defines that are compiled in front of this file.
// Unary backward codes up to UNARY_OP_LAST take the saved INPUT x; the
// UNARY_OP_*_FROM_OUTPUT codes take the saved OUTPUT y (passed as x).
// Binary ops on integers: add, sub, mul, maximum, minimum only (wrapping).

#define MAX_RANK 8

struct Strided {
    long long offset;
    int rank;
    int pad;
    long long shape[MAX_RANK];
    long long stride[MAX_RANK];
};

typedef unsigned char u8;
typedef long long i64;
typedef unsigned long long u64;

__device__ __forceinline__ i64 strided_offset(const Strided &s, i64 i) {
    if (s.rank == 1) {
        return s.offset + i * s.stride[0];
    }
    i64 off = s.offset;
    for (int d = s.rank - 1; d >= 0; --d) {
        i64 len = s.shape[d];
        i64 c = i % len;
        i /= len;
        off += c * s.stride[d];
    }
    return off;
}

#define GRID_STRIDE_LOOP(i, n)                                                   \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n);           \
         i += (i64)blockDim.x * gridDim.x)

// ---------------------------------------------------------------- math helpers
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double m_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_rsqrt(float x) { return rsqrtf(x); }
__device__ __forceinline__ double m_rsqrt(double x) { return rsqrt(x); }
__device__ __forceinline__ float m_sin(float x) { return sinf(x); }
__device__ __forceinline__ double m_sin(double x) { return sin(x); }
__device__ __forceinline__ float m_cos(float x) { return cosf(x); }
__device__ __forceinline__ double m_cos(double x) { return cos(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_erf(float x) { return erff(x); }
__device__ __forceinline__ double m_erf(double x) { return erf(x); }
__device__ __forceinline__ float m_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return fabs(x); }
__device__ __forceinline__ float m_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return pow(x, y); }

template <typename T> __device__ __forceinline__ bool is_nan(T x) { return x != x; }
template <typename T> __device__ __forceinline__ T nan_of();
template <> __device__ __forceinline__ float nan_of<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ __forceinline__ double nan_of<double>() { return __longlong_as_double(0x7ff8000000000000LL); }

template <typename T> __device__ __forceinline__ T sigmoid_of(T x) {
    if (x >= T(0)) {
        return T(1) / (T(1) + m_exp(-x));
    }
    T e = m_exp(x);
    return e / (T(1) + e);
}

template <typename T> __device__ __forceinline__ T sign_of(T x) {
    if (is_nan(x)) return x;
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

// ---------------------------------------------------------------- unary
template <typename T> __device__ __forceinline__ T unary_op(unsigned op, T x, T a, T b) {
    switch (op) {
    case UNARY_OP_NEG: return -x;
    case UNARY_OP_ABS: return m_abs(x);
    case UNARY_OP_EXP: return m_exp(x);
    case UNARY_OP_LOG: return m_log(x);
    case UNARY_OP_LOG1P: return m_log1p(x);
    case UNARY_OP_SQRT: return m_sqrt(x);
    case UNARY_OP_RSQRT: return m_rsqrt(x);
    case UNARY_OP_SIN: return m_sin(x);
    case UNARY_OP_COS: return m_cos(x);
    case UNARY_OP_TANH: return m_tanh(x);
    case UNARY_OP_SIGMOID: return sigmoid_of(x);
    case UNARY_OP_RELU: return (x > T(0) || is_nan(x)) ? x : T(0);
    case UNARY_OP_GELU: return T(0.5) * x * (T(1) + m_erf(x * T(0.70710678118654752440)));
    case UNARY_OP_SOFTPLUS: return x > T(20) ? x : m_log1p(m_exp(x));
    case UNARY_OP_LEAKY_RELU: return x > T(0) ? x : x * a;
    case UNARY_OP_CLAMP: {
        if (is_nan(x)) return x;
        T y = x < a ? a : x;
        return y > b ? b : y;
    }
    case UNARY_OP_POW_SCALAR: return m_pow(x, a);
    case UNARY_OP_ADD_SCALAR: return x + a;
    case UNARY_OP_MUL_SCALAR: return x * a;
    case UNARY_OP_SQUARE: return x * x;
    case UNARY_OP_RECIPROCAL: return T(1) / x;
    case UNARY_OP_SIGN: return sign_of(x);
    default: return nan_of<T>();
    }
}

template <typename T> __device__ __forceinline__ T unary_grad(unsigned op, T x, T g, T a, T b) {
    switch (op) {
    case UNARY_OP_NEG: return -g;
    case UNARY_OP_ABS: return g * sign_of(x);
    case UNARY_OP_EXP: return g * m_exp(x);
    case UNARY_OP_LOG: return g / x;
    case UNARY_OP_LOG1P: return g / (T(1) + x);
    case UNARY_OP_SQRT: return g / (T(2) * m_sqrt(x));
    case UNARY_OP_RSQRT: { T r = m_rsqrt(x); return g * (T(-0.5) * r * r * r); }
    case UNARY_OP_SIN: return g * m_cos(x);
    case UNARY_OP_COS: return -g * m_sin(x);
    case UNARY_OP_TANH: { T t = m_tanh(x); return g * (T(1) - t * t); }
    case UNARY_OP_SIGMOID: { T s = sigmoid_of(x); return g * s * (T(1) - s); }
    case UNARY_OP_RELU: return x > T(0) ? g : T(0);
    case UNARY_OP_GELU: {
        T cdf = T(0.5) * (T(1) + m_erf(x * T(0.70710678118654752440)));
        T pdf = m_exp(T(-0.5) * x * x) * T(0.39894228040143267794);
        return g * (cdf + x * pdf);
    }
    case UNARY_OP_SOFTPLUS: return x > T(20) ? g : g * sigmoid_of(x);
    case UNARY_OP_LEAKY_RELU: return x > T(0) ? g : g * a;
    case UNARY_OP_CLAMP: return (x >= a && x <= b) ? g : T(0);
    case UNARY_OP_POW_SCALAR: return a == T(0) ? T(0) : g * a * m_pow(x, a - T(1));
    case UNARY_OP_ADD_SCALAR: return g;
    case UNARY_OP_MUL_SCALAR: return g * a;
    case UNARY_OP_SQUARE: return g * T(2) * x;
    case UNARY_OP_RECIPROCAL: return -g / (x * x);
    case UNARY_OP_SIGN: return T(0);
    // from the saved OUTPUT y (passed in x)
    case UNARY_OP_EXP_FROM_OUTPUT: return g * x;
    case UNARY_OP_SQRT_FROM_OUTPUT: return g / (T(2) * x);
    case UNARY_OP_RSQRT_FROM_OUTPUT: return g * (T(-0.5) * x * x * x);
    case UNARY_OP_TANH_FROM_OUTPUT: return g * (T(1) - x * x);
    case UNARY_OP_SIGMOID_FROM_OUTPUT: return g * x * (T(1) - x);
    case UNARY_OP_RELU_FROM_OUTPUT: return x > T(0) ? g : T(0);
    default: return nan_of<T>();
    }
}

template <typename T>
__device__ __forceinline__ void unary_impl(unsigned op, double a, double b, const T *x,
                                           Strided xs, T *out, i64 n) {
    T ta = (T)a, tb = (T)b;
    GRID_STRIDE_LOOP(i, n) { out[i] = unary_op<T>(op, x[strided_offset(xs, i)], ta, tb); }
}

template <typename T>
__device__ __forceinline__ void unary_backward_impl(unsigned op, double a, double b,
                                                    const T *x, Strided xs, const T *g,
                                                    Strided gs, T *out, i64 n) {
    T ta = (T)a, tb = (T)b;
    GRID_STRIDE_LOOP(i, n) {
        out[i] = unary_grad<T>(op, x[strided_offset(xs, i)], g[strided_offset(gs, i)], ta, tb);
    }
}

#define DEF_UNARY(SUF, T)                                                               \
    extern "C" __global__ void d2l_unary_##SUF(unsigned op, double a, double b,          \
                                               const T *x, Strided xs, T *out, i64 n) { \
        unary_impl<T>(op, a, b, x, xs, out, n);                                          \
    }                                                                                    \
    extern "C" __global__ void d2l_unary_backward_##SUF(unsigned op, double a, double b, \
                                                        const T *x, Strided xs,          \
                                                        const T *g, Strided gs, T *out,  \
                                                        i64 n) {                         \
        unary_backward_impl<T>(op, a, b, x, xs, g, gs, out, n);                          \
    }

DEF_UNARY(f32, float)
DEF_UNARY(f64, double)

// ---------------------------------------------------------------- binary
template <typename T> __device__ __forceinline__ T max_nan(T a, T b) {
    if (is_nan(a)) return a;
    if (is_nan(b)) return b;
    return a > b ? a : b;
}
template <typename T> __device__ __forceinline__ T min_nan(T a, T b) {
    if (is_nan(a)) return a;
    if (is_nan(b)) return b;
    return a < b ? a : b;
}

template <typename T> __device__ __forceinline__ T binary_float(unsigned op, T a, T b) {
    switch (op) {
    case BINARY_OP_ADD: return a + b;
    case BINARY_OP_SUB: return a - b;
    case BINARY_OP_MUL: return a * b;
    case BINARY_OP_DIV: return a / b;
    case BINARY_OP_POW: return m_pow(a, b);
    case BINARY_OP_MAXIMUM: return max_nan(a, b);
    case BINARY_OP_MINIMUM: return min_nan(a, b);
    default: return nan_of<T>();
    }
}

// Integers: wrapping arithmetic computed in unsigned 64-bit then truncated.
template <typename T> __device__ __forceinline__ T binary_int(unsigned op, T a, T b) {
    switch (op) {
    case BINARY_OP_ADD: return (T)((u64)a + (u64)b);
    case BINARY_OP_SUB: return (T)((u64)a - (u64)b);
    case BINARY_OP_MUL: return (T)((u64)a * (u64)b);
    case BINARY_OP_MAXIMUM: return a > b ? a : b;
    case BINARY_OP_MINIMUM: return a < b ? a : b;
    default: return (T)0;
    }
}

__device__ __forceinline__ float binary_any(unsigned op, float a, float b) { return binary_float(op, a, b); }
__device__ __forceinline__ double binary_any(unsigned op, double a, double b) { return binary_float(op, a, b); }
__device__ __forceinline__ i64 binary_any(unsigned op, i64 a, i64 b) { return binary_int(op, a, b); }
__device__ __forceinline__ u8 binary_any(unsigned op, u8 a, u8 b) { return binary_int(op, a, b); }

template <typename T> __device__ __forceinline__ u8 compare_op(unsigned op, T a, T b) {
    switch (op) {
    case CMP_OP_EQ: return a == b;
    case CMP_OP_NE: return a != b;
    case CMP_OP_LT: return a < b;
    case CMP_OP_LE: return a <= b;
    case CMP_OP_GT: return a > b;
    case CMP_OP_GE: return a >= b;
    default: return 0;
    }
}

#define DEF_BINARY(SUF, T)                                                                  \
    extern "C" __global__ void d2l_binary_##SUF(unsigned op, const T *a, Strided as,         \
                                                const T *b, Strided bs, T *out, i64 n) {     \
        GRID_STRIDE_LOOP(i, n) {                                                             \
            out[i] = binary_any(op, a[strided_offset(as, i)], b[strided_offset(bs, i)]);     \
        }                                                                                    \
    }                                                                                        \
    extern "C" __global__ void d2l_compare_##SUF(unsigned op, const T *a, Strided as,        \
                                                 const T *b, Strided bs, u8 *out, i64 n) {   \
        GRID_STRIDE_LOOP(i, n) {                                                             \
            out[i] = compare_op<T>(op, a[strided_offset(as, i)], b[strided_offset(bs, i)]);  \
        }                                                                                    \
    }                                                                                        \
    extern "C" __global__ void d2l_where_##SUF(const u8 *c, Strided cs, const T *a,          \
                                               Strided as, const T *b, Strided bs, T *out,   \
                                               i64 n) {                                      \
        GRID_STRIDE_LOOP(i, n) {                                                             \
            out[i] = c[strided_offset(cs, i)] ? a[strided_offset(as, i)]                     \
                                              : b[strided_offset(bs, i)];                    \
        }                                                                                    \
    }                                                                                        \
    extern "C" __global__ void d2l_fill_##SUF(T *out, double v, i64 n) {                     \
        T tv = convert<T>(v);                                                                \
        GRID_STRIDE_LOOP(i, n) { out[i] = tv; }                                              \
    }

// ---------------------------------------------------------------- casts
// Float -> integer conversions truncate toward zero; NaN -> 0 and
// out-of-range values saturate (PTX cvt.rzi semantics) before the u8 wrap.
template <typename To> __device__ __forceinline__ To convert(float v);
template <typename To> __device__ __forceinline__ To convert(double v);
template <typename To> __device__ __forceinline__ To convert(i64 v);
template <typename To> __device__ __forceinline__ To convert(u8 v);

template <> __device__ __forceinline__ float convert<float>(float v) { return v; }
template <> __device__ __forceinline__ double convert<double>(float v) { return (double)v; }
template <> __device__ __forceinline__ i64 convert<i64>(float v) { return __float2ll_rz(v); }
template <> __device__ __forceinline__ u8 convert<u8>(float v) { return (u8)__float2ll_rz(v); }

template <> __device__ __forceinline__ float convert<float>(double v) { return (float)v; }
template <> __device__ __forceinline__ double convert<double>(double v) { return v; }
template <> __device__ __forceinline__ i64 convert<i64>(double v) { return __double2ll_rz(v); }
template <> __device__ __forceinline__ u8 convert<u8>(double v) { return (u8)__double2ll_rz(v); }

template <> __device__ __forceinline__ float convert<float>(i64 v) { return (float)v; }
template <> __device__ __forceinline__ double convert<double>(i64 v) { return (double)v; }
template <> __device__ __forceinline__ i64 convert<i64>(i64 v) { return v; }
template <> __device__ __forceinline__ u8 convert<u8>(i64 v) { return (u8)v; }

template <> __device__ __forceinline__ float convert<float>(u8 v) { return (float)v; }
template <> __device__ __forceinline__ double convert<double>(u8 v) { return (double)v; }
template <> __device__ __forceinline__ i64 convert<i64>(u8 v) { return (i64)v; }
template <> __device__ __forceinline__ u8 convert<u8>(u8 v) { return v; }

DEF_BINARY(f32, float)
DEF_BINARY(f64, double)
DEF_BINARY(i64, i64)
DEF_BINARY(u8, u8)

// cast (and, with From == To, strided copy / make-contiguous)
#define DEF_CAST(SA, A, SB, B)                                                          \
    extern "C" __global__ void d2l_cast_##SA##_##SB(const A *x, Strided xs, B *out,    \
                                                    i64 n) {                           \
        GRID_STRIDE_LOOP(i, n) { out[i] = convert<B>(x[strided_offset(xs, i)]); }      \
    }
#define DEF_CAST_FROM(SA, A)                                                            \
    DEF_CAST(SA, A, f32, float)                                                         \
    DEF_CAST(SA, A, f64, double)                                                        \
    DEF_CAST(SA, A, i64, i64)                                                           \
    DEF_CAST(SA, A, u8, u8)

DEF_CAST_FROM(f32, float)
DEF_CAST_FROM(f64, double)
DEF_CAST_FROM(i64, i64)
DEF_CAST_FROM(u8, u8)

// ---------------------------------------------------------------- axpy
#define DEF_AXPY(SUF, T)                                                                \
    extern "C" __global__ void d2l_axpy_##SUF(T *dst, const T *src, double alpha,      \
                                              i64 n) {                                  \
        T a = (T)alpha;                                                                 \
        GRID_STRIDE_LOOP(i, n) { dst[i] += a * src[i]; }                                \
    }
DEF_AXPY(f32, float)
DEF_AXPY(f64, double)

// ---------------------------------------------------------------- row reductions
// One block per row (grid-stride over rows); blockDim.x is a power of two
// between 32 and 256.  Each thread folds a strided subset of the row, then
// a shared-memory tree combines the partials (pairwise-style summation).

#define RED_THREADS 256

template <typename T> __device__ __forceinline__ T wrap_add(T a, T b) { return a + b; }
template <> __device__ __forceinline__ i64 wrap_add<i64>(i64 a, i64 b) { return (i64)((u64)a + (u64)b); }

// (value, index) combine for max (is_max) or min; NaN wins, ties -> smaller index.
template <typename T>
__device__ __forceinline__ void arg_combine(bool is_max, T &v, i64 &idx, T v2, i64 i2) {
    bool n1 = is_nan(v), n2 = is_nan(v2);
    bool take;
    if (n1 || n2) {
        take = n2 && (!n1 || i2 < idx);
    } else if (v2 == v) {
        take = i2 < idx;
    } else {
        take = is_max ? (v2 > v) : (v2 < v);
    }
    if (take) {
        v = v2;
        idx = i2;
    }
}

template <typename T>
__device__ __forceinline__ void reduce_rows_impl(unsigned kind, const T *x, i64 rows, i64 cols,
                                                 T *out, i64 *arg) {
    __shared__ T sv[RED_THREADS];
    __shared__ i64 si[RED_THREADS];
    const unsigned tid = threadIdx.x;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *row = x + r * cols;
        if (kind == REDUCE_KIND_SUM) {
            T acc = T(0);
            for (i64 c = tid; c < cols; c += blockDim.x) acc = wrap_add<T>(acc, row[c]);
            sv[tid] = acc;
            __syncthreads();
            for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
                if (tid < s) sv[tid] = wrap_add<T>(sv[tid], sv[tid + s]);
                __syncthreads();
            }
            if (tid == 0) out[r] = sv[0];
        } else {
            const bool is_max = kind == REDUCE_KIND_MAX;
            T v = T(0);
            i64 idx = -1;
            for (i64 c = tid; c < cols; c += blockDim.x) {
                if (idx < 0) {
                    v = row[c];
                    idx = c;
                } else {
                    arg_combine<T>(is_max, v, idx, row[c], c);
                }
            }
            sv[tid] = v;
            si[tid] = idx;
            __syncthreads();
            for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
                if (tid < s) {
                    i64 i2 = si[tid + s];
                    if (i2 >= 0) {
                        if (si[tid] < 0) {
                            sv[tid] = sv[tid + s];
                            si[tid] = i2;
                        } else {
                            T a = sv[tid];
                            i64 ia = si[tid];
                            arg_combine<T>(is_max, a, ia, sv[tid + s], i2);
                            sv[tid] = a;
                            si[tid] = ia;
                        }
                    }
                }
                __syncthreads();
            }
            if (tid == 0) {
                out[r] = sv[0];
                if (arg) arg[r] = si[0];
            }
        }
        __syncthreads();
    }
}

#define DEF_REDUCE(SUF, T)                                                               \
    extern "C" __global__ void d2l_reduce_rows_##SUF(unsigned kind, const T *x, i64 rows, \
                                                     i64 cols, T *out, i64 *arg) {       \
        reduce_rows_impl<T>(kind, x, rows, cols, out, arg);                              \
    }
DEF_REDUCE(f32, float)
DEF_REDUCE(f64, double)
DEF_REDUCE(i64, i64)
DEF_REDUCE(u8, u8)

// ---------------------------------------------------------------- softmax
template <typename T> __device__ __forceinline__ T block_sum(T v, T *buf) {
    const unsigned tid = threadIdx.x;
    buf[tid] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) buf[tid] += buf[tid + s];
        __syncthreads();
    }
    T r = buf[0];
    __syncthreads();
    return r;
}

template <typename T> __device__ __forceinline__ T block_max(T v, T *buf) {
    const unsigned tid = threadIdx.x;
    buf[tid] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) buf[tid] = max_nan(buf[tid], buf[tid + s]);
        __syncthreads();
    }
    T r = buf[0];
    __syncthreads();
    return r;
}

template <typename T>
__device__ __forceinline__ void softmax_rows_impl(const T *x, T *y, i64 rows, i64 cols, int log) {
    __shared__ T buf[RED_THREADS];
    const unsigned tid = threadIdx.x;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * cols;
        T *yr = y + r * cols;
        T m = -__int_as_float(0x7f800000); // -inf (converted for double below)
        for (i64 c = tid; c < cols; c += blockDim.x) m = max_nan(m, xr[c]);
        m = block_max(m, buf);
        T s = T(0);
        for (i64 c = tid; c < cols; c += blockDim.x) s += m_exp(xr[c] - m);
        s = block_sum(s, buf);
        if (log) {
            T ls = m_log(s);
            for (i64 c = tid; c < cols; c += blockDim.x) yr[c] = xr[c] - m - ls;
        } else {
            T inv = T(1) / s;
            for (i64 c = tid; c < cols; c += blockDim.x) yr[c] = m_exp(xr[c] - m) * inv;
        }
    }
}

template <typename T>
__device__ __forceinline__ void softmax_rows_backward_impl(const T *y, const T *g, T *dx,
                                                           i64 rows, i64 cols, int log) {
    __shared__ T buf[RED_THREADS];
    const unsigned tid = threadIdx.x;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *yr = y + r * cols;
        const T *gr = g + r * cols;
        T *dr = dx + r * cols;
        T s = T(0);
        if (log) {
            for (i64 c = tid; c < cols; c += blockDim.x) s += gr[c];
        } else {
            for (i64 c = tid; c < cols; c += blockDim.x) s += gr[c] * yr[c];
        }
        s = block_sum(s, buf);
        if (log) {
            for (i64 c = tid; c < cols; c += blockDim.x) dr[c] = gr[c] - m_exp(yr[c]) * s;
        } else {
            for (i64 c = tid; c < cols; c += blockDim.x) dr[c] = yr[c] * (gr[c] - s);
        }
    }
}

#define DEF_SOFTMAX(SUF, T)                                                                 \
    extern "C" __global__ void d2l_softmax_rows_##SUF(const T *x, T *y, i64 rows, i64 cols, \
                                                      int log) {                            \
        softmax_rows_impl<T>(x, y, rows, cols, log);                                        \
    }                                                                                       \
    extern "C" __global__ void d2l_softmax_rows_backward_##SUF(                             \
        const T *y, const T *g, T *dx, i64 rows, i64 cols, int log) {                       \
        softmax_rows_backward_impl<T>(y, g, dx, rows, cols, log);                           \
    }
DEF_SOFTMAX(f32, float)
DEF_SOFTMAX(f64, double)

// ---------------------------------------------------------------- conv2d helpers
// NCHW geometry of one conv2d (mirrors `ConvGeom` in real.rs).  `xbs` is the
// element stride between images of the input (c*h*w when contiguous; larger
// when the input is one channel group of a wider tensor).
struct ConvGeom {
    i64 n, c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, xbs;
};

// cols[b, (ch*kh + ki)*kw + kj, oy*ow + ox] = x[b, ch, oy*sh - pt + ki*dh, ox*sw - pl + kj*dw]
// (0 outside the image); cols is contiguous [n, c*kh*kw, oh*ow].
template <typename T>
__device__ __forceinline__ void im2col_impl(const T *x, ConvGeom g, T *cols) {
    const i64 P = g.oh * g.ow;
    const i64 K = g.c * g.kh * g.kw;
    const i64 total = g.n * K * P;
    GRID_STRIDE_LOOP(i, total) {
        i64 p = i % P;
        i64 t = i / P;
        i64 r = t % K;
        i64 b = t / K;
        i64 kj = r % g.kw;
        i64 ki = (r / g.kw) % g.kh;
        i64 ch = r / (g.kw * g.kh);
        i64 oy = p / g.ow, ox = p % g.ow;
        i64 iy = oy * g.sh - g.pt + ki * g.dh;
        i64 ix = ox * g.sw - g.pl + kj * g.dw;
        T v = T(0);
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) {
            v = x[b * g.xbs + (ch * g.h + iy) * g.w + ix];
        }
        cols[i] = v;
    }
}

// The adjoint of im2col: dx[b, ch, iy, ix] = sum of the cols entries that
// im2col read from (b, ch, iy, ix).  Gather form: deterministic, no atomics.
// dx is contiguous [n, c, h, w].
template <typename T>
__device__ __forceinline__ void col2im_impl(const T *cols, ConvGeom g, T *dx) {
    const i64 P = g.oh * g.ow;
    const i64 K = g.c * g.kh * g.kw;
    const i64 total = g.n * g.c * g.h * g.w;
    GRID_STRIDE_LOOP(i, total) {
        i64 ix = i % g.w;
        i64 t = i / g.w;
        i64 iy = t % g.h;
        t /= g.h;
        i64 ch = t % g.c;
        i64 b = t / g.c;
        T acc = T(0);
        for (i64 ki = 0; ki < g.kh; ++ki) {
            i64 ty = iy + g.pt - ki * g.dh;
            if (ty < 0 || ty % g.sh != 0) continue;
            i64 oy = ty / g.sh;
            if (oy >= g.oh) continue;
            for (i64 kj = 0; kj < g.kw; ++kj) {
                i64 tx = ix + g.pl - kj * g.dw;
                if (tx < 0 || tx % g.sw != 0) continue;
                i64 ox = tx / g.sw;
                if (ox >= g.ow) continue;
                i64 r = (ch * g.kh + ki) * g.kw + kj;
                acc += cols[(b * K + r) * P + oy * g.ow + ox];
            }
        }
        dx[i] = acc;
    }
}

#define DEF_CONV(SUF, T)                                                                   \
    extern "C" __global__ void d2l_im2col_##SUF(const T *x, ConvGeom g, T *cols) {         \
        im2col_impl<T>(x, g, cols);                                                        \
    }                                                                                      \
    extern "C" __global__ void d2l_col2im_##SUF(const T *cols, ConvGeom g, T *dx) {        \
        col2im_impl<T>(cols, g, dx);                                                       \
    }
DEF_CONV(f32, float)
DEF_CONV(f64, double)

// ---------------------------------------------------------------- fused Adam / AdamW
// Up to ADAM_MAX tensors per launch, passed by value (no pointer upload);
// blockIdx.y selects the tensor, x blocks grid-stride over its elements.
// Per element, exactly as d2l-nn's adam_update:
//   if wd != 0: decoupled ? p *= 1 - lr*wd : g += wd*p
//   m += (1-beta1)*(g-m);  v = beta2*v + (1-beta2)*g*g
//   s = amsgrad ? (vmax = max(vmax, v)) : v
//   p -= (lr/bc1) * m / (sqrt(s)/sqrt(bc2) + eps)
#define ADAM_MAX 16
struct AdamList {
    u64 param[ADAM_MAX];
    u64 grad[ADAM_MAX];
    u64 m[ADAM_MAX];
    u64 v[ADAM_MAX];
    u64 vmax[ADAM_MAX];
    i64 n[ADAM_MAX];
    int count;
    int pad;
};
struct AdamHyper {
    double lr, beta1, beta2, eps, wd, bc1, bc2_sqrt;
    int decoupled;
    int amsgrad;
};

template <typename T> __device__ __forceinline__ void adam_impl(AdamList l, AdamHyper h) {
    const int j = blockIdx.y;
    if (j >= l.count) return;
    T *p = (T *)l.param[j];
    const T *gr = (const T *)l.grad[j];
    T *m = (T *)l.m[j];
    T *v = (T *)l.v[j];
    T *vmax = (T *)l.vmax[j];
    const i64 n = l.n[j];
    // Scalars are combined in double and rounded once, like the CPU path's
    // f64 scalar arguments.
    const T decay = (T)(1.0 - h.lr * h.wd), wd = (T)h.wd;
    const T w1 = (T)(1.0 - h.beta1), b2 = (T)h.beta2, w2 = (T)(1.0 - h.beta2);
    const T eps = (T)h.eps, step_size = (T)(h.lr / h.bc1), bc2s = (T)h.bc2_sqrt;
    GRID_STRIDE_LOOP(i, n) {
        T pi = p[i];
        T g = gr[i];
        if (h.wd != 0.0) {
            if (h.decoupled) pi = pi * decay;
            else g = g + wd * pi;
        }
        T mi = m[i] + w1 * (g - m[i]);
        T vi = v[i] * b2 + w2 * (g * g);
        T s = vi;
        if (h.amsgrad) {
            s = max_nan(vmax[i], vi);
            vmax[i] = s;
        }
        T denom = m_sqrt(s) / bc2s + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" __global__ void d2l_adam_f32(AdamList l, AdamHyper h) { adam_impl<float>(l, h); }
extern "C" __global__ void d2l_adam_f64(AdamList l, AdamHyper h) { adam_impl<double>(l, h); }

// ---------------------------------------------------------------- pooling
// Input and output are contiguous [planes, H, W] / [planes, OH, OW].  The
// windows of each axis are computed from a rule (mirrors `PoolAxisK` in
// real.rs; the host checks that the rule reproduces the CPU geometry):
//   mode 0 (max):  raw = i*s - p; end = min(raw + (k-1)*d + 1, len);
//                  start = first raw + t*d >= 0; count 1
//   mode 1 (avg):  pad_end = min(raw + k, len + p); start = max(raw, 0);
//                  end = min(pad_end, len); count = cip ? pad_end - raw
//                  : end - start (at least 1)
//   mode 2 (adaptive): start = floor(i*len/n), end = ceil((i+1)*len/n),
//                  count = end - start
// An empty window has end == start.  Positions step by d inside a window.
// The backwards are gathers (one thread per input element, deterministic,
// no atomics): each input position visits the output windows that can
// contain it along each axis, in the row-major output order the CPU uses.
struct PoolAxis {
    i64 mode, len, n, k, s, p, d, cip;
};
struct PoolGeom {
    i64 planes;
    PoolAxis r, c;
};

__device__ __forceinline__ void pool_win(const PoolAxis &a, i64 i, i64 &st, i64 &en, i64 &cnt) {
    if (a.mode == POOL_MODE_ADAPTIVE) {
        st = i * a.len / a.n;
        en = ((i + 1) * a.len + a.n - 1) / a.n;
        cnt = en - st;
        return;
    }
    i64 raw = i * a.s - a.p;
    if (a.mode == POOL_MODE_MAX) {
        i64 e = raw + (a.k - 1) * a.d + 1;
        if (e > a.len) e = a.len;
        st = raw < 0 ? raw + ((-raw + a.d - 1) / a.d) * a.d : raw;
        en = e > st ? e : st;
        cnt = 1;
        return;
    }
    i64 pad_end = raw + a.k;
    if (pad_end > a.len + a.p) pad_end = a.len + a.p;
    st = raw > 0 ? raw : 0;
    i64 e = pad_end < a.len ? pad_end : a.len;
    cnt = a.cip ? pad_end - raw : e - st;
    if (cnt < 1) cnt = 1;
    en = e > st ? e : st;
}

// The outputs [lo, hi] whose window may contain input position i (a superset:
// callers check membership).
__device__ __forceinline__ void pool_candidates(const PoolAxis &a, i64 i, i64 &lo, i64 &hi) {
    if (a.mode == POOL_MODE_ADAPTIVE) {
        lo = i * a.n / a.len;
        hi = ((i + 1) * a.n + a.len - 1) / a.len - 1;
    } else {
        i64 ext = (a.k - 1) * a.d + 1;
        i64 t = i + a.p - ext + 1;
        lo = t <= 0 ? 0 : (t + a.s - 1) / a.s;
        hi = (i + a.p) / a.s;
    }
    if (lo < 0) lo = 0;
    if (hi > a.n - 1) hi = a.n - 1;
}

template <typename T> __device__ __forceinline__ T neg_inf_of();
template <> __device__ __forceinline__ float neg_inf_of<float>() { return -__int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double neg_inf_of<double>() { return -__longlong_as_double(0x7ff0000000000000LL); }

// Max: running maximum replaced when strictly greater or NaN (so NaN
// propagates and the last NaN's index wins); ties keep the first.  The index
// is h*W + w within the plane: the window's first position if nothing
// replaced -inf, -1 for an empty window.
template <typename T>
__device__ __forceinline__ void max_pool_fwd_impl(const T *x, PoolGeom g, T *out, i64 *idx) {
    const i64 oh = g.r.n, ow = g.c.n, W = g.c.len;
    const i64 total = g.planes * oh * ow, pin = g.r.len * W;
    GRID_STRIDE_LOOP(i, total) {
        i64 oc = i % ow, t = i / ow;
        i64 orow = t % oh, p = t / oh;
        i64 rs, re, rc, cs, ce, cc;
        pool_win(g.r, orow, rs, re, rc);
        pool_win(g.c, oc, cs, ce, cc);
        const T *xp = x + p * pin;
        T best = neg_inf_of<T>();
        i64 bi = (rs < re && cs < ce) ? rs * W + cs : -1;
        for (i64 h = rs; h < re; h += g.r.d) {
            for (i64 w = cs; w < ce; w += g.c.d) {
                T v = xp[h * W + w];
                if (v > best || is_nan(v)) {
                    best = v;
                    bi = h * W + w;
                }
            }
        }
        out[i] = best;
        if (idx) idx[i] = bi;
    }
}

// gin[p, h, w] = sum of gout[p, o] over the outputs o whose index is h*W + w.
template <typename T>
__device__ __forceinline__ void max_pool_bwd_impl(const T *gout, const i64 *idx, PoolGeom g,
                                                  T *gin) {
    const i64 H = g.r.len, W = g.c.len, oh = g.r.n, ow = g.c.n;
    const i64 total = g.planes * H * W;
    GRID_STRIDE_LOOP(i, total) {
        i64 w = i % W, t = i / W;
        i64 h = t % H, p = t / H;
        i64 pos = h * W + w;
        i64 r0, r1, c0, c1;
        pool_candidates(g.r, h, r0, r1);
        pool_candidates(g.c, w, c0, c1);
        const T *gp = gout + p * oh * ow;
        const i64 *ip = idx + p * oh * ow;
        T acc = T(0);
        for (i64 a = r0; a <= r1; ++a) {
            for (i64 b = c0; b <= c1; ++b) {
                if (ip[a * ow + b] == pos) acc += gp[a * ow + b];
            }
        }
        gin[i] = acc;
    }
}

// Average: the window's sum (accumulated in double) over count_r * count_c.
template <typename T>
__device__ __forceinline__ void avg_pool_fwd_impl(const T *x, PoolGeom g, T *out) {
    const i64 oh = g.r.n, ow = g.c.n, W = g.c.len;
    const i64 total = g.planes * oh * ow, pin = g.r.len * W;
    GRID_STRIDE_LOOP(i, total) {
        i64 oc = i % ow, t = i / ow;
        i64 orow = t % oh, p = t / oh;
        i64 rs, re, rc, cs, ce, cc;
        pool_win(g.r, orow, rs, re, rc);
        pool_win(g.c, oc, cs, ce, cc);
        const T *xp = x + p * pin;
        double s = 0.0;
        for (i64 h = rs; h < re; ++h) {
            for (i64 w = cs; w < ce; ++w) s += (double)xp[h * W + w];
        }
        out[i] = (T)(s / (double)(rc * cc));
    }
}

// gin[p, h, w] = sum over the windows holding (h, w) of gout / (count_r * count_c),
// in the element type and in row-major output order (as the CPU adds them).
template <typename T>
__device__ __forceinline__ void avg_pool_bwd_impl(const T *gout, PoolGeom g, T *gin) {
    const i64 H = g.r.len, W = g.c.len, oh = g.r.n, ow = g.c.n;
    const i64 total = g.planes * H * W;
    GRID_STRIDE_LOOP(i, total) {
        i64 w = i % W, t = i / W;
        i64 h = t % H, p = t / H;
        i64 r0, r1, c0, c1;
        pool_candidates(g.r, h, r0, r1);
        pool_candidates(g.c, w, c0, c1);
        const T *gp = gout + p * oh * ow;
        T acc = T(0);
        for (i64 a = r0; a <= r1; ++a) {
            i64 rs, re, rc;
            pool_win(g.r, a, rs, re, rc);
            if (h < rs || h >= re) continue;
            for (i64 b = c0; b <= c1; ++b) {
                i64 cs, ce, cc;
                pool_win(g.c, b, cs, ce, cc);
                if (w < cs || w >= ce) continue;
                acc += gp[a * ow + b] / (T)(rc * cc);
            }
        }
        gin[i] = acc;
    }
}

#define DEF_POOL(SUF, T)                                                                    \
    extern "C" __global__ void d2l_max_pool_fwd_##SUF(const T *x, PoolGeom g, T *out,        \
                                                      i64 *idx) {                           \
        max_pool_fwd_impl<T>(x, g, out, idx);                                               \
    }                                                                                       \
    extern "C" __global__ void d2l_max_pool_bwd_##SUF(const T *gout, const i64 *idx,         \
                                                      PoolGeom g, T *gin) {                 \
        max_pool_bwd_impl<T>(gout, idx, g, gin);                                            \
    }                                                                                       \
    extern "C" __global__ void d2l_avg_pool_fwd_##SUF(const T *x, PoolGeom g, T *out) {      \
        avg_pool_fwd_impl<T>(x, g, out);                                                    \
    }                                                                                       \
    extern "C" __global__ void d2l_avg_pool_bwd_##SUF(const T *gout, PoolGeom g, T *gin) {   \
        avg_pool_bwd_impl<T>(gout, g, gin);                                                 \
    }
DEF_POOL(f32, float)
DEF_POOL(f64, double)

// ---------------------------------------------------------------- batch / group norm
// x is contiguous [N, C, HW]; a run is one HW row (id n*C + c); a unit is the
// set of runs sharing statistics: channel c (groups == 0, batch norm, runs
// (0, c) .. (N-1, c)) or (n, g) (group norm with `groups` groups, the
// C/groups adjacent runs of sample n).  Mirrors `NormGeomK` in real.rs.
// Statistics live in one double buffer: [mean(units), var(units), istd(units)].
struct NormGeom {
    i64 n, c, hw, groups;
};

__device__ __forceinline__ i64 norm_units(const NormGeom &g) {
    return g.groups == 0 ? g.c : g.n * g.groups;
}
__device__ __forceinline__ i64 norm_runs(const NormGeom &g) {
    return g.groups == 0 ? g.n : g.c / g.groups;
}
// The run id of the k-th run of unit u.
__device__ __forceinline__ i64 norm_run(const NormGeom &g, i64 u, i64 k) {
    if (g.groups == 0) return k * g.c + u;
    i64 n = u / g.groups, gi = u % g.groups;
    return n * g.c + gi * (g.c / g.groups) + k;
}
// The unit of run id `id`.
__device__ __forceinline__ i64 norm_unit_of(const NormGeom &g, i64 id) {
    i64 c = id % g.c;
    if (g.groups == 0) return c;
    return (id / g.c) * g.groups + c / (g.c / g.groups);
}

// One block per unit (grid-stride): mean, then the biased variance from the
// deviations, both accumulated in double with a shared-memory tree.
template <typename T>
__device__ __forceinline__ void norm_stats_impl(const T *x, NormGeom g, double eps, double *stats) {
    __shared__ double buf[RED_THREADS];
    const unsigned tid = threadIdx.x;
    const i64 units = norm_units(g), runs = norm_runs(g), m = runs * g.hw;
    for (i64 u = blockIdx.x; u < units; u += gridDim.x) {
        double s = 0.0;
        for (i64 j = tid; j < m; j += blockDim.x) {
            s += (double)x[norm_run(g, u, j / g.hw) * g.hw + j % g.hw];
        }
        s = block_sum<double>(s, buf);
        const double mean = s / (double)m;
        double q = 0.0;
        for (i64 j = tid; j < m; j += blockDim.x) {
            double dv = (double)x[norm_run(g, u, j / g.hw) * g.hw + j % g.hw] - mean;
            q += dv * dv;
        }
        q = block_sum<double>(q, buf);
        if (tid == 0) {
            double var = q / (double)m;
            if (var < 0.0) var = 0.0;
            stats[u] = mean;
            stats[units + u] = var;
            stats[2 * units + u] = 1.0 / sqrt(var + eps);
        }
    }
}

// y = x*a + b with a = gamma[c]*istd and b = beta[c] - mean*a (rounded to T,
// as the CPU kernel does); gamma/beta may be null (1 and 0).
template <typename T>
__device__ __forceinline__ void norm_apply_impl(const T *x, NormGeom g, const double *stats,
                                                const T *gamma, const T *beta, T *y) {
    const i64 units = norm_units(g), total = g.n * g.c * g.hw;
    GRID_STRIDE_LOOP(i, total) {
        i64 id = i / g.hw, c = id % g.c, u = norm_unit_of(g, id);
        double gm = gamma ? (double)gamma[c] : 1.0;
        double bt = beta ? (double)beta[c] : 0.0;
        double scale = gm * stats[2 * units + u];
        T a = (T)scale, b = (T)(bt - stats[u] * scale);
        y[i] = x[i] * a + b;
    }
}

// Per run: s_dy = sum dy, s_dyxh = istd * sum dy*(x - mean), in double; one
// block per run (grid-stride).
template <typename T>
__device__ __forceinline__ void norm_bwd_runs_impl(const T *x, const T *dy, NormGeom g,
                                                   const double *stats, double *s_dy,
                                                   double *s_dyxh) {
    __shared__ double buf[RED_THREADS];
    const unsigned tid = threadIdx.x;
    const i64 units = norm_units(g), nruns = g.n * g.c;
    for (i64 id = blockIdx.x; id < nruns; id += gridDim.x) {
        const i64 u = norm_unit_of(g, id);
        const double mean = stats[u];
        const T *xr = x + id * g.hw;
        const T *gr = dy + id * g.hw;
        double a = 0.0, b = 0.0;
        for (i64 j = tid; j < g.hw; j += blockDim.x) {
            double gv = (double)gr[j];
            a += gv;
            b += gv * ((double)xr[j] - mean);
        }
        a = block_sum<double>(a, buf);
        b = block_sum<double>(b, buf);
        if (tid == 0) {
            s_dy[id] = a;
            s_dyxh[id] = b * stats[2 * units + u];
        }
    }
}

// Index i < units: coef[2u] = sum_k gamma[c_k]*s_dy[run_k] / m and
// coef[2u+1] = the same of s_dyxh.  Index units + c: the weight and bias
// gradients of channel c (sums over n), each written when its pointer is set.
template <typename T>
__device__ __forceinline__ void norm_bwd_coef_impl(NormGeom g, const T *gamma, const double *s_dy,
                                                   const double *s_dyxh, double *coef, T *dgamma,
                                                   T *dbeta) {
    const i64 units = norm_units(g), runs = norm_runs(g);
    const double m = (double)(runs * g.hw);
    GRID_STRIDE_LOOP(i, units + g.c) {
        if (i < units) {
            double sa = 0.0, sb = 0.0;
            for (i64 k = 0; k < runs; ++k) {
                i64 id = norm_run(g, i, k);
                double gm = gamma ? (double)gamma[id % g.c] : 1.0;
                sa += gm * s_dy[id];
                sb += gm * s_dyxh[id];
            }
            coef[2 * i] = sa / m;
            coef[2 * i + 1] = sb / m;
        } else {
            i64 c = i - units;
            double a = 0.0, b = 0.0;
            for (i64 n = 0; n < g.n; ++n) {
                a += s_dy[n * g.c + c];
                b += s_dyxh[n * g.c + c];
            }
            if (dbeta) dbeta[c] = (T)a;
            if (dgamma) dgamma[c] = (T)b;
        }
    }
}

// dx = k1*dy - kb*(x - mean) - ka with k1 = istd*gamma[c], kb = istd^2*mb,
// ka = istd*ma (through the statistics), or k1*dy alone; all rounded to T.
template <typename T>
__device__ __forceinline__ void norm_bwd_dx_impl(const T *x, const T *dy, NormGeom g,
                                                 const double *stats, const double *coef,
                                                 const T *gamma, int through, T *dx) {
    const i64 units = norm_units(g), total = g.n * g.c * g.hw;
    GRID_STRIDE_LOOP(i, total) {
        i64 id = i / g.hw, c = id % g.c, u = norm_unit_of(g, id);
        double istd = stats[2 * units + u];
        T k1 = (T)(istd * (gamma ? (double)gamma[c] : 1.0));
        if (through) {
            T kb = (T)(istd * istd * coef[2 * u + 1]);
            T ka = (T)(istd * coef[2 * u]);
            T mt = (T)stats[u];
            dx[i] = k1 * dy[i] - kb * (x[i] - mt) - ka;
        } else {
            dx[i] = k1 * dy[i];
        }
    }
}

#define DEF_NORM(SUF, T)                                                                     \
    extern "C" __global__ void d2l_norm_stats_##SUF(const T *x, NormGeom g, double eps,       \
                                                    double *stats) {                         \
        norm_stats_impl<T>(x, g, eps, stats);                                                \
    }                                                                                        \
    extern "C" __global__ void d2l_norm_apply_##SUF(const T *x, NormGeom g,                  \
                                                    const double *stats, const T *gamma,     \
                                                    const T *beta, T *y) {                   \
        norm_apply_impl<T>(x, g, stats, gamma, beta, y);                                     \
    }                                                                                        \
    extern "C" __global__ void d2l_norm_bwd_runs_##SUF(const T *x, const T *dy, NormGeom g,   \
                                                       const double *stats, double *s_dy,    \
                                                       double *s_dyxh) {                     \
        norm_bwd_runs_impl<T>(x, dy, g, stats, s_dy, s_dyxh);                                \
    }                                                                                        \
    extern "C" __global__ void d2l_norm_bwd_coef_##SUF(NormGeom g, const T *gamma,            \
                                                       const double *s_dy,                   \
                                                       const double *s_dyxh, double *coef,   \
                                                       T *dgamma, T *dbeta) {                \
        norm_bwd_coef_impl<T>(g, gamma, s_dy, s_dyxh, coef, dgamma, dbeta);                  \
    }                                                                                        \
    extern "C" __global__ void d2l_norm_bwd_dx_##SUF(const T *x, const T *dy, NormGeom g,     \
                                                     const double *stats, const double *coef, \
                                                     const T *gamma, int through, T *dx) {   \
        norm_bwd_dx_impl<T>(x, dy, g, stats, coef, gamma, through, dx);                      \
    }
DEF_NORM(f32, float)
DEF_NORM(f64, double)
