// Admin screens: agents and invitations, teams, mailboxes, categories, automations (dry-run),
// and — where the server has them — canned replies, signatures and reports.

import { PRIORITIES, all, api, features, forget, lookup, request, session } from "./api.js";
import { clear, dialog, field, h, select, timeEl, toast } from "./dom.js";

const SECTIONS = [
  ["agents", "Agents", "/v1/agents"],
  ["teams", "Teams", "/v1/teams"],
  ["mailboxes", "Mailboxes", "/v1/mailboxes"],
  ["categories", "Categories", "/v1/categories"],
  ["automations", "Automations", "/v1/automations"],
  ["canned", "Canned replies", "/v1/canned-replies"],
  ["signatures", "Signatures", "/v1/signatures/workspace"],
  ["reports", "Reports", "/v1/reports/summary"],
];

const ROLES = [["agent", "Agent"], ["manager", "Manager"], ["admin", "Admin"]];

function fail(e) {
  toast(e.details?.length ? `${e.message}: ${e.details.map((d) => `${d.path} ${d.message}`).join("; ")}` : e.message, "error");
}

// A column header; the buttons' column is named for screen readers only.
const th = (x) => h("th", { scope: "col" }, x || h("span", { class: "visually-hidden" }, "Actions"));

function table(headers, rows, caption) {
  return h("table", {}, caption ? h("caption", { class: "visually-hidden" }, caption) : null,
    h("thead", {}, h("tr", {}, headers.map(th))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "Nothing yet."))));
}

export async function renderAdmin(main, section) {
  const paths = await features();
  const available = SECTIONS.filter(([, , path]) => paths.has(path) || paths.size === 0);
  const body = h("div", { class: "admin-body" });
  clear(main, h("div", { class: "admin" },
    h("nav", { class: "subnav", "aria-label": "Admin sections" },
      h("ul", {}, available.map(([key, label]) => h("li", {}, h("a", { href: `#/admin/${key}`, "aria-current": key === section ? "page" : null }, label))))),
    body));
  const screens = { agents, teams, mailboxes, categories, automations, canned, signatures, reports };
  const screen = screens[section] || agents;
  if (!available.some(([key]) => key === section)) {
    clear(body, h("h1", {}, "Not available"), h("p", {}, "This server does not offer this screen yet."));
    return {};
  }
  await screen(body, paths);
  return {};
}

// ---------------------------------------------------------------- agents
async function agents(body) {
  const list = await all("/agents");
  const teams = await lookup("teams");
  const rows = list.map((a) => {
    const role = select(ROLES, a.role, { "aria-label": `Role of ${a.displayName}`, disabled: a.id === session.me.agent.id });
    role.addEventListener("change", () => api.patch(`/agents/${a.id}`, { role: role.value }).then(() => toast("Role changed")).catch(fail));
    const active = h("input", { type: "checkbox", checked: a.isActive, "aria-label": `${a.displayName} active`, disabled: a.id === session.me.agent.id });
    active.addEventListener("change", () => api.patch(`/agents/${a.id}`, { isActive: active.checked }).then(() => { forget("agents"); toast("Saved"); }).catch(fail));
    return h("tr", {}, h("td", {}, a.displayName), h("td", {}, a.email), h("td", {}, role), h("td", {}, active), h("td", {}, timeEl(a.lastLoginAt) || "never"));
  });
  const email = h("input", { type: "email", id: "invite-email", required: true });
  const role = select(ROLES, "agent", { id: "invite-role" });
  const teamPick = select([["", "No team"], ...teams.map((t) => [t.id, t.name])], "", { id: "invite-team" });
  const invites = h("tbody", {});
  const form = h("form", { class: "form-row", "aria-label": "Invite an agent" }, field("Email", email), field("Role", role), field("Team", teamPick), h("button", { type: "submit", class: "primary" }, "Send invitation"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.post("/agents/invitations", { email: email.value.trim(), role: role.value, teamIds: teamPick.value ? [teamPick.value] : [] });
      toast(`Invitation sent to ${email.value}`);
      email.value = "";
      loadInvites();
    } catch (err) {
      fail(err);
    }
  });
  async function loadInvites() {
    try {
      const items = await all("/agents/invitations");
      clear(invites, items.length ? items.map((i) => h("tr", {}, h("td", {}, i.email), h("td", {}, i.role), h("td", {}, timeEl(i.expiresAt)),
        h("td", {}, h("button", { type: "button", class: "danger", onclick: () => api.del(`/agents/invitations/${i.id}`).then(loadInvites).catch(fail) }, "Revoke")))) : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No pending invitation.")));
    } catch (err) {
      clear(invites, h("tr", {}, h("td", { colspan: 4 }, err.message)));
    }
  }
  clear(body, h("h1", {}, "Agents"),
    h("section", { class: "section" }, table(["Name", "Email", "Role", "Active", "Last sign-in"], rows, "Agents")),
    h("section", { class: "section card" }, h("h2", {}, "Invite"), form,
      h("h3", {}, "Pending invitations"), h("table", {}, h("thead", {}, h("tr", {}, ["Email", "Role", "Expires", ""].map(th))), invites)));
  loadInvites();
}

