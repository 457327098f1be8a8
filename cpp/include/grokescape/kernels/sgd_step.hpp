// One SGD + L2 step of one member, written for speed (the Eigen code in network.hpp is the
// readable version used for exact evaluation; tests hold both against a NumPy reference).
//
// Two layouts, chosen by batch size (train.hpp, choose_step_kernel):
//  - RowStep (B >= 8): a layer's activations are "sample rows" (see row_products.hpp), so
//    every product vectorises over the samples of the batch.
//  - SampleStep (B < 8): one sample at a time, vectorised over features; the minibatch
//    gradient is accumulated, then applied. B = 1 steps of tanh networks run a few members
//    interleaved (step_members).
// Linear networks mostly use the lane kernels instead, one member per vector lane: LaneStep
// (lanes_step.hpp) for B = 1, LaneBatchStep (lane_batch_step.hpp) for minibatches of small
// networks.
// Both compute  W <- decay W - lr G,  decay = 1 - lr beta,  G = (1/B) sum_b d_b a_b^T,
// forming each layer's error signal with the old W before updating it.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <vector>

#include "grokescape/kernels/row_products.hpp"
#include "grokescape/kernels/shapes.hpp"
#include "grokescape/kernels/simd.hpp"
#include "grokescape/kernels/tanh.hpp"
#include "grokescape/layout.hpp"

namespace grokescape::kernels {

template <class S>
using AlignedVector = std::vector<S, Eigen::aligned_allocator<S>>;

template <class S>
struct StepParams {
  S lr, decay, bias_decay;
};

template <class S, Activation Act, class Shape>
class RowStep {
 public:
  // ld: leading dimension of every row block (a multiple of kRowPad >= the padded batch).
  RowStep(const Layout& layout, Index ld) : layout_(layout), ld_(ld) {
    acts_.resize(static_cast<std::size_t>(layout.depth()) + 1);
    for (Index l = 0; l < layout.depth(); ++l)
      acts_[l + 1].assign(static_cast<std::size_t>(layout.out(l) * ld), S(0));
    delta_.assign(static_cast<std::size_t>(layout.max_width * ld), S(0));
    delta_below_.assign(delta_.size(), S(0));
    x_rows_.assign(static_cast<std::size_t>(layout.d_in() * ld), S(0));
    a_t_.assign(static_cast<std::size_t>(ld * padded(layout.max_width)), S(0));
    y_rows_.assign(static_cast<std::size_t>(layout.d_out() * ld), S(0));
  }

  Index ld() const { return ld_; }

  // Copies samples idx[0..batch) of C-contiguous (n, d) arrays into the batch rows. Sample
  // outer: each sample's features are one contiguous read.
  void gather(const S* x, const S* y, const Index* idx, Index batch) {
    const Index d_in = first_width<Shape>(layout_), d_out = last_width<Shape>(layout_);
    S* __restrict xr = x_rows_.data();
    S* __restrict yr = y_rows_.data();
    const Index ld = ld_;
    for (Index c = 0; c < batch; ++c) {
      const S* __restrict xs = x + idx[c] * d_in;
      const S* __restrict ys = y + idx[c] * d_out;
      for (Index k = 0; k < d_in; ++k) xr[k * ld + c] = xs[k];
      for (Index k = 0; k < d_out; ++k) yr[k * ld + c] = ys[k];
    }
  }
  const S* x_rows() const { return x_rows_.data(); }
  const S* y_rows() const { return y_rows_.data(); }

