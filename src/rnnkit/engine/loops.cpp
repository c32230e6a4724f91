// The bptt engine's time loops, compiled (engine/compiled.py builds and loads this file).
//
// Each loop runs the steps of engine/bptt.py's Python loop for one cell family: the recurrent
// product, then the cell's elementwise step (cells/*.py: forward_into, and the backward its
// docstring derives) fused into one pass. On the CPU at H = 128 the Python loop spends more time
// dispatching its dozen ops a step, and oneDNN more time setting up each small product, than
// either computes. Here one OpenMP team runs the whole loop: each thread computes its columns
// of the step's product (a oneDNN brgemm micro-kernel, no set-up per call), waits at a barrier,
// then its rows of the elementwise step (exp and tanh vectorised by the compiler).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <omp.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

using at::Tensor;

namespace {

// ---- the step's product, C (M, N) [+]= A (M, K) B (K, N), row-major with leading dims -------
bool brgemm_works() {  // oneDNN's float micro-kernel exists on this CPU and build
  static const bool ok = [] {
    try {
      float a = 1, b = 2, c = 0;
      at::native::cpublas::brgemm(1, 1, 1, 1, 1, 1, false, &a, &b, &c, false);
      at::native::cpublas::brgemm_release(false);
      return c == 2;
    } catch (...) {
      return false;
    }
  }();
  return ok;
}

template <typename T>
void gemm(bool add, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
          int64_t ldb, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (brgemm_works()) {
      at::native::cpublas::brgemm(M, N, K, lda, ldb, ldc, add, A, B, C, false);
      return;
    }
  }
  // anything else: ATen's product on views (inside the team it runs on this thread only)
  auto opt = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  Tensor a = at::from_blob(const_cast<T*>(A), {M, K}, {lda, 1}, opt);
  Tensor b = at::from_blob(const_cast<T*>(B), {K, N}, {ldb, 1}, opt);
  Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, opt);
  if (add) c.addmm_(a, b);
  else at::mm_out(c, a, b);
}

// this thread's share [lo, hi) of n items
inline std::pair<int64_t, int64_t> share(int64_t n) {
  const int64_t p = omp_get_thread_num(), P = omp_get_num_threads(), per = (n + P - 1) / P;
  return {std::min(n, p * per), std::min(n, (p + 1) * per)};
}

// This thread's columns of a step's weight B (K, N), B[k, j] = src[k sk + j sj], copied once
// into panels of 64 columns, each row of a panel contiguous: the micro-kernel then streams
// them (straight from W, a row of B is 4H floats apart: at H = 1024 the step's product ran
// 1.4-3.5x slower). Products over 512 rows of B at a time stay in cache.
template <typename T>
struct Panels {
  static constexpr int64_t kWidth = 64, kDepth = 512;
  int64_t K, N, q0, q1;
  std::vector<T> data;  // panel q: (K, width(q)) from (q - q0) K kWidth on

  Panels(const T* src, int64_t K, int64_t N, int64_t sk, int64_t sj) : K(K), N(N) {
    std::tie(q0, q1) = share((N + kWidth - 1) / kWidth);
    data.resize(std::max<int64_t>(0, q1 - q0) * K * kWidth);
    for (int64_t q = q0; q < q1; ++q) {
      T* out = panel(q);
      for (int64_t k = 0, w = width(q); k < K; ++k)
        for (int64_t j = 0; j < w; ++j) out[k * w + j] = src[k * sk + (q * kWidth + j) * sj];
    }
  }
  int64_t width(int64_t q) const { return std::min(kWidth, N - q * kWidth); }
  T* panel(int64_t q) { return data.data() + (q - q0) * K * kWidth; }
  int64_t col0() const { return std::min(N, q0 * kWidth); }
  int64_t col1() const { return std::min(N, q1 * kWidth); }

