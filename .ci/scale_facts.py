"""`ifd_nb score` on a million rows: what the host holds and spends, with a model too small to hide it.

    python .ci/scale_facts.py [ROWS]   # ROWS 1,000,000 by default: ~35 minutes on 2 cores; writes nbs/bench_results/cpu_scale_<date>_<ROWS>.json
    IFD_NB_SCALE_KEEP=1 python .ci/scale_facts.py   # keeps its folder for .ci/merge_facts.py

Rows: the Alpaca 5% subset (../shared/data) repeated, each instruction made unique by its row number (` (#i)`) and
each answer cut to its first 8 words, written as one JSON Lines file. Model: a randomly initialised Llama with one
layer, 16 wide, and the embedded tokenizer's 49,152-token vocabulary, saved to a folder and named by `--model`, so
the time left is the engine's own: reading, hashing, tokenizing, batching, the output layer, shards, the merge.
Each run is a fresh `ifd_nb score` process on the CPU; its peak resident memory is its own `ru_maxrss`:
1. from nothing; 2. the same command again (every row already in the shards); 3. `ifd_nb select --rate 0.05` on the
scores written; 4. `ifd_nb plot`; 5. `ifd_nb report`.
"""
import datetime, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path
import pandas as pd
from ifd_nb.data import read_rows, shared_data_path

CHILD = ("import atexit, resource, sys; atexit.register(lambda: print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
         "file=sys.stderr)); import ifd_nb; print('CODE', ifd_nb.__file__, file=sys.stderr); from ifd_nb.cli import main; sys.exit(main(sys.argv[1:]))")


def run(*args, cwd=None, env=None):
    "`ifd_nb ARGS` in a fresh process: its seconds, peak resident MiB, last lines said, and the `ifd_nb` it imported."
    t = time.perf_counter(); r = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env)
    if r.returncode: raise SystemExit(r.stderr[-3000:])
    tagged = lambda tag: next(l.split()[1] for l in r.stderr.splitlines() if l.startswith(tag))
    said = [l for l in (r.stdout + r.stderr).splitlines() if not l.startswith(("MAXRSS_KB", "CODE"))]
    return dict(seconds=round(time.perf_counter() - t, 1), peak_MiB=round(int(tagged("MAXRSS_KB")) / 1024), said=said[-8:], code=tagged("CODE"))


def main(n=1_000_000):
    import torch
    from ifd_nb.models import tiny_model, load_tokenizer
    n = int(n); d = Path(tempfile.mkdtemp(prefix="ifd_scale_"))
    base = read_rows(shared_data_path())
    with open(d/"rows.jsonl", "w") as f:
        for i in range(n):
            b = base[i % len(base)]
            f.write(json.dumps(dict(instruction=f"{b['instruction']} (#{i})", input=b["input"], output=" ".join(b["output"].split()[:8]))) + "\n")
    model = tiny_model(hidden_size=16, n_layers=1, n_heads=2); model.save_pretrained(d/"model"); load_tokenizer("embedded").save_pretrained(d/"model")
    score = ("score", d/"rows.jsonl", "-o", d/"scores.parquet", "--model", d/"model", "--device", "cpu", "-q")
    first = run(*score); again = run(*score)
    select = run("select", d/"scores.parquet", "-o", d/"top.jsonl", "--rate", 0.05, "-q")
    plot, report = run("plot", d/"scores.parquet", "-o", d/"figures"), run("report", d/"scores.parquet", "-o", d/"report.html")
    df = pd.read_parquet(d/"scores.parquet", columns=["index", "status"])
    shards = list((d/"scores.parquet.shards").glob("shard-*.parquet"))
    res = dict(date=datetime.date.today().isoformat(), machine=f"{os.cpu_count()} CPU cores ({platform.machine()})", torch=torch.__version__,
               rows=n, input_MB=round((d/"rows.jsonl").stat().st_size / 1e6), output_MB=round((d/"scores.parquet").stat().st_size / 1e6),
               shards=len(shards), shards_MB=round(sum(p.stat().st_size for p in shards) / 1e6),
               rows_out=len(df), index_is_0_to_n=bool((df["index"] == range(n)).all()), status=df.status.value_counts().to_dict(),
               selected=sum(1 for _ in open(d/"top.jsonl")), score_first=first, score_again=again, select_top=select,
               plot=plot, report=report)
    out = Path(__file__).resolve().parent.parent/"nbs"/"bench_results"/f"cpu_scale_{res['date']}_{n}.json"
    out.write_text(json.dumps(res, indent=1) + "\n"); print(json.dumps(res, indent=1))
    if os.environ.get("IFD_NB_SCALE_KEEP"): print(f"kept {d}")
    else: subprocess.run(["rm", "-rf", str(d)])


if __name__ == "__main__": main(*sys.argv[1:])
