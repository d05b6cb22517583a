#!/usr/bin/env python3
"""Checks `loopfast stat --json` output against schema loopfast-stat/1 (docs/stat.md).

usage: stat_schema_check.py DOC.md < stat.json
Exits 1 with a message on the first violation. Otherwise prints one line per socket,
tab-separated key=value pairs (asleep flattened to asleep_receive / asleep_send, waits to
waits_spun / waits_slept), then one per
session (starting kind=session), for tests.
The field table in DOC.md must list exactly the fields checked here.
"""
import json
import re
import sys

INT = "integer"
TOP = {"schema": str, "time": INT, "hidden_processes": INT, "sockets": list, "sessions": list}
SOCKET = {
    "pid": INT, "program": str, "fd": INT, "state": str, "role": str, "family": str,
    "local": (str, None), "peer": (str, None), "reason": (str, None),
    "bytes_sent": INT, "bytes_received": INT,
    "kernel_bytes_sent": (INT, None), "kernel_bytes_received": (INT, None),
    "asleep": dict, "waits": dict, "peer_pid": (INT, None), "peer_program": (str, None),
    "peer_fd": (INT, None), "in_ring_to_peer": (INT, None), "in_ring_from_peer": (INT, None),
}
SESSION = {
    "pid": INT, "program": str, "side": str, "peer_pid": INT, "peer_program": (str, None),
    "peer_uid": INT, "port": INT, "connections": INT, "arena_bytes_in_use": INT,
}
ENUMS = {"state": {"listening", "fast", "kernel"},
         "role": {"listening", "connecting", "accepting", "none"},
         "family": {"ipv4", "ipv6"}}
ADDRESS = re.compile(r"^(\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:.]+\]):\d+$")


def fail(message):
    print("schema violation: " + message, file=sys.stderr)
    sys.exit(1)


def type_ok(value, expected):
    options = expected if isinstance(expected, tuple) else (expected,)
    for option in options:
        if option is None and value is None:
            return True
        if option == INT and isinstance(value, int) and not isinstance(value, bool):
            return value >= 0
        if option in (str, list, dict) and isinstance(value, option):
            return True
    return False


def check_fields(obj, fields, where):
    if set(obj) != set(fields):
        fail(f"{where}: fields {sorted(set(obj) ^ set(fields))} missing or unexpected")
    for name, expected in fields.items():
        if not type_ok(obj[name], expected):
            fail(f"{where}: {name} = {obj[name]!r} has the wrong type")


def check_doc(path):
    with open(path) as doc:
        rows = re.findall(r"^\| `([a-z_]+)` \| [a-z]", doc.read(), re.M)
    documented = set(rows) - {"loopfast-stat/1"}
    known = set(TOP) | set(SOCKET) | set(SESSION)
    if documented != known:
        fail(f"{path} and the checker disagree on fields: {sorted(documented ^ known)}")


# Raw in the document, outside any escape: DEL and the C1 controls (docs/stat.md promises them
# escaped; JSON itself only requires it of C0, which json.loads checks).
RAW_CONTROL = re.compile("[\x7f-\x9f]")


def shown(value):
    """A value for the key=value output: control characters as \\uXXXX, so one line stays one."""
    return re.sub("[\x00-\x1f\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", str(value))


def main():
    check_doc(sys.argv[1])
    raw = sys.stdin.buffer.read()
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as error:
        fail(f"not valid UTF-8: {error}")
    if RAW_CONTROL.search(text):
        fail("a raw DEL or C1 control character: " + repr(RAW_CONTROL.search(text).group()))
    try:
        document = json.loads(text)
    except ValueError as error:
        fail(f"not JSON: {error}")
    if not isinstance(document, dict):
        fail("not an object")
    check_fields(document, TOP, "document")
    if document["schema"] != "loopfast-stat/1":
        fail("schema tag " + document["schema"])
    for index, socket in enumerate(document["sockets"]):
        where = f"sockets[{index}]"
        if not isinstance(socket, dict):
            fail(where + " is not an object")
        check_fields(socket, SOCKET, where)
        for name, allowed in ENUMS.items():
            if socket[name] not in allowed:
                fail(f"{where}: {name} = {socket[name]!r}")
        if set(socket["asleep"]) != {"receive", "send"} or not all(
                isinstance(v, bool) for v in socket["asleep"].values()):
            fail(where + ": asleep must be {receive: bool, send: bool}")
        if set(socket["waits"]) != {"spun", "slept"} or not all(
                type_ok(v, INT) for v in socket["waits"].values()):
            fail(where + ": waits must be {spun: integer, slept: integer}")
        for name in ("local", "peer"):
            if socket[name] is not None and not ADDRESS.match(socket[name]):
                fail(f"{where}: {name} = {socket[name]!r} is not an address")
        if socket["state"] == "listening" and socket["peer"] is not None:
            fail(where + ": a listener has no peer")
        if socket["state"] == "fast" and socket["reason"] is not None:
            fail(where + ": a fast socket has no fallback reason")
        if socket["state"] == "kernel" and not socket["reason"]:
            fail(where + ": a kernel socket says why")
        pairs = []
        for name, value in socket.items():
            if name == "asleep":
                pairs.append("asleep_receive=" + str(value["receive"]).lower())
                pairs.append("asleep_send=" + str(value["send"]).lower())
            elif name == "waits":
                pairs.append(f"waits_spun={value['spun']}")
                pairs.append(f"waits_slept={value['slept']}")
            else:
                pairs.append(f"{name}=" + ("null" if value is None else shown(value)))
        print("\t".join(pairs))
    for index, session in enumerate(document["sessions"]):
        where = f"sessions[{index}]"
        if not isinstance(session, dict):
            fail(where + " is not an object")
        check_fields(session, SESSION, where)
        if session["side"] not in ("connecting", "accepting"):
            fail(f"{where}: side = {session['side']!r}")
        print("\t".join(["kind=session"] + [
            f"{name}=" + ("null" if value is None else shown(value))
            for name, value in session.items()]))


if __name__ == "__main__":
    main()
