#!/usr/bin/env bash
# Instruction counts of one workload in two installed versions of grokescape (an A/B that the
# VM's wall-time noise cannot blur). Each version runs the workload with 1 and with 3 train
# (or escape) calls; the difference is the work of 2 calls, set-up cancelled.
#
#   OLD_PY=/path/to/old/venv/bin/python NEW_PY=/path/to/new/venv/bin/python \
#     benchmarks/ab/callgrind.sh paper|paper_ps|tiny|wide|escape
#
# valgrind does not run AVX-512, so both use the avx2 core; one thread.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=$1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive GROKESCAPE_ISA=avx2
count() {
  (cd /tmp && valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" \
    "$here/callgrind_work.py" "$name" "$2" 2>&1 | awk '/Collected/ {print $4}')
}
for version in old new; do
  py=$OLD_PY; [ "$version" = new ] && py=$NEW_PY
  one=$(count "$py" 1); three=$(count "$py" 3)
  echo "$name $version $one $three diff $((three - one))"
done
