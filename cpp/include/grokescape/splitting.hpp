// Rare-event splitting: generalized adaptive multilevel splitting (AMS) of SGD trajectories
// (Brehier, Gazeau, Goudenege, Lelievre, Rousset, Ann. Appl. Probab. 26 (2016) 3559), and
// the trap's loops A -> Sigma -> A of the two-stage mean escape time (Cerou, Guyader,
// Lelievre, Pommier, J. Chem. Phys. 134 (2011) 054108).
//
// A score xi of a member's state (criteria.hpp) is evaluated every `score_every` steps of a
// trajectory's age; A = {xi <= z_a}, B = {xi >= z_b}. One AMS run has n replicas, each run
// from its start until it hits A or B (or, with a horizon, reaches that age: TAMS, Lestang
// et al., J. Stat. Mech. 2018); S_i is the replica's largest score. An iteration:
//   Z = the k-th smallest S_i; the run ends when Z >= z_b;
//   every replica with S_i <= Z is killed (ties together, so possibly more than k); if all
//   are, p = 0; the weight is multiplied by (1 - killed / n);
//   each killed replica becomes a copy of a replica drawn uniformly among those with
//   S_j > Z, cut at its first score evaluation with xi > Z, and goes on from there with a
//   random stream never used before (member_state.hpp's branch: the epoch in progress
//   finishes in its parent's sample order);
// and at the end p_hat = weight x (replicas in B) / n, unbiased for any n, k and score.
//
// Branch states are not stored: a replica keeps the state where its own part of the path
// began, its random stream, and the (age, score) of each new running maximum. A clone
// replays its parent from the parent's start with the parent's stream (bit for bit: the
// driver's steps depend only on the member's state and stream) up to the record where the
// parent first passed Z, then switches to its new stream. Memory is one state per replica.
//
// Every run is independent of the others: its streams are addressed by its run id, its
// parent draws by (seed, run id, iteration), so results do not depend on the thread count
// or on how many runs go together. All runs' running replicas advance in one pass of the
// driver (lane groups across runs), then every run whose replicas have all ended iterates.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "grokescape/criteria.hpp"
#include "grokescape/driver.hpp"
#include "grokescape/member_state.hpp"
#include "grokescape/philox.hpp"

