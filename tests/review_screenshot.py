"""Make docs/review.png: the review page of the demo district's plan at 1366x768, in Debian's chromium.

    reconcile demo --out /tmp/demo
    python tests/review_screenshot.py /tmp/demo/inputs/plan.yaml docs/review.png

It confirms the first pending backfill and rejects the second (as a clerk would, through the page), then
shows every state of all units. It edits the plan file it is given: use a demo folder made for it.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from playwright.sync_api import sync_playwright


def main(plan: str, png: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "reconcile", "review", plan, "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(url)
            page.fill("#reviewer", "Nguyễn Thị Lan")
            page.locator("button[name=one][value^=confirm]").first.click()
            page.wait_for_url("**recorded=1**")
            page.locator("button[name=one][value^=reject]").first.click()
            page.wait_for_url("**recorded=1**")
            page.select_option("select[name=state]", "")
            page.wait_for_url(lambda u: "state=" in u and "state=pending" not in u)
            page.wait_for_load_state("load")
            page.screenshot(path=png)
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
