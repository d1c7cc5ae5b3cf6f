"""The engine on CPU, eager against a compiled backbone, with the reference-style loop in the same run (05).

    python .ci/cpu_compile_facts.py [N [ROUNDS [SUFFIX [NOTE [BATCH_TOKENS]]]]]   # N rows of alpaca_cherry_5pct.json (default 200), ROUNDS (default 2)

Writes nbs/bench_results/cpu_compile_<date>[_SUFFIX].json (NOTE: what the code was), about 14 minutes on 2 cores.
BATCH_TOKENS is the engine's budget (default: `default_batch_tokens`, 05, 2,048 for this model on a CPU; the runs made
before it existed used 8,192). The engine issue asks for 3x the loop on CPU; its FLOP count says
exact scoring cannot get there (05, `engine_vs_loop`'s `speedup_bound`). What is left to gain is the time the eager
model spends outside its matrix products: norms, rotary embeddings, the gated activation and residual adds, each a
separate pass over the activations. `torch.compile` fuses them (inductor writes C++ loops for the CPU). This times the
same engine with the same weights both ways (a deep copy of the model, its backbone compiled with `dynamic=True` as
`compile_backbone=True` does), after one warm-up run each (the compiled one pays its compile there), and the loop,
alternating the three (and a float32 matmul) in ROUNDS rounds: this shared machine's speed drifts by a third within
minutes, so a loop timed once, before or after, says little. It records the largest IFD difference. It also
records this CPU's rate for the model's MLP product (`matmul_rate`, 05) in float32, bfloat16 and float16: whether a
lower precision would be any faster here.
"""
import copy, sys, time
import torch
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import reference_loop, score_dataset, _compile_backbone, _max_diff, matmul_rate, default_batch_tokens
from ifd_nb.models import load_model
sys.path.insert(0, ".ci")
from host_facts import alternate, save


def main(n: int = 200, rounds: int = 2, suffix: str = "", note: str = "", batch_tokens: int | None = None):
    rows = read_rows(shared_data_path("alpaca_cherry_5pct.json"))
    eager, tok = load_model("embedded")
    compiled = _compile_backbone(copy.deepcopy(eager))
    bt = batch_tokens or default_batch_tokens(eager)
    kw = dict(batch_tokens=bt, progress=False, verbose=False, resume=False)
    warm = {}
    for name, m in (("eager", eager), ("compiled", compiled)):  # shapes other than the timed rows': the compiled graph must serve any
        t = time.time(); score_dataset(rows[n:n + 64], m, tok, **kw); warm[name] = time.time() - t
    ifds = {}
    def run(name, m):
        t = time.time(); df = score_dataset(rows[:n], m, tok, **kw); secs = time.time() - t
        ifds[name] = torch.tensor(df.ifd.to_numpy(), dtype=torch.float64)
        return n / secs
    got = alternate({"loop": lambda: n / reference_loop(rows[:n], eager, tok), "eager": lambda: run("eager", eager),
                     "compiled": lambda: run("compiled", compiled), "matmul_float32": lambda: matmul_rate(eager) / 1e9}, rounds)
    best = {k: max(v) for k, v in got.items()}
    save("cpu_compile", dict(model="embedded SmolLM2-135M-Instruct", dtype="float32", rows=n, batch_tokens=bt,
                             threads=torch.get_num_threads(), warmup_rows=64, warmup_s=warm, samples_per_s=got, best=best,
                             speedup_vs_loop={k: best[k] / best["loop"] for k in ("eager", "compiled")},
                             compiled_over_eager=best["compiled"] / best["eager"],
                             max_ifd_diff=_max_diff(ifds["eager"], ifds["compiled"]),
                             matmul_GFLOP_per_s={str(dt)[6:]: matmul_rate(eager, dtype=dt) / 1e9 for dt in (torch.float32, torch.bfloat16, torch.float16)},
                             note="engine: packed rows (packing='auto'); loop: batch 1, two model(labels=...) calls; "
                                  "warm-up on rows [N, N+64), then rounds alternating the loop, eager and compiled engine on rows [0, N) "
                                  "and the float32 matmul rate; best of the rounds", **(dict(code=note) if note else {})), suffix)


if __name__ == "__main__": main(*map(int, sys.argv[1:3]), *sys.argv[3:5], *map(int, sys.argv[5:6]))
