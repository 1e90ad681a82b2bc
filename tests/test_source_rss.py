"""The RSS/Atom source against real captured feeds, served over real HTTP by the fake."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import httpx
import pytest

from bot.models import Observation, Status
from bot.sources.reading import PAGE_COMPONENT
from bot.sources.rss import RssSource
from tests.fakes.status_server import FakeStatusServer, fixture_bytes

STATUSPAGE = fixture_bytes("statuspage_history_rss_anthropic.xml").decode()
XAI = fixture_bytes("xai_feed_resolved.xml").decode()

OPEN_ID = "https://status.claude.com/incidents/978mjkgw6mh7"
OPEN_UPDATE = (
    "We've identified the cause of errors loading usage data. The Admin API usage report has "
    "recovered, and fixes for the platform.claude.com Usage and Rate limits pages are in "
    "progress. The most recent 30 minutes of usage may be delayed. Core functionality is not "
    "affected."
)
#: Where the open item's newest update starts: newer updates go in front of it.
OPEN_NEWEST = (
    "&lt;p&gt; &lt;small&gt;Oct &lt;var data-var=&apos;date&apos;&gt; 7&lt;/var&gt;, "
    "&lt;var data-var=&apos;time&apos;&gt;17:28"
)


async def check(source: RssSource) -> list[Observation]:
    async with httpx.AsyncClient() as client:
        return await source.check(client)


def by_component(observations: list[Observation]) -> dict[str, Observation]:
    return {o.component: o for o in observations}


def statuspage_feed(*newer: tuple[str, str]) -> bytes:
    """The fixture with updates (word, text) added, newest first, to the open incident."""
    assert STATUSPAGE.count(OPEN_NEWEST) == 1
    posts = "".join(
        f"&lt;p&gt; &lt;small&gt;Oct 7, 19:0{n} UTC&lt;/small&gt;&lt;br&gt; "
        f"&lt;strong&gt;{word}&lt;/strong&gt; - {text} &lt;/p&gt; "
        for n, (word, text) in enumerate(newer)
    )
    return STATUSPAGE.replace(OPEN_NEWEST, posts + OPEN_NEWEST).encode()


def xai_feed(state: str, severity: str, updates: list[tuple[str, str, str]]) -> bytes:
    """The xAI fixture's item with another state, severity and updates (date, word, text)."""
    blocks = "".join(
        f"<div><p><strong>{at}</strong></p><h3>{word}</h3><p>{text}</p></div>"
        for at, word, text in updates
    )
    html = f"<h3>Status: {state.upper()}</h3><p>Severity: {severity}</p><hr /><h4>Updates:</h4>"
    feed, count = re.subn(
        r"<!\[CDATA\[.*?\]\]>", lambda _: f"<![CDATA[{html}{blocks}]]>", XAI, flags=re.S
    )
    assert count == 1
    assert feed.count("<category>available</category>") == 1
    assert feed.count("<category>resolved</category>") == 1
    feed = feed.replace("<category>available</category>", f"<category>{severity}</category>")
    return feed.replace("<category>resolved</category>", f"<category>{state}</category>").encode()


# ------------------------------------------------------------------------- real payloads


