"""The GPU check, prepared to run in one device call (budget: under 8 minutes on an H100).

1. the kernel benchmark at every size (below);
2. engine vs reference-style loop on random-weight models built from configs (`gpu_engine_benchmark`), with MFU, the
   model's own matmul rate at a full batch, and the same engine with the backbone compiled (`compile_backbone=True`);
3. a torch.profiler trace of the engine on the SmolLM2-135M shape: where its wall time goes (CPU side and CUDA
   kernels), to find what keeps the MFU low, if time is left.

The kernel benchmark (`ifd_nb.kernel_bench.main()`) took 49 s on an H100 in its first run; kernel 2 now also times
the flattened loop (`ours_flat`), grouped program orders (`ours_grouped2/4`), the chunked cuBLAS + kernel 1 path
(`ours_chunked`) and the first run's slice count (`ours_fill_twice`), with each one's error. Compiling a backbone takes
tens of seconds per model.

Reading the results (kernel_bench.json, gpu_check.json under $OUT): per (V, D, T), the fastest of our rows with a
float64 error like the default's decides the defaults in `linear_ce_triton` (`flatten`, `group_rows`) and whether the
engine should use `linear_ce_chunked` above some hidden size; `ours_fill_twice` against `ours(128,256,64,w8,s3)` shows
what the wave-aware slice count (`vocab_splits`) gained; `compile_facts` shows the tile `choose_tile` picked from the
compiler's report and whether the driver's register/spill counts of the JIT-built kernel agree with it, and the
`ours(128,128,64,w8,s3)`/`ours(64,128,64,w4,s3)` rows whether "no spills" picks well, and
`ours(128,128,64,w4,s3)`/`ours(64,256,64,w4,s2)` (two programs per SM by the compile facts) whether occupancy hides
the log-sum-exp epilogue better than the default's one program per SM. Record the tables with the card's name in BENCHMARKS.md
(`.ci/make_benchmarks.py`) and copy the JSON to nbs/bench_results/.

What to look for (hypotheses, not results): the first engine run's 135M model was slower in tokens/s than the 0.5B
one, which points at time outside the GPU's arithmetic: Triton compiling a kernel variant for a new row count inside
the timed run (the row count is no longer specialized on), or host-side work; the profile's CPU table settles it.

`--short` (a second call in one session, ~2-3 min): the kernel benchmark with the defaults only (the call users make,
`ours_checked`; the default tile; the plain program order) against PyTorch, Liger and CCE at every size, then the
engine's throughput under each scaled-dot-product-attention backend (`attention_backends`: the first profile showed
cuDNN attention's host-side cost, 1.6 ms a call).

`--engine` (~5-7 min, an estimate: not yet run on a GPU; `GPU_CHECK_BUDGET_S` stops new steps): first
`packed_attention_check` (does PyTorch's variable-length flash kernel run for each model's dtype and heads, and do
packed rows agree with single sequences; the kernel's error if not), then `host_check` (~30 s: the machine's CPUs and
cgroup quota, the engine's host work per row with PyTorch's default CPU threads and with one, and the engine with
`host_threads=1` against None: tokenizing took 0.5-0.7 ms a row there, 0.11-0.21 on 2-core x86_64 CPUs, unexplained;
and the host work of `cherry` mode), then `engine_step` one model a step: Qwen2-0.5B's shape, SmolLM2-135M's, then
Qwen2-1.5B's (the widest the engine issue names: wider matrix products leave the element-wise work a smaller share).
Each step runs the loop, then the engine packed (the default), padded and, but for 1.5B, packed with the backbone
compiled, with IFD differences against the first; `steady_mfu` times the first half of the rows again and counts
only the second half (what a long run sustains, without the per-call costs); then the packed engine with Liger's fused
RMSNorm, rotary and SwiGLU kernels patched in (`liger_engine`, alternating with the plain model, best of 2; carry
`.whl`), the modules Liger patches put back afterwards. Last, the profile (step 3). Run this first in a new GPU
session: it times the host-sync removals and packing of 27 November, the compiled packed backbone and the pipelined
chunks built later that day (since 28 November the packed attention is an operator inside the compiled graph,
no longer a break in every layer; on CPU one compile serves every batch) and the host-side work of the 27th's last
sessions. With `--engine`, last of all, selection's facility-location greedy on 100,000 candidates on the GPU
(`facility_check`).

First, on this machine, `bash .ci/device_payload.sh` writes `.devdata/tok` (the embedded model's tokenizer files and
config.json), `.devdata/alpaca_cherry_5pct.json` (the data; the device cannot reach the hub) and `.whl` (Liger-Kernel
and Cut Cross-Entropy wheels). Then one device call, carrying `.devdata` and `.whl`, from the repository root:
    export PYTHONUNBUFFERED=1; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=$PWD:/tmp/site; IFD_NB_TOKENIZER_DIR=.devdata/tok GPU_CHECK_BUDGET_S=400 \
        python3 .ci/gpu_check.py --engine 2>&1 | tee $OUT/log.txt
with a timeout of about 540 s. Everything is written under $OUT.
`python .ci/gpu_check.py --smoke` runs the `--engine` steps and the attention A/B on CPU with a tiny model (the
engine step with its compile; ~90 s on 2 cores, without TRITON_INTERPRET: Liger's kernels then fail at launch, as
they should on a CPU), to check the script before spending GPU time.
"""
import importlib, json, os, sys, time, traceback
from contextlib import contextmanager
from pathlib import Path
import torch
from ifd_nb.engine import _timed_scores, _max_diff, _sync  # timed runs, IFD differences, device waits: as the engine benchmark does them
from host_facts import alternate  # settings timed in turn, round after round (.ci/ is this script's folder)

