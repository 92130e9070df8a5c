"""`reconcile review`: decisions written into the plan file (and what apply then runs), two concurrent
writers, access rules of the server, and the page driven in a real headless Chromium."""

from __future__ import annotations

import difflib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from helpers import invoke
from reconcile.audit.commands import audit
from reconcile.audit.inputs import AuditInputs
from reconcile.demo.simulate import simulate
from reconcile.errors import BadInput
from reconcile.fix import apply as ap
from reconcile.fix import planread
from reconcile.review import worklist as wl
from reconcile.review.decisions import Decision, decide, journal_path, state_of
from reconcile.store import change, change_batch

CHROMIUM = Path("/usr/bin/chromium")
PAPER_ONLY = ("UBND xã Bình Tân Phú", "UBND xã Bình Hải")


def make_district(out: Path) -> tuple[Path, str]:
    """The small simulated district audited, and its plan without the migration rules, so that the lost steps'
    migrations are guesses from the version diff: (plan file, store)."""
    simulate(out / "d", scale=0.15)
    d = out / "d"
    store = str(out / "store.duckdb")
    audit(AuditInputs(register=tuple(str(p) for p in (d / "register").iterdir()),
                      system=f"sqlite:///{d / 'system' / 'binh-son-igate.sqlite'}", workflows=str(d / "workflows"),
                      as_of=date(2021, 6, 30), mapping=str(d / "system" / "mapping.yaml"),
                      paper_only_units=PAPER_ONLY), store)
    (out / "no-rules").mkdir()
    plan = out / "plan.yaml"
    invoke("plan", "--store", store, "--rules", str(out / "no-rules"), "--out", str(plan), expect=0)
    return plan, store


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return make_district(tmp_path_factory.mktemp("review"))


@pytest.fixture
def plan(district: tuple[Path, str], tmp_path: Path) -> Path:
    """A private copy of the district's plan (decisions edit it; the store is only read)."""
    copy = tmp_path / "plan.yaml"
    shutil.copy(district[0], copy)
    return copy


def actions(path: Path) -> dict[str, dict]:
    return {a["dossier_code"]: a for a in yaml.safe_load(path.read_text(encoding="utf-8"))["actions"]}


def pending(path: Path, kind: str | None = None) -> list[str]:
    return [c for c, a in actions(path).items() if a.get("confirmed") is False and a["action"] != "escalate"
            and (kind is None or a["action"] == kind)]


# ------------------------------------------------------------------------------------ decisions


def test_district_plan_has_guesses_and_backfills_to_review(plan: Path) -> None:
    assert len(pending(plan, "migrate")) == 2 and len(pending(plan, "backfill")) == 2


def test_confirm_and_reject_edit_only_the_decided_actions_lines(plan: Path) -> None:
    before = plan.read_text(encoding="utf-8")
    guess, backfill = pending(plan, "migrate")[0], pending(plan, "backfill")[0]
    out = decide(plan, [Decision(guess, "confirm", "pending"), Decision(backfill, "reject", "pending")],
                 "Nguyễn Văn A", at="2026-12-06T09:00:00Z")
    assert [(o.dossier_code, o.result, o.state) for o in out] == [(guess, "recorded", "confirmed"),
                                                                   (backfill, "recorded", "rejected")]
    after = actions(plan)
    assert after[guess]["confirmed"] is True and "rejected" not in after[guess]
    assert after[backfill]["confirmed"] is False and after[backfill]["rejected"] is True
    assert after[guess]["reviewed_by"] == after[backfill]["reviewed_by"] == "Nguyễn Văn A"
    assert after[guess]["reviewed_at"] == "2026-12-06T09:00:00Z"
    # Everything else is byte for byte what `reconcile plan` wrote: the two confirmed: lines changed, lines added.
    diff = [d for d in difflib.ndiff(before.splitlines(), plan.read_text(encoding="utf-8").splitlines())
            if d[0] in "+-"]
    by = ['+   reviewed_by: Nguyễn Văn A', '+   reviewed_at: "2026-12-06T09:00:00Z"']
    assert sorted(diff) == sorted(["+   rejected: true", *by, "-   confirmed: false", "+   confirmed: true", *by])
    assert journal_path(plan).read_text(encoding="utf-8").count("\n") == 2
    # apply reads the edited file in full and passes its checks: the guess runs, the backfill is rejected
    result = ap.apply_plan(plan)
    states = {o.dossier_code: o.state for o in result.outcomes}
    assert states[guess] == "would_write" and states[backfill] == "rejected"
    assert "1 rejected" in ap.summary_lines(result, None)[0]


def test_a_decision_on_a_state_someone_changed_is_a_conflict_and_changes_nothing(plan: Path) -> None:
    code = pending(plan)[0]
    decide(plan, [Decision(code, "reject", "pending")], "A")
    text = plan.read_text(encoding="utf-8")
    out = decide(plan, [Decision(code, "confirm", "pending")], "B")
    assert (out[0].result, out[0].state, out[0].reviewed_by) == ("conflict", "rejected", "A")
    assert plan.read_text(encoding="utf-8") == text
    out = decide(plan, [Decision(code, "confirm", "rejected")], "B")  # seen as it is: B may change it
    assert out[0].result == "recorded" and actions(plan)[code]["reviewed_by"] == "B"


