"""Loading: find the file, read YAML, overlay the environment (secrets, and the settings a
container sets without any file), resolve catalog providers, validate. Every problem is
collected into one :class:`ConfigError` whose lines carry the path of the offending key
(``providers[2].probe.url: ...``) or the variable that gave it (``TOCSIN_SERVER_PORT: ...``),
so a broken config never starts half a bot.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.catalog import Catalog, load_catalog
from config.schema import TocsinConfig

DEFAULT_FILE = "tocsin.yaml"
CONFIG_ENV = "TOCSIN_CONFIG"


#: A config file is read, aliases expanded, by everything downstream (deep copies, pydantic,
#: JSON encoding of a probe's body): a document bigger than this once expanded is refused, so
#: an alias bomb ("billion laughs") is a config error instead of a hung process.
MAX_VALUES = 50_000
#: The whole document and its top-level sections may hold more (5,000 providers are about
#: 60,000 values): a bomb is a value that expands, not a long list of providers.
MAX_DOCUMENT_VALUES = 2_000_000
#: Nesting deeper than this (written or through aliases) is refused before anything recurses.
MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key written twice is an error (YAML keeps the last one
    silently, which hides half of a config), merge keys (``<<: *defaults``) work, and a
    document that nests too deep or expands too far through aliases is refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._checked: set[int] = set()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Composing recurses once per level: stop before Python's own limit does."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _refuse_expansion(node)
        return node

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Keys written twice in one mapping are an error; a key written next to a merge
        (``<<:``) overrides the merged one, as YAML says. Checked before PyYAML folds the
        merged pairs into the mapping, once per mapping (a merged one is folded again)."""
        if id(node) not in self._checked:
            self._checked.add(id(node))
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node)
                if not isinstance(key, Hashable):
                    continue  # PyYAML's own error says so
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice", key_node.start_mark
                    )
                seen.add(key)
        super().flatten_mapping(node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _refuse_expansion(root: yaml.Node) -> None:
    """Raise if the document, aliases expanded, has more than :data:`MAX_VALUES` values,
    nests deeper than :data:`MAX_DEPTH` or contains itself. PyYAML shares an alias's node,
    so this walks the shared graph once (memoised on node identity, without recursion): the
    cost is the file's size, not the expansion's."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth), once expanded
    sections = {id(root), *(id(child) for child in _children(root))}
    open_nodes: set[int] = set()  # the nodes on the path being walked
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            parts = [sizes[id(child)] for child in _children(node)]
            values = 1 + sum(size for size, _ in parts)
            depth = 1 + max((deep for _, deep in parts), default=0)
            limit = MAX_DOCUMENT_VALUES if key in sections else MAX_VALUES
            if values > limit:
                raise YamlRefused(
                    f"this value expands to more than {limit:,} values, each alias "
                    "counted every time it is used (an alias bomb?)",
                    node.start_mark,
                )
            if depth > MAX_DEPTH:
                raise YamlRefused(
                    f"this value nests deeper than {MAX_DEPTH} levels through its aliases",
                    node.start_mark,
                )
            sizes[key] = (values, depth)
        elif key in open_nodes:
            raise YamlRefused("this value contains an alias to itself", node.start_mark)
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


class YamlRefused(yaml.MarkedYAMLError):
    """Well-formed YAML that tocsin will not load (too deep, too big once expanded)."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class ConfigError(Exception):
    """A config that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: Sequence[str], source: str = "config") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.errors))


_ENV_MODEL = SettingsConfigDict(
    env_file=".env", extra="ignore", case_sensitive=True, env_ignore_empty=True
)


class EnvSecrets(BaseSettings):
    """Secrets (and the Redis URL) that may come from the environment instead of the file.

    pydantic-settings reads them (and a ``.env`` file when present), so the names below are
    the whole contract; the environment wins over the file. An empty variable counts as
    unset, so compose's ``${SLACK_BOT_TOKEN:-}`` placeholders are harmless.
    """

    model_config = _ENV_MODEL

    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    #: Webhook URLs carry their token: a secret, comma-separated.
    discord_webhooks: SecretStr | None = Field(None, alias="TOCSIN_DISCORD_WEBHOOKS")
    redis_url: SecretStr | None = Field(None, alias="REDIS_URL")
    redis_sentinel_password: SecretStr | None = Field(None, alias="REDIS_SENTINEL_PASSWORD")
    pagerduty_routing_key: SecretStr | None = Field(None, alias="PAGERDUTY_ROUTING_KEY")
    opsgenie_api_key: SecretStr | None = Field(None, alias="OPSGENIE_API_KEY")
    hook_secret: SecretStr | None = Field(None, alias="TOCSIN_HOOK_SECRET")
    signal_tokens: SecretStr | None = Field(None, alias="TOCSIN_SIGNAL_TOKENS")


class EnvSettings(BaseSettings):
    """The settings a container sets without any config file (README "Environment-only
    configuration"). Each names one key of the file and wins over it, as secrets do; the
    values stay strings here and are validated by the schema like the file's, so the two
    can never disagree on what a value means."""

    model_config = _ENV_MODEL

    providers: str | None = Field(None, alias="TOCSIN_PROVIDERS")
    slack_channels: str | None = Field(None, alias="TOCSIN_SLACK_CHANNELS")
    slack_admin_channel: str | None = Field(None, alias="TOCSIN_SLACK_ADMIN_CHANNEL")
    discord_channels: str | None = Field(None, alias="TOCSIN_DISCORD_CHANNELS")
    discord_admin_channel: str | None = Field(None, alias="TOCSIN_DISCORD_ADMIN_CHANNEL")
    server_host: str | None = Field(None, alias="TOCSIN_SERVER_HOST")
    server_port: str | None = Field(None, alias="TOCSIN_SERVER_PORT")
    log_level: str | None = Field(None, alias="TOCSIN_LOG_LEVEL")
    log_format: str | None = Field(None, alias="TOCSIN_LOG_FORMAT")
    instance: str | None = Field(None, alias="TOCSIN_INSTANCE")
    vantage: str | None = Field(None, alias="TOCSIN_VANTAGE")
    store_prefix: str | None = Field(None, alias="TOCSIN_STORE_PREFIX")
    data_dir: str | None = Field(None, alias="TOCSIN_DATA_DIR")
    watch_interval: str | None = Field(None, alias="TOCSIN_WATCH_INTERVAL")


def _items(text: str) -> list[str]:
    """A comma-separated list; spaces around items and empty items are dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _targets(key: str) -> Callable[[str], list[dict[str, Any]]]:
    """Chat targets for every provider, one per listed id or URL (finer routing: the file)."""
    return lambda text: [{key: item, "providers": "all"} for item in _items(text)]


def _signal_tokens(text: str) -> list[dict[str, str]]:
    """``checkout:<token>,search:<token>``: one app's name and its token each. A bare token
    is app ``app``, ``app-2``…; the schema checks what the values must look like."""
    tokens = []
    for index, item in enumerate(_items(text), 1):
        name, colon, token = item.partition(":")
        if not colon:
            name, token = ("app" if index == 1 else f"app-{index}"), item
        tokens.append({"name": name.strip(), "token": token.strip()})
    return tokens


#: Environment variable → (where its value lands in the config document, how it is read).
_PLACES: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "SLACK_BOT_TOKEN": (("slack", "bot_token"), str),
    "SLACK_APP_TOKEN": (("slack", "app_token"), str),
    "SLACK_SIGNING_SECRET": (("slack", "signing_secret"), str),
    "DISCORD_TOKEN": (("discord", "token"), str),
    "TOCSIN_DISCORD_WEBHOOKS": (("discord", "webhooks"), _targets("url")),
    "REDIS_URL": (("store", "url"), str),
    "REDIS_SENTINEL_PASSWORD": (("store", "sentinel_password"), str),
    "TOCSIN_HOOK_SECRET": (("hooks", "secret"), str),
    "TOCSIN_SIGNAL_TOKENS": (("signals", "tokens"), _signal_tokens),
    "TOCSIN_PROVIDERS": (("providers",), _items),
    "TOCSIN_SLACK_CHANNELS": (("slack", "channels"), _targets("id")),
    "TOCSIN_SLACK_ADMIN_CHANNEL": (("slack", "admin_channel"), str),
    "TOCSIN_DISCORD_CHANNELS": (("discord", "channels"), _targets("id")),
    "TOCSIN_DISCORD_ADMIN_CHANNEL": (("discord", "admin_channel"), str),
    "TOCSIN_SERVER_HOST": (("server", "host"), str),
    "TOCSIN_SERVER_PORT": (("server", "port"), str),
    "TOCSIN_LOG_LEVEL": (("log", "level"), str.lower),
    "TOCSIN_LOG_FORMAT": (("log", "format"), str.lower),
    "TOCSIN_INSTANCE": (("instance",), str),
    "TOCSIN_VANTAGE": (("vantage",), str),
    "TOCSIN_STORE_PREFIX": (("store", "prefix"), str),
    "TOCSIN_DATA_DIR": (("store", "data_dir"), str),
    "TOCSIN_WATCH_INTERVAL": (("watch", "interval"), str),
}
_POLICY_SECRETS = {
    "PAGERDUTY_ROUTING_KEY": ("pagerduty", "routing_key"),
    "OPSGENIE_API_KEY": ("opsgenie", "api_key"),
}

#: ``tocsin run``'s default role (its ``--role`` wins): a container's one way to choose it.
ROLE_ENV = "TOCSIN_ROLE"
#: Every variable tocsin reads for its config: the file's name, the overlays, the role.
ENV_VARIABLES = (CONFIG_ENV, *_PLACES, *_POLICY_SECRETS, ROLE_ENV)


def resolve_path(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """``--config``, else ``$TOCSIN_CONFIG``, else ``./tocsin.yaml`` if present, else none."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_config(path: str | Path | None = None, *, catalog: Catalog | None = None) -> TocsinConfig:
    """The validated config from ``path`` (``None``: no file, the environment over the
    built-in defaults)."""
    catalog = catalog or load_catalog()
    if path is None:
        document: dict[str, Any] = {}
        source = "the environment (no config file)"
    else:
        document = read_document(Path(path))
        source = str(path)
    return build_config(document, source=source, catalog=catalog)


def read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"], str(path)) from None
    try:
        loaded = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        what = "" if isinstance(exc, YamlRefused) else "invalid YAML: "
        raise ConfigError([f"{where}{what}{problem}"], str(path)) from None
    except RecursionError:  # a safety net: the loader stops at MAX_DEPTH before this
        raise ConfigError([f"nested deeper than {MAX_DEPTH} levels"], str(path)) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            [f"the top level must be a mapping of sections, not a {type(loaded).__name__}"],
            str(path),
        )
    return loaded


def build_config(
    document: Mapping[str, Any],
    *,
    source: str = "config",
    catalog: Catalog | None = None,
) -> TocsinConfig:
    """Validate a config document (the environment overlaid); raise :class:`ConfigError`
    with every problem at once: schema errors and cross-references alike. A problem with a
    value the environment gave names the variable (``TOCSIN_SERVER_PORT: ...``)."""
    catalog = catalog or load_catalog()
    doc = copy.deepcopy(dict(document))
    origins = overlay_env(doc, catalog)
    written = doc.get("providers")
    errors: list[str] = []
    doc["providers"], positions = _resolve_providers(written, catalog, errors)
    if "upstreams" not in doc:
        doc["upstreams"] = _upstreams_of(doc["providers"], catalog)
    config: TocsinConfig | None = None
    try:
        config = TocsinConfig.model_validate(doc)
    except ValidationError as exc:
        errors.extend(format_validation_error(exc, positions))
    errors.extend(_cross_checks(doc, written, positions, catalog))
    if errors or config is None:
        raise ConfigError(name_variables(errors, origins), source)
    return config


def env_values() -> dict[str, str]:
    """The config variables that are set (environment, else ``.env``), by name."""
    values: dict[str, str] = {}
    for settings in (EnvSecrets(), EnvSettings()):
        for name, field in type(settings).model_fields.items():
            value = getattr(settings, name)
            if value is not None and field.alias:
                values[field.alias] = (
                    value.get_secret_value() if isinstance(value, SecretStr) else value
                )
    return values


def overlay_env(doc: dict[str, Any], catalog: Catalog) -> dict[str, str]:
    """Put every set variable's value in its place in ``doc``, over the file's; returns
    where each landed (``"server.port" → "TOCSIN_SERVER_PORT"``) for error messages."""
    values = env_values()
    origins: dict[str, str] = {}
    for variable, (path, read) in _PLACES.items():
        if variable not in values:
            continue
        value = read(values[variable])
        if variable == "TOCSIN_PROVIDERS" and value == ["all"]:
            value = catalog.ids()
        if _place(doc, path, value):
            origins[format_loc(path)] = variable
    origins.update(_fill_policy_keys(doc, values))
    return origins


def _place(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> bool:
    """Set ``doc[a][b] = value``; a section written empty becomes a mapping. A section the
    file wrote as something else is left alone: validation reports the file's mistake."""
    target = doc
    for section in path[:-1]:
        if target.get(section) is None:
            target[section] = {}
        if not isinstance(target[section], dict):
            return False
        target = target[section]
    target[path[-1]] = value
    return True


def _fill_policy_keys(doc: dict[str, Any], values: Mapping[str, str]) -> dict[str, str]:
    """PAGERDUTY_ROUTING_KEY and OPSGENIE_API_KEY fill the policies without a key of their
    own (policies may page different services: a policy's own key is kept). Returns where
    each landed, as :func:`overlay_env` does."""
    origins: dict[str, str] = {}
    policies = doc.get("escalation")
    if not isinstance(policies, list):
        return origins
    for variable, (kind, key) in _POLICY_SECRETS.items():
        if variable not in values:
            continue
        for index, policy in enumerate(policies):
            if isinstance(policy, dict) and policy.get("kind") == kind and not policy.get(key):
                policy[key] = values[variable]
                origins[format_loc(("escalation", index, key))] = variable
    return origins


def name_variables(errors: Sequence[str], origins: Mapping[str, str]) -> list[str]:
    """``server.port: ...`` → ``TOCSIN_SERVER_PORT: ...`` when the environment gave that
    value (deeper: ``TOCSIN_PROVIDERS (providers[1].id): ...``), so the user looks in the
    right place: the file does not say what the error is about."""
    named = []
    for line in errors:
        for path, variable in origins.items():
            if line.startswith(f"{path}: "):
                line = f"{variable}: {line.removeprefix(f'{path}: ')}"
                break
            if line.startswith((f"{path}.", f"{path}[")):
                where, _, message = line.partition(": ")
                line = f"{variable} ({where}): {message}"
                break
        named.append(line)
    return named


def _resolve_providers(raw: Any, catalog: Catalog, errors: list[str]) -> tuple[Any, list[int]]:
    """Catalog entries by id, with the user's fields deep-merged over them.

    Returns the entries to validate and, for each, its index in the user's list (an unknown
    catalog id is reported here and left out, so later errors must keep their own index).
    """
    if raw is None:
        entries = [dict(entry) for entry in catalog.main()]
        return entries, list(range(len(entries)))
    if not isinstance(raw, list):
        return raw, []  # validation reports the type error with its path
    resolved: list[Any] = []
    positions: list[int] = []
    for index, entry in enumerate(raw):
        if isinstance(entry, str):
            entry = {"id": entry}
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            base = catalog.get(entry["id"])
            if base is not None:
                entry = deep_merge(base, entry)
            elif set(entry) <= {"id", "fallbacks"}:
                errors.append(
                    f"providers[{index}].id: {entry['id']!r} is not in the catalog"
                    f"{_suggest(entry['id'], catalog.ids())}; give name and status_page or probe "
                    "for a custom provider"
                )
                continue
        resolved.append(entry)
        positions.append(index)
    return resolved, positions


def _upstreams_of(providers: Any, catalog: Catalog) -> list[dict[str, Any]]:
    """The catalog's upstreams that the watched providers stand on, in catalog order."""
    named: set[str] = set()
    for entry in providers if isinstance(providers, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("upstreams"), list):
            named.update(u for u in entry["upstreams"] if isinstance(u, str))
    return [dict(u) for u in catalog.upstreams if u["id"] in named]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``; mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _cross_checks(
    doc: Mapping[str, Any], written: Any, positions: Sequence[int], catalog: Catalog
) -> list[str]:
    """References between sections, checked on the raw document so they are reported even
    when other parts of the file do not validate yet."""
    entries = written if isinstance(written, list) else doc.get("providers")
    entries = [{"id": e} if isinstance(e, str) else e for e in entries or []]
    ids = [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
    errors: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        provider_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(provider_id, str) and provider_id in seen:
            errors.append(f"providers[{index}].id: {provider_id!r} is listed twice")
        if isinstance(provider_id, str):
            seen.add(provider_id)
    known = sorted(set(ids) | set(catalog.ids()))
    resolved = doc.get("providers")
    by_index = dict(zip(positions, resolved, strict=False)) if isinstance(resolved, list) else {}
    for index, merged in by_index.items():
        if not isinstance(merged, dict):
            continue
        for j, fallback in enumerate(_strings(merged.get("fallbacks"))):
            if fallback not in known:
                errors.append(
                    f"providers[{index}].fallbacks[{j}]: unknown provider {fallback!r}"
                    f"{_suggest(fallback, known)}"
                )
        errors.extend(_unknown_upstreams(index, merged, doc, catalog))
    for where, route in _routes(doc):
        providers = route.get("providers")
        if not isinstance(providers, list):
            continue
        for j, provider_id in enumerate(providers):
            if isinstance(provider_id, str) and provider_id not in ids:
                errors.append(
                    f"{where}.providers[{j}]: {provider_id!r} is not a watched provider"
                    f"{_suggest(provider_id, ids)}"
                )
    errors.extend(_missing_policy_keys(doc))
    errors.extend(_route_group_members(doc, ids))
    return errors


def _route_group_members(doc: Mapping[str, Any], ids: Sequence[str]) -> list[str]:
    """A route group may only name watched providers: tocsin knows nothing of the others."""
    groups = doc.get("routes")
    if not isinstance(groups, dict):
        return []
    return [
        f"routes.{name}[{j}]: {member.split('/', 1)[0]!r} is not a watched provider"
        f"{_suggest(member.split('/', 1)[0], ids)}"
        for name, members in groups.items()
        if isinstance(members, list)
        for j, member in enumerate(members)
        if isinstance(member, str) and member.split("/", 1)[0] not in ids
    ]


def _unknown_upstreams(
    index: int, provider: Mapping[str, Any], doc: Mapping[str, Any], catalog: Catalog
) -> list[str]:
    """An upstream a provider names must be one the file or the catalog knows (a typo would
    silently never name a cause)."""
    given = doc.get("upstreams")
    known = (
        {u["id"] for u in catalog.upstreams} | {u.get("id") for u in given if isinstance(u, dict)}
        if isinstance(given, list)
        else {u["id"] for u in catalog.upstreams}
    )
    return [
        f"providers[{index}].upstreams[{j}]: unknown upstream {name!r}"
        f"{_suggest(name, sorted(str(k) for k in known))}"
        for j, name in enumerate(_strings(provider.get("upstreams")))
        if name not in known
    ]


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _routes(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every route the document lists, with its path (``discord.webhooks[0]``): the lists
    come from the schema's types (:meth:`TocsinConfig.route_lists`), so a new platform's
    routes are checked without being named here."""
    routes: list[tuple[str, dict[str, Any]]] = []
    for path in TocsinConfig.route_lists():
        items = _at(doc, path)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict):
                routes.append((f"{format_loc(path)}[{i}]", item))
    return routes


def _at(doc: Mapping[str, Any], path: Sequence[str]) -> Any:
    """``doc[a][b]...``, or ``None`` where a step is missing or not a mapping."""
    value: Any = doc
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _missing_policy_keys(doc: Mapping[str, Any]) -> list[str]:
    needs = {
        "pagerduty": ("routing_key", "PAGERDUTY_ROUTING_KEY"),
        "opsgenie": ("api_key", "OPSGENIE_API_KEY"),
    }
    errors = []
    policies = doc.get("escalation")
    for index, policy in enumerate(policies if isinstance(policies, list) else []):
        if not isinstance(policy, dict) or policy.get("kind") not in needs:
            continue
        key, variable = needs[policy["kind"]]
        if not policy.get(key):
            errors.append(f"escalation[{index}].{key}: required (or set {variable})")
    return errors


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_validation_error(exc: ValidationError, positions: Sequence[int] = ()) -> list[str]:
    """pydantic's errors as ``path: message`` lines (``providers[2].probe.url: ...``);
    ``positions`` maps validated provider entries back to their index in the file."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if len(loc) > 1 and loc[0] == "providers" and isinstance(loc[1], int) and positions:
            loc[1] = positions[loc[1]] if loc[1] < len(positions) else loc[1]
        path = format_loc(loc)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (typo?)"
        elif error["type"] == "missing":
            message = "required"
        message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def format_loc(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("pagerduty", "opsgenie", "webhook") and path.endswith("]"):
            continue  # the discriminated union's tag adds nothing to the path
        else:
            path += f".{part}" if path else str(part)
    return path
