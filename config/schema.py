"""The configuration schema: one YAML file, validated here.

The key names are a public contract (DESIGN.md): add freely, rename nothing. Every model
forbids unknown keys so a typo is an error with its path, not a silently ignored setting.
Secrets are ``SecretStr`` so they never print, and each can come from the environment
instead (see :mod:`config.loader`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.models import Status
from config import chat
from config.base import (
    HttpURL,
    Model,
    RouteConfig,
    Secret,
    Severity,
    is_route_list,
    route_fields,
    secret_check,
    section_model,
)
from config.durations import Duration
from config.redis_urls import SENTINEL_SCHEME, is_sentinel_url, parse_sentinel_url
from config.targets import check_routing_key

PROVIDER_ID = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
#: (issue 17) A vantage's name (``eu-west``, ``office``): like a provider id.
VANTAGE_ID = PROVIDER_ID


def _stripped_password(value: object) -> object:
    """A password may hold spaces, but not at its ends (a paste) nor control characters."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return value
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ValueError("contains control characters (a paste error?); the value is not shown")
    return value


Password = Annotated[SecretStr, BeforeValidator(_stripped_password)]
RoutingKey = Annotated[Secret, AfterValidator(secret_check(check_routing_key))]


class StoreTLS(Model):
    """Client TLS for a ``rediss://`` store, handed to redis-py as its ``ssl_*`` options.

    Omitted: redis-py's defaults (the system's CAs, certificate and host name checked).
    """

    #: PEM file of the CA(s) to trust, e.g. a managed Redis's or your own.
    ca_file: str | None = None
    #: Client certificate and key (PEM), for servers that require mutual TLS.
    cert_file: str | None = None
    key_file: str | None = None
    #: Check the server's certificate and host name. ``false`` encrypts without knowing who
    #: answers: only for a test setup.
    verify: bool = True

    @model_validator(mode="after")
    def _key_needs_cert(self) -> StoreTLS:
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file (the certificate it belongs to)")
        return self


#: ``store.data_dir``'s default, and the value that keeps the embedded store in memory.
DEFAULT_DATA_DIR = "./tocsin-data"
IN_MEMORY = "memory"


