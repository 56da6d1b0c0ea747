// Shows each <time datetime> in the reader's own language and time zone. Without JavaScript the
// server's text (UTC) stays; the exact ISO value is in the element's title either way.
(function () {
  "use strict";
  if (typeof Intl !== "object" || typeof Intl.DateTimeFormat !== "function") { return; }
  const format = new Intl.DateTimeFormat(undefined, {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  document.querySelectorAll("time[datetime]").forEach((el) => {
    const moment = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) { el.textContent = format.format(moment); }
  });
})();
