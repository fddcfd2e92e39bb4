// The jobs of a stand-alone Manager: a list and one job's detail, following /events.
// `job` events change a job's status or priority; task events move its progress.

import * as api from "./api.js";
import { ago, badge, definitions, element } from "./format.js";

const FINAL = ["completed", "failed", "canceled"];
const state = { available: true, jobs: new Map(), types: new Map(), detailId: null,
  detail: null, pending: null, openTask: () => {} };
const $ = (selector) => document.querySelector(selector);

export function progress(counts = {}) {
  const total = Object.values(counts).reduce((sum, count) => sum + count, 0);
  return { done: counts.completed || 0, total };
}

function progressBar(counts) {
  const { done, total } = progress(counts);
  const percent = total ? Math.round((100 * done) / total) : 0;
  return element("div", { class: "progress", title: `${percent} %` },
    element("span", { class: "bar", style: `width: ${percent}%` }),
    element("span", { class: "label" }, `${done}/${total}`));
}

function jobRow(job) {
  return element("tr", { dataset: { jobId: job.id }, onclick: () => openJob(job.id) },
    element("td", { class: "name" }, job.name),
    element("td", {}, job.type),
    element("td", { class: "status" }, badge(job.status)),
    element("td", { class: "progress-cell" }, progressBar(job.task_counts)),
    element("td", { class: "priority" }, String(job.priority)),
    element("td", { class: "seen", dataset: { since: job.updated || "" } }, ago(job.updated)));
}

function renderJobs() {
  $("#jobs-relay").hidden = state.available;
  $("#jobs-standalone").hidden = !state.available;
  const jobs = [...state.jobs.values()].sort((a, b) => b.id.localeCompare(a.id));  // newest first
  $("#jobs tbody").replaceChildren(...jobs.map(jobRow));
  $("#no-jobs").hidden = jobs.length > 0;
}

function settingsHelp(type) {
  const rows = type.settings.map((spec) => element("tr", {},
    element("td", {}, spec.name), element("td", {}, spec.type),
    element("td", {}, spec.required ? "required" : JSON.stringify(spec.default ?? null)),
    element("td", { class: "activity" }, spec.description || "")));
  return element("div", { class: "job-type" },
    element("h3", {}, type.name, " ", element("small", {}, type.description || "")),
    element("table", { class: "settings" },
      element("thead", {}, element("tr", {}, ...["setting", "type", "default", ""].map(
        (title) => element("th", {}, title)))),
      element("tbody", {}, ...rows)));
}

export async function load() {
  const answer = await api.jobs();
  state.available = answer !== null;
  state.jobs = new Map((answer?.jobs || []).map((job) => [job.id, job]));
  renderJobs();
  if (state.available && !state.types.size) {
    const { types } = await api.jobTypes();
    state.types = new Map(types.map((type) => [type.name, type]));
    $("#job-types").replaceChildren(...types.map(settingsHelp));
  }
}

// Task and download events change progress: reload list (and detail) at most once a second.
export function soon() {
  if (state.pending || !state.available) return;
  state.pending = setTimeout(() => {
    state.pending = null;
    load().catch(() => {});
    if (state.detailId) loadDetail(state.detailId).catch(() => {});
  }, 1000);
}

function taskRow(task) {
  return element("tr", { dataset: { taskId: task.id }, onclick: () => state.openTask(task.id) },
    element("td", {}, task.name),
    element("td", { class: "status" }, badge(task.status)),
    element("td", {}, task.worker || "–"),
    element("td", { class: "activity" }, task.activity || ""));
}

function actionButton(action, label, handler) {
  return element("button", { type: "button", dataset: { action }, onclick: handler }, label);
}

