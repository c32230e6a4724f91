// word2vec's inner loop, compiled (engine/word2vec.py builds and loads this file).
//
// The same SGD as Mikolov's word2vec.c and gensim's word2vec_inner.pyx: for each (input, target)
// pair, the target (label 1) and `negative` words drawn from the unigram^0.75 table (label 0)
// each give g = (label - sigmoid(in . out)) * alpha; the output row moves by g * in, the input
// row by the sum of g * out (applied after the targets, as the C code does). The differences
// from word2vec.c is on purpose: the exact sigmoid instead of a clipped look-up table (so the
// vectorised PyTorch path, models/word2vec.py, gives the same numbers). As in word2vec.c and
// gensim, a skip-gram pair (centre, neighbour) of deck 001's table trains the neighbour's input
// vector to predict the centre (over a corpus the pairs are the same set either way round).
//
// Hogwild: `workers` std::threads each train their share of the chunk's sentences and write
// the shared matrices without locks (rare collisions on a row are the known, harmless race).
// Each thread draws from its own generator (word2vec.c's LCG) seeded from (seed, thread), so
// one thread with a fixed seed gives the same result every time.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

using at::Tensor;

namespace {

struct Rng {  // word2vec.c's linear congruential generator
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  inline uint64_t next() { return s = s * 25214903917ULL + 11; }
  inline float uniform() { return ((next() >> 16) & 0xFFFF) / 65536.0f; }
};

// -log sigmoid(x), without overflow
inline double softplus_neg(float x) {
  return x > 0 ? std::log1p(std::exp(-(double)x)) : -(double)x + std::log1p(std::exp((double)x));
}

struct Model {
  float* syn0;        // (V, D) input vectors: the embedding
  float* syn1;        // (V, D) output vectors
  int64_t D;
  const int64_t* cum;  // unigram^0.75 cumulative table (V,)
  int64_t V;
  int64_t negative;
  std::vector<int32_t> guide;  // guide[k]: the word drawn by r = k * step (GUIDE buckets)
  int64_t step = 1;

  static constexpr int64_t GUIDE = 1 << 16;

  // the bucket guide turns the table's binary search over V words into one over the few words
  // of a bucket (the same word for every r: only faster)
  void build_guide() {
    step = std::max<int64_t>(1, (cum[V - 1] + GUIDE - 1) / GUIDE);
    guide.resize(GUIDE + 2);
    for (int64_t k = 0; k < GUIDE + 2; ++k)
      guide[k] = (int32_t)(std::min<int64_t>(V - 1, std::upper_bound(cum, cum + V, k * step) -
                                                        cum));
  }

  inline int64_t draw(Rng& rng) const {  // a word with probability count^0.75 / sum
    const int64_t r = (int64_t)((rng.next() >> 16) % (uint64_t)cum[V - 1]);
    const int64_t k = r / step;
    return std::upper_bound(cum + guide[k], cum + guide[k + 1] + 1, r) - cum;
  }

