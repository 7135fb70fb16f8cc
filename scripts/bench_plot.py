#!/usr/bin/python3
"""bench_plot.py — the chart of `make bench`: requests/s and memory against
the number of connections, native threads vs greenld vs the epoll ceiling,
from the results.tsv that scripts/bench.sh writes.

Usage: bench_plot.py RESULTS_TSV OUTPUT_PNG "100 1000 10000"

Also writes the same panels as a text chart (Unicode bars, for the README
and terminals) next to the PNG, with the extension .txt.
Needs python3-matplotlib (Debian) for the PNG; bench.sh installs it when
root. Without it the text chart is still written, and it says so.
"""
import csv
import os
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

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
    write_text_chart(os.path.splitext(png)[0] + ".txt", panels, medians, conns, held)
    if plt is None:
        sys.exit("bench_plot: matplotlib is missing (apt-get install python3-matplotlib): no PNG written")
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


def write_text_chart(path, panels, medians, conns, held, width=40):
    """Each panel as horizontal bars, one group per number of connections,
    scaled to the panel's largest value."""
    out = ["thread-per-connection echo_server natively and under greenld, vs epoll_echo (medians; make bench)"]
    for metric, hold_metric, title, unit in panels:
        rows = []
        for c in conns:
            rows.append((f"{c:,}", [(v, medians.get((f"{metric}_{c}", v))) for v in STYLE]))
        if hold_metric and held > max(conns):
            rows.append((f"{held:,} (most held)", [(v, medians.get((hold_metric, v))) for v in STYLE]))
        top = max((x for _, vals in rows for _, x in vals if x is not None), default=0)
        if top <= 0:
            continue
        out += ["", f"{title} [{unit}]"]
        for label, vals in rows:
            for i, (variant, x) in enumerate(vals):
                if x is None:
                    continue
                bar = "\u2588" * max(1, round(width * x / top))
                out.append(f"{label if i == 0 else '':>20}  {variant:<8} {bar} {x:,.0f}")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
