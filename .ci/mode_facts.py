"""The engine's host work per row in each compatibility mode, its texts tokenized in one batch call or one at a time.

    python .ci/mode_facts.py     # about two minutes on 2 cores; writes nbs/bench_results/cpu_modes_<date>.json

`cherry` and `superfiltering` keep the reference scripts' per-sample encoders, which call `tokenizer.encode` several
times a sample. `encode_samples` (02) tokenizes all those texts of a chunk in one batch call first, where the tokenizer
cuts like truncation (`_cuts_like_truncation`); "one at a time" is the encoders asking the tokenizer itself, as they
did before (forced here by making that check fail). `host_ms_per_row` (05): tokenizing, packed layout and scored
positions of the 3,111 Alpaca 5% rows, one PyTorch thread (as on a GPU); 3 alternating rounds, each the best of 3.
"""
import ifd_nb.ifd as ifd
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import host_ms_per_row
from ifd_nb.models import load_tokenizer
from host_facts import alternate, save  # .ci/ is this script's folder


def main():
    rows, tok = read_rows(shared_data_path("alpaca_cherry_5pct.json")), load_tokenizer("embedded")
    real, out = ifd._cuts_like_truncation, {}
    def measured(check, mode):  # ms a row in `mode` with `check` deciding whether texts are batched
        ifd._cuts_like_truncation = check
        try: return host_ms_per_row(rows, tok, n=len(rows), threads=1, mode=mode)
        finally: ifd._cuts_like_truncation = real
    for mode in ("default", "cherry", "superfiltering"):
        out[mode] = alternate({"batched": lambda: measured(real, mode), "one at a time": lambda: measured(lambda t: False, mode)})
        print(mode, {k: min(v) for k, v in out[mode].items()}, flush=True)
    save("cpu_modes", dict(rows=len(rows), chunk_rows=512, threads=1, ms_per_row=out))


if __name__ == "__main__": main()
