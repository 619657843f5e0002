"""The page's one script, served by the app itself (``/page.js``): nothing comes from elsewhere.

It sends the lever form as its fields change (a quarter of a second after the last
keystroke) and the target form when submitted, and puts the server's answer in place:
HTML the server escaped, and each field's message as text. An answer to an older request
than the last one sent is dropped. Without the script the forms still work (plain GETs).
"""

from __future__ import annotations

SCRIPT = """
"use strict";
(function () {
  function wire(formId, url, sectionId, statusId, live) {
    const form = document.getElementById(formId);
    const section = document.getElementById(sectionId);
    const status = document.getElementById(statusId);
    if (!form || !section) return;
    let sent = 0;
    let timer = null;
    let last = null;
    async function send(again) {
      const query = new URLSearchParams(new FormData(form)).toString();
      if (!again && query === last) return;  // a change event after the input event
      last = query;
      const mine = ++sent;
      if (status) status.textContent = "computing…";
      form.dataset.state = "busy";
      let answer;
      try {
        const response = await fetch(url + "?" + query, {headers: {"Accept": "application/json"}});
        answer = await response.json();
      } catch (err) {
        if (mine === sent && status) {
          status.textContent = "no answer from pipesim (is it still running? see its terminal)";
        }
        form.dataset.state = "failed";
        return;
      }
      if (mine !== sent) return;
      form.querySelectorAll("[data-error-for]").forEach(function (el) {
        el.textContent = (answer.errors || {})[el.dataset.errorFor] || "";
      });
      section.innerHTML = answer.html;
      if (status) status.textContent = answer.status || "";
      form.dataset.state = "done";
      form.dataset.answered = String(mine);
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearTimeout(timer);
      send(true);
    });
    if (live) {
      form.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { send(false); }, 250);
      });
      form.addEventListener("change", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { send(false); }, 250);
      });
    }
  }
  wire("levers", "/variant", "variant", "status", true);
  wire("target", "/goal", "goal", "target-status", false);
})();
"""