namespace grokescape {

struct SplittingOptions {
  Index n_replicas = 100;         // n per run
  Index n_kill = 1;               // k
  double z_a = -std::numeric_limits<double>::infinity();  // A = {score <= z_a}
  double z_b = 0.0;               // B = {score >= z_b}
  std::int64_t horizon = 0;       // replicas also end at this age (0: no horizon)
  std::int64_t score_every = 1;   // steps between score evaluations
  double quantum = 0.0;           // scores rounded down to multiples of this (0: exact)
  Index max_iterations = -1;      // iterations per run at most (-1: no limit; 0: brute force)
  // Negative control for the tests: kill exactly k (ties broken by index), parents among
  // S_j >= Z, branch at the first xi >= Z. Biased where scores tie.
  bool naive = false;
  Index batches_per_epoch = 0;    // of the runs' batch plan, for branches (0: no epoch order)
};

// The random stream of trajectory `counter` of run `run` (counter 0..n-1: the initial
// replicas; then one per clone, in order): a block of 2^32 streams per run, above the
// streams ensembles use for their members and refills.
inline constexpr std::uint64_t kSplittingStreamBase = std::uint64_t{1} << 62;
inline std::uint64_t splitting_stream(std::uint64_t run, std::uint64_t counter) {
  return kSplittingStreamBase + (run << 32) + counter;
}

enum class ReplicaStatus : std::uint8_t { kRunning, kReplaying, kInA, kInB, kHorizon, kDiverged };

// What a replica keeps besides its member state.
template <class S>
struct Replica {
  // Where its own part of the path began: the state, and its age on the path.
  std::vector<S> start_params;
  std::int64_t start_step = 0;
  std::uint64_t start_stream = 0;
  SampleOrder start_order;
  std::int64_t start_age = 0;
  std::vector<std::pair<std::int64_t, double>> records;  // (age, score) of each new maximum
  double max_score = -std::numeric_limits<double>::infinity();
  std::int64_t age = 0;  // current age on the path
  ReplicaStatus status = ReplicaStatus::kRunning;
  // While replaying its parent: the age where it branches, its new stream, the score there.
  std::int64_t replay_to = 0;
  std::uint64_t next_stream = 0;
  double branch_score = 0.0;
  double steps = 0.0;  // steps simulated since its run last counted them
};

struct SplittingRun {
  std::uint64_t id = 0;
  double weight = 1.0;
  Index iterations = 0;
  Index killed = 0;             // replicas killed over all iterations
  std::uint64_t next_counter = 0;
  bool done = false;
  double p = 0.0;               // weight x (replicas in B) / n, once done
  Index in_b = 0;               // replicas that ended in B
  double reactive_age = 0.0;    // sum of the ages at which those replicas reached B
  double member_steps = 0.0;    // steps simulated, replays included
  double last_level = 0.0;      // the last Z
};

// A batch of independent AMS runs over the members of an ensemble: run r's replicas are
// members [r n, (r + 1) n).
template <class S>
class SplittingRuns {
 public:
  SplittingRuns(const Layout& layout, Index n_runs, std::uint64_t first_run_id,
                std::uint64_t seed, const SplittingOptions& opt)
      : layout_(layout), opt_(opt), seed_(seed) {
    if (opt.n_replicas < 2) throw std::invalid_argument("n: expected at least 2 replicas");
    if (opt.n_kill < 1 || opt.n_kill >= opt.n_replicas)
      throw std::invalid_argument("k: expected 1 <= k < n");
    if (opt.score_every < 1) throw std::invalid_argument("score_every: expected >= 1");
    runs_.resize(static_cast<std::size_t>(n_runs));
    for (Index r = 0; r < n_runs; ++r) {
      runs_[r].id = first_run_id + static_cast<std::uint64_t>(r);
      runs_[r].next_counter = static_cast<std::uint64_t>(opt.n_replicas);
    }
    replicas_.resize(static_cast<std::size_t>(n_runs * opt.n_replicas));
  }

  Index n_runs() const { return static_cast<Index>(runs_.size()); }
  Index n_members() const { return static_cast<Index>(replicas_.size()); }
  const SplittingRun& run(Index r) const { return runs_[r]; }
  const SplittingOptions& options() const { return opt_; }
  Index running_runs() const {
    Index n = 0;
    for (const auto& r : runs_) n += r.done ? 0 : 1;
    return n;
  }
  double score_of(Index m) const { return replicas_[m].max_score; }

  // Starts replica m of every run from the member state in ens (continued with the
  // replica's own fresh stream: replicas drawn from one state must not replay each other)
  // and records its score at age 0. batches_per_epoch as in member_state.hpp's branched().
  template <Activation Act>
  void start(const EnsembleRef<S>& ens, const RunData<S>& data, const Criterion& crit, int n_threads) {
    const Index n = opt_.n_replicas;
    parallel_members(
        n_members(), n_threads, 16,
        [&] { return std::make_pair(Workspace<S>(layout_, std::max<Index>(1, data.test.n)), CheckScratch(layout_)); },
        [&](auto& scratch, Index m) {
          const SplittingRun& run = runs_[m / n];
          MemberState<S> s = branched(ens.get(m), splitting_stream(run.id, static_cast<std::uint64_t>(m % n)),
                                      opt_.batches_per_epoch);
          ens.set(m, s);
          Replica<S>& rep = replicas_[m];
          rep.start_params = s.params;
          rep.start_step = s.step;
          rep.start_stream = s.stream;
          rep.start_order = s.order;
          rep.start_age = 0;
          rep.age = 0;
          const double xi = quantized(criterion_score<S, Act>(crit.kind, crit.index, layout_, s.params.data(),
                                                              data.test, data.modes, scratch.first, scratch.second));
          rep.records.assign(1, {0, xi});
          rep.max_score = xi;
          rep.steps = 0.0;
          rep.status = xi >= opt_.z_b ? ReplicaStatus::kInB : ReplicaStatus::kRunning;
        });
  }