  // one (l1 -> target) update with the given negatives (nullptr: drawn); returns the loss
  // -log s(l1.t) - sum log s(-l1.n) when asked (0 otherwise: the logs cost as much as the
  // update); neu1e collects the input's step
  inline double pair(const float* l1, float* neu1e, int64_t target, const int64_t* given,
                     Rng* rng, float alpha, bool with_loss = true) const {
    double loss = 0;
    for (int64_t d = 0; d <= negative; ++d) {
      int64_t w = target;
      if (d > 0) {
        w = given ? given[d - 1] : draw(*rng);
        if (w == target) continue;  // a negative that is the target teaches nothing
      }
      const float label = d == 0 ? 1.0f : 0.0f;
      float* l2 = syn1 + w * D;
      float f = 0;
      for (int64_t k = 0; k < D; ++k) f += l1[k] * l2[k];
      const float s = 1.0f / (1.0f + std::exp(-f));
      const float g = (label - s) * alpha;
      if (with_loss) loss += d == 0 ? softplus_neg(f) : softplus_neg(-f);
      for (int64_t k = 0; k < D; ++k) neu1e[k] += g * l2[k];
      for (int64_t k = 0; k < D; ++k) l2[k] += g * l1[k];
    }
    return loss;
  }
};

constexpr int64_t LOSS_EVERY = 16;  // the reported loss: every 16th update's (a fair sample)

struct Stats {
  double loss = 0;
  int64_t scored = 0;  // updates whose loss is in `loss`
  int64_t pairs = 0;  // updates (skip-gram: pairs; CBOW: windows)
  int64_t words = 0;  // words kept after subsampling
};

// one thread's sentences [s0, s1) of the chunk
void train_range(const Model& m, const int32_t* tokens, const int64_t* bounds, int64_t s0,
                 int64_t s1, const float* keep, int64_t window, bool dynamic, bool cbow,
                 double alpha0, double alpha1, uint64_t seed, Stats* out) {
  Rng rng(seed);
  Stats st;
  const int64_t D = m.D;
  std::vector<float> neu1e(D), neu1(D);
  std::vector<int64_t> kept;
  const int64_t first = bounds[s0], total = std::max<int64_t>(1, bounds[s1] - first);
  for (int64_t s = s0; s < s1; ++s) {
    // the rate falls linearly over the thread's share of the chunk (word2vec.c, gensim)
    const float alpha = (float)(alpha0 - (alpha0 - alpha1) * (bounds[s] - first) / total);
    kept.clear();
    for (int64_t i = bounds[s]; i < bounds[s + 1]; ++i) {
      const int32_t w = tokens[i];
      if (keep[w] < 1.0f && keep[w] < rng.uniform()) continue;  // subsampling
      kept.push_back(w);
    }
    const int64_t n = (int64_t)kept.size();
    st.words += n;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = dynamic ? (int64_t)(rng.next() % (uint64_t)window) : 0;
      const int64_t lo = std::max<int64_t>(0, i - window + b);
      const int64_t hi = std::min<int64_t>(n - 1, i + window - b);
      if (cbow) {  // the mean of the neighbours predicts the centre
        std::fill(neu1.begin(), neu1.end(), 0.0f);
        int64_t count = 0;
        for (int64_t j = lo; j <= hi; ++j) {
          if (j == i) continue;
          const float* v = m.syn0 + kept[j] * D;
          for (int64_t k = 0; k < D; ++k) neu1[k] += v[k];
          ++count;
        }
        if (!count) continue;
        for (int64_t k = 0; k < D; ++k) neu1[k] /= count;
        std::fill(neu1e.begin(), neu1e.end(), 0.0f);
        const bool score = st.pairs % LOSS_EVERY == 0;
        st.loss += m.pair(neu1.data(), neu1e.data(), kept[i], nullptr, &rng, alpha, score);
        st.scored += score;
        for (int64_t j = lo; j <= hi; ++j) {
          if (j == i) continue;
          float* v = m.syn0 + kept[j] * D;
          for (int64_t k = 0; k < D; ++k) v[k] += neu1e[k];
        }
        ++st.pairs;
        continue;
      }
      for (int64_t j = lo; j <= hi; ++j) {  // skip-gram: each pair (centre i, neighbour j)
        if (j == i) continue;
        float* l1 = m.syn0 + kept[j] * D;  // as word2vec.c: the neighbour's input vector
        std::fill(neu1e.begin(), neu1e.end(), 0.0f);  // predicts the centre
        const bool score = st.pairs % LOSS_EVERY == 0;
        st.loss += m.pair(l1, neu1e.data(), kept[i], nullptr, &rng, alpha, score);
        st.scored += score;
        for (int64_t k = 0; k < D; ++k) l1[k] += neu1e[k];
        ++st.pairs;
      }
    }
  }
  *out = st;
}

Model model_of(const Tensor& syn0, const Tensor& syn1, const Tensor& cum, int64_t negative) {
  TORCH_CHECK(syn0.is_contiguous() && syn1.is_contiguous() && syn0.dtype() == at::kFloat &&
                  syn1.dtype() == at::kFloat && syn0.device().is_cpu(),
              "word2vec: the vectors must be contiguous float32 CPU tensors");
  TORCH_CHECK(syn0.sizes() == syn1.sizes(), "word2vec: input and output vectors differ in shape");
  TORCH_CHECK(cum.dtype() == at::kLong && cum.numel() == syn0.size(0),
              "word2vec: the unigram table needs one int64 per word");
  Model m{syn0.data_ptr<float>(), syn1.data_ptr<float>(), syn0.size(1),
          cum.data_ptr<int64_t>(), syn0.size(0), negative, {}, 1};
  m.build_guide();
  return m;
}

