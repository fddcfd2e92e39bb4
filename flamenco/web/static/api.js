// The operator API, as used by the dashboard (docs/openapi-operator.yaml).

async function answer(response) {
  if (response.status === 204) return null;
  if (response.status === 401) {
    window.location.href = "/login";
    throw new Error("log in first");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

export async function getJSON(path) {
  return answer(await fetch(path, { headers: { Accept: "application/json" } }));
}

export async function postJSON(path, doc) {
  return answer(await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(doc),
  }));
}

export const farm = () => getJSON("/api/farm");
export const workers = () => getJSON("/api/workers");
export const worker = (id) => getJSON(`/api/workers/${encodeURIComponent(id)}`);
export const images = () => getJSON("/api/images");
export const task = (id) => getJSON(`/api/tasks/${encodeURIComponent(id)}`);
export const workerAction = (id, action) =>
  postJSON(`/api/workers/${encodeURIComponent(id)}/actions`, { action });

export function tasks({ status = "", type = "", job = "", offset = 0, limit = 25 }) {
  const query = new URLSearchParams({ offset, limit });
  if (status) query.set("status", status);
  if (type) query.set("type", type);
  if (job) query.set("job", job);
  return getJSON(`/api/tasks?${query}`);
}

// The job API of a stand-alone Manager (docs/openapi-jobs.yaml).

/** The jobs, or null when this Manager relays to a Server (it has no job API then). */
export async function jobs() {
  const response = await fetch("/api/jobs", { headers: { Accept: "application/json" } });
  if (response.status === 404) return null;
  return answer(response);
}

export const job = (id) => getJSON(`/api/jobs/${encodeURIComponent(id)}`);
export const jobTypes = () => getJSON("/api/jobs/types");
export const jobAction = (id, action, doc) =>
  postJSON(`/api/jobs/${encodeURIComponent(id)}/${action}`, doc);

export async function deleteJob(id) {
  return answer(await fetch(`/api/jobs/${encodeURIComponent(id)}`,
    { method: "DELETE", headers: { Accept: "application/json" } }));
}
