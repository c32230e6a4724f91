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
#include <dlfcn.h>
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

// row b of step t of a (T, B, H) view with any strides (the last one 1)
template <typename T>
struct Rows {
  T* p;
  int64_t st, sb;
  T* at(int64_t t, int64_t b) const { return p + t * st + b * sb; }
};

template <typename T>
Rows<T> rows(const Tensor& x) { return {x.data_ptr<T>(), x.stride(0), x.stride(1)}; }

inline const bool* mask_ptr(const std::optional<Tensor>& m) {
  return m ? m->data_ptr<bool>() : nullptr;
}

// ---- the two time loops every cell shares ---------------------------------------------------
// The regularisers both loops apply for every cell that hands them over (null: off):
//   rdrop (B, H): recurrent dropout per sequence (Gal & Ghahramani 2016), W_hh reads
//     m * h(t-1) (m: 0 or 1/(1-p) per unit and sequence, the same at every step);
//   zh (T, B, H): zoneout on h (Krueger et al. 2016), h(t) = h~ + d (h(t-1) - h~) with the
//     cell's h~ (d: 0 or 1 per step and unit in training, p in eval); a cell with c zones it
//     itself.
template <typename T>
struct Noise {
  const T* rdrop = nullptr;
  const T* zh = nullptr;
};

template <typename T>
const T* opt_ptr(const std::optional<Tensor>& t) { return t ? t->data_ptr<T>() : nullptr; }

template <typename T>
Noise<T> noise(const std::optional<Tensor>& rdrop, const std::optional<Tensor>& zh) {
  return {opt_ptr<T>(rdrop), opt_ptr<T>(zh)};
}

// out = m * h for rows [b0, b1) of (B, H)
template <typename T>
inline void drop_rows(T* __restrict out, const T* __restrict h, const T* __restrict m,
                      int64_t b0, int64_t b1, int64_t H) {
#pragma omp simd
  for (int64_t j = b0 * H; j < b1 * H; ++j) out[j] = m[j] * h[j];
}

// Forward: z = h(t-1) W_hh^T (B, G) for every step (w: W_hh, (G, H)), then step(t, b, z row,
// on) writes row b of h(t) (and what the cell saves); a masked-out row (on = false) carries
// h(t-1), and the cell carries the rest of its state.
template <typename T, typename Step>
void forward_loop(int64_t steps, int64_t B, int64_t H, int64_t G, const T* w, T* h,
                  const bool* mask, const Step& step, const Noise<T>& noise = {}) {
  std::vector<T> zbuf(B * G), dbuf(noise.rdrop ? B * H : 0);
  T *z = zbuf.data(), *hd = dbuf.data();  // hd: m * h(t-1), what W_hh reads under rdrop
#pragma omp parallel num_threads(at::get_num_threads())
  {
    Panels<T> wt(w, H, G, 1, H);  // W_hh^T (H, G), read from W_hh (G, H)
    const auto [b0, b1] = share(B);
    if (noise.rdrop) drop_rows(hd, h, noise.rdrop, b0, b1, H);
#pragma omp barrier
    for (int64_t t = 0; t < steps; ++t) {
      const T* h_prev = h + t * B * H;
      wt.multiply(B, noise.rdrop ? hd : h_prev, H, z, G);  // W_hh h(t-1)
#pragma omp barrier
      for (int64_t b = b0; b < b1; ++b) {
        const bool on = !mask || mask[t * B + b];
        step(t, b, z + b * G, on);
        T* __restrict hn = h + ((t + 1) * B + b) * H;
        const T* __restrict hp = h_prev + b * H;
        if (!on) {
          std::copy(hp, hp + H, hn);
        } else if (noise.zh) {  // zoneout: h(t) = h~ + d (h(t-1) - h~)
          const T* __restrict d = noise.zh + (t * B + b) * H;
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) hn[j] += d[j] * (hp[j] - hn[j]);
        }
        if (noise.rdrop) drop_rows(hd, h + (t + 1) * B * H, noise.rdrop, b, b + 1, H);
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
// A masked-out row sends nothing to its gates and passes dh through (masked(t, b): what else
// the cell clears for it). dh: in and out. colsum (optional, a row of ld floats per thread of
// the team): each thread adds up the rows of d it wrote, while they are in cache (the bias
// gradients, summed over the threads afterwards: ColumnSums). noise: rdrop scales the product's
// share of dh(t-1); under zh the step and more() get h~'s share of dh, (1 - d) dh, and d dh
// goes to h(t-1) directly.
struct Nothing {
  template <typename... A>
  void operator()(A&&...) const {}
};

template <typename T, typename Step, typename More, typename Masked = Nothing>
void backward_loop(int64_t steps, int64_t B, int64_t H, int64_t K, const T* w, T* d, int64_t ld,
                   int64_t off, const T* ext, const Tensor& dh, const bool* mask,
                   const Step& step, const More& more, const Masked& masked = Masked{},
                   T* colsum = nullptr, const Noise<T>& noise = {}) {
  Tensor spare = at::empty_like(dh);
  T* buf[2] = {mut<T>(dh), mut<T>(spare)};
  std::vector<T> tbuf(noise.zh ? B * H : 0);  // zoneout: dh~ = (1 - d) dh, what h~ gets
  T* dh_tilde = tbuf.data();
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
        if (mask && !mask[t * B + b]) {
          std::fill(row, row + ld, T(0));
          masked(t, b);
        } else {
          const T* g = dh_t + b * H;
          if (noise.zh) {
            const T *__restrict d = noise.zh + (t * B + b) * H, *__restrict g0 = g;
            T* __restrict gt = dh_tilde + b * H;
#pragma omp simd
            for (int64_t j = 0; j < H; ++j) gt[j] = (T(1) - d[j]) * g0[j];
            g = gt;
          }
          step(t, b, g, row);
          if (colsum) {
            T* __restrict acc = colsum + omp_get_thread_num() * ld;
#pragma omp simd
            for (int64_t j = 0; j < ld; ++j) acc[j] += row[j];
          }
        }
      }
#pragma omp barrier
      wp.multiply(B, d + t * B * ld + off, ld, dh_prev, H);
      for (int64_t b = 0; b < B; ++b) {
        T* out = dh_prev + b * H;
        const T* dh_b = dh_t + b * H;
        if (noise.rdrop) {  // W_hh read m * h(t-1)
          const T* m = noise.rdrop + b * H;
          for (int64_t j = n0; j < n1; ++j) out[j] *= m[j];
        }
        if (t > 0) {
          const T* e = ext + ((t - 1) * B + b) * H;
          for (int64_t j = n0; j < n1; ++j) out[j] += e[j];
        }
        if (mask && !mask[t * B + b]) {
          for (int64_t j = n0; j < n1; ++j) out[j] += dh_b[j];
        } else if (noise.zh) {  // d dh reaches h(t-1) directly, the cell's share through h~
          const T* d = noise.zh + (t * B + b) * H;
          for (int64_t j = n0; j < n1; ++j) out[j] += d[j] * dh_b[j];
          more(t, b, n0, n1, dh_tilde + b * H, out);
        } else {
          more(t, b, n0, n1, dh_b, out);
        }
      }
#pragma omp barrier
    }
    if constexpr (std::is_same_v<T, float>) at::native::cpublas::brgemm_release(false);
  }
  if (steps % 2) dh.copy_(spare);  // the result sits in buf[steps % 2]
}

// Per-thread rows of n sums (backward_loop's colsum; the peephole gradients), added into out
// (n floats, any shape) at the end; nothing where out is absent.
template <typename T>
struct ColumnSums {
  Tensor acc;
  ColumnSums(const std::optional<Tensor>& out, int64_t n) {
    if (out) acc = at::zeros({at::get_num_threads(), n}, out->options());
  }
  T* ptr() const { return acc.defined() ? acc.template data_ptr<T>() : nullptr; }
  T* row() const { return ptr() + omp_get_thread_num() * acc.size(1); }  // this thread's
  void finish(const std::optional<Tensor>& out) const {
    if (out) out->copy_(acc.sum(0).view(out->sizes()));
  }
};

// f(T(0)) for the tensor's floating type T
template <typename F>
void dispatch(const Tensor& t, const F& f) {
  brgemm_works();  // probe outside the team (it may throw inside, where nothing may)
  if (t.scalar_type() == at::kFloat) return f(float(0));
  TORCH_CHECK(t.scalar_type() == at::kDouble, "rnnkit's compiled loops take float32 or float64");
  f(double(0));
}

// Bernoulli(p) draws into out (0 or 1, its dtype) from a counter-based hash of (seed, index)
// (two rounds of murmur3's 32-bit finaliser, 8 lanes a vector), on every thread: zoneout draws
// T B H of them a call, which torch's bernoulli_ takes ~8 ns each to make (a third of an LSTM
// step at H = 256); p in steps of 2^-24
inline uint32_t fmix32(uint32_t z) {
  z = (z ^ (z >> 16)) * 0x85ebca6bU;
  z = (z ^ (z >> 13)) * 0xc2b2ae35U;
  return z ^ (z >> 16);
}

void bernoulli_fill(const Tensor& out, double p, int64_t seed) {
  TORCH_CHECK(out.is_contiguous(), "bernoulli_fill takes a dense tensor");
  dispatch(out, [&](auto zero) {
    using T = decltype(zero);
    T* o = mut<T>(out);
    const uint32_t below = uint32_t(p * 16777216.0), k1 = uint32_t(seed),
                   k2 = uint32_t(uint64_t(seed) >> 32);
    at::parallel_for(0, out.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      const uint32_t high = fmix32(uint32_t(uint64_t(lo) >> 32) ^ k2);  // (past 2^32 draws)
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) {
        const uint32_t z = fmix32(fmix32(uint32_t(i) ^ k1) + high);
        o[i] = (z >> 8) < below ? T(1) : T(0);
      }
    });
  });
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
                     const std::optional<Tensor>& mask, const std::optional<Tensor>& rdrop) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2);
  const T* x = ptr<T>(xp);
  T* h = mut<T>(hs);
  forward_loop<T>(steps, B, H, H, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* __restrict z, bool) {
                    const T* __restrict zx = x + (t * B + b) * H;
                    T* __restrict a = h + ((t + 1) * B + b) * H;
#pragma omp simd
                    for (int64_t j = 0; j < H; ++j) a[j] = act<F>(z[j] + zx[j]);
                  },
                  noise<T>(rdrop, std::nullopt));
}

