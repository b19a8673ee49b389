"""Airflow 3 plugin: the Dataward review queue, reports, digest and sign-off in the UI.

A FastAPI app served by the Airflow API server under ``/dataward`` plus a navigation
entry. Every route requires an authenticated Airflow user (``GetUserDep``: a Bearer
token or the UI's JWT cookie); reading is open to any such user. Signing asks Airflow's
auth manager, with the same right that answers a human-in-the-loop task in the
"Required actions" page (``is_authorized_dag(PUT, HITL_DETAIL)`` on the DAG that
processed the version) plus the ``Dataward review`` custom view for ``POST``, so the two
doors admit the same people. The reviewer recorded is that user, never a form field.
Cookie-authenticated posts must come from this origin and carry the page's CSRF token.
Business logic lives in :mod:`dataward.governance.review` and :mod:`dataward.reports`; this file
only adapts HTTP to it.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

PREFIX = "/dataward"
RESOURCE = "Dataward review"
app = FastAPI(title="Dataward review", docs_url=None, redoc_url=None, openapi_url=None)


def _ctx():
    from dataward.context import Context

    return Context()


def _reviewer(user) -> str:
    name = user.get_name() if hasattr(user, "get_name") else None
    return str(name or user.get_id())


def _token(request: Request) -> tuple[str | None, bool]:
    """(the caller's Airflow token, whether it came from the UI cookie)."""
    auth = request.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:], False
    return request.cookies.get("_token"), True


def csrf_token(request: Request) -> str:
    """A token bound to the session's cookie: a cross-site page cannot read the cookie,
    so it cannot compute this (and posts without it are refused)."""
    import hashlib

    token, _ = _token(request)
    return hashlib.sha256(f"dataward-csrf:{token or ''}".encode()).hexdigest()


def _forged(request: Request, form_csrf: str) -> str | None:
    """Why a post looks cross-site (None: it does not). Bearer-token callers are scripts,
    which no third-party page can make a browser act as."""
    import hmac

    token, from_cookie = _token(request)
    if not from_cookie:
        return None
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return "a cross-site sign-off"
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null" or urlsplit(origin).netloc != request.headers.get("host"):
        return "a sign-off from another origin"
    if not hmac.compare_digest(form_csrf or "", csrf_token(request)):
        return "a sign-off without this page's CSRF token"
    return None


def may_sign(user, dag_id: str) -> bool:
    """Airflow's auth manager decides: the right to answer the DAG's human-in-the-loop
    tasks, and the Dataward review custom view for POST."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = get_auth_manager()
    return bool(manager.is_authorized_dag(method="PUT", access_entity=DagAccessEntity.HITL_DETAIL,
                                          details=DagDetails(id=dag_id), user=user)
                and manager.is_authorized_custom_view(method="POST", resource_name=RESOURCE, user=user))


def _page(template: str, **kw) -> HTMLResponse:
    from dataward.reports.render import environment

    return HTMLResponse(environment().get_template(template).render(prefix=PREFIX, **kw))


@app.get("/", response_class=HTMLResponse)
def queue(request: Request, user: GetUserDep, signed: str | None = None, error: str | None = None) -> HTMLResponse:
    from dataward.governance.review import awaiting_review

    return _page("review.html.j2", queue=awaiting_review(_ctx()), user=_reviewer(user),
                 signed=signed, error=error, version=None, csrf=csrf_token(request))


@app.get("/api/queue")
def queue_json(user: GetUserDep) -> JSONResponse:
    from dataward.governance.review import awaiting_review

    return JSONResponse(awaiting_review(_ctx()))


@app.get("/review/{ref}", response_class=HTMLResponse)
def review_page(ref: str, request: Request, user: GetUserDep, error: str | None = None) -> HTMLResponse:
    from dataward.governance.review import awaiting_review
    from dataward.reports.digest import version_entry
    from lineage.errors import NotFound

    ctx = _ctx()
    try:
        entry = version_entry(ctx, ref)
    except NotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    pending = {q["ref"]: q for q in awaiting_review(ctx)}
    return _page("review.html.j2", queue=[], user=_reviewer(user), signed=None, error=error,
                 version=entry, pending=pending.get(entry["ref"]), csrf=csrf_token(request))


def _door(ctx, ref: str, request: Request, csrf: str, user, reviewer: str, *, outcome: str, act: str) -> None:
    """Refuse (audited, HTTP 403) a forged post or a user the auth manager gives no right
    to act on the version's DAG; HTTP 404 for an unknown version."""
    from dataward.airflow.names import dag_of
    from dataward.errors import DatawardError, bad_input_types
    from dataward.governance.review import refuse

    forged = _forged(request, csrf)
    if forged:
        refuse(ctx, ref, actor=reviewer, outcome=outcome, via="airflow-ui", why=f"refused {forged}")
        raise HTTPException(status_code=403, detail=f"{forged} is refused")
    try:
        dag_id = dag_of(ctx, ref)
    except (DatawardError, *bad_input_types()) as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    if not may_sign(user, dag_id):
        why = (f"{reviewer} may not {act}: Airflow's auth manager grants no right to act on "
               f"{dag_id}'s required actions (or on the {RESOURCE!r} view)")
        refuse(ctx, ref, actor=reviewer, outcome=outcome, via="airflow-ui", why=why)
        raise HTTPException(status_code=403, detail=why)


