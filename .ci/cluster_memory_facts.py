"""What `select_per_cluster` (06) holds at a million rows: the selection before chunked embeddings (commit e1aa170: every
eligible row's embedding in one array, then a copy of it) against now (embeddings asked for by a function: the KMeans
sample, then a chunk at a time), each in a fresh process so that its peak resident memory is its own.

    python .ci/cluster_memory_facts.py [ROWS] [SUFFIX]   # ~4 minutes on 2 cores at 1,000,000 rows; writes nbs/bench_results/cpu_cluster_memory_<date>[_SUFFIX].json

The embeddings are synthetic (there is no million-row embedded set here) but cheap to recompute row by row, so both
runs see the same numbers: row i is one of 300 seeded centres plus a seeded noise vector, D = 576 (SmolLM2-135M's
width), float32. The IFD column is seeded uniform in (0.2, 1.2); about 80% of the rows are eligible.
"""
import datetime, importlib.util, json, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import pandas as pd

D, CENTRES, OLD = 576, 300, "e1aa170"


def embed(p):
    "The synthetic embeddings of rows `p`, the same for any chunking."
    p = np.asarray(p, np.int64)
    c = np.random.default_rng(0).normal(size=(CENTRES, D)).astype(np.float32)
    g = np.random.default_rng(1).normal(size=(8191, D)).astype(np.float32)
    return c[(p * 2654435761) % 2**32 % CENTRES] + 0.5 * g[p % 8191]


def table(n):
    return pd.DataFrame({"ifd": np.random.default_rng(2).uniform(0.2, 1.2, n), "status": "ok"})


def one(which, n):
    "Run one selection in this process; print its JSON line."
    df = table(n)
    t = time.perf_counter()
    if which == "before":  # the selection as of OLD, imported from git
        src = subprocess.run(["git", "show", f"{OLD}:ifd_nb/select.py"], capture_output=True, text=True, check=True).stdout
        path = Path(tempfile.mkdtemp())/"select_before.py"; path.write_text(src)
        spec = importlib.util.spec_from_file_location("select_before", path); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        x = np.empty((n, D), np.float32)
        for k in range(0, n, 50_000): x[k:k + 50_000] = embed(np.arange(k, min(k + 50_000, n)))  # every row, as the CLI embedded them
        sel = mod.select_per_cluster(df, x, 100, 10)
    else:
        from ifd_nb.select import select_per_cluster
        asked = []
        sel = select_per_cluster(df, lambda p: asked.append(len(p)) or embed(p), 100, 10)
    out = dict(which=which, rows=n, seconds=round(time.perf_counter() - t, 1), peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
               picks=[int(i) for i in sel.index])
    if which == "now": out["largest_request"] = max(asked); out["requests"] = len(asked)
    print(json.dumps(out))


def main(n=1_000_000, suffix=""):
    import torch
    runs = {}
    for which in ("before", "now"):
        r = subprocess.run([sys.executable, __file__, "--one", which, str(n)], capture_output=True, text=True, check=True)
        runs[which] = json.loads(r.stdout.strip().splitlines()[-1]); print(which, {k: v for k, v in runs[which].items() if k != "picks"}, flush=True)
    same = runs["before"].pop("picks") == runs["now"].pop("picks")
    res = dict(date=str(datetime.date.today()), machine=platform.machine(), cpu_count=torch.get_num_threads(), rows=n, dim=D,
               eligible=int((table(n).ifd < 1).sum()), array_mb=round(n * D * 4 / 2**20), same_picks=same, before_commit=OLD, **runs)
    out = Path(__file__).resolve().parent.parent/"nbs"/"bench_results"/f"cpu_cluster_memory_{res['date']}{'_' + suffix if suffix else ''}.json"
    out.write_text(json.dumps(res, indent=1) + "\n"); print(res, "→", out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]: one(sys.argv[2], int(sys.argv[3]))
    else: main(*(int(a) if i == 0 else a for i, a in enumerate(sys.argv[1:])))