  // C[:, col0 : col1] = A (M, K) B[:, col0 : col1]
  void multiply(int64_t M, const T* A, int64_t lda, T* C, int64_t ldc) {
    for (int64_t q = q0; q < q1; ++q)
      for (int64_t k0 = 0, w = width(q); k0 < K; k0 += kDepth)
        gemm<T>(k0 > 0, M, w, std::min(kDepth, K - k0), A + k0, lda, panel(q) + k0 * w, w,
                C + q * kWidth, ldc);
  }
};

template <typename T>
inline T sigm(T x) { return T(1) / (T(1) + std::exp(-x)); }

template <typename T>
const T* ptr(const Tensor& t) { return t.data_ptr<T>(); }

template <typename T>
T* mut(const Tensor& t) { return t.data_ptr<T>(); }

inline const bool* mask_ptr(const std::optional<Tensor>& m) {
  return m ? m->data_ptr<bool>() : nullptr;
}

// ---- the two time loops every cell shares ---------------------------------------------------
// Forward: z = h(t-1) W_hh^T (B, G) for every step (w: W_hh, (G, H)), then step(t, b, z row, on) writes row b of
// h(t) (and what the cell saves); a masked-out row (on = false) carries h(t-1), and the cell
// carries the rest of its state.
template <typename T, typename Step>
void forward_loop(int64_t steps, int64_t B, int64_t H, int64_t G, const T* w, T* h,
                  const bool* mask, const Step& step) {
  std::vector<T> zbuf(B * G);
  T* z = zbuf.data();
#pragma omp parallel num_threads(at::get_num_threads())
  {
    Panels<T> wt(w, H, G, 1, H);  // W_hh^T (H, G), read from W_hh (G, H)
    const auto [b0, b1] = share(B);
    for (int64_t t = 0; t < steps; ++t) {
      const T* h_prev = h + t * B * H;
      wt.multiply(B, h_prev, H, z, G);  // W_hh h(t-1)
#pragma omp barrier
      for (int64_t b = b0; b < b1; ++b) {
        const bool on = !mask || mask[t * B + b];
        step(t, b, z + b * G, on);
        if (!on) std::copy(h_prev + b * H, h_prev + (b + 1) * H, h + ((t + 1) * B + b) * H);
      }
#pragma omp barrier
    }
    if constexpr (std::is_same_v<T, float>) at::native::cpublas::brgemm_release(false);
  }
}

// Backward, from the last step to the first: step(t, b, dh row, d row) writes row b of the
// step's pre-activation gradients d (T, B, ld) and updates the cell's other state gradients;
// then dh(t-1) = d[:, off : off + K] W_hh (K = the rows of W_hh) + the loss's gradient at t-1
// + more(t, b, j0, j1, dh row, dh(t-1) row) (what reaches h(t-1) directly: GRU's dh z).
// A masked-out row sends nothing to its gates and passes dh through. dh: in and out.
template <typename T, typename Step, typename More>
void backward_loop(int64_t steps, int64_t B, int64_t H, int64_t K, const T* w, T* d, int64_t ld,
                   int64_t off, const T* ext, const Tensor& dh, const bool* mask,
                   const Step& step, const More& more) {
  Tensor spare = at::empty_like(dh);
  T* buf[2] = {mut<T>(dh), mut<T>(spare)};
#pragma omp parallel num_threads(at::get_num_threads())
  {
    Panels<T> wp(w, K, H, H, 1);  // W_hh (K, H)
    const int64_t n0 = wp.col0(), n1 = wp.col1();
    const auto [b0, b1] = share(B);
    for (int64_t t = steps - 1; t >= 0; --t) {
      const T* dh_t = buf[(steps - 1 - t) % 2];
      T* dh_prev = buf[(steps - t) % 2];
      for (int64_t b = b0; b < b1; ++b) {
        T* row = d + (t * B + b) * ld;
        if (mask && !mask[t * B + b]) std::fill(row, row + ld, T(0));
        else step(t, b, dh_t + b * H, row);
      }
#pragma omp barrier
      wp.multiply(B, d + t * B * ld + off, ld, dh_prev, H);
      for (int64_t b = 0; b < B; ++b) {
        T* out = dh_prev + b * H;
        const T* dh_b = dh_t + b * H;
        if (t > 0) {
          const T* e = ext + ((t - 1) * B + b) * H;
          for (int64_t j = n0; j < n1; ++j) out[j] += e[j];
        }
        if (mask && !mask[t * B + b])
          for (int64_t j = n0; j < n1; ++j) out[j] += dh_b[j];
        else more(t, b, n0, n1, dh_b, out);
      }
#pragma omp barrier
    }
    if constexpr (std::is_same_v<T, float>) at::native::cpublas::brgemm_release(false);
  }
  if (steps % 2) dh.copy_(spare);  // the result sits in buf[steps % 2]
}

