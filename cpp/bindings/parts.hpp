// The named parts that every core entry point takes (bound in bind_parts.cpp): each holds
// numpy arrays under field names and converts them to the core's structures after checking
// dtype, layout and size. Built with keyword arguments in Python, so two arrays of the same
// type and shape (lr, beta, temperature) cannot trade places unseen.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "arrays.hpp"
#include "grokescape/driver.hpp"
#include "grokescape/escape.hpp"
#include "grokescape/layout.hpp"
#include "grokescape/member_state.hpp"
#include "grokescape/records.hpp"
#include "grokescape/splitting.hpp"

namespace grokescape::bind {

// The ensemble's member states (member_state.hpp): params (M, P) float64 or float32.
struct StateArrays {
  Layout layout;
  py::array params, steps, streams, order_streams, order_epochs, diverged;

  Index n_members() const { return steps.size(); }
  bool float32() const { return py::array_t<float>::check_(params); }

  template <class S>
  EnsembleRef<S> ref() const {
    const Index m = n_members();
    EnsembleRef<S> e;
    e.params = field<S>(params, m * layout.n_params, "state.params");
    e.n_members = m;
    e.n_params = layout.n_params;
    e.steps = field<std::int64_t>(steps, m, "state.steps");
    e.streams = field<std::uint64_t>(streams, m, "state.streams");
    e.order_streams = field<std::uint64_t>(order_streams, m, "state.order_streams");
    e.order_epochs = field<std::int64_t>(order_epochs, m, "state.order_epochs");
    e.diverged = field<std::uint8_t>(diverged, m, "state.diverged");
    return e;
  }
};

// Calls f(S{}) with the state's scalar type.
template <class F>
decltype(auto) with_scalar(const StateArrays& state, F&& f) {
  if (state.float32()) return f(float{});
  return f(double{});
}

// Training and test sets ((n, d_in) and (n, d_out), the state's dtype) and the data's modes.
struct DataArrays {
  py::array x_train, y_train, x_test, y_test, mode_out, mode_in, eta;

  template <class S>
  RunData<S> ref(const Layout& layout) const {
    RunData<S> d;
    const Index n_train = x_train.ndim() == 2 ? x_train.shape(0) : 0;
    const Index n_test = x_test.ndim() == 2 ? x_test.shape(0) : 0;
    d.train = {field<S>(x_train, n_train * layout.d_in(), "data.x_train"),
               field<S>(y_train, n_train * layout.d_out(), "data.y_train"), n_train};
    d.test = {field<S>(x_test, n_test * layout.d_in(), "data.x_test"),
              field<S>(y_test, n_test * layout.d_out(), "data.y_test"), n_test};
    const Index r = eta.size();
    d.modes = {r, field<double>(mode_out, r * layout.d_out(), "data.mode_out"),
               field<double>(mode_in, r * layout.d_in(), "data.mode_in"),
               field<double>(eta, r, "data.eta")};
    return d;
  }
};

// Stages of lr, beta, temperature: stage_end (S,), the rest (S, M).
struct ScheduleArrays {
  py::array stage_end, lr, beta, temperature;

  Schedule ref(Index n_members) const {
    const Index stages = stage_end.size();
    if (stages < 1) throw std::invalid_argument("schedule.stage_end: expected at least one stage");
    Schedule s;
    s.n_stages = stages;
    s.stage_end = field<std::int64_t>(stage_end, stages, "schedule.stage_end");
    s.lr = field<double>(lr, stages * n_members, "schedule.lr");
    s.beta = field<double>(beta, stages * n_members, "schedule.beta");
    s.temperature = field<double>(temperature, stages * n_members, "schedule.temperature");
    return s;
  }
};

// Observables recorded at run steps `at` into (len(at), M[, ...]) arrays; diverged_at (M,).
struct RecordArrays {
  py::array at, train_mse, test_mse, loss, lam, sv, energy, diverged_at;

