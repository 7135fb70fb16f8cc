#!/usr/bin/python3
"""bench_plot.py — the chart of `make bench`: requests/s and memory against
the number of connections, native threads vs greenld vs the epoll ceiling,
from the results.tsv that scripts/bench.sh writes.

Usage: bench_plot.py RESULTS_TSV OUTPUT_PNG "100 1000 10000"

Needs python3-matplotlib (Debian); bench.sh installs it when root.
"""
import csv
import sys

try:
    import matplotlib
except ImportError:
    sys.exit("bench_plot: matplotlib is missing (apt-get install python3-matplotlib)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "native": ("native threads", "tab:red", "o"),
    "greenld": ("greenld", "tab:green", "s"),
    "epoll": ("hand-written epoll (ceiling)", "tab:blue", "^"),
}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    tsv, png, conns = sys.argv[1], sys.argv[2], [int(c) for c in sys.argv[3].split()]
    medians = {}
    with open(tsv, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            try:
                medians[(row["metric"], row["variant"])] = float(row["median"])
            except ValueError:
                pass

    # The memory panels also show the "most connections held" run (hold_*),
    # at the number of connections the native server held.
    panels = [
        ("echo_rps", None, "requests/s (64-byte echo, steady state)", "requests/s"),
        ("echo_mem_drop", "hold_mem_drop", "system memory used (MemAvailable drop), idle connections", "MiB"),
        ("echo_cgmem", "hold_cgmem", "server memory (its cgroup: user + kernel), idle connections", "MiB"),
        ("echo_rss", "hold_rss", "server RSS, idle connections", "MiB"),
    ]
    held = int(medians.get(("hold_conns", "native"), 0))
    panels = [p for p in panels if any(k[0].startswith(p[0] + "_") for k in medians)]
    if not panels:
        sys.exit(f"bench_plot: no echo_* figures in {tsv}")
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (metric, hold_metric, title, unit) in zip(axes.flat, panels):
        xs = conns + ([held] if hold_metric and held > max(conns) else [])
        for variant, (label, color, marker) in STYLE.items():
            pts = [(c, medians[(f"{metric}_{c}", variant)]) for c in conns if (f"{metric}_{c}", variant) in medians]
            if hold_metric and held > max(conns) and (hold_metric, variant) in medians:
                pts.append((held, medians[(hold_metric, variant)]))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, color=color, marker=marker)
        ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{c:,}" for c in xs])
        ax.set_xlabel("connections")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("greenld: thread-per-connection echo_server, natively and under greenld, vs epoll_echo "
                 "(medians; make bench)", fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


if __name__ == "__main__":
    main()