// hs: a(t) of every step, (T, B, H)
template <int64_t F, typename T>
void elman_backward_t(const Tensor& hs, const Tensor& w, const Tensor& dz, const Tensor& dhseq,
                      const Tensor& dh, const std::optional<Tensor>& mask,
                      const std::optional<Tensor>& rdrop) {
  const int64_t steps = hs.size(0), B = hs.size(1), H = hs.size(2);
  const T* h = ptr<T>(hs);
  backward_loop<T>(steps, B, H, H, ptr<T>(w), mut<T>(dz), H, 0, ptr<T>(dhseq), dh,
                   mask_ptr(mask),
                   [&](int64_t t, int64_t b, const T* __restrict da, T* __restrict d) {
                     const T* __restrict a = h + (t * B + b) * H;
#pragma omp simd
                     for (int64_t j = 0; j < H; ++j) d[j] = da[j] * slope<F>(a[j]);  // da f'
                   },
                   Nothing{}, Nothing{}, nullptr, noise<T>(rdrop, std::nullopt));
}

void elman_forward(const Tensor& xp, const Tensor& w, const Tensor& hs, int64_t f,
                   const std::optional<Tensor>& mask, const std::optional<Tensor>& rdrop) {
  dispatch(xp, [&](auto zero) {
    using T = decltype(zero);
    if (f == kTanh) elman_forward_t<kTanh, T>(xp, w, hs, mask, rdrop);
    else if (f == kRelu) elman_forward_t<kRelu, T>(xp, w, hs, mask, rdrop);
    else elman_forward_t<kSigmoid, T>(xp, w, hs, mask, rdrop);
  });
}

void elman_backward(const Tensor& hs, const Tensor& w, int64_t f, const Tensor& dz,
                    const Tensor& dhseq, const Tensor& dh, const std::optional<Tensor>& mask,
                    const std::optional<Tensor>& rdrop) {
  dispatch(hs, [&](auto zero) {
    using T = decltype(zero);
    if (f == kTanh) elman_backward_t<kTanh, T>(hs, w, dz, dhseq, dh, mask, rdrop);
    else if (f == kRelu) elman_backward_t<kRelu, T>(hs, w, dz, dhseq, dh, mask, rdrop);
    else elman_backward_t<kSigmoid, T>(hs, w, dz, dhseq, dh, mask, rdrop);
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
                    const Tensor& c0, const Tensor& kept, const std::optional<Tensor>& mask,
                    const std::optional<Tensor>& rdrop, const std::optional<Tensor>& zh,
                    const std::optional<Tensor>& zc) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2), k = kept.size(2);
  const T *x = ptr<T>(xp), *c_init = ptr<T>(c0), *zone_c = opt_ptr<T>(zc);
  T *h = mut<T>(hs), *c = mut<T>(cs), *kp = mut<T>(kept);
  forward_loop<T>(steps, B, H, 4 * H, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* z, bool on) {
                    const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
                    T *cn = c + (t * B + b) * H, *hn = h + ((t + 1) * B + b) * H;
                    const T* zx = x + (t * B + b) * 4 * H;
                    T* kb = kp + (t * B + b) * k * H;
                    if (k == 4) lstm_row<4>(z, zx, c_prev, cn, hn, kb, H);
                    else lstm_row<2>(z, zx, c_prev, cn, hn, kb, H);
                    if (!on) {
                      std::copy(c_prev, c_prev + H, cn);  // carries c(t-1)
                    } else if (zone_c) {  // c(t) = c~ + d (c(t-1) - c~); h~ read c~
                      const T* d = zone_c + (t * B + b) * H;
#pragma omp simd
                      for (int64_t j = 0; j < H; ++j) cn[j] += d[j] * (c_prev[j] - cn[j]);
                    }
                  },
                  noise<T>(rdrop, zh));
}

// the backward of one row (cells/lstm.py's docstring) from the gates i, f (pre-activations if
// Activate) and g, o: the pre-activation gradients into d (4, H), dc turned into dc(t-1)
// Zone (zoneout on c, d: zc): c holds the zoned c(t), h~ read c~ = f c(t-1) + i g (recomputed),
// and of dc, (1 - d) dc reaches c~, d dc c(t-1) directly (dh is already h~'s share)
template <bool Activate, bool Zone, typename T>
inline void lstm_back_row(const T* __restrict a_if, const T* __restrict a_go,
                          const T* __restrict c, const T* __restrict c_prev,
                          const T* __restrict zc, const T* __restrict dh, T* __restrict dc,
                          T* __restrict d, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T i = a_if[j], f = a_if[H + j];
    if constexpr (Activate) i = sigm(i), f = sigm(f);
    const T g = a_go[j], o = a_go[H + j];
    T cj = c[j], dcin = dc[j], carry = T(0);
    if constexpr (Zone) cj = f * c_prev[j] + i * g, dcin = (T(1) - zc[j]) * dc[j],
                        carry = zc[j] * dc[j];
    const T tc = std::tanh(cj);
    const T dcj = dcin + dh[j] * o * (T(1) - tc * tc);  // dc = dc' + dh' o (1 - tanh(c')^2)
    d[j] = dcj * g * i * (T(1) - i);                     // di~ = dc g i(1-i)
    d[H + j] = dcj * c_prev[j] * f * (T(1) - f);         // df~ = dc c(t-1) f(1-f)
    d[2 * H + j] = dcj * i * (T(1) - g * g);             // dg~ = dc i (1-g^2)
    d[3 * H + j] = dh[j] * tc * o * (T(1) - o);          // do~ = dh' tanh(c') o(1-o)
    dc[j] = dcj * f + carry;                             // dc(t-1) = dc f
  }
}

// a_if, a_go: (T, B, 2, H) with any row stride (views of the kept gates, or i, f recomputed)
template <typename T>
void lstm_backward_t(const Tensor& a_if, bool activate, const Tensor& a_go, const Tensor& cs,
                     const Tensor& c0, const Tensor& w, const Tensor& dz, const Tensor& dhseq,
                     const Tensor& dh, const Tensor& dc, const std::optional<Tensor>& db,
                     const std::optional<Tensor>& mask, const std::optional<Tensor>& rdrop,
                     const std::optional<Tensor>& zh, const std::optional<Tensor>& zc) {
  const int64_t steps = cs.size(0), B = cs.size(1), H = cs.size(2);
  const int64_t s_if = a_if.stride(1), s_go = a_go.stride(1);
  const T *aif = ptr<T>(a_if), *ago = ptr<T>(a_go), *c = ptr<T>(cs), *c_init = ptr<T>(c0);
  const T* zone_c = opt_ptr<T>(zc);
  T* dcp = mut<T>(dc);
  const ColumnSums<T> sums(db, 4 * H);  // the bias gradient
  backward_loop<T>(steps, B, H, 4 * H, ptr<T>(w), mut<T>(dz), 4 * H, 0, ptr<T>(dhseq), dh,
                   mask_ptr(mask),
                   [&](int64_t t, int64_t b, const T* dh_b, T* d) {
                     const int64_t r = t * B + b;
                     const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
                     const T *fr = aif + r * s_if, *bk = ago + r * s_go, *ct = c + r * H;
                     T* dcb = dcp + b * H;
                     const T* zr = zone_c ? zone_c + r * H : nullptr;
                     if (zr && activate)
                       lstm_back_row<true, true>(fr, bk, ct, c_prev, zr, dh_b, dcb, d, H);
                     else if (zr)
                       lstm_back_row<false, true>(fr, bk, ct, c_prev, zr, dh_b, dcb, d, H);
                     else if (activate)
                       lstm_back_row<true, false>(fr, bk, ct, c_prev, zr, dh_b, dcb, d, H);
                     else
                       lstm_back_row<false, false>(fr, bk, ct, c_prev, zr, dh_b, dcb, d, H);
                   },
                   Nothing{}, Nothing{}, sums.ptr(), noise<T>(rdrop, zh));
  sums.finish(db);
}

void lstm_forward(const Tensor& xp, const Tensor& w, const Tensor& hs, const Tensor& cs,
                  const Tensor& c0, const Tensor& kept, const std::optional<Tensor>& mask,
                  const std::optional<Tensor>& rdrop, const std::optional<Tensor>& zh,
                  const std::optional<Tensor>& zc) {
  dispatch(xp, [&](auto zero) {
    lstm_forward_t<decltype(zero)>(xp, w, hs, cs, c0, kept, mask, rdrop, zh, zc);
  });
}

void lstm_backward(const Tensor& a_if, bool activate, const Tensor& a_go, const Tensor& cs,
                   const Tensor& c0, const Tensor& w, const Tensor& dz, const Tensor& dhseq,
                   const Tensor& dh, const Tensor& dc, const std::optional<Tensor>& db,
                   const std::optional<Tensor>& mask, const std::optional<Tensor>& rdrop,
                   const std::optional<Tensor>& zh, const std::optional<Tensor>& zc) {
  dispatch(cs, [&](auto zero) {
    lstm_backward_t<decltype(zero)>(a_if, activate, a_go, cs, c0, w, dz, dhseq, dh, dc, db,
                                    mask, rdrop, zh, zc);
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
                   const std::optional<Tensor>& kept, const std::optional<Tensor>& mask,
                   const std::optional<Tensor>& rdrop, const std::optional<Tensor>& zh) {
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
                  },
                  noise<T>(rdrop, zh));
}

// rz (T, B, 2H), hn, n (T, B, H): any row stride; d (T, B, 4H) laid out as gru.py's
// backward_prepare: dn~ (for xp's n rows), dr~, dz~, dn~ r (for W_hh h's n rows)
template <typename T>
void gru_backward_t(const Tensor& rz, const Tensor& hn, const Tensor& n, const Tensor& h_prev,
                    const Tensor& w, const Tensor& dz, const Tensor& dhseq, const Tensor& dh,
                    const std::optional<Tensor>& mask, const std::optional<Tensor>& rdrop,
                    const std::optional<Tensor>& zh) {
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
      },
      Nothing{}, nullptr, noise<T>(rdrop, zh));
}

void gru_forward(const Tensor& xp, const Tensor& w, const Tensor& b_n, const Tensor& hs,
                 const std::optional<Tensor>& kept, const std::optional<Tensor>& mask,
                 const std::optional<Tensor>& rdrop, const std::optional<Tensor>& zh) {
  dispatch(xp, [&](auto zero) {
    gru_forward_t<decltype(zero)>(xp, w, b_n, hs, kept, mask, rdrop, zh);
  });
}

