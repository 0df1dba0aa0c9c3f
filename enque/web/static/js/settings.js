// The signed-in agent's own settings: which events notify them, in the app and by email
// (`GET/PATCH /v1/notifications/settings`).

import { api, features } from "./api.js";
import { clear, h, toast } from "./dom.js";

const EVENTS = {
  "ticket.assigned": "A ticket is assigned to me",
  "ticket.created": "A new ticket arrives",
  "customer.replied": "A customer replies on a ticket of mine",
  mention: "Someone mentions me in a note",
  automation: "An automation rule notifies me",
  "sla.warning": "An SLA target of my ticket (or my team's) is about to be missed",
  "sla.breached": "An SLA target of my ticket (or my team's) was missed",
};
const CHANNELS = [["in_app", "In the app"], ["email", "By email"]];

export async function renderSettings(main) {
  const paths = await features();
  if (!paths.has("/v1/notifications/settings")) {
    clear(main, h("h1", {}, "Settings"), h("p", {}, "This server does not offer notification settings yet."));
    return {};
  }
  const body = h("tbody", {});
  clear(main, h("div", { class: "settings" },
    h("h1", { id: "settings-title" }, "Notification settings"),
    h("p", { class: "muted" }, "Choose how you hear about each event. An event with neither box ticked is off."),
    h("table", { "aria-labelledby": "settings-title" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Event"), CHANNELS.map(([, label]) => h("th", { scope: "col" }, label)))),
      body)));

  // A setting is {event, enabled, channels: ["in_app" | "email"]}: a box is ticked when the
  // event is on and has that channel; a change saves at once and the answer is shown.
  const paint = (settings) => clear(body, settings.map((s) => {
    const boxes = CHANNELS.map(([channel, label]) => h("input", {
      type: "checkbox",
      value: channel,
      checked: s.enabled && s.channels.includes(channel),
      "aria-label": `${label}: ${EVENTS[s.event] || s.event}`,
    }));
    boxes.forEach((box) => box.addEventListener("change", async () => {
      const channels = boxes.filter((b) => b.checked).map((b) => b.value);
      boxes.forEach((b) => { b.disabled = true; });
      try {
        paint(await api.patch("/notifications/settings", { settings: [{ event: s.event, enabled: channels.length > 0, channels }] }));
        toast("Saved");
      } catch (e) {
        box.checked = !box.checked;
        boxes.forEach((b) => { b.disabled = false; });
        toast(e.message, "error");
      }
    }));
    return h("tr", { dataset: { event: s.event } }, h("th", { scope: "row" }, EVENTS[s.event] || s.event), boxes.map((b) => h("td", {}, b)));
  }));
  paint(await api.get("/notifications/settings"));
  return {};
}