def test_a_reviewer_name_is_required_and_escalations_are_not_decided(plan: Path) -> None:
    with pytest.raises(BadInput, match="a name is required"):
        decide(plan, [Decision(pending(plan)[0], "confirm", "pending")], "  ")
    escalated = next(c for c, a in actions(plan).items() if a["action"] == "escalate")
    assert decide(plan, [Decision(escalated, "reject", "confirmed")], "A")[0].result == "not_decidable"
    assert decide(plan, [Decision("000.00.00.H00-000000-0000", "reject", "pending")], "A")[0].result == "unknown"


def test_apply_refuses_an_action_both_confirmed_and_rejected(plan: Path) -> None:
    code = pending(plan)[0]
    decide(plan, [Decision(code, "reject", "pending")], "A")
    plan.write_text(plan.read_text(encoding="utf-8").replace("  rejected: true", "  rejected: true\n  x: 1", 1)
                    .replace("confirmed: false\n  rejected: true", "confirmed: true\n  rejected: true", 1),
                    encoding="utf-8")
    with pytest.raises(BadInput) as err:
        planread.load_plan(plan)
    assert "rejected true, but confirmed true" in str(err.value.problems)
    plan.write_text(plan.read_text(encoding="utf-8").replace("confirmed: true\n  rejected: true", "confirmed: false\n"
                                                              "  rejected: true", 1)
                    .replace("  reviewed_by: A", "  reviewed_by: 5", 1), encoding="utf-8")
    with pytest.raises(BadInput) as err:
        planread.load_plan(plan)
    assert err.value.problems[0].endswith(": reviewed_by 5: expected text (who decided, when).")


def _writer(path: str, seen: dict[str, str], who: str, rounds: int, start: multiprocessing.synchronize.Barrier
            ) -> None:
    """One reviewer: decides each of its dossiers one request at a time, `rounds` times over (reject, confirm,
    reject...), each time as it last saw it."""
    start.wait()
    for n in range(rounds):
        for c in list(seen):
            decision = "reject" if n % 2 == 0 else "confirm"
            out = decide(Path(path), [Decision(c, decision, seen[c])], who)
            assert out[0].result == "recorded", out
            seen[c] = out[0].state


def test_two_concurrent_reviewers_never_lose_a_decision(plan: Path) -> None:
    codes = [c for c, a in actions(plan).items() if a["action"] != "escalate"]
    halves = codes[0::2], codes[1::2]
    rounds = 6  # even: everyone ends confirmed
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(plan), {c: state_of(actions(plan)[c]) for c in half}, who, rounds,
                                               start))
             for half, who in zip(halves, ("Reviewer A", "Reviewer B"))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    after = actions(plan)
    for half, who in zip(halves, ("Reviewer A", "Reviewer B")):
        for c in half:
            assert (after[c]["confirmed"], after[c].get("rejected"), after[c]["reviewed_by"]) == (True, None, who), c
    assert journal_path(plan).read_text(encoding="utf-8").count("\n") == rounds * len(codes)
    planread.load_plan(plan)  # still a plan apply reads


# ------------------------------------------------------------------------------------- worklist


