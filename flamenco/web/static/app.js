// The dashboard: loads the farm once, then follows /events (never polls).

import * as api from "./api.js";
import { ago } from "./format.js";
import * as jobs from "./jobs.js";
import * as views from "./views.js";

const TASK_STATUSES = ["queued", "claimed-by-manager", "active", "completed", "failed",
  "soft-failed", "cancel-requested", "canceled", "paused", "under-construction"];
const PAGE = 25;
const LOG_LINES = 500;

const state = { workers: new Map(), tasks: new Map(), filters: {}, offset: 0, total: 0,
  detailId: null, upstream: null, overviewPending: null };
const $ = (selector) => document.querySelector(selector);

function renderWorkers() {
  const workers = [...state.workers.values()].sort((a, b) => (a.nickname || "").localeCompare(b.nickname || ""));
  $("#workers tbody").replaceChildren(...workers.map((worker) => views.workerRow(worker, act, openTask)));
  $("#no-workers").hidden = workers.length > 0;
  views.renderWorkersByStatus($("#workers-by-status"), workers);
}

async function act(workerId, action) {
  if (action === "forget" && !confirm("Forget this Worker? It must register again to come back.")) return;
  try {
    const worker = await api.workerAction(workerId, action);
    if (worker) state.workers.set(workerId, worker);
    else state.workers.delete(workerId);
    renderWorkers();
  } catch (error) {
    alert(`${action}: ${error.message}`);
  }
}

async function loadOverview() {
  const farm = await api.farm();
  $("#version").textContent = farm.version;
  $("#logout").hidden = !farm.login_required;
  views.renderQueue($("#queue-by-status"), $("#queue-by-type"), farm.queue);
  state.upstream = farm.upstream;
  views.renderUpstream($("#upstream"), farm.upstream);
}

// Task events change the queue counts; reload them at most once a second.
function overviewSoon() {
  if (state.overviewPending) return;
  state.overviewPending = setTimeout(() => {
    state.overviewPending = null;
    loadOverview().catch(() => {});
  }, 1000);
}

async function loadWorkers() {
  const { workers } = await api.workers();
  state.workers = new Map(workers.map((worker) => [worker.id, worker]));
  renderWorkers();
}

async function loadTasks() {
  const page = await api.tasks({ ...state.filters, offset: state.offset, limit: PAGE });
  state.total = page.total;
  state.tasks = new Map(page.tasks.map((task) => [task.id, task]));
  $("#tasks tbody").replaceChildren(...page.tasks.map((task) => views.taskRow(task, openTask)));
  const last = Math.min(state.offset + PAGE, page.total);
  $("#page-info").textContent = page.total ? `${state.offset + 1}–${last} of ${page.total}` : "no tasks";
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = last >= page.total;
}

async function openTask(taskId) {
  const task = await api.task(taskId);
  state.detailId = taskId;
  state.detail = task;
  views.renderTaskDetail($("#task-detail"), task);
  if (!$("#task-detail").open) $("#task-detail").showModal();
}

function onWorkerEvent(change) {
  const known = state.workers.get(change.id);
  if (!known) {
    api.worker(change.id).then((worker) => { state.workers.set(worker.id, worker); renderWorkers(); });
    return;
  }
  state.workers.set(change.id, { ...known, ...change });
  renderWorkers();
}

function onTaskEvent(change) {
  const row = state.tasks.get(change.id);
  if (row) {
    const { log, progress, ...fields } = change;
    state.tasks.set(change.id, { ...row, ...fields });
    const old = document.querySelector(`#tasks tr[data-task-id="${change.id}"]`);
    if (old) old.replaceWith(views.taskRow(state.tasks.get(change.id), openTask));
  }
  if (state.detailId === change.id && state.detail) {
    const detail = state.detail;
    if (change.log) {
      const lines = change.log.split("\n").filter((line) => line.trim());
      detail.log_tail = [...detail.log_tail, ...lines].slice(-LOG_LINES);
    }
    if (change.status && change.status !== detail.status) {
      detail.status_history = [...detail.status_history, { status: change.status, at: new Date().toISOString() }];
    }
    for (const key of ["status", "activity", "worker"]) if (change[key]) detail[key] = change[key];
    const log = $("#detail-log");
    const following = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    views.renderTaskDetail($("#task-detail"), detail);
    if (following) log.scrollTop = log.scrollHeight;
  }
  if (change.status) overviewSoon();
  jobs.onTaskEvent(change);
}

function onUpstreamEvent(health) {
  state.upstream = { ...state.upstream, ...health };
  views.renderUpstream($("#upstream"), state.upstream);
  overviewSoon();
}

async function loadImages() {
  views.renderImages($("#latest-image-card"), (await api.images()).images);
}

function reloadAll() {
  return Promise.all([loadOverview(), loadWorkers(), loadTasks(), loadImages(), jobs.load()]);
}

function follow() {
  const events = new EventSource("/events");
  const live = $("#live");
  events.onopen = () => { live.textContent = "live"; live.classList.remove("off"); };
  events.onerror = () => { live.textContent = "reconnecting…"; live.classList.add("off"); };
  const on = (type, handler) => events.addEventListener(type, (event) => handler(JSON.parse(event.data)));
  on("worker", onWorkerEvent);
  on("worker-forgotten", ({ id }) => { state.workers.delete(id); renderWorkers(); });
  on("task", onTaskEvent);
  on("upstream", onUpstreamEvent);
  on("tasks-downloaded", () => { overviewSoon(); loadTasks(); jobs.soon(); });
  on("job", jobs.onJobEvent);
  on("job-deleted", jobs.onJobDeleted);
  on("image", () => loadImages());
  on("reset", () => reloadAll());
  return events;
}

function setUpControls() {
  jobs.setUp(openTask);
  const select = $("#task-filters select[name=status]");
  for (const status of TASK_STATUSES) select.append(new Option(status, status));
  $("#task-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    state.filters = { status: form.get("status"), type: form.get("type").trim(), job: form.get("job").trim() };
    state.offset = 0;
    loadTasks().catch((error) => alert(error.message));
  });
  $("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadTasks(); });
  $("#next").addEventListener("click", () => { state.offset += PAGE; loadTasks(); });
  $("#task-detail").addEventListener("close", () => { state.detailId = null; state.detail = null; });
  // "Last seen" is relative: refresh the wording (not the data) every few seconds.
  setInterval(() => {
    for (const cell of document.querySelectorAll("td.seen")) cell.textContent = ago(cell.dataset.since || null);
  }, 5000);
}

setUpControls();
window.flamencoEvents = follow();
reloadAll().then(() => document.body.classList.add("loaded"));
