"""What Triton builds for kernel 2 on each card of `CARDS`, compiled on this machine without a GPU (not timings).

Writes nbs/bench_results/compile_facts_<date>.json, which `.ci/make_benchmarks.py` renders into BENCHMARKS.md:
`TRITON_INTERPRET=1 python .ci/compile_facts.py` (the interpreter is optional; the compiles run without it).
"""
import datetime, json, platform
from pathlib import Path
import torch, triton
from ifd_nb.kernels import CARDS, K2_TILES, kernel2_resources, choose_tile, programs_per_sm

rows = []
for cap, (cards, *limits) in CARDS.items():
    dt = torch.float16 if cap < (8, 0) else torch.bfloat16  # no bf16 before Ampere
    for D, V in ((576, 49152), (1536, 151936)):
        chosen = choose_tile(cap, tuple(limits), dt, D, V)[0]
        for tile, r in zip(K2_TILES, kernel2_resources(cap, K2_TILES, dt, D, V)):
            rows.append(dict(capability=list(cap), cards=cards, dtype=str(dt).split(".")[-1], D=D, V=V, tile=list(tile),
                             chosen=tile == chosen, programs_per_sm=programs_per_sm(r, tile[3], tuple(limits)),
                             **{k: v for k, v in r.items() if k != "sass"}))
ops = kernel2_resources((9, 0), K2_TILES[:1], torch.bfloat16, 1536, 151936, sass=True)[0]["sass"]
sass = {k: ops.get(k, 0) for k in ("FMNMX", "FFMA", "MUFU.EX2", "FADD", "FMUL", "FSEL")}  # the epilogue's instructions
day = datetime.date.today().isoformat()
out = Path(__file__).resolve().parent.parent / "nbs" / "bench_results" / f"compile_facts_{day}.json"
json.dump(dict(date=day, triton=triton.__version__, torch=torch.__version__, machine=f"{platform.machine()} CPU, no GPU",
               rows=rows, h100_default_tile_sass=sass), open(out, "w"), indent=1)
print(out, len(rows))
