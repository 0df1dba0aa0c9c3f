// The shell: sign-in, routing (#/inbox/…, #/tickets/…, #/admin/…), the top bar with the
// workspace switcher, live state and notifications bell, and global keyboard shortcuts.

import { all, api, features, forget, session, setUnauthorizedHandler } from "./api.js";
import { clear, dialog, field, h, isTyping, later, screenReady, timeEl, toast } from "./dom.js";
import { renderInbox, sidebar } from "./inbox.js";
import * as live from "./realtime.js";

const root = document.getElementById("app");
let current = null; // the screen now shown: {dispose?, key?(event)}

setUnauthorizedHandler(() => {
  session.token = null;
  session.me = null;
  live.disconnect();
  location.hash = "#/login";
  route();
});

// The server asks for a reload over HTTP after a queue overflow; a revoked token signs out.
live.on("resync", () => route());
live.on("unauthorized", () => {
  session.token = null;
  session.me = null;
  live.disconnect();
  go("#/login");
});

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs || "") };
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function ensureMe() {
  if (session.me || !session.token) return session.me;
  try {
    session.me = await api.get("/auth/me");
  } catch {
    session.token = null;
    session.me = null;
  }
  return session.me;
}

async function route() {
  if (location.pathname === "/reset-password" || location.pathname === "/accept-invitation") {
    renderTokenPage(location.pathname.slice(1), new URLSearchParams(location.search).get("token") || "");
    return;
  }
  if (location.pathname === "/settings/mailboxes") {
    const result = new URLSearchParams(location.search);
    history.replaceState(null, "", "/#/admin/mailboxes");
    setTimeout(() => {
      if (result.get("connected")) toast("Microsoft 365 mailbox connected");
      if (result.get("error")) toast(`Microsoft 365 connection failed: ${result.get("error")}`, "error");
    }, 500);
  }
  if (location.pathname === "/signin") signedInWithMicrosoft();
  const { parts, params } = parseHash();
  if (current?.dispose) current.dispose();
  current = null;
  const me = await ensureMe();
  if (!me) {
    renderLogin(parts[0] === "accept" ? params : null);
    return;
  }
  later(live.connect);
  const main = shell(parts[0] || "inbox");
  root.setAttribute("aria-busy", "false");
  try {
    if (parts[0] === "tickets" && parts[1]) {
      const { renderTicket } = await import("./ticket.js");
      current = await renderTicket(main, parts[1], params);
    } else if (parts[0] === "settings") {
      const { renderSettings } = await import("./settings.js");
      current = await renderSettings(main);
    } else if (parts[0] === "admin") {
      const { renderAdmin } = await import("./admin.js");
      current = await renderAdmin(main, parts[1] || "agents");
    } else {
      current = await renderInbox(main, parts[1] || "open", params);
    }
  } catch (e) {
    console.error(e);
    clear(main, h("div", { class: "empty", role: "alert" }, `Could not load this page: ${e.message}`));
  }
  screenReady();
}

let shellEl = null;
let routed = false;
function shell(section) {
  const me = session.me;
  if (!shellEl || !root.contains(shellEl) || shellEl.dataset.agent !== me.agent.id + me.workspace.id) {
    shellEl = buildShell();
    clear(root, shellEl);
  }
  shellEl.querySelectorAll(".topnav a").forEach((a) => {
    a.toggleAttribute("aria-current", a.dataset.section === section || (section === "tickets" && a.dataset.section === "inbox"));
    if (!a.hasAttribute("aria-current")) a.removeAttribute("aria-current");
    else a.setAttribute("aria-current", "page");
  });
  const side = shellEl.querySelector(".sidebar");
  side.hidden = section === "admin" || section === "settings";
  const main = shellEl.querySelector("main");
  clear(main);
  // After a route change focus moves to the new content; on first load the skip link stays first.
  if (routed) main.focus({ preventScroll: true });
  routed = true;
  return main;
}

