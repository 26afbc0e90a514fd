// Engagement Monitor page: talks to the same /v1 API with the token kept in sessionStorage.
// Everything from the API is put in the page with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "em-token";
const TIER_LABELS = { no_engagement: "No engagement", low: "Low", high: "High", very_high: "Very high" };
const CHANNEL_LABELS = { sms: "SMS", email: "E-mail", whatsapp: "WhatsApp" };
const RATE_COLUMNS = ["delivery", "open", "click", "response", "bounce", "complaint"];
// SPEC §7.1-7.2: the counts shown beside a rate (machine opens, bot clicks, hard bounces).
const RATE_NOTES = {
  open: (fig) => (fig.machine_opened ? `${fig.machine_opened} by a privacy proxy` : ""),
  click: (fig) => (fig.bot_clicked ? `${fig.bot_clicked} by a bot` : ""),
  bounce: (fig) => (fig.bounced ? `${fig.bounced} bounced, ${fig.hard_bounced ?? 0} hard` : ""),
  complaint: (fig) => (fig.complained ? `${fig.complained} spam report${fig.complained === 1 ? "" : "s"}` : ""),
};
const POLL_MS = 500;
const POLL_LIMIT_MS = 30000;

const state = { who: null, contact: null, snapshot: null, segCursor: null, orgHeat: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const channelLabel = (ch) => CHANNEL_LABELS[ch] || ch;
// SPEC §7.3: "5 of 8 delivered messages engaged · last engaged 20/05/2026".
function engagementWhy(e) {
  if (e.delivered === undefined) return "";
  const of = `${e.engaged} of ${e.delivered} delivered message${e.delivered === 1 ? "" : "s"} engaged`;
  const last = e.last_engaged_at ? ` · last engaged ${new Date(e.last_engaged_at).toLocaleDateString()}` : "";
  return of + last;
}
const pct = (v) => (v === null || v === undefined ? "—" : `${Number(v).toFixed(2)}%`);
const tierLabel = (t) => (t ? TIER_LABELS[t] || t : "No data");
const mayWrite = () => Boolean(state.who && state.who.may_write);

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401 && path !== "/v1/whoami") {
    signOut("Your token is no longer accepted; sign in again.");
  }
  if (!response.ok) throw new ApiError(response.status, (data && data.detail) || response.statusText);
  return data;
}

function setStatus(text, kind = "") {
  const node = $("status");
  node.textContent = text;
  node.className = `status ${kind}`;
}

// ---- sign in / out ------------------------------------------------------------------------

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.setItem("em-login-message", message);
  window.location.reload();
}

async function start() {
  $("login-error").textContent = sessionStorage.getItem("em-login-message") || "";
  sessionStorage.removeItem("em-login-message");
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  try {
    state.who = await api("GET", "/v1/whoami");
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("login-error").textContent = err.status === 401 ? "This token is not accepted." : err.message;
    return showLogin();
  }
  showApp();
}

