// Rare-event splitting (grokescape/splitting.hpp): a batch of AMS runs as an object that
// keeps its replicas between calls, and the trap's loops of stage 1. Converts the named
// parts, releases the GIL, calls the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <variant>
#include <vector>

#include "parts.hpp"
#include "grokescape/splitting.hpp"

namespace py = pybind11;
namespace ge = grokescape;
namespace gb = grokescape::bind;

namespace {

// One batch of runs, in the ensemble's scalar type.
class Splitting {
 public:
  Splitting(const gb::StateArrays& state, ge::Index n_runs, std::uint64_t first_run_id,
            std::uint64_t seed, const ge::SplittingOptions& opt) {
    if (state.n_members() != n_runs * opt.n_replicas)
      throw std::invalid_argument("state: expected n_runs x n replicas members");
    if (state.float32())
      runs_ = std::make_unique<ge::SplittingRuns<float>>(state.layout, n_runs, first_run_id, seed, opt);
    else
      runs_ = std::make_unique<ge::SplittingRuns<double>>(state.layout, n_runs, first_run_id, seed, opt);
  }

  void start(const gb::StateArrays& state, const gb::DataArrays& data, const gb::CriterionArrays& criterion,
             const gb::Options& options) {
    visit(state, [&](auto& runs, auto scalar) {
      using S = decltype(scalar);
      const auto ens = state.ref<S>();
      const auto run_data = data.ref<S>(state.layout);
      const auto crit = criterion.ref(ens.n_members);
      const auto opt = options.ref();
      py::gil_scoped_release release;
      ge::with_activation(state.layout, [&](auto act) {
        runs.template start<decltype(act)::value>(ens, run_data, crit, opt.n_threads);
      });
    });
  }

  ge::Index advance(const gb::StateArrays& state, const gb::DataArrays& data,
                    const gb::ScheduleArrays& schedule, const gb::CriterionArrays& criterion,
                    const gb::Options& options, std::int64_t n_steps, double work) {
    ge::Index left = 0;
    visit(state, [&](auto& runs, auto scalar) {
      using S = decltype(scalar);
      const auto ens = state.ref<S>();
      const auto run_data = data.ref<S>(state.layout);
      const auto sched = schedule.ref(ens.n_members);
      const auto crit = criterion.ref(ens.n_members);
      const auto opt = options.ref();
      py::gil_scoped_release release;
      ge::with_kernel_shape(state.layout, opt.kernels, [&](auto act, auto shape) {
        left = runs.template advance<decltype(act)::value, decltype(shape)>(ens, run_data, sched, crit, opt,
                                                                            n_steps, work);
      });
    });
    return left;
  }

  py::dict results() const {
    py::dict out;
    std::visit(
        [&](const auto& runs) {
          const ge::Index r = runs->n_runs();
          gb::Array<std::uint64_t> id(r);
          gb::Array<double> p(r), weight(r), reactive(r), steps(r), level(r);
          gb::Array<std::int64_t> iterations(r), killed(r), in_b(r);
          gb::Array<bool> done(r);
          for (ge::Index i = 0; i < r; ++i) {
            const ge::SplittingRun& run = runs->run(i);
            id.mutable_data()[i] = run.id;
            p.mutable_data()[i] = run.p;
            weight.mutable_data()[i] = run.weight;
            reactive.mutable_data()[i] = run.reactive_age;
            steps.mutable_data()[i] = run.member_steps;
            level.mutable_data()[i] = run.last_level;
            iterations.mutable_data()[i] = run.iterations;
            killed.mutable_data()[i] = run.killed;
            in_b.mutable_data()[i] = run.in_b;
            done.mutable_data()[i] = run.done;
          }
          out["run"] = id;
          out["p"] = p;
          out["weight"] = weight;
          out["iterations"] = iterations;
          out["killed"] = killed;
          out["in_b"] = in_b;
          out["reactive_age"] = reactive;
          out["member_steps"] = steps;
          out["last_level"] = level;
          out["done"] = done;
        },
        runs_);
    return out;
  }

 private:
  template <class F>
  void visit(const gb::StateArrays& state, F&& f) {
    if (state.float32()) {
      auto* runs = std::get_if<std::unique_ptr<ge::SplittingRuns<float>>>(&runs_);
      if (!runs) throw std::invalid_argument("state: a float32 ensemble for float64 runs");
      f(**runs, float{});
    } else {
      auto* runs = std::get_if<std::unique_ptr<ge::SplittingRuns<double>>>(&runs_);
      if (!runs) throw std::invalid_argument("state: a float64 ensemble for float32 runs");
      f(**runs, double{});
    }
  }

  std::variant<std::unique_ptr<ge::SplittingRuns<double>>, std::unique_ptr<ge::SplittingRuns<float>>> runs_;
};

template <class S>
py::dict loop_output(const ge::LoopOutput<S>& out, ge::Index n_params) {
  const auto n_ev = static_cast<py::ssize_t>(out.events.size());
  gb::Array<std::int64_t> member(n_ev), kind(n_ev), duration(n_ev), at(n_ev);
  for (py::ssize_t i = 0; i < n_ev; ++i) {
    member.mutable_data()[i] = out.events[i].member;
    kind.mutable_data()[i] = static_cast<std::int64_t>(out.events[i].kind);
    duration.mutable_data()[i] = out.events[i].duration;
    at.mutable_data()[i] = out.events[i].at;
  }
  const auto n_pool = static_cast<py::ssize_t>(out.pool.size());
  gb::Array<S> params({n_pool, static_cast<py::ssize_t>(n_params)});
  gb::Array<std::int64_t> step(n_pool), order_epoch(n_pool), pool_member(n_pool);
  gb::Array<std::uint64_t> stream(n_pool), order_stream(n_pool);
  for (py::ssize_t i = 0; i < n_pool; ++i) {
    const ge::MemberState<S>& s = out.pool[i];
    std::copy(s.params.begin(), s.params.end(), params.mutable_data() + i * n_params);
    step.mutable_data()[i] = s.step;
    stream.mutable_data()[i] = s.stream;
    order_stream.mutable_data()[i] = s.order.stream;
    order_epoch.mutable_data()[i] = s.order.epoch;
    pool_member.mutable_data()[i] = out.pool_member[i];
  }
  py::dict d;
  d["member"] = member;
  d["kind"] = kind;
  d["duration"] = duration;
  d["at"] = at;
  d["pool_params"] = params;
  d["pool_step"] = step;
  d["pool_stream"] = stream;
  d["pool_order_stream"] = order_stream;
  d["pool_order_epoch"] = order_epoch;
  d["pool_member"] = pool_member;
  return d;
}

}  // namespace

