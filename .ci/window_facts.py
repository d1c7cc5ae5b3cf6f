"""Memory of tokenized rows and padding by window size: why the engine stopped holding every row's token ids (05; windows, since replaced by tokenizing a chunk at a time, see .ci/chunk_facts.py).

    python .ci/window_facts.py     # about a minute on 2 cores; writes nbs/bench_results/cpu_windows_<date>.json

Memory: the rise of this process's resident memory while `encode_samples` tokenizes the Alpaca 5% rows eight times
over (24,888 rows), per row. Padding: the share of padded positions that are padding when the engine's batch plan
(16,384 tokens a batch, chunks of 512 samples) runs over the 3,111 rows sorted whole or in windows.
"""
import datetime, gc, json, os, platform, sys, time
import torch
from ifd_nb.data import read_rows, shared_data_path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chunk_facts
from ifd_nb.ifd import encode_samples
from ifd_nb.models import load_tokenizer


def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def padding_share(encs, window, batch_tokens=16384, flush=512):
    "Padding share of the engine's padded batches in chunks of `flush` within each window of rows sorted by token count."
    counts = [chunk_facts.padding_counts(sorted(encs[w:w+window], key=lambda e: len(e.cond_ids)), flush, batch_tokens)
              for w in range(0, len(encs), window)]
    return 1 - sum(r for r, _ in counts) / sum(p for _, p in counts)


tok = load_tokenizer("embedded")
rows = read_rows(shared_data_path("alpaca_cherry_5pct.json"))
encs = [e for e in encode_samples(tok, rows) if hasattr(e, "cond_ids")]
many = rows * 8
gc.collect(); before = rss_mib(); t = time.time()
held = encode_samples(tok, many)
secs = time.time() - t; gc.collect(); rise = rss_mib() - before
ids = sum(len(e.cond_ids) + len(e.bare_ids) for e in held if hasattr(e, "cond_ids")) / len(many)
res = dict(date=datetime.date.today().isoformat(), machine=f"{os.cpu_count()} CPU cores ({platform.machine()})", torch=torch.__version__,
           rows_tokenized=len(many), rss_rise_MiB=rise, KiB_per_row=rise * 1024 / len(many), ids_per_row=ids,
           tokenize_ms_per_row=secs / len(many) * 1e3, GB_per_million_rows=rise * 2**20 / len(many) * 1e6 / 1e9,
           padding=[dict(window=w, rows=len(encs), padding_share=padding_share(encs, w)) for w in (len(encs), 1024, 256)])
out = f"nbs/bench_results/cpu_windows_{res['date']}.json"
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
