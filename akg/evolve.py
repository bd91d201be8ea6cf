"""LLM mode's search: an evolutionary loop over islands, the agents proposing, the harness judging.

Population: every candidate the search has measured (the reference and the template candidates
seed it). Islands keep separate lineages so one early winner does not narrow every prompt to
variants of itself; every ``migrate_every`` rounds each island's best joins the next island.
Each round:
  1. pick up to ``concurrency`` islands by UCB1 over their records of improvements (exploit islands
     that improve, still visit the others), and a parent in each (its best, sometimes another
     member); their model calls run at once, their candidates are judged one at a time;
  2. show the agents the parent with the tester's feedback, inspirations from good, medium and
     poor candidates, the analyzer's brief, the DSL's guide and a template kernel;
  3. designer (unless ``agents=("coder",)``) -> coder -> candidate; the static screen's findings
     and the harness verdict judge it;
  4. a build or correctness failure goes to the repair role with that feedback, a bounded number
     of times.
Stops at the candidate budget (code-writing turns), the token budget, the wall-clock limit, or
near the roofline floor. Every turn (prompt id, reply id, prompt hash, outcome) is in the store.
"""
from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from akg import screen
from akg.agents import analyzer, coder, designer, prompts, repair, tester
from akg.ir import Candidate, Verdict
from akg.llm import LLMClient, LLMError

AGENT_SETS = {"all": ("designer", "coder"), "coder": ("coder",)}


@dataclass(frozen=True)
class EvolveOptions:
    candidates: int = 12            # code-writing turns (coder and repair), measured or not
    islands: int = 2
    migrate_every: int = 3          # rounds between migrations
    repairs: int = 2                # repair attempts per new candidate
    agents: tuple[str, ...] = ("designer", "coder")
    hint: str = ""
    port_source: str = ""           # akg migrate: the kernel file being ported, shown to designer and coder
    port_source_dsl: str = ""       # ... and the DSL it is written in
    seed: int = 0                   # parent choice is random; seeded so a replay makes the same choices
    exploration: float = 1.0        # UCB1 exploration constant
    explore_parent: float = 0.25    # chance of a parent other than the island's best


@dataclass
class Island:
    members: list = field(default_factory=list)   # Scored, accepted
    visits: int = 0
    reward: float = 0.0

    def best(self):
        return min(self.members, key=lambda s: s.time_ms) if self.members else None


