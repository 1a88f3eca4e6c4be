"""The versions we declare are the versions we test: one command runs what CI runs.

    .venv/bin/nox -s lowest newest wheel    (make test-versions)

``lowest``: the suite with the lowest version pyproject.toml allows of every
direct dependency, extras included (uv's ``lowest-direct`` resolution).
``newest``: the suite with the newest versions. ``wheel``: build the sdist and
the wheel, check them, install the wheel into a clean environment and run the
sdist's tests against the installed package, not the source tree.

Each session runs on SQLite, like ``make test``; REDIS_URL and the REQUIRE_*
variables pass through, so CI runs the same tests in each.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lowest", "newest", "wheel"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).resolve().parent
EXTRAS = ("test", "postgres")
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
#: What the wheel must hold besides the modules: the type marker and the event templates.
WHEEL_DATA = (
    "flask_stripe_billing/py.typed",
    "flask_stripe_billing/core/event_templates/README.md",
    "flask_stripe_billing/core/event_templates/current/customer.subscription.created.json",
    "flask_stripe_billing/core/event_templates/legacy/checkout.session.completed.json",
    "flask_stripe_billing/web/templates/stripe_billing/admin/base.html",
    "flask_stripe_billing/web/templates/stripe_billing/admin/events.html",
    "flask_stripe_billing/web/templates/stripe_billing/admin/event.html",
    "flask_stripe_billing/web/templates/stripe_billing/admin/account.html",
    "flask_stripe_billing/web/templates/stripe_billing/admin/error.html",
    "flask_stripe_billing/web/templates/stripe_billing/admin/macros.html",
)
#: What the sdist must hold so that its tests run against the installed wheel.
SDIST_FILES = ("tests/conftest.py", "tests/support.py", "tests/fixtures", "examples", "docs")


def uv(session: nox.Session, *args: str) -> None:
    """Run the uv that nox itself uses (installed by the dev extra)."""
    session.run(sys.executable, "-m", "uv", *args, external=True)


def pytest(session: nox.Session) -> None:
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def lowest(session: nox.Session) -> None:
    """The suite with the lowest allowed version of every direct dependency."""
    pins = Path(session.create_tmp()) / "lowest.txt"
    extras = [option for extra in EXTRAS for option in ("--extra", extra)]
    uv(
        session,
        *("pip", "compile", "--quiet", str(ROOT / "pyproject.toml"), *extras),
        *("--resolution", "lowest-direct", "--python-version", PYTHON_VERSION),
        *("--output-file", str(pins)),
    )
    session.log("lowest versions: " + " ".join(_pins(pins)))
    session.install("-r", str(pins))
    session.install("--no-deps", "-e", ".")
    pytest(session)


@nox.session
def newest(session: nox.Session) -> None:
    """The suite with the newest version of everything."""
    session.install("--upgrade", "--refresh", "-e", f".[{','.join(EXTRAS)}]")
    pytest(session)


@nox.session
def wheel(session: nox.Session) -> None:
    """Build, check, install the wheel alone, and run the sdist's tests against it."""
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build[uv]", "twine")
    session.run("python", "-m", "build", "--installer", "uv", "--outdir", str(dist), str(ROOT))
    [sdist] = dist.glob("*.tar.gz")
    [built] = dist.glob("*.whl")
    session.run("twine", "check", "--strict", str(sdist), str(built))
    _check_contents(session, sdist, built)

    unpacked = tmp / "sdist"
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    [source] = unpacked.iterdir()
    shutil.rmtree(source / "src")  # the tests must import the installed package
    session.install(f"{built}[{','.join(EXTRAS)}]")
    session.chdir(source)
    session.run(
        "python",
        "-c",
        "import flask_stripe_billing as p, sys; print('testing', p.__file__); "
        "sys.exit('site-packages' not in p.__file__)",
    )
    pytest(session)


def _check_contents(session: nox.Session, sdist: Path, built: Path) -> None:
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
    missing = [name for name in WHEEL_DATA if name not in names]
    templates = [name for name in names if name.endswith(".json") and "event_templates" in name]
    if missing or len(templates) < 10:
        session.error(f"the wheel lacks {missing or 'event templates'}: {sorted(names)}")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    absent = [path for path in SDIST_FILES if path not in members]
    if absent:
        session.error(f"the sdist lacks {absent}")
    session.log(f"{built.name}: {len(names)} files; {sdist.name}: {len(members)} files")


def _pins(requirements: Path) -> list[str]:
    lines = requirements.read_text().splitlines()
    return [line for line in lines if line and not line.startswith((" ", "#"))]
