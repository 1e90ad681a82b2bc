"""On-call escalation targets: PagerDuty, Opsgenie and signed webhooks, one per policy.

*When* to page is :mod:`bot.escalation`'s business; these only speak each service's API.
Each policy is one target whose route hears nothing but that policy's ``escalation`` events.
"""

from __future__ import annotations

from typing import Any

from bot.notifier import Notifier, Target
from config.schema import (
    EscalationPolicy,
    OpsgeniePolicy,
    PagerDutyPolicy,
    TocsinConfig,
    WebhookPolicy,
)
from handlers.chat import target
from handlers.escalation.http import make_client
from handlers.escalation.opsgenie import HOSTS, OpsgenieNotifier
from handlers.escalation.pagerduty import PagerDutyNotifier
from handlers.escalation.webhook import SignedWebhookNotifier


def targets(config: TocsinConfig, **_: Any) -> list[Target]:
    """One target per policy; one notifier (and HTTP client) per kind."""
    if not config.escalation:
        return []
    notifiers: dict[str, Notifier] = {}

    def notifier(kind: str) -> Notifier:
        if kind not in notifiers:
            client = make_client(config.watch.user_agent)
            if kind == "pagerduty":
                notifiers[kind] = PagerDutyNotifier(client)
            elif kind == "opsgenie":
                notifiers[kind] = OpsgenieNotifier(client)
            else:
                notifiers[kind] = SignedWebhookNotifier(client)
        return notifiers[kind]

    return [
        target(
            f"escalation:{policy.policy_id}",
            notifier(policy.kind),
            policy,
            options(policy),
            updates=False,
            policy=policy.policy_id,
        )
        for policy in config.escalation
    ]


def options(policy: EscalationPolicy) -> dict[str, Any]:
    """What the notifier needs; secrets stay ``SecretStr`` until the moment they are sent."""
    found: dict[str, Any] = {"policy": policy.policy_id}
    if isinstance(policy, PagerDutyPolicy):
        found.update(routing_key=policy.routing_key, url=policy.url)
    elif isinstance(policy, OpsgeniePolicy):
        found.update(api_key=policy.api_key, url=policy.url or HOSTS[policy.region])
    elif isinstance(policy, WebhookPolicy):
        found.update(url=policy.url, secret=policy.secret)
    return found
