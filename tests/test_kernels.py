"""The kernels' entry points against float64, over the shapes, dtypes, logit options and segment layouts a model
brings: through Triton's interpreter on a CPU (`TRITON_INTERPRET=1`, set by conftest), compiled on a GPU.

Each case draws fresh inputs, poisons the output buffer with NaN (a row no program wrote fails), and compares with
the float64 cross-entropy of the same (rounded) inputs. Tolerances: 1e-4 with float32 inputs (float32 accumulation
only); 2e-3 with bfloat16/float16 operands (on a GPU the tensor-core dot rounds its inputs' products' sums to
float32 in another order). Vocabulary sizes are odd and none is a multiple of a tile; hidden sizes include ones that
no D step divides."""
import itertools, sys
import pytest
import torch

from ifd_nb.kernels.segments import HAS_TRITON, random_segments
from ifd_nb.kernels.launch import CARDS, LINEAR_CE_TILES, interpreting, linear_ce_plan
from ifd_nb.kernels.dispatch import linear_ce_chunked, linear_cross_entropy, token_cross_entropy
from ifd_nb.kernels.linear_ce import linear_ce_triton
from ifd_nb.ce import ce_reference as reference  # the lesson's float64 reference
from ifd_nb.kernels.torch_paths import apply_logit_transforms

pytestmark = pytest.mark.skipif(not (HAS_TRITON and (interpreting() or torch.cuda.is_available())),
                                reason="needs Triton: a CUDA GPU or TRITON_INTERPRET=1")
DEV = "cuda" if torch.cuda.is_available() and not interpreting() else "cpu"
VOCABS = (1, 63, 257, 1999, 4099)  # odd; none a multiple of a tile's 64, 128 or 256 words
HIDDEN = (24, 64, 96)  # 24 and 96: no 64-wide D step divides them
DTYPES = (torch.float32, torch.bfloat16)
OPTIONS = (dict(), dict(bias=True), dict(bias=True, logit_scale=0.0625, softcap=30.0))


