"""How the engine orders and splits rows before tokenizing them (05, `_rank_share`), and what that costs and saves.

    python .ci/chunk_facts.py     # well under a minute on 2 cores; writes nbs/bench_results/cpu_chunks_<date>.json

The engine sorts rows by the characters of their text fields (`_text_size`), splits them among ranks and tokenizes a
chunk at a time. Before, it tokenized windows of rows up front, sorted them by token count, and every rank tokenized
the whole window and kept every world-th sample. On the Alpaca 5% rows:
- padding: the share of padded positions that are padding in padded batches (16,384 tokens, chunks of 512, 128 and 64
  samples), rows sorted by token count, by text size, or not at all;
- ranks (2, 4, 8, all simulated in this one process): the seconds the slowest rank spends tokenizing its rows (best of
  3) against the whole set's, and each rank's tokens over both passes (the work its forward passes do) as the largest
  rank's over the mean, 1.0 being a perfect balance, for the split by text size and the old split by token count.
"""
import datetime, json, os, platform, random, time
import torch
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import _chunk_sequences, _rank_share, _text_size, plan_batches
from ifd_nb.ifd import encode_samples
from ifd_nb.models import load_tokenizer


def best_seconds(fn, reps=3):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return best


def tokens(encs):
    return sum(len(e.cond_ids) + len(e.bare_ids) for e in encs if hasattr(e, "cond_ids"))


def padding_counts(encs, chunk, batch_tokens=16384):
    "(real, padded) positions of the engine's padded batches when `encs`, in this order, are taken in chunks of `chunk` rows."
    real = padded = 0
    for c in range(0, len(encs), chunk):
        _, r, p = plan_batches(_chunk_sequences(list(enumerate(encs[c:c+chunk]))), batch_tokens)
        real, padded = real + r, padded + p
    return real, padded


def padding_share(encs, chunk, batch_tokens=16384):
    "Share of the padded positions that are padding."
    real, padded = padding_counts(encs, chunk, batch_tokens)
    return 1 - real / padded


def main():
    tok = load_tokenizer("embedded")
    rows = read_rows(shared_data_path("alpaca_cherry_5pct.json"))
    idx = list(range(len(rows)))
    encode_samples(tok, rows[:64])  # warm-up
    whole_s = best_seconds(lambda: encode_samples(tok, rows))
    pairs = [(r, e) for r, e in zip(rows, encode_samples(tok, rows)) if hasattr(e, "cond_ids")]
    orders = {"token count": [e for _, e in sorted(pairs, key=lambda t: len(t[1].cond_ids))],
              "text size": [e for _, e in sorted(pairs, key=lambda t: _text_size(t[0]))],
              "unsorted (shuffled)": [e for _, e in random.Random(0).sample(pairs, len(pairs))]}
    res = dict(date=datetime.date.today().isoformat(), machine=f"{os.cpu_count()} CPU cores ({platform.machine()})", torch=torch.__version__,
               rows=len(rows), whole_set_tokenize_s=whole_s,
               padding=[dict(chunk=c, **{k: padding_share(v, c) for k, v in orders.items()}) for c in (512, 128, 64)], worlds=[])
    by_tokens = orders["token count"]
    for world in (2, 4, 8):
        shares = [[rows[i] for i in _rank_share(rows, idx, r, world)] for r in range(world)]
        new = [tokens(encode_samples(tok, s)) for s in shares]
        old = [tokens(by_tokens[r::world]) for r in range(world)]
        res["worlds"].append(dict(world=world, slowest_rank_tokenize_s=max(best_seconds(lambda: encode_samples(tok, s)) for s in shares),
                                  share_split_balance=max(new) / (sum(new) / world), token_sorted_split_balance=max(old) / (sum(old) / world)))
    out = f"nbs/bench_results/cpu_chunks_{res['date']}.json"
    json.dump(res, open(out, "w"), indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
