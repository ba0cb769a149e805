"""Session 27: one row per kernel launch of an `ncu` text report (ncu_call.py's call): duration, throughput against
the device's peak (compute, memory, DRAM), achieved occupancy, eligible warps per scheduler, cycles between two
issued instructions of a warp, local-memory (spill) requests, and the largest stall reason ncu's rules name with its
share of those cycles. `python3 ncu_summary.py REPORT.txt` prints a Markdown table."""
import re
import sys

FIELDS = [("Duration", r"Duration\s+us\s+([\d.,]+)"), ("SM %", r"Compute \(SM\) Throughput\s+%\s+([\d.]+)"),
          ("Mem %", r"Memory Throughput\s+%\s+([\d.]+)"), ("DRAM %", r"DRAM Throughput\s+%\s+([\d.]+)"),
          ("occupancy %", r"Achieved Occupancy\s+%\s+([\d.]+)"),
          ("eligible warps", r"Eligible Warps Per Scheduler\s+warp\s+([\d.]+)"),
          ("cycles/issue", r"Warp Cycles Per Issued Instruction\s+cycle\s+([\d.]+)"),
          ("spill requests", r"Local Memory Spilling Requests\s+([\d,]+)"),
          ("registers", r"Registers Per Thread\s+register/thread\s+(\d+)")]


def main(path):
    text = open(path).read()
    blocks = re.split(r"\n  (?=_\w+ \()", text)[1:]
    print("| kernel | grid | " + " | ".join(n for n, _ in FIELDS) + " | largest stall (share of cycles/issue) |")
    print("|---" * (len(FIELDS) + 3) + "|")
    for b in blocks:
        name, grid = re.match(r"(_\w+) \(([\d, ]+)\)", b).groups()
        vals = [(m.group(1) if (m := re.search(rx, b)) else "") for _, rx in FIELDS]
        flat = " ".join(b.split())
        stall = re.search(r"stalled (?:waiting for|on) (.+?)\. .*?represents about ([\d.]+)% of the total", flat)
        why = f"{stall.group(1)[:60]} ({stall.group(2)}%)" if stall else ""
        print(f"| {name} | ({grid}) | " + " | ".join(vals) + f" | {why} |")


if __name__ == "__main__":
    main(sys.argv[1])