  RecordPlan ref(const Layout& layout, Index n_members, const ModeSpec& modes, Index rows) const {
    const Index cells = rows * n_members;
    const Index k = std::min(layout.d_in(), layout.d_out());
    RecordPlan rec;
    rec.n_records = rows;
    rec.modes = modes;
    rec.train_mse = field<double>(train_mse, cells, "records.train_mse");
    rec.test_mse = field<double>(test_mse, cells, "records.test_mse");
    rec.loss = field<double>(loss, cells, "records.loss");
    rec.lam = field<double>(lam, cells * modes.n_modes, "records.lam");
    rec.sv = field<double>(sv, cells * k, "records.sv");
    rec.energy = field<double>(energy, cells * modes.n_modes, "records.energy");
    return rec;
  }
  // A training run's plan: one row per entry of `at`, divergence steps recorded.
  RecordPlan training(const Layout& layout, Index n_members, const ModeSpec& modes) const {
    const Index rows = at.size();
    RecordPlan rec = ref(layout, n_members, modes, rows);
    rec.at = field<std::int64_t>(at, rows, "records.at");
    rec.diverged_at = field<std::int64_t>(diverged_at, n_members, "records.diverged_at");
    return rec;
  }
};

// Batches, L2 on biases, threads, kernel switches.
struct Options {
  Index batch_size = 0;  // 0: full batch
  Sampling sampling = Sampling::kEpoch;
  std::uint64_t seed = 0;
  bool decay_bias = true;
  int n_threads = 1;
  bool generic_kernel = false;
  bool moment_gradient = true;

  RunOptions ref() const {
    RunOptions o;
    o.batches = {batch_size, sampling, seed};
    o.decay_bias = decay_bias;
    o.n_threads = n_threads;
    o.kernels = {generic_kernel, moment_gradient};
    return o;
  }
};

// The escape criterion with one threshold per member.
struct CriterionArrays {
  CriterionKind kind = CriterionKind::kModeAmplitude;
  Index index = 0;
  py::array values;
  std::int64_t hold = 0;
  std::int64_t check_every = 1;

  Criterion ref(Index n_members) const {
    if (check_every < 1) throw std::invalid_argument("criterion.check_every: expected >= 1");
    return {kind, index, field<double>(values, n_members, "criterion.values"), hold, check_every};
  }
};

// Per-slot state of an escape run and its refill rule.
struct SlotArrays {
  py::array active, start_step, hold_since, trajectories, init_params;
  bool refill = false;
  std::uint64_t refill_base = 0;

  template <class S>
  Slots<S> ref(Index n_members, Index n_params) const {
    Slots<S> s;
    s.active = field<std::uint8_t>(active, n_members, "slots.active");
    s.start_step = field<std::int64_t>(start_step, n_members, "slots.start_step");
    s.hold_since = field<std::int64_t>(hold_since, n_members, "slots.hold_since");
    s.trajectories = field<std::int64_t>(trajectories, n_members, "slots.trajectories");
    s.init_params = field<S>(init_params, n_members * n_params, "slots.init_params");
    s.refill = refill;
    s.refill_base = refill_base;
    return s;
  }
};

// Per-member state of the trap's loops (splitting.hpp, stage 1).
struct LoopSlotArrays {
  py::array seeking_a, loop_start, sigma_step, restarts, pooled, init_params;

  template <class S>
  LoopSlots<S> ref(Index n_members, Index n_params) const {
    LoopSlots<S> s;
    s.seeking_a = field<std::uint8_t>(seeking_a, n_members, "loop_slots.seeking_a");
    s.loop_start = field<std::int64_t>(loop_start, n_members, "loop_slots.loop_start");
    s.sigma_step = field<std::int64_t>(sigma_step, n_members, "loop_slots.sigma_step");
    s.restarts = field<std::int64_t>(restarts, n_members, "loop_slots.restarts");
    s.pooled = field<std::int64_t>(pooled, n_members, "loop_slots.pooled");
    s.init_params = field<S>(init_params, n_members * n_params, "loop_slots.init_params");
    return s;
  }
};

// Checks a span against the ensemble.
inline Span checked(const Span& span, Index n_members) {
  if (span.member_begin < 0 || span.member_end > n_members || span.member_begin > span.member_end)
    throw std::invalid_argument("span: members [" + std::to_string(span.member_begin) + ", " +
                                std::to_string(span.member_end) + ") outside [0, " +
                                std::to_string(n_members) + ")");
  if (span.n_steps < 0 || span.first < 0)
    throw std::invalid_argument("span: first and n_steps must be >= 0");
  return span;
}

}  // namespace grokescape::bind
