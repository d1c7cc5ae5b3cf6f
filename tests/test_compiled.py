"""Every kernel compiles for every card in `CARDS`, specialized as a launch specializes it, without a GPU.

The interpreter tests prove the kernels compute the right numbers; these prove Triton's compiler accepts them for each
architecture a user may have (Colab's T4 and L4 included) and check what the compiled code uses. A Triton upgrade
that breaks a kernel on one architecture, or makes kernel 1 spill registers, fails here before it reaches a GPU.
All compiles run in one batch, dealt to one child process per core under the interpreter.
"""
import pytest
import torch

from ifd_nb.kernels.segments import HAS_TRITON
from ifd_nb.kernels.launch import CARDS, LINEAR_CE_TILES as K2_TILES, launch_table, programs_per_sm, table_key
from ifd_nb.bench import compile_facts
from ifd_nb.bench.compile_facts import choose_tile

pytestmark = [pytest.mark.skipif(not HAS_TRITON, reason="needs Triton"), pytest.mark.slow]
f32, bf16, f16 = torch.float32, torch.bfloat16, torch.float16
NEWER = [c for c in CARDS if c >= (8, 0)]
K2_CASES = [(bf16, 1536, 151936, {}), (f16, 768, 50257, dict(bias=True, softcap=True)), (f32, 4096, 32000, {})]


def _dtypes(cap):
    return (f16, f32) if cap < (8, 0) else (bf16, f16, f32)  # no bf16 before Ampere


K1 = [compile_facts.token_ce_job(c, dt, V) for c in CARDS for dt in _dtypes(c) for V in (151936, 50257)]  # V divisible by 16 or not
MERGE = [compile_facts.linear_ce_merge_job(c, dt, b) for c in CARDS for dt in _dtypes(c) for b in (False, True)]
K2 = [compile_facts.linear_ce_job(c, t, dt, D, V, **fl) for c in NEWER for dt, D, V, fl in K2_CASES for t in K2_TILES]
K2 += [compile_facts.linear_ce_job((7, 5), t, f16, 1536, 151936) for t in K2_TILES]
K2 += [compile_facts.linear_ce_job((9, 0), t, f16, 1536, 151936) for t in K2_TILES]  # what a simulated H100 asks in fp16
TWO_PER_SM = ((128, 128, 64, 4, 3), (64, 256, 64, 4, 2))  # the H100 tiles the GPU benchmark times against the default
K2 += [compile_facts.linear_ce_job((9, 0), t, bf16, 1536, 151936) for t in TWO_PER_SM]
SASS = compile_facts.linear_ce_job((9, 0), K2_TILES[0], bf16, 1536, 151936, sass=True)
K2 += [SASS]


@pytest.fixture(scope="module")
def compiled():
    "Resources of every launch above, compiled in one batch (remembered in `compile_facts._RESOURCES`)."
    return dict(zip(K1 + MERGE + K2, compile_facts.resources_many(K1 + MERGE + K2)))


def test_kernel1_and_merge_compile_everywhere_without_spills(compiled):
    for job in K1 + MERGE:
        r = compiled[job]
        assert "error" not in r, (job[:2], r)
        assert r["spill"] == 0 and r["shared"] <= CARDS[job[1]][1], (job, r)


@pytest.mark.parametrize("cap", NEWER)
def test_kernel2_tile_choice(cap, compiled):
    limits = CARDS[cap][1:]
    for dt, D, V, flags in K2_CASES:
        tile, r = choose_tile(cap, limits, dt, D, V, **flags)  # from the batch: no compiles here
        assert programs_per_sm(r, tile[3], limits) >= 1 and r["pipelined"], (cap, dt, r)
        if dt == f32:  # exact float32 dots: no tensor cores, so `auto` takes the chunked path (cuBLAS + kernel 1)
            assert r["tensor_cores"] == "none", (cap, r)
        else:
            assert r["tensor_cores"] != "none", (cap, dt, r)
            assert r["spill"] == 0, (cap, dt, tile, r)


def test_t4_dot_runs_on_cuda_cores(compiled):
    "The fact behind dispatch sending the T4 to the chunked path: Triton gives kernel 2's dot no tensor cores there."
    for t in K2_TILES:
        r = compiled[compile_facts.linear_ce_job((7, 5), t, f16, 1536, 151936)]
        assert "error" not in r and r["tensor_cores"] == "none" and r["spill"] > 0, r


def test_default_tiles_per_card(compiled):
    "The H100 keeps the default tile; the A100 takes the first that does not spill; the T4 the fewest spilled bytes."
    chosen = {cap: choose_tile(cap, CARDS[cap][1:])[0] for cap in NEWER}
    assert chosen[(9, 0)] == K2_TILES[0] and chosen[(8, 0)] == K2_TILES[1], chosen
    t4 = [compiled[compile_facts.linear_ce_job((7, 5), t, f16, 1536, 151936)]["spill"] for t in K2_TILES]
    assert choose_tile((7, 5), CARDS[(7, 5)][1:], f16)[0] == K2_TILES[t4.index(min(t4))]


def test_two_programs_per_sm_on_h100(compiled):
    for t in TWO_PER_SM:
        r = compiled[compile_facts.linear_ce_job((9, 0), t, bf16, 1536, 151936)]
        assert (programs_per_sm(r, t[3], CARDS[(9, 0)][1:]), r["spill"], r["tensor_cores"]) == (2, 0, "wgmma"), (t, r)


def test_h100_epilogue_instructions(compiled):
    "Per logit, one FFMA and one exp2: the scale folds into the exponent, the column mask only on the last tile."
    r = compiled[SASS]
    assert (r["tensor_cores"], r["pipelined"], r["spill"], r["shared"]) == ("wgmma", True, 0, 3 * (128 + 256) * 64 * 2)
    ops, per_thread = r["sass"], 128 * 256 // 256  # logits per thread per tile; the tile's code appears twice
    assert ops["FFMA"] >= 2 * per_thread and ops["MUFU.EX2"] >= 2 * per_thread, ops
    assert ops.get("FMUL", 0) < 16 and ops.get("FSEL", 0) <= per_thread + 16, ops  # no multiply; one select per tile


def test_the_saved_launch_table_is_what_the_compiler_says_now(compiled):
    """The package's launch table (written by `python -m ifd_nb.bench.tile_facts --table`) holds, for the launches
    compiled here, the tile `pick_tile` chooses from this Triton's facts: a Triton upgrade that moves a tile fails
    here, and the table is written again."""
    rows = launch_table()["rows"]
    for cap in NEWER:
        for dt, D, V, flags in [c for c in K2_CASES if c[2] % 16 == 0]:  # V compiled as the table's rows are
            tile, r = choose_tile(cap, CARDS[cap][1:], dt, D, V, **flags)
            row = rows[table_key(cap, dt, D % 64 == 0, flags.get("bias", False), flags.get("softcap", False))]
            assert (tuple(row["tile"]), row["facts"]["tensor_cores"]) == (tile, r["tensor_cores"]), (cap, dt, row)
