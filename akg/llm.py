"""The client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, Ollama, LM Studio, …).

What it adds to the ``openai`` package:
- retries with exponential backoff on 429 and 5xx answers and on dropped connections;
- a concurrency limit (requests in flight at once), a per-request timeout, a token budget;
- token and cost accounting for report.json;
- a content-addressed cassette: ``record`` appends every exchange to a JSON-lines file keyed by
  the hash of the request (and how many times that same request was made before), ``replay``
  answers from such a file and never touches the network — a request the cassette does not hold
  is an error, so a replay that drifts from the recorded run stops instead of silently differing.

Fatal endpoint problems (unreachable, bad key, unknown model, a cassette miss) raise ``LLMError``
(exit code 7). A request the endpoint rejects as malformed (400: too long for the context, say)
raises ``TurnFailed``: the search records it as a failed turn and goes on.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from akg.errors import EXIT_LLM, AkgError

KEY_ENV = ("AKG_LLM_API_KEY", "OPENAI_API_KEY")


class LLMError(AkgError):
    """The endpoint cannot be used: unreachable, refused the key, does not know the model."""
    exit_code = EXIT_LLM


class TurnFailed(Exception):
    """One request failed in a way that does not condemn the endpoint (e.g. context too long)."""


class BudgetExhausted(Exception):
    """The token budget is spent; the search stops asking."""


@dataclass(frozen=True)
class LLMSettings:
    model: str
    base_url: str | None = None        # None: the openai package's default (api.openai.com)
    api_key: str | None = None         # None: AKG_LLM_API_KEY, else OPENAI_API_KEY, else a placeholder
    timeout_s: float = 600.0           # one request, connection to last token
    retries: int = 4                   # further attempts after a 429/5xx/connection failure
    backoff_s: float = 2.0             # first wait; doubles each retry (with jitter), capped at 60 s
    concurrency: int = 4               # requests in flight at once
    token_budget: int | None = None    # prompt + completion tokens over the whole run
    temperature: float = 0.7
    max_tokens: int | None = None
    price_in: float | None = None      # currency units per million prompt tokens
    price_out: float | None = None     # ... per million completion tokens
    record: str | None = None          # cassette file to append exchanges to
    replay: str | None = None          # cassette file to answer from (no network)

    def resolved_key(self) -> str:
        if self.api_key:
            return self.api_key
        for name in KEY_ENV:
            if os.environ.get(name):
                return os.environ[name]
        # Local servers (vLLM, Ollama, LM Studio) accept any key; the openai package insists on one.
        return "no-key"


@dataclass(frozen=True)
class Exchange:
    """One answered request."""
    request_id: str          # hash of the request: the cassette key and the prompt id in the store
    reply_id: str            # hash of the reply text
    text: str
    prompt_tokens: int
    completion_tokens: int
    replayed: bool = False
    prompt: str = ""         # the request as sent (JSON), for the store


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failed: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def content_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def request_body(model: str, messages: list[dict], temperature: float, max_tokens: int | None) -> dict:
    body = {"model": model, "messages": messages, "temperature": temperature}
    if max_tokens:
        body["max_tokens"] = max_tokens
    return body


def request_id(body: dict) -> str:
    return content_id(json.dumps(body, sort_keys=True, separators=(",", ":")))


class Cassette:
    """Exchanges keyed by (request hash, occurrence): the n-th identical request gets the n-th reply.

    A replayed request that matches no recorded one exactly takes the next unused exchange of its
    role, in recorded order, and is counted as drifted. Prompts carry judged results; a result the
    store could not keep (a candidate that timed out on a loaded machine is judged again) changes
    the next prompt's text but not which reply the recorded run got next."""

    def __init__(self, path: str | Path, mode: str):
        self.path, self.mode = Path(path), mode
        self._entries: dict[tuple[str, int], dict] = {}
        self._by_role: dict[str, list[tuple[str, int]]] = {}
        self._used: set[tuple[str, int]] = set()
        self._seen: dict[str, int] = {}
        self.drifted = 0
        self._lock = threading.Lock()
        if mode == "replay":
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")  # a recording is one run; an old file would mix two

    def _load(self) -> None:
        try:
            lines = self.path.read_text().splitlines()
        except OSError as e:
            raise LLMError(f"cassette {self.path}: cannot read ({e.strerror or e})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                slot = (entry["key"], int(entry["occurrence"]))
                self._entries[slot] = entry
                self._by_role.setdefault(str(entry.get("role", "")), []).append(slot)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise LLMError(f"cassette {self.path}: line {n} is not a recorded exchange") from None

    def occurrence(self, key: str) -> int:
        with self._lock:
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
            return n

    def lookup(self, key: str, occurrence: int, role: str) -> dict:
        with self._lock:
            slot = (key, occurrence)
            if slot not in self._entries or slot in self._used:
                slot = next((s for s in self._by_role.get(role, []) if s not in self._used), None)
                if slot is None:
                    raise LLMError(f"cassette {self.path} holds no reply for request {key} (#{occurrence + 1}, "
                                   f"{role}) and no unused {role} exchange; the run asks more than the recorded one")
                self.drifted += 1
            self._used.add(slot)
            return self._entries[slot]

    def append(self, key: str, occurrence: int, role: str, body: dict, reply: dict) -> None:
        line = json.dumps({"key": key, "occurrence": occurrence, "role": role, "request": body, "reply": reply},
                          sort_keys=True)
        with self._lock, self.path.open("a") as f:
            f.write(line + "\n")


class LLMClient:
    def __init__(self, settings: LLMSettings):
        if settings.record and settings.replay:
            raise AkgError("--llm-record and --llm-replay exclude each other")
        self.settings = settings
        self.usage = Usage()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max(1, settings.concurrency))
        self._cassette = (Cassette(settings.replay, "replay") if settings.replay
                          else Cassette(settings.record, "record") if settings.record else None)
        self._client = None if settings.replay else self._make_client()

    def _make_client(self):
        try:
            import openai
        except ImportError:
            raise AkgError("LLM mode needs the openai package: pip install 'akg[llm]'") from None
        return openai.OpenAI(base_url=self.settings.base_url, api_key=self.settings.resolved_key(),
                             timeout=self.settings.timeout_s, max_retries=0)

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def endpoint(self) -> str:
        return self.settings.base_url or "https://api.openai.com/v1"

    # -- checks ----------------------------------------------------------------------------------

    def check_endpoint(self) -> None:
        """Fail fast (before any measuring) when the endpoint cannot be reached or refuses the key.
        A server without a model list is fine: the first chat request will tell."""
        if self._client is None:
            return
        import openai
        try:
            self._client.models.list()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise LLMError(f"LLM endpoint {self.endpoint} refused the API key ({_status(e)}); "
                           f"set {KEY_ENV[0]} or {KEY_ENV[1]}") from None
        except openai.APIConnectionError:
            raise LLMError(f"LLM endpoint {self.endpoint} is unreachable; check --llm-url and that the server runs") from None
        except openai.APIError:
            pass

    def budget_left(self) -> int | None:
        if self.settings.token_budget is None:
            return None
        return self.settings.token_budget - self.usage.total_tokens

    # -- one request -----------------------------------------------------------------------------

    def chat(self, messages: list[dict], role: str) -> Exchange:
        """One completion. Raises BudgetExhausted, TurnFailed or LLMError; never a raw openai error."""
        left = self.budget_left()
        if left is not None and left <= 0:
            raise BudgetExhausted(f"token budget of {self.settings.token_budget} spent")
        s = self.settings
        body = request_body(s.model, messages, s.temperature, s.max_tokens)
        key = request_id(body)
        occurrence = self._cassette.occurrence(key) if self._cassette else 0
        if s.replay:
            reply = self._cassette.lookup(key, occurrence, role)["reply"]
            replayed = True
        else:
            with self._slots:
                reply = self._call(body)
            replayed = False
            if self._cassette is not None:
                self._cassette.append(key, occurrence, role, body, reply)
        exchange = Exchange(key, content_id(reply["text"]), reply["text"], int(reply.get("prompt_tokens", 0)),
                            int(reply.get("completion_tokens", 0)), replayed,
                            json.dumps(body, sort_keys=True))
        with self._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += exchange.prompt_tokens
            self.usage.completion_tokens += exchange.completion_tokens
        return exchange

    def _call(self, body: dict) -> dict:
        import openai
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                response = self._client.chat.completions.create(**body)
                return _reply(response)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                raise LLMError(f"LLM endpoint {self.endpoint} refused the API key ({_status(e)}); "
                               f"set {KEY_ENV[0]} or {KEY_ENV[1]}") from None
            except openai.NotFoundError:
                raise LLMError(f"LLM endpoint {self.endpoint} does not know model {s.model!r} "
                               "(or the URL lacks its /v1 path); check --llm and --llm-url") from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as e:
                last = e
                if attempt == s.retries:
                    break
                with self._lock:
                    self.usage.retries += 1
                time.sleep(_wait(e, s.backoff_s, attempt))
            except openai.APIStatusError as e:  # 400, 422, ...: this request, not the endpoint
                with self._lock:
                    self.usage.failed += 1
                raise TurnFailed(f"the endpoint rejected the request ({_status(e)}): {_message(e)}") from None
        if isinstance(last, openai.APIConnectionError):
            raise LLMError(f"LLM endpoint {self.endpoint} is unreachable ({type(last).__name__}) "
                           f"after {s.retries + 1} attempts; check --llm-url and that the server runs") from None
        raise LLMError(f"LLM endpoint {self.endpoint} kept failing ({_status(last)}) after {s.retries + 1} attempts") from None

    # -- accounting ------------------------------------------------------------------------------

    def report(self) -> dict:
        u, s = self.usage, self.settings
        cost = None
        if s.price_in is not None or s.price_out is not None:
            cost = round(u.prompt_tokens * (s.price_in or 0) / 1e6 + u.completion_tokens * (s.price_out or 0) / 1e6, 6)
        return {"model": s.model, "endpoint": None if s.replay else self.endpoint, "replayed_from": s.replay,
                "recorded_to": s.record,
                "replay_drifted": self._cassette.drifted if s.replay else None, "requests": u.requests, "retries": u.retries,
                "tokens": {"prompt": u.prompt_tokens, "completion": u.completion_tokens, "total": u.total_tokens},
                "token_budget": s.token_budget, "cost": cost}


def _reply(response) -> dict:
    choice = response.choices[0] if response.choices else None
    text = (choice.message.content if choice is not None and choice.message is not None else None) or ""
    usage = getattr(response, "usage", None)
    return {"text": text, "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
            "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
            "finish_reason": getattr(choice, "finish_reason", None) if choice is not None else None}


def _status(e: Exception) -> str:
    code = getattr(e, "status_code", None)
    return f"HTTP {code}" if code else type(e).__name__


def _message(e: Exception) -> str:
    return str(getattr(e, "message", e)).splitlines()[0][:300] if str(e) else type(e).__name__


def _wait(e: Exception, base: float, attempt: int) -> float:
    response = getattr(e, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    try:
        if retry_after is not None:
            return min(60.0, float(retry_after))
    except ValueError:
        pass
    return min(60.0, base * (2 ** attempt)) * (0.5 + random.random() / 2)
