#!/usr/bin/env bash
# Re-vendor the Eigen headers under cpp/third_party/eigen/ from a pinned Debian package.
#
# The headers are copied unmodified. Eigen is MPL-2.0 (a few files BSD-3 / LGPL-2.1+, see
# COPYRIGHT.debian); the licence texts are copied beside the headers.
#
# Usage: tools/vendor_eigen.sh            (needs apt-get download, i.e. a Debian-like host)
set -euo pipefail
EIGEN_DEB_VERSION="3.4.0-4"
EIGEN_DEB_SHA256="1a167bb381acb90c1d8450a8f3e66a09d216dbc64b33ac8a082a0912513ef939"
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/cpp/third_party/eigen"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download "libeigen3-dev=${EIGEN_DEB_VERSION}"
deb="$(ls libeigen3-dev_*.deb)"
actual="$(sha256sum "$deb" | cut -d' ' -f1)"
if [ "${EIGEN_DEB_SHA256:-}" != "$actual" ]; then
  echo "error: sha256 of $deb is $actual, pinned ${EIGEN_DEB_SHA256}; review and update the pin" >&2; exit 1
fi
dpkg-deb -x "$deb" extracted
rm -rf "$dest"
mkdir -p "$dest"
cp -r extracted/usr/include/eigen3/Eigen "$dest/Eigen"
cp extracted/usr/include/eigen3/signature_of_eigen3_matrix_library "$dest/"
cp extracted/usr/share/doc/libeigen3-dev/copyright "$dest/COPYRIGHT.debian"
for lic in MPL-2.0 LGPL-2.1; do
  cp "/usr/share/common-licenses/$lic" "$dest/COPYING.$lic"
done
{
  echo "Eigen 3.4.0, headers copied unmodified from Debian package libeigen3-dev ${EIGEN_DEB_VERSION}"
  echo "package sha256: $actual"
  echo "re-vendor with: tools/vendor_eigen.sh"
} > "$dest/VERSION"
echo "vendored Eigen into $dest"
