"""The pexpect side of `hil bench`: follows one pty with the bench's six patterns.

argv: PTY_PATH MODE(stream|marks) SEARCHWINDOW MAXREAD
Prints "open" once the pty is open, then one JSON line with its own wall and CPU time
(and, in marks mode, CLOCK_MONOTONIC at each mark's match).
"""
import json
import os
import sys
import time
import tty

import pexpect
import pexpect.fdpexpect

path, mode, window, maxread = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
awaited = rb"hil-bench login: "
mark = rb"hil-bench mark (\d+)\r\n"
death = [
    rb"Kernel panic - not syncing",
    rb"Internal error: Oops",
    rb"U-Boot 20\d\d",
    rb"Unable to handle kernel (NULL pointer dereference|paging request)",
    rb"BUG: soft lockup - CPU#\d+ stuck",
]
fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
child = pexpect.fdpexpect.fdspawn(
    fd, timeout=3600, maxread=maxread, searchwindowsize=window or None
)
patterns = [awaited] + death + ([mark] if mode == "marks" else [])
compiled = child.compile_pattern_list(patterns)
print("open", flush=True)
wall0, cpu0 = time.monotonic(), time.process_time()
marks = {}
while True:
    i = child.expect_list(compiled)
    if i == 0:
        break
    if i == len(patterns) - 1 and mode == "marks":
        marks[int(child.match.group(1))] = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        continue
    print(json.dumps({"error": "death pattern matched: %r" % child.after}), flush=True)
    sys.exit(1)
wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "marks": marks}), flush=True)