def tol(dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 2e-3


def inputs(V, D, dtype, n_samples=3, segments=True, g=None):
    "Hidden states, weight, targets (every fifth ignored) and segments (one empty) of both passes of `n_samples`."
    seg, n = random_segments(n_samples, max_len=7, empty=1, g=g)
    R = len(seg)
    h = torch.randn(R, D, generator=g).to(dtype)
    w = (torch.randn(V, D, generator=g) / D**0.5).to(dtype)
    t = torch.randint(0, V, (R,), generator=g); t[::5] = -100
    to = lambda x: x.to(DEV)
    return to(h), to(w), to(t), (to(seg), n) if segments else (None, None)


def check(loss, ssum, scnt, ref, t, seg, n, dtype):
    torch.testing.assert_close(loss.double(), ref, rtol=tol(dtype), atol=tol(dtype))
    if seg is None: return
    rsum = torch.zeros(n, dtype=torch.float64, device=ref.device).index_add_(0, seg, ref)
    torch.testing.assert_close(ssum.double(), rsum, rtol=tol(dtype), atol=tol(dtype) * 10)
    cnt = torch.zeros(n, dtype=torch.long, device=ref.device).index_add_(0, seg, (t != -100).long())
    assert scnt.long().tolist() == cnt.tolist()


LINEAR_CASES = [(V, D, dt, OPTIONS[i % 3], i % 2 == 0)
                for i, (V, D, dt) in enumerate(itertools.product(VOCABS, HIDDEN, DTYPES))]


@pytest.mark.parametrize("V,D,dtype,options,with_segments", LINEAR_CASES)
def test_linear_cross_entropy(V, D, dtype, options, with_segments):
    g = torch.Generator().manual_seed(V * 1000 + D)
    h, w, t, (seg, n) = inputs(V, D, dtype, segments=with_segments, g=g)
    b = torch.randn(V, generator=g).to(dtype).to(DEV) if options.get("bias") else None
    scale, softcap = options.get("logit_scale", 1.0), options.get("softcap")
    ref = reference(apply_logit_transforms(h.double() @ w.double().T, None if b is None else b.double(), scale,
                                           softcap), t)
    out = torch.full((len(t),), float("nan"), device=DEV)
    got = linear_cross_entropy(h, w, t, seg, n, bias=b, logit_scale=scale, softcap=softcap, out=out,
                               backend="triton")
    check(*got, ref, t, seg, n, dtype)


TOKEN_CASES = list(itertools.product(VOCABS, (torch.float32, torch.bfloat16, torch.float16), (True, False)))


@pytest.mark.parametrize("V,dtype,with_segments", TOKEN_CASES)
def test_token_cross_entropy(V, dtype, with_segments):
    g = torch.Generator().manual_seed(V)
    seg, n = random_segments(4, max_len=5, empty=2, g=g) if with_segments else (None, None)
    R = len(seg) if with_segments else 9
    logits = (torch.randn(R, V, generator=g) * 8).to(dtype).to(DEV)
    t = torch.randint(0, V, (R,), generator=g).to(DEV); t[1::4] = -100
    seg = seg.to(DEV) if with_segments else None
    out = torch.full((R,), float("nan"), device=DEV)
    got = token_cross_entropy(logits, t, seg, n, out=out, backend="triton")
    check(*got, reference(logits, t), t, seg, n, torch.float32)  # the logits are given: no rounding of a product


@pytest.mark.parametrize("cap", sorted(CARDS))
def test_every_card_s_table_tile_gives_the_same_losses(cap):
    "The tile each card's table row names, run through the interpreter (compiled on a GPU), with several slices."
    h, w, t, (seg, n) = inputs(1999, 96, torch.float32, g=torch.Generator().manual_seed(7))
    plan = linear_ce_plan(DEV, torch.float32, 96, capability=cap)
    assert plan.source == "table" and plan.tile in LINEAR_CE_TILES
    ref = reference(h.double() @ w.double().T, t)
    check(*linear_ce_triton(h, w, t, seg, n, plan=plan, n_split=3), ref, t, seg, n, torch.float32)


@pytest.mark.parametrize("n_split,group_rows,flatten", [(1, None, False), (3, 2, False), (5, 1, True), (2, 1000, False)])
def test_program_orders_and_slices(n_split, group_rows, flatten):
    "Every (row block, slice) is computed exactly once whatever the slice count and program grouping."
    h, w, t, (seg, n) = inputs(4099, 40, torch.bfloat16, n_samples=6, g=torch.Generator().manual_seed(n_split))
    ref = reference(h.double() @ w.double().T, t)
    got = linear_ce_triton(h, w, t, seg, n, n_split=n_split, group_rows=group_rows, flatten=flatten)
    check(*got, ref, t, seg, n, torch.bfloat16)


def test_chunked_path_equals_the_rounded_logits_cross_entropy():
    h, w, t, (seg, n) = inputs(1999, 64, torch.bfloat16, g=torch.Generator().manual_seed(3))
    got = linear_ce_chunked(h, w, t, seg, n, budget_bytes=3 * 1999 * 2)  # three rows a chunk
    zr = torch.cat([h[k:k + 3] @ w.T for k in range(0, len(h), 3)])  # the logits as the chunks round them
    check(*got, reference(zr, t), t, seg, n, torch.float32)


@pytest.mark.skipif(not interpreting(), reason="on a GPU the compiled launch itself uses these Triton internals")
def test_the_fused_kernel_launches_without_the_private_compiler_api(monkeypatch):
    """Triton's private compile API made to fail (as a Triton release may change it): the launch reads its table,
    never the compiler, and gives the same losses to 1e-5 in float32."""
    import triton.runtime.jit as jit
    h, w, t, (seg, n) = inputs(1999, 64, torch.float32, g=torch.Generator().manual_seed(11))
    plan = linear_ce_plan(DEV, torch.float32, 64, capability=(9, 0))
    before = linear_ce_triton(h, w, t, seg, n, plan=plan)
    for name in ("create_function_from_signature", "MockTensor"):
        monkeypatch.delattr(jit, name, raising=False)
    monkeypatch.setitem(sys.modules, "triton._utils", None)  # importing it now fails
    monkeypatch.setitem(sys.modules, "triton.compiler", None)
    from ifd_nb.bench import compile_facts
    def broken(*a, **k): raise AttributeError("Triton's compile API changed")
    monkeypatch.setattr(compile_facts, "resources_here", broken)
    monkeypatch.setattr(compile_facts, "resources_many", broken)
    plan_now = linear_ce_plan(DEV, torch.float32, 64, capability=(9, 0))
    assert plan_now == plan and plan.source == "table"
    after = linear_ce_triton(h, w, t, seg, n, plan=plan_now)
    for a, b in zip(before, after): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    ref = reference(h.double() @ w.double().T, t)
    check(*after, ref, t, seg, n, torch.float32)
    check(*linear_cross_entropy(h, w, t, seg, n, backend="triton"), ref, t, seg, n, torch.float32)


def test_a_card_without_a_table_row_is_said_once_in_one_line(capsys):
    from ifd_nb.kernels import launch
    launch._SAID.clear()
    for _ in range(3): assert linear_ce_plan(DEV, torch.bfloat16, 64, capability=(8, 7)).source == "trial"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no row '8.7 bfloat16" in err[0] and "tried largest first" in err[0], err
    launch._SAID.clear()


def test_the_package_asks_no_compiler_at_run_time():
    "No module of the package outside the benchmark wing names Triton's private compile API or imports the wing."
    from pathlib import Path
    pkg = Path(__file__).resolve().parent.parent / "ifd_nb"
    private = ("create_function_from_signature", "MockTensor", "_pack_args", "triton._utils", "triton.compile(",
               "ASTSource", "make_backend", "compile_facts")
    for p in pkg.rglob("*.py"):
        if "bench" in p.parts or p.name == "_modidx.py": continue
        text = p.read_text()
        assert not [s for s in private if s in text], (p, [s for s in private if s in text])