class StoreConfig(Model):
    """Where state and events live: Redis at ``url``, else the embedded in-process store."""

    #: A secret: the URL may carry Redis's password (and a unix socket path, spaces).
    url: Password | None = None
    #: TLS options for a ``rediss://`` url.
    tls: StoreTLS | None = None
    #: The sentinels' own password (``requirepass`` in sentinel.conf) for a
    #: ``redis+sentinel://`` url; the password in the URL is the Redis servers'.
    sentinel_password: Password | None = None
    prefix: str = "tocsin:"
    stream_maxlen: int = Field(10_000, ge=100)
    lease: Duration = 15.0
    #: How long a notifier's unacknowledged stream entries sit idle before another replica
    #: takes them over (XAUTOCLAIM): a dead notifier's notices wait about this long. A live
    #: notifier re-marks its own every third of it, so keep it well above its pauses.
    claim_idle: Duration = Field(30.0, ge=1.0)
    #: (issue 16) Without ``url``: the directory of the embedded store's SQLite file
    #: (``tocsin.sqlite3``), relative to the working directory; ``memory`` keeps everything
    #: in this process's memory instead (forgotten on exit, as before).
    data_dir: str = Field(DEFAULT_DATA_DIR, min_length=1, max_length=4096)

    @property
    def persist(self) -> bool:
        """Whether the embedded store keeps a file (no ``url`` and ``data_dir`` not memory)."""
        return not self.url and self.data_dir != IN_MEMORY

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value()
        scheme = urlsplit(url).scheme
        if scheme not in ("redis", "rediss", "unix", SENTINEL_SCHEME):
            shown = f"scheme {scheme!r}" if scheme else "no scheme"
            raise ValueError(
                f"must be a redis://, rediss://, unix:// or {SENTINEL_SCHEME}:// URL (got {shown})"
            )
        if scheme == SENTINEL_SCHEME:
            parse_sentinel_url(url)  # its ValueError says what is wrong, without the password
        return value

    @field_validator("tls")
    @classmethod
    def _tls_needs_rediss(cls, value: StoreTLS | None, info: ValidationInfo) -> StoreTLS | None:
        """TLS settings on a plain connection would be ignored: say so instead."""
        url = info.data.get("url")
        if (
            value is not None
            and url is not None
            and urlsplit(url.get_secret_value()).scheme != "rediss"
        ):
            raise ValueError("only used with a rediss:// url")
        return value

    @field_validator("sentinel_password")
    @classmethod
    def _only_for_sentinels(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        url = info.data.get("url")
        if value is not None and url is not None and not is_sentinel_url(url.get_secret_value()):
            raise ValueError(f"only used with a {SENTINEL_SCHEME}:// url")
        return value


class ServerConfig(Model):
    """Health, metrics, dashboard and Slack's HTTP mode share this listener."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class WatchConfig(Model):
    """Defaults for every source; a provider's own settings win."""

    interval: Duration = 30.0
    page_interval: Duration = 60.0
    failure_threshold: int = Field(2, ge=1, le=100)
    success_threshold: int = Field(2, ge=1, le=100)
    confirm_interval: Duration | None = None
    jitter: Duration | None = None
    timeout: Duration = 10.0
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    flap_threshold: int = Field(4, ge=2)
    flap_window: Duration = 600.0
    flap_quiet: Duration = 300.0
    self_check_min_providers: int = Field(3, ge=2)
    max_connections: int = Field(100, ge=1)
    user_agent: str = "tocsin (+https://github.com/tocsin-alerts/tocsin)"
    #: Maintenance ahead: a notice when a page schedules maintenance of a watched
    #: component, and one ``maintenance_lead`` before it starts (bot/maintenance_ahead.py).
    maintenance_notices: bool = True
    maintenance_lead: Duration = Field(3600.0, gt=0, le=7 * 86400)
    #: (issue 17) Vantage points: a probe failure makes a component ``suspected`` only when
    #: checks from at least ``quorum`` vantages fail it within ``quorum_window`` (None: 3 x
    #: the longest probe interval). 1: this replica's checks decide alone (bot/vantage.py).
    quorum: int = Field(1, ge=1, le=16)
    quorum_window: Duration | None = Field(None, gt=0, le=86400)
    #: (issue 17) Shards: every watcher replica takes a share of the providers (rendezvous
    #: hashing over the live watchers, each provider held by a lease), instead of one leader
    #: watching everything (bot/shards.py). Off by default.
    sharding: bool = False

    @model_validator(mode="after")
    def _shards_or_quorum(self) -> WatchConfig:
        """Each vantage must check every probe for a quorum, and shards split the probes
        among the replicas: the two do not combine (yet)."""
        if self.sharding and self.quorum > 1:
            raise ValueError(
                "watch.sharding and watch.quorum > 1 cannot be combined: a quorum needs every "
                "vantage to check every probe, shards split them (choose one)"
            )
        return self


StatusPageKind = Literal[
    "statuspage",
    "incidentio",
    "gcloud",
    "rss",
    "betterstack",
    "datadog",
    "flashcat",
    "instatus",
    "aws",
]


class StatusPageConfig(Model):
    """A provider's public status page. ``url`` is the page's root; the source knows its
    endpoints (``/api/v2/summary.json``, ``/proxy/<host>``, ``/incidents.json``...)."""

    kind: StatusPageKind
    url: HttpURL
    #: Ids to watch (components, products or feed categories); omitted → all. Each may be
    #: an id or ``{id: ..., name: ...}``: the name is shown until the page gives its own.
    components: list[str] | None = None
    #: Component id → display name (filled from ``components`` entries that give a name).
    names: dict[str, str] = Field(default_factory=dict)
    interval: Duration | None = None
    timeout: Duration | None = None
    #: Source-specific knobs (e.g. the incident.io proxy host), documented per source.
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _named_components(cls, data: Any) -> Any:
        """``components: [{id: k8w3r06qmzrp, name: Claude API}]`` → ids, and their names."""
        if not isinstance(data, dict) or not isinstance(data.get("components"), list):
            return data
        ids: list[Any] = []
        names = dict(data.get("names") or {}) if isinstance(data.get("names"), dict) else {}
        for entry in data["components"]:
            if isinstance(entry, dict) and set(entry) <= {"id", "name"} and "id" in entry:
                ids.append(entry["id"])
                if isinstance(entry.get("name"), str) and isinstance(entry["id"], str):
                    names.setdefault(entry["id"], entry["name"])
            else:
                ids.append(entry)  # validation says what is wrong with it
        return {**data, "components": ids, "names": names}

    @field_validator("components")
    @classmethod
    def _non_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty list watches nothing: omit the key to watch all")
        return value


class ProbeAuth(Model):
    """How the probe presents the team's API key."""

    kind: Literal["none", "bearer", "header", "query"] = "none"
    header: str = "Authorization"
    param: str = "key"
    #: The environment variable holding the key (the usual place for it).
    env: str | None = None
    key: Secret | None = None


#: The inference probe's wire formats, one module each in ``bot/probes/``.
WireName = Literal["anthropic", "openai", "gemini", "cohere"]
MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$"


class ProbeConfig(Model):
    """A synthetic API call with the team's own key: list models (``kind: models``), or one
    tiny completion per model (``kind: inference``, README "Probes")."""

    kind: Literal["models", "inference"] = "models"
    #: The ``models`` kind's endpoint (the catalog's ``GET /v1/models``).
    url: HttpURL | None = None
    method: Literal["GET", "POST", "HEAD"] = "GET"
    interval: Duration | None = None
    timeout: Duration = 10.0
    #: ``models``: a 2xx slower than this counts as ``degraded``. ``inference``: the median
    #: of the last ``latency_window`` calls of a model over this is ``degraded``.
    latency_budget: Duration = 5.0
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: dict[str, Any] | None = None
    auth: ProbeAuth = Field(default_factory=ProbeAuth)
    #: The component the probe speaks for; defaults to the first watched page component.
    component: str | None = None
    #: Display name when the probe has its own component (a page component keeps its name).
    component_name: str | None = None
    failure_status: Severity = Status.MAJOR_OUTAGE
    #: ``None``: on when a key is available (or none is needed).
    enabled: bool | None = None
    # --- inference (catalog entries fill these; a user usually writes kind and models)
    #: The API's wire format and base URL (``https://api.anthropic.com``).
    wire: WireName | None = None
    api_url: HttpURL | None = None
    #: The models to call, each its own component; the catalog's cheap default otherwise.
    models: list[Annotated[str, Field(pattern=MODEL_ID)]] = Field(default_factory=list)
    #: Model id → display name ("Claude Sonnet 4.5"); the id is shown otherwise.
    model_names: dict[str, str] = Field(default_factory=dict)
    #: Merged over the wire format's request body; a ``null`` removes a key
    #: (``{max_tokens: null, max_completion_tokens: 1}``), like the SDKs' ``extra_body``.
    extra_body: dict[str, Any] = Field(default_factory=dict)
    #: Stream the answer: measures time to first token; a stream cut short is a failure.
    stream: bool = False
    #: How many recent calls per model the latency median and the failure counts cover.
    latency_window: int = Field(5, ge=1, le=50)
    #: Estimated tokens one call costs (prompt + 1 completion token), for the cost estimate.
    tokens_per_call: int = Field(10, ge=1, le=100_000)

    @model_validator(mode="after")
    def _kind_needs(self) -> ProbeConfig:
        if self.kind == "models" and self.url is None:
            raise ValueError("a models probe needs a url (e.g. https://api.example.com/v1/models)")
        if self.kind == "inference":
            missing = [n for n in ("wire", "api_url") if getattr(self, n) is None]
            if missing:
                raise ValueError(
                    f"an inference probe needs {' and '.join(missing)} (the catalog gives them "
                    "for its providers): wire is one of anthropic, openai, gemini, cohere"
                )
            if not self.models:
                raise ValueError("an inference probe needs models: [...] (the models you call)")
            if len(set(self.models)) != len(self.models):
                raise ValueError("probe.models lists a model twice")
        return self

    def model_name(self, model: str) -> str:
        return self.model_names.get(model) or model


class ProviderConfig(Model):
    """One watched provider: a catalog entry by id (with overrides), or a custom one."""

    id: Annotated[str, Field(pattern=PROVIDER_ID)]
    name: str
    status_page: StatusPageConfig | None = None
    probe: ProbeConfig | None = None
    fallbacks: list[str] = Field(default_factory=list)
    #: The human status page, linked from notices.
    status_url: str | None = None
    failure_threshold: int | None = Field(None, ge=1, le=100)
    success_threshold: int | None = Field(None, ge=1, le=100)
    #: Model names for the paste-ready fallback snippets (LiteLLM, OpenRouter).
    litellm_model: str | None = None
    openrouter_model: str | None = None
    #: Catalog-only: part of the built-in default set.
    main: bool = False
    #: The clouds and CDNs this provider stands on (ids in ``upstreams``): an open incident
    #: on one of their pages is named as the likely cause of an outage (README "Upstream causes").
    upstreams: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_a_source(self) -> ProviderConfig:
        if self.status_page is None and self.probe is None:
            raise ValueError("give a status_page or a probe (or both): nothing to watch")
        return self


class EscalationBase(RouteConfig):
    """Who gets woken up, for which providers, after how long (see README "Escalation")."""

    kind: str
    #: Stable name of the policy: pending pages in the store are keyed by it. Default: the
    #: kind (``pagerduty``), or ``pagerduty-2``... when a kind appears more than once.
    id: Annotated[str | None, Field(pattern=PROVIDER_ID)] = None
    #: Who this pages, in words, as chat notices say it ("Platform on-call").
    name: str | None = None
    min_status: Severity = Status.MAJOR_OUTAGE
    #: The outage must last this long before anyone is paged.
    after: Duration = 0.0
    #: Re-notify while it lasts (``None``: once).
    repeat: Duration | None = None
    #: Local times ``"22:00-07:00"`` during which this policy pages nobody.
    quiet_hours: str | None = None
    timezone: str = "UTC"

    @field_validator("quiet_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = re.fullmatch(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})", value)
        if match is None:
            raise ValueError("write quiet hours like 22:00-07:00")
        hours, minutes = (int(match[1]), int(match[3])), (int(match[2]), int(match[4]))
        if max(hours) > 23 or max(minutes) > 59:
            raise ValueError(f"{value!r} is not a time range within a day")
        if match.group(1, 2) == match.group(3, 4):
            raise ValueError("quiet hours that start and end at the same minute are empty")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/Paris)"
            ) from None
        return value

    @field_validator("repeat")
    @classmethod
    def _repeat(cls, value: float | None) -> float | None:
        if value is not None and value < 60:
            raise ValueError("repeat at most once a minute (e.g. 30m)")
        return value

    @property
    def policy_id(self) -> str:
        assert self.id is not None, "ids are assigned when the config is validated"
        return self.id

    @property
    def label(self) -> str:
        return self.name or KIND_LABELS.get(self.kind, self.kind)


