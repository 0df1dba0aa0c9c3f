// The inbox: views with counts, filters, search, keyset "load more", bulk select and
// update, keyboard navigation, live rows.

import { OPEN_STATUSES, PRIORITIES, STATUSES, api, lookup, session } from "./api.js";
import { clear, field, h, later, select, timeEl, toast } from "./dom.js";
import * as live from "./realtime.js";

export const VIEWS = [
  ["unread", "Unread", () => ({ status: ["Unread"] })],
  ["mine", "Mine", () => ({ assigneeId: "me", status: OPEN_STATUSES })],
  ["unassigned", "Unassigned", () => ({ assigneeId: "none", status: OPEN_STATUSES })],
  ["team", "My team", (teamId) => (teamId ? { teamId, status: OPEN_STATUSES } : null)],
  ["open", "All open", () => ({ status: OPEN_STATUSES })],
  ["withuser", "With user", () => ({ status: ["With User"] })],
  ["closed", "Closed", () => ({ status: ["Closed"] })],
];

async function myTeamId() {
  const teams = await lookup("teams").catch(() => []);
  const mine = teams.find((t) => (t.memberIds || []).includes(session.me.agent.id));
  return mine ? mine.id : null;
}

async function viewParams(view) {
  const def = VIEWS.find((v) => v[0] === view) || VIEWS[4];
  return def[2](def[0] === "team" ? await myTeamId() : null);
}

let countsTimer = null;
export function refreshCounts(delay = 0) {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(async () => {
    for (const [key] of VIEWS) {
      const badge = document.querySelector(`[data-count="${key}"]`);
      if (!badge) continue;
      const params = await viewParams(key);
      if (!params) {
        badge.textContent = "–";
        continue;
      }
      api.page("/tickets", { ...params, limit: 1, includeTotal: true })
        .then(({ meta }) => {
          badge.textContent = String(meta?.total ?? "");
          badge.parentElement.setAttribute("aria-label", `${badge.previousSibling.textContent}, ${meta?.total ?? 0} tickets`);
        })
        .catch(() => {
          badge.textContent = "";
        });
    }
  }, delay);
}

export function sidebar() {
  const nav = h("nav", { class: "sidebar", "aria-label": "Views" },
    h("h2", { class: "visually-hidden" }, "Views"),
    h("ul", {}, VIEWS.map(([key, label]) => h("li", {},
      h("a", { href: `#/inbox/${key}`, dataset: { view: key } }, h("span", {}, label), h("span", { class: "count", dataset: { count: key } }, ""))))),
    h("p", { class: "muted small" }, "Press ", h("kbd", {}, "?"), " for shortcuts"));
  later(() => refreshCounts());
  live.on("ticket.created", () => refreshCounts(800));
  live.on("ticket.updated", () => refreshCounts(800));
  return nav;
}