  // One step on `batch` samples given as rows (x: d_in x ld, y: d_out x ld); lanes from
  // batch up to the padded length are ignored.
  void step(S* params, const S* x, const S* y, Index batch, const StepParams<S>& p) {
    const Layout& lay = layout_;
    const Index bp = padded(batch);
    const Index ld = ld_;
    const int depth = static_cast<int>(lay.depth());
    layers_up<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
      constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
      const S* in = l == 0 ? x : acts_[l].data();
      S* out = acts_[l + 1].data();
      forward_rows<S, NI, NO>(params + lay.w_offset[l], lay.bias ? params + lay.b_offset[l] : nullptr,
                              static_cast<int>(lay.in(l)), static_cast<int>(lay.out(l)), in, out, ld,
                              bp);
      if constexpr (Act == Activation::kTanh) {
        if (l + 1 < depth)
          tanh_in_place(out, lay.out(l) * ld);
      }
    });
    const S inv_batch = S(1) / static_cast<S>(batch);
    const S* top = acts_[depth].data();
    S* d = delta_.data();
    S* d_below = delta_below_.data();
    for (Index i = 0; i < lay.d_out(); ++i) {
      for (Index b = 0; b < batch; ++b) d[i * ld + b] = (top[i * ld + b] - y[i * ld + b]) * inv_batch;
      for (Index b = batch; b < bp; ++b) d[i * ld + b] = S(0);
    }
    layers_down<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
      constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
      const int ni = static_cast<int>(lay.in(l)), no = static_cast<int>(lay.out(l));
      S* w = params + lay.w_offset[l];
      const S* a_in = l == 0 ? x : acts_[l].data();
      if (l > 0) {
        backprop_rows<S, NI, NO>(w, ni, no, d, d_below, ld, bp);
        if constexpr (Act == Activation::kTanh) {
          for (Index i = 0; i < ni * ld; ++i) d_below[i] *= S(1) - a_in[i] * a_in[i];
        }
      }
      update_rows<S, NI, NO>(w, lay.bias ? params + lay.b_offset[l] : nullptr, ni, no, d, a_in, ld,
                             bp, p.lr, p.decay, p.bias_decay, a_t_.data());
      std::swap(d, d_below);
    });
  }

 private:
  const Layout& layout_;
  Index ld_;
  std::vector<AlignedVector<S>> acts_;  // acts_[l]: (widths[l] x ld), l = 1..L
  AlignedVector<S> delta_, delta_below_, x_rows_, y_rows_;
  AlignedVector<S> a_t_;  // a layer's input as sample rows (update_rows)
};

template <class S, Activation Act, class Shape>
class SampleStep {
 public:
  // Most members step_members takes at once.
  static constexpr int kMaxGroup = 4;

  explicit SampleStep(const Layout& layout) : layout_(layout), stride_(padded(layout.max_width)) {
    // Activations and error signals of member q of a group start at q * stride_.
    const std::size_t size = static_cast<std::size_t>(kMaxGroup * stride_);
    acts_.resize(static_cast<std::size_t>(layout.depth()) + 1);
    for (Index l = 0; l < layout.depth(); ++l) acts_[l + 1].assign(size, S(0));
    delta_.assign(size, S(0));
    delta_below_.assign(size, S(0));
    grad_.assign(static_cast<std::size_t>(layout.n_params), S(0));
  }

