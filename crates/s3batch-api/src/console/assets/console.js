// s3batch console: the little JavaScript the pages use. Everything works without it except the live refresh.
"use strict";

// Ask before an irreversible action (forms marked data-confirm).
document.addEventListener("submit", (ev) => {
  const msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) ev.preventDefault();
});

// Show only the chosen manifest source's and operation's fields; the others are disabled so they are not sent.
function showParts(selector, attr, value) {
  for (const part of document.querySelectorAll(selector)) {
    const on = part.getAttribute(attr) === value;
    part.hidden = !on;
    for (const el of part.querySelectorAll("input, select, textarea, button")) el.disabled = !on;
  }
}
function syncCreateForm() {
  const src = document.querySelector("input[name=source]:checked");
  if (src) showParts("[data-source]", "data-source", src.value);
  const op = document.getElementById("operation");
  if (op) showParts("[data-op]", "data-op", op.value);
}
document.addEventListener("change", (ev) => {
  if (ev.target.name === "source" || ev.target.id === "operation") syncCreateForm();
});

// "Look up ETag": ask the server for the manifest object's ETag.
document.addEventListener("click", async (ev) => {
  const which = ev.target.getAttribute && ev.target.getAttribute("data-etag");
  if (!which) return;
  const bucket = document.getElementById(which + "-bucket").value.trim();
  const key = document.getElementById(which + "-key").value.trim();
  const out = document.getElementById(which + "-etag");
  const role = (document.getElementById("role") || { value: "" }).value.trim();
  const res = await fetch("/console/etag?bucket=" + encodeURIComponent(bucket) + "&key=" + encodeURIComponent(key) +
    "&role=" + encodeURIComponent(role),
    { credentials: "same-origin" });
  const body = await res.json().catch(() => ({ Message: "no answer" }));
  if (res.ok) { out.value = body.ETag; } else { window.alert("Cannot read s3://" + bucket + "/" + key + ": " + body.Message); }
});

// Refresh the live regions of a page while its jobs run.
const LIVE = ["live-list", "live-detail", "live-history", "live-config"];
async function refresh() {
  if (document.body.dataset.live !== "true" || document.hidden) return;
  try {
    const res = await fetch(location.href, { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    for (const id of LIVE) {
      const now = document.getElementById(id), next = doc.getElementById(id);
      if (now && next && !now.contains(document.activeElement)) now.replaceWith(next);
    }
    document.body.dataset.live = doc.body.dataset.live;
    // A job that finished or changed status changes the actions too: reload those when nothing is being typed.
    const actions = document.querySelector(".actions"), nextActions = doc.querySelector(".actions");
    if (actions && nextActions && !actions.contains(document.activeElement) && actions.innerHTML !== nextActions.innerHTML) {
      actions.replaceWith(nextActions);
    }
    const badge = document.querySelector(".titlebar .badge"), nextBadge = doc.querySelector(".titlebar .badge");
    if (badge && nextBadge) badge.replaceWith(nextBadge);
  } catch (e) { /* the next tick tries again */ }
}
document.addEventListener("DOMContentLoaded", () => {
  syncCreateForm();
  setInterval(refresh, 2000);
});
