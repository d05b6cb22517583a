#!/usr/bin/env bash
# The Debian packages, end to end (label "packaging"):
#   1. scripts/package.sh builds the three .deb files from the tree, and lintian reports no
#      error (package.sh fails otherwise);
#   2. in a throw-away root (an overlay of this machine's / in a private mount namespace, so
#      that nothing here changes) `dpkg -i` installs them, and then: `man loopfast`,
#      `man loopfast.conf`, `man 3 loopfast_ioctl` find and render their pages; `pkg-config
#      --modversion loopfast` answers; `loopfast doctor` exits 0; a program built with
#      `pkg-config --cflags --libs loopfast` makes a fast connection, and one built with CMake's
#      find_package(loopfast) links; the tool has no RUNPATH and preloads the system library;
#   3. `dpkg -r` removes every file of the three packages but the conffile /etc/loopfast.conf,
#      and `dpkg --purge` that too.
# Needs root, mount namespaces and overlayfs (as CI has); otherwise it says so and is skipped
# (exit 77): then do step 2 by hand on a machine of your own (docs/packaging.md).
# usage: package_test.sh SOURCE_DIR BINARY_DIR
set -euo pipefail
source_dir=$(cd "$1" && pwd)
binary_dir=$(cd "$2" && pwd)
work=$binary_dir/package-test
if [ "$(id -u)" != 0 ] || ! unshare --mount --propagation private true 2>/dev/null; then
  echo "package test: needs root and mount namespaces for its throw-away root; skipped"
  exit 77
fi

# 1. Build and lint (incremental: $work/packaging keeps the CMake build between runs).
"$source_dir/scripts/package.sh" --out "$work/debs" --work "$work/packaging"
debs=("$work"/debs/*.deb)
[ "${#debs[@]}" = 3 ] || { echo "FAIL: ${#debs[@]} packages: ${debs[*]}"; exit 1; }
for package in libloopfast0 libloopfast-dev loopfast; do
  ls "$work/debs/${package}_"*.deb >/dev/null || { echo "FAIL: no $package package"; exit 1; }
done
# Every file the packages hold (for the removal check), and the conffiles.
for deb in "${debs[@]}"; do dpkg-deb --fsys-tarfile "$deb" | tar -t; done |
  sed 's|^\./|/|; /\/$/d' | sort -u >"$work/files"
grep -qx /etc/loopfast.conf "$work/files" || { echo "FAIL: no /etc/loopfast.conf"; exit 1; }

# 2 and 3, in the throw-away root.
rm -rf "$work/root" && mkdir -p "$work/root"
cp "$source_dir/tests/packaging/fast_consumer.c" "$work/root/"
cp -r "$source_dir/tests/install" "$work/root/cmake_consumer"
cat >"$work/root/inside.sh" <<'INSIDE'
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
fail() { echo "FAIL: $*"; exit 1; }
cd /lf
rm -f /var/lib/man-db/auto-update  # no mandb run at install: man finds pages without it
# Start from nothing of loopfast (a machine where they are installed, or that has its own
# /etc/loopfast.conf, keeps them: this is the throw-away copy).
for package in loopfast libloopfast-dev libloopfast0; do
  if dpkg-query -W "$package" >/dev/null 2>&1; then dpkg --purge "$package" >/dev/null; fi
done
rm -f /etc/loopfast.conf
dpkg -i debs/*.deb >dpkg-i.log 2>&1 || { cat dpkg-i.log; fail "dpkg -i"; }
echo "dpkg -i: $(dpkg-query -W -f '${Package} ${Version}, ' loopfast libloopfast0 libloopfast-dev)"

for page in "loopfast" "loopfast.conf" "3 loopfast_ioctl" "7 loopfast" "loopfast-doctor" \
            "loopfast-service" "loopfast_set_fast_path"; do
  where=$(man -w $page) || fail "man -w $page"
  case "$where" in /usr/share/man/*) ;; *) fail "man $page found $where" ;; esac
  warnings=$(MANPAGER=cat MANWIDTH=80 man --warnings $page 2>&1 >/dev/null) || fail "man $page"
  [ -z "$warnings" ] || fail "man $page: $warnings"
done
grep -q 'inspect port' <<<"$(MANPAGER=cat man loopfast.conf)" || fail "man loopfast.conf text"
grep -q SIO_LOOPBACK_FAST_PATH <<<"$(MANPAGER=cat man 3 loopfast_ioctl)" || fail "man 3 text"
echo "man: loopfast(1), loopfast.conf(5), loopfast_ioctl(3), loopfast(7) and the others render"

[ "$(pkg-config --modversion loopfast)" = "$VERSION" ] || fail "pkg-config --modversion"
echo "pkg-config --modversion loopfast: $(pkg-config --modversion loopfast)"

libdir=$(dirname "$(dpkg -L libloopfast0 | grep '/libloopfast.so.0$')")
[ "$(readlink "$libdir/libloopfast.so.0")" = "libloopfast.so.$VERSION" ] || fail "soname link"
[ "$(readlink "$libdir/libloopfast.so")" = libloopfast.so.0 ] || fail "development link"
grep -q 'SONAME.*\[libloopfast.so.0\]' <<<"$(readelf -d "$libdir/libloopfast.so.$VERSION")" ||
  fail "soname"
echo "$libdir: libloopfast.so -> libloopfast.so.0 -> libloopfast.so.$VERSION (soname set)"
if grep -qE 'RPATH|RUNPATH' <<<"$(readelf -d /usr/bin/loopfast)"; then fail "tool RUNPATH"; fi
libraries=$(ldd /usr/bin/loopfast)  # (grep -q on the pipe would end ldd early: pipefail)
grep -q 'libloopfast.so.0 => /.*lib/x86_64-linux-gnu/libloopfast.so.0' <<<"$libraries" ||
  fail "the tool does not use the installed library: $libraries"
preload=$(loopfast run -- sh -c 'echo "$LD_PRELOAD"')
case "$preload" in /usr/lib/*/libloopfast.so.0) ;; *) fail "loopfast run preloads $preload" ;; esac
echo "loopfast run preloads $preload"