  // One step on samples idx[0..batch) (or 0..batch-1 when idx is null) of C-contiguous
  // (n, d) arrays x and y.
  void step(S* params, const S* x, const S* y, const Index* idx, Index batch, const StepParams<S>& p) {
    if (batch == 1) {
      const S* xs = x + (idx ? idx[0] : 0) * layout_.d_in();
      const S* ys = y + (idx ? idx[0] : 0) * layout_.d_out();
      return step_members(&params, &xs, &ys, &p, 1);
    }
    const Layout& lay = layout_;
    const int depth = static_cast<int>(lay.depth());
    const S inv_batch = S(1) / static_cast<S>(batch);
    std::fill(grad_.begin(), grad_.end(), S(0));
    for (Index c = 0; c < batch; ++c) {
      const Index s = idx ? idx[c] : c;
      const S* xs = x + s * lay.d_in();
      const S* ys = y + s * lay.d_out();
      layers_up<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
        constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
        const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
        const S* w = params + lay.w_offset[l];
        const S* in = l == 0 ? xs : acts_[l].data();
        S* out = acts_[l + 1].data();
        for (int i = 0; i < no; ++i) {
          S acc = lay.bias ? params[lay.b_offset[l] + i] : S(0);
          for (int k = 0; k < ni; ++k) acc += w[i * ni + k] * in[k];
          out[i] = acc;
        }
        if constexpr (Act == Activation::kTanh) {
          if (l + 1 < depth)
            tanh_in_place(out, no);
        }
      });
      S* d = delta_.data();
      S* d_below = delta_below_.data();
      const S* top = acts_[depth].data();
      for (Index i = 0; i < lay.d_out(); ++i) d[i] = (top[i] - ys[i]) * inv_batch;
      layers_down<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
        constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
        const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
        const S* w = params + lay.w_offset[l];
        const S* a_in = l == 0 ? xs : acts_[l].data();
        if (l > 0) backprop_one(w, ni, no, d, a_in, d_below);
        S* g = grad_.data() + lay.w_offset[l];
        for (int i = 0; i < no; ++i)
          for (int k = 0; k < ni; ++k) g[i * ni + k] += d[i] * a_in[k];
        if (lay.bias)
          for (int i = 0; i < no; ++i) grad_[lay.b_offset[l] + i] += d[i];
        std::swap(d, d_below);
      });
    }
    for (Index l = 0; l < lay.depth(); ++l) {
      S* w = params + lay.w_offset[l];
      const S* g = grad_.data() + lay.w_offset[l];
      for (Index j = 0; j < lay.out(l) * lay.in(l); ++j) w[j] = p.decay * w[j] - p.lr * g[j];
      if (lay.bias) {
        S* b = params + lay.b_offset[l];
        const S* gb = grad_.data() + lay.b_offset[l];
        for (Index j = 0; j < lay.out(l); ++j) b[j] = p.bias_decay * b[j] - p.lr * gb[j];
      }
    }
  }

 private:
  // out = W in (+ b) for one sample; groups of kLanes rows are reduced together.
  template <int NI, int NO>
  GROKESCAPE_INLINE void matvec(const S* __restrict w, const S* __restrict b, int ni, int no,
                                const S* __restrict in, S* __restrict out) {
    constexpr int L = kLanes<S>;
    const int n_in = dim<NI>(ni), n_out = dim<NO>(no);
    int i = 0;
    if (n_in % L == 0) {
      for (; i + L <= n_out; i += L) {
        Vector<S> acc[L];
        for (int r = 0; r < L; ++r) {
          acc[r] = Vector<S>{};
          for (int k = 0; k < n_in; k += L) acc[r] += load<S>(w + (i + r) * n_in + k) * load<S>(in + k);
        }
        // One vector store: the next layer reads `out` as vectors, and a vector load cannot
        // be forwarded from several scalar stores (it would wait for them to reach cache).
        store<S>(out + i, transpose_sum<S>(acc) + (b ? load<S>(b + i) : Vector<S>{}));
      }
    }
    for (; i < n_out; ++i) {
      S acc = b ? b[i] : S(0);
      for (int k = 0; k < n_in; ++k) acc += w[i * n_in + k] * in[k];
      out[i] = acc;
    }
  }

  // B = 1: each layer's update is the outer product d a^T, applied in place right after the
  // error signal below it is formed (no gradient buffer).
  //
  // step_members takes `count` <= kMaxGroup members at once (member q: params[q], its
  // sample xs[q], ys[q], hyperparameters p[q]) and runs each phase of the step for all of
  // them before the next phase. A single member's step is a chain of dependent small
  // mat-vecs (latency-bound); the members' chains are independent, so the core overlaps
  // them. Each member's arithmetic is exactly that of a step on its own.
 public:
  void step_members(S* const* params, const S* const* xs, const S* const* ys,
                    const StepParams<S>* p, int count) {
    const Layout& lay = layout_;
    const int depth = static_cast<int>(lay.depth());
    const Index st = stride_;
    layers_up<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
      constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
      const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
      for (int q = 0; q < count; ++q) {
        S* out = acts_[l + 1].data() + q * st;
        matvec<NI, NO>(params[q] + lay.w_offset[l], lay.bias ? params[q] + lay.b_offset[l] : nullptr,
                       ni, no, l == 0 ? xs[q] : acts_[l].data() + q * st, out);
        if constexpr (Act == Activation::kTanh) {
          if (l + 1 < depth)
            tanh_in_place(out, no);
        }
      }
    });
    S* d = delta_.data();
    S* d_below = delta_below_.data();
    for (int q = 0; q < count; ++q) {
      const S* top = acts_[depth].data() + q * st;
      for (Index i = 0; i < lay.d_out(); ++i) d[q * st + i] = top[i] - ys[q][i];
    }
    layers_down<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
      constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
      const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
      for (int q = 0; q < count; ++q)
        backward_one<NI, NO>(params[q], l, ni, no, d + q * st, d_below + q * st,
                             l == 0 ? xs[q] : acts_[l].data() + q * st, p[q]);
      std::swap(d, d_below);
    });
  }

 private:
  // d_below = f'(a_in) * (W^T d) for one sample, scalar (W is no x ni, row-major).
  static void backprop_one(const S* __restrict w, int ni, int no, const S* __restrict d,
                           const S* __restrict a_in, S* __restrict d_below) {
    for (int k = 0; k < ni; ++k) d_below[k] = S(0);
    for (int i = 0; i < no; ++i)
      for (int k = 0; k < ni; ++k) d_below[k] += d[i] * w[i * ni + k];
    if constexpr (Act == Activation::kTanh) {
      for (int k = 0; k < ni; ++k) d_below[k] *= S(1) - a_in[k] * a_in[k];
    }
  }

  // Layer l of one member: d_below = f'(a_in) * (W^T d) with the old W (l > 0), then
  // W <- decay W - lr d a_in^T and b <- bias_decay b - lr d.
  template <int NI, int NO>
  GROKESCAPE_INLINE void backward_one(S* params, int l, int ni, int no, const S* __restrict d,
                                      S* __restrict d_below, const S* __restrict a_in,
                                      const StepParams<S>& p) {
    const Layout& lay = layout_;
    S* __restrict w = params + lay.w_offset[l];
    constexpr int L = kLanes<S>;
    if (ni % L == 0 && ni <= 8 * L) {  // vectors over the input features
      const int nv = ni / L;
      if (l > 0) {
        // Four partial sums over the output rows i (i mod 4), added pairwise at the end:
        // one sum would be a chain of `no` dependent FMAs.
        Vector<S> part[4][8];
        for (int q = 0; q < 4; ++q)
          for (int v = 0; v < nv; ++v) part[q][v] = Vector<S>{};
        for (int i = 0; i < no; ++i) {
          const Vector<S> di = broadcast<S>(d[i]);
          for (int v = 0; v < nv; ++v) part[i % 4][v] += di * load<S>(w + i * ni + v * L);
        }
        for (int v = 0; v < nv; ++v) {
          Vector<S> acc = (part[0][v] + part[1][v]) + (part[2][v] + part[3][v]);
          if constexpr (Act == Activation::kTanh) {
            const Vector<S> a = load<S>(a_in + v * L);
            acc *= S(1) - a * a;
          }
          store<S>(d_below + v * L, acc);
        }
      }
      const Vector<S> decay = broadcast<S>(p.decay);
      Vector<S> a[8];
      for (int v = 0; v < nv; ++v) a[v] = load<S>(a_in + v * L);
      for (int i = 0; i < no; ++i) {
        const Vector<S> g = broadcast<S>(p.lr * d[i]);
        for (int v = 0; v < nv; ++v) {
          S* wi = w + i * ni + v * L;
          store<S>(wi, decay * load<S>(wi) - g * a[v]);
        }
      }
    } else {
      if (l > 0) backprop_one(w, ni, no, d, a_in, d_below);
      for (int i = 0; i < no; ++i) {
        const S g = p.lr * d[i];
        for (int k = 0; k < ni; ++k) w[i * ni + k] = p.decay * w[i * ni + k] - g * a_in[k];
      }
    }
    if (lay.bias) {
      S* b = params + lay.b_offset[l];
      for (int i = 0; i < no; ++i) b[i] = p.bias_decay * b[i] - p.lr * d[i];
    }
  }

  const Layout& layout_;
  Index stride_;
  std::vector<AlignedVector<S>> acts_;
  AlignedVector<S> delta_, delta_below_, grad_;
};

}  // namespace grokescape::kernels
