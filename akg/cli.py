"""The ``akg`` command.

Errors caused by input print one line and exit with the code from ``akg.errors``; a traceback
appears only with ``--debug``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from akg import errors
from akg.errors import AkgError, CandidateFileError

EPILOG = "Exit codes: 0 ok/accepted, 1 rejected, 2 bad usage or problem, 3 bad candidate file, " \
         "4 bad config, 5 device or toolchain unavailable, 6 store error, 7 LLM endpoint error, 70 internal error."


def _common(p: argparse.ArgumentParser, dsl_required: bool = False) -> None:
    if dsl_required:
        p.add_argument("--dsl", required=True, help="target DSL (`akg plugins` lists them)")
    p.add_argument("--device", default=None, help="backend to run on (`akg plugins` lists them; default: the DSL's first available)")
    p.add_argument("--policy", choices=("strict", "standard"), default=None,
                   help="strict (default): only DSL kernels plus declared library ops may compute; standard: framework ops allowed")
    p.add_argument("--config", default=None, help="TOML file with [search] and [harness] defaults")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _search_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", type=int, default=None, help="most candidates to measure (default 24)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="wall-clock limit in seconds for the whole command (per problem in bench), baselines "
                        "included: at the limit akg stops, writes the best verified result so far and exits 0")
    p.add_argument("--store", default=None, help="SQLite store (default .akg/akg.db)")
    p.add_argument("--no-compile", action="store_true", help="do not time the torch.compile baseline")
    p.add_argument("--trials", type=int, default=None, help="timing trials per candidate (median is reported)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help="judge candidates on a Ray cluster, one actor per GPU (per CPU for --device cpu); "
                        "auto joins a running local cluster or starts one (pip install 'akg[ray]')")
    p.add_argument("--seed", action="append", choices=("inductor",), default=None, dest="seeds",
                   help="judge this candidate too: inductor = torch.compile's own generated code, written "
                        "out as a standalone candidate (the search then has to beat it); first on a CPU, "
                        "on a GPU as soon as it is captured, beside akg's own plans")
    p.add_argument("--remeasure", action="store_true",
                   help="time every candidate again instead of replaying timings from the store")


def _llm_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LLM mode (see docs/llm.md; key from AKG_LLM_API_KEY, else OPENAI_API_KEY)")
    g.add_argument("--llm", metavar="MODEL", default=None, help="model name at an OpenAI-compatible endpoint")
    g.add_argument("--llm-url", metavar="URL", default=None, help="base URL, e.g. http://localhost:8000/v1 (default OpenAI)")
    g.add_argument("--mode", choices=("compiler", "llm", "both"), default=None,
                   help="who proposes candidates (default: both with --llm — templates first, then agents improve)")
    g.add_argument("--agents", choices=("all", "coder"), default=None,
                   help="all: designer then coder (default); coder: the coder alone, for small local models")
    g.add_argument("--hint", default=None, help="advice for the designer and coder, e.g. 'fuse the epilogue'")
    g.add_argument("--llm-budget", type=int, default=None, help="most code-writing LLM turns (default 12)")
    g.add_argument("--token-budget", type=int, default=None, help="most prompt+completion tokens")
    g.add_argument("--llm-record", metavar="FILE", default=None, help="write every exchange to this cassette")
    g.add_argument("--llm-replay", metavar="FILE", default=None, help="answer from this cassette, offline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="akg", description="Generate verified, measured kernels from PyTorch programs.",
                                     epilog=EPILOG)
    from akg import __version__
    parser.add_argument("--version", action="version", version=f"akg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("optimize", help="search for the fastest verified kernels for a problem", epilog=EPILOG,
                       description="Write DIR/best.py (a drop-in ModelNew) and DIR/report.json.")
    p.add_argument("problem", help="problem file in KernelBench format")
    _common(p, dsl_required=True)
    _search_flags(p)
    p.add_argument("--out", default="akg_out", help="output folder (default akg_out)")
    p.add_argument("--resume", action="store_true", help="continue the last interrupted run of this problem")
    _llm_flags(p)

    p = sub.add_parser("verify", help="check a candidate ModelNew against a problem", epilog=EPILOG,
                       description="Exit 0 when accepted, 1 when rejected, 2 for bad usage or a bad problem file.")
    p.add_argument("problem")
    p.add_argument("candidate", help="Python file defining ModelNew")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--no-time", action="store_true", help="check correctness only")
    p.add_argument("--no-compile", action="store_true", help="do not time the torch.compile baseline")
    p.add_argument("--trials", type=int, default=None)

    p = sub.add_parser("bench", help="optimize every problem of a suite and summarise", epilog=EPILOG,
                       description="Per-problem results, fast_p and geomean speedups vs eager and torch.compile. "
                                   "Each problem runs in its own process; the results file is rewritten as each finishes.")
    p.add_argument("suite", help="folder of problem files, searched recursively (e.g. a KernelBench checkout "
                                 "with level folders), or a text file listing problem files one per line")
    _common(p, dsl_required=True)
    _search_flags(p)
    p.add_argument("--out", required=True, help="JSON file for the results")
    p.add_argument("--results-dir", default=None, help="also write each problem's best.py/report.json here")
    p.add_argument("--problems", default=None,
                   help="which problems: numbers, ranges and names, comma-separated (e.g. 1,19,23-30,Softmax)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows already in --out and run only the problems without one")

    p = sub.add_parser("export", help="write every candidate in a store as a dataset", epilog=EPILOG,
                       description="One JSON record per candidate and target: problem, DSL, device, source, verdict, "
                                   "timings, lineage, prompt and reply ids.")
    p.add_argument("--store", default=None, help="SQLite store (default .akg/akg.db)")
    p.add_argument("--format", choices=("jsonl",), default="jsonl")
    p.add_argument("--out", default="-", help="file to write (default: standard output)")
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("migrate", help="regenerate a kernel file's computation in another DSL, verified", epilog=EPILOG,
                       description="Write DIR/best.py in the target DSL and DIR/report.json, with the source kernel "
                                   "timed beside eager and torch.compile where it runs on the device.")
    p.add_argument("kernel", metavar="KERNEL_FILE", help="candidate file (ModelNew with its kernels inline) in any DSL")
    p.add_argument("--to", required=True, dest="dsl", metavar="DSL", help="target DSL (see `akg plugins`)")
    p.add_argument("--problem", default=None, help="problem file whose Model is the oracle (default: the kernel file's own Model)")
    _common(p)
    _search_flags(p)
    p.add_argument("--out", default="akg_out", help="output folder (default akg_out)")
    p.add_argument("--resume", action="store_true", help="continue the last interrupted run of this kernel")
    _llm_flags(p)   # LLM mode: the designer and coder are shown the source kernel to port

    p = sub.add_parser("port", help="migrate every kernel or problem file of a folder to a DSL", epilog=EPILOG,
                       description="Write DIR/<library>/ (an importable package), DIR/report.json and DIR/report.html. "
                                   "Finished ops are kept: running it again resumes.")
    p.add_argument("library", metavar="LIBRARY_DIR", help="folder of kernel or problem files")
    p.add_argument("--to", required=True, dest="dsl", metavar="DSL", help="target DSL (see `akg plugins`)")
    _common(p)
    _search_flags(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--jobs", type=int, default=1, help="ops ported at once (default 1: timings on one device interfere)")
    _llm_flags(p)

    p = sub.add_parser("report", help="write a static HTML page for a run, bench, port or store", epilog=EPILOG,
                       description="RUN is a run or port output folder, a report.json, a bench JSON or an akg store (.db).")
    p.add_argument("run", metavar="RUN_DIR_OR_STORE")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--debug", action="store_true", help="show tracebacks")

    p = sub.add_parser("analyze", help="trace a problem and print its work, bytes and roofline floor")
    p.add_argument("problem")
    p.add_argument("--device", default=None, help="hardware to compute the floor for (default: every known descriptor of cpu)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("plugins", help="list DSLs, backends, hardware descriptors and passes")
    p.add_argument("--json", action="store_true")
    p.add_argument("--debug", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()  # --time-limit counts from here: imports and baselines included
    args = build_parser().parse_args(argv)
    args.started = started
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("akg: interrupted; finished verdicts are in the store (resume with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `akg plugins | head`: the reader left; not an error of akg's
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return errors.EXIT_OK
    except Exception as e:  # every error reaches the user as one line unless --debug
        if getattr(args, "debug", False):
            raise
        code = _exit_code(e)
        print(f"akg: error: {_store_context(e, args)}{_one_line(e)}", file=sys.stderr)
        return code


def _store_context(e: Exception, args) -> str:
    """A store that breaks mid-run names itself and the way out, like one that fails to open."""
    import sqlite3
    if not isinstance(e, sqlite3.DatabaseError):
        return ""
    from akg.store import DEFAULT_STORE
    return f"store {getattr(args, 'store', None) or DEFAULT_STORE} is damaged (pass --store with another path): "


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _exit_code(e: Exception) -> int:
    import sqlite3
    from akg.problem import ProblemError
    from akg.store import StoreError
    if isinstance(getattr(e, "exit_code", None), int):  # AkgError, HarnessError and subclasses
        return e.exit_code
    if isinstance(e, ProblemError):
        return errors.EXIT_USAGE
    if isinstance(e, (StoreError, sqlite3.DatabaseError)):
        return errors.EXIT_STORE
    return errors.EXIT_INTERNAL


# ----------------------------------------------------------------------------------------------

def _settings(args):
    from akg.config import load_config
    from akg.search import SearchOptions

    s, harness = load_config(args.config)
    time_limit = getattr(args, "time_limit", None)
    time_limit = s.get("time_limit") if time_limit is None else time_limit
    if time_limit is not None and time_limit <= 0:
        raise AkgError(f"--time-limit must be a positive number of seconds, got {time_limit:g}")
    options = SearchOptions(
        budget=getattr(args, "budget", None) or s.get("budget", 24),
        time_limit_s=time_limit,
        started=getattr(args, "started", None),
        policy=args.policy or s.get("policy", "strict"),
        resume=getattr(args, "resume", False),
        ray_address=getattr(args, "ray", None),
        remeasure=getattr(args, "remeasure", False),
        replay=bool(getattr(args, "llm_replay", None)),
        seeds=tuple(dict.fromkeys(getattr(args, "seeds", None) or ())))
    overrides = {}
    if getattr(args, "trials", None):
        overrides["trials"] = args.trials
    if getattr(args, "no_compile", False):
        overrides["measure_compile"] = False
    if getattr(args, "no_time", False):
        overrides["time"] = False
    return options, harness.replace(**overrides)


def _llm_settings(args):
    from akg.config import load_llm_config
    from akg.evolve import llm_run
    values = load_llm_config(args.config)
    flags = {"model": args.llm, "url": args.llm_url, "mode": args.mode, "agents": args.agents, "hint": args.hint,
             "candidates": args.llm_budget, "token_budget": args.token_budget, "record": args.llm_record,
             "replay": args.llm_replay}
    values.update({k: v for k, v in flags.items() if v is not None})
    return llm_run(values)


def _progress(quiet: bool, options=None, live: bool = True):
    from akg.progress import Progress
    return Progress(quiet=quiet, budget=getattr(options, "budget", None),
                    time_limit_s=getattr(options, "time_limit_s", None), live=live,
                    started=getattr(options, "started", None))


def _prestart_workers(args) -> None:
    """Start the worker pool's zygote before this process imports torch (the settings below
    import it), so that both import at once; the pool adopts it (akg/harness/prestart.py). Only
    where the device is known without probing it; anything odd here (a bad config, an unknown
    DSL) is reported by the checks that follow, and the pool then starts its own zygote."""
    if args.ray:
        return
    from akg import plugins
    from akg.config import load_config
    from akg.harness import prestart
    try:
        _, harness = load_config(args.config)
        device = args.device
        if device is None:
            devices = plugins.get_dsl(args.dsl).devices
            device = devices[0] if len(devices) == 1 else None
        if device is not None and ":" not in device:   # a numbered device is chosen later, in the environment
            prestart.start(device, harness.network)
    except Exception:
        pass


def cmd_optimize(args) -> int:
    from akg.harness import prestart
    _prestart_workers(args)
    try:
        return _optimize(args)
    finally:
        prestart.discard()   # a zygote no pool adopted (the command stopped before its pool started)


def _optimize(args) -> int:
    import contextlib
    from akg.deadline import Deadline, Watchdog
    from akg.pipeline import Running, optimize_problem, resolve_target
    from akg.problem import load_problem
    from akg.store import Store, DEFAULT_STORE

    from akg.paths import check_output_dir, check_output_file

    check_output_dir(args.out, "--out")
    check_output_file(args.store or DEFAULT_STORE, "--store")
    options, harness = _settings(args)
    mode, llm = _llm_settings(args)
    options.mode = mode
    running, watchdog = None, contextlib.nullcontext()
    if options.time_limit_s is not None:  # from here on, everything counts against the limit
        running = Running(Deadline(options.time_limit_s, options.started), Path(args.out), args.dsl, args.device or "")
        watchdog = Watchdog(running.deadline, running.kill, running.rescue)
    with watchdog:
        problem = load_problem(args.problem)
        if running is not None:
            running.problem = problem
        with Store(args.store or DEFAULT_STORE) as store:   # opened (and checked) before the device is probed
            target = resolve_target(args.dsl, args.device)
            with _progress(args.json, options) as progress:
                report = optimize_problem(problem, target, Path(args.out), store, options, harness, progress,
                                          running, llm=llm)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_summary(report, Path(args.out))
    return errors.EXIT_OK


def _print_summary(report: dict, out: Path) -> None:
    from rich.console import Console
    best = report["best"]
    c = Console(soft_wrap=True)
    eager = report["baselines"]["eager_ms"]
    comp = report["baselines"]["compile_ms"]
    fmt = lambda v, unit="": "n/a" if v is None else f"{v:.4g}{unit}"
    c.print(f"[bold]{report['problem']}[/bold] · {report['dsl']} on {report['device']} ({report['hardware']})")
    c.print(f"  baselines, measured apart from the candidates: eager {fmt(eager, ' ms')} · torch.compile {fmt(comp, ' ms')}")
    verified = "[green]verified[/green]" if best["correct"] else "[red]unverified[/red]"
    # One line, one measurement: the speedups are the printed times divided by each other.
    c.print(f"  best: {best['origin']} {best['candidate_id']} {verified} {fmt(best['time_ms'], ' ms')} · "
            f"eager {fmt(best.get('eager_ms'), ' ms')} timed with it: {fmt(best['speedup_vs_eager'], 'x')} · "
            f"torch.compile {fmt(best.get('compile_ms'), ' ms')} (timed apart): {fmt(best['speedup_vs_compile'], 'x')}")
    if best.get("suspect"):
        c.print(f"  [yellow]suspect: {best['suspect']}[/yellow]")
    if report.get("stopped"):
        c.print(f"  search stopped: {report['stopped']}")
    if not best.get("timing_meaningful", True):
        c.print("  [yellow]timings on this target are not meaningful (interpreter)[/yellow]")
    for note in report["notes"]:
        c.print(f"  note: {note}")
    c.print(f"  wrote {out / 'best.py'} and {out / 'report.json'}")


def _read_candidate(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise CandidateFileError(f"candidate {path}: no such file")
    try:
        source = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CandidateFileError(f"candidate {path}: cannot read ({e})") from None
    try:
        compile(source, str(p), "exec")
    except SyntaxError as e:
        raise CandidateFileError(f"candidate {path}: syntax error at line {e.lineno}: {e.msg}") from None
    return source


def cmd_verify(args) -> int:
    import dataclasses
    from akg.agents.coder import candidate_id
    from akg.harness import evaluate
    from akg.pipeline import floor_for
    from akg.problem import load_problem, validate
    from akg import plugins
    from akg.errors import DeviceUnavailable

    _, harness = _settings(args)
    problem = load_problem(args.problem)
    source = _read_candidate(args.candidate)
    device = args.device or "cpu"
    try:
        backend = plugins.get_backend(device)
    except plugins.PluginError as e:
        raise AkgError(str(e)) from None
    if not backend.available():
        raise DeviceUnavailable(f"device {device!r} is not available on this machine; try --device cpu")
    from akg.harness.memory import check_fits
    check_fits(problem, device)   # a problem too big for the device: one line, before any work
    validate(problem, device)
    floor_ms, _ = floor_for(problem, backend.detect())
    from akg.ir import Candidate
    candidate = Candidate(candidate_id(source), None, "", source, None, "user")
    verdict = evaluate(problem, candidate, device, args.policy or "strict", harness, floor_ms=floor_ms)
    if args.json:
        data = dataclasses.asdict(verdict)
        data["accepted"] = verdict.accepted
        print(json.dumps(data, indent=2, default=str))
    else:
        _print_verdict(verdict)
    return errors.EXIT_OK if verdict.accepted else errors.EXIT_REJECTED


def _print_verdict(v) -> None:
    from rich.console import Console
    c = Console(soft_wrap=True)
    c.print("[green]accepted[/green]" if v.accepted else f"[red]rejected[/red]: {v.reason}")
    for check in v.checks:
        mark = "[green]✓[/green]" if check.passed else "[red]✗[/red]"
        c.print(f"  {mark} {check.name}" + (f" — {check.detail}" if check.detail else ""))
    if v.time_ms is not None:
        speed = ", ".join(f"{k} {x:.2f}x" for k, x in v.speedups)
        c.print(f"  time {v.time_ms:.4g} ms (spread {v.spread or 0:.1%}) {speed}")


def cmd_bench(args) -> int:
    from akg.bench import discover, markdown_table, run_bench, select
    from akg.pipeline import resolve_target
    from akg.store import DEFAULT_STORE

    from akg.paths import check_output_dir, check_output_file

    check_output_file(args.out, "--out")
    check_output_file(args.store or DEFAULT_STORE, "--store")
    if args.results_dir:
        check_output_dir(args.results_dir, "--results-dir")
    options, _ = _settings(args)  # checks the flags and the config file before any problem runs
    entries = select(discover(Path(args.suite)), args.problems)
    target = resolve_target(args.dsl, args.device)
    device = args.device or target.device
    shared = ["--dsl", args.dsl, "--store", str(Path(args.store or DEFAULT_STORE).resolve())]
    for flag, value in (("--budget", args.budget), ("--policy", args.policy), ("--trials", args.trials),
                        ("--config", args.config and str(Path(args.config).resolve()))):
        if value is not None:
            shared += [flag, str(value)]
    if args.no_compile:
        shared.append("--no-compile")
    if args.remeasure:
        shared.append("--remeasure")
    for seed in options.seeds:
        shared += ["--seed", seed]
    if getattr(args, "remeasure", False):
        shared.append("--remeasure")
    if args.ray:  # joined once here; every problem's process joins the same cluster
        from akg.distributed import cluster_address, connect
        shared += ["--ray", cluster_address(connect(args.ray))]
    import signal
    # A bench stopped by SIGTERM (a job's timeout) takes its running problem's processes along.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    result = run_bench(entries, target, Path(args.out), shared, suite=Path(args.suite), device=device,
                       time_limit_s=options.time_limit_s, resume=args.resume,
                       results_dir=Path(args.results_dir).resolve() if args.results_dir else None,
                       progress=_progress(args.json, live=False))   # each problem's own lines pass through
    print(json.dumps(result["summary"], indent=2) if args.json else markdown_table(result))
    return errors.EXIT_OK


def cmd_export(args) -> int:
    from akg.store import Store, DEFAULT_STORE
    path = Path(args.store) if args.store else DEFAULT_STORE
    if not path.is_file():
        raise AkgError(f"store {path}: no such file; pass --store with the store a run wrote", errors.EXIT_STORE)
    if args.out != "-":
        from akg.paths import check_output_file
        check_output_file(args.out, "--out")
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    try:
        with Store(path) as store:
            for record in store.export_records():
                out.write(json.dumps(record, default=str) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return errors.EXIT_OK


def _checked_port_settings(args):
    """migrate and port: paths checked before any work, then search, harness and LLM settings and
    the target."""
    from akg.paths import check_output_dir, check_output_file
    from akg.pipeline import resolve_target
    from akg.store import DEFAULT_STORE

    check_output_dir(args.out, "--out")
    check_output_file(args.store or DEFAULT_STORE, "--store")
    options, harness = _settings(args)
    options.mode, llm = _llm_settings(args)
    return options, harness, llm, resolve_target(args.dsl, args.device)


def cmd_migrate(args) -> int:
    from akg.migrate import migrate
    from akg.store import Store, DEFAULT_STORE

    options, harness, llm, target = _checked_port_settings(args)
    with Store(args.store or DEFAULT_STORE) as store:
        with _progress(args.json, options) as progress:
            report = migrate(Path(args.kernel), target, Path(args.out), store, options, harness,
                             Path(args.problem) if args.problem else None, progress, llm=llm)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return errors.EXIT_OK
    _print_summary(report, Path(args.out))
    from rich.console import Console
    mig = report["migration"]
    src = mig["source"]
    what = f"{src['time_ms']:.4g} ms" if src["timed"] else src["reason"]
    vs = f" · best is {mig['speedup_vs_source']:.3f}x vs source" if mig["speedup_vs_source"] else ""
    Console(soft_wrap=True).print(f"  source ({src['dsl'] or 'unknown DSL'}): {what}{vs}; oracle: {mig['oracle']}")
    return errors.EXIT_OK


def cmd_port(args) -> int:
    from akg.port import port_library
    from akg.store import DEFAULT_STORE

    options, harness, llm, target = _checked_port_settings(args)
    if args.jobs < 1:
        raise AkgError("--jobs must be at least 1")
    out = Path(args.out)
    if args.json:
        report = port_library(Path(args.library), target, out, Path(args.store or DEFAULT_STORE), options, harness,
                              args.jobs, llm=llm)
        print(json.dumps(report, indent=2, default=str))
        return errors.EXIT_OK
    from akg.port_progress import PortProgress
    with PortProgress(Path(args.library)) as bar:
        report = port_library(Path(args.library), target, out, Path(args.store or DEFAULT_STORE), options, harness,
                              args.jobs, bar.candidate, bar.op_done, llm=llm)
    _print_port(report, out)
    return errors.EXIT_OK


def _print_port(report: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table
    fmt = lambda v, unit="": "—" if v is None else f"{v:.3g}{unit}"
    table = Table(title=f"{report['library']} → {report['dsl']} on {report['device']} ({report['hardware']})")
    for col in ("op", "result", "ms", "vs eager", "vs compile", "vs source", "note"):
        table.add_column(col, overflow="fold")
    for r in report["ops"]:
        result = "error" if r.get("error") else ("ported" if r["ported"] else "fallback")
        table.add_row(r["op"], result, fmt(r.get("time_ms")), fmt(r.get("speedup_vs_eager"), "x"),
                      fmt(r.get("speedup_vs_compile"), "x"), fmt(r.get("speedup_vs_source"), "x"),
                      (r.get("fallback_reason") or "")[:160])
    c = Console(soft_wrap=True)
    c.print(table)
    s = report["summary"]
    c.print(f"{s['ported']}/{s['ops']} ported · {s['verified']} verified · {s['errors']} errors · "
            f"geomean {fmt(s['geomean_speedup_vs_eager'], 'x')} vs eager, {fmt(s['geomean_speedup_vs_compile'], 'x')} "
            f"vs torch.compile")
    c.print(f"wrote {report['package']}/, {out / 'report.json'} and {out / 'report.html'}")


def cmd_report(args) -> int:
    from akg.paths import check_output_file
    from akg.report import write_report
    check_output_file(args.out, "--out")
    view = write_report(args.run, args.out)
    rows = len(view.suite.rows) if view.suite else 0
    print(f"wrote {args.out} ({len(view.runs)} run(s){f', {rows} rows' if rows else ''})")
    return errors.EXIT_OK


def cmd_analyze(args) -> int:
    from akg import plugins
    from akg.agents import analyzer
    from akg.problem import load_problem, validate

    problem = load_problem(args.problem)
    validate(problem)
    if args.device:
        backend = plugins.get_backend(args.device)
        hardware = backend.descriptors() + ([backend.detect()] if backend.available() else [])
    else:
        hardware = [h for b in plugins.backends().values() for h in b.descriptors()]
        cpu = plugins.backends().get("cpu")
        if cpu is not None:
            hardware.append(cpu.detect())
    analysis = analyzer.analyze(problem, hardware)
    if args.json:
        print(json.dumps({"flops": analysis.flops, "bytes": analysis.bytes_moved, "bound": analysis.bound,
                          "roofline_ms": dict(analysis.roofline_ms), "notes": list(analysis.notes)}, indent=2))
    else:
        print(analyzer.format_analysis(analysis))
    return errors.EXIT_OK


def _columns(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Rows of cells padded to each column's widest cell, so columns line up whatever the names."""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    return [indent + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]


