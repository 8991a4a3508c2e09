#!/usr/bin/env python3
"""ncu_step_table.py: kernel time per op kind from an ncu CSV of whole decode steps.

Usage: ncu_step_table.py CSV STEPS LABEL
CSV is `ncu --csv --print-units base --metrics gpu__time_duration.sum,dram__bytes_read.sum`
output (program output before the header row is skipped), covering STEPS whole steps (graph
replays profiled node by node). Prints the kernel time per step, and per kernel name the
launches, ms per step, share and DRAM read rate. The profiler serializes kernels, so the sum is
kernel time without the launch gaps; set it beside the measured step time."""
import collections
import csv
import sys

path, steps, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [r for r in csv.reader(open(path)) if len(r) > 10]
rows = rows[next((i for i, r in enumerate(rows) if "Kernel Name" in r), len(rows)):]
if not rows:
    sys.exit("ncu_step_table: no rows in %s" % path)
h = rows[0]
name, metric, value = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
t, b, n = collections.Counter(), collections.Counter(), collections.Counter()
for r in rows[1:]:
    k = r[name].replace("void ", "").split("<")[0].split("(")[0].strip()
    v = float(r[value].replace(",", ""))
    if r[metric] == "gpu__time_duration.sum":
        t[k] += v
        n[k] += 1
    elif r[metric] == "dram__bytes_read.sum":
        b[k] += v
tot = sum(t.values()) or 1
print("ncu, %d %s, kernels serialized by the profiler: %.3f ms of kernel time per step"
      % (steps, label, tot / steps / 1e6))
for k, v in t.most_common():
    print("  %-32s %5d launches %8.3f ms/step %5.1f%%  %7.1f GB/s"
          % (k, n[k], v / steps / 1e6, 100 * v / tot, b[k] / v if v else 0))
