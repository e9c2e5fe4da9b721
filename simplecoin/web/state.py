"""What the app's handlers are handed: one typed object in `app.extensions`, read through `app_state()`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.service import NodeService
from simplecoin.web.limits import UploadBudget

EXTENSION = "simplecoin"


@dataclass(frozen=True)
class AppState:
    """The node the app serves, its peer layer (None: a node without peers), and the upload budget."""

    service: NodeService
    peers: PeerManager | None  # None: a node without peers
    upload_budget: UploadBudget
    clock: Callable[[], float]  # what the upload budget is measured by


def app_state() -> AppState:
    """The state of the app serving this request."""
    return current_app.extensions[EXTENSION]