struct Nothing {
  template <typename... A>
  void operator()(A&&...) const {}
};

// f(T(0)) for the tensor's floating type T
template <typename F>
void dispatch(const Tensor& t, const F& f) {
  brgemm_works();  // probe outside the team (it may throw inside, where nothing may)
  if (t.scalar_type() == at::kFloat) return f(float(0));
  TORCH_CHECK(t.scalar_type() == at::kDouble, "rnnkit's compiled loops take float32 or float64");
  f(double(0));
}

// ---- Elman (cells/elman.py): a(t) = f(xp + W_aa a(t-1)), f = tanh, relu or sigmoid --------
enum Act : int64_t { kTanh = 0, kRelu = 1, kSigmoid = 2 };

template <int64_t F, typename T>
inline T act(T z) {
  if constexpr (F == kTanh) return std::tanh(z);
  if constexpr (F == kRelu) return z > T(0) ? z : T(0);
  return sigm(z);
}

template <int64_t F, typename T>
inline T slope(T a) {  // f'(z) from a = f(z)
  if constexpr (F == kTanh) return T(1) - a * a;
  if constexpr (F == kRelu) return a > T(0) ? T(1) : T(0);
  return a * (T(1) - a);
}

template <int64_t F, typename T>
void elman_forward_t(const Tensor& xp, const Tensor& w, const Tensor& hs,
                     const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2);
  const T* x = ptr<T>(xp);
  T* h = mut<T>(hs);
  forward_loop<T>(steps, B, H, H, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* __restrict z, bool) {
                    const T* __restrict zx = x + (t * B + b) * H;
                    T* __restrict a = h + ((t + 1) * B + b) * H;
#pragma omp simd
                    for (int64_t j = 0; j < H; ++j) a[j] = act<F>(z[j] + zx[j]);
                  });
}

// hs: a(t) of every step, (T, B, H)
template <int64_t F, typename T>
void elman_backward_t(const Tensor& hs, const Tensor& w, const Tensor& dz, const Tensor& dhseq,
                      const Tensor& dh, const std::optional<Tensor>& mask) {
  const int64_t steps = hs.size(0), B = hs.size(1), H = hs.size(2);
  const T* h = ptr<T>(hs);
  backward_loop<T>(steps, B, H, H, ptr<T>(w), mut<T>(dz), H, 0, ptr<T>(dhseq), dh,
                   mask_ptr(mask),
                   [&](int64_t t, int64_t b, const T* __restrict da, T* __restrict d) {
                     const T* __restrict a = h + (t * B + b) * H;
#pragma omp simd
                     for (int64_t j = 0; j < H; ++j) d[j] = da[j] * slope<F>(a[j]);  // da f'
                   },
                   Nothing{});
}

void elman_forward(const Tensor& xp, const Tensor& w, const Tensor& hs, int64_t f,
                   const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    using T = decltype(zero);
    if (f == kTanh) elman_forward_t<kTanh, T>(xp, w, hs, mask);
    else if (f == kRelu) elman_forward_t<kRelu, T>(xp, w, hs, mask);
    else elman_forward_t<kSigmoid, T>(xp, w, hs, mask);
  });
}

