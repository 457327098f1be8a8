// Exact full-batch evaluation of an ensemble: observables (loss, MSE, modes, singular
// values, per-mode energies) and the gradient of the total loss, for every member.
#pragma once

#include "grokescape/network.hpp"
#include "grokescape/observables.hpp"
#include "grokescape/parallel.hpp"
#include "grokescape/records.hpp"

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
                                       out.slot(layout, 0, m, n_members));
        });
  };
  with_activation(layout, run);
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
  with_activation(layout, run);
}

// Moments of the per-sample gradients g_i of the data term 1/2 ||y_i - f(x_i)||^2 of each
// training sample alone (all parameters): mean_sq[m] = (1/n) sum_i ||g_i||^2 and
// sq_mean[m] = ||(1/n) sum_i g_i||^2, so tr Cov(g) = mean_sq - sq_mean.
template <class Scalar>
void per_sample_gradient_moments(const Layout& layout, const Scalar* params, Index n_members,
                                 const DataRef<Scalar>& train, double* mean_sq, double* sq_mean,
                                 int n_threads) {
  const Index P = layout.n_params;
  with_activation(layout, [&](auto act) {
    constexpr Activation Act = decltype(act)::value;
    parallel_members(
        n_members, n_threads, 1,
        [&] { return std::make_pair(Workspace<Scalar>(layout, 1), Eigen::VectorXd(P)); },
        [&](auto& state, Index m) {
          Workspace<Scalar>& ws = state.first;
          Eigen::VectorXd& total = state.second;
          total.setZero();
          const Scalar* p = params + m * P;
          double sum_sq = 0.0;
          for (Index i = 0; i < train.n; ++i) {
            SampleMap<Scalar> x(train.x + i * layout.d_in(), layout.d_in(), 1);
            SampleMap<Scalar> y(train.y + i * layout.d_out(), layout.d_out(), 1);
            forward<Scalar, Act>(layout, p, x, ws);
            backward<Scalar, Act>(layout, p, x, y, ws, [&](Index l, const auto& d_l, const auto& a) {
              for (Index r = 0; r < layout.out(l); ++r)
                for (Index c = 0; c < layout.in(l); ++c) {
                  const double g = static_cast<double>(d_l(r, 0)) * static_cast<double>(a(c, 0));
                  total[layout.w_offset[l] + r * layout.in(l) + c] += g;
                  sum_sq += g * g;
                }
              if (layout.bias)
                for (Index r = 0; r < layout.out(l); ++r) {
                  const double g = static_cast<double>(d_l(r, 0));
                  total[layout.b_offset[l] + r] += g;
                  sum_sq += g * g;
                }
            });
          }
          const double n = static_cast<double>(train.n);
          mean_sq[m] = sum_sq / n;
          sq_mean[m] = (total / n).squaredNorm();
        });
  });
}

}  // namespace grokescape
