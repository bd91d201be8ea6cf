"""The designer: which plans a DSL can run, and which schedules are worth measuring.

Compiler mode proposes candidates in two moves:
- *seed*: every fusion plan the DSL can render, each with its best-guess schedules;
- *tune*: coordinate descent on a plan — vary one group's schedule at a time, others held at
  their best so far. Measuring schedules one group at a time keeps the count linear in the number
  of options instead of their product.
"""
from __future__ import annotations

from dataclasses import dataclass

from akg.ir import FusedGroup, KernelPlan, LibraryCall, Schedule
from akg.targets import DSL, HardwareSpec


@dataclass(frozen=True)
class PlanOptions:
    plan: KernelPlan                               # plan with default schedules
    options: tuple[tuple[Schedule, ...], ...]      # per group: schedules to try (library groups: one)


def _group_options(group: FusedGroup, dsl: DSL, hardware: HardwareSpec) -> tuple[Schedule, ...]:
    if isinstance(group.kernel, LibraryCall):
        return (Schedule(),)
    if group.family not in dsl.families:
        return ()
    return tuple(dsl.schedules(group, hardware))


def plan_options(plan: KernelPlan, dsl: DSL, hardware: HardwareSpec) -> PlanOptions | None:
    """The plan with its schedule options, or None when the DSL cannot render some group."""
    options = tuple(_group_options(g, dsl, hardware) for g in plan.groups)
    if any(not opts for opts in options):
        return None
    return PlanOptions(plan.with_schedules(tuple(opts[0] for opts in options)), options)


def renderable_plans(plans: list[KernelPlan], dsl: DSL, hardware: HardwareSpec) -> list[PlanOptions]:
    found = [po for po in (plan_options(p, dsl, hardware) for p in plans) if po is not None]
    # Plans with fewer library groups first: they are the ones the DSL actually generates; among
    # those, fewer kernels first (each is a pass over memory and a launch).
    return sorted(found, key=lambda po: (library_compute_count(po.plan), generated_group_count(po.plan)))


def library_compute_count(plan: KernelPlan) -> int:
    """Library groups that compute. Memory-format conversions do not count: a channels-last plan
    leaves the same work to the framework as the plan it was made from, so it is not put behind
    plans that generate less."""
    return sum(isinstance(g.kernel, LibraryCall) and not g.kernel.converts_layout for g in plan.groups)


def generated_group_count(plan: KernelPlan) -> int:
    return sum(not isinstance(g.kernel, LibraryCall) for g in plan.groups)


def neighbours(po: PlanOptions, current: KernelPlan, group_index: int) -> list[KernelPlan]:
    """``current`` with group ``group_index``'s schedule replaced by each other option."""
    now = current.groups[group_index].schedule
    result = []
    for option in po.options[group_index]:
        if option == now:
            continue
        schedules = tuple(option if i == group_index else g.schedule for i, g in enumerate(current.groups))
        result.append(current.with_schedules(schedules))
    return result


def tunable_groups(po: PlanOptions) -> list[int]:
    return [i for i, opts in enumerate(po.options) if len(opts) > 1]


# -- LLM mode --------------------------------------------------------------------------------------

def design(client, context) -> "Turn":
    """The designer role over an LLM (prompts/designer.j2): a structured plan validated into
    ``ir.Design``, the user's hint folded in. An unusable reply is a failed turn with its reason."""
    from akg.agents import prompts
    answer = prompts.ask(client, "designer", context, context.parent.id)
    if isinstance(answer, prompts.Turn):
        return answer
    found, reason = prompts.extract_design(answer.text)
    return prompts.Turn("designer", client.model, prompts.prompt_hash("designer"), context.parent.id, answer,
                        design=found, reason=reason)
