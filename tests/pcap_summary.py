#!/usr/bin/env python3
"""Summarises a pcap file written by loopfast capture, for tests.

usage: pcap_summary.py FILE
One line per direction "SRC>DST syn=N synack=N fin=N payload=BYTES ordered=yes|no
checksums=yes|no", where ordered means every data segment starts where the previous one
ended (from the direction's SYN, or its first segment). Exits 1 on a malformed file.
"""
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def main():
    with open(sys.argv[1], "rb") as f:
        blob = f.read()
    if len(blob) < 24 or struct.unpack("<I", blob[:4])[0] != 0xA1B2C3D4:
        sys.exit("not a little-endian microsecond pcap file")
    link = struct.unpack("<I", blob[20:24])[0]
    if link != 1:
        sys.exit("link type %d, expected Ethernet" % link)
    at, flows = 24, {}
    while at < len(blob):
        if at + 16 > len(blob):
            sys.exit("truncated record header")
        _, _, caplen, _ = struct.unpack("<IIII", blob[at:at + 16])
        frame = blob[at + 16:at + 16 + caplen]
        if len(frame) != caplen:
            sys.exit("truncated record")
        at += 16 + caplen
        ethertype = struct.unpack("!H", frame[12:14])[0]
        ip = frame[14:]
        if ethertype == 0x0800:
            header = (ip[0] & 15) * 4
            src, dst = ip[12:16], ip[16:20]
            total = struct.unpack("!H", ip[2:4])[0]
            ip_ok = checksum(ip[:header]) == 0xFFFF
            tcp = ip[header:total]
            pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
            name = lambda a, p: ".".join(str(b) for b in a) + ":" + str(p)
        elif ethertype == 0x86DD:
            length = struct.unpack("!H", ip[4:6])[0]
            src, dst = ip[8:24], ip[24:40]
            ip_ok = True
            tcp = ip[40:40 + length]
            pseudo = src + dst + struct.pack("!IxxxB", len(tcp), 6)
            name = lambda a, p: "[%s]:%d" % (":".join("%x" % w for w in struct.unpack("!8H", a)), p)
        else:
            sys.exit("ethertype %#x" % ethertype)
        sport, dport, seq, _, offset_flags = struct.unpack("!HHIIH", tcp[:14])
        flags = offset_flags & 0x3F
        payload = tcp[(offset_flags >> 12) * 4:]
        key = name(src, sport) + ">" + name(dst, dport)
        flow = flows.setdefault(key, {"syn": 0, "synack": 0, "fin": 0, "payload": 0,
                                      "next": None, "ordered": True, "checksums": True})
        if not ip_ok or checksum(pseudo + tcp) != 0xFFFF:
            flow["checksums"] = False
        if flags & 0x02:
            flow["synack" if flags & 0x10 else "syn"] += 1
            flow["next"] = (seq + 1) & 0xFFFFFFFF
        if payload:
            if flow["next"] is not None and seq != flow["next"]:
                flow["ordered"] = False
            flow["next"] = (seq + len(payload)) & 0xFFFFFFFF
            flow["payload"] += len(payload)
        if flags & 0x01:
            flow["fin"] += 1
    for key in sorted(flows):
        f = flows[key]
        print("%s syn=%d synack=%d fin=%d payload=%d ordered=%s checksums=%s" % (
            key, f["syn"], f["synack"], f["fin"], f["payload"],
            "yes" if f["ordered"] else "no", "yes" if f["checksums"] else "no"))


if __name__ == "__main__":
    main()