function buildShell() {
  const me = session.me;
  const liveBadge = h("span", { class: "live", id: "live-state", role: "status", "aria-live": "polite" }, "offline");
  live.onState((s) => {
    liveBadge.textContent = s === "live" ? "Live" : s === "connecting" ? "Connecting…" : "Offline";
    liveBadge.dataset.state = s;
  });
  const wsPicker = h("select", { id: "workspace-switch", "aria-label": "Workspace", class: "compact" },
    h("option", { value: me.workspace.id }, me.workspace.name));
  later(() => api.get("/workspaces").then((list) => {
    if (!list || list.length < 2) return;
    clear(wsPicker, list.map((w) => h("option", { value: w.id, selected: w.id === me.workspace.id }, w.name)));
  }).catch(() => {}));
  wsPicker.addEventListener("change", () => switchWorkspace(wsPicker.value));

  const isAdmin = me.role === "admin" || me.role === "manager";
  const bell = notificationsBell();
  const el = h("div", { class: "shell", dataset: { agent: me.agent.id + me.workspace.id } },
    h("header", { class: "topbar" },
      h("a", { class: "brand", href: "#/inbox/open" }, h("img", { src: "/assets/favicon.svg", alt: "", width: 22, height: 22 }), "Enque"),
      h("nav", { class: "topnav", "aria-label": "Sections" },
        h("a", { href: "#/inbox/open", dataset: { section: "inbox" } }, "Inbox"),
        isAdmin ? h("a", { href: "#/admin/agents", dataset: { section: "admin" } }, "Admin") : null,
        h("a", { href: "#/settings/notifications", dataset: { section: "settings" } }, "Settings")),
      h("div", { class: "spacer" }),
      liveBadge,
      bell,
      wsPicker,
      h("span", { class: "who", title: me.agent.email }, me.agent.displayName),
      h("button", { type: "button", class: "ghost", id: "sign-out", onclick: signOut }, "Sign out")),
    me.role === "admin" ? mailboxBanner() : null,
    h("div", { class: "layout" },
      sidebar(),
      h("main", { id: "main", tabindex: "-1" })));
  return el;
}

// For admins: a banner while an active mailbox is not healthy (`needs_reconnect`, `error`),
// from the mailbox list and then each `mailbox.status` event, linking to the mailbox screen.
function mailboxBanner() {
  const text = h("span", {});
  const el = h("div", { class: "banner", id: "mailbox-banner", role: "status", hidden: true },
    text, " ", h("a", { href: "#/admin/mailboxes" }, "Open mailbox settings"));
  const boxes = new Map();
  const problem = (m) => (m.state === "needs_reconnect" ? "needs to be reconnected" : `cannot sync${m.lastError ? `: ${m.lastError}` : ""}`);
  const paint = () => {
    const broken = [...boxes.values()].filter((m) => m.isActive && m.state !== "active");
    el.hidden = !broken.length;
    text.textContent = broken.length ? `Mailbox problem — ${broken.map((m) => `${m.email} ${problem(m)}`).join("; ")}.` : "";
  };
  const load = () => all("/mailboxes").then((list) => {
    boxes.clear();
    list.forEach((m) => boxes.set(m.id, m));
    paint();
  }).catch(() => {});
  later(() => features().then((paths) => {
    if (!paths.has("/v1/mailboxes")) return;
    load();
    const offs = [
      live.on("mailbox.status", (p) => {
        const m = boxes.get(p.mailboxId);
        if (!m) load();
        else {
          Object.assign(m, { state: p.state, lastError: p.lastError });
          paint();
        }
      }),
      live.on("open", (e) => { if (e.reconnect) load(); }), // events may have been missed
    ];
    // Pausing, removing or reconnecting a mailbox sends no status event: look again on leaving its screen.
    const onHash = (event) => {
      if (!el.isConnected) {
        offs.forEach((off) => off());
        window.removeEventListener("hashchange", onHash);
      } else if (new URL(event.oldURL).hash.startsWith("#/admin/mailboxes")) load();
    };
    window.addEventListener("hashchange", onHash);
  }));
  return el;
}

