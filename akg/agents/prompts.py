"""What the LLM roles share: prompt templates, the typed context they read, and reply parsing.

Each role's prompt is ``templates/prompts/<role>.j2`` (jinja2, StrictUndefined). A prompt's hash is
the hash of its template text (with the system prompt's), so a dataset can tell which version of
a prompt wrote a kernel; the exact request is content-addressed separately by the LLM client.

The reply contract (other tools rely on it): a reply that carries code holds one fenced
```` ```python ```` block with a complete candidate file defining ``ModelNew``. Anything else is a
failed turn with its reason, never an exception.
"""
from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2

import akg.templates
from akg.ir import Candidate, Design, IRError
from akg.llm import BudgetExhausted, Exchange, LLMClient, TurnFailed

PROMPT_DIR = Path(akg.templates.__file__).parent / "prompts"
MAX_SOURCE_CHARS = 12000   # a parent or example longer than this is cut (the model sees where)

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(PROMPT_DIR), undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Example:
    """A candidate shown in a prompt: the parent to improve, or an inspiration."""
    id: str
    origin: str
    description: str
    result: str                 # the tester's summary: time and speedups, or why it failed
    source: str = ""            # shown for the parent and good inspirations only
    tier: str = ""              # good | medium | poor (inspirations)


@dataclass(frozen=True)
class Context:
    """Everything a role's prompt may show; built by the search, read by every role."""
    problem_name: str
    problem_source: str
    dsl: str
    device: str
    guide: str
    brief: str                          # the analyzer's analysis + hardware brief
    parent: Example
    inspirations: tuple[Example, ...] = ()
    example_kernel: str = ""            # the template renderer's kernel for this program, if any
    hint: str = ""
    line: int = 1                       # which island of the search asks (so parallel asks differ)
    lines: int = 1
    port_source: str = ""               # akg migrate: the source kernel to port into this DSL
    port_source_dsl: str = ""


@dataclass(frozen=True)
class Turn:
    """One LLM turn, successful or not."""
    role: str
    model: str
    prompt_hash: str
    parent_id: str | None
    exchange: Exchange | None = None
    candidate: Candidate | None = None
    design: Design | None = None
    reason: str = ""                    # why the turn failed; "" when it produced what it should
    fatal: Exception | None = field(default=None, compare=False)  # BudgetExhausted stops the search

    @property
    def ok(self) -> bool:
        return not self.reason


@lru_cache(maxsize=None)
def prompt_hash(role: str) -> str:
    text = (PROMPT_DIR / "system.j2").read_text() + (PROMPT_DIR / f"{role}.j2").read_text()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render(name: str, **values) -> str:
    return _ENV.get_template(f"{name}.j2").render(**values)


def clip(source: str, limit: int = MAX_SOURCE_CHARS) -> str:
    if len(source) <= limit:
        return source
    head = source[: limit // 2]
    tail = source[-limit // 2:]
    return f"{head}\n# ... {len(source) - limit} characters left out ...\n{tail}"


def messages(role: str, context: Context, **values) -> list[dict]:
    system = render("system", role=role, dsl=context.dsl, device=context.device)
    return [{"role": "system", "content": system},
            {"role": "user", "content": render(role, c=context, clip=clip, **values)}]


def ask(client: LLMClient, role: str, context: Context, parent_id: str | None, **values) -> Turn | Exchange:
    """The exchange, or a failed Turn (endpoint rejected this request, or the token budget is spent).
    LLMError (the endpoint is unusable) propagates: it ends the search."""
    try:
        return client.chat(messages(role, context, **values), role)
    except TurnFailed as e:
        return Turn(role, client.model, prompt_hash(role), parent_id, reason=str(e))
    except BudgetExhausted as e:
        return Turn(role, client.model, prompt_hash(role), parent_id, reason=str(e), fatal=e)


# -- reply parsing ---------------------------------------------------------------------------------

def fenced_blocks(text: str, languages: tuple[str, ...]) -> list[str]:
    return [body for lang, body in _FENCE.findall(text) if lang.lower() in languages]


def extract_source(text: str) -> tuple[str | None, str]:
    """(the candidate file, "") or (None, why the reply is unusable)."""
    blocks = fenced_blocks(text, ("python", "py"))
    if not blocks:
        if not text.strip():
            return None, "empty reply"
        return None, "the reply holds no ```python block with the candidate file"
    with_model = [b for b in blocks if re.search(r"^class\s+ModelNew\b", b, re.MULTILINE)]
    if not with_model:
        return None, "the ```python block defines no class ModelNew"
    if len(with_model) > 1:
        return None, f"the reply holds {len(with_model)} python blocks defining ModelNew; one complete file is expected"
    return with_model[0].strip() + "\n", ""


def syntax_error(source: str) -> str:
    try:
        ast.parse(source)
    except SyntaxError as e:
        line = (e.text or "").rstrip()
        return f"Python syntax error at line {e.lineno}: {e.msg}" + (f"\n    {line}" if line else "")
    return ""


def extract_design(text: str) -> tuple[Design | None, str]:
    blocks = fenced_blocks(text, ("json", ""))
    bare = text.strip()
    candidates = blocks or ([bare] if bare.startswith("{") else [])
    last = "the reply holds no ```json block with the design"
    for block in candidates:
        try:
            return Design.from_json(block), ""
        except IRError as e:
            last = str(e)
    return None, last
