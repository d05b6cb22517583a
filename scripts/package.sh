#!/usr/bin/env bash
# Builds the Debian packages from this tree and checks them with lintian:
#   build/packages/libloopfast0_VERSION_ARCH.deb     the shared library (libloopfast.so.0)
#   build/packages/libloopfast-dev_VERSION_ARCH.deb  headers, .so link, pkg-config, CMake files
#   build/packages/loopfast_VERSION_ARCH.deb         the tool, man pages, /etc/loopfast.conf
# Installs what is missing first (scripts/install-deps.sh --packaging: no test libraries).
# dpkg-buildpackage runs in a copy of the tree under build/packaging/, so the tree itself gets
# no build products; a second run rebuilds only what changed. Fails if lintian reports an
# error (its warnings are listed in docs/packaging.md).
#   scripts/package.sh [--out DIR] [--work DIR] [--no-lintian]
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/packages
work=build/packaging
lint=1
while (($#)); do
  case "$1" in
    --out) out=$2 && shift ;;
    --work) work=$2 && shift ;;
    --no-lintian) lint=0 ;;
    *)
      echo "usage: scripts/package.sh [--out DIR] [--work DIR] [--no-lintian]" >&2
      exit 2
      ;;
  esac
  shift
done
scripts/install-deps.sh --packaging

version=$(sed -n 's/^project(loopfast VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
changelog=$(dpkg-parsechangelog -S Version)
if [ "$version" != "$changelog" ]; then
  echo "package: debian/changelog is at $changelog, CMakeLists.txt at $version: add an entry" >&2
  exit 1
fi

# The tree's sources (not its build directories) into $work/loopfast-VERSION. The CMake build
# directory there (obj-*) is kept between runs; files keep their times, so make rebuilds only
# what changed.
source=$work/loopfast-$version
mkdir -p "$source"
find "$source" -mindepth 1 -maxdepth 1 ! -name 'obj-*' -exec rm -rf {} +
tar --exclude='./build*' --exclude=./.git --exclude=./.cache --exclude='./obj-*' -cf - . |
  tar -xf - -C "$source"
rm -f "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo
(
  cd "$source"
  DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage --build=binary --no-pre-clean --unsigned-source --unsigned-changes \
    >../dpkg-buildpackage.log 2>&1 || {
    tail -40 ../dpkg-buildpackage.log >&2
    echo "package: dpkg-buildpackage failed; the whole log: $work/dpkg-buildpackage.log" >&2
    exit 1
  }
)
mkdir -p "$out"
rm -f "$out"/*.deb
mv "$work"/*.deb "$out"/
ls -1 "$out"/*.deb

if ((lint)); then
  # --fail-on error: warnings and informational tags are reported, not fatal.
  status=0
  lintian --fail-on error --display-info --tag-display-limit 0 "$out"/*.deb \
    >"$work/lintian.log" 2>&1 || status=$?
  cat "$work/lintian.log"
  for severity in E W I; do
    printf 'lintian %s: %s\n' "$severity" "$(grep -c "^$severity: " "$work/lintian.log" || true)"
  done
  if ((status)); then
    echo "package: lintian reports errors" >&2
    exit 1
  fi
fi
