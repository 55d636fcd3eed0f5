#!/usr/bin/env python3
"""compare.py - run the hakmem benchmarks under several allocators.

Every workload in bench/ is a small program calling plain malloc/free; this
script runs each one under hakmem (LD_PRELOAD of the freshly built library),
glibc (no preload) and whichever of mimalloc, jemalloc and tcmalloc are
installed.  Allocators alternate run by run (A B C A B C ...) so that drift of
a shared machine hits all of them alike; each run has a timeout, its peak RSS
is taken from wait4(), and its checksum is compared with glibc's so that a run
that corrupted memory is reported instead of timed.

Output (in --out-dir): latest.md (the markdown table with date, machine and
command), latest.json (every run), latest.dat and latest.png (gnuplot plot of
hakmem's ratios; skipped with a notice when gnuplot is missing).  With
--update-readme FILE the section between the markers
<!-- latest-results-begin --> and <!-- latest-results-end --> is replaced by the
table, so no figure is ever typed by hand.

Only the Python standard library is used.  Run with --help for the options.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

LIBDIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
           "/usr/local/lib", "/lib/x86_64-linux-gnu"]

# name -> candidate sonames, first found wins
OTHER_ALLOCATORS = [
    ("mimalloc", ["libmimalloc.so.2"]),
    ("jemalloc", ["libjemalloc.so.2"]),
    ("tcmalloc", ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"]),
]

# (name, regex of the figure in the program's output, higher is better, scale)
THROUGHPUT = ("ops/s", r"^Throughput = ([0-9.]+) operations per second", True, 1.0)
RSS_AFTER = ("RSS after phase, MiB", r"^RSS after phase = ([0-9]+) kB", False, 1 / 1024.0)
PEAK_RE = re.compile(r"^Peak RSS = ([0-9]+) kB", re.M)

# id, program, quick args (None = not in quick mode), full args, metrics,
# what it models (for the README legend)
WORKLOADS = [
    ("random_mixed 128", "bench_random_mixed", None,
     ["20000000", "128", "1"], [THROUGHPUT]),
    ("random_mixed 1024", "bench_random_mixed", ["5000000", "1024", "1"],
     ["20000000", "1024", "1"], [THROUGHPUT]),
    ("random_mixed 8192", "bench_random_mixed", ["2500000", "8192", "1"],
     ["10000000", "8192", "1"], [THROUGHPUT]),
    ("random_mixed 32768", "bench_random_mixed", None,
     ["6000000", "32768", "1"], [THROUGHPUT]),
    ("tiny churn", "bench_tiny_churn", ["5000"], ["20000"], [THROUGHPUT]),
    ("cross-thread", "bench_cross_thread", ["1000000"], ["4000000"],
     [THROUGHPUT]),
    ("larson", "bench_larson", ["2", "50", "50000"], ["2", "100", "100000"],
     [THROUGHPUT]),
    ("realloc growth", "bench_realloc", ["60"], ["200"], [THROUGHPUT]),
    ("large", "bench_large", ["3000"], ["10000"], [THROUGHPUT]),
    ("huge 5-25 MiB", "bench_huge", ["150"], ["500"], [THROUGHPUT]),
    ("producer-consumer", "bench_prodcons", ["1000000", "4"], ["4000000", "4"],
     [THROUGHPUT]),
    ("producer-consumer lifo", "bench_prodcons", None,
     ["8000000", "2", "64", "1", "lifo"], [THROUGHPUT]),
    ("fragmentation", "bench_fragmentation", ["64"], ["256"],
     [THROUGHPUT, RSS_AFTER]),
    ("threads 1", "bench_thread_scaling", ["1", "5000000"],
     ["1", "20000000"], [THROUGHPUT]),
    ("threads 2", "bench_thread_scaling", None, ["2", "20000000"],
     [THROUGHPUT]),
    ("threads 4", "bench_thread_scaling", ["4", "2500000"],
     ["4", "10000000"], [THROUGHPUT]),
]

CHECKSUM_RE = re.compile(r"^Checksum = (0x[0-9a-fA-F]+)", re.M)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def find_lib(names):
    for d in LIBDIRS:
        for n in names:
            p = os.path.join(d, n)
            if os.path.exists(p):
                return p
    return None


def find_hakmem(arg, bench_dir):
    if arg:
        return os.path.abspath(arg) if os.path.exists(arg) else None
    here = os.path.dirname(os.path.abspath(__file__))
    for base in [os.path.join(bench_dir, ".."), os.getcwd(),
                 os.path.join(here, "..")]:
        p = os.path.join(base, ".libs", "libhakmem.so.0")
        if os.path.exists(p):
            return os.path.abspath(p)
    return None


def allocator_env(lib):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    # options of the allocators under test must not leak into the runs
    for k in list(env):
        if k.startswith(("HAKMEM_", "MIMALLOC_", "MALLOC_CONF", "TCMALLOC_",
                         "GLIBC_TUNABLES")):
            del env[k]
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def run_one(cmd, env, timeout):
    """Run cmd; return dict(rc, timed_out, secs, maxrss_kb, out, err)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env,
                             start_new_session=True)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.005)
        secs = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "rc": p.returncode,
            "timed_out": timed_out,
            "secs": secs,
            "maxrss_kb": ru.ru_maxrss,
            "out": out.read().decode(errors="replace"),
            "err": err.read().decode(errors="replace")[-2000:],
        }


