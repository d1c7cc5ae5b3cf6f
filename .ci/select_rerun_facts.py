"""`ifd_nb select` run again on the same scores: what the kept prompt embeddings (`stored_prompt_embeddings`, 08) save.

    python .ci/select_rerun_facts.py [ROWS] [SUFFIX]   # ~5 minutes on 2 cores; writes nbs/bench_results/cpu_select_rerun_<date>[_SUFFIX].json

The scores table is the Alpaca 5% subset (../shared/data) with seeded uniform IFD values in (0.2, 1.2) (selection
reads nothing else from it); the embedder is the embedded SmolLM2-135M-Instruct on the CPU. Runs, each a fresh
process, in this order, sharing one embeddings folder: per-cluster (100 clusters x 10) from nothing, the same again,
a facility-location pick of 300 among the top 30%, per-cluster with 50 clusters x 20; then per-cluster from nothing
into a folder of its own, with the store's file writes, as a check of the order's drift.
"""
import datetime, json, platform, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import pandas as pd
from ifd_nb.data import read_rows, shared_data_path


def run(scores, folder, out, *rule):
    cmd = [sys.executable, "-c", "import sys; from ifd_nb.cli import main; sys.exit(main(sys.argv[1:]))", "select", str(scores), "-o", str(out), *rule, "--device", "cpu", "-q", "--embeddings-dir", str(folder)]
    t = time.perf_counter(); r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: raise SystemExit(r.stderr)
    said = [l for l in r.stderr.splitlines() if l.startswith("prompt embeddings:")]
    return dict(rule=" ".join(rule), seconds=round(time.perf_counter() - t, 1), store=said, picks=list(pd.read_json(out)["index"]))


def main(n=None, suffix=""):
    import torch
    rows = read_rows(shared_data_path())[:int(n) if n else None]
    df = pd.DataFrame(rows).assign(index=lambda d: range(len(d)), ifd=np.random.default_rng(0).uniform(0.2, 1.2, len(rows)), status="ok")
    d = Path(tempfile.mkdtemp()); scores = d/"scores.parquet"; df.to_parquet(scores, index=False)
    pc = ("--rule", "per-cluster", "--clusters", "100", "--per-cluster", "10")
    runs = [run(scores, d/"emb", d/"a.json", *pc), run(scores, d/"emb", d/"b.json", *pc),
            run(scores, d/"emb", d/"c.json", "--rule", "facility", "--top", "300", "--candidates", "0.3"),
            run(scores, d/"emb", d/"e.json", "--rule", "per-cluster", "--clusters", "50", "--per-cluster", "20"),
            run(scores, d/"emb2", d/"f.json", *pc)]
    same = runs[0]["picks"] == runs[1]["picks"] == runs[4]["picks"]
    for r in runs: r["picks"] = len(r["picks"]); print(r, flush=True)
    res = dict(date=str(datetime.date.today()), machine=platform.machine(), cpu_count=torch.get_num_threads(), torch=torch.__version__,
               rows=len(rows), eligible=int((df.ifd < 1).sum()), same_picks=same, runs=runs)
    out = Path(__file__).resolve().parent.parent/"nbs"/"bench_results"/f"cpu_select_rerun_{res['date']}{'_' + suffix if suffix else ''}.json"
    out.write_text(json.dumps(res, indent=1) + "\n"); print(res, "→", out)


if __name__ == "__main__": main(*sys.argv[1:])