env -i PATH="$PATH" HOME=/root loopfast doctor >doctor.log 2>&1 ||
  { cat doctor.log; fail "doctor"; }
tail -1 doctor.log
grep -E '^ok +policy +/etc/loopfast.conf: 0 rules' doctor.log || fail "the packaged policy file"

cc -o fast_consumer fast_consumer.c $(pkg-config --cflags --libs loopfast) || fail "cc"
[ "$(./fast_consumer)" = fast ] || fail "the pkg-config program's connection was not fast"
echo "a program built with pkg-config --cflags --libs loopfast: fast connection"
{ cmake -S cmake_consumer -B cmake_build && cmake --build cmake_build; } >cmake.log 2>&1 ||
  { cat cmake.log; fail "find_package(loopfast)"; }
[ "$(./cmake_build/consumer)" = "loopfast $VERSION" ] || fail "the CMake consumer"
echo "a program built with CMake find_package(loopfast): links and runs"

dpkg -r loopfast libloopfast-dev libloopfast0 >dpkg-r.log 2>&1 ||
  { cat dpkg-r.log; fail "dpkg -r"; }
left=$(while read -r file; do
  [ "$file" = /etc/loopfast.conf ] && continue
  if [ -e "$file" ] || [ -L "$file" ]; then echo "$file"; fi
done <files)
[ -z "$left" ] || fail "dpkg -r left: $left"
[ -f /etc/loopfast.conf ] || fail "dpkg -r removed the conffile"
[[ "$(dpkg-query -W -f '${Status}' loopfast)" == *config-files ]] || fail "status after -r"
for dir in /usr/share/doc/loopfast /usr/include/loopfast /usr/lib/*/cmake/loopfast; do
  [ ! -e "$dir" ] || fail "dpkg -r left $dir"
done
echo "dpkg -r: every file gone but /etc/loopfast.conf"
dpkg --purge loopfast >/dev/null 2>&1 || fail "dpkg --purge"
[ ! -e /etc/loopfast.conf ] || fail "dpkg --purge left /etc/loopfast.conf"
echo "dpkg --purge: the conffile gone too"
INSIDE
cp -r "$work/debs" "$work/files" "$work/root/"
version=$(dpkg-deb -f "$work/debs/loopfast_"*.deb Version)

# The root: / read-only below, a tmpfs above, both only in this mount namespace.
unshare --mount --propagation private bash -euo pipefail -c '
  work=$1 version=$2
  layers=$work/layers
  mkdir -p "$layers"
  mount -t tmpfs -o size=2g tmpfs "$layers"
  mkdir -p "$layers/upper" "$layers/work" "$layers/merged"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$layers/upper,workdir=$layers/work" \
    "$layers/merged"
  root=$layers/merged
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  mount -t tmpfs tmpfs "$root/run"
  mkdir -p "$root/lf"
  mount --bind "$work/root" "$root/lf"
  exec chroot "$root" env VERSION="$version" bash /lf/inside.sh
' - "$work" "$version"
echo "packages: ok"
