// The run page, live: new steps are appended to the timeline and the summary (status,
// totals, cancel, held call, output) is replaced as the server-sent events arrive. The
// browser's EventSource reconnects on its own (sending Last-Event-ID); the stream says
// `end` when the run is final, and then the page closes it. Without JS the page still works
// (reload to see progress).
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root || typeof EventSource === "undefined") return;
  var summary = function () { return document.getElementById("run-summary"); };
  if (summary().getAttribute("data-final") === "true") return;

  var timeline = document.getElementById("timeline");
  var empty = document.getElementById("no-steps");
  var indicator = document.getElementById("live-indicator");
  var url = root.getAttribute("data-events-url") + "?after=" +
    encodeURIComponent(root.getAttribute("data-last-sequence") || "0");
  var source = new EventSource(url);

  function fragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function isTyping() {
    // Do not replace the summary under someone typing a rejection reason.
    var active = document.activeElement;
    var current = summary();
    return active && current && current.contains(active) && active.tagName === "INPUT" &&
      active.value !== "";
  }

  var pendingSummary = null;

  function applySummary(html) {
    if (isTyping()) { pendingSummary = html; return; }
    pendingSummary = null;
    var next = fragment(html);
    var current = summary();
    if (next && current) current.replaceWith(next);
  }

  document.addEventListener("focusout", function () {
    if (pendingSummary !== null) setTimeout(function () {
      if (pendingSummary !== null) applySummary(pendingSummary);
    }, 0);
  });

  source.addEventListener("open", function () {
    if (indicator) indicator.hidden = false;
  });

  source.addEventListener("step", function (event) {
    var data = JSON.parse(event.data);
    if (document.getElementById("step-" + data.sequence)) return;  // already shown
    var item = fragment(data.html);
    if (!item) return;
    timeline.appendChild(item);
    root.setAttribute("data-last-sequence", String(data.sequence));
    if (empty) empty.hidden = true;
  });

  source.addEventListener("status", function (event) {
    var data = JSON.parse(event.data);
    applySummary(data.html);
    root.setAttribute("data-status", data.status);
  });

  source.addEventListener("end", function () {
    source.close();
    if (indicator) indicator.hidden = true;
    if (pendingSummary !== null && !isTyping()) applySummary(pendingSummary);
  });

  source.addEventListener("error", function () {
    if (indicator) indicator.hidden = source.readyState !== EventSource.OPEN;
  });
})();
