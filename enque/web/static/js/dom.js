// Tiny DOM helpers: element builder, escaping, dates, toasts.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" && "value" in el) {
      el.value = value;
    } else if (key === "checked" || key === "selected" || key === "disabled") {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
export function id(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled form control: returns [label, control].
export function field(label, control, hint) {
  if (!control.id) control.id = id();
  const wrap = h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  if (hint) {
    const hintId = id("hint");
    control.setAttribute("aria-describedby", hintId);
    wrap.append(h("small", { id: hintId, class: "hint" }, hint));
  }
  return wrap;
}

export function select(options, value, attrs = {}) {
  return h(
    "select",
    attrs,
    options.map(([v, label]) => h("option", { value: v, selected: String(v) === String(value ?? "") }, label)),
  );
}

// The API serves sanitized HTML; this is a second line of defence before insertion.
const DROP = new Set(["SCRIPT", "STYLE", "IFRAME", "OBJECT", "EMBED", "FORM", "LINK", "META", "BASE"]);
export function safeHtml(html) {
  const tpl = document.createElement("template");
  tpl.innerHTML = html || "";
  const walker = document.createTreeWalker(tpl.content, NodeFilter.SHOW_ELEMENT);
  const doomed = [];
  while (walker.nextNode()) {
    const el = walker.currentNode;
    if (DROP.has(el.tagName)) {
      doomed.push(el);
      continue;
    }
    for (const attr of [...el.attributes]) {
      const name = attr.name.toLowerCase();
      const val = attr.value.trim().toLowerCase();
      if (name.startsWith("on") || name === "style" || ((name === "href" || name === "src") && val.startsWith("javascript:"))) {
        el.removeAttribute(attr.name);
      }
    }
    if (el.tagName === "A") {
      el.setAttribute("target", "_blank");
      el.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
  doomed.forEach((el) => el.remove());
  return tpl.content;
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function when(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  const now = Date.now();
  const diff = (now - d.getTime()) / 1000;
  if (diff < -60) { // a due time ahead
    const ahead = -diff;
    if (ahead < 3600) return `in ${Math.floor(ahead / 60)} min`;
    if (ahead < 86400) return `in ${Math.floor(ahead / 3600)} h`;
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }
  if (diff < 60) return "just now";
  if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
  if (diff < 86400) return `${Math.floor(diff / 3600)} h ago`;
  return d.toLocaleDateString(undefined, { month: "short", day: "numeric", year: diff > 300 * 86400 ? "numeric" : undefined });
}

export function timeEl(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return h("time", { datetime: d.toISOString(), title: d.toLocaleString() }, when(ts));
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : null }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

export function isTyping(event) {
  const t = event.target;
  return t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
}

// A modal dialog built on <dialog>: focus is trapped by the browser and Escape closes it.
export function dialog(title, body, { onClose } = {}) {
  const titleId = id("dlg");
  const dlg = h("dialog", { class: "dialog", "aria-labelledby": titleId },
    h("div", { class: "dialog-head" },
      h("h2", { id: titleId }, title),
      h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => dlg.close() }, "×")),
    body);
  dlg.addEventListener("close", () => {
    dlg.remove();
    if (onClose) onClose();
  });
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

export function textToHtml(text) {
  return text.split(/\n{2,}/).map((p) => `<p>${escapeHtml(p).replace(/\n/g, "<br>")}</p>`).join("");
}

// Work that must not compete with the first screen's requests (counts, look-ups, feature
// detection) waits until that screen has rendered.
const deferred = [];
let settled = false;
export function later(fn) {
  if (settled) setTimeout(fn, 0);
  else deferred.push(fn);
}
export function screenReady() {
  if (settled) return;
  settled = true;
  deferred.splice(0).forEach((fn) => setTimeout(fn, 0));
}
