"""`reconcile review`: the plan's worklist served as a local web page, decisions written into the plan file.

Starlette on uvicorn: both are small, maintained by one team (Encode), and uvicorn is a real server (Flask's
built-in one is a development server that says not to be used as one). The page is server-rendered HTML
(Jinja2, autoescaped) with inline CSS and a few lines of inline JavaScript: no external asset, and it works
with scripts off. Nothing here reads or writes the vendor's system: decisions go to the plan file only.

Access: on a loopback address (the default) only requests naming that host are served (a web page elsewhere
cannot reach the server by a DNS name pointing at 127.0.0.1). Another address needs `--remote`, and then a
random token, printed at start in the URL, is required on every request (as `?token=`, or the cookie the
first request sets). Every decision also carries the page's own random form key, so another site open in
the same browser cannot post decisions.
"""

from __future__ import annotations

import ipaddress
import secrets
import signal
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from reconcile.fix import reasons
from reconcile.errors import BadInput, ReconcileError
from reconcile.util.i18n import catalog, day, number, t
from reconcile.review import worklist as wl
from reconcile.review.decisions import DECISIONS, STATES, Decision, Recorded, check_reviewer, record

TOKEN_COOKIE = "review_token"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token may be in the URL
    "Cache-Control": "no-store",
}
_FILTERS = ("unit", "kind", "field", "procedure", "state")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Review:
    """One plan's review: its worklist, language and access keys, and the Starlette app serving it."""

    def __init__(self, work: wl.Worklist, lang: str, token: str | None, hosts: set[str]) -> None:
        self.work, self.lang, self.token, self.hosts = work, lang, token, hosts
        self.form_key = secrets.token_urlsafe(24)
        self.recorded = 0  # decisions recorded by this server
        self._refresh = threading.Lock()
        env = jinja2.Environment(loader=jinja2.PackageLoader("reconcile.review", "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined)
        self.page = env.get_template("review.html")
        self.app = Starlette(routes=[Route("/", self.show, methods=["GET"]),
                                     Route("/decide", self.post, methods=["POST"])])

    # ------------------------------------------------------------------------------------ access

    def _refused(self, request: Request) -> Response | None:
        """403 unless the request may be served (see the module's doc)."""
        if self.token is None:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
            if host not in self.hosts:
                return _forbidden("this review server answers on its own loopback address only")
            return None
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return _forbidden("this review server needs the token printed when it started (the URL's ?token=...)")
        return None

    def _headers(self, response: Response, request: Request) -> Response:
        response.headers.update(HEADERS)
        if self.token is not None and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        return response

    # -------------------------------------------------------------------------------------- pages

    async def show(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        q = request.query_params
        f = wl.Filter(**{k: q.get(k, "pending" if k == "state" else "") for k in _FILTERS},
                      page=_int(q.get("page")))
        html = await run_in_threadpool(self.render, f, q)
        return self._headers(HTMLResponse(html), request)

    def render(self, f: wl.Filter, q: Any) -> str:
        with self._refresh:
            wl.refresh(self.work)
        sel = wl.select(self.work, f)
        lang = self.lang

        def tr(key: str, **params: Any) -> str:
            return t(key, lang, **params)

        def link(**changes: Any) -> str:
            params = {k: getattr(f, k) for k in _FILTERS} | {"page": f.page} | changes
            return "./?" + urlencode({k: v for k, v in params.items() if v not in ("", None)}
                                     | ({"state": ""} if params.get("state") == "" else {}))

        def value(v: Any) -> str:
            key = f"value.{v}"
            return t(key, lang) if isinstance(v, str) and key in catalog() else ("" if v is None else str(v))

        labels = {"kind": lambda v: tr(f"review.kind.{v}"), "state": lambda v: tr(f"review.state.{v}"),
                  "field": lambda v: v or "–", "procedure": lambda v: v or "–"}
        filters = [(k, tr(f"review.{k}"), [(v, labels[k](v), n) for v, n in sel.facets[k]], getattr(f, k))
                   for k in ("kind", "field", "procedure", "state")]
        messages = []
        if _int(q.get("recorded"), 0):
            messages.append(("", tr("review.msg.recorded", n=number(_int(q.get("recorded"), 0), lang))))
        if _int(q.get("conflicts"), 0):
            messages.append(("warn", tr("review.msg.conflict", n=number(_int(q.get("conflicts"), 0), lang))))
        if q.get("problem") in ("reviewer", "nothing"):
            messages.append(("warn", tr(f"review.msg.{q.get('problem')}")))
        pending = sum(p for _, p, _ in sel.units)
        return self.page.render(
            lang=lang, t=tr, number=lambda n: number(n, lang), day=lambda d: day(d, lang) if d else "–",
            value=value, when=lambda at: when(at, lang), link=link, f=f, sel=sel, filters=filters, messages=messages, csrf=self.form_key,
            back=link()[3:], reviewer="", plan_name=self.work.path.name, run=self.work.run,
            total_rows=len(self.work.rows), total_pending=pending, escalations=self.work.escalations,
            proposed=lambda r: proposed(r, lang), reason=lambda r: reasons.text(r.reason, r.reason_code,
                                                                                   r.reason_args, lang))

    def decide(self, wanted: list[Decision], reviewer: str) -> Recorded:
        with self._refresh:
            done = record(self.work.path, wanted, reviewer)
            wl.recorded(self.work, done)
        return done

    async def post(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        if not secrets.compare_digest(_one(form, "csrf").encode(), self.form_key.encode()):
            return _forbidden("this form was not served by this review server (reload the page)")
        back = _one(form, "back")
        wanted = _decisions(form)
        problem = "" if wanted else "nothing"
        try:
            reviewer = check_reviewer(_one(form, "reviewer")) if wanted else ""
        except BadInput:
            problem, wanted = "reviewer", []
        recorded = conflicts = 0
        if wanted:
            try:
                done = await run_in_threadpool(self.decide, wanted, reviewer)
            except ReconcileError as exc:
                return self._headers(PlainTextResponse(f"error: {exc.problems[0]}", status_code=409), request)
            outcomes = done.outcomes
            recorded = sum(o.result == "recorded" for o in outcomes)
            conflicts = sum(o.result == "conflict" for o in outcomes)
            self.recorded += recorded
        said = {"recorded": recorded, "conflicts": conflicts, "problem": problem}
        target = "./?" + "&".join(p for p in (back, urlencode({k: v for k, v in said.items() if v})) if p)
        return self._headers(RedirectResponse(target, status_code=303), request)


def _decisions(form: dict[str, list[str]]) -> list[Decision]:
    """The decisions a form asks for: one row's button (`one` = decision|code|seen), else the ticked rows
    (`item` = code|seen) with the bar's button (`decision`)."""
    one = _one(form, "one")
    if one:
        decision, _, rest = one.partition("|")
        items = [rest]
    else:
        decision, items = _one(form, "decision"), form.get("item", [])
    out = []
    for item in items:
        code, _, seen = item.rpartition("|")
        if decision in DECISIONS and seen in STATES and code:
            out.append(Decision(code, decision, seen))
    return out


def proposed(r: wl.Row, lang: str) -> str:
    """The action in words: what apply will write."""
    s = r.proposed
    if r.action == "migrate":
        return t("action.migrate", lang, step=s.get("current_step", ""), version=s.get("workflow_version", ""))
    if r.action == "reassign":
        return t("action.reassign", lang, assignee=s.get("assignee", ""))
    if r.action == "close":
        return t("action.close", lang, date=day(s.get("returned_at"), lang))
    status = s.get("status")
    return t("action.backfill", lang) + (f" ({t(f'value.{status}', lang)})" if f"value.{status}" in catalog() else "")


def when(at: str | None, lang: str) -> str:
    """A decision's time (UTC, as recorded) in the language's format."""
    try:
        moment = datetime.strptime(at or "", "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return at or ""
    return moment.strftime("%d/%m/%Y %H:%M UTC" if lang == "vi" else "%Y-%m-%d %H:%M UTC")


def _one(form: dict[str, list[str]], key: str) -> str:
    values = form.get(key) or [""]
    return values[0]


def _int(text: str | None, default: int = 1) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


def _forbidden(why: str) -> Response:
    return PlainTextResponse(f"403 forbidden: {why}.\n", status_code=403, headers=HEADERS)


# ---------------------------------------------------------------------------------------- serving


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); BadInput when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BadInput(f"--host {host}: {exc.strerror}. Hint: an address of this machine, e.g. 127.0.0.1.") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise BadInput(f"--host {host} --port {port}: cannot listen: {exc.strerror}. Hint: --port 0 picks a free "
                       "port.") from None
    return sock


def run(plan: str | Path, store_url: str | None, host: str, port: int, lang: str, remote: bool,
        ready: Callable[[str, wl.Worklist], None]) -> tuple[wl.Worklist, int]:
    """Serve the review of `plan` until stopped (Ctrl-C, SIGTERM); `ready(url, worklist)` once listening.
    Returns the worklist and the decisions this server recorded."""
    if not is_loopback(host) and not remote:
        raise BadInput(f"--host {host}: not a loopback address, so other machines could reach the page. Hint: add "
                       "--remote to serve it there (a token printed at start is then required), or leave --host "
                       "out (127.0.0.1).")
    sock = bind(host, port)  # first: a port in use is said before a large plan is read
    try:
        work = wl.load(plan, store_url)
    except BaseException:
        sock.close()
        raise
    token = secrets.token_urlsafe(24) if not is_loopback(host) else None
    bound = sock.getsockname()[1]
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host  # every address
    hosts = {host, "127.0.0.1", "localhost", "::1"}
    review = Review(work, lang, token, hosts)
    server = uvicorn.Server(uvicorn.Config(review.app, log_level="warning", access_log=False, lifespan="off"))
    ready(f"http://{shown}:{bound}/" + (f"?token={token}" if token else ""), work)
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again: for a server, that is how it
    # is meant to stop (exit 0), not an interruption.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    return work, review.recorded
