// tocsin's live dashboard (/live): polls the JSON API and draws two tables; on the overview
// (/) it keeps the recent notices fresh.
//
// Every value the API returns came from outside (status pages, probes, whatever is in Redis)
// and is hostile: it goes into the page only as text (textContent, text nodes), never as
// markup, and an incident link is a link only when it is an http(s) URL. The page is served
// with a Content-Security-Policy that runs no script but this file.
"use strict";

const STATUSES = new Set([
  "operational", "degraded", "partial_outage", "major_outage", "maintenance", "unknown",
]);
const REFRESH_MS = 5000;

/** An element with a class and a text, both optional. */
function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined && text !== null) element.textContent = String(text);
  return element;
}

/** The words of an identifier: "partial_outage" reads "partial outage". */
function words(value) {
  return String(value ?? "").replaceAll("_", " ");
}

/** A status as a coloured pill; its class is one of ours, whatever the API said. */
function pill(status) {
  const known = STATUSES.has(status) ? status : "unknown";
  return node("span", `pill ${known}`, words(known));
}

/** ``url`` if a browser would open it as an http(s) page, else null. */
function webLink(url) {
  if (typeof url !== "string") return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** An incident's title: a link to its page when it has an http(s) one, plain text else. */
function incidentTitle(incident) {
  const href = webLink(incident.url);
  if (href === null) return node("span", null, incident.title);
  const link = node("a", null, incident.title);
  link.setAttribute("href", href);
  link.setAttribute("rel", "noopener noreferrer");
  return link;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

function cell(...children) {
  const td = document.createElement("td");
  td.append(...children.filter((child) => child !== null && child !== undefined));
  return td;
}

function providerRow(provider) {
  const meta = [provider.id];
  if (typeof provider.latency_ms === "number") meta.push(`${Math.round(provider.latency_ms)} ms`);
  const outage = provider.status !== "operational" && provider.status !== "unknown";
  const components = Array.isArray(provider.components) ? provider.components : [];
  const listed = [];
  components.forEach((component, index) => {
    if (index > 0) listed.push(document.createElement("br"));
    listed.push(`${component.name ?? component.id ?? ""} `, pill(component.status));
    const { latency_p50_ms: p50, latency_p95_ms: p95 } = component;
    if (typeof p50 === "number" && typeof p95 === "number") {
      listed.push(node("span", "detail", ` p50 ${Math.round(p50)} ms · p95 ${Math.round(p95)} ms`));
    }
  });
  const incident = provider.incident;
  const row = document.createElement("tr");
  row.append(
    cell(node("b", null, provider.name), node("div", "detail", meta.join(" · "))),
    cell(
      pill(provider.status),
      outage ? node("div", "detail", provider.confirmed ? "confirmed" : "suspected") : null,
      provider.detail ? node("div", "detail", provider.detail) : null,
    ),
    listed.length ? cell(...listed) : cell(node("span", "detail", "no data yet")),
    incident
      ? cell(incidentTitle(incident), node("div", "detail", `${incident.status}: ${incident.update}`))
      : cell(),
  );
  return row;
}

function eventRow(event) {
  const what = [`${words(event.type)}: `];
  if (event.from) what.push(pill(event.from), " → ");
  if (event.to) what.push(pill(event.to));  // admin alerts about a source carry none
  if (event.component_name) what.push(` ${event.component_name}`);
  if (event.incident) {
    what.push(node("div", "detail", `${event.incident.title} — ${event.incident.status}`));
  }
  if (event.detail) what.push(node("div", "detail", event.detail));
  const row = node("tr", "ev");
  row.append(cell(when(event.at)), cell(event.provider_name || event.provider), cell(...what));
  return row;
}

async function fetchJson(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    // The live view (/live) draws both tables; the overview (/) is rendered by the server
    // and has only the notices' table for this script to keep fresh.
    const providers = document.querySelector("#providers tbody");
    const [status, events] = await Promise.all([
      providers ? fetchJson("api/status.json") : null,
      fetchJson("api/events.json?count=30"),
    ]);
    if (providers) providers.replaceChildren(...status.providers.map(providerRow));
    document.querySelector("#events tbody").replaceChildren(...events.events.map(eventRow));
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    updated.textContent = `cannot reach tocsin: ${error.message ?? error}`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