def cmd_plugins(args) -> int:
    from akg import plugins
    dsls = {n: {"devices": list(d.devices), "families": list(d.families),
                "available": plugins.toolchain_problem(d) is None, "reason": plugins.toolchain_problem(d) or ""}
            for n, d in plugins.dsls().items()}
    backends = {n: {"available": b.available(), "hardware": [h.name for h in b.descriptors()]}
                for n, b in plugins.backends().items()}
    passes = [{"name": p.name, "stage": p.stage, "order": p.order} for p in plugins.passes()]
    if args.json:
        print(json.dumps({"dsls": dsls, "backends": backends, "passes": passes}, indent=2))
        return errors.EXIT_OK
    print("DSLs:")
    print("\n".join(_columns([["name", "status", "devices", "families"]] + [
        [n, "available" if d["available"] else f"not available: {d['reason']}", ", ".join(d["devices"]),
         ", ".join(d["families"])] for n, d in sorted(dsls.items())])))
    print("Backends:")
    print("\n".join(_columns([[n, "available" if b["available"] else "not available", ", ".join(b["hardware"])]
                             for n, b in sorted(backends.items())])))
    print("Hardware descriptors:")
    print("\n".join(_columns([[h.name, h.backend, h.display_name] for h in plugins.hardware_descriptors()])))
    print("Passes:")
    print("\n".join(_columns([[p["name"], p["stage"], f"order {p['order']}"] for p in passes])))
    return errors.EXIT_OK


COMMANDS = {"optimize": cmd_optimize, "verify": cmd_verify, "bench": cmd_bench, "analyze": cmd_analyze,
            "plugins": cmd_plugins, "migrate": cmd_migrate, "port": cmd_port, "report": cmd_report,
            "export": cmd_export}

if __name__ == "__main__":
    sys.exit(main())
