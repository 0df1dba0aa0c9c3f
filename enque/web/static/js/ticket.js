// The ticket page: thread, reply/note composer (canned replies, attachments, schedule send,
// signature preview, @mentions), side panel, customer panel, activity, merge, presence.

import { PRIORITIES, STATUSES, all, api, features, lookup, session } from "./api.js";
import { clear, dialog, field, h, safeHtml, select, textToHtml, timeEl, toast } from "./dom.js";
import { statusPill } from "./inbox.js";
import * as live from "./realtime.js";

const KIND_LABEL = { customer: "Customer", reply: "Reply", note: "Internal note", system: "System" };

function author(c) {
  const a = c.author || {};
  return a.name || a.displayName || a.email || (c.kind === "customer" ? "Customer" : "Agent");
}

function attachmentList(items) {
  if (!items || !items.length) return null;
  return h("ul", { class: "attachments", "aria-label": "Attachments" }, items.map((a) => {
    const url = `/v1/attachments/${a.id}/content`;
    const isImage = /^image\/(png|jpeg|gif|webp)$/.test(a.contentType || "");
    const link = h("a", { href: "#", class: "attachment", "data-id": a.id }, isImage ? h("img", { alt: a.fileName, loading: "lazy" }) : null, ` ${a.fileName} (${Math.ceil((a.size || 0) / 1024)} KB)`);
    // Content needs the bearer token: fetch it, then hand the browser a blob URL.
    const fetchBlob = () => fetch(url, { headers: { Authorization: `Bearer ${session.token}` } }).then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.blob();
    });
    if (isImage) fetchBlob().then((b) => { link.querySelector("img").src = URL.createObjectURL(b); }).catch(() => {});
    link.addEventListener("click", async (e) => {
      e.preventDefault();
      try {
        const blob = await fetchBlob();
        const a2 = h("a", { href: URL.createObjectURL(blob), download: a.fileName });
        document.body.append(a2);
        a2.click();
        a2.remove();
      } catch (err) {
        toast(`Download failed: ${err.message}`, "error");
      }
    });
    return h("li", {}, link);
  }));
}

// Images of received mail point to their stored files, which need the bearer token too.
function loadStoredImages(body) {
  body.querySelectorAll('img[src^="/v1/attachments/"]').forEach((img) => {
    const url = img.getAttribute("src");
    img.removeAttribute("src");
    fetch(url, { headers: { Authorization: `Bearer ${session.token}` } })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((b) => { img.src = URL.createObjectURL(b); })
      .catch(() => {});
  });
  return body;
}

function message(c) {
  const kind = c.kind || "customer";
  const delivery = c.delivery && kind === "reply"
    ? h("span", { class: `delivery ${c.delivery}` }, c.delivery === "failed" ? `Delivery failed${c.deliveryError ? `: ${c.deliveryError}` : ""}` : c.delivery)
    : null;
  return h("li", { class: `msg k-${kind}`, dataset: { id: c.id, kind }, "aria-label": `${KIND_LABEL[kind] || kind} from ${author(c)}` },
    h("div", { class: "msg-head" }, h("span", { class: "kind" }, KIND_LABEL[kind] || kind), h("strong", {}, author(c)), timeEl(c.createdAt), delivery),
    loadStoredImages(h("div", { class: "msg-body" }, safeHtml(c.content || ""))),
    attachmentList(c.attachments));
}

