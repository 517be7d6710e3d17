"""The tuning chapter in a real browser: JupyterLab in headless Chromium, driven by Playwright.

The widget tests drive the panel from Python; this one checks what a learner actually sees. It opens
a copy of ``notebooks/05_tuning.ipynb`` in JupyterLab, runs it down to the panel, sets two knobs in the
page (LoRA rank and max steps), clicks Train, waits for the round to finish, runs the compare view's
cell and finds the round's row in its table with those knobs, then types a prompt and clicks "Ask them
all" for the base model's and the round's answers side by side. It keeps screenshots of the panel and
the compare view in the test's temporary folder (the path is printed).

It needs Chromium (Debian's ``chromium`` package; ``FTLAB_CHROMIUM`` names another executable),
Playwright for Python and JupyterLab. ``.ci/run`` installs all three; the test skips, saying which
is missing, only where one could not be installed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_tuning.ipynb"
RANK, STEPS = "8", "12"  # the knobs set in the page; the preset has rank 16 and the notebook 20 steps (tiny model)

pytestmark = pytest.mark.browser


def chromium() -> str | None:
    for name in (os.environ.get("FTLAB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on loopback over a folder holding a copy of notebook 05; yields its address."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed: pip install jupyterlab (.ci/run does)")
    folder, settings = tmp_path / "notebooks", tmp_path / "settings"
    folder.mkdir()
    shutil.copy(NOTEBOOK, folder)  # the browser saves the notebook it runs: never the source one
    quiet = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    quiet.parent.mkdir(parents=True)
    quiet.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # no news toast over the page
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (tmp_path / "jupyterlab.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield base, token
    finally:
        try:  # the server shuts its kernels down with it
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST"),
                                   timeout=5)
        except OSError:
            pass
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.terminate()
            server.wait(10)
        log.close()


def run_menu(page, menu: str, item: str) -> None:
    """Run a JupyterLab command from the menu bar, as a learner would."""
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def test_notebook_05_in_jupyterlab_set_a_knob_click_train_and_find_the_round_in_the_table(jupyterlab, tmp_path):
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium here: install Debian's chromium package (apt-get install chromium) or set "
                    "FTLAB_CHROMIUM; .ci/run installs it where apt-get can")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    base, token = jupyterlab
    shots, started = [], time.monotonic()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])  # root, and a small /dev/shm
        page = browser.new_page(viewport={"width": 2200, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}&reset")
            cell = page.locator(".jp-CodeCell", has_text="panel.learning_rate.value = finding.suggestion")
            cell.locator(".cm-content").click()
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()  # the kernel is up
            run_menu(page, "Run", "Run All Above Selected Cell")
            cell.locator(".cm-content").click()
            page.keyboard.press("Shift+Enter")

            train = cell.locator(".widget-button", has_text="Train")
            train.wait_for(timeout=180_000)  # setup, model, the lr finder, then the panel
            cell.locator(".widget-dropdown", has_text="LoRA rank").locator("select").select_option(label=RANK)
            steps = cell.locator(".widget-text", has_text="max steps").locator("input")
            steps.fill(STEPS)
            steps.press("Enter")
            code = cell.locator(".widget-html pre", has_text="RoundConfig.preset")
            sync_api.expect(code).to_contain_text(f"lora_r={RANK}")  # the knobs reached the kernel
            sync_api.expect(code).to_contain_text(f"max_steps={STEPS}")
            train.click()
            sync_api.expect(cell.locator(".widget-html", has_text="Round 1:")).to_contain_text(
                "succeeded", timeout=180_000)
            cell.scroll_into_view_if_needed()
            page.screenshot(path=tmp_path / "05_panel.png")
            shots.append(tmp_path / "05_panel.png")

            view = page.locator(".jp-CodeCell", has_text="ftlab.lab.widgets.Compare(lab")
            view.locator(".cm-content").click()
            page.keyboard.press("Shift+Enter")
            table = view.locator("table.dataframe")
            table.wait_for(timeout=60_000)
            header = [h.strip() for h in table.locator("thead tr").first.locator("th").all_inner_texts()]
            rows = [[c.strip() for c in tr.locator("th, td").all_inner_texts()]
                    for tr in table.locator("tbody tr").all()]
            view.locator("textarea").fill("Greet Ada politely.")  # the chat compare: base and round 1
            view.locator(".widget-button", has_text="Ask them all").click()
            answers = view.locator(".widget-html table", has_text="round 1")
            answers.wait_for(timeout=60_000)
            asked = [h.strip() for h in answers.locator("th").all_inner_texts()]
            table.scroll_into_view_if_needed()
            page.screenshot(path=tmp_path / "05_compare.png")
            shots.append(tmp_path / "05_compare.png")
        except Exception:
            page.screenshot(path=tmp_path / "failed.png")
            print(f"screenshot of the failure: {tmp_path / 'failed.png'}")
            raise
        finally:
            browser.close()
    print(f"browser test: {time.monotonic() - started:.0f} s in the browser; screenshots:", *shots)
    shown = [dict(zip(header, cells, strict=False)) for cells in rows]
    assert [row[""] for row in shown] == ["1"], f"the compare table should hold round 1 alone: {shown}"
    shown = shown[0]
    assert "succeeded" in shown.get("status", ""), shown
    assert shown.get("lora_r") == RANK and shown.get("max_steps") == STEPS, shown
    assert asked == ["base model", "round 1"], asked  # one prompt, answered by the base and the round side by side
