"""The CPU engine benchmark of the engine issue: the engine against a reference-style loop on the embedded model.

    python .ci/cpu_engine_bench.py [N] [SUFFIX]   # N rows of alpaca_cherry_5pct.json (default 200)

Writes nbs/bench_results/cpu_engine_<date><SUFFIX>.json: `engine_vs_loop` with the engine's defaults (packed rows,
one causal attention per sequence), plus the same engine with padded batches, timed in the same process.
"""
import json, os, platform, sys, time, datetime
import torch
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import engine_vs_loop, score_dataset
from ifd_nb.models import load_model

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
suffix = sys.argv[2] if len(sys.argv) > 2 else ""
model, tok = load_model("embedded")
rows = read_rows(shared_data_path("alpaca_cherry_5pct.json"))[:n]
score_dataset(rows[:8], model, tok, progress=False, verbose=False)  # warm-up
res = engine_vs_loop(rows, model, tok, batch_tokens=8192)
t = time.time()
score_dataset(rows, model, tok, batch_tokens=8192, packing=False, progress=False, verbose=False)
res["padded_engine_samples_per_s"] = n / (time.time() - t)
today = datetime.date.today().isoformat()
res |= dict(machine=f"{os.cpu_count()} CPU cores ({platform.machine()})", torch=torch.__version__, threads=torch.get_num_threads(),
            model="embedded SmolLM2-135M-Instruct", dtype="float32", data=f"first {n} rows of alpaca_cherry_5pct.json",
            batch_tokens=8192, date=today,
            note="engine: packed rows, one causal attention per sequence (packing='auto'); loop: batch 1, two model(labels=...) calls")
out = f"nbs/bench_results/cpu_engine_{today}{suffix}.json"
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