export async function renderTicket(main, ticketId, hashParams) {
  const paths = await features();
  let ticket = await api.get(`/tickets/${ticketId}`);
  const me = session.me;
  const [agents, teams, categories] = await Promise.all([lookup("agents"), lookup("teams"), lookup("categories")]);
  const disposers = [];

  // ---- header + thread
  const presenceEl = h("p", { class: "presence", id: "presence", role: "status", "aria-live": "polite" });
  const title = h("h1", { id: "ticket-title" });
  const headPill = h("span", {});
  const thread = h("ol", { class: "thread", id: "thread", "aria-label": "Conversation" });
  const first = {
    id: "body", kind: "customer", author: { name: ticket.customer?.name || ticket.customer?.email }, content: ticket.body?.content, createdAt: ticket.createdAt, attachments: ticket.body?.attachments || [],
  };
  thread.append(message(first));
  // A comment can arrive twice (the POST's answer and the socket) and in any order (a slow
  // answer after a later event): each is shown once, in (createdAt, id) order — ids are UUIDv7.
  const seenComments = new Map();
  const before = (a, b) => a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
  const addComment = (c) => {
    if (seenComments.has(c.id)) return;
    seenComments.set(c.id, c);
    const next = [...thread.children].find((el) => seenComments.has(el.dataset.id) && before(c, seenComments.get(el.dataset.id)));
    thread.insertBefore(message(c), next || null);
  };
  // Listening before the list is fetched: a comment made meanwhile is not missed.
  disposers.push(live.on("comment.created", (p) => {
    if (p.ticketId === ticketId && p.comment) addComment(p.comment);
  }));
  try {
    (await all(`/tickets/${ticketId}/comments`, {}, 20)).forEach(addComment);
  } catch (e) {
    disposers.forEach((d) => d());
    throw e;
  }
  // Answers can come back out of order (a GET sent before a PATCH, an event before the
  // POST's answer): an older version of the ticket never replaces a newer one.
  const adopt = (next) => {
    if (next && (next.version ?? 0) >= (ticket.version ?? 0)) ticket = { ...ticket, ...next };
  };
  // A comment being sent changes the ticket (its version too): a change of a field waits for
  // it, so it is not refused as a conflict with the agent's own message.
  let sending = Promise.resolve();

  function paintHead() {
    clear(title, h("span", { class: "num" }, `#${ticket.number}`), " ", ticket.subject);
    clear(headPill, statusPill(ticket.status));
  }
  paintHead();

  // ---- composer
  const composer = buildComposer();

  // ---- side panel
  const side = h("aside", { class: "side", "aria-label": "Ticket details" });
  const props = buildProperties();
  side.append(props.el, await customerPanel(), activityPanel());

  const mergeBtn = h("button", { type: "button", id: "merge", onclick: openMerge }, "Merge…");
  const closeBtn = h("button", { type: "button", id: "close-ticket", class: "primary", onclick: () => patch({ status: ticket.status === "Closed" ? "Open" : "Closed" }) });
  const paintClose = () => { closeBtn.textContent = ticket.status === "Closed" ? "Reopen" : "Close ticket"; };
  paintClose();

  clear(main, h("div", { class: "ticket-page" },
    h("section", { "aria-labelledby": "ticket-title" },
      h("p", {}, h("a", { href: "#/inbox/open" }, "← Inbox")),
      h("div", { class: "ticket-head" }, title, headPill, h("div", { class: "spacer" }), closeBtn, mergeBtn),
      ticket.mergedIntoTicketId ? h("p", { class: "muted" }, "Merged into ", h("a", { href: `#/tickets/${ticket.mergedIntoTicketId}` }, "another ticket")) : null,
      presenceEl,
      thread,
      composer.el),
    side));

  if (!ticket.isRead) api.patch(`/tickets/${ticketId}`, { isRead: true }).then(adopt).catch(() => {});
  if (hashParams?.get("reply")) composer.focus("reply");

  // ---- live: comments, updates, presence
  live.subscribe(`ticket:${ticketId}`);
  const viewers = new Map();
  const paintPresence = () => {
    const names = [...viewers.entries()].filter(([id]) => id !== me.agent.id).map(([id, s]) => {
      const a = agents.find((x) => x.id === id);
      return `${a ? a.displayName : "Someone"} is ${s === "typing" ? "typing" : "viewing"}`;
    });
    presenceEl.textContent = names.join(" · ");
  };
  const sendViewing = () => live.presence(ticketId, "viewing");
  sendViewing();
  disposers.push(live.on("open", () => { live.subscribe(`ticket:${ticketId}`); sendViewing(); }));
  const loadViewers = () => {
    if (!paths.has("/v1/tickets/{ticket_id}/viewers")) return;
    api.get(`/tickets/${ticketId}/viewers`).then((list) => {
      (list || []).forEach((v) => viewers.set(v.agentId || v.id, v.state || "viewing"));
      paintPresence();
    }).catch(() => {});
  };
  loadViewers();
  // read again once the server has the subscription: presence sent between the first read
  // and the subscription would otherwise be missed
  disposers.push(live.on("subscribed", (p) => {
    if (p.channel === `ticket:${ticketId}`) loadViewers();
  }));
  disposers.push(live.on("presence", (p) => {
    if (p.ticketId !== ticketId) return;
    if (p.state === "left") viewers.delete(p.agentId);
    else viewers.set(p.agentId, p.state);
    paintPresence();
  }));
  disposers.push(live.on("comment.delivery", (p) => {
    if (p.ticketId !== ticketId) return;
    const el = thread.querySelector(`[data-id="${p.commentId}"] .delivery`);
    if (el) {
      el.textContent = p.delivery;
      el.className = `delivery ${p.delivery}`;
    }
  }));
  disposers.push(live.on("ticket.updated", (p) => {
    if (p.id !== ticketId || !p.ticket) return;
    adopt(p.ticket);
    paintHead();
    paintClose();
    props.paint();
  }));
  disposers.push(live.on("ticket.merged", (p) => {
    if (p.id === ticketId) toast("This ticket was merged into another one.");
  }));

  async function patch(body) {
    await sending;
    try {
      adopt(await api.patch(`/tickets/${ticketId}`, { ...body, version: ticket.version }));
      paintHead();
      paintClose();
      props.paint();
      toast("Saved");
    } catch (e) {
      if (e.status === 409) {
        adopt(await api.get(`/tickets/${ticketId}`));
        props.paint();
        toast("Someone else changed this ticket; reloaded it. Try again.", "error");
      } else {
        toast(e.message, "error");
      }
    }
  }

  function buildProperties() {
    const status = select(STATUSES.map((s) => [s, s]), ticket.status, { id: "p-status" });
    const priority = select(PRIORITIES.map((s) => [s, s]), ticket.priority, { id: "p-priority" });
    const assignee = select([["", "Unassigned"], ...agents.filter((a) => a.isActive).map((a) => [a.id, a.id === me.agent.id ? `${a.displayName} (me)` : a.displayName])], ticket.assignee?.id, { id: "p-assignee" });
    const team = select([["", "No team"], ...teams.map((t) => [t.id, t.name])], ticket.team?.id, { id: "p-team" });
    const category = select([["", "No category"], ...categories.map((c) => [c.id, c.name])], ticket.category?.id, { id: "p-category" });
    const tags = h("input", { type: "text", id: "p-tags", value: (ticket.tags || []).join(", ") });
    status.addEventListener("change", () => patch({ status: status.value }));
    priority.addEventListener("change", () => patch({ priority: priority.value }));
    assignee.addEventListener("change", () => patch({ assigneeId: assignee.value || null }));
    team.addEventListener("change", () => patch({ teamId: team.value || null }));
    category.addEventListener("change", () => patch({ categoryId: category.value || null }));
    tags.addEventListener("change", () => patch({ tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean) }));
    const el = h("section", { class: "card", "aria-labelledby": "props-title" },
      h("h2", { id: "props-title" }, "Properties"),
      field("Status", status), field("Priority", priority), field("Assignee", assignee), field("Team", team), field("Category", category),
      field("Tags", tags, "Comma separated"));
    return {
      el,
      paint() {
        status.value = ticket.status;
        priority.value = ticket.priority;
        assignee.value = ticket.assignee?.id || "";
        team.value = ticket.team?.id || "";
        category.value = ticket.category?.id || "";
        tags.value = (ticket.tags || []).join(", ");
      },
    };
  }

  async function customerPanel() {
    const c = ticket.customer || {};
    const others = h("ul", { class: "mini-list", id: "customer-tickets" });
    const el = h("section", { class: "card", "aria-labelledby": "cust-title" },
      h("h2", { id: "cust-title" }, "Customer"),
      h("p", {}, h("strong", {}, c.name || ""), h("br"), h("a", { href: `mailto:${c.email}` }, c.email || "")),
      ticket.company ? h("p", {}, "Company: ", ticket.company.name) : null,
      h("h3", {}, "Other tickets"), others);
    const listFor = ticket.company ? `/companies/${ticket.company.id}/tickets` : `/users/${c.id}/tickets`;
    if (c.id) {
      api.page(listFor, { limit: 6 }).then(({ data }) => {
        const rest = data.filter((t) => t.id !== ticketId).slice(0, 5);
        clear(others, rest.length ? rest.map((t) => h("li", {}, h("a", { href: `#/tickets/${t.id}` }, `#${t.number} ${t.subject}`), " ", statusPill(t.status))) : h("li", { class: "muted" }, "None"));
      }).catch(() => clear(others, h("li", { class: "muted" }, "Unavailable")));
    }
    return el;
  }

  function activityPanel() {
    const list = h("ol", { class: "timeline", id: "activity" });
    const el = h("details", { class: "card" }, h("summary", {}, h("h2", { class: "inline" }, "Activity")), list);
    el.addEventListener("toggle", async () => {
      if (!el.open) return;
      clear(list, h("li", {}, "Loading…"));
      try {
        const items = await all(`/tickets/${ticketId}/activities`, {}, 5);
        clear(list, items.map((a) => h("li", {}, h("strong", {}, a.actor?.name || a.actor?.type || "system"), " ", describe(a), " ", timeEl(a.createdAt))));
      } catch (e) {
        clear(list, h("li", {}, e.message));
      }
    });
    return el;
  }

  function describe(a) {
    if (a.verb === "ticket.updated" && a.after) {
      return Object.entries(a.after).map(([k, v]) => `set ${k} to ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
    }
    return a.verb.replace(".", " ");
  }

  function openMerge() {
    const input = h("input", { type: "search", id: "merge-search", placeholder: "Ticket number or words", autocomplete: "off" });
    const results = h("ul", { class: "picker", id: "merge-results" });
    const chosen = new Set();
    const confirm = h("button", { type: "button", class: "primary", id: "merge-confirm", disabled: true }, "Merge into this ticket");
    const run = async () => {
      const q = input.value.trim().replace(/^#/, "");
      if (!q) return;
      const { data } = await api.page("/tickets", { q, limit: 20 });
      clear(results, data.filter((t) => t.id !== ticketId).map((t) => {
        const box = h("input", { type: "checkbox", id: `m-${t.id}` });
        box.addEventListener("change", () => {
          if (box.checked) chosen.add(t.id);
          else chosen.delete(t.id);
          confirm.disabled = chosen.size === 0;
        });
        return h("li", {}, box, h("label", { for: `m-${t.id}` }, ` #${t.number} ${t.subject} — ${t.customer?.email || ""}`));
      }));
      if (!results.children.length) results.append(h("li", { class: "muted" }, "No other ticket found."));
    };
    input.addEventListener("input", () => { clearTimeout(input._t); input._t = setTimeout(run, 250); });
    const dlg = dialog("Merge tickets", h("div", {},
      h("p", {}, "The chosen tickets' messages move into this one; they are marked merged."),
      field("Find tickets", input), results, confirm));
    confirm.addEventListener("click", async () => {
      try {
        adopt(await api.post(`/tickets/${ticketId}/merge`, { sourceTicketIds: [...chosen] }));
        dlg.close();
        toast(`${chosen.size} ticket(s) merged`);
        clear(thread);
        seenComments.clear();
        thread.append(message(first));
        (await all(`/tickets/${ticketId}/comments`, {}, 20)).forEach(addComment);
      } catch (e) {
        toast(e.message, "error");
      }
    });
    input.focus();
  }

  function buildComposer() {
    let mode = "reply";
    const editor = h("div", { class: "editor", id: "editor", contenteditable: "true", role: "textbox", "aria-multiline": "true", "aria-label": "Reply", "data-placeholder": "Write your reply…" });
    const tabReply = h("button", { type: "button", role: "tab", id: "tab-reply", "aria-selected": "true", "aria-controls": "editor" }, "Reply");
    const tabNote = h("button", { type: "button", role: "tab", id: "tab-note", "aria-selected": "false", "aria-controls": "editor" }, "Internal note");
    const sendStatus = select([["", "Keep status"], ["With User", "Set With User"], ["Closed", "Set Closed"], ["In Progress", "Set In Progress"]], "", { "aria-label": "Status after sending", id: "send-status" });
    const send = h("button", { type: "button", class: "primary", id: "send" }, "Send reply");
    const signature = h("div", { class: "signature", id: "signature-preview", hidden: true });
    const files = h("ul", { class: "attachments", id: "pending-files" });
    const pending = [];
    const fileInput = h("input", { type: "file", multiple: true, id: "file-input", class: "visually-hidden", tabindex: "-1", "aria-label": "Attach files" });
    const attachBtn = h("button", { type: "button", id: "attach", hidden: !paths.has("/v1/attachments"), onclick: () => fileInput.click() }, "Attach files");
    const scheduleAt = h("input", { type: "datetime-local", id: "schedule-at" });
    const scheduleBtn = h("button", { type: "button", id: "schedule" }, "Schedule");
    const scheduleBox = h("div", { class: "form-row", hidden: !paths.has("/v1/tickets/{ticket_id}/scheduled-replies") }, field("Send later at", scheduleAt), scheduleBtn);
    const scheduledList = h("ul", { class: "mini-list", id: "scheduled" });
    const cannedBtn = h("button", { type: "button", id: "canned", hidden: !paths.has("/v1/canned-replies"), "aria-haspopup": "dialog" }, "Canned reply");

    const setMode = (next) => {
      mode = next;
      tabReply.setAttribute("aria-selected", String(next === "reply"));
      tabNote.setAttribute("aria-selected", String(next === "note"));
      editor.classList.toggle("note-mode", next === "note");
      editor.setAttribute("aria-label", next === "note" ? "Internal note" : "Reply");
      editor.dataset.placeholder = next === "note" ? "Write an internal note… use @name to mention" : "Write your reply…";
      send.textContent = next === "note" ? "Add note" : "Send reply";
      sendStatus.hidden = next === "note";
      signature.hidden = next === "note" || !signature.textContent;
      scheduleBox.hidden = next === "note" || !paths.has("/v1/tickets/{ticket_id}/scheduled-replies");
    };
    tabReply.addEventListener("click", () => setMode("reply"));
    tabNote.addEventListener("click", () => setMode("note"));

    // Signature preview, as the server appends it: the workspace's (when enabled), then the agent's own.
    api.get("/profile").then(async (p) => {
      const ws = paths.has("/v1/signatures/workspace") ? await api.get("/signatures/workspace").catch(() => null) : null;
      const parts = [ws?.isEnabled && ws.content ? ws.content : "", p?.signature || ""].filter(Boolean);
      if (parts.length) {
        signature.replaceChildren(h("span", { class: "visually-hidden" }, "Signature: "), ...parts.map((sig) => h("div", {}, safeHtml(sig))));
        signature.hidden = mode !== "reply";
      }
    }).catch(() => {});

    function content() {
      const html = editor.innerHTML.trim();
      if (!editor.textContent.trim() && !editor.querySelector("img")) return "";
      return /<(p|div|br|ul|ol|blockquote|a|strong|em)\b/i.test(html) ? html : textToHtml(editor.innerText);
    }

    function mentions() {
      const text = editor.innerText.replace(/\u00a0/g, " ");
      return agents.filter((a) => text.includes(`@${a.displayName}`)).map((a) => a.id);
    }

    async function upload(list) {
      for (const file of list) {
        const form = new FormData();
        form.append("file", file);
        form.append("ticketId", ticketId);
        const li = h("li", {}, `${file.name} — uploading…`);
        files.append(li);
        try {
          const res = await fetch("/v1/attachments", { method: "POST", body: form, headers: { Authorization: `Bearer ${session.token}` } });
          const body = await res.json().catch(() => ({}));
          if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
          pending.push(body.data.id);
          clear(li, `📎 ${body.data.fileName}`, h("button", { type: "button", class: "icon", "aria-label": `Remove ${body.data.fileName}`, onclick: () => {
            pending.splice(pending.indexOf(body.data.id), 1);
            li.remove();
          } }, "×"));
        } catch (e) {
          li.remove();
          toast(`${file.name}: ${e.message}`, "error");
        }
      }
    }
    fileInput.addEventListener("change", () => { upload([...fileInput.files]); fileInput.value = ""; });
    if (paths.has("/v1/attachments")) {
      editor.addEventListener("dragover", (e) => { e.preventDefault(); editor.classList.add("dragging"); });
      editor.addEventListener("dragleave", () => editor.classList.remove("dragging"));
      editor.addEventListener("drop", (e) => {
        e.preventDefault();
        editor.classList.remove("dragging");
        if (e.dataTransfer?.files?.length) upload([...e.dataTransfer.files]);
      });
    }

    // @mentions in notes: a list of matching agents under the editor, picked by arrow keys,
    // Enter/Tab or a click; the note carries the ids of the agents named.
    const mentionBox = h("ul", { class: "picker mention-list", role: "listbox", id: "mention-list", "aria-label": "Mention an agent", hidden: true });
    let mentionAt = null;
    let mentionIndex = 0;
    const mentionQuery = () => {
      const sel = getSelection();
      const node = sel?.anchorNode;
      if (!node || node.nodeType !== Node.TEXT_NODE || !editor.contains(node)) return null;
      const before = node.textContent.slice(0, sel.anchorOffset);
      const m = before.match(/(?:^|\s)@([^\s@]{0,30})$/);
      return m ? { node, start: sel.anchorOffset - m[1].length - 1, end: sel.anchorOffset, term: m[1].toLowerCase() } : null;
    };
    const mentionOptions = () => [...mentionBox.querySelectorAll("[role=option]")];
    const paintMentionActive = () => mentionOptions().forEach((li, i) => {
      li.setAttribute("aria-selected", String(i === mentionIndex));
      if (i === mentionIndex) editor.setAttribute("aria-activedescendant", li.id);
    });
    const hideMentions = () => {
      mentionBox.hidden = true;
      mentionAt = null;
      editor.removeAttribute("aria-activedescendant");
    };
    const pickMention = (agent) => {
      const q = mentionAt;
      if (!q) return;
      const text = q.node.textContent;
      const insert = `@${agent.displayName}\u00a0`;
      q.node.textContent = text.slice(0, q.start) + insert + text.slice(q.end);
      const range = document.createRange();
      range.setStart(q.node, q.start + insert.length);
      range.collapse(true);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      hideMentions();
    };
    editor.addEventListener("input", () => {
      if (mode !== "note") return;
      const q = mentionQuery();
      const found = q ? agents.filter((a) => a.isActive && a.displayName.toLowerCase().split(/\s+/).some((w) => w.startsWith(q.term))).slice(0, 6) : [];
      if (!found.length) {
        hideMentions();
        return;
      }
      mentionAt = q;
      mentionIndex = 0;
      clear(mentionBox, found.map((a, i) => {
        const li = h("li", { role: "option", id: `mention-${i}` }, a.displayName);
        li.addEventListener("mousedown", (e) => {
          e.preventDefault();
          pickMention(a);
        });
        li._agent = a;
        return li;
      }));
      mentionBox.hidden = false;
      paintMentionActive();
    });
    editor.addEventListener("keydown", (e) => {
      if (mentionBox.hidden) return;
      const options = mentionOptions();
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        mentionIndex = (mentionIndex + (e.key === "ArrowDown" ? 1 : -1) + options.length) % options.length;
        paintMentionActive();
      } else if (e.key === "Enter" || e.key === "Tab") {
        pickMention(options[mentionIndex]._agent);
      } else if (e.key === "Escape") {
        hideMentions();
      } else {
        return;
      }
      e.preventDefault();
    });
    editor.addEventListener("blur", () => setTimeout(hideMentions, 150));

    let typingTimer = null;
    editor.addEventListener("input", () => {
      if (!typingTimer) live.presence(ticketId, "typing");
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => { typingTimer = null; live.presence(ticketId, "viewing"); }, 4000);
    });

    // The draft leaves the composer when it is sent: the socket may show the message before the
    // POST answers, and whatever is typed next must not be wiped by that answer. A failed send
    // puts the draft back, before anything typed since.
    const takeDraft = () => {
      const draft = { mode, html: editor.innerHTML, ids: [...pending], files: [...files.children], status: sendStatus.value };
      editor.innerHTML = "";
      pending.length = 0;
      clear(files);
      return draft;
    };
    const restoreDraft = (draft) => {
      setMode(draft.mode);
      editor.innerHTML = draft.html + editor.innerHTML;
      pending.unshift(...draft.ids);
      files.prepend(...draft.files);
      sendStatus.value = draft.status;
    };

    send.addEventListener("click", () => { sending = sendDraft(); });
    async function sendDraft() {
      const html = content();
      if (!html) {
        toast("Write something first.");
        editor.focus();
        return;
      }
      const mentioned = mentions();
      const draft = takeDraft();
      const attachmentIds = draft.ids.length ? draft.ids : undefined;
      send.disabled = true;
      try {
        const comment = draft.mode === "note"
          ? await api.post(`/tickets/${ticketId}/notes`, { content: html, attachmentIds, mentions: mentioned })
          : await api.post(`/tickets/${ticketId}/reply`, { content: html, attachmentIds, status: draft.status || undefined });
        addComment(comment);
        toast(draft.mode === "note" ? "Note added" : "Reply sent");
      } catch (e) {
        restoreDraft(draft);
        toast(e.message, "error");
        return;
      } finally {
        send.disabled = false;
      }
      adopt(await api.get(`/tickets/${ticketId}`).catch(() => null));
      paintHead();
      paintClose();
      props.paint();
    }

    async function loadScheduled() {
      try {
        const { data } = await api.page(`/tickets/${ticketId}/scheduled-replies`, { limit: 50 });
        // status: pending | sending | sent | cancelled | failed
        clear(scheduledList, data.filter((s) => s.status === "pending" || s.status === "failed").map((s) => h("li", {},
          s.status === "failed" ? `Failed to send (${s.lastError || "error"}), was scheduled for ` : "Scheduled for ", new Date(s.sendAt * 1000).toLocaleString(), " ",
          h("button", { type: "button", class: "ghost", onclick: async () => { await api.del(`/scheduled-replies/${s.id}`).catch((e) => toast(e.message, "error")); loadScheduled(); } }, "Cancel"))));
      } catch {
        scheduleBox.hidden = true;
      }
    }
    if (!scheduleBox.hidden) loadScheduled();
    scheduleBtn.addEventListener("click", async () => {
      const html = content();
      const when = scheduleAt.value ? Math.floor(new Date(scheduleAt.value).getTime() / 1000) : 0;
      if (!html || !when) {
        toast("Write the reply and pick a time.");
        return;
      }
      const draft = takeDraft();
      try {
        await api.post(`/tickets/${ticketId}/scheduled-replies`, { content: html, sendAt: when, attachmentIds: draft.ids.length ? draft.ids : undefined });
        toast("Reply scheduled");
        loadScheduled();
      } catch (e) {
        restoreDraft(draft);
        toast(e.message, "error");
      }
    });

    cannedBtn.addEventListener("click", () => {
      const q = h("input", { type: "search", id: "canned-search", placeholder: "Name or shortcut", autocomplete: "off" });
      const out = h("ul", { class: "picker", id: "canned-results" });
      const dlg = dialog("Insert a canned reply", h("div", {}, field("Search", q), out));
      const run = async () => {
        try {
          const { data } = await api.page("/canned-replies", { q: q.value.trim() || undefined, limit: 30 });
          const term = q.value.trim().toLowerCase();
          const rows = data.filter((c) => !term || `${c.name} ${c.shortcut || ""}`.toLowerCase().includes(term));
          clear(out, rows.length ? rows.map((c) => h("li", {}, h("button", { type: "button", onclick: async () => {
            try {
              const r = await api.post(`/canned-replies/${c.id}/render`, { ticketId });
              editor.focus();
              editor.append(safeHtml(r.content));
              dlg.close();
              editor.focus();
            } catch (e) {
              toast(e.message, "error");
            }
          } }, h("strong", {}, c.name), c.shortcut ? ` /${c.shortcut}` : ""))) : h("li", { class: "muted" }, "No canned reply found."));
        } catch (e) {
          clear(out, h("li", {}, e.message));
        }
      };
      q.addEventListener("input", () => { clearTimeout(q._t); q._t = setTimeout(run, 200); });
      run();
    });

    const el = h("section", { class: "composer", "aria-label": "Compose" },
      h("div", { class: "tabs", role: "tablist", "aria-label": "Message type" }, tabReply, tabNote),
      editor, mentionBox, signature, files,
      h("div", { class: "composer-actions" }, send, sendStatus, cannedBtn, fileInput, attachBtn),
      scheduleBox, scheduledList);
    return {
      el,
      focus(which) {
        setMode(which);
        editor.focus();
      },
    };
  }

  return {
    dispose() {
      live.presence(ticketId, "left");
      live.unsubscribe(`ticket:${ticketId}`);
      disposers.forEach((d) => d());
    },
    key(event) {
      if (event.key === "r") composer.focus("reply");
      else if (event.key === "n") composer.focus("note");
      else if (event.key === "e") patch({ status: "Closed" });
      else if (event.key === "a") patch({ assigneeId: me.agent.id });
      else if (event.key === "u") location.hash = "#/inbox/open";
      else return;
      event.preventDefault();
    },
  };
}