class Evolver:
    def __init__(self, client: LLMClient, options: EvolveOptions, analysis, floor_ms: float | None):
        self.client, self.options = client, options
        self.analysis, self.floor_ms = analysis, floor_ms
        self.rng = random.Random(options.seed)
        self.turns: list[prompts.Turn] = []
        self.written = 0              # code-writing turns so far
        self.error: LLMError | None = None
        self.stop_reason = ""

    # -- entry ---------------------------------------------------------------------------------

    def run(self, search, plan_options) -> None:
        """Improve on what ``search`` has measured; LLMError ends the loop but not the run."""
        try:
            self._run(search, plan_options)
        except LLMError as e:
            self.error = e
            self.stop_reason = f"LLM endpoint failed: {e}"
        search.progress(f"LLM search stopped: {self.stop_reason}", None)

    def _run(self, search, plan_options) -> None:
        self.search = search
        self.brief = analyzer.hardware_brief(self.analysis, search.hardware, self.floor_ms)
        self.example = self._example_kernel(search, plan_options)
        islands = self._seed_islands(search)
        generation = rounds = 0
        with ThreadPoolExecutor(max_workers=max(1, self.client.settings.concurrency),
                                thread_name_prefix="akg-llm") as requests:
            while not self._should_stop(search):
                # One round: up to `concurrency` islands ask the model at once; the harness then
                # judges their candidates one at a time, in island order.
                width = min(len(islands), max(1, self.client.settings.concurrency),
                            self.options.candidates - self.written)
                picked = self._pick_islands(islands, width)
                jobs = []
                for index in picked:
                    parent = self._pick_parent(islands[index])
                    search.progress(f"LLM generation {generation + 1} on island {index} from {parent.candidate.id}", None)
                    context = self._context(search, parent, index, len(islands))
                    jobs.append((index, context, requests.submit(self._propose, context)))
                    generation += 1
                for index, context, proposal in jobs:
                    island = islands[index]
                    before = island.best().time_ms if island.best() else math.inf
                    found = self._judge_proposal(search, context, *proposal.result())
                    island.visits += 1
                    for scored in found:
                        if scored.verdict.accepted and scored.candidate.origin != "reference":
                            island.members.append(scored)
                    best = island.best().time_ms if island.best() else math.inf
                    island.reward += 1.0 if best < before else 0.0
                rounds += 1
                if len(islands) > 1 and rounds % self.options.migrate_every == 0:
                    self._migrate(islands)

    # -- stop rules ----------------------------------------------------------------------------

    def _should_stop(self, search) -> bool:
        if self.stop_reason:
            return True
        deadline = getattr(search, "deadline", None)
        if self.written >= self.options.candidates:
            self.stop_reason = f"candidate budget of {self.options.candidates} spent"
        elif deadline is not None and deadline.remaining() < search._judge_estimate_s() + search._full_estimate_s():
            # Like the template search: another candidate only if it and the final verification fit.
            self.stop_reason = f"time limit of {deadline.limit_s:g} s reached"
        elif (left := self.client.budget_left()) is not None and left <= 0:
            self.stop_reason = f"token budget of {self.client.settings.token_budget} spent"
        elif search._near_floor():
            self.stop_reason = "the best candidate is near the roofline floor"
        return bool(self.stop_reason)

    # -- population ----------------------------------------------------------------------------

    def _seed_islands(self, search) -> list[Island]:
        accepted = sorted((s for s in search.scored if s.verdict.accepted), key=lambda s: s.time_ms)
        reference = next(s for s in search.scored if s.candidate.origin == "reference")
        islands = [Island() for _ in range(max(1, self.options.islands))]
        for i, island in enumerate(islands):
            # Every island can start from the reference; the best seeds are dealt out in turn.
            island.members.append(reference)
            for scored in accepted[i::len(islands)][:3]:
                if scored is not reference:
                    island.members.append(scored)
        return islands

    def _pick_islands(self, islands: list[Island], count: int) -> list[int]:
        """The ``count`` islands with the highest UCB1 scores (unvisited ones first), in index order."""
        total = max(1, sum(isl.visits for isl in islands))
        ucb = [math.inf if isl.visits == 0 else
               isl.reward / isl.visits + self.options.exploration * math.sqrt(math.log(total) / isl.visits)
               for isl in islands]
        ranked = sorted(range(len(islands)), key=lambda i: (-ucb[i], i))
        return sorted(ranked[:max(1, count)])

    def _pick_parent(self, island: Island):
        ranked = sorted(island.members, key=lambda s: (s.time_ms, s.candidate.id))
        if len(ranked) > 1 and self.rng.random() < self.options.explore_parent:
            return self.rng.choice(ranked[1:])
        return ranked[0]

    def _migrate(self, islands: list[Island]) -> None:
        bests = [isl.best() for isl in islands]
        for i, best in enumerate(bests):
            target = islands[(i + 1) % len(islands)]
            if best is not None and all(m.candidate.id != best.candidate.id for m in target.members):
                target.members.append(best)

    # -- one generation ------------------------------------------------------------------------

    def _propose(self, context: prompts.Context) -> tuple[prompts.Turn | None, prompts.Turn | None]:
        """Designer (unless coder-only), then coder: the model calls of one generation, run in a
        request thread. (design turn, code turn); the code turn is None when the budget ran out."""
        design_turn, design = None, None
        if "designer" in self.options.agents:
            design_turn = designer.design(self.client, context)
            if design_turn.fatal is not None:
                return design_turn, None
            design = design_turn.design      # a failed design still leaves the coder to try without one
        return design_turn, coder.write(self.client, context, design)

    def _judge_proposal(self, search, context, design_turn, code_turn) -> list:
        """Record the design, measure the code, and repair it while feedback can help."""
        if design_turn is not None:
            self._record(search, design_turn)
            if design_turn.fatal is not None:
                self.stop_reason = str(design_turn.fatal)
        if code_turn is None:
            return []
        found = []
        scored = self._code_turn(search, code_turn)
        attempt = 0
        while scored is not None:
            found.append(scored)
            if not repair.worth_repairing(scored.verdict) or attempt >= self.options.repairs or self._should_stop(search):
                break
            attempt += 1
            turn = repair.repair(self.client, context, scored.candidate, tester.feedback(scored.verdict),
                                 attempt, self.options.repairs)
            scored = self._code_turn(search, turn)
        return found

    def _code_turn(self, search, turn: prompts.Turn):
        """Measure the turn's candidate (None for a failed turn) and record the turn."""
        self.written += 1
        if turn.fatal is not None:
            self.stop_reason = str(turn.fatal)
        if turn.candidate is None:
            self._record(search, turn)
            return None
        findings = screen.findings(turn.candidate.source, search.dsl, search.options.policy)
        scored = search.measure(turn.candidate, findings)
        self._record(search, turn, scored.verdict)
        return scored

    def _record(self, search, turn: prompts.Turn, verdict: Verdict | None = None) -> None:
        self.turns.append(turn)
        ex = turn.exchange
        if ex is not None:
            search.store.add_message(ex.request_id, ex.prompt)
            search.store.add_message(ex.reply_id, ex.text)
        reason = turn.reason or (verdict.reason if verdict is not None and not verdict.accepted else "")
        search.store.add_turn({
            "run": search.run_id, "problem": search.problem.digest, "role": turn.role, "model": turn.model,
            "prompt_hash": turn.prompt_hash, "prompt_id": ex.request_id if ex else None,
            "reply_id": ex.reply_id if ex else None, "parent": turn.parent_id,
            "candidate": turn.candidate.id if turn.candidate else None, "ok": int(not reason), "reason": reason or None,
            "prompt_tokens": ex.prompt_tokens if ex else 0, "completion_tokens": ex.completion_tokens if ex else 0})
        if turn.reason:
            search.progress(f"  {turn.role} turn failed: {turn.reason[:120]}", None)

    # -- prompt context ------------------------------------------------------------------------

    def _context(self, search, parent, island: int, islands: int) -> prompts.Context:
        return prompts.Context(
            problem_name=search.problem.name, problem_source=search.problem.source, dsl=search.dsl.name,
            device=search.device, guide=search.dsl.guide(), brief=self.brief, parent=self._example(parent, True),
            inspirations=self._inspirations(search, parent), example_kernel=self.example, hint=self.options.hint,
            line=island + 1, lines=islands, port_source=self.options.port_source,
            port_source_dsl=self.options.port_source_dsl)

    def _example(self, scored, with_source: bool, tier: str = "") -> prompts.Example:
        c = scored.candidate
        if c.origin == "reference":
            # No time here: the eager baseline is measured afresh each run, and a prompt must not
            # change between a run and its replay.
            result = "The unmodified program: correct by definition, the 1.00x baseline."
            source = ""
        else:
            result = tester.feedback(scored.verdict)
            source = c.source if with_source else ""
        return prompts.Example(c.id, c.origin, c.description, result, source, tier)

    def _inspirations(self, search, parent) -> tuple[prompts.Example, ...]:
        others = [s for s in search.scored if s.candidate.id != parent.candidate.id and s.candidate.origin != "reference"]
        good = sorted((s for s in others if s.verdict.accepted), key=lambda s: (s.time_ms, s.candidate.id))
        poor = [s for s in others if not s.verdict.accepted]
        chosen = []
        if good:
            chosen.append(self._example(good[0], False, "good"))
        if len(good) > 2:
            chosen.append(self._example(good[len(good) // 2], False, "medium"))
        if poor:
            chosen.append(self._example(poor[-1], False, "poor"))
        return tuple(chosen)

    @staticmethod
    def _example_kernel(search, plan_options) -> str:
        """The best measured template candidate, else the first plan the DSL can render."""
        templates = sorted((s for s in search.scored if s.candidate.origin == "template" and s.verdict.accepted),
                           key=lambda s: (s.time_ms, s.candidate.id))
        if templates:
            return templates[0].candidate.source
        for po in plan_options:
            made = search._candidate(po.plan, None)
            if isinstance(made, Candidate):
                return made.source
        return ""

    # -- report --------------------------------------------------------------------------------

    def report(self) -> dict:
        by_role: dict[str, dict[str, int]] = {}
        for t in self.turns:
            entry = by_role.setdefault(t.role, {"turns": 0, "failed": 0})
            entry["turns"] += 1
            entry["failed"] += int(not t.ok)
        return {**self.client.report(), "agents": list(self.options.agents), "turns": by_role,
                "code_turns": self.written, "stopped": self.stop_reason,
                "error": str(self.error) if self.error else None}


# -- configuration: [llm] in the TOML file, overridden by flags ------------------------------------

LLM_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str, "url": str, "api_key_env": str, "mode": str, "agents": str, "hint": str,
    "timeout": (int, float), "retries": int, "backoff": (int, float), "concurrency": int, "token_budget": int,
    "temperature": (int, float), "max_tokens": int, "price_in": (int, float), "price_out": (int, float),
    "candidates": int, "islands": int, "migrate_every": int, "repairs": int, "seed": int,
    "record": str, "replay": str,
}
MODES = ("compiler", "llm", "both")


@dataclass(frozen=True)
class LLMRun:
    """What LLM mode needs: the client and the loop's options."""
    client: LLMClient
    options: EvolveOptions


def check_llm_values(values: dict, where: str) -> dict:
    from akg.errors import ConfigError
    for key, value in values.items():
        expected = LLM_KEYS.get(key)
        if expected is None:
            raise ConfigError(f"{where}: unknown key llm.{key}; known: {', '.join(LLM_KEYS)}")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"{where}: llm.{key} = {value!r} has the wrong type")
    if values.get("mode", "both") not in MODES:
        raise ConfigError(f"{where}: llm.mode must be one of {', '.join(MODES)}, not {values['mode']!r}")
    if values.get("agents", "all") not in AGENT_SETS:
        raise ConfigError(f"{where}: llm.agents must be one of {', '.join(AGENT_SETS)}, not {values['agents']!r}")
    return values


def llm_run(values: dict) -> tuple[str, LLMRun | None]:
    """(search mode, LLMRun or None) from merged [llm] values and flags."""
    import os
    from akg.errors import AkgError
    from akg.llm import LLMSettings
    model = values.get("model")
    mode = values.get("mode") or ("both" if model else "compiler")
    if mode not in MODES:
        raise AkgError(f"--mode must be one of {', '.join(MODES)}")
    if mode == "compiler":
        return mode, None
    if not model:
        raise AkgError(f"--mode {mode} needs a model: pass --llm MODEL (and --llm-url for a local server)")
    key = os.environ.get(values["api_key_env"]) if values.get("api_key_env") else None
    for name in ("candidates", "islands", "repairs", "concurrency", "token_budget", "migrate_every"):
        if values.get(name) is not None and values[name] < (0 if name == "repairs" else 1):
            raise AkgError(f"llm {name.replace('_', '-')} must be positive, got {values[name]}")
    settings = LLMSettings(
        model=model, base_url=values.get("url"), api_key=key, timeout_s=float(values.get("timeout", 600)),
        retries=values.get("retries", 4), backoff_s=float(values.get("backoff", 2.0)),
        concurrency=values.get("concurrency", 4), token_budget=values.get("token_budget"),
        temperature=float(values.get("temperature", 0.7)), max_tokens=values.get("max_tokens"),
        price_in=values.get("price_in"), price_out=values.get("price_out"),
        record=values.get("record"), replay=values.get("replay"))
    options = EvolveOptions(
        candidates=values.get("candidates", 12), islands=values.get("islands", 2),
        migrate_every=values.get("migrate_every", 3), repairs=values.get("repairs", 2),
        agents=AGENT_SETS[values.get("agents", "all")], hint=values.get("hint", ""), seed=values.get("seed", 0))
    return mode, LLMRun(LLMClient(settings), options)