OUT = Path(os.environ.get("OUT", "gpu_check_out")); OUT.mkdir(parents=True, exist_ok=True)
SMOKE, SHORT, ENGINE = "--smoke" in sys.argv, "--short" in sys.argv, "--engine" in sys.argv
BUDGET_S = float(os.environ.get("GPU_CHECK_BUDGET_S", "400"))  # no new step starts after this; call with timeout_s ~540
t0 = time.time()


def rows_and_tokenizer():
    from transformers import AutoTokenizer
    from ifd_nb.data import read_rows, shared_data_path
    from ifd_nb.models import load_tokenizer
    tokdir = os.environ.get("IFD_NB_TOKENIZER_DIR")
    tok = AutoTokenizer.from_pretrained(tokdir) if tokdir else load_tokenizer("embedded")
    src = Path(".devdata/alpaca_cherry_5pct.json")
    return read_rows(src if src.exists() else shared_data_path("alpaca_cherry_5pct.json")), tok


def model_of(cfg, dev):
    "A model given as it is, or a bf16 one with seeded random weights built from a config (`random_weight_model`)."
    from ifd_nb.engine import random_weight_model
    return cfg if isinstance(cfg, torch.nn.Module) else random_weight_model(cfg, dev, torch.bfloat16)


def profile_engine(rows, tok, n=1000):
    "torch.profiler over one engine run; tables sorted by CUDA and by CPU time."
    from torch.profiler import profile, ProfilerActivity
    from ifd_nb.engine import score_dataset
    from ifd_nb.models import tiny_model
    if SMOKE:
        model, dev, n = tiny_model(), "cpu", 24
    else:
        from ifd_nb.engine import benchmark_configs
        model, dev = model_of(benchmark_configs()["SmolLM2-135M (config, random weights)"], "cuda"), "cuda"
    score_dataset(rows[:64], model, tok, batch_tokens=65536, progress=False, verbose=False)  # warm-up, compiles
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
    t = time.time()
    with profile(activities=acts) as prof:
        score_dataset(rows[:n], model, tok, batch_tokens=65536, progress=False, verbose=True)
        _sync(dev)
    wall = time.time() - t
    ka = prof.key_averages()
    text = f"engine on {n} samples, {wall:.2f} s wall under the profiler\n\n"
    if dev == "cuda": text += "== by self CUDA time\n" + ka.table(sort_by="self_cuda_time_total", row_limit=25) + "\n"
    text += "== by CPU total time\n" + ka.table(sort_by="cpu_time_total", row_limit=30) + "\n"
    (OUT/"engine_profile.txt").write_text(text)
    print(text[:6000], flush=True)
    from ifd_nb.ifd import encode_samples
    t = time.time(); encode_samples(tok, rows[:n]); t_enc = time.time() - t  # batched, as the engine tokenizes
    t = time.time(); score_dataset(rows[:n], model, tok, batch_tokens=65536, progress=False, verbose=False); _sync(dev)
    return dict(n=n, wall_s_under_profiler=wall, wall_s=time.time() - t, tokenize_s=t_enc)


