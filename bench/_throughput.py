"""Training and sampling throughput of scdiff against a bare PyTorch loop and the matmul peak.

Every figure is measured in the same process, one after the other, because shared
machines are noisy: the matmul peak, the trainer, the same network in a bare loop
(same fused AdamW, same autocast, no EMA, clipping, schedule or logging), and CFG
sampling next to one forward pass of the stacked batch. Each rate is the best window
of ``WINDOW`` steps (other jobs on shared cores only ever slow a window down), and
the trainer and the bare loop alternate.
"""

from __future__ import annotations

import contextlib
import copy
import resource
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

# pure torch: these load on a machine without anndata (scdiff imports its names lazily)
from scdiff import train
from scdiff.diffusion import Guidance, NoiseSchedule, sample_loop
from scdiff.nn import ConditionalMLP

#: The network ConditionalDiffusion builds by default (tests/test_bench.py keeps them equal).
DEFAULT_NET = {"width": 256, "depth": 3, "dropout": 0.1, "dose_encoder": "sigmoid"}
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
WINDOW = 10


def _best_rate(stamps: list[tuple[int, float]], cells_per_step: int) -> float:
    """Cells/s of the fastest window between consecutive (step, time) stamps."""
    return max((s1 - s0) * cells_per_step / (t1 - t0)
               for (s0, t0), (s1, t1) in zip(stamps, stamps[1:], strict=False))


@dataclass
class Row:
    precision: str
    peak_tflops: float
    trainer_cells_s: float
    bare_cells_s: float
    train_gflop_per_cell: float
    sample_cells_s: float
    cfg_cost: float  # one guided step / one forward pass of the stacked batch
    sample_fraction: float
    peak_mem_gib: float

    @property
    def ratio(self) -> float:
        return self.trainer_cells_s / self.bare_cells_s

    def fraction(self, cells_s: float) -> float:
        return cells_s * self.train_gflop_per_cell * 1e9 / (self.peak_tflops * 1e12)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Dense matmul FLOP/s: the best of several timed square products."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best, reps = 0.0, 1
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        dt = time.perf_counter() - t0
        best = max(best, 2 * n**3 * reps / dt)
        reps = min(reps * 2, 64) if dt < 0.05 else reps
    return best


def synthetic(n_cells: int, n_genes: int, n_types: int, density: float, seed: int = 0):
    """Standardised expression of a sparse atlas slice, as CellTensors on the host."""
    g = torch.Generator().manual_seed(seed)
    types = torch.randint(0, n_types, (n_cells,), generator=g)
    mask = torch.rand(n_cells, n_genes, generator=g) < density
    x = torch.where(mask, torch.rand(n_cells, n_genes, generator=g) * 4, 0.0)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-2)
    return train.CellTensors(x, types[:, None], torch.zeros(n_cells, 0))


