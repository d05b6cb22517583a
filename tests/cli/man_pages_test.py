#!/usr/bin/env python3
"""The man pages (man/): each renders with `groff -man -ww -z` without a warning, has a NAME
line man-db can index (lexgrog, where installed), names only pages that exist in SEE ALSO, and
agrees with the tool: each subcommand's page lists exactly the options its `--help` lists
(long and short, in SYNOPSIS and OPTIONS; --help's EXAMPLES and SEE ALSO are left out), and
loopfast(1) lists exactly the commands `loopfast --help` lists.

usage: man_pages_test.py LOOPFAST_TOOL MAN_DIR
"""
import os
import re
import shutil
import subprocess
import sys

TOOL, MAN_DIR = sys.argv[1], sys.argv[2]
SUBCOMMANDS = ["run", "stat", "bench", "capture", "doctor", "service"]
PAGES = ["loopfast.1", "loopfast.7", "loopfast.conf.5", "loopfast_ioctl.3"] + [
    f"loopfast-{c}.1" for c in SUBCOMMANDS
]
failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message)


def roff_to_text(source):
    """Roff source to plain words: escapes for the minus sign and fonts removed."""
    text = source.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")
    text = re.sub(r"\\f[BIRP]|\\f\[[A-Z]*\]|\\\(..|\\%", "", text)
    return text


def sections(source):
    """{SECTION NAME: roff text} of a page."""
    out, name = {}, None
    for line in source.splitlines():
        match = re.match(r'\.SH\s+"?([^"]*)"?\s*$', line)
        if match:
            name = match.group(1).strip().upper()
            out.setdefault(name, "")
        elif name is not None:
            out[name] += line + "\n"
    return out


LONG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
SHORT = re.compile(r"(?:^|(?<=[\s\[|,(]))-[A-Za-z](?=[\s,\]|)]|$)", re.M)


def options(text):
    return set(LONG.findall(text)) | set(SHORT.findall(text))


def help_options(text):
    """Options in --help, leaving out its DESCRIPTION, EXAMPLES and SEE ALSO sections."""
    kept, skipping = [], False
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z ]+$", line):  # a section heading
            skipping = line.strip() in ("DESCRIPTION", "EXAMPLES", "SEE ALSO")
            continue
        if not skipping:
            kept.append(line)
    return options("\n".join(kept))


def read(page):
    with open(os.path.join(MAN_DIR, page), encoding="utf-8") as f:
        return f.read()


# ---- every page renders cleanly ----
for page in sorted(os.listdir(MAN_DIR)):
    path = os.path.join(MAN_DIR, page)
    source = read(page)
    if source.startswith(".so "):  # a link to another page
        target = source.split()[1].split("/")[-1]
        if not os.path.exists(os.path.join(MAN_DIR, target)):
            fail(f"{page}: links to missing {target}")
        continue
    result = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True, text=True)
    if result.returncode != 0 or result.stderr:
        fail(f"{page}: groff -man -ww -z: {result.stderr.strip()}")
    if shutil.which("lexgrog"):
        result = subprocess.run(["lexgrog", path], capture_output=True, text=True)
        if result.returncode != 0 or "parse failed" in result.stdout:
            fail(f"{page}: lexgrog: {result.stdout.strip()} {result.stderr.strip()}")
    for name, section in re.findall(r"\.BR\s+([\w.\\-]+)\s+\((\d)\)", source):
        name = name.replace("\\-", "-")
        if name.startswith("loopfast") and f"{name}.{section}" not in os.listdir(MAN_DIR):
            fail(f"{page}: refers to {name}({section}), which does not exist")
for page in PAGES:
    if not os.path.exists(os.path.join(MAN_DIR, page)):
        fail(f"missing page {page}")

# ---- each subcommand's page and its --help list the same options ----
for command in SUBCOMMANDS:
    result = subprocess.run([TOOL, command, "--help"], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"loopfast {command} --help exited {result.returncode}")
        continue
    in_help = help_options(result.stdout)
    page = sections(read(f"loopfast-{command}.1"))
    in_page = options(roff_to_text(page.get("SYNOPSIS", "") + page.get("OPTIONS", "")))
    if in_help != in_page:
        fail(
            f"loopfast {command}: --help only: {sorted(in_help - in_page)}; "
            f"page only: {sorted(in_page - in_help)}"
        )
    else:
        print(f"loopfast {command}: {len(in_page)} options agree: {' '.join(sorted(in_page))}")

# ---- loopfast(1) lists the commands `loopfast --help` lists ----
result = subprocess.run([TOOL, "--help"], capture_output=True, text=True)
listed = set(re.findall(r"^  ([a-z]+) ", result.stdout, re.M))
page = sections(read("loopfast.1"))
documented = set(re.findall(r"^\.TP\n\.BI?\s+\"?([a-z]+)", page.get("COMMANDS", ""), re.M))
if listed != documented or not listed:
    fail(f"commands: --help {sorted(listed)}, loopfast(1) {sorted(documented)}")
else:
    print(f"loopfast: {len(listed)} commands agree")

if failures:
    sys.exit(1)
print("man pages: ok")
