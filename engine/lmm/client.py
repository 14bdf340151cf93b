"""Sampling N responses from an OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM,
LM Studio, OpenRouter, ...) with the ``openai`` package.

One request asks for all N samples (``n=N``); endpoints that ignore ``n`` answer with fewer
choices, and the rest are asked as concurrent single requests (also when an endpoint refuses
``n`` with HTTP 400). The package's own retries are
off (``max_retries=0``): this module retries 429 (honouring Retry-After), 5xx, timeouts,
dropped connections and unreadable answers itself with exponential backoff, so the wait and
the final message are under its control. The API key is passed to the package only; it is
never logged, cached or put in a message.

Deadlines: ``timeout_s`` is the total time one request may take, from sending it to the last
byte of the answer (the package's own timeout is per read, so an endpoint that trickles one
byte at a time would never trip it): each request runs in a daemon thread that is abandoned
when its time is up. ``deadline_s`` bounds everything (requests, retries and their waits):
when it is reached the sampling fails with a message saying so.
"""

from __future__ import annotations

import email.utils
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

import openai

from engine.contacts.file import TokenUsage
from engine.lmm import DEFAULT_BASE_URL, DEFAULT_MODEL
from engine.lmm.prompts import Prompt



class LmmError(Exception):
    """The endpoint could not give the samples; the message says what to do."""


class RequestRejected(LmmError):
    """HTTP 400: the endpoint refused the request itself (retrying it unchanged is useless)."""


@dataclass(frozen=True)
class ClientSettings:
    """Where and how to ask. ``retries`` = tries after the first; the k-th retry waits
    ``backoff_base_s * 2**(k-1)`` seconds (at most ``backoff_max_s``) unless the server says
    how long with Retry-After (honoured up to ``retry_after_max_s``)."""

    model: str = DEFAULT_MODEL
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 120.0
    retries: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0
    max_parallel: int = 8
    deadline_s: float | None = 300.0


@dataclass(frozen=True)
class SamplingRequest:
    prompt: Prompt
    image_data_url: str
    samples: int = 20
    temperature: float = 0.7
    max_tokens: int = 500


@dataclass(frozen=True)
class SampledResponses:
    texts: tuple[str, ...]
    usage: TokenUsage
    requests: int


def _messages(request: SamplingRequest) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": request.prompt.system},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": request.prompt.user},
                {"type": "image_url", "image_url": {"url": request.image_data_url, "detail": "high"}},
            ],
        },
    ]