  // Rounds: the running replicas advance (each by at most n_steps steps), then every run
  // whose replicas have all ended iterates and sets up its clones; until about `work`
  // member-steps were simulated or every run is done. Returns the runs not done.
  template <Activation Act, class Shape>
  Index advance(const EnsembleRef<S>& ens, const RunData<S>& data, const Schedule& sched,
                const Criterion& crit, const RunOptions& opt, std::int64_t n_steps, double work);

  // The score the policy compares: rounded down to the quantum.
  double quantized(double xi) const {
    return opt_.quantum > 0.0 ? std::floor(xi / opt_.quantum) * opt_.quantum : xi;
  }

  std::vector<Replica<S>>& replicas() { return replicas_; }

 private:
  void iterate(const EnsembleRef<S>& ens, Index r);

  Layout layout_;
  SplittingOptions opt_;
  std::uint64_t seed_;
  std::vector<SplittingRun> runs_;
  std::vector<Replica<S>> replicas_;
};

// The driver's policy for splitting (see driver.hpp): scores every score_every steps of
// age, new maxima recorded, replicas end in A, in B or at the horizon; replaying clones
// switch to their own stream where their parent first passed the level.
template <class S, Activation Act>
struct SplittingPolicy {
  const Layout& layout;
  const RunData<S>& data;
  const Criterion& crit;
  SplittingRuns<S>& runs;

  struct Extra {
    std::int64_t step0, age0;  // member step and path age when the member entered the group
  };
  struct Thread {
    CheckScratch checks;
    std::vector<double> amplitude;
  };
  Thread make_thread(int group) const {
    return Thread{CheckScratch(layout, group), std::vector<double>(static_cast<std::size_t>(group), 0.0)};
  }

  Replica<S>& rep(Index m) const { return runs.replicas()[static_cast<std::size_t>(m)]; }
  bool admit(Index m) const {
    const ReplicaStatus s = rep(m).status;
    return s == ReplicaStatus::kRunning || s == ReplicaStatus::kReplaying;
  }
  template <class M>
  std::int64_t age(const M& mb) const {
    return mb.x.age0 + (mb.step - mb.x.step0);
  }

  template <class M, class Scratch>
  void enter(M& mb, Thread&, Scratch&) {
    mb.x.step0 = mb.step;
    mb.x.age0 = rep(mb.m).age;
  }

  template <class M>
  std::int64_t next_stop(const M& mb, std::int64_t r) const {
    const Replica<S>& p = rep(mb.m);
    const std::int64_t a = age(mb);
    if (p.status == ReplicaStatus::kReplaying) return r + (p.replay_to - a);
    const std::int64_t every = runs.options().score_every;
    std::int64_t next = r + (a / every + 1) * every - a;
    if (runs.options().horizon > 0) next = std::min(next, r + (runs.options().horizon - a));
    return next;
  }

  template <class M>
  bool due(const M& mb) const {
    return rep(mb.m).status == ReplicaStatus::kRunning && age(mb) % runs.options().score_every == 0;
  }

  template <class Scratch>
  bool lane_amplitudes(const Scratch& st) const {
    return st.lanes_layout() && crit.kind == CriterionKind::kModeAmplitude;
  }

  template <class M, class Scratch>
  void at_stop(M* members, int n, std::int64_t, Thread& th, Scratch& st) {
    if (!lane_amplitudes(st)) return;
    bool any = false;
    for (int q = 0; q < n; ++q) any = any || due(members[q]);
    if (any)
      mode_amplitudes_lanes(layout, st.local.data(), st.group, data.modes.in_vec + crit.index * layout.d_in(),
                            data.modes.out_vec + crit.index * layout.d_out(), th.checks, th.amplitude.data());
  }

