// Rendering the dashboard's parts from plain data.

import { ago, badge, definitions, element, shortId } from "./format.js";

const STATUS_ORDER = ["awake", "asleep", "starting", "testing", "timeout", "error", "shutdown",
  "offline", "down", "unknown"];
const FORGETTABLE = ["", "offline", "down", "timeout", "error"];
const ACTIONS = [["sleep", "Sleep"], ["wake", "Wake"], ["shutdown", "Shut down"]];

export function renderWorkersByStatus(target, workers) {
  const counts = {};
  for (const worker of workers) counts[worker.status || "unknown"] = (counts[worker.status || "unknown"] || 0) + 1;
  const statuses = Object.keys(counts).sort((a, b) => STATUS_ORDER.indexOf(a) - STATUS_ORDER.indexOf(b));
  target.replaceChildren(...statuses.map((status) =>
    element("span", { class: `chip s-${status}`, dataset: { status } }, `${counts[status]} ${status}`)));
  if (!statuses.length) target.append(element("span", { class: "empty" }, "none"));
}

export function renderQueue(chips, target, queue) {
  chips.replaceChildren(...Object.entries(queue.by_status).sort().map(([status, count]) =>
    element("span", { class: `chip s-${status}`, dataset: { status } }, `${count} ${status}`)));
  const body = target.tBodies[0];
  const rows = Object.entries(queue.by_type).sort();
  body.replaceChildren(...rows.map(([type, count]) =>
    element("tr", {}, element("td", {}, type || "–"), element("td", {}, String(count)))));
  if (!rows.length) body.append(element("tr", {}, element("td", { class: "empty" }, "no tasks")));
}

export function renderUpstream(card, health) {
  card.dataset.state = health.state;
  card.querySelector(".state").textContent =
    { green: "OK", amber: "slow", red: "failing", none: "no Server" }[health.state] || health.state;
  if (!health.configured) {
    definitions(card.querySelector("dl"), [["mode", "stand-alone (no Server configured)"],
      ["queued updates", String(health.queued_updates ?? 0)]]);
    return;
  }
  const age = health.oldest_queued_age_seconds;
  definitions(card.querySelector("dl"), [
    ["queued updates", String(health.queued_updates ?? "–")],
    ["oldest waiting", age === null || age === undefined ? "–" : `${Math.round(age)} s`],
    ["last push", ago(health.last_push)],
    ["last download", ago(health.last_download)],
    ["failures in a row", `push ${health.push_failures}, download ${health.download_failures}`],
    ["gzip", health.gzip ? "yes" : "no"],
  ]);
}

export function workerRow(worker, onAction, onTask) {
  const requested = worker.status_requested
    ? element("span", { class: "requested" }, `→ ${worker.status_requested}${worker.lazy_status_request ? " (lazy)" : ""}`)
    : null;
  const actions = ACTIONS.map(([action, label]) =>
    element("button", { type: "button", dataset: { action }, onclick: () => onAction(worker.id, action) }, label));
  if (worker.approved === false) {
    actions.unshift(element("button", { type: "button", dataset: { action: "approve" },
      onclick: () => onAction(worker.id, "approve") }, "Approve"));
  }
  if (worker.status === "timeout") {
    actions.push(element("button", { type: "button", dataset: { action: "ack-timeout" },
      onclick: () => onAction(worker.id, "ack-timeout") }, "Ack time-out"));
  }
  if (FORGETTABLE.includes(worker.status || "")) {
    actions.push(element("button", { type: "button", dataset: { action: "forget" },
      onclick: () => onAction(worker.id, "forget") }, "Forget"));
  }
  const task = worker.current_task
    ? element("a", { href: "#", onclick: (event) => { event.preventDefault(); onTask(worker.current_task); } },
      shortId(worker.current_task))
    : "–";
  return element("tr", { dataset: { workerId: worker.id } },
    element("td", { class: "name" }, worker.nickname || worker.id),
    element("td", { class: "status" }, badge(worker.status), requested),
    element("td", {}, task),
    element("td", { class: "seen", dataset: { since: worker.last_activity || "" } }, ago(worker.last_activity)),
    element("td", {}, worker.address),
    element("td", {}, worker.software || worker.generation),
    element("td", { class: "actions" }, ...actions));
}

export function taskRow(task, onOpen) {
  return element("tr", { dataset: { taskId: task.id }, onclick: () => onOpen(task.id) },
    element("td", {}, task.name || shortId(task.id)),
    element("td", { class: "status" }, badge(task.status)),
    element("td", {}, task.task_type),
    element("td", {}, shortId(task.job)),
    element("td", {}, task.worker || "–"),
    element("td", { class: "activity" }, task.activity || ""));
}

export function renderTaskDetail(dialog, task) {
  dialog.querySelector("#detail-title").textContent = task.name || task.id;
  definitions(dialog.querySelector("#detail-fields"), [
    ["ID", task.id], ["status", badge(task.status)], ["type", task.task_type],
    ["job", task.job], ["worker", task.worker || "–"], ["activity", task.activity || "–"],
    ["priority", `${task.priority} (job ${task.job_priority})`],
    ["commands", (task.commands || []).join(", ")], ["last update", ago(task.last_updated)],
  ]);
  dialog.querySelector("#detail-history").replaceChildren(...(task.status_history || []).map((entry) =>
    element("li", {}, badge(entry.status), ` ${ago(entry.at)}`)));
  dialog.querySelector("#detail-log").textContent = (task.log_tail || []).join("\n");
}

export function renderImages(card, images) {
  card.hidden = images.length === 0;
  card.querySelector("#thumbnails").replaceChildren(...images.map((image) =>
    element("img", { src: image.url, alt: image.path, title: `${image.path}\n${image.worker}`,
      width: image.width, height: image.height, loading: "lazy" })));
}
