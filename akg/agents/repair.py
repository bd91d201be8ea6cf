"""The repair role: a candidate that failed to build or to compute the right values goes back to
the model with the tester's feedback, a bounded number of times (prompts/repair.j2)."""
from __future__ import annotations

from akg.agents import coder, prompts
from akg.ir import Candidate
from akg.llm import LLMClient

ROLE = "repair"


def worth_repairing(verdict) -> bool:
    """Build, load and correctness failures can be fixed from feedback; a slow candidate cannot."""
    return not verdict.accepted and not any(c.name in ("time_limit",) for c in verdict.checks if not c.passed)


def repair(client: LLMClient, context: prompts.Context, failed: Candidate, feedback: str, attempt: int,
           attempts: int) -> prompts.Turn:
    answer = prompts.ask(client, ROLE, context, failed.id, failed_id=failed.id, failed_source=failed.source,
                         feedback=feedback, attempt=attempt, attempts=attempts)
    if isinstance(answer, prompts.Turn):
        return answer
    return coder.candidate_from_reply(answer, ROLE, client.model, context.dsl, failed.id,
                                      f"repair {attempt} of {failed.id}")