void gru_backward(const Tensor& rz, const Tensor& hn, const Tensor& n, const Tensor& h_prev,
                  const Tensor& w, const Tensor& dz, const Tensor& dhseq, const Tensor& dh,
                  const std::optional<Tensor>& mask, const std::optional<Tensor>& rdrop,
                  const std::optional<Tensor>& zh) {
  dispatch(h_prev, [&](auto zero) {
    gru_backward_t<decltype(zero)>(rz, hn, n, h_prev, w, dz, dhseq, dh, mask, rdrop, zh);
  });
}

// ---- the LSTM variants (cells/lstm_variants.py) ---------------------------------------------
enum Variant : int64_t { kPeephole = 1, kCIFG = 2, kNoForget = 3 };

// forward_into for one row: zh = W_hh h, zx = xp (G gates); the last K activated gates into
// kept (K = G: all of them). Peephole: i, f look at c, o at c' (p = p_i, p_f, p_o); CIFG:
// i = 1 - f; no forget gate: c' = c + i g.
template <int64_t V, int64_t K, typename T>
inline void variant_row(const T* __restrict zh, const T* __restrict zx, const T* __restrict p,
                        const T* __restrict c, T* __restrict c1, T* __restrict h1,
                        T* __restrict kept, int64_t H) {
  constexpr int64_t G = V == kPeephole ? 4 : 3;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T cj, gates[4];
    if constexpr (V == kPeephole) {
      const T i = sigm(zh[j] + zx[j] + p[j] * c[j]);
      const T f = sigm(zh[H + j] + zx[H + j] + p[H + j] * c[j]);
      const T g = std::tanh(zh[2 * H + j] + zx[2 * H + j]);
      cj = f * c[j] + i * g;                                        // c' = f c + i g
      const T o = sigm(zh[3 * H + j] + zx[3 * H + j] + p[2 * H + j] * cj);  // o sees c'
      gates[0] = i, gates[1] = f, gates[2] = g, gates[3] = o;
    } else {
      const T a = sigm(zh[j] + zx[j]), g = std::tanh(zh[H + j] + zx[H + j]);
      if constexpr (V == kCIFG) cj = g + a * (c[j] - g);  // c' = f c + (1 - f) g
      else cj = c[j] + a * g;                             // c' = c + i g
      gates[0] = a, gates[1] = g, gates[2] = sigm(zh[2 * H + j] + zx[2 * H + j]);
    }
    c1[j] = cj;
    h1[j] = gates[G - 1] * std::tanh(cj);  // h' = o tanh(c')
    for (int64_t q = 0; q < K; ++q) kept[q * H + j] = gates[G - K + q];
  }
}

template <int64_t V, int64_t K, typename T>
void variant_forward_t(const Tensor& xp, const Tensor& w, const std::optional<Tensor>& peep,
                       const Tensor& hs, const Tensor& cs, const Tensor& c0, const Tensor& kept,
                       const std::optional<Tensor>& mask, const std::optional<Tensor>& rdrop) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2), G = xp.size(2);
  const T *x = ptr<T>(xp), *c_init = ptr<T>(c0), *p = peep ? ptr<T>(*peep) : nullptr;
  T *h = mut<T>(hs), *c = mut<T>(cs), *kp = mut<T>(kept);
  forward_loop<T>(steps, B, H, G, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* z, bool on) {
                    const int64_t r = t * B + b;
                    const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
                    T *cn = c + r * H, *hn = h + (r + B) * H;
                    variant_row<V, K>(z, x + r * G, p, c_prev, cn, hn, kp + r * K * H, H);
                    if (!on) std::copy(c_prev, c_prev + H, cn);  // carries c(t-1)
                  },
                  noise<T>(rdrop, std::nullopt));
}

// the variant V with the last K of its gates kept
template <int64_t V, typename T>
void variant_forward_k(const Tensor& xp, const Tensor& w, const std::optional<Tensor>& peep,
                       const Tensor& hs, const Tensor& cs, const Tensor& c0, const Tensor& kept,
                       const std::optional<Tensor>& mask, const std::optional<Tensor>& rdrop) {
  switch (kept.size(2)) {
    case 1: return variant_forward_t<V, 1, T>(xp, w, peep, hs, cs, c0, kept, mask, rdrop);
    case 2: return variant_forward_t<V, 2, T>(xp, w, peep, hs, cs, c0, kept, mask, rdrop);
    case 3: return variant_forward_t<V, 3, T>(xp, w, peep, hs, cs, c0, kept, mask, rdrop);
    default: return variant_forward_t<V, 4, T>(xp, w, peep, hs, cs, c0, kept, mask, rdrop);
  }
}

void variant_forward(const Tensor& xp, const Tensor& w, const std::optional<Tensor>& peep,
                     int64_t variant, const Tensor& hs, const Tensor& cs, const Tensor& c0,
                     const Tensor& kept, const std::optional<Tensor>& mask,
                     const std::optional<Tensor>& rdrop) {
  dispatch(xp, [&](auto zero) {
    using T = decltype(zero);
    if (variant == kPeephole)
      variant_forward_k<kPeephole, T>(xp, w, peep, hs, cs, c0, kept, mask, rdrop);
    else if (variant == kCIFG)
      variant_forward_k<kCIFG, T>(xp, w, peep, hs, cs, c0, kept, mask, rdrop);
    else
      variant_forward_k<kNoForget, T>(xp, w, peep, hs, cs, c0, kept, mask, rdrop);
  });
}

// The backward of one row (lstm_variants.py's docstring) from the gates: the F front ones
// (pre-activations if Activate, to which the peephole cell adds p c(t-1)) and the kept last
// ones; writes the pre-activation gradients d (G, H) and turns dc into dc(t-1).
template <int64_t V, bool Activate, typename T>
inline void variant_back_row(const T* __restrict front, const T* __restrict back,
                             const T* __restrict p, const T* __restrict c,
                             const T* __restrict c_prev, const T* __restrict dh,
                             T* __restrict dc, T* __restrict d, int64_t H) {
  constexpr int64_t G = V == kPeephole ? 4 : 3, F = V == kCIFG ? 1 : 2;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T a[4];
    for (int64_t k = 0; k < F; ++k) {
      T z = front[k * H + j];
      if constexpr (Activate) {
        if constexpr (V == kPeephole) z += p[k * H + j] * c_prev[j];  // i, f look at c
        z = V == kNoForget && k == 1 ? std::tanh(z) : sigm(z);      // g's tanh
      }
      a[k] = z;
    }
    for (int64_t k = F; k < G; ++k) a[k] = back[(k - F) * H + j];
    const T o = a[G - 1], tc = std::tanh(c[j]);
    const T dout = dh[j] * tc * o * (T(1) - o);     // do~ = dh' tanh(c') o(1-o)
    T dcj = dc[j] + dh[j] * o * (T(1) - tc * tc);  // dc = dc' + dh' o (1 - tanh(c')^2)
    d[(G - 1) * H + j] = dout;
    if constexpr (V == kPeephole) {
      const T i = a[0], f = a[1], g = a[2];
      dcj += dout * p[2 * H + j];  // o looks at c'
      const T di = dcj * g * i * (T(1) - i), df = dcj * c_prev[j] * f * (T(1) - f);
      d[j] = di, d[H + j] = df, d[2 * H + j] = dcj * i * (T(1) - g * g);
      dc[j] = dcj * f + di * p[j] + df * p[H + j];  // dc(t-1) = dc f + di~ p_i + df~ p_f
    } else if constexpr (V == kCIFG) {
      const T f = a[0], g = a[1];
      d[j] = dcj * (c_prev[j] - g) * f * (T(1) - f);   // df~ = dc (c - g) f(1-f)
      d[H + j] = dcj * (T(1) - f) * (T(1) - g * g);  // dg~ = dc (1-f)(1-g^2)
      dc[j] = dcj * f;
    } else {
      const T i = a[0], g = a[1];
      d[j] = dcj * g * i * (T(1) - i);      // di~ = dc g i(1-i)
      d[H + j] = dcj * i * (T(1) - g * g);  // dg~ = dc i (1-g^2)
      dc[j] = dcj;                          // no forget gate: dc(t-1) = dc
    }
  }
}

// The peephole weights' gradients, summed over the rows a thread runs (acc: its 3 H floats):
// dp_i += di~ c(t-1), dp_f += df~ c(t-1), dp_o += do~ c(t), while the row is in cache.
template <typename T>
inline void peephole_grads(const T* __restrict d, const T* __restrict c_prev,
                           const T* __restrict c, T* __restrict acc, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    acc[j] += d[j] * c_prev[j];
    acc[H + j] += d[H + j] * c_prev[j];
    acc[2 * H + j] += d[3 * H + j] * c[j];
  }
}

// front (T, B, F, H) and back (T, B, G - F, H): any row strides (views of the kept gates, or
// the front gates' pre-activations recomputed); dpeep (3, H): the peephole cell's gradients
template <int64_t V, bool Activate, typename T>
void variant_backward_t(const Tensor& front, const Tensor& back,
                        const std::optional<Tensor>& peep, const Tensor& cs, const Tensor& c0,
                        const Tensor& w, const Tensor& dz, const Tensor& dhseq, const Tensor& dh,
                        const Tensor& dc, const std::optional<Tensor>& dpeep,
                        const std::optional<Tensor>& db, const std::optional<Tensor>& mask,
                        const std::optional<Tensor>& rdrop) {
  const int64_t steps = cs.size(0), B = cs.size(1), H = cs.size(2), G = dz.size(2);
  const auto Fr = rows<T>(front), Bk = rows<T>(back);
  const T *c = ptr<T>(cs), *c_init = ptr<T>(c0), *p = peep ? ptr<T>(*peep) : nullptr;
  T* dcp = mut<T>(dc);
  const std::optional<Tensor> none;
  const ColumnSums<T> peeps(V == kPeephole ? dpeep : none, 3 * H), sums(db, G);  // dp, db
  backward_loop<T>(steps, B, H, G, ptr<T>(w), mut<T>(dz), G, 0, ptr<T>(dhseq), dh,
                   mask_ptr(mask),
                   [&](int64_t t, int64_t b, const T* g, T* d) {
                     const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
                     const T* c_t = c + (t * B + b) * H;
                     variant_back_row<V, Activate>(Fr.at(t, b), Bk.at(t, b), p, c_t, c_prev, g,
                                                   dcp + b * H, d, H);
                     if (peeps.ptr()) peephole_grads(d, c_prev, c_t, peeps.row(), H);
                   },
                   Nothing{}, Nothing{}, sums.ptr(), noise<T>(rdrop, std::nullopt));
  peeps.finish(V == kPeephole ? dpeep : none);
  sums.finish(db);
}