  template <class M, class Scratch>
  Next act(M& mb, int q, bool finite, std::int64_t, Thread& th, Scratch& st) {
    Replica<S>& p = rep(mb.m);
    const std::int64_t a = age(mb);
    p.age = a;
    if (!finite) {
      p.status = ReplicaStatus::kDiverged;
      return Next::kLeave;
    }
    const SplittingOptions& opt = runs.options();
    if (p.status == ReplicaStatus::kReplaying) {
      if (a < p.replay_to) return Next::kContinue;
      // The parent's state where it first passed the level: from here on, the clone's own.
      MemberState<S> s;
      s.step = mb.step;
      s.stream = mb.stream;
      s.order = mb.order;
      s = branched(std::move(s), p.next_stream, opt.batches_per_epoch);
      mb.stream = s.stream;
      mb.order = s.order;
      const S* params = st.contiguous(mb, layout.n_params);
      p.start_params.assign(params, params + layout.n_params);
      p.start_step = mb.step;
      p.start_stream = mb.stream;
      p.start_order = mb.order;
      p.start_age = a;
      p.records.assign(1, {a, p.branch_score});
      p.max_score = p.branch_score;
      p.status = ReplicaStatus::kRunning;
      return Next::kRestart;
    }
    if (a % opt.score_every == 0) {
      const double xi = runs.quantized(
          lane_amplitudes(st) ? th.amplitude[q]
                              : criterion_score<S, Act>(crit.kind, crit.index, layout,
                                                        st.contiguous(mb, layout.n_params), data.test,
                                                        data.modes, st.eval, th.checks));
      if (xi > p.max_score) {
        p.max_score = xi;
        p.records.emplace_back(a, xi);
      }
      if (xi >= opt.z_b) {
        p.status = ReplicaStatus::kInB;
        return Next::kLeave;
      }
      if (xi <= opt.z_a) {
        p.status = ReplicaStatus::kInA;
        return Next::kLeave;
      }
    }
    if (opt.horizon > 0 && a >= opt.horizon) {
      p.status = ReplicaStatus::kHorizon;
      return Next::kLeave;
    }
    return Next::kContinue;
  }

