"""The engine's host work per row in each compatibility mode, its texts tokenized in one batch call or one at a time.

    python .ci/mode_facts.py     # about two minutes on 2 cores; writes nbs/bench_results/cpu_modes_<date>.json

`cherry` and `superfiltering` keep the reference scripts' per-sample encoders, which call `tokenizer.encode` several
times a sample. `encode_samples` (02) tokenizes all those texts of a chunk in one batch call first, where the tokenizer
cuts like truncation (`_cuts_like_truncation`); "one at a time" is the encoders asking the tokenizer itself, as they
did before (forced here by making that check fail). `host_ms_per_row` (05): tokenizing, packed layout and scored
positions of the 3,111 Alpaca 5% rows, one PyTorch thread (as on a GPU); 3 alternating rounds, each the best of 3.
"""
import datetime, json, platform
import torch
import ifd_nb.ifd as ifd
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import host_ms_per_row, cpu_facts
from ifd_nb.models import load_tokenizer


def main(rounds: int = 3):
    rows, tok = read_rows(shared_data_path("alpaca_cherry_5pct.json")), load_tokenizer("embedded")
    real, out = ifd._cuts_like_truncation, {}
    for mode in ("default", "cherry", "superfiltering"):
        got = {"batched": [], "one at a time": []}
        for _ in range(rounds):
            for k, check in (("batched", real), ("one at a time", lambda t: False)):
                ifd._cuts_like_truncation = check
                got[k].append(host_ms_per_row(rows, tok, n=len(rows), threads=1, mode=mode))
        ifd._cuts_like_truncation = real
        out[mode] = got; print(mode, {k: min(v) for k, v in got.items()}, flush=True)
    today = datetime.date.today().isoformat()
    res = dict(date=today, machine=f"{platform.machine()} CPU", torch=torch.__version__, rows=len(rows), chunk_rows=512,
               threads=1, ms_per_row=out, **cpu_facts())
    path = f"nbs/bench_results/cpu_modes_{today}.json"
    open(path, "w").write(json.dumps(res, indent=1) + "\n"); print("wrote", path)


if __name__ == "__main__": main()
