"""`python -m trainer --config FILE --seed 3 --out runs/RUN_ID [--any-config-key VALUE ...]`

Exit codes: 0 completed; 1 uncaught exception; 2 bad command line or config (or a run that cannot
start as configured: another run's checkpoint in --out, no CUDA); 3 diverged (a NaN or infinite
loss, gradient norm or validation MSE); 128 + signal number when interrupted (SIGTERM: 143) after
saving last.pt for a resume.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

from trainer import config as C

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_NAN = 0, 1, 2, 3


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    """Known flags (--config, --out, --git-sha) plus `--key value` / `--key=value` config overrides."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON config file (keys as in docs/trainer.md)")
    parser.add_argument("--out", help="run directory (default runs/<config>-seed<seed>-<time>)")
    parser.add_argument("--git-sha", "--git_sha", dest="git_sha", help="recorded in metrics.json")
    parser.add_argument("--print-config", "--print_config", dest="print_config", action="store_true",
                        help="print the resolved config as JSON and exit")
    for key, f in C.FIELDS.items():
        flags = sorted({f"--{key}", f"--{key.replace('_', '-')}"})
        parser.add_argument(*flags, dest=f"cfg__{key}", metavar="VALUE", default=None, help=f.metadata["help"])
    args, rest = parser.parse_known_args(argv)
    if rest:
        bad = rest[0].lstrip("-").split("=")[0].replace("-", "_")
        raise C.ConfigError(C.unknown_key_message(bad))
    overrides = {k[5:]: v for k, v in vars(args).items() if k.startswith("cfg__") and v is not None}
    return args, overrides


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, overrides = parse(argv)
        file_values = C.load_json(args.config) if args.config else {}
        cfg = C.build(file_values, overrides)
    except C.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_config:
        import json

        print(json.dumps(cfg.to_dict(), indent=2))
        return EXIT_OK
    out = args.out or str(Path("runs") / f"{Path(args.config).stem if args.config else 'run'}-seed{cfg.seed}-"
                                         f"{dt.datetime.now():%Y%m%d_%H%M%S}")

    # torch is imported only now: config errors answer instantly
    from trainer.rundir import RunDir, resolve_git_sha
    from trainer.train import CannotRun, Interrupted, NaNLossError, Trainer

    run = RunDir(out)
    try:
        run.create()
    except OSError as exc:
        print(f"error: cannot make the run folder {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        trainer = Trainer(cfg, run, resolve_git_sha(args.git_sha))
        trainer.fit()
    except CannotRun as exc:  # nothing ran: the folder keeps what an earlier run left
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NaNLossError as exc:
        run.log(f"FAILED: {exc}")
        run.mark_finished(False, EXIT_NAN, str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NAN
    except Interrupted as exc:
        code = 128 + exc.signum
        run.log(f"STOPPED: {exc}")
        run.mark_finished(False, code, str(exc))
        return code
    except BaseException as exc:  # noqa: BLE001 - every crash must leave a status and a traceback
        tb = traceback.format_exc()
        line = traceback.format_exception_only(type(exc), exc)[-1].strip()
        run.log(f"CRASHED: {line}\n{tb}", echo=False)
        print(tb, file=sys.stderr, end="")
        run.mark_finished(False, EXIT_CRASH, line)
        return EXIT_CRASH
    run.mark_finished(True, EXIT_OK, None)
    return EXIT_OK