def fmt_num(v, unit):
    if v is None:
        return "-"
    if unit == "ops/s":
        for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= div:
                return "%.3g%s" % (v / div, suf)
        return "%.3g" % v
    return "%.4g" % v


def fmt_mib(v):
    if v is None:
        return "-"
    return "%.1f" % v if v < 10 else "%.0f" % v


def fmt_ratio(r):
    return "-" if r is None else "%.2f" % r


def geomean(xs):
    xs = [x for x in xs if x is not None and x > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def source_version():
    """Commit of the source tree holding this script, if it is a git checkout."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", top, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", top, "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return "git %s%s" % (head.stdout.strip(),
                             " with local changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ncpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


# bench_fastpath's cases under callgrind: a label and its arguments after N
# (none: malloc, the sizes cycling over 16..512 B).  32 B is the figure issue 8
# set a budget for; 2 KiB is the pool tier's fast path; calloc and
# posix_memalign (alignment 64) are the other ways into the tiny tier.
CALLGRIND_CASES = [("16..512 B", []), ("32 B", ["32"]), ("2 KiB", ["2048"]),
                   ("calloc 32 B", ["32", "calloc"]),
                   ("posix_memalign(64) 32 B", ["32", "memalign64"])]


def callgrind_pairs(prog, env, n, timeout, args):
    """Instructions per allocation+free pair: (I(2n) - I(n)) / n."""
    counts = []
    for k in (n, 2 * n):
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               prog, str(k)] + args
        r = run_one(cmd, env, timeout)
        m = re.search(r"Collected : ([0-9]+)", r["err"])
        if r["rc"] != 0 or not m:
            return None, "rc=%s %s" % (r["rc"], r["err"].strip()[-300:])
        counts.append(int(m.group(1)))
    return (counts[1] - counts[0]) / n, None


def main():
    ap = argparse.ArgumentParser(
        description="Compare hakmem with glibc, mimalloc, jemalloc, tcmalloc.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="a subset with small inputs and 3 runs (< 2 min)")
    mode.add_argument("--full", action="store_true",
                      help="every workload, 7 runs (default; < 15 min on 2 cores)")
    ap.add_argument("--runs", type=int, help="runs per allocator and workload")
    ap.add_argument("--timeout", type=float,
                    help="per-run timeout in seconds (default 30 quick, 60 full)")
    ap.add_argument("--hakmem", help="libhakmem.so.0 to preload "
                    "(default: .libs/libhakmem.so.0 next to --bench-dir)")
    ap.add_argument("--no-hakmem", action="store_true",
                    help="compare only the other allocators")
    ap.add_argument("--bench-dir", default=None,
                    help="folder holding the built bench_* programs "
                    "(default: the folder of this script)")
    ap.add_argument("--out-dir", default="bench-results",
                    help="where latest.md/.json/.dat/.png go (default ./bench-results)")
    ap.add_argument("--only", help="comma-separated allocators to run")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=LIB",
                    help="one more library to preload (e.g. a hakmem built with "
                    "-DHAKMEM_NO_HARDENING): a column of its own and a geometric "
                    "mean of hakmem against it, never counted as a best other; "
                    "repeatable")
    ap.add_argument("--workloads", help="comma-separated substrings of workload names")
    ap.add_argument("--no-callgrind", action="store_true",
                    help="skip the valgrind instruction counts")
    ap.add_argument("--nice", type=int, default=0,
                    help="raise the niceness of this script and its runs")
    ap.add_argument("--update-readme", metavar="FILE",
                    help="replace the latest-results section of FILE with the table")
    ap.add_argument("--command", default=os.environ.get("BENCH_COMMAND"),
                    help="command line to record in the table header "
                    "(default: this script's own command line)")
    a = ap.parse_args()

    quick = a.quick
    runs = a.runs or (3 if quick else 7)
    timeout = a.timeout or (30.0 if quick else 60.0)
    if a.nice:
        os.nice(a.nice)
    bench_dir = os.path.abspath(a.bench_dir or os.path.dirname(os.path.abspath(__file__)))

    allocs = []  # (name, lib or None)
    if not a.no_hakmem:
        hk = find_hakmem(a.hakmem, bench_dir)
        if not hk:
            log("compare: libhakmem.so.0 not found (give --hakmem PATH, "
                "or --no-hakmem to compare the others only)")
            return 2
        allocs.append(("hakmem", hk))
    allocs.append(("glibc", None))
    for name, sonames in OTHER_ALLOCATORS:
        lib = find_lib(sonames)
        if lib:
            allocs.append((name, lib))
        else:
            log("compare: %s not installed, skipped" % name)
    if a.only:
        keep = a.only.split(",")
        allocs = [x for x in allocs if x[0] in keep]
    also = []  # names of the --also libraries: compared with, never "best other"
    for spec in a.also:
        name, sep, lib = spec.partition("=")
        if not sep or not name or not os.path.exists(lib):
            log("compare: --also wants NAME=LIB with an existing LIB, not %r" % spec)
            return 2
        allocs.append((name, os.path.abspath(lib)))
        also.append(name)
    names = [n for n, _ in allocs]
    if "glibc" not in names:
        log("compare: glibc is the reference for checksums and ratios; keeping it")
        allocs.insert(1 if names and names[0] == "hakmem" else 0, ("glibc", None))
        names = [n for n, _ in allocs]

    workloads = [w for w in WORKLOADS if (w[2] is not None or not quick)]
    if a.workloads:
        pats = a.workloads.split(",")
        workloads = [w for w in workloads if any(p in w[0] for p in pats)]

    missing = [w[1] for w in workloads
               if not os.access(os.path.join(bench_dir, w[1]), os.X_OK)]
    if missing:
        log("compare: not built in %s: %s (run 'make bench')"
            % (bench_dir, " ".join(sorted(set(missing)))))
        return 2

    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.monotonic()
    log("compare: %s mode, %d runs, timeout %gs, allocators: %s"
        % ("quick" if quick else "full", runs, timeout, ", ".join(names)))

    results = {}   # wid -> alloc -> list of run dicts
    failures = []  # (wid, alloc, kind, detail, reproduce)
    for wid, prog, qargs, fargs, metrics in workloads:
        args = qargs if quick else fargs
        cmd = [os.path.join(bench_dir, prog)] + args
        results[wid] = {n: [] for n in names}
        dead = set()
        for r in range(runs):
            for name, lib in allocs:
                if name in dead:
                    continue
                res = run_one(cmd, allocator_env(lib), timeout)
                cs = CHECKSUM_RE.search(res["out"])
                res["checksum"] = cs.group(1) if cs else None
                vals = {}
                for mname, rx, _, scale in metrics:
                    m = re.search(rx, res["out"], re.M)
                    vals[mname] = float(m.group(1)) * scale if m else None
                res["values"] = vals
                # the program's own VmHWM; wait4's ru_maxrss also counts the
                # RSS of this python process, which forked the run
                pk = PEAK_RE.search(res["out"])
                if pk and int(pk.group(1)) > 0:
                    res["maxrss_kb"] = int(pk.group(1))
                results[wid][name].append(res)
                repro = "%s%s" % ("LD_PRELOAD=%s " % lib if lib else "",
                                  " ".join(shlex.quote(c) for c in cmd))
                kind = None
                if res["timed_out"]:
                    kind = "timeout after %gs" % timeout
                elif res["rc"] != 0:
                    kind = "exit status %d" % res["rc"]
                elif res["checksum"] is None or None in vals.values():
                    kind = "no figure/checksum in output"
                if kind:
                    failures.append((wid, name, kind, res["err"].strip()[-500:], repro))
                    dead.add(name)
                    log("  %-20s %-9s FAILED: %s" % (wid, name, kind))
                else:
                    log("  %-20s %-9s run %d: %s  %d KiB"
                        % (wid, name, r + 1,
                           fmt_num(vals[metrics[0][0]], metrics[0][0]), res["maxrss_kb"]))
        # checksum check against glibc (the reference)
        ref = [x["checksum"] for x in results[wid]["glibc"] if x["checksum"]]
        ref = statistics.mode(ref) if ref else None
        for name, lib in allocs:
            bad = [x for x in results[wid][name]
                   if x["checksum"] and ref and x["checksum"] != ref]
            if bad:
                repro = "%s%s" % ("LD_PRELOAD=%s " % lib if lib else "",
                                  " ".join(shlex.quote(c) for c in cmd))
                failures.append((wid, name, "wrong checksum %s (glibc %s)"
                                 % (bad[0]["checksum"], ref), "", repro))
                for x in bad:
                    x["bad_checksum"] = True

    # ---- summarise ----
    def ok_runs(wid, name):
        return [x for x in results[wid][name]
                if not x["timed_out"] and x["rc"] == 0 and not x.get("bad_checksum")
                and None not in x["values"].values()]

    def failed(wid, name):
        return any(f[0] == wid and f[1] == name for f in failures)

    rows = []  # dicts for table and plot
    for wid, prog, qargs, fargs, metrics in workloads:
        for mi, (mname, _, higher, _) in enumerate(metrics):
            row = {"workload": wid, "metric": mname, "higher": higher,
                   "median": {}, "rss": {}, "failed": {}}
            for name in names:
                good = ok_runs(wid, name)
                row["failed"][name] = failed(wid, name)
                if good and not row["failed"][name]:
                    row["median"][name] = statistics.median(x["values"][mname] for x in good)
                    row["rss"][name] = statistics.median(x["maxrss_kb"] for x in good) / 1024.0
                else:
                    row["median"][name] = None
                    row["rss"][name] = None

            def adv(h, o):  # >1: hakmem better
                if h is None or o is None or h <= 0 or o <= 0:
                    return None
                return h / o if higher else o / h
            h = row["median"].get("hakmem")
            others = [(n, v) for n, v in row["median"].items()
                      if n != "hakmem" and n not in also and v is not None]
            best = None
            if others:
                best = (max if higher else min)(others, key=lambda t: t[1])
            row["best"] = best[0] if best else None
            row["vs_glibc"] = adv(h, row["median"].get("glibc"))
            row["vs_best"] = adv(h, best[1]) if best else None
            row["vs_also"] = {n: adv(h, row["median"].get(n)) for n in also}
            hr, gr = row["rss"].get("hakmem"), row["rss"].get("glibc")
            row["rss_vs_glibc"] = hr / gr if hr and gr and mi == 0 else None
            rows.append(row)

    # fast path under callgrind
    cg = {}
    cg_note = None
    if a.no_callgrind:
        cg_note = "skipped (--no-callgrind)"
    elif not shutil.which("valgrind"):
        cg_note = "skipped: valgrind is not installed"
    else:
        prog = os.path.join(bench_dir, "bench_fastpath")
        if not os.access(prog, os.X_OK):
            cg_note = "skipped: bench_fastpath not built"
        else:
            n = 50000 if quick else 200000
            for label, args in CALLGRIND_CASES:
                cg[label] = {}
                for name, lib in allocs:
                    v, err = callgrind_pairs(prog, allocator_env(lib), n, timeout * 4, args)
                    cg[label][name] = v
                    if v is None:
                        repro = "%svalgrind --tool=callgrind %s %d%s" % (
                            "LD_PRELOAD=%s " % lib if lib else "", prog, n,
                            "".join(" " + x for x in args))
                        failures.append(("fast path (callgrind) " + label, name, "failed",
                                         err, repro))
                    log("  %-20s %-9s %s instructions per pair"
                        % ("fast path " + label, name, "-" if v is None else "%.1f" % v))

    elapsed = time.monotonic() - t_start

    # ---- write ----
    cmdline = a.command
    if cmdline and os.environ.get("BENCH_COMPARE_FLAGS", "").strip():
        cmdline += " BENCH_COMPARE_FLAGS=%s" % shlex.quote(
            os.environ["BENCH_COMPARE_FLAGS"].strip())
    if not cmdline:
        cmdline = " ".join(shlex.quote(x) for x in
                           [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    libs = ["%s: %s" % (n, os.path.realpath(l) if l else "system malloc ("
                        + platform.libc_ver()[0] + " " + platform.libc_ver()[1] + ")")
            for n, l in allocs]
    md = []
    md.append("Date: %s. Machine: %s CPUs (`nproc`), %s, Linux %s. Mode: %s, %d runs "
              "per allocator and workload (alternating), timeout %gs, took %.0f s."
              % (started.strftime("%Y-%m-%d %H:%M UTC"), ncpus(), cpu_model(),
                 platform.release(), "quick" if quick else "full", runs, timeout, elapsed))
    md.append("")
    md.append("Command: `%s`" % cmdline)
    md.append("")
    src = source_version()
    if src and "hakmem" in names:
        libs[0] += " (source %s)" % src
    md.append("Allocators: " + "; ".join(libs) + ".")
    md.append("")
    md.append("Each cell: median figure / median peak RSS of the process in MiB. "
              "Ratios above 1 mean hakmem is better (faster, or for the row marked "
              "\"lower is better\", less memory); \"peak RSS\" is hakmem's peak RSS "
              "divided by glibc's (below 1 is better).")
    md.append("")
    hdr = ["workload", "figure"] + names
    hdr += ["hakmem/glibc", "hakmem/best other", "peak RSS hakmem/glibc"] \
        if "hakmem" in names else []
    md.append("| " + " | ".join(hdr) + " |")
    md.append("|" + "---|" * len(hdr))
    for row in rows:
        unit = row["metric"] + ("" if row["higher"] else ", lower is better")
        cells = [row["workload"], unit]
        for n in names:
            if row["failed"][n]:
                cells.append("**FAIL**")
            else:
                cells.append("%s / %s" % (fmt_num(row["median"][n], row["metric"]),
                                          fmt_mib(row["rss"][n])))
        if "hakmem" in names:
            cells.append(fmt_ratio(row["vs_glibc"]))
            cells.append("%s (%s)" % (fmt_ratio(row["vs_best"]), row["best"] or "-"))
            cells.append(fmt_ratio(row["rss_vs_glibc"]))
        md.append("| " + " | ".join(cells) + " |")
    if "hakmem" in names:
        gm = ["**geometric mean**", ""] + [""] * len(names)
        gm.append("**%s**" % fmt_ratio(geomean([r["vs_glibc"] for r in rows])))
        gm.append("**%s**" % fmt_ratio(geomean([r["vs_best"] for r in rows])))
        gm.append("**%s**" % fmt_ratio(geomean([r["rss_vs_glibc"] for r in rows])))
        md.append("| " + " | ".join(gm) + " |")
    md.append("")
    for n in also:
        if "hakmem" in names:
            md.append("hakmem against %s (%s), geometric mean of the median ratios "
                      "over the rows above (above 1: hakmem better): **%s**."
                      % (n, dict(allocs)[n], fmt_ratio(geomean([r["vs_also"][n] for r in rows]))))
            md.append("")
    if cg or cg_note:
        md.append("Fast path: instructions per malloc+free pair of bench_fastpath, the "
                  "program's own loop included (`valgrind --tool=callgrind`, runs of N and "
                  "2N pairs, difference / N); 16..512 B cycles over eight tiny sizes; "
                  "the calloc and posix_memalign rows allocate with those instead:")
        md.append("")
        if cg:
            md.append("| size | " + " | ".join(names) + " |")
            md.append("|---|" + "---|" * len(names))
            for label, _ in CALLGRIND_CASES:
                md.append("| %s | " % label + " | ".join(
                    "FAIL" if cg[label].get(n) is None else "%.1f" % cg[label][n]
                    for n in names) + " |")
        else:
            md.append(cg_note)
        md.append("")
    if failures:
        md.append("Failures:")
        md.append("")
        for wid, name, kind, detail, repro in failures:
            md.append("- %s under %s: %s; reproduce: `%s`%s"
                      % (wid, name, kind, repro,
                         (" (stderr: `%s`)" % detail.replace("\n", " ")[-200:]) if detail else ""))
        md.append("")
    table = "\n".join(md)

    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "latest.md"), "w") as f:
        f.write(table)
    with open(os.path.join(a.out_dir, "latest.json"), "w") as f:
        json.dump({"date": started.isoformat(), "command": cmdline,
                   "cpus": ncpus(), "cpu": cpu_model(),
                   "allocators": dict(allocs), "quick": quick, "runs": runs,
                   "callgrind_instructions_per_pair": cg,
                   "failures": failures,
                   "rows": rows,
                   "runs_raw": {w: {n: [{k: v for k, v in x.items() if k != "err"}
                                        for x in d] for n, d in ad.items()}
                                for w, ad in results.items()}},
                  f, indent=1, default=str)
    print(table)

    if "hakmem" in names:
        plot(rows, cg, names, a.out_dir, started)

    if a.update_readme:
        update_readme(a.update_readme, table)
    return 1 if failures else 0


def plot(rows, cg, names, out_dir, started):
    dat = os.path.join(out_dir, "latest.dat")
    with open(dat, "w") as f:
        f.write("# workload  hakmem/glibc  hakmem/best-other  (above 1: hakmem better)\n")
        for r in rows:
            label = r["workload"] + ("" if r["higher"] else " RSS")
            f.write('"%s" %s %s\n' % (label,
                                      "NaN" if r["vs_glibc"] is None else "%.4f" % r["vs_glibc"],
                                      "NaN" if r["vs_best"] is None else "%.4f" % r["vs_best"]))
    gp = shutil.which("gnuplot")
    if not gp:
        log("compare: gnuplot not found, plot skipped (data in %s)" % dat)
        return
    png = os.path.join(out_dir, "latest.png")
    vals = [math.log2(v) for r in rows for v in (r["vs_glibc"], r["vs_best"])
            if v is not None and v > 0]
    lo = min([-1] + [math.floor(v - 0.1) for v in vals])
    hi = max([1] + [math.ceil(v + 0.1) for v in vals])
    tics = ", ".join('"%s" %d' % (("%g" % 2 ** k) if k >= 0 else "1/%d" % 2 ** -k, k)
                     for k in range(lo, hi + 1))
    # bars are log2 of the ratio: up from the line at 1 = hakmem better
    script = """
set terminal pngcairo size 1100,560 font ",10" noenhanced
set output '%s'
set title "hakmem relative to glibc and to the best other allocator (log scale; above 1 = hakmem better), %s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -35 nomirror
set ytics (%s) nomirror
set grid ytics
set yrange [%d:%d]
set ylabel "ratio"
set key top left
set xzeroaxis lt -1 lw 2
plot '%s' using (log($2)/log(2)):xtic(1) title "hakmem / glibc" lc rgb "#4472c4", \\
     '' using (log($3)/log(2)) title "hakmem / best other" lc rgb "#ed7d31"
""" % (png, started.strftime("%Y-%m-%d"), tics, lo, hi, dat)
    r = subprocess.run([gp], input=script.encode(), capture_output=True)
    if r.returncode != 0:
        log("compare: gnuplot failed: %s" % r.stderr.decode(errors="replace")[-500:])
    else:
        log("compare: plot written to %s" % png)


def update_readme(path, table):
    begin, end = "<!-- latest-results-begin -->", "<!-- latest-results-end -->"
    with open(path) as f:
        text = f.read()
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        log("compare: markers not found in %s, not updated" % path)
        return
    text = text[:i + len(begin)] + "\n" + table + "\n" + text[j:]
    with open(path, "w") as f:
        f.write(text)
    log("compare: updated %s" % path)


if __name__ == "__main__":
    sys.exit(main())
