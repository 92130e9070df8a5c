"""The notice list's summary as plain lines (stdout, a log): counts and masked phones only."""

from __future__ import annotations

from reconcile.notify.notices import NoticeList

REASON_NAMES = {"missing": "no number", "invalid": "invalid", "not_mobile": "not a mobile",
                "not_vietnamese": "outside Viet Nam", "opted_out": "opted out", "already_notified": "already notified"}


def summary_lines(result: NoticeList, preview: int = 5) -> list[str]:
    s = result.summary()
    if result.mode == "overdue":
        head = f"notices of dossiers overdue at the date of audit run {s['runs'][0]}"
    elif result.batches:
        batches = ", ".join(map(str, result.batches))
        runs = ", ".join(map(str, result.runs))
        head = f"notices of apply batch{'es' if len(result.batches) > 1 else ''} {batches} (audit run {runs})"
    else:
        head = "notices of apply batches: no committed apply batch in force"
    lines = [f"{head}: {s['dossiers']} dossiers"]
    lines += [f"  {state.replace(':', ', ')}: {n}" for state, n in s["by_state"].items()]
    encodings = ", ".join(f"{k} {v}" for k, v in s["by_encoding"].items()) or "none"
    lines.append(f"messages: {s['messages']} to {s['phones']} phones, {s['segments']} SMS segments ({encodings}; "
                 f"{'with' if result.diacritics else 'without'} diacritics); {s['old_numbers_converted']} old "
                 f"11-digit numbers converted, {s['from_register']} numbers from the register")
    lines.append("not sent: " + ", ".join(f"{REASON_NAMES[k]} {v}" for k, v in s["skipped"].items()))
    if result.dry_run:
        lines.append("dry run: nothing written or recorded." + (" First messages (phones masked):"
                                                                 if result.notices else ""))
        lines += [f"  {p['phone']}  {p['dossier_code']}  {p['segments']} x {p['encoding']}  {p['message']}"
                  for p in result.preview(preview)]
    elif result.notice_batch is not None:
        sms, skipped = result.files
        lines.append(f"wrote {sms} ({s['messages']} messages) and {skipped} ({len(result.skipped)} not sent); "
                     f"recorded as notice batch {result.notice_batch}")
    else:
        lines.append("nothing new to send or list: no file written, nothing recorded.")
    return lines
