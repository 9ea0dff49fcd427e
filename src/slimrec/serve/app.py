"""The HTTP service of a saved run: ``create_app(run_dir)`` returns a FastAPI app.

    uvicorn.run(create_app("runs/gowalla_mf"), port=8000)     # or: slimrec serve RUN_DIR

Endpoints (JSON in and out; the OpenAPI page is at ``/docs``):

- ``POST /recommend`` (retrieval runs): top-k items for known users, with their seen items
  and ``exclude_items`` removed, or ranked among ``include_items`` only; or for a new user from
  their ``history`` (folded in, see ``slimrec.serve.recommender``). Sequential runs: the next
  items after a ``history`` (oldest first), which the model reads as its input.
- ``POST /predict`` (CTR runs): click probabilities of rows of field values.
- ``GET /health/live``, ``GET /health/ready`` (200 once a model is loaded), ``GET /model`` (the
  manifest: task, method, budget, bytes per table, training metrics; the process RSS),
  ``GET /metrics`` (Prometheus text).
- ``POST /admin/reload`` (or SIGHUP to the process): load the run folder again, or another
  one, and swap it in atomically. A corrupt, foreign or other-task folder is refused and the
  old model keeps serving.

Errors are JSON ``{"error": message, ...}``: 422 for a malformed request (bad JSON, k out of
range, an empty list, a missing CTR field), 404 for unknown users (their ids listed) unless the
fallback is ``popular``, 413 for an oversized request, 503 before a model is loaded, 500 with
no detail for a bug (the traceback goes to the server log only).

Scoring runs on one thread beside the event loop: concurrent ``/recommend`` and ``/predict``
calls are gathered into micro-batches (``slimrec.serve.batching``) unless batching is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slimrec.config import FrozenConfig
from slimrec.errors import ArtifactError, SlimRecError
from slimrec.serve.artifact import WEIGHTS_FILE, load_artifact
from slimrec.serve.batching import MicroBatcher
from slimrec.serve.metrics import InstrumentMiddleware, ServeMetrics, current_rss_bytes
from slimrec.serve.predictor import Predictor
from slimrec.serve.recommender import ItemScoring, Query, Recommendation, Recommender
from slimrec.serve.sequential import SequentialRecommender

log = logging.getLogger("slimrec.serve")

# ``slimrec serve`` passes the run folder and settings to uvicorn's workers through these.
RUN_DIR_ENV, SETTINGS_ENV, THREADS_ENV = ("SLIMREC_SERVE_RUN_DIR", "SLIMREC_SERVE_SETTINGS",
                                          "SLIMREC_SERVE_THREADS")
FACTORY = "slimrec.serve.app:app_from_environment"
ENDPOINTS = ("/recommend", "/predict", "/health/live", "/health/ready", "/model", "/metrics",
             "/admin/reload")


class ServeSettings(FrozenConfig):
    """Settings of the service (``slimrec serve`` flags)."""

    max_batch_size: int = Field(256, ge=1, description="most queries (or CTR rows) scored "
                                "together")
    max_batch_delay_ms: float = Field(2.0, ge=0, description="longest wait for more calls "
                                      "before scoring a batch")
    batching: bool = Field(True, description="gather concurrent /recommend and /predict "
                           "calls")
    fallback: Literal["none", "popular"] = Field("none", description="unknown users: 404, or "
                                                 "the most popular items")
    reload_token: str | None = Field(None, description="token /admin/reload requires")
    max_body_bytes: int = Field(1_048_576, ge=1, description="larger request bodies get 413")
    max_users: int = Field(10_000, ge=1, description="users (or CTR rows) per request; more "
                           "get 413")
    item_scoring: ItemScoring = Field("stored", description="MF: score items from the table "
                                      "as stored (less memory) or from an fp32 copy (faster)")


# ---------------------------------------------------------------------------- request schemas
def _id_text(value: Any) -> Any:
    """Ids may be sent as JSON numbers; the vocabularies hold text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


ExternalId = Annotated[str, BeforeValidator(_id_text)]