  template <class M>
  void save(const M& mb) const {
    Replica<S>& p = rep(mb.m);
    p.age = age(mb);
    p.steps += static_cast<double>(mb.step - mb.x.step0);
  }
};

template <class S>
template <Activation Act, class Shape>
Index SplittingRuns<S>::advance(const EnsembleRef<S>& ens, const RunData<S>& data, const Schedule& sched,
                                const Criterion& crit, const RunOptions& opt, std::int64_t n_steps,
                                double work) {
  SplittingPolicy<S, Act> policy{layout_, data, crit, *this};
  std::vector<Index> running;  // gathered, so that lane groups hold running replicas only
  double spent = 0.0;
  while (running_runs() > 0 && spent < work) {
    running.clear();
    for (Index m = 0; m < n_members(); ++m)
      if (policy.admit(m)) running.push_back(m);
    double before = 0.0, after = 0.0;
    for (Index m : running) before += replicas_[m].steps;
    const Span span{0, n_steps, 0, static_cast<Index>(running.size()), running.data()};
    drive<S, Act, Shape>(layout_, ens, data, sched, opt, span, policy);
    for (Index m : running) after += replicas_[m].steps;
    spent += after - before;
    parallel_members(
        n_runs(), opt.n_threads, 1, [] { return 0; },
        [&](int&, Index r) {
          if (runs_[r].done) return;
          const Index n = opt_.n_replicas;
          for (Index i = 0; i < n; ++i)
            if (policy.admit(r * n + i)) return;  // still running
          iterate(ens, r);
        });
  }
  return running_runs();
}

template <class S>
void SplittingRuns<S>::iterate(const EnsembleRef<S>& ens, Index r) {
  SplittingRun& run = runs_[r];
  const Index n = opt_.n_replicas;
  Replica<S>* reps = replicas_.data() + r * n;
  for (Index i = 0; i < n; ++i) {
    run.member_steps += reps[i].steps;
    reps[i].steps = 0.0;
  }
  auto finish = [&] {
    run.done = true;
    run.in_b = 0;
    run.reactive_age = 0.0;
    for (Index i = 0; i < n; ++i)
      if (reps[i].status == ReplicaStatus::kInB) {
        ++run.in_b;
        run.reactive_age += static_cast<double>(reps[i].age);
      }
    run.p = run.weight * static_cast<double>(run.in_b) / static_cast<double>(n);
  };
  if (opt_.max_iterations >= 0 && run.iterations >= opt_.max_iterations) return finish();
  // The level: the k-th smallest maximum (a diverged replica counts with what it reached).
  std::vector<double> s(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) s[i] = reps[i].max_score;
  std::nth_element(s.begin(), s.begin() + (opt_.n_kill - 1), s.end());
  const double z = s[static_cast<std::size_t>(opt_.n_kill - 1)];
  run.last_level = z;
  if (z >= opt_.z_b) return finish();
  std::vector<Index> killed, parents;
  if (!opt_.naive) {
    for (Index i = 0; i < n; ++i) (reps[i].max_score <= z ? killed : parents).push_back(i);
  } else {  // exactly k, the smallest maxima first, ties by index
    std::vector<Index> order(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](Index a, Index b) { return reps[a].max_score < reps[b].max_score; });
    killed.assign(order.begin(), order.begin() + opt_.n_kill);
    std::sort(killed.begin(), killed.end());
    for (Index i = 0; i < n; ++i)
      if (!std::binary_search(killed.begin(), killed.end(), i) && reps[i].max_score >= z) parents.push_back(i);
  }
  if (parents.empty()) {  // every replica at or below the level: p = 0
    run.weight = 0.0;
    return finish();
  }
  run.weight *= 1.0 - static_cast<double>(killed.size()) / static_cast<double>(n);
  run.killed += static_cast<Index>(killed.size());
  DrawStream draws(seed_, splitting_stream(run.id, 0xFFFFFFFFu), static_cast<std::uint64_t>(run.iterations),
                   Purpose::kSplitting);
  // Every parent and branch record first (draws in the order of the killed replicas), then
  // the clones.
  std::vector<std::pair<Index, std::pair<std::int64_t, double>>> plan;
  plan.reserve(killed.size());
  for (std::size_t t = 0; t < killed.size(); ++t) {
    const Index j = parents[static_cast<std::size_t>(draws.below(parents.size()))];
    const auto& rec = reps[j].records;
    std::size_t k = 0;
    while (k < rec.size() && !(opt_.naive ? rec[k].second >= z : rec[k].second > z)) ++k;
    if (k == rec.size()) k = rec.size() - 1;  // not reached for S_j > z; naive ties
    plan.push_back({j, rec[k]});
  }
  for (std::size_t t = 0; t < killed.size(); ++t) {
    const Index c = killed[t];
    const Index j = plan[t].first;
    const auto [branch_age, branch_score] = plan[t].second;
    Replica<S>& child = reps[c];
    const Replica<S>& parent = reps[j];
    const Index m = r * n + c;
    MemberState<S> s;
    s.params = parent.start_params;
    s.step = parent.start_step;
    s.stream = parent.start_stream;
    s.order = parent.start_order;
    s.diverged = false;
    const std::uint64_t fresh = splitting_stream(run.id, run.next_counter++);
    child.age = parent.start_age;
    if (branch_age == parent.start_age) {  // the parent passed the level at its start
      s = branched(std::move(s), fresh, opt_.batches_per_epoch);
      child.start_params = s.params;
      child.start_step = s.step;
      child.start_stream = s.stream;
      child.start_order = s.order;
      child.start_age = branch_age;
      child.records.assign(1, {branch_age, branch_score});
      child.max_score = branch_score;
      child.status = ReplicaStatus::kRunning;
    } else {
      child.status = ReplicaStatus::kReplaying;
      child.replay_to = branch_age;
      child.next_stream = fresh;
      child.branch_score = branch_score;
      child.records.clear();
      child.max_score = -std::numeric_limits<double>::infinity();
    }
    ens.set(m, s);
  }
  ++run.iterations;
}

// ---------------------------------------------------------------------------- stage 1
// The trap's loops, by brute force: each member starts in A and is followed through
// A -> Sigma (an "up", whose end state joins the pool that stage 2 starts from) -> A (the
// loop closes) -> Sigma -> ..., its score evaluated every score_every steps. A member that
// reaches B from Sigma ends a reactive path and starts again from its initial state with a
// fresh stream (trajectory ids as in escape.hpp's refill).
struct LoopOptions {
  double z_a = 0.0, z_sigma = 0.0, z_b = 0.0;
  std::int64_t score_every = 1;
  double quantum = 0.0;
  Index pool_per_member = 0;  // Sigma states each member gives to stage 2's pool (its first)
  std::uint64_t refill_base = 0;
};

