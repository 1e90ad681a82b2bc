"""A new chat platform is one folder, its config model and one registry line: shown on a copy.

The repo's code (bot, handlers, config) is copied to a temporary directory and a toy
platform added to the copy: ``handlers/toy/`` (a notifier that writes each notice as a JSON
line), ``ToyConfig`` appended to ``config/chat.py`` and one line in ``TocsinConfig``. The
real ``tocsin`` console script then runs with the copy first on ``PYTHONPATH``: ``config
validate`` checks the toy's routes against the watched providers (nobody told the loader the
toy has routes), and ``tocsin drill`` delivers to the toy end to end. The diff between the
copy and the repo is computed here, so a platform that needs one more file fails the test.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_cli import cli_env, tocsin

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "config")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", ".git", "tests")

REGISTRY_AFTER = "    discord: chat.DiscordConfig | None = None\n"
REGISTRY_LINE = "    toy: chat.ToyConfig | None = None\n"

TOY_MODEL = '''

class ToyChannel(RouteConfig):
    id: str
    mention: Literal["none", "all"] = "none"
    mention_min_status: Severity = Status.MAJOR_OUTAGE


class ToyConfig(ChatConfig):
    """A chat platform whose API is a file: every notice is one JSON line in ``inbox``."""

    inbox: str
    channels: list[ToyChannel] = Field(default_factory=list)
    admin_channel: str | None = None
'''

TOY_PACKAGE = '''"""Toy: a chat platform whose API is a file of JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.notifier import Delivery, Receipt, Target
from config.schema import TocsinConfig
from handlers.chat import channel_targets, mention_for, notice_color

MENTIONS = frozenset({"all"})


class ToyNotifier:
    kind = "toy"

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        line = {
            "target": target.key,
            "channel": target.options["channel"],
            "intent": delivery.intent.value,
            "event": delivery.event.id,
            "title": delivery.notice.title,
            "color": notice_color(delivery.notice),
            "mention": mention_for(target.options, delivery, MENTIONS),
        }
        with self.inbox.open("a", encoding="utf-8") as inbox:
            inbox.write(json.dumps(line) + "\\n")
        return Receipt({"event": delivery.event.id})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        return None

    async def close(self) -> None:
        return None


def targets(config: TocsinConfig, **_: Any) -> list[Target]:
    toy = config.toy
    if toy is None:
        return []
    return channel_targets("toy", ToyNotifier(Path(toy.inbox)), toy.channels, toy.admin_channel)
'''


def _copy_with_toy(root: Path) -> None:
    """The repo's packages under ``root``, plus the toy platform: its folder, its model, one
    registry line."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=IGNORED)
    toy = root / "handlers" / "toy"
    toy.mkdir()
    (toy / "__init__.py").write_text(TOY_PACKAGE, encoding="utf-8")
    chat = root / "config" / "chat.py"
    chat.write_text(chat.read_text(encoding="utf-8") + TOY_MODEL, encoding="utf-8")
    schema = root / "config" / "schema.py"
    text = schema.read_text(encoding="utf-8")
    assert text.count(REGISTRY_AFTER) == 1, "TocsinConfig's discord line moved: update the test"
    schema.write_text(
        text.replace(REGISTRY_AFTER, REGISTRY_AFTER + REGISTRY_LINE), encoding="utf-8"
    )


def _files(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    return found


def _changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines ``after`` adds to ``before``, and the lines it takes away."""
    diff = difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True))
    lines = list(diff)
    return (
        [line[2:] for line in lines if line.startswith("+ ")],
        [line[2:] for line in lines if line.startswith("- ")],
    )


@pytest.fixture
def toy_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _copy_with_toy(root)
    return root


def _env(root: Path) -> dict[str, str]:
    return cli_env(PYTHONPATH=str(root))


def _config(tmp_path: Path, document: dict[str, Any], name: str) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _document(inbox: Path, providers: str | list[str]) -> dict[str, Any]:
    return {
        "providers": ["anthropic", "openai"],
        "console": {"enabled": False},
        "toy": {"inbox": str(inbox), "channels": [{"id": "ops", "providers": providers}]},
    }


def test_the_toy_platform_touches_only_its_folder_its_model_and_one_registry_line(
    toy_repo: Path,
) -> None:
    original, copy = _files(REPO), _files(toy_repo)
    added = sorted(set(copy) - set(original))
    assert added == ["handlers/toy/__init__.py"]
    assert set(original) <= set(copy), "the copy lost a file"
    changed = sorted(name for name in original if copy[name] != original[name])
    assert changed == ["config/chat.py", "config/schema.py"]
    plus, minus = _changed_lines(original["config/schema.py"], copy["config/schema.py"])
    assert (plus, minus) == ([REGISTRY_LINE], [])
    plus, minus = _changed_lines(original["config/chat.py"], copy["config/chat.py"])
    assert minus == []
    assert "".join(plus).strip() == TOY_MODEL.strip()


def test_validate_checks_a_toy_route_against_the_watched_providers(
    toy_repo: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox.jsonl"
    bad = _config(tmp_path, _document(inbox, ["anthropic", "opnai"]), "bad.yaml")
    result = tocsin("config", "validate", str(bad), cwd=tmp_path, env=_env(toy_repo))
    assert result.code == 2, result
    assert "toy.channels[0].providers[1]: 'opnai' is not a watched provider" in result.both
    assert "did you mean 'openai'?" in result.both

    good = _config(tmp_path, _document(inbox, ["anthropic"]), "good.yaml")
    result = tocsin("config", "validate", str(good), cwd=tmp_path, env=_env(toy_repo))
    assert result.code == 0, result
    assert "toy channels: 1" in result.out


def test_a_drill_reaches_the_toy_platform_end_to_end(toy_repo: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox.jsonl"
    config = _config(tmp_path, _document(inbox, "all"), "toy.yaml")
    result = tocsin("drill", "--config", str(config), cwd=tmp_path, env=_env(toy_repo))
    assert result.code == 0, result
    assert "toy:ops" in result.out
    assert "Traceback" not in result.both
    # the drill returns once every target has answered: the line is there when it exits
    lines = [json.loads(line) for line in inbox.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line["target"] == "toy:ops"
    assert line["channel"] == "ops"
    assert line["intent"] == "notice"
    assert line["color"] == "#8250df"  # the shared colour of tocsin's own notices
    assert line["mention"] is None  # a drill never mentions
    assert "drill" in line["title"].lower()


def test_the_repo_itself_has_no_toy(tmp_path: Path) -> None:
    """The copy's toy is the copy's: the repo's own validate refuses the section."""
    config = _config(tmp_path, _document(tmp_path / "inbox.jsonl", "all"), "toy.yaml")
    result = tocsin("config", "validate", str(config), cwd=tmp_path)
    assert result.code == 2, result
    assert "toy: unknown key (typo?)" in result.both
