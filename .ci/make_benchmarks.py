"""BENCHMARKS.md from the raw JSON in nbs/bench_results/ (run from anywhere: `python .ci/make_benchmarks.py`)."""
import json
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
R = str(ROOT/"nbs"/"bench_results") + "/"
r = json.load(open(R + 'h100_2026-11-26.json'))
out = []
c = r['ceilings']
out.append("# Benchmarks\n\nEvery figure here comes from a run we made, on the machine named with it. Kernel figures: "
           "`python -c \"from ifd_nb.kernel_bench import main; main()\"` (module exported from `nbs/04_kernel_bench.ipynb`), "
           "raw JSON `nbs/bench_results/h100_2026-11-26.json`.\n")
out.append(f"## Kernels on {r['device']} (compute capability {tuple(r['capability'])}), 2026-11-26\n")
out.append(f"Software there: torch {r['torch']}, triton {r['triton']}, liger-kernel 0.8.5, cut-cross-entropy 25.1.1. "
           f"Times are medians of CUDA-event timings (`triton.testing.do_bench`), one run.\n")
out.append(f"**Measured ceilings, same run**: device-to-device copy {c['copy_GBps']:.0f} GB/s (bytes read + written, 2 GiB bf16); "
           f"bf16 8192³ matmul {c['matmul_TFLOPs']:.0f} TFLOP/s.\n")
out.append("Two calls of ours are timed: **ours** passes the segment table it already knows and skips target validation "
           "(`seg_table=..., check=False`: two memsets and one launch, no host synchronization), the way the engine's hot loop "
           "can call it; **ours (checked)** is the plain default call, which validates targets and builds the segment table "
           "inside the timed region (host syncs and a few small launches). Liger and CCE are called with their defaults.\n")
out.append("### Correctness on the GPU (against float64, fresh random inputs, NaN-poisoned outputs)\n")
out.append("| V | D | dtype | rows | kernel 1 rel. err | segment sums rel. err | kernel 2 rel. err | kernel 2 bit-identical rerun |\n|---|---|---|---|---|---|---|---|")
for x in r['correctness']:
    if 'V' in x: out.append(f"| {x['V']} | {x['D']} | {x['dtype']} | {x['rows']} | {x['k1_rel_err']:.1e} | {x['k1_segsum_rel_err']:.1e} | {x['k2_rel_err']:.1e} | {x['k2_deterministic']} |")
    else: out.append(f"\nint64 offsets: kernel 1 on {x['elements']:,} bf16 logits (> 2³¹), max relative error of the checked rows {x['last_rows_rel_err']:.1e}.\n")
def get(rows, name):
    rs = [x for x in rows if 'ms' in x and x['impl'] == name]
    return rs[0] if rs else None
f = lambda x, k, fmt: (fmt % x[k]) if x else "OOM"
out.append("### Kernel 1: bf16 logits → per-token loss + segment sums, one launch\n")
out.append("GB/s counts the logits read once; % is of the measured copy bandwidth (which counts read + write, so a read-only "
           "stream can exceed 100%). ours = BLOCK_V 2048, 8 warps (the default). Extra = peak allocation beyond the inputs.\n")
out.append("| V | tokens | PyTorch ms | Liger ms | ours (checked) ms | ours ms | ours GB/s | ours % copy | Liger % copy | PyTorch extra MiB | ours extra MiB |\n|---|---|---|---|---|---|---|---|---|---|---|")
for V in (49152, 151936):
    for T in (4096, 16384, 65536):
        rows = [x for x in r['kernel1'] if x.get('V') == V and x.get('T') == T]
        pt, lg, oc, od = get(rows, 'pytorch'), get(rows, 'liger'), get(rows, 'ours_checked'), get(rows, 'ours(bv=2048,w=8)')
        out.append(f"| {V} | {T} | {f(pt,'ms','%.3f')} | {f(lg,'ms','%.3f')} | {f(oc,'ms','%.3f')} | {f(od,'ms','%.3f')} | {f(od,'GBps','%.0f')} | {f(od,'pct_copy','%.1f')} | {f(lg,'pct_copy','%.1f')} | {f(pt,'extra_MiB','%.0f')} | {f(od,'extra_MiB','%.1f')} |")
