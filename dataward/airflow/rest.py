"""Dataward's calls to Airflow 3's public REST API, made as a given user (``token``: a JWT
from ``POST /auth/token``, or the UI's ``_token`` cookie). Neither call ever raises: what
failed comes back in the answer, and never undoes what Dataward already recorded."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from dataward.airflow.names import IMPORT_DAG, SNAPSHOT_ASSET_URI


def notify_airflow(api_url: str, token: str, published: Mapping[str, Any], *, timeout: float = 30
                   ) -> dict[str, Any]:
    """Record an event on Airflow's approved-snapshots asset, so asset-scheduled training starts.

    ``GET /api/v2/assets`` finds the asset by its URI, ``POST /api/v2/assets/events``
    records the event with the same ``extra`` the pipeline's publish task sets (``ref``,
    ``source``, ``path``). Returns ``{"notified": bool, "asset_event_id" | "reason", ...}``;
    a failed notification does not undo the sign-off or the snapshot.
    """
    if not published or not published.get("published"):
        return {"notified": False, "reason": "nothing was published"}
    extra = {"ref": published.get("snapshot_ref"), "source": published.get("source"),
             "path": published.get("path")}
    base = api_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, method=method, data=data,
                                     headers={**headers, **({"Content-Type": "application/json"} if data else {})})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)

    try:
        found = call("GET", "/api/v2/assets?" + urllib.parse.urlencode({"uri_pattern": SNAPSHOT_ASSET_URI,
                                                                         "limit": 100}))
        ids = [a["id"] for a in found.get("assets", []) if a.get("uri") == SNAPSHOT_ASSET_URI]
        if not ids:
            return {"notified": False, "extra": extra,
                    "reason": f"Airflow knows no asset {SNAPSHOT_ASSET_URI} (no parsed DAG uses it yet)"}
        event = call("POST", "/api/v2/assets/events", {"asset_id": ids[0], "extra": extra})
        return {"notified": True, "asset_event_id": event.get("id"), "asset_id": ids[0], "extra": extra}
    except urllib.error.HTTPError as exc:
        return {"notified": False, "extra": extra,
                "reason": f"Airflow answered {exc.code} {exc.reason} for {exc.url}"}
    except (OSError, ValueError) as exc:
        return {"notified": False, "extra": extra, "reason": f"cannot reach Airflow at {base}: {exc}"}


def request_rerun(api_url: str, token: str, ref: str, *, reason: str, timeout: float = 30) -> dict[str, Any]:
    """Ask Airflow, as the reviewer (``token``), to re-run ``ref``'s screens: a
    ``dataward_import`` run with ``{"rerun": ref, "rerun_from": "screen"}``. Returns
    ``{"requested": bool, "dag_run_id" | "reason"}``."""
    body = json.dumps({"logical_date": None, "conf": {"rerun": ref, "rerun_from": "screen",
                                                      "rerun_reason": reason}}).encode()
    req = urllib.request.Request(api_url.rstrip("/") + f"/api/v2/dags/{IMPORT_DAG}/dagRuns", data=body,
                                 method="POST", headers={"Authorization": f"Bearer {token}",
                                                         "Content-Type": "application/json",
                                                         "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return {"requested": True, "dag_run_id": json.load(r).get("dag_run_id")}
    except urllib.error.HTTPError as exc:
        return {"requested": False, "reason": f"Airflow answered {exc.code} {exc.reason}"}
    except (OSError, ValueError) as exc:
        return {"requested": False, "reason": f"cannot reach Airflow at {api_url}: {exc}"}
