"""The engine on a CPU at several batch budgets, and why the large ones are slow there (05, `default_batch_tokens`).

    python .ci/cpu_batch_facts.py [N [ROUNDS [SUFFIX [NOTE [MODEL]]]]]   # N rows of alpaca_cherry_5pct.json (default 100), ROUNDS (default 2)

MODEL: 'embedded' (default), or a part of a `benchmark_configs` name ('0.5B': Qwen2-0.5B's shape, random weights,
scored with the embedded tokenizer). Writes nbs/bench_results/cpu_batch_<date>[_SUFFIX].json (NOTE: what the code
was), about 12 minutes on 2 cores for the embedded model at N=100 (the 0.5B shape: N=24).
The model scores the same N rows at four `batch_tokens` budgets around `default_batch_tokens`, alternating them in
ROUNDS rounds (this shared machine's speed drifts within minutes), and each run's minor page faults are counted
(`getrusage`): a fault is the kernel handing the process a fresh, zeroed page. Then a second process does the same at
the default budget and at 8,192 with glibc's malloc told never to return memory to the system
(`MALLOC_MMAP_MAX_=0`: no block gets a mapping of its own; `MALLOC_TRIM_THRESHOLD_` huge: the heap is never trimmed).
If the large budget's loss is those faults rather than cache misses, it disappears there.
"""
import json, os, resource, subprocess, sys, time
import torch
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import score_dataset, default_batch_tokens, benchmark_configs, random_weight_model
from ifd_nb.models import load_model, load_tokenizer
sys.path.insert(0, ".ci")
from host_facts import alternate, save

KEEP_HEAP = dict(MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_=str(1 << 40))


def model_named(name: str):
    "(model, tokenizer, its name): the embedded model, or a `benchmark_configs` shape with random weights on the CPU."
    if name == "embedded": return *load_model("embedded"), "embedded SmolLM2-135M-Instruct"
    key, cfg = next((k, c) for k, c in benchmark_configs().items() if name in k)
    return random_weight_model(cfg, "cpu"), load_tokenizer("embedded"), key


def measure(model_name: str, budgets, n: int, rounds: int) -> dict:
    "The model's name, its `default_batch_tokens`, and {budget: [(samples/s, minor faults per sample), one per round]} on the first `n` rows."
    rows = read_rows(shared_data_path("alpaca_cherry_5pct.json"))
    model, tok, name = model_named(model_name)
    d = default_batch_tokens(model)
    kw = dict(progress=False, verbose=False, resume=False)
    score_dataset(rows[n:n + 16], model, tok, batch_tokens=d, **kw)  # warm-up on other rows
    def run(bt):
        f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt; t = time.time()
        score_dataset(rows[:n], model, tok, batch_tokens=bt, **kw)
        return round(n / (time.time() - t), 3), round((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f) / n)
    budgets = budgets or (d // 2, d, 2 * d, 8192)  # the default and its neighbours, and the budget the CPU runs used before
    return dict(model=name, default=d, runs=alternate({bt: (lambda bt=bt: run(bt)) for bt in budgets}, rounds))


def main(n: int = 100, rounds: int = 2, suffix: str = "", note: str = "", model: str = "embedded"):
    got = measure(model, None, n, rounds)
    child = subprocess.run([sys.executable, __file__, "--keep-heap", model, str(n), str(rounds), f"{got['default']},8192"],
                           env=os.environ | KEEP_HEAP, capture_output=True, text=True, check=True)
    kept = json.loads(child.stdout.strip().splitlines()[-1])["runs"]
    best = lambda r: {k: max(s for s, _ in v) for k, v in r.items()}
    save("cpu_batch", dict(model=got["model"], dtype="float32", rows=n, threads=torch.get_num_threads(),
                           default_batch_tokens=got["default"], samples_per_s_and_faults_per_sample=got["runs"], best=best(got["runs"]),
                           keep_heap_env=KEEP_HEAP, keep_heap_samples_per_s_and_faults_per_sample=kept, keep_heap_best=best(kept),
                           note="engine defaults otherwise (packed rows); warm-up on 16 other rows; budgets alternate in rounds; "
                                "the keep-heap runs are a second process, so only their ratio compares with the first",
                           **(dict(code=note) if note else {})), suffix)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--keep-heap"]:
        m, n, r, b = sys.argv[2:6]
        print(json.dumps(measure(m, tuple(map(int, b.split(","))), int(n), int(r))))
    else: main(*map(int, sys.argv[1:3]), *sys.argv[3:6])