out.append("\n### Kernel 2: hidden states + lm_head (bf16) → per-token loss, logits never materialized\n")
out.append("TFLOP/s counts 2·T·V·D. ours = BLOCK_R 128, BLOCK_V 256, BLOCK_D 64, 8 warps, 3 stages (the default); the JSON also has the other swept tiles. Extra = peak allocation beyond the inputs.\n")
out.append("| V | D | tokens | PyTorch ms | Liger FLCE ms | CCE ms | ours (checked) ms | ours ms | ours TFLOP/s | fastest | PyTorch extra MiB | ours extra MiB | ours / PyTorch memory |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for V, D in ((49152, 576), (151936, 1536)):
    for T in (4096, 16384, 65536):
        rows = [x for x in r['kernel2'] if x.get('V') == V and x.get('T') == T]
        pt, lg, cc, oc, od = get(rows, 'pytorch'), get(rows, 'liger_flce'), get(rows, 'cce'), get(rows, 'ours_checked'), get(rows, 'ours(128,256,64,w8,s3)')
        fastest = min([x for x in (pt, lg, cc, od) if x], key=lambda x: x['ms'])['impl'].split('(')[0]
        ratio = f"{100*od['extra_MiB']/pt['extra_MiB']:.3f}%" if pt else "n/a (PyTorch OOM)"
        out.append(f"| {V} | {D} | {T} | {f(pt,'ms','%.3f')} | {f(lg,'ms','%.3f')} | {f(cc,'ms','%.3f')} | {f(oc,'ms','%.3f')} | {f(od,'ms','%.3f')} | {f(od,'TFLOPs','%.0f')} | {fastest} | {f(pt,'extra_MiB','%.0f')} | {f(od,'extra_MiB','%.1f')} | {ratio} |")
out.append("""
### Reading the tables (against the targets of the kernel issue)

- **Kernel 1 ≥ 80% of copy bandwidth**: met at every measured shape by the sync-free call (82-102%; Liger 34-82%).
  The default call, which validates and builds the segment table inside, loses 0.3-0.6 ms of host work and reaches
  only 17-85%: at a few thousand rows that overhead dominates.
- **Kernel 2 faster than every compared forward**: met for the embedded model's shape (V 49,152, D 576) at all token
  counts (0.56 vs 1.03 ms CCE at 4k; 1.85 vs 3.28 ms; 7.40 vs 10.36 ms Liger). Not met for V 151,936 / D 1,536: CCE is
  2-3% faster at 4k and 16k tokens, Liger 11% faster at 64k. There our tiles reach 487-490 TFLOP/s against the card's
  743 TFLOP/s matmul: the log-sum-exp epilogue is not overlapped with the next tile's dot products.
- **Kernel 2 memory beyond inputs < 5% of the materialized-logits path**: met everywhere (≤ 0.02%; 0.3-1.3 MiB against
  1.5-19 GiB; PyTorch runs out of memory at 64k × 151,936).
- History, same card and day: a first run (before the per-lane log-sum-exp of kernel 1, the hoisted pointers and
  target-logit dot of kernel 2, and the sync-free call) gave kernel 1 13-90% of copy bandwidth and kernel 2 161-398 TFLOP/s.
""")
e = json.load(open(R + 'h100_engine_2026-11-26.json'))
out.append(f"## Scoring engine on {e['device']}, 2026-11-26\n")
out.append("`gpu_engine_benchmark` (exported from `nbs/05_engine.ipynb`; raw JSON `nbs/bench_results/h100_engine_2026-11-26.json`), "
 f"torch {e['torch']}, bf16, models built from configs with random weights (no hub), Alpaca 5% subset samples (`../shared/data`), "
 "default mode, Alpaca template. The loop is the reference style: batch 1, two `model(labels=...)` calls per sample, on the "
 "first 200 samples; the engine scores the first 2,000 (`batch_tokens` 65,536), its time including tokenization, hashing and "
 "shard writes. MFU: backbone FLOPs (2 × non-embedding parameters × tokens + attention) over the bf16 matmul rate measured in "
 "the same run. This run predates the per-sequence batching below (it batched both passes of a sample together).\n")
out.append("| model | parameters | loop samples/s | engine samples/s | speed-up | engine tokens/s | backbone TFLOP/s | MFU (vs measured matmul) |\n|---|---|---|---|---|---|---|---|")
for x in e['results']:
    out.append(f"| {x['model']} | {x['params_M']:.0f}M | {x['loop_samples_per_s']:.1f} | {x['engine_samples_per_s']:.0f} | {x['speedup']:.1f}× | {x['engine_tokens_per_s']:.0f} | {x['backbone_TFLOPs']:.1f} | {100*x['mfu_vs_measured_matmul']:.1f}% (of {x['matmul_TFLOPs']:.0f}) |")
out.append("\nAgainst the engine issue's targets on an H100 (≥ 30× the loop, ≥ 50% MFU): 28× and 39×; MFU 2.3% and 11.5%, far "
 "from 50%. At these sizes a 65k-token batch is a few milliseconds of matrix work and the engine's Python side "
 "(tokenizing, padding, bookkeeping) dominates. Not yet profiled.\n")
import os
def results(prefix):
    "(file name, contents) of every raw JSON in nbs/bench_results/ whose name starts with `prefix`, in name order."
    return [(name, json.load(open(R + name))) for name in sorted(os.listdir(R)) if name.startswith(prefix)]
for name, x in results('cpu_engine'):
    out.append(f"## Scoring engine on CPU ({x['machine']}), {name[11:21]}\n")
    out.append(f"`engine_vs_loop` (exported from `nbs/05_engine.ipynb`), {x['model']}, {x['data']}, `batch_tokens` {x.get('batch_tokens', 8192)}"
               f"{', ' + x['note'] if 'note' in x else ''}: the reference-style loop {x['loop_samples_per_s']:.2f} samples/s, the engine "
               f"{x['engine_samples_per_s']:.2f} samples/s: **{x['speedup']:.2f}×** (target ≥ 3×: not met).\n")
    if 'speedup_bound' in x:
        out.append(f"FLOP accounting of the same run: the engine has {100*x['engine_flops_share_of_loop']:.1f}% of the loop's FLOPs to do "
                   f"(it skips the output layer at prompt positions only; both still run the backbone over every token of both passes). "
                   f"The loop runs at {x['loop_GFLOP_per_s']:.0f} GFLOP/s, the engine at {x['engine_GFLOP_per_s']:.0f} GFLOP/s, against "
                   f"{x['matmul_GFLOP_per_s']:.0f} GFLOP/s for the model's own MLP matmul ([2048, 576] @ [576, 1536], float32, best of 5) "
                   f"on the same machine: the loop is already at {100*x['loop_GFLOP_per_s']/x['matmul_GFLOP_per_s']:.0f}% of it. "
                   f"An engine doing its FLOPs at that matmul rate with zero overhead would be {x['speedup_bound']:.2f}× the loop, "
                   f"so **≥ 3× is out of reach on this CPU for exact scoring**: it would need 3× fewer FLOPs, and the work IFD defines "
                   f"(two full forward passes) does not shrink, beyond the few dozen tokens of template text every prompt shares (a few percent). Runs of the same benchmark vary by about ±10% on this shared machine "
                   f"(1.22× and 1.04× on two days).\n")
for name, x in results('cpu_memory'):
    out.append(f"## PyTorch path's memory on CPU ({x['machine']}), {x['date']}\n")
    out.append(f"Raw JSON `nbs/bench_results/{name}` (the check itself runs in `nbs/03_kernels.ipynb`), torch {x['torch']}. "
               f"Method: {x['method']}. Hidden size 64, float32.\n")
    out.append("| V | rows | float32 logits MiB | materialized: peak rise MiB | chunked (64 MiB budget): peak rise MiB |\n|---|---|---|---|---|")
    for r in x['results']:
        out.append(f"| {r['V']} | {r['rows']} | {r['logits_fp32_MiB']:.0f} | {r['full_MiB']:.0f} | {r['chunked_MiB']:.0f} |")
    out.append("\nThe chunked path's peak stays at about twice its budget (a logits chunk and its exponentials) whatever the "
               "vocabulary and the number of rows; the materialized path's grows with both (logits plus `log_softmax`'s copy).\n")
for name, x in results('compile_facts'):
    out.append(f"## What Triton builds for kernel 2 on each card: compiler facts, not timings ({x['date']})\n")
    out.append(f"Compiled on {x['machine']} with triton {x['triton']} for each compute capability (`kernel2_resources` in "
               f"`nbs/03_kernels.ipynb`; `.ci/compile_facts.py` writes the raw JSON `nbs/bench_results/{name}`): shared memory "
               f"from Triton, registers and spilled bytes per thread from the binary (`cuobjdump -res-usage`), the matrix "
               f"instruction from Triton's IR, programs per SM from the card's limits. bf16 (fp16 on the T4), D 1,536, V 151,936; "
               f"the default tile and, marked ←, the tile `choose_tile` picks (first that fits without spilling).\n")
    out.append("| card (cc) | tile | shared KiB | registers | spilled bytes | matrix instruction | pipelined | programs/SM |\n|---|---|---|---|---|---|---|---|")
    for r in x['rows']:
        if r['D'] != 1536 or not (r['chosen'] or r['tile'] == x['rows'][0]['tile']): continue
        t = r['tile']
        out.append(f"| {r['cards']} ({r['capability'][0]}.{r['capability'][1]}) | {t[0]}×{t[1]}×{t[2]} w{t[3]} s{t[4]}{' ←' if r['chosen'] else ''} | "
                   f"{r['shared']/1024:.0f} | {r['regs']} | {r['spill']:,} | {r['tensor_cores']} | {'yes' if r['pipelined'] else 'no'} | {r['programs_per_sm']} |")
    out.append("\nOn the T4 Triton compiles `tl.dot` to multiply-adds on the CUDA cores with thousands of spilled bytes, so "
               "`auto` sends the fused cross-entropy there to the chunked path (cuBLAS fp16 logits chunks, then kernel 1). Whether "
               "the spill-free tile is also the fastest on A100/L4-class cards is for a GPU run to time.\n")
    if 'h100_default_tile_sass' in x:
        o = x['h100_default_tile_sass']
        out.append(f"Kernel 2's epilogue in the H100 binary of the default tile (machine instructions counted with `cuobjdump -sass`; "
                   f"the tile's code appears twice, for the full tiles and for the vocabulary's last, partial one, 128 logits per thread each): "
                   + ", ".join(f"{k} {v}" for k, v in o.items()) + ". Per logit: one FMNMX, one FFMA, one MUFU.EX2, one FADD; the "
                   "FSELs (column mask) are in the last tile's copy only. Before the logit scale was folded into the exponent's "
                   "multiply-add and the mask confined to the last tile, each logit also took an FMUL and an FSEL.\n")
open(ROOT/'BENCHMARKS.md', 'w').write("\n".join(out) + "\n")
