// The console's only script: parts marked data-refresh re-load themselves, and buttons with
// data-confirm ask first. Pages work without it (reload to refresh; the cancel form has its
// own confirmation checkbox).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const part of document.querySelectorAll("[data-refresh]")) {
    const seconds = Number(part.dataset.every || 15);
    const timer = setInterval(async () => {
      const answer = await fetch(part.dataset.refresh, {headers: {"X-Console-Fragment": "1"}});
      if (answer.status === 401) { window.location.reload(); return; }
      if (answer.ok) { part.innerHTML = await answer.text(); }
      // a finished run (or a page gone) has nothing more to show
      if (!answer.ok || answer.headers.get("X-Console-Refresh") === "stop") {
        clearInterval(timer);
      }
    }, seconds * 1000);
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  }
});
