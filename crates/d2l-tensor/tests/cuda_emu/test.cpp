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
        unsigned ops[] = {0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20};
        double a = 0.3, b = 0.9;
        for (unsigned op : ops) {
            for (double x0 : {0.37, 1.7, 25.0, -0.6}) {
                double x = x0;
                if ((op == 3 || op == 5 || op == 6 || op == 16) && x <= 0) continue;
                if (op == 15 && (x == 25.0)) continue;
                double aa = op == 16 ? 2.5 : a, bb = b;
                double h = 1e-6, xp = x + h, xm = x - h, yp, ym, g = 1.0, gr;
                Strided s1 = contig({1});
                launch(1,1,1,[&]{ d2l_unary_f64(op, aa, bb, &xp, s1, &yp, 1); });
                launch(1,1,1,[&]{ d2l_unary_f64(op, aa, bb, &xm, s1, &ym, 1); });
                launch(1,1,1,[&]{ d2l_unary_backward_f64(op, aa, bb, &x, s1, &g, s1, &gr, 1); });
                double fd = (yp - ym) / (2*h);
                CHECK(std::fabs(fd - gr) <= 1e-5 * (1 + std::fabs(fd)), "unary grad op %u x %g: fd %g analytic %g", op, x, fd, gr);
                // from-output variants
                unsigned from_out[][2] = {{2,100},{5,101},{6,102},{9,103},{10,104},{11,105}};
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
        launch(1,1,1,[&]{ d2l_unary_f64(13, 0, 0, &x, s1, &y, 1); }); CHECK(y == 30, "softplus");
        x = 1.0; launch(1,1,1,[&]{ d2l_unary_f64(12, 0, 0, &x, s1, &y, 1); }); CHECK(std::fabs(y - 0.8413447460685429) < 1e-12, "gelu %g", y);
        x = NAN; launch(1,1,1,[&]{ d2l_unary_f64(11, 0, 0, &x, s1, &y, 1); }); CHECK(y != y, "relu nan");
    }
    // broadcast binary: a [2,3] + b [3] (stride 0 on dim 0)
    {
        std::vector<long long> A = {1,2,3,4,5,6}, B = {10,20,30}, O(6);
        Strided as = contig({2,3}); Strided bs = contig({2,3}); bs.stride[0] = 0;
        launch(1,1,4,[&]{ d2l_binary_i64(0, A.data(), as, B.data(), bs, O.data(), 6); });
        for (int i = 0; i < 6; ++i) CHECK(O[i] == A[i] + B[i%3], "bcast add %d", i);
        std::vector<unsigned char> U = {250, 3}, V = {10, 5}, W(2);
        Strided s2 = contig({2});
        launch(1,1,2,[&]{ d2l_binary_u8(0, U.data(), s2, V.data(), s2, W.data(), 2); });
        CHECK(W[0] == 4 && W[1] == 8, "u8 wrap %d %d", W[0], W[1]);
        double p[2] = {NAN, 1}, q[2] = {1, 2}, r[2];
        launch(1,1,2,[&]{ d2l_binary_f64(5, p, s2, q, s2, r, 2); });
        CHECK(r[0] != r[0] && r[1] == 2, "maximum nan");
        unsigned char c[2]; launch(1,1,2,[&]{ d2l_compare_f64(3, p, s2, q, s2, c, 2); });
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
        launch(2, 1, bx, [&]{ d2l_reduce_rows_f32(1, x.data(), rows, cols, out.data(), arg.data()); });
        for (long long r = 0; r < rows; ++r) {
            float best = x[r*cols]; long long bi = 0;
            for (long long c = 1; c < cols; ++c) { float v = x[r*cols+c]; if (best != best) break; if (v != v || v > best) { best = v; bi = c; } }
            CHECK(arg[r] == bi && (out[r] == best || (best != best && out[r] != out[r])), "argmax bx %u cols %lld row %lld: got %lld want %lld", bx, cols, r, arg[r], bi);
        }
        launch(2, 1, bx, [&]{ d2l_reduce_rows_f32(2, x.data(), rows, cols, out.data(), arg.data()); });
        for (long long r = 0; r < rows; ++r) {
            float best = x[r*cols]; long long bi = 0;
            for (long long c = 1; c < cols; ++c) { float v = x[r*cols+c]; if (best != best) break; if (v != v || v < best) { best = v; bi = c; } }
            CHECK(arg[r] == bi, "argmin bx %u cols %lld row %lld: got %lld want %lld", bx, cols, r, arg[r], bi);
        }
        std::vector<double> xd(rows*cols); for (auto &v : xd) v = nd(rng); std::vector<double> od(rows);
        launch(3, 1, bx, [&]{ d2l_reduce_rows_f64(0, xd.data(), rows, cols, od.data(), nullptr); });
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
    printf(fails ? "%d FAILURES\n" : "all emulated kernel checks passed\n", fails);
    return fails != 0;
}