def train_flops(net, batch: int, device: torch.device, dtype) -> float:
    """FLOPs of one forward and backward pass at ``batch`` cells."""
    net = copy.deepcopy(net).to(device)
    x = torch.randn(batch, net.n_genes, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    cats = torch.zeros(batch, len(net.n_categories), dtype=torch.long, device=device)
    doses = torch.zeros(batch, net.n_doses, device=device)
    with FlopCounterMode(display=False) as counter, _amp(device, dtype):
        net(x, t, cats, doses).float().pow(2).mean().backward()
    return float(counter.get_total_flops())


def _amp(device, dtype):
    return (torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None
            else contextlib.nullcontext())


def _maybe_compile(net, compile_net: bool, device: torch.device):
    """The bare loop's network compiled as the trainer compiles it (CUDA graphs on a GPU)."""
    return train.compile_network(net, device) if compile_net else net


def time_trainer(net, data, schedule, device, precision: str, batch: int, steps: int,
                 compile_net: bool = False) -> float:
    """Cells/s of scdiff's Trainer in steady state (its best window between two logs)."""
    stamps: list[tuple[int, float]] = []

    def on_log(step: int, row: dict) -> None:
        _sync(device)
        stamps.append((step, time.perf_counter()))

    cfg = train.TrainConfig(steps=steps, batch_size=batch, precision=precision,
                            log_every=WINDOW, warmup_steps=10, compile=compile_net)
    train.Trainer(cfg, schedule, device).fit(copy.deepcopy(net), data, on_log=on_log)
    return _best_rate(stamps, batch)


def time_bare(net, data, schedule, device, dtype, batch: int, steps: int,
              compile_net: bool = False) -> float:
    """Cells/s of the same network in a bare loop: gather, noise, forward, backward, AdamW."""
    net = _maybe_compile(copy.deepcopy(net).to(device).train(), compile_net, device)
    data = data.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    n, T = len(data), schedule.num_timesteps
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    stamps = []
    for step in range(steps + 1):
        if step % WINDOW == 0:  # the same synchronisation as the trainer's log
            _sync(device)
            stamps.append((step, time.perf_counter()))
        if step == steps:
            break
        idx = torch.randint(0, n, (batch,), device=data.x.device)
        x0, cats, doses = data.x[idx], data.cats[idx], data.doses[idx]
        x0, cats, doses = x0.to(device), cats.to(device), doses.to(device)
        t = torch.randint(0, T, (batch,), device=device)
        noise = torch.randn_like(x0)
        with _amp(device, dtype):
            out = net(schedule.add_noise(x0, noise, t), t, cats, doses)
        loss = torch.nn.functional.mse_loss(out.float(), schedule.target(x0, noise, t))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return _best_rate(stamps[1:], batch)


def time_sampling(net, schedule, device, dtype, n: int, steps: int) -> tuple[float, float, float]:
    """(cells/s of DDIM with CFG, guided step / stacked forward, sampling FLOP/s).

    Step times are the fastest of the run, for the guided loop and the plain forward alike.
    """
    net = copy.deepcopy(net).to(device).eval()
    cats = torch.randint(0, net.n_categories[0], (n, 1), device=device)
    doses = torch.zeros(n, 0, device=device)
    guide = Guidance(("cell_type",), 2.0)  # two passes: conditional and unconditional
    gen = torch.Generator(device=device).manual_seed(0)
    kw = dict(guidance=guide, eta=0.0, generator=gen, autocast_dtype=dtype)
    sample_loop(net, schedule, cats, doses, steps=2, **kw)  # warm-up
    stamps = [time.perf_counter()]

    def on_step() -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    _sync(device)
    stamps[0] = time.perf_counter()
    sample_loop(net, schedule, cats, doses, steps=steps, on_step=on_step, **kw)
    per_step = float(np.min(np.diff(stamps)))
    x2 = torch.randn(2 * n, net.n_genes, device=device)
    t2 = torch.full((2 * n,), 500, device=device)
    c2, d2 = torch.cat([cats, cats]), torch.cat([doses, doses])
    with torch.no_grad(), _amp(device, dtype):
        net(x2, t2, c2, d2)
        fwd = float("inf")
        for _ in range(steps):
            _sync(device)
            t0 = time.perf_counter()
            net(x2, t2, c2, d2)
            _sync(device)
            fwd = min(fwd, time.perf_counter() - t0)
        with FlopCounterMode(display=False) as counter:
            net(x2, t2, c2, d2)
    return n / (per_step * steps), per_step / fwd, counter.get_total_flops() / per_step


def _peak_mem_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(*, device: torch.device, precision: str, n_cells: int, n_genes: int, n_types: int,
            density: float, batch: int, steps: int, sample_cells: int, sample_steps: int,
            net_kw: dict, repeats: int = 2, compile_net: bool = False) -> Row:
    """One row of the table: peak, trainer, bare loop (best of ``repeats`` each), sampling."""
    dtype = DTYPES[precision]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    peak = matmul_peak(device, dtype or torch.float32)
    data = synthetic(n_cells, n_genes, n_types, density)
    torch.manual_seed(0)
    net = ConditionalMLP(n_genes, n_categories=[n_types], n_doses=0, **net_kw)
    schedule = NoiseSchedule(1000, "cosine", "v")
    trainer = bare = 0.0
    for _ in range(repeats):  # alternate, so drifting load hits both alike
        trainer = max(trainer, time_trainer(net, data, schedule, device, precision, batch, steps,
                                            compile_net))
        bare = max(bare, time_bare(net, data, schedule, device, dtype, batch, steps, compile_net))
    flops = train_flops(net, batch, device, dtype) / batch
    peak = max(peak, matmul_peak(device, dtype or torch.float32))  # the best of two
    cells_s, cfg_cost, sample_flops = time_sampling(net, schedule, device, dtype, sample_cells,
                                                    sample_steps)
    name = precision + (" compiled" if compile_net else "")
    return Row(name, peak / 1e12, trainer, bare, flops / 1e9, cells_s, cfg_cost,
               sample_flops / peak, _peak_mem_gib(device))


def table(rows: list[Row], *, title: str, sample_steps: int = 50) -> str:
    """The rows as a GitHub markdown table (``sample_steps``: the DDIM steps that were timed)."""
    head = ("| precision | matmul peak TFLOP/s | trainer cells/s | bare loop cells/s | "
            "trainer / bare | trainer % of peak | bare % of peak | sampling cells/s "
            f"(DDIM {sample_steps}, CFG) | CFG step / stacked forward | sampling % of peak | "
            "peak memory GiB |")
    lines = [f"**{title}**", "", head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r.precision} | {r.peak_tflops:.3f} | {r.trainer_cells_s:,.0f} | "
            f"{r.bare_cells_s:,.0f} | {r.ratio:.2f} | {100 * r.fraction(r.trainer_cells_s):.0f}% | "
            f"{100 * r.fraction(r.bare_cells_s):.0f}% | {r.sample_cells_s:,.0f} | {r.cfg_cost:.2f} | "
            f"{100 * r.sample_fraction:.0f}% | {r.peak_mem_gib:.2f} |")
    return "\n".join(lines)


def net_ratios(measured: list[tuple[str, list[Row]]]) -> str:
    """Each network's training and sampling speed against the first one's, precision by
    precision, from one run (so the same load)."""
    (ref_title, ref_rows), rest = measured[0], measured[1:]
    ref = {r.precision: r for r in ref_rows}
    lines = [f"**against the {ref_title}** (ratios of cells/s, from this run)", "",
             "| network | precision | trainer | sampling |", "|---|---|---|---|"]
    for title, rows in rest:
        for r in rows:
            base = ref.get(r.precision)
            if base is not None:
                lines.append(f"| {title} | {r.precision} | {r.trainer_cells_s / base.trainer_cells_s:.2f} "
                             f"| {r.sample_cells_s / base.sample_cells_s:.2f} |")
    return "\n".join(lines)


def machine() -> str:
    """A one-line description of where this ran."""
    import platform

    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name()
    else:
        dev = platform.processor() or platform.machine()
        with contextlib.suppress(OSError):
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    dev = line.split(":", 1)[1].strip()
                    break
    return (f"{dev}; {torch.get_num_threads()} threads; torch {torch.__version__}; "
            f"numpy {np.__version__}")
