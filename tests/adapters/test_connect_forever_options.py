"""Both reconnecting clients name every option they pass on: each of ``connect()``'s
keyword options is a keyword of ``connect_forever()``, with the same default and type, so
a misspelled one is a type error (and a ``TypeError`` at the call), not a failure at the
first connect."""

from __future__ import annotations

import importlib
import inspect
import textwrap
from pathlib import Path

import pytest

DRIVERS = ["heartbeat_asyncio", "heartbeat_threading"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", DRIVERS)
def test_connect_forever_takes_every_connect_option_by_name(package: str) -> None:
    module = importlib.import_module(package)
    forever = inspect.signature(module.connect_forever).parameters
    connect = inspect.signature(module.connect).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in forever.values())
    for name, option in connect.items():
        if name == "uri":
            continue
        assert name in forever, f"{package}.connect_forever() lacks {name}="
        assert forever[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert forever[name].default == option.default, name
        assert forever[name].annotation == option.annotation, name
    assert set(forever) - set(connect) == {"backoff", "on_state"}


@pytest.mark.parametrize("package", DRIVERS)
def test_a_misspelled_option_fails_at_the_call(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(TypeError, match="confg"):
        module.connect_forever("ws://127.0.0.1:9/", confg=None)


def test_a_misspelled_option_is_a_type_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What a user's type checker says (mypy, as configured for this project)."""
    api = pytest.importorskip("mypy.api", reason="mypy is in the lint group, not installed here")
    if not (ROOT / "adapters").is_dir():
        pytest.skip("needs the source tree (the lint group's mypy reads it)")
    monkeypatch.chdir(ROOT)
    program = textwrap.dedent(
        """
        import heartbeat_asyncio
        import heartbeat_threading
        from heartbeat_core import HeartbeatConfig

        config = HeartbeatConfig()
        heartbeat_asyncio.connect_forever("ws://127.0.0.1:9/", confg=config)
        heartbeat_threading.connect_forever("ws://127.0.0.1:9/", confg=config)
        heartbeat_threading.connect_forever("ws://127.0.0.1:9/", config=config, write_limit=1)
        """
    )
    user = tmp_path / "user.py"
    user.write_text(program)
    stdout, _, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), str(user)])
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, stdout
    assert len(errors) == 2, stdout
    assert all('Unexpected keyword argument "confg"' in line for line in errors), stdout