function notificationsBell() {
  const count = h("span", { class: "badge", hidden: true }, "0");
  const button = h("button", { type: "button", class: "ghost bell", id: "bell", "aria-label": "Notifications", hidden: true, "aria-haspopup": "dialog" }, "🔔", count);
  let unread = 0;
  const setCount = (n) => {
    unread = n;
    count.textContent = String(n);
    count.hidden = n === 0;
    button.setAttribute("aria-label", n ? `Notifications, ${n} unread` : "Notifications");
  };
  later(() => features().then((paths) => {
    if (!paths.has("/v1/notifications")) return;
    button.hidden = false;
    // meta.unreadCount counts every unread notification, not only this page.
    api.page("/notifications", { limit: 1 }).then(({ data, meta }) => setCount(meta?.unreadCount ?? data.filter((n) => !n.isRead).length)).catch(() => {});
    live.on("notification", (n) => { if (!n.isRead) setCount(unread + 1); });
  }));
  button.addEventListener("click", async () => {
    const list = h("ul", { class: "feed", id: "notifications" }, h("li", {}, "Loading…"));
    const dlg = dialog("Notifications", h("div", {}, list,
      h("div", { class: "form-row" },
        h("button", { type: "button", onclick: async () => {
          const res = await api.post("/notifications/read", { all: true }).catch(() => null);
          if (!res) return;
          setCount(res.unreadCount ?? 0);
          list.querySelectorAll(".unread").forEach((li) => li.classList.remove("unread"));
        } }, "Mark all read"),
        h("a", { href: "#/settings/notifications", onclick: () => dlg.close() }, "Notification settings"))));
    try {
      const { data, meta } = await api.page("/notifications", { limit: 50 });
      if (meta?.unreadCount != null) setCount(meta.unreadCount);
      clear(list, data.length ? data.map((n) => {
        const text = notificationText(n);
        return h("li", { class: n.isRead ? "" : "unread" },
          n.ticketId ? h("a", { href: `#/tickets/${n.ticketId}`, onclick: () => { markRead(n); dlg.close(); } }, text) : text,
          " ", timeEl(n.createdAt));
      }) : h("li", {}, "Nothing new."));
    } catch (e) {
      clear(list, h("li", {}, e.message));
    }
  });
  const markRead = (n) => {
    if (n.isRead) return;
    n.isRead = true;
    api.post("/notifications/read", { ids: [n.id] }).then((res) => setCount(res?.unreadCount ?? Math.max(unread - 1, 0))).catch(() => {});
  };
  return button;
}

const NOTIFICATION_TEXT = {
  "ticket.assigned": "assigned you",
  "ticket.created": "new ticket",
  "customer.replied": "customer replied",
  mention: "mentioned you",
  automation: "automation",
  "sla.warning": "SLA due soon",
  "sla.breached": "SLA breached",
};

// A notification is {event, ticketId, payload: {ticket: {id, number, subject}, actor, …}}.
function notificationText(n) {
  const t = n.payload?.ticket;
  const what = NOTIFICATION_TEXT[n.event] || n.event;
  const who = n.payload?.actor?.name;
  const head = who && n.event !== "ticket.created" ? `${who} ${what}` : what.charAt(0).toUpperCase() + what.slice(1);
  return t ? `${head}: #${t.number} ${t.subject || ""}`.trim() : head;
}

async function switchWorkspace(workspaceId) {
  try {
    const data = await api.post("/auth/switch-workspace", { workspaceId });
    session.token = data.token;
    session.me = null;
    forget();
    live.disconnect();
    go("#/inbox/open");
  } catch (e) {
    toast(e.message, "error");
  }
}

async function signOut() {
  try {
    await api.post("/auth/logout", {});
  } catch {
    /* the token is dropped either way */
  }
  session.token = null;
  session.me = null;
  forget();
  live.disconnect();
  shellEl = null;
  go("#/login");
}

const MICROSOFT_ERRORS = {
  no_account: "No active Enque agent matches that Microsoft account. Ask an admin for an invitation.",
  access_denied: "Microsoft sign-in was cancelled.",
  expired_state: "The sign-in took too long or was already used. Try again.",
  linked_to_another_account: "This agent is linked to another Microsoft account.",
  wrong_tenant: "That Microsoft account belongs to another organisation.",
};

// Back from Microsoft: `/signin#token=…` (the token leaves the address bar and history at once)
// or `/signin?error=…`.
function signedInWithMicrosoft() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const failed = new URLSearchParams(location.search).get("error");
  history.replaceState(null, "", token ? "/#/inbox/open" : "/#/login");
  if (token) {
    session.token = token;
    session.me = null;
  } else if (failed) {
    setTimeout(() => toast(`Microsoft sign-in failed. ${MICROSOFT_ERRORS[failed] || failed}`, "error"), 300);
  }
}

