"""`xai-course`: the course's command line.

    xai-course lab                  open the course in JupyterLab (localhost, with a token)
    xai-course train NAME           retrain an embedded model with its own script
    xai-course fetch-weights NAME   download torchvision's ImageNet weights (needs internet)
    xai-course bench CHAPTER        our time vs the reference's, ratio and max |difference|
    xai-course bench explorers      seconds to each explorer's first and final picture
    xai-course bench notebooks      seconds each chapter notebook takes to run top to bottom
    xai-course present CHAPTER      a chapter as a standalone page for a projector (Voila)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def _lab(args) -> int:
    notebooks = Path(args.notebooks)
    if not notebooks.is_dir():
        print(f"no notebooks folder at {notebooks}; pass --notebooks PATH", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "jupyter", "lab", "--ip=127.0.0.1",
               f"--notebook-dir={notebooks}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Docker, many lab machines
        command.append("--allow-root")  # Jupyter refuses to start as root without it
    return subprocess.call(command)


def _train(args) -> int:
    from . import zoo

    _, score = zoo.train(args.name, save=not args.no_save)
    spec = zoo.model_info(args.name)
    what = ("samples the classifier is confident about (p > 0.9)" if spec.generator
            else f"test accuracy of {spec.explains} through the bottleneck" if spec.explains
            else "test accuracy")
    print(f"{args.name}: {what} {score:.4f}")
    return 0


def _fetch(args) -> int:
    from .zoo import imagenet

    path = imagenet.fetch_weights(args.name)
    print(f"{args.name}: weights cached at {path}")
    return 0


def _bench(args) -> int:
    import torch

    from . import bench, zoo

    device = torch.device(args.device) if args.device else zoo.default_device()
    print(f"xai-course bench {args.chapter} on {device} ({torch.get_num_threads()} threads)")
    if args.chapter == "explorers":
        return 0 if bench.explorer_times(device, only=args.only) else 2
    if args.chapter == "notebooks":
        return 0 if bench.notebook_times(args.notebooks, only=args.only) else 2
    cases = bench.CHAPTERS[args.chapter](device, quick=args.quick)
    if args.only:
        cases = [case for case in cases if args.only in case.name]
        if not cases:
            print(f"no case of {args.chapter} has {args.only!r} in its name")
            return 2
    bench.run(cases, repeat=args.repeat)
    return 0


def _present(args) -> int:
    from .present import present

    return present(args.chapter, Path(args.notebooks), port=args.port,
                   open_browser=not args.no_browser)


def _roar(args) -> int:
    import concurrent.futures
    import time

    from . import evaluation

    out = args.out or evaluation.RESULTS
    start = time.perf_counter()
    if args.workers > 1:
        with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
            tables = evaluation.canvas_sweeps(args.seeds, pool, out)
    else:
        tables = evaluation.canvas_sweeps(args.seeds, None, out)
    for sweep, table in tables.items():
        means = table.groupby(["estimator", "fraction"], sort=False)["accuracy"].mean()
        print(f"\n{sweep}: test accuracy, mean over seeds\n"
              + means.unstack("fraction").round(3).to_string())
    print(f"\n{time.perf_counter() - start:.0f} s with {args.workers} worker(s); "
          f"tables in {out}")
    return 0


def main(argv=None) -> int:
    from . import bench, zoo

    parser = argparse.ArgumentParser(prog="xai-course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    lab = commands.add_parser("lab", help="open the course in JupyterLab")
    lab.add_argument("--notebooks", default="notebooks")
    lab.set_defaults(run=_lab)

    train = commands.add_parser("train", help="retrain an embedded model")
    train.add_argument("name", choices=[m for m in zoo.models() if zoo.model_info(m).train])
    train.add_argument("--no-save", action="store_true", help="train and report, keep weights")
    train.set_defaults(run=_train)

    fetch = commands.add_parser("fetch-weights", help="download ImageNet weights")
    fetch.add_argument("name", choices=[m for m in zoo.models() if zoo.model_info(m).load])
    fetch.set_defaults(run=_fetch)

    bench_cmd = commands.add_parser("bench", help="time ours against the reference")
    bench_cmd.add_argument("chapter", choices=[*bench.CHAPTERS, *bench.WAITING],
                           type=lambda name: name.replace("-", "_"),
                           help="a chapter: ours against the reference; explorers, notebooks: "
                                "how long a student waits for a picture, for Run All")
    bench_cmd.add_argument("--device", default=None, help="cpu or cuda (default: cuda if any)")
    bench_cmd.add_argument("--repeat", type=int, default=5,
                           help="timed runs a side, alternating; their medians are compared")
    bench_cmd.add_argument("--quick", action="store_true", help="embedded models only")
    bench_cmd.add_argument("--only", default=None, metavar="TEXT",
                           help="only the cases whose name contains TEXT, e.g. 'resnet18'")
    bench_cmd.add_argument("--notebooks", default="notebooks",
                           help="the chapter notebooks' folder (bench notebooks)")
    bench_cmd.set_defaults(run=_bench)

    roar = commands.add_parser("roar", help="the shipped ROAR, KAR and no-retraining sweeps "
                               "on cluttered-digits (resumes an interrupted run)")
    roar.add_argument("--workers", type=int, default=1, help="processes running the jobs")
    roar.add_argument("--seeds", type=int, default=2, help="ROAR's seeds (KAR: one)")
    roar.add_argument("--out", default=None, help="the tables' folder (default: the course's)")
    roar.set_defaults(run=_roar)

    present = commands.add_parser("present", help="a chapter in Voila, for a projector")
    present.add_argument("chapter", help="number, name or notebook: 03, cam, 03_cam.ipynb")
    present.add_argument("--notebooks", default="notebooks")
    present.add_argument("--port", type=int, default=8866)
    present.add_argument("--no-browser", action="store_true", help="only print the address")
    present.set_defaults(run=_present)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, RuntimeError) as error:  # a clear message, not a traceback
        print(f"xai-course {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