// Per-member state that persists across calls (owned by Python).
template <class S>
struct LoopSlots {
  std::uint8_t* seeking_a = nullptr;     // 1 after Sigma, until A
  std::int64_t* loop_start = nullptr;    // step at which the current loop began (in A)
  std::int64_t* sigma_step = nullptr;    // step of the last Sigma crossing
  std::int64_t* restarts = nullptr;      // trajectories started after reaching B
  std::int64_t* pooled = nullptr;        // states this member gave to the pool
  const S* init_params = nullptr;        // (M, P): where a member starts again after B
};

enum class LoopEventKind : int { kUp = 0, kLoop = 1, kReactive = 2 };

struct LoopEvent {
  Index member;
  LoopEventKind kind;
  std::int64_t duration;  // up: A -> Sigma; loop: A -> Sigma -> A; reactive: Sigma -> B
  std::int64_t at;        // member step where it ended
};

template <class S>
struct LoopOutput {
  std::vector<LoopEvent> events;
  std::vector<MemberState<S>> pool;
  std::vector<Index> pool_member;
};

template <class S, Activation Act>
struct LoopPolicy {
  const Layout& layout;
  const EnsembleRef<S>& ens;
  const RunData<S>& data;
  const Criterion& crit;
  const LoopOptions& opt;
  const LoopSlots<S>& slots;
  std::mutex& out_mutex;
  std::vector<std::unique_ptr<LoopOutput<S>>>& outputs;  // one per thread

  struct Extra {};
  struct Thread {
    LoopOutput<S>* out;
    CheckScratch checks;
    std::vector<double> amplitude;
  };
  Thread make_thread(int group) {
    auto own = std::make_unique<LoopOutput<S>>();
    std::lock_guard<std::mutex> lock(out_mutex);
    outputs.push_back(std::move(own));
    return Thread{outputs.back().get(), CheckScratch(layout, group),
                  std::vector<double>(static_cast<std::size_t>(group), 0.0)};
  }
  bool admit(Index m) const { return !ens.diverged[m]; }
  template <class M, class Scratch>
  void enter(M&, Thread&, Scratch&) {}
  template <class M>
  std::int64_t next_stop(const M& mb, std::int64_t r) const {
    const std::int64_t age = mb.step - slots.loop_start[mb.m];
    return r + (age / opt.score_every + 1) * opt.score_every - age;
  }
  template <class M>
  bool due(const M& mb) const {
    return (mb.step - slots.loop_start[mb.m]) % opt.score_every == 0;
  }
  template <class Scratch>
  bool lane_amplitudes(const Scratch& st) const {
    return st.lanes_layout() && crit.kind == CriterionKind::kModeAmplitude;
  }
  template <class M, class Scratch>
  void at_stop(M* members, int n, std::int64_t, Thread& th, Scratch& st) {
    if (!lane_amplitudes(st)) return;
    bool any = false;
    for (int q = 0; q < n; ++q) any = any || due(members[q]);
    if (any)
      mode_amplitudes_lanes(layout, st.local.data(), st.group, data.modes.in_vec + crit.index * layout.d_in(),
                            data.modes.out_vec + crit.index * layout.d_out(), th.checks, th.amplitude.data());
  }
  template <class M, class Scratch>
  Next act(M& mb, int q, bool finite, std::int64_t, Thread& th, Scratch& st) {
    const Index m = mb.m;
    if (!finite) {
      ens.diverged[m] = 1;
      return Next::kLeave;
    }
    if (!due(mb)) return Next::kContinue;
    const double raw = lane_amplitudes(st)
                           ? th.amplitude[q]
                           : criterion_score<S, Act>(crit.kind, crit.index, layout, st.contiguous(mb, layout.n_params),
                                                     data.test, data.modes, st.eval, th.checks);
    const double xi = opt.quantum > 0.0 ? std::floor(raw / opt.quantum) * opt.quantum : raw;
    if (!slots.seeking_a[m]) {
      if (xi < opt.z_sigma) return Next::kContinue;
      th.out->events.push_back({m, LoopEventKind::kUp, mb.step - slots.loop_start[m], mb.step});
      slots.seeking_a[m] = 1;
      slots.sigma_step[m] = mb.step;
      if (slots.pooled[m] < opt.pool_per_member) {
        MemberState<S> s;
        const S* params = st.contiguous(mb, layout.n_params);
        s.params.assign(params, params + layout.n_params);
        s.step = mb.step;
        s.stream = mb.stream;
        s.order = mb.order;
        th.out->pool.push_back(std::move(s));
        th.out->pool_member.push_back(m);
        ++slots.pooled[m];
      }
      // an up may end in B at once (xi >= z_b): fall through
    }
    if (xi >= opt.z_b) {
      th.out->events.push_back({m, LoopEventKind::kReactive, mb.step - slots.sigma_step[m], mb.step});
      // a new trajectory from the member's initial state, with a fresh stream
      mb.stream = opt.refill_base + static_cast<std::uint64_t>(slots.restarts[m] * ens.n_members + m);
      ++slots.restarts[m];
      const S* init = slots.init_params + m * layout.n_params;
      for (Index i = 0; i < layout.n_params; ++i) mb.params[i * mb.stride] = init[i];
      mb.order = SampleOrder{};
      mb.step = 0;
      slots.seeking_a[m] = 0;
      slots.loop_start[m] = 0;
      return Next::kRestart;
    }
    if (slots.seeking_a[m] && xi <= opt.z_a) {
      th.out->events.push_back({m, LoopEventKind::kLoop, mb.step - slots.loop_start[m], mb.step});
      slots.seeking_a[m] = 0;
      slots.loop_start[m] = mb.step;
    }
    return Next::kContinue;
  }
  template <class M>
  void save(const M&) const {}
};

