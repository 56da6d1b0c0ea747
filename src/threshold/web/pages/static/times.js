// Shows each <time datetime> in the page's language and the reader's own time zone. Without JavaScript
// the server's text (UTC, in the page's language) stays; the exact ISO value is in the element's title
// either way.
(function () {
  "use strict";
  if (typeof Intl !== "object" || typeof Intl.DateTimeFormat !== "function") { return; }
  let format;
  try {
    format = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
    });
  } catch (error) {
    return;
  }
  document.querySelectorAll("time[datetime]").forEach((el) => {
    const moment = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) { el.textContent = format.format(moment); }
  });
})();
