"""How much of a problem suite akg's frontend covers, on the CPU, with no device and no data.

For every problem file: build it at its declared sizes on fake tensors (shapes only, no storage),
trace it into akg's Graph, run the graph and plan passes, and for each installed DSL say whether
at least one plan renders into a candidate file and whether one renders with a kernel akg
generates (a plan of library calls only renders too, but generates nothing). The first failure is
kept in one line. Nothing is compiled: this measures the frontend, not the kernels. With
``--verify-below MB`` the problems smaller than that also run every plan with the IR's reference
semantics (akg.planeval) on real inputs against the model, which checks the trace's meaning.

    python bench/coverage.py /work/shared/kernelbench/level1 /work/shared/kernelbench/level2 \
        --json bench/results/kernelbench-coverage.json --markdown docs/coverage.md
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import signal
import sys
import time
import warnings
from pathlib import Path

from akg import plugins
from akg.agents import analyzer, coder, designer
from akg.ir import LibraryCall
from akg.problem import load_problem
from akg.targets import PassContext, run_graph_passes, run_plan_passes

# Hardware whose schedules the designer proposes, per device; the first descriptor otherwise.
PREFERRED_HARDWARE = {"cuda": "h200", "cpu": "x86-64-generic"}


class _Timeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Timeout()


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:300]


def reason_key(reason: str) -> str:
    """A failure reason with its problem-specific parts (names, numbers) blanked, for grouping."""
    key = re.sub(r"problem [^:]+: ", "", reason)
    key = re.sub(r"node n\d+:\S+ \([^)]*\)", "node …", key)
    key = re.sub(r"'[^']*'", "'…'", key)
    key = re.sub(r"\b\d+\b", "N", key)
    return key[:160]


def hardware_for(dsl):
    device = dsl.devices[0]
    backend = plugins.get_backend(device)
    specs = backend.descriptors()
    want = PREFERRED_HARDWARE.get(device)
    return device, next((h for h in specs if h.name == want), specs[0])


def render_status(problem, plans, dsl, device, hardware) -> dict:
    """Whether a plan renders in ``dsl`` and whether one with a generated kernel does."""
    options = designer.renderable_plans(plans, dsl, hardware)
    if not options:
        missing = sorted({g.family for p in plans for g in p.groups
                          if not isinstance(g.kernel, LibraryCall) and g.family not in dsl.families})
        return {"renders": False, "generates": False,
                "reason": f"no plan has only families {dsl.name} renders (missing: {', '.join(missing)})"}
    renders, generates, reason = False, False, ""
    for po in options:
        try:
            coder.assemble(po.plan, dsl, device, problem.source, problem.name)
        except Exception as e:   # a RenderError, or a template that fails on this plan
            reason = reason or f"render: {one_line(e)}"
            continue
        renders = True
        if designer.generated_group_count(po.plan):
            generates = True
            break
    if renders and not generates:
        reason = reason or "every renderable plan is library calls only (" + ", ".join(
            sorted({g.kernel.op for po in options for g in po.plan.groups if isinstance(g.kernel, LibraryCall)})) + ")"
    return {"renders": renders, "generates": generates, "reason": "" if generates else reason}


def plans_match(problem, plans, graph) -> dict:
    """Every plan run with the IR's semantics (akg.planeval) against the model as built, on real
    inputs at the declared size, the same torch seed before each (random ops draw alike)."""
    import torch
    from akg.hoist import is_random
    from akg.planeval import model_state, run_plan
    from akg.problem import flatten_outputs, seed_everything
    if any(is_random(n) for n in graph.nodes):
        return {"checked": 0, "matched": 0, "reason": "draws random numbers: left to the harness"}
    model, inputs = problem.build_model(0), problem.example_inputs(0)
    with torch.no_grad():
        seed_everything(1)
        expected = flatten_outputs(model(*[x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]))
    matched, failed = 0, []
    for plan in plans:
        try:
            with torch.no_grad():
                got = run_plan(plan, inputs, model_state(model))
            assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
            for g, e in zip(got, expected):
                assert g.shape == e.shape and g.dtype == e.dtype, f"{tuple(g.shape)}/{g.dtype} vs {tuple(e.shape)}/{e.dtype}"
                torch.testing.assert_close(g, e, atol=1e-3, rtol=1e-3)
            matched += 1
        except Exception as e:   # a mismatch or a plan planeval cannot run: a finding
            failed.append(f"plan {plan.name}: {one_line(e)}")
    return {"checked": len(plans), "matched": matched, "reason": "; ".join(failed)}


def check(path: Path, dsls: dict, timeout_s: int, verify_below_mb: float = 0.0) -> dict:
    row = {"problem": f"{path.parent.name}/{path.stem}", "traced": False, "planned": False, "plans": 0,
           "reason": "", "dsls": {}}
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout_s)
    stage = "load"
    try:
        problem = load_problem(path)
        stage = "trace"
        graph = analyzer.trace_once(problem, fake=True)
        row["traced"] = True
        stage = "plan"
        passes = plugins.passes()
        graph = run_graph_passes(graph, passes, PassContext())
        plans = run_plan_passes(graph, passes, PassContext())
        row["planned"], row["plans"] = bool(plans), len(plans)
        row["library_ops"] = sorted({n.op for n in graph.nodes if n.kind == "library"})
        stage = "render"
        for name, dsl in dsls.items():
            device, hardware = hardware_for(dsl)
            row["dsls"][name] = render_status(problem, plans, dsl, device, hardware)
        if verify_below_mb:
            from akg.harness.memory import estimate_footprint
            if estimate_footprint(problem).total_bytes < verify_below_mb * 2**20:
                stage = "verify"
                row["plans_match"] = plans_match(problem, plans, graph)
    except _Timeout:
        row["reason"] = f"{stage}: took over {timeout_s} s"
    except Exception as e:   # anything the frontend raises on a user program is a finding
        row["reason"] = f"{stage}: {one_line(e)}"
    finally:
        signal.alarm(0)
    for name in dsls:
        row["dsls"].setdefault(name, {"renders": False, "generates": False, "reason": row["reason"]})
    return row


def summarise(rows: list[dict], dsl_names: list[str]) -> dict:
    summary = {"problems": len(rows), "traced": sum(r["traced"] for r in rows),
               "planned": sum(r["planned"] for r in rows), "dsls": {}}
    for name in dsl_names:
        summary["dsls"][name] = {"renders": sum(r["dsls"][name]["renders"] for r in rows),
                                 "generates": sum(r["dsls"][name]["generates"] for r in rows)}
    checked = [r["plans_match"] for r in rows if r.get("plans_match", {}).get("checked")]
    summary["plans_checked"] = {"problems": len(checked), "all_plans_match": sum(m["matched"] == m["checked"] for m in checked),
                                "plans": sum(m["checked"] for m in checked), "plans_match": sum(m["matched"] for m in checked)}
    reasons = collections.Counter(reason_key(r["reason"]) for r in rows if r["reason"])
    summary["frontend_failures"] = reasons.most_common()
    for name in dsl_names:
        dsl_reasons = collections.Counter(reason_key(r["dsls"][name]["reason"]) for r in rows
                                          if r["planned"] and not r["dsls"][name]["generates"])
        summary["dsls"][name]["no_kernel_reasons"] = dsl_reasons.most_common()
    return summary


def summarise_before(path: Path, dsl_names: list[str]) -> dict:
    """An earlier --json, over the DSLs it covered (a DSL added since shows as "-" in its row)."""
    rows = json.loads(path.read_text())["rows"]
    return summarise(rows, [n for n in dsl_names if all(n in r["dsls"] for r in rows)])


def markdown(summary: dict, rows: list[dict], suites: list[str], command: str, before: dict | None) -> str:
    names = list(summary["dsls"])
    lines = ["# Frontend coverage", "",
             "What `bench/coverage.py` finds over a problem suite, on the CPU with fake tensors (no data, "
             "no device, nothing compiled): a problem is *traced* when it becomes akg's Graph, *planned* "
             "when the passes give at least one plan, *renders* in a DSL when a plan becomes a candidate "
             "file, and *generates* when such a plan has at least one kernel akg writes (a plan of "
             "framework calls only renders too). Problems that fail are returned as the reference by "
             "`akg optimize`; the lists below say why.", "",
             f"Suites: {', '.join(suites)}. Command: `{command}`", ""]
    checked = summary.get("plans_checked", {})
    if checked.get("problems"):
        lines += [f"Plans run against the model (IR semantics, real inputs, `--verify-below`): "
                  f"{checked['plans_match']} of {checked['plans']} plans match, over {checked['problems']} problems "
                  f"({checked['all_plans_match']} with every plan matching).", ""]
    header = ["", "problems", "traced", "planned"] + [f"{n} renders / generates" for n in names]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(label, s):
        return "| " + " | ".join([label, str(s["problems"]), str(s["traced"]), str(s["planned"])] +
                                 [f"{s['dsls'][n]['renders']} / {s['dsls'][n]['generates']}" if n in s["dsls"] else "-"
                                  for n in names]) + " |"
    if before is not None:
        lines.append(row("before", before))
        lines.append(row("after", summary))
    else:
        lines.append(row("now", summary))
    lines += ["", "## Why a problem does not trace or plan", ""]
    for key, count in summary["frontend_failures"][:20] or [("none", 0)]:
        lines.append(f"- {count} × {key}")
    if before is not None and before["frontend_failures"]:
        lines += ["", "Before:", ""] + [f"- {count} × {key}" for key, count in before["frontend_failures"][:20]]
    for name in names:
        lines += ["", f"## Why no {name} kernel is generated (planned problems)", ""]
        for key, count in summary["dsls"][name]["no_kernel_reasons"][:12] or [("none", 0)]:
            lines.append(f"- {count} × {key}")
    lines += ["", "## Every problem", "", "| problem | traced | planned | " + " | ".join(names) + " | first reason |",
              "|" + "---|" * (4 + len(names))]
    for r in rows:
        cells = ["gen" if r["dsls"][n]["generates"] else "lib" if r["dsls"][n]["renders"] else "no" for n in names]
        reason = r["reason"] or next((r["dsls"][n]["reason"] for n in names if r["dsls"][n]["reason"]), "")
        reason = reason.replace("|", "\\|")
        lines.append(f"| {r['problem']} | {'yes' if r['traced'] else 'no'} | {'yes' if r['planned'] else 'no'} | "
                     + " | ".join(cells) + f" | {reason} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="+", type=Path, help="folders of problem files (searched recursively)")
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    parser.add_argument("--markdown", type=Path, help="write a table here")
    parser.add_argument("--before", type=Path, help="an earlier --json, shown as the 'before' row")
    parser.add_argument("--dsl", action="append", help="DSLs to check (default: every installed one)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per problem")
    parser.add_argument("--only", help="a substring a problem's name must contain")
    parser.add_argument("--verify-below", type=float, default=0.0, metavar="MB",
                        help="also run every plan (IR semantics, real inputs) against the model for "
                             "problems whose inputs, parameters and outputs are under MB megabytes")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    dsls = {n: d for n, d in sorted(plugins.dsls().items()) if not args.dsl or n in args.dsl}
    paths = sorted(p for s in args.suites for p in s.rglob("*.py") if not args.only or args.only in p.stem)
    rows = []
    started = time.monotonic()
    for i, path in enumerate(paths):
        row = check(path, dsls, args.timeout, args.verify_below)
        rows.append(row)
        marks = " ".join(f"{n}:{'gen' if s['generates'] else 'lib' if s['renders'] else 'no'}" for n, s in row["dsls"].items())
        match = row.get("plans_match")
        marks += f" plans {match['matched']}/{match['checked']} match {match['reason']}" if match else ""
        print(f"[{i + 1}/{len(paths)}] {row['problem']}: {'traced' if row['traced'] else 'NOT traced'} {marks} "
              f"{row['reason']}", flush=True)
    summary = summarise(rows, list(dsls))
    summary["seconds"] = round(time.monotonic() - started, 1)
    command = "python bench/coverage.py " + " ".join(sys.argv[1:] if argv is None else argv)
    before = summarise_before(args.before, list(dsls)) if args.before else None
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "before": before, "rows": rows}, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(summary, rows, [str(s) for s in args.suites], command, before))
    print(json.dumps({k: v for k, v in summary.items() if k != "frontend_failures"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