template <int64_t V, typename T>
void variant_backward_v(const Tensor& front, bool activate, const Tensor& back,
                        const std::optional<Tensor>& peep, const Tensor& cs, const Tensor& c0,
                        const Tensor& w, const Tensor& dz, const Tensor& dhseq, const Tensor& dh,
                        const Tensor& dc, const std::optional<Tensor>& dpeep,
                        const std::optional<Tensor>& db, const std::optional<Tensor>& mask,
                        const std::optional<Tensor>& rdrop) {
  if (activate)
    variant_backward_t<V, true, T>(front, back, peep, cs, c0, w, dz, dhseq, dh, dc, dpeep, db,
                                   mask, rdrop);
  else
    variant_backward_t<V, false, T>(front, back, peep, cs, c0, w, dz, dhseq, dh, dc, dpeep, db,
                                    mask, rdrop);
}

void variant_backward(const Tensor& front, bool activate, const Tensor& back,
                      const std::optional<Tensor>& peep, int64_t variant, const Tensor& cs,
                      const Tensor& c0, const Tensor& w, const Tensor& dz, const Tensor& dhseq,
                      const Tensor& dh, const Tensor& dc, const std::optional<Tensor>& dpeep,
                      const std::optional<Tensor>& db, const std::optional<Tensor>& mask,
                      const std::optional<Tensor>& rdrop) {
  dispatch(dz, [&](auto zero) {
    using T = decltype(zero);
    if (variant == kPeephole)
      variant_backward_v<kPeephole, T>(front, activate, back, peep, cs, c0, w, dz, dhseq, dh,
                                       dc, dpeep, db, mask, rdrop);
    else if (variant == kCIFG)
      variant_backward_v<kCIFG, T>(front, activate, back, peep, cs, c0, w, dz, dhseq, dh, dc,
                                   dpeep, db, mask, rdrop);
    else
      variant_backward_v<kNoForget, T>(front, activate, back, peep, cs, c0, w, dz, dhseq, dh,
                                       dc, dpeep, db, mask, rdrop);
  });
}

// ---- reset before the product: gru_cho (cells/gru.py), MUT1-3 (cells/mut.py) --------------
// r (and z) from a first product on h (MUT3: z from a second one on tanh(h)), then n from a
// product on r * h: two products a step, each followed by its rows.
//   z_from: 0 z from W_a's second block (reads h: gru_cho, MUT2); 1 from xp alone (MUT1);
//           2 from W_zt tanh(h) (MUT3)
//   overwrite: h' = h + z (n - h) (the MUTs); else h' = n + z (h - n) (gru_cho)
//   o_r, o_z, o_n: where r, z and n sit in xp's 3 blocks
//   keep: the bits (1 r, 2 z, 4 n, 8 r h) of what the forward writes into kept, in that order
struct ResetFirst {
  int64_t o_r, o_z, o_n, z_from;
  bool overwrite;
  int64_t keep;
  // where block i (r, z, n, r h) sits in a kept row (-1: not kept), and how many are kept
  int64_t slot(int64_t i) const {
    return keep >> i & 1 ? __builtin_popcountll(keep & ((1 << i) - 1)) : -1;
  }
  int64_t kept() const { return __builtin_popcountll(keep); }
};

template <typename T>
void reset_forward_t(const Tensor& xp, const Tensor& w_a, const std::optional<Tensor>& w_zt,
                     const Tensor& w_n, const ResetFirst& f, const Tensor& hs,
                     const std::optional<Tensor>& kept, const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2), Ka = w_a.size(0);
  std::vector<T> s1(B * 2 * H), s2(B * H), rh(B * H), zs(B * H), th(B * H);
  const T* x = ptr<T>(xp);
  T *h = mut<T>(hs), *kp = kept ? mut<T>(*kept) : nullptr;
  const bool* mk = mask_ptr(mask);
#pragma omp parallel num_threads(at::get_num_threads())
  {
    Panels<T> pa(ptr<T>(w_a), H, Ka, 1, H), pn(ptr<T>(w_n), H, H, 1, H);
    std::optional<Panels<T>> pz;
    if (w_zt) pz.emplace(ptr<T>(*w_zt), H, H, 1, H);
    const auto [b0, b1] = share(B);
    if (pz)
      for (int64_t i = b0 * H; i < b1 * H; ++i) th[i] = std::tanh(h[i]);
#pragma omp barrier
    for (int64_t t = 0; t < steps; ++t) {
      const T* h_prev = h + t * B * H;
      pa.multiply(B, h_prev, H, s1.data(), 2 * H);  // W_a h: r (, z)
      if (pz) pz->multiply(B, th.data(), H, s1.data() + H, 2 * H);  // W_zt tanh(h): z
#pragma omp barrier
      for (int64_t b = b0; b < b1; ++b) {
        const T *__restrict a = s1.data() + b * 2 * H, *__restrict xr = x + (t * B + b) * 3 * H;
        const T* __restrict hp = h_prev + b * H;
        T *__restrict u = rh.data() + b * H, *__restrict zb = zs.data() + b * H;
        const T *xr_r = xr + f.o_r * H, *xr_z = xr + f.o_z * H;
        const T* az = f.z_from == 1 ? nullptr : a + H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T r = sigm(a[j] + xr_r[j]);
          zb[j] = sigm(xr_z[j] + (az ? az[j] : T(0)));
          u[j] = r * hp[j];  // r h
        }
        if (kp) {  // r, z, r h: those kept
          T* k = kp + (t * B + b) * f.kept() * H;
          const int64_t sr = f.slot(0), sz = f.slot(1), su = f.slot(3);
          if (sr >= 0)
            for (int64_t j = 0; j < H; ++j) k[sr * H + j] = sigm(a[j] + xr_r[j]);
          if (sz >= 0) std::copy(zb, zb + H, k + sz * H);
          if (su >= 0) std::copy(u, u + H, k + su * H);
        }
      }
#pragma omp barrier
      pn.multiply(B, rh.data(), H, s2.data(), H);  // W_n (r h)
#pragma omp barrier
      for (int64_t b = b0; b < b1; ++b) {
        const T* __restrict a = s2.data() + b * H;
        const T* __restrict xn = x + (t * B + b) * 3 * H + f.o_n * H;
        const T *__restrict hp = h_prev + b * H, *__restrict zb = zs.data() + b * H;
        T* __restrict h1 = h + ((t + 1) * B + b) * H;
        T* k = kp && f.slot(2) >= 0 ? kp + ((t * B + b) * f.kept() + f.slot(2)) * H : nullptr;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T n = std::tanh(a[j] + xn[j]);
          h1[j] = f.overwrite ? hp[j] + zb[j] * (n - hp[j]) : n + zb[j] * (hp[j] - n);
          if (k) k[j] = n;
        }
        if (mk && !mk[t * B + b]) std::copy(hp, hp + H, h1);  // a masked-out step carries h
        if (pz)
          for (int64_t j = 0; j < H; ++j) th[b * H + j] = std::tanh(h1[j]);
      }
#pragma omp barrier
    }
    if constexpr (std::is_same_v<T, float>) at::native::cpublas::brgemm_release(false);
  }
}

void reset_forward(const Tensor& xp, const Tensor& w_a, const std::optional<Tensor>& w_zt,
                   const Tensor& w_n, int64_t o_r, int64_t o_z, int64_t o_n, int64_t z_from,
                   bool overwrite, int64_t keep, const Tensor& hs,
                   const std::optional<Tensor>& kept, const std::optional<Tensor>& mask) {
  const ResetFirst f{o_r, o_z, o_n, z_from, overwrite, keep};
  dispatch(xp, [&](auto zero) {
    reset_forward_t<decltype(zero)>(xp, w_a, w_zt, w_n, f, hs, kept, mask);
  });
}

// The backward loop from the gates r, z, n and h(t-1) of every step (T, B, H views, any
// strides; th = tanh(h(t-1)) where z reads it, MUT3), each row's coefficients made as it runs:
//   overwrite (h' = h + z (n - h)):  dn~ = dh' z (1 - n^2),  dz~ = dh' (n - h) z (1 - z)
//   else      (h' = n + z (h - n)):  dn~ = dh' (1 - z)(1 - n^2),  dz~ = dh' (h - n) z (1 - z)
//   d(r h) = dn~ W_n,  dr~ = d(r h) r (1 - r) h,
//   dh(t-1) = [dr~ (, dz~)] W_a (+ (dz~ W_zt)(1 - th^2)) + d(r h) r + dh' (1 - z, or z)
//             + the loss's part
// into dn, dr, dz (views of the engine's (T, B, 3H) buffer: when W_a has 2H rows, dz follows dr).
template <typename T>
void reset_backward_t(const Tensor& r, const Tensor& z, const Tensor& n, const Tensor& h_prev,
                      bool overwrite, const std::optional<Tensor>& th, const Tensor& dn,
                      const Tensor& dr, const Tensor& dz, const Tensor& w_a,
                      const std::optional<Tensor>& w_zt, const Tensor& w_n,
                      const Tensor& dhseq, const Tensor& dh, const std::optional<Tensor>& mask) {
  const int64_t steps = r.size(0), B = r.size(1), H = r.size(2), Ka = w_a.size(0);
  const auto R = rows<T>(r), Z = rows<T>(z), N = rows<T>(n), Hp = rows<T>(h_prev);
  const auto Th = th ? rows<T>(*th) : Rows<T>{nullptr, 0, 0};
  const auto Dn = rows<T>(dn), Dr = rows<T>(dr), Dz = rows<T>(dz);
  const T* ext = ptr<T>(dhseq);
  const bool* mk = mask_ptr(mask);
  std::vector<T> drh(B * H), tmp(B * H);
  Tensor spare = at::empty_like(dh);
  T* buf[2] = {mut<T>(dh), mut<T>(spare)};
#pragma omp parallel num_threads(at::get_num_threads())
  {
    Panels<T> pn(ptr<T>(w_n), H, H, H, 1), pa(ptr<T>(w_a), Ka, H, H, 1);
    std::optional<Panels<T>> pz;
    if (w_zt) pz.emplace(ptr<T>(*w_zt), H, H, H, 1);
    const int64_t n0 = pn.col0(), n1 = pn.col1();
    const auto [b0, b1] = share(B);
    for (int64_t t = steps - 1; t >= 0; --t) {
      const T* dh_t = buf[(steps - 1 - t) % 2];
      T* dh_prev = buf[(steps - t) % 2];
      for (int64_t b = b0; b < b1; ++b) {
        const T on = !mk || mk[t * B + b] ? T(1) : T(0);
        const T *__restrict g = dh_t + b * H, *__restrict zb = Z.at(t, b);
        const T *__restrict nb = N.at(t, b), *__restrict hb = Hp.at(t, b);
        T *__restrict dnb = Dn.at(t, b), *__restrict dzb = Dz.at(t, b);
        const T sign = overwrite ? T(1) : T(-1);  // n - h, or h - n
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T zj = zb[j], nj = nb[j], gj = g[j] * on;
          dnb[j] = gj * (overwrite ? zj : T(1) - zj) * (T(1) - nj * nj);  // dn~
          dzb[j] = gj * sign * (nj - hb[j]) * zj * (T(1) - zj);           // dz~
        }
      }
#pragma omp barrier
      pn.multiply(B, Dn.at(t, 0), Dn.sb, drh.data(), H);  // d(r h) = dn~ W_n
#pragma omp barrier
      for (int64_t b = b0; b < b1; ++b) {
        const T *__restrict u = drh.data() + b * H, *__restrict rb = R.at(t, b);
        const T* __restrict hb = Hp.at(t, b);
        T* __restrict drb = Dr.at(t, b);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) drb[j] = u[j] * rb[j] * (T(1) - rb[j]) * hb[j];  // dr~
      }
#pragma omp barrier
      pa.multiply(B, Dr.at(t, 0), Dr.sb, dh_prev, H);  // [dr~ (, dz~)] W_a
      if (pz) pz->multiply(B, Dz.at(t, 0), Dz.sb, tmp.data(), H);  // dz~ W_zt
      for (int64_t b = 0; b < B; ++b) {
        T* __restrict out = dh_prev + b * H;
        const T *__restrict g = dh_t + b * H, *__restrict u = drh.data() + b * H;
        const T *__restrict rb = R.at(t, b), *__restrict zb = Z.at(t, b);
        if (t > 0) {
          const T* e = ext + ((t - 1) * B + b) * H;
          for (int64_t j = n0; j < n1; ++j) out[j] += e[j];
        }
        if (mk && !mk[t * B + b]) {
          for (int64_t j = n0; j < n1; ++j) out[j] += g[j];  // passes dh through
          continue;
        }
#pragma omp simd
        for (int64_t j = n0; j < n1; ++j)
          out[j] += u[j] * rb[j] + g[j] * (overwrite ? T(1) - zb[j] : zb[j]);
        if (pz) {
          const T *__restrict tb = Th.at(t, b), *__restrict v = tmp.data() + b * H;
#pragma omp simd
          for (int64_t j = n0; j < n1; ++j) out[j] += v[j] * (T(1) - tb[j] * tb[j]);
        }
      }
#pragma omp barrier
    }
    if constexpr (std::is_same_v<T, float>) at::native::cpublas::brgemm_release(false);
  }
  if (steps % 2) dh.copy_(spare);
}

