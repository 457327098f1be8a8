#!/usr/bin/env bash
# The core under AddressSanitizer and UndefinedBehaviorSanitizer.
#
# What it does: configures and builds the baseline core with -DGROKESCAPE_SANITIZE=ON
# (CMakeLists.txt: -fsanitize=address,undefined -fno-sanitize-recover=undefined, -O1 -g1,
# no LTO, no ISA variants) in its own build directory (build-sanitize/, or
# $GROKESCAPE_SANITIZE_BUILD), copies python/grokescape beside the instrumented module
# there, and runs the engine's reference, determinism, member-state, bit-hash and escape
# tests against that copy with the sanitizer runtimes preloaded. Nothing is installed and
# the source tree is not written to; an editable install of grokescape in the same Python
# is bypassed (its import hook is removed before grokescape is imported).
#
#   tools/sanitize.sh            all five test files (375 tests, about 6 minutes on 2 cores)
#   tools/sanitize.sh --quick    all but the 3 longest tests (about 2.5 minutes)
#   tools/sanitize.sh -- ARGS    extra pytest arguments, e.g. -- -k escape -x
#
# The first build takes about 11 CPU-minutes (two translation units instantiate every
# compiled shape and kernel); later runs rebuild only what changed.
#
# Python cannot load an ASan-instrumented extension unless the ASan runtime is the first
# library in the process, so libasan and libubsan (the ones the module links) are put in
# LD_PRELOAD for the test process only. ASAN_OPTIONS has detect_leaks=0: CPython keeps
# interned objects, type objects and module state alive until exit by design, and the leak
# report at exit would be all CPython; leaks in the core are therefore not checked here.
#
# Reading a finding: the run stops at the first one (ASan always halts; UBSan halts
# because of -fno-sanitize-recover), the process aborts (exit status 134) and stderr shows
# the sanitizer's report, then Python's "Fatal Python error: Aborted" with the Python stack,
# whose frame in tests/ names the test that was running:
#   ==PID==ERROR: AddressSanitizer: heap-buffer-overflow on address ... thread T3
#   READ of size 8 at ...
#       #0 0x... in grokescape::... cpp/include/grokescape/kernels/....hpp:LINE
#   ... is located 0 bytes to the right of 32-byte region ... allocated by thread T0 here:
# or, for undefined behaviour,
#   cpp/include/grokescape/....hpp:LINE:COL: runtime error: signed integer overflow: ...
# The first frames inside cpp/ point at the faulty access (inlined frames included); the
# "allocated by" / "freed by" stacks say whose buffer it was; T1, T2 ... are OpenMP
# threads. pytest runs with --capture=sys so that these reports, written straight to file
# descriptor 2, are not swallowed with the aborted test's captured output. A false
# positive inside a third-party header (Eigen, pybind11, libgomp) would be suppressed
# narrowly, with its reason, in a suppressions file named in ASAN_OPTIONS / UBSAN_OPTIONS
# below; none is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0
extra=()
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "tools/sanitize.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

python=${PYTHON:-python}
if ! pybind11_dir=$("$python" -m pybind11 --cmakedir 2>/dev/null) || ! command -v cmake >/dev/null; then
  echo "tools/sanitize.sh needs cmake and pybind11 beside $python: pip install cmake pybind11" >&2
  exit 1
fi
build=${GROKESCAPE_SANITIZE_BUILD:-build-sanitize}
case $build in /*) ;; *) build=$root/$build ;; esac

mkdir -p "$build"
# Debug: the core's and Eigen's assertions stay on (no NDEBUG); the sanitizer flags set -O1.
cmake -S "$root" -B "$build" -DGROKESCAPE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DPython_EXECUTABLE="$(command -v "$python")" \
  -Dpybind11_DIR="$pybind11_dir" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

module=$(ls "$build"/_core.*so | head -n 1)
pkg=$build/python/grokescape
rm -rf "$pkg"
mkdir -p "$pkg"
cp -R python/grokescape/. "$pkg"
find "$pkg" \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
cp "$module" "$pkg/"

runtimes=$(ldd "$module" | awk '/lib(asan|ubsan)\.so/ {print $3}' | sort | tr '\n' ' ')
case $runtimes in
  *libasan*libubsan*) ;;
  *) echo "tools/sanitize.sh: $module links no ASan/UBSan runtime ($runtimes)" >&2; exit 1 ;;
esac

tests=(tests/test_engine_reference.py tests/test_engine_determinism.py tests/test_escape.py
       tests/test_member_state.py tests/test_bit_hashes.py)
select=()
if ((quick)); then
  # Everything but the three longest cases (about 190 of the full run's 340 s), each of
  # which repeats code paths the rest already runs: the busy-ensemble guard on 20,000
  # members, the trap test's second beta, and the hashes of the README example.
  select=(-x
    --deselect tests/test_member_state.py::test_two_threads_on_one_ensemble_are_refused_not_raced
    --deselect "tests/test_escape.py::test_exact_rank1_trap_never_escapes_under_pure_sgd_but_does_with_noise[0.03]"
    --deselect "tests/test_bit_hashes.py::test_bits_equal_the_stored_hashes[readme]")
fi

# The editable install's import hook (scikit-build-core or setuptools) comes before
# sys.path and would load its uninstrumented core: drop it, then check what was imported.
bootstrap='
import os, sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if not ("editable" in type(f).__module__ and "grokescape" in type(f).__module__)]
import grokescape, grokescape._native as native
pkg = os.environ["GROKESCAPE_SANITIZE_PKG"]
for name, path in (("grokescape", grokescape.__file__), ("core", native.core.__file__)):
    if not os.path.realpath(path).startswith(os.path.realpath(pkg) + os.sep):
        sys.exit(f"tools/sanitize.sh: {name} was imported from {path}, not from {pkg}")
print(f"sanitized core: {native.core.__file__} ({native.ISA})", flush=True)
import pytest
sys.exit(pytest.main(sys.argv[1:]))
'

env GROKESCAPE_SANITIZE_PKG="$pkg" GROKESCAPE_ISA=baseline \
  PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" \
  LD_PRELOAD="${runtimes% }" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1" \
  UBSAN_OPTIONS="print_stacktrace=1:abort_on_error=1:halt_on_error=1:report_error_type=1" \
  "$python" -c "$bootstrap" -p no:cacheprovider --capture=sys -q "${tests[@]}" "${select[@]}" "${extra[@]}"
