"""The node's Flask app: the JSON API and the block explorer, served by waitress.

`create_app(service, peers)` builds it; the node is handed in, never imported. One error handler per domain
error turns it into `{"error": ..., "reason": ...}` with a 4xx status (a store fault of ours: 503, try later);
bad input never gets a 500. A bug in a
handler gets a JSON 500 with reason `internal-error`, and Flask logs its traceback (`log`, this module's logger).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from simplecoin.core.errors import DecodeError, ValidationError
from simplecoin.node.lookups import NotFound
from simplecoin.node.service import NodeService
from simplecoin.node.store import StoreFault
from simplecoin.web.api import ApiError, api, status_json
from simplecoin.web.explorer import explorer
from simplecoin.web.limits import UploadBudget
from simplecoin.web.metrics import RequestMetrics, install_metrics
from simplecoin.web.state import EXTENSION, AppState

log = logging.getLogger(__name__)  # also Flask's app.logger (named after the app), which logs handler crashes
STORE_RETRY_AFTER_SECONDS = 5  # Retry-After of a 503 for a store fault: the node retries its writes meanwhile

MAX_BODY_BYTES = 2_200_000  # a maximal block (1 MB) in hex, plus room for the JSON around it
# Bitcoin: -maxuploadtarget, but per client IP: bytes of block hex sent by GET /p2p/blocks per window. A full
# window is 128 maximal blocks (2 MB of hex each), about 447 kB/s sustained; syncing a long chain slows down, it
# does not stop (429 with Retry-After, and the peer tries again).
UPLOAD_BUDGET_BYTES = 256 * 1024 * 1024
UPLOAD_WINDOW_SECONDS = 600.0


def create_app(
    service: NodeService,
    peers: Any = None,
    upload_budget: UploadBudget | None = None,
    clock: Callable[[], float] = time.monotonic,
    metrics_public: bool = False,
) -> Flask:
    """The Flask app for one node. `peers` (a PeerManager) is optional: without it the node has none.

    `upload_budget` defaults to UPLOAD_BUDGET_BYTES per UPLOAD_WINDOW_SECONDS; `clock` is what it is measured by.
    `metrics_public`: GET /metrics answers any client, not only the node's own machine (config `metrics_public`).
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    budget = upload_budget or UploadBudget(UPLOAD_BUDGET_BYTES, UPLOAD_WINDOW_SECONDS)
    app.extensions[EXTENSION] = AppState(service, peers, budget, clock)
    requests = install_metrics(app, service, peers, metrics_public)  # first: its clock starts before other hooks
    app.register_blueprint(api)
    app.register_blueprint(explorer)  # HTML pages at / and /explorer/...; it handles its own pages' errors
    app.wsgi_app = _status_fast_path(app, app.wsgi_app, requests)

    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return jsonify(error=e.error, reason=e.reason), e.status, e.headers

    @app.errorhandler(ValidationError)
    def invalid(e: ValidationError):
        return jsonify(error=str(e), reason=e.reason), 400

    @app.errorhandler(DecodeError)
    def undecodable(e: DecodeError):
        return jsonify(error=str(e), reason=e.reason), 400

    @app.errorhandler(StoreFault)
    def store_fault(e: StoreFault):
        # Ours, not the client's: "try later" (the node logs it and retries), never a 500 nor a 400 that a peer
        # would be charged for (issue 21).
        response = jsonify(error=str(e), reason=e.reason)
        return response, 503, {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)}

    @app.errorhandler(NotFound)
    def not_found(e: NotFound):
        return jsonify(error=str(e), reason="not-found"), 404

    @app.errorhandler(InternalServerError)
    def internal_error(e: InternalServerError):
        # Flask has already logged the traceback (app.log_exception) before calling this. Before this handler
        # the HTTPException one below answered such bugs as `bad-request`, blaming the client.
        return jsonify(error="internal error; the node's log has the details", reason="internal-error"), 500

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        reason = {413: "body-too-large", 404: "no-such-endpoint", 405: "method-not-allowed"}.get(e.code, "bad-request")
        return jsonify(error=e.description or e.name, reason=reason), e.code

    return app


def _status_fast_path(app: Flask, wsgi_app, requests: RequestMetrics):
    """WSGI middleware answering `GET /status` without Flask's per-request machinery.

    /status is what monitors, explorers and peers poll most; Flask's request context, URL matching and
    response object cost several times what building the answer does. The body is the same bytes
    `jsonify` would give (the app's JSON provider, compact, a newline); any other request goes to Flask. It is
    counted in `requests` (GET /metrics) as Flask's would be.
    """
    state: AppState = app.extensions[EXTENSION]

    def fast(environ, start_response):
        if environ.get("PATH_INFO") != "/status" or environ.get("REQUEST_METHOD") != "GET":
            return wsgi_app(environ, start_response)
        started = time.perf_counter()
        try:
            body = (app.json.dumps(status_json(state.service, state.peers), separators=(",", ":")) + "\n").encode()
            status = "200 OK"
        except Exception:  # a bug, not bad input (there is none): what Flask does for its handlers, done here
            log.exception("Exception on /status [GET]")
            body = (app.json.dumps({"error": "internal error", "reason": "internal-error"}) + "\n").encode()
            status = "500 INTERNAL SERVER ERROR"
        requests.observe("/status", "GET", int(status[:3]), time.perf_counter() - started)
        start_response(status, [("Content-Type", app.json.mimetype), ("Content-Length", str(len(body)))])
        return [body]

    return fast
