"""``python -m bench``: throughput of scdiff's trainer and sampler, and the atlas memory check.

Examples
--------
python -m bench                                   # CPU, fp32 and bf16, default network
python -m bench --nets default additive           # what the additive path costs, same run
python -m bench --device cuda --cells 200000 --batch 4096 --sample-cells 65536
python -m bench --atlas 1000000 --skip-throughput  # 1M-cell backed train + streamed sampling
python -m bench --many 250000 --skip-throughput    # 4 files of 250k cells out of core vs in memory
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--cells", type=int, default=20000, help="synthetic training cells")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--types", type=int, default=10, help="cell types (the condition)")
    p.add_argument("--density", type=float, default=0.1, help="non-zero fraction, as in counts")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=60, help="steps per timed training run")
    p.add_argument("--sample-cells", type=int, default=1024)
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--nets", nargs="+", choices=["default", "additive", "reference", "wide"],
                   default=["default"],
                   help="default: as ConditionalDiffusion builds it for one attribute; additive: "
                        "with the additive path it gets with two or more; reference: width 512, "
                        "depth 4; wide: width 1024, depth 6")
    p.add_argument("--compile", action="store_true",
                   help="also each precision compiled as the trainer compiles it (compile=True: "
                        "torch.compile, with CUDA graphs on a GPU; training rows)")
    p.add_argument("--repeats", type=int, default=2, help="alternations of trainer and bare loop")
    p.add_argument("--markdown", help="append the tables to this file")
    p.add_argument("--atlas", type=int, default=0,
                   help="also train backed on, and sample, this many synthetic cells")
    p.add_argument("--atlas-dir", default="/tmp/scdiff-atlas")
    p.add_argument("--atlas-sampling", default="ddim:2,unipc:10",
                   help="sampler:steps,... the atlas is sampled with (each adds two passes over "
                        "the cells: the network alone, then end to end)")
    p.add_argument("--many", type=int, default=0,
                   help="also train out of core on 4 files of this many cells each, against one "
                        "file in memory")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out: list[str] = []
    if not args.skip_throughput:
        from bench import _throughput as tp

        device = torch.device(args.device)
        out.append(f"machine: {tp.machine()}")
        print(out[-1], flush=True)
        choices = {"default": ("default network (width 256, depth 3)", tp.DEFAULT_NET),
                   "additive": ("default network with the additive path (two or more attributes)",
                                {**tp.DEFAULT_NET, "additive": True}),
                   "reference": ("reference size (width 512, depth 4)",
                                 {**tp.DEFAULT_NET, "width": 512, "depth": 4}),
                   "wide": ("wide network (width 1024, depth 6)",
                            {**tp.DEFAULT_NET, "width": 1024, "depth": 6})}
        nets = [choices[name] for name in args.nets]
        measured = []
        for title, net_kw in nets:
            rows = []
            for precision in args.precision:
                for compile_net in (False, True) if args.compile else (False,):
                    rows.append(tp.measure(
                        device=device, precision=precision, n_cells=args.cells,
                        n_genes=args.genes, n_types=args.types, density=args.density,
                        batch=args.batch, steps=args.steps, sample_cells=args.sample_cells,
                        sample_steps=args.sample_steps, net_kw=net_kw, repeats=args.repeats,
                        compile_net=compile_net))
                    print(f"  measured {title} {rows[-1].precision}", file=sys.stderr, flush=True)
            full = (f"{title}, {args.genes} genes, batch {args.batch}, {args.device}, "
                    f"{args.cells:,} cells")
            out.append(tp.table(rows, title=full, sample_steps=args.sample_steps))
            print("\n" + out[-1] + "\n", flush=True)
            measured.append((title, rows))
        if len(measured) > 1:
            out.append(tp.net_ratios(measured))
            print(out[-1] + "\n", flush=True)
    if args.atlas:
        from bench import _atlas

        samplings = [(x.split(":")[0], int(x.split(":")[1])) for x in args.atlas_sampling.split(",")]
        out.append(_atlas.run(args.atlas, args.genes, args.density, args.atlas_dir,
                              samplings=samplings))
        print("\n" + out[-1] + "\n", flush=True)
    if args.many:
        from bench import _many

        out.append(_many.run(args.many, args.genes, args.density, args.atlas_dir))
        print("\n" + out[-1] + "\n", flush=True)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write("\n\n".join(out) + "\n")


if __name__ == "__main__":
    main()