function showLogin() {
  $("login").hidden = false;
  $("app").hidden = true;
  $("who").hidden = true;
  $("token").focus();
}

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("who-org").textContent = `Org ${state.who.org_id}`;
  $("who-role").textContent = state.who.role;
  if (!mayWrite()) {
    // Agents only view: the actions are removed from the page, not merely hidden.
    document.body.classList.add("read-only");
    document.querySelectorAll(".write-only").forEach((node) => node.remove());
  }
  for (const ch of state.who.channels) {
    $("seg-channel").append(el("option", { value: ch }, channelLabel(ch)));
    if ($("send-channel")) $("send-channel").append(el("option", { value: ch }, channelLabel(ch)));
  }
  loadOverview();
  loadTierChanges();
  loadOrgHeatmap();
  const fromHash = decodeURIComponent(window.location.hash.replace(/^#contact=/, ""));
  if (window.location.hash.startsWith("#contact=") && fromHash) openContact(fromHash);
  loadSegment(false);
}

// SPEC §7.4: how the contact's tiers moved in the window, newest first.
async function loadHistory(contactId) {
  try {
    const history = await api("GET", `${monitorPath(contactId)}/tier-history`);
    if (state.contact !== contactId) return;
    $("c-history").replaceChildren(...history.items.map((h) => el("li", {},
      el("span", {}, new Date(h.changed_at).toLocaleString(), " · ",
        h.channel ? channelLabel(h.channel) : "Overall"),
      el("span", {}, tierLabel(h.previous_tier), " → ",
        el("span", { class: `tier ${h.tier || "none"}` }, tierLabel(h.tier)),
        el("span", { class: "muted small" }, h.cause === "expiry" ? " (messages left the window)" : "")))));
    if (!history.items.length) $("c-history").append(el("li", { class: "muted" }, "No change in the window."));
  } catch (err) {
    setStatus(`Tier history: ${err.message}`, "err");
  }
}

// ---- the org at a glance and search (SPEC §7.4) ------------------------------------------

const TIER_ORDER = ["very_high", "high", "low", "no_engagement", "none"];

// A bar with its number written beside it: the length helps the eye, the text carries the
// meaning (colour is never the only carrier).
function bar(count, total, tier) {
  const width = total ? Math.round((count / total) * 100) : 0;
  const shown = el("span", { class: `bar tier ${tier}`, "aria-hidden": "true" });
  shown.style.width = `${Math.max(width, count ? 2 : 0)}%`; // CSSOM: allowed by the page's CSP
  return el("td", { dataset: { tier } }, shown, el("span", { class: "bar-n" }, String(count)));
}

async function loadOverview() {
  try {
    const ov = await api("GET", `/v1/orgs/${encodeURIComponent(state.who.org_id)}/overview`);
    $("ov-contacts").textContent = ov.contacts.toLocaleString();
    $("ov-asof").textContent = new Date(ov.as_of).toLocaleString();
    const rows = [["Overall", "overall", ov.tiers.overall],
      ...Object.entries(ov.tiers.by_channel).map(([ch, t]) => [channelLabel(ch), ch, t])];
    $("ov-tier-rows").replaceChildren(...rows.map(([label, scope, t]) => {
      const total = TIER_ORDER.reduce((n, k) => n + (t[k] || 0), 0);
      return el("tr", { dataset: { scope } }, el("th", { scope: "row" }, label),
        ...TIER_ORDER.map((k) => bar(t[k] || 0, total, k)));
    }));
    $("ov-sub-rows").replaceChildren(...Object.entries(ov.subscriptions).map(([ch, s]) =>
      el("tr", { dataset: { channel: ch } }, el("th", { scope: "row" }, channelLabel(ch)),
        el("td", {}, String(s.subscribed)), el("td", {}, String(s.unsubscribed)))));
  } catch (err) {
    setStatus(`Overview: ${err.message}`, "err");
  }
}

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

// An hour-of-week heatmap as a table: 7 rows of 24 hours. Every non-empty cell shows its
// number; the shade (5 levels, relative to the busiest hour) only helps the eye.
function heatTable(grid, caption) {
  const top = Math.max(1, ...grid.hours.flat());
  const level = (n) => (n === 0 ? 0 : Math.min(4, 1 + Math.floor((n / top) * 3.999)));
  const hours = Array.from({ length: 24 }, (_, h) => el("th", { scope: "col" }, String(h).padStart(2, "0")));
  return el("table", { class: "heat" },
    el("caption", { class: "muted small" }, caption),
    el("thead", {}, el("tr", {}, el("td", {}), ...hours)),
    el("tbody", {}, ...grid.hours.map((row, day) => el("tr", { dataset: { day: WEEKDAYS[day] } },
      el("th", { scope: "row", title: DAY_NAMES[day] }, WEEKDAYS[day]),
      ...row.map((n, hour) => el("td", {
        class: `h${level(n)}`, dataset: { hour: String(hour) },
        title: `${DAY_NAMES[day]} ${String(hour).padStart(2, "0")}:00 — ${n} interaction${n === 1 ? "" : "s"}`,
      }, n ? String(n) : el("span", { class: "sr-only" }, "0")))))));
}

async function loadOrgHeatmap() {
  try {
    const map = await api("GET", `/v1/orgs/${encodeURIComponent(state.who.org_id)}/heatmap`);
    state.orgHeat = map;
    const select = $("heat-channel");
    if (!select.options.length) {
      // the busiest channel first shown
      const order = Object.entries(map.channels).sort((a, b) => b[1].total - a[1].total);
      select.replaceChildren(...order.map(([ch]) => el("option", { value: ch }, channelLabel(ch))));
    }
    showOrgHeatmap();
  } catch (err) {
    setStatus(`Heatmap: ${err.message}`, "err");
  }
}

function showOrgHeatmap() {
  const map = state.orgHeat;
  const ch = $("heat-channel").value;
  if (!map || !map.channels[ch]) return;
  const grid = map.channels[ch];
  $("ov-heatmap").replaceChildren(heatTable(grid,
    `${grid.total.toLocaleString()} ${channelLabel(ch)} interactions (first open, click or reply of each message) of the last ${map.window_days} days, by hour of week, ${map.timezone}`));
}

const DIRECTION_LABELS = { up: "Up", down: "Down", new: "New", lost: "Lost" };
async function loadTierChanges() {
  try {
    const ch = await api("GET", `/v1/orgs/${encodeURIComponent(state.who.org_id)}/tier-changes`);
    $("chg-rows").replaceChildren(...[["Last 24 hours", ch.last_24h], ["Last 7 days", ch.last_7d]].map(
      ([label, counts]) => el("tr", {}, el("th", { scope: "row" }, label),
        ...Object.keys(DIRECTION_LABELS).map((d) => el("td", { dataset: { direction: d } },
          String(counts[d]))))));
    $("chg-recent").replaceChildren(...ch.recent.map((r) => el("li", {
      tabindex: "0", dataset: { contact: r.contact_id },
      onclick: () => openContact(r.contact_id),
      onkeydown: (e) => { if (e.key === "Enter") openContact(r.contact_id); } },
    el("span", {}, r.name || r.contact_id,
      el("span", { class: "muted small" }, ` ${new Date(r.changed_at).toLocaleString()}`)),
    el("span", {}, tierLabel(r.previous_tier), " → ", el("span", { class: `tier ${r.tier || "none"}` }, tierLabel(r.tier))))));
    if (!ch.recent.length) $("chg-recent").append(el("li", { class: "muted" }, "No change in the last 7 days."));
  } catch (err) {
    setStatus(`Tier changes: ${err.message}`, "err");
  }
}

async function loadContactHeatmap(contactId) {
  try {
    const map = await api("GET", `${monitorPath(contactId)}/heatmap`);
    if (state.contact !== contactId) return;
    const shown = Object.entries(map.channels).filter(([ch, g]) => g.total > 0 || (state.snapshot && state.snapshot.channels[ch]));
    $("c-heat").replaceChildren(...shown.map(([ch, grid]) => el("div", { dataset: { channel: ch } },
      heatTable(grid, `${channelLabel(ch)}: ${grid.total} interaction${grid.total === 1 ? "" : "s"} by hour of week, ${map.timezone}`))));
  } catch (err) {
    setStatus(`Heatmap: ${err.message}`, "err");
  }
}

let findTimer = null;
function findSoon() {
  clearTimeout(findTimer);
  findTimer = setTimeout(findContacts, 200);
}

async function findContacts() {
  const q = $("find").value.trim();
  if (!q) { $("find-list").replaceChildren(); return; }
  try {
    const params = new URLSearchParams({ q, limit: "10" });
    const page = await api("GET", `/v1/orgs/${encodeURIComponent(state.who.org_id)}/contacts?${params}`);
    if ($("find").value.trim() !== q) return; // typed on: a newer search is coming
    $("find-list").replaceChildren(...page.items.map((item) =>
      el("li", { tabindex: "0", dataset: { contact: item.contact_id },
        onclick: () => openContact(item.contact_id),
        onkeydown: (e) => { if (e.key === "Enter") openContact(item.contact_id); } },
      el("span", {}, item.name || item.contact_id,
        el("span", { class: "muted small" }, ` ${item.email || item.phone || item.contact_id}`)),
      el("span", { class: "muted" }, tierLabel(item.tier)))));
    if (!page.items.length) $("find-list").append(el("li", { class: "muted" }, "Nobody found."));
  } catch (err) {
    setStatus(`Find: ${err.message}`, "err");
  }
}

// ---- segments -----------------------------------------------------------------------------

async function loadSegment(more) {
  const tier = $("seg-tier").value;
  const channel = $("seg-channel").value;
  const params = new URLSearchParams({ tier, limit: "25" });
  if (channel) params.set("channel", channel);
  if (more && state.segCursor) params.set("cursor", state.segCursor);
  if (!more) $("seg-list").replaceChildren();
  try {
    const page = await api("GET", `/v1/orgs/${encodeURIComponent(state.who.org_id)}/segments?${params}`);
    for (const item of page.items) {
      $("seg-list").append(
        el("li", { tabindex: "0", dataset: { contact: item.contact_id },
          onclick: () => openContact(item.contact_id),
          onkeydown: (e) => { if (e.key === "Enter") openContact(item.contact_id); } },
        el("span", {}, item.name || item.contact_id,
          item.name ? el("span", { class: "muted small" }, ` ${item.contact_id}`) : null),
        el("span", { class: "muted" }, pct(item.rate))),
      );
    }
    state.segCursor = page.next_cursor;
    $("seg-more").hidden = !page.next_cursor;
    $("seg-empty").hidden = $("seg-list").children.length > 0;
  } catch (err) {
    setStatus(`Segments: ${err.message}`, "err");
  }
}

// SPEC §7.4: the whole segment as CSV. The export needs the bearer token, so it is fetched
// here and handed to the browser as a file, never as a link that would carry the token.
async function exportSegment() {
  const params = new URLSearchParams({ tier: $("seg-tier").value });
  if ($("seg-channel").value) params.set("channel", $("seg-channel").value);
  const path = `/v1/orgs/${encodeURIComponent(state.who.org_id)}/segments.csv?${params}`;
  try {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` },
    });
    if (!response.ok) throw new Error(`export failed (${response.status})`);
    const blob = await response.blob();
    const link = el("a", {
      href: URL.createObjectURL(blob),
      download: `segment-${params.get("tier")}-${params.get("channel") || "overall"}.csv`,
    });
    document.body.append(link);
    link.click();
    link.remove();
    setStatus("Segment exported.");
  } catch (err) {
    setStatus(`Export: ${err.message}`, "err");
  }
}

// ---- one contact --------------------------------------------------------------------------

function monitorPath(contactId) {
  return `/v1/orgs/${encodeURIComponent(state.who.org_id)}/contacts/${encodeURIComponent(contactId)}`;
}

async function openContact(contactId) {
  state.contact = contactId;
  window.location.hash = `contact=${encodeURIComponent(contactId)}`;
  try {
    const snap = await api("GET", `${monitorPath(contactId)}/monitor`);
    render(snap);
    setStatus("");
    loadHistory(contactId);
    loadContactHeatmap(contactId);
  } catch (err) {
    $("contact").hidden = true;
    $("placeholder").hidden = false;
    setStatus(err.status === 404 ? `No contact ${contactId} in this organization.` : err.message, "err");
  }
}

function render(snap) {
  state.snapshot = snap;
  $("placeholder").hidden = true;
  $("contact").hidden = false;
  const reg = snap.registration;
  $("c-name").textContent = reg.name || snap.contact_id;
  $("c-id").textContent = snap.contact_id;
  $("c-window").textContent = snap.window_days;
  $("c-asof").textContent = new Date(snap.as_of).toLocaleString();
  $("c-phone").textContent = reg.phone || "—";
  $("c-email").textContent = reg.email || "—";
  $("c-since").textContent = reg.contact_since ? new Date(reg.contact_since).toLocaleDateString() : "—";
  $("c-origin").textContent = reg.origin ? reg.origin.label : "—";

  $("c-lists").replaceChildren(...snap.lists.map((list) => el("li", { dataset: { list: list.list_id } },
    el("span", {}, list.name),
    mayWrite() ? el("button", { type: "button", title: "Remove contact from this list",
      "aria-label": `Remove contact from ${list.name}`, onclick: () => removeFromList(list) }, "×") : null)));
  $("c-nolists").hidden = snap.lists.length > 0;

  const channels = Object.entries(snap.channels);
  $("c-channels").replaceChildren(...channels.map(([ch, fig]) => el("li", { dataset: { channel: ch } },
    el("span", {}, channelLabel(ch)),
    el("span", {},
      el("span", { class: `sub ${fig.status}` }, fig.status === "subscribed" ? "Subscribed" : "Unsubscribed"),
      " ",
      mayWrite() && fig.status === "subscribed"
        ? el("button", { type: "button", class: "small danger", onclick: () => unsubscribe(ch) }, "Unsubscribe")
        : null))));
  if (!channels.length) $("c-channels").append(el("li", { class: "muted" }, "No channel yet."));

  $("c-dispatched").textContent = snap.dispatched.total;
  $("c-by-channel").replaceChildren(...Object.entries(snap.dispatched.by_channel).map(([ch, n]) =>
    el("li", { dataset: { channel: ch } }, el("span", {}, channelLabel(ch)), el("strong", {}, n))));

  $("c-eng-rate").textContent = pct(snap.engagement.rate);
  $("c-eng-tier").textContent = tierLabel(snap.engagement.tier);
  $("c-eng-tier").className = `tier ${snap.engagement.tier || "none"}`;
  $("c-eng-why").textContent = engagementWhy(snap.engagement);
  $("c-eng-channels").replaceChildren(...channels.map(([ch, fig]) => el("li", {},
    el("span", {}, channelLabel(ch)),
    el("span", {}, `${pct(fig.engagement.rate)} `,
      el("span", { class: `tier ${fig.engagement.tier || "none"}` }, tierLabel(fig.engagement.tier)),
      el("span", { class: "muted small" }, ` ${fig.engagement.engaged ?? 0} of ${fig.engagement.delivered ?? 0}`)))));

  $("c-rates").replaceChildren(...channels.map(([ch, fig]) => el("tr", { dataset: { channel: ch } },
    el("th", { scope: "row" }, channelLabel(ch)),
    ...RATE_COLUMNS.map((m) => {
      const note = RATE_NOTES[m] ? RATE_NOTES[m](fig) : "";
      return el("td", { dataset: { rate: m } }, pct(fig.rates[m]),
        note ? el("div", { class: "muted small", dataset: { note: m } }, note) : null);
    }))));

  const best = Object.entries(snap.best_send_times || {});
  $("c-best").replaceChildren(...best.map(([ch, b]) => el("div", {},
    el("strong", {}, channelLabel(ch)),
    el("div", { class: "muted small" }, `${b.weekly_frequency} messages a week · ${b.timezone}`),
    b.top_hours.length
      ? el("ol", {}, ...b.top_hours.map((h) =>
        el("li", {}, `${h.weekday} ${String(h.hour).padStart(2, "0")}:00 — ${h.interactions} interaction${h.interactions === 1 ? "" : "s"}`)))
      : el("div", { class: "muted" }, "No interactions yet."))));
  if (!best.length) $("c-best").append(el("p", { class: "muted" }, "Not enough data yet."));
}

// ---- write actions: publish a command, then follow the snapshot until it shows the change --

async function command(label, method, path, body, applied) {
  const contactId = state.contact;
  setStatus(`${label}: sending…`);
  try {
    await api(method, path, body);
  } catch (err) {
    setStatus(`${label}: ${err.message}`, "err");
    return;
  }
  setStatus(`${label}: accepted, waiting for the monitor to show it…`);
  const deadline = Date.now() + POLL_LIMIT_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (state.contact !== contactId) return;
    let snap = null;
    try {
      snap = await api("GET", `${monitorPath(contactId)}/monitor`);
    } catch (err) {
      if (err.status === 404 && applied(null)) {
        setStatus(`${label}: done.`, "ok");
        $("contact").hidden = true;
        $("placeholder").hidden = false;
        loadSegment(false);
        return;
      }
      continue;
    }
    if (applied(snap)) {
      render(snap);
      setStatus(`${label}: done.`, "ok");
      return;
    }
  }
  setStatus(`${label}: accepted; the monitor will show it once the worker has applied it.`);
}

function includeInList(event) {
  event.preventDefault();
  const listId = $("list-id").value.trim();
  const name = $("list-name").value.trim();
  if (!listId) return;
  $("list-form").hidden = true;
  $("list-form").reset();
  command(`Include in list ${name || listId}`, "PUT",
    `${monitorPath(state.contact)}/lists/${encodeURIComponent(listId)}`, name ? { name } : {},
    (snap) => Boolean(snap && snap.lists.some((l) => l.list_id === listId)));
}

function removeFromList(list) {
  if (!window.confirm(`Remove contact from ${list.name}?`)) return;
  command(`Remove from ${list.name}`, "DELETE",
    `${monitorPath(state.contact)}/lists/${encodeURIComponent(list.list_id)}`, undefined,
    (snap) => Boolean(snap && !snap.lists.some((l) => l.list_id === list.list_id)));
}

function unsubscribe(channel) {
  if (!window.confirm(`Unsubscribe this contact from ${channelLabel(channel)}?`)) return;
  command(`Unsubscribe from ${channelLabel(channel)}`, "POST",
    `${monitorPath(state.contact)}/channels/${encodeURIComponent(channel)}/unsubscribe`, undefined,
    (snap) => Boolean(snap && snap.channels[channel] && snap.channels[channel].status === "unsubscribed"));
}

function deleteContact() {
  if (!window.confirm("Delete this contact from the base and all its lists, for good?")) return;
  command("Delete contact", "DELETE", monitorPath(state.contact), undefined, (snap) => snap === null);
}

function openEdit() {
  const reg = state.snapshot.registration;
  $("edit-name").value = reg.name || "";
  $("edit-phone").value = reg.phone || "";
  $("edit-email").value = reg.email || "";
  $("edit-form").hidden = false;
}

function saveEdit(event) {
  event.preventDefault();
  const reg = state.snapshot.registration;
  const changes = {};
  for (const field of ["name", "phone", "email"]) {
    const value = $(`edit-${field}`).value.trim() || null;
    if (value !== (reg[field] || null)) changes[field] = value;
  }
  $("edit-form").hidden = true;
  if (!Object.keys(changes).length) return setStatus("Nothing changed.");
  command("Edit data", "PATCH", monitorPath(state.contact), changes,
    (snap) => Boolean(snap && Object.entries(changes).every(([k, v]) => snap.registration[k] === v)));
}

async function sendMessage(event) {
  event.preventDefault();
  const channel = $("send-channel").value;
  const text = $("send-text").value.trim();
  if (!text) return;
  try {
    await api("POST", `${monitorPath(state.contact)}/messages`, { channel, text });
    $("send-text").value = "";
    setStatus(`Message to ${channelLabel(channel)} requested; it counts once it is dispatched.`, "ok");
  } catch (err) {
    setStatus(`Send message: ${err.message}`, "err");
  }
}

// ---- wiring -------------------------------------------------------------------------------

function on(id, eventName, handler) {
  const node = $(id);
  if (node) node.addEventListener(eventName, handler);
}

document.addEventListener("DOMContentLoaded", () => {
  on("login-form", "submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    start();
  });
  on("sign-out", "click", () => signOut());
  on("seg-form", "submit", (event) => { event.preventDefault(); loadSegment(false); });
  on("seg-more", "click", () => loadSegment(true));
  on("seg-export", "click", exportSegment);
  on("find", "input", findSoon);
  on("heat-channel", "change", showOrgHeatmap);
  on("open-form", "submit", (event) => {
    event.preventDefault();
    const id = $("open-id").value.trim();
    if (id) openContact(id);
  });
  on("list-open", "click", () => { $("list-form").hidden = false; $("list-id").focus(); });
  on("list-cancel", "click", () => { $("list-form").hidden = true; });
  on("list-form", "submit", includeInList);
  on("delete", "click", deleteContact);
  on("edit-open", "click", openEdit);
  on("edit-cancel", "click", () => { $("edit-form").hidden = true; });
  on("edit-form", "submit", saveEdit);
  on("send-form", "submit", sendMessage);
  start();
});