// ---------------------------------------------------------------- teams
async function teams(body) {
  forget("teams");
  const [list, people] = await Promise.all([lookup("teams"), lookup("agents")]);
  const name = h("input", { type: "text", id: "team-name", required: true });
  const form = h("form", { class: "form-row" }, field("Team name", name), h("button", { type: "submit", class: "primary" }, "Create team"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.post("/teams", { name: name.value.trim() });
      forget("teams");
      teams(body);
    } catch (err) {
      fail(err);
    }
  });
  const rows = list.map((t) => h("tr", {}, h("td", {}, t.name),
    h("td", {}, (t.memberIds || []).map((id) => people.find((p) => p.id === id)?.displayName || "?").join(", ") || h("span", { class: "muted" }, "none")),
    h("td", {},
      h("button", { type: "button", onclick: () => editMembers(t) }, "Members…"), " ",
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Delete team ${t.name}?`)) return;
        await api.del(`/teams/${t.id}`).catch(fail);
        forget("teams");
        teams(body);
      } }, "Delete"))));
  function editMembers(t) {
    const boxes = people.filter((p) => p.isActive).map((p) => {
      const box = h("input", { type: "checkbox", id: `tm-${p.id}`, value: p.id, checked: (t.memberIds || []).includes(p.id) });
      return h("div", {}, box, h("label", { for: box.id }, ` ${p.displayName}`));
    });
    const save = h("button", { type: "button", class: "primary" }, "Save members");
    const dlg = dialog(`Members of ${t.name}`, h("fieldset", {}, h("legend", {}, "Agents"), boxes, save));
    save.addEventListener("click", async () => {
      const agentIds = boxes.map((b) => b.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
      try {
        await api.put(`/teams/${t.id}/members`, { agentIds });
        dlg.close();
        forget("teams");
        teams(body);
      } catch (err) {
        fail(err);
      }
    });
  }
  clear(body, h("h1", {}, "Teams"), h("section", { class: "section card" }, form), table(["Team", "Members", ""], rows, "Teams"));
}

// ---------------------------------------------------------------- mailboxes
async function mailboxes(body, paths) {
  const [list, teamList, cats, people] = await Promise.all([all("/mailboxes"), lookup("teams"), lookup("categories"), lookup("agents")]);
  const rows = list.map((m) => {
    const state = m.lastError ? h("span", { class: "state-error" }, `Error: ${m.lastError}`) : h("span", { class: m.state === "active" || m.state === "ok" ? "state-ok" : "" }, m.state || (m.isActive ? "active" : "paused"));
    const active = h("input", { type: "checkbox", checked: m.isActive, "aria-label": `${m.email} active` });
    active.addEventListener("change", () => api.patch(`/mailboxes/${m.id}`, { isActive: active.checked }).then(() => toast("Saved")).catch(fail));
    const team = select([["", "No team"], ...teamList.map((t) => [t.id, t.name])], m.teamId, { "aria-label": `Team for ${m.email}` });
    team.addEventListener("change", () => api.patch(`/mailboxes/${m.id}`, { teamId: team.value || null }).then(() => toast("Saved")).catch(fail));
    const prio = select([["", "Default priority"], ...PRIORITIES.map((p) => [p, p])], m.defaultPriority, { "aria-label": `Default priority for ${m.email}` });
    prio.addEventListener("change", () => api.patch(`/mailboxes/${m.id}`, { defaultPriority: prio.value || null }).then(() => toast("Saved")).catch(fail));
    const counts = m.messageCounts ? Object.entries(m.messageCounts).map(([k, v]) => `${k}: ${v}`).join(", ") : "";
    return h("tr", { dataset: { mailbox: m.id } },
      h("td", {}, h("strong", {}, m.displayName), h("br"), m.email, h("br"), h("span", { class: "muted small" }, m.kind)),
      h("td", {}, state, h("br"), h("span", { class: "muted small" }, "Last sync: ", m.lastSyncAt ? timeEl(m.lastSyncAt) : "never"), counts ? h("div", { class: "small muted" }, counts) : null),
      h("td", {}, team, h("br"), prio),
      h("td", {}, active),
      h("td", {},
        paths.has("/v1/mailboxes/{mailbox_id}/sync") ? h("button", { type: "button", onclick: () => api.post(`/mailboxes/${m.id}/sync`).then((r) => { toast(r ? `Synced: ${r.fetched} fetched, ${r.created} new tickets, ${r.commented} replies` : "Synced"); mailboxes(body, paths); }).catch(fail) }, "Sync now") : null, " ",
        h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Disconnect ${m.email}? Its tickets stay.`)) return;
          await api.del(`/mailboxes/${m.id}`).catch(fail);
          mailboxes(body, paths);
        } }, "Disconnect")));
  });

  const f = (name, attrs = {}) => h("input", { name, id: `mb-${name}`, ...attrs });
  const sec = (name, value) => select([["tls", "TLS"], ["starttls", "STARTTLS"], ["none", "None (unencrypted)"]], value, { id: `mb-${name}`, name });
  const imapForm = h("form", { id: "imap-form", "aria-labelledby": "imap-title" },
    h("h2", { id: "imap-title" }, "Connect an IMAP / SMTP mailbox"),
    h("div", { class: "form-row" }, field("Email address", f("email", { type: "email", required: true })), field("Display name", f("displayName", { required: true }))),
    h("fieldset", {}, h("legend", {}, "Incoming (IMAP)"), h("div", { class: "form-row" },
      field("Host", f("imapHost", { required: true })), field("Port", f("imapPort", { type: "number", value: "993", required: true })), field("Security", sec("imapSecurity", "tls")),
      field("Username", f("imapUser", { required: true, autocomplete: "off" })), field("Password", f("imapPassword", { type: "password", required: true, autocomplete: "new-password" })), field("Folder", f("imapFolder", { value: "INBOX" })))),
    h("fieldset", {}, h("legend", {}, "Outgoing (SMTP)"), h("div", { class: "form-row" },
      field("Host", f("smtpHost", { required: true })), field("Port", f("smtpPort", { type: "number", value: "587", required: true })), field("Security", sec("smtpSecurity", "starttls")),
      field("Username", f("smtpUser", { autocomplete: "off" })), field("Password", f("smtpPassword", { type: "password", autocomplete: "new-password" })))),
    h("p", { class: "muted small" }, "The credentials are tested before the mailbox is saved."),
    h("button", { type: "submit", class: "primary", id: "imap-connect" }, "Test and connect"));
  imapForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = (n) => imapForm.elements[n].value.trim();
    const btn = imapForm.querySelector("#imap-connect");
    btn.disabled = true;
    btn.textContent = "Testing…";
    try {
      const created = await api.post("/mailboxes/imap", {
        email: v("email"), displayName: v("displayName"),
        imap: { host: v("imapHost"), port: Number(v("imapPort")), security: v("imapSecurity"), username: v("imapUser"), password: imapForm.elements.imapPassword.value, folder: v("imapFolder") || "INBOX" },
        smtp: { host: v("smtpHost"), port: Number(v("smtpPort")), security: v("smtpSecurity"), username: v("smtpUser") || null, password: imapForm.elements.smtpPassword.value || null },
      });
      toast(`Connected ${created.email}`);
      mailboxes(body, paths);
    } catch (err) {
      fail(err);
    } finally {
      btn.disabled = false;
      btn.textContent = "Test and connect";
    }
  });
  const shared = h("input", { type: "email", id: "ms-shared", placeholder: "optional shared mailbox" });
  const ms = paths.has("/v1/mailboxes/microsoft/connect") ? h("section", { class: "section card" }, h("h2", {}, "Microsoft 365"),
    h("div", { class: "form-row" }, field("Shared mailbox", shared, "Leave empty to connect your own mailbox"),
      h("button", { type: "button", id: "ms-connect", onclick: async () => {
        try {
          const { url } = await api.get("/mailboxes/microsoft/connect", { mailbox: shared.value.trim() || undefined });
          location.href = url;
        } catch (err) {
          fail(err);
        }
      } }, "Connect Microsoft 365"))) : null;
  void cats;
  void people;
  clear(body, h("h1", {}, "Mailboxes"),
    h("section", { class: "section" }, table(["Mailbox", "Sync state", "Routing", "Active", ""], rows, "Mailboxes")),
    ms, h("section", { class: "section card" }, imapForm));
}

