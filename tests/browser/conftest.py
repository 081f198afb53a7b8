"""Browser fixtures: the page runs against the frontend ComfyUI ships (1.32.9 with 0.3.75) and against the newest
frontend from the package index (setup unpacks it into .host/frontend-newest), each on a real host."""

import pytest
from browser import launch
from comfy_host import HOST_DIR, ComfyHost

NEWEST = HOST_DIR / "frontend-newest"


@pytest.fixture(scope="session")
def newest_host(host):
    """A second host serving the newest frontend, on its own base folder and the session host's models."""
    assert (NEWEST / "index.html").is_file(), f"no newest frontend in {NEWEST}: run make setup"
    with ComfyHost(base=HOST_DIR / "base-newest", models_dir=host.base / "models", front_end_root=NEWEST) as h:
        yield h


@pytest.fixture(scope="session", params=["installed", "newest"])
def frontend_url(request) -> str:
    host = request.getfixturevalue("host" if request.param == "installed" else "newest_host")
    return host.url


@pytest.fixture(scope="session")
def browser():
    with launch() as b:
        yield b
