// Checks of the CUDA kernels (src/cuda/kernels.cu) on the host: the kernels compile as
// C++ with emu.h standing in for the CUDA built-ins (blocks one after another, a block's
// threads as std::threads meeting at a barrier) and are compared with reference code.
// Built and run by tests/cuda_emu.rs.
#include "emu.h"
#include KERNELS_CU
#include <cstdio>
#include <cassert>
#include <random>
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { fails++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)
Strided contig(std::vector<long long> shape, long long off = 0) {
    Strided s{}; s.offset = off; s.rank = shape.size(); long long st = 1;
    for (int d = shape.size() - 1; d >= 0; --d) { s.shape[d] = shape[d]; s.stride[d] = st; st *= shape[d]; }
    return s;
}
int main() {
    std::mt19937 rng(1);
    std::normal_distribution<double> nd;
    // strided copy of a transpose: x [3,4] -> xt [4,3]
    {
        std::vector<float> x(12); for (int i = 0; i < 12; ++i) x[i] = i;
        Strided s{}; s.offset = 0; s.rank = 2; s.shape[0] = 4; s.shape[1] = 3; s.stride[0] = 1; s.stride[1] = 4;
        std::vector<double> out(12);
        launch(2, 1, 8, [&] { d2l_cast_f32_f64(x.data(), s, out.data(), 12); });
        for (int i = 0; i < 4; ++i) for (int j = 0; j < 3; ++j) CHECK(out[i*3+j] == x[j*4+i], "transpose %d %d", i, j);
    }
    // unary grads vs finite differences (f64)
    {
        // every unary op but SIGN (its gradient is 0 where it is defined)
        unsigned ops[UNARY_OP_SIGN];
        for (unsigned i = 0; i < UNARY_OP_SIGN; ++i) ops[i] = i;
        double a = 0.3, b = 0.9;
        for (unsigned op : ops) {
            for (double x0 : {0.37, 1.7, 25.0, -0.6}) {
                double x = x0;
                if ((op == UNARY_OP_LOG || op == UNARY_OP_SQRT || op == UNARY_OP_RSQRT || op == UNARY_OP_POW_SCALAR) && x <= 0) continue;
                if (op == UNARY_OP_CLAMP && (x == 25.0)) continue;
                double aa = op == UNARY_OP_POW_SCALAR ? 2.5 : a, bb = b;
                double h = 1e-6, xp = x + h, xm = x - h, yp, ym, g = 1.0, gr;
                Strided s1 = contig({1});
                launch(1,1,1,[&]{ d2l_unary_f64(op, aa, bb, &xp, s1, &yp, 1); });
                launch(1,1,1,[&]{ d2l_unary_f64(op, aa, bb, &xm, s1, &ym, 1); });
                launch(1,1,1,[&]{ d2l_unary_backward_f64(op, aa, bb, &x, s1, &g, s1, &gr, 1); });
                double fd = (yp - ym) / (2*h);
                CHECK(std::fabs(fd - gr) <= 1e-5 * (1 + std::fabs(fd)), "unary grad op %u x %g: fd %g analytic %g", op, x, fd, gr);
                // from-output variants
                unsigned from_out[][2] = {{UNARY_OP_EXP, UNARY_OP_EXP_FROM_OUTPUT}, {UNARY_OP_SQRT, UNARY_OP_SQRT_FROM_OUTPUT},
                    {UNARY_OP_RSQRT, UNARY_OP_RSQRT_FROM_OUTPUT}, {UNARY_OP_TANH, UNARY_OP_TANH_FROM_OUTPUT},
                    {UNARY_OP_SIGMOID, UNARY_OP_SIGMOID_FROM_OUTPUT}, {UNARY_OP_RELU, UNARY_OP_RELU_FROM_OUTPUT}};
                for (auto &fo : from_out) if (fo[0] == op) {
                    double y, g2;
                    launch(1,1,1,[&]{ d2l_unary_f64(op, aa, bb, &x, s1, &y, 1); });
                    launch(1,1,1,[&]{ d2l_unary_backward_f64(fo[1], aa, bb, &y, s1, &g, s1, &g2, 1); });
                    CHECK(std::fabs(g2 - gr) <= 1e-9 * (1 + std::fabs(gr)), "from-output op %u: %g vs %g", fo[1], g2, gr);
                }
            }
        }
        // softplus threshold and gelu value
        double x = 30, y; Strided s1 = contig({1});
        launch(1,1,1,[&]{ d2l_unary_f64(UNARY_OP_SOFTPLUS, 0, 0, &x, s1, &y, 1); }); CHECK(y == 30, "softplus");
        x = 1.0; launch(1,1,1,[&]{ d2l_unary_f64(UNARY_OP_GELU, 0, 0, &x, s1, &y, 1); }); CHECK(std::fabs(y - 0.8413447460685429) < 1e-12, "gelu %g", y);
        x = NAN; launch(1,1,1,[&]{ d2l_unary_f64(UNARY_OP_RELU, 0, 0, &x, s1, &y, 1); }); CHECK(y != y, "relu nan");
    }
    // broadcast binary: a [2,3] + b [3] (stride 0 on dim 0)
    {
        std::vector<long long> A = {1,2,3,4,5,6}, B = {10,20,30}, O(6);
        Strided as = contig({2,3}); Strided bs = contig({2,3}); bs.stride[0] = 0;
        launch(1,1,4,[&]{ d2l_binary_i64(BINARY_OP_ADD, A.data(), as, B.data(), bs, O.data(), 6); });
        for (int i = 0; i < 6; ++i) CHECK(O[i] == A[i] + B[i%3], "bcast add %d", i);
        std::vector<unsigned char> U = {250, 3}, V = {10, 5}, W(2);
        Strided s2 = contig({2});
        launch(1,1,2,[&]{ d2l_binary_u8(BINARY_OP_ADD, U.data(), s2, V.data(), s2, W.data(), 2); });
        CHECK(W[0] == 4 && W[1] == 8, "u8 wrap %d %d", W[0], W[1]);
        double p[2] = {NAN, 1}, q[2] = {1, 2}, r[2];
        launch(1,1,2,[&]{ d2l_binary_f64(BINARY_OP_MAXIMUM, p, s2, q, s2, r, 2); });
        CHECK(r[0] != r[0] && r[1] == 2, "maximum nan");
        unsigned char c[2]; launch(1,1,2,[&]{ d2l_compare_f64(CMP_OP_LE, p, s2, q, s2, c, 2); });
        CHECK(c[0] == 0 && c[1] == 1, "le");
        double w[2]; launch(1,1,2,[&]{ d2l_where_f64(c, s2, p, s2, q, s2, w, 2); });
        CHECK(w[0] == 1 && w[1] == 1, "where");
    }
    // reductions: many block sizes, argmax ties/NaN
    for (unsigned bx : {32u, 64u, 256u}) for (long long cols : {1LL, 5LL, 33LL, 300LL, 1000LL}) {
        long long rows = 3;
        std::vector<float> x(rows * cols);
        for (auto &v : x) v = (float)(int)(nd(rng) * 3);
        if (cols > 7) x[1*cols + 6] = NAN;
        std::vector<float> out(rows); std::vector<long long> arg(rows);
        launch(2, 1, bx, [&]{ d2l_reduce_rows_f32(REDUCE_KIND_MAX, x.data(), rows, cols, out.data(), arg.data()); });
        for (long long r = 0; r < rows; ++r) {
            float best = x[r*cols]; long long bi = 0;
            for (long long c = 1; c < cols; ++c) { float v = x[r*cols+c]; if (best != best) break; if (v != v || v > best) { best = v; bi = c; } }
            CHECK(arg[r] == bi && (out[r] == best || (best != best && out[r] != out[r])), "argmax bx %u cols %lld row %lld: got %lld want %lld", bx, cols, r, arg[r], bi);
        }
        launch(2, 1, bx, [&]{ d2l_reduce_rows_f32(REDUCE_KIND_MIN, x.data(), rows, cols, out.data(), arg.data()); });
        for (long long r = 0; r < rows; ++r) {
            float best = x[r*cols]; long long bi = 0;
            for (long long c = 1; c < cols; ++c) { float v = x[r*cols+c]; if (best != best) break; if (v != v || v < best) { best = v; bi = c; } }
            CHECK(arg[r] == bi, "argmin bx %u cols %lld row %lld: got %lld want %lld", bx, cols, r, arg[r], bi);
        }
        std::vector<double> xd(rows*cols); for (auto &v : xd) v = nd(rng); std::vector<double> od(rows);
        launch(3, 1, bx, [&]{ d2l_reduce_rows_f64(REDUCE_KIND_SUM, xd.data(), rows, cols, od.data(), nullptr); });
        for (long long r = 0; r < rows; ++r) { double s = 0; for (long long c = 0; c < cols; ++c) s += xd[r*cols+c]; CHECK(std::fabs(s - od[r]) < 1e-9, "sum"); }
        // softmax + backward vs reference
        std::vector<double> y(rows*cols), g(rows*cols), dx(rows*cols);
        for (auto &v : g) v = nd(rng);
        for (int lg = 0; lg < 2; ++lg) {
            launch(2, 1, bx, [&]{ d2l_softmax_rows_f64(xd.data(), y.data(), rows, cols, lg); });
            launch(2, 1, bx, [&]{ d2l_softmax_rows_backward_f64(y.data(), g.data(), dx.data(), rows, cols, lg); });
            for (long long r = 0; r < rows; ++r) {
                double m = -INFINITY, s = 0; for (long long c = 0; c < cols; ++c) m = std::max(m, xd[r*cols+c]);
                for (long long c = 0; c < cols; ++c) s += std::exp(xd[r*cols+c]-m);
                double sg = 0, sgy = 0;
                for (long long c = 0; c < cols; ++c) { double p = std::exp(xd[r*cols+c]-m)/s; sg += g[r*cols+c]; sgy += g[r*cols+c]*p; }
                for (long long c = 0; c < cols; ++c) {
                    double p = std::exp(xd[r*cols+c]-m)/s;
                    double want = lg ? std::log(p) : p;
                    CHECK(std::fabs(y[r*cols+c] - want) < 1e-9, "softmax log=%d", lg);
                    double wd = lg ? g[r*cols+c] - p*sg : p*(g[r*cols+c] - sgy);
                    CHECK(std::fabs(dx[r*cols+c] - wd) < 1e-9, "softmax bw log=%d", lg);
                }
            }
        }
    }
    // im2col vs naive, col2im adjoint
    {
        ConvGeom g{2, 3, 5, 6, 3, 2, 2, 1, 1, 2, 1, 2, 0, 0, 0};
        g.oh = (g.h + 2*g.pt - (g.dh*(g.kh-1)+1))/g.sh + 1;
        g.ow = (g.w + 2*g.pl - (g.dw*(g.kw-1)+1))/g.sw + 1;
        long long cin = 5; g.xbs = cin*g.h*g.w; // group: channels 1..3 of 5
        std::vector<double> x(g.n*cin*g.h*g.w); for (auto &v : x) v = nd(rng);
        const double *xg = x.data() + 1*g.h*g.w;
        long long K = g.c*g.kh*g.kw, P = g.oh*g.ow;
        std::vector<double> cols(g.n*K*P), rc(g.n*K*P);
        for (long long b = 0; b < g.n; ++b) for (long long ch = 0; ch < g.c; ++ch) for (long long ki = 0; ki < g.kh; ++ki) for (long long kj = 0; kj < g.kw; ++kj)
        for (long long oy = 0; oy < g.oh; ++oy) for (long long ox = 0; ox < g.ow; ++ox) {
            long long iy = oy*g.sh - g.pt + ki*g.dh, ix = ox*g.sw - g.pl + kj*g.dw;
            rc[(b*K + (ch*g.kh+ki)*g.kw+kj)*P + oy*g.ow+ox] = (iy>=0&&iy<g.h&&ix>=0&&ix<g.w) ? xg[b*g.xbs + (ch*g.h+iy)*g.w+ix] : 0;
        }
        launch(3, 1, 64, [&]{ d2l_im2col_f64(xg, g, cols.data()); });
        for (size_t i = 0; i < cols.size(); ++i) CHECK(cols[i] == rc[i], "im2col %zu", i);
        std::vector<double> c2(cols.size()); for (auto &v : c2) v = nd(rng);
        ConvGeom g2 = g; g2.xbs = g.c*g.h*g.w;
        std::vector<double> dx(g.n*g.c*g.h*g.w);
        launch(3, 1, 64, [&]{ d2l_col2im_f64(c2.data(), g2, dx.data()); });
        // <im2col(x), c2> == <x, col2im(c2)> with x restricted to the group
        double lhs = 0, rhs = 0;
        for (size_t i = 0; i < cols.size(); ++i) lhs += cols[i]*c2[i];
        for (long long b = 0; b < g.n; ++b) for (long long i = 0; i < g.c*g.h*g.w; ++i) rhs += xg[b*g.xbs + i]*dx[b*g.c*g.h*g.w + i];
        CHECK(std::fabs(lhs - rhs) < 1e-9 * (1 + std::fabs(lhs)), "col2im adjoint %g vs %g", lhs, rhs);
        printf("conv geom oh=%lld ow=%lld\n", g.oh, g.ow);
    }
    // adam vs scalar reference (two tensors, amsgrad + decoupled)
    {
        for (int dec = 0; dec < 2; ++dec) for (int ams = 0; ams < 2; ++ams) {
            std::vector<double> p(7), gr(7), m(7, 0.1), v(7, 0.2), vm(7, 0.25);
            for (auto &t : p) t = nd(rng); for (auto &t : gr) t = nd(rng);
            auto P0 = p, M0 = m, V0 = v, VM0 = vm;
            AdamList l{}; l.count = 1; l.param[0] = (u64)p.data(); l.grad[0] = (u64)gr.data(); l.m[0] = (u64)m.data(); l.v[0] = (u64)v.data(); l.vmax[0] = (u64)vm.data(); l.n[0] = 7;
            double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05; int step = 3;
            AdamHyper h{lr, b1, b2, eps, wd, 1 - std::pow(b1, step), std::sqrt(1 - std::pow(b2, step)), dec, ams};
            launch(1, 1, 4, [&]{ d2l_adam_f64(l, h); });
            for (int i = 0; i < 7; ++i) {
                double pp = P0[i], g = gr[i];
                if (dec) pp *= 1 - lr*wd; else g += wd*P0[i];
                double mm = M0[i] + (1-b1)*(g-M0[i]), vv = b2*V0[i] + (1-b2)*g*g, s = ams ? std::max(VM0[i], vv) : vv;
                double want = pp - lr/h.bc1 * mm/(std::sqrt(s)/h.bc2_sqrt + eps);
                CHECK(std::fabs(p[i]-want) < 1e-12 && std::fabs(m[i]-mm) < 1e-15 && std::fabs(v[i]-vv) < 1e-15, "adam dec %d ams %d", dec, ams);
            }
        }
    }
    // ---------------------------------------------------------------- pooling
    // Reference windows built as ops/pool.rs builds them, the kernels' rule-based
    // windows checked against them, and every pooling kernel against plain loops.
    {
        struct RW { long long st, en, cnt; };
        auto ref_axis = [](int mode, long long n, long long len, long long k, long long s, long long p, long long d, bool cip) {
            std::vector<RW> v;
            for (long long i = 0; i < n; ++i) {
                long long raw = i * s - p;
                if (mode == POOL_MODE_ADAPTIVE) { long long st = i * len / n, en = ((i + 1) * len + n - 1) / n; v.push_back({st, en, en - st}); }
                else if (mode == POOL_MODE_AVG) {
                    long long pad_end = std::min(raw + k, len + p), st = std::max(raw, 0LL), en = std::min(pad_end, len);
                    long long cnt = cip ? pad_end - raw : en - st;
                    v.push_back({st, std::max(en, st), std::max(cnt, 1LL)});
                } else {
                    long long en = std::min(raw + (k - 1) * d + 1, len), st = raw;
                    while (st < 0) st += d;
                    v.push_back({st, std::max(en, st), 1});
                }
            }
            return v;
        };
        auto out_size = [](long long len, long long k, long long s, long long p, long long d, bool ceil) {
            long long num = len + 2 * p - d * (k - 1) - 1 + (ceil ? s - 1 : 0);
            long long o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
            if (ceil && o > 0 && (o - 1) * s >= len + p) o -= 1;
            return o;
        };
        struct Case { long long h, w, kh, kw, sh, sw, ph, pw, dh, dw; bool ceil, cip; int mode; long long oh, ow; };
        std::vector<Case> cases = {
            {4, 4, 2, 2, 2, 2, 0, 0, 1, 1, false, true, POOL_MODE_MAX, 0, 0},   // 2x2 stride 2
            {5, 7, 3, 3, 2, 2, 1, 1, 1, 1, false, true, POOL_MODE_MAX, 0, 0},   // padding
            {5, 7, 3, 2, 2, 2, 1, 1, 1, 1, true, true, POOL_MODE_MAX, 0, 0},    // ceil mode
            {6, 8, 3, 3, 2, 1, 1, 1, 2, 2, true, true, POOL_MODE_MAX, 0, 0},    // dilation + ceil
            {7, 6, 3, 3, 3, 2, 1, 0, 1, 1, true, false, POOL_MODE_MAX, 0, 0},   // ceil, uneven
            {5, 5, 5, 5, 5, 5, 0, 0, 1, 1, false, true, POOL_MODE_MAX, 0, 0},   // global window
            {7, 5, 0, 0, 0, 0, 0, 0, 1, 1, false, true, POOL_MODE_ADAPTIVE, 3, 2},   // adaptive 3x2
            {3, 4, 0, 0, 0, 0, 0, 0, 1, 1, false, true, POOL_MODE_ADAPTIVE, 5, 7},   // adaptive upsampling windows
            {6, 6, 0, 0, 0, 0, 0, 0, 1, 1, false, true, POOL_MODE_ADAPTIVE, 1, 1},   // global adaptive
        };
        int pool_checks = 0;
        for (auto cs : cases) for (int avg = 0; avg < 2; ++avg) for (int cip = 0; cip < 2; ++cip) {
            if (cs.mode != POOL_MODE_ADAPTIVE && avg && (cs.dh != 1 || cs.dw != 1)) continue;
            if (!avg && cip) continue;
            if (cs.mode == POOL_MODE_ADAPTIVE && cip) continue;
            int mode = cs.mode == POOL_MODE_ADAPTIVE ? POOL_MODE_ADAPTIVE : (avg ? POOL_MODE_AVG : POOL_MODE_MAX);
            long long oh = cs.oh, ow = cs.ow;
            if (mode != POOL_MODE_ADAPTIVE) { oh = out_size(cs.h, cs.kh, cs.sh, cs.ph, cs.dh, cs.ceil); ow = out_size(cs.w, cs.kw, cs.sw, cs.pw, cs.dw, cs.ceil); }
            auto rows = ref_axis(mode, oh, cs.h, cs.kh, cs.sh, cs.ph, cs.dh, cip);
            auto cols = ref_axis(mode, ow, cs.w, cs.kw, cs.sw, cs.pw, cs.dw, cip);
            PoolGeom g{};
            g.planes = 3;
            g.r = PoolAxis{mode, cs.h, oh, cs.kh, cs.sh, cs.ph, cs.dh, cip};
            g.c = PoolAxis{mode, cs.w, ow, cs.kw, cs.sw, cs.pw, cs.dw, cip};
            for (long long i = 0; i < oh; ++i) { long long a, b, c; pool_win(g.r, i, a, b, c); CHECK(a == rows[i].st && b == rows[i].en && c == rows[i].cnt, "row window %lld", i); }
            for (long long i = 0; i < ow; ++i) { long long a, b, c; pool_win(g.c, i, a, b, c); CHECK(a == cols[i].st && b == cols[i].en && c == cols[i].cnt, "col window %lld", i); }
            long long H = cs.h, W = cs.w, P = g.planes, no = P * oh * ow, ni = P * H * W;
            // small integers: ties; plane 1 gets NaNs, plane 2 is all -inf in a corner
            std::vector<float> x(ni); for (auto &v : x) v = (float)(int)(nd(rng) * 2);
            x[1 * H * W + 2] = NAN; x[1 * H * W + W + 3] = NAN;
            for (long long i = 0; i < 2; ++i) x[2 * H * W + i] = -INFINITY;
            std::vector<float> gout(no); for (auto &v : gout) v = (float)nd(rng);
            if (!avg) {
                std::vector<float> out(no); std::vector<long long> idx(no);
                launch(2, 1, 64, [&] { d2l_max_pool_fwd_f32(x.data(), g, out.data(), idx.data()); });
                std::vector<float> rv(no); std::vector<long long> ri(no);
                for (long long p = 0; p < P; ++p) for (long long a = 0; a < oh; ++a) for (long long b = 0; b < ow; ++b) {
                    auto r = rows[a], c = cols[b];
                    float best = -INFINITY; long long bi = (r.st < r.en && c.st < c.en) ? r.st * W + c.st : -1;
                    for (long long h = r.st; h < r.en; h += cs.dh) for (long long w = c.st; w < c.en; w += cs.dw) {
                        float v = x[p * H * W + h * W + w];
                        if (v > best || v != v) { best = v; bi = h * W + w; }
                    }
                    long long o = (p * oh + a) * ow + b; rv[o] = best; ri[o] = bi;
                }
                for (long long o = 0; o < no; ++o) {
                    CHECK((out[o] == rv[o] || (out[o] != out[o] && rv[o] != rv[o])) && idx[o] == ri[o], "max pool fwd %lld: %g@%lld want %g@%lld", o, out[o], idx[o], rv[o], ri[o]);
                    pool_checks++;
                }
                std::vector<float> no_idx_out(no);
                launch(1, 1, 32, [&] { d2l_max_pool_fwd_f32(x.data(), g, no_idx_out.data(), nullptr); });
                for (long long o = 0; o < no; ++o) CHECK(std::memcmp(&no_idx_out[o], &out[o], 4) == 0, "max pool fwd without indices %lld", o);
                std::vector<float> gin(ni, 123.f), rg(ni, 0.f);
                launch(3, 1, 64, [&] { d2l_max_pool_bwd_f32(gout.data(), idx.data(), g, gin.data()); });
                for (long long p = 0; p < P; ++p) for (long long o = 0; o < oh * ow; ++o) {
                    long long i = ri[p * oh * ow + o]; if (i >= 0) rg[p * H * W + i] += gout[p * oh * ow + o];
                }
                for (long long i = 0; i < ni; ++i) { CHECK(gin[i] == rg[i], "max pool bwd %lld: %g want %g", i, gin[i], rg[i]); pool_checks++; }
            } else {
                std::vector<double> xd(ni); for (long long i = 0; i < ni; ++i) xd[i] = nd(rng);
                std::vector<double> out(no), gd(no); for (auto &v : gd) v = nd(rng);
                launch(2, 1, 64, [&] { d2l_avg_pool_fwd_f64(xd.data(), g, out.data()); });
                std::vector<float> xf(ni), outf(no); for (long long i = 0; i < ni; ++i) xf[i] = (float)xd[i];
                launch(2, 1, 64, [&] { d2l_avg_pool_fwd_f32(xf.data(), g, outf.data()); });
                for (long long p = 0; p < P; ++p) for (long long a = 0; a < oh; ++a) for (long long b = 0; b < ow; ++b) {
                    auto r = rows[a], c = cols[b];
                    double s = 0, sf = 0;
                    for (long long h = r.st; h < r.en; ++h) for (long long w = c.st; w < c.en; ++w) { s += xd[p * H * W + h * W + w]; sf += xf[p * H * W + h * W + w]; }
                    long long o = (p * oh + a) * ow + b;
                    double want = s / (double)(r.cnt * c.cnt), wantf = sf / (double)(r.cnt * c.cnt);
                    CHECK(std::fabs(out[o] - want) < 1e-12 * (1 + std::fabs(want)), "avg pool fwd f64 %lld", o);
                    CHECK(std::fabs(outf[o] - wantf) <= 1e-6 * (1e-3 + std::fabs(wantf)), "avg pool fwd f32 %lld: %g want %g", o, outf[o], wantf);
                    pool_checks += 2;
                }
                std::vector<double> gin(ni, 7.0), rg(ni, 0.0);
                launch(3, 1, 64, [&] { d2l_avg_pool_bwd_f64(gd.data(), g, gin.data()); });
                for (long long p = 0; p < P; ++p) for (long long a = 0; a < oh; ++a) for (long long b = 0; b < ow; ++b) {
                    auto r = rows[a], c = cols[b];
                    double v = gd[(p * oh + a) * ow + b] / (double)(r.cnt * c.cnt);
                    for (long long h = r.st; h < r.en; ++h) for (long long w = c.st; w < c.en; ++w) rg[p * H * W + h * W + w] += v;
                }
                // same additions in the same order as the CPU: exact
                for (long long i = 0; i < ni; ++i) { CHECK(gin[i] == rg[i], "avg pool bwd %lld: %g want %g", i, gin[i], rg[i]); pool_checks++; }
            }
        }
        printf("pooling: %d element checks over %zu geometries\n", pool_checks, cases.size());
    }
    // ---------------------------------------------------------------- batch / group norm
    // Against a plain double reference: statistics, output, per-run sums, the weight and
    // bias gradients and dx (through the statistics or not), f32 and f64.
    {
        struct NC { long long n, c, hw, groups; };
        int norm_checks = 0;
        for (NC nc : {NC{4, 3, 5, 0}, NC{6, 5, 1, 0}, NC{3, 4, 7, 2}, NC{2, 6, 40, 3}, NC{5, 4, 1, 2}, NC{2, 3, 1000, 0}})
        for (int prec = 0; prec < 2; ++prec) for (int variant = 0; variant < 3; ++variant) {
            const int affine = variant != 0, through = variant != 1;
            NormGeom g{nc.n, nc.c, nc.hw, nc.groups};
            long long units = nc.groups ? nc.n * nc.groups : nc.c, runs = nc.groups ? nc.c / nc.groups : nc.n, m = runs * nc.hw;
            long long total = nc.n * nc.c * nc.hw;
            double eps = 1e-5;
            std::vector<double> xd(total), dyd(total), gam(nc.c), bet(nc.c);
            for (auto &v : xd) v = 3 + 2 * nd(rng);
            for (auto &v : dyd) v = nd(rng);
            for (auto &v : gam) v = 1 + 0.3 * nd(rng);
            for (auto &v : bet) v = nd(rng);
            auto unit_of = [&](long long id) { long long c = id % nc.c; return nc.groups ? (id / nc.c) * nc.groups + c / (nc.c / nc.groups) : c; };
            std::vector<double> rmean(units, 0), rvar(units, 0), ristd(units);
            for (long long i = 0; i < total; ++i) rmean[unit_of(i / nc.hw)] += xd[i];
            for (auto &v : rmean) v /= m;
            for (long long i = 0; i < total; ++i) { double d = xd[i] - rmean[unit_of(i / nc.hw)]; rvar[unit_of(i / nc.hw)] += d * d; }
            for (long long u = 0; u < units; ++u) { rvar[u] /= m; ristd[u] = 1 / std::sqrt(rvar[u] + eps); }
            std::vector<double> ry(total), xh(total), sdy(nc.n * nc.c, 0), sdyxh(nc.n * nc.c, 0);
            for (long long i = 0; i < total; ++i) {
                long long id = i / nc.hw, c = id % nc.c, u = unit_of(id);
                xh[i] = (xd[i] - rmean[u]) * ristd[u];
                ry[i] = xh[i] * (affine ? gam[c] : 1) + (affine ? bet[c] : 0);
                sdy[id] += dyd[i]; sdyxh[id] += dyd[i] * xh[i];
            }
            std::vector<double> rdg(nc.c, 0), rdb(nc.c, 0), ua(units, 0), ub(units, 0);
            for (long long id = 0; id < nc.n * nc.c; ++id) {
                long long c = id % nc.c; rdg[c] += sdyxh[id]; rdb[c] += sdy[id];
                double gm = affine ? gam[c] : 1; ua[unit_of(id)] += gm * sdy[id]; ub[unit_of(id)] += gm * sdyxh[id];
            }
            std::vector<double> rdx(total);
            for (long long i = 0; i < total; ++i) {
                long long id = i / nc.hw, c = id % nc.c, u = unit_of(id);
                double gm = affine ? gam[c] : 1;
                rdx[i] = through ? ristd[u] * (gm * dyd[i] - ua[u] / m - xh[i] * ub[u] / m) : ristd[u] * gm * dyd[i];
            }
            // relative tolerance for f32 (1e-6 of the typical magnitude), tight for f64
            double tol = prec ? 1e-11 : 1e-6;
            auto close = [&](double a, double b, double scale) { return std::fabs(a - b) <= tol * (scale + std::fabs(b)); };
            std::vector<double> stats(3 * units), sd(nc.n * nc.c), sx(nc.n * nc.c), coef(2 * units);
            std::vector<double> y(total), dx(total), dg(nc.c), db(nc.c);
            auto run = [&](auto tag) {
                using T = decltype(tag);
                std::vector<T> xt(total), dyt(total), gt(nc.c), bt(nc.c), yt(total), dxt(total), dgt(nc.c), dbt(nc.c);
                for (long long i = 0; i < total; ++i) { xt[i] = (T)xd[i]; dyt[i] = (T)dyd[i]; }
                for (long long c = 0; c < nc.c; ++c) { gt[c] = (T)gam[c]; bt[c] = (T)bet[c]; }
                const T *gp = affine ? gt.data() : nullptr, *bp = affine ? bt.data() : nullptr;
                unsigned bx = nc.hw >= 1000 ? 128 : 32;
                if constexpr (sizeof(T) == 4) {
                    launch(2, 1, bx, [&] { d2l_norm_stats_f32(xt.data(), g, eps, stats.data()); });
                    launch(3, 1, 64, [&] { d2l_norm_apply_f32(xt.data(), g, stats.data(), gp, bp, yt.data()); });
                    launch(2, 1, bx, [&] { d2l_norm_bwd_runs_f32(xt.data(), dyt.data(), g, stats.data(), sd.data(), sx.data()); });
                    launch(2, 1, 32, [&] { d2l_norm_bwd_coef_f32(g, gp, sd.data(), sx.data(), coef.data(), dgt.data(), dbt.data()); });
                    launch(3, 1, 64, [&] { d2l_norm_bwd_dx_f32(xt.data(), dyt.data(), g, stats.data(), coef.data(), gp, through, dxt.data()); });
                } else {
                    launch(2, 1, bx, [&] { d2l_norm_stats_f64(xt.data(), g, eps, stats.data()); });
                    launch(3, 1, 64, [&] { d2l_norm_apply_f64(xt.data(), g, stats.data(), gp, bp, yt.data()); });
                    launch(2, 1, bx, [&] { d2l_norm_bwd_runs_f64(xt.data(), dyt.data(), g, stats.data(), sd.data(), sx.data()); });
                    launch(2, 1, 32, [&] { d2l_norm_bwd_coef_f64(g, gp, sd.data(), sx.data(), coef.data(), dgt.data(), dbt.data()); });
                    launch(3, 1, 64, [&] { d2l_norm_bwd_dx_f64(xt.data(), dyt.data(), g, stats.data(), coef.data(), gp, through, dxt.data()); });
                }
                for (long long i = 0; i < total; ++i) { y[i] = yt[i]; dx[i] = dxt[i]; }
                for (long long c = 0; c < nc.c; ++c) { dg[c] = dgt[c]; db[c] = dbt[c]; }
            };
            if (prec) run(0.0); else run(0.0f);
            // the f32 inputs are rounded: compare with the reference of the rounded data
            // through tolerances scaled by the quantities' spread.
            double ftol = prec ? 1 : 30; // f32 input rounding moves the statistics by ~1e-7 relative
            for (long long u = 0; u < units; ++u) {
                CHECK(close(stats[u], rmean[u], ftol), "norm mean unit %lld: %.10g want %.10g", u, stats[u], rmean[u]);
                CHECK(close(stats[units + u], rvar[u], ftol), "norm var unit %lld: %.10g want %.10g", u, stats[units + u], rvar[u]);
                CHECK(close(stats[2 * units + u], ristd[u], ftol), "norm istd unit %lld", u);
                norm_checks += 3;
            }
            for (long long i = 0; i < total; ++i) {
                CHECK(close(y[i], ry[i], ftol), "norm y %lld (n %lld c %lld hw %lld g %lld f64 %d): %.10g want %.10g", i, nc.n, nc.c, nc.hw, nc.groups, prec, y[i], ry[i]);
                CHECK(close(dx[i], rdx[i], ftol), "norm dx %lld (n %lld c %lld hw %lld g %lld f64 %d through %d): %.10g want %.10g", i, nc.n, nc.c, nc.hw, nc.groups, prec, through, dx[i], rdx[i]);
                norm_checks += 2;
            }
            for (long long id = 0; id < nc.n * nc.c; ++id) {
                CHECK(close(sd[id], sdy[id], ftol * std::sqrt((double)nc.hw)), "norm s_dy run %lld", id);
                CHECK(close(sx[id], sdyxh[id], ftol * std::sqrt((double)nc.hw)), "norm s_dyxh run %lld", id);
                norm_checks += 2;
            }
            for (long long c = 0; c < nc.c; ++c) {
                CHECK(close(dg[c], rdg[c], ftol * std::sqrt((double)(nc.n * nc.hw))), "norm dgamma %lld: %g want %g", c, dg[c], rdg[c]);
                CHECK(close(db[c], rdb[c], ftol * std::sqrt((double)(nc.n * nc.hw))), "norm dbeta %lld: %g want %g", c, db[c], rdb[c]);
                norm_checks += 2;
            }
        }
        printf("normalisation: %d checks\n", norm_checks);
    }
    printf(fails ? "%d FAILURES\n" : "all emulated kernel checks passed\n", fails);
    return fails != 0;
}