KIND_LABELS = {"pagerduty": "PagerDuty", "opsgenie": "Opsgenie", "webhook": "webhook"}


class PagerDutyPolicy(EscalationBase):
    kind: Literal["pagerduty"]
    routing_key: RoutingKey | None = None
    url: HttpURL = "https://events.pagerduty.com/v2/enqueue"


class OpsgeniePolicy(EscalationBase):
    kind: Literal["opsgenie"]
    api_key: Secret | None = None
    region: Literal["us", "eu"] = "us"
    url: HttpURL | None = None


class WebhookPolicy(EscalationBase):
    kind: Literal["webhook"]
    url: HttpURL
    secret: Secret | None = None


EscalationPolicy = Annotated[
    PagerDutyPolicy | OpsgeniePolicy | WebhookPolicy, Field(discriminator="kind")
]


class UpstreamConfig(Model):
    """A cloud or CDN the providers stand on. Its page is read, never announced: an open
    incident there is named as the likely cause of the providers' outages."""

    id: Annotated[str, Field(pattern=PROVIDER_ID)]
    name: str
    status_page: StatusPageConfig


GroupLabel = Literal["cause"]
_CAUSE: GroupLabel = "cause"


class GroupingConfig(Model):
    """Alertmanager-style grouping of notices that share a likely cause: per channel, the
    first waits ``group_wait`` for the others, then one root lists them all. Only notices with
    an upstream cause wait; a single-provider outage without one is never slowed."""

    enabled: bool = True
    group_by: list[GroupLabel] = Field(default_factory=lambda: [_CAUSE])
    group_wait: Duration = Field(15.0, ge=0.0, le=600.0)