def packed_attention_check(models=None, dev="cuda"):
    "Does PyTorch's variable-length flash kernel run for each benchmark model (bf16), and do packed rows match single sequences?"
    import traceback
    from ifd_nb.engine import benchmark_configs, packing_plan, packed_rows_agree, attention_heads
    from ifd_nb.ifd import flash_varlen_ok, _flash_varlen, packed_boundaries
    out = []
    for name, cfg in (models or benchmark_configs()).items():
        model = model_of(cfg, dev)
        h, kv, d = attention_heads(model)
        r = dict(model=name, heads=[h, kv, d], dtype=str(model.dtype), flash_varlen_ok=flash_varlen_ok(dev, model.dtype, h, kv, d),
                 packing_plan=packing_plan(model), packed_rows_agree=packed_rows_agree(model))
        if dev == "cuda" and not r["flash_varlen_ok"]:  # why not: the kernel's own error
            try:
                q = torch.randn(40, h, d, device=dev, dtype=model.dtype); k = torch.randn(40, kv, d, device=dev, dtype=model.dtype)
                _flash_varlen(q, k, k, packed_boundaries([15, 25])["cu_seq_lens_q"].to(dev), 25)
                r["flash_error"] = "ran, but disagreed with per-sequence attention"
            except Exception: r["flash_error"] = traceback.format_exc()[-1500:]
        out.append(r); print(r, flush=True)
        del model
    return out