void reset_backward(const Tensor& r, const Tensor& z, const Tensor& n, const Tensor& h_prev,
                    bool overwrite, const std::optional<Tensor>& th, const Tensor& dn,
                    const Tensor& dr, const Tensor& dz, const Tensor& w_a,
                    const std::optional<Tensor>& w_zt, const Tensor& w_n, const Tensor& dhseq,
                    const Tensor& dh, const std::optional<Tensor>& mask) {
  dispatch(dh, [&](auto zero) {
    reset_backward_t<decltype(zero)>(r, z, n, h_prev, overwrite, th, dn, dr, dz, w_a, w_zt, w_n,
                                     dhseq, dh, mask);
  });
}

// ---- the weight gradients after the loops ----------------------------------------------------
// dW = d^T u (d: (N, G), u: (N, K), N = T B) through oneDNN's matmul, which reads d transposed
// as it lies: 5-14 % faster than torch's mm (MKL's AVX2 kernels on this AMD CPU) for these tall
// products. at::native::mkldnn_matmul is not in torch's installed headers: looked up by name
// at run time, so a torch without it (or one that refuses the call) gets at::mm instead.
using MatmulFn = void (*)(const Tensor&, const Tensor&, const Tensor&, float, float);

MatmulFn onednn_matmul() {
  static const MatmulFn f = [] {
    const char* name = "_ZN2at6native13mkldnn_matmulERKNS_6TensorES3_S3_ff";
    void* p = dlsym(RTLD_DEFAULT, name);
    if (!p)
      if (void* lib = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD)) p = dlsym(lib, name);
    return reinterpret_cast<MatmulFn>(p);
  }();
  return f;
}

Tensor weight_grad(const Tensor& d, const Tensor& u) {
  const bool dense = d.is_contiguous() && u.is_contiguous() && d.dim() == 2 && u.dim() == 2;
  if (dense && d.scalar_type() == at::kFloat && u.scalar_type() == at::kFloat)
    if (const MatmulFn f = onednn_matmul()) {
      Tensor out = at::empty({d.size(1), u.size(1)}, d.options());
      try {
        f(d.t(), u, out, 0.f, 1.f);
        return out;
      } catch (const c10::Error&) {
      }
    }
  return at::mm(d.t(), u);
}

// ---- NAS (cells/nas.py) ---------------------------------------------------------------------
// forward_into for one row: z = W_hh h + xp's first 8 blocks, in nas.py's ORDER (a4, a6 tanh;
// a0, a2, a5, a7 sigmoid; a1 relu; block 7: m3, whose relu takes x3 m3, x3 = xp's block 8)
// kept (if Keep): the 8 pre-activations, for the backward
template <bool Keep, typename T>
inline void nas_row(const T* __restrict zh, const T* __restrict zx, const T* __restrict c,
                    T* __restrict c1, T* __restrict h1, T* __restrict kept, int64_t H) {
  if constexpr (Keep)
    for (int64_t i = 0; i < 8 * H; ++i) kept[i] = zh[i] + zx[i];
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    auto z = [&](int64_t k) { return zh[k * H + j] + zx[k * H + j]; };
    const T a4 = std::tanh(z(0)), a6 = std::tanh(z(1)), a0 = sigm(z(2)), a2 = sigm(z(3));
    const T a5 = sigm(z(4)), a7 = sigm(z(5)), a1 = std::max(z(6), T(0));
    const T a3 = std::max(z(7) * zx[8 * H + j], T(0));  // relu(x3 m3)
    const T b0 = std::tanh(a0 * a1), b1 = std::tanh(a2 + a3), b2 = std::tanh(a4 * a5);
    const T b3 = sigm(a6 + a7);
    const T cj = std::tanh(b0 + c[j]) * b1;    // c' = tanh(b0 + c) b1
    c1[j] = cj;
    h1[j] = std::tanh(cj * std::tanh(b2 + b3));  // h' = tanh(c' tanh(b2 + b3))
  }
}

template <typename T>
void nas_forward_t(const Tensor& xp, const Tensor& w, const Tensor& hs, const Tensor& cs,
                   const Tensor& c0, const std::optional<Tensor>& kept,
                   const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2);
  const T *x = ptr<T>(xp), *c_init = ptr<T>(c0);
  T *h = mut<T>(hs), *c = mut<T>(cs), *kp = kept ? mut<T>(*kept) : nullptr;
  forward_loop<T>(steps, B, H, 8 * H, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* z, bool on) {
                    const int64_t r = t * B + b;
                    const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
                    const T* zx = x + r * 9 * H;
                    T *cn = c + r * H, *hn = h + (r + B) * H;
                    if (kp) nas_row<true>(z, zx, c_prev, cn, hn, kp + r * 8 * H, H);
                    else nas_row<false, T>(z, zx, c_prev, cn, hn, nullptr, H);
                    if (!on) std::copy(c_prev, c_prev + H, c + r * H);  // carries c(t-1)
                  });
}

// The backward of every step (nas.py's docstring), each row from its pre-activations z (W_hh h
// + xp's first 8 blocks, as the forward kept them), x3 and c: writes the 8
// blocks' gradients d (block 7: d m3), dc of each step into dc_all and dx3 per dc into
// dx3_per_dc (what backward_finish reads), and turns dc into dc(t-1).
template <typename T>
inline void nas_back_row(const T* __restrict z, const T* __restrict x3, const T* __restrict c,
                         const T* __restrict c_prev, const T* __restrict dh, T* __restrict dc,
                         T* __restrict dc_out, T* __restrict dx3, T* __restrict d, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T a4 = std::tanh(z[j]), a6 = std::tanh(z[H + j]), a0 = sigm(z[2 * H + j]);
    const T a2 = sigm(z[3 * H + j]), a5 = sigm(z[4 * H + j]), a7 = sigm(z[5 * H + j]);
    const T z6 = z[6 * H + j], a1 = std::max(z6, T(0)), m3 = z[7 * H + j];
    const T p3 = m3 * x3[j], a3 = std::max(p3, T(0));
    const T b0 = std::tanh(a0 * a1), b1 = std::tanh(a2 + a3), b2 = std::tanh(a4 * a5);
    const T b3 = sigm(a6 + a7);
    const T e = std::tanh(b0 + c_prev[j]), q = std::tanh(b2 + b3), h = std::tanh(c[j] * q);
    const T du = dh[j] * (T(1) - h * h);          // through h' = tanh(c' q)
    const T dcj = dc[j] + du * q;                  // dc = dc' + du q
    const T dq = du * c[j] * (T(1) - q * q);       // = db2 = db3
    const T de = dcj * b1 * (T(1) - e * e);        // = db0 = dc(t-1)
    const T k1 = e * (T(1) - b1 * b1);             // db1~ per dc
    const T g0 = de * (T(1) - b0 * b0), g1 = dcj * k1;
    const T g2 = dq * (T(1) - b2 * b2), g3 = dq * b3 * (T(1) - b3);
    const T on3 = p3 > T(0) ? T(1) : T(0), on1 = z6 > T(0) ? T(1) : T(0);
    d[j] = g2 * a5 * (T(1) - a4 * a4);          // a4
    d[H + j] = g3 * (T(1) - a6 * a6);           // a6
    d[2 * H + j] = g0 * a1 * a0 * (T(1) - a0);  // a0
    d[3 * H + j] = g1 * a2 * (T(1) - a2);       // a2
    d[4 * H + j] = g2 * a4 * a5 * (T(1) - a5);  // a5
    d[5 * H + j] = g3 * a7 * (T(1) - a7);       // a7
    d[6 * H + j] = g0 * a0 * on1;               // a1
    d[7 * H + j] = g1 * on3 * x3[j];            // m3 (a3 = relu(x3 m3))
    dx3[j] = k1 * on3 * m3;                     // dx3 per dc
    dc_out[j] = dcj;
    dc[j] = de;
  }
}

