"""The node's Flask app: the JSON API and the block explorer, served by waitress.

`create_app(service, peers)` builds it; the node is handed in, never imported. One error handler per domain
error turns it into `{"error": ..., "reason": ...}` with a 4xx status; bad input never gets a 500.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from simplecoin.core.errors import DecodeError, ValidationError
from simplecoin.node.node import NotFound
from simplecoin.node.service import NodeService
from simplecoin.web.api import ApiError, api, status_json
from simplecoin.web.explorer import explorer

MAX_BODY_BYTES = 2_200_000  # a maximal block (1 MB) in hex, plus room for the JSON around it


def create_app(service: NodeService, peers: Any = None) -> Flask:
    """The Flask app for one node. `peers` (a PeerManager) is optional: without it the node has none."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["simplecoin"] = (service, peers)
    app.register_blueprint(api)
    app.register_blueprint(explorer)  # HTML pages at / and /explorer/...; it handles its own pages' errors
    app.wsgi_app = _status_fast_path(app, app.wsgi_app)

    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return jsonify(error=e.error, reason=e.reason), e.status

    @app.errorhandler(ValidationError)
    def invalid(e: ValidationError):
        return jsonify(error=str(e), reason=e.reason), 400

    @app.errorhandler(DecodeError)
    def undecodable(e: DecodeError):
        return jsonify(error=str(e), reason=e.reason), 400

    @app.errorhandler(NotFound)
    def not_found(e: NotFound):
        return jsonify(error=str(e), reason="not-found"), 404

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        reason = {413: "body-too-large", 404: "no-such-endpoint", 405: "method-not-allowed"}.get(e.code, "bad-request")
        return jsonify(error=e.description or e.name, reason=reason), e.code

    return app


def _status_fast_path(app: Flask, wsgi_app):
    """WSGI middleware answering `GET /status` without Flask's per-request machinery.

    /status is what monitors, explorers and peers poll most; Flask's request context, URL matching and
    response object cost several times what building the answer does. The body is the same bytes
    `jsonify` would give (the app's JSON provider, compact, a newline); any other request goes to Flask.
    """
    service, peers = app.extensions["simplecoin"]

    def fast(environ, start_response):
        if environ.get("PATH_INFO") != "/status" or environ.get("REQUEST_METHOD") != "GET":
            return wsgi_app(environ, start_response)
        body = (app.json.dumps(status_json(service, peers), separators=(",", ":")) + "\n").encode()
        start_response("200 OK", [("Content-Type", app.json.mimetype), ("Content-Length", str(len(body)))])
        return [body]

    return fast
