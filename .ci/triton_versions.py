"""Compile ifd_nb's kernels with other Triton versions, for several GPU architectures, on a machine without a GPU.

    python .ci/triton_versions.py 3.0.0 3.3.1 3.6.0        # downloads each wheel once into /tmp/triton-<version>

Each (version, architecture, kernel) compiles in its own process: Triton is put first on sys.path, its active driver
is replaced by a stand-in that reports the target architecture, and `kernel.warmup` compiles exactly what a launch
with those arguments would (16-byte-aligned tensors, sizes divisible by 16 marked as such), without launching.
Prints one line per version and architecture: OK or the error, per kernel form. Not run by CI (it downloads ~650 MB
per version); its findings are in nbs/03_kernels.ipynb.
"""
import os, subprocess, sys

JOBS = ["k2 default", "k2 bias+softcap fp32", "k2 flatten", "merge", "k1"]
ARCHS = [90, 80, 75]

CHILD = r'''
import sys, torch, triton
from triton.backends.compiler import GPUTarget
from ifd_nb import kernels as K
arch, name = int(sys.argv[1]), sys.argv[2]
class StandIn:  # the one thing a warm-up asks the driver: which device, stream and target
    def get_current_device(self): return 0
    def get_current_stream(self, device=None): return 0
    def get_current_target(self): return GPUTarget("cuda", arch, 32)
triton.runtime.driver.set_active(StandIn())
lo = torch.float16 if arch < 80 else torch.bfloat16  # no bf16 before Ampere
f32, i32, i64 = torch.float32, torch.int32, torch.int64
k2 = lambda dt, V, D, **c: (K._lce_partial_kernel, (dt, dt, dt, f32, 4096, V, D, D, D, -(-V // 1024) * 256, 32, 4, 32, 1.0, 1.0), c)
jobs = {
    "k2 default": k2(lo, 151936, 1536, BLOCK_R=128, BLOCK_V=256, BLOCK_D=64, EVEN_D=True, HAS_BIAS=False, SOFTCAP=False,
                     DOT_FP32=False, IEEE=False, FLATTEN=False, num_warps=8, num_stages=3),
    "k2 bias+softcap fp32": k2(f32, 50257, 768, BLOCK_R=64, BLOCK_V=128, BLOCK_D=64, EVEN_D=True, HAS_BIAS=True,
                               SOFTCAP=True, DOT_FP32=False, IEEE=True, FLATTEN=False, num_warps=4, num_stages=3),
    "k2 flatten": k2(lo, 151936, 1536, BLOCK_R=128, BLOCK_V=256, BLOCK_D=64, EVEN_D=True, HAS_BIAS=False, SOFTCAP=False,
                     DOT_FP32=False, IEEE=False, FLATTEN=True, num_warps=8, num_stages=3),
    "merge": (K._lce_merge_kernel, (f32, lo, lo, lo, i64, f32, 4096, 1536, 1536, 1536, 4, 1.0, 30.0, i32, i64, i32, i32,
              f32, i32, -100), dict(SPLIT_P2=4, BLOCK_D=1024, BLOCK_S=256, HAS_BIAS=True, SOFTCAP=True, HAS_SEG=True, num_warps=4)),
    "k1": (K._ce_logits_kernel, (lo, 151936, i64, f32, 151936, i32, i64, i32, i32, f32, i32, -100),
           dict(BLOCK_V=2048, BLOCK_S=256, HAS_SEG=True, num_warps=8)),
}
kernel, args, kw = jobs[name]
kernel.warmup(*args, grid=(1,), **kw)
print("OK")
'''


def main(versions):
    for v in versions:
        target = f"/tmp/triton-{v}"
        if not os.path.isdir(target):
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, f"triton=={v}"], check=True)
        env = {k: x for k, x in os.environ.items() if k != "TRITON_INTERPRET"} | {"PYTHONPATH": target}
        for arch in ARCHS:
            res = []
            for name in JOBS:
                r = subprocess.run([sys.executable, "-c", CHILD, str(arch), name], capture_output=True, text=True, env=env)
                ok = r.returncode == 0 and r.stdout.strip().endswith("OK")
                err = [l for l in r.stderr.splitlines() if "Error" in l or "ERROR" in l]
                res.append(f"{name}: " + ("OK" if ok else "FAIL (" + (err[-1] if err else f"exit {r.returncode}")[:90] + ")"))
            print(f"triton {v} sm_{arch}: " + "; ".join(res), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["3.0.0", "3.3.1", "3.6.0", "3.9.0"])