def _retry_after_s(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def _describe(error: Exception) -> str:
    if isinstance(error, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(error, openai.APIConnectionError):
        return "the connection failed or was dropped"
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}"
    if isinstance(error, openai.APIResponseValidationError):
        return "the answer was not a valid chat completion"
    if isinstance(error, ValueError):
        if str(error).startswith("not a chat completion"):
            return "the answer was JSON but not a chat completion"
        return "the answer was not valid JSON"
    return f"the answer was not a chat completion ({type(error).__name__})"


class _RequestTimedOut(Exception):
    """One request went past its total time (``timeout_s``)."""


class _Caller:
    """One endpoint, one request shape; thread-safe (the openai client is)."""

    def __init__(
        self,
        settings: ClientSettings,
        api_key: str,
        sleep: Callable[[float], None],
        deadline_at: float | None = None,
    ):
        self.settings = settings
        if deadline_at is None and settings.deadline_s is not None:
            deadline_at = time.monotonic() + settings.deadline_s
        self.deadline_at = deadline_at
        self.cancelled = threading.Event()
        self.client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=api_key,
            timeout=settings.timeout_s,
            max_retries=0,
        )
        self.sleep = sleep
        self.use_max_completion_tokens = False
        self.lock = threading.Lock()
        self.requests = 0

    def _remaining_s(self) -> float:
        return float("inf") if self.deadline_at is None else self.deadline_at - time.monotonic()

    def _deadline_error(self, last: str) -> LmmError:
        limit = self.settings.deadline_s
        limit_text = f"of {limit:g} s " if limit is not None else ""
        return LmmError(
            f"the model endpoint {self.settings.base_url} gave no complete answer within the overall "
            f"deadline {limit_text}(--deadline){f'; last problem: {last}' if last else ''}. Check the "
            "endpoint and the network, or allow more time with --deadline"
        )

    def _call(self, function: Callable[[], Any], limit_s: float) -> Any:
        """``function()`` in a daemon thread, given at most ``limit_s`` seconds in total."""
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def target() -> None:
            try:
                outcome["value"] = function()
            except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = error
            finally:
                finished.set()

        threading.Thread(target=target, name="prosepose-lmm-request", daemon=True).start()
        end = time.monotonic() + limit_s
        while not finished.is_set():
            left = end - time.monotonic()
            if left <= 0:
                raise _RequestTimedOut()
            if self.cancelled.is_set():
                raise LmmError("sampling was cancelled")
            finished.wait(min(left, 0.2))
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def complete(self, request: SamplingRequest, n: int) -> tuple[list[str], TokenUsage]:
        """One chat completion with ``n`` choices, retried; raises LmmError at the end."""
        settings = self.settings
        last = ""
        for attempt in range(settings.retries + 1):
            remaining = self._remaining_s()
            if remaining <= 0:
                raise self._deadline_error(last)
            with self.lock:
                self.requests += 1
            token_limit = (
                {"max_completion_tokens": request.max_tokens}
                if self.use_max_completion_tokens
                else {"max_tokens": request.max_tokens}
            )
            try:
                response = self._call(
                    lambda: self.client.chat.completions.create(
                        model=settings.model,
                        messages=_messages(request),
                        n=n,
                        temperature=request.temperature,
                        **token_limit,
                    ),
                    min(settings.timeout_s, remaining),
                )
                return self._read(response)
            except _RequestTimedOut:
                if self._remaining_s() <= 0:
                    raise self._deadline_error(last or "the last request was still unanswered") from None
                last = f"the request timed out (no complete answer within --timeout {settings.timeout_s:g} s)"
                wait_s = None
            except openai.RateLimitError as error:
                if getattr(error, "code", None) == "insufficient_quota":
                    raise LmmError(
                        f"the endpoint {settings.base_url} says the account's quota is used up "
                        "(HTTP 429 insufficient_quota): add credit or use another key or endpoint"
                    ) from None
                last = _describe(error) + " (rate limited)"
                wait_s = _retry_after_s(error)
            except openai.BadRequestError as error:
                message = str(getattr(error, "message", "")) or str(error)
                if "max_completion_tokens" in message and not self.use_max_completion_tokens:
                    # Newer OpenAI models take max_completion_tokens instead of max_tokens.
                    self.use_max_completion_tokens = True
                    continue
                raise RequestRejected(
                    f"the endpoint {settings.base_url} rejected the request (HTTP 400): "
                    f"{message[:300]}; check --model and that it accepts images"
                ) from None
            except openai.AuthenticationError:
                raise LmmError(
                    f"the endpoint {settings.base_url} refused the API key (HTTP 401): set a valid "
                    "key in OPENAI_API_KEY or in the variable named by --api-key-env"
                ) from None
            except openai.NotFoundError:
                raise LmmError(
                    f"the endpoint {settings.base_url} answered 404: check --base-url and --model "
                    f"({settings.model!r})"
                ) from None
            except openai.APIStatusError as error:
                if error.status_code < 500 and error.status_code not in (408, 409):
                    raise LmmError(
                        f"the endpoint {settings.base_url} answered HTTP {error.status_code}: "
                        f"{str(error)[:300]}"
                    ) from None
                last = _describe(error)
                wait_s = _retry_after_s(error)
            except (openai.APIConnectionError, openai.APIResponseValidationError, ValueError) as error:
                # ValueError: a body that is not JSON, or JSON that is not a chat completion
                last = _describe(error)
                wait_s = None
            if attempt == settings.retries:
                break
            if wait_s is None:
                wait_s = min(settings.backoff_max_s, settings.backoff_base_s * 2**attempt)
            wait_s = min(wait_s, settings.retry_after_max_s)
            if wait_s >= self._remaining_s():
                raise self._deadline_error(last)
            self.sleep(wait_s)
        raise LmmError(
            f"the model endpoint {settings.base_url} failed after {settings.retries + 1} tries: "
            f"{last}. Check the endpoint and the network, or try again later"
        )

    @staticmethod
    def _read(response: Any) -> tuple[list[str], TokenUsage]:
        """Texts and usage of a completion; ValueError when it is not shaped like one (the
        package does not validate answers, so a JSON body of any shape reaches here)."""
        try:
            choices = response.choices
            if not isinstance(choices, list):
                raise ValueError("not a chat completion: choices is not a list")
            texts = []
            for choice in sorted(choices, key=lambda c: getattr(c, "index", 0) or 0):
                content = choice.message.content if choice.message is not None else None
                texts.append(content if isinstance(content, str) else "")
            usage = getattr(response, "usage", None)
            if usage is None:
                return texts, TokenUsage()
            prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion = int(getattr(usage, "completion_tokens", 0) or 0)
            total = int(getattr(usage, "total_tokens", 0) or 0) or prompt + completion
            return texts, TokenUsage(prompt, completion, total)
        except (AttributeError, TypeError, KeyError) as error:
            raise ValueError(f"not a chat completion: {error}") from None