def test_worklist_shows_register_row_system_state_and_pages(plan: Path) -> None:
    work = wl.load(plan)
    guess = pending(plan, "migrate")[0]
    row = next(r for r in work.rows if r.dossier_code == guess)
    assert row.system["status"] == "in_progress" and row.register is not None and row.field == "Lĩnh vực đất đai"
    assert row.reason_code == "step_lost_by_diff" and row.procedure_name
    sel = wl.select(work, wl.Filter(kind="migrate"))
    assert {r.dossier_code for r, _ in sel.rows} == set(pending(plan, "migrate"))
    assert dict(sel.facets["state"])["pending"] == 2
    everything = wl.select(work, wl.Filter(state=""), page_size=4)
    assert len(everything.rows) == 4 and everything.pages == -(-len(work.rows) // 4)
    last = wl.select(work, wl.Filter(state="", page=everything.pages), page_size=4)
    assert len(last.rows) == len(work.rows) - 4 * (everything.pages - 1)


# --------------------------------------------------------------------------------------- server


@contextmanager
def serving(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`reconcile review ARGS --port 0` as a real process: its printed URL, then it is stopped with Ctrl-C."""
    proc = subprocess.Popen([sys.executable, "-m", "reconcile", "review", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://"), proc.stderr.read() if proc.stderr else ""
        yield url, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_non_loopback_host_needs_remote_then_a_token_on_every_request(plan: Path) -> None:
    result = invoke("review", str(plan), "--host", "0.0.0.0", expect=2)
    assert result.stderr == ("error: --host 0.0.0.0: not a loopback address, so other machines could reach the page. "
                             "Hint: add --remote to serve it there (a token printed at start is then required), or "
                             "leave --host out (127.0.0.1).\n")
    with serving(str(plan), "--host", "0.0.0.0", "--remote") as (url, _):
        assert "?token=" in url
        bare, token = url.split("?token=")
        bare = f"http://127.0.0.1:{bare.rsplit(':', 1)[1]}"  # printed with the machine's name
        assert status(bare) == 403
        assert status(bare + "?token=wrong") == 403
        assert status(bare + "decide", data=b"csrf=x") == 403
        assert status(f"{bare}?token={token}") == 200
        assert status(bare, headers={"Cookie": f"review_token={token}"}) == 200


def test_loopback_server_refuses_other_host_names_and_foreign_forms(plan: Path) -> None:
    with serving(str(plan)) as (url, proc):
        assert status(url) == 200
        assert status(url, headers={"Host": "attacker.example"}) == 403  # DNS rebinding
        code = pending(plan)[0]
        body = f"reviewer=X&one=confirm|{code}|pending".encode()
        assert status(url + "decide", data=body) == 403  # no form key: another site's form
    assert actions(plan)[code]["confirmed"] is False
    assert proc.returncode == 0
    assert "stopped: 0 decisions recorded" in (proc.stderr.read() if proc.stderr else "")


def test_english_page_with_lang_en_and_pages_of_fifty(plan: Path) -> None:
    with serving(str(plan), "--lang", "en") as (url, _):
        with urllib.request.urlopen(url + "?state=", timeout=30) as r:
            html = r.read().decode("utf-8")
    assert "<title>Plan review</title>" in html and "Duyệt" not in html
    assert "Page 1 of 1 · 15 rows" in html and html.count('name="item"') == 15
    work = wl.load(plan)
    many = wl.Worklist(work.path, work.run, work.store, work.rows * 400, 0, work.states, work.signature)
    sel = wl.select(many, wl.Filter(state="", page=7))
    assert (len(sel.rows), sel.page, sel.pages, sel.total) == (wl.PAGE_SIZE, 7, 120, 6000)


def test_review_in_headless_chromium_then_apply_runs_exactly_the_confirmed(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI needs Debian's chromium package (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    plan, store = make_district(tmp_path)
    guesses, backfills = pending(plan, "migrate"), pending(plan, "backfill")
    requests: list[str] = []
    with serving(str(plan)) as (url, proc), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            assert page.locator("h1").inner_text() == "Duyệt kế hoạch xử lý hồ sơ"
            assert page.locator("tbody tr").count() == 4  # pending by default: 2 guesses, 2 backfills
            page.select_option("select[name=kind]", "migrate")  # the filter submits itself
            page.wait_for_url("**kind=migrate**")
            assert sorted(page.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.code)")) == sorted(guesses)
            assert "Chuyển sang bước" in page.locator("tbody").inner_text()
            page.fill("#reviewer", "Trần Thị Bình")
            page.check(f"input[name=item][value='{guesses[0]}|pending']")
            page.check(f"input[name=item][value='{guesses[1]}|pending']")
            page.click("button[name=decision][value=confirm]")
            page.wait_for_url("**recorded=2**")
            assert "Đã ghi 2 quyết định" in page.locator(".msg").inner_text()
            assert page.locator("tbody tr").count() == 1  # nothing pending left among the guesses
            page.select_option("select[name=kind]", "backfill")
            page.wait_for_url("**kind=backfill**")
            page.click(f"button[name=one][value='reject|{backfills[0]}|pending']")  # the reviewer's name is kept
            page.wait_for_url("**recorded=1**")
            page.select_option("select[name=state]", "")
            page.wait_for_url(lambda u: "state=" in u and "state=pending" not in u)
            row = page.locator(f"tr[data-code='{backfills[0]}']")
            assert row.get_attribute("data-state") == "rejected" and "Trần Thị Bình" in row.inner_text()
            assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # no sideways scrolling at 1366
        finally:
            browser.close()
    assert all(r.startswith(url.rstrip("/")) for r in requests), requests  # nothing from anywhere else
    assert "stopped: 3 decisions recorded" in (proc.stderr.read() if proc.stderr else "")
    decided = actions(plan)
    expected = {c for c, a in decided.items() if a["action"] in ("migrate", "reassign", "close", "backfill")
                and a.get("confirmed", True) is True}
    assert set(guesses) <= expected and not {*backfills} & expected
    result = invoke("apply", str(plan), "--yes", expect=0)
    assert "1 rejected" in result.stderr and "1 unconfirmed" in result.stderr
    engine = sa.create_engine(f"duckdb:///{store}")
    with engine.connect() as conn:
        written = set(conn.execute(sa.select(change.c.dossier_code).distinct()
                                   .join(change_batch, change_batch.c.id == change.c.batch_id)
                                   .where(change_batch.c.kind == "apply")).scalars())
    engine.dispose()
    assert written == expected