@app.post("/review/{ref}")
def sign(ref: str, request: Request, user: GetUserDep, decision: str = Form(...),
         reason: str = Form(""), report_sha256: str = Form(""), csrf: str = Form("")) -> RedirectResponse:
    from dataward.errors import DatawardError, bad_input_types
    from dataward.governance.review import FIRST_APPROVAL, sign_off
    from dataward.stages.publish import publish_approved

    ctx, reviewer = _ctx(), _reviewer(user)
    _door(ctx, ref, request, csrf, user, reviewer, outcome=decision, act="sign off")
    try:
        result = sign_off(ctx, ref, outcome=decision, reviewer=reviewer, reason=reason, publish=publish_approved,
                          report_sha256=report_sha256 or None, via="airflow-ui")
    except (DatawardError, *bad_input_types()) as exc:
        return RedirectResponse(f"{PREFIX}/review/{quote(ref)}?error={quote(str(exc))}", status_code=303)
    notice = f"{result.ref}: {result.outcome}"
    if result.outcome == FIRST_APPROVAL:
        notice += f" ({len(result.approvals or [])} of {result.approvals_needed}): a second reviewer must approve"
    if result.created and (result.published or {}).get("published"):
        event = _asset_event(request, result.published)
        notice += (f"; published {result.published.get('snapshot_ref')}, Airflow asset event "
                   f"{event['asset_event_id']} recorded" if event["notified"] else
                   f"; published {result.published.get('snapshot_ref')}, but no Airflow asset event: "
                   f"{event['reason']}")
    return RedirectResponse(f"{PREFIX}/?signed={quote(notice)}", status_code=303)


def _asset_event(request: Request, published: dict) -> dict:
    """The approved-snapshots asset event, recorded through Airflow's REST API as the reviewer.

    The reviewer's own token (Bearer header, or the UI's ``_token`` cookie) is used, so the
    auth manager decides whether this user may create asset events; the API is this
    server's own (``DATAWARD_AIRFLOW_API_URL`` overrides it, e.g. behind a proxy).
    """
    import logging
    import os

    from dataward.airflow.rest import notify_airflow

    token, _ = _token(request)
    if not token:
        return {"notified": False, "reason": "the request carried no Airflow token"}
    base = os.environ.get("DATAWARD_AIRFLOW_API_URL") or f"{request.url.scheme}://{request.url.netloc}"
    event = notify_airflow(base, token, published)
    if not event["notified"]:
        logging.getLogger(__name__).warning("dataward: no asset event for %s: %s",
                                            published.get("snapshot_ref"), event["reason"])
    return event


@app.get("/reference/{ref}", response_class=HTMLResponse)
def reference_page(ref: str, request: Request, user: GetUserDep, per_class: int = 60,
                   error: str | None = None) -> HTMLResponse:
    """A seeded, class-stratified sample of the version's rows, each with a label to confirm
    or correct (:func:`dataward.governance.reference_review.sample_reference`)."""
    import json

    from dataward.errors import DatawardError, bad_input_types
    from dataward.governance.reference_review import sample_reference

    try:
        doc = sample_reference(_ctx(), ref, per_class=per_class)
    except (DatawardError, *bad_input_types()) as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    thumbs = doc.pop("_thumbs")
    classes = sorted({str(r["label"]) for r in doc["rows"]})
    return _page("reference_sample.html.j2", doc=doc, thumbs=thumbs, form=True, classes=classes,
                 sample_json=json.dumps(doc), csrf=csrf_token(request), user=_reviewer(user), error=error)