// Train on a chunk: sentences are tokens[bounds[s]:bounds[s+1]]. Returns
// [loss sum over the scored updates, scored updates, updates, words kept] (float64).
Tensor train_chunk(Tensor syn0, Tensor syn1, Tensor tokens, Tensor bounds, Tensor keep,
                   Tensor cum, int64_t window, int64_t negative, bool dynamic, bool cbow,
                   double alpha0, double alpha1, int64_t seed, int64_t workers) {
  const Model m = model_of(syn0, syn1, cum, negative);
  TORCH_CHECK(tokens.dtype() == at::kInt && tokens.is_contiguous(), "word2vec: int32 tokens");
  TORCH_CHECK(bounds.dtype() == at::kLong && bounds.is_contiguous(), "word2vec: int64 bounds");
  TORCH_CHECK(keep.dtype() == at::kFloat && keep.numel() == m.V, "word2vec: a keep probability "
              "per word");
  TORCH_CHECK(window >= 1, "word2vec: window must be at least 1");
  const int64_t S = bounds.numel() - 1;
  const int64_t* b = bounds.data_ptr<int64_t>();
  const int32_t* t = tokens.data_ptr<int32_t>();
  const float* k = keep.data_ptr<float>();
  workers = std::max<int64_t>(1, std::min<int64_t>(workers, S));
  // each thread's sentences: about equal numbers of words, its rate falling over its share
  std::vector<int64_t> cut(workers + 1, S);
  cut[0] = 0;
  for (int64_t w = 1, s = 0; w < workers; ++w) {
    const int64_t goal = b[0] + (b[S] - b[0]) * w / workers;
    while (s < S && b[s] < goal) ++s;
    cut[w] = s;
  }
  std::vector<Stats> stats(workers);
  std::vector<std::thread> threads;
  for (int64_t w = 1; w < workers; ++w)
    threads.emplace_back(train_range, std::cref(m), t, b, cut[w], cut[w + 1], k, window, dynamic,
                         cbow, alpha0, alpha1, (uint64_t)seed * 7919 + w, &stats[w]);
  train_range(m, t, b, cut[0], cut[1], k, window, dynamic, cbow, alpha0, alpha1,
              (uint64_t)seed * 7919, &stats[0]);
  for (auto& th : threads) th.join();
  Stats all;
  for (const auto& s : stats) {
    all.loss += s.loss;
    all.scored += s.scored;
    all.pairs += s.pairs;
    all.words += s.words;
  }
  return at::tensor({all.loss, (double)all.scored, (double)all.pairs, (double)all.words},
                    at::kDouble);
}

// Skip-gram updates for given (input, target) pairs and negatives (N, K), one after the other
// at rate alpha: the reference the vectorised PyTorch path is tested against. Returns the loss.
double train_pairs(Tensor syn0, Tensor syn1, Tensor inputs, Tensor targets, Tensor negatives,
                   double alpha) {
  const int64_t K = negatives.size(1);
  Tensor cum = at::ones({syn0.size(0)}, at::kLong).cumsum(0);  // unused: negatives are given
  const Model m = model_of(syn0, syn1, cum, K);
  const auto in = inputs.contiguous().to(at::kLong), out = targets.contiguous().to(at::kLong),
             neg = negatives.contiguous().to(at::kLong);
  const int64_t *pi = in.data_ptr<int64_t>(), *po = out.data_ptr<int64_t>(),
                *pn = neg.data_ptr<int64_t>();
  std::vector<float> neu1e(m.D);
  double loss = 0;
  for (int64_t i = 0; i < in.numel(); ++i) {
    float* l1 = m.syn0 + pi[i] * m.D;
    std::fill(neu1e.begin(), neu1e.end(), 0.0f);
    loss += m.pair(l1, neu1e.data(), po[i], pn + i * K, nullptr, (float)alpha);
    for (int64_t k = 0; k < m.D; ++k) l1[k] += neu1e[k];
  }
  return loss;
}

// n words drawn from the unigram table as the training loop draws its negatives (tests check
// their frequencies)
Tensor draw(Tensor cum, int64_t n, int64_t seed) {
  Tensor one = at::zeros({cum.numel(), 1}, at::kFloat);
  const Model m = model_of(one, one, cum, 1);
  Rng rng((uint64_t)seed);
  Tensor out = at::empty({n}, at::kLong);
  int64_t* p = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = m.draw(rng);
  return out;
}

}  // namespace

TORCH_LIBRARY(rnnkit_word2vec, m) {
  m.def("train_chunk(Tensor(a!) syn0, Tensor(b!) syn1, Tensor tokens, Tensor bounds, "
        "Tensor keep, Tensor cum, int window, int negative, bool dynamic, bool cbow, "
        "float alpha0, float alpha1, int seed, int workers) -> Tensor", &train_chunk);
  m.def("train_pairs(Tensor(a!) syn0, Tensor(b!) syn1, Tensor inputs, Tensor targets, "
        "Tensor negatives, float alpha) -> float", &train_pairs);
  m.def("draw(Tensor cum, int n, int seed) -> Tensor", &draw);
}