void bind_splitting(py::module_& m) {
  py::class_<ge::SplittingOptions>(m, "SplittingOptions", py::module_local(),
                                   "n, k, interfaces, horizon, score cadence of AMS runs.")
      .def(py::init([](ge::Index n_replicas, ge::Index n_kill, double z_a, double z_b,
                       std::int64_t horizon, std::int64_t score_every, double quantum,
                       ge::Index max_iterations, bool naive, ge::Index batches_per_epoch) {
             return ge::SplittingOptions{n_replicas, n_kill, z_a, z_b, horizon, score_every,
                                         quantum, max_iterations, naive, batches_per_epoch};
           }),
           py::kw_only(), py::arg("n_replicas"), py::arg("n_kill"), py::arg("z_a"), py::arg("z_b"),
           py::arg("horizon"), py::arg("score_every"), py::arg("quantum"), py::arg("max_iterations"),
           py::arg("naive"), py::arg("batches_per_epoch"));

  py::class_<ge::LoopOptions>(m, "LoopOptions", py::module_local(),
                              "Interfaces and pool size of the trap's loops (stage 1).")
      .def(py::init([](double z_a, double z_sigma, double z_b, std::int64_t score_every,
                       double quantum, ge::Index pool_per_member, std::uint64_t refill_base) {
             return ge::LoopOptions{z_a, z_sigma, z_b, score_every, quantum, pool_per_member, refill_base};
           }),
           py::kw_only(), py::arg("z_a"), py::arg("z_sigma"), py::arg("z_b"), py::arg("score_every"),
           py::arg("quantum"), py::arg("pool_per_member"), py::arg("refill_base"));

  py::class_<gb::LoopSlotArrays>(m, "LoopSlots", py::module_local(),
                                 "Per-member state of the trap's loops.")
      .def(py::init([](py::array seeking_a, py::array loop_start, py::array sigma_step,
                       py::array restarts, py::array pooled, py::array init_params) {
             return gb::LoopSlotArrays{seeking_a, loop_start, sigma_step, restarts, pooled, init_params};
           }),
           py::kw_only(), py::arg("seeking_a"), py::arg("loop_start"), py::arg("sigma_step"),
           py::arg("restarts"), py::arg("pooled"), py::arg("init_params"));

  py::class_<Splitting>(m, "Splitting", py::module_local(),
                        "A batch of independent AMS runs over an ensemble of n_runs x n members.")
      .def(py::init<const gb::StateArrays&, ge::Index, std::uint64_t, std::uint64_t,
                    const ge::SplittingOptions&>(),
           py::kw_only(), py::arg("state"), py::arg("n_runs"), py::arg("first_run_id"),
           py::arg("seed"), py::arg("options"))
      .def("start", &Splitting::start, py::arg("state"), py::arg("data"), py::arg("criterion"),
           py::arg("options"), "Start every replica from its member's state (scores at age 0).")
      .def("advance", &Splitting::advance, py::arg("state"), py::arg("data"), py::arg("schedule"),
           py::arg("criterion"), py::arg("options"), py::arg("n_steps"), py::arg("work"),
           "Rounds of advancing the running replicas (at most n_steps each) and iterating, until "
           "about `work` member-steps were simulated; returns the runs not done.")
      .def("results", &Splitting::results, "Per-run results as arrays.");

  m.def(
      "trap_loops",
      [](const gb::StateArrays& state, const gb::DataArrays& data, const gb::ScheduleArrays& schedule,
         const gb::CriterionArrays& criterion, const ge::LoopOptions& loop, const gb::LoopSlotArrays& slots,
         const gb::Options& options, const ge::Span& span) {
        py::dict out;
        gb::with_scalar(state, [&](auto scalar) {
          using S = decltype(scalar);
          const auto ens = state.ref<S>();
          const auto run_data = data.ref<S>(state.layout);
          const auto sched = schedule.ref(ens.n_members);
          const auto crit = criterion.ref(ens.n_members);
          const auto sl = slots.ref<S>(ens.n_members, ens.n_params);
          const auto opt = options.ref();
          const auto sp = gb::checked(span, ens.n_members);
          ge::LoopOutput<S> result;
          {
            py::gil_scoped_release release;
            result = ge::trap_loops(state.layout, ens, run_data, sched, crit, loop, sl, opt, sp);
          }
          out = loop_output(result, ens.n_params);
        });
        return out;
      },
      py::arg("state"), py::arg("data"), py::arg("schedule"), py::arg("criterion"), py::arg("loop"),
      py::arg("slots"), py::arg("options"), py::arg("span"),
      "Advance the trap's loops (stage 1); returns their events and the pooled Sigma states.");
}
