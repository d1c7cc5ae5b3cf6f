"""What splitting rows before tokenizing costs and saves (05, `_rank_share`): each rank's tokenizing time and its share
of the work, against the earlier split (every rank tokenized the whole window, sorted it by token count and kept every
world-th sample).

    python .ci/rank_facts.py     # well under a minute on 2 cores; writes nbs/bench_results/cpu_ranks_<date>.json

The Alpaca 5% rows as one window, for 2, 4 and 8 ranks, all in this one process: the seconds rank r spends tokenizing
its rows (the slowest rank's, best of 3) and each rank's tokens over both passes (the work its forward passes do), as
the largest rank's over the mean: 1.0 is a perfect balance.
"""
import datetime, json, os, platform, time
import torch
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import _rank_share
from ifd_nb.ifd import encode_samples
from ifd_nb.models import load_tokenizer


def best_seconds(fn, reps=3):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return best


def tokens(encs):
    return sum(len(e.cond_ids) + len(e.bare_ids) for e in encs if hasattr(e, "cond_ids"))


tok = load_tokenizer("embedded")
rows = read_rows(shared_data_path("alpaca_cherry_5pct.json"))
idx = list(range(len(rows)))
encode_samples(tok, rows[:64])  # warm-up
whole_s = best_seconds(lambda: encode_samples(tok, rows))
by_tokens = sorted((e for e in encode_samples(tok, rows) if hasattr(e, "cond_ids")), key=lambda e: len(e.cond_ids))
res = dict(date=datetime.date.today().isoformat(), machine=f"{os.cpu_count()} CPU cores ({platform.machine()})", torch=torch.__version__,
           rows=len(rows), whole_window_tokenize_s=whole_s, worlds=[])
for world in (2, 4, 8):
    shares = [[rows[i] for i in _rank_share(rows, idx, r, world)] for r in range(world)]
    new = [tokens(encode_samples(tok, s)) for s in shares]
    old = [tokens(by_tokens[r::world]) for r in range(world)]
    res["worlds"].append(dict(world=world, slowest_rank_tokenize_s=max(best_seconds(lambda: encode_samples(tok, s)) for s in shares),
                              share_split_balance=max(new) / (sum(new) / world), token_sorted_split_balance=max(old) / (sum(old) / world)))
out = f"nbs/bench_results/cpu_ranks_{res['date']}.json"
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