// Advances members [span] by span.n_steps steps of stage 1; returns the loops' events and
// the Sigma states pooled for stage 2, both ordered by member and step.
template <class S>
LoopOutput<S> trap_loops(const Layout& layout, const EnsembleRef<S>& ens, const RunData<S>& data,
                         const Schedule& sched, const Criterion& crit, const LoopOptions& lopt,
                         const LoopSlots<S>& slots, const RunOptions& opt, const Span& span) {
  std::mutex out_mutex;
  std::vector<std::unique_ptr<LoopOutput<S>>> outputs;
  with_kernel_shape(layout, opt.kernels, [&](auto act, auto shape) {
    constexpr Activation Act = decltype(act)::value;
    LoopPolicy<S, Act> policy{layout, ens, data, crit, lopt, slots, out_mutex, outputs};
    drive<S, Act, decltype(shape)>(layout, ens, data, sched, opt, span, policy);
  });
  // one order whatever the threads: events by member and step, pool states by member and step
  LoopOutput<S> merged;
  for (auto& o : outputs) {
    merged.events.insert(merged.events.end(), o->events.begin(), o->events.end());
    for (std::size_t i = 0; i < o->pool.size(); ++i) {
      merged.pool.push_back(std::move(o->pool[i]));
      merged.pool_member.push_back(o->pool_member[i]);
    }
  }
  std::sort(merged.events.begin(), merged.events.end(), [](const LoopEvent& a, const LoopEvent& b) {
    return a.member != b.member ? a.member < b.member : a.at < b.at;
  });
  std::vector<std::size_t> idx(merged.pool.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    return merged.pool_member[a] != merged.pool_member[b] ? merged.pool_member[a] < merged.pool_member[b]
                                                          : merged.pool[a].step < merged.pool[b].step;
  });
  LoopOutput<S> out;
  out.events = std::move(merged.events);
  for (std::size_t i : idx) {
    out.pool.push_back(std::move(merged.pool[i]));
    out.pool_member.push_back(merged.pool_member[i]);
  }
  return out;
}

}  // namespace grokescape