class RecommendRequest(BaseModel):
    """Known users by id, or one new user by the item ids of their history."""

    model_config = ConfigDict(extra="forbid")

    users: list[ExternalId] | None = Field(None, min_length=1, description="external user ids")
    history: list[ExternalId] | None = Field(None, min_length=1, description="item ids of a "
                                             "user the model never saw")
    k: int = Field(20, ge=1, description="items per user (at most the number of items)")
    exclude_seen: bool = Field(True, description="drop items the user interacted with")
    exclude_items: list[ExternalId] = Field(default_factory=list, description="never return "
                                            "these items")
    include_items: list[ExternalId] | None = Field(None, min_length=1, description="rank only "
                                                   "these items")

    @model_validator(mode="after")
    def _one_kind_of_user(self) -> RecommendRequest:
        if (self.users is None) == (self.history is None):
            raise ValueError("give exactly one of users (known user ids) or history (item ids "
                             "of a new user)")
        return self


FieldValue = ExternalId | float | list[ExternalId]


class PredictRequest(BaseModel):
    """Rows of field values, keyed by field name."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, FieldValue]] = Field(min_length=1, description="one mapping of field "
                                              "name to value (a list for a multi-hot field) "
                                              "per row")


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: str | None = Field(None, description="run folder to serve; default: the one "
                                "being served (re-read from disk)")


# ---------------------------------------------------------------------------- the served model
@dataclass(frozen=True)
class LoadedModel:
    """One loaded run folder: a recommender (retrieval), a next-item recommender
    (sequential) or a predictor (CTR)."""

    folder: Path
    version: str
    manifest: dict[str, Any]
    recommender: Recommender | None = None
    predictor: Predictor | None = None
    sequential: SequentialRecommender | None = None

    @property
    def task(self) -> str:
        return self.manifest["task"]

    def memory(self) -> dict[str, int]:
        """Bytes of the model as stored, and of its tables as full fp32 tables."""
        full = sum(table["num_embeddings"] * table["embedding_dim"] * 4
                   for table in self.manifest["tables"].values())
        return {**self.manifest["memory_bytes"], "full_fp32_embeddings": full}


def load_model(folder: str | Path, item_scoring: ItemScoring = "stored") -> LoadedModel:
    """Load and check a run folder of any task (``ArtifactError`` when it cannot serve)."""
    artifact = load_artifact(folder)
    # The weights' checksum names the version: a re-saved model gets a new one.
    version = f"{artifact.folder.name}@{artifact.manifest['files'][WEIGHTS_FILE][:12]}"
    if artifact.task == "retrieval":
        return LoadedModel(artifact.folder, version, artifact.manifest,
                           recommender=Recommender.from_artifact(artifact, item_scoring))
    if artifact.task == "ctr":
        return LoadedModel(artifact.folder, version, artifact.manifest,
                           predictor=Predictor.from_artifact(artifact))
    if artifact.task == "sequential":
        return LoadedModel(artifact.folder, version, artifact.manifest,
                           sequential=SequentialRecommender.from_artifact(artifact))
    raise ArtifactError(f"{artifact.folder}: a {artifact.task} model; slimrec serve serves "
                        "retrieval, sequential and ctr models.")


class ServeError(Exception):
    """An error answered with ``status`` and a JSON body ``{"error": message, **extra}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