void elman_backward(const Tensor& hs, const Tensor& w, int64_t f, const Tensor& dz,
                    const Tensor& dhseq, const Tensor& dh, const std::optional<Tensor>& mask) {
  dispatch(hs, [&](auto zero) {
    using T = decltype(zero);
    if (f == kTanh) elman_backward_t<kTanh, T>(hs, w, dz, dhseq, dh, mask);
    else if (f == kRelu) elman_backward_t<kRelu, T>(hs, w, dz, dhseq, dh, mask);
    else elman_backward_t<kSigmoid, T>(hs, w, dz, dhseq, dh, mask);
  });
}

// ---- LSTM (cells/lstm.py) -------------------------------------------------------------------
// forward_into for one row: z = W_hh h + xp (4, H) -> c', h'; the last K gates into kept (K = 4:
// i f g o; K = 2: g o, what the recomputing backward reads)
template <int64_t K, typename T>
inline void lstm_row(const T* __restrict zh, const T* __restrict zx, const T* __restrict c,
                     T* __restrict c1, T* __restrict h1, T* __restrict kept, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T i = sigm(zh[j] + zx[j]), f = sigm(zh[H + j] + zx[H + j]),
            g = std::tanh(zh[2 * H + j] + zx[2 * H + j]), o = sigm(zh[3 * H + j] + zx[3 * H + j]);
    const T cj = f * c[j] + i * g;  // c' = f c + i g
    c1[j] = cj;
    h1[j] = o * std::tanh(cj);  // h' = o tanh(c')
    if constexpr (K == 4) kept[j] = i, kept[H + j] = f;
    kept[(K - 2) * H + j] = g, kept[(K - 1) * H + j] = o;
  }
}

template <typename T>
void lstm_forward_t(const Tensor& xp, const Tensor& w, const Tensor& hs, const Tensor& cs,
                    const Tensor& c0, const Tensor& kept, const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2), k = kept.size(2);
  const T *x = ptr<T>(xp), *c_init = ptr<T>(c0);
  T *h = mut<T>(hs), *c = mut<T>(cs), *kp = mut<T>(kept);
  forward_loop<T>(steps, B, H, 4 * H, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* z, bool on) {
                    const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
                    T *cn = c + (t * B + b) * H, *hn = h + ((t + 1) * B + b) * H;
                    const T* zx = x + (t * B + b) * 4 * H;
                    T* kb = kp + (t * B + b) * k * H;
                    if (k == 4) lstm_row<4>(z, zx, c_prev, cn, hn, kb, H);
                    else lstm_row<2>(z, zx, c_prev, cn, hn, kb, H);
                    if (!on) std::copy(c_prev, c_prev + H, cn);  // carries c(t-1)
                  });
}

// the backward of one row (cells/lstm.py's docstring) from the gates i, f (pre-activations if
// Activate) and g, o: the pre-activation gradients into d (4, H), dc turned into dc(t-1)
template <bool Activate, typename T>
inline void lstm_back_row(const T* __restrict a_if, const T* __restrict a_go,
                          const T* __restrict c, const T* __restrict c_prev,
                          const T* __restrict dh, T* __restrict dc, T* __restrict d, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T i = a_if[j], f = a_if[H + j];
    if constexpr (Activate) i = sigm(i), f = sigm(f);
    const T g = a_go[j], o = a_go[H + j];
    const T tc = std::tanh(c[j]);
    const T dcj = dc[j] + dh[j] * o * (T(1) - tc * tc);  // dc = dc' + dh' o (1 - tanh(c')^2)
    d[j] = dcj * g * i * (T(1) - i);                     // di~ = dc g i(1-i)
    d[H + j] = dcj * c_prev[j] * f * (T(1) - f);         // df~ = dc c(t-1) f(1-f)
    d[2 * H + j] = dcj * i * (T(1) - g * g);             // dg~ = dc i (1-g^2)
    d[3 * H + j] = dh[j] * tc * o * (T(1) - o);          // do~ = dh' tanh(c') o(1-o)
    dc[j] = dcj * f;                                     // dc(t-1) = dc f
  }
}