def attention_backends(rows, tok, n=2000, models=None, dev="cuda"):
    "Engine samples/s (padded batches: SDPA) under each SDPA backend (PyTorch's default pick, flash, memory-efficient, cuDNN)."
    from torch.nn.attention import sdpa_kernel, SDPBackend
    from contextlib import nullcontext
    from ifd_nb.ifd import encode_samples
    t = time.time(); encode_samples(tok, rows[:n]); out = dict(tokenize_s=time.time() - t, n=n, results=[])
    choices = {"default": None, "flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION}
    from ifd_nb.engine import benchmark_configs
    for name, cfg in (models or benchmark_configs()).items():
        model = model_of(cfg, dev)
        first = None
        for b, kind in choices.items():
            ctx = nullcontext() if kind is None else sdpa_kernel([kind])
            try:
                with ctx: _, dt, ifd = _timed_scores(rows, model, tok, n, batch_tokens=65536, packing=False)
                if first is None: first = ifd
                out["results"].append(dict(model=name, backend=b, samples_per_s=n / dt, seconds=dt,
                                           max_ifd_diff_vs_default=_max_diff(ifd, first)))
            except Exception as e:
                out["results"].append(dict(model=name, backend=b, error=f"{type(e).__name__}: {str(e)[:300]}"))
            print(out["results"][-1], flush=True)
        del model; torch.cuda.empty_cache()
    return out


def host_check(rows, tok, n=2000, model=None, dev="cuda"):
    """The host's side on this machine: its CPUs (`cpu_facts`), the engine's host work per row without a model
    (`host_ms_per_row`) with PyTorch's default CPU threads and with one, tokenizing alone, and the engine on
    SmolLM2-135M's shape with `host_threads=1` (its default) against None (PyTorch's default), alternating, best of 2."""
    from ifd_nb.engine import benchmark_configs, host_ms_per_row, cpu_facts
    from ifd_nb.ifd import encode_samples
    import tokenizers
    r = cpu_facts() | dict(tokenizers=tokenizers.__version__, encode_batch_fast=hasattr(getattr(tok, "backend_tokenizer", None), "encode_batch_fast"))
    r["host_ms_per_row"] = {str(t or "default"): host_ms_per_row(rows, tok, n, threads=t) for t in (None, 1)}
    r["host_ms_per_row_cherry_1_thread"] = host_ms_per_row(rows, tok, n, threads=1, mode="cherry")
    t = time.time(); encode_samples(tok, rows[:n]); r["encode_ms_per_row"] = (time.time() - t) / n * 1e3
    model = model if model is not None else model_of(benchmark_configs()["SmolLM2-135M (config, random weights)"], dev)
    runs = alternate({str(t or "default"): lambda t=t: _timed_scores(rows, model, tok, n, batch_tokens=65536, host_threads=t)[1:]
                      for t in (1, None)}, rounds=2)  # {setting: [(seconds, IFDs) a round]}
    r["engine_samples_per_s"] = {k: n / min(secs for secs, _ in v) for k, v in runs.items()}
    r["max_ifd_diff_1_vs_default"] = _max_diff(runs["1"][0][1], runs["default"][0][1])
    print(r, flush=True)
    return r


@contextmanager
def modules_restored(*names):
    "Put every attribute of the named modules back as it was on exit (Liger patches classes and functions of transformers' modeling modules)."
    mods = [importlib.import_module(n) for n in names]
    saved = [dict(vars(m)) for m in mods]
    try: yield
    finally:
        for m, before in zip(mods, saved):
            for k in set(vars(m)) - set(before): delattr(m, k)
            for k, v in before.items(): setattr(m, k, v)


def liger_engine(rows, tok, n=2000, configs=None, dev="cuda"):
    """The packed engine on each model as it is, then with Liger's RMSNorm, rotary and SwiGLU kernels patched into it
    (fused element-wise work without a compile): samples/s of both (best of 2, alternating) and their largest IFD
    difference. Benchmark only: the package does not depend on Liger. Liger patches the modeling modules of the model
    type, not only the instance: they are put back afterwards, so later steps run the models as transformers has them."""
    from ifd_nb.engine import benchmark_configs, random_weight_model
    from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance
    out = []
    for name, cfg in (configs or benchmark_configs()).items():
        r = dict(model=name, n=n)
        with modules_restored("transformers.models.llama.modeling_llama", "transformers.models.qwen2.modeling_qwen2"):
            try:
                plain, liger = random_weight_model(cfg, dev), random_weight_model(cfg, dev)  # the same seeded weights
                _apply_liger_kernel_to_instance(model=liger, rope=True, rms_norm=True, swiglu=True,
                                                cross_entropy=False, fused_linear_cross_entropy=False)
                runs = alternate({k: lambda m=m: _timed_scores(rows, m, tok, n, batch_tokens=65536)[1:]
                                  for k, m in (("plain", plain), ("liger", liger))}, rounds=2)  # {model: [(seconds, IFDs) a round]}
                r |= dict(plain_samples_per_s=n / min(t for t, _ in runs["plain"]), liger_samples_per_s=n / min(t for t, _ in runs["liger"]),
                          max_ifd_diff_liger_vs_plain=_max_diff(runs["liger"][0][1], runs["plain"][0][1]))
            except Exception as e: r["error"] = f"{type(e).__name__}: {str(e)[:500]}"
        out.append(r); print(r, flush=True)
        plain = liger = None
        if dev == "cuda": torch.cuda.empty_cache()
    return out


def engine_step(rows, tok, name, cfg, compile_backbone=True, dev="cuda", n_loop=100, n_engine=2000, batch_tokens=65536):
    "One model: the engine against the loop, packed, padded (and compiled), with steady-state MFU, then the Liger A/B."
    from ifd_nb.engine import gpu_engine_benchmark
    r = gpu_engine_benchmark(rows, tok, n_loop=n_loop, n_engine=n_engine, batch_tokens=batch_tokens,
                             compile_backbone=compile_backbone, configs={name: cfg}, device=dev)[0]
    torch._dynamo.reset()  # the compiled graphs of this model go with it
    try: r["liger"] = liger_engine(rows, tok, n=n_engine, configs={name: cfg}, dev=dev)[0]
    except Exception as e: r["liger"] = dict(error=f"{type(e).__name__}: {str(e)[:500]}")
    return r


def facility_check(dev="cuda", c=100_000, n=1000, d=576):
    "Selection's facility-location greedy (06) on clustered random candidates on the device: its seconds (no CPU figure: ~95 s at 30,000 x 1,000 on 2 cores)."
    import numpy as np
    from ifd_nb.select import facility_location_greedy
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(c, d)) + 2 * rng.normal(size=(c // 60, d))[rng.integers(0, c // 60, c)]).astype(np.float32)
    facility_location_greedy(x[:2000], 10, device=dev)  # warm-up
    _sync(dev); t = time.perf_counter(); picks = facility_location_greedy(x, n, device=dev); _sync(dev)
    return dict(candidates=c, picks=n, dim=d, seconds=round(time.perf_counter() - t, 2), distinct=len(set(picks)) == n)


def main():
    res = dict(device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", torch=torch.__version__)
    save = lambda: (OUT/"gpu_check.json").write_text(json.dumps(res, indent=1, default=str))
    rows, tok = rows_and_tokenizer()
    steps = [("profile", lambda: profile_engine(rows, tok))]
    if SMOKE:  # the --engine steps on CPU with a tiny model: packed-attention check, host, engine (compiled too) with Liger, profile
        from ifd_nb.models import tiny_model
        tiny = tiny_model(n_kv_heads=2).config
        steps = [("packed_attention", lambda: packed_attention_check({"tiny": tiny_model(n_kv_heads=2)}, dev="cpu")),
                 ("host", lambda: host_check(rows, tok, n=24, model=tiny_model(), dev="cpu")),
                 ("engine", lambda: engine_step(rows, tok, "tiny", tiny, dev="cpu", n_loop=4, n_engine=48, batch_tokens=2048)),
                 ("attention", lambda: attention_backends(rows, tok, n=24, models={"tiny": tiny_model()}, dev="cpu")), *steps,
                 ("facility", lambda: facility_check("cpu", c=3000, n=50))]
    else:
        from ifd_nb.engine import gpu_engine_benchmark
        from ifd_nb.kernel_bench import main as kernel_bench
        from ifd_nb.engine import benchmark_configs
        if ENGINE:  # one model a step: 0.5B and 135M compiled too, then 1.5B eager only; then the profile
            cfgs = benchmark_configs()
            order = ["Qwen2-0.5B shape (random weights)", "SmolLM2-135M (config, random weights)", "Qwen2-1.5B shape (random weights)"]
            steps = [("packed_attention", packed_attention_check), ("host", lambda: host_check(rows, tok)),
                     *[("engine", lambda n=n: engine_step(rows, tok, n, cfgs[n], compile_backbone="1.5B" not in n)) for n in order],
                     *steps, ("facility", facility_check)]  # last: seconds, if the budget leaves them
        elif SHORT:
            steps = [("kernels", lambda: kernel_bench(str(OUT), k1_configs=((2048, 8),), k2_configs=((128, 256, 64, 8, 3, False),),
                                                      variants=False)),
                     ("attention", lambda: attention_backends(rows, tok))]
        else: steps = [("packed_attention", packed_attention_check), ("kernels", lambda: kernel_bench(str(OUT))),
                 ("engine", lambda: gpu_engine_benchmark(rows, tok, n_loop=100, n_engine=2000, compile_backbone=True,
                                                         configs={k: v for k, v in benchmark_configs().items() if "1.5B" not in k})),
                 *steps]
    names = [name for name, _ in steps]
    for name, fn in steps:
        late = time.time() - t0 > BUDGET_S
        if late: got = "skipped: out of time"
        else:
            try: got = fn()
            except Exception: got = dict(error=traceback.format_exc()[-3000:])
        if names.count(name) > 1: res.setdefault(name, []).extend(got if isinstance(got, list) else [got])  # e.g. engine: a model a step
        else: res[name] = got
        if late: continue
        res[f"{name}_done_at_s"] = time.time() - t0; save()
        print(name, "done at", f"{time.time() - t0:.0f} s", flush=True)
    save()


if __name__ == "__main__": main()