function actions(job) {
  const buttons = [];
  const steer = (action) => () => act(job.id, action);
  if (!FINAL.includes(job.status) && job.status !== "cancel-requested") {
    buttons.push(actionButton("cancel", "Cancel", steer("cancel")));
  }
  if (["queued", "active"].includes(job.status)) buttons.push(actionButton("pause", "Pause", steer("pause")));
  if (job.status === "paused") buttons.push(actionButton("resume", "Resume", steer("resume")));
  const counts = job.task_counts || {};
  if ((counts.failed || counts.canceled) && !["cancel-requested", "paused"].includes(job.status)) {
    buttons.push(actionButton("requeue", "Re-queue failed", steer("requeue")));
  }
  const priority = element("input", { type: "number", min: 1, max: 100, value: job.priority,
    name: "priority", "aria-label": "priority" });
  buttons.push(element("span", { class: "set-priority" }, priority, actionButton("priority",
    "Set priority", () => act(job.id, "priority", { priority: Number(priority.value) }))));
  if (FINAL.includes(job.status)) buttons.push(actionButton("delete", "Delete", () => remove(job.id)));
  return buttons;
}

function renderDetail() {
  const job = state.detail;
  const dialog = $("#job-detail");
  dialog.querySelector("#job-title").textContent = job.name;
  const type = state.types.get(job.type);
  definitions(dialog.querySelector("#job-fields"), [
    ["ID", job.id], ["status", badge(job.status)], ["type", job.type],
    ["priority", String(job.priority)], ["submitted from", job.submitter_platform || "–"],
    ["created", ago(job.created)], ["last change", ago(job.updated)],
  ]);
  dialog.querySelector("#job-progress").replaceChildren(progressBar(job.task_counts));
  dialog.querySelector("#job-actions").replaceChildren(...actions(job));
  const settings = Object.entries(job.settings || {}).map(([name, value]) => {
    const spec = type?.settings.find((each) => each.name === name);
    return [name, `${JSON.stringify(value)}${spec?.description ? ` — ${spec.description}` : ""}`];
  });
  definitions(dialog.querySelector("#job-settings"), settings);
  dialog.querySelector("#job-tasks tbody").replaceChildren(...(job.tasks || []).map(taskRow));
}

async function loadDetail(jobId) {
  const job = await api.job(jobId);
  if (state.detailId !== jobId) return;  // closed, or another job opened meanwhile
  state.detail = job;
  renderDetail();
}

async function openJob(jobId) {
  state.detailId = jobId;
  state.detail = null;
  await loadDetail(jobId);
  if (!$("#job-detail").open) $("#job-detail").showModal();
}

function merge(job) {
  const known = state.jobs.get(job.id);
  if (known) state.jobs.set(job.id, { ...known, ...job });
  if (state.detail?.id === job.id) state.detail = { ...state.detail, ...job };
}

async function act(jobId, action, doc) {
  try {
    merge(await api.jobAction(jobId, action, doc));
    renderJobs();
    if (state.detail?.id === jobId) renderDetail();
  } catch (error) {
    alert(`${action}: ${error.message}`);
  }
}

async function remove(jobId) {
  if (!confirm("Delete this job and its tasks?")) return;
  try {
    await api.deleteJob(jobId);
    onJobDeleted({ id: jobId });
  } catch (error) {
    alert(`delete: ${error.message}`);
  }
}

export function onJobEvent(change) {
  if (!state.jobs.has(change.id)) {
    soon();
    return;
  }
  merge(change);
  const old = document.querySelector(`#jobs tr[data-job-id="${change.id}"]`);
  if (old) old.replaceWith(jobRow(state.jobs.get(change.id)));
  if (state.detail?.id === change.id) renderDetail();
}

export function onJobDeleted({ id }) {
  state.jobs.delete(id);
  renderJobs();
  if (state.detail?.id === id) $("#job-detail").close();
}

export function onTaskEvent(change) {
  const tasks = state.detail?.tasks || [];
  const index = tasks.findIndex((task) => task.id === change.id);
  if (index >= 0) {
    const { log, progress: _, ...fields } = change;
    tasks[index] = { ...tasks[index], ...fields };
    const counts = {};
    for (const task of tasks) counts[task.status] = (counts[task.status] || 0) + 1;
    state.detail.task_counts = counts;
    renderDetail();
  }
  if (change.status) soon();
}

export function setUp(openTask) {
  state.openTask = openTask;
  $("#job-detail").addEventListener("close", () => { state.detailId = null; state.detail = null; });
}