// a_if, a_go: (T, B, 2, H) with any row stride (views of the kept gates, or i, f recomputed)
template <typename T>
void lstm_backward_t(const Tensor& a_if, bool activate, const Tensor& a_go, const Tensor& cs,
                     const Tensor& c0, const Tensor& w, const Tensor& dz, const Tensor& dhseq,
                     const Tensor& dh, const Tensor& dc, const std::optional<Tensor>& mask) {
  const int64_t steps = cs.size(0), B = cs.size(1), H = cs.size(2);
  const int64_t s_if = a_if.stride(1), s_go = a_go.stride(1);
  const T *aif = ptr<T>(a_if), *ago = ptr<T>(a_go), *c = ptr<T>(cs), *c_init = ptr<T>(c0);
  T* dcp = mut<T>(dc);
  backward_loop<T>(steps, B, H, 4 * H, ptr<T>(w), mut<T>(dz), 4 * H, 0, ptr<T>(dhseq), dh,
                   mask_ptr(mask),
                   [&](int64_t t, int64_t b, const T* dh_b, T* d) {
                     const int64_t r = t * B + b;
                     const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
                     if (activate)
                       lstm_back_row<true>(aif + r * s_if, ago + r * s_go, c + r * H, c_prev,
                                           dh_b, dcp + b * H, d, H);
                     else
                       lstm_back_row<false>(aif + r * s_if, ago + r * s_go, c + r * H, c_prev,
                                            dh_b, dcp + b * H, d, H);
                   },
                   Nothing{});
}

void lstm_forward(const Tensor& xp, const Tensor& w, const Tensor& hs, const Tensor& cs,
                  const Tensor& c0, const Tensor& kept, const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    lstm_forward_t<decltype(zero)>(xp, w, hs, cs, c0, kept, mask);
  });
}

void lstm_backward(const Tensor& a_if, bool activate, const Tensor& a_go, const Tensor& cs,
                   const Tensor& c0, const Tensor& w, const Tensor& dz, const Tensor& dhseq,
                   const Tensor& dh, const Tensor& dc, const std::optional<Tensor>& mask) {
  dispatch(cs, [&](auto zero) {
    lstm_backward_t<decltype(zero)>(a_if, activate, a_go, cs, c0, w, dz, dhseq, dh, dc, mask);
  });
}

// ---- GRU, torch's form (cells/gru.py) -------------------------------------------------------
// forward_into for one row: zh = W_hh h (r, z, n rows), zx = xp; kept (if Keep): r z hn n
template <bool Keep, typename T>
inline void gru_row(const T* __restrict zh, const T* __restrict zx, const T* __restrict b_n,
                    const T* __restrict h, T* __restrict h1, T* __restrict kept, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T r = sigm(zh[j] + zx[j]), z = sigm(zh[H + j] + zx[H + j]);
    const T hn = zh[2 * H + j] + b_n[j];         // W_hn h + b_hn
    const T n = std::tanh(zx[2 * H + j] + r * hn);  // n = tanh(xn + r hn)
    h1[j] = n + z * (h[j] - n);                   // h' = n + z (h - n)
    if constexpr (Keep) kept[j] = r, kept[H + j] = z, kept[2 * H + j] = hn, kept[3 * H + j] = n;
  }
}

template <typename T>
void gru_forward_t(const Tensor& xp, const Tensor& w, const Tensor& b_n, const Tensor& hs,
                   const std::optional<Tensor>& kept, const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2);
  const T *x = ptr<T>(xp), *bn = ptr<T>(b_n);
  T *h = mut<T>(hs), *kp = kept ? mut<T>(*kept) : nullptr;
  forward_loop<T>(steps, B, H, 3 * H, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* z, bool) {
                    const int64_t r = t * B + b;
                    const T* h_prev = h + r * H;
                    T* h_new = h + (r + B) * H;
                    if (kp) gru_row<true>(z, x + r * 3 * H, bn, h_prev, h_new, kp + r * 4 * H, H);
                    else gru_row<false, T>(z, x + r * 3 * H, bn, h_prev, h_new, nullptr, H);
                  });
}