// ---------------------------------------------------------------- categories
async function categories(body) {
  forget("categories");
  const list = await lookup("categories");
  const name = h("input", { type: "text", id: "cat-name", required: true });
  const color = h("input", { type: "color", id: "cat-color", value: "#1f4fd1" });
  const form = h("form", { class: "form-row" }, field("Name", name), field("Colour", color), h("button", { type: "submit", class: "primary" }, "Add category"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.post("/categories", { name: name.value.trim(), color: color.value });
      categories(body);
    } catch (err) {
      fail(err);
    }
  });
  const rows = list.map((c) => h("tr", {}, h("td", {}, h("span", { class: "tag" }, c.color || ""), " ", c.name),
    h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
      await api.del(`/categories/${c.id}`).catch(fail);
      categories(body);
    } }, "Delete"))));
  clear(body, h("h1", {}, "Categories"), h("section", { class: "section card" }, form), table(["Category", ""], rows, "Categories"));
}

// ---------------------------------------------------------------- automations
const TRIGGERS = ["ticket.created", "ticket.updated", "customer.replied", "agent.replied", "time.elapsed", "sla.warning", "sla.breached"];
const CONDITION_FIELDS = "subject, body, customer_email, customer_domain, mailbox, assignee, team, priority, status, category, company, tag, hours_since_created, hours_since_updated, hours_since_customer_reply, sla_target";
// custom field type → the operators a condition on it may use (is_empty / is_not_empty fit all)
const CUSTOM_OPERATORS = {
  text: "is, is_not, contains, not_contains, starts_with, matches",
  number: "is, is_not, gt, lt, gte, lte",
  date: "is, is_not, before, after (YYYY-MM-DD), within_next, within_last (days)",
  dropdown: "is, is_not, in, not_in (a list)",
  multiselect: "includes_any, includes_all, includes_none (a list)",
  checkbox: "is_true, is_false (no value)",
};
const CUSTOM_PREFIX = { ticket: "ticket", user: "customer", company: "company" };