def sample_responses(
    request: SamplingRequest,
    settings: ClientSettings,
    api_key: str,
    on_sample: Callable[[int, int], None] | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    deadline_at: float | None = None,
) -> SampledResponses:
    """Ask for ``request.samples`` responses; ``on_sample(done, total)`` after each one.
    ``deadline_at`` (``time.monotonic()`` time): when everything must be over; default
    ``settings.deadline_s`` from now. Raises :class:`LmmError` with a message for the user when
    the endpoint fails or the deadline passes."""
    if request.samples < 1:
        raise ValueError("ask for at least one sample")
    caller = _Caller(settings, api_key, sleep, deadline_at)
    try:
        return _sample(caller, request, settings, on_sample)
    finally:
        # A stop (an exception, a signal) ends the waits of the other requests at once.
        caller.cancelled.set()


def _sample(
    caller: _Caller,
    request: SamplingRequest,
    settings: ClientSettings,
    on_sample: Callable[[int, int], None] | None,
) -> SampledResponses:
    total = request.samples
    texts: list[str] = []
    usage = TokenUsage()
    progress_lock = threading.Lock()

    def record(new_texts: list[str], new_usage: TokenUsage) -> None:
        nonlocal usage
        with progress_lock:
            for text in new_texts:
                if len(texts) < total:
                    texts.append(text)
                    if on_sample is not None:
                        on_sample(len(texts), total)
            usage = usage + new_usage

    try:
        first_texts, first_usage = caller.complete(request, total)
    except RequestRejected:
        if total == 1:
            raise
        # Some endpoints refuse n > 1 outright: one single request shows whether the request
        # itself is the problem (then its error is final), the rest follow as below.
        first_texts, first_usage = caller.complete(request, 1)
    record(first_texts, first_usage)
    missing = total - len(texts)
    if missing > 0:
        # The endpoint ignored n: the rest as single requests, a few at a time.
        pool = ThreadPoolExecutor(max_workers=max(1, min(settings.max_parallel, missing)))
        try:
            futures = [pool.submit(caller.complete, request, 1) for _ in range(missing)]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in futures:
                if future.cancelled():
                    continue
                error = future.exception()
                if error is not None:
                    raise error
                record(*future.result())
        finally:
            caller.cancelled.set()
            pool.shutdown(wait=False, cancel_futures=True)
        if len(texts) < total:
            raise LmmError(
                f"the endpoint {settings.base_url} returned {len(texts)} of {total} samples "
                "(some answers had no choices); try again or lower --samples"
            )
    return SampledResponses(texts=tuple(texts), usage=usage, requests=caller.requests)