class Service:
    """The served model, its hot reload, and the scoring thread and batcher."""

    def __init__(self, run_dir: str | Path, settings: ServeSettings,
                 metrics: ServeMetrics) -> None:
        self.run_dir = Path(run_dir)
        self.settings = settings
        self.metrics = metrics
        self.current: LoadedModel | None = None
        self._first_load: asyncio.Future | None = None
        self._reload_lock = asyncio.Lock()
        self._signal_tasks: set[asyncio.Task] = set()
        # One scoring thread: batches are scored one after another while the loop gathers
        # the next; torch uses its own threads inside each product.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="slimrec-score")
        self.batcher = MicroBatcher(self.executor, settings.max_batch_size,
                                    settings.max_batch_delay_ms / 1000,
                                    on_batch=metrics.batch_size.observe)

    async def model(self) -> LoadedModel:
        """The model being served, loading the run folder on first use."""
        if self.current is not None:
            return self.current
        try:
            return await asyncio.shield(self.start_loading())
        except SlimRecError as error:
            raise ServeError(503, f"no model is loaded: {error}") from None

    def start_loading(self) -> asyncio.Future:
        """The first load of the run folder, started on the first call."""
        if self._first_load is None:
            self._first_load = asyncio.ensure_future(self._load(self.run_dir))
        return self._first_load

    def load_error(self) -> str | None:
        """Why the first load failed, if it did and no reload has succeeded since."""
        first = self._first_load
        if self.current is None and first is not None and first.done() and first.exception():
            return str(first.exception())
        return None

    async def _load(self, folder: Path) -> LoadedModel:
        loop = asyncio.get_running_loop()
        # Not on the scoring thread: the old model keeps answering while the new one loads.
        loaded = await loop.run_in_executor(None, load_model, folder,
                                            self.settings.item_scoring)
        if self.current is None:
            self._swap(loaded)
        return loaded

    def _swap(self, loaded: LoadedModel) -> None:
        # One reference assignment: a call holds the model it started with until it ends.
        self.current, self.run_dir = loaded, loaded.folder
        self.metrics.observe_model(loaded.memory())
        log.info("serving %s (%s, %s)", loaded.version, loaded.task, loaded.manifest["model"])

    async def reload(self, folder: str | Path | None = None) -> LoadedModel:
        """Load ``folder`` (default: the one served) and swap it in, or refuse it."""
        async with self._reload_lock:
            folder = Path(folder) if folder is not None else self.run_dir
            try:
                loaded = await asyncio.get_running_loop().run_in_executor(
                    None, load_model, folder, self.settings.item_scoring)
            except SlimRecError as error:
                self.metrics.reloads.labels("refused").inc()
                raise self._refused(str(error)) from None
            if self.current is not None and loaded.task != self.current.task:
                self.metrics.reloads.labels("refused").inc()
                raise self._refused(f"{folder} holds a {loaded.task} model; this server "
                                    f"serves a {self.current.task} model (start another "
                                    "server for it).")
            self._swap(loaded)
            self.metrics.reloads.labels("loaded").inc()
            return loaded

    def _refused(self, reason: str) -> ServeError:
        serving = self.current.version if self.current is not None else None
        log.error("reload refused: %s (still serving %s)", reason, serving)
        return ServeError(422, f"reload refused: {reason}", serving=serving)

    def reload_on_signal(self) -> None:
        """SIGHUP handler: reload the served folder; a refusal is logged."""
        task = asyncio.ensure_future(self.reload())
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_done)

    def _signal_done(self, task: asyncio.Task) -> None:
        self._signal_tasks.discard(task)
        if not task.cancelled() and isinstance(task.exception(), ServeError):
            return  # already logged by _refused
        if not task.cancelled() and task.exception() is not None:
            log.error("reload on SIGHUP failed: %s", task.exception())

    async def close(self) -> None:
        await self.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, function: Any, *args: Any) -> Any:
        """Run ``function(*args)`` on the scoring thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


# ---------------------------------------------------------------------------- the app
def create_app(run_dir: str | Path, settings: ServeSettings | None = None,
               **overrides: Any) -> FastAPI:
    """The FastAPI app serving ``run_dir`` (a folder written by ``slimrec train`` or
    ``slimrec compress``). Settings are a ``ServeSettings`` or its fields as keywords.

    The model is loaded at start-up (the app's lifespan), so a server is ready once it
    accepts connections; an app mounted without its lifespan loads it on the first call.
    """
    settings = settings or ServeSettings(**overrides)
    metrics = ServeMetrics(ENDPOINTS)
    service = Service(run_dir, settings, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.model()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            # Only in the main thread of a Unix process (not under TestClient's thread).
            loop.add_signal_handler(signal.SIGHUP, service.reload_on_signal)
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError,
                                     AttributeError):
                loop.remove_signal_handler(signal.SIGHUP)
            await service.close()

    app = FastAPI(title="SlimRec", summary="Recommendations from a compressed SlimRec model",
                  lifespan=lifespan)
    app.state.service = service
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(InstrumentMiddleware, metrics=metrics)
    _add_error_handlers(app)
    _add_recommend(app, service)
    _add_predict(app, service)
    _add_status(app, service)
    return app


class BodySizeLimit:
    """413 for a request body over the limit: at once when its Content-Length says so, else
    as soon as more bytes than the limit have arrived (the endpoint's body read fails with an
    ``HTTPException``, which FastAPI passes on)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"error": self._message(f"{int(declared):,} bytes")},
                                    status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._message(f"over {self.max_bytes:,} bytes"))
            return message

        await self.app(scope, counting_receive, send)

    def _message(self, size: str) -> str:
        return (f"request body of {size}; the limit is {self.max_bytes:,} bytes "
                "(--max-body-bytes)")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, error: ServeError) -> JSONResponse:
        return JSONResponse({"error": str(error), **error.extra}, status_code=error.status)

    @app.exception_handler(SlimRecError)
    async def user_error(request: Request, error: SlimRecError) -> JSONResponse:
        # A request the model cannot answer as asked (unknown include_items, a history of
        # unknown items, exclude_seen on a model saved without seen items, ...).
        return JSONResponse({"error": str(error)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
                   for item in error.errors()]
        message = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
                            for item in details)
        return JSONResponse({"error": f"invalid request: {message}", "detail": details},
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code,
                            headers=error.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.error("internal error on %s", request.url.path, exc_info=error)
        return JSONResponse({"error": "internal server error; see the server log"},
                            status_code=500)


def _require(model: LoadedModel, task: str, endpoint: str) -> None:
    if model.task != task:
        raise ServeError(409, f"{endpoint} needs a {task} model; this server serves a "
                         f"{model.task} model ({model.manifest['model']}).")


def _add_recommend(app: FastAPI, service: Service) -> None:
    settings = service.settings

    # Handlers return a JSONResponse: FastAPI then skips its generic encoder, which costs more
    # than the scoring on a small model.
    @app.post("/recommend")
    async def recommend(request: RecommendRequest) -> JSONResponse:
        """Top-k items for known users, or for a new user from their history."""
        model = await service.model()
        if model.task == "sequential":
            return await _recommend_next(service, model, request)
        _require(model, "retrieval", "/recommend")
        recommender = model.recommender
        _check_k(request.k, recommender.num_items)
        filters = {"k": request.k, "exclude_items": tuple(request.exclude_items),
                   "include_items": tuple(request.include_items or ())}
        if request.users is not None:
            if len(request.users) > settings.max_users:
                raise ServeError(413, f"{len(request.users):,} users in one request; the limit "
                                 f"is {settings.max_users:,} (--max-users).")
            unknown = recommender.unknown_users(request.users)
            if unknown and settings.fallback == "none":
                raise ServeError(404, f"{len(unknown)} user id(s) unknown to this model",
                                 unknown_users=unknown)
            queries = [Query(user=user, exclude_seen=request.exclude_seen, **filters)
                       for user in request.users]
        else:
            queries = [Query(history=tuple(request.history), **filters)]
        if settings.batching:
            answers = await service.batcher.submit(
                functools.partial(recommender.answer, fallback=settings.fallback), queries,
                key=(id(recommender), settings.fallback))
        else:
            answers = await service.score(recommender.answer, queries, settings.fallback)
        return JSONResponse({"model_version": model.version,
                             "results": [_result(answer) for answer in answers]})


async def _recommend_next(service: Service, model: LoadedModel,
                          request: RecommendRequest) -> JSONResponse:
    """``/recommend`` on a sequential model: the next items after ``history`` (oldest first);
    ``exclude_seen`` drops the history's items."""
    recommender = model.sequential
    if request.history is None:
        raise ServeError(422, "a sequential model recommends from a history: send \"history\" "
                         "(item ids, oldest first), not user ids.")
    _check_k(request.k, recommender.num_items)
    answers = await service.score(recommender.recommend_many, [request.history], request.k,
                                  request.exclude_seen, request.exclude_items,
                                  request.include_items or ())
    return JSONResponse({"model_version": model.version,
                         "results": [_result(answer) for answer in answers]})


def _check_k(k: int, num_items: int) -> None:
    if k > num_items:
        raise ServeError(422, f"k must be at most the number of items, {num_items:,}; got {k}.")


def _result(answer: Recommendation) -> dict[str, Any]:
    result = {"user": answer.user or None, "items": answer.items, "scores": answer.scores,
              "source": answer.source}
    if answer.message:
        result["message"] = answer.message
    return result


def _add_predict(app: FastAPI, service: Service) -> None:
    @app.post("/predict")
    async def predict(request: PredictRequest) -> JSONResponse:
        """Click probabilities of rows of field values (CTR models)."""
        model = await service.model()
        _require(model, "ctr", "/predict")
        if len(request.rows) > service.settings.max_users:
            raise ServeError(413, f"{len(request.rows):,} rows in one request; the limit is "
                             f"{service.settings.max_users:,} (--max-users).")
        if service.settings.batching:
            probabilities = await service.batcher.submit(model.predictor.predict, request.rows,
                                                         key=id(model.predictor))
        else:
            probabilities = await service.score(model.predictor.predict, request.rows)
        return JSONResponse({"model_version": model.version,
                             "probabilities": probabilities.tolist()})


def _add_status(app: FastAPI, service: Service) -> None:
    @app.get("/health/live")
    async def live() -> dict[str, str]:
        """The process answers."""
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        """200 once a model is loaded and serving, 503 before."""
        if service.current is None:
            service.start_loading()
            return JSONResponse({"status": "not ready",
                                 "error": service.load_error() or "the model is loading"},
                                status_code=503)
        return JSONResponse({"status": "ready", "model_version": service.current.version})

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        """The served model: manifest, bytes per table, training metrics, process RSS."""
        return _describe(await service.model(), service.settings)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.post("/admin/reload")
    async def reload(request: ReloadRequest | None = None,
                     authorization: Annotated[str | None, Header()] = None
                     ) -> dict[str, Any]:
        """Load the served run folder again (or ``run_dir``) and swap it in atomically."""
        token = service.settings.reload_token
        if token is not None:
            given = (authorization or "").removeprefix("Bearer ").strip()
            if not secrets.compare_digest(given.encode(), token.encode()):
                raise ServeError(401, "reload needs the token given at start-up: "
                                 "Authorization: Bearer TOKEN")
        previous = service.current.version if service.current is not None else None
        loaded = await service.reload(request.run_dir if request is not None else None)
        return {"model_version": loaded.version, "previous_version": previous,
                "run_dir": str(loaded.folder)}


def _describe(model: LoadedModel, settings: ServeSettings) -> dict[str, Any]:
    manifest, run = model.manifest, model.manifest.get("run_config", {})
    tables = {name: {"method": table["method"], "num_embeddings": table["num_embeddings"],
                     "embedding_dim": table["embedding_dim"],
                     "memory_bytes": table["memory_bytes"],
                     "full_fp32_bytes": table["num_embeddings"] * table["embedding_dim"] * 4}
              for name, table in manifest["tables"].items()}
    serving: dict[str, Any] = {"process_rss_bytes": current_rss_bytes(),
                               "batching": settings.batching, "fallback": settings.fallback}
    if model.recommender is not None:
        serving.update(users=len(model.recommender.user_ids),
                       items=model.recommender.num_items,
                       fold_in=model.recommender.fold_in_method,
                       item_scoring=model.recommender.item_scoring)
    if model.predictor is not None:
        serving["fields"] = model.predictor.field_names
    if model.sequential is not None:
        serving.update(items=model.sequential.num_items,
                       max_len=model.sequential.model.max_len)
    return {"model_version": model.version, "run_dir": str(model.folder), "task": model.task,
            "model": manifest["model"], "trained_model": manifest.get("trained_model"),
            "dataset": run.get("dataset"), "embedding": run.get("embedding"),
            "budget": run.get("budget"), "tables": tables, "memory_bytes": model.memory(),
            "extra_bytes": manifest.get("extra_bytes", {}), "metrics": manifest["metrics"],
            "slimrec_version": manifest["slimrec_version"], "serving": serving}


def export_settings(run_dir: str | Path, settings: ServeSettings, threads: int | None) -> None:
    """Put what ``app_from_environment`` reads into this process's environment."""
    os.environ[RUN_DIR_ENV] = str(Path(run_dir).resolve())
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    if threads is not None:
        os.environ[THREADS_ENV] = str(threads)


def app_from_environment() -> FastAPI:
    """The app of ``slimrec serve`` (uvicorn's factory, called in each worker process)."""
    if THREADS_ENV in os.environ:
        import torch

        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    return create_app(os.environ[RUN_DIR_ENV], settings)
