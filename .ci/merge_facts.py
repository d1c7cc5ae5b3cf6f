"""A rerun whose every row is already in the shards, with two versions of the code: what the final merge holds.

    IFD_NB_SCALE_KEEP=1 python .ci/scale_facts.py          # keeps its folder and says where
    python .ci/merge_facts.py FOLDER OLD_TREE NEW_TREE [ROUNDS]   # writes nbs/bench_results/cpu_merge_<date>.json

FOLDER: what `scale_facts.py` kept (rows.jsonl, model/, scores.parquet.shards/). OLD_TREE, NEW_TREE: two checkouts of
this repository (their `ifd_nb/` exported). Each round runs `ifd_nb score` on FOLDER's rows once with each tree's code
(a fresh process, PYTHONPATH set to the tree, run from /tmp so that neither the current folder nor the editable
install shadows it), every row read back from the same shards; peak: the process's own `ru_maxrss`. The two tables
written must be equal exactly.
"""
import datetime, json, os, platform, subprocess, sys
from pathlib import Path
import pandas as pd
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale_facts import run  # `ifd_nb ...` in a fresh process: seconds, peak, the code it imported (.ci/ is this script's folder)


def rerun(folder, tree, name):
    r = run("score", f"{folder}/rows.jsonl", "-o", f"{folder}/scores_{name}.parquet", "--shard-dir", f"{folder}/scores.parquet.shards",
            "--model", f"{folder}/model", "--device", "cpu", "-q", cwd="/tmp", env={**os.environ, "PYTHONPATH": str(tree)})
    assert r["code"].startswith(str(Path(tree).resolve())), f"{name} ran {r['code']}, not the code of {tree}"
    return dict(code=name, seconds=r["seconds"], peak_MiB=r["peak_MiB"])


def main(folder, old, new, rounds=2):
    commit = lambda tree: subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    runs = [rerun(folder, tree, name) for _ in range(int(rounds)) for name, tree in (("old", old), ("new", new))]
    a, b = pd.read_parquet(f"{folder}/scores_old.parquet"), pd.read_parquet(f"{folder}/scores_new.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    res = dict(date=datetime.date.today().isoformat(), machine=f"{os.cpu_count()} CPU cores ({platform.machine()})",
               rows=len(a), old_commit=commit(old), new_commit=commit(new) + " + working tree", same_table=True, runs=runs)
    out = Path(__file__).resolve().parent.parent/"nbs"/"bench_results"/f"cpu_merge_{res['date']}.json"
    out.write_text(json.dumps(res, indent=1) + "\n"); print(json.dumps(res, indent=1))


if __name__ == "__main__": main(*sys.argv[1:])
