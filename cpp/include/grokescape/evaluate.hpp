// Exact full-batch evaluation of an ensemble: observables (loss, MSE, modes, singular
// values, per-mode energies) and the gradient of the total loss, for every member.
#pragma once

#include "grokescape/network.hpp"
#include "grokescape/observables.hpp"
#include "grokescape/parallel.hpp"
#include "grokescape/train.hpp"

namespace grokescape {

// Observables of every member into (M[, ...]) arrays (a RecordPlan with one row).
// beta is per member (M values).
template <class Scalar>
void evaluate(const Layout& layout, const Scalar* params, Index n_members,
              const DataRef<Scalar>& train, const DataRef<Scalar>& test, const double* beta,
              bool decay_bias, const RecordPlan& out, int n_threads) {
  const Index capacity = std::max<Index>(1, std::min<Index>(256, std::max(train.n, test.n)));
  auto run = [&](auto act) {
    constexpr Activation Act = decltype(act)::value;
    parallel_members(
        n_members, n_threads, 16, [&] { return Workspace<Scalar>(layout, capacity); },
        [&](Workspace<Scalar>& ws, Index m) {
          evaluate_member<Scalar, Act>(layout, params + m * layout.n_params, train, test,
                                       out.modes, beta[m], decay_bias, ws,
                                       detail::record_slot(out, layout, 0, m, n_members));
        });
  };
  if (layout.activation == Activation::kTanh)
    run(std::integral_constant<Activation, Activation::kTanh>{});
  else
    run(std::integral_constant<Activation, Activation::kLinear>{});
}

// Gradient of the total loss (data term on the whole training set + L2) of every member,
// written in the parameter layout into grads (M, P). beta is per member.
template <class Scalar>
void gradients(const Layout& layout, const Scalar* params, Index n_members,
               const DataRef<Scalar>& train, const double* beta, bool decay_bias,
               Scalar* grads, int n_threads) {
  const Index P = layout.n_params;
  auto run = [&](auto act) {
    constexpr Activation Act = decltype(act)::value;
    parallel_members(
        n_members, n_threads, 16,
        [&] { return Workspace<Scalar>(layout, std::max<Index>(1, train.n)); },
        [&](Workspace<Scalar>& ws, Index m) {
          const Scalar* p = params + m * P;
          Scalar* g = grads + m * P;
          const Scalar b = static_cast<Scalar>(beta[m]);
          SampleMap<Scalar> x(train.x, layout.d_in(), train.n);
          SampleMap<Scalar> y(train.y, layout.d_out(), train.n);
          forward<Scalar, Act>(layout, p, x, ws);
          backward<Scalar, Act>(layout, p, x, y, ws, [&](Index l, const auto& d_l, const auto& a) {
            auto gw = weight<Scalar>(layout, g, l);
            gw.noalias() = d_l * a.transpose();
            gw += b * weight<Scalar>(layout, p, l);
            if (layout.bias) {
              auto gb = bias<Scalar>(layout, g, l);
              gb = d_l.rowwise().sum();
              if (decay_bias) gb += b * bias<Scalar>(layout, p, l);
            }
          });
        });
  };
  if (layout.activation == Activation::kTanh)
    run(std::integral_constant<Activation, Activation::kTanh>{});
  else
    run(std::integral_constant<Activation, Activation::kLinear>{});
}

}  // namespace grokescape