#: A route group's name (``chat``) and one member: ``provider`` or ``provider/model``.
ROUTE_GROUP = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
ROUTE_TARGET = r"^[a-z0-9][a-z0-9_.-]{0,62}(/[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127})?$"
RouteTarget = Annotated[str, Field(pattern=ROUTE_TARGET)]


class ConsoleConfig(Model):
    enabled: bool = True


class LogConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


#: Shorter secrets are guessable, and the log scrubber cannot hide very short ones.
HOOK_SECRET_MIN = 16


class HooksConfig(Model):
    """Inbound pushes (``POST /hooks/statuspage/{provider}``). Off without a secret: tocsin
    never opens an unauthenticated inbound endpoint."""

    #: Given in the URL (``?secret=``) or the ``X-Tocsin-Secret`` header; or TOCSIN_HOOK_SECRET.
    secret: Secret | None = None

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < HOOK_SECRET_MIN:
            raise ValueError(
                f"use at least {HOOK_SECRET_MIN} characters (e.g. `openssl rand -hex 24`)"
            )
        return value

    @property
    def enabled(self) -> bool:
        return self.secret is not None


# --- signals: the apps' own call outcomes (bot/signals.py, bot/sources/traffic.py) ----------

#: An app's (or token's) name: short, lower-case, safe in a Redis key and a log line.
SIGNAL_APP = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class SignalToken(Model):
    """One app's bearer token for ``POST /api/v1/signals`` and ``POST /v1/traces``."""

    #: The app this token speaks for (a batch's ``app`` defaults to it).
    name: Annotated[str, Field(pattern=SIGNAL_APP)]
    #: Sent as ``Authorization: Bearer <token>``; at least 16 characters; never logged.
    token: Secret

    @field_validator("token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < HOOK_SECRET_MIN:
            raise ValueError(
                f"use at least {HOOK_SECRET_MIN} characters (e.g. `openssl rand -hex 24`)"
            )
        return value


class SignalsConfig(Model):
    """Apps report their own calls' outcomes; the leader turns them into suspected states.

    ``tokens``: who may report (off when empty). Of the calls of ``window`` (counted in 10 s
    buckets), a (provider, model) with at least ``min_calls`` whose failures (5xx, 529,
    timeouts, connection errors; never 429s, never other 4xx) are over ``error_rate`` of its
    calls is ``major_outage`` (suspected), below it ``operational``; fewer calls say nothing.
    A batch is at most ``max_body_bytes`` and ``max_batch`` signals (413); each token may send
    ``rate`` batches a second (a burst of one second's worth; then 429). The leader reads the
    sums every ``interval``. When one app sees ``app_network_providers`` or more providers all
    failing at once, its network is the suspect: one admin notice, its signals held back.
    """

    tokens: list[SignalToken] = Field(default_factory=list, max_length=100)
    window: Duration = 60.0
    min_calls: int = Field(20, ge=1, le=1_000_000)
    error_rate: float = Field(0.5, gt=0.0, lt=1.0)
    max_batch: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    rate: float = Field(50.0, gt=0.0, le=10_000.0)
    interval: Duration = 5.0
    app_network_providers: int = Field(3, ge=2, le=100)

    @field_validator("window")
    @classmethod
    def _window_bounds(cls, value: float) -> float:
        if not 10.0 <= value <= 3600.0:
            raise ValueError("must be between 10s and 1h (signals are counted in 10 s buckets)")
        return value

    @model_validator(mode="after")
    def _distinct_tokens(self) -> SignalsConfig:
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("two signal tokens have the same name")
        secrets = [t.token.get_secret_value() for t in self.tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two signal tokens are the same token (the value is not shown)")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)


class TocsinConfig(Model):
    """The whole file. Every section is optional; the defaults run without Redis or tokens."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    providers: list[ProviderConfig] = Field(default_factory=list)
    #: The chat platforms, one line each: a ``config.chat.ChatConfig`` field is a platform,
    #: delivered by the package of the same name in ``handlers/``.
    slack: chat.SlackConfig | None = None
    discord: chat.DiscordConfig | None = None
    teams: chat.TeamsConfig | None = None
    apprise: chat.AppriseConfig | None = None
    escalation: list[EscalationPolicy] = Field(default_factory=list)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    #: The apps' own call outcomes as a signal (see SignalsConfig).
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    #: The clouds and CDNs the providers stand on; default: the catalog's, for those the
    #: watched providers name. ``[]`` reads none.
    upstreams: list[UpstreamConfig] = Field(default_factory=list)
    grouping: GroupingConfig = Field(default_factory=GroupingConfig)
    #: Route groups apps ask where to send the next call (``GET /api/v1/route/<group>``):
    #: ``{chat: [anthropic/claude-sonnet-4-5, openai/gpt-5]}`` (README "Use tocsin from your app").
    routes: dict[Annotated[str, Field(pattern=ROUTE_GROUP)], list[RouteTarget]] = Field(
        default_factory=dict, max_length=100
    )
    #: This replica's name (consumer name in the stream group); default: host and pid.
    instance: str | None = None
    #: (issue 17) Where this replica checks from (a region, a network): with
    #: ``watch.quorum`` > 1, probe failures count once per vantage (bot/vantage.py).
    vantage: Annotated[str, Field(pattern=VANTAGE_ID)] = "default"

    @model_validator(mode="after")
    def _policy_ids(self) -> TocsinConfig:
        """Give every escalation policy a stable id; two with the same id are an error."""
        kinds = [policy.kind for policy in self.escalation]
        seen: dict[str, int] = {}
        for index, policy in enumerate(self.escalation):
            if policy.id is None:
                nth = kinds[: index + 1].count(policy.kind)
                policy.id = policy.kind if kinds.count(policy.kind) == 1 else f"{policy.kind}-{nth}"
            if policy.id in seen:
                raise ValueError(
                    f"escalation[{index}]: id {policy.id!r} is also escalation[{seen[policy.id]}]'s"
                )
            seen[policy.id] = index
        return self

    def policy(self, policy_id: str) -> EscalationPolicy | None:
        return next((p for p in self.escalation if p.id == policy_id), None)

    def provider(self, provider_id: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.id == provider_id), None)

    @property
    def provider_ids(self) -> list[str]:
        return [p.id for p in self.providers]

    @classmethod
    def chat_platforms(cls) -> list[str]:
        """The chat platforms' sections in the file's order, each a package in ``handlers/``."""
        fields = cls.model_fields.items()
        return [name for name, field in fields if chat.is_platform(field.annotation)]

    @classmethod
    def route_lists(cls) -> list[tuple[str, ...]]:
        """Where the file lists routes, read from the types: ``("slack", "channels")``...
        ``("escalation",)``; a new platform's lists are in it without being named."""
        found: list[tuple[str, ...]] = []
        for name, field in cls.model_fields.items():
            model = section_model(field.annotation)
            if is_route_list(field.annotation):
                found.append((name,))
            elif model is not None:
                found += [(name, inner) for inner in route_fields(model)]
        return found