// The condition fields a rule may name: the built-in ones and the workspace's custom fields.
function conditionFields(customFields) {
  return h("details", { id: "auto-condition-fields" }, h("summary", {}, "Condition fields"),
    h("p", { class: "small" }, CONDITION_FIELDS),
    customFields.length ? h("ul", { class: "small" }, customFields.map((f) => h("li", {},
      h("code", {}, `${CUSTOM_PREFIX[f.entity]}.custom.${f.key}`), ` — ${f.label} (${f.type}${f.options.length ? `: ${f.options.join(", ")}` : ""}): ${CUSTOM_OPERATORS[f.type]}, is_empty, is_not_empty`)))
      : h("p", { class: "small muted" }, "No custom field is defined."));
}

async function automations(body) {
  const [list, customFields] = await Promise.all([all("/automations"), api.get("/custom-fields")]);
  const rows = list.map((a) => {
    const active = h("input", { type: "checkbox", checked: a.isActive, "aria-label": `${a.name} active` });
    active.addEventListener("change", () => api.patch(`/automations/${a.id}`, { isActive: active.checked }).then(() => toast("Saved")).catch(fail));
    return h("tr", {}, h("td", {}, a.name), h("td", {}, a.trigger), h("td", {}, `${a.conditions.length} condition(s), ${a.actions.length} action(s)`),
      h("td", {}, active), h("td", {}, String(a.runCount ?? 0)),
      h("td", {}, h("button", { type: "button", onclick: () => dryRun(a) }, "Dry run"), " ",
        h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Delete automation ${a.name}?`)) return;
          await api.del(`/automations/${a.id}`).catch(fail);
          automations(body);
        } }, "Delete")));
  });
  const name = h("input", { type: "text", id: "auto-name", required: true });
  const trigger = select(TRIGGERS.map((t) => [t, t]), "ticket.created", { id: "auto-trigger" });
  const match = select([["all", "All conditions"], ["any", "Any condition"]], "all", { id: "auto-match" });
  const conditions = h("textarea", { id: "auto-conditions", rows: 4, cols: 50 }, '[{"field": "subject", "operator": "contains", "value": "refund"}]');
  const actions = h("textarea", { id: "auto-actions", rows: 4, cols: 50 }, '[{"type": "set_priority", "value": "High"}]');
  const form = h("form", {}, h("div", { class: "form-row" }, field("Name", name), field("Trigger", trigger), field("Match", match)),
    field("Conditions (JSON)", conditions, "field, operator, value — e.g. subject contains refund, or ticket.custom.plan is gold"),
    conditionFields(customFields),
    field("Actions (JSON)", actions, "type, value — e.g. set_priority High"),
    h("button", { type: "submit", class: "primary" }, "Create automation"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let conds;
    let acts;
    try {
      conds = JSON.parse(conditions.value || "[]");
      acts = JSON.parse(actions.value || "[]");
    } catch {
      toast("Conditions and actions must be valid JSON.", "error");
      return;
    }
    try {
      await api.post("/automations", { name: name.value.trim(), trigger: trigger.value, match: match.value, conditions: conds, actions: acts });
      automations(body);
    } catch (err) {
      fail(err);
    }
  });
  function dryRun(a) {
    const ref = h("input", { type: "text", id: "dry-ticket", placeholder: "#123 or ticket id", required: true });
    const out = h("div", { id: "dry-result", role: "status", "aria-live": "polite" });
    const run = h("button", { type: "submit", class: "primary" }, "Run");
    const form2 = h("form", {}, field("Ticket", ref, "A ticket number or id; nothing is changed"), run, out);
    dialog(`Dry run: ${a.name}`, form2);
    form2.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        let ticketId = ref.value.trim();
        if (/^#?\d+$/.test(ticketId)) {
          const number = Number(ticketId.replace("#", ""));
          const { data } = await api.page("/tickets", { q: String(number), limit: 50, includeMerged: true });
          const found = data.find((t) => t.number === number);
          if (!found) throw new Error(`No ticket #${number}`);
          ticketId = found.id;
        }
        const r = await api.post(`/automations/${a.id}/dry-run`, { ticketId });
        clear(out, h("p", {}, h("strong", {}, r.matched ? "Would run." : "Would not run."), r.triggerSatisfied === false ? " (trigger not satisfied)" : ""),
          h("h3", {}, "Conditions"), h("ul", {}, (r.conditions || []).map((c) => h("li", {}, `${c.matched ? "✔" : "✘"} ${c.field} ${c.operator} ${JSON.stringify(c.value)} (actual: ${JSON.stringify(c.actual)})`))),
          h("h3", {}, "Actions"), h("ul", {}, (r.actions || []).map((x) => h("li", {}, `${x.type} ${JSON.stringify(x.value ?? "")} — ${x.effect || ""}`))));
      } catch (err) {
        clear(out, h("p", { class: "error" }, err.message));
      }
    });
    ref.focus();
  }
  clear(body, h("h1", {}, "Automations"), h("section", { class: "section" }, table(["Name", "Trigger", "Rule", "Active", "Runs", ""], rows, "Automations")),
    h("section", { class: "section card" }, h("h2", {}, "New automation"), form));
}