function markView(view) {
  document.querySelectorAll(".sidebar a").forEach((a) => {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

// The SLA state of a row: missed targets, else the soonest pending one.
function slaBadge(t) {
  if (t.slaBreached?.length) return h("span", { class: "sla sla-breached", title: `Missed: ${t.slaBreached.join(", ")}` }, "SLA breached");
  if (!t.slaDueAt) return null;
  return h("span", { class: "sla" }, "SLA due ", timeEl(t.slaDueAt));
}

const PRIORITY_CLASS = { Low: "p-low", Medium: "p-medium", High: "p-high", Critical: "p-critical" };

export function statusPill(status) {
  return h("span", { class: `pill s-${status.toLowerCase().replace(/\s+/g, "-")}` }, status);
}

function matches(ticket, params) {
  if (params.status && !params.status.includes(ticket.status)) return false;
  if (params.assigneeId === "me" && ticket.assignee?.id !== session.me.agent.id) return false;
  if (params.assigneeId === "none" && ticket.assignee) return false;
  if (params.assigneeId && !["me", "none"].includes(params.assigneeId) && ticket.assignee?.id !== params.assigneeId) return false;
  if (params.teamId && ticket.team?.id !== params.teamId) return false;
  if (params.priority && params.priority.length && !params.priority.includes(ticket.priority)) return false;
  if (params.categoryId && ticket.category?.id !== params.categoryId) return false;
  if (params.tag && !(ticket.tags || []).includes(params.tag)) return false;
  if (params.q) return false; // search results are not live-filtered
  return !ticket.mergedIntoTicketId;
}

export async function renderInbox(main, view, hashParams) {
  markView(view);
  const label = (VIEWS.find((v) => v[0] === view) || VIEWS[4])[1];
  const base = await viewParams(view);
  const filters = {
    q: hashParams.get("q") || "",
    priority: hashParams.get("priority") || "",
    assigneeId: hashParams.get("assigneeId") || "",
    teamId: hashParams.get("teamId") || "",
    categoryId: hashParams.get("categoryId") || "",
    tag: hashParams.get("tag") || "",
    breached: hashParams.get("breached") || "",
    sort: hashParams.get("sort") || "-updatedAt",
  };
  const state = { rows: [], cursor: null, selected: new Set(), focus: -1, loading: false, generation: 0 };

  const search = h("input", { type: "search", id: "search", name: "q", placeholder: "Search subject, messages, customer…", value: filters.q, autocomplete: "off" });
  const searchForm = h("form", { role: "search", class: "searchbar", onsubmit: (e) => {
    e.preventDefault();
    filters.q = search.value.trim();
    applyFilters();
  } }, h("label", { for: "search", class: "visually-hidden" }, "Search tickets"), search, h("button", { type: "submit" }, "Search"));

  const priority = select([["", "Any priority"], ...PRIORITIES.map((p) => [p, p])], filters.priority, { id: "f-priority" });
  const assignee = select([["", "Anyone"], ["me", "Me"], ["none", "Nobody"]], filters.assigneeId, { id: "f-assignee" });
  const team = select([["", "Any team"]], filters.teamId, { id: "f-team" });
  const category = select([["", "Any category"]], filters.categoryId, { id: "f-category" });
  const tag = h("input", { type: "text", id: "f-tag", value: filters.tag, placeholder: "tag", size: 10 });
  const sort = select([["-updatedAt", "Recently updated"], ["-createdAt", "Newest"], ["priority", "Priority"], ["dueAt", "Due date"], ["slaDue", "SLA due soonest"]], filters.sort, { id: "f-sort" });
  const breached = select([["", "Any SLA state"], ["true", "SLA breached"], ["false", "SLA not breached"]], filters.breached, { id: "f-breached" });
  later(() => Promise.all([lookup("agents"), lookup("teams"), lookup("categories")]).then(([agents, teams, cats]) => {
    agents.filter((a) => a.isActive && a.id !== session.me.agent.id).forEach((a) => assignee.append(h("option", { value: a.id, selected: a.id === filters.assigneeId }, a.displayName)));
    teams.forEach((t) => team.append(h("option", { value: t.id, selected: t.id === filters.teamId }, t.name)));
    cats.forEach((c) => category.append(h("option", { value: c.id, selected: c.id === filters.categoryId }, c.name)));
  }).catch(() => {}));
  const filterBar = h("details", { class: "filters", open: Boolean(filters.priority || filters.assigneeId || filters.teamId || filters.categoryId || filters.tag || filters.breached) },
    h("summary", {}, "Filters"),
    h("div", { class: "filter-row" },
      field("Priority", priority), field("Assignee", assignee), field("Team", team), field("Category", category), field("Tag", tag), field("SLA", breached), field("Sort", sort)));
  [priority, assignee, team, category, breached, sort].forEach((el) => el.addEventListener("change", () => {
    filters.priority = priority.value;
    filters.assigneeId = assignee.value;
    filters.teamId = team.value;
    filters.categoryId = category.value;
    filters.breached = breached.value;
    filters.sort = sort.value;
    applyFilters();
  }));
  tag.addEventListener("change", () => {
    filters.tag = tag.value.trim().toLowerCase();
    applyFilters();
  });

  const selectAll = h("input", { type: "checkbox", id: "select-all", "aria-label": "Select all shown tickets" });
  const bulkCount = h("span", { id: "bulk-count" }, "");
  const bulkStatus = select([["", "Set status…"], ...STATUSES.map((s) => [s, s])], "", { "aria-label": "Set status of selected" });
  const bulkPriority = select([["", "Set priority…"], ...PRIORITIES.map((s) => [s, s])], "", { "aria-label": "Set priority of selected" });
  const bulkAssignee = select([["", "Assign to…"], [session.me.agent.id, "Me"]], "", { "aria-label": "Assign selected to" });
  later(() => lookup("agents").then((agents) => agents.filter((a) => a.isActive && a.id !== session.me.agent.id)
    .forEach((a) => bulkAssignee.append(h("option", { value: a.id }, a.displayName)))).catch(() => {}));
  const bulkBar = h("div", { class: "bulkbar", id: "bulk-bar", hidden: true, role: "region", "aria-label": "Bulk actions" },
    bulkCount, bulkStatus, bulkPriority, bulkAssignee,
    h("button", { type: "button", id: "bulk-apply", class: "primary", onclick: bulkApply }, "Apply"));

  const list = h("ul", { class: "tickets", id: "ticket-list", role: "list", "aria-label": `${label} tickets` });
  const more = h("button", { type: "button", id: "load-more", class: "ghost", hidden: true, onclick: () => load(false) }, "Load more");
  const status = h("p", { class: "muted", role: "status", "aria-live": "polite" }, "");

  clear(main,
    h("div", { class: "inbox-head" }, h("h1", {}, label), searchForm),
    filterBar,
    h("div", { class: "list-head" }, selectAll, h("label", { for: "select-all" }, "Select all"), bulkBar),
    list, more, status);

  function hashFor() {
    const usp = new URLSearchParams();
    Object.entries(filters).forEach(([k, v]) => {
      if (v && !(k === "sort" && v === "-updatedAt")) usp.set(k, v);
    });
    const qs = usp.toString();
    return `#/inbox/${view}${qs ? `?${qs}` : ""}`;
  }

  function applyFilters() {
    history.replaceState(null, "", hashFor());
    load(true);
  }

  function params() {
    if (!base) return null;
    const p = { ...base, sort: filters.sort, q: filters.q || undefined, tag: filters.tag || undefined, categoryId: filters.categoryId || undefined };
    if (filters.priority) p.priority = [filters.priority];
    if (filters.assigneeId) p.assigneeId = filters.assigneeId;
    if (filters.teamId) p.teamId = filters.teamId;
    if (filters.breached) p.breached = filters.breached;
    return p;
  }

  function row(t) {
    const box = h("input", { type: "checkbox", class: "pick", "aria-label": `Select ticket ${t.number}`, checked: state.selected.has(t.id) });
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(t.id);
      else state.selected.delete(t.id);
      syncBulk();
    });
    return h("li", { class: `ticket${t.isRead ? "" : " unread"}`, dataset: { id: t.id } },
      box,
      h("a", { class: "subject", href: `#/tickets/${t.id}` },
        h("span", { class: "num" }, `#${t.number}`), " ", t.subject || "(no subject)"),
      h("span", { class: "who" }, t.customer?.name || t.customer?.email || ""),
      h("span", { class: "meta" },
        statusPill(t.status),
        h("span", { class: `prio ${PRIORITY_CLASS[t.priority] || ""}` }, t.priority),
        h("span", { class: "assignee" }, t.assignee ? t.assignee.name : "Unassigned"),
        (t.tags || []).slice(0, 3).map((tg) => h("span", { class: "tag" }, tg)),
        slaBadge(t),
        timeEl(t.updatedAt)));
  }

  function syncBulk() {
    const n = state.selected.size;
    bulkBar.hidden = n === 0;
    bulkCount.textContent = `${n} selected`;
    selectAll.checked = n > 0 && n === state.rows.length;
    selectAll.indeterminate = n > 0 && n < state.rows.length;
  }

  selectAll.addEventListener("change", () => {
    state.selected = selectAll.checked ? new Set(state.rows.map((t) => t.id)) : new Set();
    list.querySelectorAll(".pick").forEach((b) => {
      b.checked = selectAll.checked;
    });
    syncBulk();
  });

  async function bulkApply() {
    const set = {};
    if (bulkStatus.value) set.status = bulkStatus.value;
    if (bulkPriority.value) set.priority = bulkPriority.value;
    if (bulkAssignee.value) set.assigneeId = bulkAssignee.value;
    if (!Object.keys(set).length) {
      toast("Choose what to change first.");
      return;
    }
    try {
      const results = await api.post("/tickets/bulk", { ids: [...state.selected], set });
      const failed = results.filter((r) => !r.success).length;
      toast(failed ? `${results.length - failed} updated, ${failed} failed` : `${results.length} tickets updated`, failed ? "error" : "info");
      state.selected.clear();
      load(true);
      refreshCounts();
    } catch (e) {
      toast(e.message, "error");
    }
  }

  async function load(reset) {
    const p = params();
    if (!p) {
      clear(list, h("li", { class: "empty" }, "You are not in a team yet."));
      return;
    }
    // "Load more" waits for the load in flight; a new filter or view always loads, and an
    // older answer that comes back after it is dropped (it would show the old filter's rows).
    if (state.loading && !reset) return;
    const mine = reset ? ++state.generation : state.generation;
    state.loading = true;
    list.setAttribute("aria-busy", "true");
    try {
      if (reset) {
        state.cursor = null;
        state.rows = [];
        state.focus = -1;
        state.selected.clear();
      }
      const { data, meta } = await api.page("/tickets", { ...p, limit: 50, cursor: state.cursor || undefined });
      if (mine !== state.generation) return;
      state.rows.push(...data);
      state.cursor = meta?.nextCursor || null;
      if (reset) clear(list);
      list.append(...data.map(row));
      if (!state.rows.length) list.append(h("li", { class: "empty" }, filters.q ? "No ticket matches this search." : "Nothing here. Nice work."));
      more.hidden = !state.cursor;
      status.textContent = `${state.rows.length} shown${state.cursor ? ", more available" : ""}`;
      syncBulk();
      if (reset) {
        document.body.dataset.inboxReady = String(Date.now());
        performance.mark("enque:inbox-ready");
      }
    } catch (e) {
      if (mine === state.generation) toast(e.message, "error");
    } finally {
      if (mine === state.generation) {
        state.loading = false;
        list.removeAttribute("aria-busy");
      }
    }
  }

  function focusRow(index) {
    const items = [...list.querySelectorAll("li.ticket")];
    if (!items.length) return;
    state.focus = Math.max(0, Math.min(items.length - 1, index));
    items.forEach((li, i) => li.classList.toggle("focused", i === state.focus));
    const link = items[state.focus].querySelector("a.subject");
    link.focus();
  }

  function currentRow() {
    const active = document.activeElement?.closest?.("li.ticket");
    if (active) return state.rows.find((t) => t.id === active.dataset.id);
    return state.rows[state.focus];
  }

  async function patchRow(t, body, message) {
    try {
      const updated = await api.patch(`/tickets/${t.id}`, body);
      replaceRow(updated);
      toast(message);
      refreshCounts(300);
    } catch (e) {
      toast(e.message, "error");
    }
  }

  function replaceRow(ticket) {
    const i = state.rows.findIndex((t) => t.id === ticket.id);
    const old = list.querySelector(`li[data-id="${ticket.id}"]`);
    if (i >= 0 && old) {
      state.rows[i] = ticket;
      const fresh = row(ticket);
      if (old.classList.contains("focused")) fresh.classList.add("focused");
      old.replaceWith(fresh);
    }
  }

  const offCreated = live.on("ticket.created", (ticket) => {
    const p = params();
    if (!p || !ticket?.id || state.rows.some((t) => t.id === ticket.id) || !matches(ticket, p)) return;
    if (filters.sort !== "-updatedAt" && filters.sort !== "-createdAt") return;
    state.rows.unshift(ticket);
    list.querySelector(".empty")?.remove();
    const li = row(ticket);
    li.classList.add("arrived");
    list.prepend(li);
    status.textContent = `New ticket #${ticket.number}: ${ticket.subject}`;
  });
  const offUpdated = live.on("ticket.updated", (payload) => {
    if (payload?.ticket) replaceRow(payload.ticket);
  });

  // Events missed while the socket was down: reload the list once it is back.
  const offReopen = live.on("open", ({ reconnect }) => {
    if (reconnect) load(true);
  });

  await load(true);
  return {
    dispose() {
      offCreated();
      offUpdated();
      offReopen();
    },
    key(event) {
      const t = currentRow();
      switch (event.key) {
        case "j":
          focusRow(state.focus + 1);
          break;
        case "k":
          focusRow(state.focus - 1);
          break;
        case "o":
        case "Enter":
          if (t && event.key === "o") location.hash = `#/tickets/${t.id}`;
          return;
        case "x":
          if (t) {
            const box = list.querySelector(`li[data-id="${t.id}"] .pick`);
            box.checked = !box.checked;
            box.dispatchEvent(new Event("change"));
          }
          break;
        case "e":
          if (t) patchRow(t, { status: "Closed" }, `#${t.number} closed`);
          break;
        case "a":
          if (t) patchRow(t, { assigneeId: session.me.agent.id }, `#${t.number} assigned to you`);
          break;
        case "r":
          if (t) location.hash = `#/tickets/${t.id}?reply=1`;
          break;
        default:
          return;
      }
      event.preventDefault();
    },
  };
}
