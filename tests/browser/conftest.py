"""Fixtures for the real-browser tests: a headless JupyterLab server and a headless Chromium driven by Selenium.

Nothing here downloads anything: Chromium and its driver come from Debian's packages (`chromium`,
`chromium-driver`), Selenium from the `test` extra. Where one of them is missing the tests skip with the reason,
unless MAVIL_LITE_REQUIRE_BROWSER=1 (set by CI), where they fail with it instead: CI must not go green by skipping.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OUTPUT = REPO / "outputs" / "browser"  # screenshots and logs (outputs/ is git-ignored)
REQUIRE = os.environ.get("MAVIL_LITE_REQUIRE_BROWSER") == "1"

# Chromium flags: headless without a sandbox (CI runs as root in a container) and without the background
# traffic (updates, sync, field trials, QUIC) that otherwise hammers a closed network and slows start-up.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1400,1000"]

# JupyterLab user settings for a deterministic page: every cell stays in the DOM (the default windowing can leave
# off-screen cells unrendered), and no news or update checks (no network, no toast over the screenshots).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
}


def missing_requirement() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} not found (install Debian's {package}: apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not importable (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def browser_requirements() -> None:
    """Skip (or, with MAVIL_LITE_REQUIRE_BROWSER=1, fail) with the reason when the browser stack is missing."""
    reason = missing_requirement()
    if reason:
        if REQUIRE:
            pytest.fail(f"MAVIL_LITE_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    """The folder JupyterLab serves: the prepared notebooks, their out/ folders and the shared synthetic clips."""
    return tmp_path_factory.mktemp("lab_root")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path
    process: subprocess.Popen

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def page(self, path: str, *query: str) -> str:
        return f"{self.url}{path}?{'&'.join([*query, f'token={self.token}'])}"

    def shut_kernels_down(self) -> None:
        for session in self.api("/api/sessions"):  # deleting a session shuts its kernel down
            self.api(f"/api/sessions/{session['id']}", method="DELETE")
        for kernel in self.api("/api/kernels"):  # and any kernel without a session
            self.api(f"/api/kernels/{kernel['id']}", method="DELETE")


def wait_until_serving(lab: Lab, log: Path, timeout: float = 120) -> None:
    """Poll the REST API until the server answers; fail with its log if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {lab.process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            lab.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen, grace: float = 20) -> None:
    """Terminate (the server then shuts its kernels down), then kill what did not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def lab(browser_requirements, lab_root, output_dir, tmp_path_factory) -> Lab:
    """JupyterLab from this environment, headless on a free local port with a random token.

    `expose_app_in_browser` puts the application object at `window.jupyterapp`, so the test can run commands
    (run all cells) and read the kernel status instead of clicking through menus. Configuration, runtime files
    and user settings live in a temporary folder: the developer's own Jupyter set-up plays no part.
    """
    home = tmp_path_factory.mktemp("jupyter_home")
    settings = home / "lab-user-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               IPYTHONDIR=str(home / "ipython"), JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", "1")  # the kernels inherit it; other jobs share the cores
    token, port = secrets.token_hex(16), free_port()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={lab_root}", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--ServerApp.terminals_enabled=False"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root; the server refuses to start as root otherwise
    log = output_dir / "jupyterlab.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, cwd=lab_root, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    server = Lab(f"http://127.0.0.1:{port}", token, lab_root, process)
    try:
        wait_until_serving(server, log)
        print(f"JupyterLab at {server.url} (log: {log})")
        yield server
    finally:
        try:  # shut the kernels down through the API first, so none outlives a server that has to be killed
            if process.poll() is None:
                server.shut_kernels_down()
        except Exception as error:  # noqa: BLE001 - teardown goes on to stop the server whatever happened
            print(f"could not shut the kernels down through the API: {error}")
        stop(process)


@pytest.fixture
def shut_kernels_down(lab):
    """After each test, its notebook's kernel goes: two notebooks' models need not sit in memory at once."""
    yield
    lab.shut_kernels_down()


@pytest.fixture(scope="session")
def driver(browser_requirements, output_dir, tmp_path_factory):
    """Headless Debian Chromium through Debian's chromedriver: both paths given, so Selenium Manager stays idle."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_AVOID_STATS"] = "true"  # Selenium Manager must not phone home either
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(output_dir / "chromedriver.log"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_script_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