// ---------------------------------------------------------------- canned replies
async function canned(body) {
  const list = await all("/canned-replies");
  const name = h("input", { type: "text", id: "canned-name", required: true });
  const shortcut = h("input", { type: "text", id: "canned-shortcut" });
  const content = h("textarea", { id: "canned-content", rows: 5, cols: 60, required: true });
  const form = h("form", {}, h("div", { class: "form-row" }, field("Name", name), field("Shortcut", shortcut)),
    field("Content (HTML)", content, "Placeholders: {{customer.name}}, {{agent.name}}, {{ticket.id}}"), h("button", { type: "submit", class: "primary" }, "Save canned reply"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.post("/canned-replies", { name: name.value.trim(), shortcut: shortcut.value.trim() || null, content: content.value });
      canned(body);
    } catch (err) {
      fail(err);
    }
  });
  const rows = list.map((c) => h("tr", {}, h("td", {}, c.name), h("td", {}, c.shortcut || ""), h("td", {}, String(c.usageCount ?? "")),
    h("td", {}, h("button", { type: "button", class: "danger", onclick: () => api.del(`/canned-replies/${c.id}`).then(() => canned(body)).catch(fail) }, "Delete"))));
  clear(body, h("h1", {}, "Canned replies"), table(["Name", "Shortcut", "Used", ""], rows, "Canned replies"), h("section", { class: "section card" }, form));
}