template <typename T>
void nas_backward_t(const Tensor& z, const Tensor& x3s, const Tensor& cs, const Tensor& c0,
                    const Tensor& w, const Tensor& dz, const Tensor& dc_all,
                    const Tensor& dx3_per_dc, const Tensor& dhseq, const Tensor& dh,
                    const Tensor& dc, const std::optional<Tensor>& mask) {
  const int64_t steps = dz.size(0), B = dz.size(1), H = dh.size(1);
  const T *pz = ptr<T>(z), *c = ptr<T>(cs), *c_init = ptr<T>(c0);
  const auto X3 = rows<T>(x3s);
  T *dcp = mut<T>(dc), *dca = mut<T>(dc_all), *dx3 = mut<T>(dx3_per_dc);
  backward_loop<T>(
      steps, B, H, 8 * H, ptr<T>(w), mut<T>(dz), 8 * H, 0, ptr<T>(dhseq), dh, mask_ptr(mask),
      [&](int64_t t, int64_t b, const T* g, T* d) {
        const int64_t r = t * B + b;
        const T* c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
        nas_back_row(pz + r * 8 * H, X3.at(t, b), c + r * H, c_prev, g, dcp + b * H,
                     dca + r * H, dx3 + r * H, d, H);
      },
      Nothing{},
      [&](int64_t t, int64_t b) {  // nothing reaches c' or x3 there either
        std::fill(dca + (t * B + b) * H, dca + (t * B + b + 1) * H, T(0));
        std::fill(dx3 + (t * B + b) * H, dx3 + (t * B + b + 1) * H, T(0));
      });
}

void nas_forward(const Tensor& xp, const Tensor& w, const Tensor& hs, const Tensor& cs,
                 const Tensor& c0, const std::optional<Tensor>& kept,
                 const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) { nas_forward_t<decltype(zero)>(xp, w, hs, cs, c0, kept, mask); });
}

void nas_backward(const Tensor& z, const Tensor& x3, const Tensor& cs, const Tensor& c0,
                  const Tensor& w, const Tensor& dz, const Tensor& dc_all,
                  const Tensor& dx3_per_dc, const Tensor& dhseq, const Tensor& dh,
                  const Tensor& dc, const std::optional<Tensor>& mask) {
  dispatch(dz, [&](auto zero) {
    nas_backward_t<decltype(zero)>(z, x3, cs, c0, w, dz, dc_all, dx3_per_dc, dhseq, dh, dc,
                                   mask);
  });
}

// ---- the minimal cells (cells/minimal.py) on the scan engine's CPU path ---------------------
// h(t) = h(t-1) + u(t) (h~(t) - h(t-1)), with u and h~ from xp alone: every (batch, unit) lane
// is a recurrence of its own, so the lanes run side by side (vectorised, rows split over
// threads), each stepping through time, with the gates' math fused in (no whole-sequence
// temporaries). A masked-out step has u = 0.
enum Minimal : int64_t { kMinGRU = 0, kMinLSTM = 1 };

template <typename T>
inline T softplus(T x) { return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x))); }

// u and h~ of one lane from its row of xp (z | h for minGRU, f | i | h for minLSTM)
template <int64_t M, typename T>
inline void minimal_gates(const T* k, int64_t H, int64_t j, T& u, T& ht) {
  const T kh = k[(M == kMinGRU ? 1 : 2) * H + j];
  ht = kh >= T(0) ? kh + T(0.5) : sigm(kh);  // g(k_h)
  if constexpr (M == kMinGRU) u = sigm(k[j]);
  else u = sigm(softplus(-k[j]) - softplus(-k[H + j]));  // i / (f + i)
}

template <int64_t M, typename T>
void minimal_forward_t(const Tensor& xp, const Tensor& h0, const Tensor& out,
                       const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = h0.size(1), G = xp.size(2);
  const T *x = ptr<T>(xp), *h_init = ptr<T>(h0);
  T* o = mut<T>(out);
  const bool* mk = mask_ptr(mask);
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T* h = h_init + b * H;
      for (int64_t t = 0; t < steps; ++t) {
        const T* k = x + (t * B + b) * G;
        T* __restrict now = o + (t * B + b) * H;
        const T on = !mk || mk[t * B + b] ? T(1) : T(0);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          T u, ht;
          minimal_gates<M>(k, H, j, u, ht);
          now[j] = h[j] + on * u * (ht - h[j]);
        }
        h = now;
      }
    }
  });
}

// the adjoint, lane by lane from the last step: dh(t) = dout(t) + (1 - u(t+1)) dh(t+1); each
// step's xp gradient as cells/minimal.py's input_backward; returns dh into h(0)
template <int64_t M, typename T>
void minimal_backward_t(const Tensor& xp, const Tensor& h0, const Tensor& out,
                        const Tensor& dout, const Tensor& dxp, const Tensor& dh0,
                        const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = h0.size(1), G = xp.size(2);
  const T *x = ptr<T>(xp), *h_init = ptr<T>(h0), *o = ptr<T>(out), *dy = ptr<T>(dout);
  T *dx = mut<T>(dxp), *carry = mut<T>(dh0);
  const bool* mk = mask_ptr(mask);
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* __restrict c = carry + b * H;  // (1 - u(t+1)) dh(t+1), then dh into h(0)
      std::fill(c, c + H, T(0));
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t r = t * B + b;
        const T *__restrict k = x + r * G, *__restrict g = dy + r * H;
        const T* __restrict h = t ? o + (r - B) * H : h_init + b * H;  // h(t-1)
        T* __restrict d = dx + r * G;
        if (mk && !mk[r]) {  // u = 0: the state and its gradient pass through
          std::fill(d, d + G, T(0));
          for (int64_t j = 0; j < H; ++j) c[j] += g[j];
          continue;
        }
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          T u, ht;
          minimal_gates<M>(k, H, j, u, ht);
          const T dh = g[j] + c[j];
          const T du = dh * (ht - h[j]) * u * (T(1) - u);  // through u's sigmoid
          const T kh = k[(M == kMinGRU ? 1 : 2) * H + j], s = sigm(kh);
          d[(M == kMinGRU ? 1 : 2) * H + j] = dh * u * (kh >= T(0) ? T(1) : s * (T(1) - s));
          if constexpr (M == kMinGRU) {
            d[j] = du;  // dk_z
          } else {
            d[j] = du * (sigm(k[j]) - T(1));       // dk_f = dd (f - 1)
            d[H + j] = du * (T(1) - sigm(k[H + j]));  // dk_i = -dd (i - 1)
          }
          c[j] = dh * (T(1) - u);
        }
      }
    }
  });
}

void minimal_forward(const Tensor& xp, const Tensor& h0, int64_t kind, const Tensor& out,
                     const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    using T = decltype(zero);
    if (kind == kMinGRU) minimal_forward_t<kMinGRU, T>(xp, h0, out, mask);
    else minimal_forward_t<kMinLSTM, T>(xp, h0, out, mask);
  });
}

void minimal_backward(const Tensor& xp, const Tensor& h0, int64_t kind, const Tensor& out,
                      const Tensor& dout, const Tensor& dxp, const Tensor& dh0,
                      const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    using T = decltype(zero);
    if (kind == kMinGRU) minimal_backward_t<kMinGRU, T>(xp, h0, out, dout, dxp, dh0, mask);
    else minimal_backward_t<kMinLSTM, T>(xp, h0, out, dout, dxp, dh0, mask);
  });
}

// ---- layer-normalised LSTM and GRU (cells/layernorm.py) -------------------------------------
// xp is W_ih x itself (no bias): each row of it and of the step's product W_hh h(t-1) is
// normalised here, LN(a) = gamma (a - mu) / sigma, where it sits in cache; the LSTM normalises
// c' too. The forward keeps the product (ss). The backward recomputes both normalisations and
// the gates row by row (from xp, formed again in Python, and the kept product), runs the three
// LN backwards there, writes d(W_hh h) into dz and d(W_ih x) into dxp, and sums the gains' and
// biases' gradients per thread (ColumnSums) while the rows are in cache.
constexpr double kLnEps = 1e-5;  // torch.nn.LayerNorm's

// mean and 1 / sqrt(var + eps) of a[0, n)
template <typename T>
inline void ln_stats(const T* __restrict a, int64_t n, T& mean, T& rstd) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += a[j];
  mean = s / T(n);
  T v = 0;
#pragma omp simd reduction(+ : v)
  for (int64_t j = 0; j < n; ++j) v += (a[j] - mean) * (a[j] - mean);
  rstd = T(1) / std::sqrt(v / T(n) + T(kLnEps));
}

// the pre-activations LN(W_ih x) gamma_x + b + LN(W_hh h) gamma_h of one row, n units
template <typename T>
inline void ln_pre(const T* __restrict ax, const T* __restrict s, const T* __restrict gx,
                   const T* __restrict bx, const T* __restrict gh, int64_t n,
                   T* __restrict out) {
  T mx, rx, mh, rh;
  ln_stats(ax, n, mx, rx);
  ln_stats(s, n, mh, rh);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j)
    out[j] = gx[j] * (ax[j] - mx) * rx + bx[j] + gh[j] * (s[j] - mh) * rh;
}

// the input and recurrent LN backwards of one row of n units, from du (the gradient of the
// input part's output) and ds (the recurrent part's; the same memory for the LSTM):
// d(W_hh h) into dhp, d(W_ih x) into dax, and into acc (4n sums) du, ds, du n_x, ds n_h;
// ds itself is only added up where DsSum (the GRU's b_hh)
template <bool DsSum, typename T>
inline void ln_back_row(const T* __restrict du, const T* __restrict ds, const T* __restrict ax,
                        const T* __restrict s, const T* __restrict gx, const T* __restrict gh,
                        int64_t n, T* __restrict dhp, T* __restrict dax, T* __restrict acc) {
  T mx, rx, mh, rh;
  ln_stats(ax, n, mx, rx);
  ln_stats(s, n, mh, rh);
  T x1 = 0, x2 = 0, h1 = 0, h2 = 0;
#pragma omp simd reduction(+ : x1, x2, h1, h2)
  for (int64_t j = 0; j < n; ++j) {
    const T nx = (ax[j] - mx) * rx, nh = (s[j] - mh) * rh;
    const T dx = du[j] * gx[j], dh = ds[j] * gh[j];
    x1 += dx, x2 += dx * nx, h1 += dh, h2 += dh * nh;
    acc[j] += du[j];
    if constexpr (DsSum) acc[n + j] += ds[j];
    acc[2 * n + j] += du[j] * nx;
    acc[3 * n + j] += ds[j] * nh;
  }
  x1 /= T(n), x2 /= T(n), h1 /= T(n), h2 /= T(n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const T nx = (ax[j] - mx) * rx, nh = (s[j] - mh) * rh;
    dhp[j] = rh * (ds[j] * gh[j] - h1 - nh * h2);  // da = (dn - mean dn - n mean(dn n)) / sigma
    dax[j] = rx * (du[j] * gx[j] - x1 - nx * x2);
  }
}