@app.post("/reference/{ref}")
async def confirm_reference_post(ref: str, request: Request, user: GetUserDep) -> RedirectResponse:
    """The reviewer (the Airflow user, with the same rights as a sign-off) confirms the
    sampled rows; the screens are re-run through the import DAG as that user."""
    import json
    import os

    from dataward.airflow.rest import request_rerun
    from dataward.errors import DatawardError, bad_input_types
    from dataward.governance.reference_review import confirm_reference, form_corrections

    ctx, reviewer = _ctx(), _reviewer(user)
    form = {k: str(v) for k, v in (await request.form()).items()}
    _door(ctx, ref, request, form.get("csrf", ""), user, reviewer, outcome="reference-confirm",
          act="confirm a reference")
    try:
        doc = json.loads(form.get("sample") or "null")
        out = confirm_reference(ctx, ref, sample=doc, corrections=form_corrections(doc or {}, form),
                                actor=reviewer, via="airflow-ui", door_checked=True)
    except ValueError:
        return RedirectResponse(f"{PREFIX}/reference/{quote(ref)}?error={quote('the posted sample is not JSON')}",
                                status_code=303)
    except (DatawardError, *bad_input_types()) as exc:
        return RedirectResponse(f"{PREFIX}/reference/{quote(ref)}?error={quote(str(exc))}", status_code=303)
    notice = f"{out['ref']}: reference {out['reference']} confirmed by {reviewer}"
    token, _ = _token(request)
    base = os.environ.get("DATAWARD_AIRFLOW_API_URL") or f"{request.url.scheme}://{request.url.netloc}"
    run = request_rerun(base, token, out["ref"], reason=f"reference {out['reference']} confirmed by {reviewer}") \
        if token else {"requested": False, "reason": "the request carried no Airflow token"}
    notice += (f"; screens re-running (dataward_import run {run['dag_run_id']})" if run["requested"] else
               f"; the screens were not re-run ({run['reason']}): `dataward rerun {out['ref']} --from screen` "
               f"uses it")
    return RedirectResponse(f"{PREFIX}/?signed={quote(notice)}", status_code=303)


@app.get("/digest", response_class=HTMLResponse)
def digest(user: GetUserDep, since: str = "24h", until: str | None = None) -> HTMLResponse:
    from dataward.reports.digest import build_digest, parse_since, render_digest_html

    d = build_digest(_ctx(), parse_since(since), parse_since(until) if until else None)

    def links(entry):
        rep = entry.get("report")
        base = f"{PREFIX}/files/reports/{rep['dir']}" if rep else None
        return {"report": f"{base}/report.html" if rep else None, "pdf": f"{base}/report.pdf" if rep else None,
                "json": f"{base}/report.json" if rep else None,
                "review": f"{PREFIX}/review/{quote(entry['ref'])}"}

    return HTMLResponse(render_digest_html(d, links=links))


@app.get("/digest.json")
def digest_json(user: GetUserDep, since: str = "24h", until: str | None = None) -> JSONResponse:
    from dataward.reports.digest import build_digest, parse_since

    return JSONResponse(build_digest(_ctx(), parse_since(since), parse_since(until) if until else None))


@app.get("/files/{area}/{path:path}")
def files(area: str, path: str, user: GetUserDep) -> FileResponse:
    """Report files and Data Docs, from their folders under DATAWARD_HOME only."""
    settings = _ctx().settings
    roots = {"reports": settings.reports_root, "data_docs": settings.home / "data_docs"}
    if area not in roots:
        raise HTTPException(status_code=404)
    root = roots[area].resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404)
    return FileResponse(target)


class DatawardReviewPlugin(AirflowPlugin):
    name = "dataward_review"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "Dataward review"}]
    external_views = [{"name": "Dataward review", "href": f"{PREFIX}/", "destination": "nav",
                       "url_route": "dataward-review", "category": "browse"}]
