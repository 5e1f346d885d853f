// loadkit's additions to Locust's web UI (plugin/web_page.py says why and what).
// Plain DOM, no build step. Reads /loadkit/status, /loadkit/runs and /loadkit/form under the
// base path it is told by its <script data-base>, once a second.
(function () {
  "use strict";
  var script = document.currentScript;
  var BASE = (script && script.getAttribute("data-base")) || "";
  var TAB = "loadkit-baseline";
  var POLL_MS = 1000;
  var state = { status: null, runs: [], form: null, startedAtGeneration: null };

  // -- helpers ------------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function getJson(path) {
    return fetch(BASE + path, { credentials: "same-origin", cache: "no-store" }).then(
      function (response) {
        if (!response.ok) throw new Error(path + ": HTTP " + response.status);
        return response.json();
      }
    );
  }

  function seconds(value) {
    if (value === null || value === undefined) return "?";
    return (Math.round(value * 10) / 10).toLocaleString("en") + " s";
  }

  function number(value) {
    return Number(value).toLocaleString("en");
  }

  // Shows `children` in `parent`, keeping each node already there that equals its replacement,
  // down to the cell: a node with the same tag and attributes keeps itself and updates inside.
  // The UI re-renders once a second; a link swapped for an equal one between a user's mouse-down
  // and mouse-up loses the click, so a run's file links would open nothing now and then (even
  // while the run in progress changes its own row of the same table).
  function update(parent, children) {
    var shown = parent.childNodes;
    children.forEach(function (child, i) {
      var old = shown[i];
      if (!old) parent.appendChild(child);
      else if (old.isEqualNode(child)) return;
      else if (old.nodeType === 1 && old.cloneNode(false).isEqualNode(child.cloneNode(false))) {
        update(old, Array.prototype.slice.call(child.childNodes));
      } else parent.replaceChild(child, old);
    });
    while (shown.length > children.length) parent.removeChild(parent.lastChild);
  }

  function currentTab() {
    return new URLSearchParams(window.location.search).get("tab");
  }

  // -- what the status says -----------------------------------------------------------------------

  // The phase shown: a START pressed here shows "starting" until the server has seen it.
  function phaseOf(status) {
    if (state.startedAtGeneration !== null) {
      if (!status || status.generation <= state.startedAtGeneration) return "starting";
      state.startedAtGeneration = null;
    }
    return status ? status.phase : "idle";
  }

  function headlineClass(verdict) {
    if (verdict.live) return "";
    if (verdict.passed) return "lk-passed";
    if (!verdict.criteria_held || verdict.aborted) return "lk-failed";
    return "lk-incomplete";
  }

  function runLine(status) {
    var run = status && status.run;
    if (!run) return null;
    var planned = run.planned_s === null ? "open-ended" : "of " + seconds(run.planned_s);
    return "run " + run.number + " · " + run.profile + " · " + seconds(run.elapsed_s) + " " + planned;
  }

  function stateLine(verdict) {
    var reason = verdict.state_reason ? ": " + verdict.state_reason : "";
    return "state: " + verdict.state + reason;
  }

  function totalsLine(verdict) {
    var t = verdict.totals;
    var rate = t.rps === null ? "no rate (window under 1 s)" : t.rps.toFixed(1) + " rps";
    return number(t.requests) + " requests, " + number(t.failures) + " failures, " + rate;
  }

  function windowLine(verdict) {
    return "window: " + verdict.window.description;
  }

  function skipped(status) {
    return (status.criteria || []).filter(function (row) {
      return row.status === "skipped";
    });
  }

  // The facts both the strip and the Baseline tab show, as [label, text, class] triples.
  function facts(status, phase) {
    var out = [];
    if (phase === "starting") return [["", "starting a new run: nothing measured yet", ""]];
    if (phase === "idle") return [["", "no run yet: choose a profile and press START", ""]];
    if (status && status.refused) out.push(["start refused", status.refused, "lk-failed"]);
    var verdict = status && status.verdict;
    var run = runLine(status);
    if (run) out.push(["run", run, ""]);
    if (!verdict) return out;
    out.push(["state", stateLine(verdict).replace(/^state: /, ""), ""]);
    out.push(["window", verdict.window.description, ""]);
    out.push(["totals", totalsLine(verdict), ""]);
    out.push(["verdict", verdict.summary, "lk-headline " + headlineClass(verdict)]);
    if (status.arrival) out.push(["arrival rate", status.arrival, ""]);
    if (status.generator && status.generator.length) {
      out.push(["generator saturated", status.generator.join("; "), "lk-warning"]);
    }
    return out;
  }

  var MARKERS = { running: "LIVE", stopping: "STOPPING", final: "FINAL", starting: "STARTING",
    refused: "REFUSED", idle: "IDLE" };

  function markerOf(phase) {
    var text = MARKERS[phase] || phase.toUpperCase();
    return el("span", { class: "lk-marker lk-" + phase, "data-phase": phase, text: text });
  }

  // -- the strip above Locust's header ------------------------------------------------------------

  function renderStrip(status, phase) {
    var strip = document.getElementById("loadkit-status");
    if (!strip) {
      strip = el("div", { id: "loadkit-status", role: "status", "aria-live": "polite" });
      var root = document.getElementById("root");
      document.body.insertBefore(strip, root || document.body.firstChild);
    }
    var children = [markerOf(phase)];
    facts(status, phase).forEach(function (fact) {
      var text = fact[0] && fact[0] !== "run" && fact[0] !== "verdict" ? fact[0] + ": " + fact[1] : fact[1];
      children.push(el("span", { class: "lk-line " + fact[2], text: text }));
    });
    update(strip, children);
  }

  // -- the Baseline tab ---------------------------------------------------------------------------

  function tabContainer() {
    var tabs = document.querySelector("main [role=tablist]");
    if (!tabs) return null;
    var box = tabs;
    while (box.parentElement && !box.parentElement.classList.contains("MuiContainer-root")) {
      box = box.parentElement;
    }
    return box.parentElement ? { container: box.parentElement, after: box } : null;
  }

  function renderBaseline(status, phase) {
    var panel = document.getElementById("loadkit-baseline");
    if (currentTab() !== TAB) {
      if (panel) panel.remove();
      return;
    }
    var place = tabContainer();
    if (!place) return;
    if (!panel || panel.parentElement !== place.container) {
      if (panel) panel.remove();
      panel = el("section", { id: "loadkit-baseline" });
      place.container.insertBefore(panel, place.after.nextSibling);
    }
    var summary = el("dl", { class: "lk-summary" }, [
      el("dt", { text: "now" }),
      el("dd", {}, [markerOf(phase)]),
    ]);
    facts(status, phase).forEach(function (fact) {
      summary.appendChild(el("dt", { text: fact[0] || "" }));
      summary.appendChild(el("dd", { class: fact[2], text: fact[1] }));
    });
    var parts = [el("h3", { text: "This run" }), summary];
    var verdict = status && phase !== "starting" ? status.verdict : null;
    if (verdict) {
      parts.push(el("h3", { text: verdict.live ? "Criteria so far (live)" : "Criteria" }));
      parts.push(criteriaTable(status.criteria));
      if (verdict.notes.length) {
        parts.push(el("h3", { text: "Notes" }));
        parts.push(el("ul", {}, verdict.notes.map(function (note) {
          return el("li", { text: note });
        })));
      }
    }
    parts.push(el("h3", { text: "Runs of this session" }));
    parts.push(runsTable(state.runs));
    update(panel, parts);
  }

  function criteriaTable(rows) {
    var mark = { passed: "✓ passed", failed: "✗ failed", "no data": "✗ no data", skipped: "– skipped" };
    var head = el("tr", {}, ["Criterion", "Threshold", "Measured", "Status", "Why"].map(function (t) {
      return el("th", { text: t });
    }));
    var body = rows.map(function (row) {
      return el("tr", { "data-status": row.status }, [
        el("td", { text: row.criterion }),
        el("td", { text: row.threshold }),
        el("td", { text: row.measured }),
        el("td", { text: mark[row.status] || row.status }),
        el("td", { class: "lk-muted", text: row.reason }),
      ]);
    });
    return el("table", { class: "lk-criteria" }, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  function runsTable(runs) {
    if (!runs.length) return el("p", { class: "lk-muted", text: "no run kept yet" });
    var head = el("tr", {}, ["#", "Profile", "State", "Verdict", "Files"].map(function (t) {
      return el("th", { text: t });
    }));
    var body = runs.map(function (run) {
      var links = run.files.map(function (file) {
        return el("a", { href: file.url, target: "_blank", rel: "noopener", text: file.name });
      });
      return el("tr", { "data-run": run.folder }, [
        el("td", { text: String(run.number) }),
        el("td", { text: run.profile }),
        el("td", { text: run.state }),
        el("td", { text: run.summary }),
        el("td", {}, links),
      ]);
    });
    return el("table", { class: "lk-runs" }, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  // -- the form's help ----------------------------------------------------------------------------

  function formHelp() {
    var select = document.getElementById("shapeClass");
    var help = document.getElementById("loadkit-form-help");
    if (!select || !state.form) {
      if (help) help.remove();
      return;
    }
    var control = select.closest(".MuiFormControl-root") || select;
    if (!help || help.previousElementSibling !== control) {
      if (help) help.remove();
      help = el("div", { id: "loadkit-form-help" });
      control.parentElement.insertBefore(help, control.nextSibling);
    }
    var info = state.form.shapes[select.value] || { kind: "own" };
    var scaleInput = document.querySelector("input[name=timeScale]");
    var scale = scaleInput ? parseFloat(scaleInput.value) : 1;
    var lines = [];
    if (info.kind === "profile" || (info.kind === "own" && info.stages)) {
      var stages = info.stages.map(function (s) { return s[0] + "s:" + s[1]; }).join(", ");
      var length = seconds(info.duration_s);
      if (scale > 0 && scale !== 1) length += " (× " + scale + " time scale: " + seconds(info.duration_s * scale) + ")";
      lines.push((info.profile ? info.profile + ": " : "") + (info.purpose || ""));
      lines.push("stages " + stages + " · " + length + (info.k6 ? " · " + info.k6 : ""));
    } else if (info.kind === "custom") {
      lines.push("Your own stages: type them in Custom parameters → Stage (e.g. 30s:10,1m:50).");
    } else if (info.kind === "default") {
      lines.push("No profile: the users and ramp-up below, until Run time (open-ended when empty).");
    } else {
      lines.push(info.purpose || "A shape of your own.");
    }
    if (state.form.arrival) {
      lines.push(
        state.form.scenario + " starts calls at a rate (" + (state.form.load || "") + " unless you " +
        "set Rate or Rate Stage in Custom parameters): the profile sets how long the run lasts, " +
        "and its users only host the rate."
      );
    }
    update(help, lines.map(function (line) { return el("p", { text: line }); }));
  }

  // -- the loop -----------------------------------------------------------------------------------

  function render() {
    var phase = phaseOf(state.status);
    renderStrip(state.status, phase);
    renderBaseline(state.status, phase);
    formHelp();
  }

  function poll() {
    Promise.all([getJson("/loadkit/status"), getJson("/loadkit/runs")])
      .then(function (answers) {
        state.status = answers[0];
        state.runs = answers[1].runs;
      })
      .catch(function () {
        /* the UI process is going away, or a login expired: keep what is shown */
      })
      .then(function () {
        render();
        window.setTimeout(poll, POLL_MS);
      });
  }

  // START pressed: the previous run's verdict goes now, not at the next refresh.
  document.addEventListener(
    "submit",
    function () {
      state.startedAtGeneration = state.status ? state.status.generation : -1;
      render();
    },
    true
  );
  document.addEventListener("change", formHelp, true);
  document.addEventListener("input", formHelp, true);
  document.addEventListener("click", function () { window.setTimeout(render, 0); }, true);
  window.addEventListener("popstate", render);

  getJson("/loadkit/form")
    .then(function (form) { state.form = form; })
    .catch(function () { /* no help beside the picker */ })
    .then(poll);
})();