// per-thread rows of scratch (n floats each) for a row's intermediate values
template <typename T>
struct Work {
  std::vector<T> data;
  int64_t n;
  explicit Work(int64_t n) : data(at::get_num_threads() * n), n(n) {}
  T* row() { return data.data() + omp_get_thread_num() * n; }
};

template <typename T>
void lnlstm_forward_t(const Tensor& xp, const Tensor& w, const Tensor& g_x, const Tensor& b_x,
                      const Tensor& g_h, const Tensor& g_c, const Tensor& b_c, const Tensor& hs,
                      const Tensor& cs, const Tensor& ss, const Tensor& c0,
                      const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2);
  const T *x = ptr<T>(xp), *c_init = ptr<T>(c0), *gx = ptr<T>(g_x), *bx = ptr<T>(b_x),
          *gh = ptr<T>(g_h), *gc = ptr<T>(g_c), *bc = ptr<T>(b_c);
  T *h = mut<T>(hs), *c = mut<T>(cs), *sk = mut<T>(ss);
  Work<T> work(4 * H);
  forward_loop<T>(
      steps, B, H, 4 * H, ptr<T>(w), h, mask_ptr(mask),
      [&](int64_t t, int64_t b, const T* __restrict z, bool on) {
        const int64_t r = t * B + b;
        const T* __restrict c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
        T *__restrict cn = c + r * H, *__restrict hn = h + (r + B) * H;
        T* __restrict a = work.row();
        std::copy(z, z + 4 * H, sk + r * 4 * H);  // W_hh h(t-1), kept for the backward
        ln_pre(x + r * 4 * H, z, gx, bx, gh, 4 * H, a);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T i = sigm(a[j]), f = sigm(a[H + j]), g = std::tanh(a[2 * H + j]);
          cn[j] = f * c_prev[j] + i * g;  // c' = f c + i g
          hn[j] = sigm(a[3 * H + j]);     // o, for now
        }
        T mu, rs;
        ln_stats(cn, H, mu, rs);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j)  // h' = o tanh(LN(c'))
          hn[j] *= std::tanh(gc[j] * (cn[j] - mu) * rs + bc[j]);
        if (!on) std::copy(c_prev, c_prev + H, cn);  // carries c(t-1)
      });
}

// xp: W_ih x (T, B, 4H); s: W_hh h(t-1) of every step (T, B, 4H); dz, dxp (T, B, 4H):
// d(W_hh h), d(W_ih x); sums (18H): db, (unused), dgamma_x, dgamma_h (4H each),
// dgamma_c, dbeta_c (H each)
template <typename T>
void lnlstm_backward_t(const Tensor& xp, const Tensor& s, const Tensor& cs, const Tensor& c0,
                       const Tensor& g_x, const Tensor& b_x, const Tensor& g_h,
                       const Tensor& g_c, const Tensor& b_c, const Tensor& w, const Tensor& dz,
                       const Tensor& dxp, const Tensor& dhseq, const Tensor& dh,
                       const Tensor& dc, const Tensor& sums, const std::optional<Tensor>& mask) {
  const int64_t steps = cs.size(0), B = cs.size(1), H = cs.size(2);
  const T* X = ptr<T>(xp);
  T* DX = mut<T>(dxp);
  const T *S = ptr<T>(s), *c = ptr<T>(cs), *c_init = ptr<T>(c0), *gx = ptr<T>(g_x),
          *bx = ptr<T>(b_x), *gh = ptr<T>(g_h), *gc = ptr<T>(g_c), *bc = ptr<T>(b_c);
  T* dcp = mut<T>(dc);
  const std::optional<Tensor> out = sums;
  const ColumnSums<T> acc(out, 18 * H);
  Work<T> work(6 * H);
  backward_loop<T>(
      steps, B, H, 4 * H, ptr<T>(w), mut<T>(dz), 4 * H, 0, ptr<T>(dhseq), dh, mask_ptr(mask),
      [&](int64_t t, int64_t b, const T* __restrict dh_b, T* __restrict d) {
        const int64_t r = t * B + b;
        const T *__restrict ax = X + r * 4 * H, *__restrict sr = S + r * 4 * H;
        const T* __restrict cn = c + r * H;
        const T* __restrict c_prev = (t ? c + (t - 1) * B * H : c_init) + b * H;
        T *__restrict a = work.row(), *__restrict dch = a + 4 * H, *__restrict nc = a + 5 * H;
        T *__restrict dcb = dcp + b * H, *__restrict sum = acc.row();
        ln_pre(ax, sr, gx, bx, gh, 4 * H, a);
        T mu, rs, m1 = 0, m2 = 0;
        ln_stats(cn, H, mu, rs);
#pragma omp simd reduction(+ : m1, m2)
        for (int64_t j = 0; j < H; ++j) {
          const T o = sigm(a[3 * H + j]), n = (cn[j] - mu) * rs;
          const T tc = std::tanh(gc[j] * n + bc[j]);
          const T d_hat = dh_b[j] * o * (T(1) - tc * tc);  // d LN(c') = dh' o (1 - t^2)
          a[3 * H + j] = dh_b[j] * tc * o * (T(1) - o);    // do~ = dh' t o(1-o)
          dch[j] = d_hat, nc[j] = n;
          m1 += d_hat * gc[j], m2 += d_hat * gc[j] * n;
          sum[16 * H + j] += d_hat * n, sum[17 * H + j] += d_hat;
        }
        m1 /= T(H), m2 /= T(H);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T dcj = dcb[j] + rs * (dch[j] * gc[j] - m1 - nc[j] * m2);  // dc' + through LN
          const T i = sigm(a[j]), f = sigm(a[H + j]), g = std::tanh(a[2 * H + j]);
          a[j] = dcj * g * i * (T(1) - i);              // di~ = dc g i(1-i)
          a[H + j] = dcj * c_prev[j] * f * (T(1) - f);  // df~ = dc c f(1-f)
          a[2 * H + j] = dcj * i * (T(1) - g * g);      // dg~ = dc i (1-g^2)
          dcb[j] = dcj * f;                             // dc(t-1) = dc f
        }
        ln_back_row<false>(a, a, ax, sr, gx, gh, 4 * H, d, DX + r * 4 * H, sum);
      },
      Nothing{}, [&](int64_t t, int64_t b) {
        T* dax = DX + (t * B + b) * 4 * H;
        std::fill(dax, dax + 4 * H, T(0));
      });
  acc.finish(out);
}

template <typename T>
void lngru_forward_t(const Tensor& xp, const Tensor& w, const Tensor& g_x, const Tensor& b_x,
                     const Tensor& g_h, const Tensor& b_n, const Tensor& hs, const Tensor& ss,
                     const std::optional<Tensor>& mask) {
  const int64_t steps = xp.size(0), B = xp.size(1), H = hs.size(2);
  const T *x = ptr<T>(xp), *gx = ptr<T>(g_x), *bx = ptr<T>(b_x), *gh = ptr<T>(g_h),
          *bn = ptr<T>(b_n);
  T *h = mut<T>(hs), *sk = mut<T>(ss);
  Work<T> work(3 * H);
  forward_loop<T>(steps, B, H, 3 * H, ptr<T>(w), h, mask_ptr(mask),
                  [&](int64_t t, int64_t b, const T* __restrict z, bool) {
                    const int64_t r = t * B + b;
                    const T* __restrict ax = x + r * 3 * H;
                    const T* __restrict hp = h + r * H;
                    T *__restrict h1 = h + (r + B) * H, *__restrict u = work.row();
                    std::copy(z, z + 3 * H, sk + r * 3 * H);  // W_hh h(t-1), kept
                    T mx, rx, mh, rh;
                    ln_stats(ax, 3 * H, mx, rx);
                    ln_stats(z, 3 * H, mh, rh);
#pragma omp simd
                    for (int64_t j = 0; j < 3 * H; ++j)
                      u[j] = gx[j] * (ax[j] - mx) * rx + bx[j];
#pragma omp simd
                    for (int64_t j = 0; j < H; ++j) {
                      const T rr = sigm(u[j] + gh[j] * (z[j] - mh) * rh);
                      const T zz = sigm(u[H + j] + gh[H + j] * (z[H + j] - mh) * rh);
                      const T sn = gh[2 * H + j] * (z[2 * H + j] - mh) * rh + bn[j];
                      const T n = std::tanh(u[2 * H + j] + rr * sn);  // tanh(x_n + r s_n)
                      h1[j] = n + zz * (hp[j] - n);                   // h' = n + z (h - n)
                    }
                  });
}