// rz (T, B, 2H), hn, n (T, B, H): any row stride; d (T, B, 4H) laid out as gru.py's
// backward_prepare: dn~ (for xp's n rows), dr~, dz~, dn~ r (for W_hh h's n rows)
template <typename T>
void gru_backward_t(const Tensor& rz, const Tensor& hn, const Tensor& n, const Tensor& h_prev,
                    const Tensor& w, const Tensor& dz, const Tensor& dhseq, const Tensor& dh,
                    const std::optional<Tensor>& mask) {
  const int64_t steps = h_prev.size(0), B = h_prev.size(1), H = h_prev.size(2);
  const int64_t s_rz = rz.stride(1), s_hn = hn.stride(1), s_n = n.stride(1);
  const T *prz = ptr<T>(rz), *phn = ptr<T>(hn), *pn = ptr<T>(n), *hp = ptr<T>(h_prev);
  backward_loop<T>(
      steps, B, H, 3 * H, ptr<T>(w), mut<T>(dz), 4 * H, H, ptr<T>(dhseq), dh, mask_ptr(mask),
      [&](int64_t t, int64_t b, const T* __restrict dh_b, T* __restrict d) {
        const int64_t row = t * B + b;
        const T *__restrict g = prz + row * s_rz, *__restrict hn_ = phn + row * s_hn;
        const T *__restrict n_ = pn + row * s_n, *__restrict h = hp + row * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T r = g[j], z = g[H + j], nj = n_[j];
          const T dn = dh_b[j] * (T(1) - z) * (T(1) - nj * nj);  // dn~ = dh' (1 - z)(1 - n^2)
          d[j] = dn;
          d[H + j] = dn * hn_[j] * r * (T(1) - r);           // dr~ = dn~ hn r(1 - r)
          d[2 * H + j] = dh_b[j] * (h[j] - nj) * z * (T(1) - z);  // dz~ = dh' (h - n) z(1 - z)
          d[3 * H + j] = dn * r;                             // d(W_hn h + b_hn) = dn~ r
        }
      },
      [&](int64_t t, int64_t b, int64_t j0, int64_t j1, const T* dh_b, T* out) {
        const T* z = prz + (t * B + b) * s_rz + H;
        for (int64_t j = j0; j < j1; ++j) out[j] += dh_b[j] * z[j];  // + dh' z
      });
}

void gru_forward(const Tensor& xp, const Tensor& w, const Tensor& b_n, const Tensor& hs,
                 const std::optional<Tensor>& kept, const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    gru_forward_t<decltype(zero)>(xp, w, b_n, hs, kept, mask);
  });
}

void gru_backward(const Tensor& rz, const Tensor& hn, const Tensor& n, const Tensor& h_prev,
                  const Tensor& w, const Tensor& dz, const Tensor& dhseq, const Tensor& dh,
                  const std::optional<Tensor>& mask) {
  dispatch(h_prev, [&](auto zero) {
    gru_backward_t<decltype(zero)>(rz, hn, n, h_prev, w, dz, dhseq, dh, mask);
  });
}

// ---- the LSTM variants (cells/lstm_variants.py) ---------------------------------------------
enum Variant : int64_t { kPeephole = 1, kCIFG = 2, kNoForget = 3 };

