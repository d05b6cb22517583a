#!/usr/bin/env python3
"""libloopfast.so exports the public API and the interposed libc functions, and nothing else;
its soname is set and its links are right.

  - soname (readelf -d): libloopfast.so.0; the file is libloopfast.so.0.X.Y, libloopfast.so.0
    links to it and libloopfast.so (the development link) to libloopfast.so.0;
  - every function the public C headers declare (include/loopfast/*.h) is exported;
  - every wrapper the interposer defines is exported: those written by hand (LOOPFAST_EXPORT in
    src/interpose/interpose.cc) and those generated from the X-macro list
    (src/sys/real_calls_list.h: every entry but the REAL_ONLY ones);
  - nothing else is exported (nm -D --defined-only): no C++ symbol, no internal function.

usage: exported_symbols_test.py LIBRARY_FILE SONAME_LINK DEV_LINK SOURCE_DIR
"""
import os
import re
import subprocess
import sys

library, soname_link, dev_link, source = sys.argv[1:5]
failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message)


def read(path):
    with open(os.path.join(source, path), encoding="utf-8") as f:
        return f.read()


def without_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


# ---- soname and links ----
dynamic = subprocess.run(["readelf", "-d", library], capture_output=True, text=True).stdout
soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", dynamic)
if not soname or soname.group(1) != "libloopfast.so.0":
    fail(f"soname: {soname.group(1) if soname else 'none'}")
if not re.fullmatch(r"libloopfast\.so\.0\.\d+\.\d+", os.path.basename(library)):
    fail(f"library file name: {os.path.basename(library)}")
for link, target in ((soname_link, os.path.basename(library)), (dev_link, "libloopfast.so.0")):
    if not os.path.islink(link) or os.readlink(link) != target:
        found = os.readlink(link) if os.path.islink(link) else "not a link"
        fail(f"{link} should link to {target}: {found}")
if re.search(r"\((RPATH|RUNPATH)\)", dynamic):
    fail("the library carries an RPATH/RUNPATH")

# ---- what should be exported ----
public = set()
for header in ("include/loopfast/loopfast.h", "include/loopfast/winsock.h"):
    text = without_comments(read(header))
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)  # preprocessor lines
    for name in re.findall(r"\b([A-Za-z_]\w*)\s*\([^;{}()]*(?:\([^)]*\)[^;{}()]*)*\)\s*;", text):
        public.add(name)
public -= {"typedef"}
interposer = without_comments(read("src/interpose/interpose.cc"))
by_hand = set(re.findall(r"^LOOPFAST_EXPORT\b[^(]*?\b(\w+)\s*\(", interposer, re.M))
# X(ret, name, (params), (args), shape, verb)
x_macros = without_comments(read("src/sys/real_calls_list.h")).replace("\\\n", " ")
x_entries = re.findall(r"X\(\s*[^,()]+,\s*(\w+)\s*,\s*\([^()]*\)\s*,\s*\([^()]*\)\s*,\s*(\w+)",
                       x_macros)
if len(x_entries) != x_macros.count("X("):
    fail(f"real_calls_list.h: {x_macros.count('X(')} entries, {len(x_entries)} parsed")
x_list = {name for name, _ in x_entries}
generated = {name for name, shape in x_entries
             if not shape.startswith("HAND") and shape not in ("VARIADIC", "REAL_ONLY")}
not_wrapped = {name for name, shape in x_entries if shape == "REAL_ONLY"}
interposed = by_hand | generated
print(f"public API: {len(public)} functions; interposer: {len(interposed)} wrappers "
      f"({len(by_hand)} by hand, {len(generated)} generated); X-macro list: {len(x_list)} functions")
if len(public) < 8 or len(by_hand) < 20 or len(generated) < 20:
    fail("the sources were not parsed (too few names found)")
for name in sorted(x_list - not_wrapped - interposed):
    fail(f"{name} (real_calls_list.h, HAND or VARIADIC) has no hand-written wrapper")
for name in sorted(generated & by_hand):
    fail(f"{name} (real_calls_list.h) is both generated and written by hand")

# ---- what is exported ----
nm = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True, text=True)
exported = {}
for line in nm.stdout.splitlines():
    parts = line.split()
    if len(parts) >= 3:
        exported[parts[2].split("@")[0]] = parts[1]

for name in sorted(public - exported.keys()):
    fail(f"public function {name} is not exported")
for name in sorted(interposed - exported.keys()):
    fail(f"interposed function {name} is not exported")
# A REAL_ONLY function of the X-macro list is only in the table of real functions.
for name in sorted(not_wrapped & exported.keys()):
    fail(f"{name} (real_calls_list.h, REAL_ONLY) is exported")
for name in sorted(exported.keys() - public - interposed):
    fail(f"exported but neither public nor interposed: {name} ({exported[name]})")
for name, kind in sorted(exported.items()):
    if kind not in ("T", "W", "i") and name in public | interposed:
        fail(f"{name} exported as '{kind}', not as a function")

if failures:
    sys.exit(1)
print(f"exported: {len(exported)} symbols = {len(public)} public + "
      f"{len(exported) - len(public)} interposed; soname libloopfast.so.0, links right: ok")