// xp: W_ih x (T, B, 3H); s: W_hh h(t-1) of every step (T, B, 3H); zs (T, B, H): z of every
// step, written for more(); dz, dxp (T, B, 3H): d(W_hh h), d(W_ih x); sums (12H): db_ih,
// db_hh, dgamma_x, dgamma_h (3H each)
template <typename T>
void lngru_backward_t(const Tensor& xp, const Tensor& s, const Tensor& zs, const Tensor& h_prev,
                      const Tensor& g_x, const Tensor& b_x, const Tensor& g_h, const Tensor& b_n,
                      const Tensor& w, const Tensor& dz, const Tensor& dxp, const Tensor& dhseq,
                      const Tensor& dh, const Tensor& sums, const std::optional<Tensor>& mask) {
  const int64_t steps = h_prev.size(0), B = h_prev.size(1), H = h_prev.size(2);
  const T *X = ptr<T>(xp), *S = ptr<T>(s);
  T *Z = mut<T>(zs), *DX = mut<T>(dxp);
  const T *hp = ptr<T>(h_prev), *gx = ptr<T>(g_x), *bx = ptr<T>(b_x), *gh = ptr<T>(g_h),
          *bn = ptr<T>(b_n);
  const std::optional<Tensor> out = sums;
  const ColumnSums<T> acc(out, 12 * H);
  Work<T> work(6 * H);
  backward_loop<T>(
      steps, B, H, 3 * H, ptr<T>(w), mut<T>(dz), 3 * H, 0, ptr<T>(dhseq), dh, mask_ptr(mask),
      [&](int64_t t, int64_t b, const T* __restrict dh_b, T* __restrict d) {
        const int64_t r = t * B + b;
        const T *__restrict ax = X + r * 3 * H, *__restrict sr = S + r * 3 * H;
        const T* __restrict h = hp + r * H;
        // du: dr~ dz~ dn~ (the input part's r, z, n), ds: dr~ dz~ dn~ r
        T *__restrict du = work.row(), *__restrict ds = du + 3 * H, *__restrict zr = Z + r * H;
        T mx, rx, mh, rh;
        ln_stats(ax, 3 * H, mx, rx);
        ln_stats(sr, 3 * H, mh, rh);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T nh_r = (sr[j] - mh) * rh, nh_z = (sr[H + j] - mh) * rh;
          const T rr = sigm(gx[j] * (ax[j] - mx) * rx + bx[j] + gh[j] * nh_r);
          const T zz = sigm(gx[H + j] * (ax[H + j] - mx) * rx + bx[H + j] + gh[H + j] * nh_z);
          const T sn = gh[2 * H + j] * (sr[2 * H + j] - mh) * rh + bn[j];
          const T n = std::tanh(gx[2 * H + j] * (ax[2 * H + j] - mx) * rx + bx[2 * H + j] +
                                rr * sn);
          const T dn = dh_b[j] * (T(1) - zz) * (T(1) - n * n);  // dn~ = dh' (1 - z)(1 - n^2)
          const T dr = dn * sn * rr * (T(1) - rr);               // dr~ = dn~ s_n r(1-r)
          const T dzz = dh_b[j] * (h[j] - n) * zz * (T(1) - zz);  // dz~ = dh' (h - n) z(1-z)
          du[j] = ds[j] = dr, du[H + j] = ds[H + j] = dzz;
          du[2 * H + j] = dn, ds[2 * H + j] = dn * rr;            // d s_n = dn~ r
          zr[j] = zz;  // for more() below
        }
        ln_back_row<true>(du, ds, ax, sr, gx, gh, 3 * H, d, DX + r * 3 * H, acc.row());
      },
      [&](int64_t t, int64_t b, int64_t j0, int64_t j1, const T* dh_b, T* o) {
        const T* z = Z + (t * B + b) * H;
        for (int64_t j = j0; j < j1; ++j) o[j] += dh_b[j] * z[j];  // + dh' z
      },
      [&](int64_t t, int64_t b) {
        T* dax = DX + (t * B + b) * 3 * H;
        std::fill(dax, dax + 3 * H, T(0));
      });
  acc.finish(out);
}

void lnlstm_forward(const Tensor& xp, const Tensor& w, const Tensor& g_x, const Tensor& b_x,
                    const Tensor& g_h, const Tensor& g_c, const Tensor& b_c, const Tensor& hs,
                    const Tensor& cs, const Tensor& ss, const Tensor& c0,
                    const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    lnlstm_forward_t<decltype(zero)>(xp, w, g_x, b_x, g_h, g_c, b_c, hs, cs, ss, c0, mask);
  });
}

void lnlstm_backward(const Tensor& xp, const Tensor& s, const Tensor& cs, const Tensor& c0,
                     const Tensor& g_x, const Tensor& b_x, const Tensor& g_h, const Tensor& g_c,
                     const Tensor& b_c, const Tensor& w, const Tensor& dz, const Tensor& dxp,
                     const Tensor& dhseq, const Tensor& dh, const Tensor& dc, const Tensor& sums,
                     const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    lnlstm_backward_t<decltype(zero)>(xp, s, cs, c0, g_x, b_x, g_h, g_c, b_c, w, dz, dxp, dhseq,
                                      dh, dc, sums, mask);
  });
}

void lngru_forward(const Tensor& xp, const Tensor& w, const Tensor& g_x, const Tensor& b_x,
                   const Tensor& g_h, const Tensor& b_n, const Tensor& hs, const Tensor& ss,
                   const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    lngru_forward_t<decltype(zero)>(xp, w, g_x, b_x, g_h, b_n, hs, ss, mask);
  });
}

void lngru_backward(const Tensor& xp, const Tensor& s, const Tensor& zs, const Tensor& h_prev,
                    const Tensor& g_x, const Tensor& b_x, const Tensor& g_h, const Tensor& b_n,
                    const Tensor& w, const Tensor& dz, const Tensor& dxp, const Tensor& dhseq,
                    const Tensor& dh, const Tensor& sums, const std::optional<Tensor>& mask) {
  dispatch(xp, [&](auto zero) {
    lngru_backward_t<decltype(zero)>(xp, s, zs, h_prev, g_x, b_x, g_h, b_n, w, dz, dxp, dhseq,
                                     dh, sums, mask);
  });
}

}  // namespace

TORCH_LIBRARY(rnnkit_loops, m) {
  m.def("elman_forward(Tensor xp, Tensor w, Tensor(a!) hs, int f, Tensor? mask, "
        "Tensor? rdrop=None) -> ()",
        &elman_forward);
  m.def("elman_backward(Tensor hs, Tensor w, int f, Tensor(a!) dz, Tensor dhseq, "
        "Tensor(b!) dh, Tensor? mask, Tensor? rdrop=None) -> ()", &elman_backward);
  m.def("lstm_forward(Tensor xp, Tensor w, Tensor(a!) hs, Tensor(b!) cs, Tensor c0, "
        "Tensor(c!) kept, Tensor? mask, Tensor? rdrop=None, Tensor? zone_h=None, "
        "Tensor? zone_c=None) -> ()", &lstm_forward);
  m.def("lstm_backward(Tensor a_if, bool activate, Tensor a_go, Tensor cs, Tensor c0, Tensor w, "
        "Tensor(a!) dz, Tensor dhseq, Tensor(b!) dh, Tensor(c!) dc, Tensor(d!)? db, "
        "Tensor? mask, Tensor? rdrop=None, Tensor? zone_h=None, Tensor? zone_c=None) -> ()",
        &lstm_backward);
  m.def("gru_forward(Tensor xp, Tensor w, Tensor b_n, Tensor(a!) hs, Tensor(b!)? kept, "
        "Tensor? mask, Tensor? rdrop=None, Tensor? zone_h=None) -> ()", &gru_forward);
  m.def("gru_backward(Tensor rz, Tensor hn, Tensor n, Tensor h_prev, Tensor w, Tensor(a!) dz, "
        "Tensor dhseq, Tensor(b!) dh, Tensor? mask, Tensor? rdrop=None, Tensor? zone_h=None) "
        "-> ()", &gru_backward);
  m.def("variant_forward(Tensor xp, Tensor w, Tensor? peep, int variant, Tensor(a!) hs, "
        "Tensor(b!) cs, Tensor c0, Tensor(c!) kept, Tensor? mask, Tensor? rdrop=None) -> ()",
        &variant_forward);
  m.def("variant_backward(Tensor front, bool activate, Tensor back, Tensor? peep, int variant, "
        "Tensor cs, Tensor c0, Tensor w, Tensor(a!) dz, Tensor dhseq, Tensor(b!) dh, "
        "Tensor(c!) dc, Tensor(d!)? dpeep, Tensor(e!)? db, Tensor? mask, Tensor? rdrop=None) -> ()",
        &variant_backward);
  m.def("reset_forward(Tensor xp, Tensor w_a, Tensor? w_zt, Tensor w_n, int o_r, int o_z, "
        "int o_n, int z_from, bool overwrite, int keep, Tensor(a!) hs, Tensor(b!)? kept, "
        "Tensor? mask) "
        "-> ()", &reset_forward);
  m.def("reset_backward(Tensor r, Tensor z, Tensor n, Tensor h_prev, bool overwrite, "
        "Tensor? th, Tensor(a!) dn, Tensor(b!) dr, Tensor(c!) dz, Tensor w_a, Tensor? w_zt, "
        "Tensor w_n, Tensor dhseq, Tensor(d!) dh, Tensor? mask) -> ()", &reset_backward);
  m.def("nas_forward(Tensor xp, Tensor w, Tensor(a!) hs, Tensor(b!) cs, Tensor c0, "
        "Tensor(c!)? kept, Tensor? mask) -> ()", &nas_forward);
  m.def("nas_backward(Tensor z, Tensor x3, Tensor cs, Tensor c0, Tensor w, Tensor(a!) dz, "
        "Tensor(b!) dc_all, Tensor(c!) dx3_per_dc, Tensor dhseq, Tensor(d!) dh, Tensor(e!) dc, "
        "Tensor? mask) -> ()", &nas_backward);
  m.def("weight_grad(Tensor d, Tensor u) -> Tensor", &weight_grad);
  m.def("bernoulli_fill(Tensor(a!) out, float p, int seed) -> ()", &bernoulli_fill);
  m.def("minimal_forward(Tensor xp, Tensor h0, int kind, Tensor(a!) out, Tensor? mask) -> ()",
        &minimal_forward);
  m.def("minimal_backward(Tensor xp, Tensor h0, int kind, Tensor out, Tensor dout, "
        "Tensor(a!) dxp, Tensor(b!) dh0, Tensor? mask) -> ()", &minimal_backward);
  m.def("lnlstm_forward(Tensor xp, Tensor w, Tensor g_x, Tensor b_x, Tensor g_h, Tensor g_c, "
        "Tensor b_c, Tensor(a!) hs, Tensor(b!) cs, Tensor(c!) ss, Tensor c0, Tensor? mask) -> ()",
        &lnlstm_forward);
  m.def("lnlstm_backward(Tensor xp, Tensor s, Tensor cs, Tensor c0, Tensor g_x, Tensor b_x, "
        "Tensor g_h, Tensor g_c, Tensor b_c, Tensor w, Tensor(a!) dz, Tensor(b!) dxp, "
        "Tensor dhseq, Tensor(c!) dh, Tensor(d!) dc, Tensor(e!) sums, Tensor? mask) -> ()",
        &lnlstm_backward);
  m.def("lngru_forward(Tensor xp, Tensor w, Tensor g_x, Tensor b_x, Tensor g_h, Tensor b_n, "
        "Tensor(a!) hs, Tensor(b!) ss, Tensor? mask) -> ()", &lngru_forward);
  m.def("lngru_backward(Tensor xp, Tensor s, Tensor(a!) zs, Tensor h_prev, Tensor g_x, "
        "Tensor b_x, Tensor g_h, Tensor b_n, Tensor w, Tensor(b!) dz, Tensor(c!) dxp, "
        "Tensor dhseq, Tensor(d!) dh, Tensor(e!) sums, Tensor? mask) -> ()", &lngru_backward);
}