// forward_into for one row: zh = W_hh h, zx = xp (G gates); the activated gates into kept
// if Keep. Peephole: i, f look at c, o at c' (p = p_i, p_f, p_o); CIFG: i = 1 - f;
// no forget gate: c' = c + i g.
template <int64_t V, bool Keep, typename T>
inline void variant_row(const T* __restrict zh, const T* __restrict zx, const T* __restrict p,
                        const T* __restrict c, T* __restrict c1, T* __restrict h1,
                        T* __restrict kept, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T cj, o;
    if constexpr (V == kPeephole) {
      const T i = sigm(zh[j] + zx[j] + p[j] * c[j]);
      const T f = sigm(zh[H + j] + zx[H + j] + p[H + j] * c[j]);
      const T g = std::tanh(zh[2 * H + j] + zx[2 * H + j]);
      cj = f * c[j] + i * g;                                    // c' = f c + i g
      o = sigm(zh[3 * H + j] + zx[3 * H + j] + p[2 * H + j] * cj);  // o sees c'
      if constexpr (Keep) kept[j] = i, kept[H + j] = f, kept[2 * H + j] = g, kept[3 * H + j] = o;
    } else {
      const T a = sigm(zh[j] + zx[j]), g = std::tanh(zh[H + j] + zx[H + j]);
      o = sigm(zh[2 * H + j] + zx[2 * H + j]);
      if constexpr (V == kCIFG) cj = g + a * (c[j] - g);  // c' = f c + (1 - f) g
      else cj = c[j] + a * g;                             // c' = c + i g
      if constexpr (Keep) kept[j] = a, kept[H + j] = g, kept[2 * H + j] = o;
    }
    c1[j] = cj;
    h1[j] = o * std::tanh(cj);  // h' = o tanh(c')
  }
}

template <int64_t V, typename T>
void variant_forward_t(const Tensor& xp, const Tensor& w, const std::optional<Tensor>& peep,
                       const Tensor& hs, const Tensor& cs, const Tensor& c0,
                       const std::optional<Tensor>& kept, const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2), G = xp.size(2);
  const T *x = ptr<T>(xp), *c_init = ptr<T>(c0), *p = peep ? ptr<T>(*peep) : nullptr;
  T *h = mut<T>(hs), *c = mut<T>(cs), *kp = kept ? mut<T>(*kept) : nullptr;
  forward_loop<T>(steps, B, H, G, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* z, bool on) {
                    const int64_t r = t * B + b;
                    const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
                    T *cn = c + r * H, *hn = h + (r + B) * H;
                    if (kp) variant_row<V, true>(z, x + r * G, p, c_prev, cn, hn, kp + r * G, H);
                    else variant_row<V, false, T>(z, x + r * G, p, c_prev, cn, hn, nullptr, H);
                    if (!on) std::copy(c_prev, c_prev + H, cn);  // carries c(t-1)
                  });
}

void variant_forward(const Tensor& xp, const Tensor& w, const std::optional<Tensor>& peep,
                     int64_t variant, const Tensor& hs, const Tensor& cs, const Tensor& c0,
                     const std::optional<Tensor>& kept, const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    using T = decltype(zero);
    if (variant == kPeephole) variant_forward_t<kPeephole, T>(xp, w, peep, hs, cs, c0, kept, mask);
    else if (variant == kCIFG) variant_forward_t<kCIFG, T>(xp, w, peep, hs, cs, c0, kept, mask);
    else variant_forward_t<kNoForget, T>(xp, w, peep, hs, cs, c0, kept, mask);
  });
}