function renderLogin(acceptParams) {
  root.setAttribute("aria-busy", "false");
  shellEl = null;
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true, minlength: 8 });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in to Enque"),
    field("Email", email),
    field("Password", password),
    error,
    submit,
    h("p", { class: "muted" }, h("a", { href: "#/forgot", id: "forgot" }, "Forgot your password?")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const data = await api.post("/auth/login", { email: email.value.trim(), password: password.value });
      session.token = data.token;
      session.me = { agent: data.agent, workspace: data.workspace, role: data.agent.role || data.role };
      session.me = await api.get("/auth/me");
      go(location.hash.startsWith("#/login") || !location.hash ? "#/inbox/open" : location.hash);
    } catch (e) {
      error.textContent = e.status === 401 ? "Email or password is wrong." : e.message;
      error.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  form.querySelector("#forgot").addEventListener("click", async (event) => {
    event.preventDefault();
    if (!email.value) {
      error.textContent = "Enter your email first, then ask for a reset link.";
      error.hidden = false;
      email.focus();
      return;
    }
    await api.post("/auth/password/forgot", { email: email.value.trim() }).catch(() => {});
    toast("If that address has an account, a reset link is on its way.");
  });
  const ms = h("button", { type: "button", class: "ghost", hidden: true, onclick: async () => {
    try {
      const { url } = await api.get("/auth/microsoft");
      location.href = url;
    } catch (e) {
      toast(e.message, "error");
    }
  } }, "Sign in with Microsoft");
  form.append(ms);
  features().then((paths) => {
    ms.hidden = !paths.has("/v1/auth/microsoft");
  });
  clear(root, h("main", { id: "main", class: "center" }, form));
  email.focus();
}

// Links from mail: choose a new password, or accept an invitation (one-time token).
function renderTokenPage(kind, token) {
  root.setAttribute("aria-busy", "false");
  shellEl = null;
  history.replaceState(null, "", `/${kind}`); // the token leaves the address bar and history
  const invite = kind === "accept-invitation";
  const name = h("input", { type: "text", autocomplete: "name" });
  const password = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "card login", "aria-labelledby": "token-title" },
    h("h1", { id: "token-title" }, invite ? "Join your team on Enque" : "Choose a new password"),
    invite ? field("Your name", name) : null,
    field("New password", password, "At least 8 characters"),
    error,
    h("button", { type: "submit", class: "primary" }, invite ? "Accept invitation" : "Set password"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      if (invite) {
        const data = await api.post("/auth/invitations/accept", { token, password: password.value, displayName: name.value.trim() || undefined });
        session.token = data.token;
      } else {
        await api.post("/auth/password/reset", { token, password: password.value });
        toast("Password changed. Sign in with the new one.");
      }
      history.replaceState(null, "", "/");
      go(invite ? "#/inbox/open" : "#/login");
    } catch (e) {
      error.textContent = e.status === 404 || e.status === 400 || e.status === 401 ? "This link is no longer valid: ask for a new one." : e.message;
      error.hidden = false;
    }
  });
  clear(root, h("main", { id: "main", class: "center" }, form));
  (invite ? name : password).focus();
}

// Global shortcuts: "/" search, others go to the current screen.
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "Escape" && isTyping(event) && event.target.id === "search") {
    event.target.blur();
    return;
  }
  if (isTyping(event) || document.querySelector("dialog[open]")) return;
  if (event.key === "/") {
    const search = document.getElementById("search");
    if (search) {
      event.preventDefault();
      search.focus();
      search.select();
    }
    return;
  }
  if (event.key === "?") {
    event.preventDefault();
    dialog("Keyboard shortcuts", h("dl", { class: "keys" },
      [["j / k", "next / previous ticket"], ["Enter / o", "open ticket"], ["x", "select ticket"], ["e", "close ticket"],
        ["a", "assign to me"], ["r", "reply"], ["/", "search"], ["g i", "back to inbox"]].map(([k, v]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, v)])));
    return;
  }
  if (current?.key) current.key(event);
});

window.addEventListener("hashchange", route);
route();