async def test_statuspage_history_feed_reports_its_open_incident(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture("/history.rss", "statuspage_history_rss_anthropic.xml")
    source = RssSource("anthropic", status_server.url)

    [page] = await check(source)

    assert status_server.count("/history.rss") == 1
    assert page.component == PAGE_COMPONENT
    assert page.status is Status.DEGRADED  # open, and a feed gives no severity
    assert page.incident is not None
    assert page.incident.id == OPEN_ID
    assert page.incident.title == "Elevated errors on platform.claude.com"
    assert page.incident.url == OPEN_ID
    assert page.incident.status == "identified"
    assert page.incident.update == OPEN_UPDATE
    assert not page.incident.maintenance


async def test_watched_components_feel_an_incident_that_names_none(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture("/history.rss", "statuspage_history_rss_anthropic.xml")
    source = RssSource("anthropic", status_server.url, components=["console", "api"])

    observations = by_component(await check(source))

    assert set(observations) == {"console", "api"}
    assert {o.status for o in observations.values()} == {Status.DEGRADED}
    assert {o.incident.id for o in observations.values() if o.incident} == {OPEN_ID}


async def test_xai_feed_resolved_is_green_without_stale_incident(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture("/feed.xml", "xai_feed_resolved.xml")
    source = RssSource("xai", f"{status_server.url}/feed.xml", components=["api-console"])

    [console] = await check(source)

    assert status_server.count("/feed.xml") == 1  # the url named the feed itself
    assert console.component == "api-console"
    assert console.component_name == "API Console"
    assert console.status is Status.OPERATIONAL
    assert console.incident is None  # resolved before we ever saw it open


async def test_path_option_names_the_feed_under_the_root(status_server: FakeStatusServer) -> None:
    status_server.set_fixture("/status/feed.rss", "xai_feed_resolved.xml")
    source = RssSource("xai", status_server.url, options={"path": "status/feed.rss"})

    [page] = await check(source)

    assert status_server.count("/status/feed.rss") == 1
    assert page.status is Status.OPERATIONAL


# --------------------------------------------------------------- outage, update, recovery


async def test_xai_incident_from_outage_through_update_to_recovery(
    status_server: FakeStatusServer,
) -> None:
    first = ("Mon, 18 May 2026 02:29:34 GMT", "Investigating", "Console logins are failing.")
    second = ("Mon, 18 May 2026 03:10:00 GMT", "Identified", "A bad deploy; rolling back.")
    source = RssSource("xai", f"{status_server.url}/feed.xml", components=["API Console", "chat"])

    status_server.set_bytes("/feed.xml", xai_feed("investigating", "disruption", [first]))
    outage = by_component(await check(source))
    console = outage["API Console"]
    assert console.status is Status.DEGRADED
    assert console.component_name == "API Console"
    assert console.incident is not None
    assert console.incident.id == "INC702624e4"
    assert console.incident.title == "[API Console] Console not loading"
    assert console.incident.url == "https://status.x.ai/api-console/INC702624e4"
    assert console.incident.status == "investigating"
    assert console.incident.update == "Console logins are failing."
    assert outage["chat"].status is Status.OPERATIONAL
    assert outage["chat"].incident is None

    # Updates come oldest first in this dialect: the newest one is found by its date.
    status_server.set_bytes("/feed.xml", xai_feed("identified", "outage", [first, second]))
    update = by_component(await check(source))["API Console"]
    assert update.status is Status.MAJOR_OUTAGE
    assert update.incident is not None
    assert update.incident.status == "identified"
    assert update.incident.update == "A bad deploy; rolling back."
    assert update.incident.impact is Status.MAJOR_OUTAGE
    assert update.incident.update_id != console.incident.update_id

    status_server.set_fixture("/feed.xml", "xai_feed_resolved.xml")
    recovery = by_component(await check(source))["API Console"]
    assert recovery.status is Status.OPERATIONAL
    assert recovery.incident is not None
    assert recovery.incident.status == "resolved"
    assert recovery.incident.update == "The issue has been resolved."

    later = by_component(await check(source))["API Console"]
    assert later.status is Status.OPERATIONAL
    assert later.incident is None  # the resolution is told once


async def test_component_incident_reaches_the_whole_provider_when_nothing_is_watched(
    status_server: FakeStatusServer,
) -> None:
    opened = ("Mon, 18 May 2026 02:29:34 GMT", "Investigating", "Console logins are failing.")
    status_server.set_bytes("/feed.xml", xai_feed("investigating", "partial_outage", [opened]))

    [page] = await check(RssSource("xai", f"{status_server.url}/feed.xml"))

    assert page.component == PAGE_COMPONENT
    assert page.status is Status.PARTIAL_OUTAGE
    assert page.incident is not None
    assert page.incident.id == "INC702624e4"


async def test_statuspage_incident_from_outage_through_update_to_recovery(
    status_server: FakeStatusServer,
) -> None:
    source = RssSource("anthropic", status_server.url)

    status_server.set_fixture("/history.rss", "statuspage_history_rss_anthropic.xml")
    [outage] = await check(source)
    assert outage.status is Status.DEGRADED
    assert outage.incident is not None
    assert outage.incident.status == "identified"

    monitoring = ("Monitoring", "A fix is out; usage pages are loading again.")
    status_server.set_bytes("/history.rss", statuspage_feed(monitoring))
    [update] = await check(source)
    assert update.status is Status.DEGRADED
    assert update.incident is not None
    assert update.incident.id == OPEN_ID
    assert update.incident.status == "monitoring"
    assert update.incident.update == "A fix is out; usage pages are loading again."
    assert update.incident.update_id != outage.incident.update_id

    resolved = ("Resolved", "This incident has been resolved.")
    status_server.set_bytes("/history.rss", statuspage_feed(resolved, monitoring))
    [recovery] = await check(source)
    assert recovery.status is Status.OPERATIONAL
    assert recovery.incident is not None
    assert recovery.incident.id == OPEN_ID
    assert recovery.incident.status == "resolved"
    assert recovery.incident.update == "This incident has been resolved."


async def test_statuspage_update_word_keeps_the_last_lifecycle_state(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_bytes(
        "/history.rss", statuspage_feed(("Update", "Still rolling out the fix."))
    )
    [page] = await check(RssSource("anthropic", status_server.url))

    assert page.status is Status.DEGRADED
    assert page.incident is not None
    assert page.incident.status == "identified"  # "Update" is not a state
    assert page.incident.update == "Still rolling out the fix."


# ------------------------------------------------------------------------------------ Atom

ATOM_FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xml:lang="en-US" xmlns="http://www.w3.org/2005/Atom">
  <id>tag:status.example.com,2005:/history</id>
  <title>Example Status - Incident History</title>
  <updated>2026-10-07T17:28:02Z</updated>
  <entry>
    <id>tag:status.example.com,2005:Incident/2000001</id>
    <published>2026-10-07T16:36:00Z</published>
    <updated>2026-10-07T17:28:02Z</updated>
    <link rel="alternate" type="text/html" href="https://status.example.com/incidents/abc123"/>
    <title>Chat completions failing</title>
    <category term="major"/>
    <content type="html">&lt;p&gt;&lt;small&gt;Oct 7, 17:28 UTC&lt;/small&gt;&lt;br&gt;
      &lt;strong&gt;Investigating&lt;/strong&gt; - Requests to
      &amp;lt;b&amp;gt;chat&amp;lt;/b&amp;gt; fail &amp;amp; time out.&lt;/p&gt;</content>
  </entry>
  <entry>
    <id>tag:status.example.com,2005:Incident/2000000</id>
    <published>2026-10-01T08:00:00Z</published>
    <updated>2026-10-01T09:00:00Z</updated>
    <link rel="alternate" type="text/html" href="https://status.example.com/incidents/old999"/>
    <title>Old incident</title>
    <content type="html">&lt;p&gt;&lt;strong&gt;Resolved&lt;/strong&gt; - All good.&lt;/p&gt;
    </content>
  </entry>
</feed>
"""


async def test_atom_feed(status_server: FakeStatusServer) -> None:
    status_server.set_bytes("/history.atom", ATOM_FEED, content_type="application/atom+xml")
    source = RssSource("example", f"{status_server.url}/history.atom")

    [page] = await check(source)

    assert page.status is Status.PARTIAL_OUTAGE  # category "major"
    assert page.incident is not None
    assert page.incident.id == "tag:status.example.com,2005:Incident/2000001"
    assert page.incident.title == "Chat completions failing"
    assert page.incident.url == "https://status.example.com/incidents/abc123"
    assert page.incident.status == "investigating"
    # Entities decoded twice (XML, then HTML): markup shown as text, never interpreted.
    assert page.incident.update == "Requests to <b>chat</b> fail & time out."


# ---------------------------------------------------------------------- what must be unknown

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><description>&lt;strong&gt;Resolved&lt;/strong&gt;</description></item>
</channel></rss>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title>
<item><title>&secret;</title><description>&lt;strong&gt;Investigating&lt;/strong&gt;</description></item>
</channel></rss>
"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "xxe"])
async def test_hostile_xml_is_unknown_quickly(status_server: FakeStatusServer, body: bytes) -> None:
    status_server.set_bytes("/history.rss", body, content_type="application/rss+xml")
    source = RssSource("acme", status_server.url, components=["api"])

    async with asyncio.timeout(5):
        [api] = await check(source)

    assert api.status is Status.UNKNOWN
    assert api.detail is not None
    assert f"{status_server.url}/history.rss" in api.detail
    assert "hostile XML" in api.detail
    assert "root:" not in api.detail


async def test_html_page_is_unknown(status_server: FakeStatusServer) -> None:
    status_server.set_html("/history.rss")
    [page] = await check(RssSource("acme", status_server.url))

    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert f"{status_server.url}/history.rss" in page.detail
    assert "HTML page instead of a feed" in page.detail


async def test_truncated_feed_is_unknown(status_server: FakeStatusServer) -> None:
    body = fixture_bytes("statuspage_history_rss_anthropic.xml")
    status_server.set_bytes("/history.rss", body[: len(body) // 2])
    [page] = await check(RssSource("anthropic", status_server.url))

    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert f"{status_server.url}/history.rss" in page.detail
    assert "not well-formed XML" in page.detail


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b'<rss version="2.0"><items/></rss>', "without a <channel>"),
        (b"<urlset><url>https://x</url></urlset>", "not an RSS or Atom feed (root element <urlset"),
        (
            b'<rss version="2.0"><channel><item><title>Blog post</title>'
            b"<description>Hello</description></item></channel></rss>",
            "none of its 1 items says whether it is open or resolved",
        ),
    ],
    ids=["no-channel", "not-a-feed", "no-states"],
)
async def test_feed_missing_what_we_need_is_unknown(
    status_server: FakeStatusServer, body: bytes, complaint: str
) -> None:
    status_server.set_bytes("/history.rss", body, content_type="application/rss+xml")
    [page] = await check(RssSource("acme", status_server.url))

    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert f"{status_server.url}/history.rss" in page.detail
    assert complaint in page.detail


# --------------------------------------------------------- AWS Health feeds (issue 11, item 6)

AWS = fixture_bytes("aws_health_rss_ec2_ap_northeast_1.xml").decode()
AWS_ITEMS = re.findall(r"\s*<item>.*?</item>", AWS, flags=re.S)
AWS_EVENT = "http://status.aws.amazon.com/#ec2-ap-northeast-1_1566533912"  # its first item
AWS_TITLE = "インスタンスの接続性について | Instance Availability (ec2-ap-northeast-1)"
AWS_FEED_PATH = "/rss/ec2-ap-northeast-1.rss"


def aws_feed(*, drop_newest: int = 0, extra: str = "", reverse: bool = False) -> bytes:
    """The AWS fixture without its ``drop_newest`` newest items, with ``extra`` items first."""
    assert len(AWS_ITEMS) == 14
    kept = AWS_ITEMS[drop_newest:]
    if reverse:
        kept = kept[::-1]
    head, tail = AWS.split(AWS_ITEMS[0], 1)[0], AWS.split(AWS_ITEMS[-1], 1)[1]
    return (head + extra + "".join(kept) + tail).encode()


def aws_item(title: str, when: str, guid: str, text: str) -> str:
    """One item in AWS's shape (CDATA title and description, guid ``#<service>_<epoch>``)."""
    return (
        f"\n\t <item>\n\t  <title><![CDATA[{title}]]></title>\n"
        "\t  <link>http://status.aws.amazon.com/</link>\n"
        f"\t  <pubDate>{when}</pubDate>\n"
        f'\t  <guid isPermaLink="false">http://status.aws.amazon.com/#{guid}</guid>\n'
        f"\t  <description><![CDATA[{text}]]></description>\n\t </item>\n"
    )


def aws_source(server: FakeStatusServer, components: list[str] | None = None) -> RssSource:
    return RssSource("aws-ec2", f"{server.url}{AWS_FEED_PATH}", components=components)


async def test_aws_health_feed_of_ended_events_is_green_and_tells_none_of_them(
    status_server: FakeStatusServer,
) -> None:
    """The real feed: every event ended (the outage's older "Informational message" and
    "Service degradation" items are still listed); none is reported open."""
    status_server.set_fixture(AWS_FEED_PATH, "aws_health_rss_ec2_ap_northeast_1.xml")
    [page] = await check(aws_source(status_server))
    assert (page.component, page.status, page.incident, page.detail) == (
        PAGE_COMPONENT,
        Status.OPERATIONAL,
        None,
        None,
    )

    # Newest first or not, the newest item of each event decides.
    status_server.set_bytes(AWS_FEED_PATH, aws_feed(reverse=True))
    [page] = await check(aws_source(status_server))
    assert (page.status, page.incident) == (Status.OPERATIONAL, None)

    # "Informational message: [解決済] ... | [RESOLVED] ...": the marker resolves it.
    status_server.set_bytes(AWS_FEED_PATH, aws_feed(drop_newest=7))
    [page] = await check(aws_source(status_server))
    assert (page.status, page.incident) == (Status.OPERATIONAL, None)

    # A prefix AWS never used is not guessed at: unknown, with a diagnostic.
    strange = aws_item("Service hiccup: Odd", "Fri, 14 Jan 2022 14:44:00 PST", "x_1642200240", "?")
    status_server.set_bytes(AWS_FEED_PATH, aws_feed(drop_newest=14, extra=strange))
    [page] = await check(aws_source(status_server))
    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert "none of its 1 items says whether it is open or resolved" in page.detail


async def test_aws_health_event_from_first_message_through_degradation_to_recovery(
    status_server: FakeStatusServer,
) -> None:
    source = aws_source(status_server, components=["ec2-ap-northeast-1", "s3-ap-northeast-1"])

    # 21:18 PDT: only the first "Informational message" of the outage is out.
    status_server.set_bytes(AWS_FEED_PATH, aws_feed(drop_newest=6))
    opened = by_component(await check(source))
    ec2 = opened["ec2-ap-northeast-1"]
    assert ec2.status is Status.DEGRADED
    assert ec2.incident is not None
    assert ec2.incident.id == AWS_EVENT
    assert ec2.incident.title == AWS_TITLE
    assert ec2.incident.status == "ongoing"
    assert ec2.incident.update.startswith("We are investigating connectivity issues")
    assert ec2.incident.url == "http://status.aws.amazon.com/"
    # PDT read with its zone: the pubDate and the guid's epoch are the same instant.
    assert ec2.incident.updated_at == datetime.fromtimestamp(1566533912, UTC)
    assert ec2.incident.started_at == datetime.fromtimestamp(1566533912, UTC)
    assert (opened["s3-ap-northeast-1"].status, opened["s3-ap-northeast-1"].incident) == (
        Status.OPERATIONAL,
        None,
    )

    # 01:54 PDT: "Service degradation" is the newest item of the event.
    status_server.set_bytes(AWS_FEED_PATH, aws_feed(drop_newest=2))
    worse = by_component(await check(source))["ec2-ap-northeast-1"]
    assert worse.status is Status.PARTIAL_OUTAGE
    assert worse.incident is not None
    assert worse.incident.id == AWS_EVENT
    assert worse.incident.impact is Status.PARTIAL_OUTAGE
    assert worse.incident.update.startswith("Recovery is in progress")
    assert worse.incident.update_id != ec2.incident.update_id

    # 02:39 PDT: back to an "Informational message".
    status_server.set_bytes(AWS_FEED_PATH, aws_feed(drop_newest=1))
    better = by_component(await check(source))["ec2-ap-northeast-1"]
    assert better.status is Status.DEGRADED
    assert better.incident is not None
    assert better.incident.update.startswith("The majority of impaired EC2 instances")

    # 04:18 PDT: "Service is operating normally": resolved, told once.
    status_server.set_fixture(AWS_FEED_PATH, "aws_health_rss_ec2_ap_northeast_1.xml")
    recovered = by_component(await check(source))["ec2-ap-northeast-1"]
    assert recovered.status is Status.OPERATIONAL
    assert recovered.incident is not None
    assert (recovered.incident.id, recovered.incident.status) == (AWS_EVENT, "resolved")
    assert recovered.incident.update.startswith("Beginning at 8:36 PM PDT")
    later = by_component(await check(source))["ec2-ap-northeast-1"]
    assert (later.status, later.incident) == (Status.OPERATIONAL, None)


async def test_aws_health_prefixes_and_pst_dates_on_a_bedrock_feed(
    status_server: FakeStatusServer,
) -> None:
    """A per-service feed (rss/bedrock-us-east-1.rss) nobody configured components for: its
    events reach the provider's ``page`` component; a new event after a resolved one of the same
    title is a new incident."""
    path = "/rss/bedrock-us-east-1.rss"
    source = RssSource("aws-bedrock", f"{status_server.url}{path}")
    old = aws_item(
        "Service is operating normally: [RESOLVED] Increased Error Rates",
        "Fri, 14 Jan 2022 14:44:00 PST",
        "bedrock-us-east-1_1642200240",
        "Between 5:14 AM and 11:38 AM PST, we experienced increased error rates.",
    )
    first = aws_item(
        "Performance issues: Increased Error Rates",
        "Tue, 03 Feb 2026 09:00:00 PST",
        "bedrock-us-east-1_1770138000",
        "We are investigating increased error rates for InvokeModel.",
    )
    worse = aws_item(
        "Service disruption: Increased Error Rates",
        "Tue, 03 Feb 2026 09:30:00 PST",
        "bedrock-us-east-1_1770139800",
        "InvokeModel requests are failing.",
    )
    status_server.set_bytes(path, aws_feed(drop_newest=14, extra=first + old))
    [page] = await check(source)
    assert page.status is Status.PARTIAL_OUTAGE
    assert page.incident is not None
    assert page.incident.id == "http://status.aws.amazon.com/#bedrock-us-east-1_1770138000"
    assert page.incident.title == "Increased Error Rates (bedrock-us-east-1)"
    assert page.incident.started_at == datetime.fromtimestamp(1770138000, UTC)  # PST read

    status_server.set_bytes(path, aws_feed(drop_newest=14, extra=worse + first + old))
    [page] = await check(source)
    assert page.status is Status.MAJOR_OUTAGE
    assert page.incident is not None
    assert page.incident.id == "http://status.aws.amazon.com/#bedrock-us-east-1_1770138000"
    assert page.incident.update == "InvokeModel requests are failing."
    assert page.incident.updated_at == datetime.fromtimestamp(1770139800, UTC)