// The variants' shared backward step (lstm_variants.py's backward_into) from the coefficients
// their backward_prepare made: do~ = dh' k_o, dc = dc' + dh' through_h, the other gates'
// d~ = dc k, dc(t-1) = dc k_c (dc itself without k_c). Coefficients: any row stride.
template <int64_t G, typename T>
void variant_backward_t(const Tensor& through_h, const Tensor& k, const Tensor& k_o,
                        const std::optional<Tensor>& k_c, const Tensor& w, const Tensor& dz,
                        const Tensor& dhseq, const Tensor& dh, const Tensor& dc,
                        const std::optional<Tensor>& mask) {
  const int64_t steps = dz.size(0), B = dz.size(1), H = dh.size(1);
  const int64_t s_th = through_h.stride(1), s_k = k.stride(1), s_o = k_o.stride(1);
  const int64_t s_c = k_c ? k_c->stride(1) : 0;
  const T *th = ptr<T>(through_h), *pk = ptr<T>(k), *po = ptr<T>(k_o);
  const T* pc = k_c ? ptr<T>(*k_c) : nullptr;
  T* dcp = mut<T>(dc);
  backward_loop<T>(
      steps, B, H, G * H, ptr<T>(w), mut<T>(dz), G * H, 0, ptr<T>(dhseq), dh, mask_ptr(mask),
      [&](int64_t t, int64_t b, const T* __restrict dh_b, T* __restrict d) {
        const int64_t r = t * B + b;
        const T *__restrict u = th + r * s_th, *__restrict kr = pk + r * s_k;
        const T *__restrict ko = po + r * s_o, *__restrict kc = pc ? pc + r * s_c : nullptr;
        T* __restrict dcb = dcp + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          d[(G - 1) * H + j] = dh_b[j] * ko[j];  // do~
          const T dcj = dcb[j] + dh_b[j] * u[j];  // dc = dc' + dh' through_h
          for (int64_t g = 0; g < G - 1; ++g) d[g * H + j] = dcj * kr[g * H + j];
          dcb[j] = kc ? dcj * kc[j] : dcj;  // dc(t-1)
        }
      },
      Nothing{});
}

void variant_backward(const Tensor& through_h, const Tensor& k, const Tensor& k_o,
                      const std::optional<Tensor>& k_c, const Tensor& w, const Tensor& dz,
                      const Tensor& dhseq, const Tensor& dh, const Tensor& dc,
                      const std::optional<Tensor>& mask) {
  dispatch(dz, [&](auto zero) {
    using T = decltype(zero);
    if (k.size(2) == 3)
      variant_backward_t<4, T>(through_h, k, k_o, k_c, w, dz, dhseq, dh, dc, mask);
    else
      variant_backward_t<3, T>(through_h, k, k_o, k_c, w, dz, dhseq, dh, dc, mask);
  });
}

}  // namespace

TORCH_LIBRARY(rnnkit_loops, m) {
  m.def("elman_forward(Tensor xp, Tensor w, Tensor(a!) hs, int f, Tensor? mask) -> ()",
        &elman_forward);
  m.def("elman_backward(Tensor hs, Tensor w, int f, Tensor(a!) dz, Tensor dhseq, "
        "Tensor(b!) dh, Tensor? mask) -> ()", &elman_backward);
  m.def("lstm_forward(Tensor xp, Tensor w, Tensor(a!) hs, Tensor(b!) cs, Tensor c0, "
        "Tensor(c!) kept, Tensor? mask) -> ()", &lstm_forward);
  m.def("lstm_backward(Tensor a_if, bool activate, Tensor a_go, Tensor cs, Tensor c0, Tensor w, "
        "Tensor(a!) dz, Tensor dhseq, Tensor(b!) dh, Tensor(c!) dc, Tensor? mask) -> ()",
        &lstm_backward);
  m.def("gru_forward(Tensor xp, Tensor w, Tensor b_n, Tensor(a!) hs, Tensor(b!)? kept, "
        "Tensor? mask) -> ()", &gru_forward);
  m.def("gru_backward(Tensor rz, Tensor hn, Tensor n, Tensor h_prev, Tensor w, Tensor(a!) dz, "
        "Tensor dhseq, Tensor(b!) dh, Tensor? mask) -> ()", &gru_backward);
  m.def("variant_forward(Tensor xp, Tensor w, Tensor? peep, int variant, Tensor(a!) hs, "
        "Tensor(b!) cs, Tensor c0, Tensor(c!)? kept, Tensor? mask) -> ()", &variant_forward);
  m.def("variant_backward(Tensor through_h, Tensor k, Tensor k_o, Tensor? k_c, Tensor w, "
        "Tensor(a!) dz, Tensor dhseq, Tensor(b!) dh, Tensor(c!) dc, Tensor? mask) -> ()",
        &variant_backward);
}
