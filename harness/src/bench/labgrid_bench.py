"""The labgrid side of `hil bench`: labgrid's own SerialDriver, waiting with its expect for
the bench's six patterns, on a local serial port or a network one.

argv: pty PATH
      net HOST PORT PROTOCOL   (PROTOCOL: rfc2217 or raw, as NetworkSerialPort takes it)
Prints "open" once the driver is active (the port open, RFC 2217 negotiated), waits for a
line on stdin, then follows the stream until the awaited pattern and prints one JSON line
with its own wall and CPU time (time.process_time: every thread of this process, so
pyserial's RFC 2217 reader thread too) and the bytes the driver read.
"""
import json
import sys
import time

import labgrid
from labgrid import Target
from labgrid.driver import SerialDriver
from labgrid.resource import NetworkSerialPort, RawSerialPort

awaited = rb"hil-bench login: "
death = [
    rb"Kernel panic - not syncing",
    rb"Internal error: Oops",
    rb"U-Boot 20\d\d",
    rb"Unable to handle kernel (NULL pointer dereference|paging request)",
    rb"BUG: soft lockup - CPU#\d+ stuck",
]

target = Target("hil-bench")
if sys.argv[1] == "pty":
    RawSerialPort(target, name=None, port=sys.argv[2], speed=1500000)
else:
    host, port, protocol = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    NetworkSerialPort(target, name=None, host=host, port=port, speed=115200, protocol=protocol)
driver = SerialDriver(target, name=None)

# Count what the driver hands to its expect (labgrid's own read path is left as it is).
got = [0]
inner_read = driver._read


def counting_read(*args, **kwargs):
    data = inner_read(*args, **kwargs)
    got[0] += len(data)
    return data


driver._read = counting_read
target.activate(driver)
print("open", labgrid.__version__, flush=True)
sys.stdin.readline()
wall0, cpu0 = time.monotonic(), time.process_time()
index, _, _, after = driver.expect([awaited] + death, timeout=3600)
wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
if index != 0:
    print(json.dumps({"error": "death pattern matched: %r" % after}), flush=True)
    sys.exit(1)
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "bytes": got[0]}), flush=True)
target.deactivate(driver)
