#!/usr/bin/env python3
"""The independent side of the wire interop test, on Google's protobuf for Python.

    interop.py GEN_DIR write OUT     write the fixture as a GridMon stream (preface + frames)
    interop.py GEN_DIR check IN      read a GridMon stream written by Swift and compare every
                                     frame, field by field, with the fixture; exit 1 on a diff

GEN_DIR holds gridmon_pb2.py from `protoc --python_out`. The fixture mirrors
WireFixture.swift message for message: keep the two in step.
"""
import struct
import sys

sys.path.insert(0, sys.argv[1])
import gridmon_pb2 as pb  # noqa: E402

PREFACE = b"GRIDMON\x01"
U64_MAX = 2**64 - 1


def fixture():
    f = []
    f.append(pb.Frame(hello=pb.Hello(
        protocol_version=1, node_id="node-α-01", agent_version="gridmon-agent/0.1.0",
        labels=[pb.Label(key="rack", value="b12"), pb.Label(key="env", value='prod, eu=1 "x"')],
        auth_token="t0k3n", stream_id=7)))
    f.append(pb.Frame(welcome=pb.Welcome(
        stream_id=7, accepted=True, server_id="srv-1", durable_seq=U64_MAX,
        limits=pb.ServerLimits(max_frame_bytes=4194304, keepalive_interval_ms=15000, max_streams=1024),
        message="welcome")))
    f.append(pb.Frame(welcome=pb.Welcome(stream_id=8, accepted=False, message="no")))
    f.append(pb.Frame(samples=pb.SampleBatch(stream_id=7, samples=[
        pb.Sample(seq=1, timestamp_ns=1700000000123456789, cpu_percent=12.5, memory_percent=41.25,
                  disk_percent=63.0, load1=0.75, net_rx_bytes_per_s=123456.0, net_tx_bytes_per_s=65432.5,
                  disk_read_bytes_per_s=4096.0, disk_write_bytes_per_s=8192.0,
                  extra=[pb.Gauge(name="temp_c", value=41.5), pb.Gauge(name="fan rpm", value=1200.0)]),
        pb.Sample(seq=2, timestamp_ns=-1, cpu_percent=100.0, memory_percent=0.0, disk_percent=1e-300,
                  load1=1e300),
        pb.Sample(seq=U64_MAX, timestamp_ns=-2**63, cpu_percent=-3.5),
    ])))
    f.append(pb.Frame(samples=pb.SampleBatch(stream_id=9)))
    f.append(pb.Frame(ack=pb.Ack(stream_id=7, durable_seq=3,
                                 anomalies=[pb.Verdict(seq=2, score=0.734), pb.Verdict(seq=3, score=0.9)])))
    f.append(pb.Frame(ping=pb.Ping(nonce=42)))
    f.append(pb.Frame(pong=pb.Pong(nonce=U64_MAX)))
    f.append(pb.Frame(goodbye=pb.Goodbye(reason="server shutting down")))
    f.append(pb.Frame(error=pb.Error(code=16, message='bad token for node "x"', stream_id=7)))
    f.append(pb.Frame(error=pb.Error(code=99, message="", stream_id=0)))
    return f


def write(path):
    with open(path, "wb") as out:
        out.write(PREFACE)
        for frame in fixture():
            payload = frame.SerializeToString()
            out.write(struct.pack(">BI", 0, len(payload)) + payload)


def read_frames(data):
    if data[:8] != PREFACE:
        raise SystemExit(f"bad preface {data[:8]!r}")
    pos, frames = 8, []
    while pos < len(data):
        flag, length = struct.unpack_from(">BI", data, pos)
        if flag != 0:
            raise SystemExit(f"bad flag {flag} at offset {pos}")
        pos += 5
        frame = pb.Frame()
        frame.ParseFromString(data[pos:pos + length])
        frames.append(frame)
        pos += length
    return frames


def check(path):
    got = read_frames(open(path, "rb").read())
    want = fixture()
    failures = 0
    if len(got) != len(want):
        print(f"frame count: got {len(got)}, want {len(want)}")
        failures += 1
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            print(f"frame {i} differs:\n--- got\n{g}--- want\n{w}")
            failures += 1
        if g.WhichOneof("body") != w.WhichOneof("body"):
            print(f"frame {i}: body {g.WhichOneof('body')} != {w.WhichOneof('body')}")
            failures += 1
        # Presence of a sub-message is part of the contract (limits absent vs empty).
        if w.HasField("welcome") and g.welcome.HasField("limits") != w.welcome.HasField("limits"):
            print(f"frame {i}: Welcome.limits presence differs")
            failures += 1
    print(f"interop check: {len(got)} frames, {failures} differences")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[2]](sys.argv[3])
