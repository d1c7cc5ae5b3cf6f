"""The engine's host work per row without a model, with PyTorch's default CPU threads and with one (05, `host_ms_per_row`).

    python .ci/host_facts.py [SUFFIX [NOTE]]   # about a minute on 2 cores; writes nbs/bench_results/cpu_host_<date>[_SUFFIX].json

On a GPU the host tokenizes each chunk (the tokenizer's Rust threads) and lays out its batches (small PyTorch CPU
operations) while the device computes the chunk before; the device can go no faster than that. PyTorch's OpenMP
threads keep spinning for a while after each CPU operation and take the cores the tokenizer's threads need, so
`score_dataset` runs PyTorch on one CPU thread while a model wholly on GPUs scores. This measures both settings on the
Alpaca 5% rows, alternating them (3 rounds, each the best of 3 passes over the rows) so that a drift in the machine
affects both alike. `alternate` and `save` serve `.ci/mode_facts.py` too, `alternate` `.ci/gpu_check.py`'s A/B runs.
"""
import datetime, json, platform, sys
import torch
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import host_ms_per_row, cpu_facts
from ifd_nb.models import load_tokenizer


def alternate(settings: dict, rounds: int = 3) -> dict:
    "{label: [its measure's result, one per round]} for `settings` ({label: a call measuring it}), each round running every setting in turn."
    got = {k: [] for k in settings}
    for _ in range(rounds):
        for k, measure in settings.items(): got[k].append(measure())
    return got


def save(prefix: str, fields: dict, suffix: str = "") -> str:
    "Write `fields` with the date, machine, torch version and `cpu_facts` to nbs/bench_results/<prefix>_<date>[_<suffix>].json."
    today = datetime.date.today().isoformat()
    res = dict(date=today, machine=f"{platform.machine()} CPU", torch=torch.__version__) | fields | cpu_facts()
    path = f"nbs/bench_results/{prefix}_{today}{'_' + suffix if suffix else ''}.json"
    open(path, "w").write(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1)); print("wrote", path)
    return path


def main(suffix: str = "", note: str = ""):
    rows, tok = read_rows(shared_data_path("alpaca_cherry_5pct.json")), load_tokenizer("embedded")
    got = alternate({str(t or "default"): lambda t=t: host_ms_per_row(rows, tok, n=len(rows), threads=t) for t in (None, 1)})
    save("cpu_host", dict(rows=len(rows), chunk_rows=512, batch_tokens=65536, ms_per_row=got,
                          best=dict(default=min(got["default"]), one_thread=min(got["1"])), **(dict(code=note) if note else {})), suffix)


if __name__ == "__main__": main(*sys.argv[1:3])
