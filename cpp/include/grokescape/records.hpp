// Where recorded observables go: (n_records, M[, ...]) arrays owned by Python, one row per
// record step. Training writes a row whenever a member passes a record step; exact
// evaluation (evaluate.hpp) writes one row for the current state.
#pragma once

#include <algorithm>
#include <cstdint>

#include "grokescape/layout.hpp"
#include "grokescape/observables.hpp"

namespace grokescape {

// Observables recorded after run step at[k] (0 = before the first step) into row k of
// (n_records, M[, ...]) arrays. Rows of members that diverged earlier are left untouched.
struct RecordPlan {
  Index n_records = 0;
  const std::int64_t* at = nullptr;
  ModeSpec modes;
  double* train_mse = nullptr;
  double* test_mse = nullptr;
  double* loss = nullptr;
  double* lam = nullptr;
  double* sv = nullptr;
  double* energy = nullptr;
  std::int64_t* diverged_at = nullptr;  // (M): run step after which the member diverged

  // Where member `member` (of n_members) writes row `row`.
  ObservableSlot slot(const Layout& layout, Index row, Index member, Index n_members) const {
    const Index cell = row * n_members + member;
    const Index r = modes.n_modes;
    const Index k = std::min(layout.d_in(), layout.d_out());
    ObservableSlot s;
    if (train_mse) s.train_mse = train_mse + cell;
    if (test_mse) s.test_mse = test_mse + cell;
    if (loss) s.loss = loss + cell;
    if (lam) s.lam = lam + cell * r;
    if (sv) s.sv = sv + cell * k;
    if (energy) s.energy = energy + cell * r;
    return s;
  }
};

}  // namespace grokescape