// ---------------------------------------------------------------- signatures
async function signatures(body) {
  const current = await api.get("/signatures/workspace").catch(() => null);
  const content = h("textarea", { id: "signature-content", rows: 6, cols: 60 }, current?.content || "");
  const enabled = h("input", { type: "checkbox", id: "signature-enabled", checked: current ? current.isEnabled : true });
  const form = h("form", {}, field("Workspace signature (HTML)", content, "Added under every public reply, above the agent's own signature"),
    h("label", {}, enabled, " Enabled"), " ", h("button", { type: "submit", class: "primary" }, "Save"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    api.put("/signatures/workspace", { content: content.value, isEnabled: enabled.checked }).then(() => toast("Signature saved")).catch(fail);
  });
  clear(body, h("h1", {}, "Signatures"), h("section", { class: "card" }, form));
}

// ---------------------------------------------------------------- reports
const RANGES = [["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days"]];

async function reports(body, paths, days = "30") {
  // `to` is exclusive: the current second counts (what happened just now is in the report)
  const to = Math.floor(Date.now() / 1000) + 1;
  const from = to - Number(days) * 86400;
  const range = select(RANGES, days, { id: "report-range" });
  range.addEventListener("change", () => reports(body, paths, range.value));
  const out = h("div", { class: "report-grid" }, h("p", { class: "muted" }, "Loading…"));
  clear(body, h("div", { class: "report-head" }, h("h1", {}, "Reports"), field("Period", range)), out);
  const get = (name, params = {}) => api.get(`/reports/${name}`, { from, to, ...params }).catch(() => null);
  const [summary, volume, times, people] = await Promise.all([
    get("summary"), get("volume", { interval: "day", groupBy: "none" }), get("response-times"),
    paths.has("/v1/reports/agents") ? get("agents") : null,
  ]);
  // Each report answers CSV for the same period with `Accept: text/csv`; the file is fetched
  // with the token and handed to the browser as a Blob.
  const csv = (name, label, params = {}) => h("button", { type: "button", class: "csv", onclick: async () => {
    try {
      const res = await request("GET", `/reports/${name}`, { params: { from, to, ...params }, headers: { Accept: "text/csv" }, raw: true });
      const url = URL.createObjectURL(await res.blob());
      const a = h("a", { href: url, download: `${name}-${new Date(from * 1000).toISOString().slice(0, 10)}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      fail(err);
    }
  } }, "Export CSV", h("span", { class: "visually-hidden" }, ` of ${label}`));
  const card = (title, ...content) => h("section", { class: "card report", "aria-label": title }, h("h2", {}, title), ...content);
  const wide = (el) => { el.classList.add("wide"); return el; };
  clear(out);
  if (summary) {
    const tiles = [["Created", summary.created], ["Closed", summary.closed], ["Resolved", summary.resolved], ["Open backlog", summary.backlog]];
    out.append(wide(card("Summary",
      h("dl", { class: "stats" }, tiles.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, String(v))))),
      h("p", { class: "small muted" }, "Now by status: ", Object.entries(summary.byStatus || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "no ticket"),
      csv("summary", "the summary"))));
  }
  // Volume is a list of {bucket (Unix seconds, start of the UTC day), count}.
  if (Array.isArray(volume)) {
    const counts = new Map(volume.map((p) => [p.bucket, p.count]));
    const days = [];
    for (let day = Math.floor(from / 86400) * 86400; day < to; day += 86400) days.push([dayLabel(day), counts.get(day) || 0]);
    out.append(card("Tickets per day",
      volume.length ? barChart(days) : h("p", { class: "muted" }, "No ticket in this period."),
      csv("volume", "tickets per day", { interval: "day" })));
  }
  // Response times: {firstResponse, resolution: {count, median, p90} in seconds, byAgent: […]}.
  if (times) {
    const rows = [
      ["First response, median", times.firstResponse.median, "median", "first"], ["First response, 90th percentile", times.firstResponse.p90, "p90", "first"],
      ["Resolution, median", times.resolution.median, "median", "resolution"], ["Resolution, 90th percentile", times.resolution.p90, "p90", "resolution"],
    ];
    out.append(card("Response times",
      times.firstResponse.count || times.resolution.count ? hbarChart("Response times", rows) : h("p", { class: "muted" }, "No answered or resolved ticket in this period."),
      h("p", { class: "small muted" }, `Over ${times.firstResponse.count} first response(s) and ${times.resolution.count} resolution(s); first response and resolution each on their own scale.`),
      csv("response-times", "response times")));
  }
  // Per agent: the agents report beside each one's response times.
  if (Array.isArray(people)) {
    const timesOf = new Map((times?.byAgent || []).map((g) => [g.agentId, g]));
    const none = { median: null, p90: null };
    const rows = people.map((a) => {
      const t = timesOf.get(a.agentId) || { firstResponse: none, resolution: none };
      return h("tr", {}, h("td", {}, a.name || a.email),
        [a.assigned, a.replied, a.closed].map((v) => h("td", { class: "num" }, String(v))),
        [t.firstResponse.median, t.firstResponse.p90, t.resolution.median, t.resolution.p90].map((v) => h("td", { class: "num" }, duration(v))));
    });
    out.append(wide(card("Agents",
      h("div", { class: "scroll-x" }, table(["Agent", "Assigned", "Replied", "Closed", "First response, median", "First response, p90", "Resolution, median", "Resolution, p90"], rows, "Agents")),
      csv("agents", "the agents report"))));
  }
  if (!out.children.length) out.append(h("p", { class: "error" }, "The reports could not be loaded."));
}

// Buckets are UTC days.
const dayLabel = (ts) => new Date(ts * 1000).toLocaleDateString(undefined, { timeZone: "UTC", month: "short", day: "numeric" });

// Seconds as a short duration: "45 s", "12 min", "3 h 5 min", "2 d 4 h"; no value is "–".
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
  return `${Math.floor(s / 86400)} d${s % 86400 >= 3600 ? ` ${Math.floor((s % 86400) / 3600)} h` : ""}`;
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, String(v)));
  if (text !== undefined) el.textContent = text;
  return el;
}

// Tickets per day: one bar per day of the period (days without tickets are zero). Geometry is
// in percent of the width and pixels of the height, so the text keeps its size at any width.
function barChart(points) {
  const max = Math.max(1, ...points.map((p) => p[1]));
  const top = 18;
  const hgt = 140;
  const step = 100 / Math.max(points.length, 1);
  const svg = svgEl("svg", { width: "100%", height: top + hgt + 22, class: "chart", role: "img", "aria-label": `Tickets per day: ${points.map((p) => `${p[0]} ${p[1]}`).join(", ")}` });
  svg.append(svgEl("text", { x: 0, y: 12 }, `${max} max`), svgEl("line", { x1: 0, x2: "100%", y1: top + hgt, y2: top + hgt }));
  points.forEach(([label, value], i) => {
    const bh = (value / max) * hgt;
    const r = svgEl("rect", { x: `${i * step + step * 0.1}%`, y: top + hgt - bh, width: `${step * 0.8}%`, height: bh });
    r.append(svgEl("title", {}, `${label}: ${value}`));
    svg.append(r);
  });
  svg.append(svgEl("text", { x: 0, y: top + hgt + 16 }, points[0][0]), svgEl("text", { x: "100%", y: top + hgt + 16, "text-anchor": "end" }, points[points.length - 1][0]));
  return svg;
}

// Horizontal bars of durations, rows of [label, seconds, series, scale]: the label above each
// bar, the value beside it; rows of one scale share it. The accessible name describes it all.
function hbarChart(title, rows) {
  const maxOf = (scale) => Math.max(1, ...rows.filter((r) => r[3] === scale).map((r) => r[1] || 0));
  const rowH = 46;
  const svg = svgEl("svg", { width: "100%", height: rows.length * rowH, class: "chart hchart", role: "img",
    "aria-label": `${title}: ${rows.map(([label, v]) => `${label} ${duration(v)}`).join(", ")}` });
  rows.forEach(([label, value, series, scale], i) => {
    const y = i * rowH;
    const w = value ? Math.max((value / maxOf(scale)) * 78, 0.5) : 0;
    svg.append(svgEl("text", { x: 0, y: y + 14 }, label),
      svgEl("rect", { x: 0, y: y + 20, width: `${w}%`, height: 16, class: series }),
      svgEl("text", { x: `${w + 1}%`, y: y + 33 }, duration(value)));
  });
  return svg;
}
